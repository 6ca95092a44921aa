//! tauri.conf.json lives at the repository root (one config for the whole
//! product), so codegen runs from there.

use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    println!(
        "cargo:rerun-if-changed={}",
        root.join("tauri.conf.json").display()
    );
    println!("cargo:rerun-if-changed={}", root.join("ui/dist").display());

    // A fresh clone has no built UI yet. Rather than break `cargo check` for
    // every crate, put a page there that says how to build the real one.
    let dist = root.join("ui/dist");
    if !dist.join("index.html").exists() {
        println!(
            "cargo:warning=ui/dist is missing: the app will show a placeholder; run `cargo xtask build-ui`"
        );
        let _ = std::fs::create_dir_all(&dist);
        let _ = std::fs::write(
            dist.join("index.html"),
            "<!doctype html><title>Notch</title><p>The Notch UI has not been built. \
             Run <code>cargo xtask run</code> or <code>cargo xtask build-ui</code>.</p>",
        );
    }

    if let Err(e) = std::env::set_current_dir(&root) {
        println!("cargo:warning=cannot enter {}: {e}", root.display());
        std::process::exit(1);
    }
    tauri_build::try_build(
        tauri_build::Attributes::new().capabilities_path_pattern("app/capabilities/**/*"),
    )
    .unwrap_or_else(|e| {
        println!("cargo:warning=tauri-build failed: {e:#}");
        std::process::exit(1);
    });
}
