//! AWS Signature Version 4 verification (header and presigned query-string flavours), pure:
//! the caller passes the request's parts, a secret lookup and the current time.
//!
//! As AWS does for SQS: the body is hashed here (SQS clients send no
//! `x-amz-content-sha256`), the canonical URI is URI-encoded a second time (every service but
//! S3), the canonical request is rebuilt from the client's own `SignedHeaders`, the request
//! time must be within 15 minutes, and signatures are compared in constant time.

use hmac::{Hmac, KeyInit, Mac};
use redrive_core::civil::{civil_from_days, days_from_civil};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Allowed clock skew between the signer and us, in seconds.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// The parts of an HTTP request that a signature covers.
#[derive(Debug, Clone)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// Header names (any case) and values.
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

/// Who signed, once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key: String,
    pub region: String,
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Request is missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Incomplete(String),
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    SignatureMismatch,
    #[error("Signature expired: {signed} is now earlier than {earliest} ({now} - 15 min.)")]
    Expired {
        signed: String,
        earliest: String,
        now: String,
    },
    #[error("Signature not yet current: {signed} is still later than {latest} ({now} + 15 min.)")]
    NotYetValid {
        signed: String,
        latest: String,
        now: String,
    },
}

/// The signature parameters, from the `Authorization` header or the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Params {
    access_key: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    presigned: bool,
    expires: Option<i64>,
}

fn header<'a>(req: &'a SignedRequest<'_>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn credential(value: &str) -> Result<(String, String, String, String), AuthError> {
    let parts: Vec<&str> = value.split('/').collect();
    if parts.len() != 5 || parts[4] != "aws4_request" || parts.iter().any(|p| p.is_empty()) {
        return Err(AuthError::Incomplete(format!(
            "Credential should be scoped to a valid region, not '{value}'."
        )));
    }
    Ok((
        parts[0].to_string(),
        parts[1].to_string(),
        parts[2].to_string(),
        parts[3].to_string(),
    ))
}

fn params(req: &SignedRequest<'_>) -> Result<Params, AuthError> {
    if let Some(auth) = header(req, "authorization") {
        let rest = auth.strip_prefix(ALGORITHM).ok_or_else(|| {
            AuthError::Incomplete(format!(
                "Unsupported authorization type (expected {ALGORITHM})."
            ))
        })?;
        let mut cred = None;
        let mut signed = None;
        let mut sig = None;
        for part in rest.split(',') {
            let (k, v) = part.trim().split_once('=').unwrap_or((part.trim(), ""));
            match k {
                "Credential" => cred = Some(v),
                "SignedHeaders" => signed = Some(v),
                "Signature" => sig = Some(v),
                _ => {}
            }
        }
        let missing: Vec<&str> = [
            ("Credential", cred),
            ("SignedHeaders", signed),
            ("Signature", sig),
        ]
        .iter()
        .filter(|(_, v)| v.is_none_or(str::is_empty))
        .map(|(n, _)| *n)
        .collect();
        if !missing.is_empty() {
            return Err(AuthError::Incomplete(
                missing
                    .iter()
                    .map(|m| format!("Authorization header requires '{m}' parameter."))
                    .collect::<Vec<_>>()
                    .join(" "),
            ));
        }
        let (access_key, date, region, service) = credential(cred.unwrap_or_default())?;
        let amz_date = header(req, "x-amz-date")
            .ok_or_else(|| {
                AuthError::Incomplete(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
                )
            })?
            .to_string();
        return Ok(Params {
            access_key,
            date,
            region,
            service,
            signed_headers: signed
                .unwrap_or_default()
                .split(';')
                .map(str::to_ascii_lowercase)
                .collect(),
            signature: sig.unwrap_or_default().to_string(),
            amz_date,
            presigned: false,
            expires: None,
        });
    }
    let q = query_pairs(req.query);
    let get = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let Some(algorithm) = get("X-Amz-Algorithm") else {
        return Err(AuthError::Missing);
    };
    if algorithm != ALGORITHM {
        return Err(AuthError::Incomplete(format!(
            "Unsupported X-Amz-Algorithm `{algorithm}`."
        )));
    }
    let mut missing = Vec::new();
    let mut need = |name: &'static str| {
        let v = get(name);
        if v.as_deref().is_none_or(str::is_empty) {
            missing.push(name);
        }
        v.unwrap_or_default()
    };
    let cred = need("X-Amz-Credential");
    let amz_date = need("X-Amz-Date");
    let signed = need("X-Amz-SignedHeaders");
    let signature = need("X-Amz-Signature");
    if !missing.is_empty() {
        return Err(AuthError::Incomplete(format!(
            "AWS query-string parameters missing: {}.",
            missing.join(", ")
        )));
    }
    let (access_key, date, region, service) = credential(&cred)?;
    let expires = match get("X-Amz-Expires") {
        None => None,
        Some(e) => Some(e.parse::<i64>().map_err(|_| {
            AuthError::Incomplete(format!(
                "X-Amz-Expires must be a number of seconds, not `{e}`."
            ))
        })?),
    };
    Ok(Params {
        access_key,
        date,
        region,
        service,
        signed_headers: signed.split(';').map(str::to_ascii_lowercase).collect(),
        signature,
        amz_date,
        presigned: true,
        expires,
    })
}

/// Verifies a request signed for `service` (e.g. `sqs`) with a secret from `secret_of`.
pub fn verify(
    req: &SignedRequest<'_>,
    service: &str,
    secret_of: impl Fn(&str) -> Option<String>,
    now_unix: i64,
) -> Result<Verified, AuthError> {
    let p = params(req)?;
    if p.service != service {
        return Err(AuthError::Incomplete(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }
    let signed_at = parse_amz_date(&p.amz_date).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "Invalid X-Amz-Date `{}` (expected YYYYMMDDTHHMMSSZ).",
            p.amz_date
        ))
    })?;
    if !p.amz_date.starts_with(&p.date) {
        return Err(AuthError::Incomplete(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'.",
            p.date,
            &p.amz_date[..8.min(p.amz_date.len())]
        )));
    }
    if !p.signed_headers.iter().any(|h| h == "host") {
        return Err(AuthError::Incomplete(
            "'Host' must be a signed header.".into(),
        ));
    }
    let secret = secret_of(&p.access_key).ok_or(AuthError::UnknownAccessKey)?;
    let expected = signature(req, &p, &secret);
    if !constant_time_eq(expected.as_bytes(), p.signature.as_bytes()) {
        return Err(AuthError::SignatureMismatch);
    }
    // Time is checked after the signature, as AWS does (an attacker learns nothing from it).
    let (earliest, latest) = match (p.presigned, p.expires) {
        (true, Some(exp)) => (now_unix - exp, now_unix + MAX_SKEW_SECS),
        _ => (now_unix - MAX_SKEW_SECS, now_unix + MAX_SKEW_SECS),
    };
    if signed_at < earliest {
        return Err(AuthError::Expired {
            signed: p.amz_date.clone(),
            earliest: format_amz_date(earliest),
            now: format_amz_date(now_unix),
        });
    }
    if signed_at > latest {
        return Err(AuthError::NotYetValid {
            signed: p.amz_date.clone(),
            latest: format_amz_date(latest),
            now: format_amz_date(now_unix),
        });
    }
    Ok(Verified {
        access_key: p.access_key,
        region: p.region,
    })
}

fn signature(req: &SignedRequest<'_>, p: &Params, secret: &str) -> String {
    let canonical = canonical_request(req, p);
    let scope = format!("{}/{}/{}/aws4_request", p.date, p.region, p.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        p.amz_date,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(secret, &p.date, &p.region, &p.service);
    hex::encode(hmac(&key, string_to_sign.as_bytes()))
}

fn canonical_request(req: &SignedRequest<'_>, p: &Params) -> String {
    let mut query: Vec<(String, String)> = query_pairs(req.query)
        .into_iter()
        .filter(|(k, _)| !(p.presigned && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(&k, true), uri_encode(&v, true)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let headers: String = p
        .signed_headers
        .iter()
        .map(|name| {
            let values: Vec<String> = req
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            format!("{name}:{}\n", values.join(","))
        })
        .collect();
    let payload = hex::encode(Sha256::digest(req.body));
    format!(
        "{}\n{}\n{query}\n{headers}\n{}\n{payload}",
        req.method,
        canonical_uri(req.path),
        p.signed_headers.join(";"),
    )
}

/// Normalized path (no empty or `.` segments, `..` resolved), each segment encoded again.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = path.len() > 1 && path.ends_with('/') && !segments.is_empty();
    let mut out = String::from("/");
    out.push_str(
        &segments
            .iter()
            .map(|s| uri_encode(s, true))
            .collect::<Vec<_>>()
            .join("/"),
    );
    if trailing {
        out.push('/');
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The SigV4 signing key for a day, Region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 3986 encoding: unreserved characters stay, everything else is `%XX` (uppercase).
fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `%XX` decoding (a `+` stays a `+`, as SigV4 signers encode spaces as `%20`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `YYYYMMDDTHHMMSSZ` → seconds since the Unix epoch.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Seconds since the Unix epoch → `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(parse_amz_date("2015-08-30T12:36:00Z"), None);
        assert_eq!(parse_amz_date("20151330T123600Z"), None);
    }

    /// AWS's published example ("Create a signature for the request", IAM ListUsers GET,
    /// secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20150830T123600Z, us-east-1, iam).
    #[test]
    fn aws_documentation_example() {
        let req = SignedRequest {
            method: "GET",
            path: "/",
            query: Some("Action=ListUsers&Version=2010-05-08"),
            headers: vec![
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
                ("Host", "iam.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
                ),
            ],
            body: b"",
        };
        let secret = |k: &str| {
            (k == "AKIDEXAMPLE").then(|| "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_string())
        };
        let now = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(
            verify(&req, "iam", secret, now),
            Ok(Verified {
                access_key: "AKIDEXAMPLE".into(),
                region: "us-east-1".into()
            })
        );
        // Wrong secret, unknown key, skewed clock, other service.
        assert_eq!(
            verify(&req, "iam", |_| Some("nope".into()), now),
            Err(AuthError::SignatureMismatch)
        );
        assert_eq!(
            verify(&req, "iam", |_| None, now),
            Err(AuthError::UnknownAccessKey)
        );
        assert!(matches!(
            verify(&req, "iam", secret, now + 16 * 60),
            Err(AuthError::Expired { .. })
        ));
        assert!(matches!(
            verify(&req, "iam", secret, now - 16 * 60),
            Err(AuthError::NotYetValid { .. })
        ));
        assert!(matches!(
            verify(&req, "sqs", secret, now),
            Err(AuthError::Incomplete(_))
        ));
        // A tampered query.
        let mut tampered = req.clone();
        tampered.query = Some("Action=DeleteUser&Version=2010-05-08");
        assert_eq!(
            verify(&tampered, "iam", secret, now),
            Err(AuthError::SignatureMismatch)
        );
    }

    #[test]
    fn missing_and_incomplete_authorization() {
        let mut req = SignedRequest {
            method: "POST",
            path: "/",
            query: None,
            headers: vec![("Host", "localhost")],
            body: b"{}",
        };
        assert_eq!(verify(&req, "sqs", |_| None, 0), Err(AuthError::Missing));
        req.headers.push((
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/sqs/aws4_request",
        ));
        let Err(AuthError::Incomplete(text)) = verify(&req, "sqs", |_| None, 0) else {
            panic!()
        };
        assert!(
            text.contains("'SignedHeaders'") && text.contains("'Signature'"),
            "{text}"
        );
    }

    proptest::proptest! {
        /// Arbitrary headers, paths and queries never panic the verifier, and a correctly
        /// signed request verifies whatever its path, query and body.
        #[test]
        fn never_panics_and_round_trips(
            auth in ".{0,120}",
            date in ".{0,20}",
            path in "(/[a-zA-Z0-9%._~ -]{0,8}){0,4}",
            query in "[a-zA-Z0-9=&%+._~-]{0,40}",
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let garbage = SignedRequest {
                method: "POST",
                path: &path,
                query: Some(&query),
                headers: vec![("Authorization", &auth), ("X-Amz-Date", &date), ("Host", "h")],
                body: &body,
            };
            let _ = verify(&garbage, "sqs", |_| Some("k".into()), 0);
            let _ = verify(&SignedRequest { headers: vec![], ..garbage.clone() }, "sqs", |_| None, 0);

            // Sign with our own implementation's pieces, then verify.
            let amz_date = "20260101T000000Z";
            let p = Params {
                access_key: "AK".into(),
                date: "20260101".into(),
                region: "us-east-1".into(),
                service: "sqs".into(),
                signed_headers: vec!["host".into(), "x-amz-date".into()],
                signature: String::new(),
                amz_date: amz_date.into(),
                presigned: false,
                expires: None,
            };
            let unsigned = SignedRequest {
                method: "POST",
                path: &path,
                query: Some(&query),
                headers: vec![("Host", "h"), ("X-Amz-Date", amz_date)],
                body: &body,
            };
            let sig = signature(&unsigned, &p, "secret");
            let auth = format!("{ALGORITHM} Credential=AK/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}");
            let mut signed = unsigned.clone();
            signed.headers.push(("Authorization", &auth));
            let now = parse_amz_date(amz_date).unwrap();
            proptest::prop_assert!(verify(&signed, "sqs", |_| Some("secret".into()), now).is_ok());
        }
    }

    #[test]
    fn canonical_uri_double_encodes_and_normalizes() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(
            canonical_uri("/000000000000/my%20queue"),
            "/000000000000/my%2520queue"
        );
        assert_eq!(canonical_uri("/a/./b/../c//d/"), "/a/c/d/");
    }
}
