//! `Transaction::decode` on arbitrary bytes: what the gateway runs on `POST /v1/tx` and the
//! wallet on mempool and transaction answers. Round trip (canonical bytes) and
//! `check_stateless` on success.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    notch_fuzz::check_transaction(data);
});
