//! Recomputes every test vector of docs/PROTOCOL.md and checks that the document quotes
//! `protocol/tests/vectors.json` verbatim.
//!
//! To regenerate after an intentional change: `NOTCH_WRITE_VECTORS=1 cargo test -p
//! notch-protocol --test vectors`, then paste the file into docs/PROTOCOL.md.

use std::collections::BTreeMap;
use std::path::PathBuf;

use notch_protocol::ed25519_dalek::SigningKey;
use notch_protocol::hash::tags;
use notch_protocol::{
    Address, AssetId, Block, Issuance, Network, OutPoint, Output, Transaction, merkle_leaf,
    public_key, tagged_hash, verify_block, verify_header, verify_header_chain,
};

fn seed(start: u8) -> SigningKey {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = start + i as u8;
    }
    SigningKey::from_bytes(&s)
}

fn compute() -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    let mut put = |k: &str, val: String| {
        v.insert(k.to_owned(), val);
    };
    let alice = seed(0x00);
    let bob = seed(0x20);
    let issuer = seed(0x40);
    let authority = seed(0x60);
    put(
        "hash_txid_tag_abc",
        hex::encode(tagged_hash(tags::TXID, &[b"abc"])),
    );
    put("key_alice_seed", hex::encode(alice.to_bytes()));
    put("key_alice_public", public_key(&alice).to_hex());
    put(
        "address_alice_sandbox",
        Address::new(Network::Sandbox, public_key(&alice)).encode(),
    );
    put(
        "address_alice_main",
        Address::new(Network::Main, public_key(&alice)).encode(),
    );
    put(
        "address_alice_test",
        Address::new(Network::Test, public_key(&alice)).encode(),
    );
    put("key_bob_seed", hex::encode(bob.to_bytes()));
    put(
        "address_bob_sandbox",
        Address::new(Network::Sandbox, public_key(&bob)).encode(),
    );
    put("key_issuer_seed", hex::encode(issuer.to_bytes()));
    put("key_issuer_public", public_key(&issuer).to_hex());
    put("key_authority_seed", hex::encode(authority.to_bytes()));
    put("key_authority_public", public_key(&authority).to_hex());
    let note = AssetId::derive(&public_key(&issuer), "NOTE");
    put("asset_note_id", note.to_hex());
    put(
        "asset_eurt_id",
        AssetId::derive(&public_key(&issuer), "EURT").to_hex(),
    );

    // tx1: the issuer mints 10 NOTE (8 decimals) to Alice.
    let mut tx1 = Transaction::new(Network::Sandbox);
    tx1.issuances = vec![Issuance {
        issuer: public_key(&issuer),
        label: "NOTE".into(),
        mint: 1_000_000_000,
        burn: 0,
    }];
    tx1.outputs = vec![Output {
        asset: note,
        amount: 1_000_000_000,
        owner: public_key(&alice),
    }];
    tx1.nonce = 1;
    let txid1 = tx1
        .sign(&[&issuer])
        .unwrap_or_else(|e| panic!("sign tx1: {e}"));
    put("tx1_unsigned_hex", hex::encode(tx1.encode_unsigned()));
    put("tx1_txid", txid1.to_hex());
    put("tx1_signature", tx1.signatures[0].to_hex());
    put("tx1_hex", hex::encode(tx1.encode()));

    // tx2: Alice pays Bob 2.5 NOTE from tx1:0, change to herself, fee 10000.
    let mut tx2 = Transaction::new(Network::Sandbox);
    tx2.inputs = vec![OutPoint {
        txid: txid1,
        index: 0,
    }];
    tx2.outputs = vec![
        Output {
            asset: note,
            amount: 250_000_000,
            owner: public_key(&bob),
        },
        Output {
            asset: note,
            amount: 749_990_000,
            owner: public_key(&alice),
        },
    ];
    tx2.fee = 10_000;
    let txid2 = tx2
        .sign(&[&alice])
        .unwrap_or_else(|e| panic!("sign tx2: {e}"));
    put("tx2_unsigned_hex", hex::encode(tx2.encode_unsigned()));
    put("tx2_txid", txid2.to_hex());
    put("tx2_signature", tx2.signatures[0].to_hex());
    put("tx2_hex", hex::encode(tx2.encode()));

    // Genesis and block 1 holding tx1 and tx2.
    let mut genesis = Block::build(Network::Sandbox, None, 1_700_000_000, 0, vec![]);
    genesis.header.sign(&authority);
    put("genesis_merkle_root", genesis.header.merkle_root.to_hex());
    put("genesis_header_hex", hex::encode(genesis.header.encode()));
    put("genesis_id", genesis.id().to_hex());
    let mut block1 = Block::build(
        Network::Sandbox,
        Some(&genesis.header),
        1_700_000_060,
        0,
        vec![tx1.clone(), tx2.clone()],
    );
    block1.header.sign(&authority);
    put("block1_leaf_tx1", merkle_leaf(&tx1).to_hex());
    put("block1_leaf_tx2", merkle_leaf(&tx2).to_hex());
    put("block1_merkle_root", block1.header.merkle_root.to_hex());
    put(
        "block1_header_unsigned_hex",
        hex::encode(block1.header.encode_unsigned()),
    );
    put("block1_id", block1.id().to_hex());
    put("block1_signature", block1.header.signature.to_hex());
    put("block1_header_hex", hex::encode(block1.header.encode()));
    put("block1_hex", hex::encode(block1.encode()));

    // The vectors verify with the protocol's own checks.
    let pk = public_key(&authority);
    assert_eq!(
        verify_header_chain(None, &[genesis.header.clone(), block1.header.clone()], &pk),
        Ok(())
    );
    assert_eq!(verify_header(&block1.header, &pk), Ok(()));
    assert_eq!(verify_block(&block1), Ok(()));
    v
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn render(v: &BTreeMap<String, String>) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

#[test]
fn vectors_match_the_file_and_the_document() {
    let computed = compute();
    let path = root().join("tests/vectors.json");
    if std::env::var_os("NOTCH_WRITE_VECTORS").is_some() {
        std::fs::write(&path, render(&computed))
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let stored: BTreeMap<String, String> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse vectors.json: {e}"));
    for (k, want) in &computed {
        assert_eq!(
            stored.get(k),
            Some(want),
            "vector {k} differs from tests/vectors.json"
        );
    }
    assert_eq!(
        stored.len(),
        computed.len(),
        "vectors.json has extra or missing entries"
    );
    assert_eq!(
        text,
        render(&computed),
        "vectors.json is not in canonical form"
    );

    let doc_path = root().join("../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", doc_path.display()));
    let block = format!("```json\n{text}```");
    assert!(
        doc.contains(&block),
        "docs/PROTOCOL.md must quote protocol/tests/vectors.json verbatim in a ```json block"
    );
    for val in computed.values() {
        assert!(doc.contains(val.as_str()), "docs/PROTOCOL.md lacks {val}");
    }
}

#[test]
fn vector_bytes_decode_back() {
    let v = compute();
    let tx2 = hex::decode(&v["tx2_hex"]).unwrap_or_default();
    let tx = Transaction::decode(&tx2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tx.txid().to_hex(), v["tx2_txid"]);
    let block = Block::decode(&hex::decode(&v["block1_hex"]).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(block.id().to_hex(), v["block1_id"]);
    let a = Address::parse(&v["address_alice_sandbox"], Network::Sandbox)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.key.to_hex(), v["key_alice_public"]);
}
