//! Redrive's wire formats: AWS JSON 1.0 and AWS Query (form in, XML out), decoded into and encoded
//! from the typed [`Request`](redrive_core::api::Request) and
//! [`Response`](redrive_core::api::Response) of `redrive-core`. Pure functions: no IO.
//!
//! # Layout
//! - [`detect`]: which protocol a request speaks.
//! - [`json`]: `X-Amz-Target` + JSON body in, JSON out.
//! - [`query`]: form parameters in ([`query::Params`]), XML out.
//! - [`cloudwatch`]: CloudWatch's metric-reading operations in RPC v2 CBOR, JSON 1.0 and Query.

pub mod cloudwatch;
pub mod json;
pub mod query;
pub mod sigv4;

/// The two SQS wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// AWS JSON 1.0: `X-Amz-Target: AmazonSQS.<Action>` and a JSON body.
    Json,
    /// AWS Query: `Action=<Action>&…` in a form body or query string, XML responses.
    Query,
}

/// JSON when the content type starts with `application/x-amz-json` (ASCII case-insensitive) or an
/// `X-Amz-Target` header is present; Query otherwise.
pub fn detect(content_type: Option<&str>, amz_target: Option<&str>) -> Protocol {
    const JSON_PREFIX: &str = "application/x-amz-json";
    let json_content_type = content_type.is_some_and(|ct| {
        ct.get(..JSON_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(JSON_PREFIX))
    });
    if json_content_type || amz_target.is_some() {
        Protocol::Json
    } else {
        Protocol::Query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_protocol() {
        assert_eq!(
            detect(Some("application/x-amz-json-1.0"), None),
            Protocol::Json
        );
        assert_eq!(
            detect(Some("Application/X-Amz-Json-1.1; charset=utf-8"), None),
            Protocol::Json
        );
        assert_eq!(detect(None, Some("AmazonSQS.SendMessage")), Protocol::Json);
        assert_eq!(
            detect(
                Some("application/x-www-form-urlencoded"),
                Some("AmazonSQS.ListQueues")
            ),
            Protocol::Json
        );
        assert_eq!(
            detect(Some("application/x-www-form-urlencoded"), None),
            Protocol::Query
        );
        assert_eq!(detect(Some("application/json"), None), Protocol::Query);
        assert_eq!(detect(Some("é"), None), Protocol::Query);
        assert_eq!(detect(None, None), Protocol::Query);
    }
}
