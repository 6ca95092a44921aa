//! `cargo xtask bench [gateway|wallet|wallet-size|app|peer|tallies] [-- ARGS…]`: every benchmark (or
//! the one named, with ARGS passed to its binary), results in bench/results/.

use crate::sh::{self, Result, Timer, cmd};
use crate::{session, ui};

/// The benchmarks, in the order they run; `cargo xtask bench NAME` runs one.
const BENCHES: [&str; 7] = [
    "gateway",
    "wallet",
    "wallet-size",
    "app",
    "peer",
    "tallies",
    "mobile-size",
];

pub fn run(timer: &mut Timer, args: &[String]) -> Result {
    // What follows `--` goes to the one benchmark's binary (e.g. a smaller fixture).
    let (args, extra) = match args.iter().position(|a| a == "--") {
        Some(at) => (&args[..at], &args[at + 1..]),
        None => (args, &[][..]),
    };
    let only = match args {
        [] if extra.is_empty() => None,
        [name] if BENCHES.contains(&name.as_str()) => Some(name.as_str()),
        _ => {
            return Err(format!(
                "unexpected arguments {args:?} (usage: cargo xtask bench [{}])",
                BENCHES.join("|")
            ));
        }
    };
    let wanted = |name: &str| only.is_none_or(|o| o == name);
    let results = sh::root().join("bench/results");
    std::fs::create_dir_all(&results)
        .map_err(|e| format!("cannot create {}: {e}", results.display()))?;
    if wanted("gateway") {
        timer.step("gateway benchmark", || {
            sh::run(
                cmd("cargo")
                    .args([
                        "run",
                        "--release",
                        "-p",
                        "notch-gateway",
                        "--bin",
                        "notch-gateway-bench",
                        "--",
                        "--out",
                        "bench/results/gateway.md",
                    ])
                    .args(extra),
            )
        })?;
    }
    // Wallet: restore-and-sync of a 1M-transaction sandbox ledger (populated once into
    // target/bench-ledger-1m/, then reused), push latency, a 500-recipient batch, peak memory.
    if wanted("wallet") {
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
    }
    // Wallet file size: the app benchmark's long-history wallet (100,000 payments, the same
    // ledger in target/bench-ledger-app/) restored and synced without the app, and what each
    // table and index of its wallet.sqlite takes (SQLite's dbstat).
    if wanted("wallet-size") {
        timer.step("wallet size benchmark", || {
            sh::run(cmd("cargo").args(["build", "--release", "-p", "notch-gateway", "--bins"]))?;
            sh::run(
                cmd("cargo")
                    .args([
                        "run",
                        "--release",
                        "-p",
                        "notch-tests",
                        "--bin",
                        "notch-wallet-size-bench",
                        "--",
                        "--out",
                        "bench/results/wallet-size.md",
                    ])
                    .args(extra),
            )
        })?;
    }
    // Desktop app: cold start to the first usable screen, memory of the app's process tree,
    // opening and scrolling a 100,000-transaction history (ledger populated once into
    // target/bench-ledger-app/, then reused). The app embeds ui/dist: the UI is built first.
    // Tallies: chit signatures and Noise handshakes beside MyCHIPs's own npm code (Node),
    // and a signed chit's round trip over a Noise session.
    if wanted("peer") {
        timer.step("peer benchmark", || {
            sh::run(cmd("cargo").args([
                "run",
                "--release",
                "-p",
                "notch-tests",
                "--bin",
                "notch-peer-bench",
                "--",
                "--out",
                "bench/results/peer.md",
            ]))
        })?;
    }
    if wanted("app") {
        ui::build(timer, ui::Profile::Release)?;
        timer.step("app benchmark", app_benchmark)?;
    }
    // Tallies in the desktop app: a ticket picture scanned to the partner's certificate shown,
    // a partner's chit to the balance painted, and the Tallies screen of 1,000 tallies (one
    // with 10,000 chits: made once through the protocol into target/bench-tallies-app/, then
    // reused): first paint and memory.
    if wanted("tallies") {
        // Run with the others, the app benchmark just built the release UI.
        if only.is_some() {
            ui::build(timer, ui::Profile::Release)?;
        }
        timer.step("tallies app benchmark", || tallies_benchmark(extra))?;
    }
    // Mobile: the size of the release library for aarch64-linux-android (mobile-release
    // profile), linked without the NDK: xtask/src/mobile_size.rs says what stands in for it.
    if wanted("mobile-size") {
        timer.step("mobile library size", crate::mobile_size::run)?;
    }
    Ok(())
}

/// The release app in a real window (a fresh Xvfb) with the OS keystore it
/// needs (a private session bus with gnome-keyring, in a throwaway keyring
/// directory), as the end-to-end tests run it.
fn app_benchmark() -> Result {
    sh::run(cmd("cargo").args(["build", "--release", "-p", "notch-gateway", "--bins"]))?;
    sh::run(cmd("cargo").args(["build", "--release", "-p", "notch-app"]))?;
    let (display, _xvfb) = session::start_xvfb()?;
    let keyring_home = sh::target_dir().join("app-bench-keyring-home");
    let _ = std::fs::remove_dir_all(&keyring_home);
    std::fs::create_dir_all(&keyring_home)
        .map_err(|e| format!("cannot create {}: {e}", keyring_home.display()))?;
    let script = "printf 'notch-test' | gnome-keyring-daemon --unlock --components=secrets >/dev/null && \
                  cargo run --release -p notch-tests --bin notch-app-bench -- --out bench/results/app.md";
    sh::run(
        cmd("dbus-run-session")
            .args(["--", "sh", "-c", script])
            .env("DISPLAY", &display)
            .env("XDG_DATA_HOME", &keyring_home)
            .env("NOTCH_TEST_SECRET_SERVICE", "1"),
    )
}

/// The tallies benchmark of the release app, in the same kind of session as
/// [`app_benchmark`].
fn tallies_benchmark(extra: &[String]) -> Result {
    sh::run(cmd("cargo").args(["build", "--release", "-p", "notch-gateway", "--bins"]))?;
    sh::run(cmd("cargo").args(["build", "--release", "-p", "notch-app"]))?;
    let (display, _xvfb) = session::start_xvfb()?;
    let keyring_home = sh::target_dir().join("tally-bench-keyring-home");
    let _ = std::fs::remove_dir_all(&keyring_home);
    std::fs::create_dir_all(&keyring_home)
        .map_err(|e| format!("cannot create {}: {e}", keyring_home.display()))?;
    // The extra arguments are the script's positional parameters ("$@"): no quoting to get wrong.
    let script = "printf 'notch-test' | gnome-keyring-daemon --unlock --components=secrets >/dev/null && \
                  cargo run --release -p notch-tests --bin notch-tally-app-bench -- --out bench/results/tallies.md \"$@\"";
    sh::run(
        cmd("dbus-run-session")
            .args(["--", "sh", "-c", script, "tallies-bench"])
            .args(extra)
            .env("DISPLAY", &display)
            .env("XDG_DATA_HOME", &keyring_home)
            .env("NOTCH_TEST_SECRET_SERVICE", "1"),
    )
}
