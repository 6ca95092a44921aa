//! Scanning a recipient's address from a QR code in the real app window
//! (Xvfb, tauri-driver, WebKitWebDriver) against a real sandbox gateway:
//! picture files handed to the row's file input, and the camera button on a
//! machine without a camera. Run by `cargo xtask test`.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::path::{Path, PathBuf};
use std::time::Duration;

use notch_tests::bin;
use notch_tests::e2e::{LONG, cli, create_wallet, eventually_gone, temp_dir};
use notch_tests::gateway::Sandbox;
use notch_tests::webdriver::AppSession;
use serde_json::json;

/// The current value of an input (WebDriver's text of an input is empty).
fn value(app: &AppSession, test_id: &str) -> String {
    app.execute(
        "const e = document.querySelector(`[data-testid=\"${arguments[0]}\"]`); return e ? e.value : null;",
        json!([test_id]),
    )
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

/// Hands a file to the row's file input, as a person picking it would.
fn pick_file(app: &AppSession, test_id: &str, path: &Path) {
    app.type_text(test_id, &path.display().to_string());
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
#[ignore = "needs a display, tauri-driver, a Secret Service and built binaries: run by `cargo xtask test`"]
fn an_address_is_scanned_from_a_picture_and_the_camera_says_when_there_is_none() {
    let gateway = Sandbox::start(temp_dir("gw-scan"), "127.0.0.1:0");
    let profile = temp_dir("profile-scan");
    let profile_str = profile.display().to_string();
    let app = AppSession::launch(
        &bin("notch-app"),
        &[
            ("NOTCH_GATEWAY", &gateway.url),
            ("NOTCH_DATA_DIR", &profile_str),
        ],
        "qr_scan",
    );
    create_wallet(&app, "00");

    // The wallet to pay: a second one, its receive address as a QR code.
    let other = temp_dir("cli-scan");
    cli(&gateway.url, &other, &["init"]);
    let to = cli(&gateway.url, &other, &["address"]).trim().to_owned();
    assert!(to.starts_with("nsb1"), "{to}");
    let pictures = temp_dir("scan-pictures");
    let good = write(
        &pictures,
        "address.png",
        &notch_core::qr::encode_png(&to, 8).unwrap(),
    );
    // A real picture without a code: the app's own icon.
    let no_code = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../icons/128x128.png");
    let main_net = write(
        &pictures,
        "main-network.png",
        &notch_core::qr::encode_png(&main_network_address(), 8).unwrap(),
    );

    app.click("nav-send");
    app.wait_for("scan-image-0", LONG);
    app.wait_for("scan-camera-0", LONG);
    app.screenshot("01-send");

    // A picture without a code.
    pick_file(&app, "scan-image-0", &no_code);
    app.wait_text("scan-error-0", LONG, |t| {
        t.contains("No QR code in this image")
    });
    app.screenshot("02-no-code");

    // Another network's address: refused, the field left alone.
    pick_file(&app, "scan-image-0", &main_net);
    app.wait_text("scan-error-0", LONG, |t| {
        t.contains("not a Notch address on sandbox")
    });
    assert_eq!(value(&app, "send-address-0"), "");
    app.screenshot("03-wrong-network");

    // The right one: the field holds it, validated, no error left.
    pick_file(&app, "scan-image-0", &good);
    notch_tests::eventually("the scanned address in the field", LONG, || {
        (value(&app, "send-address-0") == to).then_some(())
    });
    eventually_gone(&app, "scan-error-0");
    // Validation ran (as if typed): a moment for its answer, then no error.
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        app.find("send-address-error-0").is_none(),
        "{:?}",
        app.text("send-address-error-0")
    );
    app.screenshot("04-scanned");

    // The rest of the row works as usual with the scanned address.
    app.type_text("send-amount-0", "1");
    eventually_gone(&app, "send-amount-error-0");

    // No camera under Xvfb: a clear error, and no preview left open.
    app.click("scan-camera-0");
    let said = app.wait_text("scan-error-0", LONG, |t| !t.is_empty());
    app.screenshot("05-no-camera");
    assert!(said.contains("No camera found"), "{said}");
    assert_eq!(
        app.execute(
            "return getComputedStyle(document.querySelector('[data-testid=\"scan-preview-0\"]')).display;",
            json!([])
        ),
        json!("none")
    );
    // The scanned address is still there.
    assert_eq!(value(&app, "send-address-0"), to);
}

/// An address of the main network (the app runs on the sandbox network).
fn main_network_address() -> String {
    let key = notch_protocol::ed25519_dalek::SigningKey::from_bytes(&[9; 32])
        .verifying_key()
        .to_bytes();
    notch_protocol::Address::new(
        notch_protocol::Network::Main,
        notch_protocol::PublicKey::from_hex(&hex::encode(key)).unwrap(),
    )
    .encode()
}
