//! The fast path: with the outbox poll (and every retry) an hour away, a
//! payment and its acknowledgement still go through, on a new connection
//! when none is open and on the open session when one is, in both
//! directions. Nothing here measures time (that is the peer benchmark's
//! job): each step only has to happen long before the poll could have
//! done it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::broadcast::{Receiver, error::RecvError};
use tokio::time::Instant;

use super::{AgentConfig, RetryPolicy, TicketOptions};
use crate::events::WalletEvent;
use crate::keys::WordCount;
use crate::secrets::MemorySecretStore;
use crate::tally::Side;
use crate::{Network, Wallet, WalletConfig};

const HOUR: Duration = Duration::from_secs(3600);
/// Generous, and still far from the hour the poll waits.
const LIMIT: Duration = Duration::from_secs(60);

async fn wallet(dir: &std::path::Path) -> Wallet {
    let config = WalletConfig::new(dir, "http://127.0.0.1:1", Network::Sandbox);
    let (wallet, _) = Wallet::create(
        config,
        Arc::new(MemorySecretStore::new()),
        WordCount::Twelve,
    )
    .await
    .expect("creates offline");
    wallet
}

/// No poll, no retry, and sessions that stay open: only the fast path
/// delivers.
fn no_poll() -> AgentConfig {
    AgentConfig {
        listen: "127.0.0.1:0".into(),
        retry: RetryPolicy {
            first: HOUR,
            max: HOUR,
        },
        poll: HOUR,
        linger: HOUR,
        ..AgentConfig::default()
    }
}

/// Waits, woken by `events`, until `check` holds.
async fn until<F, Fut>(events: &mut Receiver<WalletEvent>, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + LIMIT;
    loop {
        if check().await {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Err(_) => panic!("{what}: not within {LIMIT:?}, with the outbox poll an hour away"),
            Ok(Err(RecvError::Closed)) => panic!("{what}: the wallet's events ended"),
            Ok(_) => {}
        }
    }
}

/// Chit `uuid` of `tally` is good and linked in `wallet`.
async fn linked(wallet: &Wallet, tally: &str, uuid: &str) -> bool {
    wallet
        .tally_chits(tally)
        .await
        .expect("chits")
        .iter()
        .any(|c| c.uuid == uuid && c.state.ends_with(".good") && c.consensus == "linked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_go_out_at_once_without_the_poll() {
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (alice, bob) = (wallet(da.path()).await, wallet(db.path()).await);
    let _a_agent = alice.start_agent(no_poll()).await.expect("agent");
    let _b_agent = bob.start_agent(no_poll()).await.expect("agent");
    let (mut a_events, mut b_events) = (alice.subscribe(), bob.subscribe());

    let limit = json!({"limit": 100});
    let (ticket, draft) = alice
        .tally_ticket_with(TicketOptions {
            expires_in: Duration::from_secs(600),
            side: Side::Stock,
            my_terms: limit.clone(),
            partner_terms: limit,
            comment: None,
        })
        .await
        .expect("ticket");
    let offered = bob.tally_scan(&ticket.to_string()).await.expect("scan");
    bob.tally_accept(&offered.id).await.expect("accept");
    until(
        &mut a_events,
        "the tally to open on Alice's side",
        || async {
            alice
                .tally(&draft.id)
                .await
                .expect("tally")
                .info
                .state
                .as_str()
                == "open"
        },
    )
    .await;
    let (a_id, b_id) = (draft.id, offered.id);

    // Alice pays three times (the first may need a new connection, the
    // next go out on the open session), then Bob pays back (on the session
    // Alice opened, or one of his own).
    for k in 0..3u64 {
        let paid = alice.tally_pay(&a_id, 1000 + k, None).await.expect("pays");
        until(&mut b_events, "Bob to have Alice's chit", || {
            linked(&bob, &b_id, &paid.uuid)
        })
        .await;
        until(&mut a_events, "Alice to have Bob's acknowledgement", || {
            linked(&alice, &a_id, &paid.uuid)
        })
        .await;
    }
    let back = bob.tally_pay(&b_id, 500, None).await.expect("pays back");
    until(&mut a_events, "Alice to have Bob's chit", || {
        linked(&alice, &a_id, &back.uuid)
    })
    .await;
    until(&mut b_events, "Bob to have Alice's acknowledgement", || {
        linked(&bob, &b_id, &back.uuid)
    })
    .await;
    let a = alice.tally(&a_id).await.expect("tally").info.balance;
    let b = bob.tally(&b_id).await.expect("tally").info.balance;
    assert_eq!((a, b), (-2_503, 2_503));
    assert!(!alice.tally(&a_id).await.expect("tally").info.queued);
}
