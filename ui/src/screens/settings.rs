//! Settings: the gateway and network, where the wallet lives, the theme,
//! the lock passphrase and idle lock, the recovery phrase shown again, and
//! who the wallet is in tallies (its name, its agent's address).

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::tally::{
    self, AgentStatusView, SetAgentAddressArgs, SetTallyProfileArgs, TallyProfileView,
};
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
        <TallySettings />
        <LockSettings />
        <RecoveryPhrase />
    }
}

/// My name in tally certificates, and where the tally agent listens and
/// what partners are told. Save sends only what changed: a new address
/// restarts the agent, which drops its sessions.
#[component]
fn TallySettings() -> impl IntoView {
    let name = RwSignal::new(String::new());
    let listen = RwSignal::new(String::new());
    let advertise = RwSignal::new(String::new());
    // What the app said last, to tell what was changed.
    let profile = RwSignal::new(None::<TallyProfileView>);
    let agent = RwSignal::new(None::<AgentStatusView>);
    let error = RwSignal::new(None::<String>);
    let saved = RwSignal::new(None::<&'static str>);
    let busy = RwSignal::new(false);

    let show_profile = move |p: TallyProfileView| {
        name.set(p.name.clone().unwrap_or_default());
        profile.set(Some(p));
    };
    let show_agent = move |a: AgentStatusView| {
        listen.set(a.listen.clone());
        advertise.set(a.advertised.clone().unwrap_or_default());
        agent.set(Some(a));
    };
    spawn_local(async move {
        let p = ipc::call0::<TallyProfileView>(tally::command::TALLY_PROFILE).await;
        let a = ipc::call0::<AgentStatusView>(tally::command::AGENT_STATUS).await;
        let mut problems = Vec::new();
        // Setting a signal of a screen left meanwhile does nothing.
        match p {
            Ok(p) => show_profile(p),
            Err(e) => problems.push(e.message),
        }
        match a {
            Ok(a) => show_agent(a),
            Err(e) => problems.push(e.message),
        }
        if !problems.is_empty() {
            error.try_set(Some(problems.join("; ")));
        }
    });

    let save = move || {
        error.set(None);
        saved.set(None);
        let new_name = name.get_untracked().trim().to_owned();
        let name_changed = profile.with_untracked(|p| {
            p.as_ref().and_then(|p| p.name.clone()).unwrap_or_default() != new_name
        });
        let (l, adv) = (
            listen.get_untracked().trim().to_owned(),
            advertise.get_untracked().trim().to_owned(),
        );
        let agent_changed = agent.with_untracked(|a| match a {
            Some(a) => a.listen != l || a.advertised.clone().unwrap_or_default() != adv,
            None => true,
        });
        if !name_changed && !agent_changed {
            saved.set(Some("Nothing changed."));
            return;
        }
        if agent_changed && l.is_empty() {
            error.set(Some(
                "The listening address is HOST:PORT, e.g. 0.0.0.0:65430.".into(),
            ));
            return;
        }
        busy.set(true);
        spawn_local(async move {
            let mut ok = true;
            if name_changed {
                let args = SetTallyProfileArgs {
                    cuid: None,
                    name: Some(new_name).filter(|n| !n.is_empty()),
                };
                match ipc::call::<_, TallyProfileView>(
                    tally::command::SET_TALLY_PROFILE,
                    &args,
                    ipc::DEFAULT_TIMEOUT_MS,
                )
                .await
                {
                    Ok(p) => show_profile(p),
                    Err(e) => {
                        ok = false;
                        error.try_set(Some(e.message));
                    }
                }
            }
            if ok && agent_changed {
                let args = SetAgentAddressArgs {
                    listen: l,
                    advertise: Some(adv).filter(|a| !a.is_empty()),
                };
                // The agent restarts on the new address before it answers.
                match ipc::call::<_, AgentStatusView>(
                    tally::command::SET_AGENT_ADDRESS,
                    &args,
                    ipc::LONG_TIMEOUT_MS,
                )
                .await
                {
                    Ok(a) => {
                        if a.state == "stopped" {
                            ok = false;
                            error.try_set(Some(format!(
                                "Saved, but the agent could not start: {}",
                                a.error.clone().unwrap_or_else(|| "no reason given".into())
                            )));
                        }
                        show_agent(a);
                    }
                    Err(e) => {
                        ok = false;
                        error.try_set(Some(e.message));
                    }
                }
            }
            busy.try_set(false);
            if ok {
                saved.try_set(Some("Saved."));
            }
        });
    };

    let input = move |sig: RwSignal<String>,
                      id: &'static str,
                      label: &'static str,
                      hint: &'static str| {
        view! {
            <label>{label}
                <input type="text" autocomplete="off" spellcheck="false" data-testid=id placeholder=hint
                    prop:value=move || sig.get()
                    on:input=move |ev| sig.set(event_target_value(&ev)) />
            </label>
        }
    };
    view! {
        <section class="card" data-testid="settings-tallies">
            <h3>"Tallies"</h3>
            <form class="stack" on:submit=move |ev| { ev.prevent_default(); save(); }>
                {input(name, "settings-tally-name", "My name in tally certificates", "The name partners see")}
                {input(listen, "settings-agent-listen", "Agent listens on", "HOST:PORT, e.g. 0.0.0.0:65430")}
                {input(advertise, "settings-agent-advertise", "Address partners are told", "HOST:PORT; the listening one if empty")}
                <p class="row">
                    <button type="submit" data-testid="settings-agent-save" disabled=move || busy.get()>
                        {move || if busy.get() { "Saving…" } else { "Save" }}
                    </button>
                </p>
            </form>
            {move || profile.get().map(|p| view! {
                <dl>
                    <dt>"CHIP user id"</dt><dd class="address" data-testid="settings-tally-cuid">{p.cuid}</dd>
                    <dt>"Agent id"</dt><dd class="address" data-testid="settings-tally-agent">{p.agent}</dd>
                </dl>
            })}
            {move || error.get().map(|e| view! { <p class="error" data-testid="settings-agent-error">{e}</p> })}
            {move || saved.get().map(|m| view! { <p class="ok" data-testid="settings-agent-saved">{m}</p> })}
        </section>
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
