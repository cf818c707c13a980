//! Column types: the wire ids and the text form used in manifests and in `#[weir_sdk::filter]`.

use core::fmt;

/// The type of a column, as carried in [`ColumnDesc::type_id`](crate::ColumnDesc::type_id).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TypeId {
    /// Arrow `Boolean`: bit-packed values.
    Boolean = 1,
    /// Arrow `Int8`.
    Int8 = 2,
    /// Arrow `Int16`.
    Int16 = 3,
    /// Arrow `Int32`.
    Int32 = 4,
    /// Arrow `Int64`.
    Int64 = 5,
    /// Arrow `UInt8`.
    UInt8 = 6,
    /// Arrow `UInt16`.
    UInt16 = 7,
    /// Arrow `UInt32`.
    UInt32 = 8,
    /// Arrow `UInt64`.
    UInt64 = 9,
    /// Arrow `Float32`.
    Float32 = 10,
    /// Arrow `Float64`.
    Float64 = 11,
    /// Arrow `Utf8`: `i32` offsets and UTF-8 bytes.
    Utf8 = 12,
    /// Arrow `Binary`: `i32` offsets and bytes.
    Binary = 13,
    /// Arrow `FixedSizeBinary(width)`.
    FixedSizeBinary = 14,
    /// Arrow `Timestamp(unit, tz)`: `i64` since the Unix epoch.
    Timestamp = 15,
    /// Arrow `Date32`: `i32` days since the Unix epoch.
    Date32 = 16,
}

impl TypeId {
    /// Every type id, in wire order.
    pub const ALL: [TypeId; 16] = [
        Self::Boolean,
        Self::Int8,
        Self::Int16,
        Self::Int32,
        Self::Int64,
        Self::UInt8,
        Self::UInt16,
        Self::UInt32,
        Self::UInt64,
        Self::Float32,
        Self::Float64,
        Self::Utf8,
        Self::Binary,
        Self::FixedSizeBinary,
        Self::Timestamp,
        Self::Date32,
    ];

    /// Decodes a wire id.
    #[must_use]
    pub const fn from_u8(v: u8) -> Option<Self> {
        if v >= 1 && v <= 16 {
            Some(Self::ALL[(v - 1) as usize])
        } else {
            None
        }
    }

    /// Width in bytes of one value for fixed-width types other than Boolean and FixedSizeBinary;
    /// `None` for Boolean (bit-packed), Utf8/Binary (variable) and FixedSizeBinary (per column).
    #[must_use]
    pub const fn fixed_width(self) -> Option<u32> {
        match self {
            Self::Int8 | Self::UInt8 => Some(1),
            Self::Int16 | Self::UInt16 => Some(2),
            Self::Int32 | Self::UInt32 | Self::Float32 | Self::Date32 => Some(4),
            Self::Int64 | Self::UInt64 | Self::Float64 | Self::Timestamp => Some(8),
            Self::Boolean | Self::Utf8 | Self::Binary | Self::FixedSizeBinary => None,
        }
    }

    /// Whether the column has an offsets buffer.
    #[must_use]
    pub const fn has_offsets(self) -> bool {
        matches!(self, Self::Utf8 | Self::Binary)
    }
}

/// The unit of a Timestamp column, as carried in
/// [`ColumnDesc::time_unit`](crate::ColumnDesc::time_unit).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// Seconds.
    Second = 0,
    /// Milliseconds.
    Millisecond = 1,
    /// Microseconds.
    Microsecond = 2,
    /// Nanoseconds.
    Nanosecond = 3,
}

impl TimeUnit {
    /// Decodes a wire value.
    #[must_use]
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Second),
            1 => Some(Self::Millisecond),
            2 => Some(Self::Microsecond),
            3 => Some(Self::Nanosecond),
            _ => None,
        }
    }

    /// The text form: `s`, `ms`, `us` or `ns`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Second => "s",
            Self::Millisecond => "ms",
            Self::Microsecond => "us",
            Self::Nanosecond => "ns",
        }
    }
}

/// A column type parsed from its text form, borrowing the time zone from the input.
///
/// Text forms (case-sensitive, spaces allowed after commas):
/// `boolean` (or `bool`), `int8`, `int16`, `int32`, `int64`, `uint8`, `uint16`, `uint32`,
/// `uint64`, `float32`, `float64`, `utf8` (or `string`), `binary`, `fixed_size_binary(W)`,
/// `timestamp(UNIT)`, `timestamp(UNIT, TZ)` with UNIT one of `s`, `ms`, `us`, `ns` and TZ an
/// IANA name or an offset such as `+02:00`, and `date32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedType<'a> {
    /// The type id.
    pub id: TypeId,
    /// Width for FixedSizeBinary, else 0.
    pub byte_width: u32,
    /// Unit for Timestamp, else `None`.
    pub unit: Option<TimeUnit>,
    /// Time zone for Timestamp, if any.
    pub tz: Option<&'a str>,
}

impl ParsedType<'_> {
    /// A type with no parameters.
    #[must_use]
    pub const fn simple(id: TypeId) -> Self {
        Self {
            id,
            byte_width: 0,
            unit: None,
            tz: None,
        }
    }
}

impl fmt::Display for ParsedType<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.id {
            TypeId::Boolean => "boolean",
            TypeId::Int8 => "int8",
            TypeId::Int16 => "int16",
            TypeId::Int32 => "int32",
            TypeId::Int64 => "int64",
            TypeId::UInt8 => "uint8",
            TypeId::UInt16 => "uint16",
            TypeId::UInt32 => "uint32",
            TypeId::UInt64 => "uint64",
            TypeId::Float32 => "float32",
            TypeId::Float64 => "float64",
            TypeId::Utf8 => "utf8",
            TypeId::Binary => "binary",
            TypeId::Date32 => "date32",
            TypeId::FixedSizeBinary => {
                return write!(f, "fixed_size_binary({})", self.byte_width);
            }
            TypeId::Timestamp => {
                let unit = self.unit.unwrap_or(TimeUnit::Microsecond).as_str();
                return match self.tz {
                    Some(tz) => write!(f, "timestamp({unit}, {tz})"),
                    None => write!(f, "timestamp({unit})"),
                };
            }
        };
        f.write_str(name)
    }
}

/// Why a type's text form could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeParseError {
    /// The name is not one of the known types.
    UnknownType,
    /// A parameter list is missing, unclosed, or has the wrong number of parameters.
    BadParameters,
    /// The FixedSizeBinary width is not a positive integer.
    BadWidth,
    /// The Timestamp unit is not `s`, `ms`, `us` or `ns`.
    BadUnit,
}

impl fmt::Display for TypeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownType => {
                "unknown type (expected boolean, int8..int64, uint8..uint64, float32, float64, \
                 utf8, binary, fixed_size_binary(W), timestamp(UNIT[, TZ]) or date32)"
            }
            Self::BadParameters => "malformed type parameters",
            Self::BadWidth => "fixed_size_binary width must be a positive integer",
            Self::BadUnit => "timestamp unit must be s, ms, us or ns",
        })
    }
}

/// Parses a type's text form (see [`ParsedType`]).
///
/// # Errors
/// Returns a [`TypeParseError`] saying what is wrong.
pub fn parse_type(text: &str) -> Result<ParsedType<'_>, TypeParseError> {
    let text = text.trim();
    let (name, params) = match text.find('(') {
        Some(open) => {
            let rest = &text[open + 1..];
            let inner = rest
                .strip_suffix(')')
                .ok_or(TypeParseError::BadParameters)?;
            (text[..open].trim(), Some(inner))
        }
        None => (text, None),
    };
    let simple = |id| match params {
        None => Ok(ParsedType::simple(id)),
        Some(_) => Err(TypeParseError::BadParameters),
    };
    match name {
        "bool" | "boolean" => simple(TypeId::Boolean),
        "int8" => simple(TypeId::Int8),
        "int16" => simple(TypeId::Int16),
        "int32" => simple(TypeId::Int32),
        "int64" => simple(TypeId::Int64),
        "uint8" => simple(TypeId::UInt8),
        "uint16" => simple(TypeId::UInt16),
        "uint32" => simple(TypeId::UInt32),
        "uint64" => simple(TypeId::UInt64),
        "float32" => simple(TypeId::Float32),
        "float64" => simple(TypeId::Float64),
        "utf8" | "string" => simple(TypeId::Utf8),
        "binary" => simple(TypeId::Binary),
        "date32" => simple(TypeId::Date32),
        "fixed_size_binary" => {
            let w = params.ok_or(TypeParseError::BadParameters)?.trim();
            let width: u32 = w.parse().map_err(|_| TypeParseError::BadWidth)?;
            if width == 0 {
                return Err(TypeParseError::BadWidth);
            }
            Ok(ParsedType {
                id: TypeId::FixedSizeBinary,
                byte_width: width,
                unit: None,
                tz: None,
            })
        }
        "timestamp" => {
            let p = params.ok_or(TypeParseError::BadParameters)?;
            let (unit, tz) = match p.split_once(',') {
                Some((u, tz)) => {
                    let tz = tz.trim();
                    if tz.is_empty() || tz.contains(',') {
                        return Err(TypeParseError::BadParameters);
                    }
                    (u.trim(), Some(tz))
                }
                None => (p.trim(), None),
            };
            let unit = match unit {
                "s" => TimeUnit::Second,
                "ms" => TimeUnit::Millisecond,
                "us" => TimeUnit::Microsecond,
                "ns" => TimeUnit::Nanosecond,
                _ => return Err(TypeParseError::BadUnit),
            };
            Ok(ParsedType {
                id: TypeId::Timestamp,
                byte_width: 0,
                unit: Some(unit),
                tz,
            })
        }
        _ => Err(TypeParseError::UnknownType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    #[test]
    fn every_type_round_trips_through_text() {
        let cases = [
            "boolean",
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
            "float32",
            "float64",
            "utf8",
            "binary",
            "fixed_size_binary(16)",
            "timestamp(s)",
            "timestamp(ms, UTC)",
            "timestamp(us, +02:00)",
            "timestamp(ns)",
            "date32",
        ];
        for text in cases {
            let parsed = parse_type(text).unwrap();
            assert_eq!(parsed.to_string(), text);
            assert_eq!(TypeId::from_u8(parsed.id as u8), Some(parsed.id));
        }
    }

    #[test]
    fn malformed_types_are_refused_with_the_reason() {
        assert_eq!(parse_type("int128"), Err(TypeParseError::UnknownType));
        assert_eq!(parse_type("int8(1)"), Err(TypeParseError::BadParameters));
        assert_eq!(
            parse_type("fixed_size_binary(0)"),
            Err(TypeParseError::BadWidth)
        );
        assert_eq!(
            parse_type("fixed_size_binary(x)"),
            Err(TypeParseError::BadWidth)
        );
        assert_eq!(parse_type("timestamp(h)"), Err(TypeParseError::BadUnit));
        assert_eq!(
            parse_type("timestamp(ms"),
            Err(TypeParseError::BadParameters)
        );
        assert_eq!(parse_type("timestamp"), Err(TypeParseError::BadParameters));
        assert_eq!(TypeId::from_u8(0), None);
        assert_eq!(TypeId::from_u8(17), None);
    }
}
