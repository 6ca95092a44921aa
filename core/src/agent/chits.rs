//! Chits on open tallies: the one write path for a tally's
//! [`ChitLedger`], what the person does with chits (pay, invoice, approve,
//! reject, list), and the chit outbox.
//!
//! The ledger is pure and is never kept in memory between operations: each
//! one restores what it needs of it from the store inside its write
//! transaction ([`load_tail`]: the chain's unconfirmed tail, the chits not
//! linked, the chits the operation names, and the tally's summary — what
//! its chits add up to — for the rest; [`ChitLedger::restore_tail`]),
//! runs, and writes the whole [`ChitOutcome`] — the chit rows, the
//! confirmed chain position, the tally's new summary, the outgoing
//! messages (into `chit_outbox`) and the notifications — in that same
//! transaction (PROTOCOL §13). Each chit is checked once, when it is made
//! or received; what an operation reads does not grow with the tally. So a restart, or the CLI and the agent
//! in two processes, always see one consistent ledger, and a message is
//! sent only once its cause is committed. After a chit message is
//! delivered, [`delivered`] marks it sent (`A.draft.pend` → `A.pend`, …)
//! in the transaction that removes it from the outbox.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpStream;

use super::apply::{Identity, cert_name, for_attempt, now_ms};
use super::{Busy, Live, converse, emit, identity};
use crate::context::Inner;
use crate::events::WalletEvent;
use crate::keys::KeyError;
use crate::peer::{self, AgentId, SessionSender};
use crate::store::{
    ChitOutboxRow, NewChitOutbox, NewNotification, NotificationKind, StoreError, StoreTx,
    StoredChit, TallyRow,
};
use crate::tally::chain::{
    ApproveError, AwayFromZero, ChitLedger, ChitMessage, ChitNotice, ChitOutcome, Direction,
    InvoiceError, IssueError, LedgerNotice, LimitProblem, OverLimit, RejectError, SettingProblem,
    limit_value, parse_limit,
};
use crate::tally::lifecycle::{TallyState, settle};
use crate::tally::{
    ChitBuilder, ChitRecord, ChitType, RecordError, Side, format_date, verify_tally_json,
};

/// The longest memo Notch writes on a chit (characters).
pub const MAX_MEMO_CHARS: usize = 1000;

/// One chit, for lists (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChitInfo {
    pub uuid: String,
    /// The wallet's id of the tally.
    pub tally: String,
    /// MyCHIPs's state code (`A.pend`, `L.good`, …).
    pub state: String,
    /// `tran` (a payment) or `set` (a setting).
    #[serde(rename = "type")]
    pub kind: String,
    /// Who signs it: `stock` or `foil`.
    pub by: String,
    /// We issue (sign) it: a payment of ours, or an invoice to us.
    pub mine: bool,
    /// milliCHIPs of a payment.
    pub units: Option<u64>,
    /// What it does to our balance, in milliCHIPs (positive: the partner
    /// owes us more); 0 for a setting.
    pub amount: i64,
    pub memo: Option<String>,
    /// The chit's own date (MyCHIPs format).
    pub date: String,
    /// Where it is in the hash chain, once linked.
    pub index: Option<u64>,
    /// `linked`, `provisional` (the stock's own, not yet confirmed by the
    /// foil) or `unlinked`.
    pub consensus: String,
    /// An invoice waiting for our approval or rejection.
    pub needs_action: bool,
    /// An invoice (a chit its payee asked for, signed by the payer when it
    /// approves it), not a payment its signer made of its own will. Told
    /// by the state the chit was first stored in; for chits stored before
    /// that was kept, by its state now (a good one counts as a payment).
    pub invoice: bool,
    /// Its message waits in the chit outbox: the partner does not have it
    /// yet.
    pub waiting: bool,
    /// For a good chit: the good balance after it, milliCHIPs from our
    /// side (the chits in list order, oldest first, summed up to it).
    pub running_balance: Option<i64>,
    /// What a setting chit sets, in words ("credit limit 100.000",
    /// "asks to close").
    pub setting: Option<String>,
    /// Unix seconds (when this wallet first stored it).
    pub created_at: i64,
}

/// A page of a tally's chits, newest first (see
/// [`crate::Wallet::tally_chit_page`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChitPage {
    pub rows: Vec<ChitInfo>,
    /// Where the next (older) page starts; `None` at the end.
    pub next: Option<String>,
    /// How many chits the tally has.
    pub total: u64,
}

/// Why a page of chits could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChitPageError {
    #[error("there is no tally {0} in this wallet")]
    UnknownTally(String),
    #[error("{0:?} is not where a page of chits starts (pass the `next` of the page before)")]
    BadCursor(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a tally's chits cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ChitLoadError {
    #[error("the tally is {0}, not open: chits need an open tally")]
    NotOpen(TallyState),
    #[error("the tally's stored chits are damaged: {0}")]
    Broken(String),
}

/// Why a payment was not made (nothing was signed).
#[derive(Debug, thiserror::Error)]
pub enum TallyPayError {
    #[error("there is no tally {0} in this wallet")]
    UnknownTally(String),
    #[error(transparent)]
    Load(#[from] ChitLoadError),
    #[error("a payment is more than 0 milliCHIPs")]
    Zero,
    #[error("the memo is longer than {MAX_MEMO_CHARS} characters or has control characters")]
    BadMemo,
    #[error("{0}")]
    OverLimit(OverLimit),
    #[error("the partner's credit limit cannot be enforced: {0}")]
    Limit(LimitProblem),
    #[error("the tally is closed: no more chits")]
    Closed,
    #[error("{0}")]
    Closing(AwayFromZero),
    #[error("the payment could not be signed: {0}")]
    Issue(IssueError),
    #[error("the payment chit could not be built: {0}")]
    Build(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an invoice was not sent.
#[derive(Debug, thiserror::Error)]
pub enum TallyInvoiceError {
    #[error("there is no tally {0} in this wallet")]
    UnknownTally(String),
    #[error(transparent)]
    Load(#[from] ChitLoadError),
    #[error("an invoice is for more than 0 milliCHIPs")]
    Zero,
    #[error("the memo is longer than {MAX_MEMO_CHARS} characters or has control characters")]
    BadMemo,
    #[error("the invoice could not be drafted: {0}")]
    Invoice(InvoiceError),
    #[error("the invoice chit could not be built: {0}")]
    Build(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an invoice was not approved (nothing was signed).
#[derive(Debug, thiserror::Error)]
pub enum ChitApproveError {
    #[error("there is no chit {0} in this wallet")]
    UnknownChit(String),
    #[error(transparent)]
    Load(#[from] ChitLoadError),
    #[error("{0}")]
    OverLimit(OverLimit),
    #[error("the partner's credit limit cannot be enforced: {0}")]
    Limit(LimitProblem),
    #[error("the tally is closed: no more chits")]
    Closed,
    #[error("{0}")]
    Closing(AwayFromZero),
    #[error("the invoice cannot be approved: {0}")]
    Approve(ApproveError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a setting (a new credit limit, a close request) was not made
/// (nothing was signed).
#[derive(Debug, thiserror::Error)]
pub enum TallySettingError {
    #[error("there is no tally {0} in this wallet")]
    UnknownTally(String),
    #[error(transparent)]
    Load(#[from] ChitLoadError),
    #[error("the tally is closed: no more chits")]
    Closed,
    #[error("the tally is already closing")]
    AlreadyClosing,
    #[error("{0}")]
    Refused(SettingProblem),
    #[error("the setting could not be signed: {0}")]
    Issue(IssueError),
    #[error("the setting chit could not be built: {0}")]
    Build(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an invoice was not rejected.
#[derive(Debug, thiserror::Error)]
pub enum ChitRejectError {
    #[error("there is no chit {0} in this wallet")]
    UnknownChit(String),
    #[error(transparent)]
    Load(#[from] ChitLoadError),
    #[error("the invoice cannot be rejected: {0}")]
    Reject(RejectError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many verified tally records [`verified_tally`] keeps.
const VERIFIED_TALLIES: usize = 4096;

/// `verify_tally_json` of a stored tally record, remembered by the
/// record's exact text: the two P-521 signatures of a tally are checked
/// once in this process, not again on every chit operation (the same
/// bytes verify the same way; a record changed in any byte is checked
/// anew). Emptied when full.
fn verified_tally(
    record: &str,
) -> Result<crate::tally::VerifiedTally, crate::tally::TallyVerifyError> {
    type Verified = std::collections::HashMap<String, crate::tally::VerifiedTally>;
    static VERIFIED: std::sync::Mutex<Option<Verified>> = std::sync::Mutex::new(None);
    if let Ok(cache) = VERIFIED.lock()
        && let Some(found) = cache.as_ref().and_then(|c| c.get(record))
    {
        return Ok(found.clone());
    }
    let verified = verify_tally_json(record)?;
    if let Ok(mut cache) = VERIFIED.lock() {
        let cache = cache.get_or_insert_with(Verified::new);
        if cache.len() >= VERIFIED_TALLIES {
            cache.clear();
        }
        cache.insert(record.to_owned(), verified.clone());
    }
    Ok(verified)
}

/// Restores the ledger of an open tally from its stored rows.
fn restore(
    row: &TallyRow,
    chits: Vec<StoredChit>,
    confirmed: u64,
) -> Result<ChitLedger, ChitLoadError> {
    let (true, Some(side)) = (row.state.has_chits(), row.side) else {
        return Err(ChitLoadError::NotOpen(row.state));
    };
    // Checked when it was opened; checked again because the ledger trusts
    // the tally's keys for every chit it verifies.
    let tally = verified_tally(&row.record).map_err(|e| ChitLoadError::Broken(e.to_string()))?;
    ChitLedger::restore(&tally, side, chits.into_iter().map(|c| c.row), confirmed)
        .map_err(|e| ChitLoadError::Broken(e.to_string()))
}

/// The whole ledger of `row`, every chit read and its chain re-hashed from
/// the tally's digest: what [`load_tail`] gives in part, for diagnostics and
/// tests (a summary kept with each change must equal this ledger's
/// [`ChitLedger::totals`]).
pub(crate) fn load(
    tx: &StoreTx<'_>,
    row: &TallyRow,
) -> Result<Result<ChitLedger, ChitLoadError>, StoreError> {
    let chits = tx.chits_of(&row.id)?;
    let confirmed = tx.chits_confirmed(&row.id)?;
    Ok(restore(row, chits, confirmed))
}

/// What an operation needs of a tally's chits besides its chain's tail: the
/// lowest chain index it names, and the chits it names.
#[derive(Debug, Default)]
pub(crate) struct Needs<'a> {
    pub lowest: Option<u64>,
    pub uuids: Vec<&'a str>,
    /// The named chits are needed in the held chain (a message: its
    /// answer may start at their place), not only for their state (a local
    /// action on a chit).
    pub in_chain: bool,
}

impl<'a> Needs<'a> {
    pub(crate) fn chit(uuid: &'a str) -> Self {
        Self {
            lowest: None,
            uuids: vec![uuid],
            in_chain: false,
        }
    }

    pub(crate) fn message(message: &'a ChitMessage) -> Self {
        let (lowest, uuids) = crate::tally::chain::message_needs(message);
        Self {
            lowest,
            uuids,
            in_chain: true,
        }
    }
}

/// The ledger of `row` as an operation that `needs` this needs it, read
/// inside `tx`: the chain after the lowest of the confirmed end and what a
/// message names; every chit not linked and not void; the chits the
/// operation names; and the tally's summary for the rest
/// ([`ChitLedger::restore_tail`]). What it reads grows with the chain's
/// unconfirmed tail (and the invoices still open), not with the tally.
pub(crate) fn load_tail(
    tx: &StoreTx<'_>,
    row: &TallyRow,
    needs: &Needs<'_>,
) -> Result<Result<ChitLedger, ChitLoadError>, StoreError> {
    let (true, Some(side)) = (row.state.has_chits(), row.side) else {
        return Ok(Err(ChitLoadError::NotOpen(row.state)));
    };
    let Some(totals) = tx.chit_totals(&row.id)? else {
        // No summary: a tally without chits yet (or written before
        // migration 9 filled it): the whole ledger, as it is small.
        return load(tx, row);
    };
    let confirmed = tx.chits_confirmed(&row.id)?;
    let mut offset = confirmed;
    if let Some(index) = needs.lowest {
        offset = offset.min(index.saturating_sub(1));
    }
    let mut named = Vec::new();
    for uuid in &needs.uuids {
        if let Some(chit) = tx.chit_of(&row.id, uuid)? {
            if needs.in_chain
                && let Some(link) = chit.row.link
            {
                offset = offset.min(link.index.saturating_sub(1));
            }
            named.push(chit);
        }
    }
    let mut chits = tx.chit_tail(&row.id, offset)?;
    // The tail holds every chit linked after `offset` and every unlinked
    // one but the void ones.
    let in_tail = |c: &StoredChit| match c.row.link {
        Some(link) => link.index > offset,
        None => c.row.state.status != crate::tally::ChitStatus::Void,
    };
    for chit in named {
        if !in_tail(&chit) && !chits.iter().any(|c| c.row.uuid == chit.row.uuid) {
            chits.push(chit);
        }
    }
    let offset_hash = match offset {
        0 => None,
        index => match tx.link_hash_at(&row.id, index)? {
            Some(hash) => Some(hash),
            None => {
                return Ok(Err(ChitLoadError::Broken(format!(
                    "no chit is linked at index {index} of the chain"
                ))));
            }
        },
    };
    // Checked when it was opened; checked again because the ledger trusts
    // the tally's keys for every chit it verifies.
    let tally = match verified_tally(&row.record) {
        Ok(tally) => tally,
        Err(e) => return Ok(Err(ChitLoadError::Broken(e.to_string()))),
    };
    Ok(ChitLedger::restore_tail(
        &tally,
        side,
        chits.into_iter().map(|c| c.row),
        confirmed,
        offset,
        offset_hash,
        &totals,
    )
    .map_err(|e| ChitLoadError::Broken(e.to_string())))
}

/// Writes an outcome in `tx`: the chit rows, the confirmed position, the
/// outgoing messages and the notifications. Returns the events to emit
/// after the commit.
pub(crate) fn persist(
    tx: &StoreTx<'_>,
    me: &Identity,
    row: &TallyRow,
    ledger: &ChitLedger,
    outcome: &ChitOutcome,
) -> Result<Vec<WalletEvent>, StoreError> {
    let changes = &outcome.changes;
    for chit in &changes.chits {
        tx.put_chit(&row.id, chit)?;
    }
    if let Some(confirmed) = changes.confirmed {
        tx.set_chits_confirmed(&row.id, confirmed)?;
    }
    if !changes.chits.is_empty() {
        // What the tally's chits add up to, kept with them.
        tx.put_chit_totals(&row.id, &ledger.totals())?;
    }
    for message in &outcome.outgoing {
        queue(tx, me, row, message)?;
    }
    // The tally's own state follows its chits (open → closing → closed),
    // in this same transaction.
    let mut notes: Vec<NewNotification> = changes
        .notices
        .iter()
        .filter_map(|notice| notification(row, ledger, notice))
        .collect();
    let mut state = row.state;
    if let Some(next) = settle(row.state, ledger.close_state())
        && next != row.state
    {
        let mut moved = row.clone();
        moved.state = next;
        tx.update_tally(&moved)?;
        state = next;
        notes.extend(state_notification(row, ledger, next));
    }
    let mut events = Vec::new();
    if !changes.is_empty() || state != row.state {
        // Shells refresh the tally (its balance and chits) on this.
        events.push(WalletEvent::TallyChanged {
            tally: row.id.clone(),
            state,
        });
    }
    // And the chits that were added or moved on.
    for chit in &changes.chits {
        events.push(WalletEvent::ChitChanged {
            tally: row.id.clone(),
            chit: chit.uuid.clone(),
            state: chit.state.code(),
        });
    }
    for note in notes {
        let added = tx.add_tally_notification(&note, &row.id)?;
        events.push(WalletEvent::Notification {
            id: added.id,
            kind: added.kind,
            title: added.title,
            quiet: false,
        });
    }
    Ok(events)
}

/// What to tell the person when the tally starts closing or is closed.
fn state_notification(
    row: &TallyRow,
    ledger: &ChitLedger,
    state: TallyState,
) -> Option<NewNotification> {
    let partner = partner_name(row, ledger);
    let (kind, title, body) = match state {
        TallyState::Closing => {
            let who = if ledger.close_requested_by(ledger.side()) {
                "You asked".to_owned()
            } else {
                format!("{partner} asked")
            };
            let balance = ledger.balance().good;
            (
                NotificationKind::TallyClosing,
                format!("Your tally with {partner} is closing"),
                format!(
                    "{who} to close tally {}. Until its balance ({balance} milliCHIPs) is zero, only chits that bring it toward zero can be made.",
                    row.id
                ),
            )
        }
        TallyState::Closed => (
            NotificationKind::TallyClosed,
            format!("Your tally with {partner} is closed"),
            format!(
                "Tally {} is closed: its balance is zero and no more chits can be made.",
                row.id
            ),
        ),
        _ => return None,
    };
    Some(NewNotification {
        kind,
        title,
        body,
        txid: None,
    })
}

/// Queues one chit or chain message for the tally's partner.
fn queue(
    tx: &StoreTx<'_>,
    me: &Identity,
    row: &TallyRow,
    message: &ChitMessage,
) -> Result<(), StoreError> {
    let Some(partner) = row.partner_agent else {
        return Err(StoreError::Conflict(format!(
            "tally {} has no partner to send to",
            row.id
        )));
    };
    let chit = match message {
        ChitMessage::Chit { chit, .. } => Some(chit.uuid().to_owned()),
        _ => None,
    };
    tx.put_chit_outbox(&NewChitOutbox {
        tally: row.id.clone(),
        chit,
        partner_agent: partner,
        host: row.partner_host.clone(),
        port: row.partner_port,
        message: envelope(me, row, message).to_string(),
        next_attempt: now_ms(),
    })?;
    Ok(())
}

/// A chit message with MyCHIPs's `to` and `from` (`try` and `last` are
/// added per attempt).
fn envelope(me: &Identity, row: &TallyRow, message: &ChitMessage) -> Value {
    let mut value = message.to_value();
    // Reuse the tally envelope's addresses (same `to` and `from`).
    let tally = super::apply::envelope(me, row, crate::tally::lifecycle::Action::Open, Value::Null);
    if let Some(map) = value.as_object_mut() {
        for key in ["to", "from"] {
            if let Some(v) = tally.get(key) {
                map.insert(key.into(), v.clone());
            }
        }
    }
    value
}

fn partner_name(row: &TallyRow, ledger: &ChitLedger) -> String {
    cert_name(ledger.tally().record().party(ledger.side().other()).cert())
        .or_else(|| row.partner_cid.clone())
        .unwrap_or_else(|| "your partner".into())
}

fn chips(units: Option<u64>) -> String {
    format!("{} CHIP", crate::tally::format_chips(units.unwrap_or(0)))
}

fn notification(
    row: &TallyRow,
    ledger: &ChitLedger,
    notice: &LedgerNotice,
) -> Option<NewNotification> {
    let partner = partner_name(row, ledger);
    let (kind, title, body) = match notice {
        LedgerNotice::Chit {
            uuid,
            notice: ChitNotice::ChitReceived,
            units,
        } => (
            NotificationKind::ChitReceived,
            format!("{partner} paid you {}", chips(*units)),
            format!(
                "{partner} signed chit {uuid} for {} on tally {}.",
                chips(*units),
                row.id
            ),
        ),
        LedgerNotice::Chit {
            uuid,
            notice: ChitNotice::InvoiceReceived,
            units,
        } => (
            NotificationKind::InvoiceToApprove,
            format!("{partner} asks you to pay {}", chips(*units)),
            format!(
                "Invoice {uuid} on tally {}: approve it to pay, or reject it.",
                row.id
            ),
        ),
        LedgerNotice::Chit {
            uuid,
            notice: ChitNotice::InvoiceRefused,
            units,
        } => (
            NotificationKind::ChitReceived,
            format!("{partner} refused your invoice of {}", chips(*units)),
            format!("{partner} refused invoice {uuid} on tally {}.", row.id),
        ),
        // The partner's new credit limit is shown; its close request is
        // told by the tally's state change; the rest (lift settings, ours)
        // is logged.
        LedgerNotice::Setting { uuid, by, settings } => {
            tracing::info!(tally = %row.id, %uuid, "a setting chit became binding");
            let limit = settings.get("limit");
            if *by == ledger.side() || limit.is_none() {
                return None;
            }
            let granted = parse_limit(*by, limit).ok()?;
            (
                NotificationKind::TallyLimitChanged,
                format!(
                    "{partner} now grants you {} of credit",
                    chips(Some(granted.milli_chips))
                ),
                format!(
                    "{partner} set the credit it grants you on tally {} to {} (setting chit {uuid}).",
                    row.id,
                    chips(Some(granted.milli_chips))
                ),
            )
        }
        LedgerNotice::PartnerError { index, error } => {
            tracing::warn!(tally = %row.id, ?index, "the tally partner reports a chain error: {error}");
            return None;
        }
    };
    Some(NewNotification {
        kind,
        title,
        body,
        txid: None,
    })
}

/// One chit for lists: `side` is ours, `confirmed` the chain position both
/// halves agree on, `waiting` whether its message is still in the outbox,
/// `running` the good balance after it. Reads the stored row only (its
/// record was checked when it was stored).
pub(crate) fn chit_info(
    side: Side,
    confirmed: u64,
    stored: &StoredChit,
    waiting: bool,
    running: Option<i64>,
) -> ChitInfo {
    let row = &stored.row;
    let record = &row.record;
    let units = record.units();
    let magnitude = i64::try_from(units.unwrap_or(0)).unwrap_or(i64::MAX);
    let amount = match row.state.direction {
        Direction::Asset => magnitude,
        Direction::Liability => -magnitude,
    };
    let transaction = record.chit_type() == ChitType::Transaction;
    ChitInfo {
        uuid: row.uuid.clone(),
        tally: stored.tally.clone(),
        state: row.state.code(),
        kind: record.chit_type().as_str().to_owned(),
        by: record.by().as_str().to_owned(),
        mine: record.by() == side,
        units,
        amount: if transaction { amount } else { 0 },
        memo: record.memo().map(str::to_owned),
        date: record.date().to_owned(),
        index: row.link.map(|l| l.index),
        consensus: match row.link {
            None => "unlinked",
            Some(link) if link.index <= confirmed => "linked",
            Some(_) => "provisional",
        }
        .to_owned(),
        needs_action: row.state.needs_action(),
        invoice: transaction && !stored.opened_as.unwrap_or(row.state).is_signed(),
        waiting,
        running_balance: running,
        setting: (record.chit_type() == ChitType::Setting)
            .then(|| describe_setting(record.by(), record.reference())),
        created_at: stored.created_at,
    }
}

/// What a setting chit's `ref` sets, in words.
fn describe_setting(by: Side, settings: Option<&Value>) -> String {
    let mut words = Vec::new();
    if let Some(limit) = settings.and_then(|s| s.get("limit")) {
        words.push(match parse_limit(by, Some(limit)) {
            Ok(l) => format!("credit limit {}", crate::tally::format_chips(l.milli_chips)),
            Err(_) => format!("credit limit {limit}"),
        });
    }
    if settings.and_then(|s| s.get("close")) == Some(&Value::Bool(true)) {
        words.push("asks to close".to_owned());
    }
    if words.is_empty() {
        "a setting".to_owned()
    } else {
        words.join(", ")
    }
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// Every chit of a tally (`chits` newest first, all of them) for lists,
/// with running balances and what waits for the partner.
fn chit_infos(
    side: Side,
    confirmed: u64,
    chits: &[StoredChit],
    waiting: &std::collections::HashSet<String>,
) -> Vec<ChitInfo> {
    let good = |c: &StoredChit| c.row.state.status == crate::tally::ChitStatus::Good;
    let signed_units = |c: &StoredChit| {
        let units = i128::from(c.row.record.units().unwrap_or(0));
        match c.row.state.direction {
            Direction::Asset => units,
            Direction::Liability => -units,
        }
    };
    let mut remaining: i128 = chits.iter().filter(|c| good(c)).map(signed_units).sum();
    chits
        .iter()
        .map(|c| {
            let running = good(c).then(|| {
                let after = saturate(remaining);
                remaining -= signed_units(c);
                after
            });
            chit_info(side, confirmed, c, waiting.contains(&c.row.uuid), running)
        })
        .collect()
}

/// What a tally's chits say, for its summary.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChitSummary {
    /// Newest first.
    pub chits: Vec<ChitInfo>,
    /// The good balance from our side, milliCHIPs.
    pub balance: i64,
    /// The credit we grant the partner now, and the partner us (milliCHIPs;
    /// `None` when it cannot be enforced).
    pub my_limit: Option<u64>,
    pub partner_limit: Option<u64>,
    /// Invoices waiting for our approval or rejection.
    pub invoices_to_approve: usize,
}

/// A tally's balance and limits, from its summary (no chit is read);
/// `None` for a tally that holds no chits (not open, closing or closed).
pub(crate) fn read_totals(
    store: &crate::store::Store,
    row: &TallyRow,
) -> Result<Option<ChitSummary>, StoreError> {
    let (true, Some(side)) = (row.state.has_chits(), row.side) else {
        return Ok(None);
    };
    // Its own record, checked when the tally opened: only its terms are
    // read here.
    let record = match crate::tally::TallyRecord::parse(&row.record) {
        Ok(record) => record,
        Err(e) => {
            tracing::warn!(tally = %row.id, "cannot read the tally's record: {e}");
            return Ok(None);
        }
    };
    let totals = match store.chit_totals(&row.id)? {
        Some(totals) => totals,
        None if store.chit_count(&row.id)? == 0 => Default::default(),
        // Chits without a summary (written by hand): summed from them.
        None => {
            let chits = store.chits_of(&row.id)?;
            let confirmed = store.chits_confirmed(&row.id)?;
            match restore(row, chits, confirmed) {
                Ok(ledger) => ledger.totals(),
                Err(e) => {
                    tracing::warn!(tally = %row.id, "cannot read the tally's chits: {e}");
                    return Ok(None);
                }
            }
        }
    };
    let limit = |by: Side| {
        let value = totals
            .limit(by)
            .or_else(|| record.party(by).terms().get("limit"));
        parse_limit(by, value).ok().map(|l| l.milli_chips)
    };
    let needs_action = crate::tally::chain::ChitState::new(
        Direction::Liability,
        crate::tally::ChitStatus::Pend,
        None,
    );
    Ok(Some(ChitSummary {
        chits: Vec::new(),
        balance: saturate(totals.balance.good),
        my_limit: limit(side),
        partner_limit: limit(side.other()),
        invoices_to_approve: usize::try_from(store.chits_in_state(&row.id, &needs_action.code())?)
            .unwrap_or(usize::MAX),
    }))
}

/// The chits of a tally (read from their rows, not checked again), its
/// balance and limits (from its summary); `None` for a tally that holds
/// no chits.
pub(crate) fn read_chits(
    store: &crate::store::Store,
    row: &TallyRow,
) -> Result<Option<ChitSummary>, StoreError> {
    let Some(mut summary) = read_totals(store, row)? else {
        return Ok(None);
    };
    let Some(side) = row.side else {
        return Ok(None);
    };
    let chits = store.chits_of(&row.id)?;
    let confirmed = store.chits_confirmed(&row.id)?;
    let waiting = store.chits_waiting(&row.id)?;
    summary.chits = chit_infos(side, confirmed, &chits, &waiting);
    Ok(Some(summary))
}

fn check_memo(memo: &Option<String>) -> bool {
    memo.as_ref()
        .is_none_or(|m| m.chars().count() <= MAX_MEMO_CHARS && !m.chars().any(char::is_control))
}

/// What a local chit operation did, inside its transaction.
struct Done {
    partner: Option<[u8; 32]>,
    events: Vec<WalletEvent>,
    info: Option<ChitInfo>,
}

/// Persists `outcome` and reads back the chit `uuid`.
fn finish(
    tx: &StoreTx<'_>,
    me: &Identity,
    row: &TallyRow,
    ledger: &ChitLedger,
    outcome: &ChitOutcome,
    uuid: &str,
) -> Result<Done, StoreError> {
    let events = persist(tx, me, row, ledger, outcome)?;
    let waiting = tx.chits_waiting(&row.id)?;
    let info = match tx.chit_of(&row.id, uuid)? {
        Some(stored) => {
            // The good balance after it: every good chit but those after
            // it in list order (as `chit_infos` sums them).
            let running = if stored.row.state.status == crate::tally::ChitStatus::Good {
                let after = tx.good_after(&row.id, crate::store::ChitCursor::of(&stored))?;
                Some(saturate(ledger.balance().good - after))
            } else {
                None
            };
            Some(chit_info(
                ledger.side(),
                ledger.confirmed(),
                &stored,
                waiting.contains(uuid),
                running,
            ))
        }
        None => None,
    };
    Ok(Done {
        partner: row.partner_agent,
        events,
        info,
    })
}

/// After a local change: emit its events; with no agent running in this
/// process (the CLI), deliver now. A running agent was told when the change
/// committed and is sending it already, on an open session or a new one
/// (and keeps trying if the partner is offline), so the person does not
/// wait for it.
async fn after(inner: &Arc<Inner>, me: &Arc<Identity>, done: Done) -> Option<ChitInfo> {
    emit(inner, done.events);
    if let Some(partner) = done.partner
        && !inner.agent.running()
    {
        deliver_now(inner, me, partner).await;
    }
    done.info
}

/// A fresh version 4 uuid for a chit.
fn new_uuid() -> Result<String, KeyError> {
    super::ops::new_uuid()
}

/// An unsigned `tran` chit of `units` on the ledger's tally, dated now, signed later "by"
/// `by` (me for a payment, the partner for an invoice).
fn transaction_chit(
    ledger: &ChitLedger,
    by: Side,
    uuid: &str,
    units: u64,
    memo: &Option<String>,
) -> Result<ChitRecord, RecordError> {
    let mut builder = ChitBuilder::transaction(
        ledger.tally_uuid(),
        by,
        uuid.to_owned(),
        format_date(SystemTime::now()),
        units,
    );
    if let Some(memo) = memo {
        builder = builder.memo(memo.clone());
    }
    builder.build()
}

/// Pays `units` milliCHIPs to the partner (see [`crate::Wallet::tally_pay`]).
pub(crate) async fn pay(
    inner: &Arc<Inner>,
    id: &str,
    units: u64,
    memo: Option<String>,
) -> Result<ChitInfo, TallyPayError> {
    if units == 0 {
        return Err(TallyPayError::Zero);
    }
    if !check_memo(&memo) {
        return Err(TallyPayError::BadMemo);
    }
    let me = identity(inner).await?;
    let uuid = new_uuid()?;
    let (me2, id2) = (me.clone(), id.to_owned());
    let done = inner
        .db(move |s| {
            s.write(|tx| {
                let Some(row) = tx.tally(&id2)? else {
                    return Ok(Err(TallyPayError::UnknownTally(id2.clone())));
                };
                let mut ledger = match load_tail(tx, &row, &Needs::chit(&uuid))? {
                    Ok(ledger) => ledger,
                    Err(e) => return Ok(Err(e.into())),
                };
                let chit = match transaction_chit(&ledger, ledger.side(), &uuid, units, &memo) {
                    Ok(chit) => chit,
                    Err(e) => return Ok(Err(TallyPayError::Build(e.to_string()))),
                };
                let outcome = match ledger.issue(&me2.key, chit) {
                    Ok(outcome) => outcome,
                    Err(IssueError::OverLimit(over)) => {
                        return Ok(Err(TallyPayError::OverLimit(over)));
                    }
                    Err(IssueError::Limit(p)) => return Ok(Err(TallyPayError::Limit(p))),
                    Err(IssueError::Closed) => return Ok(Err(TallyPayError::Closed)),
                    Err(IssueError::Closing(away)) => {
                        return Ok(Err(TallyPayError::Closing(away)));
                    }
                    Err(e) => return Ok(Err(TallyPayError::Issue(e))),
                };
                finish(tx, &me2, &row, &ledger, &outcome, &uuid).map(Ok)
            })
        })
        .await??;
    after(inner, &me, done).await.ok_or_else(|| {
        TallyPayError::Store(StoreError::NotFound {
            what: "the new chit".into(),
        })
    })
}

/// Asks the partner to pay `units` milliCHIPs (see
/// [`crate::Wallet::tally_invoice`]).
pub(crate) async fn invoice(
    inner: &Arc<Inner>,
    id: &str,
    units: u64,
    memo: Option<String>,
) -> Result<ChitInfo, TallyInvoiceError> {
    if units == 0 {
        return Err(TallyInvoiceError::Zero);
    }
    if !check_memo(&memo) {
        return Err(TallyInvoiceError::BadMemo);
    }
    let me = identity(inner).await?;
    let uuid = new_uuid()?;
    let (me2, id2) = (me.clone(), id.to_owned());
    let done = inner
        .db(move |s| {
            s.write(|tx| {
                let Some(row) = tx.tally(&id2)? else {
                    return Ok(Err(TallyInvoiceError::UnknownTally(id2.clone())));
                };
                let mut ledger = match load_tail(tx, &row, &Needs::chit(&uuid))? {
                    Ok(ledger) => ledger,
                    Err(e) => return Ok(Err(e.into())),
                };
                // The partner signs an invoice, so it is issued "by" them.
                let by = ledger.side().other();
                let chit = match transaction_chit(&ledger, by, &uuid, units, &memo) {
                    Ok(chit) => chit,
                    Err(e) => return Ok(Err(TallyInvoiceError::Build(e.to_string()))),
                };
                let outcome = match ledger.invoice(chit) {
                    Ok(outcome) => outcome,
                    Err(e) => return Ok(Err(TallyInvoiceError::Invoice(e))),
                };
                finish(tx, &me2, &row, &ledger, &outcome, &uuid).map(Ok)
            })
        })
        .await??;
    after(inner, &me, done).await.ok_or_else(|| {
        TallyInvoiceError::Store(StoreError::NotFound {
            what: "the new invoice".into(),
        })
    })
}

/// What a setting chit sets.
pub(crate) enum Setting {
    /// The credit we grant the partner, milliCHIPs (`ref.limit`, in CHIPs).
    Limit(u64),
    /// Ask to close the tally (`ref.close: true`).
    Close,
}

/// Signs and sends a setting chit of ours (see
/// [`crate::Wallet::tally_set_limit`] and [`crate::Wallet::tally_close`]).
pub(crate) async fn set(
    inner: &Arc<Inner>,
    id: &str,
    setting: Setting,
) -> Result<ChitInfo, TallySettingError> {
    let me = identity(inner).await?;
    let uuid = new_uuid()?;
    let (me2, id2) = (me.clone(), id.to_owned());
    let done = inner
        .db(move |s| {
            s.write(|tx| {
                let Some(row) = tx.tally(&id2)? else {
                    return Ok(Err(TallySettingError::UnknownTally(id2.clone())));
                };
                let mut ledger = match load_tail(tx, &row, &Needs::chit(&uuid))? {
                    Ok(ledger) => ledger,
                    Err(e) => return Ok(Err(e.into())),
                };
                let settings = match setting {
                    Setting::Limit(milli) => serde_json::json!({ "limit": limit_value(milli) }),
                    Setting::Close => {
                        if ledger.close_state() != crate::tally::chain::CloseState::Open {
                            return Ok(Err(match row.state {
                                TallyState::Closed => TallySettingError::Closed,
                                _ => TallySettingError::AlreadyClosing,
                            }));
                        }
                        serde_json::json!({ "close": true })
                    }
                };
                let chit = match ChitBuilder::setting(
                    ledger.tally_uuid(),
                    ledger.side(),
                    uuid.clone(),
                    format_date(SystemTime::now()),
                    settings,
                )
                .build()
                {
                    Ok(chit) => chit,
                    Err(e) => return Ok(Err(TallySettingError::Build(e.to_string()))),
                };
                let outcome = match ledger.issue(&me2.key, chit) {
                    Ok(outcome) => outcome,
                    Err(IssueError::Closed) => return Ok(Err(TallySettingError::Closed)),
                    Err(IssueError::Setting(p)) => return Ok(Err(TallySettingError::Refused(p))),
                    Err(e) => return Ok(Err(TallySettingError::Issue(e))),
                };
                finish(tx, &me2, &row, &ledger, &outcome, &uuid).map(Ok)
            })
        })
        .await??;
    after(inner, &me, done).await.ok_or_else(|| {
        TallySettingError::Store(StoreError::NotFound {
            what: "the new setting chit".into(),
        })
    })
}

/// The tally holding chit `uuid`.
fn tally_of_chit(tx: &StoreTx<'_>, uuid: &str) -> Result<Option<TallyRow>, StoreError> {
    for stored in tx.chits_by_uuid(uuid)? {
        if let Some(row) = tx.tally(&stored.tally)? {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// Approves (signs) an invoice the partner sent.
pub(crate) async fn approve(inner: &Arc<Inner>, uuid: &str) -> Result<ChitInfo, ChitApproveError> {
    let me = identity(inner).await?;
    let (me2, uuid2) = (me.clone(), uuid.to_owned());
    let done = inner
        .db(move |s| {
            s.write(|tx| {
                let Some(row) = tally_of_chit(tx, &uuid2)? else {
                    return Ok(Err(ChitApproveError::UnknownChit(uuid2.clone())));
                };
                let mut ledger = match load_tail(tx, &row, &Needs::chit(&uuid2))? {
                    Ok(ledger) => ledger,
                    Err(e) => return Ok(Err(e.into())),
                };
                let outcome = match ledger.approve(&me2.key, &uuid2) {
                    Ok(outcome) => outcome,
                    Err(ApproveError::OverLimit(over)) => {
                        return Ok(Err(ChitApproveError::OverLimit(over)));
                    }
                    Err(ApproveError::Limit(p)) => return Ok(Err(ChitApproveError::Limit(p))),
                    Err(ApproveError::Closed) => return Ok(Err(ChitApproveError::Closed)),
                    Err(ApproveError::Closing(away)) => {
                        return Ok(Err(ChitApproveError::Closing(away)));
                    }
                    Err(e) => return Ok(Err(ChitApproveError::Approve(e))),
                };
                finish(tx, &me2, &row, &ledger, &outcome, &uuid2).map(Ok)
            })
        })
        .await??;
    after(inner, &me, done).await.ok_or_else(|| {
        ChitApproveError::Store(StoreError::NotFound {
            what: "the approved chit".into(),
        })
    })
}

/// Rejects an invoice the partner sent.
pub(crate) async fn reject(inner: &Arc<Inner>, uuid: &str) -> Result<ChitInfo, ChitRejectError> {
    let me = identity(inner).await?;
    let (me2, uuid2) = (me.clone(), uuid.to_owned());
    let done = inner
        .db(move |s| {
            s.write(|tx| {
                let Some(row) = tally_of_chit(tx, &uuid2)? else {
                    return Ok(Err(ChitRejectError::UnknownChit(uuid2.clone())));
                };
                let mut ledger = match load_tail(tx, &row, &Needs::chit(&uuid2))? {
                    Ok(ledger) => ledger,
                    Err(e) => return Ok(Err(e.into())),
                };
                let outcome = match ledger.reject(&uuid2) {
                    Ok(outcome) => outcome,
                    Err(e) => return Ok(Err(ChitRejectError::Reject(e))),
                };
                finish(tx, &me2, &row, &ledger, &outcome, &uuid2).map(Ok)
            })
        })
        .await??;
    after(inner, &me, done).await.ok_or_else(|| {
        ChitRejectError::Store(StoreError::NotFound {
            what: "the rejected chit".into(),
        })
    })
}

/// A tally's chits, newest first (none for a tally that is not open).
pub(crate) async fn list(inner: &Inner, id: &str) -> Result<Vec<ChitInfo>, super::TallyError> {
    let id2 = id.to_owned();
    let found = inner
        .db(move |s| {
            let Some(row) = s.tally(&id2)? else {
                return Ok::<_, StoreError>(None);
            };
            Ok(Some(read_chits(s, &row)?))
        })
        .await?;
    match found {
        None => Err(super::TallyError::UnknownTally(id.to_owned())),
        Some(chits) => Ok(chits.map(|c| c.chits).unwrap_or_default()),
    }
}

/// At most `limit` chits of a tally, newest first, from `before` (the
/// `next` of the page before; `None`: the newest). Only the page's rows are
/// read, and nothing is verified again: each chit was checked when it was
/// stored, and each change checks the part of the chain it reads. The
/// running balances are summed from the stored amounts of the good chits,
/// without reading their records.
pub(crate) async fn page(
    inner: &Inner,
    id: &str,
    before: Option<&str>,
    limit: usize,
) -> Result<ChitPage, ChitPageError> {
    let before = match before {
        None => None,
        Some(text) => Some(
            crate::store::ChitCursor::parse(text)
                .ok_or_else(|| ChitPageError::BadCursor(text.to_owned()))?,
        ),
    };
    let limit = limit.max(1);
    let id2 = id.to_owned();
    let found = inner
        .db(move |s| {
            let Some(row) = s.tally(&id2)? else {
                return Ok::<_, StoreError>(None);
            };
            let (true, Some(side)) = (row.state.has_chits(), row.side) else {
                return Ok(Some(ChitPage {
                    rows: Vec::new(),
                    next: None,
                    total: 0,
                }));
            };
            let mut chits = s.chit_page(&row.id, before, limit + 1)?;
            let more = chits.len() > limit;
            chits.truncate(limit);
            let total = s.chit_count(&row.id)?;
            let confirmed = s.chits_confirmed(&row.id)?;
            let waiting = s.chits_waiting(&row.id)?;
            // The good balance after the page's newest row: the tally's
            // (from its summary) less the good chits newer than that row, so
            // the newest page reads a handful of rows, not every chit.
            let mut remaining: i128 = match chits.first() {
                Some(first) => {
                    let top = crate::store::ChitCursor::of(first);
                    match s.chit_totals(&row.id)? {
                        Some(totals) => totals.balance.good - s.good_after(&row.id, top)?,
                        // No summary (chits written before migration 9
                        // filled it): summed from the rows.
                        None => s
                            .good_chits(&row.id)?
                            .iter()
                            .filter(|g| g.at <= top)
                            .map(|g| g.amount)
                            .sum(),
                    }
                }
                None => 0,
            };
            let rows = chits
                .iter()
                .map(|c| {
                    let running =
                        (c.row.state.status == crate::tally::ChitStatus::Good).then(|| {
                            let after = saturate(remaining);
                            let units = i128::from(c.row.record.units().unwrap_or(0));
                            remaining -= match c.row.state.direction {
                                Direction::Asset => units,
                                Direction::Liability => -units,
                            };
                            after
                        });
                    chit_info(side, confirmed, c, waiting.contains(&c.row.uuid), running)
                })
                .collect();
            let next = if more {
                chits
                    .last()
                    .map(|c| crate::store::ChitCursor::of(c).encode())
            } else {
                None
            };
            Ok(Some(ChitPage { rows, next, total }))
        })
        .await?;
    found.ok_or_else(|| ChitPageError::UnknownTally(id.to_owned()))
}

// ---- receiving ------------------------------------------------------------

/// A chit message from `remote`, applied to the tally it names.
pub(crate) async fn on_message(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    remote: AgentId,
    message: Value,
) {
    let message = match ChitMessage::from_value(&message) {
        Ok(message) => message,
        Err(e) => {
            tracing::info!(%remote, "refused a chit message: {e}");
            return;
        }
    };
    let me2 = me.clone();
    let result = inner
        .db(move |s| {
            s.write(|tx| {
                let Some(row) = tx.tally_by_uuid(message.tally())? else {
                    return Ok(Err(format!("there is no tally {} here", message.tally())));
                };
                // Only the tally's partner speaks for its half.
                if row.partner_agent != Some(*remote.as_bytes()) {
                    return Ok(Err("the sender is not this tally's partner".to_owned()));
                }
                let mut ledger = match load_tail(tx, &row, &Needs::message(&message))? {
                    Ok(ledger) => ledger,
                    Err(e) => return Ok(Err(e.to_string())),
                };
                match ledger.apply(&message) {
                    Ok(outcome) => persist(tx, &me2, &row, &ledger, &outcome).map(Ok),
                    Err(error) => {
                        // A chain we cannot reconcile: tell the partner.
                        if let Some(answer) = ledger.error_message(&error) {
                            queue(tx, &me2, &row, &answer)?;
                        }
                        Ok(Err(error.to_string()))
                    }
                }
            })
        })
        .await;
    match result {
        Ok(Ok(events)) => emit(inner, events),
        Ok(Err(why)) => tracing::info!(%remote, "refused a chit message: {why}"),
        Err(e) => tracing::warn!("a chit message could not be stored: {e}"),
    }
}

/// Sends the consensus check of every open tally with `remote` on a
/// session that just opened (PROTOCOL §13: `sync()` on reconnection). Not
/// queued: it is only worth sending on a live session, and the answers
/// come back through the outboxes. `false` if the session failed.
pub(crate) async fn sync_over(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    session: &mut SessionSender<TcpStream>,
    remote: AgentId,
) -> bool {
    let me2 = me.clone();
    let messages = inner
        .db(move |s| {
            let mut out = Vec::new();
            for row in s.tallies()? {
                if !row.state.has_chits() || row.partner_agent != Some(*remote.as_bytes()) {
                    continue;
                }
                // Only where our chain is confirmed up to: no chit is read.
                let (Some(side), Ok(record)) =
                    (row.side, crate::tally::TallyRecord::parse(&row.record))
                else {
                    continue;
                };
                let confirmed = s.chits_confirmed(&row.id)?;
                let hash = match confirmed {
                    0 => Some(crate::tally::chit::chain_genesis(&record)),
                    index => s.link_hash_at(&row.id, index)?,
                };
                let Some(hash) = hash else {
                    tracing::warn!(tally = %row.id, "the tally's chain is broken at {confirmed}");
                    continue;
                };
                let end = crate::tally::chit::ChainLink {
                    index: confirmed,
                    hash,
                };
                for message in ChitLedger::sync_from(record.uuid(), side, end) {
                    out.push(for_attempt(&envelope(&me2, &row, &message).to_string(), 1));
                }
            }
            Ok::<_, StoreError>(out)
        })
        .await;
    let messages = match messages {
        Ok(messages) => messages,
        Err(e) => {
            tracing::warn!("the chit chains could not be read: {e}");
            return true;
        }
    };
    for message in messages {
        if let Err(e) = session.send(&message).await {
            tracing::debug!(%remote, "could not send a chain check: {e}");
            return false;
        }
    }
    true
}

// ---- delivering -----------------------------------------------------------

/// Sends the partner's queued chit messages on an open session. `false` if
/// the session failed.
pub(crate) async fn flush_over(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    session: &mut SessionSender<TcpStream>,
    remote: AgentId,
) -> bool {
    let rows = match inner
        .db(move |s| s.chit_outbox_for(remote.as_bytes()))
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!("the chit outbox could not be read: {e}");
            return true;
        }
    };
    tracing::trace!(%remote, rows = rows.len(), "flushing chit messages");
    for row in rows {
        let message = for_attempt(&row.message, row.attempts.saturating_add(1));
        if let Err(e) = session.send(&message).await {
            tracing::debug!(%remote, "could not send a chit message: {e}");
            return false;
        }
        delivered(inner, me, row).await;
    }
    true
}

/// Records that a chit message went out: the chit's request becomes its
/// status (`sent`) and the message leaves the outbox, in one transaction.
pub(crate) async fn delivered(inner: &Arc<Inner>, me: &Arc<Identity>, row: ChitOutboxRow) {
    let me = me.clone();
    let result = inner
        .db(move |s| {
            s.write(|tx| {
                let mut events = Vec::new();
                if let Some(uuid) = &row.chit
                    && let Some(tally) = tx.tally(&row.tally)?
                    && let Ok(mut ledger) = load_tail(tx, &tally, &Needs::chit(uuid))?
                    // Only a chit still waiting for this delivery moves on
                    // (a repeat, or a message the state already passed, not).
                    && ledger.state(uuid).is_some_and(|s| s.request.is_some())
                    && let Ok(outcome) = ledger.sent(uuid)
                {
                    events = persist(tx, &me, &tally, &ledger, &outcome)?;
                }
                tx.delete_chit_outbox(row.id)?;
                // It no longer waits for the partner, even if its state
                // did not move: the shells show that too.
                if let Some(uuid) = &row.chit
                    && !events
                        .iter()
                        .any(|e| matches!(e, WalletEvent::ChitChanged { chit, .. } if chit == uuid))
                    && let Some(stored) = tx
                        .chits_by_uuid(uuid)?
                        .into_iter()
                        .find(|c| c.tally == row.tally)
                {
                    events.push(WalletEvent::ChitChanged {
                        tally: row.tally.clone(),
                        chit: uuid.clone(),
                        state: stored.row.state.code(),
                    });
                }
                Ok(events)
            })
        })
        .await;
    match result {
        Ok(events) => emit(inner, events),
        Err(e) => tracing::warn!("a delivered chit message could not be recorded: {e}"),
    }
}

async fn failed(
    inner: &Arc<Inner>,
    rows: Vec<ChitOutboxRow>,
    delay: super::RetryPolicy,
    error: String,
) {
    let result = inner
        .db(move |s| {
            s.write(|tx| {
                for row in &rows {
                    let next = super::apply::after_ms(delay.delay(row.attempts.saturating_add(1)));
                    tx.chit_outbox_failed(row.id, next, &error)?;
                }
                Ok(())
            })
        })
        .await;
    if let Err(e) = result {
        tracing::warn!("a failed chit delivery could not be recorded: {e}");
    }
}

/// Delivers the due chit messages, one connection per partner.
pub(crate) async fn deliver_due(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    config: &super::AgentConfig,
) -> Result<(), StoreError> {
    let rows = inner.db(|s| s.chit_outbox_due(now_ms())).await?;
    deliver_rows(inner, me, config, rows).await;
    Ok(())
}

/// Delivers every chit message for `partner` now (the person just acted).
pub(crate) async fn deliver_now(inner: &Arc<Inner>, me: &Arc<Identity>, partner: [u8; 32]) {
    let mut config = inner.agent.config();
    // The person waits for this: do not linger for more than a moment.
    config.linger = config.linger.min(std::time::Duration::from_millis(200));
    match inner.db(move |s| s.chit_outbox_for(&partner)).await {
        Ok(rows) => deliver_rows(inner, me, &config, rows).await,
        Err(e) => tracing::warn!("the chit outbox could not be read: {e}"),
    }
}

pub(crate) async fn deliver_rows(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    config: &super::AgentConfig,
    rows: Vec<ChitOutboxRow>,
) {
    let mut groups: Vec<([u8; 32], Vec<ChitOutboxRow>)> = Vec::new();
    for row in rows {
        // A partner that cannot be called gets its messages when it calls.
        if row.host.is_none() || row.port.is_none() {
            continue;
        }
        match groups.iter_mut().find(|(a, _)| *a == row.partner_agent) {
            Some((_, group)) => group.push(row),
            None => groups.push((row.partner_agent, vec![row])),
        }
    }
    let runs = groups
        .into_iter()
        .map(|(agent, group)| deliver_group(inner, me, config, agent, group));
    futures_util::future::join_all(runs).await;
}

async fn deliver_group(
    inner: &Arc<Inner>,
    me: &Arc<Identity>,
    config: &super::AgentConfig,
    agent: [u8; 32],
    rows: Vec<ChitOutboxRow>,
) {
    // Someone is delivering to this partner already: its session sends
    // these, or they are asked for again when it ends.
    let Some(_busy) = Busy::try_new(inner, agent) else {
        return;
    };
    let Some(first) = rows.first().cloned() else {
        return;
    };
    let (Some(host), Some(port)) = (first.host.clone(), first.port) else {
        return;
    };
    let remote = AgentId::from_bytes(agent);
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
            tracing::debug!(%remote, "tally partner not reached for chits: {e}");
            failed(inner, rows, config.retry, e.to_string()).await;
        }
        Ok(mut session) => {
            let live = Live::new(inner, remote, true);
            // The first message went inside the handshake.
            delivered(inner, me, first).await;
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
        }
    }
}
