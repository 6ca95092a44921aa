//! The header chain the wallet follows.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Hash32, StoreError, StoreTx, to_i64, to_u64};

/// A block header as the wallet keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub height: u64,
    pub hash: Hash32,
    pub prev_hash: Hash32,
    /// Block time, Unix seconds.
    pub time: u64,
    /// Whether its links and the authority's signature were checked.
    pub verified: bool,
}

const COLUMNS: &str = "height, hash, prev_hash, time, verified";

fn from_row(row: &Row<'_>) -> rusqlite::Result<(i64, Hash32, Hash32, i64, bool)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn header_from(
    (height, hash, prev_hash, time, verified): (i64, Hash32, Hash32, i64, bool),
) -> Result<Header, StoreError> {
    Ok(Header {
        height: to_u64(height, "a header height")?,
        hash,
        prev_hash,
        time: to_u64(time, "a header time")?,
        verified,
    })
}

pub(super) fn tip(conn: &Connection) -> Result<Option<Header>, StoreError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM headers ORDER BY height DESC LIMIT 1"),
        [],
        from_row,
    )
    .optional()?
    .map(header_from)
    .transpose()
}

pub(super) fn header(conn: &Connection, height: u64) -> Result<Option<Header>, StoreError> {
    let Ok(height) = i64::try_from(height) else {
        return Ok(None);
    };
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM headers WHERE height = ?1"),
        [height],
        from_row,
    )
    .optional()?
    .map(header_from)
    .transpose()
}

impl StoreTx<'_> {
    /// Appends a header on top of the chain. It must link to the header
    /// below it, if the wallet has that one (the first header stored, e.g.
    /// a checkpoint, links to nothing here). Nothing may be stored at or
    /// above its height: roll back first ([`StoreTx::roll_back_to`]).
    pub fn append_header(&self, header: &Header) -> Result<(), StoreError> {
        let height = to_i64(header.height, "header height")?;
        if let Some(tip) = tip(self.conn())?
            && tip.height >= header.height
        {
            return Err(StoreError::Conflict(format!(
                "the wallet already has a header at height {} (tip {}); roll back first",
                header.height, tip.height
            )));
        }
        if let Some(below) = header.height.checked_sub(1)
            && let Some(below) = self::header(self.conn(), below)?
            && below.hash != header.prev_hash
        {
            return Err(StoreError::Conflict(format!(
                "the header at height {} does not link to the header below it",
                header.height
            )));
        }
        self.conn().execute(
            &format!("INSERT INTO headers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
            params![
                height,
                header.hash,
                header.prev_hash,
                to_i64(header.time, "header time")?,
                header.verified
            ],
        )?;
        Ok(())
    }

    /// Marks the header at `height` as verified.
    pub fn mark_header_verified(&self, height: u64) -> Result<(), StoreError> {
        let changed = self.conn().execute(
            "UPDATE headers SET verified = 1 WHERE height = ?1",
            [to_i64(height, "header height")?],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: format!("the header at height {height}"),
            });
        }
        Ok(())
    }

    /// Undoes the chain above `height` for a reorg, in this transaction:
    /// removes the headers above it and makes the outputs confirmed above it
    /// unconfirmed again. The transactions' states are the lifecycle's
    /// ([`crate::lifecycle::roll_back`] calls this after moving them back to
    /// the pool). Returns how many headers were removed.
    pub fn roll_back_to(&self, height: u64) -> Result<usize, StoreError> {
        let height = to_i64(height, "height")?;
        let removed = self
            .conn()
            .execute("DELETE FROM headers WHERE height > ?1", [height])?;
        self.conn().execute(
            "UPDATE outputs SET height = NULL WHERE height > ?1",
            [height],
        )?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    pub(crate) fn chain(from: u64, count: u64, fork: u8) -> Vec<Header> {
        let hash = |h: u64, f: u8| {
            let mut out = [0u8; 32];
            out[..8].copy_from_slice(&h.to_be_bytes());
            out[8] = f;
            out
        };
        (from..from + count)
            .map(|h| Header {
                height: h,
                hash: hash(h, fork),
                prev_hash: if h == 0 {
                    [0; 32]
                } else {
                    hash(h - 1, if h == from { 0 } else { fork })
                },
                time: 1_700_000_000 + h,
                verified: false,
            })
            .collect()
    }

    #[test]
    fn headers_must_link_and_reorgs_roll_back() {
        let mut store = Store::open_in_memory().expect("opens");
        assert_eq!(store.tip().expect("reads"), None);
        let main = chain(0, 10, 0);
        store
            .write(|tx| main.iter().try_for_each(|h| tx.append_header(h)))
            .expect("appends");
        assert_eq!(store.tip().expect("reads").map(|h| h.height), Some(9));
        assert_eq!(store.header(4).expect("reads"), Some(main[4].clone()));
        store.write(|tx| tx.mark_header_verified(4)).expect("marks");
        assert!(store.header(4).expect("reads").is_some_and(|h| h.verified));
        assert!(matches!(
            store.write(|tx| tx.mark_header_verified(99)),
            Err(StoreError::NotFound { .. })
        ));

        // A header that does not link is refused, and so is a second one at a height.
        let mut bad = chain(10, 1, 0).remove(0);
        bad.prev_hash = [7; 32];
        assert!(matches!(
            store.write(|tx| tx.append_header(&bad)),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.write(|tx| tx.append_header(&main[3])),
            Err(StoreError::Conflict(_))
        ));

        // Reorg: a fork from height 6 replaces 6..9.
        let fork = chain(6, 5, 1);
        store
            .write(|tx| {
                assert_eq!(tx.roll_back_to(5)?, 4);
                fork.iter().try_for_each(|h| tx.append_header(h))
            })
            .expect("reorg");
        assert_eq!(store.tip().expect("reads"), fork.last().cloned());
        assert_eq!(store.header(5).expect("reads"), Some(main[5].clone()));
    }

    #[test]
    fn a_checkpoint_may_start_the_chain() {
        let mut store = Store::open_in_memory().expect("opens");
        let from_checkpoint = chain(1000, 3, 0);
        store
            .write(|tx| from_checkpoint.iter().try_for_each(|h| tx.append_header(h)))
            .expect("appends");
        assert_eq!(store.tip().expect("reads").map(|h| h.height), Some(1002));
        assert_eq!(store.header(999).expect("reads"), None);
    }
}
