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
