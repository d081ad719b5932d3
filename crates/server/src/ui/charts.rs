//! Charts drawn on the server as inline SVG: no script, no library, and the
//! numbers are in the page for screen readers (each chart has a title and a
//! description, and the pages show the same figures in text).

use std::fmt::Write;

use super::view::esc;

/// A progress bar: succeeded, failed and in progress out of `total`.
pub fn progress(succeeded: u64, failed: u64, running: u64, total: u64) -> String {
    let total = total.max(1) as f64;
    let w = |n: u64| (n as f64 / total * 200.0).clamp(0.0, 200.0);
    let (a, b, c) = (w(succeeded), w(failed), w(running));
    format!(
        r##"<svg class="progress" width="200" height="12" viewBox="0 0 200 12" role="img" aria-label="{s} succeeded, {f} failed, {r} in progress of {t}"><rect width="200" height="12" rx="3" fill="#e4e8ec"/><rect width="{a:.1}" height="12" fill="#1a7f37"/><rect x="{a:.1}" width="{b:.1}" height="12" fill="#cf222e"/><rect x="{ab:.1}" width="{c:.1}" height="12" fill="#3b82f6"/></svg>"##,
        s = succeeded,
        f = failed,
        r = running,
        t = total as u64,
        ab = a + b,
    )
}

/// Horizontal bars, one per label, scaled to the largest value.
pub fn bars(id: &str, title: &str, rows: &[(String, u64)]) -> String {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
    let row_h = 22;
    let h = rows.len().max(1) * row_h + 4;
    let mut svg = format!(
        r#"<svg width="560" height="{h}" viewBox="0 0 560 {h}" role="img" aria-labelledby="t-{id}"><title id="t-{id}">{t}</title>"#,
        id = esc(id),
        t = esc(title)
    );
    for (i, (label, n)) in rows.iter().enumerate() {
        let y = i * row_h + 2;
        let w = (*n as f64 / max * 300.0).max(1.0);
        let _ = write!(
            svg,
            r##"<text x="0" y="{ty}">{l}</text><rect x="180" y="{y}" width="{w:.1}" height="16" rx="2" fill="#0a4fb5"/><text x="{tx:.1}" y="{ty}">{n}</text>"##,
            ty = y + 13,
            l = esc(&truncate(label, 26)),
            tx = 186.0 + w,
            n = super::view::count(*n),
        );
    }
    if rows.is_empty() {
        svg.push_str(r#"<text x="0" y="16">No devices yet.</text>"#);
    }
    svg.push_str("</svg>");
    svg
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

/// One line of a chart: its name, its colour, and its points (seconds since
/// the first point, count).
pub type Series<'a> = (&'a str, &'a str, Vec<(f64, u64)>);

/// Lines of cumulative counts over time.
pub fn lines(title: &str, series: &[Series<'_>]) -> String {
    let (w, h, left, bottom) = (560.0, 180.0, 48.0, 22.0);
    let max_x = series.iter().flat_map(|s| s.2.iter().map(|p| p.0)).fold(1.0_f64, f64::max);
    let max_y = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).max().unwrap_or(0).max(1) as f64;
    let x = |v: f64| left + v / max_x * (w - left - 10.0);
    let y = |v: u64| (h - bottom) - v as f64 / max_y * (h - bottom - 10.0);
    let mut svg = format!(
        r##"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-labelledby="chart-title"><title id="chart-title">{t}</title><line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#6e7781"/><line x1="{left}" y1="10" x2="{left}" y2="{b}" stroke="#6e7781"/><text x="0" y="16">{top}</text><text x="0" y="{b}">0</text><text x="{left}" y="{lb}">start</text><text x="{rl}" y="{lb}">now</text>"##,
        t = esc(title),
        b = h - bottom,
        r = w - 10.0,
        top = super::view::count(max_y as u64),
        lb = h - 4.0,
        rl = w - 40.0,
    );
    for (i, (name, colour, points)) in series.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let path: Vec<String> = points.iter().map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py))).collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/><rect x="{lx}" y="{ly}" width="10" height="10" fill="{colour}"/><text x="{tx}" y="{ty}">{name}</text>"#,
            path.join(" "),
            lx = left + 10.0 + i as f64 * 120.0,
            ly = 2.0,
            tx = left + 24.0 + i as f64 * 120.0,
            ty = 11.0,
        );
    }
    svg.push_str("</svg>");
    svg
}
