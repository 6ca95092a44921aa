//! The chit and consensus messages, in MyCHIPs's JSON shapes.
//!
//! Chit messages (`lib/chit.js`, `mychips.chit_notify_agent` in
//! `schema/chits.wms`):
//!
//! ```json
//! {"target":"chit","action":"good","object":{<chit record>,
//!   "digest":"\\x<chit hash>","index":3,"chain":"\\x<chain hash>"}}
//! ```
//!
//! `action` is `pend` (an invoice), `good` (a signed chit) or `void` (an
//! invoice refused). `index`/`chain` are the chit's place in the sender's
//! chain (MyCHIPs `chit_json_r`): final when the foil sends them, a
//! proposal (`propHash`) when the stock does.
//!
//! Consensus messages (`action: "chain"`, `mychips.chain_notify_agent` in
//! `schema/chains.wms`, sub-commands from `doc/learn-message.md`,
//! "Consensus Messages"):
//!
//! ```json
//! {"target":"chit","action":"chain","sub":"upd","object":{"tally":"…",
//!   "uuid":"<chit answered, if any>","index":5,"chain":"\\x…",
//!   "chits":[<chit objects as above, index and chain included>]}}
//! {"target":"chit","action":"chain","sub":"req","object":{"tally":"…","index":2,"chain":"\\x…"}}
//! {"target":"chit","action":"chain","sub":"err","object":{"tally":"…","index":2,"error":"…"}}
//! ```
//!
//! `upd` (foil → stock) gives the end of the foil's chain and, optionally,
//! a run of linked chits; no chits means "acknowledged" (MyCHIPs's ACK).
//! `req` (stock → foil) asks for the chits after a point both agree on.
//! `err` reports that a side cannot reconcile. Hashes are written as
//! PostgreSQL writes a `bytea` into JSON (`\x` and lowercase hex), how
//! MyCHIPs reads them back (`(obj->>'chain')::bytea`); index 0 is the start
//! of the chain, whose "hash" is the tally's database digest.
//!
//! The envelope members the agent adds (`to`, `from`, `try`, `last`) are
//! not this module's business: [`ChitMessage::to_envelope`] leaves them
//! empty, and parsing ignores them.

use serde_json::{Map, Value};

use super::super::canonical::{JsonError, parse_json, stable_stringify};
use super::super::chit::{BytesError, ChainLink, ChitRecord, bytea_text, parse_bytea_text};
use super::super::record::{RecordError, RecordKind, json_type};
use crate::peer::Envelope;

/// The most chits an `upd` may carry (a received one with more is refused
/// before any signature is checked).
pub const MAX_UPDATE_CHITS: usize = 512;

/// How many bytes of chits Notch puts in one `upd`. A JSON message travels
/// in one Noise packet of at most 65519 bytes (PROTOCOL.md §12); this leaves
/// room for the envelope. At least one chit is always sent, so a longer
/// run takes several `req`/`upd` rounds.
pub const UPDATE_CHIT_BYTES: usize = 48 * 1024;

/// The `action` of a chit message; also the request a chit can carry.
pub use super::state::ChitRequest as ChitAction;

/// A chit with its place in the sender's chain.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkedChit {
    pub chit: ChitRecord,
    pub link: ChainLink,
}

/// One chit or consensus message.
#[derive(Debug, Clone, PartialEq)]
pub enum ChitMessage {
    /// `action: pend | good | void`: a chit, with its place in the
    /// sender's chain when the sender has linked it.
    Chit {
        action: ChitAction,
        chit: ChitRecord,
        link: Option<ChainLink>,
    },
    /// `chain`/`upd` (foil → stock): the end of the foil's chain and a run
    /// of linked chits (none: an acknowledgement).
    Update {
        tally: String,
        /// The chit this answers (MyCHIPs puts the chit's uuid in every
        /// chain message); `None` when it answers a `req`.
        uuid: Option<String>,
        end: ChainLink,
        chits: Vec<LinkedChit>,
    },
    /// `chain`/`req` (stock → foil): send me the chits after `after`.
    Request { tally: String, after: ChainLink },
    /// `chain`/`err`: the sender cannot reconcile its chain with ours.
    Error {
        tally: String,
        index: Option<u64>,
        error: String,
    },
}

/// Why a text is not a chit message Notch reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("not a chit message: {0}")]
    Json(#[from] JsonError),
    #[error("a chit message is a JSON object")]
    NotAnObject,
    #[error("the message is for {found:?}, not for \"chit\"")]
    WrongTarget { found: Option<String> },
    #[error("unknown chit message action {0:?}")]
    UnknownAction(Option<String>),
    #[error("unknown chain message sub-command {0:?} (upd, req or err)")]
    UnknownSub(Option<String>),
    #[error("\"{member}\" of the message {problem}")]
    Member {
        member: String,
        problem: &'static str,
    },
    #[error("\"{member}\" of the message is not a hash: {error}")]
    Hash { member: String, error: BytesError },
    #[error("the chit {place}is not a chit record: {error}")]
    Chit { place: String, error: RecordError },
    #[error("the chit {uuid} arrived with a digest that is not its hash")]
    DigestMismatch { uuid: String },
    #[error("an update carries {count} chits; at most {max} are accepted")]
    TooManyChits { count: usize, max: usize },
}

fn member(name: &str, problem: &'static str) -> MessageError {
    MessageError::Member {
        member: name.to_owned(),
        problem,
    }
}

impl ChitMessage {
    /// The uuid of the tally the message is about.
    pub fn tally(&self) -> &str {
        match self {
            ChitMessage::Chit { chit, .. } => chit.tally_uuid(),
            ChitMessage::Update { tally, .. }
            | ChitMessage::Request { tally, .. }
            | ChitMessage::Error { tally, .. } => tally,
        }
    }

    /// `target`, `action`, `sub` and `object` as one JSON object.
    pub fn to_value(&self) -> Value {
        let mut out = Map::new();
        out.insert("target".into(), Value::from("chit"));
        let object = match self {
            ChitMessage::Chit { action, chit, link } => {
                out.insert("action".into(), Value::from(action.as_str()));
                chit_object(chit, link.as_ref())
            }
            ChitMessage::Update {
                tally,
                uuid,
                end,
                chits,
            } => {
                out.insert("action".into(), Value::from("chain"));
                out.insert("sub".into(), Value::from("upd"));
                let mut object = Map::new();
                object.insert("tally".into(), Value::from(tally.as_str()));
                if let Some(uuid) = uuid {
                    object.insert("uuid".into(), Value::from(uuid.as_str()));
                }
                insert_link(&mut object, end);
                if !chits.is_empty() {
                    let list = chits
                        .iter()
                        .map(|c| Value::Object(chit_object(&c.chit, Some(&c.link))))
                        .collect();
                    object.insert("chits".into(), Value::Array(list));
                }
                object
            }
            ChitMessage::Request { tally, after } => {
                out.insert("action".into(), Value::from("chain"));
                out.insert("sub".into(), Value::from("req"));
                let mut object = Map::new();
                object.insert("tally".into(), Value::from(tally.as_str()));
                insert_link(&mut object, after);
                object
            }
            ChitMessage::Error {
                tally,
                index,
                error,
            } => {
                out.insert("action".into(), Value::from("chain"));
                out.insert("sub".into(), Value::from("err"));
                let mut object = Map::new();
                object.insert("tally".into(), Value::from(tally.as_str()));
                if let Some(index) = index {
                    object.insert("index".into(), Value::from(*index));
                }
                object.insert("error".into(), Value::from(error.as_str()));
                object
            }
        };
        out.insert("object".into(), Value::Object(object));
        Value::Object(out)
    }

    /// Compact JSON with sorted keys (what [`crate::peer`] sends).
    pub fn to_json(&self) -> String {
        stable_stringify(&self.to_value())
    }

    /// The message as a peer envelope; the caller fills in `to`, `from`,
    /// `try` and `last`.
    pub fn to_envelope(&self) -> Envelope {
        Envelope::from_value(self.to_value()).unwrap_or_default()
    }

    /// Reads a message from an envelope (its `to`/`from`/`try`/`last` are
    /// ignored).
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, MessageError> {
        Self::from_value(&envelope.to_value())
    }

    /// Parses a received message (strict JSON, at most 1 MiB).
    pub fn parse(text: &str) -> Result<Self, MessageError> {
        Self::from_value(&parse_json(text)?)
    }

    /// Reads a parsed message. Checks the shape, each chit record, and that
    /// a chit's `digest`, when given, is its hash; signatures and chain
    /// links are checked against the tally by [`super::ChitLedger::apply`].
    pub fn from_value(value: &Value) -> Result<Self, MessageError> {
        let map = value.as_object().ok_or(MessageError::NotAnObject)?;
        let target = map.get("target").and_then(Value::as_str);
        if target != Some("chit") {
            return Err(MessageError::WrongTarget {
                found: map.get("target").map(|t| t.to_string()),
            });
        }
        let action = map.get("action").and_then(Value::as_str);
        let object = map
            .get("object")
            .and_then(Value::as_object)
            .ok_or_else(|| member("object", "must be an object"))?;
        match action {
            Some("chain") => {}
            Some(text) => {
                let action = ChitAction::parse(text)
                    .ok_or_else(|| MessageError::UnknownAction(Some(text.to_owned())))?;
                let (chit, link) = read_chit(object, "")?;
                return Ok(ChitMessage::Chit { action, chit, link });
            }
            None => return Err(MessageError::UnknownAction(None)),
        }
        let tally = object
            .get("tally")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| member("object.tally", "must be a non-empty string"))?
            .to_owned();
        match map.get("sub").and_then(Value::as_str) {
            Some("upd") => {
                let end = read_link(object, "object")?;
                let uuid = match object.get("uuid") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(uuid)) => Some(uuid.clone()),
                    Some(_) => return Err(member("object.uuid", "must be a string")),
                };
                let chits = match object.get("chits") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(list)) => {
                        if list.len() > MAX_UPDATE_CHITS {
                            return Err(MessageError::TooManyChits {
                                count: list.len(),
                                max: MAX_UPDATE_CHITS,
                            });
                        }
                        let mut chits = Vec::with_capacity(list.len());
                        for (at, item) in list.iter().enumerate() {
                            let place = format!("at object.chits[{at}] ");
                            let item = item.as_object().ok_or_else(|| MessageError::Chit {
                                place: place.clone(),
                                error: RecordError::NotAnObject {
                                    record: RecordKind::Chit,
                                    found: json_type(item),
                                },
                            })?;
                            let (chit, link) = read_chit(item, &place)?;
                            let link =
                                link.ok_or_else(|| member("object.chits[].index", "is missing"))?;
                            chits.push(LinkedChit { chit, link });
                        }
                        chits
                    }
                    Some(_) => return Err(member("object.chits", "must be an array")),
                };
                // MyCHIPs's foil sends its corrective `upd` as `chain_send =
                // {chits}` plus `{tally, uuid}` (`mychips.chain_consense` and
                // `chain_notify_agent`, schema/chains.wms at 4c77a8f8): no
                // `index`/`chain` of its own. The run ends with the chit just
                // linked, at the end of the foil's chain, so that is the end.
                let end = match end.or_else(|| chits.last().map(|c| c.link)) {
                    Some(end) => end,
                    None => return Err(member("object.index", "is missing")),
                };
                Ok(ChitMessage::Update {
                    tally,
                    uuid,
                    end,
                    chits,
                })
            }
            Some("req") => {
                let after = read_link(object, "object")?
                    .ok_or_else(|| member("object.index", "is missing"))?;
                Ok(ChitMessage::Request { tally, after })
            }
            Some("err") => {
                let index = match object.get("index") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(
                        v.as_u64()
                            .ok_or_else(|| member("object.index", "must be an integer ≥ 0"))?,
                    ),
                };
                let error = object
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given")
                    .chars()
                    .take(500)
                    .collect();
                Ok(ChitMessage::Error {
                    tally,
                    index,
                    error,
                })
            }
            other => Err(MessageError::UnknownSub(other.map(str::to_owned))),
        }
    }
}

/// The chain members of a chit object: not part of the chit record.
const CHAIN_MEMBERS: [&str; 3] = ["index", "chain", "digest"];

/// A chit as it travels: the record, its digest and (if linked) its place.
fn chit_object(chit: &ChitRecord, link: Option<&ChainLink>) -> Map<String, Value> {
    let mut object = chit.as_map().clone();
    object.insert("digest".into(), Value::from(bytea_text(&chit.hash())));
    if let Some(link) = link {
        insert_link(&mut object, link);
    }
    object
}

fn insert_link(object: &mut Map<String, Value>, link: &ChainLink) {
    object.insert("index".into(), Value::from(link.index));
    object.insert("chain".into(), Value::from(bytea_text(&link.hash)));
}

/// `index` and `chain` of an object: both or neither.
fn read_link(object: &Map<String, Value>, at: &str) -> Result<Option<ChainLink>, MessageError> {
    let index = object.get("index").filter(|v| !v.is_null());
    let chain = object.get("chain").filter(|v| !v.is_null());
    match (index, chain) {
        (None, None) => Ok(None),
        (Some(index), Some(chain)) => {
            let index = index
                .as_u64()
                .ok_or_else(|| member(&format!("{at}.index"), "must be an integer ≥ 0"))?;
            let hash = read_hash(chain, &format!("{at}.chain"))?;
            Ok(Some(ChainLink { index, hash }))
        }
        (Some(_), None) => Err(member(
            &format!("{at}.chain"),
            "is missing (index without chain)",
        )),
        (None, Some(_)) => Err(member(
            &format!("{at}.index"),
            "is missing (chain without index)",
        )),
    }
}

fn read_hash(value: &Value, name: &str) -> Result<[u8; 32], MessageError> {
    let text = value
        .as_str()
        .ok_or_else(|| member(name, "must be a string"))?;
    let bytes = parse_bytea_text(text).map_err(|error| MessageError::Hash {
        member: name.to_owned(),
        error,
    })?;
    bytes
        .try_into()
        .map_err(|_| member(name, "must be a 32-byte hash"))
}

/// A chit object: the record (chain members taken off) and its place.
fn read_chit(
    object: &Map<String, Value>,
    place: &str,
) -> Result<(ChitRecord, Option<ChainLink>), MessageError> {
    let at = if place.is_empty() {
        "object"
    } else {
        "object.chits[]"
    };
    let link = read_link(object, at)?;
    let digest = match object.get("digest").filter(|v| !v.is_null()) {
        Some(d) => Some(read_hash(d, &format!("{at}.digest"))?),
        None => None,
    };
    let mut record: Map<String, Value> = object
        .iter()
        .filter(|(k, _)| !CHAIN_MEMBERS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // MyCHIPs's chit_json_r (schema/chits.wms at 3ba75236) calls the
    // signature "signed"; its records and newer messages call it "sign".
    // Neither is signed, so the rename cannot change what verifies.
    if let Some(signed) = record.remove("signed")
        && !record.contains_key("sign")
    {
        record.insert("sign".into(), signed);
    }
    let chit =
        ChitRecord::from_value(Value::Object(record)).map_err(|error| MessageError::Chit {
            place: place.to_owned(),
            error,
        })?;
    if let Some(digest) = digest
        && digest != chit.hash()
    {
        return Err(MessageError::DigestMismatch {
            uuid: chit.uuid().to_owned(),
        });
    }
    Ok((chit, link))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tally::{ChitBuilder, Side};

    fn chit() -> ChitRecord {
        ChitBuilder::transaction("t-1", Side::Foil, "c-1", "2025-01-02T00:00:00+00:00", 1500)
            .memo("Lunch")
            .build()
            .expect("chit")
    }

    fn link(index: u64, byte: u8) -> ChainLink {
        ChainLink {
            index,
            hash: [byte; 32],
        }
    }

    #[test]
    fn chit_message_shape_and_round_trip() {
        let message = ChitMessage::Chit {
            action: ChitAction::Good,
            chit: chit(),
            link: Some(link(3, 0xab)),
        };
        let text = message.to_json();
        let digest = hex::encode(chit().hash());
        assert_eq!(
            text,
            format!(
                r#"{{"action":"good","object":{{"by":"foil","chain":"\\x{}","date":"2025-01-02T00:00:00+00:00","digest":"\\x{digest}","index":3,"memo":"Lunch","tally":"t-1","type":"tran","units":1500,"uuid":"c-1"}},"target":"chit"}}"#,
                "ab".repeat(32)
            )
        );
        assert_eq!(ChitMessage::parse(&text), Ok(message.clone()));
        // Through an envelope, with the agent's members added.
        let mut envelope = message.to_envelope();
        envelope.attempt = Some(2);
        assert_eq!(ChitMessage::from_envelope(&envelope), Ok(message));
    }

    #[test]
    fn chain_messages_round_trip() {
        let messages = [
            ChitMessage::Update {
                tally: "t-1".into(),
                uuid: Some("c-1".into()),
                end: link(2, 1),
                chits: vec![],
            },
            ChitMessage::Update {
                tally: "t-1".into(),
                uuid: None,
                end: link(2, 1),
                chits: vec![LinkedChit {
                    chit: chit(),
                    link: link(2, 1),
                }],
            },
            ChitMessage::Request {
                tally: "t-1".into(),
                after: link(0, 9),
            },
            ChitMessage::Error {
                tally: "t-1".into(),
                index: Some(4),
                error: "forked".into(),
            },
        ];
        for message in messages {
            let text = message.to_json();
            assert_eq!(ChitMessage::parse(&text), Ok(message), "{text}");
        }
        let ack = ChitMessage::Update {
            tally: "t-1".into(),
            uuid: Some("c-1".into()),
            end: link(2, 0),
            chits: vec![],
        };
        assert_eq!(
            ack.to_json(),
            format!(
                r#"{{"action":"chain","object":{{"chain":"\\x{}","index":2,"tally":"t-1","uuid":"c-1"}},"sub":"upd","target":"chit"}}"#,
                "00".repeat(32)
            )
        );
    }

    /// A MyCHIPs foil's `upd` with chits has no `index`/`chain` of its own
    /// (chain_send = {chits}, plus {tally, uuid}); its chits are MyCHIPs's
    /// `chit_json_r` (`signed`, `digest`, `index`, `chain`). The end is the
    /// last chit's place. With neither chits nor an end it is refused.
    #[test]
    fn mychips_update_with_chits_and_no_end_of_its_own() {
        let linked = |index: u64, byte: u8| {
            let mut object = chit_object(&chit(), Some(&link(index, byte)));
            object.insert("signed".into(), json!("c2lnbmF0dXJl"));
            Value::Object(object)
        };
        let mut other = chit().into_value();
        other["uuid"] = json!("c-2");
        let mut second = chit_object(
            &ChitRecord::from_value(other).expect("chit"),
            Some(&link(3, 7)),
        );
        second.insert("signed".into(), json!("c2lnbmF0dXJl"));
        let upd = json!({"target": "chit", "action": "chain", "sub": "upd",
            "to": {"cid": "x"}, "from": {"cid": "y"},
            "object": {"tally": "t-1", "uuid": "c-2",
                       "chits": [linked(2, 1), Value::Object(second)]}});
        let Ok(ChitMessage::Update {
            tally,
            uuid,
            end,
            chits,
        }) = ChitMessage::from_value(&upd)
        else {
            panic!("not read: {:?}", ChitMessage::from_value(&upd));
        };
        assert_eq!((tally.as_str(), uuid.as_deref()), ("t-1", Some("c-2")));
        assert_eq!(end, link(3, 7));
        assert_eq!(chits.len(), 2);
        assert_eq!(chits[0].link, link(2, 1));
        assert_eq!(chits[1].chit.uuid(), "c-2");
        assert_eq!(chits[1].chit.signature(), Some("c2lnbmF0dXJl"));
        // An explicit end still wins; no chits and no end is refused.
        let mut with_end = upd.clone();
        with_end["object"]["index"] = json!(4);
        with_end["object"]["chain"] = json!(format!("\\x{}", "05".repeat(32)));
        assert!(matches!(
            ChitMessage::from_value(&with_end),
            Ok(ChitMessage::Update { end, .. }) if end == link(4, 5)
        ));
        let bare = json!({"target": "chit", "action": "chain", "sub": "upd",
            "object": {"tally": "t-1", "uuid": "c-2"}});
        assert!(matches!(
            ChitMessage::from_value(&bare),
            Err(MessageError::Member { .. })
        ));
    }

    #[test]
    fn mychips_signed_member_is_read_as_sign() {
        let mut object = chit().into_value();
        object["signed"] = json!("c2lnbmF0dXJl");
        let message = json!({"target": "chit", "action": "good", "object": object});
        let Ok(ChitMessage::Chit { chit: read, .. }) = ChitMessage::from_value(&message) else {
            panic!("not read");
        };
        assert_eq!(read.signature(), Some("c2lnbmF0dXJl"));
        assert_eq!(read.hash(), chit().hash());
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        let good = ChitMessage::Chit {
            action: ChitAction::Good,
            chit: chit(),
            link: Some(link(1, 2)),
        }
        .to_value();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = good.clone();
            f(&mut v);
            ChitMessage::from_value(&v)
        };
        assert!(matches!(
            with(&|v| v["target"] = json!("tally")),
            Err(MessageError::WrongTarget { .. })
        ));
        assert!(matches!(
            with(&|v| v["action"] = json!("gift")),
            Err(MessageError::UnknownAction(Some(_)))
        ));
        assert!(matches!(
            with(&|v| v["object"]["units"] = json!(-1)),
            Err(MessageError::Chit { .. })
        ));
        assert!(matches!(
            with(&|v| v["object"]["digest"] = json!(format!("\\x{}", "00".repeat(32)))),
            Err(MessageError::DigestMismatch { .. })
        ));
        assert!(matches!(
            with(&|v| v["object"]["index"] = json!(-1)),
            Err(MessageError::Member { .. })
        ));
        assert!(matches!(
            with(&|v| {
                if let Some(o) = v["object"].as_object_mut() {
                    o.remove("chain");
                }
            }),
            Err(MessageError::Member { .. })
        ));
        assert!(matches!(
            with(&|v| v["object"]["chain"] = json!("00")),
            Err(MessageError::Hash { .. })
        ));
        assert!(matches!(
            with(&|v| v["object"]["chain"] = json!("\\x00")),
            Err(MessageError::Member { .. })
        ));
        let upd = json!({"target": "chit", "action": "chain", "sub": "upd",
            "object": {"tally": "t-1", "index": 1, "chain": format!("\\x{}", "00".repeat(32)),
                       "chits": vec![json!(1); MAX_UPDATE_CHITS + 1]}});
        assert!(matches!(
            ChitMessage::from_value(&upd),
            Err(MessageError::TooManyChits { .. })
        ));
        let sub = json!({"target": "chit", "action": "chain", "sub": "ack",
            "object": {"tally": "t-1"}});
        assert_eq!(
            ChitMessage::from_value(&sub),
            Err(MessageError::UnknownSub(Some("ack".into())))
        );
        assert!(matches!(
            ChitMessage::parse("{"),
            Err(MessageError::Json(_))
        ));
        assert_eq!(ChitMessage::parse("[]"), Err(MessageError::NotAnObject));
    }
}
