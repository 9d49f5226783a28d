//! The placeholder lexer on any text, in every dialect: no panic, and a
//! statement without placeholders comes back unchanged (`??` aside).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_plugin_api::placeholders::{Dialect, Expected, rewrite, rewrite_params};

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    for d in [Dialect::Sqlite, Dialect::Postgres, Dialect::Question] {
        if let Ok(r) = rewrite(sql, d) {
            if r.expected == Expected::Nothing && !sql.contains("??") {
                assert_eq!(r.sql, sql);
            }
            let _ = rewrite_params(sql, d, |i| format!("<{i}>"));
        }
    }
});
