//! Schemas for text sources: declared in the config, or inferred from the first records.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::{Field, Schema, SchemaRef};

use super::line_buffer::LineBuffer;
use super::ndjson_decoder::BOM;
use super::{SchemaOrigin, SourceError};
use crate::config::{CsvOptions, SchemaConfig};

/// The declared schema, if `columns` is set.
///
/// # Errors
/// A column declaration does not parse (validation normally caught it).
pub(crate) fn declared(
    source_name: &str,
    schema: &SchemaConfig,
) -> Result<Option<SchemaRef>, SourceError> {
    let Some(columns) = &schema.columns else {
        return Ok(None);
    };
    crate::config::parse_columns(columns)
        .map(Some)
        .map_err(|(i, e)| SourceError::schema(source_name, format!("columns[{i}]: {e}")))
}

/// How many records inference reads: `infer_rows`, or its documented default (1000) when
/// it is 0 (what `SchemaConfig::default()` holds).
pub(crate) fn infer_rows(schema: &SchemaConfig) -> usize {
    match schema.infer_rows {
        0 => 1000,
        n => n,
    }
}

/// Infers an NDJSON schema from the first `rows` records of `files`, read in order. Lines
/// that are not JSON objects are skipped here (decoding rejects them later).
///
/// # Errors
/// A file cannot be read, there is no record to infer from, or the records disagree.
pub(crate) fn infer_ndjson_files(
    source_name: &str,
    files: &[PathBuf],
    rows: usize,
) -> Result<(SchemaRef, SchemaOrigin), SourceError> {
    let mut values = Vec::new();
    let mut lines_read = 0u64;
    let mut used = Vec::new();
    for path in files {
        if values.len() >= rows {
            break;
        }
        let mut file =
            File::open(path).map_err(|e| SourceError::io(source_name, path, "open", e))?;
        used.push(path.clone());
        let mut lines = LineBuffer::new(64 << 10, 1, 0);
        'file: loop {
            let n = lines
                .read_from(&mut file)
                .map_err(|e| SourceError::io(source_name, path, "read", e))?;
            loop {
                let next = if n == 0 {
                    lines.take_rest()
                } else {
                    lines.next_line()
                };
                let Some((line, _)) = next else { break };
                lines_read += 1;
                if let Some(value) = json_object(line) {
                    values.push(value);
                    if values.len() >= rows {
                        break 'file;
                    }
                }
            }
            if n == 0 {
                break;
            }
        }
    }
    let what = describe(lines_read, "lines", &used);
    let schema = infer_from_values(source_name, &values, &what)?;
    Ok((schema, SchemaOrigin::Inferred(what)))
}

/// Infers an NDJSON schema from the lines of `sample` (stdin's first lines); a last line
/// without `\n` counts only when the input `ended` there.
///
/// # Errors
/// There is no record to infer from, or the records disagree.
pub(crate) fn infer_ndjson_sample(
    source_name: &str,
    sample: &[u8],
    ended: bool,
    rows: usize,
    input: &str,
) -> Result<(SchemaRef, SchemaOrigin), SourceError> {
    let complete = match sample.iter().rposition(|b| *b == b'\n') {
        _ if ended => sample.strip_suffix(b"\n").unwrap_or(sample),
        Some(last) => &sample[..last],
        None => &[],
    };
    let mut values = Vec::new();
    let mut lines_read = 0u64;
    for line in complete.split(|b| *b == b'\n') {
        if values.len() >= rows {
            break;
        }
        lines_read += 1;
        if let Some(value) = json_object(line) {
            values.push(value);
        }
    }
    let what = format!("first {lines_read} lines of {input}");
    let schema = infer_from_values(source_name, &values, &what)?;
    Ok((schema, SchemaOrigin::Inferred(what)))
}

fn json_object(line: &[u8]) -> Option<serde_json::Value> {
    let line = line.strip_prefix(BOM).unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .filter(serde_json::Value::is_object)
}

fn infer_from_values(
    source_name: &str,
    values: &[serde_json::Value],
    what: &str,
) -> Result<SchemaRef, SourceError> {
    if values.is_empty() {
        return Err(SourceError::schema(
            source_name,
            format!(
                "cannot infer a schema: the {what} hold no JSON object; declare schema.columns"
            ),
        ));
    }
    let values = numbers_over_strings(values);
    let schema = arrow_json::reader::infer_json_schema_from_iterator(values.iter().map(Ok))
        .map_err(|e| SourceError::schema(source_name, format!("inferring from the {what}: {e}")))?;
    all_nullable(source_name, &schema, what)
}

/// A top-level field whose sampled values are mostly numbers, with a few strings (`"n/a"`,
/// `"ERR"`), is inferred as a number: its string values are left out of the inference, and
/// each record holding one is rejected at decoding with the column and the value, as with a
/// declared schema. (arrow-json alone would infer text, and then refuse every number.)
fn numbers_over_strings(values: &[serde_json::Value]) -> std::borrow::Cow<'_, [serde_json::Value]> {
    use serde_json::Value;
    let mut counts: std::collections::HashMap<&str, (usize, usize)> =
        std::collections::HashMap::new();
    for map in values.iter().filter_map(Value::as_object) {
        for (key, value) in map {
            let entry = counts.entry(key.as_str()).or_default();
            match value {
                Value::Number(_) => entry.0 += 1,
                Value::String(_) => entry.1 += 1,
                _ => {}
            }
        }
    }
    let numeric: Vec<String> = counts
        .into_iter()
        .filter(|(_, (numbers, strings))| *strings > 0 && numbers > strings)
        .map(|(key, _)| key.to_owned())
        .collect();
    if numeric.is_empty() {
        return std::borrow::Cow::Borrowed(values);
    }
    let mut values = values.to_vec();
    for map in values.iter_mut().filter_map(Value::as_object_mut) {
        for key in &numeric {
            if let Some(value) = map.get_mut(key)
                && value.is_string()
            {
                *value = Value::Null;
            }
        }
    }
    std::borrow::Cow::Owned(values)
}

/// Infers a CSV schema from the first `rows` records of `files` (column names from the
/// first file's header, or `column_1`... without one).
///
/// # Errors
/// A file cannot be read or parsed, or the files' columns disagree.
pub(crate) fn infer_csv_files(
    source_name: &str,
    files: &[PathBuf],
    rows: usize,
    options: &CsvOptions,
) -> Result<(SchemaRef, SchemaOrigin), SourceError> {
    let format = csv_format(options);
    let mut schemas: Vec<Schema> = Vec::new();
    let mut records = 0usize;
    let mut used = Vec::new();
    for path in files {
        if records >= rows && !schemas.is_empty() {
            break;
        }
        let file = File::open(path).map_err(|e| SourceError::io(source_name, path, "open", e))?;
        let (schema, read) = format
            .infer_schema(file, Some((rows - records.min(rows)).max(1)))
            .map_err(|e| {
                SourceError::format(source_name, path, format!("inferring the schema: {e}"))
            })?;
        records += read;
        used.push(path.clone());
        schemas.push(schema);
    }
    let what = describe(records as u64, "records", &used);
    let merged = Schema::try_merge(schemas)
        .map_err(|e| SourceError::schema(source_name, format!("the {what} disagree: {e}")))?;
    if merged.fields().is_empty() || records == 0 {
        return Err(SourceError::schema(
            source_name,
            format!("cannot infer a schema: the {what} hold no record; declare schema.columns"),
        ));
    }
    let schema = all_nullable(source_name, &merged, &what)?;
    Ok((schema, SchemaOrigin::Inferred(what)))
}

/// The `arrow_csv` format for `options`, lenient about short rows (decoding rejects them).
pub(crate) fn csv_format(options: &CsvOptions) -> arrow_csv::reader::Format {
    arrow_csv::reader::Format::default()
        .with_header(options.header)
        .with_delimiter(delimiter(options))
        .with_truncated_rows(true)
}

/// The delimiter byte (validation made sure it is ASCII).
pub(crate) fn delimiter(options: &CsvOptions) -> u8 {
    u8::try_from(options.delimiter).unwrap_or(b',')
}

pub(crate) fn all_nullable(
    source_name: &str,
    schema: &Schema,
    what: &str,
) -> Result<SchemaRef, SourceError> {
    if schema.fields().is_empty() {
        return Err(SourceError::schema(
            source_name,
            format!("cannot infer a schema: the {what} hold no column; declare schema.columns"),
        ));
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// `first 1000 lines of data/a.ndjson` (`... and 2 more files`).
fn describe(count: u64, unit: &str, files: &[PathBuf]) -> String {
    let first = files.first().map_or_else(String::new, |p| display(p));
    match files.len() {
        0 | 1 => format!("first {count} {unit} of {first}"),
        2 => format!("first {count} {unit} of {first} and 1 more file"),
        n => format!("first {count} {unit} of {first} and {} more files", n - 1),
    }
}

/// A path for messages and locations.
pub(crate) fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Reads up to `rows` complete lines from `reader` (and whatever else the last read
/// returned): the sample stdin's schema is inferred from. Returns the bytes and whether the
/// input ended.
///
/// # Errors
/// Reading failed.
pub(crate) fn read_sample(reader: &mut impl Read, rows: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let mut sample = Vec::new();
    let mut block = vec![0u8; 64 << 10];
    let mut lines = 0usize;
    loop {
        let n = match reader.read(&mut block) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok((sample, true));
        }
        lines += block[..n].iter().filter(|b| **b == b'\n').count();
        sample.extend_from_slice(&block[..n]);
        if lines >= rows {
            return Ok((sample, false));
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use super::*;

    fn infer(lines: &[&str]) -> SchemaRef {
        let values: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        infer_from_values("s", &values, "test lines").unwrap()
    }

    #[test]
    fn mostly_numbers_with_a_few_strings_is_a_number() {
        let schema = infer(&[
            r#"{"t": 21.5, "id": "a"}"#,
            r#"{"t": "n/a", "id": "b"}"#,
            r#"{"t": 22.0, "id": "c"}"#,
        ]);
        assert_eq!(
            schema.field_with_name("t").unwrap().data_type(),
            &DataType::Float64
        );
        assert_eq!(
            schema.field_with_name("id").unwrap().data_type(),
            &DataType::Utf8
        );
    }

    #[test]
    fn mostly_strings_stays_text() {
        let schema = infer(&[r#"{"v": "x"}"#, r#"{"v": "y"}"#, r#"{"v": 3}"#]);
        assert_eq!(
            schema.field_with_name("v").unwrap().data_type(),
            &DataType::Utf8
        );
    }
}
