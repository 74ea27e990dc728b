//! The Kennzahlen charts as SVG, drawn on the server by plotters: the share
//! taken over straight through per month as a line, and the cases per rule
//! as bars. No script; the page shows each chart's data as a table beside
//! it, which is what assistive technology reads (the SVG is decorative
//! there, `aria-hidden`).

use plotters::prelude::*;
use plotters::style::FontFamily;

/// KERN's dark blue and a light grid.
const LINE: RGBColor = RGBColor(0x17, 0x1a, 0x5e);
const BAR: RGBColor = RGBColor(0x0f, 0x5a, 0x9e);
const FONT: FontFamily<'static> = FontFamily::Name("Fira Sans, sans-serif");

/// The share per month (0..=1; `None`: nothing received) as a line chart.
pub fn quote_line(points: &[(String, Option<f64>)]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 300)).into_drawing_area();
        let _ = draw_line(&root, points);
        let _ = root.present();
    }
    svg
}

fn draw_line(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    points: &[(String, Option<f64>)],
) -> Option<()> {
    root.fill(&WHITE).ok()?;
    let n = points.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .margin(12)
        .margin_right(28)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0..n.saturating_sub(1).max(1), 0.0..100.0)
        .ok()?;
    let labels: Vec<&str> = points.iter().map(|(m, _)| m.as_str()).collect();
    chart
        .configure_mesh()
        .x_labels(n.min(12))
        .x_label_formatter(&|i| labels.get(*i).map(|s| s.to_string()).unwrap_or_default())
        .y_label_formatter(&|v| format!("{v:.0} %"))
        .y_desc("Anteil direkt übernommen")
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .light_line_style(RGBColor(0xe6, 0xe8, 0xef))
        .draw()
        .ok()?;
    let series: Vec<(usize, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, (_, q))| q.map(|q| (i, q * 100.0)))
        .collect();
    chart
        .draw_series(LineSeries::new(series.clone(), LINE.stroke_width(3)))
        .ok()?;
    chart
        .draw_series(
            series
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 4, LINE.filled())),
        )
        .ok()?;
    Some(())
}

/// Cases per rule (most first) as horizontal bars.
pub fn rule_bars(rules: &[(String, i64)]) -> String {
    let mut svg = String::new();
    {
        let height = 60 + 28 * rules.len().max(1) as u32;
        let root = SVGBackend::with_string(&mut svg, (640, height)).into_drawing_area();
        let _ = draw_bars(&root, rules);
        let _ = root.present();
    }
    svg
}

fn draw_bars(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    rules: &[(String, i64)],
) -> Option<()> {
    root.fill(&WHITE).ok()?;
    let max = rules.iter().map(|r| r.1).max().unwrap_or(1).max(1);
    let n = rules.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(220)
        .build_cartesian_2d(0..max + max / 10 + 1, (0..n).into_segmented())
        .ok()?;
    let names: Vec<&str> = rules.iter().map(|r| r.0.as_str()).collect();
    // Bars run top to bottom: the first rule at the top.
    let name_at = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => n
            .checked_sub(i + 1)
            .and_then(|k| names.get(k))
            .map(|s| s.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&name_at)
        .x_desc("Klärfälle")
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .light_line_style(RGBColor(0xe6, 0xe8, 0xef))
        .draw()
        .ok()?;
    chart
        .draw_series(rules.iter().enumerate().map(|(k, (_, count))| {
            let y = n - k - 1;
            let mut bar = Rectangle::new(
                [
                    (0, SegmentValue::Exact(y)),
                    (*count, SegmentValue::Exact(y + 1)),
                ],
                BAR.filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            bar
        }))
        .ok()?;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_labels() {
        let line = quote_line(&[
            ("2026-10".into(), Some(0.5)),
            ("2026-11".into(), None),
            ("2026-12".into(), Some(0.75)),
        ]);
        assert!(
            line.starts_with("<svg") && line.contains("2026-12") && line.contains("50 %"),
            "{line}"
        );
        assert!(
            line.contains("<polyline") || line.contains("<path"),
            "a line is drawn"
        );
        let bars = rule_bars(&[("IBAN-UNGUELTIG".into(), 7), ("PLZ-FORMAT".into(), 3)]);
        assert!(bars.contains("IBAN-UNGUELTIG") && bars.contains("PLZ-FORMAT"));
        assert!(bars.matches("<rect").count() >= 2);
        assert!(!rule_bars(&[]).is_empty() && !quote_line(&[]).is_empty());
    }
}
