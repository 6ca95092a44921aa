//! The transaction state machine: the only place that decides how a
//! transaction of the wallet moves between states.
//!
//! ```text
//!            accepted        in pool          verified block      finality
//!  Queued ───────────> Accepted ───> InPool ──────────────> Confirmed ─────> Final
//!    │  └──────────────────┴──────────┘ ^          <────────────┘
//!    │  gateway says rejected/dropped   │   block rolled back by a longer
//!    v  (coins stay reserved)           │   verified chain (never from Final)
//!  Rejected / Dropped ──────────────────┘ seen again / in a verified block
//!    │
//!    ├─ a conflicting spend in a verified block ─> Dropped, coins released
//!    └─ the person abandons it ─────────────────> Abandoned, coins released
//! ```
//!
//! What the gateway *says* (accepted, in pool, rejected, dropped, not found)
//! can move a transaction only among the unconfirmed states, and never
//! releases the coins it spends: a signed transaction the gateway calls
//! rejected may still confirm, and spending its coins again would pay twice.
//! Only proof (a verified block) confirms, rolls back or drops for good;
//! only the person abandons.
//!
//! [`transition`] is pure; [`apply`] runs it against the store inside the
//! caller's database transaction, and is what sync, sends and the wallet
//! facade call.

use crate::store::{Hash32, StoreError, StoreTx, TxState};

/// Something that happened to a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxEvent {
    /// The gateway answered a submission or status query with "accepted".
    GatewayAccepted,
    /// Seen in the gateway's pool (mempool delta or status answer).
    SeenInPool,
    /// In a verified block of the best chain.
    InVerifiedBlock,
    /// Its block left the best chain for a longer verified one.
    BlockRolledBack,
    /// Its block is `finality_depth` deep.
    ReachedFinality,
    /// The gateway says it refused it (a claim, not proof).
    GatewayRejected,
    /// The gateway says it left the pool or does not know it (a claim).
    GatewayDropped,
    /// A verified block holds another transaction spending the same coins,
    /// or one of the coins it spends can never exist (proof).
    ConflictConfirmed,
    /// The person gave it up on purpose.
    Abandoned,
}

/// What happens to the coins a transaction spends (its inputs' locks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coins {
    /// Left as they are (reserved by this transaction).
    Keep,
    /// Made spendable again: the transaction can never spend them.
    Release,
}

/// The outcome of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The state does not change (already there, or a claim that a state
    /// based on proof outranks).
    Stay,
    /// Moves to `to`.
    Move { to: TxState, coins: Coins },
}

/// Why an event cannot apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a final transaction cannot change state ({0:?})")]
    Final(TxEvent),
    #[error("a {from} transaction cannot be {event:?}")]
    NotAllowed { from: TxState, event: TxEvent },
}

/// The state machine. `from` is the current state.
pub fn transition(from: TxState, event: TxEvent) -> Result<Transition, Refused> {
    use Coins::*;
    use TxEvent as E;
    use TxState as S;
    let to = |to, coins| Ok(Transition::Move { to, coins });
    match (from, event) {
        // Final means final.
        (S::Final, E::InVerifiedBlock | E::ReachedFinality) => Ok(Transition::Stay),
        (S::Final, e) if is_claim(e) => Ok(Transition::Stay),
        (S::Final, e) => Err(Refused::Final(e)),

        // In a block: only blocks move it.
        (S::Confirmed, E::ReachedFinality) => to(S::Final, Keep),
        (S::Confirmed, E::BlockRolledBack) => to(S::InPool, Keep),
        (S::Confirmed, E::InVerifiedBlock) => Ok(Transition::Stay),
        (S::Confirmed, e) if is_claim(e) => Ok(Transition::Stay),
        (S::Confirmed, e) => Err(Refused::NotAllowed { from, event: e }),

        // Anything not in a block may be mined.
        (_, E::InVerifiedBlock) => to(S::Confirmed, Keep),
        (_, E::ReachedFinality | E::BlockRolledBack) => Err(Refused::NotAllowed { from, event }),

        // Given up: only a block brings it back (handled above).
        (
            S::Abandoned,
            E::GatewayAccepted
            | E::SeenInPool
            | E::GatewayRejected
            | E::GatewayDropped
            | E::Abandoned
            | E::ConflictConfirmed,
        ) => Ok(Transition::Stay),

        // Proof that it can never confirm.
        (S::Dropped, E::ConflictConfirmed) => to(S::Dropped, Release),
        (_, E::ConflictConfirmed) => to(S::Dropped, Release),

        // The person gives up a send that did not go through.
        (S::Queued | S::Rejected | S::Dropped, E::Abandoned) => to(S::Abandoned, Release),
        (S::Accepted | S::InPool, E::Abandoned) => Err(Refused::NotAllowed { from, event }),

        // The gateway's word, among unconfirmed states; coins stay reserved.
        (S::Queued, E::GatewayAccepted) => to(S::Accepted, Keep),
        (S::Accepted | S::InPool, E::GatewayAccepted) => Ok(Transition::Stay),
        (S::Rejected | S::Dropped, E::GatewayAccepted) => to(S::Accepted, Keep),
        (S::InPool, E::SeenInPool) => Ok(Transition::Stay),
        (_, E::SeenInPool) => to(S::InPool, Keep),
        (S::Rejected, E::GatewayRejected) | (S::Dropped, E::GatewayDropped) => Ok(Transition::Stay),
        (_, E::GatewayRejected) => to(S::Rejected, Keep),
        (_, E::GatewayDropped) => to(S::Dropped, Keep),
    }
}

/// Events that are only the gateway's word.
fn is_claim(event: TxEvent) -> bool {
    matches!(
        event,
        TxEvent::GatewayAccepted
            | TxEvent::SeenInPool
            | TxEvent::GatewayRejected
            | TxEvent::GatewayDropped
    )
}

/// A change of state that happened, for events and notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    pub txid: Hash32,
    pub from: TxState,
    pub to: TxState,
}

/// Applies `event` to transaction `txid` in the store (inside the caller's
/// transaction). `block` is the block for [`TxEvent::InVerifiedBlock`];
/// `reason` is kept for rejected, dropped and abandoned ones. Returns the
/// change, if any. An unknown transaction or a refused event is an error.
pub fn apply(
    tx: &StoreTx<'_>,
    txid: &Hash32,
    event: TxEvent,
    block: Option<(u64, Hash32)>,
    reason: Option<&str>,
) -> Result<Option<Changed>, StoreError> {
    let record = tx.transaction(txid)?.ok_or_else(|| StoreError::NotFound {
        what: format!("transaction {}", hex::encode(txid)),
    })?;
    // Re-mined in another block of the best chain: same state, new block.
    if event == TxEvent::InVerifiedBlock && record.state.is_in_block() && record.block != block {
        tx.set_transaction_state(txid, record.state, block, None)?;
        return Ok(None);
    }
    match transition(record.state, event)
        .map_err(|e| StoreError::Conflict(format!("{} ({})", e, hex::encode(txid))))?
    {
        Transition::Stay => Ok(None),
        Transition::Move { to, coins } => {
            let keep_reason = if to.is_failed() {
                reason.or(record.reason.as_deref())
            } else {
                None
            };
            let block = if to.is_in_block() {
                block.or(record.block)
            } else {
                None
            };
            tx.set_transaction_state(txid, to, block, keep_reason)?;
            if coins == Coins::Release {
                tx.release_coins(txid)?;
            }
            Ok((to != record.state).then_some(Changed {
                txid: *txid,
                from: record.state,
                to,
            }))
        }
    }
}

/// Applies `event` (a drop: [`TxEvent::GatewayDropped`] or
/// [`TxEvent::ConflictConfirmed`]) to `txid` and to every known transaction
/// that spends one of its outputs: what holds for the parent holds for its
/// children (a child can confirm only if its parent does). Returns the
/// changes.
pub fn apply_with_descendants(
    tx: &StoreTx<'_>,
    txid: &Hash32,
    event: TxEvent,
    reason: &str,
) -> Result<Vec<Changed>, StoreError> {
    let mut changed = Vec::new();
    let mut todo = vec![*txid];
    let mut seen = std::collections::HashSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(record) = tx.transaction(&id)? else {
            continue;
        };
        if record.state.is_in_block() {
            continue;
        }
        for out in tx.outputs_of(&id)? {
            if let Some(child) = out.spent_by.or(out.locked_by) {
                todo.push(child);
            }
        }
        let why = if id == *txid {
            reason.to_owned()
        } else {
            format!("{reason} (it spends coins of {})", hex::encode(txid))
        };
        match apply(tx, &id, event, None, Some(&why)) {
            Ok(Some(c)) => changed.push(c),
            Ok(None) => {}
            // A descendant the event does not apply to keeps its state
            // (its parent's outputs no longer count either way).
            Err(StoreError::Conflict(_)) if id != *txid => {}
            Err(e) => return Err(e),
        }
    }
    Ok(changed)
}

/// A reorg to `fork` (proven by the caller: a longer verified chain, not
/// deeper than finality): every transaction in a block above it goes back to
/// the pool, then the headers above it go. A final transaction above the
/// fork makes the whole roll-back fail.
pub fn roll_back(tx: &StoreTx<'_>, fork: u64) -> Result<Vec<Changed>, StoreError> {
    let mut changed = Vec::new();
    for record in tx.transactions_above(fork)? {
        if let Some(c) = apply(tx, &record.txid, TxEvent::BlockRolledBack, None, None)? {
            changed.push(c);
        }
    }
    tx.roll_back_to(fork)?;
    Ok(changed)
}

/// Moves the transactions `depth` deep at `tip` to final.
pub fn finalize(tx: &StoreTx<'_>, tip: u64, depth: u64) -> Result<Vec<Changed>, StoreError> {
    let mut changed = Vec::new();
    for id in tx.ready_to_finalize(tip, depth)? {
        if let Some(c) = apply(tx, &id, TxEvent::ReachedFinality, None, None)? {
            changed.push(c);
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const EVENTS: [TxEvent; 9] = [
        TxEvent::GatewayAccepted,
        TxEvent::SeenInPool,
        TxEvent::InVerifiedBlock,
        TxEvent::BlockRolledBack,
        TxEvent::ReachedFinality,
        TxEvent::GatewayRejected,
        TxEvent::GatewayDropped,
        TxEvent::ConflictConfirmed,
        TxEvent::Abandoned,
    ];

    fn state() -> impl Strategy<Value = TxState> {
        proptest::sample::select(TxState::ALL.to_vec())
    }

    fn event() -> impl Strategy<Value = TxEvent> {
        proptest::sample::select(EVENTS.to_vec())
    }

    fn step(s: TxState, e: TxEvent) -> TxState {
        match transition(s, e) {
            Ok(Transition::Move { to, .. }) => to,
            _ => s,
        }
    }

    proptest! {
        /// Final is absorbing: no sequence of events leaves it.
        #[test]
        fn final_means_final(events in proptest::collection::vec(event(), 0..40)) {
            let mut s = TxState::Final;
            for e in events {
                s = step(s, e);
                prop_assert_eq!(s, TxState::Final);
            }
        }

        /// The gateway's word alone never confirms, finalizes, rolls back,
        /// releases coins, or moves anything out of a block.
        #[test]
        fn claims_never_prove(s in state(), e in event()) {
            if is_claim(e) {
                match transition(s, e) {
                    Ok(Transition::Move { to, coins }) => {
                        prop_assert!(!s.is_in_block());
                        prop_assert!(!to.is_in_block());
                        prop_assert_eq!(coins, Coins::Keep);
                        prop_assert_ne!(to, TxState::Abandoned);
                    }
                    Ok(Transition::Stay) => {}
                    Err(_) => prop_assert!(false, "a claim is never an error"),
                }
            }
        }

        /// Coins are released only by proof or by the person, and only by a
        /// move to a failed state.
        #[test]
        fn coins_released_only_for_good(s in state(), e in event()) {
            if let Ok(Transition::Move { to, coins: Coins::Release }) = transition(s, e) {
                prop_assert!(matches!(e, TxEvent::ConflictConfirmed | TxEvent::Abandoned));
                prop_assert!(to.is_failed());
            }
        }

        /// Confirmed only from a verified block; final only from confirmed.
        #[test]
        fn blocks_are_the_only_way_in(s in state(), e in event()) {
            if let Ok(Transition::Move { to, .. }) = transition(s, e) {
                if to == TxState::Confirmed {
                    prop_assert_eq!(e, TxEvent::InVerifiedBlock);
                }
                if to == TxState::Final {
                    prop_assert_eq!((s, e), (TxState::Confirmed, TxEvent::ReachedFinality));
                }
            }
        }

        /// Any reachable state can still end in a block (nothing but Final
        /// refuses a verified block), so a send that confirms late is seen.
        #[test]
        fn a_block_always_wins(events in proptest::collection::vec(event(), 0..40)) {
            let mut s = TxState::Queued;
            for e in events {
                s = step(s, e);
            }
            let after = step(s, TxEvent::InVerifiedBlock);
            prop_assert!(after.is_in_block());
        }
    }

    #[test]
    fn the_usual_paths() {
        let path = |events: &[TxEvent]| events.iter().fold(TxState::Queued, |s, e| step(s, *e));
        use TxEvent::*;
        assert_eq!(
            path(&[
                GatewayAccepted,
                SeenInPool,
                InVerifiedBlock,
                ReachedFinality
            ]),
            TxState::Final
        );
        assert_eq!(path(&[GatewayRejected]), TxState::Rejected);
        assert_eq!(
            path(&[GatewayRejected, InVerifiedBlock]),
            TxState::Confirmed
        );
        assert_eq!(path(&[GatewayDropped, Abandoned]), TxState::Abandoned);
        assert_eq!(
            path(&[SeenInPool, InVerifiedBlock, BlockRolledBack]),
            TxState::InPool
        );
        assert!(transition(TxState::InPool, Abandoned).is_err());
        assert!(transition(TxState::Final, BlockRolledBack).is_err());
        assert_eq!(
            transition(TxState::Rejected, GatewayRejected),
            Ok(Transition::Stay)
        );
    }
}
