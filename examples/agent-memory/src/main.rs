//! An agent's memory on strata: `remember` and `recall` against whatever SQL
//! backend `plugins.toml` assigns to the `sql` role. Switching from SQLite to
//! Postgres is a config change; this code stays as it is.
//!
//! ```text
//! cargo run --release -p strata-example-agent-memory -- remember "the user likes tea"
//! cargo run --release -p strata-example-agent-memory -- recall tea
//! ```

use serde::Deserialize;
use strata_host::{Error, Sql, Strata, named};

#[derive(Debug, Deserialize)]
struct Note {
    id: i64,
    content: String,
}

async fn schema(sql: &Sql) -> Result<(), Error> {
    sql.exec(
        "CREATE TABLE IF NOT EXISTS agent_notes (id INTEGER PRIMARY KEY, content TEXT NOT NULL)",
    )
    .await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = std::env::var("STRATA_CONFIG").unwrap_or_else(|_| "plugins.toml".into());
    let strata = Strata::load(config)?;
    let sql = strata.sql().await?;
    schema(&sql).await?;
    match args.first().map(String::as_str) {
        Some("remember") => {
            let text = args[1..].join(" ");
            let r = sql
                .run(
                    "INSERT INTO agent_notes (content) VALUES (:content)",
                    named! {"content" => text},
                )
                .await?;
            println!("remembered #{}", r.last_insert_rowid.unwrap_or_default());
        }
        Some("recall") => {
            let pattern = format!("%{}%", args[1..].join(" "));
            let notes: Vec<Note> = sql
                .all_as(
                    "SELECT id, content FROM agent_notes WHERE content LIKE ? ORDER BY id",
                    [pattern],
                )
                .await?;
            for n in notes {
                println!("#{} {}", n.id, n.content);
            }
        }
        _ => eprintln!("usage: agent-memory remember TEXT | recall WORDS"),
    }
    strata.close().await
}
