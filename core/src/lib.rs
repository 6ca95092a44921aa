//! notch-core: the wallet engine. Everything the app, the CLI and the mobile
//! bindings show comes from here; they wrap it, never re-implement it.
//!
//! [`Wallet`] is the whole API. Modules, one per concern:
//! - [`keys`]: the recovery phrase and every key derived from it;
//! - [`secrets`]: where the wallet's one secret is kept (the OS keystore);
//! - [`store`]: the wallet's SQLite database (no secrets in it);
//! - [`gateway`]: the HTTP/WebSocket client of a gateway's mirror API;
//! - [`sync`]: verified header/block sync, mempool, reorgs, watch;
//! - [`tx`]: coin selection, fee, building, signing, submitting;
//! - [`events`]: the typed event stream (and the inbox in [`store`]);
//! - [`lock`]: the lock passphrase (re-authentication, idle lock);
//! - [`amount`]: decimal amounts <-> base units;
//! - [`wallet`]: the [`Wallet`] object.

pub mod amount;
pub mod events;
pub mod gateway;
pub mod keys;
pub mod lock;
pub mod qr;
pub mod secrets;
pub mod store;
pub mod sync;
pub mod tx;
pub mod wallet;

pub use events::{AssetAmount, WalletEvent};
pub use lock::{LockError, LockSettings};
/// The protocol crate, re-exported so wrappers use the same version.
pub use notch_protocol as protocol;
pub use notch_protocol::Network;
pub use store::{Notification, TxState};
pub use sync::{SyncError, SyncReport};
pub use tx::{Recipient, SendError, SendProposal};
pub use wallet::{
    AddressInfo, Balance, HistoryEntry, HistoryFilter, OpenError, Wallet, WalletConfig, WalletError,
};

/// Version of the core, as built.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
