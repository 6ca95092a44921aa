//! [`Wallet`]: the one object that is the whole API of the core. The CLI,
//! the Tauri app and the mobile bindings wrap it; they never re-implement
//! any of it.
//!
//! A wallet is a data directory holding `wallet.sqlite` (no secrets), a
//! gateway URL and a network. Its one secret (the recovery phrase) lives in
//! a [`SecretStore`] under the wallet's id. The wallet is `Send + Sync` and
//! cheap to clone (an `Arc` inside); its async methods need a tokio runtime.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notch_protocol::api::LedgerInfo;
use notch_protocol::{AssetId, Network};
use serde::Serialize;

use crate::context::{
    Inner, LEDGER_INFO_SETTING, Ledger, RESTORING_SETTING, authority_setting, blocking,
    derive_address, ensure_lookahead, used_end,
};
use crate::events::{EventBus, WalletEvent};
use crate::gateway::{GatewayClient, GatewayError};
use crate::keys::{AddressChain, KeyError, RecoveryPhrase, WalletKeys, WalletSecret, WordCount};
use crate::secrets::{SecretStore, SecretStoreError};
use crate::store::{
    Direction, Hash32, HistoryQuery, HistoryRecord, NewWallet, Notification, Store, StoreError,
    TxRecord, TxState,
};

/// How many unused addresses past the last used one the wallet watches on
/// each chain (and scans on restore).
pub const DEFAULT_GAP_LIMIT: u32 = 20;

/// Where a wallet lives and which gateway and network it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletConfig {
    /// Directory of the wallet's database (`wallet.sqlite`), created if
    /// missing.
    pub data_dir: PathBuf,
    /// The gateway's root URL, e.g. `http://127.0.0.1:7420`.
    pub gateway_url: String,
    /// The network the wallet is on; the gateway must serve the same.
    pub network: Network,
    /// Unused addresses watched past the last used one, per chain; also
    /// how many unused receive addresses the wallet hands out at most.
    pub gap_limit: u32,
    /// Allow plain `http://` to a gateway that is not on this machine.
    /// Anyone on the way could then answer for the gateway; off by default.
    pub allow_insecure_http: bool,
    /// The ledger's identity from its operator (authority key, genesis, a
    /// checkpoint): then first contact need not be trusted.
    pub network_file: Option<crate::trust::NetworkFile>,
}

impl WalletConfig {
    pub fn new(data_dir: impl Into<PathBuf>, gateway_url: &str, network: Network) -> Self {
        Self {
            data_dir: data_dir.into(),
            gateway_url: gateway_url.to_owned(),
            network,
            gap_limit: DEFAULT_GAP_LIMIT,
            allow_insecure_http: false,
            network_file: None,
        }
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("wallet.sqlite")
    }
}

/// Why a wallet could not be created, restored or opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("there is already a wallet in {path}; open it, or use another data directory")]
    WalletExists { path: PathBuf },
    #[error("there is no wallet in {path}; create or restore one first")]
    NoWallet { path: PathBuf },
    #[error("cannot create the data directory {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error(
        "the wallet in {path} is on network {stored}, but {requested} was asked for; use the matching --network/gateway or another data directory"
    )]
    WrongNetwork {
        path: PathBuf,
        stored: String,
        requested: String,
    },
    #[error(
        "the secret of wallet {wallet_id} is not in the {store}; restore the wallet from its recovery phrase"
    )]
    SecretMissing { wallet_id: String, store: String },
    #[error(transparent)]
    SecretStore(#[from] SecretStoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// Why reading the wallet's state (balances, history, notifications) failed.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("transaction {txid} is not known to this wallet")]
    UnknownTransaction { txid: String },
    #[error("{0:?} is not a transaction id (64 hex characters)")]
    BadTxid(String),
    #[error("there is no notification {0}")]
    UnknownNotification(i64),
    #[error("transaction {txid} cannot be abandoned: {reason}")]
    CannotAbandon { txid: String, reason: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Asset metadata, as the gateway serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetMeta {
    /// Asset id, hex.
    pub id: String,
    pub symbol: String,
    pub name: String,
    pub decimals: u8,
    pub native: bool,
}

/// The balance of one asset, in base units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balance {
    /// Asset id, hex.
    pub asset: String,
    pub symbol: String,
    pub name: String,
    pub decimals: u8,
    /// Unspent outputs in blocks of the chain the wallet follows (what the
    /// gateway lists as the wallet's unspent outputs). `u128`: a sum of
    /// `u64` outputs.
    pub confirmed: u128,
    /// Incoming, not yet in a block (payments to the wallet, change of its
    /// own sends).
    pub pending: u128,
    /// Confirmed coins reserved by a send of the wallet that is not in a
    /// block yet (including sends the gateway called rejected or dropped,
    /// until they confirm or are abandoned).
    pub pending_outgoing: u128,
    /// What a new send can use now.
    pub spendable: u128,
}

/// One of the wallet's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressInfo {
    pub address: String,
    /// On the change chain (else the receive chain).
    pub change: bool,
    pub index: u32,
    /// Whether any transaction paid it.
    pub used: bool,
}

/// Which transactions [`Wallet::history`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only transactions that move this asset (symbol or id hex).
    pub asset: Option<String>,
    /// Only payments in (`Some(true)`) or out (`Some(false)`).
    pub incoming: Option<bool>,
    /// Only these states (empty: all).
    pub states: Vec<TxState>,
    /// Only transactions whose id starts with this hex or that pay this
    /// address.
    pub search: Option<String>,
    /// At most this many, newest first (0: all).
    pub limit: usize,
}

/// One asset's movement in a transaction, in base units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryAmount {
    pub asset: String,
    pub symbol: String,
    pub decimals: u8,
    /// Paid to the wallet's addresses (including its change).
    pub received: u128,
    /// Taken from the wallet's coins.
    pub sent: u128,
    /// `received - sent` (negative for a payment out; includes the fee).
    pub net: i128,
}

/// A transaction in the wallet's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub txid: String,
    pub state: TxState,
    pub confirmations: u64,
    pub block_height: Option<u64>,
    /// Block time if in a block, else when the wallet first saw it (Unix s).
    pub time: u64,
    /// Built and signed by this wallet.
    pub own: bool,
    /// `true` if the net effect is a payment in.
    pub incoming: bool,
    /// The fee (native asset base units) of the wallet's own sends.
    pub fee: Option<u64>,
    pub amounts: Vec<HistoryAmount>,
    /// Addresses paid that are not the wallet's.
    pub counterparties: Vec<String>,
    /// Why it was rejected or dropped.
    pub reason: Option<String>,
}

/// Which rows [`Wallet::history_page`] lists (all `None`/empty: every row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryPageFilter {
    /// Only transactions that move this asset (symbol or id hex).
    pub asset: Option<String>,
    /// Only payments in, out, or to the wallet itself.
    pub direction: Option<Direction>,
    /// `Some(true)`: only payments in; `Some(false)`: out and to the wallet
    /// itself (as [`HistoryFilter::incoming`]).
    pub incoming: Option<bool>,
    /// Only these states (empty: all).
    pub states: Vec<TxState>,
    /// Only from this time on (Unix seconds, inclusive).
    pub since: Option<u64>,
    /// Only before this time (Unix seconds, exclusive).
    pub until: Option<u64>,
    /// A txid prefix (hex), an address the transaction pays, or a piece of
    /// its memo.
    pub search: Option<String>,
}

/// A row of [`Wallet::history_page`]: one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryRow {
    /// Pass as `before` to list the rows after this one.
    pub cursor: String,
    pub txid: String,
    pub state: TxState,
    pub confirmations: u64,
    pub block_height: Option<u64>,
    /// Block time if in a block, else when the wallet first saw it (Unix s).
    pub time: u64,
    pub own: bool,
    /// `in`, `out` or `self`.
    pub direction: &'static str,
    /// `direction == "in"` (as [`HistoryEntry::incoming`]).
    pub incoming: bool,
    /// The fee (native asset base units) of the wallet's own sends.
    pub fee: Option<u64>,
    pub amounts: Vec<HistoryAmount>,
    /// Addresses paid that are not the wallet's.
    pub counterparties: Vec<String>,
    pub memo: Option<String>,
    /// Why it was rejected or dropped.
    pub reason: Option<String>,
}

/// [`Wallet::history_index`]: every row of a query, compactly: each row
/// a [`HistoryRow`] without its txid, cursor, confirmations and details.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryIndex {
    /// The assets the rows' amounts name.
    pub assets: Vec<HistoryIndexAsset>,
    /// The rows, and each one's `(asset, net)` amounts (`effects_of`): the
    /// asset as its place in `assets`, the net change in its base units, in
    /// the order of [`HistoryRow::amounts`].
    pub rows: crate::store::history::HistoryIndexRecords,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryIndexAsset {
    /// Id, hex.
    pub asset: String,
    pub symbol: String,
    pub decimals: u8,
}

/// A page of the history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryPage {
    pub rows: Vec<HistoryRow>,
    /// The cursor of the next page; `None` on the last one.
    pub next_cursor: Option<String>,
    /// Rows matching the filter, over all pages.
    pub total: u64,
}

/// Where one transaction of the wallet is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxStatusInfo {
    pub txid: String,
    pub state: TxState,
    pub confirmations: u64,
    pub block_height: Option<u64>,
    pub reason: Option<String>,
}

impl Serialize for TxState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The sync state, for a status line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncStatus {
    /// Height of the wallet's newest applied block, if any.
    pub height: Option<u64>,
    /// Unix seconds since the gateway stopped answering, if it does not.
    pub unreachable_since: Option<u64>,
}

/// A wallet. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Wallet {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("wallet_id", &self.inner.wallet_id)
            .field("network", &self.inner.network)
            .finish_non_exhaustive()
    }
}

/// Which receive address [`Wallet::address_for`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reveal {
    /// A fresh one, unless the gap limit of unused ones is out already.
    Next,
    /// The oldest unused one, or a fresh one if there is none.
    Unused,
}

fn random_hex(bytes: usize) -> Result<String, KeyError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| KeyError::NoRandomness(e.to_string()))?;
    Ok(hex::encode(buf))
}

fn parse_txid(txid: &str) -> Result<Hash32, WalletError> {
    notch_protocol::TxId::from_hex(txid.trim())
        .map(|t| t.0)
        .map_err(|_| WalletError::BadTxid(txid.to_owned()))
}

impl Wallet {
    /// Creates a new wallet with a fresh recovery phrase of `word_count`
    /// words, which the caller must show the person for their backup.
    pub async fn create(
        config: WalletConfig,
        secret_store: Arc<dyn SecretStore>,
        word_count: WordCount,
    ) -> Result<(Wallet, RecoveryPhrase), OpenError> {
        let phrase = RecoveryPhrase::generate(word_count)?;
        let wallet = Self::init(config, secret_store, phrase.clone()).await?;
        Ok((wallet, phrase))
    }

    /// Creates a new wallet from a phrase that [`RecoveryPhrase::generate`]
    /// made and the person has just backed up (checked with
    /// [`crate::BackupCheck`]): a shell that shows the phrase before the
    /// wallet exists. Unlike [`restore`](Self::restore), nothing is scanned
    /// for: a new phrase has no history.
    pub async fn create_with_phrase(
        config: WalletConfig,
        secret_store: Arc<dyn SecretStore>,
        phrase: RecoveryPhrase,
    ) -> Result<Wallet, OpenError> {
        Self::init(config, secret_store, phrase).await
    }

    /// Restores a wallet from its recovery phrase into an empty data
    /// directory. Its coins and history come back with the next
    /// [`sync`](Self::sync), which scans addresses up to the gap limit.
    pub async fn restore(
        config: WalletConfig,
        secret_store: Arc<dyn SecretStore>,
        phrase: RecoveryPhrase,
    ) -> Result<Wallet, OpenError> {
        let wallet = Self::init(config, secret_store, phrase).await?;
        wallet
            .inner
            .db(|s| s.write(|tx| tx.set_setting(RESTORING_SETTING, "1")))
            .await?;
        Ok(wallet)
    }

    async fn init(
        config: WalletConfig,
        secret_store: Arc<dyn SecretStore>,
        phrase: RecoveryPhrase,
    ) -> Result<Wallet, OpenError> {
        let path = config.db_path();
        let data_dir = config.data_dir.clone();
        let network = config.network;
        let gateway_url = config.gateway_url.clone();
        let gap = config.gap_limit;
        let gateway = GatewayClient::new(&gateway_url, config.allow_insecure_http)?;
        let secret = WalletSecret::new(phrase, "");
        let keys = WalletKeys::from_secret(&secret, 0)?;
        let wallet_id = format!("notch-wallet-{}", random_hex(8)?);
        let store_keys = keys.clone();
        let id = wallet_id.clone();
        let (store, secret_store) = blocking(move || -> Result<_, OpenError> {
            std::fs::create_dir_all(&data_dir).map_err(|e| OpenError::DataDir {
                path: data_dir.clone(),
                reason: e.to_string(),
            })?;
            let mut store = Store::open(&path)?;
            if store.wallet()?.is_some() {
                return Err(OpenError::WalletExists { path });
            }
            // The secret first: a crash after it leaves an unused keystore
            // item, never a wallet without its secret.
            secret_store.set(&id, &secret.to_bytes())?;
            let written = store.write(|tx| {
                tx.init_wallet(&NewWallet {
                    wallet_id: id.clone(),
                    network: network.name().into(),
                    gateway_url,
                    account: 0,
                })?;
                ensure_lookahead(tx, &store_keys, network, gap)?;
                Ok(())
            });
            if let Err(e) = written {
                let _ = secret_store.delete(&id);
                return Err(e.into());
            }
            Ok((store, secret_store))
        })
        .await?;
        Ok(Self::assemble(
            wallet_id,
            config,
            store,
            keys,
            gateway,
            secret_store,
        ))
    }

    /// Opens the wallet in `config.data_dir`.
    pub async fn open(
        config: WalletConfig,
        secret_store: Arc<dyn SecretStore>,
    ) -> Result<Wallet, OpenError> {
        let path = config.db_path();
        let network = config.network;
        let gateway = GatewayClient::new(&config.gateway_url, config.allow_insecure_http)?;
        let gateway_url = config.gateway_url.clone();
        let (store, wallet_id, keys, secret_store) = blocking(move || -> Result<_, OpenError> {
            if !path.is_file() {
                return Err(OpenError::NoWallet { path });
            }
            let mut store = Store::open(&path)?;
            let meta = store
                .wallet()?
                .ok_or_else(|| OpenError::NoWallet { path: path.clone() })?;
            if meta.network != network.name() {
                return Err(OpenError::WrongNetwork {
                    path,
                    stored: meta.network,
                    requested: network.name().into(),
                });
            }
            let bytes =
                secret_store
                    .get(&meta.wallet_id)?
                    .ok_or_else(|| OpenError::SecretMissing {
                        wallet_id: meta.wallet_id.clone(),
                        store: secret_store.name(),
                    })?;
            let secret = WalletSecret::from_bytes(&bytes)?;
            let keys = WalletKeys::from_secret(&secret, meta.account)?;
            if meta.gateway_url != gateway_url {
                store.write(|tx| tx.set_gateway_url(&gateway_url))?;
            }
            Ok((store, meta.wallet_id, keys, secret_store))
        })
        .await?;
        Ok(Self::assemble(
            wallet_id,
            config,
            store,
            keys,
            gateway,
            secret_store,
        ))
    }

    /// The network of the wallet in `data_dir`, without opening it (no
    /// secret is read): `None` when there is no wallet there. A shell that
    /// lets the network follow the wallet asks this before [`open`](Self::open).
    pub async fn stored_network(
        data_dir: impl Into<PathBuf>,
    ) -> Result<Option<Network>, OpenError> {
        let path = data_dir.into().join("wallet.sqlite");
        blocking(move || -> Result<_, OpenError> {
            if !path.is_file() {
                return Ok(None);
            }
            let store = Store::open(&path)?;
            let Some(meta) = store.wallet()? else {
                return Ok(None);
            };
            Network::from_name(&meta.network).map(Some).ok_or_else(|| {
                OpenError::Store(StoreError::Corrupt(format!(
                    "the wallet's network {:?} is not known to this version of Notch",
                    meta.network
                )))
            })
        })
        .await
    }

    fn assemble(
        wallet_id: String,
        config: WalletConfig,
        store: Store,
        keys: WalletKeys,
        gateway: GatewayClient,
        secret_store: Arc<dyn SecretStore>,
    ) -> Wallet {
        let ledger = store
            .setting(LEDGER_INFO_SETTING)
            .ok()
            .flatten()
            .and_then(|json| serde_json::from_str::<LedgerInfo>(&json).ok())
            .and_then(Ledger::from_info);
        Wallet {
            inner: Arc::new(Inner {
                wallet_id,
                network: config.network,
                config,
                store: Arc::new(Mutex::new(store)),
                keys,
                gateway,
                secret_store,
                lock_failures: Mutex::new(crate::lock::Failures::default()),
                events: EventBus::new(),
                ledger: Mutex::new(ledger),
                sync_lock: tokio::sync::Mutex::new(()),
                send_lock: tokio::sync::Mutex::new(()),
                unreachable_since: Mutex::new(None),
                agent: crate::agent::AgentShared::default(),
            }),
        }
    }

    /// The wallet's id (the key of its secret in the secret store).
    pub fn wallet_id(&self) -> &str {
        &self.inner.wallet_id
    }

    pub fn network(&self) -> Network {
        self.inner.network
    }

    pub fn config(&self) -> &WalletConfig {
        &self.inner.config
    }

    /// A receive address: a fresh one each call, recorded before it is
    /// returned, until `gap_limit` unused ones are out past the last used
    /// one; then the oldest unused one again (as BDK's
    /// `next_unused_address` and Electrum do), so a restore, which watches
    /// `gap_limit` addresses past the last used one, finds every payment.
    pub async fn receive_address(&self) -> Result<String, WalletError> {
        self.address_for(Reveal::Next).await
    }

    /// The address a Receive screen shows when it opens: the oldest handed
    /// out receive address nobody has paid yet, or a fresh one if all of
    /// them were paid (BDK's `next_unused_address`). Opening the screen
    /// again shows the same address until it is paid.
    pub async fn unused_address(&self) -> Result<String, WalletError> {
        self.address_for(Reveal::Unused).await
    }

    async fn address_for(&self, reveal: Reveal) -> Result<String, WalletError> {
        let keys = self.inner.keys.clone();
        let network = self.inner.network;
        let gap = self.inner.config.gap_limit;
        self.inner
            .db(move |store| {
                store
                    .write(|tx| {
                        let meta = tx.wallet()?.ok_or(StoreError::NoWallet)?;
                        let handed = meta.next_index(AddressChain::Receive);
                        let existing = tx.addresses(AddressChain::Receive)?;
                        let oldest_unused = existing.iter().find(|a| !a.used && a.index < handed);
                        let at_gap = handed >= used_end(&existing).saturating_add(gap.max(1));
                        if let Some(oldest) = oldest_unused
                            && (reveal == Reveal::Unused || at_gap)
                        {
                            return Ok(oldest.address.clone());
                        }
                        let record = tx.hand_out_address(AddressChain::Receive, |i| {
                            derive_address(&keys, network, AddressChain::Receive, i)
                        })?;
                        ensure_lookahead(tx, &keys, network, gap)?;
                        Ok(record.address)
                    })
                    .map_err(WalletError::from)
            })
            .await
    }

    /// Every address the wallet has derived (handed out, used, or watched
    /// ahead for the gap limit), receive chain first.
    pub async fn addresses(&self) -> Result<Vec<AddressInfo>, WalletError> {
        self.inner
            .db(|store| {
                let mut out = Vec::new();
                for chain in [AddressChain::Receive, AddressChain::Change] {
                    for a in store.addresses(chain)? {
                        out.push(AddressInfo {
                            address: a.address,
                            change: chain == AddressChain::Change,
                            index: a.index,
                            used: a.used,
                        });
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Receives the wallet's events from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<WalletEvent> {
        self.inner.events.subscribe()
    }

    /// Assets the gateway serves (known after the first sync).
    pub fn assets(&self) -> Vec<AssetMeta> {
        self.inner
            .ledger()
            .map(|l| {
                l.info
                    .assets
                    .iter()
                    .map(|a| AssetMeta {
                        id: a.id.clone(),
                        symbol: a.symbol.clone(),
                        name: a.name.clone(),
                        decimals: a.decimals,
                        native: a.native,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Where sync stands.
    pub async fn sync_status(&self) -> Result<SyncStatus, WalletError> {
        let height = self
            .inner
            .db(|store| Ok::<_, WalletError>(store.tip()?.map(|h| h.height)))
            .await?;
        Ok(SyncStatus {
            height,
            unreachable_since: self.inner.unreachable_since(),
        })
    }

    /// Balances per asset (every asset the gateway knows, then any other
    /// the wallet holds), read from the balances the store keeps as it
    /// applies changes (`wallet_balances`): one row per asset, no output
    /// is read. The rule is that of [`balances_summed`](Self::balances_summed).
    pub async fn balances(&self) -> Result<Vec<Balance>, WalletError> {
        let ledger = self.inner.ledger();
        let known: Vec<Hash32> = ledger
            .as_ref()
            .map(|l| {
                l.info
                    .assets
                    .iter()
                    .filter_map(|a| AssetId::from_hex(&a.id).ok().map(|id| id.0))
                    .collect()
            })
            .unwrap_or_default();
        let stored = {
            let known = known.clone();
            self.inner
                .db(move |store| {
                    let mut kept = Vec::new();
                    for b in store.stored_balances()? {
                        // An asset the gateway does not name is listed, as
                        // by the sum, only if a live transaction made one
                        // of its coins.
                        let zero = b.confirmed == 0
                            && b.pending == 0
                            && b.pending_outgoing == 0
                            && b.spendable == 0;
                        if known.contains(&b.asset) || !zero || store.holds_asset(&b.asset)? {
                            kept.push(b);
                        }
                    }
                    Ok::<_, WalletError>(kept)
                })
                .await?
        };
        let unnamed = |asset: &Hash32| match &ledger {
            Some(l) => empty_balance(asset, l),
            None => Balance {
                asset: hex::encode(asset),
                symbol: hex::encode(&asset[..4]),
                name: String::new(),
                decimals: 0,
                confirmed: 0,
                pending: 0,
                pending_outgoing: 0,
                spendable: 0,
            },
        };
        let mut out: Vec<Balance> = known.iter().map(unnamed).collect();
        for b in stored {
            let index = match known.iter().position(|id| id == &b.asset) {
                Some(i) => i,
                None => {
                    out.push(unnamed(&b.asset));
                    out.len() - 1
                }
            };
            let o = &mut out[index];
            o.confirmed = b.confirmed;
            o.pending = b.pending;
            o.pending_outgoing = b.pending_outgoing;
            o.spendable = b.spendable;
        }
        Ok(out)
    }

    /// [`balances`](Self::balances) computed from scratch, by summing
    /// every output of the wallet with the states of the transactions that
    /// made and use it: O(outputs). The reference the kept balances are
    /// checked against (tests, diagnostics); the screens use `balances`.
    pub async fn balances_summed(&self) -> Result<Vec<Balance>, WalletError> {
        let ledger = self.inner.ledger();
        let (outputs, txs) = self
            .inner
            .db(|store| Ok::<_, WalletError>((store.all_outputs()?, store.all_transactions()?)))
            .await?;
        let states: HashMap<Hash32, &TxRecord> = txs.iter().map(|t| (t.txid, t)).collect();
        let mut by_asset: Vec<(Hash32, Balance)> = Vec::new();
        if let Some(ledger) = &ledger {
            for a in &ledger.info.assets {
                if let Ok(id) = AssetId::from_hex(&a.id) {
                    by_asset.push((id.0, empty_balance(&id.0, ledger)));
                }
            }
        }
        for output in &outputs {
            let Some(creator) = states.get(&output.outpoint.txid) else {
                continue;
            };
            if creator.state.is_failed() {
                continue;
            }
            // A lock or spend that is still there reserves the coin: a send
            // the gateway called rejected keeps it until it confirms or is
            // abandoned (see crate::lifecycle); a proven failure removed it.
            let spender = output
                .spent_by
                .or(output.locked_by)
                .and_then(|s| states.get(&s));
            let index = match by_asset.iter().position(|(id, _)| id == &output.asset) {
                Some(i) => i,
                None => {
                    let balance = match &ledger {
                        Some(l) => empty_balance(&output.asset, l),
                        None => Balance {
                            asset: hex::encode(output.asset),
                            symbol: hex::encode(&output.asset[..4]),
                            name: String::new(),
                            decimals: 0,
                            confirmed: 0,
                            pending: 0,
                            pending_outgoing: 0,
                            spendable: 0,
                        },
                    };
                    by_asset.push((output.asset, balance));
                    by_asset.len() - 1
                }
            };
            let b = &mut by_asset[index].1;
            let amount = u128::from(output.amount);
            let in_block = output.height.is_some() && creator.state.is_in_block();
            match (in_block, spender) {
                (true, None) => {
                    b.confirmed += amount;
                    b.spendable += amount;
                }
                (true, Some(s)) if !s.state.is_in_block() => {
                    b.confirmed += amount;
                    b.pending_outgoing += amount;
                }
                (true, Some(_)) => {}
                (false, None) => {
                    b.pending += amount;
                    // Only the change of the wallet's own sends: other
                    // people's unconfirmed payments are not spendable.
                    if creator.own {
                        b.spendable += amount;
                    }
                }
                (false, Some(_)) => {}
            }
        }
        Ok(by_asset.into_iter().map(|(_, b)| b).collect())
    }

    /// The wallet's transactions, newest first.
    pub async fn history(&self, filter: HistoryFilter) -> Result<Vec<HistoryEntry>, WalletError> {
        let ledger = self.inner.ledger();
        let entries = self
            .inner
            .db(move |store| history_entries(store, ledger.as_ref()))
            .await?;
        let asset = match (&filter.asset, &self.inner.ledger()) {
            (Some(name), Some(l)) => Some(
                l.find_asset(name)
                    .map(|a| a.id.clone())
                    .unwrap_or_else(|| name.to_ascii_lowercase()),
            ),
            (Some(name), None) => Some(name.to_ascii_lowercase()),
            (None, _) => None,
        };
        let search = filter
            .search
            .as_ref()
            .map(|s| s.trim().to_ascii_lowercase());
        let mut out: Vec<HistoryEntry> = entries
            .into_iter()
            .filter(|e| {
                asset
                    .as_ref()
                    .is_none_or(|a| e.amounts.iter().any(|m| &m.asset == a))
            })
            .filter(|e| filter.incoming.is_none_or(|inc| e.incoming == inc))
            .filter(|e| filter.states.is_empty() || filter.states.contains(&e.state))
            .filter(|e| {
                search.as_ref().is_none_or(|s| {
                    e.txid.starts_with(s.as_str()) || e.counterparties.iter().any(|c| c == s)
                })
            })
            .collect();
        if filter.limit > 0 {
            out.truncate(filter.limit);
        }
        Ok(out)
    }

    /// A page of the wallet's transactions, newest first: at most `limit`
    /// rows (0: all) after `cursor` (a previous page's `next_cursor`), from
    /// the tables the store keeps as it applies changes (indexed, keyset
    /// pagination; nothing is decoded to answer). Rows that arrive while
    /// paging come before the first page, never in the middle.
    pub async fn history_page(
        &self,
        filter: HistoryPageFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<HistoryPage, WalletError> {
        self.history_page_at(filter, cursor, 0, limit).await
    }

    /// [`history_page`](Self::history_page) that passes over `skip` rows
    /// after `cursor` first: row `n` of a list whose first page began at
    /// `top` (see [`crate::store::history::cursor_from`]) is the first of
    /// `history_page_at(filter, top, n, …)`, however many rows arrived
    /// above it since. The skipped rows are passed over in SQL.
    pub async fn history_page_at(
        &self,
        filter: HistoryPageFilter,
        cursor: Option<String>,
        skip: u64,
        limit: usize,
    ) -> Result<HistoryPage, WalletError> {
        let ledger = self.inner.ledger();
        let Some((query, before)) = page_query(ledger.as_ref(), filter, cursor)? else {
            return Ok(HistoryPage {
                rows: Vec::new(),
                next_cursor: None,
                total: 0,
            });
        };
        self.inner
            .db(move |store| {
                let tip = store.tip()?.map(|h| h.height);
                let page = store.history_page_skip(&query, before, skip, limit)?;
                Ok(HistoryPage {
                    rows: page
                        .rows
                        .into_iter()
                        .map(|r| history_row(r, tip, ledger.as_ref()))
                        .collect(),
                    next_cursor: page.next_cursor,
                    total: page.total,
                })
            })
            .await
    }

    /// Every row of [`history_page_at`](Self::history_page_at)`(filter,
    /// cursor, …)`, newest first, at the positions its pages have, with only
    /// time, direction, state and net amounts: what a list draws of a row
    /// while its page is on its way (a few bytes a row, one walk of an
    /// index; see `notch_ipc::history_index` for how the app sends it).
    pub async fn history_index(
        &self,
        filter: HistoryPageFilter,
        cursor: Option<String>,
    ) -> Result<HistoryIndex, WalletError> {
        let ledger = self.inner.ledger();
        let Some((query, before)) = page_query(ledger.as_ref(), filter, cursor)? else {
            return Ok(HistoryIndex::default());
        };
        // On a connection of its own (a walk of every row takes a while on
        // a long history), so that the wallet's other reads and writes do
        // not wait for it.
        let reader = self.inner.db(|store| store.reader()).await?;
        let index = match reader {
            Some(mut reader) => {
                tokio::task::spawn_blocking(move || reader.history_index(&query, before))
                    .await
                    .map_err(|e| StoreError::Corrupt(format!("a database task failed: {e}")))??
            }
            None => {
                self.inner
                    .db(move |store| store.history_index(&query, before))
                    .await?
            }
        };
        let assets = index
            .assets
            .iter()
            .map(|asset| {
                let (symbol, decimals) = match &ledger {
                    Some(l) => l.symbol(asset),
                    None => (hex::encode(&asset[..4]), 0),
                };
                HistoryIndexAsset {
                    asset: hex::encode(asset),
                    symbol,
                    decimals,
                }
            })
            .collect();
        Ok(HistoryIndex {
            assets,
            rows: index,
        })
    }

    /// Where a transaction of the wallet is, as of the last sync.
    pub async fn tx_status(&self, txid: &str) -> Result<TxStatusInfo, WalletError> {
        let id = parse_txid(txid)?;
        let shown = txid.trim().to_ascii_lowercase();
        self.inner
            .db(move |store| {
                let record = store
                    .transaction(&id)?
                    .ok_or(WalletError::UnknownTransaction { txid: shown })?;
                let tip = store.tip()?.map(|h| h.height);
                Ok(status_info(&record, tip))
            })
            .await
    }

    /// The notification inbox, newest first.
    pub async fn notifications(&self, unread_only: bool) -> Result<Vec<Notification>, WalletError> {
        self.inner
            .db(move |store| Ok(store.notifications(unread_only, 1000)?))
            .await
    }

    /// Marks one notification read.
    pub async fn mark_read(&self, id: i64) -> Result<(), WalletError> {
        self.inner
            .db(move |store| {
                if store.write(|tx| tx.mark_notification_read(id))? {
                    Ok(())
                } else {
                    Err(WalletError::UnknownNotification(id))
                }
            })
            .await
    }

    /// Marks every notification read; returns how many were unread.
    pub async fn mark_all_read(&self) -> Result<usize, WalletError> {
        self.inner
            .db(|store| Ok(store.write(|tx| tx.mark_all_notifications_read())?))
            .await
    }

    /// One sync pass; see [`crate::sync`].
    pub async fn sync(&self) -> Result<crate::sync::SyncReport, crate::sync::SyncError> {
        crate::sync::sync(&self.inner).await
    }

    /// Builds a payment to `recipients` (all in one transaction) for review:
    /// fee, totals per asset, change. Refuses bad addresses, amounts, assets
    /// and insufficient funds here, before anything is signed.
    pub async fn prepare_send(
        &self,
        recipients: &[crate::tx::Recipient],
    ) -> Result<crate::tx::SendProposal, crate::tx::SendError> {
        crate::tx::prepare_send(&self.inner, recipients).await
    }

    /// Signs and submits a reviewed payment; returns its txid. The coins it
    /// spends are locked until it confirms, is proven unable to confirm, or
    /// is abandoned ([`abandon_send`](Self::abandon_send)). If the gateway
    /// cannot be reached, the payment stays queued and the next sync submits
    /// it (submission is idempotent). Confirming the same proposal twice
    /// submits one transaction.
    pub async fn confirm_send(
        &self,
        proposal: &crate::tx::SendProposal,
    ) -> Result<String, crate::tx::SendError> {
        crate::tx::confirm_send(&self.inner, proposal).await
    }

    /// Whether a lock passphrase is set, and the idle time
    /// ([ADR 4](../../docs/adr/0004-the-lock-passphrase-guards-the-screen.md)).
    pub async fn lock_settings(&self) -> Result<crate::lock::LockSettings, crate::lock::LockError> {
        crate::lock::lock_settings(&self.inner).await
    }

    /// Sets or changes the lock passphrase. Changing needs the current one.
    pub async fn set_lock_passphrase(
        &self,
        current: Option<&str>,
        new: &str,
    ) -> Result<(), crate::lock::LockError> {
        crate::lock::set_lock_passphrase(&self.inner, current, new).await
    }

    /// Removes the lock passphrase (the shell then never locks).
    pub async fn remove_lock_passphrase(
        &self,
        current: &str,
    ) -> Result<(), crate::lock::LockError> {
        crate::lock::remove_lock_passphrase(&self.inner, current).await
    }

    /// Sets the idle time after which a shell locks (0: never).
    pub async fn set_idle_lock_minutes(&self, minutes: u32) -> Result<(), crate::lock::LockError> {
        crate::lock::set_idle_lock_minutes(&self.inner, minutes).await
    }

    /// Checks the lock passphrase. After a few misses each further try has
    /// to wait, longer each time, until one succeeds.
    pub async fn check_lock_passphrase(
        &self,
        passphrase: &str,
    ) -> Result<(), crate::lock::LockError> {
        crate::lock::check_lock_passphrase(&self.inner, passphrase).await
    }

    /// The recovery phrase, read again from the secret store, after the
    /// lock passphrase proves it is the owner asking.
    pub async fn recovery_phrase(
        &self,
        passphrase: &str,
    ) -> Result<RecoveryPhrase, crate::lock::LockError> {
        crate::lock::recovery_phrase(&self.inner, passphrase).await
    }

    /// Asks the wallet's gateway for `/v1/info` now; see
    /// [`crate::reach`]. Changes nothing in the wallet.
    pub async fn check_gateway(&self) -> crate::reach::GatewayReachability {
        crate::reach::check_gateway(&self.inner).await
    }

    /// Gives up one of the wallet's sends that did not go through (the
    /// gateway called it rejected or dropped, or it is still queued): its
    /// coins become spendable again. **The signed transaction may still
    /// confirm** if anyone holds it; paying the same people again with
    /// those coins could then pay twice. The shells say so before calling.
    /// Returns the ids of the transactions given up (the send and any of
    /// the wallet's sends that spend its change).
    pub async fn abandon_send(&self, txid: &str) -> Result<Vec<String>, WalletError> {
        let id = parse_txid(txid)?;
        let shown = txid.trim().to_ascii_lowercase();
        let (changed, events) = self
            .inner
            .db(move |store| {
                let record = store
                    .transaction(&id)?
                    .ok_or_else(|| WalletError::UnknownTransaction { txid: shown.clone() })?;
                let refuse = |reason: &str| WalletError::CannotAbandon {
                    txid: shown.clone(),
                    reason: reason.into(),
                };
                if !record.own {
                    return Err(refuse("it is not a send of this wallet"));
                }
                match record.state {
                    TxState::Queued | TxState::Rejected | TxState::Dropped => {}
                    TxState::Accepted | TxState::InPool => {
                        return Err(refuse(
                            "the gateway has it in its pool; wait until it confirms or the gateway drops it",
                        ));
                    }
                    TxState::Confirmed | TxState::Final => {
                        return Err(refuse("it is in a block already"));
                    }
                    TxState::Abandoned => return Err(refuse("it is abandoned already")),
                }
                let reason = "abandoned by you; it may still confirm if anyone holds it";
                let changed = store.write(|tx| {
                    crate::lifecycle::apply_with_descendants(
                        tx,
                        &id,
                        crate::lifecycle::TxEvent::Abandoned,
                        reason,
                    )
                })?;
                let events: Vec<WalletEvent> = changed
                    .iter()
                    .map(|c| WalletEvent::state_changed(&c.txid, Some(c.from), c.to, None))
                    .collect();
                Ok((changed, events))
            })
            .await?;
        self.inner.events.emit_all(events);
        Ok(changed.iter().map(|c| hex::encode(c.txid)).collect())
    }

    /// The authority key this wallet trusts for its network (pinned on first
    /// contact or from the network file), and its fingerprint to compare
    /// with what the operator publishes: `None` before the first contact.
    pub async fn authority(&self) -> Result<Option<(String, String)>, WalletError> {
        let key = authority_setting(self.inner.network);
        let file = self
            .inner
            .config
            .network_file
            .as_ref()
            .map(|f| f.authority_key.to_ascii_lowercase());
        let pinned = self
            .inner
            .db(move |s| Ok::<_, WalletError>(s.setting(&key)?))
            .await?
            .or(file);
        Ok(pinned.map(|k| {
            let fp = crate::trust::fingerprint(&k);
            (k, fp)
        }))
    }

    /// Follows the gateway until the returned future is dropped: syncs on
    /// every new tip pushed over `/v1/stream`, polls every `poll` as a
    /// fallback, and retries every failure with a growing wait (saying so
    /// with events and the inbox). It never returns: shells need no
    /// restart loop of their own.
    pub async fn watch(&self, poll: Duration) {
        crate::sync::watch(&self.inner, poll).await
    }

    // Tallies (MyCHIPs): tickets, the agent, offers. See crate::agent.

    /// Issues a ticket for a new draft tally with empty credit terms, good
    /// for `expires_in`: show it as a QR code ([`crate::ticket::Ticket::to_qr_png`])
    /// or a link. Whoever presents it to this wallet's agent gets the tally
    /// offered, signed by this wallet (issuing the ticket is the consent to
    /// its terms). Returns the ticket and the draft tally.
    pub async fn tally_ticket(
        &self,
        expires_in: Duration,
    ) -> Result<(crate::ticket::Ticket, crate::agent::TallyInfo), crate::agent::TallyTicketError>
    {
        self.tally_ticket_with(crate::agent::TicketOptions {
            expires_in,
            ..Default::default()
        })
        .await
    }

    /// [`tally_ticket`](Self::tally_ticket) with the draft's side, terms and
    /// comment.
    pub async fn tally_ticket_with(
        &self,
        options: crate::agent::TicketOptions,
    ) -> Result<(crate::ticket::Ticket, crate::agent::TallyInfo), crate::agent::TallyTicketError>
    {
        crate::agent::ticket(&self.inner, options).await
    }

    /// Reads a ticket (a MyCHIPs invitation link, a `notch:ticket` link or
    /// MyCHIPs's ticket JSON) and asks its issuer's agent for the tally. If
    /// the issuer answers, the tally comes back offered (`P.offer`: show
    /// its terms, then [`tally_accept`](Self::tally_accept) or
    /// [`tally_refuse`](Self::tally_refuse)); if its agent cannot be reached
    /// the ticket is kept (`ticket`) and the agent presents it again until
    /// it is answered or expires. A refused ticket stores nothing.
    pub async fn tally_scan(
        &self,
        text: &str,
    ) -> Result<crate::agent::TallyInfo, crate::agent::TallyScanError> {
        crate::agent::scan(&self.inner, crate::agent::ScanInput::Text(text)).await
    }

    /// [`tally_scan`](Self::tally_scan) of a picture (PNG or JPEG) holding
    /// the ticket's QR code.
    pub async fn tally_scan_image(
        &self,
        image: &[u8],
    ) -> Result<crate::agent::TallyInfo, crate::agent::TallyScanError> {
        crate::agent::scan(&self.inner, crate::agent::ScanInput::Image(image)).await
    }

    /// Every tally, newest first.
    pub async fn tallies(&self) -> Result<Vec<crate::agent::TallyInfo>, crate::agent::TallyError> {
        crate::agent::tallies(&self.inner).await
    }

    /// One tally with its record (exactly as signed).
    pub async fn tally(
        &self,
        id: &str,
    ) -> Result<crate::agent::TallyDetail, crate::agent::TallyError> {
        crate::agent::show(&self.inner, id).await
    }

    /// Accepts an offered tally: signs it with the wallet's tally key and
    /// sends the acceptance (now, or when the partner is back). The shell
    /// shows the terms ([`tally`](Self::tally)) first: calling this is the
    /// person's consent.
    pub async fn tally_accept(
        &self,
        id: &str,
    ) -> Result<crate::agent::TallyInfo, crate::agent::TallyActionError> {
        crate::agent::accept_or_refuse(&self.inner, id, true).await
    }

    /// Refuses an offered tally (and tells the partner), withdraws a ticket
    /// nobody used yet, or gives up a scanned ticket still waiting for its
    /// offer.
    pub async fn tally_refuse(
        &self,
        id: &str,
    ) -> Result<crate::agent::TallyInfo, crate::agent::TallyActionError> {
        crate::agent::accept_or_refuse(&self.inner, id, false).await
    }

    /// Pays `units` milliCHIPs to the partner of an open tally: signs a
    /// payment chit (after checking the credit the partner grants: nothing
    /// is signed past it) and sends it, now or when the partner is back.
    pub async fn tally_pay(
        &self,
        id: &str,
        units: u64,
        memo: Option<String>,
    ) -> Result<crate::agent::ChitInfo, crate::agent::TallyPayError> {
        crate::agent::chits_pay(&self.inner, id, units, memo).await
    }

    /// Asks the partner of an open tally to pay `units` milliCHIPs: an
    /// unsigned chit the partner approves (signs) or rejects.
    pub async fn tally_invoice(
        &self,
        id: &str,
        units: u64,
        memo: Option<String>,
    ) -> Result<crate::agent::ChitInfo, crate::agent::TallyInvoiceError> {
        crate::agent::chits_invoice(&self.inner, id, units, memo).await
    }

    /// Approves (signs and pays) an invoice the partner sent. The shell
    /// shows it first: calling this is the person's consent.
    pub async fn chit_approve(
        &self,
        chit: &str,
    ) -> Result<crate::agent::ChitInfo, crate::agent::ChitApproveError> {
        crate::agent::chits_approve(&self.inner, chit).await
    }

    /// Rejects an invoice the partner sent (and tells the partner).
    pub async fn chit_reject(
        &self,
        chit: &str,
    ) -> Result<crate::agent::ChitInfo, crate::agent::ChitRejectError> {
        crate::agent::chits_reject(&self.inner, chit).await
    }

    /// Sets the credit this wallet grants the partner of a tally to
    /// `limit` milliCHIPs: signs a MyCHIPs setting chit (`type: "set"`,
    /// `ref: {"limit": CHIPs}`) and sends it like a payment. The partner's
    /// wallet then checks its payments against the new limit. Refused on a
    /// closed tally, and above the current limit once this wallet asked to
    /// close the tally.
    pub async fn tally_set_limit(
        &self,
        id: &str,
        limit: u64,
    ) -> Result<crate::agent::ChitInfo, crate::agent::TallySettingError> {
        crate::agent::chits_set(&self.inner, id, crate::agent::ChitSetting::Limit(limit)).await
    }

    /// Asks to close a tally: signs a MyCHIPs setting chit with `ref:
    /// {"close": true}` and sends it. The tally is `closing` on both sides
    /// (only chits that bring the balance toward zero can then be made)
    /// and `closed` once its balance is zero.
    pub async fn tally_close(
        &self,
        id: &str,
    ) -> Result<crate::agent::ChitInfo, crate::agent::TallySettingError> {
        crate::agent::chits_set(&self.inner, id, crate::agent::ChitSetting::Close).await
    }

    /// The chits of a tally, newest first, with their states.
    pub async fn tally_chits(
        &self,
        id: &str,
    ) -> Result<Vec<crate::agent::ChitInfo>, crate::agent::TallyError> {
        crate::agent::chits_list(&self.inner, id).await
    }

    /// A page of a tally's chits, newest first: at most `limit`, older than
    /// `before` (the `next` of the page before; `None`: the newest), with
    /// the running balance of each good chit, whether its message still
    /// waits for the partner, and how many chits the tally has. Reads only
    /// the page's rows (and the amounts of the good chits): a tally of
    /// thousands of chits opens as fast as a small one.
    pub async fn tally_chit_page(
        &self,
        id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<crate::agent::ChitPage, crate::agent::ChitPageError> {
        crate::agent::chits_page(&self.inner, id, before, limit).await
    }

    /// Checks both signatures of a MyCHIPs tally record (JSON text); the
    /// error names each failing signature. Needs no wallet.
    pub fn verify_tally_json(
        text: &str,
    ) -> Result<crate::tally::VerifiedTally, crate::tally::TallyVerifyError> {
        crate::tally::verify_tally_json(text)
    }

    /// Who the wallet is in its tallies (CHIP user id, certificate name,
    /// agent id and address).
    pub async fn tally_profile(
        &self,
    ) -> Result<crate::agent::TallyProfile, crate::agent::TallyError> {
        crate::agent::profile(&self.inner).await
    }

    /// Sets the CHIP user id and/or the name put in the certificate of new
    /// tallies.
    pub async fn set_tally_profile(
        &self,
        cuid: Option<String>,
        name: Option<String>,
    ) -> Result<crate::agent::TallyProfile, crate::agent::TallyTicketError> {
        crate::agent::set_profile(&self.inner, cuid, name).await
    }

    /// Starts the tally agent: listens on `config.listen` for partners'
    /// agents (first contacts with a ticket, reconnections from partners)
    /// and delivers the outbox, retrying while a partner is offline. The
    /// address partners should use is recorded for tickets. It runs until
    /// the handle is stopped or dropped.
    pub async fn start_agent(
        &self,
        config: crate::agent::AgentConfig,
    ) -> Result<crate::agent::AgentHandle, crate::agent::AgentError> {
        crate::agent::start(self.inner.clone(), config).await
    }

    /// Where the person asked the agent to listen, if it was saved with
    /// [`set_agent_address`](Self::set_agent_address).
    pub async fn agent_address(
        &self,
    ) -> Result<Option<crate::agent::AgentAddress>, crate::store::StoreError> {
        crate::agent::agent_address(&self.inner).await
    }

    /// Saves where the agent should listen (and what partners are told),
    /// for the shell to start it there next time. It does not restart a
    /// running agent: the shell stops it and starts it again.
    pub async fn set_agent_address(
        &self,
        address: crate::agent::AgentAddress,
    ) -> Result<(), crate::store::StoreError> {
        crate::agent::set_agent_address(&self.inner, address).await
    }

    /// Partners the agent has a session with now, and partners messages
    /// wait for.
    pub async fn agent_activity(
        &self,
    ) -> Result<crate::agent::AgentActivity, crate::store::StoreError> {
        crate::agent::activity(&self.inner).await
    }

    /// One pass over the outbox now: every message whose retry time has
    /// come is sent if its partner answers.
    pub async fn deliver_outbox(
        &self,
    ) -> Result<crate::agent::DeliveryReport, crate::agent::AgentError> {
        let me = crate::agent::identity(&self.inner).await?;
        let config = self.inner.agent.config();
        Ok(crate::agent::deliver_due(&self.inner, &me, &config).await?)
    }
}

fn empty_balance(id: &Hash32, ledger: &Ledger) -> Balance {
    let (symbol, decimals) = ledger.symbol(id);
    Balance {
        asset: hex::encode(id),
        name: ledger.asset(id).map(|a| a.name.clone()).unwrap_or_default(),
        symbol,
        decimals,
        confirmed: 0,
        pending: 0,
        pending_outgoing: 0,
        spendable: 0,
    }
}

pub(crate) fn confirmations(record: &TxRecord, tip: Option<u64>) -> u64 {
    match (record.block, tip) {
        (Some((height, _)), Some(tip)) if record.state.is_in_block() => {
            tip.saturating_sub(height) + 1
        }
        _ => 0,
    }
}

pub(crate) fn status_info(record: &TxRecord, tip: Option<u64>) -> TxStatusInfo {
    TxStatusInfo {
        txid: hex::encode(record.txid),
        state: record.state,
        confirmations: confirmations(record, tip),
        block_height: record.block.map(|b| b.0),
        reason: record.reason.clone(),
    }
}

type PageQuery = (HistoryQuery, Option<(i64, i64)>);

/// The store's query and cursor for a filter and a cursor of
/// [`Wallet::history_page_at`]; `None` when the filter names an asset the
/// wallet cannot name (nothing matches).
fn page_query(
    ledger: Option<&Ledger>,
    filter: HistoryPageFilter,
    cursor: Option<String>,
) -> Result<Option<PageQuery>, WalletError> {
    let before = match cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => Some(
            // (Not a variant of its own: the shells match WalletError
            // exhaustively.)
            crate::store::history::parse_cursor(c).ok_or_else(|| {
                WalletError::Store(StoreError::NotFound {
                    what: format!("history cursor {c:?}"),
                })
            })?,
        ),
        None => None,
    };
    let asset = match &filter.asset {
        None => None,
        Some(name) => {
            let id = match ledger {
                Some(l) => l.find_asset(name).map(|a| a.id.clone()),
                None => None,
            }
            .unwrap_or_else(|| name.trim().to_ascii_lowercase());
            match AssetId::from_hex(&id) {
                Ok(id) => Some(id.0),
                // An asset the wallet cannot name moves nothing here.
                Err(_) => {
                    return Ok(None);
                }
            }
        }
    };
    let query = HistoryQuery {
        asset,
        direction: filter.direction,
        incoming: filter.incoming,
        states: filter.states,
        since: filter.since,
        until: filter.until,
        search: filter.search,
    };
    Ok(Some((query, before)))
}

fn history_row(r: HistoryRecord, tip: Option<u64>, ledger: Option<&Ledger>) -> HistoryRow {
    let confirmations = match (r.block_height, tip) {
        (Some(height), Some(tip)) if r.state.is_in_block() => tip.saturating_sub(height) + 1,
        _ => 0,
    };
    let amounts = r
        .effects
        .iter()
        .map(|e| {
            let (symbol, decimals) = match ledger {
                Some(l) => l.symbol(&e.asset),
                None => (hex::encode(&e.asset[..4]), 0),
            };
            HistoryAmount {
                asset: hex::encode(e.asset),
                symbol,
                decimals,
                received: e.received,
                sent: e.sent,
                net: e.received as i128 - e.sent as i128,
            }
        })
        .collect();
    HistoryRow {
        cursor: r.cursor(),
        txid: hex::encode(r.txid),
        state: r.state,
        confirmations,
        block_height: r.block_height,
        time: r.time,
        own: r.own,
        direction: r.direction.as_str(),
        incoming: r.direction == Direction::In,
        fee: r.fee,
        amounts,
        counterparties: r.counterparties,
        memo: r.memo,
        reason: r.reason,
    }
}

fn history_entries(
    store: &mut Store,
    ledger: Option<&Ledger>,
) -> Result<Vec<HistoryEntry>, WalletError> {
    let tip = store.tip()?.map(|h| h.height);
    let mut out = Vec::new();
    for record in store.all_transactions()? {
        // (asset -> (received, sent)), in first-seen order.
        let mut sums: Vec<(Hash32, u128, u128)> = Vec::new();
        let mut add = |asset: Hash32, received: u64, sent: u64| match sums
            .iter_mut()
            .find(|(a, _, _)| *a == asset)
        {
            Some(e) => {
                e.1 += u128::from(received);
                e.2 += u128::from(sent);
            }
            None => sums.push((asset, u128::from(received), u128::from(sent))),
        };
        // What the transaction's bytes said, as the store kept it when the
        // transaction was applied (the bytes themselves are gone for all
        // but the wallet's unresolved sends): the wallet's coins it spends,
        // the addresses it pays that are not the wallet's, its fee.
        let facts = store.transaction_facts(&record.txid)?;
        for op in &facts.spends {
            if let Some(coin) = store.output(op)? {
                add(coin.asset, 0, coin.amount);
            }
        }
        for coin in store.outputs_of(&record.txid)? {
            add(coin.asset, coin.amount, 0);
        }
        let counterparties = facts.counterparties;
        let fee = facts.fee;
        let amounts: Vec<HistoryAmount> = sums
            .into_iter()
            .map(|(asset, received, sent)| {
                let (symbol, decimals) = match ledger {
                    Some(l) => l.symbol(&asset),
                    None => (hex::encode(&asset[..4]), 0),
                };
                // Both sums are below 2^80 (at most ~2^16 outputs of u64):
                // the difference fits an i128 exactly.
                let net = received as i128 - sent as i128;
                HistoryAmount {
                    asset: hex::encode(asset),
                    symbol,
                    decimals,
                    received,
                    sent,
                    net,
                }
            })
            .collect();
        let spent_any = amounts.iter().any(|a| a.sent > 0);
        let time = match record.block {
            Some((height, _)) => store
                .header(height)?
                .map(|h| h.time)
                .unwrap_or(record.created_at.max(0) as u64),
            None => record.created_at.max(0) as u64,
        };
        out.push(HistoryEntry {
            txid: hex::encode(record.txid),
            state: record.state,
            confirmations: confirmations(&record, tip),
            block_height: record.block.map(|b| b.0),
            time,
            own: record.own,
            incoming: !spent_any,
            fee,
            amounts,
            counterparties,
            reason: record.reason.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}

    #[tokio::test]
    async fn the_wallet_and_its_futures_can_cross_threads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = WalletConfig::new(dir.path(), "http://127.0.0.1:1", Network::Sandbox);
        let store: Arc<dyn SecretStore> = Arc::new(crate::secrets::MemorySecretStore::new());
        let (wallet, phrase) = Wallet::create(config.clone(), store.clone(), WordCount::Twelve)
            .await
            .expect("creates offline");
        send_sync(&wallet);
        send(wallet.sync());
        send(wallet.watch(Duration::from_secs(1)));
        send(wallet.balances());
        send(wallet.receive_address());
        // Addresses are fresh each time and recorded with their look-ahead.
        let a = wallet.receive_address().await.expect("address");
        let b = wallet.receive_address().await.expect("address");
        assert_ne!(a, b);
        assert!(a.starts_with("nsb1"));
        let all = wallet.addresses().await.expect("addresses");
        assert_eq!(all.iter().filter(|x| !x.change).count(), 22);
        assert_eq!(all.iter().filter(|x| x.change).count(), 20);
        // Every asset shows up only after the first contact with a gateway.
        assert!(wallet.balances().await.expect("balances").is_empty());
        // A second wallet in the same directory is refused; reopening works
        // (same secret store), another network is refused.
        assert!(matches!(
            Wallet::create(config.clone(), store.clone(), WordCount::Twelve).await,
            Err(OpenError::WalletExists { .. })
        ));
        drop(wallet);
        let again = Wallet::open(config.clone(), store.clone())
            .await
            .expect("opens");
        let c = again.receive_address().await.expect("address");
        assert!(c != a && c != b);
        let mut other = config.clone();
        other.network = Network::Test;
        assert!(matches!(
            Wallet::open(other, store.clone()).await,
            Err(OpenError::WrongNetwork { .. })
        ));
        // The database holds no secret: not the phrase, not its entropy.
        drop(again);
        let bytes = std::fs::read(config.db_path()).expect("reads the db");
        let wal = std::fs::read(config.data_dir.join("wallet.sqlite-wal")).unwrap_or_default();
        for haystack in [&bytes, &wal] {
            let text = String::from_utf8_lossy(haystack);
            assert!(!text.contains(phrase.phrase().as_str()));
            let entropy = phrase.entropy();
            assert!(
                !haystack
                    .windows(entropy.len())
                    .any(|w| w == entropy.as_slice())
            );
        }
        // Without its secret the wallet does not open, and says why.
        let empty: Arc<dyn SecretStore> = Arc::new(crate::secrets::MemorySecretStore::new());
        let err = Wallet::open(config, empty).await.expect_err("no secret");
        assert!(err.to_string().contains("restore the wallet"), "{err}");
    }
}
