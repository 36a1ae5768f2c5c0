//! Request authentication: off by default (any credentials, as local SQS servers do), or
//! SigV4 verification against static keys (`--auth sigv4 --credentials AKID:SECRET,…`).
//! Both the SQS endpoints and the `/_redrive/v1/` extension API are covered.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::request::Parts;
use redrive_core::{ErrorCode, SqsError};
use redrive_protocol::sigv4::{self, AuthError, SignedRequest};

use crate::AppState;

/// How requests are authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// Any credentials (or none) are accepted.
    #[default]
    None,
    /// SigV4 signatures are verified; the map is access key id → secret access key.
    SigV4 { keys: BTreeMap<String, String> },
}

impl Auth {
    /// `AKID:SECRET[,AKID:SECRET…]`.
    pub fn parse_keys(text: &str) -> Result<BTreeMap<String, String>, String> {
        let mut keys = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, s) = pair
                .split_once(':')
                .filter(|(k, s)| !k.is_empty() && !s.is_empty())
                .ok_or_else(|| {
                    format!("invalid credentials `{pair}` (expected ACCESS_KEY_ID:SECRET)")
                })?;
            keys.insert(k.to_string(), s.to_string());
        }
        if keys.is_empty() {
            return Err("no credentials given (expected ACCESS_KEY_ID:SECRET[,…])".into());
        }
        Ok(keys)
    }
}

fn to_sqs_error(e: AuthError) -> SqsError {
    let code = match &e {
        AuthError::Missing => ErrorCode::MissingAuthenticationToken,
        AuthError::Incomplete(_) => ErrorCode::IncompleteSignature,
        AuthError::UnknownAccessKey => ErrorCode::InvalidClientTokenId,
        AuthError::SignatureMismatch
        | AuthError::Expired { .. }
        | AuthError::NotYetValid { .. } => ErrorCode::SignatureDoesNotMatch,
    };
    SqsError::new(code, e.to_string())
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Checks a request whose body has been read; `Ok` when authentication is off.
pub fn authenticate(auth: &Auth, parts: &Parts, body: &[u8]) -> Result<(), SqsError> {
    authenticate_for(auth, parts, body, "sqs")
}

/// [`authenticate`] for a request signed for `service` (`monitoring` for CloudWatch).
pub fn authenticate_for(
    auth: &Auth,
    parts: &Parts,
    body: &[u8],
    service: &str,
) -> Result<(), SqsError> {
    let Auth::SigV4 { keys } = auth else {
        return Ok(());
    };
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
        .collect();
    let req = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers,
        body,
    };
    sigv4::verify(&req, service, |k| keys.get(k).cloned(), now_unix())
        .map(|_| ())
        .map_err(|e| {
            tracing::info!(error = %e, "request not authenticated");
            to_sqs_error(e)
        })
}

/// Middleware for the extension API: verifies, then passes the request on with its body.
pub async fn require(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // After a store write failure, memory is rebuilt from the disk before anything is served.
    if let Err(e) = state.engine.ensure_synced() {
        return crate::replay_api::error(e);
    }
    if state.config.auth == Auth::None {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match crate::http::read_body(body, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return crate::http::close_connection(crate::replay_api::error(e)),
    };
    if let Err(e) = authenticate(&state.config.auth, &parts, &bytes) {
        return crate::replay_api::error(e);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
