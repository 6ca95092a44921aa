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

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notch_tests::gateway::Sandbox;
use notch_tests::{KillOnDrop, bin, eventually, free_port};
use serde_json::Value;

/// Long enough for the agents' default outbox poll (2 s) and a few doubling
/// retries (2, 4, 8, 16 s) after a partner was offline.
const SLOW: Duration = Duration::from_secs(60);

struct Cli {
    name: &'static str,
    data_dir: PathBuf,
    gateway: String,
}

impl Cli {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("notch"));
        c.arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--gateway", &self.gateway, "--json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `args`, which must succeed, and returns its JSON.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{}: notch {args:?} failed ({}): {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: notch {args:?} printed no JSON ({e}): {}",
                self.name,
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs `args`, which must fail: returns its exit code and the message
    /// of the JSON error line on stderr.
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "{}: notch {args:?} should have failed, printed {}",
            self.name,
            String::from_utf8_lossy(&out.stdout)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let error: Value = serde_json::from_str(stderr.lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("notch {args:?}: stderr is no JSON error ({e}): {stderr}"));
        let message = error["error"]["message"].as_str().unwrap().to_owned();
        (out.status.code().unwrap(), message)
    }

    fn tallies(&self) -> Vec<Value> {
        self.json(&["tally", "list"]).as_array().unwrap().clone()
    }

    fn tally(&self, id: &str) -> Value {
        self.json(&["tally", "show", id])
    }

    /// Waits until `notch tally show ID` satisfies `check`.
    fn wait(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let what = format!("{}: {what}", self.name);
        eventually(&what, SLOW, || {
            let shown = self.tally(id);
            check(&shown).then_some(shown)
        })
    }

    fn wait_state(&self, id: &str, state: &str) -> Value {
        self.wait(id, &format!("tally {id} to be {state}"), |t| {
            t["state"] == state
        })
    }

    /// Waits for this tally's balance (milliCHIPs, from this side) and
    /// every chit on it good and linked (the partner's acknowledgement
    /// stored), or void.
    fn wait_settled(&self, id: &str, balance: i64) -> Value {
        self.wait(id, &format!("balance {balance}, all chits settled"), |t| {
            t["balance"] == balance
                && t["chits"].as_array().unwrap().iter().all(|c| {
                    let state = c["state"].as_str().unwrap();
                    (state.ends_with(".good") && c["consensus"] == "linked")
                        || state.ends_with(".void")
                })
        })
    }

    /// `notch agent --listen 127.0.0.1:PORT` in the background, once it
    /// says it listens.
    fn agent(&self, port: u16) -> Agent {
        let listen = format!("127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("agent.log"))
            .unwrap();
        let mut child = self
            .command(&["agent", "--listen", &listen])
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("\"listening\"") {
                    let _ = tx.send(line.clone());
                }
                seen.lock().unwrap().push(line);
            }
        });
        let child = KillOnDrop(child);
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{}: the agent did not say it listens", self.name));
        let said: Value = serde_json::from_str(&first).unwrap();
        assert_eq!(said["listening"], listen.as_str());
        assert_eq!(said["port"], port);
        Agent {
            child: Some(child),
            lines,
        }
    }
}

struct Agent {
    child: Option<KillOnDrop>,
    /// What it printed on stdout (one JSON event a line).
    lines: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    /// Ctrl-C, as a user stops it; waits until it has exited.
    fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        let process: &mut Child = &mut child.0;
        let status = Command::new("kill")
            .args(["-INT", &process.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exited = eventually(
            "the agent to stop on Ctrl-C",
            Duration::from_secs(15),
            || process.try_wait().unwrap(),
        );
        assert!(exited.success(), "the agent exited with {exited}");
    }

    /// It printed a line holding every one of `needles`.
    fn printed(&self, needles: &[&str]) -> bool {
        let lines = self.lines.lock().unwrap();
        lines.iter().any(|l| needles.iter().all(|n| l.contains(n)))
    }
}

fn verify(cli: &Cli, file: &Path) -> Output {
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
    let wallet = |name: &'static str| Cli {
        name,
        data_dir: dir.path().join(name),
        gateway: sandbox.url.clone(),
    };
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
    let a_open = alice.wait_state(&a_id, "open");
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
    alice.wait_settled(&a_id, 12_500);
    bob.wait_settled(&b_id, -12_500);
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
    bob.wait(&b_id, "the invoice to need approval", |t| {
        t["chits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["uuid"] == chit.as_str() && c["needs_action"] == true)
    });
    let approved = bob.json(&["chit", "approve", &chit]);
    assert_eq!(approved["uuid"], chit.as_str());
    assert_eq!(approved["amount"], -2_500, "{approved}");
    alice.wait_settled(&a_id, 15_000);
    bob.wait_settled(&b_id, -15_000);
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
    alice.wait_settled(&a_id, 16_000);
    bob.wait_settled(&b_id, -16_000);
    assert_eq!(bob.tally(&b_id)["queued"], false);

    // 6. Alice lowers the credit she grants Bob to 20 CHIPs: Bob's wallet
    //    learns it, and refuses, before signing, a payment past it.
    let limit = alice.json(&["tally", "limit", &a_id, "20"]);
    assert_eq!(limit["type"], "set", "{limit}");
    alice.wait(&a_id, "my limit to be 20 CHIPs", |t| {
        t["my_limit"] == 20_000
    });
    bob.wait(&b_id, "Alice's limit to be 20 CHIPs", |t| {
        t["partner_limit"] == 20_000
    });
    let (code, message) = bob.fails(&["tally", "pay", &b_id, "4.001"]);
    assert_eq!(code, 3, "{message}");
    assert!(
        message.contains("credit") || message.contains("limit"),
        "{message}"
    );
    bob.wait_settled(&b_id, -16_000);

    // 7. Alice asks to close: both sides are closing; she pays Bob's debt
    //    back, the balance is zero and the tally is closed on both sides.
    let close = alice.json(&["tally", "close", &a_id]);
    assert_eq!(close["type"], "set", "{close}");
    alice.wait_state(&a_id, "closing");
    bob.wait_state(&b_id, "closing");
    alice.json(&["tally", "pay", &a_id, "16"]);
    alice.wait_state(&a_id, "closed");
    bob.wait_state(&b_id, "closed");
    alice.wait_settled(&a_id, 0);
    bob.wait_settled(&b_id, 0);
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
