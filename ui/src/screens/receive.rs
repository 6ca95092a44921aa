//! Receive: the oldest unpaid address (or a fresh one), its QR code, a copy button.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::{CommandError, ReceiveView, command};

use crate::ipc;

#[component]
pub fn Receive() -> impl IntoView {
    let address = RwSignal::new(None::<Result<ReceiveView, CommandError>>);
    let copied = RwSignal::new(None::<bool>);
    // Opening shows the oldest unpaid address (opening again does not use
    // up addresses); "New address" asks for a fresh one.
    let load = move |which: &'static str| {
        copied.set(None);
        address.set(None);
        spawn_local(async move {
            address.set(Some(ipc::call0(which).await));
        });
    };
    load(command::UNUSED_ADDRESS);
    let fresh = move || load(command::RECEIVE_ADDRESS);

    view! {
        <h2>"Receive"</h2>
        <section class="card receive">
            {move || match address.get() {
                None => view! { <p>"Getting an address…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error" data-testid="receive-error">{e.message}</p> }.into_any(),
                Some(Ok(v)) => {
                    let text = v.address.clone();
                    view! {
                        <div class="qr" data-testid="receive-qr" inner_html=v.qr_svg.clone()></div>
                        <p class="address" data-testid="receive-address">{v.address.clone()}</p>
                        <p class="row">
                            <button data-testid="receive-copy" on:click=move |_| {
                                let text = text.clone();
                                spawn_local(async move { copied.set(Some(ipc::copy_to_clipboard(&text).await)); });
                            }>"Copy address"</button>
                            <button class="secondary" data-testid="receive-new" on:click=move |_| fresh()>"New address"</button>
                        </p>
                        {move || copied.get().map(|ok| view! {
                            <p data-testid="receive-copied" class=if ok { "ok" } else { "error" }>
                                {if ok { "Copied to the clipboard" } else { "Could not use the clipboard: select the address and copy it" }}
                            </p>
                        })}
                        <p class="muted">"A new address each time keeps your payments apart. Every address stays yours."</p>
                    }.into_any()
                }
            }}
        </section>
    }
}
