//! The agent relay (ADR 6) of the real `notch-gateway --sandbox`, driven by a plain agent
//! written here over std TCP and snow (the wire of docs/PROTOCOL.md §12, "The relay"):
//! registration only with proof of the agent key, a partner spliced to the agent that
//! registered, a partner closed when the agent does not come, the port kept across a
//! restart, and the limits.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use notch_protocol::relay::{self as proto, ControlMessage};

const IO: Duration = Duration::from_secs(10);

fn builder<'a>() -> snow::Builder<'a> {
    snow::Builder::with_resolver(
        proto::NOISE_PATTERN
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
        Box::new(snow::resolvers::DefaultResolver),
    )
}

fn write_frame(s: &mut TcpStream, body: &[u8]) {
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    s.write_all(&out).unwrap_or_else(|e| panic!("{e}"));
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut body)?;
    Ok(body)
}

struct Control {
    stream: TcpStream,
    transport: snow::TransportState,
}

impl Control {
    fn send(&mut self, m: &[u8]) {
        let mut buf = vec![0u8; m.len() + 16];
        let n = self
            .transport
            .write_message(m, &mut buf)
            .unwrap_or_else(|e| panic!("{e}"));
        write_frame(&mut self.stream, &buf[..n]);
    }

    fn recv(&mut self) -> std::io::Result<ControlMessage> {
        let frame = read_frame(&mut self.stream)?;
        let mut plain = vec![0u8; frame.len()];
        let n = self
            .transport
            .read_message(&frame, &mut plain)
            .map_err(std::io::Error::other)?;
        Ok(ControlMessage::decode(&plain[..n]).unwrap_or_else(|e| panic!("{e}")))
    }

    fn ping(&mut self) {
        self.send(br#"{"op":"ping"}"#);
        assert_eq!(
            self.recv().unwrap_or_else(|e| panic!("{e}")),
            ControlMessage::Pong
        );
    }

    /// The claim of the next `partner` message.
    fn partner(&mut self) -> [u8; 32] {
        match self.recv().unwrap_or_else(|e| panic!("{e}")) {
            ControlMessage::Partner { claim } => {
                proto::parse_claim(&claim).unwrap_or_else(|e| panic!("{e}"))
            }
            other => panic!("expected a partner, got {other:?}"),
        }
    }
}

/// Opens a control connection as the agent whose X25519 secret is `secret`, sending
/// `register` (or `hello`) in the third handshake message; `tamper` flips a bit of that
/// message. The connection and the relay's first answer.
fn control_with(
    relay: &str,
    secret: &[u8; 32],
    hello: &[u8],
    tamper: bool,
) -> (Control, std::io::Result<ControlMessage>) {
    let mut stream = TcpStream::connect(relay).unwrap_or_else(|e| panic!("{e}"));
    stream
        .set_read_timeout(Some(IO))
        .unwrap_or_else(|e| panic!("{e}"));
    stream
        .write_all(&proto::CONTROL_MAGIC)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut hs = builder()
        .prologue(proto::PROLOGUE)
        .unwrap_or_else(|e| panic!("{e}"))
        .local_private_key(secret)
        .unwrap_or_else(|e| panic!("{e}"))
        .build_initiator()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = vec![0u8; 1024];
    let n = hs
        .write_message(&[], &mut buf)
        .unwrap_or_else(|e| panic!("{e}"));
    write_frame(&mut stream, &buf[..n]);
    let m2 = read_frame(&mut stream).unwrap_or_else(|e| panic!("{e}"));
    hs.read_message(&m2, &mut buf)
        .unwrap_or_else(|e| panic!("{e}"));
    let n = hs
        .write_message(hello, &mut buf)
        .unwrap_or_else(|e| panic!("{e}"));
    if tamper {
        buf[40] ^= 1;
    }
    write_frame(&mut stream, &buf[..n]);
    let mut control = Control {
        stream,
        transport: hs.into_transport_mode().unwrap_or_else(|e| panic!("{e}")),
    };
    let first = control.recv();
    (control, first)
}

fn register(relay: &str, secret: &[u8; 32]) -> (Control, u16) {
    let (control, first) = control_with(relay, secret, br#"{"op":"register","v":1}"#, false);
    match first.unwrap_or_else(|e| panic!("{e}")) {
        ControlMessage::Registered { port, wait_ms } => {
            assert!(wait_ms > 0);
            (control, port)
        }
        other => panic!("not registered: {other:?}"),
    }
}

/// A partner's first packet as MyCHIPs frames it: length 5, header `I`, 4 bytes.
const FIRST: [u8; 9] = [0, 0, 0, 5, b'I', 1, 2, 3, 4];

fn partner(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    s.set_read_timeout(Some(IO))
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(&FIRST).unwrap_or_else(|e| panic!("{e}"));
    s
}

fn data(relay: &str, claim: &[u8; 32]) -> TcpStream {
    let mut s = TcpStream::connect(relay).unwrap_or_else(|e| panic!("{e}"));
    s.set_read_timeout(Some(IO))
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(&proto::data_preamble(claim))
        .unwrap_or_else(|e| panic!("{e}"));
    s
}

/// Reads until the peer closes; the bytes read.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn closed_within(s: &mut TcpStream, within: Duration) -> Duration {
    s.set_read_timeout(Some(within))
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Ok(0) => start.elapsed(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => start.elapsed(),
        other => panic!("the connection was not closed within {within:?}: {other:?}"),
    }
}

fn relay_gateway(b: &Backend, dir: &std::path::Path, extra: &[&str]) -> (Gateway, String) {
    let mut args = vec!["--relay-listen", "127.0.0.1:0", "--relay-ports", "0"];
    args.extend_from_slice(extra);
    let gw = Gateway::sandbox_with(b, dir, &args);
    let relay = gw.relay_addr();
    (gw, relay)
}

both_backends!(a_partner_is_spliced_to_the_agent_that_proved_its_key);
fn a_partner_is_spliced_to_the_agent_that_proved_its_key(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_gw, relay) = relay_gateway(&b, &dir.path().join("gw"), &[]);
    let (mut control, port) = register(&relay, &[0x11; 32]);
    let mut p = partner(port);
    let claim = control.partner();
    let mut d = data(&relay, &claim);
    // The partner's first bytes, held by the relay, come first and unchanged.
    let mut first = [0u8; 9];
    d.read_exact(&mut first).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first, FIRST);
    // Then both ways, byte for byte.
    p.write_all(b"from the partner")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut got = [0u8; 16];
    d.read_exact(&mut got).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&got, b"from the partner");
    d.write_all(b"from the agent")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut got = [0u8; 14];
    p.read_exact(&mut got).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&got, b"from the agent");
    // A half close passes through as a half close.
    d.shutdown(Shutdown::Write)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_to_close(&mut p), b"");
    p.write_all(b"last words").unwrap_or_else(|e| panic!("{e}"));
    p.shutdown(Shutdown::Write)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_to_close(&mut d), b"last words");
    // The claim was one-time.
    let mut again = data(&relay, &claim);
    closed_within(&mut again, Duration::from_secs(5));
    // The control connection still works.
    control.ping();
    // A second agent gets a port of its own, and the first one's partners are not its.
    let (mut other, other_port) = register(&relay, &[0x22; 32]);
    assert_ne!(other_port, port);
    let _p2 = partner(other_port);
    let _ = other.partner();
    control.ping();
}

both_backends!(no_port_without_proof_of_the_key);
fn no_port_without_proof_of_the_key(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_gw, relay) = relay_gateway(&b, &dir.path().join("gw"), &[]);
    // Not the relay protocol at all.
    let mut junk = TcpStream::connect(&relay).unwrap_or_else(|e| panic!("{e}"));
    junk.write_all(b"GET / HTTP/1.1\r\n\r\n")
        .unwrap_or_else(|e| panic!("{e}"));
    closed_within(&mut junk, Duration::from_secs(5));
    // The third handshake message altered (someone who has the public key and replays or
    // forges the rest): no answer, the connection closed.
    let (_c, first) = control_with(&relay, &[0x11; 32], br#"{"op":"register","v":1}"#, true);
    assert!(first.is_err(), "{first:?}");
    // A handshake whose message is not `register` v1: refused, in words.
    let (_c, first) = control_with(&relay, &[0x11; 32], br#"{"op":"register","v":2}"#, false);
    assert!(
        matches!(&first, Ok(ControlMessage::Refused { reason }) if reason.contains("version 2")),
        "{first:?}"
    );
    let (_c, first) = control_with(&relay, &[0x11; 32], b"hello", false);
    assert!(
        matches!(first, Ok(ControlMessage::Refused { .. })),
        "{first:?}"
    );
    // A key that proves itself is registered; the key is what names the agent.
    let (_c1, port) = register(&relay, &[0x11; 32]);
    let (_c2, port2) = register(&relay, &[0x33; 32]);
    assert_ne!(port, port2);
}

both_backends!(a_partner_is_closed_when_the_agent_does_not_come);
fn a_partner_is_closed_when_the_agent_does_not_come(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_gw, relay) = relay_gateway(&b, &dir.path().join("gw"), &["--relay-wait-secs", "1"]);
    let (mut control, port) = register(&relay, &[0x11; 32]);
    let mut p = partner(port);
    let claim = control.partner();
    let waited = closed_within(&mut p, Duration::from_secs(6));
    assert!(
        waited >= Duration::from_millis(700),
        "closed after {waited:?}"
    );
    // Too late: the claim is gone.
    let mut late = data(&relay, &claim);
    closed_within(&mut late, Duration::from_secs(5));
    control.ping();
}

both_backends!(limits_and_bad_input);
fn limits_and_bad_input(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_gw, relay) = relay_gateway(
        &b,
        &dir.path().join("gw"),
        &["--relay-max-waiting", "1", "--relay-wait-secs", "5"],
    );
    let (mut control, port) = register(&relay, &[0x11; 32]);
    // A malformed control message is answered with an error and changes nothing.
    control.send(b"{not json");
    assert!(matches!(
        control.recv().unwrap_or_else(|e| panic!("{e}")),
        ControlMessage::Error { .. }
    ));
    control.send(br#"{"op":"registered","port":1,"wait_ms":1}"#);
    assert!(matches!(
        control.recv().unwrap_or_else(|e| panic!("{e}")),
        ControlMessage::Error { .. }
    ));
    control.ping();
    // A connection to the agent's port that is not a MyCHIPs handshake wakes nobody.
    let mut scan = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    scan.write_all(b"SSH-2.0-probe\r\n")
        .unwrap_or_else(|e| panic!("{e}"));
    closed_within(&mut scan, Duration::from_secs(5));
    control.ping();
    // One partner may wait at a time here: a second one is closed at once.
    let _first = partner(port);
    let _claim = control.partner();
    let mut second = partner(port);
    let waited = closed_within(&mut second, Duration::from_secs(3));
    assert!(waited < Duration::from_secs(3));
    // An oversized control frame: an error, and the connection ends.
    control
        .stream
        .write_all(&[0x08, 0x00])
        .unwrap_or_else(|e| panic!("{e}"));
    control
        .stream
        .write_all(&[0u8; 2048])
        .unwrap_or_else(|e| panic!("{e}"));
    match control.recv() {
        Ok(ControlMessage::Error { reason }) => assert!(reason.contains("2048"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(control.recv().is_err());
    // The agent registers again and is served.
    let (mut control, port2) = register(&relay, &[0x11; 32]);
    assert_eq!(port2, port, "the agent keeps its port");
    control.ping();
    // Registering on a second connection replaces the first, which is told.
    let (mut newer, _) = register(&relay, &[0x11; 32]);
    let told = control.recv();
    assert!(
        matches!(told, Ok(ControlMessage::Refused { .. })),
        "{told:?}"
    );
    newer.ping();
}

both_backends!(an_agent_keeps_its_port_across_restarts);
fn an_agent_keeps_its_port_across_restarts(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw_dir = dir.path().join("gw");
    // A range of its own, so that parallel runs rarely meet (and the two backends' variants,
    // which run at once in this process, never).
    let variant = if b.is_sqlite() { 0 } else { 16 };
    let lo = 42000 + (std::process::id() % 250) as u16 * 32 + variant;
    let range = format!("{lo}-{}", lo + 15);
    let args = [
        "--relay-listen",
        "127.0.0.1:0",
        "--relay-ports",
        range.as_str(),
    ];
    let (first, second) = {
        let mut gw = Gateway::sandbox_with(&b, &gw_dir, &args);
        let relay = gw.relay_addr();
        let (_a, a) = register(&relay, &[0x11; 32]);
        let (_b, b) = register(&relay, &[0x22; 32]);
        assert!((lo..lo + 16).contains(&a) && (lo..lo + 16).contains(&b));
        gw.terminate();
        (a, b)
    };
    let gw = Gateway::sandbox_with(&b, &gw_dir, &args);
    let relay = gw.relay_addr();
    // The other way round this time: each still gets its own.
    let (_b, b) = register(&relay, &[0x22; 32]);
    let (_a, a) = register(&relay, &[0x11; 32]);
    assert_eq!((a, b), (first, second));
}

both_backends!(a_sandbox_whose_relay_port_is_taken_still_starts);
/// The sandbox puts its relay on the HTTP port + 1 when nobody asks for a port; when
/// that one is taken, it starts anyway, with the relay on a free port it prints.
fn a_sandbox_whose_relay_port_is_taken_still_starts(b: Backend) {
    use std::io::BufRead;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to take");
    let relay_default = taken.local_addr().expect("addr").port();
    let http = relay_default - 1;
    if std::net::TcpListener::bind(("127.0.0.1", http)).is_err() {
        eprintln!("port {http} is in use here; nothing to show");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("gw");
    let mut child = std::process::Command::new(BIN)
        .args(["--sandbox", "--block-interval", "0", "--listen"])
        .arg(format!("127.0.0.1:{http}"))
        .arg("--data-dir")
        .arg(&data)
        .args(b.args(&data))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let lines: Vec<String> = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take(2)
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        lines.first().map(String::as_str),
        Some(format!("notch-gateway listening on http://127.0.0.1:{http}").as_str()),
        "{lines:?}"
    );
    let relay = lines
        .get(1)
        .and_then(|l| l.strip_prefix("notch-gateway relay at "))
        .unwrap_or_else(|| panic!("no relay line: {lines:?}"));
    assert_ne!(relay, format!("127.0.0.1:{relay_default}"), "{lines:?}");
    drop(taken);
}
