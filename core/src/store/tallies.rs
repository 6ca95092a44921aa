//! Tallies, the tokens of the tickets the wallet issued, and the outbox of
//! messages for tally partners (migration 4).
//!
//! Only the agent's apply step (`crate::agent::apply`) writes these, each
//! state change in one transaction; the state machine itself is
//! [`crate::tally::lifecycle`].

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{StoreError, StoreTx, now};
use crate::tally::Side;
use crate::tally::lifecycle::{Action, TallyState};

/// One tally as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyRow {
    /// The wallet's own id of the tally.
    pub id: String,
    /// The record's `uuid`, once known.
    pub uuid: Option<String>,
    pub state: TallyState,
    pub side: Option<Side>,
    pub partner_agent: Option<[u8; 32]>,
    pub partner_cid: Option<String>,
    pub partner_host: Option<String>,
    pub partner_port: Option<u16>,
    /// The draft, the record exactly as signed, or the scanned ticket (JSON).
    pub record: String,
    pub reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A ticket token the wallet issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub token: String,
    pub tally: String,
    /// Unix seconds.
    pub expires: u64,
    pub used_at: Option<i64>,
    pub used_by: Option<[u8; 32]>,
}

/// A message waiting for a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub tally: String,
    pub action: Action,
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

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutbox {
    pub tally: String,
    pub action: Action,
    pub partner_agent: [u8; 32],
    pub host: Option<String>,
    pub port: Option<u16>,
    pub message: String,
    /// Milliseconds since the Unix epoch.
    pub next_attempt: i64,
}

const TALLY_COLUMNS: &str = "id, uuid, state, side, partner_agent, partner_cid, partner_host, \
     partner_port, record, reason, created_at, updated_at, closing";

/// How a state is stored: `state`, and `closing` for an open tally that
/// is closing or closed (migration 6).
fn stored_state(state: TallyState) -> (&'static str, Option<&'static str>) {
    match state {
        TallyState::Closing | TallyState::Closed => ("open", Some(state.as_str())),
        _ => (state.as_str(), None),
    }
}

fn tally_from_row(row: &Row<'_>) -> rusqlite::Result<TallyRow> {
    let bad = |i: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            Box::new(StoreError::Corrupt(what)),
        )
    };
    let state: String = row.get(2)?;
    let closing: Option<String> = row.get(12)?;
    let side: Option<String> = row.get(3)?;
    let port: Option<i64> = row.get(7)?;
    Ok(TallyRow {
        id: row.get(0)?,
        uuid: row.get(1)?,
        state: match closing.as_deref() {
            None => TallyState::from_name(&state)
                .ok_or_else(|| bad(2, format!("unknown tally state {state:?}")))?,
            Some("closing") => TallyState::Closing,
            Some("closed") => TallyState::Closed,
            Some(other) => return Err(bad(12, format!("unknown closing state {other:?}"))),
        },
        side: match side {
            None => None,
            Some(s) => {
                Some(Side::parse(&s).ok_or_else(|| bad(3, format!("unknown tally side {s:?}")))?)
            }
        },
        partner_agent: row.get(4)?,
        partner_cid: row.get(5)?,
        partner_host: row.get(6)?,
        partner_port: port.and_then(|p| u16::try_from(p).ok()),
        record: row.get(8)?,
        reason: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

const OUTBOX_COLUMNS: &str =
    "id, tally, action, partner_agent, host, port, message, attempts, next_attempt, last_error";

fn outbox_from_row(row: &Row<'_>) -> rusqlite::Result<OutboxRow> {
    let action: String = row.get(2)?;
    let port: Option<i64> = row.get(5)?;
    let attempts: i64 = row.get(7)?;
    Ok(OutboxRow {
        id: row.get(0)?,
        tally: row.get(1)?,
        action: Action::from_name(&action).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                Box::new(StoreError::Corrupt(format!(
                    "unknown outbox action {action:?}"
                ))),
            )
        })?,
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

pub(super) fn tally(conn: &Connection, id: &str) -> Result<Option<TallyRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TALLY_COLUMNS} FROM tallies WHERE id = ?1"
    ))?;
    Ok(stmt.query_row([id], tally_from_row).optional()?)
}

pub(super) fn tally_by_uuid(conn: &Connection, uuid: &str) -> Result<Option<TallyRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TALLY_COLUMNS} FROM tallies WHERE uuid = ?1"
    ))?;
    Ok(stmt.query_row([uuid], tally_from_row).optional()?)
}

pub(super) fn tallies(conn: &Connection) -> Result<Vec<TallyRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TALLY_COLUMNS} FROM tallies ORDER BY created_at DESC, rowid DESC"
    ))?;
    let rows = stmt.query_map([], tally_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn waiting_ticket(
    conn: &Connection,
    agent: &[u8; 32],
) -> Result<Option<TallyRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TALLY_COLUMNS} FROM tallies WHERE partner_agent = ?1 AND state = 'ticket'
         ORDER BY created_at, rowid LIMIT 1"
    ))?;
    Ok(stmt.query_row([agent], tally_from_row).optional()?)
}

pub(super) fn knows_agent(conn: &Connection, agent: &[u8; 32]) -> Result<bool, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM tallies WHERE partner_agent = ?1 AND state != 'void'",
        [agent],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

pub(super) fn ticket_token(conn: &Connection, token: &str) -> Result<Option<TokenRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT token, tally, expires, used_at, used_by FROM tally_tickets WHERE token = ?1",
    )?;
    Ok(stmt
        .query_row([token], |r| {
            let expires: i64 = r.get(2)?;
            Ok(TokenRow {
                token: r.get(0)?,
                tally: r.get(1)?,
                expires: u64::try_from(expires).unwrap_or(0),
                used_at: r.get(3)?,
                used_by: r.get(4)?,
            })
        })
        .optional()?)
}

pub(super) fn tokens_of(conn: &Connection, tally: &str) -> Result<Vec<TokenRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT token, tally, expires, used_at, used_by FROM tally_tickets WHERE tally = ?1
         ORDER BY created_at",
    )?;
    let rows = stmt.query_map([tally], |r| {
        let expires: i64 = r.get(2)?;
        Ok(TokenRow {
            token: r.get(0)?,
            tally: r.get(1)?,
            expires: u64::try_from(expires).unwrap_or(0),
            used_at: r.get(3)?,
            used_by: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn outbox(conn: &Connection) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY id"))?;
    let rows = stmt.query_map([], outbox_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn outbox_for(
    conn: &Connection,
    agent: &[u8; 32],
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE partner_agent = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([agent], outbox_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn outbox_due(conn: &Connection, now_ms: i64) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE next_attempt <= ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([now_ms], outbox_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn next_outbox_attempt(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn.query_row("SELECT min(next_attempt) FROM outbox", [], |r| r.get(0))?)
}

impl StoreTx<'_> {
    /// Adds a tally; refuses an id or uuid that exists.
    pub fn insert_tally(&self, row: &TallyRow) -> Result<(), StoreError> {
        let at = now();
        let inserted = self.conn().execute(
            "INSERT INTO tallies (id, uuid, state, side, partner_agent, partner_cid, partner_host,
                 partner_port, record, reason, created_at, updated_at, closing)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)
             ON CONFLICT DO NOTHING",
            params![
                row.id,
                row.uuid,
                stored_state(row.state).0,
                row.side.map(Side::as_str),
                row.partner_agent,
                row.partner_cid,
                row.partner_host,
                row.partner_port,
                row.record,
                row.reason,
                at,
                stored_state(row.state).1
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "there is already a tally {} (or one with uuid {:?})",
                row.id, row.uuid
            )));
        }
        Ok(())
    }

    /// Writes every field of an existing tally but its id and creation time.
    pub fn update_tally(&self, row: &TallyRow) -> Result<(), StoreError> {
        let changed = self.conn().execute(
            "UPDATE tallies SET uuid = ?2, state = ?3, side = ?4, partner_agent = ?5,
                 partner_cid = ?6, partner_host = ?7, partner_port = ?8, record = ?9,
                 reason = ?10, updated_at = ?11, closing = ?12
             WHERE id = ?1",
            params![
                row.id,
                row.uuid,
                stored_state(row.state).0,
                row.side.map(Side::as_str),
                row.partner_agent,
                row.partner_cid,
                row.partner_host,
                row.partner_port,
                row.record,
                row.reason,
                now(),
                stored_state(row.state).1
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: format!("tally {}", row.id),
            });
        }
        Ok(())
    }

    pub fn insert_ticket_token(
        &self,
        token: &str,
        tally: &str,
        expires: u64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO tally_tickets (token, tally, expires, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![token, tally, to_i64(expires), now()],
        )?;
        Ok(())
    }

    /// Marks a token used by `agent`; refuses a token already used.
    pub fn use_ticket_token(&self, token: &str, agent: &[u8; 32]) -> Result<(), StoreError> {
        let changed = self.conn().execute(
            "UPDATE tally_tickets SET used_at = ?2, used_by = ?3 WHERE token = ?1 AND used_at IS NULL",
            params![token, now(), agent],
        )?;
        if changed != 1 {
            return Err(StoreError::Conflict(
                "the ticket's token was used meanwhile".into(),
            ));
        }
        Ok(())
    }

    /// Queues a message; replaces an undelivered one of the same tally and
    /// action (the newer supersedes it). Returns its id.
    pub fn put_outbox(&self, new: &NewOutbox) -> Result<i64, StoreError> {
        let id: i64 = self.conn().query_row(
            "INSERT INTO outbox (tally, action, partner_agent, host, port, message, next_attempt,
                 created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (tally, action) DO UPDATE SET partner_agent = excluded.partner_agent,
                 host = excluded.host, port = excluded.port, message = excluded.message,
                 attempts = 0, next_attempt = excluded.next_attempt, last_error = NULL
             RETURNING id",
            params![
                new.tally,
                new.action.as_str(),
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

    /// Removes a delivered (or cancelled) message; `false` if it was gone.
    pub fn delete_outbox(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM outbox WHERE id = ?1", [id])?
            == 1)
    }

    /// Removes every undelivered message of a tally.
    pub fn cancel_outbox(&self, tally: &str) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM outbox WHERE tally = ?1", [tally])?)
    }

    /// Records a failed attempt and when to try next.
    pub fn outbox_failed(&self, id: i64, next_attempt: i64, error: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?2, last_error = ?3
             WHERE id = ?1",
            params![id, next_attempt, error],
        )?;
        Ok(())
    }
}

/// Read methods added by this module, for [`Store`](super::Store) and
/// [`StoreTx`].
macro_rules! tally_read_methods {
    () => {
        /// A tally by the wallet's id.
        pub fn tally(&self, id: &str) -> Result<Option<TallyRow>, StoreError> {
            tallies::tally(self.conn(), id)
        }

        /// A tally by its record's uuid.
        pub fn tally_by_uuid(&self, uuid: &str) -> Result<Option<TallyRow>, StoreError> {
            tallies::tally_by_uuid(self.conn(), uuid)
        }

        /// Every tally, newest first.
        pub fn tallies(&self) -> Result<Vec<TallyRow>, StoreError> {
            tallies::tallies(self.conn())
        }

        /// The oldest scanned ticket of `agent`'s still waiting for its offer.
        pub fn waiting_ticket(&self, agent: &[u8; 32]) -> Result<Option<TallyRow>, StoreError> {
            tallies::waiting_ticket(self.conn(), agent)
        }

        /// Whether `agent` is the partner of a tally that is not void.
        pub fn knows_agent(&self, agent: &[u8; 32]) -> Result<bool, StoreError> {
            tallies::knows_agent(self.conn(), agent)
        }

        /// A token of a ticket this wallet issued.
        pub fn ticket_token(&self, token: &str) -> Result<Option<TokenRow>, StoreError> {
            tallies::ticket_token(self.conn(), token)
        }

        /// The tokens issued for a tally.
        pub fn tokens_of(&self, tally: &str) -> Result<Vec<TokenRow>, StoreError> {
            tallies::tokens_of(self.conn(), tally)
        }

        /// Every undelivered message, oldest first.
        pub fn outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
            tallies::outbox(self.conn())
        }

        /// The undelivered messages for `agent`, oldest first.
        pub fn outbox_for(&self, agent: &[u8; 32]) -> Result<Vec<OutboxRow>, StoreError> {
            tallies::outbox_for(self.conn(), agent)
        }

        /// Messages whose next attempt is due at `now_ms`.
        pub fn outbox_due(&self, now_ms: i64) -> Result<Vec<OutboxRow>, StoreError> {
            tallies::outbox_due(self.conn(), now_ms)
        }

        /// When the next message is due (ms), if any waits.
        pub fn next_outbox_attempt(&self) -> Result<Option<i64>, StoreError> {
            tallies::next_outbox_attempt(self.conn())
        }
    };
}
pub(super) use tally_read_methods;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::wallet_with_address;
    use crate::store::{NewNotification, NotificationKind, Store};

    fn row(id: &str, uuid: Option<&str>, state: TallyState, partner: Option<[u8; 32]>) -> TallyRow {
        TallyRow {
            id: id.into(),
            uuid: uuid.map(str::to_owned),
            state,
            side: Some(Side::Stock),
            partner_agent: partner,
            partner_cid: None,
            partner_host: Some("127.0.0.1".into()),
            partner_port: Some(7),
            record: "{}".into(),
            reason: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn outbox(tally: &str, action: Action, message: &str) -> NewOutbox {
        NewOutbox {
            tally: tally.into(),
            action,
            partner_agent: [9; 32],
            host: Some("127.0.0.1".into()),
            port: Some(7),
            message: message.into(),
            next_attempt: 100,
        }
    }

    #[test]
    fn schema_4_keeps_the_inbox_and_adds_tallies() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wallet.sqlite");
        {
            let conn = crate::store::migrations::file_at_schema(&path, 3);
            conn.execute(
                "INSERT INTO notifications (kind, title, body, created_at) VALUES ('reorg', 't', 'b', 1)",
                [],
            )
            .expect("old row");
        }
        let mut store = Store::open(&path).expect("migrates");
        let notes = store.notifications(false, 10).expect("reads");
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].tally, None);
        store
            .write(|tx| {
                tx.insert_tally(&row("t1", Some("u1"), TallyState::Draft, None))?;
                tx.add_tally_notification(
                    &NewNotification {
                        kind: NotificationKind::TallyOffered,
                        title: "t".into(),
                        body: "b".into(),
                        txid: None,
                    },
                    "t1",
                )
            })
            .expect("writes");
        let notes = store.notifications(false, 10).expect("reads");
        assert_eq!(notes[0].kind, NotificationKind::TallyOffered);
        assert_eq!(notes[0].tally.as_deref(), Some("t1"));
    }

    #[test]
    fn tallies_tokens_and_the_outbox() {
        let mut store = wallet_with_address();
        let bob = [2u8; 32];
        store
            .write(|tx| {
                tx.insert_tally(&row("a", Some("ua"), TallyState::Draft, None))?;
                tx.insert_tally(&row("b", None, TallyState::Ticket, Some(bob)))?;
                tx.insert_ticket_token("tok", "a", 50)
            })
            .expect("writes");
        // Ids and uuids are unique; an offered tally needs its uuid.
        for dup in [
            row("a", None, TallyState::Ticket, Some(bob)),
            row("c", Some("ua"), TallyState::Draft, None),
        ] {
            assert!(store.write(|tx| tx.insert_tally(&dup)).is_err());
        }
        assert!(
            store
                .write(|tx| tx.insert_tally(&row("d", None, TallyState::Open, Some(bob))))
                .is_err()
        );
        assert_eq!(
            store.tally_by_uuid("ua").expect("reads").map(|r| r.id),
            Some("a".into())
        );
        assert_eq!(
            store.waiting_ticket(&bob).expect("reads").map(|r| r.id),
            Some("b".into())
        );
        assert!(store.knows_agent(&bob).expect("reads"));
        // A token is used once.
        store
            .write(|tx| tx.use_ticket_token("tok", &bob))
            .expect("uses");
        assert!(store.write(|tx| tx.use_ticket_token("tok", &bob)).is_err());
        let token = store.ticket_token("tok").expect("reads").expect("there");
        assert_eq!((token.expires, token.used_by), (50, Some(bob)));
        // One message per tally and action: a newer one replaces it.
        let first = store
            .write(|tx| tx.put_outbox(&outbox("b", Action::Ticket, "1")))
            .expect("queues");
        store
            .write(|tx| tx.outbox_failed(first, 500, "down"))
            .expect("fails");
        let again = store
            .write(|tx| tx.put_outbox(&outbox("b", Action::Ticket, "2")))
            .expect("queues");
        assert_eq!(first, again);
        let rows = store.outbox().expect("reads");
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].message.as_str(), rows[0].attempts), ("2", 0));
        store
            .write(|tx| tx.outbox_failed(first, 500, "down"))
            .expect("fails");
        assert!(store.outbox_due(499).expect("reads").is_empty());
        assert_eq!(store.outbox_due(500).expect("reads").len(), 1);
        assert_eq!(store.next_outbox_attempt().expect("reads"), Some(500));
        assert_eq!(
            store.outbox_for(&[9; 32]).expect("reads")[0]
                .last_error
                .as_deref(),
            Some("down")
        );
        store
            .write(|tx| tx.put_outbox(&outbox("a", Action::Offer, "3")))
            .expect("queues");
        assert_eq!(store.write(|tx| tx.cancel_outbox("b")).expect("cancels"), 1);
        let left = store.outbox().expect("reads");
        assert_eq!(left.len(), 1);
        assert!(
            store
                .write(|tx| tx.delete_outbox(left[0].id))
                .expect("deletes")
        );
        assert!(
            !store
                .write(|tx| tx.delete_outbox(left[0].id))
                .expect("deletes")
        );
        // A void tally's partner is a stranger again.
        let mut b = store.tally("b").expect("reads").expect("there");
        b.state = TallyState::Void;
        store.write(|tx| tx.update_tally(&b)).expect("updates");
        assert!(!store.knows_agent(&bob).expect("reads"));
    }
}
