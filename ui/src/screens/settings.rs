//! Settings: the gateway and network, where the wallet lives, the theme.

use leptos::prelude::*;
use notch_ipc::WalletState;

use crate::ctx;

#[component]
pub fn Settings() -> impl IntoView {
    let cx = ctx();
    view! {
        <h2>"Settings"</h2>
        <section class="card">
            {move || cx.status.get().map(|s| {
                let (wallet_id, network) = match s.wallet {
                    WalletState::Open { wallet_id, network } => (wallet_id, network),
                    _ => (String::new(), String::new()),
                };
                view! {
                    <dl>
                        <dt>"Gateway"</dt><dd data-testid="settings-gateway">{s.gateway_url}</dd>
                        <dt>"Network"</dt><dd data-testid="settings-network">{network}</dd>
                        <dt>"Wallet"</dt><dd>{wallet_id}</dd>
                        <dt>"Data directory"</dt><dd data-testid="settings-data-dir">{s.data_dir}</dd>
                    </dl>
                }
            })}
        </section>
        <section class="card">
            <h3>"Appearance"</h3>
            <label class="row"><input type="checkbox" data-testid="settings-dark"
                prop:checked=move || cx.dark.get()
                on:change=move |ev| cx.dark.set(event_target_checked(&ev)) />" Dark theme"</label>
        </section>
        <section class="card">
            <h3>"Recovery phrase and lock"</h3>
            <p class="muted">"Showing the recovery phrase again and locking the wallet when idle need a core API that is not there yet."</p>
        </section>
    }
}
