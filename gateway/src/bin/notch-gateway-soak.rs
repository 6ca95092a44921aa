//! `notch-gateway-soak`: runs the real `notch-gateway` binary (sandbox, blocks every second,
//! per-client limits on for loopback) as a child process and drives it for `--minutes` with
//! valid submissions (one per request and in batches), block and header syncs (JSON and
//! binary, verified), and hostile clients (garbage, oversized bodies, bursts beyond the rate
//! limit, slowloris connections, readers that never read). It samples the gateway's resident
//! memory, kills it with SIGKILL half way, restarts it on the same data directory, checks
//! that every transaction answered 2xx before the kill is still known (in the chain or the
//! pool), does the same check for the whole run at the end, verifies the chain, stops the
//! gateway with SIGTERM, and writes a markdown report. It exits non-zero when a check fails.
//!
//! `cargo run --release -p notch-gateway --bin notch-gateway-soak -- --minutes 10 --out bench/results/gateway-soak.md`

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use notch_protocol::api::*;
use notch_protocol::ed25519_dalek::SigningKey;
use notch_protocol::wire::BlocksAnswer;
use notch_protocol::{
    AssetId, Block, BlockHeader, Network, OutPoint, Output, PublicKey, Transaction, TxId,
    public_key, verify_block, verify_header_chain,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser, Debug, Clone)]
#[command(about = "Soak test of notch-gateway: load, hostile clients, SIGKILL and restart")]
struct Args {
    /// How long to drive load, in minutes (fractions allowed, e.g. 0.2 for a smoke run).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Where to write the markdown report.
    #[arg(long, default_value = "bench/results/gateway-soak.md")]
    out: PathBuf,
    /// The gateway binary; default: `notch-gateway` next to this binary.
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// Clients submitting one transaction per request.
    #[arg(long, default_value_t = 6)]
    submitters: usize,
    /// Clients submitting batches (`POST /v1/txs`).
    #[arg(long, default_value_t = 2)]
    batchers: usize,
    /// Transactions per batch.
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Clients syncing blocks and headers.
    #[arg(long, default_value_t = 3)]
    syncers: usize,
    /// When to kill the gateway, as a fraction of the run.
    #[arg(long, default_value_t = 0.5)]
    kill_at: f64,
}

/// What happened, by kind of request and outcome ("200", "429 rate_limited", "transport").
#[derive(Default)]
struct Stats {
    counts: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// Transactions answered 2xx (single or in a batch).
    accepted: Mutex<HashSet<TxId>>,
    accepted_single: AtomicU64,
    accepted_batch: AtomicU64,
    /// What must not happen (5xx other than 503, an error that is not JSON, a bad chain).
    unexpected: Mutex<Vec<String>>,
    slowloris_closed: AtomicU64,
    deaf_closed: AtomicU64,
}

impl Stats {
    fn count(&self, kind: &'static str, outcome: String) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *c.entry((kind, outcome)).or_insert(0) += 1;
    }
    fn unexpected(&self, what: String) {
        eprintln!("UNEXPECTED: {what}");
        let mut u = self.unexpected.lock().unwrap_or_else(|e| e.into_inner());
        // Keep the report readable: the first 50 say enough.
        if u.len() < 50 {
            u.push(what);
        }
    }
    fn accept(&self, txid: TxId, batch: bool) {
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(txid);
        let n = if batch {
            &self.accepted_batch
        } else {
            &self.accepted_single
        };
        n.fetch_add(1, Ordering::Relaxed);
    }
}

/// An answer: status and body (the error code is counted in `Stats`).
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// Sends a request and classifies the answer; a 5xx other than 503 or an error body that
/// is not an `ApiError` is recorded as unexpected.
async fn call(
    stats: &Stats,
    kind: &'static str,
    req: reqwest::RequestBuilder,
) -> Result<Answer, reqwest::Error> {
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            stats.count(kind, "transport".into());
            return Err(e);
        }
    };
    let status = resp.status().as_u16();
    let json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = match resp.bytes().await {
        Ok(b) => b.to_vec(),
        Err(e) => {
            stats.count(kind, "transport (body)".into());
            return Err(e);
        }
    };
    let mut code = None;
    if status >= 400 {
        match serde_json::from_slice::<ApiError>(&body) {
            Ok(e) if json => code = Some(e.code),
            _ => stats.unexpected(format!(
                "{kind}: HTTP {status} without an ApiError: {:?}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )),
        }
        if status >= 500 && status != 503 {
            stats.unexpected(format!("{kind}: HTTP {status} {code:?}"));
        }
    }
    stats.count(
        kind,
        match &code {
            Some(c) => format!("{status} {c}"),
            None => status.to_string(),
        },
    );
    Ok(Answer { status, body })
}

fn client(local: IpAddr) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .local_address(local)
        .timeout(Duration::from_secs(30))
        .build()?)
}

fn ip(text: String) -> IpAddr {
    text.parse()
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}

/// The gateway child process.
struct Gateway {
    child: Child,
    started_in: Duration,
}

impl Gateway {
    fn start(bin: &Path, data: &Path, listen: SocketAddr, log: &Path) -> anyhow::Result<Gateway> {
        let started = Instant::now();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut child = Command::new(bin)
            .args(["--sandbox", "--block-interval", "1", "--limit-loopback"])
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.contains("listening on") => Ok(Gateway {
                child,
                started_in: started.elapsed(),
            }),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the gateway did not start: {other:?}")
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Whatever ends the run (a failed check, a panic), the gateway does not outlive it.
impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Shared by the load tasks.
struct Ctx {
    base: String,
    stats: Stats,
    stop: AtomicBool,
    native: AssetId,
    min_fee: u64,
    sink: PublicKey,
}

/// A chain of payments: each spends the previous one's change.
struct Lane {
    key: SigningKey,
    coin: OutPoint,
    amount: u64,
    nonce: u64,
}

impl Lane {
    fn next_tx(&self, ctx: &Ctx) -> Option<Transaction> {
        let pay = 1_000;
        let change = self.amount.checked_sub(pay + ctx.min_fee)?;
        let mut tx = Transaction::new(Network::Sandbox);
        tx.inputs = vec![self.coin];
        tx.outputs = vec![
            Output {
                asset: ctx.native,
                amount: pay,
                owner: ctx.sink,
            },
            Output {
                asset: ctx.native,
                amount: change,
                owner: public_key(&self.key),
            },
        ];
        tx.fee = ctx.min_fee;
        tx.nonce = self.nonce;
        tx.sign(&[&self.key]).ok()?;
        Some(tx)
    }

    fn advance(&mut self, tx: &Transaction) {
        self.coin = OutPoint {
            txid: tx.txid(),
            index: 1,
        };
        self.amount = tx.outputs[1].amount;
        self.nonce += 1;
    }
}

fn retry_after(a: &Answer) -> Duration {
    match a.status {
        429 | 503 => Duration::from_millis(1000),
        _ => Duration::from_millis(200),
    }
}

/// A new lane: a faucet coin for a fresh key (retried until the gateway answers).
async fn new_lane(ctx: &Ctx, c: &reqwest::Client, id: u64) -> Option<Lane> {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&id.to_le_bytes());
    let key = SigningKey::from_bytes(&seed);
    let amount = 1_000_000_000_000u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        let req = c
            .post(format!("{}/v1/sandbox/faucet", ctx.base))
            .json(&FaucetRequest {
                address: notch_protocol::Address::new(Network::Sandbox, public_key(&key)).encode(),
                asset: "NOTE".into(),
                amount,
            });
        match call(&ctx.stats, "faucet", req).await {
            Ok(a) if a.status == 200 => {
                let f: FaucetResponse = serde_json::from_slice(&a.body).ok()?;
                let txid = TxId::from_hex(&f.txid).ok()?;
                return Some(Lane {
                    key,
                    coin: OutPoint { txid, index: 0 },
                    amount,
                    nonce: 0,
                });
            }
            Ok(a) => tokio::time::sleep(retry_after(&a)).await,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    None
}

/// One transaction per request; a refusal that passes with time is retried with the same
/// transaction (idempotent), any other starts a new lane.
async fn submitter(ctx: Arc<Ctx>, n: usize) -> anyhow::Result<()> {
    let c = client(ip(format!("127.0.1.{}", n + 1)))?;
    let mut next_id = (n as u64) << 32;
    let Some(mut lane) = new_lane(&ctx, &c, next_id).await else {
        return Ok(());
    };
    while !ctx.stop.load(Ordering::Relaxed) {
        let Some(tx) = lane.next_tx(&ctx) else {
            next_id += 1;
            match new_lane(&ctx, &c, next_id).await {
                Some(l) => lane = l,
                None => return Ok(()),
            }
            continue;
        };
        let req = c
            .post(format!("{}/v1/tx", ctx.base))
            .json(&SubmitTxRequest {
                tx: hex::encode(tx.encode()),
            });
        match call(&ctx.stats, "submit", req).await {
            Ok(a) if a.status == 200 => {
                ctx.stats.accept(tx.txid(), false);
                lane.advance(&tx);
            }
            Ok(a) if matches!(a.status, 408 | 429 | 503) => {
                tokio::time::sleep(retry_after(&a)).await;
            }
            Ok(_) => {
                next_id += 1;
                match new_lane(&ctx, &c, next_id).await {
                    Some(l) => lane = l,
                    None => return Ok(()),
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    Ok(())
}

/// Batches of one transaction per lane.
async fn batcher(ctx: Arc<Ctx>, n: usize, size: usize) -> anyhow::Result<()> {
    let c = client(ip(format!("127.0.2.{}", n + 1)))?;
    let mut next_id = (1u64 << 40) + ((n as u64) << 32);
    let mut lanes = Vec::with_capacity(size);
    for _ in 0..size {
        next_id += 1;
        match new_lane(&ctx, &c, next_id).await {
            Some(l) => lanes.push(l),
            None => return Ok(()),
        }
    }
    while !ctx.stop.load(Ordering::Relaxed) {
        let mut txs = Vec::with_capacity(lanes.len());
        for lane in lanes.iter_mut() {
            if let Some(tx) = lane.next_tx(&ctx) {
                txs.push(tx);
                continue;
            }
            // The lane's coin is spent down: a new one.
            next_id += 1;
            match new_lane(&ctx, &c, next_id).await {
                Some(l) => *lane = l,
                None => return Ok(()),
            }
            txs.push(lane.next_tx(&ctx).context("a new lane cannot pay")?);
        }
        let req = c
            .post(format!("{}/v1/txs", ctx.base))
            .json(&SubmitBatchRequest {
                txs: txs.iter().map(|t| hex::encode(t.encode())).collect(),
            });
        match call(&ctx.stats, "batch", req).await {
            Ok(a) if a.status == 200 => {
                let r: SubmitBatchResponse =
                    serde_json::from_slice(&a.body).context("batch answer")?;
                if r.results.len() != txs.len() {
                    ctx.stats.unexpected(format!(
                        "batch: {} results for {} transactions",
                        r.results.len(),
                        txs.len()
                    ));
                    continue;
                }
                let mut wait = false;
                for (i, (res, tx)) in r.results.iter().zip(&txs).enumerate() {
                    match res {
                        SubmitBatchResult::Ok(_) => {
                            ctx.stats.accept(tx.txid(), true);
                            lanes[i].advance(tx);
                        }
                        SubmitBatchResult::Err { error, .. } => {
                            ctx.stats.count("batch entry", error.code.clone());
                            let passes =
                                [codes::RATE_LIMITED, codes::POOL_FULL, codes::UNAVAILABLE];
                            if passes.contains(&error.code.as_str()) {
                                // This client holds its pool share, or the pool is full: the
                                // same transaction again a little later.
                                wait = true;
                            } else {
                                next_id += 1;
                                if let Some(l) = new_lane(&ctx, &c, next_id).await {
                                    lanes[i] = l;
                                }
                            }
                        }
                    }
                }
                if wait {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            Ok(a) => tokio::time::sleep(retry_after(&a)).await,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    Ok(())
}

/// Follows the chain by height (binary and JSON in turn) and by locator (headers), checking
/// links, signatures and bodies.
async fn syncer(ctx: Arc<Ctx>, n: usize, authority: PublicKey) -> anyhow::Result<()> {
    let c = client(ip(format!("127.0.3.{}", n + 1)))?;
    let mut headers: Vec<BlockHeader> = Vec::new();
    let mut round = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        round += 1;
        let from = headers.len() as u64;
        let binary = round.is_multiple_of(2);
        let mut req = c.get(format!("{}/v1/blocks?from={from}&limit=100", ctx.base));
        if binary {
            req = req.header("accept", "application/octet-stream");
        }
        let kind = if binary {
            "blocks (binary)"
        } else {
            "blocks (json)"
        };
        let answer = match call(&ctx.stats, kind, req).await {
            Ok(a) if a.status == 200 => a,
            Ok(a) => {
                tokio::time::sleep(retry_after(&a)).await;
                continue;
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let blocks = if binary {
            BlocksAnswer::decode(&answer.body)
                .map(|a| (a.blocks, a.more))
                .ok()
        } else {
            serde_json::from_slice::<BlocksResponse>(&answer.body)
                .ok()
                .and_then(|r| BlocksAnswer::try_from(&r).ok())
                .map(|a| (a.blocks, a.more))
        };
        let Some((blocks, more)) = blocks else {
            ctx.stats
                .unexpected(format!("{kind}: an answer that does not decode"));
            continue;
        };
        let mut new = Vec::new();
        for bytes in &blocks {
            match Block::decode(bytes) {
                Ok(b) if verify_block(&b).is_ok() => new.push(b.header),
                _ => ctx
                    .stats
                    .unexpected(format!("{kind}: a block that does not verify")),
            }
        }
        if !new.is_empty() {
            if verify_header_chain(headers.last(), &new, &authority).is_err() {
                // No reorgs in this soak: a chain that does not link is wrong.
                ctx.stats
                    .unexpected(format!("{kind}: headers from {from} do not link"));
                headers.clear();
                continue;
            }
            headers.extend(new);
        }
        if round.is_multiple_of(10) {
            // The locator way, as a wallet asks.
            let tip = headers.len() as u64;
            let locator: Vec<String> = notch_protocol::locator_heights(tip.saturating_sub(1))
                .into_iter()
                .filter_map(|h| headers.get(h as usize).map(|x| x.id().to_hex()))
                .collect();
            let req = c
                .post(format!("{}/v1/headers", ctx.base))
                .json(&HeadersRequest {
                    locator,
                    limit: None,
                });
            if let Ok(a) = call(&ctx.stats, "headers", req).await
                && a.status == 200
                && let Ok(r) = serde_json::from_slice::<HeadersResponse>(&a.body)
                && r.fork_point.as_ref().map(|f| f.height + 1) != Some(tip).filter(|t| *t > 0)
            {
                ctx.stats.unexpected(format!(
                    "headers: fork point {:?} for a chain of {tip}",
                    r.fork_point
                ));
            }
            let req = c.get(format!("{}/v1/mempool?since=0&limit=1000", ctx.base));
            let _ = call(&ctx.stats, "mempool", req).await;
        }
        if !more {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    Ok(())
}

/// Garbage, oversized bodies and bursts beyond the rate limit.
async fn rude(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    let c = client(ip("127.0.4.1".into()))?;
    let bodies: [&[u8]; 5] = [
        b"{not json",
        b"\x00\x01\x02\xff",
        br#"{"tx": 5}"#,
        br#"{"locator": ["zz"], "limit": 0}"#,
        br#"{"txs": []}"#,
    ];
    let paths = [
        "/v1/tx",
        "/v1/txs",
        "/v1/headers",
        "/v1/blocks",
        "/v1/sandbox/faucet",
        "/v1/sandbox/reorg",
        "/v1/nope",
    ];
    let mut round = 0usize;
    while !ctx.stop.load(Ordering::Relaxed) {
        round += 1;
        let path = paths[round % paths.len()];
        let body = bodies[round % bodies.len()].to_vec();
        let req = c
            .post(format!("{}{path}", ctx.base))
            .header("content-type", "application/json")
            .body(body);
        let _ = call(&ctx.stats, "garbage", req).await;
        let _ = call(
            &ctx.stats,
            "garbage",
            c.get(format!("{}/v1/tx/{}", ctx.base, "g".repeat(round % 300))),
        )
        .await;
        if round.is_multiple_of(20) {
            // A client of its own: the gateway closes a connection whose body it refused.
            let own = client(ip("127.0.4.2".into()))?;
            let big = format!("{{\"tx\": \"{}\"}}", "00".repeat(200_000));
            let req = own
                .post(format!("{}/v1/tx", ctx.base))
                .header("content-type", "application/json")
                .body(big);
            let _ = call(&ctx.stats, "oversize", req).await;
        }
        if round.is_multiple_of(100) {
            // A burst well beyond the rate limit (100/s, bursts of 200) from one address.
            let burst = client(ip("127.0.4.3".into()))?;
            for _ in 0..300 {
                let _ = call(
                    &ctx.stats,
                    "burst",
                    burst.get(format!("{}/v1/health", ctx.base)),
                )
                .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Connects from `local` to the gateway.
async fn connect(ctx: &Ctx, local: &str) -> Option<tokio::net::TcpStream> {
    let addr: SocketAddr = ctx.base.trim_start_matches("http://").parse().ok()?;
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(ip(local.into()), 0)).ok()?;
    let _ = socket.set_recv_buffer_size(4096);
    socket.connect(addr).await.ok()
}

/// Waits until the gateway closes `s` (or the run ends); true when it closed.
async fn closed_by_gateway(ctx: &Ctx, s: &mut tokio::net::TcpStream) -> bool {
    let mut buf = vec![0u8; 65536];
    loop {
        if ctx.stop.load(Ordering::Relaxed) {
            return false;
        }
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) | Err(_) => {}
        }
    }
}

/// A slowloris: a header a byte every 2 s, on a new connection each time the gateway closes
/// the last one.
async fn slowloris(ctx: Arc<Ctx>, n: usize) -> anyhow::Result<()> {
    let local = format!("127.0.5.{}", n + 1);
    while !ctx.stop.load(Ordering::Relaxed) {
        let Some(s) = connect(&ctx, &local).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let (mut rd, mut wr) = s.into_split();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            tokio::spawn(async move {
                for b in b"GET /v1/health HTTP/1.1\r\nHost: soak\r\nX-Slow: "
                    .iter()
                    .cycle()
                {
                    if stop.load(Ordering::Relaxed) || wr.write_all(&[*b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            })
        };
        let mut buf = [0u8; 1024];
        loop {
            if ctx.stop.load(Ordering::Relaxed) {
                break;
            }
            match tokio::time::timeout(Duration::from_secs(1), rd.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    ctx.stats.slowloris_closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Ok(_)) => {}
                Err(_) => {}
            }
        }
        stop.store(true, Ordering::Relaxed);
        let _ = writer.await;
    }
    Ok(())
}

/// A reader that never reads: pipelines headers requests on a small receive window, waits
/// for the gateway to give up on it, then does it again.
async fn deaf(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    let req = b"POST /v1/headers HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"locator\":[]}";
    while !ctx.stop.load(Ordering::Relaxed) {
        let Some(mut s) = connect(&ctx, "127.0.6.1").await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let mut ok = true;
        for _ in 0..40 {
            if s.write_all(req).await.is_err() {
                ok = false;
                break;
            }
        }
        // Hold without reading, then see whether the gateway closed it.
        for _ in 0..45 {
            if ctx.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if ok && closed_by_gateway(&ctx, &mut s).await {
            ctx.stats.deaf_closed.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// GET `url` until it answers 200, waiting out refusals that pass with time (the checker is
/// a client like the others, within the rate limit); gives up after `PATIENCE`.
async fn get_ok(c: &reqwest::Client, url: &str, binary: bool) -> anyhow::Result<Vec<u8>> {
    const PATIENCE: Duration = Duration::from_secs(120);
    let started = Instant::now();
    loop {
        let mut req = c.get(url);
        if binary {
            req = req.header("accept", "application/octet-stream");
        }
        let last = match req.send().await {
            Ok(r) if r.status().is_success() => return Ok(r.bytes().await?.to_vec()),
            Ok(r) if matches!(r.status().as_u16(), 408 | 429 | 503) => r.status().to_string(),
            Ok(r) => bail!("{url}: HTTP {}", r.status()),
            Err(e) => e.to_string(),
        };
        if started.elapsed() > PATIENCE {
            bail!("{url}: no answer within {PATIENCE:?} (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every txid in the pool and in the chain, as the gateway serves them now. The pool is read
/// first: a transaction moves from the pool into a block meanwhile, never back (this soak
/// makes no reorgs), so none falls between the two reads. The pool part is `None` when the
/// mempool listing cannot be read to its end (recorded as unexpected: a wallet could not
/// either); the caller then asks the status of what is not in the chain.
async fn known_txids(
    ctx: &Ctx,
    c: &reqwest::Client,
) -> anyhow::Result<(Option<HashSet<TxId>>, HashSet<TxId>, u64)> {
    let mut pool: Option<HashSet<TxId>> = Some(HashSet::new());
    let mut since = 0u64;
    // Bounded: a pool log of more than 100 million changes is a failure in itself.
    for page in 0..100_000 {
        let url = format!("{}/v1/mempool?since={since}&limit=1000", ctx.base);
        let d: MempoolDelta = serde_json::from_slice(&get_ok(c, &url, false).await?)?;
        if d.reset && page > 0 {
            // A reset is an answer to a `since` older than what the gateway keeps; one that
            // follows the gateway's own `seq` means the listing starts over and never ends.
            ctx.stats.unexpected(format!(
                "GET /v1/mempool answered reset again at page {page} (since={since}): the listing starts over and never completes"
            ));
            pool = None;
            break;
        }
        if let Some(p) = pool.as_mut() {
            if d.reset {
                p.clear();
            }
            for ch in d.changes {
                let txid = TxId::from_hex(&ch.txid)?;
                match ch.kind {
                    MempoolChangeKind::Added => p.insert(txid),
                    MempoolChangeKind::Removed => p.remove(&txid),
                };
            }
        }
        since = d.seq;
        if !d.more {
            break;
        }
    }
    let mut chain = HashSet::new();
    let mut from = 0u64;
    loop {
        let url = format!("{}/v1/blocks?from={from}&limit=100", ctx.base);
        let a = BlocksAnswer::decode(&get_ok(c, &url, true).await?)?;
        for bytes in &a.blocks {
            let b = Block::decode(bytes)?;
            from = b.header.height + 1;
            chain.extend(b.txs.iter().map(Transaction::txid));
        }
        if !a.more || a.blocks.is_empty() {
            break;
        }
    }
    Ok((pool, chain, from))
}

/// What became of transactions the gateway answered 2xx for.
#[derive(Default)]
struct Fates {
    /// In the chain or the pool.
    live: usize,
    /// Known with another status (e.g. dropped: the reason and how many).
    other: BTreeMap<String, usize>,
    /// Not known at all (404) or no answer: lost.
    lost: Vec<TxId>,
}

/// The status of one transaction, waiting out refusals that pass with time; `None` when the
/// gateway does not know it (or never answers).
async fn status_of(ctx: &Ctx, c: &reqwest::Client, txid: TxId) -> Option<TxStatus> {
    for _ in 0..60 {
        let r = c
            .get(format!("{}/v1/tx/{txid}/status", ctx.base))
            .send()
            .await
            .ok()?;
        match r.status().as_u16() {
            200 => return r.json::<TxStatusResponse>().await.ok().map(|s| s.status),
            408 | 429 | 503 => tokio::time::sleep(Duration::from_secs(1)).await,
            _ => return None,
        }
    }
    None
}

/// Checks every txid of `must` against the chain and the pool, and asks the status of the
/// others (from many client addresses at once: the checker, too, is within the rate limit);
/// how many blocks there are.
async fn check_known(ctx: &Arc<Ctx>, must: &HashSet<TxId>) -> anyhow::Result<(Fates, u64)> {
    let c = client(ip("127.0.7.2".into()))?;
    let (pool, chain, blocks) = known_txids(ctx, &c).await?;
    let mut fates = Fates::default();
    let mut ask = Vec::new();
    for txid in must {
        if chain.contains(txid) || pool.as_ref().is_some_and(|p| p.contains(txid)) {
            fates.live += 1;
        } else {
            ask.push(*txid);
        }
    }
    const ASKERS: usize = 32;
    let ask = Arc::new(ask);
    let mut tasks = Vec::new();
    for n in 0..ASKERS {
        let (ctx, ask) = (ctx.clone(), ask.clone());
        tasks.push(tokio::spawn(async move {
            let c = client(ip(format!("127.0.8.{}", n + 1)))?;
            let mut out = Vec::new();
            for txid in ask.iter().skip(n).step_by(ASKERS) {
                out.push((*txid, status_of(&ctx, &c, *txid).await));
            }
            anyhow::Ok(out)
        }));
    }
    for t in tasks {
        for (txid, status) in t.await?? {
            match status {
                Some(TxStatus::InPool | TxStatus::Confirmed { .. } | TxStatus::Final { .. }) => {
                    fates.live += 1
                }
                Some(TxStatus::Dropped { reason }) => {
                    *fates.other.entry(format!("dropped: {reason}")).or_insert(0) += 1
                }
                Some(s) => *fates.other.entry(format!("{s:?}")).or_insert(0) += 1,
                None => fates.lost.push(txid),
            }
        }
    }
    Ok((fates, blocks))
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

struct Kill {
    at: Duration,
    accepted_before: usize,
    restart: Duration,
    fates: Fates,
    blocks: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run_for = Duration::from_secs_f64((args.minutes.max(0.05)) * 60.0);
    let bin = match &args.gateway_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory of this binary")?
            .join("notch-gateway"),
    };
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("gw");
    let log = tmp.path().join("gateway.log");
    let listen = free_port()?;
    let mut gw = Gateway::start(&bin, &data, listen, &log)?;
    let first_start = gw.started_in;
    let base = format!("http://{listen}");

    let setup = client(ip("127.0.7.1".into()))?;
    let info: LedgerInfo = setup
        .get(format!("{base}/v1/info"))
        .send()
        .await?
        .json()
        .await?;
    let native = AssetId::from_hex(&info.assets[0].id).map_err(|e| anyhow::anyhow!("{e}"))?;
    let authority = PublicKey::from_hex(&info.authority_key).map_err(|e| anyhow::anyhow!("{e}"))?;
    let min_fee = info.params.min_fee_base
        + info.params.min_fee_per_byte * Transaction::estimate_len(1, 2) as u64;
    let ctx = Arc::new(Ctx {
        base: base.clone(),
        stats: Stats::default(),
        stop: AtomicBool::new(false),
        native,
        min_fee,
        sink: public_key(&SigningKey::from_bytes(&[9; 32])),
    });

    let started = Instant::now();
    let mut tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>> = Vec::new();
    for n in 0..args.submitters {
        tasks.push(tokio::spawn(submitter(ctx.clone(), n)));
    }
    for n in 0..args.batchers {
        tasks.push(tokio::spawn(batcher(
            ctx.clone(),
            n,
            args.batch_size.clamp(1, MAX_BATCH_TXS),
        )));
    }
    for n in 0..args.syncers {
        tasks.push(tokio::spawn(syncer(ctx.clone(), n, authority)));
    }
    tasks.push(tokio::spawn(rude(ctx.clone())));
    for n in 0..4 {
        tasks.push(tokio::spawn(slowloris(ctx.clone(), n)));
    }
    tasks.push(tokio::spawn(deaf(ctx.clone())));

    // The main loop: RSS samples every second; the kill and restart at `kill_at`.
    let kill_at = run_for.mul_f64(args.kill_at.clamp(0.05, 0.95));
    let mut rss: Vec<(f64, u64, bool)> = Vec::new();
    let mut kill: Option<Kill> = None;
    while started.elapsed() < run_for {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(r) = rss_kib(gw.pid()) {
            rss.push((started.elapsed().as_secs_f64(), r, kill.is_some()));
        }
        if let Ok(Some(status)) = gw.child.try_wait() {
            ctx.stats
                .unexpected(format!("the gateway exited by itself: {status}"));
            bail!(
                "the gateway exited by itself ({status}); log: {}",
                log.display()
            );
        }
        if kill.is_none() && started.elapsed() >= kill_at {
            let at = started.elapsed();
            eprintln!("killing the gateway (SIGKILL) at {at:.1?}");
            let _ = gw.child.kill();
            let _ = gw.child.wait();
            let before = ctx
                .stats
                .accepted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            gw = Gateway::start(&bin, &data, listen, &log)?;
            eprintln!(
                "restarted in {:.1?}; checking {} transactions",
                gw.started_in,
                before.len()
            );
            let (fates, blocks) = check_known(&ctx, &before).await?;
            kill = Some(Kill {
                at,
                accepted_before: before.len(),
                restart: gw.started_in,
                fates,
                blocks,
            });
        }
    }
    ctx.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => ctx.stats.unexpected(format!("a load task failed: {e:#}")),
            Err(e) => ctx.stats.unexpected(format!("a load task panicked: {e}")),
        }
    }
    let load_time = started.elapsed();
    let all = ctx
        .stats
        .accepted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    eprintln!("final check of {} transactions", all.len());
    let (fates_end, blocks_end) = check_known(&ctx, &all).await?;
    let rss_end = rss_kib(gw.pid());
    let term = Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()?;
    let exit = tokio::task::spawn_blocking(move || gw.child.wait()).await??;
    if !term.success() || !exit.success() {
        ctx.stats
            .unexpected(format!("SIGTERM did not stop the gateway cleanly: {exit}"));
    }

    // The report.
    let stats = &ctx.stats;
    let counts = stats
        .counts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let unexpected = stats
        .unexpected
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let requests: u64 = counts
        .iter()
        .filter(|((kind, _), _)| *kind != "batch entry")
        .map(|(_, n)| n)
        .sum();
    let mut failures = unexpected.clone();
    match &kill {
        Some(k) if k.fates.live != k.accepted_before => failures.push(format!(
            "of {} transactions answered 2xx before the kill, {} are not in the chain or the pool after the restart: {} unknown (e.g. {}), others {:?}",
            k.accepted_before,
            k.accepted_before - k.fates.live,
            k.fates.lost.len(),
            k.fates.lost.first().map_or("-".to_owned(), |t| t.to_hex()),
            k.fates.other,
        )),
        Some(_) => {}
        None => failures.push("the run ended before the kill".into()),
    }
    if fates_end.live != all.len() {
        failures.push(format!(
            "of {} accepted transactions, {} are not in the chain or the pool at the end: {} unknown (e.g. {}), others {:?}",
            all.len(),
            all.len() - fates_end.live,
            fates_end.lost.len(),
            fates_end.lost.first().map_or("-".to_owned(), |t| t.to_hex()),
            fates_end.other,
        ));
    }
    let verdict = if failures.is_empty() { "PASS" } else { "FAIL" };
    let single = stats.accepted_single.load(Ordering::Relaxed);
    let batch = stats.accepted_batch.load(Ordering::Relaxed);
    let secs = load_time.as_secs_f64().max(1e-9);
    let profile = if cfg!(debug_assertions) {
        "debug (rates not meaningful)"
    } else {
        "release"
    };
    let mut report = format!(
        "# notch-gateway soak\n\n\
         - date: {date}\n\
         - machine: {nproc} cores, {os}/{arch}, load before: {load}\n\
         - build: {profile}\n\
         - gateway: `{bin}` as a child process, sandbox, blocks every second, default limits, `--limit-loopback` (each load task is its own 127.x.y.z client)\n\
         - load: {subs} single submitters, {batchers} batch submitters ({bsize} per batch), {syncers} syncers, garbage/oversize/burst client, 4 slowloris connections, 1 reader that never reads\n\
         - run time: {run:.1} s of load; SIGKILL at {killed}\n\
         - reproduce: `cargo run --release -p notch-gateway --bin notch-gateway-soak -- --minutes {minutes} --out {out}`\n\n\
         **{verdict}**\n\n",
        date = sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        nproc = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        os = std::env::consts::OS,
        arch = std::env::consts::ARCH,
        load = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into()),
        bin = bin.display(),
        subs = args.submitters,
        batchers = args.batchers,
        bsize = args.batch_size,
        syncers = args.syncers,
        run = load_time.as_secs_f64(),
        killed = kill.as_ref().map_or("never".to_owned(), |k| format!(
            "{:.1} s",
            k.at.as_secs_f64()
        )),
        minutes = args.minutes,
        out = args.out.display(),
    );
    for f in &failures {
        report.push_str(&format!("- {f}\n"));
    }
    report.push_str(&format!(
        "\n## Throughput\n\n| measure | value |\n| --- | --- |\n\
         | requests answered or failed | {requests} ({:.0}/s) |\n\
         | transactions accepted one per request | {single} ({:.0}/s) |\n\
         | transactions accepted in batches | {batch} ({:.0}/s) |\n\
         | blocks at the end | {blocks_end} |\n\n",
        requests as f64 / secs,
        single as f64 / secs,
        batch as f64 / secs,
    ));
    if let Some(k) = &kill {
        report.push_str(&format!(
            "## Kill and restart\n\n| measure | value |\n| --- | --- |\n\
             | first start | {:.2} s |\n\
             | killed (SIGKILL) at | {:.1} s |\n\
             | transactions answered 2xx before the kill | {} |\n\
             | restart on the same data dir until listening | {:.2} s |\n\
             | blocks after the restart | {} |\n\
             | of those, in the chain or the pool after the restart | **{}** |\n\
             | accepted transactions in the chain or the pool at the end | **{}** of {} |\n\
             | SIGTERM at the end | {} |\n\n",
            first_start.as_secs_f64(),
            k.at.as_secs_f64(),
            k.accepted_before,
            k.restart.as_secs_f64(),
            k.blocks,
            k.fates.live,
            fates_end.live,
            all.len(),
            exit,
        ));
    }
    report.push_str(&format!(
        "## Hostile clients\n\n| measure | value |\n| --- | --- |\n\
         | slowloris connections closed by the gateway (header timeout, or the kill) | {} |\n\
         | never-reading connections closed by the gateway (write or header timeout, or the kill) | {} |\n\n",
        stats.slowloris_closed.load(Ordering::Relaxed),
        stats.deaf_closed.load(Ordering::Relaxed),
    ));
    report.push_str(
        "## Requests by kind and outcome\n\n| kind | outcome | count |\n| --- | --- | --- |\n",
    );
    for ((kind, outcome), n) in &counts {
        report.push_str(&format!("| {kind} | {outcome} | {n} |\n"));
    }
    report.push_str("\n## Gateway resident memory (VmRSS)\n\n| time (s) | RSS (MiB) | after restart |\n| --- | --- | --- |\n");
    let step = (rss.len() / 20).max(1);
    for (i, (t, r, after)) in rss.iter().enumerate() {
        if i % step == 0 || i + 1 == rss.len() {
            report.push_str(&format!(
                "| {t:.0} | {:.1} | {} |\n",
                *r as f64 / 1024.0,
                if *after { "yes" } else { "" }
            ));
        }
    }
    let max_before = rss.iter().filter(|x| !x.2).map(|x| x.1).max().unwrap_or(0);
    let max_after = rss.iter().filter(|x| x.2).map(|x| x.1).max().unwrap_or(0);
    report.push_str(&format!(
        "\nMaximum {:.1} MiB before the kill, {:.1} MiB after the restart; {} at the end.\n",
        max_before as f64 / 1024.0,
        max_after as f64 / 1024.0,
        rss_end.map_or("unknown".to_owned(), |r| format!(
            "{:.1} MiB",
            r as f64 / 1024.0
        )),
    ));
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &report)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("{verdict}: report in {}", args.out.display());
    if !failures.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
