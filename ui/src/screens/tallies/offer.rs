//! An offered tally: whose certificate it carries and the terms on both
//! sides, then Accept (signs it) or Refuse.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::tally::{TallyDetailView, TallyIdArgs, TallyRow, command};

use super::{TallyView, go};
use crate::{ctx, ipc};

#[component]
pub fn OfferReview(detail: TallyDetailView) -> impl IntoView {
    let cx = ctx();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let id = detail.row.id.clone();
    let to_answer = detail.row.offer_to_answer;
    let partner = detail.partner.clone();
    let unknown = || "not given".to_owned();

    // Gone once the person has left this review (this component is then
    // disposed): a late answer must not take them back.
    let shown = StoredValue::new(());
    let answer = move |accept: bool| {
        error.set(None);
        busy.set(true);
        let args = TallyIdArgs { id: id.clone() };
        spawn_local(async move {
            let cmd = if accept {
                command::TALLY_ACCEPT
            } else {
                command::TALLY_REFUSE
            };
            // Accepting may reach the partner's agent before it answers.
            let r = ipc::call::<_, TallyRow>(cmd, &args, ipc::LONG_TIMEOUT_MS).await;
            busy.try_set(false);
            let still_here = shown.try_get_value().is_some();
            match r {
                Ok(_) if !still_here => cx.tally_rev.update(|n| *n += 1),
                Ok(row) => {
                    cx.tally_rev.update(|n| *n += 1);
                    if accept {
                        go(cx, TallyView::Detail(row.id));
                    } else {
                        cx.tally_notice
                            .set(Some("Offer refused: no tally was opened.".into()));
                        go(cx, TallyView::List);
                    }
                }
                Err(e) => {
                    error.try_set(Some(e.message));
                }
            }
        });
    };
    let accept = answer.clone();

    view! {
        <div class="offer" data-testid="offer-review">
            <h3>{if to_answer { "Open a tally with this partner?" } else { "Offer sent" }}</h3>
            <dl>
                <dt>"Partner"</dt><dd data-testid="offer-partner-name">{partner.name.clone().unwrap_or_else(unknown)}</dd>
                <dt>"CHIP user id"</dt><dd class="address" data-testid="offer-partner-cuid">{partner.cuid.clone().unwrap_or_else(unknown)}</dd>
                <dt>"Agent"</dt><dd class="address" data-testid="offer-partner-agent">{partner.agent.clone().unwrap_or_else(unknown)}</dd>
                <dt>"Agent address"</dt><dd class="address" data-testid="offer-partner-address">{partner.address.clone().unwrap_or_else(unknown)}</dd>
                {detail.row.comment.clone().map(|c| view! { <dt>"Comment"</dt><dd data-testid="offer-comment">{c}</dd> })}
            </dl>
            <div class="terms">
                <div>
                    <h4>"What I grant them (my terms)"</h4>
                    <pre data-testid="offer-my-terms">{detail.my_terms.clone()}</pre>
                </div>
                <div>
                    <h4>"What they grant me (their terms)"</h4>
                    <pre data-testid="offer-partner-terms">{detail.partner_terms.clone()}</pre>
                </div>
            </div>
            {if to_answer {
                view! {
                    <p class="muted">"Accepting signs the tally with these terms; it opens once your partner has your signature."</p>
                    <p class="row">
                        <button data-testid="offer-accept" disabled=move || busy.get() on:click=move |_| accept(true)>
                            {move || if busy.get() { "Working…" } else { "Accept and sign" }}
                        </button>
                        <button class="secondary" data-testid="offer-refuse" disabled=move || busy.get()
                            on:click=move |_| answer(false)>"Refuse"</button>
                    </p>
                }.into_any()
            } else {
                view! { <p class="muted" data-testid="offer-waiting">"Waiting for the partner to accept."</p> }.into_any()
            }}
            {move || error.get().map(|e| view! { <p class="error" data-testid="tally-error">{e}</p> })}
        </div>
    }
}
