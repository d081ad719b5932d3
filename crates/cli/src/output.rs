//! Human output: aligned tables and key/value listings.

use serde_json::Value;

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// A size for people: `512 B`, `4.8 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 { format!("{value:.1} {}", UNITS[unit]) } else { format!("{value:.0} {}", UNITS[unit]) }
}

/// A field's cell: sizes in human units, the rest by [`cell`].
fn field_cell(name: &str, v: &Value) -> String {
    match (name, v.as_u64()) {
        ("size", Some(n)) => bytes(n),
        _ => cell(v),
    }
}

/// A cell: strings as they are, maps as `k=v` pairs, arrays by their length.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Object(m) => m.iter().map(|(k, v)| format!("{k}={}", cell(v))).collect::<Vec<_>>().join(","),
        Value::Array(a) if a.iter().all(Value::is_string) => {
            a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")
        }
        Value::Array(a) => a.len().to_string(),
        other => other.to_string(),
    }
}

pub struct Table<'a> {
    columns: &'a [(&'a str, &'a str)],
}

impl<'a> Table<'a> {
    pub fn new(columns: &'a [(&'a str, &'a str)]) -> Self {
        Self { columns }
    }

    pub fn rows(&self, items: &[Value]) {
        let cells: Vec<Vec<String>> =
            items.iter().map(|i| self.columns.iter().map(|(_, f)| field_cell(f, &i[*f])).collect()).collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(c, (h, _))| cells.iter().map(|r| r[c].chars().count()).max().unwrap_or(0).max(h.len()))
            .collect();
        let line = |vals: Vec<&str>| {
            let parts: Vec<String> = vals.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
            println!("{}", parts.join("  ").trim_end());
        };
        line(self.columns.iter().map(|(h, _)| *h).collect());
        for r in &cells {
            line(r.iter().map(String::as_str).collect());
        }
    }

    pub fn one(&self, item: &Value) {
        self.rows(std::slice::from_ref(item));
    }

    /// A page of a list, with a line saying which part of the total it is.
    pub fn page(&self, page: &Value) {
        let items = page["items"].as_array().map(Vec::as_slice).unwrap_or_default();
        self.rows(items);
        let total = page["total"].as_u64().unwrap_or(items.len() as u64);
        let offset = page["offset"].as_u64().unwrap_or(0);
        if total > items.len() as u64 {
            eprintln!("({}–{} of {total}; use --offset and --limit for more)", offset + 1, offset + items.len() as u64);
        }
    }
}

/// Every field of one object, one per line.
pub fn fields(v: &Value) {
    if let Some(m) = v.as_object() {
        let w = m.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in m {
            println!("{k:<w$}  {}", field_cell(k, v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(5_000_000), "4.8 MiB");
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
