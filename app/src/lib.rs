//! notch-app: the Tauri v2 shell. It exposes notch-core as commands and
//! pushes what changes as events; it holds no wallet logic of its own.

mod commands;
mod state;

use std::time::Duration;

use tauri::{Emitter, Manager};

pub use commands::gateway_status;
pub use state::AppState;

/// Where the app looks for its gateway unless told otherwise.
pub const DEFAULT_GATEWAY: &str = "http://127.0.0.1:7420";
/// How often the app asks the gateway for its tip while nothing is pushed.
const STATUS_POLL: Duration = Duration::from_secs(3);

/// The gateway URL from `NOTCH_GATEWAY`, or the local sandbox.
pub fn gateway_url_from_env() -> String {
    std::env::var("NOTCH_GATEWAY")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_GATEWAY.to_owned())
}

/// Registers the commands on any builder, so the real app and the
/// mock-runtime tests share one list.
pub fn with_commands<R: tauri::Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![commands::gateway_status])
}

pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let url = gateway_url_from_env();
    let state = match AppState::new(&url) {
        Ok(state) => state,
        Err(e) => {
            eprintln!("notch-app: {e}");
            std::process::exit(2);
        }
    };

    let result = with_commands(tauri::Builder::default())
        .manage(state)
        .setup(|app| {
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                loop {
                    let status = handle.state::<AppState>().refresh_status().await;
                    if let Err(e) = handle.emit(notch_ipc::event::GATEWAY_STATUS, &status) {
                        tracing::warn!("cannot emit gateway status: {e}");
                    }
                    tokio::time::sleep(STATUS_POLL).await;
                }
            });
            Ok(())
        })
        .run(tauri::generate_context!("../tauri.conf.json"));
    if let Err(e) = result {
        eprintln!("notch-app: {e}");
        std::process::exit(1);
    }
}
