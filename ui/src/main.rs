//! notch-ui: the desktop wallet's screens (Leptos, client-side rendering).
//! Everything it shows comes from the app's commands and events.

mod deep_link;
mod ipc;
mod scan;
mod screens;

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::tally::DeepLink;
use notch_ipc::{
    AppStatus, LockStatus, NotificationView, WalletEvent, WalletState, command, event,
};
use screens::tallies::TallyView;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// The screens of an open wallet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    Home,
    Send,
    Receive,
    History,
    Notifications,
    Settings,
    /// Where in it: [`Ctx::tally_view`].
    Tallies,
}

/// Shared by every screen: where we are, and a tick that moves on every
/// wallet event (screens refetch on it).
#[derive(Clone, Copy)]
pub struct Ctx {
    pub screen: RwSignal<Screen>,
    pub tick: RwSignal<u64>,
    /// Moves only on events that change the wallet's transactions (not on
    /// every sync pass): what the history refetches on.
    pub data_rev: RwSignal<u64>,
    /// The wallet's synced height, for confirmation counts.
    pub height: RwSignal<Option<u64>>,
    pub last_event: RwSignal<Option<WalletEvent>>,
    pub unread: RwSignal<usize>,
    pub status: RwSignal<Option<AppStatus>>,
    pub dark: RwSignal<bool>,
    /// The lock passphrase and idle time, once the wallet is open.
    pub lock: RwSignal<Option<LockStatus>>,
    /// Moves on every event that may change a tally or its chits (and on
    /// notifications, which tally changes come with): what the tally
    /// screens refetch on.
    pub tally_rev: RwSignal<u64>,
    /// Where the Tallies screen is.
    pub tally_view: RwSignal<TallyView>,
    /// A line about what just happened, shown on the tally list.
    pub tally_notice: RwSignal<Option<String>>,
    /// A link the app was opened with, until the person has dealt with it.
    pub deep_link: RwSignal<Option<DeepLink>>,
    /// An address for Send's first recipient (from a payment link).
    pub send_prefill: RwSignal<Option<String>>,
}

impl Ctx {
    fn new() -> Ctx {
        Ctx {
            screen: RwSignal::new(Screen::Home),
            tick: RwSignal::new(0),
            data_rev: RwSignal::new(0),
            height: RwSignal::new(None),
            last_event: RwSignal::new(None),
            unread: RwSignal::new(0),
            status: RwSignal::new(None),
            dark: RwSignal::new(false),
            lock: RwSignal::new(None),
            tally_rev: RwSignal::new(0),
            tally_view: RwSignal::new(TallyView::List),
            tally_notice: RwSignal::new(None),
            deep_link: RwSignal::new(None),
            send_prefill: RwSignal::new(None),
        }
    }
}

pub fn ctx() -> Ctx {
    use_context::<Ctx>().unwrap_or_else(Ctx::new)
}

fn refresh_unread(unread: RwSignal<usize>) {
    spawn_local(async move {
        if let Ok(list) = ipc::call0::<Vec<NotificationView>>(command::NOTIFICATIONS).await {
            unread.set(list.iter().filter(|n| !n.read).count());
        }
    });
}

#[component]
fn App() -> impl IntoView {
    let cx = Ctx::new();
    provide_context(cx);
    screens::lock::start_idle_watch(cx);
    let status_error = RwSignal::new(None::<String>);

    // Ask until the app has opened the keystore and the wallet.
    fn poll(cx: Ctx, status_error: RwSignal<Option<String>>, attempt: u32) {
        spawn_local(async move {
            match ipc::call0_within::<AppStatus>(command::APP_STATUS, ipc::LONG_TIMEOUT_MS).await {
                Ok(s) => {
                    let starting = matches!(s.wallet, WalletState::Starting);
                    cx.status.set(Some(s));
                    if starting && attempt < 600 {
                        ipc_sleep(500).await;
                        poll(cx, status_error, attempt + 1);
                    }
                }
                Err(e) => status_error.set(Some(e.message)),
            }
        });
    }
    poll(cx, status_error, 0);
    // After the first screen has had its turn, not on the first click of
    // a screen with times (see `TIME_FORMAT`).
    spawn_local(async {
        ipc_sleep(1000).await;
        warm_time_format();
    });
    ipc::listen::<AppStatus>(event::APP_STATUS, move |s| cx.status.set(Some(s)));
    ipc::listen::<WalletEvent>(event::WALLET, move |e| {
        if matches!(
            e,
            WalletEvent::Notification { .. } | WalletEvent::CaughtUp { .. }
        ) {
            refresh_unread(cx.unread);
        }
        match &e {
            WalletEvent::SyncDone { height } => cx.height.set(Some(*height)),
            WalletEvent::Reorg { .. }
            | WalletEvent::PaymentReceived { .. }
            | WalletEvent::TxStateChanged { .. }
            | WalletEvent::CaughtUp { .. } => cx.data_rev.update(|r| *r += 1),
            _ => {}
        }
        if matches!(
            e,
            WalletEvent::TallyChanged { .. }
                | WalletEvent::ChitChanged { .. }
                | WalletEvent::Notification { .. }
        ) {
            cx.tally_rev.update(|r| *r += 1);
        }
        cx.last_event.set(Some(e));
        cx.tick.update(|t| *t += 1);
    });

    // Only a change of phase re-renders the page (not every status read).
    let phase = Memo::new(move |_| cx.status.get().map(|s| s.wallet));
    let locked = Memo::new(move |_| cx.status.get().is_some_and(|s| s.locked));
    let is_open = move || matches!(phase.get(), Some(WalletState::Open { .. }));
    let is_usable = move || is_open() && !locked.get();
    Effect::new(move |_| {
        if is_usable() {
            refresh_unread(cx.unread);
            screens::lock::refresh_lock(cx);
        }
    });
    deep_link::start(cx, Signal::derive(is_usable));

    let nav = move |target: Screen, label: &'static str, id: &'static str| {
        view! {
            <a href="#" data-testid=id
                class=move || if cx.screen.get() == target { "active" } else { "" }
                on:click=move |ev| { ev.prevent_default(); cx.screen.set(target); }>
                {label}
            </a>
        }
    };

    view! {
        <div class=move || if cx.dark.get() { "shell dark" } else { "shell" }>
            <aside class="sidebar">
                <h1>"Notch"</h1>
                <Show when=is_usable fallback=move || if locked.get() {
                    view! { <p class="muted-side">"Locked"</p> }
                } else {
                    view! { <p class="muted-side">"Set up your wallet"</p> }
                }>
                    <nav>
                        {nav(Screen::Home, "Home", "nav-home")}
                        {nav(Screen::Send, "Send", "nav-send")}
                        {nav(Screen::Receive, "Receive", "nav-receive")}
                        {nav(Screen::History, "History", "nav-history")}
                        <a href="#" data-testid="nav-tallies"
                            class=move || if cx.screen.get() == Screen::Tallies { "active" } else { "" }
                            on:click=move |ev| {
                                ev.prevent_default();
                                // The nav entry always leads to the list.
                                cx.tally_view.set(TallyView::List);
                                cx.screen.set(Screen::Tallies);
                            }>"Tallies"</a>
                        <a href="#" data-testid="nav-notifications"
                            class=move || if cx.screen.get() == Screen::Notifications { "active" } else { "" }
                            on:click=move |ev| { ev.prevent_default(); cx.screen.set(Screen::Notifications); }>
                            "Notifications"
                            <Show when=move || { cx.unread.get() > 0 }>
                                <span class="badge" data-testid="nav-unread">{move || cx.unread.get()}</span>
                            </Show>
                        </a>
                        {nav(Screen::Settings, "Settings", "nav-settings")}
                    </nav>
                </Show>
            </aside>
            <main>
                <screens::status::StatusStrip />
                <Show when=is_usable>
                    <deep_link::DeepLinkBanner />
                </Show>
                {move || match (phase.get(), status_error.get()) {
                    (_, Some(e)) => view! { <section class="card"><p class="error" data-testid="app-error">{e}</p></section> }.into_any(),
                    (None, None) => view! { <p data-testid="app-starting">"Opening your wallet…"</p> }.into_any(),
                    (Some(wallet), None) => match wallet {
                        WalletState::Starting => view! { <p data-testid="app-starting">"Opening the keystore and your wallet…"</p> }.into_any(),
                        WalletState::KeystoreUnavailable { message, what_to_do } => view! {
                            <section class="card problem" data-testid="keystore-error">
                                <h2>"The OS keystore is not available"</h2>
                                <p class="error">{message}</p>
                                <p data-testid="keystore-what-to-do">{what_to_do}</p>
                                <p class="muted">"Notch keeps your recovery phrase only in the keystore; it never falls back to keeping it in memory or on disk."</p>
                            </section>
                        }.into_any(),
                        WalletState::Failed { code, message } => view! {
                            <section class="card problem" data-testid="wallet-error">
                                <h2>"Your wallet could not be opened"</h2>
                                <p class="error">{message}</p>
                                <p class="muted">"(" {code} ")"</p>
                            </section>
                        }.into_any(),
                        WalletState::NoWallet => view! { <screens::onboarding::Onboarding /> }.into_any(),
                        WalletState::Open { .. } => view! {
                            {move || if locked.get() {
                                view! { <screens::lock::LockScreen /> }.into_any()
                            } else { match cx.screen.get() {
                                Screen::Home => view! { <screens::home::Home /> }.into_any(),
                                Screen::Send => view! { <screens::send::Send /> }.into_any(),
                                Screen::Receive => view! { <screens::receive::Receive /> }.into_any(),
                                Screen::History => view! { <screens::history::History /> }.into_any(),
                                Screen::Notifications => view! { <screens::notifications::Notifications /> }.into_any(),
                                Screen::Settings => view! { <screens::settings::Settings /> }.into_any(),
                                Screen::Tallies => view! { <screens::tallies::Tallies /> }.into_any(),
                            }}}
                        }.into_any(),
                    },
                }}
            </main>
        </div>
    }
}

/// Waits, in the browser's event loop.
pub async fn ipc_sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let global = js_sys::global();
        if let Ok(f) = js_sys::Reflect::get(&global, &wasm_bindgen::JsValue::from_str("setTimeout"))
            && let Ok(f) = f.dyn_into::<js_sys::Function>()
        {
            let _ = f.call2(&global, &resolve, &wasm_bindgen::JsValue::from(ms));
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

use wasm_bindgen::JsCast;

thread_local! {
    /// One formatter for every time shown: `Date.toLocaleString` makes a
    /// new one on each call, and WebKit's first one loads the ICU locale
    /// data (the first History open, 14 rows, paid it on the click).
    static TIME_FORMAT: Option<js_sys::Function> = time_format();
}

/// `Intl.DateTimeFormat(default locale, the fields toLocaleString shows)`,
/// as its `format` function.
fn time_format() -> Option<js_sys::Function> {
    let options = js_sys::Object::new();
    for (field, style) in [
        ("year", "numeric"),
        ("month", "numeric"),
        ("day", "numeric"),
        ("hour", "numeric"),
        ("minute", "2-digit"),
        ("second", "2-digit"),
    ] {
        js_sys::Reflect::set(&options, &field.into(), &style.into()).ok()?;
    }
    let format = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &options);
    Some(format.format())
}

/// Makes the time formatter (and loads the locale data) ahead of the first
/// screen that shows a time, once the wallet's first screen is up.
pub fn warm_time_format() {
    TIME_FORMAT.with(|_| ());
}

/// A Unix time as the person's locale writes it.
pub fn local_time(unix: u64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(unix as f64 * 1000.0));
    let formatted = TIME_FORMAT.with(|f| {
        f.as_ref()
            .and_then(|f| f.call1(&wasm_bindgen::JsValue::UNDEFINED, &date).ok())
            .and_then(|s| s.as_string())
    });
    formatted.unwrap_or_else(|| {
        String::from(date.to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED))
    })
}
