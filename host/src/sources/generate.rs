//! Generated, realistic record batches for demos, tests and benchmarks. Deterministic for a seed.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder};
use arrow_array::{
    ArrayRef, FixedSizeBinaryArray, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt8Array, UInt16Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How [`flow_batch_with`] writes addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressFormat {
    /// Text (`Utf8`), e.g. `10.1.2.3`: what analysts read.
    Text,
    /// 16 bytes (`FixedSizeBinary(16)`), IPv4 mapped into IPv6 (`::ffff:a.b.c.d`).
    Binary16,
}

/// The schema of [`flow_batch`]: one network flow per row.
#[must_use]
pub fn flow_schema() -> Arc<Schema> {
    flow_schema_with(AddressFormat::Text)
}

/// The schema of [`flow_batch_with`].
#[must_use]
pub fn flow_schema_with(format: AddressFormat) -> Arc<Schema> {
    let addr = match format {
        AddressFormat::Text => DataType::Utf8,
        AddressFormat::Binary16 => DataType::FixedSizeBinary(16),
    };
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("src_addr", addr.clone(), false),
        Field::new("dst_addr", addr, false),
        Field::new("src_port", DataType::UInt16, false),
        Field::new("dst_port", DataType::UInt16, false),
        Field::new("proto", DataType::UInt8, false),
        Field::new("packets", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
    ]))
}

/// `rows` network-flow records: IPv4 addresses as text, a realistic mix of protocols (TCP 70%,
/// UDP 25%, ICMP 5%) and destination ports (443 for 35% of flows), heavy-tailed byte counts.
#[must_use]
pub fn flow_batch(rows: usize, seed: u64) -> RecordBatch {
    flow_batch_with(rows, seed, AddressFormat::Text)
}

/// [`flow_batch`] with addresses in the given format.
#[must_use]
pub fn flow_batch_with(rows: usize, seed: u64, format: AddressFormat) -> RecordBatch {
    flow_batch_at(rows, seed, 0, format)
}

/// [`flow_batch_with`] for rows `first_row..first_row + rows` of a longer stream: timestamps
/// go on from where the previous batch stopped (one flow per millisecond from
/// 2026-01-01T00:00:00Z), so time-windowed policies see a stream that moves forward.
#[must_use]
pub fn flow_batch_at(rows: usize, seed: u64, first_row: u64, format: AddressFormat) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = 1_767_225_600_000_000i64 + i64::try_from(first_row).unwrap_or(0) * 1_000;
    let ts: TimestampMicrosecondArray =
        TimestampMicrosecondArray::from_iter_values((0..rows).map(|i| start + i as i64 * 1_000));
    let ts = ts.with_timezone("UTC");
    let addr = |rng: &mut StdRng| {
        std::net::Ipv4Addr::new(
            10,
            rng.random_range(0..4u8),
            rng.random::<u8>(),
            rng.random::<u8>(),
        )
    };
    let src: Vec<_> = (0..rows).map(|_| addr(&mut rng)).collect();
    let dst: Vec<_> = (0..rows).map(|_| addr(&mut rng)).collect();
    let column = |addrs: Vec<std::net::Ipv4Addr>| -> ArrayRef {
        match format {
            AddressFormat::Text => Arc::new(
                addrs
                    .iter()
                    .map(|a| Some(a.to_string()))
                    .collect::<StringArray>(),
            ),
            AddressFormat::Binary16 => Arc::new(
                FixedSizeBinaryArray::try_from_iter(
                    addrs.iter().map(|a| a.to_ipv6_mapped().octets()),
                )
                .expect("16-byte addresses"),
            ),
        }
    };
    let (src, dst) = (column(src), column(dst));
    let src_port: UInt16Array = (0..rows)
        .map(|_| rng.random_range(1024..65535u16))
        .collect();
    let dst_port: UInt16Array = (0..rows)
        .map(|_| match rng.random_range(0..100u8) {
            0..35 => 443,
            35..50 => 80,
            50..60 => 53,
            60..65 => 22,
            _ => rng.random_range(1..65535u16),
        })
        .collect();
    let proto: UInt8Array = (0..rows)
        .map(|_| match rng.random_range(0..100u8) {
            0..70 => 6,
            70..95 => 17,
            _ => 1,
        })
        .collect();
    let packets: UInt64Array = (0..rows).map(|_| rng.random_range(1..2000u64)).collect();
    let bytes: UInt64Array = packets
        .values()
        .iter()
        .map(|p| p * rng.random_range(40..1500u64))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ts),
        src,
        dst,
        Arc::new(src_port),
        Arc::new(dst_port),
        Arc::new(proto),
        Arc::new(packets),
        Arc::new(bytes),
    ];
    RecordBatch::try_new(flow_schema_with(format), columns).expect("columns match the flow schema")
}

/// The sensor models of [`sensor_batch`]: each reports the same readings under different names.
pub const SENSOR_MODELS: [&str; 4] = ["acme-t1", "boreal-f", "cirrus-x", "delta-h"];

/// `rows` sensor readings from several models that name and scale the same quantities
/// differently: `temperature_celsius` / `temp_value` (°C), `temp_f` (°F) and `t℃` (°C) for
/// temperature; `humidity_percent` / `hum` (%) and `rh` (0..1) for humidity. About 1% of rows
/// carry an impossible value (NaN, below absolute zero, humidity over 100%) and about 1% a
/// possible but implausible one (90–130 °C). Every row also has
/// `device_id`, `ts` and a `battery_v` field that no policy knows.
#[must_use]
pub fn sensor_batch(rows: usize, seed: u64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut device = StringBuilder::with_capacity(rows, rows * 12);
    let mut model = StringBuilder::with_capacity(rows, rows * 8);
    let mut cols: [Float64Builder; 7] =
        std::array::from_fn(|_| Float64Builder::with_capacity(rows));
    let (t_c, t_v, t_f, t_sym, h_pct, h_hum, h_rh) = (0, 1, 2, 3, 4, 5, 6);
    let mut battery = Float64Builder::with_capacity(rows);
    let start = 1_767_225_600_000_000i64;
    let ts: TimestampMicrosecondArray =
        TimestampMicrosecondArray::from_iter_values((0..rows).map(|i| start + i as i64 * 250_000));
    for _ in 0..rows {
        let m = rng.random_range(0..SENSOR_MODELS.len());
        device.append_value(format!("dev-{:05}", rng.random_range(0..5000u32)));
        model.append_value(SENSOR_MODELS[m]);
        let mut celsius = rng.random_range(-10.0..40.0f64);
        let mut humidity = rng.random_range(5.0..95.0f64);
        match rng.random_range(0..100u8) {
            0 => celsius = f64::NAN,
            1 => celsius = -300.0,
            2 => humidity = 140.0,
            // Possible, but outliers for a gateway in a building.
            3 => celsius = rng.random_range(90.0..130.0),
            _ => {}
        }
        let (t_col, t_val) = match m {
            0 => (t_c, celsius),
            1 => (t_f, celsius * 9.0 / 5.0 + 32.0),
            2 => (t_sym, celsius),
            _ => (t_v, celsius),
        };
        let (h_col, h_val) = match m {
            0 => (h_pct, humidity),
            1 => (h_rh, humidity / 100.0),
            _ => (h_hum, humidity),
        };
        for (i, col) in cols.iter_mut().enumerate() {
            if i == t_col {
                col.append_value(t_val);
            } else if i == h_col {
                col.append_value(h_val);
            } else {
                col.append_null();
            }
        }
        battery.append_value(rng.random_range(2.8..3.3f64));
    }
    let names = [
        "temperature_celsius",
        "temp_value",
        "temp_f",
        "t℃",
        "humidity_percent",
        "hum",
        "rh",
    ];
    let mut fields = vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("device_id", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(ts.with_timezone("UTC")),
        Arc::new(device.finish()),
        Arc::new(model.finish()),
    ];
    for (name, mut col) in names.iter().zip(cols) {
        fields.push(Field::new(*name, DataType::Float64, true));
        columns.push(Arc::new(col.finish()));
    }
    fields.push(Field::new("battery_v", DataType::Float64, false));
    columns.push(Arc::new(battery.finish()));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("columns match the schema")
}

/// The declared schema of [`write_sensor_ndjson`]'s lines, in the config's column syntax.
pub const SENSOR_NDJSON_COLUMNS: [&str; 11] = [
    "ts: timestamp(ms, UTC)",
    "device_id: utf8",
    "model: utf8",
    "temperature_celsius: float64?",
    "temp_value: float64?",
    "temp_f: float64?",
    "t℃: float64?",
    "humidity_percent: float64?",
    "hum: float64?",
    "rh: float64?",
    "battery_v: float64?",
];

/// What [`write_sensor_ndjson`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NdjsonStats {
    /// Lines written.
    pub lines: u64,
    /// Lines that do not fit [`SENSOR_NDJSON_COLUMNS`] (garbage on purpose).
    pub garbage: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes `rows` lines of sensor readings as a gateway receives them: four models that name
/// and scale temperature and humidity differently (see [`sensor_batch`]), epoch-millisecond
/// timestamps, about 1% impossible and 1% implausible values, and `garbage_per_mille` lines in
/// 1000 that do not fit the schema (cut-off JSON, a text log line, `"n/a"` for a number, no
/// `device_id`).
///
/// # Errors
/// When writing fails.
pub fn write_sensor_ndjson(
    out: &mut impl std::io::Write,
    rows: u64,
    seed: u64,
    garbage_per_mille: u32,
) -> std::io::Result<NdjsonStats> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stats = NdjsonStats::default();
    let mut line = String::with_capacity(256);
    let start_ms = 1_767_225_600_000i64;
    for i in 0..rows {
        use std::fmt::Write as _;
        line.clear();
        let ts = start_ms + i as i64 * 25;
        let device = rng.random_range(0..5000u32);
        let m = rng.random_range(0..SENSOR_MODELS.len());
        let mut celsius = rng.random_range(-10.0..40.0f64);
        let mut humidity = rng.random_range(5.0..95.0f64);
        match rng.random_range(0..100u8) {
            0 => celsius = -300.0,
            1 => humidity = 140.0,
            2 => celsius = rng.random_range(90.0..130.0),
            _ => {}
        }
        let (t_name, t_val, h_name, h_val) = match m {
            0 => ("temperature_celsius", celsius, "humidity_percent", humidity),
            1 => ("temp_f", celsius * 9.0 / 5.0 + 32.0, "rh", humidity / 100.0),
            2 => ("t℃", celsius, "hum", humidity),
            _ => ("temp_value", celsius, "hum", humidity),
        };
        let battery = rng.random_range(2.8..3.3f64);
        let garbage = rng.random_range(0..1000u32) < garbage_per_mille;
        let _ = if garbage {
            stats.garbage += 1;
            match rng.random_range(0..4u8) {
                0 => write!(
                    line,
                    r#"{{"ts":{ts},"device_id":"dev-{device:05}","model":"{}","#,
                    SENSOR_MODELS[m]
                ),
                1 => write!(line, "{ts} WARN sensor dev-{device:05} rebooted (watchdog)"),
                2 => write!(
                    line,
                    r#"{{"ts":{ts},"device_id":"dev-{device:05}","model":"{}","{t_name}":"n/a","{h_name}":{h_val:.2}}}"#,
                    SENSOR_MODELS[m]
                ),
                _ => write!(
                    line,
                    r#"{{"ts":{ts},"model":"{}","{t_name}":{t_val:.2},"{h_name}":{h_val:.2}}}"#,
                    SENSOR_MODELS[m]
                ),
            }
        } else {
            write!(
                line,
                r#"{{"ts":{ts},"device_id":"dev-{device:05}","model":"{}","{t_name}":{t_val:.2},"{h_name}":{h_val:.3},"battery_v":{battery:.3}}}"#,
                SENSOR_MODELS[m]
            )
        };
        line.push('\n');
        out.write_all(line.as_bytes())?;
        stats.lines += 1;
        stats.bytes += line.len() as u64;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_batches_are_deterministic_and_shaped_as_documented() {
        let a = flow_batch(1000, 7);
        assert_eq!(a, flow_batch(1000, 7));
        assert_eq!(a.schema(), flow_schema());
        let s = sensor_batch(1000, 7);
        assert_eq!(s.num_rows(), 1000);
        let mut text = Vec::new();
        let stats = write_sensor_ndjson(&mut text, 2000, 3, 10).unwrap();
        assert_eq!(stats.bytes as usize, text.len());
        let lines: Vec<&str> = std::str::from_utf8(&text).unwrap().lines().collect();
        assert_eq!(lines.len(), 2000);
        let parsed = lines
            .iter()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok());
        let fitting = parsed
            .filter(|l| l.contains("device_id") && !l.contains("n/a"))
            .count() as u64;
        assert_eq!(fitting, 2000 - stats.garbage);
        assert!(
            (5..=40).contains(&stats.garbage),
            "about 1% garbage: {}",
            stats.garbage
        );
        // Every row has exactly one temperature and one humidity field.
        let present = |names: &[&str], row: usize| {
            names
                .iter()
                .filter(|n| s.column_by_name(n).unwrap().is_valid(row))
                .count()
        };
        for row in 0..1000 {
            assert_eq!(
                present(&["temperature_celsius", "temp_value", "temp_f", "t℃"], row),
                1
            );
            assert_eq!(present(&["humidity_percent", "hum", "rh"], row), 1);
        }
    }
}
