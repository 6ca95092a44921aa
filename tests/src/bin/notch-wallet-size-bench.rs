//! The wallet file of the app benchmark's long-history wallet (by default
//! 100,000 payments), without the app: the same populated ledger
//! (`<target>/bench-ledger-app/…`), restored from the same fixed phrase
//! into a fresh directory and synced with notch-core against the real
//! release `notch-gateway --sandbox`; then what each table and index of
//! `wallet.sqlite` takes (SQLite's `dbstat`).
//!
//! With `--before FILE`, also a wallet file written by an older Notch (for
//! the figures in bench/results/wallet-size.md: one synced by the build
//! before the latest migration), reported as it is, then copied and opened
//! with this build (migrations, the refresh that drops the transaction
//! bytes the wallet does not need, the one-time VACUUM) and reported again.
//!
//! Usage: `notch-wallet-size-bench [--out FILE.md] [--history-txs N]
//! [--block-txs N] [--before FILE [--before-what TEXT]]` (the JSON goes
//! next to FILE.md; TEXT says where FILE came from). Needs
//! `notch-gateway` and `notch-gateway-populate` next to this binary:
//! `cargo xtask bench wallet-size` builds them and runs it.

#![allow(clippy::unwrap_used)] // a benchmark that cannot set up should stop loudly

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use notch_core::secrets::{MemorySecretStore, SecretStore};
use notch_tests::bench::{
    app_history_ledger_dir, arg_str, exe_dir, loadavg, sibling, space_json, space_markdown,
    start_gateway, utc_now,
};
use serde_json::{Value, json};

/// What `notch-gateway-populate` pays a listed key, per payment.

fn arg(name: &str, default: u64) -> u64 {
    arg_str(name)
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} {v:?}: not a number"))
        })
        .unwrap_or(default)
}

fn bin(name: &str) -> PathBuf {
    sibling(
        name,
        "build it first (`cargo xtask bench wallet-size` does: cargo build --release -p notch-gateway --bins)",
    )
}

/// Cargo's target dir: the parent of this binary's profile dir.
fn target_dir() -> PathBuf {
    let dir = exe_dir();
    dir.parent().map(Path::to_path_buf).unwrap_or(dir)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Restores the fixed wallet into `dir`, syncs it to the tip, closes it.
async fn build_wallet(dir: &Path, url: &str, expected: u64) -> Value {
    let store: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::new());
    let (wallet, figures) =
        notch_tests::bench::restore_history_wallet(dir, url, store, expected).await;
    // Closed: the last connection checkpoints the WAL into the file.
    drop(wallet);
    let secs = |k: &str| figures[k].as_f64().unwrap_or(0.0);
    json!({
        "restore_and_sync_secs": secs("restore_secs") + secs("sync_secs"),
        "height": figures["height"],
        "payments_found": figures["payments_found"],
    })
}

/// An older wallet file: as it is, then opened (upgraded) by this build.
fn upgrade(before: &Path, work: &Path) -> Value {
    let copy = work.join("upgraded").join("wallet.sqlite");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(before, &copy).unwrap();
    let as_it_was = space_json(&copy);
    let started = Instant::now();
    let store = notch_core::store::Store::open(&copy).unwrap();
    let open_secs = started.elapsed().as_secs_f64();
    let problems = store.check_history().unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    drop(store);
    json!({
        "file": before.display().to_string(),
        "before": as_it_was,
        "open_secs": open_secs,
        "after": space_json(&copy),
        "file_bytes_on_disk_after": file_len(&copy),
    })
}

fn mb(v: &Value) -> String {
    format!("{:.1} MiB", v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0))
}

/// Bytes of `table` with its indexes in a [`space_json`] report.
fn table_bytes(space: &Value, table: &str) -> Value {
    let sum: u64 = space["objects"]
        .as_array()
        .map(|objects| {
            objects
                .iter()
                .filter(|o| o["table"] == table)
                .filter_map(|o| o["bytes"].as_u64())
                .sum()
        })
        .unwrap_or(0);
    json!(sum)
}

fn markdown(r: &Value) -> String {
    let payments = r["wallet"]["payments_found"].as_u64().unwrap_or(0);
    let space = &r["space"];
    let mut s = format!(
        "# Wallet file size\n\n\
Date: {}. Machine: {} CPUs, shared with other builds; 1/5/15-minute load average {} at the start, {} at the end. \
Profile: {}.\n\n\
Reproduce:\n\n\
```\ncargo xtask bench wallet-size{}\n```\n\n\
which runs `cargo build --release -p notch-gateway --bins`, then \
`cargo run --release -p notch-tests --bin notch-wallet-size-bench -- --out bench/results/wallet-size.md` with the \
arguments after `--`. Parameters: `--history-txs {} --block-txs {}`.\n\n",
        r["date"].as_str().unwrap_or("?"),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        r["loadavg_start"].as_str().unwrap_or("?"),
        r["loadavg_end"].as_str().unwrap_or("?"),
        r["profile"].as_str().unwrap_or("?"),
        match r["upgrade"]["file"].as_str() {
            Some(f) => match r["upgrade"]["what"].as_str() {
                Some(what) => format!(
                    " -- --before {f} --before-what '{}'",
                    what.replace('\'', "'\\''")
                ),
                None => format!(" -- --before {f}"),
            },
            None => String::new(),
        },
        r["params"]["history_txs"],
        r["params"]["block_txs"],
    );
    s += &format!(
        "## The {payments}-payment wallet, synced by this build\n\n\
The app benchmark's long-history wallet: {} blocks of {} transactions written by `notch-gateway-populate --pay-every 1` \
(every transaction a sandbox mint paying one of the first 20 receive addresses of a wallet restored from a fixed \
phrase), restored into a fresh directory and synced with notch-core against the release `notch-gateway --sandbox` \
({:.1} s; {payments} payments found), then closed. `wallet.sqlite`: **{}** ({} bytes on disk), {} transactions still \
keep their bytes ({} bytes).\n\n",
        r["ledger"]["blocks"],
        r["ledger"]["block_txs"],
        r["wallet"]["restore_and_sync_secs"]
            .as_f64()
            .unwrap_or(f64::NAN),
        mb(&space["file_bytes"]),
        r["file_bytes_on_disk"],
        space["kept_txs"],
        space["kept_tx_bytes"],
    );
    s += "The ledger's payments are mints: no counterparty, no fee, no coin of the wallet spent, so `tx_facts` and \
`tx_spends` hold nothing here (a payment from another wallet that pays its payer's change too adds a `tx_facts` row \
with that address).\n\n";
    s += "Bytes of the pages each table and its indexes take (`SELECT name, sum(pgsize) FROM dbstat GROUP BY name`, \
grouped by table through `sqlite_schema`); \"records\" is the payload in the table's own pages.\n\n";
    s += &space_markdown(space, payments);
    let up = &r["upgrade"];
    if up.is_object() {
        let (before, after) = (&up["before"], &up["after"]);
        s += &format!(
            "\n## An older wallet file, upgraded\n\n\
`{}`: the same wallet (same ledger, same phrase) as synced by an older build{}. As it was: \
**{}**, {} transactions keeping {} ({:.0} bytes each on average). Opened by this build (the migrations it \
lacked, the refresh of what they marked, the one-time VACUUM after the upgrade): {:.1} s, then **{}**, \
{} transactions keeping their bytes.\n\n",
            up["file"].as_str().unwrap_or("?"),
            match up["what"].as_str() {
                Some(what) => format!(": {what}"),
                None => String::new(),
            },
            mb(&before["file_bytes"]),
            before["kept_txs"],
            mb(&before["kept_tx_bytes"]),
            before["kept_tx_bytes"].as_f64().unwrap_or(0.0)
                / before["kept_txs"].as_f64().unwrap_or(1.0).max(1.0),
            up["open_secs"].as_f64().unwrap_or(f64::NAN),
            mb(&after["file_bytes"]),
            after["kept_txs"],
        );
        s += &format!(
            "| wallet.sqlite of {payments} payments | the file | `transactions` with its indexes | transaction bytes kept |\n\
|---|---:|---:|---:|\n\
| synced by the older build (before) | {} | {} | {} |\n\
| synced by this build | {} | {} | {} |\n\
| the older file upgraded by this build | {} | {} | {} |\n\n",
            mb(&before["file_bytes"]),
            mb(&table_bytes(before, "transactions")),
            mb(&before["kept_tx_bytes"]),
            mb(&space["file_bytes"]),
            mb(&table_bytes(space, "transactions")),
            mb(&space["kept_tx_bytes"]),
            mb(&after["file_bytes"]),
            mb(&table_bytes(after, "transactions")),
            mb(&after["kept_tx_bytes"]),
        );
        s += "The upgraded file is smaller than a fresh sync because VACUUM rebuilds every table and index packed; \
built row by row during a sync they are part-empty (compare the indexes below).\n\n";
        s += "### Before\n\n";
        s += &space_markdown(before, payments);
        s += "\n### After the upgrade\n\n";
        s += &space_markdown(after, payments);
    }
    s += "\nNo test asserts any of these figures. The raw figures are in the JSON file next to this one.\n";
    s
}

fn main() {
    if let Some(path) = arg_str("--markdown-from") {
        let r: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        print!("{}", markdown(&r));
        return;
    }
    let txs = arg("--history-txs", 100_000);
    let block_txs = arg("--block-txs", 2000);
    let out = arg_str("--out");
    let before = arg_str("--before").map(PathBuf::from);
    let load_start = loadavg(3);
    let date = utc_now();
    let work = target_dir().join("wallet-size-bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    let ledger_dir = app_history_ledger_dir(&target_dir(), txs, block_txs);
    let (populated, cached) = notch_tests::bench::ledger(
        &bin("notch-gateway-populate"),
        &ledger_dir,
        txs,
        block_txs,
        1,
    );
    let paid = populated["paid_to_listed_keys"].as_u64().unwrap();
    let gateway = start_gateway(&bin("notch-gateway"), &ledger_dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = work.join("wallet");
    eprintln!("wallet-size-bench: restoring and syncing the {paid}-payment wallet");
    let wallet = rt.block_on(build_wallet(&dir, &gateway.url, paid));
    drop(gateway);
    let db = dir.join("wallet.sqlite");
    let space = space_json(&db);
    let upgrade = before.as_deref().map(|b| {
        eprintln!("wallet-size-bench: upgrading a copy of {}", b.display());
        let mut report = upgrade(b, &work);
        report["what"] = json!(arg_str("--before-what"));
        report
    });
    let result = json!({
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "date": date,
        "loadavg_start": load_start,
        "loadavg_end": loadavg(3),
        "ledger": {
            "dir": ledger_dir.display().to_string(),
            "cached": cached,
            "blocks": populated["blocks"],
            "block_txs": populated["block_txs"],
        },
        "wallet": wallet,
        "file_bytes_on_disk": file_len(&db),
        "space": space,
        "upgrade": upgrade,
        "params": { "history_txs": txs, "block_txs": block_txs },
    });
    let text = markdown(&result);
    match out {
        Some(path) => {
            let path = PathBuf::from(path);
            std::fs::write(&path, &text).unwrap();
            let json_path = path.with_extension("json");
            std::fs::write(&json_path, serde_json::to_string_pretty(&result).unwrap()).unwrap();
            eprintln!(
                "wallet-size-bench: wrote {} and {}",
                path.display(),
                json_path.display()
            );
        }
        None => print!("{text}"),
    }
}
