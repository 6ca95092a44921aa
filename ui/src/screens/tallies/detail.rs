//! One tally: who, where it stands, what I can do on it now, and its chits,
//! newest first, a page at a time (a tally may hold tens of thousands).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::CommandError;
use notch_ipc::tally::{
    ChitArgs, ChitIdArgs, ChitPage, ChitPageArgs, ChitRow, SetLimitArgs, TallyDetailView,
    TallyIdArgs, command,
};

use super::offer::OfferReview;
use super::ticket::TicketShow;
use super::{BackToList, balance_words, limit_text, optional};
use crate::{ctx, ipc, local_time};

/// Chits asked for at a time.
const PAGE: u32 = 100;

/// What is about to be signed, shown whole before it is.
#[derive(Clone, Debug, PartialEq)]
enum Review {
    Pay {
        amount: String,
        memo: Option<String>,
    },
    Invoice {
        amount: String,
        memo: Option<String>,
    },
    Approve(ChitRow),
}

/// The chits loaded so far, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
struct Chits {
    rows: Vec<ChitRow>,
    next: Option<String>,
    total: u64,
}

#[component]
pub fn TallyDetail(id: String) -> impl IntoView {
    let cx = ctx();
    let id = StoredValue::new(id);
    let loaded = RwSignal::new(None::<Result<TallyDetailView, CommandError>>);
    let refresh_error = RwSignal::new(None::<String>);
    let chits = RwSignal::new(Chits::default());
    let chits_error = RwSignal::new(None::<String>);
    let loading_older = RwSignal::new(false);
    // Answers can overtake each other: only the newest request's counts.
    let asked = StoredValue::new(0u64);

    let amount = RwSignal::new(String::new());
    let memo = RwSignal::new(String::new());
    let limit = RwSignal::new(String::new());
    let review = RwSignal::new(None::<Review>);
    let confirm_close = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let done = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    // The tally, then as many of its newest chits as are shown already (at
    // least a page): a chit changed anywhere in view is read again.
    Effect::new(move |_| {
        cx.tally_rev.get();
        asked.update_value(|n| *n += 1);
        let mine = asked.get_value();
        let id = id.get_value();
        let want = chits.with_untracked(|c| c.rows.len()).max(PAGE as usize);
        spawn_local(async move {
            let current = || asked.try_get_value() == Some(mine);
            let r = ipc::call::<_, TallyDetailView>(
                command::TALLY,
                &TallyIdArgs { id: id.clone() },
                ipc::DEFAULT_TIMEOUT_MS,
            )
            .await;
            if !current() {
                return;
            }
            let has_chits = match &r {
                Ok(d) => {
                    d.chit_count > 0
                        || matches!(d.row.phase.as_str(), "open" | "closing" | "closed")
                }
                Err(_) => false,
            };
            match r {
                Ok(d) => {
                    refresh_error.set(None);
                    loaded.set(Some(Ok(d)));
                }
                // Keep what was shown; say it may be out of date.
                Err(e) if matches!(loaded.get_untracked(), Some(Ok(_))) => {
                    refresh_error.set(Some(e.message));
                }
                Err(e) => loaded.set(Some(Err(e))),
            }
            if !has_chits {
                return;
            }
            let r = newest_chits(&id, want).await;
            if !current() {
                return;
            }
            match r {
                Ok(c) => {
                    chits_error.set(None);
                    chits.set(c);
                }
                Err(e) => chits_error.set(Some(e.message)),
            }
        });
    });

    let load_older = move |_| {
        let Some(before) = chits.with_untracked(|c| c.next.clone()) else {
            return;
        };
        let mine = asked.get_value();
        loading_older.set(true);
        spawn_local(async move {
            let args = ChitPageArgs {
                id: id.get_value(),
                before: Some(before),
                limit: PAGE,
            };
            let r = ipc::call::<_, ChitPage>(command::TALLY_CHITS, &args, ipc::DEFAULT_TIMEOUT_MS)
                .await;
            loading_older.try_set(false);
            // A refetch since has replaced the list this page continued.
            if asked.try_get_value() != Some(mine) {
                return;
            }
            match r {
                Ok(page) => chits.update(|c| {
                    let seen: HashSet<String> = c.rows.iter().map(|r| r.uuid.clone()).collect();
                    c.rows
                        .extend(page.rows.into_iter().filter(|r| !seen.contains(&r.uuid)));
                    c.next = page.next;
                    c.total = page.total;
                }),
                Err(e) => chits_error.set(Some(e.message)),
            }
        });
    };

    // What renders depends on as little as possible: a chit event must not
    // rebuild the form someone is typing in.
    let d = Memo::new(move |_| match loaded.get() {
        Some(Ok(d)) => Some(d),
        _ => None,
    });
    let phase = Memo::new(move |_| d.with(|d| d.as_ref().map(|d| d.row.phase.clone())));
    let offered = Memo::new(move |_| d.get().filter(|d| d.row.phase == "offered"));
    let ticket = Memo::new(move |_| d.with(|d| d.as_ref().and_then(|d| d.ticket.clone())));
    let field = move |f: fn(&TallyDetailView) -> String| {
        move || d.with(|d| d.as_ref().map(f).unwrap_or_default())
    };

    // One action at a time; its outcome in `done` or `error`.
    let act = move |cmd: &'static str, run: ActArgs, said: &'static str| {
        error.set(None);
        done.set(None);
        busy.set(true);
        spawn_local(async move {
            // Signing and delivering may wait on the partner's agent.
            let r = match run {
                ActArgs::Chit(a) => ipc::call::<_, ChitRow>(cmd, &a, ipc::LONG_TIMEOUT_MS).await,
                ActArgs::ChitId(a) => ipc::call::<_, ChitRow>(cmd, &a, ipc::LONG_TIMEOUT_MS).await,
                ActArgs::Limit(a) => ipc::call::<_, ChitRow>(cmd, &a, ipc::LONG_TIMEOUT_MS).await,
                ActArgs::Tally(a) => ipc::call::<_, ChitRow>(cmd, &a, ipc::LONG_TIMEOUT_MS).await,
            };
            busy.try_set(false);
            review.try_set(None);
            confirm_close.try_set(false);
            match r {
                Ok(chit) => {
                    let waiting = chit.status == "waiting";
                    done.try_set(Some(if waiting {
                        format!("{said}; waiting for the partner to receive it.")
                    } else {
                        format!("{said}.")
                    }));
                    if cmd == command::TALLY_PAY || cmd == command::TALLY_INVOICE {
                        amount.try_set(String::new());
                        memo.try_set(String::new());
                    }
                    if cmd == command::TALLY_SET_LIMIT {
                        limit.try_set(String::new());
                    }
                    cx.tally_rev.try_update(|n| *n += 1);
                }
                Err(e) => {
                    error.try_set(Some(e.message));
                }
            }
        });
    };

    let start_review = move |invoice: bool| {
        error.set(None);
        done.set(None);
        let a = amount.get_untracked().trim().to_owned();
        if a.is_empty() {
            error.set(Some("Enter an amount in CHIPs first.".into()));
            return;
        }
        let m = optional(memo.get_untracked());
        review.set(Some(if invoice {
            Review::Invoice { amount: a, memo: m }
        } else {
            Review::Pay { amount: a, memo: m }
        }));
    };
    let confirm_review = move || {
        let tally = id.get_value();
        match review.get_untracked() {
            Some(Review::Pay { amount, memo }) => act(
                command::TALLY_PAY,
                ActArgs::Chit(ChitArgs {
                    id: tally,
                    amount,
                    memo,
                }),
                "Payment signed and sent",
            ),
            Some(Review::Invoice { amount, memo }) => act(
                command::TALLY_INVOICE,
                ActArgs::Chit(ChitArgs {
                    id: tally,
                    amount,
                    memo,
                }),
                "Invoice signed and sent",
            ),
            Some(Review::Approve(chit)) => act(
                command::CHIT_APPROVE,
                ActArgs::ChitId(ChitIdArgs { chit: chit.uuid }),
                "Invoice approved and paid",
            ),
            None => {}
        }
    };
    let reject = Callback::new(move |chit: String| {
        act(
            command::CHIT_REJECT,
            ActArgs::ChitId(ChitIdArgs { chit }),
            "Invoice rejected",
        )
    });
    let approve = Callback::new(move |chit: ChitRow| {
        error.set(None);
        done.set(None);
        review.set(Some(Review::Approve(chit)));
    });
    let set_limit = move || {
        let l = limit.get_untracked().trim().to_owned();
        if l.is_empty() {
            error.set(Some("Enter the credit limit in CHIPs first.".into()));
            return;
        }
        act(
            command::TALLY_SET_LIMIT,
            ActArgs::Limit(SetLimitArgs {
                id: id.get_value(),
                limit: l,
            }),
            "New credit limit signed and sent",
        );
    };
    let close = move |_| {
        act(
            command::TALLY_CLOSE,
            ActArgs::Tally(TallyIdArgs { id: id.get_value() }),
            "Request to close signed and sent",
        )
    };

    let partner_name = move || {
        d.with(|d| {
            d.as_ref()
                .map(|d| {
                    d.row
                        .partner_name
                        .clone()
                        .or_else(|| d.partner.name.clone())
                        .unwrap_or_else(|| {
                            if d.row.phase == "draft" {
                                "Waiting for partner".to_owned()
                            } else {
                                "Unnamed partner".to_owned()
                            }
                        })
                })
                .unwrap_or_default()
        })
    };

    let pay_invoice = move || {
        view! {
            <div class="chit-form">
                <label class="field">
                    <span>"Amount (CHIPs)"</span>
                    <input type="text" inputmode="decimal" autocomplete="off" data-testid="chit-amount"
                        prop:value=move || amount.get() on:input=move |ev| amount.set(event_target_value(&ev)) />
                </label>
                <label class="field grow">
                    <span>"Memo"</span>
                    <input type="text" autocomplete="off" data-testid="chit-memo"
                        prop:value=move || memo.get() on:input=move |ev| memo.set(event_target_value(&ev)) />
                </label>
                <p class="row">
                    <button data-testid="chit-pay" disabled=move || busy.get() on:click=move |_| start_review(false)>"Pay"</button>
                    <button class="secondary" data-testid="chit-invoice" disabled=move || busy.get() on:click=move |_| start_review(true)>"Invoice"</button>
                </p>
            </div>
        }
    };

    let actions = move || {
        match phase.get().as_deref() {
        Some("open") => view! {
            <section class="card wide" data-testid="tally-actions">
                <h3>"Pay or invoice"</h3>
                {pay_invoice()}
                <h3>"My credit limit for them"</h3>
                <form class="row" on:submit=move |ev| { ev.prevent_default(); set_limit(); }>
                    <input type="text" inputmode="decimal" autocomplete="off" data-testid="tally-limit-input"
                        placeholder="CHIPs" prop:value=move || limit.get()
                        on:input=move |ev| limit.set(event_target_value(&ev)) />
                    <button type="submit" class="secondary" data-testid="tally-limit-set" disabled=move || busy.get()>"Set my credit limit"</button>
                </form>
                <h3>"Close"</h3>
                {move || if confirm_close.get() {
                    view! {
                        <div class="confirm" data-testid="tally-close-confirmation">
                            <p>"Close this tally? From now on only payments that bring the balance toward zero are accepted; it closes when the balance is even."</p>
                            <p class="row">
                                <button data-testid="tally-close-confirm" disabled=move || busy.get() on:click=close>"Close tally"</button>
                                <button class="secondary" data-testid="tally-close-cancel" on:click=move |_| confirm_close.set(false)>"Keep it open"</button>
                            </p>
                        </div>
                    }.into_any()
                } else {
                    view! {
                        <button class="secondary" data-testid="tally-close" disabled=move || busy.get()
                            on:click=move |_| confirm_close.set(true)>"Close tally…"</button>
                    }.into_any()
                }}
            </section>
        }.into_any(),
        Some("closing") => view! {
            <section class="card wide" data-testid="tally-actions">
                <p class="muted">"This tally is closing: only payments that bring the balance toward zero are accepted. It closes when the balance is even."</p>
                {pay_invoice()}
            </section>
        }.into_any(),
        Some("offered") => view! {
            <section class="card wide">
                {move || offered.get().map(|detail| view! { <OfferReview detail /> })}
            </section>
        }.into_any(),
        Some("draft") => view! {
            <section class="card wide">
                {move || match ticket.get() {
                    Some(t) => view! { <TicketShow ticket=t /> }.into_any(),
                    None => view! { <p class="muted">"Waiting for a partner to scan your ticket."</p> }.into_any(),
                }}
            </section>
        }.into_any(),
        Some("ticket") => view! {
            <section class="card wide">
                <p data-testid="tally-ticket-pending">
                    "The ticket's issuer has not been reached yet. Notch keeps the ticket and presents it again; you get a notification when their offer arrives."
                </p>
            </section>
        }.into_any(),
        _ => ().into_any(),
    }
    };

    let has_chit_list = move || {
        matches!(phase.get().as_deref(), Some("open" | "closing" | "closed"))
            || chits.with(|c| !c.rows.is_empty())
    };

    view! {
        <BackToList />
        {move || match loaded.get() {
            None => Some(view! { <p>"Loading the tally…"</p> }.into_any()),
            Some(Err(e)) => Some(view! { <p class="error" data-testid="tally-error">{e.message}</p> }.into_any()),
            Some(Ok(_)) => None,
        }}
        <Show when=move || d.with(Option::is_some)>
            <section class="card wide" data-testid="tally-detail" data-tally=id.get_value()>
                <h2 data-testid="tally-detail-partner">{partner_name}</h2>
                <dl>
                    <dt>"Phase"</dt>
                    <dd>
                        <span class="phase" data-testid="tally-detail-phase"
                            data-phase=field(|d| d.row.phase.clone())>{field(|d| d.row.phase.clone())}</span>
                        " · " {field(|d| d.row.description.clone())}
                    </dd>
                    <dt>"Balance"</dt>
                    <dd class="balance">
                        <span data-testid="tally-detail-balance">{field(|d| balance_words(&d.row.balance_direction, &d.row.balance))}</span>
                        {field(|d| if d.row.balance_direction == "even" { String::new() } else { " CHIPs".into() })}
                    </dd>
                    <dt>"Credit I give them"</dt>
                    <dd><span data-testid="tally-detail-my-limit">{field(|d| limit_text(&d.row.my_limit))}</span></dd>
                    <dt>"Credit they give me"</dt>
                    <dd><span data-testid="tally-detail-partner-limit">{field(|d| limit_text(&d.row.partner_limit))}</span></dd>
                    <dt>"Partner address"</dt>
                    <dd class="address" data-testid="tally-detail-partner-address">
                        {field(|d| d.row.partner.clone().or_else(|| d.partner.address.clone()).unwrap_or_else(|| "not known yet".into()))}
                    </dd>
                    {move || d.with(|d| d.as_ref().and_then(|d| d.row.comment.clone())).map(|c| view! {
                        <dt>"Comment"</dt><dd data-testid="tally-detail-comment">{c}</dd>
                    })}
                    {move || d.with(|d| d.as_ref().and_then(|d| d.row.reason.clone())).map(|r| view! {
                        <dt>"Why void"</dt><dd data-testid="tally-detail-reason">{r}</dd>
                    })}
                </dl>
                {move || d.with(|d| d.as_ref().is_some_and(|d| d.row.waiting_for_partner)).then(|| view! {
                    <p class="muted" data-testid="tally-detail-waiting">"Waiting for partner: something signed is queued for delivery."</p>
                })}
                {move || d.with(|d| d.as_ref().and_then(|d| d.row.delivery_error.clone())).map(|e| view! {
                    <p class="error" data-testid="tally-detail-delivery-error">{e}</p>
                })}
                {move || refresh_error.get().map(|e| view! { <p class="error" data-testid="tally-refresh-error">{e}</p> })}
                <details>
                    <summary>"The record as signed"</summary>
                    <pre class="record">{field(|d| d.record_json.clone())}</pre>
                </details>
            </section>
            {actions}
            {move || error.get().map(|e| view! { <p class="error" data-testid="tally-error">{e}</p> })}
            {move || done.get().map(|m| view! { <p class="ok" data-testid="tally-done">{m}</p> })}
            <Show when=has_chit_list>
                <section class="card wide">
                    <h3>"Chits"</h3>
                    <p class="muted" data-testid="chits-count">
                        {move || chits.with(|c| if c.total == 0 {
                            "No chits yet.".to_owned()
                        } else {
                            format!("Showing {} of {}, newest first", c.rows.len(), c.total)
                        })}
                    </p>
                    <ul class="chits" data-testid="chit-list">
                        <For each=move || chits.get().rows key=chit_key
                            children=move |c| chit_view(c, busy, approve, reject) />
                    </ul>
                    {move || chits_error.get().map(|e| view! { <p class="error" data-testid="chits-error">{e}</p> })}
                    <Show when=move || chits.with(|c| c.next.is_some())>
                        <button class="secondary" data-testid="chits-load-older" disabled=move || loading_older.get()
                            on:click=load_older>
                            {move || if loading_older.get() { "Loading…" } else { "Load older" }}
                        </button>
                    </Show>
                </section>
            </Show>
        </Show>
        {move || review.get().map(|r| {
            let (title, amount, memo) = match &r {
                Review::Pay { amount, memo } => ("Pay", as_signed(amount), memo.clone()),
                Review::Invoice { amount, memo } => ("Invoice", as_signed(amount), memo.clone()),
                Review::Approve(c) => ("Approve and pay this invoice", c.amount.clone().unwrap_or_default(), c.memo.clone()),
            };
            let what = match &r {
                Review::Pay { .. } => "You sign a payment of this amount to them.",
                Review::Invoice { .. } => "You sign an invoice: they are asked to pay this amount; nothing moves until they approve it.",
                Review::Approve(_) => "You sign the payment this invoice asks for.",
            };
            view! {
                <div class="modal-back">
                    <section class="card modal" data-testid="chit-review" role="dialog" aria-modal="true">
                        <h3>{title}</h3>
                        <dl>
                            <dt>"Partner"</dt><dd data-testid="chit-review-partner">{partner_name}</dd>
                            <dt>"Amount"</dt><dd><span class="num" data-testid="chit-review-amount">{amount}</span>" CHIPs"</dd>
                            <dt>"Memo"</dt><dd data-testid="chit-review-memo">{memo.unwrap_or_default()}</dd>
                        </dl>
                        <p class="muted">{what}</p>
                        <p class="row">
                            <button data-testid="chit-review-confirm" disabled=move || busy.get() on:click=move |_| confirm_review()>
                                {move || if busy.get() { "Signing…" } else { "Sign and send" }}
                            </button>
                            <button class="secondary" data-testid="chit-review-cancel" disabled=move || busy.get()
                                on:click=move |_| review.set(None)>"Cancel"</button>
                        </p>
                    </section>
                </div>
            }
        })}
    }
}

/// A typed amount as the app will sign it (`12.5` is signed as `12.500`),
/// so the review shows that. Only digits are moved and zeros padded, no
/// arithmetic; the app still parses what was typed, and refuses it with its
/// own words if it is not an amount: anything this does not recognise is
/// shown as typed.
fn as_signed(typed: &str) -> String {
    let (whole, fraction) = typed.split_once('.').unwrap_or((typed, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole)
        || !digits(fraction)
        || fraction.len() > 3
        || typed.ends_with('.')
        || (whole.is_empty() && fraction.is_empty())
    {
        return typed.to_owned();
    }
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    format!("{whole}.{fraction:0<3}")
}

/// The arguments of one action, by command.
enum ActArgs {
    Chit(ChitArgs),
    ChitId(ChitIdArgs),
    Limit(SetLimitArgs),
    Tally(TallyIdArgs),
}

/// The newest chits, page after page, until `want` of them or the end.
async fn newest_chits(id: &str, want: usize) -> Result<Chits, CommandError> {
    let mut out = Chits::default();
    let mut before = None;
    // Bounded: never more pages than were shown, plus one.
    for _ in 0..=want.div_ceil(PAGE as usize) {
        let page = ipc::call::<_, ChitPage>(
            command::TALLY_CHITS,
            &ChitPageArgs {
                id: id.to_owned(),
                before,
                limit: PAGE,
            },
            ipc::DEFAULT_TIMEOUT_MS,
        )
        .await?;
        let empty = page.rows.is_empty();
        out.rows.extend(page.rows);
        out.next = page.next;
        out.total = page.total;
        if empty || out.rows.len() >= want || out.next.is_none() {
            break;
        }
        before = out.next.clone();
    }
    Ok(out)
}

fn chit_key(c: &ChitRow) -> (String, u64) {
    let mut h = DefaultHasher::new();
    (
        &c.state,
        &c.status,
        &c.amount,
        &c.memo,
        &c.setting,
        &c.running_balance,
        &c.running_direction,
    )
        .hash(&mut h);
    (c.uuid.clone(), h.finish())
}

fn status_words(status: &str) -> &str {
    match status {
        "waiting" => "Waiting for partner",
        "to_approve" => "To approve",
        "pending" => "Pending",
        "done" => "Done",
        "rejected" => "Rejected",
        "void" => "Void",
        other => other,
    }
}

fn chit_view(
    c: ChitRow,
    busy: RwSignal<bool>,
    approve: Callback<ChitRow>,
    reject: Callback<String>,
) -> impl IntoView {
    let u = c.uuid.clone();
    let kind = match c.kind.as_str() {
        "payment" => "Payment".to_owned(),
        "invoice" => "Invoice".to_owned(),
        _ => c.setting.clone().unwrap_or_else(|| "Setting".to_owned()),
    };
    let direction = match c.direction.as_str() {
        "to_me" => "to me",
        "from_me" => "from me",
        _ => "",
    };
    let running = match (&c.running_balance, &c.running_direction) {
        (Some(b), Some(d)) => balance_words(d, b),
        (Some(b), None) => b.clone(),
        _ => String::new(),
    };
    let to_approve = c.status == "to_approve";
    let for_approval = c.clone();
    let rejected = u.clone();
    view! {
        <li class="crow" data-testid=format!("chit-row-{u}") data-kind=c.kind.clone() data-status=c.status.clone()
            data-direction=c.direction.clone()>
            <span class="cmain">
                <span>
                    <strong data-testid=format!("chit-kind-{u}")>{kind}</strong>
                    " " <span class="muted" data-testid=format!("chit-direction-{u}")>{direction}</span>
                </span>
                <small class="muted" data-testid=format!("chit-memo-{u}")>{c.memo.clone().unwrap_or_default()}</small>
                <small class="muted">{local_time(c.created_at.max(0) as u64)}</small>
            </span>
            <span class="cside">
                <span class="num">
                    <span data-testid=format!("chit-amount-{u}")>{c.amount.clone().unwrap_or_default()}</span>
                    {c.amount.is_some().then_some(" CHIPs")}
                </span>
                <span class=format!("state {}", c.status) data-testid=format!("chit-status-{u}") data-status=c.status.clone()>
                    {status_words(&c.status).to_owned()}
                </span>
                <small class="muted" data-testid=format!("chit-balance-{u}")>{running}</small>
            </span>
            {to_approve.then(|| view! {
                <span class="cactions">
                    <button class="small" data-testid=format!("chit-approve-{u}") disabled=move || busy.get()
                        on:click=move |_| approve.run(for_approval.clone())>"Approve…"</button>
                    <button class="secondary small" data-testid=format!("chit-reject-{u}") disabled=move || busy.get()
                        on:click=move |_| reject.run(rejected.clone())>"Reject"</button>
                </span>
            })}
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::as_signed;

    #[test]
    fn a_typed_amount_reads_as_the_app_signs_it() {
        for (typed, shown) in [
            ("12.5", "12.500"),
            ("1", "1.000"),
            (".25", "0.250"),
            ("007.100", "7.100"),
            ("0.001", "0.001"),
        ] {
            assert_eq!(as_signed(typed), shown, "{typed}");
        }
        // Not amounts: left for the app to refuse, shown as typed.
        for typed in ["1.", ".", "1.0001", "1,5", "-1", "1e3", "abc", "1..2"] {
            assert_eq!(as_signed(typed), typed);
        }
    }
}
