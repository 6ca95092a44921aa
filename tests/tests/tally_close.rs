//! Setting chits and closing, between two real wallets — SQLite files in
//! temporary directories, their agents on loopback TCP — through the
//! `Wallet` API:
//!
//! - Alice raises the credit she grants Bob with a MyCHIPs setting chit
//!   (`type: set`, `ref.limit`); Bob's wallet then lets him owe up to the
//!   new limit and refuses one milliCHIP more, before signing; Bob
//!   invoices Alice (the foil asks the stock) and she approves.
//! - Alice asks to close a tally Bob owes on: both sides are `closing`;
//!   chits away from zero are refused before signing (payments, invoices,
//!   approvals, a higher limit from the side that closes), chits toward
//!   zero go through, and the tally is `closed` on both sides when the
//!   balance reaches zero.
//! - A close request made while the partner's wallet is closed waits in
//!   the outbox and reaches it when it is back; both wallets reopened from
//!   disk agree on the closed tally.
//!
//! The setup is `notch_tests::tally`, shared with `tally_open.rs` and
//! `tally_chits.rs`.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use notch_core::agent::TallySettingError;
use notch_core::secrets::MemorySecretStore;
use notch_core::tally::Side;
use notch_core::{
    ChitApproveError, NotificationKind, TallyInvoiceError, TallyPayError, TicketOptions, Wallet,
};
use notch_tests::tally::{
    NO_GATEWAY, agent, chain, chit, converged, name_alice_and_bob, state_of, wait_chit,
};
use notch_tests::wallet::config;
use serde_json::json;

async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    notch_tests::tally::eventually(what, Duration::from_secs(30), check).await
}

async fn wait_state(wallet: &Wallet, tally: &str, state: &str) {
    let what = format!("tally {tally} to be {state}");
    eventually(&what, || async {
        (state_of(wallet, tally).await == state).then_some(())
    })
    .await
}

/// A wallet whose secret store outlives it, so that it can be reopened.
async fn reopenable(dir: &std::path::Path) -> (Wallet, Arc<MemorySecretStore>) {
    let secrets = Arc::new(MemorySecretStore::new());
    let (wallet, _) = Wallet::create(
        config(dir, NO_GATEWAY),
        secrets.clone(),
        notch_core::keys::WordCount::Twelve,
    )
    .await
    .unwrap();
    (wallet, secrets)
}

/// Alice (stock, the ticket's issuer) and Bob (foil) with an open tally in
/// which each grants the other 10 CHIPs; both agents must be running.
async fn open_tally(alice: &Wallet, bob: &Wallet) -> (String, String) {
    name_alice_and_bob(alice, bob).await;
    let (ticket, draft) = alice
        .tally_ticket_with(TicketOptions {
            expires_in: Duration::from_secs(600),
            side: Side::Stock,
            my_terms: json!({"limit": 10}),
            partner_terms: json!({"limit": 10}),
            comment: None,
        })
        .await
        .unwrap();
    let offered = bob.tally_scan(&ticket.to_string()).await.unwrap();
    bob.tally_accept(&offered.id).await.unwrap();
    wait_state(alice, &draft.id, "open").await;
    (draft.id, offered.id)
}

async fn has_notification(wallet: &Wallet, kind: NotificationKind) -> bool {
    wallet
        .notifications(false)
        .await
        .unwrap()
        .iter()
        .any(|n| n.kind == kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_limit_is_enforced_and_the_foil_invoices_the_stock() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, _) = reopenable(da.path()).await;
    let (bob, _) = reopenable(db.path()).await;
    let _a_agent = agent(&alice, "127.0.0.1:0").await;
    let _b_agent = agent(&bob, "127.0.0.1:0").await;
    let (a_id, b_id) = open_tally(&alice, &bob).await;
    let info = bob.tally(&b_id).await.unwrap().info;
    assert_eq!(
        (info.my_limit, info.partner_limit),
        (Some(10_000), Some(10_000))
    );

    // 1. Alice raises the credit she grants Bob to 25 CHIPs: a setting chit
    // she signs, which Bob's wallet verifies and links like any chit.
    let set = alice.tally_set_limit(&a_id, 25_000).await.unwrap();
    assert_eq!((set.kind.as_str(), set.units, set.amount), ("set", None, 0));
    assert!(set.mine);
    wait_chit(&bob, &b_id, &set.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, 0);
    let info = bob.tally(&b_id).await.unwrap().info;
    assert_eq!(info.partner_limit, Some(25_000), "{info:?}");
    assert_eq!(
        alice.tally(&a_id).await.unwrap().info.my_limit,
        Some(25_000)
    );
    assert!(has_notification(&bob, NotificationKind::TallyLimitChanged).await);

    // 2. Bob may now owe up to 25 CHIPs: he pays 20, approves Alice's
    // invoice of 5, and then one milliCHIP more is refused before signing,
    // as a payment and as an approval.
    let paid = bob.tally_pay(&b_id, 20_000, None).await.unwrap();
    wait_chit(&alice, &a_id, &paid.uuid, "A.good").await;
    let invoice = alice.tally_invoice(&a_id, 5_000, None).await.unwrap();
    wait_chit(&bob, &b_id, &invoice.uuid, "L.pend").await;
    bob.chit_approve(&invoice.uuid).await.unwrap();
    wait_chit(&alice, &a_id, &invoice.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, 25_000);
    let before = bob.tally_chits(&b_id).await.unwrap();
    let err = bob.tally_pay(&b_id, 1, None).await.unwrap_err();
    assert!(matches!(err, TallyPayError::OverLimit(_)), "{err}");
    assert_eq!(bob.tally_chits(&b_id).await.unwrap(), before);
    let one_more = alice.tally_invoice(&a_id, 1, None).await.unwrap();
    wait_chit(&bob, &b_id, &one_more.uuid, "L.pend").await;
    let err = bob.chit_approve(&one_more.uuid).await.unwrap_err();
    assert!(matches!(err, ChitApproveError::OverLimit(_)), "{err}");
    bob.chit_reject(&one_more.uuid).await.unwrap();
    wait_chit(&alice, &a_id, &one_more.uuid, "A.void").await;

    // 3. The other direction: Bob (the foil) invoices Alice (the stock), who
    // approves it.
    let asked = bob
        .tally_invoice(&b_id, 3_000, Some("repairs".into()))
        .await
        .unwrap();
    assert!(!asked.mine);
    let got = wait_chit(&alice, &a_id, &asked.uuid, "L.pend").await;
    assert!(got.needs_action);
    assert!(has_notification(&alice, NotificationKind::InvoiceToApprove).await);
    let approved = alice.chit_approve(&asked.uuid).await.unwrap();
    assert_eq!(approved.amount, -3_000);
    wait_chit(&bob, &b_id, &asked.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, 22_000);

    // 4. Alice lowers her limit below what Bob owes: Bob cannot pay more.
    let lower = alice.tally_set_limit(&a_id, 1_500).await.unwrap();
    wait_chit(&bob, &b_id, &lower.uuid, "A.good").await;
    assert_eq!(
        bob.tally(&b_id).await.unwrap().info.partner_limit,
        Some(1_500)
    );
    let err = bob.tally_pay(&b_id, 1, None).await.unwrap_err();
    assert!(matches!(err, TallyPayError::OverLimit(_)), "{err}");
    assert_eq!(state_of(&alice, &a_id).await, "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_tally_takes_only_chits_toward_zero_and_closes_at_zero() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, _) = reopenable(da.path()).await;
    let (bob, _) = reopenable(db.path()).await;
    let _a_agent = agent(&alice, "127.0.0.1:0").await;
    let _b_agent = agent(&bob, "127.0.0.1:0").await;
    let (a_id, b_id) = open_tally(&alice, &bob).await;

    // Bob owes Alice 3 CHIPs.
    let owed = bob.tally_pay(&b_id, 3_000, None).await.unwrap();
    wait_chit(&alice, &a_id, &owed.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, 3_000);

    // 1. Alice asks to close: a setting chit with close: true. Both sides
    // are closing.
    let close = alice.tally_close(&a_id).await.unwrap();
    assert_eq!(close.kind, "set");
    assert_eq!(state_of(&alice, &a_id).await, "closing");
    wait_chit(&bob, &b_id, &close.uuid, "A.good").await;
    wait_state(&bob, &b_id, "closing").await;
    assert!(has_notification(&bob, NotificationKind::TallyClosing).await);
    assert!(has_notification(&alice, NotificationKind::TallyClosing).await);
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, 3_000);
    let err = alice.tally_close(&a_id).await.unwrap_err();
    assert!(matches!(err, TallySettingError::AlreadyClosing), "{err}");

    // 2. No new credit, refused before anything is signed: Bob paying more,
    // Alice invoicing more, Alice paying past zero, Alice raising the
    // limit she grants.
    let (a_before, b_before) = (
        alice.tally_chits(&a_id).await.unwrap(),
        bob.tally_chits(&b_id).await.unwrap(),
    );
    let err = bob.tally_pay(&b_id, 1, None).await.unwrap_err();
    assert!(matches!(err, TallyPayError::Closing(_)), "{err}");
    let err = alice.tally_invoice(&a_id, 1, None).await.unwrap_err();
    assert!(matches!(err, TallyInvoiceError::Invoice(_)), "{err}");
    assert!(err.to_string().contains("closing"), "{err}");
    let err = alice.tally_pay(&a_id, 3_001, None).await.unwrap_err();
    assert!(matches!(err, TallyPayError::Closing(_)), "{err}");
    let err = alice.tally_set_limit(&a_id, 20_000).await.unwrap_err();
    assert!(matches!(err, TallySettingError::Refused(_)), "{err}");
    assert_eq!(alice.tally_chits(&a_id).await.unwrap(), a_before);
    assert_eq!(bob.tally_chits(&b_id).await.unwrap(), b_before);

    // 3. Toward zero: Alice pays Bob 1 CHIP back.
    let back = alice.tally_pay(&a_id, 1_000, None).await.unwrap();
    wait_chit(&bob, &b_id, &back.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, 2_000);
    assert_eq!(state_of(&bob, &b_id).await, "closing");

    // 4. Bob invoices Alice the rest (toward zero from his side too); she
    // approves, the balance is zero, and the tally is closed on both sides.
    let err = bob.tally_invoice(&b_id, 2_001, None).await.unwrap_err();
    assert!(matches!(err, TallyInvoiceError::Invoice(_)), "{err}");
    let rest = bob.tally_invoice(&b_id, 2_000, None).await.unwrap();
    wait_chit(&alice, &a_id, &rest.uuid, "L.pend").await;
    alice.chit_approve(&rest.uuid).await.unwrap();
    wait_chit(&bob, &b_id, &rest.uuid, "A.good").await;
    wait_state(&alice, &a_id, "closed").await;
    wait_state(&bob, &b_id, "closed").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, 0);
    assert!(has_notification(&alice, NotificationKind::TallyClosed).await);
    assert!(has_notification(&bob, NotificationKind::TallyClosed).await);
    assert_eq!(alice.tallies().await.unwrap()[0].state.as_str(), "closed");

    // 5. Closed: no more chits of any kind.
    let err = alice.tally_pay(&a_id, 1, None).await.unwrap_err();
    assert!(matches!(err, TallyPayError::Closed), "{err}");
    let err = bob.tally_invoice(&b_id, 1, None).await.unwrap_err();
    assert!(matches!(err, TallyInvoiceError::Invoice(_)), "{err}");
    let err = bob.tally_set_limit(&b_id, 1).await.unwrap_err();
    assert!(matches!(err, TallySettingError::Closed), "{err}");
    let err = bob.tally_close(&b_id).await.unwrap_err();
    assert!(matches!(err, TallySettingError::Closed), "{err}");
    let err = alice.tally_close("nope").await.unwrap_err();
    assert!(matches!(err, TallySettingError::UnknownTally(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_request_waits_for_an_offline_partner_and_both_reopen_consistent() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, a_secrets) = reopenable(da.path()).await;
    let (bob, b_secrets) = reopenable(db.path()).await;
    let a_agent = agent(&alice, "127.0.0.1:0").await;
    let b_agent = agent(&bob, "127.0.0.1:0").await;
    let b_listen = b_agent.local_addr().to_string();
    let (a_id, b_id) = open_tally(&alice, &bob).await;
    // Alice owes Bob 2 CHIPs.
    let owed = alice.tally_pay(&a_id, 2_000, None).await.unwrap();
    wait_chit(&bob, &b_id, &owed.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -2_000);

    // 1. Bob's wallet is closed; Alice asks to close. Her close request is
    // signed and waits in her outbox.
    b_agent.stop().await;
    drop(bob);
    let close = alice.tally_close(&a_id).await.unwrap();
    assert_eq!(state_of(&alice, &a_id).await, "closing");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let waiting = chit(&alice, &a_id, &close.uuid).await.unwrap();
    assert_eq!(waiting.state, "L.pend.good", "signed, not yet delivered");
    let info = alice.tally(&a_id).await.unwrap().info;
    assert!(info.queued, "{info:?}");

    // 2. Bob's wallet reopens from disk: still open until his agent is back
    // and takes the request.
    let bob = Wallet::open(config(db.path(), NO_GATEWAY), b_secrets.clone())
        .await
        .unwrap();
    assert_eq!(state_of(&bob, &b_id).await, "open");
    let b_agent = agent(&bob, &b_listen).await;
    wait_chit(&bob, &b_id, &close.uuid, "A.good").await;
    wait_state(&bob, &b_id, "closing").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -2_000);

    // 3. Bob, the creditor, pays the 2 CHIPs back: zero, closed.
    let back = bob.tally_pay(&b_id, 2_000, None).await.unwrap();
    wait_chit(&alice, &a_id, &back.uuid, "A.good").await;
    wait_state(&bob, &b_id, "closed").await;
    wait_state(&alice, &a_id, "closed").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, 0);
    eventually("both outboxes to empty", || async {
        let a = alice.tally(&a_id).await.unwrap().info.queued;
        let b = bob.tally(&b_id).await.unwrap().info.queued;
        (!a && !b).then_some(())
    })
    .await;
    let (a_chits, b_chits) = (
        alice.tally_chits(&a_id).await.unwrap(),
        bob.tally_chits(&b_id).await.unwrap(),
    );

    // 4. Both wallets reopen from disk and agree: closed, zero, same chain.
    a_agent.stop().await;
    b_agent.stop().await;
    drop(alice);
    drop(bob);
    let alice = Wallet::open(config(da.path(), NO_GATEWAY), a_secrets)
        .await
        .unwrap();
    let bob = Wallet::open(config(db.path(), NO_GATEWAY), b_secrets)
        .await
        .unwrap();
    for (wallet, id, chits) in [(&alice, &a_id, &a_chits), (&bob, &b_id, &b_chits)] {
        let info = wallet.tally(id).await.unwrap().info;
        assert_eq!(
            (info.state.as_str(), info.balance),
            ("closed", 0),
            "{info:?}"
        );
        assert_eq!(&wallet.tally_chits(id).await.unwrap(), chits);
    }
    assert_eq!(chain(&a_chits), chain(&b_chits));
    assert_eq!(chain(&a_chits).len(), 3);
    let err = bob.tally_pay(&b_id, 1, None).await.unwrap_err();
    assert!(matches!(err, TallyPayError::Closed), "{err}");
}
