//! What an operator monitors (docs/OPERATING.md, "Monitor"): readiness `GET /v1/health`
//! (asks the database, 503 with a reason when this process cannot serve), liveness
//! `GET /v1/health/live`, and `GET /metrics` on `--metrics-listen` in the Prometheus text
//! format, with counters that move as submissions are accepted and refused. Neither shows a
//! secret.

mod common;

use std::time::{Duration, Instant};

use common::*;
use notch_protocol::api::HealthResponse;
use notch_protocol::public_key;

/// One sample of the exposition: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the text exposition format strictly (every line a `# HELP`, a `# TYPE` or a
/// sample `name{label="value",…} number`), panicking on any other line.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or("");
            let name = parts.next().unwrap_or("");
            let tail = parts.next().unwrap_or("");
            assert!(is_name(name), "bad metric name in {line:?}");
            match kind {
                "HELP" => assert!(!tail.is_empty(), "empty help: {line:?}"),
                "TYPE" => assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&tail),
                    "bad type in {line:?}"
                ),
                _ => panic!("unknown comment line {line:?}"),
            }
            continue;
        }
        let (head, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}")),
        };
        let (name, labels) = match head.split_once('{') {
            None => (head, Vec::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                (name, parse_labels(body, line))
            }
        };
        assert!(is_name(name), "bad metric name in {line:?}");
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

fn parse_labels(body: &str, line: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label in {line:?}"));
        assert!(is_name(key), "bad label name {key:?} in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) if c == '\\' || c == '"' => value.push(c),
                    _ => panic!("bad escape in {line:?}"),
                },
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        labels.push((key.to_owned(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

/// The sum of the samples of `name` that carry every label of `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

fn scrape(url: &str) -> (String, Vec<Sample>) {
    let resp = client()
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "GET {url}");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().unwrap_or_default();
    let samples = parse_exposition(&text);
    (text, samples)
}

fn health(g: &Gateway) -> (u16, HealthResponse, String) {
    let resp = client()
        .get(g.url("/v1/health"))
        .send()
        .unwrap_or_else(|e| panic!("GET /v1/health: {e}"));
    let status = resp.status().as_u16();
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let text = resp.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, body, text)
}

const PASSWORD: &str = "Sekr3t-pw-never-shown";

/// No secret in a body: neither the database's password nor any database URL.
fn assert_no_secret(what: &str, text: &str) {
    assert!(
        !text.contains(PASSWORD),
        "{what} shows the password: {text}"
    );
    assert!(!text.contains("postgres://"), "{what} shows a URL: {text}");
    assert!(!text.contains("***"), "{what} shows a redacted URL: {text}");
}

fn health_and_metrics_of_a_live_gateway(backend: Backend) {
    // On PostgreSQL, the URL holds a password (the cluster trusts loopback and ignores it).
    let backend = match backend.database() {
        Some(db) => db.with_password(PASSWORD),
        None => backend,
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("gw");
    let g = Gateway::sandbox_with(&backend, &data, &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = g.metrics_url();
    assert!(metrics.starts_with("http://127.0.0.1:"), "{metrics}");

    let (status, h, text) = health(&g);
    assert_eq!(status, 200, "{text}");
    assert_eq!(h.status, "ok");
    assert_eq!(h.role.as_deref(), Some("writer"));
    let name = if backend.is_sqlite() {
        "sqlite"
    } else {
        "postgres"
    };
    assert_eq!(h.backend.as_deref(), Some(name));
    assert_eq!(h.tip_height, 0);
    assert_eq!(h.tip_hash.as_ref().map(String::len), Some(64));
    assert_eq!(h.pool_txs, Some(0));
    let db = h
        .database
        .unwrap_or_else(|| panic!("no database in {text}"));
    assert!(db.reachable && db.tip_height == Some(0), "{text}");
    assert!(h.replica.is_none() && h.reason.is_none(), "{text}");
    assert_no_secret("/v1/health", &text);
    let (status, live) = send(client().get(g.url("/v1/health/live")));
    assert_eq!(status, 200, "{live}");
    assert_eq!(live["status"], "ok");
    assert!(
        live.get("database").is_none(),
        "liveness asks no database: {live}"
    );
    assert_no_secret("/v1/health/live", &live.to_string());

    let (_, before) = scrape(&metrics);
    // A payment accepted, the same again (a duplicate), a double spend of its coin refused,
    // and a refusal of bytes that are no transaction.
    let info = info(&g);
    let native = asset_id(&info, "NOTE");
    let payer = key(1);
    let coin = faucet(&g, &payer, "NOTE", 1_000_000);
    mine(&g, 1);
    let to = public_key(&key(2));
    let tx = pay(native, &payer, coin, 1_000_000, to, 10_000, 1);
    assert!(!submit_ok(&g, &tx).duplicate);
    assert!(submit_ok(&g, &tx).duplicate);
    let (status, body) = submit(&g, &pay(native, &payer, coin, 1_000_000, to, 20_000, 2));
    assert_eq!((status, body["code"].as_str()), (409, Some("double_spend")));
    let (status, body) = send(
        client()
            .post(g.url("/v1/tx"))
            .json(&serde_json::json!({"tx": "00ff"})),
    );
    assert_eq!((status, body["code"].as_str()), (400, Some("malformed")));
    // A path with an id, and one no route has.
    let txid = tx.txid().to_hex();
    let _ = send(client().get(g.url(&format!("/v1/tx/{txid}/status"))));
    let _ = send(client().get(g.url("/v1/no/such/route")));

    let (text, after) = scrape(&metrics);
    assert_no_secret("/metrics", &text);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let accepted = "notch_gateway_submissions_accepted_total";
    let refused = "notch_gateway_submissions_refused_total";
    // The faucet's mint is the engine's own submission, not counted; the payment is.
    assert_eq!(moved(accepted, &[("duplicate", "false")]), 1.0, "{text}");
    assert_eq!(moved(accepted, &[("duplicate", "true")]), 1.0, "{text}");
    assert_eq!(moved(refused, &[("reason", "double_spend")]), 1.0, "{text}");
    assert_eq!(moved(refused, &[("reason", "malformed")]), 1.0, "{text}");
    let requests = "notch_gateway_http_requests_total";
    let post_tx = [("route", "/v1/tx"), ("method", "POST")];
    assert_eq!(moved(requests, &post_tx), 4.0, "{text}");
    assert_eq!(
        moved(requests, &[("route", "/v1/tx"), ("status", "4xx")]),
        2.0
    );
    assert_eq!(
        moved(
            requests,
            &[("route", "/v1/tx/{txid}/status"), ("status", "2xx")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(moved(requests, &[("route", "unmatched")]), 1.0, "{text}");
    // Labels are templates: no id, no raw path, no address of a client.
    assert!(!text.contains(&txid), "a txid in a label: {text}");
    assert!(
        !text.contains("/v1/no/such"),
        "a raw path in a label: {text}"
    );
    assert!(!text.contains("127.0.0.1"), "an address in a label: {text}");
    let count = value(
        &after,
        "notch_gateway_http_request_duration_seconds_count",
        &[("route", "/v1/tx")],
    );
    assert!(count >= 4.0, "{text}");
    let inf = value(
        &after,
        "notch_gateway_http_request_duration_seconds_bucket",
        &[("route", "/v1/tx"), ("le", "+Inf")],
    );
    assert_eq!(inf, count, "{text}");
    // The pool holds the payment; one block was made (the faucet's); the tip is 1.
    assert_eq!(value(&after, "notch_gateway_pool_transactions", &[]), 1.0);
    let bytes = value(&after, "notch_gateway_pool_bytes", &[]);
    assert_eq!(bytes, tx.encode().len() as f64, "{text}");
    assert_eq!(value(&after, "notch_gateway_tip_height", &[]), 1.0);
    assert_eq!(moved("notch_gateway_blocks_produced_total", &[]), 1.0);
    assert_eq!(value(&after, "notch_gateway_ready", &[]), 1.0);
    assert_eq!(
        value(&after, "notch_gateway_role", &[("role", "writer")]),
        1.0
    );
    assert_eq!(
        value(&after, "notch_gateway_role", &[("role", "read-only")]),
        0.0
    );
    // A stream session is counted while it is open.
    let ws_url = format!("ws://{}/v1/stream", g.addr());
    let (ws, _) = tokio_tungstenite::tungstenite::connect(ws_url.as_str())
        .unwrap_or_else(|e| panic!("stream: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, s) = scrape(&metrics);
        if value(&s, "notch_gateway_stream_sessions", &[]) == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the open stream is not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(ws);
    // The metrics listener serves nothing else, and the API does not serve metrics.
    let (status, _) = send(client().get(metrics.replace("/metrics", "/v1/info")));
    assert_eq!(status, 404);
    let (status, _) = send(client().get(g.url("/metrics")));
    assert_eq!(status, 404);
}

both_backends!(health_and_metrics_of_a_live_gateway);

/// Polls readiness until it answers `want`, at most `within`; returns the last answer.
fn wait_health(g: &Gateway, want: u16, within: Duration) -> (HealthResponse, String) {
    let deadline = Instant::now() + within;
    loop {
        let (status, h, text) = health(g);
        if status == want {
            return (h, text);
        }
        assert!(
            Instant::now() < deadline,
            "readiness still {status}, not {want}, after {within:?}: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Readiness asks the database: a database that refuses connections, or one that does not
/// answer in time, makes it 503 with the reason, quickly (the check is bounded), while
/// liveness stays 200; once the database is back, 200 again. PostgreSQL only: an embedded
/// SQLite file cannot be made unreachable from outside the process.
#[test]
fn readiness_is_503_while_the_database_cannot_answer() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let Some(db) = backend.database() else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("gw");
    let g = Gateway::sandbox_with(
        &backend,
        &data,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--health-timeout-ms",
            "1000",
        ],
    );
    let metrics = g.metrics_url();
    wait_health(&g, 200, Duration::from_secs(5));

    // Unreachable: the database refuses connections and its open ones are closed.
    db.psql_admin(&format!(
        "ALTER DATABASE {0} ALLOW_CONNECTIONS false; \
         SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{0}'",
        db.name
    ));
    let started = Instant::now();
    let (h, text) = wait_health(&g, 503, Duration::from_secs(5));
    assert_eq!(h.status, "unavailable", "{text}");
    let reason = h.reason.unwrap_or_default();
    assert!(reason.contains("database"), "{text}");
    assert_eq!(h.database.map(|d| d.reachable), Some(false), "{text}");
    assert_no_secret("/v1/health", &text);
    // Within the cache (1 s) plus the check's bound, not the client's 30 s.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let (status, _) = send(client().get(g.url("/v1/health/live")));
    assert_eq!(status, 200);
    let (_, s) = scrape(&metrics);
    assert_eq!(value(&s, "notch_gateway_ready", &[]), 0.0);
    assert!(
        value(
            &s,
            "notch_gateway_database_errors_total",
            &[("during", "health")]
        ) >= 1.0
    );
    db.psql_admin(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS true",
        db.name
    ));
    wait_health(&g, 200, Duration::from_secs(10));

    // Too slow: a transaction holds the blocks table, which the check reads, for 5 s.
    std::thread::scope(|scope| {
        let holder = scope.spawn(|| {
            db.psql("BEGIN; LOCK TABLE blocks IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(5); COMMIT")
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while db.psql("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation = 'blocks'::regclass") != "1" {
            assert!(Instant::now() < deadline, "the lock was not taken");
            std::thread::sleep(Duration::from_millis(50));
        }
        let asked = Instant::now();
        let (h, text) = wait_health(&g, 503, Duration::from_secs(4));
        assert!(
            h.reason
                .unwrap_or_default()
                .contains("did not answer within 1000 ms"),
            "{text}"
        );
        // The first answer after the cache ran out came after the check's 1 s bound.
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "{:?}",
            asked.elapsed()
        );
        // While that check still waits, another is not started: answers stay prompt.
        std::thread::sleep(Duration::from_millis(1100));
        let t = Instant::now();
        let (status, _, text) = health(&g);
        assert_eq!(status, 503, "{text}");
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        let _ = holder.join();
    });
    wait_health(&g, 200, Duration::from_secs(10));
}

/// A replica's readiness: 200 while it follows the database; 503 once its tip has differed
/// from the database's for longer than `--health-max-behind-secs`. The replica connects as
/// a role with `SELECT` only (all a replica needs, docs/OPERATING.md); taking that right on
/// the pool log away stops its follower (which reads the log first) but not its readiness
/// check (which reads the blocks) nor the writer, which makes a block meanwhile. Given back,
/// the replica catches up and is ready again.
#[test]
fn a_replica_that_does_not_follow_is_not_ready() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let Some(db) = backend.database() else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let writer = Gateway::sandbox(&backend, &dir.path().join("writer"));
    let role = format!("ro_{}", db.name);
    db.psql(&format!(
        "CREATE ROLE {role} LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
    ));
    let url = db.url.replacen("://postgres@", &format!("://{role}@"), 1);
    let replica_dir = dir.path().join("replica");
    std::fs::create_dir_all(&replica_dir).unwrap_or_else(|e| panic!("{e}"));
    // The replica's own flags, not the backend's (that database belongs to the writer).
    let replica = Gateway::spawn(
        &Backend::Sqlite,
        &replica_dir,
        &[
            "--sandbox",
            "--read-only",
            "--database",
            &url,
            "--block-interval",
            "0",
            "--health-max-behind-secs",
            "1",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let metrics = replica.metrics_url();
    let (h, text) = wait_health(&replica, 200, Duration::from_secs(5));
    assert_eq!(h.role.as_deref(), Some("read-only"), "{text}");
    assert_eq!(h.pool_txs, None, "{text}");
    let r = h
        .replica
        .unwrap_or_else(|| panic!("no replica part: {text}"));
    assert_eq!(r.behind_blocks, 0, "{text}");
    // The follower's first look may come after the first check; by the next it has looked.
    if r.last_heard_ms_ago.is_none() {
        std::thread::sleep(Duration::from_millis(1100));
        let (_, h, text) = health(&replica);
        let heard = h.replica.and_then(|r| r.last_heard_ms_ago);
        assert!(heard.is_some_and(|ms| ms < 2000), "{text}");
    }

    db.psql(&format!("REVOKE SELECT ON pool_log FROM {role}"));
    mine(&writer, 1);
    let (h, text) = wait_health(&replica, 503, Duration::from_secs(6));
    let reason = h.reason.unwrap_or_default();
    assert!(reason.contains("not keeping up"), "{text}");
    assert_eq!(h.tip_height, 0, "{text}");
    assert_eq!(h.database.and_then(|d| d.tip_height), Some(1), "{text}");
    let r = h
        .replica
        .unwrap_or_else(|| panic!("no replica part: {text}"));
    assert_eq!(r.behind_blocks, 1, "{text}");
    assert!(r.behind_ms.is_some_and(|ms| ms > 1000), "{text}");
    assert_no_secret("/v1/health", &text);
    let (_, s) = scrape(&metrics);
    assert_eq!(value(&s, "notch_gateway_replica_behind_blocks", &[]), 1.0);
    assert_eq!(value(&s, "notch_gateway_ready", &[]), 0.0);
    assert!(
        value(
            &s,
            "notch_gateway_database_errors_total",
            &[("during", "follow")]
        ) >= 1.0
    );
    assert_eq!(
        value(&s, "notch_gateway_role", &[("role", "read-only")]),
        1.0
    );

    db.psql(&format!("GRANT SELECT ON pool_log TO {role}"));
    let (h, text) = wait_health(&replica, 200, Duration::from_secs(10));
    assert_eq!(h.tip_height, 1, "{text}");
}
