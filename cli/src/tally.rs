//! `notch tally …` and `notch agent`: MyCHIPs tallies over notch-core's
//! `Wallet` (tickets, scans, offers, the agent). Printing only; every rule
//! is the core's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use notch_core::agent::{AgentConfig, DEFAULT_AGENT_PORT, DEFAULT_TICKET_LIFETIME};
use notch_core::tally::Side;
use notch_core::ticket::{DEFAULT_MODULE_PX, LinkForm, Ticket};
use notch_core::{ChitInfo, TallyInfo, TicketOptions, Wallet};
use serde_json::{Value, json};

use crate::exit::{Class, CliError};
use crate::{Cli, Res, open, print_json};

#[derive(Subcommand, Debug)]
pub enum TallyCommand {
    /// Issue a ticket (an invitation to open a tally with you): a link, and
    /// with --qr a QR code PNG to show. Whoever presents it to your agent
    /// gets the tally offered, signed by you with these terms.
    Ticket {
        /// Write the ticket's QR code to this PNG file.
        #[arg(long, value_name = "FILE.png")]
        qr: Option<PathBuf>,
        /// How long the ticket is good for, in seconds (default 45 minutes,
        /// as MyCHIPs).
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<u64>,
        /// Your half of the tally: stock (vendor, usually owed) or foil (client).
        #[arg(long, value_enum, default_value = "stock")]
        side: SideArg,
        /// Credit terms you grant the partner, JSON (e.g. '{"limit":100}').
        #[arg(long, value_name = "JSON")]
        terms: Option<String>,
        /// Credit terms you ask the partner to grant you, JSON.
        #[arg(long, value_name = "JSON")]
        partner_terms: Option<String>,
        #[arg(long)]
        comment: Option<String>,
        /// Your name in the tally's certificate (kept for later tallies).
        #[arg(long)]
        name: Option<String>,
        /// Your CHIP user id at your agent (kept for later tallies).
        #[arg(long)]
        cuid: Option<String>,
    },
    /// Scan a ticket (a link, or a picture of its QR code) and ask its
    /// issuer for the tally. Waits in the outbox if the issuer is offline.
    Scan {
        /// The ticket link (https://mychips.org/invite?… or notch:ticket?…).
        #[arg(required_unless_present = "image", conflicts_with = "image")]
        url: Option<String>,
        /// A PNG or JPEG holding the ticket's QR code.
        #[arg(long, value_name = "FILE")]
        image: Option<PathBuf>,
        /// Your name in the tally's certificate (kept for later tallies).
        #[arg(long)]
        name: Option<String>,
    },
    /// Your tallies: id, state (MyCHIPs's names), partner, balance.
    List,
    /// One tally, with its terms and its record as signed.
    Show { id: String },
    /// Accept (sign) a tally offered to you, after reading its terms.
    Accept {
        id: String,
        /// Do not ask: the terms were read already (`notch tally show ID`).
        #[arg(long)]
        yes: bool,
    },
    /// Refuse a tally offered to you, withdraw an unused ticket of yours,
    /// or give up a scanned ticket that is still waiting.
    Refuse { id: String },
    /// Pay your partner on an open tally: sign a payment chit (refused
    /// before signing if it would pass the credit your partner grants you).
    Pay {
        id: String,
        /// In CHIPs, up to three decimals (12.5 = 12,500 milliCHIPs).
        // Hyphen values are taken, so that `-1` is refused as an amount
        // (exit 3), not mistaken for an option.
        #[arg(allow_hyphen_values = true)]
        amount: String,
        #[arg(long)]
        memo: Option<String>,
    },
    /// Ask your partner on an open tally to pay you: an invoice they approve
    /// or reject.
    Invoice {
        id: String,
        /// In CHIPs, up to three decimals (12.5 = 12,500 milliCHIPs).
        // Hyphen values are taken, so that `-1` is refused as an amount
        // (exit 3), not mistaken for an option.
        #[arg(allow_hyphen_values = true)]
        amount: String,
        #[arg(long)]
        memo: Option<String>,
    },
    /// Set the credit you grant your partner on an open tally: sign a
    /// MyCHIPs setting chit (`type: set`, `ref.limit`) your partner's
    /// wallet then enforces. Once you asked to close the tally, you can
    /// only lower it.
    Limit {
        id: String,
        /// In CHIPs, up to three decimals (12.5 = 12,500 milliCHIPs).
        #[arg(allow_hyphen_values = true)]
        amount: String,
    },
    /// Ask to close a tally: it is `closing` (only chits that bring the
    /// balance toward zero) until its balance is zero, then `closed`.
    Close { id: String },
    /// Check every signature of a MyCHIPs tally record (JSON file): exit 0
    /// when both verify, otherwise the reason.
    Verify { file: PathBuf },
}

/// `notch chit …`: invoices your partners sent you.
#[derive(Subcommand, Debug)]
pub enum ChitCommand {
    /// Approve (sign and pay) an invoice your partner sent.
    Approve { id: String },
    /// Reject an invoice your partner sent.
    Reject { id: String },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SideArg {
    Stock,
    Foil,
}

fn terms(text: Option<&str>, what: &str) -> Res<Value> {
    match text {
        None => Ok(json!({})),
        Some(text) => {
            let value: Value = serde_json::from_str(text).map_err(|e| {
                CliError::new(Class::BadInput, format!("--{what} is not JSON: {e}"))
            })?;
            if !value.is_object() {
                return Err(CliError::new(
                    Class::BadInput,
                    format!("--{what} must be a JSON object, e.g. '{{\"limit\":100}}'"),
                ));
            }
            Ok(value)
        }
    }
}

/// An amount in CHIPs, as milliCHIPs (notch-core's one parser): refused
/// amounts exit with code 3.
pub fn parse_chips(text: &str) -> Res<u64> {
    notch_core::tally::parse_chips(text).map_err(|e| CliError::new(Class::BadInput, e.to_string()))
}

/// milliCHIPs as CHIPs, e.g. `-12.500`.
fn chips(milli: i64) -> String {
    notch_core::tally::format_signed_chips(milli)
}

fn print_chit(chit: &ChitInfo) {
    let index = chit
        .index
        .map(|i| format!("#{i}"))
        .unwrap_or_else(|| "-".into());
    println!(
        "  {:<5} {}  {:<12} {:>14} CHIP  {}{}{}",
        index,
        chit.uuid,
        chit.state,
        chips(chit.amount),
        chit.consensus,
        chit.memo
            .as_ref()
            .map(|m| format!("  {m:?}"))
            .unwrap_or_default(),
        if chit.needs_action {
            "  (approve or reject it)"
        } else {
            ""
        }
    );
}

fn chit_result(cli: &Cli, chit: &ChitInfo) -> Res {
    if cli.json {
        print_json(&serde_json::to_value(chit)?);
    } else {
        print_chit(chit);
    }
    Ok(())
}

/// `notch chit approve|reject ID`.
pub async fn chit(cli: &Cli, command: &ChitCommand) -> Res {
    let wallet = open(cli).await?;
    let chit = match command {
        ChitCommand::Approve { id } => wallet.chit_approve(id).await?,
        ChitCommand::Reject { id } => wallet.chit_reject(id).await?,
    };
    chit_result(cli, &chit)
}

fn read_file(path: &Path, what: &str) -> Res<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        CliError::new(
            Class::BadInput,
            format!("cannot read the {what} {}: {e}", path.display()),
        )
    })
}

fn print_info(info: &TallyInfo) {
    let partner = info
        .partner_name
        .as_deref()
        .or(info.partner.as_deref())
        .unwrap_or("(nobody yet)");
    println!(
        "{}  {:<12} {}  balance {}",
        info.id,
        info.state.as_str(),
        partner,
        info.balance
    );
    if let (Some(mine), Some(theirs)) = (info.my_limit, info.partner_limit) {
        println!("  you grant {mine}, your partner grants you {theirs} (milliCHIPs)");
    }
    if let Some(reason) = &info.reason {
        println!("  {reason}");
    }
    if let Some(error) = &info.delivery_error {
        println!("  waiting to reach the partner: {error}");
    }
}

/// What a person reads before signing.
fn describe_terms(info: &TallyInfo) -> String {
    let side = info.side.as_deref().unwrap_or("?");
    format!(
        "Tally {}\n  offered by: {}\n  you hold the {side}\n  you grant:  {}\n  you get:    {}\n{}",
        info.id,
        info.partner_name
            .as_deref()
            .or(info.partner.as_deref())
            .unwrap_or("?"),
        info.my_terms,
        info.partner_terms,
        info.comment
            .as_ref()
            .map(|c| format!("  comment:    {c}\n"))
            .unwrap_or_default()
    )
}

pub async fn run(cli: &Cli, command: &TallyCommand) -> Res {
    if let TallyCommand::Verify { file } = command {
        // Needs no wallet.
        return verify(cli, file);
    }
    if let TallyCommand::Pay { amount, .. }
    | TallyCommand::Invoice { amount, .. }
    | TallyCommand::Limit { amount, .. } = command
    {
        // A bad amount is refused before the keystore is asked.
        parse_chips(amount)?;
    }
    if let TallyCommand::Scan { url: Some(url), .. } = command {
        // A text that is no ticket is refused before the keystore is asked.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ticket::parse(url)
            .and_then(|t| t.check(now))
            .map_err(|e| CliError::new(Class::BadInput, e.to_string()))?;
    }
    let wallet = open(cli).await?;
    match command {
        TallyCommand::Ticket {
            qr,
            expires_in,
            side,
            terms: my_terms,
            partner_terms,
            comment,
            name,
            cuid,
        } => {
            if name.is_some() || cuid.is_some() {
                wallet.set_tally_profile(cuid.clone(), name.clone()).await?;
            }
            let options = TicketOptions {
                expires_in: expires_in
                    .map(Duration::from_secs)
                    .unwrap_or(DEFAULT_TICKET_LIFETIME),
                side: match side {
                    SideArg::Stock => Side::Stock,
                    SideArg::Foil => Side::Foil,
                },
                my_terms: terms(my_terms.as_deref(), "terms")?,
                partner_terms: terms(partner_terms.as_deref(), "partner-terms")?,
                comment: comment.clone(),
            };
            let (ticket, draft) = wallet.tally_ticket_with(options).await?;
            if let Some(path) = qr {
                let png = ticket
                    .to_qr_png(LinkForm::MyChips, DEFAULT_MODULE_PX)
                    .map_err(|e| CliError::internal(format!("cannot draw the QR code: {e}")))?;
                std::fs::write(path, png).map_err(|e| {
                    CliError::internal(format!("cannot write {}: {e}", path.display()))
                })?;
            }
            if cli.json {
                print_json(&json!({
                    "url": ticket.to_string(),
                    "notch": ticket.link(LinkForm::Notch),
                    "tally": draft.id,
                    "expires": ticket.expires(),
                    "qr": qr.as_ref().map(|p| p.display().to_string()),
                }));
            } else {
                println!("{ticket}");
                if let Some(path) = qr {
                    eprintln!("QR code written to {}", path.display());
                }
                eprintln!(
                    "Draft tally {}: whoever presents this ticket gets it offered, signed by you. Keep your agent running (`notch agent`).",
                    draft.id
                );
            }
        }
        TallyCommand::Scan { url, image, name } => {
            if name.is_some() {
                wallet.set_tally_profile(None, name.clone()).await?;
            }
            let info = match (url, image) {
                (_, Some(path)) => {
                    wallet
                        .tally_scan_image(&read_file(path, "picture")?)
                        .await?
                }
                (Some(url), None) => wallet.tally_scan(url).await?,
                (None, None) => return Err(CliError::usage("give a ticket link or --image FILE")),
            };
            if cli.json {
                let mut value = serde_json::to_value(&info)?;
                if let Some(map) = value.as_object_mut() {
                    map.insert("tally".into(), json!(info.id));
                }
                print_json(&value);
            } else {
                print_info(&info);
                match info.state.as_str() {
                    "P.offer" => eprintln!(
                        "{}Accept it with `notch tally accept {}`, or refuse it.",
                        describe_terms(&info),
                        info.id
                    ),
                    _ => eprintln!(
                        "The ticket's issuer could not be reached; the agent (`notch agent`) keeps asking."
                    ),
                }
            }
        }
        TallyCommand::List => {
            let list = wallet.tallies().await?;
            if cli.json {
                print_json(&serde_json::to_value(&list)?);
            } else {
                for info in &list {
                    print_info(info);
                }
            }
        }
        TallyCommand::Show { id } => {
            let detail = wallet.tally(id).await?;
            // `show` is the whole tally, every chit: a person asked for it.
            let chits = if detail.chit_count > 0 {
                wallet.tally_chits(id).await?
            } else {
                Vec::new()
            };
            if cli.json {
                let mut shown = serde_json::to_value(&detail)?;
                shown["chits"] = serde_json::to_value(&chits)?;
                print_json(&shown);
            } else {
                print_info(&detail.info);
                println!("  {}", detail.info.description);
                print!("{}", describe_terms(&detail.info));
                if let Some(ticket) = &detail.ticket {
                    println!("  ticket: {ticket}");
                }
                println!("{}", serde_json::to_string_pretty(&detail.record)?);
                if !chits.is_empty() {
                    println!("chits (newest first):");
                    for chit in &chits {
                        print_chit(chit);
                    }
                }
            }
        }
        TallyCommand::Pay { id, amount, memo } => {
            let chit = wallet
                .tally_pay(id, parse_chips(amount)?, memo.clone())
                .await?;
            chit_result(cli, &chit)?;
        }
        TallyCommand::Invoice { id, amount, memo } => {
            let chit = wallet
                .tally_invoice(id, parse_chips(amount)?, memo.clone())
                .await?;
            chit_result(cli, &chit)?;
        }
        TallyCommand::Limit { id, amount } => {
            let chit = wallet.tally_set_limit(id, parse_chips(amount)?).await?;
            chit_result(cli, &chit)?;
        }
        TallyCommand::Close { id } => {
            let chit = wallet.tally_close(id).await?;
            chit_result(cli, &chit)?;
            if !cli.json {
                print_info(&wallet.tally(id).await?.info);
            }
        }
        TallyCommand::Accept { id, yes } => {
            if !*yes {
                let detail = wallet.tally(id).await?;
                eprint!("{}Sign this tally? [y/N] ", describe_terms(&detail.info));
                let _ = std::io::stderr().flush();
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Err(CliError::new(
                        Class::Cancelled,
                        "cancelled; nothing was signed",
                    ));
                }
            }
            let info = wallet.tally_accept(id).await?;
            action_result(cli, &info);
        }
        TallyCommand::Refuse { id } => {
            let info = wallet.tally_refuse(id).await?;
            action_result(cli, &info);
        }
        TallyCommand::Verify { .. } => {}
    }
    Ok(())
}

fn action_result(cli: &Cli, info: &TallyInfo) {
    if cli.json {
        print_json(&json!({
            "tally": info.id,
            "state": info.state,
            "queued": info.queued,
            "delivery_error": info.delivery_error,
        }));
    } else {
        print_info(info);
        if info.queued {
            eprintln!("Your partner's agent could not be reached yet; `notch agent` keeps trying.");
        }
    }
}

fn verify(cli: &Cli, file: &Path) -> Res {
    let bytes = read_file(file, "tally file")?;
    let text = String::from_utf8(bytes).map_err(|_| {
        CliError::new(
            Class::BadInput,
            format!("{} is not UTF-8 text", file.display()),
        )
    })?;
    let verified = Wallet::verify_tally_json(&text)?;
    let record = verified.record();
    if cli.json {
        print_json(&json!({
            "valid": true,
            "uuid": record.uuid(),
            "hash": verified.hash_base64url(),
            "stock": record.party(Side::Stock).cid(),
            "foil": record.party(Side::Foil).cid(),
        }));
    } else {
        println!(
            "valid: both signatures verify (tally {}, hash {})",
            record.uuid(),
            verified.hash_base64url()
        );
    }
    Ok(())
}

/// `notch agent`: runs the tally agent in the foreground until Ctrl-C,
/// printing what happens.
pub async fn agent(cli: &Cli, listen: &str, advertise: Option<&str>, relay: Option<&str>) -> Res {
    let advertise = match advertise {
        None => None,
        Some(text) => Some(match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.ends_with(':') => (
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                port.parse::<u16>().map_err(|_| {
                    CliError::usage(format!("--advertise {text:?}: the port is not a number"))
                })?,
            ),
            _ => (text.to_owned(), 0),
        }),
    };
    let wallet = open(cli).await?;
    let config = AgentConfig {
        listen: listen.to_owned(),
        relay: relay.map(str::to_owned),
        advertise,
        ..AgentConfig::default()
    };
    let mut events = wallet.subscribe();
    let handle = wallet.start_agent(config).await?;
    let (host, port) = handle.advertised();
    if cli.json {
        let (listening, relay) = if handle.relayed() {
            (None, Some(handle.local_addr().to_string()))
        } else {
            (Some(handle.local_addr().to_string()), None)
        };
        print_json(&json!({
            "listening": listening,
            "relay": relay,
            "host": host,
            "port": port,
        }));
    } else if handle.relayed() {
        eprintln!(
            "Tally agent reached through the relay at {} (partners connect to {host}:{port}). Ctrl-C stops it.",
            handle.local_addr()
        );
    } else {
        eprintln!(
            "Tally agent listening on {} (partners connect to {host}:{port}). Ctrl-C stops it.",
            handle.local_addr()
        );
    }
    let _ = std::io::stdout().flush();
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
    let _ = tokio::signal::ctrl_c().await;
    printer.abort();
    handle.stop().await;
    Ok(())
}

/// The default `--listen` of `notch agent`.
pub fn default_listen() -> String {
    format!("127.0.0.1:{DEFAULT_AGENT_PORT}")
}

#[cfg(test)]
mod tests {
    use super::parse_chips;

    /// Which texts are amounts is notch-core's (its tests); here only that a
    /// refusal is bad input (exit code 3) and an amount passes through.
    #[test]
    fn a_refused_amount_is_bad_input() {
        assert_eq!(parse_chips("12.5").ok(), Some(12_500));
        for text in ["", "0", "-1", "1.0001", "1e3"] {
            let err = parse_chips(text).err().map(|e| e.class.code());
            assert_eq!(err, Some(3), "{text:?} must be refused with exit code 3");
        }
    }
}
