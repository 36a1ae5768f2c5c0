//! Which dead letters a replay takes, and how it rewrites their bodies.
//!
//! A [`SelectionSpec`] is what a user writes (CLI flags, the server's JSON API, a schedule);
//! [`Selection`] is its compiled form. The same spec selects the same messages on the client
//! and in the server.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jq::{self, GroupBy, JqError, Output, Val};

/// A selection as written by a user. Times are milliseconds since the Unix epoch; bounds are
/// inclusive after / exclusive before.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectionSpec {
    /// jq filter over the body (`.`) and `$meta`; a message is selected when its first output
    /// is truthy (not `false`, not `null`). Errors and no output do not select.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_before: Option<i64>,
    /// Only messages whose dead-letter time is known (a Redrive server) can match a
    /// dead-lettered window; elsewhere such a window selects nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_lettered_after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_lettered_before: Option<i64>,
    /// At most this many messages (oldest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// A selection or transform that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectError {
    #[error("{0}")]
    Jq(String),
    #[error("invalid time window: {0}")]
    Window(String),
    #[error("--limit must be at least 1")]
    Limit,
}

impl From<JqError> for SelectError {
    fn from(e: JqError) -> Self {
        SelectError::Jq(e.to_string())
    }
}

/// The facts about one message a selection looks at.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub body: &'a str,
    /// `$meta` (see [`meta`]).
    pub meta: &'a Value,
    pub sent_ms: Option<i64>,
    pub dead_lettered_ms: Option<i64>,
}

/// A compiled [`SelectionSpec`].
pub struct Selection {
    pub spec: SelectionSpec,
    filter: Option<GroupBy>,
}

impl std::fmt::Debug for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selection")
            .field("spec", &self.spec)
            .finish()
    }
}

/// Why a message was or was not selected.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Selected,
    /// Outside a time window or not matched by the filter.
    NotSelected,
    /// The filter failed on this message (not selected; counted and reported).
    FilterError(String),
}

impl Selection {
    pub fn compile(spec: &SelectionSpec) -> Result<Selection, SelectError> {
        if spec.limit == Some(0) {
            return Err(SelectError::Limit);
        }
        for (what, after, before) in [
            ("sent", spec.sent_after, spec.sent_before),
            (
                "dead-lettered",
                spec.dead_lettered_after,
                spec.dead_lettered_before,
            ),
        ] {
            if let (Some(a), Some(b)) = (after, before)
                && a >= b
            {
                return Err(SelectError::Window(format!(
                    "{what}-after must be earlier than {what}-before"
                )));
            }
        }
        let filter = spec.filter.as_deref().map(GroupBy::compile).transpose()?;
        Ok(Selection {
            spec: spec.clone(),
            filter,
        })
    }

    pub fn judge(&self, c: &Candidate<'_>) -> Verdict {
        let s = &self.spec;
        let within = |t: Option<i64>, after: Option<i64>, before: Option<i64>| {
            if after.is_none() && before.is_none() {
                return true;
            }
            let Some(t) = t else { return false };
            after.is_none_or(|a| t >= a) && before.is_none_or(|b| t < b)
        };
        if !within(c.sent_ms, s.sent_after, s.sent_before)
            || !within(
                c.dead_lettered_ms,
                s.dead_lettered_after,
                s.dead_lettered_before,
            )
        {
            return Verdict::NotSelected;
        }
        let Some(filter) = &self.filter else {
            return Verdict::Selected;
        };
        match filter.first(&jq::body_value(c.body), &jq::from_json(c.meta)) {
            Output::Value(v) if jq::truthy(&v) => Verdict::Selected,
            Output::Value(_) | Output::Nothing => Verdict::NotSelected,
            Output::Error(e) => Verdict::FilterError(e),
        }
    }
}

/// A jq expression that produces a message's new body.
pub struct Transform {
    expr: GroupBy,
}

/// Why a transform cannot be applied to a message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransformError {
    #[error("the transform produced {0}, not a string (end it with `| tojson` to send JSON)")]
    NotAString(&'static str),
    #[error("the transform produced no output")]
    Nothing,
    #[error("the transform failed: {0}")]
    Failed(String),
    #[error("the transformed body is {0} bytes; the maximum message size is {1} bytes")]
    TooLarge(usize, usize),
    #[error("the transformed body is empty")]
    Empty,
}

impl Transform {
    pub fn compile(expr: &str) -> Result<Transform, SelectError> {
        Ok(Transform {
            expr: GroupBy::compile(expr)?,
        })
    }

    pub fn expr(&self) -> &str {
        &self.expr.expr
    }

    /// The new body: the expression's first output, which must be a non-empty string within
    /// `max_size` bytes.
    pub fn apply(
        &self,
        body: &str,
        meta: &Value,
        max_size: usize,
    ) -> Result<String, TransformError> {
        match self.expr.first(&jq::body_value(body), &jq::from_json(meta)) {
            Output::Nothing => Err(TransformError::Nothing),
            Output::Error(e) => Err(TransformError::Failed(e)),
            Output::Value(Val::TStr(b)) => {
                let text = String::from_utf8_lossy(&b).into_owned();
                if text.is_empty() {
                    Err(TransformError::Empty)
                } else if text.len() > max_size {
                    Err(TransformError::TooLarge(text.len(), max_size))
                } else {
                    Ok(text)
                }
            }
            Output::Value(v) => Err(TransformError::NotAString(kind(&v))),
        }
    }
}

fn kind(v: &Val) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "a boolean",
        Val::Num(_) => "a number",
        Val::BStr(_) | Val::TStr(_) => "a string",
        Val::Arr(_) => "an array",
        Val::Obj(_) => "an object",
    }
}

/// The fields `$meta` holds (the same shape on the CLI and on the server).
#[derive(Debug, Clone, Default)]
pub struct MetaFields<'a> {
    pub message_id: &'a str,
    pub sent_timestamp: Option<i64>,
    pub dead_lettered_at: Option<i64>,
    pub receive_count: Option<u64>,
    pub group_id: Option<&'a str>,
    pub dead_letter_source_arn: Option<&'a str>,
    /// System attributes as SQS names them.
    pub attributes: Value,
    /// `{name: {"DataType", "StringValue" | "BinaryValue"}}`
    pub message_attributes: Value,
}

/// `$meta` for a message.
pub fn meta(f: MetaFields<'_>) -> Value {
    serde_json::json!({
        "messageId": f.message_id,
        "sentTimestamp": f.sent_timestamp,
        "deadLetteredAt": f.dead_lettered_at,
        "receiveCount": f.receive_count,
        "groupId": f.group_id,
        "deadLetterQueueSourceArn": f.dead_letter_source_arn,
        "attributes": f.attributes,
        "messageAttributes": f.message_attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand<'a>(body: &'a str, meta: &'a Value, sent: i64) -> Candidate<'a> {
        Candidate {
            body,
            meta,
            sent_ms: Some(sent),
            dead_lettered_ms: None,
        }
    }

    #[test]
    fn filter_windows_and_errors() {
        let meta = serde_json::json!({"receiveCount": 5});
        let sel = Selection::compile(&SelectionSpec {
            filter: Some(r#".mall_id == "m1" and $meta.receiveCount >= 5"#.into()),
            sent_after: Some(100),
            sent_before: Some(200),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            sel.judge(&cand(r#"{"mall_id":"m1"}"#, &meta, 150)),
            Verdict::Selected
        );
        assert_eq!(
            sel.judge(&cand(r#"{"mall_id":"m2"}"#, &meta, 150)),
            Verdict::NotSelected
        );
        assert_eq!(
            sel.judge(&cand(r#"{"mall_id":"m1"}"#, &meta, 200)),
            Verdict::NotSelected
        );
        assert_eq!(
            sel.judge(&cand(r#"{"mall_id":"m1"}"#, &meta, 99)),
            Verdict::NotSelected
        );
        // A non-JSON body is a jq string: `.mall_id` fails on it.
        assert!(matches!(
            sel.judge(&cand("plain text", &meta, 150)),
            Verdict::FilterError(_)
        ));
        // A dead-lettered window never matches a message without a dead-letter time.
        let sel = Selection::compile(&SelectionSpec {
            dead_lettered_after: Some(1),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(sel.judge(&cand("x", &meta, 150)), Verdict::NotSelected);
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(matches!(
            Selection::compile(&SelectionSpec {
                filter: Some(".a |".into()),
                ..Default::default()
            }),
            Err(SelectError::Jq(_))
        ));
        assert_eq!(
            Selection::compile(&SelectionSpec {
                sent_after: Some(5),
                sent_before: Some(5),
                ..Default::default()
            })
            .unwrap_err(),
            SelectError::Window("sent-after must be earlier than sent-before".into())
        );
        assert_eq!(
            Selection::compile(&SelectionSpec {
                limit: Some(0),
                ..Default::default()
            })
            .unwrap_err(),
            SelectError::Limit
        );
    }

    #[test]
    fn transforms_must_produce_a_string_within_the_limit() {
        let meta = serde_json::json!({"messageId": "id-1"});
        let t = Transform::compile(r#".v = 2 | tojson"#).unwrap();
        assert_eq!(t.apply(r#"{"v":1}"#, &meta, 1000).unwrap(), r#"{"v":2}"#);
        let t = Transform::compile(r#".v = 2"#).unwrap();
        assert_eq!(
            t.apply(r#"{"v":1}"#, &meta, 1000).unwrap_err(),
            TransformError::NotAString("an object")
        );
        let t = Transform::compile(r#"$meta.messageId"#).unwrap();
        assert_eq!(t.apply("x", &meta, 1000).unwrap(), "id-1");
        assert_eq!(
            t.apply("x", &meta, 3).unwrap_err(),
            TransformError::TooLarge(4, 3)
        );
        let t = Transform::compile("empty").unwrap();
        assert_eq!(
            t.apply("x", &meta, 10).unwrap_err(),
            TransformError::Nothing
        );
    }
}
