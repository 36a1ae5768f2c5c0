"""The plugin's own suite, run by .ci/run from a clean venv against the built binary."""

import json
import urllib.request

import pytest


def test_endpoint_answers_localstack_health(redrive_endpoint):
    with urllib.request.urlopen(f"{redrive_endpoint}/_localstack/health") as r:
        assert json.load(r)["services"]["sqs"] == "running"


def test_send_receive_delete_roundtrip(sqs, sqs_queue):
    sqs.send_message(QueueUrl=sqs_queue, MessageBody="hello", MessageAttributes={
        "tenant": {"DataType": "String", "StringValue": "mall-a"},
    })
    got = sqs.receive_message(
        QueueUrl=sqs_queue, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"]
    assert [m["Body"] for m in got] == ["hello"]
    assert got[0]["MessageAttributes"]["tenant"]["StringValue"] == "mall-a"
    sqs.delete_message(QueueUrl=sqs_queue, ReceiptHandle=got[0]["ReceiptHandle"])
    attrs = sqs.get_queue_attributes(QueueUrl=sqs_queue, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"


def test_queues_are_isolated_per_test(sqs, sqs_queue):
    # The previous test's message is gone with its queue; this queue starts empty.
    assert "Messages" not in sqs.receive_message(QueueUrl=sqs_queue)


def test_dlq_receives_after_max_receive_count(sqs, redrive_server):
    dlq = sqs.create_queue(QueueName="plugin-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    src = sqs.create_queue(
        QueueName="plugin-src",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}),
            "VisibilityTimeout": "0",
        },
    )["QueueUrl"]
    assert src == redrive_server.queue_url("plugin-src")
    sqs.send_message(QueueUrl=src, MessageBody="poison")
    assert len(sqs.receive_message(QueueUrl=src)["Messages"]) == 1
    # The second receive moves it to the DLQ (AWS's lazy move) and returns nothing.
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    peek = f"{redrive_server.endpoint}/_aws/sqs/messages?QueueUrl={dlq}"
    req = urllib.request.Request(peek, headers={"Accept": "application/json"})
    with urllib.request.urlopen(req) as r:
        msgs = json.load(r)["ReceiveMessageResponse"]["ReceiveMessageResult"]["Message"]
    assert [m["Body"] for m in msgs] == ["poison"]


def test_bad_request_is_an_aws_error(sqs):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        sqs.get_queue_url(QueueName="does-not-exist")
    assert e.value.response["Error"]["Code"] in (
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    )
