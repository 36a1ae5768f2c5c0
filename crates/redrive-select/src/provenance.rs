//! The provenance a replayed message carries: one message attribute, so SQS's limit of 10
//! message attributes is spent once, however often a message is replayed.

use serde::{Deserialize, Serialize};

/// The message attribute name (String). Not `AWS.`/`Amazon.`-prefixed, so SQS accepts it.
pub const ATTRIBUTE: &str = "Redrive.Replay";
/// SQS's limit on message attributes per message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// The value of [`ATTRIBUTE`] (compact JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// The dead letter this message is a replay of.
    pub replay_of: String,
    /// 1 for the first replay; a replay of a replay counts up.
    pub replay_count: u32,
    /// The replay run (a server task id, or the CLI's run id) that sent it.
    pub run: String,
    /// ARN of the DLQ it was replayed from.
    pub from: String,
    /// When it was replayed (ms since the Unix epoch).
    pub at: i64,
}

impl Provenance {
    pub fn parse(value: &str) -> Option<Provenance> {
        serde_json::from_str(value).ok()
    }

    pub fn to_value(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The provenance of the next replay of a message that carries `existing` (or none).
    pub fn next(
        existing: Option<&str>,
        replay_of: &str,
        run: &str,
        from: &str,
        at: i64,
    ) -> Provenance {
        let count = existing
            .and_then(Provenance::parse)
            .map_or(1, |p| p.replay_count.saturating_add(1));
        Provenance {
            replay_of: replay_of.to_string(),
            replay_count: count,
            run: run.to_string(),
            from: from.to_string(),
            at,
        }
    }
}

/// Refuses a message whose attributes leave no room for the provenance attribute.
pub fn check_room<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    let mut count = 0;
    for name in names {
        if name == ATTRIBUTE {
            return Ok(()); // replaced in place
        }
        count += 1;
    }
    if count >= MAX_MESSAGE_ATTRIBUTES {
        Err(format!(
            "it has {count} message attributes; the provenance attribute `{ATTRIBUTE}` would exceed SQS's limit of {MAX_MESSAGE_ATTRIBUTES} (use --no-provenance to replay it without one)"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_count_grows_and_room_is_checked() {
        let p1 = Provenance::next(None, "m1", "run-a", "arn:dlq", 5);
        assert_eq!(p1.replay_count, 1);
        let p2 = Provenance::next(Some(&p1.to_value()), "m2", "run-b", "arn:dlq", 6);
        assert_eq!(p2.replay_count, 2);
        assert_eq!(p2.replay_of, "m2");
        assert_eq!(Provenance::parse(&p2.to_value()), Some(p2));
        assert_eq!(
            Provenance::next(Some("garbage"), "m", "r", "a", 0).replay_count,
            1
        );

        let nine: Vec<String> = (0..9).map(|i| format!("a{i}")).collect();
        assert!(check_room(nine.iter().map(String::as_str)).is_ok());
        let ten: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
        let err = check_room(ten.iter().map(String::as_str)).unwrap_err();
        assert!(err.contains("limit of 10"), "{err}");
        let mut with_own = ten.clone();
        with_own[9] = ATTRIBUTE.to_string();
        assert!(check_room(with_own.iter().map(String::as_str)).is_ok());
    }
}
