//! CloudWatch's API for SQS metrics (`GetMetricData`, `GetMetricStatistics`, `ListMetrics`) and metric
//! alarms (`PutMetricAlarm`, `DescribeAlarms…`, `DescribeAlarmHistory`, `DeleteAlarms`, `SetAlarmState`) in the three
//! wire protocols its clients speak (read from their service models, see `docs/metrics.md`):
//!
//! - **Smithy RPC v2 CBOR** (`aws-sdk-cloudwatch`, botocore's first choice where it has it):
//!   `POST /service/GraniteServiceVersion20100801/operation/{Op}`, `smithy-protocol:
//!   rpc-v2-cbor`, CBOR bodies, times as tag 1.
//! - **AWS JSON 1.0** (current botocore): `X-Amz-Target: GraniteServiceVersion20100801.{Op}`,
//!   times as epoch seconds.
//! - **AWS Query** (botocore before CloudWatch gained JSON): `Action={Op}&Version=2010-08-01`,
//!   lists as `Name.member.N`, XML responses in [`XMLNS`].
//!
//! The service is `awsQueryCompatible`: JSON and CBOR errors carry the Query code in
//! `x-amzn-query-error: Code;Sender`. Pure code: decode into typed requests (validated as
//! CloudWatch does), encode typed responses. No IO.

mod alarms;
mod doc;
mod ops;

pub use alarms::{
    DescribeAlarmHistoryInput, DescribeAlarmHistoryOutput, DescribeAlarmsForMetricInput,
    DescribeAlarmsInput, DescribeAlarmsOutput, SetAlarmStateInput,
};

pub use doc::{Doc, iso8601, parse_time_text};
pub use ops::{decode_doc, encode_response_doc};

/// `X-Amz-Target` prefix and RPC v2 service name.
pub const TARGET_PREFIX: &str = "GraniteServiceVersion20100801";
/// The Query API version of CloudWatch (SQS's is `2012-11-05`).
pub const VERSION: &str = "2010-08-01";
pub const XMLNS: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";
/// SigV4 service name.
pub const SIGNING_NAME: &str = "monitoring";
pub const CBOR_CONTENT_TYPE: &str = "application/cbor";
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.0";
pub const XML_CONTENT_TYPE: &str = "text/xml";
/// The only namespace served.
pub const NAMESPACE: &str = "AWS/SQS";
/// The only dimension served.
pub const QUEUE_DIMENSION: &str = "QueueName";
/// Most `MetricDataQueries` in one `GetMetricData`.
pub const MAX_QUERIES: usize = 500;
/// `MaxDatapoints` when not given.
pub const DEFAULT_MAX_DATAPOINTS: u64 = 100_800;
/// Metrics per `ListMetrics` page.
pub const LIST_PAGE: usize = 500;

/// The three CloudWatch wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CwProtocol {
    Cbor,
    Json,
    Query,
}

/// A request's protocol and operation name, when it is addressed to CloudWatch: by the RPC v2
/// path, the JSON target, or a Query `Version=2010-08-01` (in the query string or form body).
pub fn detect(
    path: &str,
    target: Option<&str>,
    query_string: Option<&str>,
    body: &[u8],
) -> Option<(CwProtocol, String)> {
    if let Some(op) = path
        .strip_prefix("/service/")
        .and_then(|p| p.strip_prefix(TARGET_PREFIX))
        .and_then(|p| p.strip_prefix("/operation/"))
    {
        return Some((CwProtocol::Cbor, op.to_string()));
    }
    if let Some(op) = target
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .and_then(|t| t.strip_prefix('.'))
    {
        return Some((CwProtocol::Json, op.to_string()));
    }
    if target.is_some() {
        return None;
    }
    let marker = VERSION.as_bytes();
    let mentions = |b: &[u8]| b.windows(marker.len()).any(|w| w == marker);
    if !mentions(body) && !query_string.is_some_and(|q| mentions(q.as_bytes())) {
        return None;
    }
    let pairs = query_pairs(query_string, body);
    let version = pairs.iter().find(|(k, _)| k == "Version").map(|(_, v)| v);
    if version.map(String::as_str) != Some(VERSION) {
        return None;
    }
    let action = pairs
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    Some((CwProtocol::Query, action))
}

fn query_pairs(query_string: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    if let Some(q) = query_string {
        pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    pairs
}

/// Decodes a detected request into a typed, validated [`CwRequest`].
pub fn decode(
    protocol: CwProtocol,
    operation: &str,
    query_string: Option<&str>,
    body: &[u8],
) -> Result<CwRequest, CwError> {
    let doc = match protocol {
        CwProtocol::Cbor if body.is_empty() => Doc::Map(Vec::new()),
        CwProtocol::Cbor => doc::from_cbor(body).map_err(|e| {
            CwError::new(
                CwErrorCode::Serialization,
                format!("The request body is not valid CBOR: {e}."),
            )
        })?,
        CwProtocol::Json if body.iter().all(u8::is_ascii_whitespace) => Doc::Map(Vec::new()),
        CwProtocol::Json => {
            let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
                CwError::new(
                    CwErrorCode::Serialization,
                    format!("The request body is not valid JSON: {e}."),
                )
            })?;
            doc::from_json(v)
        }
        CwProtocol::Query => doc::from_query(&query_pairs(query_string, body))
            .map_err(|e| CwError::new(CwErrorCode::MalformedQueryString, e))?,
    };
    if !matches!(doc, Doc::Map(_)) {
        return Err(CwError::new(
            CwErrorCode::Serialization,
            "The request body must be a structure.",
        ));
    }
    decode_doc(operation, &doc)
}

/// A dimension (`QueueName` = name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    pub name: String,
    pub value: String,
}

/// Which metric: namespace, name and dimensions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricId {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<Dimension>,
}

/// A statistic this server computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    Sum,
    Average,
    Minimum,
    Maximum,
    SampleCount,
}

impl Statistic {
    pub const ALL: [Statistic; 5] = [
        Statistic::SampleCount,
        Statistic::Average,
        Statistic::Sum,
        Statistic::Minimum,
        Statistic::Maximum,
    ];

    pub fn parse(s: &str) -> Option<Statistic> {
        Statistic::ALL.into_iter().find(|st| st.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Statistic::Sum => "Sum",
            Statistic::Average => "Average",
            Statistic::Minimum => "Minimum",
            Statistic::Maximum => "Maximum",
            Statistic::SampleCount => "SampleCount",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricStatQuery {
    /// `Id` (unique, `[a-z][a-zA-Z0-9_]*`).
    pub id: String,
    pub metric: MetricId,
    /// Seconds, a positive multiple of 60.
    pub period: u64,
    pub stat: Statistic,
    pub unit: Option<String>,
    pub label: Option<String>,
    pub return_data: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanBy {
    #[default]
    TimestampDescending,
    TimestampAscending,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GetMetricDataInput {
    pub queries: Vec<MetricStatQuery>,
    /// Epoch ms; `start_ms < end_ms`.
    pub start_ms: i64,
    pub end_ms: i64,
    pub next_token: Option<String>,
    pub scan_by: ScanBy,
    pub max_datapoints: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GetMetricStatisticsInput {
    pub metric: MetricId,
    pub start_ms: i64,
    pub end_ms: i64,
    pub period: u64,
    pub statistics: Vec<Statistic>,
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimensionFilter {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListMetricsInput {
    pub namespace: Option<String>,
    pub metric_name: Option<String>,
    pub dimensions: Vec<DimensionFilter>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CwRequest {
    GetMetricData(GetMetricDataInput),
    GetMetricStatistics(GetMetricStatisticsInput),
    ListMetrics(ListMetricsInput),
    PutMetricAlarm(redrive_core::alarm::AlarmDefinition),
    DescribeAlarms(DescribeAlarmsInput),
    DescribeAlarmsForMetric(DescribeAlarmsForMetricInput),
    DescribeAlarmHistory(DescribeAlarmHistoryInput),
    DeleteAlarms(Vec<String>),
    SetAlarmState(SetAlarmStateInput),
}

impl CwRequest {
    pub fn operation(&self) -> &'static str {
        match self {
            CwRequest::GetMetricData(_) => "GetMetricData",
            CwRequest::GetMetricStatistics(_) => "GetMetricStatistics",
            CwRequest::ListMetrics(_) => "ListMetrics",
            CwRequest::PutMetricAlarm(_) => "PutMetricAlarm",
            CwRequest::DescribeAlarms(_) => "DescribeAlarms",
            CwRequest::DescribeAlarmsForMetric(_) => "DescribeAlarmsForMetric",
            CwRequest::DescribeAlarmHistory(_) => "DescribeAlarmHistory",
            CwRequest::DeleteAlarms(_) => "DeleteAlarms",
            CwRequest::SetAlarmState(_) => "SetAlarmState",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCode {
    Complete,
    PartialData,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricDataResult {
    pub id: String,
    pub label: String,
    pub timestamps_ms: Vec<i64>,
    pub values: Vec<f64>,
    pub status: StatusCode,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetMetricDataOutput {
    pub results: Vec<MetricDataResult>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    pub timestamp_ms: i64,
    /// The requested statistics only.
    pub values: Vec<(Statistic, f64)>,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetMetricStatisticsOutput {
    pub label: String,
    pub datapoints: Vec<Datapoint>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListMetricsOutput {
    pub metrics: Vec<MetricId>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CwResponse {
    GetMetricData(GetMetricDataOutput),
    GetMetricStatistics(GetMetricStatisticsOutput),
    ListMetrics(ListMetricsOutput),
    DescribeAlarms(DescribeAlarmsOutput),
    DescribeAlarmsForMetric(Vec<redrive_core::alarm::AlarmRecord>),
    DescribeAlarmHistory(DescribeAlarmHistoryOutput),
    /// An operation without output (`PutMetricAlarm`, `DeleteAlarms`, `SetAlarmState`).
    Empty(&'static str),
}

/// CloudWatch's error codes (the Query code; JSON and CBOR carry the model's shape name in
/// `__type` and the Query code in `x-amzn-query-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CwErrorCode {
    InvalidParameterValue,
    InvalidParameterCombination,
    MissingParameter,
    /// What AWS answers to some GetMetricData input errors (e.g. StartTime = EndTime).
    ValidationError,
    InvalidNextToken,
    /// An operation this server does not serve (JSON/CBOR: `UnknownOperationException`).
    InvalidAction,
    /// A body that is not the protocol's format.
    Serialization,
    MalformedQueryString,
    InternalServiceError,
    /// A named alarm that does not exist (404).
    ResourceNotFound,
    LimitExceeded,
    /// `StateReasonData` that is not JSON.
    InvalidFormat,
    /// SigV4 failures, by their SQS-compatible code (403).
    MissingAuthenticationToken,
    IncompleteSignature,
    InvalidClientTokenId,
    SignatureDoesNotMatch,
}

impl CwErrorCode {
    /// The Query `<Code>` and the first half of `x-amzn-query-error`.
    pub fn query_code(self) -> &'static str {
        match self {
            CwErrorCode::InvalidParameterValue => "InvalidParameterValue",
            CwErrorCode::InvalidParameterCombination => "InvalidParameterCombination",
            CwErrorCode::MissingParameter => "MissingParameter",
            CwErrorCode::ValidationError => "ValidationError",
            CwErrorCode::InvalidNextToken => "InvalidNextToken",
            CwErrorCode::InvalidAction => "InvalidAction",
            CwErrorCode::Serialization => "SerializationException",
            CwErrorCode::MalformedQueryString => "MalformedQueryString",
            CwErrorCode::InternalServiceError => "InternalServiceError",
            CwErrorCode::ResourceNotFound => "ResourceNotFound",
            CwErrorCode::LimitExceeded => "LimitExceeded",
            CwErrorCode::InvalidFormat => "InvalidFormat",
            CwErrorCode::MissingAuthenticationToken => "MissingAuthenticationToken",
            CwErrorCode::IncompleteSignature => "IncompleteSignature",
            CwErrorCode::InvalidClientTokenId => "InvalidClientTokenId",
            CwErrorCode::SignatureDoesNotMatch => "SignatureDoesNotMatch",
        }
    }

    /// The JSON/CBOR `__type` (the service model's shape name).
    pub fn shape(self) -> &'static str {
        match self {
            CwErrorCode::InvalidParameterValue => "InvalidParameterValueException",
            CwErrorCode::InvalidParameterCombination => "InvalidParameterCombinationException",
            CwErrorCode::MissingParameter => "MissingRequiredParameterException",
            CwErrorCode::ValidationError => "ValidationError",
            CwErrorCode::InvalidAction => "UnknownOperationException",
            CwErrorCode::InternalServiceError => "InternalServiceFault",
            CwErrorCode::LimitExceeded => "LimitExceededFault",
            CwErrorCode::InvalidFormat => "InvalidFormatFault",
            other => other.query_code(),
        }
    }

    pub fn status(self) -> u16 {
        match self {
            CwErrorCode::InternalServiceError => 500,
            CwErrorCode::ResourceNotFound => 404,
            CwErrorCode::MissingAuthenticationToken
            | CwErrorCode::IncompleteSignature
            | CwErrorCode::InvalidClientTokenId
            | CwErrorCode::SignatureDoesNotMatch => 403,
            _ => 400,
        }
    }

    pub fn sender_fault(self) -> bool {
        self != CwErrorCode::InternalServiceError
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.query_code())]
pub struct CwError {
    pub code: CwErrorCode,
    pub message: String,
}

impl CwError {
    pub fn new(code: CwErrorCode, message: impl Into<String>) -> CwError {
        CwError {
            code,
            message: message.into(),
        }
    }

    /// `x-amzn-query-error` (`Code;Sender`).
    pub fn query_error_header(&self) -> String {
        let fault = if self.code.sender_fault() {
            "Sender"
        } else {
            "Receiver"
        };
        format!("{};{fault}", self.code.query_code())
    }
}

/// An encoded reply: HTTP status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

pub fn encode_response(protocol: CwProtocol, response: &CwResponse, request_id: &str) -> Encoded {
    let (op, doc) = encode_response_doc(response);
    match protocol {
        CwProtocol::Cbor => Encoded {
            status: 200,
            content_type: CBOR_CONTENT_TYPE,
            body: doc::to_cbor(&doc),
        },
        CwProtocol::Json => Encoded {
            status: 200,
            content_type: JSON_CONTENT_TYPE,
            body: doc::to_json(&doc).to_string().into_bytes(),
        },
        CwProtocol::Query if matches!(response, CwResponse::Empty(_)) => Encoded {
            status: 200,
            content_type: XML_CONTENT_TYPE,
            body: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{op}Response xmlns=\"{XMLNS}\"><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{op}Response>",
                doc::xml_escape(request_id)
            )
            .into_bytes(),
        },
        CwProtocol::Query => {
            let mut xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{op}Response xmlns=\"{XMLNS}\"><{op}Result>"
            );
            doc::to_xml(&mut xml, &doc);
            xml.push_str(&format!(
                "</{op}Result><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{op}Response>",
                doc::xml_escape(request_id)
            ));
            Encoded {
                status: 200,
                content_type: XML_CONTENT_TYPE,
                body: xml.into_bytes(),
            }
        }
    }
}

pub fn encode_error(protocol: CwProtocol, err: &CwError, request_id: &str) -> Encoded {
    let status = if protocol != CwProtocol::Query && err.code == CwErrorCode::InvalidAction {
        404
    } else {
        err.code.status()
    };
    let doc = Doc::Map(vec![
        (
            "__type".into(),
            Doc::Str(format!("com.amazonaws.cloudwatch#{}", err.code.shape())),
        ),
        ("message".into(), Doc::Str(err.message.clone())),
    ]);
    match protocol {
        CwProtocol::Cbor => Encoded {
            status,
            content_type: CBOR_CONTENT_TYPE,
            body: doc::to_cbor(&doc),
        },
        CwProtocol::Json => Encoded {
            status,
            content_type: JSON_CONTENT_TYPE,
            body: doc::to_json(&doc).to_string().into_bytes(),
        },
        CwProtocol::Query => {
            let fault = if err.code.sender_fault() {
                "Sender"
            } else {
                "Receiver"
            };
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{fault}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                err.code.query_code(),
                doc::xml_escape(&err.message),
                doc::xml_escape(request_id)
            );
            Encoded {
                status,
                content_type: XML_CONTENT_TYPE,
                body: xml.into_bytes(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OPS: [&str; 4] = [
        "GetMetricData",
        "GetMetricStatistics",
        "ListMetrics",
        "Nope",
    ];

    proptest! {
        #[test]
        fn decode_never_panics_on_any_body(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            query_string in ".{0,64}",
            op in proptest::sample::select(OPS.to_vec()),
        ) {
            for protocol in [CwProtocol::Cbor, CwProtocol::Json, CwProtocol::Query] {
                let _ = decode(protocol, op, Some(&query_string), &body);
            }
            let _ = detect("/", None, Some(&query_string), &body);
        }

        #[test]
        fn decode_never_panics_on_query_parameter_trees(
            pairs in proptest::collection::vec((
                "(MetricDataQueries|Dimensions|Statistics|StartTime|EndTime|Period|MetricStat|Metric|member|Id|Stat|[0-9]{1,2})(\\.(MetricDataQueries|Dimensions|member|MetricStat|Metric|Period|Stat|Name|Value|Id|ReturnData|[0-9]{1,2})){0,6}",
                ".{0,12}",
            ), 0..16),
            op in proptest::sample::select(OPS.to_vec()),
        ) {
            let form: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            let _ = decode(CwProtocol::Query, op, None, form.as_bytes());
        }
    }

    #[test]
    fn deeply_nested_cbor_is_an_error_not_a_stack_overflow() {
        let mut body = vec![0x81; 10_000]; // arrays of one element, nested
        body.push(0x00);
        let e = decode(CwProtocol::Cbor, "ListMetrics", None, &body).unwrap_err();
        assert_eq!(e.code, CwErrorCode::Serialization);
        let mut json = "[".repeat(10_000);
        json.push_str(&"]".repeat(10_000));
        let e = decode(CwProtocol::Json, "ListMetrics", None, json.as_bytes()).unwrap_err();
        assert_eq!(e.code, CwErrorCode::Serialization);
    }

    #[test]
    fn detects_each_protocol_and_leaves_sqs_alone() {
        assert_eq!(
            detect(
                "/service/GraniteServiceVersion20100801/operation/GetMetricData",
                None,
                None,
                b""
            ),
            Some((CwProtocol::Cbor, "GetMetricData".into()))
        );
        assert_eq!(
            detect(
                "/",
                Some("GraniteServiceVersion20100801.ListMetrics"),
                None,
                b"{}"
            ),
            Some((CwProtocol::Json, "ListMetrics".into()))
        );
        assert_eq!(
            detect("/", None, None, b"Action=ListMetrics&Version=2010-08-01"),
            Some((CwProtocol::Query, "ListMetrics".into()))
        );
        assert_eq!(
            detect(
                "/",
                None,
                Some("Action=ListMetrics&Version=2010-08-01"),
                b""
            ),
            Some((CwProtocol::Query, "ListMetrics".into()))
        );
        // SQS, including a body that mentions the date elsewhere.
        assert_eq!(
            detect(
                "/",
                None,
                None,
                b"Action=SendMessage&Version=2012-11-05&MessageBody=2010-08-01"
            ),
            None
        );
        assert_eq!(
            detect("/", Some("AmazonSQS.ListQueues"), None, b"2010-08-01"),
            None
        );
    }

    #[test]
    fn errors_carry_the_query_code_in_every_protocol() {
        let err = CwError::new(
            CwErrorCode::MissingParameter,
            "The parameter StartTime is required.",
        );
        assert_eq!(err.query_error_header(), "MissingParameter;Sender");
        let json = encode_error(CwProtocol::Json, &err, "r1");
        assert_eq!(json.status, 400);
        let v: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(
            v["__type"],
            "com.amazonaws.cloudwatch#MissingRequiredParameterException"
        );
        let xml = String::from_utf8(encode_error(CwProtocol::Query, &err, "r1").body).unwrap();
        assert!(xml.contains("<Code>MissingParameter</Code>"), "{xml}");
        let cbor = encode_error(CwProtocol::Cbor, &err, "r1");
        assert_eq!(
            doc::from_cbor(&cbor.body).unwrap().get("message"),
            Some(&Doc::Str("The parameter StartTime is required.".into()))
        );
        let unknown = CwError::new(CwErrorCode::InvalidAction, "x");
        assert_eq!(encode_error(CwProtocol::Cbor, &unknown, "r").status, 404);
        assert_eq!(encode_error(CwProtocol::Query, &unknown, "r").status, 400);
    }
}
