//! Running commands and timing steps.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub type Result<T = ()> = std::result::Result<T, String>;

/// The repository root.
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Cargo's target directory (honours CARGO_TARGET_DIR).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                root().join(dir)
            }
        }
        _ => root().join("target"),
    }
}

/// Where `cargo install` puts binaries.
pub fn cargo_bin_dir() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    home.join("bin")
}

/// PATH with cargo's bin directory first, so freshly installed tools are found.
pub fn path_env() -> std::ffi::OsString {
    let mut paths = vec![cargo_bin_dir()];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

/// A command that runs from the repository root with our PATH.
pub fn cmd(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    command.current_dir(root()).env("PATH", path_env());
    command
}

/// Runs to completion with inherited output; non-zero exit is an error.
pub fn run(command: &mut Command) -> Result {
    let shown = show(command);
    println!("$ {shown}");
    let status = command
        .status()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

/// Runs quietly and returns stdout, or None if it could not run or failed.
pub fn output(command: &mut Command) -> Option<String> {
    let out = command
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether a program is on our PATH.
pub fn have(program: &str) -> bool {
    std::env::split_paths(&path_env()).any(|dir| dir.join(program).is_file())
}

pub fn show(command: &Command) -> String {
    let mut parts = vec![command.get_program().to_string_lossy().into_owned()];
    parts.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Times named steps and prints what each cost at the end.
pub struct Timer {
    started: Instant,
    steps: Vec<(String, Duration, bool)>,
}

impl Timer {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            steps: Vec::new(),
        }
    }

    pub fn step<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        println!("\n==> {name}");
        let start = Instant::now();
        let result = f();
        let took = start.elapsed();
        println!(
            "<== {name}: {} ({:.1} s)",
            if result.is_ok() { "ok" } else { "FAILED" },
            took.as_secs_f64()
        );
        self.steps.push((name.to_owned(), took, result.is_ok()));
        result
    }

    pub fn summary(&self) {
        if self.steps.is_empty() {
            return;
        }
        println!("\nxtask steps:");
        for (name, took, ok) in &self.steps {
            println!(
                "  {:>8.1} s  {}  {name}",
                took.as_secs_f64(),
                if *ok { "ok    " } else { "FAILED" }
            );
        }
        println!("  {:>8.1} s  total", self.started.elapsed().as_secs_f64());
    }
}
