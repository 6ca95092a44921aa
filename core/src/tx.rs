//! Sending: recipients batched in one transaction, coin selection per asset
//! (branch-and-bound for an exact match without change, largest-first as the
//! fallback), the fee in the native asset from the transaction's size, change
//! to a fresh change address, signing, idempotent submission.
//!
//! Everything a person can get wrong (address, network, amount, asset,
//! funds) is refused in [`Wallet::prepare_send`], before anything is signed.

use std::collections::HashMap;

use notch_protocol::api::TxStatus;
use notch_protocol::tx::{MAX_TX_BYTES, MAX_TX_OUTPUTS};
use notch_protocol::{
    Address, AssetId, ChainParams, Network, OutPoint as ProtoOutPoint, Output, PublicKey,
    Transaction, TxId,
};
use serde::Serialize;

use crate::amount::{AmountError, format_amount, parse_amount};
use crate::context::{Inner, Ledger, derive_address, ensure_lookahead};
use crate::events::WalletEvent;
use crate::gateway::GatewayError;
use crate::keys::{AddressChain, KeyError};
use crate::store::{Hash32, NewOutput, NewTransaction, OutPoint, StoreError, TxState};

/// A payment to make: an address, an amount as a decimal string in the
/// asset's units ("12.50"), and the asset (symbol or id; the native asset
/// if `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub amount: String,
    pub asset: Option<String>,
}

/// Why a payment cannot be made, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("there is nobody to pay: add at least one recipient")]
    NoRecipients,
    #[error("{address:?} is not a valid address: {reason}")]
    BadAddress { address: String, reason: String },
    #[error("{address} is an address of network {found}; this wallet is on {expected}")]
    WrongNetwork {
        address: String,
        found: String,
        expected: String,
    },
    #[error("the amount for {address} is not valid: {error}")]
    BadAmount { address: String, error: AmountError },
    #[error("unknown asset {0:?}; the gateway knows {1}")]
    UnknownAsset(String, String),
    #[error("not enough {symbol}: you have {have}, the payment needs {need}")]
    InsufficientFunds {
        symbol: String,
        have: String,
        need: String,
    },
    #[error(
        "a transaction holds at most {max} outputs; {found} recipients plus change is too many: split the payment"
    )]
    TooManyOutputs { found: usize, max: usize },
    #[error(
        "the payment needs more coins than fit in one transaction ({inputs} inputs); send a smaller amount first"
    )]
    TooLarge { inputs: usize },
    #[error("the wallet has not synced with the gateway yet; sync first")]
    NotSynced,
    #[error(
        "the wallet changed since this payment was prepared ({0}); prepare it again and review it"
    )]
    StaleProposal(String),
    #[error(
        "the gateway says it refused the payment ({code}): {message}. Its coins stay reserved: a signed payment may still confirm. If you are sure it will not, abandon it before paying again"
    )]
    Rejected { code: String, message: String },
    #[error("internal error: the transaction built does not pass the ledger rules: {0}")]
    Invalid(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// One output of a proposed payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProposalOutput {
    pub address: String,
    /// Asset id, hex.
    pub asset: String,
    pub symbol: String,
    pub decimals: u8,
    /// Base units.
    pub amount: u64,
}

/// The total leaving the wallet in one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetTotal {
    pub asset: String,
    pub symbol: String,
    pub decimals: u8,
    /// To the recipients.
    pub amount: u64,
    /// Fee paid in this asset (native only).
    pub fee: u64,
    /// Coins used.
    pub inputs: u64,
    /// Back to the wallet.
    pub change: u64,
}

/// A payment built and ready for review: nothing is signed or locked yet.
/// Confirm it with [`Wallet::confirm_send`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendProposal {
    /// The transaction id it will have (ids do not cover signatures).
    pub txid: String,
    pub recipients: Vec<ProposalOutput>,
    pub change: Vec<ProposalOutput>,
    /// Fee in base units of the native asset.
    pub fee: u64,
    pub fee_symbol: String,
    pub fee_decimals: u8,
    pub totals: Vec<AssetTotal>,
    /// Size of the signed transaction in bytes.
    pub size: usize,
    #[serde(skip)]
    pub(crate) tx: Transaction,
    #[serde(skip)]
    pub(crate) change_index: Option<u32>,
}

/// A coin for selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coin {
    pub outpoint: OutPoint,
    pub amount: u64,
}

/// Branch-and-bound: a subset of `coins` whose value, each coin counted as
/// its amount minus `cost_per_input`, lies in `[target, target + window]`.
/// Prefers fewer wasted units; gives up after a bounded number of tries.
pub fn branch_and_bound(
    coins: &[Coin],
    target: u64,
    cost_per_input: u64,
    window: u64,
) -> Option<Vec<Coin>> {
    let mut pool: Vec<(Coin, u64)> = coins
        .iter()
        .filter(|c| c.amount > cost_per_input)
        .map(|c| (*c, c.amount - cost_per_input))
        .collect();
    pool.sort_by_key(|c| std::cmp::Reverse(c.1));
    let total: u128 = pool.iter().map(|(_, v)| u128::from(*v)).sum();
    if total < u128::from(target) {
        return None;
    }
    // remaining[i] = sum of values from i on.
    let mut remaining = vec![0u128; pool.len() + 1];
    for i in (0..pool.len()).rev() {
        remaining[i] = remaining[i + 1] + u128::from(pool[i].1);
    }
    let mut search = Bnb {
        pool: &pool,
        remaining: &remaining,
        target: u128::from(target),
        upper: u128::from(target) + u128::from(window),
        chosen: Vec::new(),
        best: None,
        tries: 0,
    };
    search.run(0, 0);
    let best = search.best;
    best.map(|(_, idx)| idx.into_iter().map(|i| pool[i].0).collect())
}

/// Depth-first search over include/exclude, largest coins first, keeping
/// the subset with the least waste; bounded number of steps.
struct Bnb<'a> {
    pool: &'a [(Coin, u64)],
    remaining: &'a [u128],
    target: u128,
    upper: u128,
    chosen: Vec<usize>,
    best: Option<(u128, Vec<usize>)>,
    tries: u32,
}

impl Bnb<'_> {
    fn run(&mut self, i: usize, sum: u128) {
        self.tries += 1;
        if self.tries > 100_000 || sum > self.upper {
            return;
        }
        if sum >= self.target {
            let waste = sum - self.target;
            if self.best.as_ref().is_none_or(|(w, _)| waste < *w) {
                self.best = Some((waste, self.chosen.clone()));
            }
            return;
        }
        if i >= self.pool.len() || sum + self.remaining[i] < self.target {
            return;
        }
        if self.best.as_ref().is_some_and(|(w, _)| *w == 0) {
            return;
        }
        self.chosen.push(i);
        self.run(i + 1, sum + u128::from(self.pool[i].1));
        self.chosen.pop();
        self.run(i + 1, sum);
    }
}

/// Largest coins first until `need(count)` is covered; `None` if all coins
/// together do not cover it.
pub fn largest_first(coins: &[Coin], need: impl Fn(usize) -> u64) -> Option<Vec<Coin>> {
    let mut sorted = coins.to_vec();
    sorted.sort_by(|a, b| b.amount.cmp(&a.amount).then(a.outpoint.cmp(&b.outpoint)));
    let mut sum: u128 = 0;
    let mut out = Vec::new();
    for coin in sorted {
        if sum >= u128::from(need(out.len())) && !out.is_empty() {
            break;
        }
        sum += u128::from(coin.amount);
        out.push(coin);
    }
    (sum >= u128::from(need(out.len()))).then_some(out)
}

/// The fee rule: `min_fee(estimate_len(inputs, outputs))`.
pub fn fee_for(params: &ChainParams, inputs: usize, outputs: usize) -> u64 {
    params.min_fee(Transaction::estimate_len(inputs, outputs))
}

/// What coin selection decided for a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Coins used, per asset.
    pub inputs: Vec<(Hash32, Vec<Coin>)>,
    /// Change per asset (only non-zero ones).
    pub change: Vec<(Hash32, u64)>,
    pub fee: u64,
}

/// Why coins could not be selected: the asset that falls short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub asset: Hash32,
    pub have: u64,
    pub need: u128,
    pub fee: u64,
}

/// Selects coins for `payments` (asset -> total to pay) from `coins` (asset
/// -> spendable coins), with `outputs` recipient outputs, paying the fee in
/// `native`.
pub fn select_coins(
    params: &ChainParams,
    native: Hash32,
    payments: &[(Hash32, u64)],
    outputs: usize,
    coins: &HashMap<Hash32, Vec<Coin>>,
) -> Result<Selection, Shortfall> {
    let empty = Vec::new();
    // Every sum is u128: coins and payments are u64 each, their sums are not.
    let total = |c: &[Coin]| -> u128 { c.iter().map(|c| u128::from(c.amount)).sum() };
    let have = |asset: &Hash32| -> u64 {
        coins
            .get(asset)
            .map(|c| u64::try_from(total(c)).unwrap_or(u64::MAX))
            .unwrap_or(0)
    };
    // A change amount is below the last coin picked (selection stops once
    // covered), so it fits a u64; checked anyway.
    let to_u64 = |v: u128, asset: &Hash32| -> Result<u64, Shortfall> {
        u64::try_from(v).map_err(|_| Shortfall {
            asset: *asset,
            have: have(asset),
            need: v,
            fee: 0,
        })
    };
    let mut inputs = Vec::new();
    let mut change = Vec::new();
    // Tokens first: their coins and change outputs add to the fee.
    for (asset, amount) in payments.iter().filter(|(a, _)| *a != native) {
        let pool = coins.get(asset).unwrap_or(&empty);
        let picked = branch_and_bound(pool, *amount, 0, 0)
            .or_else(|| largest_first(pool, |_| *amount))
            .ok_or(Shortfall {
                asset: *asset,
                have: have(asset),
                need: u128::from(*amount),
                fee: 0,
            })?;
        let sum = total(&picked);
        if sum > u128::from(*amount) {
            change.push((*asset, to_u64(sum - u128::from(*amount), asset)?));
        }
        inputs.push((*asset, picked));
    }
    let other_inputs: usize = inputs.iter().map(|(_, c)| c.len()).sum();
    let other_outputs = outputs + change.len();
    let pay_total: u128 = payments
        .iter()
        .filter(|(a, _)| *a == native)
        .map(|(_, v)| u128::from(*v))
        .sum();
    let pool = coins.get(&native).unwrap_or(&empty);
    let no_change = |k: usize| fee_for(params, other_inputs + k, other_outputs);
    let with_change = |k: usize| fee_for(params, other_inputs + k, other_outputs + 1);
    let shortfall = |have_sum: u128, k: usize| Shortfall {
        asset: native,
        have: u64::try_from(have_sum).unwrap_or(u64::MAX),
        need: pay_total + u128::from(no_change(k.max(1))),
        fee: no_change(k.max(1)),
    };
    // More than one u64 to pay in the native asset: no selection below can
    // express it; say how much is needed.
    let Ok(pay_native) = u64::try_from(pay_total) else {
        return Err(shortfall(total(pool), pool.len()));
    };
    let per_input = no_change(1).saturating_sub(no_change(0));
    let change_cost = with_change(0).saturating_sub(no_change(0));
    // Exact match: no change output, any excess (at most the cost of a
    // change output) goes to the fee.
    if let Some(target) = pay_native.checked_add(no_change(0))
        && let Some(picked) = branch_and_bound(pool, target, per_input, change_cost)
    {
        let sum = total(&picked);
        let fee = to_u64(sum - pay_total, &native)?;
        inputs.push((native, picked));
        return Ok(Selection {
            inputs,
            change,
            fee,
        });
    }
    let need = |k: usize| pay_native.saturating_add(with_change(k));
    match largest_first(pool, need) {
        Some(picked) if total(&picked) >= pay_total + u128::from(with_change(picked.len())) => {
            let sum = total(&picked);
            let fee = with_change(picked.len());
            let rest = sum - pay_total - u128::from(fee);
            let fee = if rest == 0 {
                to_u64(sum - pay_total, &native)?
            } else {
                fee
            };
            if rest > 0 {
                change.push((native, to_u64(rest, &native)?));
            }
            inputs.push((native, picked));
            Ok(Selection {
                inputs,
                change,
                fee,
            })
        }
        _ => {
            // Without change, the coins may still just cover it.
            let all = pool.to_vec();
            let sum = total(&all);
            let fee = no_change(all.len());
            if !all.is_empty() && sum >= pay_total + u128::from(fee) {
                let fee = to_u64(sum - pay_total, &native)?;
                inputs.push((native, all));
                return Ok(Selection {
                    inputs,
                    change,
                    fee,
                });
            }
            Err(shortfall(sum, all.len()))
        }
    }
}

pub(crate) fn chain_params(ledger: &Ledger, network: Network) -> ChainParams {
    ChainParams {
        network,
        native_asset: ledger.native,
        min_fee_base: ledger.info.params.min_fee_base,
        min_fee_per_byte: ledger.info.params.min_fee_per_byte,
    }
}

fn random_nonce() -> Result<u64, KeyError> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| KeyError::NoRandomness(e.to_string()))?;
    Ok(u64::from_le_bytes(b))
}

/// Builds a payment to `recipients` (all in one transaction) for review:
/// fee, totals per asset, change. Refuses bad addresses, amounts, assets
/// and insufficient funds here, before anything is signed.
pub(crate) async fn prepare_send(
    inner: &Inner,
    recipients: &[Recipient],
) -> Result<SendProposal, SendError> {
    let ledger = inner.ledger().ok_or(SendError::NotSynced)?;
    let network = inner.network;
    if recipients.is_empty() {
        return Err(SendError::NoRecipients);
    }
    let known = ledger
        .info
        .assets
        .iter()
        .map(|a| a.symbol.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let mut outputs = Vec::new();
    let mut shown = Vec::new();
    let mut payments: Vec<(Hash32, u64)> = Vec::new();
    for r in recipients {
        let address = Address::parse(&r.address, network).map_err(|e| match e {
            notch_protocol::AddressError::WrongNetwork { expected, found } => {
                SendError::WrongNetwork {
                    address: r.address.clone(),
                    found: found.name().into(),
                    expected: expected.name().into(),
                }
            }
            other => SendError::BadAddress {
                address: r.address.clone(),
                reason: other.to_string(),
            },
        })?;
        let asset = match &r.asset {
            Some(name) => ledger
                .find_asset(name)
                .ok_or_else(|| SendError::UnknownAsset(name.clone(), known.clone()))?,
            None => ledger
                .asset(&ledger.native.0)
                .ok_or_else(|| SendError::UnknownAsset("native".into(), known.clone()))?,
        };
        let id = AssetId::from_hex(&asset.id)
            .map_err(|_| SendError::UnknownAsset(asset.id.clone(), known.clone()))?;
        let amount = parse_amount(&r.amount, asset.decimals, &asset.symbol).map_err(|error| {
            SendError::BadAmount {
                address: r.address.clone(),
                error,
            }
        })?;
        match payments.iter_mut().find(|(a, _)| *a == id.0) {
            Some(e) => {
                e.1 =
                    e.1.checked_add(amount)
                        .ok_or_else(|| SendError::BadAmount {
                            address: r.address.clone(),
                            error: AmountError::TooLarge {
                                input: r.amount.clone(),
                            },
                        })?
            }
            None => payments.push((id.0, amount)),
        }
        outputs.push(Output {
            asset: id,
            amount,
            owner: address.key,
        });
        shown.push(ProposalOutput {
            address: address.encode(),
            asset: asset.id.clone(),
            symbol: asset.symbol.clone(),
            decimals: asset.decimals,
            amount,
        });
    }
    // At most one change output per asset (payments' assets + native).
    let max_change = payments.len() + 1;
    if outputs.len() + max_change > MAX_TX_OUTPUTS {
        return Err(SendError::TooManyOutputs {
            found: outputs.len(),
            max: MAX_TX_OUTPUTS - max_change,
        });
    }
    let keys = inner.keys.clone();
    let (coins, change_address) = inner
        .db(move |store| {
            let mut coins: HashMap<Hash32, Vec<Coin>> = HashMap::new();
            let mut own_cache: HashMap<Hash32, bool> = HashMap::new();
            for o in store.unspent_outputs(None)? {
                if !o.spendable() {
                    continue;
                }
                let creator_ok = match own_cache.get(&o.outpoint.txid) {
                    Some(v) => *v,
                    None => {
                        let v = store.transaction(&o.outpoint.txid)?.is_some_and(|t| {
                            t.state.is_in_block() || (t.own && !t.state.is_failed())
                        });
                        own_cache.insert(o.outpoint.txid, v);
                        v
                    }
                };
                if !creator_ok {
                    continue;
                }
                coins.entry(o.asset).or_default().push(Coin {
                    outpoint: o.outpoint,
                    amount: o.amount,
                });
            }
            let meta = store.wallet()?.ok_or(StoreError::NoWallet)?;
            let index = meta.next_change_index;
            let change = derive_address(&keys, network, AddressChain::Change, index)?;
            Ok::<_, SendError>((coins, (index, change)))
        })
        .await?;
    let params = chain_params(&ledger, network);
    let selection = select_coins(&params, ledger.native.0, &payments, outputs.len(), &coins)
        .map_err(|s| {
            let (symbol, decimals) = ledger.symbol(&s.asset);
            let need = u64::try_from(s.need).unwrap_or(u64::MAX);
            let need_text = if s.fee > 0 {
                format!(
                    "{} ({} plus a fee of {})",
                    format_amount(need, decimals),
                    format_amount(need.saturating_sub(s.fee), decimals),
                    format_amount(s.fee, decimals)
                )
            } else {
                format_amount(need, decimals)
            };
            SendError::InsufficientFunds {
                symbol,
                have: format_amount(s.have, decimals),
                need: need_text,
            }
        })?;
    let (change_index, change_address) = change_address;
    let mut tx = Transaction::new(network);
    for (_, coins) in &selection.inputs {
        for c in coins {
            tx.inputs.push(ProtoOutPoint {
                txid: TxId(c.outpoint.txid),
                index: c.outpoint.vout,
            });
        }
    }
    if tx.inputs.len() > notch_protocol::tx::MAX_TX_INPUTS {
        return Err(SendError::TooLarge {
            inputs: tx.inputs.len(),
        });
    }
    tx.outputs = outputs;
    let mut change_shown = Vec::new();
    for (asset, amount) in &selection.change {
        tx.outputs.push(Output {
            asset: AssetId(*asset),
            amount: *amount,
            owner: PublicKey(change_address.public_key),
        });
        let (symbol, decimals) = ledger.symbol(asset);
        change_shown.push(ProposalOutput {
            address: change_address.address.clone(),
            asset: hex::encode(asset),
            symbol,
            decimals,
            amount: *amount,
        });
    }
    tx.fee = selection.fee;
    tx.nonce = random_nonce()?;
    let size = tx.encoded_len();
    if size > MAX_TX_BYTES {
        return Err(SendError::TooLarge {
            inputs: tx.inputs.len(),
        });
    }
    let mut totals: Vec<AssetTotal> = Vec::new();
    let mut assets: Vec<Hash32> = payments.iter().map(|p| p.0).collect();
    if !assets.contains(&ledger.native.0) {
        assets.push(ledger.native.0);
    }
    for asset in assets {
        let (symbol, decimals) = ledger.symbol(&asset);
        let amount = payments.iter().filter(|p| p.0 == asset).map(|p| p.1).sum();
        let inputs = selection
            .inputs
            .iter()
            .filter(|(a, _)| *a == asset)
            .flat_map(|(_, c)| c.iter().map(|c| c.amount))
            .sum();
        let change = selection
            .change
            .iter()
            .filter(|(a, _)| *a == asset)
            .map(|(_, v)| *v)
            .sum();
        totals.push(AssetTotal {
            asset: hex::encode(asset),
            symbol,
            decimals,
            amount,
            fee: if asset == ledger.native.0 {
                selection.fee
            } else {
                0
            },
            inputs,
            change,
        });
    }
    let (fee_symbol, fee_decimals) = ledger.symbol(&ledger.native.0);
    Ok(SendProposal {
        txid: tx.txid().to_hex(),
        recipients: shown,
        change_index: (!selection.change.is_empty()).then_some(change_index),
        change: change_shown,
        fee: selection.fee,
        fee_symbol,
        fee_decimals,
        totals,
        size,
        tx,
    })
}

/// Signs and submits a reviewed payment; returns its txid. The coins it
/// spends are locked until it resolves. If the gateway cannot be
/// reached, the payment stays queued and the next sync submits it
/// (submission is idempotent). Confirming the same proposal twice
/// submits one transaction.
pub(crate) async fn confirm_send(
    inner: &Inner,
    proposal: &SendProposal,
) -> Result<String, SendError> {
    let _one = inner.send_lock.lock().await;
    let ledger = inner.ledger().ok_or(SendError::NotSynced)?;
    let params = chain_params(&ledger, inner.network);
    let keys = inner.keys.clone();
    let network = inner.network;
    let gap = inner.config.gap_limit;
    let mut tx = proposal.tx.clone();
    let change_index = proposal.change_index;
    let (raw, txid, fresh) = inner
        .db(move |store| {
            let txid = tx.txid().0;
            if let Some(existing) = store.transaction(&txid)? {
                return Ok::<_, SendError>((existing.raw, txid, false));
            }
            // Sign with the key of each coin's address.
            let mut signers = Vec::with_capacity(tx.inputs.len());
            let mut spent = Vec::new();
            let mut resolved = HashMap::new();
            for input in &tx.inputs {
                let op = OutPoint {
                    txid: input.txid.0,
                    vout: input.index,
                };
                let coin = store
                    .output(&op)?
                    .ok_or_else(|| SendError::StaleProposal("a coin it spends is gone".into()))?;
                if !coin.spendable() {
                    return Err(SendError::StaleProposal(
                        "a coin it spends was spent meanwhile".into(),
                    ));
                }
                let address = store.find_address(&coin.address)?.ok_or_else(|| {
                    SendError::StaleProposal("a coin's address is unknown".into())
                })?;
                signers.push(keys.token_key(address.chain, address.index)?);
                resolved.insert(
                    *input,
                    Output {
                        asset: AssetId(coin.asset),
                        amount: coin.amount,
                        owner: PublicKey(address.public_key),
                    },
                );
                spent.push(op);
            }
            let refs: Vec<&ed25519_dalek::SigningKey> =
                signers.iter().map(|k| k.signing_key()).collect();
            tx.sign(&refs)
                .map_err(|e| SendError::Invalid(e.to_string()))?;
            tx.validate(&params, |op| resolved.get(op).copied())
                .map_err(|e| SendError::Invalid(e.to_string()))?;
            let raw = tx.encode();
            let change_outputs: Vec<(u32, &Output)> = tx
                .outputs
                .iter()
                .enumerate()
                .filter(|(_, o)| {
                    change_index.is_some_and(|i| {
                        derive_address(&keys, network, AddressChain::Change, i)
                            .is_ok_and(|a| a.public_key == o.owner.0)
                    })
                })
                .map(|(i, o)| (i as u32, o))
                .collect();
            store
                .write(|w| {
                    if let Some(index) = change_index {
                        let record = w.hand_out_address(AddressChain::Change, |i| {
                            derive_address(&keys, network, AddressChain::Change, i)
                        })?;
                        if record.index != index {
                            return Err(StoreError::Conflict(
                                "its change address was given to another payment".into(),
                            ));
                        }
                    }
                    w.insert_transaction(&NewTransaction {
                        txid,
                        state: TxState::Queued,
                        own: true,
                        raw: Some(raw.clone()),
                        block: None,
                    })?;
                    w.lock_outputs(&txid, &spent)?;
                    for (vout, o) in &change_outputs {
                        let address = Address::new(network, o.owner).encode();
                        w.insert_output(&NewOutput {
                            outpoint: OutPoint { txid, vout: *vout },
                            asset: o.asset.0,
                            amount: o.amount,
                            address: address.clone(),
                            height: None,
                        })?;
                        w.mark_address_used(&address)?;
                    }
                    ensure_lookahead(w, &keys, network, gap)?;
                    Ok(())
                })
                .map_err(|e| match e {
                    StoreError::Conflict(what) => SendError::StaleProposal(what),
                    other => SendError::Store(other),
                })?;
            Ok((Some(raw), txid, true))
        })
        .await?;
    let txid_hex = hex::encode(txid);
    // Confirmed before and no longer kept: the send is final, or failed
    // with its coins released, and there is nothing to hand over again.
    let Some(raw) = raw else {
        return Ok(txid_hex);
    };
    if fresh {
        inner.events.emit(WalletEvent::state_changed(
            &txid,
            None,
            TxState::Queued,
            None,
        ));
    }
    // Earlier sends still queued (e.g. an interrupted run) go first: this
    // one may spend their change.
    let earlier = inner
        .db(move |store| {
            Ok::<_, SendError>(
                store
                    .transactions_in(&[TxState::Queued])?
                    .into_iter()
                    .filter(|t| t.own && t.txid != txid)
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    for queued in earlier {
        let Some(raw) = queued.raw else { continue };
        match inner.gateway.submit(&raw).await {
            Ok(response) => {
                crate::sync::apply_status(inner, &ledger, queued.txid, response.status)
                    .await
                    .map_err(|e| SendError::Invalid(e.to_string()))?;
            }
            Err(GatewayError::Refused(e)) => {
                let status = TxStatus::Rejected {
                    code: e.code,
                    message: e.message,
                };
                crate::sync::apply_status(inner, &ledger, queued.txid, status)
                    .await
                    .map_err(|e| SendError::Invalid(e.to_string()))?;
            }
            Err(e) if e.is_transient() => {
                tracing::info!("the payment stays queued behind an earlier one: {e}");
                return Ok(txid_hex);
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Submit (again, if it was confirmed before: idempotent by txid).
    match inner.gateway.submit(&raw).await {
        Ok(response) => {
            crate::sync::apply_status(inner, &ledger, txid, response.status.clone())
                .await
                .map_err(|e| match e {
                    crate::sync::SyncError::Store(s) => SendError::Store(s),
                    other => SendError::Invalid(other.to_string()),
                })?;
            if let TxStatus::Rejected { code, message } = response.status {
                return Err(SendError::Rejected { code, message });
            }
            Ok(txid_hex)
        }
        Err(GatewayError::Refused(e)) => {
            let status = TxStatus::Rejected {
                code: e.code.clone(),
                message: e.message.clone(),
            };
            crate::sync::apply_status(inner, &ledger, txid, status)
                .await
                .map_err(|e| SendError::Invalid(e.to_string()))?;
            Err(SendError::Rejected {
                code: e.code,
                message: e.message,
            })
        }
        Err(e) if e.is_transient() => {
            tracing::info!("the payment stays queued: {e}");
            Ok(txid_hex)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coin(n: u8, amount: u64) -> Coin {
        Coin {
            outpoint: OutPoint {
                txid: [n; 32],
                vout: 0,
            },
            amount,
        }
    }

    fn params() -> ChainParams {
        ChainParams {
            network: Network::Sandbox,
            native_asset: AssetId([1; 32]),
            min_fee_base: 1000,
            min_fee_per_byte: 10,
        }
    }

    const NATIVE: Hash32 = [1; 32];
    const EURT: Hash32 = [2; 32];

    #[test]
    fn bnb_finds_an_exact_match() {
        let coins = [coin(1, 50), coin(2, 30), coin(3, 20), coin(4, 7)];
        let picked = branch_and_bound(&coins, 57, 0, 0).expect("50 + 7");
        let mut amounts: Vec<u64> = picked.iter().map(|c| c.amount).collect();
        amounts.sort();
        assert_eq!(amounts, vec![7, 50]);
        assert!(branch_and_bound(&coins, 58, 0, 0).is_none());
        // With a window: 58..=60 -> 30 + 20 + 7 = 57 misses, 50 + 7 + ... ; 30+20+7=57 no, 50+7=57 no; 60? 30+20+... no -> 50+... none within 58..60 except none
        assert!(branch_and_bound(&coins, 58, 0, 2).is_none_or(|p| {
            let s: u64 = p.iter().map(|c| c.amount).sum();
            (58..=60).contains(&s)
        }));
        // Costs per input shrink what each coin is worth.
        let picked = branch_and_bound(&coins, 45, 5, 0).expect("50-5");
        assert_eq!(picked.len(), 1);
        assert!(branch_and_bound(&coins, 200, 0, 0).is_none());
    }

    #[test]
    fn largest_first_covers_or_says_no() {
        let coins = [coin(1, 5), coin(2, 30), coin(3, 20)];
        let picked = largest_first(&coins, |_| 40).expect("30 + 20");
        assert_eq!(
            picked.iter().map(|c| c.amount).collect::<Vec<_>>(),
            vec![30, 20]
        );
        assert!(largest_first(&coins, |_| 56).is_none());
        // The need may grow with each input (fees).
        let picked = largest_first(&coins, |k| 49 + k as u64).expect("all three");
        assert_eq!(picked.len(), 3);
    }

    #[test]
    fn fee_follows_the_size_rule() {
        let p = params();
        // One input, two outputs: 269 bytes -> 3,690 (docs/PROTOCOL.md).
        assert_eq!(Transaction::estimate_len(1, 2), 269);
        assert_eq!(fee_for(&p, 1, 2), 3_690);
        assert_eq!(fee_for(&p, 2, 2) - fee_for(&p, 1, 2), 1_000);
    }

    #[test]
    fn selection_pays_exactly_or_returns_change() {
        let p = params();
        let fee = fee_for(&p, 1, 1);
        // Exact: one coin worth payment + fee, no change.
        let mut coins = HashMap::new();
        coins.insert(NATIVE, vec![coin(1, 10_000 + fee), coin(2, 1_000_000)]);
        let s = select_coins(&p, NATIVE, &[(NATIVE, 10_000)], 1, &coins).expect("selects");
        assert!(s.change.is_empty(), "{s:?}");
        assert_eq!(s.fee, fee);
        assert_eq!(s.inputs[0].1.len(), 1);
        // Otherwise the fallback with change, fee for 2 outputs.
        let s = select_coins(&p, NATIVE, &[(NATIVE, 500_000)], 1, &coins).expect("selects");
        let used: u64 = s.inputs.iter().flat_map(|(_, c)| c).map(|c| c.amount).sum();
        let change: u64 = s.change.iter().map(|c| c.1).sum();
        assert_eq!(used, 500_000 + s.fee + change);
        assert!(s.fee >= fee_for(&p, s.inputs[0].1.len(), 2));
        // Tokens: their own coins, fee from the native coins.
        coins.insert(EURT, vec![coin(3, 150), coin(4, 100)]);
        let s = select_coins(&p, NATIVE, &[(EURT, 200)], 1, &coins).expect("selects");
        let eurt: u64 = s
            .inputs
            .iter()
            .filter(|(a, _)| *a == EURT)
            .flat_map(|(_, c)| c)
            .map(|c| c.amount)
            .sum();
        assert_eq!(eurt, 250);
        assert!(s.change.contains(&(EURT, 50)));
        assert!(s.fee > 0);
    }

    #[test]
    fn shortfalls_name_the_asset() {
        let p = params();
        let mut coins = HashMap::new();
        coins.insert(NATIVE, vec![coin(1, 1_000_000)]);
        coins.insert(EURT, vec![coin(3, 150)]);
        let s = select_coins(&p, NATIVE, &[(EURT, 200)], 1, &coins).expect_err("short");
        assert_eq!((s.asset, s.have, s.need), (EURT, 150, 200));
        let s = select_coins(&p, NATIVE, &[(NATIVE, 999_000)], 1, &coins).expect_err("fee");
        assert_eq!(s.asset, NATIVE);
        assert!(s.fee > 0);
        // No native coins at all: the fee cannot be paid.
        let mut only_tokens = HashMap::new();
        only_tokens.insert(EURT, vec![coin(3, 500)]);
        let s = select_coins(&p, NATIVE, &[(EURT, 200)], 1, &only_tokens).expect_err("no fee");
        assert_eq!((s.asset, s.have), (NATIVE, 0));
    }
}
