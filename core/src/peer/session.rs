//! Sessions over a byte stream (TCP in practice): the handshake under a
//! deadline, then JSON messages in `T` packets.
//!
//! Every read from the network is bounded: the handshake by
//! [`PeerConfig::handshake_timeout`], each message by
//! [`PeerConfig::read_timeout`], each packet by [`PeerConfig::max_frame`],
//! each write by [`PeerConfig::write_timeout`]. Any failure on an open
//! session is final: a packet that does not decrypt (tampered with, replayed,
//! reordered) or a timeout in the middle of a packet leaves the two nonce
//! counters or the stream out of step, so the half that saw it refuses
//! everything after it and the caller opens a new session.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use super::envelope::Envelope;
use super::frame::{self, FrameError, Header, MAX_FRAME, MAX_NOISE_MESSAGE};
use super::handshake::{
    AcceptError, ConnectError, Established, FirstPacket, Fixed, HandshakeKind, ReadyResponder,
    TRANSPORT_OVERHEAD, initiate, respond_first,
};
use super::identity::{AgentId, LocalKey};

/// The largest JSON message one `T` packet carries. MyCHIPs does not split
/// messages across packets, so neither does Notch.
pub const MAX_MESSAGE: usize = MAX_NOISE_MESSAGE - TRANSPORT_OVERHEAD;

/// Limits and deadlines of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// From TCP connect (or the first byte, when answering) to the end of
    /// the handshake.
    pub handshake_timeout: Duration,
    /// How long [`Session::recv`] waits for a message; `None` waits for ever.
    /// MyCHIPs's responder closes a connection idle for 60 s
    /// (`DefaultTimeout = 60000` in `peernoise.js`), so that is the default.
    pub read_timeout: Option<Duration>,
    /// How long one write may wait for the peer to take the bytes.
    pub write_timeout: Duration,
    /// The largest packet accepted (length field). Capped at [`MAX_FRAME`],
    /// which is one whole Noise message.
    pub max_frame: usize,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            read_timeout: Some(Duration::from_secs(60)),
            write_timeout: Duration::from_secs(30),
            max_frame: MAX_FRAME,
        }
    }
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("message too large: {size} bytes of JSON, at most {max} fit in one Noise message")]
    TooLarge { size: usize, max: usize },
    #[error("the message could not be sent within the write timeout")]
    Timeout,
    #[error("could not send: {0}")]
    Frame(#[source] FrameError),
    #[error("this session already failed; open a new one")]
    Failed,
    #[error("noise: {0}")]
    Noise(#[source] snow::Error),
}

/// Why no message could be received.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("no message arrived within the read timeout")]
    Timeout,
    #[error("{0}")]
    Frame(#[source] FrameError),
    #[error("unexpected {0} packet on an open session (only T carries messages)")]
    UnexpectedHeader(Header),
    #[error("a packet did not decrypt: it was tampered with, replayed or reordered")]
    Decrypt,
    #[error("message is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("message is not a MyCHIPs envelope: {0}")]
    NotEnvelope(#[source] serde_json::Error),
    #[error("this session already failed; open a new one")]
    Failed,
}

/// Opens a session to the agent `remote` at `addr`, with `hello` as the
/// first message (it travels inside the handshake).
///
/// As in MyCHIPs, `hello` decides the handshake: a `tally`/`ticket` message
/// with a ticket is a first contact (IK); anything else is a reconnection
/// (N, then KK), which the peer only answers if it already knows us. Its
/// `from.agent` is set to our agent id.
pub async fn connect<A: ToSocketAddrs>(
    addr: A,
    local: &LocalKey,
    remote: &AgentId,
    hello: &Value,
    config: &PeerConfig,
) -> Result<Session<TcpStream>, ConnectError> {
    within(config.handshake_timeout, ConnectError::Timeout, async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(ConnectError::Connect)?;
        // Handshake packets are small and each waits for an answer.
        let _ = stream.set_nodelay(true);
        initiator_handshake(stream, local, remote, hello, config).await
    })
    .await
}

/// [`connect`] over a stream that is already open (a relay, a test pipe).
pub async fn connect_over<S>(
    stream: S,
    local: &LocalKey,
    remote: &AgentId,
    hello: &Value,
    config: &PeerConfig,
) -> Result<Session<S>, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    within(
        config.handshake_timeout,
        ConnectError::Timeout,
        initiator_handshake(stream, local, remote, hello, config),
    )
    .await
}

async fn initiator_handshake<S>(
    mut stream: S,
    local: &LocalKey,
    remote: &AgentId,
    hello: &Value,
    config: &PeerConfig,
) -> Result<Session<S>, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (packets, pending) = initiate(local, remote, hello, Fixed::default())?;
    // N and K go out together, as MyCHIPs writes them back to back.
    let bytes = packets.concat();
    frame::write_encoded(&mut stream, &bytes)
        .await
        .map_err(connect_frame_error)?;
    let reply = frame::read_frame(&mut stream, config.max_frame)
        .await
        .map_err(connect_frame_error)?;
    let (done, extra) = pending.finish(reply)?;
    Ok(Session::new(stream, done, extra, config))
}

fn connect_frame_error(error: FrameError) -> ConnectError {
    match error {
        FrameError::Closed | FrameError::Truncated => ConnectError::Refused,
        FrameError::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            ConnectError::Refused
        }
        other => ConnectError::Frame(other),
    }
}

fn accept_frame_error(error: FrameError) -> AcceptError {
    match error {
        FrameError::Closed | FrameError::Truncated => AcceptError::Closed,
        other => AcceptError::Frame(other),
    }
}

/// Takes the next TCP connection on `listener` and reads its handshake.
///
/// One connection at a time: a server that must not wait on a slow peer
/// accepts from the listener itself and runs [`respond`] per connection.
pub async fn accept(
    listener: &TcpListener,
    local: &LocalKey,
    config: &PeerConfig,
) -> Result<Incoming<TcpStream>, AcceptError> {
    let (stream, _) = listener.accept().await.map_err(AcceptError::Accept)?;
    let _ = stream.set_nodelay(true);
    respond(stream, local, config).await
}

/// Reads the handshake of a connection a peer opened to us, up to the point
/// where we must decide whether to answer it. Dropping the stream on any
/// error closes it without a word.
pub async fn respond<S>(
    mut stream: S,
    local: &LocalKey,
    config: &PeerConfig,
) -> Result<Incoming<S>, AcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ready = within(config.handshake_timeout, AcceptError::Timeout, async {
        let first = frame::read_frame(&mut stream, config.max_frame)
            .await
            .map_err(accept_frame_error)?;
        match respond_first(local, first, None)? {
            FirstPacket::Ready(ready) => Ok(*ready),
            FirstPacket::Identified(identified) => {
                let known = frame::read_frame(&mut stream, config.max_frame)
                    .await
                    .map_err(accept_frame_error)?;
                identified.known(local, known, None)
            }
        }
    })
    .await?;
    Ok(Incoming {
        stream,
        ready,
        config: config.clone(),
    })
}

/// A peer's connection with its first message read and its key proved,
/// waiting for us to answer ([`Incoming::accept`]) or not
/// ([`Incoming::reject`]).
///
/// MyCHIPs answers a first contact only once the application has checked
/// the ticket, and a reconnection only from a site it shares a tally with
/// (`learn-noise.md`, "Subsequent Connection"): look at [`Self::kind`],
/// [`Self::remote_agent`] and [`Self::hello`] first.
pub struct Incoming<S> {
    stream: S,
    ready: ReadyResponder,
    config: PeerConfig,
}

impl<S> Incoming<S> {
    pub fn kind(&self) -> HandshakeKind {
        self.ready.kind
    }

    /// The initiator's static key, proved by the handshake. On a first
    /// contact this is how we learn it.
    pub fn remote_agent(&self) -> AgentId {
        self.ready.remote
    }

    /// The first message (the ticket message on a first contact). `None`
    /// only for a reconnection whose K carried no payload.
    pub fn hello(&self) -> Option<&Value> {
        self.ready.hello.as_ref()
    }

    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Closes the connection without answering.
    pub fn reject(self) {}
}

impl<S: AsyncRead + AsyncWrite + Unpin> Incoming<S> {
    /// Answers with `A`, which completes the handshake.
    pub async fn accept(mut self) -> Result<Session<S>, AcceptError> {
        let (packet, done) = self.ready.acknowledge()?;
        within(self.config.write_timeout, AcceptError::Timeout, async {
            frame::write_encoded(&mut self.stream, &packet)
                .await
                .map_err(accept_frame_error)
        })
        .await?;
        Ok(Session::new(self.stream, done, None, &self.config))
    }
}

/// What both halves of a session know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The peer's agent id (its static key, proved by the handshake).
    pub remote: AgentId,
    pub kind: HandshakeKind,
    /// The Noise handshake hash (BLAKE2b, 64 bytes): equal at both ends,
    /// usable for channel binding.
    pub handshake_hash: Vec<u8>,
}

/// An open, encrypted session with a peer agent.
pub struct Session<S = TcpStream> {
    sender: SessionSender<S>,
    receiver: SessionReceiver<S>,
}

impl<S: AsyncRead + AsyncWrite> Session<S> {
    fn new(stream: S, done: Established, first: Option<Value>, config: &PeerConfig) -> Self {
        let info = Arc::new(SessionInfo {
            remote: done.remote,
            kind: done.kind,
            handshake_hash: done.handshake_hash,
        });
        let transport = Arc::new(done.transport);
        let (reader, writer) = tokio::io::split(stream);
        Self {
            sender: SessionSender {
                writer,
                transport: transport.clone(),
                nonce: 0,
                timeout: config.write_timeout,
                failed: false,
                info: info.clone(),
            },
            receiver: SessionReceiver {
                reader,
                transport,
                nonce: 0,
                max_frame: config.max_frame,
                timeout: config.read_timeout,
                failed: false,
                pending: first,
                info,
            },
        }
    }
}

impl<S: AsyncRead + AsyncWrite> Session<S> {
    pub fn info(&self) -> &SessionInfo {
        &self.sender.info
    }

    pub fn remote_agent(&self) -> AgentId {
        self.sender.info.remote
    }

    pub fn kind(&self) -> HandshakeKind {
        self.sender.info.kind
    }

    pub async fn send(&mut self, message: &Value) -> Result<(), SendError> {
        self.sender.send(message).await
    }

    pub async fn send_envelope(&mut self, message: &Envelope) -> Result<(), SendError> {
        self.sender.send(&message.to_value()).await
    }

    pub async fn recv(&mut self) -> Result<Value, RecvError> {
        self.receiver.recv().await
    }

    pub async fn recv_envelope(&mut self) -> Result<Envelope, RecvError> {
        self.receiver.recv_envelope().await
    }

    /// Two halves that send and receive independently (each keeps its own
    /// nonce), e.g. from two tasks: MyCHIPs peers send whenever they like.
    pub fn split(self) -> (SessionSender<S>, SessionReceiver<S>) {
        (self.sender, self.receiver)
    }

    /// The two halves, borrowed: one task can keep a [`SessionReceiver::recv`]
    /// pending (it must not be dropped half way through a packet) while it
    /// sends on the other.
    pub fn halves(&mut self) -> (&mut SessionSender<S>, &mut SessionReceiver<S>) {
        (&mut self.sender, &mut self.receiver)
    }

    /// Ends the session: flushes and shuts down our side of the stream.
    pub async fn close(self) {
        self.sender.close().await;
    }
}

/// The sending half of a [`Session`].
pub struct SessionSender<S> {
    writer: WriteHalf<S>,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    timeout: Duration,
    failed: bool,
    info: Arc<SessionInfo>,
}

impl<S: AsyncRead + AsyncWrite> SessionSender<S> {
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// Encrypts `message` as compact JSON into one `T` packet. A message
    /// that is too large is refused before anything is written, and the
    /// session stays usable.
    pub async fn send(&mut self, message: &Value) -> Result<(), SendError> {
        if self.failed {
            return Err(SendError::Failed);
        }
        let plain = message.to_string().into_bytes();
        if plain.len() > MAX_MESSAGE {
            return Err(SendError::TooLarge {
                size: plain.len(),
                max: MAX_MESSAGE,
            });
        }
        let nonce = self.next_nonce()?;
        let mut packet = vec![0u8; frame::LENGTH_PREFIX + 1 + plain.len() + TRANSPORT_OVERHEAD];
        let Some(body) = packet.get_mut(frame::LENGTH_PREFIX + 1..) else {
            return Err(SendError::Failed);
        };
        let sealed = self
            .transport
            .write_message(nonce, &plain, body)
            .map_err(SendError::Noise)?;
        let declared = 1 + sealed;
        // Cannot truncate: declared <= MAX_FRAME < 2^32.
        packet[..frame::LENGTH_PREFIX].copy_from_slice(&(declared as u32).to_be_bytes());
        packet[frame::LENGTH_PREFIX] = Header::Transport.byte();
        packet.truncate(frame::LENGTH_PREFIX + declared);

        // From here on a failure may leave part of a packet on the wire.
        self.failed = true;
        within(self.timeout, SendError::Timeout, async {
            frame::write_encoded(&mut self.writer, &packet)
                .await
                .map_err(SendError::Frame)
        })
        .await?;
        self.failed = false;
        self.nonce += 1;
        Ok(())
    }

    pub async fn send_envelope(&mut self, message: &Envelope) -> Result<(), SendError> {
        self.send(&message.to_value()).await
    }

    fn next_nonce(&self) -> Result<u64, SendError> {
        // Noise reserves 2^64-1; no session gets anywhere near it.
        if self.nonce == u64::MAX {
            return Err(SendError::Failed);
        }
        Ok(self.nonce)
    }

    pub async fn close(mut self) {
        self.shutdown().await;
    }

    /// Ends our direction only (a TCP half-close): the partner reads what
    /// we sent and then the end, while we can still read what it sends
    /// until it ends its own.
    pub async fn shutdown(&mut self) {
        self.failed = true;
        let _ = within(self.timeout, (), async {
            let _ = self.writer.shutdown().await;
            Ok(())
        })
        .await;
    }
}

/// The receiving half of a [`Session`].
pub struct SessionReceiver<S> {
    reader: ReadHalf<S>,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    max_frame: usize,
    timeout: Option<Duration>,
    failed: bool,
    /// A message that came inside the responder's A (MyCHIPs sends none).
    pending: Option<Value>,
    info: Arc<SessionInfo>,
}

impl<S: AsyncRead + AsyncWrite> SessionReceiver<S> {
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The next message. A message that decrypted but is not JSON
    /// ([`RecvError::NotJson`]) or not an envelope leaves the session open;
    /// any other error ends it.
    pub async fn recv(&mut self) -> Result<Value, RecvError> {
        if self.failed {
            return Err(RecvError::Failed);
        }
        if let Some(first) = self.pending.take() {
            return Ok(first);
        }
        let result = self.read_message().await;
        if let Err(error) = &result {
            self.failed = !matches!(error, RecvError::NotJson(_));
        }
        result
    }

    pub async fn recv_envelope(&mut self) -> Result<Envelope, RecvError> {
        let value = self.recv().await?;
        Envelope::from_value(value).map_err(RecvError::NotEnvelope)
    }

    async fn read_message(&mut self) -> Result<Value, RecvError> {
        let max_frame = self.max_frame;
        let read = frame::read_frame(&mut self.reader, max_frame);
        let packet = match self.timeout {
            Some(limit) => tokio::time::timeout(limit, read)
                .await
                .map_err(|_| RecvError::Timeout)?,
            None => read.await,
        }
        .map_err(|e| match e {
            FrameError::Closed => RecvError::Closed,
            other => RecvError::Frame(other),
        })?;
        if packet.header != Header::Transport {
            return Err(RecvError::UnexpectedHeader(packet.header));
        }
        if self.nonce == u64::MAX {
            return Err(RecvError::Decrypt);
        }
        let mut plain = vec![0u8; packet.body.len()];
        let n = self
            .transport
            .read_message(self.nonce, &packet.body, &mut plain)
            .map_err(|_| RecvError::Decrypt)?;
        self.nonce += 1;
        plain.truncate(n);
        serde_json::from_slice(&plain).map_err(RecvError::NotJson)
    }
}

impl<S> std::fmt::Debug for Incoming<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("kind", &self.ready.kind)
            .field("remote", &self.ready.remote)
            .finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("info", &self.sender.info)
            .finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for SessionSender<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSender")
            .field("info", &self.info)
            .field("sent", &self.nonce)
            .finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for SessionReceiver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionReceiver")
            .field("info", &self.info)
            .field("received", &self.nonce)
            .finish_non_exhaustive()
    }
}

/// Runs `work` under a deadline.
async fn within<T, E>(
    limit: Duration,
    on_timeout: E,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(on_timeout),
    }
}
