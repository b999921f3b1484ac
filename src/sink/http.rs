//! HTTP delivery: one reused client (rustls, keep-alive, no redirects), gzip bodies,
//! retries of 408/429/5xx, timeouts and connection errors with full-jitter exponential
//! backoff that honours Retry-After and never runs past the deadline, 413 bodies split
//! in half, and Elasticsearch bulk responses read item by item. Here is where every
//! retry is decided.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::RETRY_AFTER;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::bulk::{bulk_outcome, BulkItem};
use super::gzip::Compressor;
use super::settings::{Rotation, RotationState, Settings, REREAD_ON_REFUSAL_EVERY};
use super::sigv4::RequestSigner;
use super::{frame, Batch, DeliveryReport};
use crate::config::{Config, ConfigError, DestinationFormat};
use crate::secret::{apply_secret, DestinationSecret};

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

/// The HTTP destination. Cheap to clone; create once per process (cold start).
#[derive(Clone)]
pub struct HttpSink {
    client: reqwest::Client,
    settings: Arc<RwLock<Arc<Settings>>>,
    rotation: Option<Arc<Rotation>>,
    compressor: Arc<Compressor>,
    /// Signs each request (DESTINATION_AUTH=aws-sigv4).
    signer: Option<Arc<RequestSigner>>,
}

impl HttpSink {
    /// Builds the client from the configuration: its headers, and the CAs of
    /// DESTINATION_CA_BUNDLE trusted on top of the public roots.
    pub fn new(config: &Config, url: &str) -> Result<HttpSink, ConfigError> {
        let settings = Settings::new(config, url, 0)?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(50))
            .tcp_keepalive(Duration::from_secs(30))
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("flowlog-forwarder/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.destination_ca_bundle {
            let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| ConfigError::new("DESTINATION_CA_BUNDLE", e.to_string()))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(|e| {
            ConfigError::new(
                "DESTINATION_URL",
                format!("cannot build the HTTP client: {}", e.without_url()),
            )
        })?;
        Ok(HttpSink {
            client,
            settings: Arc::new(RwLock::new(Arc::new(settings))),
            rotation: None,
            signer: None,
            compressor: Arc::new(Compressor::start().map_err(|e| {
                ConfigError::new(
                    "DESTINATION_URL",
                    format!("cannot start the compression thread: {e}"),
                )
            })?),
        })
    }

    /// Reads `secret` again after `base.secret_ttl` and on refused credentials, and
    /// applies it over `base` (the configuration before the secret).
    pub fn with_secret(mut self, secret: DestinationSecret, base: Config) -> HttpSink {
        self.rotation = Some(Arc::new(Rotation {
            secret,
            base,
            state: tokio::sync::Mutex::new(RotationState {
                read_at: Instant::now(),
                reread_on_refusal_at: None,
            }),
        }));
        self
    }

    /// Waits for Splunk to acknowledge `id` (indexer acknowledgement): polled at
    /// growing intervals, until SPLUNK_HEC_ACK_TIMEOUT_SECONDS or the deadline. Not
    /// acknowledged, the batch is not delivered (its unit is retried: Splunk may then
    /// hold those events twice, as its own Firehose integration may).
    async fn await_ack(
        &self,
        s: &Settings,
        id: u64,
        deadline: Option<Instant>,
    ) -> Result<(), String> {
        let Some(ack) = &s.hec_ack else {
            return Ok(());
        };
        let mut give_up = Instant::now() + ack.timeout;
        if let Some(deadline) = deadline {
            give_up = give_up.min(deadline);
        }
        let mut headers = s.headers.clone();
        headers.remove(reqwest::header::CONTENT_ENCODING);
        let mut wait = Duration::from_millis(100);
        let mut last = String::from("no answer yet");
        loop {
            if Instant::now() + wait >= give_up {
                return Err(format!(
                    "Splunk HEC did not acknowledge ackId {id} in time (SPLUNK_HEC_ACK): not delivered; last: {last}"
                ));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            let timeout = give_up
                .saturating_duration_since(Instant::now())
                .min(s.retry.request_timeout);
            let answer = self
                .client
                .post(ack.url.clone())
                .headers(headers.clone())
                .timeout(timeout)
                .body(format!("{{\"acks\":[{id}]}}"))
                .send()
                .await;
            match answer {
                Ok(mut resp) => {
                    let status = resp.status();
                    let body = read_capped(&mut resp, HEC_BODY_BYTES)
                        .await
                        .map(|(b, _)| b)
                        .unwrap_or_default();
                    if status.is_success() && hec_acknowledged(&body, id) {
                        return Ok(());
                    }
                    let text = s.secrets.scrub(String::from_utf8_lossy(&body).trim());
                    last = format!("HTTP {}: {}", status.as_u16(), crate::text::shorten(&text));
                    if status.is_client_error() && status.as_u16() != 429 {
                        return Err(format!(
                            "Splunk HEC refused the acknowledgement request for ackId {id}: {last}"
                        ));
                    }
                }
                Err(e) => last = e.without_url().to_string(),
            }
        }
    }

    /// Signs every request with AWS Signature Version 4.
    pub fn with_signer(mut self, signer: RequestSigner) -> HttpSink {
        self.signer = Some(Arc::new(signer));
        self
    }

    /// The settings requests are made with now.
    fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the destination secret again when it was read SECRET_TTL_SECONDS ago or
    /// more (at the start of an invocation). A failed reading keeps the current one.
    pub async fn refresh_secret_if_stale(&self) {
        let Some(rotation) = &self.rotation else {
            return;
        };
        let mut state = rotation.state.lock().await;
        if state.read_at.elapsed() < rotation.base.secret_ttl {
            return;
        }
        state.read_at = Instant::now();
        if let Err(e) = self.reread_secret(rotation).await {
            tracing::warn!(error = %e, "destination secret not read again; the current one is kept");
        }
    }

    /// After a 401/403 to a request made with settings of `generation`: whether to
    /// retry, because the secret was read again (now, or since that request was made)
    /// and gives other settings. Refusals read it at most once a minute.
    async fn reread_after_refusal(&self, generation: u64) -> bool {
        let Some(rotation) = &self.rotation else {
            return false;
        };
        let mut state = rotation.state.lock().await;
        if self.settings().generation != generation {
            return true;
        }
        if state
            .reread_on_refusal_at
            .is_some_and(|at| at.elapsed() < REREAD_ON_REFUSAL_EVERY)
        {
            return false;
        }
        state.reread_on_refusal_at = Some(Instant::now());
        state.read_at = Instant::now();
        match self.reread_secret(rotation).await {
            Ok(changed) => changed,
            Err(e) => {
                tracing::warn!(error = %e, "destination secret not read again after a refusal");
                false
            }
        }
    }

    /// Reads the secret and installs the settings it gives; whether they differ from
    /// the current ones.
    async fn reread_secret(&self, rotation: &Rotation) -> Result<bool, String> {
        let value = rotation.secret.read().await?;
        let config = apply_secret(&rotation.base, &value)?;
        let url = config
            .destination_url
            .clone()
            .ok_or("DESTINATION_SECRET_ARN: no destination URL")?;
        let current = self.settings();
        let next =
            Settings::new(&config, &url, current.generation + 1).map_err(|e| e.to_string())?;
        let changed = next.url != current.url || next.headers != current.headers;
        if changed {
            tracing::info!(
                generation = next.generation,
                "destination secret read again: new credentials"
            );
            match self.settings.write() {
                Ok(mut s) => *s = Arc::new(next),
                Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
            }
        }
        Ok(changed)
    }

    /// A delivery run: batches submitted to it are sent concurrently (at most
    /// MAX_IN_FLIGHT at once), none started or retried past `deadline`.
    pub fn delivery_run(&self, deadline: Option<Instant>) -> HttpDeliveryRun {
        HttpDeliveryRun {
            sink: self.clone(),
            deadline,
            permits: Arc::new(Semaphore::new(self.settings().max_in_flight.max(1))),
            tasks: JoinSet::new(),
            report: DeliveryReport::default(),
        }
    }

    /// Delivers one batch, with retries; every document ends delivered or failed.
    pub async fn deliver(&self, batch: &Batch, deadline: Option<Instant>) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        let mut queue: VecDeque<Vec<usize>> =
            VecDeque::from([(0..batch.len()).collect::<Vec<_>>()]);
        while let Some(group) = queue.pop_front() {
            self.deliver_group(batch, group, deadline, &mut queue, &mut report)
                .await;
        }
        report
    }

    async fn deliver_group(
        &self,
        batch: &Batch,
        mut group: Vec<usize>,
        deadline: Option<Instant>,
        queue: &mut VecDeque<Vec<usize>>,
        report: &mut DeliveryReport,
    ) {
        let mut attempt: u32 = 0;
        loop {
            let s = self.settings();
            let fail_all = |report: &mut DeliveryReport, group: &[usize], reason: &str| {
                let reason = s.secrets.scrub(reason);
                for &i in group {
                    report.failed(batch.unit(i), 1, &reason);
                }
            };
            let Some(timeout) = time_left(deadline, s.retry.request_timeout) else {
                fail_all(
                    report,
                    &group,
                    "deadline reached before the request could be sent",
                );
                return;
            };
            let body = frame(s.format, s.index.as_deref(), &s.hec_members, batch, &group);
            let framed_len = body.len();
            let body = match self.encode(body).await {
                Ok(b) => b,
                Err(e) => {
                    fail_all(
                        report,
                        &group,
                        &format!("compressing the request body: {e}"),
                    );
                    return;
                }
            };
            tracing::debug!(
                attempt,
                documents = group.len(),
                timeout_ms = timeout.as_millis() as u64,
                "sending batch"
            );
            let mut headers = s.headers.clone();
            if let Some(signer) = &self.signer {
                // Signed as sent (after compression), again on every attempt.
                match signer.sign(&s.url, &headers, &body).await {
                    Ok(signature) => headers.extend(signature),
                    Err(e) => {
                        fail_all(report, &group, &e);
                        return;
                    }
                }
            }
            let result = self
                .client
                .post(s.url.clone())
                .headers(headers)
                .timeout(timeout)
                .body(body)
                .send()
                .await;
            let retry_after;
            let reason;
            match result {
                Ok(mut resp) => {
                    let status = resp.status();
                    retry_after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    if status.is_success() {
                        let ids: Vec<&str> = group.iter().map(|&i| batch.id(i)).collect();
                        let outcome = match success_outcome(&s, &mut resp, &ids, framed_len).await {
                            Ok(outcome) => outcome,
                            Err(e) => {
                                // The bulk request may have been applied: retrying is safe
                                // because `create` with the same `_id` answers 409.
                                reason = format!(
                                    "reading the response from {}: {}",
                                    s.shown_url,
                                    e.without_url()
                                );
                                let reason = s.secrets.scrub(&reason);
                                attempt += 1;
                                if !self
                                    .wait_before_retry(attempt, None, deadline, &reason)
                                    .await
                                {
                                    fail_all(report, &group, &reason);
                                    return;
                                }
                                continue;
                            }
                        };
                        let items = match outcome {
                            Success::Ack(id) => {
                                match self.await_ack(&s, id, deadline).await {
                                    Ok(()) => {
                                        for &i in &group {
                                            report.delivered(batch.unit(i), 1);
                                        }
                                    }
                                    Err(why) => fail_all(report, &group, &why),
                                }
                                return;
                            }
                            Success::Delivered => {
                                for &i in &group {
                                    report.delivered(batch.unit(i), 1);
                                }
                                return;
                            }
                            Success::Failed(why) => {
                                fail_all(report, &group, &why);
                                return;
                            }
                            Success::Items(items) => items,
                        };
                        let mut again = Vec::new();
                        let mut last_reason = String::new();
                        for (&i, item) in group.iter().zip(items) {
                            match item {
                                BulkItem::Done => report.delivered(batch.unit(i), 1),
                                BulkItem::Retry(r) => {
                                    last_reason = r;
                                    again.push(i);
                                }
                                BulkItem::Failed(r) => report.failed(batch.unit(i), 1, &r),
                            }
                        }
                        if again.is_empty() {
                            return;
                        }
                        group = again;
                        attempt += 1;
                        if !self
                            .wait_before_retry(attempt, None, deadline, &last_reason)
                            .await
                        {
                            fail_all(
                                report,
                                &group,
                                &format!("bulk items not accepted: {last_reason}"),
                            );
                            return;
                        }
                        continue;
                    }
                    if status.as_u16() == 413 {
                        if group.len() > 1 {
                            let second = group.split_off(group.len() / 2);
                            queue.push_front(second);
                            queue.push_front(group);
                        } else {
                            fail_all(
                                report,
                                &group,
                                "HTTP 413: one document is larger than the receiver accepts",
                            );
                        }
                        return;
                    }
                    let retryable = status.as_u16() == 408
                        || status.as_u16() == 429
                        || status.is_server_error();
                    reason = format!("HTTP {} from {}", status.as_u16(), s.shown_url);
                    if !retryable {
                        // The detail is scrubbed whole, then shortened: a cut never hides
                        // a secret's start from the scrubber.
                        let body = read_capped(&mut resp, ERROR_BODY_BYTES)
                            .await
                            .map(|(b, _)| b)
                            .unwrap_or_default();
                        let mut body = s.secrets.scrub(String::from_utf8_lossy(&body).trim());
                        if let Some(signer) = &self.signer {
                            body = signer.scrub(&body);
                        }
                        let detail = crate::text::shorten(&body);
                        let refused = matches!(status.as_u16(), 401 | 403);
                        if refused && attempt < s.retry.max_retries {
                            // Rotated credentials: read the secret again and retry.
                            if self.reread_after_refusal(s.generation).await {
                                attempt += 1;
                                continue;
                            }
                        }
                        fail_all(report, &group, &format!("{reason} (not retried): {detail}"));
                        return;
                    }
                }
                Err(e) => {
                    if let Some(tls) = tls_failure(&e) {
                        // A certificate that is not trusted, not for this name or
                        // expired stays so: a configuration error, not retried.
                        fail_all(
                            report,
                            &group,
                            &format!("TLS failure with {} (not retried): {tls}", s.shown_url),
                        );
                        return;
                    }
                    retry_after = None;
                    let kind = if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "connection failed"
                    } else {
                        "request failed"
                    };
                    reason = format!("{kind} to {}: {}", s.shown_url, e.without_url());
                }
            }
            attempt += 1;
            let reason = s.secrets.scrub(&reason);
            if !self
                .wait_before_retry(attempt, retry_after, deadline, &reason)
                .await
            {
                fail_all(report, &group, &reason);
                return;
            }
        }
    }

    /// Sleeps before retry number `attempt` and answers true, or answers false when
    /// retries are used up or the wait would pass the deadline.
    async fn wait_before_retry(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        deadline: Option<Instant>,
        reason: &str,
    ) -> bool {
        let policy = self.settings().retry;
        if attempt > policy.max_retries {
            return false;
        }
        // A receiver's Retry-After is honoured up to RETRY_MAX_DELAY_MS: a receiver
        // cannot hold a batch for longer than the configuration allows.
        let delay = match retry_after {
            Some(d) => d.min(policy.max_delay),
            None => backoff(&policy, attempt),
        };
        if let Some(deadline) = deadline {
            if Instant::now() + delay + Duration::from_millis(100) >= deadline {
                return false;
            }
        }
        tracing::warn!(
            attempt,
            delay_ms = delay.as_millis() as u64,
            reason,
            "retrying delivery"
        );
        tokio::time::sleep(delay).await;
        true
    }

    async fn encode(&self, body: Vec<u8>) -> std::io::Result<Vec<u8>> {
        if !self.settings().gzip {
            return Ok(body);
        }
        self.compressor.gzip(body).await
    }

    pub fn shown_url(&self) -> String {
        self.settings().shown_url.clone()
    }
}

/// Most bytes of an error response read for its message.
const ERROR_BODY_BYTES: usize = 4096;
/// Most bytes of a Splunk HEC answer read (`{"text":"Success","code":0}`).
const HEC_BODY_BYTES: usize = 64 * 1024;
/// Least room a bulk response is given, whatever the request's size.
const MIN_BULK_RESPONSE_BYTES: usize = 64 * 1024;

/// What a 2xx answer says of the documents sent.
enum Success {
    Delivered,
    /// Received by Splunk HEC under this `ackId`: delivered once acknowledged.
    Ack(u64),
    /// Elasticsearch bulk items, matched to the documents by `_id`.
    Items(Vec<BulkItem>),
    /// The answer refuses the batch (a Splunk HEC code, an unreadable bulk response).
    Failed(String),
}

/// Reads a 2xx answer, never more than its format needs: a bulk response up to four
/// times the request's size, a HEC answer up to 64 KiB, nothing else beyond 4 KiB.
async fn success_outcome(
    s: &Settings,
    resp: &mut reqwest::Response,
    ids: &[&str],
    framed_len: usize,
) -> Result<Success, reqwest::Error> {
    match s.format {
        DestinationFormat::Elasticsearch => {
            let cap = (4 * framed_len).max(MIN_BULK_RESPONSE_BYTES);
            let (body, complete) = read_capped(resp, cap).await?;
            if !complete {
                return Ok(Success::Failed(format!(
                    "malformed bulk response from {}: larger than the {cap} bytes read for a request of {framed_len} bytes",
                    s.shown_url
                )));
            }
            Ok(match bulk_outcome(&body, ids, &s.secrets) {
                Ok(items) => Success::Items(items),
                Err(e) => Success::Failed(format!(
                    "malformed bulk response from {}: {}",
                    s.shown_url,
                    crate::text::shorten(&s.secrets.scrub(&e))
                )),
            })
        }
        DestinationFormat::SplunkHec => {
            let (body, _) = read_capped(resp, HEC_BODY_BYTES).await?;
            Ok(match (hec_refusal(&body), &s.hec_ack) {
                (Some(why), _) => Success::Failed(format!(
                    "Splunk HEC at {} refused the batch: {}",
                    s.shown_url,
                    crate::text::shorten(&s.secrets.scrub(&why))
                )),
                (None, None) => Success::Delivered,
                (None, Some(_)) => match hec_ack_id(&body) {
                    Some(id) => Success::Ack(id),
                    None => Success::Failed(format!(
                        "Splunk HEC at {} answered without an ackId: is indexer acknowledgement enabled on the token? (SPLUNK_HEC_ACK)",
                        s.shown_url
                    )),
                },
            })
        }
        DestinationFormat::Ndjson => {
            // Read only so that the connection can be used again.
            read_capped(resp, ERROR_BODY_BYTES).await?;
            Ok(Success::Delivered)
        }
    }
}

/// The `ackId` of a Splunk HEC answer (`{"text":"Success","code":0,"ackId":7}`).
fn hec_ack_id(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "ackId")]
        ack_id: Option<u64>,
    }
    serde_json::from_slice::<Answer>(body).ok()?.ack_id
}

/// Whether a Splunk ack answer (`{"acks":{"7":true}}`) acknowledges `id`.
fn hec_acknowledged(body: &[u8], id: u64) -> bool {
    #[derive(serde::Deserialize)]
    struct Answer {
        acks: std::collections::HashMap<String, bool>,
    }
    serde_json::from_slice::<Answer>(body)
        .ok()
        .and_then(|a| a.acks.get(&id.to_string()).copied())
        .unwrap_or(false)
}

/// A Splunk HEC answer's refusal: a `code` other than 0 (`{"text":"Invalid data
/// format","code":6}`), with its text.
fn hec_refusal(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        code: Option<i64>,
        text: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(body).ok()?;
    match answer.code {
        Some(code) if code != 0 => Some(format!(
            "code {code}: {}",
            answer.text.as_deref().unwrap_or("")
        )),
        _ => None,
    }
}

/// Reads at most `cap` bytes of a response body (under the request's timeout); whether
/// the body was read whole. A body declared larger than `cap` is not read past it.
async fn read_capped(
    resp: &mut reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let declared = resp.content_length();
    let mut body = Vec::with_capacity(declared.map_or(1024, |n| n.min(cap as u64) as usize));
    while let Some(chunk) = resp.chunk().await? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
        if body.len() == cap && declared.is_none_or(|n| n > cap as u64) {
            return Ok((body, declared.is_some_and(|n| n == cap as u64)));
        }
    }
    Ok((body, true))
}

/// What a TLS failure was (an untrusted, misnamed or expired certificate, a failed
/// handshake), when `e` is one.
fn tls_failure(e: &reqwest::Error) -> Option<String> {
    use rustls::{CertificateError, Error as Tls};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        // An I/O error hides its inner error from `source()`: look inside it (and the
        // I/O errors it wraps) too.
        let mut inner: &(dyn std::error::Error + 'static) = err;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = wrapped;
        }
        if let Some(tls) = inner.downcast_ref::<Tls>() {
            return Some(match tls {
                Tls::InvalidCertificate(CertificateError::UnknownIssuer) => {
                    "the certificate is not signed by a trusted CA (DESTINATION_CA_BUNDLE adds a private CA)".to_string()
                }
                Tls::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                ) => "the certificate is not valid for this host name".to_string(),
                Tls::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. },
                ) => "the certificate has expired".to_string(),
                other => format!("TLS: {other}"),
            });
        }
        source = err.source();
    }
    None
}

/// A `Retry-After` value: delay-seconds, or an HTTP-date (`Wed, 21 Oct 2015 07:28:00
/// GMT`), as the wait from now (none for a date already past).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    use aws_smithy_types::date_time::{DateTime, Format};
    let at = DateTime::from_str(value, Format::HttpDate).ok()?;
    let at = std::time::SystemTime::try_from(at).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Full-jitter exponential backoff for retry number `attempt` (1-based).
pub fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .base_delay
        .saturating_mul(1u32 << (attempt - 1).min(20));
    let cap = exp.min(policy.max_delay);
    cap.mul_f64(fastrand::f64())
}

fn time_left(deadline: Option<Instant>, timeout: Duration) -> Option<Duration> {
    match deadline {
        None => Some(timeout),
        Some(d) => {
            let left = d.checked_duration_since(Instant::now())?;
            (left > Duration::from_millis(200))
                .then(|| timeout.min(left - Duration::from_millis(100)))
        }
    }
}

/// Batches of one invocation or run in flight.
pub struct HttpDeliveryRun {
    sink: HttpSink,
    deadline: Option<Instant>,
    permits: Arc<Semaphore>,
    tasks: JoinSet<DeliveryReport>,
    report: DeliveryReport,
}

impl HttpDeliveryRun {
    /// Starts delivering `batch`; waits while MAX_IN_FLIGHT batches are in flight.
    pub async fn submit(&mut self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        while let Some(done) = self.tasks.try_join_next() {
            self.collect(done);
        }
        let permit = match self.permits.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => {
                for (unit, n) in batch.units() {
                    self.report.failed(unit, n, "delivery run closed");
                }
                return;
            }
        };
        let sink = self.sink.clone();
        let deadline = self.deadline;
        self.tasks.spawn(async move {
            let report = sink.deliver(&batch, deadline).await;
            drop(permit);
            report
        });
    }

    /// Waits for every batch and returns what was delivered.
    pub async fn finish(mut self) -> DeliveryReport {
        while let Some(done) = self.tasks.join_next().await {
            self.collect(done);
        }
        self.report
    }

    fn collect(&mut self, done: Result<DeliveryReport, tokio::task::JoinError>) {
        match done {
            Ok(r) => self.report.merge(r),
            // A delivery task cannot panic by design; if one did, its batch's units
            // cannot be proven delivered, and the caller reports the unit failed
            // through the read/forwarded mismatch.
            Err(e) => tracing::error!(error = %e, "delivery task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_full_jitter() {
        let p = RetryPolicy {
            max_retries: 5,
            request_timeout: Duration::from_secs(1),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
        };
        for attempt in 1..10 {
            let cap =
                Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_millis(250));
            assert!(backoff(&p, attempt) <= cap);
        }
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let in_a_minute = std::time::SystemTime::now() + Duration::from_secs(60);
        let date = aws_smithy_types::DateTime::from(in_a_minute)
            .fmt(aws_smithy_types::date_time::Format::HttpDate)
            .unwrap();
        let wait = parse_retry_after(&date).unwrap();
        assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
