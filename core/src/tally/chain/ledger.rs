//! One half of a tally's chits: their states, the hash chain, consensus
//! with the other half, balances and limits.
//!
//! [`ChitLedger`] is a plain value. Every operation either fails with a
//! typed error and leaves the ledger as it was, or changes it and returns a
//! [`ChitOutcome`]: the rows to write ([`ChitChangeSet`]), the messages to
//! send and what to tell the user. The caller writes the change set (and
//! queues the messages in its outbox) in one database transaction, then
//! sends. [`ChitLedger::restore`] rebuilds the ledger from the written rows;
//! [`ChitLedger::restore_tail`] rebuilds only what an operation needs (the
//! chain after the confirmed end, the chits not yet final, the chits it
//! names) with [`ChitTotals`] standing for the rest, so that an operation
//! costs the same on a tally with ten chits or ten thousand. A ledger so
//! restored refuses, as a chain that does not match, anything that would
//! need a link it does not hold.
//!
//! # The chain and who orders it
//!
//! Every signed chit is linked into a hash chain (index 1, 2, …; see
//! [`super::super::chit`] for the hash). The **foil** orders
//! (`doc/learn-protocol.md`: "the foil is responsible to choose the order to
//! link chits into the chain. The stock must conform to that chosen
//! order"):
//!
//! - The foil links every good chit at the end of its chain as soon as it
//!   has it, its own or the stock's, and never moves a link. Its own chit
//!   goes out in a `good` message with its index and chain hash. To each
//!   chit from the stock it answers `upd`: its chain end, and the chits
//!   from the stock's proposed index (or from where it put the chit) on,
//!   unless the stock proposed exactly the place the foil chose (MyCHIPs
//!   `chain_consense`: `ch.chain_hash = propHash` → ACK, else the chits
//!   `between propIdx and nextIdx`).
//! - The stock keeps a *confirmed* prefix (MyCHIPs `chain_conf`) that the
//!   foil's hashes vouch for, followed by its own chits linked
//!   *provisionally* (`propHash`). A chit of the foil is linked only where
//!   the foil put it, and only when its chain hash, computed over the
//!   stock's confirmed prefix, is the one the foil sent: the hash commits to
//!   the whole prefix, so a match proves both chains are equal up to there.
//!   When the foil places chits, the stock's provisional chits move behind
//!   them and get new hashes. An `upd` confirms either a run of chits (each
//!   link checked) or, with no chits, the stock's own provisional chain up
//!   to the foil's end if the hashes agree (the ACK).
//! - When the stock cannot link (the foil's chit is further on than its
//!   confirmed end: something is missing or still in flight), it keeps the
//!   signed chit with the place the foil gave (a *claim*, tried again each
//!   time the confirmed end moves) and sends `req` for the chits after its
//!   confirmed end. The foil answers with `upd` (at most
//!   [`super::UPDATE_CHIT_BYTES`] of chits at a time; the stock asks again
//!   until it reaches the foil's end).
//! - When an answer to a `req` (an `upd` without a chit uuid) brings the
//!   stock to the foil's end and the stock still has provisional chits, the
//!   foil did not have them when it answered: the stock sends them again
//!   (MyCHIPs: "If the foil lost a chit, the stock should find it has a
//!   leftover valid chit after conforming to the foil. It can then just
//!   resend that chit").
//!
//! Duplicates are harmless: a chit already held (same signed bytes, same
//! signature) changes nothing; the foil answers a repeated chit again, and
//! an answer the stock already knows confirms nothing new. Messages that do
//! not verify are refused whole: a bad signature, another tally, a chain
//! hash that does not follow from the agreed prefix, a chain that differs
//! from the confirmed one ([`ApplyError`]).
//!
//! With every message eventually delivered (in any order, any number of
//! times), both halves end with the same chain: every foil message carries
//! the foil's end, the last one reaches the stock, and from there the stock
//! either confirms it or asks (`req`) and each answer moves its confirmed
//! end forward. For messages lost for good, [`ChitLedger::sync`] (after a
//! reconnection, or on a timer) starts the same exchange again, and
//! [`ChitLedger::unsent`] lists the chit messages still owed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use super::super::chit::{
    ChainLink, ChitRecord, ChitSignError, ChitType, chain_genesis, chain_hash,
};
use super::super::record::{Side, SignatureProblem, VerifiedTally};
use super::balance::{
    AwayFromZero, Balance, CloseState, CreditLimit, LimitProblem, OverLimit, SettingProblem,
    check_limit, check_settings, check_toward_zero, parse_limit,
};
use super::message::{ChitAction, ChitMessage, LinkedChit, MessageError, UPDATE_CHIT_BYTES};
use super::state::{
    ChitEffect, ChitError, ChitEvent, ChitNotice, ChitState, ChitStatus, Direction, transition,
};
use crate::keys::TallyKey;

/// One chit as the caller stores it: the record, its state and its place
/// in the chain. Rows are never deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct ChitRow {
    pub uuid: String,
    pub record: ChitRecord,
    pub state: ChitState,
    /// MyCHIPs `chain_idx` and `chain_hash`: where the chit is linked
    /// (for the stock, beyond `confirmed` this is provisional).
    pub link: Option<ChainLink>,
    /// Stock only: where the foil says this chit of the foil's is, not yet
    /// checked because the stock's confirmed chain does not reach it.
    pub claim: Option<ChainLink>,
}

/// Where a chit is in the consensus (MyCHIPs `chit_cstate`, without the
/// states that only track MyCHIPs's message queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Consensus {
    /// Not linked: unsigned, or the stock waits for the foil's chain.
    Unlinked,
    /// Linked by the stock, not yet confirmed by the foil.
    Provisional,
    /// Linked where both halves agree.
    Linked,
}

/// Something to tell the holder, written with the change.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerNotice {
    Chit {
        uuid: String,
        notice: ChitNotice,
        units: Option<u64>,
    },
    /// A setting chit became binding: its `ref` (`target`, `bound`,
    /// `reward`, `clutch`, `close`, `call`, `limit`…). `close: true` asks
    /// the tally lifecycle to close the tally once its balance is zero.
    Setting {
        uuid: String,
        by: Side,
        settings: Value,
    },
    /// The partner reports it cannot reconcile its chain with ours.
    PartnerError { index: Option<u64>, error: String },
}

/// Why a message changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// It repeats what the ledger already holds.
    Duplicate,
    /// It does not apply to the chit in its current state (a late or
    /// repeated message; MyCHIPs ignores these too).
    Stale {
        state: Option<ChitState>,
        action: ChitAction,
    },
}

/// The rows a change touched, to write in one database transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChitChangeSet {
    /// Rows to insert or replace (new chits, new states, moved links).
    pub chits: Vec<ChitRow>,
    /// The new `confirmed` count, if it changed.
    pub confirmed: Option<u64>,
    pub notices: Vec<LedgerNotice>,
}

impl ChitChangeSet {
    pub fn is_empty(&self) -> bool {
        self.chits.is_empty() && self.confirmed.is_none() && self.notices.is_empty()
    }
}

/// What an operation did: the change to persist and the messages to send
/// after it is persisted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChitOutcome {
    pub changes: ChitChangeSet,
    pub outgoing: Vec<ChitMessage>,
    /// Set when a received message changed nothing.
    pub ignored: Option<Ignored>,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    record: Arc<ChitRecord>,
    state: ChitState,
    link: Option<ChainLink>,
    claim: Option<ChainLink>,
}

/// One half of a tally's chits (see the module docs).
#[derive(Debug, Clone)]
pub struct ChitLedger {
    tally: Arc<VerifiedTally>,
    me: Side,
    chits: BTreeMap<String, Entry>,
    /// Chit uuids in chain order: `chain[i]` is linked at index
    /// `offset + i + 1`.
    chain: Vec<String>,
    /// How many links both halves agree on (the foil: all of them).
    confirmed: u64,
    /// How many links at the start of the chain this ledger does not hold
    /// (0 for a whole ledger; see [`ChitLedger::restore_tail`]).
    offset: u64,
    /// The chain hash at index `offset` (the tally's digest at 0).
    offset_hash: [u8; 32],
    /// What the chits it does not hold add up to.
    base: ChitTotals,
}

/// What a tally's chits add up to: what the ledger needs of the chits it
/// does not hold, and what a wallet keeps of all of them (its per-tally
/// summary) to show a tally's balance and limits without reading its
/// chits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChitTotals {
    pub balance: Balance,
    /// The `limit` of the latest binding setting chit of the stock that
    /// has one (see [`ChitLedger::limit_granted_by`]); `None`: no such
    /// chit.
    pub stock_limit: Option<Value>,
    pub foil_limit: Option<Value>,
    /// A binding close request of the stock / foil.
    pub stock_close: bool,
    pub foil_close: bool,
}

impl ChitTotals {
    pub fn limit(&self, side: Side) -> Option<&Value> {
        match side {
            Side::Stock => self.stock_limit.as_ref(),
            Side::Foil => self.foil_limit.as_ref(),
        }
    }

    pub fn close(&self, side: Side) -> bool {
        match side {
            Side::Stock => self.stock_close,
            Side::Foil => self.foil_close,
        }
    }
}

/// The lowest chain index a message names (a chit's place, a chain end,
/// where a request starts), and the chits it names: what a ledger that
/// holds only the chain's tail must hold to apply it
/// ([`ChitLedger::restore_tail`]).
pub fn message_needs(message: &ChitMessage) -> (Option<u64>, Vec<&str>) {
    match message {
        ChitMessage::Chit { chit, link, .. } => (link.map(|l| l.index), vec![chit.uuid()]),
        ChitMessage::Update {
            uuid, end, chits, ..
        } => {
            let lowest = chits.iter().map(|c| c.link.index).chain([end.index]).min();
            let mut uuids: Vec<&str> = chits.iter().map(|c| c.chit.uuid()).collect();
            uuids.extend(uuid.as_deref());
            (lowest, uuids)
        }
        ChitMessage::Request { after, .. } => (Some(after.index), Vec::new()),
        ChitMessage::Error { .. } => (None, Vec::new()),
    }
}

/// Why a received message was refused; the ledger is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("the message is about tally {found}, not this tally ({ours})")]
    WrongTally { found: String, ours: String },
    #[error("the chit {uuid} is not signed by its issuer, the {side}: the signature {problem}")]
    Signature {
        uuid: String,
        side: Side,
        problem: SignatureProblem,
    },
    #[error(
        "a {action} message from the partner for the chit {uuid} issued by the {by} makes no sense here"
    )]
    UnexpectedIssuer {
        uuid: String,
        by: Side,
        action: &'static str,
    },
    #[error(
        "the chit {uuid} differs from the signed chit with the same uuid that this tally already holds"
    )]
    Conflict { uuid: String },
    #[error(
        "the chain hash given for index {index} does not follow from the chain both sides agree on"
    )]
    BadLink { index: u64 },
    #[error("the partner's chain differs from the agreed chain at index {index}")]
    Fork { index: u64 },
    #[error("only the {sender} sends {what}; this half of the tally is the {sender} too")]
    WrongRole { sender: Side, what: &'static str },
    #[error("the setting chit {uuid} is refused: {problem}")]
    Setting {
        uuid: String,
        problem: SettingProblem,
    },
    #[error(
        "the partner asks this side to sign the setting chit {uuid}: only the side whose terms change issues a setting"
    )]
    SettingFromWrongSide { uuid: String },
    #[error("the message is malformed: {0}")]
    Malformed(&'static str),
}

/// Why a chit of our own could not be issued (nothing was signed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("the chit belongs to tally {found}, not to this tally ({ours})")]
    WrongTally { found: String, ours: String },
    #[error("the chit is issued by the {by}, but this half of the tally is the {me}")]
    NotOurs { by: Side, me: Side },
    #[error("only payments (tran) and settings (set) can be issued here, not {0:?}")]
    Unsupported(&'static str),
    #[error("the chit is already signed")]
    AlreadySigned,
    #[error("this tally already has a chit {0}")]
    DuplicateUuid(String),
    #[error("{0}")]
    OverLimit(OverLimit),
    #[error(transparent)]
    Limit(#[from] LimitProblem),
    #[error("the tally is closed: no more chits")]
    Closed,
    #[error("{0}")]
    Closing(AwayFromZero),
    #[error(transparent)]
    Setting(#[from] SettingProblem),
    #[error("the chit could not be signed: {0}")]
    Sign(#[from] ChitSignError),
}

/// Why an invoice could not be drafted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceError {
    #[error("the chit belongs to tally {found}, not to this tally ({ours})")]
    WrongTally { found: String, ours: String },
    #[error("an invoice is a chit the partner (the {partner}) issues, not the {by}")]
    NotTheirs { by: Side, partner: Side },
    #[error("an invoice is a payment (tran) chit")]
    NotAPayment,
    #[error("an invoice is not signed (the partner signs it when paying)")]
    Signed,
    #[error("a resubmitted invoice must differ from the one refused (change at least its date)")]
    Unchanged,
    #[error("the tally is closed: no more chits")]
    Closed,
    #[error("{0}")]
    Closing(AwayFromZero),
    #[error(transparent)]
    State(#[from] ChitError),
}

/// Why an invoice could not be approved (nothing was signed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApproveError {
    #[error("this tally has no chit {0}")]
    UnknownChit(String),
    #[error(transparent)]
    State(#[from] ChitError),
    #[error("{0}")]
    OverLimit(OverLimit),
    #[error(transparent)]
    Limit(#[from] LimitProblem),
    #[error("the tally is closed: no more chits")]
    Closed,
    #[error("{0}")]
    Closing(AwayFromZero),
    #[error("the invoice could not be signed: {0}")]
    Sign(#[from] ChitSignError),
}

/// Why an invoice could not be rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectError {
    #[error("this tally has no chit {0}")]
    UnknownChit(String),
    #[error(transparent)]
    State(#[from] ChitError),
}

/// Why a chit's message could not be marked as sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SentError {
    #[error("this tally has no chit {0}")]
    UnknownChit(String),
    #[error(transparent)]
    State(#[from] ChitError),
}

/// Why stored rows do not make a ledger (the store is damaged or belongs
/// to another tally).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("the stored chit {uuid} is not valid: {problem}")]
    Row { uuid: String, problem: String },
    #[error("the stored chain is broken at index {index}: {problem}")]
    Chain { index: u64, problem: String },
    #[error("{confirmed} links are stored as confirmed, but {problem}")]
    Confirmed { confirmed: u64, problem: String },
}

/// Same chit: same signed bytes and same signature. (Other members may
/// differ: an agent may add or drop members nobody signs.)
fn same_chit(a: &ChitRecord, b: &ChitRecord) -> bool {
    a.signed_message() == b.signed_message() && a.signature() == b.signature()
}

/// A setting chit asking to close the tally (`ref.close` is `true`;
/// MyCHIPs `chit_goodcheck`: `(settings->'close')::boolean`).
fn asks_close(record: &ChitRecord) -> bool {
    record.chit_type() == ChitType::Setting
        && record
            .reference()
            .and_then(|r| r.get("close"))
            .and_then(Value::as_bool)
            == Some(true)
}

fn direction_of(me: Side, by: Side) -> Direction {
    if by == me {
        Direction::Liability
    } else {
        Direction::Asset
    }
}

impl ChitLedger {
    /// An empty ledger for `me`'s half of an open tally.
    pub fn new(tally: &VerifiedTally, me: Side) -> Self {
        let genesis = chain_genesis(tally.record());
        Self {
            tally: Arc::new(tally.clone()),
            me,
            chits: BTreeMap::new(),
            chain: Vec::new(),
            confirmed: 0,
            offset: 0,
            offset_hash: genesis,
            base: ChitTotals::default(),
        }
    }

    /// Rebuilds the part of a ledger an operation needs: the chain after
    /// index `offset` (whose hash is `offset_hash`; `offset` ≤ `confirmed`),
    /// every chit not linked that is not void, and any other the operation
    /// names (held for its state, not as part of the chain, if linked at or
    /// before `offset`), from their rows (`offset_hash`: `None` for 0); `all` is what every chit of the
    /// tally adds up to (the wallet's summary, written with each change:
    /// [`ChitLedger::totals`]). The held part is checked as
    /// [`ChitLedger::restore`] checks a whole ledger, its chain from
    /// `offset_hash` on; the chits before `offset` were checked when they
    /// were stored and change only through an operation that names them. A
    /// message from the partner needs the chain from the lowest index it
    /// names and from the chits it names ([`message_needs`]); a local
    /// action on a chit needs only that chit. The ledger refuses what would
    /// need a link it does not hold (as a chain that does not match).
    pub fn restore_tail(
        tally: &VerifiedTally,
        me: Side,
        rows: impl IntoIterator<Item = ChitRow>,
        confirmed: u64,
        offset: u64,
        offset_hash: Option<[u8; 32]>,
        all: &ChitTotals,
    ) -> Result<Self, RestoreError> {
        if offset > confirmed {
            return Err(RestoreError::Confirmed {
                confirmed,
                problem: format!("the held chain starts after it, at {offset}"),
            });
        }
        let offset_hash = match (offset, offset_hash) {
            (0, _) => chain_genesis(tally.record()),
            (_, Some(hash)) => hash,
            (index, None) => {
                return Err(RestoreError::Chain {
                    index,
                    problem: "no chit is linked there".into(),
                });
            }
        };
        let mut ledger = Self::restore_from(tally, me, rows, confirmed, offset, offset_hash)?;
        let held = ledger.totals();
        let mut balance = all.balance;
        balance.good -= held.balance.good;
        balance.pending -= held.balance.pending;
        balance.committed -= held.balance.committed;
        ledger.base = ChitTotals {
            balance,
            stock_limit: all.stock_limit.clone(),
            foil_limit: all.foil_limit.clone(),
            stock_close: all.stock_close,
            foil_close: all.foil_close,
        };
        Ok(ledger)
    }

    /// What every chit of the tally adds up to (held or not).
    pub fn totals(&self) -> ChitTotals {
        ChitTotals {
            balance: self.balance(),
            stock_limit: self.latest_limit(Side::Stock).cloned(),
            foil_limit: self.latest_limit(Side::Foil).cloned(),
            stock_close: self.close_requested_by(Side::Stock),
            foil_close: self.close_requested_by(Side::Foil),
        }
    }

    /// How many links at the start of the chain this ledger does not hold.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Rebuilds a ledger from the rows its change sets wrote. Checks that
    /// the rows belong to this tally and side, that the chain is whole
    /// (indices 1..n, every hash recomputed from the tally's digest), and
    /// the invariants of each side; it does not re-check signatures (the
    /// rows are the wallet's own, written after checking them).
    pub fn restore(
        tally: &VerifiedTally,
        me: Side,
        rows: impl IntoIterator<Item = ChitRow>,
        confirmed: u64,
    ) -> Result<Self, RestoreError> {
        let genesis = chain_genesis(tally.record());
        Self::restore_from(tally, me, rows, confirmed, 0, genesis)
    }

    fn restore_from(
        tally: &VerifiedTally,
        me: Side,
        rows: impl IntoIterator<Item = ChitRow>,
        confirmed: u64,
        offset: u64,
        offset_hash: [u8; 32],
    ) -> Result<Self, RestoreError> {
        let mut ledger = Self::new(tally, me);
        ledger.offset = offset;
        ledger.offset_hash = offset_hash;
        let bad = |uuid: &str, problem: String| RestoreError::Row {
            uuid: uuid.to_owned(),
            problem,
        };
        let mut linked: BTreeMap<u64, String> = BTreeMap::new();
        for row in rows {
            let uuid = row.uuid.clone();
            if row.record.uuid() != uuid {
                return Err(bad(
                    &uuid,
                    format!("its record is chit {}", row.record.uuid()),
                ));
            }
            if row.record.tally_uuid() != ledger.tally_uuid() {
                return Err(bad(
                    &uuid,
                    format!("it belongs to tally {}", row.record.tally_uuid()),
                ));
            }
            if row.state.direction != direction_of(me, row.record.by()) {
                return Err(bad(
                    &uuid,
                    format!("state {} does not fit its issuer", row.state),
                ));
            }
            let signed = row.state.is_signed();
            if signed && row.record.signature().is_none() {
                return Err(bad(
                    &uuid,
                    format!("state {} without a signature", row.state),
                ));
            }
            if row.link.is_some() && !signed {
                return Err(bad(
                    &uuid,
                    format!("an unsigned chit ({}) is linked", row.state),
                ));
            }
            if row.claim.is_some() && (row.link.is_some() || me == Side::Foil || !signed) {
                return Err(bad(&uuid, "it has a claim it cannot have".into()));
            }
            if let Some(link) = row.link
                && link.index <= offset
            {
                // A chit the operation names, linked before the held
                // chain: held for its state, not as part of the chain.
                let entry = Entry {
                    record: Arc::new(row.record),
                    state: row.state,
                    link: row.link,
                    claim: row.claim,
                };
                if ledger.chits.insert(uuid.clone(), entry).is_some() {
                    return Err(bad(&uuid, "it is stored twice".into()));
                }
                continue;
            }
            if let Some(link) = row.link
                && linked.insert(link.index, uuid.clone()).is_some()
            {
                return Err(RestoreError::Chain {
                    index: link.index,
                    problem: "two chits share it".into(),
                });
            }
            let entry = Entry {
                record: Arc::new(row.record),
                state: row.state,
                link: row.link,
                claim: row.claim,
            };
            if ledger.chits.insert(uuid.clone(), entry).is_some() {
                return Err(bad(&uuid, "it is stored twice".into()));
            }
        }
        let mut prior = offset_hash;
        for (position, (index, uuid)) in linked.into_iter().enumerate() {
            let expected = offset + position as u64 + 1;
            if index != expected {
                return Err(RestoreError::Chain {
                    index: expected,
                    problem: "no chit is linked there".into(),
                });
            }
            let entry = &ledger.chits[&uuid];
            let hash = chain_hash(&entry.record, index, &prior);
            if entry.link.map(|l| l.hash) != Some(hash) {
                return Err(RestoreError::Chain {
                    index,
                    problem: format!("the stored hash of chit {uuid} is not its chain hash"),
                });
            }
            prior = hash;
            ledger.chain.push(uuid);
        }
        let len = ledger.len();
        let confirmed_problem = |problem: String| RestoreError::Confirmed { confirmed, problem };
        if confirmed > len {
            return Err(confirmed_problem(format!("only {len} chits are linked")));
        }
        if me == Side::Foil && confirmed != len {
            return Err(confirmed_problem(format!(
                "the foil confirms all its {len} links"
            )));
        }
        for uuid in &ledger.chain[(confirmed - offset) as usize..] {
            if ledger.chits[uuid].record.by() != me {
                return Err(confirmed_problem(format!(
                    "the provisional chit {uuid} is not the stock's own"
                )));
            }
        }
        for (uuid, entry) in &ledger.chits {
            let must_link =
                entry.state.is_signed() && (me == Side::Foil || entry.record.by() == me);
            if must_link && entry.link.is_none() {
                return Err(bad(
                    uuid,
                    format!("the signed chit ({}) is not linked", entry.state),
                ));
            }
        }
        ledger.confirmed = confirmed;
        Ok(ledger)
    }

    pub fn side(&self) -> Side {
        self.me
    }

    pub fn tally(&self) -> &VerifiedTally {
        &self.tally
    }

    pub fn tally_uuid(&self) -> &str {
        self.tally.record().uuid()
    }

    /// Every chit held as a row: the linked ones in chain order, then the
    /// others by uuid (for a tail, those linked before it come last).
    pub fn rows(&self) -> Vec<ChitRow> {
        let mut rows: Vec<ChitRow> = self.chain.iter().filter_map(|u| self.row(u)).collect();
        rows.extend(
            self.chits
                .iter()
                .filter(|(_, e)| e.link.is_none())
                .filter_map(|(u, _)| self.row(u)),
        );
        rows.extend(
            self.chits
                .iter()
                .filter(|(_, e)| e.link.is_some_and(|l| l.index <= self.offset))
                .filter_map(|(u, _)| self.row(u)),
        );
        rows
    }

    pub fn row(&self, uuid: &str) -> Option<ChitRow> {
        self.chits.get(uuid).map(|e| ChitRow {
            uuid: uuid.to_owned(),
            record: (*e.record).clone(),
            state: e.state,
            link: e.link,
            claim: e.claim,
        })
    }

    pub fn chit(&self, uuid: &str) -> Option<&ChitRecord> {
        self.chits.get(uuid).map(|e| &*e.record)
    }

    pub fn state(&self, uuid: &str) -> Option<ChitState> {
        self.chits.get(uuid).map(|e| e.state)
    }

    pub fn consensus(&self, uuid: &str) -> Option<Consensus> {
        let entry = self.chits.get(uuid)?;
        Some(match entry.link {
            None => Consensus::Unlinked,
            Some(link) if link.index <= self.confirmed => Consensus::Linked,
            Some(_) => Consensus::Provisional,
        })
    }

    /// The chain: `(index, chit uuid, chain hash)` from index 1.
    pub fn links(&self) -> Vec<(u64, &str, [u8; 32])> {
        self.chain
            .iter()
            .filter_map(|u| {
                let link = self.chits.get(u)?.link?;
                Some((link.index, u.as_str(), link.hash))
            })
            .collect()
    }

    /// The last link (index 0 and the tally's digest for an empty chain).
    pub fn end(&self) -> ChainLink {
        self.link_at(self.len())
    }

    /// How many links both halves agree on.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    /// MyCHIPs's "in consensus": every signed chit is linked and (for the
    /// stock) confirmed by the foil.
    pub fn is_consensed(&self) -> bool {
        self.confirmed == self.len()
            && self
                .chits
                .values()
                .all(|e| !e.state.is_signed() || e.link.is_some())
    }

    /// The balance from this half's side (positive: the partner owes us).
    pub fn balance(&self) -> Balance {
        let mut balance = self.base.balance;
        for entry in self.chits.values() {
            let units = i128::from(entry.record.units().unwrap_or(0));
            let signed_units = match entry.state.direction {
                Direction::Asset => units,
                Direction::Liability => -units,
            };
            if entry.state.status == ChitStatus::Good {
                balance.good += signed_units;
            }
            if entry.state.status != ChitStatus::Void {
                balance.pending += signed_units;
            }
            let binding = entry.state.status == ChitStatus::Good
                || (entry.state.direction == Direction::Liability && entry.state.is_signed());
            if binding {
                balance.committed += signed_units;
            }
        }
        balance
    }

    /// The credit `side` grants the other side now: the `limit` of the
    /// latest binding setting chit `side` issued with one (chain order,
    /// then unlinked ones by uuid), else `side`'s tally terms.
    pub fn limit_granted_by(&self, side: Side) -> Result<CreditLimit, LimitProblem> {
        match self.latest_limit(side) {
            Some(limit) => parse_limit(side, Some(limit)),
            None => parse_limit(side, self.tally.record().party(side).terms().get("limit")),
        }
    }

    /// The `limit` of the latest binding setting chit of `side` that has
    /// one: chain order, then the unlinked ones by uuid; before the held
    /// chain, the one its totals name.
    fn latest_limit(&self, side: Side) -> Option<&Value> {
        let linked = self.chain.iter().filter_map(|u| self.chits.get(u));
        let unlinked = self.chits.values().filter(|e| e.link.is_none());
        linked
            .chain(unlinked)
            .filter(|e| {
                e.state.is_signed()
                    && e.record.by() == side
                    && e.record.chit_type() == ChitType::Setting
            })
            .filter_map(|e| e.record.reference()?.get("limit"))
            .next_back()
            .or_else(|| self.base.limit(side))
    }

    /// How many milliCHIPs we may still pledge: our committed balance plus
    /// the credit the partner grants us (never below 0).
    pub fn available(&self) -> Result<u128, LimitProblem> {
        let limit = self.limit_granted_by(self.me.other())?;
        let room = self.balance().committed + i128::from(limit.milli_chips);
        Ok(u128::try_from(room).unwrap_or(0))
    }

    /// `side` signed a close request that binds it (its own setting chit
    /// with `close: true`, ours as soon as we signed it).
    pub fn close_requested_by(&self, side: Side) -> bool {
        self.base.close(side)
            || self
                .chits
                .values()
                .any(|e| e.state.is_signed() && e.record.by() == side && asks_close(&e.record))
    }

    /// Where the tally is in its closing: `Open` until either side's close
    /// request binds; then `Closing`, or `Closed` while both the good and
    /// the committed balance are zero (MyCHIPs: status `close`, `closed`
    /// when the total is 0). A signed chit that arrives later and moves
    /// the balance again makes it `Closing` again (it binds its signer).
    pub fn close_state(&self) -> CloseState {
        if !(self.close_requested_by(Side::Stock) || self.close_requested_by(Side::Foil)) {
            return CloseState::Open;
        }
        let balance = self.balance();
        if balance.good == 0 && balance.committed == 0 {
            CloseState::Closed
        } else {
            CloseState::Closing
        }
    }

    /// Before we sign or ask for a chit that changes our `balance` by
    /// `change`: nothing on a closed tally, only toward zero on a closing
    /// one.
    fn check_closing(&self, balance: i128, change: i128) -> Result<(), ClosingCheck> {
        match self.close_state() {
            CloseState::Open => Ok(()),
            CloseState::Closed => Err(ClosingCheck::Closed),
            CloseState::Closing => check_toward_zero(balance, change).map_err(ClosingCheck::Away),
        }
    }

    // ---- local actions -------------------------------------------------

    /// Signs and sends a chit of our own: a payment (`tran`: the limit the
    /// partner grants is checked first, before anything is signed) or a
    /// setting (`set`). `chit` is unsigned, built with
    /// [`super::super::ChitBuilder`] with `by` = our side.
    pub fn issue(&mut self, key: &TallyKey, chit: ChitRecord) -> Result<ChitOutcome, IssueError> {
        if chit.tally_uuid() != self.tally_uuid() {
            return Err(IssueError::WrongTally {
                found: chit.tally_uuid().to_owned(),
                ours: self.tally_uuid().to_owned(),
            });
        }
        if chit.by() != self.me {
            return Err(IssueError::NotOurs {
                by: chit.by(),
                me: self.me,
            });
        }
        if chit.chit_type() == ChitType::Lift {
            return Err(IssueError::Unsupported("lift"));
        }
        if chit.signature().is_some() {
            return Err(IssueError::AlreadySigned);
        }
        if self.chits.contains_key(chit.uuid()) {
            return Err(IssueError::DuplicateUuid(chit.uuid().to_owned()));
        }
        let units = chit.units().unwrap_or(0);
        let change = match chit.chit_type() {
            ChitType::Transaction => -i128::from(units),
            _ => 0,
        };
        self.check_closing(self.balance().committed, change)
            .map_err(|e| match e {
                ClosingCheck::Closed => IssueError::Closed,
                ClosingCheck::Away(away) => IssueError::Closing(away),
            })?;
        if chit.chit_type() == ChitType::Transaction {
            self.check_payment(units).map_err(|e| match e {
                LimitCheck::Over(over) => IssueError::OverLimit(over),
                LimitCheck::Problem(p) => IssueError::Limit(p),
            })?;
        }
        if chit.chit_type() == ChitType::Setting {
            check_settings(
                self.me,
                chit.reference(),
                self.limit_granted_by(self.me),
                self.close_requested_by(self.me),
            )?;
        }
        let mut chit = chit;
        chit.sign_for(self.tally.record(), key)?;
        let uuid = chit.uuid().to_owned();
        let mut work = Work::new(self);
        work.event(&uuid, Some(chit), ChitEvent::Pay)
            .map_err(|_| IssueError::DuplicateUuid(uuid.clone()))?;
        Ok(work.finish(self))
    }

    /// Drafts an invoice: a `tran` chit the partner is asked to sign (its
    /// `by` is the partner's side), or resubmits one the partner refused:
    /// same uuid, changed (at least its date), so that the partner can tell
    /// it from a replay of the refused one.
    pub fn invoice(&mut self, chit: ChitRecord) -> Result<ChitOutcome, InvoiceError> {
        if chit.tally_uuid() != self.tally_uuid() {
            return Err(InvoiceError::WrongTally {
                found: chit.tally_uuid().to_owned(),
                ours: self.tally_uuid().to_owned(),
            });
        }
        if chit.by() != self.me.other() {
            return Err(InvoiceError::NotTheirs {
                by: chit.by(),
                partner: self.me.other(),
            });
        }
        if chit.chit_type() != ChitType::Transaction {
            return Err(InvoiceError::NotAPayment);
        }
        if chit.signature().is_some() {
            return Err(InvoiceError::Signed);
        }
        let uuid = chit.uuid().to_owned();
        // The partner tells a resubmission from a replay of the refused
        // invoice by its content.
        let refused = self
            .chits
            .get(&uuid)
            .filter(|e| e.state.status == ChitStatus::Void);
        if refused.is_some_and(|e| same_chit(&e.record, &chit)) {
            return Err(InvoiceError::Unchanged);
        }
        // Paid, the invoice adds its units; every invoice still open
        // (`pending`) counts toward where the balance would go.
        let units = i128::from(chit.units().unwrap_or(0));
        self.check_closing(self.balance().pending, units)
            .map_err(|e| match e {
                ClosingCheck::Closed => InvoiceError::Closed,
                ClosingCheck::Away(away) => InvoiceError::Closing(away),
            })?;
        let mut work = Work::new(self);
        work.event(&uuid, Some(chit), ChitEvent::Invoice)?;
        Ok(work.finish(self))
    }

    /// Signs an invoice the partner sent (`L.pend`), after checking the
    /// limit the partner grants.
    pub fn approve(&mut self, key: &TallyKey, uuid: &str) -> Result<ChitOutcome, ApproveError> {
        let entry = self
            .chits
            .get(uuid)
            .ok_or_else(|| ApproveError::UnknownChit(uuid.to_owned()))?;
        // Refuse a chit in the wrong state before signing anything.
        transition(Some(entry.state), ChitEvent::Approve)?;
        let units = entry.record.units().unwrap_or(0);
        self.check_closing(self.balance().committed, -i128::from(units))
            .map_err(|e| match e {
                ClosingCheck::Closed => ApproveError::Closed,
                ClosingCheck::Away(away) => ApproveError::Closing(away),
            })?;
        self.check_payment(units).map_err(|e| match e {
            LimitCheck::Over(over) => ApproveError::OverLimit(over),
            LimitCheck::Problem(p) => ApproveError::Limit(p),
        })?;
        let mut chit = (*entry.record).clone();
        chit.sign_for(self.tally.record(), key)?;
        let mut work = Work::new(self);
        work.event(uuid, Some(chit), ChitEvent::Approve)?;
        Ok(work.finish(self))
    }

    /// Refuses an invoice the partner sent (`L.pend`).
    pub fn reject(&mut self, uuid: &str) -> Result<ChitOutcome, RejectError> {
        if !self.chits.contains_key(uuid) {
            return Err(RejectError::UnknownChit(uuid.to_owned()));
        }
        let mut work = Work::new(self);
        work.event(uuid, None, ChitEvent::Reject)?;
        Ok(work.finish(self))
    }

    /// The message a chit's request asked for has been delivered: the
    /// request becomes the status (`A.draft.pend` → `A.pend`, `L.pend.good`
    /// → `L.good`, `L.pend.void` → `L.void`).
    pub fn sent(&mut self, uuid: &str) -> Result<ChitOutcome, SentError> {
        if !self.chits.contains_key(uuid) {
            return Err(SentError::UnknownChit(uuid.to_owned()));
        }
        let mut work = Work::new(self);
        work.event(uuid, None, ChitEvent::Sent)?;
        Ok(work.finish(self))
    }

    /// Messages that start a consensus check (after a reconnection or on a
    /// timer): the stock asks for the chits after its confirmed end; the
    /// foil announces its end.
    pub fn sync(&self) -> Vec<ChitMessage> {
        Self::sync_from(self.tally_uuid(), self.me, self.link_at(self.confirmed))
    }

    /// [`ChitLedger::sync`] of `me`'s half of tally `tally` whose confirmed
    /// end is `confirmed` (the foil's is its chain's end), without the
    /// ledger.
    pub fn sync_from(tally: &str, me: Side, confirmed: ChainLink) -> Vec<ChitMessage> {
        match me {
            Side::Stock => vec![ChitMessage::Request {
                tally: tally.to_owned(),
                after: confirmed,
            }],
            Side::Foil if confirmed.index > 0 => vec![ChitMessage::Update {
                tally: tally.to_owned(),
                uuid: None,
                end: confirmed,
                chits: Vec::new(),
            }],
            Side::Foil => Vec::new(),
        }
    }

    /// The chit messages still owed: one per chit whose request has not
    /// been marked [`ChitLedger::sent`] (of a tail: among the chits it
    /// holds).
    pub fn unsent(&self) -> Vec<ChitMessage> {
        self.chits
            .values()
            .filter_map(|e| {
                let action = e.state.request?;
                Some(ChitMessage::Chit {
                    action,
                    chit: (*e.record).clone(),
                    link: e.link,
                })
            })
            .collect()
    }

    // ---- received messages --------------------------------------------

    /// Applies a message from the partner. On error nothing changed.
    pub fn apply(&mut self, message: &ChitMessage) -> Result<ChitOutcome, ApplyError> {
        if message.tally() != self.tally_uuid() {
            return Err(ApplyError::WrongTally {
                found: message.tally().to_owned(),
                ours: self.tally_uuid().to_owned(),
            });
        }
        let mut work = Work::new(self);
        match message {
            ChitMessage::Chit {
                action: ChitAction::Good,
                chit,
                link,
            } => work.received_good(chit, *link)?,
            ChitMessage::Chit {
                action: ChitAction::Pend,
                chit,
                ..
            } => work.received_pend(chit)?,
            ChitMessage::Chit {
                action: ChitAction::Void,
                chit,
                ..
            } => work.received_void(chit)?,
            ChitMessage::Update {
                uuid, end, chits, ..
            } => work.received_update(uuid.as_deref(), *end, chits)?,
            ChitMessage::Request { after, .. } => work.received_request(*after)?,
            ChitMessage::Error { index, error, .. } => {
                work.notices.push(LedgerNotice::PartnerError {
                    index: *index,
                    error: error.clone(),
                });
            }
        }
        let mut outcome = work.finish(self);
        if outcome.changes.is_empty() && outcome.outgoing.is_empty() {
            outcome.ignored.get_or_insert(Ignored::Duplicate);
        }
        Ok(outcome)
    }

    /// [`ChitLedger::apply`] on the received text.
    pub fn apply_json(&mut self, text: &str) -> Result<ChitOutcome, ApplyError> {
        let message = ChitMessage::parse(text)?;
        self.apply(&message)
    }

    /// The `err` message to tell the partner about a refusal that means the
    /// two chains cannot be reconciled (a fork or a bad link); `None` for
    /// other refusals.
    pub fn error_message(&self, error: &ApplyError) -> Option<ChitMessage> {
        let index = match error {
            ApplyError::Fork { index } | ApplyError::BadLink { index } => *index,
            _ => return None,
        };
        Some(ChitMessage::Error {
            tally: self.tally_uuid().to_owned(),
            index: Some(index),
            error: error.to_string(),
        })
    }

    // ---- internals ------------------------------------------------------

    /// How many chits are linked (held or not).
    pub fn chain_len(&self) -> u64 {
        self.len()
    }

    fn len(&self) -> u64 {
        self.offset + self.chain.len() as u64
    }

    /// The link at `index` (0: the tally's digest), from `offset` (the
    /// start of the held chain) to `len`; `None` outside.
    fn held_link(&self, index: u64) -> Option<ChainLink> {
        if index == self.offset {
            return Some(ChainLink {
                index,
                hash: self.offset_hash,
            });
        }
        let uuid = self.chain_uuid(index)?;
        self.chits.get(uuid)?.link
    }

    /// The uuid of the chit linked at `index`, if held.
    fn chain_uuid(&self, index: u64) -> Option<&String> {
        let position = index.checked_sub(self.offset + 1)?;
        self.chain.get(usize::try_from(position).ok()?)
    }

    /// The link at `index`, from `offset` to `len` (the confirmed end and
    /// the chain's end always are).
    fn link_at(&self, index: u64) -> ChainLink {
        self.held_link(index).unwrap_or(ChainLink {
            index: self.offset,
            hash: self.offset_hash,
        })
    }

    fn check_payment(&self, units: u64) -> Result<(), LimitCheck> {
        let limit = self
            .limit_granted_by(self.me.other())
            .map_err(LimitCheck::Problem)?;
        check_limit(self.balance().committed, units, limit).map_err(LimitCheck::Over)
    }
}

enum LimitCheck {
    Over(OverLimit),
    Problem(LimitProblem),
}

enum ClosingCheck {
    Closed,
    Away(AwayFromZero),
}

/// A change in progress: a copy of the ledger and what happened to it. An
/// error drops the copy, so a refused message changes nothing.
struct Work {
    l: ChitLedger,
    touched: BTreeSet<String>,
    notices: Vec<LedgerNotice>,
    outgoing: Vec<ChitMessage>,
    ignored: Option<Ignored>,
}

impl Work {
    fn new(ledger: &ChitLedger) -> Self {
        Self {
            l: ledger.clone(),
            touched: BTreeSet::new(),
            notices: Vec::new(),
            outgoing: Vec::new(),
            ignored: None,
        }
    }

    /// Replaces `before` with the changed ledger and reports the rows that
    /// differ.
    fn finish(self, before: &mut ChitLedger) -> ChitOutcome {
        let chits = self
            .touched
            .iter()
            .filter(|u| self.l.chits.get(*u) != before.chits.get(*u))
            .filter_map(|u| self.l.row(u))
            .collect();
        let confirmed = (self.l.confirmed != before.confirmed).then_some(self.l.confirmed);
        let outcome = ChitOutcome {
            changes: ChitChangeSet {
                chits,
                confirmed,
                notices: self.notices,
            },
            outgoing: self.outgoing,
            ignored: self.ignored,
        };
        *before = self.l;
        outcome
    }

    fn me(&self) -> Side {
        self.l.me
    }

    fn tally_uuid(&self) -> String {
        self.l.tally_uuid().to_owned()
    }

    fn entry_mut(&mut self, uuid: &str) -> Option<&mut Entry> {
        self.touched.insert(uuid.to_owned());
        self.l.chits.get_mut(uuid)
    }

    /// Runs the state machine on chit `uuid` (with `record` as its new
    /// record, if given) and carries out the effects.
    fn event(
        &mut self,
        uuid: &str,
        record: Option<ChitRecord>,
        event: ChitEvent,
    ) -> Result<ChitState, ChitError> {
        let current = self.l.chits.get(uuid).map(|e| e.state);
        let (state, effects) = transition(current, event)?;
        let record = match (self.entry_mut(uuid), record) {
            (Some(entry), Some(record)) => {
                entry.record = Arc::new(record);
                entry.state = state;
                Arc::clone(&entry.record)
            }
            (Some(entry), None) => {
                entry.state = state;
                Arc::clone(&entry.record)
            }
            (None, Some(record)) => {
                let record = Arc::new(record);
                let entry = Entry {
                    record: Arc::clone(&record),
                    state,
                    link: None,
                    claim: None,
                };
                self.l.chits.insert(uuid.to_owned(), entry);
                record
            }
            (None, None) => return Err(ChitError::NotAllowed { state: None, event }),
        };
        for effect in effects {
            match effect {
                ChitEffect::Send(action) => self.outgoing.push(ChitMessage::Chit {
                    action,
                    chit: (*record).clone(),
                    // Filled in below once linked.
                    link: None,
                }),
                ChitEffect::Link => {
                    if record.chit_type() == ChitType::Setting {
                        self.notices.push(LedgerNotice::Setting {
                            uuid: uuid.to_owned(),
                            by: record.by(),
                            settings: record.reference().cloned().unwrap_or(Value::Null),
                        });
                    }
                    // What we sign ourselves is linked at once (the
                    // stock: for now); a received chit by the caller,
                    // where the message says.
                    if matches!(event, ChitEvent::Pay | ChitEvent::Approve) {
                        self.append(uuid);
                    }
                }
                ChitEffect::Notify(notice) => self.notices.push(LedgerNotice::Chit {
                    uuid: uuid.to_owned(),
                    notice,
                    units: record.units(),
                }),
            }
        }
        let link = self.l.chits.get(uuid).and_then(|e| e.link);
        for message in &mut self.outgoing {
            if let ChitMessage::Chit {
                action: ChitAction::Good,
                chit,
                link: slot,
            } = message
                && chit.uuid() == uuid
            {
                *slot = link;
            }
        }
        Ok(state)
    }

    /// Links `uuid` after the last link (the foil: final; the stock:
    /// provisional).
    fn append(&mut self, uuid: &str) {
        let end = self.l.end();
        let index = end.index + 1;
        let Some(entry) = self.entry_mut(uuid) else {
            return;
        };
        let hash = chain_hash(&entry.record, index, &end.hash);
        entry.link = Some(ChainLink { index, hash });
        entry.claim = None;
        self.l.chain.push(uuid.to_owned());
        if self.me() == Side::Foil {
            self.l.confirmed = self.l.len();
        }
    }

    /// Stock: links `run` (verified, consecutive from `confirmed + 1`) as
    /// confirmed, then moves the provisional chits behind it.
    fn place_confirmed(&mut self, run: &[(String, ChainLink)]) {
        let held = (self.l.confirmed - self.l.offset) as usize;
        let tail: Vec<String> = self.l.chain.drain(held..).collect();
        for (uuid, link) in run {
            if let Some(entry) = self.entry_mut(uuid) {
                entry.link = Some(*link);
                entry.claim = None;
            }
            self.l.chain.push(uuid.clone());
        }
        self.l.confirmed = self.l.len();
        for uuid in tail {
            if run.iter().all(|(u, _)| *u != uuid) {
                self.append(&uuid);
            }
        }
    }

    /// Stock: links claimed chits of the foil that now follow the
    /// confirmed end.
    fn try_claims(&mut self) {
        loop {
            let next = self.l.confirmed + 1;
            let prior = self.l.link_at(self.l.confirmed).hash;
            let found = self.l.chits.iter().find_map(|(uuid, e)| {
                let claim = e.claim.filter(|c| c.index == next)?;
                (e.link.is_none() && chain_hash(&e.record, next, &prior) == claim.hash)
                    .then(|| (uuid.clone(), claim))
            });
            match found {
                Some(item) => self.place_confirmed(&[item]),
                None => break,
            }
        }
    }

    fn request(&mut self) {
        let after = self.l.link_at(self.l.confirmed);
        let message = ChitMessage::Request {
            tally: self.tally_uuid(),
            after,
        };
        if !self.outgoing.contains(&message) {
            self.outgoing.push(message);
        }
    }

    /// Checks a signed chit from a message: this tally, the issuer's
    /// signature (skipped for a chit we hold, byte for byte, as signed),
    /// and no other signed chit under its uuid.
    fn verify_signed(&self, chit: &ChitRecord) -> Result<(), ApplyError> {
        if chit.tally_uuid() != self.l.tally_uuid() {
            return Err(ApplyError::WrongTally {
                found: chit.tally_uuid().to_owned(),
                ours: self.tally_uuid(),
            });
        }
        if let Some(held) = self.l.chits.get(chit.uuid())
            && held.state.is_signed()
        {
            return if same_chit(&held.record, chit) {
                Ok(())
            } else {
                Err(ApplyError::Conflict {
                    uuid: chit.uuid().to_owned(),
                })
            };
        }
        if chit.chit_type() == ChitType::Lift {
            return Err(ApplyError::Malformed(
                "lift chits (signed by a site or referee) are not supported",
            ));
        }
        let side = chit.by();
        chit.verify_with(self.l.tally.public_key(side))
            .map_err(|problem| ApplyError::Signature {
                uuid: chit.uuid().to_owned(),
                side,
                problem,
            })?;
        // The partner's settings follow the same rules as ours (a chit of
        // ours we lost comes back as we signed it).
        if chit.chit_type() == ChitType::Setting && side != self.me() {
            check_settings(
                side,
                chit.reference(),
                self.l.limit_granted_by(side),
                self.l.close_requested_by(side),
            )
            .map_err(|problem| ApplyError::Setting {
                uuid: chit.uuid().to_owned(),
                problem,
            })?;
        }
        Ok(())
    }

    /// Makes a verified signed chit ours: recorded as good, not yet linked
    /// unless it is our own (then `event` links it).
    fn hold_signed(&mut self, chit: &ChitRecord) {
        let uuid = chit.uuid();
        if self.l.chits.get(uuid).is_some_and(|e| e.state.is_signed()) {
            return;
        }
        let event = if chit.by() == self.me() {
            ChitEvent::ReceivedOwn
        } else {
            ChitEvent::ReceivedGood
        };
        // A held chit that is not signed is an invoice in a state from
        // which a signed chit is always accepted.
        if self.event(uuid, Some(chit.clone()), event).is_err() {
            self.ignored = Some(Ignored::Stale {
                state: self.l.chits.get(uuid).map(|e| e.state),
                action: ChitAction::Good,
            });
        }
    }

    fn received_good(
        &mut self,
        chit: &ChitRecord,
        link: Option<ChainLink>,
    ) -> Result<(), ApplyError> {
        self.verify_signed(chit)?;
        let uuid = chit.uuid().to_owned();
        if chit.by() == self.me() {
            return Err(ApplyError::UnexpectedIssuer {
                uuid,
                by: chit.by(),
                action: "good",
            });
        }
        let known = self.l.chits.get(&uuid).is_some_and(|e| e.state.is_signed());
        self.hold_signed(chit);
        match self.me() {
            Side::Foil => {
                if known {
                    // Answered again below: the stock may have lost the
                    // first answer.
                    self.ignored = Some(Ignored::Duplicate);
                }
                if self.l.chits.get(&uuid).is_some_and(|e| e.link.is_none()) {
                    self.append(&uuid);
                }
                let reply = self.answer(&uuid, link);
                self.outgoing.push(reply);
            }
            Side::Stock => self.place_foil_chit(&uuid, link)?,
        }
        Ok(())
    }

    /// Foil: the `upd` answering the stock's chit `uuid` that the stock
    /// proposed at `proposal`.
    fn answer(&self, uuid: &str, proposal: Option<ChainLink>) -> ChitMessage {
        let placed = self
            .l
            .chits
            .get(uuid)
            .and_then(|e| e.link)
            .unwrap_or(self.l.end());
        let from = match proposal {
            Some(p) if p == placed => placed.index + 1,
            Some(p) => p.index.clamp(1, placed.index),
            None => placed.index,
        };
        self.update(Some(uuid.to_owned()), from)
    }

    /// Foil: an `upd` with the chits from index `from`, up to the byte
    /// budget.
    fn update(&self, uuid: Option<String>, from: u64) -> ChitMessage {
        let mut chits = Vec::new();
        let mut bytes = 0usize;
        let skip = from.saturating_sub(1).saturating_sub(self.l.offset);
        for uuid in self
            .l
            .chain
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        {
            let Some(entry) = self.l.chits.get(uuid) else {
                break;
            };
            let Some(link) = entry.link else { break };
            // Digest, index and chain add about 180 bytes.
            let size = entry.record.to_json().len() + 180;
            if !chits.is_empty() && bytes + size > UPDATE_CHIT_BYTES {
                break;
            }
            bytes += size;
            chits.push(LinkedChit {
                chit: (*entry.record).clone(),
                link,
            });
        }
        ChitMessage::Update {
            tally: self.tally_uuid(),
            uuid,
            end: self.l.end(),
            chits,
        }
    }

    /// Stock: places the foil's chit `uuid` where the foil says, if that
    /// follows the confirmed end, else keeps the claim and asks.
    fn place_foil_chit(&mut self, uuid: &str, link: Option<ChainLink>) -> Result<(), ApplyError> {
        // Held by now (hold_signed); if not, there is nothing to place.
        let Some(entry) = self.l.chits.get(uuid) else {
            return Ok(());
        };
        if let Some(current) = entry.link {
            // Already confirmed (the foil's chits are only linked there).
            return match link {
                Some(l) if l != current => Err(ApplyError::BadLink { index: l.index }),
                _ => Ok(()),
            };
        }
        let Some(link) = link else {
            self.request();
            return Ok(());
        };
        let confirmed = self.l.confirmed;
        if link.index == 0 {
            return Err(ApplyError::Malformed(
                "a chit cannot be at index 0 (the tally)",
            ));
        }
        if link.index <= confirmed {
            return Err(ApplyError::Fork { index: link.index });
        }
        if link.index == confirmed + 1 {
            let prior = self.l.link_at(confirmed).hash;
            if chain_hash(&entry.record, link.index, &prior) != link.hash {
                return Err(ApplyError::BadLink { index: link.index });
            }
            self.place_confirmed(&[(uuid.to_owned(), link)]);
            self.try_claims();
            return Ok(());
        }
        if let Some(entry) = self.entry_mut(uuid) {
            entry.claim = Some(link);
        }
        self.request();
        Ok(())
    }

    fn received_pend(&mut self, chit: &ChitRecord) -> Result<(), ApplyError> {
        let uuid = chit.uuid().to_owned();
        if chit.by() != self.me() {
            return Err(ApplyError::UnexpectedIssuer {
                uuid,
                by: chit.by(),
                action: "pend (invoice)",
            });
        }
        if chit.chit_type() == ChitType::Setting {
            return Err(ApplyError::SettingFromWrongSide { uuid });
        }
        if chit.chit_type() != ChitType::Transaction {
            return Err(ApplyError::Malformed("an invoice is a payment (tran) chit"));
        }
        if chit.signature().is_some() {
            return Err(ApplyError::Malformed(
                "an invoice is not signed (its payer signs it)",
            ));
        }
        let held = self
            .l
            .chits
            .get(&uuid)
            .map(|e| (e.state, Arc::clone(&e.record)));
        // A resubmitted invoice differs from the one refused (see
        // `ChitLedger::invoice`); the same one again is a replay, which
        // must not reopen what we refused.
        let replay = held
            .as_ref()
            .is_some_and(|(_, record)| same_chit(record, chit));
        if replay {
            self.ignored = Some(Ignored::Duplicate);
            return Ok(());
        }
        if self
            .event(&uuid, Some(chit.clone()), ChitEvent::ReceivedPend)
            .is_err()
        {
            self.ignored = Some(match held {
                Some((_, record)) if same_chit(&record, chit) => Ignored::Duplicate,
                held => Ignored::Stale {
                    state: held.map(|(s, _)| s),
                    action: ChitAction::Pend,
                },
            });
        }
        Ok(())
    }

    fn received_void(&mut self, chit: &ChitRecord) -> Result<(), ApplyError> {
        let uuid = chit.uuid().to_owned();
        if chit.by() == self.me() {
            return Err(ApplyError::UnexpectedIssuer {
                uuid,
                by: chit.by(),
                action: "void (refusal)",
            });
        }
        let held = self.l.chits.get(&uuid).map(|e| e.state);
        // Only a refusal of the invoice as we hold it counts: one of an
        // earlier version (since resubmitted) is late.
        let current = self
            .l
            .chits
            .get(&uuid)
            .is_some_and(|e| same_chit(&e.record, chit));
        if !current || self.event(&uuid, None, ChitEvent::ReceivedVoid).is_err() {
            self.ignored = Some(match held {
                Some(state) if current && state.status == ChitStatus::Void => Ignored::Duplicate,
                state => Ignored::Stale {
                    state,
                    action: ChitAction::Void,
                },
            });
        }
        Ok(())
    }

    fn received_update(
        &mut self,
        answered: Option<&str>,
        end: ChainLink,
        chits: &[LinkedChit],
    ) -> Result<(), ApplyError> {
        if self.me() == Side::Foil {
            return Err(ApplyError::WrongRole {
                sender: Side::Foil,
                what: "chain updates (upd)",
            });
        }
        // The cheap checks first: a run of consecutive indices, then the
        // signatures.
        let first_index = chits.first().map_or(0, |c| c.link.index);
        for (at, item) in chits.iter().enumerate() {
            if first_index == 0 || item.link.index != first_index + at as u64 {
                return Err(ApplyError::Malformed(
                    "the chits of an update are not a run of consecutive indices from 1 on",
                ));
            }
        }
        for item in chits {
            self.verify_signed(&item.chit)?;
        }
        let confirmed = self.l.confirmed;
        let first = chits.first().map(|c| c.link.index);
        match first {
            Some(first) if first > confirmed + 1 => {
                // Out of reach: keep the foil's signed chits with their
                // claimed places, and ask for what comes before.
                let me = self.me();
                for item in chits.iter().filter(|c| c.chit.by() != me) {
                    self.hold_signed(&item.chit);
                    let uuid = item.chit.uuid();
                    if self.l.chits.get(uuid).is_some_and(|e| e.link.is_none())
                        && let Some(entry) = self.entry_mut(uuid)
                    {
                        entry.claim = Some(item.link);
                    }
                }
                self.request();
                return Ok(());
            }
            Some(_) => {
                // Check the whole run before changing anything.
                let mut run = Vec::new();
                for item in chits {
                    let index = item.link.index;
                    let uuid = item.chit.uuid();
                    if index <= confirmed {
                        let ours = self.l.held_link(index);
                        let same = self.l.chain_uuid(index).is_some_and(|u| u == uuid);
                        if !same || ours.map(|l| l.hash) != Some(item.link.hash) {
                            return Err(ApplyError::Fork { index });
                        }
                        continue;
                    }
                    // The link before: ours if agreed, else the run's
                    // previous one (checked in the step before).
                    let prior = if index - 1 <= confirmed {
                        self.l
                            .held_link(index - 1)
                            .ok_or(ApplyError::Fork { index: index - 1 })?
                            .hash
                    } else {
                        chits[(index - 1 - first_index) as usize].link.hash
                    };
                    if chain_hash(&item.chit, index, &prior) != item.link.hash {
                        return Err(ApplyError::BadLink { index });
                    }
                    let confirmed_at = self.l.chits.get(uuid).and_then(|e| e.link);
                    if let Some(at) = confirmed_at.filter(|l| l.index <= confirmed) {
                        return Err(ApplyError::Fork { index: at.index });
                    }
                    if run.iter().any(|(u, _): &(String, ChainLink)| u == uuid) {
                        return Err(ApplyError::Malformed("an update lists a chit twice"));
                    }
                    run.push((uuid.to_owned(), item.link));
                }
                for item in chits.iter().filter(|c| c.link.index > confirmed) {
                    self.hold_signed(&item.chit);
                }
                self.place_confirmed(&run);
            }
            None => {}
        }
        // The foil's end: within the confirmed chain it must match; beyond
        // it, our provisional chain may reach it (an acknowledgement).
        let confirmed = self.l.confirmed;
        if end.index <= confirmed {
            if self.l.held_link(end.index) != Some(end) {
                return Err(ApplyError::Fork { index: end.index });
            }
        } else if end.index <= self.l.len() && self.l.held_link(end.index) == Some(end) {
            self.l.confirmed = end.index;
        }
        self.try_claims();
        let confirmed = self.l.confirmed;
        if end.index > confirmed {
            self.request();
        } else if answered.is_none() && self.l.len() > confirmed {
            // Caught up with the foil's end and still holding provisional
            // chits: the foil did not have them when it answered.
            let held = (confirmed - self.l.offset) as usize;
            let leftovers: Vec<ChitMessage> = self.l.chain[held..]
                .iter()
                .filter_map(|u| self.l.chits.get(u))
                .map(|e| ChitMessage::Chit {
                    action: ChitAction::Good,
                    chit: (*e.record).clone(),
                    link: e.link,
                })
                .collect();
            self.outgoing.extend(leftovers);
        }
        Ok(())
    }

    fn received_request(&mut self, after: ChainLink) -> Result<(), ApplyError> {
        if self.me() == Side::Stock {
            return Err(ApplyError::WrongRole {
                sender: Side::Stock,
                what: "chain requests (req)",
            });
        }
        if after.index > self.l.len() || self.l.held_link(after.index) != Some(after) {
            return Err(ApplyError::Fork { index: after.index });
        }
        let reply = self.update(None, after.index + 1);
        self.outgoing.push(reply);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::keys::{Seed, WalletKeys};
    use crate::tally::{ChitBuilder, TallyBuilder};

    fn key(seed: u8) -> TallyKey {
        WalletKeys::new(&Seed::from_bytes(&[seed; 64]).expect("seed"), 0)
            .and_then(|k| k.tally_key())
            .expect("tally key")
    }

    fn tally(stock: &TallyKey, foil: &TallyKey) -> VerifiedTally {
        let cert = |k: &TallyKey| json!({"public": k.public_key().to_jwk()});
        let mut t = TallyBuilder::new("t-1", "2025-01-01T00:00:00+00:00", json!({"name": "x"}))
            .party(Side::Stock, cert(stock), json!({"limit": 10}))
            .party(Side::Foil, cert(foil), json!({"limit": 5}))
            .build()
            .expect("tally");
        t.sign(Side::Stock, stock).expect("stock signs");
        t.sign(Side::Foil, foil).expect("foil signs");
        t.verify().expect("verifies")
    }

    fn pay(by: Side, uuid: &str, units: u64) -> ChitRecord {
        ChitBuilder::transaction("t-1", by, uuid, "2025-01-02T00:00:00+00:00", units)
            .build()
            .expect("chit")
    }

    #[test]
    fn foil_links_and_stock_confirms() {
        let (sk, fk) = (key(1), key(2));
        let t = tally(&sk, &fk);
        let mut stock = ChitLedger::new(&t, Side::Stock);
        let mut foil = ChitLedger::new(&t, Side::Foil);
        let out = foil
            .issue(&fk, pay(Side::Foil, "f1", 700))
            .expect("foil pays");
        assert_eq!(out.changes.confirmed, Some(1));
        assert_eq!(out.changes.chits.len(), 1);
        assert_eq!(out.changes.chits[0].state.code(), "L.pend.good");
        let [message] = &out.outgoing[..] else {
            panic!("one message")
        };
        let got = stock.apply_json(&message.to_json()).expect("stock applies");
        assert_eq!(got.changes.confirmed, Some(1));
        assert!(got.outgoing.is_empty());
        assert_eq!(stock.state("f1").map(|s| s.code()), Some("A.good".into()));
        assert_eq!(stock.links(), foil.links());
        assert_eq!(stock.balance().good, 700);
        // Not yet sent: the foil's own chit counts against its limit only.
        assert_eq!(foil.balance().good, 0);
        assert_eq!(foil.balance().committed, -700);
        foil.sent("f1").expect("sent");
        assert_eq!(foil.balance().good, -700);
        // Applying the same message again changes nothing.
        let again = stock.apply_json(&message.to_json()).expect("again");
        assert!(again.changes.is_empty());
        assert_eq!(again.ignored, Some(Ignored::Duplicate));
    }

    #[test]
    fn restore_rebuilds_the_same_ledger() {
        let (sk, fk) = (key(1), key(2));
        let t = tally(&sk, &fk);
        let mut stock = ChitLedger::new(&t, Side::Stock);
        stock.issue(&sk, pay(Side::Stock, "s1", 5)).expect("s1");
        stock.issue(&sk, pay(Side::Stock, "s2", 6)).expect("s2");
        let rows = stock.rows();
        let back = ChitLedger::restore(&t, Side::Stock, rows.clone(), stock.confirmed())
            .expect("restores");
        assert_eq!(back.rows(), rows);
        // A damaged hash is found.
        let mut broken = rows.clone();
        if let Some(link) = broken[1].link.as_mut() {
            link.hash[0] ^= 1;
        }
        assert!(matches!(
            ChitLedger::restore(&t, Side::Stock, broken, 0),
            Err(RestoreError::Chain { index: 2, .. })
        ));
        // The rows of one half are not the other half's.
        assert!(matches!(
            ChitLedger::restore(&t, Side::Foil, rows.clone(), 2),
            Err(RestoreError::Row { .. })
        ));
        assert!(matches!(
            ChitLedger::restore(&t, Side::Stock, rows, 3),
            Err(RestoreError::Confirmed { .. })
        ));
    }

    fn setting(by: Side, uuid: &str, settings: Value) -> ChitRecord {
        ChitBuilder::setting("t-1", by, uuid, "2025-01-03T00:00:00+00:00", settings)
            .build()
            .expect("setting")
    }

    /// Delivers `messages` from `from` to `to`, and every answer back, until
    /// nothing is left; marks chit messages sent as they are delivered.
    fn pump(from: &mut ChitLedger, to: &mut ChitLedger, messages: Vec<ChitMessage>) {
        let mut queue: Vec<(bool, ChitMessage)> = messages.into_iter().map(|m| (true, m)).collect();
        let mut rounds = 0;
        while let Some((forward, message)) = (!queue.is_empty()).then(|| queue.remove(0)) {
            rounds += 1;
            assert!(rounds < 100, "the ledgers keep talking");
            let (sender, receiver) = if forward {
                (&mut *from, &mut *to)
            } else {
                (&mut *to, &mut *from)
            };
            if let ChitMessage::Chit { chit, .. } = &message
                && sender
                    .state(chit.uuid())
                    .is_some_and(|s| s.request.is_some())
            {
                sender.sent(chit.uuid()).expect("sent");
            }
            let out = receiver.apply_json(&message.to_json()).expect("applies");
            queue.extend(out.outgoing.into_iter().map(|m| (!forward, m)));
        }
    }

    #[test]
    fn a_setting_chit_changes_the_limit_on_both_sides() {
        let (sk, fk) = (key(1), key(2));
        let t = tally(&sk, &fk);
        let mut stock = ChitLedger::new(&t, Side::Stock);
        let mut foil = ChitLedger::new(&t, Side::Foil);
        assert_eq!(foil.available(), Ok(10_000));
        let out = stock
            .issue(&sk, setting(Side::Stock, "set1", json!({"limit": 20})))
            .expect("stock raises its limit");
        assert!(
            out.changes
                .notices
                .iter()
                .any(|n| matches!(n, LedgerNotice::Setting { .. }))
        );
        pump(&mut stock, &mut foil, out.outgoing);
        assert_eq!(
            stock.limit_granted_by(Side::Stock).map(|l| l.milli_chips),
            Ok(20_000)
        );
        assert_eq!(
            foil.limit_granted_by(Side::Stock).map(|l| l.milli_chips),
            Ok(20_000)
        );
        assert_eq!(foil.available(), Ok(20_000));
        let out = foil
            .issue(&fk, pay(Side::Foil, "f1", 20_000))
            .expect("up to the new limit");
        pump(&mut foil, &mut stock, out.outgoing);
        let err = foil
            .issue(&fk, pay(Side::Foil, "f2", 1))
            .expect_err("one milliCHIP more");
        assert!(matches!(err, IssueError::OverLimit(_)), "{err}");
        assert_eq!(stock.links(), foil.links());
        assert_eq!(stock.balance().good, 20_000);
    }

    #[test]
    fn bad_settings_from_the_partner_change_nothing() {
        let (sk, fk) = (key(1), key(2));
        let t = tally(&sk, &fk);
        let mut stock = ChitLedger::new(&t, Side::Stock);
        let before = stock.rows();
        let good = |chit: ChitRecord| ChitMessage::Chit {
            action: ChitAction::Good,
            chit,
            link: None,
        };
        // The foil sets the stock's terms: signed with the foil's key, the
        // stock's signature does not verify.
        let mut forged = setting(Side::Stock, "x1", json!({"limit": 1000}));
        forged.sign(&fk).expect("signs");
        let err = stock.apply(&good(forged)).expect_err("wrong side");
        assert!(
            matches!(
                err,
                ApplyError::Signature {
                    side: Side::Stock,
                    ..
                }
            ),
            "{err}"
        );
        // The foil asks the stock to sign a setting (an "invoice" of one).
        let ask = ChitMessage::Chit {
            action: ChitAction::Pend,
            chit: setting(Side::Stock, "x2", json!({"limit": 1000})),
            link: None,
        };
        let err = stock.apply(&ask).expect_err("not the foil's to ask");
        assert!(
            matches!(err, ApplyError::SettingFromWrongSide { .. }),
            "{err}"
        );
        // A limit nobody can enforce.
        let mut odd = setting(Side::Foil, "x3", json!({"limit": "amort(10000, 240)"}));
        odd.sign_for(t.record(), &fk).expect("signs");
        let err = stock.apply(&good(odd)).expect_err("unenforceable");
        assert!(
            matches!(
                err,
                ApplyError::Setting {
                    problem: SettingProblem::Limit(_),
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(stock.rows(), before);
        assert_eq!(stock.close_state(), CloseState::Open);

        // The foil asks to close, then raises the credit it grants anyway
        // (its own wallet refuses to sign that; a forged one is refused).
        let mut foil = ChitLedger::new(&t, Side::Foil);
        let out = foil
            .issue(&fk, setting(Side::Foil, "c1", json!({"close": true})))
            .expect("close");
        pump(&mut foil, &mut stock, out.outgoing);
        assert_eq!(stock.close_state(), CloseState::Closed);
        let err = foil
            .issue(&fk, setting(Side::Foil, "r1", json!({"limit": 6})))
            .expect_err("closed: no more chits");
        assert!(matches!(err, IssueError::Closed), "{err}");
        let mut raise = setting(Side::Foil, "r2", json!({"limit": 6}));
        raise.sign_for(t.record(), &fk).expect("signs");
        let before = stock.rows();
        let err = stock.apply(&good(raise)).expect_err("raise after close");
        assert!(
            matches!(
                err,
                ApplyError::Setting {
                    problem: SettingProblem::RaisesLimit {
                        from: 5_000,
                        to: 6_000,
                        ..
                    },
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(stock.rows(), before);
        // Lowering it is fine.
        let mut lower = setting(Side::Foil, "r3", json!({"limit": 1}));
        lower.sign_for(t.record(), &fk).expect("signs");
        stock.apply(&good(lower)).expect("lower after close");
        assert_eq!(
            stock.limit_granted_by(Side::Foil).map(|l| l.milli_chips),
            Ok(1_000)
        );
    }

    #[test]
    fn a_closing_tally_moves_only_toward_zero_then_closes() {
        let (sk, fk) = (key(1), key(2));
        let t = tally(&sk, &fk);
        let mut stock = ChitLedger::new(&t, Side::Stock);
        let mut foil = ChitLedger::new(&t, Side::Foil);
        // The foil owes the stock 3 CHIPs.
        let out = foil.issue(&fk, pay(Side::Foil, "f1", 3_000)).expect("f1");
        pump(&mut foil, &mut stock, out.outgoing);
        // The stock asks to close.
        let out = stock
            .issue(&sk, setting(Side::Stock, "close", json!({"close": true})))
            .expect("close");
        assert_eq!(stock.close_state(), CloseState::Closing);
        pump(&mut stock, &mut foil, out.outgoing);
        assert_eq!(foil.close_state(), CloseState::Closing);
        assert!(foil.close_requested_by(Side::Stock));
        // New credit: refused before signing, on both sides.
        let err = foil.issue(&fk, pay(Side::Foil, "f2", 1)).expect_err("away");
        assert!(matches!(err, IssueError::Closing(_)), "{err}");
        let err = stock
            .invoice(pay(Side::Foil, "i1", 1))
            .expect_err("an invoice away from zero");
        assert!(matches!(err, InvoiceError::Closing(_)), "{err}");
        let err = stock
            .issue(&sk, pay(Side::Stock, "s0", 3_001))
            .expect_err("past zero");
        assert!(matches!(err, IssueError::Closing(_)), "{err}");
        let err = stock
            .issue(&sk, setting(Side::Stock, "up", json!({"limit": 11})))
            .expect_err("no more credit from the side that closes");
        assert!(
            matches!(err, IssueError::Setting(SettingProblem::RaisesLimit { .. })),
            "{err}"
        );
        // Toward zero: the stock pays 1, the foil invoices the rest and the
        // stock approves.
        let out = stock
            .issue(&sk, pay(Side::Stock, "s1", 1_000))
            .expect("toward zero");
        pump(&mut stock, &mut foil, out.outgoing);
        let out = foil
            .invoice(pay(Side::Stock, "i2", 2_000))
            .expect("invoice toward zero");
        pump(&mut foil, &mut stock, out.outgoing);
        let err = foil
            .invoice(pay(Side::Stock, "i3", 1))
            .expect_err("with i2 open, past zero");
        assert!(matches!(err, InvoiceError::Closing(_)), "{err}");
        assert_eq!(stock.close_state(), CloseState::Closing);
        let out = stock.approve(&sk, "i2").expect("approve");
        // Signed, not yet delivered: still closing.
        assert_eq!(stock.close_state(), CloseState::Closing);
        pump(&mut stock, &mut foil, out.outgoing);
        assert_eq!(stock.close_state(), CloseState::Closed);
        assert_eq!(foil.close_state(), CloseState::Closed);
        assert_eq!(stock.links(), foil.links());
        assert!(matches!(
            stock.issue(&sk, pay(Side::Stock, "late", 1)),
            Err(IssueError::Closed)
        ));
        assert!(matches!(
            foil.invoice(pay(Side::Stock, "late2", 1)),
            Err(InvoiceError::Closed)
        ));
        // Restored from its rows, the ledger is still closed.
        let back =
            ChitLedger::restore(&t, Side::Foil, foil.rows(), foil.confirmed()).expect("restores");
        assert_eq!(back.close_state(), CloseState::Closed);
    }

    /// The part of `whole` an agent loads for an operation that names
    /// `lowest` and `uuids` (as `crate::agent::chits::load_tail` picks it
    /// from the store): the chain after the confirmed end and (`in_chain`,
    /// a message) what is named; the unlinked chits but the void ones; the
    /// chits named; and the totals for the rest.
    fn tail_of(
        whole: &ChitLedger,
        lowest: Option<u64>,
        uuids: &[&str],
        in_chain: bool,
    ) -> ChitLedger {
        let rows = whole.rows();
        let mut offset = whole.confirmed();
        if let Some(index) = lowest {
            offset = offset.min(index.saturating_sub(1));
        }
        for row in rows.iter().filter(|r| uuids.contains(&r.uuid.as_str())) {
            if let Some(link) = row.link
                && in_chain
            {
                offset = offset.min(link.index - 1);
            }
        }
        let held = rows.iter().filter(|r| {
            uuids.contains(&r.uuid.as_str())
                || match r.link {
                    Some(link) => link.index > offset,
                    None => r.state.status != ChitStatus::Void,
                }
        });
        let hash = (offset > 0).then(|| whole.link_at(offset).hash);
        let tail = ChitLedger::restore_tail(
            whole.tally(),
            whole.side(),
            held.cloned(),
            whole.confirmed(),
            offset,
            hash,
            &whole.totals(),
        )
        .expect("the tail restores");
        assert_eq!(tail.totals(), whole.totals());
        tail
    }

    /// Applies `message` to `whole` and to the tail an agent would load for
    /// it: the same outcome (or the same refusal), and the same totals and
    /// ends after.
    fn apply_both(
        whole: &mut ChitLedger,
        message: &ChitMessage,
    ) -> Result<ChitOutcome, ApplyError> {
        let (lowest, uuids) = message_needs(message);
        let mut tail = tail_of(whole, lowest, &uuids, true);
        let got = tail.apply(message);
        let want = whole.apply(message);
        assert_eq!(
            got, want,
            "the tail and the whole ledger differ on {message:?}"
        );
        assert_eq!(tail.totals(), whole.totals());
        assert_eq!(tail.end(), whole.end());
        assert_eq!(tail.confirmed(), whole.confirmed());
        assert_eq!(tail.is_consensed(), whole.is_consensed());
        want
    }

    /// A local action on `whole` and on the tail loaded for it.
    fn act_both(
        whole: &mut ChitLedger,
        uuid: &str,
        act: impl Fn(&mut ChitLedger) -> Option<ChitOutcome>,
    ) -> Option<ChitOutcome> {
        // A signature differs each time (and so the chain hash): what the
        // outcomes say is compared, not their signed bytes.
        fn shape(outcome: &ChitOutcome) -> impl PartialEq + std::fmt::Debug {
            let rows: Vec<_> = outcome
                .changes
                .chits
                .iter()
                .map(|r| (r.uuid.clone(), r.state, r.link.map(|l| l.index), r.claim))
                .collect();
            let outgoing: Vec<_> = outcome
                .outgoing
                .iter()
                .map(|m| match m {
                    ChitMessage::Chit { action, chit, link } => {
                        format!("{action:?} {} {:?}", chit.uuid(), link.map(|l| l.index))
                    }
                    other => format!("{other:?}"),
                })
                .collect();
            (
                rows,
                outcome.changes.confirmed,
                outcome.changes.notices.clone(),
                outgoing,
                outcome.ignored.clone(),
            )
        }
        let mut tail = tail_of(whole, None, &[uuid], false);
        let got = act(&mut tail);
        let want = act(whole);
        assert_eq!(
            got.as_ref().map(shape),
            want.as_ref().map(shape),
            "the tail and the whole ledger differ on {uuid}"
        );
        assert_eq!(tail.totals(), whole.totals());
        assert_eq!(tail.end().index, whole.end().index);
        want
    }

    /// Crossing payments, invoices approved and rejected, settings and a
    /// close, delivered out of order with repeats and losses (then synced):
    /// at every step a ledger holding only the tail an agent loads does
    /// exactly what the whole ledger does.
    #[test]
    fn the_tail_an_agent_loads_does_what_the_whole_ledger_does() {
        let (sk, fk) = (key(1), key(2));
        let t = tally(&sk, &fk);
        for seed in 0..30u64 {
            let mut rng = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut next = move |n: u64| {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (rng >> 33) % n
            };
            let mut stock = ChitLedger::new(&t, Side::Stock);
            let mut foil = ChitLedger::new(&t, Side::Foil);
            // (to the stock?, message)
            let mut flight: Vec<(bool, ChitMessage)> = Vec::new();
            let mut invoices: Vec<(Side, String)> = Vec::new();
            for step in 0..60u64 {
                match next(9) {
                    0..=2 => {
                        let side = if next(2) == 0 {
                            Side::Stock
                        } else {
                            Side::Foil
                        };
                        let uuid = format!("p{seed}-{step}");
                        let (ledger, key) = match side {
                            Side::Stock => (&mut stock, &sk),
                            Side::Foil => (&mut foil, &fk),
                        };
                        let units = 1 + next(900);
                        let chit = pay(side, &uuid, units);
                        if let Some(out) =
                            act_both(ledger, &uuid, |l| l.issue(key, chit.clone()).ok())
                        {
                            for m in out.outgoing {
                                flight.push((side == Side::Foil, m));
                            }
                        }
                    }
                    3 => {
                        // An invoice to the other side.
                        let payee = if next(2) == 0 {
                            Side::Stock
                        } else {
                            Side::Foil
                        };
                        let uuid = format!("i{seed}-{step}");
                        let ledger = match payee {
                            Side::Stock => &mut stock,
                            Side::Foil => &mut foil,
                        };
                        let chit = pay(payee.other(), &uuid, 1 + next(500));
                        if let Some(out) = act_both(ledger, &uuid, |l| l.invoice(chit.clone()).ok())
                        {
                            invoices.push((payee.other(), uuid));
                            for m in out.outgoing {
                                flight.push((payee == Side::Foil, m));
                            }
                        }
                    }
                    4 if !invoices.is_empty() => {
                        let (payer, uuid) = invoices.remove(next(invoices.len() as u64) as usize);
                        let (ledger, key) = match payer {
                            Side::Stock => (&mut stock, &sk),
                            Side::Foil => (&mut foil, &fk),
                        };
                        let approve = next(2) == 0;
                        let out = act_both(ledger, &uuid, |l| {
                            if approve {
                                l.approve(key, &uuid).ok()
                            } else {
                                l.reject(&uuid).ok()
                            }
                        });
                        for m in out.into_iter().flat_map(|o| o.outgoing) {
                            flight.push((payer == Side::Foil, m));
                        }
                    }
                    5 => {
                        // A new limit from either side (a close comes
                        // once all is delivered, below: a limit raised
                        // before a close request and delivered after it is
                        // refused, and the two chains then never agree).
                        let side = if next(2) == 0 {
                            Side::Stock
                        } else {
                            Side::Foil
                        };
                        let uuid = format!("s{seed}-{step}");
                        let settings = json!({"limit": 5 + next(20)});
                        let (ledger, key) = match side {
                            Side::Stock => (&mut stock, &sk),
                            Side::Foil => (&mut foil, &fk),
                        };
                        let chit = setting(side, &uuid, settings);
                        if let Some(out) =
                            act_both(ledger, &uuid, |l| l.issue(key, chit.clone()).ok())
                        {
                            for m in out.outgoing {
                                flight.push((side == Side::Foil, m));
                            }
                        }
                    }
                    6 => {
                        // A consensus check from either side.
                        let to_stock = next(2) == 0;
                        let from = if to_stock { &foil } else { &stock };
                        for m in from.sync() {
                            flight.push((to_stock, m));
                        }
                    }
                    _ if !flight.is_empty() => {
                        // Deliver one in flight (any of them), maybe twice,
                        // maybe lose it.
                        let at = next(flight.len() as u64) as usize;
                        let (to_stock, message) = flight.remove(at);
                        // Lost (a chain message only: a chit message is
                        // kept in the outbox until delivered).
                        if next(8) == 0 && !matches!(message, ChitMessage::Chit { .. }) {
                            continue;
                        }
                        if next(5) == 0 {
                            flight.push((to_stock, message.clone()));
                        }
                        let (sender, receiver) = if to_stock {
                            (&mut foil, &mut stock)
                        } else {
                            (&mut stock, &mut foil)
                        };
                        if let ChitMessage::Chit { chit, .. } = &message
                            && sender
                                .state(chit.uuid())
                                .is_some_and(|s| s.request.is_some())
                        {
                            let uuid = chit.uuid().to_owned();
                            act_both(sender, &uuid, |l| l.sent(&uuid).ok());
                        }
                        if let Ok(out) = apply_both(receiver, &message) {
                            for m in out.outgoing {
                                flight.push((!to_stock, m));
                            }
                        }
                    }
                    _ => {}
                }
            }
            // Everything delivered, then resynced until quiet; then one
            // side asks to close, and that is delivered too.
            for round in 0..5 {
                if round == 4 {
                    let side = if seed % 2 == 0 {
                        Side::Stock
                    } else {
                        Side::Foil
                    };
                    let uuid = format!("close{seed}");
                    let (ledger, key) = match side {
                        Side::Stock => (&mut stock, &sk),
                        Side::Foil => (&mut foil, &fk),
                    };
                    let chit = setting(side, &uuid, json!({"close": true}));
                    let out = act_both(ledger, &uuid, |l| l.issue(key, chit.clone()).ok())
                        .expect("asks to close");
                    for m in out.outgoing {
                        flight.push((side == Side::Foil, m));
                    }
                }
                for m in foil.sync() {
                    flight.push((true, m));
                }
                for m in stock.sync() {
                    flight.push((false, m));
                }
                for m in stock.unsent() {
                    flight.push((false, m));
                }
                for m in foil.unsent() {
                    flight.push((true, m));
                }
                let mut rounds = 0;
                while !flight.is_empty() {
                    rounds += 1;
                    assert!(rounds < 10_000, "the ledgers keep talking");
                    let (to_stock, message) = flight.remove(0);
                    let (sender, receiver) = if to_stock {
                        (&mut foil, &mut stock)
                    } else {
                        (&mut stock, &mut foil)
                    };
                    if let ChitMessage::Chit { chit, .. } = &message
                        && sender
                            .state(chit.uuid())
                            .is_some_and(|s| s.request.is_some())
                    {
                        let uuid = chit.uuid().to_owned();
                        act_both(sender, &uuid, |l| l.sent(&uuid).ok());
                    }
                    if let Ok(out) = apply_both(receiver, &message) {
                        for m in out.outgoing {
                            flight.push((!to_stock, m));
                        }
                    }
                }
            }
            assert!(stock.is_consensed() && foil.is_consensed(), "seed {seed}");
            assert_eq!(stock.links(), foil.links(), "seed {seed}");
            assert_eq!(stock.balance(), foil.balance().flipped(), "seed {seed}");
            assert!(stock.chain_len() > 5, "seed {seed}: a chain worth the name");
            assert!(stock.totals().stock_close || stock.totals().foil_close);
            assert_ne!(stock.close_state(), CloseState::Open);
        }
    }
}
