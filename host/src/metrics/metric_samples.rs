//! [`MetricSamples`]: the Prometheus / OpenMetrics text format read back into samples (what
//! `weir status` shows).

use std::collections::BTreeMap;

/// A line of the text that is not a valid sample.
#[derive(Debug, thiserror::Error)]
#[error("metrics text, line {line}: {reason}: {text:?}")]
pub struct SamplesError {
    /// Line number (1-based).
    pub line: usize,
    /// The line.
    pub text: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// One sample: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (with `_total`, `_bucket`... as written).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// The value of `label`, or `""`.
    #[must_use]
    pub fn label(&self, label: &str) -> &str {
        self.labels.get(label).map_or("", String::as_str)
    }

    fn has(&self, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(k, v)| self.labels.get(*k).is_some_and(|x| x == v))
    }
}

/// Every sample of a scrape, in order, and the metric families its `# TYPE` lines declare.
#[derive(Debug, Clone, Default)]
pub struct MetricSamples {
    samples: Vec<Sample>,
    families: Vec<String>,
}

impl MetricSamples {
    /// Parses the text format (comments other than `# TYPE` are skipped; timestamps after the
    /// value are ignored).
    ///
    /// # Errors
    /// A [`SamplesError`] naming the first bad line.
    pub fn parse(text: &str) -> Result<Self, SamplesError> {
        let mut out = Self::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                if let Some(name) = rest.split_whitespace().next() {
                    out.families.push(name.to_owned());
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let sample = parse_sample(line).map_err(|reason| SamplesError {
                line: i + 1,
                text: line.to_owned(),
                reason,
            })?;
            out.samples.push(sample);
        }
        Ok(out)
    }

    /// The families declared by `# TYPE` lines.
    #[must_use]
    pub fn families(&self) -> &[String] {
        &self.families
    }

    /// Every sample named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the sample `name` whose labels are exactly `labels`.
    #[must_use]
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.named(name)
            .find(|s| s.labels.len() == labels.len() && s.has(labels))
            .map(|s| s.value)
    }

    /// The sum of the samples `name` that have (at least) `labels`.
    #[must_use]
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.named(name)
            .filter(|s| s.has(labels))
            // Not `sum()`: the empty sum of floats is -0.
            .fold(0.0, |total, s| total + s.value)
    }
}

fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("no metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let value = rest.split_ascii_whitespace().next().ok_or("no value")?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| "the value is not a number")?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `k="v",k2="v2"}` into `labels`; returns what follows the `}`.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, &'static str> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or("a label without '='")?;
        let key = s[..eq].trim().to_owned();
        let body = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("a label value without quotes")?;
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            if escaped {
                value.push(if c == 'n' { '\n' } else { c });
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(i);
                break;
            } else {
                value.push(c);
            }
        }
        let end = end.ok_or("an unterminated label value")?;
        labels.insert(key, value);
        s = body[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_samples_parse_labels_escapes_and_special_values() {
        let text = "# HELP weir_x Help.\n# TYPE weir_x counter\n\
                    weir_x_total{source=\"a\",kind=\"say \\\"hi\\\"\\n\"} 12\n\
                    weir_x_total{source=\"b\"} 3 1700000000\n\
                    weir_h_bucket{le=\"+Inf\"} 4\n\
                    weir_g 2.5e-3\n\
                    weir_n NaN\n\
                    # EOF\n";
        let s = MetricSamples::parse(text).unwrap();
        assert_eq!(s.families(), ["weir_x"]);
        assert_eq!(
            s.value("weir_x_total", &[("source", "a"), ("kind", "say \"hi\"\n")]),
            Some(12.0)
        );
        assert_eq!(s.value("weir_x_total", &[("source", "b")]), Some(3.0));
        assert_eq!(s.value("weir_x_total", &[("source", "a")]), None, "exact");
        assert_eq!(s.sum("weir_x_total", &[]), 15.0);
        assert_eq!(s.sum("weir_x_total", &[("source", "a")]), 12.0);
        assert_eq!(s.value("weir_h_bucket", &[("le", "+Inf")]), Some(4.0));
        assert_eq!(s.value("weir_g", &[]), Some(0.0025));
        assert!(s.value("weir_n", &[]).unwrap().is_nan());
        assert_eq!(s.named("weir_x_total").count(), 2);
        assert_eq!(s.named("weir_x_total").next().unwrap().label("source"), "a");
    }

    #[test]
    fn metrics_samples_bad_lines_are_named() {
        for (text, reason) in [
            ("weir_x", "no value"),
            ("weir_x{a=\"1\"}", "no value"),
            ("weir_x abc", "the value is not a number"),
            ("weir_x{a=1} 2", "a label value without quotes"),
            ("weir_x{a=\"1} 2", "an unterminated label value"),
            ("weir_x{a} 2", "a label without '='"),
        ] {
            let e = MetricSamples::parse(&format!("# TYPE weir_y gauge\n{text}\n")).unwrap_err();
            assert_eq!((e.line, e.reason), (2, reason), "{text}");
            assert_eq!(e.text, text);
            assert!(e.to_string().starts_with("metrics text, line 2: "), "{e}");
        }
    }
}
