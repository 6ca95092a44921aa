//! Records and enums that cross the FFI, mirroring the core's types.
//! Amounts that may not fit 64 bits (sums of coins) are decimal strings of
//! base units; `decimals` says where the point goes.

use notch_core as core;

/// Which ledger a wallet is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Network {
    Main,
    Test,
    Sandbox,
}

impl From<Network> for core::Network {
    fn from(n: Network) -> Self {
        match n {
            Network::Main => core::Network::Main,
            Network::Test => core::Network::Test,
            Network::Sandbox => core::Network::Sandbox,
        }
    }
}

impl From<core::Network> for Network {
    fn from(n: core::Network) -> Self {
        match n {
            core::Network::Main => Network::Main,
            core::Network::Test => Network::Test,
            core::Network::Sandbox => Network::Sandbox,
        }
    }
}

/// Where a wallet lives and which gateway and network it uses.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct WalletConfig {
    /// Directory of the wallet's database, created if missing (on a phone:
    /// the app's files directory).
    pub data_dir: String,
    /// The gateway's root URL (`https://…`; plain `http://` only to this
    /// machine unless `allow_insecure_http`).
    pub gateway_url: String,
    pub network: Network,
    /// Unused addresses watched past the last used one (default 20).
    #[uniffi(default = None)]
    pub gap_limit: Option<u32>,
    /// Allow plain `http://` to a gateway that is not on this machine.
    #[uniffi(default = false)]
    pub allow_insecure_http: bool,
    /// The ledger's identity from its operator (the network file's JSON
    /// text), so that first contact need not be trusted.
    #[uniffi(default = None)]
    pub network_file_json: Option<String>,
}

impl WalletConfig {
    pub(crate) fn to_core(&self) -> Result<core::WalletConfig, crate::OpenError> {
        let mut config =
            core::WalletConfig::new(&self.data_dir, &self.gateway_url, self.network.into());
        if let Some(gap) = self.gap_limit {
            if !(1..=1000).contains(&gap) {
                return Err(crate::OpenError::BadConfig(format!(
                    "a gap limit is from 1 to 1000 addresses, not {gap}"
                )));
            }
            config.gap_limit = gap;
        }
        config.allow_insecure_http = self.allow_insecure_http;
        if let Some(json) = &self.network_file_json {
            let file = core::NetworkFile::from_json(json).map_err(|e| {
                crate::OpenError::BadConfig(format!("the network file is not valid: {e}"))
            })?;
            config.network_file = Some(file);
        }
        if self.data_dir.trim().is_empty() {
            return Err(crate::OpenError::BadConfig(
                "the data directory is empty: give the app's files directory".into(),
            ));
        }
        Ok(config)
    }
}

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TxState {
    Queued,
    Accepted,
    InPool,
    Confirmed,
    Final,
    Rejected,
    Dropped,
    Abandoned,
}

impl From<core::TxState> for TxState {
    fn from(s: core::TxState) -> Self {
        use core::TxState as C;
        match s {
            C::Queued => Self::Queued,
            C::Accepted => Self::Accepted,
            C::InPool => Self::InPool,
            C::Confirmed => Self::Confirmed,
            C::Final => Self::Final,
            C::Rejected => Self::Rejected,
            C::Dropped => Self::Dropped,
            C::Abandoned => Self::Abandoned,
        }
    }
}

impl From<TxState> for core::TxState {
    fn from(s: TxState) -> Self {
        use core::TxState as C;
        match s {
            TxState::Queued => C::Queued,
            TxState::Accepted => C::Accepted,
            TxState::InPool => C::InPool,
            TxState::Confirmed => C::Confirmed,
            TxState::Final => C::Final,
            TxState::Rejected => C::Rejected,
            TxState::Dropped => C::Dropped,
            TxState::Abandoned => C::Abandoned,
        }
    }
}

/// The balance of one asset, in base units (decimal strings).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Balance {
    /// Asset id, hex.
    pub asset: String,
    pub symbol: String,
    pub name: String,
    pub decimals: u8,
    /// In blocks of the chain the wallet follows.
    pub confirmed: String,
    /// Incoming, not in a block yet.
    pub pending: String,
    /// Reserved by a send of the wallet that is not in a block yet.
    pub pending_outgoing: String,
    /// What a new send can use now.
    pub spendable: String,
}

impl From<core::Balance> for Balance {
    fn from(b: core::Balance) -> Self {
        Self {
            asset: b.asset,
            symbol: b.symbol,
            name: b.name,
            decimals: b.decimals,
            confirmed: b.confirmed.to_string(),
            pending: b.pending.to_string(),
            pending_outgoing: b.pending_outgoing.to_string(),
            spendable: b.spendable.to_string(),
        }
    }
}

/// Asset metadata, as the gateway serves it (known after the first sync).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AssetMeta {
    pub id: String,
    pub symbol: String,
    pub name: String,
    pub decimals: u8,
    pub native: bool,
}

impl From<core::wallet::AssetMeta> for AssetMeta {
    fn from(a: core::wallet::AssetMeta) -> Self {
        Self {
            id: a.id,
            symbol: a.symbol,
            name: a.name,
            decimals: a.decimals,
            native: a.native,
        }
    }
}

/// One asset's movement in a transaction, base units.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryAmount {
    pub asset: String,
    pub symbol: String,
    pub decimals: u8,
    pub received: String,
    pub sent: String,
    /// `received - sent`, negative for a payment out (fee included).
    pub net: String,
}

/// A transaction in the wallet's history.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryEntry {
    pub txid: String,
    pub state: TxState,
    pub confirmations: u64,
    pub block_height: Option<u64>,
    /// Unix seconds.
    pub time: u64,
    pub own: bool,
    pub incoming: bool,
    pub fee: Option<u64>,
    pub amounts: Vec<HistoryAmount>,
    pub counterparties: Vec<String>,
    pub reason: Option<String>,
}

impl From<core::HistoryEntry> for HistoryEntry {
    fn from(e: core::HistoryEntry) -> Self {
        Self {
            txid: e.txid,
            state: e.state.into(),
            confirmations: e.confirmations,
            block_height: e.block_height,
            time: e.time,
            own: e.own,
            incoming: e.incoming,
            fee: e.fee,
            amounts: e
                .amounts
                .into_iter()
                .map(|a| HistoryAmount {
                    asset: a.asset,
                    symbol: a.symbol,
                    decimals: a.decimals,
                    received: a.received.to_string(),
                    sent: a.sent.to_string(),
                    net: a.net.to_string(),
                })
                .collect(),
            counterparties: e.counterparties,
            reason: e.reason,
        }
    }
}

/// Which transactions the history lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct HistoryFilter {
    /// Only this asset (symbol or id hex).
    #[uniffi(default = None)]
    pub asset: Option<String>,
    /// Only payments in (true) or out (false).
    #[uniffi(default = None)]
    pub incoming: Option<bool>,
    /// Only these states (empty: all).
    #[uniffi(default = [])]
    pub states: Vec<TxState>,
    /// Transaction id prefix or an address paid.
    #[uniffi(default = None)]
    pub search: Option<String>,
    /// At most this many, newest first (0: all).
    #[uniffi(default = 0)]
    pub limit: u32,
}

impl From<HistoryFilter> for core::HistoryFilter {
    fn from(f: HistoryFilter) -> Self {
        Self {
            asset: f.asset,
            incoming: f.incoming,
            states: f.states.into_iter().map(Into::into).collect(),
            search: f.search,
            limit: f.limit as usize,
        }
    }
}

/// Where one transaction of the wallet is, as of the last sync.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TxStatus {
    pub txid: String,
    pub state: TxState,
    pub confirmations: u64,
    pub block_height: Option<u64>,
    pub reason: Option<String>,
}

impl From<core::wallet::TxStatusInfo> for TxStatus {
    fn from(s: core::wallet::TxStatusInfo) -> Self {
        Self {
            txid: s.txid,
            state: s.state.into(),
            confirmations: s.confirmations,
            block_height: s.block_height,
            reason: s.reason,
        }
    }
}

/// A notification in the wallet's inbox.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Notification {
    pub id: i64,
    /// `payment_received`, `tx_confirmed`, `tally_offered`, … (the core's
    /// names; new kinds may come).
    pub kind: String,
    pub title: String,
    pub body: String,
    /// The transaction it is about, hex.
    pub txid: Option<String>,
    /// The tally it is about.
    pub tally: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub read: bool,
}

impl From<core::Notification> for Notification {
    fn from(n: core::Notification) -> Self {
        Self {
            id: n.id,
            kind: n.kind.as_str().to_owned(),
            title: n.title,
            body: n.body,
            txid: n.txid.map(hex_encode),
            tally: n.tally,
            created_at: n.created_at,
            read: n.read,
        }
    }
}

fn hex_encode(bytes: [u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What one sync pass did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    pub height: u64,
    pub blocks: u64,
    pub rolled_back: u64,
    pub rescanned: u64,
    pub pool_txs: u64,
}

impl From<core::SyncReport> for SyncReport {
    fn from(r: core::SyncReport) -> Self {
        Self {
            height: r.height,
            blocks: r.blocks,
            rolled_back: r.rolled_back,
            rescanned: r.rescanned,
            pool_txs: r.pool_txs,
        }
    }
}

/// Where sync stands, for a status line.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncStatus {
    pub height: Option<u64>,
    /// Unix seconds since the gateway stopped answering, if it does not.
    pub unreachable_since: Option<u64>,
}

/// One of the wallet's addresses.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AddressInfo {
    pub address: String,
    pub change: bool,
    pub index: u32,
    pub used: bool,
}

impl From<core::AddressInfo> for AddressInfo {
    fn from(a: core::AddressInfo) -> Self {
        Self {
            address: a.address,
            change: a.change,
            index: a.index,
            used: a.used,
        }
    }
}

/// One payee of a send.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Recipient {
    pub address: String,
    /// A decimal amount in the asset's unit ("1.5").
    pub amount: String,
    /// Symbol or id hex; the native asset if null.
    #[uniffi(default = None)]
    pub asset: Option<String>,
}

impl From<Recipient> for core::Recipient {
    fn from(r: Recipient) -> Self {
        Self {
            address: r.address,
            amount: r.amount,
            asset: r.asset,
        }
    }
}

/// One output of a prepared payment (a recipient or the wallet's change).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProposalOutput {
    pub address: String,
    pub asset: String,
    pub symbol: String,
    pub decimals: u8,
    /// Base units.
    pub amount: u64,
}

/// What leaves the wallet in one asset.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AssetTotal {
    pub asset: String,
    pub symbol: String,
    pub decimals: u8,
    pub amount: u64,
    pub fee: u64,
    pub inputs: u64,
    pub change: u64,
}

/// A prepared payment, for review before it is confirmed.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SendSummary {
    /// The id the transaction will have.
    pub txid: String,
    pub recipients: Vec<ProposalOutput>,
    pub change: Vec<ProposalOutput>,
    /// Fee in base units of the native asset.
    pub fee: u64,
    pub fee_symbol: String,
    pub fee_decimals: u8,
    pub totals: Vec<AssetTotal>,
    /// Size of the signed transaction in bytes.
    pub size: u64,
}

fn output(o: &core::tx::ProposalOutput) -> ProposalOutput {
    ProposalOutput {
        address: o.address.clone(),
        asset: o.asset.clone(),
        symbol: o.symbol.clone(),
        decimals: o.decimals,
        amount: o.amount,
    }
}

impl From<&core::SendProposal> for SendSummary {
    fn from(p: &core::SendProposal) -> Self {
        Self {
            txid: p.txid.clone(),
            recipients: p.recipients.iter().map(output).collect(),
            change: p.change.iter().map(output).collect(),
            fee: p.fee,
            fee_symbol: p.fee_symbol.clone(),
            fee_decimals: p.fee_decimals,
            totals: p
                .totals
                .iter()
                .map(|t| AssetTotal {
                    asset: t.asset.clone(),
                    symbol: t.symbol.clone(),
                    decimals: t.decimals,
                    amount: t.amount,
                    fee: t.fee,
                    inputs: t.inputs,
                    change: t.change,
                })
                .collect(),
            size: p.size as u64,
        }
    }
}
