//! Issue 15's test, end to end: three real gateways on one PostgreSQL (the sandbox writer,
//! a standby with its keys, a read-only replica), all serving the API and taking
//! submissions; notch-core wallets spread over them, funded by the faucet, sync and send to
//! each other through their own gateway while blocks are being made. `kill -9` of the block
//! producer in the middle of a burst of submissions: the standby takes over within seconds,
//! every submission answered "accepted" ends up confirmed, the chain has one block per
//! height (through the survivors' API and in the database). The replica a wallet is
//! subscribed to is restarted: the wallet's balances end correct after it reconnects.
//!
//! PostgreSQL comes from the gateway suite's throwaway cluster (the one copy of it,
//! `gateway/tests/common/postgres.rs`): skipped without PostgreSQL or with
//! `NOTCH_TEST_POSTGRES=skip`, a failure without it under `=require`.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

#[allow(dead_code)]
#[path = "../../gateway/tests/common/postgres.rs"]
mod postgres;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use notch_core::{Recipient, Wallet};
use notch_protocol::ed25519_dalek::SigningKey;
use notch_protocol::{Address, AssetId, Network, OutPoint, Output, Transaction, TxId, public_key};
use notch_tests::gateway::Sandbox;
use notch_tests::wallet::{Gw, confirmed, gateway_view, new_wallet, restore_wallet};
use serde_json::json;

const NOTE: u64 = 100_000_000;
/// Submissions of the burst during which the producer is killed.
const BURST: usize = 45;

fn start(dir: &std::path::Path, listen: &str, args: &[&str]) -> Sandbox {
    let mut all = vec!["--no-relay"];
    all.extend_from_slice(args);
    tokio::task::block_in_place(|| Sandbox::start_with_args(dir.to_owned(), listen, &all))
}

/// Syncs `w` through `gw` until nothing of it is pending and its confirmed balances are
/// what the gateway holds for its addresses.
async fn settle(name: &str, w: &Wallet, gw: &Gw) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = w.sync().await;
        let balances = w.balances().await.unwrap();
        let idle = balances
            .iter()
            .all(|b| b.pending == 0 && b.pending_outgoing == 0);
        if idle && confirmed(w).await == gateway_view(gw, w).await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "wallet {name} did not settle: {balances:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn pay(from: &Wallet, to: &Wallet, amount: &str) -> String {
    let address = to.receive_address().await.unwrap();
    let proposal = from
        .prepare_send(&[Recipient {
            address,
            amount: amount.into(),
            asset: None,
        }])
        .await
        .unwrap();
    from.confirm_send(&proposal).await.unwrap()
}

fn note_of(b: &HashMap<String, u128>, note: &str) -> u128 {
    b.get(note).copied().unwrap_or(0)
}

/// A payment of `coin` (worth `amount`) to a key of the test, signed by `key`.
fn spend(
    native: AssetId,
    key: &SigningKey,
    coin: OutPoint,
    amount: u64,
    nonce: u64,
) -> Transaction {
    let mut tx = Transaction::new(Network::Sandbox);
    tx.inputs = vec![coin];
    tx.fee = 1_000 + 10 * Transaction::estimate_len(1, 1) as u64;
    tx.outputs = vec![Output {
        asset: native,
        amount: amount - tx.fee,
        owner: public_key(&SigningKey::from_bytes(&[99; 32])),
    }];
    tx.nonce = nonce;
    tx.sign(&[key]).unwrap();
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_wallets_a_killed_producer_and_a_restarted_replica() {
    let Some(backend) = tokio::task::block_in_place(postgres::Backend::postgres) else {
        return;
    };
    let db = backend.database().unwrap();
    let url = db.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let writer = start(&dir.path().join("w"), "127.0.0.1:0", &["--database", &url]);
    std::fs::create_dir_all(dir.path().join("s")).unwrap();
    std::fs::copy(
        dir.path().join("w/sandbox-keys.json"),
        dir.path().join("s/sandbox-keys.json"),
    )
    .unwrap();
    let standby = start(
        &dir.path().join("s"),
        "127.0.0.1:0",
        &["--standby", "--database", &url],
    );
    // The replica keeps its port across its restart, as a wallet has its address.
    let replica_listen = format!("127.0.0.1:{}", notch_tests::free_port());
    let replica_args = ["--read-only", "--database", url.as_str()];
    let mut replica = Some(start(&dir.path().join("r"), &replica_listen, &replica_args));
    let (gw_w, gw_s) = (Gw::new(&writer.url), Gw::new(&standby.url));
    let gw_r = Gw::new(&replica.as_ref().unwrap().url);
    let note = gw_w.asset_id("NOTE").await;
    let native = AssetId::from_hex(&note).unwrap();

    // Blocks while everything happens: the producer (whichever it is) is asked for one
    // every 150 ms; a standby that has not taken over says 503.
    let mining = Arc::new(AtomicBool::new(true));
    let miner = {
        let mining = mining.clone();
        let urls = [writer.url.clone(), standby.url.clone()];
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            while mining.load(Ordering::Acquire) {
                for u in &urls {
                    let _ = http
                        .post(format!("{u}/v1/sandbox/mine"))
                        .json(&json!({"blocks": 1}))
                        .send()
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };

    // A wallet per gateway, funded by the faucet (the producer's).
    let (a, a_phrase) = new_wallet(&dir.path().join("a"), &gw_w.url).await;
    let (b, _) = new_wallet(&dir.path().join("b"), &gw_s.url).await;
    let (c, _) = new_wallet(&dir.path().join("c"), &gw_r.url).await;
    for w in [&a, &b, &c] {
        for _ in 0..2 {
            let address = w.receive_address().await.unwrap();
            gw_w.faucet(&address, "NOTE", 10 * NOTE).await;
        }
    }
    // Coins of the test's own for the burst.
    let burst_key = SigningKey::from_bytes(&[42; 32]);
    let burst_address = Address::new(Network::Sandbox, public_key(&burst_key)).encode();
    let mut burst_coins = Vec::new();
    for _ in 0..BURST {
        let txid = gw_w.faucet(&burst_address, "NOTE", NOTE).await;
        burst_coins.push(OutPoint {
            txid: TxId::from_hex(&txid).unwrap(),
            index: 0,
        });
    }
    settle("a", &a, &gw_w).await;
    settle("b", &b, &gw_s).await;
    settle("c", &c, &gw_r).await;
    for w in [&a, &b, &c] {
        assert_eq!(note_of(&confirmed(w).await, &note), u128::from(20 * NOTE));
    }

    // Each sends to the next through its own gateway; all settle.
    let mut sends = vec![
        pay(&a, &b, "1").await,
        pay(&b, &c, "2").await,
        pay(&c, &a, "3").await,
    ];
    settle("a", &a, &gw_w).await;
    settle("b", &b, &gw_s).await;
    settle("c", &c, &gw_r).await;

    // The burst: BURST submissions through the three gateways at once, and the producer killed
    // while they are being committed (and blocks made).
    let gateways = [writer.url.clone(), standby.url.clone(), gw_r.url.clone()];
    let answered = Arc::new(AtomicUsize::new(0));
    let mut submitters = Vec::new();
    for (n, coin) in burst_coins.iter().enumerate() {
        let tx = spend(native, &burst_key, *coin, NOTE, n as u64);
        let url = gateways[n % 3].clone();
        let answered = answered.clone();
        submitters.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let answer = http
                .post(format!("{url}/v1/tx"))
                .json(&json!({"tx": hex::encode(tx.encode())}))
                .send()
                .await;
            let accepted = match answer {
                Ok(r) if r.status().as_u16() == 200 => {
                    let v: serde_json::Value = r.json().await.unwrap();
                    v["status"]["state"] == "in_pool"
                }
                _ => false,
            };
            answered.fetch_add(1, Ordering::AcqRel);
            (tx.txid(), accepted)
        }));
    }
    // A wallet sends meanwhile, through the standby (answered, or kept queued and sent
    // again by its next sync).
    let sending = {
        let (b, a) = (b.clone(), a.clone());
        tokio::spawn(async move { pay(&b, &a, "0.5").await })
    };
    // The kill lands once the first answers are out: the rest are in flight.
    while answered.load(Ordering::Acquire) < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let answered_at_kill = answered.load(Ordering::Acquire);
    let killed = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &writer.pid().to_string()])
            .status()
            .unwrap()
            .success()
    );
    drop(writer);
    sends.push(sending.await.unwrap());
    let mut accepted = Vec::new();
    for s in submitters {
        let (txid, ok) = s.await.unwrap();
        if ok {
            accepted.push(txid);
        }
    }
    // The standby takes over: its tip moves.
    let height_at_kill = gw_s.tip().await;
    while gw_s.tip().await <= height_at_kill + 1 {
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "no block from the standby within 15 s of the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "the standby made blocks {:?} after the kill; {answered_at_kill} of {BURST} burst submissions \
         were answered before it, {} of {BURST} were answered accepted",
        killed.elapsed(),
        accepted.len()
    );
    assert!(
        !accepted.is_empty(),
        "no burst submission was accepted at all"
    );
    // Everything answered "accepted" is confirmed, as both survivors see it.
    let deadline = Instant::now() + Duration::from_secs(20);
    for txid in &accepted {
        for gw in [&gw_s, &gw_r] {
            loop {
                let state = gw.tx_state(&txid.to_hex()).await;
                if state == "confirmed" || state == "final" {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "accepted {txid} is {state} on {}",
                    gw.url
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    // The wallets: a's gateway is gone; its phrase restored on the standby has its coins.
    let a2 = restore_wallet(&dir.path().join("a2"), &gw_s.url, &a_phrase).await;
    settle("a (restored)", &a2, &gw_s).await;
    settle("b", &b, &gw_s).await;
    settle("c", &c, &gw_r).await;
    for txid in &sends {
        let state = gw_s.tx_state(txid).await;
        assert!(state == "confirmed" || state == "final", "{txid}: {state}");
    }
    // Nothing lost, nothing made twice: the wallets hold what the faucet gave them, less
    // the fees of their sends.
    let mut sum = 0;
    for w in [&a2, &b, &c] {
        sum += note_of(&confirmed(w).await, &note);
    }
    assert!(
        sum < u128::from(60 * NOTE) && sum > u128::from(60 * NOTE - NOTE / 100),
        "{sum}"
    );

    // The replica c is subscribed to restarts; a payment to c meanwhile reaches it.
    let mut events = c.subscribe();
    let watcher = {
        let c = c.clone();
        tokio::spawn(async move { c.watch(Duration::from_secs(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = note_of(&confirmed(&c).await, &note);
    drop(replica.take());
    let paid = pay(&b, &c, "4").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    replica = Some(start(&dir.path().join("r"), &replica_listen, &replica_args));
    let deadline = Instant::now() + Duration::from_secs(30);
    while note_of(&confirmed(&c).await, &note) != before + u128::from(4 * NOTE) {
        assert!(
            Instant::now() < deadline,
            "the payment made while c's replica was down did not reach c"
        );
        while events.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watcher.abort();
    settle("c", &c, &gw_r).await;
    assert!(matches!(
        gw_r.tx_state(&paid).await.as_str(),
        "confirmed" | "final"
    ));

    mining.store(false, Ordering::Release);
    miner.await.unwrap();
    // One block per height, the same chain on both survivors and in the database.
    let (hs, hr) = (gw_s.headers().await, gw_r.headers().await);
    assert_eq!(hs.len(), hr.len());
    for (n, (x, y)) in hs.iter().zip(&hr).enumerate() {
        assert_eq!(x.height, n as u64);
        assert_eq!(x.id(), y.id());
        if n > 0 {
            assert_eq!(x.prev, hs[n - 1].id());
        }
    }
    let counts = db.psql("SELECT count(*), count(DISTINCT height), max(height) FROM blocks");
    let top = hs.len() - 1;
    assert_eq!(counts, format!("{}|{}|{top}", top + 1, top + 1));
    assert_eq!(
        db.psql("SELECT count(*) FROM submissions WHERE status IS NULL"),
        "0"
    );
    drop(replica);
}
