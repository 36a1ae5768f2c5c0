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

/// The Region a queue URL names, if any: a path `/queue/<region>/<account>/<name>`
/// (LocalStack's path strategy) or a host `sqs.<region>.<…>` (AWS's form and LocalStack's
/// standard strategy). URLs without one (`http://host/<account>/<name>`) give `None`.
pub fn queue_url_region(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let (host, path) = match rest.find('/') {
        Some(j) => (&rest[..j], &rest[j..]),
        None => (rest, ""),
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let [.., "queue", region, _account, _name] = segments.as_slice()
        && looks_like_region(region)
    {
        return Some((*region).to_string());
    }
    let mut labels = host.split('.');
    if labels.next() == Some("sqs")
        && let Some(region) = labels.next()
        && looks_like_region(region)
        && labels.next().is_some()
    {
        return Some(region.to_string());
    }
    None
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`: lowercase letters, digits and
/// dashes, ending in a digit.
pub fn looks_like_region(s: &str) -> bool {
    s.contains('-')
        && s.ends_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
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
    fn url_regions() {
        assert_eq!(
            queue_url_region("http://localhost:9324/000000000000/q1"),
            None
        );
        assert_eq!(
            queue_url_region("https://sqs.eu-west-2.amazonaws.com/123/q").as_deref(),
            Some("eu-west-2")
        );
        assert_eq!(
            queue_url_region("http://sqs.us-east-1.localhost:9324/000000000000/q").as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            queue_url_region("http://localhost:9324/queue/ap-south-1/000000000000/q").as_deref(),
            Some("ap-south-1")
        );
        assert_eq!(
            queue_url_region("http://sqs.localhost:9324/000000000000/q"),
            None
        );
        assert_eq!(queue_url_region("q1"), None);
        assert_eq!(
            parse_queue_url("http://localhost:9324/queue/ap-south-1/000000000000/q"),
            Some(("000000000000".into(), "q".into()))
        );
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
