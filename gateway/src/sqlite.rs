//! SQLite implementation of [`MirrorStore`] (bundled SQLite, WAL).
//!
//! One write connection (used only by the ledger engine's writer) and a small pool of read
//! connections; every multi-statement read runs in one read transaction, so it sees one
//! consistent snapshot, and every write method is one `IMMEDIATE` transaction.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use notch_protocol::relay::PortRange;
use notch_protocol::{Block, BlockHeader, BlockId, OutPoint, Output, PublicKey, Transaction, TxId};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::store::*;

const STATE_POOL: i64 = 1;
const STATE_CONFIRMED: i64 = 2;
const STATE_DROPPED: i64 = 3;
const STATE_ORPHANED: i64 = 4;
/// Pool log entries kept after pruning (see `mempool_changes`).
const POOL_LOG_KEEP: i64 = 100_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    header BLOB NOT NULL,
    body BLOB NOT NULL,
    time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS txs (
    txid BLOB PRIMARY KEY,
    bytes BLOB NOT NULL,
    state INTEGER NOT NULL,
    height INTEGER,
    pool_seq INTEGER,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS txs_pool ON txs(pool_seq) WHERE pool_seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS txs_height ON txs(height) WHERE height IS NOT NULL;
CREATE TABLE IF NOT EXISTS utxos (
    txid BLOB NOT NULL,
    vout INTEGER NOT NULL,
    asset BLOB NOT NULL,
    amount INTEGER NOT NULL,
    owner BLOB NOT NULL,
    height INTEGER NOT NULL,
    PRIMARY KEY (txid, vout)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS utxos_owner ON utxos(owner);
CREATE TABLE IF NOT EXISTS pool_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    txid BLOB NOT NULL,
    added INTEGER NOT NULL
);
-- Rejections are kept in memory (ledger::RejectionCache): writing them cost every invalid
-- submission a commit. Databases from before that keep an unused table; drop it.
DROP TABLE IF EXISTS rejections;
-- The agent relay (relay.rs): each registered agent's port, kept so its tickets stay valid
-- across restarts; `seen` is the last registration (unix seconds).
CREATE TABLE IF NOT EXISTS relay_ports (
    agent BLOB PRIMARY KEY,
    port INTEGER NOT NULL UNIQUE,
    seen INTEGER NOT NULL
);
";

/// The schema version `SCHEMA` makes, kept in `PRAGMA user_version`. Databases from before
/// it was kept have 0 and `SCHEMA` (all `IF NOT EXISTS`) brings them to 1; a later change
/// appends a step for `user_version < 2`, and so on. A database of a newer version is
/// refused.
pub const SCHEMA_VERSION: i64 = 1;

/// How hard SQLite syncs a commit to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncMode {
    /// fsync on every commit: an accepted transaction survives a power cut.
    Full,
    /// WAL default: survives a crash of the process, not necessarily of the machine.
    Normal,
}

pub struct SqliteStore {
    write: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Pool log entries kept when it is pruned (see `prune_pool_log`).
    pool_log_keep: i64,
}

fn be(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

fn id32(v: Vec<u8>) -> StoreResult<[u8; 32]> {
    v.try_into()
        .map_err(|_| corrupt("a stored id is not 32 bytes"))
}

fn h(v: u64) -> i64 {
    v as i64
}

fn open_conn(path: &Path, sync: SyncMode) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(be)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(be)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(be)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "cannot enable WAL (journal_mode={mode})"
        )));
    }
    let sync = match sync {
        SyncMode::Full => "FULL",
        SyncMode::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync}; PRAGMA foreign_keys=OFF;"
    ))
    .map_err(be)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) `path`.
    pub fn open(path: &Path, sync: SyncMode) -> StoreResult<SqliteStore> {
        let mut write = open_conn(path, sync)?;
        let tx = write
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(be)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(be)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "{} has schema version {version}, newer than this notch-gateway knows \
                 (version {SCHEMA_VERSION}): it was written by a newer release; run that one, \
                 or use another --data-dir",
                path.display()
            )));
        }
        tx.execute_batch(SCHEMA).map_err(be)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(be)?;
        tx.commit().map_err(be)?;
        let mut readers = Vec::new();
        for _ in 0..4 {
            readers.push(Mutex::new(open_conn(path, sync)?));
        }
        Ok(SqliteStore {
            write: Mutex::new(write),
            readers,
            next_reader: AtomicUsize::new(0),
            pool_log_keep: POOL_LOG_KEEP,
        })
    }

    /// Prunes the pool log at a smaller size than the default, so that tests reach it.
    #[doc(hidden)]
    pub fn with_pool_log_keep(mut self, keep: i64) -> Self {
        self.pool_log_keep = keep.max(1);
        self
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        // Take a free reader if there is one, else wait for the round-robin one.
        let n = self.readers.len();
        let mut guard = None;
        for i in 0..n {
            if let Ok(g) = self.readers[(start + i) % n].try_lock() {
                guard = Some(g);
                break;
            }
        }
        let mut guard = match guard {
            Some(g) => g,
            None => self.readers[start % n]
                .lock()
                .map_err(|_| StoreError::Backend("reader lock poisoned".into()))?,
        };
        let tx = guard
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(be)?;
        let out = f(&tx)?;
        tx.finish().map_err(be)?;
        Ok(out)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut guard = self
            .write
            .lock()
            .map_err(|_| StoreError::Backend("writer lock poisoned".into()))?;
        let tx = guard
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(be)?;
        let out = f(&tx)?;
        tx.commit().map_err(be)?;
        Ok(out)
    }
}

fn tip_in(tx: &rusqlite::Transaction<'_>) -> StoreResult<TipRow> {
    let row = tx
        .query_row(
            "SELECT height, id, time FROM blocks ORDER BY height DESC LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )
        .optional()
        .map_err(be)?
        .ok_or_else(|| corrupt("no blocks"))?;
    Ok(TipRow {
        height: row.0 as u64,
        id: BlockId(id32(row.1)?),
        time: row.2 as u64,
    })
}

fn fork_point_in(
    tx: &rusqlite::Transaction<'_>,
    locator: &[BlockId],
) -> StoreResult<Option<(u64, BlockId)>> {
    let mut stmt = tx
        .prepare_cached("SELECT height FROM blocks WHERE id = ?1")
        .map_err(be)?;
    for id in locator {
        if let Some(height) = stmt
            .query_row([&id.0[..]], |r| r.get::<_, i64>(0))
            .optional()
            .map_err(be)?
        {
            return Ok(Some((height as u64, *id)));
        }
    }
    Ok(None)
}

fn headers_from_in(
    tx: &rusqlite::Transaction<'_>,
    from: u64,
    limit: usize,
) -> StoreResult<Vec<StoredHeader>> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT height, id, header FROM blocks WHERE height >= ?1 ORDER BY height LIMIT ?2",
        )
        .map_err(be)?;
    let rows = stmt
        .query_map(params![h(from), limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .map_err(be)?;
    let mut out = Vec::new();
    for row in rows {
        let (height, id, bytes) = row.map_err(be)?;
        out.push(StoredHeader {
            height: height as u64,
            id: BlockId(id32(id)?),
            bytes,
        });
    }
    Ok(out)
}

fn blocks_from_in(
    tx: &rusqlite::Transaction<'_>,
    from: u64,
    limit: usize,
    max_bytes: usize,
) -> StoreResult<Vec<StoredBlock>> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT height, id, body FROM blocks WHERE height >= ?1 ORDER BY height LIMIT ?2",
        )
        .map_err(be)?;
    let rows = stmt
        .query_map(params![h(from), limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .map_err(be)?;
    let mut out = Vec::new();
    let mut total = 0usize;
    for row in rows {
        let (height, id, bytes) = row.map_err(be)?;
        total += bytes.len();
        if !out.is_empty() && total > max_bytes {
            break;
        }
        out.push(StoredBlock {
            height: height as u64,
            id: BlockId(id32(id)?),
            bytes,
        });
    }
    Ok(out)
}

/// bytes, state, height
type TxBytesRow = (Vec<u8>, i64, Option<i64>);
/// bytes, state, height, pool_seq, reason
type TxRow = (Vec<u8>, i64, Option<i64>, Option<i64>, Option<String>);

fn tx_bytes_in(tx: &rusqlite::Transaction<'_>, txid: &TxId) -> StoreResult<Option<TxBytesRow>> {
    tx.prepare_cached("SELECT bytes, state, height FROM txs WHERE txid = ?1")
        .map_err(be)?
        .query_row([&txid.0[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .map_err(be)
}

fn decode_tx(bytes: &[u8]) -> StoreResult<Transaction> {
    Transaction::decode(bytes).map_err(|e| corrupt(format!("stored transaction: {e}")))
}

fn log_pool(tx: &rusqlite::Transaction<'_>, txid: &TxId, added: bool) -> StoreResult<u64> {
    tx.prepare_cached("INSERT INTO pool_log (txid, added) VALUES (?1, ?2)")
        .map_err(be)?
        .execute(params![&txid.0[..], added as i64])
        .map_err(be)?;
    Ok(tx.last_insert_rowid() as u64)
}

/// Confirms the block's transactions and updates the unspent set.
fn apply_block_in(tx: &rusqlite::Transaction<'_>, block: &Block) -> StoreResult<()> {
    let height = block.header.height;
    let id = block.id();
    tx.prepare_cached(
        "INSERT INTO blocks (height, id, header, body, time) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .map_err(be)?
    .execute(params![
        h(height),
        &id.0[..],
        block.header.encode(),
        block.encode(),
        h(block.header.time)
    ])
    .map_err(be)?;
    let mut del = tx
        .prepare_cached("DELETE FROM utxos WHERE txid = ?1 AND vout = ?2")
        .map_err(be)?;
    let mut ins = tx
        .prepare_cached("INSERT OR REPLACE INTO utxos (txid, vout, asset, amount, owner, height) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .map_err(be)?;
    let mut state = tx
        .prepare_cached("SELECT state, pool_seq FROM txs WHERE txid = ?1")
        .map_err(be)?;
    let mut upsert = tx
        .prepare_cached(
            "INSERT INTO txs (txid, bytes, state, height, pool_seq, reason) VALUES (?1, ?2, ?3, ?4, NULL, NULL)
             ON CONFLICT(txid) DO UPDATE SET state = ?3, height = ?4, pool_seq = NULL, reason = NULL",
        )
        .map_err(be)?;
    for t in &block.txs {
        let txid = t.txid();
        let before: Option<(i64, Option<i64>)> = state
            .query_row([&txid.0[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(be)?;
        match before {
            // The same transaction twice on one chain would count its outputs twice (and
            // bring back outputs already spent): never, whoever built the block.
            Some((STATE_CONFIRMED, _)) => {
                return Err(corrupt(format!(
                    "block {height} holds transaction {txid}, which the chain already has"
                )));
            }
            Some((_, Some(_))) => {
                log_pool(tx, &txid, false)?;
            }
            _ => {}
        }
        upsert
            .execute(params![&txid.0[..], t.encode(), STATE_CONFIRMED, h(height)])
            .map_err(be)?;
        for i in &t.inputs {
            let n = del
                .execute(params![&i.txid.0[..], i.index as i64])
                .map_err(be)?;
            if n != 1 {
                return Err(corrupt(format!(
                    "block {height} spends {}:{} which is not unspent",
                    i.txid, i.index
                )));
            }
        }
        for (vout, o) in t.outputs.iter().enumerate() {
            ins.execute(params![
                &txid.0[..],
                vout as i64,
                &o.asset.0[..],
                o.amount as i64,
                &o.owner.0[..],
                h(height)
            ])
            .map_err(be)?;
        }
    }
    Ok(())
}

/// Undoes the best chain's top block: removes its outputs, restores the ones it spent, marks
/// its transactions orphaned (the caller decides their fate).
fn unapply_top_in(tx: &rusqlite::Transaction<'_>) -> StoreResult<()> {
    let tip = tip_in(tx)?;
    if tip.height == 0 {
        return Err(corrupt("cannot unapply the genesis block"));
    }
    let body: Vec<u8> = tx
        .query_row(
            "SELECT body FROM blocks WHERE height = ?1",
            [h(tip.height)],
            |r| r.get(0),
        )
        .map_err(be)?;
    let block = Block::decode(&body).map_err(|e| corrupt(format!("stored block: {e}")))?;
    let mut del = tx
        .prepare_cached("DELETE FROM utxos WHERE txid = ?1")
        .map_err(be)?;
    let mut ins = tx
        .prepare_cached("INSERT OR REPLACE INTO utxos (txid, vout, asset, amount, owner, height) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .map_err(be)?;
    let mut orphan = tx
        .prepare_cached("UPDATE txs SET state = ?2, height = NULL, pool_seq = NULL WHERE txid = ?1")
        .map_err(be)?;
    for t in block.txs.iter().rev() {
        let txid = t.txid();
        del.execute([&txid.0[..]]).map_err(be)?;
        for i in &t.inputs {
            let (bytes, state, height) = tx_bytes_in(tx, &i.txid)?
                .ok_or_else(|| corrupt(format!("funding transaction {} is missing", i.txid)))?;
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
            ins.execute(params![
                &i.txid.0[..],
                i.index as i64,
                &o.asset.0[..],
                o.amount as i64,
                &o.owner.0[..],
                height
            ])
            .map_err(be)?;
        }
        orphan
            .execute(params![&txid.0[..], STATE_ORPHANED])
            .map_err(be)?;
    }
    tx.execute("DELETE FROM blocks WHERE height = ?1", [h(tip.height)])
        .map_err(be)?;
    Ok(())
}

/// Keeps the pool log from growing without end: once it holds `2 * keep` entries past the
/// horizon, everything up to `max - keep` goes and that becomes the horizon (a client asking
/// from before it starts again from 0: `reset`). Transactions still in the pool whose entry
/// would go are logged again above the new horizon first, so replaying from 0 still ends with
/// the current pool, and every page of a replay ends above the horizon (a page ending below
/// it would make the next request reset again, forever).
fn prune_pool_log(tx: &rusqlite::Transaction<'_>, keep: i64) -> StoreResult<()> {
    let max: i64 = tx
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM pool_log", [], |r| {
            r.get(0)
        })
        .map_err(be)?;
    let horizon = horizon_in(tx)?;
    if max - horizon < 2 * keep {
        return Ok(());
    }
    let new_horizon = max - keep;
    let stale: Vec<Vec<u8>> = {
        let mut stmt = tx
            .prepare("SELECT txid FROM txs WHERE state = ?1 AND pool_seq <= ?2 ORDER BY pool_seq")
            .map_err(be)?;
        let rows = stmt
            .query_map(params![STATE_POOL, new_horizon], |r| r.get(0))
            .map_err(be)?;
        rows.collect::<Result<_, _>>().map_err(be)?
    };
    for txid in stale {
        let txid = TxId(id32(txid)?);
        let seq = log_pool(tx, &txid, true)?;
        tx.prepare_cached("UPDATE txs SET pool_seq = ?2 WHERE txid = ?1")
            .map_err(be)?
            .execute(params![&txid.0[..], seq as i64])
            .map_err(be)?;
    }
    tx.execute("DELETE FROM pool_log WHERE seq <= ?1", [new_horizon])
        .map_err(be)?;
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('pool_horizon', ?1)",
        [new_horizon.to_string()],
    )
    .map_err(be)?;
    Ok(())
}

/// The relay port stored for `agent`, if any.
fn stored_relay_port(tx: &rusqlite::Transaction<'_>, agent: &[u8; 32]) -> StoreResult<Option<u16>> {
    let port: Option<i64> = tx
        .query_row(
            "SELECT port FROM relay_ports WHERE agent = ?1",
            params![&agent[..]],
            |r| r.get(0),
        )
        .optional()
        .map_err(be)?;
    Ok(port.and_then(|p| u16::try_from(p).ok()))
}

fn record_relay_port(
    tx: &rusqlite::Transaction<'_>,
    agent: &[u8; 32],
    port: u16,
    now: u64,
) -> StoreResult<()> {
    tx.execute(
        "DELETE FROM relay_ports WHERE port = ?1 AND agent != ?2",
        params![i64::from(port), &agent[..]],
    )
    .map_err(be)?;
    tx.execute(
        "INSERT INTO relay_ports (agent, port, seen) VALUES (?1, ?2, ?3)
         ON CONFLICT(agent) DO UPDATE SET port = excluded.port, seen = excluded.seen",
        params![&agent[..], i64::from(port), h(now)],
    )
    .map_err(be)?;
    Ok(())
}

fn horizon_in(tx: &rusqlite::Transaction<'_>) -> StoreResult<i64> {
    let v: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'pool_horizon'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(be)?;
    Ok(v.and_then(|s| s.parse().ok()).unwrap_or(0))
}

impl MirrorStore for SqliteStore {
    fn reads_on_runtime_threads(&self) -> bool {
        true
    }

    fn load_meta(&self) -> StoreResult<Option<LedgerMeta>> {
        self.read(|tx| {
            let v: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = 'ledger'", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(be)?;
            match v {
                None => Ok(None),
                Some(s) => serde_json::from_str(&s)
                    .map(Some)
                    .map_err(|e| corrupt(format!("ledger meta: {e}"))),
            }
        })
    }

    fn init(&self, meta: &LedgerMeta, genesis: &Block) -> StoreResult<()> {
        let json = serde_json::to_string(meta).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('ledger', ?1)",
                [json],
            )
            .map_err(be)?;
            apply_block_in(tx, genesis)
        })
    }

    fn tip(&self) -> StoreResult<TipRow> {
        self.read(tip_in)
    }

    fn header_at(&self, height: u64) -> StoreResult<Option<BlockHeader>> {
        let bytes: Option<Vec<u8>> = self.read(|tx| {
            tx.query_row(
                "SELECT header FROM blocks WHERE height = ?1",
                [h(height)],
                |r| r.get(0),
            )
            .optional()
            .map_err(be)
        })?;
        bytes
            .map(|b| BlockHeader::decode(&b).map_err(|e| corrupt(format!("stored header: {e}"))))
            .transpose()
    }

    fn block_by_id(&self, id: &BlockId) -> StoreResult<Option<StoredBlock>> {
        self.read(|tx| {
            tx.query_row(
                "SELECT height, body FROM blocks WHERE id = ?1",
                [&id.0[..]],
                |r| {
                    Ok(StoredBlock {
                        height: r.get::<_, i64>(0)? as u64,
                        id: *id,
                        bytes: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(be)
        })
    }

    fn blocks_at(&self, from: u64, count: usize) -> StoreResult<Vec<Block>> {
        let raw = self.read(|tx| blocks_from_in(tx, from, count, usize::MAX))?;
        raw.iter()
            .map(|b| Block::decode(&b.bytes).map_err(|e| corrupt(format!("stored block: {e}"))))
            .collect()
    }

    fn headers_after_locator(
        &self,
        locator: &[BlockId],
        limit: usize,
    ) -> StoreResult<ChainSlice<StoredHeader>> {
        self.read(|tx| {
            let tip = tip_in(tx)?;
            let fork_point = fork_point_in(tx, locator)?;
            let from = fork_point.map_or(0, |(hh, _)| hh + 1);
            let items = headers_from_in(tx, from, limit)?;
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
        self.read(|tx| {
            let tip = tip_in(tx)?;
            let fork_point = fork_point_in(tx, locator)?;
            let from = fork_point.map_or(0, |(hh, _)| hh + 1);
            let items = blocks_from_in(tx, from, limit, max_bytes)?;
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
        self.read(|tx| {
            let tip = tip_in(tx)?;
            let fork_point = if from == 0 {
                None
            } else {
                tx.query_row(
                    "SELECT id FROM blocks WHERE height = ?1",
                    [h(from - 1)],
                    |r| r.get::<_, Vec<u8>>(0),
                )
                .optional()
                .map_err(be)?
                .map(|id| id32(id).map(|id| (from - 1, BlockId(id))))
                .transpose()?
            };
            let items = blocks_from_in(tx, from, limit, max_bytes)?;
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
        self.read(|tx| {
            let row: Option<TxRow> = tx
                .prepare_cached(
                    "SELECT bytes, state, height, pool_seq, reason FROM txs WHERE txid = ?1",
                )
                .map_err(be)?
                .query_row([&txid.0[..]], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()
                .map_err(be)?;
            if let Some((bytes, state, height, seq, reason)) = row {
                let state = match (state, height, seq) {
                    (STATE_POOL, _, Some(seq)) => TxState::InPool { seq: seq as u64 },
                    (STATE_CONFIRMED, Some(height), _) => {
                        let id: Vec<u8> = tx
                            .query_row("SELECT id FROM blocks WHERE height = ?1", [height], |r| {
                                r.get(0)
                            })
                            .map_err(be)?;
                        TxState::Confirmed {
                            height: height as u64,
                            block_id: BlockId(id32(id)?),
                        }
                    }
                    (STATE_DROPPED, _, _) => TxState::Dropped {
                        reason: reason.unwrap_or_default(),
                    },
                    _ => return Err(corrupt(format!("transaction {txid} has state {state}"))),
                };
                return Ok(Some(TxRecord {
                    txid: *txid,
                    bytes: Some(bytes),
                    state,
                }));
            }
            Ok(None)
        })
    }

    fn output_of(&self, op: &OutPoint) -> StoreResult<Option<Output>> {
        let bytes = self.read(|tx| tx_bytes_in(tx, &op.txid))?;
        match bytes {
            None => Ok(None),
            Some((bytes, _, _)) => Ok(decode_tx(&bytes)?.outputs.get(op.index as usize).copied()),
        }
    }

    fn utxo(&self, op: &OutPoint) -> StoreResult<Option<(Output, u64)>> {
        self.read(|tx| {
            let row: Option<(Vec<u8>, i64, Vec<u8>, i64)> = tx
                .prepare_cached(
                    "SELECT asset, amount, owner, height FROM utxos WHERE txid = ?1 AND vout = ?2",
                )
                .map_err(be)?
                .query_row(params![&op.txid.0[..], op.index as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
                .map_err(be)?;
            row.map(|(asset, amount, owner, height)| {
                Ok((
                    Output {
                        asset: notch_protocol::AssetId(id32(asset)?),
                        amount: amount as u64,
                        owner: PublicKey(id32(owner)?),
                    },
                    height as u64,
                ))
            })
            .transpose()
        })
    }

    fn utxos_of(&self, owner: &PublicKey, limit: usize) -> StoreResult<(Vec<UtxoRow>, bool)> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT txid, vout, asset, amount, height FROM utxos WHERE owner = ?1 ORDER BY height, txid, vout LIMIT ?2",
                )
                .map_err(be)?;
            let rows = stmt
                .query_map(params![&owner.0[..], (limit + 1) as i64], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?))
                })
                .map_err(be)?;
            let mut out = Vec::new();
            for row in rows {
                let (txid, vout, asset, amount, height) = row.map_err(be)?;
                out.push((
                    OutPoint { txid: TxId(id32(txid)?), index: vout as u32 },
                    Output { asset: notch_protocol::AssetId(id32(asset)?), amount: amount as u64, owner: *owner },
                    height as u64,
                ));
            }
            let more = out.len() > limit;
            out.truncate(limit);
            Ok((out, more))
        })
    }

    fn mempool(&self) -> StoreResult<Vec<PoolEntry>> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare("SELECT txid, bytes, pool_seq FROM txs WHERE state = ?1 ORDER BY pool_seq")
                .map_err(be)?;
            let rows = stmt
                .query_map([STATE_POOL], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(be)?;
            let mut out = Vec::new();
            for row in rows {
                let (txid, bytes, seq) = row.map_err(be)?;
                out.push(PoolEntry {
                    seq: seq as u64,
                    txid: TxId(id32(txid)?),
                    tx: decode_tx(&bytes)?,
                });
            }
            Ok(out)
        })
    }

    fn mempool_changes(&self, since: u64, limit: usize) -> StoreResult<PoolChanges> {
        self.read(|tx| {
            let horizon = horizon_in(tx)? as u64;
            let max: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM pool_log", [], |r| r.get(0)).map_err(be)?;
            let max = max as u64;
            let reset = since < horizon || since > max;
            let from = if reset { 0 } else { since };
            let mut stmt = tx
                .prepare_cached(
                    "SELECT l.seq, l.txid, l.added, t.bytes FROM pool_log l LEFT JOIN txs t ON t.txid = l.txid
                     WHERE l.seq > ?1 ORDER BY l.seq LIMIT ?2",
                )
                .map_err(be)?;
            let rows = stmt
                .query_map(params![from as i64, (limit + 1) as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<Vec<u8>>>(3)?))
                })
                .map_err(be)?;
            let mut changes = Vec::new();
            for row in rows {
                let (seq, txid, added, bytes) = row.map_err(be)?;
                let added = added != 0;
                changes.push(PoolChange { seq: seq as u64, added, txid: TxId(id32(txid)?), bytes: if added { bytes } else { None } });
            }
            let more = changes.len() > limit;
            changes.truncate(limit);
            let seq = changes.last().map_or(if reset { max } else { since }, |c| c.seq);
            Ok(PoolChanges { reset, changes, seq, more })
        })
    }

    fn add_to_pool(&self, adds: &[PoolAdd], evicted: &[(TxId, String)]) -> StoreResult<Vec<u64>> {
        self.write(|tx| {
            let mut seqs = Vec::with_capacity(adds.len());
            let mut up = tx
                .prepare_cached(
                    "INSERT INTO txs (txid, bytes, state, height, pool_seq, reason) VALUES (?1, ?2, ?3, NULL, ?4, NULL)
                     ON CONFLICT(txid) DO UPDATE SET state = ?3, height = NULL, pool_seq = ?4, reason = NULL",
                )
                .map_err(be)?;
            for a in adds {
                let seq = log_pool(tx, &a.txid, true)?;
                up.execute(params![&a.txid.0[..], &a.bytes, STATE_POOL, seq as i64]).map_err(be)?;
                seqs.push(seq);
            }
            let mut drop = tx
                .prepare_cached(
                    "UPDATE txs SET state = ?2, height = NULL, pool_seq = NULL, reason = ?3 WHERE txid = ?1 AND state = ?4",
                )
                .map_err(be)?;
            for (txid, reason) in evicted {
                if drop.execute(params![&txid.0[..], STATE_DROPPED, reason, STATE_POOL]).map_err(be)? != 1 {
                    return Err(corrupt(format!("evicted transaction {txid} is not in the pool")));
                }
                log_pool(tx, txid, false)?;
            }
            Ok(seqs)
        })
    }

    fn apply_block(&self, block: &Block) -> StoreResult<()> {
        self.write(|tx| {
            let tip = tip_in(tx)?;
            if block.header.height != tip.height + 1 || block.header.prev != tip.id {
                return Err(corrupt("block does not extend the tip"));
            }
            apply_block_in(tx, block)?;
            prune_pool_log(tx, self.pool_log_keep)
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
        self.write(|tx| {
            let stored = stored_relay_port(tx, agent)?;
            let mut others = Vec::new();
            {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT port, seen FROM relay_ports WHERE agent != ?1 AND port BETWEEN ?2 AND ?3",
                    )
                    .map_err(be)?;
                let rows = stmt
                    .query_map(
                        params![&agent[..], i64::from(range.lo), i64::from(range.hi)],
                        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
                    )
                    .map_err(be)?;
                for row in rows {
                    let (port, seen) = row.map_err(be)?;
                    if let Ok(port) = u16::try_from(port) {
                        others.push((port, u64::try_from(seen).unwrap_or(0)));
                    }
                }
            }
            let Some((port, reclaimed)) =
                choose_relay_port(stored, &others, range, avoid, reclaim_before)
            else {
                return Ok(None);
            };
            if let Some(old) = reclaimed {
                tx.execute("DELETE FROM relay_ports WHERE port = ?1", params![i64::from(old)])
                    .map_err(be)?;
            }
            record_relay_port(tx, agent, port, now)?;
            Ok(Some(port))
        })
    }

    fn relay_port(&self, agent: &[u8; 32]) -> StoreResult<Option<u16>> {
        self.read(|tx| stored_relay_port(tx, agent))
    }

    fn relay_record(&self, agent: &[u8; 32], port: u16, now: u64) -> StoreResult<()> {
        self.write(|tx| record_relay_port(tx, agent, port, now))
    }

    fn reorg(&self, plan: &ReorgPlan) -> StoreResult<()> {
        self.write(|tx| {
            while tip_in(tx)?.height > plan.fork_height {
                unapply_top_in(tx)?;
            }
            for b in &plan.new_blocks {
                let tip = tip_in(tx)?;
                if b.header.height != tip.height + 1 || b.header.prev != tip.id {
                    return Err(corrupt("reorg block does not extend the fork"));
                }
                apply_block_in(tx, b)?;
            }
            let mut up = tx
                .prepare_cached(
                    "INSERT INTO txs (txid, bytes, state, height, pool_seq, reason) VALUES (?1, ?2, ?3, NULL, ?4, NULL)
                     ON CONFLICT(txid) DO UPDATE SET state = ?3, height = NULL, pool_seq = ?4, reason = NULL",
                )
                .map_err(be)?;
            for a in &plan.to_pool {
                let seq = log_pool(tx, &a.txid, true)?;
                up.execute(params![&a.txid.0[..], &a.bytes, STATE_POOL, seq as i64]).map_err(be)?;
            }
            let mut get = tx.prepare_cached("SELECT state FROM txs WHERE txid = ?1").map_err(be)?;
            let mut drop = tx
                .prepare_cached("UPDATE txs SET state = ?2, height = NULL, pool_seq = NULL, reason = ?3 WHERE txid = ?1")
                .map_err(be)?;
            for (txid, reason) in &plan.dropped {
                let state: Option<i64> = get.query_row([&txid.0[..]], |r| r.get(0)).optional().map_err(be)?;
                if state == Some(STATE_POOL) {
                    log_pool(tx, txid, false)?;
                }
                drop.execute(params![&txid.0[..], STATE_DROPPED, reason]).map_err(be)?;
            }
            let left: i64 = tx
                .query_row("SELECT COUNT(*) FROM txs WHERE state = ?1", [STATE_ORPHANED], |r| r.get(0))
                .map_err(be)?;
            if left != 0 {
                return Err(corrupt(format!("{left} orphaned transactions were given no fate")));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use notch_protocol::ed25519_dalek::SigningKey;
    use notch_protocol::{Issuance, Network, public_key};

    use super::*;

    fn mint(issuer: &SigningKey, to: PublicKey, amount: u64, nonce: u64) -> Transaction {
        let mut t = Transaction::new(Network::Sandbox);
        t.issuances = vec![Issuance {
            issuer: public_key(issuer),
            label: "NOTE".into(),
            mint: amount,
            burn: 0,
        }];
        t.outputs = vec![notch_protocol::Output {
            asset: t.issuances[0].asset(),
            amount,
            owner: to,
        }];
        t.nonce = nonce;
        t.sign(&[issuer]).ok();
        t
    }

    /// After the pool log is pruned, a client replaying from 0 page by page reaches the end
    /// (no page ends below the horizon) and ends with exactly the current pool.
    #[test]
    fn pruned_pool_log_replays_to_the_current_pool() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Backend(e.to_string()))?;
        let store =
            SqliteStore::open(&dir.path().join("m.db"), SyncMode::Normal)?.with_pool_log_keep(4);
        let auth = SigningKey::from_bytes(&[1; 32]);
        let issuer = SigningKey::from_bytes(&[2; 32]);
        let owner = public_key(&SigningKey::from_bytes(&[3; 32]));
        let meta = LedgerMeta {
            network: Network::Sandbox,
            authority: public_key(&auth),
            assets: vec![],
        };
        let mut prev = Block::build(Network::Sandbox, None, 100, 0, vec![]);
        prev.header.sign(&auth);
        store.init(&meta, &prev)?;
        // Rounds of 6 additions, then a block confirming the 3 oldest: some transactions stay
        // in the pool across many prunings.
        let mut waiting: Vec<Transaction> = Vec::new();
        let mut nonce = 0;
        for round in 0..8u64 {
            let adds: Vec<Transaction> = (0..6)
                .map(|_| {
                    nonce += 1;
                    mint(&issuer, owner, 10, nonce)
                })
                .collect();
            let rows: Vec<PoolAdd> = adds
                .iter()
                .map(|t| PoolAdd {
                    txid: t.txid(),
                    bytes: t.encode(),
                })
                .collect();
            store.add_to_pool(&rows, &[])?;
            waiting.extend(adds);
            let confirm: Vec<Transaction> = waiting.drain(..3).collect();
            let mut b = Block::build(
                Network::Sandbox,
                Some(&prev.header),
                101 + round,
                0,
                confirm,
            );
            b.header.sign(&auth);
            store.apply_block(&b)?;
            prev = b;
        }
        assert!(
            horizon_in(
                &store
                    .write
                    .lock()
                    .map_err(|_| StoreError::Backend("lock".into()))?
                    .transaction()
                    .map_err(be)?
            )? > 0,
            "the log was pruned"
        );
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
            for c in &page.changes {
                if c.added {
                    pool.insert(c.txid);
                } else {
                    pool.remove(&c.txid);
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
        Ok(())
    }

    #[test]
    fn a_newer_schema_is_refused_and_an_old_one_upgraded() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Backend(e.to_string()))?;
        let path = dir.path().join("m.db");
        drop(SqliteStore::open(&path, SyncMode::Normal)?);
        let version = |v: i64| -> Result<i64, StoreError> {
            let conn = Connection::open(&path).map_err(be)?;
            if v >= 0 {
                conn.pragma_update(None, "user_version", v).map_err(be)?;
            }
            conn.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(be)
        };
        assert_eq!(version(-1)?, SCHEMA_VERSION);
        version(SCHEMA_VERSION + 1)?;
        let err = match SqliteStore::open(&path, SyncMode::Normal) {
            Ok(_) => panic!("a newer schema was opened"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&format!("version {}", SCHEMA_VERSION + 1)) && err.contains("newer"),
            "{err}"
        );
        // A database from before the version was kept (0) is brought to the current one.
        version(0)?;
        drop(SqliteStore::open(&path, SyncMode::Normal)?);
        assert_eq!(version(-1)?, SCHEMA_VERSION);
        Ok(())
    }

    #[test]
    fn blocks_pool_and_reorg_round_trip() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Backend(e.to_string()))?;
        let store = SqliteStore::open(&dir.path().join("m.db"), SyncMode::Normal)?;
        let auth = SigningKey::from_bytes(&[1; 32]);
        let issuer = SigningKey::from_bytes(&[2; 32]);
        let owner = public_key(&SigningKey::from_bytes(&[3; 32]));
        let meta = LedgerMeta {
            network: Network::Sandbox,
            authority: public_key(&auth),
            assets: vec![],
        };
        let mut g = Block::build(Network::Sandbox, None, 100, 0, vec![]);
        g.header.sign(&auth);
        store.init(&meta, &g)?;
        assert_eq!(store.load_meta()?, Some(meta));
        let t1 = mint(&issuer, owner, 50, 1);
        let seqs = store.add_to_pool(
            &[PoolAdd {
                txid: t1.txid(),
                bytes: t1.encode(),
            }],
            &[],
        )?;
        assert_eq!(seqs.len(), 1);
        assert!(matches!(
            store.tx(&t1.txid())?.map(|r| r.state),
            Some(TxState::InPool { .. })
        ));
        let mut b1 = Block::build(Network::Sandbox, Some(&g.header), 101, 0, vec![t1.clone()]);
        b1.header.sign(&auth);
        store.apply_block(&b1)?;
        let op = OutPoint {
            txid: t1.txid(),
            index: 0,
        };
        assert_eq!(
            store.utxo(&op)?.map(|(o, hh)| (o.amount, hh)),
            Some((50, 1))
        );
        assert!(store.mempool()?.is_empty());
        let changes = store.mempool_changes(0, 10)?;
        assert_eq!(
            changes.changes.iter().map(|c| c.added).collect::<Vec<_>>(),
            vec![true, false]
        );
        // Reorg: drop b1, new empty block 1 and 2; t1 back to the pool.
        let mut n1 = Block::build(Network::Sandbox, Some(&g.header), 101, 7, vec![]);
        n1.header.sign(&auth);
        let mut n2 = Block::build(Network::Sandbox, Some(&n1.header), 102, 7, vec![]);
        n2.header.sign(&auth);
        store.reorg(&ReorgPlan {
            fork_height: 0,
            new_blocks: vec![n1.clone(), n2.clone()],
            to_pool: vec![PoolAdd {
                txid: t1.txid(),
                bytes: t1.encode(),
            }],
            dropped: vec![],
        })?;
        assert_eq!(store.tip()?.id, n2.id());
        assert!(store.utxo(&op)?.is_none());
        assert_eq!(store.mempool()?.len(), 1);
        let slice = store.headers_after_locator(&[b1.id(), g.id()], 10)?;
        assert_eq!(slice.fork_point.map(|f| f.0), Some(0));
        assert_eq!(
            slice.items.iter().map(|x| x.height).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(!slice.more);
        // A reorg that forgets an orphan is refused and leaves the store untouched.
        let mut c1 = Block::build(Network::Sandbox, Some(&n1.header), 103, 9, vec![]);
        c1.header.sign(&auth);
        store.apply_block(&{
            let mut b = Block::build(Network::Sandbox, Some(&n2.header), 103, 0, vec![t1.clone()]);
            b.header.sign(&auth);
            b
        })?;
        let bad = store.reorg(&ReorgPlan {
            fork_height: 1,
            new_blocks: vec![c1],
            to_pool: vec![],
            dropped: vec![],
        });
        assert!(bad.is_err());
        assert_eq!(store.tip()?.height, 3);
        Ok(())
    }
}
