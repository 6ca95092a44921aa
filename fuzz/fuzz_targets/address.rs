//! Address parsing (`Address::parse_any`, `Address::parse` for each network) and the hex ids
//! and keys (`TxId`, `BlockId`, `AssetId`, `PublicKey`, `Signature`, `Hash32::from_hex`) on
//! arbitrary text: what the gateway runs on path segments, locators and subscriptions, and the
//! wallet on what a person types or scans. Round trips on success.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Path segments and JSON strings reach the parsers as `&str` only.
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    notch_fuzz::check_address(s);
    notch_fuzz::check_hex_ids(s);
});
