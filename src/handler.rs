//! The Lambda handler: wires trigger -> source -> pipeline -> sink for one invocation
//! and builds the response (README, Failure semantics): SQS `batchItemFailures`
//! listing exactly the messages not fully delivered, or an error for the other
//! triggers so that Lambda retries and then sends the event to the on-failure
//! destination. `Handler::new` is what every cold start builds, for Lambda, `invoke`
//! and `process` alike (secret, destination, object store, enrichment, threat list,
//! GeoIP databases; `warm_up` loads the last two); the summary's format is `metrics`,
//! the runtime loop `lambda`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{mpsc, OnceCell};

use crate::config::Config;
use crate::context::Origin;
use crate::enrich::EniCache;
use crate::geoip::GeoIpSources;
use crate::ids::IdSeed;
use crate::objects::ObjectStore;
use crate::pipeline::{run_input, Counts, Lookups, Output, ReadError, UnitInput, UnitProcessor};
use crate::reload::Location;
use crate::sink::{Batch, BatchLimits, DeliveryReport, Destination};
use crate::threat_intel::ThreatIntel;
use crate::trigger::{self, FailureReport, UnitSource, WorkUnit};

/// Everything created once per cold start and reused by every invocation.
pub struct Handler {
    config: Arc<Config>,
    destination: Destination,
    objects: ObjectStore,
    /// EC2 interface answers, when ENRICH_ENI is on.
    enrich: Option<Arc<EniCache>>,
    /// THREAT_INTEL_URI's list, when set.
    threat_intel: Option<ThreatIntel>,
    /// GEOIP_DATABASE and GEOIP_ASN_DATABASE, when set.
    geoip: Option<GeoIpSources>,
    /// Stop starting new units when less than this remains before the deadline.
    deadline_margin: Duration,
}

/// How one unit of an invocation is read besides its input: its index in the
/// invocation, the batch limits, when to stop (the deadline less its margin) and what
/// the invocation's documents are enriched from.
struct UnitRun {
    index: u32,
    limits: BatchLimits,
    stop_at: Option<Instant>,
    lookups: Lookups,
}

/// The handler failed the invocation (Lambda records an error and retries). Its kind
/// is the `errorType` Lambda records.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The payload is not an event this function takes.
    #[error("malformed payload: {0}")]
    MalformedPayload(String),
    /// Some units were not fully delivered (the first one is named).
    #[error("{0}")]
    UnitsNotDelivered(String),
    /// The delivery task itself failed.
    #[error("delivery task failed: {0}")]
    Internal(String),
    /// THREAT_INTEL_URI could not be loaded and no earlier list is held.
    #[error("{0}")]
    ThreatListUnavailable(String),
    /// A GeoIP database could not be loaded and no earlier one is held.
    #[error("{0}")]
    GeoIpUnavailable(String),
}

impl HandlerError {
    /// The `errorType` of the invocation error.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::MalformedPayload(_) => "MalformedPayload",
            HandlerError::UnitsNotDelivered(_) => "UnitsNotDelivered",
            HandlerError::Internal(_) => "InternalError",
            HandlerError::ThreatListUnavailable(_) => "ThreatListUnavailable",
            HandlerError::GeoIpUnavailable(_) => "GeoIpUnavailable",
        }
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> lambda_runtime::Diagnostic {
        lambda_runtime::Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}

/// What became of one unit.
#[derive(Debug, Default)]
struct UnitResult {
    counts: Counts,
    /// Why the unit is not fully delivered, when it is not.
    error: Option<UnitFailure>,
}

/// Why a unit is not fully delivered (it is reported failed and retried). None names
/// the unit: its report does, once.
#[derive(Debug, thiserror::Error)]
enum UnitFailure {
    #[error("not started: the invocation deadline is near")]
    NotStarted,
    /// Its object could not be opened.
    #[error("{0}")]
    Open(String),
    /// It was not read to its end.
    #[error("{0}")]
    Read(#[from] ReadError),
    /// Some of its documents were not delivered.
    #[error("{0}")]
    NotDelivered(String),
    #[error("reading task failed: {0}")]
    Task(String),
}

impl Handler {
    /// Cold start: fetches the destination secret when DESTINATION_SECRET_ARN is set,
    /// builds the HTTP client, the S3 client (or the local object directory) and, for
    /// ENRICH_ENI, the EC2 client.
    pub async fn new(config: Config, s3_dir: Option<PathBuf>) -> Result<Handler, String> {
        // The AWS configuration is loaded only when something needs it now; S3 waits for
        // the first event that names an object (an `invoke` of a CloudWatch Logs event
        // never touches AWS).
        let threat_list_in_s3 = config
            .threat_intel_uri
            .as_deref()
            .is_some_and(|u| u.starts_with("s3://"));
        let aws = if config.destination_secret_arn.is_some()
            || config.destination_sigv4.is_some()
            || config.enrich_eni
            || threat_list_in_s3
            || config.geoip.needs_s3()
        {
            Some(crate::aws::load_aws_config().await)
        } else {
            None
        };
        let (config, destination) = Destination::with_secret(config, aws.as_ref()).await?;
        let objects = match (s3_dir, &aws) {
            (Some(dir), _) => ObjectStore::Dir(dir),
            (None, Some(aws)) => ObjectStore::S3(Arc::new(OnceCell::new_with(Some(
                crate::aws::s3_client(aws),
            )))),
            (None, None) => ObjectStore::S3(Arc::new(OnceCell::new())),
        };
        let enrich = match &aws {
            Some(aws) if config.enrich_eni => Some(Arc::new(EniCache::from_sdk_config(
                aws,
                config.enrich_eni_ttl,
            ))),
            _ => None,
        };
        let threat_intel = match &config.threat_intel_uri {
            None => None,
            Some(uri) => {
                let location = Location::parse(uri)?;
                let s3 = aws.as_ref().map(crate::aws::s3_client);
                Some(
                    ThreatIntel::new(location, config.threat_intel_ttl, s3)
                        .with_load_timeout(config.threat_intel_timeout),
                )
            }
        };
        let geoip = GeoIpSources::new(&config.geoip, aws.as_ref().map(crate::aws::s3_client))?;
        let deadline_margin = config.deadline_margin;
        Ok(Handler {
            threat_intel,
            geoip,
            config: Arc::new(config),
            destination,
            objects,
            enrich,
            deadline_margin,
        })
    }

    /// Loads the threat list and the GeoIP databases at cold start. In Lambda one that
    /// cannot be loaded is logged, and fails the invocations (their records retried)
    /// until it can; `process` stops (`lookups`).
    pub async fn warm_up(&self) {
        if let Err(e) = self.lookups(None).await {
            tracing::error!(error = %e, kind = e.error_type(), "not loaded at cold start");
        }
    }

    /// The configuration the handler was built with.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Where documents go.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// What this invocation's documents are enriched from: the threat list and the GeoIP
    /// databases, each read again when due, within the invocation's deadline (less the
    /// margin kept to answer). One that cannot be had fails the invocation.
    pub async fn lookups(&self, deadline: Option<Instant>) -> Result<Lookups, HandlerError> {
        let deadline = self.stop_at(deadline);
        let threats = match &self.threat_intel {
            None => None,
            Some(intel) => Some(
                intel
                    .current(deadline)
                    .await
                    .map_err(HandlerError::ThreatListUnavailable)?,
            ),
        };
        let geo = match &self.geoip {
            None => None,
            Some(geoip) => Some(
                geoip
                    .current(deadline)
                    .await
                    .map_err(HandlerError::GeoIpUnavailable)?,
            ),
        };
        Ok(Lookups {
            interfaces: self.enrich.clone(),
            threats,
            geo,
        })
    }

    /// Handles one invocation payload. `deadline` is when Lambda stops the function.
    /// Returns the response and the invocation's summary (already logged by the caller).
    pub async fn handle(
        &self,
        payload: &Value,
        deadline: Option<Instant>,
    ) -> (Result<Value, HandlerError>, Value) {
        let started = Instant::now();
        let nothing_read =
            |units| crate::metrics::summary_json(&Counts::default(), units, 0, 0, started);
        if let Destination::Http(sink) = &self.destination {
            sink.refresh_secret_if_stale().await;
        }
        let lookups = match self.lookups(deadline).await {
            Ok(lookups) => lookups,
            Err(e) => return (Err(e), nothing_read(0)),
        };
        let ec2_requests_before = self.ec2_requests();
        let invocation = match trigger::decode(payload) {
            Ok(inv) => inv,
            Err(e) => return (Err(HandlerError::MalformedPayload(e)), nothing_read(0)),
        };
        let (mut results, report) = match self.run_units(&invocation, deadline, lookups).await {
            Ok(done) => done,
            Err(e) => return (Err(e), nothing_read(invocation.units.len())),
        };
        let (total, failed_units) = settle(&invocation, &mut results, &report);
        for (id, why) in &invocation.bad_messages {
            tracing::error!(message_id = %id, error = %why, "undecodable SQS message");
        }
        let summary = crate::metrics::summary_json(
            &total,
            invocation.units.len(),
            failed_units.len() + invocation.bad_messages.len(),
            self.ec2_requests() - ec2_requests_before,
            started,
        );
        (respond(&invocation, &total, &failed_units), summary)
    }

    /// Reads the invocation's units one after another, their batches delivered as they
    /// fill, until the deadline (less its margin) leaves no time to start one; what
    /// became of each unit, and what the delivery made of their documents.
    async fn run_units(
        &self,
        invocation: &trigger::Invocation,
        deadline: Option<Instant>,
        lookups: Lookups,
    ) -> Result<(Vec<UnitResult>, DeliveryReport), HandlerError> {
        // Deliveries end a little before the deadline, so the response gets out.
        let delivery_deadline =
            deadline.map(|d| d.checked_sub(Duration::from_millis(500)).unwrap_or(d));
        let (tx, mut rx) = mpsc::channel::<Batch>(2);
        let mut delivery = self.destination.delivery_run(delivery_deadline);
        let consumer = tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                delivery.submit(batch).await;
            }
            delivery.finish().await
        });
        let limits = BatchLimits::of(&self.config);
        let stop_at = self.stop_at(deadline);
        let mut results: Vec<UnitResult> = Vec::with_capacity(invocation.units.len());
        let mut batch = Batch::default();
        for (index, unit) in invocation.units.iter().enumerate() {
            if stop_at.is_some_and(|at| Instant::now() >= at) {
                results.push(UnitResult {
                    counts: Counts::default(),
                    error: Some(UnitFailure::NotStarted),
                });
                continue;
            }
            let (size, event_time) = unit_context(unit);
            tracing::debug!(unit = %unit_name(unit), size, event_time, "unit started");
            let run = UnitRun {
                index: index as u32,
                limits,
                stop_at,
                lookups: lookups.clone(),
            };
            let (result, rest) = self.run_unit(unit, run, batch, &tx).await;
            tracing::debug!(unit = %unit_name(unit), read = result.counts.read, error = ?result.error, "unit read");
            batch = rest;
            results.push(result);
        }
        if !batch.is_empty() {
            let _ = tx.send(batch).await;
        }
        drop(tx);
        tracing::debug!("all units read; waiting for deliveries");
        let report = consumer
            .await
            .map_err(|e| HandlerError::Internal(e.to_string()))?;
        Ok((results, report))
    }

    /// Opens a unit: its input, where it came from and its id seed; or, when it is
    /// not read, what became of it (a log stream LOG_STREAM_PREFIX does not name: its
    /// events counted as filtered; an object that could not be opened: failed).
    async fn open_unit(&self, unit: &WorkUnit) -> Result<(UnitInput, Origin, IdSeed), UnitResult> {
        match &unit.source {
            UnitSource::CloudWatch(logs) => {
                let origin = Origin::cloudwatch(&logs.log_group, &logs.log_stream);
                let seed = IdSeed::for_log_stream(&logs.log_group, &logs.log_stream);
                if !self
                    .config
                    .records
                    .filter
                    .keeps_log_stream(&logs.log_stream)
                {
                    let mut processor = UnitProcessor::new(&self.config.records, origin, seed);
                    processor.count_filtered(logs.events().len() as u64);
                    return Err(UnitResult {
                        counts: processor.counts(),
                        error: None,
                    });
                }
                Ok((UnitInput::Events(logs.clone()), origin, seed))
            }
            UnitSource::S3(obj) => match self.objects.open(obj).await {
                Ok((input, etag)) => {
                    // The version or ETag names the object's content; the GetObject
                    // response's ETag stands in when the notification gave neither.
                    let content = obj
                        .version_id
                        .as_deref()
                        .or(obj.etag.as_deref())
                        .or(etag.as_deref())
                        .unwrap_or("");
                    let seed = IdSeed::for_object(&obj.bucket, &obj.key, content);
                    Ok((input, Origin::s3(&obj.bucket, &obj.key), seed))
                }
                Err(error) => Err(UnitResult {
                    counts: Counts::default(),
                    error: Some(UnitFailure::Open(error)),
                }),
            },
        }
    }

    /// Runs one unit on a thread that may block, carrying the partial batch through;
    /// returns it for the next unit. Reading stops at `run.stop_at` (the unit is then
    /// failed and retried).
    async fn run_unit(
        &self,
        unit: &WorkUnit,
        run: UnitRun,
        batch: Batch,
        tx: &mpsc::Sender<Batch>,
    ) -> (UnitResult, Batch) {
        let (input, origin, seed) = match self.open_unit(unit).await {
            Ok(opened) => opened,
            Err(result) => return (result, batch),
        };
        let config = self.config.clone();
        let tx = tx.clone();
        let work = tokio::task::spawn_blocking(move || {
            let mut batch = batch;
            let mut processor =
                UnitProcessor::new(&config.records, origin, seed).with_lookups(&run.lookups);
            let mut emit = |b: Batch| tx.blocking_send(b).is_ok();
            let mut out =
                Output::new(run.index, &run.limits, &mut batch, &mut emit).stop_at(run.stop_at);
            let result = run_input(input, &mut processor, config.limits, &mut out);
            let error = result.err().map(UnitFailure::Read);
            let counts = processor.counts();
            (UnitResult { counts, error }, batch)
        });
        match work.await {
            Ok(r) => r,
            // `run_input` turns a panic into the unit's error; this is only a backstop.
            Err(e) => (
                UnitResult {
                    counts: Counts::default(),
                    error: Some(UnitFailure::Task(e.to_string())),
                },
                Batch::default(),
            ),
        }
    }

    /// When reading stops: the invocation's deadline less DEADLINE_MARGIN_MS, kept to
    /// answer.
    fn stop_at(&self, deadline: Option<Instant>) -> Option<Instant> {
        deadline.map(|d| d.checked_sub(self.deadline_margin).unwrap_or(d))
    }

    /// EC2 requests made by ENRICH_ENI since the cold start.
    fn ec2_requests(&self) -> u64 {
        self.enrich.as_ref().map_or(0, |c| c.calls())
    }

    /// Whether documents go to standard output (not allowed inside Lambda).
    pub fn delivers_to_stdout(&self) -> bool {
        matches!(self.destination, Destination::Stdout)
    }
}

/// Settles each unit's counts with the delivery report: forwarded is what was
/// delivered, failed = read - filtered - delivered. A unit is done only when it was read
/// to its end and every document it produced was delivered; the others are logged and
/// returned with why.
fn settle<'i>(
    invocation: &'i trigger::Invocation,
    results: &'i mut [UnitResult],
    report: &DeliveryReport,
) -> (Counts, Vec<(&'i WorkUnit, &'i UnitFailure)>) {
    let mut total = Counts::default();
    let mut failed_units = Vec::new();
    for (index, (unit, result)) in invocation.units.iter().zip(results.iter_mut()).enumerate() {
        let delivered = report.unit(index as u32);
        result.counts.settle(delivered.delivered);
        if result.error.is_none() && result.counts.failed > 0 {
            result.error = Some(UnitFailure::NotDelivered(
                delivered
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("{} documents not delivered", result.counts.failed)),
            ));
        }
        total.add(&result.counts);
        if let Some(error) = &result.error {
            let (size, event_time) = unit_context(unit);
            tracing::error!(unit = %unit_name(unit), size, event_time, message_id = unit.message_id.as_deref().unwrap_or(""),
                read = result.counts.read, forwarded = result.counts.forwarded, failed = result.counts.failed,
                error = %error, "unit not fully delivered");
            failed_units.push((unit, error));
        }
    }
    (total, failed_units)
}

/// The invocation's response: for SQS, `batchItemFailures` naming exactly the messages
/// not fully delivered (and those that could not be decoded); for the other triggers, a
/// summary when everything was delivered, else an error naming the first unit that was
/// not, so that Lambda retries the event.
fn respond(
    invocation: &trigger::Invocation,
    total: &Counts,
    failed_units: &[(&WorkUnit, &UnitFailure)],
) -> Result<Value, HandlerError> {
    match invocation.failure_report {
        FailureReport::PerMessage => {
            let mut ids: BTreeSet<&str> = invocation
                .bad_messages
                .iter()
                .map(|(id, _)| id.as_str())
                .collect();
            ids.extend(
                failed_units
                    .iter()
                    .filter_map(|(u, _)| u.message_id.as_deref()),
            );
            let items: Vec<Value> = ids
                .into_iter()
                .map(|id| json!({ "itemIdentifier": id }))
                .collect();
            Ok(json!({ "batchItemFailures": items }))
        }
        FailureReport::Invocation if failed_units.is_empty() => Ok(json!({
            "status": "delivered",
            "units": invocation.units.len(),
            "ignored": invocation.ignored,
            "read": total.read,
            "forwarded": total.forwarded,
            "filtered": total.filtered,
            "malformed": total.malformed,
            "enriched": total.enriched,
            "unenriched": total.unenriched,
        })),
        FailureReport::Invocation => {
            let (unit, error) = &failed_units[0];
            Err(HandlerError::UnitsNotDelivered(format!(
                "{} of {} units not fully delivered; first: {}: {error}",
                failed_units.len(),
                invocation.units.len(),
                unit_name(unit),
            )))
        }
    }
}

/// Object size and notification time (S3), or event count and first event time
/// (CloudWatch), for logs.
fn unit_context(unit: &WorkUnit) -> (u64, &str) {
    match &unit.source {
        UnitSource::S3(o) => (o.size.unwrap_or(0), o.event_time.as_deref().unwrap_or("")),
        UnitSource::CloudWatch(b) => (b.events().len() as u64, ""),
    }
}

fn unit_name(unit: &WorkUnit) -> String {
    match &unit.source {
        UnitSource::S3(o) => o.uri(),
        UnitSource::CloudWatch(b) => format!("cloudwatch:{}/{}", b.log_group, b.log_stream),
    }
}
