//! Tallies (MyCHIPs credit relationships) on [`NotchWallet`]: the same
//! calls the CLI has. Tickets, scans, offers and chits are the core's; the
//! agent that talks to partners is the core's too.
//!
//! A phone cannot accept connections: its agent reaches partners through
//! the gateway's relay (ADR 6, `AgentOptions.relay`): it opens no listener,
//! keeps an outbound control connection to the relay while it runs, and
//! the relay's host and port go into its tickets. Hosts that can listen
//! (desktops, the Linux tests) may give `listen` instead.

use std::time::Duration;

use notch_core as core;
use notch_core::ticket::{DEFAULT_MODULE_PX, LinkForm, Ticket};

use crate::errors::{AgentError, ChitError, ScanError, TallyError, TicketError};
use crate::runtime::run;
use crate::wallet::NotchWallet;

/// The largest picture file `scan_ticket_image_file` reads.
const MAX_IMAGE_FILE: u64 = 32 * 1024 * 1024;

/// One tally, for lists.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TallyInfo {
    /// The wallet's id of the tally (what the calls take).
    pub id: String,
    pub uuid: Option<String>,
    /// MyCHIPs's state name (`ticket`, `draft`, `P.offer`, `open`, …).
    pub state: String,
    /// What the state means, in words.
    pub description: String,
    /// Our half: `stock` or `foil`.
    pub side: Option<String>,
    /// The partner's CHIP address, `cid:agent`.
    pub partner: Option<String>,
    pub partner_name: Option<String>,
    /// milliCHIPs from our side: positive when the partner owes us.
    pub balance: i64,
    /// The credit we grant the partner now, milliCHIPs.
    pub my_limit: Option<u64>,
    /// The credit the partner grants us now, milliCHIPs.
    pub partner_limit: Option<u64>,
    /// MyCHIPs credit terms, JSON.
    pub my_terms_json: String,
    pub partner_terms_json: String,
    pub comment: Option<String>,
    /// Why it is void.
    pub reason: Option<String>,
    /// A message for the partner waits to be delivered.
    pub queued: bool,
    pub delivery_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<core::TallyInfo> for TallyInfo {
    fn from(t: core::TallyInfo) -> Self {
        Self {
            id: t.id,
            uuid: t.uuid,
            state: t.state.as_str().to_owned(),
            description: t.description,
            side: t.side,
            partner: t.partner,
            partner_name: t.partner_name,
            balance: t.balance,
            my_limit: t.my_limit,
            partner_limit: t.partner_limit,
            my_terms_json: t.my_terms.to_string(),
            partner_terms_json: t.partner_terms.to_string(),
            comment: t.comment,
            reason: t.reason,
            queued: t.queued,
            delivery_error: t.delivery_error,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// One chit (a payment, an invoice, a setting) on a tally.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ChitInfo {
    pub uuid: String,
    pub tally: String,
    /// MyCHIPs's state code (`A.pend`, `L.good`, …).
    pub state: String,
    /// `tran` (a payment) or `set` (a setting).
    pub kind: String,
    /// Who signs it: `stock` or `foil`.
    pub by: String,
    /// We issue (sign) it.
    pub mine: bool,
    /// milliCHIPs of a payment.
    pub units: Option<u64>,
    /// What it does to our balance, milliCHIPs.
    pub amount: i64,
    pub memo: Option<String>,
    pub date: String,
    pub index: Option<u64>,
    /// `linked`, `provisional` or `unlinked`.
    pub consensus: String,
    /// An invoice waiting for our approval or rejection.
    pub needs_action: bool,
    pub created_at: i64,
}

impl From<core::ChitInfo> for ChitInfo {
    fn from(c: core::ChitInfo) -> Self {
        Self {
            uuid: c.uuid,
            tally: c.tally,
            state: c.state,
            kind: c.kind,
            by: c.by,
            mine: c.mine,
            units: c.units,
            amount: c.amount,
            memo: c.memo,
            date: c.date,
            index: c.index,
            consensus: c.consensus,
            needs_action: c.needs_action,
            created_at: c.created_at,
        }
    }
}

/// One tally with its record exactly as signed.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TallyDetail {
    pub info: TallyInfo,
    /// The record (or the draft, or the scanned ticket), JSON.
    pub record_json: String,
    /// The ticket link of a draft still waiting for its partner.
    pub ticket: Option<String>,
    /// How many chits the tally holds (`tally_chits` reads them).
    pub chit_count: u64,
}

/// Who the wallet is in its tallies.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TallyProfile {
    pub cuid: String,
    pub name: Option<String>,
    /// The agent id tickets name (base64url X25519 key).
    pub agent: String,
    pub host: Option<String>,
    pub port: Option<u16>,
}

impl From<core::TallyProfile> for TallyProfile {
    fn from(p: core::TallyProfile) -> Self {
        Self {
            cuid: p.cuid,
            name: p.name,
            agent: p.agent,
            host: p.host,
            port: p.port,
        }
    }
}

/// The draft a new ticket invites to. Every field may be left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct TicketOptions {
    /// How long the ticket is good for (default 45 minutes, as MyCHIPs).
    #[uniffi(default = None)]
    pub expires_in_secs: Option<u64>,
    /// Our half, `stock` (default) or `foil`.
    #[uniffi(default = None)]
    pub side: Option<String>,
    /// The credit terms we grant the partner, MyCHIPs JSON (`{"limit": 100}`).
    #[uniffi(default = None)]
    pub my_terms_json: Option<String>,
    /// The terms we ask the partner to grant us.
    #[uniffi(default = None)]
    pub partner_terms_json: Option<String>,
    #[uniffi(default = None)]
    pub comment: Option<String>,
}

impl TicketOptions {
    fn to_core(&self) -> Result<core::TicketOptions, TicketError> {
        let mut o = core::TicketOptions::default();
        if let Some(secs) = self.expires_in_secs {
            o.expires_in = Duration::from_secs(secs);
        }
        if let Some(side) = &self.side {
            o.side = core::tally::Side::parse(side).ok_or_else(|| {
                TicketError::BadOptions(format!("a side is \"stock\" or \"foil\", not {side:?}"))
            })?;
        }
        let terms = |text: &Option<String>, whose: &str| -> Result<_, TicketError> {
            match text {
                None => Ok(None),
                Some(t) => serde_json::from_str::<serde_json::Value>(t)
                    .ok()
                    .filter(|v| v.is_object())
                    .map(Some)
                    .ok_or_else(|| {
                        TicketError::BadOptions(format!(
                            "{whose} credit terms are a JSON object such as {{\"limit\": 100}}"
                        ))
                    }),
            }
        };
        if let Some(v) = terms(&self.my_terms_json, "my")? {
            o.my_terms = v;
        }
        if let Some(v) = terms(&self.partner_terms_json, "the partner's")? {
            o.partner_terms = v;
        }
        o.comment = self.comment.clone();
        Ok(o)
    }
}

/// A ticket of this wallet, ready to show.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TallyTicket {
    /// `https://mychips.org/invite?…`: what MyCHIPs wallets and phone
    /// cameras read; the one in the QR code.
    pub link: String,
    /// `notch:ticket?…`: a deep link that opens Notch.
    pub notch_link: String,
    /// The QR code of `link`, PNG (8 pixels a module).
    pub qr_png: Vec<u8>,
    /// Unix seconds.
    pub expires: Option<u64>,
    /// The draft tally it invites to.
    pub tally: TallyInfo,
}

/// How partners reach the agent: through a relay (phones) or a listener.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AgentOptions {
    /// Listen on `HOST:PORT` (port 0: any free port). Not used with `relay`.
    #[uniffi(default = "")]
    pub listen: String,
    /// Reach partners through the gateway's agent relay at `HOST:PORT`
    /// (what a phone does: it never listens). Partners are told `HOST`
    /// (or `advertise_host`) and the port the relay gives this agent.
    #[uniffi(default = None)]
    pub relay: Option<String>,
    /// The host partners connect to, if not the listening address.
    #[uniffi(default = None)]
    pub advertise_host: Option<String>,
    /// Its port (0 or null: the listening port).
    #[uniffi(default = None)]
    pub advertise_port: Option<u16>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[uniffi::export]
impl NotchWallet {
    /// Starts the tally agent (listening for partners, or registered with
    /// the relay, and delivering the outbox with retries); replaces one
    /// started before. Returns the address it listens on, or in relay mode
    /// the address partners are told (`HOST:PORT` on the relay).
    pub async fn start_agent(&self, options: AgentOptions) -> Result<String, AgentError> {
        let w = self.wallet.clone();
        let handle = run::<_, AgentError, _>(async move {
            let config = core::AgentConfig {
                listen: options.listen,
                relay: options.relay.filter(|r| !r.trim().is_empty()),
                advertise: options
                    .advertise_host
                    .map(|h| (h, options.advertise_port.unwrap_or(0))),
                ..Default::default()
            };
            Ok(w.start_agent(config).await?)
        })
        .await?;
        let addr = if handle.relayed() {
            let (host, port) = handle.advertised();
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        } else {
            handle.local_addr().to_string()
        };
        if let Some(old) = self.agent.lock().await.replace(handle) {
            drop(old);
        }
        Ok(addr)
    }

    /// Stops the tally agent.
    pub async fn stop_agent(&self) {
        if let Some(handle) = self.agent.lock().await.take() {
            let _ = run(async move {
                handle.stop().await;
                Ok::<_, AgentError>(())
            })
            .await;
        }
    }

    /// Delivers what is due in the outbox now.
    pub async fn deliver_outbox(&self) -> Result<u64, AgentError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.deliver_outbox().await?.delivered as u64) }).await
    }

    /// Issues a ticket for a new tally: show `qr_png` (or share `link`).
    /// Whoever presents it gets the tally offered, signed by this wallet.
    #[uniffi::method(default(options = None))]
    pub async fn my_ticket(
        &self,
        options: Option<TicketOptions>,
    ) -> Result<TallyTicket, TicketError> {
        let options = options.unwrap_or_default().to_core()?;
        let w = self.wallet.clone();
        run(async move {
            let (ticket, tally) = w.tally_ticket_with(options).await?;
            let qr_png = ticket.to_qr_png(LinkForm::MyChips, DEFAULT_MODULE_PX)?;
            Ok(TallyTicket {
                link: ticket.link(LinkForm::MyChips),
                notch_link: ticket.link(LinkForm::Notch),
                qr_png,
                expires: ticket.expires(),
                tally: tally.into(),
            })
        })
        .await
    }

    /// Reads a ticket (a MyCHIPs invitation link, a `notch:ticket` link or
    /// MyCHIPs's ticket JSON) and asks its issuer for the tally.
    pub async fn scan_ticket_text(&self, text: String) -> Result<TallyInfo, ScanError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.tally_scan(&text).await?.into()) }).await
    }

    /// The same from a picture (PNG or JPEG bytes) holding the ticket's QR
    /// code.
    pub async fn scan_ticket_image(&self, image: Vec<u8>) -> Result<TallyInfo, ScanError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.tally_scan_image(&image).await?.into()) }).await
    }

    /// The same from a picture file.
    pub async fn scan_ticket_image_file(&self, path: String) -> Result<TallyInfo, ScanError> {
        let w = self.wallet.clone();
        run(async move {
            let bytes = tokio::task::spawn_blocking(move || read_image(&path))
                .await
                .map_err(|e| ScanError::File(format!("the picture could not be read: {e}")))??;
            Ok(w.tally_scan_image(&bytes).await?.into())
        })
        .await
    }

    /// The same from a camera frame: `luma` is `width * height` grey bytes,
    /// row by row (Android's Y plane, iOS's luminance plane), 0 black.
    pub async fn scan_ticket_frame(
        &self,
        luma: Vec<u8>,
        width: u32,
        height: u32,
    ) -> Result<TallyInfo, ScanError> {
        let w = self.wallet.clone();
        run(async move {
            let ticket = tokio::task::spawn_blocking(move || {
                Ticket::scan_luma(width, height, &luma, unix_now())
            })
            .await
            .map_err(|e| ScanError::Picture(format!("the frame could not be read: {e}")))??;
            Ok(w.tally_scan(&ticket.link(LinkForm::MyChips)).await?.into())
        })
        .await
    }

    /// Every tally, newest first.
    pub async fn tallies(&self) -> Result<Vec<TallyInfo>, TallyError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.tallies().await?.into_iter().map(Into::into).collect()) }).await
    }

    /// One tally with its record and how many chits it holds.
    pub async fn tally(&self, id: String) -> Result<TallyDetail, TallyError> {
        let w = self.wallet.clone();
        run(async move {
            let d = w.tally(&id).await?;
            Ok(TallyDetail {
                info: d.info.into(),
                record_json: d.record.to_string(),
                ticket: d.ticket,
                chit_count: d.chit_count,
            })
        })
        .await
    }

    /// Accepts an offered tally (show its terms first: this is consent).
    pub async fn tally_accept(&self, id: String) -> Result<TallyInfo, TallyError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.tally_accept(&id).await?.into()) }).await
    }

    /// Refuses an offered tally, withdraws an unused ticket, or gives up a
    /// scanned ticket still waiting for its offer.
    pub async fn tally_refuse(&self, id: String) -> Result<TallyInfo, TallyError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.tally_refuse(&id).await?.into()) }).await
    }

    /// The chits of a tally, newest first.
    pub async fn tally_chits(&self, id: String) -> Result<Vec<ChitInfo>, ChitError> {
        let w = self.wallet.clone();
        run(async move {
            Ok(w.tally_chits(&id)
                .await?
                .into_iter()
                .map(Into::into)
                .collect())
        })
        .await
    }

    /// Pays `units` milliCHIPs to the partner of an open tally.
    #[uniffi::method(default(memo = None))]
    pub async fn tally_pay(
        &self,
        id: String,
        units: u64,
        memo: Option<String>,
    ) -> Result<ChitInfo, ChitError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.tally_pay(&id, units, memo).await?.into()) }).await
    }

    /// Asks the partner of an open tally to pay `units` milliCHIPs.
    #[uniffi::method(default(memo = None))]
    pub async fn tally_invoice(
        &self,
        id: String,
        units: u64,
        memo: Option<String>,
    ) -> Result<ChitInfo, ChitError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.tally_invoice(&id, units, memo).await?.into()) }).await
    }

    /// Approves (signs and pays) an invoice from the partner.
    pub async fn chit_approve(&self, chit: String) -> Result<ChitInfo, ChitError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.chit_approve(&chit).await?.into()) }).await
    }

    /// Rejects an invoice from the partner.
    pub async fn chit_reject(&self, chit: String) -> Result<ChitInfo, ChitError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.chit_reject(&chit).await?.into()) }).await
    }

    /// Sets the credit this wallet grants the partner, milliCHIPs.
    pub async fn tally_set_limit(&self, id: String, limit: u64) -> Result<ChitInfo, ChitError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.tally_set_limit(&id, limit).await?.into()) }).await
    }

    /// Asks to close a tally (closed once its balance is zero).
    pub async fn tally_close(&self, id: String) -> Result<ChitInfo, ChitError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.tally_close(&id).await?.into()) }).await
    }

    /// Who the wallet is in its tallies.
    pub async fn tally_profile(&self) -> Result<TallyProfile, TallyError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.tally_profile().await?.into()) }).await
    }

    /// Sets the CHIP user id and/or the certificate name of new tallies.
    #[uniffi::method(default(cuid = None, name = None))]
    pub async fn set_tally_profile(
        &self,
        cuid: Option<String>,
        name: Option<String>,
    ) -> Result<TallyProfile, TicketError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.set_tally_profile(cuid, name).await?.into()) }).await
    }
}

fn read_image(path: &str) -> Result<Vec<u8>, ScanError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| ScanError::File(format!("cannot open the picture {path}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_IMAGE_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ScanError::File(format!("cannot read the picture {path}: {e}")))?;
    if bytes.len() as u64 > MAX_IMAGE_FILE {
        return Err(ScanError::File(format!(
            "the picture {path} is larger than {} MiB",
            MAX_IMAGE_FILE / (1024 * 1024)
        )));
    }
    Ok(bytes)
}
