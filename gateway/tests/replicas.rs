//! Submissions on every replica (ADR 8, phase 2), PostgreSQL only: real gateway processes on
//! one database of the suite's throwaway cluster. A read-only replica takes a submission,
//! queues it for the producer and answers with the producer's decision (the same answers as
//! a direct submission); the transaction is in the producer's next block and its events
//! reach the stream clients of another replica; a double spend sent through two replicas at
//! once is accepted once; submissions queued while no producer runs get 503 after the
//! replica's wait, stay queued, and are decided when a standby takes the lease.

// Not run per backend: the harness's `both_backends!` goes unused.
#[allow(unused_macros, unused_imports)]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use notch_protocol::api::*;
use notch_protocol::{OutPoint, Transaction, public_key};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// The producer (the sandbox writer, blocks on demand) on a fresh database, and its URL.
fn producer(dir: &Path) -> Option<(Backend, Gateway, String)> {
    let backend = Backend::postgres()?;
    let url = backend
        .database()
        .map(|d| d.url.clone())
        .unwrap_or_else(|| panic!("no database"));
    let writer = Gateway::spawn(
        &backend,
        &dir.join("writer"),
        &["--sandbox", "--block-interval", "0", "--no-relay"],
    );
    Some((backend, writer, url))
}

/// A `--read-only` replica on `url` (no keys), with extra flags.
fn replica(dir: &Path, name: &str, url: &str, extra: &[&str]) -> Gateway {
    let mut args = vec![
        "--sandbox",
        "--read-only",
        "--block-interval",
        "0",
        "--database",
        url,
    ];
    args.extend_from_slice(extra);
    Gateway::spawn(&Backend::Sqlite, &dir.join(name), &args)
}

/// A `--standby` on `url` holding the keys of the writer whose data dir is `writer_dir`.
fn standby(dir: &Path, name: &str, url: &str, writer_dir: &Path) -> Gateway {
    let sdir = dir.join(name);
    std::fs::create_dir_all(&sdir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(
        writer_dir.join("sandbox-keys.json"),
        sdir.join("sandbox-keys.json"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Gateway::spawn(
        &Backend::Sqlite,
        &sdir,
        &[
            "--sandbox",
            "--standby",
            "--block-interval",
            "0",
            "--database",
            url,
        ],
    )
}

fn submit_batch(g: &Gateway, txs: &[String]) -> (u16, Value) {
    send(
        client()
            .post(g.url("/v1/txs"))
            .json(&serde_json::json!({ "txs": txs })),
    )
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next(ws: &mut Ws) -> StreamMessage {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .unwrap_or_else(|_| panic!("no stream message within 20 s"));
        match item {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("bad stream message {t}: {e}"));
            }
            Some(Ok(_)) => continue,
            other => panic!("stream ended: {other:?}"),
        }
    }
}

/// A stream client of `g` subscribed to `addr`.
async fn subscribed(g: &Gateway, addr: &str) -> Ws {
    let url = format!("{}/v1/stream", g.base.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    assert!(matches!(next(&mut ws).await, StreamMessage::Hello { .. }));
    let msg = ClientMessage::Subscribe {
        addresses: vec![addr.to_owned()],
    };
    let text = serde_json::to_string(&msg).unwrap_or_default();
    ws.send(Message::Text(text.into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A replica learns of the producer's blocks by polling the database, so a `Tip` for a
    // block mined just before this client connected may come between `Hello` and the
    // answer to the subscription; anything else there is a fault.
    loop {
        match next(&mut ws).await {
            StreamMessage::Subscribed { .. } => return ws,
            StreamMessage::Tip { .. } => continue,
            other => panic!("expected subscribed, got {other:?}"),
        }
    }
}

/// The first `address_tx` event about `txid` whose status is `want`.
async fn heard(ws: &mut Ws, txid: &str, want: fn(&TxStatus) -> bool) {
    loop {
        if let StreamMessage::AddressTx {
            txid: t, status, ..
        } = next(ws).await
            && t == txid
            && want(&status)
        {
            return;
        }
    }
}

#[test]
fn a_read_only_replica_takes_submissions_for_the_producer() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let Some((_backend, writer, url)) = producer(tmp.path()) else {
        return;
    };
    let r1 = replica(tmp.path(), "r1", &url, &[]);
    let r2 = replica(tmp.path(), "r2", &url, &[]);
    let native = asset_id(&info(&writer), "NOTE");
    let (k, to) = (key(7), key(8));
    let coins: Vec<OutPoint> = (0..21)
        .map(|_| faucet(&writer, &k, "NOTE", 1_000_000))
        .collect();
    mine(&writer, 1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ws = rt.block_on(subscribed(&r2, &address(&to)));

    let tx = pay(native, &k, coins[0], 1_000_000, public_key(&to), 1_000, 1);
    let txid = tx.txid().to_hex();
    let first = submit_ok(&r1, &tx);
    assert_eq!(
        (first.txid.as_str(), &first.status, first.duplicate),
        (txid.as_str(), &TxStatus::InPool, false),
        "the replica's answer is the writer's"
    );
    // Idempotent per txid, on every replica and on the writer.
    for g in [&r1, &r2, &writer] {
        let again = submit_ok(g, &tx);
        assert!(
            again.duplicate && again.status == TxStatus::InPool,
            "{again:?}"
        );
    }
    // The stream clients of another replica hear of it.
    rt.block_on(heard(&mut ws, &txid, |s| *s == TxStatus::InPool));
    let mined = mine(&writer, 1);
    assert!(matches!(
        status(&r1, &tx.txid()),
        TxStatus::Confirmed { block_height, .. } if block_height == mined.tip.height
    ));
    rt.block_on(heard(&mut ws, &txid, |s| {
        matches!(s, TxStatus::Confirmed { .. })
    }));

    // A refusal only the producer can make comes back as it: the spent coin again, now
    // in a block.
    let again = pay(native, &k, coins[0], 1_000_000, public_key(&to), 2_000, 2);
    let (code, body) = submit(&r1, &again);
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("double_spend")),
        "{body}"
    );
    // A child of a pool transaction (its parent only in the database's pool), and the
    // batch endpoint's results per transaction.
    let parent = pay(native, &k, coins[1], 1_000_000, public_key(&k), 500_000, 3);
    let child = pay(
        native,
        &k,
        OutPoint {
            txid: parent.txid(),
            index: 0,
        },
        500_000,
        public_key(&to),
        1_000,
        4,
    );
    assert!(!submit_ok(&r2, &parent).duplicate);
    let (code, body) = submit_batch(
        &r1,
        &[
            hex::encode(child.encode()),
            "00".into(),
            hex::encode(tx.encode()),
            hex::encode(again.encode()),
        ],
    );
    assert_eq!(code, 200, "{body}");
    let results: SubmitBatchResponse = parse(body);
    let r = &results.results;
    assert!(
        matches!(&r[0], SubmitBatchResult::Ok(a) if !a.duplicate && a.status == TxStatus::InPool),
        "{r:?}"
    );
    assert!(
        matches!(&r[1], SubmitBatchResult::Err { error, .. } if error.code == "malformed"),
        "{r:?}"
    );
    assert!(
        matches!(&r[2], SubmitBatchResult::Ok(a) if a.duplicate && matches!(a.status, TxStatus::Confirmed { .. })),
        "{r:?}"
    );
    assert!(
        matches!(&r[3], SubmitBatchResult::Err { error, .. } if error.code == "double_spend"),
        "{r:?}"
    );
    let mined = mine(&writer, 1);
    for t in [&parent, &child] {
        assert!(matches!(
            status(&r2, &t.txid()),
            TxStatus::Confirmed { block_height, .. } if block_height == mined.tip.height
        ));
    }

    // The round trip of a submission through a replica and directly, one at a time.
    let (mut direct, mut queued) = (Vec::new(), Vec::new());
    for (n, coin) in coins[2..].iter().enumerate() {
        let t = pay(
            native,
            &k,
            *coin,
            1_000_000,
            public_key(&to),
            1_000,
            100 + n as u64,
        );
        let g = if n % 2 == 0 { &writer } else { &r1 };
        let started = Instant::now();
        assert!(!submit_ok(g, &t).duplicate);
        let took = started.elapsed();
        if n % 2 == 0 {
            direct.push(took)
        } else {
            queued.push(took)
        }
    }
    eprintln!(
        "submit round trip, median of {}: direct to the producer {:?}, through a read-only replica {:?}",
        direct.len(),
        median(direct),
        median(queued)
    );
    mine(&writer, 1);
}

/// Two transactions spending one coin, sent at the same moment through two replicas:
/// exactly one is accepted, the other refused as a double spend; five times.
#[test]
fn a_double_spend_through_two_replicas_is_accepted_once() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let Some((_backend, writer, url)) = producer(tmp.path()) else {
        return;
    };
    let r1 = replica(tmp.path(), "r1", &url, &[]);
    let r2 = replica(tmp.path(), "r2", &url, &[]);
    let native = asset_id(&info(&writer), "NOTE");
    let k = key(9);
    let coins: Vec<OutPoint> = (0..5)
        .map(|_| faucet(&writer, &k, "NOTE", 1_000_000))
        .collect();
    mine(&writer, 1);
    let mut winners = Vec::new();
    for (n, coin) in coins.iter().enumerate() {
        let a = pay(
            native,
            &k,
            *coin,
            1_000_000,
            public_key(&key(10)),
            1_000,
            2 * n as u64,
        );
        let b = pay(
            native,
            &k,
            *coin,
            1_000_000,
            public_key(&key(11)),
            2_000,
            2 * n as u64 + 1,
        );
        let barrier = std::sync::Barrier::new(2);
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| {
                barrier.wait();
                submit(&r1, &a)
            });
            let tb = s.spawn(|| {
                barrier.wait();
                submit(&r2, &b)
            });
            (
                ta.join().unwrap_or_else(|_| panic!("submitter panicked")),
                tb.join().unwrap_or_else(|_| panic!("submitter panicked")),
            )
        });
        let outcome = [(ra.0, &a), (rb.0, &b)];
        let accepted: Vec<&Transaction> = outcome
            .iter()
            .filter(|(code, _)| *code == 200)
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(accepted.len(), 1, "round {n}: {ra:?} {rb:?}");
        let refused = if ra.0 == 200 { &rb.1 } else { &ra.1 };
        assert_eq!(refused["code"], "double_spend", "round {n}: {refused}");
        winners.push(accepted[0].txid());
    }
    let mined = mine(&writer, 1);
    let block = verified_chain(&r1)
        .pop()
        .unwrap_or_else(|| panic!("no chain"));
    assert_eq!(block.header.height, mined.tip.height);
    let mut in_block: Vec<_> = block.txs.iter().map(Transaction::txid).collect();
    in_block.sort();
    winners.sort();
    assert_eq!(in_block, winners);
}

/// With no producer: a replica's submission gets 503 after its wait and stays queued;
/// one submitted meanwhile through a replica that waits longer is answered once a standby
/// takes the lease, and so is the first (resubmitted: a duplicate). Nothing stays queued.
#[test]
fn submissions_queued_while_no_producer_runs_are_decided_by_the_next() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let Some((backend, mut writer, url)) = producer(tmp.path()) else {
        return;
    };
    let db = backend.database().unwrap_or_else(|| panic!("no database"));
    let short = replica(tmp.path(), "short", &url, &["--submit-wait-secs", "2"]);
    let long = replica(tmp.path(), "long", &url, &["--submit-wait-secs", "30"]);
    let native = asset_id(&info(&writer), "NOTE");
    let k = key(12);
    let coins: Vec<OutPoint> = (0..2)
        .map(|_| faucet(&writer, &k, "NOTE", 1_000_000))
        .collect();
    mine(&writer, 1);
    writer.kill9();
    let a = pay(
        native,
        &k,
        coins[0],
        1_000_000,
        public_key(&key(13)),
        1_000,
        1,
    );
    let b = pay(
        native,
        &k,
        coins[1],
        1_000_000,
        public_key(&key(13)),
        1_000,
        2,
    );
    let started = Instant::now();
    let (code, body) = submit(&short, &a);
    let waited = started.elapsed();
    assert_eq!(
        (code, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert_api_error(code, &body, "no producer");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("queued") && message.contains("again is safe"),
        "{message}"
    );
    assert!(
        waited >= Duration::from_secs(2),
        "answered after {waited:?}"
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM submissions WHERE status IS NULL"),
        "1"
    );
    std::thread::scope(|s| {
        let waiting = s.spawn(|| submit(&long, &b));
        std::thread::sleep(Duration::from_millis(500));
        let standby = standby(tmp.path(), "standby", &url, &tmp.path().join("writer"));
        let (code, body) = waiting
            .join()
            .unwrap_or_else(|_| panic!("submitter panicked"));
        assert_eq!(code, 200, "{body}");
        let answer: SubmitTxResponse = parse(body);
        assert!(!answer.duplicate && answer.status == TxStatus::InPool);
        // The first, nobody waiting for it any more, was decided too.
        wait_for(
            "the first queued submission decided",
            Duration::from_secs(10),
            || status(&standby, &a.txid()) == TxStatus::InPool,
        );
        let again = submit_ok(&short, &a);
        assert!(again.duplicate, "{again:?}");
        let mined = mine(&standby, 1);
        for t in [&a, &b] {
            assert!(matches!(
                status(&long, &t.txid()),
                TxStatus::Confirmed { block_height, .. } if block_height == mined.tip.height
            ));
        }
    });
    assert_eq!(
        db.psql("SELECT count(*) FROM submissions WHERE status IS NULL"),
        "0"
    );
}
