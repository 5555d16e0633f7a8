//! The leaf types of the values model. Each one's rule is its deserialization: validation deserializes
//! every leaf of every layer on its own (collecting each error with its file and path), and the builder
//! reads the merged values through the same types.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, PodSecurityContext, ResourceRequirements, SecurityContext, Toleration, Volume, VolumeMount,
};
use serde::de::{Deserialize, Deserializer, Error, IgnoredAny};
use serde_json::Value;

use crate::k8s;
use crate::limits::MAX_WAIT_SECONDS;
use crate::schema::{Node, Schema, deserializes};
use crate::tree::{YamlPath, describe};

/// Implements [`Schema`] for a leaf type, checked by deserializing it unless a check is given.
macro_rules! leaf {
    ($ty:ty) => {
        leaf!($ty, deserializes::<$ty>);
    };
    ($ty:ty, $check:expr) => {
        impl Schema for $ty {
            type Paths = YamlPath;
            const NODE: Node = Node::Leaf($check);
            fn paths(at: YamlPath) -> YamlPath {
                at
            }
        }
    };
}

/// Text, `NONEMPTY` or not, of one line unless `FORM` says otherwise. YAML reads `tag: 1.10` as a
/// number; Helm prints it back as text, so a number or a boolean is accepted and kept as written by YAML.
/// Values land in config files and on command lines, one setting a line: a control character (a line
/// break above all) would smuggle in a line of its own, so only [`Lines`] may hold line breaks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text<const NONEMPTY: bool, const FORM: u8 = ONE_LINE>(String);

/// One line, no control characters.
pub const ONE_LINE: u8 = 0;
/// One line; line breaks at its end (a YAML block scalar's) are dropped.
pub const FINAL_BREAK: u8 = 1;
/// Several lines: line breaks and tabs are the only control characters allowed.
pub const LINES: u8 = 2;

/// Text that must not be empty (or only blanks).
pub type NonEmpty = Text<true>;
/// Text that may be empty.
pub type AnyText = Text<false>;
/// A non-empty text of several lines (a shell command, a PEM key).
pub type Lines = Text<true, LINES>;
/// A non-empty line that may end in a line break (a public key).
pub type Line = Text<true, FINAL_BREAK>;

impl<const NONEMPTY: bool, const FORM: u8> Text<NONEMPTY, FORM> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl<'de, const NONEMPTY: bool, const FORM: u8> Deserialize<'de> for Text<NONEMPTY, FORM> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut text = match Value::deserialize(deserializer)? {
            Value::String(s) => s,
            v @ (Value::Number(_) | Value::Bool(_)) => v.to_string(),
            other => return Err(D::Error::custom(format!("expected a string, got {}", describe(&other)))),
        };
        if NONEMPTY && text.trim().is_empty() {
            return Err(D::Error::custom("must not be empty"));
        }
        if FORM == FINAL_BREAK {
            text.truncate(text.trim_end_matches(['\n', '\r']).len());
        }
        let allowed: &[char] = if FORM == LINES { &['\n', '\r', '\t'] } else { &[] };
        if let Some(c) = text.chars().find(|c| c.is_control() && !allowed.contains(c)) {
            return Err(D::Error::custom(format!("contains the control character {c:?}, which would break the line it is written into; remove it")));
        }
        Ok(Text(text))
    }
}

impl<const NONEMPTY: bool, const FORM: u8> Schema for Text<NONEMPTY, FORM> {
    type Paths = YamlPath;
    const NODE: Node = Node::Leaf(deserializes::<Self>);
    fn paths(at: YamlPath) -> YamlPath {
        at
    }
}

/// An integer from `MIN` to `MAX`, held as `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int<T, const MIN: i64, const MAX: i64>(T);

impl<T: Copy, const MIN: i64, const MAX: i64> Int<T, MIN, MAX> {
    pub fn get(self) -> T {
        self.0
    }
}

impl<'de, T: TryFrom<i64>, const MIN: i64, const MAX: i64> Deserialize<'de> for Int<T, MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let what = if MIN == 0 { "a non-negative integer".to_string() } else { format!("an integer from {MIN} to {MAX}") };
        let message = match value.as_i64() {
            Some(n) if (MIN..=MAX).contains(&n) => return T::try_from(n).map(Int).map_err(|_| D::Error::custom(format!("{n} does not fit"))),
            Some(n) if n < MIN && MIN == 0 => format!("expected {what}, got {n}"),
            Some(n) => format!("expected an integer from {MIN} to {MAX}, got {n}"),
            None => {
                let hint = if value.as_str().is_some_and(|s| s.parse::<i64>().is_ok()) { " (write it without quotes)" } else { "" };
                format!("expected {what}, got {}{hint}", describe(&value))
            }
        };
        Err(D::Error::custom(message))
    }
}

impl<T: TryFrom<i64>, const MIN: i64, const MAX: i64> Schema for Int<T, MIN, MAX> {
    type Paths = YamlPath;
    const NODE: Node = Node::Leaf(deserializes::<Self>);
    fn paths(at: YamlPath) -> YamlPath {
        at
    }
}

/// A number of seconds, written as a number or as a string of digits (`fetchWaitSecond: "120"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub u64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let seconds = match &value {
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
            other => other.as_u64(),
        };
        seconds.filter(|s| *s <= u64::from(MAX_WAIT_SECONDS)).map(Seconds).ok_or_else(|| {
            D::Error::custom(format!("expected a number of seconds from 0 to {MAX_WAIT_SECONDS}, got {}", describe(&value)))
        })
    }
}

leaf!(Seconds);

/// One value written as text: a string, or a number or boolean kept as YAML wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(Scalar(s)),
            v @ (Value::Number(_) | Value::Bool(_)) => Ok(Scalar(v.to_string())),
            other => Err(D::Error::custom(format!("expected a single value, got {}", describe(&other)))),
        }
    }
}

/// A mapping of names to scalar values, each kept as text; a null entry is left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScalarMap(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for ScalarMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = BTreeMap::<String, Option<Scalar>>::deserialize(deserializer)?;
        Ok(ScalarMap(entries.into_iter().filter_map(|(name, value)| Some((name, value?.0))).collect()))
    }
}

// Each entry is checked where it stands, so every bad one is named.
leaf!(ScalarMap, |value, at| match value {
    Value::Object(entries) => entries.iter().flat_map(|(name, v)| deserializes::<Option<Scalar>>(v, &at.key(name))).collect(),
    other => vec![(at.clone(), format!("expected a mapping of names to values, got {}", describe(other)))],
});

/// A container's resources as kube-openmpi wrote them: `gpu` for `nvidia.com/gpu`, numbers for quantities.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources(pub ResourceRequirements);

impl<'de> Deserialize<'de> for Resources {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = k8s::normalize_resources(&Value::deserialize(deserializer)?);
        serde_json::from_value(value).map(Resources).map_err(D::Error::custom)
    }
}

// Kubernetes objects: checked against their k8s-openapi types, for wrong types and unknown fields alike.
leaf!(Resources, |value, at| k8s::check::<ResourceRequirements>(&k8s::normalize_resources(value), at));
leaf!(PodSecurityContext, k8s::check::<PodSecurityContext>);
leaf!(SecurityContext, k8s::check::<SecurityContext>);
leaf!(BTreeMap<String, String>, k8s::check::<BTreeMap<String, String>>);
leaf!(Vec<Toleration>, k8s::check::<Vec<Toleration>>);
leaf!(Affinity, k8s::check::<Affinity>);
leaf!(Vec<Volume>, k8s::check::<Vec<Volume>>);
leaf!(Vec<VolumeMount>, k8s::check::<Vec<VolumeMount>>);
leaf!(Vec<LocalObjectReference>, k8s::check::<Vec<LocalObjectReference>>);

/// Why a key is accepted and ignored.
pub trait Reason {
    const WHY: &'static str;
}

/// A kube-openmpi key kompi accepts and ignores, warning with `R::WHY` when a user sets it.
pub struct Ignored<R>(PhantomData<R>);

impl<R> Clone for Ignored<R> {
    fn clone(&self) -> Self {
        Ignored(PhantomData)
    }
}

impl<R> std::fmt::Debug for Ignored<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ignored")
    }
}

impl<'de, R> Deserialize<'de> for Ignored<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Ignored(PhantomData))
    }
}

impl<R: Reason> Schema for Ignored<R> {
    type Paths = YamlPath;
    const NODE: Node = Node::Ignored(R::WHY);
    fn paths(at: YamlPath) -> YamlPath {
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read<T: for<'de> Deserialize<'de>>(v: Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn leaves_read_what_their_kind_accepts() {
        assert_eq!(read::<AnyText>(json!(1.1)).unwrap().as_str(), "1.1");
        assert_eq!(read::<AnyText>(json!("")).unwrap().as_str(), "");
        assert!(read::<NonEmpty>(json!(" ")).unwrap_err().contains("must not be empty"));
        assert_eq!(read::<Int<u16, 1, 65535>>(json!(2022)).unwrap().get(), 2022);
        assert!(read::<Int<u16, 1, 65535>>(json!(0)).unwrap_err().contains("from 1 to 65535"));
        assert_eq!(read::<Seconds>(json!("120")).unwrap(), Seconds(120));
        assert!(read::<Seconds>(json!("-1")).is_err());
        let map = read::<ScalarMap>(json!({"a": "x", "b": 2, "c": null})).unwrap();
        assert_eq!(map.0, BTreeMap::from([("a".into(), "x".into()), ("b".into(), "2".into())]));
        let r = read::<Resources>(json!({"limits": {"gpu": 1}})).unwrap();
        assert_eq!(r.0.limits.unwrap()[k8s::GPU_RESOURCE].0, "1");
    }
}
