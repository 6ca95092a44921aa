//! The chit record, its signature, its hash and the chit chain's hashes,
//! as MyCHIPs defines them.
//!
//! A chit is a pledge (`type` `"tran"`) or a setting (`"set"`) on a tally,
//! signed by the party that issues it (`by`):
//!
//! ```json
//! {"tally":"<tally uuid>", "by":"foil", "type":"tran", "uuid":"…",
//!  "date":"2024-05-25T03:16:32.035+00:00", "units":1234500,
//!  "ref":{"invoice":"A-17"}, "memo":"Consulting",
//!  "sign":"base64url r||s", …chain members…}
//! ```
//!
//! `units` are milliCHIPs, never negative; who owes whom follows from `by`.
//! A setting chit carries its settings in `ref` and usually no `units`.
//!
//! # What is signed
//!
//! Exactly the eight members MyCHIPs signs (`lib/chit.js`, `signCheck`:
//! `{by, date, memo, ref, tally, type, units, uuid}`), taken from the chit
//! as received, serialized with `json-stable-stringify`; a member that is
//! absent stays absent, one that is `null` stays `null`. The issuer signs
//! with the key in its own half of the tally (`tally[by].cert.public`).
//! Other members of a chit (`sign`, and the chain members `index`, `hash`,
//! `chain`, …) are not covered by the signature — this is MyCHIPs's rule,
//! not Notch's choice; a chit's chain position is protected by the chain
//! hash instead.
//!
//! # Hashes
//!
//! - [`ChitRecord::hash`]: SHA-256 of the signed bytes. It is MyCHIPs's
//!   chit digest (`schema/chits.wms`: `ch.digest =
//!   mychips.j2h(mychips.chit_json_c(ch, trec)) -- Hash that the issuer
//!   signs`).
//! - [`chain_hash`]: the link of a chit in the tally's hash chain,
//!   `SHA-256(j2h-serialization(core ∪ {"index": i, "prior": "\\x<hex of
//!   the previous link>", "signed": sign}))`, nulls stripped, where `core`
//!   is the signed members. The first chit's `prior` is the tally's
//!   [`database_digest`](super::TallyRecord::database_digest)
//!   (`schema/chains.wms`, `chain_consense`: `prevHash = ta.digest --
//!   Begin with hash of the tally`; `chit_json_h` in `schema/chits.wms`).
//!   `j2h` is PL/Python's `json.dumps(…, separators=(',',':'),
//!   sort_keys=True)` ([`python_json_dumps`]); `prior` is a `bytea`, which
//!   PostgreSQL writes into JSON as the text `\x` followed by lowercase hex
//!   ([`bytea_text`]).
//!
//! These are pure functions; deciding which chit gets which index (the
//! consensus between stock and foil) is the chain state machine's job.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::canonical::{parse_json, python_json_dumps, stable_stringify_members};
use super::record::{
    Check, RecordError, RecordKind, Side, SignatureProblem, TallyRecord, key_reason,
};
use crate::keys::{KeyError, TallyKey, TallyPublicKey, TallySignature};

/// The members a chit's signature covers, as MyCHIPs lists them.
pub const CHIT_SIGNED_FIELDS: [&str; 8] = [
    "by", "date", "memo", "ref", "tally", "type", "units", "uuid",
];

/// The name of the signature member inside the chain-hash object, as in
/// `chit_json_h` of `schema/chits.wms` (see the module docs).
pub const CHAIN_SIGNATURE_FIELD: &str = "signed";

const CHIT: Check = Check {
    record: RecordKind::Chit,
};

/// What a chit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChitType {
    /// `"tran"`: a pledge of value.
    Transaction,
    /// `"set"`: a tally setting (trading variables, close, call date).
    Setting,
    /// `"lift"`: part of a credit lift (signed by a site or referee).
    Lift,
}

impl ChitType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChitType::Transaction => "tran",
            ChitType::Setting => "set",
            ChitType::Lift => "lift",
        }
    }

    pub fn parse(text: &str) -> Option<ChitType> {
        match text {
            "tran" => Some(ChitType::Transaction),
            "set" => Some(ChitType::Setting),
            "lift" => Some(ChitType::Lift),
            _ => None,
        }
    }
}

/// A chit record: a JSON object whose members Notch reads have been checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ChitRecord {
    map: Map<String, Value>,
}

impl ChitRecord {
    /// Parses a chit from JSON text.
    pub fn parse(text: &str) -> Result<Self, RecordError> {
        Self::from_value(parse_json(text)?)
    }

    /// Checks a parsed chit.
    pub fn from_value(value: Value) -> Result<Self, RecordError> {
        let map = CHIT.object(value)?;
        CHIT.string(&map, "tally", "tally")?;
        let by = CHIT.string(&map, "by", "by")?;
        if Side::parse(by).is_none() {
            return Err(CHIT.invalid("by", format!("{by:?} is neither \"stock\" nor \"foil\"")));
        }
        let kind = CHIT.string(&map, "type", "type")?;
        let kind = ChitType::parse(kind).ok_or_else(|| {
            CHIT.invalid(
                "type",
                format!("{kind:?} is not \"tran\", \"set\" or \"lift\""),
            )
        })?;
        CHIT.string(&map, "uuid", "uuid")?;
        CHIT.string(&map, "date", "date")?;
        match (map.get("units"), kind) {
            (None | Some(Value::Null), ChitType::Setting) => {}
            (None, _) => {
                return Err(RecordError::Missing {
                    record: RecordKind::Chit,
                    field: "units".into(),
                });
            }
            (Some(units), _) => {
                CHIT.unsigned(units, "units")?;
            }
        }
        CHIT.optional_string(&map, "memo", "memo")?;
        CHIT.optional_string(&map, "sign", "sign")?;
        Ok(Self { map })
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.map.clone())
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.map)
    }

    /// Compact JSON for sending (keys sorted).
    pub fn to_json(&self) -> String {
        stable_stringify_members(&self.map, |_| true)
    }

    fn str_member(&self, name: &str) -> &str {
        self.map
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The uuid of the tally this chit belongs to.
    pub fn tally_uuid(&self) -> &str {
        self.str_member("tally")
    }

    /// Which side issued (and signs) the chit.
    pub fn by(&self) -> Side {
        Side::parse(self.str_member("by")).unwrap_or(Side::Foil)
    }

    pub fn chit_type(&self) -> ChitType {
        ChitType::parse(self.str_member("type")).unwrap_or(ChitType::Transaction)
    }

    pub fn uuid(&self) -> &str {
        self.str_member("uuid")
    }

    pub fn date(&self) -> &str {
        self.str_member("date")
    }

    /// milliCHIPs; `None` for a setting chit without units.
    pub fn units(&self) -> Option<u64> {
        self.map.get("units").and_then(Value::as_u64)
    }

    /// `ref`: invoice or order references, or a setting chit's settings.
    pub fn reference(&self) -> Option<&Value> {
        self.map.get("ref").filter(|v| !v.is_null())
    }

    pub fn memo(&self) -> Option<&str> {
        self.map.get("memo").and_then(Value::as_str)
    }

    /// The issuer's base64url signature, if present.
    pub fn signature(&self) -> Option<&str> {
        self.map.get("sign").and_then(Value::as_str)
    }

    /// The bytes the issuer signs (see the module docs).
    pub fn signed_message(&self) -> String {
        stable_stringify_members(&self.map, |k| CHIT_SIGNED_FIELDS.contains(&k))
    }

    /// SHA-256 of [`ChitRecord::signed_message`]: MyCHIPs's chit digest.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.signed_message().as_bytes()).into()
    }

    /// Signs the chit with `key` (the issuer's) and stores it in `sign`.
    pub fn sign(&mut self, key: &TallyKey) -> Result<(), ChitSignError> {
        let signature = key
            .sign(self.signed_message().as_bytes())
            .map_err(ChitSignError::Signing)?;
        self.map
            .insert("sign".into(), Value::String(signature.to_base64url()));
        Ok(())
    }

    /// Signs the chit for `tally`: the key must be the issuer's key in
    /// that tally, and the chit must belong to it.
    pub fn sign_for(&mut self, tally: &TallyRecord, key: &TallyKey) -> Result<(), ChitSignError> {
        if self.tally_uuid() != tally.uuid() {
            return Err(ChitSignError::WrongTally {
                chit: self.tally_uuid().to_owned(),
                tally: tally.uuid().to_owned(),
            });
        }
        let side = self.by();
        let certified = tally
            .party(side)
            .public_key()
            .map_err(|e| ChitSignError::BadKey {
                side,
                reason: key_reason(&e),
            })?;
        if certified != key.public_key() {
            return Err(ChitSignError::KeyMismatch { side });
        }
        self.sign(key)
    }

    /// Checks the signature against the issuer's key.
    pub fn verify_with(&self, key: &TallyPublicKey) -> Result<(), SignatureProblem> {
        let text = self.signature().ok_or(SignatureProblem::Missing)?;
        let signature = TallySignature::from_base64url(text)
            .map_err(|e| SignatureProblem::Malformed(key_reason(&e)))?;
        key.verify(self.signed_message().as_bytes(), &signature)
            .map_err(|_| SignatureProblem::Mismatch)
    }

    /// Checks that the chit belongs to `tally` and is signed by its issuer's
    /// key there.
    pub fn verify(self, tally: &TallyRecord) -> Result<VerifiedChit, ChitVerifyError> {
        if self.tally_uuid() != tally.uuid() {
            return Err(ChitVerifyError::WrongTally {
                chit: self.tally_uuid().to_owned(),
                tally: tally.uuid().to_owned(),
            });
        }
        let side = self.by();
        let key = tally
            .party(side)
            .public_key()
            .map_err(|e| ChitVerifyError::Signature {
                side,
                problem: SignatureProblem::BadKey(key_reason(&e)),
            })?;
        self.verify_with(&key)
            .map_err(|problem| ChitVerifyError::Signature { side, problem })?;
        let hash = self.hash();
        Ok(VerifiedChit { record: self, hash })
    }
}

/// Reads a chit from JSON text and checks it against its tally.
pub fn verify_chit_json(text: &str, tally: &TallyRecord) -> Result<VerifiedChit, ChitVerifyError> {
    ChitRecord::parse(text)?.verify(tally)
}

/// A chit whose issuer's signature has been checked.
#[derive(Debug, Clone)]
pub struct VerifiedChit {
    record: ChitRecord,
    hash: [u8; 32],
}

impl VerifiedChit {
    pub fn record(&self) -> &ChitRecord {
        &self.record
    }

    pub fn into_record(self) -> ChitRecord {
        self.record
    }

    /// [`ChitRecord::hash`].
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }
}

/// Why a chit does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChitVerifyError {
    #[error("not a chit record: {0}")]
    Record(#[from] RecordError),
    #[error("the chit belongs to tally {chit}, not to tally {tally}")]
    WrongTally { chit: String, tally: String },
    #[error("the chit's signature by its issuer, the {side}, {problem}")]
    Signature {
        side: Side,
        problem: SignatureProblem,
    },
}

/// Why a chit could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChitSignError {
    #[error("the chit belongs to tally {chit}, not to tally {tally}")]
    WrongTally { chit: String, tally: String },
    #[error("the {side} certificate's public key is not usable: {reason}")]
    BadKey { side: Side, reason: String },
    #[error("this key is not the {side}'s key in the tally, and the {side} issues this chit")]
    KeyMismatch { side: Side },
    #[error("signing failed: {0}")]
    Signing(KeyError),
}

/// Builds the chits Notch issues, in MyCHIPs's shape: members without a
/// value are left out (MyCHIPs strips nulls from chits), and so are nulls
/// inside `ref`, so the record reads back the same after a trip through a
/// MyCHIPs database (which strips them too).
#[derive(Debug, Clone)]
pub struct ChitBuilder {
    tally: String,
    by: Side,
    kind: ChitType,
    uuid: String,
    date: String,
    units: Option<u64>,
    reference: Option<Value>,
    memo: Option<String>,
}

impl ChitBuilder {
    /// A pledge of `units` milliCHIPs by `by` on tally `tally`.
    pub fn transaction(
        tally: impl Into<String>,
        by: Side,
        uuid: impl Into<String>,
        date: impl Into<String>,
        units: u64,
    ) -> Self {
        Self {
            tally: tally.into(),
            by,
            kind: ChitType::Transaction,
            uuid: uuid.into(),
            date: date.into(),
            units: Some(units),
            reference: None,
            memo: None,
        }
    }

    /// A setting chit; `settings` goes into `ref` (e.g. `{"target":…,
    /// "bound":…}`, `{"close":true}`).
    pub fn setting(
        tally: impl Into<String>,
        by: Side,
        uuid: impl Into<String>,
        date: impl Into<String>,
        settings: Value,
    ) -> Self {
        Self {
            tally: tally.into(),
            by,
            kind: ChitType::Setting,
            uuid: uuid.into(),
            date: date.into(),
            units: None,
            reference: Some(settings),
            memo: None,
        }
    }

    pub fn memo(mut self, memo: impl Into<String>) -> Self {
        self.memo = Some(memo.into());
        self
    }

    pub fn reference(mut self, reference: Value) -> Self {
        self.reference = Some(reference);
        self
    }

    /// The unsigned chit, checked like a received one.
    pub fn build(self) -> Result<ChitRecord, RecordError> {
        let mut map = Map::new();
        map.insert("tally".into(), Value::String(self.tally));
        map.insert("by".into(), Value::String(self.by.as_str().into()));
        map.insert("type".into(), Value::String(self.kind.as_str().into()));
        map.insert("uuid".into(), Value::String(self.uuid));
        map.insert("date".into(), Value::String(self.date));
        if let Some(units) = self.units {
            map.insert("units".into(), Value::from(units));
        }
        if let Some(reference) = self.reference.map(strip_nulls).filter(|r| !r.is_null()) {
            map.insert("ref".into(), reference);
        }
        if let Some(memo) = self.memo {
            map.insert("memo".into(), Value::String(memo));
        }
        ChitRecord::from_value(Value::Object(map))
    }
}

/// PostgreSQL's `jsonb_strip_nulls`: removes object members whose value is
/// `null`, at every depth (nulls inside arrays stay).
pub fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// The start of a tally's chit chain: the `prior` of chit 1.
pub fn chain_genesis(tally: &TallyRecord) -> [u8; 32] {
    tally.database_digest()
}

/// The object whose `j2h` is the chain hash of `chit` at `index`, after
/// `prior` (see the module docs), serialized.
pub fn chain_message(chit: &ChitRecord, index: u64, prior: &[u8; 32]) -> String {
    let mut map: Map<String, Value> = chit
        .as_map()
        .iter()
        .filter(|(k, _)| CHIT_SIGNED_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    map.insert("index".into(), Value::from(index));
    map.insert("prior".into(), Value::String(bytea_text(prior)));
    if let Some(sign) = chit.signature() {
        map.insert(CHAIN_SIGNATURE_FIELD.into(), Value::String(sign.to_owned()));
    }
    python_json_dumps(&strip_nulls(Value::Object(map)))
}

/// The chain hash of `chit` placed at `index` after the link `prior`.
pub fn chain_hash(chit: &ChitRecord, index: u64, prior: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(chain_message(chit, index, prior).as_bytes()).into()
}

/// One link of a chit chain: a chit's position and the hash that ends the
/// chain there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLink {
    /// 1 for the first chit.
    pub index: u64,
    pub hash: [u8; 32],
}

/// Links `chit` after `previous` (or first, after the tally's genesis).
pub fn next_link(
    tally: &TallyRecord,
    previous: Option<&ChainLink>,
    chit: &ChitRecord,
) -> ChainLink {
    let (index, prior) = match previous {
        Some(link) => (link.index + 1, link.hash),
        None => (1, chain_genesis(tally)),
    };
    ChainLink {
        index,
        hash: chain_hash(chit, index, &prior),
    }
}

/// A `bytea` as PostgreSQL writes it into JSON: `\x` and lowercase hex.
pub fn bytea_text(bytes: &[u8]) -> String {
    format!("\\x{}", hex::encode(bytes))
}

/// Reads [`bytea_text`] (how MyCHIPs sends `chain` hashes).
pub fn parse_bytea_text(text: &str) -> Result<Vec<u8>, BytesError> {
    let digits = text.strip_prefix("\\x").ok_or(BytesError::NoPrefix)?;
    hex::decode(digits).map_err(|e| BytesError::NotHex(e.to_string()))
}

/// Why a text is not a PostgreSQL `bytea`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BytesError {
    #[error("a hash in PostgreSQL's form starts with \\x")]
    NoPrefix,
    #[error("a hash in PostgreSQL's form is hexadecimal after \\x: {0}")]
    NotHex(String),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::keys::{Seed, WalletKeys};
    use crate::tally::TallyBuilder;
    use crate::tally::canonical::stable_stringify;

    fn key(seed: u8) -> TallyKey {
        WalletKeys::new(&Seed::from_bytes(&[seed; 64]).expect("seed"), 0)
            .and_then(|k| k.tally_key())
            .expect("tally key")
    }

    fn tally(stock: &TallyKey, foil: &TallyKey) -> TallyRecord {
        let cert = |k: &TallyKey| json!({"public": k.public_key().to_jwk()});
        TallyBuilder::new("tally-1", "2025-01-01T00:00:00+00:00", json!({"name": "x"}))
            .party(Side::Stock, cert(stock), json!({}))
            .party(Side::Foil, cert(foil), json!({}))
            .build()
            .expect("tally")
    }

    fn chit(units: u64) -> ChitRecord {
        ChitBuilder::transaction(
            "tally-1",
            Side::Foil,
            "chit-1",
            "2025-01-02T00:00:00+00:00",
            units,
        )
        .memo("Thanks!")
        .reference(json!({"invoice": "A-17", "note": null}))
        .build()
        .expect("chit")
    }

    #[test]
    fn the_signed_bytes_are_mychips_eight_members() {
        let mut c = chit(1234500);
        c.map.insert("index".into(), json!(3));
        c.map.insert("chain".into(), json!("\\x00"));
        assert_eq!(
            c.signed_message(),
            r#"{"by":"foil","date":"2025-01-02T00:00:00+00:00","memo":"Thanks!","ref":{"invoice":"A-17"},"tally":"tally-1","type":"tran","units":1234500,"uuid":"chit-1"}"#
        );
        // A present null stays null (MyCHIPs's JavaScript keeps it too).
        c.map.insert("memo".into(), Value::Null);
        assert!(c.signed_message().contains("\"memo\":null"));
    }

    #[test]
    fn issuer_signs_and_anyone_verifies() {
        let (stock, foil) = (key(1), key(2));
        let t = tally(&stock, &foil);
        let mut c = chit(500);
        assert_eq!(
            c.sign_for(&t, &stock),
            Err(ChitSignError::KeyMismatch { side: Side::Foil })
        );
        c.sign_for(&t, &foil).expect("foil signs its chit");
        let verified = verify_chit_json(&c.to_json(), &t).expect("verifies");
        assert_eq!(verified.hash(), c.hash());
        assert_eq!(verified.record().units(), Some(500));

        // Chain members are not covered by the signature (MyCHIPs's rule) …
        let mut moved = c.clone();
        moved.map.insert("index".into(), json!(9));
        assert!(moved.verify(&t).is_ok());
        // … but every signed member is.
        for (member, value) in [
            ("units", json!(501)),
            ("memo", json!("thanks")),
            ("ref", json!({"invoice": "A-18"})),
            ("date", json!("2025-01-02T00:00:01+00:00")),
            ("uuid", json!("chit-2")),
        ] {
            let mut v = c.to_value();
            v[member] = value;
            let err = ChitRecord::from_value(v)
                .expect("record")
                .verify(&t)
                .expect_err(member);
            assert_eq!(
                err,
                ChitVerifyError::Signature {
                    side: Side::Foil,
                    problem: SignatureProblem::Mismatch
                },
                "{member}"
            );
        }
        let mut v = c.to_value();
        v["by"] = json!("stock");
        assert!(matches!(
            ChitRecord::from_value(v).expect("record").verify(&t),
            Err(ChitVerifyError::Signature {
                side: Side::Stock,
                problem: SignatureProblem::Mismatch
            })
        ));
        let mut v = c.to_value();
        v["tally"] = json!("another");
        assert!(matches!(
            ChitRecord::from_value(v).expect("record").verify(&t),
            Err(ChitVerifyError::WrongTally { .. })
        ));
        assert!(matches!(
            chit(1).verify(&t),
            Err(ChitVerifyError::Signature {
                problem: SignatureProblem::Missing,
                ..
            })
        ));
    }

    #[test]
    fn bad_chits_give_typed_errors() {
        let base = chit(5).into_value();
        let with = |name: &str, v: Option<Value>| {
            let mut c = base.clone();
            if let Some(map) = c.as_object_mut() {
                match v {
                    Some(v) => map.insert(name.into(), v),
                    None => map.remove(name),
                };
            }
            ChitRecord::from_value(c)
        };
        assert!(matches!(
            with("units", Some(json!(-5))),
            Err(RecordError::Invalid { .. })
        ));
        assert!(matches!(
            with("units", Some(json!(1.5))),
            Err(RecordError::Invalid { .. })
        ));
        assert!(matches!(
            with("units", Some(json!("5"))),
            Err(RecordError::WrongType { .. })
        ));
        assert!(matches!(
            with("units", None),
            Err(RecordError::Missing { .. })
        ));
        assert!(matches!(
            with("by", Some(json!("bank"))),
            Err(RecordError::Invalid { .. })
        ));
        assert!(matches!(
            with("type", Some(json!("gift"))),
            Err(RecordError::Invalid { .. })
        ));
        assert!(matches!(
            with("tally", None),
            Err(RecordError::Missing { .. })
        ));
        assert!(matches!(
            with("sign", Some(json!(1))),
            Err(RecordError::WrongType { .. })
        ));
        assert!(matches!(
            with("memo", Some(json!({}))),
            Err(RecordError::WrongType { .. })
        ));
        assert!(matches!(
            ChitRecord::parse("[]"),
            Err(RecordError::NotAnObject { .. })
        ));
        let mut c = chit(5);
        c.map.insert("sign".into(), json!("AAAA"));
        let t = tally(&key(1), &key(2));
        assert!(matches!(
            c.verify(&t),
            Err(ChitVerifyError::Signature {
                problem: SignatureProblem::Malformed(_),
                ..
            })
        ));
    }

    #[test]
    fn setting_chits_carry_settings_in_ref() {
        let c = ChitBuilder::setting("tally-1", Side::Stock, "set-1", "d", json!({"close": true}))
            .build()
            .expect("setting");
        assert_eq!(c.chit_type(), ChitType::Setting);
        assert_eq!(c.units(), None);
        assert_eq!(c.reference(), Some(&json!({"close": true})));
        assert_eq!(
            c.signed_message(),
            r#"{"by":"stock","date":"d","ref":{"close":true},"tally":"tally-1","type":"set","uuid":"set-1"}"#
        );
    }

    #[test]
    fn chain_hashes_follow_chit_json_h() {
        let (stock, foil) = (key(1), key(2));
        let t = tally(&stock, &foil);
        let mut first = chit(500);
        first.sign(&foil).expect("signs");
        let genesis = chain_genesis(&t);
        assert_eq!(genesis, t.database_digest());
        let message = chain_message(&first, 1, &genesis);
        let sign = first.signature().unwrap_or_default();
        assert_eq!(
            message,
            format!(
                r#"{{"by":"foil","date":"2025-01-02T00:00:00+00:00","index":1,"memo":"Thanks!","prior":"\\x{}","ref":{{"invoice":"A-17"}},"signed":"{sign}","tally":"tally-1","type":"tran","units":500,"uuid":"chit-1"}}"#,
                hex::encode(genesis)
            )
        );
        let link1 = next_link(&t, None, &first);
        assert_eq!(link1.index, 1);
        assert_eq!(link1.hash, chain_hash(&first, 1, &genesis));
        let second = chit(7);
        let link2 = next_link(&t, Some(&link1), &second);
        assert_eq!(link2.index, 2);
        assert_eq!(link2.hash, chain_hash(&second, 2, &link1.hash));
        assert_ne!(
            link2.hash,
            chain_hash(&second, 2, &genesis),
            "prior is covered"
        );
        assert_ne!(
            chain_hash(&second, 3, &link1.hash),
            link2.hash,
            "index is covered"
        );
        // An unsigned chit (a lift chit before its referee signs) has no
        // "signed" member: nulls are stripped.
        assert!(!chain_message(&second, 2, &link1.hash).contains("signed"));
        // For this ASCII-only chit, j2h and json-stable-stringify agree.
        let parsed = parse_json(&message).expect("JSON");
        assert_eq!(stable_stringify(&parsed), message);
    }

    #[test]
    fn bytea_text_round_trips() {
        let hash = [0xabu8; 32];
        let text = bytea_text(&hash);
        assert!(text.starts_with("\\xabab"));
        assert_eq!(parse_bytea_text(&text), Ok(hash.to_vec()));
        assert_eq!(parse_bytea_text("abab"), Err(BytesError::NoPrefix));
        assert!(matches!(
            parse_bytea_text("\\xzz"),
            Err(BytesError::NotHex(_))
        ));
    }

    #[test]
    fn strip_nulls_is_recursive_for_objects_only() {
        assert_eq!(
            strip_nulls(json!({"a": null, "b": {"c": null, "d": 1}, "e": [null, {"f": null}]})),
            json!({"b": {"d": 1}, "e": [null, {}]})
        );
    }
}
