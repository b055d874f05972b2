//! Label selector evaluation, as the API server and scheduler define it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A selector that cannot be evaluated, such as one with an unknown operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// Does `selector` select an object with `labels`?
///
/// An empty selector (`{}`) selects everything; whether a missing selector selects nothing or
/// everything depends on the field, so callers decide that before calling.
pub fn selects(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    if let Some(match_labels) = &selector.match_labels {
        for (key, value) in match_labels {
            if labels.get(key) != Some(value) {
                return Ok(false);
            }
        }
    }
    for expr in selector.match_expressions.iter().flatten() {
        let actual = labels.get(&expr.key);
        let values = expr.values.as_deref().unwrap_or_default();
        let matched = match expr.operator.as_str() {
            "In" => actual.is_some_and(|v| values.contains(v)),
            "NotIn" => actual.is_none_or(|v| !values.contains(v)),
            "Exists" => actual.is_some(),
            "DoesNotExist" => actual.is_none(),
            other => {
                return Err(SelectorError(format!(
                    "matchExpressions key {:?} has unknown operator {other:?}",
                    expr.key
                )));
            }
        };
        if !matched {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Renders a selector compactly for messages: `app=web,tier in (a,b)`.
pub fn describe_selector(selector: &LabelSelector) -> String {
    let mut out = String::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        push_sep(&mut out);
        let _ = write!(out, "{k}={v}");
    }
    for e in selector.match_expressions.iter().flatten() {
        push_sep(&mut out);
        let values = e.values.as_deref().unwrap_or_default().join(",");
        let _ = match e.operator.as_str() {
            "Exists" => write!(out, "{}", e.key),
            "DoesNotExist" => write!(out, "!{}", e.key),
            op => write!(out, "{} {} ({values})", e.key, op.to_lowercase()),
        };
    }
    if out.is_empty() { "{}".to_owned() } else { out }
}

/// Renders a label map for messages: `app=web,tier=api`.
pub fn describe_labels(labels: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (k, v) in labels {
        push_sep(&mut out);
        let _ = write!(out, "{k}={v}");
    }
    if out.is_empty() {
        "(none)".to_owned()
    } else {
        out
    }
}

fn push_sep(out: &mut String) {
    if !out.is_empty() {
        out.push(',');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(v: serde_json::Value) -> LabelSelector {
        serde_json::from_value(v).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn table() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let cases = [
            (json!({}), true),
            (json!({"matchLabels": {"app": "web"}}), true),
            (json!({"matchLabels": {"app": "api"}}), false),
            (json!({"matchLabels": {"app": "web", "zone": "x"}}), false),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api", "web"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["web"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]}),
                false,
            ),
        ];
        for (selector, expected) in cases {
            assert_eq!(
                selects(&sel(selector.clone()), &web),
                Ok(expected),
                "{selector}"
            );
        }
    }

    #[test]
    fn unknown_operator_is_an_error() {
        let s = sel(json!({"matchExpressions": [{"key": "app", "operator": "Matches"}]}));
        assert!(selects(&s, &labels(&[])).unwrap_err().0.contains("Matches"));
    }

    #[test]
    fn description_is_compact() {
        let s = sel(
            json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "t", "operator": "In", "values": ["a", "b"]}, {"key": "x", "operator": "Exists"}]}),
        );
        assert_eq!(describe_selector(&s), "app=web,t in (a,b),x");
    }
}
