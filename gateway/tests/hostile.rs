//! Malformed, oversized and hostile requests get a 4xx JSON `ApiError`, never a 500 and
//! never a crash, on every route of openapi.yaml; sandbox routes do not exist outside
//! sandbox mode; the batch route and the binary blocks form do what PROTOCOL.md says.
//! Slow and many clients: `hostile_load.rs`.

mod common;

use common::*;
use notch_protocol::api::*;
use notch_protocol::ed25519_dalek::SigningKey;
use notch_protocol::{Address, Block, Network, OutPoint, Transaction, public_key, verify_block};

fn expect(r: (u16, serde_json::Value), status: u16, code: &str, what: &str) {
    assert_eq!(r.0, status, "{what}: {}", r.1);
    assert_eq!(r.1["code"].as_str(), Some(code), "{what}: {}", r.1);
    assert!(
        r.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {}",
        r.1
    );
}

both_backends!(bad_requests_get_json_errors);
fn bad_requests_get_json_errors(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::sandbox(&b, &dir.path().join("gw"));
    let c = client();
    let json = |p: &str, body: &str| {
        c.post(g.url(p))
            .header("content-type", "application/json")
            .body(body.to_owned())
    };

    expect(
        send(json("/v1/tx", "{not json")),
        400,
        "malformed",
        "malformed JSON",
    );
    expect(
        send(json("/v1/tx", "{\"tx\": 5}")),
        400,
        "malformed",
        "wrong JSON type",
    );
    expect(
        send(json("/v1/tx", "{}")),
        400,
        "malformed",
        "missing field",
    );
    expect(
        send(json("/v1/tx", "{\"tx\": \"xyz\"}")),
        400,
        "malformed",
        "bad hex",
    );
    expect(
        send(json("/v1/tx", "{\"tx\": \"0100\"}")),
        400,
        "malformed",
        "truncated tx",
    );
    expect(
        send(json("/v1/tx", "{\"tx\": \"\"}")),
        400,
        "malformed",
        "empty tx",
    );
    let big = format!("{{\"tx\": \"{}\"}}", "00".repeat(200_000));
    expect(
        send(json("/v1/tx", &big)),
        413,
        "too_large",
        "oversize body",
    );
    let big_tx = format!("{{\"tx\": \"{}\"}}", "00".repeat(70_000));
    expect(
        send(json("/v1/tx", &big_tx)),
        413,
        "too_large",
        "oversize transaction",
    );
    expect(
        send(c.post(g.url("/v1/tx")).body("{\"tx\":\"00\"}")),
        415,
        "unsupported_media_type",
        "no content type",
    );
    expect(
        send(c.get(g.url("/nope"))),
        404,
        "not_found",
        "unknown route",
    );
    expect(
        send(c.get(g.url("/v1/nope/deeper"))),
        404,
        "not_found",
        "unknown route under /v1",
    );
    expect(
        send(c.delete(g.url("/v1/info"))),
        405,
        "method_not_allowed",
        "wrong method",
    );
    expect(
        send(c.get(g.url("/v1/tx"))),
        405,
        "method_not_allowed",
        "GET on submit",
    );
    expect(
        send(c.get(g.url("/v1/tx/abc"))),
        400,
        "malformed",
        "bad txid",
    );
    expect(
        send(c.get(g.url(&format!("/v1/tx/{}", "00".repeat(32))))),
        404,
        "not_found",
        "unknown txid",
    );
    expect(
        send(c.get(g.url("/v1/blocks?from=-1"))),
        400,
        "malformed",
        "negative height",
    );
    expect(
        send(c.get(g.url("/v1/blocks?from=0&limit=0"))),
        400,
        "bad_request",
        "zero limit",
    );
    expect(
        send(c.get(g.url("/v1/blocks"))),
        400,
        "malformed",
        "missing from",
    );
    expect(
        send(c.get(g.url("/v1/mempool?since=x"))),
        400,
        "malformed",
        "bad since",
    );
    expect(
        send(c.get(g.url("/v1/block/zz"))),
        400,
        "malformed",
        "bad block id",
    );
    expect(
        send(c.get(g.url("/v1/stream"))),
        400,
        "bad_request",
        "stream without upgrade",
    );
    let many: Vec<String> = (0..200).map(|_| "00".repeat(32)).collect();
    expect(
        send(c.post(g.url("/v1/headers")).json(&HeadersRequest {
            locator: many,
            limit: None,
        })),
        400,
        "bad_request",
        "locator too long",
    );
    expect(
        send(c.post(g.url("/v1/headers")).json(&HeadersRequest {
            locator: vec!["00".into()],
            limit: None,
        })),
        400,
        "malformed",
        "bad locator hash",
    );

    // Addresses.
    let faucet = |address: String| {
        send(c.post(g.url("/v1/sandbox/faucet")).json(&FaucetRequest {
            address,
            asset: "NOTE".into(),
            amount: 1,
        }))
    };
    let good = address(&key(1));
    let mut typo: Vec<char> = good.chars().collect();
    typo[12] = if typo[12] == 'q' { 'p' } else { 'q' };
    expect(
        faucet(typo.into_iter().collect()),
        400,
        "bad_address",
        "address typo",
    );
    expect(faucet("hello".into()), 400, "bad_address", "not an address");
    expect(
        faucet(Address::new(Network::Main, public_key(&key(1))).encode()),
        400,
        "wrong_network",
        "main-net address",
    );
    expect(
        send(c.get(g.url("/v1/address/nsb1xyz/utxos"))),
        400,
        "bad_address",
        "utxos of a bad address",
    );
    expect(
        send(c.post(g.url("/v1/sandbox/faucet")).json(&FaucetRequest {
            address: good.clone(),
            asset: "GOLD".into(),
            amount: 1,
        })),
        400,
        "unknown_asset",
        "unknown asset",
    );
    expect(
        send(c.post(g.url("/v1/sandbox/faucet")).json(&FaucetRequest {
            address: good.clone(),
            asset: "NOTE".into(),
            amount: 0,
        })),
        400,
        "zero_amount",
        "zero amount",
    );
    expect(
        send(json("/v1/sandbox/mine", "{\"blocks\": 0}")),
        400,
        "bad_request",
        "mine 0",
    );
    expect(
        send(json("/v1/sandbox/mine", "{\"blocks\": 100000}")),
        400,
        "bad_request",
        "mine too many",
    );
    expect(
        send(json(
            "/v1/sandbox/reorg",
            "{\"depth\": 1, \"include_txs\": [\"zz\"]}",
        )),
        400,
        "malformed",
        "reorg bad hex",
    );

    // Raw garbage over TCP does not kill it.
    {
        use std::io::{Read, Write};
        let addr = g.base.trim_start_matches("http://").to_owned();
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let _ = s.write_all(b"\x00\x01\x02 GARBAGE\r\n\r\n");
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
        }
    }
    let h: HealthResponse = get(&g, "/v1/health");
    assert_eq!(h.status, "ok");
    faucet(good);
}

both_backends!(sandbox_routes_do_not_exist_outside_sandbox);
fn sandbox_routes_do_not_exist_outside_sandbox(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let key_file = dir.path().join("authority.key");
    std::fs::write(&key_file, hex::encode([5u8; 32])).unwrap_or_else(|e| panic!("{e}"));
    let assets = dir.path().join("assets.json");
    let issuer = public_key(&key(9)).to_hex();
    std::fs::write(
        &assets,
        format!(r#"[{{"symbol":"TST","name":"Test coin","decimals":8,"issuer":"{issuer}","native":true}}]"#),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::spawn(
        &b,
        &dir.path().join("gw"),
        &[
            "--network",
            "test",
            "--authority-key-file",
            key_file.to_str().unwrap_or_default(),
            "--assets-file",
            assets.to_str().unwrap_or_default(),
            "--block-interval",
            "0",
        ],
    );
    let i = info(&g);
    assert_eq!(
        (i.network.as_str(), i.sandbox, i.assets.len()),
        ("test", false, 1)
    );
    let c = client();
    for path in [
        "/v1/sandbox/faucet",
        "/v1/sandbox/mine",
        "/v1/sandbox/reorg",
    ] {
        expect(
            send(c.post(g.url(path)).json(&serde_json::json!({}))),
            404,
            "not_found",
            path,
        );
    }
}

/// The paths of gateway/openapi.yaml with their methods (upper case).
fn spec_routes() -> Vec<(String, Vec<String>)> {
    let spec = include_str!("../openapi.yaml");
    let mut routes: Vec<(String, Vec<String>)> = Vec::new();
    for line in spec.lines() {
        if let Some(path) = line.strip_prefix("  /v1/") {
            let path = format!("/v1/{}", path.trim_end_matches(':'));
            routes.push((path, Vec::new()));
        } else if let Some(m) = line
            .strip_prefix("    ")
            .and_then(|l| l.strip_suffix(':'))
            .filter(|m| ["get", "post", "put", "delete", "patch"].contains(m))
            && let Some(last) = routes.last_mut()
        {
            last.1.push(m.to_ascii_uppercase());
        }
    }
    assert!(routes.len() >= 15, "openapi.yaml: {routes:?}");
    routes
}

/// Checks an answer to a hostile request: never a 5xx, and any error is an `ApiError`.
/// `None` when the connection was closed while the request was still being sent (a body
/// over the limit: the gateway answers 413 and closes without reading the rest, and the
/// client may see the close before the answer).
fn hostile(
    c: &reqwest::blocking::Client,
    req: reqwest::blocking::Request,
    what: &str,
    may_be_cut: bool,
) -> Option<u16> {
    let resp = match c.execute(req) {
        Ok(r) => r,
        Err(e) if may_be_cut => {
            eprintln!("{what}: cut off ({e})");
            return None;
        }
        Err(e) => panic!("{what}: no answer: {e}"),
    };
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = resp.bytes().unwrap_or_default();
    assert!(status < 500, "{what}: HTTP {status}: {bytes:?}");
    if status >= 400 {
        assert!(
            ct.starts_with("application/json"),
            "{what}: {status} as {ct:?}"
        );
        let body: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{what}: {status} body is not JSON: {e}"));
        assert_api_error(status, &body, what);
    }
    Some(status)
}

both_backends!(every_route_refuses_hostile_input_with_json);
/// Every path of openapi.yaml, every method, with malformed and oversized bodies, wrong
/// content types and hostile parameters: always a 4xx JSON `ApiError` (or a 200 where the
/// input happens to be valid), never a 5xx or a crash; afterwards the gateway works.
fn every_route_refuses_hostile_input_with_json(b: Backend) {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut g = Gateway::sandbox(&b, &dir.path().join("gw"));
    let c = client();
    let huge = "9".repeat(400);
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("not json", b"{not json".to_vec()),
        ("null", b"null".to_vec()),
        ("array", b"[]".to_vec()),
        ("empty object", b"{}".to_vec()),
        ("string", b"\"x\"".to_vec()),
        ("huge number", huge.clone().into_bytes()),
        ("deep nesting", nested.into_bytes()),
        ("binary", (0u8..=255).cycle().take(4096).collect()),
        ("bad utf-8", b"{\"tx\": \"\xff\xfe\"}".to_vec()),
        ("wrong types", br#"{"tx":1,"txs":{},"locator":"x","limit":-1,"address":[],"asset":null,"amount":"1","blocks":1e99,"depth":-5,"include_txs":7}"#.to_vec()),
        ("big numbers", format!(r#"{{"locator":[],"limit":{huge},"blocks":{huge},"depth":{huge},"amount":{huge}}}"#).into_bytes()),
        ("control chars", "{\"tx\": \"\u{1b}[31m\u{0}\n\"}".as_bytes().to_vec()),
        ("oversize", format!("{{\"tx\": \"{}\"}}", "ab".repeat(2_600_000)).into_bytes()),
    ];
    let params = [
        "zz".to_owned(),
        "00".repeat(32),
        "x".repeat(3000),
        "%00%0a%ff%fe".to_owned(),
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
        "%C3%A9%F0%9F%98%80".to_owned(),
        "nsb1qwss00lnecgtu8tsm5vwwj7qn9n7f43snwjs6hcamjrxgyj4xxuqnp7gxj".to_owned(),
    ];
    let queries = [
        "",
        "?from=-1",
        "?from=abc",
        "?from=18446744073709551616",
        "?from=0&limit=0",
        "?from=0&limit=99999999999",
        "?from=0&from=1",
        "?%zz=%zz",
        "?since=x&limit=y",
        "?from[]=1",
    ];
    let long_query = format!("?from=0&pad={}", "a".repeat(20_000));
    let mut requests = 0;
    for (template, methods) in spec_routes() {
        let mut paths: Vec<String> = Vec::new();
        if template.contains('{') {
            for p in &params {
                let start = template.find('{').unwrap_or(0);
                let end = template.find('}').map_or(template.len(), |e| e + 1);
                paths.push(format!("{}{}{}", &template[..start], p, &template[end..]));
            }
        } else {
            paths.push(template.clone());
        }
        for path in &paths {
            // Methods the route does not have.
            for m in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
                if methods.iter().any(|x| x == m) {
                    continue;
                }
                let method =
                    reqwest::Method::from_bytes(m.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
                let req = c
                    .request(method, g.url(path))
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"));
                let status = hostile(&c, req, &format!("{m} {path}"), false);
                assert_eq!(status, Some(405), "{m} {path}");
                requests += 1;
            }
            for m in &methods {
                if m == "GET" {
                    for q in queries.iter().copied().chain([long_query.as_str()]) {
                        let req = c
                            .get(g.url(&format!("{path}{q}")))
                            .build()
                            .unwrap_or_else(|e| panic!("{e}"));
                        hostile(
                            &c,
                            req,
                            &format!("GET {path}{}", &q[..q.len().min(40)]),
                            false,
                        );
                        requests += 1;
                    }
                    continue;
                }
                for (what, body) in &bodies {
                    for ct in [
                        "application/json",
                        "text/plain",
                        "",
                        "application/json; charset=utf-8",
                    ] {
                        // A body the gateway refuses unread ends its connection: such a
                        // request gets a client of its own, so no later request meets
                        // the closed connection in a pool.
                        let oversize = *what == "oversize";
                        let own;
                        let c = if oversize {
                            own = client();
                            &own
                        } else {
                            &c
                        };
                        let mut req = c.post(g.url(path)).body(body.clone());
                        if !ct.is_empty() {
                            req = req.header("content-type", ct);
                        }
                        let req = req.build().unwrap_or_else(|e| panic!("{e}"));
                        let what = format!("POST {path} {what} as {ct:?}");
                        let Some(status) = hostile(c, req, &what, oversize) else {
                            continue;
                        };
                        if oversize && ct.starts_with("application/json") {
                            assert_eq!(status, 413, "{what}");
                        }
                        if ct == "text/plain" || ct.is_empty() {
                            assert_eq!(status, 415, "{what}");
                        }
                        requests += 1;
                    }
                }
            }
        }
    }
    // Headers that hyper itself refuses (431) close the connection without JSON: there is
    // no request to answer. It must not hurt the gateway.
    let big_header = c
        .get(g.url("/v1/health"))
        .header("x-pad", "a".repeat(64 * 1024))
        .send();
    if let Ok(r) = big_header {
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    assert!(g.alive(), "the gateway died");
    eprintln!("{requests} hostile requests in {:?}", started.elapsed());
    round_trip(&g);
}

/// Transactions for batch tests: `n` payments, each spending its own faucet coin.
fn payments(g: &Gateway, owner: &SigningKey, n: usize) -> Vec<Transaction> {
    let native = asset_id(&info(g), "NOTE");
    let coins: Vec<OutPoint> = (0..n)
        .map(|_| faucet(g, owner, "NOTE", 1_000_000))
        .collect();
    mine(g, 1);
    coins
        .into_iter()
        .enumerate()
        .map(|(i, coin)| {
            pay(
                native,
                owner,
                coin,
                1_000_000,
                public_key(&key(2)),
                10_000,
                i as u64,
            )
        })
        .collect()
}

fn batch(g: &Gateway, txs: &[String]) -> (u16, serde_json::Value) {
    send(
        client()
            .post(g.url("/v1/txs"))
            .json(&SubmitBatchRequest { txs: txs.to_vec() }),
    )
}

both_backends!(batch_submission_answers_each_transaction_and_is_idempotent);
/// `POST /v1/txs`: one result per transaction in order, a refused one with the error
/// `POST /v1/tx` gives; the same batch again gives the same txids with `duplicate: true`;
/// a request that is not a batch is a 4xx.
fn batch_submission_answers_each_transaction_and_is_idempotent(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::sandbox(&b, &dir.path().join("gw"));
    let owner = key(31);
    let txs = payments(&g, &owner, 20);
    let mut hexes: Vec<String> = txs.iter().map(|t| hex::encode(t.encode())).collect();
    // Bad ones in between: not hex, a truncated transaction, a bad signature, and a double
    // spend of the first transaction's coin.
    let mut forged = txs[1].clone();
    forged.signatures[0].0[0] ^= 1;
    let mut double = txs[0].clone();
    double.nonce += 1000;
    double.sign(&[&owner]).unwrap_or_else(|e| panic!("{e}"));
    // The forged one has txs[1]'s txid (signatures are not part of it) and takes its place.
    hexes[1] = hex::encode(forged.encode());
    hexes.insert(3, "zz".into());
    hexes.insert(5, "0100".into());
    hexes.push(hex::encode(double.encode()));
    let (http, body) = batch(&g, &hexes);
    assert_eq!(http, 200, "{body}");
    let first: SubmitBatchResponse = serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.results.len(), hexes.len());
    let mut accepted = Vec::new();
    for (i, r) in first.results.iter().enumerate() {
        match r {
            SubmitBatchResult::Ok(ok) => {
                assert!(!ok.duplicate, "#{i}");
                assert_eq!(ok.status, TxStatus::InPool);
                accepted.push(ok.txid.clone());
            }
            SubmitBatchResult::Err { txid, error } => {
                let e = serde_json::to_value(error).unwrap_or_else(|e| panic!("{e}"));
                assert_api_error(400, &e, &format!("batch #{i}"));
                match i {
                    3 | 5 => {
                        assert_eq!((txid.as_deref(), error.code.as_str()), (None, "malformed"))
                    }
                    1 => {
                        assert_eq!(txid.as_deref(), Some(forged.txid().to_hex().as_str()));
                        assert_eq!(error.code, "bad_signature");
                    }
                    _ => {
                        assert_eq!(i, hexes.len() - 1, "#{i}: {error:?}");
                        assert_eq!(error.code, "double_spend");
                        assert_eq!(txid.as_deref(), Some(double.txid().to_hex().as_str()));
                    }
                }
            }
        }
    }
    let expected: Vec<String> = txs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, t)| t.txid().to_hex())
        .collect();
    assert_eq!(accepted, expected, "accepted in order");
    // The same batch again: the same txids, now duplicates.
    let (http, body) = batch(&g, &hexes);
    assert_eq!(http, 200, "{body}");
    let again: SubmitBatchResponse = serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"));
    let dups: Vec<String> = again
        .results
        .iter()
        .filter_map(|r| match r {
            SubmitBatchResult::Ok(ok) => {
                assert!(ok.duplicate, "{ok:?}");
                Some(ok.txid.clone())
            }
            SubmitBatchResult::Err { .. } => None,
        })
        .collect();
    assert_eq!(dups, accepted);
    let mined = mine(&g, 1);
    assert!(mined.mined.len() == 1);
    for t in &txs[2..] {
        assert!(matches!(status(&g, &t.txid()), TxStatus::Confirmed { .. }));
    }

    // Not a batch: 4xx for the whole request.
    let c = client();
    expect(batch(&g, &[]), 400, "bad_request", "empty batch");
    let many = vec!["00".to_owned(); MAX_BATCH_TXS + 1];
    expect(batch(&g, &many), 413, "too_large", "too many transactions");
    let too_big = format!("{{\"txs\": [\"{}\"]}}", "00".repeat(3 * 1024 * 1024));
    expect(
        send(
            c.post(g.url("/v1/txs"))
                .header("content-type", "application/json")
                .body(too_big),
        ),
        413,
        "too_large",
        "body over the batch limit",
    );
    // Bigger than the default body limit but within the batch limit: a real batch.
    let within = vec![hex::encode(txs[2].encode()); 700];
    let (http, body) = batch(&g, &within);
    assert_eq!(http, 200, "{body}");
    expect(
        send(c.post(g.url("/v1/txs")).body("{\"txs\":[]}")),
        415,
        "unsupported_media_type",
        "no content type",
    );
    expect(
        send(
            c.post(g.url("/v1/txs"))
                .header("content-type", "application/json")
                .body("{\"txs\": 1}"),
        ),
        400,
        "malformed",
        "txs not a list",
    );
    round_trip(&g);
}

both_backends!(binary_blocks_carry_what_json_carries);
/// The binary blocks answer (both forms of `/v1/blocks`) carries exactly what the JSON one
/// carries, decodes with `wire::BlocksAnswer::decode`, and its blocks verify.
fn binary_blocks_carry_what_json_carries(b: Backend) {
    use notch_protocol::wire::BlocksAnswer;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::sandbox(&b, &dir.path().join("gw"));
    for i in 0..5u8 {
        faucet(&g, &key(40 + i), "EURT", 1_000 + u64::from(i));
        mine(&g, 1);
    }
    let c = client();
    let genesis: BlocksResponse = get(&g, "/v1/blocks?from=0&limit=1");
    let locator = vec![genesis.blocks[0].id.clone()];
    let forms: Vec<(
        &str,
        reqwest::blocking::RequestBuilder,
        reqwest::blocking::RequestBuilder,
    )> = vec![
        (
            "GET",
            c.get(g.url("/v1/blocks?from=1&limit=3")),
            c.get(g.url("/v1/blocks?from=1&limit=3")),
        ),
        (
            "POST",
            c.post(g.url("/v1/blocks")).json(&BlocksRequest {
                locator: locator.clone(),
                limit: None,
            }),
            c.post(g.url("/v1/blocks")).json(&BlocksRequest {
                locator,
                limit: None,
            }),
        ),
    ];
    for (what, json_req, bin_req) in forms {
        let json: BlocksResponse = json_req
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("{what} JSON: {e}"));
        let resp = bin_req
            .header("accept", "application/octet-stream")
            .send()
            .unwrap_or_else(|e| panic!("{what} binary: {e}"));
        assert_eq!(resp.status(), 200, "{what}");
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert_eq!(ct, "application/octet-stream", "{what}");
        assert_eq!(
            resp.headers().get("vary").and_then(|v| v.to_str().ok()),
            Some("accept")
        );
        let bytes = resp.bytes().unwrap_or_else(|e| panic!("{e}"));
        let binary = BlocksAnswer::decode(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(BlocksAnswer::try_from(&json), Ok(binary.clone()), "{what}");
        assert_eq!(binary.fork_point.map(|f| f.0), Some(0), "{what}");
        assert!(!binary.blocks.is_empty());
        for (b, e) in binary.blocks.iter().zip(&json.blocks) {
            let block = Block::decode(b).unwrap_or_else(|err| panic!("{what}: {err}"));
            assert_eq!(block.header.height, e.height);
            assert_eq!(verify_block(&block), Ok(()));
        }
        // Binary is about half the JSON.
        let json_len = serde_json::to_vec(&json).map(|v| v.len()).unwrap_or(0);
        assert!(
            bytes.len() * 2 < json_len + 400,
            "{} vs {json_len}",
            bytes.len()
        );
    }
    // Errors stay JSON even when binary was asked for.
    let r = send(
        c.get(g.url("/v1/blocks?from=0&limit=0"))
            .header("accept", "application/octet-stream"),
    );
    expect(r, 400, "bad_request", "binary zero limit");
    // JSON wins ties and is the default.
    let r = c
        .get(g.url("/v1/blocks?from=0"))
        .header("accept", "application/octet-stream, application/json")
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .starts_with("application/json")
    );
    round_trip(&g);
}
