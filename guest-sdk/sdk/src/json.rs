//! A small JSON deserializer for policy parameters.
//!
//! `#[filter]`/`#[transform]` parse the parameter blob with [`from_slice`] into any
//! `#[derive(serde::Deserialize)]` type. It reads standard JSON (RFC 8259: objects, arrays,
//! strings with every escape including `\uXXXX` surrogate pairs, numbers, `true`, `false`,
//! `null`) and supports everything serde's derive generates: structs, `Option`, `Vec`, maps,
//! unit, newtype and externally tagged enums, `#[serde(default)]`, `deny_unknown_fields`,
//! `rename`, `flatten` and `untagged`.
//!
//! It exists instead of `serde_json` to keep policy modules small: it is a few KB of wasm, and
//! its error messages never format floating-point numbers, so a policy that does not print
//! floats itself does not link core's float formatting. Its messages name the field by its
//! path, the problem, and the position:
//!
//! ```
//! #[derive(Debug, serde::Deserialize)]
//! struct Bounds { min: f64, max: f64 }
//! #[derive(Debug, serde::Deserialize)]
//! struct Params { temperature: Bounds }
//!
//! let e = weir_sdk::json::from_slice::<Params>(br#"{"temperature": {"min": "x"}}"#);
//! assert_eq!(
//!     e.unwrap_err().to_string(),
//!     r#"temperature.min: invalid type: string "x", expected f64 at line 1 column 27"#,
//! );
//! let e = weir_sdk::json::from_slice::<Params>(br#"{"temperature": {"min": 1}}"#);
//! assert_eq!(
//!     e.unwrap_err().to_string(),
//!     "temperature: missing field `max` at line 1 column 26",
//! );
//! ```

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, Expected, IntoDeserializer, Unexpected, Visitor};

/// Nesting deeper than this is refused (as `serde_json` does), so a hostile blob cannot
/// overflow the stack.
const MAX_DEPTH: u32 = 128;

/// Why a parameter blob was refused: the path of the field at fault (`a.b[2].c`, empty at the
/// top level), the problem, and the line and column where parsing stopped.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    path: String,
    msg: String,
    line: usize,
    column: usize,
}

impl Error {
    fn msg(msg: impl Into<String>) -> Self {
        Self {
            path: String::new(),
            msg: msg.into(),
            line: 0,
            column: 0,
        }
    }

    /// The path of the field at fault, e.g. `temperature.min` or `cidrs[1]`; empty when the
    /// problem is at the top level (a syntax error, or a missing top-level field).
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The problem, without path or position, e.g. ``missing field `min` ``.
    #[must_use]
    pub fn problem(&self) -> &str {
        &self.msg
    }

    /// The 1-based line where parsing stopped.
    #[must_use]
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column (in characters) where parsing stopped.
    #[must_use]
    pub fn column(&self) -> usize {
        self.column
    }

    /// Prepends an array index to the path.
    #[inline(never)]
    fn within_index(self, index: usize) -> Self {
        self.within(&format!("[{index}]"))
    }

    /// Prepends a path segment: a field name or `[index]`.
    #[inline(never)]
    fn within(mut self, segment: &str) -> Self {
        if !self.path.is_empty() && !self.path.starts_with('[') {
            self.path.insert(0, '.');
        }
        self.path.insert_str(0, segment);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(
            f,
            "{} at line {} column {}",
            self.msg, self.line, self.column
        )
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}

/// Writes what serde's `Unexpected` describes, in JSON terms, without formatting floats.
struct Found<'a>(Unexpected<'a>);

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Bool(b) => write!(f, "boolean `{b}`"),
            Unexpected::Unsigned(n) => write!(f, "integer `{n}`"),
            Unexpected::Signed(n) => write!(f, "integer `{n}`"),
            // Printing the value would link core's float formatting into every module.
            Unexpected::Float(_) => f.write_str("floating point number"),
            Unexpected::Char(c) => write!(f, "character `{c}`"),
            Unexpected::Str(s) => {
                // Quoted, with `"`, `\` and control characters escaped; not `{s:?}`, whose
                // escaping pulls in core's Unicode tables.
                f.write_str("string \"")?;
                for c in s.chars() {
                    match c {
                        '"' | '\\' => write!(f, "\\{c}")?,
                        '\n' => f.write_str("\\n")?,
                        c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                        c => f.write_char(c)?,
                    }
                }
                f.write_char('"')
            }
            Unexpected::Bytes(_) => f.write_str("byte array"),
            Unexpected::Unit => f.write_str("null"),
            Unexpected::Option => f.write_str("optional value"),
            Unexpected::NewtypeStruct => f.write_str("newtype struct"),
            Unexpected::Seq => f.write_str("array"),
            Unexpected::Map => f.write_str("object"),
            Unexpected::Enum => f.write_str("enum"),
            Unexpected::UnitVariant => f.write_str("unit variant"),
            Unexpected::NewtypeVariant => f.write_str("newtype variant"),
            Unexpected::TupleVariant => f.write_str("tuple variant"),
            Unexpected::StructVariant => f.write_str("struct variant"),
            Unexpected::Other(other) => f.write_str(other),
        }
    }
}

/// "`a`", "`a` or `b`", "one of `a`, `b`, `c`", as serde words it.
fn one_of(names: &'static [&'static str]) -> String {
    let mut s = String::new();
    match names {
        [] => s.push_str("there are none"),
        [a] => {
            let _ = write!(s, "`{a}`");
        }
        [a, b] => {
            let _ = write!(s, "`{a}` or `{b}`");
        }
        _ => {
            s.push_str("one of ");
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "`{n}`");
            }
        }
    }
    s
}

// Every provided method is overridden so that none of serde's defaults (which format
// `Unexpected` with `Display`, floats included) is linked.
impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::msg(msg.to_string())
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::msg(format!("invalid type: {}, expected {exp}", Found(unexp)))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::msg(format!("invalid value: {}, expected {exp}", Found(unexp)))
    }

    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        Self::msg(format!("invalid length {len}, expected {exp}"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::msg(format!(
            "unknown variant `{variant}`, expected {}",
            one_of(expected)
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self::msg(format!(
            "unknown field `{field}`, expected {}",
            one_of(expected)
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        Self::msg(format!("missing field `{field}`"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::msg(format!("duplicate field `{field}`"))
    }
}

/// Parses `bytes` as one JSON value of type `T`.
///
/// # Errors
/// When `bytes` is not UTF-8, not JSON, has trailing characters, or does not fit `T`; the
/// [`Error`] names the field's path, the problem and the position.
pub fn from_slice<T: de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let mut err = Error::msg("invalid UTF-8");
            locate(&mut err, bytes, e.valid_up_to());
            return Err(err);
        }
    };
    from_str(text)
}

/// Parses `text` as one JSON value of type `T`. See [`from_slice`].
///
/// # Errors
/// As [`from_slice`].
pub fn from_str<T: de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    let mut de = Deserializer {
        text,
        pos: 0,
        depth: 0,
        closed: false,
    };
    let result = T::deserialize(&mut de).and_then(|v| {
        de.skip_ws();
        if de.pos < text.len() {
            de.pos += 1;
            Err(Error::msg("trailing characters"))
        } else {
            Ok(v)
        }
    });
    result.map_err(|mut e| {
        locate(&mut e, text.as_bytes(), de.pos);
        e
    })
}

/// Sets the line and column of the character just before byte `pos` (the last one read).
fn locate(e: &mut Error, bytes: &[u8], pos: usize) {
    let before = &bytes[..pos.min(bytes.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    e.line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    // Count characters, not bytes: UTF-8 continuation bytes are 0b10xx_xxxx.
    e.column = before[line_start..]
        .iter()
        .filter(|&&b| b & 0xC0 != 0x80)
        .count();
}

/// The start of a JSON value.
enum Token<'de> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    /// A number with a fraction or exponent, or an integer beyond 64 bits, as written: it is
    /// converted only for a visitor that wants floats, so that policies without float
    /// parameters do not link core's float parser (~15 KB of wasm).
    Float(&'de str),
    Str(Cow<'de, str>),
    /// After `[`.
    Seq,
    /// After `{`.
    Map,
}

struct Deserializer<'de> {
    text: &'de str,
    pos: usize,
    depth: u32,
    /// Set when a `Seq` or `Map` consumed its closing bracket (so an error the visitor raises
    /// at the end, like `missing field`, points at the bracket).
    closed: bool,
}

impl<'de> Deserializer<'de> {
    /// `text[from..to]`; the bounds are always at ASCII bytes the parser found, so this never
    /// fails (and, unlike indexing, links no panic path for it).
    fn slice(&self, from: usize, to: usize) -> &'de str {
        self.text.get(from..to).unwrap_or_default()
    }

    fn rest(&self) -> &'de str {
        self.slice(self.pos, self.text.len())
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The next significant byte, after whitespace.
    fn next_token(&mut self) -> Result<u8, Error> {
        self.skip_ws();
        self.peek()
            .ok_or_else(|| Error::msg("EOF while parsing a value"))
    }

    fn expect_ident(&mut self, ident: &str) -> Result<(), Error> {
        if self.rest().starts_with(ident) {
            self.pos += ident.len();
            Ok(())
        } else {
            self.pos += 1;
            Err(Error::msg("expected value"))
        }
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::msg("recursion limit exceeded"));
        }
        Ok(())
    }

    /// Parses a string at `"`; borrowed unless it has escapes.
    fn parse_string(&mut self) -> Result<Cow<'de, str>, Error> {
        self.pos += 1; // the opening quote
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut owned: Option<String> = None;
        let mut run = start;
        loop {
            let Some(&b) = bytes.get(self.pos) else {
                return Err(Error::msg("EOF while parsing a string"));
            };
            match b {
                b'"' => {
                    let tail = self.slice(run, self.pos);
                    self.pos += 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(tail),
                        Some(mut s) => {
                            s.push_str(tail);
                            Cow::Owned(s)
                        }
                    });
                }
                b'\\' => {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(self.slice(run, self.pos));
                    self.pos += 1;
                    let esc = bytes
                        .get(self.pos)
                        .copied()
                        .ok_or_else(|| Error::msg("EOF while parsing a string"))?;
                    self.pos += 1;
                    match esc {
                        b'"' => s.push('"'),
                        b'\\' => s.push('\\'),
                        b'/' => s.push('/'),
                        b'b' => s.push('\u{8}'),
                        b'f' => s.push('\u{c}'),
                        b'n' => s.push('\n'),
                        b'r' => s.push('\r'),
                        b't' => s.push('\t'),
                        b'u' => {
                            let c = self.parse_unicode_escape()?;
                            s.push(c);
                        }
                        _ => return Err(Error::msg("invalid escape")),
                    }
                    run = self.pos;
                }
                0..=0x1F => {
                    self.pos += 1;
                    return Err(Error::msg(
                        "control character (\\u0000-\\u001F) found while parsing a string",
                    ));
                }
                _ => self.pos += 1,
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| Error::msg("EOF while parsing a string"))?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::msg("invalid escape"));
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| Error::msg("invalid escape"))
    }

    /// After `\u`: one code point, combining a surrogate pair.
    fn parse_unicode_escape(&mut self) -> Result<char, Error> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if !self.rest().starts_with("\\u") {
                    return Err(Error::msg("lone leading surrogate in hex escape"));
                }
                self.pos += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(Error::msg("lone leading surrogate in hex escape"));
                }
                0x1_0000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(Error::msg("unexpected end of hex escape")),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| Error::msg("invalid unicode code point"))
    }

    /// Parses a number as `u64`, `i64` or, with a fraction or exponent or beyond 64 bits, `f64`.
    fn parse_number(&mut self) -> Result<Token<'de>, Error> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let digits = |de: &mut Self| {
            let from = de.pos;
            while bytes.get(de.pos).is_some_and(u8::is_ascii_digit) {
                de.pos += 1;
            }
            de.pos - from
        };
        let neg = self.peek() == Some(b'-');
        if neg {
            self.pos += 1;
        }
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 || (n > 1 && bytes[int_start] == b'0') {
            return Err(Error::msg("invalid number"));
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            float = true;
            if digits(self) == 0 {
                return Err(Error::msg("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            float = true;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(Error::msg("invalid number"));
            }
        }
        let token = self.slice(start, self.pos);
        if !float {
            if neg {
                if let Ok(v) = token.parse::<i64>() {
                    return Ok(Token::I64(v));
                }
            } else if let Ok(v) = token.parse::<u64>() {
                return Ok(Token::U64(v));
            }
        }
        // A fraction, an exponent, or an integer outside 64 bits.
        Ok(Token::Float(token))
    }

    /// Reads the start of a value: a scalar whole, or the opening bracket of an array or
    /// object (consumed, with the depth checked). Not generic, so it is compiled once rather
    /// than for every visitor.
    #[inline(never)]
    fn value_token(&mut self) -> Result<Token<'de>, Error> {
        Ok(match self.next_token()? {
            b'n' => {
                self.expect_ident("null")?;
                Token::Null
            }
            b't' => {
                self.expect_ident("true")?;
                Token::Bool(true)
            }
            b'f' => {
                self.expect_ident("false")?;
                Token::Bool(false)
            }
            b'-' | b'0'..=b'9' => self.parse_number()?,
            b'"' => Token::Str(self.parse_string()?),
            b'[' => {
                self.enter()?;
                self.pos += 1;
                Token::Seq
            }
            b'{' => {
                self.enter()?;
                self.pos += 1;
                Token::Map
            }
            b => return Err(self.unexpected_token(b)),
        })
    }

    /// After an array's or object's visitor: its closing bracket (`close` is `]` or `}`).
    #[inline(never)]
    fn end_container(&mut self, close: u8) -> Result<(), Error> {
        self.depth -= 1;
        if std::mem::take(&mut self.closed) {
            return Ok(());
        }
        let what = if close == b']' {
            "an array"
        } else {
            "an object"
        };
        match self.next_token() {
            Ok(b) if b == close => {
                self.pos += 1;
                Ok(())
            }
            Ok(_) => Err(Error::msg(format!("trailing characters in {what}"))),
            Err(_) => Err(Error::msg(format!("EOF while parsing {what}"))),
        }
    }

    /// Before an array element: the `,` (after the first) or the closing `]` (consumed, and
    /// `false` returned).
    #[inline(never)]
    fn next_element(&mut self, index: usize) -> Result<bool, Error> {
        let b = self
            .next_token()
            .map_err(|_| Error::msg("EOF while parsing an array"))?;
        if b == b']' {
            self.pos += 1;
            self.closed = true;
            return Ok(false);
        }
        if index > 0 {
            if b != b',' {
                return Err(Error::msg("expected `,` or `]`"));
            }
            self.pos += 1;
            if self.next_token()? == b']' {
                self.pos += 1;
                return Err(Error::msg("trailing comma"));
            }
        }
        Ok(true)
    }

    /// Before an object entry: the `,` (unless `first`) and the key, or the closing `}`
    /// (consumed, and `None` returned).
    #[inline(never)]
    fn next_key(&mut self, first: bool) -> Result<Option<Cow<'de, str>>, Error> {
        let mut b = self
            .next_token()
            .map_err(|_| Error::msg("EOF while parsing an object"))?;
        if b == b'}' {
            self.pos += 1;
            self.closed = true;
            return Ok(None);
        }
        if !first {
            if b != b',' {
                return Err(Error::msg("expected `,` or `}`"));
            }
            self.pos += 1;
            b = self.next_token()?;
            if b == b'}' {
                self.pos += 1;
                return Err(Error::msg("trailing comma"));
            }
        }
        if b != b'"' {
            self.pos += 1;
            return Err(Error::msg("key must be a string"));
        }
        self.parse_string().map(Some)
    }

    /// The `:` between a key and its value.
    #[inline(never)]
    fn colon(&mut self) -> Result<(), Error> {
        if self.next_token()? != b':' {
            self.pos += 1;
            return Err(Error::msg("expected `:`"));
        }
        self.pos += 1;
        Ok(())
    }

    fn unexpected_token(&mut self, b: u8) -> Error {
        self.pos += 1;
        Error::msg(if b.is_ascii_graphic() {
            format!("expected value, found `{}`", char::from(b))
        } else {
            "expected value".to_owned()
        })
    }
}

/// What to do with a [`Token::Float`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Floats {
    /// Convert it for the visitor (`f32`, `f64`, `any`).
    Parse,
    /// Refuse it: the visitor wants no float (serde's integer, string, struct... visitors
    /// refuse `visit_f64` anyway), worded with the number as written.
    Reject,
    /// Skip it (`ignored_any`).
    Ignore,
}

/// Converts a float as written; out of `f64` range is an error.
#[inline(never)]
fn parse_float(text: &str) -> Result<f64, Error> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Error::msg("number out of range")),
    }
}

/// Implements `deserialize_*` hints that take no float as [`Deserializer::dispatch`] with
/// [`Floats::Reject`].
macro_rules! no_float_hints {
    ($de:lifetime; $($method:ident)*) => {
        $(
            fn $method<V: Visitor<$de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.dispatch(visitor, Floats::Reject)
            }
        )*
    };
}

impl<'de> Deserializer<'de> {
    /// Reads one value and hands it to the visitor.
    fn dispatch<V: Visitor<'de>>(&mut self, visitor: V, floats: Floats) -> Result<V::Value, Error> {
        match self.value_token()? {
            Token::Null => visitor.visit_unit(),
            Token::Bool(b) => visitor.visit_bool(b),
            Token::U64(v) => visitor.visit_u64(v),
            Token::I64(v) => visitor.visit_i64(v),
            Token::Float(text) => match floats {
                Floats::Parse => visitor.visit_f64(parse_float(text)?),
                Floats::Reject => Err(de::Error::invalid_type(
                    Unexpected::Other(&format!("floating point `{text}`")),
                    &visitor,
                )),
                Floats::Ignore => visitor.visit_unit(),
            },
            Token::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Token::Str(Cow::Owned(s)) => visitor.visit_string(s),
            Token::Seq => {
                let value = visitor.visit_seq(Seq {
                    de: &mut *self,
                    index: 0,
                })?;
                self.end_container(b']')?;
                Ok(value)
            }
            Token::Map => {
                let value = visitor.visit_map(Map {
                    de: &mut *self,
                    first: true,
                    key: Cow::Borrowed(""),
                })?;
                self.end_container(b'}')?;
                Ok(value)
            }
        }
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.dispatch(visitor, Floats::Parse)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.dispatch(visitor, Floats::Parse)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.dispatch(visitor, Floats::Parse)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.dispatch(de::IgnoredAny, Floats::Ignore)?;
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.dispatch(visitor, Floats::Reject)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.dispatch(visitor, Floats::Reject)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.dispatch(visitor, Floats::Reject)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.dispatch(visitor, Floats::Reject)
    }

    no_float_hints! { 'de;
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.next_token()? == b'n' {
            self.expect_ident("null")?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.next_token()? {
            // A unit variant: `"name"`.
            b'"' => match self.parse_string()? {
                Cow::Borrowed(s) => visitor.visit_enum(s.into_deserializer()),
                Cow::Owned(s) => visitor.visit_enum(s.into_deserializer()),
            },
            // Any other variant: `{"name": value}`.
            b'{' => {
                self.enter()?;
                self.pos += 1;
                let value = visitor.visit_enum(Variant { de: &mut *self })?;
                self.depth -= 1;
                match self.next_token() {
                    Ok(b'}') => {
                        self.pos += 1;
                        Ok(value)
                    }
                    Ok(_) => Err(Error::msg("expected `}` after the enum variant's value")),
                    Err(_) => Err(Error::msg("EOF while parsing an object")),
                }
            }
            _ => {
                // Let the visitor word the error ("expected enum Mode").
                self.dispatch(visitor, Floats::Reject)
            }
        }
    }
}

/// The elements of an array, after `[`.
struct Seq<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if !self.de.next_element(self.index)? {
            return Ok(None);
        }
        let i = self.index;
        self.index += 1;
        seed.deserialize(&mut *self.de)
            .map(Some)
            .map_err(|e| e.within_index(i))
    }
}

/// The entries of an object, after `{`.
struct Map<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    first: bool,
    /// The current key, for error paths.
    key: Cow<'de, str>,
}

impl<'de> de::MapAccess<'de> for Map<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(key) = self.de.next_key(self.first)? else {
            return Ok(None);
        };
        self.first = false;
        self.key = key;
        let key = match &self.key {
            Cow::Borrowed(s) => seed.deserialize(de::value::BorrowedStrDeserializer::new(s)),
            Cow::Owned(s) => seed.deserialize(s.as_str().into_deserializer()),
        };
        // Errors about the key itself (`unknown field`) are at the object's level.
        key.map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        self.de.colon()?;
        seed.deserialize(&mut *self.de)
            .map_err(|e| e.within(&self.key))
    }
}

/// An enum written `{"variant": value}`, after `{`.
struct Variant<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        if self.de.next_token()? != b'"' {
            self.de.pos += 1;
            return Err(Error::msg("key must be a string"));
        }
        let name = self.de.parse_string()?;
        let v = match &name {
            Cow::Borrowed(s) => seed.deserialize(de::value::BorrowedStrDeserializer::new(s))?,
            Cow::Owned(s) => seed.deserialize(s.as_str().into_deserializer())?,
        };
        self.de.colon()?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(&mut *self.de)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.de.dispatch(visitor, Floats::Reject)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.de.dispatch(visitor, Floats::Reject)
    }
}

#[cfg(test)]
mod tests;
