//! The library's log lines for the host: a foreign trait ([`HostLogger`])
//! the host implements over its own log (Android's `Log`, `os_log`, a
//! Python list), and [`set_logger`], which routes the `tracing` events of
//! the core (and of the dependencies that use `tracing`) at a level and
//! above to it. Dependencies that log with the `log` crate instead (rustls,
//! reqwest, …) take the same path: the library's `log` logger
//! ([`tracing_log::LogTracer`]) turns their records into `tracing` events,
//! with the record's own target and level.
//!
//! How a line travels: a [`tracing_subscriber::Registry`] with one small
//! [`Layer`] is the process's global subscriber, installed once, when the
//! library first starts its runtime or when the host first calls
//! [`set_logger`]. The layer formats the event on the thread that emitted
//! it and hands the line to a bounded queue without waiting (a full queue
//! drops the line and counts it); one thread of the library (`notch-log`)
//! takes lines off the queue and calls the host. So the wallet's threads
//! never wait for the host's logger, a host logger that throws loses that
//! line only (caught here, never a panic across the FFI; said once on
//! stderr), and a line
//! emitted while the host's callback runs (on `notch-log`) is dropped
//! rather than looping back into the host.
//!
//! Until the host calls [`set_logger`], lines at `Warn` and above go to
//! stderr (on iOS that is the Xcode console; on Android stderr goes
//! nowhere, so an Android app wanting the library's lines sets a logger
//! over `android.util.Log`).

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Once, OnceLock, RwLock};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// How much the library says, most severe first. A logger set at a level
/// gets that level and every more severe one (`Info`: errors, warnings and
/// info lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, uniffi::Enum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn of(level: &Level) -> Self {
        match *level {
            Level::ERROR => Self::Error,
            Level::WARN => Self::Warn,
            Level::INFO => Self::Info,
            Level::DEBUG => Self::Debug,
            _ => Self::Trace,
        }
    }

    fn rank(self) -> u8 {
        self as u8
    }

    fn from_rank(rank: u8) -> Self {
        match rank {
            0 => Self::Error,
            1 => Self::Warn,
            2 => Self::Info,
            3 => Self::Debug,
            _ => Self::Trace,
        }
    }

    fn filter(self) -> LevelFilter {
        match self {
            Self::Error => LevelFilter::ERROR,
            Self::Warn => LevelFilter::WARN,
            Self::Info => LevelFilter::INFO,
            Self::Debug => LevelFilter::DEBUG,
            Self::Trace => LevelFilter::TRACE,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Warn => "WARN",
            Self::Info => "INFO",
            Self::Debug => "DEBUG",
            Self::Trace => "TRACE",
        }
    }
}

/// The host's log. Called on one thread of the library (`notch-log`), one
/// line at a time, in the order the lines were emitted. `target` is the
/// Rust module that logged (`notch_core::sync`); `message` is the line,
/// its fields appended as `key=value`. A call that throws loses that line;
/// a slow logger makes the library drop lines (it then says how many), it
/// never makes the wallet wait.
#[uniffi::export(foreign)]
pub trait HostLogger: Send + Sync {
    fn log(&self, level: LogLevel, target: String, message: String);
}

/// Routes the library's log lines at `level` and more severe to `logger`
/// (null: to stderr, at `level`). May be called any time and any number of
/// times: each call replaces the logger and the level for the lines emitted
/// after it (the subscriber is installed once per process, the logger
/// behind it is swapped). Lines already emitted still go where they were
/// routed. Before the first call, `Warn` and above go to stderr.
///
/// Returns false if the process already had another global `tracing`
/// subscriber (other Rust code in the app installed one first): the
/// library's lines then go to that one and `logger` is never called.
#[uniffi::export]
pub fn set_logger(logger: Option<Arc<dyn HostLogger>>, level: LogLevel) -> bool {
    let global = global();
    let sink = match logger {
        Some(logger) => Sink::host(logger),
        None => Sink::Stderr,
    };
    global.router.set(Arc::new(sink), level);
    global.ours
}

/// Installs the library's subscriber (stderr at `Warn`) if nothing was
/// installed yet. Called when the runtime starts.
pub(crate) fn install_default() {
    let _ = global();
}

/// The lines a queue holds before new ones are dropped.
const QUEUE: usize = 1024;

/// A line longer than this (a large `Debug` field) is cut.
const MAX_LINE: usize = 8 * 1024;

/// Where lines go.
enum Sink {
    Stderr,
    Host {
        logger: Arc<dyn HostLogger>,
        /// Set when it first threw (said once on stderr).
        threw: AtomicBool,
    },
}

impl Sink {
    fn host(logger: Arc<dyn HostLogger>) -> Self {
        Self::Host {
            logger,
            threw: AtomicBool::new(false),
        }
    }
}

/// One line, with where it goes.
struct Line {
    sink: Arc<Sink>,
    level: LogLevel,
    target: String,
    message: String,
}

thread_local! {
    /// True on the thread that calls the host (`notch-log`): what is
    /// logged there (inside the host's callback) is dropped.
    static DELIVERING: Cell<bool> = const { Cell::new(false) };
}

/// The state the layer and [`set_logger`] share.
struct Router {
    /// The rank of the most verbose level let through.
    level: AtomicU8,
    sink: RwLock<Arc<Sink>>,
    /// `None` if the delivering thread could not be started.
    queue: Option<SyncSender<Line>>,
    dropped: Arc<AtomicU64>,
}

impl Router {
    fn new(sink: Sink, level: LogLevel) -> Arc<Self> {
        quiet_panics_while_delivering();
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let started = std::thread::Builder::new()
            .name("notch-log".into())
            .spawn(move || deliver(rx, &counter))
            .is_ok();
        Arc::new(Self {
            level: AtomicU8::new(level.rank()),
            sink: RwLock::new(Arc::new(sink)),
            queue: started.then_some(tx),
            dropped,
        })
    }

    fn level(&self) -> LogLevel {
        LogLevel::from_rank(self.level.load(Ordering::Relaxed))
    }

    fn lets_through(&self, level: &Level) -> bool {
        LogLevel::of(level) <= self.level()
    }

    fn set(&self, sink: Arc<Sink>, level: LogLevel) {
        // The old sink is dropped here, outside the lock (for a host
        // logger, that releases the host's object).
        let old = match self.sink.write() {
            Ok(mut current) => std::mem::replace(&mut *current, sink),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), sink),
        };
        drop(old);
        let changed = self.level.swap(level.rank(), Ordering::Relaxed) != level.rank();
        if changed {
            // The callsites' cached interest and tracing's global maximum
            // level follow the new level.
            tracing_core::callsite::rebuild_interest_cache();
        }
    }

    fn route(&self, level: LogLevel, target: &str, message: String) {
        let Some(queue) = &self.queue else { return };
        let sink = match self.sink.read() {
            Ok(sink) => sink.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let line = Line {
            sink,
            level,
            target: target.to_owned(),
            message,
        };
        match queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The delivering thread: every line to its sink, a host logger's panic
/// (the host threw) caught and the line lost.
fn deliver(rx: Receiver<Line>, dropped: &AtomicU64) {
    DELIVERING.with(|d| d.set(true));
    while let Ok(line) = rx.recv() {
        let missed = dropped.swap(0, Ordering::Relaxed);
        if missed > 0 {
            write(
                &line.sink,
                LogLevel::Warn,
                "notch_mobile::logging",
                format!("{missed} log lines were dropped: the logger did not keep up"),
            );
        }
        let Line {
            sink,
            level,
            target,
            message,
        } = line;
        write(&sink, level, &target, message);
    }
}

fn write(sink: &Sink, level: LogLevel, target: &str, message: String) {
    match sink {
        Sink::Stderr => {
            let text = stderr_line(level, target, &message);
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
        Sink::Host { logger, threw } => {
            let target = target.to_owned();
            let called = std::panic::catch_unwind(AssertUnwindSafe(|| {
                logger.log(level, target, message);
            }));
            if let Err(payload) = called
                && !threw.swap(true, Ordering::Relaxed)
            {
                let what = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let text = stderr_line(
                    LogLevel::Warn,
                    "notch_mobile::logging",
                    &format!("the app's logger threw ({what}); the lines it throws on are lost"),
                );
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
        }
    }
}

/// A host logger that throws is a panic on the delivering thread (uniffi
/// turns the exception into one); it is caught and said once, so the
/// process's panic hook (a message and maybe a backtrace per line) is
/// skipped there. Everywhere else the hook runs as before.
fn quiet_panics_while_delivering() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !DELIVERING.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// A line as the stderr default writes it.
fn stderr_line(level: LogLevel, target: &str, message: &str) -> String {
    format!("notch {:5} {target}: {message}\n", level.label())
}

/// The layer: formats the events the router lets through.
struct HostLayer(Arc<Router>);

impl<S: Subscriber> Layer<S> for HostLayer {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Spans carry nothing the host is sent; only events are.
        if metadata.is_event() && self.0.lets_through(metadata.level()) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.is_event() && self.0.lets_through(metadata.level()) && !DELIVERING.with(Cell::get)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.0.level().filter())
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        // A `log` record's event names the record's target and level here (its
        // callsite's own target is "log").
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        // Checked here too: an `always` callsite skips `enabled`.
        if DELIVERING.with(Cell::get) || !self.0.lets_through(metadata.level()) {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        self.0.route(
            LogLevel::of(metadata.level()),
            metadata.target(),
            text.finish(),
        );
    }
}

/// An event's message, then its other fields as `key=value`.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Text {
    fn finish(self) -> String {
        let mut line = self.message;
        if !self.fields.is_empty() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&self.fields);
        }
        if line.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        line
    }

    fn field(&mut self, field: &Field) -> &mut String {
        if field.name() == "message" {
            &mut self.message
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            self.fields.push_str(field.name());
            self.fields.push('=');
            &mut self.fields
        }
    }
}

/// The fields tracing-log adds to a `log` record's event (`log.target`,
/// `log.module_path`, `log.file`, `log.line`): where it came from, not what it says.
fn from_log(field: &Field) -> bool {
    field.name().starts_with("log.")
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !from_log(field) {
            self.field(field).push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !from_log(field) {
            let _ = write!(self.field(field), "{value:?}");
        }
    }
}

/// The process's subscriber, installed once.
struct Global {
    router: Arc<Router>,
    /// Whether ours became the global subscriber.
    ours: bool,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();

fn global() -> &'static Global {
    GLOBAL.get_or_init(|| {
        let router = Router::new(Sink::Stderr, LogLevel::Warn);
        let subscriber = tracing_subscriber::registry().with(HostLayer(router.clone()));
        let ours = tracing::subscriber::set_global_default(subscriber).is_ok();
        // The `log` crate's records as `tracing` events (every level: the
        // router's level decides, through tracing's maximum level, which
        // LogTracer checks first). Refused if the app set a `log` logger of
        // its own first: those records then go there.
        let _ = tracing_log::LogTracer::init();
        Global { router, ours }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    #[derive(Default)]
    struct Recorder {
        lines: Mutex<Vec<(LogLevel, String, String)>>,
    }

    impl Recorder {
        fn lines(&self) -> Vec<(LogLevel, String, String)> {
            self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }

        fn wait_for(&self, what: &str, test: impl Fn(&[(LogLevel, String, String)]) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !test(&self.lines()) {
                let lines = self.lines();
                let last = &lines[lines.len().saturating_sub(3)..];
                assert!(
                    Instant::now() < deadline,
                    "{what}: {} lines, the last {last:?}",
                    lines.len()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    impl HostLogger for Recorder {
        fn log(&self, level: LogLevel, target: String, message: String) {
            self.lines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((level, target, message));
        }
    }

    /// Runs `body` with a router of its own as the thread's subscriber.
    fn with_router(router: &Arc<Router>, body: impl FnOnce()) {
        let subscriber = tracing_subscriber::registry().with(HostLayer(router.clone()));
        tracing::subscriber::with_default(subscriber, body);
    }

    fn host(recorder: &Arc<Recorder>) -> Arc<Sink> {
        Arc::new(Sink::host(recorder.clone()))
    }

    #[test]
    fn lines_at_the_level_and_above_reach_the_host_with_their_fields() {
        let recorder = Arc::new(Recorder::default());
        let router = Router::new(Sink::Stderr, LogLevel::Warn);
        router.set(host(&recorder), LogLevel::Info);
        with_router(&router, || {
            tracing::debug!("not this one");
            tracing::info!(tally = "t-1", count = 3, "a setting chit became binding");
            tracing::warn!("gateway unreachable");
            tracing::error!(txid = %"ab12", "refused");
        });
        recorder.wait_for("three lines", |l| l.len() == 3);
        let lines = recorder.lines();
        let target = module_path!().to_owned();
        assert_eq!(
            lines,
            vec![
                (
                    LogLevel::Info,
                    target.clone(),
                    "a setting chit became binding tally=t-1 count=3".to_owned()
                ),
                (LogLevel::Warn, target.clone(), "gateway unreachable".into()),
                (LogLevel::Error, target, "refused txid=ab12".into()),
            ]
        );
    }

    #[test]
    fn records_of_the_log_crate_reach_the_host_with_their_target_and_level() {
        // Installs the process's `log` logger (and the global subscriber), as the
        // library's first call does.
        install_default();
        let recorder = Arc::new(Recorder::default());
        let router = Router::new(Sink::Stderr, LogLevel::Warn);
        router.set(host(&recorder), LogLevel::Info);
        with_router(&router, || {
            tracing_log::log::debug!(target: "some_dependency", "not this one");
            tracing_log::log::info!(target: "some_dependency::conn", "connected to {}", "gw");
            tracing_log::log::error!("from here");
        });
        recorder.wait_for("two lines", |l| l.len() == 2);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            recorder.lines(),
            vec![
                (
                    LogLevel::Info,
                    "some_dependency::conn".to_owned(),
                    "connected to gw".to_owned()
                ),
                (
                    LogLevel::Error,
                    module_path!().to_owned(),
                    "from here".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_second_logger_replaces_the_first_and_its_level_holds() {
        let (first, second) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let router = Router::new(Sink::Stderr, LogLevel::Warn);
        router.set(host(&first), LogLevel::Info);
        with_router(&router, || tracing::info!("to the first"));
        router.set(host(&second), LogLevel::Error);
        with_router(&router, || {
            tracing::warn!("to no one");
            tracing::error!("to the second");
        });
        second.wait_for("the second's line", |l| !l.is_empty());
        first.wait_for("the first's line", |l| !l.is_empty());
        assert_eq!(first.lines().len(), 1);
        assert_eq!(first.lines()[0].2, "to the first");
        assert_eq!(second.lines().len(), 1);
        assert_eq!(second.lines()[0].2, "to the second");
    }

    /// Throws (a panic, as uniffi turns a host's exception into) on the
    /// lines that say so.
    struct Throwing(Recorder);

    impl HostLogger for Throwing {
        fn log(&self, level: LogLevel, target: String, message: String) {
            if message.contains("throw") {
                panic!("the host's logger threw");
            }
            self.0.log(level, target, message);
        }
    }

    #[test]
    fn a_logger_that_throws_loses_that_line_only() {
        let throwing = Arc::new(Throwing(Recorder::default()));
        let router = Router::new(Sink::Stderr, LogLevel::Warn);
        router.set(Arc::new(Sink::host(throwing.clone())), LogLevel::Info);
        with_router(&router, || {
            tracing::info!("throw now");
            tracing::info!("kept");
        });
        throwing
            .0
            .wait_for("the line after", |l| l.iter().any(|(_, _, m)| m == "kept"));
        let messages: Vec<String> = throwing.0.lines().into_iter().map(|l| l.2).collect();
        assert_eq!(messages, vec!["kept".to_owned()]);
    }

    /// Logs from inside its own callback, as a host whose logger calls
    /// back into the library would.
    struct Recursing(Recorder);

    impl HostLogger for Recursing {
        fn log(&self, level: LogLevel, target: String, message: String) {
            tracing::warn!("logged inside the host's callback");
            self.0.log(level, target, message);
        }
    }

    /// The one test of the process's subscriber (the others use a router
    /// of their own as their thread's subscriber): the callback runs on the
    /// delivering thread, whose lines reach the global subscriber, ours.
    #[test]
    fn set_logger_installs_once_and_a_line_logged_inside_the_callback_is_dropped() {
        let recursing = Arc::new(Recursing(Recorder::default()));
        assert!(set_logger(Some(recursing.clone()), LogLevel::Trace));
        std::thread::spawn(|| {
            tracing::info!("one");
            tracing::info!("two");
        })
        .join()
        .unwrap_or_else(|_| panic!("the logging thread panicked"));
        recursing.0.wait_for("two lines", |l| l.len() >= 2);
        std::thread::sleep(Duration::from_millis(100));
        let global = std::thread::spawn(|| tracing::info!("three")).join();
        assert!(global.is_ok());
        recursing.0.wait_for("three lines", |l| l.len() >= 3);
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            set_logger(None, LogLevel::Warn),
            "installed once, swapped after"
        );
        let messages: Vec<String> = recursing.0.lines().into_iter().map(|l| l.2).collect();
        assert_eq!(messages, vec!["one", "two", "three"]);
    }

    /// Blocks until told to go on.
    struct Stuck {
        go: Mutex<bool>,
        cond: std::sync::Condvar,
        seen: Recorder,
    }

    impl HostLogger for Stuck {
        fn log(&self, level: LogLevel, target: String, message: String) {
            let mut go = self.go.lock().unwrap_or_else(|p| p.into_inner());
            while !*go {
                go = self.cond.wait(go).unwrap_or_else(|p| p.into_inner());
            }
            self.seen.log(level, target, message);
        }
    }

    #[test]
    fn a_stuck_logger_never_holds_up_the_emitting_thread_and_hears_what_it_missed() {
        let stuck = Arc::new(Stuck {
            go: Mutex::new(false),
            cond: std::sync::Condvar::new(),
            seen: Recorder::default(),
        });
        let router = Router::new(Sink::Stderr, LogLevel::Warn);
        router.set(Arc::new(Sink::host(stuck.clone())), LogLevel::Info);
        let many = QUEUE * 3;
        let started = Instant::now();
        with_router(&router, || {
            for i in 0..many {
                tracing::info!(i, "line");
            }
        });
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "emitting took {:?}",
            started.elapsed()
        );
        *stuck.go.lock().unwrap_or_else(|p| p.into_inner()) = true;
        stuck.cond.notify_all();
        // Once the queue is drained, a new line goes through again.
        stuck
            .seen
            .wait_for("the queue to drain", |l| l.len() > QUEUE);
        with_router(&router, || tracing::info!("after"));
        stuck
            .seen
            .wait_for("the line after", |l| l.iter().any(|(_, _, m)| m == "after"));
        let lines = stuck.seen.lines();
        assert!(lines.len() < many, "{} lines, none dropped", lines.len());
        assert!(
            lines
                .iter()
                .any(|(level, target, m)| *level == LogLevel::Warn
                    && target == "notch_mobile::logging"
                    && m.ends_with("log lines were dropped: the logger did not keep up")),
            "no word of the dropped lines"
        );
    }

    #[test]
    fn long_lines_are_cut_and_stderr_lines_name_level_and_target() {
        let line = Text {
            message: "é".repeat(MAX_LINE),
            fields: String::new(),
        }
        .finish();
        assert!(line.len() <= MAX_LINE + '…'.len_utf8() && line.ends_with('…'));
        assert_eq!(
            stderr_line(LogLevel::Warn, "notch_core::sync", "sync failed"),
            "notch WARN  notch_core::sync: sync failed\n"
        );
    }
}
