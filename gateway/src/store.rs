//! The mirror's storage interface. The API and the ledger engine only see [`MirrorStore`];
//! `sqlite::SqliteStore` is the embedded implementation, `postgres::PgStore` the one for an
//! operator's PostgreSQL (ADR 8).
//!
//! Every write method is atomic: it commits everything or nothing, so a crash at any instant
//! leaves a consistent mirror.

use std::net::IpAddr;
use std::time::Duration;

use notch_protocol::relay::PortRange;
use notch_protocol::{
    AssetId, Block, BlockHeader, BlockId, Network, OutPoint, Output, PublicKey, Transaction, TxId,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Backend(String),
    #[error("storage holds inconsistent data: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An unspent output and the height of the block that created it.
pub type UtxoRow = (OutPoint, Output, u64);

/// What the ledger is; written once at creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerMeta {
    pub network: Network,
    pub authority: PublicKey,
    pub assets: Vec<AssetMeta>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetMeta {
    pub symbol: String,
    pub name: String,
    pub decimals: u8,
    pub issuer: PublicKey,
    pub native: bool,
}

impl AssetMeta {
    pub fn id(&self) -> AssetId {
        AssetId::derive(&self.issuer, &self.symbol)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TipRow {
    pub height: u64,
    pub id: BlockId,
    pub time: u64,
}

#[derive(Clone, Debug)]
pub struct StoredHeader {
    pub height: u64,
    pub id: BlockId,
    /// Signed header encoding.
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct StoredBlock {
    pub height: u64,
    pub id: BlockId,
    /// Full block encoding.
    pub bytes: Vec<u8>,
}

/// The answer to a locator or range query, read in one consistent snapshot.
#[derive(Clone, Debug)]
pub struct ChainSlice<T> {
    pub fork_point: Option<(u64, BlockId)>,
    pub items: Vec<T>,
    pub tip: TipRow,
    pub more: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxState {
    InPool {
        seq: u64,
    },
    Confirmed {
        height: u64,
        block_id: BlockId,
    },
    Dropped {
        reason: String,
    },
    /// Known only to the engine's in-memory cache, never stored.
    Rejected {
        code: String,
        message: String,
    },
}

#[derive(Clone, Debug)]
pub struct TxRecord {
    pub txid: TxId,
    /// Full encoding; `None` for a rejected transaction.
    pub bytes: Option<Vec<u8>>,
    pub state: TxState,
}

#[derive(Clone, Debug)]
pub struct PoolEntry {
    pub seq: u64,
    pub txid: TxId,
    pub tx: Transaction,
}

#[derive(Clone, Debug)]
pub struct PoolAdd {
    pub txid: TxId,
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolChange {
    pub seq: u64,
    pub added: bool,
    pub txid: TxId,
    pub bytes: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
pub struct PoolChanges {
    pub reset: bool,
    pub changes: Vec<PoolChange>,
    pub seq: u64,
    pub more: bool,
}

/// A submission that a gateway without the producer's lease queued for the producer
/// (PostgreSQL, ADR 8 phase 2): its row id, the transaction, and the client that sent it (for
/// the per-client share of the pool).
#[derive(Clone, Debug)]
pub struct QueuedSubmission {
    pub id: u64,
    pub txid: TxId,
    pub bytes: Vec<u8>,
    pub client: Option<IpAddr>,
}

/// The producer's answer to a queued submission: the HTTP status and the JSON body that a
/// direct submission would have got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueAnswer {
    pub id: u64,
    pub status: u16,
    pub body: String,
}

/// A reorganisation to commit atomically.
#[derive(Clone, Debug)]
pub struct ReorgPlan {
    /// Blocks above this height are removed from the best chain (their outputs removed, the
    /// outputs they spent restored).
    pub fork_height: u64,
    /// The new blocks, from `fork_height + 1` up.
    pub new_blocks: Vec<Block>,
    /// Transactions (orphaned or already pooled) that are in the pool afterwards and were not
    /// before: they get a new pool sequence number.
    pub to_pool: Vec<PoolAdd>,
    /// Transactions that end dropped (removed from the pool if they were in it).
    pub dropped: Vec<(TxId, String)>,
}

/// Storage of the mirror: the best chain, the transactions, the unspent outputs and the
/// persistent mempool. Implementations must be safe to call from many threads; writes are
/// only issued by the ledger engine's single writer.
pub trait MirrorStore: Send + Sync {
    /// Whether reads may run on an async runtime's worker thread: true where they are short
    /// and need no runtime of their own (SQLite). The default is no (the `postgres` client
    /// runs a runtime of its own and panics there): the engine then reads on the blocking
    /// pool, as every other caller already does.
    fn reads_on_runtime_threads(&self) -> bool {
        false
    }

    /// Returns when another process may have changed the store (a read-only replica's
    /// follower waits here), or after `timeout`. The default just sleeps: an embedded store
    /// has no other writer.
    fn wait_for_change(&self, timeout: std::time::Duration) {
        std::thread::sleep(timeout);
    }

    /// A standby's store (`--standby`): takes the writer's place if it is free (its writer
    /// died). `true`: this process holds it and may write from now on. The default: never
    /// (an embedded store has no standby).
    fn take_writer_lock(&self) -> StoreResult<bool> {
        Ok(false)
    }

    /// Whether the store has a submission queue (PostgreSQL: several gateways on one
    /// database, of which one produces blocks). The methods below are used only then; an
    /// embedded store has one gateway, which decides every submission itself.
    fn has_submission_queue(&self) -> bool {
        false
    }

    /// A gateway without the producer's lease: queues verified submissions for the producer,
    /// in one write that wakes it, and returns their row ids in order. A transaction already
    /// queued and not yet answered gets that row's id (a resubmission waits for the same
    /// answer); so does a transaction given twice.
    fn enqueue_submissions(
        &self,
        _subs: &[(TxId, &[u8], Option<IpAddr>)],
    ) -> StoreResult<Vec<u64>> {
        Err(StoreError::Backend(
            "this store has no submission queue".into(),
        ))
    }

    /// The answers among the queued submissions `ids` (those not answered yet are left out).
    fn queue_answers(&self, _ids: &[u64]) -> StoreResult<Vec<QueueAnswer>> {
        Ok(Vec::new())
    }

    /// Returns when the producer may have answered queued submissions, or after `timeout`.
    fn wait_for_answers(&self, timeout: Duration) {
        std::thread::sleep(timeout);
    }

    /// The producer: up to `limit` queued submissions not answered yet, oldest first.
    fn queued_submissions(&self, _limit: usize) -> StoreResult<Vec<QueuedSubmission>> {
        Ok(Vec::new())
    }

    /// The producer: returns when a gateway may have queued a submission, or after `timeout`.
    fn wait_for_queue(&self, timeout: Duration) {
        std::thread::sleep(timeout);
    }

    /// [`MirrorStore::add_to_pool`] and the answers of queued submissions in one atomic
    /// write: an answer is never written without the pool change it reports, nor the change
    /// without the answer. An answer goes only to a submission that has none yet (the first
    /// of two for one row counts).
    fn add_to_pool_answering(
        &self,
        adds: &[PoolAdd],
        evicted: &[(TxId, String)],
        answers: &[QueueAnswer],
    ) -> StoreResult<Vec<u64>> {
        if answers.is_empty() {
            return self.add_to_pool(adds, evicted);
        }
        Err(StoreError::Backend(
            "this store has no submission queue".into(),
        ))
    }

    /// `None` for an empty store.
    fn load_meta(&self) -> StoreResult<Option<LedgerMeta>>;
    /// Creates the ledger with its genesis block.
    fn init(&self, meta: &LedgerMeta, genesis: &Block) -> StoreResult<()>;

    fn tip(&self) -> StoreResult<TipRow>;
    fn header_at(&self, height: u64) -> StoreResult<Option<BlockHeader>>;
    fn block_by_id(&self, id: &BlockId) -> StoreResult<Option<StoredBlock>>;
    /// Blocks of the best chain from `from` up (by height).
    fn blocks_at(&self, from: u64, count: usize) -> StoreResult<Vec<Block>>;
    /// Fork point = the first locator entry on the best chain; then up to `limit` headers.
    fn headers_after_locator(
        &self,
        locator: &[BlockId],
        limit: usize,
    ) -> StoreResult<ChainSlice<StoredHeader>>;
    /// Same with blocks, also bounded by `max_bytes` (at least one block is returned).
    fn blocks_after_locator(
        &self,
        locator: &[BlockId],
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<ChainSlice<StoredBlock>>;
    fn blocks_from_height(
        &self,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<ChainSlice<StoredBlock>>;

    fn tx(&self, txid: &TxId) -> StoreResult<Option<TxRecord>>;
    /// The output `op` names, from any stored transaction, spent or not (outputs never change).
    fn output_of(&self, op: &OutPoint) -> StoreResult<Option<Output>>;
    /// An unspent output of the best chain and the height that created it.
    fn utxo(&self, op: &OutPoint) -> StoreResult<Option<(Output, u64)>>;
    /// Up to `limit` unspent outputs of `owner`, and whether there are more.
    fn utxos_of(&self, owner: &PublicKey, limit: usize) -> StoreResult<(Vec<UtxoRow>, bool)>;

    fn mempool(&self) -> StoreResult<Vec<PoolEntry>>;
    fn mempool_changes(&self, since: u64, limit: usize) -> StoreResult<PoolChanges>;

    /// Puts transactions into the pool (returns their sequence numbers in order) and drops
    /// the `evicted` pool transactions (with their reason), in one atomic write.
    fn add_to_pool(&self, adds: &[PoolAdd], evicted: &[(TxId, String)]) -> StoreResult<Vec<u64>>;
    /// Appends a block to the best chain: its transactions become confirmed (leaving the pool
    /// if they were in it) and the unspent set is updated.
    fn apply_block(&self, block: &Block) -> StoreResult<()>;
    fn reorg(&self, plan: &ReorgPlan) -> StoreResult<()>;

    /// The agent relay: gives `agent` a port of `range` and records it (with `seen = now`),
    /// in one write. Its stored port if that is in `range` and not in `avoid` (ports found
    /// taken on this host), else as [`choose_relay_port`] says. `None`: no port is free.
    fn relay_assign(
        &self,
        agent: &[u8; 32],
        range: PortRange,
        avoid: &[u16],
        now: u64,
        reclaim_before: u64,
    ) -> StoreResult<Option<u16>>;
    /// The port recorded for `agent`, if any.
    fn relay_port(&self, agent: &[u8; 32]) -> StoreResult<Option<u16>>;
    /// Records `port` as `agent`'s (taken from any other agent that had it).
    fn relay_record(&self, agent: &[u8; 32], port: u16, now: u64) -> StoreResult<()>;
}

/// Which port of `range` an agent gets (pure): `stored` if usable; else the lowest port
/// that no other agent holds (`others`: port and when that agent last registered) and is
/// not in `avoid`; else, the range being full, the port of the agent seen longest ago, if
/// that was before `reclaim_before` (returned as the second value: its row goes).
pub fn choose_relay_port(
    stored: Option<u16>,
    others: &[(u16, u64)],
    range: PortRange,
    avoid: &[u16],
    reclaim_before: u64,
) -> Option<(u16, Option<u16>)> {
    if range.is_any() {
        return None;
    }
    if let Some(port) = stored.filter(|p| range.contains(*p) && !avoid.contains(p)) {
        return Some((port, None));
    }
    let held = |p: u16| others.iter().any(|(o, _)| *o == p);
    if let Some(port) = (range.lo..=range.hi).find(|p| !held(*p) && !avoid.contains(p)) {
        return Some((port, None));
    }
    others
        .iter()
        .filter(|(p, seen)| *seen < reclaim_before && !avoid.contains(p))
        .min_by_key(|(_, seen)| *seen)
        .map(|(p, _)| (*p, Some(*p)))
}
