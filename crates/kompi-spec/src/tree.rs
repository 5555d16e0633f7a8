//! The untyped values tree: parsing one YAML source, Helm's deep merge, and where each value came from.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// Where a value came from, so that every problem names its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// kompi's built-in defaults (`kompi values`).
    Defaults,
    /// A values file given with `-f`.
    File(String),
    /// A `--set` or `--set-string` flag.
    Flag(String),
    /// A command-line argument such as the cluster NAME.
    Argument(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Defaults => f.write_str("kompi defaults"),
            Origin::File(path) => f.write_str(path),
            Origin::Flag(flag) => f.write_str(flag),
            Origin::Argument(name) => write!(f, "argument {name}"),
        }
    }
}

/// One layer of values: a parsed file or a parsed `--set` flag.
#[derive(Clone)]
pub struct Layer {
    pub origin: Origin,
    pub tree: Value,
}

impl fmt::Debug for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layer").field("origin", &self.origin).field("tree", &redacted(&self.tree)).finish()
    }
}

/// A values tree with the private key replaced, for Debug output.
pub fn redacted(tree: &Value) -> Value {
    let mut tree = tree.clone();
    if let Some(key) = tree.get_mut("sshKey").and_then(|k| k.get_mut("id_rsa")).filter(|k| !k.is_null()) {
        *key = Value::from("<redacted>");
    }
    tree
}

/// A dotted YAML path as users write it: `mpiWorkers.num`, `appCodesToSync[0].name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YamlPath(String);

impl YamlPath {
    pub fn root() -> Self {
        YamlPath(String::new())
    }

    pub fn parse(dotted: &str) -> Self {
        YamlPath(dotted.to_string())
    }

    pub fn key(&self, key: &str) -> Self {
        if self.0.is_empty() { YamlPath(key.to_string()) } else { YamlPath(format!("{}.{key}", self.0)) }
    }

    pub fn index(&self, index: usize) -> Self {
        YamlPath(format!("{}[{index}]", self.0))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The enclosing path, `None` at the root.
    pub fn parent(&self) -> Option<Self> {
        if self.0.is_empty() {
            return None;
        }
        let cut = self.0.rfind(['.', '[']).unwrap_or(0);
        Some(YamlPath(self.0[..cut].to_string()))
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() { f.write_str("(top level)") } else { f.write_str(&self.0) }
    }
}

/// Parses one YAML values document. An empty document is an empty mapping.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    let value: Value = serde_saphyr::from_str(text).map_err(|e| one_line(&e.to_string()))?;
    Ok(if value.is_null() { Value::Object(Map::new()) } else { value })
}

/// Error texts of the YAML parser can span lines (with a snippet); keep the first meaningful line.
fn one_line(message: &str) -> String {
    message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("malformed YAML").to_string()
}

/// The merged values and the origin of each value in them.
#[derive(Clone)]
pub struct Merged {
    pub tree: Value,
    origins: BTreeMap<YamlPath, Origin>,
}

impl fmt::Debug for Merged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merged").field("tree", &redacted(&self.tree)).field("origins", &self.origins).finish()
    }
}

impl Merged {
    /// Merges layers in order, later wins, with Helm's rule: mappings merge key by key, anything else
    /// (scalars, lists) is replaced whole. A `null` resets the key to its default (or removes it when
    /// the defaults have no such key).
    pub fn new(defaults: &Layer, layers: &[Layer]) -> Self {
        let mut merged = Merged { tree: defaults.tree.clone(), origins: BTreeMap::new() };
        record_origins(&mut merged.origins, &YamlPath::root(), &defaults.tree, &defaults.origin);
        for layer in layers {
            merge_into(&mut merged, &defaults.tree, &YamlPath::root(), &layer.tree, &layer.origin);
        }
        merged
    }

    /// The source of the value at `path`: the last layer that set it or one of its parents.
    pub fn origin(&self, path: &YamlPath) -> Origin {
        let mut at = Some(path.clone());
        while let Some(p) = at {
            if let Some(origin) = self.origins.get(&p) {
                return origin.clone();
            }
            at = p.parent();
        }
        Origin::Defaults
    }

    /// The value at a dotted path of mapping keys (no list indexes), `None` if absent or null.
    pub fn get(&self, dotted: &str) -> Option<&Value> {
        get_path(&self.tree, dotted)
    }
}

pub fn get_path<'a>(tree: &'a Value, dotted: &str) -> Option<&'a Value> {
    let mut node = tree;
    for key in dotted.split('.') {
        node = node.as_object()?.get(key)?;
    }
    (!node.is_null()).then_some(node)
}

fn record_origins(origins: &mut BTreeMap<YamlPath, Origin>, path: &YamlPath, value: &Value, origin: &Origin) {
    origins.insert(path.clone(), origin.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                record_origins(origins, &path.key(k), v, origin);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                record_origins(origins, &path.index(i), v, origin);
            }
        }
        _ => {}
    }
}

fn merge_into(merged: &mut Merged, defaults: &Value, path: &YamlPath, src: &Value, origin: &Origin) {
    let Value::Object(src_map) = src else { return };
    for (key, value) in src_map {
        let child = path.key(key);
        let default = get_path(defaults, child.as_str());
        let dst = node_mut(&mut merged.tree, path);
        let Some(dst_map) = dst.as_object_mut() else { return };
        match (value, dst_map.get(key)) {
            (Value::Null, _) => match default {
                Some(d) => {
                    dst_map.insert(key.clone(), d.clone());
                    record_origins(&mut merged.origins, &child, d, &Origin::Defaults);
                }
                None => {
                    dst_map.remove(key);
                }
            },
            (Value::Object(_), Some(Value::Object(_))) => {
                merged.origins.insert(child.clone(), origin.clone());
                merge_into(merged, defaults, &child, value, origin);
            }
            _ => {
                dst_map.insert(key.clone(), value.clone());
                record_origins(&mut merged.origins, &child, value, origin);
            }
        }
    }
}

/// The node at a path of mapping keys; every step exists because `merge_into` only descends into mappings.
fn node_mut<'a>(tree: &'a mut Value, path: &YamlPath) -> &'a mut Value {
    let mut node = tree;
    if path.is_root() {
        return node;
    }
    for key in path.as_str().split('.') {
        node = node.as_object_mut().and_then(|m| m.get_mut(key)).expect("merge descends only into existing mappings");
    }
    node
}

/// A short rendering of a value for error messages: `"four"`, `4.5`, `a list`.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() > 40 => format!("{:?}…", s.chars().take(40).collect::<String>()),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layer(origin: &str, tree: Value) -> Layer {
        Layer { origin: Origin::File(origin.into()), tree }
    }

    #[test]
    fn later_layers_win_and_maps_merge_deeply() {
        let defaults = Layer { origin: Origin::Defaults, tree: json!({"a": {"b": 1, "c": 2}, "l": [1, 2]}) };
        let merged = Merged::new(
            &defaults,
            &[layer("one.yaml", json!({"a": {"b": 10}, "l": [3]})), layer("two.yaml", json!({"a": {"c": 20}}))],
        );
        assert_eq!(merged.tree, json!({"a": {"b": 10, "c": 20}, "l": [3]}));
        assert_eq!(merged.origin(&YamlPath::parse("a.b")), Origin::File("one.yaml".into()));
        assert_eq!(merged.origin(&YamlPath::parse("a.c")), Origin::File("two.yaml".into()));
        assert_eq!(merged.origin(&YamlPath::parse("l[0]")), Origin::File("one.yaml".into()));
    }

    #[test]
    fn null_resets_to_default_or_removes() {
        let defaults = Layer { origin: Origin::Defaults, tree: json!({"a": {"b": 1}, "m": {}}) };
        let merged = Merged::new(
            &defaults,
            &[layer("one.yaml", json!({"a": {"b": 5}, "m": {"x": "1"}})), layer("two.yaml", json!({"a": {"b": null}, "m": {"x": null}}))],
        );
        assert_eq!(merged.tree, json!({"a": {"b": 1}, "m": {}}));
        assert_eq!(merged.origin(&YamlPath::parse("a.b")), Origin::Defaults);
    }

    #[test]
    fn scalar_replaces_mapping_and_back() {
        let defaults = Layer { origin: Origin::Defaults, tree: json!({"a": {"b": 1}}) };
        let merged = Merged::new(&defaults, &[layer("x", json!({"a": 3})), layer("y", json!({"a": {"c": 1}}))]);
        assert_eq!(merged.tree, json!({"a": {"c": 1}}));
    }

    #[test]
    fn paths_render_and_have_parents() {
        let p = YamlPath::root().key("appCodesToSync").index(3).key("name");
        assert_eq!(p.as_str(), "appCodesToSync[3].name");
        assert_eq!(p.parent().unwrap().as_str(), "appCodesToSync[3]");
        assert_eq!(p.parent().unwrap().parent().unwrap().as_str(), "appCodesToSync");
    }

    #[test]
    fn empty_document_is_empty_mapping_and_bad_yaml_is_one_line() {
        assert_eq!(parse_yaml("").unwrap(), json!({}));
        assert_eq!(parse_yaml("# only a comment\n").unwrap(), json!({}));
        let err = parse_yaml("a: [1, 2\nb: c").unwrap_err();
        assert!(!err.contains('\n'), "{err}");
    }
}
