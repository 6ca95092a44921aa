//! `notch`: the command-line wallet. A thin wrapper over `notch_core::Wallet`.
//!
//! Exit status 0 on success; otherwise non-zero with a one-line reason on
//! stderr. `--json` prints machine-readable output on stdout.
//!
//! Secrets: by default the wallet's recovery phrase is kept in the OS
//! keystore (Secret Service on Linux, Keychain on macOS, Credential Manager
//! on Windows). `--secret-store memory-insecure-for-tests` keeps it in this
//! process's memory only: the wallet is unusable by the next command. It
//! exists for tests that run a single command (e.g. `init --json`); tests
//! that run several `notch` processes need a real Secret Service (the xtask
//! starts gnome-keyring under `dbus-run-session`). There is deliberately no
//! file-based secret store: no plaintext secret ever touches the disk.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use notch_core::amount::{format_amount, format_signed};
use notch_core::keys::{RecoveryPhrase, WordCount};
use notch_core::secrets::{MemorySecretStore, OsSecretStore, SecretStore};
use notch_core::{HistoryFilter, Network, Recipient, Wallet, WalletConfig};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "notch",
    version,
    about = "Notch: a self-custodial wallet (command line)"
)]
struct Cli {
    /// Wallet data directory (default: the per-user data dir, e.g. ~/.local/share/notch).
    #[arg(long, global = true, env = "NOTCH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The gateway's URL.
    #[arg(
        long,
        global = true,
        env = "NOTCH_GATEWAY",
        default_value = "http://127.0.0.1:7420"
    )]
    gateway: String,
    /// Network: main, test or sandbox.
    #[arg(long, global = true, env = "NOTCH_NETWORK", default_value = "sandbox")]
    network: String,
    /// Print JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Where the recovery phrase is kept: the OS keystore, or (tests only)
    /// memory, which forgets it when the command ends.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "NOTCH_SECRET_STORE",
        default_value = "os"
    )]
    secret_store: StoreKind,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StoreKind {
    Os,
    MemoryInsecureForTests,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new wallet and print its recovery phrase (write it down).
    Init {
        /// 12 or 24 words.
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u8).range(12..=24))]
        words: u8,
    },
    /// Restore a wallet from its recovery phrase, read from stdin.
    Restore,
    /// Print a fresh receive address.
    Address,
    /// List every address the wallet derived (used or watched ahead).
    Addresses,
    /// Sync once with the gateway.
    Sync,
    /// Follow the gateway and print events as they come (Ctrl-C to stop).
    Watch {
        /// Poll interval in seconds when no push arrives.
        #[arg(long, default_value_t = 10)]
        poll: u64,
    },
    /// Balances per asset (base units and decimal).
    Balance,
    /// Pay one or more recipients in one transaction.
    Send {
        /// ADDRESS:AMOUNT[:ASSET], repeatable. AMOUNT in the asset's units (e.g. 1.50).
        #[arg(long = "to", required = true)]
        to: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// The wallet's transactions.
    History {
        /// Comma-separated values instead of a table.
        #[arg(long)]
        csv: bool,
        /// Only this asset (symbol).
        #[arg(long)]
        asset: Option<String>,
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
    /// Transactions.
    Tx {
        #[command(subcommand)]
        command: TxCommand,
    },
    /// The notification inbox.
    Notifications {
        /// Mark them all read after showing them.
        #[arg(long)]
        mark_read: bool,
        /// Only unread ones.
        #[arg(long)]
        unread: bool,
    },
}

#[derive(Subcommand, Debug)]
enum TxCommand {
    /// Where a transaction is.
    Status { txid: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("notch: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("notch: {}", message.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

type Res = Result<(), String>;

fn config(cli: &Cli) -> Result<WalletConfig, String> {
    let network = Network::from_name(&cli.network)
        .ok_or_else(|| format!("unknown network {:?} (main, test or sandbox)", cli.network))?;
    let data_dir = match &cli.data_dir {
        Some(d) => d.clone(),
        None => dirs::data_dir()
            .ok_or("no per-user data directory here; pass --data-dir")?
            .join("notch")
            .join(network.name()),
    };
    Ok(WalletConfig::new(data_dir, &cli.gateway, network))
}

fn secret_store(kind: StoreKind) -> Result<Arc<dyn SecretStore>, String> {
    match kind {
        StoreKind::Os => Ok(Arc::new(OsSecretStore::open().map_err(|e| e.to_string())?)),
        StoreKind::MemoryInsecureForTests => Ok(Arc::new(MemorySecretStore::new())),
    }
}

async fn open(cli: &Cli) -> Result<Wallet, String> {
    Wallet::open(config(cli)?, secret_store(cli.secret_store)?)
        .await
        .map_err(|e| e.to_string())
}

fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

async fn run(cli: Cli) -> Res {
    match &cli.command {
        Command::Init { words } => {
            let count = match words {
                12 => WordCount::Twelve,
                24 => WordCount::TwentyFour,
                other => return Err(format!("--words must be 12 or 24, not {other}")),
            };
            let (wallet, phrase) =
                Wallet::create(config(&cli)?, secret_store(cli.secret_store)?, count)
                    .await
                    .map_err(|e| e.to_string())?;
            let address = wallet.receive_address().await.map_err(|e| e.to_string())?;
            if cli.json {
                print_json(&json!({
                    "phrase": phrase.phrase().as_str(),
                    "address": address,
                    "wallet_id": wallet.wallet_id(),
                }));
            } else {
                println!("Your recovery phrase (write it down, keep it secret):\n");
                println!("  {}\n", phrase.phrase().as_str());
                println!("Receive address: {address}");
            }
        }
        Command::Restore => {
            let mut line = String::new();
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            let mut text = String::new();
            while lock.read_line(&mut line).map_err(|e| e.to_string())? > 0 {
                text.push_str(&line);
                text.push(' ');
                line.clear();
            }
            let phrase = RecoveryPhrase::parse(&text).map_err(|e| e.to_string())?;
            let wallet = Wallet::restore(config(&cli)?, secret_store(cli.secret_store)?, phrase)
                .await
                .map_err(|e| e.to_string())?;
            let report = wallet.sync().await.map_err(|e| e.to_string())?;
            if cli.json {
                print_json(&json!({"wallet_id": wallet.wallet_id(), "height": report.height}));
            } else {
                println!(
                    "Restored wallet {} and synced to block {}.",
                    wallet.wallet_id(),
                    report.height
                );
            }
        }
        Command::Address => {
            let wallet = open(&cli).await?;
            let address = wallet.receive_address().await.map_err(|e| e.to_string())?;
            if cli.json {
                print_json(&json!({ "address": address }));
            } else {
                println!("{address}");
            }
        }
        Command::Addresses => {
            let wallet = open(&cli).await?;
            let list = wallet.addresses().await.map_err(|e| e.to_string())?;
            if cli.json {
                print_json(&serde_json::to_value(&list).map_err(|e| e.to_string())?);
            } else {
                for a in list {
                    println!(
                        "{} {} {}{}",
                        if a.change { "change " } else { "receive" },
                        a.index,
                        a.address,
                        if a.used { " (used)" } else { "" }
                    );
                }
            }
        }
        Command::Sync => {
            let wallet = open(&cli).await?;
            let report = wallet.sync().await.map_err(|e| e.to_string())?;
            if cli.json {
                print_json(&serde_json::to_value(&report).map_err(|e| e.to_string())?);
            } else {
                println!(
                    "Synced to block {} ({} new blocks, {} rolled back).",
                    report.height, report.blocks, report.rolled_back
                );
            }
        }
        Command::Watch { poll } => {
            let wallet = open(&cli).await?;
            let mut events = wallet.subscribe();
            let json_out = cli.json;
            let printer = tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(event) => {
                            if json_out {
                                if let Ok(line) = serde_json::to_string(&event) {
                                    println!("{line}");
                                }
                            } else {
                                println!("{event:?}");
                            }
                            let _ = std::io::stdout().flush();
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            eprintln!("notch: missed {n} events");
                        }
                        Err(_) => break,
                    }
                }
            });
            let result = tokio::select! {
                r = wallet.watch(Duration::from_secs((*poll).max(1))) => r.map_err(|e| e.to_string()),
                _ = tokio::signal::ctrl_c() => Ok(()),
            };
            printer.abort();
            result?;
        }
        Command::Balance => {
            let wallet = open(&cli).await?;
            let balances = wallet.balances().await.map_err(|e| e.to_string())?;
            if cli.json {
                print_json(&serde_json::to_value(&balances).map_err(|e| e.to_string())?);
            } else {
                for b in balances {
                    println!(
                        "{:<6} {:>20} confirmed  {:>20} pending in  {:>20} pending out",
                        b.symbol,
                        format_amount(b.confirmed, b.decimals),
                        format_amount(b.pending, b.decimals),
                        format_amount(b.pending_outgoing, b.decimals)
                    );
                }
            }
        }
        Command::Send { to, yes } => {
            let wallet = open(&cli).await?;
            let mut recipients = Vec::new();
            for spec in to {
                let mut parts = spec.splitn(3, ':');
                let (Some(address), Some(amount)) = (parts.next(), parts.next()) else {
                    return Err(format!("--to {spec:?}: use ADDRESS:AMOUNT[:ASSET]"));
                };
                recipients.push(Recipient {
                    address: address.to_owned(),
                    amount: amount.to_owned(),
                    asset: parts.next().map(str::to_owned),
                });
            }
            let proposal = wallet
                .prepare_send(&recipients)
                .await
                .map_err(|e| e.to_string())?;
            if !*yes {
                eprintln!("You are about to send:");
                for r in &proposal.recipients {
                    eprintln!(
                        "  {} {} to {}",
                        format_amount(r.amount, r.decimals),
                        r.symbol,
                        r.address
                    );
                }
                eprintln!(
                    "  fee: {} {}",
                    format_amount(proposal.fee, proposal.fee_decimals),
                    proposal.fee_symbol
                );
                for c in &proposal.change {
                    eprintln!(
                        "  change back to you: {} {}",
                        format_amount(c.amount, c.decimals),
                        c.symbol
                    );
                }
                eprint!("Send? [y/N] ");
                let _ = std::io::stderr().flush();
                let mut answer = String::new();
                std::io::stdin()
                    .read_line(&mut answer)
                    .map_err(|e| e.to_string())?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Err("cancelled; nothing was sent".into());
                }
            }
            let txid = wallet
                .confirm_send(&proposal)
                .await
                .map_err(|e| e.to_string())?;
            if cli.json {
                print_json(&json!({ "txid": txid, "fee": proposal.fee }));
            } else {
                println!("{txid}");
            }
        }
        Command::History { csv, asset, limit } => {
            let wallet = open(&cli).await?;
            let entries = wallet
                .history(HistoryFilter {
                    asset: asset.clone(),
                    limit: *limit,
                    ..HistoryFilter::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            if cli.json {
                print_json(&serde_json::to_value(&entries).map_err(|e| e.to_string())?);
            } else if *csv {
                println!(
                    "txid,state,confirmations,block_height,time,asset,symbol,net,received,sent,fee"
                );
                for e in &entries {
                    for a in &e.amounts {
                        println!(
                            "{},{},{},{},{},{},{},{},{},{},{}",
                            e.txid,
                            e.state.as_str(),
                            e.confirmations,
                            e.block_height.map(|h| h.to_string()).unwrap_or_default(),
                            e.time,
                            a.asset,
                            a.symbol,
                            format_signed(i128::from(a.net), a.decimals),
                            a.received,
                            a.sent,
                            e.fee.map(|f| f.to_string()).unwrap_or_default()
                        );
                    }
                }
            } else {
                for e in &entries {
                    let amounts = e
                        .amounts
                        .iter()
                        .map(|a| {
                            format!(
                                "{} {}",
                                format_signed(i128::from(a.net), a.decimals),
                                a.symbol
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    println!(
                        "{}  {:<9} {:>3} conf  {}",
                        &e.txid[..16],
                        e.state.as_str(),
                        e.confirmations,
                        amounts
                    );
                }
            }
        }
        Command::Tx {
            command: TxCommand::Status { txid },
        } => {
            let wallet = open(&cli).await?;
            let status = wallet.tx_status(txid).await.map_err(|e| e.to_string())?;
            if cli.json {
                print_json(&serde_json::to_value(&status).map_err(|e| e.to_string())?);
            } else {
                println!(
                    "{} {} ({} confirmations){}",
                    status.txid,
                    status.state.as_str(),
                    status.confirmations,
                    status.reason.map(|r| format!(": {r}")).unwrap_or_default()
                );
            }
        }
        Command::Notifications { mark_read, unread } => {
            let wallet = open(&cli).await?;
            let list = wallet
                .notifications(*unread)
                .await
                .map_err(|e| e.to_string())?;
            if cli.json {
                print_json(&serde_json::to_value(&list).map_err(|e| e.to_string())?);
            } else {
                for n in &list {
                    println!(
                        "{:>4} {} {}: {}",
                        n.id,
                        if n.read { " " } else { "*" },
                        n.title,
                        n.body
                    );
                }
            }
            if *mark_read {
                wallet.mark_all_read().await.map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}
