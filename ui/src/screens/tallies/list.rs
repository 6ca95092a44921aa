//! Every tally, what needs me first (the app's order), one line each.

use std::hash::{DefaultHasher, Hash, Hasher};

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::CommandError;
use notch_ipc::tally::{TallyRow, command};

use super::{TallyView, balance_words, go, limit_text, needs_me};
use crate::{ctx, ipc};

#[component]
pub fn TallyList() -> impl IntoView {
    let cx = ctx();
    let rows = RwSignal::new(None::<Result<Vec<TallyRow>, CommandError>>);
    // Answers can overtake each other: only the newest request's counts.
    let asked = StoredValue::new(0u64);

    // One read of the whole list per tally change, never one per row.
    Effect::new(move |_| {
        cx.tally_rev.get();
        asked.update_value(|n| *n += 1);
        let mine = asked.get_value();
        spawn_local(async move {
            let r = ipc::call0::<Vec<TallyRow>>(command::TALLIES).await;
            if asked.try_get_value() == Some(mine) {
                rows.try_set(Some(r));
            }
        });
    });
    // A notice is about what just happened; it is gone once the list is left.
    on_cleanup(move || {
        cx.tally_notice.try_set(None);
    });

    let list = Memo::new(move |_| match rows.get() {
        Some(Ok(list)) => list,
        _ => Vec::new(),
    });

    view! {
        <h2>"Tallies"</h2>
        <section class="card wide">
            <p class="row">
                <button data-testid="tallies-new-ticket" on:click=move |_| go(cx, TallyView::Ticket)>"Show my ticket"</button>
                <button class="secondary" data-testid="tallies-scan" on:click=move |_| go(cx, TallyView::Scan)>"Scan a ticket"</button>
            </p>
            {move || cx.tally_notice.get().map(|n| view! { <p class="notice" data-testid="tallies-notice">{n}</p> })}
            {move || match rows.get() {
                None => Some(view! { <p>"Loading…"</p> }.into_any()),
                Some(Err(e)) => Some(view! { <p class="error" data-testid="tallies-error">{e.message}</p> }.into_any()),
                Some(Ok(list)) if list.is_empty() => Some(view! {
                    <p class="muted" data-testid="tallies-empty">
                        "No tallies yet. Show your ticket to someone you trust with credit, or scan theirs."
                    </p>
                }.into_any()),
                Some(Ok(_)) => None,
            }}
            <ul class="tallies" data-testid="tallies-list">
                // Keyed by what a row shows: a refetch re-renders only the
                // rows that changed, so 1,000 tallies stay light.
                <For each=move || list.get() key=row_key children=row_view />
            </ul>
        </section>
    }
}

fn row_key(r: &TallyRow) -> (String, u64) {
    let mut h = DefaultHasher::new();
    (
        &r.state,
        &r.phase,
        &r.description,
        &r.partner_name,
        &r.balance,
        &r.balance_direction,
        &r.my_limit,
        &r.partner_limit,
    )
        .hash(&mut h);
    (
        r.offer_to_answer,
        r.invoices_to_approve,
        r.waiting_for_partner,
        &r.delivery_error,
        r.updated_at,
    )
        .hash(&mut h);
    (r.id.clone(), h.finish())
}

fn row_view(r: TallyRow) -> impl IntoView {
    let cx = ctx();
    let id = r.id.clone();
    let open = {
        let id = id.clone();
        move || go(cx, TallyView::Detail(id.clone()))
    };
    let open_key = open.clone();
    let partner = match (&r.partner_name, r.phase.as_str()) {
        (Some(name), _) => name.clone(),
        (None, "draft") => "Waiting for partner".to_owned(),
        (None, "ticket") => "Ticket issuer".to_owned(),
        (None, _) => "Unnamed partner".to_owned(),
    };
    let badge = needs_me(r.offer_to_answer, r.invoices_to_approve);
    let limits = format!(
        "I give {} · they give me {}",
        limit_text(&r.my_limit),
        limit_text(&r.partner_limit)
    );
    view! {
        <li class="trow" role="button" tabindex="0" data-testid=format!("tally-row-{id}") data-tally=id.clone()
            on:click=move |_| open()
            on:keydown=move |ev| if ev.key() == "Enter" { open_key() }>
            <span class="tmain">
                <strong data-testid=format!("tally-partner-{id}")>{partner}</strong>
                <small class="muted">
                    <span class="phase" data-testid=format!("tally-phase-{id}") data-phase=r.phase.clone()>{r.phase.clone()}</span>
                    " · " {r.description.clone()}
                </small>
                <small class="muted">{limits}</small>
            </span>
            <span class="tside">
                <span class="num">
                    <span data-testid=format!("tally-balance-{id}")>{balance_words(&r.balance_direction, &r.balance)}</span>
                    {(r.balance_direction != "even").then_some(" CHIPs")}
                </span>
                {badge.map(|b| view! { <span class="badge need" data-testid=format!("tally-badge-{id}")>{b}</span> })}
                {r.waiting_for_partner.then(|| view! { <small class="muted" data-testid=format!("tally-waiting-{id}")>"Waiting for partner"</small> })}
                {r.delivery_error.clone().map(|e| view! { <small class="error" title=e.clone()>{e.clone()}</small> })}
            </span>
        </li>
    }
}
