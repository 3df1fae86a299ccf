//! The report's plots, each drawn once per backend: SVG (text as SVG
//! `<text>`, for editing) and PNG (embedded in `report.html`).
//!
//! Text is rasterised with DejaVu Sans compiled into the binary
//! (`dejavu` crate, through plotters' `ab_glyph` font backend), so the PNGs
//! need no system font: they render the same on a fresh Debian machine with
//! no fonts installed.

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

use crate::capture::Layout;

const SIZE: (u32, u32) = (900, 480);

/// One scenario's (or task's) samples in job order.
pub struct Series {
    pub label: String,
    pub values: Vec<u64>,
    /// Its pWCET tail, for the exceedance plot.
    pub tail: Tail,
}

/// A series' pWCET tail: fitted, or withheld and why.
pub enum Tail {
    Fitted {
        /// `P(X > x)` per job.
        exceedance: Box<dyn Fn(f64) -> f64>,
        /// The largest x to draw it to (its pWCET at 1e-12).
        end: f64,
    },
    /// No pWCET for this series (`prism wcet` withholds it when the EVT
    /// gates fail); the reason.
    Withheld(String),
}

/// Scenario colours: alone, shared, partitioned, then more.
fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
    ];
    C[i % C.len()]
}

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is valid TrueType; a failure here would only
        // lose text, never the plot.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// `12345678` -> `12.3M`.
fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.3}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.3}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A plot that can draw itself on any backend.
pub trait Plot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Draws `plot` to `dir/name.svg` and `dir/name.png`; returns the PNG bytes.
pub fn render(plot: &impl Plot, dir: &Path, name: &str) -> Result<Vec<u8>> {
    register_fonts();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        plot.draw(&root).map_err(|e| anyhow!("drawing {name}.svg: {e}"))?;
        root.present().map_err(|e| anyhow!("drawing {name}.svg: {e}"))?;
    }
    std::fs::write(dir.join(format!("{name}.svg")), svg)?;
    let png = dir.join(format!("{name}.png"));
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        plot.draw(&root).map_err(|e| anyhow!("drawing {name}.png: {e}"))?;
        root.present().map_err(|e| anyhow!("drawing {name}.png: {e}"))?;
    }
    std::fs::read(&png).with_context(|| format!("reading {}", png.display()))
}

/// Counts per bucket of `width` from `lo`.
fn bucket_counts(values: &[u64], lo: u64, width: u64, buckets: usize) -> Vec<u64> {
    let mut c = vec![0u64; buckets];
    for &v in values {
        let b = ((v.saturating_sub(lo)) / width.max(1)) as usize;
        c[b.min(buckets - 1)] += 1;
    }
    c
}

/// Smallest and largest value of every series.
fn span(series: &[(usize, &Series)]) -> (u64, u64) {
    let all = || series.iter().flat_map(|(_, s)| s.values.iter().copied());
    (all().min().unwrap_or(0), all().max().unwrap_or(1))
}

/// Bucket layout covering every series: (lo, width, buckets).
fn buckets(series: &[(usize, &Series)]) -> (u64, u64, usize) {
    let (lo, hi) = span(series);
    let width = ((hi - lo) / 60).max(1);
    (lo, width, ((hi - lo) / width) as usize + 1)
}

/// Histogram(s) of job times; `log`: logarithmic counts (the overlay).
pub struct Histogram<'a> {
    pub title: String,
    pub unit: String,
    pub series: Vec<(usize, &'a Series)>,
    pub log: bool,
}

impl Plot for Histogram<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (lo, width, n) = buckets(&self.series);
        let counts: Vec<Vec<u64>> = self.series.iter().map(|(_, s)| bucket_counts(&s.values, lo, width, n)).collect();
        let top = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
        let x = lo as f64..(lo + width * n as u64) as f64;
        let mut b = ChartBuilder::on(root);
        b.caption(&self.title, ("sans-serif", 20)).margin(12).x_label_area_size(40).y_label_area_size(60);
        let xdesc = format!("job time ({}), bucket {} wide", self.unit, si(width as f64));
        if self.log {
            let mut chart = b.build_cartesian_2d(x, (0.8f64..top * 1.5).log_scale())?;
            chart.configure_mesh().x_label_formatter(&|v| si(*v)).x_desc(xdesc).y_desc("jobs (log)").draw()?;
            for ((ci, s), c) in self.series.iter().zip(&counts) {
                let col = colour(*ci);
                chart
                    .draw_series(c.iter().enumerate().filter(|(_, &n)| n > 0).map(|(i, &k)| {
                        let x0 = (lo + width * i as u64) as f64;
                        Rectangle::new([(x0, 0.8), (x0 + width as f64, k as f64)], col.mix(0.25).filled())
                    }))?
                    .label(s.label.clone())
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], col.filled()));
                chart.draw_series(c.iter().enumerate().filter(|(_, &n)| n > 0).map(|(i, &k)| {
                    let x0 = (lo + width * i as u64) as f64;
                    Rectangle::new([(x0, 0.8), (x0 + width as f64, k as f64)], col.stroke_width(1))
                }))?;
            }
            chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
        } else {
            let mut chart = b.build_cartesian_2d(x, 0f64..top * 1.05)?;
            chart.configure_mesh().x_label_formatter(&|v| si(*v)).x_desc(xdesc).y_desc("jobs").draw()?;
            for ((ci, _), c) in self.series.iter().zip(&counts) {
                let col = colour(*ci);
                chart.draw_series(c.iter().enumerate().filter(|(_, &n)| n > 0).map(|(i, &k)| {
                    let x0 = (lo + width * i as u64) as f64;
                    Rectangle::new([(x0, 0.0), (x0 + width as f64, k as f64)], col.filled())
                }))?;
            }
        }
        Ok(())
    }
}

/// Empirical exceedance `1 - CDF` on a log scale with the fitted tails
/// (of the series whose pWCET is not withheld).
pub struct Exceedance<'a> {
    pub unit: String,
    pub series: Vec<(usize, &'a Series)>,
}

impl Exceedance<'_> {
    /// What the plot draws: the fitted tails, or only the empirical
    /// exceedance and why the pWCET is withheld (the reason once if every
    /// withheld series has the same one).
    pub fn title(&self) -> String {
        let mut fitted = Vec::new();
        let mut withheld = Vec::new();
        let mut reasons: Vec<&str> = Vec::new();
        for (_, s) in &self.series {
            match &s.tail {
                Tail::Fitted { .. } => fitted.push(s.label.as_str()),
                Tail::Withheld(why) => {
                    withheld.push(s.label.as_str());
                    if !reasons.contains(&why.as_str()) {
                        reasons.push(why);
                    }
                }
            }
        }
        let why = match reasons[..] {
            [one] => one,
            _ => "see the pWCET tables",
        };
        match (fitted.is_empty(), withheld.is_empty()) {
            (_, true) => "Exceedance per job (1 - CDF) and fitted pWCET tails".into(),
            (true, false) => format!("Empirical exceedance per job (1 - CDF); pWCET withheld: {why}"),
            (false, false) => format!(
                "Exceedance per job (1 - CDF), fitted pWCET tails of {}; pWCET withheld for {}: {why}",
                fitted.join(", "),
                withheld.join(", ")
            ),
        }
    }
}

impl Plot for Exceedance<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (lo, hi) = span(&self.series);
        let (lo, mut hi) = (lo as f64, hi as f64);
        for (_, s) in &self.series {
            if let Tail::Fitted { end, .. } = s.tail {
                if end.is_finite() {
                    hi = hi.max(end);
                }
            }
        }
        let hi = if hi > lo { hi + (hi - lo) * 0.03 } else { lo + 1.0 };
        let mut chart = ChartBuilder::on(root)
            .caption(self.title(), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(lo..hi, (1e-13f64..1.5).log_scale())?;
        chart
            .configure_mesh()
            .x_label_formatter(&|v| si(*v))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .x_desc(format!("job time ({})", self.unit))
            .y_desc("P(job time > x)")
            .draw()?;
        for (ci, s) in &self.series {
            let col = colour(*ci);
            let mut v = s.values.clone();
            v.sort_unstable();
            let n = v.len() as f64;
            chart
                .draw_series(
                    v.iter().enumerate().map(|(i, &x)| Circle::new((x as f64, (n - i as f64) / n), 2, col.filled())),
                )?
                .label(format!("{} (observed)", s.label))
                .legend(move |(x, y)| Circle::new((x + 7, y), 3, col.filled()));
            if let Tail::Fitted { exceedance, end } = &s.tail {
                let (start, end) = (v[v.len() * 9 / 10] as f64, *end);
                let pts: Vec<(f64, f64)> = (0..=200)
                    .map(|i| start + (end - start) * i as f64 / 200.0)
                    .map(|x| (x, exceedance(x)))
                    .filter(|(_, p)| *p > 1e-13 && p.is_finite())
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts, col.stroke_width(2)))?
                    .label(format!("{} (fitted tail)", s.label))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], col.stroke_width(2)));
            }
        }
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
        Ok(())
    }
}

/// Job time against job number.
pub struct TimeSeries<'a> {
    pub unit: String,
    pub series: Vec<(usize, &'a Series)>,
}

impl Plot for TimeSeries<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let n = self.series.iter().map(|(_, s)| s.values.len()).max().unwrap_or(1).max(1);
        let (lo, hi) = span(&self.series);
        let (lo, hi) = (lo as f64, hi as f64);
        let pad = ((hi - lo) * 0.05).max(1.0);
        let mut chart = ChartBuilder::on(root)
            .caption("Job time per job", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..n as f64, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .y_label_formatter(&|v| si(*v))
            .x_desc("job")
            .y_desc(format!("job time ({})", self.unit))
            .draw()?;
        for (ci, s) in &self.series {
            let col = colour(*ci);
            chart
                .draw_series(LineSeries::new(
                    s.values.iter().enumerate().map(|(i, &v)| (i as f64, v as f64)),
                    col.stroke_width(1),
                ))?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], col.stroke_width(2)));
        }
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
        Ok(())
    }
}

/// Which colours each partition owns, per scenario, with its memory.
pub struct ColorMap<'a> {
    pub rows: Vec<(String, &'a Layout)>,
}

fn partition_colour(i: usize) -> RGBColor {
    const C: [RGBColor; 6] = [
        RGBColor(66, 133, 244),
        RGBColor(251, 140, 0),
        RGBColor(124, 179, 66),
        RGBColor(171, 71, 188),
        RGBColor(0, 172, 193),
        RGBColor(141, 110, 99),
    ];
    C[i % C.len()]
}

fn mib(b: u64) -> String {
    if b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else {
        format!("{} KiB", b >> 10)
    }
}

impl Plot for ColorMap<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        root.draw(&Text::new("Page colours owned by each partition", (300, 10), ("sans-serif", 20)))?;
        let colors = self.rows.iter().map(|(_, l)| l.colors).max().unwrap_or(1).max(1);
        let (left, top, right) = (130i32, 50i32, 880i32);
        let cell = ((right - left) / colors as i32).max(1);
        let row_h = 60i32;
        let mut names: Vec<String> = Vec::new();
        for (r, (scenario, layout)) in self.rows.iter().enumerate() {
            let y = top + r as i32 * (row_h + 30);
            root.draw(&Text::new(scenario.clone(), (10, y + row_h / 2 - 8), ("sans-serif", 16)))?;
            let sets: Vec<(usize, cache_color::ColorSet)> = layout
                .partitions
                .iter()
                .filter_map(|p| {
                    let i = names.iter().position(|n| n == &p.name).unwrap_or_else(|| {
                        names.push(p.name.clone());
                        names.len() - 1
                    });
                    cache_color::partition::parse_colors(&p.colors, layout.colors).ok().map(|s| (i, s))
                })
                .collect();
            for c in 0..layout.colors {
                let x = left + c as i32 * cell;
                let owners: Vec<usize> = sets.iter().filter(|(_, s)| s.contains(c)).map(|(i, _)| *i).collect();
                if owners.is_empty() {
                    root.draw(&Rectangle::new([(x, y), (x + cell, y + row_h)], RGBColor(230, 230, 230).filled()))?;
                }
                let h = row_h / owners.len().max(1) as i32;
                for (k, o) in owners.iter().enumerate() {
                    let y0 = y + k as i32 * h;
                    root.draw(&Rectangle::new([(x, y0), (x + cell, y0 + h)], partition_colour(*o).filled()))?;
                }
                root.draw(&Rectangle::new([(x, y), (x + cell, y + row_h)], BLACK.stroke_width(1)))?;
                if cell >= 18 || c % 8 == 0 {
                    root.draw(&Text::new(c.to_string(), (x + 2, y + row_h + 4), ("sans-serif", 11)))?;
                }
            }
            let mem: Vec<String> = layout
                .partitions
                .iter()
                .map(|p| {
                    format!(
                        "{} {}: {}",
                        p.name,
                        p.colors,
                        p.memory.map(mib).unwrap_or_else(|| "memory not given".into())
                    )
                })
                .collect();
            root.draw(&Text::new(mem.join("   "), (left, y + row_h + 16), ("sans-serif", 12)))?;
        }
        let ly = top + self.rows.len() as i32 * (row_h + 30) + 10;
        for (i, n) in names.iter().enumerate() {
            let x = left + i as i32 * 150;
            root.draw(&Rectangle::new([(x, ly), (x + 14, ly + 14)], partition_colour(i).filled()))?;
            root.draw(&Text::new(n.clone(), (x + 20, ly), ("sans-serif", 14)))?;
        }
        if self.rows.is_empty() {
            root.draw(&Text::new("no colour layout was recorded for this run", (left, top + 20), ("sans-serif", 16)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::LayoutPartition;

    #[test]
    fn plots_render_to_png_and_svg_with_the_embedded_font() {
        let dir = std::env::temp_dir().join(format!("prism-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Series {
            label: "alone".into(),
            values: (0..200).map(|i| 1000 + (i * 37) % 101).collect(),
            tail: Tail::Withheld("sample too small".into()),
        };
        let png = render(
            &Histogram { title: "t".into(), unit: "cycles".into(), series: vec![(0, &s)], log: false },
            &dir,
            "h",
        )
        .unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(dir.join("h.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("job time (cycles)"));
        let layout = Layout {
            colors: 16,
            partitions: vec![LayoutPartition { name: "rt".into(), colors: "0-7".into(), memory: Some(4 << 20) }],
        };
        let png2 = render(&ColorMap { rows: vec![("alone".into(), &layout)] }, &dir, "c").unwrap();
        // Text was drawn: the PNG of the labelled map differs from one without labels.
        let empty = render(&ColorMap { rows: vec![] }, &dir, "e").unwrap();
        assert_ne!(png2, empty);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn series(label: &str, tail: Tail) -> Series {
        Series { label: label.into(), values: vec![1, 2, 3], tail }
    }

    fn fitted() -> Tail {
        Tail::Fitted { exceedance: Box::new(|x| (-x).exp()), end: 10.0 }
    }

    #[test]
    fn the_exceedance_title_says_what_is_drawn() {
        let title = |s: &[&Series]| {
            Exceedance { unit: "cycles".into(), series: s.iter().enumerate().map(|(i, s)| (i, *s)).collect() }.title()
        };
        let (a, p) = (series("alone", fitted()), series("partitioned", fitted()));
        assert_eq!(title(&[&a, &p]), "Exceedance per job (1 - CDF) and fitted pWCET tails");
        // Every fit withheld: no word of fitted tails, and the reason.
        let why = "the i.i.d. tests failed (runs p = 0.001)";
        let (wa, ws) = (series("alone", Tail::Withheld(why.into())), series("shared", Tail::Withheld(why.into())));
        let t = title(&[&wa, &ws]);
        assert_eq!(t, format!("Empirical exceedance per job (1 - CDF); pWCET withheld: {why}"));
        assert!(!t.contains("fitted"), "{t}");
        // Some fitted, some withheld: which is which.
        let small = series("partitioned", Tail::Withheld("sample too small".into()));
        assert_eq!(
            title(&[&a, &ws, &small]),
            "Exceedance per job (1 - CDF), fitted pWCET tails of alone; pWCET withheld for shared, partitioned: see \
             the pWCET tables"
        );
    }
}

#[cfg(test)]
mod font_tests {
    use super::*;

    /// Text becomes pixels without any system font: the glyphs come from
    /// the embedded DejaVu Sans.
    #[test]
    fn text_is_rasterised_from_the_embedded_font() {
        register_fonts();
        let mut buf = vec![255u8; 200 * 50 * 3];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (200, 50)).into_drawing_area();
            root.draw(&Text::new("Prism 123", (5, 5), ("sans-serif", 30))).unwrap();
            root.present().unwrap();
        }
        let dark = buf.chunks(3).filter(|p| p[0] < 128).count();
        assert!(dark > 200, "only {dark} dark pixels: no glyphs drawn");
    }
}
