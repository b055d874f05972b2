//! Workload kinds beyond `apps/v1`: the built-in ones (Argo Rollouts, OpenKruise) and those a
//! policy declares (`workloadKinds:`), with where each keeps its replicas, selector and pod
//! template.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A path into an object, as tokens (`spec`, `template`). Written in the policy as a JSON
/// pointer (`/spec/template`) or dotted (`spec.template`, `.spec.template`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPath(pub Vec<String>);

impl TokenPath {
    pub fn parse(text: &str) -> Result<TokenPath, String> {
        let tokens: Vec<String> = if let Some(pointer) = text.strip_prefix('/') {
            pointer
                .split('/')
                .map(|t| t.replace("~1", "/").replace("~0", "~"))
                .collect()
        } else {
            text.strip_prefix('.')
                .unwrap_or(text)
                .split('.')
                .map(str::to_owned)
                .collect()
        };
        if tokens.is_empty() || tokens.iter().any(String::is_empty) {
            return Err(format!(
                "{text:?} is not a path (write /spec/replicas or spec.replicas)"
            ));
        }
        Ok(TokenPath(tokens))
    }

    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for TokenPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

impl<'de> Deserialize<'de> for TokenPath {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let text = String::deserialize(de)?;
        TokenPath::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for TokenPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("/{}", self.0.join("/")))
    }
}

/// A workload kind the policy adds (`workloadKinds:`): judged and mutated like a Deployment,
/// reading its replicas, selector and pod template where it keeps them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomKind {
    /// API group (`example.com`; empty for the core group).
    #[serde(default)]
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The plural resource name the API server routes (`widgets`).
    pub resource: String,
    /// Where the replica count is (`/spec/replicas`); omitted means 1.
    pub replicas: TokenPath,
    /// Where the label selector of its pods is (`/spec/selector`). Without one, injected
    /// constraints select the pod template's labels.
    #[serde(default)]
    pub selector: Option<TokenPath>,
    /// Where the pod template is (`/spec/template`): its `metadata.labels` and `spec`.
    pub template: TokenPath,
    /// A label that tells one revision's pods from another's, added to injected spreads as
    /// `matchLabelKeys` (as `pod-template-hash` is for Deployments).
    #[serde(default)]
    pub revision_label: Option<String>,
    /// `template` + `spec`, computed when the policy is read.
    #[serde(skip)]
    pub pod_spec: Vec<String>,
}

impl CustomKind {
    /// Fills what is derived from the declared fields.
    pub fn prepare(&mut self) {
        self.pod_spec = self.template.0.clone();
        self.pod_spec.push("spec".to_owned());
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Tokens of a path, borrowed from a built-in table or from the policy.
#[derive(Clone, Copy, Debug)]
pub enum Tokens<'a> {
    Static(&'static [&'static str]),
    Owned(&'a [String]),
}

impl<'a> Tokens<'a> {
    pub fn iter(self) -> Box<dyn Iterator<Item = &'a str> + 'a> {
        match self {
            Tokens::Static(t) => Box::new(t.iter().copied()),
            Tokens::Owned(t) => Box::new(t.iter().map(String::as_str)),
        }
    }

    pub fn to_vec(self) -> Vec<&'a str> {
        self.iter().collect()
    }

    /// The value at this path in `value`.
    pub fn at(self, value: &serde_json::Value) -> Option<&serde_json::Value> {
        self.iter().try_fold(value, |v, key| v.get(key))
    }

    /// Dotted, for messages: `spec.template.spec`.
    pub fn dotted(self) -> String {
        self.to_vec().join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_pointers_or_dotted() {
        for text in ["/spec/replicas", "spec.replicas", ".spec.replicas"] {
            assert_eq!(
                TokenPath::parse(text).unwrap().0,
                ["spec", "replicas"],
                "{text}"
            );
        }
        assert_eq!(TokenPath::parse("/a~1b/c~0d").unwrap().0, ["a/b", "c~d"]);
        for bad in ["", "/", "spec..replicas", "/spec/"] {
            assert!(TokenPath::parse(bad).is_err(), "{bad:?}");
        }
    }
}
