//! Server-side SVG charts: time lines (with an optional min–max band per line and a
//! dashed limit) and grouped bars. Each chart is one self-contained `<svg>` element with
//! inline attributes only — no scripts, no fonts, no external references — so the
//! simulator's report and the console can both embed it as it is. Nothing here knows
//! about strategies: callers give each series its name, colour and dash pattern.
//!
//! Lines that coincide stay visible: series are drawn first to last with decreasing
//! stroke widths, so a line drawn over another leaves the wider one showing at its
//! edges, and callers give each series its own dash pattern.

use std::fmt::{self, Write};

/// Width of every chart's view box; the SVG scales to its container.
pub const WIDTH: f64 = 720.0;
/// Height of every chart's view box.
pub const HEIGHT: f64 = 250.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = WIDTH - 24.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = HEIGHT - 28.0;
const LIMIT_COLOUR: &str = "#c0392b";

/// One line of a [`LineChart`], or one set of bars of a [`BarChart`].
#[derive(Debug, Clone)]
pub struct Series<'a> {
    /// Shown as the line's tooltip.
    pub name: &'a str,
    /// A CSS colour.
    pub colour: &'a str,
    /// An SVG `stroke-dasharray` (`"6 3"`), or `None` for a solid line.
    pub dash: Option<&'a str>,
    /// One value per x position (per date for lines, per group for bars).
    pub values: Vec<f64>,
    /// Lowest and highest value at each position, drawn as a pale band behind the
    /// line (the spread between simulation seeds); lines only.
    pub band: Option<(Vec<f64>, Vec<f64>)>,
}

impl<'a> Series<'a> {
    /// A plain series without a band.
    pub fn new(name: &'a str, colour: &'a str, dash: Option<&'a str>, values: Vec<f64>) -> Self {
        Series {
            name,
            colour,
            dash,
            values,
            band: None,
        }
    }
}

/// A horizontal dashed line marking a limit, labelled at the right.
#[derive(Debug, Clone)]
pub struct Limit<'a> {
    /// Where it is, in the chart's units.
    pub value: f64,
    /// Its label, such as `capacity line (12)`.
    pub label: &'a str,
}

/// Lines over days: one x position per date (`YYYY-MM-DD`).
#[derive(Debug, Clone)]
pub struct LineChart<'a> {
    /// The y axis's unit, shown at its top left.
    pub unit: &'a str,
    /// Read by screen readers.
    pub title: &'a str,
    /// One date per x position.
    pub dates: Vec<&'a str>,
    /// The lines, drawn first to last.
    pub series: Vec<Series<'a>>,
    /// An optional limit line.
    pub limit: Option<Limit<'a>>,
}

/// Grouped bars: one group per x label, one bar per series in each group.
#[derive(Debug, Clone)]
pub struct BarChart<'a> {
    /// The y axis's unit.
    pub unit: &'a str,
    /// Read by screen readers.
    pub title: &'a str,
    /// What the x axis counts, shown at the top right (`touches before converting →`).
    pub x_caption: &'a str,
    /// One label per group.
    pub labels: Vec<String>,
    /// The bars; `values[g]` is the bar in group `g`. Tooltips read
    /// `{name}: {value} {unit} at {label}`.
    pub series: Vec<Series<'a>>,
}

/// The `<svg>` element of a line chart.
pub fn line_chart(chart: &LineChart) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String never fails.
    let _ = write_line_chart(&mut out, chart);
    out
}

/// The `<svg>` element of a grouped bar chart.
pub fn bar_chart(chart: &BarChart) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let _ = write_bar_chart(&mut out, chart);
    out
}

fn open_svg(out: &mut String, title: &str) -> fmt::Result {
    writeln!(
        out,
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">",
        escape(title)
    )
}

/// A y axis from zero to `top` with a tick every `step`; steps are whole numbers.
struct Axis {
    top: f64,
    step: f64,
}

impl Axis {
    fn for_max(max: f64) -> Axis {
        // An all-zero series still needs a non-zero range to divide by.
        let max = if max.is_finite() && max > 0.0 {
            max
        } else {
            1.0
        };
        let rough = max / 4.0;
        let magnitude = 10f64.powf(rough.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= rough)
            .unwrap_or(10.0 * magnitude)
            .max(1.0);
        Axis {
            top: (max / step).ceil() * step,
            step,
        }
    }

    fn y(&self, v: f64) -> f64 {
        BOTTOM - v.clamp(0.0, self.top) / self.top * (BOTTOM - TOP)
    }

    fn write(&self, out: &mut String, unit: &str) -> fmt::Result {
        let ticks = (self.top / self.step).round() as u32;
        for i in 0..=ticks {
            let v = f64::from(i) * self.step;
            let y = self.y(v);
            let stroke = if i == 0 { "#999" } else { "#eee" };
            writeln!(
                out,
                "<line x1=\"{LEFT}\" x2=\"{RIGHT}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{stroke}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT - 6.0,
                y + 4.0,
                tick_number(v)
            )?;
        }
        writeln!(out, "<text x=\"4\" y=\"12\">{}</text>", escape(unit))
    }
}

fn x_labels(out: &mut String, labels: &[(f64, String)]) -> fmt::Result {
    for (x, label) in labels {
        writeln!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{BOTTOM}\" y2=\"{:.1}\" stroke=\"#999\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            BOTTOM + 4.0,
            BOTTOM + 17.0,
            escape(label)
        )?;
    }
    Ok(())
}

fn empty_chart(out: &mut String, message: &str) -> fmt::Result {
    writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fafafa\" \
         stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        RIGHT - LEFT,
        BOTTOM - TOP,
        (LEFT + RIGHT) / 2.0,
        (TOP + BOTTOM) / 2.0,
        escape(message)
    )
}

/// Stroke width of the `i`-th of `n` lines: the first widest, so later lines drawn
/// over it leave its edges showing.
fn stroke_width(i: usize, n: usize) -> f64 {
    1.4 + 1.3 * (n.saturating_sub(1 + i)) as f64
}

fn write_line_chart(out: &mut String, chart: &LineChart) -> fmt::Result {
    open_svg(out, chart.title)?;
    if chart.dates.is_empty() {
        empty_chart(out, "No days were simulated.")?;
        return out.write_str("</svg>\n");
    }
    let n = chart.dates.len();
    let x = |day: usize| match n {
        1 => (LEFT + RIGHT) / 2.0,
        n => LEFT + day as f64 / (n - 1) as f64 * (RIGHT - LEFT),
    };
    let max = chart
        .series
        .iter()
        .flat_map(|s| {
            let band = s.band.as_ref().map(|(_, high)| high.as_slice());
            s.values.iter().chain(band.unwrap_or_default())
        })
        .copied()
        .chain(chart.limit.as_ref().map(|l| l.value))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let axis = Axis::for_max(max);
    axis.write(out, chart.unit)?;
    let labels: Vec<(f64, String)> = date_ticks(&chart.dates)
        .into_iter()
        .map(|(i, label)| (x(i), label))
        .collect();
    x_labels(out, &labels)?;

    // Bands first, all of them, so no band hides a line.
    for series in &chart.series {
        let Some((low, high)) = &series.band else {
            continue;
        };
        if low.len() < 2 || low.len() != high.len() {
            continue;
        }
        let mut path = String::with_capacity(low.len() * 28);
        for (i, v) in high.iter().enumerate() {
            let command = if i == 0 { 'M' } else { 'L' };
            write!(path, "{command}{:.1},{:.1}", x(i), axis.y(*v))?;
        }
        for (i, v) in low.iter().enumerate().rev() {
            write!(path, "L{:.1},{:.1}", x(i), axis.y(*v))?;
        }
        writeln!(
            out,
            "<path class=\"band\" d=\"{path}Z\" fill=\"{}\" fill-opacity=\"0.15\" stroke=\"none\"/>",
            series.colour
        )?;
    }

    let count = chart.series.len();
    for (i, series) in chart.series.iter().enumerate() {
        let name = escape(series.name);
        if series.values.len() == 1 {
            writeln!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"><title>{name}</title></circle>",
                x(0),
                axis.y(series.values[0]),
                series.colour
            )?;
            continue;
        }
        let mut path = String::with_capacity(series.values.len() * 14);
        for (i, v) in series.values.iter().enumerate() {
            let command = if i == 0 { 'M' } else { 'L' };
            write!(path, "{command}{:.1},{:.1}", x(i), axis.y(*v))?;
        }
        let dash = series
            .dash
            .map(|d| format!(" stroke-dasharray=\"{d}\""))
            .unwrap_or_default();
        writeln!(
            out,
            "<path d=\"{path}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{:.1}\"{dash} \
             stroke-linejoin=\"round\"><title>{name}</title></path>",
            series.colour,
            stroke_width(i, count)
        )?;
    }

    if let Some(limit) = chart.limit.as_ref().filter(|l| l.value.is_finite()) {
        let y = axis.y(limit.value);
        writeln!(
            out,
            "<line class=\"limit\" x1=\"{LEFT}\" x2=\"{RIGHT}\" y1=\"{y:.1}\" \
             y2=\"{y:.1}\" stroke=\"{LIMIT_COLOUR}\" stroke-width=\"1.5\" \
             stroke-dasharray=\"6 4\"/><text x=\"{RIGHT}\" y=\"{:.1}\" text-anchor=\"end\" \
             style=\"fill:{LIMIT_COLOUR}\">{}</text>",
            y - 4.0,
            escape(limit.label)
        )?;
    }
    out.write_str("</svg>\n")
}

fn write_bar_chart(out: &mut String, chart: &BarChart) -> fmt::Result {
    open_svg(out, chart.title)?;
    let groups = chart.labels.len();
    let any = chart
        .series
        .iter()
        .any(|s| s.values.iter().any(|v| *v > 0.0));
    if groups == 0 || !any {
        empty_chart(out, "Nothing to show.")?;
        return out.write_str("</svg>\n");
    }
    let max = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let axis = Axis::for_max(max);
    axis.write(out, chart.unit)?;
    let group = (RIGHT - LEFT) / groups as f64;
    let bar = group * 0.8 / chart.series.len().max(1) as f64;
    // At most about fifteen labels fit; the last group is always labelled, and the
    // regular label right before it is dropped when the two would run together.
    let every = groups.div_ceil(15);
    let labels: Vec<(f64, String)> = (0..groups)
        .filter(|g| {
            let last = *g == groups - 1;
            let crowds_last = !last && *g + every > groups - 1;
            last || (*g % every == 0 && !crowds_last)
        })
        .map(|g| (LEFT + (g as f64 + 0.5) * group, chart.labels[g].clone()))
        .collect();
    x_labels(out, &labels)?;
    writeln!(
        out,
        "<text x=\"{RIGHT}\" y=\"12\" text-anchor=\"end\">{}</text>",
        escape(chart.x_caption)
    )?;
    for (j, series) in chart.series.iter().enumerate() {
        let name = escape(series.name);
        for (g, &v) in series.values.iter().enumerate().take(groups) {
            if !(v.is_finite() && v > 0.0) {
                continue;
            }
            let x = LEFT + g as f64 * group + group * 0.1 + j as f64 * bar;
            let y = axis.y(v);
            writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" \
                 fill=\"{}\"><title>{name}: {} {} at {}</title></rect>",
                BOTTOM - y,
                series.colour,
                short_number(v),
                escape(chart.unit),
                escape(&chart.labels[g])
            )?;
        }
    }
    out.write_str("</svg>\n")
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn month_name(date: &str) -> Option<&'static str> {
    let month: usize = date.get(5..7)?.parse().ok()?;
    MONTHS.get(month.checked_sub(1)?).copied()
}

/// Day indices to label on a time axis: month starts for long runs, a handful of
/// evenly spaced days for short ones.
fn date_ticks(dates: &[&str]) -> Vec<(usize, String)> {
    let starts: Vec<usize> = (0..dates.len())
        .filter(|&i| dates[i].get(8..10) == Some("01"))
        .collect();
    if starts.len() >= 3 {
        // At most about a dozen labels fit across the chart.
        let stride = starts.len().div_ceil(12);
        return starts
            .iter()
            .step_by(stride)
            .enumerate()
            .map(|(k, &i)| {
                let date = dates[i];
                let label = match month_name(date) {
                    Some(m) if k == 0 || m == "Jan" || (stride > 1 && k % 4 == 0) => {
                        format!("{m} {}", date.get(..4).unwrap_or(""))
                    }
                    Some(m) => m.to_string(),
                    None => date.to_string(),
                };
                (i, label)
            })
            .collect();
    }
    let n = dates.len();
    let count = n.min(5);
    (0..count)
        .map(|k| {
            let i = if count == 1 {
                0
            } else {
                k * (n - 1) / (count - 1)
            };
            let date = dates[i];
            let label = match (month_name(date), date.get(8..10)) {
                (Some(m), Some(day)) => format!("{} {m}", day.trim_start_matches('0')),
                _ => date.to_string(),
            };
            (i, label)
        })
        .collect()
}

/// Keeps tick labels within the left margin.
fn tick_number(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", short_number(v / 1e6))
    } else if v >= 1e4 {
        format!("{}k", short_number(v / 1e3))
    } else {
        group_thousands(&format!("{v:.0}"))
    }
}

/// Inserts thousands separators into a formatted decimal number such as `-12345.67`.
pub fn group_thousands(number: &str) -> String {
    let (sign, rest) = match number.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", number),
    };
    let (int, frac) = rest.split_at(rest.find('.').unwrap_or(rest.len()));
    let mut out = String::from(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out.push_str(frac);
    out
}

/// A number for people: whole numbers stay whole, others get one decimal; `–` for
/// a value that is not a number.
pub fn short_number(v: f64) -> String {
    if !v.is_finite() {
        "–".to_string()
    } else if v.fract() == 0.0 {
        group_thousands(&format!("{v:.0}"))
    } else {
        group_thousands(&format!("{v:.1}"))
    }
}

/// Escapes text for SVG and HTML content and attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dates(n: usize) -> Vec<String> {
        let start = jiff::civil::date(2025, 1, 15);
        (0..n)
            .map(|i| {
                start
                    .checked_add(jiff::Span::new().days(i as i64))
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn chart<'a>(dates: &'a [String], values: &[Vec<f64>]) -> LineChart<'a> {
        LineChart {
            unit: "items",
            title: "A <test>",
            dates: dates.iter().map(String::as_str).collect(),
            series: values
                .iter()
                .enumerate()
                .map(|(i, v)| Series::new(["a", "b", "c"][i], "#123456", None, v.clone()))
                .collect(),
            limit: None,
        }
    }

    #[test]
    fn coinciding_lines_stay_visible_by_width() {
        let d = dates(10);
        let svg = line_chart(&chart(&d, &[vec![0.0; 10], vec![0.0; 10], vec![0.0; 10]]));
        for width in [
            "stroke-width=\"4.0\"",
            "stroke-width=\"2.7\"",
            "stroke-width=\"1.4\"",
        ] {
            assert!(svg.contains(width), "{width} in {svg}");
        }
        assert!(svg.contains("aria-label=\"A &lt;test&gt;\""));
    }

    #[test]
    fn a_limit_and_bands_are_drawn() {
        let d = dates(5);
        let mut c = chart(&d, &[vec![1.0; 5]]);
        c.series[0].band = Some((vec![0.5; 5], vec![3.0; 5]));
        c.limit = Some(Limit {
            value: 2.0,
            label: "line (2)",
        });
        let svg = line_chart(&c);
        assert!(svg.contains("class=\"band\""));
        assert!(svg.contains("class=\"limit\"") && svg.contains("line (2)"));
    }

    #[test]
    fn months_label_long_axes() {
        let d = dates(120);
        let svg = line_chart(&chart(&d, &[vec![1.0; 120]]));
        assert!(svg.contains(">Feb<") || svg.contains(">Feb 2025<"), "{svg}");
        assert!(svg.contains(">Mar<"));
    }

    #[test]
    fn empty_and_single_day_charts_render_without_nan() {
        let none = line_chart(&chart(&[], &[vec![]]));
        assert!(none.contains("No days were simulated."));
        let d = dates(1);
        let one = line_chart(&chart(&d, &[vec![f64::NAN]]));
        assert!(one.contains("<circle"));
        let bars = bar_chart(&BarChart {
            unit: "conversions",
            title: "t",
            x_caption: "touches →",
            labels: vec![],
            series: vec![],
        });
        assert!(bars.contains("Nothing to show."));
        for svg in [none, bars] {
            assert!(!svg.contains("NaN") && svg.ends_with("</svg>\n"));
        }
    }

    #[test]
    fn bars_carry_tooltips() {
        let svg = bar_chart(&BarChart {
            unit: "conversions",
            title: "t",
            x_caption: "touches →",
            labels: (1..=3).map(|n| n.to_string()).collect(),
            series: vec![Series::new("x", "#000", None, vec![0.0, 1234.0, 2.0])],
        });
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("x: 1,234 conversions at 2"));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(group_thousands("1234567.891"), "1,234,567.891");
        assert_eq!(group_thousands("-1234"), "-1,234");
        assert_eq!(group_thousands("999"), "999");
        assert_eq!(tick_number(25_000.0), "25k");
        assert_eq!(short_number(7.5), "7.5");
        assert_eq!(short_number(f64::NAN), "–");
    }

    #[test]
    fn axis_never_divides_by_zero() {
        for max in [0.0, -3.0, f64::NAN, f64::INFINITY, 0.4, 1.0, 7.0, 1234.0] {
            let axis = Axis::for_max(max);
            assert!(axis.top > 0.0 && axis.step >= 1.0, "{max}");
            assert!(axis.y(axis.top).is_finite() && axis.y(0.0) == BOTTOM);
        }
    }
}
