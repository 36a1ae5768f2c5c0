//! Console login under `--auth sigv4`: an access key and its secret, checked against the
//! configured keys, open a session held in memory (on a shared store: a document of kind
//! [`DOC_CONSOLE_SESSION`] keyed by the token's SHA-256, so that every server knows it); the
//! browser keeps only a random token in a `HttpOnly; SameSite=Strict` cookie scoped to
//! `/console`.
//!
//! CSRF: every state-changing form carries a token that the guard compares with the one it
//! expects: the session's own (under `--auth sigv4`) or, without a login, a random per-browser
//! token kept in the `HttpOnly; SameSite=Strict` cookie [`CSRF_COOKIE`] (double submit: a
//! cross-site page can neither read that cookie nor make the browser send it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use redrive_core::digest::sha256_hex;
use redrive_engine::backend::{Doc, DocsEdit, QueueBackend};
use serde_json::json;

/// Sessions on a shared store: key = SHA-256 of the token (the token itself is never stored),
/// value = `{"accessKey", "csrf", "expiresMs"}`.
pub const DOC_CONSOLE_SESSION: &str = "console-session";

/// The cookie carrying the session token.
pub const COOKIE: &str = "redrive_console";
/// How long a session lasts after its login.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The cookie carrying the per-browser CSRF token when there is no login.
pub const CSRF_COOKIE: &str = "redrive_console_csrf";

/// A logged-in session as the guard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub access_key: String,
    /// The session's CSRF token (every state-changing form carries it).
    pub csrf: String,
}

/// Open console sessions: token → (session, expiry); or, on a shared store, its documents.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, (Session, SystemTime)>>,
    shared: Option<Arc<dyn QueueBackend>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A random token: two random UUIDs (244 bits), 64 hex digits.
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether `t` looks like a token of ours (so a cookie set by someone else is replaced).
pub fn is_token(t: &str) -> bool {
    t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Sessions {
    /// Sessions kept in `shared` when given (a shared store), else in this process.
    pub fn new(shared: Option<Arc<dyn QueueBackend>>) -> Sessions {
        Sessions {
            open: Mutex::default(),
            shared,
        }
    }

    /// Opens a session for `access_key` and returns its token (two random UUIDs: 244 bits);
    /// an error when a shared store could not record it.
    pub async fn open(&self, access_key: &str) -> Result<String, String> {
        let token = new_token();
        let session = Session {
            access_key: access_key.to_string(),
            csrf: new_token(),
        };
        let now = SystemTime::now();
        if let Some(b) = &self.shared {
            let now_ms = epoch_ms(now);
            let value = json!({
                "accessKey": session.access_key,
                "csrf": session.csrf,
                "expiresMs": epoch_ms(now + LIFETIME),
            });
            let key = sha256_hex(token.as_bytes());
            b.edit_documents(DOC_CONSOLE_SESSION, &|docs| {
                Ok(DocsEdit {
                    put: vec![Doc {
                        kind: DOC_CONSOLE_SESSION.into(),
                        key: key.clone(),
                        value: value.clone(),
                    }],
                    delete: docs
                        .iter()
                        .filter(|(_, v)| v["expiresMs"].as_u64().is_none_or(|e| e <= now_ms))
                        .map(|(k, _)| (DOC_CONSOLE_SESSION.to_string(), k.clone()))
                        .collect(),
                    ..DocsEdit::default()
                })
            })
            .await
            .map_err(|e| e.message)?;
            return Ok(token);
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, (_, expires)| *expires > now);
        open.insert(token.clone(), (session, now + LIFETIME));
        Ok(token)
    }

    /// The live session `token` opens, if any.
    pub async fn check(&self, token: &str) -> Option<Session> {
        if let Some(b) = &self.shared {
            if !is_token(token) {
                return None;
            }
            let found = b
                .document(DOC_CONSOLE_SESSION, &sha256_hex(token.as_bytes()))
                .await;
            let v = match found {
                Ok(v) => v?,
                Err(e) => {
                    tracing::warn!(error = %e.message, "console session not read");
                    return None;
                }
            };
            let live = v["expiresMs"]
                .as_u64()
                .is_some_and(|e| e > epoch_ms(SystemTime::now()));
            return live.then(|| Session {
                access_key: v["accessKey"].as_str().unwrap_or_default().to_string(),
                csrf: v["csrf"].as_str().unwrap_or_default().to_string(),
            });
        }
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(token)
            .filter(|(_, expires)| *expires > SystemTime::now())
            .map(|(session, _)| session.clone())
    }

    pub async fn close(&self, token: &str) {
        if let Some(b) = &self.shared {
            let key = sha256_hex(token.as_bytes());
            let closed = b
                .edit_documents(DOC_CONSOLE_SESSION, &|_| {
                    Ok(DocsEdit {
                        delete: vec![(DOC_CONSOLE_SESSION.to_string(), key.clone())],
                        ..DocsEdit::default()
                    })
                })
                .await;
            if let Err(e) = closed {
                tracing::warn!(error = %e.message, "console session not closed");
            }
            return;
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(token);
    }
}

/// The session token sent in the request's cookies.
pub fn token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

/// The value of the cookie `name` sent with the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_string())
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(token: &str) -> String {
    format!(
        "{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}",
        LIFETIME.as_secs()
    )
}

/// `Set-Cookie` for a new per-browser CSRF token (ends with the browser session).
pub fn set_csrf_cookie(token: &str) -> String {
    format!("{CSRF_COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict")
}

/// `Set-Cookie` that drops the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// A cross-site POST is refused: when the browser names the page's origin (`Origin`, sent on
/// every POST by current browsers), its host must be the one the request was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// Compares secrets in time that depends only on their lengths.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_open_check_and_close() {
        let s = Sessions::default();
        let t = s.open("AKID").await.unwrap();
        assert_eq!(t.len(), 64);
        let session = s.check(&t).await.unwrap();
        assert_eq!(session.access_key, "AKID");
        assert!(is_token(&session.csrf));
        assert_ne!(session.csrf, t);
        assert_eq!(s.check("forged").await, None);
        s.close(&t).await;
        assert_eq!(s.check(&t).await, None);
    }

    #[test]
    fn origins_and_cookies() {
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:9324".parse().unwrap());
        assert!(same_origin(&h));
        h.insert("origin", "http://127.0.0.1:9324".parse().unwrap());
        assert!(same_origin(&h));
        h.insert("origin", "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert("origin", "null".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert("cookie", "a=1; redrive_console=abc; b=2".parse().unwrap());
        assert_eq!(token(&h).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&h, CSRF_COOKIE), None);
        assert!(secrets_equal("s3cr3t", "s3cr3t"));
        assert!(!secrets_equal("s3cr3t", "s3cr3u"));
        assert!(!secrets_equal("s3cr3t", "s3cr3"));
    }
}
