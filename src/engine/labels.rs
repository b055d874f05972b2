//! Label selector evaluation, as the API server and scheduler define it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::finding::safe_text;

/// A selector that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("matchExpressions key {key:?} has unknown operator {operator:?}")]
    UnknownOperator { key: String, operator: String },
}

/// The string entries of a JSON map (labels as an object carries them); other values are
/// left out.
pub fn string_map(map: &serde_json::Map<String, serde_json::Value>) -> BTreeMap<String, String> {
    map.iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

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
                return Err(SelectorError::UnknownOperator {
                    key: expr.key.clone(),
                    operator: other.to_owned(),
                });
            }
        };
        if !matched {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Items a description lists before it says "and N more": a message must stay short however
/// many labels a tenant's object carries.
pub const MAX_LISTED: usize = 4;
/// Characters of one listed item (a label, a requirement).
const MAX_ITEM_CHARS: usize = 80;

/// Renders a selector compactly for messages: `app=web,tier in (a,b)`, at most
/// [`MAX_LISTED`] requirements.
pub fn describe_selector(selector: &LabelSelector) -> String {
    let labels = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"));
    let exprs = selector.match_expressions.iter().flatten().map(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            op => format!(
                "{} {} ({})",
                e.key,
                op.to_lowercase(),
                bounded_list(values.iter().cloned(), values.len())
            ),
        }
    });
    let total = selector.match_labels.as_ref().map_or(0, |m| m.len())
        + selector.match_expressions.as_ref().map_or(0, |e| e.len());
    let out = bounded_list(labels.chain(exprs), total);
    if out.is_empty() { "{}".to_owned() } else { out }
}

/// Renders a label map for messages: `app=web,tier=api`, at most [`MAX_LISTED`] labels.
pub fn describe_labels(labels: &BTreeMap<String, String>) -> String {
    let out = bounded_list(labels.iter().map(|(k, v)| format!("{k}={v}")), labels.len());
    if out.is_empty() {
        "(none)".to_owned()
    } else {
        out
    }
}

/// The first [`MAX_LISTED`] of `total` items, comma-separated, each cut to
/// [`MAX_ITEM_CHARS`] and made safe to echo, then "… and N more".
fn bounded_list(items: impl Iterator<Item = String>, total: usize) -> String {
    let mut out = String::new();
    for item in items.take(MAX_LISTED) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&safe_text(item, MAX_ITEM_CHARS));
    }
    if total > MAX_LISTED {
        let _ = write!(out, ",… and {} more", total - MAX_LISTED);
    }
    out
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
        assert!(
            selects(&s, &labels(&[]))
                .unwrap_err()
                .to_string()
                .contains("Matches")
        );
    }

    #[test]
    fn descriptions_list_a_few_items_then_count_the_rest() {
        let many: BTreeMap<String, String> = (0..1000)
            .map(|i| (format!("k{i:04}"), "v".repeat(500)))
            .collect();
        let d = describe_labels(&many);
        assert!(d.ends_with(",… and 996 more"), "{d}");
        assert!(d.chars().count() < 5 * 90, "{}", d.len());
        let s = sel(
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": (0..500).map(|i| i.to_string()).collect::<Vec<_>>()}]}),
        );
        assert_eq!(describe_selector(&s), "app in (0,1,2,3,… and 496 more)");
        let evil = labels(&[("a", "x\ny")]);
        assert_eq!(describe_labels(&evil), "a=x\\ny");
    }

    #[test]
    fn description_is_compact() {
        let s = sel(
            json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "t", "operator": "In", "values": ["a", "b"]}, {"key": "x", "operator": "Exists"}]}),
        );
        assert_eq!(describe_selector(&s), "app=web,t in (a,b),x");
    }
}
