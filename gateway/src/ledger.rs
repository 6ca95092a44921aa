//! The ledger engine: validation, the mempool, block production and (sandbox) reorgs.
//!
//! Stateless work (decoding, signatures, balances) runs on the caller's thread so it uses
//! every core; everything that changes state goes through ONE writer thread, which batches
//! concurrent submissions into one database transaction (group commit) and answers each
//! submitter only after that transaction committed.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use notch_protocol::api::{
    ApiError, BlockRef, ReorgResponse, SubmitTxResponse, TipInfo, TxStatus, codes,
};
use notch_protocol::ed25519_dalek::SigningKey;
use notch_protocol::{
    AssetId, Block, BlockHeader, BlockId, ChainParams, KeyCache, OutPoint, Output, PublicKey,
    Transaction, TxCheck, TxError, TxId, verify_id_signatures_cached,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::error::Failure;
use crate::store::*;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub finality_depth: u64,
    pub max_block_txs: usize,
    pub max_pool_txs: usize,
    /// Most pool transactions one client may hold.
    pub max_pool_per_client: usize,
    pub block_interval_secs: u64,
    pub sandbox: bool,
    /// How long a gateway without the producer's lease waits for the producer's answer to a
    /// submission it queued (PostgreSQL) before it answers 503; the submission stays queued.
    pub submit_wait: Duration,
}

/// What the engine tells subscribers.
#[derive(Clone, Debug)]
pub enum Event {
    Tip(TipInfo),
    Reorg {
        fork_point: BlockRef,
        tip: TipInfo,
    },
    Tx {
        txid: TxId,
        status: TxStatus,
        addresses: Arc<Vec<PublicKey>>,
    },
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn tip_info(t: &TipRow) -> TipInfo {
    TipInfo {
        height: t.height,
        hash: t.id.to_hex(),
        time: t.time,
    }
}

/// The API status of a stored state, given the tip.
pub fn status_of(state: &TxState, tip_height: u64, finality_depth: u64) -> TxStatus {
    match state {
        TxState::InPool { .. } => TxStatus::InPool,
        TxState::Confirmed { height, block_id } => {
            let confirmations = tip_height.saturating_sub(*height) + 1;
            if confirmations >= finality_depth {
                TxStatus::Final {
                    confirmations,
                    block_height: *height,
                    block_id: block_id.to_hex(),
                }
            } else {
                TxStatus::Confirmed {
                    confirmations,
                    block_height: *height,
                    block_id: block_id.to_hex(),
                }
            }
        }
        TxState::Dropped { reason } => TxStatus::Dropped {
            reason: reason.clone(),
        },
        TxState::Rejected { code, message } => TxStatus::Rejected {
            code: code.clone(),
            message: message.clone(),
        },
    }
}

type SubmitReply = oneshot::Sender<Result<SubmitTxResponse, Failure>>;

/// A transaction that passed every check a reader can make (decoding, rules, inputs found,
/// assets listed) but not yet its input signatures, on its way to the verifier and then to
/// the writer.
struct Checked {
    bytes: Vec<u8>,
    tx: Transaction,
    check: TxCheck,
    client: Option<IpAddr>,
    /// The tip when its inputs were looked up: if a block came since, the writer looks again.
    seen_tip: BlockId,
}

/// A checked transaction and where its answer goes.
struct Candidate {
    c: Checked,
    reply: Reply,
}

/// Where a candidate's answer goes: to the request waiting for it in this process, or (the
/// producer, a submission another gateway queued in the database) into its queue row, which
/// the writer writes in the same commit as the pool change it reports.
enum Reply {
    Direct(SubmitReply),
    Queued(u64),
}

/// The answer to queued submission `id` as its row keeps it: the HTTP status and JSON body a
/// direct submission gets.
fn queue_answer(id: u64, result: &Result<SubmitTxResponse, Failure>) -> QueueAnswer {
    let (status, body) = match result {
        Ok(resp) => (200, serde_json::to_string(resp)),
        Err(f) => (
            f.status.as_u16(),
            serde_json::to_string(&f.clone().into_api_error()),
        ),
    };
    QueueAnswer {
        id,
        status,
        // Serialising these plain structs cannot fail; should it, the asker sees a 503.
        body: body.unwrap_or_default(),
    }
}

/// A queued submission's answer as the submitter gets it (what [`queue_answer`] wrote).
fn answer_result(a: &QueueAnswer) -> Result<SubmitTxResponse, Failure> {
    let unreadable = || Failure::unavailable("the block producer's answer could not be read");
    if a.status == 200 {
        return serde_json::from_str(&a.body).map_err(|_| unreadable());
    }
    let error: ApiError = serde_json::from_str(&a.body).map_err(|_| unreadable())?;
    let status = StatusCode::from_u16(a.status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .ok_or_else(unreadable)?;
    Err(Failure { status, error })
}

enum Cmd {
    /// Candidates whose signatures were verified.
    Submit(Vec<Candidate>),
    /// Answers to queued submissions decided before the writer (refused, or known): written
    /// with the writer's next commit.
    Answers(Vec<QueueAnswer>),
    Mine {
        blocks: u32,
        reply: oneshot::Sender<Result<Vec<BlockRef>, Failure>>,
    },
    Reorg {
        depth: u64,
        include: Vec<Transaction>,
        reply: oneshot::Sender<Result<ReorgResponse, Failure>>,
    },
    Shutdown,
}

/// What readers may know about the pool without asking the writer: which transactions are
/// in it and the outputs they create (so a child of a pool transaction validates without a
/// decode). Only the writer changes it.
#[derive(Default)]
struct PoolIndex {
    txids: HashSet<TxId>,
    outputs: HashMap<OutPoint, Output>,
}

impl PoolIndex {
    fn insert(&mut self, txid: TxId, tx: &Transaction) {
        self.txids.insert(txid);
        for (vout, o) in tx.outputs.iter().enumerate() {
            self.outputs.insert(
                OutPoint {
                    txid,
                    index: vout as u32,
                },
                *o,
            );
        }
    }
    fn remove(&mut self, txid: &TxId, tx: &Transaction) {
        self.txids.remove(txid);
        for vout in 0..tx.outputs.len() {
            self.outputs.remove(&OutPoint {
                txid: *txid,
                index: vout as u32,
            });
        }
    }
}

/// Refusals of transactions, for `GET /v1/tx/{txid}`: kept in memory, bounded, oldest
/// forgotten first. A refusal is only the gateway's word (the wallet treats it as a claim), so
/// it is not worth a database commit: writing each one made every invalid submission cost a
/// full fsync on the single writer.
pub struct RejectionCache {
    inner: Mutex<Refusals>,
}

/// Code and message per refused txid, and the txids oldest first.
type Refusals = (HashMap<TxId, (String, String)>, VecDeque<TxId>);

/// Refusals remembered.
const REJECTIONS_KEPT: usize = 100_000;

impl RejectionCache {
    fn new() -> Self {
        RejectionCache {
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }
    fn insert(&self, txid: TxId, f: &Failure) {
        let Ok(mut g) = self.inner.lock() else { return };
        let (map, order) = &mut *g;
        if map
            .insert(txid, (f.error.code.clone(), f.error.message.clone()))
            .is_none()
        {
            order.push_back(txid);
        }
        while order.len() > REJECTIONS_KEPT {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }
    fn forget(&self, txid: &TxId) {
        if let Ok(mut g) = self.inner.lock() {
            g.0.remove(txid);
        }
    }
    pub fn get(&self, txid: &TxId) -> Option<TxState> {
        let g = self.inner.lock().ok()?;
        g.0.get(txid).map(|(code, message)| TxState::Rejected {
            code: code.clone(),
            message: message.clone(),
        })
    }
}

pub struct Engine {
    pub store: Arc<dyn MirrorStore>,
    pub meta: LedgerMeta,
    pub params: ChainParams,
    pub config: EngineConfig,
    issuers: HashMap<AssetId, SigningKey>,
    cmd: mpsc::Sender<Cmd>,
    verify: mpsc::Sender<Vec<Candidate>>,
    index: Arc<RwLock<PoolIndex>>,
    pub rejections: Arc<RejectionCache>,
    pub events: broadcast::Sender<Event>,
    tip: watch::Receiver<TipRow>,
    /// A read-only replica's engine ([`Engine::start_read_only`]): no writer behind `cmd`
    /// (until a standby takes the writer's place).
    read_only: Arc<AtomicBool>,
    /// Where a gateway without the writer queues submissions for the producer (a replica or
    /// standby on PostgreSQL); `None` for a writer from the start.
    queue: Option<Arc<SubmissionQueue>>,
    /// Set by [`Engine::shutdown`]: the queue drainer stops.
    stopping: AtomicBool,
    /// Decompressed public keys, shared by prevalidation (each output's owner) and the
    /// verifier (each input's owner, usually an earlier output's): each key seen is
    /// decompressed once while it stays in the cache.
    keys: Arc<KeyCache>,
}

/// What a standby (`--standby`) needs to take the writer's place: the keys.
pub struct Standby {
    pub authority: SigningKey,
    pub issuers: HashMap<AssetId, SigningKey>,
}

/// What a read-only replica answers to what needs a writer.
const READ_ONLY: &str =
    "this gateway is a read-only replica: send this to the gateway that makes the blocks";

impl Engine {
    /// Loads the mempool and starts the verifier and writer threads.
    pub fn start(
        store: Arc<dyn MirrorStore>,
        meta: LedgerMeta,
        params: ChainParams,
        config: EngineConfig,
        authority: SigningKey,
        issuers: HashMap<AssetId, SigningKey>,
    ) -> Result<(Arc<Engine>, std::thread::JoinHandle<()>), StoreError> {
        let tip = store.tip()?;
        let tip_header = store
            .header_at(tip.height)?
            .ok_or_else(|| StoreError::Corrupt("tip header missing".into()))?;
        let (tip_tx, tip_rx) = watch::channel(tip.clone());
        let (events, _) = broadcast::channel(4096);
        let (cmd, rx) = mpsc::channel(8192);
        let (verify, verify_rx) = mpsc::channel(8192);
        let index = Arc::new(RwLock::new(PoolIndex::default()));
        let rejections = Arc::new(RejectionCache::new());
        let keys = Arc::new(KeyCache::new(KeyCache::DEFAULT_CAPACITY));
        let mut writer = Writer {
            store: store.clone(),
            params: params.clone(),
            config: config.clone(),
            authority,
            pool: HashMap::new(),
            spent_by: HashMap::new(),
            by_rate: BTreeSet::new(),
            clients: HashMap::new(),
            order: 0,
            index: index.clone(),
            rejections: rejections.clone(),
            dirty: false,
            tip,
            tip_header,
            tip_tx,
            events: events.clone(),
        };
        writer.reload_pool()?;
        tracing::info!(
            height = writer.tip.height,
            pool = writer.pool.len(),
            "ledger loaded"
        );
        let handle = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        let read_only = Arc::new(AtomicBool::new(false));
        let verifier = Verifier {
            to_writer: cmd.clone(),
            rejections: rejections.clone(),
            queue: None,
            read_only: read_only.clone(),
            keys: keys.clone(),
        };
        std::thread::Builder::new()
            .name("ledger-verifier".into())
            .spawn(move || verifier.run(verify_rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the verifier thread: {e}")))?;
        let engine = Arc::new(Engine {
            store,
            meta,
            params,
            config,
            issuers,
            cmd,
            verify,
            index,
            rejections,
            events,
            tip: tip_rx,
            read_only,
            queue: None,
            stopping: AtomicBool::new(false),
            keys,
        });
        engine.start_drainer()?;
        Ok((engine, handle))
    }

    /// The producer's side of the submission queue (PostgreSQL): a thread that takes what
    /// other gateways queued, whenever this engine is the writer (a standby's from its
    /// takeover on). Nothing on a store without a queue (SQLite).
    fn start_drainer(self: &Arc<Self>) -> Result<(), StoreError> {
        if !self.store.has_submission_queue() {
            return Ok(());
        }
        let engine = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("queue-drainer".into())
            .spawn(move || drain_queue(engine))
            .map_err(|e| StoreError::Backend(format!("cannot start the queue drainer: {e}")))?;
        Ok(())
    }

    /// A read-only replica's engine (`--read-only`, ADR 8): no writer and no verifier. A
    /// thread follows the database's tip and pool log (which the writing gateway changes)
    /// and tells subscribers what the writer's would hear, within `FOLLOW_EVERY`;
    /// submissions and sandbox commands are refused (503).
    ///
    /// With `standby` (`--standby`), the follower also tries the store's writer lock each
    /// time it looks ([`MirrorStore::take_writer_lock`]); once it has it (the writer died),
    /// it loads the pool from the database and becomes this engine's writer, and the engine
    /// accepts submissions and makes blocks from then on.
    pub fn start_read_only(
        store: Arc<dyn MirrorStore>,
        meta: LedgerMeta,
        params: ChainParams,
        config: EngineConfig,
        standby: Option<Standby>,
    ) -> Result<(Arc<Engine>, std::thread::JoinHandle<()>), StoreError> {
        let tip = store.tip()?;
        let (tip_tx, tip_rx) = watch::channel(tip.clone());
        let (events, _) = broadcast::channel(4096);
        let (cmd, rx) = mpsc::channel(8192);
        let (verify, verify_rx) = mpsc::channel(8192);
        let index = Arc::new(RwLock::new(PoolIndex::default()));
        let rejections = Arc::new(RejectionCache::new());
        let read_only = Arc::new(AtomicBool::new(true));
        let keys = Arc::new(KeyCache::new(KeyCache::DEFAULT_CAPACITY));
        // Submissions are verified here and queued for the producer in the database, on a
        // store that has a queue; the answers come back through it.
        let queue = if store.has_submission_queue() {
            let queue = Arc::new(SubmissionQueue {
                store: store.clone(),
                rejections: rejections.clone(),
                wait: config.submit_wait,
                waiting: Mutex::new(HashMap::new()),
                registered: AtomicU64::new(0),
                wake: Condvar::new(),
            });
            let weak = Arc::downgrade(&queue);
            std::thread::Builder::new()
                .name("queue-answers".into())
                .spawn(move || SubmissionQueue::run(weak))
                .map_err(|e| {
                    StoreError::Backend(format!("cannot start the queue's answer thread: {e}"))
                })?;
            Some(queue)
        } else {
            None
        };
        if queue.is_some() || standby.is_some() {
            let verifier = Verifier {
                to_writer: cmd.clone(),
                rejections: rejections.clone(),
                queue: queue.clone(),
                read_only: read_only.clone(),
                keys: keys.clone(),
            };
            std::thread::Builder::new()
                .name("ledger-verifier".into())
                .spawn(move || verifier.run(verify_rx))
                .map_err(|e| {
                    StoreError::Backend(format!("cannot start the verifier thread: {e}"))
                })?;
        }
        let is_standby = standby.is_some();
        let (promote, issuers) = match standby {
            Some(s) => (
                Some(Promotion {
                    params: params.clone(),
                    config: config.clone(),
                    authority: s.authority,
                    index: index.clone(),
                    rejections: rejections.clone(),
                    read_only: read_only.clone(),
                }),
                s.issuers,
            ),
            None => (None, HashMap::new()),
        };
        let follower = TipFollower {
            promote,
            store: store.clone(),
            tip_tx,
            events: events.clone(),
            recent: VecDeque::from([(tip.height, tip.id)]),
            pool_seq: store.mempool_changes(u64::MAX, 0)?.seq,
            finality_depth: config.finality_depth,
        };
        let handle = std::thread::Builder::new()
            .name("tip-follower".into())
            .spawn(move || follower.run(rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the tip follower: {e}")))?;
        tracing::info!(
            height = tip.height,
            "read-only replica: following the database"
        );
        let engine = Arc::new(Engine {
            store,
            meta,
            params,
            config,
            issuers,
            cmd,
            verify,
            index,
            rejections,
            events,
            tip: tip_rx,
            read_only,
            queue,
            stopping: AtomicBool::new(false),
            keys,
        });
        // Only a standby can become the producer, and drain the queue then.
        if is_standby {
            engine.start_drainer()?;
        }
        Ok((engine, handle))
    }

    /// Whether this engine has no writer (a read-only replica, or a standby that has not
    /// taken the writer's place).
    pub fn read_only(&self) -> bool {
        self.read_only.load(Ordering::Acquire)
    }

    /// Refuses (503) what only the block producer does: blocks, reorgs, the faucet.
    pub fn writable(&self) -> Result<(), Failure> {
        if self.read_only() {
            return Err(Failure::unavailable(READ_ONLY));
        }
        Ok(())
    }

    /// Submissions: the writer takes them, and so does a gateway that can queue them for
    /// the producer.
    fn accepts_submissions(&self) -> Result<(), Failure> {
        if self.queue.is_none() {
            return self.writable();
        }
        Ok(())
    }

    pub fn tip(&self) -> TipRow {
        self.tip.borrow().clone()
    }

    pub fn tip_watch(&self) -> watch::Receiver<TipRow> {
        self.tip.clone()
    }

    /// Transactions in this engine's pool (its writer's; a replica keeps none).
    pub fn pool_len(&self) -> usize {
        self.index.read().map_or(0, |i| i.txids.len())
    }

    /// Asks the writer to finish the queued work and stop.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.cmd.send(Cmd::Shutdown).await;
    }

    /// What the gateway knows about a transaction: the stored record, else a remembered
    /// refusal.
    pub fn tx_record(&self, txid: &TxId) -> Result<Option<TxRecord>, StoreError> {
        if let Some(rec) = self.store.tx(txid)? {
            return Ok(Some(rec));
        }
        Ok(self.rejections.get(txid).map(|state| TxRecord {
            txid: *txid,
            bytes: None,
            state,
        }))
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Failure> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Failure::unavailable(format!("worker failed: {e}")))?
    }

    /// Validates and submits many transactions (`POST /v1/txs`); one result per transaction,
    /// in order, each as [`Engine::submit`] would answer it. Their signatures are verified
    /// together, and the accepted ones share database commits.
    pub async fn submit_batch(
        self: &Arc<Self>,
        txs: Vec<Vec<u8>>,
        client: Option<IpAddr>,
    ) -> Vec<Result<SubmitTxResponse, Failure>> {
        let n = txs.len();
        if let Err(f) = self.accepts_submissions() {
            return vec![Err(f); n];
        }
        let this = self.clone();
        let pres = match Self::blocking(move || {
            Ok(txs
                .into_iter()
                .map(|b| this.prevalidate(b, client))
                .collect::<Vec<Result<Pre, Failure>>>())
        })
        .await
        {
            Ok(p) => p,
            Err(f) => return vec![Err(f); n],
        };
        let mut results: Vec<Option<Result<SubmitTxResponse, Failure>>> = Vec::with_capacity(n);
        let mut waiting = Vec::new();
        let mut candidates = Vec::new();
        for (i, pre) in pres.into_iter().enumerate() {
            match pre {
                Ok(Pre::Known(resp)) => results.push(Some(Ok(resp))),
                Ok(Pre::Valid(c)) => {
                    let (reply, rx) = oneshot::channel();
                    candidates.push(Candidate {
                        c,
                        reply: Reply::Direct(reply),
                    });
                    waiting.push((i, rx));
                    results.push(None);
                }
                Err(f) => results.push(Some(Err(f))),
            }
        }
        if !candidates.is_empty() && self.verify.send(candidates).await.is_err() {
            for (i, _) in waiting.drain(..) {
                results[i] = Some(Err(Failure::unavailable("the gateway is shutting down")));
            }
        }
        for (i, rx) in waiting {
            results[i] = Some(
                rx.await
                    .unwrap_or_else(|_| Err(Failure::unavailable("the gateway is shutting down"))),
            );
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Failure::unavailable("no answer"))))
            .collect()
    }

    /// Validates and submits a transaction; idempotent by txid. `client` is who sent it (its
    /// IP address), for the per-client share of the pool; `None` for the gateway itself.
    pub async fn submit(
        self: &Arc<Self>,
        bytes: Vec<u8>,
        client: Option<IpAddr>,
    ) -> Result<SubmitTxResponse, Failure> {
        self.accepts_submissions()?;
        // On the request's own thread where the store allows it (SQLite): a decode, a few
        // map lookups and at most one indexed read per input (tens of microseconds). Handing
        // it to the blocking pool cost more in thread switches than the work itself.
        let pre = if self.store.reads_on_runtime_threads() {
            self.prevalidate(bytes, client)?
        } else {
            let this = self.clone();
            Self::blocking(move || this.prevalidate(bytes, client)).await?
        };
        let c = match pre {
            Pre::Known(resp) => return Ok(resp),
            Pre::Valid(c) => c,
        };
        let (reply, rx) = oneshot::channel();
        self.verify
            .send(vec![Candidate {
                c,
                reply: Reply::Direct(reply),
            }])
            .await
            .map_err(|_| Failure::unavailable("the gateway is shutting down"))?;
        rx.await
            .map_err(|_| Failure::unavailable("the gateway is shutting down"))?
    }

    /// Refuses `failure` for `txid` (remembered for status lookups when the bytes had one).
    fn refuse(&self, txid: Option<TxId>, failure: Failure) -> Result<Pre, Failure> {
        if let Some(txid) = txid
            && failure.status != StatusCode::SERVICE_UNAVAILABLE
        {
            self.rejections.insert(txid, &failure);
        }
        Err(failure)
    }

    /// Everything but the input signatures, cheapest first, on the caller's thread: no
    /// database write, at most one indexed read per input and no decoding of stored
    /// transactions.
    fn prevalidate(&self, bytes: Vec<u8>, client: Option<IpAddr>) -> Result<Pre, Failure> {
        // The txid is hashed here once, from the bytes as they came, and reused by the checks.
        let (tx, txid) = match Transaction::decode_with_txid(&bytes) {
            Ok(decoded) => decoded,
            Err(e) => return Err(Failure::tx(&e)),
        };
        // Without the writer (a replica that queues for the producer) the pool is only in
        // the database: asked there, for this and for the outputs of pool parents below.
        let replica = self.read_only();
        let in_pool = if replica {
            matches!(
                self.store.tx(&txid)?.map(|r| r.state),
                Some(TxState::InPool { .. })
            )
        } else {
            self.index
                .read()
                .map_err(|_| Failure::unavailable("pool index lock poisoned"))?
                .txids
                .contains(&txid)
        };
        if in_pool {
            return Ok(Pre::Known(SubmitTxResponse {
                txid: txid.to_hex(),
                status: TxStatus::InPool,
                duplicate: true,
            }));
        }
        // Issuance is free only for the assets this ledger lists: anyone can make an issuer
        // key, and a mint-and-burn under it would otherwise fill blocks at no cost.
        for (n, s) in tx.issuances.iter().enumerate() {
            if !self.meta.assets.iter().any(|a| a.id() == s.asset()) {
                return self.refuse(
                    Some(txid),
                    Failure::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        codes::UNLISTED_ISSUANCE,
                        format!(
                            "issuance {n} ({}) is not of an asset this ledger lists",
                            s.label
                        ),
                    ),
                );
            }
        }
        for o in &tx.outputs {
            if !self.meta.assets.iter().any(|a| a.id() == o.asset) {
                return self.refuse(
                    Some(txid),
                    Failure::bad_request(
                        codes::UNKNOWN_ASSET,
                        format!("asset {} is not known to this ledger", o.asset),
                    ),
                );
            }
        }
        // Read before the lookups: if a block lands in between, the writer sees the tip moved
        // and looks again.
        let seen_tip = self.tip().id;
        let mut store_err = None;
        let result = tx.validate_deferred_with(&self.params, Some(txid), Some(&self.keys), |op| {
            let pooled = self
                .index
                .read()
                .ok()
                .and_then(|i| i.outputs.get(op).copied());
            if pooled.is_some() {
                return pooled;
            }
            let found = match self.store.utxo(op) {
                Ok(Some((o, _))) => Ok(Some(o)),
                Ok(None) if replica => self.stored_pool_output(op),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            found.unwrap_or_else(|e| {
                store_err = Some(e);
                None
            })
        });
        if let Some(e) = store_err {
            return Err(Failure::store(e));
        }
        let e = match result {
            Ok(check) => {
                return Ok(Pre::Valid(Checked {
                    bytes,
                    tx,
                    check,
                    client,
                    seen_tip,
                }));
            }
            Err(e) => e,
        };
        if let TxError::UnknownInput { txid: parent, .. } = &e {
            // Already confirmed (a resubmission)? Then its inputs are spent by itself.
            if let Some(rec) = self.store.tx(&txid)?
                && matches!(rec.state, TxState::Confirmed { .. })
            {
                let status = status_of(&rec.state, self.tip().height, self.config.finality_depth);
                return Ok(Pre::Known(SubmitTxResponse {
                    txid: txid.to_hex(),
                    status,
                    duplicate: true,
                }));
            }
            let parent_confirmed = matches!(
                self.store.tx(parent)?.map(|r| r.state),
                Some(TxState::Confirmed { .. })
            );
            let f = if parent_confirmed {
                Failure::double_spend(format!("{e}: it was already spent in a block"))
            } else {
                Failure::tx(&e)
            };
            return self.refuse(Some(txid), f);
        }
        let txid =
            (e.code() != codes::MALFORMED && e.code() != codes::WRONG_NETWORK).then_some(txid);
        self.refuse(txid, Failure::tx(&e))
    }

    /// An output of a pool transaction as the database has it (a replica's prevalidation).
    fn stored_pool_output(&self, op: &OutPoint) -> Result<Option<Output>, StoreError> {
        let Some(rec) = self.store.tx(&op.txid)? else {
            return Ok(None);
        };
        let (TxState::InPool { .. }, Some(bytes)) = (rec.state, rec.bytes) else {
            return Ok(None);
        };
        let tx = Transaction::decode(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("pool transaction {}: {e}", op.txid)))?;
        Ok(tx.outputs.get(op.index as usize).copied())
    }

    /// The producer: takes up to [`DRAIN_BATCH`] queued submissions and sends them the way
    /// of its own (prevalidation, the verifier, the writer, which answers them in its
    /// commit). `handed`: rows handed on and when; one still waiting after [`DRAIN_AGAIN`]
    /// is handed again (the commit that should have answered it failed). Returns whether
    /// there may be more to take now.
    fn drain_once(&self, handed: &mut HashMap<u64, Instant>) -> Result<bool, StoreError> {
        let rows = self.store.queued_submissions(DRAIN_BATCH)?;
        let full = rows.len() >= DRAIN_BATCH;
        let waiting: HashSet<u64> = rows.iter().map(|r| r.id).collect();
        handed.retain(|id, _| waiting.contains(id));
        let now = Instant::now();
        let mut answers = Vec::new();
        let mut candidates = Vec::new();
        for row in rows {
            if handed
                .get(&row.id)
                .is_some_and(|t| now.duration_since(*t) < DRAIN_AGAIN)
            {
                continue;
            }
            handed.insert(row.id, now);
            match self.prevalidate(row.bytes, row.client) {
                Ok(Pre::Known(resp)) => answers.push(queue_answer(row.id, &Ok(resp))),
                Ok(Pre::Valid(c)) => candidates.push(Candidate {
                    c,
                    reply: Reply::Queued(row.id),
                }),
                // This gateway's trouble (its storage), not an answer: taken again later.
                Err(f) if f.error.code == codes::UNAVAILABLE => {
                    handed.remove(&row.id);
                }
                Err(f) => answers.push(queue_answer(row.id, &Err(f))),
            }
        }
        let fresh = !answers.is_empty() || !candidates.is_empty();
        if !answers.is_empty() && self.cmd.blocking_send(Cmd::Answers(answers)).is_err() {
            return Ok(false);
        }
        if !candidates.is_empty() && self.verify.blocking_send(candidates).is_err() {
            return Ok(false);
        }
        Ok(full && fresh)
    }

    pub async fn mine(&self, blocks: u32) -> Result<Vec<BlockRef>, Failure> {
        self.writable()?;
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Mine { blocks, reply })
            .await
            .map_err(|_| Failure::unavailable("the gateway is shutting down"))?;
        rx.await
            .map_err(|_| Failure::unavailable("the gateway is shutting down"))?
    }

    pub async fn reorg(
        &self,
        depth: u64,
        include: Vec<Transaction>,
    ) -> Result<ReorgResponse, Failure> {
        self.writable()?;
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Reorg {
                depth,
                include,
                reply,
            })
            .await
            .map_err(|_| Failure::unavailable("the gateway is shutting down"))?;
        rx.await
            .map_err(|_| Failure::unavailable("the gateway is shutting down"))?
    }

    /// Sandbox faucet: a pure mint by the asset's issuer, paid to `owner`.
    pub fn faucet_tx(
        &self,
        asset: &AssetMeta,
        owner: PublicKey,
        amount: u64,
    ) -> Result<Transaction, Failure> {
        let key = self.issuers.get(&asset.id()).ok_or_else(|| {
            Failure::bad_request(
                codes::UNKNOWN_ASSET,
                format!("this gateway cannot mint {}", asset.symbol),
            )
        })?;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce)
            .map_err(|e| Failure::unavailable(format!("no randomness: {e}")))?;
        let mut tx = Transaction::new(self.params.network);
        tx.issuances = vec![notch_protocol::Issuance {
            issuer: asset.issuer,
            label: asset.symbol.clone(),
            mint: amount,
            burn: 0,
        }];
        tx.outputs = vec![Output {
            asset: asset.id(),
            amount,
            owner,
        }];
        tx.nonce = u64::from_le_bytes(nonce);
        tx.sign(&[key]).map_err(|e| Failure::tx(&e))?;
        Ok(tx)
    }
}

enum Pre {
    Known(SubmitTxResponse),
    Valid(Checked),
}

/// Queued submissions the producer takes at once.
const DRAIN_BATCH: usize = 1000;
/// A queued submission handed to the writer and still not answered after this is handed
/// again: the commit that was to answer it failed (it is never accepted twice: the second
/// time it is in the pool, and only the first answer is written).
const DRAIN_AGAIN: Duration = Duration::from_secs(5);
/// How often the producer looks at the queue unwoken (a queued submission NOTIFYs it).
const DRAIN_EVERY: Duration = Duration::from_millis(250);

/// The producer's queue drainer (a thread, PostgreSQL): while this engine is the writer,
/// takes what other gateways queued, when they NOTIFY and every [`DRAIN_EVERY`]. Ends with
/// the engine.
fn drain_queue(engine: Weak<Engine>) {
    let mut handed = HashMap::new();
    let mut failing = false;
    loop {
        let Some(e) = engine.upgrade() else { return };
        if e.stopping.load(Ordering::Acquire) {
            return;
        }
        if e.read_only() {
            drop(e);
            std::thread::sleep(DRAIN_EVERY);
            continue;
        }
        let more = match e.drain_once(&mut handed) {
            Ok(more) => {
                failing = false;
                more
            }
            Err(err) => {
                // Once per failing spell, not every quarter second.
                if !failing {
                    tracing::warn!(error = %err, "cannot read the submission queue");
                }
                failing = true;
                false
            }
        };
        let store = e.store.clone();
        drop(e);
        if !more {
            store.wait_for_queue(DRAIN_EVERY);
        }
    }
}

/// How often a gateway that queued submissions looks for their answers unwoken (the
/// producer's answering commit NOTIFYs).
const ANSWERS_EVERY: Duration = Duration::from_millis(100);

/// A queued row's transaction and the requests waiting for its answer, with their deadlines.
type Waiting = (TxId, Vec<(SubmitReply, Instant)>);

/// The submitting side of the queue (a replica or standby on PostgreSQL): verified
/// submissions are queued in the database for the producer, and each request waits for the
/// producer's answer, at most `wait`, then gets a 503 (the row stays queued: the producer
/// decides it when it runs, and a resubmission waits for the same row).
struct SubmissionQueue {
    store: Arc<dyn MirrorStore>,
    rejections: Arc<RejectionCache>,
    wait: Duration,
    /// Per queued row: its transaction and the requests waiting for it, with their deadlines.
    waiting: Mutex<HashMap<u64, Waiting>>,
    /// Counts registrations, so that the answer thread reads again before it sleeps when
    /// rows came while it read (their answer's NOTIFY may have come before they were known).
    registered: AtomicU64,
    wake: Condvar,
}

impl SubmissionQueue {
    /// Queues verified candidates (the verifier's thread: one write for its whole batch) and
    /// registers their requests for the answers.
    fn enqueue(&self, batch: Vec<Candidate>) {
        let subs: Vec<(TxId, &[u8], Option<IpAddr>)> = batch
            .iter()
            .map(|c| (c.c.check.txid, &c.c.bytes[..], c.c.client))
            .collect();
        let queued = self.store.enqueue_submissions(&subs);
        drop(subs);
        let ids = match queued {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot queue submissions for the block producer");
                let f = Failure::unavailable(format!(
                    "this gateway cannot queue the transaction for the block producer: {e}"
                ));
                for c in batch {
                    if let Reply::Direct(r) = c.reply {
                        let _ = r.send(Err(f.clone()));
                    }
                }
                return;
            }
        };
        let deadline = Instant::now() + self.wait;
        let Ok(mut waiting) = self.waiting.lock() else {
            return;
        };
        for (c, id) in batch.into_iter().zip(ids) {
            if let Reply::Direct(r) = c.reply {
                waiting
                    .entry(id)
                    .or_insert_with(|| (c.c.check.txid, Vec::new()))
                    .1
                    .push((r, deadline));
            }
        }
        self.registered.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_all();
    }

    /// The answer thread: reads the answers of the rows requests wait for, when the
    /// producer NOTIFYs and every [`ANSWERS_EVERY`]; answers each request, or after its
    /// wait a 503. Ends with the queue.
    fn run(queue: Weak<SubmissionQueue>) {
        let mut failing = false;
        loop {
            let Some(q) = queue.upgrade() else { return };
            let (ids, mark) = {
                let Ok(waiting) = q.waiting.lock() else {
                    return;
                };
                if waiting.is_empty() {
                    // Woken by a registration; the timeout notices the queue's end.
                    let _ = q.wake.wait_timeout(waiting, Duration::from_secs(1));
                    continue;
                }
                (
                    waiting.keys().copied().collect::<Vec<u64>>(),
                    q.registered.load(Ordering::Acquire),
                )
            };
            let answers = match q.store.queue_answers(&ids) {
                Ok(a) => {
                    failing = false;
                    a
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot read the block producer's answers");
                    }
                    failing = true;
                    Vec::new()
                }
            };
            q.answer(answers);
            if q.registered.load(Ordering::Acquire) != mark {
                continue;
            }
            let store = q.store.clone();
            drop(q);
            store.wait_for_answers(ANSWERS_EVERY);
        }
    }

    /// Hands out `answers`, then 503s to the requests whose wait is over.
    fn answer(&self, answers: Vec<QueueAnswer>) {
        let Ok(mut waiting) = self.waiting.lock() else {
            return;
        };
        for a in answers {
            let Some((txid, requests)) = waiting.remove(&a.id) else {
                continue;
            };
            let result = answer_result(&a);
            if let Err(f) = &result
                && f.status != StatusCode::SERVICE_UNAVAILABLE
            {
                // As the producer remembers it, for `GET /v1/tx/{txid}` here.
                self.rejections.insert(txid, f);
            }
            for (r, _) in requests {
                let _ = r.send(result.clone());
            }
        }
        let now = Instant::now();
        let secs = self.wait.as_secs_f64();
        waiting.retain(|_, (_, requests)| {
            let (over, left): (Vec<_>, Vec<_>) = std::mem::take(requests)
                .into_iter()
                .partition(|(_, deadline)| *deadline <= now);
            for (r, _) in over {
                let _ = r.send(Err(Failure::unavailable(format!(
                    "no block producer answered within {secs:.0} s: the transaction stays \
                     queued in the gateway's database and is decided when a producer runs; \
                     submitting it again is safe"
                ))));
            }
            *requests = left;
            !requests.is_empty()
        });
    }
}

/// Most signatures verified in one batch.
const MAX_VERIFY_BATCH: usize = 4096;

/// The verifier thread: takes every checked transaction waiting, verifies all their input
/// signatures in one batch (about 3x the rate of one by one), and hands the valid ones to the
/// writer. Batching is what lets concurrent single submissions share the work.
struct Verifier {
    to_writer: mpsc::Sender<Cmd>,
    rejections: Arc<RejectionCache>,
    /// A gateway without the writer (`read_only`) queues the valid ones for the producer.
    queue: Option<Arc<SubmissionQueue>>,
    read_only: Arc<AtomicBool>,
    /// The engine's decompressed keys (each input's owner).
    keys: Arc<KeyCache>,
}

impl Verifier {
    fn run(self, mut rx: mpsc::Receiver<Vec<Candidate>>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = first;
            let mut sigs: usize = batch.iter().map(|c| c.c.tx.inputs.len()).sum();
            while sigs < MAX_VERIFY_BATCH {
                match rx.try_recv() {
                    Ok(more) => {
                        sigs += more.iter().map(|c| c.c.tx.inputs.len()).sum::<usize>();
                        batch.extend(more);
                    }
                    Err(_) => break,
                }
            }
            let mut answers = Vec::new();
            let valid = self.verify(batch, &mut answers);
            if let Some(queue) = &self.queue
                && self.read_only.load(Ordering::Acquire)
            {
                // Only direct submissions here: nothing to answer in the queue.
                if !valid.is_empty() {
                    queue.enqueue(valid);
                }
                continue;
            }
            if !answers.is_empty() {
                let _ = self.to_writer.blocking_send(Cmd::Answers(answers));
            }
            if valid.is_empty() {
                continue;
            }
            if let Err(mpsc::error::SendError(Cmd::Submit(lost))) =
                self.to_writer.blocking_send(Cmd::Submit(valid))
            {
                for c in lost {
                    // A queued one stays queued, for the next producer.
                    if let Reply::Direct(r) = c.reply {
                        let _ = r.send(Err(Failure::unavailable("the gateway is shutting down")));
                    }
                }
            }
        }
    }

    /// The candidates whose signatures are all valid; the others are answered here (a
    /// queued one's answer into `answers`, for the writer to write).
    fn verify(&self, batch: Vec<Candidate>, answers: &mut Vec<QueueAnswer>) -> Vec<Candidate> {
        let all_valid = batch.len() > 1
            && verify_id_signatures_cached(
                batch.iter().flat_map(|c| {
                    c.c.tx
                        .input_signatures(&c.c.check)
                        .map(|(k, s)| (k, &c.c.check.txid.0, s))
                }),
                &self.keys,
            );
        if all_valid {
            return batch;
        }
        // One by one, to find which are wrong (or a batch of one).
        let mut valid = Vec::with_capacity(batch.len());
        for c in batch {
            match c
                .c
                .tx
                .verify_input_signatures_with(&c.c.check, Some(&self.keys))
            {
                Ok(()) => valid.push(c),
                Err(e) => {
                    let f = Failure::tx(&e);
                    self.rejections.insert(c.c.check.txid, &f);
                    match c.reply {
                        Reply::Direct(r) => {
                            let _ = r.send(Err(f));
                        }
                        Reply::Queued(id) => answers.push(queue_answer(id, &Err(f))),
                    }
                }
            }
        }
        valid
    }
}

struct PoolTx {
    seq: u64,
    tx: Transaction,
    addresses: Arc<Vec<PublicKey>>,
    /// Fee per byte, in thousandths of a base unit: what orders the pool.
    rate: u64,
    /// Arrival order (in memory), to break ties in `rate`.
    order: u64,
    client: Option<IpAddr>,
}

impl PoolTx {
    fn rate_key(&self, txid: TxId) -> RateKey {
        // Among equal rates, the newest sorts first: evicted first, mined last.
        (self.rate, u64::MAX - self.order, txid)
    }
}

/// `(fee rate, newest first, txid)`: ascending is eviction order, descending is mining order.
type RateKey = (u64, u64, TxId);

fn fee_rate(fee: u64, size: usize) -> u64 {
    let rate = (fee as u128 * 1000) / (size.max(1) as u128);
    u64::try_from(rate).unwrap_or(u64::MAX)
}

fn addresses_of(tx: &Transaction, spent: &[Output]) -> Arc<Vec<PublicKey>> {
    let mut set: Vec<PublicKey> = spent
        .iter()
        .map(|o| o.owner)
        .chain(tx.outputs.iter().map(|o| o.owner))
        .collect();
    set.sort();
    set.dedup();
    Arc::new(set)
}

struct Writer {
    store: Arc<dyn MirrorStore>,
    params: ChainParams,
    config: EngineConfig,
    authority: SigningKey,
    pool: HashMap<TxId, PoolTx>,
    spent_by: HashMap<OutPoint, TxId>,
    by_rate: BTreeSet<RateKey>,
    /// Pool transactions per client.
    clients: HashMap<IpAddr, usize>,
    order: u64,
    index: Arc<RwLock<PoolIndex>>,
    rejections: Arc<RejectionCache>,
    /// A write failed, or failed after its commit: the in-memory state (tip, pool) may differ
    /// from the database, so it is loaded again before the next command.
    dirty: bool,
    tip: TipRow,
    tip_header: BlockHeader,
    tip_tx: watch::Sender<TipRow>,
    events: broadcast::Sender<Event>,
}

const EVICTED: &str = "evicted from a full mempool by transactions paying a higher fee rate";

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut pending: Option<Cmd> = None;
        loop {
            let cmd = match pending.take() {
                Some(c) => c,
                None => match rx.blocking_recv() {
                    Some(c) => c,
                    None => break,
                },
            };
            // Not for a shutdown: while the database is away recovery fails, and a refused
            // shutdown would leave the writer waiting for a command that never comes.
            if !matches!(cmd, Cmd::Shutdown)
                && let Err(f) = self.recover()
            {
                Self::refuse(cmd, f);
                continue;
            }
            match cmd {
                Cmd::Submit(batch) => self.submit_waiting(batch, Vec::new(), &mut rx, &mut pending),
                Cmd::Answers(answers) => {
                    self.submit_waiting(Vec::new(), answers, &mut rx, &mut pending)
                }
                Cmd::Mine { blocks, reply } => {
                    let r = self.mine(blocks);
                    let _ = reply.send(r);
                }
                Cmd::Reorg {
                    depth,
                    include,
                    reply,
                } => {
                    let r = self.reorg(depth, include);
                    let _ = reply.send(r);
                }
                Cmd::Shutdown => {
                    // Finish what is already queued (each submitter gets its answer), then stop.
                    rx.close();
                    while let Ok(c) = rx.try_recv() {
                        match c {
                            Cmd::Submit(batch) if self.recover().is_ok() => {
                                self.submit_batch(batch, Vec::new())
                            }
                            Cmd::Answers(answers) if self.recover().is_ok() => {
                                self.submit_batch(Vec::new(), answers)
                            }
                            other => Self::refuse(
                                other,
                                Failure::unavailable("the gateway is shutting down"),
                            ),
                        }
                    }
                    break;
                }
            }
        }
        tracing::info!("ledger writer stopped");
    }

    /// Everything verified that is waiting (and the queued submissions' answers waiting)
    /// goes into one commit.
    fn submit_waiting(
        &mut self,
        mut batch: Vec<Candidate>,
        mut answers: Vec<QueueAnswer>,
        rx: &mut mpsc::Receiver<Cmd>,
        pending: &mut Option<Cmd>,
    ) {
        while batch.len() < MAX_VERIFY_BATCH {
            match rx.try_recv() {
                Ok(Cmd::Submit(more)) => batch.extend(more),
                Ok(Cmd::Answers(more)) => answers.extend(more),
                Ok(other) => {
                    *pending = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        self.submit_batch(batch, answers);
    }

    /// Answers a command that will not run (a queued submission stays queued: it is taken
    /// again).
    fn refuse(cmd: Cmd, f: Failure) {
        match cmd {
            Cmd::Submit(batch) => {
                for c in batch {
                    if let Reply::Direct(r) = c.reply {
                        let _ = r.send(Err(f.clone()));
                    }
                }
            }
            Cmd::Answers(_) => {}
            Cmd::Mine { reply, .. } => {
                let _ = reply.send(Err(f));
            }
            Cmd::Reorg { reply, .. } => {
                let _ = reply.send(Err(f));
            }
            Cmd::Shutdown => {}
        }
    }

    /// After a failed write, makes memory equal to the database again.
    fn recover(&mut self) -> Result<(), Failure> {
        if !self.dirty {
            return Ok(());
        }
        let tip = self.store.tip()?;
        let header = self
            .store
            .header_at(tip.height)?
            .ok_or_else(|| Failure::store(StoreError::Corrupt("tip header missing".into())))?;
        self.reload_pool()?;
        self.set_tip(header);
        self.dirty = false;
        tracing::warn!(
            height = self.tip.height,
            pool = self.pool.len(),
            "ledger state reloaded after a failed write"
        );
        Ok(())
    }

    /// Loads the pool from the database (at start, after a reorg, after a failed write).
    /// Which client sent a transaction is kept for the ones that stay.
    fn reload_pool(&mut self) -> Result<(), StoreError> {
        let clients: HashMap<TxId, IpAddr> = self
            .pool
            .iter()
            .filter_map(|(t, p)| p.client.map(|c| (*t, c)))
            .collect();
        let entries = self.store.mempool()?;
        self.pool.clear();
        self.spent_by.clear();
        self.by_rate.clear();
        self.clients.clear();
        crate::metrics::pool_cleared();
        if let Ok(mut i) = self.index.write() {
            *i = PoolIndex::default();
        }
        for e in entries {
            let mut spent = Vec::with_capacity(e.tx.inputs.len());
            for i in &e.tx.inputs {
                if let Some(o) = self.store.output_of(i)? {
                    spent.push(o);
                }
            }
            let addresses = addresses_of(&e.tx, &spent);
            let rate = fee_rate(e.tx.fee, e.tx.encoded_len());
            self.insert(
                e.txid,
                e.seq,
                e.tx,
                addresses,
                rate,
                clients.get(&e.txid).copied(),
            );
        }
        Ok(())
    }

    /// Puts a transaction into every in-memory view of the pool.
    fn insert(
        &mut self,
        txid: TxId,
        seq: u64,
        tx: Transaction,
        addresses: Arc<Vec<PublicKey>>,
        rate: u64,
        client: Option<IpAddr>,
    ) {
        for op in &tx.inputs {
            self.spent_by.insert(*op, txid);
        }
        crate::metrics::pool_changed(1.0, tx.encoded_len());
        if let Ok(mut i) = self.index.write() {
            i.insert(txid, &tx);
        }
        if let Some(c) = client {
            *self.clients.entry(c).or_default() += 1;
        }
        self.order += 1;
        let p = PoolTx {
            seq,
            tx,
            addresses,
            rate,
            order: self.order,
            client,
        };
        self.by_rate.insert(p.rate_key(txid));
        self.pool.insert(txid, p);
    }

    /// Takes a transaction out of every in-memory view of the pool.
    fn remove(&mut self, txid: &TxId) -> Option<PoolTx> {
        let p = self.pool.remove(txid)?;
        crate::metrics::pool_changed(-1.0, p.tx.encoded_len());
        for op in &p.tx.inputs {
            if self.spent_by.get(op) == Some(txid) {
                self.spent_by.remove(op);
            }
        }
        if let Ok(mut i) = self.index.write() {
            i.remove(txid, &p.tx);
        }
        if let Some(c) = p.client
            && let Some(n) = self.clients.get_mut(&c)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.clients.remove(&c);
            }
        }
        self.by_rate.remove(&p.rate_key(*txid));
        Some(p)
    }

    fn status(&self, state: &TxState) -> TxStatus {
        status_of(state, self.tip.height, self.config.finality_depth)
    }

    /// Spendability of one input against the pool and, if `look_again`, the chain (the
    /// reader found it unspent, but a block may have come since).
    fn check_input(&self, op: &OutPoint, look_again: bool) -> Result<(), Failure> {
        if let Some(by) = self.spent_by.get(op) {
            return Err(Failure::double_spend(format!(
                "{}:{} is already spent by {} in the mempool",
                op.txid, op.index, by
            )));
        }
        if let Some(p) = self.pool.get(&op.txid) {
            return if (op.index as usize) < p.tx.outputs.len() {
                Ok(())
            } else {
                Err(Failure::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    codes::UNKNOWN_INPUT,
                    format!("{}:{} does not exist", op.txid, op.index),
                ))
            };
        }
        if !look_again || self.store.utxo(op)?.is_some() {
            return Ok(());
        }
        match self.store.tx(&op.txid)?.map(|r| r.state) {
            Some(TxState::Confirmed { .. }) => Err(Failure::double_spend(format!(
                "{}:{} was already spent in a block",
                op.txid, op.index
            ))),
            _ => Err(Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                codes::UNKNOWN_INPUT,
                format!(
                    "{}:{} is not an unspent output of the best chain or the mempool",
                    op.txid, op.index
                ),
            )),
        }
    }

    /// Pool transactions to drop so that one paying `rate` fits: the cheapest one already
    /// stored (with the pool transactions that spend its outputs), if it pays less.
    fn eviction(&self, rate: u64, planned: &HashSet<TxId>) -> Option<Vec<TxId>> {
        'victims: for &(victim_rate, _, victim) in &self.by_rate {
            if victim_rate >= rate {
                return None;
            }
            if planned.contains(&victim) {
                continue;
            }
            let mut out = vec![victim];
            let mut k = 0;
            while k < out.len() {
                let t = out[k];
                k += 1;
                let Some(p) = self.pool.get(&t) else { continue };
                // Transactions of the batch being written cannot be dropped before they exist.
                if p.seq == 0 {
                    continue 'victims;
                }
                for vout in 0..p.tx.outputs.len() {
                    let op = OutPoint {
                        txid: t,
                        index: vout as u32,
                    };
                    if let Some(child) = self.spent_by.get(&op)
                        && !out.contains(child)
                        && !planned.contains(child)
                    {
                        out.push(*child);
                    }
                }
                if out.len() > 1000 {
                    continue 'victims;
                }
            }
            return Some(out);
        }
        None
    }

    /// Decides a batch of verified candidates (pool policy: double spends, the per-client
    /// share, fee-rate eviction) and commits the pool change in one write, with `queued`
    /// (answers to queued submissions decided before the writer) and the answers of this
    /// batch's queued candidates. Direct submitters are answered after the commit.
    fn submit_batch(&mut self, batch: Vec<Candidate>, mut queued: Vec<QueueAnswer>) {
        let mut adds = Vec::new();
        let mut evicted: Vec<(TxId, String)> = Vec::new();
        let mut planned: HashSet<TxId> = HashSet::new();
        let mut answers: Vec<(Reply, Result<SubmitTxResponse, Failure>)> = Vec::new();
        let mut accepted: Vec<(TxId, Reply)> = Vec::new();
        for Candidate { c, reply } in batch {
            let txid = c.check.txid;
            if self.pool.contains_key(&txid) {
                answers.push((
                    reply,
                    Ok(SubmitTxResponse {
                        txid: txid.to_hex(),
                        status: TxStatus::InPool,
                        duplicate: true,
                    }),
                ));
                continue;
            }
            let look_again = c.seen_tip != self.tip.id;
            if look_again || c.tx.inputs.is_empty() {
                // A block since the reader's look may hold it; a pure mint has no inputs
                // whose spending would show that.
                match self.store.tx(&txid) {
                    Ok(Some(rec)) if matches!(rec.state, TxState::Confirmed { .. }) => {
                        let status = self.status(&rec.state);
                        answers.push((
                            reply,
                            Ok(SubmitTxResponse {
                                txid: txid.to_hex(),
                                status,
                                duplicate: true,
                            }),
                        ));
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        answers.push((reply, Err(Failure::store(e))));
                        continue;
                    }
                }
            }
            if let Err(f) =
                c.tx.inputs
                    .iter()
                    .try_for_each(|op| self.check_input(op, look_again))
            {
                if f.status != StatusCode::SERVICE_UNAVAILABLE {
                    self.rejections.insert(txid, &f);
                }
                answers.push((reply, Err(f)));
                continue;
            }
            if let Some(client) = c.client {
                let held = self.clients.get(&client).copied().unwrap_or(0);
                if held >= self.config.max_pool_per_client {
                    answers.push((
                        reply,
                        Err(Failure::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            codes::RATE_LIMITED,
                            format!(
                                "this client already has {held} transactions waiting in the mempool; retry after the next block"
                            ),
                        )),
                    ));
                    continue;
                }
            }
            let rate = fee_rate(c.check.fee, c.check.size);
            if self.pool.len() - planned.len() >= self.config.max_pool_txs {
                match self.eviction(rate, &planned) {
                    Some(victims) => {
                        for v in victims {
                            planned.insert(v);
                            evicted.push((v, EVICTED.into()));
                        }
                    }
                    None => {
                        let floor = self.by_rate.first().map_or(0, |k| k.0);
                        answers.push((
                            reply,
                            Err(Failure::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                codes::POOL_FULL,
                                format!(
                                    "the mempool is full; a fee above {} base units per 1000 bytes is needed now, or retry later",
                                    floor
                                ),
                            )),
                        ));
                        continue;
                    }
                }
            }
            adds.push(PoolAdd {
                txid,
                bytes: c.bytes,
            });
            let addresses = addresses_of(&c.tx, &c.check.spent);
            self.insert(txid, 0, c.tx, addresses, rate, c.client);
            accepted.push((txid, reply));
        }
        // Queued submissions' answers go into the commit (none on SQLite, which has no
        // queue: its path is exactly the one without them).
        let mut direct = Vec::with_capacity(answers.len());
        for (reply, result) in answers {
            match reply {
                Reply::Direct(r) => direct.push((r, result)),
                // This gateway's storage trouble is no answer: the row stays queued.
                Reply::Queued(_) if matches!(&result, Err(f) if f.error.code == codes::UNAVAILABLE) =>
                    {}
                Reply::Queued(id) => queued.push(queue_answer(id, &result)),
            }
        }
        for (txid, reply) in &accepted {
            if let Reply::Queued(id) = reply {
                queued.push(queue_answer(
                    *id,
                    &Ok(SubmitTxResponse {
                        txid: txid.to_hex(),
                        status: TxStatus::InPool,
                        duplicate: false,
                    }),
                ));
            }
        }
        if !adds.is_empty() || !evicted.is_empty() || !queued.is_empty() {
            let written = if queued.is_empty() {
                self.store.add_to_pool(&adds, &evicted)
            } else {
                self.store.add_to_pool_answering(&adds, &evicted, &queued)
            };
            match written {
                Ok(seqs) => {
                    for (add, seq) in adds.iter().zip(seqs) {
                        if let Some(p) = self.pool.get_mut(&add.txid) {
                            p.seq = seq;
                        }
                    }
                    for (txid, reason) in evicted {
                        if let Some(p) = self.remove(&txid) {
                            let _ = self.events.send(Event::Tx {
                                txid,
                                status: TxStatus::Dropped { reason },
                                addresses: p.addresses,
                            });
                        }
                    }
                    for (txid, reply) in accepted {
                        self.rejections.forget(&txid);
                        if let Some(p) = self.pool.get(&txid) {
                            let _ = self.events.send(Event::Tx {
                                txid,
                                status: TxStatus::InPool,
                                addresses: p.addresses.clone(),
                            });
                        }
                        if let Reply::Direct(r) = reply {
                            let _ = r.send(Ok(SubmitTxResponse {
                                txid: txid.to_hex(),
                                status: TxStatus::InPool,
                                duplicate: false,
                            }));
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot persist submitted transactions");
                    crate::metrics::database_error(crate::metrics::During::Write);
                    // Queued ones stay queued (unanswered), and are taken again.
                    let failed = !accepted.is_empty();
                    for (txid, reply) in accepted {
                        self.remove(&txid);
                        if let Reply::Direct(r) = reply {
                            let _ = r.send(Err(Failure::unavailable(format!(
                                "the gateway's storage failed: {e}"
                            ))));
                        }
                    }
                    if failed {
                        self.dirty = true;
                    }
                }
            }
        }
        for (reply, result) in direct {
            let _ = reply.send(result);
        }
    }

    /// Pool transactions for the next block: highest fee rate first, parents before children.
    fn assemble(&self) -> Vec<Transaction> {
        let order: Vec<TxId> = self.by_rate.iter().rev().map(|k| k.2).collect();
        let mut included: HashSet<TxId> = HashSet::new();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let budget = notch_protocol::block::MAX_BLOCK_BYTES - 1024;
        loop {
            let mut progress = false;
            for txid in &order {
                if out.len() >= self.config.max_block_txs {
                    return out;
                }
                if included.contains(txid) {
                    continue;
                }
                let Some(p) = self.pool.get(txid) else {
                    continue;
                };
                let ready =
                    p.tx.inputs
                        .iter()
                        .all(|i| !self.pool.contains_key(&i.txid) || included.contains(&i.txid));
                let size = p.tx.encoded_len() + 4;
                if ready && bytes + size <= budget {
                    included.insert(*txid);
                    bytes += size;
                    out.push(p.tx.clone());
                    progress = true;
                }
            }
            if !progress || included.len() == self.pool.len() {
                return out;
            }
        }
    }

    fn set_tip(&mut self, header: BlockHeader) {
        self.tip = TipRow {
            height: header.height,
            id: header.id(),
            time: header.time,
        };
        self.tip_header = header;
        self.tip_tx.send_replace(self.tip.clone());
    }

    fn mine(&mut self, blocks: u32) -> Result<Vec<BlockRef>, Failure> {
        let mut mined = Vec::new();
        for _ in 0..blocks {
            let txs = self.assemble();
            let mut block = Block::build(
                self.params.network,
                Some(&self.tip_header),
                unix_now(),
                0,
                txs,
            );
            let id = block.header.sign(&self.authority);
            if let Err(e) = self.store.apply_block(&block) {
                self.dirty = true;
                return Err(e.into());
            }
            crate::metrics::block_produced(block.txs.len());
            let height = block.header.height;
            let mut confirmed = Vec::new();
            for tx in &block.txs {
                let txid = tx.txid();
                if let Some(p) = self.remove(&txid) {
                    confirmed.push((txid, p.addresses));
                }
            }
            self.set_tip(block.header.clone());
            // Empty blocks on the sandbox timer would drown the log at info.
            if block.txs.is_empty() {
                tracing::debug!(height, id = %id, "empty block produced");
            } else {
                tracing::info!(height, txs = block.txs.len(), id = %id, "block produced");
            }
            let _ = self.events.send(Event::Tip(tip_info(&self.tip)));
            let state = TxState::Confirmed {
                height,
                block_id: id,
            };
            for (txid, addresses) in confirmed {
                let _ = self.events.send(Event::Tx {
                    txid,
                    status: self.status(&state),
                    addresses,
                });
            }
            self.announce_finality();
            mined.push(BlockRef {
                height,
                hash: id.to_hex(),
            });
        }
        Ok(mined)
    }

    /// Tells subscribers about the transactions that just became final.
    fn announce_finality(&self) {
        announce_finality(
            self.store.as_ref(),
            &self.events,
            self.tip.height,
            self.config.finality_depth,
        );
    }

    fn reorg(&mut self, depth: u64, include: Vec<Transaction>) -> Result<ReorgResponse, Failure> {
        if !self.config.sandbox {
            return Err(Failure::not_found("reorgs exist only in sandbox mode"));
        }
        if depth == 0 || depth > self.tip.height || depth >= self.config.finality_depth.max(2) {
            return Err(Failure::bad_request(
                codes::BAD_REQUEST,
                format!(
                    "depth must be between 1 and min(tip height {}, finality depth {} - 1)",
                    self.tip.height, self.config.finality_depth
                ),
            ));
        }
        let old_tip = self.tip.clone();
        let fork_height = self.tip.height - depth;
        let old_blocks = self.store.blocks_at(fork_height + 1, depth as usize)?;
        let fork_header = self
            .store
            .header_at(fork_height)?
            .ok_or_else(|| Failure::store(StoreError::Corrupt("fork header missing".into())))?;

        // The unspent set at the fork point, as an overlay over the stored (tip) set.
        let mut view = Overlay {
            store: self.store.clone(),
            added: HashMap::new(),
            removed: HashSet::new(),
        };
        for b in old_blocks.iter().rev() {
            for tx in b.txs.iter().rev() {
                let txid = tx.txid();
                for vout in 0..tx.outputs.len() {
                    view.remove(OutPoint {
                        txid,
                        index: vout as u32,
                    });
                }
                for i in &tx.inputs {
                    let o = self.store.output_of(i)?.ok_or_else(|| {
                        Failure::store(StoreError::Corrupt(format!(
                            "missing output {}:{}",
                            i.txid, i.index
                        )))
                    })?;
                    view.restore(*i, o);
                }
            }
        }
        // The transactions to include must be valid at the fork point, each once, and not
        // already on the chain below it (a block never holds a txid the chain has: re-including
        // a confirmed mint would bring back its spent outputs).
        let mut included = HashSet::new();
        for (n, tx) in include.iter().enumerate() {
            let txid = tx.txid();
            if included.contains(&txid) {
                return Err(Failure::bad_request(
                    codes::BAD_REQUEST,
                    format!("include_txs[{n}] ({txid}) is listed twice"),
                ));
            }
            if let Some(TxState::Confirmed { height, .. }) = self.store.tx(&txid)?.map(|r| r.state)
                && height <= fork_height
            {
                return Err(Failure::bad_request(
                    codes::BAD_REQUEST,
                    format!(
                        "include_txs[{n}] ({txid}) is already on the chain at height {height}, below the fork point"
                    ),
                ));
            }
            let mut err = None;
            let check = tx.validate(&self.params, |op| match view.get(op) {
                Ok(o) => o,
                Err(e) => {
                    err = Some(e);
                    None
                }
            });
            if let Some(e) = err {
                return Err(Failure::store(e));
            }
            let check = check.map_err(|e| {
                let mut f = Failure::tx(&e);
                f.error.message = format!("include_txs[{n}]: {}", f.error.message);
                f
            })?;
            for i in &tx.inputs {
                view.remove(*i);
            }
            for (vout, o) in tx.outputs.iter().enumerate() {
                view.restore(
                    OutPoint {
                        txid: check.txid,
                        index: vout as u32,
                    },
                    *o,
                );
            }
            included.insert(check.txid);
        }
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce)
            .map_err(|e| Failure::unavailable(format!("no randomness: {e}")))?;
        let nonce = u64::from_le_bytes(nonce) | 1;
        let now = unix_now();
        let mut new_blocks: Vec<Block> = Vec::new();
        for k in 0..=depth {
            let prev = new_blocks.last().map_or(&fork_header, |b| &b.header);
            let txs = if k == 0 { include.clone() } else { Vec::new() };
            let mut b = Block::build(self.params.network, Some(prev), now, nonce, txs);
            b.header.sign(&self.authority);
            new_blocks.push(b);
        }

        // Candidates for the new pool: orphaned transactions (chain order), then the pool.
        let mut candidates: Vec<(TxId, Transaction, bool)> = Vec::new();
        for b in &old_blocks {
            for tx in &b.txs {
                let txid = tx.txid();
                if !included.contains(&txid) {
                    candidates.push((txid, tx.clone(), true));
                }
            }
        }
        let mut pooled: Vec<(&TxId, &PoolTx)> = self.pool.iter().collect();
        pooled.sort_by_key(|(_, p)| p.seq);
        for (txid, p) in pooled {
            if !included.contains(txid) {
                candidates.push((*txid, p.tx.clone(), false));
            }
        }
        let mut undecided: HashSet<TxId> = candidates.iter().map(|c| c.0).collect();
        let mut new_pool: HashMap<TxId, usize> = HashMap::new();
        let mut new_spent: HashSet<OutPoint> = HashSet::new();
        let mut to_pool = Vec::new();
        let mut returned = Vec::new();
        let mut dropped: Vec<(TxId, String)> = Vec::new();
        loop {
            let mut progress = false;
            for (txid, tx, orphan) in &candidates {
                if !undecided.contains(txid) {
                    continue;
                }
                let mut verdict = Some(true);
                for i in &tx.inputs {
                    if new_spent.contains(i) {
                        verdict = Some(false);
                        break;
                    }
                    if let Some(&n) = new_pool.get(&i.txid) {
                        if (i.index as usize) >= candidates[n].1.outputs.len() {
                            verdict = Some(false);
                            break;
                        }
                        continue;
                    }
                    if undecided.contains(&i.txid) {
                        verdict = None;
                        continue;
                    }
                    if view.get(i)?.is_none() {
                        verdict = Some(false);
                        break;
                    }
                }
                match verdict {
                    Some(true) => {
                        undecided.remove(txid);
                        if let Some(n) = candidates.iter().position(|c| c.0 == *txid) {
                            new_pool.insert(*txid, n);
                        }
                        new_spent.extend(tx.inputs.iter().copied());
                        if *orphan {
                            to_pool.push(PoolAdd {
                                txid: *txid,
                                bytes: tx.encode(),
                            });
                            returned.push(txid.to_hex());
                        }
                        progress = true;
                    }
                    Some(false) => {
                        undecided.remove(txid);
                        dropped.push((
                            *txid,
                            "a reorganisation made its inputs spent or missing".into(),
                        ));
                        progress = true;
                    }
                    None => {}
                }
            }
            if !progress {
                break;
            }
        }
        for txid in undecided {
            dropped.push((
                txid,
                "a reorganisation made its inputs spent or missing".into(),
            ));
        }
        let plan = ReorgPlan {
            fork_height,
            new_blocks: new_blocks.clone(),
            to_pool,
            dropped: dropped.clone(),
        };
        if let Err(e) = self.store.reorg(&plan) {
            self.dirty = true;
            return Err(e.into());
        }
        let addresses_before: HashMap<TxId, Arc<Vec<PublicKey>>> = self
            .pool
            .iter()
            .map(|(k, p)| (*k, p.addresses.clone()))
            .collect();
        // The reorg is committed: from here on a failure leaves memory behind the database,
        // so it is reloaded before the next command.
        let Some(last) = new_blocks.last() else {
            self.dirty = true;
            return Err(Failure::unavailable("empty reorg"));
        };
        self.set_tip(last.header.clone());
        if let Err(e) = self.reload_pool() {
            self.dirty = true;
            return Err(e.into());
        }
        let fork_point = BlockRef {
            height: fork_height,
            hash: fork_header.id().to_hex(),
        };
        tracing::warn!(
            depth,
            fork_height,
            new_height = self.tip.height,
            dropped = dropped.len(),
            "sandbox reorg injected"
        );
        let _ = self.events.send(Event::Reorg {
            fork_point: fork_point.clone(),
            tip: tip_info(&self.tip),
        });
        let _ = self.events.send(Event::Tip(tip_info(&self.tip)));
        for (txid, reason) in &dropped {
            let addresses = addresses_before
                .get(txid)
                .cloned()
                .unwrap_or_else(|| Arc::new(Vec::new()));
            let _ = self.events.send(Event::Tx {
                txid: *txid,
                status: TxStatus::Dropped {
                    reason: reason.clone(),
                },
                addresses,
            });
        }
        for (txid, p) in &self.pool {
            if returned.contains(&txid.to_hex()) {
                let _ = self.events.send(Event::Tx {
                    txid: *txid,
                    status: TxStatus::InPool,
                    addresses: p.addresses.clone(),
                });
            }
        }
        Ok(ReorgResponse {
            fork_point,
            old_tip: tip_info(&old_tip),
            tip: tip_info(&self.tip),
            returned_to_pool: returned,
            dropped: dropped.iter().map(|(t, _)| t.to_hex()).collect(),
        })
    }
}

struct Overlay {
    store: Arc<dyn MirrorStore>,
    added: HashMap<OutPoint, Output>,
    removed: HashSet<OutPoint>,
}

impl Overlay {
    fn remove(&mut self, op: OutPoint) {
        self.added.remove(&op);
        self.removed.insert(op);
    }
    fn restore(&mut self, op: OutPoint, o: Output) {
        self.removed.remove(&op);
        self.added.insert(op, o);
    }
    fn get(&self, op: &OutPoint) -> Result<Option<Output>, StoreError> {
        if let Some(o) = self.added.get(op) {
            return Ok(Some(*o));
        }
        if self.removed.contains(op) {
            return Ok(None);
        }
        Ok(self.store.utxo(op)?.map(|(o, _)| o))
    }
}

/// Tells subscribers about the transactions of the block that a tip at `tip_height` made
/// final (the writer after each block; a replica's follower for each new height).
fn announce_finality(
    store: &dyn MirrorStore,
    events: &broadcast::Sender<Event>,
    tip_height: u64,
    finality_depth: u64,
) {
    if finality_depth < 2 || events.receiver_count() == 0 {
        return;
    }
    let Some(h) = (tip_height + 1).checked_sub(finality_depth) else {
        return;
    };
    if h == 0 {
        return;
    }
    let Ok(blocks) = store.blocks_at(h, 1) else {
        return;
    };
    for b in blocks {
        let state = TxState::Confirmed {
            height: b.header.height,
            block_id: b.id(),
        };
        for tx in &b.txs {
            let _ = events.send(Event::Tx {
                txid: tx.txid(),
                status: status_of(&state, tip_height, finality_depth),
                addresses: stored_addresses(store, tx),
            });
        }
    }
}

/// The addresses a stored transaction touches (its outputs' owners and those of the outputs
/// it spends, as far as they are stored).
fn stored_addresses(store: &dyn MirrorStore, tx: &Transaction) -> Arc<Vec<PublicKey>> {
    let spent: Vec<Output> = tx
        .inputs
        .iter()
        .filter_map(|i| store.output_of(i).ok().flatten())
        .collect();
    addresses_of(tx, &spent)
}

/// How often a read-only replica looks at the database's tip.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// Block ids a follower remembers, to find the fork point of a roll-back.
const FOLLOW_KEEP: u64 = 1000;

/// A read-only replica's view of the database, which the writing gateway changes: follows
/// its tip and its pool log, and tells subscribers as the writer would (a new tip; a
/// roll-back with its fork point, then the new tip; transactions entering the pool,
/// confirmed, final or dropped).
struct TipFollower {
    /// A standby's means to become the writer.
    promote: Option<Promotion>,
    store: Arc<dyn MirrorStore>,
    tip_tx: watch::Sender<TipRow>,
    events: broadcast::Sender<Event>,
    /// (height, id) of the recent blocks of the chain as last seen, oldest first.
    recent: VecDeque<(u64, BlockId)>,
    /// The pool log's sequence number read up to.
    pool_seq: u64,
    finality_depth: u64,
}

/// What a standby's follower turns into a [`Writer`].
struct Promotion {
    params: ChainParams,
    config: EngineConfig,
    authority: SigningKey,
    index: Arc<RwLock<PoolIndex>>,
    rejections: Arc<RejectionCache>,
    read_only: Arc<AtomicBool>,
}

impl TipFollower {
    fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        loop {
            if self.promote.is_some() {
                match self.store.take_writer_lock() {
                    Ok(true) => match self.into_writer() {
                        Ok(writer) => {
                            writer.run(rx);
                            return;
                        }
                        Err((follower, e)) => {
                            tracing::error!(error = %e, "cannot take the writer's place yet");
                            self = *follower;
                        }
                    },
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot try the writer's lock"),
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(Cmd::Shutdown) | Err(mpsc::error::TryRecvError::Disconnected) => {
                        tracing::info!("tip follower stopped");
                        return;
                    }
                    Ok(other) => Writer::refuse(other, Failure::unavailable(READ_ONLY)),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                }
            }
            match self.follow() {
                Ok(()) => crate::metrics::follower_heard(),
                Err(e) => {
                    crate::metrics::database_error(crate::metrics::During::Follow);
                    tracing::warn!(error = %e, "cannot follow the database's tip");
                }
            }
            // Woken by the writer's commits (NOTIFY on PostgreSQL); the timeout is the net.
            self.store.wait_for_change(FOLLOW_EVERY);
        }
    }

    fn follow(&mut self) -> Result<(), StoreError> {
        self.follow_pool()?;
        self.follow_tip()
    }

    /// The standby's writer, its state loaded from the database (the pool the dead writer
    /// committed included); the engine takes submissions from now on.
    fn into_writer(self) -> Result<Writer, (Box<TipFollower>, StoreError)> {
        let loaded = (|| {
            let tip = self.store.tip()?;
            let header = self
                .store
                .header_at(tip.height)?
                .ok_or_else(|| StoreError::Corrupt("tip header missing".into()))?;
            Ok::<_, StoreError>((tip, header))
        })();
        let (tip, tip_header) = match loaded {
            Ok(t) => t,
            Err(e) => return Err((Box::new(self), e)),
        };
        let Some(p) = self.promote else {
            return Err((Box::new(self), StoreError::Backend("not a standby".into())));
        };
        let mut writer = Writer {
            store: self.store,
            params: p.params,
            config: p.config,
            authority: p.authority,
            pool: HashMap::new(),
            spent_by: HashMap::new(),
            by_rate: BTreeSet::new(),
            clients: HashMap::new(),
            order: 0,
            index: p.index,
            rejections: p.rejections,
            // Loads the pool and the tip before the first command (`recover`).
            dirty: true,
            tip,
            tip_header,
            tip_tx: self.tip_tx,
            events: self.events,
        };
        if let Err(f) = writer.recover() {
            tracing::error!(error = %f.error.message, "the new writer could not load the ledger; it retries before each command");
        }
        tracing::warn!(
            height = writer.tip.height,
            pool = writer.pool.len(),
            "took the writer's place: this gateway accepts submissions and makes blocks now"
        );
        let _ = writer.tip_tx.send_replace(writer.tip.clone());
        p.read_only.store(false, Ordering::Release);
        Ok(writer)
    }

    /// Pool entries and exits since the last look. Exits into a block are told with the
    /// block (`follow_tip`); a log the writer pruned past our place is skipped, not replayed
    /// (the stream is a hint; wallets sync).
    fn follow_pool(&mut self) -> Result<(), StoreError> {
        if self.events.receiver_count() == 0 {
            self.pool_seq = self.store.mempool_changes(u64::MAX, 0)?.seq;
            return Ok(());
        }
        loop {
            let page = self.store.mempool_changes(self.pool_seq, 500)?;
            if page.reset {
                self.pool_seq = self.store.mempool_changes(u64::MAX, 0)?.seq;
                return Ok(());
            }
            for c in &page.changes {
                if c.added {
                    let Some(tx) = c.bytes.as_deref().and_then(|b| Transaction::decode(b).ok())
                    else {
                        continue;
                    };
                    let _ = self.events.send(Event::Tx {
                        txid: c.txid,
                        status: TxStatus::InPool,
                        addresses: stored_addresses(self.store.as_ref(), &tx),
                    });
                } else if let Some(rec) = self.store.tx(&c.txid)?
                    && let TxState::Dropped { reason } = rec.state
                    && let Some(tx) = rec.bytes.and_then(|b| Transaction::decode(&b).ok())
                {
                    let _ = self.events.send(Event::Tx {
                        txid: c.txid,
                        status: TxStatus::Dropped { reason },
                        addresses: stored_addresses(self.store.as_ref(), &tx),
                    });
                }
            }
            self.pool_seq = page.seq;
            if !page.more {
                return Ok(());
            }
        }
    }

    fn follow_tip(&mut self) -> Result<(), StoreError> {
        let tip = self.store.tip()?;
        let old = self.tip_tx.borrow().clone();
        if tip.id == old.id {
            return Ok(());
        }
        // The highest remembered block still on the chain; the genesis if none is.
        let mut fork = None;
        for (height, id) in self.recent.iter().rev() {
            if *height <= tip.height && self.store.header_at(*height)?.map(|h| h.id()) == Some(*id)
            {
                fork = Some((*height, *id));
                break;
            }
        }
        let fork = match fork {
            Some(f) => f,
            None => {
                let genesis = self
                    .store
                    .header_at(0)?
                    .ok_or_else(|| StoreError::Corrupt("no genesis block".into()))?;
                (0, genesis.id())
            }
        };
        self.recent.retain(|(height, _)| *height <= fork.0);
        let from = (fork.0 + 1).max(tip.height.saturating_sub(FOLLOW_KEEP));
        for height in from..=tip.height {
            if let Some(h) = self.store.header_at(height)? {
                self.recent.push_back((height, h.id()));
            }
        }
        while self.recent.len() as u64 > FOLLOW_KEEP {
            self.recent.pop_front();
        }
        self.tip_tx.send_replace(tip.clone());
        if fork != (old.height, old.id) {
            let _ = self.events.send(Event::Reorg {
                fork_point: BlockRef {
                    height: fork.0,
                    hash: fork.1.to_hex(),
                },
                tip: tip_info(&tip),
            });
        }
        let _ = self.events.send(Event::Tip(tip_info(&tip)));
        if self.events.receiver_count() == 0 {
            return Ok(());
        }
        let store = self.store.as_ref();
        let depth = self.finality_depth;
        for block in store.blocks_at(from, (tip.height + 1 - from) as usize)? {
            let state = TxState::Confirmed {
                height: block.header.height,
                block_id: block.id(),
            };
            for tx in &block.txs {
                let _ = self.events.send(Event::Tx {
                    txid: tx.txid(),
                    status: status_of(&state, tip.height, depth),
                    addresses: stored_addresses(store, tx),
                });
            }
        }
        for height in from.max(old.height + 1)..=tip.height {
            announce_finality(store, &self.events, height, depth);
        }
        Ok(())
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Engine>();
    let _ = BlockId::ZERO;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_and_finality() {
        let id = BlockId([3; 32]);
        let c = TxState::Confirmed {
            height: 10,
            block_id: id,
        };
        assert_eq!(
            status_of(&c, 10, 6),
            TxStatus::Confirmed {
                confirmations: 1,
                block_height: 10,
                block_id: id.to_hex()
            }
        );
        assert_eq!(
            status_of(&c, 14, 6),
            TxStatus::Confirmed {
                confirmations: 5,
                block_height: 10,
                block_id: id.to_hex()
            }
        );
        assert_eq!(
            status_of(&c, 15, 6),
            TxStatus::Final {
                confirmations: 6,
                block_height: 10,
                block_id: id.to_hex()
            }
        );
        // A stale tip never gives zero confirmations.
        assert!(matches!(
            status_of(&c, 3, 6),
            TxStatus::Confirmed {
                confirmations: 1,
                ..
            }
        ));
        assert_eq!(
            status_of(&TxState::InPool { seq: 1 }, 0, 6),
            TxStatus::InPool
        );
        assert_eq!(
            status_of(&TxState::Dropped { reason: "x".into() }, 0, 6),
            TxStatus::Dropped { reason: "x".into() }
        );
    }

    #[test]
    fn overlay_restores_and_removes() -> Result<(), StoreError> {
        struct Empty;
        impl Empty {
            fn out(n: u8) -> Output {
                Output {
                    asset: AssetId([n; 32]),
                    amount: n as u64,
                    owner: PublicKey([n; 32]),
                }
            }
        }
        let dir = tempfile::tempdir().map_err(|e| StoreError::Backend(e.to_string()))?;
        let store: Arc<dyn MirrorStore> = Arc::new(crate::sqlite::SqliteStore::open(
            &dir.path().join("x.db"),
            crate::sqlite::SyncMode::Normal,
        )?);
        let mut o = Overlay {
            store,
            added: HashMap::new(),
            removed: HashSet::new(),
        };
        let op = OutPoint {
            txid: TxId([1; 32]),
            index: 0,
        };
        assert_eq!(o.get(&op)?, None);
        o.restore(op, Empty::out(1));
        assert_eq!(o.get(&op)?, Some(Empty::out(1)));
        o.remove(op);
        assert_eq!(o.get(&op)?, None);
        Ok(())
    }
}
