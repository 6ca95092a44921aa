//! The mirror API's JSON answers as the wallet parses them from a gateway
//! (`serde_json::from_slice` in core/src/gateway.rs, the stream's text frames), each with a
//! JSON round trip, then what the wallet does next with the fields: hex of headers, blocks and
//! transactions decoded and checked, ids, keys and addresses parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use notch_fuzz::{
    authority, check_address, check_block, check_header, check_hex_ids, check_transaction,
    from_hex, json_round_trip,
};
use notch_protocol::api::{
    ApiError, BlockEntry, BlockRef, BlocksResponse, FaucetResponse, HeadersResponse,
    HealthResponse, LedgerInfo, MempoolDelta, MineResponse, ReorgResponse, StreamMessage,
    SubmitTxResponse, TipInfo, TxResponse, TxStatus, TxStatusResponse, UtxosResponse,
};
use notch_protocol::{Network, verify_header_chain};

fn tip(t: &TipInfo) {
    check_hex_ids(&t.hash);
}

fn block_ref(r: &BlockRef) {
    check_hex_ids(&r.hash);
}

fn status(s: &TxStatus) {
    if let TxStatus::Confirmed { block_id, .. } | TxStatus::Final { block_id, .. } = s {
        check_hex_ids(block_id);
    }
}

fn block_entry(e: &BlockEntry) {
    check_hex_ids(&e.id);
    if let Some(block) = from_hex(&e.hex).and_then(|b| check_block(&b)) {
        let _ = block.id().to_hex().eq_ignore_ascii_case(&e.id);
    }
}

fn tx_hex(txid: &str, hex: &str) {
    check_hex_ids(txid);
    if let Some(tx) = from_hex(hex).and_then(|b| check_transaction(&b)) {
        let _ = tx.txid().to_hex() == txid;
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(info) = json_round_trip::<LedgerInfo>(data) {
        let _ = Network::from_name(&info.network);
        check_hex_ids(&info.authority_key);
        for a in &info.assets {
            check_hex_ids(&a.id);
            check_hex_ids(&a.issuer);
        }
        tip(&info.tip);
    }
    json_round_trip::<HealthResponse>(data);
    if let Some(r) = json_round_trip::<HeadersResponse>(data) {
        if let Some(fp) = &r.fork_point {
            block_ref(fp);
        }
        tip(&r.tip);
        let headers: Vec<_> = r
            .headers
            .iter()
            .filter_map(|e| {
                check_hex_ids(&e.id);
                from_hex(&e.hex).and_then(|b| check_header(&b))
            })
            .collect();
        let _ = verify_header_chain(None, &headers, &authority());
        if let Some((first, rest)) = headers.split_first() {
            let _ = verify_header_chain(Some(first), rest, &authority());
        }
    }
    if let Some(r) = json_round_trip::<BlocksResponse>(data) {
        if let Some(fp) = &r.fork_point {
            block_ref(fp);
        }
        tip(&r.tip);
        r.blocks.iter().for_each(block_entry);
    }
    if let Some(e) = json_round_trip::<BlockEntry>(data) {
        block_entry(&e);
    }
    if let Some(r) = json_round_trip::<SubmitTxResponse>(data) {
        check_hex_ids(&r.txid);
        status(&r.status);
    }
    if let Some(r) = json_round_trip::<TxResponse>(data) {
        status(&r.status);
        tx_hex(&r.txid, r.hex.as_deref().unwrap_or(""));
    }
    if let Some(r) = json_round_trip::<TxStatusResponse>(data) {
        check_hex_ids(&r.txid);
        status(&r.status);
    }
    if let Some(d) = json_round_trip::<MempoolDelta>(data) {
        for c in &d.changes {
            tx_hex(&c.txid, c.hex.as_deref().unwrap_or(""));
        }
    }
    if let Some(r) = json_round_trip::<UtxosResponse>(data) {
        check_address(&r.address);
        tip(&r.tip);
        for u in &r.utxos {
            check_hex_ids(&u.txid);
            check_hex_ids(&u.asset);
        }
    }
    if let Some(m) = json_round_trip::<StreamMessage>(data) {
        match &m {
            StreamMessage::Hello { tip: t } | StreamMessage::Tip { tip: t } => tip(t),
            StreamMessage::Reorg { fork_point, tip: t } => {
                block_ref(fork_point);
                tip(t);
            }
            StreamMessage::Subscribed { addresses } => {
                for a in addresses {
                    check_address(a);
                }
            }
            StreamMessage::AddressTx {
                address,
                txid,
                status: s,
            } => {
                check_address(address);
                check_hex_ids(txid);
                status(s);
            }
            StreamMessage::Lagged { .. } | StreamMessage::Error { .. } => {}
        }
    }
    json_round_trip::<ApiError>(data);
    if let Some(r) = json_round_trip::<FaucetResponse>(data) {
        check_hex_ids(&r.txid);
        status(&r.status);
    }
    if let Some(r) = json_round_trip::<MineResponse>(data) {
        r.mined.iter().for_each(block_ref);
        tip(&r.tip);
    }
    if let Some(r) = json_round_trip::<ReorgResponse>(data) {
        block_ref(&r.fork_point);
        tip(&r.old_tip);
        tip(&r.tip);
        r.returned_to_pool.iter().for_each(|t| check_hex_ids(t));
        r.dropped.iter().for_each(|t| check_hex_ids(t));
    }
});
