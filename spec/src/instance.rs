//! An instance's id as its fleet names it: `i-0abc…` for EC2, `i-0001` for a
//! local instance. Typed, as server ids are, so that an instance id is never
//! mixed up with an address, a cluster name or a server id; it reads and
//! writes as a plain string (JSON unchanged) and borrows as `&str`.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// An instance id.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(String);

impl InstanceId {
    /// The id `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for InstanceId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for InstanceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl From<&str> for InstanceId {
    fn from(id: &str) -> Self {
        Self(id.to_string())
    }
}

impl From<String> for InstanceId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<InstanceId> for String {
    fn from(id: InstanceId) -> Self {
        id.0
    }
}

impl From<&InstanceId> for String {
    fn from(id: &InstanceId) -> Self {
        id.0.clone()
    }
}

impl PartialEq<str> for InstanceId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for InstanceId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for InstanceId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<InstanceId> for str {
    fn eq(&self, other: &InstanceId) -> bool {
        self == other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_id_is_a_plain_string_on_the_wire() {
        let id = InstanceId::from("i-0abc");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"i-0abc\"");
        let back: InstanceId = serde_json::from_str("\"i-0abc\"").unwrap();
        assert_eq!(back, "i-0abc");
        assert_eq!(format!("{id:<8}|"), "i-0abc  |");
    }
}
