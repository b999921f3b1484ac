//! HTTP delivery: one reused client (rustls, keep-alive, no redirects), gzip bodies,
//! retries of 408/429/5xx, timeouts and connection errors with full-jitter exponential
//! backoff that honours Retry-After and never runs past the deadline, 413 bodies split
//! in half, and Elasticsearch bulk responses read item by item. Here is where every
//! retry is decided.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{frame, Batch, DeliveryReport};
use crate::config::{redact_url, Config, ConfigError, DestinationFormat};

/// Retry and timing settings.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// One request's timeout.
    pub request_timeout: Duration,
    /// Backoff base: retry n waits a random time in [0, min(max_delay, base * 2^(n-1))].
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest Retry-After honoured; a longer one fails the request.
    pub max_retry_after: Duration,
}

struct Settings {
    url: String,
    shown_url: String,
    format: DestinationFormat,
    index: Option<String>,
    headers: HeaderMap,
    gzip: bool,
    retry: RetryPolicy,
    max_in_flight: usize,
}

/// The HTTP destination. Cheap to clone; create once per process (cold start).
#[derive(Clone)]
pub struct HttpSink {
    client: reqwest::Client,
    settings: Arc<Settings>,
}

impl HttpSink {
    /// Builds the client from the configuration; `extra_headers` come from a secret.
    pub fn new(config: &Config, url: &str) -> Result<HttpSink, ConfigError> {
        let mut headers = HeaderMap::new();
        for (k, v) in &config.destination_headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                ConfigError(format!(
                    "DESTINATION_HEADERS: '{k}' is not a valid header name"
                ))
            })?;
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                ConfigError(format!(
                    "DESTINATION_HEADERS: header '{k}' has an invalid value"
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let content_type = match config.destination_format {
            DestinationFormat::SplunkHec => "application/json",
            _ => "application/x-ndjson",
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if config.gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let loopback = is_loopback(url);
        if url.starts_with("http://") && !loopback && !config.allow_plain_http {
            return Err(ConfigError(format!(
                "DESTINATION_URL: '{}' is plain http; use https, or set ALLOW_PLAIN_HTTP=true",
                redact_url(url)
            )));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(50))
            .tcp_keepalive(Duration::from_secs(30))
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("flowlog-forwarder/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ConfigError(format!(
                    "DESTINATION_URL: cannot build the HTTP client: {}",
                    e.without_url()
                ))
            })?;
        Ok(HttpSink {
            client,
            settings: Arc::new(Settings {
                url: url.to_string(),
                shown_url: redact_url(url),
                format: config.destination_format,
                index: config.destination_index.clone(),
                headers,
                gzip: config.gzip,
                retry: RetryPolicy {
                    max_retries: config.max_retries,
                    request_timeout: config.request_timeout,
                    base_delay: config.retry_base_delay,
                    max_delay: config.retry_max_delay,
                    max_retry_after: Duration::from_secs(300),
                },
                max_in_flight: config.max_in_flight,
            }),
        })
    }

    /// A delivery session: batches submitted to it are sent concurrently (at most
    /// MAX_IN_FLIGHT at once), none started or retried past `deadline`.
    pub fn session(&self, deadline: Option<Instant>) -> Session {
        Session {
            sink: self.clone(),
            deadline,
            permits: Arc::new(Semaphore::new(self.settings.max_in_flight.max(1))),
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
        let s = &self.settings;
        let mut attempt: u32 = 0;
        loop {
            let fail_all = |report: &mut DeliveryReport, group: &[usize], reason: &str| {
                for &i in group {
                    report.failed(batch.unit(i), 1, reason);
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
            let body = frame(s.format, s.index.as_deref(), batch, &group);
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
            let result = self
                .client
                .post(&s.url)
                .headers(s.headers.clone())
                .timeout(timeout)
                .body(body)
                .send()
                .await;
            let retry_after;
            let reason;
            match result {
                Ok(resp) => {
                    let status = resp.status();
                    retry_after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    if status.is_success() {
                        if s.format != DestinationFormat::Elasticsearch {
                            for &i in &group {
                                report.delivered(batch.unit(i), 1);
                            }
                            return;
                        }
                        let text = match resp.bytes().await {
                            Ok(b) => b,
                            Err(e) => {
                                // The bulk request may have been applied: retrying is safe
                                // because `create` with the same `_id` answers 409.
                                reason = format!("reading the bulk response: {}", e.without_url());
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
                        match bulk_outcome(&text, group.len()) {
                            Ok(items) => {
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
                            Err(e) => {
                                fail_all(report, &group, &format!("unreadable bulk response: {e}"));
                                return;
                            }
                        }
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
                        let detail = if status.as_u16() == 401 || status.as_u16() == 403 {
                            String::new()
                        } else {
                            let body = resp.text().await.unwrap_or_default();
                            format!(": {}", crate::flowlog::record::shorten(body.trim()))
                        };
                        fail_all(report, &group, &format!("{reason} (not retried){detail}"));
                        return;
                    }
                }
                Err(e) => {
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
        let policy = &self.settings.retry;
        if attempt > policy.max_retries {
            return false;
        }
        let delay = match retry_after {
            Some(d) if d > policy.max_retry_after => return false,
            Some(d) => d,
            None => backoff(policy, attempt),
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
        if !self.settings.gzip {
            return Ok(body);
        }
        tokio::task::spawn_blocking(move || gzip(&body))
            .await
            .map_err(std::io::Error::other)?
    }

    pub fn shown_url(&self) -> &str {
        &self.settings.shown_url
    }
}

/// Gzips a request body (level 1: fast, and receivers pay for nothing else).
pub fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 6 + 64),
        flate2::Compression::fast(),
    );
    e.write_all(body)?;
    e.finish()
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
    cap.mul_f64(random_unit())
}

fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per instance: enough for jitter.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
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

fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or("");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The fate of one item of an Elasticsearch bulk request.
#[derive(Debug, PartialEq, Eq)]
enum BulkItem {
    Done,
    Retry(String),
    Failed(String),
}

/// Reads a `_bulk` response: 2xx and 409 (already created: an idempotent retry) are
/// done, 429 and 5xx are retried, anything else failed with the reason. Items are read
/// whatever the `errors` flag says: a document without its item in the response
/// (fewer items than documents, or none) failed.
fn bulk_outcome(body: &[u8], expected: usize) -> Result<Vec<BulkItem>, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let items = v
        .get("items")
        .and_then(|i| i.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let missing = format!(
        "the bulk response has {} items for {expected} documents: this one is missing",
        items.len()
    );
    let mut outcome: Vec<BulkItem> = items.iter().take(expected).map(bulk_item).collect();
    outcome.resize_with(expected, || BulkItem::Failed(missing.clone()));
    Ok(outcome)
}

/// The fate of one bulk response item.
fn bulk_item(item: &serde_json::Value) -> BulkItem {
    let result = item.as_object().and_then(|o| o.values().next());
    let status = result
        .and_then(|r| r.get("status"))
        .and_then(|s| s.as_u64())
        .unwrap_or(0);
    let error = || {
        let e = result.and_then(|r| r.get("error"));
        let kind = e
            .and_then(|e| e.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("error");
        let why = e
            .and_then(|e| e.get("reason"))
            .and_then(|t| t.as_str())
            .unwrap_or("");
        format!(
            "bulk item status {status}: {kind}: {}",
            crate::flowlog::record::shorten(why)
        )
    };
    match status {
        200..=299 | 409 => BulkItem::Done,
        429 | 500..=599 => BulkItem::Retry(error()),
        _ => BulkItem::Failed(error()),
    }
}

/// Batches of one invocation or run in flight.
pub struct Session {
    sink: HttpSink,
    deadline: Option<Instant>,
    permits: Arc<Semaphore>,
    tasks: JoinSet<DeliveryReport>,
    report: DeliveryReport,
}

impl Session {
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
                    self.report.failed(unit, n, "delivery session closed");
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
    fn bulk_items() {
        let body = br#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":409}},{"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}},{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}]}"#;
        let items = bulk_outcome(body, 4).unwrap();
        assert_eq!(items[0], BulkItem::Done);
        assert_eq!(items[1], BulkItem::Done);
        assert!(matches!(&items[2], BulkItem::Retry(r) if r.contains("es_rejected")));
        assert!(
            matches!(&items[3], BulkItem::Failed(r) if r.contains("mapper_parsing_exception: bad"))
        );
        // Items missing from the response fail, whatever `errors` says.
        let missing = |body: &[u8], n| {
            let items = bulk_outcome(body, n).unwrap();
            assert_eq!(items.len(), n);
            items
                .iter()
                .filter(|i| matches!(i, BulkItem::Failed(r) if r.contains("missing")))
                .count()
        };
        assert_eq!(missing(br#"{"errors":true,"items":[]}"#, 1), 1);
        assert_eq!(missing(br#"{"errors":false}"#, 2), 2);
        assert_eq!(
            missing(
                br#"{"errors":false,"items":[{"create":{"status":201}}]}"#,
                3
            ),
            2
        );
        assert!(bulk_outcome(b"not json", 1).is_err());
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let p = RetryPolicy {
            max_retries: 5,
            request_timeout: Duration::from_secs(1),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(1),
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

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://127.0.0.1:9/x"));
        assert!(is_loopback("http://localhost/"));
        assert!(is_loopback("http://[::1]:80/"));
        assert!(is_loopback("http://u:p@127.0.0.2/"));
        assert!(!is_loopback("http://10.0.0.1/"));
        assert!(!is_loopback("http://127.0.0.1.evil.com/"));
    }
}
