//! CloudWatch's API on the SQS listener (see `docs/metrics.md`, "CloudWatch API"):
//! `GetMetricData`, `GetMetricStatistics` and `ListMetrics` for namespace `AWS/SQS`, dimension
//! `QueueName`, answered from the engine's minute history, and the metric alarms over it
//! (`PutMetricAlarm`, `DescribeAlarms…`, `DescribeAlarmHistory`, `DeleteAlarms`,
//! `SetAlarmState`; engine `cw_alarms`), in the caller's protocol (RPC v2
//! CBOR, JSON 1.0 or Query, detected by `redrive_protocol::cloudwatch::detect`). SigV4, when
//! on, is verified for service `monitoring`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::Response as HttpResponse;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use redrive_core::{ErrorCode, SqsError};
use redrive_engine::cw_alarms::AlarmError;
use redrive_engine::history::{COUNTERS, GAUGES, HistoryQuery, MetricDef, MetricHistory};
use redrive_engine::{Engine, RequestContext};
use redrive_protocol::cloudwatch::{
    self as cw, CwError, CwErrorCode, CwProtocol, CwRequest, CwResponse, Dimension,
    GetMetricDataInput, GetMetricDataOutput, GetMetricStatisticsInput, GetMetricStatisticsOutput,
    ListMetricsInput, ListMetricsOutput, MetricDataResult, MetricId, ScanBy, Statistic,
    StatusCode as ResultStatus,
};

use crate::AppState;
use crate::context::{base_url, region_from_headers};

/// Answers the request if it is addressed to CloudWatch; `None` leaves it to SQS.
pub async fn try_handle(state: &Arc<AppState>, parts: &Parts, body: &[u8]) -> Option<HttpResponse> {
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let (protocol, operation) = cw::detect(parts.uri.path(), target, parts.uri.query(), body)?;
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let result = answer(state, parts, body, protocol, &operation).await;
    let encoded = match &result {
        Ok(resp) => cw::encode_response(protocol, resp, &request_id),
        Err(e) => cw::encode_error(protocol, e, &request_id),
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match &result {
        Ok(_) => tracing::info!(action = %operation, elapsed_ms, "cloudwatch request"),
        Err(e) => tracing::info!(
            action = %operation, code = e.code.query_code(), elapsed_ms, "cloudwatch request rejected"
        ),
    }
    let mut resp = HttpResponse::new(Body::from(encoded.body));
    *resp.status_mut() = StatusCode::from_u16(encoded.status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoded.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-requestid", v);
    }
    if protocol == CwProtocol::Cbor {
        h.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    }
    if let Err(e) = &result
        && let Ok(v) = HeaderValue::from_str(&e.query_error_header())
    {
        h.insert("x-amzn-query-error", v);
    }
    Some(resp)
}

fn from_sqs_error(e: SqsError) -> CwError {
    let code = match e.code {
        ErrorCode::MissingAuthenticationToken => CwErrorCode::MissingAuthenticationToken,
        ErrorCode::IncompleteSignature => CwErrorCode::IncompleteSignature,
        ErrorCode::InvalidClientTokenId => CwErrorCode::InvalidClientTokenId,
        ErrorCode::SignatureDoesNotMatch => CwErrorCode::SignatureDoesNotMatch,
        _ => CwErrorCode::InternalServiceError,
    };
    CwError::new(code, e.message)
}

async fn answer(
    state: &Arc<AppState>,
    parts: &Parts,
    body: &[u8],
    protocol: CwProtocol,
    operation: &str,
) -> Result<CwResponse, CwError> {
    crate::auth::authenticate_for(&state.config.auth, parts, body, cw::SIGNING_NAME)
        .map_err(from_sqs_error)?;
    let request = cw::decode(protocol, operation, parts.uri.query(), body)?;
    state.engine.ensure_synced().map_err(from_sqs_error)?;
    let ctx = RequestContext {
        region: region_from_headers(&parts.headers).unwrap_or_else(|| state.config.region.clone()),
        base_url: base_url(
            &parts.headers,
            &format!("{}:{}", state.config.host, state.config.port),
        ),
    };
    let engine = state.engine.clone();
    // Alarm changes are written (and made durable) before they are answered.
    match request {
        CwRequest::PutMetricAlarm(def) => {
            return engine
                .put_metric_alarm(&ctx, def)
                .await
                .map(|()| CwResponse::Empty("PutMetricAlarm"))
                .map_err(from_alarm_error);
        }
        CwRequest::DeleteAlarms(names) => {
            return engine
                .delete_alarms(&ctx, &names)
                .await
                .map(|()| CwResponse::Empty("DeleteAlarms"))
                .map_err(from_alarm_error);
        }
        CwRequest::SetAlarmState(i) => {
            return engine
                .set_alarm_state(&ctx, &i.alarm_name, i.state, i.reason, i.reason_data)
                .await
                .map(|()| CwResponse::Empty("SetAlarmState"))
                .map_err(from_alarm_error);
        }
        _ => {}
    }
    execute(&engine, &ctx, request).await
}

/// A typed request → its answer from the minute history.
pub async fn execute(
    engine: &Arc<Engine>,
    ctx: &RequestContext,
    request: CwRequest,
) -> Result<CwResponse, CwError> {
    match request {
        CwRequest::GetMetricData(i) => get_metric_data(engine, ctx, i)
            .await
            .map(CwResponse::GetMetricData),
        CwRequest::GetMetricStatistics(i) => get_metric_statistics(engine, ctx, i)
            .await
            .map(CwResponse::GetMetricStatistics),
        CwRequest::ListMetrics(i) => list_metrics(engine, ctx, i)
            .await
            .map(CwResponse::ListMetrics),
        CwRequest::DescribeAlarms(i) => describe_alarms(engine, ctx, i)
            .await
            .map(CwResponse::DescribeAlarms),
        CwRequest::DescribeAlarmsForMetric(i) => describe_alarms_for_metric(engine, ctx, i)
            .await
            .map(CwResponse::DescribeAlarmsForMetric),
        CwRequest::DescribeAlarmHistory(i) => describe_alarm_history(engine, ctx, i)
            .await
            .map(CwResponse::DescribeAlarmHistory),
        CwRequest::PutMetricAlarm(_) | CwRequest::DeleteAlarms(_) | CwRequest::SetAlarmState(_) => {
            Err(CwError::new(
                CwErrorCode::InternalServiceError,
                "Alarm changes are answered on the async path.",
            ))
        }
    }
}

fn from_alarm_error(e: AlarmError) -> CwError {
    match e {
        AlarmError::NotFound(m) => CwError::new(CwErrorCode::ResourceNotFound, m),
        AlarmError::LimitExceeded(m) => CwError::new(CwErrorCode::LimitExceeded, m),
        AlarmError::Internal(m) => CwError::new(CwErrorCode::InternalServiceError, m),
    }
}

/// Paging of the alarm lists: `ra1.{offset}`.
fn page<T>(
    mut all: Vec<T>,
    token: Option<&str>,
    max: usize,
) -> Result<(Vec<T>, Option<String>), CwError> {
    let start = match token {
        None => 0,
        Some(t) => t
            .strip_prefix("ra1.")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= all.len())
            .ok_or_else(invalid_token)?,
    };
    let end = (start + max).min(all.len());
    let next = (end < all.len()).then(|| format!("ra1.{end}"));
    Ok((all.drain(start..end).collect(), next))
}

async fn describe_alarms(
    engine: &Engine,
    ctx: &RequestContext,
    i: cw::DescribeAlarmsInput,
) -> Result<cw::DescribeAlarmsOutput, CwError> {
    if !i.metric_alarms {
        return Ok(cw::DescribeAlarmsOutput::default());
    }
    let all = engine
        .describe_alarms(
            ctx,
            &i.alarm_names,
            i.alarm_name_prefix.as_deref(),
            i.state_value,
            i.action_prefix.as_deref(),
        )
        .await
        .map_err(from_alarm_error)?;
    let (alarms, next_token) = page(all, i.next_token.as_deref(), i.max_records)?;
    Ok(cw::DescribeAlarmsOutput { alarms, next_token })
}

async fn describe_alarms_for_metric(
    engine: &Engine,
    ctx: &RequestContext,
    i: cw::DescribeAlarmsForMetricInput,
) -> Result<Vec<redrive_core::alarm::AlarmRecord>, CwError> {
    let mut all = engine
        .describe_alarms(ctx, &[], None, None, None)
        .await
        .map_err(from_alarm_error)?;
    all.retain(|a| {
        let d = &a.definition;
        d.namespace == i.metric.namespace
            && d.metric_name == i.metric.metric_name
            && (i.metric.dimensions.is_empty()
                || (d.dimensions.len() == i.metric.dimensions.len()
                    && i.metric.dimensions.iter().all(|x| {
                        d.dimensions
                            .iter()
                            .any(|y| y.name == x.name && y.value == x.value)
                    })))
            && i.statistic.as_deref().is_none_or(|s| d.statistic == s)
            && i.period.is_none_or(|p| d.period == p)
            && i.unit
                .as_deref()
                .is_none_or(|u| d.unit.as_deref() == Some(u))
    });
    Ok(all)
}

async fn describe_alarm_history(
    engine: &Engine,
    ctx: &RequestContext,
    i: cw::DescribeAlarmHistoryInput,
) -> Result<cw::DescribeAlarmHistoryOutput, CwError> {
    if !i.metric_alarms {
        return Ok(cw::DescribeAlarmHistoryOutput::default());
    }
    let mut all = engine
        .describe_alarm_history(
            ctx,
            i.alarm_name.as_deref(),
            i.history_item_type.as_deref(),
            i.start_ms,
            i.end_ms,
        )
        .await
        .map_err(from_alarm_error)?;
    if i.scan_by == ScanBy::TimestampDescending {
        all.reverse();
    }
    let (items, next_token) = page(all, i.next_token.as_deref(), i.max_records)?;
    Ok(cw::DescribeAlarmHistoryOutput { items, next_token })
}

fn all_metrics() -> impl Iterator<Item = &'static MetricDef> {
    COUNTERS.iter().chain(GAUGES.iter())
}

/// The queue a metric names, if it is one of ours: namespace `AWS/SQS`, exactly one dimension
/// `QueueName`, a known metric name.
fn our_queue(metric: &MetricId) -> Option<(&str, &'static MetricDef)> {
    if metric.namespace != cw::NAMESPACE {
        return None;
    }
    let [Dimension { name, value }] = metric.dimensions.as_slice() else {
        return None;
    };
    if name != cw::QUEUE_DIMENSION {
        return None;
    }
    let def = all_metrics().find(|d| d.name == metric.metric_name)?;
    Some((value.as_str(), def))
}

/// Histories read once per (queue, period) of a request.
struct Histories<'a> {
    engine: &'a Arc<Engine>,
    ctx: &'a RequestContext,
    start_ms: i64,
    end_ms: i64,
    read: HashMap<(String, u64), Option<MetricHistory>>,
}

impl Histories<'_> {
    /// `(timestamp, value)` of one statistic, oldest first; empty when nothing is stored.
    async fn points(
        &mut self,
        metric: &MetricId,
        period: u64,
        stat: Statistic,
        unit: Option<&str>,
    ) -> Result<Vec<(i64, f64)>, CwError> {
        let Some((queue, def)) = our_queue(metric) else {
            return Ok(Vec::new());
        };
        if unit.is_some_and(|u| u != def.unit) || self.end_ms <= 0 {
            return Ok(Vec::new());
        }
        let key = (queue.to_string(), period);
        if !self.read.contains_key(&key) {
            let query = HistoryQuery {
                since_ms: Some(self.start_ms.max(0) as u64),
                until_ms: Some(self.end_ms as u64),
                period_secs: period,
            };
            let history = match self
                .engine
                .queue_metric_history(self.ctx, queue, &query)
                .await
            {
                Ok(h) => Some(h),
                Err(e) if e.code == ErrorCode::QueueDoesNotExist => None,
                Err(e) => {
                    return Err(CwError::new(
                        CwErrorCode::InternalServiceError,
                        format!("The metric history could not be read: {}", e.message),
                    ));
                }
            };
            self.read.insert(key.clone(), history);
        }
        let Some(history) = self.read.get(&key).and_then(Option::as_ref) else {
            return Ok(Vec::new());
        };
        let Some(series) = history.series.iter().find(|s| s.def.name == def.name) else {
            return Ok(Vec::new());
        };
        Ok(series
            .points
            .iter()
            .filter_map(|p| {
                let v = match stat {
                    Statistic::Sum => Some(p.sum),
                    Statistic::Average => p.average,
                    Statistic::Minimum => p.minimum,
                    Statistic::Maximum => p.maximum,
                    Statistic::SampleCount => Some(p.sample_count),
                }?;
                Some((p.timestamp_ms as i64, v))
            })
            .collect())
    }
}

/// `NextToken` of GetMetricData: the result and datapoint to go on from.
fn data_token(result: usize, offset: usize) -> String {
    format!("rd1.{result}.{offset}")
}

fn parse_data_token(token: &str) -> Option<(usize, usize)> {
    let mut parts = token.strip_prefix("rd1.")?.split('.');
    let r = parts.next()?.parse().ok()?;
    let o = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((r, o))
}

fn invalid_token() -> CwError {
    CwError::new(
        CwErrorCode::InvalidNextToken,
        "The NextToken is not valid for this request.",
    )
}

async fn get_metric_data(
    engine: &Arc<Engine>,
    ctx: &RequestContext,
    input: GetMetricDataInput,
) -> Result<GetMetricDataOutput, CwError> {
    let mut histories = Histories {
        engine,
        ctx,
        start_ms: input.start_ms,
        end_ms: input.end_ms,
        read: HashMap::new(),
    };
    let mut full = Vec::new();
    for q in input.queries.iter().filter(|q| q.return_data) {
        let mut points = histories
            .points(&q.metric, q.period, q.stat, q.unit.as_deref())
            .await?;
        if input.scan_by == ScanBy::TimestampDescending {
            points.reverse();
        }
        full.push((q, points));
    }
    let (first, mut offset) = match &input.next_token {
        None => (0, 0),
        Some(t) => {
            let (r, o) = parse_data_token(t).ok_or_else(invalid_token)?;
            if r >= full.len() || o > full[r].1.len() {
                return Err(invalid_token());
            }
            (r, o)
        }
    };
    let mut budget = input.max_datapoints as usize;
    let mut output = GetMetricDataOutput::default();
    for (index, (q, points)) in full.iter().enumerate().skip(first) {
        if budget == 0 {
            output.next_token = Some(data_token(index, 0));
            break;
        }
        let rest = &points[offset..];
        let take = rest.len().min(budget);
        budget -= take;
        let status = if take < rest.len() {
            output.next_token = Some(data_token(index, offset + take));
            ResultStatus::PartialData
        } else {
            ResultStatus::Complete
        };
        output.results.push(MetricDataResult {
            id: q.id.clone(),
            label: q
                .label
                .clone()
                .unwrap_or_else(|| q.metric.metric_name.clone()),
            timestamps_ms: rest[..take].iter().map(|p| p.0).collect(),
            values: rest[..take].iter().map(|p| p.1).collect(),
            status,
        });
        offset = 0;
        if status == ResultStatus::PartialData {
            break;
        }
    }
    Ok(output)
}

async fn get_metric_statistics(
    engine: &Arc<Engine>,
    ctx: &RequestContext,
    input: GetMetricStatisticsInput,
) -> Result<GetMetricStatisticsOutput, CwError> {
    let mut histories = Histories {
        engine,
        ctx,
        start_ms: input.start_ms,
        end_ms: input.end_ms,
        read: HashMap::new(),
    };
    let unit = our_queue(&input.metric).map_or("None", |(_, d)| d.unit);
    let mut by_time: std::collections::BTreeMap<i64, Vec<(Statistic, f64)>> =
        std::collections::BTreeMap::new();
    for stat in &input.statistics {
        for (t, v) in histories
            .points(&input.metric, input.period, *stat, input.unit.as_deref())
            .await?
        {
            by_time.entry(t).or_default().push((*stat, v));
        }
    }
    Ok(GetMetricStatisticsOutput {
        label: input.metric.metric_name.clone(),
        datapoints: by_time
            .into_iter()
            .map(|(timestamp_ms, values)| cw::Datapoint {
                timestamp_ms,
                values,
                unit: unit.to_string(),
            })
            .collect(),
    })
}

/// The Region's queue names, sorted, from either store.
async fn queue_names(engine: &Engine, ctx: &RequestContext) -> Result<Vec<String>, CwError> {
    if let Some(b) = engine.shared_backend() {
        let queues = b
            .list_queues(&ctx.region, "")
            .await
            .map_err(from_sqs_error)?;
        let mut names: Vec<String> = queues.into_iter().map(|q| q.name).collect();
        names.sort();
        return Ok(names);
    }
    let mut names = Vec::new();
    let mut next_token = None;
    loop {
        let page = engine
            .list_queues(
                ctx,
                redrive_core::api::ListQueuesInput {
                    queue_name_prefix: None,
                    next_token: next_token.take(),
                    max_results: Some(1000),
                },
            )
            .map_err(from_sqs_error)?;
        names.extend(
            page.queue_urls
                .iter()
                .filter_map(|u| u.rsplit('/').next().map(str::to_string)),
        );
        match page.next_token {
            Some(t) => next_token = Some(t),
            None => break,
        }
    }
    names.sort();
    Ok(names)
}

async fn list_metrics(
    engine: &Arc<Engine>,
    ctx: &RequestContext,
    input: ListMetricsInput,
) -> Result<ListMetricsOutput, CwError> {
    let start = match &input.next_token {
        None => 0,
        Some(t) => t
            .strip_prefix("rl1.")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(invalid_token)?,
    };
    if input
        .namespace
        .as_deref()
        .is_some_and(|n| n != cw::NAMESPACE)
        || input
            .dimensions
            .iter()
            .any(|f| f.name != cw::QUEUE_DIMENSION)
    {
        return Ok(ListMetricsOutput::default());
    }
    let mut all = Vec::new();
    for queue in queue_names(engine, ctx).await? {
        if input
            .dimensions
            .iter()
            .any(|f| f.value.as_deref().is_some_and(|v| v != queue))
        {
            continue;
        }
        for def in all_metrics() {
            if input.metric_name.as_deref().is_some_and(|m| m != def.name) {
                continue;
            }
            all.push(MetricId {
                namespace: cw::NAMESPACE.into(),
                metric_name: def.name.into(),
                dimensions: vec![Dimension {
                    name: cw::QUEUE_DIMENSION.into(),
                    value: queue.clone(),
                }],
            });
        }
    }
    if start > all.len() {
        return Err(invalid_token());
    }
    let end = (start + cw::LIST_PAGE).min(all.len());
    Ok(ListMetricsOutput {
        next_token: (end < all.len()).then(|| format!("rl1.{end}")),
        metrics: all.drain(start..end).collect(),
    })
}
