//! The real desktop app in a real window (Xvfb), driven through tauri-driver
//! and WebKitWebDriver, against a real sandbox gateway on loopback.
//! Run by `cargo xtask test`, which provides the display and the binaries.

use std::time::Duration;

use notch_tests::gateway::Sandbox;
use notch_tests::webdriver::AppSession;
use notch_tests::{bin, free_port};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("notch-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
#[ignore = "needs a display, tauri-driver and built binaries: run by `cargo xtask test`"]
fn app_shows_the_live_gateway_and_follows_its_tip() {
    let gateway = Sandbox::start(temp_dir("gw-live"), "127.0.0.1:0");
    gateway.mine(2);
    let tip = gateway.tip_height();

    let app = AppSession::launch(
        &bin("notch-app"),
        &[("NOTCH_GATEWAY", &gateway.url)],
        "live_gateway",
    );
    app.wait_text("gateway-status", Duration::from_secs(60), |t| {
        t.contains("Connected")
    });
    assert!(
        app.text("gateway-network")
            .unwrap_or_default()
            .contains("sandbox")
    );
    assert_eq!(app.text("gateway-tip").unwrap_or_default(), tip.to_string());
    app.screenshot("01-connected");

    // A new block reaches the window without any action from the user.
    gateway.mine(3);
    let new_tip = (tip + 3).to_string();
    app.wait_text("gateway-tip", Duration::from_secs(30), |t| t == new_tip);
    app.screenshot("02-tip-followed");
}

#[test]
#[ignore = "needs a display, tauri-driver and built binaries: run by `cargo xtask test`"]
fn app_says_when_the_gateway_is_unreachable_and_recovers_on_retry() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let app = AppSession::launch(&bin("notch-app"), &[("NOTCH_GATEWAY", &url)], "unreachable");
    app.wait_text("gateway-status", Duration::from_secs(60), |t| {
        t.contains("unreachable")
    });
    assert!(
        app.find("gateway-retry").is_some(),
        "a retry button is offered"
    );
    app.screenshot("01-unreachable");

    let gateway = Sandbox::start(temp_dir("gw-late"), &format!("127.0.0.1:{port}"));
    app.click("gateway-retry");
    app.wait_text("gateway-status", Duration::from_secs(30), |t| {
        t.contains("Connected")
    });
    assert_eq!(
        app.text("gateway-tip").unwrap_or_default(),
        gateway.tip_height().to_string()
    );
    app.screenshot("02-recovered");
}
