//! `notch`: the command-line wallet. A thin wrapper over `notch_core::Wallet`.
//!
//! Exit status 0 on success; otherwise the code of the error's class (see
//! `exit.rs`, also in `--help`) with a one-line reason on stderr. `--json`
//! prints machine-readable output on stdout, and errors as one JSON line on
//! stderr.
//!
//! Everything a wallet decides (which network, what an address or payment
//! link is, the CSV format) is notch-core's; this file only reads the
//! command line and prints.
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
use notch_core::protocol::TxId;
use notch_core::reach::parse_network;
use notch_core::secrets::{MemorySecretStore, OsSecretStore, SecretStore};
use notch_core::store::Direction;
use notch_core::wallet::HistoryPageFilter;
use notch_core::{
    GatewayProbe, HistoryFilter, Network, NetworkFile, OpenError, PaymentUri, Recipient, Wallet,
    WalletConfig, WalletError, choose_network,
};
use serde_json::json;
use zeroize::{Zeroize, Zeroizing};

mod exit;
mod progress;
mod tally;

use exit::{Class, CliError};

#[derive(Parser, Debug)]
#[command(
    name = "notch",
    version,
    about = "Notch: a self-custodial wallet (command line)",
    after_help = exit::TABLE
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
    /// Network: main, test or sandbox. An existing wallet stays on its own
    /// network and a new one takes its gateway's; if given, this must agree
    /// (and decides when the gateway cannot be reached).
    #[arg(long, global = true, env = "NOTCH_NETWORK")]
    network: Option<String>,
    /// The ledger's identity as its operator publishes it (network.json:
    /// authority key, genesis, checkpoint, assets): the wallet then trusts
    /// no first contact.
    #[arg(long, global = true, env = "NOTCH_NETWORK_FILE")]
    network_file: Option<PathBuf>,
    /// Allow plain http:// to a gateway on another machine. Anyone on the
    /// way could then answer for the gateway and see what you do.
    #[arg(long, global = true, env = "NOTCH_DANGER_ALLOW_PLAIN_HTTP")]
    danger_allow_plain_http: bool,
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
    /// The gateway authority key this wallet trusts, and its fingerprint to
    /// compare with what the operator publishes.
    Authority,
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
        /// ADDRESS:AMOUNT[:ASSET] or a payment link notch:ADDRESS?amount=AMOUNT[&asset=ASSET],
        /// repeatable. AMOUNT in the asset's units (e.g. 1.50).
        #[arg(long = "to", required = true)]
        to: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// The wallet's transactions.
    History {
        /// CSV (RFC 4180) instead of a table: date, txid, state, direction,
        /// asset, amount, fee, counterparties, confirmations, reason.
        #[arg(long)]
        csv: bool,
        /// Only this asset (symbol).
        #[arg(long)]
        asset: Option<String>,
        /// Rows per page, newest first (0: all). Default 50; with --csv,
        /// every row unless given.
        #[arg(long)]
        limit: Option<usize>,
        /// The page after this cursor (printed as `next` by the page
        /// before).
        #[arg(long, value_name = "CURSOR")]
        before: Option<String>,
        /// Only payments in, out, or to the wallet itself.
        #[arg(long, value_parser = ["in", "out", "self"])]
        direction: Option<String>,
        /// Only transactions whose id starts with this, that pay this
        /// address, or whose memo holds it.
        #[arg(long)]
        search: Option<String>,
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
    /// Tallies (MyCHIPs): tickets, offers, acceptance, verification.
    Tally {
        #[command(subcommand)]
        command: tally::TallyCommand,
    },
    /// Chits: approve or reject an invoice a tally partner sent.
    Chit {
        #[command(subcommand)]
        command: tally::ChitCommand,
    },
    /// Run the tally agent in the foreground (Ctrl-C stops it): partners
    /// connect to it with your tickets, and it delivers what waits for them.
    Agent {
        /// Where to listen, HOST:PORT.
        #[arg(long, default_value_t = tally::default_listen())]
        listen: String,
        /// The HOST[:PORT] partners should connect to, if not the listening
        /// address (needed when listening on 0.0.0.0).
        #[arg(long)]
        advertise: Option<String>,
        /// Listen nowhere: reach partners through the gateway's agent relay
        /// at HOST:PORT (its --relay-listen), for a machine nobody can
        /// connect to. Tickets then carry HOST and the relay's port for you.
        #[arg(long, value_name = "HOST:PORT", conflicts_with = "listen")]
        relay: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum TxCommand {
    /// Where a transaction is.
    Status { txid: String },
    /// Give up a send the gateway refused or dropped (or one still queued):
    /// its coins become spendable again. The signed transaction may still
    /// confirm if anyone holds it; paying again could then pay twice.
    Abandon {
        txid: String,
        /// Confirm that you understand it may still confirm.
        #[arg(long)]
        yes: bool,
    },
}

fn main() -> ExitCode {
    // Known before parsing, so even a usage error can be JSON.
    let json = std::env::args_os().skip(1).any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if json
                && !matches!(
                    e.kind(),
                    ErrorKind::DisplayHelp
                        | ErrorKind::DisplayVersion
                        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or("invalid command line");
                let message = first.strip_prefix("error: ").unwrap_or(first);
                return CliError::usage(message).report(true);
            }
            // Help and version on stdout with 0; usage errors exit with 2.
            e.exit();
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return CliError::internal(format!("cannot start: {e}")).report(cli.json),
    };
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(json),
    }
}

type Res<T = ()> = Result<T, CliError>;

/// The per-user default: `<data dir>/notch/<network>`.
fn base_dir() -> Res<PathBuf> {
    Ok(dirs::data_dir()
        .ok_or_else(|| CliError::usage("no per-user data directory here; pass --data-dir"))?
        .join("notch"))
}

/// Where the wallet is and which network it is on, by notch-core's one
/// rule ([`choose_network`]): an existing wallet's own network; for a new
/// one (`new_wallet`), the gateway's; else `--network`. Without
/// `--data-dir`, each network has its own default directory.
async fn locate(cli: &Cli, new_wallet: bool) -> Res<WalletConfig> {
    let requested = cli.network.as_deref().filter(|n| !n.trim().is_empty());
    let named = requested.map(parse_network).transpose()?;
    let dir = match (&cli.data_dir, named) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Some(network)) => Some(base_dir()?.join(network.name())),
        // A new wallet's default directory follows the gateway's network.
        (None, None) if new_wallet => None,
        (None, None) => {
            let base = base_dir()?;
            let found: Vec<Network> = Network::ALL
                .into_iter()
                .filter(|n| base.join(n.name()).join("wallet.sqlite").is_file())
                .collect();
            match found.as_slice() {
                [] => return Err(OpenError::NoWallet { path: base }.into()),
                [one] => Some(base.join(one.name())),
                several => {
                    let names: Vec<&str> = several.iter().map(|n| n.name()).collect();
                    return Err(CliError::usage(format!(
                        "there are wallets for {} in {}; pass --network",
                        names.join(" and "),
                        base.display()
                    )));
                }
            }
        }
    };
    let stored = match &dir {
        Some(dir) => Wallet::stored_network(dir).await?,
        None => None,
    };
    if !new_wallet && stored.is_none() {
        let path = dir.unwrap_or_default().join("wallet.sqlite");
        return Err(OpenError::NoWallet { path }.into());
    }
    let gateway = if new_wallet && stored.is_none() {
        // Plain http only to this machine, as the wallet itself allows.
        Some(
            GatewayProbe::new(&cli.gateway, cli.danger_allow_plain_http)?
                .check()
                .await,
        )
    } else {
        None
    };
    let network = choose_network(requested, stored, gateway.as_ref())?;
    let dir = match dir {
        Some(dir) => dir,
        None => base_dir()?.join(network.name()),
    };
    let mut config = WalletConfig::new(dir, &cli.gateway, network);
    config.allow_insecure_http = cli.danger_allow_plain_http;
    if let Some(path) = &cli.network_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::new(
                exit::Class::BadInput,
                format!("cannot read the network file {}: {e}", path.display()),
            )
        })?;
        let file = NetworkFile::from_json(&text).map_err(|e| {
            CliError::new(
                exit::Class::BadInput,
                format!("the network file {}: {e}", path.display()),
            )
        })?;
        if file.network != config.network {
            return Err(CliError::new(
                exit::Class::BadInput,
                format!(
                    "the network file is for network {}, the wallet is on {}",
                    file.network.name(),
                    config.network.name()
                ),
            ));
        }
        config.network_file = Some(file);
    }
    Ok(config)
}

fn secret_store(kind: StoreKind) -> Res<Arc<dyn SecretStore>> {
    match kind {
        StoreKind::Os => Ok(Arc::new(OsSecretStore::open()?)),
        StoreKind::MemoryInsecureForTests => Ok(Arc::new(MemorySecretStore::new())),
    }
}

async fn open_at(cli: &Cli, config: WalletConfig) -> Res<Wallet> {
    Ok(Wallet::open(config, secret_store(cli.secret_store)?).await?)
}

async fn open(cli: &Cli) -> Res<Wallet> {
    let config = locate(cli, false).await?;
    open_at(cli, config).await
}

fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// One `--to`: `notch:ADDRESS?amount=…[&asset=…]` or
/// `ADDRESS:AMOUNT[:ASSET]`; the address is checked against `network`.
fn recipient(spec: &str, network: Network) -> Res<Recipient> {
    let is_link = spec
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("notch:"));
    if is_link {
        let uri = PaymentUri::parse(spec, network)?;
        let amount = uri.amount.ok_or_else(|| {
            CliError::new(
                Class::BadInput,
                format!("--to {spec:?}: the payment link has no amount; add ?amount=…"),
            )
        })?;
        return Ok(Recipient {
            address: uri.address,
            amount,
            asset: uri.asset,
        });
    }
    let mut parts = spec.splitn(3, ':');
    let (Some(address), Some(amount)) = (parts.next(), parts.next()) else {
        return Err(CliError::usage(format!(
            "--to {spec:?}: use ADDRESS:AMOUNT[:ASSET] or notch:ADDRESS?amount=AMOUNT"
        )));
    };
    let address = PaymentUri::parse(address, network)
        .map_err(|e| CliError::from(e).context(&format!("--to {spec:?}")))?
        .address;
    Ok(Recipient {
        address,
        amount: amount.to_owned(),
        asset: parts.next().map(str::to_owned).filter(|a| !a.is_empty()),
    })
}

async fn run(cli: Cli) -> Res {
    match &cli.command {
        Command::Init { words } => {
            let count = WordCount::from_words(usize::from(*words))
                .ok_or_else(|| CliError::usage(format!("--words must be 12 or 24, not {words}")))?;
            let config = locate(&cli, true).await?;
            let (wallet, phrase) =
                Wallet::create(config, secret_store(cli.secret_store)?, count).await?;
            let address = wallet.receive_address().await?;
            if cli.json {
                print_json(&json!({
                    "phrase": phrase.phrase().as_str(),
                    "address": address,
                    "wallet_id": wallet.wallet_id(),
                    "network": wallet.network().name(),
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
            let mut text = Zeroizing::new(String::new());
            while lock.read_line(&mut line)? > 0 {
                text.push_str(&line);
                text.push(' ');
                line.zeroize();
                line.clear();
            }
            let phrase = RecoveryPhrase::parse(&text)?;
            let config = locate(&cli, true).await?;
            let wallet = Wallet::restore(config, secret_store(cli.secret_store)?, phrase).await?;
            let bar = progress::Bar::start(&wallet, !cli.json);
            let synced = wallet.sync().await;
            bar.finish();
            let report = synced.map_err(|e| {
                CliError::from(e).context(&format!(
                    "restored wallet {}, but it could not sync (run `notch sync` later)",
                    wallet.wallet_id()
                ))
            })?;
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
            let address = wallet.receive_address().await?;
            if cli.json {
                print_json(&json!({ "address": address }));
            } else {
                println!("{address}");
            }
        }
        Command::Addresses => {
            let wallet = open(&cli).await?;
            let list = wallet.addresses().await?;
            if cli.json {
                print_json(&serde_json::to_value(&list)?);
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
            let first_contact = wallet.authority().await?.is_none();
            let bar = progress::Bar::start(&wallet, !cli.json);
            let synced = wallet.sync().await;
            bar.finish();
            let report = synced?;
            if first_contact
                && !cli.json
                && let Some((key, fingerprint)) = wallet.authority().await?
            {
                eprintln!(
                    "First contact with this network: the wallet now trusts authority key {key}\n  fingerprint {fingerprint}\nCompare it with the one the gateway's operator publishes (or pass --network-file)."
                );
            }
            if cli.json {
                print_json(&serde_json::to_value(&report)?);
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
                () = wallet.watch(Duration::from_secs((*poll).max(1))) => Ok::<(), CliError>(()),
                _ = tokio::signal::ctrl_c() => Ok(()),
            };
            printer.abort();
            result?;
        }
        Command::Balance => {
            let wallet = open(&cli).await?;
            let balances = wallet.balances().await?;
            if cli.json {
                print_json(&serde_json::to_value(&balances)?);
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
            // The recipients are checked before the keystore is touched.
            let config = locate(&cli, false).await?;
            let recipients = to
                .iter()
                .map(|spec| recipient(spec, config.network))
                .collect::<Res<Vec<_>>>()?;
            let wallet = open_at(&cli, config).await?;
            let proposal = wallet.prepare_send(&recipients).await?;
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
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Err(CliError::new(
                        Class::Cancelled,
                        "cancelled; nothing was sent",
                    ));
                }
            }
            let txid = wallet.confirm_send(&proposal).await?;
            if cli.json {
                print_json(&json!({ "txid": txid, "fee": proposal.fee }));
            } else {
                println!("{txid}");
            }
        }
        Command::History {
            csv,
            asset,
            limit,
            before,
            direction,
            search,
        } => {
            if let Some(cursor) = before
                && notch_core::store::history::parse_cursor(cursor).is_none()
            {
                return Err(CliError::usage(format!(
                    "{cursor:?} is not a history cursor: pass the `next` cursor a previous page printed"
                )));
            }
            let wallet = open(&cli).await?;
            if *csv && !cli.json {
                let filter = HistoryFilter {
                    asset: asset.clone(),
                    limit: limit.unwrap_or(0),
                    search: search.clone(),
                    incoming: direction.as_deref().map(|d| d == "in"),
                    ..HistoryFilter::default()
                };
                wallet.export_history_csv(filter, std::io::stdout()).await?;
                return Ok(());
            }
            let filter = HistoryPageFilter {
                asset: asset.clone(),
                direction: direction.as_deref().and_then(Direction::parse),
                search: search.clone(),
                ..HistoryPageFilter::default()
            };
            let page = wallet
                .history_page(filter, before.clone(), limit.unwrap_or(50))
                .await?;
            if cli.json {
                print_json(&json!({
                    "rows": serde_json::to_value(&page.rows)?,
                    "next": page.next_cursor,
                    "total": page.total,
                }));
            } else {
                for e in &page.rows {
                    let amounts = e
                        .amounts
                        .iter()
                        .map(|a| format!("{} {}", format_signed(a.net, a.decimals), a.symbol))
                        .collect::<Vec<_>>()
                        .join(", ");
                    println!(
                        "{}  {:<9} {:>3} conf  {}",
                        e.txid.get(..16).unwrap_or(&e.txid),
                        e.state.as_str(),
                        e.confirmations,
                        amounts
                    );
                }
                match &page.next_cursor {
                    Some(next) => println!(
                        "{} of {} shown; next page: --before {next}",
                        page.rows.len(),
                        page.total
                    ),
                    None if page.total > 0 => {
                        println!("{} of {} shown", page.rows.len(), page.total)
                    }
                    None => {}
                }
            }
        }
        Command::Authority => {
            let wallet = open(&cli).await?;
            match wallet.authority().await? {
                Some((key, fingerprint)) => {
                    if cli.json {
                        print_json(&serde_json::json!({
                            "authority_key": key,
                            "fingerprint": fingerprint,
                        }));
                    } else {
                        println!("authority key {key}\nfingerprint   {fingerprint}");
                    }
                }
                None => {
                    return Err(CliError::new(
                        exit::Class::BadInput,
                        "no authority is trusted yet: sync once, or pass --network-file",
                    ));
                }
            }
        }
        Command::Tx {
            command: TxCommand::Abandon { txid, yes },
        } => {
            if TxId::from_hex(txid.trim()).is_err() {
                return Err(WalletError::BadTxid(txid.clone()).into());
            }
            if !*yes {
                return Err(CliError::usage(
                    "abandoning a send makes its coins spendable again, but the signed transaction may still confirm; paying again could then pay twice. Add --yes if you are sure",
                ));
            }
            let wallet = open(&cli).await?;
            let released = wallet.abandon_send(txid).await?;
            if cli.json {
                print_json(&serde_json::json!({ "abandoned": released }));
            } else {
                for id in released {
                    println!("abandoned {id}");
                }
            }
        }
        Command::Tx {
            command: TxCommand::Status { txid },
        } => {
            // A txid that cannot be one is refused before the keystore is
            // touched.
            if TxId::from_hex(txid.trim()).is_err() {
                return Err(WalletError::BadTxid(txid.clone()).into());
            }
            let wallet = open(&cli).await?;
            let status = wallet.tx_status(txid).await?;
            if cli.json {
                print_json(&serde_json::to_value(&status)?);
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
        Command::Tally { command } => tally::run(&cli, command).await?,
        Command::Chit { command } => tally::chit(&cli, command).await?,
        Command::Agent {
            listen,
            advertise,
            relay,
        } => tally::agent(&cli, listen, advertise.as_deref(), relay.as_deref()).await?,
        Command::Notifications { mark_read, unread } => {
            let wallet = open(&cli).await?;
            let list = wallet.notifications(*unread).await?;
            if cli.json {
                print_json(&serde_json::to_value(&list)?);
            } else {
                for n in &list {
                    println!(
                        "{:>4} {} {}: {}",
                        n.id,
                        if n.read { " " } else { "*" },
                        n.title,
                        n.body
                    );
                    // The transaction it is about (no longer in the body).
                    if let Some(txid) = &n.txid {
                        println!("       txid {}", TxId(*txid).to_hex());
                    }
                }
            }
            if *mark_read {
                wallet.mark_all_read().await?;
            }
        }
    }
    Ok(())
}
