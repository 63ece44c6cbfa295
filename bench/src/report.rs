//! Report output: markdown tables on stdout, JSON and SVG files next to each other.

use std::fmt::Write as _;

/// One measured point.
#[derive(Debug, Clone)]
pub struct Point {
    /// Device under test.
    pub dut: String,
    /// Frame size in bytes (without FCS).
    pub size: usize,
    /// Test name.
    pub test: String,
    /// Frames per second delivered (for `back-to-back`: frames in the longest clean burst).
    pub pps: f64,
    /// Fraction lost.
    pub loss: f64,
    /// Latency percentiles in µs (p50, p90, p99, max), when measured.
    pub latency_us: Option<[f64; 4]>,
    /// The latency CDF, when measured: (quantile, µs) pairs in rising order.
    pub cdf: Vec<(f64, f64)>,
    /// Free text (e.g. "generator-bound").
    pub note: String,
    /// `pps` of every run this point is the median of (one value for a single run).
    pub runs: Vec<f64>,
    /// The largest `loss` of those runs.
    pub worst_loss: f64,
}

impl Point {
    /// Gbit/s of Ethernet payload + header (FCS, preamble and gap excluded).
    pub fn gbps(&self) -> f64 {
        self.pps * self.size as f64 * 8.0 / 1e9
    }
}

/// The median of `v` (0 for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Folds repeated runs into one point per (DUT, size, test): the median of the rate, the loss,
/// each latency percentile and each point of the CDF, with every run's rate kept in `runs` and
/// the largest loss in `worst_loss`. A note
/// that not every run shares is dropped.
pub fn aggregate(points: &[Point]) -> Vec<Point> {
    let mut out: Vec<Point> = Vec::new();
    let mut groups: Vec<Vec<&Point>> = Vec::new();
    for p in points {
        match out
            .iter()
            .position(|o| o.dut == p.dut && o.size == p.size && o.test == p.test)
        {
            Some(i) => groups[i].push(p),
            None => {
                out.push(p.clone());
                groups.push(vec![p]);
            }
        }
    }
    for (o, g) in out.iter_mut().zip(groups) {
        o.runs = g.iter().flat_map(|p| p.runs.iter().copied()).collect();
        o.pps = median(o.runs.clone());
        o.loss = median(g.iter().map(|p| p.loss).collect());
        o.worst_loss = g.iter().map(|p| p.worst_loss).fold(0.0, f64::max);
        let lats: Vec<[f64; 4]> = g.iter().filter_map(|p| p.latency_us).collect();
        if !lats.is_empty() {
            o.latency_us = Some(std::array::from_fn(|k| {
                median(lats.iter().map(|l| l[k]).collect())
            }));
        }
        o.cdf = (0..o.cdf.len())
            .map(|k| {
                let q = o.cdf[k].0;
                (
                    q,
                    median(g.iter().filter_map(|p| p.cdf.get(k).map(|c| c.1)).collect()),
                )
            })
            .collect();
        if g.iter().any(|p| p.note != o.note) {
            o.note.clear();
        }
    }
    out
}

/// A single measured value (the RFC 2889 tests), for the JSON report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Metric {
    /// Device under test.
    pub dut: String,
    /// Test name.
    pub test: String,
    /// The value, in `unit`.
    pub value: f64,
    /// `pps`, `fps`, `addresses`, `fraction`...
    pub unit: String,
    /// Free text (e.g. "lower bound: largest tried").
    pub note: String,
}

/// JSON text of all metrics.
pub fn json_metrics(metrics: &[Metric]) -> String {
    serde_json::to_string_pretty(metrics).unwrap_or_default()
}

/// `x` rounded to `digits` decimals (the reports' precision).
fn round(x: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (x * k).round() / k
}

/// JSON text of all points.
pub fn json(points: &[Point]) -> String {
    let rows: Vec<serde_json::Value> = points
        .iter()
        .map(|p| {
            let mut row = serde_json::json!({
                "dut": p.dut,
                "size": p.size,
                "test": p.test,
            });
            let o = row.as_object_mut().expect("an object");
            // A back-to-back point counts frames in a burst, not frames per second.
            if p.test == "back-to-back" {
                o.insert("frames".into(), (p.pps.round() as u64).into());
            } else {
                o.insert("pps".into(), (p.pps.round() as u64).into());
                o.insert("gbps".into(), round(p.gbps(), 4).into());
            }
            let runs: Vec<u64> = p.runs.iter().map(|r| r.round() as u64).collect();
            o.insert("runs".into(), runs.into());
            o.insert("loss".into(), round(p.loss, 6).into());
            o.insert("worst_loss".into(), round(p.worst_loss, 6).into());
            let latency = p.latency_us.map(|l| {
                serde_json::json!({
                    "p50": round(l[0], 2),
                    "p90": round(l[1], 2),
                    "p99": round(l[2], 2),
                    "max": round(l[3], 2),
                })
            });
            o.insert("latency_us".into(), latency.into());
            if !p.cdf.is_empty() {
                let cdf: Vec<[f64; 2]> = p.cdf.iter().map(|&(q, us)| [q, round(us, 2)]).collect();
                o.insert("cdf".into(), serde_json::json!(cdf));
            }
            o.insert("note".into(), p.note.clone().into());
            row
        })
        .collect();
    serde_json::to_string_pretty(&rows).unwrap_or_default()
}

/// One colour per DUT, in the order the DUTs first appear.
const COLORS: [&str; 6] = [
    "#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2",
];

/// The DUTs' colours, in a row under the title.
fn legend(s: &mut String, duts: &[&str], left: f64) {
    for (j, dut) in duts.iter().enumerate() {
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"28\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"37\">{dut}</text>",
            left + 10.0 + 90.0 * j as f64,
            COLORS[j % COLORS.len()],
            left + 24.0 + 90.0 * j as f64
        );
    }
}

/// Latency CDFs (SVG) of the latency tests at frame size `size`: one curve per DUT and load
/// (solid at the heavy of `loads`, dashed at the light, in % of the throughput; dotted and
/// sparse at the reference DUT's), latency on a log scale.
pub fn svg_cdf(points: &[Point], size: usize, title: &str, loads: [u32; 2]) -> String {
    let [light, heavy] = loads;
    // A sink that saw nothing reports zeros: no curve for it.
    let pts: Vec<&Point> = points
        .iter()
        .filter(|p| p.size == size && p.cdf.last().is_some_and(|c| c.1 > 0.0))
        .collect();
    if pts.is_empty() {
        return format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"60\" font-family=\"sans-serif\" font-size=\"14\">\n\
             <text x=\"360\" y=\"35\" text-anchor=\"middle\">{title}: no latency measured</text>\n</svg>\n"
        );
    }
    let mut duts: Vec<&str> = Vec::new();
    for p in &pts {
        if !duts.contains(&p.dut.as_str()) {
            duts.push(&p.dut);
        }
    }
    let all = pts.iter().flat_map(|p| p.cdf.iter().map(|c| c.1.max(1.0)));
    let (lo, hi) = all.fold((f64::MAX, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = (
        lo.min(hi).log10().floor(),
        hi.log10().ceil().max(lo.log10() + 1.0),
    );
    let (w, h, left, bottom, top) = (720.0, 400.0, 60.0, 40.0, 50.0);
    let x = |us: f64| left + (w - left - 40.0) * (us.max(1.0).log10() - lo) / (hi - lo);
    let y = |q: f64| h - bottom - (h - bottom - top) * q;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">{title}</text>\n",
        w / 2.0
    );
    for k in 0..=4 {
        let q = f64::from(k) / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.0}\" text-anchor=\"end\">{q:.2}</text><line x1=\"{left}\" y1=\"{:.0}\" x2=\"{}\" y2=\"{:.0}\" stroke=\"#ddd\"/>",
            left - 4.0,
            y(q) + 4.0,
            y(q),
            w - 20.0,
            y(q)
        );
    }
    let mut e = lo;
    while e <= hi {
        let us = 10f64.powf(e);
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"{}\" text-anchor=\"middle\">{us} µs</text><line x1=\"{:.0}\" y1=\"{top}\" x2=\"{:.0}\" y2=\"{}\" stroke=\"#ddd\"/>",
            x(us),
            h - bottom + 16.0,
            x(us),
            x(us),
            h - bottom
        );
        e += 1.0;
    }
    let _ = writeln!(
        s,
        "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\">fraction of frames</text>",
        h / 2.0,
        h / 2.0
    );
    for p in &pts {
        let j = duts.iter().position(|d| *d == p.dut).unwrap_or(0);
        // At the reference DUT's rates (`latency@bridge 90%`): dotted.
        let same_rate = p.test.contains(' ');
        let dash = match (
            same_rate,
            p.test.ends_with(&format!(" {light}%")) || p.test.ends_with(&format!("@{light}%")),
        ) {
            (false, false) => "",
            (false, true) => " stroke-dasharray=\"6 4\"",
            (true, false) => " stroke-dasharray=\"2 3\"",
            (true, true) => " stroke-dasharray=\"2 8\"",
        };
        let path: Vec<String> = p
            .cdf
            .iter()
            .map(|&(q, us)| format!("{:.1},{:.1}", x(us), y(q)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{}\"><title>{} {}</title></polyline>",
            COLORS[j % COLORS.len()],
            path.join(" "),
            p.dut,
            p.test
        );
    }
    legend(&mut s, &duts, left);
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">solid: {heavy} % of its own no-loss rate, dashed: {light} %; dotted: the reference's {heavy} %, sparse: its {light} %</text>",
        w - 20.0,
        h - 4.0
    );
    s.push_str("</svg>\n");
    s
}

/// A grouped bar chart (SVG) of `test`'s rate by frame size, one bar per DUT.
pub fn svg_bars(points: &[Point], test: &str, title: &str) -> String {
    let pts: Vec<&Point> = points.iter().filter(|p| p.test == test).collect();
    let mut sizes: Vec<usize> = pts.iter().map(|p| p.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut duts: Vec<&str> = Vec::new();
    for p in &pts {
        if !duts.contains(&p.dut.as_str()) {
            duts.push(&p.dut);
        }
    }
    let max = pts.iter().map(|p| p.pps).fold(1.0, f64::max);
    let (w, h, left, bottom) = (720.0, 360.0, 60.0, 40.0);
    let group = (w - left - 20.0) / sizes.len().max(1) as f64;
    let bar = group * 0.8 / duts.len().max(1) as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">{title}</text>\n\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n",
        w / 2.0,
        h - bottom,
        w - 20.0,
        h - bottom
    );
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let y = h - bottom - (h - bottom - 50.0) * k as f64 / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{y:.0}\" text-anchor=\"end\">{:.2}</text><line x1=\"{left}\" y1=\"{y:.0}\" x2=\"{}\" y2=\"{y:.0}\" stroke=\"#ddd\"/>",
            left - 4.0,
            v / 1e6,
            w - 20.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\">Mpps</text>",
        h / 2.0,
        h / 2.0
    );
    for (i, size) in sizes.iter().enumerate() {
        let gx = left + group * i as f64 + group * 0.1;
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"{}\" text-anchor=\"middle\">{size} B</text>",
            gx + group * 0.4,
            h - bottom + 16.0
        );
        for (j, dut) in duts.iter().enumerate() {
            if let Some(p) = pts.iter().find(|p| p.size == *size && p.dut == *dut) {
                let bh = (h - bottom - 50.0) * p.pps / max;
                let _ = writeln!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{dut} {size} B: {:.3} Mpps</title></rect>",
                    gx + bar * j as f64,
                    h - bottom - bh,
                    bar - 2.0,
                    COLORS[j % COLORS.len()],
                    p.pps / 1e6
                );
            }
        }
    }
    legend(&mut s, &duts, left);
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(dut: &str, size: usize, pps: f64) -> Point {
        Point {
            dut: dut.into(),
            size,
            test: "throughput".into(),
            pps,
            loss: 0.0,
            latency_us: None,
            cdf: Vec::new(),
            note: String::new(),
            runs: vec![pps],
            worst_loss: 0.0,
        }
    }

    #[test]
    fn json_and_svg_carry_every_point() {
        let pts = vec![
            p("none", 64, 2e6),
            p("qswitch", 64, 1.5e6),
            p("none", 1518, 5e5),
        ];
        let j: serde_json::Value = serde_json::from_str(&json(&pts)).unwrap();
        assert_eq!(j.as_array().unwrap().len(), 3);
        assert_eq!(j[1]["dut"], "qswitch");
        assert_eq!(j[1]["pps"], 1_500_000);
        // Names and notes are escaped, whatever they hold.
        let mut odd = p("a\"b", 64, 1.0);
        odd.note = "line\nbreak \\ quote\"".into();
        let back: serde_json::Value = serde_json::from_str(&json(&[odd.clone()])).unwrap();
        assert_eq!(back[0]["dut"], "a\"b");
        assert_eq!(back[0]["note"], odd.note);
        let s = svg_bars(&pts, "throughput", "t");
        assert_eq!(s.matches("<rect x=").count(), 3 + 2);
        assert!(s.starts_with("<svg"));
    }

    #[test]
    fn repeated_runs_fold_into_medians() {
        let mut a = p("qswitch", 64, 1e6);
        a.latency_us = Some([10.0, 20.0, 30.0, 40.0]);
        a.cdf = vec![(0.5, 10.0), (1.0, 40.0)];
        a.note = "generator-bound".into();
        let mut b = p("qswitch", 64, 3e6);
        b.latency_us = Some([30.0, 40.0, 50.0, 60.0]);
        b.cdf = vec![(0.5, 30.0), (1.0, 60.0)];
        (b.loss, b.worst_loss) = (0.02, 0.02);
        let mut c = p("qswitch", 64, 2e6);
        c.latency_us = Some([20.0, 30.0, 40.0, 50.0]);
        c.cdf = vec![(0.5, 20.0), (1.0, 50.0)];
        let agg = aggregate(&[a, p("none", 64, 5e6), b, c]);
        assert_eq!(agg.len(), 2);
        let q = &agg[0];
        assert_eq!((q.pps, q.runs.len()), (2e6, 3));
        assert_eq!(q.latency_us, Some([20.0, 30.0, 40.0, 50.0]));
        assert_eq!(q.cdf, vec![(0.5, 20.0), (1.0, 50.0)]);
        assert_eq!(q.note, "", "a note not every run shares is dropped");
        // One run of three lost frames: the median says none, the worst run says it.
        assert_eq!((q.loss, q.worst_loss), (0.0, 0.02));
        let j: serde_json::Value = serde_json::from_str(&json(&agg)).unwrap();
        assert_eq!(j[0]["runs"], serde_json::json!([1000000, 3000000, 2000000]));
        assert_eq!(j[0]["worst_loss"], 0.02);
        assert_eq!(median(vec![1.0, 4.0]), 2.5);
    }

    #[test]
    fn cdf_curves_one_per_latency_point() {
        let mut a = p("qswitch", 64, 1e6);
        a.test = "latency@90%".into();
        a.cdf = vec![(0.0, 10.0), (0.5, 20.0), (1.0, 400.0)];
        let mut b = a.clone();
        b.test = "latency@50%".into();
        let pts = vec![a, b, p("none", 64, 2e6)];
        let s = svg_cdf(&pts, 64, "t", [50, 90]);
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(svg_cdf(&pts, 1518, "t", [50, 90]).contains("no latency measured"));
        assert!(!svg_cdf(&pts, 1518, "t", [50, 90]).contains("inf"));
        assert_eq!(s.matches("stroke-dasharray").count(), 1);
        assert!(
            s.contains("solid: 90 % of its own no-loss rate, dashed: 50 %"),
            "{s}"
        );
        // Other loads (`--loads 5,15`, where the heavy one's name ends in the light one's): each
        // curve's dashes by its own load and rate.
        let curve = |test: &str| {
            let mut c = pts[0].clone();
            c.test = test.into();
            c
        };
        let tests = [
            "latency@5%",
            "latency@15%",
            "latency@bridge 5%",
            "latency@bridge 15%",
        ];
        let s5 = svg_cdf(&tests.map(curve), 64, "t", [5, 15]);
        let dashes = |test: &str| {
            let line = s5
                .lines()
                .find(|l| l.contains(&format!("<title>qswitch {test}</title>")))
                .unwrap_or_else(|| panic!("no curve for {test}: {s5}"));
            line.split("stroke-dasharray=\"")
                .nth(1)
                .map(|d| d.split('"').next().unwrap().to_string())
        };
        assert_eq!(dashes("latency@5%").as_deref(), Some("6 4"));
        assert_eq!(dashes("latency@15%"), None);
        assert_eq!(dashes("latency@bridge 5%").as_deref(), Some("2 8"));
        assert_eq!(dashes("latency@bridge 15%").as_deref(), Some("2 3"));
        assert!(
            s5.contains("solid: 15 % of its own no-loss rate, dashed: 5 %"),
            "{s5}"
        );
        let j: serde_json::Value = serde_json::from_str(&json(&pts)).unwrap();
        assert_eq!(
            j[0]["cdf"],
            serde_json::json!([[0.0, 10.0], [0.5, 20.0], [1.0, 400.0]])
        );
    }
}
