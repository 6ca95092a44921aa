//! `cargo xtask test`: setup, then every test suite of the workspace.

use crate::session;
use crate::sh::{self, Result, Timer, cmd};
use crate::{setup, ui};

pub fn run(timer: &mut Timer, args: &[String]) -> Result {
    if let Some(other) = args.first() {
        return Err(format!(
            "unknown option {other:?} (usage: cargo xtask test)"
        ));
    }
    setup::run(timer)?;
    timer.step("rustfmt --check", || {
        sh::run(cmd("cargo").args(["fmt", "--all", "--check"]))
    })?;
    ui::build(timer, ui::Profile::Debug)?;
    timer.step("unit and integration tests", || {
        sh::run(cmd("cargo").args(["test", "--workspace", "--exclude", "notch-ui"]))
    })?;
    timer.step(
        "OS keystore test (gnome-keyring under dbus-run-session)",
        keystore_test,
    )?;
    timer.step("mobile target check: aarch64-linux-android", || {
        sh::run(
            cmd("cargo")
                .args([
                    "check",
                    "-p",
                    "notch-core",
                    "--target",
                    "aarch64-linux-android",
                ])
                .env("CC_aarch64_linux_android", "clang")
                .env(
                    "CFLAGS_aarch64_linux_android",
                    "--target=aarch64-linux-android --sysroot=/usr/aarch64-linux-gnu",
                ),
        )
    })?;
    timer.step("mobile target check: aarch64-apple-ios", || {
        sh::run(cmd("cargo").args(["check", "-p", "notch-core", "--target", "aarch64-apple-ios"]))
    })?;
    timer.step("end-to-end tests (real app window under Xvfb)", end_to_end)?;
    Ok(())
}

/// The real Secret Service: a throwaway session bus and keyring, unlocked
/// with a test passphrase, holding the wallet's secrets for the test.
fn keystore_test() -> Result {
    let home = sh::target_dir().join("keystore-test-home");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
    let script = "printf 'notch-test' | gnome-keyring-daemon --unlock --components=secrets >/dev/null && \
                  NOTCH_TEST_SECRET_SERVICE=1 cargo test -p notch-core --test os_keystore";
    sh::run(
        cmd("dbus-run-session")
            .args(["--", "sh", "-c", script])
            .env("XDG_DATA_HOME", &home),
    )
}

fn end_to_end() -> Result {
    // Built without the dev-only `tauri/test` feature: the binary people run.
    sh::run(cmd("cargo").args([
        "build",
        "-p",
        "notch-gateway",
        "-p",
        "notch-cli",
        "-p",
        "notch-app",
    ]))?;
    let (display, _xvfb) = session::start_xvfb()?;
    let screens = sh::target_dir().join("e2e-screens");
    // The app keeps its seed in the real OS keystore: a private session bus
    // with gnome-keyring, its keyring files in a throwaway directory.
    let keyring_home = sh::target_dir().join("e2e-keyring-home");
    let _ = std::fs::remove_dir_all(&keyring_home);
    std::fs::create_dir_all(&keyring_home)
        .map_err(|e| format!("cannot create {}: {e}", keyring_home.display()))?;
    let script = "printf 'notch-test' | gnome-keyring-daemon --unlock --components=secrets >/dev/null && \
                  cargo test -p notch-tests --test app_e2e -- --ignored --test-threads=1";
    sh::run(
        cmd("dbus-run-session")
            .args(["--", "sh", "-c", script])
            .env("DISPLAY", &display)
            .env("XDG_DATA_HOME", &keyring_home)
            .env("NOTCH_E2E_SCREENS", &screens)
            .env("NOTCH_BIN_DIR", sh::target_dir().join("debug")),
    )
}
