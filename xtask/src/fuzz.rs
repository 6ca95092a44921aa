//! `cargo xtask fuzz [TARGET] [--secs N] [--out FILE]`: the cargo-fuzz targets in `fuzz/`
//! (one per decoder the wallet or the gateway runs on bytes from outside), each for N seconds
//! (default 60), with the executions, exec/s and crashes per target written to
//! `bench/results/fuzz.md`.
//!
//! cargo-fuzz needs nightly compiler flags (`-Zsanitizer=address`, sancov passes). A fresh
//! machine has only the stable toolchain, so every `cargo fuzz` call runs with
//! `RUSTC_BOOTSTRAP=1`, which lets stable rustc accept them. The address sanitizer runtime
//! ships with the stable std. The fuzz crate is not in the main workspace: it builds into
//! `fuzz/target` with its own lock file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::setup;
use crate::sh::{self, Result, Timer, cmd, output};

const DEFAULT_SECS: u64 = 60;
/// Seconds per target in the CI step: enough to run every seed and a few hundred thousand
/// mutations; the build is the bulk of the step.
pub const SMOKE_SECS: u64 = 5;
/// libFuzzer's per-input limit: a decoder that needs seconds for one input is a bug.
const INPUT_TIMEOUT_SECS: u64 = 10;
const SANITIZER: &str = "address";

const USAGE: &str = "usage: cargo xtask fuzz [TARGET] [--secs N] [--out FILE]";

/// What the targets fuzz, for the report (a target missing here is still run).
const WHAT: &[(&str, &str)] = &[
    (
        "transaction",
        "`Transaction::decode` + round trip + `check_stateless`",
    ),
    (
        "block",
        "`Block::decode` + round trip + `verify_block` + header checks",
    ),
    (
        "block_header",
        "`BlockHeader::decode` + round trip + signature, genesis, link, locator",
    ),
    (
        "address",
        "`Address::parse_any`/`parse`, hex ids and keys (`TxId::from_hex`, ...) + round trips",
    ),
    (
        "api_response",
        "mirror API answers the wallet parses (JSON round trip; headers, blocks, txs inside decoded)",
    ),
    (
        "api_request",
        "requests the gateway parses (JSON bodies, stream messages, query strings)",
    ),
];

/// One target's run.
struct Stats {
    target: String,
    execs: Option<u64>,
    exec_per_sec: Option<u64>,
    new_units: Option<u64>,
    coverage: Option<u64>,
    peak_rss_mb: Option<u64>,
    corpus_at_start: usize,
    crash: Option<String>,
    took: f64,
}

pub fn run(timer: &mut Timer, args: &[String]) -> Result {
    let mut only: Option<String> = None;
    let mut secs = DEFAULT_SECS;
    let mut out: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--secs" => {
                secs = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&n: &u64| n >= 1)
                    .ok_or(format!("--secs needs a whole number of seconds ({USAGE})"))?;
            }
            "--out" => {
                let path = it.next().ok_or(format!("--out needs a file ({USAGE})"))?;
                out = Some(sh::root().join(path));
            }
            name if !name.starts_with('-') && only.is_none() => only = Some(name.to_owned()),
            other => return Err(format!("unexpected argument {other:?} ({USAGE})")),
        }
    }
    timer.step("fuzz: cargo-fuzz", setup::cargo_fuzz)?;
    let targets = select(list_targets()?, only.as_deref())?;
    let start = Instant::now();
    timer.step(
        &format!(
            "fuzz: build {} (release, {SANITIZER} sanitizer)",
            describe(&targets)
        ),
        || build(only.as_deref()),
    )?;
    let build_secs = start.elapsed().as_secs_f64();
    let mut stats = Vec::new();
    for target in &targets {
        // A crash fails its step but not the run: the other targets still run, and the
        // report names every crash.
        let mut stat = None;
        let result = timer.step(&format!("fuzz: {target} for {secs} s"), || {
            let s = run_target(target, secs)?;
            let crash = s.crash.clone();
            stat = Some(s);
            crash.map_or(Ok(()), |path| Err(format!("crashed, input in {path}")))
        });
        match stat {
            Some(s) => stats.push(s),
            None => return result,
        }
    }
    // A run of one target does not replace the report of all of them.
    let out = out.unwrap_or_else(|| match &only {
        None => sh::root().join("bench/results/fuzz.md"),
        Some(t) => sh::target_dir().join(format!("fuzz-{t}.md")),
    });
    let mut reproduce = String::from("cargo xtask fuzz");
    if let Some(t) = &only {
        reproduce.push(' ');
        reproduce.push_str(t);
    }
    reproduce.push_str(&format!(" --secs {secs}"));
    finish(&stats, secs, build_secs, &reproduce, &out)
}

/// The CI step: every target built and run for `secs` seconds, so a target that stops
/// building, or a decoder that crashes on the seeds or soon after, fails the run. The report
/// goes to the target dir (the committed one is from a longer run).
pub fn smoke(secs: u64) -> Result {
    setup::cargo_fuzz()?;
    let targets = list_targets()?;
    let start = Instant::now();
    build(None)?;
    let build_secs = start.elapsed().as_secs_f64();
    println!("fuzz crate build: {build_secs:.1} s");
    let mut stats = Vec::new();
    for target in &targets {
        println!("\n--> fuzz {target} for {secs} s");
        stats.push(run_target(target, secs)?);
    }
    let out = sh::target_dir().join("fuzz-smoke.md");
    finish(
        &stats,
        secs,
        build_secs,
        &format!("cargo xtask fuzz --secs {secs}"),
        &out,
    )
}

fn describe(targets: &[String]) -> String {
    match targets {
        [one] => one.clone(),
        all => format!("{} targets", all.len()),
    }
}

fn select(all: Vec<String>, only: Option<&str>) -> Result<Vec<String>> {
    match only {
        None => Ok(all),
        Some(t) if all.iter().any(|a| a == t) => Ok(vec![t.to_owned()]),
        Some(t) => Err(format!(
            "no fuzz target {t:?}; the targets are: {}",
            all.join(", ")
        )),
    }
}

/// `cargo fuzz` from the repository root, allowed on a stable toolchain.
fn cargo_fuzz() -> Command {
    let mut c = cmd("cargo");
    c.args(["fuzz"]).env("RUSTC_BOOTSTRAP", "1");
    c
}

fn list_targets() -> Result<Vec<String>> {
    let list = output(cargo_fuzz().args(["list", "--fuzz-dir", "fuzz"]))
        .ok_or("`cargo fuzz list` failed (is fuzz/Cargo.toml there?)")?;
    let targets: Vec<String> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        return Err("`cargo fuzz list` names no target".into());
    }
    Ok(targets)
}

fn build(only: Option<&str>) -> Result {
    let mut c = cargo_fuzz();
    c.args(["build", "--fuzz-dir", "fuzz", "--sanitizer", SANITIZER]);
    c.args(only);
    sh::run(&mut c)
}

fn run_target(target: &str, secs: u64) -> Result<Stats> {
    let root = sh::root();
    let corpus = root.join("fuzz/corpus").join(target);
    let seeds = root.join("fuzz/seeds").join(target);
    std::fs::create_dir_all(&corpus)
        .map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
    let corpus_at_start = count_files(&corpus);
    let mut c = cargo_fuzz();
    c.args([
        "run",
        "--fuzz-dir",
        "fuzz",
        "--sanitizer",
        SANITIZER,
        target,
    ])
    .arg(&corpus);
    // New inputs go to the first directory; the committed seeds are only read.
    if seeds.is_dir() {
        c.arg(&seeds);
    }
    c.args([
        "--".to_owned(),
        format!("-max_total_time={secs}"),
        format!("-timeout={INPUT_TIMEOUT_SECS}"),
        "-print_final_stats=1".to_owned(),
    ]);
    let shown = sh::show(&c);
    println!("$ RUSTC_BOOTSTRAP=1 {shown}");
    let start = Instant::now();
    let mut child = c
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    let mut stats = Stats {
        target: target.to_owned(),
        execs: None,
        exec_per_sec: None,
        new_units: None,
        coverage: None,
        peak_rss_mb: None,
        corpus_at_start,
        crash: None,
        took: 0.0,
    };
    let mut done_line: Option<String> = None;
    if let Some(stderr) = child.stderr.take() {
        let mut reader = BufReader::new(stderr);
        let mut raw = Vec::new();
        while reader.read_until(b'\n', &mut raw).unwrap_or(0) > 0 {
            let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
            raw.clear();
            if shown_line(&line) {
                eprintln!("{line}");
            }
            if let Some(v) = stat(&line, "stat::number_of_executed_units:") {
                stats.execs = Some(v);
            } else if let Some(v) = stat(&line, "stat::average_exec_per_sec:") {
                stats.exec_per_sec = Some(v);
            } else if let Some(v) = stat(&line, "stat::new_units_added:") {
                stats.new_units = Some(v);
            } else if let Some(v) = stat(&line, "stat::peak_rss_mb:") {
                stats.peak_rss_mb = Some(v);
            } else if line.starts_with('#') && line.contains("DONE") {
                done_line = Some(line.clone());
            }
            // libFuzzer names the input that crashed, timed out or ran out of memory.
            if let Some(path) = line.split("Test unit written to ").nth(1) {
                stats.crash = Some(relative(path.trim()));
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("`{shown}` did not finish: {e}"))?;
    stats.took = start.elapsed().as_secs_f64();
    // `#123456 DONE cov: 1155 ft: 2052 corp: 93/17Kb lim: 2100 exec/s: 36717 rss: 249Mb`
    if let Some(done) = &done_line {
        let field = |name: &str| {
            let mut words = done.split_whitespace();
            words.find(|w| *w == name)?;
            words.next()?.parse::<u64>().ok()
        };
        stats.coverage = field("cov:");
        stats.exec_per_sec = stats.exec_per_sec.or_else(|| field("exec/s:"));
        stats.execs = stats.execs.or_else(|| {
            done.split_whitespace()
                .next()?
                .trim_start_matches('#')
                .parse()
                .ok()
        });
    }
    match (&stats.crash, status.success()) {
        (Some(path), _) => println!("{target}: CRASH, input saved to {path}"),
        (None, true) => println!(
            "{target}: {} executions, {} exec/s, {} new corpus units, no crash",
            opt(stats.execs),
            opt(stats.exec_per_sec),
            opt(stats.new_units)
        ),
        (None, false) => return Err(format!("`{shown}` failed ({status}) without a crash input")),
    }
    Ok(stats)
}

/// Which libFuzzer lines to echo: not the stream of `NEW`/`REDUCE`/`NEW_FUNC` events nor
/// the recommended dictionary, which make the log long and say little.
fn shown_line(line: &str) -> bool {
    if line.starts_with('#') {
        return ["INITED", "DONE", "pulse"].iter().any(|w| line.contains(w))
            && !line.starts_with("###");
    }
    let event = line.trim_start();
    !(line.starts_with('"') || event.starts_with("NEW_FUNC") || event.starts_with("NEW_PC"))
}

fn stat(line: &str, key: &str) -> Option<u64> {
    line.strip_prefix(key)?.trim().parse().ok()
}

fn relative(path: &str) -> String {
    let p = Path::new(path);
    p.strip_prefix(sh::root())
        .unwrap_or(p)
        .display()
        .to_string()
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.filter_map(|e| e.ok()).count())
}

fn finish(stats: &[Stats], secs: u64, build_secs: f64, reproduce: &str, out: &Path) -> Result {
    let report = report(stats, secs, build_secs, reproduce);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(out, report).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!("\nfuzz report: {}", relative(&out.display().to_string()));
    let crashes: Vec<String> = stats
        .iter()
        .filter_map(|s| {
            s.crash.as_ref().map(|p| {
                format!(
                    "{}: {p} (reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz {} {p})",
                    s.target, s.target
                )
            })
        })
        .collect();
    if crashes.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} fuzz target(s) crashed:\n  {}",
            crashes.len(),
            crashes.join("\n  ")
        ))
    }
}

fn report(stats: &[Stats], secs: u64, build_secs: f64, reproduce: &str) -> String {
    let rustc = output(cmd("rustc").arg("--version")).unwrap_or_default();
    let cargo_fuzz = output(cargo_fuzz().arg("--version")).unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                Some(
                    l.strip_prefix("model name")?
                        .trim_start_matches([' ', '\t', ':'])
                        .to_owned(),
                )
            })
        })
        .unwrap_or_default();
    let mut md = String::new();
    md.push_str("# Fuzz targets\n\n");
    md.push_str(&format!("- date: {}\n", utc_now()));
    // Other work on the machine takes cores from the fuzzer: exec/s scale with what is left.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .map_or_else(String::new, |l| format!(", load average {l} at the end"));
    md.push_str(&format!(
        "- machine: {cores} cores, {cpu}, {}/{}{load}\n",
        std::env::consts::OS,
        std::env::consts::ARCH
    ));
    md.push_str(&format!(
        "- toolchain: {} with `RUSTC_BOOTSTRAP=1`; {}; sanitizer: {SANITIZER}; release build with debug assertions\n",
        rustc.trim(),
        cargo_fuzz.trim()
    ));
    md.push_str(&format!(
        "- build step of this run: {build_secs:.1} s (release build of the fuzz crate and the targets run; a no-op when nothing changed)\n"
    ));
    md.push_str(&format!(
        "- time per target: {secs} s (`-max_total_time={secs}`), one process, starting from `fuzz/seeds/<target>` and the local `fuzz/corpus/<target>`\n"
    ));
    md.push_str(&format!("- reproduce: `{reproduce}`\n\n"));
    md.push_str(
        "| target | what it runs | executions | exec/s | corpus at start | new units | coverage (edges) | peak RSS | crashes |\n",
    );
    md.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for s in stats {
        let what = WHAT
            .iter()
            .find(|(t, _)| *t == s.target)
            .map_or("", |(_, w)| w);
        let crashes = match &s.crash {
            None => "0".to_owned(),
            Some(p) => format!("**1** (`{p}`)"),
        };
        md.push_str(&format!(
            "| `{}` | {what} | {} | {} | {} | {} | {} | {} MB | {crashes} |\n",
            s.target,
            opt(s.execs),
            opt(s.exec_per_sec),
            s.corpus_at_start,
            opt(s.new_units),
            opt(s.coverage),
            opt(s.peak_rss_mb),
        ));
    }
    let total: u64 = stats.iter().filter_map(|s| s.execs).sum();
    let took: f64 = stats.iter().map(|s| s.took).sum();
    md.push_str(&format!(
        "\n{} executions in all, {took:.0} s of fuzzing. libFuzzer stops a target at its first crash, so a target reports at most one; the input is kept in `fuzz/artifacts/<target>/`.\n",
        thousands(total)
    ));
    md
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "?".to_owned(), thousands)
}

fn thousands(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `YYYY-MM-DD HH:MM UTC` from the system clock (days to civil date: H. Hinnant's algorithm).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_lines() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(2_203_030), "2,203,030");
        assert_eq!(
            stat(
                "stat::average_exec_per_sec:     36717",
                "stat::average_exec_per_sec:"
            ),
            Some(36717)
        );
        assert!(shown_line(
            "#4\tINITED cov: 973 ft: 1072 corp: 3/969b exec/s: 0 rss: 37Mb"
        ));
        assert!(!shown_line("#57\tNEW    cov: 980 ft: 1090 corp: 4/1200b"));
        assert!(!shown_line("###### Recommended dictionary. ######"));
        assert!(!shown_line(
            "\tNEW_FUNC[1/1]: 0x55f2 in serde_json::read::error"
        ));
        assert!(!shown_line("\"\\001\\000\" # Uses: 1022"));
        assert!(shown_line(
            "==1234==ERROR: AddressSanitizer: heap-buffer-overflow"
        ));
    }
}
