//! A real `notch-gateway --sandbox` on a loopback port, for a test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::KillOnDrop;

pub struct Sandbox {
    pub url: String,
    /// Where its agent relay takes agents (`HOST:PORT`), if it runs.
    pub relay: Option<String>,
    pub data_dir: PathBuf,
    _process: KillOnDrop,
}

impl Sandbox {
    /// Starts a sandbox gateway that mines only on demand.
    pub fn start(data_dir: PathBuf, listen: &str) -> Sandbox {
        Self::start_binary(&crate::bin("notch-gateway"), data_dir, listen, &[])
    }

    /// Like [`Sandbox::start`], with extra gateway arguments, e.g.
    /// `["--finality-depth", "3"]`.
    pub fn start_with_args(data_dir: PathBuf, listen: &str, args: &[&str]) -> Sandbox {
        Self::start_binary_with(&crate::bin("notch-gateway"), data_dir, listen, &[], args)
    }

    /// Like [`Sandbox::start`], with a given gateway binary (the release
    /// build, for benchmarks) and extra environment for it. Its log goes to
    /// `<data_dir>/gateway.log`.
    pub fn start_binary(
        bin: &Path,
        data_dir: PathBuf,
        listen: &str,
        env: &[(&str, &str)],
    ) -> Sandbox {
        Self::start_binary_with(bin, data_dir, listen, env, &[])
    }

    /// [`Sandbox::start_binary`] with extra gateway arguments.
    pub fn start_binary_with(
        bin: &Path,
        data_dir: PathBuf,
        listen: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Sandbox {
        std::fs::create_dir_all(&data_dir).unwrap();
        let log = std::fs::File::create(data_dir.join("gateway.log")).unwrap();
        let mut child = Command::new(bin)
            .args([
                "--sandbox",
                "--block-interval",
                "0",
                "--listen",
                listen,
                "--data-dir",
            ])
            .arg(&data_dir)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let process = KillOnDrop(child);
        let (tx, rx) = std::sync::mpsc::channel();
        let (relay_tx, relay_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(relay) = line.strip_prefix("notch-gateway relay at ") {
                    let _ = relay_tx.send(relay.trim().to_owned());
                } else if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        // A gateway opening a large ledger (the benchmark's) takes a while.
        let url = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("gateway did not report its address");
        // Printed right after the address, if the relay runs (on by default in sandbox
        // mode; `--no-relay` turns it off).
        let relay = if args.contains(&"--no-relay") {
            None
        } else {
            relay_rx.recv_timeout(Duration::from_secs(5)).ok()
        };
        Sandbox {
            url,
            relay,
            data_dir,
            _process: process,
        }
    }

    /// SANDBOX ONLY: the authority's signing key, from the plaintext
    /// `sandbox-keys.json` the sandbox keeps in its data dir (a test signs a
    /// chain of its own with it).
    pub fn authority_signing_key(&self) -> notch_protocol::ed25519_dalek::SigningKey {
        let text = std::fs::read_to_string(self.data_dir.join("sandbox-keys.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut seed = [0u8; 32];
        hex::decode_to_slice(v["authority"].as_str().unwrap(), &mut seed).unwrap();
        notch_protocol::ed25519_dalek::SigningKey::from_bytes(&seed)
    }

    /// The gateway's process id (for reading its memory use).
    pub fn pid(&self) -> u32 {
        self._process.0.id()
    }

    pub fn info(&self) -> serde_json::Value {
        reqwest::blocking::get(format!("{}/v1/info", self.url))
            .unwrap()
            .json()
            .unwrap()
    }

    pub fn tip_height(&self) -> u64 {
        self.info()["tip"]["height"].as_u64().unwrap()
    }

    pub fn mine(&self, blocks: u32) -> serde_json::Value {
        let client = reqwest::blocking::Client::new();
        let response = client
            .post(format!("{}/v1/sandbox/mine", self.url))
            .json(&serde_json::json!({ "blocks": blocks }))
            .send()
            .unwrap();
        assert!(
            response.status().is_success(),
            "mine failed: {}",
            response.status()
        );
        response.json().unwrap()
    }
}
