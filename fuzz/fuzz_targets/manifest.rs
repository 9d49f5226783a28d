//! The backup manifest reader on any bytes: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_host::backup::Manifest;

fuzz_target!(|data: &[u8]| {
    let _ = Manifest::parse("20261128T073000.123Z", data);
});
