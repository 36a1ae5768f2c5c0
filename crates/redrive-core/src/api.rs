//! Typed requests and responses of the 23 SQS actions.
//!
//! Both wire protocols decode into these structs (JSON through serde with the AWS member names,
//! Query by hand in `redrive-protocol`), and both encode from the response structs. Member names
//! follow the JSON protocol; the Query names differ for lists and maps and live in the protocol
//! crate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// All 23 actions of API version 2012-11-05.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    AddPermission,
    CancelMessageMoveTask,
    ChangeMessageVisibility,
    ChangeMessageVisibilityBatch,
    CreateQueue,
    DeleteMessage,
    DeleteMessageBatch,
    DeleteQueue,
    GetQueueAttributes,
    GetQueueUrl,
    ListDeadLetterSourceQueues,
    ListMessageMoveTasks,
    ListQueueTags,
    ListQueues,
    PurgeQueue,
    ReceiveMessage,
    RemovePermission,
    SendMessage,
    SendMessageBatch,
    SetQueueAttributes,
    StartMessageMoveTask,
    TagQueue,
    UntagQueue,
}

impl Action {
    pub const ALL: [Action; 23] = [
        Action::AddPermission,
        Action::CancelMessageMoveTask,
        Action::ChangeMessageVisibility,
        Action::ChangeMessageVisibilityBatch,
        Action::CreateQueue,
        Action::DeleteMessage,
        Action::DeleteMessageBatch,
        Action::DeleteQueue,
        Action::GetQueueAttributes,
        Action::GetQueueUrl,
        Action::ListDeadLetterSourceQueues,
        Action::ListMessageMoveTasks,
        Action::ListQueueTags,
        Action::ListQueues,
        Action::PurgeQueue,
        Action::ReceiveMessage,
        Action::RemovePermission,
        Action::SendMessage,
        Action::SendMessageBatch,
        Action::SetQueueAttributes,
        Action::StartMessageMoveTask,
        Action::TagQueue,
        Action::UntagQueue,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::AddPermission => "AddPermission",
            Action::CancelMessageMoveTask => "CancelMessageMoveTask",
            Action::ChangeMessageVisibility => "ChangeMessageVisibility",
            Action::ChangeMessageVisibilityBatch => "ChangeMessageVisibilityBatch",
            Action::CreateQueue => "CreateQueue",
            Action::DeleteMessage => "DeleteMessage",
            Action::DeleteMessageBatch => "DeleteMessageBatch",
            Action::DeleteQueue => "DeleteQueue",
            Action::GetQueueAttributes => "GetQueueAttributes",
            Action::GetQueueUrl => "GetQueueUrl",
            Action::ListDeadLetterSourceQueues => "ListDeadLetterSourceQueues",
            Action::ListMessageMoveTasks => "ListMessageMoveTasks",
            Action::ListQueueTags => "ListQueueTags",
            Action::ListQueues => "ListQueues",
            Action::PurgeQueue => "PurgeQueue",
            Action::ReceiveMessage => "ReceiveMessage",
            Action::RemovePermission => "RemovePermission",
            Action::SendMessage => "SendMessage",
            Action::SendMessageBatch => "SendMessageBatch",
            Action::SetQueueAttributes => "SetQueueAttributes",
            Action::StartMessageMoveTask => "StartMessageMoveTask",
            Action::TagQueue => "TagQueue",
            Action::UntagQueue => "UntagQueue",
        }
    }

    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name() == name)
    }
}

/// A decoded request, whichever protocol it came in.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    AddPermission(AddPermissionInput),
    CancelMessageMoveTask(CancelMessageMoveTaskInput),
    ChangeMessageVisibility(ChangeMessageVisibilityInput),
    ChangeMessageVisibilityBatch(ChangeMessageVisibilityBatchInput),
    CreateQueue(CreateQueueInput),
    DeleteMessage(DeleteMessageInput),
    DeleteMessageBatch(DeleteMessageBatchInput),
    DeleteQueue(QueueUrlInput),
    GetQueueAttributes(GetQueueAttributesInput),
    GetQueueUrl(GetQueueUrlInput),
    ListDeadLetterSourceQueues(ListDeadLetterSourceQueuesInput),
    ListMessageMoveTasks(ListMessageMoveTasksInput),
    ListQueueTags(QueueUrlInput),
    ListQueues(ListQueuesInput),
    PurgeQueue(QueueUrlInput),
    ReceiveMessage(ReceiveMessageInput),
    RemovePermission(RemovePermissionInput),
    SendMessage(SendMessageInput),
    SendMessageBatch(SendMessageBatchInput),
    SetQueueAttributes(SetQueueAttributesInput),
    StartMessageMoveTask(StartMessageMoveTaskInput),
    TagQueue(TagQueueInput),
    UntagQueue(UntagQueueInput),
}

impl Request {
    pub fn action(&self) -> Action {
        match self {
            Request::AddPermission(_) => Action::AddPermission,
            Request::CancelMessageMoveTask(_) => Action::CancelMessageMoveTask,
            Request::ChangeMessageVisibility(_) => Action::ChangeMessageVisibility,
            Request::ChangeMessageVisibilityBatch(_) => Action::ChangeMessageVisibilityBatch,
            Request::CreateQueue(_) => Action::CreateQueue,
            Request::DeleteMessage(_) => Action::DeleteMessage,
            Request::DeleteMessageBatch(_) => Action::DeleteMessageBatch,
            Request::DeleteQueue(_) => Action::DeleteQueue,
            Request::GetQueueAttributes(_) => Action::GetQueueAttributes,
            Request::GetQueueUrl(_) => Action::GetQueueUrl,
            Request::ListDeadLetterSourceQueues(_) => Action::ListDeadLetterSourceQueues,
            Request::ListMessageMoveTasks(_) => Action::ListMessageMoveTasks,
            Request::ListQueueTags(_) => Action::ListQueueTags,
            Request::ListQueues(_) => Action::ListQueues,
            Request::PurgeQueue(_) => Action::PurgeQueue,
            Request::ReceiveMessage(_) => Action::ReceiveMessage,
            Request::RemovePermission(_) => Action::RemovePermission,
            Request::SendMessage(_) => Action::SendMessage,
            Request::SendMessageBatch(_) => Action::SendMessageBatch,
            Request::SetQueueAttributes(_) => Action::SetQueueAttributes,
            Request::StartMessageMoveTask(_) => Action::StartMessageMoveTask,
            Request::TagQueue(_) => Action::TagQueue,
            Request::UntagQueue(_) => Action::UntagQueue,
        }
    }

    /// The queue URL a queue-scoped request names, if any.
    pub fn queue_url(&self) -> Option<&str> {
        match self {
            Request::AddPermission(i) => Some(&i.queue_url),
            Request::ChangeMessageVisibility(i) => Some(&i.queue_url),
            Request::ChangeMessageVisibilityBatch(i) => Some(&i.queue_url),
            Request::DeleteMessage(i) => Some(&i.queue_url),
            Request::DeleteMessageBatch(i) => Some(&i.queue_url),
            Request::DeleteQueue(i) | Request::ListQueueTags(i) | Request::PurgeQueue(i) => {
                Some(&i.queue_url)
            }
            Request::GetQueueAttributes(i) => Some(&i.queue_url),
            Request::ListDeadLetterSourceQueues(i) => Some(&i.queue_url),
            Request::ReceiveMessage(i) => Some(&i.queue_url),
            Request::RemovePermission(i) => Some(&i.queue_url),
            Request::SendMessage(i) => Some(&i.queue_url),
            Request::SendMessageBatch(i) => Some(&i.queue_url),
            Request::SetQueueAttributes(i) => Some(&i.queue_url),
            Request::TagQueue(i) => Some(&i.queue_url),
            Request::UntagQueue(i) => Some(&i.queue_url),
            Request::CancelMessageMoveTask(_)
            | Request::CreateQueue(_)
            | Request::GetQueueUrl(_)
            | Request::ListMessageMoveTasks(_)
            | Request::ListQueues(_)
            | Request::StartMessageMoveTask(_) => None,
        }
    }
}

/// Base64 (standard alphabet) for blobs, as the JSON protocol sends them.
pub mod blob {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }

    pub mod list {
        use base64::Engine as _;
        use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

        pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for b in v {
                seq.serialize_element(&base64::engine::general_purpose::STANDARD.encode(b))?;
            }
            seq.end()
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
            let v: Option<Vec<String>> = Option::deserialize(d)?;
            v.unwrap_or_default()
                .into_iter()
                .map(|s| {
                    base64::engine::general_purpose::STANDARD
                        .decode(s.as_bytes())
                        .map_err(serde::de::Error::custom)
                })
                .collect()
        }
    }
}

/// A message attribute value (`MessageAttributeValue` and `MessageSystemAttributeValue`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageAttributeValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    #[serde(default, with = "blob", skip_serializing_if = "Option::is_none")]
    pub binary_value: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub string_list_values: Vec<String>,
    #[serde(default, with = "blob::list", skip_serializing_if = "Vec::is_empty")]
    pub binary_list_values: Vec<Vec<u8>>,
    #[serde(default)]
    pub data_type: String,
}

pub type MessageAttributes = BTreeMap<String, MessageAttributeValue>;

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueUrlInput {
    #[serde(default)]
    pub queue_url: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateQueueInput {
    #[serde(default)]
    pub queue_name: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// JSON member is lower-case `tags`; Query uses `Tag.N.Key`/`Tag.N.Value`.
    #[serde(default, rename = "tags")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetQueueUrlInput {
    #[serde(default)]
    pub queue_name: String,
    #[serde(default, rename = "QueueOwnerAWSAccountId")]
    pub queue_owner_aws_account_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQueuesInput {
    #[serde(default)]
    pub queue_name_prefix: Option<String>,
    #[serde(default)]
    pub next_token: Option<String>,
    #[serde(default)]
    pub max_results: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetQueueAttributesInput {
    #[serde(default)]
    pub queue_url: String,
    #[serde(default)]
    pub attribute_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SetQueueAttributesInput {
    #[serde(default)]
    pub queue_url: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendMessageInput {
    #[serde(default)]
    pub queue_url: String,
    /// `None` when the member was absent (MissingParameter), `Some("")` when empty.
    #[serde(default)]
    pub message_body: Option<String>,
    #[serde(default)]
    pub delay_seconds: Option<i64>,
    #[serde(default)]
    pub message_attributes: MessageAttributes,
    #[serde(default)]
    pub message_system_attributes: MessageAttributes,
    #[serde(default)]
    pub message_deduplication_id: Option<String>,
    #[serde(default)]
    pub message_group_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendMessageBatchRequestEntry {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub message_body: Option<String>,
    #[serde(default)]
    pub delay_seconds: Option<i64>,
    #[serde(default)]
    pub message_attributes: MessageAttributes,
    #[serde(default)]
    pub message_system_attributes: MessageAttributes,
    #[serde(default)]
    pub message_deduplication_id: Option<String>,
    #[serde(default)]
    pub message_group_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendMessageBatchInput {
    #[serde(default)]
    pub queue_url: String,
    #[serde(default)]
    pub entries: Vec<SendMessageBatchRequestEntry>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReceiveMessageInput {
    #[serde(default)]
    pub queue_url: String,
    /// Deprecated `AttributeNames` (system attributes).
    #[serde(default)]
    pub attribute_names: Vec<String>,
    #[serde(default)]
    pub message_system_attribute_names: Vec<String>,
    #[serde(default)]
    pub message_attribute_names: Vec<String>,
    #[serde(default)]
    pub max_number_of_messages: Option<i64>,
    #[serde(default)]
    pub visibility_timeout: Option<i64>,
    #[serde(default)]
    pub wait_time_seconds: Option<i64>,
    #[serde(default)]
    pub receive_request_attempt_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteMessageInput {
    #[serde(default)]
    pub queue_url: String,
    #[serde(default)]
    pub receipt_handle: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteMessageBatchRequestEntry {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub receipt_handle: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteMessageBatchInput {
    #[serde(default)]
    pub queue_url: String,
    #[serde(default)]
    pub entries: Vec<DeleteMessageBatchRequestEntry>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChangeMessageVisibilityInput {
    #[serde(default)]
    pub queue_url: String,
    #[serde(default)]
    pub receipt_handle: Option<String>,
    #[serde(default)]
    pub visibility_timeout: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChangeMessageVisibilityBatchRequestEntry {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub receipt_handle: String,
    #[serde(default)]
    pub visibility_timeout: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChangeMessageVisibilityBatchInput {
    #[serde(default)]
    pub queue_url: String,
    #[serde(default)]
    pub entries: Vec<ChangeMessageVisibilityBatchRequestEntry>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagQueueInput {
    #[serde(default)]
    pub queue_url: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagQueueInput {
    #[serde(default)]
    pub queue_url: String,
    #[serde(default)]
    pub tag_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddPermissionInput {
    #[serde(default)]
    pub queue_url: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default, rename = "AWSAccountIds")]
    pub aws_account_ids: Vec<String>,
    #[serde(default)]
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemovePermissionInput {
    #[serde(default)]
    pub queue_url: String,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListDeadLetterSourceQueuesInput {
    #[serde(default)]
    pub queue_url: String,
    #[serde(default)]
    pub next_token: Option<String>,
    #[serde(default)]
    pub max_results: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartMessageMoveTaskInput {
    #[serde(default)]
    pub source_arn: String,
    #[serde(default)]
    pub destination_arn: Option<String>,
    #[serde(default)]
    pub max_number_of_messages_per_second: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CancelMessageMoveTaskInput {
    #[serde(default)]
    pub task_handle: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListMessageMoveTasksInput {
    #[serde(default)]
    pub source_arn: String,
    #[serde(default)]
    pub max_results: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Responses

/// A successful response, whichever action.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// Actions whose result has no members (DeleteQueue, SetQueueAttributes, ...).
    Empty(Action),
    CreateQueue(QueueUrlOutput),
    GetQueueUrl(QueueUrlOutput),
    ListQueues(ListQueuesOutput),
    GetQueueAttributes(GetQueueAttributesOutput),
    SendMessage(SendMessageOutput),
    SendMessageBatch(SendMessageBatchOutput),
    ReceiveMessage(ReceiveMessageOutput),
    DeleteMessageBatch(BatchOutput),
    ChangeMessageVisibilityBatch(BatchOutput),
    ListQueueTags(ListQueueTagsOutput),
    ListDeadLetterSourceQueues(ListDeadLetterSourceQueuesOutput),
    StartMessageMoveTask(StartMessageMoveTaskOutput),
    CancelMessageMoveTask(CancelMessageMoveTaskOutput),
    ListMessageMoveTasks(ListMessageMoveTasksOutput),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueUrlOutput {
    pub queue_url: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQueuesOutput {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queue_urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetQueueAttributesOutput {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SendMessageOutput {
    #[serde(rename = "MessageId")]
    pub message_id: String,
    #[serde(rename = "MD5OfMessageBody")]
    pub md5_of_message_body: String,
    #[serde(
        rename = "MD5OfMessageAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub md5_of_message_attributes: Option<String>,
    #[serde(
        rename = "MD5OfMessageSystemAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub md5_of_message_system_attributes: Option<String>,
    #[serde(rename = "SequenceNumber", skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SendMessageBatchResultEntry {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(flatten)]
    pub result: SendMessageOutput,
}

/// A failed batch entry.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchResultErrorEntry {
    pub id: String,
    pub sender_fault: bool,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendMessageBatchOutput {
    pub successful: Vec<SendMessageBatchResultEntry>,
    pub failed: Vec<BatchResultErrorEntry>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchSuccessEntry {
    pub id: String,
}

/// Result of DeleteMessageBatch and ChangeMessageVisibilityBatch.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchOutput {
    pub successful: Vec<BatchSuccessEntry>,
    pub failed: Vec<BatchResultErrorEntry>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ReceivedMessage {
    #[serde(rename = "MessageId")]
    pub message_id: String,
    #[serde(rename = "ReceiptHandle")]
    pub receipt_handle: String,
    #[serde(rename = "MD5OfBody")]
    pub md5_of_body: String,
    #[serde(rename = "Body")]
    pub body: String,
    #[serde(rename = "Attributes", skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    #[serde(
        rename = "MD5OfMessageAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub md5_of_message_attributes: Option<String>,
    #[serde(
        rename = "MessageAttributes",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub message_attributes: MessageAttributes,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReceiveMessageOutput {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<ReceivedMessage>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQueueTagsOutput {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ListDeadLetterSourceQueuesOutput {
    /// The JSON member really is lower-case `queueUrls`.
    #[serde(rename = "queueUrls")]
    pub queue_urls: Vec<String>,
    #[serde(rename = "NextToken", skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartMessageMoveTaskOutput {
    pub task_handle: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CancelMessageMoveTaskOutput {
    pub approximate_number_of_messages_moved: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListMessageMoveTasksResultEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_handle: Option<String>,
    pub status: String,
    pub source_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_number_of_messages_per_second: Option<i64>,
    pub approximate_number_of_messages_moved: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approximate_number_of_messages_to_move: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    pub started_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListMessageMoveTasksOutput {
    pub results: Vec<ListMessageMoveTasksResultEntry>,
}
