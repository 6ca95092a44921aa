//! My ticket: the terms I offer, then the QR code and link a partner scans.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::tally::{NewTicketArgs, TicketView, command};

use super::{BackToList, TallyView, go, optional};
use crate::{ctx, ipc, local_time};

#[component]
pub fn MyTicket() -> impl IntoView {
    let my_limit = RwSignal::new(String::new());
    let partner_limit = RwSignal::new(String::new());
    let comment = RwSignal::new(String::new());
    let minutes = RwSignal::new(String::new());
    let ticket = RwSignal::new(None::<TicketView>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let create = move || {
        error.set(None);
        let expires_in_minutes = match optional(minutes.get_untracked()) {
            None => None,
            Some(m) => match m.parse::<u32>() {
                Ok(m) if m > 0 => Some(m),
                _ => {
                    error.set(Some("The expiry is a whole number of minutes.".into()));
                    return;
                }
            },
        };
        let args = NewTicketArgs {
            expires_in_minutes,
            my_limit: optional(my_limit.get_untracked()),
            partner_limit: optional(partner_limit.get_untracked()),
            comment: optional(comment.get_untracked()),
        };
        busy.set(true);
        spawn_local(async move {
            let r = ipc::call::<_, TicketView>(command::NEW_TICKET, &args, ipc::DEFAULT_TIMEOUT_MS)
                .await;
            busy.try_set(false);
            match r {
                Ok(t) => {
                    ticket.try_set(Some(t));
                }
                Err(e) => {
                    error.try_set(Some(e.message));
                }
            }
        });
    };

    let field = move |sig: RwSignal<String>,
                      id: &'static str,
                      label: &'static str,
                      hint: &'static str,
                      mode: &'static str| {
        view! {
            <label class="field">
                <span>{label}</span>
                <input type="text" inputmode=mode autocomplete="off" data-testid=id placeholder=hint
                    prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev)) />
            </label>
        }
    };

    view! {
        <BackToList />
        <h2>"My ticket"</h2>
        {move || match ticket.get() {
            None => view! {
                <section class="card">
                    <p class="muted">"A ticket invites one person to open a tally with you. Set the terms it offers; all are optional."</p>
                    <form class="stack" on:submit=move |ev| { ev.prevent_default(); create(); }>
                        {field(my_limit, "ticket-my-limit", "Credit I give my partner (CHIPs)", "e.g. 100", "decimal")}
                        {field(partner_limit, "ticket-partner-limit", "Credit I ask of my partner (CHIPs)", "e.g. 50", "decimal")}
                        {field(comment, "ticket-comment", "Comment", "What the tally is for", "text")}
                        {field(minutes, "ticket-expiry-minutes", "Good for (minutes)", "the default if empty", "numeric")}
                        <p class="row">
                            <button type="submit" data-testid="ticket-create" disabled=move || busy.get()>
                                {move || if busy.get() { "Creating…" } else { "Create ticket" }}
                            </button>
                        </p>
                    </form>
                    {move || error.get().map(|e| view! { <p class="error" data-testid="ticket-error">{e}</p> })}
                </section>
            }.into_any(),
            Some(t) => view! {
                <section class="card wide">
                    <TicketShow ticket=t />
                    <p class="row">
                        <button class="secondary" data-testid="ticket-another" on:click=move |_| ticket.set(None)>"Make another ticket"</button>
                    </p>
                </section>
            }.into_any(),
        }}
    }
}

/// A ticket as a partner scans it: the QR code large, the link to copy,
/// when it expires, what scanning it does, and the draft it is bound to.
#[component]
pub fn TicketShow(ticket: TicketView) -> impl IntoView {
    let cx = ctx();
    let copied = RwSignal::new(None::<bool>);
    let link = ticket.link.clone();
    let draft = ticket.tally.id.clone();
    let expires_at = ticket.expires_at;
    view! {
        <div class="ticket" data-testid="ticket">
            <div class="qr ticket-qr" data-testid="ticket-qr" inner_html=ticket.qr_svg.clone()></div>
            <div class="ticket-side">
                <label class="field">
                    <span>"Link"</span>
                    <input type="text" readonly=true class="address" data-testid="ticket-link"
                        prop:value=ticket.link.clone() on:focus=move |ev| select_all(&ev) />
                </label>
                <p class="row">
                    <button data-testid="ticket-copy" on:click=move |_| {
                        let link = link.clone();
                        spawn_local(async move { copied.try_set(Some(ipc::copy_to_clipboard(&link).await)); });
                    }>"Copy link"</button>
                    {move || copied.get().map(|ok| view! {
                        <small data-testid="ticket-copied" class=if ok { "ok" } else { "error" }>
                            {if ok { "Copied to the clipboard" } else { "Could not use the clipboard: select the link and copy it" }}
                        </small>
                    })}
                </p>
                <Expiry expires_at />
                <p data-testid="ticket-next">
                    "Whoever scans this ticket first gets the tally offered with these terms: issuing the ticket is your consent to them. "
                    "Show the code or send the link only to the person you mean. When they accept, the tally opens and you get a notification. "
                    "The ticket works once."
                </p>
                <p>
                    <a href="#" data-testid="ticket-open-draft" on:click=move |ev| {
                        ev.prevent_default();
                        go(cx, TallyView::Detail(draft.clone()));
                    }>"The draft tally it is bound to →"</a>
                </p>
            </div>
        </div>
    }
}

/// "Expires in 9:58 (at …)", counted down each second, or "Expired".
#[component]
fn Expiry(expires_at: i64) -> impl IntoView {
    let now = RwSignal::new(now_unix());
    if let Ok(handle) = set_interval_with_handle(
        move || {
            now.try_set(now_unix());
        },
        Duration::from_secs(1),
    ) {
        on_cleanup(move || handle.clear());
    }
    let at = local_time(expires_at.max(0) as u64);
    view! {
        <p data-testid="ticket-expires" data-expires-at=expires_at.to_string()
            class=move || { if now.get() >= expires_at { "error" } else { "" } }>
            {move || {
                let left = expires_at - now.get();
                if left <= 0 {
                    format!("Expired at {at}: make a new ticket")
                } else {
                    format!("Expires in {} (at {at})", countdown(left))
                }
            }}
        </p>
    }
}

/// Seconds left as `h:mm:ss` or `m:ss`.
fn countdown(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

fn now_unix() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

fn select_all(ev: &leptos::ev::FocusEvent) {
    use wasm_bindgen::JsCast;
    if let Some(input) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    {
        input.select();
    }
}
