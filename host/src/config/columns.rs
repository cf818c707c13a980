//! Declared schemas: `"name: type"` strings (the policy-manifest type syntax; a trailing `?`
//! makes the column nullable).

use std::sync::Arc;

use arrow_schema::{Field, Schema};

use crate::policy::abi::arrow_type;

/// Parses one `"name: type[?]"` declaration into a field.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_column(text: &str) -> Result<Field, String> {
    let (name, ty) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not \"name: type\" (e.g. \"temp: float64?\")"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{text:?} has an empty column name"));
    }
    let ty = ty.trim();
    let (ty, nullable) = match ty.strip_suffix('?') {
        Some(t) => (t.trim_end(), true),
        None => (ty, false),
    };
    let parsed = weir_abi::parse_type(ty).map_err(|e| format!("{ty:?}: {e}"))?;
    Ok(Field::new(name, arrow_type(&parsed), nullable))
}

/// Parses a declared column list.
///
/// # Errors
/// The index of the bad declaration and what is wrong with it.
pub fn parse_columns(columns: &[String]) -> Result<Arc<Schema>, (usize, String)> {
    let mut fields: Vec<Field> = Vec::with_capacity(columns.len());
    for (i, text) in columns.iter().enumerate() {
        let field = parse_column(text).map_err(|e| (i, e))?;
        if fields.iter().any(|f| f.name() == field.name()) {
            return Err((i, format!("column {:?} is declared twice", field.name())));
        }
        fields.push(field);
    }
    Ok(Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, TimeUnit};

    use super::*;

    #[test]
    fn parses_declarations() {
        let s = parse_columns(&[
            "ts: timestamp(ms, UTC)".into(),
            "device_id: utf8".into(),
            "temp: float64?".into(),
        ])
        .unwrap();
        assert_eq!(
            s.field(0).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert!(!s.field(1).is_nullable());
        assert!(s.field(2).is_nullable());
    }

    #[test]
    fn names_the_problem() {
        assert!(
            parse_column("temp")
                .unwrap_err()
                .contains("not \"name: type\"")
        );
        assert!(
            parse_column("temp: float65")
                .unwrap_err()
                .contains("unknown type")
        );
        let (i, e) = parse_columns(&["a: utf8".into(), "a: int8".into()]).unwrap_err();
        assert_eq!(i, 1);
        assert!(e.contains("twice"));
    }
}
