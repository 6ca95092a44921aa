//! A mirror that serves something that fails verification is detected,
//! reported (error, event, notification) and nothing of it is stored: a
//! tampering HTTP proxy on loopback sits between the wallet and the REAL
//! sandbox gateway.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use notch_core::{SyncError, WalletEvent};
use notch_tests::gateway::Sandbox;
use notch_tests::wallet::{Gw, Tamper, TamperProxy, confirmed, new_wallet};

async fn detects(mode: Tamper) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        tokio::task::block_in_place(|| Sandbox::start(dir.path().join("gw"), "127.0.0.1:0"));
    let gw = Gw::new(&sandbox.url);
    let proxy = TamperProxy::start(&gw.url, mode).await;
    let (wallet, _) = new_wallet(&dir.path().join("w"), &proxy.url).await;
    let address = wallet.receive_address().await.unwrap();

    // An honest first sync through the proxy.
    gw.faucet(&address, "NOTE", 500_000_000).await;
    gw.mine(2).await;
    wallet.sync().await.unwrap();
    let before_balance = confirmed(&wallet).await;
    let before_height = wallet.sync_status().await.unwrap().height;
    let before_history = wallet.history(Default::default()).await.unwrap();

    // New activity, served by a lying proxy.
    gw.faucet(&address, "EURT", 777).await;
    gw.mine(3).await;
    proxy.arm();
    let mut events = wallet.subscribe();
    let err = wallet.sync().await.unwrap_err();
    assert!(
        matches!(err, SyncError::Verification { .. }),
        "{mode:?}: {err}"
    );
    assert!(proxy.tampered.load(std::sync::atomic::Ordering::SeqCst) > 0);
    assert!(
        err.to_string().contains("nothing of it was stored"),
        "{err}"
    );

    // Nothing of it was stored.
    assert_eq!(
        wallet.sync_status().await.unwrap().height,
        before_height,
        "{mode:?}"
    );
    assert_eq!(confirmed(&wallet).await, before_balance, "{mode:?}");
    assert_eq!(
        wallet.history(Default::default()).await.unwrap(),
        before_history,
        "{mode:?}"
    );
    // Reported: an event and a notification.
    let mut seen = false;
    while let Ok(e) = events.try_recv() {
        seen |= matches!(e, WalletEvent::VerificationFailed { .. });
    }
    assert!(seen, "{mode:?}: no VerificationFailed event");
    assert!(
        wallet
            .notifications(true)
            .await
            .unwrap()
            .iter()
            .any(|n| n.kind.as_str() == "verification_failed")
    );

    // Once the mirror is honest again, the wallet catches up.
    proxy.disarm();
    wallet.sync().await.unwrap();
    assert_eq!(
        wallet.sync_status().await.unwrap().height,
        Some(gw.tip().await)
    );
    assert_eq!(
        confirmed(&wallet).await,
        notch_tests::wallet::gateway_view(&gw, &wallet).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_amount_in_a_block_is_detected() {
    detects(Tamper::BlockAmount).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_header_signature_is_detected() {
    detects(Tamper::HeaderSignature).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_merkle_root_is_detected() {
    detects(Tamper::MerkleRoot).await;
}
