//! Property tests of the placeholder lexer, which reads every statement an
//! application sends: it never panics, copies everything that is not a
//! placeholder byte for byte, and numbers placeholders as a model says.
//!
//! Bounded (`PROPTEST_CASES` raises the count for a longer run); a failure
//! found here is kept below as a plain regression test.

use proptest::prelude::*;
use strata_plugin_api::placeholders::{
    Dialect, Expected, PlaceholderError, Rewritten, Slot, rewrite, rewrite_params,
};

const DIALECTS: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::Question];

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

/// Text heavy in what the lexer looks at.
fn sqlish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[?:@$'\"`\\[\\]\\-/*eE0-9a-z_ \n\\\\]{0,48}",
        any::<String>(),
        "([?:@$]{1,2}[a-z0-9é]{0,3}|'|\"|--|/\\*|\\*/|\\$\\$|\\$[a-z]\\$| |E'|\\\\|\\[|\\]|`){0,24}",
    ]
}

/// One token of a statement built from parts whose rewriting is known.
#[derive(Clone, Debug)]
enum Tok {
    /// Text that holds no placeholder in `dialect` (or in any, when `None`).
    Text(String, Option<Dialect>),
    /// `??`: a literal `?` in the output.
    QuestionQuestion,
    /// A placeholder: `?` in positional statements, a named one otherwise.
    Param,
}

fn text_token() -> impl Strategy<Value = Tok> {
    let any_text = "[a-z0-9 ?:@$'\"*/\n-]{0,8}";
    prop_oneof![
        "[a-z_][a-z0-9_]{0,6}".prop_map(|w| Tok::Text(w, None)),
        "[0-9]{1,4}".prop_map(|w| Tok::Text(w, None)),
        prop_oneof![
            Just("::"),
            Just("="),
            Just(","),
            Just("("),
            Just(")"),
            Just("@>"),
            Just("<@"),
            Just("||"),
            Just(": "),
            Just("@ "),
        ]
        .prop_map(|w| Tok::Text(w.to_string(), None)),
        any_text.prop_map(|s| Tok::Text(format!("'{}'", s.replace('\'', "''")), None)),
        any_text.prop_map(|s| Tok::Text(format!("\"{}\"", s.replace('"', "\"\"")), None)),
        "[a-z0-9 ?:@$'\"*/-]{0,8}".prop_map(|s| Tok::Text(format!("--{s}\n"), None)),
        "[a-z0-9 ?:@$'\"\n-]{0,8}".prop_map(|s| Tok::Text(format!("/*{s}*/"), None)),
        "[a-z0-9 ?:@'\"\n-]{0,8}"
            .prop_map(|s| Tok::Text(format!("$${s}$$"), Some(Dialect::Postgres))),
        "[a-z0-9 ?:@'\"\n-]{0,8}"
            .prop_map(|s| Tok::Text(format!("$fn${s}$fn$"), Some(Dialect::Postgres))),
        "[a-z0-9 ?:@$'\"\\\\]{0,8}".prop_map(|s| Tok::Text(
            format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
            Some(Dialect::Postgres)
        )),
        "[a-z0-9 ?:@$'\"-]{0,8}".prop_map(|s| Tok::Text(format!("[{s}]"), Some(Dialect::Sqlite))),
        "[a-z0-9 ?:@$'\"-]{0,8}".prop_map(|s| Tok::Text(format!("`{s}`"), Some(Dialect::Sqlite))),
    ]
}

fn statement() -> impl Strategy<Value = (Vec<Tok>, bool, Vec<String>)> {
    let tok = prop_oneof![
        6 => text_token(),
        1 => Just(Tok::QuestionQuestion),
        2 => Just(Tok::Param),
    ];
    (
        prop::collection::vec(tok, 0..16),
        any::<bool>(),
        prop::collection::vec(("[:@$]", "[a-z_][a-z0-9_]{0,4}"), 16),
    )
        .prop_map(|(toks, named, names)| {
            let names = names.into_iter().map(|(s, n)| format!("{s}{n}")).collect();
            (toks, named, names)
        })
}

/// The statement for `dialect` (tokens for other dialects dropped), and
/// what the lexer must make of it.
fn model(toks: &[Tok], named: bool, names: &[String], dialect: Dialect) -> (String, Rewritten) {
    let mut input = String::new();
    let mut sql = String::new();
    let mut slots = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut params = 0;
    // Names drawn so far (a `@name` on Postgres draws one but is no parameter).
    let mut drawn = 0;
    for t in toks {
        let (text, out) = match t {
            Tok::Text(s, Some(d)) if *d != dialect => continue,
            Tok::Text(s, _) => (s.clone(), s.clone()),
            Tok::QuestionQuestion => ("??".to_string(), "?".to_string()),
            Tok::Param
                if named
                    && dialect == Dialect::Postgres
                    && names[drawn % names.len()].starts_with('@') =>
            {
                // `@` is Postgres' prefix abs operator, never a parameter
                // there (plugin-api CHANGELOG): the text stays as written.
                let name = names[drawn % names.len()].clone();
                drawn += 1;
                (name.clone(), name)
            }
            Tok::Param => {
                let (text, wire) = if named {
                    let name = &names[drawn % names.len()];
                    drawn += 1;
                    let bare = name[1..].to_string();
                    let wire = match seen.iter().position(|n| *n == bare) {
                        Some(k) if dialect != Dialect::Question => k + 1,
                        known => {
                            if known.is_none() {
                                seen.push(bare.clone());
                            }
                            slots.push(Slot::Name(bare));
                            slots.len()
                        }
                    };
                    (name.clone(), wire)
                } else {
                    slots.push(Slot::Index(params));
                    ("?".to_string(), params + 1)
                };
                params += 1;
                let out = match dialect {
                    Dialect::Sqlite => format!("?{wire}"),
                    Dialect::Postgres => format!("${wire}"),
                    _ => "?".to_string(),
                };
                (text, out)
            }
        };
        // A space between tokens: no token runs into the next.
        input.push_str(&text);
        input.push(' ');
        sql.push_str(&out);
        sql.push(' ');
    }
    let expected = if params == 0 {
        Expected::Nothing
    } else if named {
        Expected::Named(seen)
    } else {
        Expected::Positional(params)
    };
    (
        input,
        Rewritten {
            sql,
            slots,
            expected,
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_is_rewritten_or_refused_without_panicking(sql in sqlish()) {
        for d in DIALECTS {
            if let Ok(r) = rewrite(&sql, d) {
                // Without placeholders nothing changes but `??` → `?`.
                if r.expected == Expected::Nothing && !sql.contains("??") {
                    prop_assert_eq!(&r.sql, &sql);
                    prop_assert!(r.slots.is_empty());
                }
                let decorated = rewrite_params(&sql, d, |i| format!("<{}>", i));
                prop_assert!(decorated.is_ok());
            }
        }
    }

    #[test]
    fn a_statement_rewrites_as_the_model_says((toks, named, names) in statement()) {
        for d in DIALECTS {
            let (input, want) = model(&toks, named, &names, d);
            let got = rewrite(&input, d)
                .map_err(|e| TestCaseError::fail(format!("{d:?} {input:?}: {e}")))?;
            prop_assert_eq!(&got, &want, "{:?} {:?}", d, input);
            // Substituting each placeholder's own text back gives the input.
            if !named && !input.contains("??") {
                let back = rewrite_params(&input, d, |_| "?".to_string()).unwrap();
                prop_assert_eq!(&back, &input);
            }
        }
    }
}

#[test]
fn numbers_out_of_range_are_refused_not_wrapped() {
    for sql in ["?0", "?65536", "?99999999999999999999999999", "$0"] {
        let d = if sql.starts_with('$') {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        };
        assert!(
            matches!(rewrite(sql, d), Err(PlaceholderError::BadNumber { .. })),
            "{sql}"
        );
    }
}
