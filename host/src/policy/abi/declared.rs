//! Declared columns: the manifest's type text turned into Arrow types, once per module.

use std::sync::Arc;

use arrow_schema::{DataType, Field, TimeUnit as ArrowTimeUnit};
use weir_abi::{ColumnDecl, ColumnDesc, Manifest, ManifestError, ParsedType, TimeUnit, TypeId};

/// One declared input or output column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredColumn {
    /// Column name.
    pub name: String,
    /// The Arrow type.
    pub data_type: DataType,
    /// Input: may be absent. Output: may hold nulls.
    pub optional: bool,
    /// Wire type id.
    pub type_id: TypeId,
    /// Wire time unit (0 unless Timestamp).
    pub time_unit: u8,
    /// Wire byte width (0 unless FixedSizeBinary).
    pub byte_width: u32,
}

impl DeclaredColumn {
    fn from_decl(decl: &ColumnDecl) -> Result<Self, ManifestError> {
        let parsed = decl.parsed_type().map_err(|e| ManifestError::Invalid {
            reason: format!("column `{}` has type `{}`: {e}", decl.name, decl.ty),
        })?;
        Ok(Self {
            name: decl.name.clone(),
            data_type: arrow_type(&parsed),
            optional: decl.optional,
            type_id: parsed.id,
            time_unit: parsed.unit.map_or(0, |u| u as u8),
            byte_width: parsed.byte_width,
        })
    }

    /// A descriptor with this column's type fields filled in and everything else zero.
    #[must_use]
    pub fn desc_template(&self) -> ColumnDesc {
        ColumnDesc {
            type_id: self.type_id as u8,
            time_unit: self.time_unit,
            byte_width: self.byte_width,
            ..ColumnDesc::default()
        }
    }

    /// The Arrow field for an output column.
    #[must_use]
    pub fn field(&self) -> Field {
        Field::new(&self.name, self.data_type.clone(), self.optional)
    }
}

/// Every declared column of a module, as Arrow types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredSchema {
    /// Inputs, in `reads` order.
    pub inputs: Vec<DeclaredColumn>,
    /// Outputs, in `writes` order.
    pub outputs: Vec<DeclaredColumn>,
}

impl DeclaredSchema {
    /// Converts a manifest's declarations.
    ///
    /// # Errors
    /// When a type does not parse (a validated manifest never fails here).
    pub fn from_manifest(manifest: &Manifest) -> Result<Self, ManifestError> {
        let convert = |cols: &[ColumnDecl]| -> Result<Vec<_>, ManifestError> {
            cols.iter().map(DeclaredColumn::from_decl).collect()
        };
        Ok(Self {
            inputs: convert(&manifest.reads)?,
            outputs: convert(&manifest.writes)?,
        })
    }
}

/// The Arrow type of a parsed ABI type.
#[must_use]
pub fn arrow_type(parsed: &ParsedType<'_>) -> DataType {
    match parsed.id {
        TypeId::Boolean => DataType::Boolean,
        TypeId::Int8 => DataType::Int8,
        TypeId::Int16 => DataType::Int16,
        TypeId::Int32 => DataType::Int32,
        TypeId::Int64 => DataType::Int64,
        TypeId::UInt8 => DataType::UInt8,
        TypeId::UInt16 => DataType::UInt16,
        TypeId::UInt32 => DataType::UInt32,
        TypeId::UInt64 => DataType::UInt64,
        TypeId::Float32 => DataType::Float32,
        TypeId::Float64 => DataType::Float64,
        TypeId::Utf8 => DataType::Utf8,
        TypeId::Binary => DataType::Binary,
        TypeId::Date32 => DataType::Date32,
        TypeId::FixedSizeBinary => {
            DataType::FixedSizeBinary(i32::try_from(parsed.byte_width).unwrap_or(i32::MAX))
        }
        TypeId::Timestamp => {
            let unit = match parsed.unit.unwrap_or(TimeUnit::Microsecond) {
                TimeUnit::Second => ArrowTimeUnit::Second,
                TimeUnit::Millisecond => ArrowTimeUnit::Millisecond,
                TimeUnit::Microsecond => ArrowTimeUnit::Microsecond,
                TimeUnit::Nanosecond => ArrowTimeUnit::Nanosecond,
            };
            DataType::Timestamp(unit, parsed.tz.map(Arc::from))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_abi_type_maps_to_the_arrow_type() {
        let cases = [
            ("boolean", DataType::Boolean),
            ("uint16", DataType::UInt16),
            ("float32", DataType::Float32),
            ("utf8", DataType::Utf8),
            ("fixed_size_binary(16)", DataType::FixedSizeBinary(16)),
            (
                "timestamp(ns)",
                DataType::Timestamp(ArrowTimeUnit::Nanosecond, None),
            ),
            (
                "timestamp(ms, UTC)",
                DataType::Timestamp(ArrowTimeUnit::Millisecond, Some("UTC".into())),
            ),
            ("date32", DataType::Date32),
        ];
        for (text, expected) in cases {
            assert_eq!(
                arrow_type(&weir_abi::parse_type(text).unwrap()),
                expected,
                "{text}"
            );
        }
    }
}
