//! notch-core: the wallet engine. Everything the app, the CLI and the mobile
//! bindings show comes from here; they wrap it, never re-implement it.
//!
//! Modules, one per concern:
//! - [`keys`]: the recovery phrase and every key derived from it;
//! - [`secrets`]: where the wallet's one secret is kept (the OS keystore);
//! - [`store`]: the wallet's SQLite database (no secrets in it);
//! - [`gateway`]: the HTTP client of a gateway's mirror API.

pub mod gateway;
pub mod keys;
pub mod secrets;
pub mod store;

/// Version of the core, as built.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
