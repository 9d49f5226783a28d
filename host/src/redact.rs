//! Hiding secrets in messages about a configuration: URL passwords and the
//! values of secret-named keys. Its own module, below both `config` (whose
//! errors quote config text) and `error` (which redacts every config error
//! it builds), so neither imports the other for it.

/// Whether a config key holds a secret by its name (`password`,
/// `secret_access_key`, `session_token`, `api_key`, …): its value is never
/// echoed in an error.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let last = k.rsplit('.').next().unwrap_or(&k);
    [
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "credential",
    ]
    .iter()
    .any(|s| last.contains(s))
}

/// `text` with secrets hidden, for errors about a configuration (which may
/// quote a line of it, as TOML syntax errors do): the password of every
/// URL with one (`postgres://user:***@host/db`), and the value of every
/// `key = value` / `"key": value` whose key [`is_secret_key`]. Every
/// config error passes through it, so a typo on the line of a
/// `url = "postgres://user:password@…"` never prints the password.
pub fn redact_secrets(text: &str) -> String {
    redact_keys(&redact_url_passwords(text))
}

fn redact_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The userinfo ends at the last `@` of the line: a password may
        // hold `@`, `/`, `:` and quotes unescaped when written by hand (a
        // TOML syntax error quotes such a line as written). On a line with
        // more after the URL this hides more than the password, never less.
        let span = &tail[..tail.find('\n').unwrap_or(tail.len())];
        match span.rfind('@') {
            Some(at) => match span[..at].find(':') {
                Some(colon) if !span[..colon].contains(char::is_whitespace) => {
                    out.push_str(&span[..=colon]);
                    out.push_str("***");
                    rest = &tail[at..];
                }
                _ => rest = tail,
            },
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

fn redact_keys(text: &str) -> String {
    let bytes = text.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !is_ident(bytes[i]) || (i > 0 && is_ident(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        if !is_secret_key(&text[start..i]) {
            continue;
        }
        // `key = v`, `"key" = v`, `"key": v` (a backquoted `key` is a name in
        // a message, not an assignment).
        let mut j = i;
        if j < bytes.len() && (bytes[j] == b'"' || bytes[j] == b'\'') {
            j += 1;
        }
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        if j >= bytes.len() || !(bytes[j] == b'=' || bytes[j] == b':') {
            continue;
        }
        j += 1;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        let (value_start, value_end) = match bytes.get(j) {
            Some(&q) if q == b'"' || q == b'\'' => {
                let body = j + 1;
                let end = text[body..]
                    .find([q as char, '\n'])
                    .map_or(text.len(), |e| body + e);
                (body, end)
            }
            _ => {
                let end = text[j..]
                    .find(|c: char| c.is_whitespace() || c == ',' || c == '}')
                    .map_or(text.len(), |e| j + e);
                (j, end)
            }
        };
        if value_end > value_start {
            out.push_str(&text[copied..value_start]);
            out.push_str("***");
            copied = value_end;
        }
        i = value_end.max(i);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_and_secret_keys_are_hidden_names_are_not() {
        for (text, want) in [
            ("postgres://u:p@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u:p@ss/w:rd@h:5432/db x",
                "postgres://u:***@h:5432/db x",
            ),
            (
                "a s3://bucket/key and http://host:8080/x",
                "a s3://bucket/key and http://host:8080/x",
            ),
            ("postgres://user@h/db", "postgres://user@h/db"),
            // Quotes (and `@`) in the password (found by tests/config_props.rs).
            (
                "url = \"postgres://user:0/\"\"@h/db\" }",
                "url = \"postgres://user:***@h/db\" }",
            ),
            (
                "url = \"postgres://u:a'b@h/db\"",
                "url = \"postgres://u:***@h/db\"",
            ),
            (
                "config = { url = \"postgres://user:@/'0@h/db\" }\"",
                "config = { url = \"postgres://user:***@h/db\" }\"",
            ),
            (
                "password = \"x y\", other = 1",
                "password = \"***\", other = 1",
            ),
            (
                "{\"secret_access_key\": \"AKIA\", \"region\": \"eu\"}",
                "{\"secret_access_key\": \"***\", \"region\": \"eu\"}",
            ),
            ("api_key=abc}", "api_key=***}"),
            (
                "key `password`: environment variable X is not set",
                "key `password`: environment variable X is not set",
            ),
            (
                "key `session_token` must be a string",
                "key `session_token` must be a string",
            ),
        ] {
            assert_eq!(redact_secrets(text), want, "{text}");
        }
        assert!(is_secret_key("secret_access_key") && is_secret_key("nested.db_password"));
        assert!(!is_secret_key("url") && !is_secret_key("path") && !is_secret_key("access_key_id"));
    }
}
