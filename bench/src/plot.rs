//! The recall-vs-QPS plot of the `vectors` benchmark (plotters, bitmap
//! backend). Text needs a TrueType font file: Debian's `fonts-dejavu-core`
//! (`/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf`) or the file named by
//! `STRATA_BENCH_FONT`. Without one the plot is drawn without any text.

use std::path::Path;

use plotters::{
    coord::Shift,
    prelude::*,
    style::{FontStyle, register_font},
};

/// One panel: one collection size.
pub(crate) struct Panel {
    /// Panel caption.
    pub title: String,
    /// HNSW through the plugin: (recall, QPS, ef).
    pub plugin: Vec<(f64, f64, usize)>,
    /// hnsw_rs direct: (recall, QPS, ef).
    pub direct: Vec<(f64, f64, usize)>,
    /// Exact through the plugin: (recall, QPS).
    pub exact: Option<(f64, f64)>,
    /// Legend names of the plugin and direct series.
    pub labels: (&'static str, &'static str),
}

const FONT: &str = "sans-serif";
const FONT_FILES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers a font for plot text; false when none could be read.
pub(crate) fn load_font() -> bool {
    let candidates: Vec<String> = match std::env::var("STRATA_BENCH_FONT") {
        Ok(f) => vec![f],
        Err(_) => FONT_FILES.iter().map(|s| s.to_string()).collect(),
    };
    for file in candidates {
        if let Ok(bytes) = std::fs::read(&file) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if register_font(FONT, FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    eprintln!(
        "[vectors] no usable font file (install Debian's fonts-dejavu-core or set STRATA_BENCH_FONT): the plot has no text"
    );
    false
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Draws one panel per size, side by side, into a PNG at `path`.
pub(crate) fn draw(path: &Path, panels: &[Panel], font: bool) -> Result<(), String> {
    let cols = panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (620 * cols, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    for (area, p) in root.split_evenly((1, cols as usize)).iter().zip(panels) {
        panel(area, p, font)?;
    }
    root.present().map_err(err)
}

const PLUGIN: RGBColor = RGBColor(214, 39, 40);
const DIRECT: RGBColor = RGBColor(31, 119, 180);

fn panel(area: &Area, p: &Panel, font: bool) -> Result<(), String> {
    let all: Vec<(f64, f64)> = p
        .plugin
        .iter()
        .chain(&p.direct)
        .map(|&(r, q, _)| (r, q))
        .chain(p.exact)
        .filter(|(r, q)| r.is_finite() && q.is_finite() && *q > 0.0)
        .collect();
    if all.is_empty() {
        return Ok(());
    }
    let rmin = all.iter().map(|x| x.0).fold(f64::INFINITY, f64::min);
    let qmin = all.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
    let qmax = all.iter().map(|x| x.1).fold(0.0, f64::max);
    let x0 = ((rmin - 0.03) * 20.0).floor().max(0.0) / 20.0;
    let (x1, y0, y1) = (1.02, qmin / 1.6, qmax * 1.6);

    let mut builder = ChartBuilder::on(area);
    builder.margin(18);
    if font {
        builder
            .caption(&p.title, (FONT, 22))
            .x_label_area_size(42)
            .y_label_area_size(64);
    }
    let mut chart = builder
        .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    // plotters' light lines crowd into a dark band on log axes.
    mesh.light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(215, 215, 215));
    if font {
        mesh.x_desc("recall@10")
            .y_desc("queries per second (log)")
            .x_label_formatter(&|x| format!("{x:.2}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .y_labels(12)
            .label_style((FONT, 14));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(err)?;

    // ef labels: plugin's to the left of its points, hnsw_rs's to the right.
    for (series, color, name, dx) in [
        (&p.plugin, PLUGIN, p.labels.0, -30),
        (&p.direct, DIRECT, p.labels.1, 6),
    ] {
        if series.is_empty() {
            continue;
        }
        let line = chart
            .draw_series(LineSeries::new(
                series.iter().map(|&(r, q, _)| (r, q)),
                color.stroke_width(2),
            ))
            .map_err(err)?;
        if font {
            line.label(name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
            chart
                .draw_series(series.iter().map(|&(r, q, ef)| {
                    EmptyElement::at((r, q))
                        + Circle::new((0, 0), 4, color.filled())
                        + Text::new(
                            format!("{ef}"),
                            (dx, -16),
                            (FONT, 13).into_font().color(&color),
                        )
                }))
                .map_err(err)?;
        } else {
            chart
                .draw_series(
                    series
                        .iter()
                        .map(|&(r, q, _)| Circle::new((r, q), 4, color.filled())),
                )
                .map_err(err)?;
        }
    }
    if let Some((r, q)) = p.exact {
        let exact = chart
            .draw_series(std::iter::once(TriangleMarker::new(
                (r, q),
                8,
                BLACK.filled(),
            )))
            .map_err(err)?;
        if font {
            exact
                .label("exact (plugin)")
                .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, BLACK.filled()));
        }
    }
    if font {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}
