//! The CLI's exit codes: one class per kind of failure, decided here and
//! nowhere else by matching notch-core's error enums. Scripts branch on the
//! code; people read the message. `--json` prints the error as one line of
//! JSON on stderr: `{"error":{"class":"…","code":N,"message":"…"}}`.

use std::fmt;
use std::process::ExitCode;

use notch_core::backup::BackupError;
use notch_core::export::ExportError;
use notch_core::gateway::GatewayError;
use notch_core::keys::KeyError;
use notch_core::secrets::SecretStoreError;
use notch_core::tally::TallyVerifyError;
use notch_core::{
    AgentError, ChitApproveError, ChitRejectError, NetworkError, OpenError, PaymentError,
    SendError, SyncError, TallyActionError, TallyError, TallyInvoiceError, TallyPayError,
    TallyScanError, TallyTicketError, UriError, WalletError,
};

/// What kind of failure ended the command; its exit code is [`Class::code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A bug, or the machine failed us (no runtime, stdout closed…).
    Internal,
    /// The command line itself is wrong (clap's own errors use this too).
    Usage,
    /// An address, amount, asset, txid, phrase or payment link that is not
    /// valid.
    BadInput,
    /// Not enough of an asset for the payment.
    InsufficientFunds,
    /// The gateway cannot be reached or cannot serve now, or the wallet is
    /// not synced yet: trying again later may work.
    Unreachable,
    /// The gateway's data failed verification, its keys changed, or it is
    /// not the gateway (network) the wallet expects: do not trust it.
    Untrusted,
    /// No wallet, a wallet already there, its database, or the keystore.
    Wallet,
    /// The gateway refused the request (a payment, typically).
    Refused,
    /// The person answered no at a confirmation prompt.
    Cancelled,
}

/// The table in `notch --help` (and README.md): keep the two equal.
pub const TABLE: &str = "\
Exit codes (with --json, an error is one line on stderr:
{\"error\":{\"class\":CLASS,\"code\":N,\"message\":TEXT}}):
  0  ok
  1  internal             a bug or a local failure (stdout closed, no runtime)
  2  usage                the command line is wrong
  3  bad_input            an address, amount, asset, txid, phrase, link or ticket is
                          not valid, or a tally cannot do that now
  4  insufficient_funds   not enough of an asset for the payment
  5  gateway_unreachable  the gateway does not answer or cannot serve now, or the
                          wallet has not synced yet: try again later
  6  untrusted            the gateway's data failed verification, its key or
                          metadata changed, or it serves another network; a
                          tally's signature does not verify
  7  wallet               no wallet, a wallet already there, its database, the keystore
  8  refused              the gateway refused the request, or a ticket's issuer
                          refused the ticket
  9  cancelled            you said no at the confirmation prompt";

impl Class {
    #[cfg(test)]
    pub const ALL: [Class; 9] = [
        Class::Internal,
        Class::Usage,
        Class::BadInput,
        Class::InsufficientFunds,
        Class::Unreachable,
        Class::Untrusted,
        Class::Wallet,
        Class::Refused,
        Class::Cancelled,
    ];

    pub fn code(self) -> u8 {
        match self {
            Class::Internal => 1,
            Class::Usage => 2,
            Class::BadInput => 3,
            Class::InsufficientFunds => 4,
            Class::Unreachable => 5,
            Class::Untrusted => 6,
            Class::Wallet => 7,
            Class::Refused => 8,
            Class::Cancelled => 9,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Internal => "internal",
            Class::Usage => "usage",
            Class::BadInput => "bad_input",
            Class::InsufficientFunds => "insufficient_funds",
            Class::Unreachable => "gateway_unreachable",
            Class::Untrusted => "untrusted",
            Class::Wallet => "wallet",
            Class::Refused => "refused",
            Class::Cancelled => "cancelled",
        }
    }
}

/// A failed command: its class and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub class: Class,
    pub message: String,
}

impl CliError {
    pub fn new(class: Class, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Class::Usage, message)
    }

    pub fn internal(message: impl fmt::Display) -> Self {
        Self::new(Class::Internal, message.to_string())
    }

    /// The same class, the message after `context: `.
    pub fn context(self, context: &str) -> Self {
        Self::new(self.class, format!("{context}: {}", self.message))
    }

    /// Prints the error on stderr (one line; JSON with `json`) and gives
    /// the exit code.
    pub fn report(&self, json: bool) -> ExitCode {
        let message = self.message.replace(['\n', '\r'], " ");
        if json {
            let line = serde_json::json!({
                "error": {
                    "class": self.class.name(),
                    "code": self.class.code(),
                    "message": message,
                }
            });
            eprintln!("{line}");
        } else {
            eprintln!("notch: {message}");
        }
        ExitCode::from(self.class.code())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn err(class: Class, e: impl fmt::Display) -> CliError {
    CliError::new(class, e.to_string())
}

pub fn gateway_class(e: &GatewayError) -> Class {
    match e {
        GatewayError::BadUrl { .. } | GatewayError::InsecureUrl { .. } => Class::Usage,
        GatewayError::Unreachable { .. } | GatewayError::Unavailable(_) => Class::Unreachable,
        GatewayError::Refused(_) => Class::Refused,
        GatewayError::BadResponse(_) => Class::Untrusted,
    }
}

fn key_class(e: &KeyError) -> Class {
    match e {
        KeyError::WrongWordCount { .. }
        | KeyError::UnknownWord { .. }
        | KeyError::BadChecksum
        | KeyError::BadPhrase(_) => Class::BadInput,
        KeyError::BadStoredSecret(_) => Class::Wallet,
        _ => Class::Internal,
    }
}

impl From<GatewayError> for CliError {
    fn from(e: GatewayError) -> Self {
        err(gateway_class(&e), e)
    }
}

impl From<KeyError> for CliError {
    fn from(e: KeyError) -> Self {
        err(key_class(&e), e)
    }
}

impl From<SecretStoreError> for CliError {
    fn from(e: SecretStoreError) -> Self {
        err(Class::Wallet, e)
    }
}

impl From<OpenError> for CliError {
    fn from(e: OpenError) -> Self {
        let class = match &e {
            OpenError::WalletExists { .. }
            | OpenError::NoWallet { .. }
            | OpenError::DataDir { .. }
            | OpenError::WrongNetwork { .. }
            | OpenError::SecretMissing { .. }
            | OpenError::SecretStore(_)
            | OpenError::Store(_) => Class::Wallet,
            OpenError::Key(k) => key_class(k),
            OpenError::Gateway(g) => gateway_class(g),
        };
        err(class, e)
    }
}

impl From<WalletError> for CliError {
    fn from(e: WalletError) -> Self {
        let class = match &e {
            WalletError::UnknownTransaction { .. }
            | WalletError::BadTxid(_)
            | WalletError::UnknownNotification(_)
            | WalletError::CannotAbandon { .. } => Class::BadInput,
            WalletError::Key(k) => key_class(k),
            WalletError::Store(_) => Class::Wallet,
        };
        err(class, e)
    }
}

impl From<SendError> for CliError {
    fn from(e: SendError) -> Self {
        let class = match &e {
            SendError::NoRecipients
            | SendError::BadAddress { .. }
            | SendError::WrongNetwork { .. }
            | SendError::BadAmount { .. }
            | SendError::UnknownAsset(..)
            | SendError::TooManyOutputs { .. }
            | SendError::TooLarge { .. } => Class::BadInput,
            SendError::InsufficientFunds { .. } => Class::InsufficientFunds,
            SendError::NotSynced | SendError::StaleProposal(_) => Class::Unreachable,
            SendError::Rejected { .. } => Class::Refused,
            SendError::Invalid(_) => Class::Internal,
            SendError::Key(k) => key_class(k),
            SendError::Store(_) => Class::Wallet,
            SendError::Gateway(g) => gateway_class(g),
        };
        err(class, e)
    }
}

impl From<SyncError> for CliError {
    fn from(e: SyncError) -> Self {
        let class = match &e {
            SyncError::Gateway(g) => gateway_class(g),
            SyncError::WrongNetwork { .. }
            | SyncError::AuthorityChanged { .. }
            | SyncError::LedgerChanged { .. }
            | SyncError::Verification { .. }
            | SyncError::ReorgTooDeep { .. } => Class::Untrusted,
            SyncError::ChainUnstable => Class::Unreachable,
            SyncError::Store(_) => Class::Wallet,
        };
        err(class, e)
    }
}

impl From<NetworkError> for CliError {
    fn from(e: NetworkError) -> Self {
        let class = match &e {
            NetworkError::Unknown { .. } => Class::Usage,
            NetworkError::StoredDiffers { .. } => Class::Wallet,
            NetworkError::UnknownServed { .. } | NetworkError::Mismatch { .. } => Class::Untrusted,
            NetworkError::Undetermined { .. } => Class::Unreachable,
        };
        err(class, e)
    }
}

impl From<UriError> for CliError {
    fn from(e: UriError) -> Self {
        err(Class::BadInput, e)
    }
}

impl From<PaymentError> for CliError {
    fn from(e: PaymentError) -> Self {
        let class = match &e {
            PaymentError::NotSynced => Class::Unreachable,
            PaymentError::UnknownAsset { .. } | PaymentError::BadAmount(_) => Class::BadInput,
        };
        err(class, e)
    }
}

impl From<BackupError> for CliError {
    fn from(e: BackupError) -> Self {
        let class = match &e {
            BackupError::NoRandomness(_) => Class::Internal,
            _ => Class::BadInput,
        };
        err(class, e)
    }
}

impl From<ExportError> for CliError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Wallet(w) => w.into(),
            other => err(Class::Internal, other),
        }
    }
}

impl From<TallyTicketError> for CliError {
    fn from(e: TallyTicketError) -> Self {
        let class = match &e {
            TallyTicketError::NoAgentAddress => Class::Usage,
            TallyTicketError::BadOptions(_) | TallyTicketError::Ticket(_) => Class::BadInput,
            TallyTicketError::Key(k) => key_class(k),
            TallyTicketError::Store(_) => Class::Wallet,
        };
        err(class, e)
    }
}

impl From<TallyScanError> for CliError {
    fn from(e: TallyScanError) -> Self {
        let class = match &e {
            TallyScanError::Ticket(_) | TallyScanError::Image(_) | TallyScanError::OwnTicket => {
                Class::BadInput
            }
            TallyScanError::Refused { .. } => Class::Refused,
            TallyScanError::BadOffer(_) | TallyScanError::Handshake(_) => Class::Untrusted,
            TallyScanError::Key(k) => key_class(k),
            TallyScanError::Store(_) => Class::Wallet,
        };
        err(class, e)
    }
}

impl From<TallyError> for CliError {
    fn from(e: TallyError) -> Self {
        let class = match &e {
            TallyError::UnknownTally(_) => Class::BadInput,
            TallyError::Key(k) => key_class(k),
            TallyError::Store(_) => Class::Wallet,
        };
        err(class, e)
    }
}

impl From<TallyActionError> for CliError {
    fn from(e: TallyActionError) -> Self {
        let class = match &e {
            TallyActionError::UnknownTally(_) | TallyActionError::NotNow(_) => Class::BadInput,
            TallyActionError::Key(k) => key_class(k),
            TallyActionError::Store(_) => Class::Wallet,
        };
        err(class, e)
    }
}

// Chits: everything the person can get wrong or that the tally's state (or
// its credit limit) does not allow now is bad input (3); the keystore and the
// database are the wallet's (7).
impl From<TallyPayError> for CliError {
    fn from(e: TallyPayError) -> Self {
        let class = match &e {
            TallyPayError::Key(k) => key_class(k),
            TallyPayError::Store(_) => Class::Wallet,
            _ => Class::BadInput,
        };
        err(class, e)
    }
}

impl From<TallyInvoiceError> for CliError {
    fn from(e: TallyInvoiceError) -> Self {
        let class = match &e {
            TallyInvoiceError::Key(k) => key_class(k),
            TallyInvoiceError::Store(_) => Class::Wallet,
            _ => Class::BadInput,
        };
        err(class, e)
    }
}

impl From<ChitApproveError> for CliError {
    fn from(e: ChitApproveError) -> Self {
        let class = match &e {
            ChitApproveError::Key(k) => key_class(k),
            ChitApproveError::Store(_) => Class::Wallet,
            _ => Class::BadInput,
        };
        err(class, e)
    }
}

impl From<notch_core::agent::TallySettingError> for CliError {
    fn from(e: notch_core::agent::TallySettingError) -> Self {
        use notch_core::agent::TallySettingError as E;
        let class = match &e {
            E::Key(k) => key_class(k),
            E::Store(_) => Class::Wallet,
            _ => Class::BadInput,
        };
        err(class, e)
    }
}

impl From<ChitRejectError> for CliError {
    fn from(e: ChitRejectError) -> Self {
        let class = match &e {
            ChitRejectError::Key(k) => key_class(k),
            ChitRejectError::Store(_) => Class::Wallet,
            _ => Class::BadInput,
        };
        err(class, e)
    }
}

impl From<AgentError> for CliError {
    fn from(e: AgentError) -> Self {
        let class = match &e {
            AgentError::Bind { .. } => Class::Internal,
            AgentError::NeedHost { .. } | AgentError::BadAddress { .. } => Class::Usage,
            AgentError::Relay {
                reason: notch_core::RelayError::Address(_),
                ..
            } => Class::Usage,
            AgentError::Relay { .. } => Class::Unreachable,
            AgentError::Key(k) => key_class(k),
            AgentError::Store(_) => Class::Wallet,
        };
        err(class, e)
    }
}

/// A tally file that is not a tally is bad input; one whose signatures do
/// not verify is not to be trusted.
impl From<TallyVerifyError> for CliError {
    fn from(e: TallyVerifyError) -> Self {
        let class = match &e {
            TallyVerifyError::Record(_) => Class::BadInput,
            TallyVerifyError::Signatures { .. } => Class::Untrusted,
        };
        err(class, e)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        err(Class::Internal, e)
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        err(Class::Internal, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_in_the_help_table() {
        let mut codes: Vec<u8> = Class::ALL.iter().map(|c| c.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Class::ALL.len());
        for c in Class::ALL {
            let line = format!("  {}  {}", c.code(), c.name());
            assert!(TABLE.contains(&line), "{line:?} missing from the table");
        }
        // Clap's own usage errors exit with 2 as well.
        assert_eq!(Class::Usage.code(), 2);
    }

    #[test]
    fn the_readme_lists_the_same_table() {
        let readme = include_str!("../../README.md");
        for c in Class::ALL {
            let row = format!("| {} | `{}` |", c.code(), c.name());
            assert!(readme.contains(&row), "README.md lacks {row:?}");
        }
    }

    #[test]
    fn core_errors_fall_into_their_classes() {
        let unreachable = GatewayError::Unreachable {
            url: "u".into(),
            reason: "r".into(),
        };
        assert_eq!(CliError::from(unreachable).class, Class::Unreachable);
        assert_eq!(
            CliError::from(SendError::InsufficientFunds {
                symbol: "NOTE".into(),
                have: "1".into(),
                need: "2".into()
            })
            .class,
            Class::InsufficientFunds
        );
        assert_eq!(
            CliError::from(SyncError::Verification { what: "x".into() }).class,
            Class::Untrusted
        );
        assert_eq!(
            CliError::from(OpenError::NoWallet { path: "p".into() }).class,
            Class::Wallet
        );
        assert_eq!(
            CliError::from(OpenError::Key(KeyError::BadChecksum)).class,
            Class::BadInput
        );
        assert_eq!(
            CliError::from(SendError::Rejected {
                code: "c".into(),
                message: "m".into()
            })
            .class,
            Class::Refused
        );
        assert_eq!(
            CliError::from(WalletError::BadTxid("x".into())).class,
            Class::BadInput
        );
        assert_eq!(
            CliError::from(NetworkError::Unknown { name: "x".into() }).class,
            Class::Usage
        );
    }
}
