//! The `notch` binary's exit codes and its JSON errors, one class at a
//! time. Every command runs with the in-memory secret store (forgotten when
//! it ends) against a gateway port nobody listens on, so no test needs a
//! keystore or a gateway: a wallet made by one command keeps its database
//! (and so its network) for the next, just not its secret.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A gateway URL on loopback where nothing answers.
fn silent_gateway() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

fn notch(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_notch"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--gateway", &silent_gateway()])
        .args(["--secret-store", "memory-insecure-for-tests"])
        .args(args)
        .env_remove("NOTCH_NETWORK")
        .env_remove("NOTCH_GATEWAY")
        .env_remove("NOTCH_DATA_DIR")
        .env_remove("NOTCH_SECRET_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The one JSON line on stderr: `{"error":{"class","code","message"}}`.
fn json_error(out: &Output) -> Value {
    let text = stderr(out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {text:?}");
    let v: Value = serde_json::from_str(lines[0]).unwrap();
    let e = &v["error"];
    assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
    assert_eq!(e.as_object().unwrap().len(), 3, "{v}");
    assert!(e["class"].is_string(), "{v}");
    assert_eq!(e["code"].as_i64(), Some(i64::from(code(out))), "{v}");
    assert!(!e["message"].as_str().unwrap().is_empty(), "{v}");
    v
}

/// A wallet's database on the sandbox network, without its secret.
fn sandbox_wallet(dir: &Path) {
    let out = notch(dir, &["--network", "sandbox", "--json", "init"], "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["network"], "sandbox");
    assert_eq!(v["phrase"].as_str().unwrap().split(' ').count(), 12);
}

const PHRASE: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--no-such-option", "balance"][..],
        &["send"],
        &["init", "--words", "13"],
        &["frobnicate"],
        &["--network", "moon", "balance"],
    ] {
        let out = notch(dir.path(), args, "");
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
    }
    // Under --json, as one JSON line.
    let out = notch(dir.path(), &["--json", "--no-such-option", "balance"], "");
    assert_eq!(code(&out), 2);
    let v = json_error(&out);
    assert_eq!(v["error"]["class"], "usage");
    let out = notch(dir.path(), &["--json", "--network", "moon", "balance"], "");
    let v = json_error(&out);
    assert_eq!(v["error"]["class"], "usage");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown network \"moon\""),
        "{v}"
    );
}

#[test]
fn help_lists_the_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = notch(dir.path(), &["--help"], "");
    assert_eq!(code(&out), 0);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Exit codes"), "{help}");
    for line in ["3  bad_input", "5  gateway_unreachable", "7  wallet"] {
        assert!(help.contains(line), "{line:?} not in: {help}");
    }
}

#[test]
fn no_wallet_exits_7_with_a_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    for args in [&["balance"][..], &["address"], &["history", "--csv"]] {
        let out = notch(&empty, args, "");
        assert_eq!(code(&out), 7, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("notch: there is no wallet"),
            "{}",
            stderr(&out)
        );
    }
    let out = notch(&empty, &["--json", "balance"], "");
    assert_eq!(code(&out), 7);
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let v = json_error(&out);
    assert_eq!(v["error"]["class"], "wallet");
    assert_eq!(v["error"]["code"], 7);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("create or restore one first"),
        "{v}"
    );
    // A second wallet over the first is a wallet problem too.
    sandbox_wallet(dir.path());
    let out = notch(dir.path(), &["--json", "--network", "sandbox", "init"], "");
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert!(
        json_error(&out)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already a wallet"),
    );
    // Its network is the wallet's own: another one asked for is refused.
    let out = notch(dir.path(), &["--network", "main", "balance"], "");
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("on network sandbox"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_input_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    sandbox_wallet(dir.path());
    // Addresses are checked before the keystore is asked for the secret
    // (which the in-memory store has forgotten by now).
    let key = notch_core::protocol::ed25519_dalek::SigningKey::from_bytes(&[7; 32])
        .verifying_key()
        .to_bytes();
    let main = notch_core::protocol::Address::new(
        notch_core::Network::Main,
        notch_core::protocol::PublicKey(key),
    )
    .encode();
    for (to, says) in [
        (
            "nsb1notanaddress:1".to_owned(),
            "--to \"nsb1notanaddress:1\": the address",
        ),
        (format!("{main}:1"), "this is a main address"),
        (format!("notch:{main}?amount=1"), "this is a main address"),
        ("notch:nsb1x?amount=-1".to_owned(), "address"),
    ] {
        let out = notch(dir.path(), &["send", "--yes", "--to", &to], "");
        assert_eq!(code(&out), 3, "{to}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{to}: {}", stderr(&out));
    }
    let out = notch(dir.path(), &["--json", "send", "--to", "nope:1"], "");
    assert_eq!(code(&out), 3);
    assert_eq!(json_error(&out)["error"]["class"], "bad_input");
    // A txid that cannot be one.
    let out = notch(dir.path(), &["tx", "status", "xyz"], "");
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // A recovery phrase that is not one.
    let other = dir.path().join("other");
    let out = notch(
        &other,
        &["--network", "sandbox", "restore"],
        "abandon abandon banana\n",
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("12 or 24 words"), "{}", stderr(&out));
}

#[test]
fn an_unreachable_gateway_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    // A new wallet's network is its gateway's: without an answer and
    // without --network there is none.
    let out = notch(&dir.path().join("a"), &["--json", "init"], "");
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let v = json_error(&out);
    assert_eq!(v["error"]["class"], "gateway_unreachable");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{v}"
    );
    // A restore works offline with --network, then its sync cannot reach
    // the gateway.
    let out = notch(
        &dir.path().join("b"),
        &["--network", "sandbox", "restore"],
        &format!("{PHRASE}\n"),
    );
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("restored wallet notch-wallet-"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("cannot be reached"),
        "{}",
        stderr(&out)
    );
}

/// `notch tally verify` needs no wallet: 0 when both signatures of a
/// MyCHIPs tally verify, 6 (untrusted) when one does not, 3 when the file
/// is no tally; the reason on stderr.
#[test]
fn tally_verify_exits_0_6_or_3() {
    let dir = tempfile::tempdir().unwrap();
    let valid = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/testdata/mychips-validtally.json"
    );
    let out = notch(dir.path(), &["--json", "tally", "verify", valid], "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["hash"], "3NPx7F5mfAiqyvo2IWPNmqFI5il_cx-8DnYZFEAD4so");
    let text = std::fs::read_to_string(valid).unwrap();
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, text.replace("\"deluxe\"", "\"deluxf\"")).unwrap();
    let out = notch(
        dir.path(),
        &["tally", "verify", tampered.to_str().unwrap()],
        "",
    );
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the stock signature does not match"),
        "{}",
        stderr(&out)
    );
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"uuid\": 1}").unwrap();
    let out = notch(
        dir.path(),
        &["--json", "tally", "verify", junk.to_str().unwrap()],
        "",
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(json_error(&out)["error"]["class"], "bad_input");
    // The other tally commands need a wallet.
    let out = notch(&dir.path().join("empty"), &["tally", "list"], "");
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    let out = notch(dir.path(), &["tally", "scan"], "");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    // A ticket that is not one is refused before the keystore is asked
    // (which has forgotten this wallet's secret by now).
    let wallet = dir.path().join("w");
    sandbox_wallet(&wallet);
    for (text, says) in [
        ("hello", "not a tally ticket"),
        (
            "https://mychips.org/invite?token=t&chad=%7B",
            "CHIP address",
        ),
        (
            "https://mychips.org/invite?token=t&chad=%7B%22cuid%22:%22a%22,%22agent%22:%226j9z7de95UMTnZzWobwtob6Mc3MDGDntdhSNR80pGXE%22,%22host%22:%22h.example%22,%22port%22:1%7D&expires=2020-01-01T00:00:00Z",
            "expired",
        ),
    ] {
        let out = notch(&wallet, &["tally", "scan", text], "");
        assert_eq!(code(&out), 3, "{text}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{text}: {}", stderr(&out));
    }
}

/// `notch tally pay|invoice ID AMOUNT`: an amount in CHIPs with more than
/// three decimals, a sign, zero, or past the largest chit is refused with
/// exit code 3 before the wallet is opened (nothing is signed or guessed).
#[test]
fn tally_amounts_that_are_not_chips_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["pay", "invoice"] {
        for amount in [
            "1.0001",
            "-1",
            "0",
            "0.000",
            "1e3",
            "12,5",
            "99999999999999999999",
        ] {
            let out = notch(
                dir.path(),
                &["--json", "tally", command, "some-tally", amount],
                "",
            );
            assert_eq!(code(&out), 3, "{command} {amount}: {}", stderr(&out));
            assert_eq!(json_error(&out)["error"]["class"], "bad_input");
        }
    }
    // A good amount goes on to the wallet, which is not there: 7.
    let out = notch(dir.path(), &["tally", "pay", "some-tally", "12.5"], "");
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    // `chit approve|reject` need the chit's id.
    let out = notch(dir.path(), &["chit", "approve"], "");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}
