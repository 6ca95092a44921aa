//! Transactions and the wallet's outputs (its coins).

use std::fmt;
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::{Hash32, StoreError, StoreTx, facts, now, to_i64, to_u64};

/// Where a transaction is on its way to being final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxState {
    /// Built and signed by this wallet, not yet accepted by the gateway.
    Queued,
    /// The gateway took it.
    Accepted,
    /// In the gateway's pool, waiting for a block.
    InPool,
    /// In a block (confirmations = tip height - block height + 1).
    Confirmed,
    /// Deep enough that it can no longer be undone.
    Final,
    /// The gateway refused it.
    Rejected,
    /// It left the pool without being mined, or the gateway no longer
    /// knows it. Said by the gateway: the coins stay reserved (it may still
    /// confirm), unless a verified block proved it can never confirm.
    Dropped,
    /// The person gave it up; its coins are spendable again.
    Abandoned,
}

impl TxState {
    pub const ALL: [TxState; 8] = [
        TxState::Queued,
        TxState::Accepted,
        TxState::InPool,
        TxState::Confirmed,
        TxState::Final,
        TxState::Rejected,
        TxState::Dropped,
        TxState::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TxState::Queued => "queued",
            TxState::Accepted => "accepted",
            TxState::InPool => "in_pool",
            TxState::Confirmed => "confirmed",
            TxState::Final => "final",
            TxState::Rejected => "rejected",
            TxState::Dropped => "dropped",
            TxState::Abandoned => "abandoned",
        }
    }

    /// Rejected, dropped or abandoned: not on its way to a block (as far as
    /// the wallet knows). Whether its coins are still reserved is kept in
    /// the outputs' locks, not here (see [`crate::lifecycle`]).
    pub fn is_failed(self) -> bool {
        matches!(
            self,
            TxState::Rejected | TxState::Dropped | TxState::Abandoned
        )
    }

    /// Whether the transaction is in a block (confirmed or final).
    pub fn is_in_block(self) -> bool {
        matches!(self, TxState::Confirmed | TxState::Final)
    }
}

impl fmt::Display for TxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TxState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        TxState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown transaction state {s:?}")))
    }
}

/// A transaction to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransaction {
    pub txid: Hash32,
    pub state: TxState,
    /// Built by this wallet.
    pub own: bool,
    /// The encoded transaction. What the history needs of it is read at
    /// the end of the write; the bytes stay only while the wallet needs
    /// them (its own sends until final, see `facts::keeps_raw`).
    pub raw: Option<Vec<u8>>,
    /// The block holding it, if it is in one: (height, hash).
    pub block: Option<(u64, Hash32)>,
}

/// A transaction the wallet knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRecord {
    pub txid: Hash32,
    pub state: TxState,
    pub own: bool,
    /// The encoded transaction, kept only for the wallet's own sends that
    /// may still have to be submitted again (until final, or failed with
    /// their coins released).
    pub raw: Option<Vec<u8>>,
    pub block: Option<(u64, Hash32)>,
    /// Why it was rejected or dropped.
    pub reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An output, named by the transaction that made it and its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutPoint {
    pub txid: Hash32,
    pub vout: u32,
}

/// An output paying one of the wallet's addresses, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutput {
    pub outpoint: OutPoint,
    pub asset: Hash32,
    pub amount: u64,
    pub address: String,
    /// Height of the block holding it; `None` while unconfirmed.
    pub height: Option<u64>,
}

/// One of the wallet's outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    pub outpoint: OutPoint,
    pub asset: Hash32,
    pub amount: u64,
    pub address: String,
    pub height: Option<u64>,
    /// The transaction that spends it, once seen.
    pub spent_by: Option<Hash32>,
    /// The wallet's own pending send that will spend it.
    pub locked_by: Option<Hash32>,
}

impl OutputRecord {
    /// Neither spent nor locked by a pending send.
    pub fn spendable(&self) -> bool {
        self.spent_by.is_none() && self.locked_by.is_none()
    }
}

pub(super) const TX_COLUMNS: &str =
    "txid, state, own, raw, block_height, block_hash, reason, created_at, updated_at";

pub(super) type TxRow = (
    Hash32,
    String,
    bool,
    Option<Vec<u8>>,
    Option<i64>,
    Option<Hash32>,
    Option<String>,
    i64,
    i64,
);

pub(super) fn tx_from_row(row: &Row<'_>) -> rusqlite::Result<TxRow> {
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
    ))
}

pub(super) fn tx_record(
    (txid, state, own, raw, height, hash, reason, created_at, updated_at): TxRow,
) -> Result<TxRecord, StoreError> {
    let block = match (height, hash) {
        (Some(height), Some(hash)) => Some((to_u64(height, "a block height")?, hash)),
        _ => None,
    };
    Ok(TxRecord {
        txid,
        state: state.parse()?,
        own,
        raw,
        block,
        reason,
        created_at,
        updated_at,
    })
}

pub(super) const OUTPUT_COLUMNS: &str =
    "txid, vout, asset, amount, address, height, spent_by, locked_by";

pub(super) type OutputRow = (
    Hash32,
    u32,
    Hash32,
    i64,
    String,
    Option<i64>,
    Option<Hash32>,
    Option<Hash32>,
);

pub(super) fn output_from_row(row: &Row<'_>) -> rusqlite::Result<OutputRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

pub(super) fn output_record(
    (txid, vout, asset, amount, address, height, spent_by, locked_by): OutputRow,
) -> Result<OutputRecord, StoreError> {
    Ok(OutputRecord {
        outpoint: OutPoint { txid, vout },
        asset,
        amount: amount_from_sql(amount),
        address,
        height: height.map(|h| to_u64(h, "an output height")).transpose()?,
        spent_by,
        locked_by,
    })
}

pub(super) fn transaction(
    conn: &Connection,
    txid: &Hash32,
) -> Result<Option<TxRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {TX_COLUMNS} FROM transactions WHERE txid = ?1"
    ))?
    .query_row([txid], tx_from_row)
    .optional()?
    .map(tx_record)
    .transpose()
}

pub(super) fn transactions_in(
    conn: &Connection,
    states: &[TxState],
) -> Result<Vec<TxRecord>, StoreError> {
    if states.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; states.len()].join(", ");
    let mut stmt = conn.prepare(&format!(
        "SELECT {TX_COLUMNS} FROM transactions WHERE state IN ({marks})
         ORDER BY created_at, rowid"
    ))?;
    let rows = stmt.query_map(
        params_from_iter(states.iter().map(|s| s.as_str())),
        tx_from_row,
    )?;
    rows.map(|row| tx_record(row?)).collect()
}

pub(super) fn output(
    conn: &Connection,
    outpoint: &OutPoint,
) -> Result<Option<OutputRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {OUTPUT_COLUMNS} FROM outputs WHERE txid = ?1 AND vout = ?2"
    ))?
    .query_row(params![outpoint.txid, outpoint.vout], output_from_row)
    .optional()?
    .map(output_record)
    .transpose()
}

pub(super) fn unspent_outputs(
    conn: &Connection,
    asset: Option<&Hash32>,
) -> Result<Vec<OutputRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTPUT_COLUMNS} FROM outputs
         WHERE spent_by IS NULL AND (?1 IS NULL OR asset = ?1)
           AND txid NOT IN (SELECT txid FROM transactions WHERE state IN ('rejected', 'dropped'))
         ORDER BY height IS NULL, height, txid, vout"
    ))?;
    let rows = stmt.query_map([asset], output_from_row)?;
    rows.map(|row| output_record(row?)).collect()
}

impl StoreTx<'_> {
    /// Records a transaction. Recording the same txid again is a no-op
    /// (submission is idempotent, keyed by txid); returns whether it was new.
    pub fn insert_transaction(&self, new: &NewTransaction) -> Result<bool, StoreError> {
        let (height, hash) = match new.block {
            Some((height, hash)) => (Some(to_i64(height, "block height")?), Some(hash)),
            None => (None, None),
        };
        let now = now();
        // Without its bytes: `facts::take` reads them and writes them to
        // the row only if the wallet needs them.
        let inserted = self.conn().execute(
            &format!(
                "INSERT INTO transactions ({TX_COLUMNS}) VALUES (?1, ?2, ?3, NULL, ?4, ?5, NULL, ?6, ?6)
                 ON CONFLICT (txid) DO NOTHING"
            ),
            params![new.txid, new.state.as_str(), new.own, height, hash, now],
        )?;
        if inserted == 1
            && let Some(raw) = &new.raw
        {
            facts::take(self.conn(), &new.txid, raw)?;
        }
        Ok(inserted == 1)
    }

    /// Hands over the bytes of a known transaction seen again (in the pool
    /// or a block): its facts are read from them again (more of the
    /// wallet's addresses or coins may be known now; written only if they
    /// changed), and the bytes are written to its row only if the wallet
    /// needs them and the row has none (an own send given up that is on
    /// its way to a block after all).
    pub fn offer_raw(&self, txid: &Hash32, raw: &[u8]) -> Result<(), StoreError> {
        facts::take(self.conn(), txid, raw)
    }

    /// Moves a transaction to `state`. `block` is where it was mined
    /// (required for confirmed and final, cleared otherwise); `reason` is
    /// kept for rejected and dropped ones. Only [`crate::lifecycle::apply`]
    /// calls it; it never touches the coins (see [`Self::release_coins`]).
    pub(crate) fn set_transaction_state(
        &self,
        txid: &Hash32,
        state: TxState,
        block: Option<(u64, Hash32)>,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let block = if state.is_in_block() {
            let (height, hash) = block.ok_or_else(|| {
                StoreError::Conflict(format!("a {state} transaction needs the block it is in"))
            })?;
            Some((to_i64(height, "block height")?, hash))
        } else {
            None
        };
        let changed = self.conn().execute(
            "UPDATE transactions
             SET state = ?2, block_height = ?3, block_hash = ?4, reason = ?5, updated_at = ?6
             WHERE txid = ?1",
            params![
                txid,
                state.as_str(),
                block.map(|b| b.0),
                block.map(|b| b.1),
                if state.is_failed() { reason } else { None },
                now()
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: format!("transaction {}", hex(txid)),
            });
        }
        Ok(())
    }

    /// Makes the coins that `txid` locked or spent spendable again (it can
    /// never spend them: proof or the person's decision, see
    /// [`crate::lifecycle`]).
    pub fn release_coins(&self, txid: &Hash32) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE outputs SET locked_by = NULL WHERE locked_by = ?1",
            [txid],
        )?;
        self.conn().execute(
            "UPDATE outputs SET spent_by = NULL WHERE spent_by = ?1",
            [txid],
        )?;
        Ok(())
    }

    /// Records an output paying the wallet. Its transaction and address must
    /// be recorded already. Recording it again updates only its height
    /// (e.g. when it confirms); different contents are a conflict.
    pub fn insert_output(&self, new: &NewOutput) -> Result<(), StoreError> {
        let height = new.height.map(|h| to_i64(h, "output height")).transpose()?;
        if let Some(existing) = output(self.conn(), &new.outpoint)? {
            if existing.asset != new.asset
                || existing.amount != new.amount
                || existing.address != new.address
            {
                return Err(StoreError::Conflict(format!(
                    "output {}:{} is already recorded with other contents",
                    hex(&new.outpoint.txid),
                    new.outpoint.vout
                )));
            }
            self.conn().execute(
                "UPDATE outputs SET height = ?3 WHERE txid = ?1 AND vout = ?2",
                params![new.outpoint.txid, new.outpoint.vout, height],
            )?;
            return Ok(());
        }
        self.conn()
            .execute(
                &format!("INSERT INTO outputs ({OUTPUT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, NULL)"),
                params![
                    new.outpoint.txid,
                    new.outpoint.vout,
                    new.asset,
                    amount_to_sql(new.amount),
                    new.address,
                    height
                ],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::Conflict(format!(
                        "output {}:{} needs its transaction and a wallet address ({}) recorded first",
                        hex(&new.outpoint.txid),
                        new.outpoint.vout,
                        new.address
                    ))
                }
                other => other.into(),
            })?;
        Ok(())
    }

    /// Records that `spender` (already recorded) spends `outpoint`. Returns
    /// `false` if the output is not the wallet's. Spending an output that
    /// another transaction already spends is a conflict.
    pub fn mark_spent(&self, outpoint: &OutPoint, spender: &Hash32) -> Result<bool, StoreError> {
        let Some(existing) = output(self.conn(), outpoint)? else {
            return Ok(false);
        };
        if let Some(other) = existing.spent_by.filter(|other| other != spender) {
            return Err(StoreError::Conflict(format!(
                "output {}:{} is already spent by {}",
                hex(&outpoint.txid),
                outpoint.vout,
                hex(&other)
            )));
        }
        self.conn().execute(
            "UPDATE outputs SET spent_by = ?3 WHERE txid = ?1 AND vout = ?2",
            params![outpoint.txid, outpoint.vout, spender],
        )?;
        Ok(true)
    }

    /// Locks outputs for the wallet's own pending send `txid` (recorded
    /// already), so that no other send picks them. All or nothing: an output
    /// that is missing, spent or locked by another send fails the call.
    pub fn lock_outputs(&self, txid: &Hash32, outpoints: &[OutPoint]) -> Result<(), StoreError> {
        if transaction(self.conn(), txid)?.is_none() {
            return Err(StoreError::NotFound {
                what: format!("transaction {}", hex(txid)),
            });
        }
        for outpoint in outpoints {
            let name = || format!("output {}:{}", hex(&outpoint.txid), outpoint.vout);
            let existing = output(self.conn(), outpoint)?
                .ok_or_else(|| StoreError::NotFound { what: name() })?;
            if existing.spent_by.is_some_and(|by| &by != txid)
                || existing.locked_by.is_some_and(|by| &by != txid)
            {
                return Err(StoreError::Conflict(format!(
                    "{} is already spent or locked",
                    name()
                )));
            }
            self.conn().execute(
                "UPDATE outputs SET locked_by = ?3 WHERE txid = ?1 AND vout = ?2",
                params![outpoint.txid, outpoint.vout, txid],
            )?;
        }
        Ok(())
    }
}

/// Amounts are `u64` on the ledger; SQLite integers are `i64`. The column
/// holds the amount's 64 bits as a signed integer (schema 3), so the whole
/// `u64` range round-trips exactly; sums are done in Rust, in `u128`.
pub(super) fn amount_to_sql(amount: u64) -> i64 {
    amount as i64
}

pub(super) fn amount_from_sql(stored: i64) -> u64 {
    stored as u64
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::test_support::wallet_with_address;

    fn id(n: u8) -> Hash32 {
        [n; 32]
    }

    const EURO: Hash32 = [0xE0; 32];
    const COIN: Hash32 = [0xC0; 32];

    fn receive(
        store: &mut Store,
        txid: Hash32,
        outputs: &[(u32, Hash32, u64)],
        height: Option<u64>,
    ) {
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
                    block: height.map(|h| (h, id(200))),
                })?;
                for &(vout, asset, amount) in outputs {
                    tx.insert_output(&NewOutput {
                        outpoint: OutPoint { txid, vout },
                        asset,
                        amount,
                        address: "mine".into(),
                        height,
                    })?;
                }
                tx.mark_address_used("mine")?;
                Ok(())
            })
            .expect("receives");
    }

    #[test]
    fn states_round_trip_as_text() {
        for state in TxState::ALL {
            assert_eq!(state.as_str().parse::<TxState>().ok(), Some(state));
        }
        assert!("mined".parse::<TxState>().is_err());
    }

    #[test]
    fn an_own_send_locks_its_coins_until_it_resolves() {
        let mut store = wallet_with_address();
        receive(&mut store, id(1), &[(0, COIN, 500), (1, EURO, 70)], Some(3));
        receive(&mut store, id(2), &[(0, COIN, 250)], None);
        let coins = store.unspent_outputs(Some(&COIN)).expect("reads");
        assert_eq!(
            coins.iter().map(|o| o.amount).collect::<Vec<_>>(),
            vec![500, 250]
        );
        assert_eq!(store.unspent_outputs(None).expect("reads").len(), 3);

        // Queue a send spending the confirmed coin.
        let send = id(9);
        let spent = OutPoint {
            txid: id(1),
            vout: 0,
        };
        store
            .write(|tx| {
                assert!(tx.insert_transaction(&NewTransaction {
                    txid: send,
                    state: TxState::Queued,
                    own: true,
                    raw: Some(vec![1, 2, 3]),
                    block: None,
                })?);
                // Submitting again is a no-op.
                assert!(!tx.insert_transaction(&NewTransaction {
                    txid: send,
                    state: TxState::Queued,
                    own: true,
                    raw: Some(vec![1, 2, 3]),
                    block: None,
                })?);
                tx.lock_outputs(&send, &[spent])
            })
            .expect("queues");
        let locked = store.output(&spent).expect("reads").expect("exists");
        assert_eq!(locked.locked_by, Some(send));
        assert!(!locked.spendable());

        // Another send cannot take the same coin; nothing of it is kept.
        let other = id(10);
        let clash = store.write(|tx| {
            tx.insert_transaction(&NewTransaction {
                txid: other,
                state: TxState::Queued,
                own: true,
                raw: None,
                block: None,
            })?;
            tx.lock_outputs(
                &other,
                &[
                    OutPoint {
                        txid: id(2),
                        vout: 0,
                    },
                    spent,
                ],
            )
        });
        assert!(matches!(clash, Err(StoreError::Conflict(_))));
        assert_eq!(store.transaction(&other).expect("reads"), None);
        assert!(
            store
                .output(&OutPoint {
                    txid: id(2),
                    vout: 0
                })
                .expect("reads")
                .is_some_and(|o| o.spendable())
        );

        // Rejected (the gateway's word): the coin stays reserved, the reason
        // kept; released only on purpose.
        store
            .write(|tx| {
                tx.set_transaction_state(&send, TxState::Rejected, None, Some("fee too low"))
            })
            .expect("rejects");
        let record = store.transaction(&send).expect("reads").expect("exists");
        assert_eq!(record.state, TxState::Rejected);
        assert_eq!(record.reason.as_deref(), Some("fee too low"));
        assert_eq!(record.raw, Some(vec![1, 2, 3]));
        assert!(
            !store
                .output(&spent)
                .expect("reads")
                .is_some_and(|o| o.spendable())
        );
        store.write(|tx| tx.release_coins(&send)).expect("releases");
        assert!(
            store
                .output(&spent)
                .expect("reads")
                .is_some_and(|o| o.spendable())
        );

        // A send that goes through: seen spending, then confirmed.
        let send2 = id(11);
        store
            .write(|tx| {
                tx.insert_transaction(&NewTransaction {
                    txid: send2,
                    state: TxState::Queued,
                    own: true,
                    raw: Some(vec![4]),
                    block: None,
                })?;
                tx.lock_outputs(&send2, &[spent])?;
                tx.set_transaction_state(&send2, TxState::InPool, None, None)?;
                assert!(tx.mark_spent(&spent, &send2)?);
                tx.set_transaction_state(&send2, TxState::Confirmed, Some((4, id(201))), None)
            })
            .expect("confirms");
        assert_eq!(store.unspent_outputs(Some(&COIN)).expect("reads").len(), 1);
        assert_eq!(
            store
                .transactions_in(&[TxState::Confirmed])
                .expect("reads")
                .len(),
            2,
            "the receive and the send"
        );
        assert!(matches!(
            store.write(|tx| tx.set_transaction_state(&send2, TxState::Final, None, None)),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.write(|tx| tx.mark_spent(&spent, &id(1))),
            Err(StoreError::Conflict(_))
        ));
    }

    #[test]
    fn reorg_keeps_own_sends_and_unconfirms_outputs() {
        let mut store = wallet_with_address();
        receive(&mut store, id(1), &[(0, COIN, 5)], Some(8));
        receive(&mut store, id(2), &[(0, COIN, 6)], Some(3));
        store
            .write(|tx| crate::lifecycle::roll_back(tx, 5).map(|_| ()))
            .expect("rolls back");
        let moved = store.transaction(&id(1)).expect("reads").expect("kept");
        assert_eq!((moved.state, moved.block), (TxState::InPool, None));
        assert_eq!(
            store
                .output(&OutPoint {
                    txid: id(1),
                    vout: 0
                })
                .expect("reads")
                .and_then(|o| o.height),
            None
        );
        let kept = store.transaction(&id(2)).expect("reads").expect("kept");
        assert_eq!(kept.state, TxState::Confirmed);
        // The receive confirms again on the new chain.
        receive(&mut store, id(1), &[(0, COIN, 5)], Some(7));
        assert_eq!(
            store
                .output(&OutPoint {
                    txid: id(1),
                    vout: 0
                })
                .expect("reads")
                .and_then(|o| o.height),
            Some(7)
        );
    }

    #[test]
    fn outputs_need_their_transaction_and_address_and_sane_amounts() {
        let mut store = wallet_with_address();
        let orphan = NewOutput {
            outpoint: OutPoint {
                txid: id(5),
                vout: 0,
            },
            asset: COIN,
            amount: 1,
            address: "mine".into(),
            height: None,
        };
        assert!(matches!(
            store.write(|tx| tx.insert_output(&orphan)),
            Err(StoreError::Conflict(_))
        ));
        receive(&mut store, id(5), &[], None);
        let stranger = NewOutput {
            address: "not-mine".into(),
            ..orphan.clone()
        };
        assert!(matches!(
            store.write(|tx| tx.insert_output(&stranger)),
            Err(StoreError::Conflict(_))
        ));
        store
            .write(|tx| tx.insert_output(&orphan))
            .expect("inserts");
        let changed = NewOutput {
            amount: 2,
            ..orphan
        };
        assert!(matches!(
            store.write(|tx| tx.insert_output(&changed)),
            Err(StoreError::Conflict(_))
        ));
    }
}
