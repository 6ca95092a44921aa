//! The ledger engine: validation, the mempool, block production and (sandbox) reorgs.
//!
//! Stateless work (decoding, signatures, balances) runs on the caller's thread so it uses
//! every core; everything that changes state goes through ONE writer thread, which batches
//! concurrent submissions into one database transaction (group commit) and answers each
//! submitter only after that transaction committed.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use notch_protocol::api::{BlockRef, ReorgResponse, SubmitTxResponse, TipInfo, TxStatus, codes};
use notch_protocol::ed25519_dalek::SigningKey;
use notch_protocol::{
    AssetId, Block, BlockHeader, BlockId, ChainParams, OutPoint, Output, PublicKey, Transaction,
    TxCheck, TxId,
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

enum Cmd {
    Submit {
        tx: Transaction,
        txid: TxId,
        check: TxCheck,
        reply: SubmitReply,
    },
    Reject(Rejection),
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

pub struct Engine {
    pub store: Arc<dyn MirrorStore>,
    pub meta: LedgerMeta,
    pub params: ChainParams,
    pub config: EngineConfig,
    issuers: HashMap<AssetId, SigningKey>,
    cmd: mpsc::Sender<Cmd>,
    pub events: broadcast::Sender<Event>,
    tip: watch::Receiver<TipRow>,
}

impl Engine {
    /// Loads the mempool and starts the writer thread.
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
        let mut writer = Writer {
            store: store.clone(),
            params: params.clone(),
            config: config.clone(),
            authority,
            pool: HashMap::new(),
            spent_by: HashMap::new(),
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
        Ok((
            Arc::new(Engine {
                store,
                meta,
                params,
                config,
                issuers,
                cmd,
                events,
                tip: tip_rx,
            }),
            handle,
        ))
    }

    pub fn tip(&self) -> TipRow {
        self.tip.borrow().clone()
    }

    pub fn tip_watch(&self) -> watch::Receiver<TipRow> {
        self.tip.clone()
    }

    /// Asks the writer to finish the queued work and stop.
    pub async fn shutdown(&self) {
        let _ = self.cmd.send(Cmd::Shutdown).await;
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Failure> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Failure::unavailable(format!("worker failed: {e}")))?
    }

    /// Validates and submits many transactions (`POST /v1/txs`); one result per transaction,
    /// in order, each as [`Engine::submit`] would answer it.
    pub async fn submit_batch(
        self: &Arc<Self>,
        txs: Vec<Vec<u8>>,
        client: Option<IpAddr>,
    ) -> Vec<Result<SubmitTxResponse, Failure>> {
        let mut out = Vec::with_capacity(txs.len());
        for bytes in txs {
            out.push(self.submit(bytes, client).await);
        }
        out
    }

    /// Validates and submits a transaction; idempotent by txid. `client` is who sent it (its
    /// IP address), for the per-client share of the pool; `None` for the gateway itself.
    pub async fn submit(
        self: &Arc<Self>,
        bytes: Vec<u8>,
        client: Option<IpAddr>,
    ) -> Result<SubmitTxResponse, Failure> {
        let _ = client;
        let this = self.clone();
        let pre = Self::blocking(move || this.prevalidate(&bytes)).await?;
        let (tx, txid, check) = match pre {
            Pre::Known(resp) => return Ok(resp),
            Pre::Invalid { txid, failure } => {
                if let Some(txid) = txid {
                    let _ = self.cmd.try_send(Cmd::Reject(Rejection {
                        txid,
                        code: failure.error.code.clone(),
                        message: failure.error.message.clone(),
                    }));
                }
                return Err(failure);
            }
            Pre::Valid { tx, txid, check } => (tx, txid, check),
        };
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Submit {
                tx,
                txid,
                check,
                reply,
            })
            .await
            .map_err(|_| Failure::unavailable("the gateway is shutting down"))?;
        rx.await
            .map_err(|_| Failure::unavailable("the gateway is shutting down"))?
    }

    fn prevalidate(&self, bytes: &[u8]) -> Result<Pre, Failure> {
        let tx = match Transaction::decode(bytes) {
            Ok(tx) => tx,
            Err(e) => {
                return Ok(Pre::Invalid {
                    txid: None,
                    failure: Failure::tx(&e),
                });
            }
        };
        let txid = tx.txid();
        if let Some(rec) = self.store.tx(&txid)?
            && matches!(
                rec.state,
                TxState::InPool { .. } | TxState::Confirmed { .. }
            )
        {
            let status = status_of(&rec.state, self.tip().height, self.config.finality_depth);
            return Ok(Pre::Known(SubmitTxResponse {
                txid: txid.to_hex(),
                status,
                duplicate: true,
            }));
        }
        let mut store_err = None;
        let result = tx.validate(&self.params, |op| match self.store.output_of(op) {
            Ok(o) => o,
            Err(e) => {
                store_err = Some(e);
                None
            }
        });
        if let Some(e) = store_err {
            return Err(Failure::store(e));
        }
        match result {
            Ok(check) => {
                // Outputs must be of assets this ledger knows.
                for o in &tx.outputs {
                    if !self.meta.assets.iter().any(|a| a.id() == o.asset) {
                        let f = Failure::bad_request(
                            codes::UNKNOWN_ASSET,
                            format!("asset {} is not known to this ledger", o.asset),
                        );
                        return Ok(Pre::Invalid {
                            txid: Some(txid),
                            failure: f,
                        });
                    }
                }
                Ok(Pre::Valid { tx, txid, check })
            }
            Err(e) => {
                let txid = if e.code() == codes::MALFORMED || e.code() == codes::WRONG_NETWORK {
                    None
                } else {
                    Some(txid)
                };
                Ok(Pre::Invalid {
                    txid,
                    failure: Failure::tx(&e),
                })
            }
        }
    }

    pub async fn mine(&self, blocks: u32) -> Result<Vec<BlockRef>, Failure> {
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
    Invalid {
        txid: Option<TxId>,
        failure: Failure,
    },
    Valid {
        tx: Transaction,
        txid: TxId,
        check: TxCheck,
    },
}

struct PoolTx {
    seq: u64,
    tx: Transaction,
    addresses: Arc<Vec<PublicKey>>,
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
    tip: TipRow,
    tip_header: BlockHeader,
    tip_tx: watch::Sender<TipRow>,
    events: broadcast::Sender<Event>,
}

const MAX_BATCH: usize = 1024;

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
            match cmd {
                Cmd::Submit { .. } | Cmd::Reject(_) => {
                    let mut batch = vec![cmd];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(c @ (Cmd::Submit { .. } | Cmd::Reject(_))) => batch.push(c),
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.submit_batch(batch);
                }
                Cmd::Mine { blocks, reply } => {
                    let _ = reply.send(self.mine(blocks));
                }
                Cmd::Reorg {
                    depth,
                    include,
                    reply,
                } => {
                    let _ = reply.send(self.reorg(depth, include));
                }
                Cmd::Shutdown => {
                    // Finish what is already queued (each submitter gets its answer), then stop.
                    rx.close();
                    while let Ok(c) = rx.try_recv() {
                        match c {
                            Cmd::Submit { .. } | Cmd::Reject(_) => self.submit_batch(vec![c]),
                            Cmd::Mine { reply, .. } => {
                                let _ = reply.send(Err(Failure::unavailable(
                                    "the gateway is shutting down",
                                )));
                            }
                            Cmd::Reorg { reply, .. } => {
                                let _ = reply.send(Err(Failure::unavailable(
                                    "the gateway is shutting down",
                                )));
                            }
                            Cmd::Shutdown => {}
                        }
                    }
                    break;
                }
            }
        }
        tracing::info!("ledger writer stopped");
    }

    fn reload_pool(&mut self) -> Result<(), StoreError> {
        self.pool.clear();
        self.spent_by.clear();
        for e in self.store.mempool()? {
            let mut spent = Vec::with_capacity(e.tx.inputs.len());
            for i in &e.tx.inputs {
                if let Some(o) = self.store.output_of(i)? {
                    spent.push(o);
                }
                self.spent_by.insert(*i, e.txid);
            }
            let addresses = addresses_of(&e.tx, &spent);
            self.pool.insert(
                e.txid,
                PoolTx {
                    seq: e.seq,
                    tx: e.tx,
                    addresses,
                },
            );
        }
        Ok(())
    }

    fn status(&self, state: &TxState) -> TxStatus {
        status_of(state, self.tip.height, self.config.finality_depth)
    }

    /// Spendability of one input against the chain and the pool (signatures and balance
    /// were checked before).
    fn check_input(&self, op: &OutPoint) -> Result<(), Failure> {
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
        if self.store.utxo(op)?.is_some() {
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

    fn submit_batch(&mut self, batch: Vec<Cmd>) {
        let mut adds = Vec::new();
        let mut rejections = Vec::new();
        // (reply, result) pairs; accepted ones get their answer after the commit.
        let mut answers: Vec<(SubmitReply, Result<SubmitTxResponse, Failure>)> = Vec::new();
        let mut accepted: Vec<(TxId, SubmitReply)> = Vec::new();
        for cmd in batch {
            match cmd {
                Cmd::Reject(r) => rejections.push(r),
                Cmd::Submit {
                    tx,
                    txid,
                    check,
                    reply,
                } => {
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
                    if self.pool.len() >= self.config.max_pool_txs {
                        answers.push((
                            reply,
                            Err(Failure::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                codes::POOL_FULL,
                                "the mempool is full; retry later",
                            )),
                        ));
                        continue;
                    }
                    if let Err(f) = tx.inputs.iter().try_for_each(|op| self.check_input(op)) {
                        if f.status != StatusCode::SERVICE_UNAVAILABLE {
                            rejections.push(Rejection {
                                txid,
                                code: f.error.code.clone(),
                                message: f.error.message.clone(),
                            });
                        }
                        answers.push((reply, Err(f)));
                        continue;
                    }
                    for op in &tx.inputs {
                        self.spent_by.insert(*op, txid);
                    }
                    adds.push(PoolAdd {
                        txid,
                        bytes: tx.encode(),
                    });
                    let addresses = addresses_of(&tx, &check.spent);
                    self.pool.insert(
                        txid,
                        PoolTx {
                            seq: 0,
                            tx,
                            addresses,
                        },
                    );
                    accepted.push((txid, reply));
                }
                _ => {}
            }
        }
        if !adds.is_empty() || !rejections.is_empty() {
            match self.store.add_to_pool(&adds, &rejections) {
                Ok(seqs) => {
                    for (add, seq) in adds.iter().zip(seqs) {
                        if let Some(p) = self.pool.get_mut(&add.txid) {
                            p.seq = seq;
                        }
                    }
                    for (txid, reply) in accepted {
                        if let Some(p) = self.pool.get(&txid) {
                            let _ = self.events.send(Event::Tx {
                                txid,
                                status: TxStatus::InPool,
                                addresses: p.addresses.clone(),
                            });
                        }
                        let _ = reply.send(Ok(SubmitTxResponse {
                            txid: txid.to_hex(),
                            status: TxStatus::InPool,
                            duplicate: false,
                        }));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot persist submitted transactions");
                    for (txid, reply) in accepted {
                        if let Some(p) = self.pool.remove(&txid) {
                            for op in &p.tx.inputs {
                                self.spent_by.remove(op);
                            }
                        }
                        let _ = reply.send(Err(Failure::unavailable(format!(
                            "the gateway's storage failed: {e}"
                        ))));
                    }
                }
            }
        }
        for (reply, result) in answers {
            let _ = reply.send(result);
        }
    }

    /// Pool transactions for the next block: by pool order, parents before children.
    fn assemble(&self) -> Vec<Transaction> {
        let mut order: Vec<(&TxId, &PoolTx)> = self.pool.iter().collect();
        order.sort_by_key(|(_, p)| p.seq);
        let mut included: HashSet<TxId> = HashSet::new();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let budget = notch_protocol::block::MAX_BLOCK_BYTES - 1024;
        loop {
            let mut progress = false;
            for (txid, p) in &order {
                if out.len() >= self.config.max_block_txs {
                    return out;
                }
                if included.contains(*txid) {
                    continue;
                }
                let ready =
                    p.tx.inputs
                        .iter()
                        .all(|i| !self.pool.contains_key(&i.txid) || included.contains(&i.txid));
                let size = p.tx.encoded_len() + 4;
                if ready && bytes + size <= budget {
                    included.insert(**txid);
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
            self.store.apply_block(&block)?;
            let height = block.header.height;
            let mut confirmed = Vec::new();
            for tx in &block.txs {
                let txid = tx.txid();
                for i in &tx.inputs {
                    self.spent_by.remove(i);
                }
                if let Some(p) = self.pool.remove(&txid) {
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
        if self.config.finality_depth < 2 || self.events.receiver_count() == 0 {
            return;
        }
        let Some(h) = (self.tip.height + 1).checked_sub(self.config.finality_depth) else {
            return;
        };
        if h == 0 {
            return;
        }
        let Ok(blocks) = self.store.blocks_at(h, 1) else {
            return;
        };
        for b in blocks {
            let state = TxState::Confirmed {
                height: b.header.height,
                block_id: b.id(),
            };
            for tx in &b.txs {
                let spent: Vec<Output> = tx
                    .inputs
                    .iter()
                    .filter_map(|i| self.store.output_of(i).ok().flatten())
                    .collect();
                let _ = self.events.send(Event::Tx {
                    txid: tx.txid(),
                    status: self.status(&state),
                    addresses: addresses_of(tx, &spent),
                });
            }
        }
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
        // The transactions to include must be valid at the fork point.
        let mut included = HashSet::new();
        for (n, tx) in include.iter().enumerate() {
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
        self.store.reorg(&plan)?;
        let addresses_before: HashMap<TxId, Arc<Vec<PublicKey>>> = self
            .pool
            .iter()
            .map(|(k, p)| (*k, p.addresses.clone()))
            .collect();
        self.reload_pool()?;
        let Some(last) = new_blocks.last() else {
            return Err(Failure::unavailable("empty reorg"));
        };
        self.set_tip(last.header.clone());
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
