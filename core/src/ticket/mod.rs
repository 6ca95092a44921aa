//! Tally tickets: how a tally starts.
//!
//! To open a tally with someone, MyCHIPs has the issuer make a one-time
//! *ticket* for a draft tally and show it (a QR code, a link in a message).
//! Whoever scans it asks the issuer's agent, at the CHIP address the ticket
//! gives, for the draft tally, presenting the token. The ticket is only an
//! introduction: it carries no tally terms and no signature. So what the
//! scanner can check is its form — a token, an address one can connect to,
//! an agent key of the right size, an expiry not passed — and that is what
//! [`Ticket::parse`] and [`Ticket::check`] do, refusing anything else with a
//! reason a person can act on. Whether the token is still unused is for the
//! issuer's agent to say when the scanner connects (MyCHIPs's
//! `mychips.token_valid`), not something a picture can tell.
//!
//! A ticket is read from three forms and written in two:
//! - the MyCHIPs invitation link,
//!   `https://mychips.org/invite?token=…&chad=…[&expires=…]`, what MyCHIPs's
//!   mobile app scans and opens (`chad` is the CHIP address as JSON,
//!   percent-encoded, as MyCHIPs's server writes it with `encodeURI`);
//! - the Notch deep link, `notch:ticket?…` with the same parameters (also
//!   read as `notch://ticket?…`), which cannot be taken for a `notch:`
//!   payment link ([`crate::payment::PaymentUri`] refuses it, and this
//!   parser refuses a payment link);
//! - read only: MyCHIPs's JSON form, `{"ticket":{"token":…,"expires":…,
//!   "chad":{…}}}`, which MyCHIPs's server puts in its own QR codes.
//!
//! The exact formats, with test vectors, are in docs/PROTOCOL.md
//! ("Tally tickets"). Everything here is pure: no I/O, no clock (the caller
//! passes `now`), so the same checks serve the app, the CLI and the mobile
//! bindings. Rendering and reading QR codes ([`Ticket::to_qr_png`],
//! [`Ticket::scan_image`], [`Ticket::scan_luma`]) go through [`crate::qr`].

mod scan;
mod time;

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

pub use scan::{DEFAULT_MODULE_PX, MAX_MODULE_PX, MIN_MODULE_PX, ScanError};
pub use time::MAX_UNIX as MAX_EXPIRES;

use crate::export::rfc3339_utc;

/// The longest text taken for a ticket, in bytes, checked before anything is
/// parsed. A real ticket link is about 250 bytes; a QR code holds at most
/// about 3 KB.
pub const MAX_TEXT_LEN: usize = 2048;
/// The MyCHIPs invitation link, up to its query.
pub const MYCHIPS_INVITE: &str = "https://mychips.org/invite";
/// The Notch deep link of a ticket, up to its query.
pub const NOTCH_TICKET: &str = "notch:ticket";
/// The longest token. MyCHIPs's are 32 hex digits (an MD5 of a random
/// number); Notch's are 32 hex digits of 16 random bytes.
pub const MAX_TOKEN_LEN: usize = 128;
/// The longest CHIP user id (CUID), in characters.
pub const MAX_CUID_CHARS: usize = 64;
/// The longest host name (DNS's limit).
pub const MAX_HOST_LEN: usize = 253;

/// Why a text is not a ticket one can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("there is no ticket: the text is empty")]
    Empty,
    #[error("the text is too long for a ticket ({len} bytes; at most {max})")]
    TooLong { len: usize, max: usize },
    #[error("this is not a tally ticket: it is {what}")]
    NotATicket { what: String },
    #[error(
        "this link goes to {host}, not mychips.org: a tally ticket is a https://mychips.org/invite or notch:ticket link"
    )]
    WrongHost { host: String },
    #[error(
        "this mychips.org link is not an invitation ({path}, not /invite): a tally ticket is a https://mychips.org/invite link"
    )]
    WrongPath { path: String },
    #[error("the ticket's {part} is not valid percent-encoded UTF-8")]
    BadEncoding { part: String },
    #[error("the ticket gives {name:?} more than once")]
    Duplicate { name: String },
    #[error("the ticket has no token (the one-time code that lets you open the tally)")]
    MissingToken,
    #[error("the ticket's token is not acceptable: {reason}")]
    BadToken { reason: String },
    #[error("the ticket has no CHIP address (chad) of whoever issued it")]
    MissingChad,
    #[error("the ticket's CHIP address (chad) is not acceptable: {reason}")]
    BadChad { reason: String },
    #[error("the ticket's CHIP user id (cuid) is not acceptable: {reason}")]
    BadCuid { reason: String },
    #[error("the ticket's agent key is not acceptable: {reason}")]
    BadAgent { reason: String },
    #[error("the ticket's host {host:?} is not acceptable: {reason}")]
    BadHost { host: String, reason: String },
    #[error("the ticket's port {port} is not acceptable: a port is a whole number from 1 to 65535")]
    BadPort { port: String },
    #[error("the ticket's expiry {expires:?} is not acceptable: {reason}")]
    BadExpiry { expires: String, reason: String },
    #[error("this ticket expired at {}; ask whoever gave it to you for a new one", rfc3339_utc(*expires))]
    Expired { expires: u64 },
}

impl TicketError {
    /// Whether the text was in one of the ticket forms (so it is a ticket,
    /// just not a good one), rather than something else altogether: a scan
    /// that finds both says the more telling thing.
    pub fn is_ticket_form(&self) -> bool {
        !matches!(
            self,
            TicketError::Empty
                | TicketError::TooLong { .. }
                | TicketError::NotATicket { .. }
                | TicketError::WrongHost { .. }
                | TicketError::WrongPath { .. }
        )
    }
}

/// The agent of a CHIP address: on the wire, as in MyCHIPs, the base64url
/// (no padding) X25519 public key of the agent's Noise static key, 32 bytes
/// (Notch's is [`crate::keys::AgentKey::x25519_public`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AgentId([u8; 32]);

impl AgentId {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        AgentId(bytes)
    }

    /// This wallet's own agent, as its tickets give it.
    pub fn of(key: &crate::keys::AgentKey) -> Self {
        AgentId(key.x25519_public())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads the wire form: exactly 43 base64url characters, no padding,
    /// and canonical (the unused low bits of the last character zero), so one
    /// key has one text.
    pub fn parse(text: &str) -> Result<Self, TicketError> {
        let bad = |reason: String| TicketError::BadAgent { reason };
        if text.is_empty() {
            return Err(bad("it is empty".into()));
        }
        if text.ends_with('=') {
            return Err(bad(
                "it has base64 padding (=); the key is written without".into()
            ));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|e| bad(format!("it is not base64url ({e})")))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            bad(format!(
                "it is {} bytes; an X25519 public key is 32 bytes",
                b.len()
            ))
        })?;
        let id = AgentId(bytes);
        // The decoder already refuses stray low bits; this keeps the promise
        // of one text per key whatever decoder settings are used.
        if id.to_base64url() != text {
            return Err(bad("it is not in the canonical base64url form".into()));
        }
        Ok(id)
    }

    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({})", self.to_base64url())
    }
}

/// A CHIP address (MyCHIPs's "chad"): whom to ask and where. MyCHIPs's
/// JSON names are kept: `cuid`, `agent`, `host`, `port` (older MyCHIPs
/// schemas said `cid` for `cuid`; that is still read). Every field is
/// checked when the address is made, so a `Chad` is always one a ticket can
/// carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chad {
    cuid: String,
    agent: AgentId,
    host: String,
    port: u16,
}

impl Chad {
    pub fn new(
        cuid: impl Into<String>,
        agent: AgentId,
        host: impl Into<String>,
        port: u16,
    ) -> Result<Self, TicketError> {
        let (cuid, host) = (cuid.into(), host.into());
        check_cuid(&cuid)?;
        check_host(&host)?;
        if port == 0 {
            return Err(TicketError::BadPort { port: "0".into() });
        }
        Ok(Chad {
            cuid,
            agent,
            host,
            port,
        })
    }

    /// The CHIP user id: the user's name at the agent.
    pub fn cuid(&self) -> &str {
        &self.cuid
    }

    pub fn agent(&self) -> AgentId {
        self.agent
    }

    /// A DNS name or an IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JSON MyCHIPs exchanges, keys sorted as MyCHIPs's canonical JSON
    /// (json-stable-stringify) writes them:
    /// `{"agent":…,"cuid":…,"host":…,"port":…}`.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("cuid".into(), Value::String(self.cuid.clone()));
        map.insert("agent".into(), Value::String(self.agent.to_base64url()));
        map.insert("host".into(), Value::String(self.host.clone()));
        map.insert("port".into(), Value::from(self.port));
        Value::Object(map)
    }

    /// Reads MyCHIPs's JSON. Fields it does not know (a later MyCHIPs may add
    /// `addr`, a libp2p multiaddress) are ignored; the four it needs must be
    /// there, of the right type.
    pub fn from_json(value: &Value) -> Result<Self, TicketError> {
        let bad = |reason: &str| TicketError::BadChad {
            reason: reason.to_owned(),
        };
        let map = value
            .as_object()
            .ok_or_else(|| bad("it is not a JSON object"))?;
        let text = |name: &str| -> Result<Option<&str>, TicketError> {
            match map.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(TicketError::BadChad {
                    reason: format!("its {name:?} is not a string"),
                }),
            }
        };
        let cuid = match (text("cuid")?, text("cid")?) {
            (Some(cuid), None) | (None, Some(cuid)) => cuid,
            (Some(a), Some(b)) if a == b => a,
            (Some(_), Some(_)) => return Err(bad("it gives a different \"cuid\" and \"cid\"")),
            (None, None) => return Err(bad("it has no \"cuid\" (the user's id at the agent)")),
        };
        let agent = text("agent")?.ok_or_else(|| bad("it has no \"agent\" (the agent's key)"))?;
        let host = text("host")?.ok_or_else(|| bad("it has no \"host\" to connect to"))?;
        let port = match map.get("port") {
            None | Some(Value::Null) => return Err(bad("it has no \"port\" to connect to")),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| TicketError::BadPort {
                    port: n.to_string(),
                })?,
            Some(other) => {
                return Err(TicketError::BadPort {
                    port: other.to_string(),
                });
            }
        };
        Chad::new(cuid, AgentId::parse(agent)?, host, port)
    }
}

/// Which link a ticket is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LinkForm {
    /// `https://mychips.org/invite?…`: what MyCHIPs wallets scan, and what a
    /// phone's camera opens in a browser or app. The one for QR codes.
    #[default]
    MyChips,
    /// `notch:ticket?…`: a deep link that opens Notch directly.
    Notch,
}

/// A tally ticket: a one-time token, when it stops being good, and the CHIP
/// address of whoever issued it. Made only through [`Ticket::new`],
/// [`Ticket::issue`] or a parser, so every `Ticket` is well-formed and writes
/// a link that reads back the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ticket {
    token: String,
    expires: Option<u64>,
    chad: Chad,
}

impl Ticket {
    /// A ticket from its parts, checked. `expires` is Unix seconds (`None`:
    /// the link does not say; MyCHIPs's own links never do, its agent
    /// decides).
    pub fn new(
        token: impl Into<String>,
        expires: Option<u64>,
        chad: Chad,
    ) -> Result<Self, TicketError> {
        let token = token.into();
        check_token(&token)?;
        if let Some(e) = expires
            && e > MAX_EXPIRES
        {
            return Err(TicketError::BadExpiry {
                expires: e.to_string(),
                reason: "it is after the year 9999".into(),
            });
        }
        Ok(Ticket {
            token,
            expires,
            chad,
        })
    }

    /// A new ticket with a fresh random token (16 bytes as 32 hex digits,
    /// the shape of MyCHIPs's tokens). Remembering it, and refusing it once
    /// used, is for the issuer's store.
    pub fn issue(chad: Chad, expires: u64) -> Result<Self, crate::keys::KeyError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| crate::keys::KeyError::NoRandomness(e.to_string()))?;
        Ok(Ticket {
            token: hex::encode(bytes),
            expires: Some(expires.min(MAX_EXPIRES)),
            chad,
        })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Unix seconds after which the ticket is no good, if the link says.
    pub fn expires(&self) -> Option<u64> {
        self.expires
    }

    pub fn chad(&self) -> &Chad {
        &self.chad
    }

    /// Refuses a ticket whose expiry is at or before `now` (Unix seconds).
    /// A ticket that gives no expiry passes: only its issuer can tell.
    pub fn check(&self, now: u64) -> Result<(), TicketError> {
        match self.expires {
            Some(expires) if expires <= now => Err(TicketError::Expired { expires }),
            _ => Ok(()),
        }
    }

    /// Reads a ticket from a text a person pasted, a deep link the system
    /// handed over, or a QR code: any of the three forms (see the module
    /// docs). Strict: every refusal says why. Never panics. Does not look at
    /// the clock: [`Ticket::check`] does, with the `now` it is given.
    pub fn parse(text: &str) -> Result<Ticket, TicketError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(TicketError::TooLong {
                len: text.len(),
                max: MAX_TEXT_LEN,
            });
        }
        let text = text.trim();
        if text.is_empty() {
            return Err(TicketError::Empty);
        }
        if text.starts_with('{') {
            return parse_json(text);
        }
        let Some((scheme, rest)) = text.split_once(':').filter(|(s, _)| looks_like_scheme(s))
        else {
            return Err(TicketError::NotATicket {
                what: "plain text, not a link".into(),
            });
        };
        match scheme.to_ascii_lowercase().as_str() {
            "https" => parse_https(text),
            "notch" => parse_notch(rest),
            "http" => Err(TicketError::NotATicket {
                what: "an unencrypted http link (a MyCHIPs invitation is https)".into(),
            }),
            other => Err(TicketError::NotATicket {
                what: format!("a {other}: link"),
            }),
        }
    }

    /// The ticket as a link of the given form.
    pub fn link(&self, form: LinkForm) -> String {
        let base = match form {
            LinkForm::MyChips => MYCHIPS_INVITE,
            LinkForm::Notch => NOTCH_TICKET,
        };
        // Compact JSON, percent-encoded like JavaScript's encodeURI leaves a
        // query (':' and ',' stay), so the link is what MyCHIPs's own server
        // writes and no longer than it must be in a QR code.
        let chad = self.chad.to_json().to_string();
        let mut link = format!(
            "{base}?token={}&chad={}",
            encode_component(&self.token),
            encode_component(&chad)
        );
        if let Some(expires) = self.expires {
            link.push_str("&expires=");
            link.push_str(&encode_component(&rfc3339_utc(expires)));
        }
        link
    }

    /// MyCHIPs's JSON of a ticket, `{"chad":{…},"expires":…,"token":…}`
    /// (no `expires` if the ticket gives none): what a MyCHIPs user service
    /// takes (`mychips.ticket_process`) and what [`Ticket::parse`] reads.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("token".into(), Value::String(self.token.clone()));
        if let Some(expires) = self.expires {
            map.insert("expires".into(), Value::String(rfc3339_utc(expires)));
        }
        map.insert("chad".into(), self.chad.to_json());
        Value::Object(map)
    }

    /// Reads MyCHIPs's JSON of a ticket (see [`Ticket::to_json`]).
    pub fn from_json(value: &Value) -> Result<Ticket, TicketError> {
        let map = value.as_object().ok_or_else(|| TicketError::NotATicket {
            what: "JSON that is not an object".into(),
        })?;
        let token = match map.get("token") {
            None | Some(Value::Null) => return Err(TicketError::MissingToken),
            Some(Value::String(t)) if t.is_empty() => return Err(TicketError::MissingToken),
            Some(Value::String(t)) => t.clone(),
            Some(_) => {
                return Err(TicketError::BadToken {
                    reason: "it is not a string".into(),
                });
            }
        };
        check_token(&token)?;
        let chad = match map.get("chad") {
            None | Some(Value::Null) => return Err(TicketError::MissingChad),
            Some(chad) => Chad::from_json(chad)?,
        };
        let expires = match map.get("expires") {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) => Some(parse_expires(e)?),
            Some(other) => {
                return Err(TicketError::BadExpiry {
                    expires: other.to_string(),
                    reason: "it is not a date and time string".into(),
                });
            }
        };
        Ticket::new(token, expires, chad)
    }
}

/// The MyCHIPs invitation link ([`LinkForm::MyChips`]).
impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.link(LinkForm::MyChips))
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ticket::parse(text)
    }
}

/// Whether a text is in one of the ticket forms, good or not: what the
/// payment link parser asks so it can say "this is a tally ticket" instead
/// of "bad address".
pub(crate) fn looks_like_ticket(text: &str) -> bool {
    match Ticket::parse(text) {
        Ok(_) => true,
        Err(e) => e.is_ticket_form(),
    }
}

fn parse_https(text: &str) -> Result<Ticket, TicketError> {
    let url = url::Url::parse(text).map_err(|e| TicketError::NotATicket {
        what: format!("a web link that cannot be read ({e})"),
    })?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let has_user = !url.username().is_empty() || url.password().is_some();
    if host != "mychips.org" || url.port().is_some() || has_user {
        let mut shown = host;
        if has_user {
            shown = format!("{}@{shown}", url.username());
        }
        if let Some(port) = url.port() {
            shown = format!("{shown}:{port}");
        }
        return Err(TicketError::WrongHost { host: shown });
    }
    match url.path() {
        "/invite" => parse_query(url.query().unwrap_or_default()),
        // MyCHIPs's other links, named so that a person knows what they hold.
        "/ticket" => Err(TicketError::NotATicket {
            what: "a MyCHIPs connection ticket (it signs a user in to a MyCHIPs service), not a tally invitation".into(),
        }),
        "/pay" => Err(TicketError::NotATicket {
            what: "a MyCHIPs payment request, not a tally invitation".into(),
        }),
        "/signkey" => Err(TicketError::NotATicket {
            what: "a MyCHIPs signing key export, not a tally invitation".into(),
        }),
        other => Err(TicketError::WrongPath {
            path: shorten(other, 40),
        }),
    }
}

fn parse_notch(rest: &str) -> Result<Ticket, TicketError> {
    // `notch:ticket?…` or `notch://ticket?…`; a fragment means nothing here.
    let rest = rest.trim_start_matches('/');
    let rest = rest.split('#').next().unwrap_or_default();
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.eq_ignore_ascii_case("ticket") {
        parse_query(query)
    } else {
        Err(TicketError::NotATicket {
            what: "a Notch payment link (notch:ADDRESS), not a tally ticket (notch:ticket?…)"
                .into(),
        })
    }
}

fn parse_json(text: &str) -> Result<Ticket, TicketError> {
    let value: Value = serde_json::from_str(text).map_err(|e| TicketError::NotATicket {
        what: format!("text that is not valid JSON ({e})"),
    })?;
    let Some(map) = value.as_object() else {
        return Err(TicketError::NotATicket {
            what: "JSON that is not an object".into(),
        });
    };
    // MyCHIPs's QR codes hold `{"ticket":{…}}`, some with `"type":"tally"`;
    // a bare ticket object is read too.
    if let Some(kind) = map.get("type")
        && kind.as_str() != Some("tally")
    {
        return Err(TicketError::NotATicket {
            what: format!("a MyCHIPs code of type {kind}, not a tally invitation"),
        });
    }
    if let Some(ticket) = map.get("ticket") {
        return Ticket::from_json(ticket);
    }
    if map.contains_key("connect") {
        return Err(TicketError::NotATicket {
            what: "a MyCHIPs connection ticket (it signs a user in to a MyCHIPs service), not a tally invitation".into(),
        });
    }
    if map.contains_key("token") || map.contains_key("chad") {
        return Ticket::from_json(&value);
    }
    Err(TicketError::NotATicket {
        what: "JSON without a ticket in it".into(),
    })
}

fn parse_query(query: &str) -> Result<Ticket, TicketError> {
    let (mut token, mut chad, mut expires) = (None, None, None);
    // A fragment is not part of the query (url has already taken it off an
    // https link; a notch link's was cut above).
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode_component(raw_name, "parameter name")?;
        let slot = match name.as_str() {
            "token" => &mut token,
            "chad" => &mut chad,
            "expires" => &mut expires,
            // Unknown parameters are ignored: MyCHIPs's app adds its own
            // (`randomString`), and a later version may add more.
            _ => continue,
        };
        if slot.is_some() {
            return Err(TicketError::Duplicate { name });
        }
        *slot = Some(decode_component(raw_value, &name)?);
    }
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or(TicketError::MissingToken)?;
    check_token(&token)?;
    let chad = chad
        .filter(|c| !c.trim().is_empty())
        .ok_or(TicketError::MissingChad)?;
    let chad: Value = serde_json::from_str(&chad).map_err(|e| TicketError::BadChad {
        reason: format!("it is not JSON ({e})"),
    })?;
    let chad = Chad::from_json(&chad)?;
    let expires = expires.map(|e| parse_expires(&e)).transpose()?;
    Ticket::new(token, expires, chad)
}

fn parse_expires(text: &str) -> Result<u64, TicketError> {
    time::parse_rfc3339(text).map_err(|reason| TicketError::BadExpiry {
        expires: shorten(text, 40),
        reason: reason.into(),
    })
}

fn check_token(token: &str) -> Result<(), TicketError> {
    let bad = |reason: String| Err(TicketError::BadToken { reason });
    if token.is_empty() {
        return Err(TicketError::MissingToken);
    }
    if token.len() > MAX_TOKEN_LEN {
        return bad(format!(
            "it is {} characters long; at most {MAX_TOKEN_LEN}",
            token.chars().count()
        ));
    }
    // URL-safe characters only, so the token reads the same in every form.
    if let Some(c) = token
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')))
    {
        return bad(format!(
            "it holds {c:?}; a token is letters, digits and - . _ ~"
        ));
    }
    Ok(())
}

fn check_cuid(cuid: &str) -> Result<(), TicketError> {
    let bad = |reason: String| Err(TicketError::BadCuid { reason });
    let chars = cuid.chars().count();
    if chars == 0 {
        return bad("it is empty".into());
    }
    if chars > MAX_CUID_CHARS {
        return bad(format!(
            "it is {chars} characters long; at most {MAX_CUID_CHARS}"
        ));
    }
    // Anything printable, except what separates a CHIP address's parts in
    // its text form (cuid:agent@host:port) and '/', which a multiaddress
    // uses.
    if let Some(c) = cuid
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || matches!(c, ':' | '@' | '/'))
    {
        return bad(format!("it holds {c:?}"));
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), TicketError> {
    let bad = |reason: &str| {
        Err(TicketError::BadHost {
            host: shorten(host, 60),
            reason: reason.to_owned(),
        })
    };
    if host.is_empty() {
        return bad("it is empty");
    }
    if host.len() > MAX_HOST_LEN {
        return bad("it is longer than a host name can be (253 characters)");
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        // An address nobody can be reached at is a mistake, not a host.
        return if ip.is_unspecified() {
            bad("it is the unspecified address, which cannot be connected to")
        } else if ip.is_multicast() || matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast()) {
            bad("it is a broadcast or multicast address")
        } else {
            Ok(())
        };
    }
    let labels: Vec<&str> = host.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return bad("it has an empty part between dots");
        }
        if label.len() > 63 {
            return bad("a part between dots is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("a host name is letters, digits, '-' and dots (IPv6 without brackets)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a part between dots starts or ends with '-'");
        }
    }
    // "1.2.3.999" is neither a name (top-level domains are not numbers) nor
    // an address.
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("it looks like an IP address but is not one");
    }
    Ok(())
}

/// RFC 3986: a letter, then letters, digits, `+`, `-`, `.`.
fn looks_like_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Decodes a query component: `%XX` escapes, and `+` as a space, as HTML
/// forms, `URLSearchParams` and the `query-string` package MyCHIPs's app
/// uses read it.
fn decode_component(s: &str, part: &str) -> Result<String, TicketError> {
    let bad = || TicketError::BadEncoding {
        part: part.to_owned(),
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Encodes a query component as JavaScript's `encodeURI` does, less the
/// characters that would end or split a query value (`& = + # ?`), so that
/// it decodes back to the same text however it is read.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b','
                    | b'@'
                    | b'!'
                    | b'*'
                    | b'\''
                    | b'('
                    | b')'
                    | b';'
                    | b'/'
                    | b'$'
            )
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// At most `max` characters of a text, for a message.
fn shorten(text: &str, max: usize) -> String {
    let mut short: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const AGENT: &str = "6j9z7de95UMTnZzWobwtob6Mc3MDGDntdhSNR80pGXE";

    fn ticket() -> Ticket {
        let chad = Chad::new(
            "suzie",
            AgentId::parse(AGENT).unwrap(),
            "mychips.net",
            57423,
        )
        .unwrap();
        Ticket::new(
            "0123456789abcdef0123456789abcdef",
            Some(1_700_000_000),
            chad,
        )
        .unwrap()
    }

    #[test]
    fn the_vector_in_protocol_md() {
        let t = ticket();
        let invite = "https://mychips.org/invite?token=0123456789abcdef0123456789abcdef\
            &chad=%7B%22agent%22:%226j9z7de95UMTnZzWobwtob6Mc3MDGDntdhSNR80pGXE%22,%22cuid%22:%22suzie%22,\
            %22host%22:%22mychips.net%22,%22port%22:57423%7D&expires=2023-11-14T22:13:20Z";
        assert_eq!(t.to_string(), invite);
        assert_eq!(Ticket::parse(invite).unwrap(), t);
        let notch = t.link(LinkForm::Notch);
        assert_eq!(
            notch,
            invite.replacen("https://mychips.org/invite", "notch:ticket", 1)
        );
        assert_eq!(Ticket::parse(&notch).unwrap(), t);
        assert_eq!(
            t.to_json().to_string(),
            r#"{"chad":{"agent":"6j9z7de95UMTnZzWobwtob6Mc3MDGDntdhSNR80pGXE","cuid":"suzie","host":"mychips.net","port":57423},"expires":"2023-11-14T22:13:20Z","token":"0123456789abcdef0123456789abcdef"}"#
        );
    }

    #[test]
    fn what_mychips_writes_is_read() {
        // encodeURI of the link MyCHIPs's server builds: the chad as
        // PostgreSQL's jsonb orders its keys, no expiry.
        let link = "https://mychips.org/invite?token=d41d8cd98f00b204e9800998ecf8427e&chad=%7B%22cuid%22:%22suzie%22,%22host%22:%22mychips.net%22,%22port%22:57423,%22agent%22:%226j9z7de95UMTnZzWobwtob6Mc3MDGDntdhSNR80pGXE%22%7D";
        let t = Ticket::parse(link).unwrap();
        assert_eq!(t.token(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(t.expires(), None);
        assert_eq!(t.chad().cuid(), "suzie");
        assert_eq!(t.chad().host(), "mychips.net");
        assert_eq!(t.chad().port(), 57423);
        assert!(t.check(u64::MAX).is_ok());
        // The JSON of MyCHIPs's QR codes, with node-postgres's milliseconds
        // and the older "cid".
        let json = r#"{"ticket":{"token":"d41d8cd98f00b204e9800998ecf8427e","expires":"2023-11-14T22:13:20.000Z","chad":{"cid":"suzie","agent":"6j9z7de95UMTnZzWobwtob6Mc3MDGDntdhSNR80pGXE","host":"mychips.net","port":57423}}}"#;
        let t = Ticket::parse(json).unwrap();
        assert_eq!(t.expires(), Some(1_700_000_000));
        assert_eq!(t.chad().cuid(), "suzie");
        // Raw JSON in the query (not encoded), a '+' for nothing, extra
        // parameters, a fragment: all as a browser would read them.
        let raw = format!(
            "https://MyCHIPs.org/invite?randomString=x&token=abc&chad={}#top",
            r#"{"cuid":"suzie","agent":"6j9z7de95UMTnZzWobwtob6Mc3MDGDntdhSNR80pGXE","host":"mychips.net","port":57423}"#
        );
        assert_eq!(Ticket::parse(&raw).unwrap().token(), "abc");
    }

    #[test]
    fn agents_are_32_bytes_of_canonical_base64url() {
        assert_eq!(AgentId::parse(AGENT).unwrap().to_base64url(), AGENT);
        let err = |t: &str| AgentId::parse(t).unwrap_err().to_string();
        assert!(err("").contains("empty"));
        assert!(err(&format!("{AGENT}=")).contains("padding"));
        assert!(
            err(&AGENT[..42]).contains("base64url"),
            "{}",
            err(&AGENT[..42])
        );
        assert!(
            err(&AGENT[..40]).contains("30 bytes"),
            "{}",
            err(&AGENT[..40])
        );
        assert!(err(&format!("{AGENT}AAAA")).contains("35 bytes"));
        assert!(err("6j9z7de95UMTnZzWobwtob6Mc3MDGDntdhSNR80pGX+").contains("base64url"));
        // Same key bits, stray low bits in the last character.
        assert!(err("6j9z7de95UMTnZzWobwtob6Mc3MDGDntdhSNR80pGXF").contains("base64url"));
    }

    #[test]
    fn hosts_are_names_or_reachable_addresses() {
        let host = |h: &str| Chad::new("u", AgentId::from_bytes([1; 32]), h, 1);
        for good in [
            "mychips.net",
            "localhost",
            "a-b.c9.example",
            "127.0.0.1",
            "::1",
            "2001:db8::7",
        ] {
            assert!(host(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "0.0.0.0",
            "::",
            "255.255.255.255",
            "224.0.0.1",
            "[::1]",
            "a..b",
            ".a",
            "a.",
            "-a.b",
            "a-.b",
            "a_b.c",
            "a b",
            "1.2.3.999",
            "mychips.net:80",
            "héllo.org",
        ] {
            assert!(
                matches!(host(bad), Err(TicketError::BadHost { .. })),
                "{bad:?}: {:?}",
                host(bad)
            );
        }
        assert!(host(&format!("{}.org", "a".repeat(64))).is_err());
        assert!(host(&["a"; 130].join(".")).is_err());
    }
}
