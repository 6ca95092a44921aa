//! First contact between a MyCHIPs user and a real Notch wallet agent, from a
//! Notch-issued ticket, with MyCHIPs's side played by MyCHIPs's own building
//! blocks in Node (`tests/interop/mychips-agent/scanner.mjs`: the npm
//! `noise-protocol` + `frame-stream` peer connection of
//! `tests/interop/mychips-noise/`, json-stable-stringify and WebCrypto P-521
//! of `tests/interop/mychips-records/`). Nothing of Notch's runs on that side.
//!
//! Roles as in MyCHIPs (`lib/tally.js`, `doc/learn-tally.md`) and Notch
//! (docs/PROTOCOL.md §14): the ticket's issuer (the Notch wallet) drafts the
//! tally; the scanner (the MyCHIPs user) presents the token with its
//! certificate in a Noise IK first contact; the issuer signs and offers the
//! tally on that connection; the scanner checks the issuer's signature,
//! signs, and sends `open` over a Noise N + KK reconnection; the issuer
//! verifies both signatures and the tally is open on both sides, the same
//! bytes. Then a chit each way (PROTOCOL §13): the Notch wallet pays first
//! (queued: the MyCHIPs user cannot be called), the MyCHIPs user pays as the
//! foil, its chit linked at index 1 with the chain hash MyCHIPs's database
//! computes, and gets Notch's chit on that connection, checked with
//! MyCHIPs's signature rule. Then the hostile cases: a tampered acceptance,
//! the used token replayed (by another user and by the same one), an expired
//! ticket, an unknown token.
//!
//! The opening and the chits run twice: with the Notch agent listening (a
//! desktop), and in relay mode (a phone, ADR 6): no listener, registered with
//! the relay of a real `notch-gateway --sandbox` on loopback, so the MyCHIPs
//! user reaches it only at the relay's host and port that the ticket and the
//! Notch certificate name, through the splice.
//!
//! Needs Node 20 and npm; `npm install` runs in tests/interop/mychips-agent
//! (query-string, which MyCHIPs's app reads invitation links with),
//! tests/interop/mychips-noise and tests/interop/mychips-records the first
//! time (the npm registry must be reachable then).

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use notch_core::tally::lifecycle::TallyState;
use notch_core::tally::{Side, TallyRecord, verify_tally_json};
use notch_core::ticket::Ticket;
use notch_core::{AgentConfig, AgentHandle, NotificationKind, TicketOptions, Wallet, WalletEvent};
use notch_tests::gateway::Sandbox;
use notch_tests::tally::{
    NO_GATEWAY, agent, agent_config, balance, chit, eventually, state_of, wait_chit,
};
use notch_tests::wallet::new_wallet;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

static INSTALL: Mutex<()> = Mutex::new(());

/// Installs the pinned npm packages of the MyCHIPs-side packages the scanner
/// uses, once, if they are not there yet (as `mychips_noise.rs` and
/// `mychips_records.rs` do).
fn ensure_node_modules() {
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for (package, modules) in [
        ("mychips-noise", &["noise-protocol", "frame-stream"][..]),
        ("mychips-records", &["json-stable-stringify"][..]),
        ("mychips-agent", &["query-string"][..]),
    ] {
        let dir = interop_dir().join(package);
        if modules
            .iter()
            .all(|m| dir.join("node_modules").join(m).is_dir())
        {
            continue;
        }
        let status = std::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run npm ({e}): the MyCHIPs interop test needs Node 20 and npm")
            });
        assert!(status.success(), "npm install failed in {}", dir.display());
    }
}

/// Runs `node <script> <args>` in tests/interop/`dir` (stdin: `input`) and
/// returns its exit code and stdout.
async fn node(dir: &str, script: &str, args: &[&str], input: &str) -> (Option<i32>, String) {
    ensure_node_modules();
    let mut child = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(interop_dir().join(dir))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run node ({e}): the MyCHIPs interop test needs Node 20")
        });
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("node finishes within 30 s")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

/// One MyCHIPs user: the scanner's state file (its keys, the offer it got).
struct MyChipsUser {
    state: PathBuf,
}

impl MyChipsUser {
    fn new(dir: &Path, name: &str) -> Self {
        Self {
            state: dir.join(format!("{name}.json")),
        }
    }

    /// Runs one step of scanner.mjs; it must complete (exit 0). Returns its
    /// events.
    async fn run(&self, args: &[&str]) -> Events {
        let mut all = args.to_vec();
        all.extend(["--state", self.state.to_str().unwrap()]);
        let (code, stdout) = node("mychips-agent", "scanner.mjs", &all, "").await;
        let events: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("scanner.mjs prints JSON lines"))
            .collect();
        assert_eq!(code, Some(0), "scanner.mjs {args:?} failed: {events:#?}");
        Events(events)
    }

    /// Presents the ticket link (first contact, Noise IK).
    async fn present(&self, link: &str) -> Events {
        self.run(&["present", "--ticket", link, "--name", "Morgan"])
            .await
    }

    /// Accepts the offer it holds (`open` over Noise N + KK), or sends a
    /// tampered acceptance.
    async fn accept(&self, tamper: Option<&str>) -> Events {
        match tamper {
            Some(how) => self.run(&["accept", "--tamper", how]).await,
            None => self.run(&["accept"]).await,
        }
    }
}

#[derive(Debug)]
struct Events(Vec<Value>);

impl Events {
    fn get(&self, name: &str) -> &Value {
        self.find(name)
            .unwrap_or_else(|| panic!("no {name:?} event in {:#?}", self.0))
    }

    fn find(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|e| e["event"] == name)
    }
}

/// Everything about the wallet's tallies that a refused or replayed message
/// must leave alone.
async fn snapshot(wallet: &Wallet) -> Value {
    let tallies = wallet.tallies().await.unwrap();
    let mut records = Vec::new();
    for t in &tallies {
        records.push(wallet.tally(&t.id).await.unwrap().record);
    }
    let notes = wallet.notifications(false).await.unwrap();
    json!({
        "tallies": serde_json::to_value(&tallies).unwrap(),
        "records": records,
        "notifications": notes.len(),
    })
}

async fn wait_state(wallet: &Wallet, id: &str, state: &str) {
    let what = format!("tally {id} to be {state}");
    eventually(&what, Duration::from_secs(20), || async {
        (state_of(wallet, id).await == state).then_some(())
    })
    .await;
}

/// The record the wallet stores, in canonical form (json-stable-stringify).
async fn stored_canonical(wallet: &Wallet, id: &str) -> String {
    TallyRecord::from_value(wallet.tally(id).await.unwrap().record)
        .unwrap()
        .to_json()
}

/// States the wallet announced for tally `id`, in order.
fn announced(events: &mut tokio::sync::broadcast::Receiver<WalletEvent>, id: &str) -> Vec<String> {
    let mut states = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let WalletEvent::TallyChanged { tally, state } = event
            && tally == id
        {
            states.push(state.as_str().to_owned());
        }
    }
    states
}

async fn alice(dir: &Path) -> Wallet {
    let (wallet, _) = new_wallet(dir, NO_GATEWAY).await;
    wallet
        .set_tally_profile(Some("alice".into()), Some("Alice Example".into()))
        .await
        .unwrap();
    wallet
}

/// How the MyCHIPs user reaches the Notch agent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reach {
    /// The agent listens on loopback.
    Listen,
    /// The agent listens nowhere: it is registered with a sandbox gateway's relay.
    Relay,
}

/// Starts Alice's agent as `reach` says; the gateway, if one runs, lives as long as the
/// returned value.
async fn start_agent(alice: &Wallet, reach: Reach, dir: &Path) -> (AgentHandle, Option<Sandbox>) {
    match reach {
        Reach::Listen => (agent(alice, "127.0.0.1:0").await, None),
        Reach::Relay => {
            // Any free control port and agent ports: other tests run relays too.
            let gateway = Sandbox::start_with_args(
                dir.join("gateway"),
                "127.0.0.1:0",
                &["--relay-listen", "127.0.0.1:0", "--relay-ports", "0"],
            );
            let relay = gateway.relay.clone().expect("the sandbox runs the relay");
            let config = AgentConfig {
                relay: Some(relay.clone()),
                ..agent_config("127.0.0.1:0")
            };
            let handle = alice.start_agent(config).await.unwrap();
            assert!(handle.relayed());
            // Partners are told the relay's host and Alice's port there, not the control
            // port she registered on.
            assert_eq!(handle.advertised().0, "127.0.0.1");
            assert_ne!(
                format!("127.0.0.1:{}", handle.advertised().1),
                relay,
                "the agent's port is not the relay's control port"
            );
            (handle, Some(gateway))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mychips_user_opens_a_tally_from_a_notch_ticket() {
    opens_a_tally_and_pays(Reach::Listen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mychips_user_reaches_a_notch_phone_through_the_relay() {
    opens_a_tally_and_pays(Reach::Relay).await;
}

async fn opens_a_tally_and_pays(reach: Reach) {
    let dir = tempfile::tempdir().unwrap();
    let alice = alice(dir.path()).await;
    let mut events = alice.subscribe();
    let (a_agent, gateway) = start_agent(&alice, reach, dir.path()).await;
    let (ticket, draft) = alice
        .tally_ticket_with(TicketOptions {
            expires_in: Duration::from_secs(600),
            // Morgan lends Alice up to 10 CHIPs, so she can pay first.
            partner_terms: json!({"limit": 10}),
            ..TicketOptions::default()
        })
        .await
        .unwrap();
    let link = ticket.to_string();
    assert!(
        link.starts_with("https://mychips.org/invite?token="),
        "{link}"
    );
    assert_eq!(announced(&mut events, &draft.id), ["draft"]);

    // The MyCHIPs user gets only the link.
    let morgan = MyChipsUser::new(dir.path(), "morgan");
    let got = morgan.present(&link).await;
    println!("MyCHIPs side, present: {:#?}", got.0);
    let parsed = got.get("ticket");
    assert_eq!(parsed["token"], ticket.token());
    assert_eq!(parsed["cid"], "alice");
    assert_eq!(parsed["agent"], ticket.chad().agent().to_base64url());
    assert_eq!(parsed["host"], "127.0.0.1");
    assert_eq!(parsed["port"], a_agent.advertised().1);
    if reach == Reach::Listen {
        assert_eq!(a_agent.advertised().1, a_agent.local_addr().port());
    }
    assert_eq!(got.get("sent")["kind"], "ik", "a first contact is Noise IK");
    let offer = got.get("offer");
    assert_eq!(
        offer["valid"], true,
        "MyCHIPs's checks of the offer: {offer:#}"
    );
    assert_eq!(offer["side"], "foil", "the issuer holds the stock");
    assert_eq!(offer["signatures"], json!({"stock": true}), "{offer:#}");
    assert_eq!(offer["from"]["agent"], ticket.chad().agent().to_base64url());
    // The offer says where Alice is: the ticket's address (the relay's, in relay mode).
    assert_eq!(offer["from"]["host"], "127.0.0.1");
    assert_eq!(offer["from"]["port"], a_agent.advertised().1);
    let morgan_agent = got.get("agent")["agent"].as_str().unwrap().to_owned();
    assert_eq!(offer["to"]["agent"], morgan_agent.as_str());

    // Notch: the draft took Morgan's certificate, was signed and offered.
    wait_state(&alice, &draft.id, "H.offer").await;
    let info = alice.tally(&draft.id).await.unwrap().info;
    assert_eq!(info.partner_name.as_deref(), Some("Morgan Chips"));
    assert_eq!(info.side.as_deref(), Some("stock"));
    assert!(
        info.partner
            .as_deref()
            .is_some_and(|p| p.ends_with(&format!(":{morgan_agent}"))),
        "{info:?}"
    );
    assert!(
        !info.queued,
        "the offer went out on the ticket's connection"
    );
    assert_eq!(
        announced(&mut events, &draft.id),
        ["draft.offer", "H.offer"]
    );
    // What Morgan received is what Alice signed, byte for byte, and both
    // compute the same signed bytes.
    let offered = TallyRecord::from_value(alice.tally(&draft.id).await.unwrap().record).unwrap();
    assert_eq!(offer["canonical"], offered.to_json());
    assert_eq!(offer["signed"], offered.signed_message());
    assert!(offered.signature(Side::Foil).is_none());
    assert_eq!(
        offered.party(Side::Foil).cert()["chad"]["agent"],
        morgan_agent.as_str()
    );

    // Hostile acceptances change nothing: a signature with one character
    // changed, and terms changed after Alice signed (validly signed by
    // Morgan). Notch says nothing back (MyCHIPs has no message for it).
    // Checked once, with the listener: what Notch checks does not depend on
    // how the bytes reach it, and each costs a second.
    let tampers: &[&str] = match reach {
        Reach::Listen => &["signature", "terms"],
        Reach::Relay => &[],
    };
    for &tamper in tampers {
        let before = snapshot(&alice).await;
        let sent = morgan.accept(Some(tamper)).await;
        println!("MyCHIPs side, accept --tamper {tamper}: {:#?}", sent.0);
        assert_eq!(sent.get("sent")["kind"], "kk", "a reconnection is N + KK");
        assert_eq!(sent.get("open")["delivered"], true, "{:#?}", sent.0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            snapshot(&alice).await,
            before,
            "tampered ({tamper}) changed something"
        );
        assert_eq!(state_of(&alice, &draft.id).await, "H.offer");
    }
    assert!(announced(&mut events, &draft.id).is_empty());

    // Morgan accepts: signs as the foil and sends `open`.
    let accepted = morgan.accept(None).await;
    println!("MyCHIPs side, accept: {:#?}", accepted.0);
    let open = accepted.get("open");
    assert_eq!(open["state"], "open");
    assert_eq!(open["delivered"], true);
    assert_eq!(open["signatures"], json!({"stock": true, "foil": true}));
    wait_state(&alice, &draft.id, "open").await;
    assert_eq!(announced(&mut events, &draft.id), ["open"]);
    let notes = alice.notifications(false).await.unwrap();
    assert_eq!(
        notes.iter().map(|n| n.kind).collect::<Vec<_>>(),
        [NotificationKind::TallyOpened]
    );
    assert_eq!(notes[0].tally.as_deref(), Some(draft.id.as_str()));

    // Both sides hold the same record, byte for byte in canonical form, and
    // both signatures verify for Notch ...
    let on_alice = stored_canonical(&alice, &draft.id).await;
    assert_eq!(
        open["canonical"],
        on_alice.as_str(),
        "the same record on both sides"
    );
    let verified = verify_tally_json(&on_alice).unwrap();
    assert_eq!(verified.record().uuid(), draft.id);
    // ... and for MyCHIPs's code (mychips-records/verify.mjs: WebCrypto and
    // json-stable-stringify) given what Notch stored.
    let input = json!({"tally": serde_json::from_str::<Value>(&on_alice).unwrap()});
    let (code, out) = node("mychips-records", "verify.mjs", &[], &input.to_string()).await;
    assert_eq!((code, out.trim()), (Some(0), "valid"));

    // A chit each way. Alice pays first: Morgan's agent cannot be called (its
    // certificate names no host), so the chit waits in her outbox.
    let mine = alice
        .tally_pay(&draft.id, 1_000, Some("to MyCHIPs".into()))
        .await
        .unwrap();
    assert_eq!(mine.state, "L.pend.good");
    // Morgan pays 2.5 CHIPs as the foil, the chit linked at index 1 of its chain,
    // and gets Alice's chit on the same connection.
    let paid = morgan
        .run(&[
            "pay", "--units", "2500", "--expect", "1", "--linger", "8000",
        ])
        .await;
    println!("MyCHIPs side, pay: {:#?}", paid.0);
    let sent = paid.get("paid");
    assert_eq!(sent["how"], "done", "Alice's chit came: {:#?}", paid.0);
    let theirs = sent["chit"]["uuid"].as_str().unwrap().to_owned();
    let got = paid.get("chit");
    assert_eq!(got["uuid"], mine.uuid.as_str());
    assert_eq!(got["by"], "stock");
    assert_eq!(got["units"], 1_000);
    assert_eq!(got["memo"], "to MyCHIPs");
    assert_eq!(
        got["valid"], true,
        "MyCHIPs's check of Alice's chit: {got:#}"
    );
    assert_eq!(got["digest_ok"], true, "{got:#}");
    // Notch took Morgan's chit where the foil put it: the chain hash MyCHIPs
    // computes is the one Notch computes over its own chain.
    let received = wait_chit(&alice, &draft.id, &theirs, "A.good").await;
    assert_eq!(received.units, Some(2_500));
    assert_eq!(received.index, Some(1));
    assert_eq!(received.consensus, "linked");
    eventually(
        "Alice's chit to be sent",
        Duration::from_secs(10),
        || async {
            chit(&alice, &draft.id, &mine.uuid)
                .await
                .filter(|c| c.state == "L.good")
        },
    )
    .await;
    assert_eq!(balance(&alice, &draft.id).await, 2_500 - 1_000);
    let kinds: Vec<NotificationKind> = alice
        .notifications(false)
        .await
        .unwrap()
        .iter()
        .map(|n| n.kind)
        .collect();
    assert!(kinds.contains(&NotificationKind::ChitReceived), "{kinds:?}");
    a_agent.stop().await;
    drop(gateway);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_expired_and_unknown_tickets_from_mychips_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let alice = alice(dir.path()).await;
    let a_agent = agent(&alice, "127.0.0.1:0").await;
    let (ticket, draft) = alice.tally_ticket(Duration::from_secs(600)).await.unwrap();
    let link = ticket.to_string();
    let morgan = MyChipsUser::new(dir.path(), "morgan");
    assert_eq!(morgan.present(&link).await.get("offer")["valid"], true);
    morgan.accept(None).await;
    wait_state(&alice, &draft.id, "open").await;
    let before = snapshot(&alice).await;

    // The used token, replayed by another MyCHIPs user: refused with a reason.
    let riley = MyChipsUser::new(dir.path(), "riley");
    let got = riley.present(&link).await;
    println!("MyCHIPs side, replay by another user: {:#?}", got.0);
    assert!(got.find("offer").is_none());
    let refused = got.get("refuse");
    assert_eq!(refused["reason"]["code"], "used", "{refused:#}");
    assert!(
        refused["reason"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{refused:#}"
    );
    assert_eq!(refused["token"], ticket.token());
    assert_eq!(
        snapshot(&alice).await,
        before,
        "a replayed token changed something"
    );

    // Replayed by the user who used it, after the tally opened: taken as a
    // repeat, nothing offered again, nothing changed.
    let got = morgan
        .run(&["present", "--ticket", &link, "--quiet", "1500"])
        .await;
    println!("MyCHIPs side, replay by the same user: {:#?}", got.0);
    assert!(
        got.find("offer").is_none() && got.find("refuse").is_none(),
        "{got:#?}"
    );
    assert_eq!(
        snapshot(&alice).await,
        before,
        "a repeated token changed something"
    );
    assert_eq!(state_of(&alice, &draft.id).await, "open");

    // An expired ticket (MyCHIPs's links carry no expiry; the issuer checks).
    let (short, short_draft) = alice.tally_ticket(Duration::from_secs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = snapshot(&alice).await;
    let got = riley.present(&short.to_string()).await;
    println!("MyCHIPs side, expired ticket: {:#?}", got.0);
    assert!(got.find("offer").is_none());
    let refused = got.get("refuse");
    assert_eq!(refused["reason"]["code"], "expired", "{refused:#}");
    assert!(
        refused["reason"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{refused:#}"
    );
    assert_eq!(
        snapshot(&alice).await,
        before,
        "an expired ticket changed something"
    );
    assert_eq!(state_of(&alice, &short_draft.id).await, "draft");

    // A token Alice never issued, at her real agent.
    let forged = Ticket::new(
        "0123456789abcdef0123456789abcdef",
        ticket.expires(),
        ticket.chad().clone(),
    )
    .unwrap();
    let got = riley.present(&forged.to_string()).await;
    assert_eq!(got.get("refuse")["reason"]["code"], "unknown", "{got:#?}");
    assert_eq!(snapshot(&alice).await, before);
    let states: Vec<TallyState> = alice
        .tallies()
        .await
        .unwrap()
        .iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    a_agent.stop().await;
}
