//! Human-friendly units in the config: durations (`"250ms"`, `"5m"`) and sizes (`"128MiB"`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written as `"250ms"`, `"5s"`, `"1h 30m"` (humantime syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"250ms\", \"5s\" or \"10m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(v)
                    .map(HumanDuration)
                    .map_err(|e| E::custom(format!("invalid duration {v:?}: {e}")))
            }
        }
        deserializer.deserialize_str(V)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// A size in bytes, written as an integer or a string such as `"128MiB"` or `"64 KB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 1048576, \"128MiB\" or \"64KB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a size cannot be negative ({v})")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse::<bytesize::ByteSize>()
                    .map(|b| ByteSize(b.as_u64()))
                    .map_err(|e| E::custom(format!("invalid size {v:?}: {e}")))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bytesize::ByteSize(self.0).display().iec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        d: HumanDuration,
        s: ByteSize,
    }

    #[test]
    fn parses_units() {
        let t: T = toml::from_str("d = \"250ms\"\ns = \"128MiB\"").unwrap();
        assert_eq!(t.d.0, Duration::from_millis(250));
        assert_eq!(t.s.0, 128 << 20);
        let t: T = toml::from_str("d = \"1m 30s\"\ns = 4096").unwrap();
        assert_eq!(t.d.0, Duration::from_secs(90));
        assert_eq!(t.s.0, 4096);
    }

    #[test]
    fn refuses_garbage() {
        let e = toml::from_str::<T>("d = \"soon\"\ns = 1")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("invalid duration \"soon\""), "{e}");
        let e = toml::from_str::<T>("d = \"1s\"\ns = -5")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("negative"), "{e}");
    }
}
