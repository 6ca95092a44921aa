//! Helpers for the wallet tests: async calls to a sandbox gateway, wallets
//! with an in-memory secret store, and a tampering HTTP proxy on loopback.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use notch_core::secrets::MemorySecretStore;
use notch_core::{Network, Wallet, WalletConfig};
use notch_protocol::{Block, BlockHeader};
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
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
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

    /// Sum of the best chain's unspent outputs of `addresses`, per asset id.
    pub async fn balances_of(&self, addresses: &[String]) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        for a in addresses {
            let v = self.get(&format!("/v1/address/{a}/utxos")).await;
            for u in v["utxos"].as_array().unwrap() {
                *out.entry(u["asset"].as_str().unwrap().to_owned())
                    .or_insert(0) += u["amount"].as_u64().unwrap();
            }
        }
        out
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

/// Confirmed balance per asset id (non-zero only).
pub async fn confirmed(wallet: &Wallet) -> HashMap<String, u64> {
    wallet
        .balances()
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.confirmed > 0)
        .map(|b| (b.asset, b.confirmed))
        .collect()
}

/// What the gateway holds for all of the wallet's addresses.
pub async fn gateway_view(gw: &Gw, wallet: &Wallet) -> HashMap<String, u64> {
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
}

/// A tiny HTTP/1.1 proxy on loopback that forwards to a gateway and may
/// alter what it serves. Only armed once `arm()` is called.
pub struct TamperProxy {
    pub url: String,
    armed: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    /// How many responses it altered.
    pub tampered: Arc<AtomicUsize>,
}

impl TamperProxy {
    pub async fn start(upstream: &str, mode: Tamper) -> TamperProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let armed = Arc::new(AtomicBool::new(false));
        let down = Arc::new(AtomicBool::new(false));
        let tampered = Arc::new(AtomicUsize::new(0));
        let blocks_seen = Arc::new(AtomicUsize::new(0));
        let gw = Gw::new(upstream);
        let (a, t, d) = (armed.clone(), tampered.clone(), down.clone());
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
                let (gw, a, t, b) = (gw.clone(), a.clone(), t.clone(), blocks_seen.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, gw, mode, a, t, b).await;
                });
            }
        });
        TamperProxy {
            url,
            armed,
            down,
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
}

async fn serve(
    mut socket: tokio::net::TcpStream,
    gw: Gw,
    mode: Tamper,
    armed: Arc<AtomicBool>,
    tampered: Arc<AtomicUsize>,
    blocks_seen: Arc<AtomicUsize>,
) -> std::io::Result<()> {
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
    let is_armed = armed.load(Ordering::SeqCst);
    if let Tamper::ReorgMidSync(depth) = mode
        && is_armed
        && method == "POST"
        && path == "/v1/blocks"
        && blocks_seen.fetch_add(1, Ordering::SeqCst) == 1
    {
        gw.reorg(depth).await;
        gw.mine(1).await;
        tampered.fetch_add(1, Ordering::SeqCst);
    }
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
        && let Some(altered) = alter(mode, &method, &path, &out)
    {
        out = altered;
        tampered.fetch_add(1, Ordering::SeqCst);
    }
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        out.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(&out).await?;
    socket.shutdown().await
}

fn alter(mode: Tamper, method: &str, path: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    match (mode, method, path) {
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
        _ => return None,
    }
    serde_json::to_vec(&v).ok()
}
