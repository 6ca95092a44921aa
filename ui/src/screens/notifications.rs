//! Notifications: the wallet's inbox, newest first; mark read.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::{CommandError, IdArgs, NotificationView, command};

use crate::{ctx, ipc, local_time};

#[component]
pub fn Notifications() -> impl IntoView {
    let cx = ctx();
    let list = RwSignal::new(None::<Result<Vec<NotificationView>, CommandError>>);
    let reload = move || {
        spawn_local(async move {
            let r = ipc::call0::<Vec<NotificationView>>(command::NOTIFICATIONS).await;
            if let Ok(items) = &r {
                cx.unread.set(items.iter().filter(|n| !n.read).count());
            }
            list.set(Some(r));
        });
    };
    Effect::new(move |_| {
        cx.tick.get();
        reload();
    });
    let mark = move |id: i64| {
        spawn_local(async move {
            let _ = ipc::call::<_, ()>(command::MARK_READ, &IdArgs { id }, ipc::DEFAULT_TIMEOUT_MS)
                .await;
            reload();
        });
    };
    let mark_all = move |_| {
        spawn_local(async move {
            let _ = ipc::call0::<u64>(command::MARK_ALL_READ).await;
            reload();
        });
    };

    view! {
        <h2>"Notifications"</h2>
        <section class="card wide">
            <p class="row"><button class="secondary" data-testid="notifications-mark-all" on:click=mark_all>"Mark all read"</button></p>
            {move || match list.get() {
                None => view! { <p>"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error" data-testid="notifications-error">{e.message}</p> }.into_any(),
                Some(Ok(items)) if items.is_empty() => view! { <p class="muted" data-testid="notifications-empty">"Nothing yet."</p> }.into_any(),
                Some(Ok(items)) => view! {
                    <ul class="inbox" data-testid="notifications-list">
                        {items.into_iter().enumerate().map(|(i, n)| {
                            let id = n.id;
                            view! {
                                <li class=if n.read { "read" } else { "unread" } data-testid=format!("notification-{i}") data-kind=n.kind.clone()>
                                    <strong data-testid=format!("notification-title-{i}")>{n.title.clone()}</strong>
                                    <p>{n.body.clone()}</p>
                                    {n.txid.clone().map(|txid| view! {
                                        <small class="muted address" data-testid=format!("notification-txid-{i}")>{txid}</small>
                                    })}
                                    <small class="muted">{local_time(n.created_at.max(0) as u64)}</small>
                                    {(!n.read).then(|| view! {
                                        <button class="secondary small" data-testid=format!("notification-read-{i}") on:click=move |_| mark(id)>"Mark read"</button>
                                    })}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any(),
            }}
        </section>
    }
}
