//! The core's typed event stream for the host: pushed to a
//! [`WalletListener`] the host implements, or pulled with
//! `NotchWallet.next_event`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use notch_core as core;
use tokio::sync::broadcast;

use crate::types::TxState;

/// An amount of one asset, base units.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AssetAmount {
    pub asset: String,
    pub symbol: String,
    pub decimals: u8,
    /// Base units, decimal.
    pub amount: String,
}

/// Something the wallet did or saw (the core's `WalletEvent`), sent after
/// the store transaction that caused it committed.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum WalletEvent {
    /// A sync pass is under way: `done` of `total` blocks applied.
    SyncProgress {
        done: u64,
        total: u64,
        height: u64,
        target: u64,
    },
    /// A sync pass finished at `height`.
    SyncDone { height: u64 },
    /// The gateway replaced blocks above `fork_height`.
    Reorg {
        fork_height: u64,
        old_tip: u64,
        new_tip: u64,
    },
    /// A payment to the wallet was seen for the first time.
    PaymentReceived {
        txid: String,
        amounts: Vec<AssetAmount>,
        confirmed: bool,
    },
    /// A transaction of the wallet changed state.
    TxStateChanged {
        txid: String,
        from: Option<TxState>,
        to: TxState,
        confirmations: Option<u64>,
    },
    /// The gateway stopped answering (since: Unix seconds).
    GatewayUnreachable { since: u64, reason: String },
    /// The gateway answers again.
    GatewayBack { unreachable_for_secs: u64 },
    /// The gateway served something that failed verification.
    VerificationFailed { what: String },
    /// A notification was added to the inbox.
    Notification {
        id: i64,
        kind: String,
        title: String,
        quiet: bool,
    },
    /// A tally changed state (MyCHIPs's state names: `P.offer`, `open` …).
    TallyChanged { tally: String, state: String },
    /// A chit was added or changed (signed, received, approved, rejected,
    /// delivered): `state` is MyCHIPs's code (`L.pend.good`, `A.good` …).
    ChitChanged {
        tally: String,
        chit: String,
        state: String,
    },
    /// A catch-up (restore, long absence) ended.
    CaughtUp {
        notifications: u64,
        payments_received: u64,
        height: u64,
    },
    /// This listener (or puller) fell behind and `count` events were
    /// dropped: read the state again (balances, history, inbox).
    EventsMissed { count: u64 },
}

impl From<core::WalletEvent> for WalletEvent {
    fn from(e: core::WalletEvent) -> Self {
        use core::WalletEvent as C;
        match e {
            C::SyncProgress {
                done,
                total,
                height,
                target,
            } => Self::SyncProgress {
                done,
                total,
                height,
                target,
            },
            C::SyncDone { height } => Self::SyncDone { height },
            C::Reorg {
                fork_height,
                old_tip,
                new_tip,
            } => Self::Reorg {
                fork_height,
                old_tip,
                new_tip,
            },
            C::PaymentReceived {
                txid,
                amounts,
                confirmed,
            } => Self::PaymentReceived {
                txid,
                amounts: amounts
                    .into_iter()
                    .map(|a| AssetAmount {
                        asset: a.asset,
                        symbol: a.symbol,
                        decimals: a.decimals,
                        amount: a.amount.to_string(),
                    })
                    .collect(),
                confirmed,
            },
            C::TxStateChanged {
                txid,
                from,
                to,
                confirmations,
            } => Self::TxStateChanged {
                txid,
                from: from.map(Into::into),
                to: to.into(),
                confirmations,
            },
            C::GatewayUnreachable { since, reason } => Self::GatewayUnreachable { since, reason },
            C::GatewayBack {
                unreachable_for_secs,
            } => Self::GatewayBack {
                unreachable_for_secs,
            },
            C::VerificationFailed { what } => Self::VerificationFailed { what },
            C::Notification {
                id,
                kind,
                title,
                quiet,
            } => Self::Notification {
                id,
                kind: kind.as_str().to_owned(),
                title,
                quiet,
            },
            C::TallyChanged { tally, state } => Self::TallyChanged {
                tally,
                state: state.as_str().to_owned(),
            },
            C::ChitChanged { tally, chit, state } => Self::ChitChanged { tally, chit, state },
            C::CaughtUp {
                notifications,
                payments_received,
                height,
            } => Self::CaughtUp {
                notifications,
                payments_received,
                height,
            },
        }
    }
}

/// The host's receiver of wallet events. Called on a worker thread of the
/// library, one event at a time, in order; return quickly (hand the event
/// to the UI thread). An exception thrown here is dropped, and the next
/// event still comes.
#[uniffi::export(foreign)]
pub trait WalletListener: Send + Sync {
    fn on_event(&self, event: WalletEvent);
}

/// One receive from the core's stream: an event, a gap, or the end.
pub(crate) async fn next(rx: &mut broadcast::Receiver<core::WalletEvent>) -> Option<WalletEvent> {
    match rx.recv().await {
        Ok(event) => Some(event.into()),
        Err(broadcast::error::RecvError::Lagged(count)) => {
            Some(WalletEvent::EventsMissed { count })
        }
        Err(broadcast::error::RecvError::Closed) => None,
    }
}

/// Forwards every event to `listener` until the stream ends or the task is
/// aborted.
pub(crate) async fn forward(
    mut rx: broadcast::Receiver<core::WalletEvent>,
    listener: Arc<dyn WalletListener>,
) {
    while let Some(event) = next(&mut rx).await {
        let listener = listener.clone();
        // Off the async workers (the host's code may block on its own
        // locks), one at a time so the order holds. The host's code may
        // throw (uniffi turns that into a panic for a method without an
        // error type): that event is lost, the stream goes on.
        let _ = tokio::task::spawn_blocking(move || {
            std::panic::catch_unwind(AssertUnwindSafe(move || listener.on_event(event)))
        })
        .await;
    }
}
