//! Transactions: encoding, ids, signatures and validation rules.

use std::collections::{BTreeMap, HashSet};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::address::Network;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::hash::{AssetId, PublicKey, Signature, TxId, tagged_hash, tags};
use crate::key_cache::KeyCache;

pub const TX_VERSION: u16 = 1;
pub const MAX_TX_INPUTS: usize = 256;
/// Room for a 500-recipient payroll batch; the byte limit bounds it further
/// (about 880 outputs with one input).
pub const MAX_TX_OUTPUTS: usize = 1024;
pub const MAX_TX_ISSUANCES: usize = 8;
pub const MAX_LABEL_LEN: usize = 16;
/// Upper bound of a transaction's full encoding (with signatures).
pub const MAX_TX_BYTES: usize = 64 * 1024;

const OUTPOINT_LEN: usize = 36;
const OUTPUT_LEN: usize = 72;
const ISSUANCE_MIN_LEN: usize = 32 + 1 + 1 + 16;
const SIGNATURE_LEN: usize = 64;

/// A reference to an output: the transaction that created it and its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutPoint {
    pub txid: TxId,
    pub index: u32,
}

/// An amount of one asset owned by one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Output {
    pub asset: AssetId,
    /// Base units; decimals are metadata (`AssetInfo.decimals`).
    pub amount: u64,
    pub owner: PublicKey,
}

/// A mint and/or burn of one asset, authorised by a signature of the asset's issuer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Issuance {
    pub issuer: PublicKey,
    /// 1 to 16 characters of `A-Z0-9`; with `issuer` it determines the asset id.
    pub label: String,
    pub mint: u64,
    pub burn: u64,
}

impl Issuance {
    pub fn asset(&self) -> AssetId {
        AssetId::derive(&self.issuer, &self.label)
    }
}

/// Whether `label` is a valid asset label (1..=16 of `A-Z0-9`).
pub fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A transaction. `signatures` holds one signature per input, then one per issuance, in
/// order; each signs the 32 bytes of the txid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub version: u16,
    pub network: Network,
    pub inputs: Vec<OutPoint>,
    pub outputs: Vec<Output>,
    pub issuances: Vec<Issuance>,
    /// Declared fee in base units of the native asset.
    pub fee: u64,
    /// Free value; lets the same payment be made twice with distinct txids.
    pub nonce: u64,
    pub signatures: Vec<Signature>,
}

/// Fee and limit rules of one ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainParams {
    pub network: Network,
    /// The asset in which fees are paid.
    pub native_asset: AssetId,
    pub min_fee_base: u64,
    pub min_fee_per_byte: u64,
}

impl ChainParams {
    /// The minimum fee of a transaction with inputs whose full encoding is `size` bytes:
    /// `min_fee_base + min_fee_per_byte * size`. Transactions without inputs (pure issuance,
    /// signed by issuers) pay no minimum fee.
    pub fn min_fee(&self, size: usize) -> u64 {
        self.min_fee_base
            .saturating_add(self.min_fee_per_byte.saturating_mul(size as u64))
    }
}

/// Why a transaction is not valid. [`TxError::code`] gives the API error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("the transaction cannot be decoded: {0}")]
    Malformed(#[from] DecodeError),
    #[error("the transaction is {size} bytes, at most {max} are allowed")]
    TooLarge { size: usize, max: usize },
    #[error("the transaction is for network {found}, this ledger is {expected}")]
    WrongNetwork { expected: Network, found: Network },
    #[error("the transaction has neither inputs nor issuances")]
    Empty,
    #[error("input {index} spends the same output as an earlier input")]
    DuplicateInput { index: usize },
    #[error("issuance {index} repeats an asset of an earlier issuance")]
    DuplicateIssuance { index: usize },
    #[error("{what} {index} has a zero amount")]
    ZeroAmount { what: &'static str, index: usize },
    #[error("output {index} is owned by bytes that are not a public key")]
    BadOwner { index: usize },
    #[error("expected {expected} signatures, found {found}")]
    SignatureCount { expected: usize, found: usize },
    #[error("input {index} spends {txid}:{vout}, which is not a known unspent output")]
    UnknownInput { index: usize, txid: TxId, vout: u32 },
    #[error("the signature of {what} {index} is not valid")]
    BadSignature { what: &'static str, index: usize },
    #[error(
        "asset {asset} does not balance: {sources} in (inputs + mint), {uses} out (outputs + burn + fee)"
    )]
    Unbalanced {
        asset: AssetId,
        sources: u128,
        uses: u128,
    },
    #[error("the fee {fee} is below the minimum {min}")]
    FeeTooLow { fee: u64, min: u64 },
}

impl TxError {
    /// The stable machine-readable code used in `ApiError.code`.
    pub fn code(&self) -> &'static str {
        use crate::api::codes;
        match self {
            TxError::Malformed(_)
            | TxError::Empty
            | TxError::DuplicateIssuance { .. }
            | TxError::SignatureCount { .. } => codes::MALFORMED,
            TxError::TooLarge { .. } => codes::TOO_LARGE,
            TxError::WrongNetwork { .. } => codes::WRONG_NETWORK,
            TxError::DuplicateInput { .. } => codes::DUPLICATE_INPUT,
            TxError::ZeroAmount { .. } => codes::ZERO_AMOUNT,
            TxError::BadOwner { .. } => codes::BAD_ADDRESS,
            TxError::UnknownInput { .. } => codes::UNKNOWN_INPUT,
            TxError::BadSignature { .. } => codes::BAD_SIGNATURE,
            TxError::Unbalanced { .. } => codes::UNBALANCED,
            TxError::FeeTooLow { .. } => codes::FEE_TOO_LOW,
        }
    }
}

/// Signs a txid (or any 32-byte id) with `key`.
pub fn sign_id(key: &SigningKey, id: &[u8; 32]) -> Signature {
    Signature(key.sign(id).to_bytes())
}

/// Verifies a signature over a 32-byte id by the ZIP 215 rules (cofactored equation,
/// canonical `s`; see PROTOCOL.md). Those rules are the only ones under which verifying
/// signatures one by one and in a batch ([`verify_id_signatures`]) always agree, so a gateway
/// that batches and a wallet that checks one signature can never disagree on a spend.
pub fn verify_id_signature(key: &PublicKey, id: &[u8; 32], sig: &Signature) -> bool {
    crate::zip215::verify(&key.0, id, &sig.0)
}

/// Verifies many `(key, id, signature)` triples at once (about 2x faster per signature than
/// one by one for large batches): `true` only if every one is valid by the rules of
/// [`verify_id_signature`]. A `false` says nothing about which one failed.
pub fn verify_id_signatures<'a>(
    items: impl IntoIterator<Item = (&'a PublicKey, &'a [u8; 32], &'a Signature)>,
) -> bool {
    crate::zip215::verify_batch(
        items
            .into_iter()
            .map(|(key, id, sig)| (&key.0, &id[..], &sig.0)),
    )
}

/// [`verify_id_signature`] with the key's point from `keys` (decompressed and kept there if
/// it is not yet): the same verdict.
pub fn verify_id_signature_cached(
    key: &PublicKey,
    id: &[u8; 32],
    sig: &Signature,
    keys: &KeyCache,
) -> bool {
    crate::zip215::verify_with(&key.0, id, &sig.0, |k| keys.point(k))
}

/// [`verify_id_signatures`] with the keys' points from `keys` (decompressed and kept there
/// if they are not yet): the same verdict.
pub fn verify_id_signatures_cached<'a>(
    items: impl IntoIterator<Item = (&'a PublicKey, &'a [u8; 32], &'a Signature)>,
    keys: &KeyCache,
) -> bool {
    crate::zip215::verify_batch_with(
        items
            .into_iter()
            .map(|(key, id, sig)| (&key.0, &id[..], &sig.0)),
        |k| keys.point(k),
    )
}

/// Whether `key` is a curve point's encoding (`VerifyingKey::from_bytes` accepts it), through
/// `keys` if given.
fn valid_key(key: &PublicKey, keys: Option<&KeyCache>) -> bool {
    match keys {
        Some(keys) => keys.is_valid(&key.0),
        None => VerifyingKey::from_bytes(&key.0).is_ok(),
    }
}

fn verify_id_signature_with(
    key: &PublicKey,
    id: &[u8; 32],
    sig: &Signature,
    keys: Option<&KeyCache>,
) -> bool {
    match keys {
        Some(keys) => verify_id_signature_cached(key, id, sig, keys),
        None => verify_id_signature(key, id, sig),
    }
}

/// The public key of a signing key, in protocol form.
pub fn public_key(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}

/// What validation learned about a valid transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxCheck {
    pub txid: TxId,
    pub size: usize,
    pub fee: u64,
    /// The outputs spent by the inputs, in input order.
    pub spent: Vec<Output>,
}

impl Transaction {
    /// A new unsigned version-1 transaction.
    pub fn new(network: Network) -> Self {
        Transaction {
            version: TX_VERSION,
            network,
            inputs: Vec::new(),
            outputs: Vec::new(),
            issuances: Vec::new(),
            fee: 0,
            nonce: 0,
            signatures: Vec::new(),
        }
    }

    fn write_unsigned(&self, w: &mut Writer) {
        w.u16(self.version);
        w.u8(self.network.id());
        w.u16(self.inputs.len() as u16);
        for i in &self.inputs {
            w.bytes(&i.txid.0);
            w.u32(i.index);
        }
        w.u16(self.outputs.len() as u16);
        for o in &self.outputs {
            w.bytes(&o.asset.0);
            w.u64(o.amount);
            w.bytes(&o.owner.0);
        }
        w.u16(self.issuances.len() as u16);
        for s in &self.issuances {
            w.bytes(&s.issuer.0);
            w.u8(s.label.len() as u8);
            w.bytes(s.label.as_bytes());
            w.u64(s.mint);
            w.u64(s.burn);
        }
        w.u64(self.fee);
        w.u64(self.nonce);
    }

    /// The encoding without signatures (what the txid commits to).
    pub fn encode_unsigned(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len());
        self.write_unsigned(&mut w);
        w.into_bytes()
    }

    /// The full encoding: the unsigned encoding followed by the signatures (64 bytes each, no
    /// count: there is exactly one per input and per issuance).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len());
        self.write_unsigned(&mut w);
        for s in &self.signatures {
            w.bytes(&s.0);
        }
        w.into_bytes()
    }

    /// Length of the full encoding once signed (signatures counted whether present or not).
    pub fn encoded_len(&self) -> usize {
        2 + 1
            + 2
            + OUTPOINT_LEN * self.inputs.len()
            + 2
            + OUTPUT_LEN * self.outputs.len()
            + 2
            + self
                .issuances
                .iter()
                .map(|s| 32 + 1 + s.label.len() + 16)
                .sum::<usize>()
            + 16
            + SIGNATURE_LEN * (self.inputs.len() + self.issuances.len())
    }

    /// Size of a signed transaction with these counts and no issuances (fee estimation).
    pub fn estimate_len(inputs: usize, outputs: usize) -> usize {
        2 + 1 + 2 + (OUTPOINT_LEN + SIGNATURE_LEN) * inputs + 2 + OUTPUT_LEN * outputs + 2 + 16
    }

    /// `H("notch/v1/txid", unsigned encoding)`.
    pub fn txid(&self) -> TxId {
        TxId(tagged_hash(tags::TXID, &[&self.encode_unsigned()]))
    }

    /// `H("notch/v1/witness", signatures)`: commits a block to the signatures too.
    pub fn witness_hash(&self) -> [u8; 32] {
        let mut bytes = Vec::with_capacity(SIGNATURE_LEN * self.signatures.len());
        for s in &self.signatures {
            bytes.extend_from_slice(&s.0);
        }
        tagged_hash(tags::WITNESS, &[&bytes])
    }

    /// Signs: `signers` are the owners of the inputs in order, then the issuers of the
    /// issuances in order. Replaces any previous signatures.
    pub fn sign(&mut self, signers: &[&SigningKey]) -> Result<TxId, TxError> {
        let expected = self.inputs.len() + self.issuances.len();
        if signers.len() != expected {
            return Err(TxError::SignatureCount {
                expected,
                found: signers.len(),
            });
        }
        let txid = self.txid();
        self.signatures = signers.iter().map(|k| sign_id(k, &txid.0)).collect();
        Ok(txid)
    }

    /// Decodes a full (signed) encoding. Strict: limits are checked before allocating,
    /// labels must be canonical, and trailing bytes are refused.
    pub fn decode(bytes: &[u8]) -> Result<Transaction, TxError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(TxError::TooLarge {
                size: bytes.len(),
                max: MAX_TX_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let tx = Self::read(&mut r)?;
        r.finish()?;
        Ok(tx)
    }

    /// [`Transaction::decode`], and the txid hashed from the bytes as they came (the decoding
    /// is strict, so the bytes before the signatures are the unsigned encoding): no
    /// re-encoding, and the id to pass to [`Transaction::check_stateless_with`].
    pub fn decode_with_txid(bytes: &[u8]) -> Result<(Transaction, TxId), TxError> {
        let tx = Self::decode(bytes)?;
        let unsigned = bytes.len() - SIGNATURE_LEN * tx.signatures.len();
        let txid = TxId(tagged_hash(tags::TXID, &[&bytes[..unsigned]]));
        debug_assert_eq!(txid, tx.txid());
        Ok((tx, txid))
    }

    /// Reads one full transaction from a reader (used inside block decoding).
    pub fn read(r: &mut Reader<'_>) -> Result<Transaction, DecodeError> {
        let version = r.u16()?;
        if version != TX_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "transaction",
                version,
            });
        }
        let net = r.u8()?;
        let network = Network::from_id(net).ok_or(DecodeError::UnknownNetwork(net))?;
        let n = r.count_u16("inputs", MAX_TX_INPUTS, OUTPOINT_LEN)?;
        let mut inputs = Vec::with_capacity(n);
        for _ in 0..n {
            inputs.push(OutPoint {
                txid: TxId(r.array()?),
                index: r.u32()?,
            });
        }
        let n = r.count_u16("outputs", MAX_TX_OUTPUTS, OUTPUT_LEN)?;
        let mut outputs = Vec::with_capacity(n);
        for _ in 0..n {
            outputs.push(Output {
                asset: AssetId(r.array()?),
                amount: r.u64()?,
                owner: PublicKey(r.array()?),
            });
        }
        let n = r.count_u16("issuances", MAX_TX_ISSUANCES, ISSUANCE_MIN_LEN)?;
        let mut issuances = Vec::with_capacity(n);
        for _ in 0..n {
            let issuer = PublicKey(r.array()?);
            let len = r.u8()? as usize;
            if len > MAX_LABEL_LEN {
                return Err(DecodeError::TooMany {
                    what: "label bytes",
                    count: len as u64,
                    max: MAX_LABEL_LEN as u64,
                });
            }
            let raw = r.take(len)?;
            let label = std::str::from_utf8(raw)
                .map_err(|_| DecodeError::NonCanonical("label is not A-Z0-9"))?;
            if !valid_label(label) {
                return Err(DecodeError::NonCanonical(
                    "label is not 1-16 characters of A-Z0-9",
                ));
            }
            issuances.push(Issuance {
                issuer,
                label: label.to_owned(),
                mint: r.u64()?,
                burn: r.u64()?,
            });
        }
        let fee = r.u64()?;
        let nonce = r.u64()?;
        let n = inputs.len() + issuances.len();
        if r.remaining() < n * SIGNATURE_LEN {
            return Err(DecodeError::UnexpectedEnd {
                offset: r.position(),
                needed: n * SIGNATURE_LEN - r.remaining(),
            });
        }
        let mut signatures = Vec::with_capacity(n);
        for _ in 0..n {
            signatures.push(Signature(r.array()?));
        }
        Ok(Transaction {
            version,
            network,
            inputs,
            outputs,
            issuances,
            fee,
            nonce,
            signatures,
        })
    }

    /// Checks that need nothing but the transaction: network, size, shape, amounts, owner
    /// keys, signature count, and the issuers' signatures.
    pub fn check_stateless(&self, network: Network) -> Result<TxId, TxError> {
        self.check_stateless_with(network, None, None)
    }

    /// [`Transaction::check_stateless`], reusing what the caller has, with the same verdicts:
    /// `txid`, which must be `self.txid()` (as [`Transaction::decode_with_txid`] gives it), is
    /// not hashed again, and the owner and issuer keys are decompressed through `keys`.
    pub fn check_stateless_with(
        &self,
        network: Network,
        txid: Option<TxId>,
        keys: Option<&KeyCache>,
    ) -> Result<TxId, TxError> {
        if self.network != network {
            return Err(TxError::WrongNetwork {
                expected: network,
                found: self.network,
            });
        }
        if self.version != TX_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "transaction",
                version: self.version,
            }
            .into());
        }
        let size = self.encoded_len();
        if size > MAX_TX_BYTES {
            return Err(TxError::TooLarge {
                size,
                max: MAX_TX_BYTES,
            });
        }
        if self.inputs.len() > MAX_TX_INPUTS {
            return Err(DecodeError::TooMany {
                what: "inputs",
                count: self.inputs.len() as u64,
                max: MAX_TX_INPUTS as u64,
            }
            .into());
        }
        if self.outputs.len() > MAX_TX_OUTPUTS {
            return Err(DecodeError::TooMany {
                what: "outputs",
                count: self.outputs.len() as u64,
                max: MAX_TX_OUTPUTS as u64,
            }
            .into());
        }
        if self.issuances.len() > MAX_TX_ISSUANCES {
            return Err(DecodeError::TooMany {
                what: "issuances",
                count: self.issuances.len() as u64,
                max: MAX_TX_ISSUANCES as u64,
            }
            .into());
        }
        if self.inputs.is_empty() && self.issuances.is_empty() {
            return Err(TxError::Empty);
        }
        let mut seen = HashSet::with_capacity(self.inputs.len());
        for (index, i) in self.inputs.iter().enumerate() {
            if !seen.insert(*i) {
                return Err(TxError::DuplicateInput { index });
            }
        }
        for (index, o) in self.outputs.iter().enumerate() {
            if o.amount == 0 {
                return Err(TxError::ZeroAmount {
                    what: "output",
                    index,
                });
            }
            if !valid_key(&o.owner, keys) {
                return Err(TxError::BadOwner { index });
            }
        }
        let mut assets = HashSet::new();
        for (index, s) in self.issuances.iter().enumerate() {
            if !valid_label(&s.label) {
                return Err(
                    DecodeError::NonCanonical("label is not 1-16 characters of A-Z0-9").into(),
                );
            }
            if s.mint == 0 && s.burn == 0 {
                return Err(TxError::ZeroAmount {
                    what: "issuance",
                    index,
                });
            }
            if !assets.insert(s.asset()) {
                return Err(TxError::DuplicateIssuance { index });
            }
        }
        let expected = self.inputs.len() + self.issuances.len();
        if self.signatures.len() != expected {
            return Err(TxError::SignatureCount {
                expected,
                found: self.signatures.len(),
            });
        }
        let txid = match txid {
            Some(txid) => {
                debug_assert_eq!(txid, self.txid());
                txid
            }
            None => self.txid(),
        };
        for (index, s) in self.issuances.iter().enumerate() {
            if !verify_id_signature_with(
                &s.issuer,
                &txid.0,
                &self.signatures[self.inputs.len() + index],
                keys,
            ) {
                return Err(TxError::BadSignature {
                    what: "issuance",
                    index,
                });
            }
        }
        Ok(txid)
    }

    /// Full validation given a way to find the outputs that the inputs spend (`resolve`
    /// returns `None` for an output that does not exist or is already spent): stateless
    /// checks, input signatures, per-asset balance and the fee rule.
    ///
    /// Balance, per asset `a`: `inputs(a) + mint(a) = outputs(a) + burn(a) + (fee if a is
    /// native)`.
    pub fn validate(
        &self,
        params: &ChainParams,
        resolve: impl FnMut(&OutPoint) -> Option<Output>,
    ) -> Result<TxCheck, TxError> {
        let check = self.validate_deferred(params, resolve)?;
        self.verify_input_signatures(&check)?;
        Ok(check)
    }

    /// The input signatures of a transaction that passed [`Transaction::validate_deferred`],
    /// one by one.
    pub fn verify_input_signatures(&self, check: &TxCheck) -> Result<(), TxError> {
        self.verify_input_signatures_with(check, None)
    }

    /// [`Transaction::verify_input_signatures`] with the owners' points through `keys`: the
    /// same verdicts.
    pub fn verify_input_signatures_with(
        &self,
        check: &TxCheck,
        keys: Option<&KeyCache>,
    ) -> Result<(), TxError> {
        for (index, (key, sig)) in self.input_signatures(check).enumerate() {
            if !verify_id_signature_with(key, &check.txid.0, sig, keys) {
                return Err(TxError::BadSignature {
                    what: "input",
                    index,
                });
            }
        }
        Ok(())
    }

    /// `(owner key, signature)` of each input, in input order, for batch verification
    /// ([`verify_id_signatures`] over `check.txid`).
    pub fn input_signatures<'a>(
        &'a self,
        check: &'a TxCheck,
    ) -> impl Iterator<Item = (&'a PublicKey, &'a Signature)> + 'a {
        check
            .spent
            .iter()
            .map(|o| &o.owner)
            .zip(self.signatures.iter())
    }

    /// Everything [`Transaction::validate`] checks except the input signatures, which the
    /// caller must then verify (one by one with [`Transaction::verify_input_signatures`], or
    /// many transactions' at once with [`verify_id_signatures`]). Cheap checks come first, so
    /// an invalid transaction costs no signature verification when it can be refused without.
    pub fn validate_deferred(
        &self,
        params: &ChainParams,
        resolve: impl FnMut(&OutPoint) -> Option<Output>,
    ) -> Result<TxCheck, TxError> {
        self.validate_deferred_with(params, None, None, resolve)
    }

    /// [`Transaction::validate_deferred`] with what [`Transaction::check_stateless_with`]
    /// may reuse (`txid` must be `self.txid()`): the same verdicts.
    pub fn validate_deferred_with(
        &self,
        params: &ChainParams,
        txid: Option<TxId>,
        keys: Option<&KeyCache>,
        mut resolve: impl FnMut(&OutPoint) -> Option<Output>,
    ) -> Result<TxCheck, TxError> {
        let txid = self.check_stateless_with(params.network, txid, keys)?;
        let mut spent = Vec::with_capacity(self.inputs.len());
        for (index, i) in self.inputs.iter().enumerate() {
            let out = resolve(i).ok_or(TxError::UnknownInput {
                index,
                txid: i.txid,
                vout: i.index,
            })?;
            spent.push(out);
        }
        // (sources, uses) per asset, in u128 so no sum of u64s can overflow.
        let mut sums: BTreeMap<AssetId, (u128, u128)> = BTreeMap::new();
        for o in &spent {
            sums.entry(o.asset).or_default().0 += o.amount as u128;
        }
        for s in &self.issuances {
            let e = sums.entry(s.asset()).or_default();
            e.0 += s.mint as u128;
            e.1 += s.burn as u128;
        }
        for o in &self.outputs {
            sums.entry(o.asset).or_default().1 += o.amount as u128;
        }
        sums.entry(params.native_asset).or_default().1 += self.fee as u128;
        for (asset, (sources, uses)) in sums {
            if sources != uses {
                return Err(TxError::Unbalanced {
                    asset,
                    sources,
                    uses,
                });
            }
        }
        let size = self.encoded_len();
        if !self.inputs.is_empty() {
            let min = params.min_fee(size);
            if self.fee < min {
                return Err(TxError::FeeTooLow { fee: self.fee, min });
            }
        }
        Ok(TxCheck {
            txid,
            size,
            fee: self.fee,
            spent,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn batch_and_single_verification_agree() {
        let keys: Vec<SigningKey> = (1..=20).map(key).collect();
        let ids: Vec<[u8; 32]> = (0..20u8).map(|n| [n; 32]).collect();
        let pubs: Vec<PublicKey> = keys.iter().map(public_key).collect();
        let mut sigs: Vec<Signature> = keys
            .iter()
            .zip(&ids)
            .map(|(k, id)| sign_id(k, id))
            .collect();
        let all = |sigs: &[Signature]| {
            verify_id_signatures(
                pubs.iter()
                    .zip(ids.iter())
                    .zip(sigs.iter())
                    .map(|((k, i), s)| (k, i, s)),
            )
        };
        assert!(all(&sigs));
        assert!(
            pubs.iter()
                .zip(&ids)
                .zip(&sigs)
                .all(|((k, i), s)| verify_id_signature(k, i, s))
        );
        // One wrong bit anywhere fails the batch and that signature alone.
        sigs[13].0[5] ^= 1;
        assert!(!all(&sigs));
        assert!(!verify_id_signature(&pubs[13], &ids[13], &sigs[13]));
        // A signature over another id fails too.
        sigs[13] = sign_id(&keys[13], &[99; 32]);
        assert!(!all(&sigs));
        assert!(verify_id_signatures(std::iter::empty()));
    }

    /// Through a key cache (cold, then warm) the checks give the verdicts they give without
    /// it: valid owners, an owner that is no curve point, non-canonical and small-order
    /// owners (accepted, as `VerifyingKey::from_bytes` accepts them), and input signatures.
    #[test]
    fn key_cache_gives_the_same_verdicts() {
        let f = fixture();
        let keys = KeyCache::new(8);
        let resolve = |op: &OutPoint| f.utxos.get(op).copied();
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        // y = 1 + p (non-canonical encoding of the identity), and -0 (x = 0 with the sign bit).
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        let mut negative_zero = [0u8; 32];
        negative_zero[0] = 1;
        negative_zero[31] = 0x80;
        for owner in [
            f.bob.0,
            not_a_point,
            non_canonical,
            negative_zero,
            public_key(&key(3)).0,
        ] {
            let mut tx = pay(&f, 10_000);
            tx.outputs[0].owner = PublicKey(owner);
            tx.sign(&[&f.alice, &f.alice]).expect("signed");
            let plain = tx.validate(&f.params, resolve);
            for _ in 0..2 {
                let cached = tx
                    .validate_deferred_with(&f.params, Some(tx.txid()), Some(&keys), resolve)
                    .and_then(|c| tx.verify_input_signatures_with(&c, Some(&keys)).map(|_| c));
                assert_eq!(cached, plain, "owner {owner:02x?}");
                assert_eq!(
                    tx.check_stateless_with(f.params.network, None, Some(&keys)),
                    tx.check_stateless(f.params.network)
                );
            }
            if owner == not_a_point {
                assert_eq!(plain, Err(TxError::BadOwner { index: 0 }));
                continue;
            }
            assert!(plain.is_ok(), "owner {owner:02x?}: {plain:?}");
            // A bad input signature is refused through the cache too.
            let mut bad = tx.clone();
            bad.signatures[1].0[3] ^= 1;
            let check = bad
                .validate_deferred_with(&f.params, Some(bad.txid()), Some(&keys), resolve)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                bad.verify_input_signatures_with(&check, Some(&keys)),
                bad.verify_input_signatures(&check)
            );
            assert!(bad.verify_input_signatures(&check).is_err());
            // The txid from the bytes is the txid.
            let (decoded, txid) = Transaction::decode_with_txid(&tx.encode()).expect("decodes");
            assert_eq!((decoded, txid), (tx.clone(), tx.txid()));
        }
        assert!(!keys.is_valid(&PublicKey(not_a_point).0));
    }

    struct Fixture {
        params: ChainParams,
        utxos: HashMap<OutPoint, Output>,
        alice: SigningKey,
        bob: PublicKey,
        issuer: SigningKey,
        native: AssetId,
        eur: AssetId,
    }

    fn fixture() -> Fixture {
        let issuer = key(9);
        let native = AssetId::derive(&public_key(&issuer), "NOTE");
        let eur = AssetId::derive(&public_key(&issuer), "EURT");
        let alice = key(1);
        let mut utxos = HashMap::new();
        let funding = TxId([5u8; 32]);
        utxos.insert(
            OutPoint {
                txid: funding,
                index: 0,
            },
            Output {
                asset: native,
                amount: 1_000_000,
                owner: public_key(&alice),
            },
        );
        utxos.insert(
            OutPoint {
                txid: funding,
                index: 1,
            },
            Output {
                asset: eur,
                amount: 500,
                owner: public_key(&alice),
            },
        );
        Fixture {
            params: ChainParams {
                network: Network::Sandbox,
                native_asset: native,
                min_fee_base: 1000,
                min_fee_per_byte: 10,
            },
            utxos,
            alice,
            bob: public_key(&key(2)),
            issuer,
            native,
            eur,
        }
    }

    fn pay(f: &Fixture, fee: u64) -> Transaction {
        let mut tx = Transaction::new(Network::Sandbox);
        tx.inputs = vec![
            OutPoint {
                txid: TxId([5u8; 32]),
                index: 0,
            },
            OutPoint {
                txid: TxId([5u8; 32]),
                index: 1,
            },
        ];
        tx.outputs = vec![
            Output {
                asset: f.eur,
                amount: 200,
                owner: f.bob,
            },
            Output {
                asset: f.eur,
                amount: 300,
                owner: public_key(&f.alice),
            },
            Output {
                asset: f.native,
                amount: 1_000_000 - fee,
                owner: public_key(&f.alice),
            },
        ];
        tx.fee = fee;
        tx
    }

    #[test]
    fn a_signed_balanced_payment_is_valid_and_round_trips() {
        let f = fixture();
        let mut tx = pay(&f, 10_000);
        tx.sign(&[&f.alice, &f.alice]).ok();
        let bytes = tx.encode();
        assert_eq!(bytes.len(), tx.encoded_len());
        assert_eq!(Transaction::decode(&bytes).as_ref(), Ok(&tx));
        let check = tx.validate(&f.params, |op| f.utxos.get(op).copied());
        assert_eq!(check.map(|c| c.fee), Ok(10_000));
        assert_eq!(Transaction::estimate_len(2, 3), bytes.len());
    }

    #[test]
    fn rule_violations_are_reported() {
        let f = fixture();
        let resolve = |op: &OutPoint| f.utxos.get(op).copied();
        // Fee below base + per-byte.
        let mut tx = pay(&f, 10);
        tx.sign(&[&f.alice, &f.alice]).ok();
        assert!(matches!(
            tx.validate(&f.params, resolve),
            Err(TxError::FeeTooLow { .. })
        ));
        // Outputs exceed inputs.
        let mut tx = pay(&f, 10_000);
        tx.outputs[0].amount += 1;
        tx.sign(&[&f.alice, &f.alice]).ok();
        assert!(matches!(
            tx.validate(&f.params, resolve),
            Err(TxError::Unbalanced { .. })
        ));
        // Wrong key.
        let mut tx = pay(&f, 10_000);
        tx.sign(&[&f.alice, &key(3)]).ok();
        assert_eq!(
            tx.validate(&f.params, resolve).err(),
            Some(TxError::BadSignature {
                what: "input",
                index: 1
            })
        );
        // Unknown input.
        let mut tx = pay(&f, 10_000);
        tx.inputs[1].index = 7;
        tx.sign(&[&f.alice, &f.alice]).ok();
        assert!(matches!(
            tx.validate(&f.params, resolve),
            Err(TxError::UnknownInput { index: 1, .. })
        ));
        // Duplicate input.
        let mut tx = pay(&f, 10_000);
        tx.inputs[1] = tx.inputs[0];
        tx.sign(&[&f.alice, &f.alice]).ok();
        assert_eq!(
            tx.validate(&f.params, resolve).err().map(|e| e.code()),
            Some("duplicate_input")
        );
        // Wrong network.
        let mut tx = pay(&f, 10_000);
        tx.network = Network::Main;
        tx.sign(&[&f.alice, &f.alice]).ok();
        assert_eq!(
            tx.validate(&f.params, resolve).err().map(|e| e.code()),
            Some("wrong_network")
        );
        // Zero output.
        let mut tx = pay(&f, 10_000);
        tx.outputs.push(Output {
            asset: f.eur,
            amount: 0,
            owner: f.bob,
        });
        tx.sign(&[&f.alice, &f.alice]).ok();
        assert_eq!(
            tx.validate(&f.params, resolve).err().map(|e| e.code()),
            Some("zero_amount")
        );
    }

    #[test]
    fn issuers_may_mint_and_burn_only_their_assets() {
        let f = fixture();
        let resolve = |op: &OutPoint| f.utxos.get(op).copied();
        let mut mint = Transaction::new(Network::Sandbox);
        mint.issuances = vec![Issuance {
            issuer: public_key(&f.issuer),
            label: "EURT".into(),
            mint: 1000,
            burn: 0,
        }];
        mint.outputs = vec![Output {
            asset: f.eur,
            amount: 1000,
            owner: f.bob,
        }];
        mint.sign(&[&f.issuer]).ok();
        assert!(
            mint.validate(&f.params, resolve).is_ok(),
            "pure mint pays no fee"
        );
        let mut forged = mint.clone();
        forged.sign(&[&key(4)]).ok();
        assert!(matches!(
            forged.validate(&f.params, resolve),
            Err(TxError::BadSignature {
                what: "issuance",
                ..
            })
        ));
        // Someone else's "EURT" is another asset, so the mint does not balance.
        let mut other = mint.clone();
        other.issuances[0].issuer = public_key(&key(4));
        other.sign(&[&key(4)]).ok();
        assert!(matches!(
            other.validate(&f.params, resolve),
            Err(TxError::Unbalanced { .. })
        ));
        // Burn 100 EURT of Alice's, paying the fee in NOTE.
        let mut burn = Transaction::new(Network::Sandbox);
        burn.inputs = vec![
            OutPoint {
                txid: TxId([5u8; 32]),
                index: 0,
            },
            OutPoint {
                txid: TxId([5u8; 32]),
                index: 1,
            },
        ];
        burn.issuances = vec![Issuance {
            issuer: public_key(&f.issuer),
            label: "EURT".into(),
            mint: 0,
            burn: 100,
        }];
        burn.outputs = vec![
            Output {
                asset: f.eur,
                amount: 400,
                owner: public_key(&f.alice),
            },
            Output {
                asset: f.native,
                amount: 990_000,
                owner: public_key(&f.alice),
            },
        ];
        burn.fee = 10_000;
        burn.sign(&[&f.alice, &f.alice, &f.issuer]).ok();
        assert_eq!(burn.validate(&f.params, resolve).map(|c| c.fee), Ok(10_000));
    }

    #[test]
    fn decoding_is_strict() {
        let f = fixture();
        let mut tx = pay(&f, 10_000);
        tx.sign(&[&f.alice, &f.alice]).ok();
        let bytes = tx.encode();
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            Transaction::decode(&long),
            Err(TxError::Malformed(DecodeError::TrailingBytes { count: 1 }))
        ));
        for cut in [0, 1, 10, bytes.len() - 1] {
            assert!(
                matches!(
                    Transaction::decode(&bytes[..cut]),
                    Err(TxError::Malformed(_))
                ),
                "cut {cut}"
            );
        }
        let mut bad_version = bytes.clone();
        bad_version[0] = 2;
        assert!(matches!(
            Transaction::decode(&bad_version),
            Err(TxError::Malformed(DecodeError::UnsupportedVersion { .. }))
        ));
        let mut bad_net = bytes.clone();
        bad_net[2] = 9;
        assert!(matches!(
            Transaction::decode(&bad_net),
            Err(TxError::Malformed(DecodeError::UnknownNetwork(9)))
        ));
        let mut huge_count = bytes.clone();
        huge_count[3] = 0xff;
        huge_count[4] = 0xff;
        assert!(matches!(
            Transaction::decode(&huge_count),
            Err(TxError::Malformed(DecodeError::TooMany { .. }))
        ));
        assert!(matches!(
            Transaction::decode(&vec![0u8; MAX_TX_BYTES + 1]),
            Err(TxError::TooLarge { .. })
        ));
        // A lower-case label is not canonical.
        let mut mint = Transaction::new(Network::Sandbox);
        mint.issuances = vec![Issuance {
            issuer: public_key(&f.issuer),
            label: "eurt".into(),
            mint: 1,
            burn: 0,
        }];
        mint.sign(&[&f.issuer]).ok();
        assert!(matches!(
            Transaction::decode(&mint.encode()),
            Err(TxError::Malformed(DecodeError::NonCanonical(_)))
        ));
    }
}
