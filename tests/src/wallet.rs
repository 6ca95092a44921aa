//! Helpers for the wallet tests: async calls to a sandbox gateway, wallets
//! with an in-memory secret store, and a tampering HTTP proxy on loopback.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use notch_core::secrets::MemorySecretStore;
use notch_core::{Network, Wallet, WalletConfig};
use notch_protocol::{AssetId, Block, BlockHeader, PublicKey, Transaction};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Async client of a sandbox gateway's API.
#[derive(Clone)]
pub struct Gw {
    pub url: String,
    http: reqwest::Client,
}

impl Gw {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.try_post(path, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {v}");
        v
    }

    /// Like [`Gw::post`], but returns the HTTP status with the body instead
    /// of failing on an error answer.
    pub async fn try_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The id (hex) of the asset with this symbol.
    pub async fn asset_id(&self, symbol: &str) -> String {
        let info = self.get("/v1/info").await;
        info["assets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["symbol"] == symbol)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Mints `amount` base units of `asset` (symbol) to `address`; returns the txid.
    pub async fn faucet(&self, address: &str, asset: &str, amount: u64) -> String {
        let v = self
            .post(
                "/v1/sandbox/faucet",
                json!({"address": address, "asset": asset, "amount": amount}),
            )
            .await;
        v["txid"].as_str().unwrap().to_owned()
    }

    pub async fn mine(&self, blocks: u32) -> Value {
        self.post("/v1/sandbox/mine", json!({ "blocks": blocks }))
            .await
    }

    pub async fn reorg(&self, depth: u32) -> Value {
        self.post("/v1/sandbox/reorg", json!({ "depth": depth }))
            .await
    }

    /// A reorg whose first new block holds `include` (transaction hex).
    pub async fn reorg_with(&self, depth: u32, include: &[String]) -> Value {
        self.post(
            "/v1/sandbox/reorg",
            json!({ "depth": depth, "include_txs": include }),
        )
        .await
    }

    pub async fn tip(&self) -> u64 {
        self.get("/v1/info").await["tip"]["height"]
            .as_u64()
            .unwrap()
    }

    pub async fn tx_state(&self, txid: &str) -> String {
        let v = self.get(&format!("/v1/tx/{txid}/status")).await;
        v["status"]["state"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v["code"].as_str().unwrap_or("?").to_owned())
    }

    /// Sum of the best chain's unspent outputs of `addresses`, per asset id
    /// (in `u128`: a sum of `u64` outputs may not fit in a `u64`).
    pub async fn balances_of(&self, addresses: &[String]) -> HashMap<String, u128> {
        let mut out = HashMap::new();
        for a in addresses {
            let v = self.get(&format!("/v1/address/{a}/utxos")).await;
            assert!(
                v["more"] != json!(true),
                "{a} has more outputs than one answer holds"
            );
            for u in v["utxos"].as_array().unwrap() {
                *out.entry(u["asset"].as_str().unwrap().to_owned())
                    .or_insert(0) += u128::from(u["amount"].as_u64().unwrap());
            }
        }
        out
    }

    /// The id (hex) of the best chain's block at `height`, and its time.
    pub async fn block_at(&self, height: u64) -> (String, u64) {
        let v = self.get(&format!("/v1/blocks?from={height}&limit=1")).await;
        let b = &v["blocks"][0];
        let block = Block::decode(&hex::decode(b["hex"].as_str().unwrap()).unwrap()).unwrap();
        (b["id"].as_str().unwrap().to_owned(), block.header.time)
    }

    /// The best chain's headers from the genesis, oldest first.
    pub async fn headers(&self) -> Vec<BlockHeader> {
        let mut out: Vec<BlockHeader> = Vec::new();
        loop {
            let locator: Vec<String> = out.last().map(|h| h.id().to_hex()).into_iter().collect();
            let v = self
                .post("/v1/headers", json!({ "locator": locator }))
                .await;
            for h in v["headers"].as_array().unwrap() {
                out.push(
                    BlockHeader::decode(&hex::decode(h["hex"].as_str().unwrap()).unwrap()).unwrap(),
                );
            }
            if v["more"] != json!(true) {
                return out;
            }
        }
    }

    /// The full encoding (hex) of a transaction the gateway knows.
    pub async fn tx_hex(&self, txid: &str) -> Option<String> {
        let v = self.get(&format!("/v1/tx/{txid}")).await;
        v["hex"].as_str().map(str::to_owned)
    }
}

pub fn config(dir: &Path, url: &str) -> WalletConfig {
    WalletConfig::new(dir, url, Network::Sandbox)
}

/// A new wallet with an in-memory secret store.
pub async fn new_wallet(dir: &Path, url: &str) -> (Wallet, String) {
    let (wallet, phrase) = Wallet::create(
        config(dir, url),
        Arc::new(MemorySecretStore::new()),
        notch_core::keys::WordCount::Twelve,
    )
    .await
    .unwrap();
    (wallet, phrase.phrase().to_string())
}

pub async fn restore_wallet(dir: &Path, url: &str, phrase: &str) -> Wallet {
    Wallet::restore(
        config(dir, url),
        Arc::new(MemorySecretStore::new()),
        notch_core::keys::RecoveryPhrase::parse(phrase).unwrap(),
    )
    .await
    .unwrap()
}

/// Confirmed balance per asset id (non-zero only), in `u128` (a sum of
/// `u64` outputs).
pub async fn confirmed(wallet: &Wallet) -> HashMap<String, u128> {
    wallet
        .balances()
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.confirmed > 0)
        .map(|b| (b.asset, u128::from(b.confirmed)))
        .collect()
}

/// The history and balances the store keeps (read through
/// `Wallet::history_page` and the store's own table) equal what is computed
/// from scratch: the store's full recomputation, `Wallet::history` (which
/// scans every transaction, its outputs and the facts kept of its bytes)
/// and `Wallet::balances` (which sums every output). Pages of `page_size`
/// neither skip nor repeat a row. The store's check also holds the kept
/// transaction bytes to their rule: only the wallet's own sends keep them,
/// until final (or failed with their coins released).
pub async fn assert_history_consistent(wallet: &Wallet, dir: &Path, page_size: usize) {
    let store =
        notch_core::store::Store::open(config(dir, "http://127.0.0.1:1").db_path()).unwrap();
    let problems = store.check_history().unwrap();
    assert!(problems.is_empty(), "{problems:#?}");

    let mut rows = Vec::new();
    let mut cursor = None;
    let mut total = None;
    loop {
        let page = wallet
            .history_page(Default::default(), cursor.clone(), page_size)
            .await
            .unwrap();
        assert!(page.rows.len() <= page_size);
        assert!(total.is_none_or(|t| t == page.total));
        total = Some(page.total);
        rows.extend(page.rows);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // The index of the same list says what each row says, at its place.
    let index = wallet
        .history_index(Default::default(), None)
        .await
        .unwrap();
    assert_eq!(index.rows.rows.len(), rows.len());
    for (x, row) in index.rows.rows.iter().zip(&rows) {
        let amounts: Vec<(&str, i128)> = index
            .rows
            .effects_of(x)
            .iter()
            .map(|(slot, net)| (index.assets[*slot as usize].asset.as_str(), *net))
            .collect();
        let want: Vec<(&str, i128)> = row
            .amounts
            .iter()
            .map(|a| (a.asset.as_str(), a.net))
            .collect();
        assert_eq!(
            (x.time, x.state, x.direction.as_str(), amounts),
            (row.time, row.state, row.direction, want),
            "{}",
            row.txid
        );
    }
    let entries = wallet.history(Default::default()).await.unwrap();
    assert_eq!(total, Some(entries.len() as u64));
    assert_eq!(rows.len(), entries.len(), "{rows:#?}\n{entries:#?}");
    let mut seen = HashSet::new();
    for row in &rows {
        assert!(seen.insert(row.txid.clone()), "{} twice", row.txid);
        let e = entries.iter().find(|e| e.txid == row.txid).unwrap();
        let listed = (
            row.state,
            row.confirmations,
            row.block_height,
            row.time,
            row.own,
            row.incoming,
            row.fee,
            &row.amounts,
            &row.counterparties,
            &row.reason,
        );
        let computed = (
            e.state,
            e.confirmations,
            e.block_height,
            e.time,
            e.own,
            e.incoming,
            e.fee,
            &e.amounts,
            &e.counterparties,
            &e.reason,
        );
        assert_eq!(listed, computed, "{}", row.txid);
    }
    let stored = store.stored_balances().unwrap();
    for b in wallet.balances_summed().await.unwrap() {
        let kept = stored.iter().find(|s| hex::encode(s.asset) == b.asset);
        let kept = kept.map(|s| (s.confirmed, s.pending, s.pending_outgoing, s.spendable));
        let summed = (b.confirmed, b.pending, b.pending_outgoing, b.spendable);
        match kept {
            Some(kept) => assert_eq!(kept, summed, "{}", b.symbol),
            // Never held: nothing kept.
            None => assert_eq!(summed, (0, 0, 0, 0), "{}", b.symbol),
        }
    }
}

/// What the gateway holds for all of the wallet's addresses.
pub async fn gateway_view(gw: &Gw, wallet: &Wallet) -> HashMap<String, u128> {
    let addresses: Vec<String> = wallet
        .addresses()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.address)
        .collect();
    gw.balances_of(&addresses).await
}

/// How the proxy lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// Pass everything through.
    None,
    /// Change an output amount inside a served block (breaks the merkle root).
    BlockAmount,
    /// Flip a bit of a served header's signature.
    HeaderSignature,
    /// Change a served block's merkle root (and its stated id).
    MerkleRoot,
    /// Ask the gateway for a reorg of this depth just before forwarding the
    /// second `/v1/blocks` request (a reorg in the middle of a sync).
    ReorgMidSync(u32),
    /// A roll-back without proof: `/v1/headers` and `/v1/blocks` name the
    /// best chain's block at this height as the fork point and serve nothing
    /// after it (`more: false`), and `/v1/info`'s tip is that block: "the
    /// chain is shorter now".
    RollbackTo(u64),
    /// `/v1/headers` and `/v1/blocks` serve the fork given to
    /// [`TamperProxy::serve_fork`] (and `/v1/info` its tip).
    ServeFork,
    /// `/v1/info`: the asset with this symbol gets this many more decimals.
    AssetDecimals(&'static str, u8),
    /// `/v1/info`: the asset with this symbol is renamed (same id).
    AssetSymbol(&'static str, &'static str),
    /// `/v1/info`: the asset with this symbol has another issuer, and the id
    /// that goes with it (another asset in the pinned one's place).
    AssetIssuer(&'static str),
    /// `/v1/info`: the asset with this symbol has an id that is not
    /// H(issuer, symbol).
    AssetBadId(&'static str),
    /// `/v1/info`: `params.min_fee_base` is this.
    MinFeeBase(u64),
    /// `/v1/info`: `params.finality_depth` is this.
    FinalityDepth(u64),
    /// `POST /v1/tx` is forwarded to the gateway (which takes it), but the
    /// answer is a rejection; the status of a transaction submitted so is
    /// `rejected`, and `/v1/mempool` hides it.
    RejectSends,
    /// As [`Tamper::RejectSends`], but the status of a transaction submitted
    /// so is a 404 `not_found`.
    ForgetSends,
    /// `POST /v1/tx` is NOT forwarded (the gateway never sees the
    /// transaction) and is answered with a rejection; its status is 404.
    SwallowSends,
    /// `/v1/mempool` answers also carry the transactions given to
    /// [`TamperProxy::inject_mempool`].
    InjectMempool,
}

/// A chain the proxy serves in [`Tamper::ServeFork`] mode: `blocks` follow
/// the block `fork_height`/`fork_id` of the gateway's chain.
#[derive(Clone, Debug)]
pub struct Fork {
    pub fork_height: u64,
    pub fork_id: String,
    pub blocks: Vec<Block>,
}

/// A reorg the proxy asks the gateway for on its own, at a moment of the
/// wallet's choosing (see [`TamperProxy::schedule_reorg`]). Independent of
/// the mode and of `arm()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduledReorg {
    /// How many requests to let through first (counted as they come in).
    pub after: usize,
    /// Depth (clamped to the gateway's tip height).
    pub depth: u32,
    /// Count and fire only on `POST /v1/tx` (a reorg while the wallet sends).
    pub on_submit: bool,
    /// With `on_submit`: the new branch's first block holds the transaction
    /// being submitted (when the gateway accepts that; otherwise a plain
    /// reorg).
    pub include_submitted: bool,
}

#[derive(Default)]
struct Shared {
    fork: Option<Fork>,
    /// (txid, hex) added to every `/v1/mempool` answer.
    inject: Vec<(String, String)>,
    /// Txids of transactions submitted while a *Sends mode was armed.
    submitted: HashSet<String>,
    scheduled: Option<ScheduledReorg>,
}

/// A tiny HTTP/1.1 proxy on loopback that forwards to a gateway and may
/// alter what it serves. Only armed once `arm()` is called.
pub struct TamperProxy {
    pub url: String,
    armed: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    /// How many responses it altered (and reorgs it asked for).
    pub tampered: Arc<AtomicUsize>,
}

/// What a connection handler needs.
#[derive(Clone)]
struct Ctx {
    gw: Gw,
    mode: Tamper,
    armed: Arc<AtomicBool>,
    tampered: Arc<AtomicUsize>,
    blocks_seen: Arc<AtomicUsize>,
    shared: Arc<Mutex<Shared>>,
}

impl TamperProxy {
    pub async fn start(upstream: &str, mode: Tamper) -> TamperProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let armed = Arc::new(AtomicBool::new(false));
        let down = Arc::new(AtomicBool::new(false));
        let tampered = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let ctx = Ctx {
            gw: Gw::new(upstream),
            mode,
            armed: armed.clone(),
            tampered: tampered.clone(),
            blocks_seen: Arc::new(AtomicUsize::new(0)),
            shared: shared.clone(),
        };
        let d = down.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    break;
                };
                if d.load(Ordering::SeqCst) {
                    // "Unreachable": the connection is dropped at once.
                    drop(socket);
                    continue;
                }
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, ctx).await;
                });
            }
        });
        TamperProxy {
            url,
            armed,
            down,
            shared,
            tampered,
        }
    }

    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Makes the gateway look unreachable (or reachable again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    /// The chain served in [`Tamper::ServeFork`] mode.
    pub fn serve_fork(&self, fork: Fork) {
        self.shared.lock().unwrap().fork = Some(fork);
    }

    /// A transaction added to every `/v1/mempool` answer in
    /// [`Tamper::InjectMempool`] mode.
    pub fn inject_mempool(&self, tx: &Transaction) {
        self.shared
            .lock()
            .unwrap()
            .inject
            .push((tx.txid().to_hex(), hex::encode(tx.encode())));
    }

    /// Txids submitted while a `*Sends` mode was armed.
    pub fn submitted(&self) -> Vec<String> {
        self.shared
            .lock()
            .unwrap()
            .submitted
            .iter()
            .cloned()
            .collect()
    }

    /// Asks the gateway for a reorg at a later request (see
    /// [`ScheduledReorg`]); replaces one scheduled before.
    pub fn schedule_reorg(&self, reorg: ScheduledReorg) {
        self.shared.lock().unwrap().scheduled = Some(reorg);
    }

    /// Whether a scheduled reorg is still waiting.
    pub fn reorg_pending(&self) -> bool {
        self.shared.lock().unwrap().scheduled.is_some()
    }

    /// Drops a scheduled reorg that did not fire.
    pub fn cancel_reorg(&self) {
        self.shared.lock().unwrap().scheduled = None;
    }
}

fn answer(status: u16, v: &Value) -> (u16, Vec<u8>) {
    (status, serde_json::to_vec(v).unwrap())
}

fn refusal() -> Value {
    json!({
        "code": "double_spend",
        "message": "an input of the transaction is already spent (said by a tampering proxy)"
    })
}

fn txid_of_submit(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let hex = v["tx"].as_str()?.to_owned();
    let tx = Transaction::decode(&hex::decode(&hex).ok()?).ok()?;
    Some((tx.txid().to_hex(), hex))
}

/// `/v1/tx/{txid}` or `/v1/tx/{txid}/status` -> txid.
fn txid_of_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v1/tx/")?;
    let id = rest.strip_suffix("/status").unwrap_or(rest);
    (id.len() == 64 && !id.contains('/')).then_some(id)
}

/// Fires a scheduled reorg if this request is its moment.
async fn maybe_reorg(ctx: &Ctx, method: &str, path: &str, submitted: Option<&str>) {
    let is_submit = method == "POST" && path == "/v1/tx";
    let fire = {
        let mut shared = ctx.shared.lock().unwrap();
        match shared.scheduled {
            Some(s) if s.on_submit && !is_submit => None,
            Some(s) if s.after == 0 => {
                shared.scheduled = None;
                Some(s)
            }
            Some(ref mut s) => {
                s.after -= 1;
                None
            }
            None => None,
        }
    };
    let Some(s) = fire else { return };
    let tip = ctx.gw.tip().await;
    let depth = u64::from(s.depth).min(tip);
    if depth == 0 {
        return;
    }
    let include: Vec<String> = match submitted {
        Some(hex) if s.include_submitted => vec![hex.to_owned()],
        _ => Vec::new(),
    };
    let (status, v) = ctx
        .gw
        .try_post(
            "/v1/sandbox/reorg",
            json!({ "depth": depth, "include_txs": include }),
        )
        .await;
    let ok = if (200..300).contains(&status) {
        true
    } else if !include.is_empty() {
        // The transaction does not fit the new branch's first block (its
        // inputs came after the fork point): a plain reorg then.
        let (status, v) = ctx
            .gw
            .try_post("/v1/sandbox/reorg", json!({ "depth": depth }))
            .await;
        if !(200..300).contains(&status) {
            eprintln!("scheduled reorg of depth {depth} refused: {status} {v}");
        }
        (200..300).contains(&status)
    } else {
        eprintln!("scheduled reorg of depth {depth} refused: {status} {v}");
        false
    };
    if ok {
        ctx.tampered.fetch_add(1, Ordering::SeqCst);
    }
}

/// A `/v1/headers` or `/v1/blocks` answer for a chain that ends after
/// `blocks` on top of the block `fork` (height, id, time).
fn chain_answer(path: &str, fork: (u64, &str, u64), blocks: &[Block]) -> Value {
    let (fork_height, fork_id, fork_time) = fork;
    let tip = match blocks.last() {
        Some(b) => {
            json!({"height": b.header.height, "hash": b.id().to_hex(), "time": b.header.time})
        }
        None => json!({"height": fork_height, "hash": fork_id, "time": fork_time}),
    };
    let entries: Vec<Value> = blocks
        .iter()
        .map(|b| {
            let hex = if path == "/v1/headers" {
                hex::encode(b.header.encode())
            } else {
                hex::encode(b.encode())
            };
            json!({"height": b.header.height, "id": b.id().to_hex(), "hex": hex})
        })
        .collect();
    let key = if path == "/v1/headers" {
        "headers"
    } else {
        "blocks"
    };
    json!({
        "fork_point": {"height": fork_height, "hash": fork_id},
        key: entries,
        "tip": tip,
        "more": false,
    })
}

/// An answer made up by the proxy instead of the gateway's (`None`: forward
/// the request).
async fn made_up(ctx: &Ctx, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let chain_request = method == "POST" && (path == "/v1/headers" || path == "/v1/blocks");
    match ctx.mode {
        Tamper::RollbackTo(height) if method == "GET" && path == "/v1/info" => {
            // The same claim as the chain answers: the tip is that block.
            let mut v = ctx.gw.get("/v1/info").await;
            let (id, time) = ctx.gw.block_at(height).await;
            v["tip"] = json!({"height": height, "hash": id, "time": time});
            Some(answer(200, &v))
        }
        Tamper::RollbackTo(height) if chain_request => {
            let (id, time) = ctx.gw.block_at(height).await;
            Some(answer(200, &chain_answer(path, (height, &id, time), &[])))
        }
        Tamper::ServeFork if chain_request => {
            let fork = ctx.shared.lock().unwrap().fork.clone()?;
            let (_, time) = ctx.gw.block_at(fork.fork_height).await;
            Some(answer(
                200,
                &chain_answer(path, (fork.fork_height, &fork.fork_id, time), &fork.blocks),
            ))
        }
        Tamper::RejectSends | Tamper::ForgetSends | Tamper::SwallowSends
            if method == "POST" && path == "/v1/tx" =>
        {
            let (txid, _) = txid_of_submit(body)?;
            ctx.shared.lock().unwrap().submitted.insert(txid);
            if ctx.mode != Tamper::SwallowSends {
                // The gateway takes it; the wallet is told otherwise.
                let _ = ctx
                    .gw
                    .http
                    .post(format!("{}/v1/tx", ctx.gw.url))
                    .header("content-type", "application/json")
                    .body(body.to_vec())
                    .send()
                    .await;
            }
            Some(answer(409, &refusal()))
        }
        Tamper::RejectSends | Tamper::ForgetSends | Tamper::SwallowSends if method == "GET" => {
            let txid = txid_of_path(path)?.to_ascii_lowercase();
            if !ctx.shared.lock().unwrap().submitted.contains(&txid) {
                return None;
            }
            if ctx.mode == Tamper::RejectSends {
                let tip = ctx.gw.tip().await;
                let r = refusal();
                let mut v = json!({
                    "txid": txid,
                    "status": {"state": "rejected", "code": r["code"], "message": r["message"]},
                    "tip_height": tip,
                });
                if !path.ends_with("/status") {
                    v["hex"] = Value::Null;
                }
                Some(answer(200, &v))
            } else {
                Some(answer(
                    404,
                    &json!({"code": "not_found", "message": "no such transaction"}),
                ))
            }
        }
        _ => None,
    }
}

async fn serve(mut socket: tokio::net::TcpStream, ctx: Ctx) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_owned();
    let path = parts.next().unwrap_or("/").to_owned();
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[header_end..].to_vec();
    let is_armed = ctx.armed.load(Ordering::SeqCst);
    let submitted_hex = (method == "POST" && path == "/v1/tx")
        .then(|| txid_of_submit(&body).map(|(_, hex)| hex))
        .flatten();
    maybe_reorg(&ctx, &method, &path, submitted_hex.as_deref()).await;
    if let Tamper::ReorgMidSync(depth) = ctx.mode
        && is_armed
        && method == "POST"
        && path == "/v1/blocks"
        && ctx.blocks_seen.fetch_add(1, Ordering::SeqCst) == 1
    {
        ctx.gw.reorg(depth).await;
        ctx.gw.mine(1).await;
        ctx.tampered.fetch_add(1, Ordering::SeqCst);
    }
    let invented = if is_armed {
        made_up(&ctx, &method, &path, &body).await
    } else {
        None
    };
    let (status, out) = match invented {
        Some(answer) => {
            ctx.tampered.fetch_add(1, Ordering::SeqCst);
            answer
        }
        None => {
            let gw = &ctx.gw;
            let request = if method == "POST" {
                gw.http
                    .post(format!("{}{path}", gw.url))
                    .header("content-type", "application/json")
                    .body(body)
            } else {
                gw.http.get(format!("{}{path}", gw.url))
            };
            let (status, mut out) = match request.send().await {
                Ok(r) => (
                    r.status().as_u16(),
                    r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
                ),
                Err(_) => (
                    502,
                    b"{\"code\":\"unavailable\",\"message\":\"upstream\"}".to_vec(),
                ),
            };
            if is_armed
                && status == 200
                && let Some(altered) = alter(&ctx, &method, &path, &out)
            {
                out = altered;
                ctx.tampered.fetch_add(1, Ordering::SeqCst);
            }
            (status, out)
        }
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        out.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(&out).await?;
    socket.shutdown().await
}

/// The asset entry of `/v1/info` with this symbol.
fn asset_mut<'a>(info: &'a mut Value, symbol: &str) -> Option<&'a mut Value> {
    info["assets"]
        .as_array_mut()?
        .iter_mut()
        .find(|a| a["symbol"] == symbol)
}

fn alter(ctx: &Ctx, method: &str, path: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let is_info = method == "GET" && path == "/v1/info";
    match (ctx.mode, method, path) {
        (Tamper::HeaderSignature, "POST", "/v1/headers") => {
            let headers = v["headers"].as_array_mut()?;
            let last = headers.last_mut()?;
            let mut bytes = hex::decode(last["hex"].as_str()?).ok()?;
            let n = bytes.len();
            bytes[n - 10] ^= 0x01;
            last["hex"] = json!(hex::encode(bytes));
        }
        (Tamper::BlockAmount, "POST", "/v1/blocks") => {
            let mut done = false;
            for b in v["blocks"].as_array_mut()? {
                let bytes = hex::decode(b["hex"].as_str()?).ok()?;
                let mut block = Block::decode(&bytes).ok()?;
                if let Some(tx) = block.txs.iter_mut().find(|t| !t.outputs.is_empty()) {
                    tx.outputs[0].amount += 1_000_000;
                    b["hex"] = json!(hex::encode(block.encode()));
                    done = true;
                    break;
                }
            }
            if !done {
                return None;
            }
        }
        (Tamper::MerkleRoot, "POST", "/v1/blocks") => {
            let b = v["blocks"].as_array_mut()?.first_mut()?;
            let bytes = hex::decode(b["hex"].as_str()?).ok()?;
            let mut block = Block::decode(&bytes).ok()?;
            block.header.merkle_root.0[0] ^= 0xff;
            let header: &BlockHeader = &block.header;
            b["id"] = json!(header.id().to_hex());
            b["hex"] = json!(hex::encode(block.encode()));
        }
        (Tamper::ServeFork, _, _) if is_info => {
            let shared = ctx.shared.lock().unwrap();
            let b = shared.fork.as_ref()?.blocks.last()?;
            v["tip"] =
                json!({"height": b.header.height, "hash": b.id().to_hex(), "time": b.header.time});
        }
        (Tamper::AssetDecimals(symbol, more), _, _) if is_info => {
            let a = asset_mut(&mut v, symbol)?;
            a["decimals"] = json!(a["decimals"].as_u64()? + u64::from(more));
        }
        (Tamper::AssetSymbol(symbol, renamed), _, _) if is_info => {
            asset_mut(&mut v, symbol)?["symbol"] = json!(renamed);
        }
        (Tamper::AssetIssuer(symbol), _, _) if is_info => {
            let issuer = PublicKey(
                notch_protocol::ed25519_dalek::SigningKey::from_bytes(&[0x66; 32])
                    .verifying_key()
                    .to_bytes(),
            );
            let a = asset_mut(&mut v, symbol)?;
            a["issuer"] = json!(issuer.to_hex());
            a["id"] = json!(AssetId::derive(&issuer, symbol).to_hex());
        }
        (Tamper::AssetBadId(symbol), _, _) if is_info => {
            let a = asset_mut(&mut v, symbol)?;
            let mut id = AssetId::from_hex(a["id"].as_str()?).ok()?;
            id.0[31] ^= 0x01;
            a["id"] = json!(id.to_hex());
        }
        (Tamper::MinFeeBase(fee), _, _) if is_info => {
            v["params"]["min_fee_base"] = json!(fee);
        }
        (Tamper::FinalityDepth(depth), _, _) if is_info => {
            v["params"]["finality_depth"] = json!(depth);
        }
        (Tamper::RejectSends | Tamper::ForgetSends | Tamper::SwallowSends, "GET", _)
            if path.starts_with("/v1/mempool") =>
        {
            let hidden = ctx.shared.lock().unwrap().submitted.clone();
            let changes = v["changes"].as_array_mut()?;
            let before = changes.len();
            changes.retain(|c| !c["txid"].as_str().is_some_and(|t| hidden.contains(t)));
            if changes.len() == before {
                return None;
            }
        }
        (Tamper::InjectMempool, "GET", _) if path.starts_with("/v1/mempool") => {
            let inject = ctx.shared.lock().unwrap().inject.clone();
            if inject.is_empty() {
                return None;
            }
            let seq = v["seq"].clone();
            let changes = v["changes"].as_array_mut()?;
            for (txid, hex) in inject {
                changes.push(json!({"seq": seq, "kind": "added", "txid": txid, "hex": hex}));
            }
        }
        _ => return None,
    }
    serde_json::to_vec(&v).ok()
}
