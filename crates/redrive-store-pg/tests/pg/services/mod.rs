mod checker;
mod transitions;

use redrive_store_pg::{Created, PgStore, QueueRow};

/// The test database's URL; the `services` profile fails without it.
pub fn url() -> String {
    std::env::var("REDRIVE_TEST_POSTGRES_URL").expect(
        "REDRIVE_TEST_POSTGRES_URL is not set: `source tests/services/start.sh` first (the `services` nextest profile)",
    )
}

/// A fresh schema for one test, and `servers` stores on it.
pub async fn servers(test: &str, servers: usize) -> Vec<PgStore> {
    let schema = format!(
        "t_{test}_{}",
        uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
    );
    let mut out = Vec::new();
    for _ in 0..servers {
        out.push(PgStore::connect(&url(), Some(&schema), 4).await.unwrap());
    }
    out
}

/// Creates a queue in `us-east-1` that must not exist yet.
pub async fn create(store: &PgStore, name: &str, fifo: bool, partitions: i16) -> QueueRow {
    match store
        .create_queue("us-east-1", name, fifo, partitions, &serde_json::json!({}))
        .await
        .unwrap()
    {
        Created::Created(q) => q,
        Created::Existing(_) => panic!("queue {name} already existed"),
    }
}
