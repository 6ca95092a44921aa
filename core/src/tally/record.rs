//! The tally record, as MyCHIPs writes it, and what the tally and chit
//! records share (sides, field checks, errors).
//!
//! A tally is one JSON object that both parties sign:
//!
//! ```json
//! {"version":1, "uuid":"…", "date":"2024-05-25T03:16:32.035Z",
//!  "comment":null, "agree":{"domain":"mychips.org","name":"deluxe","version":1},
//!  "stock":{"cert":{…,"public":{JWK}}, "terms":{…}},
//!  "foil": {"cert":{…,"public":{JWK}}, "terms":{…}},
//!  "sign":{"stock":"base64url r||s", "foil":"base64url r||s"}}
//! ```
//!
//! Each signature is ECDSA P-521 / SHA-384 over
//! `json-stable-stringify(tally without "sign")` (MyCHIPs
//! `test/auto/unit/validtally.js`, `lib/crypto.js`), made with the key whose
//! JWK is that side's `cert.public`. The record's hash is SHA-256 of the
//! same bytes.
//!
//! **Why the record stays JSON.** Signatures cover the JSON as received:
//! [`TallyRecord`] keeps the parsed object itself (not a Rust struct that
//! would drop members it does not know), checks the members Notch reads,
//! and computes the signed bytes from that object. A future MyCHIPs member,
//! or a certificate field Notch has never heard of, is kept, signed and
//! verified like any other.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::canonical::{
    JsonError, parse_json, python_json_dumps_members, stable_stringify_members,
};
use crate::keys::{KeyError, TallyKey, TallyPublicKey, TallySignature};

/// The two halves of a tally: the stock (vendor, normally owed value) and
/// the foil (client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Stock,
    Foil,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Stock, Side::Foil];

    /// `"stock"` or `"foil"`, as MyCHIPs writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Stock => "stock",
            Side::Foil => "foil",
        }
    }

    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "stock" => Some(Side::Stock),
            "foil" => Some(Side::Foil),
            _ => None,
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::Stock => Side::Foil,
            Side::Foil => Side::Stock,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which record an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Tally,
    Chit,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordKind::Tally => "tally",
            RecordKind::Chit => "chit",
        })
    }
}

/// Why a JSON value is not a tally or chit record Notch can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Json(#[from] JsonError),
    #[error("the {record} is not a JSON object but {found}")]
    NotAnObject {
        record: RecordKind,
        found: &'static str,
    },
    #[error("the {record} has no \"{field}\"")]
    Missing { record: RecordKind, field: String },
    #[error("\"{field}\" of the {record} must be {expected}, but it is {found}")]
    WrongType {
        record: RecordKind,
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("\"{field}\" of the {record} is not valid: {reason}")]
    Invalid {
        record: RecordKind,
        field: String,
        reason: String,
    },
}

/// What is wrong with one party's signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    #[error("is missing")]
    Missing,
    #[error("is not a P-521 signature: {0}")]
    Malformed(String),
    #[error("cannot be checked, because the public key in the certificate is not usable: {0}")]
    BadKey(String),
    #[error("does not match the record and the public key in the certificate")]
    Mismatch,
}

/// "a string", "null", … for error messages.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Field checks with errors that name the record and the path.
pub(crate) struct Check {
    pub(crate) record: RecordKind,
}

impl Check {
    pub(crate) fn object(&self, value: Value) -> Result<Map<String, Value>, RecordError> {
        match value {
            Value::Object(map) => Ok(map),
            other => Err(RecordError::NotAnObject {
                record: self.record,
                found: json_type(&other),
            }),
        }
    }

    pub(crate) fn wrong(&self, field: &str, expected: &'static str, found: &Value) -> RecordError {
        RecordError::WrongType {
            record: self.record,
            field: field.to_owned(),
            expected,
            found: json_type(found),
        }
    }

    pub(crate) fn invalid(&self, field: &str, reason: impl Into<String>) -> RecordError {
        RecordError::Invalid {
            record: self.record,
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn required<'a>(
        &self,
        map: &'a Map<String, Value>,
        field: &str,
        path: &str,
    ) -> Result<&'a Value, RecordError> {
        map.get(field).ok_or_else(|| RecordError::Missing {
            record: self.record,
            field: path.to_owned(),
        })
    }

    pub(crate) fn string<'a>(
        &self,
        map: &'a Map<String, Value>,
        field: &str,
        path: &str,
    ) -> Result<&'a str, RecordError> {
        let value = self.required(map, field, path)?;
        let text = value
            .as_str()
            .ok_or_else(|| self.wrong(path, "a string", value))?;
        if text.is_empty() {
            return Err(self.invalid(path, "it is empty"));
        }
        Ok(text)
    }

    /// A string, `null`, or absent.
    pub(crate) fn optional_string<'a>(
        &self,
        map: &'a Map<String, Value>,
        field: &str,
        path: &str,
    ) -> Result<Option<&'a str>, RecordError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong(path, "a string or null", other)),
        }
    }

    pub(crate) fn map<'a>(
        &self,
        map: &'a Map<String, Value>,
        field: &str,
        path: &str,
    ) -> Result<&'a Map<String, Value>, RecordError> {
        let value = self.required(map, field, path)?;
        value
            .as_object()
            .ok_or_else(|| self.wrong(path, "an object", value))
    }

    /// A non-negative integer (below 2^63, PostgreSQL's `bigint`).
    pub(crate) fn unsigned(&self, value: &Value, path: &str) -> Result<u64, RecordError> {
        match value.as_u64() {
            Some(n) if n <= i64::MAX as u64 => Ok(n),
            Some(_) => Err(self.invalid(path, "it is too large")),
            None if value.is_number() => {
                Err(self.invalid(path, "it must be a whole number of at least 0"))
            }
            None => Err(self.wrong(path, "a number", value)),
        }
    }
}

const TALLY: Check = Check {
    record: RecordKind::Tally,
};

/// A tally record: a JSON object whose members Notch reads have been
/// checked. Unknown members are kept untouched (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct TallyRecord {
    map: Map<String, Value>,
}

impl TallyRecord {
    /// Parses a tally from JSON text (see [`parse_json`] for the limits).
    pub fn parse(text: &str) -> Result<Self, RecordError> {
        Self::from_value(parse_json(text)?)
    }

    /// Checks a parsed tally.
    pub fn from_value(value: Value) -> Result<Self, RecordError> {
        let map = TALLY.object(value)?;
        let version = TALLY.required(&map, "version", "version")?;
        TALLY.unsigned(version, "version")?;
        TALLY.string(&map, "uuid", "uuid")?;
        TALLY.string(&map, "date", "date")?;
        TALLY.optional_string(&map, "comment", "comment")?;
        TALLY.map(&map, "agree", "agree")?;
        for side in Side::BOTH {
            let name = side.as_str();
            let party = TALLY.map(&map, name, name)?;
            let cert = TALLY.map(party, "cert", &format!("{name}.cert"))?;
            let public = TALLY.required(cert, "public", &format!("{name}.cert.public"))?;
            if !(public.is_object() || public.is_string()) {
                return Err(TALLY.wrong(&format!("{name}.cert.public"), "a JWK object", public));
            }
            TALLY.map(party, "terms", &format!("{name}.terms"))?;
        }
        match map.get("sign") {
            None | Some(Value::Null) => {}
            Some(Value::Object(sign)) => {
                for side in Side::BOTH {
                    TALLY.optional_string(sign, side.as_str(), &format!("sign.{side}"))?;
                }
            }
            Some(other) => return Err(TALLY.wrong("sign", "an object", other)),
        }
        Ok(Self { map })
    }

    /// The record's JSON object, exactly as read (plus any signatures
    /// added by [`TallyRecord::sign`]).
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.map.clone())
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.map)
    }

    /// Compact JSON for sending: the canonical form (keys sorted), so what
    /// goes out is also what a reader hashes.
    pub fn to_json(&self) -> String {
        stable_stringify_members(&self.map, |_| true)
    }

    fn str_member(&self, name: &str) -> &str {
        self.map
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Version of the tally format (1).
    pub fn version(&self) -> u64 {
        self.map
            .get("version")
            .and_then(Value::as_u64)
            .unwrap_or_default()
    }

    pub fn uuid(&self) -> &str {
        self.str_member("uuid")
    }

    /// When the tally was made, as MyCHIPs wrote it (ISO 8601).
    pub fn date(&self) -> &str {
        self.str_member("date")
    }

    /// The comment both parties agreed to include, if any.
    pub fn comment(&self) -> Option<&str> {
        self.map.get("comment").and_then(Value::as_str)
    }

    /// The contract reference (`{"domain","name","version"}` or `{"host",…}`).
    pub fn agree(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.map
            .get("agree")
            .and_then(Value::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    /// One side of the tally.
    pub fn party(&self, side: Side) -> Party<'_> {
        Party {
            side,
            value: self.map.get(side.as_str()).unwrap_or(&Value::Null),
        }
    }

    /// The base64url signature of `side`, if present.
    pub fn signature(&self, side: Side) -> Option<&str> {
        self.map
            .get("sign")
            .and_then(|s| s.get(side.as_str()))
            .and_then(Value::as_str)
    }

    /// The bytes both parties sign: `json-stable-stringify(tally without
    /// "sign")`.
    pub fn signed_message(&self) -> String {
        stable_stringify_members(&self.map, |k| k != "sign")
    }

    /// SHA-256 of [`TallyRecord::signed_message`].
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.signed_message().as_bytes()).into()
    }

    /// [`TallyRecord::hash`] in base64url without padding.
    pub fn hash_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.hash())
    }

    /// The tally as MyCHIPs's database hashes it (`mychips.j2h` of the
    /// record without `sign`): the start of the chit chain. Equal to
    /// [`TallyRecord::hash`] for ASCII-only records with integer numbers.
    pub fn database_digest(&self) -> [u8; 32] {
        Sha256::digest(python_json_dumps_members(&self.map, |k| k != "sign").as_bytes()).into()
    }

    /// Signs `side` of the tally with `key`, which must be the key whose JWK
    /// is that side's `cert.public`. The other side's signature, if any, is
    /// kept (each signature covers the tally without `sign`).
    pub fn sign(&mut self, side: Side, key: &TallyKey) -> Result<(), TallySignError> {
        let certified = self
            .party(side)
            .public_key()
            .map_err(|e| TallySignError::BadKey {
                side,
                reason: e.to_string(),
            })?;
        if certified != key.public_key() {
            return Err(TallySignError::KeyMismatch { side });
        }
        let signature = key
            .sign(self.signed_message().as_bytes())
            .map_err(TallySignError::Signing)?;
        let sign = self
            .map
            .entry("sign")
            .or_insert_with(|| Value::Object(Map::new()));
        if !sign.is_object() {
            *sign = Value::Object(Map::new());
        }
        if let Some(sign) = sign.as_object_mut() {
            sign.insert(
                side.as_str().to_owned(),
                Value::String(signature.to_base64url()),
            );
        }
        Ok(())
    }

    /// Checks both signatures; see [`verify_tally_json`].
    pub fn verify(self) -> Result<VerifiedTally, TallyVerifyError> {
        let message = self.signed_message();
        let check = |side: Side| -> Result<TallyPublicKey, SignatureProblem> {
            let key = self
                .party(side)
                .public_key()
                .map_err(|e| SignatureProblem::BadKey(key_reason(&e)))?;
            let text = self.signature(side).ok_or(SignatureProblem::Missing)?;
            let signature = TallySignature::from_base64url(text)
                .map_err(|e| SignatureProblem::Malformed(key_reason(&e)))?;
            key.verify(message.as_bytes(), &signature)
                .map_err(|_| SignatureProblem::Mismatch)?;
            Ok(key)
        };
        match (check(Side::Stock), check(Side::Foil)) {
            (Ok(stock_key), Ok(foil_key)) => {
                let hash = Sha256::digest(message.as_bytes()).into();
                Ok(VerifiedTally {
                    record: self,
                    hash,
                    stock_key,
                    foil_key,
                })
            }
            (stock, foil) => Err(TallyVerifyError::Signatures {
                stock: stock.err(),
                foil: foil.err(),
            }),
        }
    }
}

/// The reason inside a [`KeyError`], without its generic prefix.
pub(crate) fn key_reason(error: &KeyError) -> String {
    match error {
        KeyError::BadJwk(reason) | KeyError::BadSignature(reason) => reason.clone(),
        other => other.to_string(),
    }
}

/// One side of a tally: its certificate and the credit terms it grants.
#[derive(Debug, Clone, Copy)]
pub struct Party<'a> {
    side: Side,
    value: &'a Value,
}

impl<'a> Party<'a> {
    pub fn side(&self) -> Side {
        self.side
    }

    /// The party's CHIP certificate (name, CHIP address, public key, …).
    pub fn cert(&self) -> &'a Value {
        self.value.get("cert").unwrap_or(&Value::Null)
    }

    /// The credit terms this side grants.
    pub fn terms(&self) -> &'a Value {
        self.value.get("terms").unwrap_or(&Value::Null)
    }

    /// `cert.chad.cid`, the party's CHIP ID, if present.
    pub fn cid(&self) -> Option<&'a str> {
        self.cert()
            .get("chad")
            .and_then(|c| c.get("cid"))
            .and_then(Value::as_str)
    }

    /// `cert.chad.agent`, the party's agent address, if present.
    pub fn agent(&self) -> Option<&'a str> {
        self.cert()
            .get("chad")
            .and_then(|c| c.get("agent"))
            .and_then(Value::as_str)
    }

    /// The signing key in `cert.public`: a JWK object, or (as MyCHIPs's
    /// `lib/crypto.js` also accepts) a string holding the JWK's JSON.
    pub fn public_key(&self) -> Result<TallyPublicKey, KeyError> {
        match self.cert().get("public") {
            Some(Value::String(text)) => {
                let jwk = parse_json(text)
                    .map_err(|e| KeyError::BadJwk(format!("it is a string, but not JSON: {e}")))?;
                TallyPublicKey::from_jwk(&jwk)
            }
            Some(jwk) => TallyPublicKey::from_jwk(jwk),
            None => Err(KeyError::BadJwk("the certificate has no \"public\"".into())),
        }
    }
}

/// A tally whose two signatures have been checked.
#[derive(Debug, Clone)]
pub struct VerifiedTally {
    record: TallyRecord,
    hash: [u8; 32],
    stock_key: TallyPublicKey,
    foil_key: TallyPublicKey,
}

impl VerifiedTally {
    pub fn record(&self) -> &TallyRecord {
        &self.record
    }

    pub fn into_record(self) -> TallyRecord {
        self.record
    }

    /// SHA-256 of the signed bytes.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    pub fn hash_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.hash)
    }

    pub fn public_key(&self, side: Side) -> &TallyPublicKey {
        match side {
            Side::Stock => &self.stock_key,
            Side::Foil => &self.foil_key,
        }
    }
}

/// Why a tally does not verify. The message names each failing signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TallyVerifyError {
    #[error("not a tally record: {0}")]
    Record(#[from] RecordError),
    #[error("{}", describe_signatures(stock.as_ref(), foil.as_ref()))]
    Signatures {
        /// `None` when the stock signature is good.
        stock: Option<SignatureProblem>,
        /// `None` when the foil signature is good.
        foil: Option<SignatureProblem>,
    },
}

fn describe_signatures(
    stock: Option<&SignatureProblem>,
    foil: Option<&SignatureProblem>,
) -> String {
    let part = |side: Side, problem: Option<&SignatureProblem>| match problem {
        Some(p) => format!("the {side} signature {p}"),
        None => format!("the {side} signature is good"),
    };
    format!(
        "the tally does not verify: {}; {}",
        part(Side::Stock, stock),
        part(Side::Foil, foil)
    )
}

/// Why a tally could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TallySignError {
    #[error("the {side} certificate's public key is not usable: {reason}")]
    BadKey { side: Side, reason: String },
    #[error("this key is not the one in the {side} certificate of the tally")]
    KeyMismatch { side: Side },
    #[error("signing failed: {0}")]
    Signing(KeyError),
}

/// Reads a tally from JSON text and checks both signatures: what
/// `notch tally verify FILE` runs. On failure the error says which
/// signature failed and why (or which member is missing or malformed).
pub fn verify_tally_json(text: &str) -> Result<VerifiedTally, TallyVerifyError> {
    TallyRecord::parse(text)?.verify()
}

/// Builds the tally records Notch proposes, in MyCHIPs's shape (`comment`
/// kept as `null` when there is none, as MyCHIPs writes it).
#[derive(Debug, Clone)]
pub struct TallyBuilder {
    uuid: String,
    date: String,
    comment: Option<String>,
    agree: Value,
    stock: Option<(Value, Value)>,
    foil: Option<(Value, Value)>,
}

impl TallyBuilder {
    /// `agree` is the contract reference, e.g.
    /// `{"domain":"mychips.org","name":"Tally_Contract","version":1}`.
    pub fn new(uuid: impl Into<String>, date: impl Into<String>, agree: Value) -> Self {
        Self {
            uuid: uuid.into(),
            date: date.into(),
            comment: None,
            agree,
            stock: None,
            foil: None,
        }
    }

    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// The certificate (with `public`, the party's JWK) and terms of `side`.
    pub fn party(mut self, side: Side, cert: Value, terms: Value) -> Self {
        match side {
            Side::Stock => self.stock = Some((cert, terms)),
            Side::Foil => self.foil = Some((cert, terms)),
        }
        self
    }

    /// The unsigned tally, checked like a received one.
    pub fn build(self) -> Result<TallyRecord, RecordError> {
        let mut map = Map::new();
        map.insert("version".into(), Value::from(1u64));
        map.insert("uuid".into(), Value::String(self.uuid));
        map.insert("date".into(), Value::String(self.date));
        map.insert(
            "comment".into(),
            self.comment.map(Value::String).unwrap_or(Value::Null),
        );
        map.insert("agree".into(), self.agree);
        for (side, party) in [(Side::Stock, self.stock), (Side::Foil, self.foil)] {
            let (cert, terms) = party.ok_or_else(|| RecordError::Missing {
                record: RecordKind::Tally,
                field: side.as_str().to_owned(),
            })?;
            let mut half = Map::new();
            half.insert("cert".into(), cert);
            half.insert("terms".into(), terms);
            map.insert(side.as_str().into(), Value::Object(half));
        }
        TallyRecord::from_value(Value::Object(map))
    }
}

/// A time as PostgreSQL renders a `timestamptz` in JSON with the session
/// in UTC (`2024-05-25T03:16:32.035+00:00`: microseconds, trailing zeros
/// dropped). MyCHIPs stores tally and chit dates as `timestamptz` and
/// re-renders them this way, so a date written in this form survives the
/// round trip through a MyCHIPs database byte for byte, and so do the
/// signatures over it.
pub fn format_date(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let micros = since.subsec_micros();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if micros > 0 {
        let fraction = format!("{micros:06}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push_str("+00:00");
    out
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::keys::{Seed, WalletKeys};

    const VALID: &str = include_str!("../../testdata/mychips-validtally.json");

    fn key(seed: u8) -> TallyKey {
        WalletKeys::new(&Seed::from_bytes(&[seed; 64]).expect("seed"), 0)
            .and_then(|k| k.tally_key())
            .expect("tally key")
    }

    fn cert(name: &str, key: &TallyKey) -> Value {
        json!({"chad": {"cid": name, "agent": "QUdFTlQ"}, "name": {"first": name},
               "public": key.public_key().to_jwk(), "type": "p"})
    }

    fn unsigned(stock: &TallyKey, foil: &TallyKey) -> TallyRecord {
        TallyBuilder::new(
            "7b3b4cfa-0000-4000-8000-000000000001",
            "2025-01-02T03:04:05.678+00:00",
            json!({"domain": "mychips.org", "name": "Tally_Contract", "version": 1}),
        )
        .party(
            Side::Stock,
            cert("stocky", stock),
            json!({"limit": 100_000}),
        )
        .party(Side::Foil, cert("foily", foil), json!({}))
        .build()
        .expect("builds")
    }

    #[test]
    fn the_mychips_reference_tally_verifies() {
        let verified = verify_tally_json(VALID).expect("MyCHIPs's own tally verifies");
        let record = verified.record();
        assert_eq!(record.signed_message().len(), 2189);
        assert_eq!(
            verified.hash_base64url(),
            "3NPx7F5mfAiqyvo2IWPNmqFI5il_cx-8DnYZFEAD4so"
        );
        assert_eq!(record.hash(), verified.hash());
        assert!(record.signed_message().contains("\"comment\":null"));
        assert_eq!(record.uuid(), "389b7744-1ed6-503d-8786-45fd5142e920");
        assert_eq!(record.version(), 1);
        assert_eq!(record.date(), "2024-05-25T03:16:32.035Z");
        assert_eq!(record.comment(), None);
        assert_eq!(record.agree()["name"], "deluxe");
        assert_eq!(record.party(Side::Stock).cid(), Some("fran_lee"));
        assert_eq!(record.party(Side::Foil).cid(), Some("james_madison"));
        assert_eq!(record.party(Side::Foil).agent(), Some("UTY1NDM1"));
        // ASCII-only with integers: the database form is the same bytes.
        assert_eq!(record.database_digest(), record.hash());
    }

    #[test]
    fn a_tampered_reference_tally_names_the_failing_signature() {
        let mut value: Value = serde_json::from_str(VALID).expect("JSON");
        value["sign"]["foil"] = value["sign"]["stock"].clone();
        let err = TallyRecord::from_value(value)
            .expect("still a record")
            .verify()
            .expect_err("foil signature is the stock's");
        assert_eq!(
            err,
            TallyVerifyError::Signatures {
                stock: None,
                foil: Some(SignatureProblem::Mismatch)
            }
        );
        let text = err.to_string();
        assert!(text.contains("the foil signature does not match"), "{text}");
        assert!(text.contains("the stock signature is good"), "{text}");

        let mut value: Value = serde_json::from_str(VALID).expect("JSON");
        value["comment"] = json!("added later");
        let err = TallyRecord::from_value(value)
            .expect("record")
            .verify()
            .expect_err("both fail");
        assert_eq!(
            err,
            TallyVerifyError::Signatures {
                stock: Some(SignatureProblem::Mismatch),
                foil: Some(SignatureProblem::Mismatch)
            }
        );
    }

    #[test]
    fn bad_members_give_typed_errors() {
        let base: Value = serde_json::from_str(VALID).expect("JSON");
        let with = |path: &[&str], v: Option<Value>| {
            let mut t = base.clone();
            let mut at = &mut t;
            for p in &path[..path.len() - 1] {
                at = &mut at[*p];
            }
            let last = path[path.len() - 1];
            match (v, at.as_object_mut()) {
                (Some(v), Some(map)) => {
                    map.insert(last.into(), v);
                }
                (None, Some(map)) => {
                    map.remove(last);
                }
                _ => {}
            }
            TallyRecord::from_value(t)
        };
        assert!(matches!(
            with(&["uuid"], None),
            Err(RecordError::Missing { field, .. }) if field == "uuid"
        ));
        assert!(matches!(
            with(&["version"], Some(json!("1"))),
            Err(RecordError::WrongType { field, found: "a string", .. }) if field == "version"
        ));
        assert!(matches!(
            with(&["version"], Some(json!(-1))),
            Err(RecordError::Invalid { .. })
        ));
        assert!(matches!(
            with(&["stock", "cert"], None),
            Err(RecordError::Missing { field, .. }) if field == "stock.cert"
        ));
        assert!(matches!(
            with(&["foil", "cert", "public"], Some(json!(5))),
            Err(RecordError::WrongType { field, .. }) if field == "foil.cert.public"
        ));
        assert!(matches!(
            with(&["sign"], Some(json!("x"))),
            Err(RecordError::WrongType { field, .. }) if field == "sign"
        ));
        assert!(matches!(
            with(&["sign", "stock"], Some(json!(7))),
            Err(RecordError::WrongType { field, .. }) if field == "sign.stock"
        ));
        assert!(matches!(
            with(&["comment"], Some(json!([]))),
            Err(RecordError::WrongType { .. })
        ));
        assert!(matches!(
            TallyRecord::from_value(json!([1])),
            Err(RecordError::NotAnObject {
                found: "an array",
                ..
            })
        ));
        assert!(matches!(
            TallyRecord::parse("{"),
            Err(RecordError::Json(JsonError::Invalid { .. }))
        ));
        // A JWK that is not a P-521 point, a signature that is not base64.
        let mut t = base.clone();
        t["stock"]["cert"]["public"]["x"] = json!("AAAA");
        t["sign"]["foil"] = json!("not base64!");
        let err = TallyRecord::from_value(t)
            .expect("record")
            .verify()
            .expect_err("fails");
        assert!(
            matches!(
                err,
                TallyVerifyError::Signatures {
                    stock: Some(SignatureProblem::BadKey(_)),
                    foil: Some(SignatureProblem::Malformed(_))
                }
            ),
            "{err:?}"
        );
        let mut t = base.clone();
        if let Some(sign) = t["sign"].as_object_mut() {
            sign.remove("stock");
        }
        let err = TallyRecord::from_value(t)
            .expect("record")
            .verify()
            .expect_err("fails");
        assert!(matches!(
            err,
            TallyVerifyError::Signatures {
                stock: Some(SignatureProblem::Missing),
                foil: None
            }
        ));
    }

    #[test]
    fn notch_builds_signs_and_verifies_a_tally() {
        let (stock, foil) = (key(1), key(2));
        let mut tally = unsigned(&stock, &foil);
        let message = tally.signed_message();
        assert!(message.starts_with("{\"agree\":"), "{message}");
        assert!(message.contains("\"comment\":null"));
        assert!(matches!(
            tally.clone().verify(),
            Err(TallyVerifyError::Signatures {
                stock: Some(SignatureProblem::Missing),
                foil: Some(SignatureProblem::Missing)
            })
        ));
        assert_eq!(
            tally.sign(Side::Stock, &foil),
            Err(TallySignError::KeyMismatch { side: Side::Stock })
        );
        tally.sign(Side::Stock, &stock).expect("stock signs");
        assert_eq!(tally.signed_message(), message, "sign is not covered");
        tally.sign(Side::Foil, &foil).expect("foil signs");
        let text = tally.to_json();
        let verified = verify_tally_json(&text).expect("verifies");
        assert_eq!(verified.public_key(Side::Foil), &foil.public_key());
        assert_eq!(verified.record(), &tally);
        // Unknown members are kept and covered.
        let mut value = tally.to_value();
        value["future"] = json!({"x": 1});
        let err = TallyRecord::from_value(value).expect("record").verify();
        assert!(err.is_err(), "an added member breaks both signatures");
        // A string JWK (as MyCHIPs's crypto.js accepts) works too.
        let mut value = tally.to_value();
        value["stock"]["cert"]["public"] = json!(stock.public_key().to_jwk().to_string());
        let record = TallyRecord::from_value(value).expect("record");
        assert_eq!(
            record.party(Side::Stock).public_key(),
            Ok(stock.public_key())
        );
    }

    #[test]
    fn the_builder_needs_both_parties() {
        let err = TallyBuilder::new("u", "d", json!({}))
            .party(Side::Stock, cert("s", &key(1)), json!({}))
            .build()
            .expect_err("no foil");
        assert!(matches!(err, RecordError::Missing { field, .. } if field == "foil"));
    }

    #[test]
    fn dates_are_written_as_postgresql_renders_them() {
        let at = |secs: u64, micros: u32| {
            format_date(
                UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros.into()),
            )
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00+00:00");
        assert_eq!(at(1_716_606_992, 35_000), "2024-05-25T03:16:32.035+00:00");
        assert_eq!(at(951_782_400, 1), "2000-02-29T00:00:00.000001+00:00");
        assert_eq!(
            at(4_102_444_799, 999_999),
            "2099-12-31T23:59:59.999999+00:00"
        );
    }
}
