//! Links the app is opened with (`notch:` payments, MyCHIPs tickets): the
//! one it started with, taken once the wallet can be used, and those that
//! arrive while it runs. A link only opens a screen with its text filled
//! in; nothing is contacted or signed until the person says so there.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::tally::{DeepLink, command, event};

use crate::screens::tallies::TallyView;
use crate::{Ctx, Screen, ctx, ipc};

/// Listens for links, and takes the start-up one when `usable` first holds
/// (before that there is no wallet to act on it, and the app keeps it).
pub fn start(cx: Ctx, usable: Signal<bool>) {
    ipc::listen::<DeepLink>(event::DEEP_LINK, move |link| open(cx, link));
    let taken = StoredValue::new(false);
    Effect::new(move |_| {
        if !usable.get() || taken.get_value() {
            return;
        }
        taken.set_value(true);
        spawn_local(async move {
            match ipc::call0::<Option<DeepLink>>(command::TAKE_DEEP_LINK).await {
                Ok(Some(link)) => open(cx, link),
                Ok(None) => {}
                Err(e) => leptos::logging::warn!("take_deep_link: {} ({})", e.message, e.code),
            }
        });
    });
}

fn open(cx: Ctx, link: DeepLink) {
    match &link {
        DeepLink::Ticket { .. } => {
            cx.tally_view.set(TallyView::Scan);
            cx.screen.set(Screen::Tallies);
        }
        DeepLink::Payment { text } => {
            cx.send_prefill.set(Some(payment_address(text)));
            cx.screen.set(Screen::Send);
        }
        DeepLink::Unusable { .. } => {}
    }
    cx.deep_link.set(Some(link));
}

/// The address of a `notch:ADDRESS?…` link. Only the address is taken: the
/// amount and memo the link may carry are the person's to type and check
/// (Send validates the address like a typed one).
fn payment_address(text: &str) -> String {
    let text = text.trim();
    let rest = match text.get(..6) {
        Some(scheme) if scheme.eq_ignore_ascii_case("notch:") => &text[6..],
        _ => text,
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    rest.split(['?', '#']).next().unwrap_or_default().to_owned()
}

/// What a link asks, on whatever screen is open. A ticket's own question
/// is on the Scan view; elsewhere this leads back to it.
#[component]
pub fn DeepLinkBanner() -> impl IntoView {
    let cx = ctx();
    let dismiss = move |_| cx.deep_link.set(None);
    let on_scan =
        move || cx.screen.get() == Screen::Tallies && cx.tally_view.get() == TallyView::Scan;
    move || {
        match cx.deep_link.get() {
        None => ().into_any(),
        Some(DeepLink::Ticket { .. }) if on_scan() => ().into_any(),
        Some(DeepLink::Ticket { .. }) => view! {
            <section class="card wide banner" data-testid="deep-link-banner">
                <p><strong>"A tally ticket was opened with Notch."</strong></p>
                <p class="row">
                    <button data-testid="deep-link-open" on:click=move |_| {
                        cx.tally_view.set(TallyView::Scan);
                        cx.screen.set(Screen::Tallies);
                    }>"Review it"</button>
                    <button class="secondary" data-testid="deep-link-dismiss" on:click=dismiss>"Dismiss"</button>
                </p>
            </section>
        }
        .into_any(),
        Some(DeepLink::Payment { text }) => {
            let has_more = text.contains('?');
            view! {
                <section class="card wide banner" data-testid="deep-link-banner" data-kind="payment">
                    <p><strong>"Payment link"</strong></p>
                    <p class="address" data-testid="deep-link-text">{text}</p>
                    <p class="muted">
                        {if has_more {
                            "Its address is filled in on Send. Enter the amount (and memo) the link asks for yourself, and check them before you confirm."
                        } else {
                            "Its address is filled in on Send: enter the amount, then review."
                        }}
                    </p>
                    <button class="secondary" data-testid="deep-link-dismiss" on:click=dismiss>"Dismiss"</button>
                </section>
            }
            .into_any()
        }
        Some(DeepLink::Unusable { text, reason }) => view! {
            <section class="card wide banner problem" data-testid="deep-link-banner" data-kind="unusable">
                <p><strong>"Notch cannot use this link"</strong></p>
                <p class="error" data-testid="deep-link-reason">{reason}</p>
                <p class="address" data-testid="deep-link-text">{text}</p>
                <button class="secondary" data-testid="deep-link-dismiss" on:click=dismiss>"Dismiss"</button>
            </section>
        }
        .into_any(),
    }
    }
}

#[cfg(test)]
mod tests {
    use super::payment_address;

    #[test]
    fn a_payment_link_gives_its_address_only() {
        assert_eq!(payment_address("notch:nsb1abc?amount=2&memo=x"), "nsb1abc");
        assert_eq!(payment_address(" NOTCH:nsb1abc "), "nsb1abc");
        assert_eq!(payment_address("notch://nsb1abc#frag"), "nsb1abc");
        assert_eq!(payment_address("nsb1abc"), "nsb1abc");
    }
}
