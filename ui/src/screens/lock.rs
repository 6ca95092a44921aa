//! The lock screen, and the idle watch that locks the app after the idle
//! time the person chose in Settings. The app refuses wallet commands while
//! locked; this screen is only what a person sees of it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::{AppStatus, LockStatus, PassphraseArgs, command};

use crate::{Ctx, ctx, ipc};

#[component]
pub fn LockScreen() -> impl IntoView {
    let cx = ctx();
    let passphrase = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let unlock = move || {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        let args = PassphraseArgs {
            passphrase: passphrase.get_untracked(),
        };
        spawn_local(async move {
            match ipc::call::<_, AppStatus>(command::UNLOCK, &args, ipc::DEFAULT_TIMEOUT_MS).await {
                Ok(status) => {
                    passphrase.set(String::new());
                    cx.status.set(Some(status));
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    view! {
        <section class="card lock" data-testid="lock-screen">
            <h2>"Notch is locked"</h2>
            <p>"Enter your lock passphrase to continue."</p>
            <form class="row" on:submit=move |ev| { ev.prevent_default(); unlock(); }>
                <input type="password" data-testid="unlock-passphrase" autocomplete="current-password"
                    placeholder="Lock passphrase"
                    prop:value=move || passphrase.get()
                    on:input=move |ev| passphrase.set(event_target_value(&ev)) />
                <button type="submit" data-testid="unlock-submit" disabled=move || busy.get()>
                    {move || if busy.get() { "Checking…" } else { "Unlock" }}
                </button>
            </form>
            {move || error.get().map(|e| view! { <p class="error" data-testid="unlock-error">{e}</p> })}
            <p class="muted">"Forgot it? Your money is safe: restore the wallet from its recovery phrase in a new data directory."</p>
        </section>
    }
}

/// Reads the lock settings into the context (after start and after every
/// change in Settings).
pub fn refresh_lock(cx: Ctx) {
    spawn_local(async move {
        if let Ok(s) = ipc::call0::<LockStatus>(command::LOCK_STATUS).await {
            cx.lock.set(Some(s));
        }
    });
}

/// Watches for input anywhere in the window; after the idle time without
/// any, asks the app to lock. Started once, for the app's lifetime.
pub fn start_idle_watch(cx: Ctx) {
    let last_input = Rc::new(Cell::new(js_sys::Date::now()));
    for name in ["mousemove", "mousedown", "keydown", "wheel", "touchstart"] {
        let last = last_input.clone();
        // The handle lives as long as the window: the listener never goes.
        std::mem::forget(window_event_listener_untyped(name, move |_| {
            last.set(js_sys::Date::now())
        }));
    }
    let asking = Rc::new(Cell::new(false));
    set_interval(
        move || {
            let locked = cx.status.get_untracked().is_some_and(|s| s.locked);
            let Some(lock) = cx.lock.get_untracked() else {
                return;
            };
            if locked || !lock.passphrase_set || lock.idle_minutes == 0 || asking.get() {
                return;
            }
            let idle_ms = js_sys::Date::now() - last_input.get();
            if idle_ms < f64::from(lock.idle_minutes) * 60_000.0 {
                return;
            }
            asking.set(true);
            let asking = asking.clone();
            let last_input = last_input.clone();
            spawn_local(async move {
                match ipc::call0::<AppStatus>(command::LOCK_NOW).await {
                    Ok(status) => cx.status.set(Some(status)),
                    // Try again after another idle period, not every tick.
                    Err(_) => last_input.set(js_sys::Date::now()),
                }
                asking.set(false);
            });
        },
        Duration::from_secs(5),
    );
}
