//! The OS secret store against a REAL keystore.
//!
//! The tests that need a running, unlocked Secret Service are `#[ignore]`d
//! for a plain `cargo test` (they show as ignored, never as a silent pass);
//! `cargo xtask test` runs them inside a private session, like this:
//!
//! ```sh
//! dbus-run-session -- sh -c 'printf pw | gnome-keyring-daemon --unlock --components=secrets; \
//!   NOTCH_TEST_SECRET_SERVICE=1 cargo test -p notch-core --test os_keystore -- --include-ignored'
//! ```
//!
//! It keeps its items under a service of its own (`notch-test-<pid>`) and
//! deletes them, so it never touches a real wallet's secret.

use notch_core::keys::{RecoveryPhrase, WalletSecret, WordCount};
use notch_core::secrets::{OsSecretStore, SecretStore, SecretStoreError};

const NEEDS_SECRET_SERVICE: &str = "needs a running Secret Service: run by `cargo xtask test`";

/// Run with `--ignored` outside the prepared session, the test fails and says why.
fn enabled(test: &str) -> bool {
    let on = std::env::var("NOTCH_TEST_SECRET_SERVICE").is_ok_and(|v| v == "1");
    assert!(
        on,
        "{test} {NEEDS_SECRET_SERVICE} (set NOTCH_TEST_SECRET_SERVICE=1 inside a session \
         with an unlocked Secret Service; see core/tests/os_keystore.rs)"
    );
    on
}

fn test_service() -> String {
    format!("notch-test-{}", std::process::id())
}

#[test]
#[ignore = "needs a running Secret Service: run by `cargo xtask test`"]
fn stores_reads_replaces_and_deletes_a_secret() {
    if !enabled("stores_reads_replaces_and_deletes_a_secret") {
        return;
    }
    let store = match OsSecretStore::open_with_service(&test_service()) {
        Ok(store) => store,
        Err(e) => panic!("the OS keystore should be reachable here: {e}"),
    };
    println!("using {} ({store:?})", store.name());
    let key = "wallet-os-test-1";
    store.delete(key).expect("cleans up before");
    assert_eq!(store.get(key).expect("reads"), None);

    // Every byte value survives (the store is binary-safe).
    let all_bytes: Vec<u8> = (0..=255).collect();
    store.set(key, &all_bytes).expect("stores");
    assert_eq!(store.get(key).expect("reads").as_deref(), Some(&all_bytes));

    // Replacing keeps one item with the new value.
    let secret = WalletSecret::new(
        RecoveryPhrase::generate(WordCount::TwentyFour).expect("randomness"),
        "passphrase",
    );
    store.set(key, &secret.to_bytes()).expect("replaces");
    let read = store.get(key).expect("reads").expect("present");
    assert_eq!(WalletSecret::from_bytes(&read).expect("decodes"), secret);

    // Another handle (as after a restart) sees the same secret.
    let again = OsSecretStore::open_with_service(&test_service()).expect("opens again");
    assert_eq!(again.get(key).expect("reads").as_deref(), Some(&*read));

    store.delete(key).expect("deletes");
    store
        .delete(key)
        .expect("deleting a missing secret is fine");
    assert_eq!(again.get(key).expect("reads"), None);
}

/// A wallet calls the store from async code: that must not panic
/// ("Cannot start a runtime from within a runtime").
#[test]
#[ignore = "needs a running Secret Service: run by `cargo xtask test`"]
fn works_from_inside_a_tokio_runtime() {
    if !enabled("works_from_inside_a_tokio_runtime") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = OsSecretStore::open_with_service(&test_service()).expect("opens");
        let key = "wallet-os-test-async";
        store.set(key, b"from async").expect("stores");
        assert_eq!(
            store.get(key).expect("reads").as_deref().map(Vec::as_slice),
            Some(&b"from async"[..])
        );
        store.delete(key).expect("deletes");
    });
}

/// Without a D-Bus session there is no Secret Service: `open` must fail
/// and say what to do. Runs this test binary again with a bus address that
/// leads nowhere, so that it does not disturb the other tests.
#[cfg(target_os = "linux")]
#[test]
fn says_what_to_do_without_a_secret_service() {
    if std::env::var("NOTCH_TEST_CHILD_NO_BUS").is_ok() {
        match OsSecretStore::open_with_service(&test_service()) {
            Err(e @ SecretStoreError::Unavailable { .. }) => {
                let text = e.to_string();
                println!("open() without a bus: {text}");
                assert!(text.contains("gnome-keyring"), "{text}");
                assert!(text.contains("dbus-run-session"), "{text}");
            }
            Err(other) => panic!("expected Unavailable, got: {other}"),
            Ok(store) => panic!("opened {store:?} without a session bus"),
        }
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let output = std::process::Command::new(exe)
        .args([
            "--exact",
            "says_what_to_do_without_a_secret_service",
            "--nocapture",
        ])
        .env("NOTCH_TEST_CHILD_NO_BUS", "1")
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/notch-test-bus",
        )
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("runs the child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    // Only the child's message, not its test summary (that would read as a
    // second test run to tools that count results).
    let message = stdout
        .lines()
        .find(|line| line.starts_with("open() without a bus"));
    assert!(message.is_some(), "{stdout}");
    println!("{}", message.unwrap_or_default());
}
