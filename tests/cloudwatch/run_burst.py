"""Drives a built `redrive serve` with boto3: scripts a burst on the seed's queue in the seed's
window (the server runs on a test clock starting at 2026-04-20T20:20:00Z, moved forward a minute
at a time through the test-only API), then reads it back through CloudWatch's API: the seed's
Step 5 script unchanged (but for endpoint_url) must print exactly the scripted minute series;
GetMetricStatistics, ListMetrics and bad input are checked too.

Usage: run_burst.py PATH_TO_REDRIVE EXPECTED_PROTOCOL   (json for current botocore, query for
an older one). Exits non-zero on any mismatch.
"""
import datetime
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import boto3
import botocore
from botocore.exceptions import ClientError

BINARY, EXPECTED_PROTOCOL = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
QUEUE = "cafe24-worker-queue"
REGION = "ap-northeast-2"
UTC = datetime.timezone.utc
M0 = datetime.datetime(2026, 4, 20, 20, 20, tzinfo=UTC)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(endpoint, path):
    req = urllib.request.Request(endpoint + path, method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def main():
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [BINARY, "serve", "--in-memory", "--port", str(port), "--enable-reset-api",
         "--test-clock-start", "2026-04-20T20:20:00Z"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(endpoint + "/_redrive/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("server did not start")
        run(endpoint)
    finally:
        server.terminate()
        server.wait(timeout=10)


def run(endpoint):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_DEFAULT_REGION=REGION, REDRIVE_ENDPOINT_URL=endpoint)
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test",
              aws_secret_access_key="test")
    sqs = boto3.client("sqs", **kw)
    cw = boto3.client("cloudwatch", **kw)
    model = cw.meta.service_model
    protocol = getattr(model, "resolved_protocol", None) or model.protocol
    check(protocol == EXPECTED_PROTOCOL,
          f"botocore {botocore.__version__} speaks {protocol} to CloudWatch")

    url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    sqs.create_queue(QueueName=QUEUE + "-dlq")

    def send(n, prefix):
        for i in range(0, n, 10):
            entries = [{"Id": str(j), "MessageBody": json.dumps({"mall_id": "m1", "n": f"{prefix}{j}"})}
                       for j in range(i, min(n, i + 10))]
            sqs.send_message_batch(QueueUrl=url, Entries=entries)

    def receive(n):
        got = []
        while len(got) < n:
            r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, n - len(got)),
                                    VisibilityTimeout=600)
            got.extend(r.get("Messages", []))
        return got

    def delete(msgs):
        for m in msgs:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def next_minute():
        post(endpoint, "/_redrive/v1/test/clock?advance=60")
        post(endpoint, "/_redrive/v1/test/history/flush")

    # 20:20: the burst. 100 sent, 40 received (600 s visibility), 10 deleted.
    send(100, "a")
    got = receive(40)
    delete(got[:10])
    next_minute()
    # 20:21: 5 sent, 5 received, 2 deleted.
    send(5, "b")
    delete(receive(5)[:2])
    next_minute()
    # 20:22: quiet. 20:23 is written as a partial minute (nothing happened in it).
    next_minute()

    minutes = [M0 + datetime.timedelta(minutes=i) for i in range(4)]
    expected = {
        "sent": [100, 5, 0, 0],
        "received": [40, 5, 0, 0],
        "deleted": [10, 2, 0, 0],
        "visible": [60, 60, 60, 60],
        "notvisible": [30, 33, 33, 33],
    }

    out = subprocess.run([sys.executable, os.path.join(HERE, "seed_000_step5.py")], env=env,
                         capture_output=True, text=True, check=True).stdout
    print(out)
    results = json.loads(out)
    check([r["Id"] for r in results] == list(expected), "seed script: the five queries, in order")
    for r in results:
        stamps = [datetime.datetime.fromisoformat(t).astimezone(UTC) for t in r["Timestamps"]]
        check(stamps == minutes, f"seed script: {r['Id']} has one point per minute 20:20-20:23")
        check(r["Values"] == [float(v) for v in expected[r["Id"]]],
              f"seed script: {r['Id']} = {expected[r['Id']]}")
        check(r["StatusCode"] == "Complete", f"seed script: {r['Id']} Complete")

    dims = [{"Name": "QueueName", "Value": QUEUE}]
    stats = cw.get_metric_statistics(
        Namespace="AWS/SQS", MetricName="NumberOfMessagesSent", Dimensions=dims,
        StartTime=M0, EndTime=M0 + datetime.timedelta(minutes=10), Period=120,
        Statistics=["Sum", "Maximum", "SampleCount"])
    points = sorted(stats["Datapoints"], key=lambda d: d["Timestamp"])
    check([(p["Sum"], p["Maximum"], p["SampleCount"]) for p in points] == [(105.0, 100.0, 2.0), (0.0, 0.0, 2.0)],
          "GetMetricStatistics over 2-minute periods")
    check(all(p["Unit"] == "Count" for p in points), "GetMetricStatistics unit Count")

    metrics = cw.list_metrics(Namespace="AWS/SQS", MetricName="NumberOfMessagesSent")["Metrics"]
    check(sorted(m["Dimensions"][0]["Value"] for m in metrics) == [QUEUE, QUEUE + "-dlq"],
          "ListMetrics lists both queues")
    paginated = [m for page in cw.get_paginator("list_metrics").paginate(Namespace="AWS/SQS")
                 for m in page["Metrics"]]
    check(len(paginated) == 2 * 15, "ListMetrics paginator: 15 metrics per queue")

    def error_code(**kwargs):
        base = dict(StartTime=M0, EndTime=M0 + datetime.timedelta(minutes=10))
        base.update(kwargs)
        try:
            cw.get_metric_data(**base)
        except ClientError as e:
            return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
        return None

    def q(qid="a", period=60, stat="Sum"):
        return {"Id": qid, "MetricStat": {"Metric": {"Namespace": "AWS/SQS",
                "MetricName": "NumberOfMessagesSent", "Dimensions": dims},
                "Period": period, "Stat": stat}}

    check(error_code(MetricDataQueries=[q(period=30)]) == ("InvalidParameterValue", 400),
          "period 30 -> InvalidParameterValue")
    check(error_code(MetricDataQueries=[q(stat="Median")]) == ("InvalidParameterValue", 400),
          "unknown statistic -> InvalidParameterValue")
    check(error_code(MetricDataQueries=[q(qid="Bad")]) == ("InvalidParameterValue", 400),
          "malformed id -> InvalidParameterValue")
    check(error_code(MetricDataQueries=[q(), q()]) == ("InvalidParameterValue", 400),
          "duplicate id -> InvalidParameterValue")
    check(error_code(MetricDataQueries=[q(f"q{i}") for i in range(501)]) == ("InvalidParameterValue", 400),
          "501 queries -> InvalidParameterValue")
    check(error_code(MetricDataQueries=[q()], EndTime=M0) == ("ValidationError", 400),
          "StartTime = EndTime -> ValidationError")
    try:
        cw.get_metric_statistics(Namespace="AWS/SQS", MetricName="NumberOfMessagesSent",
                                 StartTime=M0, EndTime=M0 + datetime.timedelta(minutes=1), Period=60)
        code = None
    except ClientError as e:
        code = e.response["Error"]["Code"]
    check(code == "MissingParameter", "GetMetricStatistics without Statistics -> MissingParameter")

    # A DLQ alarm put on the queue's existing backlog: ALARM at once, and the seed's check
    # (configuration history first, then the first transition to ALARM) reads it back.
    cw.put_metric_alarm(
        AlarmName="backlog", Namespace="AWS/SQS", MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=dims, Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=0,
        ComparisonOperator="GreaterThanThreshold")
    alarm = cw.describe_alarms(AlarmNames=["backlog"])["MetricAlarms"][0]
    check(alarm["StateValue"] == "ALARM", f"PutMetricAlarm on a backlog -> ALARM ({alarm['StateReason']})")
    check(alarm["Threshold"] == 0.0 and alarm["Dimensions"] == dims, "DescribeAlarms echoes the definition")
    cfg = cw.describe_alarm_history(AlarmName="backlog", HistoryItemType="ConfigurationUpdate",
                                    ScanBy="TimestampAscending")["AlarmHistoryItems"]
    check(len(cfg) == 1 and json.loads(cfg[0]["HistoryData"])["type"] == "Create",
          "DescribeAlarmHistory: the creation")
    states = cw.describe_alarm_history(AlarmName="backlog", HistoryItemType="StateUpdate")["AlarmHistoryItems"]
    check([h["HistorySummary"] for h in states] == ["Alarm updated from INSUFFICIENT_DATA to ALARM"],
          "DescribeAlarmHistory: the first transition")
    try:
        cw.delete_alarms(AlarmNames=["backlog", "missing"])
        code = None
    except ClientError as e:
        code = e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    check(code == ("ResourceNotFound", 404), "DeleteAlarms with an unknown name -> ResourceNotFound 404")
    cw.delete_alarms(AlarmNames=["backlog"])
    check(cw.describe_alarms()["MetricAlarms"] == [], "DeleteAlarms")
    print(f"PASS ({protocol}, botocore {botocore.__version__})")


if __name__ == "__main__":
    main()
