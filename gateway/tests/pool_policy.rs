//! Nobody fills blocks for free, one client cannot take the whole pool, a full pool keeps the
//! transactions that pay more, and the sandbox reorg never puts a transaction on the chain
//! twice. Against the real binary over loopback HTTP.

mod common;

use common::*;
use notch_protocol::api::*;
use notch_protocol::ed25519_dalek::SigningKey;
use notch_protocol::{Issuance, Network, OutPoint, Transaction, public_key};

/// A blocking client whose connections come from `ip` (any 127.x.y.z is this machine), so
/// that the gateway sees another client.
fn client_from(ip: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .local_address(ip.parse::<std::net::IpAddr>().ok())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn submit_from(
    c: &reqwest::blocking::Client,
    g: &Gateway,
    tx: &Transaction,
) -> (u16, serde_json::Value) {
    send(c.post(g.url("/v1/tx")).json(&SubmitTxRequest {
        tx: hex::encode(tx.encode()),
    }))
}

/// `n` confirmed NOTE coins of `amount` owned by `owner` (a block after each, so that the
/// faucet's own transactions never fill a small pool).
fn coins(g: &Gateway, owner: &SigningKey, n: usize, amount: u64) -> Vec<OutPoint> {
    (0..n)
        .map(|_| {
            let c = faucet(g, owner, "NOTE", amount);
            mine(g, 1);
            c
        })
        .collect()
}

both_backends!(issuance_of_an_unlisted_asset_is_refused_and_costs_nothing);
fn issuance_of_an_unlisted_asset_is_refused_and_costs_nothing(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::sandbox(&b, &dir.path().join("gw"));
    // Anyone can make an issuer key; mint 1 and burn 1 of "its" asset, no outputs, no fee.
    let stranger = key(77);
    let mut tx = Transaction::new(Network::Sandbox);
    tx.issuances = vec![Issuance {
        issuer: public_key(&stranger),
        label: "SPAM".into(),
        mint: 1,
        burn: 1,
    }];
    tx.sign(&[&stranger]).unwrap_or_else(|e| panic!("{e}"));
    let (code, body) = submit(&g, &tx);
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["code"], "unlisted_issuance", "{body}");
    assert!(
        matches!(status(&g, &tx.txid()), TxStatus::Rejected { ref code, .. } if code == "unlisted_issuance")
    );
    let delta: MempoolDelta = get(&g, "/v1/mempool?since=0");
    assert!(delta.changes.is_empty(), "{delta:?}");
    let mined = mine(&g, 1);
    let blocks = verified_chain(&g);
    assert_eq!(blocks.len() as u64, mined.tip.height + 1);
    assert!(
        blocks.iter().all(|b| b.txs.is_empty()),
        "an unlisted issuance reached a block"
    );
}

both_backends!(one_client_flooding_the_pool_leaves_room_for_others);
fn one_client_flooding_the_pool_leaves_room_for_others(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::spawn(
        &b,
        &dir.path().join("gw"),
        &[
            "--sandbox",
            "--block-interval",
            "0",
            "--max-pool-txs",
            "20",
            "--max-pool-per-client",
            "5",
        ],
    );
    let native = asset_id(&info(&g), "NOTE");
    let (flooder, other) = (key(1), key(2));
    let flood_coins = coins(&g, &flooder, 8, 1_000_000);
    let other_coin = coins(&g, &other, 1, 1_000_000)[0];
    let a = client_from("127.0.0.1");
    let mut codes = Vec::new();
    for (n, c) in flood_coins.iter().enumerate() {
        let tx = pay(
            native,
            &flooder,
            *c,
            1_000_000,
            public_key(&key(9)),
            1000,
            n as u64,
        );
        let (code, body) = submit_from(&a, &g, &tx);
        codes.push((code, body["code"].as_str().unwrap_or("").to_owned()));
    }
    let accepted = codes.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(accepted, 5, "{codes:?}");
    assert!(
        codes
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, c)| *s == 429 && c == "rate_limited"),
        "{codes:?}"
    );
    // Another client still gets in.
    let b = client_from("127.0.0.2");
    let tx = pay(
        native,
        &other,
        other_coin,
        1_000_000,
        public_key(&key(9)),
        1000,
        0,
    );
    let (code, body) = submit_from(&b, &g, &tx);
    assert_eq!(code, 200, "{body}");
    // After a block the flooder's share is free again.
    mine(&g, 1);
    let tx = pay(
        native,
        &flooder,
        flood_coins[7],
        1_000_000,
        public_key(&key(9)),
        1000,
        7,
    );
    let (code, body) = submit_from(&a, &g, &tx);
    assert_eq!(code, 200, "{body}");
}

both_backends!(a_full_pool_keeps_the_higher_fee_rate_and_blocks_take_it_first);
fn a_full_pool_keeps_the_higher_fee_rate_and_blocks_take_it_first(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::spawn(
        &b,
        &dir.path().join("gw"),
        &[
            "--sandbox",
            "--block-interval",
            "0",
            "--max-pool-txs",
            "3",
            "--max-pool-per-client",
            "100",
        ],
    );
    let native = asset_id(&info(&g), "NOTE");
    let alice = key(3);
    let c = coins(&g, &alice, 5, 1_000_000);
    let cheap: Vec<Transaction> = (0..3)
        .map(|n| {
            pay(
                native,
                &alice,
                c[n],
                1_000_000,
                public_key(&key(9)),
                1000,
                n as u64,
            )
        })
        .collect();
    for t in &cheap {
        submit_ok(&g, t);
    }
    // Full: the same fee rate does not get in.
    let same = pay(
        native,
        &alice,
        c[3],
        1_000_000,
        public_key(&key(9)),
        1000,
        3,
    );
    let (code, body) = submit(&g, &same);
    assert_eq!(
        (code, body["code"].as_str()),
        (503, Some("pool_full")),
        "{body}"
    );
    // A higher fee rate does, and the cheapest (the newest of equals) is dropped for it.
    let mut rich = Transaction::new(Network::Sandbox);
    rich.inputs = vec![c[4]];
    rich.fee = 10 * min_fee(1, 1);
    rich.outputs = vec![notch_protocol::Output {
        asset: native,
        amount: 1_000_000 - rich.fee,
        owner: public_key(&key(9)),
    }];
    rich.sign(&[&alice]).unwrap_or_else(|e| panic!("{e}"));
    submit_ok(&g, &rich);
    assert!(
        matches!(status(&g, &cheap[2].txid()), TxStatus::Dropped { ref reason } if reason.contains("evicted")),
        "{:?}",
        status(&g, &cheap[2].txid())
    );
    for t in &cheap[..2] {
        assert_eq!(status(&g, &t.txid()), TxStatus::InPool);
    }
    let delta: MempoolDelta = get(&g, "/v1/mempool?since=0");
    assert!(
        delta
            .changes
            .iter()
            .any(|c| c.kind == MempoolChangeKind::Removed && c.txid == cheap[2].txid().to_hex()),
        "the eviction is in the mempool delta: {delta:?}"
    );
    // Blocks take the highest fee rate first.
    let mined = mine(&g, 1);
    let blocks = verified_chain(&g);
    let top = &blocks[mined.tip.height as usize];
    assert_eq!(top.txs.first().map(|t| t.txid()), Some(rich.txid()));
    assert_eq!(top.txs.len(), 3);
}

both_backends!(sandbox_reorg_refuses_repeated_and_already_confirmed_includes);
fn sandbox_reorg_refuses_repeated_and_already_confirmed_includes(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::sandbox(&b, &dir.path().join("gw"));
    let alice = key(4);
    let coin = faucet(&g, &alice, "NOTE", 5_000);
    mine(&g, 3);
    let blocks = verified_chain(&g);
    let mint = blocks[1].txs[0].clone();
    assert_eq!(mint.txid(), coin.txid);
    let reorg = |txs: &[&Transaction]| {
        send(
            client()
                .post(g.url("/v1/sandbox/reorg"))
                .json(&ReorgRequest {
                    depth: 1,
                    include_txs: txs.iter().map(|t| hex::encode(t.encode())).collect(),
                }),
        )
    };
    // Confirmed at height 1, below the fork point (height 2): re-including it would bring
    // back its outputs once they are spent.
    let (code, body) = reorg(&[&mint]);
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("already on the chain"),
        "{body}"
    );
    let native = asset_id(&info(&g), "NOTE");
    let spend = pay(native, &alice, coin, 5_000, public_key(&key(9)), 1000, 0);
    let (code, body) = reorg(&[&spend, &spend]);
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("twice"),
        "{body}"
    );
    // Nothing changed; a valid reorg still works.
    assert_eq!(verified_chain(&g).len(), 4);
    let (code, body) = reorg(&[&spend]);
    assert_eq!(code, 200, "{body}");
    let chain = verified_chain(&g);
    let all: Vec<_> = chain
        .iter()
        .flat_map(|b| b.txs.iter().map(|t| t.txid()))
        .collect();
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(all.len(), unique.len(), "a txid appears twice on the chain");
}
