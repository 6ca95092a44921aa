//! The chits of open tallies, each tally's confirmed chain position, and
//! the chit messages waiting for a partner (migration 5).
//!
//! Only the agent's chit step (`crate::agent::chits`) writes these: one
//! [`crate::tally::chain::ChitOutcome`] in one transaction, together with
//! its outgoing messages and notifications. The rows read back into a
//! [`crate::tally::chain::ChitLedger`] with `ChitLedger::restore_tail`
//! (the chain's tail and the tally's summary, `chit_summaries`, migration
//! 9) or, whole, `ChitLedger::restore`.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{StoreError, StoreTx, now};
use crate::tally::chain::{Balance, ChitRow, ChitState, ChitTotals};
use crate::tally::chit::{ChainLink, ChitRecord};

/// One stored chit, with the tally it belongs to and when it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChit {
    /// The wallet's id of the tally.
    pub tally: String,
    pub row: ChitRow,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// The state it was first stored in (`None`: stored before migration
    /// 8): an invoice starts unsigned, a payment signed.
    pub opened_as: Option<ChitState>,
    /// Its place among the tally's chits written in the same second (the
    /// row id): with `created_at`, the order of lists and pages.
    pub seq: i64,
}

/// Where a page of a tally's chits ends: the (`created_at`, `seq`) of its
/// last (oldest) row; the next page starts below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChitCursor {
    pub created_at: i64,
    pub seq: i64,
}

impl ChitCursor {
    pub fn of(chit: &StoredChit) -> Self {
        Self {
            created_at: chit.created_at,
            seq: chit.seq,
        }
    }

    /// As text, `CREATED_AT.SEQ`: what crosses to the shells.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at, self.seq)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let (created_at, seq) = text.split_once('.')?;
        Some(Self {
            created_at: created_at.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// The good chits of a tally, lightly: what running balances are summed
/// from without reading (or checking) any record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoodChit {
    pub at: ChitCursor,
    /// milliCHIPs from our side: positive when owed to us.
    pub amount: i128,
}

/// A chit or chain message waiting for a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChitOutboxRow {
    pub id: i64,
    pub tally: String,
    /// The chit a `pend`/`good`/`void` message carries (`None`: a chain
    /// message).
    pub chit: Option<String>,
    pub partner_agent: [u8; 32],
    pub host: Option<String>,
    pub port: Option<u16>,
    /// The envelope, JSON (without `try` and `last`, set per attempt).
    pub message: String,
    pub attempts: u32,
    /// Milliseconds since the Unix epoch.
    pub next_attempt: i64,
    pub last_error: Option<String>,
}

/// A chit message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChitOutbox {
    pub tally: String,
    pub chit: Option<String>,
    pub partner_agent: [u8; 32],
    pub host: Option<String>,
    pub port: Option<u16>,
    pub message: String,
    /// Milliseconds since the Unix epoch.
    pub next_attempt: i64,
}

const CHIT_COLUMNS: &str = "tally, uuid, record, state, link_index, link_hash, claim_index, \
     claim_hash, created_at, updated_at, opened_as, rowid";

fn corrupt(i: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        i,
        rusqlite::types::Type::Text,
        Box::new(StoreError::Corrupt(what)),
    )
}

fn link_from(
    row: &Row<'_>,
    index_col: usize,
    hash_col: usize,
) -> rusqlite::Result<Option<ChainLink>> {
    let index: Option<i64> = row.get(index_col)?;
    let hash: Option<Vec<u8>> = row.get(hash_col)?;
    match (index, hash) {
        (None, None) => Ok(None),
        (Some(index), Some(hash)) => {
            let index = u64::try_from(index)
                .map_err(|_| corrupt(index_col, format!("chain index {index}")))?;
            let hash: [u8; 32] = hash
                .try_into()
                .map_err(|_| corrupt(hash_col, "a chain hash is not 32 bytes".into()))?;
            Ok(Some(ChainLink { index, hash }))
        }
        _ => Err(corrupt(index_col, "half a chain link".into())),
    }
}

fn chit_from_row(row: &Row<'_>) -> rusqlite::Result<StoredChit> {
    let uuid: String = row.get(1)?;
    let record: String = row.get(2)?;
    let state: String = row.get(3)?;
    // The store holds what the ledger wrote; anything else is damage.
    let record = ChitRecord::parse(&record)
        .map_err(|e| corrupt(2, format!("the stored chit {uuid} is not a chit: {e}")))?;
    let state = ChitState::parse(&state)
        .ok_or_else(|| corrupt(3, format!("unknown chit state {state:?}")))?;
    Ok(StoredChit {
        tally: row.get(0)?,
        row: ChitRow {
            uuid,
            record,
            state,
            link: link_from(row, 4, 5)?,
            claim: link_from(row, 6, 7)?,
        },
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
        opened_as: row
            .get::<_, Option<String>>(10)?
            .and_then(|code| ChitState::parse(&code)),
        seq: row.get(11)?,
    })
}

const OUTBOX_COLUMNS: &str =
    "id, tally, chit, partner_agent, host, port, message, attempts, next_attempt, last_error";

fn outbox_from_row(row: &Row<'_>) -> rusqlite::Result<ChitOutboxRow> {
    let port: Option<i64> = row.get(5)?;
    let attempts: i64 = row.get(7)?;
    Ok(ChitOutboxRow {
        id: row.get(0)?,
        tally: row.get(1)?,
        chit: row.get(2)?,
        partner_agent: row.get(3)?,
        host: row.get(4)?,
        port: port.and_then(|p| u16::try_from(p).ok()),
        message: row.get(6)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt: row.get(8)?,
        last_error: row.get(9)?,
    })
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A tally's chits, newest first.
pub(super) fn chits_of(conn: &Connection, tally: &str) -> Result<Vec<StoredChit>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CHIT_COLUMNS} FROM chits WHERE tally = ?1 ORDER BY created_at DESC, rowid DESC"
    ))?;
    let rows = stmt.query_map([tally], chit_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The chits with this uuid, in any tally (a uuid is random, so at most
/// one unless someone reuses one on purpose).
pub(super) fn chits_by_uuid(conn: &Connection, uuid: &str) -> Result<Vec<StoredChit>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CHIT_COLUMNS} FROM chits WHERE uuid = ?1 ORDER BY rowid"
    ))?;
    let rows = stmt.query_map([uuid], chit_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// At most `limit` of a tally's chits, newest first, older than `before`.
pub(super) fn chit_page(
    conn: &Connection,
    tally: &str,
    before: Option<ChitCursor>,
    limit: usize,
) -> Result<Vec<StoredChit>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = match before {
        None => {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CHIT_COLUMNS} FROM chits WHERE tally = ?1
                 ORDER BY created_at DESC, rowid DESC LIMIT ?2"
            ))?;
            stmt.query_map(params![tally, limit], chit_from_row)?
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(c) => {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CHIT_COLUMNS} FROM chits WHERE tally = ?1
                     AND (created_at, rowid) < (?2, ?3)
                 ORDER BY created_at DESC, rowid DESC LIMIT ?4"
            ))?;
            stmt.query_map(params![tally, c.created_at, c.seq, limit], chit_from_row)?
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    Ok(rows)
}

pub(super) fn chit_count(conn: &Connection, tally: &str) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM chits WHERE tally = ?1",
        [tally],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The good chits of a tally (MyCHIPs's `A.good` and `L.good`), with
/// their amounts from the stored `units`, oldest first.
pub(super) fn good_chits(conn: &Connection, tally: &str) -> Result<Vec<GoodChit>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT created_at, rowid, state, units FROM chits
         WHERE tally = ?1 AND state IN ('A.good', 'L.good')
         ORDER BY created_at, rowid",
    )?;
    let rows = stmt.query_map([tally], |r| {
        let state: String = r.get(2)?;
        let units: Option<i64> = r.get(3)?;
        let units = i128::from(units.unwrap_or(0));
        Ok(GoodChit {
            at: ChitCursor {
                created_at: r.get(0)?,
                seq: r.get(1)?,
            },
            amount: if state.starts_with('A') {
                units
            } else {
                -units
            },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What a tally's good chits after `at` (in list order: newer, or as new
/// and written later) add up to, milliCHIPs from our side.
pub(super) fn good_after(
    conn: &Connection,
    tally: &str,
    at: ChitCursor,
) -> Result<i128, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT state, units FROM chits
         WHERE tally = ?1 AND state IN ('A.good', 'L.good') AND created_at >= ?2
             AND (created_at > ?2 OR rowid > ?3)",
    )?;
    let mut sum: i128 = 0;
    for row in stmt.query_map(params![tally, at.created_at, at.seq], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
    })? {
        let (state, units) = row?;
        let units = i128::from(units.unwrap_or(0));
        sum += if state.starts_with('A') {
            units
        } else {
            -units
        };
    }
    Ok(sum)
}

/// The chits of a tally whose message waits in the chit outbox.
pub(super) fn chits_waiting(
    conn: &Connection,
    tally: &str,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT chit FROM chit_outbox WHERE tally = ?1 AND chit IS NOT NULL")?;
    let rows = stmt.query_map([tally], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many partners messages (tally or chit) wait for.
pub(super) fn partners_waiting(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM (SELECT partner_agent FROM outbox
             UNION SELECT partner_agent FROM chit_outbox)",
        [],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The chit `uuid` of a tally.
pub(super) fn chit_of(
    conn: &Connection,
    tally: &str,
    uuid: &str,
) -> Result<Option<StoredChit>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CHIT_COLUMNS} FROM chits WHERE tally = ?1 AND uuid = ?2"
    ))?;
    Ok(stmt.query_row([tally, uuid], chit_from_row).optional()?)
}

/// The tail of a tally's chits: those linked after index `after`, and
/// those not linked that are not void (in no order).
pub(super) fn chit_tail(
    conn: &Connection,
    tally: &str,
    after: u64,
) -> Result<Vec<StoredChit>, StoreError> {
    let mut linked = conn.prepare_cached(&format!(
        "SELECT {CHIT_COLUMNS} FROM chits WHERE tally = ?1 AND link_index > ?2"
    ))?;
    let mut out: Vec<StoredChit> = linked
        .query_map(params![tally, to_i64(after)], chit_from_row)?
        .collect::<Result<_, _>>()?;
    let mut unlinked = conn.prepare_cached(&format!(
        "SELECT {CHIT_COLUMNS} FROM chits WHERE tally = ?1 AND link_index IS NULL
             AND state NOT IN ('A.void', 'L.void')"
    ))?;
    for row in unlinked.query_map([tally], chit_from_row)? {
        out.push(row?);
    }
    Ok(out)
}

/// The chain hash of a tally's chit linked at `index`.
pub(super) fn link_hash_at(
    conn: &Connection,
    tally: &str,
    index: u64,
) -> Result<Option<[u8; 32]>, StoreError> {
    let hash: Option<Vec<u8>> = conn
        .query_row(
            "SELECT link_hash FROM chits WHERE tally = ?1 AND link_index = ?2",
            params![tally, to_i64(index)],
            |r| r.get(0),
        )
        .optional()?;
    hash.map(|h| {
        h.try_into()
            .map_err(|_| StoreError::Corrupt("a chain hash is not 32 bytes".into()))
    })
    .transpose()
}

/// How many of a tally's chits are in `state`.
pub(super) fn chits_in_state(
    conn: &Connection,
    tally: &str,
    state: &str,
) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM chits WHERE tally = ?1 AND state = ?2",
        [tally, state],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// What a tally's chits add up to (migration 9); `None`: no summary row
/// (a tally without chits).
pub(super) fn chit_totals(
    conn: &Connection,
    tally: &str,
) -> Result<Option<ChitTotals>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT good, pending, committed, stock_limit, foil_limit, stock_close, foil_close
         FROM chit_summaries WHERE tally = ?1",
    )?;
    let mut rows = stmt.query([tally])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let (good, pending, committed): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
    let (stock_limit, foil_limit): (Option<String>, Option<String>) = (r.get(3)?, r.get(4)?);
    let (stock_close, foil_close): (bool, bool) = (r.get(5)?, r.get(6)?);
    let amount = |text: &str| {
        text.parse::<i128>().map_err(|_| {
            StoreError::Corrupt(format!(
                "a tally's chit summary holds {text:?}, not an amount"
            ))
        })
    };
    let limit = |text: Option<String>| {
        text.map(|t| {
            serde_json::from_str(&t).map_err(|_| {
                StoreError::Corrupt(format!("a tally's chit summary holds {t:?}, not a limit"))
            })
        })
        .transpose()
    };
    Ok(Some(ChitTotals {
        balance: Balance {
            good: amount(&good)?,
            pending: amount(&pending)?,
            committed: amount(&committed)?,
        },
        stock_limit: limit(stock_limit)?,
        foil_limit: limit(foil_limit)?,
        stock_close,
        foil_close,
    }))
}

pub(super) fn chits_confirmed(conn: &Connection, tally: &str) -> Result<u64, StoreError> {
    let n: Option<i64> = conn
        .query_row(
            "SELECT confirmed FROM chit_chains WHERE tally = ?1",
            [tally],
            |r| r.get(0),
        )
        .optional()?;
    Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
}

pub(super) fn chit_outbox(conn: &Connection) -> Result<Vec<ChitOutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTBOX_COLUMNS} FROM chit_outbox ORDER BY id"
    ))?;
    let rows = stmt.query_map([], outbox_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn chit_outbox_for(
    conn: &Connection,
    agent: &[u8; 32],
) -> Result<Vec<ChitOutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTBOX_COLUMNS} FROM chit_outbox WHERE partner_agent = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([agent], outbox_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn chit_outbox_due(
    conn: &Connection,
    now_ms: i64,
) -> Result<Vec<ChitOutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTBOX_COLUMNS} FROM chit_outbox WHERE next_attempt <= ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([now_ms], outbox_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn next_chit_outbox_attempt(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(
        conn.query_row("SELECT min(next_attempt) FROM chit_outbox", [], |r| {
            r.get(0)
        })?,
    )
}

impl StoreTx<'_> {
    /// Writes a chit row of a tally (inserts it, or replaces the stored
    /// row of the same uuid, keeping its creation time and the state it
    /// was first stored in).
    pub fn put_chit(&self, tally: &str, chit: &ChitRow) -> Result<(), StoreError> {
        let at = now();
        self.conn().execute(
            "INSERT INTO chits (tally, uuid, record, state, units, link_index, link_hash,
                 claim_index, claim_hash, created_at, updated_at, opened_as)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?4)
             ON CONFLICT (tally, uuid) DO UPDATE SET record = excluded.record,
                 state = excluded.state, units = excluded.units,
                 link_index = excluded.link_index, link_hash = excluded.link_hash,
                 claim_index = excluded.claim_index, claim_hash = excluded.claim_hash,
                 updated_at = excluded.updated_at",
            params![
                tally,
                chit.uuid,
                chit.record.to_json(),
                chit.state.code(),
                chit.record.units().map(to_i64),
                chit.link.map(|l| to_i64(l.index)),
                chit.link.map(|l| l.hash.to_vec()),
                chit.claim.map(|l| to_i64(l.index)),
                chit.claim.map(|l| l.hash.to_vec()),
                at
            ],
        )?;
        Ok(())
    }

    /// Writes what a tally's chits add up to (its summary, migration 9).
    pub fn put_chit_totals(&self, tally: &str, totals: &ChitTotals) -> Result<(), StoreError> {
        let limit = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        self.conn().execute(
            "INSERT OR REPLACE INTO chit_summaries (tally, good, pending, committed,
                 stock_limit, foil_limit, stock_close, foil_close)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                tally,
                totals.balance.good.to_string(),
                totals.balance.pending.to_string(),
                totals.balance.committed.to_string(),
                limit(&totals.stock_limit),
                limit(&totals.foil_limit),
                totals.stock_close,
                totals.foil_close
            ],
        )?;
        Ok(())
    }

    /// Recomputes every tally's chit summary from its stored chits alone,
    /// as migration 9 filled it (diagnostics and tests).
    pub fn refill_chit_summaries(&self) -> Result<(), StoreError> {
        self.conn()
            .execute_batch(super::migrations::FILL_CHIT_SUMMARIES)?;
        Ok(())
    }

    /// Records how many links of a tally's chain both halves agree on.
    pub fn set_chits_confirmed(&self, tally: &str, confirmed: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO chit_chains (tally, confirmed) VALUES (?1, ?2)
             ON CONFLICT (tally) DO UPDATE SET confirmed = excluded.confirmed",
            params![tally, to_i64(confirmed)],
        )?;
        Ok(())
    }

    /// Queues a chit message; one for a chit replaces an undelivered one
    /// for the same chit (the newer state supersedes it). Returns its id.
    pub fn put_chit_outbox(&self, new: &NewChitOutbox) -> Result<i64, StoreError> {
        let id: i64 = self.conn().query_row(
            "INSERT INTO chit_outbox (tally, chit, partner_agent, host, port, message,
                 next_attempt, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (tally, chit) WHERE chit IS NOT NULL DO UPDATE SET
                 partner_agent = excluded.partner_agent, host = excluded.host,
                 port = excluded.port, message = excluded.message, attempts = 0,
                 next_attempt = excluded.next_attempt, last_error = NULL
             RETURNING id",
            params![
                new.tally,
                new.chit,
                new.partner_agent,
                new.host,
                new.port,
                new.message,
                new.next_attempt,
                now()
            ],
            |r| r.get(0),
        )?;
        self.queued_for(new.partner_agent);
        Ok(id)
    }

    /// Removes a delivered chit message; `false` if it was gone.
    pub fn delete_chit_outbox(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM chit_outbox WHERE id = ?1", [id])?
            == 1)
    }

    /// Records a failed attempt and when to try next.
    pub fn chit_outbox_failed(
        &self,
        id: i64,
        next_attempt: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE chit_outbox SET attempts = attempts + 1, next_attempt = ?2, last_error = ?3
             WHERE id = ?1",
            params![id, next_attempt, error],
        )?;
        Ok(())
    }
}

/// Read methods added by this module, for [`Store`](super::Store) and
/// [`StoreTx`].
macro_rules! chit_read_methods {
    () => {
        /// A tally's chits, newest first.
        pub fn chits_of(&self, tally: &str) -> Result<Vec<StoredChit>, StoreError> {
            chits::chits_of(self.conn(), tally)
        }

        /// The chits with this uuid, in any tally.
        pub fn chits_by_uuid(&self, uuid: &str) -> Result<Vec<StoredChit>, StoreError> {
            chits::chits_by_uuid(self.conn(), uuid)
        }

        /// At most `limit` of a tally's chits, newest first, older than
        /// `before` (the first page: `None`).
        pub fn chit_page(
            &self,
            tally: &str,
            before: Option<ChitCursor>,
            limit: usize,
        ) -> Result<Vec<StoredChit>, StoreError> {
            chits::chit_page(self.conn(), tally, before, limit)
        }

        /// How many chits a tally has.
        pub fn chit_count(&self, tally: &str) -> Result<u64, StoreError> {
            chits::chit_count(self.conn(), tally)
        }

        /// The good chits of a tally, oldest first, from the stored units
        /// (no record is read).
        pub fn good_chits(&self, tally: &str) -> Result<Vec<GoodChit>, StoreError> {
            chits::good_chits(self.conn(), tally)
        }

        /// The chits of a tally whose message waits for the partner.
        pub fn chits_waiting(
            &self,
            tally: &str,
        ) -> Result<std::collections::HashSet<String>, StoreError> {
            chits::chits_waiting(self.conn(), tally)
        }

        /// How many partners undelivered messages wait for.
        pub fn partners_waiting(&self) -> Result<u64, StoreError> {
            chits::partners_waiting(self.conn())
        }

        /// What a tally's good chits after `at` (list order) add up to.
        pub fn good_after(&self, tally: &str, at: ChitCursor) -> Result<i128, StoreError> {
            chits::good_after(self.conn(), tally, at)
        }

        /// The chit `uuid` of a tally.
        pub fn chit_of(&self, tally: &str, uuid: &str) -> Result<Option<StoredChit>, StoreError> {
            chits::chit_of(self.conn(), tally, uuid)
        }

        /// The chits of a tally linked after index `after`, and those not
        /// linked that are not void.
        pub fn chit_tail(&self, tally: &str, after: u64) -> Result<Vec<StoredChit>, StoreError> {
            chits::chit_tail(self.conn(), tally, after)
        }

        /// The chain hash at `index` of a tally's chain.
        pub fn link_hash_at(
            &self,
            tally: &str,
            index: u64,
        ) -> Result<Option<[u8; 32]>, StoreError> {
            chits::link_hash_at(self.conn(), tally, index)
        }

        /// How many of a tally's chits are in `state` (a state code).
        pub fn chits_in_state(&self, tally: &str, state: &str) -> Result<u64, StoreError> {
            chits::chits_in_state(self.conn(), tally, state)
        }

        /// What a tally's chits add up to (its summary); `None`: none kept.
        pub fn chit_totals(
            &self,
            tally: &str,
        ) -> Result<Option<crate::tally::chain::ChitTotals>, StoreError> {
            chits::chit_totals(self.conn(), tally)
        }

        /// How many links of the tally's chain both halves agree on.
        pub fn chits_confirmed(&self, tally: &str) -> Result<u64, StoreError> {
            chits::chits_confirmed(self.conn(), tally)
        }

        /// Every undelivered chit message, oldest first.
        pub fn chit_outbox(&self) -> Result<Vec<ChitOutboxRow>, StoreError> {
            chits::chit_outbox(self.conn())
        }

        /// The undelivered chit messages for `agent`, oldest first.
        pub fn chit_outbox_for(&self, agent: &[u8; 32]) -> Result<Vec<ChitOutboxRow>, StoreError> {
            chits::chit_outbox_for(self.conn(), agent)
        }

        /// Chit messages whose next attempt is due at `now_ms`.
        pub fn chit_outbox_due(&self, now_ms: i64) -> Result<Vec<ChitOutboxRow>, StoreError> {
            chits::chit_outbox_due(self.conn(), now_ms)
        }

        /// When the next chit message is due (ms), if any waits.
        pub fn next_chit_outbox_attempt(&self) -> Result<Option<i64>, StoreError> {
            chits::next_chit_outbox_attempt(self.conn())
        }
    };
}
pub(super) use chit_read_methods;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TallyRow;
    use crate::store::test_support::wallet_with_address;
    use crate::tally::chain::{ChitStatus, Direction};
    use crate::tally::lifecycle::TallyState;
    use crate::tally::{ChitBuilder, Side};

    fn tally(id: &str) -> TallyRow {
        TallyRow {
            id: id.into(),
            uuid: Some(format!("u-{id}")),
            state: TallyState::Draft,
            side: Some(Side::Stock),
            partner_agent: None,
            partner_cid: None,
            partner_host: None,
            partner_port: None,
            record: "{}".into(),
            reason: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn chit(uuid: &str, units: u64) -> ChitRow {
        let record =
            ChitBuilder::transaction("u-t", Side::Foil, uuid, "2026-01-01T00:00:00.000Z", units)
                .memo("m")
                .build()
                .expect("builds");
        ChitRow {
            uuid: uuid.into(),
            record,
            state: ChitState::new(Direction::Asset, ChitStatus::Pend, None),
            link: None,
            claim: None,
        }
    }

    fn message(chit: Option<&str>, text: &str) -> NewChitOutbox {
        NewChitOutbox {
            tally: "t".into(),
            chit: chit.map(str::to_owned),
            partner_agent: [7; 32],
            host: Some("127.0.0.1".into()),
            port: Some(9),
            message: text.into(),
            next_attempt: 100,
        }
    }

    #[test]
    fn chits_round_trip_and_replace_by_uuid() {
        let mut store = wallet_with_address();
        store
            .write(|tx| {
                tx.insert_tally(&tally("t"))?;
                tx.put_chit("t", &chit("c1", 5))?;
                tx.put_chit("t", &chit("c2", 7))
            })
            .expect("writes");
        let mut moved = chit("c1", 5);
        moved.state = ChitState::new(Direction::Asset, ChitStatus::Good, None);
        moved.link = Some(ChainLink {
            index: 1,
            hash: [3; 32],
        });
        store
            .write(|tx| {
                tx.put_chit("t", &moved)?;
                tx.set_chits_confirmed("t", 1)
            })
            .expect("writes");
        let rows = store.chits_of("t").expect("reads");
        // Newest first; replacing a row keeps its place.
        assert_eq!(
            rows.iter().map(|c| c.row.uuid.as_str()).collect::<Vec<_>>(),
            ["c2", "c1"]
        );
        assert_eq!(rows[1].row, moved);
        assert_eq!(store.chits_confirmed("t").expect("reads"), 1);
        assert_eq!(store.chits_confirmed("other").expect("reads"), 0);
        assert_eq!(store.chits_by_uuid("c2").expect("reads")[0].tally, "t");
        // A chit needs its tally.
        assert!(
            store
                .write(|tx| tx.put_chit("nope", &chit("c3", 1)))
                .is_err()
        );
    }

    #[test]
    fn the_chit_outbox_keeps_one_message_per_chit_and_every_chain_message() {
        let mut store = wallet_with_address();
        store
            .write(|tx| tx.insert_tally(&tally("t")))
            .expect("writes");
        let first = store
            .write(|tx| tx.put_chit_outbox(&message(Some("c1"), "pend")))
            .expect("queues");
        store
            .write(|tx| tx.chit_outbox_failed(first, 500, "down"))
            .expect("fails");
        let again = store
            .write(|tx| tx.put_chit_outbox(&message(Some("c1"), "good")))
            .expect("queues");
        assert_eq!(first, again, "a newer message for the chit replaces it");
        for text in ["upd", "upd"] {
            store
                .write(|tx| tx.put_chit_outbox(&message(None, text)))
                .expect("queues");
        }
        let rows = store.chit_outbox_for(&[7; 32]).expect("reads");
        assert_eq!(
            rows.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(),
            ["good", "upd", "upd"]
        );
        assert_eq!(rows[0].attempts, 0);
        store
            .write(|tx| tx.chit_outbox_failed(first, 500, "down"))
            .expect("fails");
        assert_eq!(store.chit_outbox_due(499).expect("reads").len(), 2);
        assert_eq!(store.next_chit_outbox_attempt().expect("reads"), Some(100));
        assert!(
            store
                .write(|tx| tx.delete_chit_outbox(first))
                .expect("deletes")
        );
        assert!(
            !store
                .write(|tx| tx.delete_chit_outbox(first))
                .expect("deletes")
        );
        assert_eq!(store.chit_outbox().expect("reads").len(), 2);
    }
}
