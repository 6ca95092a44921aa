//! Malformed, oversized and hostile requests get a 4xx JSON `ApiError`, never a 500 and
//! never a crash; sandbox routes do not exist outside sandbox mode.

mod common;

use common::*;
use notch_protocol::api::*;
use notch_protocol::{Address, Network, public_key};

fn expect(r: (u16, serde_json::Value), status: u16, code: &str, what: &str) {
    assert_eq!(r.0, status, "{what}: {}", r.1);
    assert_eq!(r.1["code"].as_str(), Some(code), "{what}: {}", r.1);
    assert!(
        r.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {}",
        r.1
    );
}

#[test]
fn bad_requests_get_json_errors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::sandbox(&dir.path().join("gw"));
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

#[test]
fn sandbox_routes_do_not_exist_outside_sandbox() {
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
