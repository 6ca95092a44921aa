//! Shared by the mock-runtime tests (`commands.rs`, `scan.rs`): a one-shot
//! HTTP responder that plays the gateway, and an app with a wallet in a
//! temp directory and an in-memory secret store, called like the UI does.

#![allow(clippy::unwrap_used)]
// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use notch_app::{AppState, Secrets};
use notch_core::secrets::MemorySecretStore;
use notch_ipc::{AppStatus, NewPhrase, WalletState, command};
use tauri::test::{INVOKE_KEY, mock_builder, mock_context, noop_assets};

/// Serves `body` with `status` to every connection, on a fresh port.
pub fn responder(status: &'static str, body: String) -> String {
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

/// A sandbox ledger with two assets whose ids are what the wallet checks
/// (H(issuer, symbol)) and a genesis signed by its authority, so a sync pass
/// verifies the chain and pins them. The responder serves this one body on
/// every path, so it is also the `/v1/headers`, `/v1/blocks` and
/// `/v1/mempool` answer (each reads its own fields).
pub fn ledger_info() -> serde_json::Value {
    use notch_core::protocol::ed25519_dalek::SigningKey;
    use notch_core::protocol::{AssetId, Block, Network, PublicKey};
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let issuer = PublicKey(SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes());
    let authority = SigningKey::from_bytes(&[3; 32]);
    let mut genesis = Block::build(Network::Sandbox, None, 1_700_000_000, 0, vec![]);
    genesis.header.sign(&authority);
    let id = genesis.id().to_hex();
    let issuer_hex = hex(&issuer.0);
    serde_json::json!({
        "network": "sandbox",
        "authority_key": hex(&authority.verifying_key().to_bytes()),
        "assets": [
            { "id": AssetId::derive(&issuer, "NOTE").to_hex(), "issuer": issuer_hex,
              "symbol": "NOTE", "name": "Note", "decimals": 8, "native": true },
            { "id": AssetId::derive(&issuer, "EURT").to_hex(), "issuer": issuer_hex,
              "symbol": "EURT", "name": "Euro token", "decimals": 2, "native": false }
        ],
        "tip": { "height": 0, "hash": id, "time": 1_700_000_000 },
        "sandbox": true,
        "fork_point": null,
        "headers": [{ "height": 0, "id": id, "hex": hex(&genesis.header.encode()) }],
        "blocks": [{ "height": 0, "id": id, "hex": hex(&genesis.encode()) }],
        "more": false,
        "reset": false,
        "changes": [],
        "seq": 0
    })
}

pub struct Harness {
    _dir: tempfile::TempDir,
    webview: tauri::WebviewWindow<tauri::test::MockRuntime>,
    _app: tauri::App<tauri::test::MockRuntime>,
}

impl Harness {
    pub fn new(gateway_url: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::with_secrets(
            gateway_url,
            dir.path().join("wallet"),
            Secrets::Given(Arc::new(MemorySecretStore::new())),
        )
        .unwrap()
        // Tally agents on loopback, on a free port each.
        .with_agent_listen("127.0.0.1:0");
        let app = notch_app::with_commands(mock_builder())
            .manage(state)
            .build(mock_context(noop_assets()))
            .unwrap();
        let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .unwrap();
        Harness {
            _dir: dir,
            webview,
            _app: app,
        }
    }

    /// The app, to listen for its events.
    pub fn app(&self) -> tauri::AppHandle<tauri::test::MockRuntime> {
        self._app.handle().clone()
    }

    pub fn call(
        &self,
        cmd: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, notch_ipc::CommandError> {
        self.invoke(cmd, tauri::ipc::InvokeBody::Json(body))
    }

    /// Calls a command with a raw (binary) body, as `invoke(cmd, bytes)`.
    pub fn call_raw(
        &self,
        cmd: &str,
        bytes: Vec<u8>,
    ) -> Result<serde_json::Value, notch_ipc::CommandError> {
        self.invoke(cmd, tauri::ipc::InvokeBody::Raw(bytes))
    }

    /// Calls a command that answers with raw bytes (`tauri::ipc::Response`).
    pub fn call_bytes(
        &self,
        cmd: &str,
        body: serde_json::Value,
    ) -> Result<Vec<u8>, notch_ipc::CommandError> {
        self.respond(cmd, tauri::ipc::InvokeBody::Json(body))
            .map(|body| match body {
                tauri::ipc::InvokeResponseBody::Raw(bytes) => bytes,
                tauri::ipc::InvokeResponseBody::Json(json) => {
                    panic!("{cmd}: JSON, not bytes: {json}")
                }
            })
    }

    fn invoke(
        &self,
        cmd: &str,
        body: tauri::ipc::InvokeBody,
    ) -> Result<serde_json::Value, notch_ipc::CommandError> {
        self.respond(cmd, body)
            .map(|body| body.deserialize::<serde_json::Value>().unwrap())
    }

    fn respond(
        &self,
        cmd: &str,
        body: tauri::ipc::InvokeBody,
    ) -> Result<tauri::ipc::InvokeResponseBody, notch_ipc::CommandError> {
        tauri::test::get_ipc_response(
            &self.webview,
            tauri::webview::InvokeRequest {
                cmd: cmd.into(),
                callback: tauri::ipc::CallbackFn(0),
                error: tauri::ipc::CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body,
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map_err(|e| serde_json::from_value(e).unwrap())
    }

    pub fn err(&self, cmd: &str, body: serde_json::Value) -> notch_ipc::CommandError {
        match self.call(cmd, body) {
            Ok(v) => panic!("{cmd} should fail, got {v}"),
            Err(e) => {
                assert!(!e.message.is_empty(), "an error says something");
                e
            }
        }
    }

    /// Creates a wallet through begin/finish, answering the check correctly.
    pub fn create_wallet(&self) -> AppStatus {
        let status: AppStatus = serde_json::from_value(
            self.call(command::APP_STATUS, serde_json::json!({}))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(status.wallet, WalletState::NoWallet);
        let phrase: NewPhrase = serde_json::from_value(
            self.call(
                command::BEGIN_CREATE,
                serde_json::json!({ "args": { "words": 12 } }),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(phrase.words.len(), 12);
        assert_eq!(phrase.check_positions.len(), 3);
        let answers: Vec<String> = phrase
            .check_positions
            .iter()
            .map(|&p| phrase.words[p].clone())
            .collect();
        serde_json::from_value(
            self.call(
                command::FINISH_CREATE,
                serde_json::json!({ "args": { "answers": answers } }),
            )
            .unwrap(),
        )
        .unwrap()
    }
}
