//! The WebSocket stream: hello, tips, and events for subscribed addresses.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use notch_protocol::api::*;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next(ws: &mut Ws) -> StreamMessage {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .unwrap_or_else(|_| panic!("no stream message within 20 s"));
        match item {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("bad stream message {t}: {e}"));
            }
            Some(Ok(_)) => continue,
            other => panic!("stream ended: {other:?}"),
        }
    }
}

async fn send_json(ws: &mut Ws, msg: &ClientMessage) {
    let text = serde_json::to_string(msg).unwrap_or_default();
    ws.send(Message::Text(text.into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

both_backends!(stream_reports_tips_and_address_events);
fn stream_reports_tips_and_address_events(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Arc::new(Gateway::sandbox(&b, &dir.path().join("gw")));
    let url = format!("{}/v1/stream", g.base.replacen("http://", "ws://", 1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap_or_else(|e| panic!("connect: {e}"));
        assert!(matches!(next(&mut ws).await, StreamMessage::Hello { tip } if tip.height == 0));
        let alice = key(1);
        send_json(&mut ws, &ClientMessage::Subscribe { addresses: vec![address(&alice)] }).await;
        assert_eq!(next(&mut ws).await, StreamMessage::Subscribed { addresses: vec![address(&alice)] });
        ws.send(Message::Text("{\"type\":\"nonsense\"}".into())).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(next(&mut ws).await, StreamMessage::Error { code, .. } if code == "malformed"));
        send_json(&mut ws, &ClientMessage::Subscribe { addresses: vec!["nsb1bad".into()] }).await;
        assert!(matches!(next(&mut ws).await, StreamMessage::Error { code, .. } if code == "bad_address"));

        let g2 = g.clone();
        let coin = tokio::task::spawn_blocking(move || faucet(&g2, &key(1), "EURT", 100)).await.unwrap_or_else(|e| panic!("{e}"));
        match next(&mut ws).await {
            StreamMessage::AddressTx { address: a, txid, status } => {
                assert_eq!((a, txid, status), (address(&alice), coin.txid.to_hex(), TxStatus::InPool));
            }
            other => panic!("expected address_tx, got {other:?}"),
        }
        // Someone else's payment is not reported.
        let g2 = g.clone();
        tokio::task::spawn_blocking(move || faucet(&g2, &key(2), "EURT", 100)).await.unwrap_or_else(|e| panic!("{e}"));
        let g2 = g.clone();
        tokio::task::spawn_blocking(move || mine(&g2, 1)).await.unwrap_or_else(|e| panic!("{e}"));
        let mut saw_tip = false;
        let mut saw_confirmed = false;
        for _ in 0..2 {
            match next(&mut ws).await {
                StreamMessage::Tip { tip } => saw_tip = tip.height == 1,
                StreamMessage::AddressTx { txid, status: TxStatus::Confirmed { confirmations: 1, .. }, .. } => {
                    saw_confirmed = txid == coin.txid.to_hex();
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(saw_tip && saw_confirmed);
    });
}
