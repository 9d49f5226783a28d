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
