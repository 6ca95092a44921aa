//! What the app's tally tests and benchmarks share: finding the rows of
//! tallies and chits (their ids are not known in advance) by `data-testid`
//! prefix, reading the balance texts the UI paints, cropping a screenshot,
//! and a CLI wallet with its `notch agent` process as the partner.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::webdriver::AppSession;
use crate::{KillOnDrop, bin, eventually, within_time};

// ---------------------------------------------------------------- the page

/// The suffixes of every element whose `data-testid` starts with `prefix`,
/// in document order (`tally-row-` gives the ids of the tallies listed).
pub fn ids_with_prefix(app: &AppSession, prefix: &str) -> Vec<String> {
    let found = app.execute(
        "const p = arguments[0]; \
         return Array.from(document.querySelectorAll(`[data-testid^=\"${p}\"]`)) \
           .map(e => e.getAttribute('data-testid').slice(p.length));",
        json!([prefix]),
    );
    found
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The ids of the tallies in the list now.
pub fn tally_ids(app: &AppSession) -> Vec<String> {
    ids_with_prefix(app, "tally-row-")
}

/// The uuids of the chits listed now.
pub fn chit_ids(app: &AppSession) -> Vec<String> {
    ids_with_prefix(app, "chit-row-")
}

/// Waits until a row with `prefix` appears whose id is not in `before`;
/// returns its id.
pub fn wait_new_id(app: &AppSession, prefix: &str, before: &[String], within: Duration) -> String {
    let found = within_time(within, || {
        ids_with_prefix(app, prefix)
            .into_iter()
            .find(|id| !before.contains(id))
    });
    match found {
        Some(id) => id,
        None => {
            let picture = app.screenshot(&format!("timeout-new-{prefix}"));
            panic!(
                "timed out after {within:?} waiting for a new [data-testid^={prefix}] \
                 (before: {before:?}; now: {:?}; the app's tallies: {:?}); the window: {}",
                ids_with_prefix(app, prefix),
                invoke(app, "tallies", json!({})),
                picture.display()
            )
        }
    }
}

/// The current value of an input or textarea (WebDriver's text of an
/// input is empty); `None` when it is not on the page.
pub fn value(app: &AppSession, test_id: &str) -> Option<String> {
    app.execute(
        "const e = document.querySelector(`[data-testid=\"${arguments[0]}\"]`); return e ? e.value : null;",
        json!([test_id]),
    )
    .as_str()
    .map(str::to_owned)
}

/// Waits until the input's value satisfies `ok`, and returns it.
pub fn wait_value(
    app: &AppSession,
    test_id: &str,
    within: Duration,
    ok: impl Fn(&str) -> bool,
) -> String {
    eventually(
        &format!("the value of [data-testid={test_id}]"),
        within,
        || value(app, test_id).filter(|v| ok(v)),
    )
}

/// Calls an app command from the page (`window.__TAURI__.core.invoke`),
/// for checks the screens do not show (the record as signed); the tests
/// act only through the screens.
pub fn invoke(app: &AppSession, command: &str, args: Value) -> Result<Value, Value> {
    let out = app.execute_async(
        "const [c, a] = arguments; const done = arguments[arguments.length - 1]; \
         window.__TAURI__.core.invoke(c, a) \
           .then(v => done({ ok: v === undefined ? null : v })) \
           .catch(e => done({ err: e === undefined ? null : e }));",
        json!([command, args]),
    );
    match out.get("err") {
        Some(e) => Err(e.clone()),
        None => Ok(out["ok"].clone()),
    }
}

/// Where the element is in the window's screenshot, in device pixels:
/// `(x, y, width, height)`.
pub fn device_rect(app: &AppSession, test_id: &str) -> Option<(u32, u32, u32, u32)> {
    let r = app.execute(
        "const e = document.querySelector(`[data-testid=\"${arguments[0]}\"]`); \
         if (!e) return null; \
         const r = e.getBoundingClientRect(); const d = window.devicePixelRatio || 1; \
         return [r.left * d, r.top * d, r.width * d, r.height * d];",
        json!([test_id]),
    );
    let v: Vec<f64> = r.as_array()?.iter().filter_map(Value::as_f64).collect();
    let [x, y, w, h] = v[..] else { return None };
    // Whole pixels that cover the element.
    let (x0, y0) = (x.floor().max(0.0), y.floor().max(0.0));
    Some((
        x0 as u32,
        y0 as u32,
        (x + w - x0).ceil() as u32,
        (y + h - y0).ceil() as u32,
    ))
}

/// A PNG of the part of `png` at `rect` (clipped to the picture), with
/// `margin` pixels around it where the picture has them.
pub fn crop_png(png: &[u8], rect: (u32, u32, u32, u32), margin: u32) -> Vec<u8> {
    let picture = image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .expect("the screenshot is a PNG");
    let (x, y, w, h) = rect;
    let x0 = x.saturating_sub(margin).min(picture.width());
    let y0 = y.saturating_sub(margin).min(picture.height());
    let x1 = (x + w + margin).min(picture.width());
    let y1 = (y + h + margin).min(picture.height());
    let part = picture.crop_imm(x0, y0, x1 - x0, y1 - y0);
    let mut out = std::io::Cursor::new(Vec::new());
    part.write_to(&mut out, image::ImageFormat::Png)
        .expect("a PNG can be written");
    out.into_inner()
}

// ---------------------------------------------------------------- balances

/// A balance as the UI paints it ("They owe me 12.500", "I owe them
/// 3.000", "Even"), in milliCHIPs from the app's side (positive: the
/// partner owes the app). `None` for a text of another shape.
pub fn parse_balance(text: &str) -> Option<i64> {
    let lower = text.to_lowercase();
    let sign = if lower.contains("they owe me") {
        1
    } else if lower.contains("i owe them") {
        -1
    } else if lower.contains("even") {
        return Some(0);
    } else {
        return None;
    };
    let number: String = text
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    let (whole, frac) = number.split_once('.').unwrap_or((&number, ""));
    if whole.is_empty() || frac.len() > 3 {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = format!("{frac:0<3}").parse().ok()?;
    Some(sign * (whole * 1000 + frac))
}

/// The text the UI paints for `milli` milliCHIPs from the app's side.
pub fn balance_text(milli: i64) -> String {
    let chips = format!(
        "{}.{:03}",
        milli.unsigned_abs() / 1000,
        milli.unsigned_abs() % 1000
    );
    match milli.signum() {
        1 => format!("They owe me {chips}"),
        -1 => format!("I owe them {chips}"),
        _ => "Even".to_owned(),
    }
}

/// Waits until the element's text reads as a balance of `milli`
/// milliCHIPs from the app's side; returns the text.
pub fn wait_balance(app: &AppSession, test_id: &str, milli: i64, within: Duration) -> String {
    app.wait_text(test_id, within, |t| parse_balance(t) == Some(milli))
}

// ---------------------------------------------------------------- the CLI partner

/// A CLI wallet (`notch --data-dir DIR --gateway URL --json …`): the app's
/// partner in the tally tests.
pub struct CliWallet {
    pub name: &'static str,
    pub data_dir: PathBuf,
    pub gateway: String,
}

impl CliWallet {
    pub fn new(name: &'static str, data_dir: PathBuf, gateway: &str) -> CliWallet {
        CliWallet {
            name,
            data_dir,
            gateway: gateway.to_owned(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("notch"));
        c.arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--gateway", &self.gateway, "--json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `args`, which must succeed, and returns its JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{}: notch {args:?} failed ({}): {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: notch {args:?} printed no JSON ({e}): {}",
                self.name,
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs `args`, which must fail: its exit code and the message of the
    /// JSON error line on stderr.
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "{}: notch {args:?} should have failed, printed {}",
            self.name,
            String::from_utf8_lossy(&out.stdout)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let error: Value = serde_json::from_str(stderr.lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("notch {args:?}: stderr is no JSON error ({e}): {stderr}"));
        let message = error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (out.status.code().unwrap_or(-1), message)
    }

    pub fn tallies(&self) -> Vec<Value> {
        self.json(&["tally", "list"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `notch tally show ID`.
    pub fn tally(&self, id: &str) -> Value {
        self.json(&["tally", "show", id])
    }

    /// Waits until `notch tally show ID` satisfies `check`.
    pub fn wait(
        &self,
        id: &str,
        what: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let what = format!("{}: {what}", self.name);
        eventually(&what, within, || {
            let shown = self.tally(id);
            check(&shown).then_some(shown)
        })
    }

    pub fn wait_state(&self, id: &str, state: &str, within: Duration) -> Value {
        self.wait(id, &format!("tally {id} to be {state}"), within, |t| {
            t["state"] == state
        })
    }

    /// Waits for this tally's balance (milliCHIPs, from this side) with
    /// every chit on it good and linked, or void.
    pub fn wait_settled(&self, id: &str, balance: i64, within: Duration) -> Value {
        self.wait(
            id,
            &format!("balance {balance}, all chits settled"),
            within,
            |t| t["balance"] == balance && settled(t),
        )
    }

    /// `notch agent --listen 127.0.0.1:PORT` in the background, once it
    /// says it listens (its stderr goes to `agent.log` in the data dir).
    pub fn agent(&self, port: u16) -> CliAgent {
        let listen = format!("127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("agent.log"))
            .unwrap();
        let mut child = self
            .command(&["agent", "--listen", &listen])
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("\"listening\"") {
                    let _ = tx.send(line.clone());
                }
                seen.lock().unwrap().push(line);
            }
        });
        let child = KillOnDrop(child);
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{}: the agent did not say it listens", self.name));
        let said: Value = serde_json::from_str(&first).unwrap();
        assert_eq!(said["listening"], listen.as_str(), "{first}");
        assert_eq!(said["port"], port, "{first}");
        CliAgent {
            child: Some(child),
            lines,
        }
    }
}

/// Every chit of a `notch tally show` good and linked, or void.
pub fn settled(shown: &Value) -> bool {
    shown["chits"].as_array().is_some_and(|chits| {
        chits.iter().all(|c| {
            let state = c["state"].as_str().unwrap_or_default();
            (state.ends_with(".good") && c["consensus"] == "linked") || state.ends_with(".void")
        })
    })
}

/// Both signatures of a `notch tally show` record are there.
pub fn both_signed(shown: &Value) -> bool {
    let sign = &shown["record"]["sign"];
    ["stock", "foil"]
        .iter()
        .all(|side| sign[side].as_str().is_some_and(|s| !s.is_empty()))
}

/// A running `notch agent` process.
pub struct CliAgent {
    child: Option<KillOnDrop>,
    /// What it printed on stdout (one JSON event a line).
    lines: Arc<Mutex<Vec<String>>>,
}

impl CliAgent {
    /// Ctrl-C, as a user stops it; waits until it has exited.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let process: &mut Child = &mut child.0;
        let status = Command::new("kill")
            .args(["-INT", &process.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exited = eventually(
            "the agent to stop on Ctrl-C",
            Duration::from_secs(15),
            || process.try_wait().unwrap(),
        );
        assert!(exited.success(), "the agent exited with {exited}");
    }

    /// It printed a line holding every one of `needles`.
    pub fn printed(&self, needles: &[&str]) -> bool {
        let lines = self.lines.lock().unwrap();
        lines.iter().any(|l| needles.iter().all(|n| l.contains(n)))
    }
}

/// Writes `bytes` to `dir/name` (creating `dir`) and returns the path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_texts_read_back() {
        for milli in [0, 1, 999, 1000, 12_500, -3_000, -12_345_678] {
            assert_eq!(parse_balance(&balance_text(milli)), Some(milli), "{milli}");
        }
        assert_eq!(parse_balance("They owe me 12.5 CHIPs"), Some(12_500));
        assert_eq!(parse_balance("I owe them 1,234.000"), Some(-1_234_000));
        assert_eq!(parse_balance("Even"), Some(0));
        assert_eq!(parse_balance(""), None);
        assert_eq!(parse_balance("12.500"), None);
    }
}
