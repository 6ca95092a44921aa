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

/// Alice, Bob, their running agents, and the tally's id on each side.
type OpenedTally = (
    Wallet,
    Wallet,
    super::AgentHandle,
    super::AgentHandle,
    String,
    String,
);

/// A tally between two agents, opened: `(alice, bob, alice's id, bob's id)`
/// (Alice drafted it, the stock; each grants the other 100 CHIPs).
async fn open_tally(da: &std::path::Path, db: &std::path::Path) -> OpenedTally {
    open_tally_with(da, db, no_poll()).await
}

/// [`open_tally`] with both agents started on `config`.
async fn open_tally_with(
    da: &std::path::Path,
    db: &std::path::Path,
    config: AgentConfig,
) -> OpenedTally {
    let (alice, bob) = (wallet(da).await, wallet(db).await);
    let a_agent = alice.start_agent(config.clone()).await.expect("agent");
    let b_agent = bob.start_agent(config).await.expect("agent");
    let mut a_events = alice.subscribe();
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
    (alice, bob, a_agent, b_agent, draft.id, offered.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chits_come_in_pages_with_running_balances_and_events() {
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (alice, bob, _a, _b, a_id, b_id) = open_tally(da.path(), db.path()).await;
    let (mut a_events, mut b_events) = (alice.subscribe(), bob.subscribe());
    let mut paid = Vec::new();
    for k in 1..=3u64 {
        let chit = alice.tally_pay(&a_id, k * 1000, None).await.expect("pays");
        until(&mut a_events, "Bob's acknowledgement", || {
            linked(&alice, &a_id, &chit.uuid)
        })
        .await;
        paid.push(chit.uuid);
    }
    let invoice = bob.tally_invoice(&b_id, 500, None).await.expect("invoices");
    assert!(invoice.invoice && !invoice.mine);
    until(&mut a_events, "the invoice to reach Alice", || async {
        alice
            .tally_chits(&a_id)
            .await
            .expect("chits")
            .iter()
            .any(|c| c.uuid == invoice.uuid && c.needs_action)
    })
    .await;
    assert_eq!(
        alice.tallies().await.expect("tallies")[0].invoices_to_approve,
        1
    );
    alice.chit_approve(&invoice.uuid).await.expect("approves");
    until(&mut b_events, "the invoice to be paid", || {
        linked(&bob, &b_id, &invoice.uuid)
    })
    .await;
    // Delivered, and the partner's confirmation of the chain back: a list
    // and pages read while a chit is still provisional could differ. Waited
    // for on a receiver of its own: `a_events` keeps every event for the
    // check below.
    let mut a_wait = alice.subscribe();
    until(
        &mut a_wait,
        "the approval to be delivered and linked",
        || async {
            alice
                .tally_chits(&a_id)
                .await
                .expect("chits")
                .iter()
                .all(|c| !c.waiting && c.consensus == "linked")
        },
    )
    .await;

    // The whole list and the pages agree, newest first.
    let all = alice.tally_chits(&a_id).await.expect("chits");
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].uuid, invoice.uuid);
    assert!(all[0].invoice, "an approved invoice is still an invoice");
    assert!(all[1..].iter().all(|c| !c.invoice), "payments are not");
    let runs: Vec<Option<i64>> = all.iter().map(|c| c.running_balance).collect();
    assert_eq!(
        runs,
        [Some(-6_500), Some(-6_000), Some(-3_000), Some(-1_000)]
    );
    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = alice
            .tally_chit_page(&a_id, before.as_deref(), 3)
            .await
            .expect("page");
        assert_eq!(page.total, 4);
        pages.extend(page.rows);
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, all, "pages are the list, cut");
    assert!(matches!(
        alice.tally_chit_page(&a_id, Some("x"), 3).await,
        Err(super::ChitPageError::BadCursor(_))
    ));
    assert!(matches!(
        alice.tally_chit_page("nope", None, 3).await,
        Err(super::ChitPageError::UnknownTally(_))
    ));
    let b_all = bob.tally_chits(&b_id).await.expect("chits");
    assert_eq!(b_all[0].running_balance, Some(6_500));
    assert!(b_all[0].invoice && !b_all[0].mine);

    // Every chit's changes were told, the delivery of ours too.
    let mut told = Vec::new();
    while let Ok(event) = a_events.try_recv() {
        if let WalletEvent::ChitChanged { chit, state, .. } = event {
            told.push((chit, state));
        }
    }
    assert!(
        told.iter()
            .any(|(c, s)| *c == invoice.uuid && s == "L.pend.good"),
        "the approval: {told:?}"
    );
    assert!(
        told.iter()
            .any(|(c, s)| *c == invoice.uuid && s == "L.good"),
        "its delivery: {told:?}"
    );
    let mut b_told = Vec::new();
    while let Ok(event) = b_events.try_recv() {
        if let WalletEvent::ChitChanged { chit, .. } = event {
            b_told.push(chit);
        }
    }
    assert!(b_told.contains(&invoice.uuid), "{b_told:?}");
}

/// How long a long tally takes to read: the whole list (the ledger
/// restored: every record parsed, the chain hashed) against one page.
/// Prints the times (`--nocapture`); asserts only that both agree.
/// `NOTCH_CHIT_FIXTURE` chits (default 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_tally_opens_with_one_page() {
    let n: usize = std::env::var("NOTCH_CHIT_FIXTURE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (alice, _bob, a_agent, b_agent, a_id, _) = open_tally(da.path(), db.path()).await;
    a_agent.stop().await;
    b_agent.stop().await;
    // n payments of 1 milliCHIP, signed in memory and written at once, as
    // if each had been delivered.
    let me = super::identity(&alice.inner).await.expect("identity");
    let started = std::time::Instant::now();
    let id = a_id.clone();
    alice
        .inner
        .db(move |s| {
            s.write(|tx| {
                let row = tx.tally(&id)?.expect("tally");
                let mut ledger = super::chits::load(tx, &row)?.expect("ledger");
                issue_fixture_payments(&mut ledger, &me.key, 0..n);
                for chit in ledger.rows() {
                    tx.put_chit(&row.id, &chit)?;
                }
                Ok(())
            })
        })
        .await
        .expect("writes");
    eprintln!("{n} chits signed and written in {:?}", started.elapsed());
    let started = std::time::Instant::now();
    let all = alice.tally_chits(&a_id).await.expect("chits");
    let whole = started.elapsed();
    let started = std::time::Instant::now();
    let page = alice.tally_chit_page(&a_id, None, 50).await.expect("page");
    let one = started.elapsed();
    let started = std::time::Instant::now();
    let tallies = alice.tallies().await.expect("tallies");
    let list = started.elapsed();
    eprintln!("{n} chits: the whole list {whole:?}, a page of 50 {one:?}, the tally list {list:?}");
    assert_eq!(page.total as usize, n);
    assert_eq!(all.len(), n);
    assert_eq!(page.rows[..], all[..50]);
    assert_eq!(tallies[0].balance, -(n as i64));
    assert_eq!(page.rows[0].running_balance, Some(-(n as i64)));
}

/// Both partners pay a burst of chits at once, so the two agents flush to
/// each other at the same time and each answers the other's chits while
/// its own are still going out. An agent that stops reading while it
/// writes blocks on a full socket buffer, and so does its partner: with
/// the write timeout an hour away (and no poll, no retry) that is a
/// deadlock this test sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_both_sides_at_once_all_arrives() {
    // `RUST_LOG=notch_core::agent=trace` shows the sessions of a failed run.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let burst: i64 = std::env::var("NOTCH_CHIT_BURST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let mut config = no_poll();
    config.peer.write_timeout = HOUR;
    let (alice, bob, a_agent, b_agent, a_id, b_id) =
        open_tally_with(da.path(), db.path(), config.clone()).await;
    // Both queue their whole burst while their agents are down, then both
    // agents start together and flush at once.
    let (a_addr, b_addr) = (a_agent.local_addr(), b_agent.local_addr());
    a_agent.stop().await;
    b_agent.stop().await;
    let mut payments = tokio::task::JoinSet::new();
    for _ in 0..burst {
        for (payer, id, units) in [(&alice, &a_id, 2u64), (&bob, &b_id, 1)] {
            let (payer, id) = (payer.clone(), id.clone());
            payments.spawn(async move { payer.tally_pay(&id, units, None).await.map(|_| ()) });
        }
    }
    while let Some(paid) = payments.join_next().await {
        paid.expect("joins").expect("pays");
    }
    // On the ports their partners know.
    let again = |addr: std::net::SocketAddr| AgentConfig {
        listen: addr.to_string(),
        ..config.clone()
    };
    let (_a, _b) = (
        alice.start_agent(again(a_addr)).await.expect("agent"),
        bob.start_agent(again(b_addr)).await.expect("agent"),
    );
    // One more payment each wakes the fast path (the poll is an hour away),
    // which sends the whole outbox.
    let (a_paid, b_paid) = tokio::join!(
        alice.tally_pay(&a_id, 2, None),
        bob.tally_pay(&b_id, 1, None)
    );
    a_paid.expect("pays");
    b_paid.expect("pays");
    let burst = burst + 1;
    // Slow in a debug build on a busy machine (every chit of one side moves
    // in the chain when the other's comes in), but a deadlock never ends.
    settled_within(&alice, &a_id, &bob, &b_id, 3 * LIMIT).await;
    let chits = alice.tally_chits(&a_id).await.expect("chits");
    assert_eq!(chits.len() as i64, 2 * burst);
    assert!(chits.iter().all(|c| c.state.ends_with(".good")));
    let a = alice.tally(&a_id).await.expect("tally").info.balance;
    let b = bob.tally(&b_id).await.expect("tally").info.balance;
    assert_eq!((a, b), (-burst, burst));
}

/// Waits (polling) until both halves hold the same chits, each settled
/// (good and linked, or void), with nothing left to send.
async fn settled(alice: &Wallet, a_id: &str, bob: &Wallet, b_id: &str) {
    settled_within(alice, a_id, bob, b_id, LIMIT).await;
}

async fn settled_within(alice: &Wallet, a_id: &str, bob: &Wallet, b_id: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let a = alice.tally_chits(a_id).await.expect("chits");
        let b = bob.tally_chits(b_id).await.expect("chits");
        let done = |list: &[super::ChitInfo]| {
            list.iter().all(|c| {
                !c.waiting
                    && ((c.state.ends_with(".good") && c.consensus == "linked")
                        || c.state.ends_with(".void"))
            })
        };
        if done(&a) && done(&b) && a.len() == b.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the halves did not settle: {a:?} {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The summary kept with `wallet`'s chits of tally `id` is what the whole
/// ledger (every chit read, the chain re-hashed) adds up to, and what
/// migration 9's fill computes from the rows alone; the ledger an
/// operation loads (the chain's tail and the summary) agrees with the
/// whole one on everything an operation reads.
async fn summary_is_the_whole_ledger(
    wallet: &Wallet,
    id: &str,
) -> super::super::tally::chain::ChitTotals {
    let id = id.to_owned();
    wallet
        .inner
        .db(move |s| {
            s.write(|tx| {
                let row = tx.tally(&id)?.expect("tally");
                let whole = super::chits::load(tx, &row)?.expect("the whole ledger");
                // None only before the first chit.
                let kept = match tx.chit_totals(&row.id)? {
                    Some(kept) => kept,
                    None if tx.chit_count(&row.id)? == 0 => Default::default(),
                    None => panic!("chits without a summary"),
                };
                assert_eq!(kept, whole.totals(), "the kept summary");
                assert_eq!(whole.offset(), 0);
                let tail = super::chits::load_tail(tx, &row, &super::chits::Needs::default())?
                    .expect("the tail");
                assert_eq!(tail.totals(), whole.totals());
                assert_eq!(tail.balance(), whole.balance());
                assert_eq!(tail.end(), whole.end());
                assert_eq!(tail.confirmed(), whole.confirmed());
                assert_eq!(tail.chain_len(), whole.chain_len());
                assert_eq!(tail.close_state(), whole.close_state());
                assert_eq!(tail.is_consensed(), whole.is_consensed());
                assert_eq!(tail.sync(), whole.sync());
                assert_eq!(tail.unsent(), whole.unsent());
                for side in [Side::Stock, Side::Foil] {
                    assert_eq!(tail.limit_granted_by(side), whole.limit_granted_by(side));
                    assert_eq!(
                        tail.close_requested_by(side),
                        whole.close_requested_by(side)
                    );
                }
                assert!(
                    tail.offset() + 2 >= whole.chain_len(),
                    "a settled tally's tail is short: from {} of {}",
                    tail.offset(),
                    whole.chain_len()
                );
                tx.refill_chit_summaries()?;
                assert_eq!(
                    tx.chit_totals(&row.id)?.unwrap_or_default(),
                    whole.totals(),
                    "migration 9's fill"
                );
                Ok(whole.totals())
            })
        })
        .await
        .expect("reads")
}

/// Many chits both ways, settings of both sides, an invoice approved and
/// one rejected, then a close: after each step, on both sides, the kept
/// summary equals a recomputation from every chit, and the tally screens
/// show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_summary_is_the_whole_ledger_at_every_step() {
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (alice, bob, _a, _b, a_id, b_id) = open_tally(da.path(), db.path()).await;
    let check = |step: &'static str| {
        let (alice, bob, a_id, b_id) = (alice.clone(), bob.clone(), a_id.clone(), b_id.clone());
        async move {
            settled(&alice, &a_id, &bob, &b_id).await;
            let a = summary_is_the_whole_ledger(&alice, &a_id).await;
            let b = summary_is_the_whole_ledger(&bob, &b_id).await;
            assert_eq!(a.balance.good, -b.balance.good, "{step}");
            let shown = alice.tally(&a_id).await.expect("tally").info;
            assert_eq!(i128::from(shown.balance), a.balance.good, "{step}");
            let listed = &alice.tallies().await.expect("tallies")[0];
            assert_eq!(listed.balance, shown.balance, "{step}");
            assert_eq!(listed.my_limit, shown.my_limit, "{step}");
            assert_eq!(listed.partner_limit, shown.partner_limit, "{step}");
            a
        }
    };
    check("opened").await;
    // Payments both ways, several at once in each direction.
    for round in 0..4u64 {
        for k in 0..5u64 {
            alice
                .tally_pay(&a_id, 100 + round * 10 + k, None)
                .await
                .expect("pays");
        }
        for k in 0..3u64 {
            bob.tally_pay(&b_id, 70 + k, None).await.expect("pays");
        }
        check("payments").await;
    }
    // Settings: each side changes the credit it grants, twice.
    alice.tally_set_limit(&a_id, 150_000).await.expect("limit");
    bob.tally_set_limit(&b_id, 90_000).await.expect("limit");
    check("limits").await;
    alice.tally_set_limit(&a_id, 120_000).await.expect("limit");
    let after = check("second limit").await;
    assert!(after.stock_limit.is_some() && after.foil_limit.is_some());
    let shown = alice.tally(&a_id).await.expect("tally").info;
    assert_eq!(shown.my_limit, Some(120_000));
    assert_eq!(shown.partner_limit, Some(90_000));
    // An invoice approved, one rejected.
    let paid = bob
        .tally_invoice(&b_id, 2_000, None)
        .await
        .expect("invoice");
    let refused = bob
        .tally_invoice(&b_id, 3_000, None)
        .await
        .expect("invoice");
    let deadline = Instant::now() + LIMIT;
    while alice
        .tally(&a_id)
        .await
        .expect("tally")
        .info
        .invoices_to_approve
        < 2
    {
        assert!(Instant::now() < deadline, "the invoices did not arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alice.chit_approve(&paid.uuid).await.expect("approves");
    alice.chit_reject(&refused.uuid).await.expect("rejects");
    check("invoices").await;
    assert_eq!(
        alice.tallies().await.expect("tallies")[0].invoices_to_approve,
        0
    );
    // Close: Alice asks, then the balance is brought to zero.
    alice.tally_close(&a_id).await.expect("closes");
    let totals = check("close asked").await;
    assert!(totals.stock_close);
    let owed = totals.balance.good;
    assert!(owed < 0, "Alice owes: {owed}");
    bob.tally_pay(&b_id, u64::try_from(-owed).expect("units"), None)
        .await
        .expect("pays back");
    let totals = check("closed").await;
    assert_eq!(totals.balance.good, 0);
    let deadline = Instant::now() + LIMIT;
    while alice.tally(&a_id).await.expect("tally").info.state.as_str() != "closed" {
        assert!(Instant::now() < deadline, "the tally did not close");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a chit costs on a short tally and on a long one: payments (the
/// partner offline, so only this wallet's work is timed: load, check,
/// sign, write), the tally's detail and the tally list, at
/// `NOTCH_CHIT_SMALL` (default 200) and `NOTCH_CHIT_LARGE` (default 2,000)
/// chits. Prints the times (`--ignored --nocapture`); asserts nothing about
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn what_a_chit_costs_on_a_short_and_a_long_tally() {
    let size = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (small, large) = (
        size("NOTCH_CHIT_SMALL", 200),
        size("NOTCH_CHIT_LARGE", 2_000),
    );
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (alice, _bob, a_agent, b_agent, a_id, _) = open_tally(da.path(), db.path()).await;
    a_agent.stop().await;
    b_agent.stop().await;
    let me = super::identity(&alice.inner).await.expect("identity");
    let mut held = 0usize;
    for target in [small, large] {
        // Chits of 1 milliCHIP up to `target`, signed in memory and written
        // with their summary, as if each had been delivered and confirmed.
        let (id, me2, from) = (a_id.clone(), me.clone(), held);
        let good = alice
            .inner
            .db(move |s| {
                s.write(|tx| {
                    let row = tx.tally(&id)?.expect("tally");
                    let mut ledger = super::chits::load(tx, &row)?.expect("ledger");
                    let before = ledger.rows().len();
                    issue_fixture_payments(&mut ledger, &me2.key, from..target);
                    for chit in ledger.rows().iter().skip(before) {
                        tx.put_chit(&row.id, chit)?;
                    }
                    tx.set_chits_confirmed(&row.id, ledger.chain_len())?;
                    tx.put_chit_totals(&row.id, &ledger.totals())?;
                    Ok(ledger.balance().good)
                })
            })
            .await
            .expect("writes");
        held = target;
        let pays = 10;
        let started = std::time::Instant::now();
        for _ in 0..pays {
            alice.tally_pay(&a_id, 1, None).await.expect("pays");
        }
        let pay = started.elapsed() / pays;
        held += pays as usize;
        let started = std::time::Instant::now();
        let detail = alice.tally(&a_id).await.expect("tally");
        let shown = started.elapsed();
        let started = std::time::Instant::now();
        let list = alice.tallies().await.expect("tallies");
        let listed = started.elapsed();
        eprintln!(
            "{held} chits: a payment {pay:?}, the tally's detail {shown:?} ({} chits in it), the tally list {listed:?}",
            detail.chit_count
        );
        // The payments wait for the partner: not good yet.
        assert_eq!(i128::from(list[0].balance), good);
        assert_eq!(i128::from(detail.info.balance), good);
    }
}

/// Signs one-milliCHIP payments `fixture-{k}` for each `k` of `ks` into
/// `ledger`, each marked sent: a fixture the callers write straight into
/// the store, not chits made through the protocol.
fn issue_fixture_payments(
    ledger: &mut crate::tally::chain::ChitLedger,
    key: &crate::keys::TallyKey,
    ks: std::ops::Range<usize>,
) {
    for k in ks {
        let chit = crate::tally::ChitBuilder::transaction(
            ledger.tally_uuid(),
            ledger.side(),
            format!("fixture-{k:06}"),
            crate::tally::format_date(std::time::SystemTime::now()),
            1,
        )
        .build()
        .expect("chit");
        let uuid = chit.uuid().to_owned();
        ledger.issue(key, chit).expect("issues");
        ledger.sent(&uuid).expect("sent");
    }
}
