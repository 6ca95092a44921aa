//! What the History and Home screens read, kept up to date in the write
//! transaction that changes what it is derived from (schema 7).
//!
//! Triggers on `transactions`, `outputs` and `headers` mark the
//! transactions and assets a change touched (`history_dirty_tx`,
//! `history_dirty_asset`); [`refresh`] runs at the end of every
//! [`Store::write`](super::Store::write), before the commit, and brings
//! `wallet_history`, `wallet_tx_effects`, `wallet_tx_addresses` and
//! `wallet_balances` up to date for exactly those. What a row needs of a
//! transaction's bytes (counterparties, fee, the wallet's coins it spends)
//! is read from them when they reach the store, into the facts it keeps
//! ([`super::facts`]); the bytes themselves are kept only for the wallet's
//! own unresolved sends. Rows are computed from the facts, nothing is
//! decoded to answer a page.
//!
//! Pages are newest first by `(sort_time, seq)`: both are fixed when a
//! transaction is first listed, so a keyset cursor neither skips nor
//! repeats a row while new rows arrive or states change.

use std::fmt::Write as _;

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter, types::Value};

use super::ledger::{TxState, amount_from_sql, amount_to_sql, hex};
use super::{Hash32, StoreError, chain, facts, inbox, ledger, to_i64, to_u64};

/// How a transaction moves the wallet's coins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Nothing of the wallet's was spent: a payment in.
    In,
    /// It spends the wallet's coins and pays someone else.
    Out,
    /// It spends the wallet's coins and pays only the wallet.
    SelfTransfer,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::SelfTransfer => "self",
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        match s.trim().to_ascii_lowercase().as_str() {
            "in" => Some(Direction::In),
            "out" => Some(Direction::Out),
            "self" => Some(Direction::SelfTransfer),
            _ => None,
        }
    }
}

/// One asset's effect of a transaction on the wallet, in base units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxEffect {
    pub asset: Hash32,
    /// Paid to the wallet's addresses (including its change).
    pub received: u128,
    /// Taken from the wallet's coins.
    pub sent: u128,
}

/// A transaction as the history lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRecord {
    /// Position in the list, fixed when first listed.
    pub seq: i64,
    pub sort_time: i64,
    pub txid: Hash32,
    pub state: TxState,
    pub own: bool,
    pub direction: Direction,
    pub block_height: Option<u64>,
    /// Block time if in a block, else when the wallet first saw it.
    pub time: u64,
    pub fee: Option<u64>,
    /// Per asset, in first-seen order.
    pub effects: Vec<TxEffect>,
    /// Addresses paid that are not the wallet's.
    pub counterparties: Vec<String>,
    pub memo: Option<String>,
    pub reason: Option<String>,
}

impl HistoryRecord {
    /// The cursor that asks for the rows after this one.
    pub fn cursor(&self) -> String {
        format!("{}.{}", self.sort_time, self.seq)
    }
}

/// Which rows a page holds (all `None`/empty: every row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    pub asset: Option<Hash32>,
    pub direction: Option<Direction>,
    /// `Some(true)`: only [`Direction::In`]; `Some(false)`: every other
    /// direction (out and self, as `Wallet::history`'s `incoming`).
    pub incoming: Option<bool>,
    pub states: Vec<TxState>,
    /// `time >= since` (Unix seconds).
    pub since: Option<u64>,
    /// `time < until` (Unix seconds).
    pub until: Option<u64>,
    /// A txid prefix (hex), an address the transaction pays (exact), or a
    /// piece of its memo.
    pub search: Option<String>,
}

/// A page of the history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPageRecords {
    pub rows: Vec<HistoryRecord>,
    /// Pass as `before` for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
    /// Rows matching the query, over all pages.
    pub total: u64,
}

/// What the History list draws of a row before its page is there (see
/// [`history_index`]). Flat, `Copy`: an index of 100,000 rows is two
/// allocations, not one per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryIndexRecord {
    pub time: u64,
    pub direction: Direction,
    pub state: TxState,
    /// Its effects: `HistoryIndexRecords::effects[first..first + count]`.
    pub first: u32,
    pub count: u32,
}

/// Every row of one query, newest first, compactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryIndexRecords {
    /// The assets the rows' effects name.
    pub assets: Vec<Hash32>,
    pub rows: Vec<HistoryIndexRecord>,
    /// `(asset, received - sent)` of every row in turn, each row's in the
    /// transaction's order of assets; the asset as its place in `assets`.
    pub effects: Vec<(u32, i128)>,
}

impl HistoryIndexRecords {
    /// The effects of one of its rows.
    pub fn effects_of(&self, row: &HistoryIndexRecord) -> &[(u32, i128)] {
        let from = row.first as usize;
        self.effects
            .get(from..from.saturating_add(row.count as usize))
            .unwrap_or(&[])
    }
}

/// A maintained balance of one asset (see `Wallet::balances` for what each
/// part means).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredBalance {
    pub asset: Hash32,
    pub confirmed: u128,
    pub pending: u128,
    pub pending_outgoing: u128,
    pub spendable: u128,
}

/// Parses a cursor made by [`HistoryRecord::cursor`].
pub fn parse_cursor(cursor: &str) -> Option<(i64, i64)> {
    let (t, s) = cursor.trim().split_once('.')?;
    Some((t.parse().ok()?, s.parse().ok()?))
}

/// The cursor that lists from the row of `cursor` on, that row included
/// (`None` if it is not a cursor): where a list's first page began, so that
/// a later page can be asked for by its position below it, however many
/// rows arrive above it meanwhile.
pub fn cursor_from(cursor: &str) -> Option<String> {
    let (time, seq) = parse_cursor(cursor)?;
    Some(format!("{time}.{}", seq.checked_add(1)?))
}

fn parse_u128(text: &str, what: &str) -> Result<u128, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} {text:?} is not a number")))
}

/// Whether any change is waiting for [`refresh`].
pub(super) fn is_dirty(conn: &Connection) -> Result<bool, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM history_dirty_tx) + (SELECT count(*) FROM history_dirty_asset)",
        [],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Brings the maintained tables up to date for everything marked dirty,
/// then clears the marks. Runs inside the write transaction.
pub(super) fn refresh(conn: &Connection) -> Result<(), StoreError> {
    if !is_dirty(conn)? {
        return Ok(());
    }
    let network = facts::network(conn)?;
    // Oldest first, so that rows listed in one write get `seq` in chain
    // order.
    let txids: Vec<Hash32> = {
        let mut stmt = conn.prepare_cached(
            "SELECT d.txid FROM history_dirty_tx d LEFT JOIN transactions t ON t.txid = d.txid
             ORDER BY t.block_height IS NULL, t.block_height, t.created_at, t.rowid",
        )?;
        stmt.query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    for txid in &txids {
        // Its state change moves the balances of the coins it made and used.
        conn.prepare_cached(
            "INSERT OR IGNORE INTO history_dirty_asset
             SELECT DISTINCT asset FROM outputs WHERE txid = ?1 OR spent_by = ?1 OR locked_by = ?1",
        )?
        .execute([txid])?;
        // The bytes an own send no longer needs go (and rows that hold
        // bytes have their facts read), then the row is computed from the
        // facts.
        facts::settle(conn, network, txid)?;
        refresh_tx(conn, txid)?;
    }
    let assets: Vec<Hash32> = {
        let mut stmt = conn.prepare_cached("SELECT asset FROM history_dirty_asset")?;
        stmt.query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    for asset in &assets {
        let b = match sum_balance(conn, asset)? {
            Some(b) => b,
            None => compute_balance(conn, asset)?,
        };
        conn.prepare_cached(
            "INSERT INTO wallet_balances (asset, confirmed, pending, pending_outgoing, spendable)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (asset) DO UPDATE SET confirmed = ?2, pending = ?3,
                 pending_outgoing = ?4, spendable = ?5",
        )?
        .execute(params![
            asset,
            b.confirmed.to_string(),
            b.pending.to_string(),
            b.pending_outgoing.to_string(),
            b.spendable.to_string()
        ])?;
    }
    conn.execute_batch("DELETE FROM history_dirty_tx; DELETE FROM history_dirty_asset;")?;
    Ok(())
}

/// What the history row of `txid` should hold, from the tables it is
/// derived from: the transaction, its facts, the wallet's outputs, the
/// headers (`None`: the wallet does not know it). The one definition, used
/// to maintain the rows and to check them.
pub(super) fn compute(
    conn: &Connection,
    txid: &Hash32,
) -> Result<Option<(HistoryRecord, Vec<String>)>, StoreError> {
    let Some(record) = ledger::transaction(conn, txid)? else {
        return Ok(None);
    };
    let mut effects: Vec<TxEffect> = Vec::new();
    let mut add = |asset: Hash32, received: u64, sent: u64| match effects
        .iter_mut()
        .find(|e| e.asset == asset)
    {
        Some(e) => {
            e.received += u128::from(received);
            e.sent += u128::from(sent);
        }
        None => effects.push(TxEffect {
            asset,
            received: u128::from(received),
            sent: u128::from(sent),
        }),
    };
    // What the transaction's bytes said, kept when it was applied: the
    // wallet's coins it spends (what it sent), the addresses it pays that
    // are not the wallet's, the fee of an own send.
    let kept = facts::read(conn, &record.txid)?;
    for op in &kept.spends {
        if let Some(coin) = ledger::output(conn, op)? {
            add(coin.asset, 0, coin.amount);
        }
    }
    let mut paid_ours: Vec<String> = Vec::new();
    for coin in inbox::outputs_of(conn, &record.txid)? {
        add(coin.asset, coin.amount, 0);
        if !paid_ours.contains(&coin.address) {
            paid_ours.push(coin.address);
        }
    }
    let counterparties = kept.counterparties;
    let fee = kept.fee;
    let spent_any = effects.iter().any(|e| e.sent > 0);
    let direction = match (spent_any, counterparties.is_empty()) {
        (false, _) => Direction::In,
        (true, false) => Direction::Out,
        (true, true) => Direction::SelfTransfer,
    };
    let seen = record.created_at.max(0) as u64;
    let time = match record.block {
        Some((height, _)) => chain::header(conn, height)?.map(|h| h.time).unwrap_or(seen),
        None => seen,
    };
    let mut addresses = paid_ours;
    for c in &counterparties {
        if !addresses.contains(c) {
            addresses.push(c.clone());
        }
    }
    Ok(Some((
        HistoryRecord {
            seq: 0,
            sort_time: 0,
            txid: record.txid,
            state: record.state,
            own: record.own,
            direction,
            block_height: record.block.map(|b| b.0),
            time,
            fee,
            effects,
            counterparties,
            memo: None,
            reason: record.reason,
        },
        addresses,
    )))
}

fn refresh_tx(conn: &Connection, txid: &Hash32) -> Result<(), StoreError> {
    let Some((row, addresses)) = compute(conn, txid)? else {
        conn.prepare_cached("DELETE FROM wallet_history WHERE txid = ?1")?
            .execute([txid])?;
        return Ok(());
    };
    let time = to_i64(row.time, "a time")?;
    let height = row
        .block_height
        .map(|h| to_i64(h, "a block height"))
        .transpose()?;
    let seq: i64 = conn
        .prepare_cached(
            "INSERT INTO wallet_history (txid, sort_time, time, state, own, direction,
                 block_height, fee, counterparties, memo, reason)
             VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (txid) DO UPDATE SET time = ?2, state = ?3, own = ?4, direction = ?5,
                 block_height = ?6, fee = ?7, counterparties = ?8, memo = ?9, reason = ?10
             RETURNING seq",
        )?
        .query_row(
            params![
                txid,
                time,
                row.state.as_str(),
                row.own,
                row.direction.as_str(),
                height,
                row.fee.map(amount_to_sql),
                row.counterparties.join("\n"),
                row.memo,
                row.reason,
            ],
            |r| r.get(0),
        )?;
    conn.prepare_cached("DELETE FROM wallet_tx_effects WHERE seq = ?1")?
        .execute([seq])?;
    for (pos, e) in row.effects.iter().enumerate() {
        let asset = intern_asset(conn, &e.asset)?;
        conn.prepare_cached(
            "INSERT INTO wallet_tx_effects (seq, asset, pos, received, sent)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            seq,
            asset,
            pos as i64,
            e.received.to_string(),
            e.sent.to_string()
        ])?;
    }
    conn.prepare_cached("DELETE FROM wallet_tx_addresses WHERE seq = ?1")?
        .execute([seq])?;
    for a in &addresses {
        let address = intern_address(conn, a)?;
        conn.prepare_cached(
            "INSERT OR IGNORE INTO wallet_tx_addresses (address, seq) VALUES (?1, ?2)",
        )?
        .execute(params![address, seq])?;
    }
    Ok(())
}

/// The small integer id the history tables know `asset` by (added on
/// first use; never removed).
fn intern_asset(conn: &Connection, asset: &Hash32) -> Result<i64, StoreError> {
    let known: Option<i64> = conn
        .prepare_cached("SELECT id FROM history_assets WHERE asset = ?1")?
        .query_row([asset], |r| r.get(0))
        .optional()?;
    if let Some(id) = known {
        return Ok(id);
    }
    conn.prepare_cached("INSERT INTO history_assets (asset) VALUES (?1)")?
        .execute([asset])?;
    Ok(conn.last_insert_rowid())
}

/// The small integer id the history tables know `address` by (added on
/// first use; never removed).
fn intern_address(conn: &Connection, address: &str) -> Result<i64, StoreError> {
    let known: Option<i64> = conn
        .prepare_cached("SELECT id FROM history_addresses WHERE address = ?1")?
        .query_row([address], |r| r.get(0))
        .optional()?;
    if let Some(id) = known {
        return Ok(id);
    }
    conn.prepare_cached("INSERT INTO history_addresses (address) VALUES (?1)")?
        .execute([address])?;
    Ok(conn.last_insert_rowid())
}

/// The `[lo, hi)` range of 32-byte txids whose hex starts with `prefix`
/// (`hi` `None`: no upper bound), or `None` if `prefix` is not 1 to 64 hex
/// digits. An odd length's last digit is the high half of a byte. Blobs
/// compare bytewise, and a shorter one first when it is a prefix of the
/// other, so `lo` and `hi` may be shorter than a txid.
pub(super) fn txid_range(prefix: &str) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    if prefix.is_empty() || prefix.len() > 64 {
        return None;
    }
    let digits: Vec<u8> = prefix
        .chars()
        .map(|c| c.to_digit(16).map(|d| d as u8))
        .collect::<Option<_>>()?;
    let pack = |digits: &[u8]| -> Vec<u8> {
        digits
            .chunks(2)
            .map(|pair| (pair[0] << 4) | pair.get(1).copied().unwrap_or(0))
            .collect()
    };
    let lo = pack(&digits);
    // The prefix plus one in its last digit, carried: the first txid past
    // every one it starts; none if the prefix is all `f`.
    let mut next = digits;
    while let Some(last) = next.pop() {
        if last < 15 {
            next.push(last + 1);
            return Some((lo, Some(pack(&next))));
        }
    }
    Some((lo, None))
}

/// [`compute_balance`] summed by SQLite, without reading each output:
/// `None` when SQL integers cannot hold it (an amount of 2^63 or more, or a
/// sum past `i64::MAX`), and the caller sums in Rust.
fn sum_balance(conn: &Connection, asset: &Hash32) -> Result<Option<StoredBalance>, StoreError> {
    let huge: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM outputs WHERE asset = ?1 AND amount < 0)")?
        .query_row([asset], |r| r.get(0))?;
    if huge {
        return Ok(None);
    }
    let sums = conn
        .prepare_cached(
            "SELECT coalesce(sum(CASE WHEN ib AND sp IS NULL THEN amount END), 0),
                    coalesce(sum(CASE WHEN ib AND sp = 0 THEN amount END), 0),
                    coalesce(sum(CASE WHEN NOT ib AND sp IS NULL THEN amount END), 0),
                    coalesce(sum(CASE WHEN NOT ib AND sp IS NULL AND own THEN amount END), 0)
             FROM (SELECT o.amount AS amount,
                          o.height IS NOT NULL AND c.state IN ('confirmed', 'final') AS ib,
                          c.own AS own,
                          CASE WHEN s.state IS NULL THEN NULL
                               WHEN s.state IN ('confirmed', 'final') THEN 1 ELSE 0 END AS sp
                   FROM outputs o JOIN transactions c ON c.txid = o.txid
                   LEFT JOIN transactions s ON s.txid = coalesce(o.spent_by, o.locked_by)
                   WHERE o.asset = ?1 AND c.state NOT IN ('rejected', 'dropped', 'abandoned')
                     AND (o.spent_by IS NULL OR s.state IS NULL
                          OR s.state NOT IN ('confirmed', 'final')))",
        )?
        .query_row([asset], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        });
    let (free, reserved, pending, pending_own) = match sums {
        Ok(sums) => sums,
        // "integer overflow": past i64::MAX.
        Err(rusqlite::Error::SqliteFailure(_, _)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let u = |v: i64| u128::from(v.max(0) as u64);
    Ok(Some(StoredBalance {
        asset: *asset,
        confirmed: u(free) + u(reserved),
        pending: u(pending),
        pending_outgoing: u(reserved),
        spendable: u(free) + u(pending_own),
    }))
}

/// The balance of `asset` from the outputs and the states of the
/// transactions that made and use them (the rule of `Wallet::balances`),
/// summed in Rust: the reference [`check`] compares the kept rows with.
pub(super) fn compute_balance(
    conn: &Connection,
    asset: &Hash32,
) -> Result<StoredBalance, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.amount, o.height IS NOT NULL AND c.state IN ('confirmed', 'final'), c.own,
                s.state
         FROM outputs o JOIN transactions c ON c.txid = o.txid
         LEFT JOIN transactions s ON s.txid = coalesce(o.spent_by, o.locked_by)
         WHERE o.asset = ?1 AND c.state NOT IN ('rejected', 'dropped', 'abandoned')
           AND (o.spent_by IS NULL OR s.state IS NULL OR s.state NOT IN ('confirmed', 'final'))",
    )?;
    let mut b = StoredBalance {
        asset: *asset,
        ..StoredBalance::default()
    };
    let mut rows = stmt.query([asset])?;
    while let Some(row) = rows.next()? {
        let amount = u128::from(amount_from_sql(row.get(0)?));
        let in_block: bool = row.get(1)?;
        let own: bool = row.get(2)?;
        let spender: Option<String> = row.get(3)?;
        let spender_in_block = match &spender {
            Some(s) => Some(s.parse::<TxState>()?.is_in_block()),
            None => None,
        };
        match (in_block, spender_in_block) {
            (true, None) => {
                b.confirmed += amount;
                b.spendable += amount;
            }
            (true, Some(false)) => {
                b.confirmed += amount;
                b.pending_outgoing += amount;
            }
            (true, Some(true)) => {}
            (false, None) => {
                b.pending += amount;
                if own {
                    b.spendable += amount;
                }
            }
            (false, Some(_)) => {}
        }
    }
    Ok(b)
}

const HISTORY_COLUMNS: &str = "h.seq, h.sort_time, h.txid, h.state, h.own, h.direction, \
     h.block_height, h.time, h.fee, h.counterparties, h.memo, h.reason";

type HistoryRow = (
    i64,
    i64,
    Hash32,
    String,
    bool,
    String,
    Option<i64>,
    i64,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
);

fn history_from_row(row: &Row<'_>) -> rusqlite::Result<HistoryRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
        row.get(11)?,
    ))
}

fn history_record(conn: &Connection, row: HistoryRow) -> Result<HistoryRecord, StoreError> {
    let (seq, sort_time, txid, state, own, direction, height, time, fee, cps, memo, reason) = row;
    let mut stmt = conn.prepare_cached(
        "SELECT a.asset, e.received, e.sent FROM wallet_tx_effects e
         JOIN history_assets a ON a.id = e.asset WHERE e.seq = ?1 ORDER BY e.pos",
    )?;
    let effects = stmt
        .query_map([seq], |r| {
            Ok((
                r.get::<_, Hash32>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .map(|r| {
            let (asset, received, sent) = r?;
            Ok(TxEffect {
                asset,
                received: parse_u128(&received, "a received amount")?,
                sent: parse_u128(&sent, "a sent amount")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(HistoryRecord {
        seq,
        sort_time,
        txid,
        state: state.parse()?,
        own,
        direction: Direction::parse(&direction)
            .ok_or_else(|| StoreError::Corrupt(format!("direction {direction:?}")))?,
        block_height: height.map(|h| to_u64(h, "a block height")).transpose()?,
        time: to_u64(time, "a time")?,
        fee: fee.map(amount_from_sql),
        effects,
        counterparties: if cps.is_empty() {
            Vec::new()
        } else {
            cps.split('\n').map(str::to_owned).collect()
        },
        memo,
        reason,
    })
}

/// The WHERE clause (without the cursor) and its values.
fn filter_sql(query: &HistoryQuery) -> Result<(String, Vec<Value>), StoreError> {
    let mut sql = String::from("1");
    let mut values: Vec<Value> = Vec::new();
    if let Some(asset) = &query.asset {
        values.push(Value::Blob(asset.to_vec()));
        let _ = write!(
            sql,
            " AND h.seq IN (SELECT f.seq FROM wallet_tx_effects f
                 WHERE f.asset = (SELECT a.id FROM history_assets a WHERE a.asset = ?{}))",
            values.len()
        );
    }
    if let Some(direction) = query.direction {
        values.push(Value::Text(direction.as_str().into()));
        let _ = write!(sql, " AND h.direction = ?{}", values.len());
    }
    match query.incoming {
        Some(true) => sql.push_str(" AND h.direction = 'in'"),
        Some(false) => sql.push_str(" AND h.direction IN ('out', 'self')"),
        None => {}
    }
    if !query.states.is_empty() {
        let mut marks = Vec::new();
        for state in &query.states {
            values.push(Value::Text(state.as_str().into()));
            marks.push(format!("?{}", values.len()));
        }
        let _ = write!(sql, " AND h.state IN ({})", marks.join(", "));
    }
    if let Some(since) = query.since {
        values.push(Value::Integer(to_i64(since, "a time")?));
        let _ = write!(sql, " AND h.time >= ?{}", values.len());
    }
    if let Some(until) = query.until {
        values.push(Value::Integer(to_i64(until, "a time")?));
        let _ = write!(sql, " AND h.time < ?{}", values.len());
    }
    if let Some(search) = query
        .search
        .as_ref()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        let lower = search.to_ascii_lowercase();
        values.push(Value::Text(lower.clone()));
        let exact = values.len();
        // A txid prefix: a range of the txid's index (nothing if it is not
        // hex).
        let by_txid = match txid_range(&lower) {
            Some((lo, hi)) => {
                values.push(Value::Blob(lo));
                let lo = values.len();
                match hi {
                    Some(hi) => {
                        values.push(Value::Blob(hi));
                        format!(
                            "SELECT t.seq FROM wallet_history t
                                 WHERE t.txid >= ?{lo} AND t.txid < ?{}
                             UNION ",
                            values.len()
                        )
                    }
                    None => format!(
                        "SELECT t.seq FROM wallet_history t WHERE t.txid >= ?{lo}
                         UNION "
                    ),
                }
            }
            None => String::new(),
        };
        let like: String = search
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        values.push(Value::Text(format!("%{like}%")));
        let memo = values.len();
        let _ = write!(
            sql,
            // Each part from an index (memo: only the rows that have one).
            " AND h.seq IN ({by_txid}
                 SELECT a.seq FROM wallet_tx_addresses a
                     WHERE a.address = (SELECT n.id FROM history_addresses n
                                        WHERE n.address = ?{exact})
                 UNION SELECT m.seq FROM wallet_history m
                     WHERE m.memo IS NOT NULL AND m.memo LIKE ?{memo} ESCAPE '\\')"
        );
    }
    Ok((sql, values))
}

/// Rows between two marks of [`Positions`] (fewer in tests, so that they
/// cross marks).
#[cfg(not(test))]
const POSITION_STRIDE: u64 = 100;
#[cfg(test)]
const POSITION_STRIDE: u64 = 4;

/// The cursor of every [`POSITION_STRIDE`]-th row of one query below one
/// cursor, and the query's total: a page `skip` rows down is read on from
/// the mark before it, not walked to with `OFFSET` (which costs a step per
/// skipped row: 20–40 ms at 70,000 rows, and a scroll-bar drag asks for
/// pages every frame). Made by one walk of the query's rows, kept until the
/// next write of the store; 16 bytes per mark.
#[derive(Debug)]
pub struct Positions {
    query: HistoryQuery,
    before: Option<(i64, i64)>,
    total: u64,
    /// `marks[j]`: the cursor of row `(j + 1) * POSITION_STRIDE - 1`, so
    /// that the rows after it begin at `(j + 1) * POSITION_STRIDE`.
    marks: Vec<(i64, i64)>,
}

fn history_total(conn: &Connection, query: &HistoryQuery) -> Result<u64, StoreError> {
    let (filter, values) = filter_sql(query)?;
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM wallet_history h WHERE {filter}"
        ))?
        .query_row(params_from_iter(values.iter()), |r| r.get(0))?;
    Ok(total.max(0) as u64)
}

/// `SELECT columns` of the query's rows after `before`, newest first, and
/// its values. The walk follows the (sort_time, seq) index and checks the
/// asset's set of transactions for each row (`+`: not the rowid), instead
/// of sorting all of that asset's rows; the count uses the asset's index.
fn walk_sql(
    columns: &str,
    query: &HistoryQuery,
    before: Option<(i64, i64)>,
) -> Result<(String, Vec<Value>), StoreError> {
    let (filter, mut values) = filter_sql(query)?;
    let filter = filter.replace("h.seq IN (SELECT f.seq", "+h.seq IN (SELECT f.seq");
    let mut sql = format!("SELECT {columns} FROM wallet_history h WHERE {filter}");
    if let Some((time, seq)) = before {
        values.push(Value::Integer(time));
        let t = values.len();
        values.push(Value::Integer(seq));
        let s = values.len();
        let _ = write!(sql, " AND (h.sort_time, h.seq) < (?{t}, ?{s})");
    }
    sql.push_str(" ORDER BY h.sort_time DESC, h.seq DESC");
    Ok((sql, values))
}

fn positions(
    conn: &Connection,
    query: &HistoryQuery,
    before: Option<(i64, i64)>,
) -> Result<Positions, StoreError> {
    let total = history_total(conn, query)?;
    let (sql, values) = walk_sql("h.sort_time, h.seq", query, before)?;
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(values.iter()))?;
    let mut marks = Vec::new();
    let mut n: u64 = 0;
    while let Some(row) = rows.next()? {
        n += 1;
        if n.is_multiple_of(POSITION_STRIDE) {
            marks.push((row.get(0)?, row.get(1)?));
        }
    }
    Ok(Positions {
        query: query.clone(),
        before,
        total,
        marks,
    })
}

/// [`history_page`] for a page `skip` rows below `before`, read on from
/// the nearest mark of the (kept, or now made) [`Positions`] above it.
pub(super) fn history_page_at(
    conn: &Connection,
    kept: &std::sync::Mutex<Option<Positions>>,
    query: &HistoryQuery,
    before: Option<(i64, i64)>,
    skip: u64,
    limit: usize,
) -> Result<HistoryPageRecords, StoreError> {
    if skip < POSITION_STRIDE {
        return history_page(conn, query, before, skip, limit);
    }
    let mut kept = kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let fresh = kept
        .as_ref()
        .is_some_and(|p| p.query == *query && p.before == before);
    if !fresh {
        *kept = Some(positions(conn, query, before)?);
    }
    let Some(positions) = kept.as_ref() else {
        return history_page(conn, query, before, skip, limit);
    };
    let mark = (skip / POSITION_STRIDE).min(positions.marks.len() as u64);
    let (from, rest) = match mark.checked_sub(1) {
        None => (before, skip),
        Some(j) => (
            positions.marks.get(j as usize).copied(),
            skip - mark * POSITION_STRIDE,
        ),
    };
    page_rows(conn, query, from, rest, limit, positions.total)
}

/// Every row of `query` after `before`, newest first, in the order and
/// at the positions of its pages (row `n` here is row `n` of
/// `history_page_at(query, before, n, …)`), with only what the list draws
/// while a page is on its way: one walk of the (sort_time, seq) index with
/// each row's effects beside it.
pub(super) fn history_index(
    conn: &Connection,
    query: &HistoryQuery,
    before: Option<(i64, i64)>,
) -> Result<HistoryIndexRecords, StoreError> {
    let (walk, values) = walk_sql(
        "h.seq, h.time, h.state, h.direction, h.sort_time",
        query,
        before,
    )?;
    // The walk's rows, then each one's effects in their order: the outer
    // ORDER BY only sorts the effects of one row (its prefix is the walk's
    // order, which the subquery's index gives).
    let sql = format!(
        "SELECT w.seq, w.time, w.state, w.direction, e.asset, e.received, e.sent
         FROM ({walk}) w LEFT JOIN wallet_tx_effects e ON e.seq = w.seq
         ORDER BY w.sort_time DESC, w.seq DESC, e.pos"
    );
    let mut slots: std::collections::HashMap<i64, u32> = std::collections::HashMap::new();
    let mut asset_ids: Vec<i64> = Vec::new();
    let mut rows: Vec<HistoryIndexRecord> = Vec::new();
    let mut effects: Vec<(u32, i128)> = Vec::new();
    let too_many = || StoreError::Corrupt("over 2^32 history effects".into());
    let mut last_seq = None;
    {
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut found = stmt.query(params_from_iter(values.iter()))?;
        while let Some(r) = found.next()? {
            let seq: i64 = r.get(0)?;
            if last_seq != Some(seq) {
                last_seq = Some(seq);
                let state: String = r.get(2)?;
                let direction: String = r.get(3)?;
                rows.push(HistoryIndexRecord {
                    time: to_u64(r.get(1)?, "a time")?,
                    direction: Direction::parse(&direction)
                        .ok_or_else(|| StoreError::Corrupt(format!("direction {direction:?}")))?,
                    state: state.parse()?,
                    first: u32::try_from(effects.len()).map_err(|_| too_many())?,
                    count: 0,
                });
            }
            let Some(asset) = r.get::<_, Option<i64>>(4)? else {
                continue;
            };
            let slot = match slots.get(&asset) {
                Some(slot) => *slot,
                None => {
                    let slot = u32::try_from(asset_ids.len()).map_err(|_| too_many())?;
                    asset_ids.push(asset);
                    slots.insert(asset, slot);
                    slot
                }
            };
            let received = parse_u128(&r.get::<_, String>(5)?, "a received amount")?;
            let sent = parse_u128(&r.get::<_, String>(6)?, "a sent amount")?;
            effects.push((slot, received as i128 - sent as i128));
            if let Some(row) = rows.last_mut() {
                row.count += 1;
            }
        }
    }
    rows.shrink_to_fit();
    effects.shrink_to_fit();
    let mut assets = Vec::with_capacity(asset_ids.len());
    let mut stmt = conn.prepare_cached("SELECT asset FROM history_assets WHERE id = ?1")?;
    for id in asset_ids {
        assets.push(stmt.query_row([id], |r| r.get::<_, Hash32>(0))?);
    }
    Ok(HistoryIndexRecords {
        assets,
        rows,
        effects,
    })
}

/// A page of at most `limit` rows (0: all) after `before` (a cursor from a
/// previous page) and `skip` more, newest first, with the total count of
/// the query.
pub(super) fn history_page(
    conn: &Connection,
    query: &HistoryQuery,
    before: Option<(i64, i64)>,
    skip: u64,
    limit: usize,
) -> Result<HistoryPageRecords, StoreError> {
    let total = history_total(conn, query)?;
    page_rows(conn, query, before, skip, limit, total)
}

fn page_rows(
    conn: &Connection,
    query: &HistoryQuery,
    before: Option<(i64, i64)>,
    skip: u64,
    limit: usize,
    total: u64,
) -> Result<HistoryPageRecords, StoreError> {
    let (mut sql, mut values) = walk_sql(HISTORY_COLUMNS, query, before)?;
    if limit > 0 || skip > 0 {
        // -1: no limit.
        values.push(Value::Integer(if limit > 0 {
            limit as i64 + 1
        } else {
            -1
        }));
        let _ = write!(sql, " LIMIT ?{}", values.len());
        values.push(Value::Integer(to_i64(skip, "a history offset")?));
        let _ = write!(sql, " OFFSET ?{}", values.len());
    }
    let raw: Vec<HistoryRow> = {
        let mut stmt = conn.prepare_cached(&sql)?;
        stmt.query_map(params_from_iter(values.iter()), history_from_row)?
            .collect::<Result<_, _>>()?
    };
    let more = limit > 0 && raw.len() > limit;
    let mut rows = raw
        .into_iter()
        .take(if limit > 0 { limit } else { usize::MAX })
        .map(|row| history_record(conn, row))
        .collect::<Result<Vec<_>, _>>()?;
    rows.shrink_to_fit();
    let next_cursor = if more {
        rows.last().map(HistoryRecord::cursor)
    } else {
        None
    };
    Ok(HistoryPageRecords {
        rows,
        next_cursor,
        total,
    })
}

/// One listed transaction, by id.
pub(super) fn history_record_of(
    conn: &Connection,
    txid: &Hash32,
) -> Result<Option<HistoryRecord>, StoreError> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {HISTORY_COLUMNS} FROM wallet_history h WHERE h.txid = ?1"
        ))?
        .query_row([txid], history_from_row)
        .optional()?;
    row.map(|r| history_record(conn, r)).transpose()
}

/// The maintained balances, by asset id.
pub(super) fn stored_balances(conn: &Connection) -> Result<Vec<StoredBalance>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT asset, confirmed, pending, pending_outgoing, spendable FROM wallet_balances
         ORDER BY asset",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Hash32>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    rows.map(|r| {
        let (asset, c, p, po, s) = r?;
        Ok(StoredBalance {
            asset,
            confirmed: parse_u128(&c, "a balance")?,
            pending: parse_u128(&p, "a balance")?,
            pending_outgoing: parse_u128(&po, "a balance")?,
            spendable: parse_u128(&s, "a balance")?,
        })
    })
    .collect()
}

/// Whether a transaction that has not failed made a coin of `asset` for
/// the wallet (an asset the balances list even when nothing of it is left).
pub(super) fn holds_asset(conn: &Connection, asset: &Hash32) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM outputs o JOIN transactions c ON c.txid = o.txid
                 WHERE o.asset = ?1 AND c.state NOT IN ('rejected', 'dropped', 'abandoned'))",
        )?
        .query_row([asset], |r| r.get(0))?)
}

/// Differences between the maintained tables and a full recomputation
/// from the tables they are derived from (empty: they agree). For tests
/// and diagnostics.
///
/// Independent of the maintained rows for what the wallet's outputs, the
/// transactions' states and the headers hold: each row's state, block,
/// time, what it received, and the balances. What only a transaction's
/// bytes said (its counterparties, the fee of an own send, which of the
/// wallet's coins it spends) is checked against the facts stored when it
/// was applied ([`facts`]): once the bytes are dropped nothing else holds
/// it to recompute from. Where the bytes are still kept (own unresolved
/// sends) the facts are read from them again and compared, and the kept
/// bytes themselves are checked against the rule of [`facts::keeps_raw`].
pub(super) fn check(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let network = facts::network(conn)?;
    let mut problems = Vec::new();
    let txids: Vec<Hash32> = {
        let mut stmt = conn.prepare("SELECT txid FROM transactions")?;
        stmt.query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    let listed: i64 = conn.query_row("SELECT count(*) FROM wallet_history", [], |r| r.get(0))?;
    if listed as usize != txids.len() {
        problems.push(format!(
            "{listed} rows listed for {} transactions",
            txids.len()
        ));
    }
    for txid in &txids {
        if let Some(record) = ledger::transaction(conn, txid)? {
            problems.extend(facts::check(conn, network, &record)?);
        }
        let Some((mut want, want_addresses)) = compute(conn, txid)? else {
            continue;
        };
        let Some(have) = history_record_of(conn, txid)? else {
            problems.push(format!("{} is not listed", hex(txid)));
            continue;
        };
        want.seq = have.seq;
        want.sort_time = have.sort_time;
        if want != have {
            problems.push(format!(
                "{}: listed {have:?}, recomputed {want:?}",
                hex(txid)
            ));
        }
        let mut have_addresses: Vec<String> = {
            let mut stmt = conn.prepare_cached(
                "SELECT n.address FROM wallet_tx_addresses a
                 JOIN history_addresses n ON n.id = a.address WHERE a.seq = ?1",
            )?;
            stmt.query_map([have.seq], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut want_addresses = want_addresses;
        have_addresses.sort();
        want_addresses.sort();
        want_addresses.dedup();
        if have_addresses != want_addresses {
            problems.push(format!(
                "{}: addresses {have_addresses:?}, recomputed {want_addresses:?}",
                hex(txid)
            ));
        }
    }
    let assets: Vec<Hash32> = {
        let mut stmt = conn.prepare("SELECT DISTINCT asset FROM outputs ORDER BY asset")?;
        stmt.query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    let stored = stored_balances(conn)?;
    for asset in &assets {
        let want = compute_balance(conn, asset)?;
        match stored.iter().find(|b| &b.asset == asset) {
            Some(have) if have == &want => {}
            have => problems.push(format!(
                "balance of {}: stored {have:?}, recomputed {want:?}",
                hex(asset)
            )),
        }
    }
    if is_dirty(conn)? {
        problems.push("changes are waiting to be applied".into());
    }
    Ok(problems)
}

/// Read methods of the history tables, for [`super::Store`] and
/// [`super::StoreTx`].
macro_rules! history_read_methods {
    () => {
        /// A page of the history: at most `limit` rows (0: all) after the
        /// cursor `before`, newest first, with the total count.
        pub fn history_page(
            &self,
            query: &history::HistoryQuery,
            before: Option<(i64, i64)>,
            limit: usize,
        ) -> Result<history::HistoryPageRecords, StoreError> {
            history::history_page(self.conn(), query, before, 0, limit)
        }

        /// Every row of the query after `before`, compactly (see
        /// [`history::history_index`]).
        pub fn history_index(
            &self,
            query: &history::HistoryQuery,
            before: Option<(i64, i64)>,
        ) -> Result<history::HistoryIndexRecords, StoreError> {
            history::history_index(self.conn(), query, before)
        }

        /// The listed row of one transaction.
        pub fn history_record(
            &self,
            txid: &Hash32,
        ) -> Result<Option<history::HistoryRecord>, StoreError> {
            history::history_record_of(self.conn(), txid)
        }

        /// The maintained balances per asset (assets the wallet ever held).
        pub fn stored_balances(&self) -> Result<Vec<history::StoredBalance>, StoreError> {
            history::stored_balances(self.conn())
        }

        /// Whether a live transaction made a coin of `asset` for the wallet.
        pub fn holds_asset(&self, asset: &Hash32) -> Result<bool, StoreError> {
            history::holds_asset(self.conn(), asset)
        }

        /// Where the maintained history and balances differ from a full
        /// recomputation (empty: nowhere). Counterparties, fees and the
        /// coins a transaction spends are checked against the facts kept
        /// when it was applied (see `history::check`).
        pub fn check_history(&self) -> Result<Vec<String>, StoreError> {
            history::check(self.conn())
        }
    };
}
pub(super) use history_read_methods;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use notch_protocol::{Address, AssetId, Network, PublicKey, Transaction, TxId};

    use super::*;
    use crate::keys::AddressChain;
    use crate::store::test_support::{file_wallet_with_address, wallet_with_address};
    use crate::store::{Header, NewAddress, NewOutput, NewTransaction, OutPoint, Store};

    const COIN: Hash32 = [0xC0; 32];
    const EURO: Hash32 = [0xE0; 32];

    fn id(n: u32) -> Hash32 {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&n.to_be_bytes());
        h[31] = 1;
        h
    }

    fn header(height: u64, fork: u8) -> Header {
        let mut hash = [fork; 32];
        hash[..8].copy_from_slice(&height.to_be_bytes());
        let mut prev_hash = [fork; 32];
        prev_hash[..8].copy_from_slice(&height.wrapping_sub(1).to_be_bytes());
        Header {
            height,
            hash,
            prev_hash,
            time: 1_000_000 + height * 10 + u64::from(fork),
            verified: true,
        }
    }

    /// A payment to "mine" of `amount` of `asset`, in a block at `height`
    /// (or in the pool).
    fn receive(store: &mut Store, txid: Hash32, asset: Hash32, amount: u64, height: Option<u64>) {
        store
            .write(|tx| {
                tx.insert_transaction(&NewTransaction {
                    txid,
                    state: if height.is_some() {
                        TxState::Confirmed
                    } else {
                        TxState::InPool
                    },
                    own: false,
                    raw: None,
                    block: height.map(|h| (h, header(h, 0).hash)),
                })?;
                tx.insert_output(&NewOutput {
                    outpoint: OutPoint { txid, vout: 0 },
                    asset,
                    amount,
                    address: "mine".into(),
                    height,
                })
            })
            .expect("receives");
    }

    fn all_pages(store: &Store, query: &HistoryQuery, limit: usize) -> Vec<HistoryRecord> {
        let mut out = Vec::new();
        let mut before = None;
        loop {
            let page = store.history_page(query, before, limit).expect("page");
            assert!(limit == 0 || page.rows.len() <= limit);
            out.extend(page.rows);
            match page.next_cursor {
                Some(c) => before = Some(parse_cursor(&c).expect("cursor")),
                None => return out,
            }
        }
    }

    /// The index of `q` has a row for each of `pages`' rows, in their
    /// order, each saying what the row says.
    fn assert_index_is_the_pages(store: &Store, q: &HistoryQuery, pages: &[HistoryRecord]) {
        let index = store.history_index(q, None).expect("index");
        assert_eq!(index.rows.len(), pages.len(), "{q:?}");
        for (i, (x, r)) in index.rows.iter().zip(pages).enumerate() {
            let effects: Vec<(Hash32, i128)> = index
                .effects_of(x)
                .iter()
                .map(|(slot, net)| (index.assets[*slot as usize], *net))
                .collect();
            let want: Vec<(Hash32, i128)> = r
                .effects
                .iter()
                .map(|e| (e.asset, e.received as i128 - e.sent as i128))
                .collect();
            assert_eq!(
                (x.time, x.direction, x.state, effects),
                (r.time, r.direction, r.state, want),
                "row {i} of {q:?}"
            );
        }
    }

    fn assert_consistent(store: &Store) {
        let problems = store.check_history().expect("checks");
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn pages_neither_skip_nor_repeat_while_new_rows_arrive() {
        let mut store = wallet_with_address();
        store
            .write(|tx| {
                for h in 1..=40 {
                    tx.append_header(&header(h, 0))?;
                }
                Ok(())
            })
            .expect("headers");
        for n in 0..100u32 {
            let asset = if n % 3 == 0 { EURO } else { COIN };
            receive(
                &mut store,
                id(n),
                asset,
                u64::from(n) + 1,
                Some(u64::from(n % 40) + 1),
            );
        }
        let first = store
            .history_page(&HistoryQuery::default(), None, 7)
            .expect("page");
        assert_eq!(first.total, 100);
        assert_eq!(first.rows.len(), 7);
        // Newest first.
        let order: Vec<(i64, i64)> = first.rows.iter().map(|r| (r.sort_time, r.seq)).collect();
        let mut sorted = order.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(order, sorted);

        // Page through while payments arrive and states change.
        let mut seen: Vec<Hash32> = first.rows.iter().map(|r| r.txid).collect();
        let mut before = first.next_cursor.map(|c| parse_cursor(&c).expect("cursor"));
        let mut n = 100u32;
        while let Some(cursor) = before {
            receive(&mut store, id(n), COIN, 5, None);
            n += 1;
            // An older payment leaves its block and comes back.
            store
                .write(|tx| {
                    tx.set_transaction_state(&id(n % 50), TxState::InPool, None, None)?;
                    tx.set_transaction_state(
                        &id(n % 50),
                        TxState::Confirmed,
                        Some((3, header(3, 0).hash)),
                        None,
                    )
                })
                .expect("moves");
            let page = store
                .history_page(&HistoryQuery::default(), Some(cursor), 7)
                .expect("page");
            seen.extend(page.rows.iter().map(|r| r.txid));
            before = page.next_cursor.map(|c| parse_cursor(&c).expect("cursor"));
        }
        let unique: HashSet<Hash32> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "no row twice");
        assert!((0..100).all(|n| unique.contains(&id(n))), "none missing");
        assert!(
            (100..n).all(|m| !unique.contains(&id(m))),
            "new rows come before the first page, not in the middle"
        );
        let top = store
            .history_page(&HistoryQuery::default(), None, 1)
            .expect("page");
        assert_eq!(top.total, u64::from(n));
        assert_eq!(top.rows[0].txid, id(n - 1), "the newest first");
        assert_eq!(
            all_pages(&store, &HistoryQuery::default(), 0).len(),
            n as usize
        );
        assert_consistent(&store);
    }

    #[test]
    fn filters_search_and_counts() {
        let mut store = wallet_with_address();
        store
            .write(|tx| {
                for h in 1..=10 {
                    tx.append_header(&header(h, 0))?;
                }
                Ok(())
            })
            .expect("headers");
        for n in 0..30u32 {
            let asset = if n % 3 == 0 { EURO } else { COIN };
            let height = (n < 20).then_some(u64::from(n % 10) + 1);
            receive(&mut store, id(n), asset, 10, height);
        }
        // An own send of 7 COIN of the coin of id(1) to someone else, with
        // change: decoded once, when it is recorded.
        let network = Network::Sandbox;
        let change_key = [0x42; 32];
        let change = Address::new(network, PublicKey(change_key)).encode();
        let other = Address::new(network, PublicKey([0x77; 32])).encode();
        store
            .write(|tx| {
                tx.insert_addresses(&[NewAddress {
                    chain: AddressChain::Change,
                    index: 0,
                    address: change.clone(),
                    public_key: change_key,
                }])
                .map(|_| ())
            })
            .expect("address");
        let mut send = Transaction::new(network);
        send.inputs.push(notch_protocol::OutPoint {
            txid: TxId(id(1)),
            index: 0,
        });
        send.outputs.push(notch_protocol::Output {
            asset: AssetId(COIN),
            amount: 7,
            owner: PublicKey([0x77; 32]),
        });
        send.outputs.push(notch_protocol::Output {
            asset: AssetId(COIN),
            amount: 2,
            owner: PublicKey(change_key),
        });
        send.fee = 1;
        // Decoding wants one signature per input (not checked here).
        send.signatures.push(notch_protocol::Signature([0x5A; 64]));
        let send_id = send.txid().0;
        store
            .write(|tx| {
                tx.insert_transaction(&NewTransaction {
                    txid: send_id,
                    state: TxState::Queued,
                    own: true,
                    raw: Some(send.encode()),
                    block: None,
                })?;
                tx.lock_outputs(
                    &send_id,
                    &[OutPoint {
                        txid: id(1),
                        vout: 0,
                    }],
                )?;
                tx.insert_output(&NewOutput {
                    outpoint: OutPoint {
                        txid: send_id,
                        vout: 1,
                    },
                    asset: COIN,
                    amount: 2,
                    address: change.clone(),
                    height: None,
                })
            })
            .expect("sends");
        let count = |q: HistoryQuery| {
            let page = store.history_page(&q, None, 4).expect("page");
            let all = all_pages(&store, &q, 4);
            assert_eq!(page.total as usize, all.len(), "{q:?}");
            assert_index_is_the_pages(&store, &q, &all);
            all
        };
        assert_eq!(count(HistoryQuery::default()).len(), 31);
        let euro = count(HistoryQuery {
            asset: Some(EURO),
            ..HistoryQuery::default()
        });
        assert_eq!(euro.len(), 10);
        assert!(
            euro.iter()
                .all(|r| r.effects.iter().any(|e| e.asset == EURO))
        );
        let out = count(HistoryQuery {
            direction: Some(Direction::Out),
            ..HistoryQuery::default()
        });
        assert_eq!(out.len(), 1);
        let row = &out[0];
        assert_eq!(row.txid, send_id);
        assert_eq!(row.fee, Some(1));
        assert_eq!(row.counterparties, vec![other.clone()]);
        assert_eq!(
            row.effects,
            vec![TxEffect {
                asset: COIN,
                received: 2,
                sent: 10
            }]
        );
        assert_eq!(
            count(HistoryQuery {
                direction: Some(Direction::In),
                ..HistoryQuery::default()
            })
            .len(),
            30
        );
        // `incoming`: in, or everything else (out and self).
        let not_in = count(HistoryQuery {
            incoming: Some(false),
            ..HistoryQuery::default()
        });
        assert_eq!(
            not_in.iter().map(|r| r.txid).collect::<Vec<_>>(),
            vec![send_id]
        );
        assert_eq!(
            count(HistoryQuery {
                incoming: Some(true),
                ..HistoryQuery::default()
            })
            .len(),
            30
        );
        let pending = count(HistoryQuery {
            states: vec![TxState::InPool, TxState::Queued],
            ..HistoryQuery::default()
        });
        assert_eq!(pending.len(), 11);
        let dated = count(HistoryQuery {
            since: Some(header(3, 0).time),
            until: Some(header(6, 0).time),
            ..HistoryQuery::default()
        });
        // Heights 3, 4, 5: two payments each.
        assert_eq!(dated.len(), 6);
        assert!(dated.iter().all(|r| matches!(r.block_height, Some(3..=5))));
        // Search: an address paid (someone else's, or the wallet's), a txid
        // prefix.
        let by_other = count(HistoryQuery {
            search: Some(other.to_uppercase()),
            ..HistoryQuery::default()
        });
        assert_eq!(by_other.len(), 1);
        assert_eq!(
            count(HistoryQuery {
                search: Some(change.clone()),
                ..HistoryQuery::default()
            })
            .len(),
            1
        );
        assert_eq!(
            count(HistoryQuery {
                search: Some("mine".into()),
                ..HistoryQuery::default()
            })
            .len(),
            30
        );
        let prefix = hex(&id(7))[..8].to_owned();
        let by_prefix = count(HistoryQuery {
            search: Some(prefix),
            ..HistoryQuery::default()
        });
        assert_eq!(by_prefix.len(), 1);
        assert_eq!(by_prefix[0].txid, id(7));
        assert!(
            count(HistoryQuery {
                search: Some("zz%".into()),
                ..HistoryQuery::default()
            })
            .is_empty()
        );
        // Combined.
        assert_eq!(
            count(HistoryQuery {
                asset: Some(COIN),
                states: vec![TxState::Confirmed],
                direction: Some(Direction::In),
                ..HistoryQuery::default()
            })
            .len(),
            13
        );
        // The balances follow: 200 COIN in blocks, 10 of them locked by the
        // send, 2 of change pending.
        let coin = store
            .stored_balances()
            .expect("balances")
            .into_iter()
            .find(|b| b.asset == COIN)
            .expect("coin");
        assert_eq!(coin.confirmed, 13 * 10);
        assert_eq!(coin.pending_outgoing, 10);
        assert_eq!(coin.pending, 7 * 10 + 2);
        assert_eq!(coin.spendable, 12 * 10 + 2);
        assert_consistent(&store);

        // The send goes through a block, is rolled back, and is abandoned.
        store
            .write(|tx| {
                tx.set_transaction_state(&send_id, TxState::InPool, None, None)?;
                tx.mark_spent(
                    &OutPoint {
                        txid: id(1),
                        vout: 0,
                    },
                    &send_id,
                )?;
                tx.set_transaction_state(
                    &send_id,
                    TxState::Confirmed,
                    Some((10, header(10, 0).hash)),
                    None,
                )?;
                tx.insert_output(&NewOutput {
                    outpoint: OutPoint {
                        txid: send_id,
                        vout: 1,
                    },
                    asset: COIN,
                    amount: 2,
                    address: change.clone(),
                    height: Some(10),
                })
            })
            .expect("confirms");
        assert_consistent(&store);
        let row = store
            .history_record(&send_id)
            .expect("reads")
            .expect("listed");
        assert_eq!(
            (row.state, row.block_height, row.time),
            (TxState::Confirmed, Some(10), header(10, 0).time)
        );
        store
            .write(|tx| {
                crate::lifecycle::roll_back(tx, 8)?;
                tx.roll_back_to(8).map(|_| ())
            })
            .expect("rolls back");
        assert_consistent(&store);
        let row = store
            .history_record(&send_id)
            .expect("reads")
            .expect("listed");
        assert_eq!(row.block_height, None);
        store
            .write(|tx| {
                tx.set_transaction_state(&send_id, TxState::Abandoned, None, Some("given up"))?;
                tx.release_coins(&send_id)
            })
            .expect("abandons");
        assert_consistent(&store);
        let row = store
            .history_record(&send_id)
            .expect("reads")
            .expect("listed");
        assert_eq!(row.state, TxState::Abandoned);
        assert_eq!(row.reason.as_deref(), Some("given up"));
    }

    #[test]
    fn a_reorg_keeps_the_tables_equal_to_a_recomputation() {
        let mut store = wallet_with_address();
        store
            .write(|tx| {
                for h in 1..=12 {
                    tx.append_header(&header(h, 0))?;
                }
                Ok(())
            })
            .expect("headers");
        for n in 0..24u32 {
            receive(&mut store, id(n), COIN, 100, Some(u64::from(n / 2) + 1));
        }
        let before: Vec<(Hash32, u64)> = all_pages(&store, &HistoryQuery::default(), 5)
            .iter()
            .map(|r| (r.txid, r.time))
            .collect();
        // Blocks above 6 are replaced by a fork with other times; half of
        // the rolled-back payments come back in it.
        store
            .write(|tx| {
                crate::lifecycle::roll_back(tx, 6)?;
                tx.roll_back_to(6)?;
                for h in 7..=14 {
                    let mut next = header(h, 9);
                    if h == 7 {
                        next.prev_hash = header(6, 0).hash;
                    }
                    tx.append_header(&next)?;
                }
                Ok(())
            })
            .expect("reorg");
        assert_consistent(&store);
        for n in (12..24u32).step_by(2) {
            let height = u64::from(n / 2) + 2;
            store
                .write(|tx| {
                    tx.set_transaction_state(
                        &id(n),
                        TxState::Confirmed,
                        Some((height, header(height, 9).hash)),
                        None,
                    )?;
                    receive_in(tx, id(n), COIN, 100, Some(height))
                })
                .expect("confirms again");
        }
        // In the same transaction, nothing else sees a half-applied change.
        let inside = store
            .write(|tx| {
                receive_in(tx, id(500), COIN, 1, Some(14))?;
                tx.check_history()
            })
            .expect("writes");
        assert!(inside.is_empty(), "{inside:#?}");
        assert_consistent(&store);
        let after = all_pages(&store, &HistoryQuery::default(), 5);
        assert_eq!(after.len(), 25);
        for n in (12..24u32).step_by(2) {
            let row = after.iter().find(|r| r.txid == id(n)).expect("listed");
            assert_eq!(row.time, header(u64::from(n / 2) + 2, 9).time);
            assert_eq!(row.state, TxState::Confirmed);
        }
        for n in (13..24u32).step_by(2) {
            let row = after.iter().find(|r| r.txid == id(n)).expect("listed");
            assert_eq!((row.state, row.block_height), (TxState::InPool, None));
        }
        // The order (by the time first listed) did not move.
        let order: Vec<Hash32> = after
            .iter()
            .map(|r| r.txid)
            .filter(|t| t != &id(500))
            .collect();
        assert_eq!(order, before.iter().map(|b| b.0).collect::<Vec<_>>());
        let coin = &store.stored_balances().expect("balances")[0];
        assert_eq!(coin.confirmed, 18 * 100 + 1);
        assert_eq!(coin.pending, 6 * 100);
    }

    fn receive_in(
        tx: &crate::store::StoreTx<'_>,
        txid: Hash32,
        asset: Hash32,
        amount: u64,
        height: Option<u64>,
    ) -> Result<(), StoreError> {
        tx.insert_transaction(&NewTransaction {
            txid,
            state: TxState::Confirmed,
            own: false,
            raw: None,
            block: height.map(|h| (h, header(h, 9).hash)),
        })?;
        tx.insert_output(&NewOutput {
            outpoint: OutPoint { txid, vout: 0 },
            asset,
            amount,
            address: "mine".into(),
            height,
        })?;
        // The refresh of the write has not run yet: run it here.
        refresh(tx.conn())
    }

    #[test]
    fn a_page_at_a_position_below_the_top_stays_put_as_rows_arrive() {
        let mut store = wallet_with_address();
        store
            .write(|tx| {
                for h in 1..=5 {
                    tx.append_header(&header(h, 0))?;
                }
                Ok(())
            })
            .expect("headers");
        for n in 0..23u32 {
            receive(&mut store, id(n), COIN, 100, Some(u64::from(n % 5) + 1));
        }
        let q = HistoryQuery::default();
        let all = all_pages(&store, &q, 0);
        assert_eq!(all.len(), 23);
        let top = cursor_from(&all[0].cursor()).expect("cursor");
        let at = |store: &Store, skip: u64, limit: usize| {
            store
                .history_page_skip(&q, parse_cursor(&top), skip, limit)
                .expect("page")
        };
        for skip in [0u64, 1, 7, 20, 22, 23, 40] {
            let page = at(&store, skip, 5);
            let want: Vec<Hash32> = all
                .iter()
                .skip(skip as usize)
                .take(5)
                .map(|r| r.txid)
                .collect();
            assert_eq!(page.rows.iter().map(|r| r.txid).collect::<Vec<_>>(), want);
            assert_eq!(page.total, 23);
            assert_eq!(page.next_cursor.is_some(), skip + 5 < 23, "{skip}");
        }
        // Without a limit: all after the skipped ones.
        assert_eq!(at(&store, 20, 0).rows.len(), 3);
        // The index from the top counts the same positions, also below a
        // cursor that is not the first row's.
        let index = store.history_index(&q, parse_cursor(&top)).expect("index");
        assert_eq!(index.rows.len(), 23);
        let below = cursor_from(&all[4].cursor()).expect("cursor");
        let index = store
            .history_index(&q, parse_cursor(&below))
            .expect("index");
        assert_eq!(index.rows.len(), 19);
        assert_eq!(
            (index.rows[0].time, index.rows[0].state),
            (all[4].time, all[4].state)
        );
        // New rows come in above the top: the positions below it hold.
        receive(&mut store, id(100), COIN, 1, None);
        receive(&mut store, id(101), COIN, 1, Some(5));
        let page = at(&store, 7, 5);
        assert_eq!(page.rows[0].txid, all[7].txid);
        let newest: HashSet<Hash32> = store
            .history_page(&q, None, 2)
            .expect("page")
            .rows
            .iter()
            .map(|r| r.txid)
            .collect();
        assert_eq!(newest, HashSet::from([id(100), id(101)]));
        // A row that lands below the top (an older block) moves those after
        // it down one: a jump reads the positions as they are now, not as
        // its marks were before the write.
        assert_eq!(at(&store, 20, 0).rows.len(), 3);
        receive(&mut store, id(102), COIN, 1, Some(1));
        let now = all_pages(&store, &q, 0);
        let below: Vec<Hash32> = now
            .iter()
            .skip_while(|r| r.txid != all[0].txid)
            .map(|r| r.txid)
            .collect();
        assert_eq!(below.len(), 24);
        for skip in [4u64, 7, 8, 13, 20, 23, 24] {
            let page = at(&store, skip, 5);
            let want: Vec<Hash32> = below.iter().skip(skip as usize).take(5).copied().collect();
            assert_eq!(
                page.rows.iter().map(|r| r.txid).collect::<Vec<_>>(),
                want,
                "{skip}"
            );
            assert_eq!(page.total, 26, "{skip}");
        }
        assert_eq!(cursor_from("nonsense"), None);
    }

    #[test]
    fn balances_past_sql_integers_are_summed_exactly() {
        let mut store = wallet_with_address();
        store
            .write(|tx| tx.append_header(&header(1, 0)))
            .expect("header");
        // Past i64::MAX together, each below it: SQLite's sum overflows.
        let big = (i64::MAX as u64) / 2 + 10;
        receive(&mut store, id(1), COIN, big, Some(1));
        receive(&mut store, id(2), COIN, big, Some(1));
        // 2^63 and more reads negative in SQL.
        receive(&mut store, id(3), EURO, u64::MAX, Some(1));
        receive(&mut store, id(4), EURO, u64::MAX, None);
        let b = store.stored_balances().expect("balances");
        let coin = b.iter().find(|b| b.asset == COIN).expect("coin");
        assert_eq!(coin.confirmed, 2 * u128::from(big));
        let euro = b.iter().find(|b| b.asset == EURO).expect("euro");
        assert_eq!(
            (euro.confirmed, euro.pending),
            (u128::from(u64::MAX), u128::from(u64::MAX))
        );
        assert_consistent(&store);
    }

    #[test]
    fn the_migration_backfills_what_an_older_wallet_holds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wallet.sqlite");
        {
            let conn = crate::store::migrations::file_at_schema(&path, 6);
            conn.execute_batch(
                "INSERT INTO wallet (id, wallet_id, network, gateway_url, account, created_at)
                     VALUES (1, 'w', 'sandbox', 'http://127.0.0.1:1', 0, 0);
                 INSERT INTO addresses (chain, idx, address, public_key, used)
                     VALUES (0, 0, 'mine', zeroblob(32), 1);
                 INSERT INTO headers (height, hash, prev_hash, time, verified)
                     VALUES (1, randomblob(32), zeroblob(32), 777, 1);
                 INSERT INTO transactions (txid, state, own, block_height, block_hash, created_at, updated_at)
                     VALUES (zeroblob(32), 'confirmed', 0, 1, zeroblob(32), 5, 5);
                 INSERT INTO outputs (txid, vout, asset, amount, address, height)
                     VALUES (zeroblob(32), 0, zeroblob(32), 42, 'mine', 1);
                 INSERT INTO transactions (txid, state, own, created_at, updated_at)
                     VALUES (randomblob(32), 'in_pool', 0, 9, 9);
                 INSERT INTO outputs (txid, vout, asset, amount, address)
                     SELECT txid, 0, zeroblob(32), 8, 'mine' FROM transactions WHERE state = 'in_pool';",
            )
            .expect("old rows");
        }
        let store = Store::open(&path).expect("migrates");
        assert_eq!(
            store.schema_version().expect("version"),
            crate::store::SCHEMA_VERSION
        );
        assert_consistent(&store);
        let page = store
            .history_page(&HistoryQuery::default(), None, 10)
            .expect("page");
        assert_eq!(page.total, 2);
        assert_eq!(page.rows[0].time, 777, "block time, the newer");
        assert_eq!(page.rows[0].effects[0].received, 42);
        assert_eq!(page.rows[1].time, 9, "first seen");
        let b = &store.stored_balances().expect("balances")[0];
        assert_eq!((b.confirmed, b.pending, b.spendable), (42, 8, 42));
    }

    #[test]
    fn migration_11_keeps_every_row_its_place_keyed_by_seq() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wallet.sqlite");
        let (a, b, c) = (id(1), id(2), [0xAB; 32]);
        {
            // A wallet of schema 10, with its history as that schema kept
            // it: keyed by txid, with the txid's hex, and a row deleted
            // after seq 9 (AUTOINCREMENT must not hand 10 out again).
            let conn = crate::store::migrations::file_at_schema(&path, 10);
            conn.execute_batch(
                "INSERT INTO wallet (id, wallet_id, network, gateway_url, account, created_at)
                     VALUES (1, 'w', 'sandbox', 'http://127.0.0.1:1', 0, 0);
                 INSERT INTO addresses (chain, idx, address, public_key, used)
                     VALUES (0, 0, 'mine', zeroblob(32), 1);
                 INSERT INTO headers (height, hash, prev_hash, time, verified)
                     VALUES (1, randomblob(32), zeroblob(32), 777, 1);",
            )
            .expect("wallet");
            let tx = |txid: &Hash32, state: &str, own: bool, block: bool, seen: i64| {
                conn.execute(
                    "INSERT INTO transactions (txid, state, own, block_height, block_hash,
                         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                    params![
                        txid,
                        state,
                        own,
                        block.then_some(1),
                        block.then_some([7u8; 32]),
                        seen
                    ],
                )
                .expect("transaction");
            };
            // A: 42 COIN in, in block 1; B: 8 EURO in, in the pool; C: an
            // own send of A's coin to "other", final, fee 1.
            tx(&a, "final", false, true, 5);
            tx(&b, "in_pool", false, false, 9);
            tx(&c, "final", true, true, 6);
            conn.execute(
                "INSERT INTO outputs (txid, vout, asset, amount, address, height, spent_by)
                 VALUES (?1, 0, ?2, 42, 'mine', 1, ?3)",
                params![a, COIN, c],
            )
            .expect("output");
            conn.execute(
                "INSERT INTO outputs (txid, vout, asset, amount, address)
                 VALUES (?1, 0, ?2, 8, 'mine')",
                params![b, EURO],
            )
            .expect("output");
            conn.execute(
                "INSERT INTO tx_facts (txid, fee, counterparties) VALUES (?1, 1, 'other')",
                [c],
            )
            .expect("facts");
            conn.execute(
                "INSERT INTO tx_spends (txid, input, coin_txid, coin_vout) VALUES (?1, 0, ?2, 0)",
                params![c, a],
            )
            .expect("spends");
            let row =
                |seq: i64, txid: &Hash32, sort: i64, time: i64, state: &str, dir: &str| {
                    let own = dir == "out";
                    let height = (state != "in_pool").then_some(1);
                    let (fee, cps) = if own { (Some(1), "other") } else { (None, "") };
                    conn.execute(
                    "INSERT INTO wallet_history (seq, txid, txid_hex, sort_time, time, state, own,
                         direction, block_height, fee, counterparties)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![seq, txid, hex(txid), sort, time, state, own, dir, height, fee, cps],
                )
                .expect("history row");
                };
            row(3, &a, 100, 777, "final", "in");
            row(5, &c, 200, 777, "final", "out");
            row(7, &b, 300, 9, "in_pool", "in");
            conn.execute_batch(
                "UPDATE sqlite_sequence SET seq = 10 WHERE name = 'wallet_history';",
            )
            .expect("sequence");
            let effect = |txid: &Hash32, asset: &Hash32, received: &str, sent: &str| {
                conn.execute(
                    "INSERT INTO wallet_tx_effects (txid, asset, pos, received, sent)
                     VALUES (?1, ?2, 0, ?3, ?4)",
                    params![txid, asset, received, sent],
                )
                .expect("effect");
            };
            effect(&a, &COIN, "42", "0");
            effect(&b, &EURO, "8", "0");
            effect(&c, &COIN, "0", "42");
            for (address, txid) in [("mine", &a), ("mine", &b), ("other", &c)] {
                conn.execute(
                    "INSERT INTO wallet_tx_addresses (address, txid) VALUES (?1, ?2)",
                    params![address, txid],
                )
                .expect("address row");
            }
            conn.execute(
                "INSERT INTO notifications (kind, title, body, txid, created_at)
                 VALUES ('payment_received', 'You received 42', 'b', ?1, 5)",
                [a],
            )
            .expect("notification");
            // The triggers marked what the rows above were written for:
            // the transactions' marks go, as a schema-10 write would have
            // cleared them (the rows must come through the migration, not
            // a refresh), the assets' stay (their balances are recomputed
            // when the store opens).
            conn.execute_batch("DELETE FROM history_dirty_tx;")
                .expect("marks");
        }
        let mut store = Store::open(&path).expect("migrates");
        assert_eq!(
            store.schema_version().expect("version"),
            crate::store::SCHEMA_VERSION
        );
        assert_consistent(&store);
        let all = all_pages(&store, &HistoryQuery::default(), 2);
        assert_eq!(
            all.iter()
                .map(|r| (r.txid, r.seq, r.sort_time))
                .collect::<Vec<_>>(),
            vec![(b, 7, 300), (c, 5, 200), (a, 3, 100)],
            "seq and sort_time as they were"
        );
        assert_eq!(
            all[1].effects,
            vec![TxEffect {
                asset: COIN,
                received: 0,
                sent: 42
            }]
        );
        assert_eq!(all[1].counterparties, vec!["other".to_owned()]);
        assert_eq!(all[2].effects[0].received, 42);
        let found = |store: &Store, q: HistoryQuery| -> Vec<Hash32> {
            all_pages(store, &q, 0).iter().map(|r| r.txid).collect()
        };
        let search = |s: &str| HistoryQuery {
            search: Some(s.into()),
            ..HistoryQuery::default()
        };
        assert_eq!(found(&store, search("other")), vec![c]);
        assert_eq!(found(&store, search("mine")), vec![b, a]);
        assert_eq!(found(&store, search(&hex(&c)[..5])), vec![c]);
        assert_eq!(found(&store, search(&hex(&b))), vec![b]);
        let euro = HistoryQuery {
            asset: Some(EURO),
            ..HistoryQuery::default()
        };
        assert_eq!(found(&store, euro), vec![b]);
        assert_eq!(store.notifications(false, 10).expect("inbox").len(), 1);
        // The old column and its index are gone, and the file was
        // compacted once.
        let schema: String = store
            .conn()
            .query_row(
                "SELECT group_concat(sql, ';') FROM sqlite_schema WHERE sql IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert!(!schema.contains("txid_hex"), "{schema}");
        let free: i64 = store
            .conn()
            .pragma_query_value(None, "freelist_count", |r| r.get(0))
            .expect("freelist");
        assert_eq!(free, 0, "VACUUMed");
        // A new row comes after every seq ever handed out.
        receive(&mut store, id(9), EURO, 5, None);
        let new = store
            .history_record(&id(9))
            .expect("reads")
            .expect("listed");
        assert_eq!(new.seq, 11);
        assert_eq!(found(&store, search("mine")), vec![id(9), b, a]);
        assert_consistent(&store);
    }

    #[test]
    fn a_txid_prefix_is_a_range_of_txids() {
        let range = |p: &str| txid_range(p);
        assert_eq!(range("ab"), Some((vec![0xAB], Some(vec![0xAC]))));
        assert_eq!(
            range("abc"),
            Some((vec![0xAB, 0xC0], Some(vec![0xAB, 0xD0])))
        );
        assert_eq!(range("abf"), Some((vec![0xAB, 0xF0], Some(vec![0xAC]))));
        assert_eq!(range("a"), Some((vec![0xA0], Some(vec![0xB0]))));
        assert_eq!(range("f"), Some((vec![0xF0], None)));
        assert_eq!(range("ff"), Some((vec![0xFF], None)));
        assert_eq!(range("0"), Some((vec![0x00], Some(vec![0x10]))));
        assert_eq!(range("1ff"), Some((vec![0x1F, 0xF0], Some(vec![0x20]))));
        let full = "ab".repeat(32);
        assert_eq!(range(&full).map(|r| r.0), Some(vec![0xAB; 32]));
        assert_eq!(range(&format!("{full}0")), None, "longer than a txid");
        for bad in ["", "xyz", "ab ", "0x12", "é", "+1", "%"] {
            assert_eq!(range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn search_by_txid_prefix_of_any_length() {
        let mut store = wallet_with_address();
        store
            .write(|tx| tx.append_header(&header(1, 0)))
            .expect("header");
        // Txids that share their first digits, and the edges of a range.
        let ids: Vec<Hash32> = [
            [0xAB, 0xC0],
            [0xAB, 0xCF],
            [0xAB, 0xD0],
            [0xAC, 0x00],
            [0xFF, 0xFF],
            [0x00, 0x00],
        ]
        .iter()
        .map(|head| {
            let mut t = [0x11; 32];
            t[..2].copy_from_slice(head);
            t
        })
        .collect();
        for t in &ids {
            receive(&mut store, *t, COIN, 1, Some(1));
        }
        let found = |s: &str| -> HashSet<Hash32> {
            let q = HistoryQuery {
                search: Some(s.into()),
                ..HistoryQuery::default()
            };
            let page = store.history_page(&q, None, 0).expect("page");
            assert_eq!(page.total as usize, page.rows.len(), "{s}");
            page.rows.iter().map(|r| r.txid).collect()
        };
        let set = |of: &[usize]| of.iter().map(|&i| ids[i]).collect::<HashSet<_>>();
        assert_eq!(found("ab"), set(&[0, 1, 2]));
        assert_eq!(found("AB"), set(&[0, 1, 2]), "upper case");
        assert_eq!(found(" abc "), set(&[0, 1]), "odd length, trimmed");
        assert_eq!(found("abcf"), set(&[1]));
        assert_eq!(found("abd"), set(&[2]));
        assert_eq!(found("a"), set(&[0, 1, 2, 3]));
        assert_eq!(found("f"), set(&[4]), "no upper bound");
        assert_eq!(found("ffff11"), set(&[4]));
        assert_eq!(found("0"), set(&[5]));
        assert_eq!(found(&hex(&ids[3])), set(&[3]), "a whole txid");
        assert_eq!(found(&format!("{}0", hex(&ids[3]))), set(&[]), "too long");
        assert_eq!(found("abx"), set(&[]), "not hex");
        assert_eq!(found("0xab"), set(&[]));
        // Not hex, but the wallet's address: found by the address.
        assert_eq!(found("mine").len(), ids.len());
        assert_consistent(&store);
    }

    #[test]
    fn the_index_reads_on_a_connection_of_its_own() {
        assert!(wallet_with_address().reader().expect("reader").is_none());
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = file_wallet_with_address(&dir.path().join("w.sqlite"));
        store
            .write(|tx| {
                for h in 1..=3 {
                    tx.append_header(&header(h, 0))?;
                }
                Ok(())
            })
            .expect("headers");
        for n in 0..9u32 {
            let asset = if n % 3 == 0 { EURO } else { COIN };
            receive(
                &mut store,
                id(n),
                asset,
                10 + u64::from(n),
                Some(u64::from(n % 3) + 1),
            );
        }
        let q = HistoryQuery::default();
        let mut reader = store.reader().expect("reader").expect("a file has one");
        let by_reader = reader.history_index(&q, None).expect("index");
        assert_eq!(by_reader, store.history_index(&q, None).expect("index"));
        assert_eq!(by_reader.rows.len(), 9);
        // It sees what is committed after it was opened, and writes go on
        // while it is open.
        receive(&mut store, id(50), COIN, 1, None);
        assert_eq!(
            reader.history_index(&q, None).expect("index").rows.len(),
            10
        );
        // It cannot write.
        assert!(
            reader
                .conn
                .execute("DELETE FROM wallet_history", [])
                .is_err()
        );
    }

    /// Not an assertion: how long a page takes on a wallet of 20,000
    /// transactions in a real file.
    /// `cargo test -p notch-core --release --lib history_of_20000 -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn history_of_20000_transactions_timing() {
        use std::time::Instant;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = file_wallet_with_address(&dir.path().join("w.sqlite"));
        const N: u32 = 20_000;
        const PER_BLOCK: u32 = 40;
        let started = Instant::now();
        for block in 0..N / PER_BLOCK {
            let height = u64::from(block) + 1;
            store
                .write(|tx| {
                    tx.append_header(&header(height, 0))?;
                    for i in 0..PER_BLOCK {
                        let n = block * PER_BLOCK + i;
                        tx.insert_transaction(&NewTransaction {
                            txid: id(n),
                            state: TxState::Confirmed,
                            own: false,
                            raw: None,
                            block: Some((height, header(height, 0).hash)),
                        })?;
                        tx.insert_output(&NewOutput {
                            outpoint: OutPoint {
                                txid: id(n),
                                vout: 0,
                            },
                            asset: if n.is_multiple_of(5) { EURO } else { COIN },
                            amount: 1000,
                            address: "mine".into(),
                            height: Some(height),
                        })?;
                    }
                    Ok(())
                })
                .expect("block");
        }
        println!(
            "built {N} transactions in {} blocks: {:?}",
            N / PER_BLOCK,
            started.elapsed()
        );
        let q = HistoryQuery::default();
        let time = |label: &str, f: &dyn Fn() -> HistoryPageRecords| {
            let t = Instant::now();
            let page = f();
            let first = t.elapsed();
            let t = Instant::now();
            for _ in 0..20 {
                f();
            }
            println!(
                "{label}: {} rows of {}, first call {first:?}, then {:?} each",
                page.rows.len(),
                page.total,
                t.elapsed() / 20
            );
            page
        };
        let t = Instant::now();
        let index = store.history_index(&q, None).expect("index");
        println!("index of all {} rows: {:?}", index.rows.len(), t.elapsed());
        let first = time("first page (50)", &|| {
            store.history_page(&q, None, 50).expect("page")
        });
        assert_eq!(first.total, u64::from(N));
        // A cursor 19,000 rows deep.
        let deep_row = store.history_page(&q, None, 19_000).expect("page");
        let deep = parse_cursor(&deep_row.rows.last().expect("row").cursor()).expect("cursor");
        time("page 19,000 rows deep (50)", &|| {
            store.history_page(&q, Some(deep), 50).expect("page")
        });
        let euro = HistoryQuery {
            asset: Some(EURO),
            ..HistoryQuery::default()
        };
        time("first EURO page (50)", &|| {
            store.history_page(&euro, None, 50).expect("page")
        });
        let search = HistoryQuery {
            search: Some(hex(&id(12_345))[..10].to_owned()),
            ..HistoryQuery::default()
        };
        time("txid prefix search", &|| {
            store.history_page(&search, None, 50).expect("page")
        });
        let t = Instant::now();
        store
            .write(|tx| {
                tx.append_header(&header(u64::from(N / PER_BLOCK) + 1, 0))?;
                receive_in(tx, id(N + 1), COIN, 1, None).map(|_| ())
            })
            .ok();
        println!(
            "one more payment (write + refresh, incl. COIN balance over {} outputs): {:?}",
            N * 4 / 5,
            t.elapsed()
        );
        let t = Instant::now();
        let problems = store.check_history().expect("checks");
        println!(
            "full recomputation check: {:?} ({} problems)",
            t.elapsed(),
            problems.len()
        );
    }
}
