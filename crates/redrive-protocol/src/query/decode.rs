//! Query parameters to typed requests, using the `xmlName`/flattened names of the SQS model.

use redrive_core::api::*;
use redrive_core::{ErrorCode, SqsError};

use super::Params;

/// Decodes the request named by the `Action` parameter.
///
/// `path_queue_url` is the queue URL of the request path (`/{account}/{queue}`), used when the
/// `QueueUrl` parameter is absent. Absent members keep their struct defaults, for the engine to
/// report; unknown parameters (`Version`, authentication, …) are ignored.
pub fn decode(params: &Params, path_queue_url: Option<&str>) -> Result<Request, SqsError> {
    let name = params
        .str("Action")
        .ok_or_else(|| SqsError::missing_parameter("Action"))?;
    let action = Action::from_name(name).ok_or_else(|| {
        SqsError::new(
            ErrorCode::InvalidAction,
            format!("The action {name} is not valid for this endpoint."),
        )
    })?;
    // A queue URL is an endpoint for that queue's actions only (AWS-recorded, LocalStack's
    // validated TestSqsQueryApi): CreateQueue and ListQueues there are InvalidAction.
    if path_queue_url.is_some() && matches!(action, Action::CreateQueue | Action::ListQueues) {
        return Err(SqsError::new(
            ErrorCode::InvalidAction,
            format!("The action {name} is not valid for this endpoint."),
        ));
    }
    let p = params;
    let queue_url = || {
        p.str("QueueUrl")
            .or(path_queue_url)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(match action {
        Action::AddPermission => Request::AddPermission(AddPermissionInput {
            queue_url: queue_url(),
            label: p.opt_string("Label"),
            aws_account_ids: p.list("AWSAccountId"),
            actions: p.list("ActionName"),
        }),
        Action::CancelMessageMoveTask => {
            Request::CancelMessageMoveTask(CancelMessageMoveTaskInput {
                task_handle: p.string("TaskHandle"),
            })
        }
        Action::ChangeMessageVisibility => {
            Request::ChangeMessageVisibility(ChangeMessageVisibilityInput {
                queue_url: queue_url(),
                receipt_handle: p.opt_string("ReceiptHandle"),
                visibility_timeout: p.int("VisibilityTimeout")?,
            })
        }
        Action::ChangeMessageVisibilityBatch => {
            Request::ChangeMessageVisibilityBatch(ChangeMessageVisibilityBatchInput {
                queue_url: queue_url(),
                entries: p
                    .structs("ChangeMessageVisibilityBatchRequestEntry")
                    .iter()
                    .map(|e| {
                        Ok(ChangeMessageVisibilityBatchRequestEntry {
                            id: e.string("Id"),
                            receipt_handle: e.string("ReceiptHandle"),
                            visibility_timeout: e.int("VisibilityTimeout")?,
                        })
                    })
                    .collect::<Result<_, SqsError>>()?,
            })
        }
        Action::CreateQueue => Request::CreateQueue(CreateQueueInput {
            queue_name: required(p, "QueueName")?,
            attributes: p.map("Attribute", "Name", "Value"),
            tags: p.map("Tag", "Key", "Value"),
        }),
        Action::DeleteMessage => Request::DeleteMessage(DeleteMessageInput {
            queue_url: queue_url(),
            receipt_handle: p.opt_string("ReceiptHandle"),
        }),
        Action::DeleteMessageBatch => Request::DeleteMessageBatch(DeleteMessageBatchInput {
            queue_url: queue_url(),
            entries: p
                .structs("DeleteMessageBatchRequestEntry")
                .iter()
                .map(|e| DeleteMessageBatchRequestEntry {
                    id: e.string("Id"),
                    receipt_handle: e.string("ReceiptHandle"),
                })
                .collect(),
        }),
        Action::DeleteQueue => Request::DeleteQueue(QueueUrlInput {
            queue_url: queue_url(),
        }),
        Action::GetQueueAttributes => Request::GetQueueAttributes(GetQueueAttributesInput {
            queue_url: queue_url(),
            attribute_names: p.list("AttributeName"),
        }),
        Action::GetQueueUrl => Request::GetQueueUrl(GetQueueUrlInput {
            queue_name: required(p, "QueueName")?,
            queue_owner_aws_account_id: p.opt_string("QueueOwnerAWSAccountId"),
        }),
        Action::ListDeadLetterSourceQueues => {
            Request::ListDeadLetterSourceQueues(ListDeadLetterSourceQueuesInput {
                queue_url: queue_url(),
                next_token: p.opt_string("NextToken"),
                max_results: p.int("MaxResults")?,
            })
        }
        Action::ListMessageMoveTasks => Request::ListMessageMoveTasks(ListMessageMoveTasksInput {
            source_arn: p.string("SourceArn"),
            max_results: p.int("MaxResults")?,
        }),
        Action::ListQueueTags => Request::ListQueueTags(QueueUrlInput {
            queue_url: queue_url(),
        }),
        Action::ListQueues => Request::ListQueues(ListQueuesInput {
            queue_name_prefix: p.opt_string("QueueNamePrefix"),
            next_token: p.opt_string("NextToken"),
            max_results: p.int("MaxResults")?,
        }),
        Action::PurgeQueue => Request::PurgeQueue(QueueUrlInput {
            queue_url: queue_url(),
        }),
        Action::ReceiveMessage => Request::ReceiveMessage(ReceiveMessageInput {
            queue_url: queue_url(),
            attribute_names: p.list("AttributeName"),
            message_system_attribute_names: p.list("MessageSystemAttributeName"),
            message_attribute_names: p.list("MessageAttributeName"),
            max_number_of_messages: p.int("MaxNumberOfMessages")?,
            visibility_timeout: p.int("VisibilityTimeout")?,
            wait_time_seconds: p.int("WaitTimeSeconds")?,
            receive_request_attempt_id: p.opt_string("ReceiveRequestAttemptId"),
        }),
        Action::RemovePermission => Request::RemovePermission(RemovePermissionInput {
            queue_url: queue_url(),
            label: p.opt_string("Label"),
        }),
        Action::SendMessage => Request::SendMessage(SendMessageInput {
            queue_url: queue_url(),
            message_body: p.opt_string("MessageBody"),
            delay_seconds: p.int("DelaySeconds")?,
            message_attributes: message_attributes(p, "MessageAttribute")?,
            message_system_attributes: message_attributes(p, "MessageSystemAttribute")?,
            message_deduplication_id: p.opt_string("MessageDeduplicationId"),
            message_group_id: p.opt_string("MessageGroupId"),
        }),
        Action::SendMessageBatch => Request::SendMessageBatch(SendMessageBatchInput {
            queue_url: queue_url(),
            entries: p
                .structs("SendMessageBatchRequestEntry")
                .iter()
                .map(|e| {
                    Ok(SendMessageBatchRequestEntry {
                        id: e.string("Id"),
                        message_body: e.opt_string("MessageBody"),
                        delay_seconds: e.int("DelaySeconds")?,
                        message_attributes: message_attributes(e, "MessageAttribute")?,
                        message_system_attributes: message_attributes(e, "MessageSystemAttribute")?,
                        message_deduplication_id: e.opt_string("MessageDeduplicationId"),
                        message_group_id: e.opt_string("MessageGroupId"),
                    })
                })
                .collect::<Result<_, SqsError>>()?,
        }),
        Action::SetQueueAttributes => Request::SetQueueAttributes(SetQueueAttributesInput {
            queue_url: queue_url(),
            attributes: p.map("Attribute", "Name", "Value"),
        }),
        Action::StartMessageMoveTask => Request::StartMessageMoveTask(StartMessageMoveTaskInput {
            source_arn: p.string("SourceArn"),
            destination_arn: p.opt_string("DestinationArn"),
            max_number_of_messages_per_second: p.int("MaxNumberOfMessagesPerSecond")?,
        }),
        Action::TagQueue => Request::TagQueue(TagQueueInput {
            queue_url: queue_url(),
            tags: p.map("Tag", "Key", "Value"),
        }),
        Action::UntagQueue => Request::UntagQueue(UntagQueueInput {
            queue_url: queue_url(),
            tag_keys: p.list("TagKey"),
        }),
    })
}

/// `prefix.N.Name` with `prefix.N.Value.{StringValue, BinaryValue, StringListValue.M,
/// BinaryListValue.M, DataType}`. Entries without a name are skipped.
fn message_attributes(p: &Params, prefix: &str) -> Result<MessageAttributes, SqsError> {
    let mut attributes = MessageAttributes::new();
    for entry in p.structs(prefix) {
        let Some(name) = entry.opt_string("Name") else {
            continue;
        };
        let v = entry.sub("Value");
        let value = MessageAttributeValue {
            string_value: v.opt_string("StringValue"),
            binary_value: v.blob("BinaryValue")?,
            string_list_values: v.list("StringListValue"),
            binary_list_values: v.blob_list("BinaryListValue")?,
            data_type: v.string("DataType"),
        };
        attributes.insert(name, value);
    }
    Ok(attributes)
}

/// A parameter the model marks as required: absent → `MissingParameter`.
fn required(p: &Params, name: &str) -> Result<String, SqsError> {
    p.opt_string(name)
        .ok_or_else(|| SqsError::missing_parameter(name))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::super::parse_params;
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes()
    }

    fn query(pairs: &[(&str, &str)]) -> Result<Request, SqsError> {
        decode(&parse_params(None, &form(pairs))?, None)
    }

    fn json(action: &str, body: &str) -> Request {
        crate::json::decode(Some(&format!("AmazonSQS.{action}")), body.as_bytes()).unwrap()
    }

    /// The same request in both protocols decodes to the same `Request`.
    fn same(action: &str, json_body: &str, pairs: &[(&str, &str)]) -> Request {
        let mut all = vec![("Action", action), ("Version", "2012-11-05")];
        all.extend_from_slice(pairs);
        let from_query = query(&all).unwrap();
        assert_eq!(from_query, json(action, json_body));
        from_query
    }

    #[test]
    fn create_queue_in_both_protocols() {
        same(
            "CreateQueue",
            r#"{"QueueName":"q.fifo","Attributes":{"FifoQueue":"true","DelaySeconds":"5"},
                "tags":{"team":"a"}}"#,
            &[
                ("QueueName", "q.fifo"),
                ("Attribute.2.Name", "DelaySeconds"),
                ("Attribute.2.Value", "5"),
                ("Attribute.1.Name", "FifoQueue"),
                ("Attribute.1.Value", "true"),
                ("Tag.1.Key", "team"),
                ("Tag.1.Value", "a"),
            ],
        );
    }

    #[test]
    fn send_message_in_both_protocols() {
        let req = same(
            "SendMessage",
            r#"{"QueueUrl":"http://h/1/q","MessageBody":"a\r\nb","DelaySeconds":3,
                "MessageAttributes":{
                    "b":{"DataType":"Binary","BinaryValue":"AAE="},
                    "l":{"DataType":"String","StringListValues":["x","y"],"BinaryListValues":["Ag=="]},
                    "s":{"DataType":"String","StringValue":"v"}},
                "MessageSystemAttributes":{"AWSTraceHeader":{"DataType":"String","StringValue":"t"}},
                "MessageDeduplicationId":"d","MessageGroupId":"g"}"#,
            &[
                ("QueueUrl", "http://h/1/q"),
                ("MessageBody", "a\r\nb"),
                ("DelaySeconds", "3"),
                ("MessageAttribute.1.Name", "s"),
                ("MessageAttribute.1.Value.StringValue", "v"),
                ("MessageAttribute.1.Value.DataType", "String"),
                ("MessageAttribute.3.Name", "b"),
                ("MessageAttribute.3.Value.BinaryValue", "AAE="),
                ("MessageAttribute.3.Value.DataType", "Binary"),
                ("MessageAttribute.2.Name", "l"),
                ("MessageAttribute.2.Value.StringListValue.2", "y"),
                ("MessageAttribute.2.Value.StringListValue.1", "x"),
                ("MessageAttribute.2.Value.BinaryListValue.1", "Ag=="),
                ("MessageAttribute.2.Value.DataType", "String"),
                ("MessageSystemAttribute.1.Name", "AWSTraceHeader"),
                ("MessageSystemAttribute.1.Value.StringValue", "t"),
                ("MessageSystemAttribute.1.Value.DataType", "String"),
                ("MessageDeduplicationId", "d"),
                ("MessageGroupId", "g"),
            ],
        );
        let Request::SendMessage(input) = req else {
            panic!("wrong variant")
        };
        assert_eq!(input.message_attributes.len(), 3);
        assert_eq!(input.message_attributes["b"].binary_value, Some(vec![0, 1]));
    }

    #[test]
    fn send_message_batch_in_both_protocols() {
        let req = same(
            "SendMessageBatch",
            r#"{"QueueUrl":"u","Entries":[
                {"Id":"a","MessageBody":"1"},
                {"Id":"b","MessageBody":"2","DelaySeconds":4,
                 "MessageAttributes":{"k":{"DataType":"Number","StringValue":"1"}}}]}"#,
            &[
                ("QueueUrl", "u"),
                ("SendMessageBatchRequestEntry.20.Id", "b"),
                ("SendMessageBatchRequestEntry.20.MessageBody", "2"),
                ("SendMessageBatchRequestEntry.20.DelaySeconds", "4"),
                (
                    "SendMessageBatchRequestEntry.20.MessageAttribute.1.Name",
                    "k",
                ),
                (
                    "SendMessageBatchRequestEntry.20.MessageAttribute.1.Value.StringValue",
                    "1",
                ),
                (
                    "SendMessageBatchRequestEntry.20.MessageAttribute.1.Value.DataType",
                    "Number",
                ),
                ("SendMessageBatchRequestEntry.3.Id", "a"),
                ("SendMessageBatchRequestEntry.3.MessageBody", "1"),
            ],
        );
        let Request::SendMessageBatch(input) = req else {
            panic!("wrong variant")
        };
        assert_eq!(input.entries.len(), 2);
    }

    #[test]
    fn receive_message_in_both_protocols() {
        same(
            "ReceiveMessage",
            r#"{"QueueUrl":"u","AttributeNames":["All"],
                "MessageSystemAttributeNames":["SenderId","SentTimestamp"],
                "MessageAttributeNames":["a.*"],"MaxNumberOfMessages":10,
                "VisibilityTimeout":0,"WaitTimeSeconds":20,"ReceiveRequestAttemptId":"r"}"#,
            &[
                ("QueueUrl", "u"),
                ("AttributeName.1", "All"),
                ("MessageSystemAttributeName.2", "SentTimestamp"),
                ("MessageSystemAttributeName.1", "SenderId"),
                ("MessageAttributeName.1", "a.*"),
                ("MaxNumberOfMessages", "10"),
                ("VisibilityTimeout", "0"),
                ("WaitTimeSeconds", "20"),
                ("ReceiveRequestAttemptId", "r"),
            ],
        );
    }

    #[test]
    fn batches_and_permissions_in_both_protocols() {
        same(
            "DeleteMessageBatch",
            r#"{"QueueUrl":"u","Entries":[{"Id":"a","ReceiptHandle":"r1"},{"Id":"b","ReceiptHandle":"r2"}]}"#,
            &[
                ("QueueUrl", "u"),
                ("DeleteMessageBatchRequestEntry.2.Id", "b"),
                ("DeleteMessageBatchRequestEntry.2.ReceiptHandle", "r2"),
                ("DeleteMessageBatchRequestEntry.1.Id", "a"),
                ("DeleteMessageBatchRequestEntry.1.ReceiptHandle", "r1"),
            ],
        );
        same(
            "ChangeMessageVisibilityBatch",
            r#"{"QueueUrl":"u","Entries":[{"Id":"a","ReceiptHandle":"r","VisibilityTimeout":9}]}"#,
            &[
                ("QueueUrl", "u"),
                ("ChangeMessageVisibilityBatchRequestEntry.1.Id", "a"),
                (
                    "ChangeMessageVisibilityBatchRequestEntry.1.ReceiptHandle",
                    "r",
                ),
                (
                    "ChangeMessageVisibilityBatchRequestEntry.1.VisibilityTimeout",
                    "9",
                ),
            ],
        );
        same(
            "AddPermission",
            r#"{"QueueUrl":"u","Label":"l","AWSAccountIds":["1","2"],"Actions":["SendMessage"]}"#,
            &[
                ("QueueUrl", "u"),
                ("Label", "l"),
                ("AWSAccountId.1", "1"),
                ("AWSAccountId.2", "2"),
                ("ActionName.1", "SendMessage"),
            ],
        );
        same(
            "UntagQueue",
            r#"{"QueueUrl":"u","TagKeys":["a","b"]}"#,
            &[("QueueUrl", "u"), ("TagKey.1", "a"), ("TagKey.2", "b")],
        );
        same(
            "StartMessageMoveTask",
            r#"{"SourceArn":"arn:s","MaxNumberOfMessagesPerSecond":50}"#,
            &[
                ("SourceArn", "arn:s"),
                ("MaxNumberOfMessagesPerSecond", "50"),
            ],
        );
        same("ListQueues", "{}", &[]);
    }

    #[test]
    fn every_action_decodes() {
        for action in Action::ALL {
            let (form, body): (&[(&str, &str)], &str) =
                if matches!(action, Action::CreateQueue | Action::GetQueueUrl) {
                    (&[("QueueName", "q")], r#"{"QueueName":"q"}"#)
                } else {
                    (&[], "{}")
                };
            let mut params = vec![("Action", action.name())];
            params.extend_from_slice(form);
            let req = query(&params).unwrap();
            assert_eq!(req.action(), action);
            assert_eq!(req, json(action.name(), body));
        }
    }

    #[test]
    fn queue_name_is_required() {
        for action in [Action::CreateQueue, Action::GetQueueUrl] {
            let err = query(&[("Action", action.name())]).unwrap_err();
            assert_eq!(err.code, ErrorCode::MissingParameter);
            assert_eq!(
                err.message,
                "The request must contain the parameter QueueName."
            );
        }
    }

    #[test]
    fn path_queue_url_fills_in_absent_param() {
        let p: Params = [("Action", "GetQueueAttributes"), ("AttributeName.1", "All")]
            .into_iter()
            .collect();
        let Request::GetQueueAttributes(input) = decode(&p, Some("http://h/1/q")).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(input.queue_url, "http://h/1/q");
        assert_eq!(input.attribute_names, ["All"]);

        let mut p = p;
        p.insert("QueueUrl", "http://h/1/other");
        let req = decode(&p, Some("http://h/1/q")).unwrap();
        assert_eq!(req.queue_url(), Some("http://h/1/other"));
    }

    #[test]
    fn absent_members_keep_defaults() {
        let Request::SendMessage(input) = query(&[("Action", "SendMessage")]).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(input, SendMessageInput::default());
        assert_eq!(input.message_body, None);
        let Request::SendMessage(input) =
            query(&[("Action", "SendMessage"), ("MessageBody", "")]).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(input.message_body, Some(String::new()));
    }

    #[test]
    fn action_errors() {
        let e = query(&[("Version", "2012-11-05")]).unwrap_err();
        assert_eq!(e.code, ErrorCode::MissingParameter);
        assert_eq!(e.message, "The request must contain the parameter Action.");
        let e = query(&[("Action", "Frobnicate")]).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidAction);
        assert_eq!(
            e.message,
            "The action Frobnicate is not valid for this endpoint."
        );
    }

    #[test]
    fn invalid_values() {
        let e = query(&[("Action", "ReceiveMessage"), ("MaxNumberOfMessages", "ten")]).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert_eq!(
            e.message,
            "Value ten for parameter MaxNumberOfMessages is invalid. Reason: Must be an integer."
        );
        let e = query(&[
            ("Action", "SendMessageBatch"),
            (
                "SendMessageBatchRequestEntry.1.MessageAttribute.1.Name",
                "b",
            ),
            (
                "SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.BinaryValue",
                "!!",
            ),
        ])
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert!(
            e.message.contains(
                "parameter SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.BinaryValue"
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn tags_and_attributes_maps() {
        let Request::TagQueue(input) = query(&[
            ("Action", "TagQueue"),
            ("QueueUrl", "u"),
            ("Tag.2.Key", "b"),
            ("Tag.2.Value", "2"),
            ("Tag.1.Key", "a"),
            ("Tag.1.Value", "1"),
        ])
        .unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(
            input.tags,
            BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())])
        );
    }

    /// Parameter names that reach every decoding path, with arbitrary indices.
    fn param_name() -> impl Strategy<Value = String> {
        let stems = proptest::sample::select(vec![
            "Action",
            "QueueUrl",
            "QueueName",
            "MessageBody",
            "DelaySeconds",
            "MaxResults",
            "AttributeName",
            "Attribute",
            "Tag",
            "MessageAttribute",
            "MessageSystemAttribute",
            "SendMessageBatchRequestEntry",
            "DeleteMessageBatchRequestEntry",
            "ChangeMessageVisibilityBatchRequestEntry",
            "VisibilityTimeout",
            "Name",
            "Value",
            "Key",
            "StringValue",
            "BinaryValue",
            "StringListValue",
            "BinaryListValue",
            "DataType",
            "Id",
            "",
        ]);
        let segment = prop_oneof![
            stems.prop_map(str::to_owned),
            any::<u64>().prop_map(|n| n.to_string()),
            "[0-9]{1,25}",
            ".{0,4}",
        ];
        proptest::collection::vec(segment, 1..6).prop_map(|s| s.join("."))
    }

    fn param_value() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(Action::ALL.map(Action::name).to_vec())
                .prop_map(str::to_owned),
            "-?[0-9]{1,20}",
            "[A-Za-z0-9+/=]{0,12}",
            ".{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn parse_and_decode_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            query_string in ".{0,64}",
        ) {
            if let Ok(params) = parse_params(Some(&query_string), &body) {
                let _ = decode(&params, Some("http://h/1/q"));
            }
        }

        #[test]
        fn decode_never_panics_on_param_lists(
            pairs in proptest::collection::vec((param_name(), param_value()), 0..24),
            action in proptest::sample::select(Action::ALL.to_vec()),
        ) {
            let mut params: Params = pairs.into_iter().collect();
            if params.str("Action").and_then(Action::from_name).is_none() {
                params.insert("Action", action.name());
            }
            let _ = decode(&params, None);
        }
    }
}
