//! `notch-gateway-bench`: measures the gateway over loopback and, in the same run, the raw
//! limits it is built on, and writes a markdown report. Its last section runs gateway
//! processes (this binary with `--serve-gateway`): one on SQLite, then 1, 2 and 3 on one
//! database of a throwaway PostgreSQL cluster (`notch_gateway::throwaway_pg`, PostgreSQL's
//! durable defaults), one writer and the rest read-only replicas, with the CPU of each
//! process and of PostgreSQL from /proc. Without PostgreSQL it says why and runs SQLite only.
//!
//! `cargo run --release -p notch-gateway --bin notch-gateway-bench -- --out bench/results/gateway.md`

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use notch_protocol::api::*;
use notch_protocol::ed25519_dalek::SigningKey;
use notch_protocol::{
    AssetId, Network, OutPoint, Output, PublicKey, Signature, Transaction, TxId, public_key,
    sign_id, verify_id_signature, verify_id_signatures,
};

#[derive(Parser, Debug)]
#[command(
    about = "Benchmark of notch-gateway (transactions accepted/s, blocks served/s) and of its raw limits"
)]
struct Args {
    /// Where to write the markdown report.
    #[arg(long, default_value = "bench/results/gateway.md")]
    out: PathBuf,
    /// Concurrent submitting clients (each waits for its answer before the next request, so
    /// this many submissions can share one commit).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Transactions to submit (one input, one output each).
    #[arg(long, default_value_t = 20_000)]
    txs: usize,
    /// Transactions per `POST /v1/txs` in the batch phase.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Concurrent batch submitters.
    #[arg(long, default_value_t = 4)]
    batch_clients: usize,
    /// Concurrent syncing clients.
    #[arg(long, default_value_t = 4)]
    syncers: usize,
    /// Transactions per block in the synced chain.
    #[arg(long, default_value_t = 200)]
    block_txs: usize,
    /// The gateway's `--http-threads` (0: one fewer than the cores).
    #[arg(long, default_value_t = 0)]
    http_threads: usize,
    /// Seconds each timed phase may last at most.
    #[arg(long, default_value_t = 30)]
    phase_secs: u64,
    /// The gateway's `--database`: its mirror on this (empty) PostgreSQL database instead
    /// of SQLite.
    #[arg(long)]
    database: Option<String>,
    /// Transactions per run of the gateway-processes section (SQLite, then 1, 2 and 3
    /// processes on one PostgreSQL database).
    #[arg(long, default_value_t = 5_000)]
    replica_txs: usize,
    /// Syncing clients in that section, spread over the processes.
    #[arg(long, default_value_t = 6)]
    replica_syncers: usize,
    /// No PostgreSQL runs in that section (SQLite only).
    #[arg(long)]
    no_postgres: bool,
    /// No gateway-processes section at all.
    #[arg(long)]
    no_replicas: bool,
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn fmt(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// CPU time each thread of this process has run so far, in nanoseconds, summed by thread
/// name (`/proc/self/task/*/schedstat`): where a phase's work went, independent of what else
/// the machine was doing.
fn cpu_by_thread() -> std::collections::BTreeMap<String, u64> {
    let mut by_name = std::collections::BTreeMap::new();
    by_name.insert(
        "bench-client".to_owned(),
        CLIENT_CPU_NS.load(Ordering::Relaxed),
    );
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in dir.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let ns: u64 = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        *by_name.entry(name).or_insert(0) += ns;
    }
    by_name
}

/// CPU time of finished `bench-client` threads.
static CLIENT_CPU_NS: AtomicU64 = AtomicU64::new(0);

/// Microseconds of CPU per transaction for each thread name, between two snapshots.
fn cpu_per_tx(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    txs: u64,
) -> String {
    let mut parts = Vec::new();
    let mut total = 0u64;
    for (name, ns) in after {
        let used = ns.saturating_sub(before.get(name).copied().unwrap_or(0));
        if used * 100 < 1_000_000 * txs.max(1) / 10 {
            continue; // under 0.1 µs per transaction
        }
        total += used;
        parts.push(format!(
            "{name} {:.1}",
            used as f64 / 1e3 / txs.max(1) as f64
        ));
    }
    format!(
        "{:.1} µs ({})",
        total as f64 / 1e3 / txs.max(1) as f64,
        parts.join(", ")
    )
}

/// A load generator in the manner of wrk: `clients` keep-alive HTTP/1.1 connections driven
/// by one thread of its own (named `bench-client`), each sending its next request when the
/// last is answered. Requests are encoded before the clock starts; an answer is read by its
/// Content-Length and counts as accepted only with status 200. A connection the server
/// closes is reopened and the request sent again (submission is idempotent per txid).
/// Returns (accepted, refused, time).
fn raw_http_phase(
    addr: std::net::SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    clients: usize,
    deadline: Instant,
) -> anyhow::Result<(u64, u64, Duration)> {
    let (results, took) = raw_http_multi(vec![(addr, requests, clients)], deadline)?;
    let r = results.first().copied().unwrap_or_default();
    Ok((r.ok, r.refused + r.unavailable, took))
}

/// What one target of [`raw_http_multi`] answered.
#[derive(Clone, Copy, Debug, Default)]
struct TargetResult {
    ok: u64,
    refused: u64,
    /// 503 with the code `unavailable` (a read-only replica refusing a submission).
    unavailable: u64,
    /// When its last client finished.
    took: Duration,
}

/// [`raw_http_phase`] against several servers at once: each `(address, requests, clients)`
/// has its own clients and its own requests, all driven by the one `bench-client` thread.
/// Returns each target's result and the time until the last finished.
fn raw_http_multi(
    targets: Vec<(std::net::SocketAddr, Arc<Vec<Vec<u8>>>, usize)>,
    deadline: Instant,
) -> anyhow::Result<(Vec<TargetResult>, Duration)> {
    let worker = std::thread::Builder::new()
        .name("bench-client".into())
        .spawn(move || -> anyhow::Result<(Vec<TargetResult>, Duration)> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let start = Instant::now();
                let mut groups = Vec::new();
                for (addr, requests, clients) in targets {
                    let next = Arc::new(AtomicU64::new(0));
                    let counts =
                        Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
                    let mut tasks = Vec::new();
                    for _ in 0..clients.max(1) {
                        let (requests, next, counts) =
                            (requests.clone(), next.clone(), counts.clone());
                        tasks.push(tokio::spawn(async move {
                            raw_client(addr, &requests, &next, &counts, deadline).await
                        }));
                    }
                    groups.push(tokio::spawn(async move {
                        for t in tasks {
                            t.await??;
                        }
                        anyhow::Ok(TargetResult {
                            ok: counts[0].load(Ordering::Relaxed),
                            refused: counts[1].load(Ordering::Relaxed),
                            unavailable: counts[2].load(Ordering::Relaxed),
                            took: start.elapsed(),
                        })
                    }));
                }
                let mut results = Vec::new();
                for g in groups {
                    results.push(g.await??);
                }
                let took = start.elapsed();
                // This thread ends before the caller looks: leave its CPU time behind.
                let ns: u64 = std::fs::read_to_string("/proc/thread-self/schedstat")
                    .ok()
                    .and_then(|s| s.split_whitespace().next()?.parse().ok())
                    .unwrap_or(0);
                CLIENT_CPU_NS.fetch_add(ns, Ordering::Relaxed);
                Ok((results, took))
            })
        })?;
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("the benchmark client thread panicked"))?
}

/// One client of [`raw_http_multi`]; `counts`: accepted, refused, 503 `unavailable`.
async fn raw_client(
    addr: std::net::SocketAddr,
    requests: &[Vec<u8>],
    next: &AtomicU64,
    counts: &[AtomicU64; 3],
    deadline: Instant,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connect = || async {
        let s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        anyhow::Ok(s)
    };
    let mut stream = connect().await?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
        if i >= requests.len() || Instant::now() > deadline {
            return Ok(());
        }
        let mut attempts = 0;
        let status = loop {
            attempts += 1;
            if attempts > 3 {
                bail!("the gateway closed the connection three times on one request");
            }
            if stream.write_all(&requests[i]).await.is_err() {
                stream = connect().await?;
                continue;
            }
            buf.clear();
            match read_response(&mut stream, &mut buf).await? {
                Some((status, close)) => {
                    if close {
                        stream = connect().await?;
                    }
                    break status;
                }
                None => stream = connect().await?,
            }
        };
        let unavailable = status == 503
            && buf
                .windows(UNAVAILABLE.len())
                .any(|w| w == UNAVAILABLE.as_bytes());
        let which = match status {
            200 => 0,
            _ if unavailable => 2,
            _ => 1,
        };
        counts[which].fetch_add(1, Ordering::Relaxed);
    }

    /// One response: `Some((status, connection closes))`, or `None` if the server closed the
    /// connection before answering.
    async fn read_response(
        stream: &mut tokio::net::TcpStream,
        buf: &mut Vec<u8>,
    ) -> anyhow::Result<Option<(u16, bool)>> {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head =
                    std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
                let status: u16 = head
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .context("no status in the response")?;
                let mut length = 0usize;
                let mut close = false;
                for line in head.split("\r\n").skip(1) {
                    let Some((k, v)) = line.split_once(':') else {
                        continue;
                    };
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().context("bad content-length")?;
                    } else if k.eq_ignore_ascii_case("connection") {
                        close = v.trim().eq_ignore_ascii_case("close");
                    }
                }
                while buf.len() < end + 4 + length {
                    if stream.read_buf(buf).await? == 0 {
                        return Ok(None);
                    }
                }
                return Ok(Some((status, close)));
            }
            if buf.len() > 64 * 1024 {
                bail!("response head over 64 KiB");
            }
            if stream.read_buf(buf).await? == 0 {
                return Ok(None);
            }
        }
    }
}

/// How a read-only replica's refusal of a submission reads in its body.
const UNAVAILABLE: &str = "\"code\":\"unavailable\"";

/// Single-thread Ed25519 verifications per second by the protocol's rule (ZIP 215, what the
/// gateway and the wallet use), one by one and, for `batch > 1`, in batches of `batch`
/// signatures by different keys.
fn ed25519_verify_rate(batch: usize) -> f64 {
    let keys: Vec<SigningKey> = (0..batch.max(1))
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    let ids: Vec<[u8; 32]> = (0..keys.len()).map(|i| [(i % 251) as u8; 32]).collect();
    let pubs: Vec<PublicKey> = keys.iter().map(public_key).collect();
    let sigs: Vec<Signature> = keys
        .iter()
        .zip(&ids)
        .map(|(k, id)| sign_id(k, id))
        .collect();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(1500) {
        if batch <= 1 {
            for _ in 0..100 {
                if verify_id_signature(&pubs[0], &ids[0], &sigs[0]) {
                    n += 1;
                }
            }
        } else if verify_id_signatures(
            pubs.iter()
                .zip(&ids)
                .zip(&sigs)
                .map(|((k, i), s)| (k, i, s)),
        ) {
            n += batch as u64;
        }
    }
    rate(n, start.elapsed())
}

/// rusqlite (bundled), WAL, synchronous=NORMAL, 1,000 rows per transaction into an indexed
/// table, single thread.
fn sqlite_insert_rate(dir: &std::path::Path) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open(dir.join("raw.sqlite"))?;
    let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.execute_batch(
        "PRAGMA synchronous=NORMAL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, k BLOB NOT NULL, v INTEGER NOT NULL);
         CREATE INDEX t_k ON t(k);",
    )?;
    let rows = 200_000u64;
    let start = Instant::now();
    let mut i = 0u64;
    while i < rows {
        let tx = conn.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached("INSERT INTO t (k, v) VALUES (?1, ?2)")?;
            for _ in 0..1000 {
                let k = notch_protocol::tagged_hash("bench", &[&i.to_le_bytes()]);
                st.execute(rusqlite::params![&k[..], i as i64])?;
                i += 1;
            }
        }
        tx.commit()?;
    }
    Ok(rate(rows, start.elapsed()))
}

struct Ctx {
    base: String,
    http: reqwest::Client,
}

impl Ctx {
    async fn post<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("POST {path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let r = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("GET {path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }
}

/// Splits `coin` (owned by `key`) into `parts` outputs, output `j` owned by
/// `owners[j % owners.len()]`.
fn split(
    native: AssetId,
    key: &SigningKey,
    owners: &[PublicKey],
    coin: OutPoint,
    amount: u64,
    parts: usize,
    nonce: u64,
) -> (Transaction, u64) {
    let mut tx = Transaction::new(Network::Sandbox);
    tx.inputs = vec![coin];
    let fee = 1_000 + 10 * Transaction::estimate_len(1, parts) as u64;
    let each = (amount - fee) / parts as u64;
    tx.outputs = (0..parts)
        .map(|j| Output {
            asset: native,
            amount: each,
            owner: owners[j % owners.len()],
        })
        .collect();
    tx.fee = amount - each * parts as u64;
    tx.nonce = nonce;
    let _ = tx.sign(&[key]);
    (tx, each)
}

/// Transactions in the pool: replay the pool log from 0 (adds minus removes).
async fn pool_size(ctx: &Ctx) -> anyhow::Result<usize> {
    let mut live = std::collections::HashSet::new();
    let mut since = 0u64;
    loop {
        let d: MempoolDelta = ctx
            .get(&format!("/v1/mempool?since={since}&limit=1000"))
            .await?;
        for c in d.changes {
            if c.kind == MempoolChangeKind::Added {
                live.insert(c.txid);
            } else {
                live.remove(&c.txid);
            }
        }
        if !d.more {
            return Ok(live.len());
        }
        since = d.seq;
    }
}

/// Mines until the pool is empty; returns the blocks mined and the time spent mining.
async fn mine_until_empty(ctx: &Ctx) -> anyhow::Result<(u64, Duration)> {
    let mut spent = Duration::ZERO;
    let mut blocks = 0u64;
    while pool_size(ctx).await? > 0 {
        let start = Instant::now();
        let r: MineResponse = ctx
            .post("/v1/sandbox/mine", &MineRequest { blocks: Some(10) })
            .await?;
        spent += start.elapsed();
        blocks += r.mined.len() as u64;
    }
    Ok((blocks, spent))
}

/// Coins for `wanted` submissions (one faucet coin split into up to 250, each split into up
/// to 250, mined), and a signed one-input one-output payment of each, hex: what the
/// submission phases send. The spent coins belong to 256 different keys.
async fn prepare_signed(ctx: &Ctx, wanted: usize) -> anyhow::Result<Vec<String>> {
    let info: LedgerInfo = ctx.get("/v1/info").await?;
    let native = AssetId::from_hex(&info.assets[0].id).map_err(|e| anyhow::anyhow!("{e}"))?;

    // Coins: one faucet coin, split into up to 250, each split into up to 250.
    eprintln!("preparing {wanted} coins ...");
    let key = SigningKey::from_bytes(&[1; 32]);
    let big = 1_000_000_000_000_000u64;
    let f: FaucetResponse = ctx
        .post(
            "/v1/sandbox/faucet",
            &FaucetRequest {
                address: notch_protocol::Address::new(Network::Sandbox, public_key(&key)).encode(),
                asset: "NOTE".into(),
                amount: big,
            },
        )
        .await?;
    let coin = OutPoint {
        txid: TxId::from_hex(&f.txid).map_err(|e| anyhow::anyhow!("{e}"))?,
        index: 0,
    };
    let first = wanted.div_ceil(250).clamp(1, 250);
    // The spent coins belong to 256 different keys, as a real pool's would: batch
    // verification is faster when many signatures share a key, which would flatter it.
    let owners: Vec<SigningKey> = (0..256u16)
        .map(|i| {
            let mut seed = [3u8; 32];
            seed[..2].copy_from_slice(&i.to_le_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    let owner_keys: Vec<PublicKey> = owners.iter().map(public_key).collect();
    let (t0, each0) = split(native, &key, &[public_key(&key)], coin, big, first, 0);
    let _: SubmitTxResponse = ctx
        .post(
            "/v1/tx",
            &SubmitTxRequest {
                tx: hex::encode(t0.encode()),
            },
        )
        .await?;
    let per = wanted.div_ceil(first).clamp(1, 250);
    let mut coins = Vec::new();
    for i in 0..first {
        let (t, each) = split(
            native,
            &key,
            &owner_keys,
            OutPoint {
                txid: t0.txid(),
                index: i as u32,
            },
            each0,
            per,
            1,
        );
        let _: SubmitTxResponse = ctx
            .post(
                "/v1/tx",
                &SubmitTxRequest {
                    tx: hex::encode(t.encode()),
                },
            )
            .await?;
        for j in 0..per {
            coins.push((
                OutPoint {
                    txid: t.txid(),
                    index: j as u32,
                },
                each,
            ));
        }
    }
    mine_until_empty(&ctx).await?;
    coins.truncate(wanted);
    let dest = public_key(&SigningKey::from_bytes(&[2; 32]));
    let fee = 1_000 + 10 * Transaction::estimate_len(1, 1) as u64;
    let signed: Vec<String> = coins
        .iter()
        .map(|(c, amount)| {
            let signer = &owners[c.index as usize % owners.len()];
            let mut tx = Transaction::new(Network::Sandbox);
            tx.inputs = vec![*c];
            tx.outputs = vec![Output {
                asset: native,
                amount: amount - fee,
                owner: dest,
            }];
            tx.fee = fee;
            let _ = tx.sign(&[signer]);
            hex::encode(tx.encode())
        })
        .collect();
    Ok(signed)
}

fn main() -> anyhow::Result<()> {
    // As `notch-gateway` does, before any thread starts (this process and `--serve-gateway`).
    notch_gateway::keep_freed_memory();
    let mut argv = std::env::args_os();
    if argv.nth(1).as_deref() == Some(std::ffi::OsStr::new(SERVE_GATEWAY)) {
        return serve_gateway(argv.collect());
    }
    let args = Args::parse();
    // The gateway's own runtime, as `notch-gateway` builds it (`--http-threads`); the batch
    // and sync phases' reqwest clients run on it too.
    notch_gateway::runtime(args.http_threads)?.block_on(run(args))
}

/// The load averages (1, 5, 15 min), from /proc: how busy the machine was besides.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" / "))
        .unwrap_or_else(|| "unknown".into())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let total = Instant::now();
    let load_start = load_average();
    let tmp = tempfile::tempdir()?;
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);

    eprintln!("raw limits: Ed25519 verify ...");
    let ed = ed25519_verify_rate(1);
    let ed64 = ed25519_verify_rate(64);
    let ed1024 = ed25519_verify_rate(1024);
    eprintln!("raw limits: SQLite inserts ...");
    let sq = tokio::task::spawn_blocking({
        let p = tmp.path().to_owned();
        move || sqlite_insert_rate(&p)
    })
    .await??;

    let data = tmp.path().join("gw");
    let block_txs = args.block_txs.to_string();
    let mut gateway_args: Vec<String> = [
        "notch-gateway",
        "--sandbox",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().context("temp dir is not UTF-8")?,
        "--block-interval",
        "0",
        "--max-block-txs",
        &block_txs,
        // One machine plays every client here: no per-client pool share or rate limit.
        "--max-pool-per-client",
        "1000000",
        "--http-threads",
        &args.http_threads.to_string(),
    ]
    .map(String::from)
    .into();
    if let Some(url) = &args.database {
        gateway_args.extend(["--database".to_owned(), url.clone()]);
    }
    let config = notch_gateway::Config::parse_from(gateway_args);
    let backend = match &config.database {
        Some(url) => format!("PostgreSQL ({})", url.redacted()),
        None => format!(
            "SQLite synchronous={} (the default)",
            format!("{:?}", config.sqlite_sync).to_lowercase()
        ),
    };
    let running = notch_gateway::start(config).await?;
    let ctx = Arc::new(Ctx {
        base: format!("http://{}", running.addr),
        http: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(60))
            .build()?,
    });
    let wanted = (2 * args.txs).min(250 * 250);
    let signed = prepare_signed(&ctx, wanted).await?;

    // Phase 1: accepted transactions per second with N concurrent clients.
    eprintln!(
        "submitting {} transactions with {} clients ...",
        signed.len(),
        args.clients
    );
    let mut signed = signed;
    let batch_signed: Vec<String> = signed.split_off(signed.len().min(args.txs));
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        signed
            .iter()
            .map(|hex_tx| {
                let body = serde_json::to_vec(&SubmitTxRequest { tx: hex_tx.clone() })
                    .unwrap_or_default();
                let mut r = format!(
                    "POST /v1/tx HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    running.addr,
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(&body);
                r
            })
            .collect(),
    );
    let deadline = Instant::now() + Duration::from_secs(args.phase_secs);
    let cpu_before = cpu_by_thread();
    let (accepted, refused, submit_time) =
        raw_http_phase(running.addr, requests, args.clients, deadline)?;
    let single_cpu = cpu_per_tx(&cpu_before, &cpu_by_thread(), accepted);
    let tx_rate = rate(accepted, submit_time);

    // Phase 1b: the same through `POST /v1/txs`, `--batch` per request.
    eprintln!(
        "submitting {} transactions in batches of {} with {} clients ...",
        batch_signed.len(),
        args.batch,
        args.batch_clients
    );
    let batches: Arc<Vec<Vec<String>>> = Arc::new(
        batch_signed
            .chunks(args.batch.clamp(1, MAX_BATCH_TXS))
            .map(|c| c.to_vec())
            .collect(),
    );
    let next_batch = Arc::new(AtomicU64::new(0));
    let batch_ok = Arc::new(AtomicU64::new(0));
    let batch_failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.phase_secs);
    let cpu_before = cpu_by_thread();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.batch_clients {
        let (ctx, batches, next, ok, failed) = (
            ctx.clone(),
            batches.clone(),
            next_batch.clone(),
            batch_ok.clone(),
            batch_failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= batches.len() || Instant::now() > deadline {
                    return;
                }
                let r: anyhow::Result<SubmitBatchResponse> = ctx
                    .post(
                        "/v1/txs",
                        &SubmitBatchRequest {
                            txs: batches[i].clone(),
                        },
                    )
                    .await;
                match r {
                    Ok(r) => {
                        for x in r.results {
                            match x {
                                SubmitBatchResult::Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                                SubmitBatchResult::Err { .. } => {
                                    failed.fetch_add(1, Ordering::Relaxed)
                                }
                            };
                        }
                    }
                    Err(_) => {
                        failed.fetch_add(batches[i].len() as u64, Ordering::Relaxed);
                    }
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let batch_time = start.elapsed();
    let batch_cpu = cpu_per_tx(
        &cpu_before,
        &cpu_by_thread(),
        batch_ok.load(Ordering::Relaxed),
    );
    let batch_accepted = batch_ok.load(Ordering::Relaxed);
    let batch_refused = batch_failed.load(Ordering::Relaxed);
    let batch_rate = rate(batch_accepted, batch_time);
    let total_accepted = accepted + batch_accepted;

    // Block production of what was accepted.
    eprintln!("mining ...");
    let (mined_blocks, mine_time) = mine_until_empty(&ctx).await?;
    let mine_rate = rate(total_accepted, mine_time);

    // Phase 2: blocks served per second to syncing clients (each downloads the chain from
    // the genesis, 10 blocks per request, repeatedly).
    let tip: LedgerInfo = ctx.get("/v1/info").await?;
    let tip_height = tip.tip.height;
    eprintln!(
        "serving {} blocks to {} syncing clients ...",
        tip_height + 1,
        args.syncers
    );
    let blocks_served = Arc::new(AtomicU64::new(0));
    let bytes_served = Arc::new(AtomicU64::new(0));
    let sync_deadline = Instant::now() + Duration::from_secs(args.phase_secs.min(10));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.syncers {
        let (ctx, blocks_served, bytes_served) =
            (ctx.clone(), blocks_served.clone(), bytes_served.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < sync_deadline {
                let mut from = 0u64;
                loop {
                    let r: anyhow::Result<BlocksResponse> =
                        ctx.get(&format!("/v1/blocks?from={from}&limit=10")).await;
                    let Ok(r) = r else { return };
                    blocks_served.fetch_add(r.blocks.len() as u64, Ordering::Relaxed);
                    bytes_served.fetch_add(
                        r.blocks.iter().map(|b| b.hex.len() as u64 / 2).sum(),
                        Ordering::Relaxed,
                    );
                    from += r.blocks.len() as u64;
                    if !r.more || r.blocks.is_empty() || Instant::now() >= sync_deadline {
                        break;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let sync_time = start.elapsed();
    let served = blocks_served.load(Ordering::Relaxed);
    let served_bytes = bytes_served.load(Ordering::Relaxed);
    let block_rate = rate(served, sync_time);
    let avg_block = served_bytes as f64 / served.max(1) as f64;

    running.shutdown().await;

    let replicas = if args.no_replicas {
        String::new()
    } else {
        replica_section(&args, tmp.path()).await
    };

    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let profile = if cfg!(debug_assertions) {
        "debug (numbers not meaningful)"
    } else {
        "release"
    };
    let report = format!(
        "# notch-gateway benchmark\n\n\
         - date: {date}\n\
         - machine: {nproc} cores (nproc), {cpu}, {os}/{arch}\n\
         - build: {profile}\n\
         - gateway: in-process on 127.0.0.1:0, sandbox, mirror on {backend}, blocks on demand, {block_txs} transactions per block, {http_threads} HTTP thread(s) (`--http-threads`)\n\
         - run time: {run:.1} s\n\
         - load average (1 / 5 / 15 min) at the start: {load_start}; at the end: {load_end} (on {nproc} cores; above about 1 at the start, other work shared the machine and the figures are noisy)\n\
         - reproduce: `cargo run --release -p notch-gateway --bin notch-gateway-bench -- --out bench/results/gateway.md` (or `cargo xtask bench gateway`)\n\n\
         ## Gateway\n\n\
         | measure | value |\n| --- | --- |\n\
         | transactions accepted per second ({clients} concurrent HTTP clients, 1 input + 1 output each, persisted before the answer) | **{tx_rate}** ({accepted} accepted, {refused} refused, in {st:.2} s) |\n\
         | transactions accepted per second through `POST /v1/txs` ({batch} per request, {batch_clients} concurrent clients, persisted before the answer) | **{batch_rate}** ({batch_accepted} accepted, {batch_refused} refused, in {bt:.2} s) |\n\
         | transactions confirmed per second by block production ({mined_blocks} blocks) | {mine_rate} |\n\
         | blocks served per second to {syncers} syncing clients (`GET /v1/blocks`, 10 per request, hex JSON) | **{block_rate}** (average block {avg_block} bytes, {mbps:.1} MB/s of block bytes) |\n\n\
         {replicas}\
         ## Raw limits, measured in the same run (one thread)\n\n\
         | measure | value |\n| --- | --- |\n\
         | Ed25519 verifications per second, one by one (ZIP 215: notch-protocol on curve25519-dalek 4) | {ed} |\n\
         | Ed25519 verifications per second in batches of 64 / 1024 different keys | {ed64} / {ed1024} |\n\
         | SQLite inserts per second (rusqlite bundled, WAL, synchronous=NORMAL, 1,000 rows per transaction, indexed 200k-row table) | {sq} |\n\n\
         ## Ratios\n\n\
         | ratio | value |\n| --- | --- |\n\
         | accepted tx/s ÷ Ed25519 verifications/s (each transaction needs one) | {r1:.3} |\n\
         | batch-accepted tx/s ÷ Ed25519 batch (1024) verifications/s | {r4:.3} |\n\
         | accepted tx/s ÷ SQLite inserts/s (each accepted transaction writes 2 rows and reads ~4) | {r2:.3} |\n\
         | confirmed tx/s ÷ accepted tx/s | {r3:.2} |\n\n\
         ## Where the CPU went (per accepted transaction, by thread)\n\n\
         | phase | CPU per transaction |\n| --- | --- |\n\
         | one per request | {single_cpu} |\n\
         | `POST /v1/txs` | {batch_cpu} |\n\n\
         `bench-client` is the load generator (one thread, raw keep-alive HTTP/1.1 in the manner of wrk, requests encoded before\n\
         the clock starts; in the batch phase reqwest on `tokio-rt-worker`); `tokio-rt-worker` the gateway's HTTP and\n\
         prevalidation, `ledger-verifier` signature batches, `ledger-writer` the SQLite commits. Two cores give at most\n\
         2,000,000 µs of CPU a second.\n\n\
         Each submission is decoded, its input looked up, its signature verified (in a batch with\n\
         whatever else is waiting), then it is committed to SQLite by the single ledger writer (concurrent submissions share one\n\
         commit) before the HTTP answer; the client and server share the same {nproc} cores.\n",
        os = std::env::consts::OS,
        arch = std::env::consts::ARCH,
        run = total.elapsed().as_secs_f64(),
        load_end = load_average(),
        clients = args.clients,
        http_threads = notch_gateway::http_threads(args.http_threads),
        syncers = args.syncers,
        tx_rate = fmt(tx_rate),
        st = submit_time.as_secs_f64(),
        mine_rate = fmt(mine_rate),
        block_rate = fmt(block_rate),
        avg_block = fmt(avg_block),
        mbps = served_bytes as f64 / sync_time.as_secs_f64().max(1e-9) / 1e6,
        ed = fmt(ed),
        sq = fmt(sq),
        r1 = tx_rate / ed.max(1.0),
        r4 = batch_rate / ed1024.max(1.0),
        ed64 = fmt(ed64),
        ed1024 = fmt(ed1024),
        batch = args.batch,
        batch_clients = args.batch_clients,
        batch_rate = fmt(batch_rate),
        bt = batch_time.as_secs_f64(),
        r2 = tx_rate / sq.max(1.0),
        r3 = mine_rate / tx_rate.max(1.0),
    );
    if let Some(parent) = args.out.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, &report)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("{report}");
    eprintln!(
        "wrote {} in {:.1} s",
        args.out.display(),
        total.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---- Gateway processes on one PostgreSQL database (issue 15): 1, 2 and 3 processes, one
// writer and the rest `--read-only` replicas, beside an SQLite gateway process under the
// same load.

/// The flag that makes this binary a gateway process (`notch-gateway`'s `start`, with the
/// same flags) for the replica runs: the benchmark needs no sibling binary built.
const SERVE_GATEWAY: &str = "--serve-gateway";

/// A gateway process of this binary (`--serve-gateway`): starts, says where it listens as
/// `notch-gateway` does, and stops cleanly when its stdin closes (its parent stopped it or
/// died).
fn serve_gateway(args: Vec<std::ffi::OsString>) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let config = notch_gateway::Config::try_parse_from(
        std::iter::once(std::ffi::OsString::from("notch-gateway")).chain(args),
    )?;
    notch_gateway::runtime(config.http_threads)?.block_on(async move {
        let running = notch_gateway::start(config).await?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "notch-gateway listening on http://{}", running.addr)?;
            out.flush()?;
        }
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 64];
            while std::io::stdin().read(&mut sink).is_ok_and(|n| n > 0) {}
        })
        .await;
        running.shutdown().await;
        anyhow::Ok(())
    })
}

/// A gateway process started by [`spawn_gateway`].
struct GatewayProcess {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    addr: std::net::SocketAddr,
}

impl GatewayProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes its stdin (a clean stop), waits up to 20 s, then kills it.
    fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn_gateway(args: &[String], log: &std::path::Path) -> anyhow::Result<GatewayProcess> {
    use std::io::BufRead;
    let exe = std::env::current_exe().context("cannot find this program")?;
    let log_file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut child = std::process::Command::new(exe)
        .arg(SERVE_GATEWAY)
        .args(args)
        // The gateway's database is the benchmark's choice only.
        .env_remove("NOTCH_GATEWAY_DATABASE")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(log_file)
        .spawn()
        .context("cannot start a gateway process")?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout);
        let mut first = String::new();
        let _ = lines.read_line(&mut first);
        let _ = tx.send(first);
        let mut sink = String::new();
        while lines.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    let mut process = GatewayProcess {
        child,
        stdin,
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    let Some(addr) = line
        .trim()
        .strip_prefix("notch-gateway listening on http://")
    else {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(5).collect();
        bail!(
            "a gateway process did not start ({line:?}); its log ends: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    };
    process.addr = addr
        .parse()
        .context("bad address in the gateway's first line")?;
    Ok(process)
}

/// The kernel's clock ticks per second (`/proc/*/stat` counts CPU time in them).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// CPU time (user + system, in clock ticks) and parent pid of a process, from /proc.
fn proc_cpu(pid: u32) -> Option<(u64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: the fields after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime, ppid))
}

/// CPU ticks of the PostgreSQL server: its postmaster and every child (backends, WAL
/// writer, checkpointer …) alive now.
fn postgres_cpu(postmaster: Option<u32>) -> u64 {
    let Some(pm) = postmaster else { return 0 };
    let mut total = proc_cpu(pm).map_or(0, |c| c.0);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ticks, ppid)) = proc_cpu(pid)
                && ppid == pm
            {
                total += ticks;
            }
        }
    }
    total
}

/// CPU ticks of the gateway processes, PostgreSQL and this process (the load generator), at
/// one instant.
#[derive(Clone, Debug, Default)]
struct CpuSnapshot {
    gateways: Vec<u64>,
    postgres: u64,
    client: u64,
    /// The whole machine (/proc/stat): ticks busy in processes, waiting for I/O, and in
    /// interrupts (loopback TCP is mostly softirq work, charged to no process), over all
    /// cores.
    machine_busy: u64,
    machine_iowait: u64,
    machine_irq: u64,
}

/// Busy (in processes), I/O-wait and interrupt ticks of the whole machine since boot,
/// summed over its cores.
fn machine_cpu() -> (u64, u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0, 0);
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0, 0);
    };
    // user nice system idle iowait irq softirq steal …
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    (at(0) + at(1) + at(2) + at(7), at(4), at(5) + at(6))
}

fn cpu_snapshot(pids: &[u32], postmaster: Option<u32>) -> CpuSnapshot {
    let (machine_busy, machine_iowait, machine_irq) = machine_cpu();
    CpuSnapshot {
        machine_busy,
        machine_iowait,
        machine_irq,
        gateways: pids
            .iter()
            .map(|p| proc_cpu(*p).map_or(0, |c| c.0))
            .collect(),
        postgres: postgres_cpu(postmaster),
        client: proc_cpu(std::process::id()).map_or(0, |c| c.0),
    }
}

/// Where the CPU went between two snapshots, in % of one core over `wall`.
#[derive(Clone, Debug, Default)]
struct CpuUse {
    gateways: Vec<f64>,
    postgres: f64,
    client: f64,
    /// Every other process of the machine (other builds: noise).
    others: f64,
    /// Cores waiting for I/O (fsync), in % of one core.
    iowait: f64,
    /// Interrupt work (mostly the loopback network), in % of one core.
    irq: f64,
}

impl CpuUse {
    fn between(a: &CpuSnapshot, b: &CpuSnapshot, wall: Duration, ticks: f64) -> CpuUse {
        let pct = |x: u64, y: u64| {
            y.saturating_sub(x) as f64 / ticks / wall.as_secs_f64().max(1e-9) * 100.0
        };
        let mut u = CpuUse {
            gateways: a
                .gateways
                .iter()
                .zip(&b.gateways)
                .map(|(x, y)| pct(*x, *y))
                .collect(),
            postgres: pct(a.postgres, b.postgres),
            client: pct(a.client, b.client),
            others: 0.0,
            iowait: pct(a.machine_iowait, b.machine_iowait),
            irq: pct(a.machine_irq, b.machine_irq),
        };
        u.others = (pct(a.machine_busy, b.machine_busy) - u.total()).max(0.0);
        u
    }

    /// This run's processes.
    fn total(&self) -> f64 {
        self.gateways.iter().sum::<f64>() + self.postgres + self.client
    }

    fn show(&self) -> String {
        let gws: Vec<String> = self.gateways.iter().map(|g| format!("{g:.0}")).collect();
        format!(
            "gateways {} %, PostgreSQL {:.0} %, load generator {:.0} %, interrupts (loopback network) {:.0} %, other processes {:.0} %; I/O wait {:.0} %",
            gws.join(" + "),
            self.postgres,
            self.client,
            self.irq,
            self.others,
            self.iowait
        )
    }

    /// The biggest user, said plainly.
    fn largest(&self) -> &'static str {
        let gw: f64 = self.gateways.iter().sum();
        if gw >= self.postgres && gw >= self.client {
            "the gateway processes"
        } else if self.postgres >= self.client {
            "PostgreSQL"
        } else {
            "the load generator"
        }
    }
}

/// One run's figures.
struct ReplicaRun {
    label: String,
    accepted: u64,
    refused: u64,
    accept_time: Duration,
    /// Per process: accepted, refused, 503 `unavailable`.
    per_process: Vec<TargetResult>,
    accept_cpu: CpuUse,
    blocks: u64,
    sync_time: Duration,
    per_process_blocks: Vec<u64>,
    sync_cpu: CpuUse,
}

/// A throwaway cluster for the replica runs, with PostgreSQL's own durability settings (so
/// that it is compared with SQLite's `synchronous=full` on equal terms), or why there is none.
fn bench_cluster() -> Result<notch_gateway::throwaway_pg::Cluster, String> {
    let bin = notch_gateway::throwaway_pg::server_bin_dir()?;
    notch_gateway::throwaway_pg::Cluster::start_with(bin, true)
}

/// One run: `processes` gateway processes (the first the writer) on `database` (SQLite in
/// its data dir when `None`, then one process only), `txs` submissions spread over them
/// (each process its share of the requests and of `clients`), the pool mined on the writer,
/// then `syncers` clients downloading the chain, spread over the processes.
#[allow(clippy::too_many_arguments)]
async fn replica_run(
    args: &Args,
    tmp: &std::path::Path,
    label: &str,
    database: Option<&str>,
    processes: usize,
    postmaster: Option<u32>,
    ticks: f64,
) -> anyhow::Result<ReplicaRun> {
    let dir = tmp.join(label.replace([' ', ','], "-"));
    std::fs::create_dir_all(&dir)?;
    let common = |data: &std::path::Path| -> Vec<String> {
        let mut a: Vec<String> = [
            "--sandbox",
            "--listen",
            "127.0.0.1:0",
            "--block-interval",
            "0",
            "--no-relay",
            "--max-block-txs",
            &args.block_txs.to_string(),
            "--max-pool-per-client",
            "1000000",
            "--http-threads",
            &args.http_threads.to_string(),
            "--data-dir",
        ]
        .map(String::from)
        .into();
        a.push(data.display().to_string());
        if let Some(url) = database {
            a.extend(["--database".to_owned(), url.to_owned()]);
        }
        a
    };
    let mut gateways = Vec::new();
    let writer_dir = dir.join("writer");
    gateways.push(spawn_gateway(
        &common(&writer_dir),
        &dir.join("writer.log"),
    )?);
    for k in 1..processes {
        let data = dir.join(format!("replica-{k}"));
        let mut a = common(&data);
        a.push("--read-only".into());
        gateways.push(spawn_gateway(&a, &dir.join(format!("replica-{k}.log")))?);
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(60))
        .build()?;
    let ctxs: Vec<Arc<Ctx>> = gateways
        .iter()
        .map(|g| {
            Arc::new(Ctx {
                base: format!("http://{}", g.addr),
                http: http.clone(),
            })
        })
        .collect();
    let writer = ctxs[0].clone();
    let signed = prepare_signed(&writer, args.replica_txs).await?;
    let pids: Vec<u32> = gateways.iter().map(GatewayProcess::pid).collect();

    // Submissions: process p gets every n-th transaction and clients / n connections.
    let n = gateways.len();
    let targets: Vec<(std::net::SocketAddr, Arc<Vec<Vec<u8>>>, usize)> = gateways
        .iter()
        .enumerate()
        .map(|(p, g)| {
            let requests: Vec<Vec<u8>> = signed
                .iter()
                .skip(p)
                .step_by(n)
                .map(|hex_tx| submit_request(g.addr, hex_tx))
                .collect();
            (g.addr, Arc::new(requests), (args.clients / n).max(1))
        })
        .collect();
    eprintln!("{label}: submitting {} transactions ...", signed.len());
    let before = cpu_snapshot(&pids, postmaster);
    let deadline = Instant::now() + Duration::from_secs(args.phase_secs);
    let (per_process, accept_time) =
        tokio::task::spawn_blocking(move || raw_http_multi(targets, deadline)).await??;
    let accept_cpu = CpuUse::between(
        &before,
        &cpu_snapshot(&pids, postmaster),
        accept_time,
        ticks,
    );
    let accepted = per_process.iter().map(|r| r.ok).sum();
    let refused = per_process.iter().map(|r| r.refused).sum();
    mine_until_empty(&writer).await?;
    // The replicas follow the writer's last block (within a quarter of a second).
    let tip: LedgerInfo = writer.get("/v1/info").await?;
    for c in &ctxs {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let i: LedgerInfo = c.get("/v1/info").await?;
            if i.tip.height >= tip.tip.height || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    eprintln!(
        "{label}: serving blocks to {} syncing clients ...",
        args.replica_syncers
    );
    let served: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let before = cpu_snapshot(&pids, postmaster);
    let sync_deadline = Instant::now() + Duration::from_secs(args.phase_secs.min(10));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..args.replica_syncers.max(1) {
        let (ctx, served) = (ctxs[k % n].clone(), served[k % n].clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < sync_deadline {
                let mut from = 0u64;
                loop {
                    let r: anyhow::Result<BlocksResponse> =
                        ctx.get(&format!("/v1/blocks?from={from}&limit=10")).await;
                    let Ok(r) = r else { return };
                    served.fetch_add(r.blocks.len() as u64, Ordering::Relaxed);
                    from += r.blocks.len() as u64;
                    if !r.more || r.blocks.is_empty() || Instant::now() >= sync_deadline {
                        break;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let sync_time = start.elapsed();
    let sync_cpu = CpuUse::between(&before, &cpu_snapshot(&pids, postmaster), sync_time, ticks);
    let per_process_blocks: Vec<u64> = served.iter().map(|s| s.load(Ordering::Relaxed)).collect();
    for g in gateways {
        g.stop();
    }
    Ok(ReplicaRun {
        label: label.to_owned(),
        accepted,
        refused,
        accept_time,
        per_process,
        accept_cpu,
        blocks: per_process_blocks.iter().sum(),
        sync_time,
        per_process_blocks,
        sync_cpu,
    })
}

/// `POST /v1/tx` of one transaction, as raw HTTP/1.1 bytes.
fn submit_request(addr: std::net::SocketAddr, hex_tx: &str) -> Vec<u8> {
    let body = serde_json::to_vec(&SubmitTxRequest {
        tx: hex_tx.to_owned(),
    })
    .unwrap_or_default();
    let mut r = format!(
        "POST /v1/tx HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(&body);
    r
}

/// The report's section of the replica runs: an SQLite gateway process, then 1, 2 and 3
/// processes on one PostgreSQL database, or why the PostgreSQL runs are missing.
async fn replica_section(args: &Args, tmp: &std::path::Path) -> String {
    let ticks = clock_ticks();
    let mut runs = Vec::new();
    let mut notes = Vec::new();
    match replica_run(args, tmp, "SQLite", None, 1, None, ticks).await {
        Ok(r) => runs.push(r),
        Err(e) => notes.push(format!("the SQLite run failed: {e:#}")),
    }
    let cluster = if args.no_postgres {
        Err("--no-postgres was given".to_owned())
    } else {
        bench_cluster()
    };
    let mut postgres_version = String::new();
    match &cluster {
        Err(e) => notes.push(format!(
            "no PostgreSQL runs: {e} (install Debian's postgresql, as `cargo xtask setup` does)"
        )),
        Ok(c) => {
            postgres_version = std::process::Command::new(c.bin.join("postgres"))
                .arg("--version")
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_owned())
                .unwrap_or_default();
            for n in 1..=3usize {
                let name = format!("bench_{n}_processes");
                let label = format!("PostgreSQL, {n} process{}", if n == 1 { "" } else { "es" });
                let url = match c.create_database(&name) {
                    Ok(u) => u,
                    Err(e) => {
                        notes.push(format!("{label}: {e}"));
                        continue;
                    }
                };
                match replica_run(args, tmp, &label, Some(&url), n, c.postmaster_pid(), ticks).await
                {
                    Ok(r) => runs.push(r),
                    Err(e) => notes.push(format!("{label} failed: {e:#}")),
                }
            }
        }
    }
    drop(cluster);
    let mut out = format!(
        "## Gateway processes on one PostgreSQL database (one writer, the rest `--read-only` replicas)\n\n\
         Each run starts its gateway processes afresh (this binary with `{SERVE_GATEWAY}`: `notch-gateway`'s own start), \
         on SQLite in its data dir, or on a new database of a throwaway PostgreSQL cluster ({pg}, on this machine, \
         PostgreSQL's defaults: fsync on, synchronous_commit on); {txs} transactions, the submissions split evenly over \
         the processes (each its share of the requests and of {clients} raw HTTP clients), then the pool mined on the \
         writer, then {syncers} clients syncing the chain from the genesis (`GET /v1/blocks`, 10 per request), spread \
         over the processes, for at most 10 s. CPU is each process's user + system time from /proc over the phase \
         (PostgreSQL: its postmaster and all its children; interrupts: the machine's irq and softirq time from /proc/stat, where \
         the loopback network's work is charged; other processes: the machine's remaining busy time less these, i.e. other work on the machine; \
         I/O wait: the machine's), in % of one core: the machine has {nproc} cores, so at most \
         {max} % in all.\n\n\
         | run | accepted tx/s | per process (accepted / refused / 503 unavailable) | CPU while accepting | blocks served/s | per process (blocks) | CPU while serving |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
        pg = if postgres_version.is_empty() {
            "none".to_owned()
        } else {
            postgres_version.clone()
        },
        txs = args.replica_txs,
        clients = args.clients,
        syncers = args.replica_syncers,
        nproc = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        max = 100
            * std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
    );
    let mut unsupported = Vec::new();
    for r in &runs {
        let per: Vec<String> = r
            .per_process
            .iter()
            .enumerate()
            .map(|(p, t)| {
                let who = if p == 0 {
                    "writer".to_owned()
                } else {
                    format!("replica {p}")
                };
                if p > 0 && t.ok == 0 && t.unavailable > 0 {
                    unsupported.push(format!("{} (replica {p})", r.label));
                    format!(
                        "{who}: not supported by this build ({} × 503)",
                        t.unavailable
                    )
                } else {
                    format!(
                        "{who}: {} / {} / {} in {:.2} s",
                        t.ok,
                        t.refused,
                        t.unavailable,
                        t.took.as_secs_f64()
                    )
                }
            })
            .collect();
        let blocks: Vec<String> = r
            .per_process_blocks
            .iter()
            .map(|b| fmt(*b as f64))
            .collect();
        out.push_str(&format!(
            "| {} | **{}** ({} accepted, {} refused, {:.2} s) | {} | {} | **{}** ({} s) | {} | {} |\n",
            r.label,
            fmt(rate(r.accepted, r.accept_time)),
            r.accepted,
            r.refused,
            r.accept_time.as_secs_f64(),
            per.join("; "),
            r.accept_cpu.show(),
            fmt(rate(r.blocks, r.sync_time)),
            format_args!("{:.1}", r.sync_time.as_secs_f64()),
            blocks.join(" + "),
            r.sync_cpu.show(),
        ));
    }
    out.push('\n');
    if !unsupported.is_empty() {
        out.push_str(&format!(
            "Submissions to a read-only replica are not supported by this build (it answers 503 `unavailable`): {}. \
             Those runs' accepted tx/s is the writer's alone, with its share of the clients and transactions.\n\n",
            unsupported.join(", ")
        ));
    }
    out.push_str("Where the bottleneck is, from the CPU columns:\n\n");
    for r in &runs {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64
            * 100.0;
        let said = |phase: &str, c: &CpuUse| {
            let ours = c.total() / cores * 100.0;
            let busy = (c.total() + c.irq + c.others) / cores * 100.0;
            let bound = if busy >= 85.0 {
                "the cores were busy: CPU-bound"
            } else if c.iowait >= 20.0 {
                "the cores were not all busy, and waited for the disk: commits (fsync) bound it"
            } else {
                "the cores were not all busy: waits (commits, round trips between the processes) bound it"
            };
            let noise = if c.others >= 20.0 {
                format!("; other processes took {:.0} % of a core: noisy", c.others)
            } else {
                String::new()
            };
            format!(
                "{phase}: this run {ours:.0} % of the machine's CPU, most of it {}, the machine {busy:.0} % ({bound}{noise})",
                c.largest()
            )
        };
        out.push_str(&format!(
            "- {}: {}; {}.\n",
            r.label,
            said("accepting", &r.accept_cpu),
            said("serving blocks", &r.sync_cpu)
        ));
    }
    for n in notes {
        out.push_str(&format!("- {n}\n"));
    }
    out.push('\n');
    out
}
