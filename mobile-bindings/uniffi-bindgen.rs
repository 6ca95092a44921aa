//! uniffi's bindings generator, built from the same uniffi as the library,
//! so the generated Kotlin, Swift and Python always match its scaffolding.
//! Library mode: it reads the interface from the built cdylib.
//!
//! ```sh
//! cargo build -p notch-mobile
//! cargo run -p notch-mobile --features cli --bin uniffi-bindgen -- \
//!     generate --library target/debug/libnotch_mobile.so \
//!     --language kotlin --out-dir mobile-bindings/bindings/kotlin --no-format
//! ```
//!
//! `cargo xtask bindings` regenerates all three languages.

fn main() {
    uniffi::uniffi_bindgen_main()
}
