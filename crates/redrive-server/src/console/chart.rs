//! The minute-history chart: inline SVG drawn on the server (no script, no library).

use std::fmt::Write;

use redrive_engine::history::MetricHistory;

use super::html::{esc, time_text};

/// One line of the chart: a metric, the statistic read from it, its label and colour.
struct Line {
    metric: &'static str,
    label: &'static str,
    colour: &'static str,
    /// Gauges are read as their `Maximum`, counters as their `Sum`.
    gauge: bool,
}

const LINES: [Line; 5] = [
    Line {
        metric: "NumberOfMessagesSent",
        label: "sent",
        colour: "#0b5cad",
        gauge: false,
    },
    Line {
        metric: "NumberOfMessagesReceived",
        label: "received",
        colour: "#8a5a00",
        gauge: false,
    },
    Line {
        metric: "NumberOfMessagesDeleted",
        label: "deleted",
        colour: "#1e7a3c",
        gauge: false,
    },
    Line {
        metric: "NumberOfDeadLetterArrivals",
        label: "dead-letter arrivals",
        colour: "#b3261e",
        gauge: false,
    },
    Line {
        metric: "ApproximateNumberOfMessagesVisible",
        label: "visible",
        colour: "#6b3fa0",
        gauge: true,
    },
];

const WIDTH: f64 = 1180.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// The chart's input, independent of where the minutes come from (the engine's history here;
/// a Redrive server's history API or CloudWatch in `redrive console`).
#[derive(Debug, Clone, Default)]
pub struct ChartData {
    pub queue: String,
    pub since_ms: u64,
    pub until_ms: u64,
    pub period_secs: u64,
    /// `(metric name, [(period start ms, value)])`: counters as their `Sum`, gauges as their
    /// `Maximum`. Metrics not drawn are ignored.
    pub series: Vec<(String, Vec<(u64, f64)>)>,
    /// The burst to mark: the dominant dead-letter minute (epoch ms) and its arrivals; the
    /// window around it is [`redrive_select::stats::burst_window`].
    pub burst: Option<(u64, u64)>,
}

/// The dominant dead-letter minute of a history (minute start, arrivals), as `redrive
/// status` finds it (`redrive_select::stats::dominant_dead_letter_minute`).
pub fn dominant_dead_letter_minute(history: &MetricHistory) -> Option<(u64, u64)> {
    let points = &history
        .series
        .iter()
        .find(|s| s.def.name == "NumberOfDeadLetterArrivals")?
        .points;
    let rows = points.iter().map(|p| (p.timestamp_ms, p.sum as u64));
    let minute = redrive_select::stats::dominant_dead_letter_minute(rows.clone())?;
    rows.clone().find(|(t, _)| *t == minute)
}

impl ChartData {
    /// The engine's history, read as the chart draws it.
    pub fn from_history(history: &MetricHistory) -> ChartData {
        ChartData {
            queue: history.queue.clone(),
            since_ms: history.since_ms,
            until_ms: history.until_ms,
            period_secs: history.period_secs,
            series: LINES
                .iter()
                .map(|line| {
                    let points = history
                        .series
                        .iter()
                        .find(|s| s.def.name == line.metric)
                        .map(|s| {
                            s.points
                                .iter()
                                .map(|p| {
                                    let v = if line.gauge {
                                        p.maximum.unwrap_or(p.sum)
                                    } else {
                                        p.sum
                                    };
                                    (p.timestamp_ms, v)
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    (line.metric.to_string(), points)
                })
                .collect(),
            burst: None,
        }
    }

    /// With the burst marked (see [`ChartData::burst`]).
    pub fn with_burst(mut self, burst: Option<(u64, u64)>) -> ChartData {
        self.burst = burst;
        self
    }
}

/// The per-minute values of each line over the range (`None`: no stored minute).
fn slots(data: &ChartData) -> Vec<(&'static Line, Vec<Option<f64>>)> {
    let period_ms = data.period_secs.max(1) * 1000;
    let n = data
        .until_ms
        .saturating_sub(data.since_ms)
        .div_ceil(period_ms) as usize;
    LINES
        .iter()
        .map(|line| {
            let mut values = vec![None; n];
            if let Some((_, points)) = data.series.iter().find(|(name, _)| name == line.metric) {
                for (ts, v) in points {
                    let i = (ts.saturating_sub(data.since_ms) / period_ms) as usize;
                    if i < n {
                        values[i] = Some(*v);
                    }
                }
            }
            (line, values)
        })
        .collect()
}

/// The chart as an `<svg>` element with a legend, plus an accessible summary table of the
/// totals. Gaps (minutes with nothing stored) break the lines.
pub fn render(history: &MetricHistory) -> String {
    render_data(&ChartData::from_history(history))
}

/// [`render`] over any minute source.
pub fn render_data(history: &ChartData) -> String {
    let lines = slots(history);
    let n = lines.first().map_or(0, |(_, v)| v.len()).max(1);
    let max = lines
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(0.0_f64, |a, &b| a.max(b));
    let top = nice_ceiling(max);
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / n as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - v / top);

    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" role=\"img\" aria-label=\"minute history of {}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         xmlns=\"http://www.w3.org/2000/svg\">",
        esc(&history.queue)
    );
    for k in 0..=4 {
        let v = top * f64::from(k) / 4.0;
        let yy = y(v);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e3e7eb\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6572\">{}</text>",
            WIDTH - 8.0,
            LEFT - 6.0,
            yy + 4.0,
            number_text(v)
        );
    }
    // Time labels: start, middle, end of the range.
    for (i, anchor) in [(0, "start"), (n / 2, "middle"), (n - 1, "end")] {
        let t = history.since_ms + i as u64 * history.period_secs * 1000;
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"{anchor}\" fill=\"#5b6572\">{}</text>",
            x(i),
            HEIGHT - 6.0,
            esc(&time_text(t)[11..])
        );
    }
    // The burst window: shaded from 5 minutes before the dominant dead-letter minute to 10
    // after (as `redrive status` shows it), the minute itself as a line; clipped to the range.
    if let Some((minute, arrivals)) = history.burst {
        let period_ms = history.period_secs.max(1) * 1000;
        let (start, end) = redrive_select::stats::burst_window(minute);
        let slot = |t: u64| t.saturating_sub(history.since_ms) as f64 / period_ms as f64;
        let end_slot = slot(end.min(history.until_ms)).min(n as f64);
        let start_slot = slot(start.max(history.since_ms));
        if minute >= history.since_ms && minute < history.until_ms && end_slot > start_slot {
            let px = |s: f64| LEFT + plot_w * s / n as f64;
            let mx = px(slot(minute) + 0.5);
            // The label on the side of the line with room for it.
            let right_half = mx > LEFT + plot_w / 2.0;
            let anchor = if right_half { "end" } else { "start" };
            let _ = write!(
                svg,
                "<g id=\"burst-window\" data-minute=\"{minute}\" data-start=\"{start}\" data-end=\"{end}\">\
                 <rect x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{plot_h:.1}\" fill=\"#b3261e\" fill-opacity=\"0.08\"/>\
                 <line x1=\"{mx:.1}\" x2=\"{mx:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#b3261e\" stroke-dasharray=\"4 3\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#b3261e\" text-anchor=\"{anchor}\">burst {}</text>\
                 <title>burst window: {arrivals} dead-letter arrivals in the minute {}</title></g>",
                px(start_slot),
                px(end_slot) - px(start_slot),
                TOP + plot_h,
                if right_half { mx - 4.0 } else { mx + 4.0 },
                TOP + 12.0,
                esc(&time_text(minute)[11..16]),
                esc(&time_text(minute)),
            );
        }
    }
    for (line, values) in &lines {
        let mut path = String::new();
        let mut pen_down = false;
        for (i, v) in values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(
                        path,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        x(i),
                        y(*v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        // Dots mark each stored minute, so a lone minute between gaps is seen too.
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                let _ = write!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"/>",
                    x(i),
                    y(*v),
                    line.colour
                );
            }
        }
        if !path.is_empty() {
            let _ = write!(
                svg,
                "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"><title>{}</title></path>",
                path.trim_end(),
                line.colour,
                line.label
            );
        }
    }
    svg.push_str("</svg>");

    let mut out = String::new();
    out.push_str("<div class=\"legend\">");
    for (k, (line, values)) in lines.iter().enumerate() {
        let total: f64 = values.iter().flatten().sum();
        let last = values.iter().rev().flatten().next();
        let shown = if line.gauge {
            format!("last {}", last.map_or("–".into(), |v| number_text(*v)))
        } else {
            format!("total {}", number_text(total))
        };
        let _ = write!(
            out,
            "<span class=\"series-{k}\" data-metric=\"{}\">{}: {}</span>",
            line.metric, line.label, shown
        );
    }
    out.push_str("</div>");
    if let Some((minute, arrivals)) = history.burst {
        let (start, end) = redrive_select::stats::burst_window(minute);
        let _ = write!(
            out,
            "<p id=\"burst-note\" data-minute=\"{minute}\">Burst: {arrivals} dead-letter arrivals in \
             the minute {} (the most in the last 24 hours); window {} – {} shaded.</p>",
            esc(&time_text(minute)),
            esc(&time_text(start)[11..16]),
            esc(&time_text(end)[11..16]),
        );
    }
    out.push_str(&svg);
    out
}

/// 1, 2, 5 × 10ⁿ at or above `v` (at least 1).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 1.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * mag)
}

fn number_text(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(300.0), 500.0);
    }
}
