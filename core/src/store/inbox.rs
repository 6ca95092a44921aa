//! Settings, the notification inbox, and the queries the wallet needs for
//! balances, history and reorgs.

use rusqlite::{Connection, OptionalExtension, params};

use super::ledger::{
    OUTPUT_COLUMNS, TX_COLUMNS, output_from_row, output_record, tx_from_row, tx_record,
};
use super::{Hash32, OutputRecord, StoreError, StoreTx, TxRecord, now, to_i64};

/// What a notification is about. Stored and serialized as its snake_case
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    PaymentReceived,
    TxConfirmed,
    TxFinal,
    TxDropped,
    TxRejected,
    GatewayUnreachable,
    VerificationFailed,
    Reorg,
    /// A reorg deeper than the finality depth was offered and refused.
    ReorgRefused,
    /// The ledger's pinned metadata changed and was refused.
    LedgerChanged,
    /// Something the wallet could not store; it retries.
    StoreTrouble,
    /// A tally was offered to this wallet: its terms wait for the person.
    TallyOffered,
    /// A tally is open (both parties signed).
    TallyOpened,
    /// A partner refused the wallet's tally offer or ticket.
    TallyRefused,
    /// A partner signed a chit to this wallet (a payment, or our invoice
    /// paid).
    ChitReceived,
    /// A partner asks this wallet to pay: an invoice to approve or reject.
    InvoiceToApprove,
    /// A partner changed the credit it grants this wallet on a tally.
    TallyLimitChanged,
    /// A tally is closing (either side asked to close it).
    TallyClosing,
    /// A closing tally reached a zero balance and is closed.
    TallyClosed,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 19] = [
        NotificationKind::PaymentReceived,
        NotificationKind::TxConfirmed,
        NotificationKind::TxFinal,
        NotificationKind::TxDropped,
        NotificationKind::TxRejected,
        NotificationKind::GatewayUnreachable,
        NotificationKind::VerificationFailed,
        NotificationKind::Reorg,
        NotificationKind::ReorgRefused,
        NotificationKind::LedgerChanged,
        NotificationKind::StoreTrouble,
        NotificationKind::TallyOffered,
        NotificationKind::TallyOpened,
        NotificationKind::TallyRefused,
        NotificationKind::ChitReceived,
        NotificationKind::InvoiceToApprove,
        NotificationKind::TallyLimitChanged,
        NotificationKind::TallyClosing,
        NotificationKind::TallyClosed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::PaymentReceived => "payment_received",
            NotificationKind::TxConfirmed => "tx_confirmed",
            NotificationKind::TxFinal => "tx_final",
            NotificationKind::TxDropped => "tx_dropped",
            NotificationKind::TxRejected => "tx_rejected",
            NotificationKind::GatewayUnreachable => "gateway_unreachable",
            NotificationKind::VerificationFailed => "verification_failed",
            NotificationKind::Reorg => "reorg",
            NotificationKind::ReorgRefused => "reorg_refused",
            NotificationKind::LedgerChanged => "ledger_changed",
            NotificationKind::StoreTrouble => "store_trouble",
            NotificationKind::TallyOffered => "tally_offered",
            NotificationKind::TallyOpened => "tally_opened",
            NotificationKind::TallyRefused => "tally_refused",
            NotificationKind::ChitReceived => "chit_received",
            NotificationKind::InvoiceToApprove => "invoice_to_approve",
            NotificationKind::TallyLimitChanged => "tally_limit_changed",
            NotificationKind::TallyClosing => "tally_closing",
            NotificationKind::TallyClosed => "tally_closed",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A notification kept in the inbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notification {
    pub id: i64,
    pub kind: NotificationKind,
    pub title: String,
    pub body: String,
    /// The transaction it is about, hex, if any.
    #[serde(serialize_with = "ser_opt_hex")]
    pub txid: Option<Hash32>,
    /// The tally it is about (its wallet id), if any.
    pub tally: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub read: bool,
}

fn ser_opt_hex<S: serde::Serializer>(v: &Option<Hash32>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(bytes) => s.serialize_some(&hex::encode(bytes)),
        None => s.serialize_none(),
    }
}

/// A notification to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub kind: NotificationKind,
    pub title: String,
    pub body: String,
    pub txid: Option<Hash32>,
}

pub(super) fn setting(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?)
}

type NotificationRow = (
    i64,
    String,
    String,
    String,
    Option<Hash32>,
    i64,
    bool,
    Option<String>,
);

fn notification_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<NotificationRow> {
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

pub(super) fn notifications(
    conn: &Connection,
    unread_only: bool,
    limit: u32,
) -> Result<Vec<Notification>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, title, body, txid, created_at, read, tally FROM notifications
         WHERE (?1 = 0 OR read = 0) ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![unread_only, limit], notification_from)?;
    rows.map(|row| notification_record(row?)).collect()
}

fn notification(conn: &Connection, id: i64) -> Result<Option<Notification>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT id, kind, title, body, txid, created_at, read, tally FROM notifications
             WHERE id = ?1",
        )?
        .query_row([id], notification_from)
        .optional()?;
    row.map(notification_record).transpose()
}

fn notification_record(row: NotificationRow) -> Result<Notification, StoreError> {
    let (id, kind, title, body, txid, created_at, read, tally) = row;
    let kind = NotificationKind::from_name(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown notification kind {kind:?}")))?;
    Ok(Notification {
        id,
        kind,
        title,
        body,
        txid,
        tally,
        created_at,
        read,
    })
}

pub(super) fn has_notification(
    conn: &Connection,
    kind: &str,
    txid: &Hash32,
) -> Result<bool, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM notifications WHERE txid = ?1 AND kind = ?2",
        params![txid, kind],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

pub(super) fn all_transactions(conn: &Connection) -> Result<Vec<TxRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TX_COLUMNS} FROM transactions ORDER BY created_at DESC, rowid DESC"
    ))?;
    let rows = stmt.query_map([], tx_from_row)?;
    rows.map(|row| tx_record(row?)).collect()
}

pub(super) fn transactions_above(
    conn: &Connection,
    height: u64,
) -> Result<Vec<TxRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TX_COLUMNS} FROM transactions WHERE block_height > ?1 ORDER BY block_height"
    ))?;
    let rows = stmt.query_map([to_i64(height, "height")?], tx_from_row)?;
    rows.map(|row| tx_record(row?)).collect()
}

pub(super) fn all_outputs(conn: &Connection) -> Result<Vec<OutputRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTPUT_COLUMNS} FROM outputs ORDER BY txid, vout"
    ))?;
    let rows = stmt.query_map([], output_from_row)?;
    rows.map(|row| output_record(row?)).collect()
}

/// Outputs that `spender` spends or locks (the wallet's coins it uses up).
pub(super) fn outputs_used_by(
    conn: &Connection,
    spender: &Hash32,
) -> Result<Vec<OutputRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTPUT_COLUMNS} FROM outputs WHERE spent_by = ?1 OR locked_by = ?1"
    ))?;
    let rows = stmt.query_map([spender], output_from_row)?;
    rows.map(|row| output_record(row?)).collect()
}

/// Outputs created by `txid`.
pub(super) fn outputs_of(
    conn: &Connection,
    txid: &Hash32,
) -> Result<Vec<OutputRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTPUT_COLUMNS} FROM outputs WHERE txid = ?1 ORDER BY vout"
    ))?;
    let rows = stmt.query_map([txid], output_from_row)?;
    rows.map(|row| output_record(row?)).collect()
}

impl StoreTx<'_> {
    pub fn delete_setting(&self, key: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM settings WHERE key = ?1", [key])?;
        Ok(())
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Adds a notification to the inbox; returns it.
    pub fn add_notification(&self, new: &NewNotification) -> Result<Notification, StoreError> {
        self.insert_notification(new, None)
    }

    /// Adds a notification about the tally `tally` (its wallet id).
    pub fn add_tally_notification(
        &self,
        new: &NewNotification,
        tally: &str,
    ) -> Result<Notification, StoreError> {
        self.insert_notification(new, Some(tally))
    }

    fn insert_notification(
        &self,
        new: &NewNotification,
        tally: Option<&str>,
    ) -> Result<Notification, StoreError> {
        let created_at = now();
        self.conn().execute(
            "INSERT INTO notifications (kind, title, body, txid, created_at, tally)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                new.kind.as_str(),
                new.title,
                new.body,
                new.txid,
                created_at,
                tally
            ],
        )?;
        Ok(Notification {
            id: self.conn().last_insert_rowid(),
            kind: new.kind,
            title: new.title.clone(),
            body: new.body.clone(),
            txid: new.txid,
            tally: tally.map(str::to_owned),
            created_at,
            read: false,
        })
    }

    /// Rewrites the title and body of notification `id` and marks it
    /// unread again (a catch-up's summary of payments, as more arrive);
    /// `None` if there is none with that id.
    pub fn update_notification(
        &self,
        id: i64,
        title: &str,
        body: &str,
    ) -> Result<Option<Notification>, StoreError> {
        let changed = self.conn().execute(
            "UPDATE notifications SET title = ?2, body = ?3, read = 0 WHERE id = ?1",
            params![id, title, body],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        notification(self.conn(), id)
    }

    /// Marks one notification read; `false` if there is none with that id.
    pub fn mark_notification_read(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("UPDATE notifications SET read = 1 WHERE id = ?1", [id])?
            == 1)
    }

    /// Marks every notification read; returns how many were unread.
    pub fn mark_all_notifications_read(&self) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .execute("UPDATE notifications SET read = 1 WHERE read = 0", [])?)
    }

    /// Confirmed transactions with at least `depth` confirmations at tip
    /// `tip` (ready for [`crate::lifecycle::TxEvent::ReachedFinality`]).
    pub fn ready_to_finalize(&self, tip: u64, depth: u64) -> Result<Vec<Hash32>, StoreError> {
        let Some(limit) = (tip + 1).checked_sub(depth.max(1)) else {
            return Ok(Vec::new());
        };
        let limit = to_i64(limit, "height")?;
        let mut stmt = self.conn().prepare_cached(
            "SELECT txid FROM transactions WHERE state = 'confirmed' AND block_height <= ?1",
        )?;
        let ids: Vec<Hash32> = stmt
            .query_map([limit], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }
}

/// Read methods added by this module, for [`Store`](super::Store) and
/// [`StoreTx`].
macro_rules! inbox_read_methods {
    () => {
        /// A named setting.
        pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
            inbox::setting(self.conn(), key)
        }

        /// Notifications, newest first.
        pub fn notifications(
            &self,
            unread_only: bool,
            limit: u32,
        ) -> Result<Vec<Notification>, StoreError> {
            inbox::notifications(self.conn(), unread_only, limit)
        }

        /// Whether a notification of `kind` about `txid` exists.
        pub fn has_notification(
            &self,
            kind: NotificationKind,
            txid: &Hash32,
        ) -> Result<bool, StoreError> {
            inbox::has_notification(self.conn(), kind.as_str(), txid)
        }

        /// Every transaction, newest first.
        pub fn all_transactions(&self) -> Result<Vec<TxRecord>, StoreError> {
            inbox::all_transactions(self.conn())
        }

        /// Transactions in blocks above `height`.
        pub fn transactions_above(&self, height: u64) -> Result<Vec<TxRecord>, StoreError> {
            inbox::transactions_above(self.conn(), height)
        }

        /// Every output of the wallet, spent or not.
        pub fn all_outputs(&self) -> Result<Vec<OutputRecord>, StoreError> {
            inbox::all_outputs(self.conn())
        }

        /// The wallet's outputs that `spender` spends or locks.
        pub fn outputs_used_by(&self, spender: &Hash32) -> Result<Vec<OutputRecord>, StoreError> {
            inbox::outputs_used_by(self.conn(), spender)
        }

        /// The wallet's outputs created by `txid`.
        pub fn outputs_of(&self, txid: &Hash32) -> Result<Vec<OutputRecord>, StoreError> {
            inbox::outputs_of(self.conn(), txid)
        }
    };
}
pub(super) use inbox_read_methods;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::wallet_with_address;
    use crate::store::{NewOutput, NewTransaction, OutPoint, TxState};

    #[test]
    fn inbox_read_unread_and_atomic_with_the_change() {
        let mut store = wallet_with_address();
        let note = |kind: &str| NewNotification {
            kind: NotificationKind::from_name(kind).expect("a kind"),
            title: "t".into(),
            body: "b".into(),
            txid: Some([3; 32]),
        };
        let first = store
            .write(|tx| tx.add_notification(&note("payment_received")))
            .expect("adds");
        store
            .write(|tx| tx.add_notification(&note("tx_confirmed")))
            .expect("adds");
        // A failed change writes no notification either.
        let failed: Result<(), StoreError> = store.write(|tx| {
            tx.add_notification(&note("tx_dropped"))?;
            Err(StoreError::Conflict("the change failed".into()))
        });
        assert!(failed.is_err());
        assert_eq!(store.notifications(false, 10).expect("reads").len(), 2);
        assert!(
            store
                .has_notification(NotificationKind::PaymentReceived, &[3; 32])
                .expect("reads")
        );
        assert!(
            !store
                .has_notification(NotificationKind::TxDropped, &[3; 32])
                .expect("reads")
        );
        assert!(
            store
                .write(|tx| tx.mark_notification_read(first.id))
                .expect("marks")
        );
        assert!(
            !store
                .write(|tx| tx.mark_notification_read(999))
                .expect("marks")
        );
        let unread = store.notifications(true, 10).expect("reads");
        assert_eq!(unread.len(), 1);
        assert_eq!(unread[0].kind, NotificationKind::TxConfirmed);
        assert_eq!(
            store
                .write(|tx| tx.mark_all_notifications_read())
                .expect("marks"),
            1
        );
        assert!(store.notifications(true, 10).expect("reads").is_empty());
        store.write(|tx| tx.set_setting("k", "v1")).expect("sets");
        store.write(|tx| tx.set_setting("k", "v2")).expect("sets");
        assert_eq!(store.setting("k").expect("reads").as_deref(), Some("v2"));
    }

    #[test]
    fn dropping_a_send_drops_what_spends_its_change_and_frees_the_coins() {
        let mut store = wallet_with_address();
        let coin = OutPoint {
            txid: [1; 32],
            vout: 0,
        };
        store
            .write(|tx| {
                tx.insert_transaction(&NewTransaction {
                    txid: [1; 32],
                    state: TxState::Confirmed,
                    own: false,
                    raw: None,
                    block: Some((1, [9; 32])),
                })?;
                tx.insert_output(&NewOutput {
                    outpoint: coin,
                    asset: [5; 32],
                    amount: 100,
                    address: "mine".into(),
                    height: Some(1),
                })?;
                // A send of the coin with change, and a send of that change.
                for (id, spends) in [
                    ([2u8; 32], coin),
                    (
                        [3u8; 32],
                        OutPoint {
                            txid: [2; 32],
                            vout: 1,
                        },
                    ),
                ] {
                    tx.insert_transaction(&NewTransaction {
                        txid: id,
                        state: TxState::InPool,
                        own: true,
                        raw: None,
                        block: None,
                    })?;
                    if id == [3; 32] {
                        tx.insert_output(&NewOutput {
                            outpoint: spends,
                            asset: [5; 32],
                            amount: 60,
                            address: "mine".into(),
                            height: None,
                        })
                        .ok();
                    } else {
                        tx.insert_output(&NewOutput {
                            outpoint: OutPoint { txid: id, vout: 1 },
                            asset: [5; 32],
                            amount: 60,
                            address: "mine".into(),
                            height: None,
                        })?;
                    }
                    tx.mark_spent(&spends, &id)?;
                }
                Ok(())
            })
            .expect("sets up");
        let dropped = store
            .write(|tx| {
                crate::lifecycle::apply_with_descendants(
                    tx,
                    &[2; 32],
                    crate::lifecycle::TxEvent::ConflictConfirmed,
                    "conflict",
                )
            })
            .expect("drops");
        assert_eq!(dropped.len(), 2);
        for id in [[2u8; 32], [3u8; 32]] {
            assert_eq!(
                store.transaction(&id).expect("reads").map(|t| t.state),
                Some(TxState::Dropped)
            );
        }
        // The coin is spendable again; the dropped send's change is not listed.
        let unspent = store.unspent_outputs(None).expect("reads");
        assert_eq!(unspent.len(), 1);
        assert_eq!(unspent[0].outpoint, coin);
        // Final after enough confirmations.
        store
            .write(|tx| {
                let ids = tx.ready_to_finalize(6, 6)?;
                assert_eq!(ids, vec![[1u8; 32]]);
                for id in ids {
                    crate::lifecycle::apply(
                        tx,
                        &id,
                        crate::lifecycle::TxEvent::ReachedFinality,
                        None,
                        None,
                    )?;
                }
                Ok(())
            })
            .expect("finalizes");
        assert_eq!(
            store.transaction(&[1; 32]).expect("reads").map(|t| t.state),
            Some(TxState::Final)
        );
    }
}
