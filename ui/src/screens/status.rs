//! The gateway status strip, on every screen.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::{CommandError, GatewayStatus, command, event};

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
        </section>
    }
}
