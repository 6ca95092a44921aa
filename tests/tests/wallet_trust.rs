//! The trust model (shared/DESIGN.md, "Trust model") against a REAL sandbox
//! gateway, with a lying proxy in front of it where the attack needs one.
//! Each test mounts one attack and asserts that it is refused AND that
//! nothing changed: height, confirmed balances, history and transaction
//! states are compared before and after.
//!
//! - a roll-back is believed only with proof (a longer signed chain), and
//!   never deeper than the finality depth;
//! - the ledger's metadata (assets, fee rule, finality) is pinned at first
//!   contact, or given in a network file, and refused if it changes;
//! - amounts are exact beyond `i64`/`u64`;
//! - a restore finds every payment within the gap limit, in any block order;
//! - "rejected", "dropped", "not found" about a signed send do not release
//!   its coins; only the person (`abandon_send`) or a proof does;
//! - plain `http://` only to loopback unless allowed;
//! - a spend of the wallet's coins is believed only with its signatures.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use notch_core::gateway::GatewayError;
use notch_core::keys::WordCount;
use notch_core::protocol::ed25519_dalek::SigningKey;
use notch_core::protocol::{
    Address, AssetId, Block, BlockHeader, Network, OutPoint, Output, PublicKey, Signature,
    Transaction, TxId, verify_header, verify_header_link,
};
use notch_core::secrets::MemorySecretStore;
use notch_core::{
    Balance, HistoryEntry, NetworkFile, OpenError, Recipient, SendError, SyncError, TxState,
    Wallet, WalletConfig,
};
use notch_tests::gateway::Sandbox;
use notch_tests::wallet::{
    Fork, Gw, Tamper, TamperProxy, config, confirmed, gateway_view, new_wallet, restore_wallet,
};
use serde_json::json;
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// The API these tests hold the core to, in one place: the error variants,
// `abandon_send`, and the two new `WalletConfig` fields.

/// `(fork_height, tip, finality_depth)` of a refused deep reorg.
fn reorg_too_deep(e: &SyncError) -> Option<(u64, u64, u64)> {
    match e {
        SyncError::ReorgTooDeep {
            fork_height,
            tip,
            finality_depth,
        } => Some((*fork_height, *tip, *finality_depth)),
        _ => None,
    }
}

fn is_ledger_changed(e: &SyncError) -> bool {
    matches!(e, SyncError::LedgerChanged { .. })
}

fn is_insecure_url(e: &OpenError) -> bool {
    matches!(e, OpenError::Gateway(GatewayError::InsecureUrl { .. }))
}

fn allow_insecure_http(cfg: &mut WalletConfig) {
    cfg.allow_insecure_http = true;
}

fn set_network_file(cfg: &mut WalletConfig, json: &str) {
    cfg.network_file = Some(NetworkFile::from_json(json).unwrap());
}

async fn abandon(w: &Wallet, txid: &str) -> Result<Vec<String>, String> {
    w.abandon_send(txid).await.map_err(|e| e.to_string())
}

const ABANDONED: TxState = TxState::Abandoned;

// ---------------------------------------------------------------------------

const NOTE: u64 = 100_000_000; // 1 NOTE in base units (8 decimals)

struct Env {
    dir: TempDir,
    phrase: String,
    sandbox: Sandbox,
    gw: Gw,
    proxy: TamperProxy,
    wallet: Wallet,
}

/// A sandbox (with extra gateway arguments), a proxy in `mode` in front of
/// it, and a new wallet that talks to the proxy.
async fn env(mode: Tamper, args: &[&str]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = tokio::task::block_in_place(|| {
        Sandbox::start_with_args(dir.path().join("gw"), "127.0.0.1:0", args)
    });
    let gw = Gw::new(&sandbox.url);
    let proxy = TamperProxy::start(&gw.url, mode).await;
    let (wallet, phrase) = new_wallet(&dir.path().join("w"), &proxy.url).await;
    Env {
        dir,
        phrase,
        sandbox,
        gw,
        proxy,
        wallet,
    }
}

/// Everything an attack must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    height: Option<u64>,
    confirmed: HashMap<String, u128>,
    balances: Vec<Balance>,
    history: Vec<HistoryEntry>,
    states: Vec<(String, TxState, u64)>,
}

async fn snapshot(w: &Wallet) -> Snapshot {
    let history = w.history(Default::default()).await.unwrap();
    let mut states = Vec::new();
    for h in &history {
        let s = w.tx_status(&h.txid).await.unwrap();
        states.push((h.txid.clone(), s.state, s.confirmations));
    }
    Snapshot {
        height: w.sync_status().await.unwrap().height,
        confirmed: confirmed(w).await,
        balances: w.balances().await.unwrap(),
        history,
        states,
    }
}

fn assert_unchanged(before: &Snapshot, after: &Snapshot, what: &str) {
    assert_eq!(before.height, after.height, "{what}: the height changed");
    assert_eq!(
        before.confirmed, after.confirmed,
        "{what}: the confirmed balance changed"
    );
    assert_eq!(
        before.balances, after.balances,
        "{what}: the balances changed"
    );
    assert_eq!(
        before.states, after.states,
        "{what}: transaction states changed"
    );
    assert_eq!(before.history, after.history, "{what}: the history changed");
}

/// An address nobody in the test holds the key of (a fixed key).
fn foreign_address(seed: u8) -> String {
    let key = SigningKey::from_bytes(&[seed; 32]);
    Address::new(Network::Sandbox, PublicKey(key.verifying_key().to_bytes())).encode()
}

fn pay(address: &str, amount: &str, asset: &str) -> Vec<Recipient> {
    vec![Recipient {
        address: address.to_owned(),
        amount: amount.to_owned(),
        asset: Some(asset.to_owned()),
    }]
}

fn balance_of<'a>(balances: &'a [Balance], symbol: &str) -> &'a Balance {
    balances.iter().find(|b| b.symbol == symbol).unwrap()
}

async fn has_notification(w: &Wallet, kind: &str) -> bool {
    w.notifications(false)
        .await
        .unwrap()
        .iter()
        .any(|n| n.kind.to_string() == kind)
}

// ---------------------------------------------------------------------------
// 1. A roll-back is believed only with proof.

/// The wallet has 8 blocks with a final payment; the proxy then claims the
/// chain ends at `height` (a block the wallet has) with nothing after it.
async fn rollback_without_proof(height: u64) {
    let e = env(Tamper::RollbackTo(height), &[]).await;
    let w = &e.wallet;
    let address = w.receive_address().await.unwrap();
    let funding = e.gw.faucet(&address, "NOTE", 5 * NOTE).await;
    e.gw.mine(8).await;
    w.sync().await.unwrap();
    assert_eq!(e.gw.tip().await, 8);
    assert_eq!(w.tx_status(&funding).await.unwrap().state, TxState::Final);
    let before = snapshot(w).await;

    e.proxy.arm();
    for pass in 0..2 {
        let err = w.sync().await.unwrap_err();
        assert!(
            matches!(err, SyncError::Verification { .. }),
            "roll-back to {height} without proof, pass {pass}: {err}"
        );
        assert!(e.proxy.tampered.load(std::sync::atomic::Ordering::SeqCst) > 0);
        let after = snapshot(w).await;
        assert_unchanged(&before, &after, &format!("roll-back to {height}"));
        assert_eq!(w.tx_status(&funding).await.unwrap().state, TxState::Final);
    }

    // The honest chain is still followed.
    e.proxy.disarm();
    e.gw.mine(1).await;
    w.sync().await.unwrap();
    assert_eq!(w.sync_status().await.unwrap().height, Some(9));
    assert_eq!(confirmed(w).await, gateway_view(&e.gw, w).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_to_genesis_without_proof_is_refused() {
    rollback_without_proof(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shorter_chain_without_proof_is_refused() {
    // Fork point at tip - 2 and no headers after it.
    rollback_without_proof(6).await;
}

// ---------------------------------------------------------------------------
// 2. A signed reorg deeper than the finality depth is refused.

/// 3 empty blocks, a payment in block 4, 4 more blocks: tip 8, the payment
/// has 5 confirmations.
async fn fund_in_block_4(e: &Env) -> String {
    let address = e.wallet.receive_address().await.unwrap();
    e.gw.mine(3).await;
    let funding = e.gw.faucet(&address, "NOTE", 5 * NOTE).await;
    e.gw.mine(5).await;
    assert_eq!(e.gw.tip().await, 8);
    e.wallet.sync().await.unwrap();
    assert_eq!(
        e.wallet.tx_status(&funding).await.unwrap().state,
        TxState::Final,
        "5 confirmations with finality depth 3"
    );
    funding
}

async fn assert_deep_reorg_refused(e: &Env, funding: &str, before: &Snapshot) {
    for pass in 0..2 {
        let err = e.wallet.sync().await.unwrap_err();
        assert_eq!(
            reorg_too_deep(&err),
            Some((3, 8, 3)),
            "pass {pass}: a signed 5-deep reorg with finality 3: {err}"
        );
        let after = snapshot(&e.wallet).await;
        assert_unchanged(before, &after, "deep reorg");
        assert_eq!(
            e.wallet.tx_status(funding).await.unwrap().state,
            TxState::Final
        );
    }
    assert!(
        has_notification(&e.wallet, "reorg_refused").await,
        "no notification of the refused reorg: {:?}",
        e.wallet.notifications(false).await.unwrap()
    );
}

/// The gateway's finality depth is 3; a chain signed with the real
/// authority key, one block longer, forks 5 blocks below the tip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_reorg_by_a_signed_longer_chain_is_refused() {
    let e = env(Tamper::ServeFork, &["--finality-depth", "3"]).await;
    let funding = fund_in_block_4(&e).await;
    let before = snapshot(&e.wallet).await;

    // A longer chain from block 3, properly signed by the authority.
    let key = e.sandbox.authority_signing_key();
    let authority = PublicKey(key.verifying_key().to_bytes());
    assert_eq!(
        e.gw.get("/v1/info").await["authority_key"],
        json!(authority.to_hex())
    );
    let headers = e.gw.headers().await;
    let mut prev: BlockHeader = headers[3].clone();
    let mut blocks = Vec::new();
    for i in 0..6u64 {
        let mut b = Block::build(
            Network::Sandbox,
            Some(&prev),
            prev.time + 1,
            7_000 + i,
            vec![],
        );
        b.header.sign(&key);
        verify_header(&b.header, &authority).unwrap();
        verify_header_link(&prev, &b.header).unwrap();
        prev = b.header.clone();
        blocks.push(b);
    }
    assert_eq!(prev.height, 9, "one block longer than the gateway's chain");
    e.proxy.serve_fork(Fork {
        fork_height: 3,
        fork_id: headers[3].id().to_hex(),
        blocks,
    });
    e.proxy.arm();
    assert_deep_reorg_refused(&e, &funding, &before).await;
}

/// The sandbox's own reorg injector (`gw.reorg(5)`), against a wallet that
/// pinned finality depth 3. The sandbox refuses reorgs at or beyond its own
/// finality depth, so it runs with 10 and the proxy tells the wallet 3 from
/// first contact on (consistently: to the wallet that is an honest ledger
/// with finality 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_reorg_by_the_sandbox_is_refused() {
    let e = env(Tamper::FinalityDepth(3), &["--finality-depth", "10"]).await;
    e.proxy.arm();
    let funding = fund_in_block_4(&e).await;
    let before = snapshot(&e.wallet).await;
    let r = e.gw.reorg(5).await;
    assert_eq!(r["fork_point"]["height"], json!(3));
    assert_eq!(e.gw.tip().await, 9);
    assert_deep_reorg_refused(&e, &funding, &before).await;
}

// ---------------------------------------------------------------------------
// 3. The ledger's metadata is pinned.

/// Honest first contact, then `/v1/info` changes as `mode` says: refused,
/// nothing changed, and a payment is still built with the pinned metadata.
async fn ledger_change_refused(mode: Tamper) {
    let e = env(mode, &[]).await;
    let w = &e.wallet;
    let address = w.receive_address().await.unwrap();
    // Enough that "1 NOTE" would be affordable even with 3 more decimals.
    e.gw.faucet(&address, "NOTE", 3_000 * NOTE).await;
    e.gw.faucet(&address, "EURT", 10_000).await;
    e.gw.mine(1).await;
    w.sync().await.unwrap();
    let assets = w.assets();
    let to = foreign_address(1);
    let honest = w.prepare_send(&pay(&to, "1", "NOTE")).await.unwrap();
    assert_eq!(u128::from(honest.recipients[0].amount), u128::from(NOTE));
    let before = snapshot(w).await;
    e.gw.mine(1).await;

    e.proxy.arm();
    let err = w.sync().await.unwrap_err();
    assert!(is_ledger_changed(&err), "{mode:?}: {err}");
    assert!(e.proxy.tampered.load(std::sync::atomic::Ordering::SeqCst) > 0);
    assert_unchanged(&before, &snapshot(w).await, &format!("{mode:?}"));
    assert_eq!(w.assets(), assets, "{mode:?}: the pinned assets changed");
    assert!(has_notification(w, "ledger_changed").await, "{mode:?}");

    // Payments still use what was pinned: 1 NOTE is 10^8 base units, the
    // fee follows the pinned rule.
    let p = w.prepare_send(&pay(&to, "1", "NOTE")).await.unwrap();
    assert_eq!(
        u128::from(p.recipients[0].amount),
        u128::from(NOTE),
        "{mode:?}"
    );
    assert_eq!(p.recipients[0].decimals, 8, "{mode:?}");
    assert_eq!((p.fee, p.size), (honest.fee, honest.size), "{mode:?}");
    let eurt = w.prepare_send(&pay(&to, "1", "EURT")).await.unwrap();
    assert_eq!(u128::from(eurt.recipients[0].amount), 100, "{mode:?}");
    assert_eq!(eurt.recipients[0].asset, e.gw.asset_id("EURT").await);

    // Refused as long as the lie lasts; the honest gateway is fine.
    assert!(
        w.sync().await.is_err(),
        "{mode:?}: accepted on the second try"
    );
    e.proxy.disarm();
    w.sync().await.unwrap();
    assert_eq!(
        w.sync_status().await.unwrap().height,
        Some(e.gw.tip().await)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimals_change_is_refused() {
    ledger_change_refused(Tamper::AssetDecimals("NOTE", 3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbol_change_is_refused() {
    ledger_change_refused(Tamper::AssetSymbol("EURT", "EURX")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_change_is_refused() {
    // Another issuer and the id that goes with it: another asset in the
    // pinned one's place.
    ledger_change_refused(Tamper::AssetIssuer("EURT")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fee_rule_change_is_refused() {
    ledger_change_refused(Tamper::MinFeeBase(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finality_depth_change_is_refused() {
    ledger_change_refused(Tamper::FinalityDepth(2)).await;
}

/// An asset whose id is not H(issuer, symbol) at first contact: refused,
/// and nothing is pinned (the honest gateway is accepted afterwards).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asset_id_not_derived_from_issuer_is_refused_at_first_contact() {
    let e = env(Tamper::AssetBadId("EURT"), &[]).await;
    let w = &e.wallet;
    let address = w.receive_address().await.unwrap();
    e.gw.faucet(&address, "NOTE", 5 * NOTE).await;
    e.gw.mine(1).await;
    e.proxy.arm();
    let err = w.sync().await.unwrap_err();
    assert!(
        is_ledger_changed(&err) || matches!(err, SyncError::Verification { .. }),
        "{err}"
    );
    assert_eq!(w.sync_status().await.unwrap().height, None);
    assert!(w.assets().is_empty(), "pinned: {:?}", w.assets());
    assert!(confirmed(w).await.is_empty());

    e.proxy.disarm();
    w.sync().await.unwrap();
    let eurt = w.assets().into_iter().find(|a| a.symbol == "EURT").unwrap();
    assert_eq!(eurt.id, e.gw.asset_id("EURT").await);
    assert_eq!(confirmed(w).await, gateway_view(&e.gw, w).await);
}

// ---------------------------------------------------------------------------
// 4. Amounts are exact beyond i64 and u64.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_amount_syncs_exactly() {
    let e = env(Tamper::None, &[]).await;
    let w = &e.wallet;
    let big: u64 = (1u64 << 63) + 5;
    assert_eq!(big, 9_223_372_036_854_775_813);
    let (status, v) =
        e.gw.try_post(
            "/v1/sandbox/faucet",
            json!({"address": w.receive_address().await.unwrap(), "asset": "EURT", "amount": big}),
        )
        .await;
    assert_eq!(status, 200, "the gateway refuses a mint of 2^63 + 5: {v}");
    e.gw.mine(1).await;
    let note_txid =
        e.gw.faucet(&w.receive_address().await.unwrap(), "NOTE", NOTE)
            .await;
    e.gw.mine(1).await;
    w.sync().await.unwrap();
    let eurt = e.gw.asset_id("EURT").await;
    let note = e.gw.asset_id("NOTE").await;
    let c = confirmed(w).await;
    assert_eq!(c.get(&eurt).copied(), Some(9_223_372_036_854_775_813));
    assert_eq!(c.get(&note).copied(), Some(u128::from(NOTE)));
    assert_eq!(
        w.tx_status(&note_txid).await.unwrap().state,
        TxState::Confirmed
    );
    assert_eq!(c, gateway_view(&e.gw, w).await);

    // Two of them: more than u64::MAX in one balance.
    e.gw.faucet(&w.receive_address().await.unwrap(), "EURT", big)
        .await;
    e.gw.mine(1).await;
    w.sync().await.unwrap();
    let total: u128 = 2 * u128::from(big);
    assert!(total > u128::from(u64::MAX));
    let c = confirmed(w).await;
    assert_eq!(c.get(&eurt).copied(), Some(18_446_744_073_709_551_626));
    let b = w.balances().await.unwrap();
    let eurt_balance = balance_of(&b, "EURT");
    assert_eq!(u128::from(eurt_balance.spendable), total);
    assert_eq!(c, gateway_view(&e.gw, w).await);
    assert_eq!(
        w.sync_status().await.unwrap().height,
        Some(e.gw.tip().await)
    );
}

// ---------------------------------------------------------------------------
// 5, 6. Addresses and the gap limit.

/// Wallet A hands out 26 addresses (gap limit 40); index 25 is paid in an
/// EARLIER block than index 10. A restore with the default gap (20) only
/// watches index 25 once it has seen index 10 used, one block later: it
/// must look at the earlier block again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_finds_later_address_in_earlier_block() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        tokio::task::block_in_place(|| Sandbox::start(dir.path().join("gw"), "127.0.0.1:0"));
    let gw = Gw::new(&sandbox.url);
    let mut cfg = config(&dir.path().join("a"), &gw.url);
    cfg.gap_limit = 40;
    let (a, phrase) = Wallet::create(cfg, Arc::new(MemorySecretStore::new()), WordCount::Twelve)
        .await
        .unwrap();
    let mut addresses = Vec::new();
    for _ in 0..26 {
        addresses.push(a.receive_address().await.unwrap());
    }
    assert_eq!(addresses.iter().collect::<HashSet<_>>().len(), 26);
    gw.faucet(&addresses[25], "NOTE", 7_000).await;
    gw.mine(1).await;
    gw.faucet(&addresses[10], "NOTE", 5_000).await;
    gw.mine(1).await;
    a.sync().await.unwrap();
    let note = gw.asset_id("NOTE").await;
    assert_eq!(confirmed(&a).await.get(&note).copied(), Some(12_000));

    let phrase = phrase.phrase().to_string();
    let restored = restore_wallet(&dir.path().join("r"), &gw.url, &phrase).await;
    assert_eq!(restored.config().gap_limit, 20);
    restored.sync().await.unwrap();
    assert_eq!(
        confirmed(&restored).await.get(&note).copied(),
        Some(12_000),
        "the restore missed the payment to index 25 in the earlier block"
    );
    assert_eq!(
        confirmed(&restored).await,
        gateway_view(&gw, &restored).await
    );
    assert_eq!(restored.history(Default::default()).await.unwrap().len(), 2);
}

/// `receive_address` never hands out more than the gap limit of unused
/// addresses past the last used one (so a restore always finds them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_gap_is_respected() {
    let e = env(Tamper::None, &[]).await;
    let w = &e.wallet;
    assert_eq!(w.config().gap_limit, 20);
    let mut handed = Vec::new();
    for _ in 0..25 {
        handed.push(w.receive_address().await.unwrap());
    }
    let distinct: HashSet<&String> = handed.iter().collect();
    assert!(
        distinct.len() <= 20,
        "{} unused addresses handed out with a gap limit of 20",
        distinct.len()
    );
    assert_eq!(
        handed[..20].iter().collect::<HashSet<_>>().len(),
        20,
        "the first 20 are fresh"
    );
    for (i, a) in handed[20..].iter().enumerate() {
        assert_eq!(
            a,
            &handed[0],
            "call {}: not the oldest unused address",
            21 + i
        );
    }

    // Once one is used, fresh addresses come again.
    e.gw.faucet(&handed[0], "NOTE", 1_000).await;
    e.gw.mine(1).await;
    w.sync().await.unwrap();
    let next = w.receive_address().await.unwrap();
    assert!(!distinct.contains(&next), "{next} was handed out before");
    // A restore finds the payment (the gap was never exceeded).
    let restored = restore_wallet(&e.dir.path().join("r"), &e.gw.url, &e.phrase).await;
    restored.sync().await.unwrap();
    assert_eq!(confirmed(&restored).await, confirmed(w).await);
}

// ---------------------------------------------------------------------------
// 7. "Rejected" and "not found" do not release the coins of a signed send.

/// The gateway takes the send, the proxy says it was refused (and then
/// `rejected` or `not_found` about it): the coins stay reserved; when it
/// confirms, the recipient is paid exactly once.
async fn send_said_refused_keeps_coins(mode: Tamper) {
    let e = env(mode, &[]).await;
    let w = &e.wallet;
    e.gw.faucet(&w.receive_address().await.unwrap(), "NOTE", 3 * NOTE)
        .await;
    e.gw.mine(1).await;
    w.sync().await.unwrap();
    let bob = foreign_address(2);

    e.proxy.arm();
    let p = w.prepare_send(&pay(&bob, "1", "NOTE")).await.unwrap();
    let sent = w.confirm_send(&p).await;
    println!("{mode:?}: confirm_send -> {sent:?}");
    let txid = p.txid.clone();
    assert_eq!(
        e.gw.tx_state(&txid).await,
        "in_pool",
        "the gateway has the send"
    );
    for pass in 0..2 {
        let r = w.sync().await;
        println!("{mode:?}: sync {pass} -> {r:?}");
        let b = w.balances().await.unwrap();
        let note = balance_of(&b, "NOTE");
        assert_eq!(
            (
                u128::from(note.confirmed),
                u128::from(note.spendable),
                u128::from(note.pending_outgoing)
            ),
            (u128::from(3 * NOTE), 0, u128::from(3 * NOTE)),
            "{mode:?}, pass {pass}: the coin of a send said to be refused was released: {note:?} (state {:?})",
            w.tx_status(&txid).await.unwrap().state
        );
        match w.prepare_send(&pay(&bob, "1", "NOTE")).await {
            Err(SendError::InsufficientFunds { .. }) => {}
            other => panic!("{mode:?}: a second send of the same coin: {other:?}"),
        }
        assert_ne!(w.tx_status(&txid).await.unwrap().state, ABANDONED);
    }

    // It confirms after all: paid once, the wallet agrees.
    e.proxy.disarm();
    e.gw.mine(1).await;
    w.sync().await.unwrap();
    assert_eq!(w.tx_status(&txid).await.unwrap().state, TxState::Confirmed);
    let note_id = e.gw.asset_id("NOTE").await;
    let paid = e.gw.balances_of(std::slice::from_ref(&bob)).await;
    assert_eq!(paid.get(&note_id).copied(), Some(u128::from(NOTE)));
    assert_eq!(paid.len(), 1);
    assert_eq!(confirmed(w).await, gateway_view(&e.gw, w).await);
    let b = w.balances().await.unwrap();
    let note = balance_of(&b, "NOTE");
    assert_eq!(u128::from(note.pending_outgoing), 0);
    assert_eq!(u128::from(note.spendable), u128::from(note.confirmed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_send_keeps_coins_reserved() {
    send_said_refused_keeps_coins(Tamper::RejectSends).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_send_keeps_coins_reserved() {
    send_said_refused_keeps_coins(Tamper::ForgetSends).await;
}

/// A send that never reached the gateway (the proxy swallowed it and said
/// "refused"): reserved until the person abandons it; then its coins pay
/// someone else, and the abandoned send stays abandoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandon_send_releases_the_coins_of_a_truly_rejected_send() {
    let e = env(Tamper::SwallowSends, &[]).await;
    let w = &e.wallet;
    e.gw.faucet(&w.receive_address().await.unwrap(), "NOTE", 3 * NOTE)
        .await;
    e.gw.mine(1).await;
    w.sync().await.unwrap();
    let bob = foreign_address(3);

    e.proxy.arm();
    let p = w.prepare_send(&pay(&bob, "1", "NOTE")).await.unwrap();
    let _ = w.confirm_send(&p).await;
    let txid = p.txid.clone();
    assert_eq!(e.gw.tx_state(&txid).await, "not_found");
    let _ = w.sync().await;
    let b = w.balances().await.unwrap();
    assert_eq!(
        u128::from(balance_of(&b, "NOTE").spendable),
        0,
        "released without being abandoned"
    );

    let released = abandon(w, &txid).await.unwrap();
    assert!(released.contains(&txid), "{released:?}");
    assert_eq!(w.tx_status(&txid).await.unwrap().state, ABANDONED);
    let b = w.balances().await.unwrap();
    let note = balance_of(&b, "NOTE");
    assert_eq!(
        (
            u128::from(note.spendable),
            u128::from(note.pending_outgoing)
        ),
        (u128::from(3 * NOTE), 0)
    );

    // The coins pay Bob for real now, once.
    e.proxy.disarm();
    let p2 = w.prepare_send(&pay(&bob, "1", "NOTE")).await.unwrap();
    let txid2 = w.confirm_send(&p2).await.unwrap();
    e.gw.mine(1).await;
    w.sync().await.unwrap();
    assert_eq!(w.tx_status(&txid2).await.unwrap().state, TxState::Confirmed);
    assert_eq!(w.tx_status(&txid).await.unwrap().state, ABANDONED);
    let note_id = e.gw.asset_id("NOTE").await;
    let paid = e.gw.balances_of(std::slice::from_ref(&bob)).await;
    assert_eq!(paid.get(&note_id).copied(), Some(u128::from(NOTE)));
    assert_eq!(confirmed(w).await, gateway_view(&e.gw, w).await);
    // A confirmed send cannot be abandoned.
    assert!(abandon(w, &txid2).await.is_err());
    assert_eq!(w.tx_status(&txid2).await.unwrap().state, TxState::Confirmed);
}

// ---------------------------------------------------------------------------
// 8. Plain HTTP only to this machine.

async fn create(cfg: WalletConfig) -> Result<Wallet, OpenError> {
    Wallet::create(cfg, Arc::new(MemorySecretStore::new()), WordCount::Twelve)
        .await
        .map(|(w, _)| w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_http_refused() {
    let dir = tempfile::tempdir().unwrap();
    let remote = "http://example.invalid:7420";
    let d = dir.path().join("remote");
    let err = create(WalletConfig::new(&d, remote, Network::Sandbox))
        .await
        .err()
        .expect("a wallet on plain http to another machine was created");
    assert!(is_insecure_url(&err), "{err}");
    assert!(
        !d.join("wallet.sqlite").exists(),
        "a refused wallet left a database"
    );

    let d = dir.path().join("allowed");
    let mut cfg = WalletConfig::new(&d, remote, Network::Sandbox);
    allow_insecure_http(&mut cfg);
    create(cfg).await.unwrap();

    for (name, url) in [
        ("https", "https://example.invalid"),
        ("v4", "http://127.0.0.1:1"),
        ("v6", "http://[::1]:1"),
        ("localhost", "http://localhost:1"),
    ] {
        let d = dir.path().join(name);
        create(WalletConfig::new(&d, url, Network::Sandbox))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }

    // Opening a wallet with a remote plain-http gateway is refused too.
    let d = dir.path().join("reopened");
    let store = Arc::new(MemorySecretStore::new());
    let (w, _) = Wallet::create(
        WalletConfig::new(&d, "http://127.0.0.1:1", Network::Sandbox),
        store.clone(),
        WordCount::Twelve,
    )
    .await
    .unwrap();
    drop(w);
    let err = Wallet::open(WalletConfig::new(&d, remote, Network::Sandbox), store)
        .await
        .err()
        .expect("opened with plain http to another machine");
    assert!(is_insecure_url(&err), "{err}");
}

// ---------------------------------------------------------------------------
// 9. A network file pins the ledger before first contact.

fn network_file_json(authority: &str, genesis: &str, cp: Option<(u64, String)>) -> String {
    json!({
        "network": "sandbox",
        "authority_key": authority,
        "genesis": genesis,
        "checkpoint": cp,
    })
    .to_string()
}

async fn wallet_with_file(dir: &std::path::Path, url: &str, file: &str) -> Wallet {
    let mut cfg = config(dir, url);
    set_network_file(&mut cfg, file);
    create(cfg).await.unwrap()
}

/// A sandbox with 3 blocks: (its tempdir, the sandbox, authority key hex,
/// headers).
async fn ledger_for_files() -> (TempDir, Sandbox, Gw, String, Vec<BlockHeader>) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        tokio::task::block_in_place(|| Sandbox::start(dir.path().join("gw"), "127.0.0.1:0"));
    let gw = Gw::new(&sandbox.url);
    gw.mine(3).await;
    let authority = gw.get("/v1/info").await["authority_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let headers = gw.headers().await;
    (dir, sandbox, gw, authority, headers)
}

/// A wallet with a network file that does not describe the gateway's
/// ledger: its first sync fails, every time, and nothing is pinned (no
/// headers, no ledger metadata taken from a gateway that turned out not to
/// be the one in the file).
async fn refused_with_file(dir: &TempDir, gw: &Gw, name: &str, file: &str) {
    let w = wallet_with_file(&dir.path().join(name), &gw.url, file).await;
    for pass in 0..2 {
        let err = w.sync().await.unwrap_err();
        assert!(
            matches!(
                err,
                SyncError::AuthorityChanged { .. } | SyncError::Verification { .. }
            ) || is_ledger_changed(&err),
            "wrong {name}, pass {pass}: {err}"
        );
        assert_eq!(
            w.sync_status().await.unwrap().height,
            None,
            "wrong {name}: headers were stored"
        );
        assert!(
            w.assets().is_empty(),
            "wrong {name}: the gateway's ledger metadata was pinned: {:?}",
            w.assets()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_file_pins_first_contact() {
    let (dir, _sandbox, gw, authority, headers) = ledger_for_files().await;
    let genesis = headers[0].id().to_hex();
    // The right file (with a checkpoint): syncs.
    let file = network_file_json(&authority, &genesis, Some((2, headers[2].id().to_hex())));
    let w = wallet_with_file(&dir.path().join("good"), &gw.url, &file).await;
    w.sync().await.unwrap();
    assert_eq!(w.sync_status().await.unwrap().height, Some(3));
    assert_eq!(confirmed(&w).await, gateway_view(&gw, &w).await);
    // Another authority key: the gateway's own is not believed.
    let other_key = PublicKey(
        SigningKey::from_bytes(&[0x42; 32])
            .verifying_key()
            .to_bytes(),
    )
    .to_hex();
    let file = network_file_json(&other_key, &genesis, None);
    refused_with_file(&dir, &gw, "authority", &file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_file_with_another_genesis_is_refused() {
    let (dir, _sandbox, gw, authority, headers) = ledger_for_files().await;
    let file = network_file_json(&authority, &headers[1].id().to_hex(), None);
    refused_with_file(&dir, &gw, "genesis", &file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_file_with_another_checkpoint_is_refused() {
    let (dir, _sandbox, gw, authority, headers) = ledger_for_files().await;
    let file = network_file_json(
        &authority,
        &headers[0].id().to_hex(),
        Some((2, headers[1].id().to_hex())),
    );
    refused_with_file(&dir, &gw, "checkpoint", &file).await;
}

// ---------------------------------------------------------------------------
// 10. A spend of the wallet's coins needs the wallet's signatures.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_of_our_coins_not_signed_by_us_is_ignored() {
    let e = env(Tamper::InjectMempool, &[]).await;
    let w = &e.wallet;
    let funding =
        e.gw.faucet(&w.receive_address().await.unwrap(), "NOTE", 5 * NOTE)
            .await;
    e.gw.mine(1).await;
    w.sync().await.unwrap();
    let before = snapshot(w).await;

    // The wallet's coin, "spent" to an attacker with a garbage signature.
    let native = AssetId::from_hex(&e.gw.asset_id("NOTE").await).unwrap();
    let mut forged = Transaction::new(Network::Sandbox);
    forged.inputs.push(OutPoint {
        txid: TxId::from_hex(&funding).unwrap(),
        index: 0,
    });
    forged.outputs.push(Output {
        asset: native,
        amount: 5 * NOTE - 10_000,
        owner: PublicKey(
            SigningKey::from_bytes(&[0x99; 32])
                .verifying_key()
                .to_bytes(),
        ),
    });
    forged.fee = 10_000;
    forged.signatures = vec![Signature([0xA5; 64])];
    let forged_id = forged.txid().to_hex();
    e.proxy.inject_mempool(&forged);
    e.proxy.arm();
    let r = w.sync().await;
    println!("sync with a forged spend in the pool: {r:?}");
    let r = w.sync().await;
    println!("again: {r:?}");
    assert!(e.proxy.tampered.load(std::sync::atomic::Ordering::SeqCst) > 0);

    let after = snapshot(w).await;
    assert_eq!(
        before.balances, after.balances,
        "a spend without the wallet's signature moved its balance"
    );
    assert!(
        !after.history.iter().any(|h| h.txid == forged_id && h.own),
        "the forged spend is in the history as the wallet's own"
    );
    assert_unchanged(&before, &after, "forged spend");
    // The coin is still the wallet's to spend.
    w.prepare_send(&pay(&foreign_address(4), "4", "NOTE"))
        .await
        .unwrap();
}

/// The operator's `network.json` (written by the gateway into its data
/// directory) pins the ledger before first contact, assets and rules
/// included: a lying first contact that serves other decimals is refused,
/// and the honest gateway syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_network_file_pins_assets_before_first_contact() {
    let e = env(Tamper::AssetDecimals("NOTE", 3), &[]).await;
    let file = std::fs::read_to_string(e.sandbox.data_dir.join("network.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert!(parsed["assets"].as_array().is_some_and(|a| !a.is_empty()));
    // A fresh wallet with the file meets the lying proxy first.
    let mut cfg = config(&e.dir.path().join("filed"), &e.proxy.url);
    set_network_file(&mut cfg, &file);
    let w = create(cfg).await.unwrap();
    e.proxy.arm();
    let err = w.sync().await.unwrap_err();
    assert!(is_ledger_changed(&err), "{err}");
    assert!(err.to_string().contains("decimals"), "{err}");
    assert_eq!(w.sync_status().await.unwrap().height, None);
    // The honest answer syncs, with the file's decimals.
    e.proxy.disarm();
    w.sync().await.unwrap();
    let served = e.gw.get("/v1/info").await;
    for asset in w.assets() {
        let expected = served["assets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == asset.id.as_str())
            .unwrap();
        assert_eq!(
            u64::from(asset.decimals),
            expected["decimals"].as_u64().unwrap()
        );
    }
    assert!(w.sync_status().await.unwrap().height.is_some());
}

/// A restore of old payments tells of them once: one inbox entry sums up
/// the catch-up's payments (no txid: it is about all of them), every
/// notification event of the catch-up is `quiet`, and one `CaughtUp` sums
/// them up for the desktop. Each payment still has its `PaymentReceived`
/// event, and a payment after the catch-up has its own entry again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_notifies_once() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        tokio::task::block_in_place(|| Sandbox::start(dir.path().join("gw"), "127.0.0.1:0"));
    let gw = Gw::new(&sandbox.url);
    let (a, phrase) = new_wallet(&dir.path().join("a"), &gw.url).await;
    for amount in [1_000u64, 2_000, 3_000] {
        let address = a.receive_address().await.unwrap();
        gw.faucet(&address, "NOTE", amount).await;
        gw.mine(1).await;
    }
    gw.mine(8).await;
    let restored = restore_wallet(&dir.path().join("r"), &gw.url, &phrase).await;
    let mut events = restored.subscribe();
    restored.sync().await.unwrap();
    let mut loud = 0;
    let mut quiet = HashSet::new();
    let mut payments = 0;
    let mut summaries = Vec::new();
    while let Ok(e) = events.try_recv() {
        match e {
            notch_core::WalletEvent::Notification {
                quiet: true, id, ..
            } => {
                quiet.insert(id);
            }
            notch_core::WalletEvent::Notification { quiet: false, .. } => loud += 1,
            notch_core::WalletEvent::PaymentReceived { .. } => payments += 1,
            notch_core::WalletEvent::CaughtUp {
                notifications,
                payments_received,
                ..
            } => summaries.push((notifications, payments_received)),
            _ => {}
        }
    }
    assert_eq!(
        loud, 0,
        "a catch-up must not notify the desktop per payment"
    );
    assert_eq!(payments, 3, "one event per payment");
    assert_eq!(quiet.len(), 1, "one inbox entry, however often rewritten");
    assert_eq!(summaries, vec![(1, 3)]);
    let received = |inbox: &[notch_core::Notification]| -> Vec<notch_core::Notification> {
        inbox
            .iter()
            .filter(|n| n.kind == notch_core::NotificationKind::PaymentReceived)
            .cloned()
            .collect()
    };
    let inbox = restored.notifications(false).await.unwrap();
    let summary = received(&inbox);
    assert_eq!(summary.len(), 1, "{inbox:#?}");
    assert_eq!(summary[0].txid, None);
    assert!(!summary[0].read);
    assert_eq!(
        summary[0].title, "You received 3 payments while away: 0.00006 NOTE",
        "{summary:#?}"
    );
    // Synced again: nothing new to tell.
    restored.sync().await.unwrap();
    assert_eq!(
        received(&restored.notifications(false).await.unwrap()).len(),
        1
    );
    // A payment after the catch-up, seen in the pool: its own entry,
    // about its transaction (named by its txid, not in its text).
    let address = restored.receive_address().await.unwrap();
    let txid = gw.faucet(&address, "NOTE", 4_000).await;
    restored.sync().await.unwrap();
    let inbox = received(&restored.notifications(false).await.unwrap());
    assert_eq!(inbox.len(), 2, "{inbox:#?}");
    assert_eq!(inbox[0].txid.map(hex::encode), Some(txid.clone()));
    assert_eq!(inbox[0].title, "You received 0.00004 NOTE");
    assert!(!inbox[0].body.contains(&txid), "{inbox:#?}");
    // Seen again in a block, it is not told twice.
    gw.mine(1).await;
    restored.sync().await.unwrap();
    assert_eq!(
        received(&restored.notifications(false).await.unwrap()).len(),
        2
    );
}
