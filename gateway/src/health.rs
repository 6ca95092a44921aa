//! Readiness (`GET /v1/health`) and liveness (`GET /v1/health/live`), docs/OPERATING.md
//! "Monitor".
//!
//! Readiness asks the database for its tip, bounded by a timeout, and keeps the answer for
//! [`CACHE_FOR`]: a load balancer polling every replica many times a second costs the
//! database at most one query a second per process. At most one check runs at a time; one
//! that outlives its timeout is not started again until it returns, so a database that hangs
//! never piles up blocked threads or connections. Liveness reads memory only.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use notch_protocol::api::{DatabaseHealth, HealthResponse, ReplicaHealth};

use crate::ledger::Engine;
use crate::metrics;
use crate::store::TipRow;

/// How long one check of the database serves answers.
pub const CACHE_FOR: Duration = Duration::from_secs(1);

/// What this process was started as (`--read-only`, `--standby`, or neither).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Writer,
    ReadOnly,
    Standby,
}

#[derive(Clone, Debug)]
pub struct HealthConfig {
    pub role: Role,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// How long a check may wait for the database.
    pub timeout: Duration,
    /// How long a replica's tip may differ from the database's before it is not ready.
    pub max_behind: Duration,
}

/// The result of one check of the database.
#[derive(Clone, Debug)]
struct Probe {
    at: Instant,
    /// The database's tip and how long it took to answer, or why it did not.
    result: Result<(TipRow, Duration), String>,
}

#[derive(Default)]
struct State {
    last: Option<Probe>,
    /// Since when a replica's tip has differed from the database's.
    behind_since: Option<Instant>,
}

pub struct Health {
    config: HealthConfig,
    /// Held while a check is made: concurrent requests wait for that one instead of making
    /// their own (at most `timeout`).
    state: tokio::sync::Mutex<State>,
    /// Set while a query of the database runs, also one a timed-out check left behind.
    probing: Arc<AtomicBool>,
}

/// Clears `probing` when the blocking query ends, however it ends.
struct Probing(Arc<AtomicBool>);

impl Drop for Probing {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Health {
    pub fn new(config: HealthConfig) -> Health {
        Health {
            config,
            state: tokio::sync::Mutex::new(State::default()),
            probing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The role now: a standby that took the writer's place is the writer.
    pub fn role(&self, engine: &Engine) -> &'static str {
        match self.config.role {
            Role::Writer => "writer",
            Role::ReadOnly => "read-only",
            Role::Standby if engine.read_only() => "standby",
            Role::Standby => "writer",
        }
    }

    /// What liveness answers: memory only.
    pub fn live(&self, engine: &Engine) -> HealthResponse {
        let tip = engine.tip();
        HealthResponse {
            status: "ok".into(),
            network: engine.params.network.name().into(),
            tip_height: tip.height,
            tip_hash: Some(tip.id.to_hex()),
            role: Some(self.role(engine).into()),
            backend: Some(self.config.backend.into()),
            pool_txs: (!engine.read_only()).then(|| engine.pool_len() as u64),
            database: None,
            replica: None,
            reason: None,
        }
    }

    /// Readiness: `true` with the answer when this process can serve. `shutting_down`: it is
    /// stopping (a load balancer should take it out now).
    pub async fn ready(&self, engine: &Arc<Engine>, shutting_down: bool) -> (bool, HealthResponse) {
        let mut state = self.state.lock().await;
        let fresh = state
            .last
            .as_ref()
            .is_some_and(|p| p.at.elapsed() < CACHE_FOR);
        if !fresh {
            state.last = Some(self.probe(engine).await);
        }
        let Some(probe) = state.last.clone() else {
            // Set just above.
            return (false, self.live(engine));
        };
        let mut answer = self.live(engine);
        let local = engine.tip();
        let mut reason = None;
        answer.database = Some(match &probe.result {
            Ok((tip, took)) => DatabaseHealth {
                reachable: true,
                latency_ms: Some(ms(*took)),
                tip_height: Some(tip.height),
                checked_ms_ago: ms(probe.at.elapsed()),
            },
            Err(why) => {
                reason = Some(why.clone());
                DatabaseHealth {
                    reachable: false,
                    latency_ms: None,
                    tip_height: None,
                    checked_ms_ago: ms(probe.at.elapsed()),
                }
            }
        });
        let replica = self.config.role != Role::Writer && engine.read_only();
        if replica {
            let behind_blocks = match &probe.result {
                Ok((db, _)) => {
                    if db.id == local.id {
                        state.behind_since = None;
                    } else {
                        state.behind_since.get_or_insert(probe.at);
                    }
                    db.height.saturating_sub(local.height)
                }
                Err(_) => 0,
            };
            let behind_for = state.behind_since.map(|s| s.elapsed());
            if reason.is_none()
                && let Some(d) = behind_for
                && d > self.config.max_behind
            {
                reason = Some(format!(
                    "this replica's tip ({}) has differed from the database's for {} s \
                     ({behind_blocks} blocks behind): its follower is not keeping up",
                    local.height,
                    d.as_secs()
                ));
            }
            let heard = metrics::follower_last_heard();
            answer.replica = Some(ReplicaHealth {
                behind_blocks,
                behind_ms: behind_for.map(ms),
                last_heard_ms_ago: heard.map(ms),
            });
            metrics::gauge(metrics::REPLICA_BEHIND, behind_blocks as f64);
            if let Some(h) = heard {
                metrics::gauge(metrics::REPLICA_LAST_HEARD, h.as_secs_f64());
            }
        }
        if reason.is_none() && shutting_down {
            reason = Some("the gateway is shutting down".into());
        }
        if let Ok((_, took)) = &probe.result {
            metrics::gauge(metrics::DATABASE_CHECK, took.as_secs_f64());
        }
        let ok = reason.is_none();
        metrics::gauge(metrics::READY, if ok { 1.0 } else { 0.0 });
        if !ok {
            answer.status = "unavailable".into();
            answer.reason = reason;
        }
        (ok, answer)
    }

    /// One bounded query of the database's tip, on the blocking pool (the PostgreSQL client
    /// must not run on a runtime thread).
    async fn probe(&self, engine: &Arc<Engine>) -> Probe {
        let started = Instant::now();
        let timeout = self.config.timeout;
        let failed = |why: String| {
            metrics::database_error(metrics::During::Health);
            Probe {
                at: Instant::now(),
                result: Err(why),
            }
        };
        if self.probing.swap(true, Ordering::AcqRel) {
            return failed(format!(
                "the database has not answered a check for more than {} ms",
                ms(timeout)
            ));
        }
        let guard = Probing(self.probing.clone());
        let store = engine.store.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            store.tip()
        });
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(Ok(tip))) => Probe {
                at: Instant::now(),
                result: Ok((tip, started.elapsed())),
            },
            // Store errors name no password (the URL is only ever shown redacted).
            Ok(Ok(Err(e))) => failed(format!("the database did not answer: {e}")),
            Ok(Err(e)) => failed(format!("the database check failed: {e}")),
            Err(_) => failed(format!(
                "the database did not answer within {} ms",
                ms(timeout)
            )),
        }
    }
}
