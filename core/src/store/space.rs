//! How the wallet file's space is used: bytes per table and index (SQLite's
//! `dbstat` virtual table, compiled into the bundled SQLite), free pages,
//! and what the transaction bytes still kept take. For size reports
//! (`notch-wallet-size-bench`) and diagnostics.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{Store, StoreError};

/// The space of one table or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpace {
    /// The table or index (`sqlite_autoindex_…` for a primary key or
    /// UNIQUE constraint's index, `sqlite_schema` for the schema itself).
    pub name: String,
    /// The table it belongs to (its own name for a table).
    pub table: String,
    /// `table` or `index`.
    pub kind: String,
    /// Bytes of the pages it takes in the file.
    pub bytes: u64,
    /// Bytes of the records in them (the rest is page headers and unused
    /// space).
    pub payload: u64,
}

/// How the space of the wallet file is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceReport {
    pub page_size: u64,
    /// Pages in the file (free ones included).
    pub pages: u64,
    /// Pages no object uses (SQLite reuses them before it grows the file;
    /// `VACUUM` gives them back).
    pub free_pages: u64,
    /// Every table and index, largest first.
    pub objects: Vec<ObjectSpace>,
    /// Transactions whose bytes are kept (`transactions.raw`), and the sum
    /// of those bytes.
    pub kept_txs: u64,
    pub kept_tx_bytes: u64,
}

impl SpaceReport {
    /// The size of the database (the main file once checkpointed).
    pub fn file_bytes(&self) -> u64 {
        self.page_size * self.pages
    }
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn report(conn: &Connection) -> Result<SpaceReport, StoreError> {
    let pragma = |name: &str| -> Result<u64, StoreError> {
        Ok(count(conn.pragma_query_value(None, name, |r| r.get(0))?))
    };
    let page_size = pragma("page_size")?;
    let pages = pragma("page_count")?;
    let free_pages = pragma("freelist_count")?;
    let mut stmt = conn.prepare(
        "SELECT d.name, coalesce(s.tbl_name, d.name), coalesce(s.type, 'table'),
                sum(d.pgsize), sum(d.payload)
         FROM dbstat d LEFT JOIN sqlite_schema s ON s.name = d.name
         GROUP BY d.name ORDER BY 4 DESC, 1",
    )?;
    let objects = stmt
        .query_map([], |r| {
            Ok(ObjectSpace {
                name: r.get(0)?,
                table: r.get(1)?,
                kind: r.get(2)?,
                bytes: count(r.get(3)?),
                payload: count(r.get(4)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    let (kept_txs, kept_tx_bytes): (i64, i64) = conn.query_row(
        "SELECT count(raw), coalesce(sum(length(raw)), 0) FROM transactions",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(SpaceReport {
        page_size,
        pages,
        free_pages,
        objects,
        kept_txs: count(kept_txs),
        kept_tx_bytes: count(kept_tx_bytes),
    })
}

impl Store {
    /// How the wallet file's space is used (reads every page: seconds on a
    /// large wallet).
    pub fn space_report(&self) -> Result<SpaceReport, StoreError> {
        report(self.conn())
    }
}

/// [`Store::space_report`] of the wallet file at `path`, opened read-only:
/// nothing is migrated or written, so a file of an older schema is
/// reported as it is.
pub fn space_report_of_file(path: &Path) -> Result<SpaceReport, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    report(&conn)
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::wallet_with_address;

    #[test]
    fn every_table_and_index_is_reported_with_its_table() {
        let store = wallet_with_address();
        let report = store.space_report().expect("dbstat is compiled in");
        assert!(report.pages > 0 && report.page_size > 0);
        let find = |name: &str| {
            report
                .objects
                .iter()
                .find(|o| o.name == name)
                .unwrap_or_else(|| panic!("{name} missing: {report:#?}"))
        };
        assert_eq!(find("transactions").kind, "table");
        let index = find("wallet_history_order");
        assert_eq!(
            (index.kind.as_str(), index.table.as_str()),
            ("index", "wallet_history")
        );
        assert_eq!(find("sqlite_schema").table, "sqlite_schema");
        let total: u64 = report.objects.iter().map(|o| o.bytes).sum();
        assert_eq!(
            total + report.free_pages * report.page_size,
            report.file_bytes()
        );
        assert_eq!((report.kept_txs, report.kept_tx_bytes), (0, 0));
    }
}
