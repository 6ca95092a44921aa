//! History: every transaction, filtered by asset and direction, searched by
//! txid or address, exported as CSV. The list renders only the rows in
//! view, so a long history stays light.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::{
    AssetView, CommandError, ExportArgs, HistoryArgs, HistoryQuery, HistoryRow, command,
};

use crate::{ctx, ipc, local_time};

const ROW_HEIGHT: f64 = 56.0;
const VIEW_HEIGHT: f64 = 336.0;
const OVERSCAN: usize = 4;

#[component]
pub fn History() -> impl IntoView {
    let cx = ctx();
    let asset = RwSignal::new(String::new());
    let direction = RwSignal::new(String::new());
    let search = RwSignal::new(String::new());
    let rows = RwSignal::new(None::<Result<Vec<HistoryRow>, CommandError>>);
    let assets = RwSignal::new(Vec::<AssetView>::new());
    let scroll = RwSignal::new(0.0_f64);
    let export_path = RwSignal::new(String::new());
    let exported = RwSignal::new(None::<Result<String, CommandError>>);

    spawn_local(async move {
        if let Ok(list) = ipc::call0::<Vec<AssetView>>(command::ASSETS).await {
            assets.set(list);
        }
    });

    let query = move || HistoryQuery {
        asset: Some(asset.get()).filter(|a| !a.is_empty()),
        incoming: match direction.get().as_str() {
            "in" => Some(true),
            "out" => Some(false),
            _ => None,
        },
        search: Some(search.get()).filter(|s| !s.trim().is_empty()),
    };
    // Refetched when the wallet's transactions change, not on every sync
    // pass (a 100,000-row history must not reload every few seconds).
    Effect::new(move |_| {
        cx.data_rev.get();
        let q = query();
        spawn_local(async move {
            let r = ipc::call::<_, Vec<HistoryRow>>(
                command::HISTORY,
                &HistoryArgs { query: q },
                ipc::DEFAULT_TIMEOUT_MS,
            )
            .await;
            rows.set(Some(r));
        });
    });
    let export = move |_| {
        let q = query();
        let path = Some(export_path.get_untracked()).filter(|p| !p.trim().is_empty());
        exported.set(None);
        spawn_local(async move {
            exported.set(Some(
                ipc::call::<_, String>(
                    command::EXPORT_CSV,
                    &ExportArgs { query: q, path },
                    ipc::DEFAULT_TIMEOUT_MS,
                )
                .await,
            ));
        });
    };

    view! {
        <h2>"History"</h2>
        <section class="card wide">
            <div class="filters">
                <select data-testid="history-asset" on:change=move |ev| asset.set(event_target_value(&ev))>
                    <option value="">"All assets"</option>
                    {move || assets.get().into_iter().map(|a| view! { <option value=a.symbol.clone()>{a.symbol.clone()}</option> }).collect_view()}
                </select>
                <select data-testid="history-direction" on:change=move |ev| direction.set(event_target_value(&ev))>
                    <option value="">"In and out"</option>
                    <option value="in">"Received"</option>
                    <option value="out">"Sent"</option>
                </select>
                <input type="search" placeholder="Search txid or address" data-testid="history-search"
                    prop:value=move || search.get() on:input=move |ev| search.set(event_target_value(&ev)) />
            </div>
            {move || match rows.get() {
                None => view! { <p>"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error" data-testid="history-error">{e.message}</p> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! { <p class="muted" data-testid="history-empty">"No transactions yet."</p> }.into_any(),
                Some(Ok(list)) => {
                    let total = list.len();
                    view! {
                        <p class="muted" data-testid="history-count">{total} " transactions"</p>
                        <div class="vlist" data-testid="history-list" style=format!("height:{VIEW_HEIGHT}px")
                            on:scroll=move |ev| {
                                use wasm_bindgen::JsCast;
                                if let Some(el) = ev.target().map(|t| t.unchecked_into::<web_sys_element::Element>()) {
                                    scroll.set(el.scroll_top());
                                }
                            }>
                            <div style=format!("height:{}px;position:relative", total as f64 * ROW_HEIGHT)>
                                {move || {
                                    let first = ((scroll.get() / ROW_HEIGHT).floor() as usize).saturating_sub(OVERSCAN);
                                    let shown = (VIEW_HEIGHT / ROW_HEIGHT).ceil() as usize + 2 * OVERSCAN;
                                    list.iter().enumerate().skip(first).take(shown).map(|(i, r)| row_view(i, r.clone())).collect_view()
                                }}
                            </div>
                        </div>
                    }.into_any()
                }
            }}
            <div class="export row">
                <input type="text" placeholder="File path (default: the wallet's data directory)" data-testid="history-export-path"
                    prop:value=move || export_path.get() on:input=move |ev| export_path.set(event_target_value(&ev)) />
                <button data-testid="history-export" on:click=export>"Export CSV"</button>
            </div>
            {move || exported.get().map(|r| match r {
                Ok(path) => view! { <p class="ok" data-testid="history-export-result">"Written to " <code>{path}</code></p> }.into_any(),
                Err(e) => view! { <p class="error" data-testid="history-export-result">{e.message}</p> }.into_any(),
            })}
        </section>
    }
}

fn row_view(i: usize, r: HistoryRow) -> impl IntoView {
    let amounts = r
        .amounts
        .iter()
        .map(|a| {
            format!(
                "{}{} {}",
                if a.net.starts_with('-') { "" } else { "+" },
                a.net,
                a.symbol
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let height = crate::ctx().height;
    let stored = r.confirmations;
    let block = r.block_height;
    // Counted from the block and the synced height, so it follows the tip
    // without a refetch.
    let confirmations = move || {
        let n = match (block, height.get()) {
            (Some(b), Some(h)) if h >= b => (h - b + 1).max(stored),
            _ => stored,
        };
        if n > 0 {
            format!("{n} conf.")
        } else {
            String::new()
        }
    };
    view! {
        <div class="hrow" data-testid=format!("history-row-{i}") data-txid=r.txid.clone()
            style=format!("top:{}px;height:{}px", i as f64 * ROW_HEIGHT, ROW_HEIGHT)>
            <span class=if r.incoming { "dir in" } else { "dir out" } data-testid=format!("history-dir-{i}")>
                {if r.incoming { "In" } else { "Out" }}
            </span>
            <span class="hmain">
                <span class="num" data-testid=format!("history-amount-{i}")>{amounts}</span>
                <small class="muted address">{r.txid.clone()}</small>
            </span>
            <span class="hside">
                <span data-testid=format!("history-state-{i}") class=format!("state {}", r.state)>{r.state.replace('_', " ")}</span>
                <small class="muted" data-testid=format!("history-conf-{i}")>{confirmations}</small>
                <small class="muted">{local_time(r.time)}</small>
            </span>
        </div>
    }
}

/// The one DOM type the list needs, bound by hand (no web-sys dependency).
mod web_sys_element {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(extends = js_sys::Object)]
        pub type Element;

        #[wasm_bindgen(method, getter, js_name = scrollTop)]
        pub fn scroll_top(this: &Element) -> f64;
    }
}
