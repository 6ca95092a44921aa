//! `cargo xtask bench mobile-size`: the size of the release library for
//! aarch64-linux-android, linked without the Android NDK (there is none here).
//!
//! What stands in for the NDK, and why it is fair for a size:
//! - **Compiler and linker:** Debian's clang as the linker driver
//!   (`--target=aarch64-linux-android`) with the Rust toolchain's own lld
//!   (`gcc-ld/ld.lld`); the C code (SQLite, ring, aws-lc) compiled by clang for the
//!   same target, with Debian's aarch64 glibc headers in place of bionic's, as the
//!   target check does.
//! - **System libraries** (`libc`, `libm`, `libdl`, `liblog`): on a phone they come from
//!   the system and are never in the app's library; they are empty stub `.so` files here,
//!   with those sonames, only so that the link records them as needed and leaves their
//!   symbols to the loader.
//! - **The unwinder:** not a system library on Android (the NDK links LLVM's
//!   libunwind.a into each library); an empty stub would leave it out and make the figure
//!   too small. `bench/mobile-size/unwind/` builds the pure-Rust `unwinding` crate as
//!   `libunwind.a` in its place; its share is measured on a small probe library and
//!   reported beside the total.
//!
//! The library is built with the mobile release profile (`opt-level = "z"`, fat LTO, one
//! codegen unit, stripped), checked to be an ELF aarch64 shared object exporting the
//! uniffi symbols, and written to bench/results/mobile-size.md with its gzip size.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sh::{self, Result, cmd};

const TARGET: &str = "aarch64-linux-android";
/// clang's target, without an API level, as the target check has it (with one, aws-lc
/// reads Android's system properties through a header only the NDK has).
const CLANG_TARGET: &str = "--target=aarch64-linux-android";
/// The system libraries Rust's std and the crates ask for on Android.
const SYSTEM_LIBS: [&str; 4] = ["log", "dl", "m", "c"];

pub fn run() -> Result {
    let started = std::time::Instant::now();
    for tool in ["clang", "readelf", "file", "gzip"] {
        if !sh::have(tool) {
            return Err(format!(
                "{tool} is not installed (cargo xtask setup installs clang; readelf: binutils)"
            ));
        }
    }
    let work = sh::target_dir().join("mobile-size");
    let lld = lld()?;
    let stubs = stubs(&work, &lld)?;
    let unwind = unwinder(&work)?;
    let rustflags = rustflags(&lld, &stubs, &unwind);

    // The cdylib only (the crate also declares lib and staticlib: not needed here, and
    // each would run LTO again).
    let mut build = cmd("cargo");
    build
        .args([
            "rustc",
            "-p",
            "notch-mobile",
            "--lib",
            "--crate-type",
            "cdylib",
            "--profile",
            "mobile-release",
            "--target",
            TARGET,
        ])
        .env("CC_aarch64_linux_android", "clang")
        .env("CFLAGS_aarch64_linux_android", c_flags())
        .env("CARGO_TARGET_AARCH64_LINUX_ANDROID_LINKER", "clang")
        .env("CARGO_TARGET_AARCH64_LINUX_ANDROID_RUSTFLAGS", &rustflags);
    sh::run(&mut build)?;
    let so = sh::target_dir()
        .join(TARGET)
        .join("mobile-release")
        .join("libnotch_mobile.so");
    let checked = check(&so)?;

    // The unwinder's share: a probe library (std, a caught panic) linked with the
    // stand-in and with an empty stub in its place.
    let probe_with = probe(&work, &lld, &stubs, Some(&unwind))?;
    let probe_without = probe(&work, &lld, &stubs, None)?;
    let unwinder_share = probe_with.saturating_sub(probe_without);

    let size = file_size(&so)?;
    let gzip9 = gzip_size(&so, "-9")?;
    let gzip6 = gzip_size(&so, "-6")?;
    let report = report(&Figures {
        size,
        gzip9,
        gzip6,
        unwinder_share,
        checked,
        seconds: started.elapsed().as_secs_f64(),
    });
    let out = sh::root().join("bench/results/mobile-size.md");
    std::fs::write(&out, report).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}

/// The C flags of the target check (xtask test mobile): Debian's aarch64 glibc headers
/// stand in for bionic's.
fn c_flags() -> String {
    format!(
        "{} --sysroot=/usr/aarch64-linux-gnu -D_GNU_SOURCE",
        CLANG_TARGET
    )
}

/// The Rust toolchain's lld, in the form a `cc`-style driver calls (`gcc-ld/ld.lld`).
fn lld() -> Result<PathBuf> {
    let sysroot = sh::output(Command::new("rustc").args(["--print", "sysroot"]))
        .ok_or("cannot run rustc --print sysroot")?;
    let version = sh::output(Command::new("rustc").arg("-vV")).ok_or("cannot run rustc -vV")?;
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .ok_or("rustc -vV names no host")?;
    let lld = PathBuf::from(sysroot.trim())
        .join("lib/rustlib")
        .join(host.trim())
        .join("bin/gcc-ld/ld.lld");
    if lld.is_file() {
        Ok(lld)
    } else {
        Err(format!(
            "{} is missing: the Rust toolchain's lld (rustup component llvm-tools is not needed; \
             it ships with rustc)",
            lld.display()
        ))
    }
}

fn clang_link(lld: &Path) -> Command {
    let mut c = Command::new("clang");
    c.args([CLANG_TARGET, "-fuse-ld=lld", "-nostdlib"])
        .arg(format!("--ld-path={}", lld.display()));
    c
}

/// Empty shared libraries named as Android's system libraries: they satisfy the link
/// and give the output its DT_NEEDED entries, nothing else (on a phone the real ones are
/// the system's).
fn stubs(work: &Path, lld: &Path) -> Result<PathBuf> {
    let dir = work.join("stubs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let empty = dir.join("empty.c");
    std::fs::write(&empty, "/* nothing: see xtask/src/mobile_size.rs */\n")
        .map_err(|e| format!("cannot write {}: {e}", empty.display()))?;
    for lib in SYSTEM_LIBS {
        let name = format!("lib{lib}.so");
        sh::run(
            clang_link(lld)
                .args(["-shared", &format!("-Wl,-soname,{name}"), "-o"])
                .arg(dir.join(&name))
                .arg(&empty),
        )?;
    }
    Ok(dir)
}

/// Builds the stand-in unwinder (bench/mobile-size/unwind) and returns the directory
/// holding its libunwind.a.
fn unwinder(work: &Path) -> Result<PathBuf> {
    let build_dir = work.join("unwind-build");
    sh::run(
        cmd("cargo")
            .args([
                "build",
                "--release",
                "--locked",
                "--manifest-path",
                "bench/mobile-size/unwind/Cargo.toml",
                "--target",
                TARGET,
            ])
            .env("CARGO_TARGET_DIR", &build_dir),
    )?;
    let built = build_dir.join(TARGET).join("release").join("libunwind.a");
    let dir = work.join("unwind");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::copy(&built, dir.join("libunwind.a"))
        .map_err(|e| format!("cannot copy {}: {e}", built.display()))?;
    Ok(dir)
}

/// The link settings for the target: clang drives rust's lld; no start files or default
/// libraries of the host; the stubs named after `--no-as-needed` so that each stays a
/// DT_NEEDED entry as on a phone (where libc, libm and libdl are always needed, and
/// liblog by std); the stand-in unwinder found by `-lunwind`.
fn rustflags(lld: &Path, stubs: &Path, unwind: &Path) -> String {
    let mut flags = vec![
        format!("-C link-arg={CLANG_TARGET}"),
        "-C link-arg=-fuse-ld=lld".to_owned(),
        format!("-C link-arg=--ld-path={}", lld.display()),
        "-C link-arg=-nostdlib".to_owned(),
        "-C link-arg=-Wl,--no-as-needed".to_owned(),
    ];
    for lib in SYSTEM_LIBS {
        flags.push(format!(
            "-C link-arg={}",
            stubs.join(format!("lib{lib}.so")).display()
        ));
    }
    flags.push(format!("-L native={}", stubs.display()));
    flags.push(format!("-L native={}", unwind.display()));
    flags.join(" ")
}

/// What was checked of the built library.
struct Checked {
    file: String,
    needed: Vec<String>,
    uniffi_exports: usize,
    exports: usize,
    undefined: Vec<String>,
}

fn check(so: &Path) -> Result<Checked> {
    let file = sh::output(Command::new("file").arg("-b").arg(so))
        .ok_or_else(|| format!("cannot run file on {}", so.display()))?
        .trim()
        .to_owned();
    if !(file.starts_with("ELF 64-bit LSB shared object") && file.contains("ARM aarch64")) {
        return Err(format!(
            "{} is not an aarch64 shared object: {file}",
            so.display()
        ));
    }
    let dynamic =
        sh::output(Command::new("readelf").arg("-dW").arg(so)).ok_or("cannot run readelf -d")?;
    let needed: Vec<String> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            let start = l.find('[')?;
            let end = l.rfind(']')?;
            l.get(start + 1..end).map(str::to_owned)
        })
        .collect();
    let symbols = sh::output(Command::new("readelf").args(["--dyn-syms", "-W"]).arg(so))
        .ok_or("cannot run readelf --dyn-syms")?;
    let mut exports = 0;
    let mut uniffi_exports = 0;
    let mut undefined = Vec::new();
    for line in symbols.lines() {
        // Num: Value Size Type Bind Vis Ndx Name
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(bind), Some(ndx), Some(name)) = (cols.get(4), cols.get(6), cols.get(7)) else {
            continue;
        };
        if *ndx == "UND" {
            if !name.is_empty() {
                undefined.push((*name).to_owned());
            }
        } else if *bind == "GLOBAL" && cols.get(3) == Some(&"FUNC") {
            exports += 1;
            if name.starts_with("uniffi_notch_mobile_") || name.starts_with("ffi_notch_mobile_") {
                uniffi_exports += 1;
            }
        }
    }
    if uniffi_exports == 0 {
        return Err(format!("{} exports no uniffi symbols", so.display()));
    }
    if let Some(unwind) = undefined.iter().find(|s| s.starts_with("_Unwind_")) {
        return Err(format!(
            "{unwind} is undefined: the stand-in unwinder was not linked"
        ));
    }
    undefined.sort();
    Ok(Checked {
        file,
        needed,
        uniffi_exports,
        exports,
        undefined,
    })
}

/// A small library with std and a caught panic, linked with the stand-in unwinder (or an
/// empty stub in its place); its stripped size.
fn probe(work: &Path, lld: &Path, stubs: &Path, unwind: Option<&Path>) -> Result<u64> {
    let dir = work.join("probe");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let source = dir.join("probe.rs");
    std::fs::write(
        &source,
        "#[unsafe(no_mangle)]\npub extern \"C\" fn probe(x: u32) -> u32 {\n    \
         std::panic::catch_unwind(|| if x == 7 { panic!(\"seven\") } else { x }).unwrap_or(0)\n}\n",
    )
    .map_err(|e| format!("cannot write {}: {e}", source.display()))?;
    let (libs, out) = match unwind {
        Some(dir) => (dir.to_path_buf(), work.join("probe/with.so")),
        None => {
            let empty = work.join("probe/empty-unwind");
            std::fs::create_dir_all(&empty)
                .map_err(|e| format!("cannot create {}: {e}", empty.display()))?;
            sh::run(
                clang_link(lld)
                    .args(["-shared", "-Wl,-soname,libunwind.so", "-o"])
                    .arg(empty.join("libunwind.so"))
                    .arg(stubs.join("empty.c")),
            )?;
            (empty, work.join("probe/without.so"))
        }
    };
    let mut rustc = Command::new("rustc");
    rustc
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "cdylib",
            "--target",
            TARGET,
        ])
        .args([
            "-C",
            "opt-level=z",
            "-C",
            "lto=fat",
            "-C",
            "codegen-units=1",
            "-C",
            "strip=symbols",
        ])
        .args(["-C", "linker=clang"]);
    for flag in rustflags(lld, stubs, &libs)
        .split(' ')
        .collect::<Vec<_>>()
        .chunks(2)
    {
        rustc.args(flag);
    }
    rustc.arg(&source).arg("-o").arg(&out);
    sh::run(&mut rustc)?;
    file_size(&out)
}

fn file_size(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn gzip_size(path: &Path, level: &str) -> Result<u64> {
    let out = Command::new("gzip")
        .args([level, "-c"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run gzip: {e}"))?;
    if !out.status.success() {
        return Err(format!("gzip {level} failed on {}", path.display()));
    }
    Ok(out.stdout.len() as u64)
}

struct Figures {
    size: u64,
    gzip9: u64,
    gzip6: u64,
    unwinder_share: u64,
    checked: Checked,
    seconds: f64,
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn grouped(n: u64) -> String {
    let text = n.to_string();
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i > 0 && (text.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn quiet(program: &str, args: &[&str]) -> String {
    sh::output(Command::new(program).args(args))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "?".to_owned())
}

fn report(f: &Figures) -> String {
    let date = quiet("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let cores = quiet("nproc", &[]);
    let rustc = quiet("rustc", &["--version"]);
    let clang = quiet("clang", &["--version"]);
    let clang = clang.lines().next().unwrap_or("?");
    let c = &f.checked;
    // Names that bionic does not export (glibc's): what compiling the C against glibc's
    // headers left in. A real NDK build names bionic's instead.
    let glibc_only: Vec<&str> = c
        .undefined
        .iter()
        .map(String::as_str)
        .filter(|s| {
            s.starts_with("__isoc99_")
                || s.starts_with("__isoc23_")
                || *s == "__errno_location"
                || s.starts_with("__ctype_")
                || (s.ends_with("_chk") && *s != "__stack_chk_fail")
                || s.starts_with("__libc_")
                || s.starts_with("__xstat")
                || s.starts_with("__fxstat")
                || s.starts_with("__lxstat")
        })
        .collect();
    let glibc_note = if glibc_only.is_empty() {
        "none of the usual glibc-only names (`__errno_location`, `__isoc99_*`, `__ctype_*_loc`, `*_chk`)".to_owned()
    } else {
        format!("`{}`", glibc_only.join("`, `"))
    };
    format!(
        "# Release library size for Android (aarch64-linux-android)\n\
         \n\
         - date: {date}\n\
         - machine: {cores} cores (nproc), linux/x86_64; {rustc}; {clang}\n\
         - build: `cargo rustc -p notch-mobile --lib --crate-type cdylib --profile mobile-release --target {TARGET}` \
         (profile mobile-release: opt-level \"z\", fat LTO, 1 codegen unit, stripped; panics unwind)\n\
         - run time: {secs:.0} s, with whatever cargo had to build (from nothing it took 6.5 min here, \
         the machine shared with other builds)\n\
         - reproduce: `cargo xtask bench mobile-size` (xtask/src/mobile_size.rs)\n\
         \n\
         | what | bytes | |\n\
         | --- | --- | --- |\n\
         | `libnotch_mobile.so`, stripped | **{size}** | {size_mib} |\n\
         | gzip -9 of it (about what a compressed APK entry, deflate, carries) | **{gz9}** | {gz9_mib} |\n\
         | gzip -6 of it (zip's default level) | {gz6} | {gz6_mib} |\n\
         | of the .so: the stand-in unwinder's share (probe library linked with it and without) | {uw} | {uw_kib} |\n\
         \n\
         An app built with a current Android Gradle Plugin and minSdk 23 or more stores native\n\
         libraries uncompressed in the APK (page-aligned, loaded in place): then the APK carries\n\
         the .so size. With `useLegacyPackaging` (or minSdk below 23) they are deflated: about\n\
         the gzip size. Store downloads (app bundles) are compressed either way.\n\
         \n\
         ## What was checked\n\
         \n\
         - `file`: {file}\n\
         - `readelf -d`, needed: {needed}\n\
         - exported functions: {exports}, of them uniffi's (`uniffi_notch_mobile_*`, `ffi_notch_mobile_*`): {uniffi}\n\
         - undefined symbols left to the loader: {undef} (libc, libm, libdl, liblog functions); \
         no `_Unwind_*` among them\n\
         - of those, names bionic does not have: {glibc}\n\
         \n\
         ## How it was linked without the NDK (and what that changes)\n\
         \n\
         There is no Android NDK on this machine. The library was linked with Debian's clang as\n\
         the driver (`{CLANG_TARGET} -fuse-ld=lld -nostdlib`) and the Rust toolchain's own lld\n\
         (`gcc-ld/ld.lld`); the C code in it (bundled SQLite, ring, aws-lc) was compiled by\n\
         clang for the same target with Debian's aarch64 glibc headers (`libc6-dev-arm64-cross`)\n\
         in place of bionic's, as `cargo xtask test mobile` checks it.\n\
         \n\
         - **libc, libm, libdl, liblog are empty stub `.so` files**, with those sonames, made only\n\
         to satisfy the link: on a phone these libraries are the system's and are not part of\n\
         the app's library. Their functions stay undefined in the .so (bound by the loader), so\n\
         the stubs add nothing to the size; they give the DT_NEEDED entries above.\n\
         - **The unwinder is not a system library on Android**: the NDK links LLVM's libunwind.a\n\
         into each library, so it belongs in the figure. It stands in here as the pure-Rust\n\
         `unwinding` crate built as libunwind.a (`bench/mobile-size/unwind/`); its share is in\n\
         the table, so the figure with the NDK's libunwind instead is the total minus that share\n\
         plus LLVM libunwind's code (of the same order: tens of KiB).\n\
         - No crtbegin_so.o/crtend_so.o (the NDK's start files for a shared library: a few\n\
         hundred bytes).\n\
         - Compiled against glibc's headers, the C code may name a few glibc symbols (listed\n\
         above) that bionic lacks, and sizes of the C parts may differ slightly from a build\n\
         against bionic's headers; compiled without an API level (as the target check is),\n\
         aws-lc leaves out its read of Android's system properties (a header only the NDK has). This library is for measuring, not for a phone: build the\n\
         shipped one with the NDK (`cargo ndk`, mobile-bindings/README.md).\n",
        secs = f.seconds,
        size = grouped(f.size),
        size_mib = mib(f.size),
        gz9 = grouped(f.gzip9),
        gz9_mib = mib(f.gzip9),
        gz6 = grouped(f.gzip6),
        gz6_mib = mib(f.gzip6),
        uw = grouped(f.unwinder_share),
        uw_kib = kib(f.unwinder_share),
        file = c.file,
        needed = c.needed.join(", "),
        exports = c.exports,
        uniffi = c.uniffi_exports,
        undef = c.undefined.len(),
        glibc = glibc_note,
    )
}
