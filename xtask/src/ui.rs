//! Building the Leptos UI (cargo + wasm-bindgen) and the release bundle.

use std::path::Path;

use crate::setup;
use crate::sh::{self, Result, Timer, cmd};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

/// The UI crate's wasm build, bound by the wasm-bindgen CLI that Cargo.lock pins, into
/// ui/dist beside an index.html made from ui/index.html.
///
/// ui/index.html is written for trunk (`trunk serve` still gives live reload to whoever
/// installs it), but the xtask does trunk's two steps itself: installing trunk from
/// source took 10-16 minutes of a fresh machine's CI run, for a build that is one cargo
/// command and one wasm-bindgen command.
pub fn build(timer: &mut Timer, profile: Profile) -> Result {
    timer.step("build the UI (cargo, wasm-bindgen)", || {
        let version = setup::locked_wasm_bindgen_version()?;
        let on_path = sh::output(&mut cmd("wasm-bindgen").arg("--version")).unwrap_or_default();
        if on_path.split_whitespace().nth(1) != Some(version.as_str()) {
            return Err(format!(
                "the UI needs wasm-bindgen {version} (Cargo.lock's), found {:?}: `cargo xtask setup` installs it",
                on_path.trim()
            ));
        }
        let mut cargo = cmd("cargo");
        cargo.args([
            "build",
            "-p",
            "notch-ui",
            "--target",
            "wasm32-unknown-unknown",
        ]);
        if profile == Profile::Release {
            cargo.arg("--release");
        }
        sh::run(&mut cargo)?;
        let wasm = sh::target_dir()
            .join("wasm32-unknown-unknown")
            .join(match profile {
                Profile::Debug => "debug",
                Profile::Release => "release",
            })
            .join("notch-ui.wasm");
        let ui = sh::root().join("ui");
        let dist = ui.join("dist");
        // Nothing of an earlier build (or of trunk's hashed names) stays behind: the app
        // embeds the whole directory.
        if dist.exists() {
            std::fs::remove_dir_all(&dist)
                .map_err(|e| format!("cannot empty {}: {e}", dist.display()))?;
        }
        std::fs::create_dir_all(&dist)
            .map_err(|e| format!("cannot create {}: {e}", dist.display()))?;
        sh::run(
            cmd("wasm-bindgen")
                .args(["--target", "web", "--no-typescript", "--out-name", UI_NAME])
                .arg("--out-dir")
                .arg(&dist)
                .arg(&wasm),
        )?;
        write_index(&ui, &dist)
    })
}

/// What wasm-bindgen names its two files (`notch-ui.js`, `notch-ui_bg.wasm`).
const UI_NAME: &str = "notch-ui";

/// ui/dist/index.html: ui/index.html with trunk's asset links made plain. A stylesheet
/// link is copied and linked; the rust link becomes the module that loads the wasm (as
/// trunk writes it, without the hashes: the app's assets are embedded, never cached).
/// Any other trunk asset is refused rather than dropped.
fn write_index(ui: &Path, dist: &Path) -> Result {
    let source = ui.join("index.html");
    let html = std::fs::read_to_string(&source)
        .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    let mut out = String::with_capacity(html.len() + 512);
    for line in html.lines() {
        let Some(start) = line.find("<link data-trunk") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let indent = &line[..start];
        let tag = line[start..].trim_end();
        if tag.contains("rel=\"rust\"") {
            for script in [
                format!("<link rel=\"modulepreload\" href=\"/{UI_NAME}.js\" />"),
                format!(
                    "<link rel=\"preload\" href=\"/{UI_NAME}_bg.wasm\" as=\"fetch\" type=\"application/wasm\" crossorigin=\"anonymous\" />"
                ),
                format!(
                    "<script type=\"module\">import init from '/{UI_NAME}.js'; await init({{ module_or_path: '/{UI_NAME}_bg.wasm' }});</script>"
                ),
            ] {
                out.push_str(indent);
                out.push_str(&script);
                out.push('\n');
            }
        } else if tag.contains("rel=\"css\"") {
            let href = attribute(tag, "href")
                .ok_or_else(|| format!("{}: a css link without href: {tag}", source.display()))?;
            if href.contains('/') || href.contains("..") {
                return Err(format!(
                    "{}: only stylesheets beside index.html are copied, not {href:?}",
                    source.display()
                ));
            }
            std::fs::copy(ui.join(href), dist.join(href))
                .map_err(|e| format!("cannot copy ui/{href}: {e}"))?;
            out.push_str(&format!(
                "{indent}<link rel=\"stylesheet\" href=\"/{href}\" />\n"
            ));
        } else {
            return Err(format!(
                "{}: the xtask builds only trunk's rust and css links, not: {tag}",
                source.display()
            ));
        }
    }
    let index = dist.join("index.html");
    std::fs::write(&index, out).map_err(|e| format!("cannot write {}: {e}", index.display()))
}

/// The value of `name="…"` in one HTML tag.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let rest = &tag[tag.find(&format!(" {name}=\""))? + name.len() + 3..];
    Some(&rest[..rest.find('"')?])
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
