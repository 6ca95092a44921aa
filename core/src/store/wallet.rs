//! Wallet metadata and addresses.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{StoreError, StoreTx, now};
use crate::keys::{AddressChain, KeyError};

/// What a new wallet database is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWallet {
    /// The wallet's id; also the key of its secret in the `SecretStore`.
    pub wallet_id: String,
    pub network: String,
    pub gateway_url: String,
    /// BIP-44 account of its keys (usually 0).
    pub account: u32,
}

/// The wallet's metadata. No secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletMeta {
    pub wallet_id: String,
    pub network: String,
    pub gateway_url: String,
    pub account: u32,
    /// The next receive index to hand out.
    pub next_receive_index: u32,
    /// The next change index to hand out.
    pub next_change_index: u32,
    /// Unix seconds.
    pub created_at: i64,
}

impl WalletMeta {
    pub fn next_index(&self, chain: AddressChain) -> u32 {
        match chain {
            AddressChain::Receive => self.next_receive_index,
            AddressChain::Change => self.next_change_index,
        }
    }
}

/// A derived address to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAddress {
    pub chain: AddressChain,
    pub index: u32,
    /// The address as the ledger writes it.
    pub address: String,
    /// The Ed25519 public key behind it.
    pub public_key: [u8; 32],
}

/// A derived address of the wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRecord {
    pub chain: AddressChain,
    pub index: u32,
    pub address: String,
    pub public_key: [u8; 32],
    /// Whether any transaction has paid it.
    pub used: bool,
}

fn chain_column(chain: AddressChain) -> &'static str {
    match chain {
        AddressChain::Receive => "next_receive_index",
        AddressChain::Change => "next_change_index",
    }
}

pub(super) fn wallet(conn: &Connection) -> Result<Option<WalletMeta>, StoreError> {
    let row = conn
        .query_row(
            "SELECT wallet_id, network, gateway_url, account, next_receive_index,
                    next_change_index, created_at
             FROM wallet WHERE id = 1",
            [],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, u32>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, i64>(5)?,
                    row.get::<_, i64>(6)?,
                ))
            },
        )
        .optional()?;
    let Some((wallet_id, network, gateway_url, account, next_receive, next_change, created_at)) =
        row
    else {
        return Ok(None);
    };
    // 2^31 means "every index handed out": it does not fit a u32 index.
    let index = |v: i64| {
        u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("next index {v} out of range")))
    };
    Ok(Some(WalletMeta {
        wallet_id,
        network,
        gateway_url,
        account,
        next_receive_index: index(next_receive)?,
        next_change_index: index(next_change)?,
        created_at,
    }))
}

fn address_from_row(row: &Row<'_>) -> rusqlite::Result<(u32, u32, String, [u8; 32], bool)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn address_record(
    (chain, index, address, public_key, used): (u32, u32, String, [u8; 32], bool),
) -> Result<AddressRecord, StoreError> {
    let chain = AddressChain::from_number(chain)
        .ok_or_else(|| StoreError::Corrupt(format!("address chain {chain}")))?;
    Ok(AddressRecord {
        chain,
        index,
        address,
        public_key,
        used,
    })
}

const ADDRESS_COLUMNS: &str = "chain, idx, address, public_key, used";

pub(super) fn address(
    conn: &Connection,
    chain: AddressChain,
    index: u32,
) -> Result<Option<AddressRecord>, StoreError> {
    conn.query_row(
        &format!("SELECT {ADDRESS_COLUMNS} FROM addresses WHERE chain = ?1 AND idx = ?2"),
        params![chain.number(), index],
        address_from_row,
    )
    .optional()?
    .map(address_record)
    .transpose()
}

pub(super) fn find_address(
    conn: &Connection,
    address: &str,
) -> Result<Option<AddressRecord>, StoreError> {
    conn.query_row(
        &format!("SELECT {ADDRESS_COLUMNS} FROM addresses WHERE address = ?1"),
        params![address],
        address_from_row,
    )
    .optional()?
    .map(address_record)
    .transpose()
}

pub(super) fn addresses(
    conn: &Connection,
    chain: AddressChain,
) -> Result<Vec<AddressRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ADDRESS_COLUMNS} FROM addresses WHERE chain = ?1 ORDER BY idx"
    ))?;
    let rows = stmt.query_map(params![chain.number()], address_from_row)?;
    rows.map(|row| address_record(row?)).collect()
}

impl StoreTx<'_> {
    /// Records the wallet this database is for. Fails if it already holds one.
    pub fn init_wallet(&self, new: &NewWallet) -> Result<WalletMeta, StoreError> {
        if let Some(existing) = wallet(self.conn())? {
            return Err(StoreError::WalletExists {
                wallet_id: existing.wallet_id,
            });
        }
        if new.account >= crate::keys::HARDENED {
            return Err(KeyError::IndexOutOfRange {
                index: u64::from(new.account),
            }
            .into());
        }
        self.conn().execute(
            "INSERT INTO wallet (id, wallet_id, network, gateway_url, account, created_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5)",
            params![
                new.wallet_id,
                new.network,
                new.gateway_url,
                new.account,
                now()
            ],
        )?;
        wallet(self.conn())?.ok_or(StoreError::NoWallet)
    }

    /// Points the wallet at another gateway.
    pub fn set_gateway_url(&self, url: &str) -> Result<(), StoreError> {
        let changed = self.conn().execute(
            "UPDATE wallet SET gateway_url = ?1 WHERE id = 1",
            params![url],
        )?;
        if changed == 0 {
            return Err(StoreError::NoWallet);
        }
        Ok(())
    }

    /// Records derived addresses (e.g. the gap-limit look-ahead on restore).
    /// Recording an address again is a no-op; a different address at the
    /// same chain and index is a conflict. Returns how many were new.
    pub fn insert_addresses(&self, addresses: &[NewAddress]) -> Result<usize, StoreError> {
        let mut inserted = 0;
        for new in addresses {
            if let Some(existing) = address(self.conn(), new.chain, new.index)? {
                if existing.address != new.address || existing.public_key != new.public_key {
                    return Err(StoreError::Conflict(format!(
                        "{:?} address {} is already {} in the database, not {}",
                        new.chain, new.index, existing.address, new.address
                    )));
                }
                continue;
            }
            self.conn()
                .execute(
                    "INSERT INTO addresses (chain, idx, address, public_key) VALUES (?1, ?2, ?3, ?4)",
                    params![new.chain.number(), new.index, new.address, new.public_key],
                )
                .map_err(|e| match e {
                    rusqlite::Error::SqliteFailure(f, _)
                        if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        StoreError::Conflict(format!(
                            "address {} is already recorded at another index",
                            new.address
                        ))
                    }
                    other => other.into(),
                })?;
            inserted += 1;
        }
        Ok(inserted)
    }

    /// Hands out the next address of `chain`: the one at the wallet's next
    /// index (derived with `derive` and recorded if it is not yet), and
    /// moves the next index on, all in this transaction.
    pub fn hand_out_address(
        &self,
        chain: AddressChain,
        derive: impl FnOnce(u32) -> Result<NewAddress, KeyError>,
    ) -> Result<AddressRecord, StoreError> {
        let meta = wallet(self.conn())?.ok_or(StoreError::NoWallet)?;
        let index = meta.next_index(chain);
        if index >= crate::keys::HARDENED {
            return Err(KeyError::IndexOutOfRange {
                index: u64::from(index),
            }
            .into());
        }
        let record = match address(self.conn(), chain, index)? {
            Some(record) => record,
            None => {
                let new = derive(index)?;
                if new.chain != chain || new.index != index {
                    return Err(StoreError::Conflict(format!(
                        "asked for {chain:?} address {index}, got {:?} address {}",
                        new.chain, new.index
                    )));
                }
                self.insert_addresses(std::slice::from_ref(&new))?;
                address(self.conn(), chain, index)?.ok_or_else(|| StoreError::NotFound {
                    what: format!("{chain:?} address {index}"),
                })?
            }
        };
        self.conn().execute(
            &format!(
                "UPDATE wallet SET {0} = {0} + 1 WHERE id = 1",
                chain_column(chain)
            ),
            [],
        )?;
        Ok(record)
    }

    /// Marks an address as paid to (and, for restores, moves the next index
    /// of its chain past it). Returns `false` if it is not the wallet's.
    pub fn mark_address_used(&self, address: &str) -> Result<bool, StoreError> {
        let Some(record) = find_address(self.conn(), address)? else {
            return Ok(false);
        };
        self.conn().execute(
            "UPDATE addresses SET used = 1 WHERE address = ?1",
            params![address],
        )?;
        self.conn().execute(
            &format!(
                "UPDATE wallet SET {0} = max({0}, ?1) WHERE id = 1",
                chain_column(record.chain)
            ),
            params![i64::from(record.index) + 1],
        )?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    pub(crate) fn sandbox_wallet() -> NewWallet {
        NewWallet {
            wallet_id: "w-test".into(),
            network: "sandbox".into(),
            gateway_url: "http://127.0.0.1:7420".into(),
            account: 0,
        }
    }

    pub(crate) fn fake_address(chain: AddressChain, index: u32) -> NewAddress {
        let mut public_key = [0u8; 32];
        public_key[0] = chain.number() as u8;
        public_key[1..5].copy_from_slice(&index.to_be_bytes());
        NewAddress {
            chain,
            index,
            address: format!("addr-{}-{index}", chain.number()),
            public_key,
        }
    }

    #[test]
    fn wallet_metadata_round_trips() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("w.sqlite");
        let mut store = Store::open(&path).expect("opens");
        assert_eq!(store.wallet().expect("reads"), None);
        let meta = store
            .write(|tx| tx.init_wallet(&sandbox_wallet()))
            .expect("init");
        assert_eq!(meta.wallet_id, "w-test");
        assert_eq!((meta.next_receive_index, meta.next_change_index), (0, 0));
        let again = store.write(|tx| tx.init_wallet(&sandbox_wallet()));
        assert!(matches!(again, Err(StoreError::WalletExists { .. })));
        store
            .write(|tx| tx.set_gateway_url("https://gw.example"))
            .expect("update");
        drop(store);
        let store = Store::open(&path).expect("reopens");
        let meta = store.wallet().expect("reads").expect("has wallet");
        assert_eq!(meta.gateway_url, "https://gw.example");
        assert_eq!(meta.network, "sandbox");
    }

    #[test]
    fn hand_out_moves_the_index_once_per_address() {
        let mut store = Store::open_in_memory().expect("opens");
        assert!(matches!(
            store.write(
                |tx| tx.hand_out_address(AddressChain::Receive, |i| Ok(fake_address(
                    AddressChain::Receive,
                    i
                )))
            ),
            Err(StoreError::NoWallet)
        ));
        store
            .write(|tx| tx.init_wallet(&sandbox_wallet()))
            .expect("init");
        for expected in 0..3 {
            let record = store
                .write(|tx| {
                    tx.hand_out_address(AddressChain::Receive, |i| {
                        Ok(fake_address(AddressChain::Receive, i))
                    })
                })
                .expect("hands out");
            assert_eq!(record.index, expected);
            assert_eq!(record.address, format!("addr-0-{expected}"));
        }
        let change = store
            .write(|tx| {
                tx.hand_out_address(AddressChain::Change, |i| {
                    Ok(fake_address(AddressChain::Change, i))
                })
            })
            .expect("hands out");
        assert_eq!(change.index, 0);
        let meta = store.wallet().expect("reads").expect("wallet");
        assert_eq!((meta.next_receive_index, meta.next_change_index), (3, 1));
        assert_eq!(
            store.addresses(AddressChain::Receive).expect("reads").len(),
            3
        );

        // A failing derivation leaves everything as it was.
        let failed = store.write(|tx| {
            tx.hand_out_address(AddressChain::Receive, |i| {
                Err(KeyError::IndexOutOfRange {
                    index: u64::from(i),
                })
            })
        });
        assert!(matches!(failed, Err(StoreError::Key(_))));
        assert_eq!(
            store
                .wallet()
                .expect("reads")
                .expect("wallet")
                .next_receive_index,
            3
        );
    }

    #[test]
    fn look_ahead_addresses_and_used_marks() {
        let mut store = Store::open_in_memory().expect("opens");
        store
            .write(|tx| tx.init_wallet(&sandbox_wallet()))
            .expect("init");
        let batch: Vec<NewAddress> = (0..20)
            .map(|i| fake_address(AddressChain::Receive, i))
            .collect();
        assert_eq!(
            store
                .write(|tx| tx.insert_addresses(&batch))
                .expect("inserts"),
            20
        );
        assert_eq!(
            store
                .write(|tx| tx.insert_addresses(&batch))
                .expect("no-op"),
            0
        );
        // Looked-ahead addresses are not handed out.
        assert_eq!(
            store
                .wallet()
                .expect("reads")
                .expect("wallet")
                .next_receive_index,
            0
        );
        // A payment to address 6 found by a restore moves the index past it.
        assert!(
            store
                .write(|tx| tx.mark_address_used("addr-0-6"))
                .expect("marks")
        );
        assert!(
            !store
                .write(|tx| tx.mark_address_used("not-ours"))
                .expect("marks")
        );
        assert_eq!(
            store
                .wallet()
                .expect("reads")
                .expect("wallet")
                .next_receive_index,
            7
        );
        let record = store
            .find_address("addr-0-6")
            .expect("reads")
            .expect("exists");
        assert!(record.used);
        // Marking a lower one does not move it back.
        store
            .write(|tx| tx.mark_address_used("addr-0-2"))
            .expect("marks");
        assert_eq!(
            store
                .wallet()
                .expect("reads")
                .expect("wallet")
                .next_receive_index,
            7
        );
        // Handing out continues with index 7, already recorded.
        let next = store
            .write(|tx| {
                tx.hand_out_address(AddressChain::Receive, |_| {
                    Err(KeyError::BadPath {
                        path: "x".into(),
                        reason: "must not derive".into(),
                    })
                })
            })
            .expect("hands out");
        assert_eq!(next.address, "addr-0-7");

        let mut clash = fake_address(AddressChain::Receive, 3);
        clash.address = "something-else".into();
        assert!(matches!(
            store.write(|tx| tx.insert_addresses(&[clash])),
            Err(StoreError::Conflict(_))
        ));
        let mut dup = fake_address(AddressChain::Receive, 50);
        dup.address = "addr-0-3".into();
        assert!(matches!(
            store.write(|tx| tx.insert_addresses(&[dup])),
            Err(StoreError::Conflict(_))
        ));
    }
}
