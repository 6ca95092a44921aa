//! Home: the gateway connection (balances join when the wallet core lands).

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::{CommandError, GatewayStatus, command, event};

use crate::ipc;

#[component]
pub fn Home() -> impl IntoView {
    let status = RwSignal::new(None::<Result<GatewayStatus, CommandError>>);

    let refresh = move || {
        spawn_local(async move {
            let answer = ipc::invoke::<_, GatewayStatus>(command::GATEWAY_STATUS, &()).await;
            status.set(Some(answer));
        });
    };
    refresh();
    ipc::listen::<GatewayStatus>(event::GATEWAY_STATUS, move |s| status.set(Some(Ok(s))));

    view! {
        <h2>"Home"</h2>
        <section class="card" data-testid="gateway-card">
            {move || match status.get() {
                None => view! { <p class="status" data-testid="gateway-status">"Connecting to the gateway…"</p> }.into_any(),
                Some(Ok(GatewayStatus::Connected { url, network, tip_height, sandbox })) => view! {
                    <p class="status" data-testid="gateway-status"><span class="dot ok"></span>"Connected"</p>
                    <dl>
                        <dt>"Gateway"</dt><dd data-testid="gateway-url">{url}</dd>
                        <dt>"Network"</dt><dd data-testid="gateway-network">{network}{if sandbox { " (sandbox)" } else { "" }}</dd>
                        <dt>"Tip height"</dt><dd data-testid="gateway-tip">{tip_height}</dd>
                    </dl>
                }.into_any(),
                Some(Ok(GatewayStatus::Unreachable { url, reason, since_unix })) => view! {
                    <p class="status" data-testid="gateway-status"><span class="dot bad"></span>"Gateway unreachable"</p>
                    <dl>
                        <dt>"Gateway"</dt><dd data-testid="gateway-url">{url}</dd>
                        <dt>"Since"</dt><dd>{since_text(since_unix)}</dd>
                        <dt>"Reason"</dt><dd class="error">{reason}</dd>
                    </dl>
                    <p><button data-testid="gateway-retry" on:click=move |_| refresh()>"Retry now"</button></p>
                }.into_any(),
                Some(Err(e)) => view! {
                    <p class="status error" data-testid="gateway-status">{e.message}</p>
                }.into_any(),
            }}
        </section>
    }
}

fn since_text(since_unix: u64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(since_unix as f64 * 1000.0));
    String::from(date.to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED))
}
