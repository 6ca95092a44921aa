//! Keys: the recovery phrase and every key the wallet derives from it.
//!
//! Everything here is recoverable from the recovery phrase (plus the optional
//! passphrase) alone:
//!
//! | key | how it is derived |
//! | --- | --- |
//! | token receive key | SLIP-10 Ed25519 `m/44'/20047'/<account>'/0'/<index>'` |
//! | token change key | SLIP-10 Ed25519 `m/44'/20047'/<account>'/1'/<index>'` |
//! | peer agent key (Ed25519, and X25519 for Noise) | SLIP-10 Ed25519 `m/44'/20047'/<account>'/2'/0'` |
//! | tally signing key (ECDSA P-521) | HKDF-SHA512 over the SLIP-10 key at `m/44'/20047'/<account>'/3'/0'`, see [`tally`] |
//!
//! `20047` ([`COIN_TYPE`]) is `0x4E4F`, ASCII "NO": it is not registered in
//! SLIP-0044 and must be registered (or replaced) before a public release.
//!
//! Secret material lives in [`zeroize`] types and is wiped when dropped; no
//! `Debug` impl here prints a secret.

mod agent;
mod phrase;
mod slip10;
pub mod tally;
mod wallet_keys;

pub use agent::{AgentKey, ed25519_public_to_x25519};
pub use phrase::{RecoveryPhrase, Seed, WalletSecret, WordCount};
pub use slip10::{DerivationPath, ExtendedKey, HARDENED};
pub use tally::{TallyKey, TallyPublicKey, TallySignature};
pub use wallet_keys::{AddressChain, TokenKey, WalletKeys};

/// BIP-44 purpose used for every Notch path.
pub const PURPOSE: u32 = 44;

/// BIP-44 coin type of Notch (`0x4E4F`, ASCII "NO"; not registered in
/// SLIP-0044, see the module docs).
pub const COIN_TYPE: u32 = 0x4E4F;

/// Why a key operation failed, in words a person can act on.
///
/// No variant carries secret material (not even a mistyped word of the
/// recovery phrase), so these errors are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a recovery phrase has 12 or 24 words; this one has {found}")]
    WrongWordCount { found: usize },
    #[error(
        "word {position} of the recovery phrase is not in the English BIP-39 word list; check its spelling"
    )]
    UnknownWord {
        /// 1-based position of the word in the phrase.
        position: usize,
    },
    #[error(
        "the recovery phrase's checksum does not match: one of the words is wrong or the words are in the wrong order"
    )]
    BadChecksum,
    #[error("the recovery phrase is not valid: {0}")]
    BadPhrase(String),
    #[error("the operating system could not provide random bytes: {0}")]
    NoRandomness(String),
    #[error("a seed must be 16 to 64 bytes long; this one is {len} bytes")]
    BadSeedLength { len: usize },
    #[error(
        "Ed25519 keys (SLIP-10) can only be derived at hardened indexes; index {index} of path {path} is not hardened"
    )]
    NotHardened { path: String, index: u32 },
    #[error("index {index} is too large: derivation indexes must be below 2^31 (2147483648)")]
    IndexOutOfRange { index: u64 },
    #[error("{path:?} is not a derivation path: {reason}")]
    BadPath { path: String, reason: String },
    #[error("the stored wallet secret is damaged or in an unknown format: {0}")]
    BadStoredSecret(String),
    #[error("the public key is not a valid P-521 JWK: {0}")]
    BadJwk(String),
    #[error("the signature is not valid: {0}")]
    BadSignature(String),
    #[error("could not derive the tally key: {0}")]
    TallyDerivation(String),
}
