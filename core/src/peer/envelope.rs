//! The JSON message envelope agents exchange (MyCHIPs `doc/learn-message.md`,
//! "Message Format").
//!
//! MyCHIPs documents the common properties (`target`, `action`, `object`,
//! `try`, `last`, `to`, `from`) but its messages carry others as well (a
//! first contact carries `ticket`; chain messages carry `sub`, `hash`…), and
//! later versions may add more. So the typed fields are optional and every
//! property this struct does not name is kept in [`Envelope::extra`] and
//! written back out unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One agent-to-agent message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The subsystem: `tally`, `chit`, `route` or `lift`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The step requested, often the state proposed next (`ticket`, `offer`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The tally, chit, route or lift itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
    /// How many times the sender has tried to send this message (from 1).
    #[serde(rename = "try", default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u64>,
    /// When the message was generated (MyCHIPs passes it to `Date()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Value>,
    /// The recipient's CHIP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<ChipAddress>,
    /// The sender's CHIP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ChipAddress>,
    /// The connection ticket of a first contact (`action: "ticket"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Value>,
    /// Every other property, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A CHIP address (MyCHIPs `doc/learn-users.md`): who and where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChipAddress {
    /// The CHIP id of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// The agent id: base64url X25519 public key of the user's agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A number or a numeric string: MyCHIPs writes both (its key files
    /// hold the port as a string). See [`ChipAddress::port_number`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChipAddress {
    /// The port as a number, whichever way it was written.
    pub fn port_number(&self) -> Option<u16> {
        match self.port.as_ref()? {
            Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl Envelope {
    /// MyCHIPs's rule for which handshake a message opens
    /// (`initiate()` in `lib/peernoise.js`): a message with
    /// `target: "tally"`, `action: "ticket"` and a ticket is a first contact
    /// (IK); anything else reconnects (N, then KK).
    pub fn is_first_contact(&self) -> bool {
        self.target.as_deref() == Some("tally")
            && self.action.as_deref() == Some("ticket")
            && self.ticket.as_ref().is_some_and(is_truthy)
    }

    /// As a JSON value (always an object).
    pub fn to_value(&self) -> Value {
        // An Envelope is a map of JSON values: serializing it cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(value)
    }
}

/// The same rule on a raw message.
pub(crate) fn value_is_first_contact(message: &Value) -> bool {
    message.get("target").and_then(Value::as_str) == Some("tally")
        && message.get("action").and_then(Value::as_str) == Some("ticket")
        && message.get("ticket").is_some_and(is_truthy)
}

/// JavaScript truthiness, as `&& ticket` tests it.
pub(crate) fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keeps_unknown_properties() {
        let raw = json!({
            "target": "chit", "action": "chain", "sub": "upd", "hash": "abc",
            "try": 2, "last": "2024-01-01T00:00:00Z",
            "to": {"cid": "bob", "agent": "x", "port": "65430", "extra": [1]},
            "object": {"uuid": "u"}
        });
        let env = Envelope::from_value(raw.clone()).expect("envelope");
        assert_eq!(env.target.as_deref(), Some("chit"));
        assert_eq!(env.attempt, Some(2));
        assert_eq!(env.extra.get("sub"), Some(&json!("upd")));
        let to = env.to.as_ref().expect("to");
        assert_eq!(to.port_number(), Some(65430));
        assert_eq!(to.extra.get("extra"), Some(&json!([1])));
        assert_eq!(env.to_value(), raw);
    }

    #[test]
    fn first_contact_follows_mychips_rule() {
        let ticket = json!({"target": "tally", "action": "ticket", "ticket": {"token": "t"}});
        assert!(value_is_first_contact(&ticket));
        assert!(
            Envelope::from_value(ticket)
                .expect("env")
                .is_first_contact()
        );
        for other in [
            json!({"target": "tally", "action": "ticket"}),
            json!({"target": "tally", "action": "ticket", "ticket": ""}),
            json!({"target": "tally", "action": "offer", "ticket": {}}),
            json!({"target": "chit", "action": "ticket", "ticket": {}}),
        ] {
            assert!(!value_is_first_contact(&other), "{other}");
        }
        let port = ChipAddress {
            port: Some(json!(70000)),
            ..ChipAddress::default()
        };
        assert_eq!(port.port_number(), None);
    }
}
