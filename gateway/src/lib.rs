//! The Notch reference gateway: a multi-asset UTXO ledger whose blocks are collected into a
//! database mirror, an HTTP/JSON API over that mirror (`/v1`), a relay that persists and
//! tracks submitted transactions, a WebSocket stream of tips and per-address events, and a
//! sandbox mode (faucet, mining on demand, reorg injection) for development and tests.
//!
//! Layout: [`store`] (the storage interface), [`sqlite`] (its SQLite implementation, the
//! default) and [`postgres`] (its PostgreSQL one, `--database`),
//! [`ledger`] (validation, mempool, blocks, reorgs; one writer thread), [`http`] (routes and
//! their limits), `serve` below (connections and their limits), [`keys`] (authority and
//! issuer keys), [`relay`] (the agent relay of ADR 6: phones' tally agents reached through
//! the gateway, ciphertext only), [`health`] (readiness and liveness), [`metrics`] (the
//! Prometheus exposition of `--metrics-listen`), [`throwaway_pg`] (a PostgreSQL cluster for
//! the tests and the benchmark; not used by the gateway).

pub mod error;
pub mod health;
pub mod http;
pub mod keys;
pub mod ledger;
pub mod metrics;
pub mod postgres;
pub mod relay;
pub mod sqlite;
pub mod store;
pub mod throwaway_pg;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use notch_protocol::{Block, ChainParams, public_key};
use tokio::sync::watch;

use crate::keys::Setup;
use crate::ledger::{Engine, EngineConfig, Standby, unix_now};
use crate::postgres::{DatabaseUrl, PgStore};
use crate::sqlite::{SqliteStore, SyncMode};
use crate::store::{LedgerMeta, MirrorStore};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkArg {
    Main,
    Test,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Command-line flags; each can also come from an environment variable.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "notch-gateway",
    version,
    about = "Notch reference gateway (ledger, mirror API, relay, sandbox)"
)]
pub struct Config {
    /// Sandbox mode: fresh sandbox ledger with NOTE, EURT and USDT, keys generated into the
    /// data dir, and the /v1/sandbox/* routes (faucet, mine, reorg).
    #[arg(long, env = "NOTCH_GATEWAY_SANDBOX")]
    pub sandbox: bool,
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(long, env = "NOTCH_GATEWAY_LISTEN", default_value = "127.0.0.1:7420")]
    pub listen: SocketAddr,
    /// Where the mirror database (unless `--database`), the keys (sandbox mode) and
    /// `network.json` live.
    #[arg(long, env = "NOTCH_GATEWAY_DATA_DIR", default_value = ".notch/gateway")]
    pub data_dir: PathBuf,
    /// The mirror on PostgreSQL instead of SQLite in the data dir:
    /// `postgres://user[:password]@host:port/dbname[?sslmode=require]`. The schema is
    /// created in an empty database. One writing gateway (the block producer) per database;
    /// any number of `--read-only` and `--standby` replicas beside it (ADR 8). Plain TCP
    /// unless `sslmode=require` or `--database-ca-file` (then TLS with a checked
    /// certificate).
    #[arg(
        long,
        env = "NOTCH_GATEWAY_DATABASE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<DatabaseUrl>,
    /// With `--database`: TLS to the database, its certificate checked against the CA
    /// certificates in this PEM file (and its host name). Without it, TLS only when the URL
    /// says `sslmode=require`, checked against the Mozilla roots; otherwise plain TCP.
    #[arg(
        long,
        env = "NOTCH_GATEWAY_DATABASE_CA_FILE",
        value_name = "PEM",
        requires = "database"
    )]
    pub database_ca_file: Option<PathBuf>,
    /// With `--database`: an API replica of the gateway that writes that database (ADR 8),
    /// stateless: it serves sync, transaction status and the stream from the database, and
    /// takes submissions (`POST /v1/tx`, `/v1/txs`): it checks them (decoding, rules,
    /// signatures), queues them in the database for the block producer and answers with
    /// the producer's decision (503 after `--submit-wait-secs` when no producer answers;
    /// the submission stays queued). It never makes blocks: no keys, relay, timer or
    /// sandbox commands (503 `unavailable`). Give it the writer's `--finality-depth` and
    /// fee flags (they are part of `/v1/info`).
    #[arg(long, env = "NOTCH_GATEWAY_READ_ONLY", requires = "database")]
    pub read_only: bool,
    /// With `--database`: a replica (as `--read-only`, submissions included) that holds the
    /// writer's keys (`--authority-key-file`, or the sandbox keys file in its data dir) and
    /// takes the block producer's place when the writing gateway dies (its lock on the
    /// database goes with its connection): it loads the pool from the database, decides the
    /// queued submissions and makes blocks from then on. No relay.
    #[arg(
        long,
        env = "NOTCH_GATEWAY_STANDBY",
        requires = "database",
        conflicts_with = "read_only"
    )]
    pub standby: bool,
    /// `--read-only` and `--standby`: seconds a submission waits for the block producer's
    /// answer before it gets 503 `unavailable` (it stays queued in the database and is
    /// decided when a producer runs; submitting it again is safe).
    #[arg(long, env = "NOTCH_GATEWAY_SUBMIT_WAIT_SECS", default_value_t = 10)]
    pub submit_wait_secs: u64,
    /// Seconds between timer blocks; 0 = blocks only on demand. Default: 2 in sandbox, 10
    /// otherwise.
    #[arg(long, env = "NOTCH_GATEWAY_BLOCK_INTERVAL")]
    pub block_interval: Option<u64>,
    /// Confirmations after which a transaction is final.
    #[arg(long, env = "NOTCH_GATEWAY_FINALITY_DEPTH", default_value_t = 6)]
    pub finality_depth: u64,
    #[arg(long, env = "NOTCH_GATEWAY_MAX_BLOCK_TXS", default_value_t = 2000)]
    pub max_block_txs: usize,
    #[arg(long, env = "NOTCH_GATEWAY_MAX_POOL_TXS", default_value_t = 200_000)]
    pub max_pool_txs: usize,
    /// Most pool transactions one client (IP address) may hold, so one sender cannot fill
    /// the pool for everyone; default a tenth of `--max-pool-txs`.
    #[arg(long, env = "NOTCH_GATEWAY_MAX_POOL_PER_CLIENT")]
    pub max_pool_per_client: Option<usize>,
    /// Outside sandbox mode: which network this ledger is.
    #[arg(long, env = "NOTCH_GATEWAY_NETWORK", value_enum)]
    pub network: Option<NetworkArg>,
    /// Outside sandbox mode: file holding the authority's Ed25519 seed (64 hex characters).
    #[arg(long, env = "NOTCH_GATEWAY_AUTHORITY_KEY_FILE")]
    pub authority_key_file: Option<PathBuf>,
    /// Outside sandbox mode: JSON list of assets `{symbol, name, decimals, issuer, native}`,
    /// exactly one native, used when the ledger is created.
    #[arg(long, env = "NOTCH_GATEWAY_ASSETS_FILE")]
    pub assets_file: Option<PathBuf>,
    /// `full` fsyncs every commit (an accepted transaction survives a power cut); `normal`
    /// survives a process crash only.
    #[arg(
        long,
        env = "NOTCH_GATEWAY_SQLITE_SYNC",
        value_enum,
        default_value = "full"
    )]
    pub sqlite_sync: SyncMode,
    #[arg(long, env = "NOTCH_GATEWAY_MIN_FEE_BASE", default_value_t = 1_000)]
    pub min_fee_base: u64,
    #[arg(long, env = "NOTCH_GATEWAY_MIN_FEE_PER_BYTE", default_value_t = 10)]
    pub min_fee_per_byte: u64,
    /// Open connections at once. Beyond it the gateway stops accepting until one closes (new
    /// ones wait in the kernel's listen queue). Keep it below the open-file limit.
    #[arg(long, env = "NOTCH_GATEWAY_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// Open connections per client address (IPv6: per /64); beyond it a new connection gets
    /// 429 `rate_limited` and is closed. 0 = no per-client limit.
    #[arg(
        long,
        env = "NOTCH_GATEWAY_MAX_CONNECTIONS_PER_CLIENT",
        default_value_t = 64
    )]
    pub max_connections_per_client: usize,
    /// Seconds a client has to send a request's headers; also how long an idle kept-alive
    /// connection stays open. Then the connection is closed (no answer: there is no request).
    #[arg(long, env = "NOTCH_GATEWAY_HEADER_TIMEOUT_SECS", default_value_t = 30)]
    pub header_timeout_secs: u64,
    /// Seconds the gateway waits for a client to take any byte of an answer before it closes
    /// the connection (a client that asks and never reads).
    #[arg(long, env = "NOTCH_GATEWAY_WRITE_TIMEOUT_SECS", default_value_t = 30)]
    pub write_timeout_secs: u64,
    /// Requests handled at once; beyond it a request gets 503 `unavailable` at once.
    #[arg(long, env = "NOTCH_GATEWAY_MAX_REQUESTS", default_value_t = 256)]
    pub max_requests: usize,
    /// Threads serving HTTP; 0 = one fewer than the machine's cores, at least one (the
    /// ledger's signature verifier and writer have threads of their own).
    #[arg(long, env = "NOTCH_GATEWAY_HTTP_THREADS", default_value_t = 0)]
    pub http_threads: usize,
    /// Seconds to receive a request's body and answer it; then 408 `timeout`.
    #[arg(long, env = "NOTCH_GATEWAY_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Largest request body, except `POST /v1/txs` (413 `too_large`).
    #[arg(long, env = "NOTCH_GATEWAY_MAX_BODY_BYTES", default_value_t = http::MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Largest `POST /v1/txs` body (413 `too_large`).
    #[arg(long, env = "NOTCH_GATEWAY_MAX_BATCH_BODY_BYTES", default_value_t = http::MAX_BATCH_BODY_BYTES)]
    pub max_batch_body_bytes: usize,
    /// `POST /v1/txs` requests handled at once; beyond it 503 `unavailable`.
    #[arg(long, env = "NOTCH_GATEWAY_MAX_BATCH_REQUESTS", default_value_t = 4)]
    pub max_batch_requests: usize,
    /// Blocks, headers and mempool requests handled at once (their answers are the large
    /// ones); beyond it 503 `unavailable`.
    #[arg(long, env = "NOTCH_GATEWAY_MAX_SYNC_REQUESTS", default_value_t = 32)]
    pub max_sync_requests: usize,
    /// Requests per second per client address (IPv6: per /64), sustained; beyond it 429
    /// `rate_limited` with `Retry-After`. 0 = no rate limit (benchmarks from one address).
    #[arg(long, env = "NOTCH_GATEWAY_RATE_LIMIT_PER_SEC", default_value_t = 100)]
    pub rate_limit_per_sec: u32,
    /// Requests a client may make at once above its rate.
    #[arg(long, env = "NOTCH_GATEWAY_RATE_LIMIT_BURST", default_value_t = 200)]
    pub rate_limit_burst: u32,
    /// Open `/v1/stream` WebSocket sessions; beyond it 503 `unavailable`.
    #[arg(long, env = "NOTCH_GATEWAY_MAX_STREAMS", default_value_t = 256)]
    pub max_streams: usize,
    /// Open `/v1/stream` sessions per client address; beyond it 429 `rate_limited`. 0 = no
    /// per-client limit.
    #[arg(
        long,
        env = "NOTCH_GATEWAY_MAX_STREAMS_PER_CLIENT",
        default_value_t = 16
    )]
    pub max_streams_per_client: usize,
    /// Byte budget of one blocks or mempool answer (block or transaction bytes; at least one
    /// is always sent).
    #[arg(long, env = "NOTCH_GATEWAY_MAX_ANSWER_BYTES", default_value_t = http::MAX_ANSWER_BYTES)]
    pub max_answer_bytes: usize,
    /// MiB that the bodies of blocks, headers and mempool answers may hold together while
    /// clients read them; beyond it such a request gets 503 `unavailable`.
    #[arg(long, env = "NOTCH_GATEWAY_ANSWER_MEMORY_MIB", default_value_t = 256)]
    pub answer_memory_mib: usize,
    /// Apply the per-client limits (rate, connections, streams) to loopback clients too. By
    /// default they are exempt: loopback is the operator's own tools and tests, or a reverse
    /// proxy in front (which must then limit per client itself, as all its clients share
    /// its address here).
    #[arg(long, env = "NOTCH_GATEWAY_LIMIT_LOOPBACK")]
    pub limit_loopback: bool,
    /// The agent relay (ADR 6): where wallet agents that cannot accept connections (phones)
    /// register and connect for their tally partners. Default in sandbox mode: the IP of
    /// `--listen`, its port + 1 (a free port when that is taken, or when `--listen`'s port
    /// is 0); outside sandbox mode the relay is off unless this is given. The address is
    /// printed.
    #[arg(long, env = "NOTCH_GATEWAY_RELAY_LISTEN")]
    pub relay_listen: Option<SocketAddr>,
    /// No agent relay, also in sandbox mode.
    #[arg(long, env = "NOTCH_GATEWAY_NO_RELAY")]
    pub no_relay: bool,
    /// The agents' ports on the relay's IP: `LO-HI`, or `0` for any free port (then a port
    /// stays an agent's across restarts only while it is free). An agent keeps its port
    /// (stored in the mirror database), so its tickets stay valid.
    #[arg(long, env = "NOTCH_GATEWAY_RELAY_PORTS", default_value = "47000-47031")]
    pub relay_ports: notch_protocol::relay::PortRange,
    /// Seconds a partner is held for the agent to come; then its connection is closed.
    #[arg(long, env = "NOTCH_GATEWAY_RELAY_WAIT_SECS", default_value_t = 8)]
    pub relay_wait_secs: u64,
    /// Agents registered with the relay at once.
    #[arg(long, env = "NOTCH_GATEWAY_RELAY_MAX_AGENTS", default_value_t = 1024)]
    pub relay_max_agents: usize,
    /// Partners waiting for one agent at once; more are closed at once.
    #[arg(long, env = "NOTCH_GATEWAY_RELAY_MAX_WAITING", default_value_t = 8)]
    pub relay_max_waiting: usize,
    /// Relayed connections (links) of one agent at once.
    #[arg(long, env = "NOTCH_GATEWAY_RELAY_MAX_LINKS", default_value_t = 16)]
    pub relay_max_links: usize,
    /// MiB one link may carry (both directions); then it is closed.
    #[arg(long, env = "NOTCH_GATEWAY_RELAY_MAX_LINK_MIB", default_value_t = 64)]
    pub relay_max_link_mib: u64,
    /// Seconds one link may last.
    #[arg(
        long,
        env = "NOTCH_GATEWAY_RELAY_MAX_LINK_SECS",
        default_value_t = 3600
    )]
    pub relay_max_link_secs: u64,
    /// Serve `GET /metrics` (Prometheus text format) on this address, apart from the API:
    /// keep it on loopback or a private network (docs/OPERATING.md, "Monitor"). Off unless
    /// given; port 0 picks a free port (the address is printed).
    #[arg(long, env = "NOTCH_GATEWAY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds a replica's tip may differ from the database's before `GET /v1/health`
    /// answers 503 (its follower is not keeping up).
    #[arg(
        long,
        env = "NOTCH_GATEWAY_HEALTH_MAX_BEHIND_SECS",
        default_value_t = 10
    )]
    pub health_max_behind_secs: u64,
    /// Milliseconds `GET /v1/health` waits for the database before it answers 503.
    #[arg(long, env = "NOTCH_GATEWAY_HEALTH_TIMEOUT_MS", default_value_t = 2000)]
    pub health_timeout_ms: u64,
    /// Log format on stderr (`RUST_LOG` filters; default `info`).
    #[arg(
        long,
        env = "NOTCH_GATEWAY_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// A started gateway.
pub struct Running {
    pub addr: SocketAddr,
    /// Where the agent relay takes agents, if it runs.
    pub relay: Option<SocketAddr>,
    /// Where `GET /metrics` is served (`--metrics-listen`).
    pub metrics: Option<SocketAddr>,
    metrics_server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    relay_handle: Option<relay::RelayHandle>,
    pub engine: Arc<Engine>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    timer: Option<tokio::task::JoinHandle<()>>,
    writer: std::thread::JoinHandle<()>,
}

impl Running {
    /// Stops accepting connections, lets in-flight requests finish (so every transaction
    /// that was answered 2xx is persisted), closes streams, stops the timer and the writer.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        let _ = self.shutdown.send(true);
        if let Some(r) = self.relay_handle {
            r.stop().await;
        }
        if let Some(t) = self.timer {
            let _ = t.await;
        }
        if let Some(m) = self.metrics_server {
            let _ = tokio::time::timeout(Duration::from_secs(5), m).await;
        }
        match tokio::time::timeout(Duration::from_secs(20), self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "server error"),
            Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
            Err(_) => tracing::warn!("connections still open after 20 s; stopping anyway"),
        }
        self.engine.shutdown().await;
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        tracing::info!("stopped");
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        let stop = *rx.borrow_and_update();
        if stop || rx.changed().await.is_err() {
            return;
        }
    }
}

/// Writes `network.json` into the data directory: the ledger's identity
/// (network, authority key, genesis id) for the operator to publish, so that
/// wallets need not trust their first contact (`notch --network-file`).
fn write_network_file(dir: &std::path::Path, engine: &Engine) -> anyhow::Result<()> {
    let genesis = engine
        .store
        .header_at(0)?
        .context("the ledger has no genesis block")?;
    let info = http::ledger_info(engine);
    let file = serde_json::json!({
        "network": info.network,
        "authority_key": info.authority_key,
        "genesis": genesis.id().to_hex(),
        "assets": info.assets,
        "params": info.params,
    });
    let path = dir.join("network.json");
    let text = serde_json::to_string_pretty(&file)?;
    std::fs::write(&path, format!("{text}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `mi_option_purge_delay` in `mi_option_t`: 15 both in the mimalloc v3 that libmimalloc-sys
/// 0.1.49 builds by default (what Cargo.lock pins; `c_src/mimalloc/v3/include/mimalloc.h`)
/// and in its v2 (`v2` feature). Its Rust bindings have no constant for it.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// The allocator of the gateway's binaries (their `#[global_allocator]`), whose option
/// [`keep_freed_memory`] sets; named here so that its C library is linked wherever this
/// library is.
pub type Allocator = mimalloc::MiMalloc;

// mimalloc's C API (mimalloc.h), in the library libmimalloc-sys builds and links.
#[allow(unsafe_code)]
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// Turns off mimalloc's purging of freed memory (`mi_option_purge_delay = -1`), unless the
/// environment sets it (`MIMALLOC_PURGE_DELAY`, or its old name `MIMALLOC_RESET_DELAY`): the
/// binaries call this first in `main`, before any thread starts. Under load mimalloc gave
/// freed pages back to the kernel and touched them again a moment later, about 1,000 page
/// faults (and their page zeroing, 4.5 % of the CPU) per 20,000 submissions; without purging
/// the process keeps the memory it has used at its peak (docs/OPERATING.md "Memory").
/// Returns the purge delay now in force, in milliseconds (-1: never).
#[allow(unsafe_code)]
pub fn keep_freed_memory() -> i64 {
    let set_outside = std::env::vars_os().any(|(k, _)| {
        k.to_str().is_some_and(|k| {
            k.eq_ignore_ascii_case("MIMALLOC_PURGE_DELAY")
                || k.eq_ignore_ascii_case("MIMALLOC_RESET_DELAY")
        })
    });
    // SAFETY: plain C calls on mimalloc's option table, with a valid option index; the
    // option is read at each purge decision, so setting it at any time is sound.
    unsafe {
        if !set_outside {
            mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
        mi_option_get(MI_OPTION_PURGE_DELAY) as i64
    }
}

/// The runtime the gateway's HTTP layer runs on, with [`http_threads`] workers.
pub fn runtime(http_threads_wanted: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(http_threads(http_threads_wanted))
        .enable_all()
        .build()
}

/// `--http-threads`: `wanted`, or for 0 one fewer than the cores, at least one. On two
/// cores one HTTP thread beside the verifier and the writer accepts about a fifth more
/// transactions a second than two (bench/results/gateway.md): fewer threads to wake and
/// steal work between, and the same cores.
pub fn http_threads(wanted: usize) -> usize {
    if wanted > 0 {
        return wanted;
    }
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

/// Opens the mirror (PostgreSQL with `--database`, else SQLite in the data dir), creates the
/// ledger in an empty one, starts the engine and writes `network.json`. Blocking: never on a
/// runtime worker thread.
fn open_ledger(
    config: &Config,
    setup: Setup,
    interval: u64,
) -> anyhow::Result<(Arc<Engine>, std::thread::JoinHandle<()>)> {
    let (store, place): (Arc<dyn MirrorStore>, String) = match &config.database {
        Some(url) => {
            let shown = url.redacted();
            let store = PgStore::open_with_ca(url, config.database_ca_file.as_deref())
                .with_context(|| format!("cannot open the mirror database {shown}"))?;
            tracing::info!(database = %shown, tls = store.tls(), "mirror on PostgreSQL");
            (Arc::new(store), format!("the database {shown}"))
        }
        None => {
            let path = config.data_dir.join("mirror.sqlite");
            let store = SqliteStore::open(&path, config.sqlite_sync)
                .context("cannot open the mirror database")?;
            (
                Arc::new(store),
                format!("the database in {}", config.data_dir.display()),
            )
        }
    };
    let wanted = LedgerMeta {
        network: setup.network,
        authority: public_key(&setup.authority),
        assets: setup.assets.clone(),
    };
    let meta = match store.load_meta()? {
        None => {
            let mut genesis = Block::build(setup.network, None, unix_now(), 0, vec![]);
            genesis.header.sign(&setup.authority);
            store.init(&wanted, &genesis)?;
            tracing::info!(network = %setup.network, genesis = %genesis.id(), "created a new ledger");
            wanted
        }
        Some(m) => {
            if m.network != wanted.network || m.authority != wanted.authority {
                let other = if config.database.is_some() {
                    "use another --database"
                } else {
                    "use another --data-dir"
                };
                bail!(
                    "{place} belongs to another ledger (network {}, authority {}); {other}",
                    m.network,
                    m.authority
                );
            }
            m
        }
    };
    let params = config.chain_params(&meta)?;
    let engine_config = config.engine_config(interval);
    let (engine, writer) = Engine::start(
        store,
        meta,
        params,
        engine_config,
        setup.authority,
        setup.issuers,
    )?;
    write_network_file(&config.data_dir, &engine)?;
    Ok((engine, writer))
}

/// A read-only replica's engine (`--read-only`) on the database another gateway writes.
/// Blocking, as `open_ledger`.
fn open_replica(
    config: &Config,
    interval: u64,
    standby: Option<Setup>,
) -> anyhow::Result<(Arc<Engine>, std::thread::JoinHandle<()>)> {
    let url = config
        .database
        .as_ref()
        .context("--read-only needs --database")?;
    let shown = url.redacted();
    let store = PgStore::open_replica(url, config.database_ca_file.as_deref())
        .with_context(|| format!("cannot open the mirror database {shown}"))?;
    tracing::info!(database = %shown, tls = store.tls(), "read-only replica of the mirror on PostgreSQL");
    let store: Arc<dyn MirrorStore> = Arc::new(store);
    let meta = store.load_meta()?.with_context(|| {
        format!("the database {shown} holds no ledger yet: start the gateway that writes it first")
    })?;
    let params = config.chain_params(&meta)?;
    let engine_config = config.engine_config(interval);
    let standby = match standby {
        Some(s) => {
            if s.network != meta.network || public_key(&s.authority) != meta.authority {
                bail!(
                    "the database {shown} belongs to another ledger (network {}, authority {}) than this standby's keys",
                    meta.network,
                    meta.authority
                );
            }
            Some(Standby {
                authority: s.authority,
                issuers: s.issuers,
            })
        }
        None => None,
    };
    let (engine, follower) = Engine::start_read_only(store, meta, params, engine_config, standby)?;
    write_network_file(&config.data_dir, &engine)?;
    Ok((engine, follower))
}

/// Opens (or creates) the ledger, binds the listener and starts serving.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    if let Some(url) = &config.database {
        url.config().map_err(anyhow::Error::msg)?;
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    // Before the engine starts: its writer counts the pool it loads.
    if config.metrics_listen.is_some() {
        metrics::install().map_err(anyhow::Error::msg)?;
    }
    // A replica signs nothing: no keys.
    let setup = if config.read_only {
        None
    } else if config.sandbox {
        Some(keys::sandbox_setup(&config.data_dir)?)
    } else {
        Some(keys::operator_setup(&config)?)
    };
    let replica = config.read_only || config.standby;
    // A replica makes no blocks, but says the writer's interval in /v1/info (the same
    // flags give the same answer).
    let interval = config
        .block_interval
        .unwrap_or(if config.sandbox { 2 } else { 10 });
    // Off the runtime's threads: the PostgreSQL client must not be called on them, and
    // opening, loading and writing the network file are blocking work anyway.
    let (engine, writer) = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || match setup {
            Some(setup) if !replica => open_ledger(&config, setup, interval),
            setup => open_replica(&config, interval, setup),
        })
        .await
        .context("the ledger's start failed")??
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let limits = http::Limits::new(config.http_limits());
    let health = Arc::new(health::Health::new(health::HealthConfig {
        role: if config.read_only {
            health::Role::ReadOnly
        } else if config.standby {
            health::Role::Standby
        } else {
            health::Role::Writer
        },
        backend: if config.database.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        timeout: Duration::from_millis(config.health_timeout_ms.max(1)),
        max_behind: Duration::from_secs(config.health_max_behind_secs),
    }));
    let state = http::AppState {
        engine: engine.clone(),
        limits: limits.clone(),
        shutdown: shutdown_rx.clone(),
        health,
    };
    let (metrics_addr, metrics_server) = match config.metrics_listen {
        Some(at) => {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} for metrics"))?;
            let bound = listener.local_addr()?;
            // A scraper or two: few connections, short timeouts.
            let limits = serve::ConnLimits {
                max: 16,
                per_client: 0,
                header_timeout: Duration::from_secs(10),
                write_timeout: Duration::from_secs(10),
                limit_loopback: false,
            };
            let server = tokio::spawn(serve::serve(
                listener,
                http::metrics_router(state.clone()),
                limits,
                shutdown_rx.clone(),
            ));
            (Some(bound), Some(server))
        }
        None => (None, None),
    };
    let app = http::router(state);
    let server = tokio::spawn(serve::serve(
        listener,
        app,
        config.conn_limits(),
        shutdown_rx.clone(),
    ));
    {
        // The rate limiter keeps a bucket per client seen; quiet ones are forgotten.
        let mut rx = shutdown_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => limits.forget_idle_clients(),
                    _ = stopped(&mut rx) => break,
                }
            }
        });
    }
    // A standby's timer waits until it has taken the writer's place.
    let timer = (interval > 0 && !config.read_only).then(|| {
        let engine = engine.clone();
        let mut rx = shutdown_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(interval));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if engine.read_only() {
                            continue;
                        }
                        if let Err(f) = engine.mine(1).await {
                            tracing::warn!(code = %f.error.code, message = %f.error.message, "timer block failed");
                        }
                    }
                    _ = stopped(&mut rx) => break,
                }
            }
        })
    });
    let relay_handle = match config.relay_config(addr) {
        Some(relay_config) => {
            let started = relay::start(
                relay_config.clone(),
                engine.store.clone(),
                shutdown_rx.clone(),
            )
            .await;
            match started {
                Ok(handle) => Some(handle),
                // The sandbox's own choice (the HTTP port + 1) may be taken: any
                // free port then, printed like any other. A port asked for is not
                // replaced.
                Err(e) if config.relay_listen.is_none() && relay_config.listen.port() != 0 => {
                    tracing::warn!("{e:#}; the sandbox relay takes a free port");
                    let mut any = relay_config;
                    any.listen.set_port(0);
                    Some(relay::start(any, engine.store.clone(), shutdown_rx.clone()).await?)
                }
                Err(e) => return Err(e),
            }
        }
        None => None,
    };
    tracing::info!(%addr, sandbox = config.sandbox, block_interval = interval, "gateway started");
    Ok(Running {
        addr,
        relay: relay_handle.as_ref().map(|r| r.addr),
        metrics: metrics_addr,
        metrics_server,
        relay_handle,
        engine,
        shutdown,
        server,
        timer,
        writer,
    })
}

impl Config {
    /// The ledger's rules: the native asset of `meta` and the fee flags.
    fn chain_params(&self, meta: &LedgerMeta) -> anyhow::Result<ChainParams> {
        let native = meta
            .assets
            .iter()
            .find(|a| a.native)
            .context("the ledger has no native asset")?
            .id();
        Ok(ChainParams {
            network: meta.network,
            native_asset: native,
            min_fee_base: self.min_fee_base,
            min_fee_per_byte: self.min_fee_per_byte,
        })
    }

    fn engine_config(&self, block_interval_secs: u64) -> EngineConfig {
        EngineConfig {
            finality_depth: self.finality_depth.max(1),
            max_block_txs: self
                .max_block_txs
                .clamp(1, notch_protocol::block::MAX_BLOCK_TXS),
            max_pool_txs: self.max_pool_txs.max(1),
            max_pool_per_client: self
                .max_pool_per_client
                .unwrap_or(self.max_pool_txs / 10)
                .max(1),
            block_interval_secs,
            sandbox: self.sandbox,
            submit_wait: Duration::from_secs(self.submit_wait_secs.max(1)),
        }
    }

    /// The relay's settings, if it runs (see `--relay-listen`).
    fn relay_config(&self, http: SocketAddr) -> Option<relay::RelayConfig> {
        if self.no_relay || self.read_only || self.standby {
            return None;
        }
        let listen = match self.relay_listen {
            Some(listen) => listen,
            None if self.sandbox => {
                let port = match self.listen.port() {
                    0 => 0,
                    p => p.checked_add(1)?,
                };
                SocketAddr::new(http.ip(), port)
            }
            None => return None,
        };
        let mut config = relay::RelayConfig::new(listen, self.relay_ports);
        config.wait = Duration::from_secs(self.relay_wait_secs.max(1));
        config.max_agents = self.relay_max_agents.max(1);
        config.max_waiting = self.relay_max_waiting.max(1);
        config.max_links = self.relay_max_links.max(1);
        config.max_link_bytes = self.relay_max_link_mib.max(1).saturating_mul(1024 * 1024);
        config.max_link_time = Duration::from_secs(self.relay_max_link_secs.max(1));
        Some(config)
    }

    fn http_limits(&self) -> http::HttpLimits {
        http::HttpLimits {
            max_requests: self.max_requests.max(1),
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            max_body_bytes: self.max_body_bytes,
            max_batch_body_bytes: self.max_batch_body_bytes,
            max_batch_requests: self.max_batch_requests.max(1),
            max_sync_requests: self.max_sync_requests.max(1),
            rate_limit_per_sec: self.rate_limit_per_sec,
            rate_limit_burst: self.rate_limit_burst,
            max_streams: self.max_streams.max(1),
            max_streams_per_client: self.max_streams_per_client,
            max_answer_bytes: self.max_answer_bytes.max(1),
            limit_loopback: self.limit_loopback,
            answer_memory_bytes: self.answer_memory_mib.max(1).saturating_mul(1024 * 1024),
        }
    }

    fn conn_limits(&self) -> serve::ConnLimits {
        serve::ConnLimits {
            max: self.max_connections.clamp(1, 1_000_000),
            per_client: self.max_connections_per_client,
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            write_timeout: Duration::from_secs(self.write_timeout_secs.max(1)),
            limit_loopback: self.limit_loopback,
        }
    }
}

/// The connection layer: accepts TCP connections within the connection limits and serves
/// each with hyper's HTTP/1 server. It is not `axum::serve` because that gives no way to set
/// hyper's timer, without which hyper has no header read timeout: a client sending its
/// headers a byte a minute would hold its connection forever.
mod serve {
    use std::io;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use axum::Router;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use notch_protocol::api::codes;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
    use tokio::time::{Instant, Sleep};
    use tower::Service;

    use crate::error::Failure;
    use crate::http::{ClientSlot, PerClient, client_key};

    /// Largest request head (request line and headers); beyond it hyper answers 431.
    const MAX_HEAD_BYTES: usize = 32 * 1024;
    /// hyper's read and write buffers per connection (its default is about 400 KiB).
    const MAX_CONN_BUFFER: usize = 128 * 1024;
    /// Lingering close: how long, and how much of what a client still sends, is read and
    /// dropped after the gateway has answered and closed its side.
    const LINGER: Duration = Duration::from_secs(2);
    const LINGER_BYTES: usize = 8 * 1024 * 1024;

    #[derive(Clone, Debug)]
    pub struct ConnLimits {
        pub max: usize,
        pub per_client: usize,
        pub header_timeout: Duration,
        pub write_timeout: Duration,
        pub limit_loopback: bool,
    }

    /// What an open connection holds: its global slot and its client's slot, released when
    /// the connection (or the WebSocket it was upgraded to) is dropped.
    struct Slots {
        _global: OwnedSemaphorePermit,
        _client: ClientSlot,
    }

    /// A TCP stream that holds its connection's slots and closes itself when a write makes no
    /// progress for `write_timeout`: hyper has no write timeout, so a client that asks for a
    /// large answer and never reads would hold the connection (and the answer) forever.
    /// Its shutdown lingers (see `poll_shutdown`).
    struct LimitedIo {
        tcp: TcpStream,
        write_timeout: Duration,
        stall: Pin<Box<Sleep>>,
        stalled: bool,
        /// Set once the write side is shut: until when the rest of the input is drained.
        linger: Option<Pin<Box<Sleep>>>,
        lingered: usize,
        _slots: Slots,
    }

    impl LimitedIo {
        fn new(tcp: TcpStream, write_timeout: Duration, slots: Slots) -> LimitedIo {
            LimitedIo {
                tcp,
                write_timeout,
                stall: Box::pin(tokio::time::sleep(write_timeout)),
                stalled: false,
                linger: None,
                lingered: 0,
                _slots: slots,
            }
        }

        /// Called with the result of a write: progress clears the stall; a write that waits
        /// starts the stall clock (once) and fails when it runs out.
        fn watch<T>(
            &mut self,
            cx: &mut Context<'_>,
            r: Poll<io::Result<T>>,
        ) -> Poll<io::Result<T>> {
            if r.is_ready() {
                self.stalled = false;
                return r;
            }
            if !self.stalled {
                self.stalled = true;
                let deadline = Instant::now() + self.write_timeout;
                self.stall.as_mut().reset(deadline);
            }
            match self.stall.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took no bytes within the write timeout",
                ))),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    impl AsyncRead for LimitedIo {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for LimitedIo {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let r = Pin::new(&mut this.tcp).poll_write(cx, buf);
            this.watch(cx, r)
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let r = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
            this.watch(cx, r)
        }

        fn is_write_vectored(&self) -> bool {
            self.tcp.is_write_vectored()
        }

        /// A TCP flush is a no-op that is always ready: it says nothing about progress, so it
        /// neither starts nor clears the stall.
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
        }

        /// Shuts the write side, then reads and drops what the client still sends, for at
        /// most `LINGER` and `LINGER_BYTES`: closing a socket with unread input resets the
        /// connection, and the reset can destroy the answer before the client reads it (a
        /// body refused unread, e.g. 413, is exactly that case).
        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            if this.linger.is_none() {
                std::task::ready!(Pin::new(&mut this.tcp).poll_shutdown(cx))?;
                this.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
            }
            let mut scratch = [0u8; 8192];
            while this.lingered < LINGER_BYTES {
                let mut buf = ReadBuf::new(&mut scratch);
                match Pin::new(&mut this.tcp).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                    Poll::Ready(Ok(())) => this.lingered += buf.filled().len(),
                    Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                    Poll::Pending => break,
                }
            }
            if this.lingered >= LINGER_BYTES {
                return Poll::Ready(Ok(()));
            }
            match this.linger.as_mut().map(|t| t.as_mut().poll(cx)) {
                Some(Poll::Pending) => Poll::Pending,
                _ => Poll::Ready(Ok(())),
            }
        }
    }

    /// Serves until the shutdown flag is set, then stops accepting, lets every connection
    /// finish its request in flight, and returns once all connections (WebSockets too) are
    /// closed.
    pub async fn serve(
        listener: TcpListener,
        app: Router,
        limits: ConnLimits,
        mut shutdown: watch::Receiver<bool>,
    ) -> io::Result<()> {
        let global = Arc::new(Semaphore::new(limits.max));
        let per_client = PerClient::new(limits.per_client);
        let mut make = app.into_make_service_with_connect_info::<SocketAddr>();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_header_size(MAX_HEAD_BYTES)
            .max_buf_size(MAX_CONN_BUFFER);
        loop {
            // A free slot first: at the limit, new connections wait in the listen queue
            // instead of being accepted and dropped.
            let global_slot = tokio::select! {
                slot = global.clone().acquire_owned() => match slot {
                    Ok(s) => s,
                    Err(_) => break,
                },
                _ = crate::stopped(&mut shutdown) => break,
            };
            let (tcp, addr) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                },
                _ = crate::stopped(&mut shutdown) => break,
            };
            // Answers are small writes that must not wait for Nagle.
            let _ = tcp.set_nodelay(true);
            let client = client_key(addr.ip());
            let client_slot = if limits.limit_loopback || !client.is_loopback() {
                per_client.try_acquire(client)
            } else {
                Some(ClientSlot::unlimited())
            };
            let Some(client_slot) = client_slot else {
                tokio::spawn(refuse(tcp, global_slot, per_client.max()));
                continue;
            };
            let io = LimitedIo::new(
                tcp,
                limits.write_timeout,
                Slots {
                    _global: global_slot,
                    _client: client_slot,
                },
            );
            // IntoMakeServiceWithConnectInfo is always ready; it adds the client's address
            // to every request of the connection (the per-client limits read it).
            let service = match make.call(addr).await {
                Ok(s) => s,
                Err(never) => match never {},
            };
            let conn = http
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
                .with_upgrades();
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                let mut conn = std::pin::pin!(conn);
                let result = tokio::select! {
                    r = conn.as_mut() => r,
                    _ = crate::stopped(&mut stop) => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = result {
                    // Timeouts, resets and garbage from clients are their business.
                    tracing::debug!(client = %addr, error = %e, "connection ended");
                }
            });
        }
        drop(listener);
        // Every open connection holds a slot: all slots back means all are closed.
        let _ = global.acquire_many(limits.max as u32).await;
        Ok(())
    }

    /// An accept error: the ones about a single connection are ignored; others (out of file
    /// descriptors) are logged and retried after a pause, as axum::serve does.
    async fn accept_error(e: io::Error) {
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
        ) {
            return;
        }
        tracing::error!(error = %e, "accept failed; retrying in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    /// Refuses a connection of a client that has its most open: reads its request head (an
    /// HTTP client takes an answer before its request for a broken connection), answers a
    /// JSON 429 `rate_limited` and closes, lingering as `LimitedIo` does. At most 2 s and
    /// 64 KiB read, holding the global slot meanwhile, so refusals too are bounded.
    async fn refuse(mut tcp: TcpStream, _slot: OwnedSemaphorePermit, max: usize) {
        crate::metrics::rate_limited("connections");
        let error = Failure::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            format!("this address has {max} connections open, its most; reuse one or retry later"),
        )
        .into_api_error();
        let body = serde_json::to_string(&error).unwrap_or_default();
        let answer = format!(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                match tcp.read(&mut buf).await? {
                    0 => break,
                    n => head.extend_from_slice(&buf[..n]),
                }
            }
            tcp.write_all(answer.as_bytes()).await?;
            tcp.shutdown().await?;
            let mut read = head.len();
            while read < 64 * 1024 {
                match tcp.read(&mut buf).await? {
                    0 => break,
                    n => read += n,
                }
            }
            io::Result::Ok(())
        })
        .await;
    }
}
