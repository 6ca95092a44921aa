//! Two wallets against the REAL sandbox gateway on loopback: faucet, sync,
//! a batched send to three addresses, confirmations, balances and histories
//! checked against the gateway, and a restore from the phrase.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::collections::HashSet;
use std::time::Duration;

use notch_core::{HistoryFilter, Recipient, SendError, TxState, WalletEvent};
use notch_tests::gateway::Sandbox;
use notch_tests::wallet::{Gw, confirmed, gateway_view, new_wallet, restore_wallet};

fn sandbox(dir: &std::path::Path) -> Sandbox {
    tokio::task::block_in_place(|| Sandbox::start(dir.join("gw"), "127.0.0.1:0"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faucet_sync_batched_send_confirm_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path());
    let gw = Gw::new(&sandbox.url);
    let note = gw.asset_id("NOTE").await;
    let eurt = gw.asset_id("EURT").await;

    let (alice, alice_phrase) = new_wallet(&dir.path().join("alice"), &gw.url).await;
    let (bob, _) = new_wallet(&dir.path().join("bob"), &gw.url).await;
    let mut alice_events = alice.subscribe();

    // Fresh addresses each time.
    let a1 = alice.receive_address().await.unwrap();
    let a2 = alice.receive_address().await.unwrap();
    assert_ne!(a1, a2);

    // Faucet: 10 NOTE and 100.00 EURT, pending first, then confirmed.
    gw.faucet(&a1, "NOTE", 1_000_000_000).await;
    gw.faucet(&a2, "EURT", 10_000).await;
    alice.sync().await.unwrap();
    let b = alice.balances().await.unwrap();
    let note_balance = b.iter().find(|b| b.symbol == "NOTE").unwrap();
    assert_eq!(
        (note_balance.confirmed, note_balance.pending),
        (0, 1_000_000_000)
    );
    gw.mine(1).await;
    let report = alice.sync().await.unwrap();
    assert_eq!(report.height, gw.tip().await);
    let b = alice.balances().await.unwrap();
    let note_balance = b.iter().find(|b| b.symbol == "NOTE").unwrap();
    assert_eq!(
        (note_balance.confirmed, note_balance.pending),
        (1_000_000_000, 0)
    );
    assert_eq!(note_balance.decimals, 8);
    assert_eq!(confirmed(&alice).await, gateway_view(&gw, &alice).await);

    // A payment was announced, as an event and in the inbox.
    let mut received = 0;
    while let Ok(e) = alice_events.try_recv() {
        if matches!(e, WalletEvent::PaymentReceived { .. }) {
            received += 1;
        }
    }
    assert_eq!(received, 2, "one PaymentReceived per faucet payment");
    let inbox = alice.notifications(true).await.unwrap();
    assert_eq!(
        inbox
            .iter()
            .filter(|n| n.kind.as_str() == "payment_received")
            .count(),
        2
    );
    alice.mark_read(inbox[0].id).await.unwrap();
    assert_eq!(
        alice.notifications(true).await.unwrap().len(),
        inbox.len() - 1
    );

    // Mistakes are refused before signing, with readable reasons.
    let b1 = bob.receive_address().await.unwrap();
    let err = alice
        .prepare_send(&[Recipient {
            address: b1.clone(),
            amount: "200.00".into(),
            asset: Some("EURT".into()),
        }])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "not enough EURT: you have 100.00, the payment needs 200.00"
    );
    let err = alice
        .prepare_send(&[Recipient {
            address: "ntc1qwss00lnecgtu8tsm5vwwj7qn9n7f43snwjs6hcamjrxgyj4xxuqtvxsv5".into(),
            amount: "1".into(),
            asset: None,
        }])
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::WrongNetwork { .. }), "{err}");
    let mut typo = b1.clone();
    typo.pop();
    typo.push(if b1.ends_with('q') { 'p' } else { 'q' });
    assert!(matches!(
        alice
            .prepare_send(&[Recipient {
                address: typo,
                amount: "1".into(),
                asset: None
            }])
            .await,
        Err(SendError::BadAddress { .. })
    ));
    assert!(matches!(
        alice
            .prepare_send(&[Recipient {
                address: b1.clone(),
                amount: "1.001".into(),
                asset: Some("EURT".into())
            }])
            .await,
        Err(SendError::BadAmount { .. })
    ));

    // One transaction paying three addresses of Bob (NOTE and EURT).
    let b2 = bob.receive_address().await.unwrap();
    let b3 = bob.receive_address().await.unwrap();
    let proposal = alice
        .prepare_send(&[
            Recipient {
                address: b1.clone(),
                amount: "1.5".into(),
                asset: None,
            },
            Recipient {
                address: b2.clone(),
                amount: "12.34".into(),
                asset: Some("EURT".into()),
            },
            Recipient {
                address: b3.clone(),
                amount: "0.25".into(),
                asset: Some("note".into()),
            },
        ])
        .await
        .unwrap();
    assert_eq!(proposal.recipients.len(), 3);
    assert!(
        proposal.fee >= 1_000 + 10 * proposal.size as u64,
        "{proposal:?}"
    );
    let note_total = proposal.totals.iter().find(|t| t.symbol == "NOTE").unwrap();
    assert_eq!(note_total.amount, 175_000_000);
    assert_eq!(
        note_total.inputs,
        note_total.amount + note_total.fee + note_total.change
    );
    let txid = alice.confirm_send(&proposal).await.unwrap();
    assert_eq!(txid, proposal.txid);
    // Confirming the same proposal again submits nothing new.
    assert_eq!(alice.confirm_send(&proposal).await.unwrap(), txid);
    let status = alice.tx_status(&txid).await.unwrap();
    assert!(
        matches!(status.state, TxState::InPool | TxState::Accepted),
        "{status:?}"
    );
    // The coins are locked: a second send cannot use them.
    let b = alice.balances().await.unwrap();
    let eurt_balance = b.iter().find(|b| b.symbol == "EURT").unwrap();
    // The spent coin is locked; only the (unconfirmed, own) change is spendable.
    assert_eq!(eurt_balance.spendable, 10_000 - 1_234);
    assert_eq!(eurt_balance.pending, 10_000 - 1_234);
    assert_eq!(eurt_balance.pending_outgoing, 10_000);

    bob.sync().await.unwrap();
    let bob_b = bob.balances().await.unwrap();
    assert_eq!(
        bob_b.iter().find(|b| b.symbol == "EURT").unwrap().pending,
        1_234
    );

    gw.mine(1).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    let status = alice.tx_status(&txid).await.unwrap();
    assert_eq!(
        (status.state, status.confirmations),
        (TxState::Confirmed, 1)
    );
    assert_eq!(gw.tx_state(&txid).await, "confirmed");

    // Balances equal what the gateway holds for each wallet's addresses.
    assert_eq!(confirmed(&alice).await, gateway_view(&gw, &alice).await);
    assert_eq!(confirmed(&bob).await, gateway_view(&gw, &bob).await);
    let bob_c = confirmed(&bob).await;
    assert_eq!(bob_c.get(&note).copied(), Some(175_000_000));
    assert_eq!(bob_c.get(&eurt).copied(), Some(1_234));
    let alice_c = confirmed(&alice).await;
    assert_eq!(
        alice_c.get(&note).copied(),
        Some(1_000_000_000 - 175_000_000 - u128::from(proposal.fee))
    );
    assert_eq!(alice_c.get(&eurt).copied(), Some(10_000 - 1_234));

    // Histories agree.
    let alice_h = alice.history(HistoryFilter::default()).await.unwrap();
    assert_eq!(alice_h.len(), 3);
    let send = alice_h.iter().find(|e| e.txid == txid).unwrap();
    assert!(!send.incoming && send.own);
    assert_eq!(send.fee, Some(proposal.fee));
    let note_net = send
        .amounts
        .iter()
        .find(|a| a.symbol == "NOTE")
        .unwrap()
        .net;
    assert_eq!(note_net, -(175_000_000 + i128::from(proposal.fee)));
    let bob_h = bob.history(HistoryFilter::default()).await.unwrap();
    assert_eq!(bob_h.len(), 1);
    assert_eq!(bob_h[0].txid, txid);
    assert!(bob_h[0].incoming);
    let eurt_only = alice
        .history(HistoryFilter {
            asset: Some("EURT".into()),
            ..HistoryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(eurt_only.len(), 2);

    // Deep enough: final.
    gw.mine(6).await;
    alice.sync().await.unwrap();
    assert_eq!(alice.tx_status(&txid).await.unwrap().state, TxState::Final);
    assert!(
        alice
            .notifications(false)
            .await
            .unwrap()
            .iter()
            .any(|n| n.kind.as_str() == "tx_confirmed")
    );

    // Restore from the phrase into an empty directory: same balances and
    // the same history.
    let restored = restore_wallet(&dir.path().join("alice-restored"), &gw.url, &alice_phrase).await;
    restored.sync().await.unwrap();
    assert_eq!(confirmed(&restored).await, confirmed(&alice).await);
    let restored_h = restored.history(HistoryFilter::default()).await.unwrap();
    let ids = |h: &[notch_core::HistoryEntry]| {
        h.iter()
            .map(|e| {
                (
                    e.txid.clone(),
                    e.state,
                    e.amounts.iter().map(|a| a.net).collect::<Vec<_>>(),
                )
            })
            .collect::<HashSet<_>>()
    };
    let alice_h = alice.history(HistoryFilter::default()).await.unwrap();
    assert_eq!(ids(&restored_h), ids(&alice_h));
    // The restored wallet does not hand out an address already used.
    let fresh = restored.receive_address().await.unwrap();
    assert!(fresh != a1 && fresh != a2);
    drop(sandbox);
    let _ = Duration::from_secs(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_finds_coins_beyond_the_first_addresses_within_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path());
    let gw = Gw::new(&sandbox.url);
    let (w, phrase) = new_wallet(&dir.path().join("w"), &gw.url).await;
    // Hand out 30 addresses; pay the 10th and the 30th (the 30th is found
    // because the 10th moves the look-ahead window).
    let mut addresses = Vec::new();
    for _ in 0..30 {
        addresses.push(w.receive_address().await.unwrap());
    }
    gw.faucet(&addresses[9], "USDT", 5_000_000).await;
    gw.faucet(&addresses[29], "USDT", 7_000_000).await;
    gw.mine(1).await;
    w.sync().await.unwrap();
    let restored = restore_wallet(&dir.path().join("r"), &gw.url, &phrase).await;
    restored.sync().await.unwrap();
    assert_eq!(confirmed(&restored).await, confirmed(&w).await);
    assert_eq!(
        confirmed(&restored).await.values().sum::<u128>(),
        12_000_000
    );
}
