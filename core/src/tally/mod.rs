//! Tallies and chits, in MyCHIPs's own formats (records, canonical JSON,
//! ECDSA P-521 signatures, the chit hash chain, the encrypted sign key).
//!
//! Notch must read what MyCHIPs writes and write what MyCHIPs reads, down
//! to the byte, because every record is signed: a tally by both parties, a
//! chit by its issuer. So this module follows MyCHIPs's sources rather than
//! designing its own format:
//!
//! - [`canonical`]: the serializations MyCHIPs signs and hashes
//!   (json-stable-stringify, and PL/Python's `json.dumps` for database
//!   hashes), and the one strict parser for outside JSON;
//! - [`record`]: the tally record ([`TallyRecord`]), its signatures and
//!   hash, [`verify_tally_json`] (what `notch tally verify FILE` runs), and
//!   what tallies and chits share ([`Side`], errors);
//! - [`chit`]: the chit record ([`ChitRecord`]), its signature and hash,
//!   and the pure functions of the chit chain ([`chain_hash`],
//!   [`next_link`]) that the consensus state machine builds on;
//! - [`chips`]: amounts in CHIPs as people write them ⇄ milliCHIPs;
//! - [`signkey`]: export and import of the signing key in MyCHIPs's
//!   passphrase-encrypted `signkey` format;
//! - [`chain`]: chits between two parties: chit states, the hash chain the
//!   foil orders and the consensus messages that make both ends converge,
//!   balances and credit limits (pure; the agent persists and sends);
//! - [`lifecycle`]: the tally state machine (ticket → offer → open, in
//!   MyCHIPs's state names), pure; the agent (`crate::agent`) applies it.
//!
//! The key itself (derivation from the recovery phrase, the two crypto
//! backends) is [`crate::keys::TallyKey`].
//!
//! **Design rule.** Signatures and hashes are computed over the JSON as
//! received, never over a re-serialized Rust struct: records keep their
//! parsed JSON object, typed accessors only read it, and builders produce
//! the same kind of object. Members Notch does not know survive untouched.
//! Outside input never panics: every problem is a typed error that says
//! which member, or which signature, is wrong.

pub mod canonical;
pub mod chain;
pub mod chips;
pub mod chit;
pub mod lifecycle;
pub mod record;
pub mod signkey;

pub use canonical::{JsonError, parse_json, stable_stringify};
pub use chain::{
    ApplyError, ApproveError, Balance, ChitAction, ChitChangeSet, ChitLedger, ChitMessage,
    ChitOutcome, ChitRow, ChitState, ChitStatus, Consensus, CreditLimit, Direction, Ignored,
    InvoiceError, IssueError, LedgerNotice, MessageError, RejectError, RestoreError, SentError,
};
pub use chips::{ChipsError, ChipsProblem, format_chips, format_signed_chips, parse_chips};
pub use chit::{
    CHIT_SIGNED_FIELDS, ChainLink, ChitBuilder, ChitRecord, ChitSignError, ChitType,
    ChitVerifyError, VerifiedChit, chain_genesis, chain_hash, next_link, verify_chit_json,
};
pub use record::{
    Party, RecordError, RecordKind, Side, SignatureProblem, TallyBuilder, TallyRecord,
    TallySignError, TallyVerifyError, VerifiedTally, format_date, verify_tally_json,
};
pub use signkey::{SignKeyExportError, SignKeyImportError, export_signkey, import_signkey};
