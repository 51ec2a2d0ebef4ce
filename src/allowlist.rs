//! The operation allow-list: with it on, only registered operations run, as in Hasura's
//! allow-list or a persisted-query manifest.
//!
//! Operations are registered by the SHA-256 of their exact document text (hex), the hash
//! Apollo's automatic persisted queries use. Frontend teams generate the file with
//! `needtoknow operations manifest *.graphql` or with Apollo's
//! `generate-persisted-query-manifest`; both write the same format. A request may send the
//! document (its hash must be registered) or only
//! `extensions.persistedQuery.sha256Hash` (the registered document runs).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use async_graphql::parser::types::OperationType;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The SHA-256 of a document's exact text, in lower-case hex.
pub fn hash(document: &str) -> String {
    hex::encode(Sha256::digest(document.as_bytes()))
}

/// One registered operation, as in Apollo's persisted-query manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The document's SHA-256.
    pub id: String,
    /// The operation's name (for people; not checked against requests).
    #[serde(default)]
    pub name: String,
    /// `query` or `mutation`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The document.
    pub body: String,
}

/// A persisted-query manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `apollo-persisted-query-manifest`.
    pub format: String,
    /// Always 1.
    pub version: u32,
    /// The operations.
    pub operations: Vec<Operation>,
}

impl Manifest {
    /// A manifest of the given `(file name, document)` pairs; every document must parse
    /// and hold exactly one operation.
    pub fn of_documents(documents: &[(String, String)]) -> Result<Manifest, String> {
        let operations = documents
            .iter()
            .map(|(file, body)| {
                let (name, kind) = describe(body).map_err(|e| format!("{file}: {e}"))?;
                Ok(Operation {
                    id: hash(body),
                    name,
                    kind,
                    body: body.clone(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Manifest {
            format: "apollo-persisted-query-manifest".into(),
            version: 1,
            operations,
        })
    }
}

/// The name and kind of a document's single operation.
fn describe(body: &str) -> Result<(String, String), String> {
    let document =
        async_graphql::parser::parse_query(body).map_err(|e| format!("does not parse: {e}"))?;
    let mut operations = document.operations.iter();
    let (name, operation) = operations
        .next()
        .ok_or_else(|| "holds no operation".to_owned())?;
    if operations.next().is_some() {
        return Err("holds more than one operation; put each in its own file".into());
    }
    let kind = match operation.node.ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    };
    Ok((name.map(|n| n.to_string()).unwrap_or_default(), kind.into()))
}

/// The registered operations by hash.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    by_hash: HashMap<String, String>,
}

impl AllowList {
    /// Reads the file; any entry that does not parse or whose hash is wrong stops start-up.
    pub fn load(path: &Path) -> anyhow::Result<AllowList> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the operation allow-list {}", path.display()))?;
        AllowList::parse(&text).map_err(|problem| {
            anyhow::anyhow!("operation allow-list {}: {problem}", path.display())
        })
    }

    /// Parses a manifest (`{"format": "apollo-persisted-query-manifest", "operations": […]}`)
    /// or a plain object of hash → document.
    pub fn parse(text: &str) -> Result<AllowList, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let entries: Vec<(String, String)> = if value.get("operations").is_some() {
            let manifest: Manifest = serde_json::from_value(value)
                .map_err(|e| format!("not a persisted-query manifest: {e}"))?;
            manifest
                .operations
                .into_iter()
                .map(|op| (op.id, op.body))
                .collect()
        } else {
            let map: HashMap<String, String> = serde_json::from_value(value).map_err(|_| {
                "expected a persisted-query manifest or an object of hash → document".to_owned()
            })?;
            map.into_iter().collect()
        };
        let mut by_hash = HashMap::new();
        for (id, body) in entries {
            let actual = hash(&body);
            if !id.eq_ignore_ascii_case(&actual) {
                return Err(format!(
                    "entry {id}: the SHA-256 of its document is {actual}; regenerate the file"
                ));
            }
            describe(&body).map_err(|e| format!("entry {id}: {e}"))?;
            by_hash.insert(actual, body);
        }
        if by_hash.is_empty() {
            return Err("no operations registered".into());
        }
        Ok(AllowList { by_hash })
    }

    /// How many operations are registered.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether none is (never true of a loaded list).
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The registered document with this hash.
    pub fn document(&self, hash: &str) -> Option<&str> {
        self.by_hash
            .get(&hash.to_ascii_lowercase())
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "query Me { me { handle } }";

    #[test]
    fn a_generated_manifest_loads_and_finds_its_documents_by_hash() {
        let manifest = Manifest::of_documents(&[("me.graphql".into(), ME.into())]).unwrap();
        assert_eq!(manifest.operations[0].name, "Me");
        assert_eq!(manifest.operations[0].kind, "query");
        let list = AllowList::parse(&serde_json::to_string(&manifest).unwrap()).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list.document(&hash(ME)), Some(ME));
        assert_eq!(list.document(&hash("{ me { handle } }")), None);
    }

    #[test]
    fn a_plain_hash_to_document_map_loads_too() {
        let text = serde_json::json!({ hash(ME): ME }).to_string();
        assert_eq!(AllowList::parse(&text).unwrap().len(), 1);
    }

    #[test]
    fn wrong_hashes_and_bad_documents_are_refused_with_the_entry() {
        let wrong = serde_json::json!({ "0".repeat(64): ME }).to_string();
        assert!(AllowList::parse(&wrong).unwrap_err().contains("SHA-256"));
        let broken = "query { me {";
        let text = serde_json::json!({ hash(broken): broken }).to_string();
        assert!(AllowList::parse(&text)
            .unwrap_err()
            .contains("does not parse"));
        assert!(AllowList::parse("{}").is_err());
        assert!(AllowList::parse("[1]").is_err());
        let two = "query A { me { id } } query B { me { id } }";
        assert!(Manifest::of_documents(&[("two.graphql".into(), two.into())]).is_err());
    }
}
