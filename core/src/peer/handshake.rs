//! The handshakes, as MyCHIPs runs them (`lib/peernoise.js`), without I/O:
//! packets in, packets out. [`super::session`] moves them over a socket.
//!
//! First contact (the initiator has the responder's key from a ticket and
//! the responder knows nothing of the initiator):
//!
//! ```text
//! initiator                                   responder
//!   I  Noise_IK msg 1, payload = the ticket message (JSON)  ->
//!                                   <-  A  Noise_IK msg 2, empty payload
//! ```
//!
//! Reconnection (both know each other, but the responder cannot tell who is
//! connecting before Noise needs the initiator's static key, so the
//! initiator first names itself in a one-way N message):
//!
//! ```text
//!   N  Noise_N msg, payload = JSON string of the initiator's agent id  ->
//!   K  Noise_KK msg 1, payload = the first message (JSON)               ->
//!                                   <-  A  Noise_KK msg 2, empty payload
//! ```
//!
//! The responder chooses by the first header byte (`I` or `N`), as MyCHIPs's
//! `fromInitiator` does; the initiator chooses by the message it opens with
//! ([`Envelope::is_first_contact`](super::Envelope::is_first_contact)), as
//! MyCHIPs's `initiate` does. The prologue is empty (`noisewrap.js`:
//! `prolog = Buffer.alloc(0)`).
//!
//! One deliberate departure from the Noise spec, because MyCHIPs's library
//! makes it: the two transport keys are swapped (see `established`).
//!
//! Unlike MyCHIPs, which logs and carries on, every failure here ends the
//! handshake with a typed error, and a responder checks that the agent a
//! message declares (`from.agent`) is the key the handshake proved.

use serde_json::Value;
use snow::params::NoiseParams;
use snow::{Builder, HandshakeState, StatelessTransportState};
use zeroize::Zeroizing;

use super::envelope::{is_truthy, value_is_first_contact};
use super::frame::{self, Frame, FrameError, Header, MAX_NOISE_MESSAGE};
use super::identity::{AgentId, AgentIdError, LocalKey};

pub(crate) const IK: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2b";
pub(crate) const KK: &str = "Noise_KK_25519_ChaChaPoly_BLAKE2b";
pub(crate) const N: &str = "Noise_N_25519_ChaChaPoly_BLAKE2b";

const DH_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// `e, es, s, ss` + payload tag.
const IK1_OVERHEAD: usize = DH_LEN + DH_LEN + TAG_LEN + TAG_LEN;
/// `e, es(, ss)` or `e, ee, se` + payload tag: N, KK message 1, message 2.
const E_OVERHEAD: usize = DH_LEN + TAG_LEN;
/// Transport messages: the tag only.
pub(crate) const TRANSPORT_OVERHEAD: usize = TAG_LEN;

/// Which handshake opened a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeKind {
    /// `Noise_IK`: first contact with a ticket; the responder learned the
    /// initiator's key from the handshake.
    FirstContact,
    /// `Noise_N` naming the initiator, then `Noise_KK`: both already knew
    /// each other's key.
    Reconnect,
}

impl HandshakeKind {
    pub fn noise_pattern(self) -> &'static str {
        match self {
            HandshakeKind::FirstContact => IK,
            HandshakeKind::Reconnect => KK,
        }
    }
}

/// Why opening a session to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("could not connect to the peer: {0}")]
    Connect(#[source] std::io::Error),
    #[error("handshake timed out (the peer may not hold the key we expected, or it ignored us)")]
    Timeout,
    #[error(
        "the peer closed the connection during the handshake (it may not hold the key we expected, or it refused the ticket)"
    )]
    Refused,
    #[error("the peer's key does not match the ticket (its handshake reply did not decrypt)")]
    KeyMismatch,
    #[error("the first message must be a JSON object")]
    HelloNotObject,
    #[error("the first message is {size} bytes; at most {max} fit in the handshake")]
    HelloTooLarge { size: usize, max: usize },
    #[error("the peer answered the handshake with a {0} packet instead of A (acknowledgement)")]
    UnexpectedReply(Header),
    #[error("the peer's handshake reply is not JSON: {0}")]
    ReplyNotJson(#[source] serde_json::Error),
    #[error("{0}")]
    Frame(#[source] FrameError),
    #[error("noise: {0}")]
    Noise(#[source] snow::Error),
}

/// Why answering a peer's connection failed. The connection is closed
/// without a word, as MyCHIPs's `learn-noise.md` asks of a failed initiation.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("could not accept a connection: {0}")]
    Accept(#[source] std::io::Error),
    #[error("handshake timed out")]
    Timeout,
    #[error("the peer closed the connection during the handshake")]
    Closed,
    #[error("a {0} packet cannot open a connection (expected I or N)")]
    UnexpectedFirst(Header),
    #[error("expected K (reconnection) after N, got a {0} packet")]
    UnexpectedAfterIdentify(Header),
    #[error(
        "the peer's handshake did not decrypt: it was not made for our key, the peer does not hold the key it declared, or it was tampered with"
    )]
    NotForUs,
    #[error("message is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("the declared agent is not valid: {0}")]
    BadAgent(#[source] AgentIdError),
    #[error("the peer's identity packet (N) must carry its agent id as a JSON string")]
    IdentityNotString,
    #[error("a first-contact message must be a JSON object with a ticket and a from address")]
    NoTicket,
    #[error("the peer declared agent {declared} but proved key {proved}")]
    DeclaredAgentMismatch { declared: AgentId, proved: AgentId },
    #[error("{0}")]
    Frame(#[source] FrameError),
    #[error("noise: {0}")]
    Noise(#[source] snow::Error),
}

/// A finished handshake: the transport keys and who is at the other end.
pub(crate) struct Established {
    pub transport: StatelessTransportState,
    pub remote: AgentId,
    pub kind: HandshakeKind,
    pub handshake_hash: Vec<u8>,
}

/// Ephemeral keys fixed for test vectors; `None` everywhere in real use.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fixed<'a> {
    pub identify: Option<&'a [u8; 32]>,
    pub handshake: Option<&'a [u8; 32]>,
}

fn params(name: &str) -> Result<NoiseParams, snow::Error> {
    name.parse()
}

fn builder<'a>(
    name: &str,
    local: Option<&'a LocalKey>,
    remote: Option<&'a AgentId>,
    ephemeral: Option<&'a [u8; 32]>,
) -> Result<Builder<'a>, snow::Error> {
    let mut b = super::resolver::noise_builder(params(name)?).prologue(&[])?;
    if let Some(local) = local {
        b = b.local_private_key(local.secret())?;
    }
    if let Some(remote) = remote {
        b = b.remote_public_key(remote.as_bytes())?;
    }
    if let Some(e) = ephemeral {
        b = b.fixed_ephemeral_key_for_testing_only(e);
    }
    Ok(b)
}

/// Writes one handshake message; `None` if it would not fit in one Noise
/// message.
fn write(
    hs: &mut HandshakeState,
    payload: &[u8],
    overhead: usize,
) -> Result<Option<Vec<u8>>, snow::Error> {
    let len = payload.len() + overhead;
    if len > MAX_NOISE_MESSAGE {
        return Ok(None);
    }
    let mut out = vec![0u8; len];
    let written = hs.write_message(payload, &mut out)?;
    out.truncate(written);
    Ok(Some(out))
}

fn read(hs: &mut HandshakeState, message: &[u8]) -> Result<Vec<u8>, snow::Error> {
    let mut payload = vec![0u8; message.len()];
    let n = hs.read_message(message, &mut payload)?;
    payload.truncate(n);
    Ok(payload)
}

/// The transport keys, as MyCHIPs's library assigns them.
///
/// The Noise spec has the initiator send with the first key of `Split()`
/// and the responder with the second (snow does). npm `noise-protocol`
/// instead gives the first key to whoever wrote the last handshake message
/// (`split(ss, tx, rx)` in `writeMessage`, `split(ss, rx, tx)` in
/// `readMessage`); in IK and KK that is the responder, and MyCHIPs encrypts
/// with `split.tx`. So on the MyCHIPs wire the initiator sends with the
/// *second* key and the responder with the first: swap snow's two.
fn established(
    mut hs: HandshakeState,
    remote: AgentId,
    kind: HandshakeKind,
) -> Result<Established, snow::Error> {
    let handshake_hash = hs.get_handshake_hash().to_vec();
    let (first, second) = hs.dangerously_get_raw_split();
    let (first, second) = (Zeroizing::new(first), Zeroizing::new(second));
    let mut transport = hs.into_stateless_transport_mode()?;
    // rekey_manually(initiator-egress, responder-egress)
    transport.rekey_manually(Some(&second), Some(&first));
    Ok(Established {
        transport,
        remote,
        kind,
        handshake_hash,
    })
}

// ---- initiator ------------------------------------------------------------

/// The initiator after sending its first packets, waiting for `A`.
pub(crate) struct PendingInitiator {
    hs: HandshakeState,
    remote: AgentId,
    kind: HandshakeKind,
}

/// Starts a handshake: the encoded packets to send (`I`, or `N` then `K`)
/// and the state that reads the answer.
pub(crate) fn initiate(
    local: &LocalKey,
    remote: &AgentId,
    hello: &Value,
    fixed: Fixed<'_>,
) -> Result<(Vec<Vec<u8>>, PendingInitiator), ConnectError> {
    let hello = with_our_agent(hello, local)?;
    let kind = if value_is_first_contact(&hello) {
        HandshakeKind::FirstContact
    } else {
        HandshakeKind::Reconnect
    };
    let mut packets = Vec::with_capacity(2);

    if kind == HandshakeKind::Reconnect {
        // MyCHIPs: spewNoise('N', JSON.stringify(this.manager.agent), ns)
        let id = Value::String(local.agent().to_string())
            .to_string()
            .into_bytes();
        let mut ns = builder(N, None, Some(remote), fixed.identify)
            .and_then(Builder::build_initiator)
            .map_err(ConnectError::Noise)?;
        let message = write(&mut ns, &id, E_OVERHEAD)
            .map_err(ConnectError::Noise)?
            .ok_or(ConnectError::HelloTooLarge {
                size: id.len(),
                max: MAX_NOISE_MESSAGE - E_OVERHEAD,
            })?;
        packets.push(frame::encode(Header::Identify, &message).map_err(ConnectError::Frame)?);
    }

    let (pattern, header, overhead) = match kind {
        HandshakeKind::FirstContact => (IK, Header::Initial, IK1_OVERHEAD),
        HandshakeKind::Reconnect => (KK, Header::Known, E_OVERHEAD),
    };
    let payload = hello.to_string().into_bytes();
    let mut hs = builder(pattern, Some(local), Some(remote), fixed.handshake)
        .and_then(Builder::build_initiator)
        .map_err(ConnectError::Noise)?;
    let message = write(&mut hs, &payload, overhead)
        .map_err(ConnectError::Noise)?
        .ok_or(ConnectError::HelloTooLarge {
            size: payload.len(),
            max: MAX_NOISE_MESSAGE - overhead,
        })?;
    packets.push(frame::encode(header, &message).map_err(ConnectError::Frame)?);

    Ok((
        packets,
        PendingInitiator {
            hs,
            remote: *remote,
            kind,
        },
    ))
}

/// MyCHIPs: `Object.assign(messageObj.from, this.manager.chad)`: the
/// message always names its sender's agent, whatever the caller put there.
fn with_our_agent(hello: &Value, local: &LocalKey) -> Result<Value, ConnectError> {
    let mut hello = hello.clone();
    let object = hello.as_object_mut().ok_or(ConnectError::HelloNotObject)?;
    let from = object
        .entry("from")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !from.is_object() {
        *from = Value::Object(serde_json::Map::new());
    }
    if let Some(from) = from.as_object_mut() {
        from.insert("agent".into(), Value::String(local.agent().to_string()));
    }
    Ok(hello)
}

impl PendingInitiator {
    /// Reads the responder's `A`; the session keys, and the payload of `A`
    /// if the responder sent one (MyCHIPs sends none).
    pub fn finish(mut self, reply: Frame) -> Result<(Established, Option<Value>), ConnectError> {
        if reply.header != Header::Acknowledge {
            return Err(ConnectError::UnexpectedReply(reply.header));
        }
        let payload = read(&mut self.hs, &reply.body).map_err(|e| match e {
            snow::Error::Decrypt | snow::Error::Input | snow::Error::Dh => {
                ConnectError::KeyMismatch
            }
            other => ConnectError::Noise(other),
        })?;
        let extra = if payload.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(&payload).map_err(ConnectError::ReplyNotJson)?)
        };
        let done = established(self.hs, self.remote, self.kind).map_err(ConnectError::Noise)?;
        Ok((done, extra))
    }
}

// ---- responder ------------------------------------------------------------

/// What the first packet of a connection led to.
pub(crate) enum FirstPacket {
    /// An `I`: the handshake's first message is read.
    Ready(Box<ReadyResponder>),
    /// An `N`: the initiator named itself; its `K` comes next.
    Identified(IdentifiedInitiator),
}

/// After `N`: the agent the initiator claims to be, not yet proved.
pub(crate) struct IdentifiedInitiator {
    declared: AgentId,
}

/// The responder with the initiator's first message read and its key
/// proved, before it answers with `A`.
pub(crate) struct ReadyResponder {
    hs: HandshakeState,
    pub remote: AgentId,
    pub kind: HandshakeKind,
    pub hello: Option<Value>,
}

fn read_as_responder(hs: &mut HandshakeState, body: &[u8]) -> Result<Vec<u8>, AcceptError> {
    read(hs, body).map_err(|e| match e {
        snow::Error::Decrypt | snow::Error::Input | snow::Error::Dh => AcceptError::NotForUs,
        other => AcceptError::Noise(other),
    })
}

/// Reads the first packet of a connection.
pub(crate) fn respond_first(
    local: &LocalKey,
    packet: Frame,
    ephemeral: Option<&[u8; 32]>,
) -> Result<FirstPacket, AcceptError> {
    match packet.header {
        Header::Initial => {
            let mut hs = builder(IK, Some(local), None, ephemeral)
                .and_then(Builder::build_responder)
                .map_err(AcceptError::Noise)?;
            let payload = read_as_responder(&mut hs, &packet.body)?;
            let remote = hs
                .get_remote_static()
                .and_then(AgentId::from_slice)
                .ok_or(AcceptError::NotForUs)?;
            let hello: Value = serde_json::from_slice(&payload).map_err(AcceptError::NotJson)?;
            // MyCHIPs: `if (!data || !data.ticket || !data.from) return`
            let has = |key: &str| hello.get(key).is_some_and(is_truthy);
            if !hello.is_object() || !has("ticket") || !has("from") {
                return Err(AcceptError::NoTicket);
            }
            check_declared(&hello, remote)?;
            Ok(FirstPacket::Ready(Box::new(ReadyResponder {
                hs,
                remote,
                kind: HandshakeKind::FirstContact,
                hello: Some(hello),
            })))
        }
        Header::Identify => {
            let mut ns = builder(N, Some(local), None, None)
                .and_then(Builder::build_responder)
                .map_err(AcceptError::Noise)?;
            let payload = read_as_responder(&mut ns, &packet.body)?;
            let id: Value = serde_json::from_slice(&payload).map_err(AcceptError::NotJson)?;
            let text = id.as_str().ok_or(AcceptError::IdentityNotString)?;
            let declared = AgentId::parse(text).map_err(AcceptError::BadAgent)?;
            Ok(FirstPacket::Identified(IdentifiedInitiator { declared }))
        }
        other => Err(AcceptError::UnexpectedFirst(other)),
    }
}

impl IdentifiedInitiator {
    /// Reads `K`: KK with the declared key, which proves it.
    pub fn known(
        self,
        local: &LocalKey,
        packet: Frame,
        ephemeral: Option<&[u8; 32]>,
    ) -> Result<ReadyResponder, AcceptError> {
        if packet.header != Header::Known {
            return Err(AcceptError::UnexpectedAfterIdentify(packet.header));
        }
        let mut hs = builder(KK, Some(local), Some(&self.declared), ephemeral)
            .and_then(Builder::build_responder)
            .map_err(AcceptError::Noise)?;
        let payload = read_as_responder(&mut hs, &packet.body)?;
        let hello = if payload.is_empty() {
            None
        } else {
            let hello: Value = serde_json::from_slice(&payload).map_err(AcceptError::NotJson)?;
            check_declared(&hello, self.declared)?;
            Some(hello)
        };
        Ok(ReadyResponder {
            hs,
            remote: self.declared,
            kind: HandshakeKind::Reconnect,
            hello,
        })
    }
}

/// MyCHIPs's `keyCheck` only logs a "public key discrepancy"; Notch refuses
/// a message whose `from.agent` is not the key that signed the handshake.
fn check_declared(hello: &Value, proved: AgentId) -> Result<(), AcceptError> {
    let Some(agent) = hello.get("from").and_then(|from| from.get("agent")) else {
        return Ok(());
    };
    let text = agent
        .as_str()
        .ok_or(AcceptError::BadAgent(AgentIdError::NotBase64(
            agent.to_string(),
        )))?;
    let declared = AgentId::parse(text).map_err(AcceptError::BadAgent)?;
    if declared != proved {
        return Err(AcceptError::DeclaredAgentMismatch { declared, proved });
    }
    Ok(())
}

impl ReadyResponder {
    /// Writes `A` (empty payload, as MyCHIPs's `spewNoise()`), which
    /// completes the handshake: the encoded packet and the session keys.
    pub fn acknowledge(mut self) -> Result<(Vec<u8>, Established), AcceptError> {
        let message = write(&mut self.hs, &[], E_OVERHEAD)
            .map_err(AcceptError::Noise)?
            .ok_or(AcceptError::Frame(FrameError::TooLarge {
                declared: 0,
                max: MAX_NOISE_MESSAGE,
            }))?;
        let packet = frame::encode(Header::Acknowledge, &message).map_err(AcceptError::Frame)?;
        let done = established(self.hs, self.remote, self.kind).map_err(AcceptError::Noise)?;
        Ok((packet, done))
    }
}

// ---- test vectors ---------------------------------------------------------

/// Deterministic transcripts for docs/PROTOCOL.md and the interop test:
/// real Noise is randomized by its ephemeral keys, so these fix them. Not
/// for anything but vectors.
#[doc(hidden)]
pub mod vector {
    use serde_json::Value;

    use super::{FirstPacket, Fixed, initiate, respond_first};
    use crate::peer::frame::{self, Header};
    use crate::peer::identity::LocalKey;

    /// Every key of a transcript.
    pub struct VectorKeys {
        pub initiator_static: [u8; 32],
        pub responder_static: [u8; 32],
        /// The N message's ephemeral key (reconnection only).
        pub identify_ephemeral: [u8; 32],
        pub initiator_ephemeral: [u8; 32],
        pub responder_ephemeral: [u8; 32],
    }

    /// The packets of one connection in wire order (each with its length
    /// prefix): `I` or `N`+`K`, then `A`, then one `T` from the initiator
    /// carrying `first` and one `T` from the responder carrying `answer`.
    pub fn transcript(
        keys: &VectorKeys,
        hello: &Value,
        first: &Value,
        answer: &Value,
    ) -> Result<Vec<Vec<u8>>, String> {
        let initiator = LocalKey::from_x25519_secret(keys.initiator_static);
        let responder = LocalKey::from_x25519_secret(keys.responder_static);
        let fixed = Fixed {
            identify: Some(&keys.identify_ephemeral),
            handshake: Some(&keys.initiator_ephemeral),
        };
        let (mut packets, pending) =
            initiate(&initiator, &responder.agent(), hello, fixed).map_err(|e| e.to_string())?;

        let mut frames = packets.iter().map(|p| frame::decode(p, frame::MAX_FRAME));
        let mut next = || match frames.next() {
            Some(Ok(Some((frame, _)))) => Ok(frame),
            _ => Err("a packet did not decode".to_owned()),
        };
        let ready = match respond_first(&responder, next()?, Some(&keys.responder_ephemeral))
            .map_err(|e| e.to_string())?
        {
            FirstPacket::Ready(ready) => *ready,
            FirstPacket::Identified(id) => id
                .known(&responder, next()?, Some(&keys.responder_ephemeral))
                .map_err(|e| e.to_string())?,
        };
        let (ack, responder_done) = ready.acknowledge().map_err(|e| e.to_string())?;
        let ack_frame = match frame::decode(&ack, frame::MAX_FRAME) {
            Ok(Some((frame, _))) => frame,
            _ => return Err("A did not decode".into()),
        };
        packets.push(ack);
        let (initiator_done, _) = pending.finish(ack_frame).map_err(|e| e.to_string())?;

        let seal = |transport: &snow::StatelessTransportState, message: &Value| {
            let plain = serde_json::to_vec(message).map_err(|e| e.to_string())?;
            let mut out = vec![0u8; plain.len() + super::TRANSPORT_OVERHEAD];
            let n = transport
                .write_message(0, &plain, &mut out)
                .map_err(|e| e.to_string())?;
            out.truncate(n);
            frame::encode(Header::Transport, &out).map_err(|e| e.to_string())
        };
        packets.push(seal(&initiator_done.transport, first)?);
        packets.push(seal(&responder_done.transport, answer)?);
        Ok(packets)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(byte: u8) -> LocalKey {
        LocalKey::from_x25519_secret([byte; 32])
    }

    fn decode(packet: &[u8]) -> Frame {
        match frame::decode(packet, frame::MAX_FRAME) {
            Ok(Some((frame, _))) => frame,
            other => panic!("bad packet: {other:?}"),
        }
    }

    fn handshake(hello: Value) -> (Established, Established, Option<Value>) {
        let (a, b) = (key(1), key(2));
        let (packets, pending) =
            initiate(&a, &b.agent(), &hello, Fixed::default()).expect("initiate");
        let mut frames = packets.iter().map(|p| decode(p));
        let ready = match respond_first(&b, frames.next().expect("first"), None).expect("first") {
            FirstPacket::Ready(r) => *r,
            FirstPacket::Identified(id) => id
                .known(&b, frames.next().expect("K"), None)
                .expect("known"),
        };
        let hello = ready.hello.clone();
        let (ack, responder) = ready.acknowledge().expect("ack");
        let (initiator, extra) = pending.finish(decode(&ack)).expect("finish");
        assert!(extra.is_none());
        (initiator, responder, hello)
    }

    #[test]
    fn first_contact_uses_ik_and_proves_the_initiator() {
        let hello = json!({"target": "tally", "action": "ticket", "ticket": {"token": "t"}});
        let (i, r, seen) = handshake(hello);
        assert_eq!(i.kind, HandshakeKind::FirstContact);
        assert_eq!(r.remote, key(1).agent());
        assert_eq!(i.remote, key(2).agent());
        assert_eq!(i.handshake_hash, r.handshake_hash);
        let seen = seen.expect("hello");
        assert_eq!(seen["from"]["agent"], json!(key(1).agent().to_string()));
    }

    #[test]
    fn other_messages_reconnect_with_n_then_kk() {
        let (packets, _) = initiate(
            &key(1),
            &key(2).agent(),
            &json!({"target": "chit"}),
            Fixed::default(),
        )
        .expect("initiate");
        let headers: Vec<_> = packets.iter().map(|p| decode(p).header).collect();
        assert_eq!(headers, [Header::Identify, Header::Known]);
        let (i, r, _) = handshake(json!({"target": "chit", "action": "pend"}));
        assert_eq!(
            (i.kind, r.kind),
            (HandshakeKind::Reconnect, HandshakeKind::Reconnect)
        );
        assert_eq!(r.remote, key(1).agent());
    }

    #[test]
    fn a_ticket_for_someone_else_does_not_decrypt() {
        let hello = json!({"target": "tally", "action": "ticket", "ticket": {"token": "t"}});
        let (packets, _) =
            initiate(&key(1), &key(3).agent(), &hello, Fixed::default()).expect("initiate");
        let result = respond_first(&key(2), decode(&packets[0]), None);
        assert!(matches!(result, Err(AcceptError::NotForUs)));
    }

    #[test]
    fn a_reconnection_from_an_impostor_fails_at_k() {
        // The impostor (key 9) names agent 1 in N but cannot make KK as 1.
        let victim = key(1).agent();
        let responder = key(2);
        let (packets, _) = initiate(
            &key(9),
            &responder.agent(),
            &json!({"target": "chit"}),
            Fixed::default(),
        )
        .expect("initiate");
        let mut ns = builder(N, None, Some(&responder.agent()), None)
            .and_then(Builder::build_initiator)
            .expect("n");
        let id = serde_json::to_vec(&victim.to_string()).expect("json");
        let forged_n = write(&mut ns, &id, E_OVERHEAD)
            .expect("write")
            .expect("fits");
        let identified = match respond_first(
            &responder,
            Frame {
                header: Header::Identify,
                body: forged_n,
            },
            None,
        ) {
            Ok(FirstPacket::Identified(id)) => id,
            _ => panic!("N should be accepted"),
        };
        let result = identified.known(&responder, decode(&packets[1]), None);
        assert!(matches!(result, Err(AcceptError::NotForUs)));
    }

    #[test]
    fn refuses_a_declared_agent_that_was_not_proved() {
        let hello = json!({
            "target": "tally", "action": "ticket", "ticket": {"token": "t"},
            "from": {"agent": key(7).agent().to_string()}
        });
        // initiate() overwrites from.agent, so forge the I packet by hand.
        let mut hs = builder(IK, Some(&key(1)), Some(&key(2).agent()), None)
            .and_then(Builder::build_initiator)
            .expect("ik");
        let payload = serde_json::to_vec(&hello).expect("json");
        let body = write(&mut hs, &payload, IK1_OVERHEAD)
            .expect("write")
            .expect("fits");
        let result = respond_first(
            &key(2),
            Frame {
                header: Header::Initial,
                body,
            },
            None,
        );
        assert!(
            matches!(result, Err(AcceptError::DeclaredAgentMismatch { .. })),
            "{:?}",
            result.err()
        );
    }

    #[test]
    fn first_contact_needs_a_ticket_and_a_from() {
        let mut hs = builder(IK, Some(&key(1)), Some(&key(2).agent()), None)
            .and_then(Builder::build_initiator)
            .expect("ik");
        let body = write(&mut hs, br#"{"target":"tally"}"#, IK1_OVERHEAD)
            .expect("write")
            .expect("fits");
        let result = respond_first(
            &key(2),
            Frame {
                header: Header::Initial,
                body,
            },
            None,
        );
        assert!(matches!(result, Err(AcceptError::NoTicket)));
    }

    #[test]
    fn refuses_a_hello_that_does_not_fit() {
        let big = json!({"target": "chit", "pad": "x".repeat(MAX_NOISE_MESSAGE)});
        let result = initiate(&key(1), &key(2).agent(), &big, Fixed::default());
        assert!(matches!(result, Err(ConnectError::HelloTooLarge { .. })));
        let result = initiate(&key(1), &key(2).agent(), &json!([1]), Fixed::default());
        assert!(matches!(result, Err(ConnectError::HelloNotObject)));
    }
}
