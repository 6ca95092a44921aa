//! The tally agent's life inside the app: it runs while the wallet is open
//! and unlocked (started when the wallet opens or the app unlocks, stopped
//! when it locks), restarts on a new address, and tells the UI its status
//! (`notch_ipc::tally::event::AGENT_STATUS`) whenever that changes. The
//! agent itself is notch-core's ([`Wallet::start_agent`]).
//!
//! Where it listens: `NOTCH_AGENT_LISTEN` (tests use `127.0.0.1:0`) if set,
//! else the address saved in the wallet's settings
//! ([`Wallet::set_agent_address`]), else `0.0.0.0:65430` (MyCHIPs's port)
//! telling partners the machine's primary IPv4 address.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::Mutex;

use notch_core::Wallet;
use notch_core::agent::{AgentAddress, AgentConfig, AgentHandle, DEFAULT_AGENT_PORT};
use notch_ipc::CommandError;
use notch_ipc::tally::{AgentStatusView, code as tally_code};
use tauri::{AppHandle, Emitter, Runtime};

use crate::state::lock;

type Res<T> = Result<T, CommandError>;

/// The listening address when nothing else is said: every interface, on
/// MyCHIPs's agent port.
pub fn default_listen() -> String {
    format!("0.0.0.0:{DEFAULT_AGENT_PORT}")
}

/// The listening address from `NOTCH_AGENT_LISTEN`, if set.
pub fn listen_from_env() -> Option<String> {
    std::env::var("NOTCH_AGENT_LISTEN")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// `HOST:PORT` (an IPv6 host in brackets), split; `None` if it is not.
pub fn split_host_port(text: &str) -> Option<(String, u16)> {
    let text = text.trim();
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains(['[', ']']) {
        return None;
    }
    // A bare IPv6 address needs its brackets, or the port is ambiguous.
    if host.contains(':') && !text.starts_with('[') {
        return None;
    }
    Some((host.to_owned(), port))
}

/// The machine's primary non-loopback IPv4 address: the one a packet to
/// the outside would leave from (a UDP socket is "connected", which only
/// asks the routing table; nothing is sent).
pub fn primary_ipv4() -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    // TEST-NET-1 (RFC 5737): routed like any outside address, never used.
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

/// What to start the core's agent with, and a word about it for the status
/// (the loopback fallback).
fn config_for(listen: &str, advertise: Option<&str>) -> Res<(AgentConfig, Option<String>)> {
    let bad = |what: &str, text: &str| {
        CommandError::new(
            tally_code::BAD_AGENT_ADDRESS,
            format!(
                "{text:?} is not a {what} address: write HOST:PORT, e.g. 0.0.0.0:{DEFAULT_AGENT_PORT}"
            ),
        )
    };
    let (host, _) = split_host_port(listen).ok_or_else(|| bad("listening", listen))?;
    let mut note = None;
    let advertise = match advertise.map(str::trim).filter(|a| !a.is_empty()) {
        Some(a) => Some(split_host_port(a).ok_or_else(|| bad("partner", a))?),
        None => {
            let every = host
                .parse::<IpAddr>()
                .map(|ip| ip.is_unspecified())
                .unwrap_or(false);
            if every {
                // Port 0: the port it listens on.
                Some(match primary_ipv4() {
                    Some(ip) => (ip.to_string(), 0),
                    None => {
                        note = Some(
                            "no network address was found, so partners are told 127.0.0.1: only this computer can reach the agent"
                                .to_owned(),
                        );
                        (Ipv4Addr::LOCALHOST.to_string(), 0)
                    }
                })
            } else {
                None
            }
        }
    };
    Ok((
        AgentConfig {
            listen: listen.trim().to_owned(),
            advertise,
            ..AgentConfig::default()
        },
        note,
    ))
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

struct Running {
    handle: AgentHandle,
    /// Where it listens (the port resolved).
    bound: String,
    /// Where it was asked to listen, and what partners were to be told.
    listen: String,
    advertise: Option<String>,
}

/// The agent of the open wallet, if it runs, and its status.
pub struct Agent {
    /// One start, stop or restart at a time.
    running: tokio::sync::Mutex<Option<Running>>,
    /// The status last told the UI.
    view: Mutex<AgentStatusView>,
    /// `NOTCH_AGENT_LISTEN` (or a test's choice): wins over the saved
    /// address until the person sets one.
    listen_override: Mutex<Option<String>>,
}

impl Agent {
    pub fn new(listen_override: Option<String>) -> Self {
        Self {
            running: tokio::sync::Mutex::new(None),
            view: Mutex::new(AgentStatusView {
                state: "stopped".into(),
                listen: listen_override.clone().unwrap_or_else(default_listen),
                bound: None,
                advertised: None,
                partners_connected: 0,
                partners_waiting: 0,
                error: Some("the wallet is not open yet".into()),
            }),
            listen_override: Mutex::new(listen_override),
        }
    }

    pub fn set_listen_override(&self, listen: Option<String>) {
        *lock(&self.listen_override) = listen;
    }

    /// Where to listen and what to tell partners now.
    async fn wanted(&self, wallet: &Wallet) -> (String, Option<String>) {
        if let Some(listen) = lock(&self.listen_override).clone() {
            return (listen, None);
        }
        match wallet.agent_address().await {
            Ok(Some(AgentAddress { listen, advertise })) => (listen, advertise),
            Ok(None) => (default_listen(), None),
            Err(e) => {
                tracing::warn!("cannot read the agent's address: {e}");
                (default_listen(), None)
            }
        }
    }

    /// Runs the agent if `wanted` gives a wallet (open and unlocked), stops
    /// it otherwise (with why, for the status). `wanted` is asked once this
    /// change has its turn.
    pub async fn reconcile<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        wanted: impl FnOnce() -> (Option<Wallet>, &'static str),
    ) {
        let mut running = self.running.lock().await;
        let (wallet, why) = wanted();
        match wallet {
            None => {
                if let Some(r) = running.take() {
                    r.handle.stop().await;
                    tracing::info!("tally agent stopped: {why}");
                }
                let listen = lock(&self.view).listen.clone();
                self.publish(app, stopped(listen, Some(why.to_owned())));
            }
            Some(wallet) => {
                if running.is_some() {
                    return;
                }
                let (listen, advertise) = self.wanted(&wallet).await;
                match self
                    .start(app, &wallet, &listen, advertise.as_deref(), None)
                    .await
                {
                    Ok(r) => *running = Some(r),
                    Err(e) => self.publish(app, stopped(listen, Some(e.message))),
                }
            }
        }
    }

    /// Starts the agent on `listen` (or, going back to where it was, on
    /// the very address it had: `bind`).
    async fn start<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        wallet: &Wallet,
        listen: &str,
        advertise: Option<&str>,
        bind: Option<&str>,
    ) -> Res<Running> {
        let (mut config, note) = config_for(listen, advertise)?;
        if let Some(bind) = bind {
            config.listen = bind.to_owned();
        }
        self.publish(
            app,
            AgentStatusView {
                state: "starting".into(),
                ..stopped(listen.to_owned(), None)
            },
        );
        let handle = wallet.start_agent(config).await.map_err(|e| {
            CommandError::new(
                tally_code::BAD_AGENT_ADDRESS,
                format!("the tally agent could not start: {e}"),
            )
        })?;
        let (host, port) = handle.advertised();
        let mut view = AgentStatusView {
            state: "listening".into(),
            listen: listen.to_owned(),
            bound: Some(handle.local_addr().to_string()),
            advertised: Some(join_host_port(host, port)),
            partners_connected: 0,
            partners_waiting: 0,
            error: note,
        };
        add_activity(&mut view, wallet).await;
        self.publish(app, view);
        Ok(Running {
            bound: handle.local_addr().to_string(),
            handle,
            listen: listen.to_owned(),
            advertise: advertise.map(str::to_owned),
        })
    }

    /// Saves a new address and restarts the agent on it. If it cannot
    /// listen there, the agent goes back to the address it had and nothing
    /// is saved.
    pub async fn set_address<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        wallet: &Wallet,
        listen: String,
        advertise: Option<String>,
    ) -> Res<AgentStatusView> {
        let listen = listen.trim().to_owned();
        let advertise = advertise
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty());
        // Refused before anything stops.
        config_for(&listen, advertise.as_deref())?;
        let mut running = self.running.lock().await;
        let before = running.take().map(|r| {
            let back = (r.listen.clone(), r.advertise.clone(), r.bound.clone());
            (r, back)
        });
        let previous = match before {
            Some((r, back)) => {
                r.handle.stop().await;
                Some(back)
            }
            None => None,
        };
        match self
            .start(app, wallet, &listen, advertise.as_deref(), None)
            .await
        {
            Ok(r) => {
                *running = Some(r);
                wallet
                    .set_agent_address(AgentAddress { listen, advertise })
                    .await
                    .map_err(crate::tally::store_error)?;
                self.set_listen_override(None);
                Ok(lock(&self.view).clone())
            }
            Err(e) => {
                // Back where it was, on the same port (the tickets out
                // there name it).
                let (old_listen, old_advertise, old_bound) = match previous {
                    Some((l, a, b)) => (l, a, Some(b)),
                    None => (lock(&self.view).listen.clone(), None, None),
                };
                match self
                    .start(
                        app,
                        wallet,
                        &old_listen,
                        old_advertise.as_deref(),
                        old_bound.as_deref(),
                    )
                    .await
                {
                    Ok(r) => *running = Some(r),
                    Err(again) => self.publish(app, stopped(old_listen, Some(again.message))),
                }
                Err(e)
            }
        }
    }

    /// The status with what the agent does right now; tells the UI if it
    /// changed.
    pub async fn refresh<R: Runtime>(&self, app: &AppHandle<R>, wallet: Option<&Wallet>) {
        let view = self.status(wallet).await;
        self.publish(app, view);
    }

    /// The status, with the live partner counts when it listens.
    pub async fn status(&self, wallet: Option<&Wallet>) -> AgentStatusView {
        let mut view = lock(&self.view).clone();
        if let (Some(wallet), "listening") = (wallet, view.state.as_str()) {
            add_activity(&mut view, wallet).await;
        }
        view
    }

    fn publish<R: Runtime>(&self, app: &AppHandle<R>, view: AgentStatusView) {
        {
            let mut current = lock(&self.view);
            if *current == view {
                return;
            }
            *current = view.clone();
        }
        if let Err(e) = app.emit(notch_ipc::tally::event::AGENT_STATUS, &view) {
            tracing::warn!("cannot emit the agent status: {e}");
        }
    }
}

fn stopped(listen: String, error: Option<String>) -> AgentStatusView {
    AgentStatusView {
        state: "stopped".into(),
        listen,
        bound: None,
        advertised: None,
        partners_connected: 0,
        partners_waiting: 0,
        error,
    }
}

async fn add_activity(view: &mut AgentStatusView, wallet: &Wallet) {
    match wallet.agent_activity().await {
        Ok(a) => {
            view.partners_connected = u32::try_from(a.partners_connected).unwrap_or(u32::MAX);
            view.partners_waiting = u32::try_from(a.partners_waiting).unwrap_or(u32::MAX);
        }
        Err(e) => tracing::warn!("cannot read the agent's activity: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port() {
        assert_eq!(
            split_host_port("0.0.0.0:65430"),
            Some(("0.0.0.0".into(), 65430))
        );
        assert_eq!(
            split_host_port(" example.org:1 "),
            Some(("example.org".into(), 1))
        );
        assert_eq!(split_host_port("[::1]:9"), Some(("::1".into(), 9)));
        for bad in ["", "host", "host:", "host:70000", ":80", "::1:9", "a b:1"] {
            assert_eq!(split_host_port(bad), None, "{bad:?}");
        }
        assert!(config_for("nope", None).is_err());
        assert!(config_for("127.0.0.1:0", Some("x")).is_err());
        let (config, _) = config_for("127.0.0.1:0", None).expect("fine");
        assert_eq!(config.advertise, None, "a specific address is its own");
        let (config, note) = config_for("0.0.0.0:0", None).expect("fine");
        let (host, port) = config.advertise.expect("every interface needs a host");
        assert_eq!(port, 0, "the listening port");
        assert!(host != "0.0.0.0");
        assert_eq!(note.is_some(), host == "127.0.0.1");
        let (config, _) = config_for("0.0.0.0:1", Some("wallet.example:4")).expect("fine");
        assert_eq!(config.advertise, Some(("wallet.example".into(), 4)));
    }
}
