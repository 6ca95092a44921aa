//! `cargo xtask run`: setup, build, then a local sandbox gateway and the
//! desktop wallet connected to it.

use std::path::PathBuf;

use crate::session::{self, bin_path};
use crate::sh::{self, Result, Timer, cmd};
use crate::{setup, ui};

const SANDBOX_LISTEN: &str = "127.0.0.1:7420";

struct Options {
    gateway: Option<String>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options { gateway: None };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--gateway" => {
                options.gateway = Some(it.next().ok_or("--gateway needs a URL")?.clone())
            }
            other => {
                return Err(format!(
                    "unknown option {other:?} (usage: cargo xtask run [--gateway URL])"
                ));
            }
        }
    }
    Ok(options)
}

pub fn run(timer: &mut Timer, args: &[String]) -> Result {
    let options = parse(args)?;
    setup::run(timer)?;
    ui::build(timer, ui::Profile::Debug)?;
    timer.step("build gateway, CLI and app", || {
        sh::run(cmd("cargo").args([
            "build",
            "-p",
            "notch-gateway",
            "-p",
            "notch-cli",
            "-p",
            "notch-app",
        ]))
    })?;

    let data = sh::root().join(".notch");
    let (gateway_url, mut gateway) = match options.gateway {
        Some(url) => (url, None),
        None => {
            let (url, guard) = start_sandbox(&data)?;
            (url, Some(guard))
        }
    };
    let secrets = session::ensure_secret_service(&data.join("keyring"))?;
    let cli = bin_path("notch");
    let wallet_dir = data.join("wallet");

    if !session::has_display() {
        // A CLI started from another shell must reach the keyring we started.
        let env_prefix: String = secrets
            .env
            .iter()
            .map(|(key, value)| format!("{key}='{value}' "))
            .collect();
        println!(
            "\nNo display found (DISPLAY and WAYLAND_DISPLAY are unset), so the desktop window cannot open.\n\
             The sandbox gateway is running at {gateway_url}. Use the command-line wallet instead:\n\n  \
             {env_prefix}{cli} --gateway {gateway_url} --data-dir {wallet} init\n  \
             {env_prefix}{cli} --gateway {gateway_url} --data-dir {wallet} --help\n\n\
             or run the window on a virtual display: xvfb-run cargo xtask run\n\
             Press Ctrl-C to stop the gateway.",
            cli = cli.display(),
            wallet = wallet_dir.display(),
        );
        if let Some(guard) = gateway.as_mut() {
            let _ = guard.child.wait();
        }
        return Ok(());
    }

    println!("\nstarting the Notch desktop wallet, connected to {gateway_url}");
    let mut app = cmd(bin_path("notch-app"));
    app.env("NOTCH_GATEWAY", &gateway_url)
        .env("NOTCH_DATA_DIR", &wallet_dir);
    for (key, value) in &secrets.env {
        app.env(key, value);
    }
    let status = app
        .status()
        .map_err(|e| format!("cannot start notch-app: {e}"))?;
    drop(gateway);
    if status.success() {
        Ok(())
    } else {
        Err(format!("notch-app exited with {status}"))
    }
}

/// The sandbox gateway on 127.0.0.1:7420 (or any free port if that is taken),
/// its ledger kept under .notch/gateway so it survives restarts.
fn start_sandbox(data: &std::path::Path) -> Result<(String, session::Guard)> {
    let gateway_dir: PathBuf = data.join("gateway");
    std::fs::create_dir_all(&gateway_dir)
        .map_err(|e| format!("cannot create {}: {e}", gateway_dir.display()))?;
    let bin = bin_path("notch-gateway");
    let listen = if std::net::TcpListener::bind(SANDBOX_LISTEN).is_ok() {
        SANDBOX_LISTEN
    } else {
        println!("{SANDBOX_LISTEN} is taken; the sandbox gateway will use a free port");
        "127.0.0.1:0"
    };
    let (url, guard) = session::start_gateway(&bin, &gateway_dir, listen, &[])?;
    println!(
        "sandbox gateway running at {url} (data in {dir}, log in {dir}/gateway.log)",
        dir = gateway_dir.display()
    );
    Ok((url, guard))
}
