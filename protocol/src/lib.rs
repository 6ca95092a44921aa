//! The Notch ledger protocol, shared by the wallet core and the gateway.
//!
//! Only protocol types live here: no wallet logic, no server logic. Pure Rust (no C, no
//! async runtime) so it builds for iOS and Android. The specification, with test vectors, is
//! `docs/PROTOCOL.md`.
//!
//! - [`hash`]: domain-separated BLAKE2b-256 and the 32-byte id types.
//! - [`key_cache`]: a bounded cache of decompressed public keys (what a gateway shares
//!   between its checks and its signature verifier).
//! - [`encoding`]: the strict binary reader/writer.
//! - [`address`]: networks and bech32m addresses.
//! - [`tx`]: transactions, signatures, validation rules.
//! - [`block`]: headers, blocks, merkle root, header-chain and block checks, locators.
//! - [`api`]: JSON shapes of the gateway's `/v1` API.
//! - [`wire`]: the binary form of a blocks answer (`Accept: application/octet-stream`).
//! - [`relay`]: the agent relay's control messages (how a phone's agent is reached).

pub mod address;
pub mod api;
pub mod block;
pub mod encoding;
pub mod hash;
pub mod key_cache;
pub mod relay;
pub mod tx;
pub mod wire;
mod zip215;

/// The Ed25519 implementation the protocol uses, re-exported so callers use the same version.
pub use ed25519_dalek;

pub use address::{Address, AddressError, Network};
pub use block::{
    Block, BlockHeader, VerifyError, locator_heights, merkle_leaf, merkle_root, verify_block,
    verify_genesis, verify_header, verify_header_chain, verify_header_link,
};
pub use encoding::DecodeError;
pub use hash::{AssetId, BlockId, Hash32, HexError, PublicKey, Signature, TxId, tagged_hash};
pub use key_cache::KeyCache;
pub use tx::{
    ChainParams, Issuance, OutPoint, Output, Transaction, TxCheck, TxError, public_key, sign_id,
    verify_id_signature, verify_id_signature_cached, verify_id_signatures,
    verify_id_signatures_cached,
};
