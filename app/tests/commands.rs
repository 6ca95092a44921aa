//! The command layer under Tauri's mock runtime: what the UI gets back for
//! each gateway situation. A one-shot HTTP responder on loopback plays the
//! gateway so each answer (good, corrupt, absent) can be chosen exactly.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;

use common::{Harness, ledger_info, responder};

use notch_app::AppState;
use notch_ipc::{GatewayStatus, command};
use tauri::test::{INVOKE_KEY, mock_builder, mock_context, noop_assets};

fn gateway_status(gateway_url: &str) -> Result<GatewayStatus, serde_json::Value> {
    let app = notch_app::with_commands(mock_builder())
        .manage(AppState::new(gateway_url, std::env::temp_dir().join("notch-app-unused")).unwrap())
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
        .manage(AppState::new(&url, std::env::temp_dir().join("notch-app-unused")).unwrap())
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
    let err = AppState::new("ftp://example", std::env::temp_dir())
        .err()
        .unwrap();
    assert_eq!(err.code, "bad_gateway_url");
}

// ---- the wallet commands, with a temp data dir and an in-memory secret
// store injected (the real app uses the OS keystore only): see common/ ----

use notch_ipc::{NewPhrase, ReceiveView, WalletState, code};

#[test]
fn a_bad_recovery_phrase_is_refused_with_its_reason() {
    let h = Harness::new(&responder("200 OK", ledger_info().to_string()));
    let e = h.err(
        command::RESTORE_WALLET,
        serde_json::json!({ "args": { "phrase": "abandon abandon banana" } }),
    );
    assert_eq!(e.code, code::BAD_PHRASE);
    assert!(e.message.contains("12 or 24 words"), "{}", e.message);
    let e = h.err(
        command::RESTORE_WALLET,
        serde_json::json!({ "args": { "phrase": "abandon ".repeat(12) } }),
    );
    assert_eq!(e.code, code::BAD_PHRASE);
}

#[test]
fn commands_need_a_wallet_and_say_so() {
    let h = Harness::new(&responder("200 OK", ledger_info().to_string()));
    let _ = h.call(command::APP_STATUS, serde_json::json!({})).unwrap();
    for cmd in [
        command::BALANCES,
        command::RECEIVE_ADDRESS,
        command::UNUSED_ADDRESS,
        command::NOTIFICATIONS,
    ] {
        assert_eq!(
            h.err(cmd, serde_json::json!({})).code,
            code::NO_WALLET,
            "{cmd}"
        );
    }
    let e = h.err(
        command::FINISH_CREATE,
        serde_json::json!({ "args": { "answers": [] } }),
    );
    assert_eq!(e.code, code::NO_PENDING_PHRASE);
    let e = h.err(
        command::BEGIN_CREATE,
        serde_json::json!({ "args": { "words": 13 } }),
    );
    assert_eq!(e.code, code::INVALID);
}

#[test]
fn a_wrong_backup_word_does_not_create_the_wallet() {
    let h = Harness::new(&responder("200 OK", ledger_info().to_string()));
    let _ = h.call(command::APP_STATUS, serde_json::json!({})).unwrap();
    let phrase: NewPhrase = serde_json::from_value(
        h.call(
            command::BEGIN_CREATE,
            serde_json::json!({ "args": { "words": 24 } }),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(phrase.words.len(), 24);
    let e = h.err(
        command::FINISH_CREATE,
        serde_json::json!({ "args": { "answers": ["wrong", "words", "here"] } }),
    );
    assert_eq!(e.code, code::BACKUP_MISMATCH);
    assert_eq!(
        h.err(command::BALANCES, serde_json::json!({})).code,
        code::NO_WALLET
    );
}

#[test]
fn a_created_wallet_validates_addresses_and_amounts() {
    let h = Harness::new(&responder("200 OK", ledger_info().to_string()));
    let status = h.create_wallet();
    assert!(
        matches!(&status.wallet, WalletState::Open { network, .. } if network == "sandbox"),
        "{status:?}"
    );

    // A fresh address with its QR code; it validates.
    let receive: ReceiveView = serde_json::from_value(
        h.call(command::RECEIVE_ADDRESS, serde_json::json!({}))
            .unwrap(),
    )
    .unwrap();
    assert!(receive.qr_svg.contains("<svg"), "an SVG QR code");
    // Opening Receive again shows the same unpaid address; only "New
    // address" makes another.
    let shown = |cmd: &str| -> String {
        serde_json::from_value::<ReceiveView>(h.call(cmd, serde_json::json!({})).unwrap())
            .unwrap()
            .address
    };
    let first = shown(command::UNUSED_ADDRESS);
    assert_eq!(first, shown(command::UNUSED_ADDRESS));
    let fresh = shown(command::RECEIVE_ADDRESS);
    assert_ne!(fresh, first);
    assert_eq!(
        shown(command::UNUSED_ADDRESS),
        first,
        "the oldest unpaid one"
    );
    h.call(
        command::VALIDATE_ADDRESS,
        serde_json::json!({ "args": { "address": receive.address } }),
    )
    .unwrap();

    // Bad addresses, each with its code.
    let e = h.err(
        command::VALIDATE_ADDRESS,
        serde_json::json!({ "args": { "address": "nsb1notanaddress" } }),
    );
    assert_eq!(e.code, code::BAD_ADDRESS);
    let key = notch_core::protocol::ed25519_dalek::SigningKey::from_bytes(&[7; 32])
        .verifying_key()
        .to_bytes();
    let main_address = notch_core::protocol::Address::new(
        notch_core::Network::Main,
        notch_core::protocol::PublicKey::from_hex(
            &key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        )
        .unwrap(),
    )
    .encode();
    let e = h.err(
        command::VALIDATE_ADDRESS,
        serde_json::json!({ "args": { "address": main_address } }),
    );
    assert_eq!(e.code, code::WRONG_NETWORK);

    // Amounts are checked against the asset metadata the wallet pinned
    // from its gateway: a sync pass pins it once the chain checks pass.
    let _ = h.call(command::SYNC_NOW, serde_json::json!({}));

    // Amounts against the asset's decimals.
    let ok = h
        .call(
            command::VALIDATE_AMOUNT,
            serde_json::json!({ "args": { "amount": "1.5", "asset": "EURT" } }),
        )
        .unwrap();
    assert_eq!(ok, "1.50");
    let e = h.err(
        command::VALIDATE_AMOUNT,
        serde_json::json!({ "args": { "amount": "1.234", "asset": "EURT" } }),
    );
    assert_eq!(e.code, code::BAD_AMOUNT);
    assert!(e.message.contains("2 decimal places"), "{}", e.message);
    let e = h.err(
        command::VALIDATE_AMOUNT,
        serde_json::json!({ "args": { "amount": "1.5", "asset": "XYZ" } }),
    );
    assert_eq!(e.code, code::UNKNOWN_ASSET);
    // The native asset by default.
    let ok = h
        .call(
            command::VALIDATE_AMOUNT,
            serde_json::json!({ "args": { "amount": "0.00000001", "asset": null } }),
        )
        .unwrap();
    assert_eq!(ok, "0.00000001");

    // A second wallet cannot be made over the first.
    let e = h.err(
        command::BEGIN_CREATE,
        serde_json::json!({ "args": { "words": 12 } }),
    );
    assert_eq!(e.code, code::WALLET_EXISTS);
    // Confirming an unknown payment is refused.
    let e = h.err(
        command::CONFIRM_SEND,
        serde_json::json!({ "args": { "txid": "ab".repeat(32) } }),
    );
    assert_eq!(e.code, code::UNKNOWN_PROPOSAL);
    // A payment to a bad address is refused before anything is signed.
    let e = h.err(
        command::PREPARE_SEND,
        serde_json::json!({ "args": { "recipients": [{ "address": "nope", "amount": "1", "asset": null }] } }),
    );
    assert!(
        [code::BAD_ADDRESS, code::NOT_SYNCED].contains(&e.code.as_str()),
        "{e:?}"
    );
    // History and notifications of a new wallet are empty, not errors:
    // an empty page.
    let page = h
        .call(
            command::HISTORY,
            serde_json::json!({ "args": { "query": {} } }),
        )
        .unwrap();
    assert_eq!(
        page,
        serde_json::json!({ "rows": [], "next": null, "total": 0, "top": null })
    );
    // A page request with a cursor, a skip and a limit past the cap.
    let page: notch_ipc::HistoryPageView = serde_json::from_value(
        h.call(
            command::HISTORY,
            serde_json::json!({ "args": { "query": { "incoming": false }, "before": "99.1", "skip": 3, "limit": 100000 } }),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(page, notch_ipc::HistoryPageView::default());
    // What is not a cursor is refused, not taken for the top.
    let e = h.err(
        command::HISTORY,
        serde_json::json!({ "args": { "query": {}, "before": "not-a-cursor" } }),
    );
    assert!(e.message.contains("cursor"), "{e:?}");
    // The index of the rows, raw bytes: none yet, for any query; a bad
    // cursor is refused the same way.
    for query in [
        serde_json::json!({}),
        serde_json::json!({ "asset": "EURT", "incoming": true, "search": "ab" }),
        serde_json::json!({ "asset": "no-such-asset" }),
    ] {
        let bytes = h
            .call_bytes(
                command::HISTORY_INDEX,
                serde_json::json!({ "args": { "query": query, "top": null } }),
            )
            .unwrap();
        let index = notch_ipc::history_index::HistoryIndexView::parse(bytes).unwrap();
        assert!(index.is_empty());
    }
    let e = h
        .call_bytes(
            command::HISTORY_INDEX,
            serde_json::json!({ "args": { "query": {}, "top": "not-a-cursor" } }),
        )
        .unwrap_err();
    assert!(e.message.contains("cursor"), "{e:?}");
}

/// The index names states by their place in a list of notch-ipc's: every
/// state of the core has one.
#[test]
fn every_transaction_state_has_a_code_in_the_history_index() {
    for state in notch_core::store::TxState::ALL {
        assert!(
            notch_ipc::history_index::HISTORY_STATES.contains(&state.as_str()),
            "{state:?}"
        );
    }
    assert_eq!(
        notch_core::store::TxState::ALL.len(),
        notch_ipc::history_index::HISTORY_STATES.len()
    );
}

#[test]
fn the_history_exports_as_core_csv() {
    let h = Harness::new(&responder("200 OK", ledger_info().to_string()));
    h.create_wallet();
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("sub").join("history.csv");
    let written = h
        .call(
            command::EXPORT_CSV,
            serde_json::json!({ "args": { "query": {}, "path": path.display().to_string() } }),
        )
        .unwrap();
    assert_eq!(written, path.display().to_string());
    // A new wallet: the header alone, in core's format.
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\r\n", notch_core::export::HEADER.join(","))
    );
}
