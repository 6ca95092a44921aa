//! Soak: random reorganisations (depth 1..=20) of the REAL sandbox gateway's
//! chain, at random moments: between syncs, in the middle of a sync (the
//! proxy asks for the reorg just before forwarding the n-th request), and
//! while the wallet sends (just before its `POST /v1/tx` is forwarded;
//! sometimes the new branch holds the send, sometimes not). After every
//! round the wallet syncs to the gateway's tip and must equal the canonical
//! chain: confirmed balances are what the gateway holds for its addresses,
//! every transaction's state is the gateway's, no coin is spent by two of
//! its sends, and (with nothing pending) spendable + reserved = confirmed.
//!
//! `NOTCH_SOAK_ROUNDS` (default 5) and `NOTCH_SOAK_SEED` (default: from the
//! clock; printed) choose the run; `cargo xtask soak` runs 1000 rounds.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::collections::HashMap;
use std::time::Instant;

use notch_core::protocol::ed25519_dalek::SigningKey;
use notch_core::protocol::{Address, Network, OutPoint, PublicKey, Transaction};
use notch_core::{Recipient, TxState, Wallet};
use notch_tests::gateway::Sandbox;
use notch_tests::wallet::{
    Gw, ScheduledReorg, Tamper, TamperProxy, confirmed, gateway_view, new_wallet,
};

/// xorshift64*: small, seeded, good enough to pick actions.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

const MAX_DEPTH: u64 = 20;
/// Above `MAX_DEPTH`: every reorg of the soak is a legitimate one.
const FINALITY: &str = "30";

/// `base` units with `decimals` decimals, as the decimal string a person types.
fn decimal(base: u64, decimals: u32) -> String {
    let unit = 10u64.pow(decimals);
    format!(
        "{}.{:0width$}",
        base / unit,
        base % unit,
        width = decimals as usize
    )
}

struct Soak {
    gw: Gw,
    proxy: TamperProxy,
    wallet: Wallet,
    rng: Rng,
    seed: u64,
    round: u64,
    /// Inputs of the wallet's sends, by txid (they never change).
    inputs: HashMap<String, Vec<OutPoint>>,
    stranger: String,
    reorgs: u64,
    sends: u64,
}

impl Soak {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "round {} of seed {}: {what}\n(reproduce: NOTCH_SOAK_SEED={} NOTCH_SOAK_ROUNDS={} cargo test -p notch-tests --test wallet_reorg_soak -- --nocapture)",
            self.round,
            self.seed,
            self.seed,
            self.round + 1
        )
    }

    async fn depth(&mut self) -> u32 {
        let tip = self.gw.tip().await;
        self.rng.range(1, MAX_DEPTH).min(tip) as u32
    }

    /// One sync; transient trouble (the chain moving under it) is fine,
    /// anything else against an honest gateway is a bug.
    async fn sync_once(&self) -> bool {
        match self.wallet.sync().await {
            Ok(_) => true,
            Err(e) if e.is_transient() => {
                println!("  sync: transient: {e}");
                false
            }
            Err(e) => self.fail(&format!("sync against an honest gateway failed: {e:?}")),
        }
    }

    async fn faucet(&mut self) {
        let address = self.wallet.receive_address().await.unwrap();
        let (asset, amount) = if self.rng.chance(70) {
            ("NOTE", self.rng.range(1_000_000, 2_000_000_000))
        } else {
            ("EURT", self.rng.range(1, 50_000))
        };
        self.gw.faucet(&address, asset, amount).await;
    }

    /// A send of a random small amount (to a stranger or to itself); the
    /// result is whatever the wallet and gateway make of it.
    async fn send(&mut self) -> Option<String> {
        let to = if self.rng.chance(25) {
            self.wallet.receive_address().await.unwrap()
        } else {
            self.stranger.clone()
        };
        let (asset, amount) = if self.rng.chance(75) {
            ("NOTE", decimal(self.rng.range(100_000, 50_000_000), 8))
        } else {
            ("EURT", decimal(self.rng.range(1, 500), 2))
        };
        let mut recipients = vec![Recipient {
            address: to,
            amount,
            asset: Some(asset.into()),
        }];
        if self.rng.chance(20) {
            recipients.push(Recipient {
                address: self.stranger.clone(),
                amount: "0.001".into(),
                asset: Some("NOTE".into()),
            });
        }
        let proposal = match self.wallet.prepare_send(&recipients).await {
            Ok(p) => p,
            Err(e) => {
                println!("  send not prepared: {e}");
                return None;
            }
        };
        self.sends += 1;
        match self.wallet.confirm_send(&proposal).await {
            Ok(txid) => Some(txid),
            Err(e) => {
                println!("  send {}: {e}", proposal.txid);
                Some(proposal.txid)
            }
        }
    }

    /// Recent sends of the wallet the gateway knows, as hex.
    async fn own_recent(&self) -> Vec<String> {
        let mut out = Vec::new();
        let history = self.wallet.history(Default::default()).await.unwrap();
        for h in history.iter().filter(|h| h.own).take(4) {
            if matches!(h.state, TxState::InPool | TxState::Confirmed)
                && let Some(hex) = self.gw.tx_hex(&h.txid).await
            {
                out.push(hex);
            }
        }
        out
    }

    /// A reorg right now; sometimes the new branch holds some of the
    /// wallet's own recent sends.
    async fn reorg_now(&mut self) {
        let depth = self.depth().await;
        if depth == 0 {
            return;
        }
        let mut include = Vec::new();
        if self.rng.chance(50) {
            for hex in self.own_recent().await {
                if self.rng.chance(60) {
                    include.push(hex);
                }
            }
        }
        let (status, v) = self
            .gw
            .try_post(
                "/v1/sandbox/reorg",
                serde_json::json!({ "depth": depth, "include_txs": include }),
            )
            .await;
        let ok = (200..300).contains(&status)
            || (!include.is_empty() && {
                // Those sends do not fit the first new block (their inputs
                // came after the fork point): a plain reorg.
                let (status, _) = self
                    .gw
                    .try_post("/v1/sandbox/reorg", serde_json::json!({ "depth": depth }))
                    .await;
                (200..300).contains(&status)
            });
        if !ok {
            self.fail(&format!(
                "the sandbox refused a reorg of depth {depth}: {v}"
            ));
        }
        println!(
            "  reorg depth {depth}, including {} own sends",
            include.len()
        );
        self.reorgs += 1;
    }

    async fn round(&mut self) {
        let action = self.rng.below(6);
        match action {
            0 => {
                println!("  faucet, mine");
                self.faucet().await;
                let n = self.rng.below(3) as u32;
                if n > 0 {
                    self.gw.mine(n).await;
                }
            }
            1 => {
                println!("  send");
                self.send().await;
                if self.rng.chance(50) {
                    self.gw.mine(1).await;
                }
            }
            2 => {
                if self.rng.chance(50) {
                    self.sync_once().await;
                }
                self.reorg_now().await;
            }
            3 => {
                // Work for the sync, and a reorg at a random request in it.
                self.faucet().await;
                self.gw.mine(self.rng.range(1, 4) as u32).await;
                let depth = self.depth().await;
                let after = self.rng.below(8) as usize;
                println!("  reorg depth {depth} at request {after} of a sync");
                self.proxy.schedule_reorg(ScheduledReorg {
                    after,
                    depth,
                    on_submit: false,
                    include_submitted: false,
                });
                self.sync_once().await;
                if !self.proxy.reorg_pending() {
                    self.reorgs += 1;
                }
            }
            4 => {
                // A reorg just before the send reaches the gateway.
                let depth = self.depth().await;
                let include = self.rng.chance(50);
                println!("  reorg depth {depth} while sending (new branch holds it: {include})");
                self.proxy.schedule_reorg(ScheduledReorg {
                    after: 0,
                    depth,
                    on_submit: true,
                    include_submitted: include,
                });
                self.send().await;
                if !self.proxy.reorg_pending() {
                    self.reorgs += 1;
                }
            }
            _ => {
                println!("  mine, sync");
                self.gw.mine(self.rng.range(1, 3) as u32).await;
                self.sync_once().await;
            }
        }
    }

    /// Mines what is pending, syncs to the gateway's tip, checks.
    async fn settle(&mut self) {
        self.proxy.cancel_reorg();
        self.gw.mine(1).await;
        let tip = self.gw.tip().await;
        let mut reached = false;
        for _ in 0..10 {
            if self.sync_once().await
                && self.wallet.sync_status().await.unwrap().height == Some(tip)
            {
                reached = true;
                break;
            }
        }
        if !reached {
            self.fail(&format!(
                "the wallet did not reach the gateway's tip {tip}: {:?}",
                self.wallet.sync_status().await.unwrap().height
            ));
        }
        self.check().await;
    }

    async fn check(&mut self) {
        let w = &self.wallet;
        let mine = confirmed(w).await;
        let canonical = gateway_view(&self.gw, w).await;
        if mine != canonical {
            self.fail(&format!(
                "confirmed balances {mine:?} differ from the canonical chain's {canonical:?}"
            ));
        }
        for b in w.balances().await.unwrap() {
            let (c, p, s, out) = (
                u128::from(b.confirmed),
                u128::from(b.pending),
                u128::from(b.spendable),
                u128::from(b.pending_outgoing),
            );
            if p == 0 && s + out != c {
                self.fail(&format!(
                    "{}: spendable {s} + reserved {out} != confirmed {c}",
                    b.symbol
                ));
            }
            if p != 0 {
                self.fail(&format!(
                    "{}: {p} still pending after a block and a sync to the tip: {b:?}",
                    b.symbol
                ));
            }
        }
        // Every transaction's state is the gateway's (the newest ones each
        // round, all of them now and then).
        let history = w.history(Default::default()).await.unwrap();
        let all = self.round % 25 == 0;
        for h in history.iter().take(if all { usize::MAX } else { 12 }) {
            let state = self.gw.tx_state(&h.txid).await;
            if state != h.state.as_str() {
                self.fail(&format!(
                    "transaction {} is {} in the wallet, {state} at the gateway",
                    h.txid, h.state
                ));
            }
        }
        // No coin is spent by two of the wallet's sends still standing.
        let mut spent_by: HashMap<OutPoint, String> = HashMap::new();
        for h in history.iter().filter(|h| h.own && !h.state.is_failed()) {
            if !self.inputs.contains_key(&h.txid) {
                let Some(hex) = self.gw.tx_hex(&h.txid).await else {
                    self.fail(&format!("the gateway does not know send {}", h.txid));
                };
                let tx = Transaction::decode(&hex::decode(hex).unwrap()).unwrap();
                self.inputs.insert(h.txid.clone(), tx.inputs);
            }
            for input in &self.inputs[&h.txid] {
                if let Some(other) = spent_by.insert(*input, h.txid.clone()) {
                    self.fail(&format!(
                        "coin {}:{} is spent by two sends, {other} and {}",
                        input.txid.to_hex(),
                        input.index,
                        h.txid
                    ));
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_reorgs_leave_the_wallet_on_the_canonical_chain() {
    let rounds = env_u64("NOTCH_SOAK_ROUNDS").unwrap_or(5);
    let seed = env_u64("NOTCH_SOAK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    println!("soak: {rounds} rounds, NOTCH_SOAK_SEED={seed}");
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let sandbox = tokio::task::block_in_place(|| {
        Sandbox::start_with_args(
            dir.path().join("gw"),
            "127.0.0.1:0",
            &["--finality-depth", FINALITY],
        )
    });
    let gw = Gw::new(&sandbox.url);
    let proxy = TamperProxy::start(&gw.url, Tamper::None).await;
    let (wallet, _) = new_wallet(&dir.path().join("w"), &proxy.url).await;
    let stranger = Address::new(
        Network::Sandbox,
        PublicKey(
            SigningKey::from_bytes(&[0x5a; 32])
                .verifying_key()
                .to_bytes(),
        ),
    )
    .encode();
    let mut soak = Soak {
        gw,
        proxy,
        wallet,
        rng: Rng::new(seed),
        seed,
        round: 0,
        inputs: HashMap::new(),
        stranger,
        reorgs: 0,
        sends: 0,
    };
    // A few coins to send from.
    for _ in 0..4 {
        soak.faucet().await;
    }
    let a = soak.wallet.receive_address().await.unwrap();
    soak.gw.faucet(&a, "NOTE", 100_000_000_000).await;
    soak.gw.faucet(&a, "EURT", 1_000_000).await;
    soak.gw.mine(2).await;
    soak.settle().await;

    for round in 0..rounds {
        soak.round = round;
        println!(
            "round {round} (tip {}, {:.1} s)",
            soak.gw.tip().await,
            started.elapsed().as_secs_f64()
        );
        soak.round().await;
        soak.settle().await;
    }
    let history = soak.wallet.history(Default::default()).await.unwrap();
    println!(
        "soak: {rounds} rounds, seed {seed}: {} reorgs, {} sends, {} transactions, tip {}, {:.1} s",
        soak.reorgs,
        soak.sends,
        history.len(),
        soak.gw.tip().await,
        started.elapsed().as_secs_f64()
    );
}
