//! The history the store keeps as it applies blocks, pool changes and
//! sends, read in pages (`Wallet::history_page`), against the REAL sandbox
//! gateway: pages neither skip nor repeat a row while payments arrive,
//! filters and search, and the kept tables equal a full recomputation
//! after sends, a reorg and a restore.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::collections::HashSet;

use notch_core::store::Direction;
use notch_core::wallet::HistoryPageFilter;
use notch_core::{Recipient, TxState};
use notch_tests::gateway::Sandbox;
use notch_tests::wallet::{Gw, assert_history_consistent, new_wallet, restore_wallet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_follow_payments_sends_and_a_reorg() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        tokio::task::block_in_place(|| Sandbox::start(dir.path().join("gw"), "127.0.0.1:0"));
    let gw = Gw::new(&sandbox.url);
    let (alice, phrase) = new_wallet(&dir.path().join("a"), &gw.url).await;
    let (bob, _) = new_wallet(&dir.path().join("b"), &gw.url).await;
    let a0 = alice.receive_address().await.unwrap();
    for _ in 0..4 {
        gw.faucet(&a0, "NOTE", 100_000_000).await;
    }
    gw.faucet(&a0, "EURT", 500).await;
    gw.mine(1).await;
    alice.sync().await.unwrap();
    assert_history_consistent(&alice, &dir.path().join("a"), 2).await;

    // A send: listed at once (queued / in the pool), with its fee and
    // the address it pays.
    let to = bob.receive_address().await.unwrap();
    let p = alice
        .prepare_send(&[Recipient {
            address: to.clone(),
            amount: "1.5".into(),
            asset: None,
        }])
        .await
        .unwrap();
    let txid = alice.confirm_send(&p).await.unwrap();
    assert_history_consistent(&alice, &dir.path().join("a"), 2).await;
    let out = alice
        .history_page(
            HistoryPageFilter {
                direction: Some(Direction::Out),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(out.total, 1);
    assert_eq!(out.rows[0].txid, txid);
    assert_eq!(out.rows[0].fee, Some(p.fee));
    assert_eq!(out.rows[0].counterparties, vec![to.clone()]);
    assert!(!out.rows[0].state.is_in_block());

    gw.mine(2).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    assert_history_consistent(&alice, &dir.path().join("a"), 3).await;
    assert_history_consistent(&bob, &dir.path().join("b"), 3).await;

    // Filters and search.
    let page = |filter: HistoryPageFilter| {
        let alice = &alice;
        async move { alice.history_page(filter, None, 0).await.unwrap() }
    };
    assert_eq!(page(Default::default()).await.total, 6);
    let eurt = page(HistoryPageFilter {
        asset: Some("EURT".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(eurt.total, 1);
    assert_eq!(eurt.rows[0].amounts[0].received, 500);
    let incoming = page(HistoryPageFilter {
        direction: Some(Direction::In),
        ..Default::default()
    })
    .await;
    assert_eq!(incoming.total, 5);
    let by_address = page(HistoryPageFilter {
        search: Some(to.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_address.rows.len(), 1);
    assert_eq!(by_address.rows[0].txid, txid);
    let by_prefix = page(HistoryPageFilter {
        search: Some(txid[..12].to_uppercase()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_prefix.rows.len(), 1);
    let confirmed = page(HistoryPageFilter {
        states: vec![TxState::Confirmed],
        ..Default::default()
    })
    .await;
    assert_eq!(confirmed.total, 6);
    let since = out.rows[0].time + 100_000;
    assert_eq!(
        page(HistoryPageFilter {
            since: Some(since),
            ..Default::default()
        })
        .await
        .total,
        0
    );

    // Paging while payments arrive: no row twice, none of the first ones
    // missing.
    let first = alice
        .history_page(Default::default(), None, 2)
        .await
        .unwrap();
    let mut seen: Vec<String> = first.rows.iter().map(|r| r.txid.clone()).collect();
    let mut cursor = first.next_cursor;
    while let Some(c) = cursor {
        gw.faucet(&a0, "NOTE", 1_000).await;
        gw.mine(1).await;
        alice.sync().await.unwrap();
        let next = alice
            .history_page(Default::default(), Some(c), 2)
            .await
            .unwrap();
        seen.extend(next.rows.iter().map(|r| r.txid.clone()));
        cursor = next.next_cursor;
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "{seen:?}");
    assert_eq!(seen.len(), 6);

    // A reorg takes the send and the newest payments out of their blocks.
    let mined_at = alice.tx_status(&txid).await.unwrap().block_height.unwrap();
    let depth = gw.tip().await - mined_at + 1;
    let r = gw.reorg(u32::try_from(depth).unwrap()).await;
    assert!(
        r["fork_point"]["height"].as_u64().unwrap() < mined_at,
        "{r}"
    );
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    assert_eq!(alice.tx_status(&txid).await.unwrap().state, TxState::InPool);
    let pending = alice
        .history_page(
            HistoryPageFilter {
                states: vec![TxState::InPool],
                ..Default::default()
            },
            None,
            0,
        )
        .await
        .unwrap();
    assert!(pending.rows.iter().any(|r| r.txid == txid), "{pending:?}");
    assert!(pending.rows.iter().all(|r| r.block_height.is_none()));
    assert_history_consistent(&alice, &dir.path().join("a"), 2).await;
    assert_history_consistent(&bob, &dir.path().join("b"), 2).await;
    gw.mine(1).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    assert_history_consistent(&alice, &dir.path().join("a"), 4).await;
    assert_history_consistent(&bob, &dir.path().join("b"), 4).await;
    assert_eq!(
        alice.tx_status(&txid).await.unwrap().state,
        TxState::Confirmed
    );

    // A restore from the phrase lists the same transactions.
    let restored = restore_wallet(&dir.path().join("r"), &gw.url, &phrase).await;
    restored.sync().await.unwrap();
    assert_history_consistent(&restored, &dir.path().join("r"), 3).await;
    let all = |w: &notch_core::Wallet| {
        let w = w.clone();
        async move {
            let mut ids: Vec<String> = w
                .history_page(Default::default(), None, 0)
                .await
                .unwrap()
                .rows
                .into_iter()
                .map(|r| r.txid)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(all(&restored).await, all(&alice).await);
}

/// Home's balances are read from the table the store keeps
/// (`Wallet::balances`) and equal, asset by asset and part by part, the
/// sum over every output (`Wallet::balances_summed`, the computation Home
/// used before): after payments in the pool and in blocks, a send with its
/// locked coins and change (two assets), the receiver's side, a reorg that
/// takes the send and payments out of their blocks, and their return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_balances_from_the_kept_table_equal_the_sum_of_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        tokio::task::block_in_place(|| Sandbox::start(dir.path().join("gw"), "127.0.0.1:0"));
    let gw = Gw::new(&sandbox.url);
    let (alice, _) = new_wallet(&dir.path().join("a"), &gw.url).await;
    let (bob, _) = new_wallet(&dir.path().join("b"), &gw.url).await;
    let same = |w: &notch_core::Wallet| {
        let w = w.clone();
        async move {
            let kept = w.balances().await.unwrap();
            let summed = w.balances_summed().await.unwrap();
            assert_eq!(kept, summed);
            kept
        }
    };
    let of = |b: &[notch_core::wallet::Balance], symbol: &str| {
        let b = b.iter().find(|b| b.symbol == symbol).unwrap();
        (b.confirmed, b.pending, b.pending_outgoing, b.spendable)
    };
    // Every asset the gateway names, before anything is held.
    alice.sync().await.unwrap();
    let b = same(&alice).await;
    assert_eq!(of(&b, "NOTE"), (0, 0, 0, 0));

    let a0 = alice.receive_address().await.unwrap();
    gw.faucet(&a0, "NOTE", 300_000_000).await;
    gw.faucet(&a0, "NOTE", 200_000_000).await;
    gw.faucet(&a0, "EURT", 10_000).await;
    alice.sync().await.unwrap();
    let b = same(&alice).await;
    assert_eq!(of(&b, "NOTE"), (0, 500_000_000, 0, 0), "in the pool");
    gw.mine(1).await;
    gw.faucet(&a0, "NOTE", 7_000).await;
    alice.sync().await.unwrap();
    let b = same(&alice).await;
    assert_eq!(of(&b, "NOTE"), (500_000_000, 7_000, 0, 500_000_000));

    // A send of both assets: coins locked, change pending and spendable.
    let to = bob.receive_address().await.unwrap();
    let p = alice
        .prepare_send(&[
            Recipient {
                address: to.clone(),
                amount: "1.5".into(),
                asset: None,
            },
            Recipient {
                address: to.clone(),
                amount: "12.34".into(),
                asset: Some("EURT".into()),
            },
        ])
        .await
        .unwrap();
    let txid = alice.confirm_send(&p).await.unwrap();
    let b = same(&alice).await;
    let (_, _, outgoing, _) = of(&b, "NOTE");
    assert!(outgoing > 0, "{b:?}");
    assert_eq!(
        of(&b, "EURT"),
        (10_000, 10_000 - 1_234, 10_000, 10_000 - 1_234)
    );
    bob.sync().await.unwrap();
    let b = same(&bob).await;
    assert_eq!(of(&b, "EURT"), (0, 1_234, 0, 0));

    gw.mine(2).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    let b = same(&alice).await;
    assert_eq!(of(&b, "EURT"), (10_000 - 1_234, 0, 0, 10_000 - 1_234));
    assert_eq!(of(&same(&bob).await, "EURT"), (1_234, 0, 0, 1_234));

    // A reorg takes the send (and the last payment) out of their blocks.
    let mined_at = alice.tx_status(&txid).await.unwrap().block_height.unwrap();
    let depth = gw.tip().await - mined_at + 1;
    gw.reorg(u32::try_from(depth).unwrap()).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    assert_eq!(alice.tx_status(&txid).await.unwrap().state, TxState::InPool);
    let b = same(&alice).await;
    assert_eq!(
        of(&b, "EURT"),
        (10_000, 10_000 - 1_234, 10_000, 10_000 - 1_234)
    );
    let b = same(&bob).await;
    assert_eq!(of(&b, "EURT"), (0, 1_234, 0, 0));
    gw.mine(1).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    assert_eq!(
        of(&same(&alice).await, "EURT"),
        (10_000 - 1_234, 0, 0, 10_000 - 1_234)
    );
    assert_eq!(of(&same(&bob).await, "EURT"), (1_234, 0, 0, 1_234));
    assert_history_consistent(&alice, &dir.path().join("a"), 3).await;
}

/// A transaction's bytes stay in the wallet file only while the wallet may
/// have to hand them to the gateway again: its own sends until they are
/// final. Payments in drop them at once, a send once it is final; what the
/// history lists of them (counterparties, fee, amounts, search by address)
/// stays the same. (`assert_history_consistent` checks the same rule for
/// every transaction, through the store's `check_history`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_are_kept_only_for_own_sends_until_final() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = tokio::task::block_in_place(|| {
        Sandbox::start_with_args(
            dir.path().join("gw"),
            "127.0.0.1:0",
            &["--finality-depth", "3"],
        )
    });
    let gw = Gw::new(&sandbox.url);
    let (alice_dir, bob_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (alice, _) = new_wallet(&alice_dir, &gw.url).await;
    let (bob, _) = new_wallet(&bob_dir, &gw.url).await;
    let a0 = alice.receive_address().await.unwrap();
    let b0 = bob.receive_address().await.unwrap();
    gw.faucet(&a0, "NOTE", 100_000_000).await;
    gw.faucet(&a0, "NOTE", 100_000_000).await;
    gw.faucet(&b0, "NOTE", 100_000_000).await;
    gw.mine(1).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    let send = |from: &notch_core::Wallet, to: String, amount: &str| {
        let (from, amount) = (from.clone(), amount.to_owned());
        async move {
            let p = from
                .prepare_send(&[Recipient {
                    address: to,
                    amount,
                    asset: None,
                }])
                .await
                .unwrap();
            from.confirm_send(&p).await.unwrap()
        }
    };
    // Alice pays Bob; Bob pays Alice (with change back to himself: a
    // counterparty of the payment in).
    let to_bob = bob.receive_address().await.unwrap();
    let alice_send = send(&alice, to_bob.clone(), "0.25").await;
    let to_alice = alice.receive_address().await.unwrap();
    let bob_send = send(&bob, to_alice.clone(), "0.1").await;
    assert_eq!(kept_bytes(&alice_dir), vec![alice_send.clone()]);
    gw.mine(1).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    assert_history_consistent(&alice, &alice_dir, 2).await;
    assert_history_consistent(&bob, &bob_dir, 2).await;
    assert_eq!(
        alice.tx_status(&alice_send).await.unwrap().state,
        TxState::Confirmed
    );
    // Confirmed is not final: a reorg could still send it back.
    assert_eq!(kept_bytes(&alice_dir), vec![alice_send.clone()]);
    assert_eq!(kept_bytes(&bob_dir), vec![bob_send.clone()]);
    let listed = |w: &notch_core::Wallet| {
        let w = w.clone();
        async move {
            let mut rows: Vec<_> = w
                .history_page(Default::default(), None, 0)
                .await
                .unwrap()
                .rows
                .into_iter()
                .map(|r| (r.txid, r.direction, r.fee, r.amounts, r.counterparties))
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            rows
        }
    };
    let before = listed(&alice).await;
    let payment_in = before.iter().find(|r| r.0 == bob_send).unwrap();
    assert_eq!(payment_in.1, "in");
    assert_eq!(payment_in.4.len(), 1, "Bob's change: {payment_in:?}");
    let bob_change = payment_in.4[0].clone();
    assert_ne!(bob_change, b0);

    // Both sends go final; a new send of Alice's stays unresolved.
    gw.mine(3).await;
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    assert_eq!(
        alice.tx_status(&alice_send).await.unwrap().state,
        TxState::Final
    );
    let pending = send(&alice, to_bob.clone(), "0.01").await;
    assert_eq!(kept_bytes(&alice_dir), vec![pending.clone()]);
    assert!(kept_bytes(&bob_dir).is_empty());
    assert_history_consistent(&alice, &alice_dir, 3).await;
    assert_history_consistent(&bob, &bob_dir, 3).await;
    let after: Vec<_> = listed(&alice)
        .await
        .into_iter()
        .filter(|r| r.0 != pending)
        .collect();
    assert_eq!(after, before);
    for (address, txid) in [(&to_bob, &alice_send), (&bob_change, &bob_send)] {
        let found = alice
            .history_page(
                HistoryPageFilter {
                    search: Some(address.clone()),
                    ..Default::default()
                },
                None,
                0,
            )
            .await
            .unwrap();
        assert!(found.rows.iter().any(|r| &r.txid == txid), "{address}");
    }
}

/// The transactions whose bytes the wallet file in `dir` holds (hex txids).
fn kept_bytes(dir: &std::path::Path) -> Vec<String> {
    let store = notch_core::store::Store::open(dir.join("wallet.sqlite")).unwrap();
    let mut kept: Vec<String> = store
        .all_transactions()
        .unwrap()
        .into_iter()
        .filter(|t| t.raw.is_some())
        .map(|t| hex::encode(t.txid))
        .collect();
    kept.sort();
    kept
}
