//! What the wallet keeps of a transaction's bytes once it no longer needs
//! the bytes themselves (schema 10).
//!
//! A transaction's encoding (`transactions.raw`) is needed for one thing:
//! handing one of the wallet's own sends to the gateway again while it may
//! still go through ([`keeps_raw`]). The history needs a few facts of it
//! that the wallet's outputs do not hold: the addresses it pays that are
//! not the wallet's (`tx_facts.counterparties`), the fee of an own send
//! (`tx_facts.fee`), and which of the wallet's coins it spends
//! (`tx_spends`, for what it sent).
//!
//! Bytes reach the store in two ways, both inside the caller's write
//! transaction: a new transaction (`StoreTx::insert_transaction`) and a
//! known one seen again in the pool or a block (`StoreTx::offer_raw`).
//! Both go through [`take`]: the facts are read from the bytes against
//! what the store holds then, and the bytes are written to the row only if
//! the wallet needs them, so a payment in never has them in its row, not
//! even for the length of the write (a row that grows and shrinks again
//! leaves its pages part-empty). [`settle`], at the end of every write
//! ([`super::history::refresh`]), drops the bytes an own send no longer
//! needs once the write made it final or released its coins, and reads the
//! facts of rows that hold bytes (after migration 10, every row), before
//! the history rows are computed from the facts.
//!
//! A later sighting reads the facts again: a rescan that found more of the
//! wallet's addresses corrects them, and an own send that shows up in a
//! block after it was given up has its bytes again while it needs them.

use notch_protocol::{Address, Network, Transaction};
use rusqlite::{Connection, OptionalExtension, params};

use super::ledger::{OutPoint, TxRecord, TxState, amount_from_sql, amount_to_sql};
use super::{Hash32, StoreError, inbox, ledger, wallet};

/// What the history needs of a transaction beyond the wallet's outputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxFacts {
    /// The fee, for an own send that spends coins (the wallet paid it).
    pub fee: Option<u64>,
    /// Addresses it pays that are not the wallet's, in output order, each
    /// once.
    pub counterparties: Vec<String>,
    /// The wallet's coins it spends, in input order.
    pub spends: Vec<OutPoint>,
}

/// The wallet's network (addresses are encoded for it).
pub(super) fn network(conn: &Connection) -> Result<Network, StoreError> {
    Ok(wallet::wallet(conn)?
        .and_then(|w| Network::from_name(&w.network))
        .unwrap_or(Network::Sandbox))
}

/// The facts of `t`, a transaction of the wallet recorded as `record`,
/// against what the store holds now (the wallet's addresses and coins).
pub(super) fn derive(
    conn: &Connection,
    network: Network,
    record: &TxRecord,
    t: &Transaction,
) -> Result<TxFacts, StoreError> {
    let mut facts = TxFacts::default();
    for input in &t.inputs {
        let op = OutPoint {
            txid: input.txid.0,
            vout: input.index,
        };
        if ledger::output(conn, &op)?.is_some() && !facts.spends.contains(&op) {
            facts.spends.push(op);
        }
    }
    for output in &t.outputs {
        let address = Address::new(network, output.owner).encode();
        if wallet::find_address(conn, &address)?.is_none()
            && !facts.counterparties.contains(&address)
        {
            facts.counterparties.push(address);
        }
    }
    if record.own && !t.inputs.is_empty() {
        facts.fee = Some(t.fee);
    }
    Ok(facts)
}

/// Stores `facts` as those of `txid` if they differ from what is stored
/// (a sighting that changes nothing writes nothing), and marks the
/// transaction for the refresh of its history row: the facts are what the
/// row is computed from. A transaction with none (a payment in from a mint:
/// no counterparty, no fee, no coin of the wallet spent) has no row, so
/// most payments in cost nothing here.
pub(super) fn write(conn: &Connection, txid: &Hash32, facts: &TxFacts) -> Result<(), StoreError> {
    if &read(conn, txid)? == facts {
        return Ok(());
    }
    if facts.fee.is_none() && facts.counterparties.is_empty() {
        conn.prepare_cached("DELETE FROM tx_facts WHERE txid = ?1")?
            .execute([txid])?;
    } else {
        conn.prepare_cached(
            "INSERT INTO tx_facts (txid, fee, counterparties) VALUES (?1, ?2, ?3)
             ON CONFLICT (txid) DO UPDATE SET fee = ?2, counterparties = ?3",
        )?
        .execute(params![
            txid,
            facts.fee.map(amount_to_sql),
            facts.counterparties.join("\n")
        ])?;
    }
    conn.prepare_cached("DELETE FROM tx_spends WHERE txid = ?1")?
        .execute([txid])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO tx_spends (txid, input, coin_txid, coin_vout) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (input, op) in facts.spends.iter().enumerate() {
        insert.execute(params![txid, input as i64, op.txid, op.vout])?;
    }
    conn.prepare_cached("INSERT OR IGNORE INTO history_dirty_tx VALUES (?1)")?
        .execute([txid])?;
    Ok(())
}

/// The stored facts of `txid` (all empty if it has none).
pub(super) fn read(conn: &Connection, txid: &Hash32) -> Result<TxFacts, StoreError> {
    let row: Option<(Option<i64>, String)> = conn
        .prepare_cached("SELECT fee, counterparties FROM tx_facts WHERE txid = ?1")?
        .query_row([txid], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (fee, counterparties) = row.unwrap_or_default();
    let spends = conn
        .prepare_cached(
            "SELECT coin_txid, coin_vout FROM tx_spends WHERE txid = ?1 ORDER BY input",
        )?
        .query_map([txid], |r| {
            Ok(OutPoint {
                txid: r.get(0)?,
                vout: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(TxFacts {
        fee: fee.map(amount_from_sql),
        counterparties: if counterparties.is_empty() {
            Vec::new()
        } else {
            counterparties.split('\n').map(str::to_owned).collect()
        },
        spends,
    })
}

/// Whether the wallet needs the bytes of `record`: an own send that may
/// still have to be handed to the gateway again. That is every own send
/// until it is final, except one that failed with its coins released
/// (abandoned by the person, or proven dead by a conflicting spend in a
/// verified block): nothing resubmits those, and if one shows up in a block
/// after all, apply hands its bytes over again. An own send the gateway
/// called rejected or dropped keeps them while its coins stay reserved:
/// `sync::resolve_pending` asks about it and submits it again if the
/// gateway forgot it. Everything else (payments in, final sends) is
/// listed from its facts and outputs alone.
pub(super) fn keeps_raw(conn: &Connection, record: &TxRecord) -> Result<bool, StoreError> {
    if !record.own || record.state == TxState::Final {
        return Ok(false);
    }
    if !record.state.is_failed() {
        return Ok(true);
    }
    Ok(!inbox::outputs_used_by(conn, &record.txid)?.is_empty())
}

/// The bytes `raw` of the recorded transaction `txid`, just inserted or
/// seen again: its facts are read from them, and they are written to its
/// row only if the wallet needs them and the row has none. Bytes that do
/// not decode (never from this wallet's checks) leave the facts as they
/// are.
pub(super) fn take(conn: &Connection, txid: &Hash32, raw: &[u8]) -> Result<(), StoreError> {
    let Some(record) = ledger::transaction(conn, txid)? else {
        return Ok(());
    };
    if let Ok(t) = Transaction::decode(raw) {
        write(conn, txid, &derive(conn, network(conn)?, &record, &t)?)?;
    }
    if record.raw.is_none() && keeps_raw(conn, &record)? {
        conn.prepare_cached("UPDATE transactions SET raw = ?2 WHERE txid = ?1")?
            .execute(params![txid, raw])?;
    }
    Ok(())
}

/// At the end of a write, for a transaction it touched: if its row holds
/// bytes, reads the facts from them (they may have changed with the
/// write: coins recorded, addresses derived) and drops them if the wallet
/// no longer needs them ([`keeps_raw`]).
pub(super) fn settle(conn: &Connection, network: Network, txid: &Hash32) -> Result<(), StoreError> {
    let Some(record) = ledger::transaction(conn, txid)? else {
        return Ok(());
    };
    let Some(raw) = record.raw.as_deref() else {
        return Ok(());
    };
    if let Ok(t) = Transaction::decode(raw) {
        write(conn, txid, &derive(conn, network, &record, &t)?)?;
    }
    if !keeps_raw(conn, &record)? {
        // No trigger marks this (history_tx_raw fires only when bytes
        // arrive): the facts just written are what the row is computed from.
        conn.prepare_cached("UPDATE transactions SET raw = NULL WHERE txid = ?1")?
            .execute([txid])?;
    }
    Ok(())
}

/// Where the stored facts and the kept bytes disagree with what they should
/// be, for [`super::history::check`]: bytes kept that the wallet does not
/// need, bytes missing for an own send that needs them, and facts that
/// differ from the bytes where the bytes are still there (once the bytes
/// are gone, the facts are all that is left to check against).
pub(super) fn check(
    conn: &Connection,
    network: Network,
    record: &TxRecord,
) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    let name = ledger::hex(&record.txid);
    let needed = keeps_raw(conn, record)?;
    match (&record.raw, needed) {
        (Some(_), false) => problems.push(format!(
            "{name} ({}) keeps its bytes, which the wallet no longer needs",
            record.state
        )),
        (None, true) => problems.push(format!(
            "{name} ({}) is an unresolved own send without its bytes",
            record.state
        )),
        _ => {}
    }
    if let Some(t) = record
        .raw
        .as_deref()
        .and_then(|r| Transaction::decode(r).ok())
    {
        let want = derive(conn, network, record, &t)?;
        let have = read(conn, &record.txid)?;
        if want != have {
            problems.push(format!(
                "{name}: stored facts {have:?}, read from its bytes {want:?}"
            ));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use notch_protocol::{AssetId, PublicKey, Signature, TxId};

    use super::*;
    use crate::keys::AddressChain;
    use crate::store::history::{Direction, HistoryQuery, HistoryRecord, TxEffect};
    use crate::store::{Header, NewAddress, NewOutput, NewTransaction, NewWallet, Store};

    const COIN: Hash32 = [0xC0; 32];
    const EURO: Hash32 = [0xE0; 32];
    const NETWORK: Network = Network::Sandbox;
    const OURS: [u8; 32] = [0x11; 32];
    const OUR_CHANGE: [u8; 32] = [0x12; 32];
    /// The payer of the first payment (its change goes back there).
    const PAYER: [u8; 32] = [0x21; 32];
    /// Whom the wallet pays.
    const PAYEE: [u8; 32] = [0x22; 32];

    fn address(key: [u8; 32]) -> String {
        Address::new(NETWORK, PublicKey(key)).encode()
    }

    fn header(height: u64, fork: u8) -> Header {
        let mut hash = [fork; 32];
        hash[..8].copy_from_slice(&height.to_be_bytes());
        let mut prev_hash = [if height == 1 { 0 } else { fork }; 32];
        prev_hash[..8].copy_from_slice(&height.wrapping_sub(1).to_be_bytes());
        Header {
            height,
            hash,
            prev_hash,
            time: 1_000_000 + height * 10 + u64::from(fork),
            verified: true,
        }
    }

    fn wallet() -> Store {
        let mut store = Store::open_in_memory().expect("opens");
        store
            .write(|tx| {
                tx.init_wallet(&NewWallet {
                    wallet_id: "w".into(),
                    network: NETWORK.name().into(),
                    gateway_url: "http://127.0.0.1:7420".into(),
                    account: 0,
                })?;
                tx.insert_addresses(&[
                    NewAddress {
                        chain: AddressChain::Receive,
                        index: 0,
                        address: address(OURS),
                        public_key: OURS,
                    },
                    NewAddress {
                        chain: AddressChain::Change,
                        index: 0,
                        address: address(OUR_CHANGE),
                        public_key: OUR_CHANGE,
                    },
                ])?;
                for h in 1..=3 {
                    tx.append_header(&header(h, 0))?;
                }
                Ok(())
            })
            .expect("sets up");
        store
    }

    /// A transaction spending `inputs` and paying `outputs` (key, asset,
    /// amount), with a signature per input (not checked by the store).
    fn transaction(
        inputs: &[OutPoint],
        outputs: &[([u8; 32], Hash32, u64)],
        fee: u64,
    ) -> Transaction {
        let mut t = Transaction::new(NETWORK);
        for op in inputs {
            t.inputs.push(notch_protocol::OutPoint {
                txid: TxId(op.txid),
                index: op.vout,
            });
            t.signatures.push(Signature([0x5A; 64]));
        }
        for &(owner, asset, amount) in outputs {
            t.outputs.push(notch_protocol::Output {
                asset: AssetId(asset),
                amount,
                owner: PublicKey(owner),
            });
        }
        t.fee = fee;
        t
    }

    /// Records `t` as apply does: the transaction with its bytes, the
    /// outputs paying the wallet, the coins it spends marked or locked.
    fn record(
        store: &mut Store,
        t: &Transaction,
        own: bool,
        state: TxState,
        height: Option<u64>,
    ) -> Hash32 {
        let txid = t.txid().0;
        store
            .write(|tx| {
                tx.insert_transaction(&NewTransaction {
                    txid,
                    state,
                    own,
                    raw: Some(t.encode()),
                    block: height.map(|h| (h, header(h, 0).hash)),
                })?;
                for (vout, o) in t.outputs.iter().enumerate() {
                    if [OURS, OUR_CHANGE].contains(&o.owner.0) {
                        tx.insert_output(&NewOutput {
                            outpoint: OutPoint {
                                txid,
                                vout: vout as u32,
                            },
                            asset: o.asset.0,
                            amount: o.amount,
                            address: address(o.owner.0),
                            height,
                        })?;
                    }
                }
                let spent: Vec<OutPoint> = t
                    .inputs
                    .iter()
                    .map(|i| OutPoint {
                        txid: i.txid.0,
                        vout: i.index,
                    })
                    .collect();
                if own && state == TxState::Queued {
                    tx.lock_outputs(&txid, &spent)?;
                } else {
                    for op in &spent {
                        tx.mark_spent(op, &txid)?;
                    }
                }
                Ok(())
            })
            .expect("records");
        txid
    }

    fn raw_kept(store: &Store, txid: &Hash32) -> bool {
        store
            .transaction(txid)
            .expect("reads")
            .expect("known")
            .raw
            .is_some()
    }

    fn row(store: &Store, txid: &Hash32) -> HistoryRecord {
        store.history_record(txid).expect("reads").expect("listed")
    }

    /// What a row says that comes from the transaction's bytes and outputs
    /// (not its state or block).
    fn facts_of(r: &HistoryRecord) -> (Direction, Option<u64>, Vec<TxEffect>, Vec<String>) {
        (
            r.direction,
            r.fee,
            r.effects.clone(),
            r.counterparties.clone(),
        )
    }

    fn found_by(store: &Store, search: &str) -> Vec<Hash32> {
        let q = HistoryQuery {
            search: Some(search.into()),
            ..HistoryQuery::default()
        };
        store
            .history_page(&q, None, 0)
            .expect("page")
            .rows
            .iter()
            .map(|r| r.txid)
            .collect()
    }

    fn assert_consistent(store: &Store) {
        let problems = store.check_history().expect("checks");
        assert!(problems.is_empty(), "{problems:#?}");
    }

    fn set_state(store: &mut Store, txid: &Hash32, state: TxState, height: Option<u64>, fork: u8) {
        store
            .write(|tx| {
                let block = height.map(|h| (h, header(h, fork).hash));
                tx.set_transaction_state(txid, state, block, None)
            })
            .expect("moves");
    }

    #[test]
    fn bytes_stay_only_for_own_sends_until_final_and_the_history_keeps_its_facts() {
        let mut store = wallet();
        // A payment in from someone who takes change back, confirmed; a
        // mint paying EURO, in the pool.
        let outside = OutPoint {
            txid: [0xAA; 32],
            vout: 3,
        };
        let paid = transaction(&[outside], &[(PAYER, COIN, 50), (OURS, COIN, 100)], 2);
        let paid_id = record(&mut store, &paid, false, TxState::Confirmed, Some(1));
        let minted = transaction(&[], &[(OURS, EURO, 30)], 0);
        let minted_id = record(&mut store, &minted, false, TxState::InPool, None);
        assert!(!raw_kept(&store, &paid_id) && !raw_kept(&store, &minted_id));
        // The payment's facts are kept; the mint has none to keep.
        assert_eq!(
            store.transaction_facts(&paid_id).expect("reads"),
            TxFacts {
                fee: None,
                counterparties: vec![address(PAYER)],
                spends: Vec::new(),
            }
        );
        assert_eq!(
            store.transaction_facts(&minted_id).expect("reads"),
            TxFacts::default()
        );
        assert_consistent(&store);

        // An own send of 60 of the payment's coin, 39 back as change.
        let coin = OutPoint {
            txid: paid_id,
            vout: 1,
        };
        let send = transaction(&[coin], &[(PAYEE, COIN, 60), (OUR_CHANGE, COIN, 39)], 1);
        let send_id = record(&mut store, &send, true, TxState::Queued, None);
        assert!(
            raw_kept(&store, &send_id),
            "queued: it may be submitted again"
        );
        assert_consistent(&store);
        let first = (
            facts_of(&row(&store, &paid_id)),
            facts_of(&row(&store, &minted_id)),
            facts_of(&row(&store, &send_id)),
        );
        let sent = row(&store, &send_id);
        assert_eq!(sent.fee, Some(1));
        assert_eq!(sent.counterparties, vec![address(PAYEE)]);
        assert_eq!((sent.effects[0].received, sent.effects[0].sent), (39, 100));
        assert_eq!(row(&store, &paid_id).counterparties, vec![address(PAYER)]);

        // On its way: in the pool, in a block.
        store
            .write(|tx| {
                tx.set_transaction_state(&send_id, TxState::InPool, None, None)?;
                tx.mark_spent(&coin, &send_id).map(|_| ())
            })
            .expect("in pool");
        set_state(&mut store, &send_id, TxState::Confirmed, Some(2), 0);
        assert!(raw_kept(&store, &send_id), "confirmed is not final");
        assert_consistent(&store);

        // A reorg takes both blocks away: the rows keep what the bytes said.
        store
            .write(|tx| crate::lifecycle::roll_back(tx, 0).map(|_| ()))
            .expect("rolls back");
        assert_eq!(row(&store, &paid_id).state, TxState::InPool);
        assert_eq!(row(&store, &send_id).state, TxState::InPool);
        assert!(!raw_kept(&store, &paid_id) && raw_kept(&store, &send_id));
        let rolled_back = (
            facts_of(&row(&store, &paid_id)),
            facts_of(&row(&store, &minted_id)),
            facts_of(&row(&store, &send_id)),
        );
        assert_eq!(rolled_back, first);
        assert_consistent(&store);

        // Both come back in blocks of another chain (apply hands the bytes
        // over again), and the send goes final.
        store
            .write(|tx| {
                for h in 1..=4 {
                    tx.append_header(&header(h, 9))?;
                }
                tx.set_transaction_state(
                    &paid_id,
                    TxState::Confirmed,
                    Some((1, header(1, 9).hash)),
                    None,
                )?;
                tx.offer_raw(&paid_id, &paid.encode())?;
                tx.set_transaction_state(
                    &send_id,
                    TxState::Confirmed,
                    Some((2, header(2, 9).hash)),
                    None,
                )?;
                tx.offer_raw(&send_id, &send.encode())
            })
            .expect("confirms again");
        assert!(!raw_kept(&store, &paid_id), "offered, read, not kept");
        assert!(raw_kept(&store, &send_id));
        set_state(&mut store, &send_id, TxState::Final, Some(2), 9);
        assert!(!raw_kept(&store, &send_id), "final: nothing to resubmit");
        let last = (
            facts_of(&row(&store, &paid_id)),
            facts_of(&row(&store, &minted_id)),
            facts_of(&row(&store, &send_id)),
        );
        assert_eq!(last, first);
        assert_eq!(row(&store, &send_id).time, header(2, 9).time);
        assert_consistent(&store);
        // Search by the addresses the bytes named still finds them.
        assert_eq!(found_by(&store, &address(PAYEE)), vec![send_id]);
        assert_eq!(found_by(&store, &address(PAYER)), vec![paid_id]);
        assert_eq!(found_by(&store, &address(OUR_CHANGE)), vec![send_id]);
        let no_bytes: i64 = store
            .conn()
            .query_row(
                "SELECT count(*) FROM transactions WHERE raw IS NULL",
                [],
                |r| r.get(0),
            )
            .expect("counts");
        assert_eq!(no_bytes, 3);
    }

    #[test]
    fn a_payment_in_never_has_its_bytes_in_its_row_even_inside_the_write() {
        let mut store = wallet();
        let paid = transaction(
            &[OutPoint {
                txid: [0xAA; 32],
                vout: 0,
            }],
            &[(PAYER, COIN, 5), (OURS, COIN, 7)],
            1,
        );
        let txid = paid.txid().0;
        store
            .write(|tx| {
                tx.insert_transaction(&NewTransaction {
                    txid,
                    state: TxState::InPool,
                    own: false,
                    raw: Some(paid.encode()),
                    block: None,
                })?;
                // A row that grew and shrank again would leave its pages
                // part-empty: the bytes never reach it.
                assert_eq!(tx.transaction(&txid)?.and_then(|r| r.raw), None);
                assert_eq!(
                    tx.transaction_facts(&txid)?.counterparties,
                    vec![address(PAYER)]
                );
                tx.offer_raw(&txid, &paid.encode())?;
                assert_eq!(tx.transaction(&txid)?.and_then(|r| r.raw), None);
                Ok(())
            })
            .expect("records");
    }

    #[test]
    fn a_failed_send_keeps_its_bytes_while_its_coins_are_reserved() {
        let mut store = wallet();
        let minted = transaction(&[], &[(OURS, COIN, 100)], 0);
        let minted_id = record(&mut store, &minted, false, TxState::Confirmed, Some(1));
        let coin = OutPoint {
            txid: minted_id,
            vout: 0,
        };
        let send = transaction(&[coin], &[(PAYEE, COIN, 99)], 1);
        let send_id = record(&mut store, &send, true, TxState::Queued, None);
        // The gateway's word: the coins stay reserved, the send may yet go
        // through (sync asks about it and submits it again).
        store
            .write(|tx| {
                crate::lifecycle::apply(
                    tx,
                    &send_id,
                    crate::lifecycle::TxEvent::GatewayRejected,
                    None,
                    Some("fee too low"),
                )
                .map(|_| ())
            })
            .expect("rejected");
        assert!(raw_kept(&store, &send_id));
        assert_consistent(&store);
        let before = facts_of(&row(&store, &send_id));
        // Given up: the coins are released, nothing submits it again.
        store
            .write(|tx| {
                crate::lifecycle::apply(
                    tx,
                    &send_id,
                    crate::lifecycle::TxEvent::Abandoned,
                    None,
                    Some("given up"),
                )
                .map(|_| ())
            })
            .expect("abandons");
        assert!(!raw_kept(&store, &send_id));
        assert_eq!(facts_of(&row(&store, &send_id)), before);
        assert_eq!(row(&store, &send_id).state, TxState::Abandoned);
        assert_consistent(&store);
        // It shows up in a block after all: its bytes are needed again
        // until it is final (a reorg could send it back to the pool).
        store
            .write(|tx| {
                crate::lifecycle::apply(
                    tx,
                    &send_id,
                    crate::lifecycle::TxEvent::InVerifiedBlock,
                    Some((2, header(2, 0).hash)),
                    None,
                )?;
                tx.mark_spent(&coin, &send_id)?;
                tx.offer_raw(&send_id, &send.encode())
            })
            .expect("mined");
        assert!(raw_kept(&store, &send_id));
        assert_eq!(facts_of(&row(&store, &send_id)), before);
        assert_consistent(&store);
    }
}

#[cfg(test)]
mod migration_tests {
    use notch_protocol::{AssetId, PublicKey, Signature};

    use super::*;
    use crate::store::Store;
    use crate::store::history::HistoryQuery;

    const NETWORK: Network = Network::Sandbox;

    fn address(key: u8) -> String {
        Address::new(NETWORK, PublicKey([key; 32])).encode()
    }

    #[test]
    fn migration_10_reads_the_facts_from_the_bytes_then_drops_the_bytes_not_needed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wallet.sqlite");
        // A wallet of schema 9: every transaction holds its bytes.
        let mint = {
            let mut t = Transaction::new(NETWORK);
            t.outputs.push(notch_protocol::Output {
                asset: AssetId([0xC0; 32]),
                amount: 100,
                owner: PublicKey([0x11; 32]),
            });
            t
        };
        let spend = |nonce: u64, payee: u8| {
            let mut t = Transaction::new(NETWORK);
            t.inputs.push(notch_protocol::OutPoint {
                txid: mint.txid(),
                index: 0,
            });
            t.signatures.push(Signature([0x5A; 64]));
            t.outputs.push(notch_protocol::Output {
                asset: AssetId([0xC0; 32]),
                amount: 90,
                owner: PublicKey([payee; 32]),
            });
            t.fee = 10;
            t.nonce = nonce;
            t
        };
        let final_send = spend(1, 0x22);
        let queued_send = spend(2, 0x23);
        {
            let conn = crate::store::migrations::file_at_schema(&path, 9);
            conn.execute(
                "INSERT INTO wallet (id, wallet_id, network, gateway_url, account, created_at)
                 VALUES (1, 'w', 'sandbox', 'http://127.0.0.1:1', 0, 0)",
                [],
            )
            .expect("wallet");
            conn.execute(
                "INSERT INTO addresses (chain, idx, address, public_key, used)
                 VALUES (0, 0, ?1, ?2, 1)",
                rusqlite::params![address(0x11), [0x11u8; 32]],
            )
            .expect("address");
            conn.execute(
                "INSERT INTO headers (height, hash, prev_hash, time, verified)
                 VALUES (1, randomblob(32), zeroblob(32), 777, 1)",
                [],
            )
            .expect("header");
            let insert = |t: &Transaction, state: &str, own: bool, block: bool| {
                conn.execute(
                    "INSERT INTO transactions (txid, state, own, raw, block_height, block_hash,
                         created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 5, 5)",
                    rusqlite::params![
                        t.txid().0,
                        state,
                        own,
                        t.encode(),
                        block.then_some(1),
                        block.then_some([7u8; 32])
                    ],
                )
                .expect("transaction");
            };
            insert(&mint, "final", false, true);
            insert(&final_send, "final", true, true);
            insert(&queued_send, "queued", true, false);
            conn.execute(
                "INSERT INTO outputs (txid, vout, asset, amount, address, height, spent_by)
                 VALUES (?1, 0, ?2, 100, ?3, 1, ?4)",
                rusqlite::params![
                    mint.txid().0,
                    [0xC0u8; 32],
                    address(0x11),
                    final_send.txid().0
                ],
            )
            .expect("output");
        }
        let store = Store::open(&path).expect("migrates");
        assert_eq!(
            store.schema_version().expect("version"),
            crate::store::SCHEMA_VERSION
        );
        let kept = |t: &Transaction| {
            store
                .transaction(&t.txid().0)
                .expect("reads")
                .expect("known")
                .raw
                .is_some()
        };
        assert!(!kept(&mint) && !kept(&final_send));
        assert!(
            kept(&queued_send),
            "an own send not yet final keeps its bytes"
        );
        let facts = store
            .transaction_facts(&final_send.txid().0)
            .expect("facts");
        assert_eq!(facts.fee, Some(10));
        assert_eq!(facts.counterparties, vec![address(0x22)]);
        let row = store
            .history_record(&final_send.txid().0)
            .expect("reads")
            .expect("listed");
        assert_eq!(row.fee, Some(10));
        assert_eq!(row.counterparties, vec![address(0x22)]);
        assert_eq!((row.effects[0].received, row.effects[0].sent), (0, 100));
        let found = store
            .history_page(
                &HistoryQuery {
                    search: Some(address(0x22)),
                    ..HistoryQuery::default()
                },
                None,
                0,
            )
            .expect("page");
        assert_eq!(found.total, 1);
        let problems = store.check_history().expect("checks");
        assert!(problems.is_empty(), "{problems:#?}");
        drop(store);
        // Opening again changes nothing (nothing left marked).
        let again = Store::open(&path).expect("reopens");
        assert!(again.check_history().expect("checks").is_empty());
    }
}
