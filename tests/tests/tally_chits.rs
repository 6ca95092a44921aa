//! Chits on an open tally between two real wallets — SQLite files in
//! temporary directories, their agents on loopback TCP — through the
//! `Wallet` API: payments both ways, an invoice approved and one rejected,
//! a payment made while the partner's agent is down and delivered when it
//! is back, two payments crossing, and a payment past the credit limit
//! refused before anything is signed. After each step both halves hold
//! the same chain and opposite balances. A wallet closed and reopened
//! restores its chits from its store and carries on with the same chain.
//!
//! The setup (offline wallets, test-sized agents) is `notch_tests::tally`,
//! shared with `tally_open.rs`.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::future::Future;
use std::time::Duration;

use notch_core::tally::Side;
use notch_core::{NotificationKind, TallyPayError, TicketOptions, Wallet};
use notch_tests::tally::{
    NO_GATEWAY, agent, balance, chain, chit, converged, name_alice_and_bob, state_of, wait_chit,
};
use notch_tests::wallet::new_wallet;
use serde_json::json;

async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    notch_tests::tally::eventually(what, Duration::from_secs(30), check).await
}

/// Alice (stock, the ticket's issuer) and Bob (foil) with an open tally
/// in which each grants the other 100 CHIPs of credit, and both agents
/// running. Returns the tally's id on each side.
async fn open_tally(alice: &Wallet, bob: &Wallet) -> (String, String) {
    let (ticket, draft) = alice
        .tally_ticket_with(TicketOptions {
            expires_in: Duration::from_secs(600),
            side: Side::Stock,
            my_terms: json!({"limit": 100}),
            partner_terms: json!({"limit": 100}),
            comment: None,
        })
        .await
        .unwrap();
    let offered = bob.tally_scan(&ticket.to_string()).await.unwrap();
    assert_eq!(offered.state.as_str(), "P.offer");
    let accepted = bob.tally_accept(&offered.id).await.unwrap();
    assert_eq!(accepted.state.as_str(), "open");
    eventually("the tally to open on Alice's side", || async {
        (state_of(alice, &draft.id).await == "open").then_some(())
    })
    .await;
    (draft.id, offered.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_invoices_an_offline_partner_and_crossing_payments_converge() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, _) = new_wallet(da.path(), NO_GATEWAY).await;
    let (bob, _) = new_wallet(db.path(), NO_GATEWAY).await;
    name_alice_and_bob(&alice, &bob).await;
    // Both agents listen before the tally is drafted, so each certificate
    // says where its agent is reached.
    let _a_agent = agent(&alice, "127.0.0.1:0").await;
    let b_agent = agent(&bob, "127.0.0.1:0").await;
    let b_listen = b_agent.local_addr().to_string();
    let (a_id, b_id) = open_tally(&alice, &bob).await;
    assert_eq!(balance(&alice, &a_id).await, 0);

    // 1. Alice pays Bob 12.5 CHIPs: her liability, his asset.
    let paid = alice
        .tally_pay(&a_id, 12_500, Some("lunch".into()))
        .await
        .unwrap();
    assert!(paid.mine);
    assert_eq!(paid.amount, -12_500);
    assert_eq!(paid.memo.as_deref(), Some("lunch"));
    let got = wait_chit(&bob, &b_id, &paid.uuid, "A.good").await;
    assert_eq!(
        (got.units, got.amount, got.mine),
        (Some(12_500), 12_500, false)
    );
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -12_500);
    assert!(
        bob.notifications(false)
            .await
            .unwrap()
            .iter()
            .any(|n| n.kind == NotificationKind::ChitReceived)
    );

    // 2. Bob pays Alice 2 CHIPs back.
    let back = bob.tally_pay(&b_id, 2_000, None).await.unwrap();
    wait_chit(&alice, &a_id, &back.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -10_500);

    // 3. Alice invoices Bob 3 CHIPs; Bob approves (signs) it.
    let invoice = alice
        .tally_invoice(&a_id, 3_000, Some("bread".into()))
        .await
        .unwrap();
    assert!(!invoice.mine, "an invoice is the partner's to sign");
    let asked = wait_chit(&bob, &b_id, &invoice.uuid, "L.pend").await;
    assert!(asked.needs_action);
    assert!(
        bob.notifications(false)
            .await
            .unwrap()
            .iter()
            .any(|n| n.kind == NotificationKind::InvoiceToApprove)
    );
    bob.chit_approve(&invoice.uuid).await.unwrap();
    wait_chit(&alice, &a_id, &invoice.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -7_500);

    // 4. Another invoice, rejected: void on both sides, no balance change.
    let refused = alice.tally_invoice(&a_id, 1_000, None).await.unwrap();
    wait_chit(&bob, &b_id, &refused.uuid, "L.pend").await;
    bob.chit_reject(&refused.uuid).await.unwrap();
    wait_chit(&alice, &a_id, &refused.uuid, "A.void").await;
    assert!(bob.chit_approve(&refused.uuid).await.is_err());
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -7_500);

    // 5. Bob's agent is down: Alice's payment waits, signed, in her outbox,
    // and goes out when Bob's agent is back.
    b_agent.stop().await;
    let offline = alice.tally_pay(&a_id, 500, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(chit(&bob, &b_id, &offline.uuid).await.is_none());
    let waiting = chit(&alice, &a_id, &offline.uuid).await.unwrap();
    assert_eq!(waiting.state, "L.pend.good", "signed, not yet delivered");
    let info = alice.tally(&a_id).await.unwrap().info;
    assert!(info.queued, "{info:?}");
    assert!(info.delivery_error.is_some(), "{info:?}");
    let _b_agent = agent(&bob, &b_listen).await;
    wait_chit(&bob, &b_id, &offline.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -8_000);
    eventually("Alice's chit outbox to empty", || async {
        (!alice.tally(&a_id).await.unwrap().info.queued).then_some(())
    })
    .await;

    // 6. Both pay at the same time: the chains cross and converge (the foil
    // orders, the stock conforms).
    let (from_a, from_b) = tokio::join!(
        alice.tally_pay(&a_id, 100, None),
        bob.tally_pay(&b_id, 200, None)
    );
    let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
    wait_chit(&bob, &b_id, &from_a.uuid, "A.good").await;
    wait_chit(&alice, &a_id, &from_b.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -7_900);
    let a_chain = chain(&alice.tally_chits(&a_id).await.unwrap());
    assert_eq!(a_chain.len(), 6, "six good chits: {a_chain:?}");
    assert_eq!(
        a_chain.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );

    // 7. Past the credit Bob grants (100 CHIPs, 7.9 used): refused before
    // signing; nothing is stored or sent.
    let before = alice.tally_chits(&a_id).await.unwrap();
    let err = alice.tally_pay(&a_id, 92_200, None).await.unwrap_err();
    assert!(matches!(err, TallyPayError::OverLimit(_)), "{err}");
    assert_eq!(alice.tally_chits(&a_id).await.unwrap(), before);
    // Up to the limit is fine.
    let last = alice.tally_pay(&a_id, 92_100, None).await.unwrap();
    wait_chit(&bob, &b_id, &last.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -100_000);
    // The list shows the real balance too.
    assert_eq!(alice.tallies().await.unwrap()[0].balance, -100_000);
    assert_eq!(bob.tallies().await.unwrap()[0].balance, 100_000);
    // Newest first.
    assert_eq!(alice.tally_chits(&a_id).await.unwrap()[0].uuid, last.uuid);
    // Once converged, the agents go quiet: nothing stays queued on either
    // side (the consensus checks of each new session are answered on it).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (wallet, id) in [(&alice, &a_id), (&bob, &b_id)] {
        let info = wallet.tally(id).await.unwrap().info;
        assert!(!info.queued, "{info:?}");
    }
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chits_need_an_open_tally_and_sane_amounts() {
    let da = tempfile::tempdir().unwrap();
    let (alice, _) = new_wallet(da.path(), NO_GATEWAY).await;
    let _a_agent = agent(&alice, "127.0.0.1:0").await;
    let (_, draft) = alice.tally_ticket(Duration::from_secs(600)).await.unwrap();
    let err = alice.tally_pay(&draft.id, 1_000, None).await.unwrap_err();
    assert!(matches!(err, TallyPayError::Load(_)), "{err}");
    let err = alice.tally_pay(&draft.id, 0, None).await.unwrap_err();
    assert!(matches!(err, TallyPayError::Zero), "{err}");
    let err = alice.tally_pay("nope", 1, None).await.unwrap_err();
    assert!(matches!(err, TallyPayError::UnknownTally(_)), "{err}");
    assert!(alice.chit_approve("nope").await.is_err());
    assert!(alice.tally_chits(&draft.id).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_wallet_restores_its_chits_and_carries_on() {
    use std::sync::Arc;

    use notch_core::secrets::MemorySecretStore;
    use notch_tests::wallet::config;

    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, _) = new_wallet(da.path(), NO_GATEWAY).await;
    // Bob's secret store outlives his first `Wallet`, so he can reopen it.
    let b_secrets = Arc::new(MemorySecretStore::new());
    let (bob, _) = Wallet::create(
        config(db.path(), NO_GATEWAY),
        b_secrets.clone(),
        notch_core::keys::WordCount::Twelve,
    )
    .await
    .unwrap();
    let _a_agent = agent(&alice, "127.0.0.1:0").await;
    let b_agent = agent(&bob, "127.0.0.1:0").await;
    let b_listen = b_agent.local_addr().to_string();
    let (a_id, b_id) = open_tally(&alice, &bob).await;
    let first = alice.tally_pay(&a_id, 4_000, None).await.unwrap();
    wait_chit(&bob, &b_id, &first.uuid, "A.good").await;
    let back = bob.tally_pay(&b_id, 1_000, None).await.unwrap();
    wait_chit(&alice, &a_id, &back.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -3_000);
    let before = bob.tally_chits(&b_id).await.unwrap();

    // Bob's wallet closes; Alice pays meanwhile.
    b_agent.stop().await;
    drop(bob);
    let offline = alice.tally_pay(&a_id, 500, None).await.unwrap();

    // Reopened, Bob's wallet holds the same chits (restored from its
    // store), takes the waiting payment, and pays again on the same chain.
    let bob = Wallet::open(config(db.path(), NO_GATEWAY), b_secrets)
        .await
        .unwrap();
    assert_eq!(bob.tally_chits(&b_id).await.unwrap(), before);
    assert_eq!(balance(&bob, &b_id).await, 3_000);
    let _b_agent = agent(&bob, &b_listen).await;
    wait_chit(&bob, &b_id, &offline.uuid, "A.good").await;
    let again = bob.tally_pay(&b_id, 2_000, None).await.unwrap();
    wait_chit(&alice, &a_id, &again.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -1_500);
    assert_eq!(chain(&bob.tally_chits(&b_id).await.unwrap()).len(), 4);
}
