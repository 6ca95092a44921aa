//! notch-core: the wallet engine. Everything the app, the CLI and the mobile
//! bindings show comes from here; they wrap it, never re-implement it.
//!
//! [`Wallet`] is the whole API. Modules, one per concern:
//! - [`keys`]: the recovery phrase and every key derived from it;
//! - [`secrets`]: where the wallet's one secret is kept (the OS keystore);
//! - [`store`]: the wallet's SQLite database (no secrets in it);
//! - [`gateway`]: the HTTP/WebSocket client of a gateway's mirror API;
//! - [`sync`]: fetch and verify (headers, blocks, mempool, reorgs), watch;
//! - `apply` (private): the one place that writes what sync proved, one
//!   change set per store transaction;
//! - `context` (private): what the parts share; the facade owns it;
//! - [`tx`]: coin selection, fee, building, signing, submitting;
//! - [`events`]: the typed event stream (and the inbox in [`store`]);
//! - [`lock`]: the lock passphrase (re-authentication, idle lock);
//! - [`amount`]: decimal amounts <-> base units;
//! - [`backup`]: the backup-word check when a wallet is created;
//! - [`payment`]: asset and amount checks, `notch:` payment links;
//! - [`export`]: the history as CSV;
//! - [`reach`]: gateway reachability and the choice of network;
//! - [`chain`]: the header chain's rules (links, signatures, when a reorg is allowed);
//! - [`lifecycle`]: the transaction state machine (the one way states change);
//! - [`trust`]: what is pinned about a ledger (authority, metadata, network file, URL policy);
//! - [`tally`]: MyCHIPs tallies and chits (records, canonical JSON, signatures,
//!   the tally state machine);
//! - [`ticket`]: tally tickets (MyCHIPs invite links, `notch:` links);
//! - [`peer`]: Noise between agents, MyCHIPs framing;
//! - [`agent`]: the tally agent (listener, message routing, outbox) and
//!   what the person does with tallies (tickets, scans, accept, refuse);
//! - [`wallet`]: the [`Wallet`] object.

pub mod agent;
pub mod amount;
mod apply;
pub mod backup;
pub mod chain;
mod context;
pub mod events;
pub mod export;
pub mod gateway;
pub mod keys;
pub mod lifecycle;
pub mod lock;
pub mod payment;
pub mod peer;
pub mod qr;
pub mod reach;
pub mod secrets;
pub mod store;
pub mod sync;
pub mod tally;
pub mod ticket;
pub mod trust;
pub mod tx;
pub mod wallet;

pub use agent::{
    AgentConfig, AgentError, AgentHandle, ChitApproveError, ChitInfo, ChitRejectError,
    DeliveryReport, RelayError, RetryPolicy, TallyActionError, TallyDetail, TallyError, TallyInfo,
    TallyInvoiceError, TallyPayError, TallyProfile, TallyScanError, TallyTicketError,
    TicketOptions,
};
pub use backup::{BackupCheck, BackupError};
pub use events::{AssetAmount, WalletEvent};
pub use export::ExportError;
pub use lock::{LockError, LockSettings};
/// The protocol crate, re-exported so wrappers use the same version.
pub use notch_protocol as protocol;
pub use notch_protocol::Network;
pub use payment::{CheckedAmount, PaymentError, PaymentUri, UriError};
pub use reach::{GatewayProbe, GatewayReachability, NetworkError, choose_network};
pub use store::{Notification, NotificationKind, TxState};
pub use sync::{SyncError, SyncReport};
pub use trust::NetworkFile;
pub use tx::{Recipient, SendError, SendProposal};
pub use wallet::{
    AddressInfo, Balance, HistoryEntry, HistoryFilter, OpenError, Wallet, WalletConfig, WalletError,
};

/// Version of the core, as built.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
