//! Types that cross the Tauri IPC between `notch-app` (Rust, native) and
//! `notch-ui` (Rust, wasm). Both sides depend on this crate, so a command's
//! arguments, result and error cannot drift apart.

use serde::{Deserialize, Serialize};

/// Names of the Tauri commands, so neither side spells them by hand.
pub mod command {
    pub const GATEWAY_STATUS: &str = "gateway_status";
}

/// Names of the events the app emits to the UI.
pub mod event {
    /// Payload: [`crate::GatewayStatus`].
    pub const GATEWAY_STATUS: &str = "notch://gateway-status";
}

/// Every command fails with this: a stable code and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandError {
    pub code: String,
    pub message: String,
}

impl CommandError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandError {}

/// What the app knows about its gateway connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GatewayStatus {
    /// The gateway answered; `tip_height` is its current tip.
    Connected {
        url: String,
        network: String,
        tip_height: u64,
        sandbox: bool,
    },
    /// The gateway did not answer since `since_unix` (seconds).
    Unreachable {
        url: String,
        reason: String,
        since_unix: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_status_has_a_tagged_json_form() {
        let status = GatewayStatus::Connected {
            url: "http://127.0.0.1:7420/".into(),
            network: "sandbox".into(),
            tip_height: 3,
            sandbox: true,
        };
        let json = serde_json::to_value(&status).expect("serializable");
        assert_eq!(json["state"], "connected");
        assert_eq!(json["tip_height"], 3);
        let back: GatewayStatus = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, status);
    }
}
