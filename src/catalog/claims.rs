//! Key names claimed in PostgreSQL by creations under way, so replicas sharing the database
//! never both make a backend key for one name (`migrations/postgres/0040`). SQLite has one
//! process, whose in-memory reservation is enough.

use crate::db::Db;
use std::time::Duration;

/// How long a claim holds if its replica never releases it (it died mid-creation): longer
/// than any creation runs, since a call ends at `limits.request_timeout`.
const CLAIM_LIFETIME: Duration = Duration::from_secs(600);

/// Claims `name` for `holder` (unique to the reservation) unless a key has it or an
/// unexpired claim holds it; true if claimed.
pub async fn claim_name(
    db: &Db,
    name: &str,
    holder: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let Db::Postgres(pool) = db else {
        return Ok(true);
    };
    let expires = crate::time::after(now_ms, CLAIM_LIFETIME);
    // The key check and the claim are one statement; a key inserted by the claim's previous
    // holder was committed before that claim was released, so it is seen here.
    let claimed = sqlx::query_scalar::<_, String>(
        "INSERT INTO key_name_claims (name, holder, expires_at_ms)
         SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM keys WHERE name = $1)
         ON CONFLICT (name) DO UPDATE
             SET holder = EXCLUDED.holder, expires_at_ms = EXCLUDED.expires_at_ms
             WHERE key_name_claims.expires_at_ms < $4
         RETURNING name",
    )
    .bind(name)
    .bind(holder)
    .bind(expires)
    .bind(now_ms)
    .fetch_optional(pool)
    .await?;
    Ok(claimed.is_some())
}

/// Releases `holder`'s claim in the background (called from a drop); a claim that expired
/// and was taken over is left to its new holder. A release that never runs leaves a claim
/// that expires.
pub fn release_name_soon(db: &Db, name: String, holder: String) {
    let Db::Postgres(pool) = db else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let pool = pool.clone();
    runtime.spawn(async move {
        if let Err(e) = sqlx::query("DELETE FROM key_name_claims WHERE name = $1 AND holder = $2")
            .bind(&name)
            .bind(&holder)
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "a key name claim was not released; it expires by itself");
        }
    });
}
