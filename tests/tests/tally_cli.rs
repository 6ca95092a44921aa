//! The tally commands end to end, as a user meets them: two CLI wallets,
//! each its own data dir and `notch` processes, against a real sandbox
//! gateway on loopback, each with `notch agent --listen 127.0.0.1:PORT`
//! running in the background as a separate process (default agent
//! settings, as a user gets them: the outbox is read every 2 s, retries
//! start at 2 s).
//!
//! Alice issues a ticket with a QR code PNG, Bob scans the PNG and accepts
//! the offered tally; both list it `open` under their own id and the same
//! record uuid. Bob pays 12.5 CHIPs (Alice +12,500 milliCHIPs, Bob
//! -12,500); Alice invoices 2.5 and Bob approves. Alice's agent is stopped
//! (Ctrl-C), Bob pays 1 CHIP, which waits in Bob's outbox and reaches Alice
//! once her agent is started again. Alice lowers the credit she grants Bob
//! (`tally limit`), asks to close, pays the balance back and the tally is
//! `closed` on both sides. A malformed ticket text and a used ticket exit
//! non-zero with a clear message and leave no tally behind; `tally verify`
//! passes the stored record and fails a copy with one byte changed.
//!
//! The `notch` processes of one wallet share its seed through the OS
//! keystore, so this needs a running, unlocked Secret Service; ignored by a
//! plain `cargo test` (`cargo xtask test` runs it in its keystore step):
//!
//! ```sh
//! dbus-run-session -- sh -c 'printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; \
//!   NOTCH_TEST_SECRET_SERVICE=1 cargo test -p notch-tests --test tally_cli -- --include-ignored'
//! ```
//!
//! (after `cargo build -p notch-cli -p notch-gateway`).

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use notch_tests::app_tally::CliWallet;
use notch_tests::gateway::Sandbox;
use notch_tests::{eventually, free_port};
use serde_json::Value;

/// Long enough for the agents' default outbox poll (2 s) and a few doubling
/// retries (2, 4, 8, 16 s) after a partner was offline.
const SLOW: Duration = Duration::from_secs(60);

fn verify(cli: &CliWallet, file: &Path) -> Output {
    cli.run(&["tally", "verify", file.to_str().unwrap()])
}

#[test]
#[ignore = "needs a Secret Service: run under dbus-run-session with NOTCH_TEST_SECRET_SERVICE=1 (see the module docs)"]
fn two_cli_wallets_open_pay_invoice_offline_limit_close_and_refuse() {
    assert!(
        std::env::var("NOTCH_TEST_SECRET_SERVICE").is_ok_and(|v| v == "1"),
        "set NOTCH_TEST_SECRET_SERVICE=1 inside a dbus-run-session with an unlocked gnome-keyring: see tests/tests/tally_cli.rs"
    );
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path().join("gw"), "127.0.0.1:0");
    let wallet = |name: &'static str| CliWallet::new(name, dir.path().join(name), &sandbox.url);
    let (alice, bob, carol) = (wallet("alice"), wallet("bob"), wallet("carol"));
    for cli in [&alice, &bob, &carol] {
        let init = cli.json(&["init"]);
        assert!(init["phrase"].is_string());
    }
    // Both agents run before the tally is drafted, so that each certificate
    // says where its agent is reached.
    let a_port = free_port();
    let mut a_agent = alice.agent(a_port);
    let _b_agent = bob.agent(free_port());

    // 1. Alice's ticket, as a link and a QR code PNG; each side grants the
    //    other 100 CHIPs of credit.
    let png = dir.path().join("a.png");
    let issued = alice.json(&[
        "tally",
        "ticket",
        "--qr",
        png.to_str().unwrap(),
        "--name",
        "Alice",
        "--terms",
        r#"{"limit":100}"#,
        "--partner-terms",
        r#"{"limit":100}"#,
    ]);
    let url = issued["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://mychips.org/invite?"), "{url}");
    let a_id = issued["tally"].as_str().unwrap().to_owned();
    assert!(std::fs::metadata(&png).unwrap().len() > 0);

    // 2. Bob scans the PNG: Alice's agent answers with the offer, signed by
    //    her; Bob, the one who reads the terms, accepts it.
    let scanned = bob.json(&[
        "tally",
        "scan",
        "--image",
        png.to_str().unwrap(),
        "--name",
        "Bob",
    ]);
    assert_eq!(scanned["state"], "P.offer", "{scanned}");
    let b_id = scanned["tally"].as_str().unwrap().to_owned();
    let accepted = bob.json(&["tally", "accept", &b_id, "--yes"]);
    assert_eq!(accepted["state"], "open", "{accepted}");
    let a_open = alice.wait_state(&a_id, "open", SLOW);
    let b_open = bob.tally(&b_id);
    assert_eq!(a_open["uuid"], b_open["uuid"]);
    assert!(a_open["uuid"].is_string());
    for (cli, id, side) in [(&alice, &a_id, "stock"), (&bob, &b_id, "foil")] {
        let list = cli.tallies();
        assert_eq!(list.len(), 1, "{}: {list:?}", cli.name);
        assert_eq!(list[0]["id"], id.as_str());
        assert_eq!(list[0]["state"], "open");
        assert_eq!(list[0]["side"], side);
        assert_eq!(list[0]["balance"], 0);
        assert!(list[0]["partner"].as_str().unwrap().contains(':'));
    }
    assert_eq!(alice.tallies()[0]["uuid"], bob.tallies()[0]["uuid"]);
    // Alice's agent, which took Bob's acceptance, printed it as an event.
    eventually("Alice's agent to print the tally opening", SLOW, || {
        a_agent
            .printed(&["\"tally_changed\"", &a_id, "\"open\""])
            .then_some(())
    });

    // 3. Bob pays 12.5 CHIPs: he owes Alice 12,500 milliCHIPs.
    let paid = bob.json(&["tally", "pay", &b_id, "12.5", "--memo", "lunch"]);
    assert_eq!(paid["amount"], -12_500, "{paid}");
    assert_eq!(paid["units"], 12_500);
    assert_eq!(paid["mine"], true);
    alice.wait_settled(&a_id, 12_500, SLOW);
    bob.wait_settled(&b_id, -12_500, SLOW);
    let a_list = alice.tallies();
    let b_list = bob.tallies();
    assert_eq!(a_list[0]["balance"], 12_500);
    assert_eq!(b_list[0]["balance"], -12_500);
    let got = alice.tally(&a_id)["chits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["uuid"] == paid["uuid"])
        .cloned()
        .unwrap();
    assert_eq!(got["amount"], 12_500);
    assert_eq!(got["memo"], "lunch");
    assert_eq!(got["mine"], false);

    // 4. Alice invoices 2.5 CHIPs; Bob sees it waiting for him and approves.
    let invoice = alice.json(&["tally", "invoice", &a_id, "2.5", "--memo", "coffee"]);
    let chit = invoice["uuid"].as_str().unwrap().to_owned();
    bob.wait(&b_id, "the invoice to need approval", SLOW, |t| {
        t["chits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["uuid"] == chit.as_str() && c["needs_action"] == true)
    });
    let approved = bob.json(&["chit", "approve", &chit]);
    assert_eq!(approved["uuid"], chit.as_str());
    assert_eq!(approved["amount"], -2_500, "{approved}");
    alice.wait_settled(&a_id, 15_000, SLOW);
    bob.wait_settled(&b_id, -15_000, SLOW);
    // Approving twice is refused.
    let (code, message) = bob.fails(&["chit", "approve", &chit]);
    assert_ne!(code, 0);
    assert!(!message.is_empty());

    // 5. Alice's agent stops; Bob pays 1 CHIP meanwhile. It waits in his
    //    outbox, and reaches Alice when her agent runs again.
    a_agent.stop();
    let offline = bob.json(&["tally", "pay", &b_id, "1"]);
    let offline_uuid = offline["uuid"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_secs(3));
    let a_now = alice.tally(&a_id);
    assert_eq!(a_now["balance"], 15_000);
    assert!(
        a_now["chits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["uuid"] != offline_uuid.as_str()),
        "Alice has Bob's chit while her agent is stopped"
    );
    let b_now = bob.tally(&b_id);
    assert_eq!(b_now["queued"], true, "{}", b_now);
    let _a_agent = alice.agent(a_port);
    alice.wait_settled(&a_id, 16_000, SLOW);
    bob.wait_settled(&b_id, -16_000, SLOW);
    assert_eq!(bob.tally(&b_id)["queued"], false);

    // 6. Alice lowers the credit she grants Bob to 20 CHIPs: Bob's wallet
    //    learns it, and refuses, before signing, a payment past it.
    let limit = alice.json(&["tally", "limit", &a_id, "20"]);
    assert_eq!(limit["type"], "set", "{limit}");
    alice.wait(&a_id, "my limit to be 20 CHIPs", SLOW, |t| {
        t["my_limit"] == 20_000
    });
    bob.wait(&b_id, "Alice's limit to be 20 CHIPs", SLOW, |t| {
        t["partner_limit"] == 20_000
    });
    let (code, message) = bob.fails(&["tally", "pay", &b_id, "4.001"]);
    assert_eq!(code, 3, "{message}");
    assert!(
        message.contains("credit") || message.contains("limit"),
        "{message}"
    );
    bob.wait_settled(&b_id, -16_000, SLOW);

    // 7. Alice asks to close: both sides are closing; she pays Bob's debt
    //    back, the balance is zero and the tally is closed on both sides.
    let close = alice.json(&["tally", "close", &a_id]);
    assert_eq!(close["type"], "set", "{close}");
    alice.wait_state(&a_id, "closing", SLOW);
    bob.wait_state(&b_id, "closing", SLOW);
    alice.json(&["tally", "pay", &a_id, "16"]);
    alice.wait_state(&a_id, "closed", SLOW);
    bob.wait_state(&b_id, "closed", SLOW);
    alice.wait_settled(&a_id, 0, SLOW);
    bob.wait_settled(&b_id, 0, SLOW);
    for cli in [&alice, &bob] {
        let list = cli.tallies();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["state"], "closed");
        assert_eq!(list[0]["balance"], 0);
    }
    let (code, message) = alice.fails(&["tally", "pay", &a_id, "1"]);
    assert_eq!(code, 3, "{message}");

    // 8. Tickets that are no good: malformed text, and Alice's ticket again
    //    (used by Bob) from Carol. Each exits non-zero, says why, and leaves
    //    no tally.
    for bad in [
        "https://mychips.org/invite?token=abc",
        "not a ticket",
        &url.replace("chad=", "chad=x"),
    ] {
        let (code, message) = carol.fails(&["tally", "scan", bad]);
        assert_eq!(code, 3, "{bad}: {message}");
        assert!(message.contains("ticket"), "{bad}: {message}");
    }
    let (code, message) = carol.fails(&["tally", "scan", &url]);
    assert_ne!(code, 0);
    assert!(message.contains("refused"), "{message}");
    assert!(message.contains("used"), "{message}");
    let (code, message) = carol.fails(&["tally", "scan", "--image", png.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(message.contains("used"), "{message}");
    assert_eq!(carol.tallies().len(), 0);
    assert_eq!(alice.tallies().len(), 1);
    assert_eq!(bob.tallies().len(), 1);

    // 9. `tally verify`: the stored record verifies; one changed byte fails.
    let record = alice.tally(&a_id)["record"].to_string();
    let good = dir.path().join("tally.json");
    std::fs::write(&good, &record).unwrap();
    let out = verify(&alice, &good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verified: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["uuid"], a_open["uuid"]);
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, record.replacen("\"Bob\"", "\"Rob\"", 1)).unwrap();
    assert_ne!(std::fs::read(&tampered).unwrap(), record.as_bytes());
    let out = verify(&alice, &tampered);
    assert!(!out.status.success(), "a tampered record verified");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sign"), "{stderr}");
}
