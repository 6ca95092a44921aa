//! What the desktop app benchmarks share (`notch-app-bench`,
//! `notch-tally-app-bench`): clocks and /proc readings of the app's process
//! tree, launching and closing the real app under tauri-driver, waiting for
//! a screen's first paint inside the page, statistics and report cells.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::webdriver::{AppSession, descendants};

/// How long a screen may take before a bench gives up.
pub const SCREEN_WAIT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------- clocks and /proc

/// Wall clock, milliseconds since the Unix epoch (what the page's
/// `performance.timeOrigin + performance.now()` also counts).
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1e3
}

pub fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// When the process started, on the wall clock (ms since the epoch): its
/// `starttime` (clock ticks since boot) against /proc/uptime read now.
/// Resolution: one clock tick (10 ms) for each of the two readings.
pub fn process_start_wall_ms(pid: u32, ticks_per_sec: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    // Fields after the name start at field 3 (state); starttime is field 22.
    let start_ticks: f64 = rest.split_whitespace().nth(22 - 3)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let wall = now_ms();
    Some(wall - (uptime - start_ticks / ticks_per_sec) * 1e3)
}

pub fn proc_kib(pid: u32, file: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn proc_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// VmRSS and Pss of `app_pid` and every descendant of it (the WebKit web
/// and network processes), per process and summed.
pub fn tree_memory(app_pid: u32) -> Value {
    let mut pids = vec![app_pid];
    pids.extend(descendants(app_pid));
    let mut processes = Vec::new();
    let (mut rss, mut pss, mut pss_all) = (0u64, 0u64, true);
    for pid in pids {
        let Some(r) = proc_kib(pid, "status", "VmRSS:") else {
            continue; // gone, or a kernel thread
        };
        let p = proc_kib(pid, "smaps_rollup", "Pss:");
        rss += r;
        match p {
            Some(p) => pss += p,
            None => pss_all = false,
        }
        processes.push(json!({ "pid": pid, "name": proc_name(pid), "rss_kib": r, "pss_kib": p }));
    }
    json!({
        "processes": processes,
        "rss_kib": rss,
        "pss_kib": if pss_all { Some(pss) } else { None },
    })
}

// ---------------------------------------------------------------- statistics

pub fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

pub fn percentile(v: &[f64], p: f64) -> f64 {
    let v = sorted(v);
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

pub fn summary(v: &[f64]) -> Value {
    json!({
        "n": v.len(),
        "median": percentile(v, 0.5),
        "min": percentile(v, 0.0),
        "max": percentile(v, 1.0),
        "all": v,
    })
}

/// Statistics of requestAnimationFrame intervals (ms).
pub fn frame_stats(frames: &[f64]) -> Value {
    json!({
        "frames": frames.len(),
        "median_ms": percentile(frames, 0.5),
        "p95_ms": percentile(frames, 0.95),
        "max_ms": percentile(frames, 1.0),
        "over_50ms": frames.iter().filter(|&&f| f > 50.0).count(),
        "total_ms": frames.iter().sum::<f64>(),
    })
}

pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- the app

/// One launched app: the WebDriver session and the app's process.
pub struct Running {
    pub session: AppSession,
    pub pid: u32,
    /// When the kernel started `notch-app` (wall clock, ms).
    pub start_ms: f64,
    /// When tauri-driver was asked to start (wall clock, ms).
    pub asked_ms: f64,
    /// When the WebDriver session was ready (wall clock, ms).
    pub session_ms: f64,
}

pub fn launch(app: &Path, env: &[(&str, &str)], screens: &Path, ticks: f64) -> Running {
    let mut attempt = 1;
    let (session, asked_ms) = loop {
        let before = webdriver_pids();
        let asked_ms = now_ms();
        match AppSession::try_launch_with_screens(app, env, screens.to_path_buf()) {
            Ok(session) => break (session, asked_ms),
            // tauri-driver now and then drops the new-session request.
            Err(e) if attempt < 3 => {
                eprintln!("app-bench: {e}; trying again");
                attempt += 1;
                stop_strays(&before);
            }
            Err(e) => panic!("{e}"),
        }
    };
    let session_ms = now_ms();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Some(pid) = session.app_pid(app) {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "no {} process under tauri-driver",
            app.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let start_ms = process_start_wall_ms(pid, ticks).expect("cannot read the app's start time");
    Running {
        session,
        pid,
        start_ms,
        asked_ms,
        session_ms,
    }
}

pub fn webdriver_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|&pid: &u32| proc_name(pid) == "WebKitWebDriver")
        .collect()
}

/// Stops, by pid, the WebKitWebDriver processes that appeared since
/// `before` and lost their tauri-driver (a failed launch leaves one behind).
pub fn stop_strays(before: &[u32]) {
    for p in webdriver_pids() {
        let orphan = crate::webdriver::parent_pid(p)
            .is_none_or(|parent| proc_name(parent) != "tauri-driver");
        if !before.contains(&p) && orphan {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(p.to_string())
                .status();
        }
    }
}

/// Ends the session and waits until the app's processes have exited, then
/// stops, by pid, what outlives the session (tauri-driver is killed with
/// SIGKILL by `AppSession`'s drop, which leaves its WebKitWebDriver behind).
pub fn close(run: Running) {
    let mut pids = descendants(run.session.driver_pid());
    pids.push(run.session.driver_pid());
    let app_tree: Vec<u32> = std::iter::once(run.pid)
        .chain(descendants(run.pid))
        .collect();
    drop(run.session);
    let deadline = Instant::now() + Duration::from_secs(15);
    while app_tree.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    for &p in pids.iter().filter(|&&p| alive(p)) {
        if proc_name(p) != "WebKitWebDriver" {
            eprintln!(
                "app-bench: process {p} ({}) outlived its session: stopping it",
                proc_name(p)
            );
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(p.to_string())
            .status();
    }
}

/// Installed in the page by every poll until it is there: records, on the
/// page's wall clock, when the element with the test id first entered the
/// DOM (MutationObserver) and the first animation frame after that (the
/// frame that paints it). Returns what it knows so far.
pub const WATCH_SCRIPT: &str = r#"
const id = arguments[0];
const w = window;
const now = () => performance.timeOrigin + performance.now();
const sel = `[data-testid="${id}"]`;
if (!w.__notchBench && document.documentElement) {
  const b = { installed: now(), seen: null, shown: null, already: false };
  w.__notchBench = b;
  const hit = () => {
    if (b.seen === null && document.querySelector(sel)) {
      b.seen = now();
      requestAnimationFrame(() => { b.shown = now(); });
      return true;
    }
    return false;
  };
  if (hit()) {
    b.already = true;
  } else {
    const mo = new MutationObserver(() => { if (hit()) mo.disconnect(); });
    mo.observe(document.documentElement, { childList: true, subtree: true });
  }
}
const b = w.__notchBench || {};
const nav = performance.getEntriesByType('navigation')[0];
return {
  href: String(location.href),
  origin: performance.timeOrigin,
  installed: b.installed ?? null,
  seen: b.seen ?? null,
  shown: b.shown ?? null,
  already: b.already ?? null,
  dcl: nav ? nav.domContentLoadedEventEnd : null,
  load: nav ? nav.loadEventEnd : null,
  text: document.body ? document.body.innerText.slice(0, 300) : '',
};
"#;

/// Waits for the screen whose element has `test_id`; returns the page's
/// timings (wall clock, ms) relative to the app's process start.
pub fn wait_screen(run: &Running, test_id: &str) -> Value {
    let deadline = Instant::now() + SCREEN_WAIT;
    let mut polls = 0u32;
    let mut first_poll_ms = None;
    loop {
        let asked = now_ms();
        let v = run.session.execute(WATCH_SCRIPT, json!([test_id]));
        polls += 1;
        let on_page = v["href"].as_str().is_some_and(|h| !h.starts_with("about:"));
        if on_page && first_poll_ms.is_none() {
            first_poll_ms = Some(asked);
        }
        if let Some(shown) = v["shown"].as_f64() {
            let rel = |x: &Value| x.as_f64().map(|t| t - run.start_ms);
            return json!({
                "shown_ms": shown - run.start_ms,
                "in_dom_ms": rel(&v["seen"]),
                "navigation_start_ms": rel(&v["origin"]),
                "dom_content_loaded_ms": v["dcl"].as_f64().zip(v["origin"].as_f64()).map(|(d, o)| d + o - run.start_ms),
                "load_event_ms": v["load"].as_f64().zip(v["origin"].as_f64()).map(|(d, o)| d + o - run.start_ms),
                "observer_installed_ms": rel(&v["installed"]),
                "already_there_when_observed": v["already"],
                "session_ready_ms": run.session_ms - run.start_ms,
                "first_script_ms": first_poll_ms.map(|t| t - run.start_ms),
                "driver_asked_ms": run.asked_ms - run.start_ms,
                "polls": polls,
            });
        }
        assert!(
            Instant::now() < deadline,
            "[data-testid={test_id}] did not appear within {SCREEN_WAIT:?}; the page says: {}",
            v["text"].as_str().unwrap_or("(nothing)")
        );
        // Fast until the observer sits in the app's page, then gently (the
        // observer keeps the time; polling only costs CPU the app needs).
        let installed = on_page && v["installed"].is_number();
        std::thread::sleep(Duration::from_millis(if installed { 100 } else { 5 }));
    }
}

pub fn check_session() {
    let missing: Vec<&str> = ["DISPLAY", "DBUS_SESSION_BUS_ADDRESS"]
        .into_iter()
        .filter(|v| std::env::var_os(v).is_none_or(|s| s.is_empty()))
        .collect();
    assert!(
        missing.is_empty(),
        "{missing:?} not set: the app needs a display and a session bus with a Secret Service; \
         run it through `cargo xtask bench`"
    );
    assert!(
        std::env::var("NOTCH_TEST_SECRET_SERVICE").is_ok_and(|v| v == "1"),
        "the bench writes wallet seeds into the Secret Service: set NOTCH_TEST_SECRET_SERVICE=1 \
         only inside a throwaway keyring (as `cargo xtask bench` does)"
    );
}

// ---------------------------------------------------------------- report

pub fn f(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "–".into(),
    }
}

pub fn mib(kib: &Value) -> String {
    match kib.as_f64() {
        Some(k) => format!("{:.0} MiB", k / 1024.0),
        None => "–".into(),
    }
}

pub fn grouped(x: f64) -> String {
    let s = format!("{x:.0}");
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "median (min–max)" of a summary, in ms.
pub fn mmm(s: &Value) -> String {
    format!(
        "{} ({}–{})",
        f(&s["median"], 0),
        f(&s["min"], 0),
        f(&s["max"], 0)
    )
}

pub fn mem_row(label: &str, m: &Value) -> String {
    let names: Vec<String> = m["processes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    format!(
                        "{} {}",
                        p["name"].as_str().unwrap_or("?"),
                        mib(&p["rss_kib"])
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "| {label} | {} | {} | {} |\n",
        mib(&m["rss_kib"]),
        mib(&m["pss_kib"]),
        names.join(", ")
    )
}

pub fn frames_row(label: &str, s: &Value, extra: &str) -> String {
    format!(
        "| {label} | {} | {} | {} | {} | {} | {extra} |\n",
        s["frames"],
        f(&s["median_ms"], 1),
        f(&s["p95_ms"], 1),
        f(&s["max_ms"], 1),
        s["over_50ms"],
    )
}
