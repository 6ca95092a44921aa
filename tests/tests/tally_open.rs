//! Two (and three) real wallets — SQLite files in temporary directories,
//! their agents on loopback TCP — open tallies from tickets through the
//! `Wallet` API: ticket → QR code PNG → scan → offer → accept → `open` on
//! both sides with both signatures; refused tickets (expired, used,
//! unknown, malformed) change nothing; a scan while the issuer is offline
//! waits in the outbox; tampered and replayed messages are refused.
//!
//! The wallets need a gateway URL but never call it: tallies do not use the
//! ledger. The CLI's own run of this flow is `cli_ticket_png_scan_accept`
//! at the end (it needs the OS keystore, like `wallet_crash`).

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notch_core::keys::{RecoveryPhrase, WalletKeys, WalletSecret};
use notch_core::peer::{self, AgentId, LocalKey, PeerConfig};
use notch_core::tally::{Side, TallyRecord, verify_tally_json};
use notch_core::ticket::{DEFAULT_MODULE_PX, LinkForm, Ticket};
use notch_core::{NotificationKind, TallyScanError, Wallet};
use notch_tests::tally::{NO_GATEWAY, agent, agent_config, state_of};
use notch_tests::wallet::new_wallet;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn wallet(dir: &Path) -> (Wallet, String) {
    new_wallet(dir, NO_GATEWAY).await
}

async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    notch_tests::tally::eventually(what, Duration::from_secs(20), check).await
}

async fn wait_state(wallet: &Wallet, id: &str, state: &str) {
    let what = format!("tally {id} to be {state}");
    eventually(&what, || async {
        (state_of(wallet, id).await == state).then_some(())
    })
    .await;
}

fn kinds(list: &[notch_core::Notification]) -> Vec<NotificationKind> {
    list.iter().map(|n| n.kind).collect()
}

/// The stored record, exactly as signed, and what `verify_tally_json` says.
async fn verified_record(wallet: &Wallet, id: &str) -> TallyRecord {
    let detail = wallet.tally(id).await.unwrap();
    let text = detail.record.to_string();
    let verified = verify_tally_json(&text).unwrap_or_else(|e| panic!("tally {id}: {e}"));
    verified.into_record()
}

/// Everything about a wallet's tallies that a refused or replayed message
/// must leave alone.
async fn snapshot(wallet: &Wallet) -> Value {
    let tallies = wallet.tallies().await.unwrap();
    let notes = wallet.notifications(false).await.unwrap();
    json!({"tallies": serde_json::to_value(&tallies).unwrap(), "notifications": notes.len()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_png_scanned_opens_the_tally_on_both_sides() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, _) = wallet(da.path()).await;
    let (bob, _) = wallet(db.path()).await;
    alice
        .set_tally_profile(Some("alice".into()), Some("Alice Example".into()))
        .await
        .unwrap();
    bob.set_tally_profile(None, Some("Bob".into()))
        .await
        .unwrap();
    let a_agent = agent(&alice, "127.0.0.1:0").await;

    let (ticket, draft) = alice.tally_ticket(Duration::from_secs(600)).await.unwrap();
    assert_eq!(draft.state.as_str(), "draft");
    assert!(
        ticket
            .to_string()
            .starts_with("https://mychips.org/invite?token=")
    );
    assert_eq!(ticket.chad().cuid(), "alice");
    assert_eq!(ticket.chad().port(), a_agent.local_addr().port());
    let profile = alice.tally_profile().await.unwrap();
    assert_eq!(ticket.chad().agent().to_base64url(), profile.agent);

    // A renders the ticket as a PNG; B scans the file.
    let png = ticket
        .to_qr_png(LinkForm::MyChips, DEFAULT_MODULE_PX)
        .unwrap();
    let file = da.path().join("ticket.png");
    std::fs::write(&file, &png).unwrap();
    let offered = bob
        .tally_scan_image(&std::fs::read(&file).unwrap())
        .await
        .unwrap();
    assert_eq!(offered.state.as_str(), "P.offer");
    assert_eq!(offered.side.as_deref(), Some("foil"));
    assert_eq!(offered.partner_name.as_deref(), Some("Alice Example"));
    assert_eq!(offered.uuid.as_deref(), Some(draft.id.as_str()));
    assert!(
        offered
            .partner
            .as_deref()
            .is_some_and(|p| p.starts_with("alice:"))
    );
    assert_eq!(offered.balance, 0);
    let b_notes = bob.notifications(false).await.unwrap();
    assert_eq!(kinds(&b_notes), [NotificationKind::TallyOffered]);
    assert_eq!(b_notes[0].tally.as_deref(), Some(offered.id.as_str()));
    // Alice signed first: the offer holds her signature only.
    let offer = TallyRecord::from_value(bob.tally(&offered.id).await.unwrap().record).unwrap();
    assert!(offer.signature(Side::Stock).is_some());
    assert!(offer.signature(Side::Foil).is_none());
    wait_state(&alice, &draft.id, "H.offer").await;
    assert_eq!(
        alice.tallies().await.unwrap()[0].partner_name.as_deref(),
        Some("Bob")
    );

    // Bob reads the terms and accepts: open on both sides.
    let accepted = bob.tally_accept(&offered.id).await.unwrap();
    assert_eq!(accepted.state.as_str(), "open");
    wait_state(&alice, &draft.id, "open").await;
    let on_alice = verified_record(&alice, &draft.id).await;
    let on_bob = verified_record(&bob, &offered.id).await;
    assert_eq!(
        on_alice.to_json(),
        on_bob.to_json(),
        "the same record, byte for byte"
    );
    assert_eq!(on_alice.uuid(), draft.id);
    assert_eq!(
        on_alice.party(Side::Foil).cert()["name"]["first"],
        json!("Bob")
    );
    assert_eq!(
        kinds(&alice.notifications(false).await.unwrap()),
        [NotificationKind::TallyOpened]
    );
    assert_eq!(
        kinds(&bob.notifications(false).await.unwrap()),
        [
            NotificationKind::TallyOpened,
            NotificationKind::TallyOffered
        ]
    );
    // Accepting again changes nothing; refusing an open tally is refused.
    assert_eq!(
        bob.tally_accept(&offered.id).await.unwrap().state.as_str(),
        "open"
    );
    assert!(bob.tally_refuse(&offered.id).await.is_err());
    a_agent.stop().await;
}

/// A client that is not a wallet: presents `token` to `agent` at `addr`
/// with a key of its own, and returns the agent's answer.
async fn present_raw(addr: &str, agent: &str, token: &str) -> Value {
    let local = LocalKey::from_x25519_secret([0x5a; 32]);
    let remote = AgentId::parse(agent).unwrap();
    let hello = json!({
        "target": "tally", "action": "ticket",
        "from": {"cid": "raw", "agent": local.agent().to_string()},
        "ticket": {"token": token, "cert": {"chad": {"agent": local.agent().to_string()}}},
    });
    let mut session = peer::connect(addr, &local, &remote, &hello, &PeerConfig::default())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), session.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_used_unknown_and_malformed_tickets_are_refused_and_change_nothing() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (alice, _) = wallet(dirs[0].path()).await;
    let (bob, _) = wallet(dirs[1].path()).await;
    let (carol, _) = wallet(dirs[2].path()).await;
    let a_agent = agent(&alice, "127.0.0.1:0").await;
    let addr = a_agent.local_addr().to_string();

    // Malformed: refused before anything is sent or stored.
    let err = bob
        .tally_scan("https://mychips.org/invite?token=abc&chad=%7Bnot-json")
        .await
        .unwrap_err();
    assert!(matches!(err, TallyScanError::Ticket(_)), "{err}");
    assert!(err.to_string().contains("CHIP address"), "{err}");
    let err = bob.tally_scan("hello").await.unwrap_err();
    assert!(err.to_string().contains("not a tally ticket"), "{err}");

    // Expired: the scanner sees it itself; the issuer refuses it too.
    let (short, short_draft) = alice.tally_ticket(Duration::from_secs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = snapshot(&alice).await;
    let err = bob.tally_scan(&short.to_string()).await.unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    let answer = present_raw(&addr, &short.chad().agent().to_base64url(), short.token()).await;
    assert_eq!(answer["action"], "refuse");
    assert_eq!(answer["reason"]["code"], "expired", "{answer}");
    assert_eq!(snapshot(&alice).await, before);
    assert_eq!(state_of(&alice, &short_draft.id).await, "draft");

    // Used: Bob takes the ticket; Carol presenting it is refused, and so is
    // a stranger.
    let (ticket, draft) = alice.tally_ticket(Duration::from_secs(600)).await.unwrap();
    let offered = bob.tally_scan(&ticket.to_string()).await.unwrap();
    assert_eq!(offered.state.as_str(), "P.offer");
    wait_state(&alice, &draft.id, "H.offer").await;
    let before = snapshot(&alice).await;
    let err = carol.tally_scan(&ticket.to_string()).await.unwrap_err();
    let TallyScanError::Refused { code, reason } = &err else {
        panic!("{err}");
    };
    assert_eq!(code, "used");
    assert!(reason.contains("already used"), "{reason}");
    let answer = present_raw(&addr, &ticket.chad().agent().to_base64url(), ticket.token()).await;
    assert_eq!(answer["reason"]["code"], "used");
    // Unknown: a token Alice never issued, at her real address.
    let forged = Ticket::new(
        "0123456789abcdef0123456789abcdef",
        ticket.expires(),
        ticket.chad().clone(),
    )
    .unwrap();
    let err = carol.tally_scan(&forged.to_string()).await.unwrap_err();
    assert!(
        matches!(&err, TallyScanError::Refused { code, .. } if code == "unknown"),
        "{err}"
    );
    assert_eq!(snapshot(&alice).await, before, "the issuer changed nothing");
    assert!(
        carol.tallies().await.unwrap().is_empty(),
        "Carol stored nothing"
    );
    assert!(carol.notifications(false).await.unwrap().is_empty());
    assert_eq!(bob.tallies().await.unwrap().len(), 1);
    // Bob's tally is still Alice's offer to him.
    assert_eq!(state_of(&bob, &offered.id).await, "P.offer");
    a_agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_while_the_issuer_is_offline_waits_in_the_outbox() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, _) = wallet(da.path()).await;
    let (bob, _) = wallet(db.path()).await;
    let a_agent = agent(&alice, "127.0.0.1:0").await;
    let a_listen = a_agent.local_addr().to_string();
    let (ticket, draft) = alice.tally_ticket(Duration::from_secs(600)).await.unwrap();
    a_agent.stop().await;

    let _b_agent = agent(&bob, "127.0.0.1:0").await;
    let waiting = bob.tally_scan(&ticket.to_string()).await.unwrap();
    assert_eq!(waiting.state.as_str(), "ticket");
    assert!(waiting.queued);
    assert!(
        waiting
            .delivery_error
            .as_deref()
            .is_some_and(|e| e.contains("could not connect")),
        "{waiting:?}"
    );
    // Bob's agent keeps trying; nothing is lost meanwhile.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let still = bob.tally(&waiting.id).await.unwrap().info;
    assert_eq!(still.state.as_str(), "ticket");
    assert!(still.queued);
    assert_eq!(state_of(&alice, &draft.id).await, "draft");

    // Alice's agent comes back: the ticket goes through, the offer comes.
    let a_agent = agent(&alice, &a_listen).await;
    wait_state(&bob, &waiting.id, "P.offer").await;
    wait_state(&alice, &draft.id, "H.offer").await;
    assert!(!bob.tally(&waiting.id).await.unwrap().info.queued);

    // Alice is offline again when Bob accepts: the acceptance waits.
    a_agent.stop().await;
    let accepted = bob.tally_accept(&waiting.id).await.unwrap();
    assert_eq!(accepted.state.as_str(), "B.offer.open");
    assert!(accepted.queued);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(state_of(&alice, &draft.id).await, "H.offer");
    let _a_agent = agent(&alice, &a_listen).await;
    wait_state(&alice, &draft.id, "open").await;
    wait_state(&bob, &waiting.id, "open").await;
    assert_eq!(
        verified_record(&alice, &draft.id).await.to_json(),
        verified_record(&bob, &waiting.id).await.to_json()
    );
    // Delivered once, applied once.
    let opened = |list: Vec<notch_core::Notification>| {
        list.iter()
            .filter(|n| n.kind == NotificationKind::TallyOpened)
            .count()
    };
    assert_eq!(opened(alice.notifications(false).await.unwrap()), 1);
    assert_eq!(opened(bob.notifications(false).await.unwrap()), 1);
    assert!(!bob.tally(&waiting.id).await.unwrap().info.queued);
}

/// A TCP proxy that records what each client sends.
struct Recorder {
    port: u16,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

async fn recorder(upstream: String) -> Recorder {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let index = {
                    let mut log = log.lock().unwrap();
                    log.push(Vec::new());
                    log.len() - 1
                };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        log.lock().unwrap()[index].extend_from_slice(&buf[..n]);
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    Recorder { port, sent }
}

/// Sends `bytes` to `addr` as a new connection and reads until it closes.
async fn replay(addr: &str, bytes: &[u8]) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_replayed_messages_are_refused() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice, _) = wallet(da.path()).await;
    let (bob, bob_phrase) = wallet(db.path()).await;
    // Alice's agent is reached through a proxy that records everything sent
    // to it: her tickets and certificate give the proxy's port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a_addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let proxy = recorder(a_addr.clone()).await;
    let mut config = agent_config(&a_addr);
    config.advertise = Some(("127.0.0.1".into(), proxy.port));
    let a_agent = alice.start_agent(config).await.unwrap();
    assert_eq!(a_agent.advertised().1, proxy.port);

    let (ticket, draft) = alice.tally_ticket(Duration::from_secs(600)).await.unwrap();
    let offered = bob.tally_scan(&ticket.to_string()).await.unwrap();
    assert_eq!(offered.state.as_str(), "P.offer");
    wait_state(&alice, &draft.id, "H.offer").await;

    // Someone holding Bob's keys (a second device, a bug) sends Alice
    // acceptances she must not take: terms changed after she signed, and
    // one without Bob's signature.
    let keys = WalletKeys::from_secret(
        &WalletSecret::new(RecoveryPhrase::parse(&bob_phrase).unwrap(), ""),
        0,
    )
    .unwrap();
    let bob_local = LocalKey::from_agent_key(&keys.agent_key().unwrap());
    let bob_key = keys.tally_key().unwrap();
    let alice_agent = AgentId::parse(&ticket.chad().agent().to_base64url()).unwrap();
    let offer_value = bob.tally(&offered.id).await.unwrap().record;
    let mut changed = offer_value.clone();
    changed["foil"]["terms"] = json!({"limit": 1_000_000});
    let mut changed = TallyRecord::from_value(changed).unwrap();
    changed.sign(Side::Foil, &bob_key).unwrap();
    let unsigned = TallyRecord::from_value(offer_value.clone()).unwrap();
    let before = snapshot(&alice).await;
    for record in [changed, unsigned] {
        let message = json!({"target": "tally", "action": "open", "object": record.to_value()});
        let session = peer::connect(
            a_addr.as_str(),
            &bob_local,
            &alice_agent,
            &message,
            &PeerConfig::default(),
        )
        .await
        .unwrap();
        session.close().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        snapshot(&alice).await,
        before,
        "no tampered acceptance taken"
    );
    assert_eq!(state_of(&alice, &draft.id).await, "H.offer");
    // A stranger cannot even reconnect: it shares no tally with Alice.
    let stranger = LocalKey::from_x25519_secret([0x77; 32]);
    let message = json!({"target": "tally", "action": "void", "object": {"uuid": draft.id}});
    let refused = peer::connect(
        a_addr.as_str(),
        &stranger,
        &alice_agent,
        &message,
        &PeerConfig::default(),
    )
    .await;
    assert!(
        refused.is_err(),
        "a stranger's reconnection is not answered"
    );

    // The real acceptance goes through the proxy too.
    assert_eq!(
        bob.tally_accept(&offered.id).await.unwrap().state.as_str(),
        "open"
    );
    wait_state(&alice, &draft.id, "open").await;
    let recorded = proxy.sent.lock().unwrap().clone();
    assert!(recorded.len() >= 2, "the ticket and the acceptance");
    let before = snapshot(&alice).await;
    let record = verified_record(&alice, &draft.id).await.to_json();
    // Replay every recorded connection as it was, and tampered with.
    for bytes in &recorded {
        replay(&a_addr, bytes).await;
        let mut flipped = bytes.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x01;
        replay(&a_addr, &flipped).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(snapshot(&alice).await, before, "replays changed nothing");
    assert_eq!(verified_record(&alice, &draft.id).await.to_json(), record);
    a_agent.stop().await;
}

/// The CLI's own run: ticket → PNG → scan → accept → open, and `tally
/// verify`. The `notch` processes share each wallet's seed through the OS
/// keystore, so this needs a running Secret Service (see `wallet_crash.rs`
/// for how `cargo xtask test` provides one); ignored otherwise.
#[test]
#[ignore = "needs a Secret Service: run under dbus-run-session with NOTCH_TEST_SECRET_SERVICE=1"]
fn cli_ticket_png_scan_accept() {
    use std::process::{Command, Stdio};
    assert!(
        std::env::var_os("NOTCH_TEST_SECRET_SERVICE").is_some(),
        "set NOTCH_TEST_SECRET_SERVICE=1 inside a dbus-run-session with an unlocked gnome-keyring"
    );
    let notch = notch_tests::bin("notch");
    let run = |dir: &Path, args: &[&str]| {
        let out = Command::new(&notch)
            .arg("--data-dir")
            .arg(dir)
            .args(["--gateway", NO_GATEWAY, "--network", "sandbox", "--json"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "notch {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run(da.path(), &["init"]);
    run(db.path(), &["init"]);
    let port = notch_tests::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut agent = notch_tests::KillOnDrop(
        Command::new(&notch)
            .arg("--data-dir")
            .arg(da.path())
            .args(["--gateway", NO_GATEWAY, "--network", "sandbox"])
            .args(["agent", "--listen", &listen])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    notch_tests::eventually("the agent to listen", Duration::from_secs(20), || {
        std::net::TcpStream::connect(&listen).ok()
    });
    let png = da.path().join("ticket.png");
    let issued = run(
        da.path(),
        &["tally", "ticket", "--qr", png.to_str().unwrap()],
    );
    assert!(
        issued["url"]
            .as_str()
            .unwrap()
            .starts_with("https://mychips.org/invite?")
    );
    let draft = issued["tally"].as_str().unwrap().to_owned();
    let scanned = run(
        db.path(),
        &["tally", "scan", "--image", png.to_str().unwrap()],
    );
    assert_eq!(scanned["state"], "P.offer");
    let id = scanned["tally"].as_str().unwrap().to_owned();
    let accepted = run(db.path(), &["tally", "accept", &id, "--yes"]);
    assert_eq!(accepted["state"], "open");
    let list = notch_tests::eventually(
        "the issuer's tally to open",
        Duration::from_secs(20),
        || {
            let list = run(da.path(), &["tally", "list"]);
            (list[0]["state"] == "open").then_some(list)
        },
    );
    assert_eq!(list[0]["id"], draft.as_str());
    assert_eq!(list[0]["balance"], 0);
    // Both stored records verify with `notch tally verify`.
    for (dir, id) in [(da.path(), &draft), (db.path(), &id)] {
        let shown = run(dir, &["tally", "show", id]);
        let file = dir.join("tally.json");
        std::fs::write(&file, shown["record"].to_string()).unwrap();
        let verified = run(dir, &["tally", "verify", file.to_str().unwrap()]);
        assert_eq!(verified["valid"], true);
    }
    let _ = agent.0.kill();
}
