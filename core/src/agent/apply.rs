//! The one way a tally changes in the store: load the tally, run the state
//! machine ([`crate::tally::lifecycle::transition`]), write its outcome —
//! the tally, the token, the outbox, the notification — inside the
//! caller's ONE store transaction, and return the events to send after the
//! commit. Local actions, received messages and deliveries all come here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::events::WalletEvent;
use crate::keys::TallyKey;
use crate::peer::{AgentId, LocalKey};
use crate::store::{NewNotification, NewOutbox, NotificationKind, StoreError, StoreTx, TallyRow};
use crate::tally::lifecycle::{
    self, Action, Body, Change, Event, Me, Notice, Outcome, Refusal, Tally, TallyState,
};
use crate::tally::{Side, TallyRecord, format_date};

/// Settings: the CHIP user id and display name in the wallet's
/// certificate, and the address its agent is reached at.
pub(crate) const CUID_SETTING: &str = "tally_cuid";
pub(crate) const NAME_SETTING: &str = "tally_name";
pub(crate) const AGENT_HOST_SETTING: &str = "agent_host";
pub(crate) const AGENT_PORT_SETTING: &str = "agent_port";

/// Who the wallet is on the wire: its agent, its CHIP address and its tally
/// signing key (derived from the seed, held only in memory).
pub(crate) struct Identity {
    pub agent: AgentId,
    pub local: LocalKey,
    pub key: TallyKey,
    pub cuid: String,
    pub name: Option<String>,
    pub host: Option<String>,
    /// The port partners are told (0: none). Shared with the running agent's handle and
    /// moved by the relay loop when a re-registration gives another port, so that what the
    /// running agent writes in envelopes follows what the relay gave last.
    pub port: Arc<AtomicU16>,
}

impl Identity {
    /// The port partners are told, if any.
    pub fn port(&self) -> Option<u16> {
        Some(self.port.load(Ordering::Relaxed)).filter(|p| *p != 0)
    }

    /// Tells partners `port` from now on.
    pub fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Relaxed);
    }

    pub fn me(&self) -> Me<'_> {
        Me {
            agent: self.agent,
            key: &self.key,
        }
    }

    /// Our CHIP address, as MyCHIPs writes it in certificates and message
    /// envelopes (`cid`, `agent`, and where to reach the agent if it
    /// listens anywhere).
    pub fn chad(&self) -> Value {
        let mut chad = Map::new();
        chad.insert("cid".into(), Value::String(self.cuid.clone()));
        chad.insert("agent".into(), Value::String(self.agent.to_string()));
        if let (Some(host), Some(port)) = (&self.host, self.port()) {
            chad.insert("host".into(), Value::String(host.clone()));
            chad.insert("port".into(), Value::from(port));
        }
        Value::Object(chad)
    }

    /// Our CHIP certificate (MyCHIPs `doc/learn-tally.md`, "The Entity
    /// Certificate"): what the partner sees of us in the tally, signed with
    /// it.
    pub fn cert(&self, now: SystemTime) -> Value {
        let name = self.name.clone().unwrap_or_else(|| self.cuid.clone());
        json!({
            "chad": self.chad(),
            "date": format_date(now),
            "name": {"first": name},
            "public": self.key.public_key().to_jwk(),
            "type": "p",
        })
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn after_ms(delay: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
}

/// Which tally an event is about.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A stored tally.
    Stored(TallyRow),
    /// A tally to insert if the event moves it (a scanned ticket whose
    /// offer came on the same connection).
    New(TallyRow),
    /// None known: only an offer creates one (its id is its uuid).
    Absent,
}

/// What applying an event did.
#[derive(Debug)]
pub(crate) struct Applied {
    /// The tally afterwards (`None` if there is none).
    pub row: Option<TallyRow>,
    pub events: Vec<WalletEvent>,
}

/// The state machine's view of a stored tally.
pub(crate) fn to_tally(row: &TallyRow) -> Tally {
    let body = match row.state {
        TallyState::Ticket => Body::Ticket,
        TallyState::Draft => match serde_json::from_str::<Value>(&row.record) {
            Ok(Value::Object(map)) => Body::Draft(map),
            _ => Body::Ticket,
        },
        _ => match TallyRecord::parse(&row.record) {
            Ok(record) => Body::Record(record),
            // A void draft or ticket: nothing more can happen to it.
            Err(_) => Body::Ticket,
        },
    };
    Tally {
        state: row.state,
        side: row.side,
        partner: row.partner_agent.map(AgentId::from_bytes),
        body,
    }
}

/// The partner's half of a record: its certificate's CHIP address.
pub(crate) fn partner_chad(record: &TallyRecord, side: Side) -> Option<&Value> {
    record.party(side.other()).cert().get("chad")
}

/// A person's name from a MyCHIPs certificate (`name` as an object of
/// parts, or a plain string for an organization), else its CHIP id.
pub(crate) fn cert_name(cert: &Value) -> Option<String> {
    match cert.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Object(parts)) => {
            let pick = |k: &str| parts.get(k).and_then(Value::as_str).map(str::trim);
            let first = pick("prefer").filter(|s| !s.is_empty()).or(pick("first"));
            let full: Vec<&str> = [first, pick("surname")]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .collect();
            (!full.is_empty()).then(|| full.join(" "))
        }
        _ => None,
    }
    .or_else(|| {
        cert.get("chad")
            .and_then(|c| c.get("cid").or_else(|| c.get("cuid")))
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
}

/// The envelope of a message about `row` (MyCHIPs's `tally_notify_agent`:
/// target, action, to, from, object). `try` and `last` are added per
/// attempt.
pub(crate) fn envelope(me: &Identity, row: &TallyRow, action: Action, object: Value) -> Value {
    let mut to = Map::new();
    if let Some(cid) = &row.partner_cid {
        to.insert("cid".into(), Value::String(cid.clone()));
    }
    if let Some(agent) = row.partner_agent {
        to.insert(
            "agent".into(),
            Value::String(AgentId::from_bytes(agent).to_string()),
        );
    }
    if let (Some(host), Some(port)) = (&row.partner_host, row.partner_port) {
        to.insert("host".into(), Value::String(host.clone()));
        to.insert("port".into(), Value::from(port));
    }
    json!({
        "target": "tally",
        "action": action.as_str(),
        "to": Value::Object(to),
        "from": me.chad(),
        "object": object,
    })
}

/// Sets `try` and `last` on a stored envelope for one attempt.
pub(crate) fn for_attempt(message: &str, attempt: u32) -> Value {
    let mut value: Value = serde_json::from_str(message).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("try".into(), Value::from(attempt));
        map.insert("last".into(), Value::String(format_date(SystemTime::now())));
    }
    value
}

/// Runs `event` on `target` and writes the outcome in `tx`. A refusal
/// writes nothing. `token`: the ticket token an [`Event::Ticket`] used.
pub(crate) fn apply(
    tx: &StoreTx<'_>,
    me: &Identity,
    target: Target,
    event: &Event,
    token: Option<&str>,
) -> Result<Result<Applied, Refusal>, StoreError> {
    let (current, row) = match &target {
        Target::Stored(row) | Target::New(row) => (Some(to_tally(row)), Some(row.clone())),
        Target::Absent => (None, None),
    };
    let outcome = match lifecycle::transition(current.as_ref(), event, &me.me()) {
        Ok(outcome) => outcome,
        Err(refusal) => return Ok(Err(refusal)),
    };
    match outcome {
        Outcome::Unchanged { resend } => {
            // A repeat: nothing changes, but if the partner evidently missed
            // our last message, queue it again.
            if let (Some(action), Some(row), Target::Stored(_)) = (resend, &row, &target)
                && let Some(record) = current.as_ref().and_then(|t| t.body.record())
            {
                queue(tx, me, row, action, record.to_value())?;
            }
            Ok(Ok(Applied {
                row: match target {
                    Target::Stored(row) => Some(row),
                    _ => None,
                },
                events: Vec::new(),
            }))
        }
        Outcome::Moved(change) => {
            let from = current.as_ref().map(|t| t.state);
            let written = write_change(tx, me, target, from, &change, event, token)?;
            Ok(Ok(written))
        }
    }
}

fn write_change(
    tx: &StoreTx<'_>,
    me: &Identity,
    target: Target,
    from: Option<TallyState>,
    change: &Change,
    event: &Event,
    token: Option<&str>,
) -> Result<Applied, StoreError> {
    let new = change.tally.clone();
    let mut row = match &target {
        Target::Stored(row) | Target::New(row) => row.clone(),
        Target::Absent => TallyRow {
            id: String::new(),
            uuid: None,
            state: new.state,
            side: None,
            partner_agent: None,
            partner_cid: None,
            partner_host: None,
            partner_port: None,
            record: String::new(),
            reason: None,
            created_at: 0,
            updated_at: 0,
        },
    };
    row.state = new.state;
    row.side = new.side;
    row.partner_agent = new.partner.map(|a| *a.as_bytes());
    match &new.body {
        Body::Ticket => {}
        Body::Draft(map) => row.record = Value::Object(map.clone()).to_string(),
        Body::Record(record) => {
            row.record = record.to_json();
            row.uuid = Some(record.uuid().to_owned());
            // Where the partner is, from its certificate: the address a
            // ticket gave is replaced by what the partner itself signs.
            if let Some(side) = new.side
                && let Some(chad) = partner_chad(record, side)
            {
                let text = |k: &str| chad.get(k).and_then(Value::as_str).map(str::to_owned);
                if let Some(cid) = text("cid").or_else(|| text("cuid")) {
                    row.partner_cid = Some(cid);
                }
                let port = chad.get("port").and_then(|p| match p {
                    Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                });
                if let (Some(host), Some(port)) = (text("host"), port.filter(|p| *p != 0)) {
                    row.partner_host = Some(host);
                    row.partner_port = Some(port);
                }
            }
        }
    }
    if let Some(reason) = &change.reason {
        row.reason = Some(reason.clone());
    }
    match target {
        Target::Stored(_) => tx.update_tally(&row)?,
        Target::New(_) => tx.insert_tally(&row)?,
        Target::Absent => {
            row.id = row.uuid.clone().unwrap_or_default();
            tx.insert_tally(&row)?;
        }
    }
    if change.use_token {
        let (Some(token), Some(agent)) = (token, new.partner) else {
            return Err(StoreError::Conflict(
                "a ticket was used without its token".into(),
            ));
        };
        tx.use_ticket_token(token, agent.as_bytes())?;
    }
    // At most one message per tally waits: the one its state asks for. A
    // tally that is final, or leaves the ticket state, sends nothing more.
    let leaves_ticket = from == Some(TallyState::Ticket) && new.state != TallyState::Ticket;
    if change.cancel_outbox || change.send.is_some() || new.state.is_final() || leaves_ticket {
        tx.cancel_outbox(&row.id)?;
    }
    if let Some(action) = change.send {
        let object = match &new.body {
            Body::Record(record) => without_signature(record, action, new.side),
            _ => Value::Null,
        };
        queue(tx, me, &row, action, object)?;
    }
    let mut events = vec![WalletEvent::TallyChanged {
        tally: row.id.clone(),
        state: new.state,
    }];
    if let Some(notice) = change.notice {
        let note = notification(&row, notice, change.reason.as_deref(), event);
        let added = tx.add_tally_notification(&note, &row.id)?;
        events.push(WalletEvent::Notification {
            id: added.id,
            kind: added.kind,
            title: added.title,
            quiet: false,
        });
    }
    let stored = tx.tally(&row.id)?;
    Ok(Applied {
        row: stored,
        events,
    })
}

/// The object of a message: the record, except that a refusal carries no
/// signature of ours (MyCHIPs clears the holder's signature on a void).
fn without_signature(record: &TallyRecord, action: Action, side: Option<Side>) -> Value {
    let mut value = record.to_value();
    if action == Action::Void
        && let (Some(side), Some(sign)) =
            (side, value.get_mut("sign").and_then(Value::as_object_mut))
    {
        sign.remove(side.as_str());
    }
    value
}

fn queue(
    tx: &StoreTx<'_>,
    me: &Identity,
    row: &TallyRow,
    action: Action,
    object: Value,
) -> Result<(), StoreError> {
    let Some(partner) = row.partner_agent else {
        return Err(StoreError::Conflict(format!(
            "tally {} has no partner to send to",
            row.id
        )));
    };
    tx.put_outbox(&NewOutbox {
        tally: row.id.clone(),
        action,
        partner_agent: partner,
        host: row.partner_host.clone(),
        port: row.partner_port,
        message: envelope(me, row, action, object).to_string(),
        next_attempt: now_ms(),
    })?;
    Ok(())
}

fn notification(
    row: &TallyRow,
    notice: Notice,
    reason: Option<&str>,
    event: &Event,
) -> NewNotification {
    let record = TallyRecord::parse(&row.record).ok();
    let partner_cert = match (&record, row.side) {
        (Some(r), Some(side)) => Some(r.party(side.other()).cert().clone()),
        _ => None,
    };
    let partner = partner_cert
        .as_ref()
        .and_then(cert_name)
        .or_else(|| row.partner_cid.clone())
        .unwrap_or_else(|| "your partner".into());
    let (kind, title, body) = match notice {
        Notice::Offered => {
            let terms = match (&record, row.side) {
                (Some(r), Some(side)) => format!(
                    " You would hold the {side}; you grant {}, {partner} grants {}.",
                    credit_words(side, r.party(side).terms()),
                    credit_words(side.other(), r.party(side.other()).terms())
                ),
                _ => String::new(),
            };
            (
                NotificationKind::TallyOffered,
                format!("{partner} offers you a tally"),
                format!(
                    "{partner} signed a tally and offers it to you.{terms} Review it and accept or refuse it (tally {}).",
                    row.id
                ),
            )
        }
        Notice::Opened => (
            NotificationKind::TallyOpened,
            format!("Tally with {partner} is open"),
            format!(
                "Both of you signed the tally (tally {}); it can carry payments now.",
                row.id
            ),
        ),
        Notice::Refused => {
            let why = reason.unwrap_or(match event {
                Event::Void { .. } => "your partner refused the tally",
                _ => "refused",
            });
            (
                NotificationKind::TallyRefused,
                format!("Tally with {partner} refused"),
                format!("{why} (tally {}).", row.id),
            )
        }
    };
    NewNotification {
        kind,
        title,
        body,
        txid: None,
    }
}

/// A party's terms as a person reads them: "credit of 50.000 CHIP" for a
/// readable limit, the terms as signed otherwise.
fn credit_words(by: Side, terms: &Value) -> String {
    match crate::tally::chain::parse_limit(by, terms.get("limit")) {
        Ok(limit) if terms.get("limit").is_some() => format!(
            "credit of {} CHIP",
            crate::tally::format_chips(limit.milli_chips)
        ),
        _ => format!("the terms {terms}"),
    }
}

#[cfg(test)]
mod credit_words_tests {
    use serde_json::json;

    use super::credit_words;
    use crate::tally::Side;

    #[test]
    fn terms_read_as_credit_in_chips() {
        assert_eq!(
            credit_words(Side::Stock, &json!({"limit": 50})),
            "credit of 50.000 CHIP"
        );
        assert_eq!(
            credit_words(Side::Foil, &json!({"limit": 2.5})),
            "credit of 2.500 CHIP"
        );
        // Terms a limit cannot be read from are shown as signed.
        assert_eq!(
            credit_words(Side::Stock, &json!({"limit": "lots"})),
            r#"the terms {"limit":"lots"}"#
        );
        assert_eq!(credit_words(Side::Stock, &json!({})), "the terms {}");
    }
}
