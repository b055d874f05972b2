//! Reading Kubernetes manifests: multi-document YAML or JSON, with `kind: List` expanded.
//! Errors name the line, so a user can find a broken document in a thousand-line file.

use serde::Deserialize;
use serde_json::Value;

/// A document that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct ParseError {
    /// 1-based line of the error, when the parser knows it.
    pub line: Option<usize>,
    pub message: String,
}

/// One object from a manifest stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 0-based position of the YAML document in its stream.
    pub index: usize,
    /// Position inside a `kind: List` document's `items`, when it came from one.
    pub item: Option<usize>,
    pub value: Value,
}

impl Document {
    /// `#3`, or `#3/items/1` for an item of a List: appended to the file name in reports.
    pub fn anchor(&self) -> String {
        match self.item {
            None => format!("#{}", self.index),
            Some(i) => format!("#{}/items/{i}", self.index),
        }
    }
}

/// Parses a YAML stream (JSON is YAML too) into its objects. Empty documents are dropped;
/// `kind: List` (and `*List` kinds such as `NodeList`) documents are expanded into their items.
pub fn parse(text: &str, json: bool) -> Result<Vec<Document>, ParseError> {
    let raw = if json {
        parse_json(text)?
    } else {
        parse_yaml(text)?
    };
    let mut out = Vec::with_capacity(raw.len());
    for (index, value) in raw {
        match value {
            Value::Null => {}
            Value::Object(_) if is_list(&value) => {
                let Some(Value::Array(items)) = value.get("items") else {
                    return Err(ParseError {
                        line: None,
                        message: format!("document {index}: a List without items"),
                    });
                };
                for (i, item) in items.iter().enumerate() {
                    out.push(Document {
                        index,
                        item: Some(i),
                        value: item.clone(),
                    });
                }
            }
            Value::Object(_) => out.push(Document {
                index,
                item: None,
                value,
            }),
            other => {
                return Err(ParseError {
                    line: None,
                    message: format!("document {index} is not an object but {}", short(&other)),
                });
            }
        }
    }
    Ok(out)
}

fn is_list(value: &Value) -> bool {
    value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && value.get("items").is_some()
}

fn parse_yaml(text: &str) -> Result<Vec<(usize, Value)>, ParseError> {
    let mut docs = Vec::new();
    for (index, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| ParseError {
            line: e.location().map(|l| l.line()),
            message: strip_location(&e.to_string()),
        })?;
        docs.push((index, value));
    }
    Ok(docs)
}

fn parse_json(text: &str) -> Result<Vec<(usize, Value)>, ParseError> {
    let mut docs = Vec::new();
    for (index, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        let value = value.map_err(|e| ParseError {
            line: Some(e.line()),
            message: e.to_string(),
        })?;
        docs.push((index, value));
    }
    Ok(docs)
}

/// serde_norway appends "at line X column Y"; the line is reported separately.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_with_lists_and_empty_documents() {
        let text = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\nkind: List\napiVersion: v1\nitems:\n- {kind: Pod, apiVersion: v1}\n- {kind: Node, apiVersion: v1}\n";
        let docs = parse(text, false).unwrap();
        let anchors: Vec<String> = docs.iter().map(Document::anchor).collect();
        assert_eq!(anchors, ["#0", "#2/items/0", "#2/items/1"]);
        assert_eq!(docs[2].value["kind"], "Node");
    }

    #[test]
    fn yaml_errors_carry_the_line() {
        let err = parse("kind: Pod\nmetadata:\n  name: [unclosed\n", false).unwrap_err();
        assert!(err.line.is_some_and(|l| l >= 3), "{err:?}");
        assert!(err.to_string().starts_with("line "), "{err}");
    }

    #[test]
    fn json_streams_and_errors() {
        let docs = parse("{\"kind\":\"Pod\"}\n{\"kind\":\"Service\"}", true).unwrap();
        assert_eq!(docs.len(), 2);
        let err = parse("{\n\"kind\": \n}", true).unwrap_err();
        assert_eq!(err.line, Some(3));
    }

    #[test]
    fn scalars_are_not_objects() {
        assert!(
            parse("just a string\n", false)
                .unwrap_err()
                .message
                .contains("not an object")
        );
    }
}
