//! Tallies in the real app window (Xvfb, tauri-driver, WebKitWebDriver)
//! against a real sandbox gateway, with a real partner: a CLI wallet whose
//! `notch agent --listen 127.0.0.1:PORT` runs as a separate process, over
//! loopback. Run by `cargo xtask test` (its e2e step provides the display,
//! the Secret Service and the binaries).
//!
//! 1. The app shows its ticket; a screenshot of the whole window is the
//!    picture the CLI scans (`notch tally scan --image`); the app, the
//!    ticket's issuer, has offered, the CLI accepts; both sides are `open`
//!    with both signatures.
//! 2. The CLI shows its ticket as a PNG; the app scans that picture, its
//!    offer review names the partner and its agent, the app accepts; both
//!    `open`.
//! 3. Payments and invoices both ways, each of the app's through its review;
//!    a payment made while the CLI's agent is stopped waits ("Waiting for
//!    partner") and is delivered once the agent runs again; both sides show
//!    the same balance, from opposite sides.
//! 4. A malformed ticket and an expired one are refused with a clear message
//!    and leave no tally.
//! 5. (second test) A ticket link the app is started with (NOTCH_OPEN_LINK)
//!    is shown first, scanned only when the person proceeds, and refused.
//!    Then a payment link opened while the app runs: a second `notch-app
//!    LINK` hands it to the running one over D-Bus and exits; Send holds
//!    its address.
//!
//! Screenshots of every tally screen go to `<NOTCH_E2E_SCREENS>/tallies/`.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notch_core::ticket::Ticket;
use notch_tests::app_tally::{
    CliWallet, balance_text, both_signed, chit_ids, crop_png, device_rect, invoke, parse_balance,
    tally_ids, wait_balance, wait_new_id, wait_value,
};
use notch_tests::e2e::{LONG, create_wallet, eventually_gone, temp_dir};
use notch_tests::gateway::Sandbox;
use notch_tests::webdriver::AppSession;
use notch_tests::{bin, eventually, free_port};
use serde_json::{Value, json};

fn lower_has(text: &str, needle: &str) -> bool {
    text.to_lowercase().contains(needle)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Opens the Tallies screen (the list).
fn open_tallies(app: &AppSession) {
    app.click("nav-tallies");
    app.wait_for("tallies-list", LONG);
    // Loaded: its rows, or the words for none (the list is empty while
    // the app's answer is on its way).
    eventually("the tallies to be listed", LONG, || {
        (app.find("tallies-empty").is_some() || !tally_ids(app).is_empty()).then_some(())
    });
}

/// Opens a tally's detail from the list.
fn open_tally(app: &AppSession, id: &str) {
    open_tallies(app);
    app.wait_for(&format!("tally-row-{id}"), LONG);
    app.click(&format!("tally-row-{id}"));
    app.wait_for("tally-detail", LONG);
}

/// The record of the app's tally as signed, from the `tally` command.
fn app_record(app: &AppSession, id: &str) -> Value {
    let detail = invoke(app, "tally", json!({ "args": { "id": id } }))
        .unwrap_or_else(|e| panic!("the app's tally command failed: {e}"));
    serde_json::from_str(detail["record_json"].as_str().unwrap_or("null")).unwrap()
}

/// A payment or invoice typed in the detail's form and confirmed in its
/// review; checks the review shows what was typed. Returns the new chit's
/// uuid.
#[allow(clippy::too_many_arguments)]
fn chit_through_review(
    app: &AppSession,
    button: &str,
    amount: &str,
    shown_amount: &str,
    memo: &str,
    partner: &str,
    screenshot: Option<&str>,
) -> String {
    let before = chit_ids(app);
    app.type_text("chit-amount", amount);
    app.type_text("chit-memo", memo);
    app.click(button);
    let review_amount = app.wait_text("chit-review-amount", LONG, |t| !t.is_empty());
    assert!(
        review_amount.contains(shown_amount),
        "{button} {amount}: the review says {review_amount:?}"
    );
    let review_memo = app.text("chit-review-memo").unwrap_or_default();
    assert!(review_memo.contains(memo), "{review_memo:?}");
    let review_partner = app.text("chit-review-partner").unwrap_or_default();
    assert!(review_partner.contains(partner), "{review_partner:?}");
    if let Some(name) = screenshot {
        app.screenshot(name);
    }
    app.click("chit-review-confirm");
    eventually_gone(app, "chit-review");
    wait_new_id(app, "chit-row-", &before, LONG)
}

/// Reads the app's balance of `id` in its detail and in the list, checks
/// both read `milli` (from the app's side), and returns the detail's text.
fn app_balance_is(app: &AppSession, id: &str, milli: i64) -> String {
    open_tally(app, id);
    let detail = wait_balance(app, "tally-detail-balance", milli, LONG);
    open_tallies(app);
    wait_balance(app, &format!("tally-balance-{id}"), milli, LONG);
    open_tally(app, id);
    detail
}

#[test]
#[ignore = "needs a display, tauri-driver, a Secret Service and built binaries: run by `cargo xtask test`"]
fn tallies_open_both_ways_pay_invoice_wait_for_an_offline_partner_and_refuse_bad_tickets() {
    let gateway = Sandbox::start(temp_dir("gw-tally"), "127.0.0.1:0");
    let profile = temp_dir("profile-tally");
    let profile_str = profile.display().to_string();
    let app_port = free_port();
    let app_listen = format!("127.0.0.1:{app_port}");
    let app = AppSession::launch(
        &bin("notch-app"),
        &[
            ("NOTCH_GATEWAY", &gateway.url),
            ("NOTCH_DATA_DIR", &profile_str),
            ("NOTCH_AGENT_LISTEN", &app_listen),
        ],
        "tallies",
    );
    create_wallet(&app, "00");

    // The partner: a CLI wallet with its agent running as its own process.
    let work = temp_dir("tally-work");
    std::fs::create_dir_all(&work).unwrap();
    let bob = CliWallet::new("bob", temp_dir("cli-tally-bob"), &gateway.url);
    assert!(bob.json(&["init"])["phrase"].is_string());
    let bob_port = free_port();
    let mut bob_agent = bob.agent(bob_port);

    // The app's agent listens where NOTCH_AGENT_LISTEN says; the name
    // partners see is set in Settings.
    let status = app.wait_text("agent-status", LONG, |t| lower_has(t, "listening"));
    eprintln!("agent status: {status:?}");
    app.click("nav-settings");
    app.wait_for("settings-tally-name", LONG);
    let listen = wait_value(&app, "settings-agent-listen", LONG, |v| !v.is_empty());
    assert!(listen.contains(&app_port.to_string()), "{listen:?}");
    app.type_text("settings-tally-name", "Ann");
    app.click("settings-agent-save");
    eventually("the name to be saved", LONG, || {
        assert!(
            app.find("settings-agent-error").is_none(),
            "{:?}",
            app.text("settings-agent-error")
        );
        let profile = invoke(&app, "tally_profile", json!({})).ok()?;
        (profile["name"] == "Ann").then_some(())
    });
    app.screenshot("01-settings-agent");

    // ------------------------------------------------------------------
    // 1. The app's ticket, scanned by the CLI from a screenshot of the window.
    open_tallies(&app);
    assert!(tally_ids(&app).is_empty(), "{:?}", tally_ids(&app));
    app.screenshot("10-tallies-empty");
    app.click("tallies-new-ticket");
    app.wait_for("ticket-create", LONG);
    app.type_text("ticket-my-limit", "100");
    app.type_text("ticket-partner-limit", "100");
    app.type_text("ticket-comment", "e2e: the app's ticket");
    app.screenshot("11-ticket-form");
    app.click("ticket-create");
    app.wait_for("ticket-qr", LONG);
    let link = wait_value(&app, "ticket-link", LONG, |v| {
        v.starts_with("https://mychips.org/invite?")
    });
    let expires = app.wait_text("ticket-expires", LONG, |t| !t.is_empty());
    assert!(app.find("ticket-copy").is_some());
    let ticket = Ticket::parse(&link).unwrap_or_else(|e| panic!("{link}: {e}"));
    assert_eq!(
        (ticket.chad().host(), ticket.chad().port()),
        ("127.0.0.1", app_port),
        "the ticket names the app's agent"
    );
    let window = app.screenshot("12-ticket");
    eprintln!("ticket shown ({expires}): {link}");

    let scanned = scan_window_picture(&app, &bob, &window);
    assert_eq!(scanned["state"], "P.offer", "{scanned}");
    let bob_a = scanned["tally"].as_str().unwrap().to_owned();
    let accepted = bob.json(&["tally", "accept", &bob_a, "--yes"]);
    assert_eq!(accepted["state"], "open", "{accepted}");

    open_tallies(&app);
    let app_a = eventually("the app's tally in the list", LONG, || {
        tally_ids(&app).into_iter().next()
    });
    app.wait_text(&format!("tally-phase-{app_a}"), LONG, |t| {
        lower_has(t, "open")
    });
    let partner = app.wait_text(&format!("tally-partner-{app_a}"), LONG, |t| {
        t.contains("Bob")
    });
    assert_eq!(
        parse_balance(
            &app.text(&format!("tally-balance-{app_a}"))
                .unwrap_or_default()
        ),
        Some(0)
    );
    app.screenshot("13-tallies-one-open");
    open_tally(&app, &app_a);
    app.wait_text("tally-detail-phase", LONG, |t| lower_has(t, "open"));
    assert!(
        app.text("tally-detail-my-limit")
            .unwrap_or_default()
            .contains("100"),
        "{:?}",
        app.text("tally-detail-my-limit")
    );
    assert!(
        app.text("tally-detail-partner-limit")
            .unwrap_or_default()
            .contains("100"),
        "{:?}",
        app.text("tally-detail-partner-limit")
    );
    wait_balance(&app, "tally-detail-balance", 0, LONG);
    app.screenshot("14-tally-detail");
    let shown = bob.wait_state(&bob_a, "open", LONG);
    assert!(both_signed(&shown), "{}", shown["record"]);
    assert_eq!(shown["side"], "foil");
    assert_eq!(shown["partner_name"], "Ann", "the name set in Settings");
    let record = app_record(&app, &app_a);
    assert_eq!(
        record["uuid"], shown["uuid"],
        "the same tally on both sides"
    );
    assert_eq!(record["sign"], shown["record"]["sign"]);
    eprintln!("tally 1 open: app {app_a} ({partner}), CLI {bob_a}");

    // ------------------------------------------------------------------
    // 2. The CLI's ticket as a PNG, scanned by the app from the picture.
    let png = work.join("bob-ticket.png");
    let issued = bob.json(&[
        "tally",
        "ticket",
        "--qr",
        png.to_str().unwrap(),
        "--name",
        "Bob",
        "--terms",
        r#"{"limit":50}"#,
        "--partner-terms",
        r#"{"limit":50}"#,
        "--comment",
        "e2e: the CLI's ticket",
    ]);
    let bob_b = issued["tally"].as_str().unwrap().to_owned();
    let chad = Ticket::parse(issued["url"].as_str().unwrap())
        .unwrap()
        .chad()
        .clone();
    let bob_agent_id = chad.agent().to_base64url();
    let bob_address = format!("{}:{}", chad.host(), chad.port());
    assert_eq!(chad.port(), bob_port);

    open_tallies(&app);
    let before = tally_ids(&app);
    app.click("tallies-scan");
    app.wait_for("scan-ticket-image", LONG);
    assert!(app.find("scan-ticket-text").is_some());
    assert!(app.find("scan-ticket-camera").is_some());
    app.screenshot("20-scan");
    app.type_text("scan-ticket-image", &png.display().to_string());
    app.wait_text("offer-partner-name", LONG, |t| t.contains("Bob"));
    let agent = app.text("offer-partner-agent").unwrap_or_default();
    assert!(
        agent.contains(&bob_agent_id) || agent.contains(&bob_address),
        "the offer names the partner's agent ({bob_agent_id} at {bob_address}): {agent:?}"
    );
    for terms in ["offer-my-terms", "offer-partner-terms"] {
        let text = app.text(terms).unwrap_or_default();
        assert!(text.contains("50"), "{terms}: {text:?}");
    }
    assert!(app.find("offer-refuse").is_some());
    app.screenshot("21-offer-review");
    app.click("offer-accept");
    let shown = bob.wait_state(&bob_b, "open", LONG);
    assert!(both_signed(&shown), "{}", shown["record"]);
    assert_eq!(shown["side"], "stock");
    open_tallies(&app);
    let app_b = wait_new_id(&app, "tally-row-", &before, LONG);
    app.wait_text(&format!("tally-phase-{app_b}"), LONG, |t| {
        lower_has(t, "open")
    });
    app.screenshot("22-tallies-two-open");
    assert_eq!(app_record(&app, &app_b)["uuid"], shown["uuid"]);
    assert_eq!(bob.tallies().len(), 2);
    eprintln!("tally 2 open: app {app_b}, CLI {bob_b}");

    // ------------------------------------------------------------------
    // 3. Chits on the first tally (each grants the other 100 CHIPs).
    open_tally(&app, &app_a);

    // A review cancelled signs nothing.
    let before = chit_ids(&app);
    app.type_text("chit-amount", "99");
    app.type_text("chit-memo", "not this one");
    app.click("chit-pay");
    app.wait_text("chit-review-amount", LONG, |t| t.contains("99"));
    app.click("chit-review-cancel");
    eventually_gone(&app, "chit-review");
    assert_eq!(chit_ids(&app), before);

    // The app pays Bob 12.5.
    let paid = chit_through_review(
        &app,
        "chit-pay",
        "12.5",
        "12.500",
        "lunch",
        "Bob",
        Some("30-chit-review-pay"),
    );
    bob.wait_settled(&bob_a, 12_500, LONG);
    wait_balance(&app, "tally-detail-balance", -12_500, LONG);
    let amount = app.text(&format!("chit-amount-{paid}")).unwrap_or_default();
    assert!(amount.contains("12.500"), "{amount:?}");
    let got = bob.tally(&bob_a)["chits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["uuid"] == paid.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("Bob has no chit {paid}"));
    assert_eq!(
        (&got["amount"], &got["memo"], &got["mine"]),
        (&json!(12_500), &json!("lunch"), &json!(false))
    );
    app.screenshot("31-tally-detail-paid");

    // Bob pays the app 2.
    let back = bob.json(&["tally", "pay", &bob_a, "2", "--memo", "change"]);
    let back = back["uuid"].as_str().unwrap().to_owned();
    app.wait_for(&format!("chit-row-{back}"), LONG);
    wait_balance(&app, "tally-detail-balance", -10_500, LONG);
    bob.wait_settled(&bob_a, 10_500, LONG);

    // The app invoices Bob 3; Bob approves.
    let invoice = chit_through_review(
        &app,
        "chit-invoice",
        "3",
        "3.000",
        "bread",
        "Bob",
        Some("32-chit-review-invoice"),
    );
    bob.wait(&bob_a, "the app's invoice to need approval", LONG, |t| {
        t["chits"].as_array().unwrap().iter().any(|c| {
            c["uuid"] == invoice.as_str() && c["needs_action"] == true && c["amount"] == -3_000
        })
    });
    let approved = bob.json(&["chit", "approve", &invoice]);
    assert_eq!(approved["amount"], -3_000, "{approved}");
    bob.wait_settled(&bob_a, 7_500, LONG);
    wait_balance(&app, "tally-detail-balance", -7_500, LONG);

    // Bob invoices the app 1.5; the app approves through its review.
    let asked = bob.json(&["tally", "invoice", &bob_a, "1.5", "--memo", "tea"]);
    let asked = asked["uuid"].as_str().unwrap().to_owned();
    app.wait_for(&format!("chit-approve-{asked}"), LONG);
    assert!(app.find(&format!("chit-reject-{asked}")).is_some());
    app.screenshot("33-invoice-to-approve");
    app.click(&format!("chit-approve-{asked}"));
    let review_amount = app.wait_text("chit-review-amount", LONG, |t| !t.is_empty());
    assert!(review_amount.contains("1.500"), "{review_amount:?}");
    assert!(
        app.text("chit-review-memo")
            .unwrap_or_default()
            .contains("tea")
    );
    assert!(
        app.text("chit-review-partner")
            .unwrap_or_default()
            .contains("Bob")
    );
    app.screenshot("34-chit-review-approve");
    app.click("chit-review-confirm");
    eventually_gone(&app, "chit-review");
    eventually_gone(&app, &format!("chit-approve-{asked}"));
    bob.wait_settled(&bob_a, 9_000, LONG);
    wait_balance(&app, "tally-detail-balance", -9_000, LONG);

    // Bob's agent stops; the app pays 1 meanwhile: it waits, and is
    // delivered once the agent runs again.
    bob_agent.stop();
    let offline = chit_through_review(
        &app,
        "chit-pay",
        "1",
        "1.000",
        "while you were away",
        "Bob",
        None,
    );
    let status_id = format!("chit-status-{offline}");
    app.wait_text(&status_id, LONG, |t| t.contains("Waiting for partner"));
    app.screenshot("35-chit-waiting-for-partner");
    // It stays waiting while the partner is away (the app retries meanwhile).
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < until {
        let status = app.text(&status_id).unwrap_or_default();
        assert!(status.contains("Waiting for partner"), "{status:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let away = bob.tally(&bob_a);
    assert_eq!(away["balance"], 9_000);
    assert!(
        away["chits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["uuid"] != offline.as_str()),
        "Bob has the app's chit while his agent is stopped"
    );
    let _bob_agent = bob.agent(bob_port);
    let delivered = app.wait_text(&status_id, LONG, |t| {
        !t.is_empty() && !t.contains("Waiting for partner")
    });
    eprintln!("the offline payment, delivered: {delivered:?}");
    bob.wait_settled(&bob_a, 10_000, LONG);
    app.screenshot("36-chit-delivered");

    // The same balance on both sides, from opposite sides.
    let bob_balance = bob.tally(&bob_a)["balance"].as_i64().unwrap();
    let text = app_balance_is(&app, &app_a, -bob_balance);
    assert_eq!(parse_balance(&text), Some(-10_000), "{text:?}");
    assert_eq!(balance_text(-10_000), "I owe them 10.000");
    let bob_b_balance = bob.tally(&bob_b)["balance"].as_i64().unwrap();
    app_balance_is(&app, &app_b, -bob_b_balance);
    eprintln!("balances agree: app {text:?}, Bob {bob_balance}");

    // The inbox told the person of each step that needed or concerned them
    // (each one also goes to the desktop through the notification plugin).
    app.click("nav-notifications");
    app.wait_for("notifications-list", LONG);
    let kinds = |app: &AppSession| -> Vec<String> {
        let found = app.execute(
            "return [...document.querySelectorAll('[data-testid^=\"notification-\"][data-kind]')].map(e => e.dataset.kind);",
            json!([]),
        );
        found
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let wanted = [
        "tally_offered",
        "tally_opened",
        "chit_received",
        "invoice_to_approve",
    ];
    let shown = eventually("the tally notifications in the inbox", LONG, || {
        let shown = kinds(&app);
        wanted
            .iter()
            .all(|w| shown.iter().any(|k| k == w))
            .then_some(shown)
    });
    eprintln!("notifications: {shown:?}");
    app.screenshot("37-tally-notifications");

    // ------------------------------------------------------------------
    // 4. Tickets that are no good: a clear message and no new tally.
    open_tallies(&app);
    let before = tally_ids(&app);
    app.click("tallies-scan");
    app.wait_for("scan-ticket-text", LONG);
    for bad in ["https://mychips.org/invite?token=abc", "not a ticket"] {
        app.type_text("scan-ticket-text", bad);
        app.click("scan-ticket-submit");
        let said = app.wait_text("scan-ticket-error", LONG, |t| lower_has(t, "ticket"));
        eprintln!("{bad:?}: {said:?}");
        // The next attempt must show its own message: clear this one.
        app.type_text("scan-ticket-text", "");
    }
    app.type_text("scan-ticket-text", "https://mychips.org/invite?token=abc");
    app.click("scan-ticket-submit");
    app.wait_text("scan-ticket-error", LONG, |t| !t.is_empty());
    app.screenshot("40-scan-bad-ticket");

    // Bob's ticket with the shortest lifetime the CLI issues (1 s), used
    // after it expired.
    let short = bob.json(&["tally", "ticket", "--expires-in", "1", "--name", "Bob"]);
    let expired_link = short["url"].as_str().unwrap().to_owned();
    let expires_at = short["expires"].as_u64().unwrap();
    while unix_now() <= expires_at + 1 {
        std::thread::sleep(Duration::from_millis(250));
    }
    app.type_text("scan-ticket-text", &expired_link);
    app.click("scan-ticket-submit");
    let said = app.wait_text("scan-ticket-error", LONG, |t| lower_has(t, "expired"));
    eprintln!("expired ticket: {said:?}");
    app.screenshot("41-scan-expired-ticket");
    assert!(
        app.find("offer-accept").is_none(),
        "no offer for a bad ticket"
    );
    open_tallies(&app);
    app.wait_for(&format!("tally-row-{app_a}"), LONG);
    let mut after = tally_ids(&app);
    let mut want = before.clone();
    after.sort();
    want.sort();
    assert_eq!(after, want, "a refused ticket left a tally");
    let listed = invoke(&app, "tallies", json!({})).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    app.screenshot("42-tallies-after-bad-tickets");
}

/// `notch tally scan --image` of the whole-window screenshot; if the
/// CLI's decoder cannot read the whole window, that is said loudly and
/// the picture is cropped to the QR code's element and scanned again.
fn scan_window_picture(app: &AppSession, bob: &CliWallet, window: &Path) -> Value {
    let path = window.to_str().unwrap();
    let out = bob.run(&["tally", "scan", "--image", path, "--name", "Bob"]);
    if out.status.success() {
        eprintln!("the CLI read the ticket from the whole-window screenshot");
        return serde_json::from_slice(&out.stdout).unwrap();
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "NOTE: the CLI could not read the ticket from the whole-window screenshot {path} \
         ({}): {stderr}\nNOTE: scanning a crop of it to [data-testid=ticket-qr] instead",
        out.status
    );
    let rect = device_rect(app, "ticket-qr").expect("the ticket's QR code is on the page");
    let png = std::fs::read(window).unwrap();
    let crop = window.with_file_name("12-ticket-qr-crop.png");
    std::fs::write(&crop, crop_png(&png, rect, 24)).unwrap();
    bob.json(&[
        "tally",
        "scan",
        "--image",
        crop.to_str().unwrap(),
        "--name",
        "Bob",
    ])
}

#[test]
#[ignore = "needs a display, tauri-driver, a Secret Service and built binaries: run by `cargo xtask test`"]
fn a_ticket_link_the_app_is_opened_with_is_scanned_only_when_asked_and_can_be_refused() {
    let gateway = Sandbox::start(temp_dir("gw-tally-link"), "127.0.0.1:0");
    let bob = CliWallet::new("bob", temp_dir("cli-tally-link"), &gateway.url);
    bob.json(&["init"]);
    let _bob_agent = bob.agent(free_port());
    let issued = bob.json(&["tally", "ticket", "--name", "Bob"]);
    let link = issued["url"].as_str().unwrap().to_owned();
    let bob_id = issued["tally"].as_str().unwrap().to_owned();

    // A wallet first (onboarding), then the app again, opened with the link.
    let profile = temp_dir("profile-tally-link");
    let profile_str = profile.display().to_string();
    let env = |open: Option<&str>| {
        let mut env = vec![
            ("NOTCH_GATEWAY", gateway.url.clone()),
            ("NOTCH_DATA_DIR", profile_str.clone()),
            ("NOTCH_AGENT_LISTEN", "127.0.0.1:0".to_owned()),
        ];
        if let Some(link) = open {
            env.push(("NOTCH_OPEN_LINK", link.to_owned()));
        }
        env
    };
    let first = env(None);
    let first: Vec<(&str, &str)> = first.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = AppSession::launch(&bin("notch-app"), &first, "tallies_link");
    create_wallet(&app, "00");
    drop(app);

    let second = env(Some(&link));
    let second: Vec<(&str, &str)> = second.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = AppSession::launch(&bin("notch-app"), &second, "tallies_link");
    app.wait_for("deep-link-banner", LONG);
    app.screenshot("10-deep-link-banner");
    // Nothing contacted Bob yet: his ticket is unused.
    assert_eq!(
        bob.tally(&bob_id)["state"],
        "draft",
        "{}",
        bob.tally(&bob_id)
    );
    app.click("deep-link-proceed");
    // Proceeding is the person's yes: the link is scanned at once, and the
    // offer it brings is shown (the form is replaced, so nothing else to click).
    app.wait_text("offer-partner-name", LONG, |t| t.contains("Bob"));
    app.screenshot("11-deep-link-offer");
    refuse_offer_shown(&app);
    let refused = bob.wait(&bob_id, "the refusal to reach Bob", LONG, |t| {
        t["state"].as_str().is_some_and(|s| s.ends_with("void"))
    });
    eprintln!("Bob's tally after the app refused: {}", refused["state"]);

    // A link the system opens while the app runs: it starts a second
    // `notch-app LINK` (the .desktop file's `Exec=notch-app %u`), which hands
    // the link to the running app over D-Bus (single-instance) and exits.
    let address = bob.json(&["address"])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let payment = format!("notch:{address}?amount=2.5&memo=lunch");
    let mut second = Command::new(bin("notch-app"));
    second.arg(&payment);
    for (k, v) in &env(None) {
        second.env(k, v);
    }
    let mut second = second.spawn().unwrap();
    let exited = notch_tests::within_time(LONG, || second.try_wait().unwrap());
    let Some(status) = exited else {
        let _ = second.kill();
        panic!("the second notch-app did not hand its link over and exit");
    };
    assert!(status.success(), "the second notch-app: {status}");
    app.wait_for("deep-link-banner", LONG);
    app.wait_text("deep-link-text", LONG, |t| t.trim() == payment);
    // Send holds the address only: the amount and memo are the person's to
    // type and check.
    wait_value(&app, "send-address-0", LONG, |v| v == address);
    app.screenshot("13-deep-link-payment-handed-over");
}

/// Refuses the offer shown; the app's tally is void (or gone from the list).
fn refuse_offer_shown(app: &AppSession) {
    app.click("offer-refuse");
    open_tallies(app);
    eventually("the refused tally to be void or gone", LONG, || {
        tally_ids(app)
            .iter()
            .all(|id| {
                app.text(&format!("tally-phase-{id}"))
                    .is_some_and(|p| lower_has(&p, "void"))
            })
            .then_some(())
    });
    app.screenshot("12-deep-link-refused");
}
