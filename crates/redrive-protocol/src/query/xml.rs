//! XML responses of the Query protocol, written by hand.

use base64::Engine as _;
use redrive_core::SqsError;
use redrive_core::api::*;

/// Namespace of every Query response.
pub const NAMESPACE: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// `<{Action}Response><{Action}Result>…</{Action}Result><ResponseMetadata>…</…>`; the result
/// element is omitted for [`Response::Empty`].
pub fn encode_response(resp: &Response, request_id: &str) -> String {
    let action = action_of(resp).name();
    let response_tag = format!("{action}Response");
    let mut w = Writer::default();
    w.open_ns(&response_tag);
    if !matches!(resp, Response::Empty(_)) {
        let result_tag = format!("{action}Result");
        if matches!(resp, Response::ReceiveMessage(r) if r.messages.is_empty()) {
            // AWS writes an empty receive as `<ReceiveMessageResult/>` (AWS-recorded).
            w.empty(&result_tag);
        } else {
            w.open(&result_tag);
            write_result(&mut w, resp);
            w.close(&result_tag);
        }
    }
    w.open("ResponseMetadata");
    w.elem("RequestId", request_id);
    w.close("ResponseMetadata");
    w.close(&response_tag);
    w.finish()
}

/// `<ErrorResponse><Error><Type/><Code/><Message/><Detail/></Error><RequestId/></ErrorResponse>`.
pub fn encode_error(err: &SqsError, request_id: &str) -> String {
    let mut w = Writer::default();
    w.open_ns("ErrorResponse");
    w.open("Error");
    w.elem("Type", err.code.fault().as_str());
    w.elem("Code", err.code.query_code());
    // The Query protocol words this one error differently (AWS-verified in moto's suite).
    let message = if err.code == redrive_core::ErrorCode::QueueDoesNotExist {
        "The specified queue does not exist for this wsdl version."
    } else {
        err.message.as_str()
    };
    w.elem("Message", message);
    w.empty("Detail");
    w.close("Error");
    w.elem("RequestId", request_id);
    w.close("ErrorResponse");
    w.finish()
}

fn action_of(resp: &Response) -> Action {
    match resp {
        Response::Empty(action) => *action,
        Response::CreateQueue(_) => Action::CreateQueue,
        Response::GetQueueUrl(_) => Action::GetQueueUrl,
        Response::ListQueues(_) => Action::ListQueues,
        Response::GetQueueAttributes(_) => Action::GetQueueAttributes,
        Response::SendMessage(_) => Action::SendMessage,
        Response::SendMessageBatch(_) => Action::SendMessageBatch,
        Response::ReceiveMessage(_) => Action::ReceiveMessage,
        Response::DeleteMessageBatch(_) => Action::DeleteMessageBatch,
        Response::ChangeMessageVisibilityBatch(_) => Action::ChangeMessageVisibilityBatch,
        Response::ListQueueTags(_) => Action::ListQueueTags,
        Response::ListDeadLetterSourceQueues(_) => Action::ListDeadLetterSourceQueues,
        Response::StartMessageMoveTask(_) => Action::StartMessageMoveTask,
        Response::CancelMessageMoveTask(_) => Action::CancelMessageMoveTask,
        Response::ListMessageMoveTasks(_) => Action::ListMessageMoveTasks,
    }
}

/// The members of `<{Action}Result>`.
fn write_result(w: &mut Writer, resp: &Response) {
    match resp {
        Response::Empty(_) => {}
        Response::CreateQueue(o) | Response::GetQueueUrl(o) => w.elem("QueueUrl", &o.queue_url),
        Response::ListQueues(o) => {
            o.queue_urls.iter().for_each(|url| w.elem("QueueUrl", url));
            w.opt_elem("NextToken", o.next_token.as_deref());
        }
        Response::GetQueueAttributes(o) => w.pairs("Attribute", "Name", "Value", &o.attributes),
        Response::SendMessage(o) => write_send_result(w, o),
        Response::SendMessageBatch(o) => {
            for entry in &o.successful {
                w.open("SendMessageBatchResultEntry");
                w.elem("Id", &entry.id);
                write_send_result(w, &entry.result);
                w.close("SendMessageBatchResultEntry");
            }
            write_batch_errors(w, &o.failed);
        }
        Response::ReceiveMessage(o) => o.messages.iter().for_each(|m| write_message(w, m)),
        Response::DeleteMessageBatch(o) => write_batch(w, "DeleteMessageBatchResultEntry", o),
        Response::ChangeMessageVisibilityBatch(o) => {
            write_batch(w, "ChangeMessageVisibilityBatchResultEntry", o);
        }
        Response::ListQueueTags(o) => w.pairs("Tag", "Key", "Value", &o.tags),
        Response::ListDeadLetterSourceQueues(o) => {
            o.queue_urls.iter().for_each(|url| w.elem("QueueUrl", url));
            w.opt_elem("NextToken", o.next_token.as_deref());
        }
        Response::StartMessageMoveTask(o) => w.elem("TaskHandle", &o.task_handle),
        Response::CancelMessageMoveTask(o) => w.elem(
            "ApproximateNumberOfMessagesMoved",
            &o.approximate_number_of_messages_moved.to_string(),
        ),
        Response::ListMessageMoveTasks(o) => {
            for t in &o.results {
                w.open("ListMessageMoveTasksResultEntry");
                w.opt_elem("TaskHandle", t.task_handle.as_deref());
                w.elem("Status", &t.status);
                w.elem("SourceArn", &t.source_arn);
                w.opt_elem("DestinationArn", t.destination_arn.as_deref());
                w.opt_elem(
                    "MaxNumberOfMessagesPerSecond",
                    t.max_number_of_messages_per_second
                        .map(|n| n.to_string())
                        .as_deref(),
                );
                w.elem(
                    "ApproximateNumberOfMessagesMoved",
                    &t.approximate_number_of_messages_moved.to_string(),
                );
                w.opt_elem(
                    "ApproximateNumberOfMessagesToMove",
                    t.approximate_number_of_messages_to_move
                        .map(|n| n.to_string())
                        .as_deref(),
                );
                w.opt_elem("FailureReason", t.failure_reason.as_deref());
                w.elem("StartedTimestamp", &t.started_timestamp.to_string());
                w.close("ListMessageMoveTasksResultEntry");
            }
        }
    }
}

fn write_send_result(w: &mut Writer, o: &SendMessageOutput) {
    w.elem("MessageId", &o.message_id);
    w.elem("MD5OfMessageBody", &o.md5_of_message_body);
    w.opt_elem(
        "MD5OfMessageAttributes",
        o.md5_of_message_attributes.as_deref(),
    );
    w.opt_elem(
        "MD5OfMessageSystemAttributes",
        o.md5_of_message_system_attributes.as_deref(),
    );
    w.opt_elem("SequenceNumber", o.sequence_number.as_deref());
}

fn write_batch(w: &mut Writer, entry_tag: &str, o: &BatchOutput) {
    for entry in &o.successful {
        w.open(entry_tag);
        w.elem("Id", &entry.id);
        w.close(entry_tag);
    }
    write_batch_errors(w, &o.failed);
}

fn write_batch_errors(w: &mut Writer, failed: &[BatchResultErrorEntry]) {
    for e in failed {
        w.open("BatchResultErrorEntry");
        w.elem("Id", &e.id);
        w.elem("SenderFault", if e.sender_fault { "true" } else { "false" });
        w.elem("Code", &e.code);
        w.opt_elem("Message", e.message.as_deref());
        w.close("BatchResultErrorEntry");
    }
}

fn write_message(w: &mut Writer, m: &ReceivedMessage) {
    w.open("Message");
    w.elem("MessageId", &m.message_id);
    w.elem("ReceiptHandle", &m.receipt_handle);
    w.elem("MD5OfBody", &m.md5_of_body);
    w.elem("Body", &m.body);
    w.pairs("Attribute", "Name", "Value", &m.attributes);
    w.opt_elem(
        "MD5OfMessageAttributes",
        m.md5_of_message_attributes.as_deref(),
    );
    for (name, value) in &m.message_attributes {
        w.open("MessageAttribute");
        w.elem("Name", name);
        w.open("Value");
        w.opt_elem("StringValue", value.string_value.as_deref());
        if let Some(b) = &value.binary_value {
            w.elem("BinaryValue", &base64(b));
        }
        value
            .string_list_values
            .iter()
            .for_each(|s| w.elem("StringListValue", s));
        value
            .binary_list_values
            .iter()
            .for_each(|b| w.elem("BinaryListValue", &base64(b)));
        w.elem("DataType", &value.data_type);
        w.close("Value");
        w.close("MessageAttribute");
    }
    w.close("Message");
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Appends elements to a string. Tags are trusted literals; text is escaped with [`escape`].
#[derive(Default)]
struct Writer {
    out: String,
}

impl Writer {
    fn open(&mut self, tag: &str) {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
    }

    /// An opening tag carrying the SQS namespace.
    fn open_ns(&mut self, tag: &str) {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push_str(" xmlns=\"");
        self.out.push_str(NAMESPACE);
        self.out.push_str("\">");
    }

    fn close(&mut self, tag: &str) {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
    }

    fn empty(&mut self, tag: &str) {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push_str("/>");
    }

    fn elem(&mut self, tag: &str, text: &str) {
        self.open(tag);
        escape(&mut self.out, text);
        self.close(tag);
    }

    fn opt_elem(&mut self, tag: &str, text: Option<&str>) {
        if let Some(text) = text {
            self.elem(tag, text);
        }
    }

    /// One `<tag><key>k</key><value>v</value></tag>` per map entry.
    fn pairs<'a>(
        &mut self,
        tag: &str,
        key: &str,
        value: &str,
        entries: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) {
        for (k, v) in entries {
            self.open(tag);
            self.elem(key, k);
            self.elem(value, v);
            self.close(tag);
        }
    }

    fn finish(self) -> String {
        self.out
    }
}

/// Escapes `& < > " '` as entities and CR as `&#xD;` (a raw CR would be read back as LF); every
/// other character is written as is.
fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use redrive_core::ErrorCode;

    use super::*;

    fn wrap(action: &str, result: &str) -> String {
        format!(
            "<{action}Response xmlns=\"{NAMESPACE}\"><{action}Result>{result}</{action}Result>\
             <ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></{action}Response>"
        )
    }

    /// Reverses [`escape`] for the entities it writes plus numeric references.
    fn unescape(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(amp) = rest.find('&') {
            out.push_str(&rest[..amp]);
            let semi = amp + rest[amp..].find(';').unwrap();
            out.push(match &rest[amp + 1..semi] {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                hex => char::from_u32(u32::from_str_radix(&hex[2..], 16).unwrap()).unwrap(),
            });
            rest = &rest[semi + 1..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn escaping_round_trips() {
        for text in ["\r\n<&>", "a\"b'c", "plain é ✓", "&#xD;", ""] {
            let mut escaped = String::new();
            escape(&mut escaped, text);
            assert!(!escaped.contains(['\r', '<', '>', '"', '\'']), "{escaped}");
            assert_eq!(unescape(&escaped), text);
        }
        let mut escaped = String::new();
        escape(&mut escaped, "\r\n<&>");
        assert_eq!(escaped, "&#xD;\n&lt;&amp;&gt;");
    }

    #[test]
    fn empty_response_has_no_result() {
        assert_eq!(
            encode_response(&Response::Empty(Action::DeleteQueue), "rid"),
            format!(
                "<DeleteQueueResponse xmlns=\"{NAMESPACE}\"><ResponseMetadata><RequestId>rid\
                 </RequestId></ResponseMetadata></DeleteQueueResponse>"
            )
        );
    }

    #[test]
    fn encodes_queue_responses() {
        let resp = Response::ListQueues(ListQueuesOutput {
            queue_urls: vec!["http://h/1/a".into(), "http://h/1/b".into()],
            next_token: Some("t".into()),
        });
        assert_eq!(
            encode_response(&resp, "rid"),
            wrap(
                "ListQueues",
                "<QueueUrl>http://h/1/a</QueueUrl><QueueUrl>http://h/1/b</QueueUrl>\
                 <NextToken>t</NextToken>"
            )
        );
        let resp = Response::GetQueueAttributes(GetQueueAttributesOutput {
            attributes: BTreeMap::from([("Policy".into(), r#"{"a":"<b>"}"#.into())]),
        });
        assert_eq!(
            encode_response(&resp, "rid"),
            wrap(
                "GetQueueAttributes",
                "<Attribute><Name>Policy</Name><Value>{&quot;a&quot;:&quot;&lt;b&gt;&quot;}\
                 </Value></Attribute>"
            )
        );
    }

    #[test]
    fn encodes_send_message_batch() {
        let resp = Response::SendMessageBatch(SendMessageBatchOutput {
            successful: vec![SendMessageBatchResultEntry {
                id: "a".into(),
                result: SendMessageOutput {
                    message_id: "m".into(),
                    md5_of_message_body: "d".into(),
                    sequence_number: Some("1".into()),
                    ..Default::default()
                },
            }],
            failed: vec![BatchResultErrorEntry {
                id: "b".into(),
                sender_fault: true,
                code: "InvalidParameterValue".into(),
                message: Some("bad".into()),
            }],
        });
        assert_eq!(
            encode_response(&resp, "rid"),
            wrap(
                "SendMessageBatch",
                "<SendMessageBatchResultEntry><Id>a</Id><MessageId>m</MessageId>\
                 <MD5OfMessageBody>d</MD5OfMessageBody><SequenceNumber>1</SequenceNumber>\
                 </SendMessageBatchResultEntry><BatchResultErrorEntry><Id>b</Id>\
                 <SenderFault>true</SenderFault><Code>InvalidParameterValue</Code>\
                 <Message>bad</Message></BatchResultErrorEntry>"
            )
        );
    }

    #[test]
    fn encodes_received_messages() {
        let resp = Response::ReceiveMessage(ReceiveMessageOutput {
            messages: vec![ReceivedMessage {
                message_id: "m".into(),
                receipt_handle: "r".into(),
                md5_of_body: "d".into(),
                body: "a\r\n<b>".into(),
                attributes: BTreeMap::from([("SenderId".into(), "s".into())]),
                md5_of_message_attributes: Some("x".into()),
                message_attributes: MessageAttributes::from([
                    (
                        "bin".into(),
                        MessageAttributeValue {
                            binary_value: Some(vec![0, 1]),
                            data_type: "Binary".into(),
                            ..Default::default()
                        },
                    ),
                    (
                        "str".into(),
                        MessageAttributeValue {
                            string_value: Some("v".into()),
                            data_type: "String.x".into(),
                            ..Default::default()
                        },
                    ),
                ]),
            }],
        });
        assert_eq!(
            encode_response(&resp, "rid"),
            wrap(
                "ReceiveMessage",
                "<Message><MessageId>m</MessageId><ReceiptHandle>r</ReceiptHandle>\
                 <MD5OfBody>d</MD5OfBody><Body>a&#xD;\n&lt;b&gt;</Body>\
                 <Attribute><Name>SenderId</Name><Value>s</Value></Attribute>\
                 <MD5OfMessageAttributes>x</MD5OfMessageAttributes>\
                 <MessageAttribute><Name>bin</Name><Value><BinaryValue>AAE=</BinaryValue>\
                 <DataType>Binary</DataType></Value></MessageAttribute>\
                 <MessageAttribute><Name>str</Name><Value><StringValue>v</StringValue>\
                 <DataType>String.x</DataType></Value></MessageAttribute></Message>"
            )
        );
    }

    #[test]
    fn encodes_batch_and_move_tasks() {
        let resp = Response::DeleteMessageBatch(BatchOutput {
            successful: vec![BatchSuccessEntry { id: "a".into() }],
            failed: vec![BatchResultErrorEntry {
                id: "b".into(),
                sender_fault: false,
                code: "InternalError".into(),
                message: None,
            }],
        });
        assert_eq!(
            encode_response(&resp, "rid"),
            wrap(
                "DeleteMessageBatch",
                "<DeleteMessageBatchResultEntry><Id>a</Id></DeleteMessageBatchResultEntry>\
                 <BatchResultErrorEntry><Id>b</Id><SenderFault>false</SenderFault>\
                 <Code>InternalError</Code></BatchResultErrorEntry>"
            )
        );
        let resp = Response::ListMessageMoveTasks(ListMessageMoveTasksOutput {
            results: vec![ListMessageMoveTasksResultEntry {
                task_handle: Some("h".into()),
                status: "RUNNING".into(),
                source_arn: "arn:s".into(),
                approximate_number_of_messages_moved: 3,
                approximate_number_of_messages_to_move: Some(7),
                started_timestamp: 1700000000000,
                ..Default::default()
            }],
        });
        assert_eq!(
            encode_response(&resp, "rid"),
            wrap(
                "ListMessageMoveTasks",
                "<ListMessageMoveTasksResultEntry><TaskHandle>h</TaskHandle>\
                 <Status>RUNNING</Status><SourceArn>arn:s</SourceArn>\
                 <ApproximateNumberOfMessagesMoved>3</ApproximateNumberOfMessagesMoved>\
                 <ApproximateNumberOfMessagesToMove>7</ApproximateNumberOfMessagesToMove>\
                 <StartedTimestamp>1700000000000</StartedTimestamp>\
                 </ListMessageMoveTasksResultEntry>"
            )
        );
    }

    #[test]
    fn encodes_errors() {
        let err = SqsError::queue_does_not_exist();
        assert_eq!(
            encode_error(&err, "rid"),
            format!(
                "<ErrorResponse xmlns=\"{NAMESPACE}\"><Error><Type>Sender</Type>\
                 <Code>AWS.SimpleQueueService.NonExistentQueue</Code>\
                 <Message>The specified queue does not exist for this wsdl version.</Message><Detail/></Error>\
                 <RequestId>rid</RequestId></ErrorResponse>"
            )
        );
        let err = SqsError::new(ErrorCode::InternalError, "a<b");
        let xml = encode_error(&err, "r&d");
        assert!(
            xml.contains("<Type>Receiver</Type><Code>InternalError</Code>"),
            "{xml}"
        );
        assert!(xml.contains("<Message>a&lt;b</Message>"), "{xml}");
        assert!(xml.contains("<RequestId>r&amp;d</RequestId>"), "{xml}");
    }
}
