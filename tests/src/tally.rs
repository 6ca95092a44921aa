//! Shared setup of the two-wallet tally tests (`tally_open.rs`, `tally_chits.rs`, `tally_close.rs`): the
//! wallets need a gateway URL but never call it; their agents run on loopback with short
//! timeouts and retries so that offline partners are noticed, and retried, quickly.

use std::future::Future;
use std::time::{Duration, Instant};

use notch_core::peer::PeerConfig;
use notch_core::{AgentConfig, AgentHandle, ChitInfo, RetryPolicy, Wallet};

/// Nobody answers here; wallets are made offline.
pub const NO_GATEWAY: &str = "http://127.0.0.1:1";

/// An agent listening on `listen`, with test-sized timeouts and retries.
pub fn agent_config(listen: &str) -> AgentConfig {
    AgentConfig {
        listen: listen.to_owned(),
        peer: PeerConfig {
            read_timeout: Some(Duration::from_secs(3)),
            ..PeerConfig::default()
        },
        retry: RetryPolicy {
            first: Duration::from_millis(100),
            max: Duration::from_millis(400),
        },
        poll: Duration::from_millis(100),
        reply_timeout: Duration::from_secs(5),
        linger: Duration::from_millis(300),
        ..AgentConfig::default()
    }
}

/// Names the two wallets of a tally test in the certificates of their
/// tallies: CHIP user `alice` ("Alice") and `bob` ("Bob").
pub async fn name_alice_and_bob(alice: &Wallet, bob: &Wallet) {
    alice
        .set_tally_profile(Some("alice".into()), Some("Alice".into()))
        .await
        .unwrap();
    bob.set_tally_profile(Some("bob".into()), Some("Bob".into()))
        .await
        .unwrap();
}

/// Starts `wallet`'s agent on `listen`.
pub async fn agent(wallet: &Wallet, listen: &str) -> AgentHandle {
    wallet.start_agent(agent_config(listen)).await.unwrap()
}

/// Polls `check` every 50 ms until it gives a value; fails the test after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The tally's state name (MyCHIPs's).
pub async fn state_of(wallet: &Wallet, id: &str) -> String {
    wallet
        .tally(id)
        .await
        .unwrap()
        .info
        .state
        .as_str()
        .to_owned()
}

/// How long the chit helpers below wait.
const CHIT_WAIT: Duration = Duration::from_secs(30);

/// The chit `uuid` of `tally` as `wallet` holds it.
pub async fn chit(wallet: &Wallet, tally: &str, uuid: &str) -> Option<ChitInfo> {
    wallet
        .tally_chits(tally)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.uuid == uuid)
}

/// Waits until `wallet` holds the chit `uuid` in `state`.
pub async fn wait_chit(wallet: &Wallet, tally: &str, uuid: &str, state: &str) -> ChitInfo {
    let what = format!("chit {uuid} to be {state}");
    eventually(&what, CHIT_WAIT, || async {
        chit(wallet, tally, uuid).await.filter(|c| c.state == state)
    })
    .await
}

/// The tally's balance from `wallet`'s side, in milliCHIPs.
pub async fn balance(wallet: &Wallet, tally: &str) -> i64 {
    wallet.tally(tally).await.unwrap().info.balance
}

/// The chain as one half sees it: `(index, uuid)` of every linked chit.
pub fn chain(chits: &[ChitInfo]) -> Vec<(u64, String)> {
    let mut links: Vec<(u64, String)> = chits
        .iter()
        .filter_map(|c| Some((c.index?, c.uuid.clone())))
        .collect();
    links.sort();
    links
}

/// Waits until both halves hold the same chits, every one settled (good
/// or void) and linked where both agree, the same chain, and opposite
/// balances; returns Alice's balance.
pub async fn converged(alice: &Wallet, a_id: &str, bob: &Wallet, b_id: &str) -> i64 {
    eventually("both halves to agree", CHIT_WAIT, || async {
        let a = alice.tally_chits(a_id).await.unwrap();
        let b = bob.tally_chits(b_id).await.unwrap();
        let settled = |list: &[ChitInfo]| {
            list.iter().all(|c| {
                (c.state.ends_with(".good") && c.consensus == "linked")
                    || c.state.ends_with(".void")
            })
        };
        let mut ua: Vec<&str> = a.iter().map(|c| c.uuid.as_str()).collect();
        let mut ub: Vec<&str> = b.iter().map(|c| c.uuid.as_str()).collect();
        ua.sort_unstable();
        ub.sort_unstable();
        let (ba, bb) = (balance(alice, a_id).await, balance(bob, b_id).await);
        (settled(&a) && settled(&b) && ua == ub && chain(&a) == chain(&b) && ba == -bb)
            .then_some(ba)
    })
    .await
}
