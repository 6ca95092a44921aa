//! Home: balances per asset (pending apart) and the sync state.
//!
//! The balances come from the table the store keeps (one row per asset),
//! so reading them costs nothing that grows with the history. Events are
//! coalesced: while one read is under way, any number of events ask for
//! one more read after it, at most one per [`SPACING_MS`], so a sync of
//! 500 blocks refreshes Home a few times, not 500.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::{BalanceView, CommandError, SyncView, command};

use crate::{ctx, ipc, ipc_sleep, local_time};

/// The least time between two reads of the same thing while events come.
const SPACING_MS: i32 = 250;

/// A read that events ask for: one at a time, and one more after it if
/// anything asked meanwhile.
#[derive(Clone, Copy)]
struct Coalesced {
    busy: StoredValue<bool>,
    again: StoredValue<bool>,
}

impl Coalesced {
    fn new() -> Coalesced {
        Coalesced {
            busy: StoredValue::new(false),
            again: StoredValue::new(false),
        }
    }

    fn ask<F, Fut>(self, read: F)
    where
        F: Fn() -> Fut + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        if self.busy.get_value() {
            self.again.set_value(true);
            return;
        }
        self.busy.set_value(true);
        spawn_local(async move {
            loop {
                read().await;
                if !self.again.get_value() {
                    break;
                }
                self.again.set_value(false);
                ipc_sleep(SPACING_MS).await;
            }
            self.busy.set_value(false);
        });
    }
}

#[component]
pub fn Home() -> impl IntoView {
    let cx = ctx();
    let balances = RwSignal::new(None::<Result<Vec<BalanceView>, CommandError>>);
    let sync = RwSignal::new(None::<Result<SyncView, CommandError>>);
    let retrying = RwSignal::new(false);
    let balance_reads = Coalesced::new();
    let sync_reads = Coalesced::new();

    Effect::new(move |_| {
        cx.tick.get();
        balance_reads.ask(move || async move {
            let r = ipc::call0(command::BALANCES).await;
            // Unchanged numbers do not re-render the table.
            if balances.with_untracked(|b| b.as_ref() != Some(&r)) {
                balances.set(Some(r));
            }
        });
        sync_reads.ask(move || async move {
            let r = ipc::call0(command::SYNC_STATE).await;
            if sync.with_untracked(|s| s.as_ref() != Some(&r)) {
                sync.set(Some(r));
            }
        });
    });
    let retry = move |_| {
        retrying.set(true);
        spawn_local(async move {
            let r = ipc::call0_within::<SyncView>(command::SYNC_NOW, ipc::LONG_TIMEOUT_MS).await;
            retrying.set(false);
            sync.set(Some(r));
        });
    };

    view! {
        <h2>"Home"</h2>
        <section class="card" data-testid="sync-card">
            {move || match sync.get() {
                None => view! { <p data-testid="sync-state">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! {
                    <p class="error" data-testid="sync-state">{e.message}</p>
                    <button data-testid="sync-retry" on:click=retry disabled=move || retrying.get()>"Retry"</button>
                }.into_any(),
                Some(Ok(s)) => {
                    if let Some(since) = s.unreachable_since {
                        view! {
                            <p class="error" data-testid="sync-state">"Gateway unreachable since " {local_time(since)}</p>
                            <p class="muted">{s.unreachable_reason.clone().unwrap_or_default()}</p>
                            <button data-testid="sync-retry" on:click=retry disabled=move || retrying.get()>
                                {move || if retrying.get() { "Retrying…" } else { "Retry" }}
                            </button>
                        }.into_any()
                    } else if let Some(err) = s.error.clone() {
                        view! {
                            <p class="error" data-testid="sync-state">"Sync stopped: " {err}</p>
                            <button data-testid="sync-retry" on:click=retry>"Retry"</button>
                        }.into_any()
                    } else if s.syncing {
                        let (done, total) = s.progress.unwrap_or((0, 0));
                        view! {
                            <p data-testid="sync-state">"Syncing… " {done} " of " {total} " blocks"</p>
                            <progress data-testid="sync-progress" max=total.max(1).to_string() value=done.to_string()></progress>
                        }.into_any()
                    } else {
                        view! {
                            <p data-testid="sync-state"><span class="dot ok"></span>" Up to date"
                                {s.height.map(|h| format!(" (block {h})")).unwrap_or_default()}</p>
                        }.into_any()
                    }
                }
            }}
        </section>
        <section class="card">
            <h3>"Balances"</h3>
            {move || match balances.get() {
                None => view! { <p>"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error" data-testid="balances-error">{e.message}</p> }.into_any(),
                Some(Ok(list)) => view! {
                    <table class="balances" data-testid="balances">
                        <thead><tr><th>"Asset"</th><th class="num">"Balance"</th><th class="num">"Pending in"</th><th class="num">"Pending out"</th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|b| {
                                let sym = b.symbol.clone();
                                view! {
                                    <tr data-testid=format!("balance-{sym}")>
                                        <td><strong>{b.symbol.clone()}</strong>" "<span class="muted">{b.name.clone()}</span></td>
                                        <td class="num" data-testid=format!("balance-{sym}-confirmed")>{b.confirmed.clone()}</td>
                                        <td class="num" data-testid=format!("balance-{sym}-pending")>{b.pending.clone()}</td>
                                        <td class="num" data-testid=format!("balance-{sym}-outgoing")>{b.pending_outgoing.clone()}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            }}
        </section>
    }
}
