//! A real `notch-gateway --sandbox` on a loopback port, for a test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::KillOnDrop;

pub struct Sandbox {
    pub url: String,
    pub data_dir: PathBuf,
    _process: KillOnDrop,
}

impl Sandbox {
    /// Starts a sandbox gateway that mines only on demand.
    pub fn start(data_dir: PathBuf, listen: &str) -> Sandbox {
        std::fs::create_dir_all(&data_dir).unwrap();
        let log = std::fs::File::create(data_dir.join("gateway.log")).unwrap();
        let mut child = Command::new(crate::bin("notch-gateway"))
            .args([
                "--sandbox",
                "--block-interval",
                "0",
                "--listen",
                listen,
                "--data-dir",
            ])
            .arg(&data_dir)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let process = KillOnDrop(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("gateway did not report its address");
        Sandbox {
            url,
            data_dir,
            _process: process,
        }
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
