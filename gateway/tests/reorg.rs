//! Reorg injection: the locator finds the fork point, the new headers verify, orphaned
//! transactions return to the pool or are dropped.

mod common;

use common::*;
use notch_protocol::api::*;
use notch_protocol::{
    BlockHeader, BlockId, PublicKey, locator_heights, public_key, verify_header_chain,
    verify_header_link,
};

fn header(e: &HeaderEntry) -> BlockHeader {
    let h = BlockHeader::decode(&hex::decode(&e.hex).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.id().to_hex(), e.id);
    assert_eq!(h.height, e.height);
    h
}

fn all_headers(g: &Gateway) -> Vec<BlockHeader> {
    let r: HeadersResponse = post(
        g,
        "/v1/headers",
        &HeadersRequest {
            locator: vec![],
            limit: None,
        },
    );
    assert_eq!(r.fork_point, None);
    assert!(!r.more);
    r.headers.iter().map(header).collect()
}

fn locator(chain: &[BlockHeader]) -> Vec<String> {
    let tip = chain.len() as u64 - 1;
    locator_heights(tip)
        .into_iter()
        .map(|h| chain[h as usize].id().to_hex())
        .collect()
}

both_backends!(locator_after_reorg_returns_fork_point_and_new_headers);
fn locator_after_reorg_returns_fork_point_and_new_headers(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::sandbox(&b, &dir.path().join("gw"));
    let info = info(&g);
    let authority = PublicKey::from_hex(&info.authority_key).unwrap_or_else(|e| panic!("{e}"));
    let native = asset_id(&info, "NOTE");
    let (alice, bob, carol) = (key(1), key(2), key(3));

    // Coins confirmed at height 1.
    let c1 = faucet(&g, &alice, "NOTE", 50_000_000);
    let c2 = faucet(&g, &alice, "NOTE", 50_000_000);
    mine(&g, 8);
    // Height 9: t_keep (survives) and t_lost (will conflict with the new chain).
    let t_keep = pay(
        native,
        &alice,
        c1,
        50_000_000,
        public_key(&bob),
        1_000_000,
        1,
    );
    let t_lost = pay(
        native,
        &alice,
        c2,
        50_000_000,
        public_key(&bob),
        2_000_000,
        2,
    );
    submit_ok(&g, &t_keep);
    submit_ok(&g, &t_lost);
    mine(&g, 1);
    // A child of t_lost in the pool: must be dropped with its parent.
    let child_coin = notch_protocol::OutPoint {
        txid: t_lost.txid(),
        index: 1,
    };
    let t_child = pay(
        native,
        &alice,
        child_coin,
        t_lost.outputs[1].amount,
        public_key(&carol),
        1_000,
        3,
    );
    submit_ok(&g, &t_child);
    mine(&g, 1);

    let old = all_headers(&g);
    assert_eq!(old.len(), 11);
    verify_header_chain(None, &old, &authority).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        status(&g, &t_lost.txid()),
        TxStatus::Confirmed {
            block_height: 9,
            ..
        }
    ));

    // Replace heights 8..=10 by 4 new blocks; the first includes a conflicting spend of c2.
    let conflict = pay(
        native,
        &alice,
        c2,
        50_000_000,
        public_key(&carol),
        3_000_000,
        9,
    );
    let r: ReorgResponse = post(
        &g,
        "/v1/sandbox/reorg",
        &ReorgRequest {
            depth: 3,
            include_txs: vec![hex::encode(conflict.encode())],
        },
    );
    assert_eq!(
        r.fork_point,
        BlockRef {
            height: 7,
            hash: old[7].id().to_hex()
        }
    );
    assert_eq!(r.old_tip.height, 10);
    assert_eq!(r.tip.height, 11);
    assert_eq!(r.returned_to_pool, vec![t_keep.txid().to_hex()]);
    let mut dropped = r.dropped.clone();
    dropped.sort();
    let mut want = vec![t_lost.txid().to_hex(), t_child.txid().to_hex()];
    want.sort();
    assert_eq!(dropped, want);

    // The wallet's locator (built from its old chain) finds height 7.
    let resp: HeadersResponse = post(
        &g,
        "/v1/headers",
        &HeadersRequest {
            locator: locator(&old),
            limit: None,
        },
    );
    assert_eq!(
        resp.fork_point,
        Some(BlockRef {
            height: 7,
            hash: old[7].id().to_hex()
        })
    );
    assert_eq!(resp.tip, r.tip);
    let new: Vec<BlockHeader> = resp.headers.iter().map(header).collect();
    assert_eq!(
        new.iter().map(|h| h.height).collect::<Vec<_>>(),
        vec![8, 9, 10, 11]
    );
    verify_header_link(&old[7], &new[0]).unwrap_or_else(|e| panic!("{e}"));
    verify_header_chain(Some(&old[7]), &new, &authority).unwrap_or_else(|e| panic!("{e}"));
    for (a, b) in old[8..].iter().zip(&new) {
        assert_ne!(a.id(), b.id(), "height {} was not replaced", a.height);
    }
    // A client limit is honoured and `more` says so.
    let resp: HeadersResponse = post(
        &g,
        "/v1/headers",
        &HeadersRequest {
            locator: locator(&old),
            limit: Some(2),
        },
    );
    assert_eq!((resp.headers.len(), resp.more), (2, true));
    // Unknown hashes only: answered from the genesis.
    let resp: HeadersResponse = post(
        &g,
        "/v1/headers",
        &HeadersRequest {
            locator: vec![BlockId([1; 32]).to_hex()],
            limit: None,
        },
    );
    assert_eq!((resp.fork_point, resp.headers.len()), (None, 12));
    // Blocks from the same locator carry the conflicting transaction.
    let blocks: BlocksResponse = post(
        &g,
        "/v1/blocks",
        &BlocksRequest {
            locator: locator(&old),
            limit: Some(1),
        },
    );
    assert_eq!(blocks.fork_point.map(|f| f.height), Some(7));
    let b8 = notch_protocol::Block::decode(&hex::decode(&blocks.blocks[0].hex).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b8.txs, vec![conflict.clone()]);

    // Statuses after the reorg.
    assert_eq!(status(&g, &t_keep.txid()), TxStatus::InPool);
    assert!(matches!(
        status(&g, &t_lost.txid()),
        TxStatus::Dropped { .. }
    ));
    assert!(matches!(
        status(&g, &t_child.txid()),
        TxStatus::Dropped { .. }
    ));
    assert!(matches!(
        status(&g, &conflict.txid()),
        TxStatus::Confirmed {
            confirmations: 4,
            block_height: 8,
            ..
        }
    ));
    // The returned transaction confirms again; the dropped one cannot come back.
    mine(&g, 1);
    assert!(matches!(
        status(&g, &t_keep.txid()),
        TxStatus::Confirmed {
            block_height: 12,
            ..
        }
    ));
    let (code, body) = submit(&g, &t_lost);
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("double_spend")),
        "{body}"
    );
    // Bob's coins: only t_keep's payment.
    let u: UtxosResponse = get(&g, &format!("/v1/address/{}/utxos", address(&bob)));
    assert_eq!(
        u.utxos.iter().map(|x| x.txid.clone()).collect::<Vec<_>>(),
        vec![t_keep.txid().to_hex()]
    );
    verified_chain(&g);

    // Depth limits: not below finality, not zero.
    for depth in [0, 6, 100] {
        let (code, body) = send(
            client()
                .post(g.url("/v1/sandbox/reorg"))
                .json(&ReorgRequest {
                    depth,
                    include_txs: vec![],
                }),
        );
        assert_eq!(
            (code, body["code"].as_str()),
            (400, Some("bad_request")),
            "depth {depth}: {body}"
        );
    }
}
