//! The Notch reference gateway: a multi-asset UTXO ledger whose blocks are collected into a
//! database mirror, an HTTP/JSON API over that mirror (`/v1`), a relay that persists and
//! tracks submitted transactions, a WebSocket stream of tips and per-address events, and a
//! sandbox mode (faucet, mining on demand, reorg injection) for development and tests.
//!
//! Layout: [`store`] (the storage interface) and [`sqlite`] (its SQLite implementation),
//! [`ledger`] (validation, mempool, blocks, reorgs; one writer thread), [`http`] (routes),
//! [`keys`] (authority and issuer keys).

pub mod error;
pub mod http;
pub mod keys;
pub mod ledger;
pub mod sqlite;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::serve::ListenerExt;
use notch_protocol::{Block, ChainParams, public_key};
use tokio::sync::watch;

use crate::ledger::{Engine, EngineConfig, unix_now};
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
    /// Where the mirror database (and, in sandbox mode, the keys) live.
    #[arg(long, env = "NOTCH_GATEWAY_DATA_DIR", default_value = ".notch/gateway")]
    pub data_dir: PathBuf,
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
        if let Some(t) = self.timer {
            let _ = t.await;
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

/// Opens (or creates) the ledger in `config.data_dir`, binds the listener and starts serving.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let setup = if config.sandbox {
        keys::sandbox_setup(&config.data_dir)?
    } else {
        keys::operator_setup(&config)?
    };
    let store: Arc<dyn MirrorStore> = Arc::new(
        SqliteStore::open(&config.data_dir.join("mirror.sqlite"), config.sqlite_sync)
            .context("cannot open the mirror database")?,
    );
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
                bail!(
                    "the database in {} belongs to another ledger (network {}, authority {}); use another --data-dir",
                    config.data_dir.display(),
                    m.network,
                    m.authority
                );
            }
            m
        }
    };
    let native = meta
        .assets
        .iter()
        .find(|a| a.native)
        .context("the ledger has no native asset")?
        .id();
    let params = ChainParams {
        network: meta.network,
        native_asset: native,
        min_fee_base: config.min_fee_base,
        min_fee_per_byte: config.min_fee_per_byte,
    };
    let interval = config
        .block_interval
        .unwrap_or(if config.sandbox { 2 } else { 10 });
    let engine_config = EngineConfig {
        finality_depth: config.finality_depth.max(1),
        max_block_txs: config
            .max_block_txs
            .clamp(1, notch_protocol::block::MAX_BLOCK_TXS),
        max_pool_txs: config.max_pool_txs.max(1),
        max_pool_per_client: config
            .max_pool_per_client
            .unwrap_or(config.max_pool_txs / 10)
            .max(1),
        block_interval_secs: interval,
        sandbox: config.sandbox,
    };
    let (engine, writer) = Engine::start(
        store,
        meta,
        params,
        engine_config,
        setup.authority,
        setup.issuers,
    )?;

    write_network_file(&config.data_dir, &engine)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let app = http::router(http::AppState {
        engine: engine.clone(),
        shutdown: shutdown_rx.clone(),
    });
    let mut rx = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                stopped(&mut rx).await;
            })
            .await
    });
    let timer = (interval > 0).then(|| {
        let engine = engine.clone();
        let mut rx = shutdown_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(interval));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(f) = engine.mine(1).await {
                            tracing::warn!(code = %f.error.code, message = %f.error.message, "timer block failed");
                        }
                    }
                    _ = stopped(&mut rx) => break,
                }
            }
        })
    });
    tracing::info!(%addr, sandbox = config.sandbox, block_interval = interval, "gateway started");
    Ok(Running {
        addr,
        engine,
        shutdown,
        server,
        timer,
        writer,
    })
}
