//! The wallet's tally agent: listens for partners' agents, talks the
//! MyCHIPs tally protocol with them over [`crate::peer`] sessions, and
//! delivers the outbox.
//!
//! - **Listening** ([`crate::Wallet::start_agent`]): every connection is
//!   read up to its handshake ([`peer::respond`]). A first contact (Noise
//!   IK) must present the one-time token of a ticket this wallet issued; it
//!   is checked, and the tally moved on, in one store transaction before
//!   the handshake is answered. A reconnection (N + KK) is answered only
//!   for an agent the wallet shares a tally with (MyCHIPs `learn-noise.md`,
//!   "Subsequent Connection"). Then messages are taken until the partner is
//!   done, and whatever our outbox holds for that partner goes out on the
//!   same session (MyCHIPs reuses a connection in either direction; a phone
//!   that cannot be reached is answered when it calls).
//! - **Routing**: a message becomes a [`crate::tally::lifecycle::Event`] for the tally it
//!   names (by uuid; an offer may also answer our oldest scanned ticket of
//!   that agent), applied by `apply::apply`: verify → change set → one
//!   store transaction → events after the commit.
//! - **Outbox**: a message for a partner is written to the `outbox` table
//!   in the transaction that decided to send it, so nothing is lost if the
//!   partner is offline or the wallet stops; it is deleted in the
//!   transaction that records its delivery, and the receiving state machine
//!   takes a repeat as a no-op, so nothing is applied twice. Failed attempts
//!   are retried with a doubling wait ([`RetryPolicy`]); the store is read
//!   again every [`AgentConfig::poll`], so a message queued by another
//!   process (the CLI) goes out too.
//! - **At once**: once a write that queued a message commits, the store
//!   tells the agent ([`crate::store::OutboxHook`]) which partner it is for.
//!   An open session with that partner (one we opened, else one it opened
//!   and has just spoken on) is woken and sends it; with none, the agent
//!   connects at once.
//!   So a payment, and the partner's answer to it, go out in milliseconds
//!   on the session that is open; the poll is only the safety net.
//!
//! "Delivered" means written to an authenticated session, as MyCHIPs's
//! `peerTransmit` success callback means it; MyCHIPs has no
//! application-level acknowledgement to wait for.

mod apply;
mod chits;
mod ops;
mod relay;
#[cfg(test)]
mod tests;

pub use chits::{
    ChitApproveError, ChitInfo, ChitLoadError, ChitPage, ChitPageError, ChitRejectError,
    MAX_MEMO_CHARS, TallyInvoiceError, TallyPayError, TallySettingError,
};
pub(crate) use chits::{
    Setting as ChitSetting, approve as chits_approve, invoice as chits_invoice, list as chits_list,
    page as chits_page, pay as chits_pay, reject as chits_reject, set as chits_set,
};
pub use ops::DEFAULT_TICKET_LIFETIME;
pub use ops::{
    AgentActivity, AgentAddress, DeliveryReport, TallyActionError, TallyDetail, TallyError,
    TallyInfo, TallyProfile, TallyScanError, TallyTicketError, TicketOptions,
};
pub(crate) use ops::{
    ScanInput, accept_or_refuse, activity, agent_address, profile, scan, set_agent_address,
    set_profile, show, tallies, ticket,
};
pub use relay::RelayError;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::{Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::context::{Inner, lock, unix_now};
use crate::events::WalletEvent;
use crate::keys::KeyError;
use crate::peer::{
    self, AgentId, ConnectError, HandshakeKind, LocalKey, PeerConfig, RecvError, Session,
    SessionSender,
};
use crate::store::{OutboxHook, OutboxRow, StoreError, TallyRow};
use crate::tally::TallyRecord;
use crate::tally::lifecycle::{Action, Event, Refusal, TallyState, TokenInfo};
use crate::ticket::Ticket;
use apply::{Identity, Target, after_ms, for_attempt, now_ms};

/// How long to wait before trying a message again: `first`, doubled after
/// each failure, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(2),
            max: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failed attempt (1-based).
    pub fn delay(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(30);
        self.first
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// How the agent listens and talks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Where to listen, `HOST:PORT` (port 0: any free port). Not used with
    /// [`relay`](Self::relay).
    pub listen: String,
    /// Reach partners through the gateway's relay at `HOST:PORT` (its
    /// `--relay-listen`, ADR 6) instead of listening: no listener is opened;
    /// the agent registers over an outbound control connection (Noise XN,
    /// its agent key) and partners connect to the relay's port for it,
    /// which goes into tickets with `HOST` (or `advertise`'s host, if
    /// given; its port is not used). For hosts that cannot accept
    /// connections (phones). Outgoing deliveries still connect to partners
    /// directly.
    pub relay: Option<String>,
    /// The host and port partners should connect to, written into tickets
    /// and certificates. `None`: the listening address (which must then be
    /// a specific one, not 0.0.0.0). A port of 0 means the listening port.
    pub advertise: Option<(String, u16)>,
    /// Handshake, read and write limits of each session.
    pub peer: PeerConfig,
    pub retry: RetryPolicy,
    /// How often the outbox is read again: the safety net for retries and
    /// for messages other processes queued (what this process queues goes
    /// out at once).
    pub poll: Duration,
    /// How long to wait for the issuer's answer to a ticket.
    pub reply_timeout: Duration,
    /// How long an initiator keeps a session open for more messages.
    pub linger: Duration,
    /// Connections served at once; more are closed at once.
    pub max_connections: usize,
}

/// MyCHIPs's default agent port (`lib/peernoise.js`, `DefaultPort`).
pub const DEFAULT_AGENT_PORT: u16 = 65430;

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            listen: format!("127.0.0.1:{DEFAULT_AGENT_PORT}"),
            relay: None,
            advertise: None,
            peer: PeerConfig::default(),
            retry: RetryPolicy::default(),
            poll: Duration::from_secs(2),
            reply_timeout: Duration::from_secs(10),
            linger: Duration::from_secs(2),
            max_connections: 64,
        }
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error(
        "the agent listens on every interface ({addr}); say which host name or address partners should connect to"
    )]
    NeedHost { addr: String },
    #[error("partners could not connect to {host:?}: {reason}")]
    BadAddress { host: String, reason: String },
    #[error("cannot register with the relay at {addr}: {reason}")]
    Relay {
        addr: String,
        #[source]
        reason: RelayError,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A running agent. Dropping it (or [`AgentHandle::stop`]) stops it.
#[derive(Debug)]
pub struct AgentHandle {
    addr: SocketAddr,
    host: String,
    /// The running agent's identity's port: a relay re-registration may move it.
    port: Arc<AtomicU16>,
    relayed: bool,
    tasks: Vec<JoinHandle<()>>,
}

impl AgentHandle {
    /// Where it listens; in relay mode, the relay it registered with.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// It is reached through a relay ([`AgentConfig::relay`]), not a listener.
    pub fn relayed(&self) -> bool {
        self.relayed
    }

    /// The host and port it tells partners now (in relay mode, the port the relay gave
    /// at the last registration).
    pub fn advertised(&self) -> (&str, u16) {
        (&self.host, self.port.load(Ordering::Relaxed))
    }

    /// Stops listening and delivering, and waits until it has.
    pub async fn stop(mut self) {
        for task in std::mem::take(&mut self.tasks) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the agent shares with the wallet's other parts (in [`Inner`]).
#[derive(Debug, Default)]
pub(crate) struct AgentShared {
    /// Wakes the outbox loop when something is queued in this process.
    wake: Notify,
    /// Partners a delivery is under way to (one at a time each), and
    /// whether another was asked for meanwhile (it is asked for again when
    /// this one ends, so nothing it did not take waits for the poll).
    delivering: Mutex<HashMap<[u8; 32], bool>>,
    /// The running agent's settings, or the defaults: what a delivery
    /// started by the person (accept, scan) uses.
    config: Mutex<AgentConfig>,
    /// Where a message just queued goes (shared with the store's hook).
    links: Arc<Links>,
    /// Scans waiting for the answer of a ticket's issuer, by its agent: an
    /// offer from it that reaches this process on another session (its
    /// agent may send it on one it already had open with ours) goes to the
    /// scan (see [`ops::scan`]).
    scans: Mutex<HashMap<[u8; 32], UnboundedSender<Value>>>,
}

/// A scan's claim on the offers of one issuer's agent, while it waits for
/// the answer to its ticket; removed when dropped.
pub(crate) struct ScanWait {
    inner: Arc<Inner>,
    agent: [u8; 32],
    pub(crate) offers: UnboundedReceiver<Value>,
}

impl ScanWait {
    /// `None` if another scan waits for the same issuer's agent (that
    /// scan takes its offers; this one has only its own session).
    pub(crate) fn new(inner: &Arc<Inner>, agent: [u8; 32]) -> Option<ScanWait> {
        let mut scans = lock(&inner.agent.scans);
        if scans.get(&agent).is_some_and(|s| !s.is_closed()) {
            return None;
        }
        let (send, offers) = unbounded_channel();
        scans.insert(agent, send);
        Some(ScanWait {
            inner: inner.clone(),
            agent,
            offers,
        })
    }
}

impl Drop for ScanWait {
    fn drop(&mut self) {
        lock(&self.inner.agent.scans).remove(&self.agent);
    }
}

impl AgentShared {
    pub(crate) fn config(&self) -> AgentConfig {
        lock(&self.config).clone()
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Partners with a session open right now (either side opened it).
    pub(crate) fn partners_connected(&self) -> usize {
        lock(&self.links.sessions).len()
    }

    /// An agent runs in this process: it sends what is queued at once.
    pub(crate) fn running(&self) -> bool {
        lock(&self.links.dispatch)
            .as_ref()
            .is_some_and(|kick| !kick.is_closed())
    }

    /// What the store calls after a commit that queued messages.
    fn outbox_hook(&self) -> OutboxHook {
        let links = self.links.clone();
        Arc::new(move |agent| links.queued(*agent))
    }
}

/// The open sessions with each partner, and the running agent's way to
/// open one: how a message queued in this process goes out at once.
#[derive(Debug, Default)]
struct Links {
    /// Oldest first.
    sessions: Mutex<HashMap<[u8; 32], Vec<Arc<Line>>>>,
    /// To the running agent's dispatcher ([`dispatch_loop`]).
    dispatch: Mutex<Option<UnboundedSender<[u8; 32]>>>,
    /// One outbox flush at a time per partner: two sessions with one
    /// partner (each side opened one) would otherwise both send every
    /// queued message.
    flushing: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
}

impl Links {
    fn flush_turn(&self, partner: [u8; 32]) -> Arc<tokio::sync::Mutex<()>> {
        let mut flushing = lock(&self.flushing);
        // Partners no session flushes to any more are forgotten.
        flushing.retain(|_, turn| Arc::strong_count(turn) > 1);
        flushing.entry(partner).or_default().clone()
    }
}

/// One open session, as the outbox sees it.
#[derive(Debug)]
struct Line {
    /// We opened it, so we decide when it closes.
    ours: bool,
    /// When the partner last sent on it (or opened it).
    heard: Mutex<Instant>,
    /// It is taking a message from the partner and reads the outbox next,
    /// to answer on it.
    answering: AtomicBool,
    /// Something was queued for the partner since the session last read
    /// the outbox.
    poked: AtomicBool,
    wake: Notify,
}

/// A session the partner opened is used for a message it did not just ask
/// for only if it spoke this recently: it closes the session when it has
/// been quiet for its linger (Notch's is at least 200 ms), and what we
/// write as it closes is lost. A partner that can be called gets a
/// connection of our own instead.
const FRESH: Duration = Duration::from_millis(100);

impl Links {
    /// Something for `partner` was committed to an outbox: an open session
    /// with it sends it now, or else the running agent connects.
    fn queued(&self, partner: [u8; 32]) {
        if self.poke_open(partner) {
            return;
        }
        if let Some(kick) = lock(&self.dispatch).as_ref() {
            let _ = kick.send(partner);
        }
    }

    /// Wakes an open session with `partner`: the newest one we opened,
    /// else the newest it opened if it spoke on it within [`FRESH`].
    /// `false`: none.
    fn poke_open(&self, partner: [u8; 32]) -> bool {
        self.poke(partner, Some(FRESH))
    }

    /// Wakes any open session with `partner` (one that cannot be called:
    /// its own sessions are the only way to it).
    fn poke_any(&self, partner: [u8; 32]) -> bool {
        self.poke(partner, None)
    }

    fn poke(&self, partner: [u8; 32], fresh: Option<Duration>) -> bool {
        // Under the lock, so that a session closing either takes the poke
        // with it (and passes it on) or is not chosen.
        let sessions = lock(&self.sessions);
        let Some(lines) = sessions.get(&partner) else {
            return false;
        };
        let usable = |l: &&Arc<Line>| {
            l.answering.load(Ordering::SeqCst)
                || fresh.is_none_or(|f| lock(&l.heard).elapsed() <= f)
        };
        let Some(line) = lines
            .iter()
            .rev()
            .find(|l| l.ours)
            .or_else(|| lines.iter().rev().find(usable))
        else {
            return false;
        };
        line.poked.store(true, Ordering::SeqCst);
        line.wake.notify_one();
        true
    }
}

/// A session registered as open with a partner for as long as it lives.
/// When it goes, a message queued after its last read of the outbox is
/// passed on (to another session, or a new connection).
struct Live {
    links: Arc<Links>,
    partner: [u8; 32],
    line: Arc<Line>,
}

impl Live {
    fn new(inner: &Inner, partner: AgentId, ours: bool) -> Live {
        let line = Arc::new(Line {
            ours,
            heard: Mutex::new(Instant::now()),
            answering: AtomicBool::new(!ours),
            poked: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let links = inner.agent.links.clone();
        lock(&links.sessions)
            .entry(*partner.as_bytes())
            .or_default()
            .push(line.clone());
        Live {
            links,
            partner: *partner.as_bytes(),
            line,
        }
    }

    /// The outbox is read next: what was queued so far goes out.
    fn take(&self) {
        self.line.poked.store(false, Ordering::SeqCst);
    }

    /// The partner just sent something: it is answered from the outbox.
    fn heard(&self) {
        *lock(&self.line.heard) = Instant::now();
        self.line.answering.store(true, Ordering::SeqCst);
    }

    /// The session ends with messages still queued for the partner: they
    /// are passed on when it goes.
    fn pass_on(&self) {
        self.line.poked.store(true, Ordering::SeqCst);
    }

    /// Until something is queued for the partner.
    async fn poked(&self) {
        self.line.wake.notified().await;
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        {
            let mut sessions = lock(&self.links.sessions);
            if let Some(lines) = sessions.get_mut(&self.partner) {
                lines.retain(|l| !Arc::ptr_eq(l, &self.line));
                if lines.is_empty() {
                    sessions.remove(&self.partner);
                }
            }
        }
        if self.line.poked.load(Ordering::SeqCst) {
            self.links.queued(self.partner);
        }
    }
}

/// One delivery at a time per partner: the guard removes the mark.
pub(crate) struct Busy {
    inner: Arc<Inner>,
    agent: [u8; 32],
}

impl Busy {
    fn try_new(inner: &Arc<Inner>, agent: [u8; 32]) -> Option<Busy> {
        let mut delivering = lock(&inner.agent.delivering);
        if let Some(again) = delivering.get_mut(&agent) {
            *again = true;
            return None;
        }
        delivering.insert(agent, false);
        Some(Busy {
            inner: inner.clone(),
            agent,
        })
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let again = lock(&self.inner.agent.delivering)
            .remove(&self.agent)
            .unwrap_or(false);
        if again {
            // Someone found this partner busy: what it wanted to send and
            // this delivery did not take goes out now.
            self.inner.agent.links.queued(self.agent);
        }
    }
}

/// The default CHIP user id: fixed by the seed (it follows from the agent
/// key), so a restored wallet keeps it.
pub(crate) fn default_cuid(agent: &AgentId) -> String {
    let text = agent.to_string();
    format!("notch_{}", text.get(..8).unwrap_or(&text))
}

/// Who we are, from the keys and the settings.
pub(crate) async fn identity(inner: &Inner) -> Result<Arc<Identity>, StoreError> {
    let keys = inner.keys.clone();
    let agent_key = keys.agent_key()?;
    let key = keys.tally_key()?;
    let local = LocalKey::from_agent_key(&agent_key);
    let agent = local.agent();
    let (cuid, name, host, port) = inner
        .db(|s| {
            Ok::<_, StoreError>((
                s.setting(apply::CUID_SETTING)?,
                s.setting(apply::NAME_SETTING)?,
                s.setting(apply::AGENT_HOST_SETTING)?,
                s.setting(apply::AGENT_PORT_SETTING)?,
            ))
        })
        .await?;
    Ok(Arc::new(Identity {
        agent,
        local,
        key,
        cuid: cuid.unwrap_or_else(|| default_cuid(&agent)),
        name,
        host,
        port: Arc::new(AtomicU16::new(
            port.and_then(|p| p.parse().ok()).unwrap_or(0),
        )),
    }))
}

/// Binds (or registers with the relay), records the advertised address, and
/// starts the listener (or the relay's control loop) and the outbox loop.
pub(crate) async fn start(
    inner: Arc<Inner>,
    config: AgentConfig,
) -> Result<AgentHandle, AgentError> {
    let reach = match &config.relay {
        Some(relay) => {
            let me = identity(&inner).await?;
            let fail = |reason| AgentError::Relay {
                addr: relay.clone(),
                reason,
            };
            let (relay_host, _) = relay::split_address(relay).map_err(fail)?;
            let registered = relay::register(relay, &me.local, config.peer.handshake_timeout)
                .await
                .map_err(fail)?;
            let host = match &config.advertise {
                Some((host, _)) => host.clone(),
                None => relay_host,
            };
            Reach::Relay {
                addr: registered.addr,
                host,
                port: registered.port,
                registered,
            }
        }
        None => {
            let listener = TcpListener::bind(config.listen.as_str())
                .await
                .map_err(|e| AgentError::Bind {
                    addr: config.listen.clone(),
                    reason: e.to_string(),
                })?;
            let addr = listener.local_addr().map_err(|e| AgentError::Bind {
                addr: config.listen.clone(),
                reason: e.to_string(),
            })?;
            let (host, port) = match &config.advertise {
                Some((host, port)) => (host.clone(), if *port == 0 { addr.port() } else { *port }),
                None if addr.ip().is_unspecified() => {
                    return Err(AgentError::NeedHost {
                        addr: addr.to_string(),
                    });
                }
                None => (addr.ip().to_string(), addr.port()),
            };
            Reach::Listen {
                listener,
                addr,
                host,
                port,
            }
        }
    };
    let (addr, host, port) = match &reach {
        Reach::Listen {
            addr, host, port, ..
        }
        | Reach::Relay {
            addr, host, port, ..
        } => (*addr, host.clone(), *port),
    };
    // The address must be one a ticket can carry.
    let me = identity(&inner).await?;
    crate::ticket::Chad::new(
        &me.cuid,
        crate::ticket::AgentId::from_bytes(*me.agent.as_bytes()),
        &host,
        port,
    )
    .map_err(|e| AgentError::BadAddress {
        host: host.clone(),
        reason: e.to_string(),
    })?;
    relay::record_address(&inner, host.clone(), port).await?;
    *lock(&inner.agent.config) = config.clone();
    let me = identity(&inner).await?;
    // From here on, what a commit queues is sent at once.
    let (kick, kicked) = unbounded_channel();
    *lock(&inner.agent.links.dispatch) = Some(kick);
    let hook = inner.agent.outbox_hook();
    inner
        .db(move |s| {
            s.set_outbox_hook(Some(hook));
            Ok::<_, StoreError>(())
        })
        .await?;
    let relayed = matches!(reach, Reach::Relay { .. });
    let handle_port = me.port.clone();
    let reached = match reach {
        Reach::Listen { listener, .. } => tokio::spawn(accept_loop(
            inner.clone(),
            me.clone(),
            config.clone(),
            listener,
        )),
        Reach::Relay { registered, .. } => {
            let relay = config.relay.clone().unwrap_or_default();
            tokio::spawn(relay::relay_loop(
                inner.clone(),
                me.clone(),
                config.clone(),
                relay,
                registered,
            ))
        }
    };
    let dispatch = tokio::spawn(dispatch_loop(
        inner.clone(),
        me.clone(),
        config.clone(),
        kicked,
    ));
    let outbox = tokio::spawn(outbox_loop(inner, me, config));
    if relayed {
        tracing::info!(relay = %addr, %host, port, "tally agent reached through the relay");
    } else {
        tracing::info!(%addr, %host, port, "tally agent listening");
    }
    Ok(AgentHandle {
        addr,
        host,
        port: handle_port,
        relayed,
        tasks: vec![reached, dispatch, outbox],
    })
}

/// How partners reach the agent being started.
enum Reach {
    Listen {
        listener: TcpListener,
        addr: SocketAddr,
        host: String,
        port: u16,
    },
    Relay {
        registered: relay::Registered,
        addr: SocketAddr,
        host: String,
        port: u16,
    },
}

/// Delivers at once what was just queued for a partner no session is open
/// with (told by the store's hook through [`Links::queued`]), one task per
/// partner, so that one slow partner holds up no other.
async fn dispatch_loop(
    inner: Arc<Inner>,
    me: Arc<Identity>,
    config: AgentConfig,
    mut kicked: UnboundedReceiver<[u8; 32]>,
) {
    // Dropped (and with it every delivery task) when this task is.
    let mut tasks = JoinSet::new();
    while let Some(first) = kicked.recv().await {
        while tasks.try_join_next().is_some() {}
        let mut partners = vec![first];
        while let Ok(partner) = kicked.try_recv() {
            if !partners.contains(&partner) {
                partners.push(partner);
            }
        }
        for partner in partners {
            let (inner, me, config) = (inner.clone(), me.clone(), config.clone());
            tasks.spawn(async move { deliver_partner(&inner, &me, &config, partner).await });
        }
    }
}

/// Delivers what is due for `partner` in both outboxes, on a session
/// opened for it, unless one has opened meanwhile.
async fn deliver_partner(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    config: &AgentConfig,
    partner: [u8; 32],
) {
    if inner.agent.links.poke_open(partner) {
        return;
    }
    let now = now_ms();
    match inner.db(move |s| s.outbox_for(&partner)).await {
        Ok(rows) => {
            let rows: Vec<OutboxRow> = rows.into_iter().filter(|r| r.next_attempt <= now).collect();
            // A partner we cannot call is reached on a session it opened.
            if rows.iter().any(|r| r.host.is_none() || r.port.is_none())
                && inner.agent.links.poke_any(partner)
            {
                return;
            }
            if !rows.is_empty()
                && let Err(e) = deliver_rows(inner, me, config, rows, None).await
            {
                tracing::warn!("the tally outbox could not be read: {e}");
            }
        }
        Err(e) => tracing::warn!("the tally outbox could not be read: {e}"),
    }
    // What that session did not take (all of it, if there was none).
    let now = now_ms();
    match inner.db(move |s| s.chit_outbox_for(&partner)).await {
        Ok(rows) => {
            let rows: Vec<_> = rows.into_iter().filter(|r| r.next_attempt <= now).collect();
            if rows.iter().any(|r| r.host.is_none() || r.port.is_none())
                && inner.agent.links.poke_any(partner)
            {
                return;
            }
            if !rows.is_empty() {
                chits::deliver_rows(inner, me, config, rows).await;
            }
        }
        Err(e) => tracing::warn!("the chit outbox could not be read: {e}"),
    }
}

async fn accept_loop(
    inner: Arc<Inner>,
    me: Arc<Identity>,
    config: AgentConfig,
    listener: TcpListener,
) {
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    // Dropped (and with it every connection task) when this task is.
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!("the tally agent cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(%from, "too many tally connections; closing this one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (inner, me, config) = (inner.clone(), me.clone(), config.clone());
        tasks.spawn(async move {
            serve(&inner, &me, &config, stream).await;
            drop(permit);
        });
    }
}

async fn outbox_loop(inner: Arc<Inner>, me: Arc<Identity>, config: AgentConfig) {
    loop {
        if let Err(e) = deliver_due(&inner, &me, &config).await {
            tracing::warn!("the tally outbox could not be read: {e}");
        }
        if let Err(e) = chits::deliver_due(&inner, &me, &config).await {
            tracing::warn!("the chit outbox could not be read: {e}");
        }
        let next = inner
            .db(|s| {
                let tally = s.next_outbox_attempt()?;
                let chit = s.next_chit_outbox_attempt()?;
                Ok::<_, StoreError>(match (tally, chit) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                })
            })
            .await
            .ok()
            .flatten();
        let wait = match next {
            Some(at) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
                .clamp(Duration::from_millis(20), config.poll),
            None => config.poll,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = inner.agent.wake.notified() => {}
        }
    }
}

/// Serves one connection a partner opened.
async fn serve(inner: &Arc<Inner>, me: &Arc<Identity>, config: &AgentConfig, stream: TcpStream) {
    let incoming = match peer::respond(stream, &me.local, &config.peer).await {
        Ok(incoming) => incoming,
        Err(e) => {
            tracing::debug!("a tally connection failed its handshake: {e}");
            return;
        }
    };
    let remote = incoming.remote_agent();
    let first_contact = matches!(incoming.kind(), HandshakeKind::FirstContact);
    let (mut session, live) = match incoming.kind() {
        HandshakeKind::FirstContact => {
            let hello = incoming.hello().cloned().unwrap_or(Value::Null);
            // Open from here: what the ticket queues goes out on it.
            let live = Live::new(inner, remote, false);
            let answer = on_ticket(inner, me, remote, &hello).await;
            if matches!(answer, TicketAnswer::Trouble) {
                // Our store failed: say nothing, so the partner tries again.
                incoming.reject();
                return;
            }
            let Ok(mut session) = incoming.accept().await else {
                return;
            };
            if let TicketAnswer::Refused { refusal, token } = answer {
                tracing::info!(%remote, "refused a tally ticket: {refusal}");
                let message = refusal_message(me, &hello, &refusal, token.as_deref());
                let _ = session.send(&message).await;
                session.close().await;
                return;
            }
            (session, live)
        }
        HandshakeKind::Reconnect => {
            let known = inner
                .db(move |s| s.knows_agent(remote.as_bytes()))
                .await
                .unwrap_or(false);
            if !known {
                tracing::debug!(%remote, "a reconnection from an agent we share no tally with");
                incoming.reject();
                return;
            }
            let hello = incoming.hello().cloned();
            let Ok(session) = incoming.accept().await else {
                return;
            };
            // Open from here: the answer to the first message goes out on
            // it, not on a connection of its own.
            let live = Live::new(inner, remote, false);
            if let Some(hello) = hello {
                route(inner, me, remote, hello).await;
            }
            (session, live)
        }
    };
    let idle = config.peer.read_timeout.unwrap_or(Duration::from_secs(60));
    if first_contact {
        // A session opened for a ticket: its answer (queued by `on_ticket`)
        // goes out first, before anything else we have for this partner
        // (the chain checks of the tallies we already share with it): the
        // scanner waits for that answer (PROTOCOL §14).
        let (sender, _) = session.halves();
        if !flush(inner, me, sender, remote, &live).await {
            drop(live);
            session.close().await;
            return;
        }
    }
    converse(inner, me, &mut session, remote, &live, idle, idle).await;
    drop(live);
    session.close().await;
}

/// Talks with `remote` on an open session: sends what our outbox holds for
/// it, at once whenever more is queued, and takes its messages, until it is
/// quiet for `idle` (`first` for the first message; a message we send
/// waits `idle` for its answer) or the session ends.
async fn converse(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    session: &mut Session<TcpStream>,
    remote: AgentId,
    live: &Live,
    first: Duration,
    idle: Duration,
) {
    use futures_util::StreamExt;
    let (sender, receiver) = session.halves();
    // One receive stays pending for the whole session, also while we send:
    // a partner flushing to us at the same time as we flush to it must find
    // us reading, or both block on full socket buffers. (A receive must not
    // be dropped half way through a packet either.) The stream ends after
    // the first error that ends the session, and stays ended.
    let incoming = futures_util::stream::unfold(Some(receiver), |receiver| async move {
        let receiver = receiver?;
        let received = receiver.recv().await;
        let ended = matches!(&received, Err(e) if !matches!(e, RecvError::NotJson(_)));
        Some((received, (!ended).then_some(receiver)))
    })
    // Ended, it answers `None` to every later poll (an unfused `Unfold`
    // panics when polled again).
    .fuse();
    tokio::pin!(incoming);
    let mut inbox = Inbox::default();
    tracing::trace!(%remote, ours = live.line.ours, "tally session");
    // A session with the partner: check every chit chain we share with it
    // (PROTOCOL §13, `sync()` on reconnection).
    if !inbox
        .while_sending(&mut incoming, chits::sync_over(inner, me, sender, remote))
        .await
    {
        live.pass_on();
        return;
    }
    let mut deadline = Instant::now() + first;
    loop {
        if !inbox
            .while_sending(&mut incoming, flush(inner, me, sender, remote, live))
            .await
        {
            // What is left in the outbox goes out on another session or a
            // new connection, whose chain check also brings back the chits
            // this one wrote but the partner may not have read.
            live.pass_on();
            return;
        }
        let received = match inbox.held.pop_front() {
            Some(held) => held,
            None => loop {
                tokio::select! {
                    biased;
                    received = incoming.next() => match received {
                        Some(received) => break received,
                        None => return,
                    },
                    () = live.poked() => {
                        if !inbox
                            .while_sending(&mut incoming, flush(inner, me, sender, remote, live))
                            .await
                        {
                            live.pass_on();
                            return;
                        }
                        deadline = deadline.max(Instant::now() + idle);
                        if let Some(held) = inbox.held.pop_front() {
                            break held;
                        }
                    }
                    () = tokio::time::sleep_until(deadline) => {
                        let drained = drain(inner, me, remote, sender, &mut incoming, &mut inbox).await;
                        tracing::debug!(%remote, drained, "quiet tally session closed");
                        return;
                    }
                }
            },
        };
        live.heard();
        tracing::trace!(%remote, held = inbox.held.len(), "routing");
        match received {
            Ok(message) => route(inner, me, remote, message).await,
            Err(RecvError::NotJson(_)) => {}
            Err(e) => {
                tracing::debug!(%remote, "tally session ended: {e}");
                return;
            }
        }
        deadline = Instant::now() + idle;
    }
}

/// Ends a quiet session without losing what the partner sent meanwhile:
/// our direction closes first, then what the partner still sends (it may
/// be flushing as we decide to stop) is read and routed until it closes
/// too. Bounded: each message within [`DRAIN_GAP`], all within
/// [`DRAIN_LIMIT`]. Answers queued meanwhile are passed on with the
/// session's end.
async fn drain<I>(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    remote: AgentId,
    sender: &mut SessionSender<TcpStream>,
    incoming: &mut std::pin::Pin<&mut I>,
    inbox: &mut Inbox,
) -> usize
where
    I: futures_util::Stream<Item = Result<Value, RecvError>>,
{
    use futures_util::StreamExt;
    sender.shutdown().await;
    let end = Instant::now() + DRAIN_LIMIT;
    let mut drained = 0;
    loop {
        let received = match inbox.held.pop_front() {
            Some(held) => held,
            None => {
                let gap = (Instant::now() + DRAIN_GAP).min(end);
                match tokio::time::timeout_at(gap, incoming.next()).await {
                    Ok(Some(received)) => received,
                    Ok(None) | Err(_) => return drained,
                }
            }
        };
        match received {
            Ok(message) => {
                drained += 1;
                route(inner, me, remote, message).await;
            }
            Err(RecvError::NotJson(_)) => {}
            Err(_) => return drained,
        }
    }
}

/// How long a closing session waits for each of the partner's last
/// messages, and for all of them.
const DRAIN_GAP: Duration = Duration::from_secs(5);
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Messages received while we were sending, kept in order to be routed
/// once the send is done.
#[derive(Default)]
struct Inbox {
    held: std::collections::VecDeque<Result<Value, RecvError>>,
}

impl Inbox {
    /// At most this many messages wait while we send: past it we stop
    /// reading (and a partner that keeps writing waits, as TCP makes it).
    /// Each is one packet, so at most 64 KiB.
    const MAX_HELD: usize = 1024;

    /// Runs `send` to its end, receiving into the inbox meanwhile. What
    /// `send` answers (`false`: the session failed).
    async fn while_sending<I, F>(&mut self, incoming: &mut std::pin::Pin<&mut I>, send: F) -> bool
    where
        I: futures_util::Stream<Item = Result<Value, RecvError>>,
        F: std::future::Future<Output = bool>,
    {
        use futures_util::StreamExt;
        tokio::pin!(send);
        let mut open = true;
        loop {
            if !open || self.held.len() >= Self::MAX_HELD {
                tracing::trace!(open, held = self.held.len(), "sending without reading");
                return send.await;
            }
            tokio::select! {
                biased;
                sent = &mut send => return sent,
                received = incoming.next() => match received {
                    Some(received) => {
                        open = received.as_ref().is_ok()
                            || matches!(received, Err(RecvError::NotJson(_)));
                        self.held.push_back(received);
                    }
                    None => open = false,
                },
            }
        }
    }
}

/// Sends what both outboxes hold for `remote`. `false` if the session
/// failed.
async fn flush(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    sender: &mut SessionSender<TcpStream>,
    remote: AgentId,
    live: &Live,
) -> bool {
    let turn = live.links.flush_turn(*remote.as_bytes());
    let _turn = turn.lock().await;
    live.take();
    let sent = flush_over(inner, me, sender, remote).await
        && chits::flush_over(inner, me, sender, remote).await;
    live.line.answering.store(false, Ordering::SeqCst);
    sent
}

/// Sends the partner's queued messages (tickets excepted: they open their
/// own first contact) on an open session. `false` if the session failed.
async fn flush_over(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    session: &mut SessionSender<TcpStream>,
    remote: AgentId,
) -> bool {
    let rows = match inner.db(move |s| s.outbox_for(remote.as_bytes())).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!("the tally outbox could not be read: {e}");
            return true;
        }
    };
    for row in rows.into_iter().filter(|r| r.action != Action::Ticket) {
        let message = for_attempt(&row.message, row.attempts.saturating_add(1));
        if let Err(e) = session.send(&message).await {
            tracing::debug!(%remote, "could not send a tally message: {e}");
            return false;
        }
        delivered(inner, me, row).await;
    }
    true
}

/// Records that a message went out: the tally moves on and the message
/// leaves the outbox, in one transaction.
async fn delivered(inner: &Arc<Inner>, me: &Arc<Identity>, row: OutboxRow) {
    let me = me.clone();
    let result = inner
        .db(move |s| {
            s.write(|tx| {
                let mut events = Vec::new();
                if let Some(tally) = tx.tally(&row.tally)?
                    && let Ok(applied) = apply::apply(
                        tx,
                        &me,
                        Target::Stored(tally),
                        &Event::Delivered(row.action),
                        None,
                    )?
                {
                    events = applied.events;
                }
                tx.delete_outbox(row.id)?;
                Ok(events)
            })
        })
        .await;
    match result {
        Ok(events) => inner.events.emit_all(events),
        Err(e) => tracing::warn!("a delivered tally message could not be recorded: {e}"),
    }
}

async fn failed(inner: &Arc<Inner>, rows: Vec<OutboxRow>, retry: RetryPolicy, error: String) {
    let result = inner
        .db(move |s| {
            s.write(|tx| {
                for row in &rows {
                    let next = after_ms(retry.delay(row.attempts.saturating_add(1)));
                    tx.outbox_failed(row.id, next, &error)?;
                }
                Ok(())
            })
        })
        .await;
    if let Err(e) = result {
        tracing::warn!("a failed tally delivery could not be recorded: {e}");
    }
}

/// A message a partner sent, applied to the tally it is about.
async fn route(inner: &Arc<Inner>, me: &Arc<Identity>, remote: AgentId, message: Value) {
    let target = message.get("target").and_then(Value::as_str);
    let action = message
        .get("action")
        .and_then(Value::as_str)
        .and_then(Action::from_name);
    if target == Some("chit") {
        tracing::trace!(%remote, action = ?message.get("action"), "chit message");
        chits::on_message(inner, me, remote, message).await;
        return;
    }
    let (Some("tally"), Some(action)) = (target, action) else {
        // Routes and lifts are not handled yet.
        tracing::debug!(%remote, ?target, "a peer message this agent does not handle");
        return;
    };
    if action == Action::Offer && lock(&inner.agent.scans).contains_key(remote.as_bytes()) {
        // The offer of a tally we do not hold yet, while a scan of this
        // agent's ticket waits for its answer: the scan applies it.
        let uuid = message
            .get("object")
            .and_then(|o| o.get("uuid"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let known = match uuid {
            Some(uuid) => inner
                .db(move |s| s.tally_by_uuid(&uuid))
                .await
                .map(|row| row.is_some())
                .unwrap_or(true),
            None => true,
        };
        if !known
            && let Some(scan) = lock(&inner.agent.scans).get(remote.as_bytes())
            && scan.send(message.clone()).is_ok()
        {
            return;
        }
    }
    if action == Action::Ticket {
        // A ticket on an open session: the answer goes out with the outbox.
        if let TicketAnswer::Refused { refusal, .. } = on_ticket(inner, me, remote, &message).await
        {
            tracing::info!(%remote, "refused a tally ticket: {refusal}");
        }
        return;
    }
    let me2 = me.clone();
    let result = inner
        .db(move |s| {
            s.write(|tx| {
                let Some((target, event)) = event_for(tx, remote, action, &message)? else {
                    return Ok(Err(Refusal::NoTally));
                };
                apply::apply(tx, &me2, target, &event, None)
            })
        })
        .await;
    match result {
        Ok(Ok(applied)) => inner.events.emit_all(applied.events),
        Ok(Err(refusal)) => {
            tracing::info!(%remote, action = action.as_str(), "refused a tally message: {refusal}")
        }
        Err(e) => tracing::warn!("a tally message could not be stored: {e}"),
    }
}

/// The tally a message is about and the event it is.
fn event_for(
    tx: &crate::store::StoreTx<'_>,
    remote: AgentId,
    action: Action,
    message: &Value,
) -> Result<Option<(Target, Event)>, StoreError> {
    let object = message.get("object").cloned().unwrap_or(Value::Null);
    let uuid = object
        .get("uuid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let by_uuid = |tx: &crate::store::StoreTx<'_>| -> Result<Option<TallyRow>, StoreError> {
        match &uuid {
            Some(u) => tx.tally_by_uuid(u),
            None => Ok(None),
        }
    };
    let stored = |row: Option<TallyRow>| row.map(Target::Stored).unwrap_or(Target::Absent);
    Ok(Some(match action {
        Action::Offer | Action::Open => {
            let Ok(record) = TallyRecord::from_value(object) else {
                return Ok(None);
            };
            let row = match by_uuid(tx)? {
                Some(row) => Some(row),
                None if action == Action::Offer => tx.waiting_ticket(remote.as_bytes())?,
                None => None,
            };
            let event = if action == Action::Offer {
                Event::Offer {
                    from: remote,
                    record,
                }
            } else {
                Event::Open {
                    from: remote,
                    record,
                }
            };
            (stored(row), event)
        }
        Action::Void => (stored(by_uuid(tx)?), Event::Void { from: remote }),
        Action::Refuse => {
            let token = message
                .get("ticket")
                .and_then(|t| t.get("token"))
                .and_then(Value::as_str);
            let row = tx.tallies()?.into_iter().find(|r| {
                r.state == TallyState::Ticket
                    && r.partner_agent == Some(*remote.as_bytes())
                    && Ticket::from_json(&serde_json::from_str(&r.record).unwrap_or(Value::Null))
                        .is_ok_and(|t| Some(t.token()) == token)
            });
            let reason = message
                .get("reason")
                .and_then(|r| r.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("the ticket's issuer refused it")
                .chars()
                .take(300)
                .collect();
            (
                stored(row),
                Event::TicketRefused {
                    from: remote,
                    reason,
                },
            )
        }
        Action::Ticket => return Ok(None),
    }))
}

/// What the issuer's agent answers a ticket.
#[derive(Debug)]
enum TicketAnswer {
    /// Taken (or a repeat): the offer is in the outbox.
    Accepted,
    Refused {
        refusal: Refusal,
        token: Option<String>,
    },
    /// Our own store failed; no answer.
    Trouble,
}

async fn on_ticket(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    remote: AgentId,
    hello: &Value,
) -> TicketAnswer {
    let ticket = hello.get("ticket");
    let token = ticket
        .and_then(|t| t.get("token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.len() <= crate::ticket::MAX_TOKEN_LEN)
        .map(str::to_owned);
    let Some(token) = token else {
        return TicketAnswer::Refused {
            refusal: Refusal::TicketUnknown,
            token: None,
        };
    };
    let cert = ticket
        .and_then(|t| t.get("cert"))
        .cloned()
        .unwrap_or(Value::Null);
    let (me2, tok) = (me.clone(), token.clone());
    let result = inner
        .db(move |s| {
            s.write(|tx| {
                let Some(stored) = tx.ticket_token(&tok)? else {
                    return Ok(Err(Refusal::TicketUnknown));
                };
                let Some(row) = tx.tally(&stored.tally)? else {
                    return Ok(Err(Refusal::TicketUnknown));
                };
                let event = Event::Ticket {
                    from: remote,
                    cert,
                    token: TokenInfo {
                        expires: stored.expires,
                        used_by: stored.used_by.map(AgentId::from_bytes),
                    },
                    now: unix_now(),
                };
                apply::apply(tx, &me2, Target::Stored(row), &event, Some(&tok))
            })
        })
        .await;
    match result {
        Ok(Ok(applied)) => {
            inner.events.emit_all(applied.events);
            TicketAnswer::Accepted
        }
        Ok(Err(refusal)) => TicketAnswer::Refused {
            refusal,
            token: Some(token),
        },
        Err(e) => {
            tracing::warn!("a tally ticket could not be checked: {e}");
            TicketAnswer::Trouble
        }
    }
}

/// Notch's answer to a ticket it does not take: MyCHIPs closes such a
/// connection without a word, which leaves the scanner guessing; Notch
/// completes the handshake and says why. A MyCHIPs agent ignores the
/// unknown action.
fn refusal_message(me: &Identity, hello: &Value, refusal: &Refusal, token: Option<&str>) -> Value {
    json!({
        "target": "tally",
        "action": Action::Refuse.as_str(),
        "to": hello.get("from").cloned().unwrap_or(Value::Null),
        "from": me.chad(),
        "ticket": {"token": token},
        "reason": {"code": refusal.code(), "message": refusal.to_string()},
    })
}

/// What one pass over the outbox did.
pub(crate) async fn deliver_due(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    config: &AgentConfig,
) -> Result<DeliveryReport, StoreError> {
    let rows = inner.db(|s| s.outbox_due(now_ms())).await?;
    deliver_rows(inner, me, config, rows, None).await
}

/// Delivers every message for `partner` now, whatever their retry time:
/// the person just asked for it. `held`: the partner's delivery mark,
/// taken before the change was written, so that the running agent (told
/// when it committed) leaves this delivery to us.
pub(crate) async fn deliver_now(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    partner: [u8; 32],
    held: Option<Busy>,
) -> Result<DeliveryReport, StoreError> {
    let mut config = inner.agent.config();
    // The person waits for this: do not linger for more than a moment.
    config.linger = config.linger.min(Duration::from_millis(200));
    let rows = inner.db(move |s| s.outbox_for(&partner)).await?;
    deliver_rows(inner, me, &config, rows, held).await
}

async fn deliver_rows(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    config: &AgentConfig,
    rows: Vec<OutboxRow>,
    mut held: Option<Busy>,
) -> Result<DeliveryReport, StoreError> {
    let mut groups: Vec<([u8; 32], Vec<OutboxRow>)> = Vec::new();
    let mut report = DeliveryReport::default();
    for row in rows {
        if row.host.is_none() || row.port.is_none() {
            // The partner cannot be called; it gets the message when it
            // calls us.
            report.waiting += 1;
            continue;
        }
        match groups
            .iter_mut()
            .find(|(agent, _)| *agent == row.partner_agent)
        {
            Some((_, group)) => group.push(row),
            None => groups.push((row.partner_agent, vec![row])),
        }
    }
    let runs = groups.into_iter().map(|(agent, group)| {
        let busy = held.take_if(|b| b.agent == agent);
        deliver_group(inner, me, config, agent, group, busy)
    });
    let parts = futures_util::future::join_all(runs).await;
    drop(held);
    for part in parts {
        report.delivered += part.delivered;
        report.failed += part.failed;
        report.waiting += part.waiting;
    }
    let left = inner.db(|s| s.outbox()).await?;
    report.queued = left.len();
    Ok(report)
}

async fn deliver_group(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    config: &AgentConfig,
    agent: [u8; 32],
    rows: Vec<OutboxRow>,
    held: Option<Busy>,
) -> DeliveryReport {
    let mut report = DeliveryReport::default();
    let Some(_busy) = held.or_else(|| Busy::try_new(inner, agent)) else {
        report.waiting += rows.len();
        return report;
    };
    let remote = AgentId::from_bytes(agent);
    let (tickets, others): (Vec<OutboxRow>, Vec<OutboxRow>) =
        rows.into_iter().partition(|r| r.action == Action::Ticket);
    for row in tickets {
        if present_ticket(inner, me, config, remote, row).await {
            report.delivered += 1;
        } else {
            report.failed += 1;
        }
    }
    let Some(first) = others.first().cloned() else {
        return report;
    };
    let (Some(host), Some(port)) = (first.host.clone(), first.port) else {
        report.waiting += others.len();
        return report;
    };
    let hello = for_attempt(&first.message, first.attempts.saturating_add(1));
    match peer::connect(
        (host.as_str(), port),
        &me.local,
        &remote,
        &hello,
        &config.peer,
    )
    .await
    {
        Err(e) => {
            tracing::debug!(%remote, "tally partner not reached: {e}");
            report.failed += others.len();
            failed(inner, others, config.retry, e.to_string()).await;
        }
        Ok(mut session) => {
            let live = Live::new(inner, remote, true);
            // The first message went inside the handshake; the rest go out
            // as the conversation starts.
            delivered(inner, me, first).await;
            let ids: Vec<i64> = others.iter().map(|r| r.id).collect();
            converse(
                inner,
                me,
                &mut session,
                remote,
                &live,
                config.linger,
                config.linger,
            )
            .await;
            drop(live);
            session.close().await;
            let left = inner
                .db(move |s| s.outbox_for(&agent))
                .await
                .map(|rows| rows.iter().filter(|r| ids.contains(&r.id)).count())
                .unwrap_or(0);
            report.delivered += ids.len().saturating_sub(left);
            report.failed += left;
        }
    }
    report
}

/// How many times an issuer's agent may close the connection on our ticket
/// without a word (MyCHIPs's answer to a token it does not take) before we
/// stop asking.
const SILENT_REFUSALS: u32 = 3;

/// Presents a queued ticket (Noise IK) and waits for the issuer's answer.
/// `true` if the issuer's agent took the connection.
async fn present_ticket(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    config: &AgentConfig,
    remote: AgentId,
    row: OutboxRow,
) -> bool {
    let id = row.tally.clone();
    let tally = inner.db(move |s| s.tally(&id)).await.ok().flatten();
    let Some(tally) = tally.filter(|t| t.state == TallyState::Ticket) else {
        let done = row.id;
        let _ = inner
            .db(move |s| s.write(|tx| tx.delete_outbox(done)))
            .await;
        return false;
    };
    let expired = serde_json::from_str::<Value>(&tally.record)
        .ok()
        .and_then(|v| Ticket::from_json(&v).ok())
        .and_then(|t| t.check(unix_now()).err());
    if let Some(expired) = expired {
        give_up(
            inner,
            me,
            tally,
            format!("{expired}; its issuer's agent could not be reached before"),
        )
        .await;
        return false;
    }
    let (Some(host), Some(port)) = (row.host.clone(), row.port) else {
        return false;
    };
    let attempt = row.attempts.saturating_add(1);
    let hello = for_attempt(&row.message, attempt);
    match peer::connect(
        (host.as_str(), port),
        &me.local,
        &remote,
        &hello,
        &config.peer,
    )
    .await
    {
        Err(ConnectError::Refused) if attempt >= SILENT_REFUSALS => {
            give_up(
                inner,
                me,
                tally,
                format!(
                    "the issuer's agent closed the connection without answering, {attempt} times: it does not take this ticket (used, expired or unknown)"
                ),
            )
            .await;
            false
        }
        Err(e) => {
            tracing::debug!(%remote, "ticket issuer not reached: {e}");
            failed(inner, vec![row], config.retry, e.to_string()).await;
            false
        }
        Ok(mut session) => {
            let live = Live::new(inner, remote, true);
            // Taken: the answer (an offer, or a refusal) clears the row. If
            // it never comes, the row is presented again later, which the
            // issuer takes as a repeat and answers with its offer again.
            failed(
                inner,
                vec![row],
                config.retry,
                "sent; waiting for the issuer's offer".into(),
            )
            .await;
            converse(
                inner,
                me,
                &mut session,
                remote,
                &live,
                config.reply_timeout,
                config.linger,
            )
            .await;
            drop(live);
            session.close().await;
            true
        }
    }
}

async fn give_up(inner: &Arc<Inner>, me: &Arc<Identity>, tally: TallyRow, reason: String) {
    let me = me.clone();
    let result = inner
        .db(move |s| {
            s.write(|tx| {
                apply::apply(
                    tx,
                    &me,
                    Target::Stored(tally),
                    &Event::GiveUp { reason },
                    None,
                )
            })
        })
        .await;
    match result {
        Ok(Ok(applied)) => inner.events.emit_all(applied.events),
        Ok(Err(refusal)) => tracing::debug!("a scanned ticket was not given up: {refusal}"),
        Err(e) => tracing::warn!("a scanned ticket could not be given up: {e}"),
    }
}

/// The events a change caused, for the shells (kept here so ops can share).
pub(crate) fn emit(inner: &Inner, events: Vec<WalletEvent>) {
    inner.events.emit_all(events);
}
