//! Per-customer data keys, wrapped by the master key, and the field encryption built on
//! them.
//!
//! Each customer's personal data (and that of their payment methods, messages and
//! attachments) is encrypted with the customer's own data key, so destroying that one key
//! makes all of it unreadable (crypto-shredding). Data keys are stored wrapped by a master
//! key version; unwrapped cipher instances are cached, built once per key.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use aes_gcm_siv::{Aes256GcmSiv, KeyInit};
use anyhow::Context;
use arc_swap::ArcSwap;
use base64::Engine;
use chrono::Utc;
use entity::{data_key, meta};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use super::blind::BlindIndexer;
use super::envelope::{self, Slot};
use super::keys::MasterKeys;

const CHECK_KEY: &str = "master_key_check";
const CHECK_TEXT: &[u8] = b"needtoknow master key check";
const INDEX_KEY: &str = "blind_index_key";
/// Unwrapped data keys kept in memory at most (the cache is cleared past it).
const CACHE_LIMIT: usize = 20_000;

/// A customer's unwrapped data key.
pub type DataKey = Arc<Aes256GcmSiv>;

/// The data keys of every customer, behind the master keys.
pub struct Vault {
    master: ArcSwap<MasterKeys>,
    /// The key file the master keys came from, re-read when a data key names a master
    /// version this process does not know yet (after `keys rotate`, without a restart).
    key_file: Option<PathBuf>,
    cache: RwLock<HashMap<i32, DataKey>>,
    /// Set by [`Vault::check_master`] from the wrapped index key in `meta`.
    blind: std::sync::OnceLock<BlindIndexer>,
}

fn slot(customer_id: i32) -> Slot<'static> {
    Slot {
        table: "data_keys",
        column: "wrapped",
        row: i64::from(customer_id),
    }
}

impl Vault {
    /// A vault over `master`, read from `key_file` if it came from one.
    pub fn new(master: MasterKeys, key_file: Option<PathBuf>) -> Vault {
        Vault {
            master: ArcSwap::from_pointee(master),
            key_file,
            cache: RwLock::new(HashMap::new()),
            blind: std::sync::OnceLock::new(),
        }
    }

    /// The blind indexer (available once [`Vault::check_master`] has run).
    pub fn blind(&self) -> anyhow::Result<&BlindIndexer> {
        self.blind
            .get()
            .context("the vault was not checked against the database")
    }

    /// Opens a secret stored in `meta` as `VERSION:BASE64(envelope)`.
    fn open_meta(&self, key: &str, value: &str) -> anyhow::Result<Vec<u8>> {
        let (version, sealed) = value.split_once(':').context("malformed sealed value")?;
        let version: u32 = version.parse().context("malformed sealed value")?;
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .context("malformed sealed value")?;
        let (master, version) = self.master_version(version).with_context(|| {
            format!("master key version {version}, which this database uses, is not configured")
        })?;
        let cipher = master.version(version).context("master key")?;
        envelope::open(cipher, meta_slot(key), &sealed).map_err(|_| {
            anyhow::anyhow!(
                "the master key does not match this database (wrong NEEDTOKNOW_MASTER_KEY or key file); nothing was written"
            )
        })
    }

    /// Seals a secret for `meta` under the current master version.
    fn seal_meta(&self, key: &str, secret: &[u8]) -> String {
        let master = self.master.load_full();
        let (version, cipher) = master.current();
        let sealed = envelope::seal(cipher, version, meta_slot(key), secret);
        format!(
            "{version}:{}",
            base64::engine::general_purpose::STANDARD.encode(sealed)
        )
    }

    /// The master cipher of `version`, re-reading the key file once if it is unknown.
    fn master_version(&self, version: u32) -> anyhow::Result<(Arc<MasterKeys>, u32)> {
        let master = self.master.load_full();
        if master.version(version).is_some() {
            return Ok((master, version));
        }
        if let Some(path) = &self.key_file {
            if let Ok(fresh) = MasterKeys::from_file(path) {
                if fresh.version(version).is_some() {
                    tracing::info!(version, "loaded a new master key version from the key file");
                    let fresh = Arc::new(fresh);
                    self.master.store(fresh.clone());
                    return Ok((fresh, version));
                }
            }
        }
        anyhow::bail!("master key version {version} is not configured")
    }

    /// Checks that the configured master keys match this database before anything is
    /// written: the check value sealed on first start must open, and every master version
    /// that wraps a data key must be configured. On a fresh database, records the check.
    pub async fn check_master(&self, db: &DatabaseConnection) -> anyhow::Result<()> {
        let row = meta::Entity::find_by_id(CHECK_KEY.to_owned())
            .one(db)
            .await
            .context("reading the master key check")?;
        match row {
            Some(row) => {
                if self.open_meta(CHECK_KEY, &row.value)? != CHECK_TEXT {
                    anyhow::bail!("the master key check holds an unexpected value");
                }
            }
            None => {
                meta::ActiveModel {
                    key: Set(CHECK_KEY.to_owned()),
                    value: Set(self.seal_meta(CHECK_KEY, CHECK_TEXT)),
                }
                .insert(db)
                .await
                .context("recording the master key check")?;
            }
        }
        let index_key = match meta::Entity::find_by_id(INDEX_KEY.to_owned())
            .one(db)
            .await
            .context("reading the blind index key")?
        {
            Some(row) => self.open_meta(INDEX_KEY, &row.value)?,
            None => {
                let mut bytes = vec![0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                meta::ActiveModel {
                    key: Set(INDEX_KEY.to_owned()),
                    value: Set(self.seal_meta(INDEX_KEY, &bytes)),
                }
                .insert(db)
                .await
                .context("recording the blind index key")?;
                bytes
            }
        };
        let _ = self.blind.set(BlindIndexer::new(&index_key));
        let versions: Vec<i32> = data_key::Entity::find()
            .select_only()
            .column(data_key::Column::MasterVersion)
            .distinct()
            .into_tuple()
            .all(db)
            .await
            .context("listing master key versions in use")?;
        for version in versions {
            let version = u32::try_from(version).unwrap_or(u32::MAX);
            self.master_version(version).with_context(|| {
                format!("master key version {version} wraps data keys but is not configured")
            })?;
        }
        Ok(())
    }

    /// Creates and stores a new data key for `customer_id`.
    pub async fn create_data_key(
        &self,
        db: &impl ConnectionTrait,
        customer_id: i32,
    ) -> anyhow::Result<DataKey> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let keys = self.master.load_full();
        let (version, master) = keys.current();
        data_key::ActiveModel {
            customer_id: Set(customer_id),
            master_version: Set(i32::try_from(version).context("master version")?),
            wrapped: Set(envelope::seal(master, version, slot(customer_id), &bytes)),
            created_at: Set(Utc::now()),
        }
        .insert(db)
        .await
        .context("storing a data key")?;
        let key: DataKey = Arc::new(Aes256GcmSiv::new_from_slice(&bytes).context("data key")?);
        self.remember(customer_id, key.clone());
        Ok(key)
    }

    /// The data key of `customer`, for a writer that seals new values (an upsert, a new
    /// message or document); `None` when the customer has none (erased).
    pub async fn data_key(
        &self,
        db: &impl ConnectionTrait,
        customer: i32,
    ) -> anyhow::Result<Option<DataKey>> {
        Ok(self.data_keys(db, &[customer]).await?.remove(&customer))
    }

    /// The opener of one customer's sealed fields; a customer without a data key (erased)
    /// is an internal error.
    pub async fn opener(
        &self,
        db: &impl ConnectionTrait,
        customer: i32,
    ) -> crate::error::ApiResult<Opener> {
        self.openers(db, &[customer])
            .await
            .map_err(|e| crate::error::ApiError::internal(e, "loading keys"))?
            .remove(&customer)
            .ok_or_else(|| {
                crate::error::ApiError::internal(
                    anyhow::anyhow!("customer without data key"),
                    "loading keys",
                )
            })
    }

    /// The openers of `customers` (missing ones are absent: erased customers), from the
    /// cache or in one query.
    pub async fn openers(
        &self,
        db: &impl ConnectionTrait,
        customers: &[i32],
    ) -> anyhow::Result<HashMap<i32, Opener>> {
        Ok(self
            .data_keys(db, customers)
            .await?
            .into_iter()
            .map(|(id, key)| (id, Opener { key }))
            .collect())
    }

    /// The data keys of `customers`, from the cache or in one query.
    async fn data_keys(
        &self,
        db: &impl ConnectionTrait,
        customers: &[i32],
    ) -> anyhow::Result<HashMap<i32, DataKey>> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            for id in customers {
                match cache.get(id) {
                    Some(key) => {
                        found.insert(*id, key.clone());
                    }
                    None => missing.push(*id),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let rows = data_key::Entity::find()
            .filter(data_key::Column::CustomerId.is_in(missing))
            .all(db)
            .await
            .context("loading data keys")?;
        for row in rows {
            let key = self.unwrap_key(&row)?;
            self.remember(row.customer_id, key.clone());
            found.insert(row.customer_id, key);
        }
        Ok(found)
    }

    fn unwrap_key(&self, row: &data_key::Model) -> anyhow::Result<DataKey> {
        let version = u32::try_from(row.master_version).unwrap_or(u32::MAX);
        let (keys, version) = self.master_version(version)?;
        let master = keys.version(version).context("master key")?;
        let bytes = envelope::open(master, slot(row.customer_id), &row.wrapped)
            .map_err(|e| anyhow::anyhow!("cannot unwrap a data key: {e}"))?;
        Ok(Arc::new(
            Aes256GcmSiv::new_from_slice(&bytes).context("data key")?,
        ))
    }

    fn remember(&self, customer_id: i32, key: DataKey) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(customer_id, key);
    }

    /// Forgets a customer's key (after erasure).
    pub fn forget(&self, customer_id: i32) {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&customer_id);
    }

    /// Re-wraps every data key not yet under the current master version, a page at a time;
    /// returns how many were re-wrapped. Safe to run while the service serves: old versions
    /// keep unwrapping until retired.
    pub async fn rewrap_all(&self, db: &DatabaseConnection) -> anyhow::Result<u64> {
        let keys = self.master.load_full();
        let (version, master) = keys.current();
        let current = i32::try_from(version).context("master version")?;
        let mut count = 0;
        loop {
            let page = data_key::Entity::find()
                .filter(data_key::Column::MasterVersion.ne(current))
                .order_by_asc(data_key::Column::CustomerId)
                .limit(500)
                .all(db)
                .await
                .context("reading data keys")?;
            if page.is_empty() {
                // The meta secrets move to the current version too, so older versions can
                // be retired once nothing else uses them.
                for key in [CHECK_KEY, INDEX_KEY] {
                    if let Some(row) = meta::Entity::find_by_id(key.to_owned()).one(db).await? {
                        let secret = self.open_meta(key, &row.value)?;
                        let mut row: meta::ActiveModel = row.into();
                        row.value = Set(self.seal_meta(key, &secret));
                        row.update(db).await.context("re-sealing a meta secret")?;
                    }
                }
                return Ok(count);
            }
            for row in page {
                let version_old = u32::try_from(row.master_version).unwrap_or(u32::MAX);
                let (old_keys, version_old) = self.master_version(version_old)?;
                let old = old_keys.version(version_old).context("master key")?;
                let bytes = envelope::open(old, slot(row.customer_id), &row.wrapped)
                    .map_err(|e| anyhow::anyhow!("cannot unwrap data key: {e}"))?;
                let mut active: data_key::ActiveModel = row.clone().into();
                active.master_version = Set(current);
                active.wrapped = Set(envelope::seal(
                    master,
                    version,
                    slot(row.customer_id),
                    &bytes,
                ));
                active.update(db).await.context("re-wrapping a data key")?;
                count += 1;
            }
        }
    }
}

/// Secrets in `meta` are bound to their key's name (as the row) through the table name.
fn meta_slot(key: &str) -> Slot<'_> {
    Slot {
        table: key,
        column: "meta.value",
        row: 0,
    }
}

/// Encrypts a text or binary field of row `row` in `table.column` with a data key.
pub fn seal_field(
    key: &Aes256GcmSiv,
    table: &str,
    column: &str,
    row: i32,
    plaintext: &[u8],
) -> Vec<u8> {
    envelope::seal(
        key,
        1,
        Slot {
            table,
            column,
            row: i64::from(row),
        },
        plaintext,
    )
}

/// Seals an attachment's content under a data key of its own, itself sealed under the
/// customer's key: returns `(wrapped_key, sealed_content)` for row `id` of `attachments`.
/// Deleting the row destroys the attachment's key (the retention purge), and erasing the
/// customer destroys the key that opens it.
pub fn seal_attachment(customer_key: &Aes256GcmSiv, id: i32, content: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let wrapped = seal_field(customer_key, "attachments", "wrapped_key", id, &bytes);
    // 32 bytes always make a key: new_from_slice only fails on another length.
    let own = Aes256GcmSiv::new(&bytes.into());
    let sealed = seal_field(&own, "attachments", "content", id, content);
    bytes.fill(0);
    (wrapped, sealed)
}

/// Decrypts a field sealed by [`seal_field`] with a raw key: the primitive under
/// [`Opener`], for this module and the benchmarks. Service code never holds a customer's
/// raw key to decrypt with; it gets an [`Opener`] from the [`Vault`].
pub fn open_field(
    key: &Aes256GcmSiv,
    table: &str,
    column: &str,
    row: i32,
    sealed: &[u8],
) -> Result<Vec<u8>, envelope::CryptoError> {
    envelope::open(
        key,
        Slot {
            table,
            column,
            row: i64::from(row),
        },
        sealed,
    )
}

/// One customer's data key as the capability to open that customer's sealed fields: the
/// only way code outside this module decrypts. The disclosure gate obtains one only when
/// the policy lets a field be shown and hands it to that field's renderer; the other
/// holders are deliberate and few (the privacy officer's export, identity verification,
/// which answers match or no match, the contact lookup, and a ticket's own messages).
#[derive(Clone)]
pub struct Opener {
    key: DataKey,
}

impl Opener {
    /// Decrypts one sealed text field; failures are logged without any value and answered
    /// `INTERNAL` for that field only.
    pub fn text(
        &self,
        table: &'static str,
        column: &'static str,
        row: i32,
        sealed: &[u8],
    ) -> crate::error::ApiResult<String> {
        let bytes = self.bytes(table, column, row, sealed)?;
        String::from_utf8(bytes).map_err(|_| {
            tracing::error!(table, column, row, "a decrypted field is not UTF-8");
            crate::error::ApiError::internal(
                anyhow::anyhow!("{table}.{column} of row {row} is not text"),
                "decrypting",
            )
        })
    }

    /// Decrypts an attachment's content: through its own key when it has one
    /// (`wrapped_key`, see [`seal_attachment`]), else sealed directly under the customer's.
    pub fn attachment(
        &self,
        id: i32,
        wrapped_key: Option<&[u8]>,
        sealed: &[u8],
    ) -> crate::error::ApiResult<Vec<u8>> {
        let Some(wrapped) = wrapped_key else {
            return self.bytes("attachments", "content", id, sealed);
        };
        let mut bytes = self.bytes("attachments", "wrapped_key", id, wrapped)?;
        let own = Aes256GcmSiv::new_from_slice(&bytes).map_err(|_| {
            crate::error::ApiError::internal(
                anyhow::anyhow!("attachments.wrapped_key of row {id} is not a key"),
                "decrypting",
            )
        });
        bytes.fill(0);
        let own = own?;
        Opener { key: Arc::new(own) }.bytes("attachments", "content", id, sealed)
    }

    /// Decrypts one sealed binary field (see [`Opener::text`]).
    pub fn bytes(
        &self,
        table: &'static str,
        column: &'static str,
        row: i32,
        sealed: &[u8],
    ) -> crate::error::ApiResult<Vec<u8>> {
        open_field(&self.key, table, column, row, sealed).map_err(|error| {
            tracing::error!(table, column, row, %error, "cannot decrypt a field");
            crate::error::ApiError::internal(
                anyhow::anyhow!("{table}.{column} of row {row}: {error}"),
                "decrypting",
            )
        })
    }
}
