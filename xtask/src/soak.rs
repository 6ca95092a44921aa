//! `cargo xtask soak [wallet] [--rounds N] [--seed S]`: the wallet's reorg
//! soak (tests/tests/wallet_reorg_soak.rs: random reorgs of a real sandbox
//! gateway during syncs and sends, the wallet checked against the canonical
//! chain after every round) for many more rounds than CI runs (1000 by
//! default; CI runs 5 as part of `cargo test`). Writes nothing; the seed is
//! printed, and `--seed` replays a run.
//!
//! `cargo xtask soak gateway [--minutes M]`: the gateway under load and
//! hostile clients for 10 minutes (gateway/src/bin/notch-gateway-soak.rs:
//! requests, errors, resident memory over time, a SIGKILL half way and
//! nothing accepted lost), report in bench/results/gateway-soak.md. CI runs
//! it for a few seconds (`cargo xtask test`).

use std::time::Instant;

use crate::sh::{self, Result, Timer, cmd};

const DEFAULT_ROUNDS: u64 = 1000;

const USAGE: &str = "usage: cargo xtask soak [wallet] [--rounds N] [--seed S] | cargo xtask soak gateway [--minutes M]";

pub fn run(timer: &mut Timer, args: &[String]) -> Result {
    match args.first().map(String::as_str) {
        Some("gateway") => return gateway(timer, &args[1..], "bench/results/gateway-soak.md"),
        Some("wallet") => return wallet(timer, &args[1..]),
        _ => {}
    }
    wallet(timer, args)
}

/// The gateway soak for `--minutes` (10 by default), report in `out`.
pub fn gateway(timer: &mut Timer, args: &[String], out: &str) -> Result {
    let mut minutes = "10".to_owned();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--minutes" => {
                minutes = rest
                    .next()
                    .filter(|v| v.parse::<f64>().is_ok_and(|m| m > 0.0))
                    .cloned()
                    .ok_or_else(|| format!("--minutes needs a positive number ({USAGE})"))?
            }
            other => return Err(format!("unexpected argument {other:?} ({USAGE})")),
        }
    }
    timer.step(&format!("gateway soak: {minutes} minutes"), || {
        sh::run(cmd("cargo").args(["build", "--release", "-p", "notch-gateway", "--bins"]))?;
        sh::run(cmd("cargo").args([
            "run",
            "--release",
            "-p",
            "notch-gateway",
            "--bin",
            "notch-gateway-soak",
            "--",
            "--minutes",
            &minutes,
            "--out",
            out,
        ]))
    })
}

fn wallet(timer: &mut Timer, args: &[String]) -> Result {
    let mut rounds = DEFAULT_ROUNDS;
    let mut seed: Option<u64> = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| -> Result<u64> {
            rest.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number ({USAGE})"))
        };
        match arg.as_str() {
            "--rounds" => rounds = value("--rounds")?,
            "--seed" => seed = Some(value("--seed")?),
            other => return Err(format!("unexpected argument {other:?} ({USAGE})")),
        }
    }
    timer.step("build the sandbox gateway", || {
        sh::run(cmd("cargo").args(["build", "-p", "notch-gateway"]))
    })?;
    timer.step(&format!("wallet reorg soak: {rounds} rounds"), || {
        let started = Instant::now();
        let mut test = cmd("cargo");
        test.args([
            "test",
            "-p",
            "notch-tests",
            "--test",
            "wallet_reorg_soak",
            "--",
            "--nocapture",
        ])
        .env("NOTCH_SOAK_ROUNDS", rounds.to_string());
        if let Some(seed) = seed {
            test.env("NOTCH_SOAK_SEED", seed.to_string());
        }
        let result = sh::run(&mut test);
        let secs = started.elapsed().as_secs_f64();
        println!(
            "soak: {rounds} rounds {} in {secs:.1} s ({:.2} s a round)",
            if result.is_ok() { "passed" } else { "FAILED" },
            secs / rounds.max(1) as f64
        );
        result
    })
}
