//! A strict reader of the OpenMetrics text exposition, enough to check
//! what `jobserver::metrics::render` writes: every family declared once
//! with HELP and TYPE before its samples, sample names that belong to
//! their family's type, well-formed and escaped labels, numeric values,
//! no duplicate series, cumulative histogram buckets whose `+Inf` equals
//! `_count`, and `# EOF` last.

use std::collections::{BTreeMap, BTreeSet};

/// Label name → value.
pub type Labels = BTreeMap<String, String>;

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → type.
    pub types: BTreeMap<String, String>,
    /// (sample name, labels) → value.
    pub samples: BTreeMap<(String, Labels), f64>,
}

impl Exposition {
    /// The value of a series, if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// Every series of a sample name.
    pub fn series(&self, name: &str) -> Vec<(&Labels, f64)> {
        self.samples.iter().filter(|((n, _), _)| n == name).map(|((_, l), v)| (l, *v)).collect()
    }
}

fn family_of<'a>(sample: &'a str, types: &BTreeMap<String, String>) -> Result<&'a str, String> {
    let candidates: &[(&str, &str)] = &[
        ("", "gauge"),
        ("_total", "counter"),
        ("_bucket", "histogram"),
        ("_sum", "histogram"),
        ("_count", "histogram"),
    ];
    for (suffix, ty) in candidates {
        if let Some(base) = sample.strip_suffix(suffix) {
            if types.get(base).map(String::as_str) == Some(ty) {
                return Ok(base);
            }
        }
    }
    Err(format!("sample {sample} belongs to no declared family"))
}

fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    let mut rest = s;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find("=\"").ok_or_else(|| format!("bad label in {s:?}"))?;
        let name = &rest[..eq];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated label value in {s:?}")),
                Some((i, '"')) => break eq + 2 + i + 1,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {s:?}")),
                },
                Some((_, '\n')) => return Err("raw newline in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &rest[end..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses and checks an exposition.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let body = text.strip_suffix("# EOF\n").ok_or("the exposition does not end with # EOF")?;
    let mut e = Exposition::default();
    let mut helped = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if !helped.insert(name.to_string()) {
                return Err(format!("HELP of {name} twice"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').ok_or("TYPE without a type")?;
            if !helped.contains(name) {
                return Err(format!("TYPE of {name} before its HELP"));
            }
            if !["counter", "gauge", "histogram"].contains(&ty) {
                return Err(format!("unexpected type {ty}"));
            }
            if e.types.insert(name.to_string(), ty.to_string()).is_some() {
                return Err(format!("TYPE of {name} twice"));
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(format!("unexpected comment {line:?}"));
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| format!("bad sample {line:?}"))?;
        let name = &line[..name_end];
        family_of(name, &e.types)?;
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(r) => parse_labels(r)?,
            None => (Labels::new(), &line[name_end..]),
        };
        let value = rest.strip_prefix(' ').ok_or_else(|| format!("no value in {line:?}"))?;
        let value: f64 = value.parse().map_err(|_| format!("bad value in {line:?}"))?;
        if e.samples.insert((name.to_string(), labels), value).is_some() {
            return Err(format!("duplicate series {line:?}"));
        }
    }
    check_histograms(&e)?;
    Ok(e)
}

fn check_histograms(e: &Exposition) -> Result<(), String> {
    for (family, _) in e.types.iter().filter(|(_, t)| *t == "histogram") {
        let mut by_series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for (labels, v) in e.series(&format!("{family}_bucket")) {
            let mut rest = labels.clone();
            let le = rest.remove("le").ok_or("bucket without le")?;
            let le: f64 = if le == "+Inf" { f64::INFINITY } else { le.parse().map_err(|_| "bad le")? };
            by_series.entry(rest).or_default().push((le, v));
        }
        for (labels, mut buckets) in by_series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!("{family} {labels:?}: buckets not cumulative"));
            }
            let (last_le, last) = *buckets.last().ok_or("no buckets")?;
            let key = |suffix: &str| (format!("{family}{suffix}"), labels.clone());
            let count = e.samples.get(&key("_count")).ok_or("histogram without _count")?;
            e.samples.get(&key("_sum")).ok_or("histogram without _sum")?;
            if last_le != f64::INFINITY || last != *count {
                return Err(format!("{family} {labels:?}: +Inf bucket {last} != count {count}"));
            }
        }
    }
    Ok(())
}

#[test]
fn the_reader_refuses_what_is_malformed() {
    let ok = "# HELP a x\n# TYPE a gauge\na{k=\"q\\\"\\n\"} 1\n# EOF\n";
    assert_eq!(parse(ok).unwrap().get("a", &[("k", "q\"\n")]), Some(1.0));
    for bad in [
        "# HELP a x\n# TYPE a gauge\na 1\n",
        "# HELP a x\n# TYPE a gauge\nb 1\n# EOF\n",
        "# HELP a x\n# TYPE a counter\na 1\n# EOF\n",
        "# HELP a x\n# TYPE a gauge\na 1\na 2\n# EOF\n",
        "# HELP a x\n# TYPE a gauge\na{k=\"v} 1\n# EOF\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n# EOF\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 2\n# EOF\n",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}
