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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct DeviceId(String);

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
    fn deserialize_validates() {
        assert!(serde_json::from_str::<DeviceId>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<DeviceId>("\"no/slash\"").is_err());
    }
}
