//! Queue ARNs (`arn:aws:sqs:<region>:<account>:<name>`) and URLs (`{base}/{account}/{name}`).

/// A parsed SQS queue ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueArn {
    pub region: String,
    pub account: String,
    pub name: String,
}

impl QueueArn {
    pub fn new(region: &str, account: &str, name: &str) -> Self {
        QueueArn {
            region: region.into(),
            account: account.into(),
            name: name.into(),
        }
    }

    /// Parses `arn:<partition>:sqs:<region>:<account>:<name>`.
    pub fn parse(s: &str) -> Option<QueueArn> {
        let mut parts = s.splitn(6, ':');
        let (arn, partition, service, region, account, name) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if arn != "arn" || partition.is_empty() || service != "sqs" || name.is_empty() {
            return None;
        }
        if region.is_empty() || account.is_empty() || name.contains(':') {
            return None;
        }
        Some(QueueArn::new(region, account, name))
    }
}

impl std::fmt::Display for QueueArn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "arn:aws:sqs:{}:{}:{}",
            self.region, self.account, self.name
        )
    }
}

/// Extracts `(account, name)` from a queue URL: the last two non-empty path segments of
/// `http(s)://host[:port]/<account>/<name>`, or a bare `<account>/<name>` path. Any host is
/// accepted: clients reach the server under many names.
pub fn parse_queue_url(url: &str) -> Option<(String, String)> {
    let path = match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            match rest.find('/') {
                Some(j) => &rest[j..],
                None => return None,
            }
        }
        None => url,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [.., account, name] => Some(((*account).to_string(), (*name).to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_roundtrip() {
        let arn = QueueArn::parse("arn:aws:sqs:us-east-1:123456789012:my-q").unwrap();
        assert_eq!(arn.name, "my-q");
        assert_eq!(arn.to_string(), "arn:aws:sqs:us-east-1:123456789012:my-q");
        assert!(QueueArn::parse("arn:aws:sns:us-east-1:1:x").is_none());
        assert!(QueueArn::parse("not-an-arn").is_none());
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_queue_url("http://localhost:9324/000000000000/q1"),
            Some(("000000000000".into(), "q1".into()))
        );
        assert_eq!(
            parse_queue_url("https://sqs.us-east-1.amazonaws.com/123/q.fifo"),
            Some(("123".into(), "q.fifo".into()))
        );
        assert_eq!(parse_queue_url("http://localhost:9324/"), None);
        assert_eq!(parse_queue_url("q1"), None);
    }
}
