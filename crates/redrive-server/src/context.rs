//! Per-request facts taken from headers: the Region and the base URL for queue URLs.

use http::HeaderMap;

/// The Region from a SigV4 credential scope (`Credential=AKID/20240101/<region>/sqs/aws4_request`),
/// in the `Authorization` header or a presigned `X-Amz-Credential` parameter.
pub fn region_from_credential(credential: &str) -> Option<&str> {
    let mut parts = credential.split('/');
    let _akid = parts.next()?;
    let _date = parts.next()?;
    let region = parts.next()?;
    (!region.is_empty()).then_some(region)
}

pub fn region_from_headers(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    let cred = cred.split([',', ' ']).next()?;
    region_from_credential(cred).map(str::to_string)
}

/// `{scheme}://{Host}`; `X-Forwarded-Proto` decides the scheme behind a TLS proxy.
pub fn base_url(headers: &HeaderMap, fallback_host: &str) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or(fallback_host);
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_from_sigv4() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-2/sqs/aws4_request, SignedHeaders=host, Signature=abc"
                .parse()
                .unwrap(),
        );
        assert_eq!(region_from_headers(&h).as_deref(), Some("eu-west-2"));
        assert_eq!(region_from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn base_url_from_host() {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, "localhost:4566".parse().unwrap());
        assert_eq!(base_url(&h, "x"), "http://localhost:4566");
    }
}
