//! Networks and addresses.
//!
//! An address is an Ed25519 public key written as bech32m (BIP-350) with a human-readable
//! prefix that names the network: `ntc` (main), `ntt` (test), `nsb` (sandbox). The data part
//! is exactly the 32 key bytes. A typo is caught by the checksum, a key of another network by
//! the prefix; both give an [`AddressError`].

use std::fmt;
use std::str::FromStr;

use bech32::primitives::decode::{
    CharError, CheckedHrpstring, CheckedHrpstringError, UncheckedHrpstring, UncheckedHrpstringError,
};
use bech32::{Bech32m, Hrp};
use serde::{Deserialize, Serialize};

use crate::hash::PublicKey;

/// The ledger a key, transaction or block belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Main,
    Test,
    Sandbox,
}

impl Network {
    pub const ALL: [Network; 3] = [Network::Main, Network::Test, Network::Sandbox];

    /// The byte that names the network inside transactions and block headers.
    pub fn id(self) -> u8 {
        match self {
            Network::Main => 0,
            Network::Test => 1,
            Network::Sandbox => 2,
        }
    }
    pub fn from_id(id: u8) -> Option<Network> {
        Network::ALL.into_iter().find(|n| n.id() == id)
    }
    /// The name used in `LedgerInfo.network`: `main`, `test` or `sandbox`.
    pub fn name(self) -> &'static str {
        match self {
            Network::Main => "main",
            Network::Test => "test",
            Network::Sandbox => "sandbox",
        }
    }
    pub fn from_name(name: &str) -> Option<Network> {
        Network::ALL.into_iter().find(|n| n.name() == name)
    }
    /// The bech32m human-readable prefix of addresses.
    pub fn hrp(self) -> &'static str {
        match self {
            Network::Main => "ntc",
            Network::Test => "ntt",
            Network::Sandbox => "nsb",
        }
    }
    pub fn from_hrp(hrp: &str) -> Option<Network> {
        Network::ALL.into_iter().find(|n| n.hrp() == hrp)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a string is not an address of the expected network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("an address cannot be empty")]
    Empty,
    #[error("an address must be all lower case or all upper case")]
    MixedCase,
    #[error("the address has a character that is not allowed: {0:?}")]
    InvalidCharacter(char),
    #[error("the address is malformed (no separator or bad prefix)")]
    Malformed,
    #[error("the address has a typo: its checksum does not match")]
    BadChecksum,
    #[error("unknown address prefix {0:?} (expected ntc, ntt or nsb)")]
    UnknownPrefix(String),
    #[error("this is a {found} address, but this wallet is on {expected}")]
    WrongNetwork { expected: Network, found: Network },
    #[error("the address holds {0} bytes, expected 32")]
    BadLength(usize),
    #[error("the address is not in canonical form")]
    NonCanonical,
    #[error("the address does not hold a valid public key")]
    NotAKey,
}

/// An address: a network and an owner's public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Address {
    pub network: Network,
    pub key: PublicKey,
}

impl Address {
    pub fn new(network: Network, key: PublicKey) -> Self {
        Self { network, key }
    }

    /// The canonical (lower-case) text form.
    pub fn encode(&self) -> String {
        // The prefixes are valid HRPs and 32 bytes are far below bech32m's length limit, so
        // neither step can fail; fall back to an empty string rather than panic.
        match Hrp::parse(self.network.hrp()) {
            Ok(hrp) => bech32::encode::<Bech32m>(hrp, &self.key.0).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Parses an address of any known network (upper case is accepted, e.g. from a QR code).
    pub fn parse_any(s: &str) -> Result<Address, AddressError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        let unchecked = UncheckedHrpstring::new(s).map_err(map_unchecked)?;
        let hrp = unchecked.hrp().to_lowercase();
        if unchecked.validate_checksum::<Bech32m>().is_err() {
            return Err(AddressError::BadChecksum);
        }
        let network = Network::from_hrp(&hrp).ok_or(AddressError::UnknownPrefix(hrp))?;
        let checked = CheckedHrpstring::new::<Bech32m>(s).map_err(|e| match e {
            CheckedHrpstringError::Parse(e) => map_unchecked(e),
            _ => AddressError::BadChecksum,
        })?;
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| AddressError::BadLength(bytes.len()))?;
        let address = Address {
            network,
            key: PublicKey(key),
        };
        // Non-zero padding bits would give a second spelling of the same key.
        if address.encode() != s.to_lowercase() {
            return Err(AddressError::NonCanonical);
        }
        if ed25519_dalek::VerifyingKey::from_bytes(&key).is_err() {
            return Err(AddressError::NotAKey);
        }
        Ok(address)
    }

    /// Parses an address and insists that it belongs to `network`.
    pub fn parse(s: &str, network: Network) -> Result<Address, AddressError> {
        let address = Address::parse_any(s)?;
        if address.network != network {
            return Err(AddressError::WrongNetwork {
                expected: network,
                found: address.network,
            });
        }
        Ok(address)
    }
}

fn map_unchecked(e: UncheckedHrpstringError) -> AddressError {
    match e {
        UncheckedHrpstringError::Char(CharError::MixedCase) => AddressError::MixedCase,
        UncheckedHrpstringError::Char(CharError::InvalidChar(c)) => {
            AddressError::InvalidCharacter(c)
        }
        _ => AddressError::Malformed,
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, AddressError> {
        Address::parse_any(s)
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Address::parse_any(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PublicKey {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]);
        PublicKey(sk.verifying_key().to_bytes())
    }

    #[test]
    fn round_trip_and_prefixes() {
        for network in Network::ALL {
            let a = Address::new(network, key());
            let s = a.encode();
            assert!(s.starts_with(&format!("{}1", network.hrp())), "{s}");
            assert_eq!(Address::parse(&s, network), Ok(a));
            assert_eq!(Address::parse(&s.to_uppercase(), network), Ok(a));
            assert_eq!(Network::from_id(network.id()), Some(network));
            assert_eq!(Network::from_name(network.name()), Some(network));
        }
    }

    #[test]
    fn typos_and_wrong_networks_are_caught() {
        let s = Address::new(Network::Sandbox, key()).encode();
        // Change one data character.
        let mut chars: Vec<char> = s.chars().collect();
        let i = 10;
        chars[i] = if chars[i] == 'q' { 'p' } else { 'q' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(
            Address::parse(&typo, Network::Sandbox),
            Err(AddressError::BadChecksum)
        );
        let main = Address::new(Network::Main, key()).encode();
        assert_eq!(
            Address::parse(&main, Network::Sandbox),
            Err(AddressError::WrongNetwork {
                expected: Network::Sandbox,
                found: Network::Main
            })
        );
        assert_eq!(
            Address::parse("", Network::Sandbox),
            Err(AddressError::Empty)
        );
        assert_eq!(
            Address::parse("nsb1qqqq", Network::Sandbox),
            Err(AddressError::BadChecksum)
        );
        assert!(Address::parse("hello", Network::Sandbox).is_err());
        let mixed = format!("{}{}", &s[..5], s[5..].to_uppercase());
        assert_eq!(
            Address::parse(&mixed, Network::Sandbox),
            Err(AddressError::MixedCase)
        );
        let other = bech32::encode::<Bech32m>(
            Hrp::parse("xyz").unwrap_or(Hrp::parse_unchecked("xyz")),
            &[0u8; 32],
        )
        .unwrap_or_default();
        assert_eq!(
            Address::parse(&other, Network::Sandbox),
            Err(AddressError::UnknownPrefix("xyz".into()))
        );
        // bech32 (not bech32m) checksum is refused.
        let legacy = bech32::encode::<bech32::Bech32>(Hrp::parse_unchecked("nsb"), &key().0)
            .unwrap_or_default();
        assert_eq!(
            Address::parse(&legacy, Network::Sandbox),
            Err(AddressError::BadChecksum)
        );
        // 31 bytes.
        let short =
            bech32::encode::<Bech32m>(Hrp::parse_unchecked("nsb"), &[9u8; 31]).unwrap_or_default();
        assert_eq!(
            Address::parse(&short, Network::Sandbox),
            Err(AddressError::BadLength(31))
        );
    }
}
