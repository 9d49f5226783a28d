//! The knowledge graph: typed nodes, weighted typed directed edges, and
//! traversals by recursive CTE that give the same answers on SQLite and
//! Postgres.
//!
//! A walk carries the path it took as text (node ids between `\x1f`
//! separators, which node ids therefore may not contain) and never steps
//! onto a node already on it, so cycles end; every walk stops at the
//! depth asked (at most [`MAX_DEPTH`]). Walks enumerate simple paths,
//! which grows fast on dense graphs: keep depths small there. The result
//! lists are sorted in Rust by byte order, not by the database's text
//! collation (Postgres' and SQLite's differ), so both give identical lists.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use strata_host::{Dialect, Sql, params};

use crate::{MemoryError, Result};

/// The deepest walk [`Graph::traverse`] and [`Graph::shortest_path`] take.
pub const MAX_DEPTH: u32 = 16;

const SEP: &str = "\u{1f}";

/// A node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Its id (any text without U+001F).
    pub id: String,
    /// Its type ("person", "project", …).
    pub kind: String,
    /// A display name.
    pub name: String,
    /// Free-form properties (a JSON object).
    pub props: Json,
}

/// A directed edge.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    /// Where it starts.
    pub src: String,
    /// Where it ends.
    pub dst: String,
    /// Its type ("knows", "works_on", …); one edge per (src, dst, kind).
    pub kind: String,
    /// Its weight.
    pub weight: f64,
    /// Free-form properties (a JSON object).
    pub props: Json,
}

/// Which edges a step follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From `src` to `dst`.
    Out,
    /// From `dst` back to `src`.
    In,
    /// Either way.
    Both,
}

/// A node reached by a walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reached {
    /// The node's id.
    pub id: String,
    /// The fewest steps it took.
    pub depth: u32,
}

/// The graph, on the memory's SQL backend ([`crate::Memory::graph`]).
pub struct Graph<'a> {
    sql: &'a Sql,
}

fn check_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.contains(SEP) {
        return Err(MemoryError::invalid(format!(
            "{what} id {id:?}: must be non-empty text without U+001F"
        )));
    }
    Ok(())
}

fn object(what: &str, props: Json) -> Result<String> {
    crate::json_object(&format!("{what} properties"), props).map(|p| p.to_string())
}

fn parse_props(text: &str) -> Result<Json> {
    serde_json::from_str(text).map_err(|e| MemoryError::Corrupt {
        message: format!("graph properties are not JSON: {e}"),
    })
}

fn check_depth(depth: u32) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(MemoryError::invalid(format!(
            "depth {depth} is past the limit of {MAX_DEPTH}"
        )));
    }
    Ok(())
}

impl<'a> Graph<'a> {
    pub(crate) fn new(sql: &'a Sql) -> Graph<'a> {
        Graph { sql }
    }

    /// Adds node `id`, or replaces its kind, name and properties.
    pub async fn add_node(&self, id: &str, kind: &str, name: &str, props: Json) -> Result<()> {
        check_id("node", id)?;
        let props = object("node", props)?;
        self.sql
            .run(
                "INSERT INTO memory_nodes (id, kind, name, props) VALUES (?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name, props = excluded.props",
                params![id, kind, name, props],
            )
            .await?;
        Ok(())
    }

    /// Node `id`, if it exists.
    pub async fn node(&self, id: &str) -> Result<Option<Node>> {
        let row = self
            .sql
            .get(
                "SELECT id, kind, name, props FROM memory_nodes WHERE id = ?",
                params![id],
            )
            .await?;
        row.map(|r| {
            Ok(Node {
                id: r.get("id")?,
                kind: r.get("kind")?,
                name: r.get("name")?,
                props: parse_props(&r.get::<String>("props")?)?,
            })
        })
        .transpose()
    }

    /// Adds the edge `src -kind-> dst` (or replaces its weight and
    /// properties); both nodes must exist.
    pub async fn add_edge(
        &self,
        src: &str,
        dst: &str,
        kind: &str,
        weight: f64,
        props: Json,
    ) -> Result<()> {
        check_id("edge source", src)?;
        check_id("edge target", dst)?;
        if !weight.is_finite() {
            return Err(MemoryError::invalid(format!(
                "edge weight must be a finite number, got {weight}"
            )));
        }
        let props = object("edge", props)?;
        for id in [src, dst] {
            if self.node(id).await?.is_none() {
                return Err(MemoryError::invalid(format!(
                    "edge {src} -{kind}-> {dst}: no node {id:?} (add it first)"
                )));
            }
        }
        self.sql
            .run(
                "INSERT INTO memory_edges (src, dst, kind, weight, props) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (src, dst, kind) DO UPDATE SET weight = excluded.weight, props = excluded.props",
                params![src, dst, kind, weight, props],
            )
            .await?;
        Ok(())
    }

    /// Removes node `id` and every edge touching it; whether it existed.
    pub async fn remove_node(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.sql
            .transaction(|tx| {
                Box::pin(async move {
                    tx.run(
                        "DELETE FROM memory_edges WHERE src = ? OR dst = ?",
                        params![&id, &id],
                    )
                    .await?;
                    tx.run(
                        "DELETE FROM memory_trace_links WHERE node_id = ?",
                        params![&id],
                    )
                    .await?;
                    let n = tx
                        .run("DELETE FROM memory_nodes WHERE id = ?", params![&id])
                        .await?
                        .changes;
                    Ok::<bool, strata_host::Error>(n > 0)
                })
            })
            .await
            .map_err(Into::into)
    }

    /// The edges at node `id` in `direction`, of `kind` if given, sorted
    /// by (src, dst, kind).
    pub async fn edges(
        &self,
        id: &str,
        direction: Direction,
        kind: Option<&str>,
    ) -> Result<Vec<Edge>> {
        let side = match direction {
            Direction::Out => "src = ?",
            Direction::In => "dst = ?",
            Direction::Both => "(src = ? OR dst = ?)",
        };
        let mut values = vec![strata_host::Value::from(id)];
        if direction == Direction::Both {
            values.push(id.into());
        }
        let kind_cond = match kind {
            Some(k) => {
                values.push(k.into());
                " AND kind = ?"
            }
            None => "",
        };
        let rows = self
            .sql
            .all(
                &format!(
                    "SELECT src, dst, kind, weight, props FROM memory_edges WHERE {side}{kind_cond}"
                ),
                strata_host::Params::Positional(values),
            )
            .await?;
        let mut edges = rows
            .iter()
            .map(|r| {
                Ok(Edge {
                    src: r.get("src")?,
                    dst: r.get("dst")?,
                    kind: r.get("kind")?,
                    weight: r.get("weight")?,
                    props: parse_props(&r.get::<String>("props")?)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        edges.sort_by(|a, b| (&a.src, &a.dst, &a.kind).cmp(&(&b.src, &b.dst, &b.kind)));
        Ok(edges)
    }

    /// The distinct neighbours of `id` one step away in `direction`,
    /// sorted by id.
    pub async fn neighbours(&self, id: &str, direction: Direction) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .edges(id, direction, None)
            .await?
            .into_iter()
            .map(|e| if e.src == id { e.dst } else { e.src })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The recursive walk from `start` up to `depth` steps, as SQL: rows
    /// `(id, depth, path)`.
    fn walk_sql(&self, direction: Direction, kind: bool) -> String {
        let pos = match self.sql.dialect() {
            Dialect::Postgres => "strpos",
            _ => "instr",
        };
        let kind_cond = if kind { " AND e.kind = ?" } else { "" };
        // One recursive term (Postgres allows no more), over the edges
        // seen from the side the walk leaves by.
        let edges = match direction {
            Direction::Out => "SELECT src AS here, dst AS next, kind FROM memory_edges",
            Direction::In => "SELECT dst AS here, src AS next, kind FROM memory_edges",
            Direction::Both => {
                "SELECT src AS here, dst AS next, kind FROM memory_edges
                 UNION ALL SELECT dst AS here, src AS next, kind FROM memory_edges"
            }
        };
        format!(
            "WITH RECURSIVE walk(id, depth, path) AS (
                SELECT CAST(? AS TEXT), 0, CAST(? AS TEXT)
                UNION ALL
                SELECT e.next, w.depth + 1, w.path || e.next || '{SEP}'
                FROM walk w JOIN ({edges}) e ON e.here = w.id
                WHERE w.depth < ?{kind_cond} AND {pos}(w.path, '{SEP}' || e.next || '{SEP}') = 0
            )"
        )
    }

    fn walk_params(&self, start: &str, depth: u32, kind: Option<&str>) -> Vec<strata_host::Value> {
        let mut v: Vec<strata_host::Value> =
            vec![start.into(), format!("{SEP}{start}{SEP}").into()];
        v.push(i64::from(depth).into());
        if let Some(k) = kind {
            v.push(k.into());
        }
        v
    }

    /// Every node within `depth` steps of `start` (not `start` itself),
    /// with the fewest steps to it, sorted by (depth, id).
    pub async fn traverse(
        &self,
        start: &str,
        depth: u32,
        direction: Direction,
        kind: Option<&str>,
    ) -> Result<Vec<Reached>> {
        check_id("start node", start)?;
        check_depth(depth)?;
        let sql = format!(
            "{} SELECT id, MIN(depth) AS depth FROM walk WHERE id <> ? GROUP BY id",
            self.walk_sql(direction, kind.is_some())
        );
        let mut values = self.walk_params(start, depth, kind);
        values.push(start.into());
        let rows = self
            .sql
            .all(&sql, strata_host::Params::Positional(values))
            .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(Reached {
                    id: r.get("id")?,
                    depth: r.get::<i64>("depth")? as u32,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| (a.depth, &a.id).cmp(&(b.depth, &b.id)));
        Ok(out)
    }

    /// A shortest path (fewest steps) from `from` to `to` within `depth`
    /// steps, as node ids from `from` to `to`; of several, the least in
    /// byte order. `None` when `to` is not reachable within `depth`.
    pub async fn shortest_path(
        &self,
        from: &str,
        to: &str,
        depth: u32,
        direction: Direction,
    ) -> Result<Option<Vec<String>>> {
        check_id("start node", from)?;
        check_id("end node", to)?;
        check_depth(depth)?;
        if from == to {
            return Ok(self.node(from).await?.map(|n| vec![n.id]));
        }
        let sql = format!(
            "{} SELECT depth, path FROM walk WHERE id = ? AND depth = (SELECT MIN(depth) FROM walk WHERE id = ?)",
            self.walk_sql(direction, false)
        );
        let mut values = self.walk_params(from, depth, None);
        values.push(to.into());
        values.push(to.into());
        let rows = self
            .sql
            .all(&sql, strata_host::Params::Positional(values))
            .await?;
        let mut paths: BTreeMap<Vec<String>, ()> = BTreeMap::new();
        for r in &rows {
            let path: String = r.get("path")?;
            let nodes: Vec<String> = path
                .split(SEP)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            paths.insert(nodes, ());
        }
        Ok(paths.into_keys().next())
    }
}
