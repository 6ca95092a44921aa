//! The mobile bindings (`mobile-bindings/`, crate notch-mobile): generating
//! the Kotlin, Swift and Python sources with the crate's own uniffi-bindgen
//! (library mode, from the built cdylib), checking that the checked-in ones
//! are what it generates, and running the Python and Kotlin tests against a
//! real sandbox gateway (the Python one also with the `notch` CLI as a tally
//! partner, in a session with a Secret Service).

use std::path::{Path, PathBuf};

use crate::sh::{self, Result, cmd};

/// The languages generated, each into `mobile-bindings/bindings/<lang>`.
const LANGUAGES: &[&str] = &["kotlin", "swift", "python"];

/// kotlin-compiler from the npm registry (kotlinc and
/// kotlinx-coroutines-core-jvm.jar), installed under target/tools/kotlin.
pub const KOTLIN_COMPILER_VERSION: &str = "2.4.20";

/// JNA from Debian's libjna-java.
const JNA_JAR: &str = "/usr/share/java/jna.jar";

fn bindings_dir() -> PathBuf {
    sh::root().join("mobile-bindings").join("bindings")
}

fn library() -> PathBuf {
    sh::target_dir().join("debug").join("libnotch_mobile.so")
}

fn kotlin_home() -> PathBuf {
    sh::target_dir()
        .join("tools")
        .join("kotlin")
        .join("node_modules")
        .join("kotlin-compiler")
}

/// Builds the cdylib and the generator, in the same build (and feature set)
/// as the workspace's binaries.
fn build_library_and_generator() -> Result {
    crate::test::build_binaries()
}

/// Generates every language into `out/<lang>`.
fn generate_into(out: &Path) -> Result {
    let generator = sh::target_dir().join("debug").join("uniffi-bindgen");
    let lib = library();
    for language in LANGUAGES {
        let dir = out.join(language);
        let _ = std::fs::remove_dir_all(&dir);
        sh::run(
            cmd(&generator)
                .args(["generate", "--library"])
                .arg(&lib)
                .args(["--language", language, "--no-format", "--out-dir"])
                .arg(&dir),
        )?;
    }
    Ok(())
}

/// `cargo xtask bindings`: regenerates the checked-in sources.
pub fn regenerate() -> Result {
    build_library_and_generator()?;
    generate_into(&bindings_dir())?;
    println!("generated into {}", bindings_dir().display());
    Ok(())
}

/// Fails if regenerating the bindings would change anything checked in.
pub fn check_generated() -> Result {
    build_library_and_generator()?;
    let fresh = sh::target_dir().join("mobile-bindings-check");
    let _ = std::fs::remove_dir_all(&fresh);
    generate_into(&fresh)?;
    let mut differences = Vec::new();
    for language in LANGUAGES {
        compare(
            &bindings_dir().join(language),
            &fresh.join(language),
            Path::new(language),
            &mut differences,
        );
    }
    if differences.is_empty() {
        println!("the checked-in bindings are what uniffi-bindgen generates");
        return Ok(());
    }
    for d in &differences {
        println!("  {d}");
    }
    Err(format!(
        "the checked-in bindings in mobile-bindings/bindings differ from what the library generates \
         ({} files); run `cargo xtask bindings` and commit the result",
        differences.len()
    ))
}

/// Every file under `a` or `b` (relative `rel`) that is missing on one side
/// or differs.
fn compare(a: &Path, b: &Path, rel: &Path, out: &mut Vec<String>) {
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let (in_a, in_b) = (names(a), names(b));
    for name in in_a.iter().chain(in_b.iter().filter(|n| !in_a.contains(n))) {
        let (pa, pb, shown) = (a.join(name), b.join(name), rel.join(name));
        match (pa.is_dir(), pb.is_dir()) {
            (true, true) => compare(&pa, &pb, &shown, out),
            _ => match (std::fs::read(&pa), std::fs::read(&pb)) {
                (Ok(x), Ok(y)) if x == y => {}
                (Ok(_), Ok(_)) => out.push(format!("changed: {}", shown.display())),
                (Ok(_), Err(_)) => out.push(format!("no longer generated: {}", shown.display())),
                (Err(_), Ok(_)) => out.push(format!("not checked in: {}", shown.display())),
                (Err(_), Err(_)) => out.push(format!("unreadable: {}", shown.display())),
            },
        }
    }
}

fn build_gateway() -> Result {
    sh::run(cmd("cargo").args(["build", "-p", "notch-gateway", "--bin", "notch-gateway"]))
}

/// The Python test: the generated module with the built library, a real
/// sandbox gateway, and the `notch` CLI as a tally partner. The CLI's
/// processes share their wallet's seed through the OS keystore, so the test
/// runs in a throwaway session bus with gnome-keyring unlocked by a test
/// passphrase (its keyring files under target/, as the keystore tests do).
pub fn python_tests() -> Result {
    build_library_and_generator()?;
    build_gateway()?;
    let home = sh::target_dir().join("mobile-python-keyring-home");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
    let script = "printf 'notch-test' | gnome-keyring-daemon --unlock --components=secrets >/dev/null && \
                  exec python3 \"$0\"";
    let debug = sh::target_dir().join("debug");
    sh::run(
        cmd("dbus-run-session")
            .args(["--", "sh", "-c", script])
            .arg(sh::root().join("tests/mobile/python/test_bindings.py"))
            .env("XDG_DATA_HOME", &home)
            .env("NOTCH_MOBILE_LIB", library())
            .env("NOTCH_GATEWAY", debug.join("notch-gateway"))
            .env("NOTCH_CLI", debug.join("notch")),
    )
}

/// The Kotlin test: kotlinc compiles the generated sources and the test
/// program against JNA and kotlinx-coroutines; the JVM runs it with the
/// built library.
pub fn kotlin_tests() -> Result {
    build_library_and_generator()?;
    build_gateway()?;
    let home = kotlin_home();
    let coroutines = home.join("lib").join("kotlinx-coroutines-core-jvm.jar");
    let stdlib = home.join("lib").join("kotlin-stdlib.jar");
    for needed in [Path::new(JNA_JAR), &coroutines, &stdlib] {
        if !needed.is_file() {
            return Err(format!(
                "{} is missing: run `cargo xtask setup`",
                needed.display()
            ));
        }
    }
    let out = sh::target_dir().join("mobile-kotlin");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let jar = out.join("bindings-test.jar");
    let classpath = |extra: &[&Path]| -> std::ffi::OsString {
        let mut all: Vec<PathBuf> = extra.iter().map(|p| p.to_path_buf()).collect();
        all.extend([PathBuf::from(JNA_JAR), coroutines.clone()]);
        std::env::join_paths(all).unwrap_or_default()
    };
    sh::run(
        cmd(home.join("bin").join("kotlinc"))
            .args(["-J-Xmx2g", "-nowarn", "-cp"])
            .arg(classpath(&[]))
            .arg(bindings_dir().join("kotlin/org/notch/wallet/notch.kt"))
            .arg(sh::root().join("tests/mobile/kotlin/BindingsTest.kt"))
            .arg("-d")
            .arg(&jar),
    )?;
    let scratch = out.join("run");
    std::fs::create_dir_all(&scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let lib_dir = sh::target_dir().join("debug");
    sh::run(
        cmd("java")
            .arg(format!("-Djna.library.path={}", lib_dir.display()))
            .arg("-cp")
            .arg(classpath(&[&jar, &stdlib]))
            .arg("BindingsTestKt")
            .arg(sh::target_dir().join("debug").join("notch-gateway"))
            .arg(&scratch),
    )
}

/// Installs kotlin-compiler from the npm registry under target/tools/kotlin,
/// when that version is not there.
pub fn install_kotlin_compiler() -> Result {
    let home = kotlin_home();
    let installed = std::fs::read_to_string(home.join("package.json")).unwrap_or_default();
    if home.join("bin").join("kotlinc").is_file()
        && installed.contains(&format!("\"version\": \"{KOTLIN_COMPILER_VERSION}\""))
    {
        println!("kotlin-compiler {KOTLIN_COMPILER_VERSION} is installed");
        return Ok(());
    }
    if !sh::have("npm") {
        return Err("npm is missing (the Debian packages step installs it)".into());
    }
    let prefix = sh::target_dir().join("tools").join("kotlin");
    std::fs::create_dir_all(&prefix)
        .map_err(|e| format!("cannot create {}: {e}", prefix.display()))?;
    sh::run(
        cmd("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(format!("kotlin-compiler@{KOTLIN_COMPILER_VERSION}")),
    )
}
