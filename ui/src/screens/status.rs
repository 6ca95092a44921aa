//! The status strip, on every screen: the gateway, and the tally agent.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::tally::{self, AgentStatusView};
use notch_ipc::{CommandError, GatewayStatus, WalletState, command, event};

use crate::{ipc, local_time};

#[component]
pub fn StatusStrip() -> impl IntoView {
    let status = RwSignal::new(None::<Result<GatewayStatus, CommandError>>);

    let refresh = move || {
        spawn_local(async move {
            let answer = ipc::call0::<GatewayStatus>(command::GATEWAY_STATUS).await;
            status.set(Some(answer));
        });
    };
    // Also on every wallet sync (the app polls every few seconds anyway).
    let cx = crate::ctx();
    Effect::new(move |_| {
        if matches!(
            cx.last_event.get(),
            None | Some(notch_ipc::WalletEvent::SyncDone { .. })
        ) {
            refresh();
        }
    });
    ipc::listen::<GatewayStatus>(event::GATEWAY_STATUS, move |s| status.set(Some(Ok(s))));

    view! {
        <section class="strip" data-testid="gateway-card">
            {move || match status.get() {
                None => view! { <span class="status" data-testid="gateway-status">"Connecting to the gateway…"</span> }.into_any(),
                Some(Ok(GatewayStatus::Connected { url, network, tip_height, sandbox })) => view! {
                    <span class="status" data-testid="gateway-status"><span class="dot ok"></span>"Connected"</span>
                    <span class="kv"><span class="k">"Gateway"</span><span data-testid="gateway-url">{url}</span></span>
                    <span class="kv"><span class="k">"Network"</span><span data-testid="gateway-network">{network}{if sandbox { " (sandbox)" } else { "" }}</span></span>
                    <span class="kv"><span class="k">"Tip"</span><span data-testid="gateway-tip">{tip_height}</span></span>
                }.into_any(),
                Some(Ok(GatewayStatus::Unreachable { url, reason, since_unix })) => view! {
                    <span class="status" data-testid="gateway-status"><span class="dot bad"></span>"Gateway unreachable"</span>
                    <span class="kv"><span class="k">"Gateway"</span><span data-testid="gateway-url">{url}</span></span>
                    <span class="kv"><span class="k">"Since"</span><span>{local_time(since_unix)}</span></span>
                    <span class="kv error" title=reason.clone()>{reason.clone()}</span>
                    <button data-testid="gateway-retry" on:click=move |_| refresh()>"Retry now"</button>
                }.into_any(),
                Some(Err(e)) => view! {
                    <span class="status error" data-testid="gateway-status">{e.message}</span>
                    <button data-testid="gateway-retry" on:click=move |_| refresh()>"Retry now"</button>
                }.into_any(),
            }}
            <AgentStatus />
        </section>
    }
}

/// The tally agent: where it listens and who it talks to, or why it
/// stopped. Read when the wallet opens, then from the app's events.
#[component]
fn AgentStatus() -> impl IntoView {
    let cx = crate::ctx();
    let agent = RwSignal::new(None::<Result<AgentStatusView, CommandError>>);
    // There is no agent before the wallet is open (nor while it is locked).
    let usable = Memo::new(move |_| {
        cx.status
            .get()
            .is_some_and(|s| !s.locked && matches!(s.wallet, WalletState::Open { .. }))
    });
    // The app tells a change once. An answer to our own question can come
    // after a newer event (asked while starting, answered after the event
    // "listening"): it counts only if no event came in the meantime.
    let events_seen = StoredValue::new(0u64);
    let ask = move || {
        let asked_at = events_seen.get_value();
        spawn_local(async move {
            let r = ipc::call0::<AgentStatusView>(tally::command::AGENT_STATUS).await;
            if events_seen.try_get_value() == Some(asked_at) {
                agent.try_set(Some(r));
            }
        });
    };
    Effect::new(move |_| {
        if usable.get() {
            ask();
        }
    });
    // While it starts, ask again now and then: the event that ends
    // "starting" may have gone out before this window listened.
    Effect::new(move |_| {
        let starting = matches!(agent.get(), Some(Ok(ref s)) if s.state == "starting");
        if starting && usable.get_untracked() {
            spawn_local(async move {
                crate::ipc_sleep(1000).await;
                ask();
            });
        }
    });
    ipc::listen::<AgentStatusView>(tally::event::AGENT_STATUS, move |s| {
        events_seen.update_value(|n| *n += 1);
        agent.try_set(Some(Ok(s)));
    });

    move || {
        if !usable.get() {
            return None;
        }
        let (ok, text) = match agent.get()? {
            Ok(s) => agent_words(&s),
            Err(e) => (false, format!("Agent: {}", e.message)),
        };
        Some(view! {
            <span class="kv agent" data-testid="agent-status" title=text.clone()>
                <span class=if ok { "dot ok" } else { "dot bad" }></span>
                {text.clone()}
            </span>
        })
    }
}

/// "Agent listening on 1.2.3.4:65430 · 2 partners connected · 1 waiting",
/// and whether that is good news.
fn agent_words(s: &AgentStatusView) -> (bool, String) {
    let plural = |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    match s.state.as_str() {
        "listening" => {
            let at = s.bound.as_deref().unwrap_or(&s.listen);
            let mut text = format!(
                "Agent listening on {at} · {} connected · {} waiting",
                plural(s.partners_connected, "partner", "partners"),
                s.partners_waiting
            );
            if let Some(adv) = s.advertised.as_deref().filter(|a| *a != at) {
                text.push_str(&format!(" · partners use {adv}"));
            }
            (true, text)
        }
        "starting" => (true, format!("Agent starting on {}…", s.listen)),
        _ => (
            false,
            format!(
                "Agent stopped: {}",
                s.error.as_deref().unwrap_or("not running")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str) -> AgentStatusView {
        AgentStatusView {
            state: state.into(),
            listen: "0.0.0.0:65430".into(),
            bound: Some("1.2.3.4:65430".into()),
            advertised: Some("1.2.3.4:65430".into()),
            partners_connected: 2,
            partners_waiting: 1,
            error: Some("address in use".into()),
        }
    }

    #[test]
    fn the_agent_strip_says_where_and_with_whom() {
        assert_eq!(
            agent_words(&status("listening")),
            (
                true,
                "Agent listening on 1.2.3.4:65430 · 2 partners connected · 1 waiting".into()
            )
        );
        assert_eq!(
            agent_words(&status("stopped")),
            (false, "Agent stopped: address in use".into())
        );
    }
}
