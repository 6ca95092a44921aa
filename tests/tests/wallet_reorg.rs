//! Reorganisations of the REAL sandbox gateway's chain: rolled back to the
//! fork point and re-applied, own unconfirmed sends kept, the right events,
//! and the wallet equal to the canonical chain afterwards.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use notch_core::keys::{AddressChain, RecoveryPhrase, WalletKeys};
use notch_core::protocol::{AssetId, Network, OutPoint, Output, Transaction, TxId};
use notch_core::{Recipient, TxState, WalletEvent};
use notch_tests::gateway::Sandbox;
use notch_tests::wallet::{
    Gw, Tamper, TamperProxy, assert_history_consistent, confirmed, gateway_view, new_wallet,
};

fn drain(rx: &mut tokio::sync::broadcast::Receiver<WalletEvent>) -> Vec<WalletEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

fn changed(events: &[WalletEvent], txid: &str, from: &str, to: &str) -> bool {
    events.iter().any(|e| {
        matches!(e, WalletEvent::TxStateChanged { txid: t, from: Some(f), to: t2, .. }
            if t == txid && f.as_str() == from && t2.as_str() == to)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_unconfirms_and_reconfirms_a_send() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        tokio::task::block_in_place(|| Sandbox::start(dir.path().join("gw"), "127.0.0.1:0"));
    let gw = Gw::new(&sandbox.url);
    let (alice, _) = new_wallet(&dir.path().join("a"), &gw.url).await;
    let (bob, _) = new_wallet(&dir.path().join("b"), &gw.url).await;
    gw.faucet(&alice.receive_address().await.unwrap(), "NOTE", 300_000_000)
        .await;
    gw.mine(1).await;
    alice.sync().await.unwrap();
    let to = bob.receive_address().await.unwrap();
    let p = alice
        .prepare_send(&[Recipient {
            address: to,
            amount: "1".into(),
            asset: None,
        }])
        .await
        .unwrap();
    let txid = alice.confirm_send(&p).await.unwrap();
    gw.mine(2).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    let mined_at = alice.tx_status(&txid).await.unwrap().block_height.unwrap();
    assert_eq!(alice.tx_status(&txid).await.unwrap().confirmations, 2);

    let mut events = alice.subscribe();
    let r = gw.reorg(2).await;
    let fork = r["fork_point"]["height"].as_u64().unwrap();
    assert!(fork < mined_at);
    let report = alice.sync().await.unwrap();
    assert_eq!(report.rolled_back, 2);
    let e = drain(&mut events);
    assert!(
        e.iter()
            .any(|e| matches!(e, WalletEvent::Reorg { fork_height, .. } if *fork_height == fork)),
        "{e:?}"
    );
    assert!(changed(&e, &txid, "confirmed", "in_pool"), "{e:?}");
    // The send is back in the pool, not lost; its coins stay spent.
    assert_eq!(alice.tx_status(&txid).await.unwrap().state, TxState::InPool);
    assert_eq!(gw.tx_state(&txid).await, "in_pool");
    assert_eq!(confirmed(&alice).await, gateway_view(&gw, &alice).await);
    assert_history_consistent(&alice, &dir.path().join("a"), 1).await;

    gw.mine(1).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    let e = drain(&mut events);
    assert!(changed(&e, &txid, "in_pool", "confirmed"), "{e:?}");
    let s = alice.tx_status(&txid).await.unwrap();
    assert_eq!((s.state, s.confirmations), (TxState::Confirmed, 1));
    assert_eq!(confirmed(&alice).await, gateway_view(&gw, &alice).await);
    assert_eq!(confirmed(&bob).await, gateway_view(&gw, &bob).await);
    assert_history_consistent(&alice, &dir.path().join("a"), 1).await;
    assert_history_consistent(&bob, &dir.path().join("b"), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_reorg_drops_the_send_and_the_payment_vanishes() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        tokio::task::block_in_place(|| Sandbox::start(dir.path().join("gw"), "127.0.0.1:0"));
    let gw = Gw::new(&sandbox.url);
    let (alice, phrase) = new_wallet(&dir.path().join("a"), &gw.url).await;
    let (bob, _) = new_wallet(&dir.path().join("b"), &gw.url).await;
    let a0 = alice.receive_address().await.unwrap();
    let funding = gw.faucet(&a0, "NOTE", 300_000_000).await;
    gw.mine(1).await;
    alice.sync().await.unwrap();
    let p = alice
        .prepare_send(&[Recipient {
            address: bob.receive_address().await.unwrap(),
            amount: "2".into(),
            asset: None,
        }])
        .await
        .unwrap();
    let txid = alice.confirm_send(&p).await.unwrap();
    gw.mine(1).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    assert_eq!(bob.balances().await.unwrap()[0].confirmed, 200_000_000);

    // The same coin, spent elsewhere by the same key, in the new chain.
    let keys = WalletKeys::new(&RecoveryPhrase::parse(&phrase).unwrap().to_seed(""), 0).unwrap();
    let key = keys.token_key(AddressChain::Receive, 0).unwrap();
    let info = gw.get("/v1/info").await;
    let native = AssetId::from_hex(info["assets"][0]["id"].as_str().unwrap()).unwrap();
    let mut conflict = Transaction::new(Network::Sandbox);
    conflict.inputs.push(OutPoint {
        txid: TxId::from_hex(&funding).unwrap(),
        index: 0,
    });
    conflict.outputs.push(Output {
        asset: native,
        amount: 300_000_000 - 10_000,
        owner: notch_core::protocol::PublicKey(
            notch_core::protocol::ed25519_dalek::SigningKey::from_bytes(&[9; 32])
                .verifying_key()
                .to_bytes(),
        ),
    });
    conflict.fee = 10_000;
    conflict.sign(&[key.signing_key()]).unwrap();
    let mut alice_events = alice.subscribe();
    gw.reorg_with(1, &[hex::encode(conflict.encode())]).await;
    assert_eq!(gw.tx_state(&txid).await, "dropped");

    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    let s = alice.tx_status(&txid).await.unwrap();
    assert_eq!(s.state, TxState::Dropped, "{s:?}");
    let e = drain(&mut alice_events);
    assert!(
        e.iter().any(|e| matches!(e, WalletEvent::Reorg { .. })),
        "{e:?}"
    );
    assert!(
        e.iter().any(|e| matches!(e, WalletEvent::TxStateChanged { txid: t, to, .. } if *t == txid && to.as_str() == "dropped")),
        "{e:?}"
    );
    assert!(
        alice
            .notifications(true)
            .await
            .unwrap()
            .iter()
            .any(|n| n.kind.as_str() == "tx_dropped")
    );
    assert_eq!(bob.tx_status(&txid).await.unwrap().state, TxState::Dropped);
    assert!(
        bob.notifications(true)
            .await
            .unwrap()
            .iter()
            .any(|n| n.kind.as_str() == "tx_dropped")
    );
    // Both wallets equal the canonical chain: Alice has nothing left, Bob
    // never got paid.
    assert_eq!(confirmed(&alice).await, gateway_view(&gw, &alice).await);
    assert!(confirmed(&alice).await.is_empty());
    assert!(confirmed(&bob).await.is_empty());
    let b = bob.balances().await.unwrap();
    assert!(
        b.iter().all(|b| b.pending == 0 && b.confirmed == 0),
        "{b:?}"
    );
    let b = alice.balances().await.unwrap();
    assert!(
        b.iter().all(|b| b.pending == 0 && b.spendable == 0),
        "{b:?}"
    );
    assert_history_consistent(&alice, &dir.path().join("a"), 2).await;
    assert_history_consistent(&bob, &dir.path().join("b"), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_in_the_middle_of_a_sync_leaves_the_wallet_on_the_canonical_chain() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        tokio::task::block_in_place(|| Sandbox::start(dir.path().join("gw"), "127.0.0.1:0"));
    let gw = Gw::new(&sandbox.url);
    let proxy = TamperProxy::start(&gw.url, Tamper::ReorgMidSync(3)).await;
    let (w, _) = new_wallet(&dir.path().join("w"), &proxy.url).await;
    let address = w.receive_address().await.unwrap();
    w.sync().await.unwrap();
    // Many blocks to sync, with payments near the tip (inside the reorg).
    gw.mine(40).await;
    gw.faucet(&address, "NOTE", 123_456).await;
    gw.mine(1).await;
    gw.faucet(&address, "EURT", 42).await;
    gw.mine(1).await;
    proxy.arm();
    let mut events = w.subscribe();
    w.sync().await.unwrap();
    assert!(
        proxy.tampered.load(std::sync::atomic::Ordering::SeqCst) == 1,
        "the reorg was injected"
    );
    // A second pass settles anything the first left pending.
    w.sync().await.unwrap();
    gw.mine(1).await;
    w.sync().await.unwrap();
    assert_eq!(w.sync_status().await.unwrap().height, Some(gw.tip().await));
    assert_eq!(confirmed(&w).await, gateway_view(&gw, &w).await);
    assert_eq!(confirmed(&w).await.values().sum::<u128>(), 123_456 + 42);
    let e = drain(&mut events);
    assert!(
        e.iter()
            .any(|e| matches!(e, WalletEvent::SyncProgress { .. }))
    );
    // Every history entry matches the gateway's view of it.
    for h in w.history(Default::default()).await.unwrap() {
        let state = gw.tx_state(&h.txid).await;
        assert_eq!(state, h.state.as_str(), "{h:?}");
    }
    assert_history_consistent(&w, &dir.path().join("w"), 1).await;
}
