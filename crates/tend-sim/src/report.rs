//! The simulation report as one self-contained HTML page: a summary table and four
//! inline SVG charts comparing the strategies, readable offline and without scripts.

use std::fmt::{self, Write};

use tend_engine::markdown::escape_html;

use crate::outcome::{DayRow, SimReport, Strategy, StrategyRun, Summary};

/// Renders the report as a complete HTML page with inline CSS and SVG only.
pub fn render_html(report: &SimReport) -> String {
    let mut out = String::with_capacity(64 * 1024);
    // Writing into a String never fails.
    let _ = write_page(&mut out, report);
    out
}

const CSS: &str = "\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#222;\
max-width:980px;margin:0 auto;padding:24px 16px 48px;background:#fff}\
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.15em;margin:0 0 6px}\
.meta{color:#555;margin:0 0 12px}ul.strategies{padding-left:0;list-style:none}\
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:-1px}\
.sw.limit{width:18px;height:0;border-top:2px dashed #c0392b;border-radius:0;vertical-align:3px}\
table{border-collapse:collapse;width:100%;margin:8px 0 4px}\
th,td{padding:6px 10px;border-bottom:1px solid #e4e4e4;text-align:right;vertical-align:top}\
th:first-child,td:first-child{text-align:left}td small{display:block;color:#777;font-size:.8em}\
td.best{font-weight:700}.note{color:#777;font-size:.85em}figure{margin:32px 0}\
.legend{display:flex;gap:18px;flex-wrap:wrap;font-size:.9em;margin-bottom:4px}\
svg{width:100%;height:auto;display:block}svg text{font-size:11px;fill:#555}\
figcaption{color:#555;font-size:.9em}";

/// Colour-blind-safe (Okabe–Ito), and fixed per strategy so every chart agrees.
fn colour(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Background => "#0072b2",
        Strategy::Campaign => "#e69f00",
        Strategy::Unthrottled => "#cc79a7",
    }
}

fn blurb(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Background => "Tend paces touches to the team's budgets and capacity.",
        Strategy::Campaign => "Bursts: everything due goes out when the backlog is low, then idle.",
        Strategy::Unthrottled => "Every due touch goes out at once, with no limits at all.",
    }
}

const LIMIT_COLOUR: &str = "#c0392b";

fn write_page(out: &mut String, report: &SimReport) -> fmt::Result {
    let name = escape_html(&report.scenario);
    let runs = &report.runs;
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Simulation: {name}</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <h1>Simulation: {name}</h1>\n<p class=\"meta\">Seed {} · starting {} · {} days · \
         capacity {} work items per week</p>\n",
        report.seed,
        escape_html(&report.start),
        group_thousands(&report.days.to_string()),
        short_number(report.capacity_per_week),
    )?;

    out.push_str("<ul class=\"strategies\">\n");
    for run in runs {
        writeln!(
            out,
            "<li>{} <b>{}</b>: {}</li>",
            swatch(run.strategy),
            run.strategy.name(),
            blurb(run.strategy)
        )?;
    }
    out.push_str("</ul>\n");

    summary_table(out, runs)?;

    let limit = report.backlog_limit;
    let limit_text = short_number(limit);
    figure(
        out,
        runs,
        "Backlog against capacity",
        &format!(
            "Each line is the most work items open on a day; above the dashed line \
             ({limit_text}) the team cannot finish the work within its horizon."
        ),
        true,
        |svg| {
            LineChart::new(runs, "work items open", |d| f64::from(d.backlog_peak))
                .limit(limit)
                .write_svg(svg)
        },
    )?;
    figure(
        out,
        runs,
        "Touches per day",
        "Each line is how many emails, webhooks and tasks went out that day; \
         tall spikes mean contacts hear from you in bursts.",
        false,
        |svg| LineChart::new(runs, "touches", |d| f64::from(d.touches)).write_svg(svg),
    )?;
    figure(
        out,
        runs,
        "Neglected leads over time",
        "Each line counts the leads so far left without a touch for too long; \
         a flatter line means fewer leads forgotten.",
        false,
        |svg| LineChart::new(runs, "leads neglected", |d| d.neglected_total as f64).write_svg(svg),
    )?;
    figure(
        out,
        runs,
        "Touches before a lead became a customer",
        "Each group of bars is a number of touches and each bar how many customers \
         converted after exactly that many; bars further left mean less effort per customer.",
        false,
        |svg| histogram(svg, runs),
    )?;

    out.push_str("</body>\n</html>\n");
    Ok(())
}

fn swatch(strategy: Strategy) -> String {
    format!(
        "<span class=\"sw\" style=\"background:{}\"></span>",
        colour(strategy)
    )
}

/// One chart: a title, a legend, the SVG drawn by `draw`, and a caption.
fn figure(
    out: &mut String,
    runs: &[StrategyRun],
    title: &str,
    caption: &str,
    with_limit: bool,
    draw: impl FnOnce(&mut String) -> fmt::Result,
) -> fmt::Result {
    write!(out, "<figure>\n<h2>{title}</h2>\n<div class=\"legend\">")?;
    for run in runs {
        write!(
            out,
            "<span>{}{}</span>",
            swatch(run.strategy),
            run.strategy.name()
        )?;
    }
    if with_limit {
        out.push_str("<span><span class=\"sw limit\"></span>capacity limit</span>");
    }
    write!(
        out,
        "</div>\n<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{title}\">\n"
    )?;
    draw(out)?;
    write!(
        out,
        "</svg>\n<figcaption>{caption}</figcaption>\n</figure>\n"
    )
}

// ---------------------------------------------------------------------------------
// Summary table

#[derive(Clone, Copy)]
enum Format {
    Count,
    Money,
    Decimal,
    Percent,
}

/// Which way is good, so the table can mark the best strategy in each row.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
    Neither,
}

struct Row {
    label: &'static str,
    hint: &'static str,
    value: fn(&Summary) -> f64,
    format: Format,
    better: Better,
}

const ROWS: [Row; 17] = [
    Row {
        label: "New customers",
        hint: "Leads who became customers",
        value: |s| s.conversions as f64,
        format: Format::Count,
        better: Better::Higher,
    },
    Row {
        label: "Revenue",
        hint: "Value of the work completed",
        value: |s| s.revenue,
        format: Format::Money,
        better: Better::Higher,
    },
    Row {
        label: "Cost",
        hint: "Touches sent plus staff time on tasks",
        value: |s| s.cost,
        format: Format::Money,
        better: Better::Lower,
    },
    Row {
        label: "Customer satisfaction at the end",
        hint: "Long waits lower it",
        value: |s| s.final_satisfaction,
        format: Format::Percent,
        better: Better::Higher,
    },
    Row {
        label: "Peak backlog",
        hint: "Most work items open at once",
        value: |s| f64::from(s.peak_backlog),
        format: Format::Count,
        better: Better::Lower,
    },
    Row {
        label: "Days over capacity",
        hint: "Days the backlog was above the capacity limit",
        value: |s| f64::from(s.days_over_capacity),
        format: Format::Count,
        better: Better::Lower,
    },
    Row {
        label: "Average wait (days)",
        hint: "Before the team started a job",
        value: |s| s.mean_wait_days,
        format: Format::Decimal,
        better: Better::Lower,
    },
    Row {
        label: "Long wait (days)",
        hint: "9 in 10 jobs were started within this many days",
        value: |s| s.p90_wait_days,
        format: Format::Decimal,
        better: Better::Lower,
    },
    Row {
        label: "Neglected leads",
        hint: "Left without a touch for too long",
        value: |s| s.neglected_leads as f64,
        format: Format::Count,
        better: Better::Lower,
    },
    Row {
        label: "Unsubscribes",
        hint: "Contacts who opted out",
        value: |s| s.unsubscribes as f64,
        format: Format::Count,
        better: Better::Lower,
    },
    Row {
        label: "Touches per new customer",
        hint: "Median touches before converting",
        value: |s| s.touches_per_conversion_median,
        format: Format::Decimal,
        better: Better::Neither,
    },
    Row {
        label: "Touches per new customer (slow cases)",
        hint: "9 in 10 converted within this many touches",
        value: |s| s.touches_per_conversion_p90,
        format: Format::Decimal,
        better: Better::Neither,
    },
    Row {
        label: "Leads",
        hint: "Arrived, including referrals",
        value: |s| s.leads as f64,
        format: Format::Count,
        better: Better::Neither,
    },
    Row {
        label: "Referrals",
        hint: "Leads who came by referral",
        value: |s| s.referrals as f64,
        format: Format::Count,
        better: Better::Higher,
    },
    Row {
        label: "Touches sent",
        hint: "Emails, webhooks and completed tasks",
        value: |s| s.touches as f64,
        format: Format::Count,
        better: Better::Neither,
    },
    Row {
        label: "Jobs opened",
        hint: "First jobs and repeat work",
        value: |s| s.work_opened as f64,
        format: Format::Count,
        better: Better::Neither,
    },
    Row {
        label: "Jobs completed",
        hint: "Work items finished",
        value: |s| s.work_done as f64,
        format: Format::Count,
        better: Better::Higher,
    },
];

fn summary_table(out: &mut String, runs: &[StrategyRun]) -> fmt::Result {
    out.push_str("<table>\n<thead><tr><th></th>");
    for run in runs {
        write!(
            out,
            "<th>{}{}</th>",
            swatch(run.strategy),
            run.strategy.name()
        )?;
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &ROWS {
        let values: Vec<f64> = runs.iter().map(|r| (row.value)(&r.summary)).collect();
        let best = best_value(&values, row.better);
        write!(out, "<tr><td>{}<small>{}</small></td>", row.label, row.hint)?;
        for &v in &values {
            let class = if best == Some(v) {
                " class=\"best\""
            } else {
                ""
            };
            write!(out, "<td{class}>{}</td>", format_value(v, row.format))?;
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    if runs.len() > 1 {
        out.push_str(
            "<p class=\"note\">Bold marks the best figure in a row, where one is better.</p>\n",
        );
    }
    Ok(())
}

/// The best of the values, or `None` when there is nothing to choose between.
fn best_value(values: &[f64], better: Better) -> Option<f64> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let best = match better {
        Better::Higher => finite.clone().reduce(f64::max),
        Better::Lower => finite.clone().reduce(f64::min),
        Better::Neither => None,
    }?;
    let mut finite = finite;
    finite.any(|v| v != best).then_some(best)
}

fn format_value(v: f64, format: Format) -> String {
    if !v.is_finite() {
        return "–".to_string();
    }
    match format {
        Format::Count => group_thousands(&format!("{v:.0}")),
        Format::Money => group_thousands(&format!("{v:.2}")),
        Format::Decimal => group_thousands(&format!("{v:.1}")),
        Format::Percent => format!("{:.0}%", v * 100.0),
    }
}

/// Inserts thousands separators into a formatted decimal number such as `-12345.67`.
fn group_thousands(number: &str) -> String {
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

/// A setting such as capacity: whole numbers stay whole, others get one decimal.
fn short_number(v: f64) -> String {
    if !v.is_finite() {
        "–".to_string()
    } else if v.fract() == 0.0 {
        group_thousands(&format!("{v:.0}"))
    } else {
        group_thousands(&format!("{v:.1}"))
    }
}

// ---------------------------------------------------------------------------------
// Charts

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 250.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = WIDTH - 24.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = HEIGHT - 28.0;

/// A y axis from zero to `top` with a tick every `step`; counts only, so steps are whole.
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
        writeln!(out, "<text x=\"4\" y=\"12\">{unit}</text>")
    }
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

fn x_labels(out: &mut String, labels: &[(f64, String)]) -> fmt::Result {
    for (x, label) in labels {
        writeln!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{BOTTOM}\" y2=\"{:.1}\" stroke=\"#999\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            BOTTOM + 4.0,
            BOTTOM + 17.0,
            escape_html(label)
        )?;
    }
    Ok(())
}

fn empty_chart(out: &mut String, message: &str) -> fmt::Result {
    writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fafafa\" \
         stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{message}</text>",
        RIGHT - LEFT,
        BOTTOM - TOP,
        (LEFT + RIGHT) / 2.0,
        (TOP + BOTTOM) / 2.0
    )
}

/// A time chart: one line per strategy over the simulated days, optionally with a
/// dashed limit line.
struct LineChart<'a> {
    unit: &'a str,
    dates: Vec<&'a str>,
    series: Vec<(Strategy, Vec<f64>)>,
    limit: Option<f64>,
}

impl<'a> LineChart<'a> {
    fn new(runs: &'a [StrategyRun], unit: &'a str, value: fn(&DayRow) -> f64) -> Self {
        let longest = runs.iter().max_by_key(|r| r.days.len());
        LineChart {
            unit,
            dates: longest.map_or_else(Vec::new, |r| {
                r.days.iter().map(|d| d.date.as_str()).collect()
            }),
            series: runs
                .iter()
                .map(|r| (r.strategy, r.days.iter().map(value).collect()))
                .collect(),
            limit: None,
        }
    }

    fn limit(mut self, limit: f64) -> Self {
        self.limit = (limit.is_finite() && limit > 0.0).then_some(limit);
        self
    }

    fn x(&self, day: usize) -> f64 {
        match self.dates.len() {
            0 | 1 => (LEFT + RIGHT) / 2.0,
            n => LEFT + day as f64 / (n - 1) as f64 * (RIGHT - LEFT),
        }
    }

    fn write_svg(&self, out: &mut String) -> fmt::Result {
        if self.dates.is_empty() {
            return empty_chart(out, "No days were simulated.");
        }
        let max = self
            .series
            .iter()
            .flat_map(|(_, values)| values.iter().copied())
            .chain(self.limit)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let axis = Axis::for_max(max);
        axis.write(out, self.unit)?;
        let labels: Vec<(f64, String)> = date_ticks(&self.dates)
            .into_iter()
            .map(|(i, label)| (self.x(i), label))
            .collect();
        x_labels(out, &labels)?;

        // Drawn in reverse so the first strategy (Tend's own pacing) ends up on top.
        for (strategy, values) in self.series.iter().rev() {
            let colour = colour(*strategy);
            if values.len() == 1 {
                writeln!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{}</title></circle>",
                    self.x(0),
                    axis.y(values[0]),
                    strategy.name()
                )?;
                continue;
            }
            let mut path = String::with_capacity(values.len() * 14);
            for (i, &v) in values.iter().enumerate() {
                let command = if i == 0 { 'M' } else { 'L' };
                write!(path, "{command}{:.1},{:.1}", self.x(i), axis.y(v))?;
            }
            writeln!(
                out,
                "<path d=\"{path}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\" \
                 stroke-linejoin=\"round\"><title>{}</title></path>",
                strategy.name()
            )?;
        }

        if let Some(limit) = self.limit {
            let y = axis.y(limit);
            writeln!(
                out,
                "<line class=\"capacity-limit\" x1=\"{LEFT}\" x2=\"{RIGHT}\" y1=\"{y:.1}\" \
                 y2=\"{y:.1}\" stroke=\"{LIMIT_COLOUR}\" stroke-width=\"1.5\" \
                 stroke-dasharray=\"6 4\"/><text x=\"{RIGHT}\" y=\"{:.1}\" text-anchor=\"end\" \
                 style=\"fill:{LIMIT_COLOUR}\">capacity limit ({})</text>",
                y - 4.0,
                short_number(limit)
            )?;
        }
        Ok(())
    }
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
                    Some(m) if k == 0 || m == "Jan" => {
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

/// Beyond this many bars per strategy the rest are pooled into one last group.
const MAX_BUCKETS: usize = 30;

/// Grouped bars: one group per number of touches, one bar per strategy.
fn histogram(out: &mut String, runs: &[StrategyRun]) -> fmt::Result {
    let ranges: Vec<(usize, usize)> = runs
        .iter()
        .filter_map(|r| {
            let h = &r.touches_to_conversion;
            Some((
                h.iter().position(|&c| c > 0)?,
                h.iter().rposition(|&c| c > 0)?,
            ))
        })
        .collect();
    let (Some(lo), Some(hi)) = (
        ranges.iter().map(|r| r.0).min(),
        ranges.iter().map(|r| r.1).max(),
    ) else {
        return empty_chart(out, "No conversions to show.");
    };
    let buckets = (hi - lo + 1).min(MAX_BUCKETS);
    let pooled = hi - lo + 1 > MAX_BUCKETS;
    let counts: Vec<Vec<u64>> = runs
        .iter()
        .map(|r| {
            let mut c = vec![0u64; buckets];
            for (n, &count) in r.touches_to_conversion.iter().enumerate().skip(lo) {
                c[(n - lo).min(buckets - 1)] += count;
            }
            c
        })
        .collect();
    let max = counts.iter().flatten().copied().max().unwrap_or(0) as f64;
    let axis = Axis::for_max(max);
    axis.write(out, "conversions")?;

    let group = (RIGHT - LEFT) / buckets as f64;
    let bar = group * 0.8 / runs.len().max(1) as f64;
    let every = buckets.div_ceil(15);
    let labels: Vec<(f64, String)> = (0..buckets)
        .filter(|b| {
            let last = pooled && *b == buckets - 1;
            // A regular label right before the pooled one would run into it.
            let crowds_last = pooled && *b + every > buckets - 1 && !last;
            last || (*b % every == 0 && !crowds_last)
        })
        .map(|b| {
            let n = lo + b;
            let label = if pooled && b == buckets - 1 {
                format!("{n}+")
            } else {
                n.to_string()
            };
            (LEFT + (b as f64 + 0.5) * group, label)
        })
        .collect();
    x_labels(out, &labels)?;
    writeln!(
        out,
        "<text x=\"{RIGHT}\" y=\"12\" text-anchor=\"end\">touches before converting →</text>"
    )?;

    for (j, (run, counts)) in runs.iter().zip(&counts).enumerate() {
        let name = run.strategy.name();
        let colour = colour(run.strategy);
        for (b, &count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            let x = LEFT + b as f64 * group + group * 0.1 + j as f64 * bar;
            let y = axis.y(count as f64);
            let plus = if pooled && b == buckets - 1 {
                " or more"
            } else {
                ""
            };
            writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" \
                 fill=\"{colour}\"><title>{name}: {} conversions after {}{plus} touches</title></rect>",
                BOTTOM - y,
                group_thousands(&count.to_string()),
                lo + b
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(scale: u64) -> Summary {
        Summary {
            conversions: 40 * scale,
            revenue: 12345.678 * scale as f64,
            peak_backlog: 12 * scale as u32,
            mean_wait_days: 2.34 * scale as f64,
            p90_wait_days: 6.0 * scale as f64,
            days_over_capacity: 3 * scale as u32,
            neglected_leads: 5 * scale,
            touches_per_conversion_median: 4.0,
            touches_per_conversion_p90: 9.5,
            cost: 987.5 * scale as f64,
            leads: 300,
            touches: 1500 * scale,
            work_opened: 60,
            work_done: 55,
            unsubscribes: 7 * scale,
            referrals: 9,
            final_satisfaction: 0.9 / scale as f64,
        }
    }

    fn run(strategy: Strategy, scale: u64, days: usize) -> StrategyRun {
        let days = (0..days)
            .map(|i| DayRow {
                // Starting mid-January so the run crosses month starts.
                date: format!("2025-{:02}-{:02}", 1 + (i + 14) / 30, 1 + (i + 14) % 30),
                backlog_peak: (i as u32 % 20) * scale as u32,
                touches: ((i * 7) % 13) as u32 * scale as u32,
                work_opened: 1,
                neglected_total: (i as u64 / 10) * scale,
                conversions_total: i as u64,
                satisfaction: 0.9,
            })
            .collect();
        StrategyRun {
            strategy,
            summary: summary(scale),
            days,
            touches_to_conversion: vec![0, 2 * scale, 5, 8, 3 * scale, 0, 1],
        }
    }

    fn report(days: usize) -> SimReport {
        SimReport {
            scenario: "Joe's <b>Plumbing</b> & Sons".to_string(),
            seed: 42,
            start: "2025-01-15".to_string(),
            days: days as u32,
            capacity_per_week: 7.5,
            backlog_limit: 15.0,
            runs: Strategy::ALL
                .iter()
                .zip(1..)
                .map(|(&s, scale)| run(s, scale, days))
                .collect(),
        }
    }

    #[test]
    fn page_names_every_strategy_and_draws_four_charts() {
        let html = render_html(&report(60));
        for strategy in Strategy::ALL {
            assert!(
                html.contains(strategy.name()),
                "{} missing",
                strategy.name()
            );
            assert!(html.contains(colour(strategy)));
        }
        assert!(html.matches("<svg").count() >= 4);
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
        assert!(html.contains("<figcaption>"));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
    }

    #[test]
    fn backlog_chart_shows_the_capacity_limit() {
        let html = render_html(&report(60));
        assert!(html.contains("class=\"capacity-limit\""));
        assert!(html.contains("stroke-dasharray"));
        assert!(html.contains("capacity limit (15)"));
    }

    #[test]
    fn page_is_self_contained() {
        let html = render_html(&report(60));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://"));
        assert!(!html.contains("https://"));
        assert!(!html.contains("<link"));
        assert!(!html.contains("<img"));
        assert!(!html.contains("url("));
    }

    #[test]
    fn scenario_name_is_escaped() {
        let html = render_html(&report(60));
        assert!(!html.contains("<b>Plumbing"));
        assert!(html.contains("Joe&#39;s &lt;b&gt;Plumbing&lt;/b&gt; &amp; Sons"));
    }

    #[test]
    fn summary_table_formats_numbers_for_people() {
        let html = render_html(&report(60));
        assert_eq!(html.matches("<tr><td>").count(), ROWS.len());
        assert!(
            html.contains("12,345.68"),
            "revenue with separators and cents"
        );
        assert!(html.contains("37,037.03"));
        assert!(html.contains(">2.3</td>"), "wait days with one decimal");
        assert!(html.contains(">90%</td>"));
        assert!(html.contains("capacity 7.5 work items per week"));
        // Unthrottled has the most conversions, background the lowest cost.
        assert!(html.contains("<td class=\"best\">120</td>"));
        assert!(html.contains("<td class=\"best\">987.50</td>"));
    }

    #[test]
    fn time_axis_is_labelled_with_months() {
        let html = render_html(&report(120));
        assert!(html.contains(">Feb 2025<") || html.contains(">Jan 2025<"));
        assert!(html.contains(">Mar<"));
    }

    #[test]
    fn empty_report_renders() {
        let mut empty = report(0);
        for run in &mut empty.runs {
            run.touches_to_conversion.clear();
        }
        let html = render_html(&empty);
        assert!(html.matches("<svg").count() >= 4);
        assert!(html.contains("No days were simulated."));
        assert!(html.contains("No conversions to show."));
        assert!(!html.contains("NaN"));
    }

    #[test]
    fn flat_zero_single_day_and_single_strategy_render() {
        let mut flat = report(1);
        flat.runs.truncate(1);
        flat.backlog_limit = 0.0;
        for run in &mut flat.runs {
            run.touches_to_conversion = vec![0; 5];
            for day in &mut run.days {
                day.backlog_peak = 0;
                day.touches = 0;
                day.neglected_total = 0;
            }
            run.summary.revenue = f64::NAN;
        }
        let html = render_html(&flat);
        assert!(!html.contains("NaN"));
        assert!(!html.contains(">inf"));
        assert!(html.contains("<circle"));
        assert!(!html.contains("campaign"));
    }

    #[test]
    fn long_histograms_pool_their_tail() {
        let mut long = report(10);
        long.runs[0].touches_to_conversion = (0..200).collect();
        let html = render_html(&long);
        assert!(html.contains(">30+<"));
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands("1234567.891"), "1,234,567.891");
        assert_eq!(group_thousands("-1234"), "-1,234");
        assert_eq!(group_thousands("999"), "999");
        assert_eq!(format_value(0.0, Format::Money), "0.00");
        assert_eq!(tick_number(25_000.0), "25k");
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
