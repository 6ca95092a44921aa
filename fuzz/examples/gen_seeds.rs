//! Writes the seed corpus `fuzz/seeds/<target>/`: a few valid, signed values of each shape,
//! built with the protocol crate, so the fuzzers start from inputs that pass the deep checks.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds` (from the repository root,
//! or with the seeds directory as the only argument). The output is deterministic; the files
//! are committed, and `cargo xtask fuzz` reads them next to the (ignored) growing corpus.

use std::path::{Path, PathBuf};

use notch_fuzz::authority_key;
use notch_protocol::api::{
    ApiError, BlockEntry, BlockRangeQuery, BlockRef, BlocksRequest, BlocksResponse, ClientMessage,
    FaucetRequest, HeaderEntry, HeadersRequest, HeadersResponse, LedgerInfo, MempoolChange,
    MempoolChangeKind, MempoolDelta, MempoolQuery, ReorgRequest, StreamMessage, SubmitTxRequest,
    SubmitTxResponse, TipInfo, TxStatus, TxStatusResponse, UtxoEntry, UtxosResponse,
};
use notch_protocol::ed25519_dalek::SigningKey;
use notch_protocol::{
    Address, AssetId, Block, Issuance, Network, OutPoint, Output, Transaction, TxId, public_key,
    verify_block, verify_header_chain,
};
use serde::Serialize;

fn key(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

fn mint(issuer: &SigningKey, label: &str, amount: u64, to: &SigningKey, nonce: u64) -> Transaction {
    let mut tx = Transaction::new(Network::Sandbox);
    tx.issuances = vec![Issuance {
        issuer: public_key(issuer),
        label: label.into(),
        mint: amount,
        burn: 0,
    }];
    tx.outputs = vec![Output {
        asset: tx.issuances[0].asset(),
        amount,
        owner: public_key(to),
    }];
    tx.nonce = nonce;
    tx.sign(&[issuer]).expect("one signer per issuance");
    tx
}

/// Spends the two mints' outputs: 200 EURT to bob, the rest back, a fee of 10,000 NOTE.
fn payment(
    from: &SigningKey,
    notes: TxId,
    euros: TxId,
    native: AssetId,
    eur: AssetId,
) -> Transaction {
    let mut tx = Transaction::new(Network::Sandbox);
    tx.inputs = vec![
        OutPoint {
            txid: notes,
            index: 0,
        },
        OutPoint {
            txid: euros,
            index: 0,
        },
    ];
    tx.outputs = vec![
        Output {
            asset: eur,
            amount: 200,
            owner: public_key(&key(2)),
        },
        Output {
            asset: eur,
            amount: 300,
            owner: public_key(from),
        },
        Output {
            asset: native,
            amount: 990_000,
            owner: public_key(from),
        },
    ];
    tx.fee = 10_000;
    tx.sign(&[from, from]).expect("one signer per input");
    tx
}

fn burn(owner: &SigningKey, issuer: &SigningKey, funding: TxId, eur: AssetId) -> Transaction {
    let mut tx = Transaction::new(Network::Sandbox);
    tx.inputs = vec![OutPoint {
        txid: funding,
        index: 0,
    }];
    tx.issuances = vec![Issuance {
        issuer: public_key(issuer),
        label: "EURT".into(),
        mint: 0,
        burn: 100,
    }];
    tx.outputs = vec![Output {
        asset: eur,
        amount: 400,
        owner: public_key(owner),
    }];
    tx.fee = 0;
    tx.nonce = 7;
    tx.sign(&[owner, issuer]).expect("input then issuance");
    tx
}

struct Out {
    root: PathBuf,
    count: usize,
}

impl Out {
    fn write(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("create the seeds directory");
        std::fs::write(dir.join(name), bytes).expect("write a seed");
        self.count += 1;
    }
    fn json(&mut self, target: &str, name: &str, value: &impl Serialize) {
        let bytes = serde_json::to_vec(value).expect("serialize a seed");
        self.write(target, &format!("{name}.json"), &bytes);
    }
}

fn tip_of(block: &Block) -> TipInfo {
    TipInfo {
        height: block.header.height,
        hash: block.id().to_hex(),
        time: block.header.time,
    }
}

fn main() {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds"));
    let _ = std::fs::remove_dir_all(&root);
    let mut out = Out { root, count: 0 };

    let authority = authority_key();
    let issuer = key(9);
    let alice = key(1);
    let native = AssetId::derive(&public_key(&issuer), "NOTE");
    let eur = AssetId::derive(&public_key(&issuer), "EURT");

    let mint_note = mint(&issuer, "NOTE", 1_000_000, &alice, 0);
    let mint_eur = mint(&issuer, "EURT", 500, &alice, 1);
    let pay = payment(&alice, mint_note.txid(), mint_eur.txid(), native, eur);
    let burn = burn(&alice, &issuer, mint_eur.txid(), eur);

    out.write("transaction", "mint.bin", &mint_note.encode());
    out.write("transaction", "payment.bin", &pay.encode());
    out.write("transaction", "burn.bin", &burn.encode());

    let mut genesis = Block::build(Network::Sandbox, None, 1_700_000_000, 0, vec![]);
    genesis.header.sign(&authority);
    let mut b1 = Block::build(
        Network::Sandbox,
        Some(&genesis.header),
        1_700_000_002,
        0,
        vec![mint_note.clone(), mint_eur.clone()],
    );
    b1.header.sign(&authority);
    let mut b2 = Block::build(
        Network::Sandbox,
        Some(&b1.header),
        1_700_000_004,
        3,
        vec![pay.clone()],
    );
    b2.header.sign(&authority);

    // The seeds must take the success paths of the checks.
    for tx in [&mint_note, &mint_eur, &pay, &burn] {
        assert!(notch_fuzz::check_transaction(&tx.encode()).is_some());
        assert!(tx.check_stateless(Network::Sandbox).is_ok());
    }
    let headers = [genesis.header.clone(), b1.header.clone(), b2.header.clone()];
    let pinned = notch_fuzz::authority();
    assert_eq!(verify_header_chain(None, &headers, &pinned), Ok(()));
    for b in [&genesis, &b1, &b2] {
        assert!(notch_fuzz::check_block(&b.encode()).is_some());
        assert_eq!(verify_block(b), Ok(()));
    }

    out.write("block", "genesis.bin", &genesis.encode());
    out.write("block", "two-mints.bin", &b1.encode());
    out.write("block", "payment.bin", &b2.encode());
    out.write("block_header", "genesis.bin", &genesis.header.encode());
    out.write("block_header", "block1.bin", &b1.header.encode());

    let alice_addr = Address::new(Network::Sandbox, public_key(&alice));
    for network in Network::ALL {
        let a = Address::new(network, public_key(&alice));
        out.write(
            "address",
            &format!("{}.txt", network.name()),
            a.encode().as_bytes(),
        );
    }
    out.write(
        "address",
        "upper.txt",
        alice_addr.encode().to_uppercase().as_bytes(),
    );
    out.write("address", "txid.txt", pay.txid().to_hex().as_bytes());
    out.write(
        "address",
        "signature.txt",
        pay.signatures[0].to_hex().as_bytes(),
    );

    // Answers the wallet parses.
    let r = "api_response";
    let info = LedgerInfo {
        network: "sandbox".into(),
        authority_key: public_key(&authority).to_hex(),
        assets: vec![notch_protocol::api::AssetInfo {
            id: native.to_hex(),
            symbol: "NOTE".into(),
            name: "Note".into(),
            decimals: 8,
            native: true,
            issuer: public_key(&issuer).to_hex(),
        }],
        tip: tip_of(&b2),
        sandbox: true,
        params: Default::default(),
    };
    out.json(r, "info", &info);
    let entry = |b: &Block| HeaderEntry {
        height: b.header.height,
        id: b.id().to_hex(),
        hex: hex::encode(b.header.encode()),
    };
    out.json(
        r,
        "headers",
        &HeadersResponse {
            fork_point: None,
            headers: vec![entry(&genesis), entry(&b1), entry(&b2)],
            tip: tip_of(&b2),
            more: false,
        },
    );
    out.json(
        r,
        "blocks",
        &BlocksResponse {
            fork_point: Some(BlockRef {
                height: 0,
                hash: genesis.id().to_hex(),
            }),
            blocks: vec![BlockEntry {
                height: 1,
                id: b1.id().to_hex(),
                hex: hex::encode(b1.encode()),
            }],
            tip: tip_of(&b2),
            more: true,
        },
    );
    let confirmed = TxStatus::Confirmed {
        confirmations: 1,
        block_height: 2,
        block_id: b2.id().to_hex(),
    };
    out.json(
        r,
        "submit",
        &SubmitTxResponse {
            txid: pay.txid().to_hex(),
            status: TxStatus::InPool,
            duplicate: false,
        },
    );
    out.json(
        r,
        "status",
        &TxStatusResponse {
            txid: pay.txid().to_hex(),
            status: confirmed.clone(),
            tip_height: 2,
        },
    );
    out.json(
        r,
        "mempool",
        &MempoolDelta {
            reset: true,
            changes: vec![
                MempoolChange {
                    seq: 1,
                    kind: MempoolChangeKind::Added,
                    txid: burn.txid().to_hex(),
                    hex: Some(hex::encode(burn.encode())),
                },
                MempoolChange {
                    seq: 2,
                    kind: MempoolChangeKind::Removed,
                    txid: pay.txid().to_hex(),
                    hex: None,
                },
            ],
            seq: 2,
            more: false,
        },
    );
    out.json(
        r,
        "utxos",
        &UtxosResponse {
            address: alice_addr.encode(),
            utxos: vec![UtxoEntry {
                txid: pay.txid().to_hex(),
                index: 1,
                asset: native.to_hex(),
                amount: 990_000,
                height: 2,
            }],
            tip: tip_of(&b2),
            more: false,
        },
    );
    out.json(
        r,
        "stream-tx",
        &StreamMessage::AddressTx {
            address: alice_addr.encode(),
            txid: pay.txid().to_hex(),
            status: confirmed,
        },
    );
    out.json(
        r,
        "stream-reorg",
        &StreamMessage::Reorg {
            fork_point: BlockRef {
                height: 1,
                hash: b1.id().to_hex(),
            },
            tip: tip_of(&b2),
        },
    );
    out.json(
        r,
        "error",
        &ApiError::new("double_spend", "input 0 is spent by a pooled transaction"),
    );

    // Requests the gateway parses.
    let q = "api_request";
    let locator = vec![b2.id().to_hex(), genesis.id().to_hex()];
    out.json(
        q,
        "headers",
        &HeadersRequest {
            locator: locator.clone(),
            limit: Some(2000),
        },
    );
    out.json(
        q,
        "blocks",
        &BlocksRequest {
            locator,
            limit: None,
        },
    );
    out.json(
        q,
        "submit",
        &SubmitTxRequest {
            tx: hex::encode(pay.encode()),
        },
    );
    out.json(
        q,
        "faucet",
        &FaucetRequest {
            address: alice_addr.encode(),
            asset: "EURT".into(),
            amount: 1000,
        },
    );
    out.json(
        q,
        "reorg",
        &ReorgRequest {
            depth: 1,
            include_txs: vec![hex::encode(burn.encode())],
        },
    );
    out.json(
        q,
        "subscribe",
        &ClientMessage::Subscribe {
            addresses: vec![alice_addr.encode()],
        },
    );
    out.write(
        q,
        "range.query",
        query(&BlockRangeQuery {
            from: 3,
            limit: Some(10),
        })
        .as_bytes(),
    );
    out.write(
        q,
        "mempool.query",
        query(&MempoolQuery {
            since: 5,
            limit: None,
        })
        .as_bytes(),
    );

    println!("wrote {} seeds to {}", out.count, out.root.display());
}

fn query<T: Serialize>(value: &T) -> String {
    serde_urlencoded::to_string(value).expect("serialize a query")
}
