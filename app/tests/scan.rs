//! Scanning an address from a QR code, under Tauri's mock runtime: real
//! PNGs and camera frames go through the commands as the UI sends them (a
//! raw binary body) and come back as an address or a coded refusal.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Harness, ledger_info, responder};
use notch_ipc::scan::{self, SCAN_QR_FRAME, SCAN_QR_IMAGE, encode_frame};
use notch_ipc::{CommandError, ReceiveView, ScannedAddress, code, command};

fn wallet() -> (Harness, String) {
    let h = Harness::new(&responder("200 OK", ledger_info().to_string()));
    h.create_wallet();
    let receive: ReceiveView = serde_json::from_value(
        h.call(command::RECEIVE_ADDRESS, serde_json::json!({}))
            .unwrap(),
    )
    .unwrap();
    (h, receive.address)
}

fn scanned(h: &Harness, cmd: &str, body: Vec<u8>) -> Result<String, CommandError> {
    h.call_raw(cmd, body)
        .map(|v| serde_json::from_value::<ScannedAddress>(v).unwrap().address)
}

fn png_of(text: &str) -> Vec<u8> {
    notch_core::qr::encode_png(text, 6).unwrap()
}

/// A main-network address (the test wallet is on the sandbox network).
fn main_address() -> String {
    let key = notch_core::protocol::ed25519_dalek::SigningKey::from_bytes(&[7; 32])
        .verifying_key()
        .to_bytes();
    notch_core::protocol::Address::new(
        notch_core::Network::Main,
        notch_core::protocol::PublicKey::from_hex(&hex(&key)).unwrap(),
    )
    .encode()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A grayscale camera frame with the QR code of `text` in it.
fn frame_of(text: &str) -> (u32, u32, Vec<u8>) {
    let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
    let modules = code.width() as u32;
    let colors = code.to_colors();
    let (w, h, px, left, top) = (480u32, 360u32, 4u32, 90u32, 40u32);
    let mut luma = vec![210u8; (w * h) as usize];
    for y in 0..h {
        for x in 0..w {
            let (mx, my) = ((x.wrapping_sub(left)) / px, (y.wrapping_sub(top)) / px);
            if x >= left && y >= top && mx < modules && my < modules {
                let dark = colors[(my * modules + mx) as usize] == qrcode::Color::Dark;
                luma[(y * w + x) as usize] = if dark { 20 } else { 235 };
            }
        }
    }
    (w, h, luma)
}

#[test]
fn a_png_of_an_address_of_the_wallets_network_fills_it_in() {
    let (h, address) = wallet();
    assert_eq!(
        scanned(&h, SCAN_QR_IMAGE, png_of(&address)).unwrap(),
        address
    );
    // Upper case (QR alphanumeric mode) and a `notch:` link both give the
    // canonical address.
    assert_eq!(
        scanned(&h, SCAN_QR_IMAGE, png_of(&address.to_uppercase())).unwrap(),
        address
    );
    assert_eq!(
        scanned(
            &h,
            SCAN_QR_IMAGE,
            png_of(&format!("notch:{address}?amount=1.5"))
        )
        .unwrap(),
        address
    );
    // The JSON-array form Tauri falls back to without its IPC protocol.
    let as_json = serde_json::to_value(png_of(&address)).unwrap();
    let v = h.call(SCAN_QR_IMAGE, as_json).unwrap();
    assert_eq!(v["address"], address.as_str());
}

#[test]
fn an_address_of_another_network_is_refused_with_its_code() {
    let (h, _) = wallet();
    let e = scanned(&h, SCAN_QR_IMAGE, png_of(&main_address())).unwrap_err();
    assert_eq!(e.code, code::WRONG_NETWORK, "{e:?}");
    assert!(
        e.message.contains("not a Notch address on sandbox"),
        "{}",
        e.message
    );
    let e = scanned(&h, SCAN_QR_IMAGE, png_of("https://example.com/pay")).unwrap_err();
    assert_eq!(e.code, code::BAD_ADDRESS, "{e:?}");
}

#[test]
fn garbage_and_pictures_without_a_code_are_refused() {
    let (h, _) = wallet();
    let e = scanned(&h, SCAN_QR_IMAGE, b"definitely not a picture".to_vec()).unwrap_err();
    assert_eq!(e.code, scan::code::NOT_AN_IMAGE, "{e:?}");
    let e = scanned(&h, SCAN_QR_IMAGE, Vec::new()).unwrap_err();
    assert_eq!(e.code, scan::code::NOT_AN_IMAGE, "{e:?}");
    let png = png_of("x");
    let e = scanned(&h, SCAN_QR_IMAGE, png[..png.len() / 2].to_vec()).unwrap_err();
    assert_eq!(e.code, scan::code::BAD_IMAGE, "{e:?}");
    let e = scanned(
        &h,
        SCAN_QR_IMAGE,
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
    )
    .unwrap_err();
    assert_eq!(e.code, scan::code::UNSUPPORTED_IMAGE, "{e:?}");
    // A JSON object is not an image either.
    let e = h
        .call(SCAN_QR_IMAGE, serde_json::json!({ "args": {} }))
        .unwrap_err();
    assert_eq!(e.code, code::INVALID, "{e:?}");
}

#[test]
fn a_camera_frame_gives_the_address_and_a_bad_frame_is_refused() {
    let (h, address) = wallet();
    let (w, hh, luma) = frame_of(&address);
    assert_eq!(
        scanned(&h, SCAN_QR_FRAME, encode_frame(w, hh, &luma)).unwrap(),
        address
    );
    let blank = vec![200u8; (w * hh) as usize];
    let e = scanned(&h, SCAN_QR_FRAME, encode_frame(w, hh, &blank)).unwrap_err();
    assert_eq!(e.code, scan::code::NO_QR_CODE, "{e:?}");
    let e = scanned(&h, SCAN_QR_FRAME, encode_frame(w + 1, hh, &luma)).unwrap_err();
    assert_eq!(e.code, scan::code::BAD_FRAME, "{e:?}");
    let e = scanned(&h, SCAN_QR_FRAME, vec![1, 2, 3]).unwrap_err();
    assert_eq!(e.code, scan::code::BAD_FRAME, "{e:?}");
}

#[test]
fn scanning_needs_a_wallet() {
    let h = Harness::new(&responder("200 OK", ledger_info().to_string()));
    let _ = h.call(command::APP_STATUS, serde_json::json!({})).unwrap();
    let e = scanned(&h, SCAN_QR_IMAGE, png_of("anything")).unwrap_err();
    assert_eq!(e.code, code::NO_WALLET, "{e:?}");
}
