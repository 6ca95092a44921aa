//! The command layer under Tauri's mock runtime: what the UI gets back for
//! each gateway situation. A one-shot HTTP responder on loopback plays the
//! gateway so each answer (good, corrupt, absent) can be chosen exactly.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;

use notch_app::AppState;
use notch_ipc::{GatewayStatus, command};
use tauri::test::{INVOKE_KEY, mock_builder, mock_context, noop_assets};

/// Serves `body` with `status` to every connection, on a fresh port.
fn responder(status: &'static str, body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn gateway_status(gateway_url: &str) -> Result<GatewayStatus, serde_json::Value> {
    let app = notch_app::with_commands(mock_builder())
        .manage(AppState::new(gateway_url).unwrap())
        .build(mock_context(noop_assets()))
        .unwrap();
    let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    tauri::test::get_ipc_response(
        &webview,
        tauri::webview::InvokeRequest {
            cmd: command::GATEWAY_STATUS.into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: tauri::ipc::InvokeBody::default(),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|body| body.deserialize::<GatewayStatus>().unwrap())
}

#[test]
fn a_live_gateway_is_reported_connected_with_its_tip() {
    let info = serde_json::json!({
        "network": "sandbox",
        "authority_key": "00".repeat(32),
        "assets": [{ "id": "11".repeat(32), "symbol": "NOTE", "name": "Note", "decimals": 8, "native": true }],
        "tip": { "height": 42, "hash": "22".repeat(32), "time": 1_700_000_000 },
        "sandbox": true
    });
    let url = responder("200 OK", info.to_string());
    match gateway_status(&url).unwrap() {
        GatewayStatus::Connected {
            network,
            tip_height,
            sandbox,
            ..
        } => {
            assert_eq!(network, "sandbox");
            assert_eq!(tip_height, 42);
            assert!(sandbox);
        }
        other => panic!("expected connected, got {other:?}"),
    }
}

#[test]
fn a_corrupt_answer_is_reported_not_trusted() {
    let url = responder("200 OK", r#"{"network": 7}"#.into());
    match gateway_status(&url).unwrap() {
        GatewayStatus::Unreachable {
            reason, since_unix, ..
        } => {
            assert!(
                reason.contains("not valid"),
                "reason says the answer is invalid: {reason}"
            );
            assert!(since_unix > 0);
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[test]
fn a_refusal_carries_the_gateways_own_words() {
    let url = responder(
        "503 Service Unavailable",
        r#"{"code":"maintenance","message":"back in five minutes"}"#.into(),
    );
    match gateway_status(&url).unwrap() {
        GatewayStatus::Unreachable { reason, .. } => {
            assert!(reason.contains("back in five minutes"), "{reason}")
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[test]
fn a_silent_gateway_is_unreachable_since_the_first_failure() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let app = notch_app::with_commands(mock_builder())
        .manage(AppState::new(&url).unwrap())
        .build(mock_context(noop_assets()))
        .unwrap();
    let state = tauri::Manager::state::<AppState>(&app);
    let first = tauri::async_runtime::block_on(state.refresh_status());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = tauri::async_runtime::block_on(state.refresh_status());
    match (first, second) {
        (
            GatewayStatus::Unreachable { since_unix: a, .. },
            GatewayStatus::Unreachable { since_unix: b, .. },
        ) => assert_eq!(a, b, "'since' stays at the first failure"),
        other => panic!("expected unreachable twice, got {other:?}"),
    }
}

#[test]
fn a_bad_gateway_url_is_refused_up_front() {
    let err = AppState::new("ftp://example").err().unwrap();
    assert_eq!(err.code, "bad_gateway_url");
}
