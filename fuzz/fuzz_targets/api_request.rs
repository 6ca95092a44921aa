//! What the gateway parses from clients: the JSON request bodies (`ApiJson` in
//! gateway/src/http.rs: `serde_json::from_slice`), the stream's client messages and the query
//! strings (`ApiQuery`: `serde_urlencoded`), each with a round trip, then what the handlers do
//! next: locator hashes, addresses and transaction hex parsed and checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use notch_fuzz::{
    check_address, check_hex_ids, check_transaction, from_hex, json_round_trip, query_round_trip,
};
use notch_protocol::api::{
    BlockRangeQuery, BlocksRequest, ClientMessage, FaucetRequest, HeadersRequest, MempoolQuery,
    MineRequest, ReorgRequest, SubmitTxRequest,
};

fn tx_hex(hex: &str) {
    if let Some(bytes) = from_hex(hex) {
        check_transaction(&bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(r) = json_round_trip::<HeadersRequest>(data) {
        r.locator.iter().for_each(|h| check_hex_ids(h));
    }
    if let Some(r) = json_round_trip::<BlocksRequest>(data) {
        r.locator.iter().for_each(|h| check_hex_ids(h));
    }
    if let Some(r) = json_round_trip::<SubmitTxRequest>(data) {
        tx_hex(&r.tx);
    }
    if let Some(r) = json_round_trip::<FaucetRequest>(data) {
        check_address(&r.address);
        check_hex_ids(&r.asset);
    }
    json_round_trip::<MineRequest>(data);
    if let Some(r) = json_round_trip::<ReorgRequest>(data) {
        r.include_txs.iter().for_each(|t| tx_hex(t));
    }
    if let Some(m) = json_round_trip::<ClientMessage>(data) {
        let (ClientMessage::Subscribe { addresses } | ClientMessage::Unsubscribe { addresses }) =
            &m;
        for a in addresses {
            check_address(a);
        }
    }
    query_round_trip::<BlockRangeQuery>(data);
    query_round_trip::<MempoolQuery>(data);
});
