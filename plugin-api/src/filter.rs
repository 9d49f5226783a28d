//! The metadata filter language, parsed once into a typed expression.
//!
//! One JSON dialect for every backend:
//!
//! ```json
//! {"kind": "fact",                                  // bare value = $eq
//!  "importance": {"$gte": 0.5, "$lt": 1},           // several operators = all of them
//!  "$or": [{"tags": {"$in": ["rust", "sql"]}}, {"source.app": {"$exists": false}}],
//!  "$not": {"status": {"$eq": "archived"}}}
//! ```
//!
//! Operators: `$eq $ne $gt $gte $lt $lte $in $nin $exists` on fields, `$and
//! $or $not` on filters. Paths are dotted (`source.app`). An array-valued
//! field matches when any element matches (`$ne` / `$nin` are the negations
//! of `$eq` / `$in`, so they match when no element does). A missing field
//! matches `$ne`, `$nin`, `$exists: false` and `$eq: null`, and nothing else.
//! Numbers compare as numbers (integers are exact up to 2^53), strings
//! compare by UTF-8 bytes; comparing values of different types is false.
//!
//! [`Filter::parse`] rejects malformed filters with an
//! [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error pointing at
//! the clause (`filter.$or[1].price: unknown operator $gtt`). Backends
//! translate the [`Filter`] exactly, or answer `Unsupported` for an operator
//! they cannot do exactly — never drop a clause. [`Filter::matches`] is the
//! reference semantics, used by in-memory backends and the conformance suite.

use std::cmp::Ordering;

use serde_json::Value as Json;

use crate::PluginError;

/// A parsed filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// Matches everything (the empty filter `{}`).
    All,
    /// Every sub-filter matches.
    And(Vec<Filter>),
    /// At least one sub-filter matches.
    Or(Vec<Filter>),
    /// The sub-filter does not match.
    Not(Box<Filter>),
    /// A condition on one field.
    Field {
        /// Path segments (`source.app` → `["source", "app"]`).
        path: Vec<String>,
        /// The condition.
        op: FieldOp,
    },
}

/// A condition on one field.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldOp {
    /// Equal (any element, for arrays).
    Eq(Scalar),
    /// Not equal (no element, for arrays; true when missing).
    Ne(Scalar),
    /// Greater than.
    Gt(Scalar),
    /// Greater than or equal.
    Gte(Scalar),
    /// Less than.
    Lt(Scalar),
    /// Less than or equal.
    Lte(Scalar),
    /// Equal to one of.
    In(Vec<Scalar>),
    /// Equal to none of (true when missing).
    Nin(Vec<Scalar>),
    /// Present (and not null) or absent.
    Exists(bool),
}

/// A value in a filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// JSON null.
    Null,
    /// true / false.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    String(String),
}

impl Scalar {
    fn from_json(v: &Json) -> Option<Scalar> {
        match v {
            Json::Null => Some(Scalar::Null),
            Json::Bool(b) => Some(Scalar::Bool(*b)),
            Json::Number(n) => n.as_f64().map(Scalar::Number),
            Json::String(s) => Some(Scalar::String(s.clone())),
            _ => None,
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Json {
        match self {
            Scalar::Null => Json::Null,
            Scalar::Bool(b) => Json::Bool(*b),
            Scalar::Number(n) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
            Scalar::String(s) => Json::String(s.clone()),
        }
    }

    /// Compares with a JSON value of the same type; `None` for different types.
    fn compare(&self, v: &Json) -> Option<Ordering> {
        match (self, v) {
            (Scalar::Null, Json::Null) => Some(Ordering::Equal),
            (Scalar::Bool(a), Json::Bool(b)) => Some(b.cmp(a)),
            (Scalar::Number(a), Json::Number(b)) => b.as_f64()?.partial_cmp(a),
            (Scalar::String(a), Json::String(b)) => Some(b.as_bytes().cmp(a.as_bytes())),
            _ => None,
        }
    }
}

fn err(at: &str, msg: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_input(format!("{at}: {msg}"))
}

impl Filter {
    /// Parses filter JSON text; empty text or `{}` / `null` is [`Filter::All`].
    pub fn parse_str(text: &str) -> Result<Filter, PluginError> {
        if text.trim().is_empty() {
            return Ok(Filter::All);
        }
        let json: Json = serde_json::from_str(text)
            .map_err(|e| PluginError::invalid_input(format!("filter is not valid JSON: {e}")))?;
        Filter::parse(&json)
    }

    /// Parses a filter document.
    pub fn parse(json: &Json) -> Result<Filter, PluginError> {
        match json {
            Json::Null => Ok(Filter::All),
            other => parse_doc(other, "filter"),
        }
    }

    /// Whether `metadata` (a JSON object) matches.
    pub fn matches(&self, metadata: &Json) -> bool {
        match self {
            Filter::All => true,
            Filter::And(fs) => fs.iter().all(|f| f.matches(metadata)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(metadata)),
            Filter::Not(f) => !f.matches(metadata),
            Filter::Field { path, op } => {
                let mut v = Some(metadata);
                for seg in path {
                    v = v.and_then(|x| x.get(seg.as_str()));
                }
                op.matches(v)
            }
        }
    }

    /// The filter as a JSON document that [`Filter::parse`] reads back as
    /// an equal filter: `{}` for [`Filter::All`], `{"$and": […]}`,
    /// `{"$or": […]}`, `{"$not": …}`, and `{"a.b": {"$op": arg}}` for a
    /// field condition. A non-finite number (which no parsed filter holds)
    /// becomes `null`.
    pub fn to_json(&self) -> Json {
        let one = |key: String, value: Json| {
            let mut map = serde_json::Map::new();
            map.insert(key, value);
            Json::Object(map)
        };
        match self {
            Filter::All => Json::Object(serde_json::Map::new()),
            Filter::And(fs) => one(
                "$and".into(),
                Json::Array(fs.iter().map(Filter::to_json).collect()),
            ),
            Filter::Or(fs) => one(
                "$or".into(),
                Json::Array(fs.iter().map(Filter::to_json).collect()),
            ),
            Filter::Not(f) => one("$not".into(), f.to_json()),
            Filter::Field { path, op } => {
                let arg = match op {
                    FieldOp::Eq(s)
                    | FieldOp::Ne(s)
                    | FieldOp::Gt(s)
                    | FieldOp::Gte(s)
                    | FieldOp::Lt(s)
                    | FieldOp::Lte(s) => s.to_json(),
                    FieldOp::In(list) | FieldOp::Nin(list) => {
                        Json::Array(list.iter().map(Scalar::to_json).collect())
                    }
                    FieldOp::Exists(b) => Json::Bool(*b),
                };
                one(path.join("."), one(op.name().into(), arg))
            }
        }
    }

    /// True for the match-everything filter.
    pub fn is_all(&self) -> bool {
        matches!(self, Filter::All)
    }

    /// The operator names used, for backends that support only some.
    pub fn operators(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        self.visit_ops(&mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn visit_ops(&self, out: &mut Vec<&'static str>) {
        match self {
            Filter::All => {}
            Filter::And(fs) => {
                out.push("$and");
                fs.iter().for_each(|f| f.visit_ops(out));
            }
            Filter::Or(fs) => {
                out.push("$or");
                fs.iter().for_each(|f| f.visit_ops(out));
            }
            Filter::Not(f) => {
                out.push("$not");
                f.visit_ops(out);
            }
            Filter::Field { op, .. } => out.push(op.name()),
        }
    }
}

impl FieldOp {
    /// The operator's name (`$eq`, …).
    pub fn name(&self) -> &'static str {
        match self {
            FieldOp::Eq(_) => "$eq",
            FieldOp::Ne(_) => "$ne",
            FieldOp::Gt(_) => "$gt",
            FieldOp::Gte(_) => "$gte",
            FieldOp::Lt(_) => "$lt",
            FieldOp::Lte(_) => "$lte",
            FieldOp::In(_) => "$in",
            FieldOp::Nin(_) => "$nin",
            FieldOp::Exists(_) => "$exists",
        }
    }

    /// Whether the field value `v` (`None` = missing) matches.
    pub fn matches(&self, v: Option<&Json>) -> bool {
        let any = |pred: &dyn Fn(&Json) -> bool| match v {
            None => false,
            Some(Json::Array(items)) => items.iter().any(pred),
            Some(x) => pred(x),
        };
        let eq = |s: &Scalar| {
            if *s == Scalar::Null && matches!(v, None | Some(Json::Null)) {
                return true;
            }
            any(&|x| s.compare(x) == Some(Ordering::Equal))
        };
        match self {
            FieldOp::Eq(s) => eq(s),
            FieldOp::Ne(s) => !eq(s),
            FieldOp::Gt(s) => any(&|x| s.compare(x) == Some(Ordering::Greater)),
            FieldOp::Gte(s) => {
                any(&|x| matches!(s.compare(x), Some(Ordering::Greater | Ordering::Equal)))
            }
            FieldOp::Lt(s) => any(&|x| s.compare(x) == Some(Ordering::Less)),
            FieldOp::Lte(s) => {
                any(&|x| matches!(s.compare(x), Some(Ordering::Less | Ordering::Equal)))
            }
            FieldOp::In(list) => list.iter().any(eq),
            FieldOp::Nin(list) => !list.iter().any(eq),
            FieldOp::Exists(want) => matches!(v, Some(x) if !x.is_null()) == *want,
        }
    }
}

/// A [`Filter`] evaluated on metadata kept as JSON *text*, without
/// building the document: for backends that hold records' metadata in
/// memory as text and must test many rows per query.
///
/// Parsing a row into a [`Json`] value allocates every key and string of
/// it; the matcher instead walks the text once, keeps only the values at
/// the paths the filter names (a small trie of them) and skips the rest
/// without allocating. The answer is [`Filter::matches`]'s on the parsed
/// document in every case, duplicate keys included (the last one counts,
/// as when parsing into a [`Json`] value).
///
/// ```
/// # use strata_plugin_api::filter::Filter;
/// let filter = Filter::parse_str(r#"{"kind": "fact", "src.app": {"$ne": "cli"}}"#).unwrap();
/// let mut m = filter.text_matcher();
/// assert!(m.matches(r#"{"kind": "fact", "body": "long text, skipped", "src": {"app": "web"}}"#).unwrap());
/// assert!(!m.matches(r#"{"kind": "event"}"#).unwrap());
/// ```
#[derive(Debug)]
pub struct TextMatcher<'f> {
    expr: Expr<'f>,
    /// The paths' trie; `nodes[0]` is the document.
    nodes: Vec<PathNode<'f>>,
    /// Per node: the value read at it, for nodes that keep theirs.
    slots: Vec<Option<Json>>,
}

/// A filter with each field condition pointed at the trie node holding
/// its value.
#[derive(Debug)]
enum Expr<'f> {
    All,
    And(Vec<Expr<'f>>),
    Or(Vec<Expr<'f>>),
    Not(Box<Expr<'f>>),
    Field {
        /// The shallowest node on the path that keeps its whole value.
        node: usize,
        /// The path below that node (empty unless another condition
        /// needs a prefix of this path whole).
        rest: &'f [String],
        op: &'f FieldOp,
    },
}

#[derive(Debug)]
struct PathNode<'f> {
    key: &'f str,
    children: Vec<usize>,
    /// A condition's path ends here: the whole value is kept, nothing
    /// below it is walked.
    keep: bool,
}

impl Filter {
    /// This filter as a [`TextMatcher`].
    pub fn text_matcher(&self) -> TextMatcher<'_> {
        let mut nodes = vec![PathNode {
            key: "",
            children: Vec::new(),
            keep: false,
        }];
        self.add_paths(&mut nodes);
        let expr = self.compile(&nodes);
        let slots = vec![None; nodes.len()];
        TextMatcher { expr, nodes, slots }
    }

    fn add_paths<'f>(&'f self, nodes: &mut Vec<PathNode<'f>>) {
        match self {
            Filter::All => {}
            Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| f.add_paths(nodes)),
            Filter::Not(f) => f.add_paths(nodes),
            Filter::Field { path, .. } => {
                let mut at = 0;
                for seg in path {
                    let found = nodes[at]
                        .children
                        .iter()
                        .copied()
                        .find(|&c| nodes[c].key == seg.as_str());
                    at = found.unwrap_or_else(|| {
                        nodes.push(PathNode {
                            key: seg,
                            children: Vec::new(),
                            keep: false,
                        });
                        let new = nodes.len() - 1;
                        nodes[at].children.push(new);
                        new
                    });
                }
                nodes[at].keep = true;
            }
        }
    }

    fn compile<'f>(&'f self, nodes: &[PathNode<'f>]) -> Expr<'f> {
        match self {
            Filter::All => Expr::All,
            Filter::And(fs) => Expr::And(fs.iter().map(|f| f.compile(nodes)).collect()),
            Filter::Or(fs) => Expr::Or(fs.iter().map(|f| f.compile(nodes)).collect()),
            Filter::Not(f) => Expr::Not(Box::new(f.compile(nodes))),
            Filter::Field { path, op } => {
                let mut at = 0;
                for (depth, seg) in path.iter().enumerate() {
                    at = nodes[at]
                        .children
                        .iter()
                        .copied()
                        .find(|&c| nodes[c].key == seg.as_str())
                        .expect("every path was added");
                    if nodes[at].keep {
                        return Expr::Field {
                            node: at,
                            rest: &path[depth + 1..],
                            op,
                        };
                    }
                }
                unreachable!("the node at a path's end keeps its value")
            }
        }
    }
}

impl TextMatcher<'_> {
    /// Whether the metadata `text` (a JSON document; normally an object)
    /// matches. `Err` when `text` is not JSON.
    pub fn matches(&mut self, text: &str) -> Result<bool, serde_json::Error> {
        walk(&self.nodes, &mut self.slots, text)?;
        Ok(self.expr.eval(&self.slots))
    }
}

impl Expr<'_> {
    fn eval(&self, slots: &[Option<Json>]) -> bool {
        match self {
            Expr::All => true,
            Expr::And(es) => es.iter().all(|e| e.eval(slots)),
            Expr::Or(es) => es.iter().any(|e| e.eval(slots)),
            Expr::Not(e) => !e.eval(slots),
            Expr::Field { node, rest, op } => {
                let mut v = slots[*node].as_ref();
                for seg in *rest {
                    v = v.and_then(|x| x.get(seg.as_str()));
                }
                op.matches(v)
            }
        }
    }
}

/// Reads the value at one dotted path of metadata kept as JSON text, the
/// way [`Filter::matches`] resolves a field's path on the parsed document
/// (object keys only, the last of duplicate keys), without building the
/// document: for backends that keep one column of values per path a
/// filter names.
///
/// ```
/// # use strata_plugin_api::filter::PathReader;
/// let path = ["src".to_string(), "app".to_string()];
/// let mut r = PathReader::new(&path);
/// assert_eq!(r.read(r#"{"src": {"app": "cli"}, "n": 1}"#).unwrap(), Some("cli".into()));
/// assert_eq!(r.read(r#"{"src": ["app"]}"#).unwrap(), None);
/// ```
#[derive(Debug)]
pub struct PathReader<'p> {
    nodes: Vec<PathNode<'p>>,
    slots: Vec<Option<Json>>,
}

impl<'p> PathReader<'p> {
    /// A reader of `path` (segments, as in [`Filter::Field`]).
    pub fn new(path: &'p [String]) -> PathReader<'p> {
        let mut nodes = vec![PathNode {
            key: "",
            children: Vec::new(),
            keep: path.is_empty(),
        }];
        for seg in path {
            let parent = nodes.len() - 1;
            nodes.push(PathNode {
                key: seg,
                children: Vec::new(),
                keep: false,
            });
            nodes[parent].children.push(parent + 1);
        }
        let last = nodes.len() - 1;
        nodes[last].keep = true;
        let slots = vec![None; nodes.len()];
        PathReader { nodes, slots }
    }

    /// The value at the path in `text` (`None`: missing). `Err` when
    /// `text` is not JSON.
    pub fn read(&mut self, text: &str) -> Result<Option<Json>, serde_json::Error> {
        if self.nodes.len() == 1 {
            // The empty path: the whole document.
            return serde_json::from_str(text).map(Some);
        }
        walk(&self.nodes, &mut self.slots, text)?;
        Ok(self.slots.last_mut().and_then(Option::take))
    }
}

/// Reads `text` through the trie `nodes` into `slots` (cleared first),
/// the whole text checked to be one JSON value.
fn walk(
    nodes: &[PathNode<'_>],
    slots: &mut [Option<Json>],
    text: &str,
) -> Result<(), serde_json::Error> {
    slots.iter_mut().for_each(|s| *s = None);
    let mut de = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(
        Walk {
            nodes,
            slots,
            node: 0,
        },
        &mut de,
    )?;
    de.end()
}

/// Forgets what was read under `node` (a key met again: the last one
/// counts).
fn clear_under(nodes: &[PathNode<'_>], slots: &mut [Option<Json>], node: usize) {
    slots[node] = None;
    for &c in &nodes[node].children {
        clear_under(nodes, slots, c);
    }
}

/// Walks one JSON value at trie node `node`: an object's keys that are
/// children of the node are read (kept whole, or walked further), the
/// rest skipped; any other value is skipped (a path does not go through
/// it, as [`Json::get`] does not).
struct Walk<'a, 'f> {
    nodes: &'a [PathNode<'f>],
    slots: &'a mut [Option<Json>],
    node: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(child) = map.next_key_seed(Key {
            nodes: self.nodes,
            node: self.node,
        })? {
            match child {
                Some(c) => {
                    clear_under(self.nodes, self.slots, c);
                    if self.nodes[c].keep {
                        self.slots[c] = Some(map.next_value::<Json>()?);
                    } else {
                        map.next_value_seed(Walk {
                            nodes: self.nodes,
                            slots: &mut *self.slots,
                            node: c,
                        })?;
                    }
                }
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// An object key: the index of the trie child it names, if any.
struct Key<'a, 'f> {
    nodes: &'a [PathNode<'f>],
    node: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for Key<'_, '_> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Key<'_, '_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.nodes[self.node]
            .children
            .iter()
            .copied()
            .find(|&c| self.nodes[c].key == key))
    }
}

fn parse_doc(json: &Json, at: &str) -> Result<Filter, PluginError> {
    let Json::Object(map) = json else {
        return Err(err(
            at,
            format!("expected an object, found {}", type_name(json)),
        ));
    };
    let mut parts = Vec::new();
    for (key, value) in map {
        let here = format!("{at}.{key}");
        match key.as_str() {
            "$and" | "$or" => {
                let Json::Array(items) = value else {
                    return Err(err(&here, "expects an array of filters"));
                };
                if items.is_empty() {
                    return Err(err(&here, "expects at least one filter"));
                }
                let subs = items
                    .iter()
                    .enumerate()
                    .map(|(i, f)| parse_doc(f, &format!("{here}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                parts.push(if key == "$and" {
                    Filter::And(subs)
                } else {
                    Filter::Or(subs)
                });
            }
            "$not" => parts.push(Filter::Not(Box::new(parse_doc(value, &here)?))),
            k if k.starts_with('$') => {
                return Err(err(
                    &here,
                    format!("unknown operator {k} (filters combine with $and, $or, $not)"),
                ));
            }
            field => {
                let path: Vec<String> = field.split('.').map(str::to_string).collect();
                if path.iter().any(String::is_empty) {
                    return Err(err(&here, "empty segment in a dotted path"));
                }
                for op in parse_ops(value, &here)? {
                    parts.push(Filter::Field {
                        path: path.clone(),
                        op,
                    });
                }
            }
        }
    }
    Ok(match parts.len() {
        0 => Filter::All,
        1 => parts.pop().expect("one part"),
        _ => Filter::And(parts),
    })
}

fn parse_ops(value: &Json, at: &str) -> Result<Vec<FieldOp>, PluginError> {
    let Json::Object(ops) = value else {
        return match Scalar::from_json(value) {
            Some(s) => Ok(vec![FieldOp::Eq(s)]),
            None => Err(err(
                at,
                format!(
                    "a bare {} is not a value; use $in for lists",
                    type_name(value)
                ),
            )),
        };
    };
    if ops.is_empty() {
        return Err(err(at, "empty operator object"));
    }
    let mut out = Vec::new();
    for (op, arg) in ops {
        let here = format!("{at}.{op}");
        let scalar = || {
            Scalar::from_json(arg).ok_or_else(|| {
                err(
                    &here,
                    format!(
                        "expects a string, number, boolean or null, found {}",
                        type_name(arg)
                    ),
                )
            })
        };
        let ordered = || {
            let s = scalar()?;
            match s {
                Scalar::Number(_) | Scalar::String(_) => Ok(s),
                _ => Err(err(&here, "compares numbers or strings only")),
            }
        };
        let list = || {
            let Json::Array(items) = arg else {
                return Err(err(
                    &here,
                    format!("expects an array, found {}", type_name(arg)),
                ));
            };
            items
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    Scalar::from_json(x).ok_or_else(|| {
                        err(
                            &format!("{here}[{i}]"),
                            "expects a string, number, boolean or null",
                        )
                    })
                })
                .collect()
        };
        out.push(match op.as_str() {
            "$eq" => FieldOp::Eq(scalar()?),
            "$ne" => FieldOp::Ne(scalar()?),
            "$gt" => FieldOp::Gt(ordered()?),
            "$gte" => FieldOp::Gte(ordered()?),
            "$lt" => FieldOp::Lt(ordered()?),
            "$lte" => FieldOp::Lte(ordered()?),
            "$in" => FieldOp::In(list()?),
            "$nin" => FieldOp::Nin(list()?),
            "$exists" => match arg {
                Json::Bool(b) => FieldOp::Exists(*b),
                _ => return Err(err(&here, "expects true or false")),
            },
            other if other.starts_with('$') => {
                return Err(err(&here, format!("unknown operator {other}")));
            }
            other => {
                return Err(err(
                    &here,
                    format!("`{other}` is not an operator; nested objects are not values, use a dotted path (`a.{other}`)"),
                ));
            }
        });
    }
    Ok(out)
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(filter: Json, doc: Json) -> bool {
        Filter::parse(&filter).unwrap().matches(&doc)
    }

    #[test]
    fn operators() {
        let doc = json!({"kind": "fact", "n": 5, "tags": ["a", "b"], "src": {"app": "cli"}, "z": null, "ok": true});
        assert!(m(json!({"kind": "fact"}), doc.clone()));
        assert!(!m(json!({"kind": "event"}), doc.clone()));
        assert!(m(json!({"n": {"$gt": 4, "$lte": 5}}), doc.clone()));
        assert!(!m(json!({"n": {"$gt": 5}}), doc.clone()));
        assert!(m(json!({"n": {"$gte": 5.0}}), doc.clone()));
        assert!(m(json!({"tags": "b"}), doc.clone()), "array any-element");
        assert!(!m(json!({"tags": {"$ne": "b"}}), doc.clone()));
        assert!(m(json!({"tags": {"$nin": ["c", "d"]}}), doc.clone()));
        assert!(m(json!({"tags": {"$in": ["x", "a"]}}), doc.clone()));
        assert!(m(json!({"src.app": "cli"}), doc.clone()), "dotted path");
        assert!(m(json!({"src.nope": {"$exists": false}}), doc.clone()));
        assert!(m(json!({"missing": {"$ne": 1}}), doc.clone()));
        assert!(!m(json!({"missing": {"$gt": 1}}), doc.clone()));
        assert!(m(json!({"missing": null}), doc.clone()));
        assert!(m(json!({"z": null}), doc.clone()));
        assert!(!m(json!({"z": {"$exists": true}}), doc.clone()));
        assert!(m(json!({"ok": true}), doc.clone()));
        assert!(!m(json!({"ok": 1}), doc.clone()), "no cross-type equality");
        assert!(
            !m(json!({"kind": {"$gt": 1}}), doc.clone()),
            "different types compare false"
        );
        assert!(m(
            json!({"kind": {"$gte": "fact", "$lt": "factz"}}),
            doc.clone()
        ));
        assert!(m(
            json!({"$or": [{"kind": "event"}, {"$and": [{"n": 5}, {"$not": {"tags": "z"}}]}]}),
            doc.clone()
        ));
        assert!(m(json!({}), doc));
    }

    #[test]
    fn errors_point_at_the_clause() {
        let e = Filter::parse(&json!({"$or": [{"a": 1}, {"price": {"$gtt": 3}}]})).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(
            e.message().contains("filter.$or[1].price.$gtt"),
            "{}",
            e.message()
        );
        let e = Filter::parse(&json!({"a": [1, 2]})).unwrap_err();
        assert!(e.message().contains("use $in"), "{}", e.message());
        let e = Filter::parse(&json!({"a": {"$in": 3}})).unwrap_err();
        assert!(
            e.message().contains("filter.a.$in") && e.message().contains("array"),
            "{}",
            e.message()
        );
        let e = Filter::parse(&json!({"a": {"$gt": true}})).unwrap_err();
        assert!(
            e.message().contains("numbers or strings"),
            "{}",
            e.message()
        );
        let e = Filter::parse(&json!({"a": {"b": 1}})).unwrap_err();
        assert!(e.message().contains("dotted path"), "{}", e.message());
        let e = Filter::parse(&json!({"$nor": []})).unwrap_err();
        assert!(
            e.message().contains("unknown operator $nor"),
            "{}",
            e.message()
        );
        let e = Filter::parse_str("{not json").unwrap_err();
        assert!(e.message().contains("not valid JSON"), "{}", e.message());
        let e = Filter::parse(&json!([1])).unwrap_err();
        assert!(
            e.message().contains("expected an object"),
            "{}",
            e.message()
        );
    }
}
