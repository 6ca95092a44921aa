//! The tally state machine: how a tally moves from a ticket to `open`, in
//! MyCHIPs's states and with MyCHIPs's messages.
//!
//! [`transition`] is pure (no store, no clock, no network): it takes what
//! the wallet knows about one tally, one event (something the person did, a
//! message a partner's agent sent, a delivery of ours) and returns the new
//! state with what to store, what to send and what to tell the person — or
//! the reason the event does not apply. The agent runtime
//! (`crate::agent`) applies the outcome in one store transaction.
//!
//! # States
//!
//! MyCHIPs computes a tally's state from its `status`, its pending
//! `request` and which signatures it holds (`mychips.tally_state` in
//! `schema/tallies.wms`): `P.`/`H.`/`B.` say whether the Partner, the
//! Holder (us) or Both have signed an offer, and `.request` is the step
//! asked of the agent. Notch uses the same names:
//!
//! ```text
//! issuer (A)                                 scanner (B)
//!  draft ── ticket presented, A signs ──┐      ticket (Notch: asked, nothing offered yet)
//!                                       v        │
//!  draft.offer ── offer delivered ──> H.offer ───┼── offer ──> P.offer ── accept, B signs ──> B.offer.open
//!                                       │        │              │                              │
//!         open <── B's acceptance ──────┘        │              └─ refuse ──> P.offer.void     │ delivered
//!         void <── B's refusal                   └─ refused by A ──> void         │ delivered  v
//!                                                                                 v           open
//!                                                                                void
//! ```
//!
//! - `ticket` is Notch's own: MyCHIPs keeps no row until the offer arrives
//!   (its `tally_process` calls that `'null'`), but a wallet must show the
//!   person what it is waiting for.
//! - `void` and `open` end this machine: a void tally never opens (MyCHIPs
//!   would let a partner re-offer a voided tally; Notch asks for a new
//!   ticket instead), and an open tally changes only through chits (a
//!   close request is a setting chit), which are not this module's.
//! - Nothing reaches `open` without both signatures verifying over the same
//!   bytes the holder signed: checked on the message (`open`) and again on
//!   our own acceptance before it counts as delivered.
//!
//! # Who signs first
//!
//! As in MyCHIPs (`doc/learn-tally.md`, "Establishing a Tally"): the issuer
//! of the ticket drafts the terms; when someone presents the ticket, the
//! issuer's agent puts that party's certificate into the draft, signs it and
//! sends it as an `offer` ("this signing step could be automated"); issuing
//! the ticket is the issuer's consent to its own terms with whoever holds
//! the one-time token. The scanner sees the terms and accepts (signs, then
//! sends `open`) or refuses (sends `void`).
//!
//! # Idempotency
//!
//! Every event is judged against the current state, so a message applied
//! twice changes nothing: a second `offer` with the same signed bytes, an
//! `open` for an open tally, a `void` for a void one are [`Outcome::Unchanged`].
//! A ticket presented again by the agent that used it (its first answer was
//! lost) changes nothing either, and asks for our offer to be sent again.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use super::Side;
use super::chain::CloseState;
use super::record::{SignatureProblem, TallyRecord, TallyVerifyError, key_reason};
use crate::keys::{TallyKey, TallyPublicKey, TallySignature};
use crate::peer::AgentId;

/// Where a tally is, by MyCHIPs's name (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TallyState {
    /// We scanned a ticket and asked its issuer for the tally (Notch only).
    Ticket,
    /// Issued with a ticket, waiting for someone to present it.
    Draft,
    /// Signed by us with the partner's certificate in it; the offer waits
    /// to reach the partner.
    DraftOffer,
    /// Offered by us (our signature only), waiting for the partner.
    HOffer,
    /// Offered to us (the partner's signature only): ours to accept or refuse.
    POffer,
    /// Refused by us; the refusal waits to reach the partner.
    POfferVoid,
    /// Accepted by us (both signatures); the acceptance waits to reach the
    /// partner.
    BOfferOpen,
    /// Both parties signed and both know it.
    Open,
    /// Open, and a close request (a setting chit with `close: true`) binds
    /// one side: only chits that bring the balance toward zero (MyCHIPs
    /// status `close` with a non-zero balance, `closing`).
    Closing,
    /// Closing with a balance of zero: no more chits (MyCHIPs status
    /// `close` with a zero balance, `closed`).
    Closed,
    /// Refused, withdrawn or given up. Final.
    Void,
}

impl TallyState {
    pub const ALL: [TallyState; 11] = [
        TallyState::Ticket,
        TallyState::Draft,
        TallyState::DraftOffer,
        TallyState::HOffer,
        TallyState::POffer,
        TallyState::POfferVoid,
        TallyState::BOfferOpen,
        TallyState::Open,
        TallyState::Closing,
        TallyState::Closed,
        TallyState::Void,
    ];

    /// MyCHIPs's name (`mychips.tally_state`), e.g. `"P.offer"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TallyState::Ticket => "ticket",
            TallyState::Draft => "draft",
            TallyState::DraftOffer => "draft.offer",
            TallyState::HOffer => "H.offer",
            TallyState::POffer => "P.offer",
            TallyState::POfferVoid => "P.offer.void",
            TallyState::BOfferOpen => "B.offer.open",
            TallyState::Open => "open",
            TallyState::Closing => "closing",
            TallyState::Closed => "closed",
            TallyState::Void => "void",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// No event of this machine moves a tally out of this state (an open
    /// tally moves on only through its chits: [`settle`]).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TallyState::Void | TallyState::Open | TallyState::Closing | TallyState::Closed
        )
    }

    /// Both signatures hold and chits are kept: `open`, `closing`, `closed`.
    pub fn has_chits(self) -> bool {
        matches!(
            self,
            TallyState::Open | TallyState::Closing | TallyState::Closed
        )
    }

    /// The state as the offer machine sees it: `closing` and `closed` are
    /// `open` to it.
    fn offer_view(self) -> TallyState {
        if self.has_chits() {
            TallyState::Open
        } else {
            self
        }
    }

    /// What the state means, for a person.
    pub fn describe(self) -> &'static str {
        match self {
            TallyState::Ticket => "waiting for the ticket's issuer to offer the tally",
            TallyState::Draft => "ticket issued; waiting for someone to present it",
            TallyState::DraftOffer => "signed by you; the offer waits to reach your partner",
            TallyState::HOffer => "offered by you; waiting for your partner to accept",
            TallyState::POffer => "offered to you: accept or refuse it",
            TallyState::POfferVoid => "refused by you; telling your partner",
            TallyState::BOfferOpen => "accepted by you; telling your partner",
            TallyState::Open => "open",
            TallyState::Closing => "closing: only chits that bring the balance to zero",
            TallyState::Closed => "closed",
            TallyState::Void => "void",
        }
    }
}

/// The state of a tally with chits after they changed: `open` until a
/// close request binds, then `closing`, and `closed` while the balance is
/// zero (MyCHIPs `mychips.tally_state`: status `close` is `closed` when the
/// total is 0, else `closing`; `doc/uml/state-tally.puml`: "Tally sum hit
/// zero"). A close request is never withdrawn, so nothing goes back to
/// `open`. `None` for a tally without chits (the offer machine's states).
pub fn settle(current: TallyState, close: CloseState) -> Option<TallyState> {
    if !current.has_chits() {
        return None;
    }
    Some(match (current, close) {
        (TallyState::Open, CloseState::Open) => TallyState::Open,
        (_, CloseState::Closed) => TallyState::Closed,
        // A closing tally whose close request we no longer see (a damaged
        // store) stays closing rather than open.
        (_, CloseState::Closing | CloseState::Open) => TallyState::Closing,
    })
}

impl fmt::Display for TallyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TallyState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A tally message's `action` (MyCHIPs `lib/tally.js`), plus Notch's
/// refusal of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// First contact: the token and our certificate.
    Ticket,
    /// A signed draft for the partner to accept.
    Offer,
    /// The partner's acceptance: the tally with both signatures.
    Open,
    /// A refusal of an offer.
    Void,
    /// Notch: the issuer's agent refuses a ticket and says why.
    Refuse,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Ticket,
        Action::Offer,
        Action::Open,
        Action::Void,
        Action::Refuse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Ticket => "ticket",
            Action::Offer => "offer",
            Action::Open => "open",
            Action::Void => "void",
            Action::Refuse => "refuse",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a tally holds besides its state.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A scanned ticket: nothing signed yet.
    Ticket,
    /// The issuer's draft: a tally record without the partner's
    /// certificate (our half complete, the partner's half with its terms).
    Draft(Map<String, Value>),
    /// The record as last signed or received (exactly what was signed).
    Record(TallyRecord),
}

impl Body {
    pub fn record(&self) -> Option<&TallyRecord> {
        match self {
            Body::Record(r) => Some(r),
            _ => None,
        }
    }
}

/// What the state machine knows about one tally.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    pub state: TallyState,
    /// Our half, once known (a scanned ticket does not say).
    pub side: Option<Side>,
    /// The partner's agent: named by the ticket we scanned, or proved by
    /// the handshake of whoever presented ours. Only it may move the tally.
    pub partner: Option<AgentId>,
    pub body: Body,
}

/// The issuer's record of its one-time token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// Unix seconds; the token is no good at or after it.
    pub expires: u64,
    /// The agent that used it, if it was used.
    pub used_by: Option<AgentId>,
}

/// Something that happened to a tally.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The person accepts the offered terms: we sign our half.
    Accept,
    /// The person refuses an offer, withdraws an unused ticket, or gives up
    /// a scanned ticket still waiting for its offer.
    Refuse,
    /// A message of ours was written to the partner's agent.
    Delivered(Action),
    /// An agent presented the ticket of this tally with its certificate
    /// (`from` is the key its handshake proved).
    Ticket {
        from: AgentId,
        cert: Value,
        token: TokenInfo,
        now: u64,
    },
    /// The partner offers a tally (signed by it only).
    Offer { from: AgentId, record: TallyRecord },
    /// The partner accepted our offer (both signatures).
    Open { from: AgentId, record: TallyRecord },
    /// The partner refused our offer.
    Void { from: AgentId },
    /// The issuer's agent refused our ticket (Notch), with its reason.
    TicketRefused { from: AgentId, reason: String },
    /// We stop waiting for a scanned ticket's offer (the ticket expired
    /// before its issuer's agent could be reached, or that agent keeps
    /// closing the connection without a word).
    GiveUp { reason: String },
}

impl Event {
    fn what(&self) -> &'static str {
        match self {
            Event::Accept => "be accepted",
            Event::Refuse => "be refused",
            Event::Delivered(_) => "take a delivery",
            Event::Ticket { .. } => "take a ticket",
            Event::Offer { .. } => "take an offer",
            Event::Open { .. } => "take an acceptance",
            Event::Void { .. } => "take a refusal",
            Event::TicketRefused { .. } => "take a ticket refusal",
            Event::GiveUp { .. } => "be given up",
        }
    }

    /// The proved sender of a message event.
    fn sender(&self) -> Option<AgentId> {
        match self {
            Event::Ticket { from, .. }
            | Event::Offer { from, .. }
            | Event::Open { from, .. }
            | Event::Void { from }
            | Event::TicketRefused { from, .. } => Some(*from),
            Event::Accept | Event::Refuse | Event::Delivered(_) | Event::GiveUp { .. } => None,
        }
    }
}

/// Who we are: our agent and our tally signing key.
#[derive(Clone, Copy)]
pub struct Me<'a> {
    pub agent: AgentId,
    pub key: &'a TallyKey,
}

impl fmt::Debug for Me<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Me")
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

/// What to tell the person about a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A tally was offered to us.
    Offered,
    /// The tally is open.
    Opened,
    /// Our offer or ticket was refused by the partner.
    Refused,
}

/// A move to a new state, with what goes with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The tally after the event.
    pub tally: Tally,
    /// A message to queue for the partner (its object is the new record).
    pub send: Option<Action>,
    /// Drop our undelivered messages of this tally.
    pub cancel_outbox: bool,
    /// Mark the ticket's token used (by the event's sender).
    pub use_token: bool,
    pub notice: Option<Notice>,
    /// Why the tally ended (void), for the person.
    pub reason: Option<String>,
}

impl Change {
    fn to(tally: Tally) -> Self {
        Self {
            tally,
            send: None,
            cancel_outbox: false,
            use_token: false,
            notice: None,
            reason: None,
        }
    }
}

/// What an event does.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing changes (a repeat, or a delivery already superseded).
    /// `resend`: the partner evidently missed our last message of this kind.
    Unchanged {
        resend: Option<Action>,
    },
    Moved(Box<Change>),
}

const UNCHANGED: Outcome = Outcome::Unchanged { resend: None };

/// Why an event does not apply. Messages are for people (and, for a
/// refused ticket, for the partner: see [`Refusal::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this ticket is not known to its issuer (it may be mistyped, or from another wallet)")]
    TicketUnknown,
    #[error("this ticket was already used; ask whoever gave it to you for a new one")]
    TicketUsed,
    #[error("this ticket expired; ask whoever gave it to you for a new one")]
    TicketExpired { expires: u64 },
    #[error("this ticket was withdrawn by whoever issued it")]
    TicketWithdrawn,
    #[error("the certificate presented with the ticket is not acceptable: {0}")]
    BadCertificate(String),
    #[error("the message comes from another agent than this tally's partner")]
    WrongPartner,
    #[error("the offered tally is not acceptable: {0}")]
    BadOffer(String),
    #[error("{0}")]
    BadSignatures(TallyVerifyError),
    #[error("the accepted tally is not the one we offered: its signed contents differ")]
    Changed,
    #[error("there is no such tally here")]
    NoTally,
    #[error("a {state} tally cannot {what}")]
    NotNow {
        state: TallyState,
        what: &'static str,
    },
    #[error("the tally is {state} and can no longer change this way")]
    Final { state: TallyState },
    #[error("the tally could not be signed: {0}")]
    Sign(String),
}

impl Refusal {
    /// A short stable code, sent with a refused ticket (`reason.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::TicketUnknown => "unknown",
            Refusal::TicketUsed => "used",
            Refusal::TicketExpired { .. } => "expired",
            Refusal::TicketWithdrawn => "withdrawn",
            Refusal::BadCertificate(_) => "bad_certificate",
            Refusal::WrongPartner => "wrong_partner",
            Refusal::BadOffer(_) => "bad_offer",
            Refusal::BadSignatures(_) => "bad_signatures",
            Refusal::Changed => "changed",
            Refusal::NoTally => "no_tally",
            Refusal::NotNow { .. } => "not_now",
            Refusal::Final { .. } => "final",
            Refusal::Sign(_) => "sign",
        }
    }
}

/// The state machine. `current` is `None` when the wallet has no such
/// tally (only an offer can create one).
pub fn transition(current: Option<&Tally>, event: &Event, me: &Me<'_>) -> Result<Outcome, Refusal> {
    let Some(tally) = current else {
        return match event {
            Event::Ticket { .. } => Err(Refusal::TicketUnknown),
            Event::Offer { from, record } => {
                let side = check_offer(record, *from, me, None)?;
                Ok(offered(side, *from, record.clone()))
            }
            _ => Err(Refusal::NoTally),
        };
    };
    // Only the partner moves a tally. A ticket names no partner until it is
    // used (the ticket case checks its user itself).
    if let (Some(from), Some(partner)) = (event.sender(), tally.partner)
        && from != partner
        && !matches!(event, Event::Ticket { .. })
    {
        return Err(Refusal::WrongPartner);
    }
    use TallyState as S;
    let not_now = || Refusal::NotNow {
        state: tally.state,
        what: event.what(),
    };
    match event {
        Event::Ticket {
            from,
            cert,
            token,
            now,
        } => {
            if let Some(by) = token.used_by {
                return if by == *from && tally.partner == Some(*from) {
                    let resend =
                        matches!(tally.state, S::DraftOffer | S::HOffer).then_some(Action::Offer);
                    Ok(Outcome::Unchanged { resend })
                } else {
                    Err(Refusal::TicketUsed)
                };
            }
            match tally.state.offer_view() {
                S::Draft => {}
                S::Void => return Err(Refusal::TicketWithdrawn),
                _ => return Err(Refusal::TicketUsed),
            }
            if *now >= token.expires {
                return Err(Refusal::TicketExpired {
                    expires: token.expires,
                });
            }
            let (Body::Draft(draft), Some(side)) = (&tally.body, tally.side) else {
                return Err(not_now());
            };
            check_certificate(cert, *from, me)?;
            let mut record = complete_draft(draft, side.other(), cert)?;
            record
                .sign(side, me.key)
                .map_err(|e| Refusal::Sign(e.to_string()))?;
            let mut change = Change::to(Tally {
                state: S::DraftOffer,
                side: Some(side),
                partner: Some(*from),
                body: Body::Record(record),
            });
            change.send = Some(Action::Offer);
            change.use_token = true;
            Ok(Outcome::Moved(Box::new(change)))
        }
        Event::Offer { from, record } => match tally.state.offer_view() {
            S::Void => Err(Refusal::Final { state: tally.state }),
            S::Open | S::Closing | S::Closed | S::POfferVoid | S::BOfferOpen => {
                if same_contents(tally, record) {
                    Ok(UNCHANGED)
                } else if tally.state.has_chits() {
                    Err(Refusal::Final { state: tally.state })
                } else {
                    Err(not_now())
                }
            }
            S::Draft => Err(not_now()),
            S::POffer | S::DraftOffer | S::HOffer if same_contents(tally, record) => Ok(UNCHANGED),
            S::Ticket | S::POffer | S::DraftOffer | S::HOffer => {
                let side = check_offer(record, *from, me, tally.side)?;
                Ok(offered(side, *from, record.clone()))
            }
        },
        Event::Open { record, .. } => match tally.state.offer_view() {
            S::DraftOffer | S::HOffer => {
                if !same_contents(tally, record) {
                    return Err(Refusal::Changed);
                }
                let verified = record.clone().verify().map_err(Refusal::BadSignatures)?;
                let mut change = Change::to(Tally {
                    state: S::Open,
                    body: Body::Record(verified.into_record()),
                    ..tally.clone()
                });
                change.notice = Some(Notice::Opened);
                Ok(Outcome::Moved(Box::new(change)))
            }
            S::Open if same_contents(tally, record) => Ok(UNCHANGED),
            S::Open | S::Void => Err(Refusal::Final { state: tally.state }),
            _ => Err(not_now()),
        },
        Event::Void { .. } => match tally.state.offer_view() {
            S::DraftOffer | S::HOffer => {
                let mut change = Change::to(Tally {
                    state: S::Void,
                    ..tally.clone()
                });
                change.notice = Some(Notice::Refused);
                change.reason = Some("your partner refused the tally".into());
                change.cancel_outbox = true;
                Ok(Outcome::Moved(Box::new(change)))
            }
            S::Void => Ok(UNCHANGED),
            S::Open => Err(Refusal::Final { state: tally.state }),
            _ => Err(not_now()),
        },
        Event::TicketRefused { reason, .. } => match tally.state.offer_view() {
            S::Ticket => {
                let mut change = Change::to(Tally {
                    state: S::Void,
                    ..tally.clone()
                });
                change.notice = Some(Notice::Refused);
                change.reason = Some(reason.clone());
                change.cancel_outbox = true;
                Ok(Outcome::Moved(Box::new(change)))
            }
            S::Void => Ok(UNCHANGED),
            S::Open => Err(Refusal::Final { state: tally.state }),
            _ => Err(not_now()),
        },
        Event::GiveUp { reason } => match tally.state.offer_view() {
            S::Ticket => {
                let mut change = Change::to(Tally {
                    state: S::Void,
                    ..tally.clone()
                });
                change.notice = Some(Notice::Refused);
                change.reason = Some(reason.clone());
                change.cancel_outbox = true;
                Ok(Outcome::Moved(Box::new(change)))
            }
            S::Void => Ok(UNCHANGED),
            _ => Err(not_now()),
        },
        Event::Accept => match tally.state.offer_view() {
            S::POffer => {
                let (Body::Record(record), Some(side)) = (&tally.body, tally.side) else {
                    return Err(not_now());
                };
                let mut record = record.clone();
                record
                    .sign(side, me.key)
                    .map_err(|e| Refusal::Sign(e.to_string()))?;
                let mut change = Change::to(Tally {
                    state: S::BOfferOpen,
                    body: Body::Record(record),
                    ..tally.clone()
                });
                change.send = Some(Action::Open);
                Ok(Outcome::Moved(Box::new(change)))
            }
            S::BOfferOpen | S::Open => Ok(UNCHANGED),
            S::Void => Err(Refusal::Final { state: tally.state }),
            _ => Err(not_now()),
        },
        Event::Refuse => match tally.state.offer_view() {
            S::POffer => {
                let mut change = Change::to(Tally {
                    state: S::POfferVoid,
                    ..tally.clone()
                });
                change.send = Some(Action::Void);
                Ok(Outcome::Moved(Box::new(change)))
            }
            S::Draft | S::Ticket => {
                let mut change = Change::to(Tally {
                    state: S::Void,
                    ..tally.clone()
                });
                change.cancel_outbox = true;
                change.reason = Some(if tally.state == S::Draft {
                    "the ticket was withdrawn by you".into()
                } else {
                    "given up by you before an offer came".into()
                });
                Ok(Outcome::Moved(Box::new(change)))
            }
            S::POfferVoid | S::Void => Ok(UNCHANGED),
            S::Open => Err(Refusal::Final { state: tally.state }),
            _ => Err(not_now()),
        },
        Event::Delivered(action) => match (tally.state, action) {
            (S::DraftOffer, Action::Offer) => Ok(Outcome::Moved(Box::new(Change::to(Tally {
                state: S::HOffer,
                ..tally.clone()
            })))),
            (S::BOfferOpen, Action::Open) => {
                // Counted as open only if both signatures verify: the same
                // rule as for the partner's acceptance.
                let Body::Record(record) = &tally.body else {
                    return Err(not_now());
                };
                let verified = record.clone().verify().map_err(Refusal::BadSignatures)?;
                let mut change = Change::to(Tally {
                    state: S::Open,
                    body: Body::Record(verified.into_record()),
                    ..tally.clone()
                });
                change.notice = Some(Notice::Opened);
                Ok(Outcome::Moved(Box::new(change)))
            }
            (S::POfferVoid, Action::Void) => {
                let mut change = Change::to(Tally {
                    state: S::Void,
                    ..tally.clone()
                });
                change.reason = Some("refused by you".into());
                Ok(Outcome::Moved(Box::new(change)))
            }
            _ => Ok(UNCHANGED),
        },
    }
}

fn offered(side: Side, from: AgentId, record: TallyRecord) -> Outcome {
    let mut change = Change::to(Tally {
        state: TallyState::POffer,
        side: Some(side),
        partner: Some(from),
        body: Body::Record(record),
    });
    change.notice = Some(Notice::Offered);
    Outcome::Moved(Box::new(change))
}

/// Whether `record` signs the same bytes as the tally's stored record.
fn same_contents(tally: &Tally, record: &TallyRecord) -> bool {
    tally
        .body
        .record()
        .is_some_and(|r| r.signed_message() == record.signed_message())
}

/// The agent a certificate's `chad` names.
fn cert_agent(cert: &Value) -> Option<AgentId> {
    cert.get("chad")
        .and_then(|c| c.get("agent"))
        .and_then(Value::as_str)
        .and_then(|a| AgentId::parse(a).ok())
}

fn cert_key(cert: &Value) -> Result<TallyPublicKey, String> {
    let public = cert
        .get("public")
        .ok_or_else(|| "it has no \"public\" key".to_owned())?;
    let parsed;
    let jwk = match public {
        // MyCHIPs's crypto.js also takes the JWK as a JSON string.
        Value::String(text) => {
            parsed = super::canonical::parse_json(text).map_err(|e| e.to_string())?;
            &parsed
        }
        other => other,
    };
    TallyPublicKey::from_jwk(jwk).map_err(|e| key_reason(&e))
}

/// A partner's certificate from a ticket: a P-521 key that is not ours, and
/// a CHIP address whose agent is the one that connected.
fn check_certificate(cert: &Value, from: AgentId, me: &Me<'_>) -> Result<(), Refusal> {
    if !cert.is_object() {
        return Err(Refusal::BadCertificate("it is not a JSON object".into()));
    }
    let key = cert_key(cert).map_err(Refusal::BadCertificate)?;
    if key == me.key.public_key() {
        return Err(Refusal::BadCertificate(
            "it holds this wallet's own key".into(),
        ));
    }
    match cert_agent(cert) {
        Some(agent) if agent == from => Ok(()),
        Some(_) => Err(Refusal::BadCertificate(
            "its CHIP address names another agent than the one that connected".into(),
        )),
        None => Err(Refusal::BadCertificate(
            "its CHIP address (chad) has no valid agent".into(),
        )),
    }
}

/// The draft with the partner's certificate in the partner's half.
fn complete_draft(
    draft: &Map<String, Value>,
    partner_side: Side,
    cert: &Value,
) -> Result<TallyRecord, Refusal> {
    let mut map = draft.clone();
    let half = map
        .entry(partner_side.as_str())
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(half) = half.as_object_mut() else {
        return Err(Refusal::Sign(
            "the draft's partner half is not an object".into(),
        ));
    };
    half.insert("cert".into(), cert.clone());
    half.entry("terms")
        .or_insert_with(|| Value::Object(Map::new()));
    TallyRecord::from_value(Value::Object(map)).map_err(|e| Refusal::Sign(e.to_string()))
}

/// One half's signature over the record.
fn check_signature(record: &TallyRecord, side: Side) -> Result<(), SignatureProblem> {
    let key = record
        .party(side)
        .public_key()
        .map_err(|e| SignatureProblem::BadKey(key_reason(&e)))?;
    let text = record.signature(side).ok_or(SignatureProblem::Missing)?;
    let signature = TallySignature::from_base64url(text)
        .map_err(|e| SignatureProblem::Malformed(key_reason(&e)))?;
    key.verify(record.signed_message().as_bytes(), &signature)
        .map_err(|_| SignatureProblem::Mismatch)
}

/// An offer to us: one half is ours (our key, our agent, not signed yet),
/// the other is the sender's (its agent) and carries its good signature.
/// Returns our half.
fn check_offer(
    record: &TallyRecord,
    from: AgentId,
    me: &Me<'_>,
    expected: Option<Side>,
) -> Result<Side, Refusal> {
    let bad = |why: &str| Refusal::BadOffer(why.to_owned());
    let mine = me.key.public_key();
    let ours: Vec<Side> = Side::BOTH
        .into_iter()
        .filter(|s| record.party(*s).public_key().ok().as_ref() == Some(&mine))
        .collect();
    let side = match ours.as_slice() {
        [one] => *one,
        [] => {
            return Err(bad(
                "neither half carries this wallet's key: it is not offered to this wallet",
            ));
        }
        _ => return Err(bad("both halves carry this wallet's key")),
    };
    if expected.is_some_and(|e| e != side) {
        return Err(bad("it moves this wallet to the other half of the tally"));
    }
    if cert_agent(record.party(side).cert()) != Some(me.agent) {
        return Err(bad("this wallet's half names another agent"));
    }
    let partner = side.other();
    if cert_agent(record.party(partner).cert()) != Some(from) {
        return Err(bad(
            "the offering half names another agent than the one that sent it",
        ));
    }
    if record.signature(side).is_some() {
        return Err(bad("it already carries a signature for this wallet's half"));
    }
    check_signature(record, partner)
        .map_err(|p| Refusal::BadOffer(format!("the {partner} signature {p}")))?;
    Ok(side)
}

#[cfg(test)]
mod tests;
