//! Onboarding: create a wallet (show the phrase, confirm some words) or
//! restore one from its phrase.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::{AppStatus, BeginCreateArgs, FinishCreateArgs, NewPhrase, RestoreArgs, command};

use crate::{ctx, ipc};

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Choose,
    Show(NewPhrase),
    Confirm(NewPhrase),
    Restore,
}

#[component]
pub fn Onboarding() -> impl IntoView {
    let cx = ctx();
    let step = RwSignal::new(Step::Choose);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let answers: [RwSignal<String>; 3] = [
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    ];
    let phrase_text = RwSignal::new(String::new());

    let begin = move |words: u8| {
        error.set(None);
        busy.set(true);
        spawn_local(async move {
            let r = ipc::call::<_, NewPhrase>(
                command::BEGIN_CREATE,
                &BeginCreateArgs { words },
                ipc::DEFAULT_TIMEOUT_MS,
            )
            .await;
            busy.set(false);
            match r {
                Ok(p) => {
                    for a in answers {
                        a.set(String::new());
                    }
                    step.set(Step::Show(p));
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let finish = move |_| {
        error.set(None);
        busy.set(true);
        let n = match step.get_untracked() {
            Step::Confirm(p) => p.check_positions.len(),
            _ => 0,
        };
        let list: Vec<String> = answers.iter().take(n).map(|a| a.get_untracked()).collect();
        spawn_local(async move {
            let r = ipc::call::<_, AppStatus>(
                command::FINISH_CREATE,
                &FinishCreateArgs { answers: list },
                ipc::LONG_TIMEOUT_MS,
            )
            .await;
            busy.set(false);
            match r {
                Ok(s) => {
                    cx.screen.set(crate::Screen::Home);
                    cx.status.set(Some(s));
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let restore = move |_| {
        error.set(None);
        busy.set(true);
        let phrase = phrase_text.get_untracked();
        spawn_local(async move {
            let r = ipc::call::<_, AppStatus>(
                command::RESTORE_WALLET,
                &RestoreArgs { phrase },
                ipc::LONG_TIMEOUT_MS,
            )
            .await;
            busy.set(false);
            match r {
                Ok(s) => {
                    cx.screen.set(crate::Screen::Home);
                    cx.status.set(Some(s));
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };

    view! {
        <h2>"Welcome to Notch"</h2>
        <section class="card" data-testid="onboarding">
            {move || match step.get() {
                Step::Choose => view! {
                    <p>"Notch keeps your keys on this device, in the operating system's keystore. Start a new wallet, or restore one from its recovery phrase."</p>
                    <p class="row">
                        <button data-testid="onboard-create" on:click=move |_| begin(12) disabled=move || busy.get()>"Create a wallet (12 words)"</button>
                        <button class="secondary" data-testid="onboard-create-24" on:click=move |_| begin(24) disabled=move || busy.get()>"24 words"</button>
                        <button class="secondary" data-testid="onboard-restore" on:click=move |_| { error.set(None); step.set(Step::Restore) }>"Restore from a phrase"</button>
                    </p>
                }.into_any(),
                Step::Show(p) => {
                    let next = p.clone();
                    view! {
                        <h3>"Your recovery phrase"</h3>
                        <p>"Write these " {p.words.len()} " words down, in order, on paper. Anyone with them can take your money; without them a lost device means lost money."</p>
                        <PhraseWords words=p.words.clone() testid="phrase" />
                        <p class="row">
                            <button data-testid="phrase-written" on:click=move |_| step.set(Step::Confirm(next.clone()))>"I wrote it down"</button>
                            <button class="secondary" data-testid="phrase-cancel" on:click=move |_| step.set(Step::Choose)>"Back"</button>
                        </p>
                    }.into_any()
                }
                Step::Confirm(p) => {
                    let back = p.clone();
                    view! {
                        <h3>"Confirm your backup"</h3>
                        <p>"Type these words of your phrase."</p>
                        {p.check_positions.iter().enumerate().take(3).map(|(k, pos)| {
                            let sig = answers[k];
                            view! {
                                <label class="field">
                                    <span data-testid=format!("confirm-label-{k}") data-position=pos.to_string()>"Word #" {pos + 1}</span>
                                    <input type="text" autocomplete="off" data-testid=format!("confirm-word-{k}")
                                        prop:value=move || sig.get()
                                        on:input=move |ev| sig.set(event_target_value(&ev)) />
                                </label>
                            }
                        }).collect_view()}
                        <p class="row">
                            <button data-testid="confirm-submit" on:click=finish disabled=move || busy.get()>
                                {move || if busy.get() { "Creating your wallet…" } else { "Create wallet" }}
                            </button>
                            <button class="secondary" data-testid="confirm-back" on:click=move |_| step.set(Step::Show(back.clone()))>"Show the phrase again"</button>
                        </p>
                    }.into_any()
                }
                Step::Restore => view! {
                    <h3>"Restore a wallet"</h3>
                    <p>"Type your 12 or 24 words, separated by spaces. Notch then rescans the gateway for your coins and history."</p>
                    <textarea rows="4" data-testid="restore-phrase" autocomplete="off" spellcheck="false"
                        prop:value=move || phrase_text.get()
                        on:input=move |ev| phrase_text.set(event_target_value(&ev))></textarea>
                    <p class="row">
                        <button data-testid="restore-submit" on:click=restore disabled=move || busy.get()>
                            {move || if busy.get() { "Restoring…" } else { "Restore" }}
                        </button>
                        <button class="secondary" data-testid="restore-back" on:click=move |_| step.set(Step::Choose)>"Back"</button>
                    </p>
                }.into_any(),
            }}
            {move || busy.get().then(|| view! { <p class="muted" data-testid="onboard-busy">"Working…"</p> })}
            {move || error.get().map(|e| view! { <p class="error" data-testid="onboard-error">{e}</p> })}
        </section>
    }
}

/// A recovery phrase, numbered, in columns: `{testid}-words` on the list and
/// `{testid}-word-{i}` on each word.
#[component]
pub fn PhraseWords(words: Vec<String>, testid: &'static str) -> impl IntoView {
    view! {
        <ol class="phrase" data-testid=format!("{testid}-words")>
            {words.into_iter().enumerate().map(|(i, w)| view! {
                <li data-testid=format!("{testid}-word-{i}")>{w}</li>
            }).collect_view()}
        </ol>
    }
}
