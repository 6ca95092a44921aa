//! `cargo xtask bench`: every benchmark, results in bench/results/.

use crate::sh::{self, Result, Timer, cmd};

pub fn run(timer: &mut Timer, args: &[String]) -> Result {
    if let Some(other) = args.first() {
        return Err(format!(
            "unknown option {other:?} (usage: cargo xtask bench)"
        ));
    }
    let results = sh::root().join("bench/results");
    std::fs::create_dir_all(&results)
        .map_err(|e| format!("cannot create {}: {e}", results.display()))?;
    timer.step("gateway benchmark", || {
        sh::run(cmd("cargo").args([
            "run",
            "--release",
            "-p",
            "notch-gateway",
            "--bin",
            "notch-gateway-bench",
            "--",
            "--out",
            "bench/results/gateway.md",
        ]))
    })?;
    // Wallet: restore-and-sync of a 1M-transaction sandbox ledger (populated once into
    // target/bench-ledger-1m/, then reused), push latency, a 500-recipient batch, peak memory.
    timer.step("wallet benchmark", || {
        sh::run(cmd("cargo").args(["build", "--release", "-p", "notch-gateway", "--bins"]))?;
        sh::run(cmd("cargo").args([
            "run",
            "--release",
            "-p",
            "notch-tests",
            "--bin",
            "notch-wallet-bench",
            "--",
            "--out",
            "bench/results/wallet.md",
        ]))
    })?;
    Ok(())
}
