//! notch-ui: the desktop wallet's screens (Leptos, client-side rendering).
//! Everything it shows comes from the app's commands and events.

mod ipc;
mod screens;

use leptos::prelude::*;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

#[component]
fn App() -> impl IntoView {
    view! {
        <div class="shell">
            <aside class="sidebar">
                <h1>"Notch"</h1>
                <nav>
                    <a href="#" class="active" data-testid="nav-home">"Home"</a>
                </nav>
            </aside>
            <main>
                <screens::home::Home />
            </main>
        </div>
    }
}
