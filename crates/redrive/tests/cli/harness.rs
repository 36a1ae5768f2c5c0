//! A `redrive serve` child process and a tiny AWS JSON 1.0 client.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ServerProcess {
    /// Starts `redrive serve` with `args` on a free port and waits until it answers.
    pub async fn start(args: &[&str], envs: &[(&str, &str)]) -> ServerProcess {
        let port = free_port();
        let port_s = port.to_string();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_redrive"));
        cmd.arg("serve").args(["--port", &port_s]).args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redrive");
        let server = ServerProcess { child, port };
        server.wait_ready().await;
        server
    }

    pub async fn start_durable(dir: &Path) -> ServerProcess {
        Self::start(&["--data-dir", dir.to_str().unwrap()], &[]).await
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn client(&self) -> Sqs {
        Sqs::new(&self.endpoint())
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        // The health endpoint answers also when SigV4 verification is on.
        let http = reqwest::Client::new();
        let health = format!("{}_redrive/health", self.endpoint());
        while Instant::now() < deadline {
            if let Ok(r) = http.get(&health).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server on port {} did not become ready", self.port);
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for redrive")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
pub struct Sqs {
    http: reqwest::Client,
    endpoint: String,
    /// A SigV4-shaped `Authorization` header (unsigned), for servers such as moto that route
    /// by the credential scope.
    authorization: Option<String>,
}

#[derive(Debug)]
pub struct CallError(pub String);

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Sqs {
    pub fn new(endpoint: &str) -> Sqs {
        Sqs {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            endpoint: endpoint.to_string(),
            authorization: None,
        }
    }

    /// A client whose requests carry a (not really signed) SigV4 scope for `region`.
    pub fn with_scope(endpoint: &str, region: &str) -> Sqs {
        Sqs {
            authorization: Some(format!(
                "AWS4-HMAC-SHA256 Credential=test/20260101/{region}/sqs/aws4_request, \
                 SignedHeaders=host, Signature=0"
            )),
            ..Sqs::new(endpoint)
        }
    }

    pub async fn call(&self, action: &str, body: Value) -> Result<Value, CallError> {
        let mut req = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("AmazonSQS.{action}"));
        if let Some(a) = &self.authorization {
            req = req.header("authorization", a);
        }
        let resp = req
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| CallError(e.to_string()))?;
        let ok = resp.status().is_success();
        let text = resp.text().await.map_err(|e| CallError(e.to_string()))?;
        if !ok {
            return Err(CallError(text));
        }
        serde_json::from_str(&text).map_err(|e| CallError(e.to_string()))
    }

    pub async fn create_queue(&self, name: &str, attrs: Value) -> String {
        self.call(
            "CreateQueue",
            json!({"QueueName": name, "Attributes": attrs}),
        )
        .await
        .expect("create queue")["QueueUrl"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn attr(&self, url: &str, name: &str) -> String {
        self.call(
            "GetQueueAttributes",
            json!({"QueueUrl": url, "AttributeNames": [name]}),
        )
        .await
        .expect("attributes")["Attributes"][name]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// (body, receipt handle) pairs.
    pub async fn receive(
        &self,
        url: &str,
        max: u32,
        visibility: u32,
        wait: u32,
    ) -> Result<Vec<(String, String)>, CallError> {
        let v = self
            .call(
                "ReceiveMessage",
                json!({"QueueUrl": url, "MaxNumberOfMessages": max,
                       "VisibilityTimeout": visibility, "WaitTimeSeconds": wait}),
            )
            .await?;
        Ok(v.get("Messages")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|m| {
                        (
                            m["Body"].as_str().unwrap().to_string(),
                            m["ReceiptHandle"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// A tiny deterministic PRNG (xorshift) so failures can be replayed from the printed seed.
/// The seed must not be 0 (xorshift stays at 0).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
