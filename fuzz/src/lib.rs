//! Checks shared by the fuzz targets (`fuzz_targets/`) and the seed generator
//! (`examples/gen_seeds.rs`).
//!
//! Every function takes bytes or text as they arrive from outside, runs the decoder the wallet
//! or the gateway runs on them, and, where decoding succeeds, asserts the round trip and calls
//! the stateless checks the callers run next. A panic is a bug: either a decoder that panics,
//! or a round trip that does not hold.
//!
//! The binary encodings are canonical (docs/PROTOCOL.md 4.1 and 5.3: strict decoding, no
//! trailing bytes, "a transaction has exactly one encoding"), so a decoded value must
//! re-encode to exactly the input bytes.

use std::fmt::Debug;

use notch_protocol::ed25519_dalek::SigningKey;
use notch_protocol::{
    Address, AddressError, AssetId, Block, BlockHeader, BlockId, Hash32, Network, PublicKey,
    Signature, Transaction, TxId, block, public_key, verify_block, verify_genesis, verify_header,
    verify_header_chain, verify_header_link,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The authority key the seeds are signed with, so that the signature checks also take their
/// success path on inputs derived from the seeds.
pub fn authority_key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

pub fn authority() -> PublicKey {
    public_key(&authority_key())
}

/// `Transaction::decode` (the gateway on `POST /v1/tx`, the wallet on mempool and
/// transaction answers), then the round trip and `check_stateless` on every network.
pub fn check_transaction(data: &[u8]) -> Option<Transaction> {
    let tx = Transaction::decode(data).ok()?;
    let bytes = tx.encode();
    assert_eq!(bytes, data, "a transaction re-encodes to other bytes");
    assert_eq!(tx.encoded_len(), data.len(), "encoded_len is wrong");
    assert_eq!(
        Transaction::decode(&bytes).as_ref(),
        Ok(&tx),
        "decode(encode(tx)) != tx"
    );
    let unsigned = tx.encode_unsigned();
    assert!(
        data.starts_with(&unsigned),
        "the unsigned encoding is not a prefix of the full one"
    );
    let txid = tx.txid();
    for network in Network::ALL {
        match tx.check_stateless(network) {
            Ok(id) => {
                assert_eq!(id, txid, "check_stateless returned another txid");
                assert_eq!(network, tx.network);
            }
            Err(e) => {
                // Every rule violation has a stable API code and a message.
                assert!(!e.code().is_empty());
                let _ = e.to_string();
            }
        }
    }
    Some(tx)
}

/// `BlockHeader::decode` (the wallet on `POST /v1/headers` answers), the round trip, and the
/// checks the wallet runs on a header: signature, genesis shape, link, locator.
pub fn check_header(data: &[u8]) -> Option<BlockHeader> {
    let header = BlockHeader::decode(data).ok()?;
    let bytes = header.encode();
    assert_eq!(bytes, data, "a header re-encodes to other bytes");
    assert_eq!(bytes.len(), block::HEADER_LEN);
    assert_eq!(BlockHeader::decode(&bytes).as_ref(), Ok(&header));
    assert!(data.starts_with(&header.encode_unsigned()));
    header_checks(&header);
    Some(header)
}

fn header_checks(header: &BlockHeader) {
    let authority = authority();
    let signed = verify_header(header, &authority).is_ok();
    let genesis = verify_genesis(header, &authority);
    if genesis.is_ok() {
        assert!(signed && header.height == 0 && header.prev == BlockId::ZERO);
    }
    let _ = verify_header_chain(None, std::slice::from_ref(header), &authority);
    // A header never links to itself (height + 1), and a successor built from it links.
    assert!(verify_header_link(header, header).is_err());
    if header.height < u64::MAX {
        let mut next = header.clone();
        next.height += 1;
        next.prev = header.id();
        assert_eq!(verify_header_link(header, &next), Ok(()));
    }
    // The wallet builds its locator from its tip's height.
    let heights = block::locator_heights(header.height);
    assert!(heights.len() <= block::MAX_LOCATOR_LEN, "locator too long");
    assert_eq!(heights.first(), Some(&header.height));
    assert_eq!(heights.last(), Some(&0));
    assert!(
        heights.windows(2).all(|w| w[0] > w[1]),
        "locator not descending"
    );
}

/// `Block::decode` (the wallet on `/v1/blocks` answers), the round trip, and `verify_block`
/// and the header checks.
pub fn check_block(data: &[u8]) -> Option<Block> {
    let block = Block::decode(data).ok()?;
    let bytes = block.encode();
    assert_eq!(bytes, data, "a block re-encodes to other bytes");
    assert_eq!(Block::decode(&bytes).as_ref(), Ok(&block));
    assert_eq!(block.txs.len(), block.header.tx_count as usize);
    assert!(data.starts_with(&block.header.encode()));
    match verify_block(&block) {
        Ok(()) => {
            let leaves: Vec<Hash32> = block.txs.iter().map(block::merkle_leaf).collect();
            assert_eq!(block::merkle_root(&leaves), block.header.merkle_root);
            for tx in &block.txs {
                assert!(tx.check_stateless(block.header.network).is_ok());
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    for tx in &block.txs {
        // Each transaction of a decoded block is itself a canonical transaction.
        assert_eq!(check_transaction(&tx.encode()).as_ref(), Some(tx));
    }
    header_checks(&block.header);
    Some(block)
}

/// `Address::parse_any` / `Address::parse` (the gateway on `/v1/address/{address}/utxos` and
/// stream subscriptions, the wallet on what a person types or scans), and its round trip.
pub fn check_address(s: &str) -> Option<Address> {
    let parsed = Address::parse_any(s);
    for network in Network::ALL {
        let strict = Address::parse(s, network);
        match &parsed {
            Ok(a) if a.network == network => assert_eq!(strict, Ok(*a)),
            Ok(a) => assert_eq!(
                strict,
                Err(AddressError::WrongNetwork {
                    expected: network,
                    found: a.network
                })
            ),
            Err(e) => assert_eq!(strict.as_ref(), Err(e)),
        }
    }
    let address = match parsed {
        Ok(a) => a,
        Err(e) => {
            let _ = e.to_string();
            return None;
        }
    };
    let text = address.encode();
    assert_eq!(text, s.trim().to_lowercase(), "the canonical form differs");
    assert_eq!(Address::parse_any(&text), Ok(address));
    assert_eq!(Address::parse_any(&text.to_uppercase()), Ok(address));
    assert!(text.starts_with(address.network.hrp()));
    let json = serde_json::to_string(&address).expect("an address serializes");
    assert_eq!(serde_json::from_str::<Address>(&json).ok(), Some(address));
    Some(address)
}

/// The hex ids and keys the gateway takes in paths and locators and the wallet reads in JSON.
pub fn check_hex_ids(s: &str) {
    macro_rules! id {
        ($t:ty) => {
            if let Ok(id) = <$t>::from_hex(s) {
                let text = id.to_hex();
                assert_eq!(text, s.to_ascii_lowercase());
                assert_eq!(<$t>::from_hex(&text), Ok(id));
                assert_eq!(s.parse::<$t>(), Ok(id));
                let json = serde_json::to_string(&id).expect("an id serializes");
                assert_eq!(serde_json::from_str::<$t>(&json).ok(), Some(id));
            }
        };
    }
    id!(TxId);
    id!(BlockId);
    id!(AssetId);
    id!(Hash32);
    id!(PublicKey);
    id!(Signature);
}

/// `serde_json::from_slice::<T>` as both sides call it; where it succeeds, what `T`
/// serializes to parses back to the same value.
pub fn json_round_trip<T>(data: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let value: T = serde_json::from_slice(data).ok()?;
    let json = serde_json::to_vec(&value).expect("a decoded value serializes");
    let back: T = serde_json::from_slice(&json).expect("serialized JSON parses back");
    assert_eq!(back, value, "JSON round trip changed the value");
    Some(value)
}

/// `serde_urlencoded::from_bytes::<T>` as axum's `Query` extractor calls it on the gateway's
/// query strings, and the round trip.
pub fn query_round_trip<T>(data: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let value: T = serde_urlencoded::from_bytes(data).ok()?;
    let query = serde_urlencoded::to_string(&value).expect("a decoded query serializes");
    let back: T = serde_urlencoded::from_str(&query).expect("serialized query parses back");
    assert_eq!(back, value, "query round trip changed the value");
    Some(value)
}

/// What the wallet does with a `hex` field: lower- or upper-case hex of the exact encoding.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok()
}
