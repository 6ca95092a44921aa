//! Wallet benchmarks against a REAL sandbox gateway on loopback, each next
//! to the raw work it wraps:
//!
//! 1. restore-and-sync of a sandbox ledger vs raw fetch + decode + verify of
//!    the same blocks;
//! 2. new block -> wallet event latency through the `/v1/stream` push;
//! 3. build (coin selection) and sign+record+submit a batch to many
//!    recipients vs raw Ed25519 signing;
//! 4. peak memory (VmHWM) of this process.
//!
//! Usage: `notch-wallet-bench [--blocks N] [--payments N] [--recipients N]`
//! (needs `notch-gateway` in NOTCH_BIN_DIR or the target dir). Prints one
//! JSON object. A transaction holds at most 256 outputs, so a batch is at
//! most 255 recipients (one output is the change).

#![allow(clippy::unwrap_used)] // a benchmark that cannot set up should stop loudly

use std::time::{Duration, Instant};

use notch_core::protocol::api::{BlocksRequest, BlocksResponse};
use notch_core::protocol::{
    Address, Block, BlockHeader, Network, PublicKey, verify_block, verify_header,
};
use notch_core::{Recipient, WalletEvent};
use notch_tests::gateway::Sandbox;
use notch_tests::wallet::{Gw, new_wallet, restore_wallet};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Raw: fetch every block by locator, decode, verify header and body.
async fn raw_fetch(gw: &Gw, authority: &PublicKey) -> (u64, Duration) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut locator: Vec<String> = Vec::new();
    let mut count = 0u64;
    loop {
        let r: BlocksResponse = http
            .post(format!("{}/v1/blocks", gw.url))
            .json(&BlocksRequest {
                locator: locator.clone(),
                limit: Some(100),
            })
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for b in &r.blocks {
            let block = Block::decode(&hex::decode(&b.hex).unwrap()).unwrap();
            let header: &BlockHeader = &block.header;
            verify_header(header, authority).unwrap();
            verify_block(&block).unwrap();
            count += 1;
        }
        match r.blocks.last() {
            Some(last) if r.more => locator = vec![last.id.clone()],
            _ => break,
        }
    }
    (count, started.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let blocks = arg("--blocks", 1000);
    let payments = arg("--payments", 200);
    let recipients = arg("--recipients", 500);
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        tokio::task::block_in_place(|| Sandbox::start(dir.path().join("gw"), "127.0.0.1:0"));
    let gw = Gw::new(&sandbox.url);
    let info = gw.get("/v1/info").await;
    let authority = PublicKey::from_hex(info["authority_key"].as_str().unwrap()).unwrap();

    // The ledger: payments to 50 addresses of one wallet, spread over blocks.
    let (wallet, phrase) = new_wallet(&dir.path().join("w"), &gw.url).await;
    let mut addresses = Vec::new();
    for _ in 0..50 {
        addresses.push(wallet.receive_address().await.unwrap());
    }
    for i in 0..payments {
        gw.faucet(&addresses[(i % 50) as usize], "NOTE", 10_000_000)
            .await;
        if i % 10 == 9 {
            gw.mine(1).await;
        }
    }
    gw.mine(1).await;
    while gw.tip().await < blocks {
        let left = (blocks - gw.tip().await).min(100) as u32;
        gw.mine(left.max(1)).await;
    }
    let tip = gw.tip().await;

    // 1. Restore-and-sync vs raw fetch + decode + verify.
    let (raw_blocks, raw_time) = raw_fetch(&gw, &authority).await;
    let restored = restore_wallet(&dir.path().join("r"), &gw.url, &phrase).await;
    let started = Instant::now();
    let report = restored.sync().await.unwrap();
    let sync_time = started.elapsed();
    assert_eq!(report.height, tip);

    // 2. New block -> wallet event, by push.
    wallet.sync().await.unwrap();
    let mut events = wallet.subscribe();
    let watcher = {
        let w = wallet.clone();
        tokio::spawn(async move { w.watch(Duration::from_secs(3600)).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    for i in 0..20 {
        gw.faucet(&addresses[i % 50], "EURT", 100).await;
        let started = Instant::now();
        gw.mine(1).await;
        loop {
            match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
                Ok(Ok(WalletEvent::TxStateChanged { to, .. })) if to == "confirmed" => break,
                Ok(Ok(_)) => {}
                Ok(Err(_)) => {}
                Err(_) => panic!("no confirmation event within 20 s"),
            }
        }
        latencies.push(started.elapsed());
    }
    watcher.abort();

    // 3. A batch to many recipients vs raw Ed25519 signing.
    wallet.sync().await.unwrap();
    let list: Vec<Recipient> = (0..recipients)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&i.to_le_bytes());
            let key = notch_core::protocol::ed25519_dalek::SigningKey::from_bytes(&seed);
            Recipient {
                address: Address::new(Network::Sandbox, PublicKey(key.verifying_key().to_bytes()))
                    .encode(),
                amount: "0.0001".into(),
                asset: None,
            }
        })
        .collect();
    let started = Instant::now();
    let proposal = wallet.prepare_send(&list).await.unwrap();
    let build_time = started.elapsed();
    let inputs = proposal.totals.iter().map(|t| t.inputs).sum::<u64>();
    let started = Instant::now();
    let txid = wallet.confirm_send(&proposal).await.unwrap();
    let confirm_time = started.elapsed();
    let key = notch_core::protocol::ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let started = Instant::now();
    let n = 2000;
    for i in 0..n {
        let id = [i as u8; 32];
        std::hint::black_box(notch_core::protocol::sign_id(&key, &id));
    }
    let per_sign = started.elapsed() / n;

    let out = serde_json::json!({
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "ledger": { "blocks": tip, "payments_to_wallet": payments },
        "restore_and_sync": {
            "wallet_secs": sync_time.as_secs_f64(),
            "raw_fetch_decode_verify_secs": raw_time.as_secs_f64(),
            "raw_blocks": raw_blocks,
            "ratio_wallet_over_raw": sync_time.as_secs_f64() / raw_time.as_secs_f64().max(1e-9),
        },
        "new_block_to_event_by_push": {
            "median_ms": median(latencies.clone()).as_secs_f64() * 1e3,
            "max_ms": latencies.iter().max().copied().unwrap_or_default().as_secs_f64() * 1e3,
            "samples": latencies.len(),
        },
        "batch": {
            "recipients": recipients,
            "txid": txid,
            "size_bytes": proposal.size,
            "input_value_base_units": inputs,
            "prepare_ms": build_time.as_secs_f64() * 1e3,
            "sign_record_submit_ms": confirm_time.as_secs_f64() * 1e3,
            "raw_ed25519_sign_us": per_sign.as_secs_f64() * 1e6,
        },
        "peak_rss_kib": peak_rss_kib(),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
