//! What the wallet's parts share: the wallet's context ([`Inner`]: its
//! store, keys, gateway client, event bus, pinned ledger) and the small
//! helpers around it. Sync, sends and the lock work on this context; the
//! [`Wallet`](crate::Wallet) facade owns it and is the only one that
//! exposes them, so no part reaches into the facade and the facade depends
//! on the parts, not the other way round.

use std::sync::{Arc, Mutex};

use notch_protocol::api::LedgerInfo;
use notch_protocol::{Address, AssetId, Network, PublicKey};

use crate::events::EventBus;
use crate::gateway::GatewayClient;
use crate::keys::{AddressChain, KeyError, WalletKeys};
use crate::secrets::SecretStore;
use crate::store::{NewAddress, Store, StoreError, StoreTx};
use crate::wallet::WalletConfig;

/// The ledger facts the wallet keeps from the gateway's `/v1/info`.
#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    pub info: LedgerInfo,
    pub authority: PublicKey,
    pub native: AssetId,
}

impl Ledger {
    pub(crate) fn from_info(info: LedgerInfo) -> Option<Self> {
        let authority = PublicKey::from_hex(&info.authority_key).ok()?;
        let native = info
            .assets
            .iter()
            .find(|a| a.native)
            .and_then(|a| AssetId::from_hex(&a.id).ok())?;
        Some(Self {
            info,
            authority,
            native,
        })
    }

    pub(crate) fn asset(&self, id: &[u8; 32]) -> Option<&notch_protocol::api::AssetInfo> {
        let hex = hex::encode(id);
        self.info.assets.iter().find(|a| a.id == hex)
    }

    /// An asset by symbol (any case) or id hex.
    pub(crate) fn find_asset(&self, name: &str) -> Option<&notch_protocol::api::AssetInfo> {
        let lower = name.trim().to_ascii_lowercase();
        self.info
            .assets
            .iter()
            .find(|a| a.symbol.eq_ignore_ascii_case(name.trim()) || a.id == lower)
    }

    pub(crate) fn symbol(&self, id: &[u8; 32]) -> (String, u8) {
        match self.asset(id) {
            Some(a) => (a.symbol.clone(), a.decimals),
            None => (hex::encode(&id[..4]), 0),
        }
    }
}

/// The settings key of the pinned authority key of `network`.
pub(crate) fn authority_setting(network: Network) -> String {
    format!("authority_key:{}", network.name())
}

/// The pinned ledger metadata ([`crate::trust::Pinned`], JSON).
pub(crate) const PINNED_SETTING: &str = "pinned_ledger";
/// Set by a restore until a sync pass has scanned to the tip with every
/// address found.
pub(crate) const RESTORING_SETTING: &str = "restoring";
pub(crate) const LEDGER_INFO_SETTING: &str = "ledger_info";
pub(crate) const MEMPOOL_SEQ_SETTING: &str = "mempool_seq";

pub(crate) struct Inner {
    pub wallet_id: String,
    pub config: WalletConfig,
    pub network: Network,
    pub store: Arc<Mutex<Store>>,
    pub keys: WalletKeys,
    pub gateway: GatewayClient,
    /// Kept to read the recovery phrase again (after re-authentication).
    pub secret_store: Arc<dyn SecretStore>,
    /// Recent wrong lock passphrases, to slow down guessing.
    pub lock_failures: Mutex<crate::lock::Failures>,
    pub events: EventBus,
    pub ledger: Mutex<Option<Ledger>>,
    /// One sync pass at a time.
    pub sync_lock: tokio::sync::Mutex<()>,
    /// One send confirmation at a time.
    pub send_lock: tokio::sync::Mutex<()>,
    pub unreachable_since: Mutex<Option<u64>>,
    /// What the tally agent shares with the rest (its wake-up, the
    /// deliveries under way, its settings).
    pub agent: crate::agent::AgentShared,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic inside a store write rolls its transaction back, so the data
    // behind a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Runs `f` on the store in a blocking task.
    pub(crate) async fn db<T, E>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&mut lock(&store))).await {
            Ok(result) => result,
            Err(e) => Err(StoreError::Corrupt(format!("a database task failed: {e}")).into()),
        }
    }

    pub(crate) fn ledger(&self) -> Option<Ledger> {
        lock(&self.ledger).clone()
    }

    pub(crate) fn set_ledger(&self, ledger: Ledger) {
        *lock(&self.ledger) = Some(ledger);
    }

    pub(crate) fn unreachable_since(&self) -> Option<u64> {
        *lock(&self.unreachable_since)
    }

    pub(crate) fn set_unreachable_since(&self, since: Option<u64>) -> Option<u64> {
        std::mem::replace(&mut *lock(&self.unreachable_since), since)
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Derives the address of `chain`/`index`.
pub(crate) fn derive_address(
    keys: &WalletKeys,
    network: Network,
    chain: AddressChain,
    index: u32,
) -> Result<NewAddress, KeyError> {
    let key = keys.token_key(chain, index)?;
    let public_key = key.public_key().to_bytes();
    Ok(NewAddress {
        chain,
        index,
        address: Address::new(network, PublicKey(public_key)).encode(),
        public_key,
    })
}

/// One past the highest used address of a chain (0 if none is used).
pub(crate) fn used_end(addresses: &[crate::store::AddressRecord]) -> u32 {
    addresses
        .iter()
        .filter(|a| a.used)
        .map(|a| a.index + 1)
        .max()
        .unwrap_or(0)
}

/// Makes sure `gap` unused addresses past the highest used (or handed out)
/// one are derived and recorded on both chains; returns the new ones.
pub(crate) fn ensure_lookahead(
    tx: &StoreTx<'_>,
    keys: &WalletKeys,
    network: Network,
    gap: u32,
) -> Result<Vec<NewAddress>, StoreError> {
    let meta = tx.wallet()?.ok_or(StoreError::NoWallet)?;
    let mut added = Vec::new();
    for chain in [AddressChain::Receive, AddressChain::Change] {
        let existing = tx.addresses(chain)?;
        let target = used_end(&existing)
            .max(meta.next_index(chain))
            .saturating_add(gap)
            .min(crate::keys::HARDENED);
        let have = existing.len() as u32;
        if have >= target {
            continue;
        }
        let new: Vec<NewAddress> = (have..target)
            .map(|i| derive_address(keys, network, chain, i))
            .collect::<Result<_, _>>()?;
        tx.insert_addresses(&new)?;
        added.extend(new);
    }
    Ok(added)
}

/// Runs blocking work (secret store, database) off the async threads.
pub(crate) async fn blocking<T: Send + 'static, E: Send + 'static + From<StoreError>>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(StoreError::Corrupt(format!("a worker task failed: {e}")).into()),
    }
}
