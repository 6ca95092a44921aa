//! The verified header chain's rules, as pure functions: links, the
//! authority's signatures, the pinned genesis and checkpoint, and when a
//! roll-back is allowed (only for a longer signed chain, never deeper than
//! the finality depth). Sync fetches; this decides.

use std::collections::HashSet;

use notch_protocol::api::HeaderEntry;
use notch_protocol::block::merkle_leaf_of;
use notch_protocol::{
    Block, BlockHeader, BlockId, Network, PublicKey, merkle_root, verify_genesis, verify_header,
    verify_id_signatures,
};

use crate::store::{Hash32, Header};
use crate::sync::SyncError;

/// The header the wallet knows at some height (stored, or verified in this
/// pass and not yet stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub height: u64,
    pub id: Hash32,
    pub time: u64,
}

impl From<&Header> for Link {
    fn from(h: &Header) -> Self {
        Link {
            height: h.height,
            id: h.hash,
            time: h.time,
        }
    }
}

impl From<&BlockHeader> for Link {
    fn from(h: &BlockHeader) -> Self {
        Link {
            height: h.height,
            id: h.id().0,
            time: h.time,
        }
    }
}

pub(crate) fn bad(what: impl Into<String>) -> SyncError {
    SyncError::Verification { what: what.into() }
}

/// What the wallet requires of the chain beyond the authority's signature:
/// the genesis and a checkpoint from a network file, when it has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Anchors {
    pub genesis: Option<Hash32>,
    pub checkpoint: Option<(u64, Hash32)>,
}

impl Anchors {
    /// Checks a verified header against the anchors.
    pub fn check(&self, header: &BlockHeader) -> Result<(), SyncError> {
        let id = header.id().0;
        if header.height == 0
            && let Some(genesis) = self.genesis
            && genesis != id
        {
            return Err(bad(format!(
                "the genesis {} is not the one in the network file ({})",
                hex::encode(id),
                hex::encode(genesis)
            )));
        }
        if let Some((height, expected)) = self.checkpoint
            && header.height == height
            && expected != id
        {
            return Err(bad(format!(
                "block {height} is {}, not the network file's checkpoint {}",
                hex::encode(id),
                hex::encode(expected)
            )));
        }
        Ok(())
    }
}

/// Checks that `next` continues `prev` (a header the wallet trusts).
pub fn check_link(prev: &Link, next: &BlockHeader, network: Network) -> Result<(), SyncError> {
    if next.network != network {
        return Err(bad(format!(
            "block {} is for network {}, not {network}",
            next.height, next.network
        )));
    }
    if next.height != prev.height + 1 {
        return Err(bad(format!(
            "expected block {} after {}, got {}",
            prev.height + 1,
            prev.height,
            next.height
        )));
    }
    if next.prev.0 != prev.id {
        return Err(bad(format!(
            "block {} does not link to block {}",
            next.height, prev.height
        )));
    }
    if next.time < prev.time {
        return Err(bad(format!("block {} goes back in time", next.height)));
    }
    Ok(())
}

/// Verifies one header after `prev` (`None`: it must be the genesis):
/// link, signature by the pinned authority, anchors.
pub fn verify_next(
    prev: Option<&Link>,
    header: &BlockHeader,
    authority: &PublicKey,
    network: Network,
    anchors: &Anchors,
) -> Result<Link, SyncError> {
    if prev.is_none() && header.network == network {
        verify_genesis(header, authority).map_err(|e| bad(format!("genesis: {e}")))?;
    }
    let link = check_next(prev, header, network, anchors)?;
    verify_header(header, authority).map_err(|e| bad(e.to_string()))?;
    Ok(link)
}

/// Everything [`verify_next`] checks except the authority's signature,
/// which the caller checks for many headers at once
/// ([`verify_signatures`]) before it believes any of them.
pub fn check_next(
    prev: Option<&Link>,
    header: &BlockHeader,
    network: Network,
    anchors: &Anchors,
) -> Result<Link, SyncError> {
    match prev {
        Some(p) => check_link(p, header, network)?,
        None => {
            if header.network != network {
                return Err(bad(format!(
                    "the genesis is for network {}",
                    header.network
                )));
            }
            if header.height != 0 || header.prev != BlockId::ZERO {
                return Err(bad(
                    "genesis: the genesis block must have height 0 and an all-zero prev",
                ));
            }
        }
    }
    if header.tx_count as usize > notch_protocol::block::MAX_BLOCK_TXS {
        return Err(bad(format!(
            "header {} claims {} transactions (at most {})",
            header.height,
            header.tx_count,
            notch_protocol::block::MAX_BLOCK_TXS
        )));
    }
    anchors.check(header)?;
    Ok(Link::from(header))
}

/// The authority's signature on each header, verified as one batch
/// (`verify_id_signatures`, the same ZIP 215 rules as one by one); when the
/// batch fails, one by one, to name the header that is not signed.
pub fn verify_signatures<'a>(
    headers: impl IntoIterator<Item = &'a BlockHeader>,
    authority: &PublicKey,
) -> Result<(), SyncError> {
    let headers: Vec<&BlockHeader> = headers.into_iter().collect();
    let ids: Vec<[u8; 32]> = headers.iter().map(|h| h.id().0).collect();
    if verify_id_signatures(
        ids.iter()
            .zip(&headers)
            .map(|(id, h)| (authority, id, &h.signature)),
    ) {
        return Ok(());
    }
    for h in &headers {
        verify_header(h, authority).map_err(|e| bad(e.to_string()))?;
    }
    Err(bad("a batch of header signatures does not verify"))
}

/// Verifies a run of headers after `anchor` (`None`: from the genesis):
/// every link, then every signature (in one batch).
pub fn verify_headers(
    anchor: Option<Link>,
    headers: &[BlockHeader],
    authority: &PublicKey,
    network: Network,
    anchors: &Anchors,
) -> Result<(), SyncError> {
    let mut prev = anchor;
    for h in headers {
        prev = Some(check_next(prev.as_ref(), h, network, anchors)?);
    }
    verify_signatures(headers, authority)
}

/// What a light client checks of every downloaded block's body: as many
/// transactions as the header says, no txid and no outpoint twice, and the
/// merkle root over `(txid, witness hash)` of every transaction, which the
/// authority signed in the header. So no transaction of a block can be
/// changed, added, dropped or re-signed without breaking the root. The
/// transactions' own rules (signatures included) are checked only for those
/// that touch the wallet (`apply`, docs/PROTOCOL.md §5.4 item 6): checking
/// anyone else's proves nothing more to this wallet.
pub fn check_body(block: &Block) -> Result<(), SyncError> {
    let h = &block.header;
    if h.tx_count as usize != block.txs.len() {
        return Err(bad(format!(
            "block {}: the header says {} transactions, the block has {}",
            h.height,
            h.tx_count,
            block.txs.len()
        )));
    }
    let mut txids = HashSet::with_capacity(block.txs.len());
    let mut spent = HashSet::new();
    let mut leaves = Vec::with_capacity(block.txs.len());
    for (index, tx) in block.txs.iter().enumerate() {
        let txid = tx.txid();
        if !txids.insert(txid) {
            return Err(bad(format!(
                "block {}: transaction {index} appears twice in the block",
                h.height
            )));
        }
        for i in &tx.inputs {
            if !spent.insert(*i) {
                return Err(bad(format!(
                    "block {}: transaction {index} spends an output already spent earlier in the block",
                    h.height
                )));
            }
        }
        leaves.push(merkle_leaf_of(&txid, &tx.witness_hash()));
    }
    if merkle_root(&leaves) != h.merkle_root {
        return Err(bad(format!(
            "block {}: the merkle root does not match the transactions",
            h.height
        )));
    }
    Ok(())
}

/// Decodes the headers of a `/v1/headers` answer; each must be what its
/// entry says (height, id).
pub fn decode_headers(entries: &[HeaderEntry]) -> Result<Vec<BlockHeader>, SyncError> {
    let mut headers = Vec::with_capacity(entries.len());
    for entry in entries {
        let bytes =
            hex::decode(&entry.hex).map_err(|e| bad(format!("a header is not hex: {e}")))?;
        let header = BlockHeader::decode(&bytes)
            .map_err(|e| bad(format!("header {}: {e}", entry.height)))?;
        if header.height != entry.height || !header.id().to_hex().eq_ignore_ascii_case(&entry.id) {
            return Err(bad(format!(
                "header {} does not match its stated height or id",
                entry.height
            )));
        }
        headers.push(header);
    }
    Ok(headers)
}

/// Whether replacing the wallet's chain above `fork` with a verified chain
/// ending at `new_tip` is allowed: only if it goes further than the
/// wallet's tip (a roll-back needs a longer signed chain as proof) and
/// undoes no final block (`finality_depth` confirmations).
pub fn check_reorg(
    stored_tip: u64,
    fork: u64,
    new_tip: Option<u64>,
    finality_depth: u64,
) -> Result<(), SyncError> {
    if fork >= stored_tip {
        return Ok(());
    }
    let depth = stored_tip - fork;
    match new_tip {
        Some(t) if t > stored_tip => {}
        _ => {
            return Err(bad(format!(
                "the gateway offered to roll the wallet back from block {stored_tip} to \
                 {fork} without a longer signed chain (its chain ends at {})",
                new_tip.map_or("the fork point".to_owned(), |t| format!("block {t}"))
            )));
        }
    }
    // The block at fork+1 has `depth` confirmations at the old tip.
    if depth >= finality_depth.max(1) {
        return Err(SyncError::ReorgTooDeep {
            fork_height: fork,
            tip: stored_tip,
            finality_depth,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use notch_protocol::{Block, BlockId, public_key};

    use super::*;

    fn authority() -> SigningKey {
        SigningKey::from_bytes(&[42u8; 32])
    }

    fn chain(n: usize) -> Vec<BlockHeader> {
        let key = authority();
        let mut out: Vec<BlockHeader> = Vec::new();
        for i in 0..n {
            let mut b = Block::build(
                Network::Sandbox,
                out.last(),
                1_700_000_000 + i as u64,
                0,
                vec![],
            );
            b.header.sign(&key);
            out.push(b.header);
        }
        out
    }

    fn v(anchor: Option<Link>, h: &[BlockHeader], n: Network) -> Result<(), SyncError> {
        verify_headers(anchor, h, &public_key(&authority()), n, &Anchors::default())
    }

    #[test]
    fn a_good_chain_verifies() {
        let headers = chain(5);
        assert!(v(None, &headers, Network::Sandbox).is_ok());
        let anchor = Link::from(&headers[1]);
        assert!(v(Some(anchor), &headers[2..], Network::Sandbox).is_ok());
    }

    #[test]
    fn bad_headers_are_refused() {
        let auth = public_key(&authority());
        let mut headers = chain(4);
        headers[2].signature.0[5] ^= 1;
        assert!(matches!(
            v(None, &headers, Network::Sandbox),
            Err(SyncError::Verification { .. })
        ));
        let mut headers = chain(3);
        headers[2].sign(&SigningKey::from_bytes(&[7u8; 32]));
        assert!(v(None, &headers, Network::Sandbox).is_err());
        let mut headers = chain(3);
        headers[1].merkle_root.0[0] ^= 1;
        assert!(v(None, &headers, Network::Sandbox).is_err());
        let mut headers = chain(4);
        headers[3].prev = BlockId([9; 32]);
        headers[3].sign(&authority());
        let err = v(None, &headers, Network::Sandbox).expect_err("link");
        assert!(err.to_string().contains("failed verification"), "{err}");
        let headers = chain(5);
        let anchor = Link::from(&headers[1]);
        assert!(v(Some(anchor), &headers[3..], Network::Sandbox).is_err());
        assert!(v(None, &chain(2), Network::Test).is_err());
        let headers = chain(3);
        let anchor = Link {
            time: headers[2].time + 100,
            ..Link::from(&headers[1])
        };
        assert!(v(Some(anchor), &headers[2..], Network::Sandbox).is_err());
        // The network file's genesis and checkpoint.
        let headers = chain(4);
        let wrong = Anchors {
            genesis: Some([1; 32]),
            checkpoint: None,
        };
        assert!(verify_headers(None, &headers, &auth, Network::Sandbox, &wrong).is_err());
        let right = Anchors {
            genesis: Some(headers[0].id().0),
            checkpoint: Some((2, headers[2].id().0)),
        };
        assert!(verify_headers(None, &headers, &auth, Network::Sandbox, &right).is_ok());
        let other = Anchors {
            checkpoint: Some((2, headers[1].id().0)),
            ..right
        };
        assert!(verify_headers(None, &headers, &auth, Network::Sandbox, &other).is_err());
    }

    #[test]
    fn roll_backs_need_a_longer_chain_and_stay_above_finality() {
        // No roll-back: always fine.
        assert!(check_reorg(10, 10, None, 6).is_ok());
        assert!(check_reorg(10, 10, Some(12), 6).is_ok());
        // A fork with nothing after it, or a chain no longer than ours.
        assert!(matches!(
            check_reorg(10, 0, None, 6),
            Err(SyncError::Verification { .. })
        ));
        assert!(check_reorg(10, 8, Some(10), 6).is_err());
        // Longer and shallow: allowed. Deep: refused even when longer.
        assert!(check_reorg(10, 8, Some(11), 6).is_ok());
        assert!(check_reorg(10, 5, Some(20), 6).is_ok());
        assert!(matches!(
            check_reorg(10, 4, Some(20), 6),
            Err(SyncError::ReorgTooDeep { .. })
        ));
    }
}
