//! A block, a reorg or a pool write that fails half-way leaves the engine's memory (tip,
//! pool) equal to the database, so the next command works without a restart. The engine
//! runs in-process over the real store of each backend (SQLite, or PostgreSQL on a
//! database of the test's own) wrapped in one that fails on request.
//!
//! The PostgreSQL client runs a runtime of its own and must not be called on an async
//! runtime's thread: the tests' own store calls run on a plain thread (`off_runtime`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Backend, both_backends};
use notch_gateway::keys::sandbox_setup;
use notch_gateway::ledger::{Engine, EngineConfig, unix_now};
use notch_gateway::postgres::{DatabaseUrl, PgStore};
use notch_gateway::sqlite::{SqliteStore, SyncMode};
use notch_gateway::store::*;
use notch_protocol::{
    Block, BlockHeader, BlockId, ChainParams, OutPoint, Output, PublicKey, TxId, public_key,
};

/// The real store, with switches that make the next call of one method fail.
struct Faulty {
    inner: Box<dyn MirrorStore>,
    apply_block: AtomicBool,
    reorg: AtomicBool,
    mempool: AtomicBool,
    add_to_pool: AtomicBool,
}

fn trip(flag: &AtomicBool, what: &str) -> StoreResult<()> {
    if flag.swap(false, Ordering::SeqCst) {
        return Err(StoreError::Backend(format!("injected failure in {what}")));
    }
    Ok(())
}

impl MirrorStore for Faulty {
    fn reads_on_runtime_threads(&self) -> bool {
        self.inner.reads_on_runtime_threads()
    }
    fn load_meta(&self) -> StoreResult<Option<LedgerMeta>> {
        self.inner.load_meta()
    }
    fn init(&self, meta: &LedgerMeta, genesis: &Block) -> StoreResult<()> {
        self.inner.init(meta, genesis)
    }
    fn tip(&self) -> StoreResult<TipRow> {
        self.inner.tip()
    }
    fn header_at(&self, height: u64) -> StoreResult<Option<BlockHeader>> {
        self.inner.header_at(height)
    }
    fn block_by_id(&self, id: &BlockId) -> StoreResult<Option<StoredBlock>> {
        self.inner.block_by_id(id)
    }
    fn blocks_at(&self, from: u64, count: usize) -> StoreResult<Vec<Block>> {
        self.inner.blocks_at(from, count)
    }
    fn headers_after_locator(
        &self,
        locator: &[BlockId],
        limit: usize,
    ) -> StoreResult<ChainSlice<StoredHeader>> {
        self.inner.headers_after_locator(locator, limit)
    }
    fn blocks_after_locator(
        &self,
        locator: &[BlockId],
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<ChainSlice<StoredBlock>> {
        self.inner.blocks_after_locator(locator, limit, max_bytes)
    }
    fn blocks_from_height(
        &self,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<ChainSlice<StoredBlock>> {
        self.inner.blocks_from_height(from, limit, max_bytes)
    }
    fn tx(&self, txid: &TxId) -> StoreResult<Option<TxRecord>> {
        self.inner.tx(txid)
    }
    fn output_of(&self, op: &OutPoint) -> StoreResult<Option<Output>> {
        self.inner.output_of(op)
    }
    fn utxo(&self, op: &OutPoint) -> StoreResult<Option<(Output, u64)>> {
        self.inner.utxo(op)
    }
    fn utxos_of(&self, owner: &PublicKey, limit: usize) -> StoreResult<(Vec<UtxoRow>, bool)> {
        self.inner.utxos_of(owner, limit)
    }
    fn mempool(&self) -> StoreResult<Vec<PoolEntry>> {
        trip(&self.mempool, "mempool")?;
        self.inner.mempool()
    }
    fn mempool_changes(&self, since: u64, limit: usize) -> StoreResult<PoolChanges> {
        self.inner.mempool_changes(since, limit)
    }
    fn add_to_pool(&self, adds: &[PoolAdd], evicted: &[(TxId, String)]) -> StoreResult<Vec<u64>> {
        trip(&self.add_to_pool, "add_to_pool")?;
        self.inner.add_to_pool(adds, evicted)
    }
    fn apply_block(&self, block: &Block) -> StoreResult<()> {
        trip(&self.apply_block, "apply_block")?;
        self.inner.apply_block(block)
    }
    fn reorg(&self, plan: &ReorgPlan) -> StoreResult<()> {
        trip(&self.reorg, "reorg")?;
        self.inner.reorg(plan)
    }
    fn relay_assign(
        &self,
        agent: &[u8; 32],
        range: notch_protocol::relay::PortRange,
        avoid: &[u16],
        now: u64,
        reclaim_before: u64,
    ) -> StoreResult<Option<u16>> {
        self.inner
            .relay_assign(agent, range, avoid, now, reclaim_before)
    }
    fn relay_port(&self, agent: &[u8; 32]) -> StoreResult<Option<u16>> {
        self.inner.relay_port(agent)
    }
    fn relay_record(&self, agent: &[u8; 32], port: u16, now: u64) -> StoreResult<()> {
        self.inner.relay_record(agent, port, now)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Faulty>,
    engine: Arc<Engine>,
}

/// Runs `f` on a thread of its own: store calls from an async test body (see the top).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// A runtime for a test body (what `#[tokio::test]` would make).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .block_on(f)
}

fn start(b: &Backend) -> Fixture {
    off_runtime(|| start_here(b))
}

fn start_here(b: &Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let setup = sandbox_setup(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let inner: Box<dyn MirrorStore> = match b.database() {
        None => Box::new(
            SqliteStore::open(&dir.path().join("mirror.sqlite"), SyncMode::Normal)
                .unwrap_or_else(|e| panic!("{e}")),
        ),
        Some(db) => Box::new(
            PgStore::open(&DatabaseUrl::from(db.url.clone())).unwrap_or_else(|e| panic!("{e}")),
        ),
    };
    let meta = LedgerMeta {
        network: setup.network,
        authority: public_key(&setup.authority),
        assets: setup.assets.clone(),
    };
    let mut genesis = Block::build(setup.network, None, unix_now(), 0, vec![]);
    genesis.header.sign(&setup.authority);
    inner
        .init(&meta, &genesis)
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(Faulty {
        inner,
        apply_block: AtomicBool::new(false),
        reorg: AtomicBool::new(false),
        mempool: AtomicBool::new(false),
        add_to_pool: AtomicBool::new(false),
    });
    let native = meta
        .assets
        .iter()
        .find(|a| a.native)
        .unwrap_or_else(|| panic!("no native asset"))
        .id();
    let params = ChainParams {
        network: meta.network,
        native_asset: native,
        min_fee_base: 1_000,
        min_fee_per_byte: 10,
    };
    let config = EngineConfig {
        finality_depth: 6,
        max_block_txs: 100,
        max_pool_txs: 1000,
        max_pool_per_client: 1000,
        block_interval_secs: 0,
        sandbox: true,
        submit_wait: std::time::Duration::from_secs(10),
    };
    let (engine, _writer) = Engine::start(
        store.clone(),
        meta,
        params,
        config,
        setup.authority,
        setup.issuers,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Fixture {
        _dir: dir,
        store,
        engine,
    }
}

impl Fixture {
    /// Submits a faucet mint of NOTE to a fresh key.
    async fn mint(&self, n: u8) -> TxId {
        let asset = self.engine.meta.assets[0].clone();
        let owner = public_key(&notch_protocol::ed25519_dalek::SigningKey::from_bytes(
            &[n; 32],
        ));
        let tx = self
            .engine
            .faucet_tx(&asset, owner, 1_000_000)
            .unwrap_or_else(|f| panic!("{f:?}"));
        let r = self
            .engine
            .submit(tx.encode(), None)
            .await
            .unwrap_or_else(|f| panic!("{f:?}"));
        TxId::from_hex(&r.txid).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Memory equals the database: the tip, and which transactions are in the pool.
    fn assert_consistent(&self) {
        off_runtime(|| self.assert_consistent_here());
    }

    fn assert_consistent_here(&self) {
        let db_tip = self.store.inner.tip().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            self.engine.tip(),
            db_tip,
            "engine tip differs from the database"
        );
        for e in self.store.inner.mempool().unwrap_or_else(|e| panic!("{e}")) {
            let rec = self
                .engine
                .tx_record(&e.txid)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(matches!(rec.map(|r| r.state), Some(TxState::InPool { .. })));
        }
    }

    fn state(&self, txid: &TxId) -> Option<TxState> {
        off_runtime(|| {
            self.store
                .inner
                .tx(txid)
                .unwrap_or_else(|e| panic!("{e}"))
                .map(|r| r.state)
        })
    }
}

both_backends!(a_failed_block_leaves_tip_and_pool_as_stored_and_the_next_block_works);
fn a_failed_block_leaves_tip_and_pool_as_stored_and_the_next_block_works(b: Backend) {
    block_on(async {
        let f = start(&b);
        let t = f.mint(1).await;
        f.store.apply_block.store(true, Ordering::SeqCst);
        assert!(
            f.engine.mine(1).await.is_err(),
            "the injected failure must surface"
        );
        f.assert_consistent();
        assert_eq!(f.engine.tip().height, 0);
        assert!(matches!(f.state(&t), Some(TxState::InPool { .. })));
        // No restart: the next block holds the transaction.
        let mined = f.engine.mine(1).await.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(mined.len(), 1);
        assert!(matches!(
            f.state(&t),
            Some(TxState::Confirmed { height: 1, .. })
        ));
        f.assert_consistent();
    })
}

both_backends!(a_reorg_that_fails_inside_its_write_changes_nothing);
fn a_reorg_that_fails_inside_its_write_changes_nothing(b: Backend) {
    block_on(async {
        let f = start(&b);
        let t = f.mint(2).await;
        f.engine.mine(3).await.unwrap_or_else(|e| panic!("{e:?}"));
        let before = f.engine.tip();
        f.store.reorg.store(true, Ordering::SeqCst);
        assert!(f.engine.reorg(2, vec![]).await.is_err());
        assert_eq!(f.engine.tip(), before);
        f.assert_consistent();
        assert!(matches!(
            f.state(&t),
            Some(TxState::Confirmed { height: 1, .. })
        ));
        f.engine.mine(1).await.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(f.engine.tip().height, before.height + 1);
        f.assert_consistent();
    })
}

both_backends!(a_reorg_that_fails_after_its_commit_is_caught_up_before_the_next_command);
fn a_reorg_that_fails_after_its_commit_is_caught_up_before_the_next_command(b: Backend) {
    block_on(async {
        let f = start(&b);
        f.mint(3).await;
        f.engine.mine(1).await.unwrap_or_else(|e| panic!("{e:?}"));
        let pooled = f.mint(4).await;
        f.engine.mine(1).await.unwrap_or_else(|e| panic!("{e:?}"));
        // The reorg commits, then reading the pool back fails: memory is behind the database.
        f.store.mempool.store(true, Ordering::SeqCst);
        assert!(f.engine.reorg(1, vec![]).await.is_err());
        // The transaction of the orphaned block went back to the pool in the database.
        assert!(matches!(f.state(&pooled), Some(TxState::InPool { .. })));
        // The next command first makes memory equal to the database, then works: the
        // transaction back in the pool is mined again.
        f.engine.mine(1).await.unwrap_or_else(|e| panic!("{e:?}"));
        f.assert_consistent();
        assert!(matches!(f.state(&pooled), Some(TxState::Confirmed { .. })));
    })
}

both_backends!(a_failed_pool_write_answers_unavailable_and_keeps_nothing);
fn a_failed_pool_write_answers_unavailable_and_keeps_nothing(b: Backend) {
    block_on(async {
        let f = start(&b);
        f.store.add_to_pool.store(true, Ordering::SeqCst);
        let asset = f.engine.meta.assets[0].clone();
        let owner = public_key(&notch_protocol::ed25519_dalek::SigningKey::from_bytes(
            &[5; 32],
        ));
        let tx = f
            .engine
            .faucet_tx(&asset, owner, 7)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let err = f
            .engine
            .submit(tx.encode(), None)
            .await
            .err()
            .unwrap_or_else(|| panic!("the injected failure must surface"));
        assert_eq!(err.error.code, "unavailable");
        assert_eq!(f.state(&tx.txid()), None);
        // Submitted again, it is accepted (not "duplicate": it never was in the pool).
        let r = f
            .engine
            .submit(tx.encode(), None)
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!r.duplicate);
        f.engine.mine(1).await.unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(
            f.state(&tx.txid()),
            Some(TxState::Confirmed { .. })
        ));
        f.assert_consistent();
    })
}
