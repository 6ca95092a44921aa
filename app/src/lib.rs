//! notch-app: the Tauri v2 shell. It exposes notch-core as commands and
//! pushes what changes as events; it holds no wallet logic of its own.

pub mod commands;
mod errors;
pub mod events;
pub mod lock;
pub mod scan;
mod state;

use std::path::PathBuf;
use std::time::Duration;

use tauri::{Emitter, Manager};

pub use commands::gateway_status;
pub use state::{AppState, Secrets};

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

/// The wallet's directory from `NOTCH_DATA_DIR`, if set.
pub fn data_dir_from_env() -> Option<PathBuf> {
    std::env::var_os("NOTCH_DATA_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// Registers the commands on any builder, so the real app and the
/// mock-runtime tests share one list.
pub fn with_commands<R: tauri::Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![
        commands::gateway_status,
        commands::app_status,
        commands::begin_create,
        commands::finish_create,
        commands::restore_wallet,
        commands::balances,
        commands::sync_state,
        commands::sync_now,
        commands::receive_address,
        commands::unused_address,
        commands::assets,
        commands::validate_address,
        commands::validate_amount,
        commands::prepare_send,
        commands::confirm_send,
        commands::tx_status,
        commands::history,
        commands::export_csv,
        commands::notifications,
        commands::mark_read,
        commands::mark_all_read,
        lock::lock_status,
        lock::set_lock_passphrase,
        lock::remove_lock_passphrase,
        lock::set_idle_lock,
        lock::lock_now,
        lock::unlock,
        lock::reveal_phrase,
        scan::scan_qr_image,
        scan::scan_qr_frame,
    ])
}

pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let url = gateway_url_from_env();

    let result = with_commands(tauri::Builder::default())
        .plugin(tauri_plugin_notification::init())
        .setup(move |app| {
            scan::enable_camera(app);
            let data_dir = match data_dir_from_env() {
                Some(dir) => dir,
                None => app.path().app_data_dir()?,
            };
            let state = AppState::new(&url, data_dir)?;
            app.manage(state);
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                handle.state::<AppState>().ensure_started(&handle).await;
            });
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
