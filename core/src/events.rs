//! One typed event stream for everything the wallet does, and the
//! notifications it also keeps in the inbox (see
//! [`Notification`](crate::store::Notification)).
//!
//! Events are sent after the store transaction that caused them committed,
//! on a [`tokio::sync::broadcast`] channel: a slow listener may miss events
//! (it gets `Lagged`) but never blocks the wallet; the inbox is the durable
//! record.

use serde::Serialize;

use crate::store::{NotificationKind, TxState};
use crate::tally::lifecycle::TallyState;

/// Something the wallet did or saw. Serialized as JSON with a `type` tag
/// (the CLI's `watch --json` prints one per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WalletEvent {
    /// Sync started a pass: `done` of `total` blocks applied so far.
    SyncProgress {
        done: u64,
        total: u64,
        height: u64,
        target: u64,
    },
    /// A sync pass finished at `height` (the gateway's tip).
    SyncDone { height: u64 },
    /// The gateway replaced blocks above `fork_height`.
    Reorg {
        fork_height: u64,
        old_tip: u64,
        new_tip: u64,
    },
    /// A payment to one of the wallet's addresses was seen (in the pool or
    /// a block) for the first time.
    PaymentReceived {
        txid: String,
        /// `(asset symbol, base units)` per asset received.
        amounts: Vec<AssetAmount>,
        confirmed: bool,
    },
    /// A transaction of the wallet moved from one state to another.
    TxStateChanged {
        txid: String,
        from: Option<TxState>,
        to: TxState,
        /// Confirmations, for confirmed and final transactions.
        confirmations: Option<u64>,
    },
    /// The gateway stopped answering (first failure at `since`, Unix seconds).
    GatewayUnreachable { since: u64, reason: String },
    /// The gateway answers again.
    GatewayBack { unreachable_for_secs: u64 },
    /// The gateway served something that failed verification; nothing of
    /// it was stored.
    VerificationFailed { what: String },
    /// A notification was added to the inbox. `quiet` ones were found
    /// while catching up (a restore, a long time offline): the inbox has
    /// them, and one [`WalletEvent::CaughtUp`] sums them up for the desktop.
    Notification {
        id: i64,
        kind: NotificationKind,
        title: String,
        quiet: bool,
    },
    /// A tally changed state (MyCHIPs's state names: `P.offer`, `open` …).
    /// `tally` is the wallet's id of it.
    TallyChanged { tally: String, state: TallyState },
    /// A chit was added to a tally or changed: signed by us, received,
    /// approved or rejected, or its message delivered to the partner (so it
    /// no longer waits). `state` is MyCHIPs's state code (`L.pend.good`,
    /// `A.good`, …).
    ChitChanged {
        tally: String,
        chit: String,
        state: String,
    },
    /// A catch-up (restore or a long absence) ended: how many notifications
    /// it added to the inbox, and how many payments in it found.
    CaughtUp {
        notifications: u64,
        payments_received: u64,
        height: u64,
    },
}

/// An amount of one asset, in base units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetAmount {
    /// Asset id, hex.
    pub asset: String,
    pub symbol: String,
    pub decimals: u8,
    pub amount: u128,
}

impl WalletEvent {
    pub(crate) fn state_changed(
        txid: &[u8; 32],
        from: Option<TxState>,
        to: TxState,
        confirmations: Option<u64>,
    ) -> Self {
        WalletEvent::TxStateChanged {
            txid: hex::encode(txid),
            from,
            to,
            confirmations,
        }
    }
}

/// The sending half, shared by the wallet's parts.
#[derive(Debug, Clone)]
pub(crate) struct EventBus {
    sender: tokio::sync::broadcast::Sender<WalletEvent>,
}

impl EventBus {
    pub(crate) fn new() -> Self {
        let (sender, _) = tokio::sync::broadcast::channel(1024);
        Self { sender }
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<WalletEvent> {
        self.sender.subscribe()
    }

    /// Sends, ignoring "no listener".
    pub(crate) fn emit(&self, event: WalletEvent) {
        tracing::debug!(?event, "wallet event");
        let _ = self.sender.send(event);
    }

    pub(crate) fn emit_all(&self, events: impl IntoIterator<Item = WalletEvent>) {
        for event in events {
            self.emit(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_a_type_tag() {
        let e = WalletEvent::state_changed(
            &[1; 32],
            Some(TxState::InPool),
            TxState::Confirmed,
            Some(1),
        );
        let json = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(json["type"], "tx_state_changed");
        assert_eq!(json["from"], "in_pool");
        assert_eq!(json["to"], "confirmed");
        assert_eq!(json["confirmations"], 1);
        let e = WalletEvent::GatewayUnreachable {
            since: 5,
            reason: "x".into(),
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap_or_default()["type"],
            "gateway_unreachable"
        );
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event() {
        let bus = EventBus::new();
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        bus.emit(WalletEvent::SyncDone { height: 3 });
        assert_eq!(
            a.recv().await.ok(),
            Some(WalletEvent::SyncDone { height: 3 })
        );
        assert_eq!(
            b.recv().await.ok(),
            Some(WalletEvent::SyncDone { height: 3 })
        );
        // No listener is not an error.
        drop((a, b));
        bus.emit(WalletEvent::SyncDone { height: 4 });
    }
}
