//! BYOK key families: the HSM original and each copy imported into another backend, so every
//! copy of a key can be found (the destruction checklist's "all copies identified").

use super::{Catalog, CatalogError};
use crate::db::Db;
use crate::on_db;

/// One imported copy (or one failed attempt at it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCopy {
    pub provider: String,
    pub provider_kind: String,
    pub imported: bool,
    /// The keygate key holding the copy, once imported.
    pub copy_key_id: Option<String>,
    pub provider_uri: String,
    pub import_method: String,
    pub wrapping_key_id: String,
    /// The ephemeral AES key of a two-step wrap left the HSM (never the key itself).
    pub ephemeral_left_hsm: bool,
    pub imported_at_ms: Option<i64>,
    pub imported_by: String,
    /// When the target's import parameters stop being accepted (AWS `ParametersValidTo`).
    pub import_expires_at_ms: Option<i64>,
    /// The material's lifetime asked for at import (AWS `ValidTo` is the import time plus
    /// this); `None`: it does not expire. Retries and re-imports keep it.
    pub material_validity_ms: Option<i64>,
    /// When the target deletes the imported material; `None`: never. A re-import sets it
    /// anew.
    pub material_expires_at_ms: Option<i64>,
    /// Why the import failed, naming the target; empty once imported.
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFamily {
    /// The HSM original's keygate key id.
    pub key_id: String,
    pub created_by: String,
    pub created_at_ms: i64,
    pub copies: Vec<KeyCopy>,
}

impl KeyFamily {
    /// Complete when every target holds its copy.
    pub fn complete(&self) -> bool {
        self.copies.iter().all(|c| c.imported)
    }

    pub fn state(&self) -> &'static str {
        if self.complete() {
            "complete"
        } else {
            "incomplete"
        }
    }
}

/// A `key_copies` row as stored: the 0/1 flag is a BIGINT on both databases.
#[derive(sqlx::FromRow)]
struct CopyRow {
    provider: String,
    provider_kind: String,
    status: String,
    copy_key_id: Option<String>,
    provider_uri: String,
    import_method: String,
    wrapping_key_id: String,
    ephemeral_left_hsm: i64,
    imported_at_ms: Option<i64>,
    imported_by: String,
    import_expires_at_ms: Option<i64>,
    material_validity_ms: Option<i64>,
    material_expires_at_ms: Option<i64>,
    error: String,
}

impl From<CopyRow> for KeyCopy {
    fn from(r: CopyRow) -> Self {
        KeyCopy {
            provider: r.provider,
            provider_kind: r.provider_kind,
            imported: r.status == "imported",
            copy_key_id: r.copy_key_id,
            provider_uri: r.provider_uri,
            import_method: r.import_method,
            wrapping_key_id: r.wrapping_key_id,
            ephemeral_left_hsm: r.ephemeral_left_hsm != 0,
            imported_at_ms: r.imported_at_ms,
            imported_by: r.imported_by,
            import_expires_at_ms: r.import_expires_at_ms,
            material_validity_ms: r.material_validity_ms,
            material_expires_at_ms: r.material_expires_at_ms,
            error: r.error,
        }
    }
}

async fn save(db: &Db, family: &KeyFamily) -> Result<(), sqlx::Error> {
    on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO key_families (key_id, state, created_by, created_at_ms)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (key_id) DO UPDATE SET state = excluded.state",
        )
        .bind(&family.key_id)
        .bind(family.state())
        .bind(&family.created_by)
        .bind(family.created_at_ms)
        .execute(&mut *tx)
        .await?;
        for c in &family.copies {
            // A retry overwrites the copy's row whole.
            sqlx::query(
                "INSERT INTO key_copies (family_key_id, provider, provider_kind, status,
                     copy_key_id, provider_uri, import_method, wrapping_key_id,
                     ephemeral_left_hsm, imported_at_ms, imported_by, import_expires_at_ms,
                     material_validity_ms, material_expires_at_ms, error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 ON CONFLICT (family_key_id, provider) DO UPDATE SET
                     provider_kind = excluded.provider_kind,
                     status = excluded.status,
                     copy_key_id = excluded.copy_key_id,
                     provider_uri = excluded.provider_uri,
                     import_method = excluded.import_method,
                     wrapping_key_id = excluded.wrapping_key_id,
                     ephemeral_left_hsm = excluded.ephemeral_left_hsm,
                     imported_at_ms = excluded.imported_at_ms,
                     imported_by = excluded.imported_by,
                     import_expires_at_ms = excluded.import_expires_at_ms,
                     material_validity_ms = excluded.material_validity_ms,
                     material_expires_at_ms = excluded.material_expires_at_ms,
                     error = excluded.error",
            )
            .bind(&family.key_id)
            .bind(&c.provider)
            .bind(&c.provider_kind)
            .bind(if c.imported { "imported" } else { "failed" })
            .bind(&c.copy_key_id)
            .bind(&c.provider_uri)
            .bind(&c.import_method)
            .bind(&c.wrapping_key_id)
            .bind(i64::from(c.ephemeral_left_hsm))
            .bind(c.imported_at_ms)
            .bind(&c.imported_by)
            .bind(c.import_expires_at_ms)
            .bind(c.material_validity_ms)
            .bind(c.material_expires_at_ms)
            .bind(&c.error)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    })
}

async fn load(db: &Db, key_id: &str) -> Result<Option<KeyFamily>, sqlx::Error> {
    on_db!(db, |pool| {
        let Some((created_by, created_at_ms)) = sqlx::query_as::<_, (String, i64)>(
            "SELECT created_by, created_at_ms FROM key_families WHERE key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(pool)
        .await?
        else {
            return Ok(None);
        };
        let copies: Vec<CopyRow> = sqlx::query_as(
            "SELECT provider, provider_kind, status, copy_key_id, provider_uri, import_method,
                    wrapping_key_id, ephemeral_left_hsm, imported_at_ms, imported_by,
                    import_expires_at_ms, material_validity_ms, material_expires_at_ms, error
             FROM key_copies WHERE family_key_id = $1 ORDER BY provider",
        )
        .bind(key_id)
        .fetch_all(pool)
        .await?;
        Ok(Some(KeyFamily {
            key_id: key_id.to_string(),
            created_by,
            created_at_ms,
            copies: copies.into_iter().map(KeyCopy::from).collect(),
        }))
    })
}

impl Catalog {
    /// Writes the family and its copies as they are now (a retry overwrites a failed copy).
    pub async fn save_family(&self, family: &KeyFamily) -> Result<(), CatalogError> {
        Ok(save(&self.db, family).await?)
    }

    /// The family whose original is `key_id`, if that key was made by a BYOK import.
    pub async fn family(&self, key_id: &str) -> Result<Option<KeyFamily>, CatalogError> {
        Ok(load(&self.db, key_id).await?)
    }

    /// Every family (for posture scans: there are as many as BYOK imports, not keys).
    pub async fn families(&self) -> Result<Vec<KeyFamily>, CatalogError> {
        let ids: Vec<String> = on_db!(&self.db, |pool| {
            sqlx::query_scalar("SELECT key_id FROM key_families ORDER BY key_id")
                .fetch_all(pool)
                .await?
        });
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(family) = load(&self.db, &id).await? {
                out.push(family);
            }
        }
        Ok(out)
    }
}
