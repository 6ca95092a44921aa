//! Notch's peer transport against MyCHIPs's own Noise stack: the npm
//! `noise-protocol` library and `frame-stream` framing that MyCHIPs's
//! `lib/peernoise.js` uses, driven by `tests/interop/mychips-noise/peer.js`
//! (a MyCHIPs peer connection in Node), over loopback TCP, both ways.
//!
//! Needs Node and npm; `npm install` runs in tests/interop/mychips-noise the
//! first time (the npm registry must be reachable then).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use notch_core::keys::{RecoveryPhrase, WalletKeys};
use notch_core::peer::{
    AcceptError, ConnectError, HandshakeKind, LocalKey, PeerConfig, accept, connect, vector,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdout, Command};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/mychips-noise")
}

static INSTALL: Mutex<()> = Mutex::new(());

/// Installs the pinned npm packages once, if they are not there yet.
fn ensure_node_modules() {
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = interop_dir();
    if dir.join("node_modules/noise-protocol").is_dir()
        && dir.join("node_modules/frame-stream").is_dir()
    {
        return;
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

/// The wallet's seed-derived agent key.
fn agent(n: u8) -> LocalKey {
    let phrase = RecoveryPhrase::from_entropy(&[n; 16]).expect("entropy");
    let keys = WalletKeys::new(&phrase.to_seed(""), 0).expect("keys");
    LocalKey::from_agent_key(&keys.agent_key().expect("agent key"))
}

fn config() -> PeerConfig {
    PeerConfig {
        handshake_timeout: Duration::from_secs(10),
        read_timeout: Some(Duration::from_secs(10)),
        ..PeerConfig::default()
    }
}

/// A running `node peer.js …` and its stream of JSON events.
struct NodePeer {
    child: Child,
    events: Lines<BufReader<ChildStdout>>,
    seen: Vec<Value>,
}

impl NodePeer {
    fn spawn(args: &[&str]) -> NodePeer {
        ensure_node_modules();
        let mut child = Command::new("node")
            .arg("peer.js")
            .args(args)
            .current_dir(interop_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run node ({e}): the MyCHIPs interop test needs Node 20")
            });
        let stdout = child.stdout.take().expect("piped stdout");
        NodePeer {
            child,
            events: BufReader::new(stdout).lines(),
            seen: Vec::new(),
        }
    }

    /// The next event, which must be `name`.
    async fn expect(&mut self, name: &str) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(15), self.events.next_line())
            .await
            .unwrap_or_else(|_| panic!("node: no {name:?} event in time; so far {:?}", self.seen))
            .expect("read node's stdout")
            .unwrap_or_else(|| panic!("node exited before {name:?}; events: {:?}", self.seen));
        let event: Value = serde_json::from_str(&line).expect("node prints JSON lines");
        self.seen.push(event.clone());
        assert_eq!(event["event"], name, "events: {:?}", self.seen);
        event
    }

    /// Waits for the exit; returns its code and the events not yet read.
    async fn finish(mut self) -> (Option<i32>, Vec<Value>) {
        let mut rest = Vec::new();
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(15), self.events.next_line()).await
        {
            rest.push(serde_json::from_str(&line).expect("node prints JSON lines"));
        }
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("node exits")
            .expect("node's status");
        (status.code(), rest)
    }
}

async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    (listener, port)
}

/// A MyCHIPs initiator (Node) opens a connection to a Notch responder.
async fn node_initiates(kind: &str) {
    let notch = agent(1);
    let (listener, port) = bind().await;
    let remote = notch.agent().to_string();
    let mut node = NodePeer::spawn(&[
        "initiate", "--port", &port, "--remote", &remote, "--kind", kind,
    ]);
    let node_agent = node.expect("agent").await["agent"].clone();

    let incoming = accept(&listener, &notch, &config())
        .await
        .expect("handshake");
    assert_eq!(
        json!(incoming.remote_agent().to_string()),
        node_agent,
        "the handshake proved Node's key"
    );
    let hello = incoming.hello().cloned().expect("the first message");
    assert_eq!(hello["from"]["agent"], node_agent);
    match kind {
        "ik" => {
            assert_eq!(incoming.kind(), HandshakeKind::FirstContact);
            assert_eq!(hello["target"], "tally");
            assert_eq!(hello["action"], "ticket");
            assert_eq!(hello["ticket"]["token"], "interop-token");
        }
        _ => {
            assert_eq!(incoming.kind(), HandshakeKind::Reconnect);
            assert_eq!(hello["object"]["units"], 1000);
        }
    }
    let mut session = incoming.accept().await.expect("session");
    assert_eq!(node.expect("open").await["kind"], kind);

    let offer = json!({"target": "tally", "action": "offer", "object": {"uuid": "t-9", "comment": "from notch"}});
    session.send(&offer).await.expect("send");
    assert_eq!(node.expect("message").await["message"], offer);
    let answer = session.recv().await.expect("node's answer");
    assert_eq!(
        answer,
        json!({"target": "chit", "action": "good", "object": {"echo": offer}})
    );

    node.expect("done").await;
    let (code, rest) = node.finish().await;
    assert_eq!(code, Some(0), "node: {rest:?}");
}

/// A Notch initiator opens a connection to a MyCHIPs responder (Node).
async fn notch_initiates(hello: Value, kind: HandshakeKind, node_kind: &str) {
    let notch = agent(2);
    let mut node = NodePeer::spawn(&["respond"]);
    let listening = node.expect("listening").await;
    let port = listening["port"].as_u64().expect("port");
    let remote = notch_core::peer::AgentId::parse(listening["agent"].as_str().expect("agent"))
        .expect("node's agent id");

    let mut session = connect(
        ("127.0.0.1", port as u16),
        &notch,
        &remote,
        &hello,
        &config(),
    )
    .await
    .expect("handshake with MyCHIPs");
    assert_eq!(session.kind(), kind);
    assert_eq!(session.remote_agent(), remote);

    let node_hello = node.expect("hello").await;
    assert_eq!(node_hello["kind"], node_kind);
    assert_eq!(
        node_hello["remote"],
        notch.agent().to_string(),
        "Node learned our key"
    );
    assert_eq!(
        node_hello["message"]["from"]["agent"],
        notch.agent().to_string()
    );
    assert_eq!(node_hello["message"]["target"], hello["target"]);
    node.expect("open").await;

    let offer = session.recv().await.expect("node's message");
    assert_eq!(offer["object"]["comment"], "from node");
    let reply = json!({"target": "tally", "action": "open", "object": {"uuid": "t-1"}});
    session.send(&reply).await.expect("send");
    assert_eq!(node.expect("message").await["message"], reply);
    node.expect("done").await;
    let (code, rest) = node.finish().await;
    assert_eq!(code, Some(0), "node: {rest:?}");
}

#[tokio::test]
async fn mychips_makes_first_contact_with_notch() {
    node_initiates("ik").await;
}

#[tokio::test]
async fn mychips_reconnects_to_notch() {
    node_initiates("kk").await;
}

#[tokio::test]
async fn notch_makes_first_contact_with_mychips() {
    let hello = json!({
        "target": "tally", "action": "ticket",
        "ticket": {"token": "from-a-qr-code"}, "from": {"cid": "notch-user"}
    });
    notch_initiates(hello, HandshakeKind::FirstContact, "ik").await;
}

#[tokio::test]
async fn notch_reconnects_to_mychips() {
    let hello =
        json!({"target": "chit", "action": "pend", "object": {"uuid": "c-7", "units": 250}});
    notch_initiates(hello, HandshakeKind::Reconnect, "kk").await;
}

#[tokio::test]
async fn a_wrong_key_fails_the_handshake_both_ways() {
    // Node is told the wrong responder key: Notch cannot read its I.
    let notch = agent(3);
    let (listener, port) = bind().await;
    let wrong = agent(4).agent().to_string();
    let node = NodePeer::spawn(&[
        "initiate", "--port", &port, "--remote", &wrong, "--kind", "ik",
    ]);
    let result = accept(&listener, &notch, &config()).await;
    assert!(
        matches!(result, Err(AcceptError::NotForUs)),
        "{:?}",
        result.err()
    );
    let (code, rest) = node.finish().await;
    assert_ne!(code, Some(0));
    let error = rest
        .iter()
        .find(|e| e["event"] == "error")
        .unwrap_or_else(|| panic!("no error event: {rest:?}"));
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("before the handshake completed")),
        "{error}"
    );

    // Notch is told the wrong key for a MyCHIPs responder: it cannot read
    // our I and drops the connection.
    let mut node = NodePeer::spawn(&["respond"]);
    let port = node.expect("listening").await["port"]
        .as_u64()
        .expect("port");
    let hello = json!({"target": "tally", "action": "ticket", "ticket": {"token": "t"}});
    let result = connect(
        ("127.0.0.1", port as u16),
        &notch,
        &agent(4).agent(),
        &hello,
        &config(),
    )
    .await;
    assert!(
        matches!(result, Err(ConnectError::Refused | ConnectError::Timeout)),
        "{:?}",
        result.err()
    );
    let (code, _) = node.finish().await;
    assert_ne!(code, Some(0));
}

#[tokio::test]
async fn the_protocol_vectors_are_what_mychips_makes() {
    ensure_node_modules();
    let output = Command::new("node")
        .arg("vector.js")
        .current_dir(interop_dir())
        .output()
        .await
        .expect("run node vector.js");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let node: Value = serde_json::from_slice(&output.stdout).expect("vector.js prints JSON");

    let keys = vector::VectorKeys {
        initiator_static: [0x11; 32],
        responder_static: [0x22; 32],
        identify_ephemeral: [0x33; 32],
        initiator_ephemeral: [0x44; 32],
        responder_ephemeral: [0x55; 32],
    };
    let initiator = LocalKey::from_x25519_secret([0x11; 32]).agent().to_string();
    let first = json!({"action": "offer", "object": {"memo": "vector"}, "target": "tally"});
    let answer = json!({"action": "open", "target": "tally"});
    let hellos = [
        (
            "ik",
            json!({"action": "ticket", "from": {"agent": initiator, "cid": "alice"}, "target": "tally", "ticket": {"token": "vector-token"}}),
        ),
        (
            "kk",
            json!({"action": "pend", "from": {"agent": initiator, "cid": "alice"}, "object": {"units": 1500}, "target": "chit"}),
        ),
    ];
    for (name, hello) in hellos {
        let ours: Vec<String> = vector::transcript(&keys, &hello, &first, &answer)
            .expect("transcript")
            .iter()
            .map(hex::encode)
            .collect();
        assert_eq!(
            json!(ours),
            node[name],
            "{name}: snow and noise-protocol disagree"
        );
    }
}
