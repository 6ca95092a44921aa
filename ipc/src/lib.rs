//! Types that cross the Tauri IPC between `notch-app` (Rust, native) and
//! `notch-ui` (Rust, wasm). Both sides depend on this crate, so a command's
//! arguments, result and error cannot drift apart.
//!
//! Amounts cross the IPC as decimal strings already formatted with their
//! asset's decimals (the app formats base units with notch-core's integer
//! code): the UI never does arithmetic on money and never sees a float.

use serde::{Deserialize, Serialize};

pub mod history_index;
pub mod tally;

/// Names of the Tauri commands, so neither side spells them by hand.
pub mod command {
    pub const GATEWAY_STATUS: &str = "gateway_status";
    /// () -> [`crate::AppStatus`]
    pub const APP_STATUS: &str = "app_status";
    /// [`crate::BeginCreateArgs`] -> [`crate::NewPhrase`]
    pub const BEGIN_CREATE: &str = "begin_create";
    /// [`crate::FinishCreateArgs`] -> [`crate::AppStatus`]
    pub const FINISH_CREATE: &str = "finish_create";
    /// [`crate::RestoreArgs`] -> [`crate::AppStatus`]
    pub const RESTORE_WALLET: &str = "restore_wallet";
    /// () -> `Vec<`[`crate::BalanceView`]`>`
    pub const BALANCES: &str = "balances";
    /// () -> [`crate::SyncView`]
    pub const SYNC_STATE: &str = "sync_state";
    /// () -> [`crate::SyncView`]: one sync pass now (the retry button).
    pub const SYNC_NOW: &str = "sync_now";
    /// () -> [`crate::ReceiveView`]: a fresh address (the "New address" button).
    pub const RECEIVE_ADDRESS: &str = "receive_address";
    /// () -> [`crate::ReceiveView`]: the oldest unpaid address (what Receive
    /// shows when it opens, so opening it does not use up addresses).
    pub const UNUSED_ADDRESS: &str = "unused_address";
    /// () -> `Vec<`[`crate::AssetView`]`>`
    pub const ASSETS: &str = "assets";
    /// [`crate::AddressArgs`] -> `()`
    pub const VALIDATE_ADDRESS: &str = "validate_address";
    /// [`crate::AmountArgs`] -> `String` (the amount as it will be sent)
    pub const VALIDATE_AMOUNT: &str = "validate_amount";
    /// [`crate::SendArgs`] -> [`crate::ProposalView`]
    pub const PREPARE_SEND: &str = "prepare_send";
    /// [`crate::TxidArgs`] -> [`crate::TxStatusView`]
    pub const CONFIRM_SEND: &str = "confirm_send";
    /// [`crate::TxidArgs`] -> [`crate::TxStatusView`]
    pub const TX_STATUS: &str = "tx_status";
    /// [`crate::HistoryArgs`] -> [`crate::HistoryPageView`]: one page of
    /// the history, newest first, at most [`crate::HISTORY_PAGE_MAX`] rows,
    /// with the total count of the query (the UI asks for pages as it
    /// scrolls; nothing sends the whole list).
    pub const HISTORY: &str = "history";
    /// [`crate::HistoryIndexArgs`] -> raw bytes (an `ArrayBuffer` in the
    /// page, not JSON): [`crate::history_index`] of every row of the query
    /// from `top` down, for drawing rows whose page is not there yet.
    pub const HISTORY_INDEX: &str = "history_index";
    /// [`crate::ExportArgs`] -> `String` (the file written; the app streams
    /// the history to it page by page, in notch-core's CSV format)
    pub const EXPORT_CSV: &str = "export_csv";
    /// () -> `Vec<`[`crate::NotificationView`]`>`
    pub const NOTIFICATIONS: &str = "notifications";
    /// [`crate::IdArgs`] -> `()`
    pub const MARK_READ: &str = "mark_read";
    /// () -> `u64` (how many were unread)
    pub const MARK_ALL_READ: &str = "mark_all_read";
    /// () -> [`crate::LockStatus`]
    pub const LOCK_STATUS: &str = "lock_status";
    /// [`crate::SetLockPassphraseArgs`] -> [`crate::LockStatus`]
    pub const SET_LOCK_PASSPHRASE: &str = "set_lock_passphrase";
    /// [`crate::PassphraseArgs`] -> [`crate::LockStatus`]
    pub const REMOVE_LOCK_PASSPHRASE: &str = "remove_lock_passphrase";
    /// [`crate::IdleLockArgs`] -> [`crate::LockStatus`]
    pub const SET_IDLE_LOCK: &str = "set_idle_lock";
    /// () -> [`crate::AppStatus`] (locked; refused without a passphrase)
    pub const LOCK_NOW: &str = "lock_now";
    /// [`crate::PassphraseArgs`] -> [`crate::AppStatus`]
    pub const UNLOCK: &str = "unlock";
    /// [`crate::PassphraseArgs`] -> [`crate::PhraseView`]
    pub const REVEAL_PHRASE: &str = "reveal_phrase";
}

/// Names of the events the app emits to the UI.
pub mod event {
    /// Payload: [`crate::GatewayStatus`].
    pub const GATEWAY_STATUS: &str = "notch://gateway-status";
    /// Payload: [`crate::WalletEvent`], one per event of the core's stream.
    pub const WALLET: &str = "notch://wallet-event";
    /// Payload: [`crate::AppStatus`], when the wallet opens or fails to.
    pub const APP_STATUS: &str = "notch://app-status";
}

/// Stable error codes of [`CommandError`] (the UI and tests match on them).
pub mod code {
    pub const KEYSTORE_UNAVAILABLE: &str = "keystore_unavailable";
    pub const NO_WALLET: &str = "no_wallet";
    pub const WALLET_EXISTS: &str = "wallet_exists";
    pub const WALLET_STARTING: &str = "wallet_starting";
    pub const BAD_PHRASE: &str = "bad_phrase";
    pub const BACKUP_MISMATCH: &str = "backup_mismatch";
    pub const NO_PENDING_PHRASE: &str = "no_pending_phrase";
    pub const BAD_ADDRESS: &str = "bad_address";
    pub const WRONG_NETWORK: &str = "wrong_network";
    pub const BAD_AMOUNT: &str = "bad_amount";
    pub const UNKNOWN_ASSET: &str = "unknown_asset";
    pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";
    pub const NOT_SYNCED: &str = "not_synced";
    pub const STALE_PROPOSAL: &str = "stale_proposal";
    pub const UNKNOWN_PROPOSAL: &str = "unknown_proposal";
    pub const REJECTED: &str = "rejected";
    pub const GATEWAY_UNREACHABLE: &str = "gateway_unreachable";
    pub const GATEWAY: &str = "gateway";
    pub const SYNC: &str = "sync";
    pub const STORE: &str = "store";
    pub const IO: &str = "io";
    pub const NOT_FOUND: &str = "not_found";
    pub const INVALID: &str = "invalid";
    pub const INTERNAL: &str = "internal";
    /// The app is locked: unlock with the lock passphrase first.
    pub const LOCKED: &str = "locked";
    pub const WRONG_PASSPHRASE: &str = "wrong_passphrase";
    /// No lock passphrase is set (needed to lock or to show the phrase).
    pub const NO_PASSPHRASE: &str = "no_passphrase";
    /// Changing the lock passphrase needs the current one.
    pub const CURRENT_PASSPHRASE_NEEDED: &str = "current_passphrase_needed";
    pub const WEAK_PASSPHRASE: &str = "weak_passphrase";
    pub const TOO_MANY_ATTEMPTS: &str = "too_many_attempts";
    /// Set by the UI when the app did not answer in time.
    pub const TIMEOUT: &str = "timeout";
}

/// Every command fails with this: a stable code and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandError {
    pub code: String,
    pub message: String,
}

impl CommandError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandError {}

/// What the app knows about its gateway connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GatewayStatus {
    /// The gateway answered; `tip_height` is its current tip.
    Connected {
        url: String,
        network: String,
        tip_height: u64,
        sandbox: bool,
    },
    /// The gateway did not answer since `since_unix` (seconds).
    Unreachable {
        url: String,
        reason: String,
        since_unix: u64,
    },
}

/// Where the app stands with its wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    pub wallet: WalletState,
    pub gateway_url: String,
    pub data_dir: String,
    /// Locked behind the lock passphrase: only `unlock` works.
    pub locked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WalletState {
    /// Opening the keystore and the wallet.
    Starting,
    /// The OS keystore cannot be used; nothing can be done until it can.
    KeystoreUnavailable {
        message: String,
        what_to_do: String,
    },
    /// No wallet in the data directory: onboarding.
    NoWallet,
    /// A wallet exists but could not be opened.
    Failed {
        code: String,
        message: String,
    },
    Open {
        wallet_id: String,
        network: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeginCreateArgs {
    /// 12 or 24.
    pub words: u8,
}

/// A fresh recovery phrase, not yet a wallet: the person writes it down,
/// then proves it by giving the words at `check_positions` (0-based).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPhrase {
    pub words: Vec<String>,
    pub check_positions: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishCreateArgs {
    /// The words at `check_positions`, in that order.
    pub answers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreArgs {
    pub phrase: String,
}

/// The balance of one asset, amounts formatted with its decimals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceView {
    pub asset: String,
    pub symbol: String,
    pub name: String,
    pub decimals: u8,
    pub confirmed: String,
    pub pending: String,
    pub pending_outgoing: String,
    pub spendable: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncView {
    pub height: Option<u64>,
    pub unreachable_since: Option<u64>,
    pub unreachable_reason: Option<String>,
    /// `(done, total)` blocks while a pass runs.
    pub progress: Option<(u64, u64)>,
    pub syncing: bool,
    /// The last sync error that retrying will not fix, if any.
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiveView {
    pub address: String,
    /// The address as a QR code, an SVG document.
    pub qr_svg: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetView {
    pub id: String,
    pub symbol: String,
    pub name: String,
    pub decimals: u8,
    pub native: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressArgs {
    pub address: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountArgs {
    pub amount: String,
    /// Symbol or id; the native asset if `None`.
    pub asset: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientInput {
    pub address: String,
    pub amount: String,
    pub asset: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendArgs {
    pub recipients: Vec<RecipientInput>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputView {
    pub address: String,
    pub symbol: String,
    pub amount: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalView {
    pub symbol: String,
    pub amount: String,
    pub fee: String,
    /// Amount plus fee: what leaves the wallet in this asset.
    pub total: String,
    pub change: String,
}

/// A payment built for review (nothing signed yet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalView {
    pub txid: String,
    pub recipients: Vec<OutputView>,
    pub fee: String,
    pub fee_symbol: String,
    pub totals: Vec<TotalView>,
    pub size: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxidArgs {
    pub txid: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStatusView {
    pub txid: String,
    pub state: String,
    pub confirmations: u64,
    pub block_height: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryQuery {
    /// Symbol or id.
    pub asset: Option<String>,
    /// `Some(true)`: only in; `Some(false)`: only out (and to the wallet
    /// itself).
    pub incoming: Option<bool>,
    /// Txid prefix, an address the transaction pays, or a piece of its
    /// memo.
    pub search: Option<String>,
}

/// Rows a [`command::HISTORY`] page holds when `limit` is not given.
pub const HISTORY_PAGE: u32 = 100;
/// The most rows one [`command::HISTORY`] page holds (a larger `limit` is
/// capped to it).
pub const HISTORY_PAGE_MAX: u32 = 500;

/// A page request: the rows of `query` after the cursor `before` (from the
/// top if `None`), `skip` of them passed over, at most `limit`. Reading on
/// from a page: `before` = its `next`. Jumping to row `n` of a list (a
/// scrollbar dragged far): `before` = the `top` of the list's first page
/// and `skip` = `n`, so rows that arrived since above it do not shift it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryArgs {
    pub query: HistoryQuery,
    #[serde(default)]
    pub before: Option<String>,
    #[serde(default)]
    pub skip: u64,
    /// [`HISTORY_PAGE`] if `None` or 0; at most [`HISTORY_PAGE_MAX`].
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A page of the history, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPageView {
    pub rows: Vec<HistoryRow>,
    /// `before` for the page after this one; `None` on the last page.
    pub next: Option<String>,
    /// Rows matching the query, over all pages (the list's length).
    pub total: u64,
    /// `before` that lists from this page's first row on (itself
    /// included); `None` for an empty page.
    pub top: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryIndexArgs {
    pub query: HistoryQuery,
    /// The `top` of the page the list's positions count from.
    #[serde(default)]
    pub top: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportArgs {
    pub query: HistoryQuery,
    /// Where to write; the data directory if `None`.
    pub path: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryAmountView {
    pub symbol: String,
    /// Signed net change, e.g. `-1.50`.
    pub net: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub txid: String,
    pub state: String,
    pub confirmations: u64,
    /// The block it is in, so the UI can count confirmations as the tip
    /// moves without fetching the history again.
    pub block_height: Option<u64>,
    pub time: u64,
    pub incoming: bool,
    pub fee: Option<String>,
    pub amounts: Vec<HistoryAmountView>,
    pub counterparties: Vec<String>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdArgs {
    pub id: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationView {
    pub id: i64,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub txid: Option<String>,
    pub created_at: i64,
    pub read: bool,
}

/// An amount of one asset, formatted with its decimals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountView {
    pub symbol: String,
    pub amount: String,
}

/// The core's event stream as the UI sees it (one Tauri event,
/// [`event::WALLET`]). Mirrors `notch_core::WalletEvent`; the app converts
/// with an exhaustive match, so a new core event fails its build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WalletEvent {
    SyncProgress {
        done: u64,
        total: u64,
        height: u64,
        target: u64,
    },
    SyncDone {
        height: u64,
    },
    Reorg {
        fork_height: u64,
        old_tip: u64,
        new_tip: u64,
    },
    PaymentReceived {
        txid: String,
        amounts: Vec<AmountView>,
        confirmed: bool,
    },
    TxStateChanged {
        txid: String,
        from: Option<String>,
        to: String,
        confirmations: Option<u64>,
    },
    GatewayUnreachable {
        since: u64,
        reason: String,
    },
    GatewayBack {
        unreachable_for_secs: u64,
    },
    VerificationFailed {
        what: String,
    },
    /// `quiet` ones were found while catching up: the inbox has them, and
    /// one [`WalletEvent::CaughtUp`] sums them up.
    Notification {
        id: i64,
        kind: String,
        title: String,
        #[serde(default)]
        quiet: bool,
    },
    /// A tally changed state (MyCHIPs's state name, e.g. `P.offer`, `open`).
    TallyChanged {
        tally: String,
        state: String,
    },
    /// A chit was added to a tally or changed (signed, delivered, approved,
    /// rejected): the tally's screens read it again.
    ChitChanged {
        tally: String,
        chit: String,
        state: String,
    },
    /// A catch-up (a restore, a long time offline) ended.
    CaughtUp {
        notifications: u64,
        payments_received: u64,
        height: u64,
    },
}

// QR scanning

/// Scanning a QR code to fill a recipient's address (later also a tally
/// ticket): the command names, their error codes, and the camera frame's
/// wire form. Both commands take a raw (binary) body rather than JSON: an
/// image or a frame as a JSON array of numbers would be several times its
/// size and slow to parse, and base64 would still add a third.
pub mod scan {
    /// Raw body: the bytes of a PNG or JPEG file -> [`crate::ScannedAddress`].
    pub const SCAN_QR_IMAGE: &str = "scan_qr_image";
    /// Raw body: a grayscale camera frame as [`encode_frame`] writes it ->
    /// [`crate::ScannedAddress`].
    pub const SCAN_QR_FRAME: &str = "scan_qr_frame";

    /// Error codes of the scanning commands (besides `no_wallet`,
    /// `bad_address`, `wrong_network` when the code holds no usable
    /// address).
    pub mod code {
        /// The file is not a picture at all.
        pub const NOT_AN_IMAGE: &str = "not_an_image";
        /// A picture in a format other than PNG or JPEG.
        pub const UNSUPPORTED_IMAGE: &str = "unsupported_image";
        /// Over the size limits (file bytes or pixels).
        pub const IMAGE_TOO_LARGE: &str = "image_too_large";
        /// A PNG or JPEG that cannot be decoded (truncated, damaged).
        pub const BAD_IMAGE: &str = "bad_image";
        /// The picture holds no QR code.
        pub const NO_QR_CODE: &str = "no_qr_code";
        /// Something like a QR code, but its data would not read.
        pub const QR_UNREADABLE: &str = "qr_unreadable";
        /// A camera frame whose size does not match its bytes.
        pub const BAD_FRAME: &str = "bad_frame";
    }

    /// The largest image file the app reads (notch-core's limit; a test
    /// in the app keeps the two equal). The UI refuses bigger files itself
    /// rather than send them all over the IPC to be refused there.
    pub const MAX_IMAGE_BYTES: usize = 32 * 1024 * 1024;

    /// Bytes before the pixels of an encoded frame: width, height (u32, LE).
    pub const FRAME_HEADER_LEN: usize = 8;

    /// A grayscale frame (`width * height` luma bytes, row by row) as the
    /// body of [`SCAN_QR_FRAME`].
    pub fn encode_frame(width: u32, height: u32, luma: &[u8]) -> Vec<u8> {
        let mut body = Vec::with_capacity(FRAME_HEADER_LEN + luma.len());
        body.extend_from_slice(&width.to_le_bytes());
        body.extend_from_slice(&height.to_le_bytes());
        body.extend_from_slice(luma);
        body
    }

    /// `(width, height, luma)` of an encoded frame; `None` if the body is
    /// shorter than its header. Whether the sizes agree is for the decoder
    /// to check (it says by how much they do not).
    pub fn decode_frame(body: &[u8]) -> Option<(u32, u32, &[u8])> {
        let width = u32::from_le_bytes(body.get(0..4)?.try_into().ok()?);
        let height = u32::from_le_bytes(body.get(4..8)?.try_into().ok()?);
        Some((width, height, body.get(FRAME_HEADER_LEN..)?))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_frame_round_trips_and_a_short_body_is_refused() {
            let body = super::encode_frame(3, 2, &[1, 2, 3, 4, 5, 6]);
            assert_eq!(body.len(), super::FRAME_HEADER_LEN + 6);
            assert_eq!(
                super::decode_frame(&body),
                Some((3, 2, &[1u8, 2, 3, 4, 5, 6][..]))
            );
            assert_eq!(super::decode_frame(&body[..7]), None);
            assert_eq!(super::decode_frame(&body[..8]), Some((3, 2, &[][..])));
        }
    }
}

/// What a scanned QR code gave: an address of the wallet's network, in its
/// canonical (lower-case) form, ready for a recipient row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannedAddress {
    pub address: String,
}

/// The lock passphrase and idle lock, as Settings shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockStatus {
    pub passphrase_set: bool,
    /// Minutes without input before the app locks; 0: never.
    pub idle_minutes: u32,
    pub locked: bool,
    /// The shortest passphrase accepted.
    pub min_chars: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetLockPassphraseArgs {
    /// The current passphrase; needed when one is set.
    pub current: Option<String>,
    pub new: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassphraseArgs {
    pub passphrase: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleLockArgs {
    pub minutes: u32,
}

/// The recovery phrase shown again in Settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhraseView {
    pub words: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_status_has_a_tagged_json_form() {
        let status = GatewayStatus::Connected {
            url: "http://127.0.0.1:7420/".into(),
            network: "sandbox".into(),
            tip_height: 3,
            sandbox: true,
        };
        let json = serde_json::to_value(&status).expect("serializable");
        assert_eq!(json["state"], "connected");
        assert_eq!(json["tip_height"], 3);
        let back: GatewayStatus = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, status);
    }

    #[test]
    fn wallet_events_have_a_type_tag() {
        let e = WalletEvent::SyncDone { height: 4 };
        let json = serde_json::to_value(&e).expect("serializable");
        assert_eq!(json["type"], "sync_done");
        let back: WalletEvent = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, e);
    }
}
