//! `notch-gateway`: see `notch-gateway --help` and docs/PROTOCOL.md.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;

use clap::Parser;
use notch_gateway::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: stdout carries only the "listening on" line.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> std::process::ExitCode {
    notch_gateway::keep_freed_memory();
    let config = Config::parse();
    init_logs(config.log_format);
    let runtime = match notch_gateway::runtime(config.http_threads) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("notch-gateway: cannot start the HTTP runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> std::process::ExitCode {
    let running = match notch_gateway::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("notch-gateway: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "notch-gateway listening on http://{}", running.addr);
        if let Some(relay) = running.relay {
            let _ = writeln!(out, "notch-gateway relay at {relay}");
        }
        if let Some(metrics) = running.metrics {
            let _ = writeln!(out, "notch-gateway metrics at http://{metrics}/metrics");
        }
        let _ = out.flush();
    }
    stop_signal().await;
    running.shutdown().await;
    std::process::ExitCode::SUCCESS
}
