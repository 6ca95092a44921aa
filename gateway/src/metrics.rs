//! Metrics in the Prometheus text exposition format (`GET /metrics` on `--metrics-listen`,
//! docs/OPERATING.md "Monitor").
//!
//! The `metrics` facade keeps counting where it happens a line each (`metrics::counter!`),
//! without threading a registry through the engine; the recorder is
//! `metrics-exporter-prometheus`'s, installed once per process by [`install`], and rendered
//! by [`render`]. Without an installed recorder (a process that did not ask for metrics:
//! the library in tests) every count is a no-op.
//!
//! Every label is from a closed set, so that no client can grow the exposition: route
//! templates (the router's own, `unmatched` for anything else, never a raw path), methods
//! (`GET`, `POST`, `other`), status classes, the API's error codes (`other` for anything
//! unexpected), and the names below. No client address is ever a label.
//!
//! One recorder per process: a process that runs several engines (the library's tests, the
//! benchmark) sums them; a gateway process runs one.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use notch_protocol::api::codes;

pub const HTTP_REQUESTS: &str = "notch_gateway_http_requests_total";
pub const HTTP_DURATION: &str = "notch_gateway_http_request_duration_seconds";
pub const SUBMISSIONS_ACCEPTED: &str = "notch_gateway_submissions_accepted_total";
pub const SUBMISSIONS_REFUSED: &str = "notch_gateway_submissions_refused_total";
pub const POOL_TXS: &str = "notch_gateway_pool_transactions";
pub const POOL_BYTES: &str = "notch_gateway_pool_bytes";
pub const TIP_HEIGHT: &str = "notch_gateway_tip_height";
pub const TIP_TIME: &str = "notch_gateway_tip_timestamp_seconds";
pub const BLOCKS_PRODUCED: &str = "notch_gateway_blocks_produced_total";
pub const BLOCK_TXS: &str = "notch_gateway_block_transactions_total";
pub const STREAMS_OPEN: &str = "notch_gateway_stream_sessions";
pub const RATE_LIMITED: &str = "notch_gateway_rate_limited_total";
pub const OVERLOADED: &str = "notch_gateway_overloaded_total";
pub const DATABASE_ERRORS: &str = "notch_gateway_database_errors_total";
pub const READY: &str = "notch_gateway_ready";
pub const ROLE: &str = "notch_gateway_role";
pub const DATABASE_CHECK: &str = "notch_gateway_database_check_seconds";
pub const REPLICA_BEHIND: &str = "notch_gateway_replica_behind_blocks";
pub const REPLICA_LAST_HEARD: &str = "notch_gateway_replica_last_heard_seconds";

/// Request durations: from a cached answer (tens of µs) to the request time limit.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle). `Err` only
/// when another recorder was installed first, by something else.
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &DURATION_BUCKETS)
        .map_err(|e| format!("cannot set up the metrics: {e}"))?
        .build_recorder();
    let handle = recorder.handle();
    // Two threads racing here: the loser's recorder is refused and its handle unused.
    if ::metrics::set_global_recorder(recorder).is_err() {
        return HANDLE
            .get()
            .cloned()
            .ok_or_else(|| "another metrics recorder is installed in this process".into());
    }
    let _ = HANDLE.set(handle.clone());
    describe();
    Ok(handle)
}

/// The exposition text, or `None` when no recorder is installed.
pub fn render() -> Option<String> {
    let h = HANDLE.get()?;
    // Histograms keep their samples until upkeep folds them in; a scrape is a good time.
    h.run_upkeep();
    Some(h.render())
}

fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status class"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its answer's head, by route template"
    );
    describe_counter!(
        SUBMISSIONS_ACCEPTED,
        "Transactions accepted into the pool (duplicate=true: already known, answered again)"
    );
    describe_counter!(
        SUBMISSIONS_REFUSED,
        "Transactions refused, by the API's error code"
    );
    describe_gauge!(POOL_TXS, "Transactions in this writer's pool");
    describe_gauge!(
        POOL_BYTES,
        Unit::Bytes,
        "Bytes of the transactions in this writer's pool"
    );
    describe_gauge!(TIP_HEIGHT, "Height of the tip this process serves");
    describe_gauge!(
        TIP_TIME,
        Unit::Seconds,
        "Timestamp of the tip this process serves (Unix time)"
    );
    describe_counter!(BLOCKS_PRODUCED, "Blocks this process produced");
    describe_counter!(
        BLOCK_TXS,
        "Transactions in the blocks this process produced"
    );
    describe_gauge!(STREAMS_OPEN, "Open /v1/stream WebSocket sessions");
    describe_counter!(
        RATE_LIMITED,
        "Refusals by a per-client limit (limit=requests, connections or streams)"
    );
    describe_counter!(
        OVERLOADED,
        "Requests shed at once because as many were in flight as allowed"
    );
    describe_counter!(
        DATABASE_ERRORS,
        "Failed database operations (during=request, write, follow or health)"
    );
    describe_gauge!(
        READY,
        "1 when the last readiness check passed (GET /v1/health), else 0"
    );
    describe_gauge!(
        ROLE,
        "1 for this process's role (writer, read-only or standby)"
    );
    describe_gauge!(
        DATABASE_CHECK,
        Unit::Seconds,
        "How long the database took to answer the last readiness check"
    );
    describe_gauge!(
        REPLICA_BEHIND,
        "Blocks a replica's tip is behind the database's, at the last readiness check"
    );
    describe_gauge!(
        REPLICA_LAST_HEARD,
        Unit::Seconds,
        "Seconds since a replica's follower last read the database"
    );
}

/// Where a database operation failed, for [`DATABASE_ERRORS`].
#[derive(Clone, Copy, Debug)]
pub enum During {
    /// Serving a request (a read, or a write the writer reports back as a storage failure).
    Request,
    /// The writer's commit of submissions.
    Write,
    /// A replica's follower reading the database.
    Follow,
    /// The readiness check.
    Health,
}

pub fn database_error(during: During) {
    let during = match during {
        During::Request => "request",
        During::Write => "write",
        During::Follow => "follow",
        During::Health => "health",
    };
    ::metrics::counter!(DATABASE_ERRORS, "during" => during).increment(1);
}

/// Sets a gauge (values read when they are asked for: tip, readiness).
pub fn gauge(name: &'static str, value: f64) {
    ::metrics::gauge!(name).set(value);
}

/// Which per-client limit refused, for [`RATE_LIMITED`].
pub fn rate_limited(limit: &'static str) {
    ::metrics::counter!(RATE_LIMITED, "limit" => limit).increment(1);
}

/// Every error code a submission may be refused with (`other` for anything else, so that the
/// label set stays closed whatever a message holds).
const REFUSAL_CODES: &[&str] = &[
    codes::MALFORMED,
    codes::BAD_REQUEST,
    codes::TOO_LARGE,
    codes::BAD_ADDRESS,
    codes::WRONG_NETWORK,
    codes::UNKNOWN_ASSET,
    codes::DOUBLE_SPEND,
    codes::UNKNOWN_INPUT,
    codes::DUPLICATE_INPUT,
    codes::BAD_SIGNATURE,
    codes::UNBALANCED,
    codes::FEE_TOO_LOW,
    codes::ZERO_AMOUNT,
    codes::POOL_FULL,
    codes::UNAVAILABLE,
    codes::RATE_LIMITED,
    codes::TIMEOUT,
    codes::UNLISTED_ISSUANCE,
];

/// One submission's outcome: accepted (`duplicate` when it was already known) or refused
/// with `code`.
pub fn submission(outcome: Result<bool, &str>) {
    match outcome {
        Ok(duplicate) => {
            let duplicate = if duplicate { "true" } else { "false" };
            ::metrics::counter!(SUBMISSIONS_ACCEPTED, "duplicate" => duplicate).increment(1);
        }
        Err(code) => {
            let reason = REFUSAL_CODES
                .iter()
                .find(|c| **c == code)
                .copied()
                .unwrap_or("other");
            ::metrics::counter!(SUBMISSIONS_REFUSED, "reason" => reason).increment(1);
        }
    }
}

/// A transaction entered (`sign` 1) or left (-1) the writer's pool.
pub fn pool_changed(sign: f64, bytes: usize) {
    ::metrics::gauge!(POOL_TXS).increment(sign);
    ::metrics::gauge!(POOL_BYTES).increment(sign * bytes as f64);
}

/// The writer's pool was emptied (before it is loaded again).
pub fn pool_cleared() {
    ::metrics::gauge!(POOL_TXS).set(0.0);
    ::metrics::gauge!(POOL_BYTES).set(0.0);
}

/// The writer produced a block of `txs` transactions.
pub fn block_produced(txs: usize) {
    ::metrics::counter!(BLOCKS_PRODUCED).increment(1);
    ::metrics::counter!(BLOCK_TXS).increment(txs as u64);
}

/// When a replica's follower last read the database, as milliseconds since [`epoch`]
/// (0: never). A process has one follower.
static FOLLOWER_HEARD_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The follower read the database's pool log and tip.
pub fn follower_heard() {
    let ms = epoch().elapsed().as_millis() as u64;
    FOLLOWER_HEARD_MS.store(ms.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// How long ago the follower last read the database; `None` before the first time.
pub fn follower_last_heard() -> Option<Duration> {
    match FOLLOWER_HEARD_MS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => None,
        ms => Some(epoch().elapsed().saturating_sub(Duration::from_millis(ms))),
    }
}

/// An open stream session: counted in [`STREAMS_OPEN`] until dropped.
pub struct StreamSession(());

impl StreamSession {
    pub fn open() -> StreamSession {
        ::metrics::gauge!(STREAMS_OPEN).increment(1.0);
        StreamSession(())
    }
}

impl Drop for StreamSession {
    fn drop(&mut self) {
        ::metrics::gauge!(STREAMS_OPEN).decrement(1.0);
    }
}

/// Middleware (outermost, so that it sees every refusal too): counts each request by route
/// template, method and status class, and times it. The router's `MatchedPath` is the
/// template (`/v1/tx/{txid}`); a request no route matched is `unmatched`.
pub async fn track(req: Request, next: Next) -> Response {
    // Without a recorder (no `--metrics-listen`) nothing is counted: no label to build.
    if HANDLE.get().is_none() {
        return next.run(req).await;
    }
    let started = Instant::now();
    let route: String = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        _ => "other",
    };
    let resp = next.run(req).await;
    let class = match resp.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    ::metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => class)
        .increment(1);
    ::metrics::histogram!(HTTP_DURATION, "route" => route).record(started.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_reasons_are_a_closed_set() {
        // Without a recorder these are no-ops; what matters is the label choice.
        let pick = |code: &str| {
            REFUSAL_CODES
                .iter()
                .find(|c| **c == code)
                .copied()
                .unwrap_or("other")
        };
        assert_eq!(pick(codes::DOUBLE_SPEND), "double_spend");
        assert_eq!(pick("anything a message could hold"), "other");
        submission(Err("x"));
        submission(Ok(false));
    }
}
