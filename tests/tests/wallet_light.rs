//! The wallet is a light client (docs/PROTOCOL.md §5.4 items 5, 6 and 6a):
//! of a block it checks the signed header and the merkle root over every
//! transaction, and the full validity (signatures included) only of the
//! transactions that touch it. The honest gateway never serves an invalid
//! transaction, so a proxy serves an authority-signed chain the test builds
//! (the sandbox's real authority key signs it, as a misbehaving authority
//! could): a stranger's transaction with a bad signature is accepted, one
//! paying the wallet with a bad signature is refused.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use notch_core::SyncError;
use notch_core::protocol::ed25519_dalek::SigningKey;
use notch_core::protocol::{
    Address, Block, BlockHeader, Issuance, Network, Output, PublicKey, Transaction,
};
use notch_tests::gateway::Sandbox;
use notch_tests::wallet::{Fork, Gw, Tamper, TamperProxy, confirmed, new_wallet};

/// A mint of `amount` of the issuer's `LIGHT` asset to `owner`; its issuer
/// signature is broken when `forged`.
fn mint(issuer: &SigningKey, owner: PublicKey, amount: u64, forged: bool) -> Transaction {
    let issuer_key = PublicKey(issuer.verifying_key().to_bytes());
    let issuance = Issuance {
        issuer: issuer_key,
        label: "LIGHT".into(),
        mint: amount,
        burn: 0,
    };
    let mut t = Transaction::new(Network::Sandbox);
    t.outputs = vec![Output {
        asset: issuance.asset(),
        amount,
        owner,
    }];
    t.issuances = vec![issuance];
    t.nonce = amount;
    t.sign(&[issuer]).unwrap();
    if forged {
        t.signatures[0].0[3] ^= 0x40;
    }
    assert_eq!(t.check_stateless(Network::Sandbox).is_err(), forged);
    t
}

/// A block after `prev` holding `txs` (merkle root computed over them, so
/// it is correct), signed by the authority.
fn signed_block(prev: &BlockHeader, txs: Vec<Transaction>, key: &SigningKey) -> Block {
    let mut b = Block::build(Network::Sandbox, Some(prev), prev.time + 1, 9_000, txs);
    b.header.sign(key);
    b
}

struct Env {
    _dir: tempfile::TempDir,
    sandbox: Sandbox,
    gw: Gw,
    proxy: TamperProxy,
    wallet: notch_core::Wallet,
    address: PublicKey,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        tokio::task::block_in_place(|| Sandbox::start(dir.path().join("gw"), "127.0.0.1:0"));
    let gw = Gw::new(&sandbox.url);
    let proxy = TamperProxy::start(&gw.url, Tamper::ServeFork).await;
    let (wallet, _) = new_wallet(&dir.path().join("w"), &proxy.url).await;
    let address = wallet.receive_address().await.unwrap();
    gw.faucet(&address, "NOTE", 500_000_000).await;
    gw.mine(2).await;
    wallet.sync().await.unwrap();
    let key = Address::parse(&address, Network::Sandbox).unwrap().key;
    Env {
        _dir: dir,
        sandbox,
        gw,
        proxy,
        wallet,
        address: key,
    }
}

/// Serves one authority-signed block on top of the gateway's tip.
async fn serve(e: &Env, txs: Vec<Transaction>) -> Block {
    let headers = e.gw.headers().await;
    let tip = headers.last().unwrap().clone();
    let block = signed_block(&tip, txs, &e.sandbox.authority_signing_key());
    e.proxy.serve_fork(Fork {
        fork_height: tip.height,
        fork_id: tip.id().to_hex(),
        blocks: vec![block.clone()],
    });
    e.proxy.arm();
    block
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_bad_signature_is_not_the_wallets_business() {
    let e = env().await;
    let issuer = SigningKey::from_bytes(&[77; 32]);
    let stranger = PublicKey(SigningKey::from_bytes(&[78; 32]).verifying_key().to_bytes());
    let bad = mint(&issuer, stranger, 5, true);
    let good = mint(&issuer, e.address, 1234, false);
    let asset = good.issuances[0].asset().to_hex();
    let block = serve(&e, vec![bad, good]).await;
    let report = e.wallet.sync().await.unwrap();
    assert_eq!(report.height, block.header.height, "the block was accepted");
    assert_eq!(confirmed(&e.wallet).await.get(&asset), Some(&1234));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_on_the_wallets_payment_is_refused() {
    let e = env().await;
    let before = e.wallet.sync_status().await.unwrap().height;
    let issuer = SigningKey::from_bytes(&[77; 32]);
    let forged = mint(&issuer, e.address, 1234, true);
    let asset = forged.issuances[0].asset().to_hex();
    serve(&e, vec![forged]).await;
    let err = e.wallet.sync().await.unwrap_err();
    assert!(matches!(err, SyncError::Verification { .. }), "{err}");
    assert!(err.to_string().contains("not valid"), "{err}");
    assert_eq!(e.wallet.sync_status().await.unwrap().height, before);
    assert_eq!(confirmed(&e.wallet).await.get(&asset), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_transaction_breaks_the_merkle_root() {
    let e = env().await;
    let before = e.wallet.sync_status().await.unwrap().height;
    let issuer = SigningKey::from_bytes(&[77; 32]);
    let stranger = PublicKey(SigningKey::from_bytes(&[78; 32]).verifying_key().to_bytes());
    let headers = e.gw.headers().await;
    let tip = headers.last().unwrap().clone();
    let mut block = signed_block(
        &tip,
        vec![mint(&issuer, stranger, 5, false)],
        &e.sandbox.authority_signing_key(),
    );
    // A stranger's transaction changed after the authority signed.
    block.txs[0].outputs[0].amount = 6;
    e.proxy.serve_fork(Fork {
        fork_height: tip.height,
        fork_id: tip.id().to_hex(),
        blocks: vec![block],
    });
    e.proxy.arm();
    let err = e.wallet.sync().await.unwrap_err();
    assert!(err.to_string().contains("merkle root"), "{err}");
    assert_eq!(e.wallet.sync_status().await.unwrap().height, before);
}
