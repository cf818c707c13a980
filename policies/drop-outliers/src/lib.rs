//! `drop-outliers`: a filter that drops rows whose sensor readings fall outside configured
//! bounds.
//!
//! Reads `sensor.temperature.celsius` and `sensor.humidity.percent` (both optional `float64`,
//! as written by `sensor-normalize`). Parameters give optional bounds per column:
//!
//! ```json
//! {"temperature": {"min": -40, "max": 85}, "humidity": {"min": 0, "max": 100}}
//! ```
//!
//! A row is kept when every present, non-null value is within its column's bounds (inclusive).
//! A null value, or a column the batch lacks, is **kept**: a missing reading is not an outlier.
//! NaN is never within bounds, so a NaN reading is dropped when its column has bounds. A column
//! without bounds (or a bound left out) does not constrain. `min > max` is refused at init
//! (`BAD_CONFIG`), as are unknown keys.

use serde::Deserialize;
use weir_sdk::prelude::*;

/// Inclusive bounds; a missing side is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Smallest value kept.
    pub min: Option<f64>,
    /// Largest value kept.
    pub max: Option<f64>,
}

/// The policy's parameters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Bounds for `sensor.temperature.celsius`.
    pub temperature: Option<Bounds>,
    /// Bounds for `sensor.humidity.percent`.
    pub humidity: Option<Bounds>,
}

/// Checks the parameters at init.
///
/// # Errors
/// When a bound is NaN or `min > max`.
pub fn check(p: Params) -> Result<Params> {
    for (name, b) in [("temperature", p.temperature), ("humidity", p.humidity)] {
        let Some(b) = b else { continue };
        if b.min.is_some_and(f64::is_nan) || b.max.is_some_and(f64::is_nan) {
            return Err(format!("{name}: bounds must be numbers").into());
        }
        if let (Some(min), Some(max)) = (b.min, b.max)
            && min > max
        {
            // The values are not printed: formatting an `f64` links core's float formatting
            // (~25 KB of wasm) into the module; the author has them in the config anyway.
            return Err(format!("{name}: min is greater than max").into());
        }
    }
    Ok(p)
}

/// Rows of `col` within `b`, keeping nulls.
fn within(n: usize, col: Option<PrimitiveView<'_, f64>>, b: Option<Bounds>) -> Option<Selection> {
    let (col, b) = (col?, b?);
    let (min, max) = (
        b.min.unwrap_or(f64::NEG_INFINITY),
        b.max.unwrap_or(f64::INFINITY),
    );
    let v = col.values();
    let mut keep = Selection::from_fn(n, |i| v[i] >= min && v[i] <= max);
    keep.or_nulls(col.validity());
    Some(keep)
}

/// The filter.
///
/// # Errors
/// Never for a well-formed batch.
#[weir_sdk::filter(
    reads = ["sensor.temperature.celsius: float64?", "sensor.humidity.percent: float64?"],
    init = check,
)]
pub fn drop_outliers(batch: &Batch, p: &Params) -> Result<Selection> {
    let n = batch.num_rows();
    let mut keep = Selection::all(n);
    let temp = batch.opt_f64("sensor.temperature.celsius")?;
    let hum = batch.opt_f64("sensor.humidity.percent")?;
    for s in [within(n, temp, p.temperature), within(n, hum, p.humidity)]
        .into_iter()
        .flatten()
    {
        keep.and(&s);
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(v: &[Option<f64>]) -> Column {
        v.iter().copied().collect::<Float64Builder>().into()
    }

    fn params(json: &str) -> Result<Params> {
        check(serde_json_parse(json)?)
    }

    fn serde_json_parse(json: &str) -> Result<Params> {
        weir_sdk::__rt::parse_json(json.as_bytes())
    }

    #[test]
    fn keeps_in_bounds_and_nulls() {
        let batch = Batch::from_columns(vec![
            (
                "sensor.temperature.celsius",
                col(&[Some(20.0), Some(-50.0), None, Some(85.0), Some(f64::NAN)]),
            ),
            (
                "sensor.humidity.percent",
                col(&[Some(50.0), Some(50.0), Some(101.0), None, Some(1.0)]),
            ),
        ]);
        let p = params(
            r#"{"temperature": {"min": -40, "max": 85}, "humidity": {"min": 0, "max": 100}}"#,
        )
        .unwrap();
        let sel = drop_outliers(&batch, &p).unwrap();
        let kept: Vec<usize> = sel.iter_selected().collect();
        assert_eq!(kept, [0, 3]);
    }

    #[test]
    fn absent_columns_and_missing_bounds_keep_everything() {
        let batch = Batch::from_columns(vec![("sensor.humidity.percent", col(&[Some(-5.0)]))]);
        let p = params(r#"{"temperature": {"max": 10}}"#).unwrap();
        assert_eq!(drop_outliers(&batch, &p).unwrap().count(), 1);
        let p = params("{}").unwrap();
        assert_eq!(drop_outliers(&batch, &p).unwrap().count(), 1);
        let p = params(r#"{"humidity": {"min": 0}}"#).unwrap();
        assert_eq!(drop_outliers(&batch, &p).unwrap().count(), 0);
    }

    #[test]
    fn bad_config_is_refused() {
        let e = params(r#"{"temperature": {"min": 5, "max": 1}}"#).unwrap_err();
        assert_eq!(e.message(), "temperature: min is greater than max");
        assert!(params(r#"{"temp": {}}"#).is_err());
    }
}
