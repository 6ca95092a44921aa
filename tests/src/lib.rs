//! Helpers for the cross-crate tests: locating the built binaries, running
//! a real sandbox gateway, and a small W3C WebDriver client for the app.
//!
//! These tests drive real processes over loopback; they need the binaries
//! built first, which `cargo xtask test` does.

#![allow(clippy::unwrap_used)] // test support: a failed assumption should fail the test loudly

pub mod app_bench;
pub mod app_tally;
pub mod bench;
pub mod e2e;
pub mod gateway;
pub mod tally;
pub mod wallet;
pub mod webdriver;

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// Where the workspace's debug binaries are (NOTCH_BIN_DIR overrides).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NOTCH_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug")
}

/// A built binary of the workspace; panics with how to build it.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo xtask test` (or cargo build -p …)",
        path.display()
    );
    path
}

/// Polls `f` until it returns Some, or panics after `within`.
pub fn eventually<T>(what: &str, within: Duration, f: impl FnMut() -> Option<T>) -> T {
    match within_time(within, f) {
        Some(value) => value,
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}

/// Polls `f` until it returns Some; `None` once `within` has passed.
pub fn within_time<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills a child process when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
