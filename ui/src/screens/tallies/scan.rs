//! Scan a ticket: pasted text, a picture, or the camera. The app presents
//! the ticket to its issuer and answers with the tally; an offer is then
//! reviewed here before anything is signed.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::CommandError;
use notch_ipc::tally::{
    DeepLink, ScanTicketTextArgs, TallyDetailView, TallyIdArgs, TallyRow, command,
};

use super::offer::OfferReview;
use super::{BackToList, TallyView, go};
use crate::scan::TicketCapture;
use crate::{ctx, ipc};

#[component]
pub fn ScanTicket() -> impl IntoView {
    let cx = ctx();
    let text = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let offer = RwSignal::new(None::<String>);

    // A ticket link the app was opened with: filled in, and asked about
    // (nothing is contacted until the person says so).
    Effect::new(move |_| {
        if let Some(DeepLink::Ticket { text: link }) = cx.deep_link.get() {
            offer.set(None);
            error.set(None);
            text.set(link);
        }
    });
    let link_pending = move || matches!(cx.deep_link.get(), Some(DeepLink::Ticket { .. }));

    let scanned = Callback::new(move |row: TallyRow| {
        error.set(None);
        match row.phase.as_str() {
            "offered" => offer.set(Some(row.id)),
            "ticket" => {
                let why = row
                    .delivery_error
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                cx.tally_notice.set(Some(format!(
                    "The ticket's issuer could not be reached{why}. Notch keeps the ticket and presents it again; \
                     you get a notification when the offer arrives."
                )));
                cx.tally_rev.update(|n| *n += 1);
                go(cx, TallyView::List);
            }
            _ => go(cx, TallyView::Detail(row.id)),
        }
    });

    let submit = move || {
        cx.deep_link.set(None);
        let t = text.get_untracked();
        if t.trim().is_empty() {
            error.set(Some("Paste a ticket link or its text first.".into()));
            return;
        }
        error.set(None);
        busy.set(true);
        spawn_local(async move {
            let r = ipc::call::<_, TallyRow>(
                command::SCAN_TICKET_TEXT,
                &ScanTicketTextArgs { text: t },
                ipc::LONG_TIMEOUT_MS,
            )
            .await;
            busy.try_set(false);
            match r {
                Ok(row) => scanned.run(row),
                Err(e) => {
                    error.try_set(Some(e.message));
                }
            }
        });
    };

    view! {
        <BackToList />
        <h2>"Scan a ticket"</h2>
        {move || match offer.get() {
            Some(id) => view! {
                <section class="card wide"><ScannedOffer id /></section>
            }.into_any(),
            None => view! {
                <section class="card wide" data-testid="scan-ticket">
                    <Show when=link_pending>
                        <div class="banner" data-testid="deep-link-banner">
                            <p><strong>"Open a tally with the issuer of this ticket?"</strong></p>
                            <p class="muted">"Notch contacts the issuer only when you say so; nothing is signed until you accept their offer."</p>
                            <p class="row">
                                <button data-testid="deep-link-proceed" disabled=move || busy.get() on:click=move |_| submit()>
                                    "Contact the issuer"
                                </button>
                                <button class="secondary" data-testid="deep-link-dismiss" on:click=move |_| cx.deep_link.set(None)>
                                    "Not now"
                                </button>
                            </p>
                        </div>
                    </Show>
                    <form class="stack wide" on:submit=move |ev| { ev.prevent_default(); submit(); }>
                        <label>
                            <span class="muted">"Ticket link or text"</span>
                            <textarea rows="4" spellcheck="false" data-testid="scan-ticket-text"
                                placeholder="https://mychips.org/invite?…"
                                prop:value=move || text.get()
                                on:input=move |ev| { text.set(event_target_value(&ev)); error.set(None); }></textarea>
                        </label>
                        <p class="row">
                            <button type="submit" data-testid="scan-ticket-submit" disabled=move || busy.get()>
                                {move || if busy.get() { "Contacting the issuer…" } else { "Use this ticket" }}
                            </button>
                        </p>
                    </form>
                    <p class="muted">"Or read its QR code:"</p>
                    <div class="row">
                        <TicketCapture error busy on_row=scanned />
                    </div>
                    {move || error.get().map(|e| view! { <p class="error" data-testid="scan-ticket-error">{e}</p> })}
                </section>
            }.into_any(),
        }}
    }
}

/// The offer a scanned ticket brought, read whole from the app.
#[component]
fn ScannedOffer(id: String) -> impl IntoView {
    let cx = ctx();
    let detail = RwSignal::new(None::<Result<TallyDetailView, CommandError>>);
    Effect::new({
        let id = id.clone();
        move |_| {
            cx.tally_rev.get();
            let args = TallyIdArgs { id: id.clone() };
            spawn_local(async move {
                let r = ipc::call(command::TALLY, &args, ipc::DEFAULT_TIMEOUT_MS).await;
                detail.try_set(Some(r));
            });
        }
    });
    // Rebuilt only when what the app says changed: a tally event that
    // leaves this offer as it was must not reset the buttons mid-answer.
    let shown = Memo::new(move |_| detail.get());
    // Accepted or refused elsewhere meanwhile: the tally's own page.
    Effect::new(move |_| {
        if let Some(Ok(d)) = shown.get()
            && d.row.phase != "offered"
        {
            go(cx, TallyView::Detail(d.row.id));
        }
    });
    move || match shown.get() {
        None => view! { <p>"Reading the offer…"</p> }.into_any(),
        Some(Err(e)) => {
            view! { <p class="error" data-testid="tally-error">{e.message}</p> }.into_any()
        }
        Some(Ok(d)) if d.row.phase != "offered" => ().into_any(),
        Some(Ok(d)) => view! { <OfferReview detail=d /> }.into_any(),
    }
}
