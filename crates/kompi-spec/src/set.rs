//! Helm's `--set` / `--set-string` syntax: `a.b=c,x[0].y=z`, lists as `{a,b}`, `\` escapes `.` `,` `=` `[`.

use serde_json::{Map, Number, Value};

use crate::limits::MAX_SET_INDEX;

/// Parses one `--set` argument into a values tree. `strings` is `--set-string`: no type inference.
pub fn parse_set(arg: &str, strings: bool) -> Result<Value, String> {
    let mut tree = Value::Object(Map::new());
    for assignment in split_unescaped(arg, ',', true) {
        if assignment.is_empty() {
            continue;
        }
        let (key, value) = split_once_unescaped(&assignment, '=')
            .ok_or_else(|| format!("{assignment:?} is not KEY=VALUE (for example mpiWorkers.num=3)"))?;
        let steps = parse_key(&key)?;
        let value = parse_value(&value, strings);
        assign(&mut tree, &steps, value).map_err(|e| format!("{key}: {e}"))?;
    }
    Ok(tree)
}

#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn parse_key(key: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for segment in split_unescaped(key, '.', false) {
        let (name, mut rest) = match find_unescaped(&segment, '[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment.as_str(), ""),
        };
        let name = unescape(name);
        if name.is_empty() {
            return Err(format!("{key:?} has an empty key segment"));
        }
        steps.push(Step::Key(name));
        while !rest.is_empty() {
            let close = rest.find(']').ok_or_else(|| format!("{key:?}: missing ']'"))?;
            let index: usize = rest[1..close]
                .parse()
                .map_err(|_| format!("{key:?}: list index {:?} is not a non-negative integer", &rest[1..close]))?;
            if index > MAX_SET_INDEX {
                return Err(format!("{key:?}: list index {index} is too large"));
            }
            steps.push(Step::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!("{key:?}: unexpected {rest:?} after ']'"));
            }
        }
    }
    if steps.is_empty() {
        return Err("empty key".into());
    }
    Ok(steps)
}

fn parse_value(raw: &str, strings: bool) -> Value {
    if !strings && raw.starts_with('{') && raw.ends_with('}') && raw.len() >= 2 {
        let inner = &raw[1..raw.len() - 1];
        if inner.is_empty() {
            return Value::Array(Vec::new());
        }
        return Value::Array(split_unescaped(inner, ',', false).iter().map(|v| typed(&unescape(v))).collect());
    }
    let raw = unescape(raw);
    if strings { Value::String(raw) } else { typed(&raw) }
}

/// Helm's type inference for `--set`: booleans, null, 64-bit integers (not with a leading zero); the rest are strings.
fn typed(raw: &str) -> Value {
    match raw {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        "null" => return Value::Null,
        _ => {}
    }
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let leading_zero = digits.len() > 1 && digits.starts_with('0');
    if !leading_zero && let Ok(n) = raw.parse::<i64>() {
        return Value::Number(Number::from(n));
    }
    Value::String(raw.to_string())
}

fn assign(node: &mut Value, steps: &[Step], value: Value) -> Result<(), String> {
    let Some((step, rest)) = steps.split_first() else {
        *node = value;
        return Ok(());
    };
    match step {
        Step::Key(key) => {
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            let map = node.as_object_mut().expect("made a mapping above");
            let child = map.entry(key.clone()).or_insert(Value::Null);
            assign(child, rest, value)
        }
        Step::Index(index) => {
            if !node.is_array() {
                *node = Value::Array(Vec::new());
            }
            let items = node.as_array_mut().expect("made a list above");
            if items.len() <= *index {
                items.resize(index + 1, Value::Null);
            }
            assign(&mut items[*index], rest, value)
        }
    }
}

/// Splits on `sep` where it is not escaped with `\`; with `braces`, not inside `{...}` either.
fn split_unescaped(s: &str, sep: char, braces: bool) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                current.push(c);
                if let Some(n) = chars.next() {
                    current.push(n);
                }
            }
            '{' if braces => {
                depth += 1;
                current.push(c);
            }
            '}' if braces => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            _ if c == sep && depth == 0 => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
}

fn find_unescaped(s: &str, target: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == target {
            return Some(i);
        }
    }
    None
}

fn split_once_unescaped(s: &str, sep: char) -> Option<(String, String)> {
    let i = find_unescaped(s, sep)?;
    Some((s[..i].to_string(), s[i + sep.len_utf8()..].to_string()))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_keys_and_types() {
        assert_eq!(
            parse_set("mpiWorkers.num=3,networkPolicy.enabled=true,image.tag=0.7.0", false).unwrap(),
            json!({"mpiWorkers": {"num": 3}, "networkPolicy": {"enabled": true}, "image": {"tag": "0.7.0"}})
        );
    }

    #[test]
    fn set_string_keeps_text() {
        assert_eq!(parse_set("a=true,b=012", true).unwrap(), json!({"a": "true", "b": "012"}));
        assert_eq!(parse_set("b=012,c=-5,d=null", false).unwrap(), json!({"b": "012", "c": -5, "d": null}));
    }

    #[test]
    fn list_indexes_and_literals() {
        assert_eq!(
            parse_set("appCodesToSync[1].name=x,l={a,2,true}", false).unwrap(),
            json!({"appCodesToSync": [null, {"name": "x"}], "l": ["a", 2, true]})
        );
        assert_eq!(parse_set("m[0][1]=v", false).unwrap(), json!({"m": [[null, "v"]]}));
    }

    #[test]
    fn escapes() {
        assert_eq!(
            parse_set(r"mpiWorkers.nodeSelector.kubernetes\.io/hostname=n1,s=a\,b", false).unwrap(),
            json!({"mpiWorkers": {"nodeSelector": {"kubernetes.io/hostname": "n1"}}, "s": "a,b"})
        );
        assert_eq!(parse_set("k=a=b", false).unwrap(), json!({"k": "a=b"}));
    }

    #[test]
    fn errors_are_explained() {
        assert!(parse_set("novalue", false).unwrap_err().contains("KEY=VALUE"));
        assert!(parse_set("a[x]=1", false).unwrap_err().contains("list index"));
        assert!(parse_set("a..b=1", false).unwrap_err().contains("empty key"));
        assert!(parse_set("a[1=1", false).unwrap_err().contains("]"));
    }
}
