//! Property tests of the `plugins.toml` parser and its `${VAR}`
//! interpolation: it never panics, expands as a model says, and no error
//! shows a secret (an environment variable's value, a URL password), whole
//! or in part.
//!
//! Bounded (`PROPTEST_CASES` raises the count for a longer run); a failure
//! found here is kept below as a plain regression test.

use std::path::Path;

use proptest::prelude::*;
use strata_host::Config;

const FILE: &str = "/etc/strata/plugins.toml";
/// The value of `$SECRET`: upper case, digits and signs, so no run of four
/// of its characters appears in a message by chance (messages are lower case).
const SECRET: &str = "S3CR3T:P@SS/W0RD";

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn env(name: &str) -> Option<String> {
    match name {
        "SECRET" => Some(SECRET.to_string()),
        "A" => Some("alpha".to_string()),
        "EMPTY" => Some(String::new()),
        "DOLLAR" => Some("$$ ${A}".to_string()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, strata_host::Error> {
    Config::parse_with_env(Path::new(FILE), text, &env)
}

/// A TOML basic string holding `s`.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Whether `message` shows `secret` or any four consecutive characters of
/// it holding an upper-case letter or a digit (a run of signs alone may
/// come from elsewhere in the config line).
fn leaks(message: &str, secret: &str) -> Option<String> {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .windows(4.min(chars.len()))
        .filter(|w| {
            w.iter()
                .any(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
        .map(|w| w.iter().collect::<String>())
        .find(|w| message.contains(w.as_str()))
}

/// One piece of a string value, and what it expands to.
fn piece() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        "[a-z0-9 :/@{}\\-]{1,6}".prop_map(|s| (s.clone(), s)),
        Just(("$$".to_string(), "$".to_string())),
        Just(("${A}".to_string(), "alpha".to_string())),
        Just(("${EMPTY}".to_string(), String::new())),
        // A value is not expanded again.
        Just(("${DOLLAR}".to_string(), "$$ ${A}".to_string())),
        "[a-z0-9 :/@{$\\-]{0,6}".prop_map(|d| (format!("${{A:-{d}}}"), "alpha".to_string())),
        "[a-z0-9 :/@{$\\-]{0,6}".prop_map(|d| (format!("${{UNSET_1:-{d}}}"), d)),
        // A `$` before anything but `$` or `{` is itself.
        "[a-z0-9 :/@}\\-]".prop_map(|c| (format!("${c}"), format!("${c}"))),
    ]
}

/// Places where a string value is interpolated and may be quoted back in
/// an error; `{}` is the TOML string.
const PLACES: [&str; 8] = [
    "[backends.b]\nplugin = {}\n",
    "[backends.b]\nlibrary = {}\n",
    "[backends.b]\nplugin = \"sqlite\"\nconfig = {{ url = {} }}\n",
    "[backends.b]\nplugin = \"sqlite\"\n[backup]\ncompression = {}\n",
    "[backends.b]\nplugin = \"sqlite\"\n[backup]\nprefix = {}\n",
    "[backends.b]\nplugin = \"sqlite\"\n[backup]\ninterval = {}\n",
    "[backends.b]\nplugin = \"sqlite\"\n[backup]\nsource = {}\n",
    "[backends.b]\nplugin = \"sqlite\"\n[roles]\nsql = {}\n",
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_file_is_read_or_refused_without_panicking(text in prop_oneof![
        any::<String>(),
        "(\\[[a-z.]{1,12}\\]\n|[a-z_]{1,8} = (\"[^\"\n]{0,12}\"|[0-9]{1,3}|\\{[^\n]{0,16}\\}|\\[[^\n]{0,12}\\])\n){0,8}",
    ]) {
        let _ = parse(&text);
    }

    #[test]
    fn a_value_expands_as_the_model_says(pieces in prop::collection::vec(piece(), 0..8)) {
        // Adjacent pieces must not form a token across their border.
        let mut written = String::new();
        let mut want = String::new();
        for (w, e) in &pieces {
            if written.ends_with('$') && (w.starts_with('$') || w.starts_with('{')) {
                continue;
            }
            written.push_str(w);
            want.push_str(e);
        }
        let text = format!(
            "[backends.b]\nplugin = \"sqlite\"\nconfig = {{ v = {} }}\n",
            toml_str(&written)
        );
        let cfg = parse(&text).map_err(|e| TestCaseError::fail(format!("{written:?}: {e}")))?;
        prop_assert_eq!(
            cfg.backends["b"].config["v"].as_str(),
            Some(want.as_str()),
            "{:?}",
            written
        );
    }

    #[test]
    fn no_error_shows_an_environment_secret(
        value in "([a-z0-9 :/@{}$\\-]|\\$\\{SECRET\\}|\\$\\{SECRET:-x\\}|\\$\\{|\\$\\{UNSET\\}|\\$\\{A\\})*",
        place in 0..PLACES.len(),
    ) {
        let text = PLACES[place].replace("{}", &toml_str(&value));
        if let Err(e) = parse(&text) {
            let m = e.to_string();
            prop_assert!(leaks(&m, SECRET).is_none(), "{:?} in {}", leaks(&m, SECRET), m);
        }
    }

    #[test]
    fn no_error_shows_a_url_password(
        password in "[A-Z0-9@:/\"'#%\\\\]{4,12}",
        after in "[a-z @:/\"'\\\\{}=,\n]{0,12}",
        key in prop_oneof![Just("url"), Just("dsn"), Just("password")],
    ) {
        // Inside a TOML string (escaped) or raw, so that what follows can
        // break the syntax at any point.
        for line in [
            format!("config = {{ {key} = {} }}{after}", toml_str(&format!("postgres://user:{password}@h/db"))),
            format!("config = {{ {key} = \"postgres://user:{password}@h/db{after}\" }}"),
        ] {
            let text = format!("[backends.b]\nplugin = \"postgres\"\n{line}\n");
            if let Err(e) = parse(&text) {
                let m = e.to_string();
                if let Some(w) = leaks(&m, &password) {
                    prop_assert!(false, "{:?} of password {:?} in {}", w, password, m);
                }
            }
        }
    }
}
