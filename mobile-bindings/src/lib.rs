//! uniffi bindings of `notch-core`. An empty shell until the mobile issue:
//! it only proves the dependency direction (mobile-bindings -> core).

pub use notch_core::VERSION;
