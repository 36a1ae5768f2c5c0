# Seed 000 ("Notifly cafe24-worker DLQ investigation"), Step 5, copied verbatim except that the
# CloudWatch client gets `endpoint_url` (our server) and the indentation the seed's text lost is
# restored. Run by run_burst.py, which scripts the burst it reads.
import boto3, os, json, datetime
session=boto3.Session(
aws_access_key_id=os.environ.get('AWS_ACCESS_KEY_ID'),
aws_secret_access_key=os.environ.get('AWS_SECRET_ACCESS_KEY'),
aws_session_token=os.environ.get('AWS_SESSION_TOKEN'),
region_name=os.environ.get('AWS_DEFAULT_REGION','ap-northeast-2'),
)
cw=session.client('cloudwatch', endpoint_url=os.environ['REDRIVE_ENDPOINT_URL'])
start=datetime.datetime(2026,4,20,20,20,tzinfo=datetime.timezone.utc)
end=datetime.datetime(2026,4,20,20,30,tzinfo=datetime.timezone.utc)
queries=[]
for qid,metric,stat in [
    ('sent','NumberOfMessagesSent','Sum'),
    ('received','NumberOfMessagesReceived','Sum'),
    ('deleted','NumberOfMessagesDeleted','Sum'),
    ('visible','ApproximateNumberOfMessagesVisible','Maximum'),
    ('notvisible','ApproximateNumberOfMessagesNotVisible','Maximum'),
]:
    queries.append({
        'Id': qid,
        'MetricStat': {
            'Metric': {'Namespace':'AWS/SQS','MetricName':metric,'Dimensions':[{'Name':'QueueName','Value':'cafe24-worker-queue'}]},
            'Period':60,
            'Stat':stat,
        },
        'ReturnData': True,
    })
resp=cw.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy='TimestampAscending')
print(json.dumps(resp['MetricDataResults'], ensure_ascii=False, indent=2, default=str))
