//! How results are printed: tables and sizes.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

/// An empty table in the CLI's style (condensed UTF-8 borders, fitted to the terminal).
pub(crate) fn table() -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t
}

/// `bytes` as megabytes with one decimal (`12.3 MB`).
pub(crate) fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Characters a table cell shows of a long value (`--json` prints it whole):
/// laying out a table measures every character of every cell, which for a
/// 100 MB metadata document takes minutes.
pub(crate) const MAX_CELL: usize = 200;

/// `text` cut to [`MAX_CELL`] characters, saying how long it was.
pub(crate) fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_CELL) {
        None => text.to_string(),
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
    }
}

/// A JSON value as text, serialised only as far as a cell shows (a huge
/// document is never written out whole).
pub(crate) fn clip_json(value: &serde_json::Value) -> String {
    struct Bounded {
        buf: Vec<u8>,
        total: usize,
    }
    impl std::io::Write for Bounded {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.total += data.len();
            let room = (MAX_CELL * 4 + 4).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&data[..data.len().min(room)]);
            if room < data.len() {
                return Err(std::io::Error::other("cell full"));
            }
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Bounded {
        buf: Vec::new(),
        total: 0,
    };
    let complete = serde_json::to_writer(&mut out, value).is_ok();
    let text = String::from_utf8_lossy(&out.buf);
    if complete {
        return clip(&text);
    }
    match text.char_indices().nth(MAX_CELL) {
        Some((at, _)) => format!("{}… (longer)", &text[..at]),
        None => format!("{text}… (longer)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_are_cut_short_ones_kept() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(1000);
        let c = clip(&long);
        assert!(
            c.starts_with(&"é".repeat(MAX_CELL)) && c.ends_with("… (2000 bytes)"),
            "{c}"
        );
        let doc = serde_json::json!({"big": "x".repeat(10_000_000)});
        let c = clip_json(&doc);
        assert!(
            c.len() < 1000 && c.starts_with("{\"big\":\"xxx") && c.ends_with("… (longer)"),
            "{c}"
        );
        assert_eq!(clip_json(&serde_json::json!({"a": 1})), "{\"a\":1}");
    }
}
