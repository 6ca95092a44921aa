//! Shared setup of the two-wallet tally tests (`tally_open.rs`, `tally_chits.rs`): the
//! wallets need a gateway URL but never call it; their agents run on loopback with short
//! timeouts and retries so that offline partners are noticed, and retried, quickly.

use std::future::Future;
use std::time::{Duration, Instant};

use notch_core::peer::PeerConfig;
use notch_core::{AgentConfig, AgentHandle, RetryPolicy, Wallet};

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
