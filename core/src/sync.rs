//! Sync: follows the gateway's mirror and believes only what it verified.
//!
//! One pass ([`Wallet::sync`]):
//! 1. `/v1/info`: the network must be the wallet's; the authority key is
//!    pinned per network on first contact (a later change is an error).
//! 2. Headers from a locator of the wallet's chain: every header's
//!    signature by the pinned authority and every link are checked.
//! 3. Blocks in adaptive batches (halved on error, doubled on success): each
//!    block must be the verified header's block, and pass `verify_block`
//!    (encodings, merkle root, stateless rules). A whole batch is verified
//!    before anything of it is stored; then the batch is applied in ONE
//!    store transaction (after rolling back to the fork point if the
//!    gateway's chain forked from the wallet's): a block is never half
//!    applied, and one fsync covers up to 100 blocks.
//! 4. The mempool delta: pending payments in and out.
//! 5. The wallet's unconfirmed transactions: queued sends are submitted
//!    (idempotently), the others' fate asked from the gateway.
//!
//! Anything that fails verification is reported (event, notification,
//! error) and nothing of it is stored. A pass can be interrupted anywhere:
//! the next one resumes from what was committed.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use notch_protocol::api::{BlocksRequest, HeadersRequest, LedgerInfo, StreamMessage, TxStatus};
use notch_protocol::{
    Block, BlockHeader, Network, Transaction, locator_heights, verify_block, verify_genesis,
    verify_header, verify_header_link,
};

use crate::events::{AssetAmount, WalletEvent};
use crate::gateway::GatewayError;
use crate::keys::{AddressChain, WalletKeys};
use crate::store::{
    Hash32, Header, NewNotification, NewOutput, NewTransaction, OutPoint, Store, StoreError,
    StoreTx, TxState,
};
use crate::wallet::{
    Inner, LEDGER_INFO_SETTING, Ledger, MEMPOOL_SEQ_SETTING, Wallet, authority_setting,
    ensure_lookahead, unix_now,
};

/// Why a sync pass failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(
        "the gateway at {url} serves network {served}, but this wallet is on {expected}; point the wallet at a {expected} gateway"
    )]
    WrongNetwork {
        url: String,
        served: String,
        expected: String,
    },
    #[error(
        "the gateway's authority key changed: the wallet pinned {pinned} for {network} on first contact, the gateway now presents {served}. Nothing was synced; if the operator really changed keys, start a new wallet data directory"
    )]
    AuthorityChanged {
        network: String,
        pinned: String,
        served: String,
    },
    #[error(
        "the gateway served data that failed verification ({what}); nothing of it was stored. The gateway or something between it and you is not trustworthy"
    )]
    Verification { what: String },
    #[error("the gateway's chain kept changing during the sync; try again")]
    ChainUnstable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// Worth retrying later (network trouble, a busy gateway).
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Gateway(e) => e.is_transient(),
            SyncError::ChainUnstable => true,
            _ => false,
        }
    }
}

/// What one sync pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    /// The wallet's height after the pass.
    pub height: u64,
    /// Blocks applied.
    pub blocks: u64,
    /// Blocks rolled back by reorgs.
    pub rolled_back: u64,
    /// Mempool transactions of the wallet seen.
    pub pool_txs: u64,
}

const MAX_HEADERS: u32 = 2000;
const MAX_BATCH: u32 = 100;
const MAX_RESTARTS: usize = 4;
const MAX_FAILED_BATCHES: usize = 6;

/// The header the wallet knows at some height (stored, or verified in this
/// pass and not yet stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    height: u64,
    id: Hash32,
    time: u64,
}

impl From<&Header> for Link {
    fn from(h: &Header) -> Self {
        Link {
            height: h.height,
            id: h.hash,
            time: h.time,
        }
    }
}

fn bad(what: impl Into<String>) -> SyncError {
    SyncError::Verification { what: what.into() }
}

/// Checks that `next` continues `prev` (a header the wallet trusts).
fn check_link(prev: &Link, next: &BlockHeader, network: Network) -> Result<(), SyncError> {
    if next.network != network {
        return Err(bad(format!(
            "block {} is for network {}, not {network}",
            next.height, next.network
        )));
    }
    if next.height != prev.height + 1 {
        return Err(bad(format!(
            "expected block {} after {}, got {}",
            prev.height + 1,
            prev.height,
            next.height
        )));
    }
    if next.prev.0 != prev.id {
        return Err(bad(format!(
            "block {} does not link to block {}",
            next.height, prev.height
        )));
    }
    if next.time < prev.time {
        return Err(bad(format!("block {} goes back in time", next.height)));
    }
    Ok(())
}

/// Verifies a run of headers after `anchor` (`None`: from the genesis).
fn verify_headers(
    anchor: Option<Link>,
    headers: &[BlockHeader],
    authority: &notch_protocol::PublicKey,
    network: Network,
) -> Result<(), SyncError> {
    let mut prev = anchor;
    for (i, h) in headers.iter().enumerate() {
        match &prev {
            Some(p) if i == 0 => check_link(p, h, network)?,
            Some(_) => verify_header_link(&headers[i - 1], h)
                .map_err(|e| bad(format!("header {}: {e}", h.height)))?,
            None => {
                if h.network != network {
                    return Err(bad(format!("the genesis is for network {}", h.network)));
                }
                verify_genesis(h, authority).map_err(|e| bad(format!("genesis: {e}")))?;
            }
        }
        verify_header(h, authority).map_err(|e| bad(e.to_string()))?;
        prev = Some(Link {
            height: h.height,
            id: h.id().0,
            time: h.time,
        });
    }
    Ok(())
}

fn decode_hex(what: &str, s: &str) -> Result<Vec<u8>, SyncError> {
    hex::decode(s).map_err(|e| bad(format!("{what} is not hex: {e}")))
}

impl Wallet {
    /// One sync pass; see the [module docs](crate::sync).
    pub async fn sync(&self) -> Result<SyncReport, SyncError> {
        let inner = &self.inner;
        let _one_at_a_time = inner.sync_lock.lock().await;
        let result = sync_pass(inner).await;
        match &result {
            Ok(_) => {
                if let Some(since) = inner.set_unreachable_since(None) {
                    inner.events.emit(WalletEvent::GatewayBack {
                        unreachable_for_secs: unix_now().saturating_sub(since),
                    });
                }
            }
            Err(SyncError::Verification { what }) => {
                let what = what.clone();
                inner
                    .events
                    .emit(WalletEvent::VerificationFailed { what: what.clone() });
                let note = inner
                    .db(move |store| {
                        store.write(|tx| {
                            tx.add_notification(&NewNotification {
                                kind: "verification_failed".into(),
                                title: "The gateway served data that failed verification".into(),
                                body: format!("{what}. Nothing of it was stored."),
                                txid: None,
                            })
                        })
                    })
                    .await;
                if let Ok(n) = note {
                    inner.events.emit(notification_event(&n));
                }
            }
            Err(SyncError::Gateway(e)) if e.is_transient() => {
                let now = unix_now();
                if inner.unreachable_since().is_none() {
                    inner.set_unreachable_since(Some(now));
                    inner.events.emit(WalletEvent::GatewayUnreachable {
                        since: now,
                        reason: e.to_string(),
                    });
                    let reason = e.to_string();
                    let note = inner
                        .db(move |store| {
                            store.write(|tx| {
                                tx.add_notification(&NewNotification {
                                    kind: "gateway_unreachable".into(),
                                    title: "The gateway cannot be reached".into(),
                                    body: format!("Sync stopped: {reason}. Notch keeps trying."),
                                    txid: None,
                                })
                            })
                        })
                        .await;
                    if let Ok(n) = note {
                        inner.events.emit(notification_event(&n));
                    }
                }
            }
            Err(_) => {}
        }
        result
    }
}

fn notification_event(n: &crate::store::Notification) -> WalletEvent {
    WalletEvent::Notification {
        id: n.id,
        kind: n.kind.clone(),
        title: n.title.clone(),
    }
}

async fn sync_pass(inner: &Inner) -> Result<SyncReport, SyncError> {
    let ledger = check_info(inner).await?;
    let mut report = SyncReport::default();
    let mut restarts = 0;
    loop {
        match sync_chain(inner, &ledger, &mut report).await {
            Ok(()) => break,
            Err(SyncError::ChainUnstable) if restarts < MAX_RESTARTS => {
                restarts += 1;
                tracing::info!("the gateway's chain changed during sync; starting over");
            }
            Err(e) => return Err(e),
        }
    }
    report.pool_txs = sync_mempool(inner, &ledger).await?;
    resolve_pending(inner, &ledger).await?;
    report.height = inner
        .db(|s| Ok::<_, SyncError>(s.tip()?.map(|h| h.height)))
        .await?
        .unwrap_or(0);
    inner.events.emit(WalletEvent::SyncDone {
        height: report.height,
    });
    Ok(report)
}

/// `/v1/info`: network check, authority pinning, asset metadata.
async fn check_info(inner: &Inner) -> Result<Ledger, SyncError> {
    let info = inner.gateway.info().await?;
    if info.network != inner.network.name() {
        return Err(SyncError::WrongNetwork {
            url: inner.gateway.url().to_owned(),
            served: info.network,
            expected: inner.network.name().into(),
        });
    }
    let ledger = Ledger::from_info(info.clone()).ok_or_else(|| {
        SyncError::Gateway(GatewayError::BadResponse(
            "the ledger info has no valid authority key or native asset".into(),
        ))
    })?;
    let key = authority_setting(inner.network);
    let network = inner.network;
    let served = info.authority_key.to_ascii_lowercase();
    let json = serde_json::to_string(&info)
        .map_err(|e| SyncError::Gateway(GatewayError::BadResponse(e.to_string())))?;
    inner
        .db(move |store| {
            if let Some(pinned) = store.setting(&key)?
                && pinned != served
            {
                return Err(SyncError::AuthorityChanged {
                    network: network.name().into(),
                    pinned,
                    served,
                });
            }
            store.write(|tx| {
                tx.set_setting(&key, &served)?;
                tx.set_setting(LEDGER_INFO_SETTING, &json)
            })?;
            Ok(())
        })
        .await?;
    inner.set_ledger(ledger.clone());
    Ok(ledger)
}

/// The locator of the wallet's stored chain (newest first).
fn store_locator(store: &Store) -> Result<(Vec<String>, Option<Header>), StoreError> {
    let Some(tip) = store.tip()? else {
        return Ok((Vec::new(), None));
    };
    let mut out = Vec::new();
    for h in locator_heights(tip.height) {
        if let Some(header) = store.header(h)? {
            out.push(hex::encode(header.hash));
        }
    }
    Ok((out, Some(tip)))
}

/// Resolves a gateway's fork point against the wallet's stored chain.
fn fork_anchor(
    store: &Store,
    fork_point: Option<&notch_protocol::api::BlockRef>,
) -> Result<Option<Link>, SyncError> {
    match fork_point {
        Some(fp) => {
            let ours = store.header(fp.height)?;
            match ours {
                Some(h) if hex::encode(h.hash) == fp.hash.to_ascii_lowercase() => {
                    Ok(Some(Link::from(&h)))
                }
                _ => Err(bad(format!(
                    "the gateway named block {} ({}) as the fork point, which is not on the wallet's chain",
                    fp.height, fp.hash
                ))),
            }
        }
        None => {
            if store.tip()?.is_some() {
                Err(bad(
                    "the gateway's chain shares no block with the wallet's, not even the genesis",
                ))
            } else {
                Ok(None)
            }
        }
    }
}

/// Headers, then blocks, up to the gateway's tip.
async fn sync_chain(
    inner: &Inner,
    ledger: &Ledger,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let network = inner.network;
    let authority = ledger.authority;

    // 1. Headers: verified, kept in memory as the plan for the blocks.
    let (store_loc, stored_tip) = inner.db(|s| Ok::<_, SyncError>(store_locator(s)?)).await?;
    let mut plan: BTreeMap<u64, Hash32> = BTreeMap::new();
    let mut last: Option<Link> = None;
    let mut fork_height: Option<u64> = None;
    loop {
        let mut locator = Vec::new();
        if let Some(l) = &last {
            locator.push(hex::encode(l.id));
        }
        locator.extend(store_loc.iter().cloned());
        locator.truncate(notch_protocol::block::MAX_LOCATOR_LEN);
        let response = inner
            .gateway
            .headers(&HeadersRequest {
                locator,
                limit: Some(MAX_HEADERS),
            })
            .await?;
        let anchor = match (&last, &response.fork_point) {
            (Some(l), Some(fp)) if fp.hash.eq_ignore_ascii_case(&hex::encode(l.id)) => Some(*l),
            (Some(_), _) => return Err(SyncError::ChainUnstable),
            (None, fp) => {
                let fp = fp.clone();
                let anchor = inner.db(move |s| fork_anchor(s, fp.as_ref())).await?;
                fork_height = anchor.map(|a| a.height);
                anchor
            }
        };
        let mut headers = Vec::with_capacity(response.headers.len());
        for entry in &response.headers {
            let header = BlockHeader::decode(&decode_hex("a header", &entry.hex)?)
                .map_err(|e| bad(format!("header {}: {e}", entry.height)))?;
            if header.height != entry.height
                || !header.id().to_hex().eq_ignore_ascii_case(&entry.id)
            {
                return Err(bad(format!(
                    "header {} does not match its stated height or id",
                    entry.height
                )));
            }
            headers.push(header);
        }
        verify_headers(anchor, &headers, &authority, network)?;
        for h in &headers {
            plan.insert(h.height, h.id().0);
        }
        if let Some(h) = headers.last() {
            last = Some(Link {
                height: h.height,
                id: h.id().0,
                time: h.time,
            });
        }
        if !response.more || headers.is_empty() {
            break;
        }
    }
    let stored_height = stored_tip.as_ref().map(|t| t.height);
    if plan.is_empty() {
        // Nothing new; a gateway whose chain is shorter than ours (after its
        // own reorg) means rolling back to the fork point.
        if let (Some(fork), Some(tip)) = (fork_height, stored_height)
            && fork < tip
        {
            roll_back_only(inner, fork, tip, report).await?;
        }
        return Ok(());
    }
    let total = plan.len() as u64;
    let target = plan.keys().next_back().copied().unwrap_or(0);
    inner.events.emit(WalletEvent::SyncProgress {
        done: 0,
        total,
        height: stored_height.unwrap_or(0),
        target,
    });

    // 2. Blocks, in adaptive batches.
    let mut batch: u32 = 10;
    let mut failures = 0;
    let mut done = 0u64;
    loop {
        let (locator, tip) = inner.db(|s| Ok::<_, SyncError>(store_locator(s)?)).await?;
        if tip
            .as_ref()
            .is_some_and(|t| t.height >= target && plan.get(&t.height) == Some(&t.hash))
        {
            break;
        }
        let response = match inner
            .gateway
            .blocks(&BlocksRequest {
                locator,
                limit: Some(batch),
            })
            .await
        {
            Ok(r) => {
                failures = 0;
                r
            }
            Err(e)
                if failures < MAX_FAILED_BATCHES
                    && (e.is_transient() || matches!(e, GatewayError::BadResponse(_))) =>
            {
                failures += 1;
                batch = (batch / 2).max(1);
                tracing::info!(batch, "block batch failed ({e}); retrying smaller");
                tokio::time::sleep(Duration::from_millis(100 * failures as u64)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let fp = response.fork_point.clone();
        let anchor = inner.db(move |s| fork_anchor(s, fp.as_ref())).await?;
        // Verify the whole batch before storing any of it.
        let mut blocks = Vec::with_capacity(response.blocks.len());
        let mut prev = anchor;
        for entry in &response.blocks {
            let bytes = decode_hex("a block", &entry.hex)?;
            let block =
                Block::decode(&bytes).map_err(|e| bad(format!("block {}: {e}", entry.height)))?;
            let id = block.id();
            if block.header.height != entry.height || !id.to_hex().eq_ignore_ascii_case(&entry.id) {
                return Err(bad(format!(
                    "block {} does not match its stated height or id",
                    entry.height
                )));
            }
            match plan.get(&block.header.height) {
                Some(expected) if *expected == id.0 => {}
                Some(_) => {
                    // Either the chain moved since the headers (restart) or
                    // the block's header was altered: the signature decides.
                    verify_header(&block.header, &authority).map_err(|e| bad(e.to_string()))?;
                    return Err(SyncError::ChainUnstable);
                }
                None => {}
            }
            match &prev {
                Some(p) => check_link(p, &block.header, network)?,
                None => {
                    verify_genesis(&block.header, &authority)
                        .map_err(|e| bad(format!("genesis: {e}")))?;
                }
            }
            verify_header(&block.header, &authority).map_err(|e| bad(e.to_string()))?;
            verify_block(&block).map_err(|e| bad(format!("block {}: {e}", entry.height)))?;
            prev = Some(Link {
                height: block.header.height,
                id: id.0,
                time: block.header.time,
            });
            blocks.push(block);
        }
        if blocks.is_empty() {
            break;
        }
        let rollback = match (anchor, &tip) {
            (Some(a), Some(t)) if a.height < t.height => Some(a.height),
            (None, Some(_)) => return Err(bad("the gateway wants to replace the genesis")),
            _ => None,
        };
        let applied = apply_blocks(inner, ledger, blocks, rollback, report).await?;
        done += applied;
        batch = (batch * 2).min(MAX_BATCH);
        let height = inner
            .db(|s| Ok::<_, SyncError>(s.tip()?.map(|h| h.height)))
            .await?
            .unwrap_or(0);
        inner.events.emit(WalletEvent::SyncProgress {
            done: done.min(total),
            total,
            height,
            target,
        });
        if !response.more {
            break;
        }
    }
    Ok(())
}

/// Everything applying blocks needs, owned (it runs in a blocking task).
pub(crate) struct ApplyCtx {
    pub keys: WalletKeys,
    pub network: Network,
    pub gap: u32,
    pub ledger: Ledger,
    /// Public key -> (address, chain).
    pub addresses: HashMap<[u8; 32], (String, AddressChain)>,
    pub events: Vec<WalletEvent>,
    pub notifications: Vec<crate::store::Notification>,
}

impl ApplyCtx {
    fn new(inner: &Inner, ledger: &Ledger) -> Self {
        Self {
            keys: inner.keys.clone(),
            network: inner.network,
            gap: inner.config.gap_limit,
            ledger: ledger.clone(),
            addresses: HashMap::new(),
            events: Vec::new(),
            notifications: Vec::new(),
        }
    }

    fn load_addresses(&mut self, store: &Store) -> Result<(), StoreError> {
        self.addresses.clear();
        for chain in [AddressChain::Receive, AddressChain::Change] {
            for a in store.addresses(chain)? {
                self.addresses.insert(a.public_key, (a.address, chain));
            }
        }
        Ok(())
    }

    fn notify(&mut self, tx: &StoreTx<'_>, new: NewNotification) -> Result<(), StoreError> {
        let n = tx.add_notification(&new)?;
        self.events.push(notification_event(&n));
        self.notifications.push(n);
        Ok(())
    }
}

async fn roll_back_only(
    inner: &Inner,
    fork: u64,
    old_tip: u64,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let events = inner
        .db(move |store| {
            let mut events = Vec::new();
            store.write(|tx| roll_back(tx, fork, &mut events))?;
            events.push(WalletEvent::Reorg {
                fork_height: fork,
                old_tip,
                new_tip: fork,
            });
            Ok::<_, SyncError>(events)
        })
        .await?;
    report.rolled_back += old_tip - fork;
    inner.events.emit_all(events);
    Ok(())
}

fn roll_back(
    tx: &StoreTx<'_>,
    fork: u64,
    events: &mut Vec<WalletEvent>,
) -> Result<usize, StoreError> {
    for record in tx.transactions_above(fork)? {
        events.push(WalletEvent::state_changed(
            &record.txid,
            Some(record.state),
            TxState::InPool,
            None,
        ));
    }
    tx.roll_back_to(fork)
}

/// Applies a batch of verified blocks in one store transaction (so a block
/// is never half applied, and a crash leaves the wallet at the previous
/// batch); the transaction first rolls back to `rollback` if set. Events are
/// sent after the commit. Returns how many blocks were applied.
async fn apply_blocks(
    inner: &Inner,
    ledger: &Ledger,
    blocks: Vec<Block>,
    rollback: Option<u64>,
    report: &mut SyncReport,
) -> Result<u64, SyncError> {
    let mut ctx = ApplyCtx::new(inner, ledger);
    let depth = ledger.info.params.finality_depth;
    let (events, applied, rolled_back) = inner
        .db(move |store| {
            ctx.load_addresses(store)?;
            let old_tip = store.tip()?.map(|t| t.height).unwrap_or(0);
            let mut rolled_back = 0u64;
            let mut events = Vec::new();
            store.write(|tx| {
                if let Some(fork) = rollback {
                    rolled_back = roll_back(tx, fork, &mut events)? as u64;
                    events.push(WalletEvent::Reorg {
                        fork_height: fork,
                        old_tip,
                        new_tip: blocks.last().map(|b| b.header.height).unwrap_or(fork),
                    });
                }
                for block in &blocks {
                    let header = Header {
                        height: block.header.height,
                        hash: block.id().0,
                        prev_hash: block.header.prev.0,
                        time: block.header.time,
                        verified: true,
                    };
                    tx.append_header(&header)?;
                    apply_block_txs(tx, &mut ctx, &block.txs, Some((header.height, header.hash)))?;
                    for id in tx.finalize_up_to(header.height, depth)? {
                        ctx.events.push(WalletEvent::state_changed(
                            &id,
                            Some(TxState::Confirmed),
                            TxState::Final,
                            Some(depth),
                        ));
                        // A send is done only when final: say so once.
                        let own = tx.transaction(&id)?.is_some_and(|r| r.own);
                        if own && !tx.has_notification("tx_final", &id)? {
                            ctx.notify(
                                tx,
                                NewNotification {
                                    kind: "tx_final".into(),
                                    title: "Your payment is final".into(),
                                    body: format!(
                                        "Transaction {} is {depth} blocks deep and can no longer be undone.",
                                        hex::encode(id)
                                    ),
                                    txid: Some(id),
                                },
                            )?;
                        }
                    }
                }
                Ok(())
            })?;
            events.append(&mut ctx.events);
            Ok::<_, SyncError>((events, blocks.len() as u64, rolled_back))
        })
        .await?;
    inner.events.emit_all(events);
    report.blocks += applied;
    report.rolled_back += rolled_back;
    Ok(applied)
}

/// Applies transactions seen in a block (`block = Some`) or in the pool.
/// Idempotent. Derives more look-ahead addresses when one near the end is
/// used, and then looks at the transactions again.
pub(crate) fn apply_block_txs(
    tx: &StoreTx<'_>,
    ctx: &mut ApplyCtx,
    txs: &[Transaction],
    block: Option<(u64, Hash32)>,
) -> Result<(), StoreError> {
    loop {
        let before = ctx.addresses.len();
        for t in txs {
            apply_tx(tx, ctx, t, block)?;
        }
        if ctx.addresses.len() == before {
            return Ok(());
        }
    }
}

fn apply_tx(
    tx: &StoreTx<'_>,
    ctx: &mut ApplyCtx,
    t: &Transaction,
    block: Option<(u64, Hash32)>,
) -> Result<(), StoreError> {
    let txid = t.txid().0;
    let ours_out: Vec<(u32, String)> = t
        .outputs
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            ctx.addresses
                .get(&o.owner.0)
                .map(|(a, _)| (i as u32, a.clone()))
        })
        .collect();
    let mut ours_in = Vec::new();
    for input in &t.inputs {
        let op = OutPoint {
            txid: input.txid.0,
            vout: input.index,
        };
        if tx.output(&op)?.is_some() {
            ours_in.push(op);
        }
    }
    let existing = tx.transaction(&txid)?;
    if ours_out.is_empty() && ours_in.is_empty() && existing.is_none() {
        return Ok(());
    }
    let in_block = block.is_some();
    let new_state = if in_block {
        TxState::Confirmed
    } else {
        TxState::InPool
    };
    match &existing {
        None => {
            tx.insert_transaction(&NewTransaction {
                txid,
                state: new_state,
                own: !ours_in.is_empty(),
                raw: Some(t.encode()),
                block,
            })?;
            ctx.events.push(WalletEvent::state_changed(
                &txid,
                None,
                new_state,
                block.map(|_| 1),
            ));
        }
        Some(record) => {
            if in_block {
                if !record.state.is_in_block() || record.block != block {
                    tx.set_transaction_state(&txid, TxState::Confirmed, block, None)?;
                    ctx.events.push(WalletEvent::state_changed(
                        &txid,
                        Some(record.state),
                        TxState::Confirmed,
                        Some(1),
                    ));
                } else {
                    // Already applied (a second look after new addresses).
                }
            } else {
                if record.state.is_in_block() {
                    return Ok(());
                }
                if record.state != TxState::InPool {
                    tx.set_transaction_state(&txid, TxState::InPool, None, None)?;
                    ctx.events.push(WalletEvent::state_changed(
                        &txid,
                        Some(record.state),
                        TxState::InPool,
                        None,
                    ));
                }
            }
        }
    }
    // Spends of the wallet's coins.
    for op in &ours_in {
        let Some(coin) = tx.output(op)? else { continue };
        for other in [coin.spent_by, coin.locked_by].into_iter().flatten() {
            if other == txid {
                continue;
            }
            if !in_block {
                // A pool transaction conflicting with one the wallet knows:
                // the gateway will confirm at most one; wait for the block.
                return Ok(());
            }
            let reason = format!(
                "a conflicting transaction {} spent the same coins",
                hex::encode(txid)
            );
            for (id, from) in tx.drop_with_descendants(&other, &reason)? {
                ctx.events.push(WalletEvent::state_changed(
                    &id,
                    Some(from),
                    TxState::Dropped,
                    None,
                ));
                let own = tx.transaction(&id)?.is_some_and(|r| r.own);
                ctx.notify(
                    tx,
                    NewNotification {
                        kind: "tx_dropped".into(),
                        title: if own {
                            "A payment you sent was dropped".into()
                        } else {
                            "An incoming payment vanished".into()
                        },
                        body: format!("Transaction {} was dropped: {reason}.", hex::encode(id)),
                        txid: Some(id),
                    },
                )?;
            }
        }
        tx.mark_spent(op, &txid)?;
    }
    // Payments to the wallet's addresses.
    let mut received: Vec<(Hash32, u64)> = Vec::new();
    let mut to_receive_chain = false;
    let mut used_any = false;
    for (vout, address) in &ours_out {
        let output = &t.outputs[*vout as usize];
        tx.insert_output(&NewOutput {
            outpoint: OutPoint { txid, vout: *vout },
            asset: output.asset.0,
            amount: output.amount,
            address: address.clone(),
            height: block.map(|b| b.0),
        })?;
        if let Some(record) = tx.find_address(address)? {
            if record.chain == AddressChain::Receive {
                to_receive_chain = true;
            }
            if !record.used {
                tx.mark_address_used(address)?;
                used_any = true;
            }
        }
        match received.iter_mut().find(|(a, _)| *a == output.asset.0) {
            Some(e) => e.1 = e.1.saturating_add(output.amount),
            None => received.push((output.asset.0, output.amount)),
        }
    }
    if used_any {
        for new in ensure_lookahead(tx, &ctx.keys, ctx.network, ctx.gap)? {
            ctx.addresses
                .insert(new.public_key, (new.address.clone(), new.chain));
        }
    }
    // Notifications: a payment in (first sighting), an own send confirmed.
    let incoming = ours_in.is_empty() && !received.is_empty() && to_receive_chain;
    if incoming && !tx.has_notification("payment_received", &txid)? {
        let amounts: Vec<AssetAmount> = received
            .iter()
            .map(|(asset, amount)| {
                let (symbol, decimals) = ctx.ledger.symbol(asset);
                AssetAmount {
                    asset: hex::encode(asset),
                    symbol,
                    decimals,
                    amount: *amount,
                }
            })
            .collect();
        let text = amounts
            .iter()
            .map(|a| {
                format!(
                    "{} {}",
                    crate::amount::format_amount(a.amount, a.decimals),
                    a.symbol
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        ctx.events.push(WalletEvent::PaymentReceived {
            txid: hex::encode(txid),
            amounts,
            confirmed: in_block,
        });
        ctx.notify(
            tx,
            NewNotification {
                kind: "payment_received".into(),
                title: format!("You received {text}"),
                body: format!(
                    "Transaction {} ({}).",
                    hex::encode(txid),
                    if in_block { "confirmed" } else { "pending" }
                ),
                txid: Some(txid),
            },
        )?;
    }
    let own = !ours_in.is_empty() || existing.as_ref().is_some_and(|r| r.own);
    if own && in_block && !tx.has_notification("tx_confirmed", &txid)? {
        ctx.notify(
            tx,
            NewNotification {
                kind: "tx_confirmed".into(),
                title: "Your payment is confirmed".into(),
                body: format!(
                    "Transaction {} is in block {}.",
                    hex::encode(txid),
                    block.map(|b| b.0).unwrap_or(0)
                ),
                txid: Some(txid),
            },
        )?;
    }
    Ok(())
}

/// Applies the mempool delta since the last pass; returns how many of the
/// wallet's transactions it holds.
async fn sync_mempool(inner: &Inner, ledger: &Ledger) -> Result<u64, SyncError> {
    let since: u64 = inner
        .db(|s| Ok::<_, SyncError>(s.setting(MEMPOOL_SEQ_SETTING)?))
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut seq = since;
    // txid -> transaction hex, in order of arrival; removed ones are gone.
    let mut pool: Vec<(String, String)> = Vec::new();
    for _ in 0..1000 {
        let delta = inner.gateway.mempool(seq, 1000).await?;
        if delta.reset {
            pool.clear();
        }
        for change in delta.changes {
            match change.kind {
                notch_protocol::api::MempoolChangeKind::Added => {
                    if let Some(hex) = change.hex {
                        pool.retain(|(t, _)| t != &change.txid);
                        pool.push((change.txid, hex));
                    }
                }
                notch_protocol::api::MempoolChangeKind::Removed => {
                    pool.retain(|(t, _)| t != &change.txid);
                }
            }
        }
        seq = delta.seq;
        if !delta.more {
            break;
        }
    }
    let network = inner.network;
    let mut txs = Vec::new();
    for (txid, hex) in &pool {
        let Ok(bytes) = hex::decode(hex) else {
            continue;
        };
        match Transaction::decode(&bytes) {
            Ok(t) if t.check_stateless(network).is_ok() && &t.txid().to_hex() == txid => {
                txs.push(t)
            }
            _ => tracing::warn!(txid, "ignoring a malformed mempool transaction"),
        }
    }
    let mut ctx = ApplyCtx::new(inner, ledger);
    let (events, count) = inner
        .db(move |store| {
            ctx.load_addresses(store)?;
            let before: usize = 0;
            store.write(|tx| {
                apply_block_txs(tx, &mut ctx, &txs, None)?;
                tx.set_setting(MEMPOOL_SEQ_SETTING, &seq.to_string())
            })?;
            let count = ctx
                .events
                .iter()
                .filter(|e| matches!(e, WalletEvent::TxStateChanged { .. }))
                .count()
                + before;
            Ok::<_, SyncError>((ctx.events, count as u64))
        })
        .await?;
    inner.events.emit_all(events);
    Ok(count)
}

/// Submits queued sends and asks the gateway about the wallet's other
/// unconfirmed transactions.
pub(crate) async fn resolve_pending(inner: &Inner, ledger: &Ledger) -> Result<(), SyncError> {
    let pending = inner
        .db(|s| {
            Ok::<_, SyncError>(s.transactions_in(&[
                TxState::Queued,
                TxState::Accepted,
                TxState::InPool,
            ])?)
        })
        .await?;
    for record in pending {
        let txid_hex = hex::encode(record.txid);
        let status = if record.state == TxState::Queued && record.own {
            let Some(raw) = record.raw.clone() else {
                continue;
            };
            match inner.gateway.submit(&raw).await {
                Ok(r) => Some(r.status),
                Err(GatewayError::Refused(e)) => Some(TxStatus::Rejected {
                    code: e.code,
                    message: e.message,
                }),
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => return Err(e.into()),
            }
        } else {
            match inner.gateway.tx_status(&txid_hex).await {
                Ok(r) => Some(r.status),
                Err(GatewayError::Refused(e)) if e.code == "not_found" => {
                    if record.own && record.raw.is_some() {
                        // The gateway forgot it: hand it over again.
                        let raw = record.raw.clone().unwrap_or_default();
                        match inner.gateway.submit(&raw).await {
                            Ok(r) => Some(r.status),
                            Err(GatewayError::Refused(e)) => Some(TxStatus::Rejected {
                                code: e.code,
                                message: e.message,
                            }),
                            Err(e) => return Err(e.into()),
                        }
                    } else {
                        Some(TxStatus::Dropped {
                            reason: "the gateway no longer knows this transaction".into(),
                        })
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(status) = status {
            apply_status(inner, ledger, record.txid, status).await?;
        }
    }
    Ok(())
}

/// Records what the gateway says about one of the wallet's transactions
/// (not about blocks: confirmations come from verified blocks only).
pub(crate) async fn apply_status(
    inner: &Inner,
    _ledger: &Ledger,
    txid: Hash32,
    status: TxStatus,
) -> Result<(), SyncError> {
    let events = inner
        .db(move |store| {
            let mut events = Vec::new();
            store.write(|tx| {
                let Some(record) = tx.transaction(&txid)? else {
                    return Ok(());
                };
                if record.state.is_in_block() || record.state.is_failed() {
                    return Ok(());
                }
                let (to, reason) = match &status {
                    TxStatus::Accepted => (TxState::Accepted, None),
                    TxStatus::InPool => (TxState::InPool, None),
                    // The block itself will confirm it (verified).
                    TxStatus::Confirmed { .. } | TxStatus::Final { .. } => (TxState::InPool, None),
                    TxStatus::Queued => return Ok(()),
                    TxStatus::Rejected { code, message } => {
                        (TxState::Rejected, Some(format!("{code}: {message}")))
                    }
                    TxStatus::Dropped { reason } => (TxState::Dropped, Some(reason.clone())),
                };
                if to == TxState::InPool || to == TxState::Accepted {
                    // Accepted by the gateway: the coins are spent now.
                    for coin in tx.outputs_used_by(&txid)? {
                        // A coin some other transaction already spends is
                        // left to the blocks to settle.
                        if coin.spent_by.is_none_or(|s| s == txid) {
                            tx.mark_spent(&coin.outpoint, &txid)?;
                        }
                    }
                    if record.state != to
                        && !(record.state == TxState::InPool && to == TxState::Accepted)
                    {
                        tx.set_transaction_state(&txid, to, None, None)?;
                        events.push(WalletEvent::state_changed(
                            &txid,
                            Some(record.state),
                            to,
                            None,
                        ));
                    }
                    return Ok(());
                }
                let reason = reason.unwrap_or_default();
                let changed: Vec<(Hash32, TxState, TxState)> = if to == TxState::Dropped {
                    tx.drop_with_descendants(&txid, &reason)?
                        .into_iter()
                        .map(|(id, from)| (id, from, TxState::Dropped))
                        .collect()
                } else {
                    // Refused: whatever spends its outputs can never be valid.
                    let children: Vec<Hash32> = tx
                        .outputs_of(&txid)?
                        .into_iter()
                        .filter_map(|o| o.spent_by.or(o.locked_by))
                        .collect();
                    tx.set_transaction_state(&txid, to, None, Some(&reason))?;
                    let mut changed = vec![(txid, record.state, to)];
                    for child in children {
                        let why = format!(
                            "it spends coins of refused transaction {}",
                            hex::encode(txid)
                        );
                        changed.extend(
                            tx.drop_with_descendants(&child, &why)?
                                .into_iter()
                                .map(|(id, from)| (id, from, TxState::Dropped)),
                        );
                    }
                    changed
                };
                for (id, from, to) in changed {
                    events.push(WalletEvent::state_changed(&id, Some(from), to, None));
                    let own = tx.transaction(&id)?.is_some_and(|r| r.own);
                    let n = tx.add_notification(&NewNotification {
                        kind: if to == TxState::Rejected {
                            "tx_rejected".into()
                        } else {
                            "tx_dropped".into()
                        },
                        title: match (own, to) {
                            (true, TxState::Rejected) => "A payment you sent was refused".into(),
                            (true, _) => "A payment you sent was dropped".into(),
                            (false, _) => "An incoming payment vanished".into(),
                        },
                        body: format!("Transaction {}: {reason}.", hex::encode(id)),
                        txid: Some(id),
                    })?;
                    events.push(notification_event(&n));
                }
                Ok(())
            })?;
            Ok::<_, SyncError>(events)
        })
        .await?;
    inner.events.emit_all(events);
    Ok(())
}

/// [`Wallet::watch`].
pub(crate) async fn watch(wallet: &Wallet, poll: Duration) -> Result<(), SyncError> {
    let inner = &wallet.inner;
    let mut backoff = Duration::from_secs(1);
    let mut stream: Option<crate::gateway::GatewayStream> = None;
    loop {
        match wallet.sync().await {
            Ok(_) => backoff = Duration::from_secs(1),
            Err(e) if e.is_transient() => {
                stream = None;
                tracing::info!("gateway unreachable ({e}); retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
            Err(SyncError::Verification { what }) => {
                // Reported by sync; keep watching, slowly.
                tracing::warn!("verification failed: {what}");
                tokio::time::sleep(backoff.max(poll)).await;
                backoff = (backoff * 2).min(Duration::from_secs(300));
                continue;
            }
            Err(e) => return Err(e),
        }
        if stream.is_none() {
            match inner.gateway.stream().await {
                Ok(mut s) => {
                    let addresses = inner
                        .db(|store| {
                            let mut list = Vec::new();
                            for chain in [AddressChain::Receive, AddressChain::Change] {
                                list.extend(store.addresses(chain)?.into_iter().map(|a| a.address));
                            }
                            Ok::<_, SyncError>(list)
                        })
                        .await?;
                    let mut ok = true;
                    for chunk in addresses.chunks(500).take(2) {
                        ok &= s.subscribe(chunk.to_vec()).await.is_ok();
                    }
                    if ok {
                        stream = Some(s);
                    }
                }
                Err(e) => tracing::info!("no push stream ({e}); polling every {poll:?}"),
            }
        }
        // Wait for a reason to sync again: a pushed message or the poll.
        let wait = tokio::time::sleep(poll);
        match stream.as_mut() {
            Some(s) => {
                tokio::select! {
                    message = s.next() => match message {
                        Some(Ok(StreamMessage::Subscribed { .. } | StreamMessage::Hello { .. })) => {}
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => stream = None,
                    },
                    _ = wait => {}
                }
            }
            None => wait.await,
        }
    }
}

/// For tests: the ledger info the wallet pinned.
#[allow(dead_code)]
pub(crate) fn pinned_info(store: &Store) -> Result<Option<LedgerInfo>, StoreError> {
    Ok(store
        .setting(LEDGER_INFO_SETTING)?
        .and_then(|json| serde_json::from_str(&json).ok()))
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use notch_protocol::{BlockId, public_key};

    use super::*;

    fn authority() -> SigningKey {
        SigningKey::from_bytes(&[42u8; 32])
    }

    fn chain(n: usize) -> Vec<BlockHeader> {
        let key = authority();
        let mut out: Vec<BlockHeader> = Vec::new();
        for i in 0..n {
            let mut b = Block::build(
                Network::Sandbox,
                out.last(),
                1_700_000_000 + i as u64,
                0,
                vec![],
            );
            b.header.sign(&key);
            out.push(b.header);
        }
        out
    }

    #[test]
    fn a_good_chain_verifies() {
        let headers = chain(5);
        let auth = public_key(&authority());
        assert!(verify_headers(None, &headers, &auth, Network::Sandbox).is_ok());
        let anchor = Link {
            height: 1,
            id: headers[1].id().0,
            time: headers[1].time,
        };
        assert!(verify_headers(Some(anchor), &headers[2..], &auth, Network::Sandbox).is_ok());
    }

    #[test]
    fn bad_headers_are_refused() {
        let auth = public_key(&authority());
        // A broken signature.
        let mut headers = chain(4);
        headers[2].signature.0[5] ^= 1;
        assert!(matches!(
            verify_headers(None, &headers, &auth, Network::Sandbox),
            Err(SyncError::Verification { .. })
        ));
        // Signed by someone else.
        let mut headers = chain(3);
        headers[2].sign(&SigningKey::from_bytes(&[7u8; 32]));
        assert!(verify_headers(None, &headers, &auth, Network::Sandbox).is_err());
        // A changed merkle root breaks the signature over the id.
        let mut headers = chain(3);
        headers[1].merkle_root.0[0] ^= 1;
        assert!(verify_headers(None, &headers, &auth, Network::Sandbox).is_err());
        // A header that does not link (re-signed, so only the link is wrong).
        let mut headers = chain(4);
        headers[3].prev = BlockId([9; 32]);
        headers[3].sign(&authority());
        let err = verify_headers(None, &headers, &auth, Network::Sandbox).expect_err("link");
        assert!(err.to_string().contains("failed verification"), "{err}");
        // A gap against the stored anchor.
        let headers = chain(5);
        let anchor = Link {
            height: 1,
            id: headers[1].id().0,
            time: headers[1].time,
        };
        assert!(verify_headers(Some(anchor), &headers[3..], &auth, Network::Sandbox).is_err());
        // Another network.
        assert!(verify_headers(None, &chain(2), &auth, Network::Test).is_err());
        // Time going back against the anchor.
        let headers = chain(3);
        let anchor = Link {
            height: 1,
            id: headers[1].id().0,
            time: headers[2].time + 100,
        };
        assert!(verify_headers(Some(anchor), &headers[2..], &auth, Network::Sandbox).is_err());
    }
}
