//! The key catalog: every key's name, owner, purpose, environment, algorithm, provider, state,
//! crypto-period and versions, in the database and mirrored in memory.
//!
//! Reads (every call resolves a key) come from memory and take a short read lock, never held
//! across an await. Writes go to the database first and then replace the in-memory record, so
//! memory never runs ahead of what is durable.

mod record;
mod store;

pub use record::{KeyRecord, KeyState, VersionRecord};

use sqlx::SqlitePool;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Default)]
struct Index {
    by_id: HashMap<String, Arc<KeyRecord>>,
    id_by_name: HashMap<String, String>,
}

pub struct Catalog {
    db: SqlitePool,
    index: RwLock<Index>,
}

/// Filters for [`Catalog::list`].
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub owner: Option<String>,
    pub environment: Option<String>,
}

impl Catalog {
    pub async fn load(db: SqlitePool) -> Result<Self, sqlx::Error> {
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

    pub async fn insert(&self, record: KeyRecord) -> Result<Arc<KeyRecord>, sqlx::Error> {
        store::insert(&self.db, &record).await?;
        let record = Arc::new(record);
        let mut index = self.write();
        index
            .id_by_name
            .insert(record.name.clone(), record.id.clone());
        index.by_id.insert(record.id.clone(), record.clone());
        Ok(record)
    }

    /// Appends a version (after a rotation) and moves the rotation due date.
    pub async fn add_version(
        &self,
        current: &KeyRecord,
        version: VersionRecord,
        rotation_due_at_ms: i64,
    ) -> Result<Arc<KeyRecord>, sqlx::Error> {
        store::add_version(&self.db, &current.id, &version, rotation_due_at_ms).await?;
        let mut updated = current.clone();
        updated.versions.push(version);
        updated.rotation_due_at_ms = rotation_due_at_ms;
        Ok(self.replace(updated))
    }

    pub async fn set_state(
        &self,
        current: &KeyRecord,
        state: KeyState,
        destruction_at_ms: Option<i64>,
    ) -> Result<Arc<KeyRecord>, sqlx::Error> {
        store::set_state(&self.db, &current.id, state, destruction_at_ms).await?;
        let mut updated = current.clone();
        updated.state = state;
        updated.destruction_at_ms = destruction_at_ms;
        Ok(self.replace(updated))
    }

    fn replace(&self, record: KeyRecord) -> Arc<KeyRecord> {
        let record = Arc::new(record);
        self.write().by_id.insert(record.id.clone(), record.clone());
        record
    }
}
