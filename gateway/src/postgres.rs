//! PostgreSQL implementation of [`MirrorStore`] (ADR 8), selected by `--database
//! postgres://…`. It stores what `sqlite.rs` stores, with the same semantics: every write
//! method is one database transaction, every multi-statement read one `REPEATABLE READ`
//! snapshot.
//!
//! Phase 1 of issue 15: one gateway process per database. The pool stays in the engine's
//! memory as on SQLite, so the store holds a session advisory lock for its lifetime and a
//! second process on the same database is refused instead of running a second pool.
//!
//! The `postgres` client is synchronous and drives its connection on a runtime of its own:
//! it must never be called on a tokio worker thread (it would panic), only from the writer
//! thread, the blocking pool or plain threads. That is also why dropping the store closes
//! its connections on a thread of its own (see `Drop for Pool`).
//!
//! TLS (rustls) only with a checked certificate: `sslmode=require` (or libpq's
//! `verify-full`/`verify-ca`) or a CA file; otherwise plain TCP (see `tls_for`).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use notch_protocol::relay::PortRange;
use notch_protocol::{
    AssetId, Block, BlockHeader, BlockId, OutPoint, Output, PublicKey, Transaction, TxId,
};
use postgres::config::SslMode;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, ToSql};
use postgres::{Client, GenericClient, IsolationLevel, NoTls, Row, Statement};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::*;

const STATE_POOL: i32 = 1;
const STATE_CONFIRMED: i32 = 2;
const STATE_DROPPED: i32 = 3;
const STATE_ORPHANED: i32 = 4;
/// Pool log entries kept after pruning (see `prune_pool_log`), as on SQLite.
const POOL_LOG_KEEP: i64 = 100_000;
/// Connections the store opens at most (besides the one holding the process lock): the
/// writer, the relay and the HTTP layer's blocking reads share them.
const MAX_CONNECTIONS: usize = 8;
/// How long a caller waits for a free connection before it gets an error.
const CONNECTION_WAIT: Duration = Duration::from_secs(30);
/// How long `open` retries the process lock: a gateway killed a moment ago may still hold
/// it until PostgreSQL notices its connection is gone.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Keys of the advisory locks (`pg_advisory_lock` and friends take one `bigint`; these are
/// "notch" plus a small number, so that they do not collide with another application's by
/// accident).
const LOCK_PROCESS: i64 = 0x6e6f_7463_6800_0001;
const LOCK_MIGRATE: i64 = 0x6e6f_7463_6800_0002;
const LOCK_RELAY: i64 = 0x6e6f_7463_6800_0003;

/// The channels gateways NOTIFY: every commit (`notch_changes`, replicas follow it), a
/// submission queued (`notch_queue`, the producer drains it), queued submissions answered
/// (`notch_answers`, the gateways that queued them wait for it).
const CHANGES: &str = "notch_changes";
const QUEUE: &str = "notch_queue";
const ANSWERS: &str = "notch_answers";

/// The schema, one entry per version: entry `n` takes a database from version `n` to
/// `n + 1`. Append only; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE blocks (
    height BIGINT PRIMARY KEY CHECK (height >= 0),
    id BYTEA NOT NULL UNIQUE CHECK (octet_length(id) = 32),
    header BYTEA NOT NULL,
    body BYTEA NOT NULL,
    time BIGINT NOT NULL
);
CREATE TABLE txs (
    txid BYTEA PRIMARY KEY CHECK (octet_length(txid) = 32),
    bytes BYTEA NOT NULL,
    state INTEGER NOT NULL,
    height BIGINT,
    pool_seq BIGINT,
    reason TEXT
);
CREATE INDEX txs_pool ON txs (pool_seq) WHERE pool_seq IS NOT NULL;
CREATE INDEX txs_height ON txs (height) WHERE height IS NOT NULL;
CREATE INDEX txs_state ON txs (state) WHERE state <> 2;
-- Amounts are u64: NUMERIC keeps every value exact (BIGINT would wrap the upper half) and
-- lets the database sum them.
CREATE TABLE utxos (
    txid BYTEA NOT NULL,
    vout BIGINT NOT NULL,
    asset BYTEA NOT NULL,
    amount NUMERIC(20, 0) NOT NULL CHECK (amount >= 0 AND amount <= 18446744073709551615),
    owner BYTEA NOT NULL,
    height BIGINT NOT NULL,
    PRIMARY KEY (txid, vout)
);
CREATE INDEX utxos_owner ON utxos (owner, height, txid, vout);
CREATE TABLE pool_log (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid BYTEA NOT NULL,
    added BOOLEAN NOT NULL
);
-- The agent relay (relay.rs): each registered agent's port, kept so its tickets stay valid
-- across restarts; `seen` is the last registration (unix seconds).
CREATE TABLE relay_ports (
    agent BYTEA PRIMARY KEY,
    port INTEGER NOT NULL UNIQUE,
    seen BIGINT NOT NULL
);
",
    "
-- Submissions that gateways without the producer's lease took from their clients (ADR 8,
-- phase 2): verified there, decided by the producer's writer, whose answer (the HTTP status
-- and JSON body a direct submission gets) is written in the same transaction as the pool
-- change it reports. Answered rows are pruned after a while.
CREATE TABLE submissions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid BYTEA NOT NULL CHECK (octet_length(txid) = 32),
    bytes BYTEA NOT NULL,
    client TEXT,
    queued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    status INTEGER,
    answer TEXT,
    answered_at TIMESTAMPTZ,
    CHECK ((status IS NULL) = (answer IS NULL))
);
-- One waiting row per transaction: a resubmission waits for the same answer.
CREATE UNIQUE INDEX submissions_waiting ON submissions (txid) WHERE status IS NULL;
CREATE INDEX submissions_answered ON submissions (answered_at) WHERE status IS NOT NULL;
",
];

/// The schema version this binary writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A `--database` value. It may hold a password, so it is never printed as given: `Debug`
/// and [`DatabaseUrl::redacted`] show it without one.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl From<String> for DatabaseUrl {
    fn from(s: String) -> DatabaseUrl {
        DatabaseUrl(s)
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl DatabaseUrl {
    /// The connection settings; refused unless the value is a `postgres://` (or
    /// `postgresql://`) URL. No error message quotes the value.
    pub fn config(&self) -> Result<postgres::Config, String> {
        let scheme = self.0.split_once("://").map(|(s, _)| s);
        match scheme {
            Some("postgres" | "postgresql") => {}
            Some(other) => {
                let shown: String = other.chars().take(20).collect();
                return Err(format!(
                    "--database takes a postgres:// URL, not a {shown}:// one"
                ));
            }
            None => {
                return Err(
                    "--database takes a URL of the form postgres://user@host:port/dbname".into(),
                );
            }
        }
        // libpq's names for a checked certificate, which tokio-postgres does not know: what
        // `require` does here (see `tls_for`) is `verify-full`.
        let url = self
            .0
            .replace("sslmode=verify-full", "sslmode=require")
            .replace("sslmode=verify-ca", "sslmode=require");
        postgres::Config::from_str(&url)
            .map_err(|e| format!("--database is not a usable postgres:// URL: {e}"))
    }

    /// The URL as it may be logged: user, hosts, ports and database name, the password (if
    /// any) as `***`, and nothing else of what was given.
    pub fn redacted(&self) -> String {
        let Ok(c) = self.config() else {
            return "(an unusable --database value)".into();
        };
        let mut out = String::from("postgres://");
        if let Some(user) = c.get_user() {
            out.push_str(user);
            if c.get_password().is_some() {
                out.push_str(":***");
            }
            out.push('@');
        }
        let ports = c.get_ports();
        for (i, host) in c.get_hosts().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match host {
                postgres::config::Host::Tcp(name) => out.push_str(name),
                #[cfg(unix)]
                postgres::config::Host::Unix(path) => out.push_str(&path.display().to_string()),
            }
            if let Some(port) = ports.get(i).or_else(|| ports.first()) {
                out.push_str(&format!(":{port}"));
            }
        }
        out.push('/');
        if let Some(db) = c.get_dbname() {
            out.push_str(db);
        }
        if c.get_ssl_mode() == SslMode::Require {
            out.push_str("?sslmode=require");
        }
        out
    }
}

fn be(e: postgres::Error) -> StoreError {
    StoreError::Backend(postgres_error(&e))
}

/// The server's message and detail, or the chain of causes (tokio-postgres' `Display` says
/// only "db error" or "error connecting to server", the reason is in the source).
fn postgres_error(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return match db.detail() {
            Some(detail) => format!("{}: {} ({detail})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        };
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

fn id32(v: Vec<u8>) -> StoreResult<[u8; 32]> {
    v.try_into()
        .map_err(|_| corrupt("a stored id is not 32 bytes"))
}

/// A height, time or count as the BIGINT the schema stores.
fn int(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("{v} does not fit a BIGINT")))
}

fn uint(v: i64) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| corrupt(format!("negative value {v} where a count is stored")))
}

fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> StoreResult<T> {
    row.try_get(i)
        .map_err(|e| corrupt(format!("column {i}: {}", postgres_error(&e))))
}

fn amount_of(text: &str) -> StoreResult<u64> {
    text.parse()
        .map_err(|_| corrupt(format!("stored amount {text:?} is not a u64")))
}

/// A connection with the statements it has prepared (each query is parsed once per
/// connection, not once per call).
struct Conn {
    client: Client,
    stmts: HashMap<&'static str, Statement>,
}

/// A client or a transaction of one, with its connection's prepared statements.
struct Db<'c, C: GenericClient> {
    c: &'c mut C,
    stmts: &'c mut HashMap<&'static str, Statement>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl<C: GenericClient> Db<'_, C> {
    fn stmt(&mut self, sql: &'static str) -> StoreResult<Statement> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.c.prepare(sql).map_err(be)?;
        self.stmts.insert(sql, s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        let s = self.stmt(sql)?;
        self.c.query(&s, params).map_err(be)
    }

    fn opt(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<Option<Row>> {
        let s = self.stmt(sql)?;
        self.c.query_opt(&s, params).map_err(be)
    }

    fn one(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<Row> {
        let s = self.stmt(sql)?;
        self.c.query_one(&s, params).map_err(be)
    }

    fn exec(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<u64> {
        let s = self.stmt(sql)?;
        self.c.execute(&s, params).map_err(be)
    }
}

/// A small pool of connections, opened when needed up to `max`.
struct Pool {
    config: postgres::Config,
    tls: Tls,
    state: Mutex<PoolState>,
    freed: Condvar,
    max: usize,
}

struct PoolState {
    idle: Vec<Conn>,
    open: usize,
}

/// How the store reaches the server: plain TCP, or TLS with a verified certificate.
#[derive(Clone)]
enum Tls {
    Plain,
    Verified(MakeRustlsConnect),
}

fn connect(config: &postgres::Config, tls: &Tls) -> StoreResult<Client> {
    match tls {
        Tls::Plain => config.connect(NoTls),
        Tls::Verified(t) => config.connect(t.clone()),
    }
    .map_err(|e| StoreError::Backend(format!("cannot connect: {}", postgres_error(&e))))
}

/// TLS when the URL says `sslmode=require` or a CA file is given; then the server's
/// certificate must chain to that CA (else to the Mozilla roots) and name the host. Else
/// plain TCP: `sslmode=prefer` (the default) is taken as `disable`, as TLS without a checked
/// certificate would only look safe.
fn tls_for(config: &mut postgres::Config, ca_file: Option<&Path>) -> StoreResult<Tls> {
    if ca_file.is_none() && config.get_ssl_mode() != SslMode::Require {
        config.ssl_mode(SslMode::Disable);
        return Ok(Tls::Plain);
    }
    config.ssl_mode(SslMode::Require);
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let bad = |e: String| {
                StoreError::Backend(format!("--database-ca-file {}: {e}", path.display()))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
                roots
                    .add(cert.map_err(|e| bad(e.to_string()))?)
                    .map_err(|e| bad(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad("holds no PEM certificate".into()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Tls::Verified(MakeRustlsConnect::new(client)))
}

/// After an error: whether the connection is gone (the error may have been the server's
/// last word, a FATAL, before the client noticed the close). Dead ones are closed here, so
/// that `Pool::give` drops them.
fn lost(conn: &mut Conn) -> bool {
    conn.client.is_closed() || conn.client.is_valid(Duration::from_secs(2)).is_err()
}

impl Pool {
    fn take(&self) -> StoreResult<Conn> {
        let deadline = Instant::now() + CONNECTION_WAIT;
        let mut state = self
            .state
            .lock()
            .map_err(|_| StoreError::Backend("connection pool lock poisoned".into()))?;
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(conn);
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match connect(&self.config, &self.tls) {
                    Ok(client) => Ok(Conn {
                        client,
                        stmts: HashMap::new(),
                    }),
                    Err(e) => {
                        self.forget_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Backend(format!(
                    "no database connection came free within {} s",
                    CONNECTION_WAIT.as_secs()
                )));
            }
            state = self
                .freed
                .wait_timeout(state, left)
                .map_err(|_| StoreError::Backend("connection pool lock poisoned".into()))?
                .0;
        }
    }

    /// Gives a connection back; a closed one (the server went away) is dropped, and the
    /// next `take` opens a fresh one.
    fn give(&self, conn: Conn) {
        if conn.client.is_closed() {
            drop(conn);
            self.forget_one();
            return;
        }
        if let Ok(mut state) = self.state.lock() {
            state.idle.push(conn);
        }
        self.freed.notify_one();
    }

    fn forget_one(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.open = state.open.saturating_sub(1);
        }
        self.freed.notify_one();
    }
}

impl Drop for Pool {
    /// Closing a client runs its runtime; on a tokio worker (where the last `Arc` of the
    /// store may well be dropped) that would panic, so the connections are closed on a
    /// thread of their own.
    fn drop(&mut self) {
        let idle = match self.state.get_mut() {
            Ok(state) => std::mem::take(&mut state.idle),
            Err(_) => return,
        };
        close_on_a_thread(idle);
    }
}

fn close_on_a_thread<T: Send + 'static>(what: T) {
    if let Ok(t) = std::thread::Builder::new()
        .name("postgres-close".into())
        .spawn(move || drop(what))
    {
        let _ = t.join();
    }
}

/// The PostgreSQL mirror.
pub struct PgStore {
    pool: Pool,
    /// The connection holding the process lock ([`LOCK_PROCESS`]) while the store lives.
    lock: Mutex<Option<Client>>,
    pool_log_keep: i64,
    /// A read-only replica's store ([`PgStore::open_replica`]): refuses every write, until
    /// a standby takes the writer's lock (`take_writer_lock`).
    read_only: AtomicBool,
    /// The connection that LISTENs for the writer's commits (`wait_for_change`), opened on
    /// first use.
    listener: Mutex<Option<Client>>,
    /// The one that LISTENs for queued submissions (the producer, `wait_for_queue`).
    queue_listener: Mutex<Option<Client>>,
    /// The one that LISTENs for their answers (`wait_for_answers`).
    answer_listener: Mutex<Option<Client>>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Ok(lock) = self.lock.get_mut() {
            close_on_a_thread(lock.take());
        }
        for listener in [
            &mut self.listener,
            &mut self.queue_listener,
            &mut self.answer_listener,
        ] {
            if let Ok(listener) = listener.get_mut() {
                close_on_a_thread(listener.take());
            }
        }
    }
}

impl PgStore {
    /// Connects, takes the process lock and brings the schema to [`SCHEMA_VERSION`]
    /// (creating it in an empty database). Refuses a database whose schema is newer than
    /// this binary knows, and one that another gateway process is using.
    pub fn open(url: &DatabaseUrl) -> StoreResult<PgStore> {
        PgStore::open_with_ca(url, None)
    }

    /// [`PgStore::open`] over TLS when the URL says `sslmode=require` or `ca_file` (PEM) is
    /// given: the server's certificate must then chain to `ca_file`'s certificates (else to
    /// the Mozilla roots) and name the host.
    pub fn open_with_ca(url: &DatabaseUrl, ca_file: Option<&Path>) -> StoreResult<PgStore> {
        let mut config = url.config().map_err(StoreError::Backend)?;
        let tls = tls_for(&mut config, ca_file)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("notch-gateway");
        }
        let mut lock = connect(&config, &tls)?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            let got: bool = lock
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_PROCESS])
                .map_err(be)
                .and_then(|r| col(&r, 0))?;
            if got {
                break;
            }
            if Instant::now() >= deadline {
                close_on_a_thread(lock);
                return Err(StoreError::Backend(format!(
                    "another notch-gateway process is using this database (it holds the \
                     gateway's lock for more than {} s); one process per database",
                    LOCK_WAIT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        migrate(&mut lock)?;
        Ok(PgStore {
            pool: Pool {
                config,
                tls,
                state: Mutex::new(PoolState {
                    idle: Vec::new(),
                    open: 0,
                }),
                freed: Condvar::new(),
                max: MAX_CONNECTIONS,
            },
            lock: Mutex::new(Some(lock)),
            pool_log_keep: POOL_LOG_KEEP,
            read_only: AtomicBool::new(false),
            listener: Mutex::new(None),
            queue_listener: Mutex::new(None),
            answer_listener: Mutex::new(None),
        })
    }

    /// A read-only replica's store (`--read-only`): neither the process lock nor
    /// migrations, so any number of them may read the database that one gateway writes.
    /// The schema must be exactly this binary's: a replica cannot migrate under a writer.
    pub fn open_replica(url: &DatabaseUrl, ca_file: Option<&Path>) -> StoreResult<PgStore> {
        let mut config = url.config().map_err(StoreError::Backend)?;
        let tls = tls_for(&mut config, ca_file)?;
        if config.get_application_name().is_none() {
            config.application_name("notch-gateway (read-only)");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let mut client = connect(&config, &tls)?;
        let version =
            match client.query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[]) {
                Ok(row) => row.map(|r| col::<String>(&r, 0)).transpose()?,
                Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => None,
                Err(e) => return Err(be(e)),
            };
        let Some(version) = version else {
            return Err(StoreError::Backend(
                "the database holds no notch mirror yet: start the gateway that writes it \
                 first"
                    .into(),
            ));
        };
        if version != SCHEMA_VERSION.to_string() {
            return Err(StoreError::Backend(format!(
                "the database's schema is version {version}, this notch-gateway's is \
                 {SCHEMA_VERSION}: a read-only replica runs the release of the gateway that \
                 writes the database"
            )));
        }
        Ok(PgStore {
            pool: Pool {
                config,
                tls,
                state: Mutex::new(PoolState {
                    idle: vec![Conn {
                        client,
                        stmts: HashMap::new(),
                    }],
                    open: 1,
                }),
                freed: Condvar::new(),
                max: MAX_CONNECTIONS,
            },
            lock: Mutex::new(None),
            pool_log_keep: POOL_LOG_KEEP,
            read_only: AtomicBool::new(true),
            listener: Mutex::new(None),
            queue_listener: Mutex::new(None),
            answer_listener: Mutex::new(None),
        })
    }

    /// Until a NOTIFY on `channel` (after the first call: the first opens the connection
    /// that LISTENs on `slot`), or `timeout`. A connection that fails is dropped and the
    /// wait becomes a sleep; the next call opens a new one.
    fn wait_on(&self, slot: &Mutex<Option<Client>>, channel: &'static str, timeout: Duration) {
        let started = Instant::now();
        let waited = (|| -> StoreResult<()> {
            let mut listener = slot
                .lock()
                .map_err(|_| StoreError::Backend("listener mutex poisoned".into()))?;
            if listener.is_none() {
                let mut client = connect(&self.pool.config, &self.pool.tls)?;
                client
                    .batch_execute(&format!("LISTEN {channel}"))
                    .map_err(be)?;
                *listener = Some(client);
            }
            let Some(client) = listener.as_mut() else {
                return Ok(());
            };
            let result = {
                let mut notes = client.notifications();
                let first = notes.timeout_iter(timeout).next();
                // Several commits may have come at once: one wake-up for all of them.
                let rest = notes.iter().count();
                first.and(rest)
            };
            if let Err(e) = result {
                *listener = None;
                return Err(be(e));
            }
            Ok(())
        })();
        if waited.is_err() {
            std::thread::sleep(timeout.saturating_sub(started.elapsed()));
        }
    }

    /// Whether its connections are TLS (with a checked certificate).
    pub fn tls(&self) -> bool {
        matches!(self.pool.tls, Tls::Verified(_))
    }

    /// Prunes the pool log at a smaller size than the default, so that tests reach it.
    #[doc(hidden)]
    pub fn with_pool_log_keep(mut self, keep: i64) -> Self {
        self.pool_log_keep = keep.max(1);
        self
    }

    /// Before every write: the process lock is still held. It lives with its connection, so
    /// a connection the server closed (a restart) lost it; it is taken again if it is free,
    /// else this process must not write (another one may be writing now). One round trip per
    /// write transaction.
    fn check_lock(&self) -> StoreResult<()> {
        let mut lock = self
            .lock
            .lock()
            .map_err(|_| StoreError::Backend("lock connection's mutex poisoned".into()))?;
        if let Some(client) = lock.as_mut()
            && client.simple_query("SELECT 1").is_ok()
        {
            return Ok(());
        }
        *lock = None;
        let mut fresh = connect(&self.pool.config, &self.pool.tls)?;
        let got: bool = fresh
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_PROCESS])
            .map_err(be)
            .and_then(|r| col(&r, 0))?;
        if !got {
            return Err(StoreError::Backend(
                "this gateway's lock on the database was lost with its connection, and another \
                 process holds it now: this one writes no more"
                    .into(),
            ));
        }
        tracing::warn!("the database lock's connection was closed; the lock is taken again");
        *lock = Some(fresh);
        Ok(())
    }

    /// One statement (or several that need no common snapshot) on a pooled connection. A
    /// connection found closed (the server restarted) is replaced and the read tried again,
    /// on the next one (every idle connection may be closed, at most all of them).
    fn read<T>(&self, f: impl Fn(&mut Db<'_, Client>) -> StoreResult<T>) -> StoreResult<T> {
        let mut tries = 0;
        loop {
            let mut conn = self.pool.take()?;
            let out = {
                let Conn { client, stmts } = &mut conn;
                f(&mut Db { c: client, stmts })
            };
            let lost = out.is_err() && lost(&mut conn);
            self.pool.give(conn);
            if lost && tries < MAX_CONNECTIONS {
                tries += 1;
                continue;
            }
            return out;
        }
    }

    /// Several statements in one read-only snapshot.
    fn snapshot<T>(
        &self,
        f: impl Fn(&mut Db<'_, postgres::Transaction<'_>>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tries = 0;
        loop {
            let mut conn = self.pool.take()?;
            let out = (|| {
                let Conn { client, stmts } = &mut conn;
                let mut tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .map_err(be)?;
                let out = f(&mut Db { c: &mut tx, stmts })?;
                tx.commit().map_err(be)?;
                Ok(out)
            })();
            let lost = out.is_err() && lost(&mut conn);
            self.pool.give(conn);
            if lost && tries < MAX_CONNECTIONS {
                tries += 1;
                continue;
            }
            return out;
        }
    }

    /// One write transaction: committed if `f` succeeds, rolled back otherwise. Tried again
    /// (as reads are) only when its `BEGIN` finds the connection closed (an idle connection of a server
    /// that restarted), as nothing was written then; once a statement is sent, never: a
    /// connection lost around the commit leaves it unknown whether it happened, and the
    /// engine's recovery reads the database again.
    fn write<T>(&self, f: impl FnOnce(&mut Db<'_, Client>) -> StoreResult<T>) -> StoreResult<T> {
        if self.read_only.load(Ordering::Acquire) {
            return Err(StoreError::Backend(
                "a read-only replica writes nothing to the database".into(),
            ));
        }
        self.check_lock()?;
        self.transact("NOTIFY notch_changes; COMMIT", f)
    }

    /// The transaction of [`PgStore::write`] without its checks, ended by `commit` (a
    /// `NOTIFY` and `COMMIT`, one round trip): also what a read-only replica writes, its
    /// queued submissions (`enqueue_submissions`), which need no lock.
    fn transact<T>(
        &self,
        commit: &'static str,
        f: impl FnOnce(&mut Db<'_, Client>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tries = 0;
        let mut conn = loop {
            let mut conn = self.pool.take()?;
            match conn.client.batch_execute("BEGIN") {
                Ok(()) => break conn,
                Err(e) => {
                    let lost = lost(&mut conn);
                    self.pool.give(conn);
                    if !lost || tries >= MAX_CONNECTIONS {
                        return Err(be(e));
                    }
                    tries += 1;
                }
            }
        };
        let out = (|| {
            let Conn { client, stmts } = &mut conn;
            let out = f(&mut Db { c: client, stmts })?;
            // Read-only replicas LISTEN (see `wait_for_change`); the notification goes out
            // with the commit, in the same round trip.
            client.batch_execute(commit).map_err(be)?;
            Ok(out)
        })();
        if out.is_err() && !conn.client.is_closed() {
            // Whatever failed, the connection goes back with no transaction open.
            if let Err(e) = conn.client.batch_execute("ROLLBACK") {
                tracing::warn!(error = %postgres_error(&e), "rollback failed; connection dropped");
                drop(conn);
                self.pool.forget_one();
                return out;
            }
        }
        self.pool.give(conn);
        out
    }
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction, under an advisory lock so
/// that two processes starting on an empty database do not both create it.
fn migrate(client: &mut Client) -> StoreResult<()> {
    let mut tx = client.transaction().map_err(be)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_MIGRATE])
        .map_err(be)?;
    // `IF NOT EXISTS` says NOTICE on every start after the first; not worth a log line.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )
    .map_err(be)?;
    let version = match tx
        .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
        .map_err(be)?
    {
        None => 0,
        Some(row) => {
            let text: String = col(&row, 0)?;
            text.parse::<i64>()
                .map_err(|_| corrupt(format!("schema_version {text:?} is not a number")))?
        }
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "the database's schema is version {version}, newer than this notch-gateway knows \
             (version {SCHEMA_VERSION}): it was written by a newer release; run that one, or \
             another database"
        )));
    }
    if version < 0 {
        return Err(corrupt(format!("schema_version is {version}")));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).map_err(|e| {
            StoreError::Backend(format!("migration {}: {}", i + 1, postgres_error(&e)))
        })?;
    }
    if version < SCHEMA_VERSION {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&SCHEMA_VERSION.to_string()],
        )
        .map_err(be)?;
        tracing::info!(
            from = version,
            to = SCHEMA_VERSION,
            "migrated the PostgreSQL schema"
        );
    }
    tx.commit().map_err(be)
}

fn tip_in<C: GenericClient>(db: &mut Db<'_, C>) -> StoreResult<TipRow> {
    let row = db
        .opt(
            "SELECT height, id, time FROM blocks ORDER BY height DESC LIMIT 1",
            &[],
        )?
        .ok_or_else(|| corrupt("no blocks"))?;
    Ok(TipRow {
        height: uint(col(&row, 0)?)?,
        id: BlockId(id32(col(&row, 1)?)?),
        time: uint(col(&row, 2)?)?,
    })
}

/// The first locator entry on the best chain, found with one query.
fn fork_point_in<C: GenericClient>(
    db: &mut Db<'_, C>,
    locator: &[BlockId],
) -> StoreResult<Option<(u64, BlockId)>> {
    if locator.is_empty() {
        return Ok(None);
    }
    let ids: Vec<&[u8]> = locator.iter().map(|id| &id.0[..]).collect();
    let rows = db.query("SELECT id, height FROM blocks WHERE id = ANY($1)", &[&ids])?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        found.insert(id32(col(row, 0)?)?, uint(col(row, 1)?)?);
    }
    Ok(locator
        .iter()
        .find_map(|id| found.get(&id.0).map(|h| (*h, *id))))
}

fn headers_from_in<C: GenericClient>(
    db: &mut Db<'_, C>,
    from: u64,
    limit: usize,
) -> StoreResult<Vec<StoredHeader>> {
    let rows = db.query(
        "SELECT height, id, header FROM blocks WHERE height >= $1 ORDER BY height LIMIT $2",
        &[&int(from)?, &int(limit as u64)?],
    )?;
    rows.iter()
        .map(|row| {
            Ok(StoredHeader {
                height: uint(col(row, 0)?)?,
                id: BlockId(id32(col(row, 1)?)?),
                bytes: col(row, 2)?,
            })
        })
        .collect()
}

fn blocks_from_in<C: GenericClient>(
    db: &mut Db<'_, C>,
    from: u64,
    limit: usize,
    max_bytes: usize,
) -> StoreResult<Vec<StoredBlock>> {
    // Sizes first, so that blocks past the byte budget are never sent over.
    let sizes = db.query(
        "SELECT height, octet_length(body) FROM blocks WHERE height >= $1 ORDER BY height LIMIT $2",
        &[&int(from)?, &int(limit as u64)?],
    )?;
    let mut total = 0usize;
    let mut take = 0i64;
    for row in &sizes {
        let size: i32 = col(row, 1)?;
        total = total.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
        if take > 0 && total > max_bytes {
            break;
        }
        take += 1;
    }
    if take == 0 {
        return Ok(Vec::new());
    }
    let rows = db.query(
        "SELECT height, id, body FROM blocks WHERE height >= $1 ORDER BY height LIMIT $2",
        &[&int(from)?, &take],
    )?;
    rows.iter()
        .map(|row| {
            Ok(StoredBlock {
                height: uint(col(row, 0)?)?,
                id: BlockId(id32(col(row, 1)?)?),
                bytes: col(row, 2)?,
            })
        })
        .collect()
}

fn decode_tx(bytes: &[u8]) -> StoreResult<Transaction> {
    Transaction::decode(bytes).map_err(|e| corrupt(format!("stored transaction: {e}")))
}

fn log_pool<C: GenericClient>(db: &mut Db<'_, C>, txid: &TxId, added: bool) -> StoreResult<u64> {
    let row = db.one(
        "INSERT INTO pool_log (txid, added) VALUES ($1, $2) RETURNING seq",
        &[&&txid.0[..], &added],
    )?;
    uint(col(&row, 0)?)
}

fn put_utxo<C: GenericClient>(
    db: &mut Db<'_, C>,
    op: &OutPoint,
    o: &Output,
    height: i64,
) -> StoreResult<()> {
    db.exec(
        "INSERT INTO utxos (txid, vout, asset, amount, owner, height)
         VALUES ($1, $2, $3, $4::text::numeric, $5, $6)
         ON CONFLICT (txid, vout) DO UPDATE SET asset = excluded.asset,
             amount = excluded.amount, owner = excluded.owner, height = excluded.height",
        &[
            &&op.txid.0[..],
            &i64::from(op.index),
            &&o.asset.0[..],
            &o.amount.to_string(),
            &&o.owner.0[..],
            &height,
        ],
    )?;
    Ok(())
}

/// Confirms the block's transactions and updates the unspent set.
fn apply_block_in<C: GenericClient>(db: &mut Db<'_, C>, block: &Block) -> StoreResult<()> {
    let height = block.header.height;
    let hh = int(height)?;
    let id = block.id();
    db.exec(
        "INSERT INTO blocks (height, id, header, body, time) VALUES ($1, $2, $3, $4, $5)",
        &[
            &hh,
            &&id.0[..],
            &block.header.encode(),
            &block.encode(),
            &int(block.header.time)?,
        ],
    )?;
    if block.txs.is_empty() {
        return Ok(());
    }
    // In a fixed number of statements for the whole block (a round trip per row made block
    // production several times slower than on SQLite). The checks the row-by-row order
    // made are done here first: no transaction twice, no output spent twice, and an input
    // that spends an output of this block spends one of an earlier transaction.
    let txids: Vec<TxId> = block.txs.iter().map(Transaction::txid).collect();
    let mut position = HashMap::with_capacity(txids.len());
    for (i, txid) in txids.iter().enumerate() {
        if position.insert(*txid, i).is_some() {
            return Err(corrupt(format!(
                "block {height} holds transaction {txid}, which the chain already has"
            )));
        }
    }
    let mut spent = HashSet::new();
    let mut in_txids: Vec<&[u8]> = Vec::new();
    let mut in_vouts: Vec<i64> = Vec::new();
    for (i, t) in block.txs.iter().enumerate() {
        for op in &t.inputs {
            let later = position.get(&op.txid).is_some_and(|j| *j >= i);
            if later || !spent.insert(*op) {
                return Err(corrupt(format!(
                    "block {height} spends {}:{} which is not unspent",
                    op.txid, op.index
                )));
            }
            in_txids.push(&op.txid.0[..]);
            in_vouts.push(i64::from(op.index));
        }
    }
    let ids: Vec<&[u8]> = txids.iter().map(|t| &t.0[..]).collect();
    let rows = db.query(
        "SELECT txid, state, pool_seq FROM txs WHERE txid = ANY($1)",
        &[&ids],
    )?;
    let mut leaving = Vec::new();
    for row in &rows {
        let txid = TxId(id32(col(row, 0)?)?);
        let state: i32 = col(row, 1)?;
        let seq: Option<i64> = col(row, 2)?;
        // The same transaction twice on one chain would count its outputs twice (and bring
        // back outputs already spent): never, whoever built the block.
        if state == STATE_CONFIRMED {
            return Err(corrupt(format!(
                "block {height} holds transaction {txid}, which the chain already has"
            )));
        }
        if seq.is_some() {
            leaving.push((position.get(&txid).copied().unwrap_or(usize::MAX), txid));
        }
    }
    if !leaving.is_empty() {
        // Logged in block order, as the row-by-row path did.
        leaving.sort_unstable();
        let n = int(leaving.len() as u64)?;
        let seq_rows = db.query(
            "SELECT nextval(pg_get_serial_sequence('pool_log', 'seq')) FROM generate_series(1, $1::bigint)",
            &[&n],
        )?;
        let mut seqs = seq_rows
            .iter()
            .map(|r| col::<i64>(r, 0))
            .collect::<StoreResult<Vec<i64>>>()?;
        seqs.sort_unstable();
        let left: Vec<&[u8]> = leaving.iter().map(|(_, t)| &t.0[..]).collect();
        db.exec(
            "INSERT INTO pool_log (seq, txid, added) OVERRIDING SYSTEM VALUE
             SELECT s, t, false FROM unnest($1::bigint[], $2::bytea[]) AS u(s, t)",
            &[&seqs, &left],
        )?;
    }
    let bytes: Vec<Vec<u8>> = block.txs.iter().map(Transaction::encode).collect();
    let bytes: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    db.exec(
        "INSERT INTO txs (txid, bytes, state, height, pool_seq, reason)
         SELECT t, b, $3, $4, NULL, NULL FROM unnest($1::bytea[], $2::bytea[]) AS u(t, b)
         ON CONFLICT (txid) DO UPDATE SET state = excluded.state, height = excluded.height,
             pool_seq = NULL, reason = NULL",
        &[&ids, &bytes, &STATE_CONFIRMED, &hh],
    )?;
    // Outputs before inputs: an input may spend an output of an earlier transaction of
    // this block (checked above), which must exist when it is deleted.
    let mut out_txids: Vec<&[u8]> = Vec::new();
    let mut out_vouts: Vec<i64> = Vec::new();
    let mut out_assets: Vec<&[u8]> = Vec::new();
    let mut out_amounts: Vec<String> = Vec::new();
    let mut out_owners: Vec<&[u8]> = Vec::new();
    for (t, txid) in block.txs.iter().zip(&txids) {
        for (vout, o) in t.outputs.iter().enumerate() {
            let vout = i64::try_from(vout)
                .map_err(|_| corrupt(format!("transaction {txid} has too many outputs")))?;
            out_txids.push(&txid.0[..]);
            out_vouts.push(vout);
            out_assets.push(&o.asset.0[..]);
            out_amounts.push(o.amount.to_string());
            out_owners.push(&o.owner.0[..]);
        }
    }
    if !out_txids.is_empty() {
        db.exec(
            "INSERT INTO utxos (txid, vout, asset, amount, owner, height)
             SELECT t, v, a, m::numeric, o, $6
             FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::text[], $5::bytea[])
                 AS u(t, v, a, m, o)
             ON CONFLICT (txid, vout) DO UPDATE SET asset = excluded.asset,
                 amount = excluded.amount, owner = excluded.owner, height = excluded.height",
            &[
                &out_txids,
                &out_vouts,
                &out_assets,
                &out_amounts,
                &out_owners,
                &hh,
            ],
        )?;
    }
    if !in_txids.is_empty() {
        let deleted = db.query(
            "DELETE FROM utxos AS x USING unnest($1::bytea[], $2::bigint[]) AS d(t, v)
             WHERE x.txid = d.t AND x.vout = d.v RETURNING x.txid, x.vout",
            &[&in_txids, &in_vouts],
        )?;
        if deleted.len() != in_txids.len() {
            let mut gone = HashSet::with_capacity(deleted.len());
            for row in &deleted {
                let vout: i64 = col(row, 1)?;
                gone.insert((id32(col(row, 0)?)?, vout));
            }
            let missing = in_txids
                .iter()
                .zip(&in_vouts)
                .find(|(t, v)| {
                    let t: [u8; 32] = (**t).try_into().unwrap_or([0; 32]);
                    !gone.contains(&(t, **v))
                })
                .map(|(t, v)| format!("{}:{v}", hex::encode(t)))
                .unwrap_or_default();
            return Err(corrupt(format!(
                "block {height} spends {missing} which is not unspent"
            )));
        }
    }
    Ok(())
}

/// Undoes the best chain's top block: removes its outputs, restores the ones it spent, marks
/// its transactions orphaned (the caller decides their fate).
fn unapply_top_in<C: GenericClient>(db: &mut Db<'_, C>) -> StoreResult<()> {
    let tip = tip_in(db)?;
    if tip.height == 0 {
        return Err(corrupt("cannot unapply the genesis block"));
    }
    let th = int(tip.height)?;
    let row = db.one("SELECT body FROM blocks WHERE height = $1", &[&th])?;
    let body: Vec<u8> = col(&row, 0)?;
    let block = Block::decode(&body).map_err(|e| corrupt(format!("stored block: {e}")))?;
    for t in block.txs.iter().rev() {
        let txid = t.txid();
        db.exec("DELETE FROM utxos WHERE txid = $1", &[&&txid.0[..]])?;
        for i in &t.inputs {
            let row = db
                .opt(
                    "SELECT bytes, state, height FROM txs WHERE txid = $1",
                    &[&&i.txid.0[..]],
                )?
                .ok_or_else(|| corrupt(format!("funding transaction {} is missing", i.txid)))?;
            let bytes: Vec<u8> = col(&row, 0)?;
            let state: i32 = col(&row, 1)?;
            let height: Option<i64> = col(&row, 2)?;
            let funding = decode_tx(&bytes)?;
            let o = funding
                .outputs
                .get(i.index as usize)
                .ok_or_else(|| corrupt(format!("output {}:{} is missing", i.txid, i.index)))?;
            let height = match (state, height) {
                (STATE_CONFIRMED, Some(hh)) => hh,
                _ => {
                    return Err(corrupt(format!(
                        "funding transaction {} is not confirmed",
                        i.txid
                    )));
                }
            };
            put_utxo(db, i, o, height)?;
        }
        db.exec(
            "UPDATE txs SET state = $2, height = NULL, pool_seq = NULL WHERE txid = $1",
            &[&&txid.0[..], &STATE_ORPHANED],
        )?;
    }
    db.exec("DELETE FROM blocks WHERE height = $1", &[&th])?;
    Ok(())
}

fn horizon_in<C: GenericClient>(db: &mut Db<'_, C>) -> StoreResult<i64> {
    let row = db.opt("SELECT value FROM meta WHERE key = 'pool_horizon'", &[])?;
    match row {
        None => Ok(0),
        Some(row) => {
            let text: String = col(&row, 0)?;
            text.parse()
                .map_err(|_| corrupt(format!("pool_horizon {text:?} is not a number")))
        }
    }
}

fn max_pool_seq_in<C: GenericClient>(db: &mut Db<'_, C>) -> StoreResult<i64> {
    let row = db.one("SELECT COALESCE(MAX(seq), 0)::BIGINT FROM pool_log", &[])?;
    col(&row, 0)
}

/// Keeps the pool log from growing without end, exactly as `sqlite::prune_pool_log`: once it
/// holds `2 * keep` entries past the horizon, everything up to `max - keep` goes and that
/// becomes the horizon; transactions still in the pool whose entry would go are logged again
/// above the new horizon first, so that a replay from 0 ends with the current pool.
fn prune_pool_log<C: GenericClient>(db: &mut Db<'_, C>, keep: i64) -> StoreResult<()> {
    let max = max_pool_seq_in(db)?;
    let horizon = horizon_in(db)?;
    if max - horizon < 2 * keep {
        return Ok(());
    }
    let new_horizon = max - keep;
    let stale = db.query(
        "SELECT txid FROM txs WHERE state = $1 AND pool_seq <= $2 ORDER BY pool_seq",
        &[&STATE_POOL, &new_horizon],
    )?;
    for row in &stale {
        let txid = TxId(id32(col(row, 0)?)?);
        let seq = int(log_pool(db, &txid, true)?)?;
        db.exec(
            "UPDATE txs SET pool_seq = $2 WHERE txid = $1",
            &[&&txid.0[..], &seq],
        )?;
    }
    db.exec("DELETE FROM pool_log WHERE seq <= $1", &[&new_horizon])?;
    db.exec(
        "INSERT INTO meta (key, value) VALUES ('pool_horizon', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&new_horizon.to_string()],
    )?;
    Ok(())
}

fn stored_relay_port<C: GenericClient>(
    db: &mut Db<'_, C>,
    agent: &[u8; 32],
) -> StoreResult<Option<u16>> {
    let row = db.opt(
        "SELECT port FROM relay_ports WHERE agent = $1",
        &[&&agent[..]],
    )?;
    match row {
        None => Ok(None),
        Some(row) => {
            let port: i32 = col(&row, 0)?;
            Ok(u16::try_from(port).ok())
        }
    }
}

fn record_relay_port<C: GenericClient>(
    db: &mut Db<'_, C>,
    agent: &[u8; 32],
    port: u16,
    now: u64,
) -> StoreResult<()> {
    db.exec(
        "DELETE FROM relay_ports WHERE port = $1 AND agent <> $2",
        &[&i32::from(port), &&agent[..]],
    )?;
    db.exec(
        "INSERT INTO relay_ports (agent, port, seen) VALUES ($1, $2, $3)
         ON CONFLICT (agent) DO UPDATE SET port = excluded.port, seen = excluded.seen",
        &[&&agent[..], &i32::from(port), &int(now)?],
    )?;
    Ok(())
}

/// The relay's writes are serialised across connections (SQLite serialises every write), so
/// that two agents registering at once cannot be handed the same free port.
fn relay_lock<C: GenericClient>(db: &mut Db<'_, C>) -> StoreResult<()> {
    db.exec("SELECT pg_advisory_xact_lock($1)", &[&LOCK_RELAY])?;
    Ok(())
}

fn pool_upsert<C: GenericClient>(db: &mut Db<'_, C>, add: &PoolAdd) -> StoreResult<u64> {
    let seq = log_pool(db, &add.txid, true)?;
    db.exec(
        "INSERT INTO txs (txid, bytes, state, height, pool_seq, reason)
         VALUES ($1, $2, $3, NULL, $4, NULL)
         ON CONFLICT (txid) DO UPDATE SET state = excluded.state, height = NULL,
             pool_seq = excluded.pool_seq, reason = NULL",
        &[&&add.txid.0[..], &add.bytes, &STATE_POOL, &int(seq)?],
    )?;
    Ok(seq)
}

/// `add_to_pool` in a fixed number of statements, whatever the batch's size (one round trip
/// per row made the writer's commits of many submissions cost a round trip per row).
/// The log's sequence numbers are drawn at once and handed out in order: adds first, then
/// the evictions, as the row-by-row path logs them. Needs distinct `adds` (an upsert of one
/// row twice in one statement is an error).
fn pool_write_bulk<C: GenericClient>(
    db: &mut Db<'_, C>,
    adds: &[PoolAdd],
    evicted: &[(TxId, String)],
) -> StoreResult<Vec<u64>> {
    let n = int((adds.len() + evicted.len()) as u64)?;
    let rows = db.query(
        "SELECT nextval(pg_get_serial_sequence('pool_log', 'seq')) FROM generate_series(1, $1::bigint)",
        &[&n],
    )?;
    let mut seqs = rows
        .iter()
        .map(|r| col::<i64>(r, 0))
        .collect::<StoreResult<Vec<i64>>>()?;
    seqs.sort_unstable();
    let add_seqs = &seqs[..adds.len()];
    let add_ids: Vec<&[u8]> = adds.iter().map(|a| &a.txid.0[..]).collect();
    let evict_ids: Vec<&[u8]> = evicted.iter().map(|(t, _)| &t.0[..]).collect();
    let log_ids: Vec<&[u8]> = add_ids.iter().chain(&evict_ids).copied().collect();
    let log_added: Vec<bool> = (0..log_ids.len()).map(|i| i < adds.len()).collect();
    db.exec(
        "INSERT INTO pool_log (seq, txid, added) OVERRIDING SYSTEM VALUE
         SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::boolean[])",
        &[&seqs, &log_ids, &log_added],
    )?;
    if !adds.is_empty() {
        let bytes: Vec<&[u8]> = adds.iter().map(|a| &a.bytes[..]).collect();
        db.exec(
            "INSERT INTO txs (txid, bytes, state, height, pool_seq, reason)
             SELECT t, b, $4, NULL, s, NULL FROM unnest($1::bytea[], $2::bytea[], $3::bigint[])
                 AS u(t, b, s)
             ON CONFLICT (txid) DO UPDATE SET state = excluded.state, height = NULL,
                 pool_seq = excluded.pool_seq, reason = NULL",
            &[&add_ids, &bytes, &add_seqs.to_vec(), &STATE_POOL],
        )?;
    }
    if !evicted.is_empty() {
        let reasons: Vec<&str> = evicted.iter().map(|(_, r)| r.as_str()).collect();
        let n = db.exec(
            "UPDATE txs SET state = $3, height = NULL, pool_seq = NULL, reason = u.r
             FROM unnest($1::bytea[], $2::text[]) AS u(t, r)
             WHERE txs.txid = u.t AND txs.state = $4",
            &[&evict_ids, &reasons, &STATE_DROPPED, &STATE_POOL],
        )?;
        if n != evicted.len() as u64 {
            let missing = evicted.len() as u64 - n.min(evicted.len() as u64);
            return Err(corrupt(format!(
                "{missing} evicted transaction(s) are not in the pool"
            )));
        }
    }
    add_seqs.iter().map(|s| uint(*s)).collect()
}

impl MirrorStore for PgStore {
    /// The process lock, tried on a connection kept for it: the writer's holds it while it
    /// lives, and PostgreSQL lets it go with the writer's connection (a `kill -9`, a host
    /// gone once TCP keepalives tell).
    fn take_writer_lock(&self) -> StoreResult<bool> {
        if !self.read_only.load(Ordering::Acquire) {
            return Ok(true);
        }
        let mut lock = self
            .lock
            .lock()
            .map_err(|_| StoreError::Backend("lock connection's mutex poisoned".into()))?;
        if lock.as_ref().is_none_or(Client::is_closed) {
            *lock = Some(connect(&self.pool.config, &self.pool.tls)?);
        }
        let Some(client) = lock.as_mut() else {
            return Ok(false);
        };
        let got: bool = match client.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_PROCESS])
        {
            Ok(row) => col(&row, 0)?,
            Err(e) => {
                *lock = None;
                return Err(be(e));
            }
        };
        if got {
            self.read_only.store(false, Ordering::Release);
        }
        Ok(got)
    }

    /// Until a gateway commits a write to this database (its `NOTIFY notch_changes`), or
    /// `timeout`.
    fn wait_for_change(&self, timeout: Duration) {
        self.wait_on(&self.listener, CHANGES, timeout);
    }

    fn has_submission_queue(&self) -> bool {
        true
    }

    /// One write (no lock needed: a replica's too) that wakes the producer. Distinct
    /// transactions per statement; `ON CONFLICT … DO UPDATE` returns the waiting row of a
    /// transaction queued before (a no-op update, so that the row comes back), atomically:
    /// answered meanwhile, it is no longer waiting and a new row is made.
    fn enqueue_submissions(&self, subs: &[(TxId, &[u8], Option<IpAddr>)]) -> StoreResult<Vec<u64>> {
        let mut distinct: Vec<&(TxId, &[u8], Option<IpAddr>)> = Vec::with_capacity(subs.len());
        let mut seen = HashSet::with_capacity(subs.len());
        for s in subs {
            if seen.insert(s.0) {
                distinct.push(s);
            }
        }
        let txids: Vec<&[u8]> = distinct.iter().map(|s| &s.0.0[..]).collect();
        let bytes: Vec<&[u8]> = distinct.iter().map(|s| s.1).collect();
        let clients: Vec<Option<String>> = distinct
            .iter()
            .map(|s| s.2.map(|c| c.to_string()))
            .collect();
        let rows = self.transact("NOTIFY notch_queue; COMMIT", |db| {
            db.query(
                "INSERT INTO submissions (txid, bytes, client)
                 SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::text[])
                 ON CONFLICT (txid) WHERE status IS NULL DO UPDATE SET txid = excluded.txid
                 RETURNING id, txid",
                &[&txids, &bytes, &clients],
            )
        })?;
        let mut ids = HashMap::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = col(row, 0)?;
            ids.insert(TxId(id32(col(row, 1)?)?), uint(id)?);
        }
        subs.iter()
            .map(|s| {
                ids.get(&s.0)
                    .copied()
                    .ok_or_else(|| corrupt(format!("queued submission {} has no row", s.0)))
            })
            .collect()
    }

    fn queue_answers(&self, ids: &[u64]) -> StoreResult<Vec<QueueAnswer>> {
        let ids = ids
            .iter()
            .map(|i| int(*i))
            .collect::<StoreResult<Vec<i64>>>()?;
        self.read(|db| {
            let rows = db.query(
                "SELECT id, status, answer FROM submissions
                 WHERE id = ANY($1) AND status IS NOT NULL",
                &[&ids],
            )?;
            rows.iter()
                .map(|row| {
                    let status: i32 = col(row, 1)?;
                    Ok(QueueAnswer {
                        id: uint(col(row, 0)?)?,
                        status: u16::try_from(status)
                            .map_err(|_| corrupt(format!("answer status {status}")))?,
                        body: col(row, 2)?,
                    })
                })
                .collect()
        })
    }

    fn wait_for_answers(&self, timeout: Duration) {
        self.wait_on(&self.answer_listener, ANSWERS, timeout);
    }

    fn queued_submissions(&self, limit: usize) -> StoreResult<Vec<QueuedSubmission>> {
        self.read(|db| {
            let rows = db.query(
                "SELECT id, txid, bytes, client FROM submissions
                 WHERE status IS NULL ORDER BY id LIMIT $1",
                &[&int(limit as u64)?],
            )?;
            rows.iter()
                .map(|row| {
                    let client: Option<String> = col(row, 3)?;
                    Ok(QueuedSubmission {
                        id: uint(col(row, 0)?)?,
                        txid: TxId(id32(col(row, 1)?)?),
                        bytes: col(row, 2)?,
                        // Written by a gateway from an address it parsed: one that does not
                        // parse counts as the gateway's own (no share bound) rather than
                        // failing the queue.
                        client: client.and_then(|c| c.parse().ok()),
                    })
                })
                .collect()
        })
    }

    fn wait_for_queue(&self, timeout: Duration) {
        self.wait_on(&self.queue_listener, QUEUE, timeout);
    }

    fn add_to_pool_answering(
        &self,
        adds: &[PoolAdd],
        evicted: &[(TxId, String)],
        answers: &[QueueAnswer],
    ) -> StoreResult<Vec<u64>> {
        // The first answer per row counts (a row handed to the writer twice is answered
        // twice in one batch: accepted, then "duplicate").
        let mut seen = HashSet::with_capacity(answers.len());
        let mut ids = Vec::with_capacity(answers.len());
        let mut statuses = Vec::with_capacity(answers.len());
        let mut bodies = Vec::with_capacity(answers.len());
        for a in answers {
            if seen.insert(a.id) {
                ids.push(int(a.id)?);
                statuses.push(i32::from(a.status));
                bodies.push(a.body.as_str());
            }
        }
        let distinct = adds.iter().map(|a| a.txid).collect::<HashSet<_>>().len() == adds.len();
        if !distinct {
            return Err(corrupt(
                "one transaction added to the pool twice in a write",
            ));
        }
        self.write(|db| {
            let seqs = if adds.is_empty() && evicted.is_empty() {
                Vec::new()
            } else {
                pool_write_bulk(db, adds, evicted)?
            };
            if !ids.is_empty() {
                db.exec(
                    "UPDATE submissions SET status = u.s, answer = u.a, answered_at = now()
                     FROM unnest($1::bigint[], $2::integer[], $3::text[]) AS u(i, s, a)
                     WHERE submissions.id = u.i AND submissions.status IS NULL",
                    &[&ids, &statuses, &bodies],
                )?;
                // Kept far longer than a gateway waits for an answer (`--submit-wait-secs`),
                // so that none is pruned while someone still reads it.
                db.exec(
                    "DELETE FROM submissions WHERE status IS NOT NULL
                     AND answered_at < now() - interval '10 minutes'",
                    &[],
                )?;
                // Delivered with the commit, to the gateways waiting for these answers.
                db.exec("SELECT pg_notify($1, '')", &[&ANSWERS])?;
            }
            Ok(seqs)
        })
    }

    fn load_meta(&self) -> StoreResult<Option<LedgerMeta>> {
        let text: Option<String> = self.read(|db| {
            db.opt("SELECT value FROM meta WHERE key = 'ledger'", &[])?
                .map(|row| col(&row, 0))
                .transpose()
        })?;
        text.map(|s| serde_json::from_str(&s).map_err(|e| corrupt(format!("ledger meta: {e}"))))
            .transpose()
    }

    fn init(&self, meta: &LedgerMeta, genesis: &Block) -> StoreResult<()> {
        let json = serde_json::to_string(meta).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.write(|db| {
            db.exec(
                "INSERT INTO meta (key, value) VALUES ('ledger', $1)",
                &[&json],
            )?;
            apply_block_in(db, genesis)
        })
    }

    fn tip(&self) -> StoreResult<TipRow> {
        self.read(tip_in)
    }

    fn header_at(&self, height: u64) -> StoreResult<Option<BlockHeader>> {
        let bytes: Option<Vec<u8>> = self.read(|db| {
            db.opt(
                "SELECT header FROM blocks WHERE height = $1",
                &[&int(height)?],
            )?
            .map(|row| col(&row, 0))
            .transpose()
        })?;
        bytes
            .map(|b| BlockHeader::decode(&b).map_err(|e| corrupt(format!("stored header: {e}"))))
            .transpose()
    }

    fn block_by_id(&self, id: &BlockId) -> StoreResult<Option<StoredBlock>> {
        self.read(|db| {
            db.opt(
                "SELECT height, body FROM blocks WHERE id = $1",
                &[&&id.0[..]],
            )?
            .map(|row| {
                Ok(StoredBlock {
                    height: uint(col(&row, 0)?)?,
                    id: *id,
                    bytes: col(&row, 1)?,
                })
            })
            .transpose()
        })
    }

    fn blocks_at(&self, from: u64, count: usize) -> StoreResult<Vec<Block>> {
        let raw = self.snapshot(|db| blocks_from_in(db, from, count, usize::MAX))?;
        raw.iter()
            .map(|b| Block::decode(&b.bytes).map_err(|e| corrupt(format!("stored block: {e}"))))
            .collect()
    }

    fn headers_after_locator(
        &self,
        locator: &[BlockId],
        limit: usize,
    ) -> StoreResult<ChainSlice<StoredHeader>> {
        self.snapshot(|db| {
            let tip = tip_in(db)?;
            let fork_point = fork_point_in(db, locator)?;
            let from = fork_point.map_or(0, |(hh, _)| hh + 1);
            let items = headers_from_in(db, from, limit)?;
            let last = items.last().map_or(from.saturating_sub(1), |x| x.height);
            Ok(ChainSlice {
                fork_point,
                more: last < tip.height,
                items,
                tip,
            })
        })
    }

    fn blocks_after_locator(
        &self,
        locator: &[BlockId],
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<ChainSlice<StoredBlock>> {
        self.snapshot(|db| {
            let tip = tip_in(db)?;
            let fork_point = fork_point_in(db, locator)?;
            let from = fork_point.map_or(0, |(hh, _)| hh + 1);
            let items = blocks_from_in(db, from, limit, max_bytes)?;
            let last = items.last().map_or(from.saturating_sub(1), |x| x.height);
            Ok(ChainSlice {
                fork_point,
                more: last < tip.height,
                items,
                tip,
            })
        })
    }

    fn blocks_from_height(
        &self,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<ChainSlice<StoredBlock>> {
        self.snapshot(|db| {
            let tip = tip_in(db)?;
            let fork_point = if from == 0 {
                None
            } else {
                db.opt(
                    "SELECT id FROM blocks WHERE height = $1",
                    &[&int(from - 1)?],
                )?
                .map(|row| Ok::<_, StoreError>((from - 1, BlockId(id32(col(&row, 0)?)?))))
                .transpose()?
            };
            let items = blocks_from_in(db, from, limit, max_bytes)?;
            let last = items.last().map_or(from.saturating_sub(1), |x| x.height);
            Ok(ChainSlice {
                fork_point,
                more: last < tip.height,
                items,
                tip,
            })
        })
    }

    fn tx(&self, txid: &TxId) -> StoreResult<Option<TxRecord>> {
        self.read(|db| {
            // One statement, so one snapshot: the block id is that of the height the
            // transaction row names.
            let Some(row) = db.opt(
                "SELECT t.bytes, t.state, t.height, t.pool_seq, t.reason, b.id
                 FROM txs t LEFT JOIN blocks b ON b.height = t.height WHERE t.txid = $1",
                &[&&txid.0[..]],
            )?
            else {
                return Ok(None);
            };
            let bytes: Vec<u8> = col(&row, 0)?;
            let state: i32 = col(&row, 1)?;
            let height: Option<i64> = col(&row, 2)?;
            let seq: Option<i64> = col(&row, 3)?;
            let reason: Option<String> = col(&row, 4)?;
            let block: Option<Vec<u8>> = col(&row, 5)?;
            let state = match (state, height, seq) {
                (STATE_POOL, _, Some(seq)) => TxState::InPool { seq: uint(seq)? },
                (STATE_CONFIRMED, Some(height), _) => {
                    let id = block.ok_or_else(|| {
                        corrupt(format!(
                            "transaction {txid} is confirmed at a missing block"
                        ))
                    })?;
                    TxState::Confirmed {
                        height: uint(height)?,
                        block_id: BlockId(id32(id)?),
                    }
                }
                (STATE_DROPPED, _, _) => TxState::Dropped {
                    reason: reason.unwrap_or_default(),
                },
                _ => return Err(corrupt(format!("transaction {txid} has state {state}"))),
            };
            Ok(Some(TxRecord {
                txid: *txid,
                bytes: Some(bytes),
                state,
            }))
        })
    }

    fn output_of(&self, op: &OutPoint) -> StoreResult<Option<Output>> {
        let bytes: Option<Vec<u8>> = self.read(|db| {
            db.opt("SELECT bytes FROM txs WHERE txid = $1", &[&&op.txid.0[..]])?
                .map(|row| col(&row, 0))
                .transpose()
        })?;
        match bytes {
            None => Ok(None),
            Some(bytes) => Ok(decode_tx(&bytes)?.outputs.get(op.index as usize).copied()),
        }
    }

    fn utxo(&self, op: &OutPoint) -> StoreResult<Option<(Output, u64)>> {
        self.read(|db| {
            db.opt(
                "SELECT asset, amount::text, owner, height FROM utxos WHERE txid = $1 AND vout = $2",
                &[&&op.txid.0[..], &i64::from(op.index)],
            )?
            .map(|row| {
                let amount: String = col(&row, 1)?;
                Ok((
                    Output {
                        asset: AssetId(id32(col(&row, 0)?)?),
                        amount: amount_of(&amount)?,
                        owner: PublicKey(id32(col(&row, 2)?)?),
                    },
                    uint(col(&row, 3)?)?,
                ))
            })
            .transpose()
        })
    }

    fn utxos_of(&self, owner: &PublicKey, limit: usize) -> StoreResult<(Vec<UtxoRow>, bool)> {
        self.read(|db| {
            let rows = db.query(
                "SELECT txid, vout, asset, amount::text, height FROM utxos WHERE owner = $1
                 ORDER BY height, txid, vout LIMIT $2",
                &[&&owner.0[..], &int(limit as u64 + 1)?],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let vout: i64 = col(row, 1)?;
                let amount: String = col(row, 3)?;
                out.push((
                    OutPoint {
                        txid: TxId(id32(col(row, 0)?)?),
                        index: u32::try_from(vout)
                            .map_err(|_| corrupt(format!("stored output index {vout}")))?,
                    },
                    Output {
                        asset: AssetId(id32(col(row, 2)?)?),
                        amount: amount_of(&amount)?,
                        owner: *owner,
                    },
                    uint(col(row, 4)?)?,
                ));
            }
            let more = out.len() > limit;
            out.truncate(limit);
            Ok((out, more))
        })
    }

    fn mempool(&self) -> StoreResult<Vec<PoolEntry>> {
        self.read(|db| {
            let rows = db.query(
                "SELECT txid, bytes, pool_seq FROM txs WHERE state = $1 ORDER BY pool_seq",
                &[&STATE_POOL],
            )?;
            rows.iter()
                .map(|row| {
                    let bytes: Vec<u8> = col(row, 1)?;
                    let seq: Option<i64> = col(row, 2)?;
                    Ok(PoolEntry {
                        seq: uint(seq.ok_or_else(|| corrupt("a pool transaction has no seq"))?)?,
                        txid: TxId(id32(col(row, 0)?)?),
                        tx: decode_tx(&bytes)?,
                    })
                })
                .collect()
        })
    }

    fn mempool_changes(&self, since: u64, limit: usize) -> StoreResult<PoolChanges> {
        self.snapshot(|db| {
            let horizon = uint(horizon_in(db)?)?;
            let max = uint(max_pool_seq_in(db)?)?;
            let reset = since < horizon || since > max;
            let from = if reset { 0 } else { since };
            let rows = db.query(
                "SELECT l.seq, l.txid, l.added, t.bytes FROM pool_log l
                 LEFT JOIN txs t ON t.txid = l.txid
                 WHERE l.seq > $1 ORDER BY l.seq LIMIT $2",
                &[&int(from)?, &int(limit as u64 + 1)?],
            )?;
            let mut changes = Vec::with_capacity(rows.len());
            for row in &rows {
                let added: bool = col(row, 2)?;
                let bytes: Option<Vec<u8>> = col(row, 3)?;
                changes.push(PoolChange {
                    seq: uint(col(row, 0)?)?,
                    added,
                    txid: TxId(id32(col(row, 1)?)?),
                    bytes: if added { bytes } else { None },
                });
            }
            let more = changes.len() > limit;
            changes.truncate(limit);
            let seq = changes
                .last()
                .map_or(if reset { max } else { since }, |c| c.seq);
            Ok(PoolChanges {
                reset,
                changes,
                seq,
                more,
            })
        })
    }

    fn add_to_pool(&self, adds: &[PoolAdd], evicted: &[(TxId, String)]) -> StoreResult<Vec<u64>> {
        let distinct = adds.iter().map(|a| a.txid).collect::<HashSet<_>>().len() == adds.len();
        if adds.len() + evicted.len() > 1 && distinct {
            return self.write(|db| pool_write_bulk(db, adds, evicted));
        }
        self.write(|db| {
            let mut seqs = Vec::with_capacity(adds.len());
            for a in adds {
                seqs.push(pool_upsert(db, a)?);
            }
            for (txid, reason) in evicted {
                let n = db.exec(
                    "UPDATE txs SET state = $2, height = NULL, pool_seq = NULL, reason = $3
                     WHERE txid = $1 AND state = $4",
                    &[&&txid.0[..], &STATE_DROPPED, reason, &STATE_POOL],
                )?;
                if n != 1 {
                    return Err(corrupt(format!(
                        "evicted transaction {txid} is not in the pool"
                    )));
                }
                log_pool(db, txid, false)?;
            }
            Ok(seqs)
        })
    }

    fn apply_block(&self, block: &Block) -> StoreResult<()> {
        self.write(|db| {
            let tip = tip_in(db)?;
            if block.header.height != tip.height + 1 || block.header.prev != tip.id {
                return Err(corrupt("block does not extend the tip"));
            }
            apply_block_in(db, block)?;
            prune_pool_log(db, self.pool_log_keep)
        })
    }

    fn reorg(&self, plan: &ReorgPlan) -> StoreResult<()> {
        self.write(|db| {
            while tip_in(db)?.height > plan.fork_height {
                unapply_top_in(db)?;
            }
            for b in &plan.new_blocks {
                let tip = tip_in(db)?;
                if b.header.height != tip.height + 1 || b.header.prev != tip.id {
                    return Err(corrupt("reorg block does not extend the fork"));
                }
                apply_block_in(db, b)?;
            }
            for a in &plan.to_pool {
                pool_upsert(db, a)?;
            }
            for (txid, reason) in &plan.dropped {
                let state: Option<i32> = db
                    .opt("SELECT state FROM txs WHERE txid = $1", &[&&txid.0[..]])?
                    .map(|row| col(&row, 0))
                    .transpose()?;
                if state == Some(STATE_POOL) {
                    log_pool(db, txid, false)?;
                }
                db.exec(
                    "UPDATE txs SET state = $2, height = NULL, pool_seq = NULL, reason = $3
                     WHERE txid = $1",
                    &[&&txid.0[..], &STATE_DROPPED, reason],
                )?;
            }
            let row = db.one(
                "SELECT COUNT(*) FROM txs WHERE state = $1",
                &[&STATE_ORPHANED],
            )?;
            let left: i64 = col(&row, 0)?;
            if left != 0 {
                return Err(corrupt(format!(
                    "{left} orphaned transactions were given no fate"
                )));
            }
            Ok(())
        })
    }

    fn relay_assign(
        &self,
        agent: &[u8; 32],
        range: PortRange,
        avoid: &[u16],
        now: u64,
        reclaim_before: u64,
    ) -> StoreResult<Option<u16>> {
        self.write(|db| {
            relay_lock(db)?;
            let stored = stored_relay_port(db, agent)?;
            let rows = db.query(
                "SELECT port, seen FROM relay_ports WHERE agent <> $1 AND port BETWEEN $2 AND $3",
                &[&&agent[..], &i32::from(range.lo), &i32::from(range.hi)],
            )?;
            let mut others = Vec::with_capacity(rows.len());
            for row in &rows {
                let port: i32 = col(row, 0)?;
                let seen: i64 = col(row, 1)?;
                if let Ok(port) = u16::try_from(port) {
                    others.push((port, u64::try_from(seen).unwrap_or(0)));
                }
            }
            let Some((port, reclaimed)) =
                choose_relay_port(stored, &others, range, avoid, reclaim_before)
            else {
                return Ok(None);
            };
            if let Some(old) = reclaimed {
                db.exec(
                    "DELETE FROM relay_ports WHERE port = $1",
                    &[&i32::from(old)],
                )?;
            }
            record_relay_port(db, agent, port, now)?;
            Ok(Some(port))
        })
    }

    fn relay_port(&self, agent: &[u8; 32]) -> StoreResult<Option<u16>> {
        self.read(|db| stored_relay_port(db, agent))
    }

    fn relay_record(&self, agent: &[u8; 32], port: u16, now: u64) -> StoreResult<()> {
        self.write(|db| {
            relay_lock(db)?;
            record_relay_port(db, agent, port, now)
        })
    }
}

#[cfg(test)]
mod tests {
    //! Against a throwaway cluster of this test binary (see `cluster`): `NOTCH_TEST_POSTGRES`
    //! as in the integration suite's harness (`require`: no PostgreSQL is a failure; unset:
    //! these tests say they are skipped and pass; `skip`), `NOTCH_TEST_PG_BIN` for the
    //! server binaries (default: the newest `/usr/lib/postgresql/<version>/bin`).

    use std::collections::HashSet;
    use std::io::{BufRead, BufReader, Write};
    use std::path::PathBuf;
    use std::process::{ChildStdin, Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, OnceLock};

    use notch_protocol::ed25519_dalek::SigningKey;
    use notch_protocol::{Issuance, Network, public_key};

    use super::*;

    struct Cluster {
        port: u16,
        /// The CA of the server's TLS certificate, if it could be made (openssl).
        ca: Option<PathBuf>,
        /// Closed when this process ends, however it ends: the watchdog shell then stops
        /// the cluster and removes its directory.
        _watchdog: Mutex<ChildStdin>,
    }

    /// The server binaries, found as the integration suite's cluster finds them.
    fn server_bin() -> Option<PathBuf> {
        crate::throwaway_pg::server_bin_dir().ok()
    }

    /// The server runs as the `postgres` user when we are root (initdb refuses root), in a
    /// directory of its own under /tmp; fsync stays on.
    const WATCHDOG: &str = r#"
set -e
bin=$1; port=$2
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
dir=$(as_pg mktemp -d /tmp/notch-pgstore-test-XXXXXX)
as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
# TLS beside plain TCP, with a certificate of a throwaway CA for 127.0.0.1.
ssl=""
if command -v openssl >/dev/null 2>&1 && (
    cd "$dir" && as_pg sh -c '
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=notch test CA" \
        -keyout ca.key -out ca.crt &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr &&
    printf "subjectAltName=IP:127.0.0.1\n" > server.ext &&
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.crt && chmod 600 server.key' ) >"$dir/openssl.log" 2>&1
then
    ssl="-c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
fi
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -s \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir $ssl" start \
    || { cat "$dir/server.log" >&2; rm -rf "$dir"; exit 1; }
if [ -n "$ssl" ]; then echo "ready $dir/ca.crt"; else echo ready; fi
read -r _ || true
as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w -s stop || true
rm -rf "$dir"
"#;

    fn cluster() -> Option<&'static Cluster> {
        static CLUSTER: OnceLock<Result<Option<Cluster>, String>> = OnceLock::new();
        let mode = std::env::var("NOTCH_TEST_POSTGRES").unwrap_or_default();
        let c = CLUSTER.get_or_init(|| {
            if mode == "skip" {
                return Ok(None);
            }
            let Some(bin) = server_bin() else {
                if mode == "require" {
                    return Err("NOTCH_TEST_POSTGRES=require, but no PostgreSQL server \
                                binaries (initdb, pg_ctl, postgres) were found in \
                                NOTCH_TEST_PG_BIN or /usr/lib/postgresql/<version>/bin \
                                (cargo xtask setup installs them)"
                        .into());
                }
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: the PgStore tests: no PostgreSQL installed"
                );
                return Ok(None);
            };
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port();
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(WATCHDOG)
                .arg("watchdog")
                .arg(&bin)
                .arg(port.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot run sh: {e}"))?;
            let stdin = child.stdin.take().ok_or("no stdin")?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let mut words = line.split_whitespace();
            if words.next() != Some("ready") {
                return Err(format!(
                    "the test cluster did not start ({})",
                    child.wait().map_or("?".into(), |s| s.to_string())
                ));
            }
            Ok(Some(Cluster {
                port,
                ca: words.next().map(PathBuf::from),
                _watchdog: Mutex::new(stdin),
            }))
        });
        match c {
            Ok(c) => c.as_ref(),
            Err(e) => panic!("{e}"),
        }
    }

    /// A fresh database of the cluster, or `None` when the tests are skipped.
    fn database() -> Option<DatabaseUrl> {
        static N: AtomicU32 = AtomicU32::new(0);
        let c = cluster()?;
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                c.port
            ),
            NoTls,
        )
        .unwrap_or_else(|e| panic!("admin connection: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("create database: {e}"));
        Some(DatabaseUrl(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            c.port
        )))
    }

    fn raw_client(url: &DatabaseUrl) -> Client {
        url.config()
            .and_then(|c| c.connect(NoTls).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn mint(issuer: &SigningKey, to: PublicKey, amount: u64, nonce: u64) -> Transaction {
        let mut t = Transaction::new(Network::Sandbox);
        t.issuances = vec![Issuance {
            issuer: public_key(issuer),
            label: "NOTE".into(),
            mint: amount,
            burn: 0,
        }];
        t.outputs = vec![Output {
            asset: t.issuances[0].asset(),
            amount,
            owner: to,
        }];
        t.nonce = nonce;
        t.sign(&[issuer]).ok();
        t
    }

    /// Signed by `key` for every input (the store checks no signature, but a transaction
    /// decodes only with one per input).
    fn spend(key: &SigningKey, from: &[OutPoint], outputs: Vec<Output>, nonce: u64) -> Transaction {
        let mut t = Transaction::new(Network::Sandbox);
        t.inputs = from.to_vec();
        t.outputs = outputs;
        t.nonce = nonce;
        let keys = vec![key; from.len()];
        t.sign(&keys).ok();
        t
    }

    fn add(t: &Transaction) -> PoolAdd {
        PoolAdd {
            txid: t.txid(),
            bytes: t.encode(),
        }
    }

    struct Chain {
        store: PgStore,
        url: DatabaseUrl,
        auth: SigningKey,
        issuer: SigningKey,
        owner_key: SigningKey,
        owner: PublicKey,
        genesis: Block,
    }

    impl Chain {
        fn new() -> Option<Chain> {
            Chain::with_pool_log_keep(POOL_LOG_KEEP)
        }

        fn with_pool_log_keep(keep: i64) -> Option<Chain> {
            let url = database()?;
            let store = PgStore::open(&url)
                .unwrap_or_else(|e| panic!("open: {e}"))
                .with_pool_log_keep(keep);
            let auth = SigningKey::from_bytes(&[1; 32]);
            let meta = LedgerMeta {
                network: Network::Sandbox,
                authority: public_key(&auth),
                assets: vec![],
            };
            let mut genesis = Block::build(Network::Sandbox, None, 100, 0, vec![]);
            genesis.header.sign(&auth);
            assert_eq!(store.load_meta().ok(), Some(None));
            store
                .init(&meta, &genesis)
                .unwrap_or_else(|e| panic!("init: {e}"));
            assert_eq!(store.load_meta().ok(), Some(Some(meta)));
            Some(Chain {
                store,
                url,
                auth,
                issuer: SigningKey::from_bytes(&[2; 32]),
                owner_key: SigningKey::from_bytes(&[3; 32]),
                owner: public_key(&SigningKey::from_bytes(&[3; 32])),
                genesis,
            })
        }

        fn block(&self, prev: &Block, time: u64, txs: Vec<Transaction>) -> Block {
            let mut b = Block::build(Network::Sandbox, Some(&prev.header), time, 0, txs);
            b.header.sign(&self.auth);
            b
        }
    }

    #[test]
    fn blocks_pool_and_reorg_round_trip() -> Result<(), StoreError> {
        let Some(c) = Chain::new() else { return Ok(()) };
        let store = &c.store;
        let g = &c.genesis;
        assert_eq!(store.tip()?.id, g.id());
        let t1 = mint(&c.issuer, c.owner, 50, 1);
        let seqs = store.add_to_pool(&[add(&t1)], &[])?;
        assert_eq!(seqs.len(), 1);
        assert_eq!(
            store.tx(&t1.txid())?.map(|r| r.state),
            Some(TxState::InPool { seq: seqs[0] })
        );
        let b1 = c.block(g, 101, vec![t1.clone()]);
        store.apply_block(&b1)?;
        let op = OutPoint {
            txid: t1.txid(),
            index: 0,
        };
        assert_eq!(
            store.utxo(&op)?.map(|(o, hh)| (o.amount, hh)),
            Some((50, 1))
        );
        assert_eq!(
            store.tx(&t1.txid())?.map(|r| r.state),
            Some(TxState::Confirmed {
                height: 1,
                block_id: b1.id()
            })
        );
        assert_eq!(store.output_of(&op)?.map(|o| o.amount), Some(50));
        assert_eq!(store.utxos_of(&c.owner, 10)?.0.len(), 1);
        assert!(store.mempool()?.is_empty());
        let changes = store.mempool_changes(0, 10)?;
        assert_eq!(
            changes.changes.iter().map(|c| c.added).collect::<Vec<_>>(),
            vec![true, false]
        );
        assert_eq!(store.header_at(1)?.map(|h| h.id()), Some(b1.id()));
        assert_eq!(store.block_by_id(&b1.id())?.map(|b| b.height), Some(1));
        assert_eq!(store.blocks_at(0, 5)?.len(), 2);
        // Reorg: drop b1, new empty blocks 1 and 2; t1 back to the pool.
        let mut n1 = Block::build(Network::Sandbox, Some(&g.header), 101, 7, vec![]);
        n1.header.sign(&c.auth);
        let n2 = c.block(&n1, 102, vec![]);
        store.reorg(&ReorgPlan {
            fork_height: 0,
            new_blocks: vec![n1.clone(), n2.clone()],
            to_pool: vec![add(&t1)],
            dropped: vec![],
        })?;
        assert_eq!(store.tip()?.id, n2.id());
        assert!(store.utxo(&op)?.is_none());
        assert_eq!(store.mempool()?.len(), 1);
        assert!(store.block_by_id(&b1.id())?.is_none());
        let slice = store.headers_after_locator(&[b1.id(), g.id()], 10)?;
        assert_eq!(slice.fork_point.map(|f| f.0), Some(0));
        assert_eq!(
            slice.items.iter().map(|x| x.height).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(!slice.more);
        let blocks = store.blocks_after_locator(&[n1.id()], 10, usize::MAX)?;
        assert_eq!(blocks.fork_point, Some((1, n1.id())));
        assert_eq!(blocks.items.len(), 1);
        let from = store.blocks_from_height(1, 1, usize::MAX)?;
        assert_eq!(from.fork_point, Some((0, g.id())));
        assert!(from.more);
        // The byte budget: at least one block, then only what fits.
        assert_eq!(store.blocks_from_height(0, 10, 1)?.items.len(), 1);
        // A reorg that forgets an orphan is refused and leaves the store untouched.
        let b3 = c.block(&n2, 103, vec![t1.clone()]);
        store.apply_block(&b3)?;
        let c2 = c.block(&n1, 103, vec![]);
        let bad = store.reorg(&ReorgPlan {
            fork_height: 1,
            new_blocks: vec![c2],
            to_pool: vec![],
            dropped: vec![],
        });
        assert!(matches!(bad, Err(StoreError::Corrupt(_))), "{bad:?}");
        assert_eq!(store.tip()?.id, b3.id());
        assert_eq!(store.utxo(&op)?.map(|(_, hh)| hh), Some(3));
        // The same reorg with the orphan's fate: dropped.
        let c2 = c.block(&n1, 103, vec![]);
        store.reorg(&ReorgPlan {
            fork_height: 1,
            new_blocks: vec![c2.clone()],
            to_pool: vec![],
            dropped: vec![(t1.txid(), "test".into())],
        })?;
        assert_eq!(store.tip()?.id, c2.id());
        assert_eq!(
            store.tx(&t1.txid())?.map(|r| r.state),
            Some(TxState::Dropped {
                reason: "test".into()
            })
        );
        Ok(())
    }

    /// A spend restores its inputs when its block is undone, and outputs keep their exact
    /// u64 amounts, also above i64::MAX, and sum correctly in the database.
    #[test]
    fn spends_unapply_and_amounts_above_i64() -> Result<(), StoreError> {
        let Some(c) = Chain::new() else { return Ok(()) };
        let store = &c.store;
        let big = u64::MAX - 1;
        let t1 = mint(&c.issuer, c.owner, big, 1);
        let t2 = mint(&c.issuer, c.owner, u64::MAX / 2 + 7, 2);
        let b1 = c.block(&c.genesis, 101, vec![t1.clone(), t2.clone()]);
        store.apply_block(&b1)?;
        let op = OutPoint {
            txid: t1.txid(),
            index: 0,
        };
        assert_eq!(store.utxo(&op)?.map(|(o, _)| o.amount), Some(big));
        let (rows, more) = store.utxos_of(&c.owner, 10)?;
        assert!(!more);
        let mut amounts: Vec<u64> = rows.iter().map(|r| r.1.amount).collect();
        amounts.sort();
        assert_eq!(amounts, vec![u64::MAX / 2 + 7, big]);
        let mut raw = raw_client(&c.url);
        let sum: String = raw
            .query_one("SELECT SUM(amount)::text FROM utxos", &[])
            .and_then(|r| r.try_get(0))
            .map_err(be)?;
        assert_eq!(
            sum,
            (u128::from(big) + u128::from(u64::MAX / 2 + 7)).to_string()
        );
        // t3 spends t1's output into two; undoing its block brings t1's output back.
        let asset = t1.outputs[0].asset;
        let half = Output {
            asset,
            amount: big / 2,
            owner: c.owner,
        };
        let t3 = spend(&c.owner_key, &[op], vec![half, half], 3);
        let b2 = c.block(&b1, 102, vec![t3.clone()]);
        store.apply_block(&b2)?;
        assert!(store.utxo(&op)?.is_none());
        assert_eq!(store.utxos_of(&c.owner, 10)?.0.len(), 3);
        assert_eq!(store.utxos_of(&c.owner, 2)?, {
            let (rows, more) = store.utxos_of(&c.owner, 2)?;
            assert!(more);
            (rows, true)
        });
        let n2 = c.block(&b1, 102, vec![]);
        store.reorg(&ReorgPlan {
            fork_height: 1,
            new_blocks: vec![n2],
            to_pool: vec![add(&t3)],
            dropped: vec![],
        })?;
        assert_eq!(store.utxo(&op)?.map(|(o, h)| (o.amount, h)), Some((big, 1)));
        assert!(
            store
                .utxo(&OutPoint {
                    txid: t3.txid(),
                    index: 0
                })?
                .is_none()
        );
        assert_eq!(store.mempool()?.len(), 1);
        Ok(())
    }

    /// A write that fails half-way leaves nothing of itself: the failed block's first
    /// transaction is not stored, the pool adds before a bad eviction are not either.
    #[test]
    fn a_failed_write_leaves_nothing() -> Result<(), StoreError> {
        let Some(c) = Chain::new() else { return Ok(()) };
        let store = &c.store;
        let good = mint(&c.issuer, c.owner, 10, 1);
        let missing = OutPoint {
            txid: TxId([9; 32]),
            index: 0,
        };
        let bad = spend(
            &c.owner_key,
            &[missing],
            vec![Output {
                asset: good.outputs[0].asset,
                amount: 1,
                owner: c.owner,
            }],
            2,
        );
        let b1 = c.block(&c.genesis, 101, vec![good.clone(), bad]);
        let r = store.apply_block(&b1);
        assert!(matches!(r, Err(StoreError::Corrupt(_))), "{r:?}");
        assert_eq!(store.tip()?.height, 0);
        assert!(store.tx(&good.txid())?.is_none());
        assert!(store.utxos_of(&c.owner, 10)?.0.is_empty());
        // A block that does not extend the tip.
        let orphan = c.block(&b1, 102, vec![]);
        assert!(store.apply_block(&orphan).is_err());
        // Pool: an eviction of a transaction that is not in the pool undoes the adds.
        let p1 = mint(&c.issuer, c.owner, 11, 3);
        let r = store.add_to_pool(&[add(&p1)], &[(TxId([7; 32]), "x".into())]);
        assert!(r.is_err());
        assert!(store.tx(&p1.txid())?.is_none());
        assert!(store.mempool()?.is_empty());
        assert!(store.mempool_changes(0, 10)?.changes.is_empty());
        // The store still works after the failures, on the same connections.
        store.add_to_pool(&[add(&p1)], &[])?;
        store.apply_block(&c.block(&c.genesis, 101, vec![p1]))?;
        assert_eq!(store.tip()?.height, 1);
        Ok(())
    }

    /// Within one block: a spend of an earlier transaction's output is applied; a spend of
    /// a later one's, an output spent twice and a transaction twice are refused, and leave
    /// nothing.
    #[test]
    fn spends_inside_one_block() -> Result<(), StoreError> {
        let Some(c) = Chain::new() else { return Ok(()) };
        let store = &c.store;
        let m = mint(&c.issuer, c.owner, 100, 1);
        let op = OutPoint {
            txid: m.txid(),
            index: 0,
        };
        let out = |amount| Output {
            asset: m.outputs[0].asset,
            amount,
            owner: c.owner,
        };
        let s1 = spend(&c.owner_key, &[op], vec![out(60), out(40)], 2);
        let s2 = spend(
            &c.owner_key,
            &[OutPoint {
                txid: s1.txid(),
                index: 1,
            }],
            vec![out(40)],
            3,
        );
        let twice = spend(&c.owner_key, &[op], vec![out(100)], 4);
        for (what, txs) in [
            ("a later output", vec![m.clone(), s2.clone(), s1.clone()]),
            ("an output twice", vec![m.clone(), s1.clone(), twice]),
            ("a transaction twice", vec![m.clone(), m.clone()]),
        ] {
            let r = store.apply_block(&c.block(&c.genesis, 101, txs));
            assert!(matches!(r, Err(StoreError::Corrupt(_))), "{what}: {r:?}");
            assert_eq!(store.tip()?.height, 0, "{what}");
            assert!(store.tx(&m.txid())?.is_none(), "{what}");
        }
        store.add_to_pool(&[add(&m), add(&s1), add(&s2)], &[])?;
        store.apply_block(&c.block(&c.genesis, 101, vec![m, s1.clone(), s2.clone()]))?;
        let mut left: Vec<(OutPoint, u64)> = store
            .utxos_of(&c.owner, 10)?
            .0
            .into_iter()
            .map(|(op, o, _)| (op, o.amount))
            .collect();
        left.sort_by_key(|x| x.1);
        assert_eq!(
            left,
            vec![
                (
                    OutPoint {
                        txid: s2.txid(),
                        index: 0
                    },
                    40
                ),
                (
                    OutPoint {
                        txid: s1.txid(),
                        index: 0
                    },
                    60
                ),
            ]
        );
        assert!(store.mempool()?.is_empty());
        let changes = store.mempool_changes(0, 10)?.changes;
        assert_eq!(
            changes
                .iter()
                .filter(|c| !c.added)
                .map(|c| c.txid)
                .collect::<Vec<_>>(),
            vec![op.txid, s1.txid(), s2.txid()],
            "pool exits are logged in block order"
        );
        Ok(())
    }

    #[test]
    fn pool_adds_evictions_and_changes() -> Result<(), StoreError> {
        let Some(c) = Chain::new() else { return Ok(()) };
        let store = &c.store;
        let txs: Vec<Transaction> = (0..5)
            .map(|n| mint(&c.issuer, c.owner, 100 + n, n))
            .collect();
        let seqs = store.add_to_pool(&txs.iter().map(add).collect::<Vec<_>>(), &[])?;
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        assert_eq!(
            store.mempool()?.iter().map(|e| e.txid).collect::<Vec<_>>(),
            txs.iter().map(Transaction::txid).collect::<Vec<_>>()
        );
        let late = mint(&c.issuer, c.owner, 1, 99);
        let more = store.add_to_pool(
            &[add(&late)],
            &[
                (txs[0].txid(), "evicted: fee rate".into()),
                (txs[1].txid(), "evicted: fee rate".into()),
            ],
        )?;
        assert!(more[0] > seqs[4]);
        assert_eq!(store.mempool()?.len(), 4);
        assert_eq!(
            store.tx(&txs[0].txid())?.map(|r| r.state),
            Some(TxState::Dropped {
                reason: "evicted: fee rate".into()
            })
        );
        let all = store.mempool_changes(0, 100)?;
        assert!(!all.reset && !all.more);
        assert_eq!(all.changes.len(), 8);
        assert!(
            all.changes[..5]
                .iter()
                .all(|c| c.added && c.bytes.is_some())
        );
        let removed: Vec<TxId> = all
            .changes
            .iter()
            .filter(|c| !c.added)
            .map(|c| c.txid)
            .collect();
        assert_eq!(removed, vec![txs[0].txid(), txs[1].txid()]);
        assert!(
            all.changes
                .iter()
                .filter(|c| !c.added)
                .all(|c| c.bytes.is_none())
        );
        // Pages, and a continuation from the middle.
        let page = store.mempool_changes(0, 3)?;
        assert!(page.more);
        let rest = store.mempool_changes(page.seq, 100)?;
        assert_eq!(page.changes.len() + rest.changes.len(), 8);
        assert!(!rest.reset);
        // From beyond the end: a reset.
        assert!(store.mempool_changes(all.seq + 1000, 10)?.reset);
        Ok(())
    }

    /// After the pool log is pruned, a client replaying from 0 page by page reaches the end
    /// and ends with exactly the current pool (as `sqlite`'s test of the same name).
    #[test]
    fn pruned_pool_log_replays_to_the_current_pool() -> Result<(), StoreError> {
        let Some(c) = Chain::with_pool_log_keep(4) else {
            return Ok(());
        };
        let store = &c.store;
        let mut waiting: Vec<Transaction> = Vec::new();
        let mut prev = c.genesis.clone();
        let mut nonce = 0;
        for round in 0..8u64 {
            let adds: Vec<Transaction> = (0..6)
                .map(|_| {
                    nonce += 1;
                    mint(&c.issuer, c.owner, 10, nonce)
                })
                .collect();
            store.add_to_pool(&adds.iter().map(add).collect::<Vec<_>>(), &[])?;
            waiting.extend(adds);
            let confirm: Vec<Transaction> = waiting.drain(..3).collect();
            let b = c.block(&prev, 101 + round, confirm);
            store.apply_block(&b)?;
            prev = b;
        }
        let horizon = store.read(horizon_in)?;
        assert!(horizon > 0, "the log was pruned");
        let mut pool: HashSet<TxId> = HashSet::new();
        let mut since = 0;
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages < 100, "the replay never ends");
            let page = store.mempool_changes(since, 3)?;
            if page.reset {
                assert_eq!(since, 0, "a continuation was reset (page {pages})");
                pool.clear();
            }
            for ch in &page.changes {
                if ch.added {
                    pool.insert(ch.txid);
                } else {
                    pool.remove(&ch.txid);
                }
            }
            since = page.seq;
            if !page.more {
                break;
            }
        }
        let expected: HashSet<TxId> = store.mempool()?.into_iter().map(|e| e.txid).collect();
        assert_eq!(pool, expected);
        assert_eq!(expected.len(), waiting.len());
        // From below the horizon: a reset.
        assert!(store.mempool_changes(1, 10)?.reset);
        Ok(())
    }

    #[test]
    fn relay_ports_are_kept_taken_and_reclaimed() -> Result<(), StoreError> {
        let Some(c) = Chain::new() else { return Ok(()) };
        let store = &c.store;
        let range = PortRange {
            lo: 47000,
            hi: 47001,
        };
        let (a, b, d) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        assert_eq!(store.relay_port(&a)?, None);
        assert_eq!(store.relay_assign(&a, range, &[], 10, 0)?, Some(47000));
        assert_eq!(store.relay_assign(&b, range, &[], 11, 0)?, Some(47001));
        // Again: the same port, the stored one.
        assert_eq!(store.relay_assign(&a, range, &[], 12, 0)?, Some(47000));
        // Full: nothing for a third agent unless an old one may be reclaimed.
        assert_eq!(store.relay_assign(&d, range, &[], 13, 5)?, None);
        assert_eq!(store.relay_assign(&d, range, &[], 13, 12)?, Some(47001));
        assert_eq!(store.relay_port(&b)?, None);
        // Recording a port takes it from whoever had it.
        store.relay_record(&a, 47001, 20)?;
        assert_eq!(store.relay_port(&a)?, Some(47001));
        assert_eq!(store.relay_port(&d)?, None);
        Ok(())
    }

    /// Concurrent registrations never share a port (the relay's writes are serialised).
    #[test]
    fn concurrent_relay_assignments_get_distinct_ports() -> Result<(), StoreError> {
        let Some(c) = Chain::new() else { return Ok(()) };
        let store = Arc::new(c.store);
        let range = PortRange {
            lo: 47000,
            hi: 47099,
        };
        let threads: Vec<_> = (0..8u8)
            .map(|n| {
                let store = store.clone();
                std::thread::spawn(move || store.relay_assign(&[n; 32], range, &[], 1, 0))
            })
            .collect();
        let mut ports = HashSet::new();
        for t in threads {
            let port = t
                .join()
                .map_err(|_| StoreError::Backend("thread panicked".into()))??;
            assert!(ports.insert(port), "{port:?} twice");
        }
        assert_eq!(ports.len(), 8);
        Ok(())
    }

    /// Connections the server closed while they were idle (a restart, an administrator) are
    /// replaced: the next read and the next write work.
    #[test]
    fn connections_closed_by_the_server_are_replaced() -> Result<(), StoreError> {
        let Some(c) = Chain::new() else { return Ok(()) };
        let store = &c.store;
        // Open several connections, so that some are idle in the pool.
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| store.mempool_changes(0, 10));
            }
        });
        let name = c.url.config().map_err(StoreError::Backend)?;
        let name = name.get_dbname().unwrap_or_default().to_owned();
        let mut admin = raw_client(&c.url);
        let killed = admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&name],
            )
            .map_err(be)?;
        assert!(killed >= 2, "{killed} connections");
        assert_eq!(store.tip()?.height, 0);
        // The process lock went with its connection; the first write takes it again.
        let held = |admin: &mut Client| -> Result<i64, StoreError> {
            admin
                .query_one(
                    "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                     AND database = (SELECT oid FROM pg_database WHERE datname = $1)",
                    &[&name],
                )
                .and_then(|r| r.try_get(0))
                .map_err(be)
        };
        assert_eq!(held(&mut admin)?, 0);
        let t = mint(&c.issuer, c.owner, 5, 1);
        store.add_to_pool(&[add(&t)], &[])?;
        store.apply_block(&c.block(&c.genesis, 101, vec![t]))?;
        assert_eq!(store.tip()?.height, 1);
        assert_eq!(held(&mut admin)?, 1);
        Ok(())
    }

    /// A store whose lock went with its connection, while another process took it, refuses
    /// to write (two in-memory pools on one database would diverge).
    #[test]
    fn a_store_that_lost_its_lock_to_another_writes_no_more() -> Result<(), StoreError> {
        let Some(c) = Chain::new() else { return Ok(()) };
        let name = c.url.config().map_err(StoreError::Backend)?;
        let name = name.get_dbname().unwrap_or_default().to_owned();
        let mut admin = raw_client(&c.url);
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&name],
            )
            .map_err(be)?;
        let other = PgStore::open(&c.url)?;
        let t = mint(&c.issuer, c.owner, 5, 1);
        let err = match c.store.add_to_pool(&[add(&t)], &[]) {
            Ok(_) => panic!("a store without the lock wrote"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("another process holds it"), "{err}");
        assert!(other.tx(&t.txid())?.is_none());
        other.add_to_pool(&[add(&t)], &[])?;
        Ok(())
    }

    #[test]
    fn a_newer_schema_is_refused() -> Result<(), StoreError> {
        let Some(url) = database() else {
            return Ok(());
        };
        drop(PgStore::open(&url)?);
        let mut raw = raw_client(&url);
        let version: String = raw
            .query_one("SELECT value FROM meta WHERE key = 'schema_version'", &[])
            .and_then(|r| r.try_get(0))
            .map_err(be)?;
        assert_eq!(version, SCHEMA_VERSION.to_string());
        raw.execute(
            "UPDATE meta SET value = $1 WHERE key = 'schema_version'",
            &[&(SCHEMA_VERSION + 1).to_string()],
        )
        .map_err(be)?;
        let err = match PgStore::open(&url) {
            Ok(_) => panic!("a newer schema was opened"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&format!("version {}", SCHEMA_VERSION + 1)) && err.contains("newer"),
            "{err}"
        );
        // Opening again at the current version changes nothing (no migration re-run).
        raw.execute(
            "UPDATE meta SET value = $1 WHERE key = 'schema_version'",
            &[&SCHEMA_VERSION.to_string()],
        )
        .map_err(be)?;
        drop(PgStore::open(&url)?);
        Ok(())
    }

    #[test]
    fn a_second_process_on_the_database_is_refused() -> Result<(), StoreError> {
        let Some(c) = Chain::new() else { return Ok(()) };
        let started = Instant::now();
        let err = match PgStore::open(&c.url) {
            Ok(_) => panic!("two stores on one database"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("another notch-gateway"), "{err}");
        assert!(started.elapsed() >= LOCK_WAIT);
        // Once the first is gone, the database opens again, with its chain.
        drop(c.store);
        let again = PgStore::open(&c.url)?;
        assert_eq!(again.tip()?.id, c.genesis.id());
        Ok(())
    }

    /// A replica's wait returns when the writer commits (NOTIFY), long before its timeout;
    /// the replica's store refuses to write.
    #[test]
    fn a_replica_is_woken_by_the_writers_commits() -> Result<(), StoreError> {
        let Some(c) = Chain::new() else { return Ok(()) };
        let replica = PgStore::open_replica(&c.url, None)?;
        // The first wait opens the listening connection; from then on commits wake it.
        replica.wait_for_change(Duration::from_millis(10));
        let waited = std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let started = Instant::now();
                replica.wait_for_change(Duration::from_secs(20));
                started.elapsed()
            });
            std::thread::sleep(Duration::from_millis(300));
            let t = mint(&c.issuer, c.owner, 5, 1);
            let added = c.store.add_to_pool(&[add(&t)], &[]);
            (waiter.join(), added)
        });
        let (elapsed, added) = waited;
        added?;
        let elapsed = elapsed.map_err(|_| StoreError::Backend("waiter panicked".into()))?;
        assert!(elapsed < Duration::from_secs(10), "woken after {elapsed:?}");
        assert_eq!(replica.mempool()?.len(), 1);
        let t = mint(&c.issuer, c.owner, 6, 2);
        let err = match replica.add_to_pool(&[add(&t)], &[]) {
            Ok(_) => panic!("a replica wrote"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("read-only"), "{err}");
        // And a database with no mirror yet is refused to a replica.
        let Some(empty) = database() else {
            return Ok(());
        };
        let err = match PgStore::open_replica(&empty, None) {
            Ok(_) => panic!("a replica opened an empty database"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("no notch mirror yet"), "{err}");
        Ok(())
    }

    /// With its database unreachable (recovery after a failed write fails too) the gateway
    /// still stops when asked: the writer used to refuse the shutdown as it refused every
    /// command it could not recover for, and waited for good.
    #[tokio::test]
    async fn the_gateway_stops_while_its_database_is_away() -> anyhow::Result<()> {
        use clap::Parser;
        let Some(url) = tokio::task::spawn_blocking(database).await? else {
            return Ok(());
        };
        let dir = tempfile::tempdir()?;
        let config = crate::Config::parse_from([
            "notch-gateway",
            "--sandbox",
            "--listen",
            "127.0.0.1:0",
            "--no-relay",
            "--block-interval",
            "0",
            "--data-dir",
            dir.path().to_str().unwrap_or_default(),
            "--database",
            &url.0,
        ]);
        let running = crate::start(config).await?;
        let engine = running.engine.clone();
        let away = url.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let name = away.config().map_err(StoreError::Backend)?;
            let name = name.get_dbname().unwrap_or_default().to_owned();
            // From another database: one cannot lock oneself out.
            let mut admin = away
                .config()
                .map_err(StoreError::Backend)?
                .dbname("postgres")
                .connect(NoTls)
                .map_err(be)?;
            admin
                .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
                .map_err(be)?;
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&name],
                )
                .map_err(be)?;
            Ok(())
        })
        .await??;
        // A block fails (the write), then the next command's recovery fails too.
        assert!(engine.mine(1).await.is_err());
        assert!(engine.mine(1).await.is_err());
        drop(engine);
        tokio::time::timeout(Duration::from_secs(15), running.shutdown())
            .await
            .map_err(|_| anyhow::anyhow!("the gateway did not stop within 15 s"))?;
        Ok(())
    }

    /// The first event about `txid` that is (or is not) a confirmation, within 10 s; it
    /// names `owner`.
    async fn heard(
        events: &mut tokio::sync::broadcast::Receiver<crate::ledger::Event>,
        txid: &str,
        owner: PublicKey,
        confirmed: bool,
    ) -> anyhow::Result<notch_protocol::api::TxStatus> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match events.recv().await {
                    Ok(crate::ledger::Event::Tx {
                        txid: t,
                        status,
                        addresses,
                    }) if t.to_hex() == txid => {
                        assert!(addresses.contains(&owner), "{addresses:?}");
                        let is_confirmed =
                            matches!(status, notch_protocol::api::TxStatus::Confirmed { .. });
                        if is_confirmed == confirmed {
                            return Ok(status);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(anyhow::anyhow!("{e}")),
                }
            }
        })
        .await?
    }

    /// A read-only replica on the database another gateway writes: it follows the tip
    /// (new blocks and a roll-back reach its subscribers), serves the chain, and refuses
    /// what needs a writer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_only_replica_follows_the_writer() -> anyhow::Result<()> {
        use clap::Parser;
        let Some(url) = tokio::task::spawn_blocking(database).await? else {
            return Ok(());
        };
        let dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
        let args = |dir: &tempfile::TempDir, extra: &[&str]| {
            let mut a = vec![
                "notch-gateway".to_owned(),
                "--sandbox".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--no-relay".into(),
                "--block-interval".into(),
                "0".into(),
                "--data-dir".into(),
                dir.path().to_string_lossy().into_owned(),
                "--database".into(),
                url.0.clone(),
            ];
            a.extend(extra.iter().map(|s| s.to_string()));
            crate::Config::parse_from(a)
        };
        // No ledger yet: a replica cannot start.
        let early = crate::start(args(&dirs.1, &["--read-only"])).await;
        assert!(early.is_err(), "a replica started on an empty database");
        let writer = crate::start(args(&dirs.0, &[])).await?;
        let replica = crate::start(args(&dirs.1, &["--read-only"])).await?;
        assert!(replica.engine.read_only() && replica.relay.is_none());
        let mut events = replica.engine.events.subscribe();
        let http = reqwest::Client::builder().no_proxy().build()?;
        let (w, r) = (
            format!("http://{}", writer.addr),
            format!("http://{}", replica.addr),
        );
        http.post(format!("{w}/v1/sandbox/mine"))
            .json(&serde_json::json!({"blocks": 2}))
            .send()
            .await?
            .error_for_status()?;
        // `events` was subscribed before the blocks were mined: it holds their tips.
        let seen = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match events.recv().await {
                    Ok(crate::ledger::Event::Tip(t)) if t.height == 2 => return Ok(t),
                    Ok(_) => {}
                    Err(e) => return Err(anyhow::anyhow!("{e}")),
                }
            }
        })
        .await??;
        assert_eq!(writer.engine.tip().id.to_hex(), seen.hash);
        let health: serde_json::Value = http
            .get(format!("{r}/v1/health"))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(health["tip_height"], 2, "{health}");
        let blocks: serde_json::Value = http
            .get(format!("{r}/v1/blocks?from=0"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        assert_eq!(
            blocks["blocks"].as_array().map(Vec::len),
            Some(3),
            "{blocks}"
        );
        // Sandbox commands are the producer's; a submission is checked here first (phase 2:
        // a replica queues what passes for the producer, tests/replicas.rs).
        for (path, body, code) in [
            ("/v1/sandbox/mine", serde_json::json!({"blocks": 1}), 503),
            ("/v1/tx", serde_json::json!({"tx": "00"}), 400),
        ] {
            let answer = http.post(format!("{r}{path}")).json(&body).send().await?;
            assert_eq!(answer.status(), code, "{path}");
        }
        // A payment submitted to the writer reaches the replica's subscribers: in the pool,
        // then confirmed.
        let owner = public_key(&SigningKey::from_bytes(&[6; 32]));
        let submitted = Instant::now();
        let faucet: serde_json::Value = http
            .post(format!("{w}/v1/sandbox/faucet"))
            .json(&serde_json::json!({
                "address": notch_protocol::Address::new(Network::Sandbox, owner).to_string(),
                "asset": "NOTE",
                "amount": 5000,
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let paid = faucet["txid"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            heard(&mut events, &paid, owner, false).await?,
            notch_protocol::api::TxStatus::InPool
        );
        eprintln!(
            "a payment submitted to the writer was heard on the replica {:?} after the submit began",
            submitted.elapsed()
        );
        http.post(format!("{w}/v1/sandbox/mine"))
            .json(&serde_json::json!({"blocks": 1}))
            .send()
            .await?
            .error_for_status()?;
        heard(&mut events, &paid, owner, true).await?;
        // A roll-back on the writer reaches the replica's subscribers with its fork point.
        let mut rolled = events.resubscribe();
        http.post(format!("{w}/v1/sandbox/reorg"))
            .json(&serde_json::json!({"depth": 1}))
            .send()
            .await?
            .error_for_status()?;
        let fork = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match rolled.recv().await {
                    Ok(crate::ledger::Event::Reorg { fork_point, .. }) => return Ok(fork_point),
                    Ok(_) => {}
                    Err(e) => return Err(anyhow::anyhow!("{e}")),
                }
            }
        })
        .await??;
        assert_eq!(fork.height, 2);
        replica.shutdown().await;
        writer.shutdown().await;
        Ok(())
    }

    /// TLS only when asked for, and then with the server's certificate checked.
    #[test]
    fn tls_with_a_checked_certificate_or_plain_tcp() -> Result<(), StoreError> {
        let Some(url) = database() else {
            return Ok(());
        };
        let Some(ca) = cluster().and_then(|c| c.ca.as_deref()) else {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: the PgStore TLS test: the test cluster has no certificate (openssl?)"
            );
            return Ok(());
        };
        let on_tls = |store: &PgStore| -> StoreResult<bool> {
            store.read(|db| {
                let row = db.one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )?;
                col(&row, 0)
            })
        };
        let plain = PgStore::open(&url)?;
        assert!(!on_tls(&plain)?);
        drop(plain);
        let verified = PgStore::open_with_ca(&url, Some(ca))?;
        assert!(on_tls(&verified)?);
        drop(verified);
        let required = DatabaseUrl(format!("{}?sslmode=require", url.0));
        assert!(required.redacted().ends_with("?sslmode=require"));
        assert!(on_tls(&PgStore::open_with_ca(&required, Some(ca))?)?);
        // Required, without the CA: the Mozilla roots do not know the test CA.
        let err = match PgStore::open(&required) {
            Ok(_) => panic!("a certificate of an unknown CA was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("certificate"), "{err}");
        let empty =
            tempfile::NamedTempFile::new().map_err(|e| StoreError::Backend(e.to_string()))?;
        let err = match PgStore::open_with_ca(&url, Some(empty.path())) {
            Ok(_) => panic!("an empty CA file was taken"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("no PEM certificate"), "{err}");
        Ok(())
    }

    #[test]
    fn urls_are_checked_and_never_shown_with_their_password() {
        let url = DatabaseUrl::from("postgres://alice:s3cret@db.example:5433/notch".to_owned());
        assert_eq!(url.redacted(), "postgres://alice:***@db.example:5433/notch");
        assert!(!format!("{url:?}").contains("s3cret"));
        let plain = DatabaseUrl::from("postgresql://bob@127.0.0.1/m".to_owned());
        assert_eq!(plain.redacted(), "postgres://bob@127.0.0.1:5432/m");
        for mode in ["require", "verify-ca", "verify-full"] {
            let tls = DatabaseUrl::from(format!("postgres://bob@h/m?sslmode={mode}"));
            assert_eq!(
                tls.config().map(|c| c.get_ssl_mode()),
                Ok(SslMode::Require),
                "{mode}"
            );
        }
        for bad in [
            "mysql://alice:s3cret@h/db",
            "alice:s3cret@h/db",
            "host=h password=s3cret",
            "postgres://alice:s3cret@h:notaport/db",
        ] {
            let url = DatabaseUrl::from(bad.to_owned());
            let err = url
                .config()
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(!err.contains("s3cret"), "{err}");
            assert!(!url.redacted().contains("s3cret"));
            assert!(!format!("{url:?}").contains("s3cret"));
        }
    }

    /// The whole gateway on PostgreSQL inside a (current-thread) tokio runtime: nothing calls
    /// the client on the runtime's thread (that would panic), a faucet payment is accepted
    /// and mined, and the gateway restarts on the same database with its chain.
    #[tokio::test]
    async fn the_gateway_runs_on_postgres_in_a_runtime() -> anyhow::Result<()> {
        use clap::Parser;
        let Some(url) = tokio::task::spawn_blocking(database).await? else {
            return Ok(());
        };
        let dir = tempfile::tempdir()?;
        let config = crate::Config::parse_from([
            "notch-gateway",
            "--sandbox",
            "--listen",
            "127.0.0.1:0",
            "--no-relay",
            "--block-interval",
            "0",
            "--data-dir",
            dir.path().to_str().unwrap_or_default(),
            "--database",
            &url.0,
        ]);
        let running = crate::start(config.clone()).await?;
        let base = format!("http://{}", running.addr);
        let http = reqwest::Client::builder().no_proxy().build()?;
        let owner = public_key(&SigningKey::from_bytes(&[5; 32]));
        let faucet: serde_json::Value = http
            .post(format!("{base}/v1/sandbox/faucet"))
            .json(&serde_json::json!({
                "address": notch_protocol::Address::new(Network::Sandbox, owner).to_string(),
                "asset": "NOTE",
                "amount": 1000,
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let txid = faucet["txid"].as_str().unwrap_or_default().to_owned();
        http.post(format!("{base}/v1/sandbox/mine"))
            .json(&serde_json::json!({"blocks": 1}))
            .send()
            .await?
            .error_for_status()?;
        let status: serde_json::Value = http
            .get(format!("{base}/v1/tx/{txid}/status"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        assert_eq!(status["status"]["block_height"], 1, "{status}");
        running.shutdown().await;
        let running = crate::start(config).await?;
        assert_eq!(running.engine.tip().height, 1);
        // Dropped, not shut down: the store's connections close off the runtime's thread.
        drop(running);
        Ok(())
    }
}
