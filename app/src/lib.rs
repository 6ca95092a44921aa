//! notch-app: the Tauri v2 shell. It exposes notch-core as commands and
//! pushes what changes as events; it holds no wallet logic of its own.

pub mod agent;
pub mod commands;
pub mod deeplink;
mod errors;
pub mod events;
pub mod lock;
pub mod scan;
mod state;
pub mod tally;

use std::path::PathBuf;
use std::time::Duration;

use tauri::{Emitter, Manager};

pub use commands::gateway_status;
pub use state::{AppState, Secrets};

/// Where the app looks for its gateway unless told otherwise.
pub const DEFAULT_GATEWAY: &str = "http://127.0.0.1:7420";
/// How often the app asks the gateway for its tip while nothing is pushed.
const STATUS_POLL: Duration = Duration::from_secs(3);
/// How often the agent's partner counts are read again for the status.
const AGENT_POLL: Duration = Duration::from_secs(2);

/// The single-instance D-Bus id: one running app per wallet directory, so
/// a link opened while Notch runs goes to it, and apps with wallets of
/// their own (`NOTCH_DATA_DIR`, or another `XDG_DATA_HOME` or `HOME`, where
/// the default directory lives) do not take each other for a second
/// instance.
fn instance_id(identifier: &str) -> String {
    let place = data_dir_from_env()
        .or_else(|| std::env::var_os("XDG_DATA_HOME").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from));
    match place {
        None => identifier.to_owned(),
        Some(dir) => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            dir.hash(&mut hasher);
            format!("{identifier}.dir{:016x}", hasher.finish())
        }
    }
}

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
        commands::history_index,
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
        tally::tally_profile,
        tally::set_tally_profile,
        tally::agent_status,
        tally::set_agent_address,
        tally::tallies,
        tally::tally,
        tally::tally_chits,
        tally::new_ticket,
        tally::scan_ticket_text,
        tally::scan_ticket_image,
        tally::scan_ticket_frame,
        tally::tally_accept,
        tally::tally_refuse,
        tally::tally_pay,
        tally::tally_invoice,
        tally::chit_approve,
        tally::chit_reject,
        tally::tally_set_limit,
        tally::tally_close,
        tally::take_deep_link,
    ])
}

pub fn run() {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    // `NOTCH_LOG_FILE`: the log appended to that file instead of stderr
    // (under a WebDriver the app's stderr goes nowhere; the benchmarks
    // keep it). The log carries no secrets.
    let file = std::env::var_os("NOTCH_LOG_FILE").and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| eprintln!("notch-app: cannot open the log file {path:?}: {e}"))
            .ok()
    });
    match file {
        Some(file) => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init(),
        None => tracing_subscriber::fmt().with_env_filter(filter()).init(),
    }

    let url = gateway_url_from_env();

    let context = tauri::generate_context!("../tauri.conf.json");
    let dbus_id = instance_id(&context.config().identifier);
    let result = with_commands(tauri::Builder::default())
        // First: a second start hands its arguments (a link) to the
        // running app and exits before anything else opens.
        .plugin(
            tauri_plugin_single_instance::Builder::new()
                .dbus_id(dbus_id)
                .callback(|app, argv, _cwd| {
                    if let Some(link) = deeplink::link_in_args(argv) {
                        deeplink::opened(app, &link);
                    }
                })
                .build(),
        )
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_notification::init())
        .setup(move |app| {
            use tauri_plugin_deep_link::DeepLinkExt;
            scan::enable_camera(app);
            let data_dir = match data_dir_from_env() {
                Some(dir) => dir,
                None => app.path().app_data_dir()?,
            };
            let state = AppState::new(&url, data_dir)?;
            let started_with = app
                .deep_link()
                .get_current()
                .ok()
                .flatten()
                .unwrap_or_default()
                .into_iter()
                .map(|u| u.to_string())
                .collect();
            deeplink::at_start(&state, started_with);
            app.manage(state);
            // Links the system hands over while the app runs (macOS; on
            // Linux and Windows they come through the single-instance
            // hand-over above, and a repeat is told once).
            let handle = app.handle().clone();
            app.deep_link().on_open_url(move |event| {
                for url in event.urls() {
                    deeplink::opened(&handle, url.as_str());
                }
            });
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                loop {
                    tokio::time::sleep(AGENT_POLL).await;
                    let state = handle.state::<AppState>();
                    let wallet = state.wallet().ok();
                    state.agent().refresh(&handle, wallet.as_ref()).await;
                }
            });
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
        .run(context);
    if let Err(e) = result {
        eprintln!("notch-app: {e}");
        std::process::exit(1);
    }
}
