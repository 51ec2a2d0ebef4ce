//! Master keys: where they come from, and the file `keys rotate` extends.
//!
//! A master key only wraps per-customer data keys (see [`super::vault`]); it never
//! encrypts personal data itself. Sources, first match wins:
//! 1. `NEEDTOKNOW_MASTER_KEY`: `VERSION:BASE64` entries separated by commas (a bare
//!    `BASE64` is version 1); the highest version wraps new data keys;
//! 2. the key file (`NEEDTOKNOW_MASTER_KEY_FILE`, default `<data dir>/master-keys.json`):
//!    `{"current": 2, "keys": {"1": "BASE64", "2": "BASE64"}}`;
//! 3. in dev/demo mode only, a new key file is generated (with a warning in the log).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aes_gcm_siv::{Aes256GcmSiv, KeyInit};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// A set of master key versions; `current` wraps new data keys.
#[derive(Clone)]
pub struct MasterKeys {
    ciphers: BTreeMap<u32, Aes256GcmSiv>,
    current: u32,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("versions", &self.ciphers.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .finish()
    }
}

/// The key file's format.
#[derive(Serialize, Deserialize)]
pub struct KeyFile {
    /// The version that wraps new data keys.
    pub current: u32,
    /// Every version, base64-encoded 32-byte keys.
    pub keys: BTreeMap<u32, String>,
}

fn decode_key(text: &str, what: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| format!("{what}: not base64"))?;
    bytes
        .try_into()
        .map_err(|_| format!("{what}: a master key is 32 bytes (base64 of 32 random bytes)"))
}

/// A new random 32-byte key, base64-encoded.
pub fn generate_key() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}

impl MasterKeys {
    /// Builds the set from versioned base64 keys.
    pub fn from_versions(
        keys: &BTreeMap<u32, String>,
        current: u32,
        what: &str,
    ) -> Result<MasterKeys, String> {
        let mut ciphers = BTreeMap::new();
        for (version, key) in keys {
            let bytes = decode_key(key, &format!("{what} version {version}"))?;
            let cipher = Aes256GcmSiv::new_from_slice(&bytes)
                .map_err(|_| format!("{what}: unusable key"))?;
            ciphers.insert(*version, cipher);
        }
        if !ciphers.contains_key(&current) {
            return Err(format!("{what}: the current version {current} has no key"));
        }
        Ok(MasterKeys { ciphers, current })
    }

    /// Parses `NEEDTOKNOW_MASTER_KEY`.
    pub fn from_env_value(value: &str) -> Result<MasterKeys, String> {
        let mut keys = BTreeMap::new();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (version, key) = match entry.split_once(':') {
                Some((v, k)) => (
                    v.parse::<u32>().map_err(|_| {
                        "NEEDTOKNOW_MASTER_KEY: versions are numbers, as in 2:BASE64".to_owned()
                    })?,
                    k,
                ),
                None => (1, entry),
            };
            keys.insert(version, key.to_owned());
        }
        let current = *keys.keys().max().ok_or("NEEDTOKNOW_MASTER_KEY is empty")?;
        MasterKeys::from_versions(&keys, current, "NEEDTOKNOW_MASTER_KEY")
    }

    /// Reads a key file.
    pub fn from_file(path: &Path) -> Result<MasterKeys, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the master key file {}: {e}", path.display()))?;
        let file: KeyFile = serde_json::from_str(&text)
            .map_err(|e| format!("master key file {}: {e}", path.display()))?;
        MasterKeys::from_versions(
            &file.keys,
            file.current,
            &format!("master key file {}", path.display()),
        )
    }

    /// The version that wraps new data keys.
    pub fn current(&self) -> (u32, &Aes256GcmSiv) {
        // `from_versions` guarantees the current version exists.
        (self.current, &self.ciphers[&self.current])
    }

    /// The cipher of a version, if this set has it.
    pub fn version(&self, version: u32) -> Option<&Aes256GcmSiv> {
        self.ciphers.get(&version)
    }
}

/// The master keys the settings name: `NEEDTOKNOW_MASTER_KEY`, else the key file, else — in
/// dev/demo mode only — a newly generated key file (logged as a warning).
/// Returns the keys and, when they came from a file, its path.
pub fn load_master_keys(
    settings: &crate::config::Settings,
) -> anyhow::Result<(MasterKeys, Option<PathBuf>)> {
    if let Some(value) = &settings.master_key {
        return Ok((
            MasterKeys::from_env_value(value.expose()).map_err(anyhow::Error::msg)?,
            None,
        ));
    }
    let path = &settings.master_key_file;
    if path.exists() {
        return Ok((
            MasterKeys::from_file(path).map_err(anyhow::Error::msg)?,
            Some(path.clone()),
        ));
    }
    if settings.mode != crate::config::Mode::Dev {
        anyhow::bail!(
            "no master key: set NEEDTOKNOW_MASTER_KEY or create the key file {} (see README, Key management)",
            path.display()
        );
    }
    tracing::warn!(
        file = %path.display(),
        "dev/demo mode: generated a local master key file; production must use NEEDTOKNOW_MASTER_KEY or a managed key file"
    );
    let file = KeyFile {
        current: 1,
        keys: BTreeMap::from([(1, generate_key())]),
    };
    write_key_file(path, &file)
        .map_err(|e| anyhow::anyhow!("cannot write the master key file {}: {e}", path.display()))?;
    let keys = MasterKeys::from_versions(&file.keys, 1, "generated key file")
        .map_err(anyhow::Error::msg)?;
    Ok((keys, Some(path.clone())))
}

/// `keys rotate` on a key file: adds a new version, makes it current, and writes the file
/// atomically. Returns the new version.
pub fn add_version(path: &Path) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the master key file {}: {e}", path.display()))?;
    let mut file: KeyFile = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("master key file {}: {e}", path.display()))?;
    let version = file.keys.keys().max().copied().unwrap_or(0) + 1;
    file.keys.insert(version, generate_key());
    file.current = version;
    write_key_file(path, &file)
        .map_err(|e| anyhow::anyhow!("cannot write the master key file {}: {e}", path.display()))?;
    Ok(version)
}

/// Writes a key file readable by its owner only.
pub fn write_key_file(path: &Path, file: &KeyFile) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut out = options.open(&temporary)?;
    out.write_all(&serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?)?;
    out.sync_all()?;
    // Rename is atomic: a crash leaves the old file or the new one, never half of one.
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_take_versions_and_the_highest_is_current() {
        let keys =
            MasterKeys::from_env_value(&format!("1:{},3:{}", generate_key(), generate_key()))
                .unwrap();
        assert_eq!(keys.current().0, 3);
        assert!(keys.version(1).is_some() && keys.version(2).is_none());
        assert_eq!(
            MasterKeys::from_env_value(&generate_key())
                .unwrap()
                .current()
                .0,
            1
        );
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for bad in ["", "not base64!", "c2hvcnQ=", "x:AAAA"] {
            let error = MasterKeys::from_env_value(bad).unwrap_err();
            assert!(error.starts_with("NEEDTOKNOW_MASTER_KEY"), "{error}");
            assert!(bad.len() < 5 || !error.contains(bad), "{error}");
        }
    }

    #[test]
    fn debug_output_shows_versions_not_keys() {
        let key = generate_key();
        let keys = MasterKeys::from_env_value(&key).unwrap();
        let debug = format!("{keys:?}");
        assert!(!debug.contains(&key[..10]), "{debug}");
    }
}
