//! A real local S3 API server (moto's `moto_server`, PyPI `moto[server]`) on 127.0.0.1,
//! one per test binary, stopped by a watchdog when the test process exits.
#![allow(dead_code)]

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Moto {
    pub endpoint: String,
    /// The watchdog shell; it stops the server when this process exits.
    _watchdog: std::process::Child,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// Installs `moto[server]` with pip when `moto_server` is not on the PATH, so that
/// `cargo test` works on a fresh machine with Python.
fn ensure_installed() {
    if !super::command_exists("moto_server") {
        super::pip_install("moto[server]>=5");
    }
}

/// The shared server, started on first use.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(|| {
        ensure_installed();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let script = format!(
            "moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & child=$!; \
             while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill $child",
            parent = std::process::id()
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("sh to start moto_server (pip install 'moto[server]')");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto_server did not start on 127.0.0.1:{port}: install it with pip install 'moto[server]'"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { endpoint: format!("http://127.0.0.1:{port}"), _watchdog: watchdog }
    })
}

impl Moto {
    /// Environment for the binary and the SDK to use this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// AWS SDK configuration for this server (any service client derives from it).
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test");
        aws_config::SdkConfig::builder()
            .http_client(flowlog_forwarder::aws::https_client())
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(creds))
            .build()
    }

    /// A real aws-sdk-s3 client for this server.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config())
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

/// Creates `bucket` (if needed) and puts `objects` (key, bytes) with the real SDK.
pub fn put_objects(bucket: &str, objects: &[(&str, Vec<u8>)]) {
    super::block_on(async {
        let client = moto().client().await;
        if let Err(e) = client.create_bucket().bucket(bucket).send().await {
            use aws_sdk_s3::error::ProvideErrorMetadata;
            let code = e.code().unwrap_or_default();
            assert!(
                code.starts_with("BucketAlready"),
                "create_bucket {bucket}: {e:?}"
            );
        }
        for (key, bytes) in objects {
            client
                .put_object()
                .bucket(bucket)
                .key(*key)
                .body(bytes.clone().into())
                .send()
                .await
                .expect("put_object");
        }
    });
}
