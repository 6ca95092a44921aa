//! Helpers for driving the real `notch-gateway` binary over loopback HTTP, on either
//! storage backend (`Backend`: SQLite, or a database of a throwaway PostgreSQL cluster).
#![allow(dead_code)]

mod postgres;

pub use postgres::Backend;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use notch_protocol::api::*;
use notch_protocol::ed25519_dalek::SigningKey;
use notch_protocol::{
    Address, AssetId, Block, BlockHeader, Network, OutPoint, Output, PublicKey, Transaction, TxId,
    public_key, verify_block, verify_header_chain,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_notch-gateway");

/// Instantiates each named test, a function taking a `Backend`, for both backends: `name`
/// becomes the tests `name::sqlite` and `name::postgres`. The PostgreSQL one gets a fresh
/// database of its own (see `postgres.rs` for when it is skipped instead).
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::common::Backend::Sqlite);
            }

            #[test]
            fn postgres() {
                if let Some(backend) = $crate::common::Backend::postgres() {
                    super::$name(backend);
                }
            }
        }
    )+};
}
pub(crate) use both_backends;

pub struct Gateway {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
    /// The "relay at" line, if the gateway prints one.
    relay: std::sync::Mutex<mpsc::Receiver<String>>,
    /// The "metrics at" line, if the gateway prints one (`--metrics-listen`).
    metrics: std::sync::Mutex<mpsc::Receiver<String>>,
}

impl Gateway {
    /// Starts the gateway on 127.0.0.1:0 with `dir` as data dir, on `backend`, and waits for
    /// its "listening on" line. A restart on the same data passes the same backend (on
    /// PostgreSQL: the same database).
    pub fn spawn(backend: &Backend, dir: &Path, args: &[&str]) -> Gateway {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.with_extension("log"))
            .unwrap_or_else(|e| panic!("log file: {e}"));
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(backend.args(dir))
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("NOTCH_GATEWAY_LISTEN")
            // The backend is the test's choice, never the caller's environment.
            .env_remove("NOTCH_GATEWAY_DATABASE")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {BIN}: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (tx, rx) = mpsc::channel();
        let (relay_tx, relay_rx) = mpsc::channel();
        let (metrics_tx, metrics_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // The lines after it (relay, metrics), then keep draining so the child never
            // blocks on a full pipe.
            let mut next = String::new();
            while reader.read_line(&mut next).map(|n| n > 0).unwrap_or(false) {
                if let Some(addr) = next.strip_prefix("notch-gateway relay at ") {
                    let _ = relay_tx.send(addr.trim().to_owned());
                } else if let Some(url) = next.strip_prefix("notch-gateway metrics at ") {
                    let _ = metrics_tx.send(url.trim().to_owned());
                }
                next.clear();
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("the gateway ({backend}) did not say where it listens within 60 s");
            });
        let prefix = "notch-gateway listening on ";
        if !line.starts_with(prefix) {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "the gateway ({backend}) did not start: first line {line:?}; its log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let base = line[prefix.len()..].trim().to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Gateway {
            child,
            base,
            dir: dir.to_owned(),
            relay: std::sync::Mutex::new(relay_rx),
            metrics: std::sync::Mutex::new(metrics_rx),
        }
    }

    /// Where `GET /metrics` is (`http://HOST:PORT/metrics`), from the gateway's "metrics at"
    /// line (it runs with `--metrics-listen`). Asked once per gateway.
    pub fn metrics_url(&self) -> String {
        self.metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("the gateway did not say where its metrics are"))
    }

    /// Where the agent relay takes agents (`HOST:PORT`), from the gateway's second line.
    pub fn relay_addr(&self) -> String {
        self.relay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("the gateway did not say where its relay is"))
    }

    pub fn sandbox(backend: &Backend, dir: &Path) -> Gateway {
        Gateway::spawn(backend, dir, &["--sandbox", "--block-interval", "0"])
    }

    /// A sandbox (mining on demand) with extra flags, e.g. limits.
    pub fn sandbox_with(backend: &Backend, dir: &Path, extra: &[&str]) -> Gateway {
        let mut args = vec!["--sandbox", "--block-interval", "0"];
        args.extend_from_slice(extra);
        Gateway::spawn(backend, dir, &args)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    /// The gateway process's resident memory (KiB), from /proc (Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.child.id())
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -TERM {pid} failed");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// Status and JSON body of an answer.
pub fn send(req: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    let resp = req.send().unwrap_or_else(|e| panic!("request failed: {e}"));
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().unwrap_or_default();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("HTTP {status} body is not JSON ({ct}): {e}: {text:?}"));
    (status, body)
}

pub fn get<T: DeserializeOwned>(g: &Gateway, path: &str) -> T {
    let (status, body) = send(client().get(g.url(path)));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_value(body).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

pub fn post<B: serde::Serialize, T: DeserializeOwned>(g: &Gateway, path: &str, body: &B) -> T {
    let (status, value) = send(client().post(g.url(path)).json(body));
    assert_eq!(status, 200, "POST {path}: {value}");
    serde_json::from_value(value).unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

pub fn address(k: &SigningKey) -> String {
    Address::new(Network::Sandbox, public_key(k)).encode()
}

pub fn info(g: &Gateway) -> LedgerInfo {
    get(g, "/v1/info")
}

pub fn asset_id(info: &LedgerInfo, symbol: &str) -> AssetId {
    let a = info
        .assets
        .iter()
        .find(|a| a.symbol == symbol)
        .unwrap_or_else(|| panic!("no asset {symbol}"));
    AssetId::from_hex(&a.id).unwrap_or_else(|e| panic!("{e}"))
}

/// Mints `amount` of `asset` to `owner`; returns the coin's outpoint.
pub fn faucet(g: &Gateway, owner: &SigningKey, asset: &str, amount: u64) -> OutPoint {
    let r: FaucetResponse = post(
        g,
        "/v1/sandbox/faucet",
        &FaucetRequest {
            address: address(owner),
            asset: asset.into(),
            amount,
        },
    );
    assert_eq!(r.status, TxStatus::InPool);
    OutPoint {
        txid: TxId::from_hex(&r.txid).unwrap_or_else(|e| panic!("{e}")),
        index: r.index,
    }
}

pub fn mine(g: &Gateway, blocks: u32) -> MineResponse {
    post(
        g,
        "/v1/sandbox/mine",
        &MineRequest {
            blocks: Some(blocks),
        },
    )
}

pub fn min_fee(inputs: usize, outputs: usize) -> u64 {
    1_000 + 10 * Transaction::estimate_len(inputs, outputs) as u64
}

/// A one-input transaction of the native asset paying `amount` to `to` and the rest (minus
/// the minimum fee) back to `from` (no change output when nothing is left).
pub fn pay(
    native: AssetId,
    from: &SigningKey,
    coin: OutPoint,
    coin_amount: u64,
    to: PublicKey,
    amount: u64,
    nonce: u64,
) -> Transaction {
    let mut tx = Transaction::new(Network::Sandbox);
    tx.inputs = vec![coin];
    let fee2 = min_fee(1, 2);
    let change = coin_amount.saturating_sub(amount).saturating_sub(fee2);
    tx.outputs = vec![Output {
        asset: native,
        amount,
        owner: to,
    }];
    if change > 0 {
        tx.outputs.push(Output {
            asset: native,
            amount: change,
            owner: public_key(from),
        });
        tx.fee = fee2;
    } else {
        tx.fee = coin_amount - amount;
    }
    tx.nonce = nonce;
    tx.sign(&[from]).unwrap_or_else(|e| panic!("{e}"));
    tx
}

pub fn submit(g: &Gateway, tx: &Transaction) -> (u16, Value) {
    send(client().post(g.url("/v1/tx")).json(&SubmitTxRequest {
        tx: hex::encode(tx.encode()),
    }))
}

pub fn submit_ok(g: &Gateway, tx: &Transaction) -> SubmitTxResponse {
    let (status, body) = submit(g, tx);
    assert_eq!(status, 200, "submit: {body}");
    serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"))
}

pub fn status(g: &Gateway, txid: &TxId) -> TxStatus {
    let r: TxStatusResponse = get(g, &format!("/v1/tx/{txid}/status"));
    r.status
}

/// Downloads the whole best chain and checks every header signature and link and every
/// block body; returns the blocks.
pub fn verified_chain(g: &Gateway) -> Vec<Block> {
    let info = info(g);
    let authority = PublicKey::from_hex(&info.authority_key).unwrap_or_else(|e| panic!("{e}"));
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let from = blocks.len() as u64;
        let r: BlocksResponse = get(g, &format!("/v1/blocks?from={from}&limit=100"));
        for e in &r.blocks {
            let bytes = hex::decode(&e.hex).unwrap_or_else(|e| panic!("{e}"));
            let b =
                Block::decode(&bytes).unwrap_or_else(|e| panic!("block {}: {e}", e_height(&r, 0)));
            assert_eq!(b.id().to_hex(), e.id);
            assert_eq!(b.header.height, e.height);
            assert_eq!(verify_block(&b), Ok(()), "block {}", e.height);
            blocks.push(b);
        }
        if !r.more {
            break;
        }
        assert!(!r.blocks.is_empty(), "more=true with no blocks");
    }
    let headers: Vec<BlockHeader> = blocks.iter().map(|b| b.header.clone()).collect();
    assert_eq!(verify_header_chain(None, &headers, &authority), Ok(()));
    blocks
}

fn e_height(r: &BlocksResponse, i: usize) -> u64 {
    r.blocks.get(i).map_or(0, |b| b.height)
}

/// `VmRSS` of a process in KiB, from /proc/PID/status (Linux; `None` elsewhere).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A client whose connections come from `local` (another loopback address is another
/// client for the per-client limits, when the gateway runs with `--limit-loopback`).
pub fn client_from(local: &str) -> reqwest::blocking::Client {
    let ip: std::net::IpAddr = local.parse().unwrap_or_else(|e| panic!("{local}: {e}"));
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .local_address(ip)
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// The error codes a gateway may answer (`notch_protocol::api::codes`).
pub const ERROR_CODES: &[&str] = &[
    codes::MALFORMED,
    codes::BAD_REQUEST,
    codes::TOO_LARGE,
    codes::NOT_FOUND,
    codes::METHOD_NOT_ALLOWED,
    codes::UNSUPPORTED_MEDIA_TYPE,
    codes::BAD_ADDRESS,
    codes::WRONG_NETWORK,
    codes::UNKNOWN_ASSET,
    codes::DOUBLE_SPEND,
    codes::UNKNOWN_INPUT,
    codes::DUPLICATE_INPUT,
    codes::BAD_SIGNATURE,
    codes::UNBALANCED,
    codes::FEE_TOO_LOW,
    codes::ZERO_AMOUNT,
    codes::POOL_FULL,
    codes::UNAVAILABLE,
    codes::RATE_LIMITED,
    codes::TIMEOUT,
    codes::UNLISTED_ISSUANCE,
];

/// Checks that `body` is an `ApiError` as a wallet may show it: a known code and a message
/// of one plain line of at most 300 characters.
pub fn assert_api_error(status: u16, body: &Value, what: &str) {
    assert!(
        status >= 400,
        "{what}: HTTP {status} is not an error: {body}"
    );
    let code = body["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no code in {body}"));
    assert!(ERROR_CODES.contains(&code), "{what}: unknown code {code:?}");
    let message = body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no message in {body}"));
    assert!(!message.is_empty(), "{what}: empty message");
    assert!(
        message.chars().count() <= 300,
        "{what}: message too long: {message:?}"
    );
    assert!(
        !message.chars().any(char::is_control),
        "{what}: control character in {message:?}"
    );
}

/// After an ordeal: the gateway still mints, mines and serves the chain. A faucet coin is
/// confirmed in the next block, the tip is one higher, and the whole chain verifies.
pub fn round_trip(g: &Gateway) {
    let before = info(g).tip.height;
    let owner = key(77);
    let coin = faucet(g, &owner, "NOTE", 123_456);
    let mined = mine(g, 1);
    assert_eq!(mined.tip.height, before + 1, "one block was mined");
    assert!(matches!(status(g, &coin.txid), TxStatus::Confirmed { .. }));
    assert_eq!(info(g).tip.height, before + 1);
    let chain = verified_chain(g);
    assert_eq!(chain.len() as u64, before + 2);
    let last = chain.last().unwrap_or_else(|| panic!("empty chain"));
    assert!(last.txs.iter().any(|t| t.txid() == coin.txid));
}

/// A raw TCP connection to the gateway (for what an HTTP client library will not do: send
/// slowly, pipeline, never read), with `timeout` on reads and writes.
pub fn raw(g: &Gateway, timeout: Duration) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(g.addr()).unwrap_or_else(|e| panic!("connect: {e}"));
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    s
}

/// Reads one answer with a `content-length` from a raw connection: status, head, body.
pub fn read_answer(s: &mut std::net::TcpStream) -> std::io::Result<(u16, String, Vec<u8>)> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed after {} bytes", buf.len()),
            ));
        }
        buf.push(byte[0]);
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("head too long"));
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((status, head, body))
}
