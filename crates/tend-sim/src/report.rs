//! The simulation report as one self-contained HTML page: the verdict, a summary table
//! with each figure's spread over the seeds, and inline SVG charts comparing the
//! strategies, readable offline and without scripts.

use std::fmt::{self, Write};

use tend_engine::markdown::escape_html;

use crate::charts::{self, BarChart, Limit, LineChart, Series, group_thousands, short_number};
use crate::outcome::{DayRow, SimReport, Spread, Strategy, Summary};
use crate::verdict::{net, verdict};

/// Renders the report as a complete HTML page with inline CSS and SVG only.
pub fn render_html(report: &SimReport) -> String {
    let mut out = String::with_capacity(256 * 1024);
    // Writing into a String never fails.
    let _ = write_page(&mut out, report);
    out
}

/// The report without its page around it, for embedding in another page (the
/// console's): the summary, the verdict, the table and the charts, with no heading of
/// its own and no style. Each time chart draws at most `max_points` points per line,
/// so a long run stays light: consecutive days are grouped, each point the highest
/// value of its group (a spike stays visible), and the captions say so.
pub fn render_fragment(report: &SimReport, max_points: usize) -> String {
    let mut out = String::with_capacity(96 * 1024);
    let _ = write_body(&mut out, report, Some(max_points));
    out
}

const CSS: &str = "\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#222;\
max-width:980px;margin:0 auto;padding:24px 16px 48px;background:#fff}\
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.15em;margin:0 0 6px}\
.meta{color:#555;margin:0 0 12px}ul.strategies{padding-left:0;list-style:none}\
.verdict{font-size:1.08em;background:#f4f8fb;border-left:4px solid #0072b2;padding:10px 14px;margin:14px 0}\
.sw{display:inline-block;vertical-align:middle;margin-right:6px}\
table{border-collapse:collapse;width:100%;margin:8px 0 4px}\
th,td{padding:6px 10px;border-bottom:1px solid #e4e4e4;text-align:right;vertical-align:top}\
th:first-child,td:first-child{text-align:left}td small{display:block;color:#777;font-size:.8em}\
td.best{font-weight:700}.note{color:#777;font-size:.85em}figure{margin:32px 0}\
.legend{display:flex;gap:18px;flex-wrap:wrap;font-size:.9em;margin-bottom:4px}\
svg{width:100%;height:auto;display:block}svg text{font-size:11px;fill:#555}\
svg.sw{display:inline-block;width:26px;height:10px;vertical-align:middle;margin-right:6px}\
figcaption{color:#555;font-size:.9em}";

/// Colour-blind-safe (Okabe–Ito), and fixed per strategy so every chart agrees.
pub fn colour(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Background => "#0072b2",
        Strategy::Campaign => "#e69f00",
        Strategy::Unthrottled => "#cc79a7",
    }
}

/// Each strategy's dash pattern, so lines stay told apart where they coincide and in
/// greyscale.
pub fn dash(strategy: Strategy) -> Option<&'static str> {
    match strategy {
        Strategy::Background => None,
        Strategy::Campaign => Some("7 4"),
        Strategy::Unthrottled => Some("2 3"),
    }
}

fn blurb(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Background => "Tend paces touches to the team's budgets and capacity.",
        Strategy::Campaign => "Bursts: everything due goes out when the backlog is low, then idle.",
        Strategy::Unthrottled => "Every due touch goes out at once, with no limits at all.",
    }
}

fn seeds_text(seeds: &[u64]) -> String {
    let contiguous = seeds.windows(2).all(|w| w[1] == w[0] + 1);
    match seeds {
        [] => "no seed".into(),
        [one] => format!("seed {one}"),
        [first, .., last] if contiguous => format!("seeds {first}–{last}"),
        many => format!(
            "seeds {}",
            many.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn write_page(out: &mut String, report: &SimReport) -> fmt::Result {
    let name = escape_html(&report.scenario);
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Simulation: {name}</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <h1>Simulation: {name}</h1>\n"
    )?;
    write_body(out, report, None)?;
    out.push_str("</body>\n</html>\n");
    Ok(())
}

/// Everything below the page's heading; time charts thinned to `max_points` if given.
fn write_body(out: &mut String, report: &SimReport, max_points: Option<usize>) -> fmt::Result {
    let strategies = report.strategies();
    let currency = if report.currency.is_empty() {
        String::new()
    } else {
        format!(" · amounts in {}", escape_html(&report.currency))
    };
    writeln!(
        out,
        "<p class=\"meta\">{} · starting {} · {} days · \
         capacity {} work items per week · capacity line {} work items open{currency}</p>",
        seeds_text(&report.seed_list()),
        escape_html(&report.start),
        group_thousands(&report.days.to_string()),
        short_number(report.capacity_per_week),
        short_number(report.capacity_line),
    )?;
    writeln!(
        out,
        "<p class=\"verdict\">{}</p>",
        escape_html(&verdict(report))
    )?;

    out.push_str("<ul class=\"strategies\">\n");
    for &s in &strategies {
        writeln!(
            out,
            "<li>{} <b>{}</b>: {}</li>",
            swatch(s),
            s.name(),
            blurb(s)
        )?;
    }
    out.push_str("</ul>\n");

    summary_table(out, report)?;

    let line = report.capacity_line;
    let line_label = format!("capacity line ({})", short_number(line));
    let several = report.seeds.len() > 1;
    let band_note = if several {
        " Each line is the mean over the seeds; the pale band around it, the lowest and \
         highest seed."
    } else {
        ""
    };
    let days = report
        .seeds
        .first()
        .and_then(|s| s.runs.iter().map(|r| r.days.len()).max())
        .unwrap_or(0);
    let group = max_points.map_or(1, |max| days.div_ceil(max.max(1)).max(1));
    let group_note = if group > 1 {
        format!(" Each point is the highest of {group} days.")
    } else {
        String::new()
    };
    for chart in &TIME_CHARTS {
        let limit = chart.with_line.then(|| Limit {
            value: line,
            label: &line_label,
        });
        let svg = time_chart(report, &strategies, chart, limit, group);
        let caption = format!("{}{band_note}{group_note}", chart.caption);
        figure(
            out,
            &strategies,
            chart.title,
            &caption,
            chart.with_line,
            &svg,
        )?;
    }
    let svg = histogram(report, &strategies);
    figure(
        out,
        &strategies,
        "Touches before a lead became a customer",
        "Each group of bars is a number of touches and each bar how many customers \
         converted after exactly that many (summed over the seeds); bars further left \
         mean less effort per customer.",
        false,
        &svg,
    )?;
    Ok(())
}

/// A chart of one daily figure over time.
struct TimeFigure {
    title: &'static str,
    unit: &'static str,
    caption: &'static str,
    value: fn(&DayRow) -> f64,
    /// Whether the capacity line belongs on it.
    with_line: bool,
}

const TIME_CHARTS: [TimeFigure; 7] = [
    TimeFigure {
        title: "Revenue so far",
        unit: "revenue",
        caption: "Value of the work completed since the first day; a steeper line earns \
                  faster.",
        value: |d| d.revenue_total,
        with_line: false,
    },
    TimeFigure {
        title: "Backlog against the team's capacity",
        unit: "work items open",
        caption: "The most work items open on each day; above the dashed line the team has \
                  more work than it can serve within the scenario's capacity line, and rushes.",
        value: |d| f64::from(d.backlog_peak),
        with_line: true,
    },
    TimeFigure {
        title: "Utilisation of the team",
        unit: "% of normal hours",
        caption: "Share of the team's normal working time spent on jobs over the past week; \
                  above 100% is overtime, well below it is capacity left unsold.",
        value: |d| d.utilisation * 100.0,
        with_line: false,
    },
    TimeFigure {
        title: "Customer satisfaction",
        unit: "%",
        caption: "Mean satisfaction of the customers so far: long waits, rushed work and \
                  cancelled jobs lower it, and with it their repeat work and referrals.",
        value: |d| d.satisfaction * 100.0,
        with_line: false,
    },
    TimeFigure {
        title: "Public reputation",
        unit: "%",
        caption: "Quality of the jobs finished or cancelled in the recent window, as reviews \
                  and word of mouth carry it; it moves every new lead's decision to buy.",
        value: |d| d.reputation * 100.0,
        with_line: false,
    },
    TimeFigure {
        title: "Touches per day",
        unit: "touches",
        caption: "Emails, webhooks and tasks that went out each day; tall spikes mean \
                  contacts hear from you in bursts.",
        value: |d| f64::from(d.touches),
        with_line: false,
    },
    TimeFigure {
        title: "Neglected leads over time",
        unit: "leads neglected",
        caption: "Leads so far left without a touch for longer than their process's \
                  max_gap; a flatter line means fewer leads forgotten.",
        value: |d| d.neglected_total as f64,
        with_line: false,
    },
];

/// A small legend sample of the strategy's line: its colour and dash.
fn swatch(strategy: Strategy) -> String {
    let dash = dash(strategy)
        .map(|d| format!(" stroke-dasharray=\"{d}\""))
        .unwrap_or_default();
    format!(
        "<svg class=\"sw\" viewBox=\"0 0 26 10\" aria-hidden=\"true\"><line x1=\"0\" y1=\"5\" \
         x2=\"26\" y2=\"5\" stroke=\"{}\" stroke-width=\"3\"{dash}/></svg>",
        colour(strategy)
    )
}

/// One chart: a title, a legend, the SVG, and a caption.
fn figure(
    out: &mut String,
    strategies: &[Strategy],
    title: &str,
    caption: &str,
    with_line: bool,
    svg: &str,
) -> fmt::Result {
    write!(out, "<figure>\n<h2>{title}</h2>\n<div class=\"legend\">")?;
    for &s in strategies {
        write!(out, "<span>{}{}</span>", swatch(s), s.name())?;
    }
    if with_line {
        out.push_str(
            "<span><svg class=\"sw\" viewBox=\"0 0 26 10\" aria-hidden=\"true\"><line x1=\"0\" \
             y1=\"5\" x2=\"26\" y2=\"5\" stroke=\"#c0392b\" stroke-width=\"2\" \
             stroke-dasharray=\"6 4\"/></svg>capacity line</span>",
        );
    }
    write!(
        out,
        "</div>\n{svg}<figcaption>{caption}</figcaption>\n</figure>\n"
    )
}

/// A line per strategy of a daily figure: its mean over the seeds, with the range as
/// a band when there are several; every `group` consecutive days make one point, the
/// highest of them.
fn time_chart(
    report: &SimReport,
    strategies: &[Strategy],
    chart: &TimeFigure,
    limit: Option<Limit>,
    group: usize,
) -> String {
    let group = group.max(1);
    let days: Vec<&str> = report
        .seeds
        .first()
        .and_then(|s| s.runs.iter().max_by_key(|r| r.days.len()))
        .map(|r| r.days.iter().map(|d| d.date.as_str()).collect())
        .unwrap_or_default();
    let dates: Vec<&str> = days
        .chunks(group)
        .filter_map(|c| c.last().copied())
        .collect();
    let highest = |values: &[f64]| values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lowest = |values: &[f64]| values.iter().copied().fold(f64::INFINITY, f64::min);
    let series = strategies
        .iter()
        .map(|&s| {
            let runs = report.runs_of(s);
            let spreads: Vec<Spread> = (0..days.len())
                .map(|day| Spread::of(runs.iter().filter_map(|r| r.days.get(day)).map(chart.value)))
                .collect();
            let grouped = |pick: fn(&Spread) -> f64, combine: &dyn Fn(&[f64]) -> f64| {
                spreads
                    .chunks(group)
                    .map(|c| combine(&c.iter().map(pick).collect::<Vec<_>>()))
                    .collect::<Vec<f64>>()
            };
            let mut series =
                Series::new(s.name(), colour(s), dash(s), grouped(|x| x.mean, &highest));
            if runs.len() > 1 {
                series.band = Some((grouped(|x| x.min, &lowest), grouped(|x| x.max, &highest)));
            }
            series
        })
        .collect();
    charts::line_chart(&LineChart {
        unit: chart.unit,
        title: chart.title,
        dates,
        series,
        limit,
    })
}

/// Beyond this many bars per strategy the rest are pooled into one last group.
const MAX_BUCKETS: usize = 30;

/// Grouped bars: one group per number of touches, one bar per strategy, summed over
/// the seeds.
fn histogram(report: &SimReport, strategies: &[Strategy]) -> String {
    let totals: Vec<Vec<u64>> = strategies
        .iter()
        .map(|&s| {
            let mut total: Vec<u64> = Vec::new();
            for run in report.runs_of(s) {
                let h = &run.touches_to_conversion;
                if total.len() < h.len() {
                    total.resize(h.len(), 0);
                }
                for (n, c) in h.iter().enumerate() {
                    total[n] += c;
                }
            }
            total
        })
        .collect();
    let lo = totals
        .iter()
        .filter_map(|h| h.iter().position(|&c| c > 0))
        .min();
    let hi = totals
        .iter()
        .filter_map(|h| h.iter().rposition(|&c| c > 0))
        .max();
    let (labels, values) = match (lo, hi) {
        (Some(lo), Some(hi)) => {
            let buckets = (hi - lo + 1).min(MAX_BUCKETS);
            let pooled = hi - lo + 1 > MAX_BUCKETS;
            let labels = (0..buckets)
                .map(|b| {
                    let plus = if pooled && b == buckets - 1 { "+" } else { "" };
                    format!("{}{plus}", lo + b)
                })
                .collect();
            let values = totals
                .iter()
                .map(|h| {
                    let mut c = vec![0.0; buckets];
                    for (n, &count) in h.iter().enumerate().skip(lo) {
                        c[(n - lo).min(buckets - 1)] += count as f64;
                    }
                    c
                })
                .collect();
            (labels, values)
        }
        _ => (Vec::new(), vec![Vec::new(); strategies.len()]),
    };
    charts::bar_chart(&BarChart {
        unit: "conversions",
        title: "Touches before a lead became a customer",
        x_caption: "touches before converting →",
        labels,
        series: strategies
            .iter()
            .zip(values)
            .map(|(&s, v)| Series::new(s.name(), colour(s), None, v))
            .collect(),
    })
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

const ROWS: [Row; 25] = [
    Row {
        label: "Revenue minus cost",
        hint: "What the marketing leaves the business",
        value: net,
        format: Format::Money,
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
        label: "New customers",
        hint: "Leads who became customers",
        value: |s| s.conversions as f64,
        format: Format::Count,
        better: Better::Higher,
    },
    Row {
        label: "Jobs completed",
        hint: "Work items finished",
        value: |s| s.work_done as f64,
        format: Format::Count,
        better: Better::Higher,
    },
    Row {
        label: "Overtime",
        hint: "Paid while over the capacity line (part of the cost)",
        value: |s| s.overtime_cost,
        format: Format::Money,
        better: Better::Lower,
    },
    Row {
        label: "Jobs cancelled",
        hint: "Customers gave up waiting; their revenue is lost",
        value: |s| s.cancelled_jobs as f64,
        format: Format::Count,
        better: Better::Lower,
    },
    Row {
        label: "Utilisation",
        hint: "Share of the team's normal hours spent on jobs",
        value: |s| s.utilisation,
        format: Format::Percent,
        better: Better::Neither,
    },
    Row {
        label: "Customer satisfaction at the end",
        hint: "Long waits, rushed jobs and cancellations lower it",
        value: |s| s.final_satisfaction,
        format: Format::Percent,
        better: Better::Higher,
    },
    Row {
        label: "Reputation at the end",
        hint: "Quality of the recent jobs, as new leads hear of it",
        value: |s| s.final_reputation,
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
        hint: "Days the backlog was above the capacity line",
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
        label: "Rushed jobs",
        hint: "Started over the capacity line: slower, and less satisfying",
        value: |s| s.rushed_jobs as f64,
        format: Format::Count,
        better: Better::Lower,
    },
    Row {
        label: "Hours lost to chasing",
        hint: "Team time spent on customers chasing overdue jobs",
        value: |s| s.chase_hours,
        format: Format::Count,
        better: Better::Lower,
    },
    Row {
        label: "Leads lost to competitors",
        hint: "Forgotten past max_gap, or pressed too hard",
        value: |s| s.lost_to_competitors as f64,
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
];

fn summary_table(out: &mut String, report: &SimReport) -> fmt::Result {
    let strategies = report.strategies();
    out.push_str("<table>\n<thead><tr><th></th>");
    for &s in &strategies {
        write!(out, "<th>{}{}</th>", swatch(s), s.name())?;
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &ROWS {
        let spreads: Vec<Spread> = strategies
            .iter()
            .map(|&s| report.spread(s, row.value))
            .collect();
        let means: Vec<f64> = spreads.iter().map(|s| s.mean).collect();
        let best = best_value(&means, row.better);
        write!(out, "<tr><td>{}<small>{}</small></td>", row.label, row.hint)?;
        for spread in &spreads {
            let class = if best == Some(spread.mean) {
                " class=\"best\""
            } else {
                ""
            };
            write!(out, "<td{class}>{}", format_value(spread.mean, row.format))?;
            if spread.varies() {
                write!(
                    out,
                    "<small>{} – {}</small>",
                    format_value(spread.min, row.format),
                    format_value(spread.max, row.format)
                )?;
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    let mut notes = Vec::new();
    if strategies.len() > 1 {
        notes.push("Bold marks the best figure in a row, where one is better.");
    }
    if report.seeds.len() > 1 {
        notes
            .push("Each figure is the mean over the seeds; below it, the lowest and highest seed.");
    }
    if !notes.is_empty() {
        writeln!(out, "<p class=\"note\">{}</p>", notes.join(" "))?;
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
        Format::Count if v.fract() != 0.0 => group_thousands(&format!("{v:.1}")),
        Format::Count => group_thousands(&format!("{v:.0}")),
        Format::Money => group_thousands(&format!("{v:.0}")),
        Format::Decimal => group_thousands(&format!("{v:.1}")),
        Format::Percent => format!("{:.0}%", v * 100.0),
    }
}

#[cfg(test)]
mod tests;
