//! Versioned schema migrations, applied at connect under a row lock on `redrive_schema` so two
//! servers starting together apply each migration once (no advisory locks: not every
//! PostgreSQL-compatible engine has them).

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::PgError;

/// `(version, SQL)`, in order. A migration is applied in one transaction with the version bump.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_dedup_seq.sql")),
    (3, include_str!("../migrations/0003_retention_index.sql")),
    (4, include_str!("../migrations/0004_receive_attempts.sql")),
    (5, include_str!("../migrations/0005_minute_history.sql")),
    (6, include_str!("../migrations/0006_received_ms.sql")),
];
/// The newest version this build knows.
pub const SCHEMA_VERSION: i32 = 6;

/// Errors two concurrent `CREATE … IF NOT EXISTS` can raise in PostgreSQL (the catalog's
/// unique index is hit before `IF NOT EXISTS` sees the other's object).
fn concurrent_create(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::UNIQUE_VIOLATION
        || *c == SqlState::DUPLICATE_TABLE
        || *c == SqlState::DUPLICATE_SCHEMA
        || *c == SqlState::DUPLICATE_OBJECT)
}

async fn idempotent(client: &Client, sql: &str) -> Result<(), PgError> {
    for attempt in 0..5 {
        match client.batch_execute(sql).await {
            Ok(()) => return Ok(()),
            Err(e) if concurrent_create(&e) && attempt < 4 => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub(crate) async fn ensure_schema(client: &Client, schema: &str) -> Result<(), PgError> {
    idempotent(client, &format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await
}

pub(crate) async fn migrate(client: &mut Client) -> Result<(), PgError> {
    idempotent(
        client,
        "CREATE TABLE IF NOT EXISTS redrive_schema (
            id int PRIMARY KEY CHECK (id = 1),
            version int NOT NULL
         );
         INSERT INTO redrive_schema VALUES (1, 0) ON CONFLICT DO NOTHING;",
    )
    .await?;
    let tx = client.transaction().await?;
    let found: i32 = tx
        .query_one(
            "SELECT version FROM redrive_schema WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(PgError::SchemaTooNew { found });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "UPDATE redrive_schema SET version = $1 WHERE id = 1",
            &[version],
        )
        .await?;
        tracing::info!(version, "database schema migrated");
    }
    tx.commit().await?;
    Ok(())
}
