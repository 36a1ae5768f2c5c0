//! Building an SQS client the way the AWS CLI resolves its settings, and resolving queues.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::Region;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_smithy_http_client::tls;

/// Connection settings shared by every subcommand.
#[derive(Debug, Clone, Default)]
pub struct ConnOpts {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
}

/// A connected client plus what the commands need to know about the connection.
#[derive(Clone)]
pub struct Conn {
    pub sqs: Client,
    pub endpoint_url: Option<String>,
    pub region: String,
    pub http: reqwest::Client,
}

impl Conn {
    /// Resolves region, profile, credentials and endpoint like the AWS CLI (`AWS_PROFILE`,
    /// `AWS_REGION`, `AWS_ENDPOINT_URL`, config files, …). With an endpoint and no
    /// credentials anywhere, dummy static credentials are used so a local server just works.
    pub async fn connect(opts: &ConnOpts) -> Result<Conn> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            // rustls with ring: https for AWS, plain http for local endpoints.
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(
                        tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(p) = &opts.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &opts.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(e) = &opts.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        let shared = loader.load().await;
        let endpoint_url = opts
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_SQS").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        let region = shared
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_string());
        let mut builder =
            aws_sdk_sqs::config::Builder::from(&shared).region(Region::new(region.clone()));
        let has_creds = match shared.credentials_provider() {
            Some(p) => p.provide_credentials().await.is_ok(),
            None => false,
        };
        if !has_creds {
            if endpoint_url.is_some() {
                builder = builder.credentials_provider(Credentials::new(
                    "redrive",
                    "redrive",
                    None,
                    None,
                    "redrive-dummy",
                ));
            } else {
                return Err(anyhow!(
                    "no AWS credentials found (set AWS_PROFILE / AWS_ACCESS_KEY_ID, or use --endpoint-url for a local server)"
                ));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Conn {
            sqs: Client::from_conf(builder.build()),
            endpoint_url,
            region,
            http,
        })
    }

    /// Resolves a queue given by name or URL; an unknown queue is an error.
    pub async fn resolve(&self, queue: &str) -> Result<QueueRef> {
        if queue.starts_with("http://") || queue.starts_with("https://") {
            let name = queue
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            // Verify it exists (and that the endpoint answers).
            self.sqs
                .get_queue_attributes()
                .queue_url(queue)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(|e| sdk_error(e, queue, self.endpoint_url.as_deref()))?;
            return Ok(QueueRef {
                name,
                url: queue.to_string(),
            });
        }
        let out = self
            .sqs
            .get_queue_url()
            .queue_name(queue)
            .send()
            .await
            .map_err(|e| sdk_error(e, queue, self.endpoint_url.as_deref()))?;
        Ok(QueueRef {
            name: queue.to_string(),
            url: out.queue_url().unwrap_or_default().to_string(),
        })
    }
}

impl Conn {
    /// A JSON request to a Redrive extension API (`/_redrive/v1/…`): `(status, body)`; the
    /// Region goes along as the `region` query parameter.
    pub async fn json_request(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value)> {
        let mut req = self
            .http
            .request(method, url)
            .query(&[("region", self.region.as_str())]);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("unexpected answer from {url}: {}", text.trim()))?
        };
        Ok((status, v))
    }
}

/// A queue's name and URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    pub name: String,
    pub url: String,
}

impl QueueRef {
    pub fn is_fifo(&self) -> bool {
        self.name.ends_with(".fifo")
    }
}

/// Turns an SDK error into one readable line.
pub fn sdk_error<E, R>(e: SdkError<E, R>, queue: &str, endpoint: Option<&str>) -> anyhow::Error
where
    E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let where_ = endpoint.unwrap_or("AWS");
    match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            let text = DisplayErrorContext(&e).to_string();
            let text = text.split(" (DispatchFailure").next().unwrap_or(&text);
            let text = text.split(" (TimeoutError").next().unwrap_or(text);
            anyhow!("cannot reach the SQS endpoint {where_}: {}", one_line(text))
        }
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("");
            if code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist") {
                anyhow!("queue `{queue}` does not exist ({where_})")
            } else {
                anyhow!(
                    "SQS error for `{queue}`: {code}: {}",
                    err.message().unwrap_or("(no message)")
                )
            }
        }
        _ => anyhow!(
            "SQS request for `{queue}` failed: {}",
            one_line(&DisplayErrorContext(&e).to_string())
        ),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
