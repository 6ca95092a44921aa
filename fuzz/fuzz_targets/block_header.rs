//! `BlockHeader::decode` on arbitrary bytes: what the wallet runs on `POST /v1/headers`
//! answers. Round trip (canonical bytes), signature, genesis, link and locator checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    notch_fuzz::check_header(data);
});
