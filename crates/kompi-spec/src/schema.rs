//! The shape of the values file, derived from the typed values model (`values.rs`): each Rust type says
//! how its YAML is checked ([`Schema::NODE`]) and where it sits ([`Schema::Paths`]). Validation (unknown
//! keys, wrong types), the README's table of keys and the builder's error paths all come from it, so
//! no key is spelt twice.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::k8s::SubProblem;
use crate::tree::{YamlPath, describe};

/// Checks one leaf value where it stands in a layer: every problem, each with its path.
pub type Check = fn(&Value, &YamlPath) -> Vec<SubProblem>;

/// A place in the values file.
#[derive(Clone, Copy, Debug)]
pub enum Node {
    Leaf(Check),
    /// Accepted for compatibility with kube-openmpi and ignored, with a warning saying why.
    Ignored(&'static str),
    /// A mapping with exactly these keys.
    Mapping(&'static [Field]),
    /// A list of mappings with these keys.
    List(&'static [Field]),
}

/// One key of a mapping.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub key: &'static str,
    /// What it means, for the README (leaves and lists; empty for mappings).
    pub doc: &'static str,
    pub node: Node,
}

/// A type of the values model: how its YAML is checked, and the YAML paths of its parts.
pub trait Schema {
    /// The paths of this value and its parts: a [`YamlPath`] for a leaf, a struct of them for a mapping.
    type Paths;
    const NODE: Node;
    fn paths(at: YamlPath) -> Self::Paths;
}

/// A mapping of the values model (declared with `section!`), which can also be the item of a list.
pub trait Section: Schema {
    const FIELDS: &'static [Field];
}

/// Declares one mapping of the values file: the struct it deserializes into, the struct of the YAML
/// paths of its keys, and its schema. Each field is written once, with its YAML key and its meaning.
macro_rules! section {
    (
        $(#[$meta:meta])*
        pub struct $name:ident, paths $paths:ident {
            $($(#[doc = $doc:literal])* $field:ident: $ty:ty = $key:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, serde::Deserialize)]
        pub struct $name {
            $($(#[doc = $doc])* #[serde(rename = $key)] pub $field: $ty,)+
        }

        #[doc = concat!("The YAML paths of the keys of [`", stringify!($name), "`].")]
        #[derive(Debug)]
        pub struct $paths {
            /// The mapping itself.
            pub at: $crate::tree::YamlPath,
            $(pub $field: <$ty as $crate::schema::Schema>::Paths,)+
        }

        impl $crate::schema::Section for $name {
            const FIELDS: &'static [$crate::schema::Field] = &[$($crate::schema::Field {
                key: $key,
                doc: concat!($($doc),*),
                node: <$ty as $crate::schema::Schema>::NODE,
            },)+];
        }

        impl $crate::schema::Schema for $name {
            type Paths = $paths;
            const NODE: $crate::schema::Node = $crate::schema::Node::Mapping(<Self as $crate::schema::Section>::FIELDS);
            fn paths(at: $crate::tree::YamlPath) -> $paths {
                $paths { $($field: <$ty as $crate::schema::Schema>::paths(at.key($key)),)+ at }
            }
        }
    };
}

pub(crate) use section;

/// Absent or null: the key falls back to its default (or has none). Checked as the value itself.
impl<T: Schema> Schema for Option<T> {
    type Paths = T::Paths;
    const NODE: Node = T::NODE;
    fn paths(at: YamlPath) -> T::Paths {
        T::paths(at)
    }
}

impl<T: Section> Schema for Vec<T> {
    type Paths = ListPaths<T>;
    const NODE: Node = Node::List(T::FIELDS);
    fn paths(at: YamlPath) -> ListPaths<T> {
        ListPaths { at, item: std::marker::PhantomData }
    }
}

/// The paths of a list of mappings and of its items.
#[derive(Debug)]
pub struct ListPaths<T> {
    pub at: YamlPath,
    item: std::marker::PhantomData<fn() -> T>,
}

impl<T: Section> ListPaths<T> {
    pub fn item(&self, index: usize) -> T::Paths {
        T::paths(self.at.index(index))
    }
}

impl Schema for bool {
    type Paths = YamlPath;
    const NODE: Node = Node::Leaf(|value, at| match value {
        Value::Bool(_) => Vec::new(),
        other => vec![(at.clone(), format!("expected true or false, got {}", describe(other)))],
    });
    fn paths(at: YamlPath) -> YamlPath {
        at
    }
}

/// The check of a leaf type whose deserialization is its whole rule: its error is the problem.
pub fn deserializes<T: DeserializeOwned>(value: &Value, at: &YamlPath) -> Vec<SubProblem> {
    match T::deserialize(value) {
        Ok(_) => Vec::new(),
        Err(e) => vec![(at.clone(), e.to_string())],
    }
}

/// The keys allowed in a mapping, for "did you mean".
pub fn keys(fields: &[Field]) -> Vec<&'static str> {
    fields.iter().map(|f| f.key).collect()
}

/// Every documented key under `fields`, as `kompi values --markdown` lists them: leaves and lists,
/// list items as `list[].key`.
pub fn rows(prefix: &str, fields: &'static [Field]) -> Vec<(String, &'static Field)> {
    let mut out = Vec::new();
    for field in fields {
        let path = if prefix.is_empty() { field.key.to_string() } else { format!("{prefix}.{}", field.key) };
        match field.node {
            Node::Leaf(_) | Node::Ignored(_) => out.push((path, field)),
            Node::Mapping(inner) => out.extend(rows(&path, inner)),
            Node::List(inner) => {
                let items = format!("{path}[]");
                out.push((path, field));
                out.extend(rows(&items, inner));
            }
        }
    }
    out
}

/// The table of values keys for the README: key, default, meaning.
pub fn markdown_table(fields: &'static [Field], defaults: &Value) -> String {
    let mut out = String::from("| key | default | meaning |\n|---|---|---|\n");
    for (path, field) in rows("", fields) {
        let default = crate::tree::get_path(defaults, &path).map(short_default).unwrap_or_default();
        out.push_str(&format!("| `{path}` | {default} | {} |\n", field.doc.trim().replace('|', "\\|")));
    }
    out
}

fn short_default(v: &Value) -> String {
    match v {
        Value::String(s) if s.contains('\n') => "(see `kompi values`)".into(),
        Value::String(s) if s.is_empty() => "`\"\"`".into(),
        Value::String(s) => format!("`{s}`"),
        Value::Object(m) if m.is_empty() => "`{}`".into(),
        Value::Array(a) if a.is_empty() => "`[]`".into(),
        other => format!("`{other}`"),
    }
}
