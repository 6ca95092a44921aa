//! `--database` as the binary takes it, without a cluster: a value that is not a postgres://
//! URL is refused with a clear error, and a password in the URL appears in no output (logs,
//! errors, `--help`). The store itself is tested against a real cluster in
//! `src/postgres.rs`; the whole suite runs on PostgreSQL through `common::Backend`.

use std::process::{Command, Output};

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
