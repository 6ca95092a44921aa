//! `cargo xtask test`: setup, then every test suite of the workspace.

use crate::session;
use crate::sh::{self, Result, Timer, cmd};
use crate::{setup, ui};

pub fn run(timer: &mut Timer, args: &[String]) -> Result {
    match args.first().map(String::as_str) {
        None => {}
        // Only the real-window tests (after the UI build): the quick loop
        // while working on the app.
        Some("e2e") if args.len() == 1 => {
            setup::run(timer)?;
            ui::build(timer, ui::Profile::Debug)?;
            return timer.step("end-to-end tests (real app window under Xvfb)", end_to_end);
        }
        // Only the mobile bindings: their target checks, generated sources
        // and the Python and Kotlin tests.
        Some("mobile") if args.len() == 1 => {
            setup::run(timer)?;
            return mobile_steps(timer);
        }
        Some(other) => {
            return Err(format!(
                "unknown option {other:?} (usage: cargo xtask test [e2e|mobile])"
            ));
        }
    }
    setup::run(timer)?;
    timer.step("rustfmt --check", || {
        sh::run(cmd("cargo").args(["fmt", "--all", "--check"]))
    })?;
    ui::build(timer, ui::Profile::Debug)?;
    // The gateway's suite runs on SQLite and on PostgreSQL (a throwaway cluster per test
    // binary, ADR 8); setup installed PostgreSQL, so here a missing one fails rather than
    // skips.
    timer.step("unit and integration tests", || {
        sh::run(
            cmd("cargo")
                .args(["test", "--workspace", "--exclude", "notch-ui"])
                .env("NOTCH_TEST_POSTGRES", "require"),
        )
    })?;
    // The UI's pure logic (the history list's geometry and paging, deep
    // links, formats) runs on the host too; the wasm build above is what ships.
    timer.step("UI unit tests (host)", || {
        sh::run(cmd("cargo").args(["test", "-p", "notch-ui"]))
    })?;
    // The 10-minute soak is `cargo xtask soak gateway`; here a few seconds of it, on the
    // debug binaries the tests just built, so that it keeps working.
    timer.step(
        "gateway soak, briefly (load, hostile clients, kill -9)",
        || {
            let out = sh::target_dir().join("gateway-soak-ci.md");
            sh::run(cmd("cargo").args([
                "run",
                "-p",
                "notch-gateway",
                "--bin",
                "notch-gateway-soak",
                "--",
                "--minutes",
                "0.25",
                "--out",
                &out.to_string_lossy(),
            ]))
        },
    )?;
    timer.step(
        "real Secret Service: keystore test, CLI kill -9 test",
        keystore_tests,
    )?;
    mobile_steps(timer)?;
    timer.step("fuzz targets build and run briefly", fuzz_targets)?;
    timer.step("end-to-end tests (real app window under Xvfb)", end_to_end)?;
    Ok(())
}

/// The core and the bindings for the phones' targets (checked, not linked:
/// no NDK or Apple SDK here), then the bindings on Linux: the checked-in
/// generated sources, and the Python and Kotlin tests against a real
/// sandbox gateway.
fn mobile_steps(timer: &mut Timer) -> Result {
    timer.step("mobile target check: aarch64-linux-android", || {
        sh::run(
            cmd("cargo")
                .args([
                    "check",
                    "-p",
                    "notch-core",
                    "-p",
                    "notch-mobile",
                    "--target",
                    "aarch64-linux-android",
                ])
                .env("CC_aarch64_linux_android", "clang")
                .env(
                    "CFLAGS_aarch64_linux_android",
                    // Debian's aarch64 glibc headers stand in for the NDK's bionic;
                    // glibc hides pthread_rwlock_t from strict C11 (aws-lc-sys) unless
                    // asked, bionic does not.
                    "--target=aarch64-linux-android --sysroot=/usr/aarch64-linux-gnu -D_GNU_SOURCE",
                ),
        )
    })?;
    timer.step("mobile target check: aarch64-apple-ios", || {
        sh::run(cmd("cargo").args([
            "check",
            "-p",
            "notch-core",
            "-p",
            "notch-mobile",
            "--target",
            "aarch64-apple-ios",
        ]))
    })?;
    timer.step(
        "mobile bindings: generated sources up to date",
        crate::mobile::check_generated,
    )?;
    timer.step(
        "mobile bindings: Python (generated module, real sandbox gateway)",
        crate::mobile::python_tests,
    )?;
    timer.step(
        "mobile bindings: Kotlin (kotlinc, JNA, real sandbox gateway)",
        crate::mobile::kotlin_tests,
    )?;
    Ok(())
}

/// Every cargo-fuzz target in fuzz/ built and run for a few seconds, so a target that stops
/// building, or a decoder that crashes on the seeds, fails the run (`cargo xtask fuzz` for
/// longer runs).
fn fuzz_targets() -> Result {
    crate::fuzz::smoke(crate::fuzz::SMOKE_SECS)
}

/// The binaries people run (gateway, CLI, app), built the way they ship:
/// without the dev-only `tauri/test` feature that `cargo test` turns on.
/// With them the bindings generator and the phones' library for the host
/// (`notch-mobile/cli`): one build, one feature set. A build of
/// `-p notch-mobile` alone resolves other features for the shared
/// dependencies and compiled the whole tree again (390 s of a fresh run).
pub fn build_binaries() -> Result {
    sh::run(cmd("cargo").args([
        "build",
        "--workspace",
        "--exclude",
        "notch-ui",
        "--features",
        "notch-mobile/cli",
        "--lib",
        "--bins",
    ]))
}

/// The real Secret Service: a throwaway session bus and gnome-keyring,
/// unlocked with a test passphrase. The keystore test and the CLI crash test
/// (many `notch` processes that must find the same seed) run inside it.
fn keystore_tests() -> Result {
    build_binaries()?;
    let home = sh::target_dir().join("keystore-test-home");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
    let script = "printf 'notch-test' | gnome-keyring-daemon --unlock --components=secrets >/dev/null && \
                  cargo test --workspace --exclude notch-ui --test os_keystore --test wallet_crash --test tally_open --test tally_cli \
                  -- --include-ignored";
    sh::run(
        cmd("dbus-run-session")
            .args(["--", "sh", "-c", script])
            .env("XDG_DATA_HOME", &home)
            .env("NOTCH_TEST_SECRET_SERVICE", "1")
            .env("NOTCH_BIN_DIR", sh::target_dir().join("debug")),
    )
}

fn end_to_end() -> Result {
    build_binaries()?;
    let (display, _xvfb) = session::start_xvfb()?;
    let screens = sh::target_dir().join("e2e-screens");
    // The app keeps its seed in the real OS keystore: a private session bus
    // with gnome-keyring, its keyring files in a throwaway directory.
    let keyring_home = sh::target_dir().join("e2e-keyring-home");
    let _ = std::fs::remove_dir_all(&keyring_home);
    std::fs::create_dir_all(&keyring_home)
        .map_err(|e| format!("cannot create {}: {e}", keyring_home.display()))?;
    let script = "printf 'notch-test' | gnome-keyring-daemon --unlock --components=secrets >/dev/null && \
                  cargo test --workspace --exclude notch-ui --test app_e2e --test app_scan_e2e --test app_lock_e2e --test app_tally_e2e \
                  -- --ignored --test-threads=1";
    sh::run(
        cmd("dbus-run-session")
            .args(["--", "sh", "-c", script])
            .env("DISPLAY", &display)
            .env("XDG_DATA_HOME", &keyring_home)
            .env("NOTCH_E2E_SCREENS", &screens)
            .env("NOTCH_BIN_DIR", sh::target_dir().join("debug")),
    )
}
