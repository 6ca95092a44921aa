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
    Ok(())
}
