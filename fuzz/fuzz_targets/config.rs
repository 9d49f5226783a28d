//! The plugins.toml parser with `${VAR}` interpolation on any text: no
//! panic, and no error shows the secret variable's value.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata_host::Config;

const SECRET: &str = "S3CR3T:P@SS/W0RD";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let chars: Vec<char> = SECRET.chars().collect();
    let windows: Vec<String> = chars.windows(4).map(|w| w.iter().collect()).collect();
    // Text quoted from the input is the input's, not a leak.
    if windows.iter().any(|w| text.contains(w.as_str())) {
        return;
    }
    let env = |name: &str| match name {
        "SECRET" => Some(SECRET.to_string()),
        "A" => Some("alpha".to_string()),
        _ => None,
    };
    if let Err(e) = Config::parse_with_env(Path::new("/etc/strata/plugins.toml"), text, &env) {
        let m = e.to_string();
        for w in &windows {
            assert!(!m.contains(w.as_str()), "{w:?} of the secret in {m}");
        }
    }
});
