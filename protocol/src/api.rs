//! JSON shapes of the gateway's mirror API (`/v1`). See `gateway/openapi.yaml` and
//! `docs/PROTOCOL.md`.
//!
//! Blocks, headers and transactions travel as lower-case hex of their exact binary encoding
//! (`hex` fields), so a wallet re-hashes the bytes it received; ids and heights next to them
//! are conveniences.

use serde::{Deserialize, Serialize};

/// `GET /v1/info`: what a wallet needs to know before it syncs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerInfo {
    /// Network name, e.g. `sandbox`; also the address prefix's source.
    pub network: String,
    /// The gateway authority's Ed25519 public key (hex) that signs block headers.
    pub authority_key: String,
    /// Assets known to the ledger, the native (fee) asset first.
    pub assets: Vec<AssetInfo>,
    /// The current tip of the mirror.
    pub tip: TipInfo,
    /// Whether sandbox-only endpoints (faucet, mine, reorg) exist.
    pub sandbox: bool,
    /// Rules and limits of the ledger (added in protocol v1; defaults when absent).
    #[serde(default)]
    pub params: ParamsInfo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetInfo {
    /// Asset id (hex).
    pub id: String,
    pub symbol: String,
    pub name: String,
    pub decimals: u8,
    /// Whether this is the native asset in which fees are paid.
    pub native: bool,
    /// The issuer's Ed25519 public key (hex); `id = H("notch/v1/asset", issuer || len ||
    /// symbol)`. Empty when unknown.
    #[serde(default)]
    pub issuer: String,
}

/// Fee rule, finality and limits, as served in `LedgerInfo.params`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamsInfo {
    /// Minimum fee of a transaction with inputs: `min_fee_base + min_fee_per_byte * size`.
    pub min_fee_base: u64,
    pub min_fee_per_byte: u64,
    /// A transaction with this many confirmations is final.
    pub finality_depth: u64,
    /// Seconds between timer blocks; 0 = blocks only on demand.
    pub block_interval_secs: u64,
    pub max_tx_bytes: u64,
    pub max_headers_per_request: u32,
    pub max_blocks_per_request: u32,
}

impl Default for ParamsInfo {
    fn default() -> Self {
        ParamsInfo {
            min_fee_base: 1_000,
            min_fee_per_byte: 10,
            finality_depth: 6,
            block_interval_secs: 2,
            max_tx_bytes: crate::tx::MAX_TX_BYTES as u64,
            max_headers_per_request: 2000,
            max_blocks_per_request: 100,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipInfo {
    pub height: u64,
    /// Block id (hex).
    pub hash: String,
    /// Block time, Unix seconds.
    pub time: u64,
}

/// Every 4xx/5xx answer of the gateway carries this body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable machine-readable code, e.g. `double_spend`, `bad_request`.
    pub code: String,
    /// A sentence a person can read.
    pub message: String,
}

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ApiError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The values of `ApiError.code` (and of `TxStatus::Rejected.code`).
pub mod codes {
    /// Body, hex, JSON or binary encoding that cannot be parsed (HTTP 400).
    pub const MALFORMED: &str = "malformed";
    /// A request that parses but makes no sense (HTTP 400), e.g. a limit of 0.
    pub const BAD_REQUEST: &str = "bad_request";
    /// Body or transaction over a size limit (HTTP 413).
    pub const TOO_LARGE: &str = "too_large";
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// An address string that is not an address (checksum, length, key) (HTTP 400).
    pub const BAD_ADDRESS: &str = "bad_address";
    /// An address or transaction of another network (HTTP 400).
    pub const WRONG_NETWORK: &str = "wrong_network";
    pub const UNKNOWN_ASSET: &str = "unknown_asset";
    /// Transaction rules (HTTP 422, double spend 409).
    pub const DOUBLE_SPEND: &str = "double_spend";
    pub const UNKNOWN_INPUT: &str = "unknown_input";
    pub const DUPLICATE_INPUT: &str = "duplicate_input";
    pub const BAD_SIGNATURE: &str = "bad_signature";
    pub const UNBALANCED: &str = "unbalanced";
    pub const FEE_TOO_LOW: &str = "fee_too_low";
    pub const ZERO_AMOUNT: &str = "zero_amount";
    /// The mempool is full (HTTP 503).
    pub const POOL_FULL: &str = "pool_full";
    /// Storage failed or the gateway is shutting down (HTTP 503).
    pub const UNAVAILABLE: &str = "unavailable";
    /// This client sent too many requests or holds too much of the mempool (HTTP 429);
    /// retry later.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The request took longer than the gateway allows (HTTP 408 or 503).
    pub const TIMEOUT: &str = "timeout";
    /// An issuance of an asset this ledger does not list (HTTP 422).
    pub const UNLISTED_ISSUANCE: &str = "unlisted_issuance";
}

/// `GET /v1/health` (readiness: 200 with `status` `ok`, or 503 with `unavailable` and a
/// `reason`) and `GET /v1/health/live` (liveness: from the process's memory only). The fields
/// after `tip_height` are optional so that an older gateway's answer still reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// `ok`, or `unavailable` (HTTP 503).
    pub status: String,
    pub network: String,
    /// The tip this process serves.
    pub tip_height: u64,
    /// Its block id (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tip_hash: Option<String>,
    /// `writer`, `read-only` or `standby` (a standby that took the writer's place says
    /// `writer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `sqlite` or `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Transactions in this process's pool (a writer's; a replica keeps none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_txs: Option<u64>,
    /// The last check of the database (readiness only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseHealth>,
    /// A replica's distance from the database (readiness only, replicas only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaHealth>,
    /// Why this process cannot serve (with `unavailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the gateway's last check of its database found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseHealth {
    /// Whether it answered in time.
    pub reachable: bool,
    /// Milliseconds it took to answer (absent when it did not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// The database's tip height (absent when it did not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tip_height: Option<u64>,
    /// Milliseconds since the check (answers reuse a check for about a second).
    pub checked_ms_ago: u64,
}

/// How far a read-only replica (or standby) is behind the database it follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaHealth {
    /// Blocks between the database's tip and this process's.
    pub behind_blocks: u64,
    /// Milliseconds since this replica's tip first differed from the database's (absent
    /// when it is caught up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behind_ms: Option<u64>,
    /// Milliseconds since its follower last read the database (absent before the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heard_ms_ago: Option<u64>,
}

/// A block named by height and id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    pub height: u64,
    /// Block id (hex).
    pub hash: String,
}

/// `POST /v1/headers`: the wallet's locator, newest first (at most 128 hashes are read; build
/// it with `block::locator_heights`). An empty locator means "from genesis".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadersRequest {
    pub locator: Vec<String>,
    /// Client's maximum; the server caps it at `max_headers_per_request`.
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderEntry {
    pub height: u64,
    /// Block id (hex).
    pub id: String,
    /// Signed header encoding (hex, `HEADER_LEN` bytes).
    pub hex: String,
}

/// Answer to `POST /v1/headers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadersResponse {
    /// The newest locator entry on the gateway's best chain (the fork point); `None` when no
    /// entry matched, in which case `headers` start at the genesis.
    pub fork_point: Option<BlockRef>,
    /// Consecutive headers following the fork point, oldest first.
    pub headers: Vec<HeaderEntry>,
    pub tip: TipInfo,
    /// More headers follow the last one returned.
    pub more: bool,
}

/// `POST /v1/blocks`: like `HeadersRequest` but answers full blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocksRequest {
    pub locator: Vec<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Query of `GET /v1/blocks?from=HEIGHT&limit=N` (best chain, by height).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRangeQuery {
    pub from: u64,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry {
    pub height: u64,
    /// Block id (hex).
    pub id: String,
    /// Full block encoding (hex).
    pub hex: String,
}

/// Answer to `POST /v1/blocks` and `GET /v1/blocks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocksResponse {
    /// As in `HeadersResponse`; for a height range, the block before `from` (if any).
    pub fork_point: Option<BlockRef>,
    pub blocks: Vec<BlockEntry>,
    pub tip: TipInfo,
    pub more: bool,
}

/// `POST /v1/tx`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitTxRequest {
    /// Full signed transaction encoding (hex).
    pub tx: String,
}

/// Most transactions in one `POST /v1/txs`.
pub const MAX_BATCH_TXS: usize = 1000;

/// `POST /v1/txs`: many signed transactions in one request (payouts, relays). Each gets its
/// own result, in order; like `POST /v1/tx`, each is idempotent by txid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitBatchRequest {
    /// Full signed transaction encodings (hex), at most [`MAX_BATCH_TXS`].
    pub txs: Vec<String>,
}

/// Answer (200) to `POST /v1/txs`: one entry per submitted transaction, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitBatchResponse {
    pub results: Vec<SubmitBatchResult>,
}

/// The fate of one transaction of a batch: accepted (or already known), or refused with the
/// error `POST /v1/tx` would have answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SubmitBatchResult {
    Ok(SubmitTxResponse),
    Err {
        /// The txid, when the bytes decoded far enough to have one.
        txid: Option<String>,
        error: ApiError,
    },
}

/// Answer (200) to `POST /v1/tx`. Submitting a transaction that the gateway already holds
/// returns its current status with `duplicate = true`, never an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitTxResponse {
    pub txid: String,
    pub status: TxStatus,
    pub duplicate: bool,
}

/// Where a transaction is in its life. JSON: `{"state": "in_pool"}`,
/// `{"state": "confirmed", "confirmations": 2, "block_height": 7, "block_id": "…"}`, …
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TxStatus {
    /// Wallet-side only: built and signed, not yet handed to a gateway.
    Queued,
    /// Persisted by a relay that is not itself the ledger. The reference gateway is the
    /// ledger and moves a transaction to `in_pool` in the same database transaction, so it
    /// never reports `accepted`; a wallet treats a 2xx answer to a submit as `accepted`.
    Accepted,
    /// In the mempool, waiting for a block.
    InPool,
    /// In a block of the best chain with `confirmations` (>= 1) blocks on top, including its own.
    Confirmed {
        confirmations: u64,
        block_height: u64,
        block_id: String,
    },
    /// Confirmed with at least `finality_depth` confirmations.
    Final {
        confirmations: u64,
        block_height: u64,
        block_id: String,
    },
    /// Refused when submitted.
    Rejected { code: String, message: String },
    /// Left the pool without being confirmed, e.g. after a reorg spent its inputs.
    Dropped { reason: String },
}

/// `GET /v1/tx/{txid}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxResponse {
    pub txid: String,
    pub status: TxStatus,
    /// Full encoding (hex); absent for rejected transactions.
    pub hex: Option<String>,
    pub tip_height: u64,
}

/// `GET /v1/tx/{txid}/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStatusResponse {
    pub txid: String,
    pub status: TxStatus,
    pub tip_height: u64,
}

/// Query of `GET /v1/mempool?since=SEQ&limit=N`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolQuery {
    #[serde(default)]
    pub since: u64,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MempoolChangeKind {
    Added,
    Removed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolChange {
    pub seq: u64,
    pub kind: MempoolChangeKind,
    pub txid: String,
    /// Full encoding (hex) for `added`.
    pub hex: Option<String>,
}

/// Answer to `GET /v1/mempool`: the changes after `since`, in order. Apply them to the pool
/// as of `since` (to an empty pool when `reset`), then ask again with `since = seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolDelta {
    /// True when `since` is older than what the gateway kept: the changes start from an
    /// empty pool.
    pub reset: bool,
    pub changes: Vec<MempoolChange>,
    /// The `since` of the next request.
    pub seq: u64,
    pub more: bool,
}

/// `GET /v1/address/{address}/utxos`: unspent outputs of one address on the best chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtxoEntry {
    pub txid: String,
    pub index: u32,
    /// Asset id (hex).
    pub asset: String,
    pub amount: u64,
    pub height: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtxosResponse {
    pub address: String,
    pub utxos: Vec<UtxoEntry>,
    pub tip: TipInfo,
    /// More outputs exist than the server returns at once.
    pub more: bool,
}

/// Messages a client sends on the `GET /v1/stream` WebSocket (JSON text frames).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Subscribe { addresses: Vec<String> },
    Unsubscribe { addresses: Vec<String> },
}

/// Messages the gateway sends on the `GET /v1/stream` WebSocket (JSON text frames).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamMessage {
    /// First message: the current tip.
    Hello {
        tip: TipInfo,
    },
    /// A new best tip (after a block or a reorg).
    Tip {
        tip: TipInfo,
    },
    /// The best chain was replaced above `fork_point`.
    Reorg {
        fork_point: BlockRef,
        tip: TipInfo,
    },
    /// The subscription now covers these addresses.
    Subscribed {
        addresses: Vec<String>,
    },
    /// A transaction that pays or spends a subscribed address changed status.
    AddressTx {
        address: String,
        txid: String,
        status: TxStatus,
    },
    /// The client fell behind and missed events; resync with the HTTP API.
    Lagged {
        missed: u64,
    },
    Error {
        code: String,
        message: String,
    },
}

/// `POST /v1/sandbox/faucet` (sandbox only): mints `amount` base units of `asset` (symbol
/// such as `EURT`, or asset id hex) to `address`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaucetRequest {
    pub address: String,
    pub asset: String,
    pub amount: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaucetResponse {
    pub txid: String,
    pub status: TxStatus,
    /// Output index of the minted coin (always 0).
    pub index: u32,
}

/// `POST /v1/sandbox/mine` (sandbox only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MineRequest {
    /// 1 to 100; default 1.
    #[serde(default)]
    pub blocks: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MineResponse {
    pub mined: Vec<BlockRef>,
    pub tip: TipInfo,
}

/// `POST /v1/sandbox/reorg` (sandbox only): replaces the newest `depth` blocks by `depth + 1`
/// new ones. `include_txs` (hex) go into the first new block (they may conflict with the
/// orphaned transactions, which are then dropped); the other orphaned transactions go back to
/// the mempool when still valid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReorgRequest {
    pub depth: u32,
    #[serde(default)]
    pub include_txs: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReorgResponse {
    pub fork_point: BlockRef,
    pub old_tip: TipInfo,
    pub tip: TipInfo,
    /// Orphaned transactions now back in the mempool.
    pub returned_to_pool: Vec<String>,
    /// Transactions dropped because the new chain made them invalid.
    pub dropped: Vec<String>,
}
