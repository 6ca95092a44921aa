//! Slow clients and many clients against a real gateway over loopback: a slowloris header
//! writer, an idle connection, a body sent a byte at a time, a client that asks for answers
//! and never reads them, clients beyond the connection limits, a burst beyond the rate
//! limit, more requests in flight than allowed, too many WebSocket sessions, and hundreds of
//! concurrent clients. Each limit answers with its code (or, for connections beyond the
//! global limit, makes the client wait), nothing else answers 5xx, every error is JSON, and
//! afterwards the gateway still mints, mines and serves a verified chain.
//!
//! Per-client limits apply to loopback only with `--limit-loopback`; the tests use other
//! loopback addresses (127.0.0.2, …) as other clients.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use notch_protocol::api::*;

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(body)))
}

/// Waits until the gateway closes `s`; the time it took and the bytes it sent meanwhile.
fn until_closed(s: &mut TcpStream, within: Duration) -> (Duration, usize) {
    let start = Instant::now();
    let _ = s.set_read_timeout(Some(within));
    let mut got = 0;
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (start.elapsed(), got),
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("still open after {:?} ({got} bytes read)", start.elapsed())
            }
            // Reset: closed too.
            Err(_) => return (start.elapsed(), got),
        }
    }
}

/// Writes `bytes` one at a time, `every` apart, until the connection breaks or `stop`.
fn trickle(mut s: TcpStream, bytes: Vec<u8>, every: Duration, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        for b in bytes {
            if stop.load(Ordering::Relaxed) || s.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(every);
        }
    });
}

/// A connection whose receive buffer is small, so that a client that does not read makes
/// the gateway's writes wait (TCP keeps the rest in the gateway's send buffer).
fn small_window(g: &Gateway) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
        let _ = socket.set_recv_buffer_size(4096);
        let addr = g.addr().parse().unwrap_or_else(|e| panic!("{e}"));
        let tcp = socket
            .connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let std = tcp.into_std().unwrap_or_else(|e| panic!("{e}"));
        // tokio's socket is non-blocking; the reads here wait, with a timeout
        // (`until_closed`). Left non-blocking, a read between two of the
        // gateway's writes returned WouldBlock and looked like a hang.
        std.set_nonblocking(false).unwrap_or_else(|e| panic!("{e}"));
        std
    })
}

both_backends!(slow_clients_are_cut_off);
/// Slowloris, an idle connection, a slow body and a reader that never reads: each is cut
/// off by its timeout while other clients are served.
fn slow_clients_are_cut_off(b: Backend) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut args = vec![
        "--header-timeout-secs",
        "2",
        "--request-timeout-secs",
        "2",
        "--write-timeout-secs",
        "2",
    ];
    // 400 blocks are mined below: without an fsync per commit on SQLite (the PostgreSQL
    // test cluster runs with fsync off).
    if b.is_sqlite() {
        args.extend(["--sqlite-sync", "normal"]);
    }
    let mut g = Gateway::sandbox_with(&b, &dir.path().join("gw"), &args);
    // 400 blocks: a headers answer of about 140 KB.
    for _ in 0..4 {
        mine(&g, 100);
    }
    let stop = Arc::new(AtomicBool::new(false));

    // Slowloris: the head, a byte every 300 ms. Closed at the header timeout, no answer.
    let mut loris = raw(&g, Duration::from_secs(10));
    let head = b"GET /v1/health HTTP/1.1\r\nHost: gateway\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    trickle(
        loris.try_clone().unwrap_or_else(|e| panic!("{e}")),
        head.to_vec(),
        Duration::from_millis(300),
        stop.clone(),
    );
    // An idle connection: closed at the same timeout.
    let mut idle = raw(&g, Duration::from_secs(10));
    // A body a byte every 300 ms: 408 `timeout` at the request timeout.
    let mut slow_body = raw(&g, Duration::from_secs(10));
    slow_body
        .write_all(b"POST /v1/tx HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        .unwrap_or_else(|e| panic!("{e}"));
    trickle(
        slow_body.try_clone().unwrap_or_else(|e| panic!("{e}")),
        vec![b' '; 100],
        Duration::from_millis(300),
        stop.clone(),
    );

    // Meanwhile everyone else is served at once.
    let t = Instant::now();
    let h: HealthResponse = get(&g, "/v1/health");
    assert_eq!(h.tip_height, 400);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    let (status, _, body) =
        read_answer(&mut slow_body).unwrap_or_else(|e| panic!("slow body: {e}"));
    assert_eq!(status, 408, "slow body");
    assert_api_error(status, &json(&body), "slow body");
    assert_eq!(json(&body)["code"], "timeout");

    let (took, got) = until_closed(&mut loris, Duration::from_secs(8));
    assert!(took < Duration::from_secs(5), "slowloris held {took:?}");
    assert_eq!(got, 0, "slowloris got an answer");
    let (took, _) = until_closed(&mut idle, Duration::from_secs(8));
    assert!(
        took < Duration::from_secs(5),
        "idle connection held {took:?}"
    );
    stop.store(true, Ordering::Relaxed);

    // A client that pipelines 60 headers requests (about 8 MB of answers) and never reads:
    // once the send buffers are full the gateway's writes wait, and 2 s later it closes.
    let mut deaf = small_window(&g);
    let req = b"POST /v1/headers HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"locator\":[]}";
    let one: HeadersResponse = post(&g, "/v1/headers", &HeadersRequest::default());
    let answer_len = serde_json::to_vec(&one).map(|v| v.len()).unwrap_or(0);
    for _ in 0..60 {
        deaf.write_all(req).unwrap_or_else(|e| panic!("{e}"));
    }
    let rss_before = g.rss_kib();
    std::thread::sleep(Duration::from_millis(500));
    // Still serving others while the deaf client waits.
    let t = Instant::now();
    let again: HeadersResponse = post(&g, "/v1/headers", &HeadersRequest::default());
    assert_eq!(again.headers.len(), 401);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    std::thread::sleep(Duration::from_secs(4));
    let (_, got) = until_closed(&mut deaf, Duration::from_secs(10));
    assert!(
        got < 60 * answer_len / 2,
        "the deaf client was sent {got} of {} bytes",
        60 * answer_len
    );
    if let (Some(before), Some(after)) = (rss_before, g.rss_kib()) {
        eprintln!("gateway RSS {before} KiB -> {after} KiB");
        assert!(after < 400 * 1024, "RSS {after} KiB");
    }
    assert!(g.alive());
    round_trip(&g);
    eprintln!("slow clients: {:?}", started.elapsed());
}

/// Opens `n` connections from `local` and makes one request on each (so the gateway has
/// accepted them all); they stay open, idle.
fn hold(g: &Gateway, local: &str, n: usize) -> Vec<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let addr: std::net::SocketAddr = g.addr().parse().unwrap_or_else(|e| panic!("{e}"));
    let ip: std::net::IpAddr = local.parse().unwrap_or_else(|e| panic!("{e}"));
    (0..n)
        .map(|i| {
            let mut s = rt.block_on(async {
                let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
                socket
                    .bind(std::net::SocketAddr::new(ip, 0))
                    .unwrap_or_else(|e| panic!("bind {local}: {e}"));
                let tcp = socket
                    .connect(addr)
                    .await
                    .unwrap_or_else(|e| panic!("connect: {e}"));
                tcp.into_std().unwrap_or_else(|e| panic!("{e}"))
            });
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: gateway\r\n\r\n")
                .unwrap_or_else(|e| panic!("{e}"));
            let (status, _, body) =
                read_answer(&mut s).unwrap_or_else(|e| panic!("#{i} from {local}: {e}"));
            assert_eq!(
                status,
                200,
                "#{i} from {local}: {}",
                String::from_utf8_lossy(&body)
            );
            s
        })
        .collect()
}

both_backends!(connection_limits_refuse_per_client_and_delay_beyond_all);
/// Beyond its connection limit a client's new connection gets 429 `rate_limited` and is
/// closed; beyond the global limit new connections wait (in the listen queue) until one
/// closes. Slots come back when connections close.
fn connection_limits_refuse_per_client_and_delay_beyond_all(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::sandbox_with(
        &b,
        &dir.path().join("gw"),
        &[
            "--limit-loopback",
            "--max-connections",
            "250",
            "--max-connections-per-client",
            "100",
            "--rate-limit-per-sec",
            "0",
        ],
    );
    let first = hold(&g, "127.0.0.1", 100);
    let c = client_from("127.0.0.1");
    let resp = c
        .get(g.url("/v1/health"))
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body = json(&resp.bytes().unwrap_or_default());
    assert_api_error(429, &body, "101st connection");
    assert_eq!(body["code"], "rate_limited");
    // Another client is not concerned.
    let (status, body) = send(client_from("127.0.0.2").get(g.url("/v1/health")));
    assert_eq!(status, 200, "another client: {body}");

    // 250 in all: a new connection waits.
    let second = hold(&g, "127.0.0.2", 100);
    let mut third = hold(&g, "127.0.0.3", 50);
    let waiting = reqwest::blocking::Client::builder()
        .no_proxy()
        .local_address("127.0.0.4".parse::<std::net::IpAddr>().ok())
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    let r = waiting.get(g.url("/v1/health")).send();
    assert!(r.is_err(), "answered beyond the global limit: {r:?}");
    assert!(t.elapsed() >= Duration::from_millis(900));
    // One closes: the next one is served.
    third.truncate(40);
    std::thread::sleep(Duration::from_millis(200));
    let (status, body) = send(client_from("127.0.0.4").get(g.url("/v1/health")));
    assert_eq!(status, 200, "{body}");
    drop((first, second, third));
    std::thread::sleep(Duration::from_millis(300));
    // All slots are back: a client may open its 100 again.
    let again = hold(&g, "127.0.0.1", 100);
    drop(again);
    // The server counts a connection until it has seen it close: on a busy
    // machine (the suite runs both backends at once) that can take a while.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = send(client_from("127.0.0.1").get(g.url("/v1/health")));
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed connections still count after 10 s: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    round_trip(&g);
}

both_backends!(rate_limit_load_shedding_and_stream_limits_answer_with_their_codes);
/// A burst beyond the rate limit gets 429 `rate_limited` with `Retry-After` (other clients
/// are not concerned, and the client is served again after the wait); requests beyond the
/// in-flight limit get 503 `unavailable` at once; WebSocket sessions beyond their limits
/// are refused with 429 (per client) and 503 (global).
fn rate_limit_load_shedding_and_stream_limits_answer_with_their_codes(b: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::sandbox_with(
        &b,
        &dir.path().join("gw"),
        &[
            "--limit-loopback",
            "--rate-limit-per-sec",
            "20",
            "--rate-limit-burst",
            "20",
            "--max-requests",
            "8",
            "--request-timeout-secs",
            "3",
            "--max-streams",
            "5",
            "--max-streams-per-client",
            "3",
        ],
    );
    // A burst of 60 from one client.
    let c = client_from("127.0.0.1");
    let mut ok = 0;
    let mut limited = 0;
    let burst = Instant::now();
    for i in 0..60 {
        let resp = c
            .get(g.url("/v1/health"))
            .send()
            .unwrap_or_else(|e| panic!("{e}"));
        match resp.status().as_u16() {
            200 => ok += 1,
            429 => {
                let retry: u64 = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                assert!(retry >= 1, "Retry-After {retry}");
                let body = json(&resp.bytes().unwrap_or_default());
                assert_api_error(429, &body, &format!("burst #{i}"));
                assert_eq!(body["code"], "rate_limited");
                limited += 1;
            }
            s => panic!("burst #{i}: HTTP {s}"),
        }
    }
    // The burst of 20, plus what the rate (20/s) gave back while the burst lasted.
    let refilled = (20.0 * burst.elapsed().as_secs_f64()).ceil() as usize;
    assert!(
        ok >= 20 && ok <= 21 + refilled,
        "{ok} served of 60 in {:?}",
        burst.elapsed()
    );
    assert!(limited >= 1, "no request was limited");
    assert_eq!(ok + limited, 60);
    // Another client meanwhile: served.
    let (status, body) = send(client_from("127.0.0.2").get(g.url("/v1/health")));
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_millis(1100));
    let (status, body) = send(c.get(g.url("/v1/health")));
    assert_eq!(status, 200, "after the wait: {body}");

    // Eight requests in flight (bodies that never finish), from three clients.
    let mut slow: Vec<TcpStream> = (0..8)
        .map(|i| {
            let mut s = raw(&g, Duration::from_secs(10));
            s.write_all(format!("POST /v1/tx HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"tx\": \"{i}").as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let resp = client_from("127.0.0.3")
        .get(g.url("/v1/info"))
        .send()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body = json(&resp.bytes().unwrap_or_default());
    assert_api_error(503, &body, "shed");
    assert_eq!(body["code"], "unavailable");
    // The eight run into the request time limit.
    for (i, s) in slow.iter_mut().enumerate() {
        let (status, _, body) = read_answer(s).unwrap_or_else(|e| panic!("slow #{i}: {e}"));
        assert_eq!(status, 408, "slow #{i}");
        assert_eq!(json(&body)["code"], "timeout");
    }
    let (status, body) = send(client_from("127.0.0.3").get(g.url("/v1/info")));
    assert_eq!(status, 200, "after the slow ones: {body}");

    // Streams: 3 per client, 5 in all.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let open = |local: &'static str| {
            let addr: std::net::SocketAddr = g.addr().parse().unwrap_or_else(|e| panic!("{e}"));
            let url = format!("ws://{}/v1/stream", g.addr());
            async move {
                let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
                let ip: std::net::IpAddr = local.parse().unwrap_or_else(|e| panic!("{e}"));
                socket
                    .bind(std::net::SocketAddr::new(ip, 0))
                    .unwrap_or_else(|e| panic!("{e}"));
                let tcp = socket.connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
                tokio_tungstenite::client_async(url, tcp).await
            }
        };
        let refused = |r: Result<_, tokio_tungstenite::tungstenite::Error>,
                       status: u16,
                       code: &str| {
            match r {
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                    assert_eq!(resp.status().as_u16(), status);
                    let body = json(resp.body().as_deref().unwrap_or_default());
                    assert_api_error(status, &body, "stream refused");
                    assert_eq!(body["code"], code);
                }
                Err(e) => panic!("expected HTTP {status}, got {e}"),
                Ok(_) => panic!("expected HTTP {status}, got a stream"),
            }
        };
        let mut streams = Vec::new();
        for _ in 0..3 {
            streams.push(open("127.0.0.5").await.unwrap_or_else(|e| panic!("{e}")));
        }
        refused(open("127.0.0.5").await.map(|_| ()), 429, "rate_limited");
        for _ in 0..2 {
            streams.push(open("127.0.0.6").await.unwrap_or_else(|e| panic!("{e}")));
        }
        refused(open("127.0.0.7").await.map(|_| ()), 503, "unavailable");
        drop(streams);
        // Closed sessions give their slots back.
        let mut reopened = false;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if open("127.0.0.5").await.is_ok() {
                reopened = true;
                break;
            }
        }
        assert!(reopened, "stream slots did not come back");
    });
    // The round trip's faucet and mine calls are within the rate.
    std::thread::sleep(Duration::from_millis(1100));
    round_trip(&g);
}

both_backends!(hundreds_of_concurrent_clients_get_answers_or_their_codes);
/// 300 concurrent clients from ten addresses, each making a mix of good and bad requests
/// (with the default limits): every answer is a 200, a JSON 4xx, or a JSON 503 from load
/// shedding; nothing else.
fn hundreds_of_concurrent_clients_get_answers_or_their_codes(b: Backend) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let g = Gateway::sandbox_with(&b, &dir.path().join("gw"), &["--limit-loopback"]);
    let coin = faucet(&g, &key(9), "NOTE", 1_000_000);
    mine(&g, 3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let base = g.base.clone();
    let address = address(&key(9));
    let counts = rt.block_on(async move {
        let mut tasks = Vec::new();
        for n in 0..300usize {
            let base = base.clone();
            let address = address.clone();
            let txid = coin.txid.to_hex();
            tasks.push(tokio::spawn(async move {
                let local: std::net::IpAddr = format!("127.0.0.{}", 10 + n % 10)
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}"));
                let c = reqwest::Client::builder()
                    .no_proxy()
                    .local_address(local)
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"));
                let mut seen = Vec::new();
                for step in 0..10usize {
                    let req = match (n + step) % 10 {
                        0 => c.get(format!("{base}/v1/health")),
                        1 => c.get(format!("{base}/v1/info")),
                        2 => c
                            .get(format!("{base}/v1/blocks?from=0"))
                            .header("accept", "application/octet-stream"),
                        3 => c
                            .post(format!("{base}/v1/headers"))
                            .json(&HeadersRequest::default()),
                        4 => c.get(format!("{base}/v1/mempool?since=0")),
                        5 => c.get(format!("{base}/v1/tx/{txid}/status")),
                        6 => c
                            .post(format!("{base}/v1/tx"))
                            .header("content-type", "application/json")
                            .body("{\"tx\": \"zz\"}"),
                        7 => c.get(format!("{base}/v1/address/{address}/utxos")),
                        8 => c.post(format!("{base}/v1/txs")).json(&SubmitBatchRequest {
                            txs: vec!["00".into(); 3],
                        }),
                        _ => c.get(format!("{base}/v1/nope")),
                    };
                    let resp = req
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("client {n}: {e}"));
                    let status = resp.status().as_u16();
                    let ct = resp
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let bytes = resp.bytes().await.unwrap_or_default();
                    assert!(
                        status < 500 || status == 503,
                        "client {n} step {step}: HTTP {status}"
                    );
                    if status >= 400 {
                        assert!(
                            ct.starts_with("application/json"),
                            "client {n}: {status} as {ct}"
                        );
                        assert_api_error(status, &json(&bytes), &format!("client {n} step {step}"));
                    }
                    seen.push(status);
                }
                seen
            }));
        }
        let mut counts = std::collections::BTreeMap::new();
        for t in tasks {
            for s in t.await.unwrap_or_else(|e| panic!("{e}")) {
                *counts.entry(s).or_insert(0u32) += 1;
            }
        }
        counts
    });
    eprintln!("answers by status: {counts:?} in {:?}", started.elapsed());
    assert_eq!(counts.values().sum::<u32>(), 3000);
    // Most are served even so (on this machine about 55 %; the rest is rate limited, shed or
    // refused as asked).
    assert!(counts.get(&200).copied().unwrap_or(0) >= 500, "{counts:?}");
    round_trip(&g);
}
