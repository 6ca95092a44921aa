//! `notch-gateway-populate`: writes a large sandbox ledger straight into a data dir, in the
//! exact on-disk format `notch-gateway --sandbox --data-dir DIR` serves (same keys file, same
//! `SqliteStore`, blocks built and signed by the same `Block::build` / `BlockHeader::sign` the
//! ledger engine uses), much faster than submitting every transaction over HTTP.
//!
//! Every transaction is a valid faucet-style mint (one issuance signed by the sandbox issuer
//! of NOTE, EURT or USDT in turn, one output), so every block passes `verify_block` and its
//! header `verify_header`. One transaction in `--pay-every` pays one of the public keys in
//! `--pay-to` (a file of hex keys, one a line) in turn; the others pay keys from a pool of
//! random keys.
//!
//! `notch-gateway-populate --data-dir DIR --txs 1000000 --block-txs 2000 --pay-every 1000 --pay-to KEYS`
//!
//! Signing runs on a producer thread while the main thread writes blocks to SQLite
//! (synchronous=NORMAL, one database transaction per block). On success the tool writes
//! `populated.json` into the data dir (parameters and timings) and prints it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use notch_gateway::keys;
use notch_gateway::ledger::unix_now;
use notch_gateway::sqlite::{SqliteStore, SyncMode};
use notch_gateway::store::{LedgerMeta, MirrorStore};
use notch_protocol::ed25519_dalek::SigningKey;
use notch_protocol::{Block, Issuance, Network, Output, PublicKey, Transaction, public_key};

#[derive(Parser, Debug)]
#[command(about = "Writes a large, valid sandbox ledger into a fresh gateway data dir")]
struct Args {
    /// The (new or empty) sandbox data dir.
    #[arg(long)]
    data_dir: PathBuf,
    /// Transactions to write (rounded up to whole blocks).
    #[arg(long, default_value_t = 1_000_000)]
    txs: u64,
    /// Transactions per block (at most the protocol's MAX_BLOCK_TXS).
    #[arg(long, default_value_t = 2000)]
    block_txs: usize,
    /// One transaction in this many pays a key of `--pay-to`.
    #[arg(long, default_value_t = 1000)]
    pay_every: u64,
    /// File of hex public keys (one a line) to pay in turn.
    #[arg(long)]
    pay_to: Option<PathBuf>,
    /// Distinct random keys the other transactions pay.
    #[arg(long, default_value_t = 50_000)]
    random_keys: usize,
}

/// Amount paid to a `--pay-to` key (base units).
const WALLET_AMOUNT: u64 = 1_000_000;

fn random_seed() -> anyhow::Result<[u8; 32]> {
    let mut s = [0u8; 32];
    getrandom::fill(&mut s).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(s)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.block_txs == 0 || args.block_txs > notch_protocol::block::MAX_BLOCK_TXS {
        bail!(
            "--block-txs must be 1..={}",
            notch_protocol::block::MAX_BLOCK_TXS
        );
    }
    if args.pay_every == 0 || args.random_keys == 0 {
        bail!("--pay-every and --random-keys must be at least 1");
    }
    let pay_to: Vec<PublicKey> = match &args.pay_to {
        None => Vec::new(),
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read {}", p.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| PublicKey::from_hex(l).map_err(|e| anyhow::anyhow!("{l:?}: {e}")))
            .collect::<anyhow::Result<_>>()?,
    };
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let db = args.data_dir.join("mirror.sqlite");
    if db.exists() {
        bail!("{} already exists; use an empty dir", db.display());
    }
    let started = Instant::now();
    let setup = keys::sandbox_setup(&args.data_dir)?;
    let store = SqliteStore::open(&db, SyncMode::Normal).context("cannot open the database")?;
    let meta = LedgerMeta {
        network: setup.network,
        authority: public_key(&setup.authority),
        assets: setup.assets.clone(),
    };
    let now = unix_now();
    let mut genesis = Block::build(setup.network, None, now, 0, vec![]);
    genesis.header.sign(&setup.authority);
    store.init(&meta, &genesis)?;

    // (issuer key, issuer public key, label, asset id) of each sandbox asset.
    let mut assets = Vec::new();
    for a in &meta.assets {
        let key = setup
            .issuers
            .get(&a.id())
            .with_context(|| format!("no issuer key for {}", a.symbol))?
            .clone();
        assets.push((key, a.issuer, a.symbol.clone(), a.id()));
    }
    let assets = Arc::new(assets);
    let mut randoms = Vec::with_capacity(args.random_keys);
    for _ in 0..args.random_keys {
        randoms.push(public_key(&SigningKey::from_bytes(&random_seed()?)));
    }
    let blocks = args.txs.div_ceil(args.block_txs as u64);
    let block_txs = args.block_txs;
    let pay_every = args.pay_every;
    let salt = u64::from_le_bytes(random_seed()?[..8].try_into().unwrap_or([0; 8]));

    // Producer: builds and signs the transactions of each block; the main thread links,
    // signs and stores the blocks.
    let (send, recv) = std::sync::mpsc::sync_channel::<Vec<Transaction>>(4);
    let producer = {
        let assets = assets.clone();
        let pay_to = pay_to.clone();
        let network = setup.network;
        std::thread::Builder::new()
            .name("populate-sign".into())
            .spawn(move || -> (u64, f64) {
                let sign_started = Instant::now();
                let mut paid = 0u64;
                for b in 0..blocks {
                    let mut txs = Vec::with_capacity(block_txs);
                    for j in 0..block_txs as u64 {
                        let g = b * block_txs as u64 + j;
                        let (key, issuer, label, asset) =
                            &assets[(g % assets.len() as u64) as usize];
                        let to_wallet = !pay_to.is_empty() && g % pay_every == pay_every / 2;
                        let (owner, amount) = if to_wallet {
                            paid += 1;
                            (
                                pay_to[((g / pay_every) % pay_to.len() as u64) as usize],
                                WALLET_AMOUNT,
                            )
                        } else {
                            (
                                randoms[(g.wrapping_mul(2_654_435_761) % randoms.len() as u64)
                                    as usize],
                                1 + g % 997,
                            )
                        };
                        txs.push(mint(
                            network,
                            key,
                            *issuer,
                            label,
                            *asset,
                            owner,
                            amount,
                            salt ^ g,
                        ));
                    }
                    if send.send(txs).is_err() {
                        break;
                    }
                }
                (paid, sign_started.elapsed().as_secs_f64())
            })
            .context("cannot start the signing thread")?
    };
    let mut prev = genesis.header.clone();
    let mut written = 0u64;
    let mut bytes = 0u64;
    let mut store_secs = 0.0;
    while let Ok(txs) = recv.recv() {
        written += txs.len() as u64;
        let mut block = Block::build(Network::Sandbox, Some(&prev), now, 0, txs);
        block.header.sign(&setup.authority);
        bytes += block.encode().len() as u64;
        let t = Instant::now();
        store.apply_block(&block)?;
        store_secs += t.elapsed().as_secs_f64();
        prev = block.header;
        if prev.height.is_multiple_of(50) {
            eprintln!(
                "populate: block {} / {blocks}, {written} txs, {:.0} s",
                prev.height,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let (paid, sign_secs) = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the signing thread panicked"))?;
    if prev.height != blocks {
        bail!("wrote {} blocks of {blocks}", prev.height);
    }
    drop(store);
    let summary = serde_json::json!({
        "txs": written,
        "blocks": blocks,
        "block_txs": block_txs,
        "pay_every": pay_every,
        "paid_to_listed_keys": paid,
        "listed_keys": pay_to.len(),
        "random_keys": args.random_keys,
        "block_bytes": bytes,
        "secs": started.elapsed().as_secs_f64(),
        "producer_secs": sign_secs,
        "sqlite_apply_secs": store_secs,
    });
    let text = serde_json::to_string_pretty(&summary)?;
    std::fs::write(args.data_dir.join("populated.json"), &text)
        .context("cannot write populated.json")?;
    println!("{text}");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn mint(
    network: Network,
    key: &SigningKey,
    issuer: PublicKey,
    label: &str,
    asset: notch_protocol::AssetId,
    owner: PublicKey,
    amount: u64,
    nonce: u64,
) -> Transaction {
    let mut tx = Transaction::new(network);
    tx.issuances = vec![Issuance {
        issuer,
        label: label.to_owned(),
        mint: amount,
        burn: 0,
    }];
    tx.outputs = vec![Output {
        asset,
        amount,
        owner,
    }];
    tx.nonce = nonce;
    // One issuance, one signer: cannot fail.
    let _ = tx.sign(&[key]);
    tx
}
