//! Settings: the gateway and network, where the wallet lives, the theme,
//! the lock passphrase and idle lock, and the recovery phrase shown again.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::{
    AppStatus, IdleLockArgs, LockStatus, PassphraseArgs, PhraseView, SetLockPassphraseArgs,
    WalletState, command,
};

use crate::screens::onboarding::PhraseWords;
use crate::{ctx, ipc};

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
        <LockSettings />
        <RecoveryPhrase />
    }
}

/// The idle times offered, in minutes (0: never).
const IDLE_CHOICES: [(u32, &str); 7] = [
    (1, "1 minute"),
    (5, "5 minutes"),
    (15, "15 minutes"),
    (30, "30 minutes"),
    (60, "1 hour"),
    (240, "4 hours"),
    (0, "Never"),
];

/// Set, change or remove the lock passphrase; the idle time; lock now.
#[component]
fn LockSettings() -> impl IntoView {
    let cx = ctx();
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let repeat = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let saved = RwSignal::new(None::<&'static str>);
    let busy = RwSignal::new(false);
    let done = move |result: Result<LockStatus, notch_ipc::CommandError>, what: &'static str| {
        match result {
            Ok(s) => {
                cx.lock.set(Some(s));
                current.set(String::new());
                new.set(String::new());
                repeat.set(String::new());
                saved.set(Some(what));
            }
            Err(e) => error.set(Some(e.message)),
        }
        busy.set(false);
    };
    let start = move || {
        error.set(None);
        saved.set(None);
        busy.set(true);
    };
    let is_set = move || cx.lock.get().is_some_and(|l| l.passphrase_set);
    let min_chars = move || cx.lock.get().map(|l| l.min_chars).unwrap_or(8) as usize;
    let save = move || {
        let (n, r) = (new.get_untracked(), repeat.get_untracked());
        if n.chars().count() < min_chars() {
            error.set(Some(format!("Use at least {} characters.", min_chars())));
            return;
        }
        if n != r {
            error.set(Some("The two new passphrases differ.".into()));
            return;
        }
        start();
        let args = SetLockPassphraseArgs {
            current: is_set().then(|| current.get_untracked()),
            new: n,
        };
        spawn_local(async move {
            let r = ipc::call(command::SET_LOCK_PASSPHRASE, &args, ipc::DEFAULT_TIMEOUT_MS).await;
            done(r, "Lock passphrase saved.");
        });
    };
    let remove = move || {
        start();
        let args = PassphraseArgs {
            passphrase: current.get_untracked(),
        };
        spawn_local(async move {
            let r = ipc::call(
                command::REMOVE_LOCK_PASSPHRASE,
                &args,
                ipc::DEFAULT_TIMEOUT_MS,
            )
            .await;
            done(r, "Lock passphrase removed: Notch no longer locks.");
        });
    };
    let set_idle = move |minutes: u32| {
        start();
        let args = IdleLockArgs { minutes };
        spawn_local(async move {
            let r = ipc::call(command::SET_IDLE_LOCK, &args, ipc::DEFAULT_TIMEOUT_MS).await;
            done(r, "Idle time saved.");
        });
    };
    let lock_now = move |_| {
        start();
        spawn_local(async move {
            match ipc::call0::<AppStatus>(command::LOCK_NOW).await {
                Ok(status) => cx.status.set(Some(status)),
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    let input =
        move |sig: RwSignal<String>, id: &'static str, label: &'static str, auto: &'static str| {
            view! {
                <label>{label}
                    <input type="password" data-testid=id autocomplete=auto
                        prop:value=move || sig.get()
                        on:input=move |ev| sig.set(event_target_value(&ev)) />
                </label>
            }
        };
    view! {
        <section class="card" data-testid="settings-lock">
            <h3>"Lock"</h3>
            <p class="muted">{move || if is_set() {
                "Notch locks after the idle time below and asks for this passphrase. It is also asked before the recovery phrase is shown."
            } else {
                "Set a lock passphrase to have Notch lock itself when you are away, and to be able to see your recovery phrase again."
            }}</p>
            <form class="stack" on:submit=move |ev| { ev.prevent_default(); save(); }>
                <Show when=is_set>{input(current, "lock-current", "Current passphrase", "current-password")}</Show>
                {input(new, "lock-new", "New passphrase", "new-password")}
                {input(repeat, "lock-repeat", "New passphrase again", "new-password")}
                <p class="row">
                    <button type="submit" data-testid="lock-save" disabled=move || busy.get()>
                        {move || if is_set() { "Change passphrase" } else { "Set passphrase" }}
                    </button>
                    <Show when=is_set>
                        <button type="button" class="secondary" data-testid="lock-remove"
                            disabled=move || busy.get() on:click=move |_| remove()>"Remove passphrase"</button>
                    </Show>
                </p>
            </form>
            <Show when=is_set>
                <p class="row">
                    <label>"Lock after "
                        <select data-testid="lock-idle"
                            on:change=move |ev| {
                                if let Ok(m) = event_target_value(&ev).parse::<u32>() { set_idle(m) }
                            }>
                            {IDLE_CHOICES.iter().map(|(m, label)| {
                                let m = *m;
                                view! {
                                    <option value=m.to_string()
                                        prop:selected=move || cx.lock.get().is_some_and(|l| l.idle_minutes == m)>
                                        {*label}
                                    </option>
                                }
                            }).collect_view()}
                        </select>
                        " without input"
                    </label>
                    <button type="button" class="secondary" data-testid="lock-now"
                        disabled=move || busy.get() on:click=lock_now>"Lock now"</button>
                </p>
            </Show>
            {move || error.get().map(|e| view! { <p class="error" data-testid="lock-error">{e}</p> })}
            {move || saved.get().map(|m| view! { <p class="ok" data-testid="lock-saved">{m}</p> })}
        </section>
    }
}

/// The recovery phrase, shown after the lock passphrase is given again, and
/// hidden again when asked or when the screen is left.
#[component]
fn RecoveryPhrase() -> impl IntoView {
    let cx = ctx();
    let passphrase = RwSignal::new(String::new());
    let words = RwSignal::new(None::<Vec<String>>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let reveal = move || {
        error.set(None);
        busy.set(true);
        let args = PassphraseArgs {
            passphrase: passphrase.get_untracked(),
        };
        spawn_local(async move {
            match ipc::call::<_, PhraseView>(command::REVEAL_PHRASE, &args, ipc::DEFAULT_TIMEOUT_MS)
                .await
            {
                Ok(p) => {
                    passphrase.set(String::new());
                    words.set(Some(p.words));
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    let is_set = move || cx.lock.get().is_some_and(|l| l.passphrase_set);
    view! {
        <section class="card" data-testid="settings-phrase">
            <h3>"Recovery phrase"</h3>
            {move || match (words.get(), is_set()) {
                (Some(w), _) => view! {
                    <p>"Anyone who sees these words can take your money. Make sure nobody is watching."</p>
                    <PhraseWords words=w testid="settings-phrase" />
                    <button class="secondary" data-testid="phrase-hide" on:click=move |_| words.set(None)>"Hide"</button>
                }.into_any(),
                (None, false) => view! {
                    <p class="muted" data-testid="phrase-needs-lock">"Set a lock passphrase above first: it is asked before the phrase is shown."</p>
                }.into_any(),
                (None, true) => view! {
                    <form class="row" on:submit=move |ev| { ev.prevent_default(); reveal(); }>
                        <input type="password" data-testid="phrase-passphrase" autocomplete="current-password"
                            placeholder="Lock passphrase"
                            prop:value=move || passphrase.get()
                            on:input=move |ev| passphrase.set(event_target_value(&ev)) />
                        <button type="submit" data-testid="phrase-reveal" disabled=move || busy.get()>"Show recovery phrase"</button>
                    </form>
                }.into_any(),
            }}
            {move || error.get().map(|e| view! { <p class="error" data-testid="phrase-error">{e}</p> })}
        </section>
    }
}
