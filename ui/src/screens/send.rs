//! Send: recipients (validated as you type, or scanned from a QR code),
//! review with fee and totals, confirm, then the transaction's progress
//! from the wallet's events.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::{
    AddressArgs, AmountArgs, AssetView, ProposalView, RecipientInput, SendArgs, TxStatusView,
    TxidArgs, command,
};

use crate::scan::QrScanButton;
use crate::{ctx, ipc};

#[derive(Clone, Copy)]
struct Row {
    address: RwSignal<String>,
    amount: RwSignal<String>,
    asset: RwSignal<String>,
    address_error: RwSignal<Option<String>>,
    amount_error: RwSignal<Option<String>>,
}

impl Row {
    fn new() -> Self {
        Row {
            address: RwSignal::new(String::new()),
            amount: RwSignal::new(String::new()),
            asset: RwSignal::new(String::new()),
            address_error: RwSignal::new(None),
            amount_error: RwSignal::new(None),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Edit,
    Review(ProposalView),
    Progress(TxStatusView),
}

fn check_address(row: Row) {
    let address = row.address.get_untracked();
    if address.trim().is_empty() {
        row.address_error.set(None);
        return;
    }
    spawn_local(async move {
        let r = ipc::call::<_, ()>(
            command::VALIDATE_ADDRESS,
            &AddressArgs {
                address: address.clone(),
            },
            ipc::DEFAULT_TIMEOUT_MS,
        )
        .await;
        // Only the answer for what is still typed counts.
        if row.address.get_untracked() == address {
            row.address_error.set(r.err().map(|e| e.message));
        }
    });
}

fn check_amount(row: Row) {
    let amount = row.amount.get_untracked();
    if amount.trim().is_empty() {
        row.amount_error.set(None);
        return;
    }
    let asset = Some(row.asset.get_untracked()).filter(|a| !a.is_empty());
    spawn_local(async move {
        let r = ipc::call::<_, String>(
            command::VALIDATE_AMOUNT,
            &AmountArgs {
                amount: amount.clone(),
                asset,
            },
            ipc::DEFAULT_TIMEOUT_MS,
        )
        .await;
        if row.amount.get_untracked() == amount {
            row.amount_error.set(r.err().map(|e| e.message));
        }
    });
}

const STAGES: [&str; 5] = ["queued", "accepted", "in_pool", "confirmed", "final"];

#[component]
pub fn Send() -> impl IntoView {
    let cx = ctx();
    let rows = RwSignal::new(vec![Row::new()]);
    let assets = RwSignal::new(Vec::<AssetView>::new());
    let step = RwSignal::new(Step::Edit);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    spawn_local(async move {
        if let Ok(list) = ipc::call0::<Vec<AssetView>>(command::ASSETS).await {
            assets.set(list);
        }
    });

    // A payment link's address, as if typed into a fresh form (the same
    // validation runs); taken, so coming back to Send starts empty.
    Effect::new(move |_| {
        let Some(address) = cx.send_prefill.get() else {
            return;
        };
        cx.send_prefill.set(None);
        // The first row is reused: signals made here would belong to this
        // effect and be disposed when it runs again.
        let Some(row) = rows.get_untracked().first().copied() else {
            return;
        };
        rows.update(|r| r.truncate(1));
        row.address.set(address);
        row.amount.set(String::new());
        row.amount_error.set(None);
        error.set(None);
        step.set(Step::Edit);
        check_address(row);
    });

    // The transaction's progress: re-read on every wallet event.
    Effect::new(move |_| {
        cx.tick.get();
        let Step::Progress(current) = step.get_untracked() else {
            return;
        };
        let txid = current.txid;
        spawn_local(async move {
            if let Ok(s) = ipc::call::<_, TxStatusView>(
                command::TX_STATUS,
                &TxidArgs { txid },
                ipc::DEFAULT_TIMEOUT_MS,
            )
            .await
                && matches!(step.get_untracked(), Step::Progress(ref c) if c.txid == s.txid)
            {
                step.set(Step::Progress(s));
            }
        });
    });

    let review = move |_| {
        error.set(None);
        let recipients: Vec<RecipientInput> = rows
            .get_untracked()
            .iter()
            .map(|r| RecipientInput {
                address: r.address.get_untracked(),
                amount: r.amount.get_untracked(),
                asset: Some(r.asset.get_untracked()).filter(|a| !a.is_empty()),
            })
            .collect();
        busy.set(true);
        spawn_local(async move {
            let r = ipc::call::<_, ProposalView>(
                command::PREPARE_SEND,
                &SendArgs { recipients },
                ipc::LONG_TIMEOUT_MS,
            )
            .await;
            busy.set(false);
            match r {
                Ok(p) => step.set(Step::Review(p)),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let confirm = move |txid: String| {
        error.set(None);
        busy.set(true);
        spawn_local(async move {
            let r = ipc::call::<_, TxStatusView>(
                command::CONFIRM_SEND,
                &TxidArgs { txid },
                ipc::LONG_TIMEOUT_MS,
            )
            .await;
            busy.set(false);
            match r {
                Ok(s) => step.set(Step::Progress(s)),
                Err(e) => {
                    error.set(Some(e.message));
                    step.set(Step::Edit);
                }
            }
        });
    };
    let restart = move |_| {
        rows.set(vec![Row::new()]);
        error.set(None);
        step.set(Step::Edit);
    };

    let has_errors = move || {
        rows.get()
            .iter()
            .any(|r| r.address_error.get().is_some() || r.amount_error.get().is_some())
    };

    view! {
        <h2>"Send"</h2>
        <section class="card wide">
            {move || match step.get() {
                Step::Edit => view! {
                    <div data-testid="send-form">
                        {move || rows.get().into_iter().enumerate().map(|(i, row)| view! {
                            <div class="recipient" data-testid=format!("send-row-{i}")>
                                // A div, not a label: the scan buttons sit in it too.
                                <div class="field grow">
                                    <label for=format!("send-address-{i}")><span>"To address"</span></label>
                                    <div class="address-line">
                                        <input type="text" autocomplete="off" spellcheck="false"
                                            id=format!("send-address-{i}") data-testid=format!("send-address-{i}")
                                            prop:value=move || row.address.get()
                                            on:input=move |ev| { row.address.set(event_target_value(&ev)); check_address(row); } />
                                        <QrScanButton row=i on_address=Callback::new(move |address: String| {
                                            // As if typed: the same validation runs.
                                            row.address.set(address);
                                            check_address(row);
                                        }) />
                                    </div>
                                    {move || row.address_error.get().map(|e| view! { <small class="error" data-testid=format!("send-address-error-{i}")>{e}</small> })}
                                </div>
                                <label class="field">
                                    <span>"Amount"</span>
                                    <input type="text" inputmode="decimal" autocomplete="off" data-testid=format!("send-amount-{i}")
                                        prop:value=move || row.amount.get()
                                        on:input=move |ev| { row.amount.set(event_target_value(&ev)); check_amount(row); } />
                                    {move || row.amount_error.get().map(|e| view! { <small class="error" data-testid=format!("send-amount-error-{i}")>{e}</small> })}
                                </label>
                                <label class="field">
                                    <span>"Asset"</span>
                                    <select data-testid=format!("send-asset-{i}")
                                        on:change=move |ev| { row.asset.set(event_target_value(&ev)); check_amount(row); }>
                                        {move || assets.get().into_iter().map(|a| {
                                            let value = if a.native { String::new() } else { a.symbol.clone() };
                                            let selected = row.asset.get_untracked() == value;
                                            view! { <option value=value selected=selected>{a.symbol.clone()}</option> }
                                        }).collect_view()}
                                    </select>
                                </label>
                                {(i > 0).then(|| view! {
                                    <button class="secondary small" data-testid=format!("send-remove-{i}")
                                        on:click=move |_| rows.update(|r| { if i < r.len() { r.remove(i); } })>"Remove"</button>
                                })}
                            </div>
                        }).collect_view()}
                        <p class="row">
                            <button class="secondary" data-testid="send-add-row" on:click=move |_| rows.update(|r| r.push(Row::new()))>"Add a recipient"</button>
                            <button data-testid="send-review" on:click=review disabled=move || busy.get() || has_errors()>
                                {move || if busy.get() { "Preparing…" } else { "Review" }}
                            </button>
                        </p>
                    </div>
                }.into_any(),
                Step::Review(p) => {
                    let txid = p.txid.clone();
                    view! {
                        <div data-testid="send-review-step">
                            <h3>"Review the payment"</h3>
                            <table>
                                <thead><tr><th>"To"</th><th class="num">"Amount"</th></tr></thead>
                                <tbody>
                                    {p.recipients.iter().enumerate().map(|(i, o)| view! {
                                        <tr data-testid=format!("review-recipient-{i}")><td class="address">{o.address.clone()}</td><td class="num">{o.amount.clone()} " " {o.symbol.clone()}</td></tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <dl>
                                <dt>"Fee"</dt><dd data-testid="review-fee">{p.fee.clone()} " " {p.fee_symbol.clone()}</dd>
                                {p.totals.iter().map(|t| view! {
                                    <dt>"Total " {t.symbol.clone()}</dt>
                                    <dd data-testid=format!("review-total-{}", t.symbol)>{t.total.clone()} " " {t.symbol.clone()}</dd>
                                }).collect_view()}
                            </dl>
                            <p class="row">
                                <button data-testid="review-confirm" disabled=move || busy.get()
                                    on:click=move |_| confirm(txid.clone())>
                                    {move || if busy.get() { "Sending…" } else { "Confirm and send" }}
                                </button>
                                <button class="secondary" data-testid="review-back" on:click=move |_| step.set(Step::Edit)>"Back"</button>
                            </p>
                        </div>
                    }.into_any()
                }
                Step::Progress(s) => {
                    let reached = STAGES.iter().position(|st| *st == s.state);
                    let failed = matches!(s.state.as_str(), "rejected" | "dropped");
                    view! {
                        <div data-testid="send-progress">
                            <h3>"Payment sent"</h3>
                            <p class="address">"Transaction " <code data-testid="send-txid">{s.txid.clone()}</code></p>
                            <ol class="stages">
                                {STAGES.iter().enumerate().map(|(i, st)| {
                                    let class = match reached { Some(r) if i <= r => "done", _ => "" };
                                    view! { <li class=class>{st.replace('_', " ")}</li> }
                                }).collect_view()}
                            </ol>
                            <p data-testid="send-state" class=if failed { "error" } else { "" }>
                                {s.state.clone()}
                                {(s.confirmations > 0).then(|| format!(" ({} confirmations)", s.confirmations))}
                                {s.reason.clone().map(|r| format!(": {r}"))}
                            </p>
                            <button class="secondary" data-testid="send-another" on:click=restart>"Send another payment"</button>
                        </div>
                    }.into_any()
                }
            }}
            {move || error.get().map(|e| view! { <p class="error" data-testid="send-error">{e}</p> })}
        </section>
    }
}
