//! Finding and reading manifest files: directories expanded, documents parsed in parallel.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::LoadError;
use super::manifests::{self, Document};

/// A parsed document and the file it came from.
#[derive(Debug)]
pub struct Sourced {
    /// Where it came from: `path#docIndex` for files, `resource/namespace/name` for a cluster.
    pub source: String,
    pub value: serde_json::Value,
    /// The file and line it starts on; `None` for objects read from a cluster.
    pub location: Option<Location>,
}

/// Where in a file a document starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The path as given (`-` for stdin).
    pub path: String,
    /// 1-based line of the document's first content line.
    pub line: usize,
}

impl Sourced {
    /// A document without a file (an object read from a cluster, a test's object).
    pub fn new(source: impl Into<String>, value: serde_json::Value) -> Sourced {
        Sourced {
            source: source.into(),
            value,
            location: None,
        }
    }
}

const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Expands the paths (directories recursively, in name order; `-` for stdin) and parses
/// every file. Fails on the first unreadable or unparsable file, before anything is printed.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Sourced>, LoadError> {
    let mut files = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            files.push(None);
        } else {
            collect(p, true, &mut files)?;
        }
    }
    let texts = files
        .into_iter()
        .map(|f| match f {
            None => read_stdin().map(|t| ("-".to_owned(), t, false)),
            Some(path) => {
                let name = path.display().to_string();
                let json = path.extension().is_some_and(|e| e == "json");
                std::fs::read_to_string(&path)
                    .map(|t| (name, t, json))
                    .map_err(|source| LoadError::Read { path, source })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let parsed = parse_all(texts)?;
    Ok(parsed)
}

/// Parses every document on all cores: YAML parsing dominates an audit of thousands of
/// documents, so streams are cut into documents first and those parsed in parallel.
fn parse_all(texts: Vec<(String, String, bool)>) -> Result<Vec<Sourced>, LoadError> {
    // (file, chunk); JSON files are parsed whole (serde_json is fast).
    let mut jobs: Vec<(usize, Option<manifests::Chunk<'_>>)> = Vec::new();
    for (file, (_, text, json)) in texts.iter().enumerate() {
        if *json {
            jobs.push((file, None));
        } else {
            jobs.extend(
                manifests::split_documents(text)
                    .into_iter()
                    .map(|c| (file, Some(c))),
            );
        }
    }
    let parsed = crate::parallel::map(&jobs, |(file, chunk)| match chunk {
        Some(c) => c
            .parse()
            .map(|v| vec![(c.index, Some(c.content_line()), v)]),
        None => manifests::parse_json_stream(&texts[*file].1),
    });
    let mut per_file: Vec<Vec<(usize, Option<usize>, serde_json::Value)>> =
        vec![Vec::new(); texts.len()];
    for ((file, _), result) in jobs.iter().zip(parsed) {
        let path = &texts[*file].0;
        let values = result.map_err(|source| LoadError::Manifest {
            path: path.into(),
            source,
        })?;
        per_file[*file].extend(values);
    }
    let mut out = Vec::new();
    for ((path, _, _), values) in texts.iter().zip(per_file) {
        let docs = manifests::expand(values).map_err(|source| LoadError::Manifest {
            path: path.into(),
            source,
        })?;
        out.extend(docs.into_iter().map(|doc: Document| Sourced {
            source: format!("{path}{}", doc.anchor()),
            location: doc.line.map(|line| Location {
                path: path.clone(),
                line,
            }),
            value: doc.value,
        }));
    }
    Ok(out)
}

fn collect(path: &Path, explicit: bool, out: &mut Vec<Option<PathBuf>>) -> Result<(), LoadError> {
    let meta = std::fs::metadata(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| LoadError::Read {
                path: path.to_owned(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            collect(&e, false, out)?;
        }
    } else if explicit
        || path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
    {
        out.push(Some(path.to_owned()));
    }
    Ok(())
}

fn read_stdin() -> Result<String, LoadError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|source| LoadError::Read {
            path: "-".into(),
            source,
        })?;
    Ok(text)
}
