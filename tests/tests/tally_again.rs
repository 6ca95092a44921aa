//! More than one tally between the same two wallets, each opened by a
//! scan. When the ticket's issuer already shares a tally with the scanner,
//! its agent has more to say on the new session than the ticket's answer
//! (the chain checks of the tallies they share, PROTOCOL §13; whatever its
//! outbox holds for the scanner): the scanner must still take the offer
//! as the answer, and the new tally must open. Regression: the third
//! tally used to stay in `ticket` ("the issuer answered something else").

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::time::Duration;

use notch_core::tally::Side;
use notch_core::{TicketOptions, Wallet};
use notch_tests::tally::{
    NO_GATEWAY, agent, balance, converged, name_alice_and_bob, state_of, wait_chit,
};
use notch_tests::wallet::new_wallet;
use serde_json::json;

/// `issuer` issues a ticket (on its `side`), `scanner` scans and accepts
/// it; both halves end open. Returns (issuer's id, scanner's id).
async fn open_by_scan(issuer: &Wallet, scanner: &Wallet, side: Side) -> (String, String) {
    let (ticket, draft) = issuer
        .tally_ticket_with(TicketOptions {
            expires_in: Duration::from_secs(600),
            side,
            my_terms: json!({"limit": 100}),
            partner_terms: json!({"limit": 100}),
            comment: None,
        })
        .await
        .unwrap();
    let offered = scanner.tally_scan(&ticket.to_string()).await.unwrap();
    assert_eq!(offered.state.as_str(), "P.offer", "{offered:?}");
    assert_eq!(offered.uuid.as_deref(), Some(draft.id.as_str()));
    // Open at once, or as soon as the acceptance is delivered (on a
    // session already open between the two agents, it goes out with it).
    let accepted = scanner.tally_accept(&offered.id).await.unwrap();
    assert!(
        ["open", "B.offer.open"].contains(&accepted.state.as_str()),
        "{accepted:?}"
    );
    notch_tests::tally::eventually(
        "the tally to open on both sides",
        Duration::from_secs(30),
        || async {
            (state_of(issuer, &draft.id).await == "open"
                && state_of(scanner, &offered.id).await == "open")
                .then_some(())
        },
    )
    .await;
    (draft.id, offered.id)
}

/// `payer` pays `units` on its tally `id`; waits until the payee holds it
/// good.
async fn pay(payer: &Wallet, id: &str, payee: &Wallet, payee_id: &str, units: u64) {
    let paid = payer.tally_pay(id, units, None).await.unwrap();
    wait_chit(payee, payee_id, &paid.uuid, "A.good").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tallies_between_two_wallets_open_by_scan_in_both_directions() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, _) = new_wallet(da.path(), NO_GATEWAY).await;
    let (bob, _) = new_wallet(db.path(), NO_GATEWAY).await;
    name_alice_and_bob(&alice, &bob).await;
    let a_agent = agent(&alice, "127.0.0.1:0").await;
    let b_agent = agent(&bob, "127.0.0.1:0").await;

    // 1. Alice issues (stock), Bob scans; a chit on it, so that the next
    //    session between them has a chain to check.
    let (a1, b1) = open_by_scan(&alice, &bob, Side::Stock).await;
    pay(&alice, &a1, &bob, &b1, 1_000).await;
    pay(&bob, &b1, &alice, &a1, 300).await;
    // 2. Bob issues (stock), Alice scans: Bob's agent, foil on tally 1,
    //    announces its chain on the new session.
    let (b2, a2) = open_by_scan(&bob, &alice, Side::Stock).await;
    pay(&bob, &b2, &alice, &a2, 2_000).await;
    // 3. Alice issues again (stock, as on tally 1): her agent asks Bob for
    //    tally 1's chain first thing on the new session.
    let (a3, b3) = open_by_scan(&alice, &bob, Side::Stock).await;
    pay(&alice, &a3, &bob, &b3, 3_000).await;
    // 4. And Bob, stock on tally 2, issues a fourth, on the foil side.
    let (b4, a4) = open_by_scan(&bob, &alice, Side::Foil).await;
    pay(&alice, &a4, &bob, &b4, 4_000).await;

    for (a, b, expected) in [
        (&a1, &b1, -700),
        (&a2, &b2, 2_000),
        (&a3, &b3, -3_000),
        (&a4, &b4, -4_000),
    ] {
        assert_eq!(state_of(&alice, a).await, "open");
        assert_eq!(state_of(&bob, b).await, "open");
        assert_eq!(converged(&alice, a, &bob, b).await, expected);
        assert_eq!(balance(&bob, b).await, -expected);
    }
    let open = |list: Vec<notch_core::TallyInfo>| {
        list.iter().filter(|t| t.state.as_str() == "open").count()
    };
    assert_eq!(open(alice.tallies().await.unwrap()), 4);
    assert_eq!(open(bob.tallies().await.unwrap()), 4);
    a_agent.stop().await;
    b_agent.stop().await;
}
