//! The export (JSON Lines) reader's check of a whole file on any bytes:
//! no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_host::migrate::jsonl::contents;

fuzz_target!(|data: &[u8]| {
    let mut input = std::io::BufReader::with_capacity(16, data);
    let _ = contents(&mut input, "fuzz.jsonl");
});
