//! The HTTP/JSON API (`/v1`) and the WebSocket stream. Every failure, including axum's own
//! rejections, unknown routes, wrong methods and the limits below, answers JSON `ApiError`.
//!
//! The limits (each a `Config` flag; docs/PROTOCOL.md §7 lists them with their codes) are
//! tower middleware around the router: a per-client request rate (governor's GCRA, 429
//! `rate_limited`), a global bound on requests in flight with load shedding (503
//! `unavailable`, never a queue), a time limit per request (408 `timeout`) and body limits
//! per route (413 `too_large`). What middleware cannot see is bounded here too: WebSocket
//! sessions (global and per client), and the memory that large answers hold while a client
//! reads them ([`Limits::answer`]). Connections themselves are bounded in `lib.rs`.
//!
//! Per-client limits skip loopback clients unless `limit_loopback` is set: on loopback are
//! the operator's own tools and tests, or a reverse proxy in front of the gateway, through
//! which every client would share one address (such a proxy must do the per-client
//! limiting). Nobody elsewhere can send from a loopback address.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Ready;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::JsonRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State,
};
use axum::http::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER, VARY};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Json, Router};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use notch_protocol::api::*;
use notch_protocol::block::MAX_LOCATOR_LEN;
use notch_protocol::wire;
use notch_protocol::{
    Address, AddressError, BlockId, PublicKey, Transaction, TxId, tx::MAX_TX_BYTES,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower_http::timeout::TimeoutLayer;

use crate::error::{Failure, plain_status, stream_error};
use crate::health::Health;
use crate::ledger::{Engine, Event, status_of, tip_info};
use crate::metrics;
use crate::store::{ChainSlice, StoredBlock, TipRow, TxState};

/// Default largest request body (every route but the batch submission).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Default largest `POST /v1/txs` body: room for `MAX_BATCH_TXS` transactions of up to about
/// 2 KiB each (hex), far more than a payment needs; fewer when they are bigger.
pub const MAX_BATCH_BODY_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_HEADERS_PER_REQUEST: u32 = 2000;
pub const MAX_BLOCKS_PER_REQUEST: u32 = 100;
/// Default byte budget of one blocks or mempool answer (block or transaction bytes; the hex
/// of JSON doubles it). At least one item is always sent, so one block bigger than this still
/// goes out alone.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
pub const MAX_MEMPOOL_CHANGES: u32 = 1000;
pub const MAX_UTXOS: usize = 1000;
const MAX_SUBSCRIPTIONS: usize = 1000;
/// Large answers go out in pieces of this size, each its own allocation, so that what hyper
/// still buffers after the answer's memory is released is at most a few pieces.
const ANSWER_CHUNK: usize = 32 * 1024;

/// The HTTP layer's limits, from the command line (see `Config` in `lib.rs`).
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Requests being handled at once; more are refused at once (503 `unavailable`).
    pub max_requests: usize,
    /// Time to receive a request's body and produce its answer (408 `timeout`).
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_batch_body_bytes: usize,
    /// `POST /v1/txs` requests handled at once (503 `unavailable` beyond).
    pub max_batch_requests: usize,
    /// Blocks, headers and mempool requests handled at once (503 `unavailable` beyond).
    pub max_sync_requests: usize,
    /// Requests per second per client address; 0 = no rate limit.
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    /// Open `/v1/stream` sessions, in all and per client address (0 = no per-client limit).
    pub max_streams: usize,
    pub max_streams_per_client: usize,
    /// Byte budget of one blocks or mempool answer.
    pub max_answer_bytes: usize,
    /// Apply the per-client limits to loopback clients too (see the module docs).
    pub limit_loopback: bool,
    /// Memory that the bodies of large answers (blocks, headers, mempool) may hold together
    /// while clients read them; a request that would pass it is refused (503 `unavailable`).
    pub answer_memory_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_requests: 256,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: MAX_BODY_BYTES,
            max_batch_body_bytes: MAX_BATCH_BODY_BYTES,
            max_batch_requests: 4,
            max_sync_requests: 32,
            rate_limit_per_sec: 100,
            rate_limit_burst: 200,
            max_streams: 256,
            max_streams_per_client: 16,
            max_answer_bytes: MAX_ANSWER_BYTES,
            limit_loopback: false,
            answer_memory_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Who a client is, for every per-client limit: its IPv4 address, or the /64 prefix of its
/// IPv6 address (one subscriber usually holds a whole /64, so counting single IPv6 addresses
/// would let one client be many). IPv4-mapped IPv6 addresses count as IPv4.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Counts what each client holds (connections, streams) against a per-client maximum. The
/// map holds only clients that hold something, so its size is bounded by what is open.
#[derive(Debug)]
pub struct PerClient {
    max: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One unit held by a client; released on drop.
#[derive(Debug)]
pub struct ClientSlot {
    owner: Option<(Arc<PerClient>, IpAddr)>,
}

impl ClientSlot {
    /// A slot that counts against nothing (for an exempt client).
    pub fn unlimited() -> ClientSlot {
        ClientSlot { owner: None }
    }
}

impl PerClient {
    /// `max` = 0: no per-client limit.
    pub fn new(max: usize) -> Arc<PerClient> {
        Arc::new(PerClient {
            max,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `client` (a [`client_key`]), or `None` when it holds `max` already.
    pub fn try_acquire(self: &Arc<Self>, client: IpAddr) -> Option<ClientSlot> {
        if self.max == 0 {
            return Some(ClientSlot::unlimited());
        }
        // Nothing panics while the lock is held, so a poisoned lock still holds good counts.
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(client).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            owner: Some((self.clone(), client)),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some((owner, client)) = self.owner.take() {
            let mut held = owner.held.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = held.get_mut(&client) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    held.remove(&client);
                }
            }
        }
    }
}

/// The limits and the shared counters behind them.
type RateLimiter = DefaultKeyedRateLimiter<IpAddr>;

pub struct Limits {
    pub config: HttpLimits,
    /// One GCRA bucket per client; `None` when rate limiting is off.
    rate: Option<Arc<RateLimiter>>,
    streams: Arc<Semaphore>,
    streams_per_client: Arc<PerClient>,
    answer_memory: Arc<Semaphore>,
    /// `answer_memory` counts KiB.
    answer_memory_kib: u32,
}

impl Limits {
    pub fn new(config: HttpLimits) -> Arc<Limits> {
        let rate = std::num::NonZeroU32::new(config.rate_limit_per_sec).map(|per_sec| {
            let burst = std::num::NonZeroU32::new(config.rate_limit_burst).unwrap_or(per_sec);
            Arc::new(RateLimiter::keyed(
                Quota::per_second(per_sec).allow_burst(burst),
            ))
        });
        let answer_memory_kib = (config.answer_memory_bytes / 1024).clamp(1, 1 << 30) as u32;
        Arc::new(Limits {
            rate,
            streams: Arc::new(Semaphore::new(
                config.max_streams.clamp(1, Semaphore::MAX_PERMITS),
            )),
            streams_per_client: PerClient::new(config.max_streams_per_client),
            answer_memory: Arc::new(Semaphore::new(answer_memory_kib as usize)),
            answer_memory_kib,
            config,
        })
    }

    /// Whether the per-client limits apply to `client` (a [`client_key`]).
    pub fn limits_client(&self, client: IpAddr) -> bool {
        self.config.limit_loopback || !client.is_loopback()
    }

    /// Forgets the rate-limit state of clients that have been quiet long enough to be back
    /// at a full burst (called every minute, so that the table does not grow with every
    /// address ever seen).
    pub fn forget_idle_clients(&self) {
        if let Some(rate) = &self.rate {
            rate.retain_recent();
            rate.shrink_to_fit();
        }
    }

    /// A large answer's response: its body holds its share of the answer memory until the
    /// last piece has been handed to the connection (or the client is gone), and is refused
    /// (503) when that memory is taken. `body` is already encoded: building it is transient
    /// and bounded by the requests in flight; holding it while a slow client reads is not.
    fn answer(&self, content_type: &'static str, body: Vec<u8>) -> Result<Response, Failure> {
        let kib = body
            .len()
            .div_ceil(1024)
            .clamp(1, self.answer_memory_kib as usize) as u32;
        let permit = self
            .answer_memory
            .clone()
            .try_acquire_many_owned(kib)
            .map_err(|_| {
                Failure::unavailable("the gateway is sending too many large answers; retry shortly")
            })?;
        let stream = futures_util::stream::unfold(
            (body, 0usize, permit),
            |(body, at, permit): (Vec<u8>, usize, OwnedSemaphorePermit)| async move {
                if at >= body.len() {
                    // Dropping the state here releases the body and its permit.
                    return None;
                }
                let end = (at + ANSWER_CHUNK).min(body.len());
                let piece = Bytes::copy_from_slice(&body[at..end]);
                Some((Ok::<_, Infallible>(piece), (body, end, permit)))
            },
        );
        let mut resp = Response::new(Body::from_stream(stream));
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(VARY, HeaderValue::from_static("accept"));
        Ok(resp)
    }
}

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub limits: Arc<Limits>,
    pub shutdown: watch::Receiver<bool>,
    /// Readiness and liveness (`/v1/health`, `/v1/health/live`).
    pub health: Arc<Health>,
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

/// The client's [`client_key`]; `None` only when the router runs without connect info.
pub struct Client(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Client(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| client_key(c.0.ip())),
        ))
    }
}

pub fn router(state: AppState) -> Router {
    let l = state.limits.config.clone();
    // Answers built from many blocks, headers or pool transactions: a bound of their own on
    // how many are built at once (memory and CPU), beyond which they are shed.
    let sync = Router::new()
        .route("/headers", post(headers))
        .route("/blocks", post(blocks_by_locator).get(blocks_by_height))
        .route("/block/{id}", get(block_by_id))
        .route("/mempool", get(mempool))
        .route_layer(shed(l.max_sync_requests));
    // The batch route: its own body limit (overriding the default one) and its own small
    // bound in flight, as each request carries up to MAX_BATCH_TXS transactions to verify.
    let batch = Router::new()
        .route("/txs", post(submit_batch))
        .route_layer(DefaultBodyLimit::max(l.max_batch_body_bytes))
        .route_layer(shed(l.max_batch_requests));
    let mut v1 = Router::new()
        .merge(sync)
        .merge(batch)
        .route("/health", get(health))
        .route("/health/live", get(health_live))
        .route("/info", get(info))
        .route("/tx", post(submit))
        .route("/tx/{txid}", get(get_tx))
        .route("/tx/{txid}/status", get(get_tx_status))
        .route("/address/{address}/utxos", get(utxos))
        .route("/stream", get(stream));
    if state.engine.config.sandbox {
        v1 = v1
            .route("/sandbox/faucet", post(faucet))
            .route("/sandbox/mine", post(mine))
            .route("/sandbox/reorg", post(reorg));
    }
    // Layers listed innermost first. `Router::layer` wraps each route (and the fallbacks)
    // separately, so the concurrency limits are the global kind that share one semaphore.
    let mut app = Router::new()
        .nest("/v1", v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(l.max_body_bytes))
        // The whole request, body included: a client that sends its body slowly is cut off.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            l.request_timeout,
        ))
        // Beyond `max_requests` in flight, refuse at once rather than queue without bound.
        .layer(shed(l.max_requests));
    // Outside the concurrency limit: a client over its rate costs no request slot.
    if state.limits.rate.is_some() {
        app = app.layer(axum::middleware::from_fn_with_state(
            state.limits.clone(),
            rate_limit,
        ));
    }
    app.layer(axum::middleware::map_response(json_errors))
        // Outermost: it counts every answer, refusals by the limits above included.
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}

/// The metrics listener's router (`--metrics-listen`): `GET /metrics` only. Apart from the
/// API's listener, so that an operator can keep it on a private address; its own small
/// limits are in `lib.rs`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .fallback(|| async { Failure::not_found("no such route; metrics are at /metrics") })
        .with_state(state)
}

/// `GET /metrics`: the Prometheus text exposition. The values read rather than counted
/// (tip, role, readiness) are brought up to date first; readiness is the same cached check
/// as `/v1/health`, so scrapes cost the database at most one query a second.
async fn metrics_text(State(s): State<AppState>) -> Response {
    let tip = s.engine.tip();
    metrics::gauge(metrics::TIP_HEIGHT, tip.height as f64);
    metrics::gauge(metrics::TIP_TIME, tip.time as f64);
    let role = s.health.role(&s.engine);
    for r in ["writer", "read-only", "standby"] {
        ::metrics::gauge!(metrics::ROLE, "role" => r).set(if r == role { 1.0 } else { 0.0 });
    }
    let stopping = *s.shutdown.borrow();
    let _ = s.health.ready(&s.engine, stopping).await;
    match metrics::render() {
        Some(text) => {
            let mut resp = Response::new(Body::from(text));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            no_store(resp)
        }
        None => Failure::unavailable("no metrics recorder in this process").into_response(),
    }
}

/// The per-client request rate: governor's GCRA bucket per [`client_key`] (`rate_limit_per_sec`
/// sustained, `rate_limit_burst` at once). Over it: 429 `rate_limited` with `Retry-After` in
/// whole seconds, at least one (the header has no fractions).
async fn rate_limit(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| client_key(c.0.ip()));
    if let (Some(rate), Some(client)) = (&limits.rate, client)
        && limits.limits_client(client)
        && let Err(not_until) = rate.check_key(&client)
    {
        metrics::rate_limited("requests");
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut resp = Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            format!("too many requests from this address; retry in {secs} s"),
        )
        .into_response();
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
        return resp;
    }
    next.run(req).await
}

type Shed = ServiceBuilder<
    Stack<
        GlobalConcurrencyLimitLayer,
        Stack<LoadShedLayer, Stack<HandleErrorLayer<fn(BoxError) -> Ready<Failure>, ()>, Identity>>,
    >,
>;

/// The one way requests are bounded in flight: at most `max` at once through the wrapped
/// routes (one semaphore shared by all of them); beyond it, 503 `unavailable` at once.
fn shed(max: usize) -> Shed {
    ServiceBuilder::new()
        .layer(HandleErrorLayer::new(
            overloaded as fn(BoxError) -> Ready<Failure>,
        ))
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::new(max.max(1)))
}

fn overloaded(err: BoxError) -> Ready<Failure> {
    ::metrics::counter!(metrics::OVERLOADED).increment(1);
    std::future::ready(if err.is::<tower::load_shed::error::Overloaded>() {
        Failure::unavailable(
            "the gateway is handling as many such requests as it takes; retry shortly",
        )
    } else {
        Failure::unavailable(format!("the request failed: {err}"))
    })
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

/// Turns any error response that is not already JSON (axum's and tower's own) into an
/// `ApiError`.
async fn json_errors(mut resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The body may be left unread, and then the connection cannot carry another
        // request: said, so that a client does not send its next one on it (it would be
        // lost in the lingering close, or reset).
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return resp;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (codes::NOT_FOUND, "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (codes::METHOD_NOT_ALLOWED, "method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => (codes::TOO_LARGE, "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (codes::UNSUPPORTED_MEDIA_TYPE, "unsupported content type")
        }
        // Only the request time limit answers 408.
        StatusCode::REQUEST_TIMEOUT => (
            codes::TIMEOUT,
            "the request took longer than the gateway allows; retry",
        ),
        StatusCode::TOO_MANY_REQUESTS => (codes::RATE_LIMITED, "too many requests; retry later"),
        s if s.is_server_error() => (codes::UNAVAILABLE, "the gateway cannot answer now"),
        _ => (
            codes::BAD_REQUEST,
            status.canonical_reason().unwrap_or("request refused"),
        ),
    };
    Failure::new(status, code, message).into_response()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::unavailable(format!("worker failed: {e}")))?
}

/// Lower-case hex of block, header and transaction bytes (`hex::encode` builds the string a
/// character at a time; this one is vectorised).
fn to_hex(bytes: &[u8]) -> String {
    faster_hex::hex_string(bytes)
}

/// An answer as JSON bytes (for [`Limits::answer`]).
fn json_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(value).map_err(|e| Failure::unavailable(format!("cannot encode: {e}")))
}

/// Whether the request asks for the binary form of a blocks answer: `Accept` names
/// `application/octet-stream` with a higher quality than JSON gets (explicitly or through
/// `*/*`, `application/*`). JSON is the default, and wins ties.
fn wants_binary(headers: &HeaderMap) -> bool {
    let mut json = 0u16;
    let mut binary = 0u16;
    for value in headers.get_all(ACCEPT) {
        let Ok(text) = value.to_str() else { continue };
        // A bounded number of media ranges: the header is the client's.
        for range in text.split(',').take(32) {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(1000, |(_, v)| quality(v.trim()));
            if media.eq_ignore_ascii_case(wire::CONTENT_TYPE) {
                binary = binary.max(q);
            } else if media.eq_ignore_ascii_case("application/json")
                || media.eq_ignore_ascii_case("application/*")
                || media == "*/*"
            {
                json = json.max(q);
            }
        }
    }
    binary > json
}

/// An `Accept` quality value in thousandths; an unreadable one counts as 1.
fn quality(v: &str) -> u16 {
    match v.parse::<f32>() {
        Ok(q) if q.is_finite() => (q.clamp(0.0, 1.0) * 1000.0) as u16,
        _ => 1000,
    }
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

/// Readiness: 200 when this process can serve (its database answered within the check's
/// timeout, a replica has caught up), else 503 with the same shape and a `reason`. The check
/// is shared by the requests of about a second (`health.rs`).
async fn health(State(s): State<AppState>) -> Response {
    let stopping = *s.shutdown.borrow();
    let (ok, body) = s.health.ready(&s.engine, stopping).await;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    no_store((status, Json(body)).into_response())
}

/// Liveness: the process answers HTTP (memory only; never asks the database).
async fn health_live(State(s): State<AppState>) -> Response {
    no_store(Json(s.health.live(&s.engine)).into_response())
}

/// A health answer is about now: no cache (a proxy's or a load balancer's) may keep it.
fn no_store(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
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
) -> Result<Response, Failure> {
    let locator = parse_locator(&req.locator)?;
    let n = limit(req.limit, MAX_HEADERS_PER_REQUEST)?;
    let store = s.engine.store.clone();
    // Reading and encoding (hex, JSON) are blocking work: off the async threads.
    let body = blocking(move || {
        let slice = store.headers_after_locator(&locator, n)?;
        json_bytes(&HeadersResponse {
            fork_point: block_ref(slice.fork_point),
            headers: slice
                .items
                .into_iter()
                .map(|h| HeaderEntry {
                    height: h.height,
                    id: h.id.to_hex(),
                    hex: to_hex(&h.bytes),
                })
                .collect(),
            tip: tip_info(&slice.tip),
            more: slice.more,
        })
    })
    .await?;
    s.limits.answer("application/json", body)
}

/// A blocks answer in the form the request asked for (JSON by default, or the binary form
/// of `notch_protocol::wire`).
fn encode_blocks(slice: ChainSlice<StoredBlock>, binary: bool) -> Result<Vec<u8>, Failure> {
    if binary {
        let TipRow { height, id, time } = slice.tip;
        return wire::BlocksAnswer {
            fork_point: slice.fork_point,
            tip: wire::Tip { height, id, time },
            more: slice.more,
            blocks: slice.items.into_iter().map(|b| b.bytes).collect(),
        }
        .encode()
        .map_err(|e| Failure::unavailable(format!("cannot encode the blocks: {e}")));
    }
    json_bytes(&BlocksResponse {
        fork_point: block_ref(slice.fork_point),
        blocks: slice
            .items
            .into_iter()
            .map(|b| BlockEntry {
                height: b.height,
                id: b.id.to_hex(),
                hex: to_hex(&b.bytes),
            })
            .collect(),
        tip: tip_info(&slice.tip),
        more: slice.more,
    })
}

fn blocks_content_type(binary: bool) -> &'static str {
    if binary {
        wire::CONTENT_TYPE
    } else {
        "application/json"
    }
}

async fn blocks_by_locator(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<BlocksRequest>,
) -> Result<Response, Failure> {
    let locator = parse_locator(&req.locator)?;
    let n = limit(req.limit, MAX_BLOCKS_PER_REQUEST)?;
    let binary = wants_binary(&headers);
    let store = s.engine.store.clone();
    let budget = s.limits.config.max_answer_bytes;
    let body =
        blocking(move || encode_blocks(store.blocks_after_locator(&locator, n, budget)?, binary))
            .await?;
    s.limits.answer(blocks_content_type(binary), body)
}

async fn blocks_by_height(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<BlockRangeQuery>,
) -> Result<Response, Failure> {
    let n = limit(q.limit, MAX_BLOCKS_PER_REQUEST)?;
    let binary = wants_binary(&headers);
    let store = s.engine.store.clone();
    let budget = s.limits.config.max_answer_bytes;
    let body =
        blocking(move || encode_blocks(store.blocks_from_height(q.from, n, budget)?, binary))
            .await?;
    s.limits.answer(blocks_content_type(binary), body)
}

async fn block_by_id(State(s): State<AppState>, ApiPath(id): ApiPath) -> Result<Response, Failure> {
    let id =
        BlockId::from_hex(&id).map_err(|e| Failure::malformed(format!("bad block id: {e}")))?;
    let store = s.engine.store.clone();
    let body = blocking(move || {
        let b = store
            .block_by_id(&id)?
            .ok_or_else(|| Failure::not_found("no block with this id on the best chain"))?;
        json_bytes(&BlockEntry {
            height: b.height,
            id: b.id.to_hex(),
            hex: to_hex(&b.bytes),
        })
    })
    .await?;
    s.limits.answer("application/json", body)
}

fn decode_tx_hex(s: &str) -> Result<Vec<u8>, Failure> {
    if s.len() > 2 * MAX_TX_BYTES {
        return Err(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::TOO_LARGE,
            format!("a transaction is at most {MAX_TX_BYTES} bytes"),
        ));
    }
    // faster-hex (SIMD): what `hex::decode` accepts (either case, even length).
    faster_hex::hex_decode_vec(s.as_bytes())
        .map_err(|e| Failure::malformed(format!("tx is not hex: {e}")))
}

async fn submit(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(req): ApiJson<SubmitTxRequest>,
) -> Result<Json<SubmitTxResponse>, Failure> {
    let result = match decode_tx_hex(&req.tx) {
        Ok(bytes) => s.engine.submit(bytes, client).await,
        Err(f) => Err(f),
    };
    count_submission(&result);
    Ok(Json(result?))
}

/// `POST /v1/txs`: the request as a whole is refused (4xx) only when it is not a batch (bad
/// JSON, empty, more than `MAX_BATCH_TXS`, body too large); each transaction then gets its
/// own result, in order, with the error `POST /v1/tx` would have answered.
async fn submit_batch(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(req): ApiJson<SubmitBatchRequest>,
) -> Result<Json<SubmitBatchResponse>, Failure> {
    if req.txs.is_empty() {
        return Err(Failure::bad_request(
            codes::BAD_REQUEST,
            format!("a batch holds 1 to {MAX_BATCH_TXS} transactions"),
        ));
    }
    if req.txs.len() > MAX_BATCH_TXS {
        return Err(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::TOO_LARGE,
            format!(
                "a batch holds at most {MAX_BATCH_TXS} transactions, not {}",
                req.txs.len()
            ),
        ));
    }
    let mut results: Vec<Option<SubmitBatchResult>> = vec![None; req.txs.len()];
    let mut decoded = Vec::with_capacity(req.txs.len());
    let mut positions = Vec::with_capacity(req.txs.len());
    for (i, h) in req.txs.iter().enumerate() {
        match decode_tx_hex(h) {
            Ok(bytes) => {
                decoded.push(bytes);
                positions.push(i);
            }
            Err(f) => {
                results[i] = Some(SubmitBatchResult::Err {
                    txid: None,
                    error: f.into_api_error(),
                })
            }
        }
    }
    let answers = s.engine.submit_batch(decoded, client).await;
    for r in &results {
        if let Some(SubmitBatchResult::Err { error, .. }) = r {
            metrics::submission(Err(&error.code));
        }
    }
    for a in &answers {
        count_submission(a);
    }
    for (i, answer) in positions.iter().zip(answers) {
        results[*i] = Some(match answer {
            Ok(resp) => SubmitBatchResult::Ok(resp),
            Err(f) => SubmitBatchResult::Err {
                // Decoded again only for a refused transaction: the common case pays nothing.
                txid: hex::decode(&req.txs[*i])
                    .ok()
                    .and_then(|b| Transaction::decode(&b).ok())
                    .map(|tx| tx.txid().to_hex()),
                error: f.into_api_error(),
            },
        });
    }
    // The engine answers once per transaction; should it not, the rest are retryable.
    let results = results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| SubmitBatchResult::Err {
                txid: None,
                error: Failure::unavailable("the gateway did not answer for this transaction")
                    .into_api_error(),
            })
        })
        .collect();
    Ok(Json(SubmitBatchResponse { results }))
}
/// One submission's outcome, in the metrics.
fn count_submission(r: &Result<SubmitTxResponse, Failure>) {
    metrics::submission(match r {
        Ok(resp) => Ok(resp.duplicate),
        Err(f) => Err(&f.error.code),
    });
}

async fn lookup_tx(
    s: &AppState,
    txid: &str,
) -> Result<(TxId, Option<Vec<u8>>, TxStatus, u64), Failure> {
    let txid = parse_txid(txid)?;
    let engine = s.engine.clone();
    let rec = blocking(move || Ok(engine.tx_record(&txid)?)).await?;
    let rec = rec.ok_or_else(|| Failure::not_found(format!("transaction {txid} is not known")))?;
    let tip = s.engine.tip().height;
    let status = plain_status(status_of(&rec.state, tip, s.engine.config.finality_depth));
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
        hex: bytes.as_deref().map(to_hex),
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
) -> Result<Response, Failure> {
    let n = limit(q.limit, MAX_MEMPOOL_CHANGES)?;
    let store = s.engine.store.clone();
    let budget = s.limits.config.max_answer_bytes;
    let body = blocking(move || {
        let c = store.mempool_changes(q.since, n)?;
        let (mut seq, mut more) = (c.seq, c.more);
        let mut changes = Vec::with_capacity(c.changes.len());
        let mut bytes = 0usize;
        for change in c.changes {
            // The byte budget of blocks answers holds here too (transactions are up to
            // 64 KiB): the answer stops after the change that passes it, and `seq` and
            // `more` say where to go on.
            if bytes > budget {
                more = true;
                break;
            }
            bytes += change.bytes.as_ref().map_or(0, Vec::len);
            seq = change.seq;
            changes.push(MempoolChange {
                seq: change.seq,
                kind: if change.added {
                    MempoolChangeKind::Added
                } else {
                    MempoolChangeKind::Removed
                },
                txid: change.txid.to_hex(),
                hex: change.bytes.as_deref().map(to_hex),
            });
        }
        if !more {
            seq = c.seq;
        }
        json_bytes(&MempoolDelta {
            reset: c.reset,
            changes,
            seq,
            more,
        })
    })
    .await?;
    s.limits.answer("application/json", body)
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
    // Sandbox commands are the block producer's, also the faucet (a replica has no keys).
    s.engine.writable()?;
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

/// `GET /v1/stream`: a session holds one of `max_streams` slots and one of its client's
/// `max_streams_per_client` for as long as it is open; beyond either the upgrade is refused
/// (503 `unavailable` / 429 `rate_limited`).
async fn stream(
    State(s): State<AppState>,
    Client(client): Client,
    ws: WebSocketUpgrade,
) -> Result<Response, Failure> {
    let global = s.limits.streams.clone().try_acquire_owned().map_err(|_| {
        ::metrics::counter!(metrics::OVERLOADED).increment(1);
        Failure::unavailable(format!(
            "the gateway has {} streams open, its most; retry later",
            s.limits.config.max_streams
        ))
    })?;
    let mine = match client.filter(|c| s.limits.limits_client(*c)) {
        Some(c) => Some(s.limits.streams_per_client.try_acquire(c).ok_or_else(|| {
            metrics::rate_limited("streams");
            Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                codes::RATE_LIMITED,
                format!(
                    "this address has {} streams open, its most",
                    s.limits.streams_per_client.max()
                ),
            )
        })?),
        None => None,
    };
    Ok(ws
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            let _slots = (global, mine, metrics::StreamSession::open());
            stream_session(s, socket).await
        }))
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
                        let m = stream_error(codes::MALFORMED, "send JSON text frames");
                        if !send(&mut socket, &m).await { break; }
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let reply = match serde_json::from_str::<ClientMessage>(text.as_str()) {
                    Err(e) => stream_error(codes::MALFORMED, &e.to_string()),
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
                            Some(f) => stream_error(&f.error.code, &f.error.message),
                            None if add && subs.len() + parsed.len() > MAX_SUBSCRIPTIONS => stream_error(
                                codes::BAD_REQUEST,
                                &format!("at most {MAX_SUBSCRIPTIONS} addresses per stream"),
                            ),
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
                            let m = StreamMessage::AddressTx { address, txid: txid.to_hex(), status: plain_status(status.clone()) };
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
    use std::net::Ipv4Addr;

    use super::*;

    /// Every route the router serves is described in openapi.yaml.
    #[test]
    fn openapi_describes_every_route() {
        let spec = include_str!("../openapi.yaml");
        let routes = [
            "/v1/health",
            "/v1/health/live",
            "/v1/info",
            "/v1/headers",
            "/v1/blocks",
            "/v1/block/{id}",
            "/v1/tx",
            "/v1/txs",
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

    fn accept(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                ACCEPT,
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        h
    }

    #[test]
    fn binary_blocks_only_when_asked_for_above_json() {
        assert!(!wants_binary(&HeaderMap::new()));
        assert!(!wants_binary(&accept(&["*/*"])));
        assert!(!wants_binary(&accept(&["application/json"])));
        assert!(wants_binary(&accept(&["application/octet-stream"])));
        assert!(wants_binary(&accept(&[
            "Application/Octet-Stream; q=0.9, */*;q=0.1"
        ])));
        assert!(wants_binary(&accept(&[
            "application/json;q=0.5",
            "application/octet-stream"
        ])));
        // Ties go to JSON, and q=0 means "not this".
        assert!(!wants_binary(&accept(&[
            "application/octet-stream, application/json"
        ])));
        assert!(!wants_binary(&accept(&["application/octet-stream;q=0"])));
        assert!(wants_binary(&accept(&["application/octet-stream;q=zzz"])));
        assert!(!wants_binary(&accept(&["text/html, application/*"])));
    }

    #[test]
    fn clients_are_addresses_and_ipv6_slash_64s() {
        let v4: IpAddr = "203.0.113.7".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client_key(v4), v4);
        let mapped: IpAddr = "::ffff:203.0.113.7"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client_key(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let b: IpAddr = "2001:db8:1:2:bbbb::2"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
    }

    #[test]
    fn per_client_slots_are_counted_and_given_back() {
        let p = PerClient::new(2);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let a = p.try_acquire(ip);
        let b = p.try_acquire(ip);
        assert!(a.is_some() && b.is_some());
        assert!(p.try_acquire(ip).is_none());
        assert!(p.try_acquire(other).is_some());
        drop(a);
        let c = p.try_acquire(ip);
        assert!(c.is_some());
        drop((b, c));
        // Nothing held: the client is forgotten.
        assert!(p.held.lock().unwrap_or_else(|e| e.into_inner()).is_empty());
        let unlimited = PerClient::new(0);
        let many: Vec<_> = (0..100).filter_map(|_| unlimited.try_acquire(ip)).collect();
        assert_eq!(many.len(), 100);
    }

    #[tokio::test]
    async fn large_answers_hold_their_memory_until_sent() {
        use http_body_util::BodyExt;
        let limits = Limits::new(HttpLimits {
            answer_memory_bytes: 100 * 1024,
            ..HttpLimits::default()
        });
        let a = limits
            .answer("application/json", vec![b'x'; 80 * 1024])
            .unwrap_or_else(|e| panic!("{e:?}"));
        // 80 KiB of 100 are taken: a second such answer is refused while the first is unsent.
        let refused = limits.answer("application/json", vec![b'y'; 80 * 1024]);
        assert_eq!(
            refused.map(|_| ()).map_err(|f| f.error.code),
            Err(codes::UNAVAILABLE.to_owned())
        );
        let body = a
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body.to_bytes().len(), 80 * 1024);
        assert!(
            limits
                .answer("application/json", vec![b'z'; 80 * 1024])
                .is_ok()
        );
        // An answer bigger than all the memory still goes out when nothing else is sent.
        let big = Limits::new(HttpLimits {
            answer_memory_bytes: 4096,
            ..HttpLimits::default()
        });
        assert!(big.answer("application/json", vec![0; 1 << 20]).is_ok());
    }
}
