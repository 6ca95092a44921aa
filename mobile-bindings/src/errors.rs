//! One error enum per operation group. Each is a uniffi *flat* error: the
//! host gets a typed exception per variant (Kotlin `OpenException.NoWallet`,
//! Swift `OpenError.NoWallet`, Python `OpenError.NoWallet`) whose message is
//! the core's own sentence, written for the person using the wallet.
//!
//! Every enum has `Internal`: the library failed inside (a panic caught on
//! the runtime, a runtime that could not start). Nothing more was done.

use notch_core as core;

use crate::runtime::Internal;

macro_rules! flat_error {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
        #[uniffi(flat_error)]
        pub enum $name {
            $( $(#[$vm])* #[error("{0}")] $variant(String), )*
            /// The library failed inside; nothing more was done.
            #[error("{0}")]
            Internal(String),
        }

        impl Internal for $name {
            fn internal(message: String) -> Self {
                Self::Internal(message)
            }
        }
    };
}

flat_error! {
    /// Why a wallet could not be created, restored or opened.
    OpenError {
        /// The data directory holds a wallet already.
        WalletExists,
        /// The data directory holds no wallet.
        NoWallet,
        /// The data directory cannot be created or used.
        DataDir,
        /// The wallet there is on another network.
        WrongNetwork,
        /// The wallet's secret is not in the secret store.
        SecretMissing,
        /// The secret store failed or refused.
        SecretStore,
        /// The recovery phrase given to restore is not valid.
        BadPhrase,
        /// A setting of the configuration is not valid (word count, network
        /// file, gateway URL).
        BadConfig,
        /// Keys could not be derived (or no randomness).
        Key,
        /// The wallet database failed.
        Store,
    }
}

flat_error! {
    /// Why the wallet's state (addresses, balances, history, notifications)
    /// could not be read or changed.
    WalletError {
        UnknownTransaction,
        BadTxid,
        UnknownNotification,
        CannotAbandon,
        Key,
        Store,
    }
}

flat_error! {
    /// Why a sync pass failed. Nothing unverified was stored.
    SyncError {
        /// The gateway cannot be reached or refused (worth retrying).
        Gateway,
        WrongNetwork,
        /// The gateway's authority key is not the pinned one.
        AuthorityChanged,
        /// The gateway's ledger metadata changed since first contact.
        LedgerChanged,
        /// The gateway served data that failed verification.
        Verification,
        /// The gateway offered a chain that undoes final blocks.
        ReorgTooDeep,
        /// The chain kept changing during the pass (worth retrying).
        ChainUnstable,
        Store,
    }
}

flat_error! {
    /// Why a payment was not prepared or sent.
    SendError {
        NoRecipients,
        BadAddress,
        WrongNetwork,
        BadAmount,
        UnknownAsset,
        InsufficientFunds,
        TooManyOutputs,
        TooLarge,
        NotSynced,
        /// The wallet changed since the payment was prepared (or it was
        /// prepared by another wallet): prepare it again.
        StaleProposal,
        /// The gateway refused the payment; its coins stay reserved.
        Rejected,
        Invalid,
        Key,
        Store,
        Gateway,
    }
}

flat_error! {
    /// Why a ticket could not be issued or the tally profile set.
    TicketError {
        /// The agent never listened anywhere partners can reach.
        NoAgentAddress,
        BadOptions,
        Ticket,
        /// The QR code could not be drawn.
        Qr,
        Key,
        Store,
    }
}

flat_error! {
    /// Why a scanned ticket (text, picture, camera frame) did not lead to a
    /// tally.
    ScanError {
        /// No QR code could be read (not an image, none found, blurred, a
        /// frame of the wrong size).
        Picture,
        /// The code or text is not a tally ticket.
        NotATicket,
        /// A tally ticket with a field that cannot be used.
        BadTicket,
        /// The ticket has expired.
        Expired,
        /// One of this wallet's own tickets.
        OwnTicket,
        /// The issuer refused the ticket.
        Refused,
        /// The issuer offered a tally this wallet cannot take.
        BadOffer,
        /// No secure connection to the issuer's agent.
        Handshake,
        /// The image file could not be read.
        File,
        Key,
        Store,
    }
}

flat_error! {
    /// Why tallies could not be read, accepted or refused.
    TallyError {
        UnknownTally,
        /// The tally is not in a state for this.
        NotNow,
        Key,
        Store,
    }
}

flat_error! {
    /// Why a chit (payment, invoice, approval, rejection, limit, close) was
    /// not made. Nothing was signed.
    ChitError {
        UnknownTally,
        UnknownChit,
        /// The tally is not open.
        NotOpen,
        /// The tally's stored chits are damaged.
        Broken,
        /// A payment or invoice of 0.
        Zero,
        BadMemo,
        /// Past the credit the partner grants.
        OverLimit,
        /// The partner's limit cannot be enforced.
        Limit,
        Closed,
        /// While closing, only chits toward a zero balance.
        Closing,
        AlreadyClosing,
        /// The chit cannot be made now (the reason says why).
        Refused,
        Key,
        Store,
    }
}

flat_error! {
    /// Why the tally agent could not start.
    AgentError {
        Bind,
        NeedHost,
        BadAddress,
        /// The relay (reach-through-relay mode) could not be reached or refused the agent.
        Relay,
        Key,
        Store,
    }
}

impl From<core::OpenError> for OpenError {
    fn from(e: core::OpenError) -> Self {
        use core::OpenError as C;
        let m = e.to_string();
        match e {
            C::WalletExists { .. } => Self::WalletExists(m),
            C::NoWallet { .. } => Self::NoWallet(m),
            C::DataDir { .. } => Self::DataDir(m),
            C::WrongNetwork { .. } => Self::WrongNetwork(m),
            C::SecretMissing { .. } => Self::SecretMissing(m),
            C::SecretStore(_) => Self::SecretStore(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
            C::Gateway(_) => Self::BadConfig(m),
        }
    }
}

impl From<core::WalletError> for WalletError {
    fn from(e: core::WalletError) -> Self {
        use core::WalletError as C;
        let m = e.to_string();
        match e {
            C::UnknownTransaction { .. } => Self::UnknownTransaction(m),
            C::BadTxid(_) => Self::BadTxid(m),
            C::UnknownNotification(_) => Self::UnknownNotification(m),
            C::CannotAbandon { .. } => Self::CannotAbandon(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

impl From<core::SyncError> for SyncError {
    fn from(e: core::SyncError) -> Self {
        use core::SyncError as C;
        let m = e.to_string();
        match e {
            C::Gateway(_) => Self::Gateway(m),
            C::WrongNetwork { .. } => Self::WrongNetwork(m),
            C::AuthorityChanged { .. } => Self::AuthorityChanged(m),
            C::LedgerChanged { .. } => Self::LedgerChanged(m),
            C::Verification { .. } => Self::Verification(m),
            C::ReorgTooDeep { .. } => Self::ReorgTooDeep(m),
            C::ChainUnstable => Self::ChainUnstable(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

impl From<core::SendError> for SendError {
    fn from(e: core::SendError) -> Self {
        use core::SendError as C;
        let m = e.to_string();
        match e {
            C::NoRecipients => Self::NoRecipients(m),
            C::BadAddress { .. } => Self::BadAddress(m),
            C::WrongNetwork { .. } => Self::WrongNetwork(m),
            C::BadAmount { .. } => Self::BadAmount(m),
            C::UnknownAsset(..) => Self::UnknownAsset(m),
            C::InsufficientFunds { .. } => Self::InsufficientFunds(m),
            C::TooManyOutputs { .. } => Self::TooManyOutputs(m),
            C::TooLarge { .. } => Self::TooLarge(m),
            C::NotSynced => Self::NotSynced(m),
            C::StaleProposal(_) => Self::StaleProposal(m),
            C::Rejected { .. } => Self::Rejected(m),
            C::Invalid(_) => Self::Invalid(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
            C::Gateway(_) => Self::Gateway(m),
        }
    }
}

impl From<core::TallyTicketError> for TicketError {
    fn from(e: core::TallyTicketError) -> Self {
        use core::TallyTicketError as C;
        let m = e.to_string();
        match e {
            C::NoAgentAddress => Self::NoAgentAddress(m),
            C::BadOptions(_) => Self::BadOptions(m),
            C::Ticket(_) => Self::Ticket(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

impl From<core::qr::QrError> for TicketError {
    fn from(e: core::qr::QrError) -> Self {
        Self::Qr(e.to_string())
    }
}

impl From<core::TallyError> for TicketError {
    fn from(e: core::TallyError) -> Self {
        use core::TallyError as C;
        let m = e.to_string();
        match e {
            C::UnknownTally(_) => Self::BadOptions(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

impl From<core::ticket::ScanError> for ScanError {
    fn from(e: core::ticket::ScanError) -> Self {
        use core::ticket::ScanError as C;
        let m = e.to_string();
        match e {
            C::Picture(_) => Self::Picture(m),
            C::Expired { .. } => Self::Expired(m),
            C::BadTicket { .. } => Self::BadTicket(m),
            C::NotATicket { .. } => Self::NotATicket(m),
        }
    }
}

impl From<core::ticket::TicketError> for ScanError {
    fn from(e: core::ticket::TicketError) -> Self {
        let m = e.to_string();
        match e {
            core::ticket::TicketError::Expired { .. } => Self::Expired(m),
            e if e.is_ticket_form() => Self::BadTicket(m),
            _ => Self::NotATicket(m),
        }
    }
}

impl From<core::TallyScanError> for ScanError {
    fn from(e: core::TallyScanError) -> Self {
        use core::TallyScanError as C;
        let m = e.to_string();
        match e {
            C::Ticket(t) => t.into(),
            C::Image(s) => s.into(),
            C::OwnTicket => Self::OwnTicket(m),
            C::Refused { .. } => Self::Refused(m),
            C::BadOffer(_) => Self::BadOffer(m),
            C::Handshake(_) => Self::Handshake(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

impl From<core::TallyError> for TallyError {
    fn from(e: core::TallyError) -> Self {
        use core::TallyError as C;
        let m = e.to_string();
        match e {
            C::UnknownTally(_) => Self::UnknownTally(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

impl From<core::TallyActionError> for TallyError {
    fn from(e: core::TallyActionError) -> Self {
        use core::TallyActionError as C;
        let m = e.to_string();
        match e {
            C::UnknownTally(_) => Self::UnknownTally(m),
            C::NotNow(_) => Self::NotNow(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

impl From<core::agent::ChitLoadError> for ChitError {
    fn from(e: core::agent::ChitLoadError) -> Self {
        use core::agent::ChitLoadError as C;
        let m = e.to_string();
        match e {
            C::NotOpen(_) => Self::NotOpen(m),
            C::Broken(_) => Self::Broken(m),
        }
    }
}

impl From<core::TallyPayError> for ChitError {
    fn from(e: core::TallyPayError) -> Self {
        use core::TallyPayError as C;
        let m = e.to_string();
        match e {
            C::UnknownTally(_) => Self::UnknownTally(m),
            C::Load(l) => l.into(),
            C::Zero => Self::Zero(m),
            C::BadMemo => Self::BadMemo(m),
            C::OverLimit(_) => Self::OverLimit(m),
            C::Limit(_) => Self::Limit(m),
            C::Closed => Self::Closed(m),
            C::Closing(_) => Self::Closing(m),
            C::Issue(_) | C::Build(_) => Self::Refused(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

impl From<core::TallyInvoiceError> for ChitError {
    fn from(e: core::TallyInvoiceError) -> Self {
        use core::TallyInvoiceError as C;
        let m = e.to_string();
        match e {
            C::UnknownTally(_) => Self::UnknownTally(m),
            C::Load(l) => l.into(),
            C::Zero => Self::Zero(m),
            C::BadMemo => Self::BadMemo(m),
            C::Invoice(_) | C::Build(_) => Self::Refused(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

impl From<core::ChitApproveError> for ChitError {
    fn from(e: core::ChitApproveError) -> Self {
        use core::ChitApproveError as C;
        let m = e.to_string();
        match e {
            C::UnknownChit(_) => Self::UnknownChit(m),
            C::Load(l) => l.into(),
            C::OverLimit(_) => Self::OverLimit(m),
            C::Limit(_) => Self::Limit(m),
            C::Closed => Self::Closed(m),
            C::Closing(_) => Self::Closing(m),
            C::Approve(_) => Self::Refused(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

impl From<core::ChitRejectError> for ChitError {
    fn from(e: core::ChitRejectError) -> Self {
        use core::ChitRejectError as C;
        let m = e.to_string();
        match e {
            C::UnknownChit(_) => Self::UnknownChit(m),
            C::Load(l) => l.into(),
            C::Reject(_) => Self::Refused(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

impl From<core::agent::TallySettingError> for ChitError {
    fn from(e: core::agent::TallySettingError) -> Self {
        use core::agent::TallySettingError as C;
        let m = e.to_string();
        match e {
            C::UnknownTally(_) => Self::UnknownTally(m),
            C::Load(l) => l.into(),
            C::Closed => Self::Closed(m),
            C::AlreadyClosing => Self::AlreadyClosing(m),
            C::Refused(_) | C::Issue(_) | C::Build(_) => Self::Refused(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

impl From<core::TallyError> for ChitError {
    fn from(e: core::TallyError) -> Self {
        use core::TallyError as C;
        let m = e.to_string();
        match e {
            C::UnknownTally(_) => Self::UnknownTally(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

impl From<core::AgentError> for AgentError {
    fn from(e: core::AgentError) -> Self {
        use core::AgentError as C;
        let m = e.to_string();
        match e {
            C::Bind { .. } => Self::Bind(m),
            C::NeedHost { .. } => Self::NeedHost(m),
            C::BadAddress { .. } => Self::BadAddress(m),
            C::Relay { .. } => Self::Relay(m),
            C::Key(_) => Self::Key(m),
            C::Store(_) => Self::Store(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_keeps_the_cores_message() {
        let core = core::SendError::NoRecipients;
        let text = core.to_string();
        assert_eq!(SendError::from(core), SendError::NoRecipients(text.clone()));
        assert_eq!(SendError::NoRecipients(text.clone()).to_string(), text);
        let expired =
            core::TallyScanError::Ticket(core::ticket::TicketError::Expired { expires: 1 });
        assert!(matches!(ScanError::from(expired), ScanError::Expired(m) if m.contains("expired")));
        let not_ticket = core::ticket::TicketError::WrongHost {
            host: "example.org".into(),
        };
        assert!(matches!(
            ScanError::from(not_ticket),
            ScanError::NotATicket(_)
        ));
    }
}
