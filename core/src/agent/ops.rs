//! What the person does with tallies, behind the `Wallet` methods: issue a
//! ticket, scan one, list and show tallies, accept or refuse an offer. Each
//! change goes through [`super::apply`] in one store transaction; a message
//! it queues is tried at once, and the agent keeps trying if the partner is
//! offline.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};

use super::apply::{self, Target, after_ms, cert_name, for_attempt};
use super::{Busy, Identity, deliver_now, emit, identity};
use crate::context::{Inner, unix_now};
use crate::events::WalletEvent;
use crate::keys::KeyError;
use crate::peer::{self, AgentId, ConnectError};
use crate::store::{ChitOutboxRow, NewOutbox, OutboxRow, StoreError, TallyRow};
use crate::tally::lifecycle::{Action, Event, Refusal, TallyState};
use crate::tally::{Side, TallyRecord, format_date};
use crate::ticket::{Chad, ScanError, Ticket, TicketError};

/// MyCHIPs's tally contract (`contract/Tally_Contract.yaml`, version 1),
/// referred to by every tally Notch drafts; `rid` is the document's hash.
fn agreement() -> Value {
    json!({
        "domain": "mychips.org",
        "name": "Tally_Contract",
        "version": 1,
        "rid": "byZENT6Lqdub9ew8tQnvyTGgVduELz-j6zfjHM-tgs8",
    })
}

/// MyCHIPs's default token lifetime (`schema/tokens.wms`: 45 minutes).
pub const DEFAULT_TICKET_LIFETIME: Duration = Duration::from_secs(45 * 60);

/// The draft a ticket invites to.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketOptions {
    /// How long the ticket is good for.
    pub expires_in: Duration,
    /// Our half: `Stock` (vendor, MyCHIPs's default for the drafter) or
    /// `Foil` (client).
    pub side: Side,
    /// The credit terms we grant the partner (MyCHIPs credit terms, e.g.
    /// `{"limit": 100}`).
    pub my_terms: Value,
    /// The terms we ask the partner to grant us.
    pub partner_terms: Value,
    pub comment: Option<String>,
}

impl Default for TicketOptions {
    fn default() -> Self {
        Self {
            expires_in: DEFAULT_TICKET_LIFETIME,
            side: Side::Stock,
            my_terms: json!({}),
            partner_terms: json!({}),
            comment: None,
        }
    }
}

/// Who the wallet is in its tallies: its CHIP user id at its agent and the
/// name in its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TallyProfile {
    pub cuid: String,
    pub name: Option<String>,
    /// The agent id (base64url X25519 key) tickets name.
    pub agent: String,
    /// Where partners reach the agent, once it has listened somewhere.
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// One tally, for lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TallyInfo {
    /// The wallet's id of the tally (what the commands take).
    pub id: String,
    /// The record's uuid, once known.
    pub uuid: Option<String>,
    /// MyCHIPs's state name (`P.offer`, `open`, …).
    pub state: TallyState,
    /// What the state means, in words.
    pub description: String,
    /// Our half: `stock` or `foil`.
    pub side: Option<String>,
    /// The partner's CHIP address, `cid:agent` (MyCHIPs `part_addr`).
    pub partner: Option<String>,
    pub partner_name: Option<String>,
    /// The partner's CHIP user id and agent id (base64url X25519 key).
    pub partner_cid: Option<String>,
    pub partner_agent: Option<String>,
    /// Where the partner's agent is reached, `HOST:PORT`.
    pub partner_address: Option<String>,
    /// Invoices of the partner waiting for our approval or rejection.
    pub invoices_to_approve: usize,
    /// The balance of the good chits in milliCHIPs, from our side:
    /// positive when the partner owes us (0 for a tally that is not open).
    pub balance: i64,
    /// The credit we grant the partner now, milliCHIPs (the tally's terms
    /// or our latest setting chit; `None` before the tally is open or when
    /// it cannot be enforced).
    pub my_limit: Option<u64>,
    /// The credit the partner grants us now, milliCHIPs.
    pub partner_limit: Option<u64>,
    /// What we grant the partner, and what it grants us.
    pub my_terms: Value,
    pub partner_terms: Value,
    pub comment: Option<String>,
    /// Why it is void.
    pub reason: Option<String>,
    /// A message for the partner is waiting to be delivered.
    pub queued: bool,
    /// Why the last delivery attempt failed, if it did.
    pub delivery_error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// One tally with its record, for `tally show`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TallyDetail {
    #[serde(flatten)]
    pub info: TallyInfo,
    /// The record exactly as signed (or the draft / the scanned ticket).
    pub record: Value,
    /// The ticket link of a draft still waiting for its partner.
    pub ticket: Option<String>,
    /// How many chits the tally holds. The chits themselves come in pages
    /// ([`crate::Wallet::tally_chit_page`]): a tally of 10,000 chits shows
    /// as fast as a new one.
    pub chit_count: u64,
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    pub delivered: usize,
    pub failed: usize,
    /// For partners we cannot call (they get it when they call us), or
    /// being delivered by someone else right now.
    pub waiting: usize,
    /// Messages left in the outbox afterwards.
    pub queued: usize,
}

/// Why a ticket could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum TallyTicketError {
    #[error(
        "this wallet's agent has no address partners can reach yet: start it once (`notch agent --listen HOST:PORT`) so tickets can say where to connect"
    )]
    NoAgentAddress,
    #[error("{0}")]
    BadOptions(String),
    #[error(transparent)]
    Ticket(#[from] TicketError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a scanned ticket did not lead to a tally.
#[derive(Debug, thiserror::Error)]
pub enum TallyScanError {
    #[error(transparent)]
    Ticket(#[from] TicketError),
    #[error(transparent)]
    Image(#[from] ScanError),
    #[error(
        "this is one of this wallet's own tickets: give it to the person you want a tally with"
    )]
    OwnTicket,
    #[error("the ticket's issuer refused it: {reason}")]
    Refused { code: String, reason: String },
    #[error("the ticket's issuer offered a tally this wallet cannot take: {0}")]
    BadOffer(Refusal),
    #[error("could not open a secure connection to the ticket's issuer: {0}")]
    Handshake(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why tallies could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TallyError {
    #[error("there is no tally {0} in this wallet")]
    UnknownTally(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why accepting or refusing a tally did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TallyActionError {
    #[error("there is no tally {0} in this wallet")]
    UnknownTally(String),
    #[error("{0}")]
    NotNow(Refusal),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A random (version 4) UUID, as MyCHIPs gives tallies.
pub(crate) fn new_uuid() -> Result<String, KeyError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| KeyError::NoRandomness(e.to_string()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

fn ticket_agent(me: &Identity) -> crate::ticket::AgentId {
    crate::ticket::AgentId::from_bytes(*me.agent.as_bytes())
}

pub(crate) async fn profile(inner: &Inner) -> Result<TallyProfile, TallyError> {
    let me = identity(inner).await?;
    Ok(TallyProfile {
        cuid: me.cuid.clone(),
        name: me.name.clone(),
        agent: me.agent.to_string(),
        host: me.host.clone(),
        port: me.port(),
    })
}

/// Sets the CHIP user id and/or the certificate name (tallies already
/// signed keep the certificate they were signed with).
pub(crate) async fn set_profile(
    inner: &Inner,
    cuid: Option<String>,
    name: Option<String>,
) -> Result<TallyProfile, TallyTicketError> {
    let me = identity(inner).await?;
    if let Some(cuid) = &cuid {
        // The same rules as a ticket's CHIP address.
        Chad::new(cuid.trim(), ticket_agent(&me), "localhost", 1)?;
    }
    if let Some(name) = &name
        && (name.trim().is_empty()
            || name.chars().count() > 100
            || name.chars().any(char::is_control))
    {
        return Err(TallyTicketError::BadOptions(
            "a name is 1 to 100 characters, without control characters".into(),
        ));
    }
    inner
        .db(move |s| {
            s.write(|tx| {
                if let Some(cuid) = &cuid {
                    tx.set_setting(apply::CUID_SETTING, cuid.trim())?;
                }
                if let Some(name) = &name {
                    tx.set_setting(apply::NAME_SETTING, name.trim())?;
                }
                Ok(())
            })
        })
        .await?;
    profile(inner).await.map_err(|e| match e {
        TallyError::Key(k) => TallyTicketError::Key(k),
        TallyError::Store(s) => TallyTicketError::Store(s),
        TallyError::UnknownTally(t) => TallyTicketError::BadOptions(t),
    })
}

/// Where the person wants the agent to listen, as saved (see
/// [`crate::Wallet::set_agent_address`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentAddress {
    /// `HOST:PORT` to listen on.
    pub listen: String,
    /// `HOST:PORT` partners are told, if not the listening one.
    pub advertise: Option<String>,
}

/// What the running agent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AgentActivity {
    /// Partners with a session open right now.
    pub partners_connected: usize,
    /// Partners with messages waiting to be delivered (tally or chit).
    pub partners_waiting: usize,
}

const AGENT_LISTEN_SETTING: &str = "agent_listen";
const AGENT_ADVERTISE_SETTING: &str = "agent_advertise";

pub(crate) async fn agent_address(inner: &Inner) -> Result<Option<AgentAddress>, StoreError> {
    inner
        .db(|s| {
            let listen = s.setting(AGENT_LISTEN_SETTING)?;
            let advertise = s.setting(AGENT_ADVERTISE_SETTING)?;
            Ok(listen.map(|listen| AgentAddress {
                listen,
                advertise: advertise.filter(|a| !a.is_empty()),
            }))
        })
        .await
}

/// Saves where to listen (the shell checks the address and restarts the
/// agent on it; this only remembers it for the next start).
pub(crate) async fn set_agent_address(
    inner: &Inner,
    address: AgentAddress,
) -> Result<(), StoreError> {
    inner
        .db(move |s| {
            s.write(|tx| {
                tx.set_setting(AGENT_LISTEN_SETTING, &address.listen)?;
                tx.set_setting(
                    AGENT_ADVERTISE_SETTING,
                    address.advertise.as_deref().unwrap_or(""),
                )
            })
        })
        .await
}

pub(crate) async fn activity(inner: &Inner) -> Result<AgentActivity, StoreError> {
    let partners_connected = inner.agent.partners_connected();
    let waiting = inner.db(|s| s.partners_waiting()).await?;
    Ok(AgentActivity {
        partners_connected,
        partners_waiting: usize::try_from(waiting).unwrap_or(usize::MAX),
    })
}

/// Issues a ticket for a new draft tally (see [`crate::Wallet::tally_ticket`]).
pub(crate) async fn ticket(
    inner: &Inner,
    options: TicketOptions,
) -> Result<(Ticket, TallyInfo), TallyTicketError> {
    let bad = |why: &str| TallyTicketError::BadOptions(why.to_owned());
    if !options.my_terms.is_object() || !options.partner_terms.is_object() {
        return Err(bad("credit terms are a JSON object, e.g. {\"limit\": 100}"));
    }
    if options
        .comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > 1000)
    {
        return Err(bad("the comment is longer than 1000 characters"));
    }
    if options.expires_in < Duration::from_secs(1)
        || options.expires_in > Duration::from_secs(366 * 86_400)
    {
        return Err(bad("a ticket is good for 1 second to a year"));
    }
    let me = identity(inner).await?;
    let (Some(host), Some(port)) = (me.host.clone(), me.port()) else {
        return Err(TallyTicketError::NoAgentAddress);
    };
    let chad = Chad::new(&me.cuid, ticket_agent(&me), host, port)?;
    let now = SystemTime::now();
    let expires = unix_now().saturating_add(options.expires_in.as_secs());
    let ticket = Ticket::issue(chad, expires)?;
    let uuid = new_uuid()?;
    let side = options.side;
    let mut draft = serde_json::Map::new();
    draft.insert("version".into(), json!(1));
    draft.insert("uuid".into(), json!(uuid));
    draft.insert("date".into(), json!(format_date(now)));
    draft.insert("comment".into(), json!(options.comment));
    draft.insert("agree".into(), agreement());
    draft.insert(
        side.as_str().into(),
        json!({"cert": me.cert(now), "terms": options.my_terms}),
    );
    draft.insert(
        side.other().as_str().into(),
        json!({"terms": options.partner_terms}),
    );
    let row = TallyRow {
        id: uuid.clone(),
        uuid: Some(uuid),
        state: TallyState::Draft,
        side: Some(side),
        partner_agent: None,
        partner_cid: None,
        partner_host: None,
        partner_port: None,
        record: Value::Object(draft).to_string(),
        reason: None,
        created_at: 0,
        updated_at: 0,
    };
    let (token, id) = (ticket.token().to_owned(), row.id.clone());
    let stored = inner
        .db(move |s| {
            s.write(|tx| {
                tx.insert_tally(&row)?;
                tx.insert_ticket_token(&token, &row.id, expires)?;
                tx.tally(&row.id)
            })
        })
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("tally {id}"),
        })?;
    emit(
        inner,
        vec![WalletEvent::TallyChanged {
            tally: stored.id.clone(),
            state: stored.state,
        }],
    );
    Ok((ticket, info(&stored, &[])))
}

/// What a scan was given.
pub(crate) enum ScanInput<'a> {
    Text(&'a str),
    Image(&'a [u8]),
}

/// Reads a ticket and asks its issuer for the tally (see
/// [`crate::Wallet::tally_scan`]).
pub(crate) async fn scan(
    inner: &Arc<Inner>,
    input: ScanInput<'_>,
) -> Result<TallyInfo, TallyScanError> {
    let now = unix_now();
    let ticket = match input {
        ScanInput::Text(text) => {
            let ticket = Ticket::parse(text)?;
            ticket.check(now)?;
            ticket
        }
        ScanInput::Image(bytes) => Ticket::scan_image(bytes, now)?,
    };
    let me = identity(inner).await?;
    let remote = AgentId::from_bytes(*ticket.chad().agent().as_bytes());
    if remote == me.agent {
        return Err(TallyScanError::OwnTicket);
    }
    let config = inner.agent.config();
    let chad = ticket.chad();
    let row = TallyRow {
        id: new_uuid()?,
        uuid: None,
        state: TallyState::Ticket,
        side: None,
        partner_agent: Some(*remote.as_bytes()),
        partner_cid: Some(chad.cuid().to_owned()),
        partner_host: Some(chad.host().to_owned()),
        partner_port: Some(chad.port()),
        record: ticket.to_json().to_string(),
        reason: None,
        created_at: 0,
        updated_at: 0,
    };
    // MyCHIPs's first contact (lib/tally.js, local `ticket`): the token and
    // our certificate, to the issuer's CHIP address.
    let hello = json!({
        "target": "tally",
        "action": Action::Ticket.as_str(),
        "to": {"cid": chad.cuid(), "agent": remote.to_string(), "host": chad.host(), "port": chad.port()},
        "from": me.chad(),
        "ticket": {"token": ticket.token(), "cert": me.cert(SystemTime::now())},
    });
    // An offer that comes from the issuer's agent another way while we
    // wait (on a session its agent had open with ours) is the answer too.
    let mut waiting = super::ScanWait::new(inner, *remote.as_bytes());
    let addr = (chad.host().to_owned(), chad.port());
    let connected = peer::connect(
        (addr.0.as_str(), addr.1),
        &me.local,
        &remote,
        &for_attempt(&hello.to_string(), 1),
        &config.peer,
    )
    .await;
    let mut session = match connected {
        Ok(session) => session,
        Err(ConnectError::Connect(e)) => {
            return queue_ticket(inner, row, &hello, format!("could not connect: {e}")).await;
        }
        Err(ConnectError::Timeout) => {
            return queue_ticket(inner, row, &hello, "the handshake timed out".into()).await;
        }
        Err(ConnectError::Refused) => {
            return Err(TallyScanError::Refused {
                code: "closed".into(),
                reason: "its agent closed the connection without answering: it does not take this ticket (it may be used, expired or unknown)".into(),
            });
        }
        Err(other) => return Err(TallyScanError::Handshake(other.to_string())),
    };
    // The answer is the issuer's offer or refusal. Anything else its agent
    // sends on the session first (a partner we share a tally with checks
    // our chit chains on every session, PROTOCOL §13, and sends what its
    // outbox holds for us) is a message like any other: handled as the
    // agent handles it on any session (MyCHIPs dispatches every message
    // on a connection by its target), and we keep waiting.
    let deadline = tokio::time::Instant::now() + config.reply_timeout;
    let (message, action) = loop {
        let elsewhere = async {
            match waiting.as_mut() {
                Some(w) => w.offers.recv().await,
                None => std::future::pending().await,
            }
        };
        let answer = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                received = session.recv() => received,
                Some(offer) = elsewhere => Ok(offer),
            }
        })
        .await;
        let message = match answer {
            Ok(Ok(message)) => message,
            Ok(Err(peer::RecvError::NotJson(_))) => continue,
            // The issuer took the ticket but has not answered: ask again
            // later (it takes a repeat from us as a repeat and sends its
            // offer again).
            _ => {
                session.close().await;
                return queue_ticket(inner, row, &hello, "no answer from the issuer yet".into())
                    .await;
            }
        };
        let action = message
            .get("action")
            .and_then(Value::as_str)
            .and_then(Action::from_name);
        let tally = message.get("target").and_then(Value::as_str) == Some("tally");
        let answers = tally
            && match action {
                Some(Action::Offer) => true,
                // A refusal names the token it refuses (or none, when the
                // issuer could not read ours).
                Some(Action::Refuse) => message
                    .get("ticket")
                    .and_then(|t| t.get("token"))
                    .and_then(Value::as_str)
                    .is_none_or(|t| t == ticket.token()),
                _ => false,
            };
        if answers {
            break (message, action);
        }
        super::route(inner, &me, remote, message).await;
    };
    session.close().await;
    drop(waiting);
    match action {
        Some(Action::Refuse) => {
            let reason = message.get("reason");
            let text = |k: &str| {
                reason
                    .and_then(|r| r.get(k))
                    .and_then(Value::as_str)
                    .map(|s| s.chars().take(300).collect::<String>())
            };
            Err(TallyScanError::Refused {
                code: text("code").unwrap_or_else(|| "refused".into()),
                reason: text("message").unwrap_or_else(|| "no reason given".into()),
            })
        }
        Some(Action::Offer) => {
            let object = message.get("object").cloned().unwrap_or(Value::Null);
            let record = TallyRecord::from_value(object)
                .map_err(|e| TallyScanError::BadOffer(Refusal::BadOffer(e.to_string())))?;
            let me2 = me.clone();
            let uuid = record.uuid().to_owned();
            let event = Event::Offer {
                from: remote,
                record,
            };
            let applied = inner
                .db(move |s| {
                    s.write(|tx| {
                        // The same offer may have come another way first
                        // (the issuer's agent calling ours).
                        if let Some(existing) = tx.tally_by_uuid(&uuid)? {
                            return Ok(Ok(apply::Applied {
                                row: Some(existing),
                                events: Vec::new(),
                            }));
                        }
                        apply::apply(tx, &me2, Target::New(row), &event, None)
                    })
                })
                .await?
                .map_err(TallyScanError::BadOffer)?;
            emit(inner, applied.events);
            let row = applied.row.ok_or_else(|| StoreError::NotFound {
                what: "the offered tally".into(),
            })?;
            Ok(info(&row, &[]))
        }
        _ => {
            queue_ticket(
                inner,
                row,
                &hello,
                "the issuer answered something else".into(),
            )
            .await
        }
    }
}

/// Keeps a scanned ticket and its first-contact message for the agent to
/// present again.
async fn queue_ticket(
    inner: &Arc<Inner>,
    row: TallyRow,
    hello: &Value,
    error: String,
) -> Result<TallyInfo, TallyScanError> {
    let config = inner.agent.config();
    let next = after_ms(config.retry.delay(1));
    let (partner, host, port) = (
        row.partner_agent,
        row.partner_host.clone(),
        row.partner_port,
    );
    let message = hello.to_string();
    let stored = inner
        .db(move |s| {
            s.write(|tx| {
                tx.insert_tally(&row)?;
                let Some(partner) = partner else {
                    return Err(StoreError::Conflict(
                        "a scanned ticket without its agent".into(),
                    ));
                };
                let id = tx.put_outbox(&NewOutbox {
                    tally: row.id.clone(),
                    action: Action::Ticket,
                    partner_agent: partner,
                    host,
                    port,
                    message,
                    next_attempt: next,
                })?;
                tx.outbox_failed(id, next, &error)?;
                let stored = tx.tally(&row.id)?;
                let outbox = tx.outbox_for(&partner)?;
                Ok((stored, outbox))
            })
        })
        .await?;
    inner.agent.wake();
    let (Some(row), outbox) = stored else {
        return Err(StoreError::NotFound {
            what: "the scanned ticket".into(),
        }
        .into());
    };
    emit(
        inner,
        vec![WalletEvent::TallyChanged {
            tally: row.id.clone(),
            state: row.state,
        }],
    );
    Ok(info(&row, &outbox))
}

/// Accepts (signs) or refuses an offered tally, and tells the partner.
pub(crate) async fn accept_or_refuse(
    inner: &Arc<Inner>,
    id: &str,
    accept: bool,
) -> Result<TallyInfo, TallyActionError> {
    let me = identity(inner).await?;
    // The person waits for the delivery: claim it before the change is
    // written, so that the running agent (told when it commits) leaves it
    // to us.
    let id3 = id.to_owned();
    let partner = inner
        .db(move |s| s.tally(&id3))
        .await?
        .and_then(|r| r.partner_agent);
    let held = partner.and_then(|p| Busy::try_new(inner, p));
    let (me2, id2) = (me.clone(), id.to_owned());
    let event = if accept { Event::Accept } else { Event::Refuse };
    let applied = inner
        .db(move |s| {
            s.write(|tx| {
                let Some(row) = tx.tally(&id2)? else {
                    return Ok(None);
                };
                apply::apply(tx, &me2, Target::Stored(row), &event, None).map(Some)
            })
        })
        .await?
        .ok_or_else(|| TallyActionError::UnknownTally(id.to_owned()))?
        .map_err(TallyActionError::NotNow)?;
    emit(inner, applied.events);
    if let Some(partner) = applied.row.as_ref().and_then(|r| r.partner_agent) {
        // Try now; the agent keeps trying if the partner is offline.
        let held = held.filter(|b| b.agent == partner);
        if let Err(e) = deliver_now(inner, &me, partner, held).await {
            tracing::warn!("could not deliver to the tally partner now: {e}");
        }
        inner.agent.wake();
    }
    let id2 = id.to_owned();
    let (row, outbox) = inner
        .db(move |s| {
            let row = s.tally(&id2)?;
            let outbox = s.outbox()?;
            Ok::<_, StoreError>((row, outbox))
        })
        .await?;
    let row = row.ok_or_else(|| TallyActionError::UnknownTally(id.to_owned()))?;
    Ok(info(&row, &outbox))
}

pub(crate) async fn tallies(inner: &Inner) -> Result<Vec<TallyInfo>, TallyError> {
    let (rows, outbox, balances, chit_outbox) = inner
        .db(|s| {
            let rows = s.tallies()?;
            let mut balances = Vec::with_capacity(rows.len());
            for row in &rows {
                balances.push(super::chits::read_totals(s, row)?.unwrap_or_default());
            }
            Ok::<_, StoreError>((rows, s.outbox()?, balances, s.chit_outbox()?))
        })
        .await?;
    Ok(rows
        .iter()
        .zip(balances)
        .map(|(r, summary)| with_chits(info(r, &outbox), &summary, &chit_outbox))
        .collect())
}

/// The chit side of a tally's summary: its balance, and whether chit
/// messages wait for the partner (and why the last attempt failed).
fn with_chits(
    mut info: TallyInfo,
    summary: &super::chits::ChitSummary,
    chit_outbox: &[ChitOutboxRow],
) -> TallyInfo {
    info.balance = summary.balance;
    info.invoices_to_approve = summary.invoices_to_approve;
    info.my_limit = summary.my_limit;
    info.partner_limit = summary.partner_limit;
    let mut pending = chit_outbox.iter().filter(|o| o.tally == info.id).peekable();
    if pending.peek().is_some() {
        info.queued = true;
        if info.delivery_error.is_none() {
            info.delivery_error = pending.find_map(|o| o.last_error.clone());
        }
    }
    info
}

pub(crate) async fn show(inner: &Inner, id: &str) -> Result<TallyDetail, TallyError> {
    let me = identity(inner).await?;
    let id2 = id.to_owned();
    let (row, outbox, tokens, summary, chit_count, chit_outbox) = inner
        .db(move |s| {
            let row = s.tally(&id2)?;
            let outbox = s.outbox()?;
            let tokens = s.tokens_of(&id2)?;
            let (summary, chit_count) = match &row {
                Some(row) => (super::chits::read_totals(s, row)?, s.chit_count(&row.id)?),
                None => (None, 0),
            };
            Ok::<_, StoreError>((row, outbox, tokens, summary, chit_count, s.chit_outbox()?))
        })
        .await?;
    let row = row.ok_or_else(|| TallyError::UnknownTally(id.to_owned()))?;
    let summary = summary.unwrap_or_default();
    let ticket = if row.state == TallyState::Draft {
        tokens
            .iter()
            .find(|t| t.used_at.is_none() && t.expires > unix_now())
            .and_then(|t| {
                let chad =
                    Chad::new(&me.cuid, ticket_agent(&me), me.host.clone()?, me.port()?).ok()?;
                Ticket::new(t.token.clone(), Some(t.expires), chad).ok()
            })
            .map(|t| t.to_string())
    } else {
        None
    };
    Ok(TallyDetail {
        info: with_chits(info(&row, &outbox), &summary, &chit_outbox),
        record: serde_json::from_str(&row.record).unwrap_or(Value::Null),
        ticket,
        chit_count,
    })
}

fn info(row: &TallyRow, outbox: &[OutboxRow]) -> TallyInfo {
    let value: Value = serde_json::from_str(&row.record).unwrap_or(Value::Null);
    let half = |side: Option<Side>| side.and_then(|s| value.get(s.as_str()));
    let mine = half(row.side);
    let theirs = half(row.side.map(Side::other));
    let terms = |h: Option<&Value>| h.and_then(|h| h.get("terms")).cloned().unwrap_or(json!({}));
    let partner_name = theirs
        .and_then(|h| h.get("cert"))
        .and_then(cert_name)
        .or_else(|| row.partner_cid.clone());
    let partner = row.partner_agent.map(|agent| {
        let agent = AgentId::from_bytes(agent).to_string();
        match &row.partner_cid {
            Some(cid) => format!("{cid}:{agent}"),
            None => agent,
        }
    });
    let pending: Vec<&OutboxRow> = outbox.iter().filter(|o| o.tally == row.id).collect();
    TallyInfo {
        id: row.id.clone(),
        uuid: row.uuid.clone(),
        state: row.state,
        description: row.state.describe().to_owned(),
        side: row.side.map(|s| s.as_str().to_owned()),
        partner,
        partner_name,
        partner_cid: row.partner_cid.clone(),
        partner_agent: row
            .partner_agent
            .map(|agent| AgentId::from_bytes(agent).to_string()),
        partner_address: match (&row.partner_host, row.partner_port) {
            (Some(host), Some(port)) if host.contains(':') => Some(format!("[{host}]:{port}")),
            (Some(host), Some(port)) => Some(format!("{host}:{port}")),
            _ => None,
        },
        invoices_to_approve: 0,
        balance: 0,
        my_limit: None,
        partner_limit: None,
        my_terms: terms(mine),
        partner_terms: terms(theirs),
        comment: value
            .get("comment")
            .and_then(Value::as_str)
            .map(str::to_owned),
        reason: row.reason.clone(),
        queued: !pending.is_empty(),
        delivery_error: pending.iter().find_map(|o| o.last_error.clone()),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}
