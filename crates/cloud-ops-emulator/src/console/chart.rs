//! Line charts as inline SVG, drawn on the server.
//!
//! Hand-written rather than a plotting crate: the console needs only time on
//! x, a few lines, axes and a legend, and inline SVG works offline, with no
//! script, and is escaped by `maud` like the rest of the page.

use maud::{html, Markup};

use super::layout;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 230.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// Distinguishable on white, in this order.
const COLOURS: [&str; 8] = [
    "#1a73e8", "#d93025", "#188038", "#f9ab00", "#9334e6", "#12b5cb", "#e8710a", "#5f6368",
];

/// One line: a name for the legend and `(time in ns, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub points: Vec<(i64, f64)>,
}

/// A chart to draw.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    /// Stable id for tests and links (`data-chart`).
    pub id: &'a str,
    pub title: &'a str,
    /// Formats a y value for the axis (`12 req/s`, `35 ms`).
    pub format: fn(f64) -> String,
    /// The x range, nanoseconds.
    pub from: i64,
    pub to: i64,
    pub lines: Vec<Line>,
}

/// Lines drawn in one chart: one per route or label value, and a client
/// chooses how many of those there are.
const MAX_LINES: usize = 16;

impl Chart<'_> {
    /// The chart as an inline `<svg>` with its title and legend; lines past
    /// [`MAX_LINES`] are left out and counted in the legend.
    pub fn render(&self) -> Markup {
        let max = self.y_max();
        let shown = &self.lines[..self.lines.len().min(MAX_LINES)];
        let hidden = self.lines.len() - shown.len();
        let points: usize = shown.iter().map(|l| l.points.len()).sum();
        html! {
            div.chart {
                b { (self.title) }
                svg xmlns="http://www.w3.org/2000/svg" width="100%"
                    viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(self.title)
                    data-chart=(self.id) data-points=(points) font-family="sans-serif" font-size="11" {
                    (self.axes(max))
                    @if points == 0 {
                        text x=(LEFT + 10.0) y=(TOP + 30.0) fill="#5f6368" { "No data in this window" }
                    }
                    @for (i, line) in shown.iter().enumerate() { (self.line(line, COLOURS[i % COLOURS.len()], max)) }
                }
                div.legend {
                    @if hidden > 0 { span.muted { "(" (hidden) " more not drawn) " } }
                    @for (i, line) in shown.iter().enumerate() {
                        span style="margin-right:14px;white-space:nowrap" {
                            span style=(format!("display:inline-block;width:10px;height:10px;background:{};margin-right:4px", COLOURS[i % COLOURS.len()])) {}
                            (line.name)
                        }
                    }
                }
            }
        }
    }

    /// A round top for the y axis, at least a little above zero.
    fn y_max(&self) -> f64 {
        let max = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(0.0_f64, f64::max);
        nice_ceiling(max)
    }

    fn x(&self, t: i64) -> f64 {
        let span = (self.to - self.from).max(1) as f64;
        LEFT + (t - self.from) as f64 / span * (WIDTH - LEFT - RIGHT)
    }

    fn y(max: f64, v: f64) -> f64 {
        let v = if v.is_finite() {
            v.clamp(0.0, max)
        } else {
            0.0
        };
        HEIGHT - BOTTOM - v / max * (HEIGHT - TOP - BOTTOM)
    }

    fn axes(&self, max: f64) -> Markup {
        let ticks = 4;
        html! {
            @for i in 0..=ticks {
                @let v = max * f64::from(i) / f64::from(ticks);
                @let y = Self::y(max, v);
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y) y2=(y) stroke="#e0e0e0" {}
                text x=(LEFT - 6.0) y=(y + 4.0) text-anchor="end" fill="#5f6368" { ((self.format)(v)) }
            }
            @for i in 0..=4_i64 {
                @let t = self.from + (self.to - self.from) * i / 4;
                @let anchor = match i { 0 => "start", 4 => "end", _ => "middle" };
                text x=(self.x(t)) y=(HEIGHT - 8.0) text-anchor=(anchor) fill="#5f6368" { (layout::clock(t)) }
            }
            line x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(HEIGHT - BOTTOM) stroke="#9aa0a6" {}
        }
    }

    fn line(&self, line: &Line, colour: &str, max: f64) -> Markup {
        let coords: Vec<String> = line
            .points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", self.x(*t), Self::y(max, *v)))
            .collect();
        html! {
            g data-series=(line.name) data-points=(line.points.len()) {
                polyline points=(coords.join(" ")) fill="none" stroke=(colour) stroke-width="2" {}
                @for (t, v) in &line.points {
                    circle cx=(format!("{:.1}", self.x(*t))) cy=(format!("{:.1}", Self::y(max, *v))) r="2.5" fill=(colour) {
                        title { (line.name) " " (layout::clock(*t)) ": " ((self.format)(*v)) }
                    }
                }
            }
        }
    }
}

/// 1, 2, 2.5 or 5 times a power of ten, at or above `v`; 1 for nothing.
pub fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_y_axis_tops_at_a_round_number() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(0.18), 0.2);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }

    #[test]
    fn a_chart_draws_one_group_per_line_and_escapes_names() {
        let chart = Chart {
            id: "c",
            title: "t",
            format: |v| format!("{v}"),
            from: 0,
            to: 10,
            lines: vec![Line {
                name: "<script>".into(),
                points: vec![(0, 1.0), (10, 2.0)],
            }],
        };
        let svg = chart.render().into_string();
        assert!(svg.contains("data-points=\"2\""));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(!svg.contains("<script>"));
    }
}
