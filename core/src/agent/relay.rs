//! Relay mode (ADR 6; PROTOCOL §12, "The relay"): the agent of a wallet that cannot accept
//! connections (a phone) is reached through the gateway's relay. It opens no listener:
//!
//! - a **control connection**, made outbound: `NRC1`, then Noise XN with the agent key as
//!   the static key (the relay learns it only from its holder), `register`; the relay
//!   answers with this agent's port, which goes into tickets and certificates with the
//!   relay's host. Pinged every [`PING`]; when it drops, it is made again with a doubling
//!   wait ([`BACKOFF_FIRST`] up to [`BACKOFF_MAX`]).
//! - for every `partner` message, a **data connection**, outbound too: `NRD1` and the claim,
//!   then the stream is the partner's own, and the agent answers it exactly as it answers a
//!   connection to its listener (`super::serve`: the same handshake checks, the same
//!   session loop).
//!
//! The relay is not trusted with anything: it sees only ciphertext (the partner's Noise
//! session is with this agent's key), and the agent believes nothing it says beyond "a
//! partner is waiting" (and which port it gave, which only decides where partners are told
//! to connect). A relay that lies, drops or stalls makes sessions fail, never a tally
//! change. Outgoing delivery does not use the relay: the agent connects out to partners,
//! which listen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use notch_protocol::relay::{self as proto, ControlMessage, MAX_CONTROL_FRAME};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};

use super::apply::{AGENT_HOST_SETTING, AGENT_PORT_SETTING, Identity};
use super::{AgentConfig, serve};
use crate::context::Inner;
use crate::peer::LocalKey;
use crate::store::StoreError;

/// How often the agent pings the relay on a quiet control connection.
pub const PING: Duration = Duration::from_secs(25);
/// A control connection on which nothing arrived for this long is given up.
const SILENCE: Duration = Duration::from_secs(60);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Why the agent could not register with the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0:?} is not HOST:PORT")]
    Address(String),
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("the relay did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the connection failed: {0}")]
    Io(#[source] std::io::Error),
    #[error("the relay's handshake failed (is this a Notch gateway's relay address?): {0}")]
    Noise(#[source] snow::Error),
    #[error("the relay sent a frame of {0} bytes (1 to {MAX_CONTROL_FRAME} allowed)")]
    FrameSize(usize),
    #[error("the relay refused: {0}")]
    Refused(String),
    #[error("the relay's answer is not understood: {0}")]
    BadAnswer(String),
}

/// The relay's address as given: host (what partners are told) and port.
pub(crate) fn split_address(addr: &str) -> Result<(String, u16), RelayError> {
    let bad = || RelayError::Address(addr.to_owned());
    let (host, port) = addr.trim().rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// A registered control connection.
pub(crate) struct Registered {
    /// The relay's address, as resolved.
    pub(crate) addr: SocketAddr,
    /// This agent's port on the relay's host.
    pub(crate) port: u16,
    control: Control,
    reader: tokio::net::tcp::OwnedReadHalf,
}

struct Control {
    transport: snow::TransportState,
    writer: OwnedWriteHalf,
}

impl Control {
    async fn send(&mut self, message: &ControlMessage) -> Result<(), RelayError> {
        let plain = message
            .encode()
            .map_err(|e| RelayError::BadAnswer(e.to_string()))?;
        let mut buf = vec![0u8; plain.len() + proto::TAG];
        let n = self
            .transport
            .write_message(&plain, &mut buf)
            .map_err(RelayError::Noise)?;
        timeout(PING, write_frame(&mut self.writer, &buf[..n]))
            .await
            .map_err(|_| RelayError::Timeout(PING))?
    }

    fn open(&mut self, frame: &[u8]) -> Result<ControlMessage, RelayError> {
        let mut plain = vec![0u8; frame.len()];
        let n = self
            .transport
            .read_message(frame, &mut plain)
            .map_err(RelayError::Noise)?;
        ControlMessage::decode(&plain[..n]).map_err(|e| RelayError::BadAnswer(e.to_string()))
    }
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, RelayError> {
    let mut prefix = [0u8; 2];
    r.read_exact(&mut prefix).await.map_err(RelayError::Io)?;
    let len = proto::frame_len(prefix).map_err(RelayError::FrameSize)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(RelayError::Io)?;
    Ok(body)
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> Result<(), RelayError> {
    let out = proto::frame(body).map_err(RelayError::FrameSize)?;
    w.write_all(&out).await.map_err(RelayError::Io)?;
    w.flush().await.map_err(RelayError::Io)
}

fn builder<'a>() -> Result<snow::Builder<'a>, RelayError> {
    let params = proto::NOISE_PATTERN.parse().map_err(RelayError::Noise)?;
    crate::peer::noise_builder(params)
        .prologue(proto::PROLOGUE)
        .map_err(RelayError::Noise)
}

/// Connects to the relay at `addr` and registers: the handshake proves we hold `local`.
pub(crate) async fn register(
    addr: &str,
    local: &LocalKey,
    within: Duration,
) -> Result<Registered, RelayError> {
    let work = async {
        let stream = TcpStream::connect(addr.trim())
            .await
            .map_err(RelayError::Connect)?;
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().map_err(RelayError::Io)?;
        let (mut reader, mut writer) = stream.into_split();
        let mut hs = builder()?
            .local_private_key(local.secret())
            .map_err(RelayError::Noise)?
            .build_initiator()
            .map_err(RelayError::Noise)?;
        let mut buf = vec![0u8; MAX_CONTROL_FRAME];
        writer
            .write_all(&proto::CONTROL_MAGIC)
            .await
            .map_err(RelayError::Io)?;
        let n = hs.write_message(&[], &mut buf).map_err(RelayError::Noise)?;
        write_frame(&mut writer, &buf[..n]).await?;
        let m2 = read_frame(&mut reader).await?;
        hs.read_message(&m2, &mut buf).map_err(RelayError::Noise)?;
        let hello = ControlMessage::Register { v: proto::VERSION }
            .encode()
            .map_err(|e| RelayError::BadAnswer(e.to_string()))?;
        let n = hs
            .write_message(&hello, &mut buf)
            .map_err(RelayError::Noise)?;
        write_frame(&mut writer, &buf[..n]).await?;
        let mut control = Control {
            transport: hs.into_transport_mode().map_err(RelayError::Noise)?,
            writer,
        };
        let answer = read_frame(&mut reader).await?;
        match control.open(&answer)? {
            ControlMessage::Registered { port, .. } if port != 0 => Ok(Registered {
                addr: peer,
                port,
                control,
                reader,
            }),
            ControlMessage::Refused { reason } => Err(RelayError::Refused(clip(&reason))),
            other => Err(RelayError::BadAnswer(format!(
                "expected registered, got {}",
                clip(&format!("{other:?}"))
            ))),
        }
    };
    timeout(within, work)
        .await
        .map_err(|_| RelayError::Timeout(within))?
}

/// What the relay wrote, cut to a length fit for a log line or an error.
fn clip(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Serves partners through the relay for as long as the agent runs: the registered
/// control connection `first`, then new ones whenever it drops.
pub(super) async fn relay_loop(
    inner: Arc<Inner>,
    me: Arc<Identity>,
    config: AgentConfig,
    relay: String,
    first: Registered,
) {
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    // Dropped (and with it every relayed session) when this task is.
    let mut tasks = JoinSet::new();
    let mut current = Some(first);
    let mut port = current.as_ref().map(|r| r.port).unwrap_or(0);
    let mut backoff = BACKOFF_FIRST;
    loop {
        let registered = match current.take() {
            Some(r) => r,
            None => match register(&relay, &me.local, config.peer.handshake_timeout).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(%relay, "the tally agent could not register with the relay: {e}; again in {backoff:?}");
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        if registered.port != port {
            // The relay gave another port (its database was reset, or the port was taken):
            // new tickets carry it; partners that knew the old one reach us when we call.
            tracing::warn!(
                old = port,
                new = registered.port,
                "the relay gave the agent another port"
            );
            port = registered.port;
            // What the running agent writes in envelopes (`from`) and its handle says.
            me.set_port(port);
            // What tickets and certificates made from now on say.
            record_port(&inner, port).await;
        }
        tracing::info!(%relay, port, "tally agent registered with the relay");
        let since = Instant::now();
        let end = control_loop(&inner, &me, &config, registered, &limit, &mut tasks).await;
        tracing::info!(%relay, "the relay's control connection ended: {end}");
        if since.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_FIRST;
        }
        tokio::time::sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// `wait` plus up to a quarter more, so that many phones a relay restart dropped do not
/// all come back at the same instant.
fn jittered(wait: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    wait + wait / 4 * u32::from(byte[0]) / 255
}

async fn record_port(inner: &Arc<Inner>, port: u16) {
    let text = port.to_string();
    let result = inner
        .db(move |s| s.write(|tx| tx.set_setting(AGENT_PORT_SETTING, &text)))
        .await;
    if let Err(e) = result {
        tracing::warn!("the agent's new relay port could not be saved: {e}");
    }
}

/// Records the address partners are told (the relay's host and our port there).
pub(super) async fn record_address(
    inner: &Arc<Inner>,
    host: String,
    port: u16,
) -> Result<(), StoreError> {
    let port = port.to_string();
    inner
        .db(move |s| {
            s.write(|tx| {
                tx.set_setting(AGENT_HOST_SETTING, &host)?;
                tx.set_setting(AGENT_PORT_SETTING, &port)
            })
        })
        .await
}

/// Serves one control connection until it ends; why it ended.
async fn control_loop(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    config: &AgentConfig,
    registered: Registered,
    limit: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
) -> String {
    let Registered {
        addr,
        mut control,
        mut reader,
        ..
    } = registered;
    // Frames are read on their own task: a read must not be dropped half way.
    let (frames_tx, mut frames) = mpsc::channel::<Result<Vec<u8>, RelayError>>(4);
    let reading = tokio::spawn(async move {
        loop {
            let frame = read_frame(&mut reader).await;
            let end = frame.is_err();
            if frames_tx.send(frame).await.is_err() || end {
                return;
            }
        }
    });
    let mut heard = Instant::now();
    let mut next_ping = Instant::now() + PING;
    let why = loop {
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            frame = frames.recv() => {
                let frame = match frame {
                    Some(Ok(f)) => f,
                    Some(Err(e)) => break e.to_string(),
                    None => break "closed".to_string(),
                };
                heard = Instant::now();
                let message = match control.open(&frame) {
                    Ok(m) => m,
                    // A frame that does not decrypt: the nonces are out of step.
                    Err(e @ RelayError::Noise(_)) => break e.to_string(),
                    Err(e) => {
                        tracing::debug!("the relay sent what the agent does not understand: {e}");
                        continue;
                    }
                };
                match message {
                    ControlMessage::Partner { claim } => {
                        let Ok(claim) = proto::parse_claim(&claim) else {
                            tracing::debug!("the relay sent a partner without a usable claim");
                            continue;
                        };
                        let Ok(permit) = limit.clone().try_acquire_owned() else {
                            tracing::warn!("too many tally connections; a relayed partner is left waiting");
                            continue;
                        };
                        let (inner, me, config) = (inner.clone(), me.clone(), config.clone());
                        tasks.spawn(async move {
                            if let Some(stream) = open_data(addr, &claim, &config).await {
                                serve(&inner, &me, &config, stream).await;
                            }
                            drop(permit);
                        });
                    }
                    ControlMessage::Pong => {}
                    ControlMessage::Refused { reason } => break format!("refused: {}", clip(&reason)),
                    ControlMessage::Error { reason } => {
                        tracing::debug!("the relay said: {}", clip(&reason));
                    }
                    other => tracing::debug!("the relay sent an unexpected {:?}", clip(&format!("{other:?}"))),
                }
            }
            () = sleep_until(next_ping) => {
                if heard.elapsed() > SILENCE {
                    break format!("nothing from the relay for {SILENCE:?}");
                }
                if let Err(e) = control.send(&ControlMessage::Ping).await {
                    break e.to_string();
                }
                next_ping = Instant::now() + PING;
            }
        }
    };
    reading.abort();
    why
}

/// The data connection for one waiting partner: the relay's stream, spliced to it.
async fn open_data(
    addr: SocketAddr,
    claim: &proto::Claim,
    config: &AgentConfig,
) -> Option<TcpStream> {
    let within = config.peer.handshake_timeout;
    let opened = timeout(within, async {
        let mut stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        stream.write_all(&proto::data_preamble(claim)).await?;
        Ok::<_, std::io::Error>(stream)
    })
    .await;
    match opened {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!("the relay's data connection failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!("the relay's data connection timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_addresses_split_into_host_and_port() {
        assert_eq!(
            split_address("gw.example:7421").unwrap(),
            ("gw.example".into(), 7421)
        );
        assert_eq!(split_address("[::1]:7").unwrap(), ("::1".into(), 7));
        for bad in ["gw.example", ":7", "gw:0", "gw:x", ""] {
            assert!(split_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_is_jittered_upwards_by_a_quarter_at_most() {
        for _ in 0..50 {
            let d = jittered(Duration::from_secs(4));
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(5),
                "{d:?}"
            );
        }
    }
}
