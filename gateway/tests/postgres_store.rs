//! `--database` as the binary takes it: a value that is not a postgres:// URL is refused
//! with a clear error, and a password in the URL appears in no output (logs, errors,
//! `--help`); a standby takes a killed writer's place. The store itself is tested against a
//! real cluster in `src/postgres.rs`; the whole suite runs on PostgreSQL through
//! `common::Backend`.

// This file's tests are not run per backend: the harness's `both_backends!` goes unused.
#[allow(unused_macros, unused_imports)]
mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use notch_protocol::api::{MineRequest, TxStatus};

const BIN: &str = env!("CARGO_BIN_EXE_notch-gateway");
const SECRET: &str = "s3cret-pw";

fn gateway(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = Command::new(BIN);
    c.args([
        "--sandbox",
        "--listen",
        "127.0.0.1:0",
        "--no-relay",
        "--data-dir",
    ])
    .arg(dir.path())
    .args(args)
    .env("RUST_LOG", "debug")
    .env_remove("NOTCH_GATEWAY_DATABASE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_database_that_is_not_postgres_is_refused_clearly() {
    for bad in [
        format!("mysql://root:{SECRET}@127.0.0.1/notch"),
        format!("root:{SECRET}@127.0.0.1/notch"),
        "/var/lib/notch/mirror.sqlite".to_owned(),
    ] {
        let out = gateway(&["--database", &bad], &[]);
        let all = text(&out);
        assert!(!out.status.success(), "{bad} was accepted: {all}");
        assert!(all.contains("--database takes a"), "{bad}: {all}");
        assert!(!all.contains(SECRET), "{bad}: the password is shown: {all}");
        assert!(!all.contains("listening on"), "{all}");
    }
}

#[test]
fn the_password_of_an_unreachable_database_is_never_shown() {
    let url = format!(
        "postgres://notch:{SECRET}@127.0.0.1:{}/mirror",
        closed_port()
    );
    for (args, env) in [
        (vec!["--database", url.as_str()], vec![]),
        (vec![], vec![("NOTCH_GATEWAY_DATABASE", url.as_str())]),
    ] {
        let out = gateway(&args, &env);
        let all = text(&out);
        assert!(!out.status.success(), "{all}");
        assert!(all.contains("cannot connect"), "{all}");
        assert!(all.contains("postgres://notch:***@127.0.0.1:"), "{all}");
        assert!(!all.contains(SECRET), "the password is shown: {all}");
    }
    let help = Command::new(BIN)
        .arg("--help")
        .env("NOTCH_GATEWAY_DATABASE", &url)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let all = text(&help);
    assert!(all.contains("--database"), "{all}");
    assert!(!all.contains(SECRET), "--help shows the password: {all}");
}

/// `kill -9` of the writing gateway: the standby on the same database takes its place within
/// seconds, the payment the dead one accepted (and had not put in a block) is in the new
/// writer's block, and the chain has one block per height.
#[test]
fn a_standby_takes_the_place_of_a_killed_writer() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let url = backend
        .database()
        .map(|d| d.url.clone())
        .unwrap_or_else(|| panic!("no database"));
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (wdir, sdir) = (tmp.path().join("writer"), tmp.path().join("standby"));
    let mut writer = Gateway::spawn(
        &backend,
        &wdir,
        &["--sandbox", "--block-interval", "0", "--no-relay"],
    );
    // The standby holds the writer's keys.
    std::fs::create_dir_all(&sdir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(
        wdir.join("sandbox-keys.json"),
        sdir.join("sandbox-keys.json"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let standby = Gateway::spawn(
        &Backend::Sqlite,
        &sdir,
        &[
            "--sandbox",
            "--standby",
            "--block-interval",
            "0",
            "--database",
            &url,
        ],
    );
    let mine_on = |g: &Gateway| {
        send(
            client()
                .post(g.url("/v1/sandbox/mine"))
                .json(&MineRequest { blocks: Some(1) }),
        )
    };
    let (code, body) = mine_on(&standby);
    assert_eq!(
        code, 503,
        "a standby made a block while the writer lives: {body}"
    );
    let k = key(7);
    faucet(&writer, &k, "NOTE", 1_000);
    mine(&writer, 1);
    let accepted = faucet(&writer, &k, "NOTE", 2_000);
    // The standby follows: it answers for the payment the writer accepted.
    let started = Instant::now();
    while status(&standby, &accepted.txid) != TxStatus::InPool {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the standby does not follow"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.kill9();
    let killed = Instant::now();
    loop {
        let (code, body) = mine_on(&standby);
        if code == 200 {
            break;
        }
        assert_eq!(code, 503, "{body}");
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "no takeover within 20 s: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "the standby took the writer's place {:?} after the kill",
        killed.elapsed()
    );
    assert!(
        matches!(
            status(&standby, &accepted.txid),
            TxStatus::Confirmed {
                block_height: 2,
                ..
            }
        ),
        "the payment the dead writer accepted is not in the new writer's block"
    );
    let chain = verified_chain(&standby);
    let heights: Vec<u64> = chain.iter().map(|b| b.header.height).collect();
    assert_eq!(heights, vec![0, 1, 2]);
    // From now on the standby is the writer: it takes payments.
    let more = faucet(&standby, &k, "EURT", 5);
    mine(&standby, 1);
    assert!(matches!(
        status(&standby, &more.txid),
        TxStatus::Confirmed { .. }
    ));
}
