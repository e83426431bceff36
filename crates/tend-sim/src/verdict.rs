//! The comparison in two plain sentences: which strategy earns most after cost and by
//! how much, whether that holds on every seed, and which keeps waits and neglect lowest.

use crate::charts::group_thousands;
use crate::outcome::{SimReport, Strategy, Summary};

/// Revenue minus cost: what a strategy leaves the business.
pub fn net(summary: &Summary) -> f64 {
    summary.revenue - summary.cost
}

/// The verdict for the report and the terminal, as plain text.
pub fn verdict(report: &SimReport) -> String {
    let strategies = report.strategies();
    let seeds = report.seeds.len();
    let mean = |s: Strategy, f: fn(&Summary) -> f64| report.spread(s, f).mean;
    let mut by_net = strategies.clone();
    by_net.sort_by(|a, b| mean(*b, net).total_cmp(&mean(*a, net)));
    let Some(&best) = by_net.first() else {
        return "Nothing was simulated.".into();
    };
    let money = |v: f64| {
        if !v.is_finite() {
            return "–".to_string();
        }
        let amount = group_thousands(&format!("{:.0}", v.abs()));
        let sign = if v < 0.0 { "-" } else { "" };
        match report.currency.as_str() {
            "" => format!("{sign}{amount}"),
            c => format!("{sign}{c} {amount}"),
        }
    };
    let over = if seeds > 1 {
        format!(" (mean over {seeds} seeds)")
    } else {
        String::new()
    };
    let mut text = format!(
        "{} earns most after cost: {}{over}",
        capitalised(best.name()),
        money(mean(best, net))
    );
    if let Some(&second) = by_net.get(1) {
        let (b, s) = (mean(best, net), mean(second, net));
        let pct = if s.abs() > f64::EPSILON {
            format!("{:.1}%", (b - s) / s.abs() * 100.0)
        } else {
            "–".into()
        };
        text += &format!(", {} ({pct}) more than {}", money(b - s), second.name());
        // Each seed meets the same people under every strategy, so the fair test of a
        // difference is seed by seed.
        let best_runs = report.runs_of(best);
        let second_runs = report.runs_of(second);
        let wins = best_runs
            .iter()
            .zip(&second_runs)
            .filter(|(x, y)| net(&x.summary) > net(&y.summary))
            .count();
        text += &match seeds {
            1 => "; one seed cannot tell this from chance (run --seeds 1..8)".to_string(),
            n if wins == n => format!("; it does so on every one of the {n} seeds"),
            n => format!(
                "; it does so on only {wins} of the {n} seeds, so the difference is within \
                 the spread between seeds"
            ),
        };
    }
    text.push_str(". ");

    // Tend's own strategy always gets a place in the verdict.
    if let Some(&tend) = by_net
        .get(2..)
        .and_then(|rest| rest.iter().find(|s| **s == Strategy::Background))
    {
        let (b, t) = (mean(best, net), mean(tend, net));
        let pct = if b.abs() > f64::EPSILON {
            format!(" ({:.1}% less)", (b - t) / b.abs() * 100.0)
        } else {
            String::new()
        };
        text += &format!("{} earns {}{pct}. ", capitalised(tend.name()), money(t));
    }

    let wait = |s: &Summary| s.mean_wait_days;
    let neglect = |s: &Summary| s.neglected_leads as f64;
    let days = |v: f64| format!("{v:.1} days");
    let count = |v: f64| group_thousands(&format!("{v:.0}"));
    if let Some(waits) = lowest(report, &strategies, wait, &days) {
        text += &format!(
            "{} waits shortest (a job waits {} on average{})",
            waits.who, waits.value, waits.against
        );
        if let Some(neglects) = lowest(report, &strategies, neglect, &count) {
            text += &format!(
                "; {} the fewest leads neglected ({}{})",
                neglects.who_keeps(),
                neglects.value,
                neglects.against
            );
        }
        text.push('.');
    }
    text
}

/// The strategies with the lowest mean of a figure, and the others' values.
struct Lowest {
    /// `Background keeps` or `Background and unthrottled keep`.
    who: String,
    /// Whether several share it.
    shared: bool,
    value: String,
    /// `, against 6.0 days for campaign`, or empty.
    against: String,
}

impl Lowest {
    fn who_keeps(&self) -> String {
        let verb = if self.shared { "leave" } else { "leaves" };
        let who = self.who.rsplit_once(' ').map_or("", |(w, _)| w);
        format!("{} {verb}", who.to_lowercase())
    }
}

fn lowest(
    report: &SimReport,
    strategies: &[Strategy],
    figure: fn(&Summary) -> f64,
    show: &dyn Fn(f64) -> String,
) -> Option<Lowest> {
    let mean = |s: Strategy| report.spread(s, figure).mean;
    let min = strategies
        .iter()
        .map(|s| mean(*s))
        .filter(|v| v.is_finite())
        .reduce(f64::min)?;
    let (best, rest): (Vec<Strategy>, Vec<Strategy>) =
        strategies.iter().partition(|s| mean(**s) == min);
    let names: Vec<&str> = best.iter().map(|s| s.name()).collect();
    let shared = names.len() > 1;
    let who = format!(
        "{} {}",
        capitalised(&names.join(" and ")),
        if shared { "keep" } else { "keeps" }
    );
    let against = rest
        .iter()
        .map(|o| format!("{} for {}", show(mean(*o)), o.name()))
        .collect::<Vec<_>>()
        .join(" and ");
    Some(Lowest {
        who,
        shared,
        value: format!("{}{}", show(min), if shared { " each" } else { "" }),
        against: if against.is_empty() {
            String::new()
        } else {
            format!(", against {against}")
        },
    })
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
