//! Wallet benchmarks against a REAL sandbox gateway on loopback, each next
//! to the raw work it wraps:
//!
//! 1. restore-and-sync of a sandbox ledger of (by default) 1,000,000
//!    transactions vs raw fetch + decode + verify of the same blocks, with
//!    the same batch sizes;
//! 2. new block -> wallet event latency through the `/v1/stream` push;
//! 3. prepare (coin selection) and sign+record+submit of a batch to 500
//!    recipients vs raw Ed25519 signing of the same number of signatures and
//!    a raw HTTP submission of an equivalent transaction;
//! 4. peak memory (VmHWM) of each: every figure runs in its own child
//!    process (this binary re-run with `--only`), which reports its VmHWM.
//!
//! Usage: `notch-wallet-bench [--out FILE] [--txs N] [--block-txs N]
//! [--pay-every N] [--recipients N] [--samples N]`. Needs `notch-gateway`
//! and `notch-gateway-populate` next to this binary (same profile dir):
//! `cargo build --release -p notch-gateway --bins` first.
//!
//! The ledger is written by `notch-gateway-populate` into
//! `$CARGO_TARGET_DIR/bench-ledger-1m/<parameters>/` (default `target/`)
//! and reused by later runs with the same parameters.

#![allow(clippy::unwrap_used)] // a benchmark that cannot set up should stop loudly

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use notch_core::keys::RecoveryPhrase;
use notch_core::protocol::api::{BlocksRequest, BlocksResponse};
use notch_core::protocol::ed25519_dalek::SigningKey;
use notch_core::protocol::{
    Address, AssetId, Block, Network, OutPoint, Output, PublicKey, Transaction, TxId, verify_block,
    verify_header, verify_header_link,
};
use notch_core::{Recipient, WalletEvent};
use notch_tests::gateway::Sandbox;
use notch_tests::wallet::{Gw, confirmed, new_wallet, restore_wallet};
use serde_json::{Value, json};

use notch_tests::bench::ENTROPY;
/// What `notch-gateway-populate` pays a listed key, per payment.
const WALLET_AMOUNT: u64 = 1_000_000;
/// The wallet's block batches: start at 10, double up to 100 (core/src/sync.rs).
const FIRST_BATCH: u32 = 10;
const MAX_BATCH: u32 = 100;

use notch_tests::bench::arg_str;

fn arg(name: &str, default: u64) -> u64 {
    arg_str(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn peak_rss_kib() -> u64 {
    status_kib("self", "VmHWM:")
}

fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn phrase() -> String {
    RecoveryPhrase::from_entropy(&ENTROPY)
        .unwrap()
        .phrase()
        .to_string()
}

fn bin(name: &str) -> PathBuf {
    notch_tests::bench::sibling(
        name,
        "run `cargo build --release -p notch-gateway --bins` first",
    )
}

/// The release `notch-gateway --sandbox` on `data_dir` (mining only on demand).
fn start_gateway(data_dir: &Path) -> Sandbox {
    notch_tests::bench::start_gateway(&bin("notch-gateway"), data_dir)
}

async fn authority(gw: &Gw) -> PublicKey {
    let info = gw.get("/v1/info").await;
    PublicKey::from_hex(info["authority_key"].as_str().unwrap()).unwrap()
}

// ---------------------------------------------------------------- children

/// Raw: fetch every block by locator with the wallet's batch sizes, decode,
/// verify header signature, link and body (`verify_block`).
async fn child_raw(url: &str) -> Value {
    let gw = Gw::new(url);
    let authority = authority(&gw).await;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut locator: Vec<String> = Vec::new();
    let mut prev: Option<notch_core::protocol::BlockHeader> = None;
    let (mut blocks, mut txs, mut requests) = (0u64, 0u64, 0u64);
    let mut batch = FIRST_BATCH;
    loop {
        let r: BlocksResponse = http
            .post(format!("{url}/v1/blocks"))
            .json(&BlocksRequest {
                locator: locator.clone(),
                limit: Some(batch),
            })
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        requests += 1;
        for b in &r.blocks {
            let block = Block::decode(&hex::decode(&b.hex).unwrap()).unwrap();
            assert_eq!(block.header.height, b.height);
            if let Some(p) = &prev {
                verify_header_link(p, &block.header).unwrap();
            }
            verify_header(&block.header, &authority).unwrap();
            verify_block(&block).unwrap();
            blocks += 1;
            txs += block.txs.len() as u64;
            prev = Some(block.header);
        }
        batch = (batch * 2).min(MAX_BATCH);
        match r.blocks.last() {
            Some(last) if r.more => locator = vec![last.id.clone()],
            _ => break,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    json!({
        "secs": secs,
        "blocks": blocks,
        "txs": txs,
        "requests": requests,
        "tx_per_sec": txs as f64 / secs.max(1e-9),
        "peak_rss_kib": peak_rss_kib(),
    })
}

/// The raw limit of the light client: fetch the same block bytes in the
/// binary form (`Accept: application/octet-stream`, batches of 100, each
/// answer bounded by the gateway), decode them and hash each block's
/// transactions into its merkle root, checked against the header. One
/// request at a time, one thread.
async fn child_raw_merkle(url: &str) -> Value {
    use notch_core::protocol::block::merkle_leaf_of;
    use notch_core::protocol::merkle_root;
    use notch_core::protocol::wire::BlocksAnswer;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut locator: Vec<String> = Vec::new();
    let (mut blocks, mut txs, mut requests, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let body = http
            .post(format!("{url}/v1/blocks"))
            .header("accept", "application/octet-stream")
            .json(&BlocksRequest {
                locator: locator.clone(),
                limit: Some(MAX_BATCH),
            })
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        requests += 1;
        bytes += body.len() as u64;
        let answer = BlocksAnswer::decode(&body).unwrap();
        let mut last = None;
        for raw in &answer.blocks {
            let block = Block::decode(raw).unwrap();
            let leaves: Vec<_> = block
                .txs
                .iter()
                .map(|t| merkle_leaf_of(&t.txid(), &t.witness_hash()))
                .collect();
            assert_eq!(merkle_root(&leaves), block.header.merkle_root);
            blocks += 1;
            txs += block.txs.len() as u64;
            last = Some(block.id());
        }
        match last {
            Some(id) if answer.more => locator = vec![id.to_hex()],
            _ => break,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    json!({
        "secs": secs,
        "blocks": blocks,
        "txs": txs,
        "requests": requests,
        "bytes": bytes,
        "tx_per_sec": txs as f64 / secs.max(1e-9),
        "peak_rss_kib": peak_rss_kib(),
    })
}

/// Restore from the fixed phrase into an empty dir, then one `sync()` to the tip.
async fn child_restore(url: &str, expected_paid: u64) -> Value {
    let gw = Gw::new(url);
    let tip = gw.tip().await;
    let dir = tempfile::tempdir().unwrap();
    let restore_started = Instant::now();
    let wallet = restore_wallet(&dir.path().join("w"), url, &phrase()).await;
    let restore_secs = restore_started.elapsed().as_secs_f64();
    let started = Instant::now();
    let report = wallet.sync().await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(report.height, tip, "the wallet did not reach the tip");
    let balances = confirmed(&wallet).await;
    let received: u128 = balances.values().sum();
    assert_eq!(
        received,
        u128::from(expected_paid * WALLET_AMOUNT),
        "the wallet did not find every payment to it"
    );
    json!({
        "secs": secs,
        "restore_secs": restore_secs,
        "height": report.height,
        "blocks_applied": report.blocks,
        "received_base_units": received,
        "payments_found": received / u128::from(WALLET_AMOUNT),
        "peak_rss_kib": peak_rss_kib(),
    })
}

/// New block -> confirmed event through the push stream.
async fn child_push(samples: usize) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&dir.path().join("gw"));
    let gw = Gw::new(&gateway.url);
    let (wallet, _) = new_wallet(&dir.path().join("w"), &gw.url).await;
    let address = wallet.receive_address().await.unwrap();
    gw.faucet(&address, "NOTE", 10_000_000).await;
    gw.mine(1).await;
    wallet.sync().await.unwrap();
    let mut events = wallet.subscribe();
    let watcher = {
        let w = wallet.clone();
        tokio::spawn(async move { w.watch(Duration::from_secs(3600)).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    for _ in 0..samples {
        let txid = gw.faucet(&address, "EURT", 100).await;
        // The pool event arrives first; wait for it so it is not counted.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while events.try_recv().is_ok() {}
        let started = Instant::now();
        gw.mine(1).await;
        loop {
            match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
                Ok(Ok(WalletEvent::TxStateChanged { txid: t, to, .. }))
                    if to.as_str() == "confirmed" && t == txid =>
                {
                    break;
                }
                Ok(_) => {}
                Err(_) => panic!("no confirmation event within 20 s"),
            }
        }
        latencies.push(started.elapsed());
    }
    watcher.abort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    json!({
        "samples": latencies.len(),
        "median_ms": ms(percentile(&latencies, 0.5)),
        "p95_ms": ms(percentile(&latencies, 0.95)),
        "min_ms": ms(percentile(&latencies, 0.0)),
        "max_ms": ms(percentile(&latencies, 1.0)),
        "peak_rss_kib": peak_rss_kib(),
        "gateway_peak_rss_kib": status_kib(&gateway.pid().to_string(), "VmHWM:"),
    })
}

fn recipient_key(i: u64) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&i.to_le_bytes());
    SigningKey::from_bytes(&seed)
}

/// A batch to many recipients: wallet prepare, wallet sign+record+submit;
/// raw signing of as many signatures, raw submission of an equivalent tx.
async fn child_batch(recipients: u64) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&dir.path().join("gw"));
    let gw = Gw::new(&gateway.url);
    let info = gw.get("/v1/info").await;
    let native = AssetId::from_hex(info["assets"][0]["id"].as_str().unwrap()).unwrap();
    let (wallet, _) = new_wallet(&dir.path().join("w"), &gw.url).await;
    let address = wallet.receive_address().await.unwrap();
    gw.faucet(&address, "NOTE", 1_000_000_000).await;
    // The raw side's own coin, paid to a key this benchmark holds.
    let raw_key = recipient_key(u64::MAX);
    let raw_pub = PublicKey(raw_key.verifying_key().to_bytes());
    let raw_coin = gw
        .faucet(
            &Address::new(Network::Sandbox, raw_pub).encode(),
            "NOTE",
            1_000_000_000,
        )
        .await;
    gw.mine(1).await;
    wallet.sync().await.unwrap();

    let keys: Vec<PublicKey> = (0..recipients)
        .map(|i| PublicKey(recipient_key(i).verifying_key().to_bytes()))
        .collect();
    let list: Vec<Recipient> = keys
        .iter()
        .map(|k| Recipient {
            address: Address::new(Network::Sandbox, *k).encode(),
            amount: "0.0001".into(),
            asset: None,
        })
        .collect();
    let started = Instant::now();
    let proposal = wallet.prepare_send(&list).await.unwrap();
    let prepare = started.elapsed();
    let started = Instant::now();
    let txid = wallet.confirm_send(&proposal).await.unwrap();
    let confirm = started.elapsed();
    let state = gw.tx_state(&txid).await;
    assert_eq!(state, "in_pool", "the batch was not accepted");
    let tx: Value = gw.get(&format!("/v1/tx/{txid}")).await;
    let wallet_tx =
        Transaction::decode(&hex::decode(tx["hex"].as_str().unwrap_or("")).unwrap_or_default());
    let signatures = wallet_tx
        .as_ref()
        .map(|t| t.signatures.len())
        .unwrap_or(1)
        .max(1);

    // Raw: an equivalent transaction (one input, the same outputs and change).
    let mut raw = Transaction::new(Network::Sandbox);
    raw.inputs = vec![OutPoint {
        txid: TxId::from_hex(&raw_coin).unwrap(),
        index: 0,
    }];
    let each = 10_000u64; // 0.0001 NOTE
    raw.outputs = keys
        .iter()
        .map(|k| Output {
            asset: native,
            amount: each,
            owner: *k,
        })
        .collect();
    raw.outputs.push(Output {
        asset: native,
        amount: 0,
        owner: raw_pub,
    });
    let size = Transaction::estimate_len(1, raw.outputs.len());
    raw.fee = 1_000 + 10 * size as u64 + 10_000;
    let change = 1_000_000_000 - each * recipients - raw.fee;
    if let Some(o) = raw.outputs.last_mut() {
        o.amount = change;
    }
    raw.nonce = 1;
    // Raw signing: as many Ed25519 signatures as the wallet's batch carries,
    // repeated to get a stable per-signature time.
    let id = raw.txid();
    let reps = 2_000usize;
    let started = Instant::now();
    for i in 0..reps {
        let mut m = id.0;
        m[0] = i as u8;
        std::hint::black_box(notch_core::protocol::sign_id(&raw_key, &m));
    }
    let per_sign = started.elapsed() / reps as u32;
    let started = Instant::now();
    raw.sign(&[&raw_key]).unwrap();
    let raw_build_sign = started.elapsed();
    let bytes = raw.encode();
    let started = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/tx", gw.url))
        .json(&json!({ "tx": hex::encode(&bytes) }))
        .send()
        .await
        .unwrap();
    let raw_submit = started.elapsed();
    assert!(
        r.status().is_success(),
        "raw submit: {}",
        r.text().await.unwrap()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    json!({
        "recipients": recipients,
        "txid": txid,
        "size_bytes": proposal.size,
        "outputs": wallet_tx.as_ref().map(|t| t.outputs.len()).unwrap_or(0),
        "signatures": signatures,
        "prepare_ms": ms(prepare),
        "sign_record_submit_ms": ms(confirm),
        "raw_sign_us_per_signature": per_sign.as_secs_f64() * 1e6,
        "raw_sign_same_count_ms": ms(per_sign * signatures as u32),
        "raw_txid_and_sign_ms": ms(raw_build_sign),
        "raw_submit_equivalent_ms": ms(raw_submit),
        "raw_size_bytes": bytes.len(),
        "peak_rss_kib": peak_rss_kib(),
    })
}

// ---------------------------------------------------------------- parent

fn run_child(what: &str, extra: &[String]) -> Value {
    eprintln!("wallet-bench: running {what}");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--only", what])
        .args(extra)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the {what} benchmark failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The populated ledger dir for these parameters (populated if needed) and
/// the populate summary.
fn ledger(txs: u64, block_txs: u64, pay_every: u64) -> (PathBuf, Value, bool) {
    let dir = target_dir()
        .join("bench-ledger-1m")
        .join(format!("v1-txs{txs}-block{block_txs}-every{pay_every}"));
    let (populated, cached) = notch_tests::bench::ledger(
        &bin("notch-gateway-populate"),
        &dir,
        txs,
        block_txs,
        pay_every,
    );
    (dir, populated, cached)
}

fn mib(kib: &Value) -> String {
    format!("{:.0} MiB", kib.as_f64().unwrap_or(0.0) / 1024.0)
}

fn f(v: &Value, digits: usize) -> String {
    format!("{:.*}", digits, v.as_f64().unwrap_or(f64::NAN))
}

fn grouped(x: f64) -> String {
    let s = format!("{x:.0}");
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn parent() {
    let txs = arg("--txs", 1_000_000);
    let block_txs = arg("--block-txs", 2000);
    let pay_every = arg("--pay-every", 1000);
    let recipients = arg("--recipients", 500);
    let samples = arg("--samples", 30);
    let out_path = arg_str("--out");
    let total = Instant::now();
    let load_start = loadavg();

    let (dir, populated, cached) = ledger(txs, block_txs, pay_every);
    let paid = populated["paid_to_listed_keys"].as_u64().unwrap();
    let gateway = start_gateway(&dir);
    let url = vec!["--gateway".to_owned(), gateway.url.clone()];
    let paid_arg = vec!["--expected-paid".to_owned(), paid.to_string()];
    // Raw first (it warms the gateway's caches), the wallet, then raw again:
    // the ratio uses the faster raw run.
    let only_restore = arg_str("--figures").as_deref() == Some("restore");
    let merkle1 = run_child("raw-merkle", &url);
    let raw1 = run_child("raw", &url);
    let restore = run_child("restore", &[url.clone(), paid_arg].concat());
    let merkle2 = run_child("raw-merkle", &url);
    let raw2 = run_child("raw", &url);
    let gateway_peak = status_kib(&gateway.pid().to_string(), "VmHWM:");
    drop(gateway);
    let (push, batch) = if only_restore {
        (Value::Null, Value::Null)
    } else {
        (
            run_child("push", &["--samples".to_owned(), samples.to_string()]),
            run_child(
                "batch",
                &["--recipients".to_owned(), recipients.to_string()],
            ),
        )
    };
    let merkle_secs = merkle1["secs"]
        .as_f64()
        .unwrap()
        .min(merkle2["secs"].as_f64().unwrap());

    let raw_secs = raw1["secs"]
        .as_f64()
        .unwrap()
        .min(raw2["secs"].as_f64().unwrap());
    let wallet_secs = restore["secs"].as_f64().unwrap();
    let ledger_txs = raw1["txs"].as_u64().unwrap();
    let result = json!({
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "ledger": { "dir": dir.display().to_string(), "cached": cached, "populate": populated },
        "restore_and_sync": {
            "wallet": restore,
            "raw_first": raw1,
            "raw_second": raw2,
            "ratio_wallet_over_raw": wallet_secs / raw_secs.max(1e-9),
            "raw_merkle_first": merkle1,
            "raw_merkle_second": merkle2,
            "ratio_wallet_over_raw_merkle": wallet_secs / merkle_secs.max(1e-9),
            "wallet_tx_per_sec": ledger_txs as f64 / wallet_secs.max(1e-9),
            "raw_tx_per_sec": ledger_txs as f64 / raw_secs.max(1e-9),
            "gateway_peak_rss_kib": gateway_peak,
        },
        "push": push,
        "batch": batch,
        "total_secs": total.elapsed().as_secs_f64(),
        "date": utc_now(),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    if let Some(path) = out_path {
        let text = if only_restore {
            markdown_restore(&result)
        } else {
            markdown(&result)
        };
        std::fs::write(&path, text).unwrap();
        eprintln!("wallet-bench: wrote {path}");
    }
}

use notch_tests::bench::utc_now;

/// The 1-minute load average (the machine is shared).
fn loadavg() -> String {
    notch_tests::bench::loadavg(1)
}

/// Figure 1 alone (`--figures restore`), with the light client's raw limit.
fn markdown_restore(r: &Value) -> String {
    let s = &r["restore_and_sync"];
    let w = &s["wallet"];
    let row = |name: &str, v: &Value| {
        format!(
            "| {name} | {} s | {} | {} |\n",
            f(&v["secs"], 2),
            grouped(v["tx_per_sec"].as_f64().unwrap_or(0.0)),
            mib(&v["peak_rss_kib"])
        )
    };
    format!(
        "## 1. Restore-and-sync of a 1,000,000-transaction sandbox ledger\n\n\
Date: {date}. Profile: {profile}. 1-minute load average {l0} at the start, {l1} at the end.\n\
Reproduce: `cargo run --release -p notch-tests --bin notch-wallet-bench -- --figures restore --out FILE`.\n\n\
| | time | tx/s | peak memory (VmHWM) |\n|---|---:|---:|---:|\n\
| wallet: restore from phrase, then `sync()` to the tip ({found} payments found) | {ws} s | {wrate} | {wmem} |\n\
{m1}{m2}{r1}{r2}\
| gateway process serving all | | | {gw} |\n\n\
**Ratio wallet / raw merkle limit (faster run): {ratio_m}×**; wallet / raw full verification (faster run): {ratio}×.\n",
        date = r["date"].as_str().unwrap_or(""),
        profile = r["profile"].as_str().unwrap_or(""),
        l0 = r["loadavg_start"].as_str().unwrap_or(""),
        l1 = r["loadavg_end"].as_str().unwrap_or(""),
        found = w["payments_found"],
        ws = f(&w["secs"], 2),
        wrate = grouped(s["wallet_tx_per_sec"].as_f64().unwrap_or(0.0)),
        wmem = mib(&w["peak_rss_kib"]),
        m1 = row(
            "raw limit, 1st run: fetch the same block bytes (binary, batches of 100), decode, hash into merkle roots",
            &s["raw_merkle_first"]
        ),
        m2 = row(
            "raw limit, 2nd run (after the wallet)",
            &s["raw_merkle_second"]
        ),
        r1 = row(
            "raw full verification, 1st run: JSON, hex-decode, decode, `verify_header` + link + `verify_block`",
            &s["raw_first"]
        ),
        r2 = row("raw full verification, 2nd run", &s["raw_second"]),
        gw = mib(&s["gateway_peak_rss_kib"]),
        ratio_m = f(&s["ratio_wallet_over_raw_merkle"], 2),
        ratio = f(&s["ratio_wallet_over_raw"], 2),
    )
}

fn markdown(r: &Value) -> String {
    let s = &r["restore_and_sync"];
    let w = &s["wallet"];
    let (r1, r2) = (&s["raw_first"], &s["raw_second"]);
    let p = &r["ledger"]["populate"];
    let push = &r["push"];
    let b = &r["batch"];
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let date = r["date"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(utc_now);
    let load = match (r["loadavg_start"].as_str(), r["loadavg_end"].as_str()) {
        (Some(a), Some(b)) => format!(" 1-minute load average {a} at the start, {b} at the end."),
        _ => String::new(),
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let txs = p["txs"].as_f64().unwrap_or(0.0);
    format!(
        "# Wallet benchmarks\n\n\
Date: {date}. Machine: {nproc} CPUs ({cpu}), shared with other builds.{load} Profile: {profile}.\n\n\
Reproduce every figure below (after `cargo build --release -p notch-gateway --bins`):\n\n\
```\ncargo run --release -p notch-tests --bin notch-wallet-bench -- --out bench/results/wallet.md\n```\n\n\
(`cargo xtask bench` runs exactly this after the gateway benchmark.) Defaults: `--txs 1000000 --block-txs 2000 --pay-every 1000 --recipients 500 --samples 30`.\n\
Each figure runs in its own child process (`notch-wallet-bench --only raw|restore|push|batch`), so the peak memory (VmHWM) of each is its own;\n\
the gateway is a separate `notch-gateway` process (its VmHWM is reported apart). Timings are medians only where said; no test asserts them.\n\n\
## 1. Restore-and-sync of a {txs_fmt}-transaction sandbox ledger\n\n\
Ledger: {blocks} blocks of {block_txs} transactions ({txs_fmt} transactions, {mb:.0} MB of blocks), written by\n\
`notch-gateway-populate` straight into a sandbox data dir and served by the real `notch-gateway --sandbox`.\n\
Every transaction is a signed faucet-style mint (NOTE, EURT, USDT in turn) that passes `verify_block`; one in {pay_every} ({paid} in all)\n\
pays one of the first 20 receive addresses of a wallet restored from a fixed phrase, the others pay 50,000 random keys.\n\
Populate time (not part of any figure): {pop_secs} s ({pop_rate} tx/s; SQLite apply {pop_sql} s){cached}.\n\n\
| | time | tx/s | peak memory (VmHWM) |\n|---|---:|---:|---:|\n\
| wallet: restore from phrase, then `sync()` to the tip (headers, blocks, verify, store, {found} payments found) | {ws} s | {wrate} | {wmem} |\n\
| raw, 1st run: fetch the same blocks (batches 10, 20, 40, 80, 100, ...), hex-decode, decode, `verify_header` + link + `verify_block` | {r1s} s | {r1rate} | {r1mem} |\n\
| raw, 2nd run (after the wallet) | {r2s} s | {r2rate} | {r2mem} |\n\
| gateway process serving all three | | | {gwmem} |\n\n\
**Ratio wallet / raw (faster raw run): {ratio}×.** (Restore itself, before the sync: {restore_ms} ms.)\n\n\
## 2. New block -> balance updated, through the push stream\n\n\
A faucet payment to the wallet is pooled, then `POST /v1/sandbox/mine` is timed until the wallet (running `watch()`, i.e. the\n\
`/v1/stream` WebSocket) emits `TxStateChanged {{ to: \"confirmed\" }}` for it; {samples} samples.\n\n\
| median | p95 | min | max | peak memory (wallet process) | gateway |\n|---:|---:|---:|---:|---:|---:|\n\
| {pmed} ms | {p95} ms | {pmin} ms | {pmax} ms | {pmem} | {pgw} |\n\n\
## 3. Batch of {recipients} recipients\n\n\
One transaction of {outputs} outputs ({size} bytes, {sigs} signature(s)).\n\n\
| step | time |\n|---|---:|\n\
| wallet `prepare_send` (coin selection, fee, build) | {prep} ms |\n\
| wallet `confirm_send` (sign, validate, record, submit to the gateway over loopback) | {conf} ms |\n\
| raw: Ed25519 signing of the same number of signatures ({sigs}) | {rsign} ms ({rper} µs per signature) |\n\
| raw: txid + sign of an equivalent {rsize}-byte transaction | {rts} ms |\n\
| raw: `POST /v1/tx` of that transaction (gateway validation + pool commit, fsync) | {rsub} ms |\n\
| peak memory (wallet process) | {bmem} |\n\n\
Whole run: {total} s.\n\n\
## Notes\n\n\
- Both sides of figure 1 do the same verification per transaction (`verify_block` runs the stateless rules, which verify\n\
  one issuer Ed25519 signature and decompress one owner key per transaction); the wallet adds the header pass, address\n\
  matching, and storing its blocks' headers and its own outputs (one SQLite transaction per batch). Both are single-threaded\n\
  on the client side; the gateway serves from the same SQLite mirror both times.\n\
- The populated transactions are mints (no inputs), the cheapest valid shape to produce in bulk; a ledger of transfers would\n\
  make each transaction larger (inputs, input signatures) but add no signature check on either side: neither\n\
  `verify_block` nor the wallet's sync verifies input signatures (that needs the spent outputs; the gateway checked them).\n\
- Figure 3's batch spends one coin, so it carries one signature: signing is a negligible part of `confirm_send`; the time\n\
  is in validating, recording and submitting a {size}-byte transaction. The raw submit row is the gateway's own share.\n",
        profile = r["profile"].as_str().unwrap_or("?"),
        txs_fmt = grouped(txs),
        blocks = p["blocks"],
        block_txs = p["block_txs"],
        mb = p["block_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        pay_every = p["pay_every"],
        paid = p["paid_to_listed_keys"],
        pop_secs = f(&p["secs"], 1),
        pop_rate = grouped(txs / p["secs"].as_f64().unwrap_or(1.0)),
        pop_sql = f(&p["sqlite_apply_secs"], 1),
        cached = if r["ledger"]["cached"].as_bool() == Some(true) {
            " — measured when the cached ledger was built; this run reused it"
        } else {
            ", this run"
        },
        found = w["payments_found"],
        ws = f(&w["secs"], 1),
        wrate = grouped(s["wallet_tx_per_sec"].as_f64().unwrap_or(0.0)),
        wmem = mib(&w["peak_rss_kib"]),
        r1s = f(&r1["secs"], 1),
        r1rate = grouped(r1["tx_per_sec"].as_f64().unwrap_or(0.0)),
        r1mem = mib(&r1["peak_rss_kib"]),
        r2s = f(&r2["secs"], 1),
        r2rate = grouped(r2["tx_per_sec"].as_f64().unwrap_or(0.0)),
        r2mem = mib(&r2["peak_rss_kib"]),
        gwmem = mib(&s["gateway_peak_rss_kib"]),
        ratio = f(&s["ratio_wallet_over_raw"], 2),
        restore_ms = f(&(w["restore_secs"].as_f64().unwrap_or(0.0) * 1e3).into(), 0),
        samples = push["samples"],
        pmed = f(&push["median_ms"], 1),
        p95 = f(&push["p95_ms"], 1),
        pmin = f(&push["min_ms"], 1),
        pmax = f(&push["max_ms"], 1),
        pmem = mib(&push["peak_rss_kib"]),
        pgw = mib(&push["gateway_peak_rss_kib"]),
        recipients = b["recipients"],
        outputs = b["outputs"],
        size = b["size_bytes"],
        sigs = b["signatures"],
        prep = f(&b["prepare_ms"], 1),
        conf = f(&b["sign_record_submit_ms"], 1),
        rsign = f(&b["raw_sign_same_count_ms"], 3),
        rper = f(&b["raw_sign_us_per_signature"], 1),
        rsize = b["raw_size_bytes"],
        rts = f(&b["raw_txid_and_sign_ms"], 3),
        rsub = f(&b["raw_submit_equivalent_ms"], 1),
        bmem = mib(&b["peak_rss_kib"]),
        total = f(&r["total_secs"], 0),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Some(path) = arg_str("--markdown-from") {
        // Rewrites the report from a saved JSON result (no measurement).
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        print!("{}", markdown(&r));
        return;
    }
    let out = match arg_str("--only").as_deref() {
        None => {
            tokio::task::block_in_place(parent);
            return;
        }
        Some("raw") => child_raw(&arg_str("--gateway").unwrap()).await,
        Some("raw-merkle") => child_raw_merkle(&arg_str("--gateway").unwrap()).await,
        Some("restore") => {
            child_restore(&arg_str("--gateway").unwrap(), arg("--expected-paid", 0)).await
        }
        Some("push") => child_push(arg("--samples", 30) as usize).await,
        Some("batch") => child_batch(arg("--recipients", 500)).await,
        Some(other) => panic!("--only {other}: expected raw, raw-merkle, restore, push or batch"),
    };
    println!("{}", serde_json::to_string(&out).unwrap());
}
