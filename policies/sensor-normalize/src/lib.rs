//! `sensor-normalize`: sensors send the same reading under different names and units; this
//! transform maps them onto one column each.
//!
//! | output (float64, nullable) | inputs, in order of precedence |
//! |---|---|
//! | `sensor.temperature.celsius` | `temperature_celsius` (°C), `temp_value` (°C), `temp_f` (°F), `t℃` (°C) |
//! | `sensor.humidity.percent` | `humidity_percent` (%), `hum` (%), `rh` (fraction 0..1, × 100) |
//!
//! Every input is an optional `float64`. In each row the first input (in the order above) that
//! is present and non-null wins, even if its value then turns out impossible. Impossible values
//! become null: NaN, ±infinity, temperatures below −273.15 °C or above 1000 °C, humidity below 0
//! or above 100 %. The inputs are consumed; every other column passes through untouched
//! (`passthrough = "unread"`).

use weir_sdk::prelude::*;

/// An input column name and its conversion to the output unit.
type Input = (&'static str, fn(f64) -> f64);

/// Temperature inputs, in precedence order, with their conversion to °C.
const TEMPERATURE: [Input; 4] = [
    ("temperature_celsius", |c| c),
    ("temp_value", |c| c),
    ("temp_f", |f| (f - 32.0) * 5.0 / 9.0),
    ("t℃", |c| c),
];

/// Humidity inputs, in precedence order, with their conversion to %.
const HUMIDITY: [Input; 3] = [
    ("humidity_percent", |p| p),
    ("hum", |p| p),
    ("rh", |f| f * 100.0),
];

/// A plausible temperature in °C.
#[must_use]
pub fn valid_celsius(c: f64) -> bool {
    c.is_finite() && (-273.15..=1000.0).contains(&c)
}

/// A plausible relative humidity in %.
#[must_use]
pub fn valid_percent(p: f64) -> bool {
    p.is_finite() && (0.0..=100.0).contains(&p)
}

/// Coalesces the first present, non-null input per row, converted, then nulls impossible
/// values.
fn coalesce(batch: &Batch, inputs: &[Input], valid: fn(f64) -> bool) -> Result<Float64Builder> {
    let n = batch.num_rows();
    let mut views = Vec::with_capacity(inputs.len());
    for (name, convert) in inputs {
        if let Some(v) = batch.opt_f64(name)? {
            views.push((v, *convert));
        }
    }
    let mut out = Float64Builder::with_capacity(n);
    for i in 0..n {
        let value = views
            .iter()
            .find_map(|(v, convert)| v.get(i).map(convert))
            .filter(|&x| valid(x));
        out.append_option(value);
    }
    Ok(out)
}

/// The transform.
///
/// # Errors
/// Never for a well-formed batch.
#[weir_sdk::transform(
    reads = [
        "temperature_celsius: float64?",
        "temp_value: float64?",
        "temp_f: float64?",
        "t℃: float64?",
        "humidity_percent: float64?",
        "hum: float64?",
        "rh: float64?",
    ],
    writes = ["sensor.temperature.celsius: float64?", "sensor.humidity.percent: float64?"],
    passthrough = "unread",
)]
pub fn normalize(batch: &Batch) -> Result<Output> {
    Ok(Output::new()
        .with(
            "sensor.temperature.celsius",
            coalesce(batch, &TEMPERATURE, valid_celsius)?,
        )
        .with(
            "sensor.humidity.percent",
            coalesce(batch, &HUMIDITY, valid_percent)?,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(v: &[Option<f64>]) -> Column {
        v.iter().copied().collect::<Float64Builder>().into()
    }

    fn values(out: Output, name: &str) -> Vec<Option<f64>> {
        out.into_batch().f64(name).unwrap().iter().collect()
    }

    #[test]
    fn precedence_units_and_validity() {
        let batch = Batch::from_columns(vec![
            (
                "temperature_celsius",
                col(&[Some(20.0), None, None, None, Some(f64::NAN)]),
            ),
            (
                "temp_f",
                col(&[Some(212.0), Some(212.0), None, None, Some(50.0)]),
            ),
            ("t℃", col(&[None, Some(1.0), Some(-300.0), None, None])),
            ("rh", col(&[Some(0.5), None, Some(1.5), None, Some(0.25)])),
            ("hum", col(&[Some(40.0), None, None, Some(-1.0), None])),
        ]);
        let out = || normalize(&batch).unwrap();
        assert_eq!(
            values(out(), "sensor.temperature.celsius"),
            [Some(20.0), Some(100.0), None, None, None]
        );
        assert_eq!(
            values(out(), "sensor.humidity.percent"),
            [Some(40.0), None, None, None, Some(25.0)]
        );
    }

    #[test]
    fn no_inputs_gives_all_null() {
        let batch = Batch::from_columns(vec![("other", col(&[Some(1.0), Some(2.0)]))]);
        // A test batch's row count comes from its columns; the normalizer ignores `other`.
        let out = normalize(&batch).unwrap();
        assert_eq!(
            out.column("sensor.humidity.percent").unwrap().null_count(),
            2
        );
    }
}
