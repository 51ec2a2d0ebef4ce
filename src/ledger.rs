//! The erasure ledger: what was erased or purged, kept outside the database so that a
//! restored backup cannot bring it back.
//!
//! Crypto-shredding deletes a customer's data key, but a backup taken before the erasure
//! still holds the key and the rows. The ledger is an append-only file of JSON lines kept
//! next to the master keys (never inside a backup); each line names one erasure or purge
//! by ids and a fingerprint, never by a value. Start-up reads it and re-applies any entry
//! the database does not reflect, before the service accepts a request
//! ([`crate::privacy::reapply`]).
//!
//! A line is written and synced **before** the database change commits: if the process
//! dies in between, start-up completes the erasure the officer asked for. The fingerprint
//! makes re-application exact: a row whose id was reused after a restore (a new customer
//! with the same id) does not match and is left alone.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One erased or purged thing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A customer erased: everything of theirs deleted and their data key destroyed.
    Erasure {
        /// The customer's id.
        customer: i32,
        /// When their data key was created, as stored: with the id, it names this
        /// customer and no later one that reuses the id.
        key_created: chrono::DateTime<chrono::Utc>,
        /// When the erasure happened.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// A row deleted by the retention sweeper.
    Purge {
        /// `attachments` or `messages`.
        table: String,
        /// The row's id.
        id: i32,
        /// The first 16 bytes of the SHA-256 of the row's stored ciphertext, in hex.
        digest: String,
        /// When it was purged.
        at: chrono::DateTime<chrono::Utc>,
    },
}

/// The digest a [`Entry::Purge`] records for stored ciphertext.
pub fn digest(ciphertext: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(ciphertext)[..16])
}

/// The ledger file. Cheap to clone; appends from one process are serialized.
#[derive(Clone, Debug)]
pub struct Ledger {
    path: PathBuf,
    lock: Arc<std::sync::Mutex<()>>,
}

impl Ledger {
    /// The ledger at `path` (created on the first append).
    pub fn at(path: impl Into<PathBuf>) -> Ledger {
        Ledger {
            path: path.into(),
            lock: Arc::default(),
        }
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entries` and syncs them to disk before returning.
    pub fn append(&self, entries: &[Entry]) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for entry in entries {
            text += &serde_json::to_string(entry).context("encoding a ledger entry")?;
            text.push('\n');
        }
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).context("creating the erasure ledger's directory")?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening the erasure ledger {}", self.path.display()))?;
        // A line torn by a crash must not swallow the next one.
        if ends_torn(&mut file).context("reading the erasure ledger")? {
            text.insert(0, '\n');
        }
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing the erasure ledger {}", self.path.display()))
    }

    /// Every entry, oldest first. A missing file is an empty ledger; a line that does not
    /// parse (a write torn by a crash can only be the last one) is skipped with a warning.
    pub fn entries(&self) -> anyhow::Result<Vec<Entry>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading the erasure ledger {}", self.path.display()))
            }
        };
        let mut entries = Vec::new();
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.context("reading the erasure ledger")?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(entry) => entries.push(entry),
                Err(_) => tracing::warn!(line = n + 1, "skipped an unreadable erasure-ledger line"),
            }
        }
        Ok(entries)
    }
}

/// Whether the file's last byte is not a newline (a line torn by a crash).
fn ends_torn(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::at(dir.path().join("ledger.jsonl"));
        assert!(ledger.entries().unwrap().is_empty());
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let entries = [
            Entry::Erasure {
                customer: 3,
                key_created: at,
                at,
            },
            Entry::Purge {
                table: "attachments".into(),
                id: 9,
                digest: digest(b"ciphertext"),
                at,
            },
        ];
        ledger.append(&entries).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(ledger.path())
            .unwrap()
            .write_all(b"{\"kind\":\"erasure\",\"cust")
            .unwrap();
        assert_eq!(ledger.entries().unwrap(), entries);
        ledger.append(&entries[..1]).unwrap();
        assert_eq!(ledger.entries().unwrap().len(), 3);
    }
}
