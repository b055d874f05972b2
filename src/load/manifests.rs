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
    /// 1-based line of the stream where the document's content starts (its `apiVersion`,
    /// say; for a List item, the List's), for reports that point into the file.
    pub line: Option<usize>,
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
    if json {
        return expand(parse_json_stream(text)?);
    }
    let values = split_documents(text)
        .iter()
        .map(|chunk| {
            chunk
                .parse()
                .map(|v| (chunk.index, Some(chunk.content_line()), v))
        })
        .collect::<Result<Vec<_>, _>>()?;
    expand(values)
}

/// One YAML document of a stream, not parsed yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// 0-based position of the document in the stream.
    pub index: usize,
    /// 0-based line of the stream where the chunk starts.
    pub first_line: usize,
    pub text: &'a str,
}

impl Chunk<'_> {
    /// 1-based line of the stream where the document's content starts: past its `---`
    /// marker, blank lines, comments and directives.
    pub fn content_line(&self) -> usize {
        let skipped = self
            .text
            .lines()
            .enumerate()
            .find(|(i, l)| {
                let t = l.trim();
                let marker = *i == 0 && (t == "---" || l.starts_with("--- "));
                !(marker || t.is_empty() || t.starts_with('#') || l.starts_with('%'))
            })
            .map_or(0, |(i, _)| i);
        self.first_line + skipped + 1
    }

    /// Parses the document; error lines count from the start of the whole stream.
    pub fn parse(&self) -> Result<Value, ParseError> {
        let mut docs = serde_norway::Deserializer::from_str(self.text);
        let Some(doc) = docs.next() else {
            return Ok(Value::Null);
        };
        Value::deserialize(doc).map_err(|e| ParseError {
            line: e.location().map(|l| self.first_line + l.line()),
            message: strip_location(&e.to_string()),
        })
    }
}

/// Cuts a YAML stream at its document markers without parsing it, so that the documents
/// can be parsed in parallel. A `---` line at column 0 starts a document wherever it stands
/// (YAML itself gives it that meaning, even inside a block scalar); `...` ends one. Text
/// before the first marker, or after a `...`, is a document only if it has content.
pub fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut start = 0; // byte offset of the current chunk
    let mut start_line = 0;
    let mut explicit = false; // the current chunk began with `---`
    let mut offset = 0;
    let mut bounds: Vec<(usize, usize, usize, bool)> = Vec::new(); // (start, end, first line, explicit)
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_start = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        let is_end = bare == "..." || bare.starts_with("... ");
        if is_start || is_end {
            bounds.push((start, offset, start_line, explicit));
            if is_start {
                start = offset;
                start_line = line_no;
                explicit = true;
            } else {
                start = offset + line.len();
                start_line = line_no + 1;
                explicit = false;
            }
        }
        offset += line.len();
    }
    bounds.push((start, text.len(), start_line, explicit));
    let mut chunks = Vec::new();
    for (start, end, first_line, explicit) in bounds {
        let body = &text[start..end];
        if explicit || has_content(body) {
            chunks.push(Chunk {
                index: chunks.len(),
                first_line,
                text: body,
            });
        }
    }
    chunks
}

fn has_content(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim();
        !(t.is_empty() || t.starts_with('#') || l.starts_with('%'))
    })
}

/// Turns parsed documents into objects: drops empty ones, expands Lists.
pub fn expand(values: Vec<(usize, Option<usize>, Value)>) -> Result<Vec<Document>, ParseError> {
    let mut out = Vec::with_capacity(values.len());
    for (index, line, value) in values {
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
                        line,
                        value: item.clone(),
                    });
                }
            }
            Value::Object(_) => out.push(Document {
                index,
                item: None,
                line,
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

/// The values of a JSON stream, each with the 1-based line where it starts.
pub fn parse_json_stream(text: &str) -> Result<Vec<(usize, Option<usize>, Value)>, ParseError> {
    let mut docs = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    // Lines counted so far, up to byte `counted`.
    let (mut line, mut counted) = (1, 0);
    let mut index = 0;
    loop {
        let before = stream.byte_offset();
        let Some(value) = stream.next() else {
            return Ok(docs);
        };
        let value = value.map_err(|e| ParseError {
            line: Some(e.line()),
            message: e.to_string(),
        })?;
        let rest = &text[before..];
        let start = before + (rest.len() - rest.trim_start().len());
        line += text[counted..start].matches('\n').count();
        counted = start;
        docs.push((index, Some(line), value));
        index += 1;
    }
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
        let lines: Vec<Option<usize>> = docs.iter().map(|d| d.line).collect();
        assert_eq!(lines, [Some(2), Some(7), Some(7)]);
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
        let docs = parse("{\"kind\":\"Pod\"}\n\n  {\"kind\":\n\"Service\"}\n{}", true).unwrap();
        assert_eq!(docs.len(), 3);
        let lines: Vec<Option<usize>> = docs.iter().map(|d| d.line).collect();
        assert_eq!(lines, [Some(1), Some(3), Some(5)]);
        let err = parse("{\n\"kind\": \n}", true).unwrap_err();
        assert_eq!(err.line, Some(3));
    }

    #[test]
    fn splitting_agrees_with_the_yaml_parser_on_document_boundaries() {
        let streams = [
            "a: 1\n---\nb: 2\n",
            "---\na: 1\n---\n---\nb: 2\n",
            "# header comment\n---\na: 1\n",
            "%YAML 1.2\n---\na: 1\n...\n---\nb: |\n  text\n  --- not a marker when indented\n",
            "--- {a: 1}\n--- {b: 2}\n",
            "a: 1\n...\n# trailing comment\n",
        ];
        for text in streams {
            let by_parser: Vec<Value> = serde_norway::Deserializer::from_str(text)
                .map(|d| Value::deserialize(d).unwrap())
                .collect();
            let by_split: Vec<Value> = split_documents(text)
                .iter()
                .map(|c| c.parse().unwrap())
                .collect();
            assert_eq!(by_split, by_parser, "{text:?}");
        }
    }

    #[test]
    fn documents_know_the_line_their_content_starts_on() {
        let text = "# header\napiVersion: v1\nkind: A\n---\n\n# about B\nkind: B\n--- {kind: C}\n";
        let lines: Vec<Option<usize>> =
            parse(text, false).unwrap().iter().map(|d| d.line).collect();
        assert_eq!(lines, [Some(2), Some(7), Some(8)]);
    }

    #[test]
    fn error_lines_count_from_the_start_of_the_stream() {
        let text = "a: 1\n---\nb: 2\n---\nc: [\n";
        let err = parse(text, false).unwrap_err();
        assert_eq!(err.line, Some(6), "{err:?}");
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
