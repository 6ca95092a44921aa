//! The lock in the real app window (Xvfb, tauri-driver, WebKitWebDriver)
//! against a real sandbox gateway: set a lock passphrase, see the recovery
//! phrase again only behind it, lock after the idle time, unlock, and start
//! locked after a restart. Run by `cargo xtask test`.

use std::time::Duration;

use notch_tests::bin;
use notch_tests::e2e::{LONG, create_wallet, eventually_gone, temp_dir};
use notch_tests::gateway::Sandbox;
use notch_tests::webdriver::AppSession;
use serde_json::json;

const PASSPHRASE: &str = "plum tractor 93";

#[test]
#[ignore = "needs a display, tauri-driver, a Secret Service and built binaries: run by `cargo xtask test`"]
fn the_phrase_shows_behind_the_lock_and_the_app_locks_when_idle_and_on_restart() {
    let gateway = Sandbox::start(temp_dir("gw-lock"), "127.0.0.1:0");
    let profile = temp_dir("profile-lock");
    let profile_str = profile.display().to_string();
    let env = [
        ("NOTCH_GATEWAY", gateway.url.as_str()),
        ("NOTCH_DATA_DIR", profile_str.as_str()),
    ];
    let app = AppSession::launch(&bin("notch-app"), &env, "lock");
    let words = create_wallet(&app, "01");

    // Without a passphrase the phrase can't be shown and the app can't lock.
    app.click("nav-settings");
    app.wait_for("phrase-needs-lock", LONG);
    assert!(app.find("lock-now").is_none());
    app.screenshot("02-settings-no-lock");

    // A short passphrase is refused; a good one is saved.
    app.type_text("lock-new", "short");
    app.type_text("lock-repeat", "short");
    app.click("lock-save");
    app.wait_text("lock-error", LONG, |t| t.contains("at least 8"));
    app.type_text("lock-new", PASSPHRASE);
    app.type_text("lock-repeat", PASSPHRASE);
    app.click("lock-save");
    app.wait_text("lock-saved", LONG, |t| t.contains("saved"));
    eventually_gone(&app, "lock-error");

    // The phrase: refused with a wrong passphrase, shown with the right one.
    app.wait_for("phrase-passphrase", LONG);
    app.type_text("phrase-passphrase", "plum tractor 94");
    app.click("phrase-reveal");
    app.wait_text("phrase-error", LONG, |t| {
        t.contains("not the lock passphrase")
    });
    assert!(app.find("settings-phrase-word-0").is_none());
    app.type_text("phrase-passphrase", PASSPHRASE);
    app.click("phrase-reveal");
    app.wait_for("settings-phrase-word-11", LONG);
    let shown: Vec<String> = (0..12)
        .map(|i| {
            app.text(&format!("settings-phrase-word-{i}"))
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(shown, words, "the phrase shown again is the one created");
    app.screenshot("03-phrase-shown");
    app.click("phrase-hide");
    eventually_gone(&app, "settings-phrase-word-0");

    // Idle lock after one minute: choose it the way a person would (a
    // change of the select), then keep the mouse and keyboard still.
    app.wait_for("lock-idle", LONG);
    app.execute(
        "const s = document.querySelector('[data-testid=lock-idle]');
         s.value = '1'; s.dispatchEvent(new Event('change', { bubbles: true }));",
        json!([]),
    );
    app.wait_text("lock-saved", LONG, |t| t.contains("Idle time saved"));
    app.screenshot("04-idle-one-minute");
    app.wait_for("lock-screen", Duration::from_secs(120));
    assert!(app.find("nav-home").is_none(), "no navigation while locked");
    assert!(
        app.find("settings-lock").is_none(),
        "no screen while locked"
    );
    app.screenshot("05-locked-when-idle");

    // Unlock: a wrong passphrase is refused, the right one opens the wallet.
    app.type_text("unlock-passphrase", "not it at all");
    app.click("unlock-submit");
    app.wait_text("unlock-error", LONG, |t| {
        t.contains("not the lock passphrase")
    });
    assert!(app.find("lock-screen").is_some());
    app.type_text("unlock-passphrase", PASSPHRASE);
    app.click("unlock-submit");
    eventually_gone(&app, "lock-screen");
    app.wait_for("nav-home", LONG);
    app.screenshot("06-unlocked");

    // "Lock now".
    app.click("nav-settings");
    app.wait_for("lock-now", LONG);
    app.click("lock-now");
    app.wait_for("lock-screen", LONG);
    drop(app);

    // After a restart the wallet opens locked.
    let app = AppSession::launch(&bin("notch-app"), &env, "lock_restart");
    app.wait_for("lock-screen", LONG);
    assert!(app.find("nav-home").is_none());
    app.screenshot("01-starts-locked");
    app.type_text("unlock-passphrase", PASSPHRASE);
    app.click("unlock-submit");
    app.wait_text("sync-state", LONG, |t| t.contains("Up to date"));
    app.screenshot("02-unlocked");
}
