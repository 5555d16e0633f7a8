//! Structural checks of one values layer against the schema of the values model: unknown keys, wrong
//! types, out-of-range numbers. Every problem is collected, not just the first.

use serde_json::Value;

use crate::error::Problem;
use crate::schema::{self, Field, Node, Section};
use crate::tree::{Layer, YamlPath, describe};
use crate::values::Values;

/// Checks a layer; also returns warnings for keys that are accepted but ignored.
pub fn check_layer(layer: &Layer) -> (Vec<Problem>, Vec<String>) {
    let mut walk = Walk { layer, problems: Vec::new(), warnings: Vec::new() };
    match &layer.tree {
        Value::Object(_) => walk.mapping(&layer.tree, Values::FIELDS, &YamlPath::root()),
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

    fn mapping(&mut self, node: &Value, fields: &[Field], path: &YamlPath) {
        let Value::Object(map) = node else {
            self.problem(path, format!("expected a mapping, got {}", describe(node)));
            return;
        };
        for (key, value) in map {
            let child = path.key(key);
            let Some(field) = fields.iter().find(|f| f.key == key) else {
                let hint = did_you_mean(key, &schema::keys(fields)).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
                let scope = if path.is_root() { "a top-level values key".to_string() } else { format!("a key of {path}") };
                self.problem(&child, format!("unknown key: {key:?} is not {scope}{hint}"));
                continue;
            };
            if value.is_null() {
                continue;
            }
            match field.node {
                Node::Leaf(check) => {
                    for (at, message) in check(value, &child) {
                        self.problem(&at, message);
                    }
                }
                Node::Ignored(why) => self.warnings.push(format!("{}: {child} is ignored: {why}", self.layer.origin)),
                Node::Mapping(inner) => self.mapping(value, inner, &child),
                Node::List(item) => match value {
                    Value::Array(items) => {
                        for (i, v) in items.iter().enumerate() {
                            self.mapping(v, item, &child.index(i));
                        }
                    }
                    _ => self.problem(&child, format!("expected a list, got {}", describe(value))),
                },
            }
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
