//! Block headers, blocks, the merkle rule and the checks a wallet runs before it believes a
//! gateway.

use std::collections::HashSet;

use ed25519_dalek::SigningKey;

use crate::address::Network;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::hash::{BlockId, Hash32, PublicKey, Signature, TxId, tagged_hash, tags};
use crate::tx::{MAX_TX_BYTES, Transaction, TxError, sign_id, verify_id_signature};

pub const BLOCK_VERSION: u16 = 1;
/// Unsigned header: version u16, network u8, height u64, prev 32, merkle root 32, time u64,
/// tx count u32, nonce u64.
pub const HEADER_UNSIGNED_LEN: usize = 2 + 1 + 8 + 32 + 32 + 8 + 4 + 8;
/// Signed header: the unsigned header followed by the authority's 64-byte signature.
pub const HEADER_LEN: usize = HEADER_UNSIGNED_LEN + 64;
pub const MAX_BLOCK_TXS: usize = 10_000;
pub const MAX_BLOCK_BYTES: usize = 8 * 1024 * 1024;

/// A block header, signed by the gateway authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub version: u16,
    pub network: Network,
    pub height: u64,
    /// Id of the previous block; all zero for the genesis block (height 0).
    pub prev: BlockId,
    pub merkle_root: Hash32,
    /// Unix seconds; never less than the previous block's.
    pub time: u64,
    pub tx_count: u32,
    /// Free value chosen by the authority (the sandbox reorg injector sets it to make a
    /// distinct branch).
    pub nonce: u64,
    /// The authority's signature over the 32 bytes of the block id.
    pub signature: Signature,
}

impl BlockHeader {
    fn write_unsigned(&self, w: &mut Writer) {
        w.u16(self.version);
        w.u8(self.network.id());
        w.u64(self.height);
        w.bytes(&self.prev.0);
        w.bytes(&self.merkle_root.0);
        w.u64(self.time);
        w.u32(self.tx_count);
        w.u64(self.nonce);
    }

    pub fn encode_unsigned(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(HEADER_UNSIGNED_LEN);
        self.write_unsigned(&mut w);
        w.into_bytes()
    }

    /// The signed header (`HEADER_LEN` bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(HEADER_LEN);
        self.write_unsigned(&mut w);
        w.bytes(&self.signature.0);
        w.into_bytes()
    }

    /// `H("notch/v1/block", unsigned header)`.
    pub fn id(&self) -> BlockId {
        BlockId(tagged_hash(tags::BLOCK, &[&self.encode_unsigned()]))
    }

    /// Signs the header with the authority key, replacing any previous signature.
    pub fn sign(&mut self, authority: &SigningKey) -> BlockId {
        let id = self.id();
        self.signature = sign_id(authority, &id.0);
        id
    }

    pub fn read(r: &mut Reader<'_>) -> Result<BlockHeader, DecodeError> {
        let version = r.u16()?;
        if version != BLOCK_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "block",
                version,
            });
        }
        let net = r.u8()?;
        let network = Network::from_id(net).ok_or(DecodeError::UnknownNetwork(net))?;
        Ok(BlockHeader {
            version,
            network,
            height: r.u64()?,
            prev: BlockId(r.array()?),
            merkle_root: Hash32(r.array()?),
            time: r.u64()?,
            tx_count: r.u32()?,
            nonce: r.u64()?,
            signature: Signature(r.array()?),
        })
    }

    /// Decodes exactly one signed header.
    pub fn decode(bytes: &[u8]) -> Result<BlockHeader, DecodeError> {
        if bytes.len() > HEADER_LEN {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                max: HEADER_LEN,
            });
        }
        let mut r = Reader::new(bytes);
        let h = Self::read(&mut r)?;
        r.finish()?;
        Ok(h)
    }
}

/// A header and its transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<Transaction>,
}

impl Block {
    /// Signed header, then for each transaction a u32 length and its full encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(
            HEADER_LEN + self.txs.iter().map(|t| 4 + t.encoded_len()).sum::<usize>(),
        );
        w.bytes(&self.header.encode());
        for tx in &self.txs {
            let bytes = tx.encode();
            w.u32(bytes.len() as u32);
            w.bytes(&bytes);
        }
        w.into_bytes()
    }

    pub fn id(&self) -> BlockId {
        self.header.id()
    }

    /// Strict decoding (see [`Transaction::decode`]); the transaction count comes from the
    /// header.
    pub fn decode(bytes: &[u8]) -> Result<Block, DecodeError> {
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                max: MAX_BLOCK_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let header = BlockHeader::read(&mut r)?;
        let count = header.tx_count as usize;
        if count > MAX_BLOCK_TXS {
            return Err(DecodeError::TooMany {
                what: "transactions",
                count: count as u64,
                max: MAX_BLOCK_TXS as u64,
            });
        }
        // Each transaction takes at least its 4-byte length and a few bytes.
        if count.saturating_mul(4 + 20) > r.remaining() {
            return Err(DecodeError::UnexpectedEnd {
                offset: r.position(),
                needed: count * 24 - r.remaining(),
            });
        }
        let mut txs = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.u32()? as usize;
            if len > MAX_TX_BYTES {
                return Err(DecodeError::TooLarge {
                    size: len,
                    max: MAX_TX_BYTES,
                });
            }
            let mut inner = Reader::new(r.take(len)?);
            txs.push(Transaction::read(&mut inner)?);
            inner.finish()?;
        }
        r.finish()?;
        Ok(Block { header, txs })
    }

    /// Builds an unsigned block on top of `prev` (or a genesis block when `prev` is `None`).
    pub fn build(
        network: Network,
        prev: Option<&BlockHeader>,
        time: u64,
        nonce: u64,
        txs: Vec<Transaction>,
    ) -> Block {
        let leaves: Vec<Hash32> = txs.iter().map(merkle_leaf).collect();
        let header = BlockHeader {
            version: BLOCK_VERSION,
            network,
            height: prev.map_or(0, |p| p.height + 1),
            prev: prev.map_or(BlockId::ZERO, |p| p.id()),
            merkle_root: merkle_root(&leaves),
            time: prev.map_or(time, |p| time.max(p.time)),
            tx_count: txs.len() as u32,
            nonce,
            signature: Signature([0u8; 64]),
        };
        Block { header, txs }
    }
}

/// The merkle leaf of a transaction: `H("notch/v1/merkle-leaf", txid || witness hash)`, so
/// the header commits to the signatures as well as to the txid.
pub fn merkle_leaf(tx: &Transaction) -> Hash32 {
    merkle_leaf_of(&tx.txid(), &tx.witness_hash())
}

pub fn merkle_leaf_of(txid: &TxId, witness_hash: &[u8; 32]) -> Hash32 {
    Hash32(tagged_hash(tags::MERKLE_LEAF, &[&txid.0, witness_hash]))
}

/// The merkle root of the leaves: no leaves give `H("notch/v1/merkle-empty", "")`; one leaf
/// is its own root; otherwise each level pairs neighbours as `H("notch/v1/merkle-node", left
/// || right)` and an odd last node is carried up to the next level unchanged (never
/// duplicated).
pub fn merkle_root(leaves: &[Hash32]) -> Hash32 {
    if leaves.is_empty() {
        return Hash32(tagged_hash(tags::MERKLE_EMPTY, &[]));
    }
    let mut level: Vec<Hash32> = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => Hash32(tagged_hash(tags::MERKLE_NODE, &[&l.0, &r.0])),
                [one] => *one,
                _ => Hash32([0u8; 32]),
            })
            .collect();
    }
    level[0]
}

/// Why a header or block is not to be believed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("the header of block {height} is not signed by the pinned authority")]
    BadHeaderSignature { height: u64 },
    #[error("block {height} is for network {found}, expected {expected}")]
    WrongNetwork {
        height: u64,
        expected: Network,
        found: Network,
    },
    #[error("the header says {header} transactions, the block has {found}")]
    TxCountMismatch { header: u32, found: usize },
    #[error("the merkle root does not match the transactions")]
    MerkleMismatch,
    #[error("transaction {index} of the block is not valid: {error}")]
    BadTx { index: usize, error: TxError },
    #[error("transaction {index} appears twice in the block")]
    DuplicateTx { index: usize },
    #[error("transaction {index} spends an output already spent earlier in the block")]
    DoubleSpend { index: usize },
    #[error("expected height {expected}, found {found}")]
    HeightGap { expected: u64, found: u64 },
    #[error("block {height} does not link to the previous block")]
    PrevMismatch { height: u64 },
    #[error("block {height} goes back in time")]
    TimeBackwards { height: u64 },
    #[error("the genesis block must have height 0 and an all-zero prev")]
    BadGenesis,
}

/// Checks the authority's signature over the header's id.
pub fn verify_header(header: &BlockHeader, authority: &PublicKey) -> Result<(), VerifyError> {
    if verify_id_signature(authority, &header.id().0, &header.signature) {
        Ok(())
    } else {
        Err(VerifyError::BadHeaderSignature {
            height: header.height,
        })
    }
}

/// Checks that `next` directly follows `prev`: height + 1, prev id, same network, time not
/// going back.
pub fn verify_header_link(prev: &BlockHeader, next: &BlockHeader) -> Result<(), VerifyError> {
    if next.network != prev.network {
        return Err(VerifyError::WrongNetwork {
            height: next.height,
            expected: prev.network,
            found: next.network,
        });
    }
    if next.height != prev.height.saturating_add(1) {
        return Err(VerifyError::HeightGap {
            expected: prev.height.saturating_add(1),
            found: next.height,
        });
    }
    if next.prev != prev.id() {
        return Err(VerifyError::PrevMismatch {
            height: next.height,
        });
    }
    if next.time < prev.time {
        return Err(VerifyError::TimeBackwards {
            height: next.height,
        });
    }
    Ok(())
}

/// Checks a genesis header's shape and signature.
pub fn verify_genesis(header: &BlockHeader, authority: &PublicKey) -> Result<(), VerifyError> {
    if header.height != 0 || header.prev != BlockId::ZERO {
        return Err(VerifyError::BadGenesis);
    }
    verify_header(header, authority)
}

/// Verifies a run of headers that continues `anchor` (a header the caller already trusts;
/// `None` when `headers` starts with the genesis): every signature and every link.
pub fn verify_header_chain(
    anchor: Option<&BlockHeader>,
    headers: &[BlockHeader],
    authority: &PublicKey,
) -> Result<(), VerifyError> {
    let mut prev = anchor;
    for h in headers {
        match prev {
            Some(p) => verify_header_link(p, h)?,
            None => {
                if h.height != 0 || h.prev != BlockId::ZERO {
                    return Err(VerifyError::BadGenesis);
                }
            }
        }
        verify_header(h, authority)?;
        prev = Some(h);
    }
    Ok(())
}

/// Checks a block's body against its header: transaction count, per-transaction stateless
/// rules (shape, network, issuer signatures), no transaction twice, no output spent twice
/// within the block, and the merkle root. Input signatures need the spent outputs and are
/// checked with [`Transaction::validate`]; the header signature with [`verify_header`].
pub fn verify_block(block: &Block) -> Result<(), VerifyError> {
    let h = &block.header;
    if h.tx_count as usize != block.txs.len() {
        return Err(VerifyError::TxCountMismatch {
            header: h.tx_count,
            found: block.txs.len(),
        });
    }
    let mut txids = HashSet::with_capacity(block.txs.len());
    let mut spent = HashSet::new();
    let mut leaves = Vec::with_capacity(block.txs.len());
    for (index, tx) in block.txs.iter().enumerate() {
        let txid = tx
            .check_stateless(h.network)
            .map_err(|error| VerifyError::BadTx { index, error })?;
        if !txids.insert(txid) {
            return Err(VerifyError::DuplicateTx { index });
        }
        for i in &tx.inputs {
            if !spent.insert(*i) {
                return Err(VerifyError::DoubleSpend { index });
            }
        }
        leaves.push(merkle_leaf_of(&txid, &tx.witness_hash()));
    }
    if merkle_root(&leaves) != h.merkle_root {
        return Err(VerifyError::MerkleMismatch);
    }
    Ok(())
}

/// Heights for a block locator of a chain whose tip is at `tip`: the 10 newest heights one by
/// one, then steps doubling (2, 4, 8, ...), always ending with the genesis (0). Newest first.
pub fn locator_heights(tip: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut h = tip;
    let mut step = 1u64;
    loop {
        out.push(h);
        if h == 0 {
            break;
        }
        if out.len() >= 10 {
            step = step.saturating_mul(2);
        }
        h = h.saturating_sub(step);
    }
    out
}

/// Maximum number of hashes the gateway reads from a locator.
pub const MAX_LOCATOR_LEN: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::{Issuance, Output, public_key};

    fn authority() -> SigningKey {
        SigningKey::from_bytes(&[42u8; 32])
    }

    fn mint(n: u64) -> Transaction {
        let issuer = SigningKey::from_bytes(&[7u8; 32]);
        let mut tx = Transaction::new(Network::Sandbox);
        tx.issuances = vec![Issuance {
            issuer: public_key(&issuer),
            label: "NOTE".into(),
            mint: n,
            burn: 0,
        }];
        tx.outputs = vec![Output {
            asset: tx.issuances[0].asset(),
            amount: n,
            owner: public_key(&SigningKey::from_bytes(&[8u8; 32])),
        }];
        tx.sign(&[&issuer]).ok();
        tx
    }

    fn chain(len: usize) -> Vec<Block> {
        let mut blocks: Vec<Block> = Vec::new();
        for i in 0..len {
            let txs = if i == 0 {
                vec![]
            } else {
                (0..i as u64).map(|n| mint(n + 1)).collect()
            };
            let mut b = Block::build(
                Network::Sandbox,
                blocks.last().map(|b| &b.header),
                1_700_000_000 + i as u64,
                0,
                txs,
            );
            b.header.sign(&authority());
            blocks.push(b);
        }
        blocks
    }

    #[test]
    fn merkle_rules() {
        let l: Vec<Hash32> = (0..5u8).map(|i| Hash32([i; 32])).collect();
        assert_eq!(merkle_root(&l[..1]), l[0]);
        let n = |a: &Hash32, b: &Hash32| Hash32(tagged_hash(tags::MERKLE_NODE, &[&a.0, &b.0]));
        assert_eq!(merkle_root(&l[..2]), n(&l[0], &l[1]));
        // Three leaves: the odd one is carried up, not duplicated.
        assert_eq!(merkle_root(&l[..3]), n(&n(&l[0], &l[1]), &l[2]));
        assert_eq!(
            merkle_root(&l[..5]),
            n(&n(&n(&l[0], &l[1]), &n(&l[2], &l[3])), &l[4])
        );
        assert_ne!(merkle_root(&[]), merkle_root(&l[..1]));
    }

    #[test]
    fn a_valid_chain_verifies_and_round_trips() {
        let blocks = chain(5);
        let pk = public_key(&authority());
        let headers: Vec<BlockHeader> = blocks.iter().map(|b| b.header.clone()).collect();
        assert_eq!(verify_header_chain(None, &headers, &pk), Ok(()));
        assert_eq!(
            verify_header_chain(Some(&headers[1]), &headers[2..], &pk),
            Ok(())
        );
        for b in &blocks {
            assert_eq!(verify_block(b), Ok(()));
            assert_eq!(Block::decode(&b.encode()).as_ref(), Ok(b));
            assert_eq!(
                BlockHeader::decode(&b.header.encode()).as_ref(),
                Ok(&b.header)
            );
        }
    }

    #[test]
    fn tampering_is_detected() {
        let blocks = chain(4);
        let pk = public_key(&authority());
        let mut h = blocks[2].header.clone();
        h.time += 1;
        assert!(matches!(
            verify_header(&h, &pk),
            Err(VerifyError::BadHeaderSignature { .. })
        ));
        assert!(
            verify_header(
                &blocks[2].header,
                &public_key(&SigningKey::from_bytes(&[1; 32]))
            )
            .is_err()
        );
        assert!(matches!(
            verify_header_link(&blocks[1].header, &blocks[3].header),
            Err(VerifyError::HeightGap { .. })
        ));
        let mut other = blocks[2].clone();
        other.header.prev = BlockId([1; 32]);
        other.header.sign(&authority());
        assert!(matches!(
            verify_header_link(&blocks[1].header, &other.header),
            Err(VerifyError::PrevMismatch { .. })
        ));
        // Swap a transaction's signature for another valid-looking one: merkle root changes.
        let mut b = blocks[3].clone();
        b.txs.swap(0, 1);
        assert_eq!(verify_block(&b), Err(VerifyError::MerkleMismatch));
        let mut b = blocks[3].clone();
        b.txs.pop();
        assert!(matches!(
            verify_block(&b),
            Err(VerifyError::TxCountMismatch { .. })
        ));
        let mut bytes = blocks[3].encode();
        bytes.push(0);
        assert!(Block::decode(&bytes).is_err());
        let mut bytes = blocks[3].encode();
        // Claim a huge tx count in the header.
        let off = HEADER_UNSIGNED_LEN - 12;
        bytes[off..off + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Block::decode(&bytes),
            Err(DecodeError::TooMany { .. })
        ));
    }

    #[test]
    fn locator_shape() {
        assert_eq!(locator_heights(0), vec![0]);
        assert_eq!(locator_heights(3), vec![3, 2, 1, 0]);
        let l = locator_heights(1000);
        assert_eq!(
            &l[..10],
            &[1000, 999, 998, 997, 996, 995, 994, 993, 992, 991]
        );
        assert_eq!(l.last(), Some(&0));
        assert!(l.len() < 30);
        assert!(locator_heights(u64::MAX).len() <= MAX_LOCATOR_LEN);
    }
}
