//! The `_Unwind_*` C ABI (what Rust's std calls to unwind a panic and take a
//! backtrace), from the `unwinding` crate: a stand-in for the NDK's libunwind.a in the
//! mobile-size benchmark. See Cargo.toml.
#![no_std]

pub use unwinding::abi::*;

/// Never reached: the unwinder itself does not panic in this build (panic = "abort"),
/// but a `no_std` staticlib must name a handler.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
