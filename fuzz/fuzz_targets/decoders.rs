//! NDJSON and CSV decoding (`weir_host::sources::fuzzing`: the file source's read loops over
//! an in-memory input), with a declared schema or one inferred from the input; the first two
//! bytes pick the format and options (`weir_fuzz::text`). Asserts (docs/fuzzing.md):
//!
//! * nothing is lost: decoded rows plus rejected records equal the non-blank records fed;
//! * every batch has the schema, and its arrays pass Arrow's full validation;
//! * every rejection carries the record's own bytes, its location (`fuzz-input:<line>`, the
//!   line it started on) and a reason;
//! * NDJSON rows of the declared schema survive a round trip: written back as NDJSON with
//!   `arrow_json` and decoded again, they give the same rows and no rejection.
#![no_main]

use arrow_array::temporal_conversions::as_datetime;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::{Array, Float64Array, RecordBatch, TimestampMillisecondArray};
use arrow_json::LineDelimitedWriter;
use arrow_schema::SchemaRef;
use chrono::Datelike;
use libfuzzer_sys::fuzz_target;
use weir_fuzz::text::{Format, Mode, csv_schema, ndjson_schema};
use weir_host::sources::fuzzing::{self, Decoded};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The record as the decoder sees it: a trailing `\r` and, on line 1, a byte order mark
/// dropped.
fn stripped(raw: &[u8], line: u64) -> &[u8] {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if line == 1 {
        raw.strip_prefix(BOM).unwrap_or(raw)
    } else {
        raw
    }
}

/// Whether a fed record counts (the decoders skip blank ones).
fn counts(format: Format, record: &[u8]) -> bool {
    match format {
        Format::Ndjson => !record
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')),
        Format::Csv => !record.is_empty(),
    }
}

fn decode(mode: &Mode, schema: SchemaRef, text: &[u8]) -> Option<Decoded> {
    let decoded = match mode.format {
        Format::Ndjson => {
            // A schema arrow_json cannot decode (possible when inferred) is refused up front.
            if arrow_json::ReaderBuilder::new(schema.clone())
                .build_decoder()
                .is_err()
            {
                return None;
            }
            fuzzing::decode_ndjson(schema.clone(), text, mode.block, mode.batch_rows)
        }
        Format::Csv => fuzzing::decode_csv(
            schema.clone(),
            text,
            mode.delimiter,
            mode.header,
            mode.block,
            mode.batch_rows,
        ),
    };
    let decoded = decoded.unwrap_or_else(|e| panic!("a small input fails to decode: {e}"));
    check(mode, &schema, &decoded);
    Some(decoded)
}

fn check(mode: &Mode, schema: &SchemaRef, decoded: &Decoded) {
    let expected = decoded
        .fed
        .iter()
        .filter(|(raw, line)| counts(mode.format, stripped(raw, *line)))
        .count();
    let mut rows = 0;
    let mut rejected = 0;
    for chunk in &decoded.chunks {
        assert!(chunk.records() > 0, "an empty chunk");
        if let Some(batch) = &chunk.batch {
            assert_eq!(batch.schema(), *schema, "a batch with another schema");
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                if let Err(e) = column.to_data().validate_full() {
                    panic!("column {:?} is invalid: {e}", field.name());
                }
                if !field.is_nullable() {
                    assert_eq!(column.null_count(), 0, "nulls in {:?}", field.name());
                }
            }
            rows += batch.num_rows();
        }
        for r in &chunk.rejected {
            assert!(!r.reason.trim().is_empty(), "a rejection without a reason");
            let line: u64 = r
                .location
                .strip_prefix("fuzz-input:")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("location {:?}", r.location));
            let fed = decoded
                .fed
                .iter()
                .find(|(_, l)| *l == line)
                .unwrap_or_else(|| panic!("rejected line {line} was never fed"));
            assert_eq!(r.raw, stripped(&fed.0, line), "the rejection's bytes");
            rejected += 1;
        }
    }
    assert_eq!(
        rows + rejected,
        expected,
        "{rows} rows and {rejected} rejections from {expected} records"
    );
}

/// NDJSON rows written back and decoded again are the same rows.
fn round_trip(mode: &Mode, schema: &SchemaRef, decoded: &Decoded) {
    let batches: Vec<&RecordBatch> = decoded
        .chunks
        .iter()
        .filter_map(|c| c.batch.as_ref())
        .collect();
    // JSON has no NaN or infinity; a string such as "NaN" decodes to one but cannot be
    // written back as the same value.
    let finite = batches.iter().all(|b| {
        b.columns().iter().all(|c| {
            c.as_any()
                .downcast_ref::<Float64Array>()
                .is_none_or(|f| f.iter().flatten().all(f64::is_finite))
        })
    });
    // arrow_json writes a timestamp outside chrono's range as an error text, and years past
    // 9999 as `+57971-...`, which its reader refuses: such rows cannot come back as they went
    // out. (A number beyond i64 no longer gets here: the host rejects the clamped value,
    // docs/fuzzing.md.)
    let writable = batches.iter().all(|b| {
        b.columns().iter().all(|c| {
            c.as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .is_none_or(|t| {
                    t.iter().flatten().all(|v| {
                        as_datetime::<TimestampMillisecondType>(v)
                            .is_some_and(|t| (0..=9999).contains(&t.year()))
                    })
                })
        })
    });
    if batches.is_empty() || !finite || !writable {
        return;
    }
    let mut text = Vec::new();
    {
        let mut writer = LineDelimitedWriter::new(&mut text);
        for batch in &batches {
            if writer.write(batch).is_err() {
                return;
            }
        }
        writer.finish().expect("finishing the writer");
    }
    let again = fuzzing::decode_ndjson(schema.clone(), &text, mode.block, 1024)
        .expect("decoding written rows");
    let rejected: Vec<_> = again.chunks.iter().flat_map(|c| &c.rejected).collect();
    assert!(
        rejected.is_empty(),
        "written rows rejected: {rejected:?}\n{}",
        String::from_utf8_lossy(&text)
    );
    let before = arrow_select_concat(schema, &batches);
    let after_batches: Vec<&RecordBatch> = again
        .chunks
        .iter()
        .filter_map(|c| c.batch.as_ref())
        .collect();
    let after = arrow_select_concat(schema, &after_batches);
    assert_eq!(before, after, "rows changed in a round trip through NDJSON");
}

/// All rows of `batches`, as one batch.
fn arrow_select_concat(schema: &SchemaRef, batches: &[&RecordBatch]) -> RecordBatch {
    arrow_array::RecordBatch::try_new(
        schema.clone(),
        (0..schema.fields().len())
            .map(|i| {
                let columns: Vec<&dyn Array> =
                    batches.iter().map(|b| b.column(i).as_ref()).collect();
                arrow_select::concat::concat(&columns).expect("concatenating columns")
            })
            .collect(),
    )
    .expect("a batch of the schema")
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, text)) = Mode::parse(data) else {
        return;
    };
    if !mode.infer {
        let schema = match mode.format {
            Format::Ndjson => ndjson_schema(),
            Format::Csv => csv_schema(),
        };
        if let Some(decoded) = decode(&mode, schema.clone(), text)
            && mode.format == Format::Ndjson
        {
            round_trip(&mode, &schema, &decoded);
        }
        return;
    }
    let inferred = match mode.format {
        Format::Ndjson => fuzzing::infer_ndjson(text, 1000),
        Format::Csv => fuzzing::infer_csv(text, mode.header, mode.delimiter, 1000),
    };
    match inferred {
        Ok(schema) => {
            assert!(
                !schema.fields().is_empty(),
                "an inferred schema without columns"
            );
            decode(&mode, schema, text);
        }
        Err(e) => assert!(
            !e.to_string().trim().is_empty(),
            "an error without a message"
        ),
    }
});
