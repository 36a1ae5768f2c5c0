//! SQS limits (sqs-semantics.md §3).

pub const MAX_MESSAGE_SIZE: usize = 1_048_576;
pub const MIN_MAXIMUM_MESSAGE_SIZE: i64 = 1_024;
pub const MAX_BATCH_ENTRIES: usize = 10;
pub const MAX_BATCH_ENTRY_ID_LEN: usize = 80;
pub const MAX_DELAY_SECONDS: i64 = 900;
pub const MIN_RETENTION_SECONDS: i64 = 60;
pub const MAX_RETENTION_SECONDS: i64 = 1_209_600;
pub const DEFAULT_RETENTION_SECONDS: i64 = 345_600;
pub const MAX_VISIBILITY_TIMEOUT: i64 = 43_200;
pub const DEFAULT_VISIBILITY_TIMEOUT: i64 = 30;
pub const MAX_WAIT_TIME_SECONDS: i64 = 20;
pub const MAX_RECEIVE_MESSAGES: i64 = 10;
pub const MAX_QUEUE_NAME_LEN: usize = 80;
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
pub const MAX_ATTRIBUTE_NAME_LEN: usize = 256;
pub const MAX_GROUP_ID_LEN: usize = 128;
pub const MIN_KMS_REUSE_SECONDS: i64 = 60;
pub const MAX_KMS_REUSE_SECONDS: i64 = 86_400;
pub const DEFAULT_KMS_REUSE_SECONDS: i64 = 300;
pub const MAX_LIST_RESULTS: i64 = 1000;
pub const PURGE_INTERVAL_MS: u64 = 60_000;
pub const DEDUP_INTERVAL_MS: u64 = 300_000;
/// Standard-queue in-flight cap (`OverLimit`).
pub const MAX_INFLIGHT_STANDARD: usize = 120_000;
pub const MAX_TAGS: usize = 50;
