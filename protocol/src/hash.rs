//! Domain-separated hashing and the 32-byte id types.
//!
//! Every hash in the protocol is `H(tag, data) = BLAKE2b-256(len(tag) as u8 || tag || data)`
//! with a distinct ASCII tag per use (see the `tags` module), so an id of one kind can never
//! be mistaken for an id of another kind.

use std::fmt;
use std::str::FromStr;

use blake2::Blake2b;
use blake2::digest::Digest;
use blake2::digest::consts::U32;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The domain tags. Changing any of them changes every id.
pub mod tags {
    pub const TXID: &str = "notch/v1/txid";
    pub const WITNESS: &str = "notch/v1/witness";
    pub const MERKLE_LEAF: &str = "notch/v1/merkle-leaf";
    pub const MERKLE_NODE: &str = "notch/v1/merkle-node";
    pub const MERKLE_EMPTY: &str = "notch/v1/merkle-empty";
    pub const BLOCK: &str = "notch/v1/block";
    pub const ASSET: &str = "notch/v1/asset";
}

/// `BLAKE2b-256(len(tag) as u8 || tag || part_0 || part_1 || ...)`.
pub fn tagged_hash(tag: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    // Tags are short compile-time constants; the length always fits in a byte.
    h.update([tag.len() as u8]);
    h.update(tag.as_bytes());
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// Errors parsing a hex id or key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("expected {expected} hex characters, got {found}")]
    Length { expected: usize, found: usize },
    #[error("not hexadecimal: {0}")]
    NotHex(String),
}

pub(crate) fn parse_hex_array<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    if s.len() != 2 * N {
        return Err(HexError::Length {
            expected: 2 * N,
            found: s.len(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|e| HexError::NotHex(e.to_string()))?;
    Ok(out)
}

macro_rules! byte_id {
    ($(#[$m:meta])* $name:ident, $len:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub const LEN: usize = $len;
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// Parses exactly `2 * LEN` hex characters (either case).
            pub fn from_hex(s: &str) -> Result<Self, HexError> {
                parse_hex_array::<$len>(s).map(Self)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }
        impl FromStr for $name {
            type Err = HexError;
            fn from_str(s: &str) -> Result<Self, HexError> {
                Self::from_hex(s)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

byte_id!(
    /// A 32-byte hash (merkle roots and nodes).
    Hash32, 32
);
byte_id!(
    /// Transaction id: `H("notch/v1/txid", unsigned encoding)`.
    TxId, 32
);
byte_id!(
    /// Block id: `H("notch/v1/block", unsigned header encoding)`.
    BlockId, 32
);
byte_id!(
    /// Asset id: `H("notch/v1/asset", issuer public key || len(label) as u8 || label)`.
    AssetId, 32
);
byte_id!(
    /// An Ed25519 public key (compressed Edwards point). Owners, issuers, the authority.
    PublicKey, 32
);
byte_id!(
    /// An Ed25519 signature (R || s).
    Signature, 64
);

impl BlockId {
    /// The `prev` of the genesis block.
    pub const ZERO: BlockId = BlockId([0u8; 32]);
}

impl AssetId {
    /// The id of the asset `label` issued by `issuer`.
    pub fn derive(issuer: &PublicKey, label: &str) -> AssetId {
        AssetId(tagged_hash(
            tags::ASSET,
            &[&issuer.0, &[label.len() as u8], label.as_bytes()],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_separate_domains() {
        assert_ne!(
            tagged_hash(tags::TXID, &[b"x"]),
            tagged_hash(tags::BLOCK, &[b"x"])
        );
        // Splitting the same bytes across parts does not change the hash.
        assert_eq!(
            tagged_hash(tags::TXID, &[b"ab", b"c"]),
            tagged_hash(tags::TXID, &[b"abc"])
        );
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let id = TxId([7u8; 32]);
        assert_eq!(TxId::from_hex(&id.to_hex()), Ok(id));
        assert_eq!(TxId::from_hex(&id.to_hex().to_uppercase()), Ok(id));
        assert!(matches!(TxId::from_hex("00"), Err(HexError::Length { .. })));
        assert!(matches!(
            TxId::from_hex(&"zz".repeat(32)),
            Err(HexError::NotHex(_))
        ));
        let json = serde_json::to_string(&id).unwrap_or_default();
        assert_eq!(serde_json::from_str::<TxId>(&json).ok(), Some(id));
    }
}
