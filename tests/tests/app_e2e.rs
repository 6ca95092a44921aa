//! The real desktop app in a real window (Xvfb), driven through tauri-driver
//! and WebKitWebDriver, against a real sandbox gateway on loopback.
//! Run by `cargo xtask test`, which provides the display and the binaries.

use std::time::Duration;

use notch_tests::e2e::{LONG, cli, create_wallet, eventually_gone, faucet, temp_dir};
use notch_tests::gateway::Sandbox;
use notch_tests::webdriver::AppSession;
use notch_tests::{bin, free_port};

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

#[test]
#[ignore = "needs a display, tauri-driver, a Secret Service and built binaries: run by `cargo xtask test`"]
fn a_wallet_is_created_funded_spent_and_restored_in_the_app() {
    let gateway = Sandbox::start(temp_dir("gw-wallet"), "127.0.0.1:0");
    let profile_a = temp_dir("profile-a");
    let profile_a_str = profile_a.display().to_string();
    let app = AppSession::launch(
        &bin("notch-app"),
        &[
            ("NOTCH_GATEWAY", &gateway.url),
            ("NOTCH_DATA_DIR", &profile_a_str),
        ],
        "wallet_flow",
    );

    // Onboarding: create, read the phrase, confirm the words asked for.
    let words = create_wallet(&app, "01");

    // Receive: a fresh address with its QR code.
    app.click("nav-receive");
    let address = app.wait_text("receive-address", LONG, |t| t.starts_with("nsb1"));
    assert!(app.find("receive-qr").is_some());
    app.screenshot("05-receive");

    // Money in: 50 NOTE from the faucet, mined.
    faucet(&gateway.url, &address, "NOTE", 5_000_000_000);
    gateway.mine(1);
    app.click("nav-home");
    app.wait_text("balance-NOTE-confirmed", LONG, |t| t == "50.00");
    app.screenshot("06-home-funded");

    // A second wallet (the CLI) to pay.
    let other = temp_dir("cli-b");
    cli(&gateway.url, &other, &["init"]);
    let to = cli(&gateway.url, &other, &["address"]).trim().to_owned();
    assert!(to.starts_with("nsb1"), "{to}");

    // Send: validation as you type, review, confirm, progress.
    app.click("nav-send");
    app.wait_for("send-address-0", LONG);
    app.type_text("send-address-0", "nsb1broken");
    app.wait_for("send-address-error-0", LONG);
    app.type_text("send-amount-0", "1.123456789");
    app.wait_text("send-amount-error-0", LONG, |t| {
        t.contains("decimal places")
    });
    app.screenshot("07-send-errors");
    app.type_text("send-address-0", &to);
    app.type_text("send-amount-0", "1.25");
    eventually_gone(&app, "send-address-error-0");
    eventually_gone(&app, "send-amount-error-0");
    app.screenshot("08-send-form");
    app.click("send-review");
    let fee = app.wait_text("review-fee", LONG, |t| t.contains("NOTE"));
    app.screenshot("09-review");
    app.click("review-confirm");
    app.wait_text("send-state", LONG, |t| !t.is_empty());
    app.screenshot("10-sent");
    for _ in 0..12 {
        gateway.mine(1);
        std::thread::sleep(Duration::from_millis(700));
        if app.text("send-state").unwrap_or_default().contains("final") {
            break;
        }
    }
    app.wait_text("send-state", LONG, |t| t.contains("final"));
    app.screenshot("11-send-final");

    // History: the payment out, final.
    app.click("nav-history");
    app.wait_text("history-dir-0", LONG, |t| t == "Out");
    assert_eq!(app.text("history-state-0").unwrap_or_default(), "final");
    assert!(
        app.text("history-amount-0")
            .unwrap_or_default()
            .contains("NOTE")
    );
    app.wait_text("history-dir-1", LONG, |t| t == "In");
    app.click("history-export");
    let written = app.wait_text("history-export-result", LONG, |t| t.contains("Written"));
    assert!(written.contains(&profile_a_str), "{written}");
    app.screenshot("12-history");

    // Notifications: money in and the send, with an unread count.
    app.click("nav-notifications");
    app.wait_for("notification-0", LONG);
    // Money in, the payment confirmed, and the payment final.
    let texts: Vec<String> = (0..10)
        .map_while(|i| app.text(&format!("notification-{i}")))
        .collect();
    for expected in [
        "You received",
        "Your payment is confirmed",
        "Your payment is final",
    ] {
        assert!(
            texts.iter().any(|t| t.contains(expected)),
            "no {expected:?} in {texts:?}"
        );
    }
    app.screenshot("13-notifications");
    let unread = app.text("nav-unread").unwrap_or_default();
    assert!(unread.trim().parse::<u32>().unwrap_or(0) > 0, "{unread:?}");
    app.click("notifications-mark-all");
    eventually_gone(&app, "nav-unread");

    app.click("nav-home");
    let balance = app.wait_text("balance-NOTE-confirmed", LONG, |t| {
        t != "50.00" && !t.is_empty()
    });
    app.click("nav-settings");
    app.wait_for("settings-gateway", LONG);
    app.screenshot("14-settings");
    drop(app);
    eprintln!("sent 1.25 NOTE with fee {fee}; balance now {balance}");

    // Restore the same wallet from its phrase in a fresh profile.
    let profile_b = temp_dir("profile-b");
    let profile_b_str = profile_b.display().to_string();
    let app = AppSession::launch(
        &bin("notch-app"),
        &[
            ("NOTCH_GATEWAY", &gateway.url),
            ("NOTCH_DATA_DIR", &profile_b_str),
        ],
        "wallet_restore",
    );
    app.wait_for("onboard-restore", LONG);
    app.click("onboard-restore");
    app.type_text("restore-phrase", &words.join(" "));
    app.screenshot("01-restore");
    app.click("restore-submit");
    app.wait_text("balance-NOTE-confirmed", LONG, |t| t == balance);
    app.screenshot("02-restored");
}

/// Jumps a long History to its end while the list asks for no pages: the rows there are drawn at once from the list's index
/// (ADR 11: time, direction, state, amounts), never as placeholders, and the
/// full rows that replace them say the same.
const JUMP_WITH_PAGES_HELD_SCRIPT: &str = r#"
const done = arguments[arguments.length - 1];
// No page is asked for from now on (ui/src/screens/history.rs,
// `pages_held`); the index is already in.
window.__notchHoldPages = true;
const list = document.querySelector('[data-testid="history-list"]');
const scale = parseFloat(list.dataset.scale || '1');
list.scrollTop = list.scrollHeight - list.clientHeight;
const frames = [];
const q = (id) => document.querySelector(`[data-testid="${id}"]`);
function frame(n) {
  const idx = Math.floor(list.scrollTop * scale / 56);
  const full = q(`history-row-${idx}`), indexed = q(`history-indexrow-${idx}`);
  frames.push({ idx, full: !!full, indexed: indexed ? indexed.textContent : null,
                placeholder: !!q(`history-placeholder-${idx}`) });
  if (n > 0) { requestAnimationFrame(() => frame(n - 1)); return; }
  // Pages again, and a scroll of a pixel to ask for them.
  window.__notchHoldPages = false;
  list.scrollTop = list.scrollTop - 1;
  done({ frames });
}
requestAnimationFrame(() => requestAnimationFrame(() => frame(10)));
"#;

#[test]
#[ignore = "needs a display, tauri-driver, a Secret Service and built binaries: run by `cargo xtask test`"]
fn a_jump_down_a_long_history_draws_index_rows_until_the_pages_come() {
    const PAYMENTS: u64 = 260;
    let gateway = Sandbox::start_with_args(
        temp_dir("gw-long-history"),
        "127.0.0.1:0",
        &["--rate-limit-per-sec", "0"],
    );
    let profile = temp_dir("profile-long-history");
    let profile_str = profile.display().to_string();
    let app = AppSession::launch(
        &bin("notch-app"),
        &[
            ("NOTCH_GATEWAY", &gateway.url),
            ("NOTCH_DATA_DIR", &profile_str),
        ],
        "long_history",
    );
    create_wallet(&app, "01");
    app.click("nav-receive");
    let address = app.wait_text("receive-address", LONG, |t| t.starts_with("nsb1"));
    // Amounts that differ from row to row (1.00, 1.01, …), so that a row
    // drawn at the wrong place would show.
    for n in 0..PAYMENTS {
        faucet(&gateway.url, &address, "NOTE", 100_000_000 + n * 1_000_000);
    }
    gateway.mine(1);
    app.click("nav-home");
    app.wait_text("sync-state", LONG, |t| t.contains("Up to date"));
    app.click("nav-history");
    app.wait_text("history-count", LONG, |t| {
        t.starts_with(&PAYMENTS.to_string())
    });
    app.wait_for("history-row-0", LONG);
    // The index is asked for after the first page: give it its moment.
    std::thread::sleep(Duration::from_secs(2));
    app.set_script_timeout(Duration::from_secs(30));
    let frames = app.execute_async(JUMP_WITH_PAGES_HELD_SCRIPT, serde_json::json!([]));
    app.screenshot("02-index-rows");
    let frames = frames["frames"]
        .as_array()
        .unwrap_or_else(|| panic!("no frames: {frames}"));
    assert_eq!(frames.len(), 11, "{frames:?}");
    let last_row = frames[0]["idx"].as_u64().unwrap_or(0);
    assert!(last_row + 10 >= PAYMENTS, "not at the end: {frames:?}");
    for f in frames {
        assert_eq!(f["placeholder"], false, "a placeholder drawn: {frames:?}");
        assert!(
            f["indexed"].is_string() && f["full"] == false,
            "its page came while held back, or nothing was drawn: {frames:?}"
        );
    }
    let id = format!("history-row-{last_row}");
    let drawn = frames[10]["indexed"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(drawn.contains("In") && drawn.contains("NOTE"), "{drawn}");
    let full_amount = app.wait_text(&format!("history-amount-{last_row}"), LONG, |t| {
        !t.is_empty()
    });
    assert!(app.find(&id).is_some());
    assert!(
        drawn.contains(&full_amount),
        "index row {drawn:?}, full row's amount {full_amount:?}"
    );
    assert!(
        app.find(&format!("history-indexrow-{last_row}")).is_none(),
        "the full row replaced it"
    );
    app.screenshot("03-full-rows");
}
