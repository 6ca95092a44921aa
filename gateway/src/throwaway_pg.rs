//! A throwaway PostgreSQL cluster, for the gateway's tests (`gateway/tests/common`, ADR 8
//! "Tests") and its benchmark (`notch-gateway-bench`): a copy of an `initdb`-made template
//! (made once per PostgreSQL version, kept in the temp dir) on a free 127.0.0.1 port, no Unix
//! socket. When the process that started it ends, however it ends (returns, panics, is
//! killed), a watchdog process that waits on a pipe from it stops the cluster and removes its
//! directory.
//!
//! `initdb` and `postgres` refuse to run as root: as root (CI), every server command runs
//! as the `postgres` user that Debian's package creates (`runuser -u postgres`), and the
//! cluster's directory is that user's.
//!
//! `NOTCH_TEST_PG_BIN` names the directory holding `initdb`, `pg_ctl` and `postgres`; by
//! default the newest `/usr/lib/postgresql/<version>/bin` (Debian), else wherever `pg_ctl` is
//! on PATH. Nothing here is used by the gateway itself.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

const SERVER_BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
/// Bumped when the template's `initdb` options change, so that an old template is not used.
const TEMPLATE_FORMAT: u32 = 1;
/// The superuser `initdb` makes; clients connect as it (trust authentication on loopback:
/// the cluster lives as long as one process).
pub const SUPERUSER: &str = "postgres";

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
pub fn server_bin_dir() -> Result<PathBuf, String> {
    let complete = |dir: &Path| SERVER_BINARIES.iter().all(|b| dir.join(b).is_file());
    if let Some(dir) = std::env::var_os("NOTCH_TEST_PG_BIN").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if complete(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "NOTCH_TEST_PG_BIN={} lacks one of {}",
                dir.display(),
                SERVER_BINARIES.join(", ")
            ))
        };
    }
    // Debian: /usr/lib/postgresql/<major>/bin; the newest major version that is complete.
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            complete(&bin).then_some((major, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Ok(bin);
    }
    if let Some(dir) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|d| complete(d))
    {
        return Ok(dir);
    }
    Err(format!(
        "no PostgreSQL server binaries ({}) in /usr/lib/postgresql/<version>/bin or on PATH",
        SERVER_BINARIES.join(", ")
    ))
}

/// A running throwaway cluster; stopped and removed when this process ends (or when the
/// value is dropped, which closes the watchdog's pipe).
pub struct Cluster {
    /// The directory of the server binaries (`psql`, `createdb` beside them).
    pub bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    /// The write end of the watchdog's stdin: it closes when this process ends, however it
    /// ends, and the watchdog then stops the cluster and removes its directory.
    _watchdog: Mutex<ChildStdin>,
}

/// Who runs the server commands: as root, the `postgres` user (its uid and gid).
struct RunAs {
    user: Option<(u32, u32)>,
}

impl RunAs {
    fn find() -> Result<RunAs, String> {
        let id = |args: &[&str]| -> Option<u32> {
            let out = Command::new("id").args(args).output().ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())?
        };
        if id(&["-u"]) != Some(0) {
            return Ok(RunAs { user: None });
        }
        match (id(&["-u", SUPERUSER]), id(&["-g", SUPERUSER])) {
            (Some(uid), Some(gid)) => Ok(RunAs {
                user: Some((uid, gid)),
            }),
            _ => Err(format!(
                "running as root, where initdb refuses to run, and there is no {SUPERUSER:?} \
                 user to run it as (Debian's postgresql package creates one)"
            )),
        }
    }

    /// `program` as the server's user.
    fn command(&self, program: &Path) -> Command {
        let mut c = match self.user {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", SUPERUSER, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        c.stdin(Stdio::null());
        c
    }

    /// Makes `dir` the server user's.
    fn own(&self, dir: &Path) -> Result<(), String> {
        if let Some((uid, gid)) = self.user {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        Ok(())
    }
}

fn run(c: &mut Command, what: &str) -> Result<String, String> {
    let out = c
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", c.get_program()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn create_dir(dir: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // The umask may have taken bits away.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))
}

impl Cluster {
    /// A cluster for tests: `fsync` off (what the tests kill is a gateway, never the
    /// machine).
    pub fn start(bin: PathBuf) -> Result<Cluster, String> {
        Cluster::start_with(bin, false)
    }

    /// `durable`: PostgreSQL's defaults (`fsync`, full page writes), for a benchmark that
    /// compares it with SQLite's `synchronous=full`; else `fsync=off`.
    pub fn start_with(bin: PathBuf, durable: bool) -> Result<Cluster, String> {
        let started = Instant::now();
        let who = RunAs::find()?;
        let me = std::process::id();
        let uid = match who.user {
            Some(_) => "root".to_owned(),
            None => run(Command::new("id").arg("-u"), "id -u")?
                .trim()
                .to_owned(),
        };
        // The server user (postgres) must be able to reach its directories: under the temp
        // dir, where every user may; a checkout under /root may not be reachable.
        let base = std::env::temp_dir().join(format!("notch-gateway-pg-{uid}"));
        create_dir(&base, 0o755)?;
        sweep_stale(&base, &bin, &who);
        let template = template(&base, &bin, &who)?;
        let dir = base.join(format!("run-{me}"));
        if dir.exists() {
            // A process of our pid that is gone left it.
            stop(&bin, &who, &dir.join("data"));
            let _ = std::fs::remove_dir_all(&dir);
        }
        create_dir(&dir, 0o700)?;
        who.own(&dir)?;
        let data = dir.join("data");
        // The watchdog first, so that nothing below is left behind if this fails half-way.
        let watchdog = watchdog(&bin, &who, &dir)?;
        // As root, cp -a keeps the postgres user as owner.
        run(
            who.command(Path::new("cp"))
                .arg("-a")
                .arg(template.join("data"))
                .arg(&data),
            "copying the template cluster",
        )?;
        let log = dir.join("server.log");
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let durability = if durable {
                ""
            } else {
                " -c fsync=off -c full_page_writes=off"
            };
            let options = format!(
                "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' \
                 -c max_connections=400{durability}"
            );
            let result = run(
                who.command(&bin.join("pg_ctl"))
                    .args(["start", "-w", "-t", "60", "-s", "-D"])
                    .arg(&data)
                    .arg("-l")
                    .arg(&log)
                    .args(["-o", &options])
                    .current_dir(&dir),
                "pg_ctl start",
            );
            match result {
                Ok(_) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "throwaway PostgreSQL cluster on 127.0.0.1:{port} in {} ({:.1} s, {})",
                        dir.display(),
                        started.elapsed().as_secs_f64(),
                        bin.display()
                    );
                    return Ok(Cluster {
                        bin,
                        port,
                        dir,
                        _watchdog: Mutex::new(watchdog),
                    });
                }
                // Most likely someone took the port meanwhile: another one.
                Err(e) => {
                    let server_log = std::fs::read_to_string(&log).unwrap_or_default();
                    last_error = format!("{e}\nserver log {}:\n{server_log}", log.display());
                }
            }
        }
        Err(last_error)
    }

    /// Creates an empty database `name` (letters, digits and `_`); its URL, as the
    /// superuser (trust authentication on loopback).
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("not a plain database name: {name:?}"));
        }
        run(
            Command::new(self.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", SUPERUSER, name])
                .stdin(Stdio::null()),
            "createdb",
        )?;
        Ok(format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{name}",
            self.port
        ))
    }

    /// The server's main process (the postmaster), whose children are its backends.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid")).ok()?;
        pid.lines().next()?.trim().parse().ok()
    }
}

/// The `initdb`-made cluster that each test binary copies (initdb takes about 1.4 s, a copy
/// a tenth of that), made once per PostgreSQL version; made aside and renamed into place, so
/// that test binaries running at once never see half of one.
fn template(base: &Path, bin: &Path, who: &RunAs) -> Result<PathBuf, String> {
    let version = run(
        Command::new(bin.join("pg_ctl")).arg("--version"),
        "pg_ctl --version",
    )?;
    let key: String = version
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let template = base.join(format!("template-{TEMPLATE_FORMAT}-{key}"));
    if template.join("data").join("PG_VERSION").is_file() {
        return Ok(template);
    }
    let making = base.join(format!("making-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&making);
    create_dir(&making, 0o700)?;
    who.own(&making)?;
    let made = run(
        who.command(&bin.join("initdb"))
            .arg("-D")
            .arg(making.join("data"))
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .current_dir(&making),
        "initdb",
    );
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&making);
        return Err(e);
    }
    // Another test binary may have been quicker: then its template is as good.
    if std::fs::rename(&making, &template).is_err() {
        let _ = std::fs::remove_dir_all(&making);
    }
    if template.join("data").join("PG_VERSION").is_file() {
        Ok(template)
    } else {
        Err(format!("no template cluster in {}", template.display()))
    }
}

/// A free loopback port (free now: the server binds it a moment later).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

/// A shell that waits for its stdin to close (this process ending, however it ends), then
/// stops the cluster in `dir` and removes the directory. It ignores SIGINT and SIGHUP, so
/// that a Ctrl-C of the test run reaches the cleanup too.
fn watchdog(bin: &Path, who: &RunAs, dir: &Path) -> Result<ChildStdin, String> {
    let script = r#"trap '' INT HUP
read _ignored
if [ -f "$2/data/postmaster.pid" ]; then
  if [ -n "$4" ]; then
    runuser -u "$4" -- "$1" stop -D "$2/data" -m immediate -s -w -t 30
  else
    "$1" stop -D "$2/data" -m immediate -s -w -t 30
  fi
fi
rm -rf "$2"
"#;
    let user = if who.user.is_some() { SUPERUSER } else { "" };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("notch-pg-watchdog")
        .arg(bin.join("pg_ctl"))
        .arg(dir)
        .arg("")
        .arg(user)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the cluster's watchdog: {e}"))?;
    child
        .stdin
        .take()
        .ok_or_else(|| "the watchdog has no stdin".to_owned())
}

/// Stops the server of a data dir, if one runs there.
fn stop(bin: &Path, who: &RunAs, data: &Path) {
    if data.join("postmaster.pid").is_file() {
        let _ = run(
            who.command(&bin.join("pg_ctl"))
                .args(["stop", "-m", "immediate", "-s", "-w", "-t", "30", "-D"])
                .arg(data)
                .current_dir("/"),
            "pg_ctl stop",
        );
    }
}

/// Clusters of test binaries that are gone and whose watchdog did not clean up (it was
/// killed too): stopped and removed. Linux only (it asks /proc whether the pid lives).
fn sweep_stale(base: &Path, bin: &Path, who: &RunAs) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("run-").or_else(|| n.strip_prefix("making-")))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        stop(bin, who, &e.path().join("data"));
        let _ = std::fs::remove_dir_all(e.path());
    }
}
