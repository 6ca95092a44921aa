//! Sync: follows the gateway's mirror and believes only what it verified.
//!
//! One pass ([`Wallet::sync`](crate::Wallet::sync)):
//! 1. `/v1/info`: the network must be the wallet's; the authority key and
//!    the ledger's metadata (assets, fee rule, finality) are pinned on first
//!    contact or given by a network file ([`crate::trust`]); a later change
//!    is refused.
//! 2. Headers from a locator of the wallet's chain, each checked by
//!    [`crate::chain`]: link, the pinned authority's signature, the network
//!    file's genesis and checkpoint. A roll-back is allowed only when the
//!    verified chain goes past the wallet's tip, and never deeper than the
//!    finality depth. Bounded: at most [`MAX_PLAN`] headers per pass.
//! 3. Blocks in adaptive batches (halved on error, doubled on success): each
//!    must be the verified header's block and pass `verify_block` (merkle
//!    root, encodings, stateless rules); a spend of the wallet's coins must
//!    carry valid signatures by the wallet's keys. A whole batch is verified
//!    before any of it is stored, then applied in ONE store transaction; a
//!    reorg is applied together with blocks reaching past the old tip, so the
//!    wallet never sits on a shorter chain than before.
//! 4. Rescan: when a block used an address near the end of the look-ahead
//!    window, the window grows; blocks already passed in this pass that paid
//!    the new addresses (an in-memory index of output owners tells which)
//!    are fetched and applied again, so a restore finds every coin.
//! 5. The mempool delta: pending payments in and out.
//! 6. The wallet's unconfirmed sends: queued ones are submitted
//!    (idempotently), the others' fate asked. What the gateway says moves
//!    them only through [`crate::lifecycle`], which never releases coins on
//!    the gateway's word.
//!
//! Anything that fails verification is reported (event, notification,
//! error) and nothing of it is stored. A pass can be interrupted anywhere:
//! the next one resumes from what was committed.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use notch_protocol::api::{BlocksRequest, HeadersRequest, LedgerInfo, StreamMessage, TxStatus};
use notch_protocol::{Block, Network, Transaction, locator_heights, verify_block, verify_header};

use crate::chain::{Anchors, Link, bad, check_reorg, decode_headers, verify_headers, verify_next};
use crate::context::{
    Inner, LEDGER_INFO_SETTING, Ledger, MEMPOOL_SEQ_SETTING, PINNED_SETTING, RESTORING_SETTING,
    authority_setting, ensure_lookahead, unix_now,
};
use crate::events::{AssetAmount, WalletEvent};
use crate::gateway::GatewayError;
use crate::keys::{AddressChain, WalletKeys};
use crate::lifecycle::{self, Changed, TxEvent};
use crate::store::{
    Hash32, Header, NewNotification, NewOutput, NewTransaction, NotificationKind, OutPoint, Store,
    StoreError, StoreTx, TxState,
};
use crate::trust::{self, Pinned};

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
        "the gateway's authority key is not the one this wallet trusts: it pinned {pinned} for {network}, the gateway presents {served}. Nothing was synced; if the operator really changed keys, start a new wallet data directory"
    )]
    AuthorityChanged {
        network: String,
        pinned: String,
        served: String,
    },
    #[error(
        "the gateway's ledger metadata changed since this wallet first trusted it ({what}); nothing was synced. The gateway or something between it and you is not trustworthy"
    )]
    LedgerChanged { what: String },
    #[error(
        "the gateway served data that failed verification ({what}); nothing of it was stored. The gateway or something between it and you is not trustworthy"
    )]
    Verification { what: String },
    #[error(
        "the gateway offered a chain that undoes final blocks (fork at {fork_height}, the wallet's tip is {tip}, finality depth {finality_depth}); it was refused: final means final"
    )]
    ReorgTooDeep {
        fork_height: u64,
        tip: u64,
        finality_depth: u64,
    },
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

    /// The gateway served something the wallet refused (a lie, or
    /// something between it and the wallet).
    pub fn is_untrusted(&self) -> bool {
        matches!(
            self,
            SyncError::AuthorityChanged { .. }
                | SyncError::LedgerChanged { .. }
                | SyncError::Verification { .. }
                | SyncError::ReorgTooDeep { .. }
        )
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
    /// Blocks scanned again for addresses the look-ahead found late.
    pub rescanned: u64,
    /// Mempool transactions of the wallet seen.
    pub pool_txs: u64,
}

const MAX_HEADERS: u32 = 2000;
const MAX_BATCH: u32 = 100;
const MAX_RESTARTS: usize = 4;
const MAX_FAILED_BATCHES: usize = 6;
/// Headers planned per pass at most (the next pass goes on).
pub const MAX_PLAN: usize = 200_000;
/// Mempool entries considered per pass at most.
pub const MAX_POOL: usize = 100_000;
/// Rescans per pass at most (each must find new addresses to go on).
const MAX_RESCANS: usize = 8;
/// A pass that applies more blocks than this is a catch-up: its
/// notifications are quiet and summed up once.
const CATCH_UP_BLOCKS: usize = 6;

/// One sync pass ([`Wallet::sync`](crate::Wallet::sync)); see the
/// [module docs](crate::sync).
pub(crate) async fn sync(inner: &Inner) -> Result<SyncReport, SyncError> {
    let _one_at_a_time = inner.sync_lock.lock().await;
    let result = sync_pass(inner).await;
    report_outcome(inner, &result).await;
    result
}

async fn report_outcome(inner: &Inner, result: &Result<SyncReport, SyncError>) {
    let note = |kind, title: &str, body: String| NewNotification {
        kind,
        title: title.to_owned(),
        body,
        txid: None,
    };
    let new = match result {
        Ok(_) => {
            if let Some(since) = inner.set_unreachable_since(None) {
                inner.events.emit(WalletEvent::GatewayBack {
                    unreachable_for_secs: unix_now().saturating_sub(since),
                });
            }
            None
        }
        Err(e @ SyncError::ReorgTooDeep { .. }) => {
            inner.events.emit(WalletEvent::VerificationFailed {
                what: e.to_string(),
            });
            Some(note(
                NotificationKind::ReorgRefused,
                "The gateway tried to undo final payments",
                format!("{e}."),
            ))
        }
        Err(SyncError::LedgerChanged { what }) => {
            inner
                .events
                .emit(WalletEvent::VerificationFailed { what: what.clone() });
            Some(note(
                NotificationKind::LedgerChanged,
                "The gateway changed the ledger's rules",
                format!("{what}. The wallet keeps the rules it first trusted."),
            ))
        }
        Err(SyncError::Verification { what }) => {
            inner
                .events
                .emit(WalletEvent::VerificationFailed { what: what.clone() });
            Some(note(
                NotificationKind::VerificationFailed,
                "The gateway served data that failed verification",
                format!("{what}. Nothing of it was stored."),
            ))
        }
        Err(SyncError::Gateway(e)) if e.is_transient() => {
            let now = unix_now();
            if inner.unreachable_since().is_none() {
                inner.set_unreachable_since(Some(now));
                inner.events.emit(WalletEvent::GatewayUnreachable {
                    since: now,
                    reason: e.to_string(),
                });
                Some(note(
                    NotificationKind::GatewayUnreachable,
                    "The gateway cannot be reached",
                    format!("Sync stopped: {e}. Notch keeps trying."),
                ))
            } else {
                None
            }
        }
        Err(_) => None,
    };
    if let Some(new) = new {
        let written = inner
            .db(move |store| store.write(|tx| tx.add_notification(&new)))
            .await;
        if let Ok(n) = written {
            inner.events.emit(notification_event(&n, false));
        }
    }
}

pub(crate) fn notification_event(n: &crate::store::Notification, quiet: bool) -> WalletEvent {
    WalletEvent::Notification {
        id: n.id,
        kind: n.kind,
        title: n.title.clone(),
        quiet,
    }
}

/// What a pass learned, carried between its steps.
#[derive(Default)]
struct PassState {
    report: SyncReport,
    /// The first height (in this pass) at which each output owner was paid,
    /// by the first 8 bytes of its key: tells a rescan where to start.
    owners: HashMap<[u8; 8], u64>,
    /// Addresses derived while applying blocks (the window grew).
    grown: Vec<[u8; 32]>,
    /// The height the pass's block phase started from.
    start: u64,
    catch_up: bool,
    quiet_notifications: u64,
    payments_received: u64,
}

async fn sync_pass(inner: &Inner) -> Result<SyncReport, SyncError> {
    let (ledger, pending_pin) = check_info(inner).await?;
    let mut pass = PassState::default();
    let mut restarts = 0;
    loop {
        match sync_chain(inner, &ledger, &mut pass).await {
            Ok(()) => break,
            Err(SyncError::ChainUnstable) if restarts < MAX_RESTARTS => {
                restarts += 1;
                tracing::info!("the gateway's chain changed during sync; starting over");
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(pin) = pending_pin {
        let key = authority_setting(inner.network);
        inner
            .db(move |s| Ok::<_, SyncError>(s.write(|tx| write_pin(tx, &key, &pin))?))
            .await?;
        inner.set_ledger(ledger.clone());
    }
    rescan(inner, &ledger, &mut pass).await?;
    pass.report.pool_txs = sync_mempool(inner, &ledger).await?;
    resolve_pending(inner, &ledger).await?;
    let height = inner
        .db(|s| Ok::<_, SyncError>(s.tip()?.map(|h| h.height)))
        .await?
        .unwrap_or(0);
    pass.report.height = height;
    if pass.catch_up && pass.quiet_notifications > 0 {
        inner.events.emit(WalletEvent::CaughtUp {
            notifications: pass.quiet_notifications,
            payments_received: pass.payments_received,
            height,
        });
    }
    inner.events.emit(WalletEvent::SyncDone { height });
    Ok(pass.report)
}

/// What first contact would pin, written only after the pass verified the
/// chain (the genesis, and the network file's checkpoint): a gateway that
/// fails those checks pins nothing.
struct PendingPin {
    authority_key: String,
    pinned_json: String,
    ledger_json: String,
}

/// `/v1/info`: network check, authority and metadata pinning.
async fn check_info(inner: &Inner) -> Result<(Ledger, Option<PendingPin>), SyncError> {
    let info = inner.gateway.info().await?;
    if info.network != inner.network.name() {
        return Err(SyncError::WrongNetwork {
            url: inner.gateway.url().to_owned(),
            served: info.network,
            expected: inner.network.name().into(),
        });
    }
    let key = authority_setting(inner.network);
    let network = inner.network;
    let served_key = info.authority_key.to_ascii_lowercase();
    let file = inner.config.network_file.clone();
    let info_for_db = info.clone();
    let (pinned, pending) = inner
        .db(move |store| {
            let file_key = file.as_ref().map(|f| f.authority_key.to_ascii_lowercase());
            let pinned_key = store.setting(&key)?.or(file_key);
            if let Some(pinned) = pinned_key
                && pinned != served_key
            {
                return Err(SyncError::AuthorityChanged {
                    network: network.name().into(),
                    pinned,
                    served: served_key,
                });
            }
            let stored: Option<Pinned> = store
                .setting(PINNED_SETTING)?
                .and_then(|json| serde_json::from_str(&json).ok());
            let from_file = match &file {
                Some(f) => f.pinned().map_err(|e| SyncError::LedgerChanged {
                    what: format!("the network file: {}", e.0),
                })?,
                None => None,
            };
            let old = stored.clone().or(from_file);
            let new = trust::check_info(old.as_ref(), &info_for_db)
                .map_err(|e| SyncError::LedgerChanged { what: e.0 })?;
            if stored.as_ref() == Some(&new) {
                return Ok((new, None));
            }
            let json = |v: &dyn erased::Json| v.json();
            let pending = PendingPin {
                authority_key: served_key,
                pinned_json: json(&new)?,
                ledger_json: json(&new.as_info(&info_for_db))?,
            };
            if stored.is_some() {
                // A new asset joins an existing pin: nothing to wait for.
                store.write(|tx| write_pin(tx, &key, &pending))?;
                return Ok((new, None));
            }
            Ok((new, Some(pending)))
        })
        .await?;
    let ledger = Ledger::from_info(pinned.as_info(&info)).ok_or_else(|| {
        SyncError::Gateway(GatewayError::BadResponse(
            "the ledger info has no valid authority key or native asset".into(),
        ))
    })?;
    if pending.is_none() {
        inner.set_ledger(ledger.clone());
    }
    Ok((ledger, pending))
}

fn write_pin(tx: &StoreTx<'_>, key: &str, pin: &PendingPin) -> Result<(), StoreError> {
    tx.set_setting(key, &pin.authority_key)?;
    tx.set_setting(PINNED_SETTING, &pin.pinned_json)?;
    tx.set_setting(LEDGER_INFO_SETTING, &pin.ledger_json)
}

/// Serializing what the wallet itself built cannot fail; if it did, it is
/// reported as a store problem rather than a panic.
mod erased {
    use crate::store::StoreError;

    pub(super) trait Json {
        fn json(&self) -> Result<String, StoreError>;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<String, StoreError> {
            serde_json::to_string(self).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
    }
}

fn anchors(inner: &Inner) -> Anchors {
    let Some(file) = &inner.config.network_file else {
        return Anchors::default();
    };
    Anchors {
        genesis: file.genesis_id().ok().map(|g| g.0),
        checkpoint: file.checkpoint.as_ref().and_then(|(h, id)| {
            notch_protocol::BlockId::from_hex(id)
                .ok()
                .map(|id| (*h, id.0))
        }),
    }
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
        Some(fp) => match store.header(fp.height)? {
            Some(h) if hex::encode(h.hash) == fp.hash.to_ascii_lowercase() => {
                Ok(Some(Link::from(&h)))
            }
            _ => Err(bad(format!(
                "the gateway named block {} ({}) as the fork point, which is not on the wallet's chain",
                fp.height, fp.hash
            ))),
        },
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

/// The verified headers of this pass: height -> id, and where they fork
/// from the stored chain.
struct Plan {
    ids: BTreeMap<u64, Hash32>,
    fork: Option<u64>,
}

impl Plan {
    fn last(&self) -> Option<u64> {
        self.ids.keys().next_back().copied()
    }
}

async fn plan_headers(
    inner: &Inner,
    ledger: &Ledger,
    store_loc: &[String],
) -> Result<Plan, SyncError> {
    let network = inner.network;
    let anchors = anchors(inner);
    let mut ids: BTreeMap<u64, Hash32> = BTreeMap::new();
    let mut last: Option<Link> = None;
    let mut fork: Option<u64> = None;
    let rounds = MAX_PLAN / MAX_HEADERS as usize + 1;
    for _ in 0..rounds {
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
        if response.headers.len() > MAX_HEADERS as usize {
            return Err(bad(format!(
                "the gateway sent {} headers for a limit of {MAX_HEADERS}",
                response.headers.len()
            )));
        }
        let anchor = match (&last, &response.fork_point) {
            (Some(l), Some(fp)) if fp.hash.eq_ignore_ascii_case(&hex::encode(l.id)) => Some(*l),
            (Some(_), _) => return Err(SyncError::ChainUnstable),
            (None, fp) => {
                let fp = fp.clone();
                let anchor = inner.db(move |s| fork_anchor(s, fp.as_ref())).await?;
                fork = anchor.map(|a| a.height);
                anchor
            }
        };
        let headers = decode_headers(&response.headers)?;
        verify_headers(anchor, &headers, &ledger.authority, network, &anchors)?;
        for h in &headers {
            ids.insert(h.height, h.id().0);
        }
        if let Some(h) = headers.last() {
            last = Some(Link::from(h));
        }
        if !response.more || headers.is_empty() || ids.len() >= MAX_PLAN {
            break;
        }
    }
    Ok(Plan { ids, fork })
}

/// Headers, then blocks, up to the gateway's tip (or [`MAX_PLAN`]).
async fn sync_chain(inner: &Inner, ledger: &Ledger, pass: &mut PassState) -> Result<(), SyncError> {
    let network = inner.network;
    let authority = ledger.authority;
    let depth = ledger.info.params.finality_depth;
    let anchors = anchors(inner);

    // 1. Headers: verified, kept in memory as the plan for the blocks.
    let (store_loc, stored_tip) = inner.db(|s| Ok::<_, SyncError>(store_locator(s)?)).await?;
    let plan = plan_headers(inner, ledger, &store_loc).await?;
    let stored_height = stored_tip.as_ref().map(|t| t.height);
    // A roll-back only with proof: a longer verified chain, above finality.
    if let (Some(fork), Some(tip)) = (plan.fork, stored_height) {
        check_reorg(tip, fork, plan.last(), depth)?;
    }
    let Some(target) = plan.last() else {
        return Ok(());
    };
    let total = plan.ids.len() as u64;
    pass.start = plan.fork.map_or(0, |f| f + 1);
    pass.catch_up |= plan.ids.len() > CATCH_UP_BLOCKS;
    inner.events.emit(WalletEvent::SyncProgress {
        done: 0,
        total,
        height: stored_height.unwrap_or(0),
        target,
    });

    // 2. Blocks, in adaptive batches; a reorg's blocks are gathered until
    // they pass the old tip and applied with the roll-back at once.
    let mut batch: u32 = 10;
    let mut failures = 0;
    let mut done = 0u64;
    let mut pending_reorg: Vec<Block> = Vec::new();
    let mut reorg_from: Option<u64> = match (plan.fork, stored_height) {
        (Some(f), Some(t)) if f < t => Some(f),
        _ => None,
    };
    let max_rounds = plan.ids.len() * 2 + 2 * MAX_FAILED_BATCHES + 4;
    for _ in 0..max_rounds {
        let (locator, tip) = match (reorg_from, pending_reorg.last()) {
            // Still gathering a reorg: ask from the last gathered block.
            (Some(_), Some(last)) => (vec![last.id().to_hex()], None),
            (Some(fork), None) => {
                let h = inner
                    .db(move |s| Ok::<_, SyncError>(s.header(fork)?))
                    .await?
                    .ok_or_else(|| bad("the fork point left the wallet's chain"))?;
                (vec![hex::encode(h.hash)], None)
            }
            (None, _) => inner.db(|s| Ok::<_, SyncError>(store_locator(s)?)).await?,
        };
        if reorg_from.is_none()
            && tip
                .as_ref()
                .is_some_and(|t| t.height >= target && plan.ids.get(&t.height) == Some(&t.hash))
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
        if response.blocks.len() > batch as usize {
            return Err(bad(format!(
                "the gateway sent {} blocks for a limit of {batch}",
                response.blocks.len()
            )));
        }
        // The fork point of the answer must be where we asked from.
        let anchor: Option<Link> = match (reorg_from, pending_reorg.last()) {
            (Some(_), Some(last)) => Some(Link::from(&last.header)),
            _ => {
                let fp = response.fork_point.clone();
                inner.db(move |s| fork_anchor(s, fp.as_ref())).await?
            }
        };
        if let Some(fp) = &response.fork_point {
            let expected = anchor.map(|a| hex::encode(a.id)).unwrap_or_default();
            if !fp.hash.eq_ignore_ascii_case(&expected) {
                return Err(SyncError::ChainUnstable);
            }
        }
        if reorg_from.is_none()
            && let (Some(a), Some(t)) = (anchor, &tip)
            && a.height < t.height
        {
            // A roll-back the headers did not prove: start over.
            return Err(SyncError::ChainUnstable);
        }
        // Verify the whole batch before storing any of it.
        let mut blocks = Vec::with_capacity(response.blocks.len());
        let mut prev = anchor;
        for entry in &response.blocks {
            let bytes =
                hex::decode(&entry.hex).map_err(|e| bad(format!("a block is not hex: {e}")))?;
            let block =
                Block::decode(&bytes).map_err(|e| bad(format!("block {}: {e}", entry.height)))?;
            let id = block.id();
            if block.header.height != entry.height || !id.to_hex().eq_ignore_ascii_case(&entry.id) {
                return Err(bad(format!(
                    "block {} does not match its stated height or id",
                    entry.height
                )));
            }
            match plan.ids.get(&block.header.height) {
                Some(expected) if *expected == id.0 => {}
                Some(_) => {
                    // Either the chain moved since the headers (restart) or
                    // the block's header was altered: the signature decides.
                    verify_header(&block.header, &authority).map_err(|e| bad(e.to_string()))?;
                    return Err(SyncError::ChainUnstable);
                }
                // Past the plan (the chain grew): the next pass takes it.
                None => break,
            }
            let link = verify_next(prev.as_ref(), &block.header, &authority, network, &anchors)?;
            verify_block(&block).map_err(|e| bad(format!("block {}: {e}", entry.height)))?;
            prev = Some(link);
            blocks.push(block);
        }
        if blocks.is_empty() {
            if reorg_from.is_some() {
                return Err(bad(
                    "the gateway proved a longer chain but does not serve its blocks",
                ));
            }
            break;
        }
        let reached = blocks.last().map(|b| b.header.height).unwrap_or(0);
        let rollback = match reorg_from {
            Some(fork) => {
                pending_reorg.extend(blocks);
                if stored_height.is_some_and(|t| reached <= t) {
                    // Not past the old tip yet: gather more first.
                    if pending_reorg.len() > depth as usize + MAX_BATCH as usize {
                        return Err(bad("the reorg's blocks do not reach past the wallet's tip"));
                    }
                    batch = (batch * 2).min(MAX_BATCH);
                    continue;
                }
                blocks = std::mem::take(&mut pending_reorg);
                reorg_from = None;
                Some(fork)
            }
            None => None,
        };
        let applied = apply_blocks(inner, ledger, blocks, rollback, pass).await?;
        done += applied;
        batch = (batch * 2).min(MAX_BATCH);
        inner.events.emit(WalletEvent::SyncProgress {
            done: done.min(total),
            total,
            height: reached,
            target,
        });
        if !response.more || reached >= target {
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
    /// Notifications are quiet (a catch-up).
    pub quiet: bool,
    pub quiet_count: u64,
    pub payments: u64,
    /// Addresses derived while applying.
    pub grown: Vec<[u8; 32]>,
    /// First height per owner prefix (blocks only).
    pub owners: Option<HashMap<[u8; 8], u64>>,
}

impl ApplyCtx {
    pub(crate) fn new(inner: &Inner, ledger: &Ledger) -> Self {
        Self {
            keys: inner.keys.clone(),
            network: inner.network,
            gap: inner.config.gap_limit,
            ledger: ledger.clone(),
            addresses: HashMap::new(),
            events: Vec::new(),
            quiet: false,
            quiet_count: 0,
            payments: 0,
            grown: Vec::new(),
            owners: None,
        }
    }

    pub(crate) fn load_addresses(&mut self, store: &Store) -> Result<(), StoreError> {
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
        if self.quiet {
            self.quiet_count += 1;
        }
        self.events.push(notification_event(&n, self.quiet));
        Ok(())
    }

    fn changed(&mut self, tx: &StoreTx<'_>, c: Changed, reason: &str) -> Result<(), StoreError> {
        let confirmations = c.to.is_in_block().then_some(1);
        self.events.push(WalletEvent::state_changed(
            &c.txid,
            Some(c.from),
            c.to,
            confirmations,
        ));
        if matches!(c.to, TxState::Dropped | TxState::Rejected) {
            let own = tx.transaction(&c.txid)?.is_some_and(|r| r.own);
            let title = match (own, c.to) {
                (true, TxState::Rejected) => "The gateway says it refused a payment you sent",
                (true, _) => "A payment you sent was dropped",
                (false, _) => "An incoming payment vanished",
            };
            self.notify(
                tx,
                NewNotification {
                    kind: if c.to == TxState::Rejected {
                        NotificationKind::TxRejected
                    } else {
                        NotificationKind::TxDropped
                    },
                    title: title.into(),
                    body: format!("Transaction {}: {reason}.", hex::encode(c.txid)),
                    txid: Some(c.txid),
                },
            )?;
        }
        Ok(())
    }
}

/// Applies a batch of verified blocks in one store transaction (so a block
/// is never half applied, and a crash leaves the wallet at the previous
/// batch); the transaction first rolls back to `rollback` if set (proven by
/// the caller). Events are sent after the commit.
async fn apply_blocks(
    inner: &Inner,
    ledger: &Ledger,
    blocks: Vec<Block>,
    rollback: Option<u64>,
    pass: &mut PassState,
) -> Result<u64, SyncError> {
    let mut ctx = ApplyCtx::new(inner, ledger);
    ctx.quiet = pass.catch_up;
    ctx.owners = Some(std::mem::take(&mut pass.owners));
    let depth = ledger.info.params.finality_depth;
    let (ctx, applied, rolled_back, mut events) = inner
        .db(move |store| {
            ctx.load_addresses(store)?;
            let old_tip = store.tip()?.map(|t| t.height).unwrap_or(0);
            let mut rolled_back = 0u64;
            let mut events = Vec::new();
            store
                .write(|tx| {
                    if let Some(fork) = rollback {
                        // Checked again against what is stored (defence in depth).
                        if old_tip > fork && old_tip - fork >= depth.max(1) {
                            return Err(StoreError::Conflict(format!(
                                "a roll-back to {fork} from {old_tip} would undo final blocks"
                            )));
                        }
                        for c in lifecycle::roll_back(tx, fork)? {
                            events.push(WalletEvent::state_changed(
                                &c.txid,
                                Some(c.from),
                                c.to,
                                None,
                            ));
                        }
                        rolled_back = old_tip.saturating_sub(fork);
                        events.push(WalletEvent::Reorg {
                            fork_height: fork,
                            old_tip,
                            new_tip: blocks.last().map(|b| b.header.height).unwrap_or(fork),
                        });
                        let n = tx.add_notification(&NewNotification {
                            kind: NotificationKind::Reorg,
                            title: "The ledger replaced recent blocks".into(),
                            body: format!(
                                "Blocks above {fork} were replaced by a longer signed chain; \
                             payments in them are checked again."
                            ),
                            txid: None,
                        })?;
                        events.push(notification_event(&n, false));
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
                        apply_block_txs(
                            tx,
                            &mut ctx,
                            &block.txs,
                            Some((header.height, header.hash)),
                        )?;
                        finalize(tx, &mut ctx, header.height, depth)?;
                    }
                    Ok(())
                })
                .map_err(|e| match e {
                    StoreError::Conflict(what) if what.starts_with("a spend of") => bad(what),
                    other => SyncError::Store(other),
                })?;
            Ok::<_, SyncError>((ctx, blocks.len() as u64, rolled_back, events))
        })
        .await?;
    let mut ctx = ctx;
    events.append(&mut ctx.events);
    inner.events.emit_all(events);
    pass.owners = ctx.owners.take().unwrap_or_default();
    pass.grown.extend(ctx.grown);
    pass.quiet_notifications += ctx.quiet_count;
    pass.payments_received += ctx.payments;
    pass.report.blocks += applied;
    pass.report.rolled_back += rolled_back;
    Ok(applied)
}

fn finalize(
    tx: &StoreTx<'_>,
    ctx: &mut ApplyCtx,
    height: u64,
    depth: u64,
) -> Result<(), StoreError> {
    for c in lifecycle::finalize(tx, height, depth)? {
        ctx.events.push(WalletEvent::state_changed(
            &c.txid,
            Some(c.from),
            c.to,
            Some(depth),
        ));
        // A send is done only when final: say so once.
        let own = tx.transaction(&c.txid)?.is_some_and(|r| r.own);
        if own && !tx.has_notification(NotificationKind::TxFinal, &c.txid)? {
            ctx.notify(
                tx,
                NewNotification {
                    kind: NotificationKind::TxFinal,
                    title: "Your payment is final".into(),
                    body: format!(
                        "Transaction {} is {depth} blocks deep and can no longer be undone.",
                        hex::encode(c.txid)
                    ),
                    txid: Some(c.txid),
                },
            )?;
        }
    }
    Ok(())
}

/// The blocks already passed in this pass that paid addresses the
/// look-ahead added late are fetched again and applied (idempotently), in
/// order, up to the tip, so payments to them and their later spends are
/// found.
async fn rescan(inner: &Inner, ledger: &Ledger, pass: &mut PassState) -> Result<(), SyncError> {
    let anchors = anchors(inner);
    for _ in 0..MAX_RESCANS {
        if pass.grown.is_empty() {
            break;
        }
        let grown = std::mem::take(&mut pass.grown);
        // A restore interrupted in an earlier pass has no index of the
        // blocks before this pass: scan those again from the genesis.
        let restoring = inner
            .db(|s| Ok::<_, SyncError>(s.setting(RESTORING_SETTING)?.is_some()))
            .await?;
        let from_index = grown
            .iter()
            .filter_map(|k| {
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&k[..8]);
                pass.owners.get(&prefix).copied()
            })
            .min();
        let from = match (restoring && pass.start > 0, from_index) {
            (true, _) => Some(0),
            (false, f) => f,
        };
        let Some(from) = from else { break };
        let tip = inner
            .db(|s| Ok::<_, SyncError>(s.tip()?.map(|h| h.height)))
            .await?
            .unwrap_or(0);
        tracing::info!(from, tip, "rescanning blocks for addresses found late");
        let mut next = from;
        let mut batch = MAX_BATCH;
        let mut rounds = 0usize;
        while next <= tip {
            rounds += 1;
            if rounds > (tip - from) as usize + 2 * MAX_FAILED_BATCHES + 2 {
                return Err(SyncError::ChainUnstable);
            }
            let locator = if next == 0 {
                Vec::new()
            } else {
                let h = inner
                    .db(move |s| Ok::<_, SyncError>(s.header(next - 1)?))
                    .await?
                    .ok_or_else(|| StoreError::NotFound {
                        what: format!("header {}", next - 1),
                    })?;
                vec![hex::encode(h.hash)]
            };
            let response = match inner
                .gateway
                .blocks(&BlocksRequest {
                    locator,
                    limit: Some(batch),
                })
                .await
            {
                Ok(r) => r,
                Err(e) if e.is_transient() || matches!(e, GatewayError::BadResponse(_)) => {
                    batch = (batch / 2).max(1);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if response.blocks.len() > batch as usize {
                return Err(bad("the gateway sent more blocks than asked for"));
            }
            let mut blocks = Vec::new();
            for entry in &response.blocks {
                if entry.height > tip {
                    break;
                }
                let bytes =
                    hex::decode(&entry.hex).map_err(|e| bad(format!("a block is not hex: {e}")))?;
                let block = Block::decode(&bytes)
                    .map_err(|e| bad(format!("block {}: {e}", entry.height)))?;
                let height = block.header.height;
                let stored = inner
                    .db(move |s| Ok::<_, SyncError>(s.header(height)?))
                    .await?;
                // The stored header was verified; the block must be it.
                if stored.map(|h| h.hash) != Some(block.id().0) {
                    return Err(SyncError::ChainUnstable);
                }
                anchors.check(&block.header)?;
                verify_block(&block).map_err(|e| bad(format!("block {height}: {e}")))?;
                blocks.push(block);
            }
            let Some(last) = blocks.last().map(|b| b.header.height) else {
                return Err(SyncError::ChainUnstable);
            };
            if blocks.first().map(|b| b.header.height) != Some(next) {
                return Err(SyncError::ChainUnstable);
            }
            let mut ctx = ApplyCtx::new(inner, ledger);
            ctx.quiet = true;
            ctx.owners = Some(std::mem::take(&mut pass.owners));
            let count = blocks.len() as u64;
            let mut ctx = inner
                .db(move |store| {
                    ctx.load_addresses(store)?;
                    store
                        .write(|tx| {
                            for block in &blocks {
                                let at = Some((block.header.height, block.id().0));
                                apply_block_txs(tx, &mut ctx, &block.txs, at)?;
                            }
                            Ok(())
                        })
                        .map_err(|e| match e {
                            StoreError::Conflict(what) if what.starts_with("a spend of") => {
                                bad(what)
                            }
                            other => SyncError::Store(other),
                        })?;
                    Ok::<_, SyncError>(ctx)
                })
                .await?;
            inner.events.emit_all(std::mem::take(&mut ctx.events));
            pass.owners = ctx.owners.take().unwrap_or_default();
            pass.grown.extend(ctx.grown);
            pass.quiet_notifications += ctx.quiet_count;
            pass.payments_received += ctx.payments;
            pass.catch_up = true;
            pass.report.rescanned += count;
            next = last + 1;
            batch = (batch * 2).min(MAX_BATCH);
        }
    }
    // The pass reached the tip with every address found: a restore is done.
    inner
        .db(|s| {
            if s.setting(RESTORING_SETTING)?.is_some() {
                s.write(|tx| tx.delete_setting(RESTORING_SETTING))?;
            }
            Ok::<_, SyncError>(())
        })
        .await?;
    Ok(())
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
    if let (Some(owners), Some((height, _))) = (ctx.owners.as_mut(), block) {
        for t in txs {
            for o in &t.outputs {
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&o.owner.0[..8]);
                owners.entry(prefix).or_insert(height);
            }
        }
    }
    for _ in 0..64 {
        let before = ctx.addresses.len();
        for t in txs {
            apply_tx(tx, ctx, t, block)?;
        }
        if ctx.addresses.len() == before {
            return Ok(());
        }
    }
    Ok(())
}

/// The wallet's coins that `t` spends, after checking each such input's
/// signature by the coin's owner key (a key of this wallet). `Err` names
/// the first input whose signature is not the wallet's.
fn own_inputs(
    tx: &StoreTx<'_>,
    ctx: &ApplyCtx,
    t: &Transaction,
) -> Result<Result<Vec<OutPoint>, String>, StoreError> {
    let txid = t.txid();
    let mut ours = Vec::new();
    for (index, input) in t.inputs.iter().enumerate() {
        let op = OutPoint {
            txid: input.txid.0,
            vout: input.index,
        };
        let Some(coin) = tx.output(&op)? else {
            continue;
        };
        let owner = tx
            .find_address(&coin.address)?
            .map(|a| notch_protocol::PublicKey(a.public_key));
        let signed = match (owner, t.signatures.get(index)) {
            (Some(owner), Some(sig)) => {
                notch_protocol::tx::verify_id_signature(&owner, &txid.0, sig)
            }
            _ => false,
        };
        if !signed {
            return Ok(Err(format!(
                "a spend of the wallet's coin {}:{} in transaction {} is not signed by the wallet's key",
                hex::encode(op.txid),
                op.vout,
                txid.to_hex()
            )));
        }
        ours.push(op);
    }
    let _ = ctx;
    Ok(Ok(ours))
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
    let ours_in = match own_inputs(tx, ctx, t)? {
        Ok(ours) => ours,
        Err(what) if block.is_some() => {
            // An authority-signed block holding a spend the wallet never
            // signed: the whole batch is refused (the caller maps this).
            return Err(StoreError::Conflict(what));
        }
        Err(what) => {
            tracing::warn!("ignoring a pool transaction: {what}");
            return Ok(());
        }
    };
    let existing = tx.transaction(&txid)?;
    if ours_out.is_empty() && ours_in.is_empty() && existing.is_none() {
        return Ok(());
    }
    let in_block = block.is_some();
    let event = if in_block {
        TxEvent::InVerifiedBlock
    } else {
        TxEvent::SeenInPool
    };
    // Spends of the wallet's coins that conflict with another transaction
    // the wallet knows: in the pool, wait for the block; in a verified
    // block, the other can never confirm.
    for op in &ours_in {
        let Some(coin) = tx.output(op)? else { continue };
        for other in [coin.spent_by, coin.locked_by].into_iter().flatten() {
            if other == txid {
                continue;
            }
            if !in_block {
                return Ok(());
            }
            let reason = format!(
                "a conflicting transaction {} spent the same coins in a verified block",
                hex::encode(txid)
            );
            for c in
                lifecycle::apply_with_descendants(tx, &other, TxEvent::ConflictConfirmed, &reason)?
            {
                ctx.changed(tx, c, &reason)?;
            }
        }
    }
    match &existing {
        None => {
            let state = if in_block {
                TxState::Confirmed
            } else {
                TxState::InPool
            };
            tx.insert_transaction(&NewTransaction {
                txid,
                state,
                own: !ours_in.is_empty(),
                raw: Some(t.encode()),
                block,
            })?;
            ctx.events.push(WalletEvent::state_changed(
                &txid,
                None,
                state,
                block.map(|_| 1),
            ));
        }
        Some(_) => {
            if let Some(c) = lifecycle::apply(tx, &txid, event, block, None)? {
                ctx.changed(tx, c, "")?;
            }
        }
    }
    for op in &ours_in {
        let Some(coin) = tx.output(op)? else { continue };
        if coin.spent_by.is_none_or(|s| s == txid) {
            tx.mark_spent(op, &txid)?;
        }
    }
    // Payments to the wallet's addresses.
    let mut received: Vec<(Hash32, u128)> = Vec::new();
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
            Some(e) => e.1 += u128::from(output.amount),
            None => received.push((output.asset.0, u128::from(output.amount))),
        }
    }
    if used_any {
        for new in ensure_lookahead(tx, &ctx.keys, ctx.network, ctx.gap)? {
            ctx.grown.push(new.public_key);
            ctx.addresses
                .insert(new.public_key, (new.address.clone(), new.chain));
        }
    }
    // Notifications: a payment in (first sighting), an own send confirmed.
    let incoming = ours_in.is_empty() && !received.is_empty() && to_receive_chain;
    if incoming && !tx.has_notification(NotificationKind::PaymentReceived, &txid)? {
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
        ctx.payments += 1;
        ctx.notify(
            tx,
            NewNotification {
                kind: NotificationKind::PaymentReceived,
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
    if own && in_block && !tx.has_notification(NotificationKind::TxConfirmed, &txid)? {
        ctx.notify(
            tx,
            NewNotification {
                kind: NotificationKind::TxConfirmed,
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
    // txid -> (arrival order, hex); removed ones are gone. Linear.
    let mut pool: HashMap<String, (u64, String)> = HashMap::new();
    let mut order = 0u64;
    for _ in 0..1000 {
        let delta = inner.gateway.mempool(seq, 1000).await?;
        if delta.changes.len() > 1000 {
            return Err(bad("the gateway sent a mempool delta over its limit"));
        }
        if delta.reset {
            pool.clear();
        }
        for change in delta.changes {
            match change.kind {
                notch_protocol::api::MempoolChangeKind::Added => {
                    if let Some(hex) = change.hex {
                        if pool.len() >= MAX_POOL && !pool.contains_key(&change.txid) {
                            continue;
                        }
                        order += 1;
                        pool.insert(change.txid, (order, hex));
                    }
                }
                notch_protocol::api::MempoolChangeKind::Removed => {
                    pool.remove(&change.txid);
                }
            }
        }
        if delta.seq < seq {
            return Err(bad("the gateway's mempool sequence went backwards"));
        }
        seq = delta.seq;
        if !delta.more {
            break;
        }
    }
    let network = inner.network;
    let mut entries: Vec<(u64, String, String)> =
        pool.into_iter().map(|(t, (o, h))| (o, t, h)).collect();
    entries.sort_unstable_by_key(|e| e.0);
    let mut txs = Vec::new();
    for (_, txid, hex) in &entries {
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
            store.write(|tx| {
                apply_block_txs(tx, &mut ctx, &txs, None)?;
                tx.set_setting(MEMPOOL_SEQ_SETTING, &seq.to_string())
            })?;
            let count = ctx
                .events
                .iter()
                .filter(|e| matches!(e, WalletEvent::TxStateChanged { .. }))
                .count();
            Ok::<_, SyncError>((ctx.events, count as u64))
        })
        .await?;
    inner.events.emit_all(events);
    Ok(count)
}

/// Submits queued sends and asks the gateway about the wallet's other
/// unresolved transactions, including own sends it called rejected or
/// dropped whose coins are still reserved (they may yet confirm).
pub(crate) async fn resolve_pending(inner: &Inner, ledger: &Ledger) -> Result<(), SyncError> {
    let pending = inner
        .db(|s| {
            let mut list =
                s.transactions_in(&[TxState::Queued, TxState::Accepted, TxState::InPool])?;
            for t in s.transactions_in(&[TxState::Rejected, TxState::Dropped])? {
                if t.own && !s.outputs_used_by(&t.txid)?.is_empty() {
                    list.push(t);
                }
            }
            Ok::<_, SyncError>(list)
        })
        .await?;
    for record in pending.into_iter().take(1000) {
        let txid_hex = hex::encode(record.txid);
        let submit = |raw: Vec<u8>| async move {
            match inner.gateway.submit(&raw).await {
                Ok(r) => Ok(r.status),
                Err(GatewayError::Refused(e)) => Ok(TxStatus::Rejected {
                    code: e.code,
                    message: e.message,
                }),
                Err(e) => Err(SyncError::from(e)),
            }
        };
        let status = if record.state == TxState::Queued && record.own {
            let Some(raw) = record.raw.clone() else {
                continue;
            };
            submit(raw).await?
        } else {
            match inner.gateway.tx_status(&txid_hex).await {
                Ok(r) => r.status,
                Err(GatewayError::Refused(e)) if e.code == "not_found" => {
                    match (&record.raw, record.own) {
                        // The gateway forgot it: hand it over again.
                        (Some(raw), true) => submit(raw.clone()).await?,
                        _ => TxStatus::Dropped {
                            reason: "the gateway no longer knows this transaction".into(),
                        },
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        apply_status(inner, ledger, record.txid, status).await?;
    }
    Ok(())
}

/// Records what the gateway says about one of the wallet's transactions:
/// a claim, so it moves the transaction only among unconfirmed states and
/// never releases its coins (see [`crate::lifecycle`]); confirmations come
/// from verified blocks only.
pub(crate) async fn apply_status(
    inner: &Inner,
    _ledger: &Ledger,
    txid: Hash32,
    status: TxStatus,
) -> Result<(), SyncError> {
    let (event, reason) = match &status {
        TxStatus::Queued => return Ok(()),
        TxStatus::Accepted => (TxEvent::GatewayAccepted, String::new()),
        // In a block, says the gateway: the verified block will tell.
        TxStatus::InPool | TxStatus::Confirmed { .. } | TxStatus::Final { .. } => {
            (TxEvent::SeenInPool, String::new())
        }
        TxStatus::Rejected { code, message } => (
            TxEvent::GatewayRejected,
            format!(
                "the gateway says it refused it ({}: {}); its coins stay reserved until it confirms or you abandon it",
                bounded(code, 64),
                bounded(message, 300)
            ),
        ),
        TxStatus::Dropped { reason } => (
            TxEvent::GatewayDropped,
            format!(
                "the gateway says it dropped it ({}); its coins stay reserved until it confirms or you abandon it",
                bounded(reason, 300)
            ),
        ),
    };
    let mut ctx = ApplyCtx::new(inner, _ledger);
    let events = inner
        .db(move |store| {
            store.write(|tx| {
                let Some(record) = tx.transaction(&txid)? else {
                    return Ok(());
                };
                if record.state.is_in_block() {
                    return Ok(());
                }
                let changes = match event {
                    TxEvent::GatewayDropped => {
                        lifecycle::apply_with_descendants(tx, &txid, event, &reason)?
                    }
                    _ => lifecycle::apply(tx, &txid, event, None, Some(&reason))?
                        .into_iter()
                        .collect(),
                };
                for c in changes {
                    ctx.changed(tx, c, &reason)?;
                }
                if matches!(event, TxEvent::GatewayAccepted | TxEvent::SeenInPool) {
                    // Accepted by the gateway: its coins are spent now.
                    for coin in tx.outputs_used_by(&txid)? {
                        if coin.spent_by.is_none_or(|s| s == txid) {
                            tx.mark_spent(&coin.outpoint, &txid)?;
                        }
                    }
                }
                Ok(())
            })?;
            Ok::<_, SyncError>(ctx.events)
        })
        .await?;
    inner.events.emit_all(events);
    Ok(())
}

/// Text from the gateway shown to the person: bounded, one line, printable.
fn bounded(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        format!("{clean}…")
    } else {
        clean
    }
}

/// [`Wallet::watch`]: syncs on every pushed tip and on a poll; every
/// failure is retried with a growing wait (reported once through events and
/// the inbox), so the shells need no restart loop of their own.
pub(crate) async fn watch(inner: &Inner, poll: Duration) {
    let mut backoff = Duration::from_secs(1);
    let mut stream: Option<crate::gateway::GatewayStream> = None;
    let mut store_trouble = false;
    loop {
        match sync(inner).await {
            Ok(_) => {
                backoff = Duration::from_secs(1);
                store_trouble = false;
            }
            Err(e) if e.is_transient() => {
                stream = None;
                tracing::info!("gateway unreachable ({e}); retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
            Err(e) if e.is_untrusted() => {
                // Reported by sync; keep watching, slowly.
                tracing::warn!("refused what the gateway served: {e}");
                tokio::time::sleep(backoff.max(poll)).await;
                backoff = (backoff * 2).min(Duration::from_secs(300));
                continue;
            }
            Err(e) => {
                // The store or something unexpected: say so once, retry.
                tracing::warn!("sync failed: {e}; retrying in {backoff:?}");
                if !store_trouble {
                    store_trouble = true;
                    let body = format!("{e}. Notch keeps trying.");
                    let n = inner
                        .db(move |s| {
                            s.write(|tx| {
                                tx.add_notification(&NewNotification {
                                    kind: NotificationKind::StoreTrouble,
                                    title: "Sync could not save what it found".into(),
                                    body,
                                    txid: None,
                                })
                            })
                        })
                        .await;
                    if let Ok(n) = n {
                        inner.events.emit(notification_event(&n, false));
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(300));
                continue;
            }
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
                        .await;
                    let mut ok = addresses.is_ok();
                    for chunk in addresses.unwrap_or_default().chunks(500).take(2) {
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
    use super::*;

    #[test]
    fn gateway_text_is_bounded_and_plain() {
        assert_eq!(bounded("fine", 10), "fine");
        assert_eq!(bounded("a\nb\u{7}c", 10), "a b c");
        let long = "x".repeat(1000);
        assert_eq!(bounded(&long, 300).chars().count(), 301);
    }
}
