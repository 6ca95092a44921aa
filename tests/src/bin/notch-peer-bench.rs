//! `notch-peer-bench`: what tallies cost, beside what MyCHIPs's own code does on the same
//! machine in the same run: chit signing and verification (notch-core vs Node's WebCrypto,
//! which MyCHIPs uses), Noise IK handshakes (snow, which notch-core's peer module uses, vs npm
//! noise-protocol, MyCHIPs's library), and the round trip of a signed chit message over a
//! Noise session on loopback TCP. Writes a markdown report.
//!
//! `cargo run --release -p notch-tests --bin notch-peer-bench -- --out bench/results/peer.md`
//! (or `cargo xtask bench peer`). Needs Node and npm (the interop packages are installed into
//! tests/interop/*/node_modules when missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use notch_core::keys::{RecoveryPhrase, TallyKey, WalletKeys};
use notch_core::peer::{AgentId, LocalKey, PeerConfig, accept, connect};
use notch_core::tally::{ChitBuilder, ChitRecord, Side};
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
    let ikp = snow::Builder::new(params.clone())
        .generate_keypair()
        .map_err(|e| e.to_string())?;
    let rkp = snow::Builder::new(params.clone())
        .generate_keypair()
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1024];
    let mut out = vec![0u8; 1024];
    let mut one = || -> bool {
        let mut run = || -> std::result::Result<(), snow::Error> {
            let mut i = snow::Builder::new(params.clone())
                .local_private_key(&ikp.private)?
                .remote_public_key(&rkp.public)?
                .build_initiator()?;
            let mut r = snow::Builder::new(params.clone())
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
         - reproduce: `cargo run --release -p notch-tests --bin notch-peer-bench -- --out bench/results/peer.md` (or `cargo xtask bench peer`)\n\n\
         | measure | notch-core | MyCHIPs's code (Node {nodever}) | ratio | aim |\n| --- | --- | --- | --- | --- |\n\
         | chit signatures per second (ECDSA P-521/SHA-384, canonical JSON included) | **{sign}** (aws-lc-rs) | {nsign} (WebCrypto) | {rs:.1}× | ≥ 5× |\n\
         | chit verifications per second | **{verify}** | {nverify} (WebCrypto) | {rv:.1}× | ≥ 3× |\n\
         | Noise_IK_25519_ChaChaPoly_BLAKE2b handshakes per second (in-process pair) | **{snow}** (snow 0.10) | {npm} (noise-protocol) | {rn:.1}× | ≥ 2× |\n\n\
         Round trip of a signed chit message over one Noise session on loopback TCP (sign, send,\n\
         the partner echoes it, receive; 2,000 in a row): median **{med:.0} µs**, 99th percentile {p99:.0} µs.\n\
         The full chit exchange between two wallets (consensus, store commits) is not measured yet.\n",
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
