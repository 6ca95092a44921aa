//! A minimal W3C WebDriver client (the few endpoints the app tests use),
//! talking to tauri-driver, which drives the real app through WebKitWebDriver.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::{KillOnDrop, eventually, free_port, within_time};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// tauri-driver plus one session of the app.
pub struct AppSession {
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    screens: PathBuf,
    _driver: KillOnDrop,
}

impl AppSession {
    /// Launches `app` through tauri-driver with `env` added to its environment.
    pub fn launch(app: &Path, env: &[(&str, &str)], test_name: &str) -> AppSession {
        let screens = std::env::var_os("NOTCH_E2E_SCREENS")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::bin_dir().join("../e2e-screens"))
            .join(test_name);
        Self::launch_with_screens(app, env, screens)
    }

    /// Like [`AppSession::launch`], with screenshots saved in `screens`
    /// (created if missing) rather than under `NOTCH_E2E_SCREENS`.
    pub fn launch_with_screens(app: &Path, env: &[(&str, &str)], screens: PathBuf) -> AppSession {
        // Should the new-session request still be dropped (a busy machine),
        // a fresh driver on fresh ports, a moment later, gets through.
        let mut last = String::new();
        for attempt in 0..4 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(2));
            }
            match Self::try_launch_with_screens(app, env, screens.clone()) {
                Ok(session) => return session,
                Err(e) => {
                    eprintln!("WebDriver session, attempt {}: {e}", attempt + 1);
                    last = e;
                }
            }
        }
        panic!("{last}")
    }

    /// Like [`AppSession::launch_with_screens`], but a failure to create the
    /// WebDriver session is returned (for a caller that retries).
    pub fn try_launch_with_screens(
        app: &Path,
        env: &[(&str, &str)],
        screens: PathBuf,
    ) -> Result<AppSession, String> {
        let port = free_port();
        let native_port = free_port();
        let mut driver = Command::new("tauri-driver");
        driver
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .stdout(Stdio::null());
        for (key, value) in env {
            driver.env(key, value);
        }
        let driver = KillOnDrop(
            driver
                .spawn()
                .expect("tauri-driver not found: run `cargo xtask setup`"),
        );
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        eventually("tauri-driver to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        // tauri-driver listens before the WebKitWebDriver it started does,
        // and drops a request it cannot forward (the client then sees the
        // connection closed): the native driver must be up first. On a cold
        // machine (CI's first e2e test) it takes seconds.
        eventually("WebKitWebDriver to listen", Duration::from_secs(60), || {
            std::net::TcpStream::connect(("127.0.0.1", native_port)).ok()
        });
        let capabilities = json!({
            "capabilities": { "alwaysMatch": { "tauri:options": { "application": app } } }
        });
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .and_then(|r| r.json())
            .map_err(|e| format!("no WebDriver session: {e}"))?;
        let session = created["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no WebDriver session: {created}"))?
            .to_owned();
        std::fs::create_dir_all(&screens).unwrap();
        Ok(AppSession {
            base,
            session,
            http,
            screens,
            _driver: driver,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}/{path}", self.base, self.session)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    fn get(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// The element with `data-testid="id"`, if it is on the page now.
    pub fn find(&self, test_id: &str) -> Option<String> {
        let found = self.post(
            "element",
            json!({ "using": "css selector", "value": format!("[data-testid=\"{test_id}\"]") }),
        );
        found["value"][ELEMENT_KEY].as_str().map(str::to_owned)
    }

    /// Text of the element with that test id, if present.
    pub fn text(&self, test_id: &str) -> Option<String> {
        let element = self.find(test_id)?;
        self.get(&format!("element/{element}/text"))["value"]
            .as_str()
            .map(str::to_owned)
    }

    /// Waits until the element's text satisfies `ok`, and returns it.
    pub fn wait_text(&self, test_id: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
        match within_time(within, || self.text(test_id).filter(|t| ok(t))) {
            Some(text) => text,
            None => self.timed_out(
                test_id,
                &format!(
                    "[data-testid={test_id}] to match (its text now: {:?})",
                    self.text(test_id)
                ),
                within,
            ),
        }
    }

    /// Fails the test, with a picture of the window as it was.
    fn timed_out(&self, test_id: &str, what: &str, within: Duration) -> ! {
        let picture = self.screenshot(&format!("timeout-{test_id}"));
        panic!(
            "timed out after {within:?} waiting for {what}; the window: {}",
            picture.display()
        )
    }

    pub fn click(&self, test_id: &str) {
        let element = self
            .find(test_id)
            .unwrap_or_else(|| panic!("no element [data-testid={test_id}]"));
        let answer = self.post(&format!("element/{element}/click"), json!({}));
        assert!(
            answer["value"].is_null(),
            "click on {test_id} failed: {answer}"
        );
    }

    /// Types `text` into the element with that test id (after clearing it).
    pub fn type_text(&self, test_id: &str, text: &str) {
        let element = self
            .find(test_id)
            .unwrap_or_else(|| panic!("no element [data-testid={test_id}]"));
        let _ = self.post(&format!("element/{element}/clear"), json!({}));
        // WebKitWebDriver refuses to send no keys at all: clearing is typing "".
        if text.is_empty() {
            return;
        }
        let answer = self.post(&format!("element/{element}/value"), json!({ "text": text }));
        assert!(
            answer["value"].is_null(),
            "typing into {test_id} failed: {answer}"
        );
    }

    /// Waits until the element is on the page.
    pub fn wait_for(&self, test_id: &str, within: Duration) -> String {
        match within_time(within, || self.find(test_id)) {
            Some(element) => element,
            None => self.timed_out(
                test_id,
                &format!("[data-testid={test_id}] to appear"),
                within,
            ),
        }
    }

    /// Runs a script in the page and returns its value.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.post("execute/sync", json!({ "script": script, "args": args }))["value"].clone()
    }

    /// Runs an asynchronous script (its last argument is the callback to
    /// call with the result) and returns that result.
    pub fn execute_async(&self, script: &str, args: Value) -> Value {
        self.post("execute/async", json!({ "script": script, "args": args }))["value"].clone()
    }

    /// Sets how long a script may run before WebDriver gives up on it.
    pub fn set_script_timeout(&self, timeout: Duration) {
        let _ = self.post(
            "timeouts",
            json!({ "script": u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX) }),
        );
    }

    /// The process id of tauri-driver (the root of the app's process tree).
    pub fn driver_pid(&self) -> u32 {
        self._driver.0.id()
    }

    /// The process id of the app itself: the descendant of tauri-driver
    /// (tauri-driver -> WebKitWebDriver -> app) whose executable is `app`'s
    /// file name. None if it is not (or no longer) running.
    pub fn app_pid(&self, app: &Path) -> Option<u32> {
        let name = app.file_name()?.to_string_lossy().into_owned();
        descendants(self.driver_pid()).into_iter().find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .ok()
                .and_then(|exe| exe.file_name().map(|n| n.to_string_lossy().into_owned()))
                .is_some_and(|exe| exe.trim_end_matches(" (deleted)") == name)
        })
    }

    /// Waits until WebKit has painted the current DOM: two animation frames
    /// and a short pause (its screenshots otherwise lag a frame behind).
    fn settle(&self) {
        let script = "const done = arguments[arguments.length - 1]; \
                      requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, 150)));";
        let _ = self.post("execute/async", json!({ "script": script, "args": [] }));
    }

    /// Saves a PNG of the window as `<screens>/<name>.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        self.settle();
        let shot = self.get("screenshot");
        let data = shot["value"]
            .as_str()
            .unwrap_or_else(|| panic!("no screenshot: {shot}"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        let path = self.screens.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for AppSession {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        // Killing tauri-driver alone would leave WebKitWebDriver (and an app
        // that did not quit) running, holding ports the next session may
        // want: stop the whole tree, leaves first.
        let mut tree = descendants(self.driver_pid());
        tree.reverse();
        if !tree.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(tree.iter().map(u32::to_string))
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The parent process id of `pid`, from /proc (Linux).
pub fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every live descendant of `root` (children, their children, ...), from /proc.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok())
                && let Some(ppid) = parent_pid(pid)
            {
                parents.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &parents {
            if ppid == p && !out.contains(&pid) {
                out.push(pid);
                frontier.push(pid);
            }
        }
    }
    out
}
