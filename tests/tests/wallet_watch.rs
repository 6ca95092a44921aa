//! `Wallet::watch` against the REAL sandbox gateway: a new block reaches the
//! wallet through the `/v1/stream` push (the poll interval is far longer
//! than the test), and an unreachable gateway is reported and recovered from.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use notch_core::WalletEvent;
use notch_tests::gateway::Sandbox;
use notch_tests::wallet::{Gw, Tamper, TamperProxy, new_wallet};

async fn wait_for(
    rx: &mut tokio::sync::broadcast::Receiver<WalletEvent>,
    within: Duration,
    what: &str,
    mut pred: impl FnMut(&WalletEvent) -> bool,
) -> WalletEvent {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(e)) if pred(&e) => return e,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("event channel closed: {e}"),
            Err(_) => panic!("no {what} within {within:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_block_arrives_by_push() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        tokio::task::block_in_place(|| Sandbox::start(dir.path().join("gw"), "127.0.0.1:0"));
    let gw = Gw::new(&sandbox.url);
    let (w, _) = new_wallet(&dir.path().join("w"), &gw.url).await;
    let address = w.receive_address().await.unwrap();
    let mut events = w.subscribe();
    let watcher = {
        let w = w.clone();
        tokio::spawn(async move { w.watch(Duration::from_secs(3600)).await })
    };
    wait_for(
        &mut events,
        Duration::from_secs(20),
        "first SyncDone",
        |e| matches!(e, WalletEvent::SyncDone { .. }),
    )
    .await;
    // Give the stream a moment to open and subscribe.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The payment in the pool is pushed (address subscription)...
    gw.faucet(&address, "EURT", 250).await;
    wait_for(
        &mut events,
        Duration::from_secs(20),
        "PaymentReceived",
        |e| {
            matches!(
                e,
                WalletEvent::PaymentReceived {
                    confirmed: false,
                    ..
                }
            )
        },
    )
    .await;
    // ...and so is the block that confirms it (new tip).
    let started = Instant::now();
    gw.mine(1).await;
    wait_for(
        &mut events,
        Duration::from_secs(20),
        "confirmation",
        |e| matches!(e, WalletEvent::TxStateChanged { to, .. } if to.as_str() == "confirmed"),
    )
    .await;
    let latency = started.elapsed();
    println!("new block -> wallet event by push: {latency:?}");
    let eurt = w
        .balances()
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.symbol == "EURT")
        .unwrap();
    assert_eq!(eurt.confirmed, 250);
    watcher.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_gateway_is_reported_and_recovered_from() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        tokio::task::block_in_place(|| Sandbox::start(dir.path().join("gw"), "127.0.0.1:0"));
    let gw = Gw::new(&sandbox.url);
    let proxy = TamperProxy::start(&gw.url, Tamper::None).await;
    let (w, _) = new_wallet(&dir.path().join("w"), &proxy.url).await;
    let address = w.receive_address().await.unwrap();
    proxy.set_down(true);
    let mut events = w.subscribe();
    let watcher = {
        let w = w.clone();
        tokio::spawn(async move { w.watch(Duration::from_secs(1)).await })
    };
    let e = wait_for(
        &mut events,
        Duration::from_secs(20),
        "GatewayUnreachable",
        |e| matches!(e, WalletEvent::GatewayUnreachable { .. }),
    )
    .await;
    let WalletEvent::GatewayUnreachable { since, .. } = e else {
        unreachable!()
    };
    assert_eq!(
        w.sync_status().await.unwrap().unreachable_since,
        Some(since)
    );
    gw.faucet(&address, "NOTE", 1_000).await;
    gw.mine(1).await;
    proxy.set_down(false);
    wait_for(&mut events, Duration::from_secs(30), "GatewayBack", |e| {
        matches!(e, WalletEvent::GatewayBack { .. })
    })
    .await;
    wait_for(&mut events, Duration::from_secs(30), "SyncDone", |e| {
        matches!(e, WalletEvent::SyncDone { .. })
    })
    .await;
    assert_eq!(w.sync_status().await.unwrap().unreachable_since, None);
    let note = w
        .balances()
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.symbol == "NOTE")
        .unwrap();
    assert_eq!(note.confirmed, 1_000);
    watcher.abort();
}
