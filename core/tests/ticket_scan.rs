//! Tally tickets end to end: links read back the same, every refusal says
//! why, and a rendered ticket QR code is read back from pictures that look
//! like what a person really scans — a phone photo of a screen or of
//! paper — not only from the perfect render.
//!
//! The distorted pictures are made here, from the rendered PNG, with the
//! `image` crate and a small projective warp of our own (no imageproc: it
//! would add nalgebra, rand and rayon to the build for two functions).

#![allow(clippy::unwrap_used)]

use std::io::Cursor;

use image::{GrayImage, ImageFormat, Luma, RgbImage};
use notch_core::Network;
use notch_core::payment::{PaymentUri, UriError};
use notch_core::qr::QrError;
use notch_core::ticket::{
    AgentId, Chad, DEFAULT_MODULE_PX, LinkForm, MAX_EXPIRES, MAX_TEXT_LEN, ScanError, Ticket,
    TicketError,
};
use proptest::prelude::*;

const AGENT: &str = "6j9z7de95UMTnZzWobwtob6Mc3MDGDntdhSNR80pGXE";
/// 2023-11-14T22:13:20Z.
const EXPIRES: u64 = 1_700_000_000;
const BEFORE: u64 = EXPIRES - 60;

fn ticket() -> Ticket {
    let chad = Chad::new(
        "suzie",
        AgentId::parse(AGENT).unwrap(),
        "mychips.net",
        57423,
    )
    .unwrap();
    Ticket::new("0123456789abcdef0123456789abcdef", Some(EXPIRES), chad).unwrap()
}

/// The chad of [`ticket`] as it appears in its links.
const CHAD: &str = "%7B%22agent%22:%226j9z7de95UMTnZzWobwtob6Mc3MDGDntdhSNR80pGXE%22,%22cuid%22:%22suzie%22,%22host%22:%22mychips.net%22,%22port%22:57423%7D";

// --- links ---------------------------------------------------------------

#[test]
fn links_round_trip() {
    let t = ticket();
    let invite = format!(
        "https://mychips.org/invite?token=0123456789abcdef0123456789abcdef&chad={CHAD}&expires=2023-11-14T22:13:20Z"
    );
    assert_eq!(t.link(LinkForm::MyChips), invite);
    assert_eq!(t.to_string(), invite);
    let notch = format!(
        "notch:ticket?token=0123456789abcdef0123456789abcdef&chad={CHAD}&expires=2023-11-14T22:13:20Z"
    );
    assert_eq!(t.link(LinkForm::Notch), notch);
    for text in [
        invite.clone(),
        notch.clone(),
        notch.replacen("notch:", "NOTCH://", 1),
        format!("  {invite}\n"),
        t.to_json().to_string(),
        format!("{{\"ticket\":{}}}", t.to_json()),
        format!("{{\"type\":\"tally\",\"ticket\":{}}}", t.to_json()),
    ] {
        assert_eq!(Ticket::parse(&text), Ok(t.clone()), "{text}");
        assert_eq!(text.parse::<Ticket>(), Ok(t.clone()));
    }
    assert!(t.check(BEFORE).is_ok());
    assert_eq!(
        t.check(EXPIRES),
        Err(TicketError::Expired { expires: EXPIRES })
    );
    let e = t.check(EXPIRES + 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "this ticket expired at 2023-11-14T22:13:20Z; ask whoever gave it to you for a new one"
    );
    // An issued ticket has a fresh 32-hex-digit token.
    let a = Ticket::issue(t.chad().clone(), EXPIRES).unwrap();
    let b = Ticket::issue(t.chad().clone(), EXPIRES).unwrap();
    assert_ne!(a.token(), b.token());
    assert_eq!(a.token().len(), 32);
    assert_eq!(Ticket::parse(&a.to_string()), Ok(a));
}

#[test]
fn a_ticket_and_a_payment_are_never_confused() {
    let t = ticket();
    for form in [LinkForm::MyChips, LinkForm::Notch] {
        assert_eq!(
            PaymentUri::parse(&t.link(form), Network::Sandbox),
            Err(UriError::TallyTicket)
        );
    }
    let payment = "notch:nsb1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0s5zytzg?amount=1";
    let e = Ticket::parse(payment).unwrap_err();
    assert!(matches!(e, TicketError::NotATicket { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "this is not a tally ticket: it is a Notch payment link (notch:ADDRESS), not a tally ticket (notch:ticket?…)"
    );
}

/// Every way a text can be refused, each with its reason.
#[test]
fn every_refusal_says_why() {
    let link = |query: &str| format!("https://mychips.org/invite?{query}");
    let with_chad = |chad: &str| link(&format!("token=abc&chad={chad}"));
    let chad_json = |agent: &str, host: &str, port: &str| {
        format!(r#"{{"cuid":"suzie","agent":"{agent}","host":"{host}","port":{port}}}"#)
    };
    let good_chad = chad_json(AGENT, "mychips.net", "57423");
    type Check = fn(&TicketError) -> bool;
    let cases: Vec<(String, Check, &str)> = vec![
        ("".into(), |e| *e == TicketError::Empty, "the text is empty"),
        ("  \n".into(), |e| *e == TicketError::Empty, "empty"),
        (
            format!("{}{}", link("token=abc&chad="), "x".repeat(MAX_TEXT_LEN)),
            |e| matches!(e, TicketError::TooLong { .. }),
            "too long",
        ),
        (
            "hello there".into(),
            |e| matches!(e, TicketError::NotATicket { .. }),
            "plain text",
        ),
        (
            "bitcoin:1abc".into(),
            |e| matches!(e, TicketError::NotATicket { .. }),
            "a bitcoin: link",
        ),
        (
            "http://mychips.org/invite?token=abc".into(),
            |e| matches!(e, TicketError::NotATicket { .. }),
            "unencrypted http",
        ),
        (
            "https://mychips.org/ticket?host=a&port=1&token=x".into(),
            |e| matches!(e, TicketError::NotATicket { .. }),
            "connection ticket",
        ),
        (
            "https://mychips.org/pay?chad=x&units=1".into(),
            |e| matches!(e, TicketError::NotATicket { .. }),
            "payment request",
        ),
        (
            r#"{"connect":{"token":"x"}}"#.into(),
            |e| matches!(e, TicketError::NotATicket { .. }),
            "connection ticket",
        ),
        (
            r#"{"type":"pay","ticket":{}}"#.into(),
            |e| matches!(e, TicketError::NotATicket { .. }),
            "type \"pay\"",
        ),
        (
            "{not json".into(),
            |e| matches!(e, TicketError::NotATicket { .. }),
            "not valid JSON",
        ),
        (
            "[1,2]".into(),
            |e| matches!(e, TicketError::NotATicket { .. }),
            "plain text",
        ),
        (
            "https://evil.example/invite?token=abc".into(),
            |e| matches!(e, TicketError::WrongHost { host } if host == "evil.example"),
            "goes to evil.example",
        ),
        (
            "https://mychips.org@evil.example/invite".into(),
            |e| matches!(e, TicketError::WrongHost { .. }),
            "not mychips.org",
        ),
        (
            "https://mychips.org:8443/invite".into(),
            |e| matches!(e, TicketError::WrongHost { host } if host == "mychips.org:8443"),
            "mychips.org:8443",
        ),
        (
            "https://mychips.org/tally?token=abc".into(),
            |e| matches!(e, TicketError::WrongPath { path } if path == "/tally"),
            "(/tally, not /invite)",
        ),
        (
            link(&format!("chad={good_chad}")),
            |e| *e == TicketError::MissingToken,
            "no token",
        ),
        (
            link(&format!("token=&chad={good_chad}")),
            |e| *e == TicketError::MissingToken,
            "no token",
        ),
        (
            link(&format!("token=a%20b&chad={good_chad}")),
            |e| matches!(e, TicketError::BadToken { .. }),
            "holds ' '",
        ),
        (
            link(&format!("token={}&chad={good_chad}", "a".repeat(129))),
            |e| matches!(e, TicketError::BadToken { .. }),
            "at most 128",
        ),
        (
            link(&format!("token=a&token=b&chad={good_chad}")),
            |e| matches!(e, TicketError::Duplicate { name } if name == "token"),
            "more than once",
        ),
        (
            link(&format!("token=%ZZ&chad={good_chad}")),
            |e| matches!(e, TicketError::BadEncoding { .. }),
            "percent-encoded",
        ),
        (
            link(&format!("token=%FF&chad={good_chad}")),
            |e| matches!(e, TicketError::BadEncoding { .. }),
            "UTF-8",
        ),
        (
            link("token=abc"),
            |e| *e == TicketError::MissingChad,
            "no CHIP address",
        ),
        (
            with_chad("not%20json"),
            |e| matches!(e, TicketError::BadChad { .. }),
            "not JSON",
        ),
        (
            with_chad("[1]"),
            |e| matches!(e, TicketError::BadChad { .. }),
            "not a JSON object",
        ),
        (
            with_chad(&format!(r#"{{"agent":"{AGENT}","host":"h.net","port":1}}"#)),
            |e| matches!(e, TicketError::BadChad { .. }),
            "no \"cuid\"",
        ),
        (
            with_chad(&format!(
                r#"{{"cuid":"a","cid":"b","agent":"{AGENT}","host":"h.net","port":1}}"#
            )),
            |e| matches!(e, TicketError::BadChad { .. }),
            "different",
        ),
        (
            with_chad(r#"{"cuid":"suzie","host":"h.net","port":1}"#),
            |e| matches!(e, TicketError::BadChad { .. }),
            "no \"agent\"",
        ),
        (
            with_chad(&format!(r#"{{"cuid":"suzie","agent":"{AGENT}","port":1}}"#)),
            |e| matches!(e, TicketError::BadChad { .. }),
            "no \"host\"",
        ),
        (
            with_chad(&format!(
                r#"{{"cuid":"suzie","agent":"{AGENT}","host":"h.net"}}"#
            )),
            |e| matches!(e, TicketError::BadChad { .. }),
            "no \"port\"",
        ),
        (
            with_chad(&format!(
                r#"{{"cuid":7,"agent":"{AGENT}","host":"h.net","port":1}}"#
            )),
            |e| matches!(e, TicketError::BadChad { .. }),
            "not a string",
        ),
        (
            with_chad(&format!(
                r#"{{"cuid":"su zie","agent":"{AGENT}","host":"h.net","port":1}}"#
            )),
            |e| matches!(e, TicketError::BadCuid { .. }),
            "holds ' '",
        ),
        (
            with_chad(&format!(
                r#"{{"cuid":"a:b","agent":"{AGENT}","host":"h.net","port":1}}"#
            )),
            |e| matches!(e, TicketError::BadCuid { .. }),
            "holds ':'",
        ),
        (
            with_chad(&chad_json(&AGENT[..40], "mychips.net", "1")),
            |e| matches!(e, TicketError::BadAgent { .. }),
            "30 bytes; an X25519 public key is 32 bytes",
        ),
        (
            with_chad(&chad_json("not*base64", "mychips.net", "1")),
            |e| matches!(e, TicketError::BadAgent { .. }),
            "not base64url",
        ),
        (
            with_chad(&chad_json(&format!("{AGENT}="), "mychips.net", "1")),
            |e| matches!(e, TicketError::BadAgent { .. }),
            "padding",
        ),
        (
            with_chad(&chad_json(AGENT, "mychips.net", "0")),
            |e| matches!(e, TicketError::BadPort { port } if port == "0"),
            "from 1 to 65535",
        ),
        (
            with_chad(&chad_json(AGENT, "mychips.net", "65536")),
            |e| matches!(e, TicketError::BadPort { .. }),
            "port 65536",
        ),
        (
            with_chad(&chad_json(AGENT, "mychips.net", "-1")),
            |e| matches!(e, TicketError::BadPort { .. }),
            "port -1",
        ),
        (
            with_chad(&chad_json(AGENT, "mychips.net", "443.5")),
            |e| matches!(e, TicketError::BadPort { .. }),
            "port 443.5",
        ),
        (
            with_chad(&chad_json(AGENT, "mychips.net", "\"443\"")),
            |e| matches!(e, TicketError::BadPort { .. }),
            "port \"443\"",
        ),
        (
            with_chad(&chad_json(AGENT, "", "1")),
            |e| matches!(e, TicketError::BadHost { .. }),
            "it is empty",
        ),
        (
            with_chad(&chad_json(AGENT, "0.0.0.0", "1")),
            |e| matches!(e, TicketError::BadHost { .. }),
            "unspecified",
        ),
        (
            with_chad(&chad_json(AGENT, &"a".repeat(300), "1")),
            |e| matches!(e, TicketError::BadHost { .. }),
            "longer than a host name",
        ),
        (
            with_chad(&chad_json(AGENT, "my%20chips.net", "1")),
            |e| matches!(e, TicketError::BadHost { .. }),
            "letters, digits",
        ),
        (
            with_chad(&chad_json(AGENT, "999.1.1.1", "1")),
            |e| matches!(e, TicketError::BadHost { .. }),
            "not one",
        ),
        (
            link(&format!("token=abc&chad={good_chad}&expires=tomorrow")),
            |e| matches!(e, TicketError::BadExpiry { .. }),
            "not a date and time",
        ),
        (
            link(&format!(
                "token=abc&chad={good_chad}&expires=2023-11-14T22:13:20"
            )),
            |e| matches!(e, TicketError::BadExpiry { .. }),
            "no time zone",
        ),
        (
            format!(r#"{{"ticket":{{"token":"abc","expires":5,"chad":{good_chad}}}}}"#),
            |e| matches!(e, TicketError::BadExpiry { .. }),
            "not a date and time string",
        ),
        (
            "notch:ticket".into(),
            |e| *e == TicketError::MissingToken,
            "no token",
        ),
    ];
    for (text, check, words) in cases {
        let shown: String = text.chars().take(120).collect();
        let e = Ticket::parse(&text).expect_err(&shown);
        assert!(check(&e), "{shown}: {e:?}");
        assert!(e.to_string().contains(words), "{shown}: {e}");
    }
    // The good chad itself is fine: the cases above fail for their reason.
    assert!(Ticket::parse(&with_chad(&good_chad)).is_ok());
}

// --- pictures ------------------------------------------------------------

/// The ticket as the app renders it, as a grey picture.
fn rendered(t: &Ticket) -> GrayImage {
    let png = t.to_qr_png(LinkForm::MyChips, DEFAULT_MODULE_PX).unwrap();
    image::load_from_memory(&png).unwrap().into_luma8()
}

fn png(picture: &GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    picture
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

fn jpeg(picture: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(picture)
        .unwrap();
    out
}

fn rgb(picture: &GrayImage) -> RgbImage {
    // A slightly warm tint, as a phone's white balance gives a screen.
    RgbImage::from_fn(picture.width(), picture.height(), |x, y| {
        let v = picture.get_pixel(x, y).0[0];
        image::Rgb([v.saturating_add(6), v, v.saturating_sub(8)])
    })
}

/// A deterministic pseudo-random sequence (no rand dependency).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Roughly normal, mean 0, standard deviation about `sd`.
    fn gauss(&mut self, sd: f64) -> f64 {
        let sum: f64 = (0..3)
            .map(|_| (self.next() % 10_000) as f64 / 10_000.0)
            .sum();
        (sum - 1.5) * 2.0 * sd
    }
}

/// The projective map taking the unit square's corners (0,0), (1,0), (1,1),
/// (0,1) to `quad`, as its 3×3 matrix (row-major, last entry 1).
fn square_to_quad(quad: [(f64, f64); 4]) -> [f64; 9] {
    // Heckbert's closed form for the square-to-quadrilateral case.
    let [(x0, y0), (x1, y1), (x2, y2), (x3, y3)] = quad;
    let (sx, sy) = (x0 - x1 + x2 - x3, y0 - y1 + y2 - y3);
    let (dx1, dy1, dx2, dy2) = (x1 - x2, y1 - y2, x3 - x2, y3 - y2);
    let den = dx1 * dy2 - dx2 * dy1;
    let g = (sx * dy2 - dx2 * sy) / den;
    let h = (dx1 * sy - sx * dy1) / den;
    [
        x1 - x0 + g * x1,
        x3 - x0 + h * x3,
        x0,
        y1 - y0 + g * y1,
        y3 - y0 + h * y3,
        y0,
        g,
        h,
        1.0,
    ]
}

/// The inverse of a 3×3 matrix (adjugate; the scale does not matter for a
/// projective map).
fn invert(m: [f64; 9]) -> [f64; 9] {
    let [a, b, c, d, e, f, g, h, i] = m;
    [
        e * i - f * h,
        c * h - b * i,
        b * f - c * e,
        f * g - d * i,
        a * i - c * g,
        c * d - a * f,
        d * h - e * g,
        b * g - a * h,
        a * e - b * d,
    ]
}

fn project(m: &[f64; 9], x: f64, y: f64) -> (f64, f64) {
    let w = m[6] * x + m[7] * y + m[8];
    (
        (m[0] * x + m[1] * y + m[2]) / w,
        (m[3] * x + m[4] * y + m[5]) / w,
    )
}

/// Bilinear sample of `picture` at `(x, y)`, `None` outside it.
fn sample(picture: &GrayImage, x: f64, y: f64) -> Option<f64> {
    let (w, h) = (f64::from(picture.width()), f64::from(picture.height()));
    if x < 0.0 || y < 0.0 || x > w - 1.0 || y > h - 1.0 {
        return None;
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let px = |xx: f64, yy: f64| {
        let xx = (xx as u32).min(picture.width() - 1);
        let yy = (yy as u32).min(picture.height() - 1);
        f64::from(picture.get_pixel(xx, yy).0[0])
    };
    let top = px(x0, y0) * (1.0 - fx) + px(x0 + 1.0, y0) * fx;
    let bottom = px(x0, y0 + 1.0) * (1.0 - fx) + px(x0 + 1.0, y0 + 1.0) * fx;
    Some(top * (1.0 - fy) + bottom * fy)
}

/// A `width`×`height` picture of `background`, with `code` warped onto the
/// quadrilateral `quad` (its top-left, top-right, bottom-right, bottom-left
/// corners), 2×2 supersampled as a camera's optics would smooth it.
fn place(
    code: &GrayImage,
    width: u32,
    height: u32,
    quad: [(f64, f64); 4],
    background: impl Fn(u32, u32) -> f64,
) -> GrayImage {
    let to_unit = invert(square_to_quad(quad));
    let (cw, ch) = (f64::from(code.width()), f64::from(code.height()));
    GrayImage::from_fn(width, height, |x, y| {
        let mut sum = 0.0;
        for (dx, dy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
            let (u, v) = project(&to_unit, f64::from(x) + dx, f64::from(y) + dy);
            sum += if (0.0..=1.0).contains(&u) && (0.0..=1.0).contains(&v) {
                sample(code, u * (cw - 1.0), v * (ch - 1.0)).unwrap_or(255.0)
            } else {
                background(x, y)
            };
        }
        Luma([(sum / 4.0).round().clamp(0.0, 255.0) as u8])
    })
}

/// A square of side `side` centred at `(cx, cy)`, rotated by `degrees`.
fn rotated_square(cx: f64, cy: f64, side: f64, degrees: f64) -> [(f64, f64); 4] {
    let (s, c) = degrees.to_radians().sin_cos();
    let h = side / 2.0;
    [(-h, -h), (h, -h), (h, h), (-h, h)].map(|(x, y)| (cx + x * c - y * s, cy + x * s + y * c))
}

/// Contrast squeezed into `low..=high`, sensor noise added.
fn dull(picture: &GrayImage, low: f64, high: f64, noise_sd: f64, seed: u64) -> GrayImage {
    let mut noise = Noise(seed);
    GrayImage::from_fn(picture.width(), picture.height(), |x, y| {
        let v = f64::from(picture.get_pixel(x, y).0[0]) / 255.0;
        let v = low + v * (high - low) + noise.gauss(noise_sd);
        Luma([v.round().clamp(0.0, 255.0) as u8])
    })
}

fn scanned(bytes: &[u8]) -> Result<Ticket, ScanError> {
    Ticket::scan_image(bytes, BEFORE)
}

#[test]
fn a_rendered_ticket_scans_back() {
    let t = ticket();
    for form in [LinkForm::MyChips, LinkForm::Notch] {
        let png = t.to_qr_png(form, DEFAULT_MODULE_PX).unwrap();
        assert_eq!(scanned(&png), Ok(t.clone()));
    }
    let svg = t.to_qr_svg(LinkForm::MyChips).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("viewBox"), "{svg}");
}

/// One distortion at a time, each read back to the same ticket.
#[test]
fn each_distortion_alone_scans_back() {
    let t = ticket();
    let code = rendered(&t);
    let side = f64::from(code.width());
    let plain = |_: u32, _: u32| 238.0;
    let cases: Vec<(&str, GrayImage)> = vec![
        ("scaled by 1.37", {
            let s = (side * 1.37) as u32;
            image::imageops::resize(&code, s, s, image::imageops::FilterType::Triangle)
        }),
        ("scaled down by 0.71", {
            let s = (side * 0.71) as u32;
            image::imageops::resize(&code, s, s, image::imageops::FilterType::Triangle)
        }),
        ("rotated 15°", {
            let w = (side * 1.5) as u32;
            place(
                &code,
                w,
                w,
                rotated_square(f64::from(w) / 2.0, f64::from(w) / 2.0, side, 15.0),
                plain,
            )
        }),
        ("rotated -20°", {
            let w = (side * 1.5) as u32;
            place(
                &code,
                w,
                w,
                rotated_square(f64::from(w) / 2.0, f64::from(w) / 2.0, side, -20.0),
                plain,
            )
        }),
        ("perspective", {
            let w = (side * 1.4) as u32;
            // Seen from below and to the left: the far edge shorter.
            let quad = [
                (60.0, 80.0),
                (side + 20.0, 40.0),
                (side + 80.0, side + 110.0),
                (30.0, side + 60.0),
            ];
            place(&code, w, w, quad, plain)
        }),
        ("blurred (sigma 2)", image::imageops::blur(&code, 2.0)),
        ("noise (sd 28)", dull(&code, 0.0, 255.0, 28.0, 11)),
        ("low contrast (90..170)", dull(&code, 90.0, 170.0, 0.0, 1)),
        ("mirrored", image::imageops::flip_horizontal(&code)),
        ("inverted", {
            let mut c = code.clone();
            image::imageops::invert(&mut c);
            c
        }),
    ];
    let mut failed = Vec::new();
    for (name, picture) in cases {
        let bytes = png(&picture);
        dump(name, &bytes, "png");
        if let Err(e) = scanned(&bytes) {
            failed.push(format!("{name}: {e}"));
        }
    }
    // JPEG at quality 60 on its own.
    let bytes = jpeg(&rgb(&code), 60);
    dump("jpeg q60", &bytes, "jpg");
    if let Err(e) = scanned(&bytes) {
        failed.push(format!("JPEG q60: {e}"));
    }
    assert!(failed.is_empty(), "not read back: {failed:#?}");
}

/// With `NOTCH_TICKET_PICTURES=DIR`, the test pictures are written there,
/// to look at when one is not read.
fn dump(name: &str, bytes: &[u8], ext: &str) {
    if let Some(dir) = std::env::var_os("NOTCH_TICKET_PICTURES") {
        let file: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let _ = std::fs::write(
            std::path::Path::new(&dir).join(format!("{file}.{ext}")),
            bytes,
        );
    }
}

/// Everything at once, like a phone photo of the ticket on a laptop screen:
/// the code smaller than rendered and turned, seen at an angle, out of
/// focus, the screen's pixel grid showing through, dim and noisy, on a
/// desk with other things in view (text, a gradient, another QR code that
/// is not a ticket), saved as a JPEG at quality 60.
#[test]
fn a_photo_of_a_screen_scans_back() {
    let t = ticket();
    let code = rendered(&t);
    let side = f64::from(code.width()) * 0.83;
    let other = {
        let png = notch_core::qr::encode_png("notch:nsb1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23", 4)
            .unwrap();
        image::load_from_memory(&png).unwrap().into_luma8()
    };
    let (w, h) = (1280u32, 960u32);
    let mut noise = Noise(0xDEC0_DED5);
    // The desk: a gradient, some "text" lines, and a printed payment code.
    let desk = GrayImage::from_fn(w, h, |x, y| {
        let mut v = 90.0 + f64::from(x) / 14.0 + f64::from(y) / 30.0;
        if (40..400).contains(&x) && (700..900).contains(&y) && y % 18 < 7 && (x / 9) % 7 != 0 {
            v = 40.0;
        }
        if x >= 1000
            && y >= 60
            && let Some(p) = other.get_pixel_checked(x - 1000, y - 60)
        {
            v = f64::from(p.0[0]) * 0.8 + 20.0;
        }
        Luma([v.clamp(0.0, 255.0) as u8])
    });
    let desk_at = |x: u32, y: u32| f64::from(desk.get_pixel(x, y).0[0]);
    // Turned 12° and seen from the lower left (perspective).
    let mut quad = rotated_square(560.0, 470.0, side, 12.0);
    quad[1].1 += 30.0;
    quad[2].0 -= 25.0;
    quad[3].0 += 15.0;
    let photo = place(&code, w, h, quad, desk_at);
    // The screen's pixel grid: every third column a little darker.
    let photo = GrayImage::from_fn(w, h, |x, y| {
        let v = f64::from(photo.get_pixel(x, y).0[0]);
        let v = if x % 3 == 0 { v * 0.9 } else { v };
        Luma([v as u8])
    });
    let photo = image::imageops::blur(&photo, 1.3);
    let photo = GrayImage::from_fn(w, h, |x, y| {
        // Dim (the screen's black is grey, its white not white), noisy.
        let v = 45.0 + f64::from(photo.get_pixel(x, y).0[0]) * 0.62 + noise.gauss(9.0);
        Luma([v.clamp(0.0, 255.0) as u8])
    });
    let bytes = jpeg(&rgb(&photo), 60);
    dump("photo of a screen", &bytes, "jpg");
    dump("photo of a screen, before JPEG", &png(&photo), "png");
    assert_eq!(scanned(&bytes), Ok(t.clone()));

    // The same photo as a camera frame.
    assert_eq!(
        Ticket::scan_luma(w, h, photo.as_raw(), BEFORE),
        Ok(t.clone())
    );
}

#[test]
fn a_picture_without_a_good_ticket_says_what_it_holds() {
    // Only a payment code.
    let payment = "notch:nsb1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0s5zytzg";
    let png = notch_core::qr::encode_png(payment, 6).unwrap();
    let e = scanned(&png).unwrap_err();
    assert!(
        matches!(&e, ScanError::NotATicket { text, .. } if text.starts_with("notch:nsb1")),
        "{e:?}"
    );
    assert!(e.to_string().contains("is not a tally ticket"), "{e}");
    // An expired ticket.
    let t = ticket();
    let png = t.to_qr_png(LinkForm::MyChips, DEFAULT_MODULE_PX).unwrap();
    let e = Ticket::scan_image(&png, EXPIRES + 3600).unwrap_err();
    assert!(
        matches!(&e, ScanError::Expired { ticket, .. } if **ticket == t),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("expired at 2023-11-14T22:13:20Z"),
        "{e}"
    );
    // No code at all, and not a picture.
    let blank = GrayImage::from_pixel(300, 200, Luma([200]));
    assert_eq!(
        scanned(&png_of(&blank)),
        Err(ScanError::Picture(QrError::NotFound))
    );
    assert_eq!(
        scanned(b"hello"),
        Err(ScanError::Picture(QrError::NotAnImage))
    );
}

fn png_of(picture: &GrayImage) -> Vec<u8> {
    png(picture)
}

// --- properties -----------------------------------------------------------

fn cuid() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        any::<char>().prop_filter("a cuid character", |c| {
            !(c.is_control() || c.is_whitespace() || matches!(c, ':' | '@' | '/'))
        }),
        1..=64,
    )
    .prop_map(String::from_iter)
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        // DNS names: labels of letters, digits and inner '-', the last not
        // all digits.
        "[a-zA-Z]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?(\\.[a-zA-Z]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?){0,3}",
        any::<[u8; 4]>()
            .prop_map(std::net::Ipv4Addr::from)
            .prop_filter("reachable", |ip| {
                !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
            })
            .prop_map(|ip| ip.to_string()),
        any::<[u16; 8]>()
            .prop_map(std::net::Ipv6Addr::from)
            .prop_filter("reachable", |ip| !(ip.is_unspecified()
                || ip.is_multicast()))
            .prop_map(|ip| ip.to_string()),
    ]
}

fn any_ticket() -> impl Strategy<Value = Ticket> {
    (
        "[A-Za-z0-9._~-]{1,128}",
        proptest::option::of(0..=MAX_EXPIRES),
        cuid(),
        any::<[u8; 32]>(),
        host(),
        1..=u16::MAX,
    )
        .prop_map(|(token, expires, cuid, agent, host, port)| {
            let chad = Chad::new(cuid, AgentId::from_bytes(agent), host, port).unwrap();
            Ticket::new(token, expires, chad).unwrap()
        })
}

proptest! {
    #[test]
    fn every_ticket_reads_back_from_every_form(t in any_ticket()) {
        for text in [
            t.link(LinkForm::MyChips),
            t.link(LinkForm::Notch),
            t.to_json().to_string(),
            format!("{{\"ticket\":{}}}", t.to_json()),
        ] {
            prop_assert_eq!(Ticket::parse(&text), Ok(t.clone()), "{}", text);
        }
        prop_assert_eq!(
            PaymentUri::parse(&t.link(LinkForm::Notch), Network::Sandbox),
            Err(UriError::TallyTicket)
        );
    }

    #[test]
    fn parse_never_panics_on_any_text(text in any::<String>()) {
        if let Ok(t) = Ticket::parse(&text) {
            prop_assert_eq!(Ticket::parse(&t.to_string()), Ok(t.clone()));
        }
    }

    #[test]
    fn parse_never_panics_near_a_ticket(
        t in any_ticket(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<char>(), 0u8..3), 1..6),
        notch in any::<bool>(),
    ) {
        let mut chars: Vec<char> = t
            .link(if notch { LinkForm::Notch } else { LinkForm::MyChips })
            .chars()
            .collect();
        for (at, c, how) in edits {
            let at = at.index(chars.len().max(1));
            match how {
                0 if at < chars.len() => chars[at] = c,
                1 => chars.insert(at.min(chars.len()), c),
                _ => chars.truncate(at.max(1)),
            }
        }
        let text: String = chars.into_iter().collect();
        // Whatever it is, an answer; what is accepted reads back the same.
        if let Ok(parsed) = Ticket::parse(&text) {
            prop_assert_eq!(Ticket::parse(&parsed.to_string()), Ok(parsed.clone()));
        }
        let _ = PaymentUri::parse(&text, Network::Sandbox);
    }
}

/// A screenshot of the app showing a ticket (a light window, text-like
/// bars, the code at its rendered size), scaled down as a chat app or a
/// second screen does, softened and saved as JPEG: read back down to half
/// size (4 pixels a module). At 0.4 (3.2 pixels a module, softened) rqrr
/// finds nothing, even from a copy scaled up twice: the UI shows the code
/// large enough that a screenshot keeps 4 or more.
#[test]
fn a_downscaled_screenshot_of_the_app_scans_back() {
    let t = ticket();
    let code = rendered(&t);
    let (w, h) = (1600u32, 1000u32);
    let (ox, oy) = ((w - code.width()) / 2, 180u32);
    let screen = GrayImage::from_fn(w, h, |x, y| {
        let inside = x >= ox && y >= oy && x < ox + code.width() && y < oy + code.height();
        if inside {
            return *code.get_pixel(x - ox, y - oy);
        }
        // A title bar, lines of text and a button around the code.
        let bar = y < 40;
        let text =
            (60..150).contains(&y) && (y / 12) % 2 == 0 && (x / 7) % 3 != 0 && x > 100 && x < 1200;
        let button =
            y > oy + code.height() + 40 && y < oy + code.height() + 90 && x > 600 && x < 1000;
        image::Luma([if bar {
            60
        } else if text {
            40
        } else if button {
            90
        } else {
            246
        }])
    });
    for scale in [0.75, 0.6, 0.5] {
        let (sw, sh) = ((f64::from(w) * scale) as u32, (f64::from(h) * scale) as u32);
        let small = image::imageops::resize(&screen, sw, sh, image::imageops::FilterType::Triangle);
        let soft = image::imageops::blur(&small, 0.7);
        let bytes = jpeg(&rgb(&soft), 70);
        assert_eq!(scanned(&bytes), Ok(t.clone()), "scaled by {scale}");
    }
}
