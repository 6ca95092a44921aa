//! kill -9 at several moments while transactions are submitted and blocks produced: after a
//! restart on the same data dir, every transaction that got a 2xx is still known (pool or
//! block), the chain verifies, and the gateway keeps working. Also: SIGTERM loses nothing.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use notch_protocol::api::*;
use notch_protocol::{AssetId, OutPoint, Transaction, TxId, public_key};

/// One chain of payments per worker: each spends the previous one's change.
#[derive(Clone)]
struct Lane {
    key: u8,
    coin: OutPoint,
    amount: u64,
    nonce: u64,
}

fn next_tx(native: AssetId, lane: &Lane) -> Transaction {
    let k = key(lane.key);
    pay(
        native,
        &k,
        lane.coin,
        lane.amount,
        public_key(&key(200)),
        1_000,
        lane.nonce,
    )
}

fn advance(lane: &mut Lane, tx: &Transaction) {
    lane.coin = OutPoint {
        txid: tx.txid(),
        index: 1,
    };
    lane.amount = tx.outputs[1].amount;
    lane.nonce += 1;
}

/// Runs workers until `stop`; returns every txid that was answered 2xx.
fn load(
    g: &Gateway,
    native: AssetId,
    lanes: &mut [Lane],
    stop: Arc<AtomicBool>,
    miner: bool,
) -> Vec<TxId> {
    let accepted = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for lane in lanes.iter_mut() {
            let stop = stop.clone();
            let accepted = accepted.clone();
            let url = g.url("/v1/tx");
            s.spawn(move || {
                let c = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .no_proxy()
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"));
                while !stop.load(Ordering::Relaxed) {
                    let tx = next_tx(native, lane);
                    let r = c
                        .post(&url)
                        .json(&SubmitTxRequest {
                            tx: hex::encode(tx.encode()),
                        })
                        .send();
                    match r {
                        Ok(resp) if resp.status().is_success() => {
                            accepted
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(tx.txid());
                            advance(lane, &tx);
                        }
                        Ok(resp) => panic!(
                            "refused: {} {}",
                            resp.status(),
                            resp.text().unwrap_or_default()
                        ),
                        Err(_) => break, // the gateway died under us
                    }
                }
            });
        }
        if miner {
            let stop = stop.clone();
            let url = g.url("/v1/sandbox/mine");
            s.spawn(move || {
                let c = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .no_proxy()
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"));
                while !stop.load(Ordering::Relaxed) {
                    if c.post(&url)
                        .json(&MineRequest { blocks: Some(1) })
                        .send()
                        .is_err()
                    {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(30));
                }
            });
        }
    });
    accepted.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// After a crash a lane's last submission may have been persisted without its answer
/// reaching us: follow the lane forward through the transactions the gateway knows.
fn resync(g: &Gateway, native: AssetId, lane: &mut Lane) {
    loop {
        let tx = next_tx(native, lane);
        let (code, _) = send(client().get(g.url(&format!("/v1/tx/{}", tx.txid()))));
        if code == 200 {
            advance(lane, &tx);
        } else {
            return;
        }
    }
}

fn check_all_known(g: &Gateway, accepted: &[TxId]) {
    for txid in accepted {
        let st = status(g, txid);
        assert!(
            matches!(
                st,
                TxStatus::InPool | TxStatus::Confirmed { .. } | TxStatus::Final { .. }
            ),
            "accepted transaction {txid} is now {st:?}"
        );
    }
}

both_backends!(kill_minus_nine_loses_no_accepted_transaction);
fn kill_minus_nine_loses_no_accepted_transaction(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("gw");
    let args = ["--sandbox", "--block-interval", "1"];
    let mut g = Gateway::spawn(&b, &data, &args);
    let native = asset_id(&info(&g), "NOTE");
    let mut lanes: Vec<Lane> = (0..4u8)
        .map(|i| {
            let k = key(10 + i);
            let coin = faucet(&g, &k, "NOTE", 10_000_000_000);
            Lane {
                key: 10 + i,
                coin,
                amount: 10_000_000_000,
                nonce: 0,
            }
        })
        .collect();
    let mut accepted: Vec<TxId> = lanes.iter().map(|l| l.coin.txid).collect();
    let started = Instant::now();
    for (round, delay_ms) in [150u64, 400, 50, 700].into_iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let killer = {
            let stop = stop.clone();
            let pid = g.child.id();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(delay_ms));
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                std::thread::sleep(Duration::from_millis(200));
                stop.store(true, Ordering::Relaxed);
            })
        };
        let got = load(&g, native, &mut lanes, stop, round % 2 == 0);
        let _ = killer.join();
        g.kill9();
        accepted.extend(got);
        g = Gateway::spawn(&b, &data, &args);
        check_all_known(&g, &accepted);
        for lane in lanes.iter_mut() {
            resync(&g, native, lane);
        }
        verified_chain(&g);
    }
    assert!(
        accepted.len() > 20,
        "only {} transactions were accepted",
        accepted.len()
    );
    // Still working: everything confirms.
    let r = submit_ok(&g, &next_tx(native, &lanes[0]));
    assert_eq!(r.status, TxStatus::InPool);
    accepted.push(TxId::from_hex(&r.txid).unwrap_or_else(|e| panic!("{e}")));
    for _ in 0..20 {
        mine(&g, 1);
        let pool: MempoolDelta = get(&g, "/v1/mempool?since=0&limit=1000");
        let mut live = std::collections::HashSet::new();
        for c in pool.changes {
            if c.kind == MempoolChangeKind::Added {
                live.insert(c.txid);
            } else {
                live.remove(&c.txid);
            }
        }
        if live.is_empty() {
            break;
        }
    }
    for txid in &accepted {
        assert!(
            matches!(
                status(&g, txid),
                TxStatus::Confirmed { .. } | TxStatus::Final { .. }
            ),
            "{txid} not confirmed"
        );
    }
    let chain = verified_chain(&g);
    let in_blocks: usize = chain.iter().map(|b| b.txs.len()).sum();
    assert!(in_blocks >= accepted.len());
    assert!(started.elapsed() < Duration::from_secs(120));
}

both_backends!(sigterm_finishes_accepted_work);
fn sigterm_finishes_accepted_work(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("gw");
    let args = ["--sandbox", "--block-interval", "0"];
    let mut g = Gateway::spawn(&b, &data, &args);
    let native = asset_id(&info(&g), "NOTE");
    let mut lanes: Vec<Lane> = (0..3u8)
        .map(|i| {
            let coin = faucet(&g, &key(30 + i), "NOTE", 10_000_000_000);
            Lane {
                key: 30 + i,
                coin,
                amount: 10_000_000_000,
                nonce: 0,
            }
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = std::thread::scope(|s| {
        let h = s.spawn(|| load(&g, native, &mut lanes, stop.clone(), false));
        std::thread::sleep(Duration::from_millis(300));
        let pid = g.child.id();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .map(|s| s.success());
        assert_eq!(ok.ok(), Some(true));
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap_or_default()
    });
    let exit = g.terminate_wait();
    assert!(exit.success(), "exit status {exit:?}");
    let g = Gateway::spawn(&b, &data, &args);
    assert!(!accepted.is_empty());
    check_all_known(&g, &accepted);
}

trait WaitExit {
    fn terminate_wait(&mut self) -> std::process::ExitStatus;
}

impl WaitExit for Gateway {
    fn terminate_wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
