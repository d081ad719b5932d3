//! Benchmark for `bench/filters`: one changed device checked against 1,000
//! active compiled filters in memory (`CompiledFilter::matches(&Subject)`).
//!
//!   cargo run --release -p updraft-core --example filter_match [-- ROUNDS]
//!
//! Each round takes a different device (so nothing is answered from a warm
//! branch predictor for one device only), prepares its `Subject` and checks it
//! against all 1,000 filters; the time of a round includes `Subject::new`.
//! Prints one line: `rounds median_us max_us p99_us matched_per_round`.
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use jiff::Timestamp;
use updraft_core::filter::{CompiledFilter, Filter, Subject};
use updraft_core::{ConnectionStatus, Device, PropertyValue};

const PRODUCTS: [&str; 4] = ["thermo-x", "lamp", "gateway", "sensor-s"];
const VERSIONS: [&str; 8] = ["1.0.0", "1.2.3", "1.9.0", "1.10.0", "2.0.0-rc.1", "2.0.0", "2.1.0", "3.0.0"];
const REGIONS: [&str; 5] = ["eu", "us", "apac", "latam", "mea"];
const CUSTOMERS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// 1,000 filters of the shapes a fleet's jobs use: product/version/status,
/// properties, metadata, groups, times, id lists, `or` and `not`.
fn filters(rng: &mut Rng) -> Vec<CompiledFilter> {
    (0..1000)
        .map(|i| {
            let p = rng.pick(&PRODUCTS);
            let v = rng.pick(&VERSIONS);
            let r = rng.pick(&REGIONS);
            let c = rng.pick(&CUSTOMERS);
            let t = 10 + rng.next() % 30;
            let text = match i % 8 {
                0 => format!(r#"product == "{p}" and fw.host < "{v}" and status == online"#),
                1 => format!(r#"prop.region == "{r}" and prop.temp > {t} and meta.customer == "{c}""#),
                2 => format!(r#"product == "{p}" and (fw.host >= "{v}" or fw.modem exists) and not status == offline"#),
                3 => format!(r#"prop.region in ["{r}", "eu"] and activated > 90d ago and hw < "2.0.0""#),
                4 => format!(r#"group == "rollout-{}" or meta.site == "site-{}""#, i % 50, i % 200),
                5 => format!(r#"product in ["{p}", "lamp"] and fw.host in ["{v}", "1.0.0"] and prop.battery == true"#),
                6 => format!(
                    r#"prop.room contains "lab" and connected > 1d ago include ["dev-{i:07}"] exclude ["dev-0000001"]"#
                ),
                _ => format!(r#"fw.host == "{v}" and meta.customer != "{c}" and prop.temp <= {t}"#),
            };
            Filter::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}")).compile()
        })
        .collect()
}

fn device(rng: &mut Rng, i: u64, now: Timestamp) -> Device {
    let mut firmware = BTreeMap::new();
    firmware.insert("host".to_owned(), rng.pick(&VERSIONS).to_owned());
    if i.is_multiple_of(3) {
        firmware.insert("modem".to_owned(), rng.pick(&VERSIONS).to_owned());
    }
    let mut properties = BTreeMap::new();
    properties.insert("region".to_owned(), PropertyValue::String(rng.pick(&REGIONS).to_owned()));
    properties.insert("temp".to_owned(), PropertyValue::Number((rng.next() % 400) as f64 / 10.0));
    properties.insert("battery".to_owned(), PropertyValue::Bool(i.is_multiple_of(2)));
    properties.insert("room".to_owned(), PropertyValue::String(format!("lab-{}", i % 20)));
    let mut metadata = BTreeMap::new();
    metadata.insert("customer".to_owned(), rng.pick(&CUSTOMERS).to_owned());
    metadata.insert("site".to_owned(), format!("site-{}", i % 200));
    let ago = |secs: u64| now.checked_sub(jiff::SignedDuration::from_secs(secs as i64)).unwrap();
    Device {
        id: format!("dev-{i:07}"),
        product: rng.pick(&PRODUCTS).to_owned(),
        firmware,
        hardware_version: Some(rng.pick(&["1.0.0", "2.0.0"]).to_owned()),
        module_model: Some("bg96".to_owned()),
        module_version: Some(rng.pick(&VERSIONS).to_owned()),
        template_id: None,
        properties,
        metadata,
        activated_at: Some(ago(rng.next() % (365 * 86400))),
        last_seen_at: Some(ago(rng.next() % (3 * 86400))),
        connection_status: [ConnectionStatus::Online, ConnectionStatus::Offline, ConnectionStatus::Initializing]
            [(rng.next() % 3) as usize],
        created_at: now,
        updated_at: now,
    }
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let now = Timestamp::now();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let filters = filters(&mut rng);
    let devices: Vec<Device> = (0..rounds as u64 + 100).map(|i| device(&mut rng, i, now)).collect();
    let groups: Vec<Vec<String>> =
        (0..devices.len()).map(|i| (0..(i % 3)).map(|g| format!("rollout-{}", (i + g) % 50)).collect()).collect();
    let mut times = Vec::with_capacity(rounds);
    let mut matched = 0usize;
    for (n, (d, g)) in devices.iter().zip(&groups).enumerate() {
        let start = Instant::now();
        let subject = Subject::new(d, g, now);
        let hits = filters.iter().filter(|f| f.matches(black_box(&subject))).count();
        let took = start.elapsed();
        black_box(hits);
        if n >= 100 {
            // the first 100 rounds warm caches and are not counted
            times.push(took.as_nanos() as f64 / 1000.0);
            matched += hits;
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!(
        "{} {:.1} {:.1} {:.1} {:.1}",
        times.len(),
        q(0.5),
        times[times.len() - 1],
        q(0.99),
        matched as f64 / times.len() as f64
    );
}
