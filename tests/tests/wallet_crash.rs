//! kill -9 at random moments during `notch sync` and `notch send`, many
//! times, against the REAL sandbox gateway: the wallet always reopens
//! consistent, and in the end it equals the canonical chain with no coin
//! lost or spent twice.
//!
//! The `notch` processes share the wallet's secret through the OS keystore,
//! so this test needs a running, unlocked Secret Service. It is ignored by a
//! plain `cargo test`; `cargo xtask test` runs it as:
//!
//! ```sh
//! XDG_DATA_HOME=$(mktemp -d) dbus-run-session -- sh -c \
//!   'printf notch-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null && \
//!    NOTCH_TEST_SECRET_SERVICE=1 NOTCH_BIN_DIR=target/debug \
//!    cargo test -p notch-tests --test wallet_crash -- --ignored'
//! ```
//!
//! (after `cargo build -p notch-gateway -p notch-cli`). Run with `--ignored`
//! but without `NOTCH_TEST_SECRET_SERVICE=1` it fails and says why.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use notch_tests::bin;
use notch_tests::gateway::Sandbox;
use serde_json::Value;

struct Cli<'a> {
    data_dir: &'a Path,
    gateway: String,
}

impl Cli<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("notch"));
        c.arg("--data-dir")
            .arg(self.data_dir)
            .args(["--gateway", &self.gateway, "--json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "notch {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "notch {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Starts `args` and SIGKILLs it after `after` (if still running).
    /// Returns whether it was killed, and how long it ran.
    fn kill_after(&self, args: &[&str], after: Duration) -> (bool, Duration) {
        let started = Instant::now();
        let mut child = self.command(args).spawn().unwrap();
        let deadline = started + after;
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return (false, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let killed = child.try_wait().unwrap().is_none();
        let _ = child.kill(); // SIGKILL on Unix
        let _ = child.wait();
        (killed, started.elapsed())
    }
}

/// A small deterministic generator (xorshift), seeded from the clock and
/// printed so that a failing run can be replayed with NOTCH_CRASH_SEED.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn post(url: &str, body: Value) -> Value {
    let r = reqwest::blocking::Client::new()
        .post(url)
        .json(&body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().unwrap()
}

fn get(url: &str) -> Value {
    reqwest::blocking::get(url).unwrap().json().unwrap()
}

#[test]
#[ignore = "needs a Secret Service (gnome-keyring under dbus-run-session): run by `cargo xtask test`, see the module docs"]
fn kill_9_during_sync_and_send_never_breaks_the_wallet() {
    assert!(
        std::env::var("NOTCH_TEST_SECRET_SERVICE").is_ok_and(|v| v == "1"),
        "this test needs NOTCH_TEST_SECRET_SERVICE=1 and a running Secret Service: see tests/tests/wallet_crash.rs"
    );
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path().join("gw"), "127.0.0.1:0");
    let data_dir = dir.path().join("wallet");
    let cli = Cli {
        data_dir: &data_dir,
        gateway: sandbox.url.clone(),
    };
    let seed = std::env::var("NOTCH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(0x5eed)
        });
    println!("NOTCH_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let init = cli.json(&["init"]);
    let phrase = init["phrase"].as_str().unwrap().to_owned();
    let first = init["address"].as_str().unwrap().to_owned();
    // Coins on several addresses, and a long chain to sync.
    let mut funded = 0u64;
    for i in 0..8 {
        let address = if i == 0 {
            first.clone()
        } else {
            cli.json(&["address"])["address"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        post(
            &format!("{}/v1/sandbox/faucet", sandbox.url),
            serde_json::json!({"address": address, "asset": "NOTE", "amount": 100_000_000}),
        );
        funded += 100_000_000;
    }
    sandbox.mine(1);
    for _ in 0..3 {
        sandbox.mine(100);
    }
    let payee = "nsb19xkt4c2phn90pv3wr22dxngtcumpu5ndp0lp9jyhjj7fxg5kdhtsh08thk";

    let mut kills = 0;
    let rounds: u64 = std::env::var("NOTCH_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    // How long each command takes when left alone (learned as we go), so
    // that the kill lands anywhere in its run, start to end.
    let mut typical = [Duration::from_millis(150), Duration::from_millis(150)];
    for round in 0..rounds {
        let send = rng.below(2) == 0;
        let kind = usize::from(send);
        let window = typical[kind].as_millis() as u64 * 6 / 5 + 1;
        let after = Duration::from_millis(rng.below(window));
        let to = format!("{payee}:0.0{}", 1 + rng.below(9));
        let args: Vec<&str> = if send {
            vec!["send", "--yes", "--to", &to]
        } else {
            vec!["sync"]
        };
        let (killed, ran) = cli.kill_after(&args, after);
        if killed {
            kills += 1;
        } else {
            typical[kind] = (typical[kind] + ran) / 2;
        }
        // Whatever instant it died at, the wallet opens and reads.
        let balance = cli.run(&["balance"]);
        assert!(
            balance.status.success(),
            "round {round} ({args:?} killed after {after:?}): {}",
            String::from_utf8_lossy(&balance.stderr)
        );
        // New blocks, so that the next sync has work to be killed in.
        sandbox.mine(1 + rng.below(100) as u32);
    }
    println!("{kills} of {rounds} commands were killed mid-way");
    assert!(
        kills >= rounds / 4,
        "too few kills ({kills}) to mean anything"
    );

    // Settle: sync (resubmits queued sends), mine, sync.
    cli.json(&["sync"]);
    sandbox.mine(1);
    cli.json(&["sync"]);

    let addresses: Vec<String> = cli
        .json(&["addresses"])
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap().to_owned())
        .collect();
    let mut on_chain = 0u64;
    for a in &addresses {
        let v = get(&format!("{}/v1/address/{a}/utxos", sandbox.url));
        on_chain += v["utxos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["amount"].as_u64().unwrap())
            .sum::<u64>();
    }
    let balances = cli.json(&["balance"]);
    let note = balances
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["symbol"] == "NOTE")
        .unwrap();
    assert_eq!(note["confirmed"].as_u64().unwrap(), on_chain, "{balances}");
    assert_eq!(note["pending"].as_u64().unwrap(), 0, "{balances}");
    assert_eq!(note["pending_outgoing"].as_u64().unwrap(), 0, "{balances}");

    // Every transaction agrees with the gateway; none was refused (a
    // refusal would mean a coin offered twice).
    let page = cli.json(&["history", "--limit", "0"]);
    let history = &page["rows"];
    assert_eq!(page["next"], serde_json::Value::Null, "{page}");
    let mut spent_out = 0i64;
    for entry in history.as_array().unwrap() {
        let txid = entry["txid"].as_str().unwrap();
        let ours = entry["state"].as_str().unwrap();
        assert_ne!(ours, "rejected", "{entry}");
        let theirs = get(&format!("{}/v1/tx/{txid}/status", sandbox.url));
        let theirs = theirs["status"]["state"].as_str().unwrap_or("unknown");
        assert_eq!(ours, theirs, "{entry}");
        if ours != "dropped" {
            spent_out += entry["amounts"][0]["net"].as_i64().unwrap();
        }
    }
    let sends = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["own"] == true)
        .count();
    println!("{sends} payments made it out");
    assert!(
        sends > 0,
        "no send survived: the kill windows are too short"
    );
    // No coin lost: what came in minus what went out is what is left.
    assert_eq!(spent_out, on_chain as i64);
    assert!(on_chain < funded);

    secret_lives_only_in_the_keystore(&data_dir, &phrase);
}

/// The seed is in the real Secret Service, and no file of the wallet holds
/// the phrase, the seed or the entropy, in any of the forms we write.
fn secret_lives_only_in_the_keystore(data_dir: &Path, phrase: &str) {
    use notch_core::keys::{RecoveryPhrase, WalletSecret};
    use notch_core::secrets::{OsSecretStore, SecretStore};

    let store = notch_core::store::Store::open(data_dir.join("wallet.sqlite")).unwrap();
    let wallet_id = store.wallet().unwrap().unwrap().wallet_id;
    drop(store);
    let keystore = OsSecretStore::open().unwrap();
    let held = keystore
        .get(&wallet_id)
        .unwrap()
        .expect("the seed is in the Secret Service");
    let secret = WalletSecret::from_bytes(&held).unwrap();
    assert_eq!(secret.phrase().phrase().as_str(), phrase);

    let parsed = RecoveryPhrase::parse(phrase).unwrap();
    let seed = parsed.to_seed("");
    let entropy = parsed.entropy();
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("phrase", phrase.as_bytes().to_vec()),
        ("seed", seed.as_bytes().to_vec()),
        ("seed hex", hex::encode(seed.as_bytes()).into_bytes()),
        ("entropy", entropy.to_vec()),
        ("entropy hex", hex::encode(&*entropy).into_bytes()),
        ("keystore item", held.to_vec()),
    ];
    let mut files = 0;
    for entry in std::fs::read_dir(data_dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        for (what, needle) in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{} contains the {what}",
                path.display()
            );
        }
    }
    assert!(files > 0, "the wallet wrote files to check");
}
