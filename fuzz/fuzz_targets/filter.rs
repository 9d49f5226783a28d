//! The filter parser on any text: no panic, and whatever parses survives
//! serialise → parse unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_plugin_api::filter::Filter;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = Filter::parse_str(text) {
        let again =
            Filter::parse_str(&f.to_json().to_string()).expect("a serialised filter parses");
        assert_eq!(again, f);
        let _ = f.matches(&serde_json::json!({"a": [1, "x", null], "b": {"c": true}}));
    }
});
