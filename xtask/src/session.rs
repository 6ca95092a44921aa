//! The desktop session a wallet needs: a display and a Secret Service.
//! On a bare machine the xtask provides both for its own children and says so.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sh::{self, Result, cmd, output};

/// A child process that is stopped when dropped.
pub struct Guard {
    pub name: &'static str,
    pub child: Child,
}

impl Guard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, a moment's grace, then SIGKILL.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        println!("stopping {}", self.name);
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether some display (X11 or Wayland) is available.
pub fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// Starts Xvfb on a free display number; returns it (":N") and its guard.
pub fn start_xvfb() -> Result<(String, Guard)> {
    let number = (90..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .ok_or("no free X display number between :90 and :199")?;
    let display = format!(":{number}");
    let child = cmd("Xvfb")
        .args([
            display.as_str(),
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start Xvfb: {e}"))?;
    let guard = Guard {
        name: "Xvfb",
        child,
    };
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
    wait_for(|| socket.exists(), Duration::from_secs(15))
        .map_err(|_| "Xvfb did not start".to_owned())?;
    println!("started Xvfb on {display}");
    Ok((display, guard))
}

pub fn wait_for(mut ready: impl FnMut() -> bool, within: Duration) -> Result {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("timed out".into())
}

/// A Secret Service for the wallet: the one already on the session bus, or
/// one the xtask starts (and says so).
pub struct SecretService {
    /// Environment to hand to children (`DBUS_SESSION_BUS_ADDRESS`).
    pub env: Vec<(String, String)>,
    _bus: Option<Guard>,
}

const SECRETS_NAME: &str = "org.freedesktop.secrets";

fn bus_has_secrets(address: &str) -> bool {
    output(
        cmd("dbus-send")
            .env("DBUS_SESSION_BUS_ADDRESS", address)
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
            ])
            .args([
                "org.freedesktop.DBus.NameHasOwner",
                &format!("string:{SECRETS_NAME}"),
            ]),
    )
    .is_some_and(|reply| reply.contains("boolean true"))
}

pub fn ensure_secret_service(keyring_dir: &Path) -> Result<SecretService> {
    if let Ok(address) = std::env::var("DBUS_SESSION_BUS_ADDRESS") {
        if bus_has_secrets(&address) {
            println!("using the Secret Service on this session's bus");
            return Ok(SecretService {
                env: vec![],
                _bus: None,
            });
        }
    }
    println!(
        "no Secret Service is running: starting a session bus and gnome-keyring for this session"
    );
    let passphrase = keyring_passphrase()?;
    let mut bus = cmd("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start dbus-daemon: {e}"))?;
    let mut address = String::new();
    if let Some(stdout) = bus.stdout.take() {
        use std::io::BufRead;
        let _ = std::io::BufReader::new(stdout).read_line(&mut address);
    }
    let address = address.trim().to_owned();
    let bus = Guard {
        name: "dbus-daemon",
        child: bus,
    };
    if address.is_empty() {
        return Err("dbus-daemon did not print its address".into());
    }
    std::fs::create_dir_all(keyring_dir)
        .map_err(|e| format!("cannot create {}: {e}", keyring_dir.display()))?;
    let mut keyring = cmd("gnome-keyring-daemon")
        .args(["--unlock", "--components=secrets"])
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .env("XDG_DATA_HOME", keyring_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start gnome-keyring-daemon: {e}"))?;
    if let Some(mut stdin) = keyring.stdin.take() {
        let _ = stdin.write_all(passphrase.as_bytes());
    }
    let _ = keyring.wait();
    wait_for(|| bus_has_secrets(&address), Duration::from_secs(10)).map_err(|_| {
        "gnome-keyring started but no Secret Service appeared on the bus".to_owned()
    })?;
    println!(
        "Secret Service ready (gnome-keyring, keyring files under {}, encrypted with your passphrase)",
        keyring_dir.display()
    );
    Ok(SecretService {
        env: vec![("DBUS_SESSION_BUS_ADDRESS".into(), address)],
        _bus: Some(bus),
    })
}

/// The passphrase that encrypts the session keyring on disk: from
/// NOTCH_KEYRING_PASSPHRASE, or asked on the terminal. Never a built-in one:
/// that would be a plain-text secret in all but name.
fn keyring_passphrase() -> Result<String> {
    if let Ok(pass) = std::env::var("NOTCH_KEYRING_PASSPHRASE") {
        if !pass.is_empty() {
            return Ok(pass);
        }
    }
    if !std::io::stdin().is_terminal() {
        return Err("no Secret Service is running and there is no terminal to ask for a keyring passphrase: \
                    set NOTCH_KEYRING_PASSPHRASE, or run inside a desktop session"
            .into());
    }
    print!("Passphrase for the session keyring (new or existing): ");
    let _ = std::io::stdout().flush();
    let _ = Command::new("stty")
        .arg("-echo")
        .stdin(Stdio::inherit())
        .status();
    let mut pass = String::new();
    let read = std::io::stdin().read_line(&mut pass);
    let _ = Command::new("stty")
        .arg("echo")
        .stdin(Stdio::inherit())
        .status();
    println!();
    read.map_err(|e| format!("cannot read the passphrase: {e}"))?;
    let pass = pass.trim_end_matches(['\r', '\n']).to_owned();
    if pass.is_empty() {
        return Err("an empty passphrase would leave the keyring unencrypted on disk".into());
    }
    Ok(pass)
}

/// Starts the sandbox gateway binary and waits for its "listening on" line.
/// Its log goes to `<data_dir>/gateway.log`.
pub fn start_gateway(
    bin: &Path,
    data_dir: &Path,
    listen: &str,
    extra: &[&str],
) -> Result<(String, Guard)> {
    use std::io::BufRead;
    let log_path = data_dir.join("gateway.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let mut child = Command::new(bin)
        .args(["--sandbox", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("gateway stdout unavailable")?;
    let mut guard = Guard {
        name: "notch-gateway",
        child,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(std::result::Result::ok)
        {
            if !sent {
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                    sent = true;
                }
            }
            println!("[gateway] {line}");
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(url) => Ok((url, guard)),
        Err(_) => {
            guard.stop();
            Err("the gateway did not report its address within 30 s".into())
        }
    }
}

pub fn bin_path(name: &str) -> PathBuf {
    sh::target_dir().join("debug").join(name)
}
