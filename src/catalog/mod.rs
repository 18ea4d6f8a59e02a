//! The key catalog: every key's name, owner, purpose, environment, algorithm, provider, state,
//! crypto-period and versions, in the database and mirrored in memory.
//!
//! Reads (every call resolves a key) come from memory and take a short read lock, never held
//! across an await. Writes go to the database first and then replace the in-memory record, so
//! memory never runs ahead of what is durable.

mod claims;
mod family;
mod record;
mod store;
pub mod sync;

pub use family::{KeyCopy, KeyFamily};
pub use record::{KeyRecord, KeyState, VersionRecord};

use crate::db::Db;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

/// Why a catalog change failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the catalog database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("a key named '{0}' already exists")]
    NameTaken(String),
    #[error("key {0} is not in the catalog")]
    Missing(String),
    /// The stored record is not in the state the change expected: another writer (another
    /// gateway sharing the database) changed it first. Nothing was written.
    #[error(
        "key '{key}' changed under this call: expected it {expected}, the catalog has it {found}"
    )]
    Conflict {
        key: String,
        expected: String,
        found: String,
    },
    /// An adoption named a provider key the catalog already manages, or one another adoption
    /// is bringing in right now.
    #[error("{uri} is already managed by keygate as key '{key}'")]
    ProviderKeyTaken { uri: String, key: String },
}

/// The right to change one key: held by exactly one call at a time (see [`Catalog::lock`]).
/// Every catalog write takes one, so writes to a key are serialised and each applies to the
/// record as it is now, never to a snapshot a caller read earlier.
pub struct KeyLock {
    id: String,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

/// A key name held for a creation in progress; released when dropped. On PostgreSQL it is
/// also claimed in the database, so no other replica makes a backend key under the name.
pub struct NameReservation<'c> {
    name: String,
    catalog: &'c Catalog,
    /// The database claim's holder id, once claimed.
    claim: Option<String>,
}

impl Drop for NameReservation<'_> {
    fn drop(&mut self) {
        let mut names = self
            .catalog
            .creating
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        names.remove(&self.name);
        if let Some(holder) = self.claim.take() {
            claims::release_name_soon(&self.catalog.db, std::mem::take(&mut self.name), holder);
        }
    }
}

#[derive(Default)]
struct Index {
    by_id: HashMap<String, Arc<KeyRecord>>,
    id_by_name: HashMap<String, String>,
}

pub struct Catalog {
    db: Db,
    index: RwLock<Index>,
    /// One mutex per key id, created on first use (keys are few; entries stay).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Names of keys being created.
    creating: Mutex<HashSet<String>>,
    /// Provider keys (provider, URI) being adopted: two adoptions of one provider key under
    /// different names take different name reservations, so only this keeps them from both
    /// entering the catalog.
    adopting: Mutex<HashSet<(String, String)>>,
}

/// A provider key (provider instance, URI) held for an adoption in progress; released when
/// dropped.
pub struct ProviderKeyReservation<'c> {
    provider_key: (String, String),
    catalog: &'c Catalog,
}

impl Drop for ProviderKeyReservation<'_> {
    fn drop(&mut self) {
        let mut held = self
            .catalog
            .adopting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        held.remove(&self.provider_key);
    }
}

/// `Some(constraint)` when `e` is a unique violation (the constraint's name where the database
/// gives one: PostgreSQL does, SQLite does not).
fn unique_violation(e: &sqlx::Error) -> Option<Option<&str>> {
    e.as_database_error()
        .filter(|d| d.is_unique_violation())
        .map(|d| d.constraint())
}

/// Filters for [`Catalog::list`].
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub owner: Option<String>,
    pub environment: Option<String>,
}

impl Catalog {
    pub async fn load(db: Db) -> Result<Self, sqlx::Error> {
        let records = store::load_all(&db).await?;
        let mut index = Index::default();
        for record in records {
            index
                .id_by_name
                .insert(record.name.clone(), record.id.clone());
            index.by_id.insert(record.id.clone(), Arc::new(record));
        }
        Ok(Self {
            db,
            index: RwLock::new(index),
            locks: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashSet::new()),
            adopting: Mutex::new(HashSet::new()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // A poisoned lock means a panic while swapping an Arc; the map itself is intact.
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A key by id, or by name.
    pub fn get(&self, name_or_id: &str) -> Option<Arc<KeyRecord>> {
        let index = self.read();
        index.by_id.get(name_or_id).cloned().or_else(|| {
            index
                .id_by_name
                .get(name_or_id)
                .and_then(|id| index.by_id.get(id))
                .cloned()
        })
    }

    pub fn get_by_id(&self, id: &str) -> Option<Arc<KeyRecord>> {
        self.read().by_id.get(id).cloned()
    }

    pub fn contains_name(&self, name: &str) -> bool {
        self.read().id_by_name.contains_key(name)
    }

    /// Keys sorted by name, after `after` (a name), at most `limit`.
    pub fn list(&self, filter: &ListFilter, after: &str, limit: usize) -> Vec<Arc<KeyRecord>> {
        let index = self.read();
        let mut names: Vec<&String> = index
            .id_by_name
            .keys()
            .filter(|n| n.as_str() > after)
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|n| index.id_by_name.get(n).and_then(|id| index.by_id.get(id)))
            .filter(|r| filter.owner.as_ref().is_none_or(|o| &r.owner == o))
            .filter(|r| {
                filter
                    .environment
                    .as_ref()
                    .is_none_or(|e| &r.environment == e)
            })
            .take(limit)
            .cloned()
            .collect()
    }

    /// Every key (for the scheduler).
    pub fn all(&self) -> Vec<Arc<KeyRecord>> {
        self.read().by_id.values().cloned().collect()
    }

    /// Waits for the right to change key `id`. Never held by a hot-path data call.
    pub async fn lock(&self, id: &str) -> KeyLock {
        let mutex = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(id.to_string()).or_default().clone()
        };
        KeyLock {
            id: id.to_string(),
            _guard: mutex.lock_owned().await,
        }
    }

    /// The record as it is now, for the holder of its lock.
    pub fn current(&self, lock: &KeyLock) -> Result<Arc<KeyRecord>, CatalogError> {
        self.get_by_id(&lock.id)
            .ok_or_else(|| CatalogError::Missing(lock.id.clone()))
    }

    /// Holds `name` for a creation: refused if a key has it or another creation holds it,
    /// on this replica or (PostgreSQL) on another.
    pub async fn reserve_name(&self, name: &str) -> Result<NameReservation<'_>, CatalogError> {
        let mut reservation = {
            let mut names = self.creating.lock().unwrap_or_else(|p| p.into_inner());
            if self.contains_name(name) || !names.insert(name.to_string()) {
                return Err(CatalogError::NameTaken(name.to_string()));
            }
            NameReservation {
                name: name.to_string(),
                catalog: self,
                claim: None,
            }
        };
        if self.db.is_postgres() {
            // Dropping the reservation on an error gives the name back in memory.
            let holder = uuid::Uuid::new_v4().to_string();
            if !claims::claim_name(&self.db, name, &holder, crate::time::now_ms()).await? {
                return Err(CatalogError::NameTaken(name.to_string()));
            }
            reservation.claim = Some(holder);
        }
        Ok(reservation)
    }

    /// Holds provider key `uri` of `provider` for an adoption: refused if a catalog key
    /// already has it or another adoption holds it. Hold it until the adopted key is inserted:
    /// the check and the insert are then one step for every other adoption.
    pub fn reserve_provider_key(
        &self,
        provider: &str,
        uri: &str,
    ) -> Result<ProviderKeyReservation<'_>, CatalogError> {
        let mut held = self.adopting.lock().unwrap_or_else(|p| p.into_inner());
        let taken = |key: String| CatalogError::ProviderKeyTaken {
            uri: uri.to_string(),
            key,
        };
        if let Some(managed) = self
            .read()
            .by_id
            .values()
            .find(|k| k.provider == provider && k.provider_uri.as_str() == uri)
        {
            return Err(taken(managed.name.clone()));
        }
        let provider_key = (provider.to_string(), uri.to_string());
        if !held.insert(provider_key.clone()) {
            return Err(taken("(another adoption in progress)".into()));
        }
        Ok(ProviderKeyReservation {
            provider_key,
            catalog: self,
        })
    }

    pub async fn insert(
        &self,
        reservation: &NameReservation<'_>,
        record: KeyRecord,
    ) -> Result<Arc<KeyRecord>, CatalogError> {
        if record.name != reservation.name {
            return Err(CatalogError::NameTaken(record.name));
        }
        if let Err(e) = store::insert(&self.db, &record).await {
            // Another replica made a key of this name, or adopted this provider key, since
            // this one's memory last heard.
            return Err(match unique_violation(&e) {
                Some(Some("keys_by_provider_uri")) => CatalogError::ProviderKeyTaken {
                    uri: record.provider_uri.as_str().to_string(),
                    key: "(adopted on another replica)".into(),
                },
                Some(_) => CatalogError::NameTaken(record.name),
                None => e.into(),
            });
        }
        let record = Arc::new(record);
        let mut index = self.write();
        index
            .id_by_name
            .insert(record.name.clone(), record.id.clone());
        index.by_id.insert(record.id.clone(), record.clone());
        Ok(record)
    }

    /// Appends the next version (after a rotation) to the current record and moves its
    /// rotation due date by the crypto-period.
    pub async fn add_version(
        &self,
        lock: &KeyLock,
        provider_version: String,
        now_ms: i64,
        staged: bool,
    ) -> Result<Arc<KeyRecord>, CatalogError> {
        let current = self.current(lock)?;
        let version = VersionRecord {
            version: current.newest().version + 1,
            provider_version,
            created_at_ms: now_ms,
        };
        let due = crate::time::after(now_ms, current.crypto_period);
        // A staged version waits: the current primary keeps signing until promotion.
        let primary_version = staged.then(|| current.primary().version);
        // The (key, version) primary key refuses a version another writer already added.
        if let Err(e) =
            store::add_version(&self.db, &current.id, &version, due, primary_version).await
        {
            if unique_violation(&e).is_some() {
                self.reload_held(&current.id).await?;
                return Err(CatalogError::Conflict {
                    key: current.name.clone(),
                    expected: format!("newest version {}", version.version - 1),
                    found: "a version added by another writer".into(),
                });
            }
            return Err(e.into());
        }
        let mut updated = (*current).clone();
        updated.versions.push(version);
        updated.rotation_due_at_ms = due;
        updated.primary_version = primary_version;
        Ok(self.replace(updated))
    }

    /// Makes the staged version the primary; nothing changes unless version `expected` is
    /// still the primary with a newer one staged.
    pub async fn promote(
        &self,
        lock: &KeyLock,
        expected: u32,
    ) -> Result<Arc<KeyRecord>, CatalogError> {
        let current = self.current(lock)?;
        let conflict = |found: String| CatalogError::Conflict {
            key: current.name.clone(),
            expected: format!("version {expected} signing with a newer one staged"),
            found,
        };
        if current.primary_version != Some(expected) {
            return Err(conflict(format!(
                "primary version {}",
                current.primary().version
            )));
        }
        if !store::promote(&self.db, &current.id, expected).await? {
            self.reload_held(&current.id).await?;
            return Err(conflict("changed by another writer".into()));
        }
        let mut updated = (*current).clone();
        updated.primary_version = None;
        Ok(self.replace(updated))
    }

    /// Moves the key from `expected` to `state`; nothing changes unless the stored record is
    /// in `expected`.
    pub async fn set_state(
        &self,
        lock: &KeyLock,
        expected: KeyState,
        state: KeyState,
        destruction_at_ms: Option<i64>,
    ) -> Result<Arc<KeyRecord>, CatalogError> {
        let current = self.current(lock)?;
        let conflict = |found: String| CatalogError::Conflict {
            key: current.name.clone(),
            expected: expected.to_string(),
            found,
        };
        if current.state != expected {
            return Err(conflict(current.state.to_string()));
        }
        if !store::set_state(&self.db, &current.id, expected, state, destruction_at_ms).await? {
            self.reload_held(&current.id).await?;
            return Err(conflict("changed by another writer".into()));
        }
        let mut updated = (*current).clone();
        updated.state = state;
        updated.destruction_at_ms = destruction_at_ms;
        Ok(self.replace(updated))
    }

    /// Hands the key to `owner`; nothing changes unless the stored owner is `expected`.
    pub async fn set_owner(
        &self,
        lock: &KeyLock,
        expected: &str,
        owner: &str,
    ) -> Result<Arc<KeyRecord>, CatalogError> {
        let current = self.current(lock)?;
        let conflict = |found: String| CatalogError::Conflict {
            key: current.name.clone(),
            expected: format!("owner {expected}"),
            found,
        };
        if current.owner != expected {
            return Err(conflict(format!("owner {}", current.owner)));
        }
        if !store::set_owner(&self.db, &current.id, expected, owner).await? {
            self.reload_held(&current.id).await?;
            return Err(conflict("changed by another writer".into()));
        }
        let mut updated = (*current).clone();
        updated.owner = owner.to_string();
        Ok(self.replace(updated))
    }

    /// Retires the versions below `floor`; nothing changes unless the stored floor is
    /// `expected`.
    pub async fn set_retired_below(
        &self,
        lock: &KeyLock,
        expected: u32,
        floor: u32,
    ) -> Result<Arc<KeyRecord>, CatalogError> {
        let current = self.current(lock)?;
        let conflict = |found: String| CatalogError::Conflict {
            key: current.name.clone(),
            expected: format!("versions retired below {expected}"),
            found,
        };
        if current.retired_below != expected {
            return Err(conflict(format!(
                "versions retired below {}",
                current.retired_below
            )));
        }
        if !store::set_retired_below(&self.db, &current.id, expected, floor).await? {
            self.reload_held(&current.id).await?;
            return Err(conflict("changed by another writer".into()));
        }
        let mut updated = (*current).clone();
        updated.retired_below = floor;
        Ok(self.replace(updated))
    }

    /// Reloads key `id` from the database, after another replica changed it. Under the key's
    /// lock, so it never lands between a local change's commit and its memory update.
    pub async fn reload(&self, id: &str) -> Result<(), CatalogError> {
        let _lock = self.lock(id).await;
        self.reload_held(id).await
    }

    /// [`Catalog::reload`] for the holder of the key's lock.
    async fn reload_held(&self, id: &str) -> Result<(), CatalogError> {
        let stored = store::load_one(&self.db, id).await?;
        let mut index = self.write();
        match stored {
            Some(record) => {
                index
                    .id_by_name
                    .insert(record.name.clone(), record.id.clone());
                index.by_id.insert(record.id.clone(), Arc::new(record));
            }
            None => {
                if let Some(gone) = index.by_id.remove(id) {
                    index.id_by_name.remove(&gone.name);
                }
            }
        }
        Ok(())
    }

    /// Compares memory with the database and reloads every key that differs (changed, added
    /// or removed elsewhere while no notification came); returns how many.
    pub async fn resync(&self) -> Result<usize, CatalogError> {
        let stored = store::load_all(&self.db).await?;
        let stale: Vec<String> = {
            let index = self.read();
            let ids: HashSet<&str> = stored.iter().map(|r| r.id.as_str()).collect();
            stored
                .iter()
                .filter(|r| {
                    index
                        .by_id
                        .get(&r.id)
                        .is_none_or(|held| held.as_ref() != *r)
                })
                .map(|r| r.id.clone())
                .chain(
                    index
                        .by_id
                        .keys()
                        .filter(|id| !ids.contains(id.as_str()))
                        .cloned(),
                )
                .collect()
        };
        for id in &stale {
            self.reload(id).await?;
        }
        Ok(stale.len())
    }

    fn replace(&self, record: KeyRecord) -> Arc<KeyRecord> {
        let record = Arc::new(record);
        self.write().by_id.insert(record.id.clone(), record.clone());
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_provider::{Algorithm, KeyPurpose, KeyUri};

    fn record(name: &str, uri: &str) -> KeyRecord {
        KeyRecord {
            id: format!("id-{name}"),
            name: name.into(),
            owner: "alice".into(),
            purpose: KeyPurpose::Encrypt,
            environment: "dev".into(),
            algorithm: Algorithm::Aes256Gcm,
            provider: "p".into(),
            provider_uri: KeyUri::new(uri.to_string()),
            state: KeyState::Enabled,
            crypto_period: std::time::Duration::from_secs(86_400),
            created_at_ms: 0,
            rotation_due_at_ms: 86_400_000,
            destruction_at_ms: None,
            labels: Default::default(),
            versions: vec![VersionRecord {
                version: 1,
                provider_version: "1".into(),
                created_at_ms: 0,
            }],
            retired_below: 0,
            expires_at_ms: None,
            primary_version: None,
        }
    }

    #[tokio::test]
    async fn one_provider_key_is_adopted_once() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::load(crate::db::open(dir.path()).await.unwrap().into())
            .await
            .unwrap();
        let first = catalog.reserve_provider_key("p", "p://k").unwrap();
        // A second adoption of the same provider key, under any name, waits for nothing: it
        // is refused while the first holds it.
        assert!(matches!(
            catalog.reserve_provider_key("p", "p://k"),
            Err(CatalogError::ProviderKeyTaken { .. })
        ));
        // The same URI in another provider instance is another key.
        drop(catalog.reserve_provider_key("q", "p://k").unwrap());
        let name = catalog.reserve_name("app/one").await.unwrap();
        catalog
            .insert(&name, record("app/one", "p://k"))
            .await
            .unwrap();
        drop(first);
        match catalog.reserve_provider_key("p", "p://k") {
            Err(CatalogError::ProviderKeyTaken { key, .. }) => assert_eq!(key, "app/one"),
            other => panic!(
                "expected the managed key to hold the URI, got {:?}",
                other.err()
            ),
        }
        // Released on drop when nothing was inserted.
        drop(catalog.reserve_provider_key("p", "p://other").unwrap());
        drop(catalog.reserve_provider_key("p", "p://other").unwrap());
    }
}
