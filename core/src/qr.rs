//! QR codes: decode them from an image file (PNG, JPEG) or a grayscale
//! camera frame, and encode text as a PNG ([`encode_png`]) or an SVG
//! document ([`encode_svg`], what a webview shows without decoding
//! anything).
//!
//! The decoder only returns the texts it read: what they mean (a payment
//! address, a `notch:` link, a MyCHIPs ticket) is for the caller to decide,
//! so the same code serves the Send screen and, later, ticket scanning.
//!
//! Everything here is pure Rust (rqrr, qrcode, and `image` with only its PNG
//! and JPEG decoders) because the core must build for iOS and Android
//! without a C toolchain. Input comes from outside (a file the person picked,
//! a camera), so sizes are capped before anything big is allocated, and the
//! decoder runs behind `catch_unwind`: a malformed picture must give an
//! error, never take the caller (a Tauri command, a mobile binding) down.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::{ImageError, ImageFormat, ImageReader, Limits};

/// The largest image file accepted, in bytes. A phone photo is a few MB;
/// anything much larger is not a picture of a QR code.
pub const MAX_INPUT_BYTES: usize = 32 * 1024 * 1024;
/// The largest decoded image or frame, in pixels. Checked from the header
/// before decoding, so a small file claiming huge dimensions (a
/// decompression bomb) is refused without allocating its pixels.
pub const MAX_PIXELS: u64 = 40_000_000;
/// Above this many pixels on the long side, a downscaled copy is searched
/// first: faster, and it smooths sensor noise in photos. The full-size image
/// is still searched if the copy yields nothing (a small code in a big photo).
const SEARCH_SIDE: u32 = 1600;

/// Why no text came out of a picture.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    #[error("this file is not an image (a PNG or JPEG picture is expected)")]
    NotAnImage,
    #[error("{format} images are not supported; use a PNG or JPEG picture")]
    UnsupportedFormat { format: String },
    #[error("the image is too large ({actual}); the limit is {limit}")]
    TooLarge { actual: String, limit: String },
    #[error("the image could not be read: {0}")]
    Corrupt(String),
    #[error("no QR code was found in this image")]
    NotFound,
    #[error("a QR code was found but could not be read ({0}); try a sharper, larger picture")]
    Unreadable(String),
    #[error("the camera frame is {width}×{height} pixels but has {got} bytes; expected {expected}")]
    FrameSize {
        width: u32,
        height: u32,
        expected: u64,
        got: usize,
    },
    #[error("the QR code decoder failed on this image")]
    Decoder,
    #[error("cannot make a QR code: {0}")]
    Encode(String),
}

/// Reads every QR code in a PNG or JPEG file; returns their texts, in the
/// order found, without duplicates.
pub fn decode_image(bytes: &[u8]) -> Result<Vec<String>, QrError> {
    if bytes.is_empty() {
        return Err(QrError::NotAnImage);
    }
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(QrError::TooLarge {
            actual: format!("{} MB", bytes.len() / 1_000_000),
            limit: format!("{} MB", MAX_INPUT_BYTES / 1_000_000),
        });
    }
    let reader = || -> Result<ImageReader<Cursor<&[u8]>>, QrError> {
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| QrError::Corrupt(e.to_string()))?;
        match reader.format() {
            None => Err(QrError::NotAnImage),
            Some(ImageFormat::Png | ImageFormat::Jpeg) => Ok(reader),
            Some(other) => Err(QrError::UnsupportedFormat {
                format: format!("{other:?}").to_uppercase(),
            }),
        }
    };
    // The header alone first: refuse huge dimensions before decoding.
    let (width, height) = reader()?.into_dimensions().map_err(image_error)?;
    check_pixels(width, height)?;

    let mut decoding = reader()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    decoding.limits(limits);
    let picture = decoding.decode().map_err(image_error)?;
    let luma = if picture.color().has_alpha() {
        // Transparent pixels often store black: put the picture on white,
        // as a viewer would show it, or the whole background reads as dark.
        let la = picture.into_luma_alpha8();
        let (w, h) = la.dimensions();
        let pixels = la
            .pixels()
            .map(|p| {
                let [l, a] = p.0;
                let (l, a) = (u32::from(l), u32::from(a));
                ((l * a + 255 * (255 - a)) / 255) as u8
            })
            .collect();
        image::GrayImage::from_raw(w, h, pixels).ok_or(QrError::Decoder)?
    } else {
        picture.into_luma8()
    };

    if luma.width().max(luma.height()) > SEARCH_SIDE {
        let scale = f64::from(SEARCH_SIDE) / f64::from(luma.width().max(luma.height()));
        let small = image::imageops::resize(
            &luma,
            ((f64::from(luma.width()) * scale) as u32).max(1),
            ((f64::from(luma.height()) * scale) as u32).max(1),
            image::imageops::FilterType::Triangle,
        );
        if let Ok(texts) = search(small.width(), small.height(), small.as_raw(), Effort::File) {
            return Ok(texts);
        }
    }
    search(luma.width(), luma.height(), luma.as_raw(), Effort::File)
}

/// Reads every QR code in a grayscale camera frame: `luma` holds
/// `width * height` bytes, row by row, 0 black to 255 white.
pub fn decode_luma(width: u32, height: u32, luma: &[u8]) -> Result<Vec<String>, QrError> {
    let expected = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 || expected != luma.len() as u64 {
        return Err(QrError::FrameSize {
            width,
            height,
            expected,
            got: luma.len(),
        });
    }
    check_pixels(width, height)?;
    // Frames come several times a second and most hold no code: fewer
    // passes than a file gets (see `Effort::Frame`).
    search(width, height, luma, Effort::Frame)
}

/// `text` as a QR code in a PNG: `module_px` pixels per module, black on
/// white, with the standard 4-module quiet zone.
pub fn encode_png(text: &str, module_px: u32) -> Result<Vec<u8>, QrError> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| QrError::Encode(e.to_string()))?;
    let modules = u32::try_from(code.width()).map_err(|e| QrError::Encode(e.to_string()))?;
    let colors = code.to_colors();
    let px = module_px.max(1);
    let side = (modules + 8) * px;
    let picture = image::GrayImage::from_fn(side, side, |x, y| {
        let (mx, my) = ((x / px).wrapping_sub(4), (y / px).wrapping_sub(4));
        let dark = mx < modules
            && my < modules
            && colors.get((my * modules + mx) as usize) == Some(&qrcode::Color::Dark);
        image::Luma([if dark { 0 } else { 255 }])
    });
    let mut png = Vec::new();
    picture
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| QrError::Encode(e.to_string()))?;
    Ok(png)
}

/// The smallest side of an SVG from [`encode_svg`], in pixels (its
/// `width`/`height`; it scales cleanly: one unit of its `viewBox` is one
/// module).
pub const SVG_MIN_SIDE: u32 = 220;

/// `text` as a QR code in an SVG document: black modules on white, the
/// standard 4-module quiet zone, at least [`SVG_MIN_SIDE`] pixels square,
/// all dark modules in one `<path>`.
pub fn encode_svg(text: &str) -> Result<String, QrError> {
    use std::fmt::Write as _;
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| QrError::Encode(e.to_string()))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = modules + 8;
    let side_u32 = u32::try_from(side).map_err(|e| QrError::Encode(e.to_string()))?;
    let px = SVG_MIN_SIDE.div_ceil(side_u32) * side_u32;
    let mut path = String::with_capacity(colors.len() * 4);
    for (i, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (x, y) = (i % modules + 4, i / modules + 4);
            let _ = write!(path, "M{x} {y}h1v1h-1z");
        }
    }
    Ok(format!(
        "<?xml version=\"1.0\" standalone=\"yes\"?>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{px}\" height=\"{px}\" \
         viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\">\
         <rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/>\
         <path fill=\"#000\" d=\"{path}\"/></svg>"
    ))
}

fn check_pixels(width: u32, height: u32) -> Result<(), QrError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(QrError::TooLarge {
            actual: format!("{width}×{height} pixels"),
            limit: format!("{} megapixels", MAX_PIXELS / 1_000_000),
        });
    }
    Ok(())
}

fn image_error(e: ImageError) -> QrError {
    match e {
        ImageError::Limits(l) => QrError::TooLarge {
            actual: l.to_string(),
            limit: format!("{} megapixels", MAX_PIXELS / 1_000_000),
        },
        ImageError::Unsupported(u) => QrError::UnsupportedFormat {
            format: u.to_string(),
        },
        other => QrError::Corrupt(other.to_string()),
    }
}

/// How hard [`search`] looks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Effort {
    /// A file a person picked: every pass below, texts of all of them.
    File,
    /// A camera frame: several come a second and most hold no code, and the
    /// next one sees the code again from a slightly different place; so one
    /// pass, and one stretched pass only when nothing was found.
    Frame,
}

/// The stretches of the extra passes (width factor, height factor).
///
/// rqrr's detector (a port of quirc) finds a code or misses it depending on
/// the exact pixels: its finder-pattern grouping and timing-pattern count
/// work from each finder's own small perspective, so a code seen at an
/// angle, turned, or blurred by a camera is sometimes missed, and the same
/// picture 15% narrower or shorter is read. Searching such copies too is
/// what makes photos of screens read reliably (see
/// core/tests/ticket_scan.rs); it costs a pass per stretch.
const STRETCHES: [(f64, f64); 2] = [(0.85, 1.0), (1.0, 0.85)];

/// Finds and decodes the codes in a grayscale picture whose size was
/// checked: the picture as it is and slightly stretched copies (see
/// [`STRETCHES`]), the texts of every pass together; then, if no code was
/// read, light and dark swapped (light-on-dark codes, e.g. dark-mode
/// screens). Mirrored codes (a selfie camera's frame) need no pass of their
/// own: rqrr reads them as they are.
fn search(width: u32, height: u32, luma: &[u8], effort: Effort) -> Result<Vec<String>, QrError> {
    let mut found = Found::default();
    found.add(search_once(width, height, luma, false)?);
    for (i, (sx, sy)) in STRETCHES.into_iter().enumerate() {
        if effort == Effort::Frame && (i > 0 || !found.texts.is_empty()) {
            break;
        }
        let stretched = stretch(width, height, luma, sx, sy)?;
        let (w, h) = stretched.dimensions();
        found.add(search_once(w, h, stretched.as_raw(), false)?);
    }
    // The light-on-dark pass is for when the normal ones read nothing.
    if effort == Effort::File && found.texts.is_empty() {
        found.add(search_once(width, height, luma, true)?);
    }
    match (found.texts.is_empty(), found.failure) {
        (false, _) => Ok(found.texts),
        (true, Some(reason)) => Err(QrError::Unreadable(reason)),
        (true, None) => Err(QrError::NotFound),
    }
}

/// What the passes of one search read, together.
#[derive(Default)]
struct Found {
    /// In the order found, without duplicates.
    texts: Vec<String>,
    /// Why the last code-shaped thing that was not read was not.
    failure: Option<String>,
}

impl Found {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Found(texts) => {
                for text in texts {
                    if !self.texts.contains(&text) {
                        self.texts.push(text);
                    }
                }
            }
            Outcome::Unreadable(reason) => self.failure = Some(reason),
            Outcome::Nothing => {}
        }
    }
}

/// A copy of a grey picture scaled by `sx` across and `sy` down.
fn stretch(
    width: u32,
    height: u32,
    luma: &[u8],
    sx: f64,
    sy: f64,
) -> Result<image::GrayImage, QrError> {
    let view: image::ImageBuffer<image::Luma<u8>, &[u8]> =
        image::ImageBuffer::from_raw(width, height, luma).ok_or(QrError::Decoder)?;
    let w = ((f64::from(width) * sx) as u32).max(1);
    let h = ((f64::from(height) * sy) as u32).max(1);
    Ok(image::imageops::resize(
        &view,
        w,
        h,
        image::imageops::FilterType::Triangle,
    ))
}

enum Outcome {
    Found(Vec<String>),
    /// Something shaped like a QR code, but its data would not decode.
    Unreadable(String),
    Nothing,
}

fn search_once(width: u32, height: u32, luma: &[u8], inverted: bool) -> Result<Outcome, QrError> {
    let (w, h) = (width as usize, height as usize);
    // rqrr is not known to panic on valid sizes, but it parses untrusted
    // pictures: a panic becomes an error instead of crossing the IPC.
    catch_unwind(AssertUnwindSafe(|| {
        let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
            let v = luma.get(y * w + x).copied().unwrap_or(255);
            if inverted { 255 - v } else { v }
        });
        let mut texts: Vec<String> = Vec::new();
        let mut failure = None;
        for grid in prepared.detect_grids() {
            match grid.decode() {
                Ok((_, text)) => {
                    if !texts.contains(&text) {
                        texts.push(text);
                    }
                }
                Err(e) => failure = Some(e.to_string()),
            }
        }
        match (texts.is_empty(), failure) {
            (false, _) => Outcome::Found(texts),
            (true, Some(reason)) => Outcome::Unreadable(reason),
            (true, None) => Outcome::Nothing,
        }
    }))
    .map_err(|_| QrError::Decoder)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    // Any text will do: the decoder does not know what an address is.
    const ADDRESS: &str = "nsb1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0s5zytzg";

    fn qr_gray(text: &str, module_px: u32) -> image::GrayImage {
        image::load_from_memory(&encode_png(text, module_px).unwrap())
            .unwrap()
            .into_luma8()
    }

    fn encoded(picture: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        picture
            .write_to(&mut Cursor::new(&mut out), format)
            .unwrap();
        out
    }

    #[test]
    fn a_png_round_trips() {
        let png = encode_png(ADDRESS, 6).unwrap();
        assert_eq!(decode_image(&png).unwrap(), vec![ADDRESS.to_owned()]);
    }

    #[test]
    fn an_svg_has_every_module_and_a_quiet_zone() {
        let svg = encode_svg(ADDRESS).unwrap();
        assert!(svg.starts_with("<?xml"), "{svg}");
        assert!(
            svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"));
        let code = qrcode::QrCode::new(ADDRESS.as_bytes()).unwrap();
        let side = code.width() + 8;
        assert!(
            svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")),
            "{svg}"
        );
        let dark = code
            .to_colors()
            .iter()
            .filter(|c| **c == qrcode::Color::Dark)
            .count();
        assert_eq!(svg.matches("h1v1h-1z").count(), dark);
        // The top-left finder pattern starts after the quiet zone.
        assert!(svg.contains("d=\"M4 4h1v1h-1z"), "{svg}");
        let width: u32 = svg
            .split("width=\"")
            .nth(1)
            .and_then(|w| w.split('"').next())
            .and_then(|w| w.parse().ok())
            .unwrap();
        assert!(width >= SVG_MIN_SIDE, "{width}");
        // Too much for any QR code: an error, not a panic.
        assert!(matches!(
            encode_svg(&"x".repeat(8000)),
            Err(QrError::Encode(_))
        ));
    }

    #[test]
    fn a_jpeg_round_trips() {
        let picture = image::DynamicImage::ImageLuma8(qr_gray(ADDRESS, 5)).into_rgb8();
        let jpeg = encoded(&picture.into(), ImageFormat::Jpeg);
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "really a JPEG");
        assert_eq!(decode_image(&jpeg).unwrap(), vec![ADDRESS.to_owned()]);
    }

    /// A deterministic pseudo-random sequence (no rand dependency).
    fn noise(seed: &mut u64) -> i32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed % 61) as i32 - 30
    }

    #[test]
    fn a_photo_like_picture_is_read() {
        // The code off-centre on a grey, uneven background, scaled by a
        // non-integer factor (soft edges), low contrast and sensor noise,
        // saved as a JPEG like a phone would.
        let code = qr_gray(ADDRESS, 4);
        let side = (f64::from(code.width()) * 1.7) as u32;
        let code =
            image::imageops::resize(&code, side, side, image::imageops::FilterType::Triangle);
        let (w, h) = (side + 420, side + 260);
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let photo = image::RgbImage::from_fn(w, h, |x, y| {
            let inside = (150..150 + side).contains(&x) && (90..90 + side).contains(&y);
            let base = if inside {
                // Black -> 40, white -> 210: a printed code under room light.
                40 + i32::from(code.get_pixel(x - 150, y - 90).0[0]) * 170 / 255
            } else {
                120 + (x as i32 / 20) // a gradient, like a table top
            };
            let v = (base + noise(&mut seed)).clamp(0, 255) as u8;
            image::Rgb([v, v.saturating_add(4), v.saturating_sub(6)])
        });
        let jpeg = encoded(&photo.into(), ImageFormat::Jpeg);
        assert_eq!(decode_image(&jpeg).unwrap(), vec![ADDRESS.to_owned()]);
    }

    #[test]
    fn a_big_photo_is_read_through_the_downscaled_copy() {
        let code = qr_gray("notch:nsb1example?amount=2", 18);
        let (w, h) = (2600, 1900);
        let picture = image::GrayImage::from_fn(w, h, |x, y| {
            let (cx, cy) = (x.wrapping_sub(700), y.wrapping_sub(500));
            if cx < code.width() && cy < code.height() {
                *code.get_pixel(cx, cy)
            } else {
                image::Luma([235])
            }
        });
        let png = encoded(&picture.into(), ImageFormat::Png);
        assert_eq!(
            decode_image(&png).unwrap(),
            vec!["notch:nsb1example?amount=2".to_owned()]
        );
    }

    #[test]
    fn a_transparent_png_is_read_on_white() {
        let code = qr_gray(ADDRESS, 5);
        // Black modules on a fully transparent (stored as black) background.
        let rgba = image::RgbaImage::from_fn(code.width(), code.height(), |x, y| {
            if code.get_pixel(x, y).0[0] < 128 {
                image::Rgba([0, 0, 0, 255])
            } else {
                image::Rgba([0, 0, 0, 0])
            }
        });
        let png = encoded(&rgba.into(), ImageFormat::Png);
        assert_eq!(decode_image(&png).unwrap(), vec![ADDRESS.to_owned()]);
    }

    #[test]
    fn a_light_on_dark_code_is_read() {
        let mut code = qr_gray(ADDRESS, 5);
        image::imageops::invert(&mut code);
        let png = encoded(&code.into(), ImageFormat::Png);
        assert_eq!(decode_image(&png).unwrap(), vec![ADDRESS.to_owned()]);
    }

    #[test]
    fn a_mirrored_code_is_read() {
        // As a selfie camera shows it: rqrr reads it without a pass of its
        // own.
        let code = image::imageops::flip_horizontal(&qr_gray(ADDRESS, 5));
        let png = encoded(&code.into(), ImageFormat::Png);
        assert_eq!(decode_image(&png).unwrap(), vec![ADDRESS.to_owned()]);
    }

    #[test]
    fn garbage_is_not_an_image() {
        assert_eq!(decode_image(b""), Err(QrError::NotAnImage));
        assert_eq!(
            decode_image(b"this is a text file, not a picture"),
            Err(QrError::NotAnImage)
        );
        // A PNG signature followed by junk: an image that cannot be read.
        let mut broken = b"\x89PNG\r\n\x1a\n".to_vec();
        broken.extend_from_slice(&[7u8; 200]);
        assert!(
            matches!(decode_image(&broken), Err(QrError::Corrupt(_))),
            "{:?}",
            decode_image(&broken)
        );
        // A truncated real PNG.
        let png = encode_png(ADDRESS, 4).unwrap();
        assert!(matches!(
            decode_image(&png[..png.len() / 2]),
            Err(QrError::Corrupt(_))
        ));
    }

    #[test]
    fn other_formats_are_refused_by_name() {
        let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
        let e = decode_image(gif).unwrap_err();
        assert!(
            matches!(&e, QrError::UnsupportedFormat { format } if format.contains("GIF")),
            "{e:?}"
        );
        assert!(e.to_string().contains("PNG or JPEG"), "{e}");
    }

    #[test]
    fn an_image_without_a_code_says_so() {
        let mut seed = 7_u64;
        let picture = image::GrayImage::from_fn(320, 240, |x, _| {
            image::Luma([(x as i32 / 2 + noise(&mut seed)).clamp(0, 255) as u8])
        });
        let png = encoded(&picture.into(), ImageFormat::Png);
        assert_eq!(decode_image(&png), Err(QrError::NotFound));
        assert!(QrError::NotFound.to_string().contains("no QR code"));
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_decoding() {
        // A tiny PNG that claims 50000×50000 pixels: its header is read,
        // its pixels never allocated.
        let mut png = Vec::new();
        png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(b"IHDR");
        ihdr.extend_from_slice(&50_000u32.to_be_bytes());
        ihdr.extend_from_slice(&50_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit gray
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        // The decoder wants to see the start of the pixel data (an empty
        // zlib stream here) before it reports the dimensions.
        let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01";
        png.extend_from_slice(&8u32.to_be_bytes());
        png.extend_from_slice(idat);
        png.extend_from_slice(&crc32(idat).to_be_bytes());
        png.extend_from_slice(&[0, 0, 0, 0]);
        png.extend_from_slice(b"IEND");
        png.extend_from_slice(&crc32(b"IEND").to_be_bytes());
        let e = decode_image(&png).unwrap_err();
        assert!(matches!(e, QrError::TooLarge { .. }), "{e:?}");
        assert!(e.to_string().contains("50000×50000"), "{e}");

        let big = vec![0u8; MAX_INPUT_BYTES + 1];
        assert!(matches!(decode_image(&big), Err(QrError::TooLarge { .. })));
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFF_u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn a_camera_frame_is_read() {
        let code = qr_gray(ADDRESS, 4);
        let (w, h) = (640u32, 480u32);
        let frame = image::GrayImage::from_fn(w, h, |x, y| {
            let (cx, cy) = (x.wrapping_sub(120), y.wrapping_sub(60));
            if cx < code.width() && cy < code.height() {
                *code.get_pixel(cx, cy)
            } else {
                image::Luma([200])
            }
        });
        assert_eq!(
            decode_luma(w, h, frame.as_raw()).unwrap(),
            vec![ADDRESS.to_owned()]
        );
        let empty = vec![128u8; (w * h) as usize];
        assert_eq!(decode_luma(w, h, &empty), Err(QrError::NotFound));
    }

    #[test]
    fn a_frame_of_the_wrong_size_is_refused() {
        let e = decode_luma(640, 480, &[0u8; 1000]).unwrap_err();
        assert_eq!(
            e,
            QrError::FrameSize {
                width: 640,
                height: 480,
                expected: 307_200,
                got: 1000
            }
        );
        assert!(e.to_string().contains("640×480"), "{e}");
        assert!(matches!(
            decode_luma(0, 10, &[]),
            Err(QrError::FrameSize { .. })
        ));
        // Dimensions whose product overflows 32 bits do not wrap around.
        assert!(matches!(
            decode_luma(u32::MAX, 2, &[0u8; 2]),
            Err(QrError::FrameSize { .. })
        ));
    }
}
