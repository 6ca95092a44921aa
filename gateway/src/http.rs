//! The HTTP/JSON API (`/v1`) and the WebSocket stream. Every failure, including axum's own
//! rejections, unknown routes and wrong methods, answers JSON `ApiError`.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use notch_protocol::api::*;
use notch_protocol::block::MAX_LOCATOR_LEN;
use notch_protocol::{
    Address, AddressError, BlockId, PublicKey, Transaction, TxId, tx::MAX_TX_BYTES,
};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};

use crate::error::Failure;
use crate::ledger::{Engine, Event, status_of, tip_info};
use crate::store::TxState;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
pub const MAX_HEADERS_PER_REQUEST: u32 = 2000;
pub const MAX_BLOCKS_PER_REQUEST: u32 = 100;
pub const MAX_BLOCK_BYTES_PER_RESPONSE: usize = 8 * 1024 * 1024;
pub const MAX_MEMPOOL_CHANGES: u32 = 1000;
pub const MAX_UTXOS: usize = 1000;
const MAX_SUBSCRIPTIONS: usize = 1000;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub shutdown: watch::Receiver<bool>,
}

/// `Json<T>` whose rejection is an `ApiError`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Failure;
    async fn from_request(req: Request, state: &S) -> Result<Self, Failure> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> Failure {
    let status = rej.status();
    let (status, code) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (status, codes::TOO_LARGE),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (status, codes::UNSUPPORTED_MEDIA_TYPE),
        // Syntax and shape errors alike (axum says 422 for the latter).
        _ => (StatusCode::BAD_REQUEST, codes::MALFORMED),
    };
    Failure::new(status, code, rej.body_text())
}

/// `Query<T>` whose rejection is an `ApiError`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Failure;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|rej| Failure::malformed(rej.body_text()))
    }
}

/// `Path<String>` whose rejection is an `ApiError`.
pub struct ApiPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ApiPath {
    type Rejection = Failure;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|rej| Failure::malformed(rej.body_text()))
    }
}

pub fn router(state: AppState) -> Router {
    let mut v1 = Router::new()
        .route("/health", get(health))
        .route("/info", get(info))
        .route("/headers", post(headers))
        .route("/blocks", post(blocks_by_locator).get(blocks_by_height))
        .route("/block/{id}", get(block_by_id))
        .route("/tx", post(submit))
        .route("/tx/{txid}", get(get_tx))
        .route("/tx/{txid}/status", get(get_tx_status))
        .route("/mempool", get(mempool))
        .route("/address/{address}/utxos", get(utxos))
        .route("/stream", get(stream));
    if state.engine.config.sandbox {
        v1 = v1
            .route("/sandbox/faucet", post(faucet))
            .route("/sandbox/mine", post(mine))
            .route("/sandbox/reorg", post(reorg));
    }
    Router::new()
        .nest("/v1", v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

async fn not_found() -> Failure {
    Failure::not_found("no such route; the API is under /v1 (see gateway/openapi.yaml)")
}

async fn method_not_allowed() -> Failure {
    Failure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        "this method is not allowed on this route",
    )
}

/// Turns any error response that is not already JSON into an `ApiError`.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return resp;
    }
    let code = match status {
        StatusCode::NOT_FOUND => codes::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED => codes::METHOD_NOT_ALLOWED,
        StatusCode::PAYLOAD_TOO_LARGE => codes::TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => codes::UNSUPPORTED_MEDIA_TYPE,
        s if s.is_server_error() => codes::UNAVAILABLE,
        _ => codes::BAD_REQUEST,
    };
    let message = status.canonical_reason().unwrap_or("request refused");
    Failure::new(status, code, message).into_response()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::unavailable(format!("worker failed: {e}")))?
}

fn parse_txid(s: &str) -> Result<TxId, Failure> {
    TxId::from_hex(s).map_err(|e| Failure::malformed(format!("bad txid: {e}")))
}

fn parse_address(s: &str, engine: &Engine) -> Result<Address, Failure> {
    Address::parse(s, engine.params.network).map_err(|e| match e {
        AddressError::WrongNetwork { .. } => {
            Failure::bad_request(codes::WRONG_NETWORK, e.to_string())
        }
        _ => Failure::bad_request(codes::BAD_ADDRESS, e.to_string()),
    })
}

fn parse_locator(locator: &[String]) -> Result<Vec<BlockId>, Failure> {
    if locator.len() > MAX_LOCATOR_LEN {
        return Err(Failure::bad_request(
            codes::BAD_REQUEST,
            format!("a locator has at most {MAX_LOCATOR_LEN} hashes"),
        ));
    }
    locator
        .iter()
        .map(|s| {
            BlockId::from_hex(s)
                .map_err(|e| Failure::malformed(format!("bad block id in locator: {e}")))
        })
        .collect()
}

fn limit(requested: Option<u32>, max: u32) -> Result<usize, Failure> {
    match requested {
        Some(0) => Err(Failure::bad_request(
            codes::BAD_REQUEST,
            "limit must be at least 1",
        )),
        Some(n) => Ok(n.min(max) as usize),
        None => Ok(max as usize),
    }
}

fn block_ref(fp: Option<(u64, BlockId)>) -> Option<BlockRef> {
    fp.map(|(height, id)| BlockRef {
        height,
        hash: id.to_hex(),
    })
}

async fn health(State(s): State<AppState>) -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
        network: s.engine.params.network.name().into(),
        tip_height: s.engine.tip().height,
    })
}

async fn info(State(s): State<AppState>) -> Json<LedgerInfo> {
    Json(ledger_info(&s.engine))
}

/// What `/v1/info` serves (also written to `network.json`).
pub fn ledger_info(e: &Engine) -> LedgerInfo {
    let assets = e
        .meta
        .assets
        .iter()
        .map(|a| AssetInfo {
            id: a.id().to_hex(),
            symbol: a.symbol.clone(),
            name: a.name.clone(),
            decimals: a.decimals,
            native: a.native,
            issuer: a.issuer.to_hex(),
        })
        .collect();
    LedgerInfo {
        network: e.params.network.name().into(),
        authority_key: e.meta.authority.to_hex(),
        assets,
        tip: tip_info(&e.tip()),
        sandbox: e.config.sandbox,
        params: ParamsInfo {
            min_fee_base: e.params.min_fee_base,
            min_fee_per_byte: e.params.min_fee_per_byte,
            finality_depth: e.config.finality_depth,
            block_interval_secs: e.config.block_interval_secs,
            max_tx_bytes: MAX_TX_BYTES as u64,
            max_headers_per_request: MAX_HEADERS_PER_REQUEST,
            max_blocks_per_request: MAX_BLOCKS_PER_REQUEST,
        },
    }
}

async fn headers(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<HeadersRequest>,
) -> Result<Json<HeadersResponse>, Failure> {
    let locator = parse_locator(&req.locator)?;
    let n = limit(req.limit, MAX_HEADERS_PER_REQUEST)?;
    let store = s.engine.store.clone();
    let slice = blocking(move || Ok(store.headers_after_locator(&locator, n)?)).await?;
    Ok(Json(HeadersResponse {
        fork_point: block_ref(slice.fork_point),
        headers: slice
            .items
            .into_iter()
            .map(|h| HeaderEntry {
                height: h.height,
                id: h.id.to_hex(),
                hex: hex::encode(h.bytes),
            })
            .collect(),
        tip: tip_info(&slice.tip),
        more: slice.more,
    }))
}

fn blocks_response(slice: crate::store::ChainSlice<crate::store::StoredBlock>) -> BlocksResponse {
    BlocksResponse {
        fork_point: block_ref(slice.fork_point),
        blocks: slice
            .items
            .into_iter()
            .map(|b| BlockEntry {
                height: b.height,
                id: b.id.to_hex(),
                hex: hex::encode(b.bytes),
            })
            .collect(),
        tip: tip_info(&slice.tip),
        more: slice.more,
    }
}

async fn blocks_by_locator(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<BlocksRequest>,
) -> Result<Json<BlocksResponse>, Failure> {
    let locator = parse_locator(&req.locator)?;
    let n = limit(req.limit, MAX_BLOCKS_PER_REQUEST)?;
    let store = s.engine.store.clone();
    let slice = blocking(move || {
        Ok(store.blocks_after_locator(&locator, n, MAX_BLOCK_BYTES_PER_RESPONSE)?)
    })
    .await?;
    Ok(Json(blocks_response(slice)))
}

async fn blocks_by_height(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<BlockRangeQuery>,
) -> Result<Json<BlocksResponse>, Failure> {
    let n = limit(q.limit, MAX_BLOCKS_PER_REQUEST)?;
    let store = s.engine.store.clone();
    let slice =
        blocking(move || Ok(store.blocks_from_height(q.from, n, MAX_BLOCK_BYTES_PER_RESPONSE)?))
            .await?;
    Ok(Json(blocks_response(slice)))
}

async fn block_by_id(
    State(s): State<AppState>,
    ApiPath(id): ApiPath,
) -> Result<Json<BlockEntry>, Failure> {
    let id =
        BlockId::from_hex(&id).map_err(|e| Failure::malformed(format!("bad block id: {e}")))?;
    let store = s.engine.store.clone();
    let b = blocking(move || Ok(store.block_by_id(&id)?)).await?;
    let b = b.ok_or_else(|| Failure::not_found("no block with this id on the best chain"))?;
    Ok(Json(BlockEntry {
        height: b.height,
        id: b.id.to_hex(),
        hex: hex::encode(b.bytes),
    }))
}

fn decode_tx_hex(s: &str) -> Result<Vec<u8>, Failure> {
    if s.len() > 2 * MAX_TX_BYTES {
        return Err(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::TOO_LARGE,
            format!("a transaction is at most {MAX_TX_BYTES} bytes"),
        ));
    }
    hex::decode(s).map_err(|e| Failure::malformed(format!("tx is not hex: {e}")))
}

async fn submit(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<SubmitTxRequest>,
) -> Result<Json<SubmitTxResponse>, Failure> {
    let bytes = decode_tx_hex(&req.tx)?;
    let resp = s.engine.submit(bytes, None).await?;
    Ok(Json(resp))
}

async fn lookup_tx(
    s: &AppState,
    txid: &str,
) -> Result<(TxId, Option<Vec<u8>>, TxStatus, u64), Failure> {
    let txid = parse_txid(txid)?;
    let store = s.engine.store.clone();
    let rec = blocking(move || Ok(store.tx(&txid)?)).await?;
    let rec = rec.ok_or_else(|| Failure::not_found(format!("transaction {txid} is not known")))?;
    let tip = s.engine.tip().height;
    let status = status_of(&rec.state, tip, s.engine.config.finality_depth);
    let tip = match rec.state {
        // The record may have been read against a newer tip than the cached one.
        TxState::Confirmed { height, .. } => tip.max(height),
        _ => tip,
    };
    Ok((txid, rec.bytes, status, tip))
}

async fn get_tx(
    State(s): State<AppState>,
    ApiPath(txid): ApiPath,
) -> Result<Json<TxResponse>, Failure> {
    let (txid, bytes, status, tip_height) = lookup_tx(&s, &txid).await?;
    Ok(Json(TxResponse {
        txid: txid.to_hex(),
        status,
        hex: bytes.map(hex::encode),
        tip_height,
    }))
}

async fn get_tx_status(
    State(s): State<AppState>,
    ApiPath(txid): ApiPath,
) -> Result<Json<TxStatusResponse>, Failure> {
    let (txid, _, status, tip_height) = lookup_tx(&s, &txid).await?;
    Ok(Json(TxStatusResponse {
        txid: txid.to_hex(),
        status,
        tip_height,
    }))
}

async fn mempool(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<MempoolQuery>,
) -> Result<Json<MempoolDelta>, Failure> {
    let n = limit(q.limit, MAX_MEMPOOL_CHANGES)?;
    let store = s.engine.store.clone();
    let c = blocking(move || Ok(store.mempool_changes(q.since, n)?)).await?;
    Ok(Json(MempoolDelta {
        reset: c.reset,
        changes: c
            .changes
            .into_iter()
            .map(|c| MempoolChange {
                seq: c.seq,
                kind: if c.added {
                    MempoolChangeKind::Added
                } else {
                    MempoolChangeKind::Removed
                },
                txid: c.txid.to_hex(),
                hex: c.bytes.map(hex::encode),
            })
            .collect(),
        seq: c.seq,
        more: c.more,
    }))
}

async fn utxos(
    State(s): State<AppState>,
    ApiPath(address): ApiPath,
) -> Result<Json<UtxosResponse>, Failure> {
    let a = parse_address(&address, &s.engine)?;
    let store = s.engine.store.clone();
    let (list, more) = blocking(move || Ok(store.utxos_of(&a.key, MAX_UTXOS)?)).await?;
    Ok(Json(UtxosResponse {
        address: a.encode(),
        utxos: list
            .into_iter()
            .map(|(op, o, height)| UtxoEntry {
                txid: op.txid.to_hex(),
                index: op.index,
                asset: o.asset.to_hex(),
                amount: o.amount,
                height,
            })
            .collect(),
        tip: tip_info(&s.engine.tip()),
        more,
    }))
}

async fn faucet(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<FaucetRequest>,
) -> Result<Json<FaucetResponse>, Failure> {
    let a = parse_address(&req.address, &s.engine)?;
    if req.amount == 0 {
        return Err(Failure::bad_request(
            codes::ZERO_AMOUNT,
            "amount must be at least 1 base unit",
        ));
    }
    let asset = s
        .engine
        .meta
        .assets
        .iter()
        .find(|x| {
            x.symbol.eq_ignore_ascii_case(&req.asset)
                || x.id().to_hex() == req.asset.to_ascii_lowercase()
        })
        .cloned()
        .ok_or_else(|| {
            Failure::bad_request(
                codes::UNKNOWN_ASSET,
                format!("unknown asset {:?}", req.asset),
            )
        })?;
    let tx = s.engine.faucet_tx(&asset, a.key, req.amount)?;
    let resp = s.engine.submit(tx.encode(), None).await?;
    Ok(Json(FaucetResponse {
        txid: resp.txid,
        status: resp.status,
        index: 0,
    }))
}

async fn mine(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<MineRequest>,
) -> Result<Json<MineResponse>, Failure> {
    let n = req.blocks.unwrap_or(1);
    if !(1..=100).contains(&n) {
        return Err(Failure::bad_request(
            codes::BAD_REQUEST,
            "blocks must be between 1 and 100",
        ));
    }
    let mined = s.engine.mine(n).await?;
    Ok(Json(MineResponse {
        mined,
        tip: tip_info(&s.engine.tip()),
    }))
}

async fn reorg(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ReorgRequest>,
) -> Result<Json<ReorgResponse>, Failure> {
    if req.include_txs.len() > 1000 {
        return Err(Failure::bad_request(
            codes::BAD_REQUEST,
            "at most 1000 include_txs",
        ));
    }
    let mut include = Vec::with_capacity(req.include_txs.len());
    for (n, h) in req.include_txs.iter().enumerate() {
        let bytes = decode_tx_hex(h)?;
        let tx = Transaction::decode(&bytes).map_err(|e| {
            let mut f = Failure::tx(&e);
            f.error.message = format!("include_txs[{n}]: {}", f.error.message);
            f
        })?;
        include.push(tx);
    }
    Ok(Json(s.engine.reorg(req.depth as u64, include).await?))
}

async fn stream(State(s): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .on_upgrade(move |socket| stream_session(s, socket))
}

async fn send(socket: &mut WebSocket, msg: &StreamMessage) -> bool {
    match serde_json::to_string(msg) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
    }
}

async fn stream_session(s: AppState, mut socket: WebSocket) {
    let mut events = s.engine.events.subscribe();
    let mut shutdown = s.shutdown.clone();
    if *shutdown.borrow() {
        return;
    }
    let mut subs: HashSet<PublicKey> = HashSet::new();
    if !send(
        &mut socket,
        &StreamMessage::Hello {
            tip: tip_info(&s.engine.tip()),
        },
    )
    .await
    {
        return;
    }
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(_))) => {
                        let m = StreamMessage::Error { code: codes::MALFORMED.into(), message: "send JSON text frames".into() };
                        if !send(&mut socket, &m).await { break; }
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let reply = match serde_json::from_str::<ClientMessage>(text.as_str()) {
                    Err(e) => StreamMessage::Error { code: codes::MALFORMED.into(), message: e.to_string() },
                    Ok(cmd) => {
                        let (addresses, add) = match cmd {
                            ClientMessage::Subscribe { addresses } => (addresses, true),
                            ClientMessage::Unsubscribe { addresses } => (addresses, false),
                        };
                        let mut parsed = Vec::new();
                        let mut error = None;
                        for a in &addresses {
                            match parse_address(a, &s.engine) {
                                Ok(a) => parsed.push(a.key),
                                Err(f) => { error = Some(f); break; }
                            }
                        }
                        match error {
                            Some(f) => StreamMessage::Error { code: f.error.code, message: f.error.message },
                            None if add && subs.len() + parsed.len() > MAX_SUBSCRIPTIONS => StreamMessage::Error {
                                code: codes::BAD_REQUEST.into(),
                                message: format!("at most {MAX_SUBSCRIPTIONS} addresses per stream"),
                            },
                            None => {
                                for k in parsed {
                                    if add { subs.insert(k); } else { subs.remove(&k); }
                                }
                                let network = s.engine.params.network;
                                let mut list: Vec<String> = subs.iter().map(|k| Address::new(network, *k).encode()).collect();
                                list.sort();
                                StreamMessage::Subscribed { addresses: list }
                            }
                        }
                    }
                };
                if !send(&mut socket, &reply).await { break; }
            }
            ev = events.recv() => {
                let ok = match ev {
                    Ok(Event::Tip(tip)) => send(&mut socket, &StreamMessage::Tip { tip }).await,
                    Ok(Event::Reorg { fork_point, tip }) => send(&mut socket, &StreamMessage::Reorg { fork_point, tip }).await,
                    Ok(Event::Tx { txid, status, addresses }) => {
                        let mut ok = true;
                        for k in addresses.iter().filter(|k| subs.contains(*k)) {
                            let address = Address::new(s.engine.params.network, *k).encode();
                            let m = StreamMessage::AddressTx { address, txid: txid.to_hex(), status: status.clone() };
                            ok = ok && send(&mut socket, &m).await;
                        }
                        ok
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => send(&mut socket, &StreamMessage::Lagged { missed }).await,
                    Err(broadcast::error::RecvError::Closed) => false,
                };
                if !ok { break; }
            }
            _ = shutdown.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every route the router serves is described in openapi.yaml.
    #[test]
    fn openapi_describes_every_route() {
        let spec = include_str!("../openapi.yaml");
        let routes = [
            "/v1/health",
            "/v1/info",
            "/v1/headers",
            "/v1/blocks",
            "/v1/block/{id}",
            "/v1/tx",
            "/v1/tx/{txid}",
            "/v1/tx/{txid}/status",
            "/v1/mempool",
            "/v1/address/{address}/utxos",
            "/v1/stream",
            "/v1/sandbox/faucet",
            "/v1/sandbox/mine",
            "/v1/sandbox/reorg",
        ];
        let source = include_str!("http.rs");
        for r in routes {
            assert!(
                spec.contains(&format!("\n  {r}:\n")),
                "openapi.yaml lacks {r}"
            );
            let relative = r.trim_start_matches("/v1");
            assert!(
                source.contains(&format!(".route(\"{relative}\"")),
                "the router lacks {r}"
            );
        }
        assert_eq!(
            spec.matches("\n  /v1/").count(),
            routes.len(),
            "openapi.yaml describes a route the router lacks"
        );
    }
}
