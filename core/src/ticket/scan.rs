//! A ticket as a QR code, and back: render it for a screen or paper, and
//! find it in a picture a person took or picked, or in camera frames.
//!
//! Both directions go through [`crate::qr`] (sizes capped, decoder behind
//! `catch_unwind`); this module only decides what goes into the code and
//! what a scanned text means.
//!
//! Size: a ticket link is 200–260 bytes (236 for the vector in
//! docs/PROTOCOL.md), a QR code of version 10–11 at error correction M
//! (qrcode's default): 57–61 modules, 65–69 with the 4-module quiet zone on
//! each side. A phone reads a code from about ten times its width, so at
//! arm's length (50 cm) the code should be 5 cm wide or more, about 0.75 mm
//! a module. At [`DEFAULT_MODULE_PX`] (8 pixels) the PNG is 552 pixels
//! square: 14 cm on a 100 dpi monitor, 4.7 cm printed at 300 dpi, 4.7 cm on
//! a phone of 3 pixels a point (about 460 ppi). Smaller than
//! [`MIN_MODULE_PX`], a photo of a screen cannot resolve the modules.

use super::{LinkForm, Ticket, TicketError};
use crate::qr::{self, QrError};

/// Pixels a module in [`Ticket::to_qr_png`] by default; see the module docs.
pub const DEFAULT_MODULE_PX: u32 = 8;
/// The smallest module [`Ticket::to_qr_png`] draws (asked for less, it
/// draws this): a photo of a screen cannot resolve smaller ones.
pub const MIN_MODULE_PX: u32 = 4;
/// The largest module it draws: past this the PNG only grows.
pub const MAX_MODULE_PX: u32 = 40;

/// Why no usable ticket came out of a picture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// No QR code could be read at all (not an image, no code, too blurred).
    #[error(transparent)]
    Picture(#[from] QrError),
    /// The picture holds a ticket, but it has expired. The ticket is given so
    /// that the screen can say whose it was.
    #[error("{error}")]
    Expired {
        ticket: Box<Ticket>,
        error: TicketError,
    },
    /// The picture holds a ticket link that cannot be used (a bad field).
    #[error("the QR code holds a tally ticket that cannot be used: {error}")]
    BadTicket { text: String, error: TicketError },
    /// The picture holds only codes that are not tickets (a payment
    /// address, a web link, …).
    #[error("the QR code holds {text:?}, which is not a tally ticket ({error})")]
    NotATicket { text: String, error: TicketError },
}

impl ScanError {
    /// How telling a refusal is, to keep the best of several codes' ones:
    /// an expired ticket says more than a broken one, which says more than
    /// a code that is no ticket at all.
    fn rank(&self) -> u8 {
        match self {
            ScanError::Picture(_) => 0,
            ScanError::NotATicket { .. } => 1,
            ScanError::BadTicket { .. } => 2,
            ScanError::Expired { .. } => 3,
        }
    }
}

impl Ticket {
    /// The ticket's link (see [`LinkForm`]; [`LinkForm::MyChips`] is the one
    /// for QR codes, which MyCHIPs wallets scan too) as a PNG QR code,
    /// black on white with the standard 4-module quiet zone, `module_px`
    /// pixels a module (clamped to [`MIN_MODULE_PX`]..=[`MAX_MODULE_PX`];
    /// [`DEFAULT_MODULE_PX`] suits most uses).
    pub fn to_qr_png(&self, form: LinkForm, module_px: u32) -> Result<Vec<u8>, QrError> {
        qr::encode_png(
            &self.link(form),
            module_px.clamp(MIN_MODULE_PX, MAX_MODULE_PX),
        )
    }

    /// The ticket's link as an SVG QR code (see [`qr::encode_svg`]): it
    /// scales cleanly, so show it at least 5 cm wide.
    pub fn to_qr_svg(&self, form: LinkForm) -> Result<String, QrError> {
        qr::encode_svg(&self.link(form))
    }

    /// Reads every QR code in a PNG or JPEG picture and returns the first
    /// that is a ticket good at `now` (Unix seconds); see
    /// [`Ticket::from_scanned`] for what is said otherwise.
    pub fn scan_image(bytes: &[u8], now: u64) -> Result<Ticket, ScanError> {
        let texts = qr::decode_image(bytes)?;
        Ticket::from_scanned(&texts, now)
    }

    /// The same for a grayscale camera frame (`width * height` bytes, row by
    /// row, 0 black); see [`qr::decode_luma`].
    pub fn scan_luma(width: u32, height: u32, luma: &[u8], now: u64) -> Result<Ticket, ScanError> {
        let texts = qr::decode_luma(width, height, luma)?;
        Ticket::from_scanned(&texts, now)
    }

    /// The first of several scanned texts (one picture may hold several
    /// codes) that is a ticket good at `now`. If none is, the most telling
    /// refusal: an expired ticket, then a ticket with a bad field, then a
    /// code that is not a ticket. No text at all is [`QrError::NotFound`].
    pub fn from_scanned<S: AsRef<str>>(texts: &[S], now: u64) -> Result<Ticket, ScanError> {
        let mut refusal = ScanError::Picture(QrError::NotFound);
        for text in texts {
            let text = text.as_ref();
            let this = match Ticket::parse(text) {
                Ok(ticket) => match ticket.check(now) {
                    Ok(()) => return Ok(ticket),
                    Err(error) => ScanError::Expired {
                        ticket: Box::new(ticket),
                        error,
                    },
                },
                Err(error) if error.is_ticket_form() => ScanError::BadTicket {
                    text: shorten(text),
                    error,
                },
                Err(error) => ScanError::NotATicket {
                    text: shorten(text),
                    error,
                },
            };
            if this.rank() > refusal.rank() {
                refusal = this;
            }
        }
        Err(refusal)
    }
}

/// At most 60 characters of a scanned text, for a message.
fn shorten(text: &str) -> String {
    super::shorten(text, 60)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::{AgentId, Chad};
    use super::*;

    fn ticket(expires: u64) -> Ticket {
        let chad = Chad::new("suzie", AgentId::from_bytes([7; 32]), "mychips.net", 57423).unwrap();
        Ticket::new("0123456789abcdef", Some(expires), chad).unwrap()
    }

    #[test]
    fn of_several_texts_the_first_good_ticket_wins() {
        let (old, good) = (ticket(100), ticket(2_000));
        let texts = [
            "hello".to_owned(),
            old.to_string(),
            good.link(LinkForm::Notch),
        ];
        assert_eq!(Ticket::from_scanned(&texts, 1_000).unwrap(), good);
    }

    #[test]
    fn the_most_telling_refusal_is_given() {
        let none: [&str; 0] = [];
        assert_eq!(
            Ticket::from_scanned(&none, 0),
            Err(ScanError::Picture(QrError::NotFound))
        );
        let e = Ticket::from_scanned(&["notch:nsb1qqqq", "plain"], 0).unwrap_err();
        assert!(matches!(e, ScanError::NotATicket { .. }), "{e:?}");
        assert!(e.to_string().contains("Notch payment link"), "{e}");
        let broken = "https://mychips.org/invite?chad=%7B%7D";
        let e = Ticket::from_scanned(&["plain", broken], 0).unwrap_err();
        assert!(matches!(e, ScanError::BadTicket { .. }), "{e:?}");
        assert!(e.to_string().contains("no token"), "{e}");
        let old = ticket(100).to_string();
        let e = Ticket::from_scanned(&[old.as_str(), broken, "plain"], 100).unwrap_err();
        match &e {
            ScanError::Expired { ticket: t, .. } => assert_eq!(t.chad().cuid(), "suzie"),
            other => panic!("{other:?}"),
        }
        assert!(
            e.to_string().contains("expired at 1970-01-01T00:01:40Z"),
            "{e}"
        );
    }

    #[test]
    fn module_sizes_are_clamped() {
        let t = ticket(2_000);
        let small = image::load_from_memory(&t.to_qr_png(LinkForm::MyChips, 1).unwrap()).unwrap();
        let default =
            image::load_from_memory(&t.to_qr_png(LinkForm::MyChips, DEFAULT_MODULE_PX).unwrap())
                .unwrap();
        assert_eq!(
            small.width() * DEFAULT_MODULE_PX,
            default.width() * MIN_MODULE_PX
        );
        let svg = t.to_qr_svg(LinkForm::Notch).unwrap();
        assert!(svg.ends_with("</svg>"));
    }
}
