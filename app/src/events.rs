//! The core's event stream, as the UI sees it, and desktop notifications.

use notch_core::Wallet;
use notch_core::amount::format_amount;
use notch_ipc::{AmountView, WalletEvent as Ipc};
use tauri::{AppHandle, Manager, Runtime};

/// Converts one core event. Exhaustive on purpose: a new core event must be
/// given an IPC form before the app builds again. `None`: the UI has no use
/// for it (none so far).
pub fn to_ipc(event: notch_core::WalletEvent) -> Option<Ipc> {
    use notch_core::WalletEvent as C;
    Some(match event {
        C::SyncProgress {
            done,
            total,
            height,
            target,
        } => Ipc::SyncProgress {
            done,
            total,
            height,
            target,
        },
        C::SyncDone { height } => Ipc::SyncDone { height },
        C::Reorg {
            fork_height,
            old_tip,
            new_tip,
        } => Ipc::Reorg {
            fork_height,
            old_tip,
            new_tip,
        },
        C::PaymentReceived {
            txid,
            amounts,
            confirmed,
        } => Ipc::PaymentReceived {
            txid,
            amounts: amounts
                .into_iter()
                .map(|a| AmountView {
                    amount: format_amount(a.amount, a.decimals),
                    symbol: a.symbol,
                })
                .collect(),
            confirmed,
        },
        C::TxStateChanged {
            txid,
            from,
            to,
            confirmations,
        } => Ipc::TxStateChanged {
            txid,
            from: from.map(|s| s.as_str().to_owned()),
            to: to.as_str().to_owned(),
            confirmations,
        },
        C::GatewayUnreachable { since, reason } => Ipc::GatewayUnreachable { since, reason },
        C::GatewayBack {
            unreachable_for_secs,
        } => Ipc::GatewayBack {
            unreachable_for_secs,
        },
        C::VerificationFailed { what } => Ipc::VerificationFailed { what },
        C::Notification {
            id,
            kind,
            title,
            quiet,
        } => Ipc::Notification {
            id,
            kind: kind.as_str().to_owned(),
            title,
            quiet,
        },
        C::CaughtUp {
            notifications,
            payments_received,
            height,
        } => Ipc::CaughtUp {
            notifications,
            payments_received,
            height,
        },
        C::TallyChanged { tally, state } => Ipc::TallyChanged {
            tally,
            state: state.as_str().to_owned(),
        },
        C::ChitChanged { tally, chit, state } => Ipc::ChitChanged { tally, chit, state },
    })
}

/// Shows an inbox notification on the desktop (money in, send final or
/// dropped, sync trouble …). Without the notification plugin (tests) or
/// if the desktop refuses, it is only logged: the inbox keeps it anyway.
pub async fn notify_desktop<R: Runtime>(app: &AppHandle<R>, wallet: &Wallet, id: i64, title: &str) {
    let body = match wallet.notifications(false).await {
        Ok(list) => list
            .into_iter()
            .find(|n| n.id == id)
            .map(|n| n.body)
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    show_desktop(app, title, &body);
}

/// One desktop notification for a catch-up (a restore, a long time
/// offline), instead of one per quiet inbox entry.
pub fn notify_caught_up<R: Runtime>(app: &AppHandle<R>, notifications: u64, payments: u64) {
    let body = match payments {
        0 => format!("{notifications} new notifications in the inbox."),
        1 => format!("1 payment received; {notifications} new notifications in the inbox."),
        n => format!("{n} payments received; {notifications} new notifications in the inbox."),
    };
    show_desktop(app, "Notch is up to date", &body);
}

fn show_desktop<R: Runtime>(app: &AppHandle<R>, title: &str, body: &str) {
    let Some(plugin) = app.try_state::<tauri_plugin_notification::Notification<R>>() else {
        return;
    };
    if let Err(e) = plugin.builder().title(title).body(body).show() {
        tracing::warn!("cannot show a desktop notification: {e}");
    }
}
