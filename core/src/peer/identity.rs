//! Who is at each end: agent ids (the public half) and the local static key.
//!
//! MyCHIPs names an agent by its X25519 public key in base64url
//! (`bin/agentkey` prints the JWK `x` of a fresh X25519 key; `peernoise.js`
//! turns an agent back into a key with `Buffer.from(agent, 'base64url')`),
//! and a CHIP address's `agent` field holds that string. Notch's agent key is
//! the seed-derived Ed25519 key used as X25519, so its agent id is the
//! Montgomery form of that key.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::keys::AgentKey;

/// An agent id: an X25519 public key, written as base64url without padding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId([u8; 32]);

/// Why a string is not an agent id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentIdError {
    #[error("{0:?} is not base64url: an agent id is an X25519 public key in base64url")]
    NotBase64(String),
    #[error("an agent id decodes to 32 bytes (an X25519 public key); this one has {0}")]
    WrongLength(usize),
}

impl AgentId {
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses base64url, with or without `=` padding (Node's `base64url`
    /// writes none; some tools add it).
    pub fn parse(text: &str) -> Result<Self, AgentIdError> {
        let decoded = URL_SAFE_NO_PAD
            .decode(text)
            .or_else(|_| URL_SAFE.decode(text))
            .map_err(|_| AgentIdError::NotBase64(shorten(text)))?;
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| AgentIdError::WrongLength(decoded.len()))?;
        Ok(Self(bytes))
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

/// Keeps an attacker's megabyte-long "agent" out of error messages.
fn shorten(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({self})")
    }
}

impl FromStr for AgentId {
    type Err = AgentIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for AgentId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AgentId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// This agent's static Noise key pair. The secret is zeroized on drop and
/// never printed.
pub struct LocalKey {
    secret: Zeroizing<[u8; 32]>,
    public: AgentId,
}

impl LocalKey {
    /// The wallet's seed-derived agent key, as X25519.
    pub fn from_agent_key(key: &AgentKey) -> Self {
        Self {
            secret: key.x25519_secret_bytes(),
            public: AgentId(key.x25519_public()),
        }
    }

    /// A raw X25519 secret (as MyCHIPs keeps it: the JWK `d` of its agent
    /// key). X25519 clamps it, as every Noise library does.
    pub fn from_x25519_secret(secret: [u8; 32]) -> Self {
        let secret = Zeroizing::new(secret);
        let public = PublicKey::from(&StaticSecret::from(*secret));
        Self {
            secret,
            public: AgentId(public.to_bytes()),
        }
    }

    /// Our agent id, the string a CHIP address's `agent` field carries.
    pub fn agent(&self) -> AgentId {
        self.public
    }

    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

impl From<&AgentKey> for LocalKey {
    fn from(key: &AgentKey) -> Self {
        Self::from_agent_key(key)
    }
}

impl Clone for LocalKey {
    fn clone(&self) -> Self {
        Self {
            secret: Zeroizing::new(*self.secret),
            public: self.public,
        }
    }
}

impl fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey")
            .field("agent", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{RecoveryPhrase, WalletKeys};

    #[test]
    fn agent_ids_round_trip_as_base64url() {
        let id = AgentId::from_bytes([0xfb; 32]);
        let text = id.to_string();
        assert_eq!(text.len(), 43);
        assert!(!text.contains('=') && !text.contains('+') && !text.contains('/'));
        assert_eq!(AgentId::parse(&text), Ok(id));
        assert_eq!(AgentId::parse(&format!("{text}=")), Ok(id));
        assert_eq!(
            serde_json::to_value(id).expect("serialize"),
            serde_json::json!(text)
        );
    }

    #[test]
    fn refuses_what_is_not_an_agent_id() {
        assert!(matches!(
            AgentId::parse("not base64!"),
            Err(AgentIdError::NotBase64(_))
        ));
        assert_eq!(AgentId::parse("AAAA"), Err(AgentIdError::WrongLength(3)));
        let long = "A".repeat(10_000);
        let message = AgentId::parse(&format!("{long}!"))
            .expect_err("invalid")
            .to_string();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn the_wallet_agent_key_and_its_raw_secret_agree() {
        let phrase = RecoveryPhrase::from_entropy(&[7; 16]).expect("entropy");
        let keys = WalletKeys::new(&phrase.to_seed(""), 0).expect("keys");
        let agent = keys.agent_key().expect("agent key");
        let local = LocalKey::from_agent_key(&agent);
        assert_eq!(local.agent().as_bytes(), &agent.x25519_public());
        let raw = LocalKey::from_x25519_secret(*agent.x25519_secret_bytes());
        assert_eq!(raw.agent(), local.agent());
        assert!(!format!("{local:?}").contains(&hex::encode(local.secret())));
    }
}
