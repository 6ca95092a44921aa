//! Home: balances per asset (pending apart) and the sync state.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::{BalanceView, CommandError, SyncView, command};

use crate::{ctx, ipc, local_time};

#[component]
pub fn Home() -> impl IntoView {
    let cx = ctx();
    let balances = RwSignal::new(None::<Result<Vec<BalanceView>, CommandError>>);
    let sync = RwSignal::new(None::<Result<SyncView, CommandError>>);
    let retrying = RwSignal::new(false);

    let load = move || {
        spawn_local(async move {
            balances.set(Some(ipc::call0(command::BALANCES).await));
        });
        spawn_local(async move {
            sync.set(Some(ipc::call0(command::SYNC_STATE).await));
        });
    };
    Effect::new(move |_| {
        cx.tick.get();
        load();
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
