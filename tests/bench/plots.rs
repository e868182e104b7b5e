//! SVG plots of the bench (plotters, SVG backend only).

use std::path::Path;

use plotters::prelude::*;

use crate::run::ModelFig;

type PlotResult = Result<(), Box<dyn std::error::Error>>;

const COLORS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];

/// Images per second against batch size (log–log), one line per model.
pub fn throughput(path: &Path, models: &[ModelFig]) -> PlotResult {
    let root = SVGBackend::new(path, (820, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let xmax = models
        .iter()
        .flat_map(|m| m.batches.iter().map(|b| b.batch as f64))
        .fold(2.0, f64::max)
        * 1.5;
    let ys = models
        .iter()
        .flat_map(|m| m.batches.iter().map(|b| b.images_per_s))
        .filter(|y| y.is_finite() && *y > 0.0);
    let (ymin, ymax) = ys.fold((f64::INFINITY, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
    let (ymin, ymax) = if ymax > 0.0 {
        (ymin / 2.0, ymax * 2.0)
    } else {
        (0.1, 10.0)
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Secure inference throughput against batch size (both parties, loopback)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0.8f64..xmax).log_scale(), (ymin..ymax).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("images per session (batch)")
        .y_desc("images / s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| {
            if *y >= 1.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.2}")
            }
        })
        .draw()?;
    for (i, m) in models.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = m
            .batches
            .iter()
            .map(|b| (b.batch as f64, b.images_per_s))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
            .label(m.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
    }
    // MP2ML's anchor on CryptoNets-ReLU.
    let anchor = RGBColor(0, 0, 0);
    chart
        .draw_series(std::iter::once(Cross::new(
            (1000.0, 33.3),
            6,
            anchor.stroke_width(2),
        )))?
        .label("MP2ML CryptoNets-ReLU, 33.3 images/s")
        .legend(move |(x, y)| Cross::new((x + 10, y), 5, anchor.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Category of a step name.
fn category(name: &str) -> usize {
    match name {
        n if n.starts_with("handshake") => 0,
        n if n.starts_with("offline") => 1,
        n if n.starts_with("input") => 2,
        n if n.starts_with("he:") => 3,
        n if n.starts_with("mpc:") => 4,
        n if n.starts_with("output") => 5,
        _ => 6,
    }
}

const CATEGORIES: [&str; 7] = [
    "handshake",
    "offline (garbling, OT)",
    "input (encrypt, upload)",
    "HE linear segments",
    "MPC activations",
    "output",
    "other",
];

/// Share of the server's session time per step category, one stacked bar per model and batch.
pub fn time_split(path: &Path, models: &[ModelFig]) -> PlotResult {
    let mut bars: Vec<(String, [f64; 7])> = Vec::new();
    for m in models {
        for run in [&m.b1, &m.best] {
            let mut v = [0.0; 7];
            for s in &run.server.steps {
                v[category(&s.name)] += s.seconds;
            }
            let label = format!("{} b={} ({:.2} s)", m.name, run.server.images, run.seconds);
            if !bars.iter().any(|(l, _)| *l == label) {
                bars.push((label, v));
            }
        }
    }
    let root =
        SVGBackend::new(path, ((180 + 150 * bars.len() as u32).max(720), 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = bars.len().max(1) as f64;
    let labels: Vec<String> = bars.iter().map(|(l, _)| l.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Server time per step category (% of the session; wall time in the label)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(50)
        .right_y_label_area_size(10)
        .build_cartesian_2d(-0.5f64..(n - 0.5), 0f64..140f64)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len().max(1))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.05 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_label_style(("sans-serif", 11))
        .y_desc("% of server session time")
        .y_label_formatter(&|y| {
            if *y <= 100.0 {
                format!("{y:.0}")
            } else {
                String::new()
            }
        })
        .draw()?;
    for (k, name) in CATEGORIES.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let rects: Vec<Rectangle<(f64, f64)>> = bars
            .iter()
            .enumerate()
            .filter_map(|(i, (_, v))| {
                let total: f64 = v.iter().sum();
                if total <= 0.0 || v[k] <= 0.0 {
                    return None;
                }
                let below: f64 = v[..k].iter().sum::<f64>() / total * 100.0;
                let top = below + v[k] / total * 100.0;
                let x = i as f64;
                Some(Rectangle::new(
                    [(x - 0.35, below), (x + 0.35, top)],
                    c.filled(),
                ))
            })
            .collect();
        if bars.iter().any(|(_, v)| v[k] > 0.0) {
            chart
                .draw_series(rects)?
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(())
}
