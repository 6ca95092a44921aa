//! `notch-peer-bench`: what tallies cost, beside what MyCHIPs's own code does on the same
//! machine in the same run: chit signing and verification (notch-core vs Node's WebCrypto,
//! which MyCHIPs uses), Noise IK handshakes (snow, which notch-core's peer module uses, vs npm
//! noise-protocol, MyCHIPs's library), the round trip of a signed chit message over a
//! Noise session on loopback TCP, and the full round trip of a payment between two wallets
//! (real SQLite files, their agents on loopback TCP). Writes a markdown report.
//!
//! `cargo run --release -p notch-tests --bin notch-peer-bench -- --out bench/results/peer.md
//! [--seconds S] [--payments N]` (or `cargo xtask bench peer`). Needs Node and npm (the
//! interop packages are installed into
//! tests/interop/*/node_modules when missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use notch_core::keys::{RecoveryPhrase, TallyKey, WalletKeys};
use notch_core::peer::{AgentId, LocalKey, PeerConfig, accept, connect};
use notch_core::tally::{ChitBuilder, ChitRecord, Side};
use notch_core::{AgentConfig, ChitInfo, TicketOptions, Wallet};
use notch_tests::tally::NO_GATEWAY;
use notch_tests::wallet::new_wallet;
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, String>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `node script args…` in `dir` (after `npm ci` if its packages are missing): its stdout as
/// JSON.
fn node_json(dir: &Path, script: &str, args: &[&str]) -> Result<Value> {
    if !dir.join("node_modules").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .status()
            .map_err(|e| format!("cannot run npm (is Node installed?): {e}"))?;
        if !status.success() {
            return Err(format!("npm ci failed in {}", dir.display()));
        }
    }
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run node: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "node {script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{'));
    serde_json::from_str(line.unwrap_or(""))
        .map_err(|e| format!("node {script} printed no JSON object ({e}): {text}"))
}

fn per_second(mut op: impl FnMut() -> bool, seconds: f64) -> f64 {
    for _ in 0..20 {
        op();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        if op() {
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn tally_key() -> Result<TallyKey> {
    let mut scalar = [0x11u8; 66];
    scalar[0] = 0;
    TallyKey::from_scalar_bytes(&scalar).map_err(|e| e.to_string())
}

/// The same chit-sized record as tests/interop/mychips-records/bench.mjs.
fn chit() -> Result<ChitRecord> {
    ChitBuilder::transaction(
        "6c1f3b0e-2d4a-4e5b-8c7d-9e0f1a2b3c4d",
        Side::Foil,
        "0a1b2c3d-4e5f-4a6b-8c9d-0e1f2a3b4c5d",
        "2024-05-26T10:00:00.5+00:00",
        123456,
    )
    .memo("Lunch")
    .reference(json!({"invoice": "A-17"}))
    .build()
    .map_err(|e| e.to_string())
}

/// IK handshakes per second with snow, initiator and responder in one thread, static keys
/// made once, as bench.mjs does with noise-protocol.
fn snow_ik_rate(seconds: f64) -> Result<f64> {
    let pattern = "Noise_IK_25519_ChaChaPoly_BLAKE2b";
    let params: snow::params::NoiseParams = pattern.parse().map_err(|e| format!("{e:?}"))?;
    let ikp = notch_core::peer::noise_builder(params.clone())
        .generate_keypair()
        .map_err(|e| e.to_string())?;
    let rkp = notch_core::peer::noise_builder(params.clone())
        .generate_keypair()
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1024];
    let mut out = vec![0u8; 1024];
    let mut one = || -> bool {
        let mut run = || -> std::result::Result<(), snow::Error> {
            let mut i = notch_core::peer::noise_builder(params.clone())
                .local_private_key(&ikp.private)?
                .remote_public_key(&rkp.public)?
                .build_initiator()?;
            let mut r = notch_core::peer::noise_builder(params.clone())
                .local_private_key(&rkp.private)?
                .build_responder()?;
            let n = i.write_message(&[], &mut buf)?;
            r.read_message(&buf[..n], &mut out)?;
            let n = r.write_message(&[], &mut buf)?;
            i.read_message(&buf[..n], &mut out)?;
            let _ = i.into_transport_mode()?;
            let _ = r.into_transport_mode()?;
            Ok(())
        };
        run().is_ok()
    };
    Ok(per_second(&mut one, seconds))
}

fn agent(n: u8) -> Result<LocalKey> {
    let phrase = RecoveryPhrase::from_entropy(&[n; 16]).map_err(|e| e.to_string())?;
    let keys = WalletKeys::new(&phrase.to_seed(""), 0).map_err(|e| e.to_string())?;
    Ok(LocalKey::from_agent_key(
        &keys.agent_key().map_err(|e| e.to_string())?,
    ))
}

/// Median and 99th percentile of a signed chit sent over a Noise session on loopback TCP and
/// echoed back by the partner (`n` round trips on one session).
async fn chit_round_trips(n: usize) -> Result<(Duration, Duration)> {
    let (alice, bob) = (agent(1)?, agent(2)?);
    let bob_id: AgentId = bob.agent();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let config = PeerConfig::default();
    let responder = tokio::spawn(async move {
        let incoming = accept(&listener, &bob, &PeerConfig::default())
            .await
            .map_err(|e| e.to_string())?;
        let mut s = incoming.accept().await.map_err(|e| e.to_string())?;
        for _ in 0..n {
            let m = s.recv().await.map_err(|e| e.to_string())?;
            s.send(&m).await.map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    });
    let hello = json!({"target": "chit", "action": "hello"});
    let mut s = connect(addr, &alice, &bob_id, &hello, &config)
        .await
        .map_err(|e| e.to_string())?;
    let key = tally_key()?;
    let mut times = Vec::with_capacity(n);
    for k in 0..n {
        let mut c = chit()?;
        c.sign(&key).map_err(|e| e.to_string())?;
        let msg = json!({"target": "chit", "action": "upd", "object": c.to_value(), "n": k});
        let start = Instant::now();
        s.send(&msg).await.map_err(|e| e.to_string())?;
        let back = s.recv().await.map_err(|e| e.to_string())?;
        times.push(start.elapsed());
        if back["n"] != json!(k) {
            return Err("the echo does not match".into());
        }
    }
    responder
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("responder: {e}"))?;
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    Ok((at(0.5), at(0.99)))
}

/// The chit `uuid` of `tally` in `wallet`, if it is good and linked into the chain.
async fn linked(wallet: &Wallet, tally: &str, uuid: &str) -> Result<bool> {
    let chits: Vec<ChitInfo> = wallet.tally_chits(tally).await.map_err(|e| e.to_string())?;
    Ok(chits
        .iter()
        .any(|c| c.uuid == uuid && c.state.ends_with(".good") && c.consensus == "linked"))
}

/// `n` payments, one after the other, between two wallets (real SQLite files in temporary
/// directories, their agents on loopback TCP with the default agent settings) on an open
/// tally. Alice holds the stock, Bob the foil (the ordering authority). Each payment is
/// timed from `tally_pay` called on Alice until both stores say so, polled every
/// millisecond with `tally_chits`: Bob has the chit stored, good and linked, and Alice has
/// Bob's acknowledgement stored (her chit, provisional until then, is linked at the index
/// and chain hash Bob's `upd` gave). Five payments before them warm up and are not counted.
async fn wallet_round_trips(n: usize) -> Result<Vec<Duration>> {
    let (da, db) = (
        tempfile::tempdir().map_err(|e| e.to_string())?,
        tempfile::tempdir().map_err(|e| e.to_string())?,
    );
    let (alice, _) = new_wallet(da.path(), NO_GATEWAY).await;
    let (bob, _) = new_wallet(db.path(), NO_GATEWAY).await;
    let config = || AgentConfig {
        listen: "127.0.0.1:0".into(),
        ..AgentConfig::default()
    };
    let _a_agent = alice
        .start_agent(config())
        .await
        .map_err(|e| e.to_string())?;
    let _b_agent = bob.start_agent(config()).await.map_err(|e| e.to_string())?;
    let warmup = 5;
    // Credit for every payment (1 CHIP each), both ways.
    let limit = json!({"limit": n + warmup + 10});
    let (ticket, draft) = alice
        .tally_ticket_with(TicketOptions {
            expires_in: Duration::from_secs(600),
            side: Side::Stock,
            my_terms: limit.clone(),
            partner_terms: limit,
            comment: None,
        })
        .await
        .map_err(|e| e.to_string())?;
    let offered = bob
        .tally_scan(&ticket.to_string())
        .await
        .map_err(|e| e.to_string())?;
    bob.tally_accept(&offered.id)
        .await
        .map_err(|e| e.to_string())?;
    let opened = Instant::now();
    loop {
        let state = alice.tally(&draft.id).await.map_err(|e| e.to_string())?;
        if state.info.state.as_str() == "open" {
            break;
        }
        if opened.elapsed() > Duration::from_secs(30) {
            return Err("the tally did not open on Alice's side".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (a_id, b_id) = (draft.id, offered.id);
    let mut times = Vec::with_capacity(n);
    for k in 0..n + warmup {
        let start = Instant::now();
        let chit = alice
            .tally_pay(&a_id, 1000, None)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            if linked(&alice, &a_id, &chit.uuid).await? && linked(&bob, &b_id, &chit.uuid).await? {
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!("payment {k} was not acknowledged within 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if k >= warmup {
            times.push(start.elapsed());
        }
    }
    let (a, b) = (
        alice.tally(&a_id).await.map_err(|e| e.to_string())?,
        bob.tally(&b_id).await.map_err(|e| e.to_string())?,
    );
    let paid = 1000 * (n + warmup) as i64;
    if a.info.balance != -paid || b.info.balance != paid {
        return Err(format!(
            "balances {} and {} after {} payments of 1 CHIP",
            a.info.balance,
            b.info.balance,
            n + warmup
        ));
    }
    times.sort();
    Ok(times)
}

fn fmt(x: f64) -> String {
    let s = format!("{x:.0}");
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() -> Result<()> {
    let mut out = PathBuf::from("bench/results/peer.md");
    let mut seconds = 2.0f64;
    let mut payments = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().map(PathBuf::from).ok_or("--out FILE")?,
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds S")?
            }
            "--payments" => {
                payments = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--payments N")?
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let total = Instant::now();
    let root = root();
    let records = root.join("tests/interop/mychips-records");
    let noise = root.join("tests/interop/mychips-noise");

    eprintln!("chit sign/verify (notch-core) ...");
    let key = tally_key()?;
    let public = key.public_key();
    let mut signed = chit()?;
    signed.sign(&key).map_err(|e| e.to_string())?;
    let sign_rate = per_second(
        || {
            let mut c = signed.clone();
            c.sign(&key).is_ok()
        },
        seconds,
    );
    let verify_rate = per_second(|| signed.verify_with(&public).is_ok(), seconds);
    eprintln!("chit sign/verify (Node WebCrypto) ...");
    let node = node_json(&records, "bench.mjs", &[&seconds.to_string()])?;
    let node_sign = node["sign_per_s"]
        .as_f64()
        .ok_or("bench.mjs: no sign_per_s")?;
    let node_verify = node["verify_per_s"]
        .as_f64()
        .ok_or("bench.mjs: no verify_per_s")?;

    eprintln!("Noise IK handshakes (snow) ...");
    let snow_rate = snow_ik_rate(seconds)?;
    eprintln!("Noise IK handshakes (npm noise-protocol) ...");
    let npm = node_json(
        &noise,
        "bench.mjs",
        &["--seconds", &seconds.to_string(), "--json"],
    )?;
    let npm_rate = npm["per_second"]
        .as_f64()
        .ok_or("noise bench.mjs: no per_second")?;

    eprintln!("chit round trips over a Noise session ...");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (median, p99) = rt.block_on(chit_round_trips(2000))?;
    eprintln!("{payments} payments between two wallets ...");
    let wallet_times = rt.block_on(wallet_round_trips(payments))?;
    let wat = |q: f64| wallet_times[((wallet_times.len() as f64 - 1.0) * q) as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;

    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let profile = if cfg!(debug_assertions) {
        "debug (numbers not meaningful)"
    } else {
        "release"
    };
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let report = format!(
        "# Tallies: signatures, Noise, round trips\n\n\
         - date: {date}\n\
         - machine: {nproc} cores (nproc), {os}/{arch}\n\
         - build: {profile}; every figure single-threaded, each beside MyCHIPs's own code measured in the same run\n\
         - run time: {run:.1} s\n\
         - reproduce: `cargo run --release -p notch-tests --bin notch-peer-bench -- --out bench/results/peer.md --payments {count}` (or `cargo xtask bench peer`, 200 payments)\n\n\
         | measure | notch-core | MyCHIPs's code (Node {nodever}) | ratio | aim |\n| --- | --- | --- | --- | --- |\n\
         | chit signatures per second (ECDSA P-521/SHA-384, canonical JSON included) | **{sign}** (aws-lc-rs) | {nsign} (WebCrypto) | {rs:.1}× | ≥ 5× |\n\
         | chit verifications per second | **{verify}** | {nverify} (WebCrypto) | {rv:.1}× | ≥ 3× |\n\
         | Noise_IK_25519_ChaChaPoly_BLAKE2b handshakes per second (in-process pair) | **{snow}** (snow 0.10 as notch-core builds it: X25519 from aws-lc-rs) | {npm} (noise-protocol) | {rn:.1}× | ≥ 2× |\n\n\
         Round trip of a signed chit message over one Noise session on loopback TCP (sign, send,\n\
         the partner echoes it, receive; 2,000 in a row): median **{med:.0} µs**, 99th percentile {p99:.0} µs.\n\n\
         Round trip of a payment between two wallets (real SQLite files, both agents in this process on\n\
         loopback TCP with the default agent settings, an open tally; Alice holds the stock, Bob the foil):\n\
         {count} payments of 1 CHIP one after the other, each timed from `tally_pay` called on Alice until\n\
         Bob has the chit stored (good, linked) and Alice has Bob's acknowledgement stored (her chit linked),\n\
         both read from the stores with `tally_chits` every millisecond (so up to ~1 ms of polling is\n\
         included): median **{wmed:.1} ms**, 90th percentile {wp90:.1} ms, max {wmax:.1} ms (after 5 warm-up payments, not counted).\n",
        os = std::env::consts::OS,
        arch = std::env::consts::ARCH,
        run = total.elapsed().as_secs_f64(),
        nodever = node["node"].as_str().unwrap_or("20"),
        sign = fmt(sign_rate),
        nsign = fmt(node_sign),
        rs = sign_rate / node_sign.max(1.0),
        verify = fmt(verify_rate),
        nverify = fmt(node_verify),
        rv = verify_rate / node_verify.max(1.0),
        snow = fmt(snow_rate),
        npm = fmt(npm_rate),
        rn = snow_rate / npm_rate.max(1.0),
        med = median.as_secs_f64() * 1e6,
        p99 = p99.as_secs_f64() * 1e6,
        count = wallet_times.len(),
        wmed = ms(wat(0.5)),
        wp90 = ms(wat(0.9)),
        wmax = ms(wallet_times[wallet_times.len() - 1]),
    );
    if let Some(parent) = out.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(&out, &report).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!("{report}");
    Ok(())
}
