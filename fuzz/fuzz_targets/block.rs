//! `Block::decode` on arbitrary bytes: what the wallet runs on every block a gateway sends.
//! Round trip (canonical bytes), `verify_block` and the header checks on success.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    notch_fuzz::check_block(data);
});
