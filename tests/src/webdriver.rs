//! A minimal W3C WebDriver client (the few endpoints the app tests use),
//! talking to tauri-driver, which drives the real app through WebKitWebDriver.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::{KillOnDrop, eventually, free_port};

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
        let capabilities = json!({
            "capabilities": { "alwaysMatch": { "tauri:options": { "application": app } } }
        });
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        let screens = std::env::var_os("NOTCH_E2E_SCREENS")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::bin_dir().join("../e2e-screens"))
            .join(test_name);
        std::fs::create_dir_all(&screens).unwrap();
        AppSession {
            base,
            session,
            http,
            screens,
            _driver: driver,
        }
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
        eventually(&format!("[data-testid={test_id}] to match"), within, || {
            self.text(test_id).filter(|t| ok(t))
        })
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
        let answer = self.post(&format!("element/{element}/value"), json!({ "text": text }));
        assert!(
            answer["value"].is_null(),
            "typing into {test_id} failed: {answer}"
        );
    }

    /// Waits until the element is on the page.
    pub fn wait_for(&self, test_id: &str, within: Duration) -> String {
        eventually(
            &format!("[data-testid={test_id}] to appear"),
            within,
            || self.find(test_id),
        )
    }

    /// Runs a script in the page and returns its value.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.post("execute/sync", json!({ "script": script, "args": args }))["value"].clone()
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
    }
}
