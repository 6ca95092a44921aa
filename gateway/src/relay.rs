//! The agent relay (ADR 6): how a wallet agent that cannot accept connections (a phone) is
//! reached by its tally partners. Ciphertext only: the relay holds no key of anyone's and
//! never sees a plaintext byte of a tally session.
//!
//! - **One control port** ([`RelayConfig::listen`]) takes two kinds of connection, both made
//!   *outbound* by the agent (docs/PROTOCOL.md §12, "The relay"; the messages are
//!   [`notch_protocol::relay`]):
//!   - a *control connection*: `NRC1`, then Noise XN in which the agent's static key is its
//!     agent key, so the relay learns that key only from someone who holds it. The agent
//!     gets its port (`registered`) and is told of every partner waiting there (`partner`
//!     with a one-time claim). One control connection per agent: a new one replaces the old.
//!   - a *data connection*: `NRD1` and a claim the relay sent; from there the connection is
//!     spliced to the partner's.
//! - **One port per agent** ([`RelayConfig::ports`]), bound while the agent's control
//!   connection is up, and kept in the mirror's SQLite (`relay_ports`), so that the agent's
//!   tickets stay valid across restarts. A partner that connects there is held (its first
//!   bytes read and kept, at most [`MAX_HELD`]) until the agent's data connection comes, at
//!   most [`RelayConfig::wait`]; then the two byte streams are spliced. A connection whose
//!   first packet is not MyCHIPs framing with an `I` or `N` header (a first contact or a
//!   reconnection) wakes nobody.
//! - **Bounds**: connections before their first bytes ([`RelayConfig::max_pending`]),
//!   agents registered ([`RelayConfig::max_agents`], and the size of the range), partners
//!   waiting and links spliced per agent, bytes, time and idle time per link.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use notch_protocol::relay::{
    self as proto, CONTROL_MAGIC, Claim, ControlMessage, DATA_MAGIC, MAX_CONTROL_FRAME, PortRange,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};

use crate::store::MirrorStore;

/// The most bytes of a waiting partner held until the agent comes (two whole MyCHIPs
/// packets: an `N` and a `K` fit in far less).
pub const MAX_HELD: usize = 2 * (65536 + 4);

/// The relay's settings (the gateway's `--relay-*` flags).
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Control and data connections (agents connect here).
    pub listen: SocketAddr,
    /// Where agents' ports are. Bound on the IP of `listen`.
    pub ports: PortRange,
    /// How long a partner waits for the agent's data connection; then it is closed.
    pub wait: Duration,
    /// From connect to the end of the Noise handshake (or of a data connection's claim).
    pub handshake_timeout: Duration,
    /// A control connection on which nothing arrives for this long is closed (agents ping).
    pub control_idle: Duration,
    /// Agents registered at once.
    pub max_agents: usize,
    /// Connections to the control port not yet past their handshake or claim.
    pub max_pending: usize,
    /// Partners waiting for one agent at once; more are closed at once.
    pub max_waiting: usize,
    /// Links (spliced connections) of one agent at once.
    pub max_links: usize,
    /// Bytes one link may carry (both directions together); then it is closed.
    pub max_link_bytes: u64,
    /// How long one link may last.
    pub max_link_time: Duration,
    /// A link with no byte in one direction for this long ends that direction.
    pub link_idle: Duration,
    /// A port of an agent that has not registered for this long may go to another agent
    /// when the range is full.
    pub reclaim_after: Duration,
}

impl RelayConfig {
    pub fn new(listen: SocketAddr, ports: PortRange) -> RelayConfig {
        RelayConfig {
            listen,
            ports,
            wait: Duration::from_secs(8),
            handshake_timeout: Duration::from_secs(10),
            control_idle: Duration::from_secs(90),
            max_agents: 1024,
            max_pending: 64,
            max_waiting: 8,
            max_links: 16,
            max_link_bytes: 64 * 1024 * 1024,
            max_link_time: Duration::from_secs(3600),
            link_idle: Duration::from_secs(300),
            reclaim_after: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// A running relay; dropping it (or [`RelayHandle::stop`]) stops taking connections.
pub struct RelayHandle {
    /// Where agents connect.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RelayHandle {
    pub async fn stop(mut self) {
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        task.abort();
        let _ = task.await;
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds the control port and starts serving until `shutdown`.
pub async fn start(
    config: RelayConfig,
    store: Arc<dyn MirrorStore>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<RelayHandle> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("the relay cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let relay = Arc::new(Relay {
        bind_ip: addr.ip(),
        config,
        store,
        agents: Mutex::default(),
        claims: Mutex::default(),
        limits: Mutex::default(),
        generation: AtomicU64::new(0),
    });
    let task = tokio::spawn(async move {
        let pending = Arc::new(Semaphore::new(relay.config.max_pending.max(1)));
        // Dropped (and with it every control connection) when this task is.
        let mut tasks = JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = crate::stopped(&mut shutdown) => break,
            };
            let (stream, from) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("the relay cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let Ok(permit) = pending.clone().try_acquire_owned() else {
                tracing::debug!(%from, "relay: too many connections in their handshake");
                continue;
            };
            let _ = stream.set_nodelay(true);
            tasks.spawn(relay.clone().connection(stream, permit));
        }
    });
    tracing::info!(%addr, "agent relay started");
    Ok(RelayHandle { addr, task })
}

struct Relay {
    config: RelayConfig,
    store: Arc<dyn MirrorStore>,
    bind_ip: IpAddr,
    agents: Mutex<HashMap<[u8; 32], Slot>>,
    claims: Mutex<HashMap<Claim, Waiting>>,
    /// Per agent, kept while anything of it runs, so that registering again does not reset
    /// its limits.
    limits: Mutex<HashMap<[u8; 32], Arc<AgentLimits>>>,
    generation: AtomicU64,
}

/// A registered agent.
struct Slot {
    generation: u64,
    /// Told when another control connection registers the same agent.
    replaced: Arc<Notify>,
    /// The task accepting partners on its port.
    listener: JoinHandle<()>,
}

/// A partner waiting for its agent's data connection.
struct Waiting {
    agent: [u8; 32],
    stream: oneshot::Sender<TcpStream>,
}

struct AgentLimits {
    waiting: Arc<Semaphore>,
    links: Arc<Semaphore>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn short(agent: &[u8; 32]) -> String {
    hex::encode(&agent[..6])
}

/// Why a control connection ended before it was registered.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes (at most {MAX_CONTROL_FRAME})")]
    TooLarge(usize),
    #[error("noise: {0}")]
    Noise(#[from] snow::Error),
}

fn noise_params() -> snow::params::NoiseParams {
    // A constant that parses (checked by the tests).
    proto::NOISE_PATTERN
        .parse()
        .unwrap_or_else(|_| unreachable!("the relay's Noise pattern parses"))
}

/// Reads one control frame: a big-endian u16 length, then that many bytes (at most
/// [`MAX_CONTROL_FRAME`], checked before anything is allocated).
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, FrameError> {
    let mut prefix = [0u8; 2];
    r.read_exact(&mut prefix).await.map_err(FrameError::Io)?;
    let len = proto::frame_len(prefix).map_err(FrameError::Size)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(FrameError::Io)?;
    Ok(body)
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    let out = proto::frame(body).map_err(|_| std::io::Error::other("control frame too large"))?;
    w.write_all(&out).await?;
    w.flush().await
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("a control frame of {0} bytes (1 to {MAX_CONTROL_FRAME} allowed)")]
    Size(usize),
}

impl From<FrameError> for HandshakeError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => HandshakeError::Io(e),
            FrameError::Size(n) => HandshakeError::TooLarge(n),
        }
    }
}

/// The encrypted half of a registered control connection.
struct Control {
    transport: snow::TransportState,
    writer: OwnedWriteHalf,
}

impl Control {
    async fn send(&mut self, message: &ControlMessage) -> bool {
        let Ok(plain) = message.encode() else {
            return false;
        };
        let mut buf = vec![0u8; plain.len() + proto::TAG];
        let Ok(n) = self.transport.write_message(&plain, &mut buf) else {
            return false;
        };
        matches!(
            timeout(
                Duration::from_secs(10),
                write_frame(&mut self.writer, &buf[..n])
            )
            .await,
            Ok(Ok(()))
        )
    }
}

const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

impl Relay {
    async fn connection(self: Arc<Self>, mut stream: TcpStream, permit: OwnedSemaphorePermit) {
        let mut magic = [0u8; 4];
        match timeout(self.config.handshake_timeout, stream.read_exact(&mut magic)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        match magic {
            CONTROL_MAGIC => self.control(stream, permit).await,
            DATA_MAGIC => {
                let mut claim = [0u8; 32];
                let read = timeout(self.config.handshake_timeout, stream.read_exact(&mut claim));
                if !matches!(read.await, Ok(Ok(_))) {
                    return;
                }
                drop(permit);
                let waiting = lock(&self.claims).remove(&claim);
                match waiting {
                    // The partner's task takes it from here (or it has just given up, and the
                    // stream is dropped: closed).
                    Some(w) => {
                        tracing::debug!(agent = %short(&w.agent), "relay: agent came for a partner");
                        let _ = w.stream.send(stream);
                    }
                    None => tracing::debug!("relay: a data connection with an unknown claim"),
                }
            }
            _ => tracing::debug!("relay: a connection that is not the relay protocol"),
        }
    }

    /// Runs the Noise XN handshake as responder: the agent's static key, proved, and its
    /// `register` message.
    async fn handshake(
        &self,
        stream: &mut TcpStream,
    ) -> Result<([u8; 32], snow::TransportState, Vec<u8>), HandshakeError> {
        let work = async {
            let mut hs = snow::Builder::with_resolver(
                noise_params(),
                Box::new(snow::resolvers::DefaultResolver),
            )
            .prologue(proto::PROLOGUE)?
            .build_responder()?;
            let mut buf = vec![0u8; MAX_CONTROL_FRAME];
            let m1 = read_frame(stream).await?;
            hs.read_message(&m1, &mut buf)?;
            let n = hs.write_message(&[], &mut buf)?;
            write_frame(stream, &buf[..n]).await?;
            let m3 = read_frame(stream).await?;
            let n = hs.read_message(&m3, &mut buf)?;
            let payload = buf[..n].to_vec();
            let agent: [u8; 32] = hs
                .get_remote_static()
                .and_then(|k| k.try_into().ok())
                .ok_or(snow::Error::Input)?;
            Ok((agent, hs.into_transport_mode()?, payload))
        };
        timeout(self.config.handshake_timeout, work)
            .await
            .map_err(|_| HandshakeError::Timeout)?
    }

    async fn control(self: Arc<Self>, mut stream: TcpStream, permit: OwnedSemaphorePermit) {
        let (agent, transport, hello) = match self.handshake(&mut stream).await {
            Ok(done) => done,
            Err(e) => {
                tracing::debug!("relay: a control handshake failed: {e}");
                return;
            }
        };
        drop(permit);
        let (mut reader, writer) = stream.into_split();
        let mut control = Control { transport, writer };
        match ControlMessage::decode(&hello) {
            Ok(ControlMessage::Register { v: proto::VERSION }) => {}
            Ok(ControlMessage::Register { v }) => {
                let reason = format!(
                    "relay protocol version {v} is not served (only {})",
                    proto::VERSION
                );
                control.send(&ControlMessage::Refused { reason }).await;
                return;
            }
            Ok(_) | Err(_) => {
                let reason = "the handshake's message must be {\"op\":\"register\",\"v\":1}".into();
                control.send(&ControlMessage::Refused { reason }).await;
                return;
            }
        }
        let (generation, port, mut partners, replaced) = match self.register(agent).await {
            Ok(r) => r,
            Err(reason) => {
                tracing::info!(agent = %short(&agent), "relay: registration refused: {reason}");
                control.send(&ControlMessage::Refused { reason }).await;
                return;
            }
        };
        tracing::info!(agent = %short(&agent), port, "relay: agent registered");
        let wait_ms = u64::try_from(self.config.wait.as_millis()).unwrap_or(u64::MAX);
        if control
            .send(&ControlMessage::Registered { port, wait_ms })
            .await
        {
            // Frames are read on their own task: a read must not be dropped half way.
            let (frames_tx, mut frames) = mpsc::channel::<Result<Vec<u8>, FrameError>>(4);
            let reading = tokio::spawn(async move {
                loop {
                    let frame = read_frame(&mut reader).await;
                    let end = frame.is_err();
                    if frames_tx.send(frame).await.is_err() || end {
                        return;
                    }
                }
            });
            self.serve_control(&mut control, &mut frames, &mut partners, &replaced, agent)
                .await;
            reading.abort();
        }
        self.unregister(agent, generation).await;
        tracing::info!(agent = %short(&agent), port, "relay: agent's control connection closed");
    }

    async fn serve_control(
        &self,
        control: &mut Control,
        frames: &mut mpsc::Receiver<Result<Vec<u8>, FrameError>>,
        partners: &mut mpsc::Receiver<Claim>,
        replaced: &Notify,
        agent: [u8; 32],
    ) {
        let mut idle = Instant::now() + self.config.control_idle;
        let mut plain = vec![0u8; MAX_CONTROL_FRAME];
        loop {
            tokio::select! {
                // Replaced first: its port's listener (and the partners channel) goes next.
                biased;
                () = replaced.notified() => {
                    let reason = "this agent registered again on another connection".into();
                    control.send(&ControlMessage::Refused { reason }).await;
                    return;
                }
                frame = frames.recv() => {
                    let frame = match frame {
                        Some(Ok(f)) => f,
                        Some(Err(e)) => {
                            tracing::debug!(agent = %short(&agent), "relay: control connection ended: {e}");
                            if let FrameError::Size(_) = e {
                                let reason = e.to_string();
                                control.send(&ControlMessage::Error { reason }).await;
                            }
                            return;
                        }
                        None => return,
                    };
                    idle = Instant::now() + self.config.control_idle;
                    // A frame that does not decrypt leaves the nonces out of step: the end.
                    let Ok(n) = control.transport.read_message(&frame, &mut plain) else {
                        tracing::debug!(agent = %short(&agent), "relay: a control frame did not decrypt");
                        return;
                    };
                    let answer = match ControlMessage::decode(&plain[..n]) {
                        Ok(ControlMessage::Ping) => ControlMessage::Pong,
                        Ok(other) => ControlMessage::Error {
                            reason: format!("an agent does not send {:?} to the relay", op_name(&other)),
                        },
                        Err(e) => ControlMessage::Error { reason: e.to_string() },
                    };
                    if !control.send(&answer).await {
                        return;
                    }
                }
                claim = partners.recv() => {
                    let Some(claim) = claim else { return };
                    if !control.send(&ControlMessage::partner(&claim)).await {
                        return;
                    }
                }
                () = sleep_until(idle) => {
                    tracing::debug!(agent = %short(&agent), "relay: control connection idle");
                    return;
                }
            }
        }
    }

    fn limits_of(&self, agent: [u8; 32]) -> Arc<AgentLimits> {
        let mut limits = lock(&self.limits);
        limits.retain(|_, l| Arc::strong_count(l) > 1);
        limits
            .entry(agent)
            .or_insert_with(|| {
                Arc::new(AgentLimits {
                    waiting: Arc::new(Semaphore::new(self.config.max_waiting.max(1))),
                    links: Arc::new(Semaphore::new(self.config.max_links.max(1))),
                })
            })
            .clone()
    }

    /// Gives `agent` its port (binding it) and makes it the agent's registration, replacing
    /// an older one.
    async fn register(
        self: &Arc<Self>,
        agent: [u8; 32],
    ) -> Result<(u64, u16, mpsc::Receiver<Claim>, Arc<Notify>), String> {
        let old = lock(&self.agents).remove(&agent);
        if let Some(old) = old {
            old.replaced.notify_one();
            old.listener.abort();
            let _ = old.listener.await;
        }
        if lock(&self.agents).len() >= self.config.max_agents.max(1) {
            return Err("the relay serves as many agents as it can; try again later".into());
        }
        let listener = self.bind_port(agent).await?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("the relay's port for you failed: {e}"))?
            .port();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let (partners_tx, partners) = mpsc::channel(self.config.max_waiting.max(1));
        let replaced = Arc::new(Notify::new());
        let limits = self.limits_of(agent);
        let task = tokio::spawn(self.clone().partners(agent, listener, partners_tx, limits));
        let slot = Slot {
            generation,
            replaced: replaced.clone(),
            listener: task,
        };
        let previous = lock(&self.agents).insert(agent, slot);
        if let Some(previous) = previous {
            // Registered at the same moment on two connections: the later one wins.
            previous.replaced.notify_one();
            previous.listener.abort();
        }
        Ok((generation, port, partners, replaced))
    }

    /// Binds the agent's port: the stored one, else another of the range (skipping ports
    /// that another program holds on this host).
    async fn bind_port(&self, agent: [u8; 32]) -> Result<TcpListener, String> {
        let now = crate::ledger::unix_now();
        let ports = self.config.ports;
        let reclaim_before = now.saturating_sub(self.config.reclaim_after.as_secs());
        let mut avoid: Vec<u16> = Vec::new();
        for _ in 0..16 {
            let store = self.store.clone();
            let avoid_now = avoid.clone();
            let choice = tokio::task::spawn_blocking(move || {
                if ports.is_any() {
                    let stored = store.relay_port(&agent)?;
                    Ok(Some(stored.filter(|p| !avoid_now.contains(p)).unwrap_or(0)))
                } else {
                    store.relay_assign(&agent, ports, &avoid_now, now, reclaim_before)
                }
            })
            .await
            .map_err(|e| format!("the relay failed: {e}"))?
            .map_err(|e: crate::store::StoreError| {
                tracing::error!("relay: {e}");
                "the relay's database failed; try again later".to_string()
            })?;
            let Some(port) = choice else {
                return Err(format!("the relay has no port free ({ports})"));
            };
            match TcpListener::bind((self.bind_ip, port)).await {
                Ok(listener) => {
                    if ports.is_any() {
                        let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
                        let store = self.store.clone();
                        let recorded = tokio::task::spawn_blocking(move || {
                            store.relay_record(&agent, bound, now)
                        })
                        .await;
                        if !matches!(recorded, Ok(Ok(()))) {
                            tracing::warn!("relay: the port of an agent could not be recorded");
                        }
                    }
                    return Ok(listener);
                }
                Err(e) if port != 0 && e.kind() == std::io::ErrorKind::AddrInUse => {
                    tracing::warn!(port, "relay: port taken by another program; skipping it");
                    avoid.push(port);
                }
                Err(e) => return Err(format!("the relay cannot listen on port {port}: {e}")),
            }
        }
        Err("the relay found no port it could listen on".into())
    }

    async fn unregister(&self, agent: [u8; 32], generation: u64) {
        let slot = {
            let mut agents = lock(&self.agents);
            match agents.get(&agent) {
                Some(s) if s.generation == generation => agents.remove(&agent),
                _ => None,
            }
        };
        if let Some(slot) = slot {
            slot.listener.abort();
            let _ = slot.listener.await;
        }
    }

    /// Accepts partners on an agent's port while it is registered.
    async fn partners(
        self: Arc<Self>,
        agent: [u8; 32],
        listener: TcpListener,
        announce: mpsc::Sender<Claim>,
        limits: Arc<AgentLimits>,
    ) {
        loop {
            let (stream, from) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("relay: cannot accept a partner: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let Ok(permit) = limits.waiting.clone().try_acquire_owned() else {
                tracing::info!(agent = %short(&agent), %from, "relay: too many partners waiting; closing one");
                continue;
            };
            let _ = stream.set_nodelay(true);
            // Not a child of this task: a link outlives the control connection that
            // announced it (the agent may reconnect meanwhile).
            tokio::spawn(self.clone().partner(
                agent,
                stream,
                announce.clone(),
                permit,
                limits.clone(),
            ));
        }
    }

    /// One partner: held until the agent's data connection comes, then spliced to it.
    async fn partner(
        self: Arc<Self>,
        agent: [u8; 32],
        mut stream: TcpStream,
        announce: mpsc::Sender<Claim>,
        waiting: OwnedSemaphorePermit,
        limits: Arc<AgentLimits>,
    ) {
        let deadline = Instant::now() + self.config.wait;
        let mut held: Vec<u8> = Vec::with_capacity(512);
        let mut chunk = vec![0u8; 16 * 1024];
        // Its first packet's header: MyCHIPs framing (u32 length, one letter), I or N.
        while held.len() < 5 {
            match timeout_at(deadline, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => held.extend_from_slice(&chunk[..n.min(MAX_HELD)]),
                _ => return,
            }
        }
        let len = u32::from_be_bytes([held[0], held[1], held[2], held[3]]);
        if !(1..=65536).contains(&len) || !matches!(held[4], b'I' | b'N') {
            tracing::debug!(agent = %short(&agent), "relay: a partner connection that is not a MyCHIPs handshake");
            return;
        }
        let mut claim = [0u8; 32];
        if getrandom::fill(&mut claim).is_err() {
            return;
        }
        let (send, mut came) = oneshot::channel();
        lock(&self.claims).insert(
            claim,
            Waiting {
                agent,
                stream: send,
            },
        );
        let forget = || {
            lock(&self.claims).remove(&claim);
        };
        if announce.try_send(claim).is_err() {
            forget();
            return;
        }
        let agent_stream = loop {
            tokio::select! {
                came = &mut came => match came {
                    Ok(s) => break s,
                    Err(_) => { forget(); return; }
                },
                read = stream.read(&mut chunk), if held.len() < MAX_HELD => match read {
                    Ok(n) if n > 0 => {
                        let room = MAX_HELD - held.len();
                        held.extend_from_slice(&chunk[..n.min(room)]);
                        if n > room {
                            forget();
                            return;
                        }
                    }
                    // The partner gave up.
                    _ => { forget(); return; }
                },
                () = sleep_until(deadline) => {
                    tracing::info!(agent = %short(&agent), "relay: the agent did not come for a partner in time; closing it");
                    forget();
                    return;
                }
            }
        };
        drop(waiting);
        let Ok(_link) = limits.links.clone().try_acquire_owned() else {
            tracing::info!(agent = %short(&agent), "relay: too many links for one agent; closing one");
            return;
        };
        let mut agent_stream = agent_stream;
        let _ = agent_stream.set_nodelay(true);
        if !matches!(
            timeout(WRITE_TIMEOUT, agent_stream.write_all(&held)).await,
            Ok(Ok(()))
        ) {
            return;
        }
        drop(held);
        let carried = splice(stream, agent_stream, &self.config).await;
        tracing::debug!(agent = %short(&agent), carried, "relay: link closed");
    }
}

fn op_name(m: &ControlMessage) -> &'static str {
    match m {
        ControlMessage::Register { .. } => "register",
        ControlMessage::Registered { .. } => "registered",
        ControlMessage::Refused { .. } => "refused",
        ControlMessage::Partner { .. } => "partner",
        ControlMessage::Ping => "ping",
        ControlMessage::Pong => "pong",
        ControlMessage::Error { .. } => "error",
    }
}

/// Copies both ways until both ends are done, or a bound is reached. The bytes carried.
async fn splice(a: TcpStream, b: TcpStream, config: &RelayConfig) -> u64 {
    let total = AtomicU64::new(0);
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    let both = async {
        tokio::join!(pipe(ar, bw, &total, config), pipe(br, aw, &total, config));
    };
    let _ = timeout(config.max_link_time, both).await;
    total.load(Ordering::Relaxed)
}

/// One direction of a link; its end is passed on (a half close stays a half close).
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    total: &AtomicU64,
    config: &RelayConfig,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match timeout(config.link_idle, from.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        let so_far = total.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if so_far > config.max_link_bytes {
            tracing::info!("relay: a link reached its byte limit; closing it");
            break;
        }
        if !matches!(
            timeout(WRITE_TIMEOUT.max(config.link_idle), to.write_all(&buf[..n])).await,
            Ok(Ok(()))
        ) {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_noise_pattern_parses() {
        let _ = noise_params();
    }

    #[test]
    fn ports_are_chosen_stored_first_then_free_then_reclaimed() {
        use crate::store::choose_relay_port as choose;
        let range = PortRange { lo: 100, hi: 102 };
        assert_eq!(choose(Some(101), &[], range, &[], 0), Some((101, None)));
        // The stored port out of the range, or taken on the host: another.
        assert_eq!(choose(Some(99), &[], range, &[], 0), Some((100, None)));
        assert_eq!(choose(Some(100), &[], range, &[100], 0), Some((101, None)));
        assert_eq!(
            choose(None, &[(100, 5), (101, 6)], range, &[], 0),
            Some((102, None))
        );
        let full = [(100, 50), (101, 10), (102, 30)];
        assert_eq!(choose(None, &full, range, &[], 0), None);
        assert_eq!(choose(None, &full, range, &[], 20), Some((101, Some(101))));
        assert_eq!(
            choose(None, &full, range, &[101], 40),
            Some((102, Some(102)))
        );
        assert_eq!(choose(None, &[], PortRange::ANY, &[], 0), None);
    }
}
