//! What the app keeps between commands: the gateway probe (for the status
//! line before there is a wallet), the secret store, the open wallet (once
//! there is one), the phrase being backed up, prepared payments awaiting
//! confirmation, and the sync state as the events report it. The decisions
//! (which words to check, which network, whether the gateway answers) are
//! notch-core's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notch_core::backup::DEFAULT_CHECK_WORDS;
use notch_core::keys::{RecoveryPhrase, WordCount};
use notch_core::secrets::{OsSecretStore, SecretStore, SecretStoreError};
use notch_core::{
    BackupCheck, GatewayProbe, GatewayReachability, OpenError, SendProposal, Wallet, WalletConfig,
    choose_network,
};
use notch_ipc::{AppStatus, CommandError, GatewayStatus, SyncView, WalletState, code};
use tauri::{AppHandle, Emitter, Manager, Runtime};

use crate::errors;

/// How often the background sync polls when nothing is pushed.
const WATCH_POLL: Duration = Duration::from_secs(5);
/// How long opening the OS keystore may take before the app says it
/// cannot use it (rather than showing "opening…" forever).
const KEYSTORE_TIMEOUT: Duration = Duration::from_secs(20);
/// Which secret store the app uses.
pub enum Secrets {
    /// The OS keystore (the real app): never anything else.
    Os,
    /// A given store (tests inject a `MemorySecretStore`).
    Given(Arc<dyn SecretStore>),
}

pub struct AppState {
    /// Asks the gateway whether it answers while there is no wallet (the
    /// wallet asks its own gateway once it is open).
    probe: GatewayProbe,
    gateway_url: String,
    data_dir: PathBuf,
    secrets_choice: Secrets,
    secrets: Mutex<Option<Arc<dyn SecretStore>>>,
    started: AtomicBool,
    /// Behind the lock passphrase: commands other than unlock are refused.
    locked: AtomicBool,
    phase: Mutex<WalletState>,
    wallet: Mutex<Option<Wallet>>,
    /// The phrase of a wallet being created, until its backup is confirmed.
    pending: Mutex<Option<(RecoveryPhrase, BackupCheck)>>,
    proposals: Mutex<HashMap<String, SendProposal>>,
    sync: Mutex<SyncView>,
    /// The tally agent, while the wallet is open and unlocked.
    agent: Arc<crate::agent::Agent>,
    /// The link the app was started with, until the UI takes it.
    links: crate::deeplink::Links,
}

/// Locks a mutex, recovering from poisoning (state stays usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AppState {
    /// The real app: OS keystore, wallet in `data_dir`.
    pub fn new(gateway_url: &str, data_dir: PathBuf) -> Result<Self, CommandError> {
        Self::with_secrets(gateway_url, data_dir, Secrets::Os)
    }

    pub fn with_secrets(
        gateway_url: &str,
        data_dir: PathBuf,
        secrets: Secrets,
    ) -> Result<Self, CommandError> {
        let probe = GatewayProbe::new(gateway_url, false)
            .map_err(|e| CommandError::new("bad_gateway_url", e.to_string()))?;
        Ok(Self {
            probe,
            gateway_url: gateway_url.to_owned(),
            data_dir,
            secrets_choice: secrets,
            secrets: Mutex::new(None),
            started: AtomicBool::new(false),
            locked: AtomicBool::new(false),
            phase: Mutex::new(WalletState::Starting),
            wallet: Mutex::new(None),
            pending: Mutex::new(None),
            proposals: Mutex::new(HashMap::new()),
            sync: Mutex::new(SyncView {
                height: None,
                unreachable_since: None,
                unreachable_reason: None,
                progress: None,
                syncing: false,
                error: None,
            }),
            agent: Arc::new(crate::agent::Agent::new(crate::agent::listen_from_env())),
            links: crate::deeplink::Links::default(),
        })
    }

    /// Where the tally agent listens, instead of `NOTCH_AGENT_LISTEN` and
    /// the saved address (tests: `127.0.0.1:0`).
    pub fn with_agent_listen(self, listen: &str) -> Self {
        self.agent.set_listen_override(Some(listen.to_owned()));
        self
    }

    pub fn agent(&self) -> &crate::agent::Agent {
        &self.agent
    }

    pub(crate) fn links(&self) -> &crate::deeplink::Links {
        &self.links
    }

    /// Starts the tally agent if the wallet is open and unlocked, stops it
    /// if not; in the background, one change at a time.
    pub fn reconcile_agent<R: Runtime>(&self, app: &AppHandle<R>) {
        let (agent, app) = (self.agent.clone(), app.clone());
        tauri::async_runtime::spawn(async move {
            // What is wanted is read once it is this change's turn, so
            // that a quick lock and unlock end as the last one says.
            agent
                .reconcile(&app, || match app.try_state::<AppState>() {
                    Some(state) if state.is_locked() => (None, "Notch is locked"),
                    Some(state) => (lock(&state.wallet).clone(), "there is no wallet yet"),
                    None => (None, "the app is stopping"),
                })
                .await;
        });
    }

    pub fn data_dir(&self) -> &PathBuf {
        &self.data_dir
    }

    pub fn status(&self) -> AppStatus {
        AppStatus {
            wallet: lock(&self.phase).clone(),
            gateway_url: self.gateway_url.clone(),
            data_dir: self.data_dir.display().to_string(),
            locked: self.is_locked(),
        }
    }

    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::SeqCst)
    }

    /// Locks or unlocks, and tells the UI.
    pub fn set_locked<R: Runtime>(&self, app: &AppHandle<R>, locked: bool) {
        self.locked.store(locked, Ordering::SeqCst);
        if locked {
            // A send reviewed before the lock must be reviewed again.
            lock(&self.proposals).clear();
        }
        // The agent signs for the wallet: it stops while the app is locked.
        self.reconcile_agent(app);
        if let Err(e) = app.emit(notch_ipc::event::APP_STATUS, self.status()) {
            tracing::warn!("cannot emit app status: {e}");
        }
    }

    fn set_phase<R: Runtime>(&self, app: &AppHandle<R>, phase: WalletState) {
        *lock(&self.phase) = phase;
        if let Err(e) = app.emit(notch_ipc::event::APP_STATUS, self.status()) {
            tracing::warn!("cannot emit app status: {e}");
        }
    }

    /// Asks the gateway for its tip: the wallet's own check once there is
    /// a wallet (locked or not: the status line shows either way), the
    /// probe before. "Since when" is core's record either way.
    pub async fn refresh_status(&self) -> GatewayStatus {
        let wallet = lock(&self.wallet).clone();
        let reach = match wallet {
            Some(wallet) => wallet.check_gateway().await,
            None => self.probe.check().await,
        };
        gateway_status(reach)
    }

    /// The secret store, opened on first use. The OS keystore or nothing:
    /// there is no fallback to memory.
    async fn secrets(&self) -> Result<Arc<dyn SecretStore>, SecretStoreError> {
        if let Some(store) = lock(&self.secrets).clone() {
            return Ok(store);
        }
        let store: Arc<dyn SecretStore> = match &self.secrets_choice {
            Secrets::Given(store) => store.clone(),
            Secrets::Os => {
                let opening = tokio::task::spawn_blocking(OsSecretStore::open);
                let opened = tokio::time::timeout(KEYSTORE_TIMEOUT, opening)
                    .await
                    .map_err(|_| SecretStoreError::Unavailable {
                        store: "OS keystore".into(),
                        reason: format!(
                            "it did not answer within {} s",
                            KEYSTORE_TIMEOUT.as_secs()
                        ),
                        what_to_do: "Check that your keyring is running and unlocked \
                                     (on Linux: a Secret Service such as GNOME Keyring), \
                                     then restart Notch."
                            .into(),
                    })?
                    .map_err(|e| SecretStoreError::Failed {
                        store: "OS keystore".into(),
                        reason: format!("the task opening it failed: {e}"),
                    })??;
                Arc::new(opened)
            }
        };
        *lock(&self.secrets) = Some(store.clone());
        Ok(store)
    }

    /// Opens the keystore and the wallet if there is one; once. Later calls
    /// return at once.
    pub async fn ensure_started<R: Runtime>(&self, app: &AppHandle<R>) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let phase = match self.secrets().await {
            Err(e) => keystore_state(e),
            Ok(store) => {
                if !self.data_dir.join("wallet.sqlite").is_file() {
                    WalletState::NoWallet
                } else {
                    match self.open_existing(store).await {
                        Ok(wallet) => {
                            let phase = open_state(&wallet);
                            // With a lock passphrase set, the app starts locked.
                            match wallet.lock_settings().await {
                                Ok(s) => self.locked.store(s.passphrase_set, Ordering::SeqCst),
                                Err(e) => {
                                    tracing::warn!("cannot read the lock settings: {e}");
                                    self.locked.store(true, Ordering::SeqCst);
                                }
                            }
                            self.install(app, wallet);
                            phase
                        }
                        Err(OpenError::SecretStore(e)) => keystore_state(e),
                        Err(e) => {
                            let e = errors::open(e);
                            WalletState::Failed {
                                code: e.code,
                                message: e.message,
                            }
                        }
                    }
                }
            }
        };
        self.set_phase(app, phase);
    }

    /// Opens the wallet in the data directory on whatever network it was
    /// created for.
    async fn open_existing(&self, store: Arc<dyn SecretStore>) -> Result<Wallet, OpenError> {
        let network = Wallet::stored_network(&self.data_dir)
            .await?
            .ok_or_else(|| OpenError::NoWallet {
                path: self.data_dir.join("wallet.sqlite"),
            })?;
        Wallet::open(
            WalletConfig::new(&self.data_dir, &self.gateway_url, network),
            store,
        )
        .await
    }

    /// The open wallet, or why there is none (or that the app is locked).
    pub fn wallet(&self) -> Result<Wallet, CommandError> {
        if self.is_locked() {
            return Err(CommandError::new(
                code::LOCKED,
                "Notch is locked: enter your lock passphrase to unlock it",
            ));
        }
        self.wallet_even_locked()
    }

    /// The open wallet, locked or not: only for unlocking.
    pub fn wallet_even_locked(&self) -> Result<Wallet, CommandError> {
        if let Some(w) = lock(&self.wallet).clone() {
            return Ok(w);
        }
        Err(match lock(&self.phase).clone() {
            WalletState::Starting => {
                CommandError::new(code::WALLET_STARTING, "the wallet is still opening")
            }
            WalletState::KeystoreUnavailable { message, .. } => {
                CommandError::new(code::KEYSTORE_UNAVAILABLE, message)
            }
            WalletState::Failed { code, message } => CommandError::new(code, message),
            _ => CommandError::new(
                code::NO_WALLET,
                "there is no wallet yet: create or restore one first",
            ),
        })
    }

    fn ensure_no_wallet(&self) -> Result<(), CommandError> {
        if lock(&self.wallet).is_some() || self.data_dir.join("wallet.sqlite").is_file() {
            return Err(CommandError::new(
                code::WALLET_EXISTS,
                format!(
                    "there is already a wallet in {}; use another data directory (NOTCH_DATA_DIR)",
                    self.data_dir.display()
                ),
            ));
        }
        Ok(())
    }

    /// A fresh phrase to back up, with the positions to confirm.
    pub fn begin_create(&self, words: u8) -> Result<notch_ipc::NewPhrase, CommandError> {
        self.ensure_no_wallet()?;
        let count = WordCount::from_words(usize::from(words)).ok_or_else(|| {
            CommandError::new(
                code::INVALID,
                format!("a recovery phrase has 12 or 24 words, not {words}"),
            )
        })?;
        let phrase = RecoveryPhrase::generate(count)
            .map_err(|e| CommandError::new(code::INTERNAL, e.to_string()))?;
        let check = BackupCheck::new(&phrase, DEFAULT_CHECK_WORDS).map_err(errors::backup)?;
        let words: Vec<String> = phrase.words().map(str::to_owned).collect();
        let check_positions = check.positions().to_vec();
        *lock(&self.pending) = Some((phrase, check));
        Ok(notch_ipc::NewPhrase {
            words,
            check_positions,
        })
    }

    /// Checks the backup words and creates the wallet from the pending phrase.
    /// (A new phrase has no history; a restored one is scanned for it.)
    pub async fn finish_create<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        answers: &[String],
    ) -> Result<AppStatus, CommandError> {
        let (phrase, check) = lock(&self.pending).clone().ok_or_else(|| {
            CommandError::new(
                code::NO_PENDING_PHRASE,
                "there is no new recovery phrase to confirm; start again",
            )
        })?;
        check.verify(&phrase, answers).map_err(errors::backup)?;
        let status = self.init_wallet(app, phrase, Origin::New).await?;
        *lock(&self.pending) = None;
        Ok(status)
    }

    /// Restores a wallet from its phrase; the background sync rescans.
    pub async fn restore<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        phrase: &str,
    ) -> Result<AppStatus, CommandError> {
        let phrase = RecoveryPhrase::parse(phrase)
            .map_err(|e| CommandError::new(code::BAD_PHRASE, e.to_string()))?;
        self.init_wallet(app, phrase, Origin::Restored).await
    }

    async fn init_wallet<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        phrase: RecoveryPhrase,
        origin: Origin,
    ) -> Result<AppStatus, CommandError> {
        self.ensure_no_wallet()?;
        let store = self.secrets().await.map_err(errors::secrets)?;
        // A new wallet takes its gateway's network (core's one rule; the
        // app names none itself).
        let reach = self.probe.check().await;
        let network = choose_network(None, None, Some(&reach)).map_err(errors::network)?;
        let config = WalletConfig::new(&self.data_dir, &self.gateway_url, network);
        let wallet = match origin {
            Origin::New => Wallet::create_with_phrase(config, store, phrase).await,
            Origin::Restored => Wallet::restore(config, store, phrase).await,
        }
        .map_err(errors::open)?;
        let phase = open_state(&wallet);
        self.install(app, wallet);
        self.set_phase(app, phase);
        Ok(self.status())
    }

    /// Keeps the wallet and starts its background work: the event
    /// forwarder and the watch/sync loop.
    fn install<R: Runtime>(&self, app: &AppHandle<R>, wallet: Wallet) {
        *lock(&self.wallet) = Some(wallet.clone());
        self.reconcile_agent(app);
        lock(&self.sync).syncing = true;
        let mut events = wallet.subscribe();
        let handle = app.clone();
        let forward_wallet = wallet.clone();
        tauri::async_runtime::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(event) => {
                        let Some(ipc) = crate::events::to_ipc(event) else {
                            continue;
                        };
                        if let Some(state) = handle.try_state::<AppState>() {
                            state.note(&ipc);
                        }
                        match &ipc {
                            notch_ipc::WalletEvent::Notification {
                                id,
                                title,
                                quiet: false,
                                ..
                            } => {
                                crate::events::notify_desktop(&handle, &forward_wallet, *id, title)
                                    .await;
                            }
                            notch_ipc::WalletEvent::CaughtUp {
                                notifications,
                                payments_received,
                                ..
                            } => crate::events::notify_caught_up(
                                &handle,
                                *notifications,
                                *payments_received,
                            ),
                            _ => {}
                        }
                        if let Err(e) = handle.emit(notch_ipc::event::WALLET, &ipc) {
                            tracing::warn!("cannot emit a wallet event: {e}");
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!("the UI forwarder missed {n} wallet events");
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
        // The core's watch retries every failure itself and reports it
        // through events; it runs until the app stops.
        tauri::async_runtime::spawn(async move {
            wallet.watch(WATCH_POLL).await;
        });
    }

    /// Follows the sync state from the events.
    pub fn note(&self, event: &notch_ipc::WalletEvent) {
        use notch_ipc::WalletEvent as E;
        let mut s = lock(&self.sync);
        match event {
            E::SyncProgress {
                done,
                total,
                height,
                ..
            } => {
                s.syncing = true;
                s.progress = Some((*done, *total));
                s.height = Some(*height);
            }
            E::SyncDone { height } => {
                s.syncing = false;
                s.progress = None;
                s.height = Some(*height);
                s.error = None;
            }
            E::GatewayUnreachable { since, reason } => {
                s.syncing = false;
                s.unreachable_since = Some(*since);
                s.unreachable_reason = Some(reason.clone());
            }
            E::GatewayBack { .. } => {
                s.unreachable_since = None;
                s.unreachable_reason = None;
            }
            // The wallet refused what the gateway served; it keeps retrying.
            E::VerificationFailed { what } => {
                s.syncing = false;
                s.error = Some(what.clone());
            }
            _ => {}
        }
    }

    pub fn sync_view(&self) -> SyncView {
        lock(&self.sync).clone()
    }

    pub fn keep_proposal(&self, proposal: SendProposal) {
        let mut map = lock(&self.proposals);
        // Only the latest few reviews matter.
        if map.len() > 32 {
            map.clear();
        }
        map.insert(proposal.txid.clone(), proposal);
    }

    pub fn take_proposal(&self, txid: &str) -> Option<SendProposal> {
        lock(&self.proposals).remove(txid)
    }
}

fn open_state(wallet: &Wallet) -> WalletState {
    WalletState::Open {
        wallet_id: wallet.wallet_id().to_owned(),
        network: wallet.network().name().to_owned(),
    }
}

fn keystore_state(e: SecretStoreError) -> WalletState {
    let what_to_do = match &e {
        SecretStoreError::Unavailable { what_to_do, .. } => what_to_do.clone(),
        SecretStoreError::AccessDenied { .. } => {
            "Unlock your keyring (or allow Notch to use it), then restart Notch.".into()
        }
        _ => "Notch keeps its recovery phrase only in the operating system's keystore. \
              Make one available (on Linux: a Secret Service such as GNOME Keyring or \
              KeePassXC, running and unlocked), then restart Notch."
            .into(),
    };
    WalletState::KeystoreUnavailable {
        message: e.to_string(),
        what_to_do,
    }
}

/// Core's reachability as the IPC carries it.
fn gateway_status(reach: GatewayReachability) -> GatewayStatus {
    match reach {
        GatewayReachability::Reachable {
            url,
            network,
            tip_height,
            sandbox,
        } => GatewayStatus::Connected {
            url,
            network,
            tip_height,
            sandbox,
        },
        GatewayReachability::Unreachable { url, reason, since } => GatewayStatus::Unreachable {
            url,
            reason,
            since_unix: since,
        },
    }
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where a wallet's phrase comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Just generated and backed up.
    New,
    /// Typed in to restore.
    Restored,
}
