//! What the benchmark binaries share: their arguments, where their sibling
//! binaries are, the populated sandbox ledger they sync from, the report's
//! date and load.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use notch_core::keys::{AddressChain, RecoveryPhrase, WalletKeys, WalletSecret};
use serde_json::Value;

use crate::gateway::Sandbox;

/// The entropy of the benchmark wallet's fixed recovery phrase.
pub const ENTROPY: [u8; 16] = [0x42; 16];
/// How many of that wallet's receive addresses the ledger pays.
pub const PAID_ADDRESSES: u32 = 20;

/// The value after `name` on the command line.
pub fn arg_str(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Where the running binary is: the binaries it starts must be there too.
pub fn exe_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A binary next to the running one; panics with `how_to_build` if missing.
pub fn sibling(name: &str, how_to_build: &str) -> PathBuf {
    let p = exe_dir().join(name);
    assert!(p.is_file(), "{} is missing: {how_to_build}", p.display());
    p
}

/// The release `notch-gateway --sandbox` on `data_dir` (mining on demand).
pub fn start_gateway(gateway: &Path, data_dir: &Path) -> Sandbox {
    Sandbox::start_binary(
        gateway,
        data_dir.to_path_buf(),
        "127.0.0.1:0",
        &[("RUST_LOG", "warn")],
    )
}

/// The sandbox ledger in `dir` written by `populate` (the
/// `notch-gateway-populate` binary), paying the fixed wallet's first
/// receive addresses once every `pay_every` transactions; populated only
/// when `dir` holds no finished one. Returns its summary and whether it was
/// reused.
pub fn ledger(
    populate: &Path,
    dir: &Path,
    txs: u64,
    block_txs: u64,
    pay_every: u64,
) -> (Value, bool) {
    let marker = dir.join("populated.json");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        return (serde_json::from_str(&text).unwrap(), true);
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    let secret = WalletSecret::new(RecoveryPhrase::from_entropy(&ENTROPY).unwrap(), "");
    let keys = WalletKeys::from_secret(&secret, 0).unwrap();
    let mut list = String::new();
    for i in 0..PAID_ADDRESSES {
        let k = keys.token_key(AddressChain::Receive, i).unwrap();
        list.push_str(&hex::encode(k.public_key().to_bytes()));
        list.push('\n');
    }
    let pay_to = dir.join("pay-to.txt");
    std::fs::write(&pay_to, list).unwrap();
    eprintln!("populating {} ({txs} transactions)", dir.display());
    let out = Command::new(populate)
        .arg("--data-dir")
        .arg(dir)
        .args(["--txs", &txs.to_string()])
        .args(["--block-txs", &block_txs.to_string()])
        .args(["--pay-every", &pay_every.to_string()])
        .arg("--pay-to")
        .arg(&pay_to)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "notch-gateway-populate failed");
    (serde_json::from_slice(&out.stdout).unwrap(), false)
}

/// Now, as `2026-11-23 11:51 UTC`.
pub fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The first `n` load averages (1, 5, 15 minutes): the machine is shared.
pub fn loadavg(n: usize) -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(n).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Where the long-history ledger of the app benchmark lives (every
/// transaction pays the fixed wallet): `<target>/bench-ledger-app/…`. The
/// app benchmark and the wallet size benchmark sync the same one.
pub fn app_history_ledger_dir(target: &Path, txs: u64, block_txs: u64) -> PathBuf {
    target
        .join("bench-ledger-app")
        .join(format!("v1-txs{txs}-block{block_txs}-every1"))
}

/// How the wallet file at `path` uses its space (per table and index, from
/// SQLite's `dbstat`), as JSON; read-only, so a file of an older schema is
/// reported as it is.
pub fn space_json(path: &Path) -> Value {
    let r = notch_core::store::space_report_of_file(path).unwrap();
    serde_json::json!({
        "file_bytes": r.file_bytes(),
        "page_size": r.page_size,
        "pages": r.pages,
        "free_pages": r.free_pages,
        "kept_txs": r.kept_txs,
        "kept_tx_bytes": r.kept_tx_bytes,
        "objects": r.objects.iter().map(|o| serde_json::json!({
            "name": o.name,
            "table": o.table,
            "kind": o.kind,
            "bytes": o.bytes,
            "payload": o.payload,
        })).collect::<Vec<_>>(),
    })
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

/// A markdown table of [`space_json`]: each table with its indexes (bytes
/// of the pages they take, and per payment of `payments`), largest first;
/// the tables of one page each in one row.
pub fn space_markdown(space: &Value, payments: u64) -> String {
    let objects = space["objects"].as_array().cloned().unwrap_or_default();
    let file = space["file_bytes"].as_f64().unwrap_or(0.0);
    let per = |bytes: f64| {
        if payments == 0 {
            "–".to_owned()
        } else {
            format!("{:.0} B", bytes / payments as f64)
        }
    };
    struct TableSpace {
        name: String,
        bytes: f64,
        payload: f64,
        indexes: Vec<(String, f64)>,
    }
    impl TableSpace {
        fn together(&self) -> f64 {
            self.bytes + self.indexes.iter().map(|i| i.1).sum::<f64>()
        }
    }
    let mut tables: Vec<TableSpace> = Vec::new();
    for o in &objects {
        let table = o["table"].as_str().unwrap_or("?").to_owned();
        let bytes = o["bytes"].as_f64().unwrap_or(0.0);
        let at = match tables.iter().position(|t| t.name == table) {
            Some(at) => at,
            None => {
                tables.push(TableSpace {
                    name: table,
                    bytes: 0.0,
                    payload: 0.0,
                    indexes: Vec::new(),
                });
                tables.len() - 1
            }
        };
        if o["kind"] == "index" {
            let name = o["name"].as_str().unwrap_or("?").to_owned();
            tables[at].indexes.push((name, bytes));
        } else {
            tables[at].bytes += bytes;
            tables[at].payload += o["payload"].as_f64().unwrap_or(0.0);
        }
    }
    tables.sort_by(|a, b| {
        b.together()
            .total_cmp(&a.together())
            .then(a.name.cmp(&b.name))
    });
    let page = space["page_size"].as_f64().unwrap_or(4096.0);
    let mut s = String::from(
        "| table | its rows | its indexes | together | per payment | of the file |\n|---|---:|---|---:|---:|---:|\n",
    );
    let (mut small, mut small_bytes) = (0, 0.0);
    for t in &tables {
        let together = t.together();
        if together <= page * (1 + t.indexes.len()) as f64 {
            small += 1;
            small_bytes += together;
            continue;
        }
        let mut indexes: Vec<String> = t
            .indexes
            .iter()
            .map(|(name, bytes)| format!("`{name}` {}", mib(*bytes)))
            .collect();
        if indexes.is_empty() {
            indexes.push("–".into());
        }
        s += &format!(
            "| `{}` | {} (records {}) | {} | **{}** | {} | {:.1} % |\n",
            t.name,
            mib(t.bytes),
            mib(t.payload),
            indexes.join(", "),
            mib(together),
            per(together),
            100.0 * together / file.max(1.0),
        );
    }
    if small > 0 {
        s += &format!(
            "| {small} other tables (one page each, with their indexes) | | | {} | | {:.1} % |\n",
            mib(small_bytes),
            100.0 * small_bytes / file.max(1.0)
        );
    }
    let free = space["free_pages"].as_f64().unwrap_or(0.0) * page;
    s += &format!(
        "| free pages | | | {} | | {:.1} % |\n| **the file** | | | **{}** | **{}** | 100 % |\n",
        mib(free),
        100.0 * free / file.max(1.0),
        mib(file),
        per(file),
    );
    s
}

/// What each payment of the populated long-history ledger gives the fixed
/// wallet (`notch-gateway-populate`), in base units.
pub const HISTORY_WALLET_AMOUNT: u64 = 1_000_000;

/// The fixed wallet ([`ENTROPY`]) restored into `dir` and synced to the tip
/// of the long-history ledger at `url`, checked to have found all
/// `expected` payments: the wallet, and the figures of the restore.
pub async fn restore_history_wallet(
    dir: &Path,
    url: &str,
    store: std::sync::Arc<dyn notch_core::secrets::SecretStore>,
    expected: u64,
) -> (notch_core::Wallet, serde_json::Value) {
    let config = notch_core::WalletConfig::new(dir, url, notch_core::Network::Sandbox);
    let phrase = RecoveryPhrase::from_entropy(&ENTROPY).unwrap();
    let started = std::time::Instant::now();
    let wallet = notch_core::Wallet::restore(config, store, phrase)
        .await
        .unwrap();
    let restore_secs = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let report = wallet.sync().await.unwrap();
    let sync_secs = started.elapsed().as_secs_f64();
    let received: u128 = wallet
        .balances()
        .await
        .unwrap()
        .iter()
        .map(|b| b.confirmed)
        .sum();
    assert_eq!(
        received,
        u128::from(expected * HISTORY_WALLET_AMOUNT),
        "the wallet did not find every payment to it"
    );
    let figures = serde_json::json!({
        "restore_secs": restore_secs,
        "sync_secs": sync_secs,
        "height": report.height,
        "payments_found": received / u128::from(HISTORY_WALLET_AMOUNT),
    });
    (wallet, figures)
}
