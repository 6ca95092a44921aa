//! Submit, confirm, finality, idempotency and transaction-rule refusals against the real
//! binary.

mod common;

use common::*;
use notch_protocol::api::*;
use notch_protocol::{OutPoint, Output, PublicKey, Transaction, TxId, public_key};

both_backends!(submit_confirm_and_reach_final);
fn submit_confirm_and_reach_final(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::sandbox(&b, &dir.path().join("gw"));
    let info = info(&g);
    assert_eq!(info.network, "sandbox");
    assert!(info.sandbox);
    assert_eq!(
        info.assets
            .iter()
            .map(|a| a.symbol.as_str())
            .collect::<Vec<_>>(),
        vec!["NOTE", "EURT", "USDT"]
    );
    assert!(info.assets[0].native);
    let native = asset_id(&info, "NOTE");
    let (alice, bob) = (key(1), key(2));

    let coin = faucet(&g, &alice, "NOTE", 1_000_000_000);
    assert_eq!(status(&g, &coin.txid), TxStatus::InPool);
    mine(&g, 1);
    assert!(matches!(
        status(&g, &coin.txid),
        TxStatus::Confirmed {
            confirmations: 1,
            block_height: 1,
            ..
        }
    ));

    let tx = pay(
        native,
        &alice,
        coin,
        1_000_000_000,
        public_key(&bob),
        250_000_000,
        0,
    );
    let r = submit_ok(&g, &tx);
    assert_eq!(r.txid, tx.txid().to_hex());
    assert_eq!(r.status, TxStatus::InPool);
    assert!(!r.duplicate);
    // Idempotent: same status, flagged duplicate, not an error.
    let again = submit_ok(&g, &tx);
    assert_eq!(
        (again.status.clone(), again.duplicate),
        (TxStatus::InPool, true)
    );
    // The mempool delta shows it.
    let delta: MempoolDelta = get(&g, "/v1/mempool?since=0");
    assert!(
        delta
            .changes
            .iter()
            .any(|c| c.txid == r.txid && c.kind == MempoolChangeKind::Added && c.hex.is_some())
    );
    let seq = delta.seq;

    let m = mine(&g, 1);
    let st = status(&g, &tx.txid());
    assert_eq!(
        st,
        TxStatus::Confirmed {
            confirmations: 1,
            block_height: 2,
            block_id: m.mined[0].hash.clone()
        }
    );
    let delta: MempoolDelta = get(&g, &format!("/v1/mempool?since={seq}"));
    assert_eq!(delta.changes.len(), 1, "{delta:?}");
    assert_eq!(delta.changes[0].kind, MempoolChangeKind::Removed);
    mine(&g, 4);
    assert!(matches!(
        status(&g, &tx.txid()),
        TxStatus::Confirmed {
            confirmations: 5,
            ..
        }
    ));
    mine(&g, 1);
    assert!(matches!(
        status(&g, &tx.txid()),
        TxStatus::Final {
            confirmations: 6,
            block_height: 2,
            ..
        }
    ));
    let again = submit_ok(&g, &tx);
    assert!(again.duplicate);
    assert!(matches!(again.status, TxStatus::Final { .. }));

    // The stored bytes are exactly what was sent.
    let full: TxResponse = get(&g, &format!("/v1/tx/{}", tx.txid()));
    assert_eq!(full.hex, Some(hex::encode(tx.encode())));

    // Bob's coin is visible, and the chain verifies end to end.
    let u: UtxosResponse = get(&g, &format!("/v1/address/{}/utxos", address(&bob)));
    assert_eq!(u.utxos.len(), 1);
    assert_eq!(
        (u.utxos[0].amount, u.utxos[0].txid.clone(), u.utxos[0].index),
        (250_000_000, tx.txid().to_hex(), 0)
    );
    let chain = verified_chain(&g);
    assert_eq!(chain.len(), 8);
    assert_eq!(chain[2].txs, vec![tx]);
}

both_backends!(transaction_rules_are_enforced);
fn transaction_rules_are_enforced(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::sandbox(&b, &dir.path().join("gw"));
    let info = info(&g);
    let native = asset_id(&info, "NOTE");
    let eur = asset_id(&info, "EURT");
    let (alice, bob, mallory) = (key(1), key(2), key(3));
    let coin = faucet(&g, &alice, "NOTE", 100_000_000);
    let eur_coin = faucet(&g, &alice, "EURT", 5_000);
    mine(&g, 1);

    let code = |r: &(u16, serde_json::Value)| r.1["code"].as_str().unwrap_or("").to_owned();

    // Double spend against the mempool.
    let t1 = pay(
        native,
        &alice,
        coin,
        100_000_000,
        public_key(&bob),
        1_000_000,
        1,
    );
    let t2 = pay(
        native,
        &alice,
        coin,
        100_000_000,
        public_key(&bob),
        2_000_000,
        2,
    );
    submit_ok(&g, &t1);
    let r = submit(&g, &t2);
    assert_eq!((r.0, code(&r)), (409, "double_spend".into()), "{}", r.1);
    // The refusal is remembered as the transaction's status.
    assert!(
        matches!(status(&g, &t2.txid()), TxStatus::Rejected { ref code, .. } if code == "double_spend")
    );
    // Double spend against the chain.
    mine(&g, 1);
    let r = submit(&g, &t2);
    assert_eq!((r.0, code(&r)), (409, "double_spend".into()), "{}", r.1);

    // Spending an output of an unconfirmed transaction is allowed (change of t1).
    let change = OutPoint {
        txid: t1.txid(),
        index: 1,
    };
    let change_amount = t1.outputs[1].amount;
    let t3 = pay(
        native,
        &alice,
        change,
        change_amount,
        public_key(&bob),
        1_000,
        3,
    );
    submit_ok(&g, &t3);

    // Unknown input.
    let ghost = OutPoint {
        txid: TxId([9; 32]),
        index: 0,
    };
    let r = submit(
        &g,
        &pay(
            native,
            &alice,
            ghost,
            10_000_000,
            public_key(&bob),
            1_000,
            4,
        ),
    );
    assert_eq!((r.0, code(&r)), (422, "unknown_input".into()), "{}", r.1);

    // Bad signature: Mallory signs for Alice's coin.
    let t3_change = OutPoint {
        txid: t3.txid(),
        index: 1,
    };
    let mut forged = pay(
        native,
        &alice,
        t3_change,
        t3.outputs[1].amount,
        public_key(&mallory),
        1_000,
        5,
    );
    forged.sign(&[&mallory]).unwrap_or_else(|e| panic!("{e}"));
    let r = submit(&g, &forged);
    assert_eq!((r.0, code(&r)), (422, "bad_signature".into()), "{}", r.1);

    // Unbalanced: outputs exceed the input.
    let mut tx = Transaction::new(notch_protocol::Network::Sandbox);
    tx.inputs = vec![eur_coin];
    tx.outputs = vec![Output {
        asset: eur,
        amount: 5_001,
        owner: public_key(&bob),
    }];
    tx.sign(&[&alice]).unwrap_or_else(|e| panic!("{e}"));
    let r = submit(&g, &tx);
    assert_eq!((r.0, code(&r)), (422, "unbalanced".into()), "{}", r.1);

    // Fee too low: an EURT payment that pays no NOTE fee.
    let mut tx = Transaction::new(notch_protocol::Network::Sandbox);
    tx.inputs = vec![eur_coin];
    tx.outputs = vec![Output {
        asset: eur,
        amount: 5_000,
        owner: public_key(&bob),
    }];
    tx.sign(&[&alice]).unwrap_or_else(|e| panic!("{e}"));
    let r = submit(&g, &tx);
    assert_eq!((r.0, code(&r)), (422, "fee_too_low".into()), "{}", r.1);

    // Minting without the issuer's key.
    let mut tx = Transaction::new(notch_protocol::Network::Sandbox);
    let issuer = PublicKey::from_hex(&info.assets[1].issuer).unwrap_or_else(|e| panic!("{e}"));
    tx.issuances = vec![notch_protocol::Issuance {
        issuer,
        label: "EURT".into(),
        mint: 1_000,
        burn: 0,
    }];
    tx.outputs = vec![Output {
        asset: eur,
        amount: 1_000,
        owner: public_key(&mallory),
    }];
    tx.sign(&[&mallory]).unwrap_or_else(|e| panic!("{e}"));
    let r = submit(&g, &tx);
    assert_eq!((r.0, code(&r)), (422, "bad_signature".into()), "{}", r.1);

    // Wrong network and garbage bytes.
    let mut tx = pay(
        native,
        &alice,
        t3_change,
        t3.outputs[1].amount,
        public_key(&bob),
        1_000,
        6,
    );
    tx.network = notch_protocol::Network::Main;
    tx.sign(&[&alice]).unwrap_or_else(|e| panic!("{e}"));
    let r = submit(&g, &tx);
    assert_eq!((r.0, code(&r)), (400, "wrong_network".into()), "{}", r.1);
    let mut bytes = pay(
        native,
        &alice,
        t3_change,
        t3.outputs[1].amount,
        public_key(&bob),
        1_000,
        7,
    )
    .encode();
    bytes.push(0);
    let r = send(client().post(g.url("/v1/tx")).json(&SubmitTxRequest {
        tx: hex::encode(bytes),
    }));
    assert_eq!((r.0, code(&r)), (400, "malformed".into()), "{}", r.1);

    // A transaction paying an asset the ledger does not know.
    let mut tx = pay(
        native,
        &alice,
        t3_change,
        t3.outputs[1].amount,
        public_key(&bob),
        1_000,
        8,
    );
    tx.outputs[0].asset = notch_protocol::AssetId([7; 32]);
    tx.outputs[0].amount = 1;
    tx.outputs[1].amount += 999;
    tx.sign(&[&alice]).unwrap_or_else(|e| panic!("{e}"));
    let r = submit(&g, &tx);
    assert_eq!(r.0 / 100, 4, "{}", r.1);

    // Still healthy, and the valid ones confirm.
    mine(&g, 1);
    assert!(matches!(status(&g, &t3.txid()), TxStatus::Confirmed { .. }));
    verified_chain(&g);
}

/// The PostgreSQL variants are what they say: a gateway given `--database` keeps its mirror
/// in that database, not in a SQLite file in its data dir (which keeps the keys and
/// `network.json`), and finds its chain there again after a restart. Only PostgreSQL: it is
/// about the database the harness hands out.
#[test]
fn a_gateway_on_postgres_keeps_its_mirror_in_its_database() {
    let Some(b) = Backend::postgres() else {
        return;
    };
    let db = b.database().unwrap_or_else(|| panic!("not a database"));
    let tables = "SELECT count(*) FROM information_schema.tables \
                  WHERE table_schema NOT IN ('pg_catalog', 'information_schema')";
    assert_eq!(db.psql(tables), "0", "a fresh database is empty");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("gw");
    let mut g = Gateway::sandbox(&b, &data);
    let coin = faucet(&g, &key(1), "NOTE", 1_000);
    mine(&g, 1);
    assert_ne!(
        db.psql(tables),
        "0",
        "the gateway made no table in {}",
        db.name
    );
    assert!(data.join("network.json").is_file());
    let files: Vec<String> = std::fs::read_dir(&data)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !files.iter().any(|f| f.contains("sqlite")),
        "a SQLite file in the data dir: {files:?}"
    );
    assert!(g.terminate().success());
    let g = Gateway::sandbox(&b, &data);
    assert_eq!(info(&g).tip.height, 1);
    assert!(matches!(
        status(&g, &coin.txid),
        TxStatus::Confirmed {
            block_height: 1,
            ..
        }
    ));
}
