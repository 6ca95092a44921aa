//! The storage backend a gateway under test runs on, and the throwaway PostgreSQL cluster of
//! a test binary (ADR 8, "Tests").
//!
//! Each test binary that runs a PostgreSQL variant starts one cluster, shared by its tests
//! (`notch_gateway::throwaway_pg`, which the benchmark uses too): `fsync=off` (a gateway's
//! `kill -9` is what the tests do to it, never the machine's). Each test gets a database of
//! its own; the cluster goes when the test binary ends, however it ends.
//!
//! `NOTCH_TEST_POSTGRES`: `require` (what `cargo xtask test` sets): no PostgreSQL is a
//! failure; unset: the PostgreSQL variants say once that they are skipped and pass; `skip`:
//! skipped even when PostgreSQL is there. `NOTCH_TEST_PG_BIN` names the directory holding
//! `initdb`, `pg_ctl` and `postgres`; by default the newest `/usr/lib/postgresql/<version>/bin`
//! (Debian), else wherever `pg_ctl` is on PATH.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use notch_gateway::throwaway_pg::{Cluster, SUPERUSER, server_bin_dir};

/// Which storage a gateway under test keeps its mirror in.
pub enum Backend {
    /// The default: `mirror.sqlite` in the data dir.
    Sqlite,
    /// A database of its own in this test binary's cluster (`--database`).
    Postgres(Database),
}

impl Backend {
    /// A fresh database in this binary's cluster, or `None` (after a line saying so) when
    /// the PostgreSQL variants are skipped here. Panics when PostgreSQL is required but
    /// missing, or when the cluster cannot be started.
    pub fn postgres() -> Option<Backend> {
        cluster().map(|c| Backend::Postgres(create_database(c)))
    }

    /// The flags that put a gateway whose data dir is `dir` on this backend. A database
    /// belongs to one gateway's data dir: the same one again (a restart) reuses it, another
    /// one is a mistake in the test.
    pub fn args(&self, dir: &Path) -> Vec<String> {
        match self {
            Backend::Sqlite => Vec::new(),
            Backend::Postgres(db) => {
                let first = db.dir.get_or_init(|| dir.to_owned());
                assert_eq!(
                    first,
                    dir,
                    "database {} is the one of the gateway in {}, not of {}",
                    db.name,
                    first.display(),
                    dir.display()
                );
                vec!["--database".into(), db.url.clone()]
            }
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Backend::Sqlite)
    }

    /// The database, on PostgreSQL.
    pub fn database(&self) -> Option<&Database> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres(db) => Some(db),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Sqlite => f.write_str("sqlite"),
            Backend::Postgres(db) => write!(f, "postgres ({})", db.name),
        }
    }
}

/// One test's database.
pub struct Database {
    pub name: String,
    /// `postgres://postgres@127.0.0.1:PORT/NAME`
    pub url: String,
    port: u16,
    dir: OnceLock<PathBuf>,
}

impl Database {
    /// The same database reached through a URL that holds `password` (the cluster trusts
    /// loopback, so any password is accepted): for checking that none is ever shown.
    pub fn with_password(&self, password: &str) -> Backend {
        let url = self.url.replacen(
            &format!("://{SUPERUSER}@"),
            &format!("://{SUPERUSER}:{password}@"),
            1,
        );
        assert_ne!(url, self.url, "no user in {}", self.url);
        Backend::Postgres(Database {
            name: self.name.clone(),
            url,
            port: self.port,
            dir: OnceLock::new(),
        })
    }

    /// Runs `sql` with psql in the cluster's `postgres` database (for what cannot run in
    /// this one: `ALTER DATABASE` of it while it refuses connections).
    pub fn psql_admin(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Runs `sql` with psql in this database; its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in(&self.name, sql)
    }

    fn psql_in(&self, database: &str, sql: &str) -> String {
        let c = cluster().unwrap_or_else(|| panic!("no cluster"));
        let out = Command::new(c.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "-d", database, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(
            out.status.success(),
            "psql {sql:?} in {database}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

#[derive(PartialEq)]
enum Mode {
    Require,
    Auto,
    Skip,
}

fn mode() -> Mode {
    match std::env::var("NOTCH_TEST_POSTGRES").as_deref() {
        Ok("require") => Mode::Require,
        Ok("skip") => Mode::Skip,
        Ok("") | Ok("auto") | Err(_) => Mode::Auto,
        Ok(other) => {
            panic!("NOTCH_TEST_POSTGRES={other:?}: expected require, skip or auto (or unset)")
        }
    }
}

enum State {
    Up(Cluster),
    Skipped,
    Failed(String),
}

/// This test binary's cluster, started by the first test that asks.
fn cluster() -> Option<&'static Cluster> {
    static STATE: OnceLock<State> = OnceLock::new();
    let state = STATE.get_or_init(|| {
        let mode = mode();
        if mode == Mode::Skip {
            skip_note("NOTCH_TEST_POSTGRES=skip", "");
            return State::Skipped;
        }
        let bin = match server_bin_dir() {
            Ok(bin) => bin,
            Err(e) if mode == Mode::Auto => {
                skip_note(
                    &e,
                    " Install Debian's postgresql (cargo xtask setup does), or set \
                     NOTCH_TEST_POSTGRES=require to make this a failure.",
                );
                return State::Skipped;
            }
            Err(e) => {
                return State::Failed(format!("NOTCH_TEST_POSTGRES=require, but {e}"));
            }
        };
        match Cluster::start(bin) {
            Ok(c) => State::Up(c),
            Err(e) => State::Failed(format!("the test PostgreSQL cluster did not start: {e}")),
        }
    });
    match state {
        State::Up(c) => Some(c),
        State::Skipped => None,
        State::Failed(e) => panic!("{e}"),
    }
}

/// Straight to stderr (not through the test harness's capture, which shows a passing
/// test's output only with --nocapture), once per test binary.
fn skip_note(why: &str, hint: &str) {
    let exe = std::env::current_exe().unwrap_or_default();
    let file = exe.file_name().unwrap_or_default().to_string_lossy();
    // Cargo's hash off: `crash-0123abcd` is the test file crash.rs.
    let name = file.rsplit_once('-').map_or(&*file, |(name, _)| name);
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED: the PostgreSQL variants (::postgres) of {name}: {why}.{hint}\n"
    );
}

/// A new, empty database named after the running test.
fn create_database(c: &Cluster) -> Database {
    static DATABASES: AtomicU32 = AtomicU32::new(0);
    let n = DATABASES.fetch_add(1, Ordering::Relaxed);
    let test = std::thread::current()
        .name()
        .unwrap_or("test")
        .to_ascii_lowercase();
    let mut slug: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    slug.truncate(50);
    let name = format!("t{n}_{slug}");
    let url = c.create_database(&name).unwrap_or_else(|e| panic!("{e}"));
    Database {
        url,
        name,
        port: c.port,
        dir: OnceLock::new(),
    }
}
