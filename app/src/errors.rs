//! Every core error becomes a [`CommandError`] with a stable code (see
//! `notch_ipc::code`) and the core's own sentence as the message.

use notch_core::backup::BackupError;
use notch_core::export::ExportError;
use notch_core::gateway::GatewayError;
use notch_core::payment::ScanRefusal;
use notch_core::secrets::SecretStoreError;
use notch_core::sync::SyncError;
use notch_core::{LockError, NetworkError, OpenError, PaymentError, SendError, WalletError};
use notch_ipc::{CommandError, code};

pub fn gateway(e: GatewayError) -> CommandError {
    let c = match &e {
        GatewayError::Unreachable { .. } | GatewayError::Unavailable(_) => {
            code::GATEWAY_UNREACHABLE
        }
        _ => code::GATEWAY,
    };
    CommandError::new(c, e.to_string())
}

pub fn secrets(e: SecretStoreError) -> CommandError {
    CommandError::new(code::KEYSTORE_UNAVAILABLE, e.to_string())
}

pub fn open(e: OpenError) -> CommandError {
    match e {
        OpenError::WalletExists { .. } => CommandError::new(code::WALLET_EXISTS, e.to_string()),
        OpenError::NoWallet { .. } => CommandError::new(code::NO_WALLET, e.to_string()),
        OpenError::DataDir { .. } => CommandError::new(code::IO, e.to_string()),
        OpenError::WrongNetwork { .. } => CommandError::new(code::WRONG_NETWORK, e.to_string()),
        OpenError::SecretMissing { .. } | OpenError::SecretStore(_) => {
            CommandError::new(code::KEYSTORE_UNAVAILABLE, e.to_string())
        }
        OpenError::Key(_) => CommandError::new(code::BAD_PHRASE, e.to_string()),
        OpenError::Store(_) => CommandError::new(code::STORE, e.to_string()),
        OpenError::Gateway(g) => gateway(g),
    }
}

pub fn wallet(e: WalletError) -> CommandError {
    let c = match &e {
        WalletError::UnknownTransaction { .. } | WalletError::UnknownNotification(_) => {
            code::NOT_FOUND
        }
        WalletError::BadTxid(_) | WalletError::CannotAbandon { .. } => code::INVALID,
        WalletError::Key(_) => code::INTERNAL,
        WalletError::Store(_) => code::STORE,
    };
    CommandError::new(c, e.to_string())
}

pub fn send(e: SendError) -> CommandError {
    let e = match e {
        SendError::Gateway(g) => return gateway(g),
        other => other,
    };
    let c = match &e {
        SendError::NoRecipients => code::INVALID,
        SendError::BadAddress { .. } => code::BAD_ADDRESS,
        SendError::WrongNetwork { .. } => code::WRONG_NETWORK,
        SendError::BadAmount { .. } => code::BAD_AMOUNT,
        SendError::UnknownAsset(..) => code::UNKNOWN_ASSET,
        SendError::InsufficientFunds { .. } => code::INSUFFICIENT_FUNDS,
        SendError::TooManyOutputs { .. } | SendError::TooLarge { .. } => code::INVALID,
        SendError::NotSynced => code::NOT_SYNCED,
        SendError::StaleProposal(_) => code::STALE_PROPOSAL,
        SendError::Rejected { .. } => code::REJECTED,
        SendError::Invalid(_) | SendError::Key(_) => code::INTERNAL,
        SendError::Store(_) => code::STORE,
        SendError::Gateway(_) => code::GATEWAY,
    };
    CommandError::new(c, e.to_string())
}

pub fn sync(e: SyncError) -> CommandError {
    match e {
        SyncError::Gateway(g) => gateway(g),
        SyncError::Store(_) => CommandError::new(code::STORE, e.to_string()),
        SyncError::WrongNetwork { .. } => CommandError::new(code::WRONG_NETWORK, e.to_string()),
        other => CommandError::new(code::SYNC, other.to_string()),
    }
}

/// QR scanning: each decoder failure has its own code (`notch_ipc::scan::code`)
/// so the UI can say what to do (pick another file, hold the code steady…).
pub fn qr(e: notch_core::qr::QrError) -> CommandError {
    use notch_core::qr::QrError;
    use notch_ipc::scan::code as scan;
    let c = match &e {
        QrError::NotAnImage => scan::NOT_AN_IMAGE,
        QrError::UnsupportedFormat { .. } => scan::UNSUPPORTED_IMAGE,
        QrError::TooLarge { .. } => scan::IMAGE_TOO_LARGE,
        QrError::Corrupt(_) => scan::BAD_IMAGE,
        QrError::NotFound => scan::NO_QR_CODE,
        QrError::Unreadable(_) => scan::QR_UNREADABLE,
        QrError::FrameSize { .. } => scan::BAD_FRAME,
        // The decoder gave up on this picture (a caught panic): another
        // picture may well work.
        QrError::Decoder => scan::BAD_IMAGE,
        QrError::Encode(_) => code::INTERNAL,
    };
    CommandError::new(c, e.to_string())
}

pub fn lock(e: LockError) -> CommandError {
    let c = match &e {
        LockError::NoPassphrase => code::NO_PASSPHRASE,
        LockError::WrongPassphrase => code::WRONG_PASSPHRASE,
        LockError::TooShort { .. } => code::WEAK_PASSPHRASE,
        LockError::CurrentNeeded => code::CURRENT_PASSPHRASE_NEEDED,
        LockError::TooManyAttempts { .. } => code::TOO_MANY_ATTEMPTS,
        LockError::BadIdleTime => code::INVALID,
        LockError::SecretMissing { .. } | LockError::SecretStore(_) => code::KEYSTORE_UNAVAILABLE,
        LockError::Store(_) => code::STORE,
        LockError::Key(_) | LockError::BadHash(_) => code::INTERNAL,
    };
    CommandError::new(c, e.to_string())
}

/// The backup check on create: a wrong or missing word is a mismatch.
pub fn backup(e: BackupError) -> CommandError {
    let c = match &e {
        BackupError::NoRandomness(_) => code::INTERNAL,
        BackupError::BadCount { .. } | BackupError::BadPosition { .. } => code::INTERNAL,
        BackupError::WrongAnswerCount { .. } | BackupError::Mismatch { .. } => {
            code::BACKUP_MISMATCH
        }
    };
    CommandError::new(c, e.to_string())
}

/// The network of a new wallet could not be settled.
pub fn network(e: NetworkError) -> CommandError {
    let c = match &e {
        NetworkError::Unknown { .. } => code::INVALID,
        NetworkError::StoredDiffers { .. } => code::WRONG_NETWORK,
        NetworkError::UnknownServed { .. } | NetworkError::Mismatch { .. } => code::GATEWAY,
        NetworkError::Undetermined { .. } => code::GATEWAY_UNREACHABLE,
    };
    CommandError::new(c, e.to_string())
}

/// An asset or amount as typed.
pub fn payment(e: PaymentError) -> CommandError {
    let c = match &e {
        PaymentError::NotSynced => code::NOT_SYNCED,
        PaymentError::UnknownAsset { .. } => code::UNKNOWN_ASSET,
        PaymentError::BadAmount(_) => code::BAD_AMOUNT,
    };
    CommandError::new(c, e.to_string())
}

/// A scanned text that is no payment of the wallet's network.
pub fn scan_refusal(e: ScanRefusal) -> CommandError {
    let c = if e.error.is_wrong_network() {
        code::WRONG_NETWORK
    } else {
        code::BAD_ADDRESS
    };
    CommandError::new(c, e.to_string())
}

pub fn export(e: ExportError) -> CommandError {
    match e {
        ExportError::Wallet(w) => wallet(w),
        other => CommandError::new(code::IO, other.to_string()),
    }
}
