//! The wallet's database: SQLite through rusqlite, one file per wallet.
//!
//! - WAL journal, `synchronous = FULL`, foreign keys on, a busy timeout.
//! - Versioned migrations ([`migrations`]), each in its own transaction; a
//!   database written by a newer Notch is refused, not touched.
//! - Every state change runs in one transaction ([`Store::write`]), so a
//!   crash at any instant leaves either all of a change or none of it.
//! - No secrets: those live in a [`SecretStore`](crate::secrets::SecretStore).
//!
//! Reads are methods of both [`Store`] and [`StoreTx`] (inside a write, they
//! see the write's own changes).

mod chain;
mod chits;
mod facts;
pub mod history;
mod inbox;
mod ledger;
pub mod migrations;
mod space;
mod tallies;
mod wallet;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub use chain::Header;
pub use chits::{ChitCursor, ChitOutboxRow, GoodChit, NewChitOutbox, StoredChit};
pub use facts::TxFacts;
pub use history::{
    Direction, HistoryPageRecords, HistoryQuery, HistoryRecord, StoredBalance, TxEffect,
};
pub use inbox::{NewNotification, Notification, NotificationKind};
pub use ledger::{NewOutput, NewTransaction, OutPoint, OutputRecord, TxRecord, TxState};
pub use space::{ObjectSpace, SpaceReport, space_report_of_file};
pub use tallies::{NewOutbox, OutboxRow, TallyRow, TokenRow};
pub use wallet::{AddressRecord, NewAddress, NewWallet, WalletMeta};

use crate::keys::KeyError;

/// A 32-byte id: transaction id, block hash, asset id.
pub type Hash32 = [u8; 32];

/// Why a database operation failed, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the wallet database {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error(
        "the wallet database {path} was written by a newer version of Notch (schema version {found}; this version knows up to {supported}). Update Notch to open it"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path} is not a Notch wallet database")]
    NotNotch { path: PathBuf },
    #[error("could not upgrade the wallet database to schema version {version}: {reason}")]
    Migration { version: u32, reason: String },
    #[error("the wallet database has no wallet in it yet")]
    NoWallet,
    #[error("the wallet database already holds wallet {wallet_id}")]
    WalletExists { wallet_id: String },
    #[error("the change conflicts with what the wallet database holds: {0}")]
    Conflict(String),
    #[error("{what} is not in the wallet database")]
    NotFound { what: String },
    #[error("the wallet database holds a value that makes no sense: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("wallet database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Told, after a write commits, each partner agent that write queued a
/// message for (in `outbox` or `chit_outbox`): the tally agent sends it at
/// once instead of at its next poll. It runs with the store locked, so it
/// must only hand the agent id on, never block or touch the store.
pub type OutboxHook = Arc<dyn Fn(&[u8; 32]) + Send + Sync>;

/// The wallet's database. Not `Sync`: a wallet keeps it behind a mutex.
/// A write that holds the store this long is logged (debug).
const SLOW_WRITE: std::time::Duration = std::time::Duration::from_millis(50);

pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
    outbox_hook: Option<OutboxHook>,
    /// Where a jump into a long history lands without an `OFFSET` walk
    /// (see [`history::Positions`]); emptied by every write.
    history_positions: std::sync::Mutex<Option<history::Positions>>,
}

/// A read-only connection of [`Store::reader`], dropped after its read.
pub struct StoreReader {
    conn: Connection,
}

impl StoreReader {
    /// As [`Store::history_index`], in one read transaction of this
    /// connection.
    pub fn history_index(
        &mut self,
        query: &history::HistoryQuery,
        before: Option<(i64, i64)>,
    ) -> Result<history::HistoryIndexRecords, StoreError> {
        let tx = self.conn.transaction()?;
        let index = history::history_index(&tx, query, before)?;
        tx.finish()?;
        Ok(index)
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = migrations::MIGRATIONS.len() as u32;

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |e: rusqlite::Error| StoreError::Open {
            path: path.clone(),
            reason: e.to_string(),
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(open_error)?;
        Self::setup(conn, Some(path))
    }

    /// A second, read-only connection to the same file, for a long read
    /// (the history index: a walk of every row) that must not hold up the
    /// wallet's one connection: in WAL mode it reads the last commit while
    /// the wallet goes on reading and writing. `None` for a database in
    /// memory.
    pub fn reader(&self) -> Result<Option<StoreReader>, StoreError> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let open_error = |e: rusqlite::Error| StoreError::Open {
            path: path.clone(),
            reason: e.to_string(),
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_error)?;
        Ok(Some(StoreReader { conn }))
    }

    /// A database in memory, gone when dropped (tests). WAL does not apply.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()?;
        Self::setup(conn, None)
    }

    fn setup(conn: Connection, path: Option<PathBuf>) -> Result<Self, StoreError> {
        let shown = path.clone().unwrap_or_else(|| PathBuf::from(":memory:"));
        let open_error = |e: rusqlite::Error| StoreError::Open {
            path: shown.clone(),
            reason: e.to_string(),
        };
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_error)?;
        // Refuse before changing anything (even the journal mode) if the
        // file is not ours or is newer than this build.
        let application_id: i32 = conn
            .pragma_query_value(None, "application_id", |row| row.get(0))
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::NotADatabase =>
                {
                    StoreError::NotNotch {
                        path: shown.clone(),
                    }
                }
                other => open_error(other),
            })?;
        if application_id != 0 && application_id != migrations::APPLICATION_ID {
            return Err(StoreError::NotNotch { path: shown });
        }
        let version = user_version(&conn).map_err(open_error)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: shown,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == 0 && application_id == 0 {
            let tables: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
                .map_err(open_error)?;
            if tables > 0 {
                return Err(StoreError::NotNotch { path: shown });
            }
        }
        if path.is_some() {
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .map_err(open_error)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Open {
                    path: shown,
                    reason: format!("the file system does not allow WAL mode (got {mode})"),
                });
            }
        }
        // FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on
        // a power cut (never consistency). A wallet commits rarely (one
        // transaction per synced batch or user action) and each commit
        // matters: "address 7 was handed out", "this send was submitted".
        // One more fsync per commit is a price worth paying for that.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_error)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_error)?;
        let foreign_keys: bool = conn
            .pragma_query_value(None, "foreign_keys", |row| row.get(0))
            .map_err(open_error)?;
        if !foreign_keys {
            return Err(StoreError::Open {
                path: shown,
                reason: "this SQLite does not enforce foreign keys".into(),
            });
        }
        let mut store = Self {
            conn,
            path,
            outbox_hook: None,
            history_positions: std::sync::Mutex::new(None),
        };
        store.migrate(version)?;
        let dropping_bytes = version > 0 && version < migrations::DROPS_TX_BYTES;
        let compacting_history = version > 0 && version < migrations::COMPACTS_HISTORY;
        let kept_before = if dropping_bytes {
            kept_tx_bytes(store.conn())?
        } else {
            0
        };
        // Rows marked by a migration's backfill (or left by an older build)
        // are brought up to date before anything reads them.
        if history::is_dirty(store.conn())? {
            store.write(|_| Ok(()))?;
        }
        let dropped_bytes = dropping_bytes && kept_tx_bytes(store.conn())? < kept_before;
        if store.path.is_some() && (compacting_history || dropped_bytes) {
            store.compact_after_upgrade();
        }
        Ok(store)
    }

    /// Once, after an upgrade that rewrote tables in place: `VACUUM`.
    /// Migration 10 empties the bytes of the transactions the wallet does
    /// not need, and migration 11 drops a column of `wallet_history` and
    /// rebuilds the history's other tables: either leaves pages part empty
    /// or free (on the app benchmark's wallet of 100,000 payments the rows
    /// of `transactions` kept taking 30 MiB for 8 MiB of records after
    /// migration 10), and SQLite never merges them on its own. Best effort:
    /// if it cannot (another process reading the wallet, no room for the
    /// copy), the wallet works as it is and SQLite reuses the free space;
    /// it is not tried again.
    fn compact_after_upgrade(&mut self) {
        if let Err(e) = self.conn.execute_batch("VACUUM") {
            tracing::warn!("could not compact the wallet file after its upgrade: {e}");
        }
    }

    fn migrate(&mut self, from: u32) -> Result<(), StoreError> {
        for (index, sql) in migrations::MIGRATIONS
            .iter()
            .enumerate()
            .skip(from as usize)
        {
            let version = index as u32 + 1;
            let failed = |e: rusqlite::Error| StoreError::Migration {
                version,
                reason: e.to_string(),
            };
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(failed)?;
            // Another process may have migrated while we waited for the lock.
            let now = user_version(&tx).map_err(failed)?;
            if now >= version {
                continue;
            }
            tx.execute_batch(sql).map_err(failed)?;
            if index == 0 {
                tx.pragma_update(None, "application_id", migrations::APPLICATION_ID)
                    .map_err(failed)?;
            }
            tx.pragma_update(None, "user_version", version)
                .map_err(failed)?;
            tx.commit().map_err(failed)?;
        }
        Ok(())
    }

    /// The file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(user_version(&self.conn)?)
    }

    /// Sets (or clears) the hook told about queued messages after each
    /// commit ([`OutboxHook`]).
    pub fn set_outbox_hook(&mut self, hook: Option<OutboxHook>) {
        self.outbox_hook = hook;
    }

    /// A page of the history (as `history_page`) that passes over `skip`
    /// rows after `before` first: a jump into a long list, from the marks
    /// of [`history::Positions`] rather than an `OFFSET` walk.
    pub fn history_page_skip(
        &self,
        query: &history::HistoryQuery,
        before: Option<(i64, i64)>,
        skip: u64,
        limit: usize,
    ) -> Result<history::HistoryPageRecords, StoreError> {
        history::history_page_at(
            &self.conn,
            &self.history_positions,
            query,
            before,
            skip,
            limit,
        )
    }

    /// Runs `change` in one transaction: committed if it returns `Ok`,
    /// rolled back if it returns `Err` (or panics). Only once it is
    /// committed is the [`OutboxHook`] told what it queued.
    #[track_caller]
    pub fn write<T>(
        &mut self,
        change: impl FnOnce(&StoreTx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Every read of the wallet waits for a write: a long one shows.
        let started = std::time::Instant::now();
        let caller = std::panic::Location::caller();
        let tx = StoreTx {
            tx: self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
            queued: RefCell::new(Vec::new()),
        };
        // Rows may move: the positions of the history are counted again
        // when next asked for (even if this change fails).
        *self
            .history_positions
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        let value = change(&tx)?;
        let changed = started.elapsed();
        // What the screens read follows the change in the same transaction.
        history::refresh(tx.conn())?;
        let queued = tx.queued.take();
        tx.tx.commit()?;
        let total = started.elapsed();
        if total >= SLOW_WRITE {
            tracing::debug!(
                at = %caller,
                change_ms = changed.as_millis() as u64,
                total_ms = total.as_millis() as u64,
                "slow store write"
            );
        }
        if let Some(hook) = &self.outbox_hook {
            for (i, agent) in queued.iter().enumerate() {
                if !queued[..i].contains(agent) {
                    hook(agent);
                }
            }
        }
        Ok(value)
    }

    fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// One write transaction of the [`Store`]; see [`Store::write`].
pub struct StoreTx<'a> {
    tx: rusqlite::Transaction<'a>,
    /// Partner agents a message was queued for, for the [`OutboxHook`].
    queued: RefCell<Vec<[u8; 32]>>,
}

impl StoreTx<'_> {
    fn conn(&self) -> &Connection {
        &self.tx
    }

    /// A message for `agent` was queued in this transaction.
    fn queued_for(&self, agent: [u8; 32]) {
        self.queued.borrow_mut().push(agent);
    }
}

/// The bytes of the transactions whose encoding the store still keeps.
fn kept_tx_bytes(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT coalesce(sum(length(raw)), 0) FROM transactions",
        [],
        |r| r.get(0),
    )?)
}

fn user_version(conn: &Connection) -> Result<u32, rusqlite::Error> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Seconds since the Unix epoch, for `created_at` / `updated_at`.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Conflict(format!("{what} {value} is too large")))
}

fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is negative ({value})")))
}

/// Read methods shared by [`Store`] and [`StoreTx`] (each forwards to the
/// free function of the same name in its module).
macro_rules! read_methods {
    () => {
        /// The wallet's metadata, or `None` before [`StoreTx::init_wallet`].
        pub fn wallet(&self) -> Result<Option<WalletMeta>, StoreError> {
            wallet::wallet(self.conn())
        }

        /// The address at `index` of `chain`, if derived.
        pub fn address(
            &self,
            chain: crate::keys::AddressChain,
            index: u32,
        ) -> Result<Option<AddressRecord>, StoreError> {
            wallet::address(self.conn(), chain, index)
        }

        /// The record of `address`, if it is one of the wallet's.
        pub fn find_address(&self, address: &str) -> Result<Option<AddressRecord>, StoreError> {
            wallet::find_address(self.conn(), address)
        }

        /// All derived addresses of `chain`, by index.
        pub fn addresses(
            &self,
            chain: crate::keys::AddressChain,
        ) -> Result<Vec<AddressRecord>, StoreError> {
            wallet::addresses(self.conn(), chain)
        }

        /// The highest header, if any.
        pub fn tip(&self) -> Result<Option<Header>, StoreError> {
            chain::tip(self.conn())
        }

        /// The header at `height`, if the wallet has it.
        pub fn header(&self, height: u64) -> Result<Option<Header>, StoreError> {
            chain::header(self.conn(), height)
        }

        /// A transaction the wallet knows, by id.
        pub fn transaction(&self, txid: &Hash32) -> Result<Option<TxRecord>, StoreError> {
            ledger::transaction(self.conn(), txid)
        }

        /// The transactions in any of `states`, oldest first.
        pub fn transactions_in(&self, states: &[TxState]) -> Result<Vec<TxRecord>, StoreError> {
            ledger::transactions_in(self.conn(), states)
        }

        /// What the wallet keeps of a transaction's bytes for its history
        /// (all empty for one it has none of).
        pub fn transaction_facts(&self, txid: &Hash32) -> Result<TxFacts, StoreError> {
            facts::read(self.conn(), txid)
        }

        /// One output of the wallet.
        pub fn output(&self, outpoint: &OutPoint) -> Result<Option<OutputRecord>, StoreError> {
            ledger::output(self.conn(), outpoint)
        }

        /// Outputs not spent by any transaction seen so far, optionally of
        /// one asset. Includes unconfirmed outputs and outputs locked by a
        /// pending send (see [`OutputRecord::spendable`]).
        pub fn unspent_outputs(
            &self,
            asset: Option<&Hash32>,
        ) -> Result<Vec<OutputRecord>, StoreError> {
            ledger::unspent_outputs(self.conn(), asset)
        }
    };
}

impl Store {
    read_methods!();
    history::history_read_methods!();
    inbox::inbox_read_methods!();
    tallies::tally_read_methods!();
    chits::chit_read_methods!();
}

impl StoreTx<'_> {
    read_methods!();
    history::history_read_methods!();
    inbox::inbox_read_methods!();
    tallies::tally_read_methods!();
    chits::chit_read_methods!();
}

/// Fixtures shared by the store's unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{NewAddress, NewWallet, Store};
    use crate::keys::AddressChain;

    /// An in-memory wallet with one receive address, `"mine"`.
    pub(crate) fn wallet_with_address() -> Store {
        with_address(Store::open_in_memory().expect("opens"))
    }

    /// [`wallet_with_address`] in a file at `path`.
    pub(crate) fn file_wallet_with_address(path: &std::path::Path) -> Store {
        with_address(Store::open(path).expect("opens"))
    }

    fn with_address(mut store: Store) -> Store {
        store
            .write(|tx| {
                tx.init_wallet(&NewWallet {
                    wallet_id: "w".into(),
                    network: "sandbox".into(),
                    gateway_url: "http://127.0.0.1:7420".into(),
                    account: 0,
                })?;
                tx.insert_addresses(&[NewAddress {
                    chain: AddressChain::Receive,
                    index: 0,
                    address: "mine".into(),
                    public_key: [1; 32],
                }])
            })
            .expect("sets up");
        store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_3_keeps_the_data_of_schema_2() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wallet.sqlite");
        {
            let conn = crate::store::migrations::file_at_schema(&path, 2);
            conn.execute_batch(
                "INSERT INTO wallet (id, wallet_id, network, gateway_url, account, created_at)
                     VALUES (1, 'w', 'sandbox', 'http://127.0.0.1:1', 0, 0);
                 INSERT INTO addresses (chain, idx, address, public_key, used)
                     VALUES (0, 0, 'mine', zeroblob(32), 1);
                 INSERT INTO transactions (txid, state, own, created_at, updated_at)
                     VALUES (zeroblob(32), 'confirmed', 0, 0, 0);
                 UPDATE transactions SET block_height = 1, block_hash = zeroblob(32);
                 INSERT INTO outputs (txid, vout, asset, amount, address, height)
                     VALUES (zeroblob(32), 0, zeroblob(32), 42, 'mine', 1);",
            )
            .expect("old rows");
        }
        let mut store = Store::open(&path).expect("migrates");
        assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
        let outputs = store.all_outputs().expect("outputs");
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].amount, 42);
        // The new state and the whole u64 range fit now.
        store
            .write(|tx| {
                tx.set_transaction_state(&[0; 32], TxState::Abandoned, None, Some("test"))?;
                tx.insert_transaction(&NewTransaction {
                    txid: [7; 32],
                    state: TxState::InPool,
                    own: false,
                    raw: None,
                    block: None,
                })?;
                tx.insert_output(&NewOutput {
                    outpoint: OutPoint {
                        txid: [7; 32],
                        vout: 0,
                    },
                    asset: [0; 32],
                    amount: u64::MAX,
                    address: "mine".into(),
                    height: None,
                })
            })
            .expect("writes");
        let huge = store
            .output(&OutPoint {
                txid: [7; 32],
                vout: 0,
            })
            .expect("reads")
            .expect("there");
        assert_eq!(huge.amount, u64::MAX);
        let fk: bool = store
            .conn
            .pragma_query_value(None, "foreign_key_check", |_| Ok(false))
            .unwrap_or(true);
        assert!(fk, "no foreign key violations");
    }

    #[test]
    fn migrations_apply_on_a_fresh_file_and_reopening_is_a_no_op() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wallet.sqlite");
        let store = Store::open(&path).expect("creates");
        assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
        const { assert!(SCHEMA_VERSION >= 1) };
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        let sync: i64 = store
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .expect("sync");
        assert_eq!(sync, 2, "synchronous = FULL");
        let fk: bool = store
            .conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .expect("fk");
        assert!(fk);
        let schema = |s: &Store| -> Vec<String> {
            let mut stmt = s
                .conn
                .prepare("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name")
                .expect("prepare");
            stmt.query_map([], |r| r.get(0))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
        };
        let before = schema(&store);
        assert!(
            before
                .iter()
                .any(|s| s.contains("CREATE TABLE \"outputs\""))
        );
        drop(store);

        let again = Store::open(&path).expect("reopens");
        assert_eq!(again.schema_version().expect("version"), SCHEMA_VERSION);
        assert_eq!(
            schema(&again),
            before,
            "reopening must not change the schema"
        );
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wallet.sqlite");
        drop(Store::open(&path).expect("creates"));
        {
            let conn = Connection::open(&path).expect("raw open");
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .expect("bump");
        }
        let err = Store::open(&path).expect_err("must refuse");
        assert!(
            matches!(err, StoreError::TooNew { found, supported, .. } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
            "{err}"
        );
        assert!(err.to_string().contains("newer version of Notch"), "{err}");
        let conn = Connection::open(&path).expect("raw open");
        assert_eq!(user_version(&conn).expect("version"), SCHEMA_VERSION + 1);
    }

    #[test]
    fn other_files_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let foreign = dir.path().join("other.sqlite");
        {
            let conn = Connection::open(&foreign).expect("raw open");
            conn.execute_batch("CREATE TABLE t (x)").expect("create");
        }
        assert!(matches!(
            Store::open(&foreign),
            Err(StoreError::NotNotch { .. })
        ));
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "x".repeat(4096)).expect("write");
        let err = Store::open(&text).expect_err("not a database");
        assert!(matches!(err, StoreError::NotNotch { .. }), "{err}");
        let missing_dir = dir.path().join("no/such/dir/wallet.sqlite");
        assert!(matches!(
            Store::open(&missing_dir),
            Err(StoreError::Open { .. })
        ));
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let mut store = Store::open_in_memory().expect("opens");
        let result: Result<(), StoreError> = store.write(|tx| {
            tx.init_wallet(&NewWallet {
                wallet_id: "w".into(),
                network: "sandbox".into(),
                gateway_url: "http://127.0.0.1:7420".into(),
                account: 0,
            })?;
            Err(StoreError::Conflict("test".into()))
        });
        assert!(result.is_err());
        assert!(store.wallet().expect("reads").is_none());
    }
}
