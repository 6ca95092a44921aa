//! What the app's end-to-end tests share: scratch directories, the CLI as a
//! second wallet, the sandbox faucet, and onboarding in the real window.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bin;
use crate::webdriver::AppSession;

/// How long a step in the real window may take (a debug build under Xvfb
/// on a busy machine is slow; a hang still fails).
pub const LONG: Duration = Duration::from_secs(90);

/// An empty scratch directory for this test process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("notch-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Asks the sandbox faucet to pay `amount` base units of `asset` to `address`.
pub fn faucet(gateway: &str, address: &str, asset: &str, amount: u64) {
    let response = reqwest::blocking::Client::new()
        .post(format!("{gateway}/v1/sandbox/faucet"))
        .json(&serde_json::json!({ "address": address, "asset": asset, "amount": amount }))
        .send()
        .unwrap();
    assert!(
        response.status().is_success(),
        "faucet failed: {}",
        response.status()
    );
}

/// Runs the `notch` CLI against `data_dir` (a second wallet) and returns
/// what it printed.
pub fn cli(gateway: &str, data_dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(bin("notch"))
        .arg("--gateway")
        .arg(gateway)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "notch {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Onboarding in the window: create a 12-word wallet, read the phrase,
/// answer the backup check, and wait for the home screen to be up to date.
/// Returns the phrase's words. Screenshots `NN-onboarding`, `-phrase`,
/// `-confirm` and `-home` with `prefix` in front.
pub fn create_wallet(app: &AppSession, prefix: &str) -> Vec<String> {
    app.wait_for("onboard-create", LONG);
    app.wait_text("gateway-status", LONG, |t| t.contains("Connected"));
    app.screenshot(&format!("{prefix}-onboarding"));
    app.click("onboard-create");
    app.wait_for("phrase-word-11", LONG);
    let words: Vec<String> = (0..12)
        .map(|i| app.text(&format!("phrase-word-{i}")).unwrap_or_default())
        .collect();
    assert!(words.iter().all(|w| !w.trim().is_empty()), "{words:?}");
    app.screenshot(&format!("{prefix}-phrase"));
    app.click("phrase-written");
    for k in 0..3 {
        let label = app.wait_text(&format!("confirm-label-{k}"), LONG, |t| t.contains('#'));
        let n: usize = label
            .rsplit('#')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no position in {label:?}"));
        app.type_text(&format!("confirm-word-{k}"), &words[n - 1]);
    }
    app.screenshot(&format!("{prefix}-confirm"));
    app.click("confirm-submit");
    app.wait_text("sync-state", LONG, |t| t.contains("Up to date"));
    app.screenshot(&format!("{prefix}-home"));
    words
}

/// Waits until the element with that test id is gone from the page.
pub fn eventually_gone(app: &AppSession, test_id: &str) {
    crate::eventually(&format!("[data-testid={test_id}] to go away"), LONG, || {
        app.find(test_id).is_none().then_some(())
    });
}
