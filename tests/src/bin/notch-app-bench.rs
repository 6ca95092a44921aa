//! Desktop app benchmarks: the real release `notch-app` in a real window,
//! driven through tauri-driver / WebKitWebDriver, against real sandbox
//! gateways on loopback.
//!
//! 1. Cold start to the first screen a person can use: for a fresh profile
//!    (onboarding: the "Create a wallet" button), for an existing small
//!    wallet and for a wallet with a long history (home: the balances
//!    table). The clock starts when the kernel started the `notch-app`
//!    process (its `starttime` in /proc/<pid>/stat) and stops at the first
//!    animation frame after the screen's element entered the DOM (recorded
//!    inside the page by a MutationObserver and `requestAnimationFrame`).
//!    tauri-driver and WebKitWebDriver start before the app and are not on
//!    that clock.
//! 2. Memory (VmRSS, and Pss from smaps_rollup) of the app's process tree
//!    (notch-app and its WebKit processes) after start-up, after opening the
//!    History screen of a wallet with a long history (by default 100,000
//!    transactions) and after scrolling through it; the time from the click
//!    on History to its first rows being painted; requestAnimationFrame
//!    intervals while the list is scrolled programmatically (steadily, and
//!    across the whole list), next to an idle baseline.
//!
//! Usage: `notch-app-bench [--out FILE] [--runs N] [--history-txs N]
//! [--block-txs N] [--scroll-secs S] [--steady-px-per-sec P]`.
//! Needs, next to this binary (same profile dir): `notch-app` (built after
//! the release UI build of `xtask/src/ui.rs`, cargo for wasm32 and wasm-bindgen), `notch-gateway` and
//! `notch-gateway-populate`; and a display, a session D-Bus with a Secret
//! Service (the app keeps its seed in the OS keystore) and
//! NOTCH_TEST_SECRET_SERVICE=1 to say that keystore is a throwaway one
//! (the bench writes wallet seeds into it). `cargo xtask bench` provides
//! all of that (Xvfb, dbus-run-session, gnome-keyring).
//!
//! The long-history ledger is written once by `notch-gateway-populate` into
//! `<target>/bench-ledger-app/<parameters>/` (every transaction pays the
//! wallet) and reused by later runs with the same parameters.

#![allow(clippy::unwrap_used)] // a benchmark that cannot set up should stop loudly

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notch_core::keys::WordCount;
use notch_core::secrets::{OsSecretStore, SecretStore};
use notch_core::wallet::HistoryPageFilter;
use notch_core::{Network, Wallet, WalletConfig};
use notch_tests::app_bench::*;
use notch_tests::gateway::Sandbox;
use notch_tests::wallet::Gw;
use serde_json::{Value, json};

/// What `notch-gateway-populate` pays a listed key, per payment.
/// The history list's row height in pixels (ui/src/screens/history.rs).
const ROW_HEIGHT: f64 = 56.0;
/// How many times History is opened again from Home (the memory they add is
/// a figure of its own).
const REOPENINGS: usize = 10;
/// How long the app is left alone after a screen appears before its memory
/// is read (the web process finishes its start-up work in the background).
const SETTLE: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------- arguments

use notch_tests::bench::arg_str;

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    match arg_str(name) {
        None => default,
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} {v:?}: not a valid value")),
    }
}

// ---------------------------------------------------------------- locations

fn bin_dir() -> PathBuf {
    notch_tests::bench::exe_dir()
}

fn bin(name: &str) -> PathBuf {
    notch_tests::bench::sibling(
        name,
        "build it first (`cargo xtask bench` does: the release UI build into ui/, \
         then cargo build --release -p notch-app and -p notch-gateway --bins)",
    )
}

/// Cargo's target dir: the parent of this binary's profile dir.
fn target_dir() -> PathBuf {
    bin_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(bin_dir)
}

fn loadavg() -> String {
    notch_tests::bench::loadavg(3)
}

use notch_tests::bench::utc_now;

// ---------------------------------------------------------------- fixtures

/// The populated long-history ledger (populated if needed), its
/// `populated.json`, and whether it was reused.
fn ledger(txs: u64, block_txs: u64) -> (PathBuf, Value, bool) {
    let dir = notch_tests::bench::app_history_ledger_dir(&target_dir(), txs, block_txs);
    let (populated, cached) =
        notch_tests::bench::ledger(&bin("notch-gateway-populate"), &dir, txs, block_txs, 1);
    (dir, populated, cached)
}

fn start_gateway(data_dir: &Path) -> Sandbox {
    notch_tests::bench::start_gateway(&bin("notch-gateway"), data_dir)
}

fn config(dir: &Path, url: &str) -> WalletConfig {
    WalletConfig::new(dir, url, Network::Sandbox)
}

/// A new wallet (seed in the OS keystore) holding some of each sandbox
/// asset; returns its wallet id.
async fn small_wallet(dir: &Path, url: &str, store: Arc<dyn SecretStore>) -> String {
    let gw = Gw::new(url);
    let (wallet, _) = Wallet::create(config(dir, url), store, WordCount::Twelve)
        .await
        .unwrap();
    let address = wallet.receive_address().await.unwrap();
    gw.faucet(&address, "NOTE", 5_000_000_000).await;
    gw.faucet(&address, "EURT", 25_000).await;
    gw.faucet(&address, "USDT", 1_000_000).await;
    gw.mine(1).await;
    wallet.sync().await.unwrap();
    wallet.wallet_id().to_owned()
}

/// The long-history wallet: restore from the fixed phrase (seed in the OS
/// keystore), sync it to the tip, time `Wallet::history` in the core.
async fn history_wallet(
    dir: &Path,
    url: &str,
    store: Arc<dyn SecretStore>,
    expected: u64,
) -> Value {
    let (wallet, restored) =
        notch_tests::bench::restore_history_wallet(dir, url, store, expected).await;
    // What History asks for: its first page, and one in the middle of the
    // list (where a scroll bar dragged half-way lands).
    let (mut core_ms, mut deep_ms) = (Vec::new(), Vec::new());
    let mut count = 0;
    let mut total = 0;
    for _ in 0..3 {
        let started = Instant::now();
        let page = wallet
            .history_page(HistoryPageFilter::default(), None, 100)
            .await
            .unwrap();
        core_ms.push(started.elapsed().as_secs_f64() * 1e3);
        (count, total) = (page.rows.len(), page.total);
        let started = Instant::now();
        wallet
            .history_page_at(HistoryPageFilter::default(), None, total / 2, 100)
            .await
            .unwrap();
        deep_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    json!({
        "wallet_id": wallet.wallet_id(),
        "restore_secs": restored["restore_secs"],
        "sync_secs": restored["sync_secs"],
        "height": restored["height"],
        "payments_found": restored["payments_found"],
        "core_history_ms": summary(&core_ms),
        "core_history_deep_ms": summary(&deep_ms),
        "core_history_rows": count,
        "core_history_total": total,
        "db_bytes": std::fs::metadata(dir.join("wallet.sqlite")).map(|m| m.len()).unwrap_or(0),
        // What each table and index takes (dbstat), the wallet still open.
        "db_space": notch_tests::bench::space_json(&dir.join("wallet.sqlite")),
    })
}

/// requestAnimationFrame intervals for `secs` while nothing is asked of the page.
const IDLE_FRAMES_SCRIPT: &str = r#"
const secs = arguments[0];
const done = arguments[arguments.length - 1];
const frames = [];
let last = null;
const start = performance.now();
function step(ts) {
  if (last !== null) frames.push(ts - last);
  last = ts;
  if (ts - start >= secs * 1000) { done({ frames }); return; }
  requestAnimationFrame(step);
}
requestAnimationFrame(step);
"#;

/// Clicks History and times it until the first rows are in the DOM and
/// until the next frame (painted); records frame intervals meanwhile (how
/// long the page could not paint while it loaded the list).
const OPEN_HISTORY_SCRIPT: &str = r#"
const done = arguments[arguments.length - 1];
const t0 = performance.now();
const frames = [];
let last = null, finished = false, loading = null;
const q = (id) => document.querySelector(`[data-testid="${id}"]`);
function tick(ts) {
  if (finished) return;
  if (last !== null) frames.push(ts - last);
  last = ts;
  requestAnimationFrame(tick);
}
requestAnimationFrame(tick);
const finish = (what) => {
  if (finished) return;
  finished = true;
  mo.disconnect();
  const inDom = performance.now() - t0;
  requestAnimationFrame(() => {
    const shown = performance.now() - t0;
    const count = q('history-count');
    const err = q('history-error');
    done({ what, in_dom_ms: inDom, shown_ms: shown, loading_ms: loading, frames,
           count: count ? count.textContent : null, error: err ? err.textContent : null,
           rows_in_dom: document.querySelectorAll('[data-testid^="history-row-"]').length });
  });
};
const check = () => {
  if (loading === null && document.querySelector('main') && document.querySelector('main').innerText.includes('Loading')) {
    loading = performance.now() - t0;
  }
  if (q('history-row-0')) finish('rows');
  else if (q('history-error')) finish('error');
  else if (q('history-empty')) finish('empty');
};
const mo = new MutationObserver(check);
mo.observe(document.body, { childList: true, subtree: true, characterData: true });
q('nav-history').click();
"#;

/// Clicks Home and times it: until the home screen's element (its sync
/// state) is in the DOM, until the balances table is, and the frame that
/// paints it. The balances come from the table the wallet keeps
/// (`wallet_balances`), so the gap between the two is the figure.
const OPEN_HOME_SCRIPT: &str = r#"
const done = arguments[arguments.length - 1];
const t0 = performance.now();
const q = (id) => document.querySelector(`[data-testid="${id}"]`);
let home = null, finished = false;
const check = () => {
  if (finished) return;
  if (home === null && q('sync-state')) home = performance.now() - t0;
  if (q('balances') || q('balances-error')) {
    finished = true;
    mo.disconnect();
    const inDom = performance.now() - t0;
    requestAnimationFrame(() => done({ home_ms: home, in_dom_ms: inDom, shown_ms: performance.now() - t0,
                                       error: q('balances-error') ? q('balances-error').textContent : null }));
  }
};
const mo = new MutationObserver(check);
mo.observe(document.body, { childList: true, subtree: true, characterData: true });
q('nav-home').click();
"#;

/// Scrolls the history list for `secs`: 'steady' at `pxPerSec`, or
/// 'sweep' from the top to the bottom of the whole list. Per frame:
/// the interval since the last frame, and whether the row at the position
/// scrolled to in the previous frame is in the DOM, from its page (full)
/// or from the list's index (txid and confirmations still to come);
/// neither is a blank frame.
const SCROLL_SCRIPT: &str = r#"
const [mode, secs, pxPerSec, rowHeight] = arguments;
const done = arguments[arguments.length - 1];
const list = document.querySelector('[data-testid="history-list"]');
if (!list) { done({ error: 'no history list' }); return; }
list.scrollTop = 0;
// The list appends when it asks for a page and when one comes in
// (ui/src/screens/history.rs, `trace`); the checks go beside them.
window.__notchTrace = [];
// A long list scrolls a shorter spacer, scaled: `scale` list pixels per
// pixel of scrollTop (1 when it is not).
const scale = parseFloat(list.dataset.scale || '1');
const max = list.scrollHeight - list.clientHeight;
const frames = [];
let last = null, start = null, blank = 0, placeholder = 0, full = 0, indexed = 0, checked = 0, target = 0;
function step(ts) {
  if (start === null) start = ts;
  if (last !== null) {
    frames.push(ts - last);
    const idx = Math.floor(list.scrollTop * scale / rowHeight);
    checked++;
    const shown = !!document.querySelector(`[data-testid="history-row-${idx}"]`);
    const fromIndex = !shown && !!document.querySelector(`[data-testid="history-indexrow-${idx}"]`);
    window.__notchTrace.push([Date.now(), 'check', idx, shown ? 0 : fromIndex ? 2 : 1]);
    if (shown) full++;
    else if (fromIndex) indexed++;
    else {
      blank++;
      // Its page not there yet (a placeholder), or the list not yet
      // rendered for this position at all (the scroll event not handled).
      if (document.querySelector(`[data-testid="history-placeholder-${idx}"]`)) placeholder++;
    }
  }
  last = ts;
  const p = (ts - start) / (secs * 1000);
  if (p >= 1) {
    done({ frames, blank, placeholder, full, indexed, checked, max_scroll_px: max, end_scroll_px: list.scrollTop,
           end_row: Math.floor(list.scrollTop * scale / rowHeight), scale,
           rows_in_dom: document.querySelectorAll('[data-testid^="history-row-"]').length,
           trace: window.__notchTrace });
    window.__notchTrace = undefined;
    return;
  }
  target = mode === 'sweep' ? max * p : Math.min(max, pxPerSec * (ts - start) / 1000 / scale);
  list.scrollTop = target;
  requestAnimationFrame(step);
}
requestAnimationFrame(step);
"#;

/// The `history` command straight from the page (app + IPC + JSON, no UI).
const INVOKE_HISTORY_SCRIPT: &str = r#"
const done = arguments[arguments.length - 1];
const t0 = performance.now();
window.__TAURI__.core.invoke('history', { args: { query: { asset: null, incoming: null, search: null } } })
  .then((page) => {
    const ms = performance.now() - t0;
    const t1 = performance.now();
    const bytes = JSON.stringify(page).length;
    done({ ms, rows: page.rows.length, total: page.total, json_bytes: bytes, stringify_ms: performance.now() - t1 });
  })
  .catch((e) => done({ error: String(e && e.message || JSON.stringify(e)) }));
"#;

struct Ctx {
    app: PathBuf,
    screens: PathBuf,
    ticks: f64,
}

/// `runs` cold starts of the app on `data_dir()` (called per run), each
/// until `test_id` is painted, with the process tree's memory SETTLE later.
fn cold_starts(
    cx: &Ctx,
    name: &str,
    runs: usize,
    gateway: &str,
    data_dir: &mut dyn FnMut(usize) -> PathBuf,
    test_id: &str,
) -> Value {
    let mut out = Vec::new();
    for i in 0..runs {
        let dir = data_dir(i);
        let dir_s = dir.display().to_string();
        eprintln!("app-bench: cold start {name} {}/{runs}", i + 1);
        let run = launch(
            &cx.app,
            &[("NOTCH_GATEWAY", gateway), ("NOTCH_DATA_DIR", &dir_s)],
            &cx.screens.join(name),
            cx.ticks,
        );
        let timing = wait_screen(&run, test_id);
        std::thread::sleep(SETTLE);
        let memory = tree_memory(run.pid);
        if i == 0 {
            run.session.screenshot(&format!("{name}-first-screen"));
        }
        eprintln!(
            "app-bench:   shown at {:.0} ms, tree RSS {} KiB",
            timing["shown_ms"].as_f64().unwrap_or(f64::NAN),
            memory["rss_kib"]
        );
        out.push(json!({ "timing": timing, "memory": memory }));
        close(run);
    }
    let pick = |key: &str| -> Vec<f64> {
        out.iter()
            .filter_map(|r| r["timing"][key].as_f64())
            .collect()
    };
    let mem = |key: &str| -> Vec<f64> {
        out.iter()
            .filter_map(|r| r["memory"][key].as_f64())
            .collect()
    };
    json!({
        "test_id": test_id,
        "shown_ms": summary(&pick("shown_ms")),
        "in_dom_ms": summary(&pick("in_dom_ms")),
        "navigation_start_ms": summary(&pick("navigation_start_ms")),
        "dom_content_loaded_ms": summary(&pick("dom_content_loaded_ms")),
        "load_event_ms": summary(&pick("load_event_ms")),
        "session_ready_ms": summary(&pick("session_ready_ms")),
        "driver_asked_ms": summary(&pick("driver_asked_ms")),
        "any_already_there": out.iter().any(|r| r["timing"]["already_there_when_observed"] == json!(true)),
        "rss_kib": summary(&mem("rss_kib")),
        "pss_kib": summary(&mem("pss_kib")),
        "runs": out,
    })
}

/// The long-history session: start-up, open History, scroll, memory.
fn history_session(
    cx: &Ctx,
    gateway: &str,
    dir: &Path,
    scroll_secs: f64,
    px_per_sec: f64,
) -> Value {
    let dir_s = dir.display().to_string();
    // The app's log (slow store writes, each history page), to see what a
    // slow first open met.
    let _ = std::fs::create_dir_all(&cx.screens);
    let log_file = cx.screens.join("history-app.log").display().to_string();
    let run = launch(
        &cx.app,
        &[
            ("NOTCH_GATEWAY", gateway),
            ("NOTCH_DATA_DIR", &dir_s),
            ("RUST_LOG", "info,notch_core=debug,notch_app=debug"),
            ("NOTCH_LOG_FILE", &log_file),
        ],
        &cx.screens.join("history"),
        cx.ticks,
    );
    run.session.set_script_timeout(Duration::from_secs(600));
    let start = wait_screen(&run, "balances");
    std::thread::sleep(SETTLE);
    let mem_start = tree_memory(run.pid);
    let idle_home = run.session.execute_async(IDLE_FRAMES_SCRIPT, json!([2.0]));

    eprintln!("app-bench: opening History");
    let open_first = run.session.execute_async(OPEN_HISTORY_SCRIPT, json!([]));
    eprintln!(
        "app-bench:   {} after {} ms ({} rows in the DOM)",
        open_first["count"]
            .as_str()
            .or(open_first["error"].as_str())
            .unwrap_or("?"),
        f(&open_first["shown_ms"], 0),
        open_first["rows_in_dom"]
    );
    std::thread::sleep(SETTLE);
    let mem_history = tree_memory(run.pid);
    run.session.screenshot("history-open");
    let idle_history = run.session.execute_async(IDLE_FRAMES_SCRIPT, json!([2.0]));

    eprintln!("app-bench: scrolling");
    let steady = run.session.execute_async(
        SCROLL_SCRIPT,
        json!(["steady", scroll_secs, px_per_sec, ROW_HEIGHT]),
    );
    run.session.screenshot("history-scrolled-steady");
    // A fling: ten times that, several rows a frame, past the rows kept
    // either side of the view.
    let fast = run.session.execute_async(
        SCROLL_SCRIPT,
        json!(["steady", scroll_secs, px_per_sec * 10.0, ROW_HEIGHT]),
    );
    let sweep = run.session.execute_async(
        SCROLL_SCRIPT,
        json!(["sweep", scroll_secs, px_per_sec, ROW_HEIGHT]),
    );
    for (name, v) in [("steady", &steady), ("fast", &fast), ("sweep", &sweep)] {
        let _ = std::fs::write(
            cx.screens.join(format!("history-scroll-{name}-trace.json")),
            v["trace"].to_string(),
        );
    }
    run.session.screenshot("history-scrolled-to-the-end");
    std::thread::sleep(Duration::from_secs(1));
    let mem_scrolled = tree_memory(run.pid);

    // Again, from Home: each visit asks for its first page again.
    let mut reopen = Vec::new();
    let mut home = Vec::new();
    for _ in 0..REOPENINGS {
        home.push(run.session.execute_async(OPEN_HOME_SCRIPT, json!([])));
        std::thread::sleep(Duration::from_secs(1));
        reopen.push(run.session.execute_async(OPEN_HISTORY_SCRIPT, json!([])));
    }
    std::thread::sleep(SETTLE);
    let mem_reopened = tree_memory(run.pid);

    let mut invoke = Vec::new();
    for _ in 0..2 {
        invoke.push(run.session.execute_async(INVOKE_HISTORY_SCRIPT, json!([])));
    }
    std::thread::sleep(SETTLE);
    let mem_end = tree_memory(run.pid);
    close(run);

    let with_frames = |v: &Value| -> Value {
        let mut v = v.clone();
        let frames = floats(&v["frames"]);
        if let Some(o) = v.as_object_mut() {
            o.remove("frames");
            // Kept in the screens directory (below), not in the report.
            o.remove("trace");
            o.insert("frame_stats".into(), frame_stats(&frames));
        }
        v
    };
    json!({
        "start": start,
        "open_first": with_frames(&open_first),
        "reopen": reopen.iter().map(with_frames).collect::<Vec<_>>(),
        "home": home,
        "idle_home": frame_stats(&floats(&idle_home["frames"])),
        "idle_history": frame_stats(&floats(&idle_history["frames"])),
        "scroll_steady": with_frames(&steady),
        "scroll_fast": with_frames(&fast),
        "scroll_sweep": with_frames(&sweep),
        "invoke": invoke,
        "memory": {
            "after_start": mem_start,
            "after_history_open": mem_history,
            "after_scrolling": mem_scrolled,
            "after_reopening": mem_reopened,
            "after_two_raw_history_calls": mem_end,
        },
    })
}

/// `NOTCH_APP_BENCH_PROBE=1`: only this, after the wallet is synced, and
/// nothing written. Idle frames of History over time with nothing changed,
/// then with one thing changed at a time, printed: a quick loop for asking
/// what slows them.
fn frames_probe(cx: &Ctx, gateway: &str, dir: &Path) {
    let dir_s = dir.display().to_string();
    let log = std::env::var("NOTCH_APP_BENCH_PROBE_LOG")
        .unwrap_or_else(|_| "info,notch_core=debug,notch_app=debug".into());
    let _ = std::fs::create_dir_all(&cx.screens);
    let log_file = cx.screens.join("probe-app.log");
    eprintln!("app-bench probe: the app's log in {}", log_file.display());
    let log_file = log_file.display().to_string();
    let run = launch(
        &cx.app,
        &[
            ("NOTCH_GATEWAY", gateway),
            ("NOTCH_DATA_DIR", &dir_s),
            ("RUST_LOG", &log),
            ("NOTCH_LOG_FILE", &log_file),
        ],
        &cx.screens.join("probe"),
        cx.ticks,
    );
    run.session.set_script_timeout(Duration::from_secs(120));
    wait_screen(&run, "balances");
    std::thread::sleep(SETTLE);
    let idle = |label: &str| {
        let v = run.session.execute_async(IDLE_FRAMES_SCRIPT, json!([2.0]));
        let st = frame_stats(&floats(&v["frames"]));
        eprintln!(
            "app-bench probe: {label}: median {} ms, p95 {} ms",
            f(&st["median_ms"], 0),
            f(&st["p95_ms"], 0)
        );
    };
    idle("Home");
    let clock = || {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!(
            "{:02}:{:02}:{:02}.{:03} UTC",
            t.as_secs() / 3600 % 24,
            t.as_secs() / 60 % 60,
            t.as_secs() % 60,
            t.subsec_millis()
        )
    };
    eprintln!("app-bench probe: opening History at {}", clock());
    let open = run.session.execute_async(OPEN_HISTORY_SCRIPT, json!([]));
    eprintln!(
        "app-bench probe: History painted {} ms, at {}",
        f(&open["shown_ms"], 0),
        clock()
    );
    for i in 0..4 {
        idle(&format!("History, unchanged, {i}"));
        std::thread::sleep(Duration::from_secs(1));
    }
    for (mode, px) in [("steady", 2000.0), ("steady", 20000.0), ("sweep", 0.0)] {
        let v = run
            .session
            .execute_async(SCROLL_SCRIPT, json!([mode, 3.0, px, ROW_HEIGHT]));
        let _ = std::fs::write(
            cx.screens.join(format!("probe-scroll-{mode}-{px}.json")),
            v.to_string(),
        );
        let st = frame_stats(&floats(&v["frames"]));
        eprintln!(
            "app-bench probe: {mode} {px}: blank {} of {} ({} placeholders; {} full rows, {} index rows), frames median {} ms, p95 {} ms, ended at row {}",
            v["blank"],
            v["checked"],
            v["placeholder"],
            v["full"],
            v["indexed"],
            f(&st["median_ms"], 0),
            f(&st["p95_ms"], 0),
            v["end_row"]
        );
        let _ = run.session.execute(
            "document.querySelector('[data-testid=history-list]').scrollTop = 0;",
            json!([]),
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let extra = std::env::var("NOTCH_APP_BENCH_PROBE_JS").unwrap_or_default();
    for (label, script) in [
        (
            "scrollbar hidden",
            "const st = document.createElement('style'); st.textContent = '.vlist::-webkit-scrollbar { display: none; }'; document.head.appendChild(st);",
        ),
        (
            "overflow hidden",
            "document.querySelector('[data-testid=history-list]').style.overflowY = 'hidden';",
        ),
        (
            "overflow auto again",
            "document.querySelector('[data-testid=history-list]').style.overflowY = 'auto';",
        ),
        (
            "spacer 10,000 px",
            "document.querySelector('[data-testid=history-list]').firstElementChild.style.height = '10000px';",
        ),
        (
            "rows layer hidden",
            "document.querySelector('[data-testid=history-list]').firstElementChild.firstElementChild.style.display = 'none';",
        ),
        (
            "list hidden",
            "document.querySelector('[data-testid=history-list]').style.display = 'none';",
        ),
        ("extra (NOTCH_APP_BENCH_PROBE_JS)", extra.as_str()),
    ] {
        if script.is_empty() {
            continue;
        }
        let _ = run.session.execute(script, json!([]));
        std::thread::sleep(Duration::from_secs(1));
        idle(label);
    }
    close(run);
}

/// Where the first open's time goes: a fresh start-up, the `history`
/// command called cold from the page (nothing of History has run yet), then
/// History opened with the data path warm.
fn first_open_split_session(cx: &Ctx, gateway: &str, dir: &Path) -> Value {
    let dir_s = dir.display().to_string();
    let run = launch(
        &cx.app,
        &[("NOTCH_GATEWAY", gateway), ("NOTCH_DATA_DIR", &dir_s)],
        &cx.screens.join("history-split"),
        cx.ticks,
    );
    run.session.set_script_timeout(Duration::from_secs(120));
    wait_screen(&run, "balances");
    std::thread::sleep(SETTLE);
    let cold_invoke = run.session.execute_async(INVOKE_HISTORY_SCRIPT, json!([]));
    std::thread::sleep(Duration::from_secs(1));
    let warm_invoke = run.session.execute_async(INVOKE_HISTORY_SCRIPT, json!([]));
    std::thread::sleep(Duration::from_secs(1));
    let open = run.session.execute_async(OPEN_HISTORY_SCRIPT, json!([]));
    eprintln!(
        "app-bench: split first open: cold invoke {} ms, warm invoke {} ms, then History painted {} ms",
        f(&cold_invoke["ms"], 0),
        f(&warm_invoke["ms"], 0),
        f(&open["shown_ms"], 0)
    );
    // Is it the list that slows the idle History screen's frames? The same
    // idle measurement with the list shown, then hidden (display: none).
    std::thread::sleep(SETTLE);
    let idle_with_list = run.session.execute_async(IDLE_FRAMES_SCRIPT, json!([2.0]));
    let _ = run.session.execute(
        "document.querySelector('[data-testid=history-list]').style.display = 'none';",
        json!([]),
    );
    std::thread::sleep(Duration::from_secs(1));
    let idle_without_list = run.session.execute_async(IDLE_FRAMES_SCRIPT, json!([2.0]));
    close(run);
    let mut open = open.clone();
    if let Some(o) = open.as_object_mut() {
        o.remove("frames");
    }
    json!({
        "cold_invoke": cold_invoke,
        "warm_invoke": warm_invoke,
        "open_after_invoke": open,
        "idle_history_with_list": frame_stats(&floats(&idle_with_list["frames"])),
        "idle_history_list_hidden": frame_stats(&floats(&idle_without_list["frames"])),
    })
}

fn parent() {
    check_session();
    let runs: usize = arg("--runs", 5);
    let history_txs: u64 = arg("--history-txs", 100_000);
    let block_txs: u64 = arg("--block-txs", 2000);
    let scroll_secs: f64 = arg("--scroll-secs", 3.0);
    let px_per_sec: f64 = arg("--steady-px-per-sec", 2000.0);
    let out_path = arg_str("--out");
    let total = Instant::now();
    let load_start = loadavg();
    let date = utc_now();

    let work = target_dir().join("app-bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let cx = Ctx {
        app: bin("notch-app"),
        screens: work.join("screens"),
        ticks: clock_ticks_per_sec(),
    };
    let store: Arc<dyn SecretStore> =
        Arc::new(OsSecretStore::open().expect("cannot open the Secret Service"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The long-history ledger and its wallet.
    let started = Instant::now();
    let (ledger_dir, populated, cached) = ledger(history_txs, block_txs);
    let populate_secs = started.elapsed().as_secs_f64();
    let paid = populated["paid_to_listed_keys"].as_u64().unwrap();
    let big_gateway = start_gateway(&ledger_dir);
    let big_dir = work.join("profile-history");
    eprintln!("app-bench: restoring and syncing the {paid}-payment wallet");
    let big = rt.block_on(history_wallet(
        &big_dir,
        &big_gateway.url,
        store.clone(),
        paid,
    ));
    eprintln!("app-bench:   {big}");

    if std::env::var_os("NOTCH_APP_BENCH_PROBE").is_some() {
        frames_probe(&cx, &big_gateway.url, &big_dir);
        return;
    }

    // A small sandbox: the fresh profile and a small wallet.
    let small_gateway = start_gateway(&work.join("gw-small"));
    let small_dir = work.join("profile-small");
    let small_id = rt.block_on(small_wallet(&small_dir, &small_gateway.url, store.clone()));

    let fresh = cold_starts(
        &cx,
        "fresh-profile",
        runs,
        &small_gateway.url,
        &mut |i| work.join(format!("profile-fresh-{i}")),
        "onboard-create",
    );
    let small = cold_starts(
        &cx,
        "small-wallet",
        runs,
        &small_gateway.url,
        &mut |_| small_dir.clone(),
        "balances",
    );
    let long = cold_starts(
        &cx,
        "history-wallet",
        runs,
        &big_gateway.url,
        &mut |_| big_dir.clone(),
        "balances",
    );
    let history = history_session(&cx, &big_gateway.url, &big_dir, scroll_secs, px_per_sec);
    let first_open_split = first_open_split_session(&cx, &big_gateway.url, &big_dir);

    for id in [small_id.as_str(), big["wallet_id"].as_str().unwrap_or("")] {
        if !id.is_empty() {
            let _ = store.delete(id);
        }
    }
    let result = json!({
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "date": date,
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "runs": runs,
        "ledger": {
            "dir": ledger_dir.display().to_string(),
            "cached": cached,
            "populate": populated,
            "populate_secs_this_run": populate_secs,
        },
        "history_wallet": big,
        "first_open_split": first_open_split,
        "cold_start": { "fresh_profile": fresh, "small_wallet": small, "history_wallet": long },
        "history": history,
        "params": {
            "history_txs": history_txs,
            "block_txs": block_txs,
            "scroll_secs": scroll_secs,
            "steady_px_per_sec": px_per_sec,
        },
        "screenshots": cx.screens.display().to_string(),
        "total_secs": total.elapsed().as_secs_f64(),
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    if let Some(path) = out_path {
        std::fs::write(&path, markdown(&result)).unwrap();
        let json_path = Path::new(&path).with_extension("json");
        std::fs::write(&json_path, serde_json::to_string_pretty(&result).unwrap()).unwrap();
        eprintln!("app-bench: wrote {path} and {}", json_path.display());
    }
}

fn markdown(r: &Value) -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let p = &r["params"];
    let txs = p["history_txs"].as_f64().unwrap_or(0.0);
    let hw = &r["history_wallet"];
    let pop = &r["ledger"]["populate"];
    let cs = &r["cold_start"];
    let h = &r["history"];
    let mut s = String::new();
    s += "# Desktop app benchmarks\n\n";
    s += &format!(
        "Date: {}. Machine: {nproc} CPUs ({cpu}), shared with other builds; 1/5/15-minute load average {} at the start, {} at the end. \
         Profile: {} (`notch-app` built with `cargo build --release -p notch-app` after the release UI build of `xtask/src/ui.rs`, cargo for wasm32 and wasm-bindgen).\n\
         Display: Xvfb 1280x800 (software rendering, no GPU); Secret Service: a throwaway gnome-keyring on a private session bus.\n\n",
        r["date"].as_str().unwrap_or("?"),
        r["loadavg_start"].as_str().unwrap_or("?"),
        r["loadavg_end"].as_str().unwrap_or("?"),
        r["profile"].as_str().unwrap_or("?"),
    );
    s += "Reproduce every figure below:\n\n```\ncargo xtask bench app\n```\n\n\
(`cargo xtask bench` runs it after the gateway and wallet benchmarks) which builds the release UI (cargo for wasm32, wasm-bindgen), `cargo build --release -p notch-gateway --bins`, \
`cargo build --release -p notch-app`, then runs under a fresh Xvfb display and\n\
`dbus-run-session` with gnome-keyring unlocked (throwaway keyring, `NOTCH_TEST_SECRET_SERVICE=1`):\n\n\
```\ncargo run --release -p notch-tests --bin notch-app-bench -- --out bench/results/app.md\n```\n\n";
    s += &format!(
        "Parameters: `--runs {} --history-txs {} --block-txs {} --scroll-secs {} --steady-px-per-sec {}`. \
         The raw figures of every run are in `app.json` next to this file; screenshots in `{}`. Whole run: {} s. No test asserts any of these figures.\n\n",
        r["runs"],
        p["history_txs"],
        p["block_txs"],
        p["scroll_secs"],
        p["steady_px_per_sec"],
        r["screenshots"].as_str().unwrap_or("?"),
        f(&r["total_secs"], 0),
    );

    s += "## 1. Cold start to the first usable screen\n\n\
**What the clock covers.** It starts when the kernel created the `notch-app` process (`starttime` in `/proc/<pid>/stat`, \
converted to the wall clock through `/proc/uptime`; 10 ms ticks, so each figure is ±20 ms) and stops at the first \
`requestAnimationFrame` callback after the screen's element entered the DOM: the frame that paints it. The element's \
arrival is recorded inside the page by a `MutationObserver` (installed by the first WebDriver script that can run in the \
page), on the page's own wall clock (`performance.timeOrigin + performance.now()`), so WebDriver polling adds nothing to the \
figure. tauri-driver and WebKitWebDriver start *before* the app and are not on the clock; what is on it: process start, \
GTK/WebKitGTK and Tauri set-up, the web and network processes, loading the embedded page and the wasm UI, the UI's first \
`app_status` call (the app opens the OS keystore and, if there is one, the wallet: SQLite, keys from the Secret Service) \
and, for a wallet, the `balances` and `sync_state` calls of the home screen. The files are in the page cache (warm \
start of a cold process: the same binary ran just before); the first run of each row is included.\n\n\
The screen's element: the fresh profile's onboarding shows `[data-testid=onboard-create]` (the \"Create a wallet\" button); \
a wallet's home shows `[data-testid=balances]` (the balances table, filled).\n\n";
    s += &format!(
        "| profile | runs | first screen painted, median (min–max) | element in DOM | page navigation started | page `load` event | tree RSS after {} s | tree Pss |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        SETTLE.as_secs()
    );
    for (label, c) in [
        ("fresh profile → onboarding", &cs["fresh_profile"]),
        (
            "small wallet (3 transactions) → home with balances",
            &cs["small_wallet"],
        ),
        (
            &*format!("{}-transaction wallet → home with balances", grouped(txs)),
            &cs["history_wallet"],
        ),
    ] {
        s += &format!(
            "| {label} | {} | **{} ms** | {} ms | {} ms | {} ms | {} | {} |\n",
            c["shown_ms"]["n"],
            mmm(&c["shown_ms"]),
            mmm(&c["in_dom_ms"]),
            mmm(&c["navigation_start_ms"]),
            mmm(&c["load_event_ms"]),
            mib(&c["rss_kib"]["median"]),
            mib(&c["pss_kib"]["median"]),
        );
    }
    let any_already = ["fresh_profile", "small_wallet", "history_wallet"]
        .iter()
        .any(|k| cs[k]["any_already_there"] == json!(true));
    s += &format!(
        "\nAll columns are ms after the process started, median (min–max). For scale, not part of any figure: the WebDriver \
session was ready {} ms after the app process started (median of the fresh-profile runs), and tauri-driver had been asked \
to start {} ms before it. {}\n\n",
        f(&cs["fresh_profile"]["session_ready_ms"]["median"], 0),
        f(
            &cs["fresh_profile"]["driver_asked_ms"]["median"]
                .as_f64()
                .map(|x| -x)
                .into(),
            0
        ),
        if any_already {
            "**In at least one run the element was already in the DOM when the observer was installed: that run's time is \
             an upper bound (the observer's installation time); see app.json.**"
        } else {
            "In every run the observer was in the page before the element arrived, so every figure is exact to the clock's \
             resolution."
        },
    );

    s += &format!(
        "## 2. A {}-transaction history: load, memory, scrolling\n\n",
        grouped(txs)
    );
    s += &format!(
        "Ledger: {} blocks of {} transactions written by `notch-gateway-populate --pay-every 1`: every transaction is a \
         sandbox mint paying one of the first 20 receive addresses of a wallet restored from a fixed phrase (populated in {} s{}). \
         The bench restores that wallet into a fresh profile (seed in the Secret Service, as the app keeps it) and syncs it \
         with notch-core before the app starts: restore {} ms, sync {} s ({} payments found; wallet.sqlite {} MB).\n\n",
        pop["blocks"],
        pop["block_txs"],
        f(&pop["secs"], 1),
        if r["ledger"]["cached"] == json!(true) {
            ", when the cached ledger was built; this run reused it"
        } else {
            ", this run"
        },
        f(
            &(hw["restore_secs"].as_f64().unwrap_or(f64::NAN) * 1e3).into(),
            0
        ),
        f(&hw["sync_secs"], 1),
        hw["payments_found"],
        f(&(hw["db_bytes"].as_f64().unwrap_or(0.0) / 1e6).into(), 0),
    );
    if hw["db_space"].is_object() {
        s += "What each table of that wallet.sqlite takes with its indexes (SQLite's `dbstat`, read after the sync; \
              `cargo xtask bench wallet-size` gives the same figures without the app, bench/results/wallet-size.md):\n\n";
        s += &notch_tests::bench::space_markdown(
            &hw["db_space"],
            hw["payments_found"].as_u64().unwrap_or(0),
        );
        s += "\n";
    }
    let of = &h["open_first"];
    s += "### Opening History\n\n\
The click on the History link and the wait run inside the page (one WebDriver script): from `click()` to the first row \
(`history-row-0`) in the DOM, and to the next animation frame (painted). The history screen asks the app for the whole \
history a page of 100 rows at a time (`history` command) and renders only the rows in view.\n\n\
| | click → first rows in DOM | click → painted | longest frame meanwhile | rows in DOM | shown |\n|---|---:|---:|---:|---:|---|\n";
    let open_row = |label: &str, v: &Value| -> String {
        format!(
            "| {label} | {} ms | **{} ms** | {} ms | {} | {} |\n",
            f(&v["in_dom_ms"], 0),
            f(&v["shown_ms"], 0),
            f(&v["frame_stats"]["max_ms"], 0),
            v["rows_in_dom"],
            v["count"]
                .as_str()
                .or(v["error"].as_str())
                .unwrap_or(v["what"].as_str().unwrap_or("?")),
        )
    };
    s += &open_row("first open after start-up", of);
    if let Some(list) = h["reopen"].as_array() {
        for (i, v) in list.iter().enumerate() {
            s += &open_row(&format!("again from Home ({})", i + 2), v);
        }
    }
    s += "\nWhere that time goes:\n\n| step | time |\n|---|---:|\n";
    let split = &r["first_open_split"];
    if split.is_object() {
        s += &format!(
            "| another start-up: `invoke('history')` from the page before History ever ran (cold), then again (warm) | {} ms, then {} ms |\n\
             | the same start-up: History opened after those two calls, click → painted | {} ms |\n",
            f(&split["cold_invoke"]["ms"], 0),
            f(&split["warm_invoke"]["ms"], 0),
            f(&split["open_after_invoke"]["shown_ms"], 0),
        );
        s += &format!(
            "| the same start-up, idle History: median frame with the list shown, then with it hidden (`display: none`) | {} ms, then {} ms |\n",
            f(&split["idle_history_with_list"]["median_ms"], 0),
            f(&split["idle_history_list_hidden"]["median_ms"], 0),
        );
    }
    s += &format!(
        "| core: `Wallet::history_page` (the first {} of {} rows), in the bench process, median of {} | {} ms |\n",
        hw["core_history_rows"],
        hw["core_history_total"],
        hw["core_history_ms"]["n"],
        mmm(&hw["core_history_ms"]),
    );
    s += &format!(
        "| core: a page of 100 from the middle of the list (`history_page_at`, skip half), median of {} | {} ms |\n",
        hw["core_history_deep_ms"]["n"],
        mmm(&hw["core_history_deep_ms"]),
    );
    if let Some(list) = h["invoke"].as_array() {
        for (i, v) in list.iter().enumerate() {
            s += &format!(
                "| app: `invoke('history')` from the page, without the UI (core + conversion to rows + JSON over IPC + `JSON.parse`), call {}: a page of {} rows of {}, {} kB of JSON | {} ms |\n",
                i + 1,
                v["rows"],
                v["total"],
                f(&(v["json_bytes"].as_f64().unwrap_or(0.0) / 1e3).into(), 1),
                f(&v["ms"], 0),
            );
        }
    }
    s += "\nThe UI's own share (deserialising the rows into the wasm UI, rendering the visible ones) is \"click → painted\" \
minus the app's; the two are measured at different moments.\n\n\
**Note:** the History screen is a virtual list of 100-row pages (ui/src/screens/history.rs): it asks for the pages \
the visible rows fall in, keeps at most eight, and draws a row from the query's index until its page arrives, or a \
placeholder before the index is in (a frame whose row at the scroll position is a placeholder counts as blank). It asks again when the wallet's transactions change, not \
on every sync pass; confirmations follow the tip from each row's block height.\n\n";

    s += "### Scrolling the list\n\n\
`requestAnimationFrame` intervals inside the page while a script scrolls the list container (`[data-testid=history-list]`) \
by setting `scrollTop` once per frame. A list taller than 1,000,000 px scrolls a spacer of that height, scaled: the \
list's `data-scale` says how many list pixels one pixel of `scrollTop` is, and the script scrolls by it (the wheel \
moves the rows pixel for pixel; the UI handles it). *Steady*: at the given list px/s from the top; *fast*: ten times that. *Sweep*: from the \
first row to the last over the same time (hundreds of rows per frame; while the scroll jumps past the view, the virtual \
list asks only for the pages where its next step lands, from the last step). A frame counts as \
*blank* when the row at the position scrolled to in the previous frame is not in the DOM by the next frame, neither \
from its page (a *full* row) nor from the list's index (an *index* row: time, direction, state and amounts, its txid \
and confirmations still to come; ADR 11). \
The idle rows are the same measurement with nothing happening, the baseline of this display (Xvfb has no vsync; \
WebKitGTK paces frames itself).\n\n\
| | frames | median | p95 | max | frames > 50 ms | notes |\n|---|---:|---:|---:|---:|---:|---|\n";
    s += &frames_row("idle, Home screen", &h["idle_home"], "");
    s += &frames_row("idle, History screen", &h["idle_history"], "");
    let st = &h["scroll_steady"];
    s += &frames_row(
        &format!("steady scroll, {} px/s", p["steady_px_per_sec"]),
        &st["frame_stats"],
        &format!(
            "blank frames {} of {} ({} of them a placeholder: the page not yet there; the others: no row rendered there yet); {} full rows, {} index rows; ended at row {}",
            st["blank"], st["checked"], st["placeholder"], st["full"], st["indexed"], st["end_row"]
        ),
    );
    let fa = &h["scroll_fast"];
    if fa.is_object() {
        s += &frames_row(
            &format!(
                "fast steady scroll, {} px/s",
                p["steady_px_per_sec"].as_f64().unwrap_or(0.0) * 10.0
            ),
            &fa["frame_stats"],
            &format!(
                "blank frames {} of {} ({} a placeholder); {} full rows, {} index rows; ended at row {}",
                fa["blank"],
                fa["checked"],
                fa["placeholder"],
                fa["full"],
                fa["indexed"],
                fa["end_row"]
            ),
        );
    }
    let sw = &h["scroll_sweep"];
    s += &frames_row(
        &format!("sweep of the whole list in {} s", p["scroll_secs"]),
        &sw["frame_stats"],
        &format!(
            "blank frames {} of {} ({} a placeholder: the page not yet there; the others: no row rendered there yet); {} full rows, {} index rows; ended at row {} of {}",
            sw["blank"],
            sw["checked"],
            sw["placeholder"],
            sw["full"],
            sw["indexed"],
            sw["end_row"],
            grouped(txs)
        ),
    );
    s += &frames_row(
        "while History loaded (first open)",
        &of["frame_stats"],
        "the page's frames from the click until the rows were painted",
    );

    if let Some(list) = h["home"].as_array() {
        s += "\n### Home\n\nThe click on the Home link, timed inside the page: until the home screen's first element \
(`sync-state`) is in the DOM, until the balances table (`balances`) is, and the frame that paints it. The balances come \
from the table the wallet keeps as it applies blocks.\n\n\
| opening | click → home element | click → balances in DOM | click → balances painted | home element → balances painted |\n|---|---:|---:|---:|---:|\n";
        for (i, v) in list.iter().enumerate() {
            let gap = v["shown_ms"]
                .as_f64()
                .zip(v["home_ms"].as_f64())
                .map(|(a, b)| a - b);
            s += &format!(
                "| {} | {} ms | {} ms | {} ms | **{} ms** |\n",
                i + 1,
                f(&v["home_ms"], 0),
                f(&v["in_dom_ms"], 0),
                f(&v["shown_ms"], 0),
                f(&gap.into(), 0),
            );
        }
    }
    s += "\n### Memory of the app's process tree\n\n\
VmRSS (resident, counts shared pages once per process) and Pss (proportional: shared pages divided among the processes \
sharing them, so the sum is fair) of `notch-app` and every descendant process (WebKitWebProcess, WebKitNetworkProcess), \
from `/proc/<pid>/status` and `/proc/<pid>/smaps_rollup`.\n\n\
| when | RSS | Pss | per process (RSS) |\n|---|---:|---:|---|\n";
    let m = &h["memory"];
    s += &mem_row(
        &format!("{} s after the home screen appeared", SETTLE.as_secs()),
        &m["after_start"],
    );
    s += &mem_row(
        &format!("{} s after History was painted", SETTLE.as_secs()),
        &m["after_history_open"],
    );
    s += &mem_row("after the two scrolls", &m["after_scrolling"]);
    s += &mem_row(
        &format!("after opening History {REOPENINGS} more times (from Home)"),
        &m["after_reopening"],
    );
    s += &mem_row(
        "after two more `history` calls from the page",
        &m["after_two_raw_history_calls"],
    );
    s += &format!(
        "\nFor comparison, after start-up of a fresh profile (median): {} RSS, {} Pss.\n",
        mib(&cs["fresh_profile"]["rss_kib"]["median"]),
        mib(&cs["fresh_profile"]["pss_kib"]["median"]),
    );
    s
}

fn main() {
    if let Some(path) = arg_str("--markdown-from") {
        // Rewrites the report from a saved JSON result (no measurement).
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        print!("{}", markdown(&r));
        return;
    }
    parent();
}
