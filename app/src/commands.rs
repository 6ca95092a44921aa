//! Tauri commands: thin wrappers over notch-core, typed by notch-ipc.

use notch_ipc::{CommandError, GatewayStatus};

use crate::state::AppState;

/// The gateway's current status (never an error: unreachable is a status).
#[tauri::command]
pub async fn gateway_status(
    state: tauri::State<'_, AppState>,
) -> Result<GatewayStatus, CommandError> {
    Ok(state.refresh_status().await)
}
