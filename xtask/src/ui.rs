//! Building the Leptos UI (trunk) and the release bundle.

use crate::setup;
use crate::sh::{self, Result, Timer, cmd};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

/// `trunk build` of ui/ into ui/dist, with the wasm-bindgen that
/// Cargo.lock pins (trunk would otherwise try to download one).
pub fn build(timer: &mut Timer, profile: Profile) -> Result {
    timer.step("build the UI (trunk)", || {
        let version = setup::locked_wasm_bindgen_version()?;
        let mut trunk = cmd("trunk");
        trunk
            .current_dir(sh::root().join("ui"))
            .args(["build", "--offline", "--dist", "dist"])
            .env("TRUNK_TOOLS_WASM_BINDGEN", &version)
            .env("CARGO_TARGET_DIR", sh::target_dir());
        if profile == Profile::Release {
            trunk.arg("--release");
        }
        sh::run(&mut trunk)
    })
}

/// The release app and a Debian package of it, under target/release/bundle.
pub fn bundle(timer: &mut Timer) -> Result {
    setup::run(timer)?;
    build(timer, Profile::Release)?;
    timer.step("build the release app", || {
        sh::run(cmd("cargo").args(["build", "--release", "-p", "notch-app"]))
    })?;
    timer.step("bundle: .deb", make_deb)
}

fn make_deb() -> Result {
    let version = env!("CARGO_PKG_VERSION");
    let target = sh::target_dir();
    let staging = target.join("release/bundle/deb/notch");
    let _ = std::fs::remove_dir_all(&staging);
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let bin_dir = staging.join("usr/bin");
    let apps = staging.join("usr/share/applications");
    let icons = staging.join("usr/share/icons/hicolor/128x128/apps");
    let control = staging.join("DEBIAN");
    for dir in [&bin_dir, &apps, &icons, &control] {
        std::fs::create_dir_all(dir).map_err(|e| io("create bundle dirs", e))?;
    }
    std::fs::copy(target.join("release/notch-app"), bin_dir.join("notch-app"))
        .map_err(|e| io("copy notch-app", e))?;
    std::fs::copy(
        sh::root().join("icons/128x128.png"),
        icons.join("notch.png"),
    )
    .map_err(|e| io("copy icon", e))?;
    std::fs::write(
        apps.join("notch.desktop"),
        // `notch:` links open Notch (the scheme of `plugins.deep-link` in
        // tauri.conf.json); `%u` hands the link over as the first argument.
        "[Desktop Entry]\nType=Application\nName=Notch\nComment=Self-custodial wallet\n\
         Exec=notch-app %u\nIcon=notch\nCategories=Finance;Office;\n\
         MimeType=x-scheme-handler/notch;\n",
    )
    .map_err(|e| io("write .desktop", e))?;
    std::fs::write(
        control.join("control"),
        format!(
            "Package: notch\nVersion: {version}\nArchitecture: amd64\nMaintainer: Notch <dev@notch.invalid>\n\
             Depends: libwebkit2gtk-4.1-0, libgtk-3-0, libayatana-appindicator3-1\n\
             Section: utils\nPriority: optional\nDescription: Notch, a self-custodial wallet\n \
             Tokens on a gateway ledger and MyCHIPs-style credit tallies.\n"
        ),
    )
    .map_err(|e| io("write control", e))?;
    let deb = target.join(format!("release/bundle/deb/notch_{version}_amd64.deb"));
    sh::run(
        cmd("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&staging)
            .arg(&deb),
    )?;
    println!("bundle: {}", deb.display());
    Ok(())
}
