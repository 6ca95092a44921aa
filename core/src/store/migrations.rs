//! The schema, as an ordered list of migrations.
//!
//! Migration `i` (0-based) takes the database from `PRAGMA user_version = i`
//! to `i + 1`. Each runs in one transaction together with its
//! `user_version` update, so a crash leaves the database at either the old
//! or the new version. Never edit a migration that has shipped: add one.

/// `PRAGMA application_id` of a Notch wallet database ("NOTC").
pub const APPLICATION_ID: i32 = 0x4E4F_5443;

/// The schema version whose migration drops the transaction bytes the
/// wallet does not need (migration 10): a database older than that is
/// compacted once after it is upgraded, if bytes were dropped
/// (`Store::open`).
pub const DROPS_TX_BYTES: u32 = 10;

/// The schema version whose migration rebuilds the history's tables
/// smaller (migration 11): a database older than that is compacted once
/// after it is upgraded (`Store::open`).
pub const COMPACTS_HISTORY: u32 = 11;

pub const MIGRATIONS: &[&str] = &[
    // 1: wallet metadata, addresses, headers, transactions, outputs.
    r#"
    -- One row: what this database is the wallet of. No secrets here: the
    -- recovery phrase lives in the SecretStore under `wallet_id`.
    CREATE TABLE wallet (
        id                  INTEGER PRIMARY KEY CHECK (id = 1),
        wallet_id           TEXT    NOT NULL CHECK (length(wallet_id) > 0),
        network             TEXT    NOT NULL,
        gateway_url         TEXT    NOT NULL,
        account             INTEGER NOT NULL DEFAULT 0 CHECK (account BETWEEN 0 AND 2147483647),
        -- The next index to hand out on each chain.
        next_receive_index  INTEGER NOT NULL DEFAULT 0 CHECK (next_receive_index BETWEEN 0 AND 2147483648),
        next_change_index   INTEGER NOT NULL DEFAULT 0 CHECK (next_change_index BETWEEN 0 AND 2147483648),
        created_at          INTEGER NOT NULL
    );

    -- Every address derived so far (handed out or watched ahead for the gap
    -- limit). chain 0 = receive, 1 = change.
    CREATE TABLE addresses (
        chain       INTEGER NOT NULL CHECK (chain IN (0, 1)),
        idx         INTEGER NOT NULL CHECK (idx BETWEEN 0 AND 2147483647),
        address     TEXT    NOT NULL UNIQUE,
        public_key  BLOB    NOT NULL CHECK (length(public_key) = 32),
        used        INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1)),
        PRIMARY KEY (chain, idx)
    );

    -- The header chain the wallet follows, one header per height.
    CREATE TABLE headers (
        height      INTEGER PRIMARY KEY CHECK (height >= 0),
        hash        BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32),
        prev_hash   BLOB    NOT NULL CHECK (length(prev_hash) = 32),
        time        INTEGER NOT NULL,
        -- 1 once the authority's signature and the links were checked.
        verified    INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1))
    );

    -- Transactions that touch the wallet: its own sends and those paying it.
    CREATE TABLE transactions (
        txid          BLOB    PRIMARY KEY CHECK (length(txid) = 32),
        state         TEXT    NOT NULL CHECK (state IN
                        ('queued', 'accepted', 'in_pool', 'confirmed', 'final', 'rejected', 'dropped')),
        own           INTEGER NOT NULL DEFAULT 0 CHECK (own IN (0, 1)),
        -- The encoded transaction, kept for the wallet's own sends so that
        -- they can be submitted again after an interruption.
        raw           BLOB,
        block_height  INTEGER CHECK (block_height >= 0),
        block_hash    BLOB    CHECK (block_hash IS NULL OR length(block_hash) = 32),
        -- Why it was rejected or dropped, in the gateway's words.
        reason        TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        CHECK ((block_height IS NULL) = (block_hash IS NULL))
    );
    CREATE INDEX transactions_by_state ON transactions (state);
    CREATE INDEX transactions_by_height ON transactions (block_height);

    -- Outputs paying the wallet's addresses.
    CREATE TABLE outputs (
        txid       BLOB    NOT NULL REFERENCES transactions (txid) ON DELETE CASCADE,
        vout       INTEGER NOT NULL CHECK (vout BETWEEN 0 AND 4294967295),
        asset      BLOB    NOT NULL CHECK (length(asset) = 32),
        amount     INTEGER NOT NULL CHECK (amount >= 0),
        address    TEXT    NOT NULL REFERENCES addresses (address),
        -- Height of the block that holds it; NULL while unconfirmed.
        height     INTEGER CHECK (height >= 0),
        -- The transaction that spends it (seen in the pool or a block).
        spent_by   BLOB    REFERENCES transactions (txid) ON DELETE SET NULL,
        -- The wallet's own pending send that will spend it: locked until
        -- that send resolves.
        locked_by  BLOB    REFERENCES transactions (txid) ON DELETE SET NULL,
        PRIMARY KEY (txid, vout)
    );
    CREATE INDEX outputs_unspent ON outputs (asset) WHERE spent_by IS NULL;
    CREATE INDEX outputs_by_height ON outputs (height);
    CREATE INDEX outputs_by_spender ON outputs (spent_by);
    CREATE INDEX outputs_by_locker ON outputs (locked_by);
    CREATE INDEX outputs_by_address ON outputs (address);
    "#,
    // 2: settings (pinned authority key, mempool position, asset metadata)
    // and the notification inbox.
    r#"
    -- Small named values of the wallet: `authority_key:<network>` (pinned on
    -- first contact), `ledger_info` (asset metadata and fee rule, JSON),
    -- `mempool_seq`. No secrets.
    CREATE TABLE settings (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );

    -- The notification inbox, written in the same transaction as the state
    -- change that causes each entry.
    CREATE TABLE notifications (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT    NOT NULL,
        title       TEXT    NOT NULL,
        body        TEXT    NOT NULL,
        txid        BLOB    CHECK (txid IS NULL OR length(txid) = 32),
        created_at  INTEGER NOT NULL,
        read        INTEGER NOT NULL DEFAULT 0 CHECK (read IN (0, 1))
    );
    CREATE INDEX notifications_unread ON notifications (read, id);
    CREATE INDEX notifications_by_tx ON notifications (txid, kind);
    "#,
    // 3: amounts over the whole u64 range, and the `abandoned` state.
    // The ledger's amounts are u64; SQLite's integers are i64, so `amount`
    // now holds the u64's 64 bits as a signed integer (2^63 and more read
    // negative in SQL; the store reads them back as u64 and never sums them
    // in SQL). `abandoned`: a send the person gave up (core/src/lifecycle.rs).
    // Both tables are rebuilt: the new ones are created side by side, filled,
    // the old ones dropped (outputs first, so no cascade fires) and the new
    // ones renamed, which also renames the references between them.
    r#"
    CREATE TABLE transactions_v3 (
        txid          BLOB    PRIMARY KEY CHECK (length(txid) = 32),
        state         TEXT    NOT NULL CHECK (state IN
                        ('queued', 'accepted', 'in_pool', 'confirmed', 'final', 'rejected',
                         'dropped', 'abandoned')),
        own           INTEGER NOT NULL DEFAULT 0 CHECK (own IN (0, 1)),
        raw           BLOB,
        block_height  INTEGER CHECK (block_height >= 0),
        block_hash    BLOB    CHECK (block_hash IS NULL OR length(block_hash) = 32),
        reason        TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        CHECK ((block_height IS NULL) = (block_hash IS NULL))
    );
    INSERT INTO transactions_v3 SELECT txid, state, own, raw, block_height, block_hash, reason,
        created_at, updated_at FROM transactions;
    CREATE TABLE outputs_v3 (
        txid       BLOB    NOT NULL REFERENCES transactions_v3 (txid) ON DELETE CASCADE,
        vout       INTEGER NOT NULL CHECK (vout BETWEEN 0 AND 4294967295),
        asset      BLOB    NOT NULL CHECK (length(asset) = 32),
        amount     INTEGER NOT NULL,
        address    TEXT    NOT NULL REFERENCES addresses (address),
        height     INTEGER CHECK (height >= 0),
        spent_by   BLOB    REFERENCES transactions_v3 (txid) ON DELETE SET NULL,
        locked_by  BLOB    REFERENCES transactions_v3 (txid) ON DELETE SET NULL,
        PRIMARY KEY (txid, vout)
    );
    INSERT INTO outputs_v3 (txid, vout, asset, amount, address, height, spent_by, locked_by)
        SELECT txid, vout, asset, amount, address, height, spent_by, locked_by FROM outputs;
    DROP TABLE outputs;
    DROP TABLE transactions;
    ALTER TABLE transactions_v3 RENAME TO transactions;
    ALTER TABLE outputs_v3 RENAME TO outputs;
    CREATE INDEX transactions_by_state ON transactions (state);
    CREATE INDEX transactions_by_height ON transactions (block_height);
    CREATE INDEX outputs_unspent ON outputs (asset) WHERE spent_by IS NULL;
    CREATE INDEX outputs_by_height ON outputs (height);
    CREATE INDEX outputs_by_spender ON outputs (spent_by);
    CREATE INDEX outputs_by_locker ON outputs (locked_by);
    CREATE INDEX outputs_by_address ON outputs (address);
    "#,
    // 4: tallies, their tickets, the outbox of messages to tally partners,
    // and notifications about a tally.
    r#"
    -- One row per tally this wallet takes part in, or has asked for with a
    -- scanned ticket. `id` is the wallet's own name for it (the record's
    -- uuid when we drafted it; a fresh uuid for a scanned ticket, whose
    -- record uuid is only known once the offer arrives). `state` is
    -- MyCHIPs's name (core/src/tally/lifecycle.rs). `record` is the draft,
    -- the record exactly as last signed or received (canonical JSON), or for
    -- a scanned ticket the ticket itself.
    CREATE TABLE tallies (
        id             TEXT    PRIMARY KEY CHECK (length(id) > 0),
        uuid           TEXT    CHECK (uuid IS NULL OR length(uuid) > 0),
        state          TEXT    NOT NULL CHECK (state IN ('ticket', 'draft', 'draft.offer',
                         'H.offer', 'P.offer', 'P.offer.void', 'B.offer.open', 'open', 'void')),
        side           TEXT    CHECK (side IS NULL OR side IN ('stock', 'foil')),
        partner_agent  BLOB    CHECK (partner_agent IS NULL OR length(partner_agent) = 32),
        partner_cid    TEXT,
        partner_host   TEXT,
        partner_port   INTEGER CHECK (partner_port IS NULL OR partner_port BETWEEN 1 AND 65535),
        record         TEXT    NOT NULL,
        -- Why it is void, for people.
        reason         TEXT,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        -- An open tally holds both signatures (checked before it gets here).
        CHECK (state NOT IN ('open', 'B.offer.open', 'P.offer', 'H.offer', 'draft.offer')
               OR (uuid IS NOT NULL AND side IS NOT NULL AND partner_agent IS NOT NULL))
    );
    CREATE UNIQUE INDEX tallies_by_uuid ON tallies (uuid) WHERE uuid IS NOT NULL;
    CREATE INDEX tallies_by_partner ON tallies (partner_agent, state);

    -- The one-time tokens of the tickets this wallet issued (MyCHIPs
    -- mychips.tokens). Marked used in the same transaction that moves the
    -- tally on. A token is an invitation shown in a QR code, not a secret
    -- of the wallet.
    CREATE TABLE tally_tickets (
        token       TEXT    PRIMARY KEY CHECK (length(token) > 0),
        tally       TEXT    NOT NULL REFERENCES tallies (id) ON DELETE CASCADE,
        expires     INTEGER NOT NULL,
        used_at     INTEGER,
        used_by     BLOB    CHECK (used_by IS NULL OR length(used_by) = 32),
        created_at  INTEGER NOT NULL,
        CHECK ((used_at IS NULL) = (used_by IS NULL))
    );
    CREATE INDEX tally_tickets_by_tally ON tally_tickets (tally);

    -- Messages for tally partners not delivered yet (the partner's agent
    -- was offline, or we had no session with it). One per tally and action:
    -- a newer message of the same kind replaces the older. A row is deleted
    -- in the same transaction that records its delivery. Times in
    -- milliseconds since the Unix epoch.
    CREATE TABLE outbox (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        tally          TEXT    NOT NULL REFERENCES tallies (id) ON DELETE CASCADE,
        action         TEXT    NOT NULL,
        partner_agent  BLOB    NOT NULL CHECK (length(partner_agent) = 32),
        host           TEXT,
        port           INTEGER CHECK (port IS NULL OR port BETWEEN 1 AND 65535),
        message        TEXT    NOT NULL,
        attempts       INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt   INTEGER NOT NULL,
        last_error     TEXT,
        created_at     INTEGER NOT NULL,
        UNIQUE (tally, action)
    );
    CREATE INDEX outbox_due ON outbox (next_attempt);
    CREATE INDEX outbox_by_partner ON outbox (partner_agent, id);

    -- Which tally a notification is about, if any.
    ALTER TABLE notifications ADD COLUMN tally TEXT;
    CREATE INDEX notifications_by_tally ON notifications (tally, kind);
    "#,
    // 5: the chits of open tallies, their chain's confirmed position, and
    // the chit messages waiting for a partner.
    r#"
    -- One row per chit of a tally (core/src/tally/chain/ledger.rs, ChitRow):
    -- `record` is the chit exactly as signed (canonical JSON, with its
    -- signature once signed), `state` MyCHIPs's state code (`A.pend`,
    -- `L.pend.good`, ...). `link_*` is where it sits in the hash chain
    -- (for the stock, beyond `confirmed` a provisional place); `claim_*`
    -- (stock only) is where the foil says one of its chits is, not yet
    -- checked. Rows are never deleted; a change replaces the row.
    CREATE TABLE chits (
        tally        TEXT    NOT NULL REFERENCES tallies (id) ON DELETE CASCADE,
        uuid         TEXT    NOT NULL CHECK (length(uuid) > 0),
        record       TEXT    NOT NULL,
        state        TEXT    NOT NULL,
        -- milliCHIPs of a payment, NULL for a setting (copied from record).
        units        INTEGER CHECK (units IS NULL OR units >= 0),
        link_index   INTEGER CHECK (link_index IS NULL OR link_index >= 1),
        link_hash    BLOB    CHECK (link_hash IS NULL OR length(link_hash) = 32),
        claim_index  INTEGER CHECK (claim_index IS NULL OR claim_index >= 1),
        claim_hash   BLOB    CHECK (claim_hash IS NULL OR length(claim_hash) = 32),
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        PRIMARY KEY (tally, uuid),
        CHECK ((link_index IS NULL) = (link_hash IS NULL)),
        CHECK ((claim_index IS NULL) = (claim_hash IS NULL))
    );
    CREATE INDEX chits_by_state ON chits (tally, state);

    -- How many links of a tally's chain both halves agree on (the ledger's
    -- `confirmed`); no row: 0.
    CREATE TABLE chit_chains (
        tally      TEXT    PRIMARY KEY REFERENCES tallies (id) ON DELETE CASCADE,
        confirmed  INTEGER NOT NULL CHECK (confirmed >= 0)
    );

    -- Chit and chain messages for tally partners not delivered yet. Unlike
    -- the tally outbox, a tally may have many waiting. `chit` names the
    -- chit a `pend`/`good`/`void` message carries (its state moves on when
    -- it is delivered; a newer message for it replaces the older); chain
    -- messages have none. Deleted in the transaction that records delivery.
    CREATE TABLE chit_outbox (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        tally          TEXT    NOT NULL REFERENCES tallies (id) ON DELETE CASCADE,
        chit           TEXT,
        partner_agent  BLOB    NOT NULL CHECK (length(partner_agent) = 32),
        host           TEXT,
        port           INTEGER CHECK (port IS NULL OR port BETWEEN 1 AND 65535),
        message        TEXT    NOT NULL,
        attempts       INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt   INTEGER NOT NULL,
        last_error     TEXT,
        created_at     INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX chit_outbox_one_per_chit ON chit_outbox (tally, chit)
        WHERE chit IS NOT NULL;
    CREATE INDEX chit_outbox_due ON chit_outbox (next_attempt);
    CREATE INDEX chit_outbox_by_partner ON chit_outbox (partner_agent, id);
    "#,
    // 6: closing tallies. An open tally whose close request (a setting
    // chit with `close: true`) binds is `closing`, and `closed` once its
    // balance is zero (MyCHIPs status `close`). The state column keeps
    // `open` for all three (its CHECK lists the states of migration 4);
    // `closing` says which, written in the transaction of the chit that
    // moved it.
    r#"
    ALTER TABLE tallies ADD COLUMN closing TEXT
        CHECK (closing IS NULL OR (closing IN ('closing', 'closed') AND state = 'open'));
    "#,
    // 7: what the History and Home screens read, kept as changes are
    // applied (core/src/store/history.rs). `wallet_history`: one row per
    // transaction (its state, direction, time, fee, counterparties);
    // `wallet_tx_effects`: its effect per asset on this wallet (received,
    // sent; u128 sums as decimal text); `wallet_tx_addresses`: the
    // addresses it pays (the wallet's and others'), for search;
    // `wallet_balances`: balances per asset. Triggers on the tables they
    // are derived from mark what changed (`history_dirty_*`); every write
    // transaction brings the rows it touched up to date before it commits.
    // `seq` and `sort_time` (the time when the wallet first listed it) are
    // never changed, so pages by (sort_time, seq) neither skip nor repeat a
    // row while new ones arrive. Existing wallets are backfilled: every
    // transaction and asset starts dirty (refreshed when the store opens).
    // A later migration that rebuilds `transactions`, `outputs` or
    // `headers` drops their triggers with them: it must create them again.
    r#"
    CREATE TABLE wallet_history (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        txid            BLOB    NOT NULL UNIQUE CHECK (length(txid) = 32),
        txid_hex        TEXT    NOT NULL,
        sort_time       INTEGER NOT NULL,
        time            INTEGER NOT NULL,
        state           TEXT    NOT NULL,
        own             INTEGER NOT NULL CHECK (own IN (0, 1)),
        direction       TEXT    NOT NULL CHECK (direction IN ('in', 'out', 'self')),
        block_height    INTEGER,
        -- u64 bits as a signed integer, like outputs.amount.
        fee             INTEGER,
        -- Addresses paid that are not the wallet's, newline-separated.
        counterparties  TEXT    NOT NULL DEFAULT '',
        memo            TEXT,
        reason          TEXT
    );
    CREATE INDEX wallet_history_order ON wallet_history (sort_time, seq);
    CREATE INDEX wallet_history_by_direction ON wallet_history (direction, sort_time, seq);
    CREATE INDEX wallet_history_by_state ON wallet_history (state, sort_time, seq);
    CREATE INDEX wallet_history_by_time ON wallet_history (time);
    CREATE INDEX wallet_history_by_txid_hex ON wallet_history (txid_hex);
    CREATE INDEX wallet_history_with_memo ON wallet_history (txid) WHERE memo IS NOT NULL;

    CREATE TABLE wallet_tx_effects (
        txid      BLOB    NOT NULL REFERENCES wallet_history (txid) ON DELETE CASCADE,
        asset     BLOB    NOT NULL CHECK (length(asset) = 32),
        -- First-seen order of the asset in the transaction.
        pos       INTEGER NOT NULL,
        received  TEXT    NOT NULL,
        sent      TEXT    NOT NULL,
        PRIMARY KEY (txid, asset)
    ) WITHOUT ROWID;
    CREATE INDEX wallet_tx_effects_by_asset ON wallet_tx_effects (asset, txid);

    CREATE TABLE wallet_tx_addresses (
        address  TEXT  NOT NULL,
        txid     BLOB  NOT NULL REFERENCES wallet_history (txid) ON DELETE CASCADE,
        PRIMARY KEY (address, txid)
    ) WITHOUT ROWID;
    CREATE INDEX wallet_tx_addresses_by_tx ON wallet_tx_addresses (txid);

    CREATE TABLE wallet_balances (
        asset             BLOB  PRIMARY KEY CHECK (length(asset) = 32),
        confirmed         TEXT  NOT NULL,
        pending           TEXT  NOT NULL,
        pending_outgoing  TEXT  NOT NULL,
        spendable         TEXT  NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE history_dirty_tx (txid BLOB PRIMARY KEY) WITHOUT ROWID;
    CREATE TABLE history_dirty_asset (asset BLOB PRIMARY KEY) WITHOUT ROWID;

    CREATE TRIGGER history_tx_insert AFTER INSERT ON transactions BEGIN
        INSERT OR IGNORE INTO history_dirty_tx VALUES (NEW.txid);
    END;
    CREATE TRIGGER history_tx_update AFTER UPDATE ON transactions BEGIN
        INSERT OR IGNORE INTO history_dirty_tx VALUES (OLD.txid);
        INSERT OR IGNORE INTO history_dirty_tx VALUES (NEW.txid);
    END;
    CREATE TRIGGER history_tx_delete AFTER DELETE ON transactions BEGIN
        INSERT OR IGNORE INTO history_dirty_tx VALUES (OLD.txid);
    END;
    CREATE TRIGGER history_output_insert AFTER INSERT ON outputs BEGIN
        INSERT OR IGNORE INTO history_dirty_tx VALUES (NEW.txid);
        INSERT OR IGNORE INTO history_dirty_tx SELECT NEW.spent_by WHERE NEW.spent_by IS NOT NULL;
        INSERT OR IGNORE INTO history_dirty_tx SELECT NEW.locked_by WHERE NEW.locked_by IS NOT NULL;
        INSERT OR IGNORE INTO history_dirty_asset VALUES (NEW.asset);
    END;
    CREATE TRIGGER history_output_update AFTER UPDATE ON outputs BEGIN
        INSERT OR IGNORE INTO history_dirty_tx VALUES (OLD.txid);
        INSERT OR IGNORE INTO history_dirty_tx VALUES (NEW.txid);
        INSERT OR IGNORE INTO history_dirty_tx SELECT OLD.spent_by WHERE OLD.spent_by IS NOT NULL;
        INSERT OR IGNORE INTO history_dirty_tx SELECT NEW.spent_by WHERE NEW.spent_by IS NOT NULL;
        INSERT OR IGNORE INTO history_dirty_tx SELECT OLD.locked_by WHERE OLD.locked_by IS NOT NULL;
        INSERT OR IGNORE INTO history_dirty_tx SELECT NEW.locked_by WHERE NEW.locked_by IS NOT NULL;
        INSERT OR IGNORE INTO history_dirty_asset VALUES (OLD.asset);
        INSERT OR IGNORE INTO history_dirty_asset VALUES (NEW.asset);
    END;
    CREATE TRIGGER history_output_delete AFTER DELETE ON outputs BEGIN
        INSERT OR IGNORE INTO history_dirty_tx VALUES (OLD.txid);
        INSERT OR IGNORE INTO history_dirty_tx SELECT OLD.spent_by WHERE OLD.spent_by IS NOT NULL;
        INSERT OR IGNORE INTO history_dirty_tx SELECT OLD.locked_by WHERE OLD.locked_by IS NOT NULL;
        INSERT OR IGNORE INTO history_dirty_asset VALUES (OLD.asset);
    END;
    -- A header's time is the time of the transactions in its block.
    CREATE TRIGGER history_header_insert AFTER INSERT ON headers BEGIN
        INSERT OR IGNORE INTO history_dirty_tx
            SELECT txid FROM transactions WHERE block_height = NEW.height;
    END;
    CREATE TRIGGER history_header_update AFTER UPDATE ON headers BEGIN
        INSERT OR IGNORE INTO history_dirty_tx
            SELECT txid FROM transactions WHERE block_height IN (OLD.height, NEW.height);
    END;
    CREATE TRIGGER history_header_delete AFTER DELETE ON headers BEGIN
        INSERT OR IGNORE INTO history_dirty_tx
            SELECT txid FROM transactions WHERE block_height = OLD.height;
    END;

    INSERT OR IGNORE INTO history_dirty_tx SELECT txid FROM transactions;
    INSERT OR IGNORE INTO history_dirty_asset SELECT DISTINCT asset FROM outputs;
    "#,
    // 8: what the tally screens read of chits. `opened_as`: the state a
    // chit was first stored in, never changed after (an invoice starts
    // unsigned, `A.draft.pend` or `L.pend`; a payment starts signed), so
    // an invoice is still told from a payment once both are good; NULL
    // for chits stored before. `chits_by_time`: a tally's chits in pages,
    // newest first, by (`created_at`, rowid).
    r#"
    ALTER TABLE chits ADD COLUMN opened_as TEXT;
    CREATE INDEX chits_by_time ON chits (tally, created_at);
    "#,
    // 9: what a tally's chits add up to, kept with every chit change (the
    // ledger's `ChitTotals`), so that a chit operation reads only the
    // chain's tail and the tally screens read no chit at all. Balances are
    // milliCHIPs from our side as decimal text (the ledger sums in i128);
    // `*_limit` the JSON of the `limit` of the latest binding setting chit
    // of that side with one (NULL: none, the tally's terms hold);
    // `*_close` whether that side's close request binds. Filled here from
    // the stored chits, as the ledger sums them (`ChitLedger::balance`,
    // `limit_granted_by`, `close_requested_by`). `chits_by_link`: the
    // chain's tail and the link at an index; `chits_by_uuid`: a chit found
    // by its uuid alone (approving, rejecting, a delivery).
    MIGRATION_9,
    // 10: a transaction's bytes are kept only while the wallet needs them
    // (its own sends until they are final, core/src/store/facts.rs); what
    // the history needs of them is kept instead. `tx_facts`: the addresses
    // a transaction pays that are not the wallet's (newline-separated, in
    // output order) and the fee of an own send; no row when it has neither
    // (a payment in from a mint). `tx_spends`: which of the wallet's coins
    // it spends, in input order (what it sent). `history_tx_update` now
    // fires only for the columns a history row is computed from, so that
    // dropping the bytes marks nothing; `history_tx_raw` marks a
    // transaction whose bytes are written to its row (an own send seen
    // again after it was given up). Existing wallets: every transaction
    // that holds its bytes is marked, and the refresh the store runs when
    // it opens (right after the migrations, as for migration 7) reads the
    // facts from the bytes, then drops the bytes the wallet does not need,
    // in one transaction. A crash before that commit leaves the marks: the
    // next open does it again. Then the store VACUUMs once (`Store::open`).
    r#"
    CREATE TABLE tx_facts (
        txid            BLOB    PRIMARY KEY REFERENCES transactions (txid) ON DELETE CASCADE,
        -- u64 bits as a signed integer, like outputs.amount.
        fee             INTEGER,
        counterparties  TEXT    NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE tx_spends (
        txid       BLOB    NOT NULL REFERENCES transactions (txid) ON DELETE CASCADE,
        input      INTEGER NOT NULL CHECK (input >= 0),
        coin_txid  BLOB    NOT NULL CHECK (length(coin_txid) = 32),
        coin_vout  INTEGER NOT NULL CHECK (coin_vout BETWEEN 0 AND 4294967295),
        PRIMARY KEY (txid, input)
    ) WITHOUT ROWID;

    DROP TRIGGER history_tx_update;
    CREATE TRIGGER history_tx_update
        AFTER UPDATE OF txid, state, own, block_height, block_hash, reason, created_at
        ON transactions
    BEGIN
        INSERT OR IGNORE INTO history_dirty_tx VALUES (OLD.txid);
        INSERT OR IGNORE INTO history_dirty_tx VALUES (NEW.txid);
    END;
    CREATE TRIGGER history_tx_raw AFTER UPDATE OF raw ON transactions
        WHEN NEW.raw IS NOT NULL
    BEGIN
        INSERT OR IGNORE INTO history_dirty_tx VALUES (NEW.txid);
    END;

    INSERT OR IGNORE INTO history_dirty_tx SELECT txid FROM transactions WHERE raw IS NOT NULL;
    "#,
    // 11: the history at scale (issue 12). The rows of a transaction's
    // effects and addresses are keyed by its history row's `seq` (an
    // integer) instead of its 32-byte txid, with assets and addresses
    // interned as small integer ids (`history_assets`, `history_addresses`:
    // rows are only ever added); a txid prefix is searched as a range of
    // `wallet_history.txid` (core/src/store/history.rs, `txid_range`), so
    // `txid_hex` and its index go. Indexes no query uses go
    // (`outputs_by_address`: addresses are never deleted nor renamed, so no
    // foreign key check looks outputs up by address; `notifications_by_tally`);
    // those whose column is mostly NULL keep only the rows that have one.
    // The history rows are copied, not recomputed: `seq` and `sort_time`
    // stay, so cursors and the order hold. No rebuilt table is one that
    // the history triggers watch (`transactions`, `outputs`, `headers`).
    // The store VACUUMs once after this upgrade (`Store::open`).
    r#"
    CREATE TABLE history_assets (
        id     INTEGER PRIMARY KEY,
        asset  BLOB    NOT NULL UNIQUE CHECK (length(asset) = 32)
    );
    CREATE TABLE history_addresses (
        id       INTEGER PRIMARY KEY,
        address  TEXT    NOT NULL UNIQUE
    );
    INSERT INTO history_assets (asset) SELECT DISTINCT asset FROM wallet_tx_effects ORDER BY asset;
    INSERT INTO history_addresses (address)
        SELECT DISTINCT address FROM wallet_tx_addresses ORDER BY address;

    CREATE TABLE wallet_tx_effects_v11 (
        seq       INTEGER NOT NULL REFERENCES wallet_history (seq) ON DELETE CASCADE,
        asset     INTEGER NOT NULL REFERENCES history_assets (id),
        -- First-seen order of the asset in the transaction.
        pos       INTEGER NOT NULL,
        received  TEXT    NOT NULL,
        sent      TEXT    NOT NULL,
        PRIMARY KEY (seq, asset)
    ) WITHOUT ROWID;
    INSERT INTO wallet_tx_effects_v11 (seq, asset, pos, received, sent)
        SELECT h.seq, a.id, e.pos, e.received, e.sent
        FROM wallet_tx_effects e
        JOIN wallet_history h ON h.txid = e.txid
        JOIN history_assets a ON a.asset = e.asset
        ORDER BY h.seq, a.id;
    DROP TABLE wallet_tx_effects;
    ALTER TABLE wallet_tx_effects_v11 RENAME TO wallet_tx_effects;
    CREATE INDEX wallet_tx_effects_by_asset ON wallet_tx_effects (asset, seq);

    CREATE TABLE wallet_tx_addresses_v11 (
        address  INTEGER NOT NULL REFERENCES history_addresses (id),
        seq      INTEGER NOT NULL REFERENCES wallet_history (seq) ON DELETE CASCADE,
        PRIMARY KEY (address, seq)
    ) WITHOUT ROWID;
    INSERT INTO wallet_tx_addresses_v11 (address, seq)
        SELECT n.id, h.seq
        FROM wallet_tx_addresses a
        JOIN wallet_history h ON h.txid = a.txid
        JOIN history_addresses n ON n.address = a.address
        ORDER BY n.id, h.seq;
    DROP TABLE wallet_tx_addresses;
    ALTER TABLE wallet_tx_addresses_v11 RENAME TO wallet_tx_addresses;
    CREATE INDEX wallet_tx_addresses_by_seq ON wallet_tx_addresses (seq);

    DROP INDEX wallet_history_by_txid_hex;
    ALTER TABLE wallet_history DROP COLUMN txid_hex;

    DROP INDEX outputs_by_address;
    DROP INDEX outputs_by_spender;
    DROP INDEX outputs_by_locker;
    CREATE INDEX outputs_by_spender ON outputs (spent_by) WHERE spent_by IS NOT NULL;
    CREATE INDEX outputs_by_locker ON outputs (locked_by) WHERE locked_by IS NOT NULL;

    DROP INDEX notifications_by_tally;
    DROP INDEX notifications_by_tx;
    DROP INDEX notifications_unread;
    CREATE INDEX notifications_by_tx ON notifications (txid, kind) WHERE txid IS NOT NULL;
    CREATE INDEX notifications_unread ON notifications (id) WHERE read = 0;
    "#,
];

/// The `INSERT` of migration 9: every tally's chit summary from its stored
/// chits.
macro_rules! fill_chit_summaries {
    () => {
        "INSERT OR REPLACE INTO chit_summaries (tally, good, pending, committed, stock_limit, \
             foil_limit, stock_close, foil_close) \
         SELECT t.id, \
             CAST(coalesce((SELECT sum(CASE WHEN c.state LIKE 'A.%' THEN coalesce(c.units, 0) \
                 ELSE -coalesce(c.units, 0) END) FROM chits c \
                 WHERE c.tally = t.id AND c.state IN ('A.good', 'L.good')), 0) AS TEXT), \
             CAST(coalesce((SELECT sum(CASE WHEN c.state LIKE 'A.%' THEN coalesce(c.units, 0) \
                 ELSE -coalesce(c.units, 0) END) FROM chits c \
                 WHERE c.tally = t.id AND c.state NOT IN ('A.void', 'L.void')), 0) AS TEXT), \
             CAST(coalesce((SELECT sum(CASE WHEN c.state LIKE 'A.%' THEN coalesce(c.units, 0) \
                 ELSE -coalesce(c.units, 0) END) FROM chits c \
                 WHERE c.tally = t.id AND c.state IN ('A.good', 'L.good', 'L.pend.good')), 0) AS TEXT), \
             (SELECT c.record -> '$.ref.limit' FROM chits c \
                 WHERE c.tally = t.id AND c.state IN ('A.good', 'L.good', 'L.pend.good') \
                 AND c.record ->> '$.by' = 'stock' AND c.record ->> '$.type' = 'set' \
                 AND json_type(c.record, '$.ref.limit') IS NOT NULL \
                 ORDER BY (c.link_index IS NULL) DESC, c.link_index DESC, c.uuid DESC LIMIT 1), \
             (SELECT c.record -> '$.ref.limit' FROM chits c \
                 WHERE c.tally = t.id AND c.state IN ('A.good', 'L.good', 'L.pend.good') \
                 AND c.record ->> '$.by' = 'foil' AND c.record ->> '$.type' = 'set' \
                 AND json_type(c.record, '$.ref.limit') IS NOT NULL \
                 ORDER BY (c.link_index IS NULL) DESC, c.link_index DESC, c.uuid DESC LIMIT 1), \
             EXISTS (SELECT 1 FROM chits c \
                 WHERE c.tally = t.id AND c.state IN ('A.good', 'L.good', 'L.pend.good') \
                 AND c.record ->> '$.by' = 'stock' AND c.record ->> '$.type' = 'set' \
                 AND json_type(c.record, '$.ref.close') = 'true'), \
             EXISTS (SELECT 1 FROM chits c \
                 WHERE c.tally = t.id AND c.state IN ('A.good', 'L.good', 'L.pend.good') \
                 AND c.record ->> '$.by' = 'foil' AND c.record ->> '$.type' = 'set' \
                 AND json_type(c.record, '$.ref.close') = 'true') \
         FROM tallies t WHERE EXISTS (SELECT 1 FROM chits c WHERE c.tally = t.id);"
    };
}

/// Migration 9 (see [`MIGRATIONS`]).
const MIGRATION_9: &str = concat!(
    r#"
    CREATE INDEX chits_by_link ON chits (tally, link_index);
    CREATE INDEX chits_by_uuid ON chits (uuid);
    CREATE TABLE chit_summaries (
        tally        TEXT    PRIMARY KEY REFERENCES tallies (id) ON DELETE CASCADE,
        good         TEXT    NOT NULL,
        pending      TEXT    NOT NULL,
        committed    TEXT    NOT NULL,
        stock_limit  TEXT,
        foil_limit   TEXT,
        stock_close  INTEGER NOT NULL CHECK (stock_close IN (0, 1)),
        foil_close   INTEGER NOT NULL CHECK (foil_close IN (0, 1))
    );
    "#,
    fill_chit_summaries!()
);

/// Recomputes every tally's chit summary from its stored chits, as
/// migration 9 fills it (diagnostics and tests).
pub const FILL_CHIT_SUMMARIES: &str = fill_chit_summaries!();

/// A wallet file at `path` as schema `version` left it (its migrations
/// only, foreign keys on), for the tests of the upgrades after it.
#[cfg(test)]
pub(crate) fn file_at_schema(path: &std::path::Path, version: usize) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("opens");
    conn.pragma_update(None, "foreign_keys", true).expect("fk");
    for sql in &MIGRATIONS[..version] {
        conn.execute_batch(sql).expect("old schema");
    }
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .expect("id");
    conn.pragma_update(None, "user_version", version as i64)
        .expect("version");
    conn
}
