//! Sink: where documents go. Collects documents into batches bounded by
//! BATCH_MAX_BYTES / BATCH_MAX_EVENTS and accounts, per work unit, for every document
//! delivered or failed. `http` sends batches (with retries) to a destination whose
//! module frames them and reads the answers: `ndjson`, `elasticsearch`, `splunk`,
//! `otlp`; `NdjsonWriter` writes to standard output.

mod answer;
mod elasticsearch;
mod gzip;
pub mod http;
mod ndjson;
mod otlp;
mod protocol;
mod settings;
pub mod sigv4;
mod splunk;

use std::collections::BTreeMap;

use crate::config::Config;
pub use ndjson::NdjsonWriter;

/// What the sink needs to know of one document besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct DocMeta<'a> {
    /// The work unit (S3 object, CloudWatch batch, file) the document belongs to.
    pub unit: u32,
    /// Unix seconds of `@timestamp` (Splunk HEC `time`).
    pub time: u64,
    /// `event.id` (Elasticsearch `_id`).
    pub id: &'a str,
    /// The records it stands for (AGGREGATE folds several into one): what its delivery
    /// or failure counts.
    pub records: u32,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    start: u32,
    end: u32,
    unit: u32,
    time: u64,
    id_start: u32,
    id_end: u32,
    records: u32,
}

/// Documents waiting to be sent together.
#[derive(Debug, Default)]
pub struct Batch {
    docs: Vec<u8>,
    ids: String,
    items: Vec<Item>,
    /// Framed size of the whole batch, for BATCH_MAX_BYTES.
    framed_bytes: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Uncompressed body size of the whole batch.
    pub fn framed_bytes(&self) -> usize {
        self.framed_bytes
    }

    /// Whether adding a document of `doc_len` bytes would pass a limit. An empty batch
    /// always takes a document, so one larger than the limit is still sent (alone).
    pub fn would_overflow(&self, limits: &BatchLimits, doc_len: usize) -> bool {
        !self.is_empty()
            && (self.items.len() >= limits.max_events
                || self.framed_bytes + doc_len + limits.overhead > limits.max_bytes)
    }

    pub fn push(&mut self, doc: &[u8], meta: DocMeta<'_>, limits: &BatchLimits) {
        if self.docs.capacity() == 0 {
            // A batch fills up to its limit: one allocation, not a chain of copies.
            self.docs.reserve(limits.max_bytes.min(64 << 20));
        }
        let start = self.docs.len() as u32;
        self.docs.extend_from_slice(doc);
        let id_start = self.ids.len() as u32;
        self.ids.push_str(meta.id);
        self.items.push(Item {
            start,
            end: self.docs.len() as u32,
            unit: meta.unit,
            time: meta.time,
            id_start,
            id_end: self.ids.len() as u32,
            records: meta.records,
        });
        self.framed_bytes += doc.len() + limits.overhead + meta.id.len();
    }

    /// Document `i`, as written.
    pub fn doc(&self, i: usize) -> &[u8] {
        let it = &self.items[i];
        &self.docs[it.start as usize..it.end as usize]
    }

    pub(crate) fn id(&self, i: usize) -> &str {
        let it = &self.items[i];
        &self.ids[it.id_start as usize..it.id_end as usize]
    }

    fn unit(&self, i: usize) -> u32 {
        self.items[i].unit
    }

    /// The records document `i` stands for.
    fn records(&self, i: usize) -> u64 {
        u64::from(self.items[i].records)
    }

    /// Unix seconds of the document's `@timestamp`.
    fn time(&self, i: usize) -> u64 {
        self.items[i].time
    }

    /// Records per unit (what its documents stand for), for accounting.
    pub fn units(&self) -> BTreeMap<u32, u64> {
        let mut m = BTreeMap::new();
        for it in &self.items {
            *m.entry(it.unit).or_insert(0) += u64::from(it.records);
        }
        m
    }
}

/// Batch limits and the per-document framing overhead of the destination format.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_bytes: usize,
    pub max_events: usize,
    overhead: usize,
}

impl BatchLimits {
    /// `overhead`: about the bytes framing adds to each document.
    pub fn new(max_bytes: usize, max_events: usize, overhead: usize) -> BatchLimits {
        BatchLimits {
            max_bytes,
            max_events,
            overhead,
        }
    }

    /// BATCH_MAX_BYTES and BATCH_MAX_EVENTS, with the framing of DESTINATION_FORMAT.
    pub fn of(config: &Config) -> BatchLimits {
        BatchLimits::new(
            config.batch_max_bytes,
            config.batch_max_events,
            protocol::Protocol::overhead(config),
        )
    }
}

/// Per-unit delivery accounting.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnitDelivery {
    /// Records whose documents were delivered, and whose documents failed.
    pub delivered: u64,
    pub failed: u64,
    /// The first reason a document of this unit failed.
    pub error: Option<String>,
}

/// What was delivered, by unit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub units: BTreeMap<u32, UnitDelivery>,
}

impl DeliveryReport {
    pub fn delivered(&mut self, unit: u32, n: u64) {
        self.units.entry(unit).or_default().delivered += n;
    }

    pub fn failed(&mut self, unit: u32, n: u64, reason: &str) {
        let u = self.units.entry(unit).or_default();
        u.failed += n;
        if u.error.is_none() {
            u.error = Some(reason.to_string());
        }
    }

    pub fn merge(&mut self, other: DeliveryReport) {
        for (unit, d) in other.units {
            let u = self.units.entry(unit).or_default();
            u.delivered += d.delivered;
            u.failed += d.failed;
            if u.error.is_none() {
                u.error = d.error;
            }
        }
    }

    pub fn unit(&self, unit: u32) -> UnitDelivery {
        self.units.get(&unit).cloned().unwrap_or_default()
    }
}

/// Where documents go: standard output (outside Lambda only) or an HTTP receiver.
#[derive(Clone)]
pub enum Destination {
    Stdout,
    Http(http::HttpSink),
}

impl Destination {
    /// Builds the destination the configuration names.
    pub fn from_config(
        config: &crate::config::Config,
    ) -> Result<Destination, crate::config::ConfigError> {
        match &config.destination_url {
            None => Ok(Destination::Stdout),
            Some(url) => Ok(Destination::Http(http::HttpSink::new(config, url)?)),
        }
    }

    /// Builds the destination, reading DESTINATION_SECRET_ARN first when it is set
    /// (`aws` is then needed) and applying it over `config`; the secret is read again
    /// as SECRET_TTL_SECONDS says. Returns the configuration in effect.
    pub async fn with_secret(
        config: crate::config::Config,
        aws: Option<&aws_config::SdkConfig>,
    ) -> Result<(crate::config::Config, Destination), String> {
        let Some(arn) = config.destination_secret_arn.clone() else {
            let destination = Destination::from_config(&config).map_err(|e| e.to_string())?;
            let destination = destination.with_signer(&config, aws)?;
            return Ok((config, destination));
        };
        let aws = aws.ok_or("DESTINATION_SECRET_ARN: no AWS configuration to read it with")?;
        let secret = crate::secret::DestinationSecret::new(aws, &arn);
        let value = secret.read().await?;
        let effective = crate::secret::apply_secret(&config, &value)?;
        let destination = match Destination::from_config(&effective).map_err(|e| e.to_string())? {
            Destination::Http(sink) => Destination::Http(sink.with_secret(secret, config)),
            Destination::Stdout => Destination::Stdout,
        };
        let destination = destination.with_signer(&effective, Some(aws))?;
        Ok((effective, destination))
    }

    /// Signs its requests when DESTINATION_AUTH is aws-sigv4 (`aws` is then needed).
    fn with_signer(
        self,
        config: &crate::config::Config,
        aws: Option<&aws_config::SdkConfig>,
    ) -> Result<Destination, String> {
        let (Destination::Http(sink), Some(target)) = (&self, &config.destination_sigv4) else {
            return Ok(self);
        };
        let aws = aws.ok_or("DESTINATION_AUTH=aws-sigv4: no AWS configuration to sign with")?;
        let signer = sigv4::RequestSigner::new(aws, target.region.as_deref(), &target.service)?;
        Ok(Destination::Http(sink.clone().with_signer(signer)))
    }

    /// A delivery run: the batches of one run or invocation; no request starts past `deadline`.
    pub fn delivery_run(&self, deadline: Option<std::time::Instant>) -> DeliveryRun {
        match self {
            Destination::Stdout => {
                let out = std::io::BufWriter::with_capacity(STDOUT_BUFFER, std::io::stdout());
                DeliveryRun::Stdout(NdjsonWriter::new(out), DeliveryReport::default())
            }
            Destination::Http(sink) => DeliveryRun::Http(sink.delivery_run(deadline)),
        }
    }
}

/// Standard output is written through a buffer of this size: its own buffering is by
/// line, one `write` call per document.
const STDOUT_BUFFER: usize = 256 * 1024;

/// Batches of one run or invocation on their way to the destination.
pub enum DeliveryRun {
    Stdout(
        NdjsonWriter<std::io::BufWriter<std::io::Stdout>>,
        DeliveryReport,
    ),
    Http(http::HttpDeliveryRun),
}

impl DeliveryRun {
    pub async fn submit(&mut self, batch: Batch) {
        match self {
            DeliveryRun::Stdout(out, report) => {
                if let Err(e) = out.write_batch(&batch, report) {
                    for (unit, n) in batch.units() {
                        report.failed(unit, n, &format!("writing standard output: {e}"));
                    }
                }
            }
            DeliveryRun::Http(s) => s.submit(batch).await,
        }
    }

    /// Waits for every batch; what was delivered, by unit.
    pub async fn finish(self) -> DeliveryReport {
        match self {
            DeliveryRun::Stdout(mut out, mut report) => {
                if let Err(e) = out.flush() {
                    let units: Vec<u32> = report.units.keys().copied().collect();
                    for unit in units {
                        report.failed(unit, 0, &format!("writing standard output: {e}"));
                    }
                }
                report
            }
            DeliveryRun::Http(s) => s.finish().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(time: u64, id: &str) -> DocMeta<'_> {
        DocMeta {
            unit: 0,
            time,
            id,
            records: 1,
        }
    }

    /// Each destination's framing of the same two documents.
    #[test]
    fn frames_each_format() {
        let frame = |vars: &[(&str, &str)]| {
            let config = Config::from_lookup(|k| {
                vars.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap();
            let mut url = reqwest::Url::parse("https://example.com/").unwrap();
            let protocol = protocol::Protocol::new(&config, &mut url);
            let limits = BatchLimits::of(&config);
            let mut b = Batch::default();
            b.push(br#"{"a":1}"#, doc(5, "id-1"), &limits);
            b.push(br#"{"a":2}"#, doc(6, "id-2"), &limits);
            String::from_utf8(protocol.frame(&b, &[1])).unwrap()
        };
        assert_eq!(frame(&[]), "{\"a\":2}\n");
        assert_eq!(
            frame(&[
                ("DESTINATION_FORMAT", "elasticsearch"),
                ("DESTINATION_INDEX", "idx")
            ]),
            "{\"create\":{\"_index\":\"idx\",\"_id\":\"id-2\"}}\n{\"a\":2}\n"
        );
        assert_eq!(
            frame(&[
                ("DESTINATION_FORMAT", "splunk-hec"),
                ("DESTINATION_INDEX", "main"),
                ("SPLUNK_SOURCETYPE", "aws:cloudwatchlogs:vpcflow"),
            ]),
            "{\"time\":6,\"sourcetype\":\"aws:cloudwatchlogs:vpcflow\",\"index\":\"main\",\"event\":{\"a\":2}}\n"
        );
    }

    #[test]
    fn limits() {
        let limits = BatchLimits::new(100, 2, 1);
        let mut b = Batch::default();
        assert!(!b.would_overflow(&limits, 1000));
        b.push(&[b'x'; 10], doc(0, ""), &limits);
        assert!(!b.would_overflow(&limits, 10));
        assert!(b.would_overflow(&limits, 95));
        b.push(&[b'x'; 10], doc(0, ""), &limits);
        assert!(b.would_overflow(&limits, 1));
    }
}
