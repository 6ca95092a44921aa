//! The life of one chit, in MyCHIPs's state names.
//!
//! MyCHIPs names a chit's state `type.status.request` (`doc/learn-message.md`,
//! "State Codes"; `schema/chits.wms`, `mychips.chit_state`):
//!
//! - `type` is `A` when the chit is an asset of the holder (the partner
//!   issues it: `isdebit` = `ch.issuer != te.tally_type`) and `L` when it is
//!   a liability (the holder issues and signs it);
//! - `status` is `draft`, `pend`, `good` or `void` (`chits.status`);
//! - `request` (optional) is the status the holder asked for and that the
//!   agent has not yet completed by sending the message (`chits.request`).
//!
//! The reachable states and what moves a chit between them, from the agent
//! handlers of `lib/chit.js` (the `context` lists are the states a message
//! may act on) and the triggers of `schema/chits.wms` (`request = 'good'`
//! sets `status = 'pend'`, `request = 'pend'` sets `status = 'draft'`):
//!
//! ```text
//!  invoice (payee)                              payment (payer)
//!  ───────────────                              ───────────────
//!  none ─invoice─> A.draft.pend ─sent─> A.pend   none ─pay─> L.pend.good ─sent─> L.good
//!  A.void ─invoice (resubmit)─> A.draft.pend
//!  A.pend ─received void─> A.void                received invoice:
//!  none | A.pend ─received good─> A.good         none | L.void ─received pend─> L.pend
//!                                                L.pend ─approve─> L.pend.good ─sent─> L.good
//!                                                L.pend ─reject─> L.pend.void ─sent─> L.void
//!
//!  recovery: none | L.pend | L.pend.void | L.void ─received own─> L.good
//! ```
//!
//! Notch also lets a good chit replace `A.void` and `A.draft.pend` (MyCHIPs's
//! `remote.good` context is only `['null','A.pend']`): a chit the partner
//! signed binds the partner whatever we thought of the invoice, and the
//! protocol says each side must "recognize, accept and store a duly signed
//! and valid chit received from the other" (`doc/learn-protocol.md`).
//!
//! Two more departures, both about chits MyCHIPs would also end up holding:
//! `ReceivedOwn` takes back a chit signed with our own key that the foil's
//! chain holds but we lost (an older backup restored; MyCHIPs's `upd`
//! processor inserts any chit it lacks as `good`), and the ledger
//! ([`super::ChitLedger`]) tells a resubmitted invoice from a replayed one
//! by its content: MyCHIPs's `remote.pend` context `['null','L.void']`
//! would let a replay of a refused invoice reopen it.
//!
//! [`transition`] is the pure function; the ledger
//! ([`super::ChitLedger`]) runs it, turns its effects into messages and rows,
//! and links good chits into the chain.

use std::fmt;

/// Whose obligation a chit is, seen from the holder of this half of the
/// tally: MyCHIPs's `A`/`L` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// `A`: the partner issues (and signs) the chit; it is owed to us.
    Asset,
    /// `L`: we issue (and sign) the chit; we owe it.
    Liability,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Asset => "A",
            Direction::Liability => "L",
        }
    }
}

/// `chits.status` in MyCHIPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChitStatus {
    /// Being drafted by the holder (an invoice not yet sent).
    Draft,
    /// Sent or received, waiting for the other party (an invoice), or
    /// signed but not yet delivered (a payment).
    Pend,
    /// Signed by its issuer and delivered: binding.
    Good,
    /// Refused.
    Void,
}

impl ChitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChitStatus::Draft => "draft",
            ChitStatus::Pend => "pend",
            ChitStatus::Good => "good",
            ChitStatus::Void => "void",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "draft" => Some(ChitStatus::Draft),
            "pend" => Some(ChitStatus::Pend),
            "good" => Some(ChitStatus::Good),
            "void" => Some(ChitStatus::Void),
            _ => None,
        }
    }
}

/// `chits.request` in MyCHIPs: the status the holder asked for, which the
/// agent completes once the message announcing it has been sent. The same
/// three words are the `action` of chit messages ([`super::ChitAction`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChitRequest {
    Pend,
    Good,
    Void,
}

impl ChitRequest {
    pub fn as_str(self) -> &'static str {
        match self {
            ChitRequest::Pend => "pend",
            ChitRequest::Good => "good",
            ChitRequest::Void => "void",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pend" => Some(ChitRequest::Pend),
            "good" => Some(ChitRequest::Good),
            "void" => Some(ChitRequest::Void),
            _ => None,
        }
    }

    /// The status the request asks for.
    pub fn status(self) -> ChitStatus {
        match self {
            ChitRequest::Pend => ChitStatus::Pend,
            ChitRequest::Good => ChitStatus::Good,
            ChitRequest::Void => ChitStatus::Void,
        }
    }
}

/// A chit's state: MyCHIPs's `type.status.request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChitState {
    pub direction: Direction,
    pub status: ChitStatus,
    pub request: Option<ChitRequest>,
}

impl ChitState {
    /// The nine states a chit can be in (see the module docs).
    pub const ALL: [ChitState; 9] = [
        ChitState::new(Direction::Asset, ChitStatus::Draft, Some(ChitRequest::Pend)),
        ChitState::new(Direction::Asset, ChitStatus::Pend, None),
        ChitState::new(Direction::Asset, ChitStatus::Void, None),
        ChitState::new(Direction::Asset, ChitStatus::Good, None),
        ChitState::new(Direction::Liability, ChitStatus::Pend, None),
        ChitState::new(
            Direction::Liability,
            ChitStatus::Pend,
            Some(ChitRequest::Good),
        ),
        ChitState::new(
            Direction::Liability,
            ChitStatus::Pend,
            Some(ChitRequest::Void),
        ),
        ChitState::new(Direction::Liability, ChitStatus::Good, None),
        ChitState::new(Direction::Liability, ChitStatus::Void, None),
    ];

    pub const fn new(
        direction: Direction,
        status: ChitStatus,
        request: Option<ChitRequest>,
    ) -> Self {
        Self {
            direction,
            status,
            request,
        }
    }

    /// MyCHIPs's state code, e.g. `"A.draft.pend"`, `"L.good"`.
    pub fn code(&self) -> String {
        match self.request {
            Some(request) => format!(
                "{}.{}.{}",
                self.direction.as_str(),
                self.status.as_str(),
                request.as_str()
            ),
            None => format!("{}.{}", self.direction.as_str(), self.status.as_str()),
        }
    }

    /// Reads a state code; only the states in [`ChitState::ALL`] are
    /// accepted (a stored row with any other code is damaged).
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.code() == code)
    }

    /// The chit is signed by its issuer and counts as binding for the
    /// issuer: delivered (`good`) or signed and waiting to be sent
    /// (`L.pend.good`). Only these chits are linked into the chain.
    pub fn is_signed(&self) -> bool {
        self.status == ChitStatus::Good || self.request == Some(ChitRequest::Good)
    }

    /// MyCHIPs's `action` flag: the holder is asked to decide (an invoice
    /// to approve or reject: `L.pend`).
    pub fn needs_action(&self) -> bool {
        *self == ChitState::new(Direction::Liability, ChitStatus::Pend, None)
    }
}

impl fmt::Display for ChitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

/// Something that happens to one chit: a local action or a received chit
/// message (its `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChitEvent {
    /// The holder drafts an invoice (a chit the partner is to sign) or
    /// resubmits one the partner refused.
    Invoice,
    /// The holder signs a new chit of its own: a direct payment or a
    /// setting.
    Pay,
    /// The holder signs an invoice the partner sent.
    Approve,
    /// The holder refuses an invoice the partner sent.
    Reject,
    /// The message asked for by the chit's request has been sent.
    Sent,
    /// The partner sent an invoice (`action: "pend"`).
    ReceivedPend,
    /// The partner refused our invoice (`action: "void"`).
    ReceivedVoid,
    /// The partner sent a chit it signed (`action: "good"`).
    ReceivedGood,
    /// The foil's chain holds a chit signed with *our* key that we do not
    /// hold as signed: we signed it and lost it (an older backup restored).
    /// Our own signature proves it, so it is ours again (`L.good`).
    ReceivedOwn,
}

impl ChitEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            ChitEvent::Invoice => "invoice",
            ChitEvent::Pay => "pay",
            ChitEvent::Approve => "approve",
            ChitEvent::Reject => "reject",
            ChitEvent::Sent => "sent",
            ChitEvent::ReceivedPend => "a received invoice (pend)",
            ChitEvent::ReceivedVoid => "a received refusal (void)",
            ChitEvent::ReceivedGood => "a received signed chit (good)",
            ChitEvent::ReceivedOwn => "a chit of ours the partner's chain holds",
        }
    }
}

/// What a transition asks the caller (the ledger) to do besides storing the
/// new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChitEffect {
    /// Send the chit to the partner with this `action`.
    Send(ChitRequest),
    /// The chit is now signed: link it into the chain.
    Link,
    /// Tell the holder (the events stream / notification inbox).
    Notify(ChitNotice),
}

/// What the holder is told about a chit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChitNotice {
    /// The partner asks us to pay (an invoice to approve or reject).
    InvoiceReceived,
    /// The partner refused our invoice.
    InvoiceRefused,
    /// The partner signed a chit to us: a payment, our invoice paid, or a
    /// setting.
    ChitReceived,
}

/// Why an event does not apply to a chit in its current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChitError {
    #[error("{} is not possible for a chit in state {}", event.as_str(), state.map_or_else(|| "none (no such chit)".to_owned(), |s| s.code()))]
    NotAllowed {
        state: Option<ChitState>,
        event: ChitEvent,
    },
}

/// The chit state machine: from `state` (`None`: no such chit yet), what
/// `event` leads to, and what must be done about it.
pub fn transition(
    state: Option<ChitState>,
    event: ChitEvent,
) -> Result<(ChitState, Vec<ChitEffect>), ChitError> {
    use ChitRequest as R;
    use ChitStatus as S;
    use Direction::{Asset as A, Liability as L};
    let st = |d, s, r| ChitState::new(d, s, r);
    let current = state.map(|s| (s.direction, s.status, s.request));
    let next = match (current, event) {
        // The payee drafts (or re-drafts after a refusal) and sends an
        // invoice: lib/chit.js local.pend, context ['A.draft.pend', 'A.void.pend'].
        (None | Some((A, S::Void, None)), ChitEvent::Invoice) => (
            st(A, S::Draft, Some(R::Pend)),
            vec![ChitEffect::Send(R::Pend)],
        ),
        // A direct payment or setting: `request = 'good'` makes the status
        // `pend` and links the chit at once (chits_tf_seq → chit_goodcheck).
        (None, ChitEvent::Pay) => (
            st(L, S::Pend, Some(R::Good)),
            vec![ChitEffect::Send(R::Good), ChitEffect::Link],
        ),
        // The payer signs an invoice: local.good, context ['L.pend.good', …].
        (Some((L, S::Pend, None)), ChitEvent::Approve) => (
            st(L, S::Pend, Some(R::Good)),
            vec![ChitEffect::Send(R::Good), ChitEffect::Link],
        ),
        // The payer refuses an invoice: local.void, context ['L.pend.void'].
        (Some((L, S::Pend, None)), ChitEvent::Reject) => (
            st(L, S::Pend, Some(R::Void)),
            vec![ChitEffect::Send(R::Void)],
        ),
        // The agent sent the message: `update: {status: <request>}`.
        (Some((d, _, Some(request))), ChitEvent::Sent) => (st(d, request.status(), None), vec![]),
        // remote.pend, context ['null', 'L.void'].
        (None | Some((L, S::Void, None)), ChitEvent::ReceivedPend) => (
            st(L, S::Pend, None),
            vec![ChitEffect::Notify(ChitNotice::InvoiceReceived)],
        ),
        // remote.void, context ['A.pend'].
        (Some((A, S::Pend, None)), ChitEvent::ReceivedVoid) => (
            st(A, S::Void, None),
            vec![ChitEffect::Notify(ChitNotice::InvoiceRefused)],
        ),
        // remote.good, context ['null', 'A.pend'], widened (module docs).
        (
            None
            | Some((A, S::Pend, None))
            | Some((A, S::Void, None))
            | Some((A, S::Draft, Some(R::Pend))),
            ChitEvent::ReceivedGood,
        ) => (
            st(A, S::Good, None),
            vec![
                ChitEffect::Link,
                ChitEffect::Notify(ChitNotice::ChitReceived),
            ],
        ),
        // Not in MyCHIPs (its upd processor inserts any missing chit as
        // 'good'): our own signature, returned by the foil.
        (
            None
            | Some((L, S::Pend, None))
            | Some((L, S::Pend, Some(R::Void)))
            | Some((L, S::Void, None)),
            ChitEvent::ReceivedOwn,
        ) => (st(L, S::Good, None), vec![ChitEffect::Link]),
        _ => return Err(ChitError::NotAllowed { state, event }),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [ChitEvent; 9] = [
        ChitEvent::Invoice,
        ChitEvent::Pay,
        ChitEvent::Approve,
        ChitEvent::Reject,
        ChitEvent::Sent,
        ChitEvent::ReceivedPend,
        ChitEvent::ReceivedVoid,
        ChitEvent::ReceivedGood,
        ChitEvent::ReceivedOwn,
    ];

    fn code(state: Option<ChitState>, event: ChitEvent) -> Option<String> {
        transition(state, event).ok().map(|(s, _)| s.code())
    }

    #[test]
    fn codes_are_mychips_and_round_trip() {
        let codes: Vec<String> = ChitState::ALL.iter().map(ChitState::code).collect();
        assert_eq!(
            codes,
            [
                "A.draft.pend",
                "A.pend",
                "A.void",
                "A.good",
                "L.pend",
                "L.pend.good",
                "L.pend.void",
                "L.good",
                "L.void"
            ]
        );
        for state in ChitState::ALL {
            assert_eq!(ChitState::parse(&state.code()), Some(state));
        }
        assert_eq!(ChitState::parse("A.good.good"), None);
        assert_eq!(ChitState::parse("X.good"), None);
    }

    /// The invoice and payment paths of MyCHIPs's `test/auto/proto/chit.js`,
    /// state by state, on both sides.
    #[test]
    fn invoice_and_payment_paths() {
        // Payee: draft → sent → refused → resubmitted → sent → paid.
        let payee = code(None, ChitEvent::Invoice);
        assert_eq!(payee.as_deref(), Some("A.draft.pend"));
        let a_draft = ChitState::parse("A.draft.pend");
        assert_eq!(code(a_draft, ChitEvent::Sent).as_deref(), Some("A.pend"));
        let a_pend = ChitState::parse("A.pend");
        assert_eq!(
            code(a_pend, ChitEvent::ReceivedVoid).as_deref(),
            Some("A.void")
        );
        let a_void = ChitState::parse("A.void");
        assert_eq!(
            code(a_void, ChitEvent::Invoice).as_deref(),
            Some("A.draft.pend")
        );
        assert_eq!(
            code(a_pend, ChitEvent::ReceivedGood).as_deref(),
            Some("A.good")
        );
        // Payer: received → refused → received again → approved → sent.
        assert_eq!(
            code(None, ChitEvent::ReceivedPend).as_deref(),
            Some("L.pend")
        );
        let l_pend = ChitState::parse("L.pend");
        assert_eq!(
            code(l_pend, ChitEvent::Reject).as_deref(),
            Some("L.pend.void")
        );
        assert_eq!(
            code(ChitState::parse("L.pend.void"), ChitEvent::Sent).as_deref(),
            Some("L.void")
        );
        assert_eq!(
            code(ChitState::parse("L.void"), ChitEvent::ReceivedPend).as_deref(),
            Some("L.pend")
        );
        assert_eq!(
            code(l_pend, ChitEvent::Approve).as_deref(),
            Some("L.pend.good")
        );
        assert_eq!(
            code(ChitState::parse("L.pend.good"), ChitEvent::Sent).as_deref(),
            Some("L.good")
        );
        // A direct payment: chain.js's addChit expects status 'pend' first.
        assert_eq!(code(None, ChitEvent::Pay).as_deref(), Some("L.pend.good"));
        assert_eq!(
            code(None, ChitEvent::ReceivedGood).as_deref(),
            Some("A.good")
        );
    }

    #[test]
    fn signed_chits_are_linked_and_sent() {
        let (state, effects) = transition(None, ChitEvent::Pay).expect("pay");
        assert!(state.is_signed());
        assert_eq!(
            effects,
            [ChitEffect::Send(ChitRequest::Good), ChitEffect::Link]
        );
        let (state, effects) = transition(None, ChitEvent::ReceivedPend).expect("pend");
        assert!(!state.is_signed());
        assert!(state.needs_action());
        assert_eq!(effects, [ChitEffect::Notify(ChitNotice::InvoiceReceived)]);
        let (_, effects) = transition(None, ChitEvent::Invoice).expect("invoice");
        assert_eq!(effects, [ChitEffect::Send(ChitRequest::Pend)]);
    }

    /// Late, repeated or misplaced events are refused (the ledger turns a
    /// refusal of a repeated message into "nothing to do"), and a good chit
    /// never leaves `good`.
    #[test]
    fn everything_else_is_refused() {
        let mut allowed = 0;
        for state in std::iter::once(None).chain(ChitState::ALL.map(Some)) {
            for event in EVENTS {
                match transition(state, event) {
                    Ok((next, _)) => {
                        allowed += 1;
                        if let Some(s) = state {
                            assert_ne!(s.status, ChitStatus::Good, "{s} left good");
                        }
                        assert!(ChitState::ALL.contains(&next));
                    }
                    Err(ChitError::NotAllowed { state: s, event: e }) => {
                        assert_eq!((s, e), (state, event));
                    }
                }
            }
        }
        // The transitions drawn in the module docs, and no others.
        assert_eq!(allowed, 19);
        let error = transition(ChitState::parse("A.good"), ChitEvent::ReceivedVoid)
            .expect_err("void after good");
        assert_eq!(
            error.to_string(),
            "a received refusal (void) is not possible for a chit in state A.good"
        );
    }
}
