//! AWS Signature Version 4 for the destination (DESTINATION_AUTH=aws-sigv4): Amazon
//! OpenSearch Service (`es`) and OpenSearch Serverless (`aoss`) take requests signed by
//! the caller's IAM identity. Each request is signed as it is sent: its host, its
//! content headers, `x-amz-date` and `x-amz-content-sha256` (the hash of the body as
//! sent, gzip included; OpenSearch Serverless requires the header), with credentials
//! from the AWS SDK's default chain, kept until five minutes before they expire.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// Credentials are read again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Signs destination requests.
pub struct RequestSigner {
    credentials: SharedCredentialsProvider,
    region: String,
    service: String,
    cached: Mutex<Option<Credentials>>,
}

impl RequestSigner {
    /// A signer for `service` (`es` or `aoss`) in `region`, with the credentials of
    /// `aws`'s default chain.
    pub fn new(
        aws: &aws_config::SdkConfig,
        region: Option<&str>,
        service: &str,
    ) -> Result<RequestSigner, String> {
        let credentials = aws
            .credentials_provider()
            .ok_or("DESTINATION_AUTH=aws-sigv4: no AWS credentials provider")?;
        let region = match region {
            Some(r) => r.to_string(),
            None => aws.region().map(|r| r.to_string()).ok_or(
                "DESTINATION_AUTH=aws-sigv4: no region (set DESTINATION_AWS_REGION or AWS_REGION)",
            )?,
        };
        Ok(RequestSigner {
            credentials,
            region,
            service: service.to_string(),
            cached: Mutex::new(None),
        })
    }

    async fn credentials(&self) -> Result<Credentials, String> {
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|expiry| SystemTime::now() + REFRESH_BEFORE_EXPIRY < expiry)
        };
        if let Some(c) = self.cached.lock().ok().and_then(|c| c.clone()) {
            if fresh(&c) {
                return Ok(c);
            }
        }
        let c = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("AWS credentials for signing: {e}"))?;
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some(c.clone());
        }
        Ok(c)
    }

    /// `text` without the credentials signing uses (a receiver that echoes the request's
    /// `x-amz-security-token` would otherwise have its session token logged).
    pub fn scrub(&self, text: &str) -> String {
        let Some(c) = self.cached.lock().ok().and_then(|c| c.clone()) else {
            return text.to_string();
        };
        crate::redact::Secrets::from_values([
            c.secret_access_key(),
            c.session_token().unwrap_or(""),
        ])
        .scrub(text)
    }

    /// The headers that sign a POST of `body` to `url` carrying `headers` (those of
    /// them that are signed: content type and encoding).
    pub async fn sign(
        &self,
        url: &reqwest::Url,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<HeaderMap, String> {
        let identity: Identity = self.credentials().await?.into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| format!("signing: {e}"))?
            .into();
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err("signing: the URL has no host".to_string()),
        };
        let mut signed: Vec<(&str, &str)> = vec![("host", host.as_str())];
        for name in ["content-type", "content-encoding"] {
            if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
                signed.push((name, value));
            }
        }
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            signed.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| format!("signing: {e}"))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| format!("signing: {e}"))?
            .into_parts();
        let mut out = HeaderMap::new();
        for (name, value) in instructions.headers() {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
            let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
            out.insert(name, value);
        }
        Ok(out)
    }
}
