//! Structural checks of one values layer against the schema: unknown keys, wrong types, out-of-range
//! numbers. Every problem is collected, not just the first.

use serde_json::Value;

use crate::error::Problem;
use crate::k8s;
use crate::schema::{self, Kind};
use crate::tree::{Layer, YamlPath, describe};

/// Checks a layer; also returns warnings for keys that are accepted but ignored.
pub fn check_layer(layer: &Layer) -> (Vec<Problem>, Vec<String>) {
    let mut walk = Walk { layer, problems: Vec::new(), warnings: Vec::new() };
    match &layer.tree {
        Value::Object(_) => walk.mapping(&layer.tree, &YamlPath::root()),
        other => walk.problem(&YamlPath::root(), format!("expected a mapping of values keys, got {}", describe(other))),
    }
    (walk.problems, walk.warnings)
}

struct Walk<'a> {
    layer: &'a Layer,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Walk<'_> {
    fn problem(&mut self, path: &YamlPath, message: String) {
        self.problems.push(Problem { origin: self.layer.origin.clone(), path: path.clone(), message });
    }

    fn mapping(&mut self, node: &Value, path: &YamlPath) {
        let Value::Object(map) = node else {
            self.problem(path, format!("expected a mapping, got {}", describe(node)));
            return;
        };
        let here = path.pattern();
        for (key, value) in map {
            let child = path.key(key);
            let pattern = child.pattern();
            if !schema::is_known(&pattern) {
                let hint = did_you_mean(key, &schema::children(&here)).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
                let scope = if path.is_root() { "a top-level values key".to_string() } else { format!("a key of {path}") };
                self.problem(&child, format!("unknown key: {key:?} is not {scope}{hint}"));
                continue;
            }
            if value.is_null() {
                continue;
            }
            match schema::entry(&pattern) {
                Some(entry) => self.leaf(entry.kind, value, &child),
                None => self.mapping(value, &child),
            }
        }
    }

    fn leaf(&mut self, kind: Kind, value: &Value, path: &YamlPath) {
        let got = describe(value);
        match kind {
            Kind::Bool => {
                if !value.is_boolean() {
                    self.problem(path, format!("expected true or false, got {got}"));
                }
            }
            Kind::Int { min, max } => match value.as_i64() {
                Some(n) if (min..=max).contains(&n) => {}
                Some(n) if n < min && min == 0 => self.problem(path, format!("expected a non-negative integer, got {n}")),
                Some(n) => self.problem(path, format!("expected an integer from {min} to {max}, got {n}")),
                None => {
                    let what = if min == 0 { "a non-negative integer".to_string() } else { format!("an integer from {min} to {max}") };
                    let hint = if value.as_str().is_some_and(|s| s.parse::<i64>().is_ok()) { " (write it without quotes)" } else { "" };
                    self.problem(path, format!("expected {what}, got {got}{hint}"));
                }
            },
            Kind::Str { nonempty } => match value {
                Value::String(s) if nonempty && s.trim().is_empty() => self.problem(path, "must not be empty".into()),
                Value::String(_) => {}
                // YAML reads `tag: 1.10` as a number; Helm would print it back as text, so accept it.
                Value::Number(_) | Value::Bool(_) => {}
                _ => self.problem(path, format!("expected a string, got {got}")),
            },
            Kind::Enum(words) => match value.as_str() {
                Some(s) if words.contains(&s) => {}
                _ => {
                    let hint = value.as_str().and_then(|s| did_you_mean(s, words)).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
                    self.problem(path, format!("expected one of {}, got {got}{hint}", words.join(", ")));
                }
            },
            Kind::Digits => {
                let ok = value.as_u64().is_some() || value.as_str().is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
                if !ok {
                    self.problem(path, format!("expected a non-negative number of seconds, got {got}"));
                }
            }
            Kind::ScalarMap => match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        if v.is_object() || v.is_array() {
                            self.problem(&path.key(k), format!("expected a single value, got {}", describe(v)));
                        }
                    }
                }
                _ => self.problem(path, format!("expected a mapping of names to values, got {got}")),
            },
            Kind::List => match value {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.mapping(item, &path.index(i));
                    }
                }
                _ => self.problem(path, format!("expected a list, got {got}")),
            },
            Kind::K8s(ty) => {
                for (at, message) in k8s::check(ty, value, path) {
                    self.problem(&at, message);
                }
            }
            Kind::Ignored(why) => self.warnings.push(format!("{}: {path} is ignored: {why}", self.layer.origin)),
        }
    }
}

/// The closest allowed word to a misspelt one, if any is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    if let Some(exact) = candidates.iter().find(|c| c.to_ascii_lowercase() == lower) {
        return Some(exact);
    }
    // A likely typo: one or two edits away (transpositions count once), or a close Jaro-Winkler match.
    candidates
        .iter()
        .filter_map(|c| {
            let c_lower = c.to_ascii_lowercase();
            let edits = strsim::osa_distance(&lower, &c_lower);
            let similarity = strsim::jaro_winkler(&lower, &c_lower);
            let close = (edits <= 2 && lower.len() > 2 && edits < c_lower.len()) || similarity >= 0.85;
            close.then_some((edits, -similarity, *c))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|(_, _, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Origin;
    use serde_json::json;

    fn problems(tree: Value) -> Vec<String> {
        let (p, _) = check_layer(&Layer { origin: Origin::File("values.yaml".into()), tree });
        p.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_issue_example() {
        assert_eq!(
            problems(json!({"mpiWorkers": {"num": "four"}})),
            vec!["values.yaml: mpiWorkers.num: expected a non-negative integer, got \"four\""]
        );
    }

    #[test]
    fn all_problems_are_collected_with_suggestions() {
        let p = problems(json!({
            "mpiWorker": {"num": 2},
            "mpiMaster": {"oneshot": {"enabled": true}, "securityContext": {"runAsUser": "root"}},
            "networkPolicy": {"enabled": "yes"},
            "mpiWorkers": {"num": -1, "podManagementPolicy": "parallel"},
            "appCodesToSync": [{"name": "a", "gitrepo": "x"}],
        }));
        assert_eq!(p.len(), 7, "{p:#?}");
        assert!(p.contains(&"values.yaml: mpiWorker: unknown key: \"mpiWorker\" is not a top-level values key (did you mean \"mpiWorkers\"?)".to_string()), "{p:#?}");
        assert!(p.iter().any(|l| l.contains("mpiMaster.oneshot: unknown key") && l.contains("\"oneShot\"")));
        assert!(p.iter().any(|l| l.contains("mpiMaster.securityContext.runAsUser: invalid type")));
        assert!(p.iter().any(|l| l.contains("networkPolicy.enabled: expected true or false, got \"yes\"")));
        assert!(p.iter().any(|l| l.contains("mpiWorkers.num: expected a non-negative integer, got -1")));
        assert!(p.iter().any(|l| l.contains("did you mean \"Parallel\"")));
        assert!(p.iter().any(|l| l.contains("appCodesToSync[0].gitrepo: unknown key") && l.contains("\"gitRepo\"")));
    }

    #[test]
    fn nulls_and_kube_openmpi_values_are_fine() {
        let tree = crate::tree::parse_yaml(include_str!("defaults.yaml")).unwrap();
        let (p, w) = check_layer(&Layer { origin: Origin::Defaults, tree });
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(w.len(), 4, "{w:?}");
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        assert_eq!(problems(json!([1])), vec!["values.yaml: (top level): expected a mapping of values keys, got a list"]);
    }
}
