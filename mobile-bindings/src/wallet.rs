//! [`NotchWallet`]: the core's [`Wallet`](notch_core::Wallet), wrapped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use notch_core as core;
use notch_core::keys::{RecoveryPhrase, WordCount};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::errors::{OpenError, SendError, SyncError, WalletError};
use crate::events::{self, WalletEvent, WalletListener};
use crate::runtime::{self, run};
use crate::secrets::{self, HostSecretStore};
use crate::types::*;

/// A wallet. Every method is safe to call from any thread; the async ones
/// run on the library's runtime (Kotlin `suspend`, Swift `async`, Python
/// coroutines).
#[derive(uniffi::Object)]
pub struct NotchWallet {
    pub(crate) wallet: core::Wallet,
    /// The stream `next_event` pulls from, subscribed when the wallet was
    /// opened.
    pull: Arc<tokio::sync::Mutex<broadcast::Receiver<core::WalletEvent>>>,
    listener: Mutex<Option<JoinHandle<()>>>,
    watch: Mutex<Option<JoinHandle<()>>>,
    pub(crate) agent: tokio::sync::Mutex<Option<core::AgentHandle>>,
}

impl NotchWallet {
    fn new(wallet: core::Wallet) -> Arc<Self> {
        let pull = Arc::new(tokio::sync::Mutex::new(wallet.subscribe()));
        Arc::new(Self {
            wallet,
            pull,
            listener: Mutex::new(None),
            watch: Mutex::new(None),
            agent: tokio::sync::Mutex::new(None),
        })
    }

    /// Replaces the task in `slot` (aborting the old one).
    fn replace(slot: &Mutex<Option<JoinHandle<()>>>, task: Option<JoinHandle<()>>) {
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = std::mem::replace(&mut *slot, task) {
            old.abort();
        }
    }
}

impl Drop for NotchWallet {
    fn drop(&mut self) {
        Self::replace(&self.listener, None);
        Self::replace(&self.watch, None);
    }
}

/// A new wallet and the recovery phrase the person must write down (show
/// it once, then forget it: the wallet keeps it in the secret store).
#[derive(uniffi::Record)]
pub struct CreatedWallet {
    pub wallet: Arc<NotchWallet>,
    pub recovery_phrase: String,
}

fn word_count(words: u8) -> Result<WordCount, OpenError> {
    WordCount::from_words(usize::from(words)).ok_or_else(|| {
        OpenError::BadConfig(format!("a recovery phrase has 12 or 24 words, not {words}"))
    })
}

/// Creates a wallet in `config.data_dir` with a fresh recovery phrase of
/// `word_count` words (12 or 24). Its secret goes to `secret_store`, or to
/// the OS keystore when that is null.
#[uniffi::export(default(secret_store = None, word_count = 12))]
pub async fn create_wallet(
    config: WalletConfig,
    secret_store: Option<Arc<dyn HostSecretStore>>,
    word_count: u8,
) -> Result<CreatedWallet, OpenError> {
    let words = self::word_count(word_count)?;
    let config = config.to_core()?;
    run(async move {
        let store =
            secrets::choose(secret_store).map_err(|e| OpenError::SecretStore(e.to_string()))?;
        let (wallet, phrase) = core::Wallet::create(config, store, words).await?;
        Ok(CreatedWallet {
            wallet: NotchWallet::new(wallet),
            recovery_phrase: phrase.phrase().to_string(),
        })
    })
    .await
}

/// Restores a wallet from its recovery phrase into an empty data
/// directory; the next `sync` finds its coins and history.
#[uniffi::export(default(secret_store = None))]
pub async fn restore_wallet(
    config: WalletConfig,
    recovery_phrase: String,
    secret_store: Option<Arc<dyn HostSecretStore>>,
) -> Result<Arc<NotchWallet>, OpenError> {
    let config = config.to_core()?;
    let phrase =
        RecoveryPhrase::parse(&recovery_phrase).map_err(|e| OpenError::BadPhrase(e.to_string()))?;
    drop(recovery_phrase);
    run(async move {
        let store =
            secrets::choose(secret_store).map_err(|e| OpenError::SecretStore(e.to_string()))?;
        let wallet = core::Wallet::restore(config, store, phrase).await?;
        Ok(NotchWallet::new(wallet))
    })
    .await
}

/// Opens the wallet in `config.data_dir` (its secret from `secret_store`,
/// or the OS keystore when that is null).
#[uniffi::export(default(secret_store = None))]
pub async fn open_wallet(
    config: WalletConfig,
    secret_store: Option<Arc<dyn HostSecretStore>>,
) -> Result<Arc<NotchWallet>, OpenError> {
    let config = config.to_core()?;
    run(async move {
        let store =
            secrets::choose(secret_store).map_err(|e| OpenError::SecretStore(e.to_string()))?;
        let wallet = core::Wallet::open(config, store).await?;
        Ok(NotchWallet::new(wallet))
    })
    .await
}

/// A payment prepared for review. Confirm it with
/// `NotchWallet.confirm_send`; nothing is signed or locked before that.
#[derive(uniffi::Object)]
pub struct PreparedSend {
    wallet_id: String,
    proposal: core::SendProposal,
}

#[uniffi::export]
impl PreparedSend {
    /// What the payment does: recipients, fee, totals, change.
    pub fn summary(&self) -> SendSummary {
        (&self.proposal).into()
    }
}

#[uniffi::export]
impl NotchWallet {
    /// The wallet's id (the name of its secret in the secret store).
    pub fn wallet_id(&self) -> String {
        self.wallet.wallet_id().to_owned()
    }

    pub fn network(&self) -> Network {
        self.wallet.network().into()
    }

    /// A fresh receive address (until the gap limit of unused ones is out;
    /// then the oldest unused one again).
    pub async fn receive_address(&self) -> Result<String, WalletError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.receive_address().await?) }).await
    }

    /// The address a Receive screen shows: the oldest unpaid one handed
    /// out, or a fresh one.
    pub async fn unused_address(&self) -> Result<String, WalletError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.unused_address().await?) }).await
    }

    /// Every address derived so far, receive chain first.
    pub async fn addresses(&self) -> Result<Vec<AddressInfo>, WalletError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.addresses().await?.into_iter().map(Into::into).collect()) }).await
    }

    /// Assets the gateway serves (after the first sync).
    pub fn assets(&self) -> Vec<AssetMeta> {
        self.wallet.assets().into_iter().map(Into::into).collect()
    }

    /// Balances per asset.
    pub async fn balances(&self) -> Result<Vec<Balance>, WalletError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.balances().await?.into_iter().map(Into::into).collect()) }).await
    }

    /// The wallet's transactions, newest first.
    #[uniffi::method(default(filter = None))]
    pub async fn history(
        &self,
        filter: Option<HistoryFilter>,
    ) -> Result<Vec<HistoryEntry>, WalletError> {
        let w = self.wallet.clone();
        let filter = filter.unwrap_or_default().into();
        run(async move {
            Ok(w.history(filter)
                .await?
                .into_iter()
                .map(Into::into)
                .collect())
        })
        .await
    }

    /// Where one of the wallet's transactions is, as of the last sync.
    pub async fn tx_status(&self, txid: String) -> Result<TxStatus, WalletError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.tx_status(&txid).await?.into()) }).await
    }

    /// Where sync stands.
    pub async fn sync_status(&self) -> Result<SyncStatus, WalletError> {
        let w = self.wallet.clone();
        run(async move {
            let s = w.sync_status().await?;
            Ok(SyncStatus {
                height: s.height,
                unreachable_since: s.unreachable_since,
            })
        })
        .await
    }

    /// One sync pass with the gateway: headers, blocks, the pool, the
    /// wallet's pending sends. Verified before anything is stored.
    pub async fn sync(&self) -> Result<SyncReport, SyncError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.sync().await?.into()) }).await
    }

    /// Follows the gateway in the background (push of new tips, polling
    /// every `poll_secs` as a fallback, retries with a growing wait) until
    /// `stop_watch` or the wallet is dropped. A phone does this while the
    /// app is in the foreground.
    pub fn start_watch(&self, poll_secs: u32) -> Result<(), SyncError> {
        let rt = runtime::runtime().map_err(SyncError::Internal)?;
        let w = self.wallet.clone();
        let poll = Duration::from_secs(u64::from(poll_secs.max(1)));
        let task = rt.spawn(async move { w.watch(poll).await });
        Self::replace(&self.watch, Some(task));
        Ok(())
    }

    /// Stops following the gateway.
    pub fn stop_watch(&self) {
        Self::replace(&self.watch, None);
    }

    /// Builds a payment to every recipient in one transaction, for review
    /// (fee, totals, change). Bad addresses, amounts, assets and missing
    /// funds are refused here, before anything is signed.
    pub async fn prepare_send(
        &self,
        recipients: Vec<Recipient>,
    ) -> Result<Arc<PreparedSend>, SendError> {
        let w = self.wallet.clone();
        let recipients: Vec<core::Recipient> = recipients.into_iter().map(Into::into).collect();
        run(async move {
            let proposal = w.prepare_send(&recipients).await?;
            Ok(Arc::new(PreparedSend {
                wallet_id: w.wallet_id().to_owned(),
                proposal,
            }))
        })
        .await
    }

    /// Signs and submits a reviewed payment; returns its txid. If the
    /// gateway cannot be reached it stays queued and the next sync submits
    /// it. Confirming the same payment twice submits one transaction.
    pub async fn confirm_send(&self, prepared: Arc<PreparedSend>) -> Result<String, SendError> {
        if prepared.wallet_id != self.wallet.wallet_id() {
            return Err(SendError::StaleProposal(
                "this payment was prepared by another wallet; prepare it again with this one"
                    .into(),
            ));
        }
        let w = self.wallet.clone();
        run(async move { Ok(w.confirm_send(&prepared.proposal).await?) }).await
    }

    /// Gives up a send that did not go through (rejected, dropped, still
    /// queued): its coins become spendable again. It may still confirm if
    /// anyone holds it; say so before calling. Returns the ids given up.
    pub async fn abandon_send(&self, txid: String) -> Result<Vec<String>, WalletError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.abandon_send(&txid).await?) }).await
    }

    /// The notification inbox, newest first.
    #[uniffi::method(default(unread_only = false))]
    pub async fn notifications(&self, unread_only: bool) -> Result<Vec<Notification>, WalletError> {
        let w = self.wallet.clone();
        run(async move {
            Ok(w.notifications(unread_only)
                .await?
                .into_iter()
                .map(Into::into)
                .collect())
        })
        .await
    }

    pub async fn mark_read(&self, id: i64) -> Result<(), WalletError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.mark_read(id).await?) }).await
    }

    /// Marks every notification read; returns how many were unread.
    pub async fn mark_all_read(&self) -> Result<u64, WalletError> {
        let w = self.wallet.clone();
        run(async move { Ok(w.mark_all_read().await? as u64) }).await
    }

    /// Sends every event from now on to `listener` (replacing any listener
    /// set before); null stops it.
    pub fn set_listener(
        &self,
        listener: Option<Arc<dyn WalletListener>>,
    ) -> Result<(), WalletError> {
        let task = match listener {
            Some(listener) => {
                let rt = runtime::runtime().map_err(WalletError::Internal)?;
                Some(rt.spawn(events::forward(self.wallet.subscribe(), listener)))
            }
            None => None,
        };
        Self::replace(&self.listener, task);
        Ok(())
    }

    /// The next event since the wallet was opened (or since the last
    /// call), waiting up to `timeout_ms`; null if none came. For hosts
    /// that pull rather than listen.
    pub async fn next_event(&self, timeout_ms: u64) -> Option<WalletEvent> {
        let rt = runtime::runtime().ok()?;
        let pull = self.pull.clone();
        rt.spawn(async move {
            let mut rx = pull.lock().await;
            let wait = Duration::from_millis(timeout_ms);
            tokio::time::timeout(wait, events::next(&mut rx))
                .await
                .ok()
                .flatten()
        })
        .await
        .ok()
        .flatten()
    }
}
