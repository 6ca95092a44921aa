//! uniffi bindings of `notch-core` for Kotlin (Android), Swift (iOS) and
//! Python (used to test them on Linux).
//!
//! A thin layer: [`NotchWallet`] wraps the core's [`notch_core::Wallet`] and
//! never re-implements what it does. What this crate adds is only what an
//! FFI needs:
//! - records and enums that mirror the core's types (`types`), with
//!   amounts that do not fit 64 bits as decimal strings of base units;
//! - one error enum per operation group (`errors`), each variant's message
//!   the core's own readable text (uniffi flat errors: the host gets a typed
//!   exception whose message is that text);
//! - the host's capabilities as foreign traits: the secret store
//!   ([`HostSecretStore`], the core's OS keystore when the host gives none)
//!   the event listener ([`WalletListener`]) and the log ([`HostLogger`],
//!   set with [`set_logger`]; stderr at `Warn` when the host sets none);
//! - one tokio runtime (`runtime`) that every async method runs on, so a
//!   host's executor (Kotlin coroutines, Swift concurrency, asyncio) can
//!   await them; a panic inside becomes an `Internal` error, never an abort.
//!
//! The generated sources are in `bindings/` (see README.md there and
//! `cargo xtask bindings`).

uniffi::setup_scaffolding!("notch");

mod errors;
mod events;
mod logging;
mod runtime;
mod secrets;
mod tally;
mod types;
mod wallet;

pub use errors::*;
pub use events::{WalletEvent, WalletListener};
pub use logging::{HostLogger, LogLevel, set_logger};
pub use secrets::{HostSecretStore, SecretStoreError};
pub use tally::*;
pub use types::*;
pub use wallet::{CreatedWallet, NotchWallet, create_wallet, open_wallet, restore_wallet};

/// The version of notch-core inside this library.
#[uniffi::export]
pub fn core_version() -> String {
    notch_core::VERSION.to_owned()
}
