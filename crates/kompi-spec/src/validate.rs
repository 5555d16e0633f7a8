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

/// An Open MPI MCA parameter as kompi writes it (`name = value`, one a line, in mca-params.conf)
/// and passes it on command lines.
pub fn check_mca(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("{name:?}: an MCA parameter name has only letters, digits and '_'"));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!("the value of {name} contains the control character {c:?}, which would break its line in mca-params.conf; remove it"));
    }
    Ok(())
}

/// `--mca NAME=VALUE` (kompi run, kompi local run, kompi init): trimmed and checked like the values' mcaParams.
pub fn mca_parameter(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("{text:?} is not NAME=VALUE (for example btl_tcp_if_include=eth0)"))?;
    let (name, value) = (name.trim(), value.trim());
    check_mca(name, value)?;
    Ok((name.to_string(), value.to_string()))
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
    fn control_characters_are_refused_where_a_line_break_would_inject_a_line() {
        let p = problems(json!({
            "image": {"repository": "kompi/runtime\nEVIL", "tag": "1\u{1b}[2J"},
            "appCodesToSync": [{"name": "a", "gitRepo": "https://h/r.git\r\nx", "gitBranch": "main\u{0}", "mountPath": "/a"}],
            "mpiMaster": {"oneShot": {"command": "mpiexec \\\n  -n 2\thostname\n"}},
        }));
        let at: Vec<&str> = p.iter().map(|l| l.split(": ").nth(1).unwrap()).collect();
        assert_eq!(at, ["image.repository", "image.tag", "appCodesToSync[0].gitRepo", "appCodesToSync[0].gitBranch"], "{p:#?}");
        assert!(p[0].ends_with("contains the control character '\\n', which would break the line it is written into; remove it"), "{}", p[0]);
        let key = |public: &str| problems(json!({"sshKey": {"id_rsa": "-----BEGIN\r\nx\n-----END\n", "id_rsa_pub": public}}));
        assert!(key("ssh-ed25519 AAAA c\n").is_empty());
        assert_eq!(key("ssh-ed25519 AAAA c\nssh-ed25519 BBBB attacker\n").len(), 1);
    }

    #[test]
    fn mca_parameters_are_one_line_each() {
        assert_eq!(mca_parameter(" btl_tcp_if_include = eth0 ").unwrap(), ("btl_tcp_if_include".into(), "eth0".into()));
        assert_eq!(mca_parameter("pml=").unwrap(), ("pml".into(), String::new()));
        assert!(mca_parameter("btl_tcp_if_include=eth0\nplm_rsh_agent = evil").unwrap_err().contains("control character"));
        assert!(mca_parameter("a b=1").unwrap_err().contains("letters, digits"));
        assert!(mca_parameter("=1").is_err());
        assert!(mca_parameter("novalue").unwrap_err().contains("NAME=VALUE"));
    }

    #[test]
    fn wait_seconds_must_fit() {
        let at = |v: Value| problems(json!({"appCodesToSync": [{"name": "a", "gitRepo": "r", "mountPath": "/a", "fetchWaitSecond": v}]}));
        assert!(at(json!("120")).is_empty());
        assert!(at(json!(86_400)).is_empty());
        for bad in [json!("99999999999999999999"), json!(86_401), json!(-1), json!("1.5"), json!("")] {
            let p = at(bad.clone());
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(p[0].contains("expected a number of seconds from 0 to 86400"), "{}", p[0]);
        }
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        assert_eq!(problems(json!([1])), vec!["values.yaml: (top level): expected a mapping of values keys, got a list"]);
    }
}
