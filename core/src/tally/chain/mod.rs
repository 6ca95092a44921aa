//! The chit logic of a tally, pure: chit states, the hash chain and the
//! consensus between stock and foil, balances and credit limits. No store,
//! no network: the caller persists the change sets and sends the messages.
//!
//! - [`state`]: one chit's life in MyCHIPs's state names (`A.pend`,
//!   `L.pend.good`, …) and the pure [`transition`] function;
//! - [`message`]: the chit (`pend`/`good`/`void`) and consensus
//!   (`chain` + `upd`/`req`/`err`) messages, in MyCHIPs's JSON shapes;
//! - [`ledger`]: [`ChitLedger`], one half of a tally's chits, which applies
//!   local actions and received messages and keeps the chain in step with
//!   the other half (the foil orders, the stock conforms);
//! - [`balance`]: balances in milliCHIPs and the credit limits checked
//!   before signing.
//!
//! The chain hashes themselves are [`super::chit::chain_hash`].

pub mod balance;
pub mod ledger;
pub mod message;
pub mod state;

pub use balance::{
    AwayFromZero, Balance, CloseState, CreditLimit, LimitProblem, MILLI_PER_CHIP, OverLimit,
    SettingProblem, check_settings, check_toward_zero, limit_value, parse_limit,
};
pub use ledger::{
    ApplyError, ApproveError, ChitChangeSet, ChitLedger, ChitOutcome, ChitRow, ChitTotals,
    Consensus, Ignored, InvoiceError, IssueError, LedgerNotice, RejectError, RestoreError,
    SentError, message_needs,
};
pub use message::{
    ChitAction, ChitMessage, LinkedChit, MAX_UPDATE_CHITS, MessageError, UPDATE_CHIT_BYTES,
};
pub use state::{
    ChitEffect, ChitError, ChitEvent, ChitNotice, ChitRequest, ChitState, ChitStatus, Direction,
    transition,
};
