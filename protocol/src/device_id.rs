//! [`DeviceId`]: the name a device publishes under, valid by construction.

use alloc::string::String;
use core::fmt;
use core::ops::Deref;

/// Longest device id accepted, in bytes.
pub const MAX_LEN: usize = 64;

/// A device id: 1 to 64 characters of `A-Z a-z 0-9 _ -`.
///
/// It is also the device's broker username, and the second level of its topics, so it can never
/// contain MQTT wildcards or separators.
///
/// Ids sort as people number devices: runs of digits by their value, so `sim-9` comes before
/// `sim-10` and `sim-99` before `sim-100` (see [`Ord`](#impl-Ord-for-DeviceId)).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct DeviceId(String);

impl Ord for DeviceId {
    /// Natural order: the ids are cut into runs of digits and runs of anything else; digit runs
    /// compare by value (then by length, so `01` after `1`), the rest byte by byte. Ids that
    /// compare equal that way (none do unless they are equal) fall back to their bytes, so the
    /// order agrees with `Eq`.
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        natural_cmp(self.0.as_bytes(), other.0.as_bytes()).then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for DeviceId {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The run of digits in `s` from `k`, without its leading zeros, and where it ends.
fn digit_run(s: &[u8], k: usize) -> (&[u8], usize) {
    let end = s[k..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map_or(s.len(), |p| k + p);
    let zeros = s[k..end].iter().take_while(|c| **c == b'0').count();
    (&s[k + zeros..end], end)
}

fn natural_cmp(a: &[u8], b: &[u8]) -> core::cmp::Ordering {
    use core::cmp::Ordering;
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let ((x, xe), (y, ye)) = (digit_run(a, i), digit_run(b, j));
            let by_value = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            let by_width = (xe - i).cmp(&(ye - j));
            match by_value.then(by_width) {
                Ordering::Equal => (i, j) = (xe, ye),
                other => return other,
            }
        } else {
            match a[i].cmp(&b[j]) {
                Ordering::Equal => (i, j) = (i + 1, j + 1),
                other => return other,
            }
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

/// Why a string is not a [`DeviceId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    #[error("device id is empty")]
    Empty,
    #[error("device id is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("device id contains {0:?}; only A-Z a-z 0-9 _ - are allowed")]
    InvalidChar(char),
}

impl DeviceId {
    /// Checks `id` and wraps it.
    pub fn new(id: &str) -> Result<Self, DeviceIdError> {
        validate(id)?;
        Ok(Self(String::from(id)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate(id: &str) -> Result<(), DeviceIdError> {
    if id.is_empty() {
        return Err(DeviceIdError::Empty);
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(DeviceIdError::InvalidChar(c));
    }
    if id.len() > MAX_LEN {
        return Err(DeviceIdError::TooLong);
    }
    Ok(())
}

impl Deref for DeviceId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::str::FromStr for DeviceId {
    type Err = DeviceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for DeviceId {
    type Error = DeviceIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        validate(&s)?;
        Ok(Self(s))
    }
}

impl<'de> serde::Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::try_from(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in ["a", "esp32-s3_01", "DEVICE", "0", &"x".repeat(64)] {
            assert_eq!(DeviceId::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(DeviceId::new(""), Err(DeviceIdError::Empty));
        assert_eq!(DeviceId::new(&"x".repeat(65)), Err(DeviceIdError::TooLong));
        for (bad, c) in [
            ("a/b", '/'),
            ("+", '+'),
            ("#", '#'),
            ("a b", ' '),
            ("ü", 'ü'),
            ("ogm.server", '.'),
        ] {
            assert_eq!(
                DeviceId::new(bad),
                Err(DeviceIdError::InvalidChar(c)),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_sort_as_people_number_devices() {
        let mut ids: alloc::vec::Vec<DeviceId> = [
            "sim-100",
            "sim-10",
            "sim-9",
            "sim-01",
            "sim-1",
            "esp32-s3_01",
            "esp32-s3_002",
            "esp4",
            "a",
            "B",
            "sim-",
            "sim-2b",
            "sim-2a",
            "007",
            "7",
        ]
        .iter()
        .map(|s| DeviceId::new(s).unwrap())
        .collect();
        ids.sort();
        let sorted: alloc::vec::Vec<&str> = ids.iter().map(DeviceId::as_str).collect();
        assert_eq!(
            sorted,
            [
                "7",
                "007",
                "B",
                "a",
                "esp4",
                "esp32-s3_01",
                "esp32-s3_002",
                "sim-",
                "sim-1",
                "sim-01",
                "sim-2a",
                "sim-2b",
                "sim-9",
                "sim-10",
                "sim-100"
            ]
        );
        // A total order that agrees with equality.
        for x in &ids {
            for y in &ids {
                assert_eq!(x.cmp(y) == core::cmp::Ordering::Equal, x == y);
                assert_eq!(x.cmp(y), y.cmp(x).reverse());
            }
        }
    }

    #[test]
    fn deserialize_validates() {
        assert!(serde_json::from_str::<DeviceId>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<DeviceId>("\"no/slash\"").is_err());
    }
}
