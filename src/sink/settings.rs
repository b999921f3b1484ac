//! What an HTTP request is made with (URL, headers, retry policy), built from the
//! configuration and replaced whole when the destination secret is read again
//! (`secret::Rotation` decides when).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};

use super::protocol::Protocol;
use crate::config::{Config, ConfigError};
use crate::redact::{redact_url, Secrets};

/// What a request is made with; replaced whole when the destination secret is read
/// again.
pub(super) struct Settings {
    /// The URL as the HTTP client reads it: parsed once, and that reading is what the
    /// plain-http rule checks, what requests go to and what logs show.
    pub(super) url: reqwest::Url,
    pub(super) shown_url: String,
    /// How batches are framed and answers read (DESTINATION_FORMAT).
    pub(super) protocol: Protocol,
    pub(super) headers: HeaderMap,
    pub(super) gzip: bool,
    pub(super) retry: RetryPolicy,
    pub(super) max_in_flight: usize,
    /// Scrubbed from every text taken from a response or an error.
    pub(super) secrets: Secrets,
    /// Counts the secret's readings: a request refused with the credentials of an
    /// older reading is simply retried with the newer ones.
    pub(super) generation: u64,
}

impl Settings {
    pub(super) fn new(
        config: &Config,
        url: &str,
        generation: u64,
    ) -> Result<Settings, ConfigError> {
        let mut headers = HeaderMap::new();
        for (k, v) in &config.destination_headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                ConfigError::new(
                    "DESTINATION_HEADERS",
                    format!("'{k}' is not a valid header name"),
                )
            })?;
            let signed =
                name == reqwest::header::AUTHORIZATION || name.as_str().starts_with("x-amz-");
            if config.destination_sigv4.is_some() && signed {
                return Err(ConfigError::new(
                    "DESTINATION_HEADERS",
                    format!("'{k}' is set by the request's signature (DESTINATION_AUTH=aws-sigv4); remove it"),
                ));
            }
            if FRAMING_HEADERS.contains(&name.as_str()) {
                return Err(ConfigError::new(
                    "DESTINATION_HEADERS",
                    format!(
                        "'{k}' frames or routes the request and is set by the forwarder itself; remove it"
                    ),
                ));
            }
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                ConfigError::new(
                    "DESTINATION_HEADERS",
                    format!("header '{k}' has an invalid value"),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if config.gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let shown_url = redact_url(url);
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            ConfigError::new(
                "DESTINATION_URL",
                format!("'{shown_url}' is not a valid URL: {e}"),
            )
        })?;
        match parsed.scheme() {
            "https" => {}
            "http" if is_loopback(&parsed) || config.allow_plain_http => {}
            "http" => {
                return Err(ConfigError::new(
                    "DESTINATION_URL",
                    format!("'{shown_url}' is plain http; use https, or set ALLOW_PLAIN_HTTP=true"),
                ))
            }
            other => {
                return Err(ConfigError::new(
                    "DESTINATION_URL",
                    format!("'{shown_url}': '{other}' is not http or https"),
                ))
            }
        }
        let mut parsed = parsed;
        let protocol = Protocol::new(config, &mut parsed);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(protocol.content_type()),
        );
        if let Some((name, value)) = protocol.header()? {
            headers.insert(name, value);
        }
        Ok(Settings {
            url: parsed,
            shown_url,
            protocol,
            headers,
            gzip: config.gzip,
            retry: RetryPolicy {
                max_retries: config.max_retries,
                request_timeout: config.request_timeout,
                base_delay: config.retry_base_delay,
                max_delay: config.retry_max_delay,
            },
            max_in_flight: config.max_in_flight,
            secrets: Secrets::of(
                &config.destination_headers,
                config.destination_url.as_deref(),
            ),
            generation,
        })
    }
}

/// Retry and timing settings.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// One request's timeout.
    pub request_timeout: Duration,
    /// Backoff base: retry n waits a random time in [0, min(max_delay, base * 2^(n-1))].
    pub base_delay: Duration,
    /// Longest wait between two attempts, Retry-After included.
    pub max_delay: Duration,
}

/// Headers that frame or route a request: the HTTP client sets them from the body and
/// the URL, and DESTINATION_HEADERS (or the secret) may not override them.
const FRAMING_HEADERS: [&str; 10] = [
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "content-encoding",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Whether the URL's host (as the HTTP client reads it) is this machine: plain http is
/// allowed there.
pub(super) fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        None => false,
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
    }
}
