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
//! 3. Blocks, in the binary form (`NBLK`; JSON if the gateway answers
//!    that) in adaptive batches (10 doubling to 100, halved on error),
//!    checked as a light client: each must be the verified header's block
//!    (link, the authority's signature, batch-verified) and its merkle root
//!    must match its transactions ([`crate::chain::check_body`]); only the
//!    transactions that touch the wallet are checked in full (signatures
//!    included, in [`crate::apply`]). Fetching, verifying and storing are
//!    pipelined: a fetch loop feeds a bounded channel, batch N+1 is verified
//!    (over the machine's cores) while batch N is applied in ONE store
//!    transaction. A reorg is applied together with blocks reaching past
//!    the old tip, so the wallet never sits on a shorter chain than before.
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
use std::sync::Arc;
use std::time::Duration;

use notch_protocol::api::{BlocksRequest, HeadersRequest, LedgerInfo, StreamMessage, TxStatus};
use notch_protocol::block::HEADER_LEN;
use notch_protocol::wire::BlocksAnswer;
use notch_protocol::{Block, BlockHeader, Network, Transaction, locator_heights, verify_header};

use crate::apply::{self, ApplyCtx, ChangeSet, Pin};
use crate::chain::{
    Anchors, Link, bad, check_body, check_next, check_reorg, decode_headers, verify_headers,
    verify_signatures,
};
use crate::context::{
    Inner, LEDGER_INFO_SETTING, Ledger, MEMPOOL_SEQ_SETTING, PINNED_SETTING, RESTORING_SETTING,
    authority_setting, unix_now,
};
use crate::events::WalletEvent;
use crate::gateway::GatewayError;
use crate::keys::AddressChain;
use crate::lifecycle::TxEvent;
use crate::store::{Hash32, Header, NewNotification, NotificationKind, Store, StoreError, TxState};
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
/// The first block batch of a pass; it doubles up to [`MAX_BATCH`].
const FIRST_BATCH: u32 = 10;
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
    if let Err(e) = result
        && let Some((kind, title, what, after)) = refusal(e)
    {
        inner
            .events
            .emit(WalletEvent::VerificationFailed { what: what.clone() });
        notify(inner, note(kind, title, format!("{what}. {after}"))).await;
        return;
    }
    let new = match result {
        Ok(_) => {
            if let Some(since) = inner.set_unreachable_since(None) {
                inner.events.emit(WalletEvent::GatewayBack {
                    unreachable_for_secs: unix_now().saturating_sub(since),
                });
            }
            None
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
        notify(inner, new).await;
    }
}

/// How a refusal of what the gateway served is told: the notification's
/// kind and title, what was refused, and what the wallet did about it.
fn refusal(e: &SyncError) -> Option<(NotificationKind, &'static str, String, &'static str)> {
    match e {
        SyncError::ReorgTooDeep { .. } => Some((
            NotificationKind::ReorgRefused,
            "The gateway tried to undo final payments",
            e.to_string(),
            "Nothing was rolled back.",
        )),
        SyncError::LedgerChanged { what } => Some((
            NotificationKind::LedgerChanged,
            "The gateway changed the ledger's rules",
            what.clone(),
            "The wallet keeps the rules it first trusted.",
        )),
        SyncError::Verification { what } => Some((
            NotificationKind::VerificationFailed,
            "The gateway served data that failed verification",
            what.clone(),
            "Nothing of it was stored.",
        )),
        _ => None,
    }
}

/// Adds a notification about the pass itself ([`ChangeSet::Notify`]) and
/// sends its event; a failure to write it is only logged (the pass already
/// failed, and says why).
async fn notify(inner: &Inner, new: NewNotification) {
    let mut ctx = ApplyCtx::bare(inner);
    match inner
        .db(move |store| apply::apply(store, &mut ctx, ChangeSet::Notify(new)))
        .await
    {
        Ok(applied) => inner.events.emit_all(applied.events),
        Err(e) => tracing::warn!("cannot add a notification: {e}"),
    }
}

/// Writes a change set that needs no ledger context (pin, restore done).
async fn apply_plain(inner: &Inner, change: ChangeSet) -> Result<(), SyncError> {
    let mut ctx = ApplyCtx::bare(inner);
    let applied = inner
        .db(move |store| apply::apply(store, &mut ctx, change))
        .await?;
    inner.events.emit_all(applied.events);
    Ok(())
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
    /// First contact's pin, written with the first verified blocks.
    pin: Option<Pin>,
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
    /// The payments in of the quiet parts of the pass, told in one inbox
    /// entry ([`apply::CatchUpPayments`]).
    summary: apply::CatchUpPayments,
}

impl PassState {
    /// Takes in what applying a change set learned about the pass.
    fn absorb(&mut self, ctx: &mut ApplyCtx) {
        self.owners = ctx.owners.take().unwrap_or_default();
        self.grown.append(&mut ctx.grown);
        self.quiet_notifications += ctx.quiet_count;
        self.payments_received += ctx.payments;
        if ctx.quiet {
            self.summary = std::mem::take(&mut ctx.summary);
        }
    }
}

async fn sync_pass(inner: &Inner) -> Result<SyncReport, SyncError> {
    let (ledger, pending_pin) = check_info(inner).await?;
    let mut pass = PassState {
        pin: pending_pin,
        ..PassState::default()
    };
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
    if pass.pin.is_some() {
        // No block was applied, so nothing about this gateway was verified:
        // it pins nothing (the next pass tries again).
        return Err(bad(
            "the gateway served no chain to verify its identity against",
        ));
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

/// `/v1/info`: network check, authority and metadata pinning.
/// What first contact would pin is returned, to be written only after the
/// pass verified the chain (the genesis, and the network file's
/// checkpoint): a gateway that fails those checks pins nothing.
async fn check_info(inner: &Inner) -> Result<(Ledger, Option<Pin>), SyncError> {
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
            let pending = Pin {
                key: key.clone(),
                authority_key: served_key,
                pinned_json: json(&new)?,
                ledger_json: json(&new.as_info(&info_for_db))?,
            };
            // First contact: the pin waits for the first verified blocks.
            // A wallet that has a verified chain already (or a pin) writes
            // it now.
            let first_contact = stored.is_none() && store.tip()?.is_none();
            Ok((new, Some((pending, !first_contact))))
        })
        .await?;
    let ledger = Ledger::from_info(pinned.as_info(&info)).ok_or_else(|| {
        SyncError::Gateway(GatewayError::BadResponse(
            "the ledger info has no valid authority key or native asset".into(),
        ))
    })?;
    let pending = match pending {
        // A new asset joins an existing pin: nothing to wait for.
        Some((pin, true)) => {
            apply_plain(inner, ChangeSet::Pin(pin)).await?;
            None
        }
        Some((pin, false)) => Some(pin),
        None => None,
    };
    if pending.is_none() {
        inner.set_ledger(ledger.clone());
    }
    Ok((ledger, pending))
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
    let plan_ids = Arc::new(plan.ids);
    let mut progress = Progress {
        done: 0,
        total,
        target,
    };

    // 2a. A reorg's blocks are gathered until they pass the old tip and
    // applied with the roll-back at once (rare and short: one at a time).
    if let (Some(fork), Some(old_tip)) = (plan.fork, stored_height)
        && fork < old_tip
    {
        let reached = sync_reorg(
            inner,
            ledger,
            pass,
            &plan_ids,
            (fork, old_tip),
            &mut progress,
        )
        .await?;
        if reached >= target {
            return Ok(());
        }
    }

    // 2b. The blocks after the stored tip, pipelined: one task fetches
    // answers into a bounded channel while batch N+1 is verified (decode,
    // merkle roots, header links and signatures, on the machine's cores)
    // as batch N is applied in one store transaction.
    let max_rounds = plan_ids.len() * 2 + 2 * MAX_FAILED_BATCHES + 4;
    let (locator, tip) = inner.db(|s| Ok::<_, SyncError>(store_locator(s)?)).await?;
    if tip
        .as_ref()
        .is_some_and(|t| t.height >= target && plan_ids.get(&t.height) == Some(&t.hash))
    {
        return Ok(());
    }
    let stored_now = tip.as_ref().map(|t| t.height);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<BlocksAnswer>(PIPELINE_DEPTH);
    let fetch = async move {
        let mut locator = locator;
        let mut batch = FIRST_BATCH;
        let mut failures = 0;
        for _ in 0..max_rounds {
            let Some(answer) =
                fetch_blocks(inner, locator.clone(), &mut batch, &mut failures).await?
            else {
                continue;
            };
            let last = answer
                .blocks
                .last()
                .and_then(|b| BlockHeader::decode(b.get(..HEADER_LEN)?).ok());
            let more = answer.more;
            if sender.send(answer).await.is_err() {
                // The verifier stopped (it says why).
                break;
            }
            let Some(last) = last else { break };
            if !more || last.height >= target {
                break;
            }
            locator = vec![last.id().to_hex()];
            batch = (batch * 2).min(MAX_BATCH);
        }
        Ok::<(), SyncError>(())
    };
    let consume = async {
        let mut prev: Option<Link> = None;
        let mut first = true;
        let mut in_flight: Option<InFlight<'_>> = None;
        loop {
            let plan = plan_ids.clone();
            let receiver = &mut receiver;
            let verify = async move {
                let Some(answer) = receiver.recv().await else {
                    return Ok::<_, SyncError>(None);
                };
                // The fork point of the answer must be where we asked from.
                let anchor = if first {
                    let fp = answer
                        .fork_point
                        .map(|(height, id)| notch_protocol::api::BlockRef {
                            height,
                            hash: id.to_hex(),
                        });
                    let anchor = inner.db(move |s| fork_anchor(s, fp.as_ref())).await?;
                    if let (Some(a), Some(t)) = (anchor, stored_now)
                        && a.height < t
                    {
                        // A roll-back the headers did not prove: start over.
                        return Err(SyncError::ChainUnstable);
                    }
                    anchor
                } else {
                    if answer.fork_point.map(|(_, id)| id.0) != prev.map(|p| p.id) {
                        return Err(SyncError::ChainUnstable);
                    }
                    prev
                };
                let blocks = tokio::task::spawn_blocking(move || {
                    verify_answer(answer.blocks, anchor, &plan, &authority, network, &anchors)
                })
                .await
                .map_err(|e| StoreError::Corrupt(format!("a verification task failed: {e}")))??;
                Ok(Some(blocks))
            };
            let applying = async {
                match in_flight.take() {
                    Some(f) => f.await.map(Some),
                    None => Ok(None),
                }
            };
            let (verified, applied) = tokio::join!(verify, applying);
            if let Some(done) = applied? {
                finish_apply(inner, ledger, pass, done, &mut progress);
            }
            let blocks = match verified? {
                Some(blocks) if !blocks.is_empty() => blocks,
                _ => break,
            };
            prev = blocks.last().map(|b| Link::from(&b.header));
            first = false;
            in_flight = Some(start_apply(inner, ledger, pass, blocks, None));
        }
        Ok::<(), SyncError>(())
    };
    let (fetched, consumed) = tokio::join!(fetch, consume);
    consumed?;
    fetched
}

/// Answers fetched ahead of the one being verified.
const PIPELINE_DEPTH: usize = 2;

/// Where the block phase is, for [`WalletEvent::SyncProgress`].
struct Progress {
    done: u64,
    total: u64,
    target: u64,
}

/// A reorg's blocks, from the fork point until they pass the wallet's old
/// tip, applied with the roll-back in one store transaction; returns the
/// height reached.
async fn sync_reorg(
    inner: &Inner,
    ledger: &Ledger,
    pass: &mut PassState,
    plan: &BTreeMap<u64, Hash32>,
    (fork, old_tip): (u64, u64),
    progress: &mut Progress,
) -> Result<u64, SyncError> {
    let network = inner.network;
    let authority = ledger.authority;
    let depth = ledger.info.params.finality_depth;
    let anchors = anchors(inner);
    let mut batch: u32 = FIRST_BATCH;
    let mut failures = 0;
    let mut pending: Vec<Block> = Vec::new();
    let max_rounds = plan.len() * 2 + 2 * MAX_FAILED_BATCHES + 4;
    for _ in 0..max_rounds {
        let locator = match pending.last() {
            Some(last) => vec![last.id().to_hex()],
            None => {
                let h = inner
                    .db(move |s| Ok::<_, SyncError>(s.header(fork)?))
                    .await?
                    .ok_or_else(|| bad("the fork point left the wallet's chain"))?;
                vec![hex::encode(h.hash)]
            }
        };
        let Some(answer) = fetch_blocks(inner, locator, &mut batch, &mut failures).await? else {
            continue;
        };
        // The fork point of the answer must be where we asked from.
        let anchor: Option<Link> = match pending.last() {
            Some(last) => Some(Link::from(&last.header)),
            None => {
                let fp = answer
                    .fork_point
                    .map(|(height, id)| notch_protocol::api::BlockRef {
                        height,
                        hash: id.to_hex(),
                    });
                inner.db(move |s| fork_anchor(s, fp.as_ref())).await?
            }
        };
        if answer.fork_point.map(|(_, id)| id.0) != anchor.map(|a| a.id) {
            return Err(SyncError::ChainUnstable);
        }
        let blocks = verify_answer(answer.blocks, anchor, plan, &authority, network, &anchors)?;
        if blocks.is_empty() {
            return Err(bad(
                "the gateway proved a longer chain but does not serve its blocks",
            ));
        }
        let reached = blocks.last().map(|b| b.header.height).unwrap_or(0);
        pending.extend(blocks);
        if reached <= old_tip {
            // Not past the old tip yet: gather more first.
            if pending.len() > depth as usize + MAX_BATCH as usize {
                return Err(bad("the reorg's blocks do not reach past the wallet's tip"));
            }
            batch = (batch * 2).min(MAX_BATCH);
            continue;
        }
        let blocks = std::mem::take(&mut pending);
        let done = start_apply(inner, ledger, pass, blocks, Some(fork)).await?;
        finish_apply(inner, ledger, pass, done, progress);
        return Ok(reached);
    }
    Err(SyncError::ChainUnstable)
}

/// One `/v1/blocks` request after `locator`, at most `batch` blocks, in the
/// binary form (or JSON, if that is what the gateway answers). A failure
/// worth retrying (network trouble, a busy gateway, an answer too large to
/// read) halves the batch, waits a little and gives `None`, up to
/// [`MAX_FAILED_BATCHES`] in a row; an answer with more blocks than asked
/// for is refused.
async fn fetch_blocks(
    inner: &Inner,
    locator: Vec<String>,
    batch: &mut u32,
    failures: &mut usize,
) -> Result<Option<BlocksAnswer>, SyncError> {
    let request = BlocksRequest {
        locator,
        limit: Some(*batch),
    };
    match inner.gateway.blocks_answer(&request).await {
        Ok(r) => {
            *failures = 0;
            if r.blocks.len() > *batch as usize {
                return Err(bad(format!(
                    "the gateway sent {} blocks for a limit of {batch}",
                    r.blocks.len()
                )));
            }
            Ok(Some(r))
        }
        Err(e)
            if *failures < MAX_FAILED_BATCHES
                && (e.is_transient() || matches!(e, GatewayError::BadResponse(_))) =>
        {
            *failures += 1;
            *batch = (*batch / 2).max(1);
            tracing::info!(batch = *batch, "block batch failed ({e}); retrying smaller");
            tokio::time::sleep(Duration::from_millis(100 * *failures as u64)).await;
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// A decoded block and the verdict on its body.
type CheckedBlock = (Block, Result<(), SyncError>);

/// Decodes blocks and checks each one's body ([`check_body`]: count,
/// duplicates, merkle root), spread over the machine's cores; in order.
/// A block that does not decode is an error; the body's verdict is given
/// with the block (it matters only for a block the plan holds).
fn decode_and_check(raw: Vec<Vec<u8>>) -> Vec<Result<CheckedBlock, SyncError>> {
    let one = |bytes: &Vec<u8>| {
        let block = Block::decode(bytes).map_err(|e| bad(format!("a block: {e}")))?;
        let body = check_body(&block);
        Ok((block, body))
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(raw.len());
    if threads <= 1 {
        return raw.iter().map(one).collect();
    }
    let chunk = raw.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = raw
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(bad("a verification thread failed"))])
            })
            .collect()
    })
}

/// The pure step from what the gateway served to what the wallet may
/// apply (a light client's checks, docs/PROTOCOL.md §5.4 item 5): decodes
/// each block and checks it against the verified header plan, its link to
/// the one before (`anchor` first), the network file's anchors, its body
/// ([`check_body`]: the merkle root over its transactions) and, for the
/// whole answer at once, the authority's signatures on the headers. Stops
/// at the first block past the plan (the chain grew; the next pass takes
/// it). A block that differs from its planned header is either a chain that
/// moved (restart) or a forgery (the signature decides). The signatures of
/// transactions are not checked here: only those of the wallet's own
/// transactions prove anything to it, and `apply` checks them.
fn verify_answer(
    raw: Vec<Vec<u8>>,
    anchor: Option<Link>,
    plan: &BTreeMap<u64, Hash32>,
    authority: &notch_protocol::PublicKey,
    network: Network,
    anchors: &Anchors,
) -> Result<Vec<Block>, SyncError> {
    let mut blocks = Vec::with_capacity(raw.len());
    let mut prev = anchor;
    for decoded in decode_and_check(raw) {
        let (block, body) = decoded?;
        let id = block.id();
        match plan.get(&block.header.height) {
            Some(expected) if *expected == id.0 => {}
            Some(_) => {
                verify_header(&block.header, authority).map_err(|e| bad(e.to_string()))?;
                return Err(SyncError::ChainUnstable);
            }
            None => break,
        }
        prev = Some(check_next(prev.as_ref(), &block.header, network, anchors)?);
        body?;
        blocks.push(block);
    }
    verify_signatures(blocks.iter().map(|b| &b.header), authority)?;
    Ok(blocks)
}

/// A change set being applied, with what is needed to finish it.
type InFlight<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Done, SyncError>> + Send + 'a>>;

/// What applying a batch of blocks gave back.
struct Done {
    ctx: ApplyCtx,
    applied: apply::Applied,
    pinned_now: bool,
    reached: u64,
}

/// Starts applying a batch of verified blocks ([`ChangeSet::Blocks`]) in
/// one store transaction (a block is never half applied; a crash leaves
/// the wallet at the previous batch); [`finish_apply`] takes in the result
/// after the commit and sends the events.
fn start_apply<'a>(
    inner: &'a Inner,
    ledger: &Ledger,
    pass: &mut PassState,
    blocks: Vec<Block>,
    rollback: Option<u64>,
) -> InFlight<'a> {
    let mut ctx = ApplyCtx::new(inner, ledger);
    ctx.quiet = pass.catch_up;
    ctx.summary = pass.summary.clone();
    ctx.owners = Some(std::mem::take(&mut pass.owners));
    let pin = pass.pin.take();
    let pinned_now = pin.is_some();
    let reached = blocks.last().map(|b| b.header.height).unwrap_or(0);
    let change = ChangeSet::Blocks {
        rollback,
        blocks,
        finality_depth: ledger.info.params.finality_depth,
        pin,
    };
    Box::pin(async move {
        let (ctx, applied) = inner
            .db(move |store| {
                let applied = apply::apply(store, &mut ctx, change)?;
                Ok::<_, SyncError>((ctx, applied))
            })
            .await?;
        Ok(Done {
            ctx,
            applied,
            pinned_now,
            reached,
        })
    })
}

fn finish_apply(
    inner: &Inner,
    ledger: &Ledger,
    pass: &mut PassState,
    done: Done,
    progress: &mut Progress,
) {
    let Done {
        mut ctx,
        applied,
        pinned_now,
        reached,
    } = done;
    if pinned_now {
        inner.set_ledger(ledger.clone());
    }
    inner.events.emit_all(applied.events);
    pass.absorb(&mut ctx);
    pass.report.blocks += applied.blocks;
    pass.report.rolled_back += applied.rolled_back;
    progress.done += applied.blocks;
    inner.events.emit(WalletEvent::SyncProgress {
        done: progress.done.min(progress.total),
        total: progress.total,
        height: reached,
        target: progress.target,
    });
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
        let mut failures = 0;
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
            let Some(response) = fetch_blocks(inner, locator, &mut batch, &mut failures).await?
            else {
                continue;
            };
            let mut blocks = Vec::new();
            for decoded in decode_and_check(response.blocks) {
                let (block, body) = decoded?;
                if block.header.height > tip {
                    break;
                }
                let height = block.header.height;
                let stored = inner
                    .db(move |s| Ok::<_, SyncError>(s.header(height)?))
                    .await?;
                // The stored header was verified; the block must be it.
                if stored.map(|h| h.hash) != Some(block.id().0) {
                    return Err(SyncError::ChainUnstable);
                }
                anchors.check(&block.header)?;
                body?;
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
            ctx.summary = pass.summary.clone();
            ctx.owners = Some(std::mem::take(&mut pass.owners));
            let count = blocks.len() as u64;
            let change = ChangeSet::Rescan {
                blocks,
                tip,
                finality_depth: ledger.info.params.finality_depth,
            };
            let (mut ctx, applied) = inner
                .db(move |store| {
                    let applied = apply::apply(store, &mut ctx, change)?;
                    Ok::<_, SyncError>((ctx, applied))
                })
                .await?;
            inner.events.emit_all(applied.events);
            pass.absorb(&mut ctx);
            pass.catch_up = true;
            pass.report.rescanned += count;
            next = last + 1;
            batch = (batch * 2).min(MAX_BATCH);
        }
    }
    // The pass reached the tip with every address found: a restore is done.
    let restoring = inner
        .db(|s| Ok::<_, SyncError>(s.setting(RESTORING_SETTING)?.is_some()))
        .await?;
    if restoring {
        apply_plain(inner, ChangeSet::RestoreDone).await?;
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
    let applied = inner
        .db(move |store| apply::apply(store, &mut ctx, ChangeSet::Pool { txs, seq }))
        .await?;
    let count = applied
        .events
        .iter()
        .filter(|e| matches!(e, WalletEvent::TxStateChanged { .. }))
        .count() as u64;
    let events = applied.events;
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
    ledger: &Ledger,
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
    let mut ctx = ApplyCtx::new(inner, ledger);
    let change = ChangeSet::Status {
        txid,
        event,
        reason,
    };
    let events = inner
        .db(move |store| Ok::<_, SyncError>(apply::apply(store, &mut ctx, change)?.events))
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
                    notify(
                        inner,
                        NewNotification {
                            kind: NotificationKind::StoreTrouble,
                            title: "Sync could not save what it found".into(),
                            body: format!("{e}. Notch keeps trying."),
                            txid: None,
                        },
                    )
                    .await;
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
