//! `cargo xtask`: the one entry point for setting up, running, testing and
//! benchmarking Notch. Standard library only, so it builds in seconds on a
//! machine that has nothing but the Rust toolchain.

mod bench;
mod fuzz;
mod mobile;
mod mobile_size;
mod run;
mod session;
mod setup;
mod sh;
mod soak;
mod test;
mod ui;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

  setup     install what is missing (Debian packages, rustup targets,
            wasm-bindgen-cli, tauri-driver, kotlin-compiler); a second run does
            nothing
  run       setup + build + start a sandbox gateway and the desktop wallet
  test      setup + every test suite (unit, integration, keystore, mobile
            target checks, mobile bindings in Python and Kotlin, end-to-end
            under Xvfb); `test e2e`: only the real-window tests; `test
            mobile`: only the mobile bindings' checks and tests
  bench     the benchmarks; results go to bench/results/; `bench gateway`,
            `bench wallet`, `bench app`, `bench peer` or `bench
            mobile-size` (the Android release library's size) runs one
  fuzz      the cargo-fuzz targets in fuzz/, each for 60 s (`--secs N`), or
            one (`fuzz TARGET`); results go to bench/results/fuzz.md
  soak      the wallet's reorg soak for 1000 rounds (`--rounds N`,
            `--seed S` to replay); says how long it took; `soak gateway`
            drives the gateway for 10 minutes (`--minutes M`) with load,
            hostile clients and a kill -9: bench/results/gateway-soak.md
  bindings  regenerate the Kotlin, Swift and Python sources of the mobile
            bindings into mobile-bindings/bindings; `bindings --check`: fail
            if that would change anything
  build-ui  build the Leptos UI into ui/dist (cargo, wasm-bindgen)
  bundle    build the release app and its Linux .deb bundle
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let mut timer = sh::Timer::new();
    let result = match command.as_str() {
        "setup" => setup::run(&mut timer),
        "run" => run::run(&mut timer, rest),
        "test" => test::run(&mut timer, rest),
        "bench" => bench::run(&mut timer, rest),
        "fuzz" => fuzz::run(&mut timer, rest),
        "soak" => soak::run(&mut timer, rest),
        "bindings" if rest.first().map(String::as_str) == Some("--check") => timer.step(
            "mobile bindings: generated sources up to date",
            mobile::check_generated,
        ),
        "bindings" => timer.step("mobile bindings: generate", mobile::regenerate),
        "build-ui" => ui::build(&mut timer, ui::Profile::Debug),
        "bundle" => ui::bundle(&mut timer),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    timer.summary();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask {command} failed: {e}");
            ExitCode::FAILURE
        }
    }
}
