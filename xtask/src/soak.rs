//! `cargo xtask soak [--rounds N] [--seed S]`: the wallet's reorg soak
//! (tests/tests/wallet_reorg_soak.rs: random reorgs of a real sandbox
//! gateway during syncs and sends, the wallet checked against the canonical
//! chain after every round) for many more rounds than CI runs (1000 by
//! default; CI runs 5 as part of `cargo test`). Writes nothing; the seed is
//! printed, and `--seed` replays a run.

use std::time::Instant;

use crate::sh::{self, Result, Timer, cmd};

const DEFAULT_ROUNDS: u64 = 1000;

const USAGE: &str = "usage: cargo xtask soak [--rounds N] [--seed S]";

pub fn run(timer: &mut Timer, args: &[String]) -> Result {
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
