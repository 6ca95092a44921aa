//! What the app keeps between commands.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use notch_core::gateway::{GatewayClient, GatewayError};
use notch_ipc::{CommandError, GatewayStatus};

pub struct AppState {
    gateway: GatewayClient,
    /// When the gateway stopped answering, so the UI can say "since …".
    unreachable_since: Mutex<Option<u64>>,
}

impl AppState {
    pub fn new(gateway_url: &str) -> Result<Self, CommandError> {
        let gateway = GatewayClient::new(gateway_url)
            .map_err(|e| CommandError::new("bad_gateway_url", e.to_string()))?;
        Ok(Self {
            gateway,
            unreachable_since: Mutex::new(None),
        })
    }

    /// Asks the gateway for its tip and remembers since when it is silent.
    pub async fn refresh_status(&self) -> GatewayStatus {
        let url = self.gateway.url().to_owned();
        let answer = self.gateway.info().await;
        let mut since = self
            .unreachable_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match answer {
            Ok(info) => {
                *since = None;
                GatewayStatus::Connected {
                    url,
                    network: info.network,
                    tip_height: info.tip.height,
                    sandbox: info.sandbox,
                }
            }
            Err(e) => {
                let since_unix = *since.get_or_insert_with(now_unix);
                let reason = match e {
                    GatewayError::Unreachable { reason, .. } => reason,
                    other => other.to_string(),
                };
                GatewayStatus::Unreachable {
                    url,
                    reason,
                    since_unix,
                }
            }
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
