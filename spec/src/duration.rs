//! Durations as people write them in a spec: `500ms`, `10s`, `2m`, `1h`, `7d`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a number followed by `ms`, `s`, `m` or `h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationSpec(Duration);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not a duration: write a whole number followed by ms, s, m, h or d (e.g. `10s`)"
)]
pub struct DurationError {
    input: String,
}

impl DurationSpec {
    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// The duration itself.
    pub fn get(self) -> Duration {
        self.0
    }

    /// Parses `10s`, `500ms`, `2m`, `1h`, `7d`.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let err = || DurationError {
            input: input.to_string(),
        };
        let s = input.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (number, unit) = s.split_at(split);
        let n: u64 = number.parse().map_err(|_| err())?;
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(err)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(err)?),
            "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(err)?),
            _ => return Err(err()),
        };
        Ok(Self(d))
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(86_400_000) && ms > 0 {
            write!(f, "{}d", ms / 86_400_000)
        } else if ms.is_multiple_of(3_600_000) && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DurationSpec::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The JSON Schema of a duration string.
pub fn schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "pattern": "^[0-9]+(ms|s|m|h|d)$",
        "description": "A whole number followed by ms, s, m, h or d, e.g. `10s`."
    })
}

/// The JSON Schema of an optional duration string.
pub fn optional_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schema(g)
}

/// A duration field within `lo..=hi` seconds, or a problem at `path`.
pub(crate) fn check_duration(
    p: &mut crate::validate::Problems,
    path: &str,
    text: &str,
    (lo, hi): (u64, u64),
    hi_text: &str,
) -> Option<Duration> {
    match DurationSpec::parse(text) {
        Ok(d) if d.get() >= Duration::from_secs(lo) && d.get() <= Duration::from_secs(hi) => {
            Some(d.get())
        }
        Ok(_) => {
            p.add(
                path,
                format!("must be between {lo}s and {hi_text}, got {text}"),
            );
            None
        }
        Err(e) => {
            p.add(path, e.to_string());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(
            DurationSpec::parse("500ms").unwrap().get(),
            Duration::from_millis(500)
        );
        assert_eq!(
            DurationSpec::parse("10s").unwrap().get(),
            Duration::from_secs(10)
        );
        assert_eq!(
            DurationSpec::parse("2m").unwrap().get(),
            Duration::from_secs(120)
        );
        assert_eq!(
            DurationSpec::parse("1h").unwrap().get(),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "10", "s", "1.5s", "-1s", "10 sec", "10w"] {
            assert!(DurationSpec::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(ms in 0u64..100_000_000) {
            let d = DurationSpec(Duration::from_millis(ms));
            prop_assert_eq!(DurationSpec::parse(&d.to_string()).unwrap(), d);
        }
    }
}
