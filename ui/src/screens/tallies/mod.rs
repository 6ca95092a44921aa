//! Tallies: MyCHIPs-style credit relationships. The list, my ticket, a
//! scanned ticket, one tally with its chits. Every amount is the string the
//! app sends (CHIPs, milliCHIP precision); amounts typed here go to the app
//! as typed, and the app parses them.

mod detail;
mod list;
mod offer;
mod scan;
mod ticket;

use leptos::prelude::*;

use crate::{Ctx, ctx};

/// Where the Tallies screen is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TallyView {
    List,
    Ticket,
    Scan,
    Detail(String),
}

#[component]
pub fn Tallies() -> impl IntoView {
    let cx = ctx();
    // Only a change of sub-view rebuilds the page, not every write.
    let view = Memo::new(move |_| cx.tally_view.get());
    move || match view.get() {
        TallyView::List => view! { <list::TallyList /> }.into_any(),
        TallyView::Ticket => view! { <ticket::MyTicket /> }.into_any(),
        TallyView::Scan => view! { <scan::ScanTicket /> }.into_any(),
        TallyView::Detail(id) => view! { <detail::TallyDetail id /> }.into_any(),
    }
}

/// Goes to another part of the Tallies screen. Takes the context read in
/// a component: handlers and async tasks run without a reactive owner.
pub fn go(cx: Ctx, view: TallyView) {
    cx.tally_view.set(view);
}

/// A balance from my side, in words: "They owe me 12.500", "I owe them
/// 3.000", "Even".
pub fn balance_words(direction: &str, balance: &str) -> String {
    match direction {
        "they_owe_me" => format!("They owe me {balance}"),
        "i_owe_them" => format!("I owe them {balance}"),
        "even" => "Even".to_owned(),
        // A direction this UI does not know yet: the number, not a guess.
        _ => balance.to_owned(),
    }
}

/// What the list's badge says needs me, if anything.
pub fn needs_me(offer_to_answer: bool, invoices_to_approve: u32) -> Option<String> {
    let mut parts = Vec::new();
    if offer_to_answer {
        parts.push("Offer to answer".to_owned());
    }
    match invoices_to_approve {
        0 => {}
        1 => parts.push("1 invoice to approve".to_owned()),
        n => parts.push(format!("{n} invoices to approve")),
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// A limit as the app sent it, or that there is none yet.
pub fn limit_text(limit: &Option<String>) -> String {
    limit.clone().unwrap_or_else(|| "not set".to_owned())
}

/// Text typed into an optional field: `None` when left empty.
pub fn optional(text: String) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// A "← All tallies" link back to the list.
#[component]
pub fn BackToList() -> impl IntoView {
    let cx = ctx();
    view! {
        <p><a href="#" data-testid="tallies-back" on:click=move |ev| {
            ev.prevent_default();
            go(cx, TallyView::List);
        }>"← All tallies"</a></p>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_read_from_my_side() {
        assert_eq!(balance_words("they_owe_me", "12.500"), "They owe me 12.500");
        assert_eq!(balance_words("i_owe_them", "3.000"), "I owe them 3.000");
        assert_eq!(balance_words("even", "0.000"), "Even");
        assert_eq!(balance_words("sideways", "1.000"), "1.000");
    }

    #[test]
    fn the_badge_says_what_needs_me() {
        assert_eq!(needs_me(false, 0), None);
        assert_eq!(needs_me(true, 0).as_deref(), Some("Offer to answer"));
        assert_eq!(needs_me(false, 1).as_deref(), Some("1 invoice to approve"));
        assert_eq!(
            needs_me(true, 3).as_deref(),
            Some("Offer to answer · 3 invoices to approve")
        );
    }
}
