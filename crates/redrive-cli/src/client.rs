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
    /// The credentials the SQS client signs with (also used for the extension API).
    pub credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    /// CloudWatch, resolved like the SQS client (same Region, credentials and endpoint
    /// settings; `AWS_ENDPOINT_URL_CLOUDWATCH` applies).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Conn {
    /// Resolves region, profile, credentials and endpoint like the AWS CLI (`AWS_PROFILE`,
    /// `AWS_REGION`, `AWS_ENDPOINT_URL`, config files, …). With an endpoint and no
    /// credentials anywhere, dummy static credentials are used so a local server just works.
    pub async fn connect(opts: &ConnOpts) -> Result<Conn> {
        check_profile(opts.profile.as_deref()).await?;
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
        let mut credentials = shared.credentials_provider();
        let mut cloudwatch = aws_sdk_cloudwatch::config::Builder::from(&shared)
            .region(aws_sdk_cloudwatch::config::Region::new(region.clone()));
        if !has_creds {
            if endpoint_url.is_some() {
                let dummy = aws_credential_types::provider::SharedCredentialsProvider::new(
                    Credentials::new("redrive", "redrive", None, None, "redrive-dummy"),
                );
                builder = builder.credentials_provider(dummy.clone());
                cloudwatch = cloudwatch.credentials_provider(dummy.clone());
                credentials = Some(dummy);
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
            credentials,
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(cloudwatch.build()),
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
    /// A request to a Redrive extension API (`/_redrive/v1/…`), SigV4-signed with the same
    /// credentials as the SQS calls (a server with `--auth sigv4` verifies it; others ignore
    /// it). `query` pairs are appended to `url`; the Region always goes along.
    pub async fn extension_request(
        &self,
        method: reqwest::Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<reqwest::Response> {
        let mut full = reqwest::Url::parse(url).with_context(|| format!("invalid URL {url}"))?;
        {
            let mut q = full.query_pairs_mut();
            q.append_pair("region", &self.region);
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        // SigV4 wants %20, not the form encoding's `+`.
        let full_str = full.as_str().replace('+', "%20");
        let body_bytes = body.unwrap_or_default();
        let mut req = self.http.request(method.clone(), &full_str);
        if !body_bytes.is_empty() {
            req = req.header("content-type", "application/json");
        }
        if let Some(provider) = &self.credentials
            && let Ok(creds) = provider.provide_credentials().await
        {
            let identity = creds.into();
            let params = aws_sigv4::sign::v4::SigningParams::builder()
                .identity(&identity)
                .region(&self.region)
                .name("sqs")
                .time(std::time::SystemTime::now())
                .settings(aws_sigv4::http_request::SigningSettings::default())
                .build()
                .context("SigV4 signing parameters")?
                .into();
            let content_type = [("content-type", "application/json")];
            let headers = content_type
                .iter()
                .copied()
                .filter(|_| !body_bytes.is_empty());
            let signable = aws_sigv4::http_request::SignableRequest::new(
                method.as_str(),
                full_str.as_str(),
                headers,
                aws_sigv4::http_request::SignableBody::Bytes(body_bytes.as_bytes()),
            )
            .context("SigV4: the request cannot be signed")?;
            let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
                .context("SigV4 signing")?
                .into_parts();
            for (name, value) in instructions.headers() {
                req = req.header(name, value);
            }
        }
        req.body(body_bytes)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))
    }

    /// A JSON request to a Redrive extension API: `(status, body)`.
    pub async fn json_request(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value)> {
        let resp = self
            .extension_request(method, url, &[], body.map(|b| b.to_string()))
            .await?;
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

/// Fails with one line when the profile asked for (`--profile`, else `AWS_PROFILE`) is in
/// neither AWS config file; without this check the SDK would fall back to other credentials
/// (or dummy ones for a local endpoint) and the typo would go unnoticed.
async fn check_profile(profile: Option<&str>) -> anyhow::Result<()> {
    let from_env = std::env::var("AWS_PROFILE").ok();
    let (name, flag) = match (profile, from_env.as_deref()) {
        (Some(p), _) => (p, "--profile"),
        (None, Some(p)) if !p.is_empty() && p != "default" => (p, "AWS_PROFILE"),
        _ => return Ok(()),
    };
    let set = aws_config::profile::load(
        &aws_types::os_shim_internal::Fs::real(),
        &aws_types::os_shim_internal::Env::real(),
        &aws_runtime::env_config::file::EnvConfigFiles::default(),
        None,
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot read the AWS config files: {e}"))?;
    if set.get_profile(name).is_none() {
        let known: Vec<&str> = set.profiles().collect();
        anyhow::bail!(
            "profile `{name}` ({flag}) is not defined in the AWS config files (AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE){}",
            if known.is_empty() {
                String::new()
            } else {
                format!("; known profiles: {}", known.join(", "))
            }
        );
    }
    Ok(())
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
