//! Values subtrees that are Kubernetes objects: read through their k8s-openapi types, so wrong types and
//! unknown fields are caught here, with their YAML path, instead of by the API server.

use serde::de::{DeserializeOwned, Visitor};
use serde_json::Value;

use crate::tree::YamlPath;

pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// A problem found inside a Kubernetes subtree: the full path and what is wrong.
pub type SubProblem = (YamlPath, String);

/// kube-openmpi's values wrote GPUs as `gpu: 1` and quantities as YAML numbers; Kubernetes wants
/// `nvidia.com/gpu` and strings.
pub fn normalize_resources(value: &Value) -> Value {
    let mut out = value.clone();
    if let Value::Object(sections) = &mut out {
        for (section, quantities) in sections.iter_mut() {
            if section != "limits" && section != "requests" {
                continue;
            }
            if let Value::Object(map) = quantities {
                if let Some(gpu) = map.remove("gpu") {
                    map.insert(GPU_RESOURCE.into(), gpu);
                }
                for q in map.values_mut() {
                    if let Value::Number(n) = q {
                        *q = Value::String(n.to_string());
                    }
                }
            }
        }
    }
    out
}

/// Checks a subtree against its Kubernetes type: wrong types, and fields the type does not have.
pub fn check<T: DeserializeOwned + serde::Serialize>(value: &Value, path: &YamlPath) -> Vec<SubProblem> {
    let typed: T = match serde_path_to_error::deserialize(value) {
        Ok(t) => t,
        Err(e) => {
            let at = join(path, &e.path().to_string());
            return vec![(at, e.into_inner().to_string())];
        }
    };
    let back = serde_json::to_value(&typed).unwrap_or(Value::Null);
    let mut unknown = Vec::new();
    unknown_keys(value, &back, path, &mut unknown);
    let known = top_fields::<T>();
    unknown
        .into_iter()
        .map(|(at, key)| {
            let hint = (at.parent().as_ref() == Some(path) || is_item_of(&at, path))
                .then(|| crate::validate::did_you_mean(&key, known))
                .flatten()
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            (at, format!("unknown field {key:?}{hint}"))
        })
        .collect()
}

fn is_item_of(at: &YamlPath, list: &YamlPath) -> bool {
    at.parent().and_then(|p| p.parent()).as_ref() == Some(list) && at.parent().is_some_and(|p| p.as_str().ends_with(']'))
}

fn join(base: &YamlPath, inner: &str) -> YamlPath {
    if inner.is_empty() || inner == "." {
        return base.clone();
    }
    if inner.starts_with('[') {
        YamlPath::parse(&format!("{}{inner}", base.as_str()))
    } else {
        YamlPath::parse(&format!("{}.{inner}", base.as_str()))
    }
}

/// Keys present (and not null) in the input that the typed round trip dropped: fields the type does not have.
fn unknown_keys(input: &Value, output: &Value, path: &YamlPath, out: &mut Vec<(YamlPath, String)>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                if v.is_null() {
                    continue;
                }
                match o.get(k) {
                    None => out.push((path.key(k), k.clone())),
                    Some(ov) => unknown_keys(v, ov, &path.key(k), out),
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (n, (iv, ov)) in i.iter().zip(o).enumerate() {
                unknown_keys(iv, ov, &path.index(n), out);
            }
        }
        _ => {}
    }
}

/// The field names of a k8s-openapi struct (or of the items of a list of them), for "did you mean".
fn top_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldCapture { fields: &mut fields });
    fields
}

/// A deserializer that answers nothing but records the field list a struct asks for.
struct FieldCapture<'a> {
    fields: &'a mut &'static [&'static str],
}

impl<'de> serde::Deserializer<'de> for FieldCapture<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("field capture"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.fields = fields;
        Err(serde::de::Error::custom("field capture"))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(OneItem { fields: self.fields })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct tuple tuple_struct map enum identifier ignored_any
    }
}

/// A sequence of one element that is a `FieldCapture`, to reach the item type of a `Vec<T>`.
struct OneItem<'a> {
    fields: &'a mut &'static [&'static str],
}

impl<'de> serde::de::SeqAccess<'de> for OneItem<'_> {
    type Error = serde::de::value::Error;

    fn next_element_seed<S: serde::de::DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Self::Error> {
        seed.deserialize(FieldCapture { fields: self.fields }).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, LocalObjectReference, PodSecurityContext, ResourceRequirements, Toleration, Volume};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn at(p: &str) -> YamlPath {
        YamlPath::parse(p)
    }

    #[test]
    fn gpu_and_numbers_become_quantities() {
        let r = normalize_resources(&json!({"limits": {"gpu": 1, "cpu": 2, "memory": "1Gi"}}));
        assert_eq!(r, json!({"limits": {"nvidia.com/gpu": "1", "cpu": "2", "memory": "1Gi"}}));
        assert!(check::<ResourceRequirements>(&normalize_resources(&json!({"limits": {"gpu": 1}})), &at("mpiWorkers.resources")).is_empty());
    }

    #[test]
    fn wrong_type_names_the_inner_path() {
        let p = check::<PodSecurityContext>(&json!({"runAsUser": "me"}), &at("mpiMaster.securityContext"));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0.as_str(), "mpiMaster.securityContext.runAsUser");
        assert!(p[0].1.contains("invalid type"), "{}", p[0].1);
    }

    #[test]
    fn unknown_fields_with_suggestions() {
        let p = check::<PodSecurityContext>(&json!({"runAsUsr": 1000, "fsGroup": 1000}), &at("m.sc"));
        assert_eq!(p, vec![(at("m.sc.runAsUsr"), "unknown field \"runAsUsr\" (did you mean \"runAsUser\"?)".into())]);
        let p = check::<Vec<Volume>>(&json!([{"name": "a", "emptyDir": {}, "emptydir": {}}]), &at("w.volumes"));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0.as_str(), "w.volumes[0].emptydir");
        assert!(p[0].1.contains("emptyDir"), "{}", p[0].1);
        let p = check::<Affinity>(&json!({"nodeAffinity": {"requiredDuringScheduling": {}}}), &at("a"));
        assert_eq!(p[0].0.as_str(), "a.nodeAffinity.requiredDuringScheduling");
    }

    #[test]
    fn valid_subtrees_pass() {
        assert!(check::<Vec<Toleration>>(&json!([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]), &at("t")).is_empty());
        assert!(check::<BTreeMap<String, String>>(&json!({"disk": "ssd"}), &at("n")).is_empty());
        assert!(!check::<BTreeMap<String, String>>(&json!({"gpu": true}), &at("n")).is_empty());
        assert!(check::<Vec<LocalObjectReference>>(&json!([{"name": "reg"}]), &at("p")).is_empty());
    }
}
