//! Links the app is opened with: `notch:ticket?…` tally tickets, `notch:`
//! payments, and MyCHIPs invitations (`https://mychips.org/invite?…`,
//! which Linux cannot hand to an app as a scheme but which arrive all the
//! same as a command-line argument or pasted text). [`classify`] is the one
//! place that says what a text is (notch-core's ticket parser and
//! `PaymentUri` decide). The app never contacts anyone or signs anything
//! on a link alone: it tells the UI (`notch_ipc::tally::event::DEEP_LINK`,
//! or `take_deep_link` for the link it was started with), which shows the
//! scan or send screen for the person to decide.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use notch_core::ticket::Ticket;
use notch_core::{Network, PaymentUri};
use notch_ipc::tally::DeepLink;
use tauri::{AppHandle, Emitter, Manager, Runtime};

use crate::state::{AppState, lock};

/// The longest text taken as a link (a ticket's limit, which is larger
/// than a payment link's).
const MAX_LINK: usize = notch_core::ticket::MAX_TEXT_LEN;

/// The same link from two paths (the deep-link plugin and the
/// single-instance hand-over) within this is told once.
const REPEAT: Duration = Duration::from_secs(2);

/// What a text someone opened Notch with is. `network`: the open wallet's
/// (a payment of another network is still a payment: the send screen says
/// why it cannot be paid); `None` before a wallet is open.
pub fn classify(text: &str, network: Option<Network>) -> DeepLink {
    let text = text.trim();
    let unusable = |reason: String| DeepLink::Unusable {
        text: text.chars().take(200).collect(),
        reason,
    };
    if text.is_empty() {
        return unusable("the link is empty".into());
    }
    if text.len() > MAX_LINK {
        return unusable(format!(
            "the link is too long ({} bytes; at most {MAX_LINK})",
            text.len()
        ));
    }
    let ticket = match Ticket::parse(text) {
        // An expired ticket is still one: the scan screen says so.
        Ok(_) => {
            return DeepLink::Ticket {
                text: text.to_owned(),
            };
        }
        Err(e) if e.is_ticket_form() => return unusable(e.to_string()),
        Err(e) => e,
    };
    let networks: Vec<Network> = match network {
        Some(n) => std::iter::once(n).chain(Network::ALL).collect(),
        None => Network::ALL.to_vec(),
    };
    let mut first_refusal = None;
    for n in networks {
        match PaymentUri::parse(text, n) {
            Ok(_) => {
                return DeepLink::Payment {
                    text: text.to_owned(),
                };
            }
            Err(e) => {
                first_refusal.get_or_insert(e);
            }
        }
    }
    let is_notch = text
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("notch:"));
    match (is_notch, first_refusal) {
        (true, Some(payment)) => unusable(payment.to_string()),
        _ => unusable(ticket.to_string()),
    }
}

/// The first argument that is meant as a link (`notch:…` or a https
/// MyCHIPs invitation), from a command line (Linux starts `notch-app %u`).
pub fn link_in_args<I: IntoIterator<Item = String>>(args: I) -> Option<String> {
    args.into_iter().skip(1).find(|a| {
        let a = a.trim().to_ascii_lowercase();
        a.starts_with("notch:") || a.starts_with("https://mychips.org/")
    })
}

/// The link the app was started with, until the UI takes it, and the last
/// one told (to tell a repeat once).
#[derive(Default)]
pub struct Links {
    pending: Mutex<Option<DeepLink>>,
    last: Mutex<Option<(String, Instant)>>,
}

impl Links {
    /// Keeps the start link for [`Links::take`].
    pub fn keep(&self, link: DeepLink) {
        *lock(&self.pending) = Some(link);
    }

    /// The start link, once.
    pub fn take(&self) -> Option<DeepLink> {
        lock(&self.pending).take()
    }

    /// Whether `text` was just told (and notes it).
    fn repeat(&self, text: &str) -> bool {
        let mut last = lock(&self.last);
        let now = Instant::now();
        if let Some((seen, at)) = &*last
            && seen == text
            && now.duration_since(*at) < REPEAT
        {
            return true;
        }
        *last = Some((text.to_owned(), now));
        false
    }
}

fn network_of(state: &AppState) -> Option<Network> {
    state.wallet_even_locked().ok().map(|w| w.network())
}

/// A link opened while the app runs: classified and told to the UI.
pub fn opened<R: Runtime>(app: &AppHandle<R>, text: &str) {
    let Some(state) = app.try_state::<AppState>() else {
        return;
    };
    if state.links().repeat(text.trim()) {
        return;
    }
    let link = classify(text, network_of(&state));
    tracing::info!(kind = ?std::mem::discriminant(&link), "a link was opened");
    if let Err(e) = app.emit(notch_ipc::tally::event::DEEP_LINK, &link) {
        tracing::warn!("cannot emit a deep link: {e}");
    }
    // Bring the window forward, where the UI shows it.
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

/// The link the app was started with: `NOTCH_OPEN_LINK` (tests), the
/// first argument, or what the deep-link plugin was handed; kept for
/// `take_deep_link`.
pub fn at_start(state: &AppState, plugin_urls: Vec<String>) {
    let text = std::env::var("NOTCH_OPEN_LINK")
        .ok()
        .filter(|l| !l.trim().is_empty())
        .or_else(|| link_in_args(std::env::args()))
        .or_else(|| plugin_urls.into_iter().next());
    if let Some(text) = text {
        state.links().repeat(text.trim());
        state.links().keep(classify(&text, network_of(state)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_tickets_payments_or_unusable() {
        use notch_core::protocol::{Address, PublicKey};
        use notch_core::ticket::{AgentId, Chad, LinkForm};
        let chad = Chad::new("bob", AgentId::from_bytes([7; 32]), "127.0.0.1", 9).expect("chad");
        let ticket = Ticket::new("c".repeat(32), Some(1), chad).expect("ticket");
        for form in [LinkForm::MyChips, LinkForm::Notch] {
            let text = ticket.link(form);
            // Expired, still a ticket: the scan screen says so.
            assert_eq!(
                classify(&format!(" {text} "), None),
                DeepLink::Ticket { text: text.clone() }
            );
        }
        let key = notch_core::protocol::ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let address =
            Address::new(Network::Sandbox, PublicKey(key.verifying_key().to_bytes())).encode();
        for text in [
            format!("notch:{address}"),
            format!("notch:{address}?amount=1.5&asset=NOTE"),
            address.clone(),
        ] {
            assert_eq!(
                classify(&text, Some(Network::Sandbox)),
                DeepLink::Payment { text: text.clone() },
                "{text}"
            );
            // Another network's payment is a payment; Send says why not.
            assert!(matches!(
                classify(&text, Some(Network::Main)),
                DeepLink::Payment { .. }
            ));
        }
        for (text, says) in [
            ("", "empty"),
            ("notch:ticket?token=x", "ticket"),
            ("notch:nsb1nope", ""),
            ("https://mychips.org/elsewhere?x=1", "invitation"),
            ("https://example.org/", "mychips.org"),
            ("hello", ""),
        ] {
            match classify(text, Some(Network::Sandbox)) {
                DeepLink::Unusable { reason, .. } => {
                    assert!(reason.contains(says), "{text:?}: {reason}")
                }
                other => panic!("{text:?} is not usable, got {other:?}"),
            }
        }
        let long = format!("notch:{}", "a".repeat(5000));
        assert!(matches!(classify(&long, None), DeepLink::Unusable { .. }));
    }

    #[test]
    fn start_links_come_from_the_first_link_argument() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(link_in_args(args(&["notch-app"])), None);
        assert_eq!(
            link_in_args(args(&["notch-app", "--flag", "notch:ticket?token=1"])),
            Some("notch:ticket?token=1".into())
        );
        assert_eq!(
            link_in_args(args(&["notch-app", "HTTPS://mychips.org/invite?x"])),
            Some("HTTPS://mychips.org/invite?x".into())
        );
        // The program's own name is never a link.
        assert_eq!(link_in_args(args(&["notch:x"])), None);
    }

    #[test]
    fn a_repeat_is_told_once() {
        let links = Links::default();
        assert!(!links.repeat("notch:a"));
        assert!(links.repeat("notch:a"));
        assert!(!links.repeat("notch:b"));
        links.keep(DeepLink::Payment {
            text: "notch:b".into(),
        });
        assert!(links.take().is_some());
        assert!(links.take().is_none(), "taken once");
    }
}
