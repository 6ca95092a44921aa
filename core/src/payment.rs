//! What a person asks to pay, before it is a transaction: which asset and
//! how much ([`Wallet::check_amount`], checked as they type), and whom
//! ([`PaymentUri`]: a bare address, or a `notch:` link read from a QR code
//! or pasted).
//!
//! Both are checked against what the wallet trusts: the asset metadata it
//! pinned from its gateway, and its own network. Nothing here talks to the
//! gateway.

use std::fmt;

use notch_protocol::{Address, AddressError, Network};
use serde::Serialize;

use crate::amount::{AmountError, format_amount, parse_amount};
use crate::wallet::{AssetMeta, Wallet};

/// Why an asset or an amount was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error(
        "the wallet has not synced with its gateway yet, so it does not know the assets; sync first"
    )]
    NotSynced,
    #[error("unknown asset {asset:?}; the gateway knows {known}")]
    UnknownAsset { asset: String, known: String },
    #[error(transparent)]
    BadAmount(#[from] AmountError),
}

/// An amount as it will be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedAmount {
    /// Asset id, hex.
    pub asset: String,
    pub symbol: String,
    pub decimals: u8,
    /// Base units.
    pub units: u64,
    /// Normalized decimal form (`"1.5"` of a 2-decimal asset is `"1.50"`).
    pub display: String,
}

/// The asset named `asset` (symbol in any case, or id hex) among `assets`;
/// the native asset when `asset` is `None` or blank.
pub fn find_asset<'a>(
    assets: &'a [AssetMeta],
    asset: Option<&str>,
) -> Result<&'a AssetMeta, PaymentError> {
    if assets.is_empty() {
        return Err(PaymentError::NotSynced);
    }
    let wanted = asset.map(str::trim).filter(|a| !a.is_empty());
    let found = match wanted {
        None => assets.iter().find(|a| a.native),
        Some(name) => assets
            .iter()
            .find(|a| a.symbol.eq_ignore_ascii_case(name) || a.id.eq_ignore_ascii_case(name)),
    };
    found.ok_or_else(|| PaymentError::UnknownAsset {
        asset: wanted.unwrap_or("(the native asset)").to_owned(),
        known: assets
            .iter()
            .map(|a| a.symbol.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// `amount` of `asset` (see [`find_asset`]) checked against the asset's
/// decimals: no sign, no exponent, not zero, not too large.
pub fn check_amount(
    assets: &[AssetMeta],
    asset: Option<&str>,
    amount: &str,
) -> Result<CheckedAmount, PaymentError> {
    let meta = find_asset(assets, asset)?;
    let units = parse_amount(amount, meta.decimals, &meta.symbol)?;
    Ok(CheckedAmount {
        asset: meta.id.clone(),
        symbol: meta.symbol.clone(),
        decimals: meta.decimals,
        units,
        display: format_amount(units, meta.decimals),
    })
}

impl Wallet {
    /// The asset `asset` names (symbol or id; the native asset if `None`),
    /// from the metadata pinned at the first sync.
    pub fn find_asset(&self, asset: Option<&str>) -> Result<AssetMeta, PaymentError> {
        find_asset(&self.assets(), asset).cloned()
    }

    /// Checks an amount of an asset as a person typed it, against the
    /// pinned metadata ([`check_amount`]).
    pub fn check_amount(
        &self,
        asset: Option<&str>,
        amount: &str,
    ) -> Result<CheckedAmount, PaymentError> {
        check_amount(&self.assets(), asset, amount)
    }
}

/// The scheme of Notch payment links.
pub const SCHEME: &str = "notch";
/// The longest text taken for a payment link (a QR code holds at most
/// about 4,000 characters; a link is far shorter).
pub const MAX_URI_LEN: usize = 2048;
/// The longest memo accepted, in characters.
pub const MAX_MEMO_CHARS: usize = 256;
/// The longest asset name (a symbol, or an id of 64 hex digits).
const MAX_ASSET_LEN: usize = 64;

/// Why a text is not a payment address or link of the wallet's network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("there is no address: the text is empty")]
    Empty,
    #[error("the text is too long for a payment link ({len} characters; at most {max})")]
    TooLong { len: usize, max: usize },
    #[error("a {scheme:?} link is not a Notch payment (expected an address or notch:ADDRESS)")]
    OtherScheme { scheme: String },
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("the link's {part} is not valid percent-encoded UTF-8")]
    BadEncoding { part: String },
    #[error(
        "the link's amount {amount:?} is not an amount: use digits with an optional decimal point, e.g. 1.25"
    )]
    BadAmount { amount: String },
    #[error("the link's asset {asset:?} is not an asset symbol or id")]
    BadAsset { asset: String },
    #[error("the link's memo is not acceptable: {reason}")]
    BadMemo { reason: String },
    #[error("the link gives {name:?} more than once")]
    Duplicate { name: String },
    #[error("the link requires {name:?}, which this version of Notch does not understand")]
    Unsupported { name: String },
    #[error(
        "this is a tally ticket (an invitation to open a tally), not a payment; open it from Tallies"
    )]
    TallyTicket,
}

impl UriError {
    /// Whether the text is an address, but of another network.
    pub fn is_wrong_network(&self) -> bool {
        matches!(self, UriError::Address(AddressError::WrongNetwork { .. }))
    }
}

/// A payment request: `ADDRESS`, `notch:ADDRESS` or
/// `notch:ADDRESS?amount=1.25&asset=EURT&memo=Lunch`.
///
/// The address is checked (form, checksum, network) and canonical (lower
/// case). The amount is checked for its form only: whether it fits the
/// asset's decimals is for [`Wallet::check_amount`], which knows them.
/// Unknown parameters are ignored, except those starting with `req-`,
/// which a payer must understand (as in BIP 21) and so are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentUri {
    pub address: String,
    pub amount: Option<String>,
    /// Symbol or id hex, as the link gives it.
    pub asset: Option<String>,
    pub memo: Option<String>,
}

impl PaymentUri {
    /// Parses a text a person pasted or a QR code held. Never panics.
    pub fn parse(text: &str, network: Network) -> Result<PaymentUri, UriError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(UriError::Empty);
        }
        let len = text.chars().count();
        if len > MAX_URI_LEN {
            return Err(UriError::TooLong {
                len,
                max: MAX_URI_LEN,
            });
        }
        // A tally ticket (`notch:ticket?…`, a MyCHIPs invitation) is not a
        // payment, whatever else is wrong with it: say so rather than "bad
        // address".
        if crate::ticket::looks_like_ticket(text) {
            return Err(UriError::TallyTicket);
        }
        let (address, query) = match text.split_once(':') {
            None => (text, None),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(SCHEME) => {
                // `notch://ADDRESS` too; a fragment means nothing here.
                let rest = rest.trim_start_matches('/');
                let rest = rest.split('#').next().unwrap_or_default();
                match rest.split_once('?') {
                    Some((a, q)) => (a, Some(q)),
                    None => (rest, None),
                }
            }
            Some((scheme, _)) if looks_like_scheme(scheme) => {
                return Err(UriError::OtherScheme {
                    scheme: scheme.to_ascii_lowercase(),
                });
            }
            // Not a link: let the address parser say what is wrong.
            Some(_) => (text, None),
        };
        let address = percent_decode(address.trim(), "address")?;
        let address = Address::parse(&address, network)?.encode();
        let mut uri = PaymentUri {
            address,
            amount: None,
            asset: None,
            memo: None,
        };
        for pair in query.unwrap_or_default().split('&') {
            if pair.is_empty() {
                continue;
            }
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(raw_name, "parameter name")?.to_ascii_lowercase();
            let value = percent_decode(raw_value, &format!("{name:?} parameter"))?;
            let slot = match name.as_str() {
                "amount" => &mut uri.amount,
                "asset" => &mut uri.asset,
                "memo" => &mut uri.memo,
                other if other.starts_with("req-") => {
                    return Err(UriError::Unsupported { name });
                }
                _ => continue,
            };
            if slot.is_some() {
                return Err(UriError::Duplicate { name });
            }
            *slot = Some(value);
        }
        if let Some(amount) = &uri.amount
            && !is_decimal(amount)
        {
            return Err(UriError::BadAmount {
                amount: amount.clone(),
            });
        }
        if let Some(asset) = &uri.asset
            && (asset.is_empty()
                || asset.len() > MAX_ASSET_LEN
                || !asset.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(UriError::BadAsset {
                asset: asset.clone(),
            });
        }
        if let Some(memo) = &uri.memo {
            if memo.chars().count() > MAX_MEMO_CHARS {
                return Err(UriError::BadMemo {
                    reason: format!("longer than {MAX_MEMO_CHARS} characters"),
                });
            }
            if memo.chars().any(char::is_control) {
                return Err(UriError::BadMemo {
                    reason: "it holds control characters".into(),
                });
            }
        }
        Ok(uri)
    }

    /// The first of several scanned texts (one picture may hold several
    /// codes) that is a payment of `network`. If none is, the most telling
    /// refusal: another network's address says more than a text that is no
    /// address at all. `None` if there is no text.
    pub fn from_scanned<S: AsRef<str>>(
        texts: &[S],
        network: Network,
    ) -> Option<Result<PaymentUri, ScanRefusal>> {
        let mut refusal: Option<ScanRefusal> = None;
        for text in texts {
            let text = text.as_ref();
            match PaymentUri::parse(text, network) {
                Ok(uri) => return Some(Ok(uri)),
                Err(error) => {
                    let better = match &refusal {
                        None => true,
                        Some(r) => !r.error.is_wrong_network() && error.is_wrong_network(),
                    };
                    if better {
                        refusal = Some(ScanRefusal {
                            text: shorten(text),
                            network,
                            error,
                        });
                    }
                }
            }
        }
        refusal.map(Err)
    }
}

/// Writes the link form, `notch:ADDRESS[?amount=…&asset=…&memo=…]`, which
/// [`PaymentUri::parse`] reads back.
impl fmt::Display for PaymentUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}:{}", self.address)?;
        let mut sep = '?';
        for (name, value) in [
            ("amount", &self.amount),
            ("asset", &self.asset),
            ("memo", &self.memo),
        ] {
            if let Some(value) = value {
                write!(f, "{sep}{name}={}", percent_encode(value))?;
                sep = '&';
            }
        }
        Ok(())
    }
}

/// A scanned text that is not a payment of the wallet's network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the QR code holds {text:?}, which is not a Notch address on {network}: {error}")]
pub struct ScanRefusal {
    /// At most 60 characters of the text.
    pub text: String,
    pub network: Network,
    pub error: UriError,
}

/// At most 60 characters of a text, for a message.
fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(60).collect();
    if text.chars().count() > 60 {
        short.push('…');
    }
    short
}

/// RFC 3986: a letter, then letters, digits, `+`, `-`, `.`.
fn looks_like_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Digits with at most one decimal point, at least one digit.
fn is_decimal(s: &str) -> bool {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    !(whole.is_empty() && frac.is_empty())
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn percent_decode(s: &str, part: &str) -> Result<String, UriError> {
    let bad = || UriError::BadEncoding {
        part: part.to_owned(),
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use notch_protocol::PublicKey;

    fn address(network: Network) -> String {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes();
        Address::new(network, PublicKey(key)).encode()
    }

    fn assets() -> Vec<AssetMeta> {
        vec![
            AssetMeta {
                id: "11".repeat(32),
                symbol: "NOTE".into(),
                name: "Note".into(),
                decimals: 8,
                native: true,
            },
            AssetMeta {
                id: "33".repeat(32),
                symbol: "EURT".into(),
                name: "Euro token".into(),
                decimals: 2,
                native: false,
            },
        ]
    }

    #[test]
    fn amounts_are_checked_against_the_assets_decimals() {
        let a = assets();
        let ok = check_amount(&a, Some("eurt"), "1.5").unwrap();
        assert_eq!(
            ok,
            CheckedAmount {
                asset: "33".repeat(32),
                symbol: "EURT".into(),
                decimals: 2,
                units: 150,
                display: "1.50".into(),
            }
        );
        // By id, and the native asset by default (or blank).
        assert_eq!(
            check_amount(&a, Some(&"33".repeat(32).to_uppercase()), "2")
                .unwrap()
                .units,
            200
        );
        assert_eq!(
            check_amount(&a, None, "0.00000001").unwrap().display,
            "0.00000001"
        );
        assert_eq!(check_amount(&a, Some("  "), "1").unwrap().symbol, "NOTE");
        let e = check_amount(&a, Some("EURT"), "1.234").unwrap_err();
        assert!(matches!(e, PaymentError::BadAmount(_)));
        assert!(e.to_string().contains("2 decimal places"), "{e}");
        assert!(matches!(
            check_amount(&a, Some("EURT"), "-1"),
            Err(PaymentError::BadAmount(AmountError::NotANumber { .. }))
        ));
        let e = check_amount(&a, Some("XYZ"), "1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown asset \"XYZ\"; the gateway knows NOTE, EURT"
        );
        assert_eq!(check_amount(&[], None, "1"), Err(PaymentError::NotSynced));
    }

    #[test]
    fn a_bare_address_and_a_link_give_the_address() {
        let a = address(Network::Sandbox);
        let want = PaymentUri {
            address: a.clone(),
            amount: None,
            asset: None,
            memo: None,
        };
        assert_eq!(PaymentUri::parse(&a, Network::Sandbox).unwrap(), want);
        assert_eq!(
            PaymentUri::parse(&format!("  {}\n", a.to_uppercase()), Network::Sandbox).unwrap(),
            want
        );
        assert_eq!(
            PaymentUri::parse(&format!("notch:{a}"), Network::Sandbox).unwrap(),
            want
        );
        assert_eq!(
            PaymentUri::parse(&format!("NOTCH://{a}#x"), Network::Sandbox).unwrap(),
            want
        );
        let uri = PaymentUri::parse(
            &format!("notch:{a}?amount=1.25&asset=EURT&memo=Lunch%20%26%20co&label=x"),
            Network::Sandbox,
        )
        .unwrap();
        assert_eq!(uri.amount.as_deref(), Some("1.25"));
        assert_eq!(uri.asset.as_deref(), Some("EURT"));
        assert_eq!(uri.memo.as_deref(), Some("Lunch & co"));
        // Written back, it reads the same.
        let text = uri.to_string();
        assert_eq!(
            text,
            format!("notch:{a}?amount=1.25&asset=EURT&memo=Lunch%20%26%20co")
        );
        assert_eq!(PaymentUri::parse(&text, Network::Sandbox).unwrap(), uri);
        assert_eq!(want.to_string(), format!("notch:{a}"));
    }

    #[test]
    fn other_networks_are_refused_clearly() {
        let main = address(Network::Main);
        for text in [main.clone(), format!("notch:{main}?amount=1")] {
            let e = PaymentUri::parse(&text, Network::Sandbox).unwrap_err();
            assert!(e.is_wrong_network(), "{e:?}");
            assert_eq!(
                e.to_string(),
                "this is a main address, but this wallet is on sandbox"
            );
        }
    }

    #[test]
    fn malformed_input_is_refused_with_its_reason() {
        let a = address(Network::Sandbox);
        let n = Network::Sandbox;
        let err = |t: &str| PaymentUri::parse(t, n).unwrap_err();
        assert_eq!(err(""), UriError::Empty);
        assert_eq!(err("   "), UriError::Empty);
        assert!(matches!(
            err("notch:"),
            UriError::Address(AddressError::Empty)
        ));
        assert!(matches!(err("nsb1notanaddress"), UriError::Address(_)));
        assert_eq!(
            err("https://example.com/pay"),
            UriError::OtherScheme {
                scheme: "https".into()
            }
        );
        assert!(matches!(err("bitcoin:1abc"), UriError::OtherScheme { .. }));
        assert!(matches!(
            err(&format!("notch:{a}?amount=-1")),
            UriError::BadAmount { .. }
        ));
        for bad in ["1e3", "1,5", "", ".", "1.2.3", "%2B1"] {
            assert!(
                matches!(
                    err(&format!("notch:{a}?amount={bad}")),
                    UriError::BadAmount { .. }
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            err(&format!("notch:{a}?asset=EU%20RT")),
            UriError::BadAsset { .. }
        ));
        assert!(matches!(
            err(&format!("notch:{a}?amount=1&amount=2")),
            UriError::Duplicate { .. }
        ));
        assert!(matches!(
            err(&format!("notch:{a}?req-expiry=5")),
            UriError::Unsupported { .. }
        ));
        assert!(matches!(
            err(&format!("notch:{a}?memo=%ZZ")),
            UriError::BadEncoding { .. }
        ));
        assert!(matches!(
            err(&format!("notch:{a}?memo=%FF")),
            UriError::BadEncoding { .. }
        ));
        assert!(matches!(
            err(&format!("notch:{a}?memo=%")),
            UriError::BadEncoding { .. }
        ));
        assert!(matches!(
            err(&format!("notch:{a}?memo=a%0Ab")),
            UriError::BadMemo { .. }
        ));
        assert!(matches!(
            err(&format!("notch:{a}?memo={}", "m".repeat(300))),
            UriError::BadMemo { .. }
        ));
        assert!(matches!(
            err(&"x".repeat(MAX_URI_LEN + 1)),
            UriError::TooLong { .. }
        ));
        // A multi-byte character where a scheme or an escape would be.
        assert!(matches!(err("é:x"), UriError::Address(_)));
        assert!(matches!(
            err(&format!("notch:{a}?memo=%é")),
            UriError::BadEncoding { .. }
        ));
    }

    /// A deterministic pseudo-random sequence (no rand dependency).
    fn next(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn random_text_never_panics() {
        let a = address(Network::Sandbox);
        let valid = format!("notch:{a}?amount=1.25&asset=EURT&memo=hi");
        let alphabet: Vec<char> =
            "notchNOTCH:/?#&=%.-+_ 0123456789abcdefABCDEFqpzry\u{e9}\u{1F600}\t\n\0"
                .chars()
                .collect();
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        for round in 0..600 {
            let text: String = if round % 2 == 0 {
                // Random characters, sometimes behind the scheme.
                let len = (next(&mut seed) % 80) as usize;
                let body: String = (0..len)
                    .map(|_| alphabet[(next(&mut seed) % alphabet.len() as u64) as usize])
                    .collect();
                if round % 4 == 0 {
                    format!("notch:{body}")
                } else {
                    body
                }
            } else {
                // A valid link with a few characters changed, cut or added.
                let mut chars: Vec<char> = valid.chars().collect();
                for _ in 0..(1 + next(&mut seed) % 4) {
                    let at = (next(&mut seed) % chars.len() as u64) as usize;
                    let c = alphabet[(next(&mut seed) % alphabet.len() as u64) as usize];
                    match next(&mut seed) % 3 {
                        0 => chars[at] = c,
                        1 => chars.insert(at, c),
                        _ => chars.truncate(at.max(1)),
                    }
                }
                chars.into_iter().collect()
            };
            // Whatever it is, an answer and never a panic; what is accepted
            // reads back the same.
            if let Ok(uri) = PaymentUri::parse(&text, Network::Sandbox) {
                assert_eq!(
                    PaymentUri::parse(&uri.to_string(), Network::Sandbox).unwrap(),
                    uri,
                    "{text:?}"
                );
            }
        }
    }

    #[test]
    fn a_tally_ticket_is_not_a_payment() {
        let agent = "6j9z7de95UMTnZzWobwtob6Mc3MDGDntdhSNR80pGXE";
        let chad = format!(
            "%7B%22cuid%22:%22suzie%22,%22agent%22:%22{agent}%22,%22host%22:%22mychips.net%22,%22port%22:57423%7D"
        );
        for text in [
            format!("notch:ticket?token=abc&chad={chad}"),
            format!("NOTCH://ticket?token=abc&chad={chad}"),
            format!("https://mychips.org/invite?token=abc&chad={chad}"),
            // A broken ticket is still a ticket, not a bad address.
            "notch:ticket".to_owned(),
            "notch:ticket?token=abc".to_owned(),
        ] {
            let e = PaymentUri::parse(&text, Network::Sandbox).unwrap_err();
            assert_eq!(e, UriError::TallyTicket, "{text}");
            assert!(e.to_string().contains("tally ticket"), "{e}");
        }
        // And the payment link is not mistaken for a ticket: it still parses.
        let a = address(Network::Sandbox);
        assert!(PaymentUri::parse(&format!("notch:{a}?amount=1"), Network::Sandbox).is_ok());
        let e = PaymentUri::from_scanned(&["notch:ticket?token=abc"], Network::Sandbox)
            .unwrap()
            .unwrap_err();
        assert_eq!(e.error, UriError::TallyTicket);
    }

    #[test]
    fn of_several_scanned_texts_the_first_payment_wins() {
        let a = address(Network::Sandbox);
        let main = address(Network::Main);
        let n = Network::Sandbox;
        let none: [&str; 0] = [];
        assert_eq!(PaymentUri::from_scanned(&none, n), None);
        let got = PaymentUri::from_scanned(&["hello", a.as_str()], n)
            .unwrap()
            .unwrap();
        assert_eq!(got.address, a);
        // Another network's address is the more telling refusal.
        let e = PaymentUri::from_scanned(&["hello", main.as_str(), "x"], n)
            .unwrap()
            .unwrap_err();
        assert!(e.error.is_wrong_network(), "{e:?}");
        assert!(
            e.to_string()
                .contains("which is not a Notch address on sandbox"),
            "{e}"
        );
        let long = "y".repeat(100);
        let e = PaymentUri::from_scanned(&[long.as_str()], n)
            .unwrap()
            .unwrap_err();
        assert_eq!(e.text.chars().count(), 61);
    }
}
