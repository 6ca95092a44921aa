//! `cargo xtask setup`: install, only when missing, what a fresh Debian
//! machine with just the Rust toolchain needs. Idempotent and quick when
//! everything is there.

use crate::sh::{self, Result, Timer, cmd, output};

/// Debian packages and why each is needed.
const APT_PACKAGES: &[(&str, &str)] = &[
    ("build-essential", "C toolchain for -sys crates"),
    ("pkg-config", "locating system libraries"),
    ("libssl-dev", "TLS for cargo-installed tools"),
    ("libwebkit2gtk-4.1-dev", "Tauri webview"),
    ("libsoup-3.0-dev", "Tauri webview networking"),
    ("librsvg2-dev", "Tauri icons"),
    ("libayatana-appindicator3-dev", "Tauri tray support"),
    ("webkit2gtk-driver", "WebKitWebDriver for end-to-end tests"),
    ("xvfb", "a virtual display for end-to-end tests"),
    ("xauth", "xvfb-run"),
    ("dbus", "session bus for the Secret Service"),
    ("dbus-x11", "dbus-launch for desktop sessions"),
    (
        "gnome-keyring",
        "a real Secret Service (OS keystore) on Linux",
    ),
    ("libsecret-tools", "secret-tool, to inspect the keystore"),
    ("clang", "compiling C for the aarch64-linux-android check"),
    (
        "libc6-dev-arm64-cross",
        "aarch64 libc headers for the Android check",
    ),
    (
        "libjna-java",
        "JNA, which the generated Kotlin bindings call through",
    ),
];

const RUST_TARGETS: &[&str] = &[
    "wasm32-unknown-unknown",
    "aarch64-linux-android",
    "aarch64-apple-ios",
];

/// tauri-driver 2.x drives Tauri 2 apps (3.x is for Tauri 3).
const TAURI_DRIVER_REQ: &str = "^2";
/// cargo-fuzz 0.13 builds with the machine's 1.95 toolchain.
const CARGO_FUZZ_REQ: &str = "^0.13";

pub fn run(timer: &mut Timer) -> Result {
    timer.step("setup: Debian packages", apt_packages)?;
    timer.step("setup: rustup targets", rust_targets)?;
    timer.step("setup: wasm-bindgen-cli", wasm_bindgen_cli)?;
    timer.step("setup: tauri-driver", || {
        cargo_install(
            "tauri-driver",
            |v| v.starts_with("2."),
            &["--version", TAURI_DRIVER_REQ, "--locked"],
        )
    })?;
    timer.step(
        "setup: kotlin-compiler (npm, under target/tools)",
        crate::mobile::install_kotlin_compiler,
    )?;
    Ok(())
}

fn apt_packages() -> Result {
    let mut missing: Vec<&str> = APT_PACKAGES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| {
            let status = output(cmd("dpkg-query").args(["-W", "-f=${Status}", name]));
            status.as_deref() != Some("install ok installed")
        })
        .collect();
    // Node.js runs MyCHIPs's own npm packages in the interop tests. A Node that is already
    // there (Debian's or another packaging that bundles npm) is used as it is: Debian's npm
    // package would conflict with the latter.
    if !sh::have("node") || !sh::have("npm") {
        missing.extend(["nodejs", "npm"]);
    }
    // A JDK (kotlinc and the JVM for the Kotlin bindings test) and Python 3
    // (the Python bindings test), unless some packaging of them is there.
    if !sh::have("javac") || !sh::have("java") {
        missing.push("default-jdk-headless");
    }
    if !sh::have("python3") {
        missing.push("python3");
    }
    // The gateway's integration tests run on PostgreSQL too, each test binary with a
    // throwaway cluster of its own (ADR 8): Debian's server, unless some version of it is
    // installed (its binaries are under /usr/lib/postgresql/<version>/bin).
    match postgres_server_bin() {
        Some(bin) => println!("PostgreSQL server: {}", bin.display()),
        None => missing.push("postgresql"),
    }
    if missing.is_empty() {
        println!("all {} Debian packages are installed", APT_PACKAGES.len());
        return Ok(());
    }
    println!("missing Debian packages:");
    for (name, why) in APT_PACKAGES
        .iter()
        .chain(&[
            ("nodejs", "MyCHIPs interop tests (Node)"),
            ("npm", "MyCHIPs interop tests (npm packages)"),
            (
                "default-jdk-headless",
                "kotlinc and the JVM (Kotlin bindings test)",
            ),
            ("python3", "the Python bindings test"),
            (
                "postgresql",
                "PostgreSQL server for the gateway tests' second backend",
            ),
        ])
        .filter(|(n, _)| missing.contains(n))
    {
        println!("  {name:32} {why}");
    }
    if !sh::have("apt-get") {
        return Err(format!(
            "apt-get not found: install these packages with your system's package manager: {}",
            missing.join(" ")
        ));
    }
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo", "-n"] };
    let apt = |args: &[&str]| {
        let mut all: Vec<&str> = sudo.to_vec();
        all.extend_from_slice(args);
        let mut c = cmd(all[0]);
        c.args(&all[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(std::process::Stdio::null());
        c
    };
    sh::run(&mut apt(&["apt-get", "update", "-q"]))?;
    let mut install = vec!["apt-get", "-y", "-q", "install"];
    install.extend(missing.iter().copied());
    sh::run(&mut apt(&install))
}

/// Binaries a throwaway test cluster needs (`gateway/tests/common/postgres.rs`).
const POSTGRES_SERVER_BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian's layout) that holds the server
/// binaries the gateway tests run, if any.
fn postgres_server_bin() -> Option<std::path::PathBuf> {
    let mut found: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            POSTGRES_SERVER_BINARIES
                .iter()
                .all(|b| bin.join(b).is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    output(cmd("id").arg("-u")).is_some_and(|uid| uid.trim() == "0")
}

fn rust_targets() -> Result {
    let installed =
        output(cmd("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    let missing: Vec<&str> = RUST_TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        println!("rustup targets present: {}", RUST_TARGETS.join(", "));
        return Ok(());
    }
    sh::run(cmd("rustup").args(["target", "add"]).args(&missing))
}

/// cargo-fuzz for `cargo xtask fuzz` and the CI's fuzz step; not part of `run` above, so
/// `cargo xtask run` does not wait for it. Installed only when `cargo fuzz` is missing.
pub fn cargo_fuzz() -> Result {
    if let Some(version) = output(cmd("cargo").args(["fuzz", "--version"])) {
        println!("{} is installed", version.trim());
        return Ok(());
    }
    sh::run(cmd("cargo").args([
        "install",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_REQ,
        "--locked",
    ]))
}

/// Version of a crate installed by `cargo install`, if any.
fn installed_version(krate: &str) -> Option<String> {
    let list = output(cmd("cargo").args(["install", "--list"]))?;
    list.lines().find_map(|line| {
        let rest = line.strip_prefix(krate)?.strip_prefix(" v")?;
        Some(
            rest.trim_end_matches(':')
                .split_whitespace()
                .next()?
                .to_owned(),
        )
    })
}

fn cargo_install(krate: &str, acceptable: impl Fn(&str) -> bool, args: &[&str]) -> Result {
    if let Some(version) = installed_version(krate).filter(|v| acceptable(v)) {
        println!("{krate} {version} is installed");
        return Ok(());
    }
    sh::run(cmd("cargo").args(["install", krate]).args(args))
}

/// The wasm-bindgen version Cargo.lock pins: the CLI must match it exactly.
pub fn locked_wasm_bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(sh::root().join("Cargo.lock"))
        .map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\"" {
            if let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
            {
                return Ok(version.trim_end_matches('"').to_owned());
            }
        }
    }
    Err("Cargo.lock pins no wasm-bindgen".into())
}

fn wasm_bindgen_cli() -> Result {
    let version = locked_wasm_bindgen_version()?;
    let on_path = output(&mut cmd("wasm-bindgen").arg("--version")).unwrap_or_default();
    if on_path.split_whitespace().nth(1) == Some(version.as_str()) {
        println!("wasm-bindgen {version} is installed");
        return Ok(());
    }
    // Its lock file sometimes names a crate version the registry has
    // withdrawn; then install without --locked.
    let locked = sh::run(cmd("cargo").args([
        "install",
        "wasm-bindgen-cli",
        "--version",
        &version,
        "--locked",
    ]));
    if locked.is_err() {
        println!("retrying wasm-bindgen-cli without --locked");
        return sh::run(cmd("cargo").args(["install", "wasm-bindgen-cli", "--version", &version]));
    }
    locked
}
