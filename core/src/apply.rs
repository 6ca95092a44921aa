//! The one place where what sync proved is written to the store.
//!
//! Sync fetches and verifies (pure: [`crate::chain`], `sync::verify_batch`)
//! and hands over a [`ChangeSet`]: verified blocks (with a proven roll-back
//! point), blocks to apply again for addresses found late, pool
//! transactions, or what the gateway says about one transaction. [`apply`]
//! writes one change set in ONE store transaction, moving transactions only
//! through [`crate::lifecycle`], and returns the events to send after the
//! commit. Nothing else in the wallet writes sync's results.

use std::collections::HashMap;

use notch_protocol::{Block, Network, Transaction};

use crate::chain::bad;
use crate::context::{
    LEDGER_INFO_SETTING, Ledger, MEMPOOL_SEQ_SETTING, PINNED_SETTING, RESTORING_SETTING,
    ensure_lookahead,
};
use crate::events::{AssetAmount, WalletEvent};
use crate::keys::{AddressChain, WalletKeys};
use crate::lifecycle::{self, Changed, TxEvent};
use crate::store::{
    Hash32, Header, NewNotification, NewOutput, NewTransaction, NotificationKind, OutPoint, Store,
    StoreError, StoreTx, TxState,
};
use crate::sync::{SyncError, notification_event};

/// How the refusal of a block holding an invalid transaction of the
/// wallet begins.
const WALLET_TX_INVALID: &str = "a transaction of the wallet";

/// What a sync step proved, ready to be written.
#[derive(Debug)]
pub(crate) enum ChangeSet {
    /// Verified blocks that continue the stored chain after rolling back to
    /// `rollback` (proven by a longer signed chain, above finality).
    Blocks {
        rollback: Option<u64>,
        blocks: Vec<Block>,
        finality_depth: u64,
        /// First contact's pin, written with the first verified blocks.
        pin: Option<Pin>,
    },
    /// Verified blocks already on the stored chain, applied again (a rescan
    /// for addresses the look-ahead found late); `tip` is the stored tip.
    Rescan {
        blocks: Vec<Block>,
        tip: u64,
        finality_depth: u64,
    },
    /// Transactions of the gateway's pool (stateless checks passed) and the
    /// position of the mempool delta they came with.
    Pool { txs: Vec<Transaction>, seq: u64 },
    /// What the gateway says about one of the wallet's transactions (a claim).
    Status {
        txid: Hash32,
        event: TxEvent,
        reason: String,
    },
    /// The ledger's identity and metadata to pin (first contact after the
    /// chain checked out, or a new asset joining the pin).
    Pin(Pin),
    /// A notification about the pass itself (unreachable, refused data).
    Notify(NewNotification),
    /// A restore scanned to the tip with every address found.
    RestoreDone,
}

/// What [`ChangeSet::Pin`] writes.
#[derive(Debug, Clone)]
pub(crate) struct Pin {
    /// The settings key of the network's authority key.
    pub key: String,
    pub authority_key: String,
    pub pinned_json: String,
    pub ledger_json: String,
}

/// What applying a change set did.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Events to send after the commit, in order.
    pub events: Vec<WalletEvent>,
    pub blocks: u64,
    pub rolled_back: u64,
}

/// Writes one change set in one store transaction. Verification failures
/// found only against the store (a spend of the wallet's coins it never
/// signed) fail the whole change set.
pub(crate) fn apply(
    store: &mut Store,
    ctx: &mut ApplyCtx,
    change: ChangeSet,
) -> Result<Applied, SyncError> {
    ctx.load_addresses(store)?;
    let old_tip = store.tip()?.map(|t| t.height).unwrap_or(0);
    let mut applied = Applied::default();
    store
        .write(|tx| {
            apply_change(tx, ctx, &change, old_tip, &mut applied)?;
            // The catch-up's payments in, summed up in the same transaction.
            ctx.write_summary(tx)
        })
        .map_err(|e| match e {
            StoreError::Conflict(what)
                if what.starts_with("a spend of") || what.starts_with(WALLET_TX_INVALID) =>
            {
                bad(what)
            }
            other => SyncError::Store(other),
        })?;
    applied.events.append(&mut ctx.events);
    Ok(applied)
}

fn apply_change(
    tx: &StoreTx<'_>,
    ctx: &mut ApplyCtx,
    change: &ChangeSet,
    old_tip: u64,
    applied: &mut Applied,
) -> Result<(), StoreError> {
    match change {
        ChangeSet::Blocks {
            rollback,
            blocks,
            finality_depth,
            pin,
        } => {
            if let Some(pin) = pin {
                write_pin(tx, pin)?;
            }
            if let Some(fork) = *rollback {
                roll_back(tx, fork, old_tip, blocks, *finality_depth, applied)?;
            }
            for block in blocks {
                let header = Header {
                    height: block.header.height,
                    hash: block.id().0,
                    prev_hash: block.header.prev.0,
                    time: block.header.time,
                    verified: true,
                };
                tx.append_header(&header)?;
                apply_block_txs(tx, ctx, &block.txs, Some((header.height, header.hash)))?;
                finalize(tx, ctx, header.height, *finality_depth)?;
            }
            applied.blocks = blocks.len() as u64;
            Ok(())
        }
        ChangeSet::Rescan {
            blocks,
            tip,
            finality_depth,
        } => {
            for block in blocks {
                let at = Some((block.header.height, block.id().0));
                apply_block_txs(tx, ctx, &block.txs, at)?;
            }
            finalize(tx, ctx, *tip, *finality_depth)
        }
        ChangeSet::Pool { txs, seq } => {
            apply_block_txs(tx, ctx, txs, None)?;
            tx.set_setting(MEMPOOL_SEQ_SETTING, &seq.to_string())
        }
        ChangeSet::Status {
            txid,
            event,
            reason,
        } => apply_status(tx, ctx, txid, *event, reason),
        ChangeSet::Pin(pin) => write_pin(tx, pin),
        ChangeSet::Notify(new) => {
            let n = tx.add_notification(new)?;
            ctx.events.push(notification_event(&n, false));
            Ok(())
        }
        ChangeSet::RestoreDone => tx.delete_setting(RESTORING_SETTING),
    }
}

fn write_pin(tx: &StoreTx<'_>, pin: &Pin) -> Result<(), StoreError> {
    tx.set_setting(&pin.key, &pin.authority_key)?;
    tx.set_setting(PINNED_SETTING, &pin.pinned_json)?;
    tx.set_setting(LEDGER_INFO_SETTING, &pin.ledger_json)
}

/// A proven reorg to `fork`: checked again against what is stored (defence
/// in depth), then every transaction above it goes back to the pool.
fn roll_back(
    tx: &StoreTx<'_>,
    fork: u64,
    old_tip: u64,
    blocks: &[Block],
    depth: u64,
    applied: &mut Applied,
) -> Result<(), StoreError> {
    if old_tip > fork && old_tip - fork >= depth.max(1) {
        return Err(StoreError::Conflict(format!(
            "a roll-back to {fork} from {old_tip} would undo final blocks"
        )));
    }
    for c in lifecycle::roll_back(tx, fork)? {
        applied.events.push(WalletEvent::state_changed(
            &c.txid,
            Some(c.from),
            c.to,
            None,
        ));
    }
    applied.rolled_back = old_tip.saturating_sub(fork);
    applied.events.push(WalletEvent::Reorg {
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
    applied.events.push(notification_event(&n, false));
    Ok(())
}

/// What the gateway says about one transaction: moves it only through the
/// lifecycle (a claim never confirms or releases coins).
fn apply_status(
    tx: &StoreTx<'_>,
    ctx: &mut ApplyCtx,
    txid: &Hash32,
    event: TxEvent,
    reason: &str,
) -> Result<(), StoreError> {
    let Some(record) = tx.transaction(txid)? else {
        return Ok(());
    };
    if record.state.is_in_block() {
        return Ok(());
    }
    let changes = match event {
        TxEvent::GatewayDropped => lifecycle::apply_with_descendants(tx, txid, event, reason)?,
        _ => lifecycle::apply(tx, txid, event, None, Some(reason))?
            .into_iter()
            .collect(),
    };
    for c in changes {
        ctx.changed(tx, c, reason)?;
    }
    if matches!(event, TxEvent::GatewayAccepted | TxEvent::SeenInPool) {
        // Accepted by the gateway: its coins are spent now.
        for coin in tx.outputs_used_by(txid)? {
            if coin.spent_by.is_none_or(|s| s == *txid) {
                tx.mark_spent(&coin.outpoint, txid)?;
            }
        }
    }
    Ok(())
}

/// The payments in found by a quiet (catch-up) pass, told as one inbox
/// entry per pass instead of one per payment: a restore of 100,000
/// payments leaves one notification, not 100,000. Each
/// [`WalletEvent::PaymentReceived`] is still sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct CatchUpPayments {
    /// The summary's notification, once written.
    pub id: Option<i64>,
    pub count: u64,
    /// The amounts received, per asset in first-seen order.
    pub totals: Vec<AssetAmount>,
    /// Added to since the summary was last written.
    changed: bool,
}

impl CatchUpPayments {
    fn add(&mut self, amounts: &[AssetAmount]) {
        self.count += 1;
        for a in amounts {
            match self.totals.iter_mut().find(|t| t.asset == a.asset) {
                Some(t) => t.amount = t.amount.saturating_add(a.amount),
                None => self.totals.push(a.clone()),
            }
        }
        self.changed = true;
    }

    /// Title and body, e.g. "You received 1,234 payments while away:
    /// 5.00 NOTE, 3.20 EURT".
    fn text(&self) -> (String, String) {
        let what = if self.count == 1 {
            "1 payment".to_owned()
        } else {
            format!("{} payments", grouped(self.count))
        };
        (
            format!(
                "You received {what} while away: {}",
                amounts_text(&self.totals)
            ),
            "Found while catching up with the ledger; the history lists each of them.".into(),
        )
    }
}

/// `n` with a comma between thousands (1,234,567).
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "1.00 NOTE, 2.50 EURT".
fn amounts_text(amounts: &[AssetAmount]) -> String {
    amounts
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                crate::amount::format_amount(a.amount, a.decimals),
                a.symbol
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything applying blocks needs, owned (it runs in a blocking task).
pub(crate) struct ApplyCtx {
    pub keys: WalletKeys,
    pub network: Network,
    pub gap: u32,
    /// The pinned ledger, for symbols and decimals (none for change sets
    /// about the pass itself).
    pub ledger: Option<Ledger>,
    /// Public key -> (address, chain).
    pub addresses: HashMap<[u8; 32], (String, AddressChain)>,
    pub events: Vec<WalletEvent>,
    /// Notifications are quiet (a catch-up).
    pub quiet: bool,
    pub quiet_count: u64,
    pub payments: u64,
    /// The payments in of a quiet pass so far, told in one inbox entry
    /// (carried from change set to change set by the pass).
    pub summary: CatchUpPayments,
    /// Addresses derived while applying.
    pub grown: Vec<[u8; 32]>,
    /// First height per owner prefix (blocks only).
    pub owners: Option<HashMap<[u8; 8], u64>>,
}

impl ApplyCtx {
    pub(crate) fn new(inner: &crate::context::Inner, ledger: &Ledger) -> Self {
        Self {
            ledger: Some(ledger.clone()),
            ..Self::bare(inner)
        }
    }

    /// For change sets that need no ledger (a pin, a notification).
    pub(crate) fn bare(inner: &crate::context::Inner) -> Self {
        Self {
            keys: inner.keys.clone(),
            network: inner.network,
            gap: inner.config.gap_limit,
            ledger: None,
            addresses: HashMap::new(),
            events: Vec::new(),
            quiet: false,
            quiet_count: 0,
            payments: 0,
            summary: CatchUpPayments::default(),
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

    /// Writes the catch-up's summary of payments in if this change set
    /// added to it: the first time as a new notification (no txid: it is
    /// about many), then the same one rewritten (and unread again).
    fn write_summary(&mut self, tx: &StoreTx<'_>) -> Result<(), StoreError> {
        if !std::mem::take(&mut self.summary.changed) {
            return Ok(());
        }
        let (title, body) = self.summary.text();
        let updated = match self.summary.id {
            Some(id) => tx.update_notification(id, &title, &body)?,
            None => None,
        };
        let n = match updated {
            Some(n) => n,
            None => {
                let n = tx.add_notification(&NewNotification {
                    kind: NotificationKind::PaymentReceived,
                    title,
                    body,
                    txid: None,
                })?;
                self.summary.id = Some(n.id);
                self.quiet_count += 1;
                n
            }
        };
        self.events.push(notification_event(&n, true));
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
                    body: if reason.is_empty() {
                        "No reason was given.".into()
                    } else {
                        format!("{reason}.")
                    },
                    txid: Some(c.txid),
                },
            )?;
        }
        Ok(())
    }
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
                    body: format!("It is {depth} blocks deep and can no longer be undone."),
                    txid: Some(c.txid),
                },
            )?;
        }
    }
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
    t: &Transaction,
    txid: &notch_protocol::TxId,
) -> Result<Result<Vec<OutPoint>, String>, StoreError> {
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
    Ok(Ok(ours))
}

fn apply_tx(
    tx: &StoreTx<'_>,
    ctx: &mut ApplyCtx,
    t: &Transaction,
    block: Option<(u64, Hash32)>,
) -> Result<(), StoreError> {
    let txid_typed = t.txid();
    let txid = txid_typed.0;
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
    let ours_in = match own_inputs(tx, t, &txid_typed)? {
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
    if ours_out.is_empty() && ours_in.is_empty() {
        // Not the wallet's: it pays none of its keys and spends none of its
        // coins. Nor can the store know it: every transaction recorded pays
        // or spends the wallet (own sends spend its coins), and addresses
        // and outputs are never removed. Its validity proves nothing to this
        // wallet, and is not checked (a light client, docs/PROTOCOL.md §5.4).
        return Ok(());
    }
    if let Some((height, _)) = block
        && let Err(e) = t.check_stateless(ctx.network)
    {
        // The wallet's transactions are checked in full (the spends of its
        // coins above, the rest here): an authority-signed block holding an
        // invalid one is refused as a whole (the caller maps this).
        return Err(StoreError::Conflict(format!(
            "{WALLET_TX_INVALID} {} in block {height} is not valid: {e}",
            hex::encode(txid)
        )));
    }
    let existing = tx.transaction(&txid)?;
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
                // Read for the history at the end of this write, then kept
                // only for an own send (store/facts.rs).
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
            // Its bytes are at hand again: the store reads its facts anew
            // and keeps them only if the wallet needs them (store/facts.rs).
            tx.offer_raw(&txid, &t.encode())?;
        }
    }
    for op in &ours_in {
        let Some(coin) = tx.output(op)? else { continue };
        if coin.spent_by.is_none_or(|s| s == txid) {
            tx.mark_spent(op, &txid)?;
        }
    }
    // Whether an earlier sighting already took it in as a payment to the
    // receive chain: told then, by its own notification or (in a catch-up)
    // by the summary, which names no transaction.
    let mut told_before = false;
    if existing.is_some() {
        for coin in tx.outputs_of(&txid)? {
            if tx
                .find_address(&coin.address)?
                .is_some_and(|a| a.chain == AddressChain::Receive)
            {
                told_before = true;
                break;
            }
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
    if incoming && !told_before && !tx.has_notification(NotificationKind::PaymentReceived, &txid)? {
        let amounts: Vec<AssetAmount> = received
            .iter()
            .map(|(asset, amount)| {
                let (symbol, decimals) = match &ctx.ledger {
                    Some(l) => l.symbol(asset),
                    None => (hex::encode(&asset[..4]), 0),
                };
                AssetAmount {
                    asset: hex::encode(asset),
                    symbol,
                    decimals,
                    amount: *amount,
                }
            })
            .collect();
        let text = amounts_text(&amounts);
        if ctx.quiet {
            ctx.summary.add(&amounts);
        }
        ctx.events.push(WalletEvent::PaymentReceived {
            txid: hex::encode(txid),
            amounts,
            confirmed: in_block,
        });
        ctx.payments += 1;
        // The transaction is the notification's txid, not part of its text.
        if !ctx.quiet {
            ctx.notify(
                tx,
                NewNotification {
                    kind: NotificationKind::PaymentReceived,
                    title: format!("You received {text}"),
                    body: match block {
                        Some((height, _)) => format!("Confirmed in block {height}."),
                        None => "Pending: not in a block yet.".into(),
                    },
                    txid: Some(txid),
                },
            )?;
        }
    }
    let own = !ours_in.is_empty() || existing.as_ref().is_some_and(|r| r.own);
    if own && in_block && !tx.has_notification(NotificationKind::TxConfirmed, &txid)? {
        ctx.notify(
            tx,
            NewNotification {
                kind: NotificationKind::TxConfirmed,
                title: "Your payment is confirmed".into(),
                body: format!("It is in block {}.", block.map(|b| b.0).unwrap_or(0)),
                txid: Some(txid),
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(asset: u8, symbol: &str, decimals: u8, amount: u128) -> AssetAmount {
        AssetAmount {
            asset: hex::encode([asset; 32]),
            symbol: symbol.into(),
            decimals,
            amount,
        }
    }

    #[test]
    fn a_catch_up_sums_its_payments_per_asset_in_first_seen_order() {
        let mut summary = CatchUpPayments::default();
        summary.add(&[amount(1, "NOTE", 2, 150)]);
        assert_eq!(
            summary.text().0,
            "You received 1 payment while away: 1.50 NOTE"
        );
        for _ in 0..1232 {
            summary.add(&[amount(2, "EURT", 2, 10)]);
        }
        summary.add(&[amount(1, "NOTE", 2, 350), amount(2, "EURT", 2, 1)]);
        assert_eq!(summary.count, 1234);
        assert_eq!(
            summary.text().0,
            "You received 1,234 payments while away: 5.00 NOTE, 123.21 EURT"
        );
        assert!(summary.changed);
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ] {
            assert_eq!(grouped(n), text);
        }
    }
}
