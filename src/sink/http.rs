//! HTTP delivery: one reused client (rustls, keep-alive, no redirects), gzip bodies,
//! retries of 408/429/5xx, timeouts and connection errors with full-jitter exponential
//! backoff that honours Retry-After and never runs past the deadline, 413 bodies split
//! in half, TLS failures and refusals not retried. Here is where every retry is
//! decided; how a batch is framed and an answer read is each destination's own
//! (`protocol`).

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::RETRY_AFTER;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::answer::{read_capped, Answer, Exchange, ItemOutcome, ERROR_BODY_BYTES};
use super::gzip::Compressor;
pub use super::settings::RetryPolicy;
use super::settings::Settings;
use super::sigv4::RequestSigner;
use super::{Batch, DeliveryReport};
use crate::config::{Config, ConfigError};
use crate::secret::{DestinationSecret, Rotation};

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
        self.rotation = Some(Arc::new(Rotation::new(secret, base)));
        self
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
        if let Some(rotation) = &self.rotation {
            rotation
                .refresh_if_stale(|config| self.install(config))
                .await;
        }
    }

    /// After a 401/403 to a request made with settings of `generation`: whether to
    /// retry, because the secret gives other settings (`Rotation::reread_after_refusal`).
    async fn reread_after_refusal(&self, generation: u64) -> bool {
        match &self.rotation {
            None => false,
            Some(rotation) => {
                rotation
                    .reread_after_refusal(
                        || self.settings().generation != generation,
                        |config| self.install(config),
                    )
                    .await
            }
        }
    }

    /// Installs the settings `config` (the secret applied) gives; whether they differ
    /// from the current ones.
    fn install(&self, config: &Config) -> Result<bool, String> {
        let url = config
            .destination_url
            .clone()
            .ok_or("DESTINATION_SECRET_ARN: no destination URL")?;
        let current = self.settings();
        let next =
            Settings::new(config, &url, current.generation + 1).map_err(|e| e.to_string())?;
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

    /// Sends the documents `group` of `batch` until each is delivered or failed: retried
    /// as `Next` says, split in halves on 413 (the halves queued in `queue`).
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
            let next = match time_left(deadline, s.retry.request_timeout) {
                None => Next::Fail(
                    group,
                    "deadline reached before the request could be sent".to_string(),
                ),
                Some(timeout) => {
                    self.attempt(&s, batch, group, timeout, deadline, attempt, queue, report)
                        .await
                }
            };
            let (rest, reason, retry_after) = match next {
                Next::Done => return,
                Next::Fail(rest, reason) => {
                    let reason = s.secrets.scrub(&reason);
                    for &i in &rest {
                        report.failed(batch.unit(i), batch.records(i), &reason);
                    }
                    return;
                }
                Next::Again(rest) => {
                    group = rest;
                    attempt += 1;
                    continue;
                }
                Next::Retry(rest, reason, retry_after) => (rest, reason, retry_after),
            };
            group = rest;
            attempt += 1;
            let reason = s.secrets.scrub(&reason);
            if !self
                .wait_before_retry(attempt, retry_after, deadline, &reason)
                .await
            {
                for &i in &group {
                    report.failed(batch.unit(i), batch.records(i), &reason);
                }
                return;
            }
        }
    }

    /// One request for the documents `group` of `batch`, and what its answer leaves to
    /// do. Documents the answer settles are reported here.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        s: &Settings,
        batch: &Batch,
        mut group: Vec<usize>,
        timeout: Duration,
        deadline: Option<Instant>,
        attempt: u32,
        queue: &mut VecDeque<Vec<usize>>,
        report: &mut DeliveryReport,
    ) -> Next {
        tracing::debug!(
            attempt,
            documents = group.len(),
            timeout_ms = timeout.as_millis() as u64,
            "sending batch"
        );
        let (mut resp, framed_len) = match self.send(s, batch, &group, timeout).await {
            Ok(sent) => sent,
            Err(Failure::Transient(why)) => return Next::Retry(group, why, None),
            Err(Failure::Lasting(why)) => return Next::Fail(group, why),
        };
        let status = resp.status();
        if status.is_success() {
            let ids: Vec<&str> = group.iter().map(|&i| batch.id(i)).collect();
            let exchange = Exchange {
                client: &self.client,
                settings: s,
                deadline,
                ids: &ids,
                framed_len,
            };
            return match s.protocol.read_answer(&exchange, &mut resp).await {
                Ok(answer) => settle(answer, group, batch, report),
                // The request may have been applied: retrying is safe where ids make
                // it idempotent (a bulk `create` with the same `_id` answers 409).
                Err(e) => {
                    let why = format!(
                        "reading the response from {}: {}",
                        s.shown_url,
                        e.without_url()
                    );
                    Next::Retry(group, why, None)
                }
            };
        }
        if status.as_u16() == 413 {
            if group.len() > 1 {
                let second = group.split_off(group.len() / 2);
                queue.push_front(second);
                queue.push_front(group);
                return Next::Done;
            }
            let why = "HTTP 413: one document is larger than the receiver accepts";
            return Next::Fail(group, why.to_string());
        }
        let reason = format!("HTTP {} from {}", status.as_u16(), s.shown_url);
        if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return Next::Retry(group, reason, retry_after);
        }
        let detail = self.error_detail(s, &mut resp).await;
        let refused = matches!(status.as_u16(), 401 | 403);
        if refused && attempt < s.retry.max_retries && self.reread_after_refusal(s.generation).await
        {
            // Rotated credentials: the secret was read again; retry at once.
            return Next::Again(group);
        }
        Next::Fail(group, format!("{reason} (not retried): {detail}"))
    }

    /// Frames, compresses, signs and posts the documents `group` of `batch`: the
    /// response and the body's size before compression.
    async fn send(
        &self,
        s: &Settings,
        batch: &Batch,
        group: &[usize],
        timeout: Duration,
    ) -> Result<(reqwest::Response, usize), Failure> {
        let body = s.protocol.frame(batch, group);
        let framed_len = body.len();
        let body = self
            .encode(body)
            .await
            .map_err(|e| Failure::Lasting(format!("compressing the request body: {e}")))?;
        let mut headers = s.headers.clone();
        if let Some(signer) = &self.signer {
            // Signed as sent (after compression), again on every attempt.
            headers.extend(
                signer
                    .sign(&s.url, &headers, &body)
                    .await
                    .map_err(Failure::Lasting)?,
            );
        }
        let result = self
            .client
            .post(s.url.clone())
            .headers(headers)
            .timeout(timeout)
            .body(body)
            .send()
            .await;
        match result {
            Ok(resp) => Ok((resp, framed_len)),
            Err(e) => Err(match tls_failure(&e) {
                // A certificate that is not trusted, not for this name or expired stays
                // so: a configuration error, not retried.
                Some(tls) => Failure::Lasting(format!(
                    "TLS failure with {} (not retried): {tls}",
                    s.shown_url
                )),
                None => {
                    let kind = if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "connection failed"
                    } else {
                        "request failed"
                    };
                    Failure::Transient(format!("{kind} to {}: {}", s.shown_url, e.without_url()))
                }
            }),
        }
    }

    /// The first few KB of an error answer, secrets scrubbed whole, then shortened: a
    /// cut never hides a secret's start from the scrubber.
    async fn error_detail(&self, s: &Settings, resp: &mut reqwest::Response) -> String {
        let body = read_capped(resp, ERROR_BODY_BYTES)
            .await
            .map(|(b, _)| b)
            .unwrap_or_default();
        let mut body = s.secrets.scrub(String::from_utf8_lossy(&body).trim());
        if let Some(signer) = &self.signer {
            body = signer.scrub(&body);
        }
        crate::text::shorten(&body)
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

/// What one attempt at a request leaves to do with its documents.
enum Next {
    /// Each is delivered or failed (reported), or queued again in halves (413).
    Done,
    /// They fail, for this reason (not retried).
    Fail(Vec<usize>, String),
    /// They are sent again after a wait (backoff, or the receiver's Retry-After).
    Retry(Vec<usize>, String, Option<Duration>),
    /// They are sent again at once: the secret was read again after a refusal.
    Again(Vec<usize>),
}

/// Why a request got no answer.
enum Failure {
    /// A timeout, a connection or transport error: retried.
    Transient(String),
    /// A TLS failure, a body that cannot be compressed or signed: not retried.
    Lasting(String),
}

/// What a 2xx answer leaves to do: its delivered and failed documents reported, those
/// to retry.
fn settle(answer: Answer, group: Vec<usize>, batch: &Batch, report: &mut DeliveryReport) -> Next {
    match answer {
        Answer::Delivered => {
            for &i in &group {
                report.delivered(batch.unit(i), batch.records(i));
            }
            Next::Done
        }
        Answer::Failed(why) => Next::Fail(group, why),
        Answer::Items(items) => {
            let mut again = Vec::new();
            let mut last_reason = String::new();
            for (&i, item) in group.iter().zip(items) {
                match item {
                    ItemOutcome::Done => report.delivered(batch.unit(i), batch.records(i)),
                    ItemOutcome::Retry(r) => {
                        last_reason = r;
                        again.push(i);
                    }
                    ItemOutcome::Failed(r) => report.failed(batch.unit(i), batch.records(i), &r),
                }
            }
            if again.is_empty() {
                Next::Done
            } else {
                Next::Retry(
                    again,
                    format!("bulk items not accepted: {last_reason}"),
                    None,
                )
            }
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
