//! The peer transport over real TCP on loopback: both handshakes, and what a
//! hostile network can do to them (wrong keys, tampering, replay, oversize
//! packets, stalls, garbage).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use notch_core::keys::{RecoveryPhrase, WalletKeys};
use notch_core::peer::frame::{self, Frame, FrameError, Header};
use notch_core::peer::{
    AcceptError, AgentId, ConnectError, Envelope, HandshakeKind, LocalKey, MAX_MESSAGE, PeerConfig,
    RecvError, SendError, accept, connect, connect_over, respond, vector,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The agent key of a wallet made from a fixed phrase, as the wallet uses it.
fn agent(n: u8) -> LocalKey {
    let phrase = RecoveryPhrase::from_entropy(&[n; 16]).expect("entropy");
    let keys = WalletKeys::new(&phrase.to_seed(""), 0).expect("keys");
    LocalKey::from_agent_key(&keys.agent_key().expect("agent key"))
}

fn config() -> PeerConfig {
    PeerConfig {
        handshake_timeout: Duration::from_secs(5),
        read_timeout: Some(Duration::from_secs(5)),
        write_timeout: Duration::from_secs(5),
        ..PeerConfig::default()
    }
}

fn ticket_hello() -> Value {
    json!({
        "target": "tally", "action": "ticket",
        "ticket": {"token": "one-time-token", "expires": "2030-01-01"},
        "from": {"cid": "alice"}
    })
}

fn chit_hello() -> Value {
    json!({"target": "chit", "action": "pend", "object": {"uuid": "c-1", "units": 1500}})
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

async fn join<T>(task: JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("task finished in time")
        .expect("task did not panic")
}

/// What the echo responder saw: the handshake kind, the proved initiator,
/// the first message, the message after it, the handshake hash.
type Seen = (HandshakeKind, AgentId, Option<Value>, Value, Vec<u8>);

/// A responder that accepts one connection, answers it, echoes one message
/// and reports what it saw.
fn echo_responder(listener: TcpListener, key: LocalKey) -> JoinHandle<Result<Seen, String>> {
    tokio::spawn(async move {
        let incoming = accept(&listener, &key, &config())
            .await
            .map_err(|e| e.to_string())?;
        let (kind, remote, hello) = (
            incoming.kind(),
            incoming.remote_agent(),
            incoming.hello().cloned(),
        );
        let mut session = incoming.accept().await.map_err(|e| e.to_string())?;
        let message = session.recv().await.map_err(|e| e.to_string())?;
        session
            .send(&json!({"echo": message}))
            .await
            .map_err(|e| e.to_string())?;
        let hash = session.info().handshake_hash.clone();
        Ok((kind, remote, hello, message, hash))
    })
}

#[tokio::test]
async fn first_contact_uses_ik_and_the_responder_learns_our_key() {
    let (alice, bob) = (agent(1), agent(2));
    let (listener, addr) = bind().await;
    let server = echo_responder(listener, bob.clone());

    let mut session = connect(addr, &alice, &bob.agent(), &ticket_hello(), &config())
        .await
        .expect("connect");
    assert_eq!(session.kind(), HandshakeKind::FirstContact);
    assert_eq!(session.remote_agent(), bob.agent());
    let offer = Envelope {
        target: Some("tally".into()),
        action: Some("offer".into()),
        object: Some(json!({"uuid": "t-1"})),
        ..Envelope::default()
    };
    session.send_envelope(&offer).await.expect("send");
    let echo = session.recv().await.expect("echo");
    assert_eq!(echo, json!({"echo": offer.to_value()}));

    let (kind, remote, hello, message, hash) = join(server).await.expect("responder");
    assert_eq!(kind, HandshakeKind::FirstContact);
    assert_eq!(
        remote,
        alice.agent(),
        "the responder learned our key from IK"
    );
    let hello = hello.expect("the ticket message came in the handshake");
    assert_eq!(hello["ticket"]["token"], "one-time-token");
    assert_eq!(hello["from"]["agent"], alice.agent().to_string());
    assert_eq!(hello["from"]["cid"], "alice");
    assert_eq!(message, offer.to_value());
    assert_eq!(hash, session.info().handshake_hash);
    assert_eq!(hash.len(), 64);
}

#[tokio::test]
async fn reconnection_names_itself_then_uses_kk() {
    let (alice, bob) = (agent(1), agent(2));
    let (listener, addr) = bind().await;
    let server = echo_responder(listener, bob.clone());

    let mut session = connect(addr, &alice, &bob.agent(), &chit_hello(), &config())
        .await
        .expect("connect");
    assert_eq!(session.kind(), HandshakeKind::Reconnect);
    session.send(&json!({"n": 1})).await.expect("send");
    assert_eq!(
        session.recv().await.expect("echo"),
        json!({"echo": {"n": 1}})
    );

    let (kind, remote, hello, _, _) = join(server).await.expect("responder");
    assert_eq!(kind, HandshakeKind::Reconnect);
    assert_eq!(remote, alice.agent());
    assert_eq!(hello.expect("hello")["object"]["units"], 1500);
}

#[tokio::test]
async fn both_halves_work_at_once() {
    let (alice, bob) = (agent(1), agent(2));
    let (listener, addr) = bind().await;
    let bob_key = bob.clone();
    let server = tokio::spawn(async move {
        let incoming = accept(&listener, &bob_key, &config())
            .await
            .expect("accept");
        let (mut tx, mut rx) = incoming.accept().await.expect("session").split();
        let sender = tokio::spawn(async move {
            for n in 0..50 {
                tx.send(&json!({"from": "bob", "n": n}))
                    .await
                    .expect("send");
            }
        });
        let mut seen = Vec::new();
        for _ in 0..50 {
            seen.push(rx.recv().await.expect("recv")["n"].clone());
        }
        join(sender).await;
        seen
    });
    let session = connect(addr, &alice, &bob.agent(), &chit_hello(), &config())
        .await
        .expect("connect");
    let (mut tx, mut rx) = session.split();
    let sender = tokio::spawn(async move {
        for n in 0..50 {
            tx.send(&json!({"from": "alice", "n": n}))
                .await
                .expect("send");
        }
    });
    for n in 0..50 {
        assert_eq!(
            rx.recv().await.expect("recv"),
            json!({"from": "bob", "n": n})
        );
    }
    join(sender).await;
    assert_eq!(
        join(server).await,
        (0..50).map(|n| json!(n)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_wrong_responder_key_is_refused() {
    let (alice, bob, mallory) = (agent(1), agent(2), agent(9));
    for hello in [ticket_hello(), chit_hello()] {
        let (listener, addr) = bind().await;
        let bob_key = bob.clone();
        let server =
            tokio::spawn(async move { accept(&listener, &bob_key, &config()).await.map(|_| ()) });
        // Alice's ticket names Mallory's key, but Bob answers at the address.
        let result = connect(addr, &alice, &mallory.agent(), &hello, &config()).await;
        assert!(matches!(result, Err(ConnectError::Refused)), "{result:?}");
        let server = join(server).await;
        assert!(matches!(server, Err(AcceptError::NotForUs)), "{server:?}");
    }
}

/// A man in the middle that forwards packets both ways and lets the test
/// rewrite them: `to_server` / `to_client` get each packet and return the
/// byte chunks to send on instead.
type Edit = Box<dyn FnMut(Frame) -> Vec<Vec<u8>> + Send>;

fn forward(frame: Frame) -> Vec<Vec<u8>> {
    vec![frame::encode(frame.header, &frame.body).expect("encode")]
}

async fn proxy(upstream: SocketAddr, mut to_server: Edit, mut to_client: Edit) -> SocketAddr {
    let (listener, addr) = bind().await;
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(server) = TcpStream::connect(upstream).await else {
            return;
        };
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let up = tokio::spawn(async move {
            while let Ok(packet) = frame::read_frame(&mut client_read, frame::MAX_FRAME).await {
                for chunk in to_server(packet) {
                    if server_write.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            }
            let _ = server_write.shutdown().await;
        });
        while let Ok(packet) = frame::read_frame(&mut server_read, frame::MAX_FRAME).await {
            for chunk in to_client(packet) {
                if client_write.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        let _ = client_write.shutdown().await;
        let _ = up.await;
    });
    addr
}

/// Runs Alice → proxy → Bob; Bob's side receives up to `reads` messages
/// after the handshake and returns the results.
async fn through_proxy(
    hello: Value,
    to_server: Edit,
    to_client: Edit,
    sends: Vec<Value>,
    reads: usize,
) -> (
    Result<(), ConnectError>,
    Result<Vec<Result<Value, RecvError>>, AcceptError>,
) {
    let (alice, bob) = (agent(1), agent(2));
    let (listener, addr) = bind().await;
    let bob_key = bob.clone();
    let server = tokio::spawn(async move {
        let incoming = accept(&listener, &bob_key, &config()).await?;
        let mut session = incoming.accept().await?;
        let mut results = Vec::new();
        for _ in 0..reads {
            results.push(session.recv().await);
        }
        Ok(results)
    });
    let via = proxy(addr, to_server, to_client).await;
    let client = match connect(via, &alice, &bob.agent(), &hello, &config()).await {
        Ok(mut session) => {
            for message in &sends {
                session.send(message).await.expect("send");
            }
            // Hold the connection open until Bob has read.
            let outcome = join(server).await;
            return (Ok(()), outcome);
        }
        Err(e) => Err(e),
    };
    (client, join(server).await)
}

fn flip_last_byte(mut frame: Frame) -> Frame {
    if let Some(last) = frame.body.last_mut() {
        *last ^= 0x01;
    }
    frame
}

#[tokio::test]
async fn a_tampered_transport_packet_is_refused() {
    let mut count = 0;
    let tamper: Edit = Box::new(move |packet| {
        if packet.header == Header::Transport {
            count += 1;
            if count == 1 {
                return forward(flip_last_byte(packet));
            }
        }
        forward(packet)
    });
    let (client, server) = through_proxy(
        ticket_hello(),
        tamper,
        Box::new(forward),
        vec![json!({"n": 1}), json!({"n": 2})],
        2,
    )
    .await;
    assert!(client.is_ok());
    let results = server.expect("handshake");
    assert!(
        matches!(results[0], Err(RecvError::Decrypt)),
        "{:?}",
        results[0]
    );
    // The session is over: even the genuine second packet is refused.
    assert!(
        matches!(results[1], Err(RecvError::Failed)),
        "{:?}",
        results[1]
    );
}

#[tokio::test]
async fn tampered_handshake_packets_are_refused() {
    // Alice's first packet (I), altered on the way: Bob cannot read it.
    let tamper_i: Edit = Box::new(|packet| forward(flip_last_byte(packet)));
    let (client, server) =
        through_proxy(ticket_hello(), tamper_i, Box::new(forward), vec![], 0).await;
    assert!(matches!(client, Err(ConnectError::Refused)), "{client:?}");
    assert!(matches!(server, Err(AcceptError::NotForUs)), "{server:?}");

    // Bob's A, altered on the way: Alice cannot trust who answered.
    let tamper_a: Edit = Box::new(|packet| forward(flip_last_byte(packet)));
    let (client, _) = through_proxy(chit_hello(), Box::new(forward), tamper_a, vec![], 0).await;
    assert!(
        matches!(client, Err(ConnectError::KeyMismatch)),
        "{client:?}"
    );
    assert_eq!(
        ConnectError::KeyMismatch.to_string(),
        "the peer's key does not match the ticket (its handshake reply did not decrypt)"
    );
}

#[tokio::test]
async fn a_replayed_transport_packet_is_refused() {
    let replay: Edit = Box::new(|packet| {
        let bytes = frame::encode(packet.header, &packet.body).expect("encode");
        if packet.header == Header::Transport {
            vec![bytes.clone(), bytes]
        } else {
            vec![bytes]
        }
    });
    let (client, server) = through_proxy(
        ticket_hello(),
        replay,
        Box::new(forward),
        vec![json!({"pay": 100})],
        2,
    )
    .await;
    assert!(client.is_ok());
    let results = server.expect("handshake");
    assert_eq!(
        results[0].as_ref().expect("the original"),
        &json!({"pay": 100})
    );
    assert!(
        matches!(results[1], Err(RecvError::Decrypt)),
        "{:?}",
        results[1]
    );
}

#[tokio::test]
async fn an_oversize_packet_is_refused_at_its_length() {
    // A connection that announces 4 GiB and sends nothing more: if the
    // responder tried to allocate or read the body it would wait for the
    // handshake timeout (or run out of memory); it answers at once.
    let (listener, addr) = bind().await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client
        .write_all(&[0xff, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    let started = Instant::now();
    let result = accept(&listener, &agent(2), &config()).await;
    assert!(
        matches!(
            result,
            Err(AcceptError::Frame(FrameError::TooLarge {
                declared: 0xffff_ffff,
                ..
            }))
        ),
        "{:?}",
        result.err()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        AcceptError::Frame(FrameError::TooLarge {
            declared: 70000,
            max: 65536
        })
        .to_string()
        .starts_with("frame too large")
    );

    // The same on an open session, and a configured limit below one Noise
    // message is honoured.
    let huge: Edit = Box::new(|packet| {
        if packet.header == Header::Transport {
            vec![0x0001_0001u32.to_be_bytes().to_vec()]
        } else {
            forward(packet)
        }
    });
    let (_, server) =
        through_proxy(ticket_hello(), huge, Box::new(forward), vec![json!({})], 1).await;
    let results = server.expect("handshake");
    assert!(
        matches!(
            results[0],
            Err(RecvError::Frame(FrameError::TooLarge {
                declared: 65537,
                ..
            }))
        ),
        "{:?}",
        results[0]
    );
}

#[tokio::test]
async fn a_message_too_large_for_one_noise_message_is_not_sent() {
    let (alice, bob) = (agent(1), agent(2));
    let (listener, addr) = bind().await;
    let bob_key = bob.clone();
    let server = tokio::spawn(async move {
        let incoming = accept(&listener, &bob_key, &config())
            .await
            .expect("accept");
        let mut session = incoming.accept().await.expect("session");
        let message = session.recv().await.expect("the largest message arrives");
        let len = message.as_str().map(str::len);
        session.send(&json!({"len": len})).await.expect("answer");
    });
    let mut session = connect(addr, &alice, &bob.agent(), &chit_hello(), &config())
        .await
        .expect("connect");
    // A JSON string of MAX_MESSAGE - 1 characters is MAX_MESSAGE + 1 bytes.
    let too_big = json!("x".repeat(MAX_MESSAGE - 1));
    let result = session.send(&too_big).await;
    assert!(
        matches!(result, Err(SendError::TooLarge { size, max: MAX_MESSAGE }) if size == MAX_MESSAGE + 1),
        "{result:?}"
    );
    // Nothing was written: the session still works, at the exact limit.
    let biggest = json!("y".repeat(MAX_MESSAGE - 2));
    session
        .send(&biggest)
        .await
        .expect("the largest message fits");
    assert_eq!(
        session.recv().await.expect("answer"),
        json!({"len": MAX_MESSAGE - 2})
    );
    join(server).await;
}

#[tokio::test]
async fn a_peer_that_stalls_times_out() {
    let quick = PeerConfig {
        handshake_timeout: Duration::from_millis(300),
        read_timeout: Some(Duration::from_millis(300)),
        ..config()
    };

    // An initiator that stops in the middle of its first packet.
    let (listener, addr) = bind().await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client
        .write_all(&[0, 0, 0, 100, b'I', 1, 2])
        .await
        .expect("write");
    let started = Instant::now();
    let result = accept(&listener, &agent(2), &quick).await;
    assert!(
        matches!(result, Err(AcceptError::Timeout)),
        "{:?}",
        result.err()
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(client);

    // A responder that takes the connection and never answers.
    let (silent, addr) = bind().await;
    let hold = tokio::spawn(async move {
        let (mut stream, _) = silent.accept().await.expect("accept");
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut sink)).await;
    });
    let result = connect(addr, &agent(1), &agent(2).agent(), &ticket_hello(), &quick).await;
    assert!(
        matches!(result, Err(ConnectError::Timeout)),
        "{:?}",
        result.err()
    );
    assert_eq!(
        ConnectError::Timeout.to_string().split(" (").next(),
        Some("handshake timed out")
    );
    hold.abort();

    // A session whose peer goes quiet.
    let (listener, addr) = bind().await;
    let bob = agent(2);
    let bob_agent = bob.agent();
    let server_config = quick.clone();
    let server = tokio::spawn(async move {
        let session = accept(&listener, &bob, &server_config)
            .await
            .expect("accept")
            .accept()
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(session);
    });
    let mut session = connect(addr, &agent(1), &bob_agent, &chit_hello(), &quick)
        .await
        .expect("connect");
    assert!(matches!(session.recv().await, Err(RecvError::Timeout)));
    assert!(matches!(session.recv().await, Err(RecvError::Failed)));
    server.abort();
}

/// A tiny deterministic generator, so failures can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test]
async fn garbage_bytes_do_not_panic() {
    let bob = agent(2);
    let quick = PeerConfig {
        handshake_timeout: Duration::from_millis(200),
        ..config()
    };
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let input = match round % 4 {
            // Pure noise.
            0 => {
                let len = (rng.next() % 300) as usize;
                rng.bytes(len)
            }
            // A plausible packet of each kind with a random body.
            _ => {
                let header = [b'I', b'N', b'K', b'T', b'A', b'X'][(rng.next() % 6) as usize];
                let len = (rng.next() % 200) as usize;
                let body = rng.bytes(len);
                let mut packet = ((body.len() + 1) as u32).to_be_bytes().to_vec();
                packet.push(header);
                packet.extend_from_slice(&body);
                if round % 4 == 3 {
                    // Followed by more noise, as if a K came after an N.
                    packet.extend(rng.bytes(64));
                }
                packet
            }
        };
        let (mut ours, theirs) = tokio::io::duplex(1 << 16);
        ours.write_all(&input).await.expect("write");
        drop(ours);
        let result = respond(theirs, &bob, &quick).await;
        assert!(result.is_err(), "round {round}: garbage was accepted");
    }
}

#[tokio::test]
async fn a_message_that_is_not_json_is_reported_and_the_session_goes_on() {
    use snow::Builder;

    // A hand-made initiator (snow directly, no Notch session code) that
    // sends one packet that is not JSON, then one that is.
    let (alice, bob) = (agent(1), agent(2));
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let bob_key = bob.clone();
    let server = tokio::spawn(async move {
        let mut session = respond(theirs, &bob_key, &config())
            .await
            .expect("handshake")
            .accept()
            .await
            .expect("session");
        (
            session.recv().await.map_err(|e| e.to_string()),
            session.recv().await,
        )
    });

    let alice_secret = {
        // The same secret LocalKey holds: the agent key as X25519.
        let phrase = RecoveryPhrase::from_entropy(&[1; 16]).expect("entropy");
        let keys = WalletKeys::new(&phrase.to_seed(""), 0).expect("keys");
        *keys.agent_key().expect("agent").x25519_secret_bytes()
    };
    let bob_agent = bob.agent();
    let mut hs = Builder::new("Noise_IK_25519_ChaChaPoly_BLAKE2b".parse().expect("params"))
        .local_private_key(&alice_secret)
        .and_then(|b| b.remote_public_key(bob_agent.as_bytes()))
        .and_then(|b| b.build_initiator())
        .expect("initiator");
    let hello = json!({"ticket": {"token": "t"}, "from": {"agent": alice.agent().to_string()}});
    let mut buf = vec![0u8; 1024];
    let n = hs
        .write_message(hello.to_string().as_bytes(), &mut buf)
        .expect("msg 1");
    let (mut read, mut write) = tokio::io::split(ours);
    frame::write_frame(&mut write, Header::Initial, &buf[..n])
        .await
        .expect("I");
    let ack = frame::read_frame(&mut read, frame::MAX_FRAME)
        .await
        .expect("A");
    assert_eq!(ack.header, Header::Acknowledge);
    assert_eq!(
        ack.body.len(),
        48,
        "A is e plus the tag of an empty payload"
    );
    let mut payload = vec![0u8; 64];
    assert_eq!(
        hs.read_message(&ack.body, &mut payload)
            .expect("A decrypts"),
        0
    );
    // MyCHIPs's key assignment (see notch_core::peer's handshake module):
    // the initiator sends with the second key of Split().
    let (first, second) = hs.dangerously_get_raw_split();
    let mut transport = hs.into_stateless_transport_mode().expect("transport");
    transport.rekey_manually(Some(&second), Some(&first));
    for (nonce, plain) in [&b"not json {"[..], &br#"{"ok":true}"#[..]]
        .into_iter()
        .enumerate()
    {
        let n = transport
            .write_message(nonce as u64, plain, &mut buf)
            .expect("seal");
        frame::write_frame(&mut write, Header::Transport, &buf[..n])
            .await
            .expect("T");
    }
    let (first, second) = join(server).await;
    assert!(
        first
            .expect_err("not JSON")
            .starts_with("message is not JSON")
    );
    assert_eq!(second.expect("the session went on"), json!({"ok": true}));
}

#[tokio::test]
async fn connect_over_any_stream() {
    let (alice, bob) = (agent(1), agent(2));
    let (a, b) = tokio::io::duplex(1 << 16);
    let bob_key = bob.clone();
    let server = tokio::spawn(async move {
        let mut session = respond(b, &bob_key, &config())
            .await
            .expect("handshake")
            .accept()
            .await
            .expect("session");
        session.recv_envelope().await.expect("envelope")
    });
    let mut session = connect_over(a, &alice, &bob.agent(), &ticket_hello(), &config())
        .await
        .expect("connect");
    session
        .send(&json!({"target": "tally", "action": "offer", "sub": "kept"}))
        .await
        .expect("send");
    let envelope = join(server).await;
    assert_eq!(envelope.action.as_deref(), Some("offer"));
    assert_eq!(envelope.extra.get("sub"), Some(&json!("kept")));
}

/// The packets of docs/PROTOCOL.md's vectors; `tests/interop/mychips-noise/
/// vector.js` makes the same bytes with MyCHIPs's Noise library.
pub const VECTOR_IK: [&str; 4] = [
    "000000f449ff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6b3fed61f2afadd88d751fd7cc77a3992014962b1d6d3e07b382e431109e4435a2beb5d4e6a232336134368fdfa06ab0655d4c07057c829217f3cf233de9416f6c955b53bbd183507a428b1c4d1578d14fc4e03f995c954f75d8184c49a1b107d27e9475f1845ecf49529594d789034fe62fc8eb94d2744f1df5babb99f8d7fc7d79b89bfb5c4295a3a1aceb5ad654df7f6494f1c6b037dc765d32091becaffcd5d9ede616d7eebadcd5a04e9e125fab9f1cea1a6dc70e37bb2fca556f9425f62122a7243d9f9dc4e53fd0b6ef74598b3e13ae1a",
    "000000314138ab664bd86f77d7e66bdd9ae0792913a94fd8b33a1260027e4b46c1f4884c67dc17d82261424ae986bb52f9abab94ea",
    "0000004f54d585a6998f3644fd7f7f3ba8d5b52363eae04b609a8a08bc4da7a0b2cfd1648919d083d57883acccb56030b9636829cd1009a305899a53d7f7838d0a97f953d499f711567938d05ed512759fc7f8",
    "00000033545dcbcc40eba36253de24aecc2870f9040b2612eb93073517d9ddf75ab58e6b3dd78b7a69729ef5cd585b65b317951e6d44f2",
];

pub const VECTOR_KK: [&str; 5] = [
    "0000005e4e7b0d47d93427f8311160781c7c733fd89f88970aef490d8aa0ee19a4cb8a1b149228ae3aa32564cf607117aca941402102b0003cee2d14d66dfb2c126aee11a363d758f2d3c8389331becd3532727cabf46c037179c883e37635f07f83",
    "000000b74bff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6bf0916867e88575eec8a93df443f05fd39d31e5c556b472435d1ab92e49594ffb812a10e568485264cd07b3a7ffc697dc67be7822dc8e26a4624829381adc664a8b4b697e56dd83493f70dc0d53010f650921c2237733fa36123acb908cef07377ff12fa46511b49f3181f0217a4e30cc5d050748dfe6717483b4b4a0f21572527f47e8bb85b6e8af9586cca9b985ec12181ce1a8ac97",
    "000000314138ab664bd86f77d7e66bdd9ae0792913a94fd8b33a1260027e4b46c1f4884c67f90559f335eee8dd4182811df9b8517b",
    "0000004f54c0a51f29cc0b11c770cb01350a28d013f81cc48db53befdd1e49ac84866fbcd8183c909815aef55962c3490d059defe3d337bfba4e0cce58e20d8e2dd009d16de61c719f25de31141e81e15930d4",
    "00000033541906d67674e24728c8bc3aa2a960e25244c7436d9fc744315eada45f60e4e038cdc567a87b3a6c34b8a880401f968f4a75bf",
];

fn vector_keys() -> vector::VectorKeys {
    vector::VectorKeys {
        initiator_static: [0x11; 32],
        responder_static: [0x22; 32],
        identify_ephemeral: [0x33; 32],
        initiator_ephemeral: [0x44; 32],
        responder_ephemeral: [0x55; 32],
    }
}

#[test]
fn the_protocol_vectors_hold() {
    let initiator = LocalKey::from_x25519_secret([0x11; 32]).agent().to_string();
    let first = json!({"action": "offer", "object": {"memo": "vector"}, "target": "tally"});
    let answer = json!({"action": "open", "target": "tally"});
    let ik_hello = json!({
        "action": "ticket", "from": {"agent": initiator, "cid": "alice"},
        "target": "tally", "ticket": {"token": "vector-token"}
    });
    let kk_hello = json!({
        "action": "pend", "from": {"agent": initiator, "cid": "alice"},
        "object": {"units": 1500}, "target": "chit"
    });
    for (hello, expected) in [(ik_hello, &VECTOR_IK[..]), (kk_hello, &VECTOR_KK[..])] {
        let packets =
            vector::transcript(&vector_keys(), &hello, &first, &answer).expect("transcript");
        let hex: Vec<String> = packets.iter().map(hex::encode).collect();
        assert_eq!(hex, expected);
    }
}
