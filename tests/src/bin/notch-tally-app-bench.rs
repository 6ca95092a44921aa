//! Tallies in the desktop app: the real release `notch-app` in a real
//! window, driven through tauri-driver / WebKitWebDriver, with real
//! partners (notch-core wallets in this process, their agents on loopback
//! TCP) and a real sandbox gateway.
//!
//! 1. Ticket scan → partner's certificate shown: the partner issues a
//!    ticket, its QR code as a PNG file; the file is handed to the Scan
//!    screen's file input (`scan-ticket-image`), as a person picking it
//!    would. The clock runs inside the page, from the input's `change`
//!    event to the first animation frame after `offer-partner-name` has
//!    text (the app decoded the picture, asked the partner's agent over
//!    Noise, verified the offer it signed, and the UI painted it).
//! 2. A chit sent → the balance painted: the partner pays (`Wallet::tally_pay`
//!    in this process: signed, queued and sent at once over loopback), and a
//!    MutationObserver + requestAnimationFrame in the page stamp when the
//!    open detail's `tally-detail-balance` text changed and was painted. The
//!    bench's and the page's wall clocks are the same machine clock. On a
//!    small tally, and on the tally with 10,000 chits.
//! 3. The Tallies screen of a wallet with 1,000 tallies, one of them with
//!    10,000 chits: cold start to home, click → first rows of the list
//!    painted, click on the big tally → its detail and first chits painted,
//!    "load older" pages, and VmRSS / Pss of the app's process tree after
//!    each step.
//!
//! The fixture is made through the real protocol: a partner wallet issues
//! tickets, the app's wallet scans and accepts them (and the other way
//! round, every other tally), both agents on loopback; then payments
//! chit by chit. It is written once into
//! `<target>/bench-tallies-app/<parameters>/` and reused (copied for each
//! run: the app writes to its copy). Both wallets have fixed recovery
//! phrases (test-only constants), so their seeds are put back into the
//! keystore for each run rather than stored anywhere; their agents listen
//! on the ports recorded in the fixture (the partners' certificates name
//! them): `--rebuild-fixture` if one is taken. Every tally but the big one
//! has a partner of its own (made, used and dropped while the fixture is
//! made): a second tally between the same two wallets could not be opened
//! by a scan when this was written (the issuer's agent, stock on a tally
//! they share, sends its chit-chain check before the offer, and the
//! scanner takes that for the answer).
//!
//! Cost of the fixture: about 9 ms a chit in release on this machine, flat
//! with the tally's size (each chit reads only its chain's tail), in
//! batches of 10; 1,000 tallies take about a minute.
//! `--chits N` makes a smaller one, `--batch N` changes the batches.
//!
//! Usage: `notch-tally-app-bench [--out FILE] [--runs N] [--tallies N]
//! [--chits N] [--rebuild-fixture]`; `--fixture-only` makes the fixture
//! (or finds it cached) and stops, `--markdown-from FILE.json` rewrites the
//! report from a saved result. Needs, next to this binary:
//! `notch-app` (built after the release UI build of `xtask/src/ui.rs`, cargo for wasm32 and wasm-bindgen) and
//! `notch-gateway`; a display, a session D-Bus with a Secret Service and
//! NOTCH_TEST_SECRET_SERVICE=1 (the bench writes the app wallet's seed into
//! it). `cargo xtask bench tallies` provides all of that.

#![allow(clippy::unwrap_used)] // a benchmark that cannot set up should stop loudly

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notch_core::keys::{RecoveryPhrase, WalletSecret, WordCount};
use notch_core::secrets::{MemorySecretStore, OsSecretStore, SecretStore};
use notch_core::tally::Side;
use notch_core::ticket::{DEFAULT_MODULE_PX, LinkForm};
use notch_core::{AgentHandle, Network, TicketOptions, Wallet, WalletConfig};
use notch_tests::app_bench::*;
use notch_tests::bench::{arg_str, loadavg, utc_now};
use notch_tests::free_port;
use notch_tests::tally::{NO_GATEWAY, agent};
use serde_json::{Value, json};

/// The app's wallet in the fixture (test-only phrase).
const APP_ENTROPY: [u8; 16] = [0x5a; 16];
/// Its partner in the fixture.
const PARTNER_ENTROPY: [u8; 16] = [0xa5; 16];
/// The credit each side grants the other on every fixture tally, CHIPs:
/// far more than the chits ever move.
const LIMIT_CHIPS: u64 = 10_000_000;
/// Chits paid at once on the big tally before both sides are checked to
/// agree (`--batch N`). Batches of 100 stalled the agents for tens of
/// seconds a batch (sessions broken by write and read timeouts while both
/// sides flushed; 100–180 ms a chit, against 9 ms in batches of 10): a
/// known problem of the agent's sessions under bursts, not of the figures.
const BATCH: usize = 10;
/// Small tallies (each with a partner of its own) made at once.
const PARALLEL: usize = 8;
/// How long the app is left alone after a screen appears before its memory
/// is read.
const SETTLE: Duration = Duration::from_secs(3);
/// How long the bench waits for the protocol (both halves to agree).
const PROTOCOL_WAIT: Duration = Duration::from_secs(300);
/// The fixture's layout version (bump when the fixture changes).
const FIXTURE_VERSION: u32 = 2;

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    match arg_str(name) {
        None => default,
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} {v:?}: not a valid value")),
    }
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn bin(name: &str) -> PathBuf {
    notch_tests::bench::sibling(
        name,
        "build it first (`cargo xtask bench tallies` does: the release UI build into ui/, \
         then cargo build --release -p notch-app and -p notch-gateway --bins)",
    )
}

/// Cargo's target dir: the parent of this binary's profile dir.
fn target_dir() -> PathBuf {
    let exe = notch_tests::bench::exe_dir();
    exe.parent().map(Path::to_path_buf).unwrap_or(exe)
}

fn phrase(entropy: &[u8; 16]) -> RecoveryPhrase {
    RecoveryPhrase::from_entropy(entropy).unwrap()
}

fn offline_config(dir: &Path) -> WalletConfig {
    WalletConfig::new(dir, NO_GATEWAY, Network::Sandbox)
}

fn options(comment: String) -> TicketOptions {
    TicketOptions {
        expires_in: Duration::from_secs(3600),
        side: Side::Stock,
        my_terms: json!({ "limit": LIMIT_CHIPS }),
        partner_terms: json!({ "limit": LIMIT_CHIPS }),
        comment: Some(comment),
    }
}

async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    notch_tests::tally::eventually(what, PROTOCOL_WAIT, check).await
}

/// Every chit of the newest page of `id` in `wallet` good and linked (or
/// void), and the tally holding `total` chits.
async fn chits_settled(wallet: &Wallet, id: &str, total: u64, page: usize) -> bool {
    let Ok(p) = wallet.tally_chit_page(id, None, page).await else {
        return false;
    };
    p.total == total
        && p.rows.iter().all(|c| {
            (c.state.ends_with(".good") && c.consensus == "linked") || c.state.ends_with(".void")
        })
}

// ---------------------------------------------------------------- fixture

/// Opens `a` ↔ `b` tally: `issuer` issues the ticket, the other scans and
/// accepts it. Returns (issuer's id, scanner's id).
async fn open_tally(issuer: &Wallet, scanner: &Wallet, comment: String) -> (String, String) {
    let (ticket, draft) = issuer.tally_ticket_with(options(comment)).await.unwrap();
    let offered = scanner.tally_scan(&ticket.to_string()).await.unwrap();
    assert_eq!(offered.state.as_str(), "P.offer", "{offered:?}");
    let accepted = scanner.tally_accept(&offered.id).await.unwrap();
    assert_eq!(accepted.state.as_str(), "open", "{accepted:?}");
    (draft.id, offered.id)
}

/// One tally of the fixture with a partner of its own (`i` > 0): the
/// partner is made, its agent started, the tally opened (the partner's
/// ticket scanned by the app, or the other way round, in turn), one payment
/// made (by either side in turn) and settled on both sides; then the
/// partner's agent stops and the partner is dropped (its directory removed:
/// the app keeps the tally, as with a partner who went offline).
async fn small_tally(app: Wallet, scratch: PathBuf, i: usize) -> (String, i64) {
    let partner = Wallet::create(
        offline_config(&scratch),
        Arc::new(MemorySecretStore::new()),
        WordCount::Twelve,
    )
    .await
    .unwrap()
    .0;
    partner
        .set_tally_profile(Some(format!("p{i:04}")), Some(format!("Partner {i:04}")))
        .await
        .unwrap();
    let handle = agent(&partner, "127.0.0.1:0").await;
    let comment = format!("bench tally {i}");
    let (app_id, partner_id) = if i.is_multiple_of(2) {
        let (p, a) = open_tally(&partner, &app, comment).await;
        (a, p)
    } else {
        open_tally(&app, &partner, comment).await
    };
    eventually("a small tally to open on both sides", || async {
        let a = app.tally(&app_id).await.ok()?.info.state;
        let p = partner.tally(&partner_id).await.ok()?.info.state;
        (a.as_str() == "open" && p.as_str() == "open").then_some(())
    })
    .await;
    let units = (i as u64 * 37) % 5_000 + 1;
    let balance = if i.is_multiple_of(2) {
        partner.tally_pay(&partner_id, units, None).await.unwrap();
        units as i64
    } else {
        app.tally_pay(&app_id, units, None).await.unwrap();
        -(units as i64)
    };
    eventually("a small tally's payment to settle", || async {
        (chits_settled(&app, &app_id, 1, 1).await
            && chits_settled(&partner, &partner_id, 1, 1).await)
            .then_some(())
    })
    .await;
    handle.stop().await;
    drop(partner);
    let _ = std::fs::remove_dir_all(&scratch);
    (app_id, balance)
}

/// Makes the fixture in `dir` (emptied first): the app's wallet with
/// `tallies` open tallies, each with a partner of its own; the first
/// partner (kept, with a fixed phrase) has `chits` chits on its tally, each
/// of the others one payment. Returns its description.
async fn build_fixture(dir: &Path, tallies: usize, chits: usize) -> Value {
    let batch: usize = arg("--batch", BATCH).max(1);
    let started = Instant::now();
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    let app = Wallet::create_with_phrase(
        offline_config(&dir.join("app")),
        Arc::new(MemorySecretStore::new()),
        phrase(&APP_ENTROPY),
    )
    .await
    .unwrap();
    let partner = Wallet::create_with_phrase(
        offline_config(&dir.join("partner")),
        Arc::new(MemorySecretStore::new()),
        phrase(&PARTNER_ENTROPY),
    )
    .await
    .unwrap();
    app.set_tally_profile(Some("benchapp".into()), Some("Bench App".into()))
        .await
        .unwrap();
    partner
        .set_tally_profile(Some("partner".into()), Some("Partner 0000".into()))
        .await
        .unwrap();
    let (app_port, partner_port) = (free_port(), free_port());
    let app_agent = agent(&app, &format!("127.0.0.1:{app_port}")).await;
    let partner_agent = agent(&partner, &format!("127.0.0.1:{partner_port}")).await;

    // The big tally first (the oldest in the list), then the others,
    // PARALLEL at a time.
    let (big_partner, big_app) = open_tally(&partner, &app, "bench tally 0".into()).await;
    let scratch = dir.join("scratch");
    let mut balances: Vec<i64> = Vec::new();
    let mut next = 1;
    while next < tallies {
        let mut set = tokio::task::JoinSet::new();
        for i in next..(next + PARALLEL).min(tallies) {
            set.spawn(small_tally(app.clone(), scratch.join(format!("{i:04}")), i));
        }
        let reached = (next + PARALLEL).min(tallies);
        while let Some(done) = set.join_next().await {
            balances.push(done.unwrap().1);
        }
        if reached / 100 > next / 100 || reached == tallies {
            eprintln!(
                "tally-bench: fixture: {reached} tallies ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
        next = reached;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let tallies_secs = started.elapsed().as_secs_f64();
    eventually("the big tally to open on the partner's side", || async {
        (partner.tally(&big_partner).await.ok()?.info.state.as_str() == "open").then_some(())
    })
    .await;

    // The big tally: batches of payments made at once, from the partner and
    // from the app in turn, both halves agreeing after each batch.
    let chits_started = Instant::now();
    let mut balance: i64 = 0;
    let mut done = 0usize;
    while done < chits {
        let n = batch.min(chits - done);
        let from_partner = (done / batch).is_multiple_of(2);
        let (payer, id) = if from_partner {
            (partner.clone(), big_partner.clone())
        } else {
            (app.clone(), big_app.clone())
        };
        let mut set = tokio::task::JoinSet::new();
        for k in done..done + n {
            let units = ((k as u64 % 997) + 1) * 10;
            balance += if from_partner { 1 } else { -1 } * units as i64;
            let (payer, id) = (payer.clone(), id.clone());
            set.spawn(async move {
                payer
                    .tally_pay(&id, units, Some(format!("bench chit {k}")))
                    .await
                    .unwrap()
            });
        }
        while let Some(paid) = set.join_next().await {
            paid.unwrap();
        }
        done += n;
        let total = done as u64;
        eventually("a batch of chits to settle on both sides", || async {
            (chits_settled(&app, &big_app, total, n).await
                && chits_settled(&partner, &big_partner, total, n).await)
                .then_some(())
        })
        .await;
        if done.is_multiple_of(1000) || done == chits {
            eprintln!(
                "tally-bench: fixture: {done} chits on the big tally ({:.1} ms a chit)",
                chits_started.elapsed().as_secs_f64() * 1e3 / done as f64
            );
        }
    }
    let chits_secs = chits_started.elapsed().as_secs_f64();
    let app_balance = notch_tests::tally::balance(&app, &big_app).await;
    let partner_balance = notch_tests::tally::balance(&partner, &big_partner).await;
    assert_eq!(
        (app_balance, partner_balance),
        (balance, -balance),
        "the big tally's halves disagree"
    );
    let open = app
        .tallies()
        .await
        .unwrap()
        .iter()
        .filter(|t| t.state.as_str() == "open")
        .count();
    assert_eq!(
        open, tallies,
        "the app's wallet should hold {tallies} open tallies"
    );
    app_agent.stop().await;
    partner_agent.stop().await;
    let meta = json!({
        "version": FIXTURE_VERSION,
        "tallies": tallies,
        "chits": chits,
        "batch": batch,
        "app_wallet_id": app.wallet_id(),
        "partner_wallet_id": partner.wallet_id(),
        "app_port": app_port,
        "partner_port": partner_port,
        "big": { "app_id": big_app, "partner_id": big_partner, "balance": balance },
        "small_balances_sample": balances.iter().take(5).collect::<Vec<_>>(),
        "build_secs": started.elapsed().as_secs_f64(),
        "tallies_secs": tallies_secs,
        "chits_secs": chits_secs,
        "ms_per_chit": chits_secs * 1e3 / chits.max(1) as f64,
        "app_db_bytes": std::fs::metadata(dir.join("app/wallet.sqlite")).map(|m| m.len()).unwrap_or(0),
        "built": utc_now(),
    });
    drop(app);
    drop(partner);
    std::fs::write(
        dir.join("fixture.json"),
        serde_json::to_string_pretty(&meta).unwrap(),
    )
    .unwrap();
    meta
}

/// The cached fixture for these parameters (made if missing); whether it
/// was reused.
fn fixture(rt: &tokio::runtime::Runtime, tallies: usize, chits: usize) -> (PathBuf, Value, bool) {
    let dir = target_dir()
        .join("bench-tallies-app")
        .join(format!("v{FIXTURE_VERSION}-tallies{tallies}-chits{chits}"));
    if !flag("--rebuild-fixture")
        && let Ok(text) = std::fs::read_to_string(dir.join("fixture.json"))
    {
        return (dir, serde_json::from_str(&text).unwrap(), true);
    }
    eprintln!(
        "tally-bench: making the fixture in {} ({tallies} tallies, {chits} chits)",
        dir.display()
    );
    let meta = rt.block_on(build_fixture(&dir, tallies, chits));
    (dir, meta, false)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The fixture partner, opened from its copy with its seed put back, its
/// agent on its recorded port.
async fn open_partner(dir: &Path, meta: &Value) -> (Wallet, AgentHandle) {
    let store = Arc::new(MemorySecretStore::new());
    let id = meta["partner_wallet_id"].as_str().unwrap();
    store
        .set(
            id,
            &WalletSecret::new(phrase(&PARTNER_ENTROPY), "").to_bytes(),
        )
        .unwrap();
    let wallet = Wallet::open(offline_config(dir), store).await.unwrap();
    let listen = format!("127.0.0.1:{}", meta["partner_port"]);
    let handle = wallet
        .start_agent(notch_tests::tally::agent_config(&listen))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the fixture partner cannot listen on {listen} ({e}): run with --rebuild-fixture"
            )
        });
    (wallet, handle)
}

// ---------------------------------------------------------------- page scripts

/// Installed before the file is handed to the input: stamps the input's
/// `change` event and the frame after `offer-partner-name` has text.
const SCAN_WATCH_SCRIPT: &str = r#"
const now = () => performance.timeOrigin + performance.now();
const b = { installed: now(), changed: null, seen: null, shown: null, error: null };
window.__tallyScan = b;
document.addEventListener('change', (e) => {
  if (b.changed === null && e.target && e.target.getAttribute &&
      e.target.getAttribute('data-testid') === 'scan-ticket-image') b.changed = now();
}, true);
const check = () => {
  if (b.seen !== null) return;
  const name = document.querySelector('[data-testid="offer-partner-name"]');
  const err = document.querySelector('[data-testid="scan-ticket-error"]');
  if (name && name.textContent.trim() !== '') {
    b.seen = now();
    mo.disconnect();
    requestAnimationFrame(() => { b.shown = now(); });
  } else if (err && err.textContent.trim() !== '') {
    b.error = err.textContent;
  }
};
const mo = new MutationObserver(check);
mo.observe(document.body, { childList: true, subtree: true, characterData: true });
return b.installed;
"#;

/// Installed on an open detail: stamps the first change of
/// `tally-detail-balance`'s text and the frame after it.
const BALANCE_WATCH_SCRIPT: &str = r#"
const now = () => performance.timeOrigin + performance.now();
const text = () => { const e = document.querySelector('[data-testid="tally-detail-balance"]'); return e ? e.textContent : null; };
const b = { installed: now(), before: text(), after: null, seen: null, shown: null };
window.__tallyBalance = b;
const mo = new MutationObserver(() => {
  const t = text();
  if (b.seen === null && t !== null && t !== b.before) {
    b.seen = now();
    b.after = t;
    mo.disconnect();
    requestAnimationFrame(() => { b.shown = now(); });
  }
});
mo.observe(document.body, { childList: true, subtree: true, characterData: true });
return b.before;
"#;

/// Clicks the element `arguments[0]` (a test id) and stamps, relative to
/// the click, when an element matching the CSS selector `arguments[1]` is
/// in the DOM (and, if `arguments[2]`, has text) and the frame after it;
/// `arguments[3]` counts elements matching that selector at that frame.
const CLICK_UNTIL_SCRIPT: &str = r#"
const [clickId, sel, needText, countSel] = arguments;
const done = arguments[arguments.length - 1];
const frames = [];
let last = null, finished = false;
function tick(ts) { if (finished) return; if (last !== null) frames.push(ts - last); last = ts; requestAnimationFrame(tick); }
requestAnimationFrame(tick);
const t0 = performance.now();
const check = () => {
  if (finished) return;
  const e = document.querySelector(sel);
  if (!e || (needText && e.textContent.trim() === '')) return;
  finished = true;
  mo.disconnect();
  const inDom = performance.now() - t0;
  requestAnimationFrame(() => {
    done({ in_dom_ms: inDom, shown_ms: performance.now() - t0, frames,
           count: document.querySelectorAll(countSel).length });
  });
};
const mo = new MutationObserver(check);
mo.observe(document.body, { childList: true, subtree: true, characterData: true });
const target = document.querySelector(`[data-testid="${clickId}"]`);
if (!target) { finished = true; mo.disconnect(); done({ error: `no [data-testid=${clickId}]` }); return; }
target.click();
check();
"#;

/// Clicks "load older" and stamps when more chit rows are in the DOM, and
/// the frame after.
const LOAD_OLDER_SCRIPT: &str = r#"
const done = arguments[arguments.length - 1];
const rows = () => document.querySelectorAll('[data-testid^="chit-row-"]').length;
const before = rows();
const button = document.querySelector('[data-testid="chits-load-older"]');
if (!button) { done({ error: 'no chits-load-older', before }); return; }
const t0 = performance.now();
let finished = false;
const mo = new MutationObserver(() => {
  if (finished || rows() <= before) return;
  finished = true;
  mo.disconnect();
  const inDom = performance.now() - t0;
  requestAnimationFrame(() => done({ before, after: rows(), in_dom_ms: inDom, shown_ms: performance.now() - t0 }));
});
mo.observe(document.body, { childList: true, subtree: true });
button.click();
"#;

/// Scrolls the tallies list until the row `arguments[0]` is in the DOM
/// (a virtual list renders only the rows in view). Not timed.
const FIND_ROW_SCRIPT: &str = r#"
const id = arguments[0];
const done = arguments[arguments.length - 1];
const list = document.querySelector('[data-testid="tallies-list"]');
const row = () => document.querySelector(`[data-testid="tally-row-${id}"]`);
let steps = 0;
function step() {
  if (row()) { row().scrollIntoView({ block: 'center' }); done({ found: true, steps }); return; }
  const scroller = list && (list.scrollHeight > list.clientHeight ? list : document.scrollingElement);
  if (!scroller || steps > 2000 || scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight) {
    done({ found: false, steps }); return;
  }
  scroller.scrollTop += Math.max(100, scroller.clientHeight * 0.8);
  steps++;
  requestAnimationFrame(step);
}
step();
"#;

/// The app's tally rows (`tallies` command), from the page.
const INVOKE_SCRIPT: &str = r#"
const [c, a] = arguments;
const done = arguments[arguments.length - 1];
const t0 = performance.now();
window.__TAURI__.core.invoke(c, a)
  .then((v) => done({ ok: v === undefined ? null : v, ms: performance.now() - t0 }))
  .catch((e) => done({ err: e === undefined ? null : e, ms: performance.now() - t0 }));
"#;

fn invoke(run: &Running, command: &str, args: Value) -> Value {
    let out = run
        .session
        .execute_async(INVOKE_SCRIPT, json!([command, args]));
    if let Some(e) = out.get("err") {
        panic!("the app's {command} command failed: {e}");
    }
    out
}

/// Waits until the app's agent listens (its `agent_status`).
fn wait_agent(run: &Running) -> Value {
    let deadline = Instant::now() + SCREEN_WAIT;
    loop {
        let status = invoke(run, "agent_status", json!({}))["ok"].clone();
        if status["state"] == "listening" {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the app's agent is not listening: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls a page object installed by a watch script until `shown` is set.
fn wait_stamp(run: &Running, object: &str, what: &str) -> Value {
    let script = format!("return window.{object} || null;");
    let deadline = Instant::now() + SCREEN_WAIT;
    loop {
        let v = run.session.execute(&script, json!([]));
        if v["shown"].is_number() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {SCREEN_WAIT:?}: {v}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn click_until(run: &Running, click: &str, sel: &str, need_text: bool, count: &str) -> Value {
    let v = run
        .session
        .execute_async(CLICK_UNTIL_SCRIPT, json!([click, sel, need_text, count]));
    assert!(v.get("error").is_none(), "{v}");
    with_frames(&v)
}

fn with_frames(v: &Value) -> Value {
    let mut v = v.clone();
    let frames = floats(&v["frames"]);
    if let Some(o) = v.as_object_mut() {
        o.remove("frames");
        o.insert("frame_stats".into(), frame_stats(&frames));
    }
    v
}

// ---------------------------------------------------------------- measurements

/// `runs` payments by `partner` on `partner_id`, each timed until the
/// app's open detail painted the new balance.
fn chits_to_balance(
    rt: &tokio::runtime::Runtime,
    run: &Running,
    partner: &Wallet,
    partner_id: &str,
    runs: usize,
) -> Value {
    let mut out = Vec::new();
    for i in 0..runs {
        // Each payment after the last one settled (and a moment of quiet).
        rt.block_on(eventually("the last payment to settle", || async {
            let p = partner.tally_chit_page(partner_id, None, 1).await.ok()?;
            p.rows
                .iter()
                .all(|c| c.state.ends_with(".good") && c.consensus == "linked")
                .then_some(())
        }));
        std::thread::sleep(Duration::from_millis(500));
        let before = run.session.execute(BALANCE_WATCH_SCRIPT, json!([]));
        let units = 1_000 + i as u64;
        let t0 = now_ms();
        rt.block_on(partner.tally_pay(partner_id, units, Some(format!("bench {i}"))))
            .unwrap();
        let paid = now_ms();
        let v = wait_stamp(run, "__tallyBalance", "the balance to change");
        let shown = v["shown"].as_f64().unwrap();
        let seen = v["seen"].as_f64().unwrap();
        eprintln!(
            "tally-bench:   payment {} → balance painted after {:.0} ms ({:?} → {:?})",
            i + 1,
            shown - t0,
            before,
            v["after"]
        );
        out.push(json!({
            "pay_call_ms": paid - t0,
            "in_dom_ms": seen - t0,
            "shown_ms": shown - t0,
            "before": before,
            "after": v["after"],
        }));
    }
    let pick = |k: &str| -> Vec<f64> { out.iter().filter_map(|r| r[k].as_f64()).collect() };
    json!({
        "shown_ms": summary(&pick("shown_ms")),
        "in_dom_ms": summary(&pick("in_dom_ms")),
        "pay_call_ms": summary(&pick("pay_call_ms")),
        "runs": out,
    })
}

struct Ctx {
    app: PathBuf,
    screens: PathBuf,
    ticks: f64,
    gateway: String,
    store: Arc<dyn SecretStore>,
}

/// Session 1: a new small wallet; `runs` tickets of a partner scanned from
/// their pictures, each timed to the offer's partner name painted and
/// accepted; then `runs` payments on the last tally, each timed to the
/// balance painted.
fn scan_session(rt: &tokio::runtime::Runtime, cx: &Ctx, work: &Path, runs: usize) -> Value {
    let profile = work.join("profile-scan");
    let wallet_id = rt.block_on(async {
        let (wallet, _) = Wallet::create(
            WalletConfig::new(&profile, &cx.gateway, Network::Sandbox),
            cx.store.clone(),
            WordCount::Twelve,
        )
        .await
        .unwrap();
        wallet.wallet_id().to_owned()
    });
    let (partner, _partner_agent) = rt.block_on(async {
        let partner = Wallet::create(
            offline_config(&work.join("partner-scan")),
            Arc::new(MemorySecretStore::new()),
            WordCount::Twelve,
        )
        .await
        .unwrap()
        .0;
        partner
            .set_tally_profile(Some("scan-partner".into()), Some("Scan Partner".into()))
            .await
            .unwrap();
        let handle = agent(&partner, "127.0.0.1:0").await;
        (partner, handle)
    });
    let profile_s = profile.display().to_string();
    let run = launch(
        &cx.app,
        &[
            ("NOTCH_GATEWAY", &cx.gateway),
            ("NOTCH_DATA_DIR", &profile_s),
            ("NOTCH_AGENT_LISTEN", "127.0.0.1:0"),
        ],
        &cx.screens.join("scan"),
        cx.ticks,
    );
    run.session.set_script_timeout(Duration::from_secs(600));
    wait_screen(&run, "balances");
    let agent_status = wait_agent(&run);

    let pictures = work.join("tickets");
    std::fs::create_dir_all(&pictures).unwrap();
    let mut scans = Vec::new();
    let mut last: Option<(String, String)> = None; // (partner's id, comment)
    for i in 0..runs {
        let comment = format!("bench scan {i}");
        let (ticket, draft) = rt
            .block_on(partner.tally_ticket_with(options(comment.clone())))
            .unwrap();
        let png = pictures.join(format!("ticket-{i}.png"));
        std::fs::write(
            &png,
            ticket
                .to_qr_png(LinkForm::MyChips, DEFAULT_MODULE_PX)
                .unwrap(),
        )
        .unwrap();
        run.session.click("nav-tallies");
        run.session.wait_for("tallies-scan", SCREEN_WAIT);
        run.session.click("tallies-scan");
        run.session.wait_for("scan-ticket-image", SCREEN_WAIT);
        std::thread::sleep(Duration::from_millis(300));
        run.session.execute(SCAN_WATCH_SCRIPT, json!([]));
        let asked = now_ms();
        run.session
            .type_text("scan-ticket-image", &png.display().to_string());
        let v = wait_stamp(&run, "__tallyScan", "the offer's partner name");
        let shown = v["shown"].as_f64().unwrap();
        let seen = v["seen"].as_f64().unwrap();
        // The input's change event, or (if the page did not see it) the
        // moment WebDriver was asked to hand the file over.
        let (start, from) = match v["changed"].as_f64() {
            Some(c) => (c, "change event"),
            None => (asked, "WebDriver call"),
        };
        eprintln!(
            "tally-bench:   scan {} → partner's name painted after {:.0} ms (from the {from})",
            i + 1,
            shown - start
        );
        if i == 0 {
            run.session.screenshot("offer-review");
        }
        scans.push(json!({
            "from": from,
            "shown_ms": shown - start,
            "in_dom_ms": seen - start,
            "webdriver_to_change_ms": v["changed"].as_f64().map(|c| c - asked),
            "png_bytes": std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0),
        }));
        run.session.click("offer-accept");
        last = Some((draft.id, comment));
    }
    let (partner_id, comment) = last.expect("at least one run");
    rt.block_on(eventually("the last scanned tally to open", || async {
        (partner.tally(&partner_id).await.ok()?.info.state.as_str() == "open").then_some(())
    }));
    let rows = invoke(&run, "tallies", json!({}))["ok"].clone();
    let app_id = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["comment"] == comment.as_str())
        .and_then(|r| r["id"].as_str())
        .unwrap_or_else(|| panic!("no tally with comment {comment:?} in {rows}"))
        .to_owned();
    run.session.click("nav-tallies");
    run.session
        .wait_for(&format!("tally-row-{app_id}"), SCREEN_WAIT);
    run.session.click(&format!("tally-row-{app_id}"));
    run.session.wait_for("tally-detail-balance", SCREEN_WAIT);
    eprintln!("tally-bench: payments on a new tally");
    let chits = chits_to_balance(rt, &run, &partner, &partner_id, runs);
    run.session.screenshot("small-tally-detail");
    let memory = tree_memory(run.pid);
    close(run);
    let _ = cx.store.delete(&wallet_id);
    let pick = |k: &str| -> Vec<f64> { scans.iter().filter_map(|r| r[k].as_f64()).collect() };
    json!({
        "agent_status": agent_status,
        "scan": {
            "shown_ms": summary(&pick("shown_ms")),
            "in_dom_ms": summary(&pick("in_dom_ms")),
            "runs": scans,
        },
        "chits": chits,
        "memory_end": memory,
    })
}

/// Session 2: the fixture (1,000 tallies, one with 10,000 chits).
fn fixture_session(
    rt: &tokio::runtime::Runtime,
    cx: &Ctx,
    work: &Path,
    fixture_dir: &Path,
    meta: &Value,
    runs: usize,
) -> Value {
    let copy = work.join("fixture-copy");
    let copy_started = Instant::now();
    copy_dir(fixture_dir, &copy);
    let copy_secs = copy_started.elapsed().as_secs_f64();
    let app_wallet = meta["app_wallet_id"].as_str().unwrap();
    cx.store
        .set(
            app_wallet,
            &WalletSecret::new(phrase(&APP_ENTROPY), "").to_bytes(),
        )
        .unwrap();
    let (partner, partner_agent) = rt.block_on(open_partner(&copy.join("partner"), meta));
    let big_app = meta["big"]["app_id"].as_str().unwrap().to_owned();
    let big_partner = meta["big"]["partner_id"].as_str().unwrap().to_owned();

    let dir_s = copy.join("app").display().to_string();
    let listen = format!("127.0.0.1:{}", meta["app_port"]);
    let run = launch(
        &cx.app,
        &[
            ("NOTCH_GATEWAY", &cx.gateway),
            ("NOTCH_DATA_DIR", &dir_s),
            ("NOTCH_AGENT_LISTEN", &listen),
        ],
        &cx.screens.join("fixture"),
        cx.ticks,
    );
    run.session.set_script_timeout(Duration::from_secs(600));
    let start = wait_screen(&run, "balances");
    std::thread::sleep(SETTLE);
    let mem_start = tree_memory(run.pid);
    let agent_status = wait_agent(&run);
    assert_eq!(
        agent_status["bound"].as_str(),
        Some(listen.as_str()),
        "the app's agent must listen where the fixture's certificates say ({listen}): {agent_status}"
    );
    let invoke_tallies = invoke(&run, "tallies", json!({}));
    let listed = invoke_tallies["ok"].as_array().map(Vec::len).unwrap_or(0);

    // The list: first open after start-up, then twice again from Home.
    eprintln!("tally-bench: opening Tallies ({listed} tallies)");
    let rows_sel = r#"[data-testid^="tally-row-"]"#;
    let open_first = click_until(&run, "nav-tallies", rows_sel, false, rows_sel);
    eprintln!(
        "tally-bench:   first rows painted after {} ms ({} rows in the DOM)",
        f(&open_first["shown_ms"], 0),
        open_first["count"]
    );
    std::thread::sleep(SETTLE);
    let mem_list = tree_memory(run.pid);
    let rows_after_settle = run.session.execute(
        "return document.querySelectorAll('[data-testid^=\"tally-row-\"]').length;",
        json!([]),
    );
    run.session.screenshot("tallies-list");
    let mut reopen = Vec::new();
    for _ in 0..2 {
        run.session.click("nav-home");
        run.session.wait_for("balances", SCREEN_WAIT);
        std::thread::sleep(Duration::from_secs(1));
        reopen.push(click_until(&run, "nav-tallies", rows_sel, false, rows_sel));
    }

    // The big tally's detail.
    let found = run.session.execute_async(FIND_ROW_SCRIPT, json!([big_app]));
    assert_eq!(
        found["found"], true,
        "the big tally's row is not in the list"
    );
    eprintln!(
        "tally-bench: opening the tally with {} chits",
        meta["chits"]
    );
    let chit_sel = r#"[data-testid^="chit-row-"]"#;
    let detail = click_until(
        &run,
        &format!("tally-row-{big_app}"),
        chit_sel,
        false,
        chit_sel,
    );
    let balance_text = run
        .session
        .wait_text("tally-detail-balance", SCREEN_WAIT, |t| !t.is_empty());
    eprintln!(
        "tally-bench:   first chits painted after {} ms ({} rows; balance {balance_text:?})",
        f(&detail["shown_ms"], 0),
        detail["count"]
    );
    std::thread::sleep(SETTLE);
    let mem_detail = tree_memory(run.pid);
    run.session.screenshot("big-tally-detail");
    let mut older = Vec::new();
    for _ in 0..3 {
        if run.session.find("chits-load-older").is_none() {
            break;
        }
        older.push(run.session.execute_async(LOAD_OLDER_SCRIPT, json!([])));
    }
    std::thread::sleep(SETTLE);
    let mem_older = tree_memory(run.pid);

    eprintln!("tally-bench: payments on the big tally");
    let chits = chits_to_balance(rt, &run, &partner, &big_partner, runs);
    std::thread::sleep(SETTLE);
    let mem_end = tree_memory(run.pid);
    run.session.screenshot("big-tally-after-payments");
    close(run);
    rt.block_on(partner_agent.stop());
    drop(partner);
    let _ = cx.store.delete(app_wallet);
    json!({
        "copy_secs": copy_secs,
        "agent_status": agent_status,
        "start": start,
        "invoke_tallies": { "rows": listed, "ms": invoke_tallies["ms"] },
        "open_list_first": open_first,
        "rows_after_settle": rows_after_settle,
        "reopen_list": reopen,
        "open_big_detail": detail,
        "big_balance_text": balance_text,
        "load_older": older,
        "chits": chits,
        "memory": {
            "after_start": mem_start,
            "after_list_open": mem_list,
            "after_big_detail_open": mem_detail,
            "after_load_older": mem_older,
            "after_payments": mem_end,
        },
    })
}

fn main() {
    // The two in-process wallets' logs (RUST_LOG, e.g. notch_core=info):
    // what a stalled fixture is waiting for.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    if let Some(path) = arg_str("--markdown-from") {
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        print!("{}", markdown(&r));
        return;
    }
    let runs: usize = arg("--runs", 5);
    let tallies: usize = arg("--tallies", 1_000);
    let chits: usize = arg("--chits", 10_000);
    assert!(tallies >= 1, "--tallies must be at least 1");
    if flag("--fixture-only") {
        // Makes (or checks the cache of) the fixture, nothing else: no
        // display or keystore needed.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (dir, meta, cached) = fixture(&rt, tallies, chits);
        eprintln!("tally-bench: fixture {} (cached: {cached})", dir.display());
        println!("{}", serde_json::to_string_pretty(&meta).unwrap());
        return;
    }
    check_session();
    let out_path = arg_str("--out");
    let total = Instant::now();
    let load_start = loadavg(3);
    let date = utc_now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let (fixture_dir, meta, cached) = fixture(&rt, tallies, chits);
    eprintln!("tally-bench: fixture {}: {meta}", fixture_dir.display());

    let work = target_dir().join("tally-app-bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let gateway = notch_tests::bench::start_gateway(&bin("notch-gateway"), &work.join("gw"));
    let store: Arc<dyn SecretStore> =
        Arc::new(OsSecretStore::open().expect("cannot open the Secret Service"));
    let cx = Ctx {
        app: bin("notch-app"),
        screens: work.join("screens"),
        ticks: clock_ticks_per_sec(),
        gateway: gateway.url.clone(),
        store,
    };
    let scan = scan_session(&rt, &cx, &work, runs);
    let big = fixture_session(&rt, &cx, &work, &fixture_dir, &meta, runs);
    let result = json!({
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "date": date,
        "loadavg_start": load_start,
        "loadavg_end": loadavg(3),
        "runs": runs,
        "params": { "tallies": tallies, "chits": chits, "runs": runs },
        "fixture": { "dir": fixture_dir.display().to_string(), "cached": cached, "meta": meta },
        "scan_session": scan,
        "fixture_session": big,
        "screenshots": cx.screens.display().to_string(),
        "total_secs": total.elapsed().as_secs_f64(),
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    if let Some(path) = out_path {
        std::fs::write(&path, markdown(&result)).unwrap();
        let json_path = Path::new(&path).with_extension("json");
        std::fs::write(&json_path, serde_json::to_string_pretty(&result).unwrap()).unwrap();
        eprintln!("tally-bench: wrote {path} and {}", json_path.display());
    }
}

// ---------------------------------------------------------------- report

fn ms_row(label: &str, s: &Value) -> String {
    format!("| {label} | {} | **{} ms** |\n", s["n"], mmm(s))
}

fn markdown(r: &Value) -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let p = &r["params"];
    let m = &r["fixture"]["meta"];
    let sc = &r["scan_session"];
    let fx = &r["fixture_session"];
    let mut s = String::new();
    s += "# Tallies in the desktop app\n\n";
    s += &format!(
        "Date: {}. Machine: {nproc} CPUs, shared with other builds; 1/5/15-minute load average {} at the start, {} at the end. \
         Profile: {} (`notch-app` built with `cargo build --release -p notch-app` after the release UI build of `xtask/src/ui.rs`, cargo for wasm32 and wasm-bindgen). \
         Display: Xvfb (software rendering); Secret Service: a throwaway gnome-keyring on a private session bus.\n\n",
        r["date"].as_str().unwrap_or("?"),
        r["loadavg_start"].as_str().unwrap_or("?"),
        r["loadavg_end"].as_str().unwrap_or("?"),
        r["profile"].as_str().unwrap_or("?"),
    );
    s += "Reproduce every figure below:\n\n```\ncargo xtask bench tallies\n```\n\n\
which builds the release UI (cargo for wasm32, wasm-bindgen), `cargo build --release -p notch-gateway --bins` and \
`cargo build --release -p notch-app`, then runs, under a fresh Xvfb display and `dbus-run-session` with gnome-keyring \
unlocked (throwaway keyring, `NOTCH_TEST_SECRET_SERVICE=1`):\n\n";
    s += &format!(
        "```\ncargo run --release -p notch-tests --bin notch-tally-app-bench -- --runs {} --tallies {} --chits {} --out bench/results/tallies.md\n```\n\n",
        p["runs"], p["tallies"], p["chits"]
    );
    s += &format!(
        "Raw figures of every run: `tallies.json` next to this file; screenshots in `{}`. Whole run: {} s. \
         No test asserts any of these figures.\n\n",
        r["screenshots"].as_str().unwrap_or("?"),
        f(&r["total_secs"], 0),
    );
    s += &format!(
        "**Fixture.** {} open tallies between the app's wallet and one partner wallet (notch-core, in the bench process), \
         made through the protocol over loopback agents: the partner's ticket scanned and accepted by the app's wallet, and \
         the other way round, in turn; one payment on every tally but the first; the first has {} payment chits, paid in \
         batches of {} from either side in turn, both halves checked to agree (good, linked, same count) after each \
         batch. Made in {} s ({} ms a chit on the big tally){}; wallet.sqlite of the app {} MB. Cached in `{}`.\n\n",
        m["tallies"],
        m["chits"],
        m["batch"].as_u64().unwrap_or(BATCH as u64),
        f(&m["build_secs"], 0),
        f(&m["ms_per_chit"], 1),
        if r["fixture"]["cached"] == json!(true) {
            ", when it was made; this run reused it"
        } else {
            ", this run"
        },
        f(&(m["app_db_bytes"].as_f64().unwrap_or(0.0) / 1e6).into(), 1),
        r["fixture"]["dir"].as_str().unwrap_or("?"),
    );

    s += "## 1. Ticket scan → the partner's certificate shown\n\n\
A partner wallet (its agent on loopback) issues a ticket; its QR code PNG (8 px modules) is handed to the Scan screen's \
file input through WebDriver. Clock, inside the page: from the input's `change` event to the first animation frame after \
`[data-testid=offer-partner-name]` has text. On it: reading the file, the `scan_ticket_image` command (decode with rqrr, \
parse, check), the Noise session to the partner's agent, its signed offer, verification, the answer over IPC, rendering.\n\n\
| | runs | median (min–max) |\n|---|---:|---:|\n";
    s += &ms_row("`change` → partner's name painted", &sc["scan"]["shown_ms"]);
    s += &ms_row(
        "`change` → partner's name in the DOM",
        &sc["scan"]["in_dom_ms"],
    );
    let from: Vec<&str> = sc["scan"]["runs"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["from"].as_str()).collect())
        .unwrap_or_default();
    if from.iter().any(|f| *f != "change event") {
        s += "\n**In at least one run the page saw no `change` event; that run is timed from the WebDriver call (an upper bound).**\n";
    }

    s += "\n## 2. A chit sent → the balance painted\n\n\
The partner pays 1 CHIP and a bit (`Wallet::tally_pay`: checked against the credit limit, signed, stored, sent at once \
over the open or a new Noise session). Clock: from just before that call (bench process) to the first animation frame \
after the text of the open detail's `[data-testid=tally-detail-balance]` changed (page; same machine clock). Each \
payment starts after the previous one settled and half a second of quiet.\n\n\
| tally | runs | pay → balance painted | pay → text changed | `tally_pay` returned |\n|---|---:|---:|---:|---:|\n";
    for (label, c) in [
        ("new tally, a few chits (small wallet)", &sc["chits"]),
        (
            &*format!("the tally with {} chits (fixture)", m["chits"]),
            &fx["chits"],
        ),
    ] {
        s += &format!(
            "| {label} | {} | **{} ms** | {} ms | {} ms |\n",
            c["shown_ms"]["n"],
            mmm(&c["shown_ms"]),
            mmm(&c["in_dom_ms"]),
            mmm(&c["pay_call_ms"]),
        );
    }

    s += &format!(
        "\n## 3. The Tallies screen with {} tallies, one with {} chits\n\n",
        m["tallies"], m["chits"]
    );
    s += &format!(
        "Cold start of the app on a copy of the fixture (copied in {} s) to Home's balances painted: **{} ms** after the \
         process started (clock as in app.md). The `tallies` command from the page: {} rows in {} ms.\n\n",
        f(&fx["copy_secs"], 1),
        f(&fx["start"]["shown_ms"], 0),
        fx["invoke_tallies"]["rows"],
        f(&fx["invoke_tallies"]["ms"], 0),
    );
    s += "Each row: one WebDriver script clicks, then a MutationObserver waits for the first matching element and the \
next animation frame stamps it painted (ms after the click); the longest frame between the click and the paint shows how \
long the page could not paint.\n\n\
| | click → in DOM | click → painted | longest frame meanwhile | rows in the DOM then |\n|---|---:|---:|---:|---:|\n";
    let row = |label: &str, v: &Value| -> String {
        format!(
            "| {label} | {} ms | **{} ms** | {} ms | {} |\n",
            f(&v["in_dom_ms"], 0),
            f(&v["shown_ms"], 0),
            f(&v["frame_stats"]["max_ms"], 0),
            v["count"],
        )
    };
    s += &row(
        "Tallies, first open (first tally rows)",
        &fx["open_list_first"],
    );
    if let Some(list) = fx["reopen_list"].as_array() {
        for (i, v) in list.iter().enumerate() {
            s += &row(&format!("Tallies, again from Home ({})", i + 2), v);
        }
    }
    s += &row(
        &format!("the {}-chit tally's detail (first chit rows)", m["chits"]),
        &fx["open_big_detail"],
    );
    if let Some(list) = fx["load_older"].as_array() {
        for (i, v) in list.iter().enumerate() {
            s += &format!(
                "| \"load older\" {} ({} → {} chit rows) | {} ms | **{} ms** | – | {} |\n",
                i + 1,
                v["before"],
                v["after"],
                f(&v["in_dom_ms"], 0),
                f(&v["shown_ms"], 0),
                v["after"],
            );
        }
    }
    s += &format!(
        "\nTally rows in the DOM {} s after the list opened: {}.\n\n",
        SETTLE.as_secs(),
        fx["rows_after_settle"]
    );
    s += "### Memory of the app's process tree\n\n\
VmRSS and Pss (`/proc/<pid>/status`, `smaps_rollup`) of `notch-app` and its WebKit processes.\n\n\
| when | RSS | Pss | per process (RSS) |\n|---|---:|---:|---|\n";
    let mm = &fx["memory"];
    s += &mem_row(
        &format!("{} s after Home appeared", SETTLE.as_secs()),
        &mm["after_start"],
    );
    s += &mem_row(
        &format!("{} s after the Tallies list was painted", SETTLE.as_secs()),
        &mm["after_list_open"],
    );
    s += &mem_row(
        &format!("{} s after the big tally's detail", SETTLE.as_secs()),
        &mm["after_big_detail_open"],
    );
    s += &mem_row("after \"load older\"", &mm["after_load_older"]);
    s += &mem_row("after the payments of §2", &mm["after_payments"]);
    s += &mem_row(
        "small wallet, after its scans and payments (§1, §2)",
        &sc["memory_end"],
    );
    s
}
