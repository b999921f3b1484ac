//! The record path of one work unit (an S3 object, a file, a CloudWatch batch):
//! line -> parse -> filter -> normalize into a document buffer, with the unit's
//! counts and deterministic event ids. Used alike by the CLI and the Lambda handler.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use parquet::file::reader::ChunkReader;

use serde::Serialize;

use crate::attribution::{RejectAttribution, RejectAttributor};
use crate::config::{OutputSchema, RecordSettings};
use crate::context::{DocContext, Origin, ThreatMatch};
use crate::ecs;
use crate::enrich::{EniCache, Interface, Lookup};
use crate::flowlog::{Field, FlowRecord, Line, LineParser, Schema, Span};
use crate::json::Document;
use crate::ocsf;
use crate::sink::{Batch, BatchLimits, DocMeta};
use crate::source::parquet::ParquetObject;
use crate::source::s3::RangedObject;
use crate::source::{self, Compression, Limits, SourceLine};
use crate::threat_intel::ThreatList;
use crate::trigger::LogBatch;

/// Counters of a unit or an invocation. Every record read is forwarded, filtered or
/// failed: `read == forwarded + filtered + failed`. `malformed` records are forwarded
/// as parse-failure documents and so are counted in `forwarded` too. With ENRICH_ENI,
/// `enriched` documents carry their interface's details and `unenriched` ones went out
/// without them because the EC2 lookup failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub read: u64,
    pub forwarded: u64,
    pub filtered: u64,
    pub malformed: u64,
    pub failed: u64,
    pub enriched: u64,
    pub unenriched: u64,
    /// REJECT_ATTRIBUTION past its caps: accepted flows not remembered, and REJECT
    /// records released before their unit's end (decided on what was seen so far).
    pub attribution_overflow: u64,
    /// Documents with an address on THREAT_INTEL_URI's list.
    pub threat_matches: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.read += other.read;
        self.forwarded += other.forwarded;
        self.filtered += other.filtered;
        self.malformed += other.malformed;
        self.failed += other.failed;
        self.enriched += other.enriched;
        self.unenriched += other.unenriched;
        self.attribution_overflow += other.attribution_overflow;
        self.threat_matches += other.threat_matches;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }
}

/// What became of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Blank or header line: not a record.
    Skipped,
    /// Dropped by a configured filter (counted).
    Filtered,
    /// A document was written into the document buffer (left empty by the other
    /// outcomes); `malformed` when it is the parse-failure document; `time` is its
    /// `@timestamp` in Unix seconds. Its `event.id` is `UnitProcessor::event_id`.
    Document { malformed: bool, time: u64 },
    /// A REJECT record held for its attribution (REJECT_ATTRIBUTION): its document is
    /// written when the unit ends (`UnitProcessor::release_held`).
    Held,
}

/// Where the deterministic event ids of a unit come from. An id is bound to the record's
/// content: it stays equal when the same record is processed again (retries are
/// idempotent at receivers that deduplicate on it) and differs whenever the record
/// differs.
#[derive(Debug, Clone, Copy)]
pub struct IdSeed {
    seed: u128,
    /// Whether the record's own bytes are hashed too: inputs without an identity that
    /// changes with their content (local files, standard input), where the same name and
    /// line number may hold another record on the next run.
    hash_content: bool,
}

impl IdSeed {
    /// A seed from the identity of an input whose content never changes under it: an S3
    /// object named by bucket, key and version or ETag (`s3`, bucket, key, version). The
    /// id of a record is a hash of this seed and its line (or row) number.
    pub fn new(parts: &[&str]) -> IdSeed {
        IdSeed {
            seed: hash_parts(parts),
            hash_content: false,
        }
    }

    /// A seed for an input whose name says nothing of its content (a local file,
    /// standard input): the id of a record also hashes the record's own bytes, unless
    /// the seed is bound to the whole input's digest (`bound_to`).
    pub fn with_content(parts: &[&str]) -> IdSeed {
        IdSeed {
            seed: hash_parts(parts),
            hash_content: true,
        }
    }

    /// This seed bound to the digest of the whole input (a Parquet object, read by
    /// position: hashing it once is cheaper than hashing each row's values): records
    /// are then told apart by their number alone.
    fn bound_to(self, digest: u128) -> IdSeed {
        if !self.hash_content {
            return self;
        }
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&self.seed.to_le_bytes());
        bytes[16..].copy_from_slice(&digest.to_le_bytes());
        IdSeed {
            seed: xxhash_rust::xxh3::xxh3_128(&bytes),
            hash_content: false,
        }
    }

    /// The id of record `line` whose bytes are `content`: a hash of the seed and the
    /// line number, and, for inputs whose records are hashed, of the content (seeded
    /// with the first hash, one pass over the bytes).
    fn id(&self, line: u64, content: &[u8], out: &mut String) {
        let mut bytes = [0u8; 24];
        bytes[..16].copy_from_slice(&self.seed.to_le_bytes());
        bytes[16..].copy_from_slice(&line.to_le_bytes());
        let mut h = xxhash_rust::xxh3::xxh3_128(&bytes);
        if self.hash_content {
            h ^= xxhash_rust::xxh3::xxh3_128_with_seed(content, h as u64);
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 32];
        for (i, b) in h.to_be_bytes().into_iter().enumerate() {
            hex[2 * i] = HEX[(b >> 4) as usize];
            hex[2 * i + 1] = HEX[(b & 0xf) as usize];
        }
        out.clear();
        out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    }
}

/// A hash of `parts`, each prefixed by its length (so that parts cannot run together).
fn hash_parts(parts: &[&str]) -> u128 {
    let mut bytes = Vec::new();
    for p in parts {
        bytes.extend_from_slice(&(p.len() as u64).to_le_bytes());
        bytes.extend_from_slice(p.as_bytes());
    }
    xxhash_rust::xxh3::xxh3_128(&bytes)
}

/// Processes the lines of one unit.
pub struct UnitProcessor<'s> {
    parser: LineParser,
    seed: IdSeed,
    id: String,
    docs: Documents<'s>,
}

/// Writes a unit's documents and keeps its counts.
struct Documents<'s> {
    settings: &'s RecordSettings,
    origin: Origin,
    now: u64,
    enrich: Option<Arc<EniCache>>,
    /// REJECT attribution state, unless REJECT_ATTRIBUTION=false.
    attributor: Option<RejectAttributor>,
    /// THREAT_INTEL_URI's list, when set.
    threats: Option<Arc<ThreatList>>,
    counts: Counts,
}

impl<'s> UnitProcessor<'s> {
    pub fn new(settings: &'s RecordSettings, origin: Origin, seed: IdSeed) -> UnitProcessor<'s> {
        UnitProcessor {
            parser: LineParser::new(settings.schema.clone()),
            seed,
            id: String::with_capacity(40),
            docs: Documents {
                settings,
                origin,
                now: unix_now(),
                enrich: None,
                attributor: settings.reject_attribution.then(RejectAttributor::new),
                threats: None,
                counts: Counts::default(),
            },
        }
    }

    /// Enriches documents from `cache` (ENRICH_ENI). Interfaces are looked up ahead of
    /// the records that need them: `run_lines` and `run_parquet` do it for a few
    /// thousand records at a time; other callers use `interface_ids` and `prefetch`.
    pub fn with_enrichment(mut self, cache: Option<Arc<EniCache>>) -> UnitProcessor<'s> {
        self.docs.enrich = cache;
        self
    }

    /// Matches every record's addresses against `list` (THREAT_INTEL_URI).
    pub fn with_threat_list(mut self, list: Option<Arc<ThreatList>>) -> UnitProcessor<'s> {
        self.docs.threats = list;
        self
    }

    /// The unit's counts so far.
    pub fn counts(&self) -> Counts {
        let mut counts = self.docs.counts;
        if let Some(a) = &self.docs.attributor {
            counts.attribution_overflow = a.accepted_dropped + a.held_released_early;
        }
        counts
    }

    /// Counts `n` records that were read and dropped by a filter outside the record
    /// path (LOG_STREAM_PREFIX).
    pub fn count_filtered(&mut self, n: u64) {
        self.docs.counts.read += n;
        self.docs.counts.filtered += n;
    }

    /// The interface ids of the records among `lines`, read with the current schema (a
    /// header line among them switches it, as it will when they are processed).
    pub fn interface_ids<'t>(&self, lines: impl Iterator<Item = &'t [u8]>) -> Vec<String> {
        let mut parser = LineParser::new(self.parser.schema().clone());
        let mut ids = HashSet::new();
        for bytes in lines {
            let Ok(text) = std::str::from_utf8(bytes) else {
                continue;
            };
            if let Line::Record(rec) = parser.parse(text) {
                if let Some(id) = rec.get(Field::InterfaceId) {
                    if !ids.contains(id) {
                        ids.insert(id.to_string());
                    }
                }
            }
        }
        ids.into_iter().collect()
    }

    /// Looks up the interfaces `ids` when enriching (see `EniCache::prefetch`).
    pub async fn prefetch(&self, ids: &[String]) {
        if let Some(cache) = &self.docs.enrich {
            cache.prefetch(ids.iter().map(String::as_str)).await;
        }
    }

    /// Processes a line of a file or object; its id derives from the line number.
    pub fn process_line(&mut self, line: &SourceLine<'_>, out: &mut Document) -> Outcome {
        self.seed.id(line.number, line.bytes, &mut self.id);
        let id = std::mem::take(&mut self.id);
        let outcome = self.process(line.number, line.bytes, line.too_long, &id, out);
        self.id = id;
        outcome
    }

    /// Processes one record with a given id (a CloudWatch Logs event id).
    pub fn process_event(
        &mut self,
        number: u64,
        message: &str,
        id: &str,
        out: &mut Document,
    ) -> Outcome {
        self.id.clear();
        self.id.push_str(id);
        let id = std::mem::take(&mut self.id);
        let outcome = self.process(number, message.as_bytes(), None, &id, out);
        self.id = id;
        outcome
    }

    /// The `event.id` of the last document written.
    pub fn event_id(&self) -> &str {
        &self.id
    }

    /// Whether held REJECT records reached their cap and must be released now.
    pub fn must_release(&self) -> bool {
        self.docs
            .attributor
            .as_ref()
            .is_some_and(RejectAttributor::is_full)
    }

    /// Writes the documents of the held REJECT records (REJECT_ATTRIBUTION) into `doc`,
    /// one at a time, each handed to `emit` with its id and time. Called when the unit's
    /// records are all read, or early when `must_release`.
    pub fn release_held(
        &mut self,
        doc: &mut Document,
        mut emit: impl FnMut(&Document, &str, u64) -> Result<(), String>,
    ) -> Result<(), String> {
        let Some(attributor) = self.docs.attributor.as_mut() else {
            return Ok(());
        };
        if !attributor.is_holding() {
            return Ok(());
        }
        let (held, schemas) = attributor.release();
        let mut parsers: Vec<LineParser> = schemas.into_iter().map(LineParser::new).collect();
        for (record, attribution) in held {
            doc.clear();
            let Some(parser) = parsers.get_mut(record.schema) else {
                continue;
            };
            let outcome = match parser.parse(&record.text) {
                Line::Record(rec) => {
                    let original = record.original.then_some(record.text.as_str());
                    self.docs
                        .write(&rec, original, &record.id, doc, Some(attribution))
                }
                // It was read as a record once: it reads as one again.
                _ => {
                    let error = format!("line {}: no longer reads as a record", record.number);
                    let outcome = self.docs.failure(&record.text, &error, &record.id, doc);
                    // Counted as read when it was held.
                    self.docs.counts.read -= 1;
                    outcome
                }
            };
            if let Outcome::Document { time, .. } = outcome {
                emit(doc, &record.id, time)?;
            }
        }
        Ok(())
    }

    fn process(
        &mut self,
        number: u64,
        bytes: &[u8],
        too_long: Option<u64>,
        id: &str,
        out: &mut Document,
    ) -> Outcome {
        out.clear();
        self.docs.counts.bytes_in += bytes.len() as u64;
        if let Some(len) = too_long {
            let raw = String::from_utf8_lossy(bytes);
            let error = format!(
                "line {number}: {len} bytes, longer than the maximum of {} (MAX_LINE_BYTES); event.original holds its start",
                bytes.len()
            );
            return self.docs.failure(&raw, &error, id, out);
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let raw = String::from_utf8_lossy(bytes);
                let error = format!("line {number}: not valid UTF-8 ({e})");
                return self.docs.failure(&raw, &error, id, out);
            }
        };
        match self.parser.parse(text) {
            Line::Blank | Line::Header => Outcome::Skipped,
            Line::Record(rec) => {
                let original = self.docs.settings.include_original.then_some(text);
                let held = Hold {
                    number,
                    text,
                    schema: rec.schema(),
                };
                self.docs.accept(&rec, original, id, out, held)
            }
            Line::Invalid(e) => {
                let error = format!("line {number}: {e}");
                self.docs.failure(text, &error, id, out)
            }
        }
    }

    /// Processes one record whose values are already split (a Parquet row). Its id
    /// derives from the row number as a line's from its line number; where the row is
    /// shown as a line (`event.original`, a failure), its values are joined by spaces.
    /// A row longer than `max_line_bytes` as a line is a failure, as such a line is.
    pub fn process_columns(
        &mut self,
        row: &Row<'_>,
        max_line_bytes: usize,
        out: &mut Document,
    ) -> Outcome {
        let &Row {
            number,
            schema,
            text,
            spans,
            bytes,
        } = row;
        out.clear();
        // A row's id is bound to the object's digest (`run_parquet` binds the seed of
        // inputs whose records are hashed), not to its own values.
        self.seed.id(number, b"", &mut self.id);
        let id = std::mem::take(&mut self.id);
        self.docs.counts.bytes_in += bytes;
        if bytes > max_line_bytes as u64 {
            // As a text line over MAX_LINE_BYTES: a failure document holding its start.
            let start = row_line(text, spans, max_line_bytes);
            let error = format!(
                "row {number}: {bytes} bytes as a line, longer than the maximum of {max_line_bytes} (MAX_LINE_BYTES); event.original holds its start"
            );
            let outcome = self.docs.failure(&start, &error, &id, out);
            self.id = id;
            return outcome;
        }
        let outcome = match FlowRecord::from_spans(text, schema, spans) {
            Ok(rec) => {
                let line = self
                    .docs
                    .settings
                    .include_original
                    .then(|| row_line(text, spans, max_line_bytes));
                // A row is held as its line (only when it is held: a REJECT).
                let joined;
                let text = match (&line, self.docs.will_hold(&rec)) {
                    (Some(line), _) => line.as_str(),
                    (None, true) => {
                        joined = row_line(text, spans, max_line_bytes);
                        joined.as_str()
                    }
                    (None, false) => "",
                };
                let held = Hold {
                    number,
                    text,
                    schema,
                };
                self.docs.accept(&rec, line.as_deref(), &id, out, held)
            }
            Err(e) => {
                let error = format!("row {number}: {e}");
                self.docs
                    .failure(&row_line(text, spans, max_line_bytes), &error, &id, out)
            }
        };
        self.id = id;
        outcome
    }
}

/// The record's distinct addresses (source, destination, packet source and
/// destination) that are on `list`, into `found`: how many.
#[inline]
fn find_threats<'a>(
    list: &'a ThreatList,
    rec: &FlowRecord<'a>,
    found: &mut [Option<ThreatMatch<'a>>; 4],
) -> usize {
    let candidates = [
        (Field::SrcAddr, rec.srcaddr),
        (Field::DstAddr, rec.dstaddr),
        (Field::PktSrcAddr, rec.pkt_srcaddr),
        (Field::PktDstAddr, rec.pkt_dstaddr),
    ];
    let mut n = 0;
    for (i, (field, ip)) in candidates.into_iter().enumerate() {
        let Some(ip) = ip else { continue };
        if candidates[..i].iter().any(|(_, seen)| *seen == Some(ip)) {
            continue;
        }
        if let Some(indicator) = list.lookup(ip) {
            found[n] = Some(ThreatMatch {
                ip: rec.get(field).unwrap_or_default(),
                v6: ip.is_ipv6(),
                field,
                indicator,
            });
            n += 1;
        }
    }
    n
}

/// What a REJECT record is held as, when it is: its number, its text (a line, or a
/// row's values joined) and the schema that text is read with.
#[derive(Clone, Copy)]
struct Hold<'a> {
    number: u64,
    text: &'a str,
    schema: &'a Schema,
}

/// A Parquet row: its values `spans` in `text`, one per `schema` column, and its size
/// as a text line (values and the spaces between them).
pub struct Row<'a> {
    /// 1-based over the whole object.
    pub number: u64,
    pub schema: &'a Schema,
    pub text: &'a str,
    pub spans: &'a [Span],
    pub bytes: u64,
}

impl Documents<'_> {
    /// A valid record (`original` is its input when INCLUDE_ORIGINAL is set): counted,
    /// then filtered (counted) or written as a document, enriched with its interface's
    /// details when known.
    fn accept(
        &mut self,
        rec: &FlowRecord<'_>,
        original: Option<&str>,
        id: &str,
        out: &mut Document,
        held: Hold<'_>,
    ) -> Outcome {
        self.counts.read += 1;
        if self.settings.filter.check(rec).is_some() {
            self.counts.filtered += 1;
            return Outcome::Filtered;
        }
        if self.settings.threat_intel_only {
            let mut matches = [None; 4];
            let list = self.threats.as_deref();
            if list.is_none_or(|list| find_threats(list, rec, &mut matches) == 0) {
                self.counts.filtered += 1;
                return Outcome::Filtered;
            }
        }
        let mut attribution = None;
        if let Some(attributor) = &mut self.attributor {
            match rec.get(Field::Action) {
                Some("ACCEPT") => attributor.note_accept(rec),
                Some("REJECT") => match attributor.decide_now(rec) {
                    Some(decided) => attribution = Some(decided),
                    None => {
                        let Hold {
                            number,
                            text,
                            schema,
                        } = held;
                        attributor.hold(rec, schema, number, id, text, original.is_some());
                        return Outcome::Held;
                    }
                },
                _ => {}
            }
        }
        self.write(rec, original, id, out, attribution)
    }

    /// Whether `accept` would hold `rec` (a REJECT whose mirror was not seen yet).
    fn will_hold(&self, rec: &FlowRecord<'_>) -> bool {
        self.attributor.as_ref().is_some_and(|a| {
            rec.get(Field::Action) == Some("REJECT") && a.decide_now(rec).is_none()
        })
    }

    /// Writes the document of an accepted (not filtered) record, enriched with its
    /// interface's details when known.
    fn write(
        &mut self,
        rec: &FlowRecord<'_>,
        original: Option<&str>,
        id: &str,
        out: &mut Document,
        reject_attribution: Option<RejectAttribution>,
    ) -> Outcome {
        let interface: Option<Arc<Interface>> = match &self.enrich {
            None => None,
            Some(cache) => match rec.get(Field::InterfaceId).map(|id| cache.get(id)) {
                Some(Lookup::Found(interface)) => {
                    self.counts.enriched += 1;
                    Some(interface)
                }
                Some(Lookup::Failed) => {
                    self.counts.unenriched += 1;
                    None
                }
                Some(Lookup::NotFound) | None => None,
            },
        };
        let threats = self.threats.clone();
        let mut matches = [None; 4];
        let count = threats
            .as_deref()
            .map_or(0, |list| find_threats(list, rec, &mut matches));
        if count > 0 {
            self.counts.threat_matches += 1;
        }
        let ctx = DocContext {
            event_id: id,
            origin: &self.origin,
            original,
            now: self.now,
            interface: interface.as_deref(),
            reject_attribution,
            threat_matches: &matches[..count],
        };
        match self.settings.output_schema {
            OutputSchema::Ecs => ecs::write_document(out, rec, &ctx),
            OutputSchema::Ocsf => ocsf::write_event(out, rec, &ctx),
        }
        self.counts.bytes_out += out.len() as u64;
        Outcome::Document {
            malformed: false,
            time: rec.end.or(rec.start).unwrap_or(self.now),
        }
    }

    /// A line or row that is not a valid record: its parse-failure document.
    fn failure(&mut self, raw: &str, error: &str, id: &str, out: &mut Document) -> Outcome {
        self.counts.read += 1;
        self.counts.malformed += 1;
        let ctx = DocContext {
            event_id: id,
            origin: &self.origin,
            original: None,
            now: self.now,
            interface: None,
            reject_attribution: None,
            threat_matches: &[],
        };
        match self.settings.output_schema {
            OutputSchema::Ecs => ecs::write_failure_document(out, raw, error, &ctx),
            OutputSchema::Ocsf => ocsf::write_failure_event(out, raw, error, &ctx),
        }
        self.counts.bytes_out += out.len() as u64;
        Outcome::Document {
            malformed: true,
            time: self.now,
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Lines read ahead of processing when documents are enriched, so that the interfaces
/// of many records are looked up in one EC2 call: at most this many lines...
const LOOKAHEAD_LINES: usize = 4096;
/// ...and this many bytes.
const LOOKAHEAD_BYTES: usize = 4 * 1024 * 1024;

/// What one unit reads.
pub enum UnitInput {
    /// A local file: text is streamed, Parquet read by position.
    File(std::fs::File),
    /// A stream without random access (standard input): Parquet is read into memory,
    /// up to MAX_OBJECT_BYTES.
    Stream(Box<dyn Read + Send>),
    /// An S3 object: text from the streamed GetObject body, Parquet by ranged reads
    /// (the stream is then dropped unread).
    S3 {
        body: Box<dyn Read + Send>,
        ranged: RangedObject,
    },
    /// The events of a CloudWatch Logs delivery.
    Events(Arc<LogBatch>),
}

/// Reads one unit through `unit` into `out`: sniffs text, gzip or Parquet and runs the
/// matching reader. An error ends the unit (it could not be read to its end, a limit
/// was exceeded, or `out`'s stop time came); so does a panic in any decoder, which
/// becomes that unit's error instead of failing the other units of the invocation.
pub fn run_input(
    input: UnitInput,
    unit: &mut UnitProcessor<'_>,
    limits: Limits,
    out: &mut Output<'_>,
) -> Result<(), String> {
    let run = std::panic::AssertUnwindSafe(|| read_input(input, unit, limits, out));
    let read = catch_panic(run);
    // The held REJECT records leave, decided on what was read (as the documents of the
    // records before a read error do).
    let released = out.release_held(unit);
    read.and(released)
}

/// The result of `run`, or a panic in it as an error.
fn catch_panic(
    run: std::panic::AssertUnwindSafe<impl FnOnce() -> Result<(), String>>,
) -> Result<(), String> {
    match std::panic::catch_unwind(run) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".to_string());
            tracing::error!(panic = %crate::flowlog::record::shorten(&what), "a decoder panicked; the unit is failed");
            Err(format!(
                "internal error while decoding (the input is likely corrupt): {}",
                crate::flowlog::record::shorten(&what)
            ))
        }
    }
}

fn read_input(
    input: UnitInput,
    unit: &mut UnitProcessor<'_>,
    limits: Limits,
    out: &mut Output<'_>,
) -> Result<(), String> {
    let (stream, random_access): (Box<dyn Read + Send>, Option<ParquetInput>) = match input {
        UnitInput::Events(batch) => return run_events(&batch, unit, out),
        UnitInput::File(file) => {
            let again = file.try_clone().map_err(|e| e.to_string())?;
            (Box::new(file), Some(ParquetInput::File(again)))
        }
        UnitInput::Stream(stream) => (stream, None),
        UnitInput::S3 { body, ranged } => (body, Some(ParquetInput::S3(ranged))),
    };
    let (compression, stream) = source::sniff_reader(stream).map_err(|e| e.to_string())?;
    if compression != Compression::Parquet {
        let mut lines = source::open_lines(stream, limits).map_err(|e| e.to_string())?;
        return run_lines(&mut lines, unit, out);
    }
    match random_access {
        Some(ParquetInput::File(mut file)) => {
            use std::io::Seek;
            file.rewind().map_err(|e| e.to_string())?;
            run_parquet(file, unit, limits, out)
        }
        Some(ParquetInput::S3(ranged)) => {
            drop(stream);
            run_parquet(ranged, unit, limits, out)
        }
        None => {
            // No random access (standard input): the object in memory, within the limit.
            let mut data = Vec::new();
            stream
                .take(limits.max_decompressed_bytes + 1)
                .read_to_end(&mut data)
                .map_err(|e| e.to_string())?;
            if data.len() as u64 > limits.max_decompressed_bytes {
                return Err(format!(
                    "input exceeds the maximum size of {} bytes (MAX_OBJECT_BYTES)",
                    limits.max_decompressed_bytes
                ));
            }
            run_parquet(bytes::Bytes::from(data), unit, limits, out)
        }
    }
}

/// Where a Parquet object is read by position.
enum ParquetInput {
    File(std::fs::File),
    S3(RangedObject),
}

/// The events of a CloudWatch Logs delivery, each a record whose id is the event's.
fn run_events(
    batch: &LogBatch,
    unit: &mut UnitProcessor<'_>,
    out: &mut Output<'_>,
) -> Result<(), String> {
    // The batch is in memory: its interfaces are looked up together, up front.
    if let Some(cache) = &unit.docs.enrich {
        let ids = unit.interface_ids(batch.events().iter().map(|e| e.message.as_bytes()));
        let runtime = tokio::runtime::Handle::try_current().ok();
        prefetch_blocking(cache, runtime.as_ref(), ids.iter().map(String::as_str));
    }
    for (i, event) in batch.events().iter().enumerate() {
        let number = i as u64 + 1;
        out.check_stop("event", number)?;
        let outcome = unit.process_event(number, &event.message, &event.id, &mut out.doc);
        out.take(unit, outcome)?;
    }
    Ok(())
}

/// Reads every line of `lines` through `unit` into `out`. An error ends the unit: the
/// input could not be read to its end.
fn run_lines(
    lines: &mut crate::source::LineReader,
    unit: &mut UnitProcessor<'_>,
    out: &mut Output<'_>,
) -> Result<(), String> {
    if unit.docs.enrich.is_some() {
        return run_lines_looking_ahead(lines, unit, out);
    }
    let mut last_line = 0;
    loop {
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("after line {last_line}: {e}")),
        };
        last_line = line.number;
        out.add_line(unit, &line)?;
    }
}

/// `run_lines` for enriched documents: the interfaces of up to LOOKAHEAD_LINES lines
/// are looked up before those lines are processed.
fn run_lines_looking_ahead(
    lines: &mut crate::source::LineReader,
    unit: &mut UnitProcessor<'_>,
    out: &mut Output<'_>,
) -> Result<(), String> {
    let mut held: Vec<u8> = Vec::new();
    // (line number, start, end, full length when too long)
    let mut ranges: Vec<(u64, usize, usize, Option<u64>)> = Vec::new();
    let mut last_line = 0;
    loop {
        held.clear();
        ranges.clear();
        let mut end = Ok(false);
        while ranges.len() < LOOKAHEAD_LINES && held.len() < LOOKAHEAD_BYTES {
            match lines.next_line() {
                Ok(Some(line)) => {
                    last_line = line.number;
                    let start = held.len();
                    held.extend_from_slice(line.bytes);
                    ranges.push((line.number, start, held.len(), line.too_long));
                }
                Ok(None) => {
                    end = Ok(true);
                    break;
                }
                Err(e) => {
                    end = Err(format!("after line {last_line}: {e}"));
                    break;
                }
            }
        }
        if let Some(cache) = &unit.docs.enrich {
            let ids = unit.interface_ids(ranges.iter().map(|&(_, s, e, _)| &held[s..e]));
            let runtime = tokio::runtime::Handle::try_current().ok();
            prefetch_blocking(cache, runtime.as_ref(), ids.iter().map(String::as_str));
        }
        for &(number, start, stop, too_long) in &ranges {
            let line = SourceLine {
                number,
                bytes: &held[start..stop],
                too_long,
            };
            out.add_line(unit, &line)?;
        }
        // Lines read before an error are processed; then the error ends the unit.
        if end? {
            return Ok(());
        }
    }
}

/// A Parquet row as a line: its values (`spans` in `text`) joined by single spaces,
/// cut at `max` bytes (at a character boundary).
fn row_line(text: &str, spans: &[Span], max: usize) -> String {
    let mut line = String::new();
    for (i, &(s, e)) in spans.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(text.get(s as usize..e as usize).unwrap_or_default());
        if line.len() >= max {
            let mut end = max;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            break;
        }
    }
    line
}

/// Reads every row of a Parquet object through `unit` into `out`, as `run_lines`,
/// row group by row group: a decoded batch never spans two, so a damaged row group
/// fails the object after the rows before it went out. When enriching, the interfaces
/// of each decoded batch of rows are looked up before its rows.
fn run_parquet<R: ChunkReader + 'static>(
    reader: R,
    unit: &mut UnitProcessor<'_>,
    limits: Limits,
    out: &mut Output<'_>,
) -> Result<(), String> {
    let mut expansion = Expansion {
        text: 0,
        object: reader.len(),
        limits,
    };
    if unit.seed.hash_content {
        unit.seed = unit.seed.bound_to(digest(&reader)?);
    }
    let object = ParquetObject::open(reader, limits)?;
    let runtime = tokio::runtime::Handle::try_current().ok();
    for group in 0..object.row_groups() {
        read_row_group(&object, group, unit, out, &mut expansion, runtime.as_ref())?;
    }
    Ok(())
}

/// The xxh3 digest of a whole object read by position (a local Parquet file or
/// standard input in memory), 8 MiB at a time.
fn digest<R: ChunkReader>(reader: &R) -> Result<u128, String> {
    const CHUNK: u64 = 8 << 20;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut at = 0;
    while at < reader.len() {
        let n = CHUNK.min(reader.len() - at);
        let bytes = reader
            .get_bytes(at, n as usize)
            .map_err(|e| format!("reading the object: {e}"))?;
        hasher.update(&bytes);
        at += n;
    }
    Ok(hasher.digest128())
}

/// The text a Parquet object expands to (its rows as lines), held to MAX_OBJECT_BYTES
/// and to MAX_DECOMPRESSION_RATIO times the object's size (past the first MiB), as the
/// decompressed text of a gzip object is.
struct Expansion {
    text: u64,
    object: u64,
    limits: Limits,
}

impl Expansion {
    fn add(&mut self, row: u64, bytes: u64) -> Result<(), String> {
        self.text += bytes + 1;
        if self.text > self.limits.max_decompressed_bytes {
            return Err(format!(
                "at row {row}: the object expands to more than {} bytes of text (MAX_OBJECT_BYTES)",
                self.limits.max_decompressed_bytes
            ));
        }
        if self.limits.ratio_exceeded(self.text, self.object) {
            return Err(format!(
                "at row {row}: the object expands more than {}:1 into text (MAX_DECOMPRESSION_RATIO): refusing a likely decompression bomb",
                self.limits.max_ratio
            ));
        }
        Ok(())
    }
}

/// Reads one row group of `object` through `unit` into `out`.
fn read_row_group<R: ChunkReader + 'static>(
    object: &ParquetObject<R>,
    group: usize,
    unit: &mut UnitProcessor<'_>,
    out: &mut Output<'_>,
    expansion: &mut Expansion,
    runtime: Option<&tokio::runtime::Handle>,
) -> Result<(), String> {
    let enrich = unit.docs.enrich.clone();
    let max_line_bytes = expansion.limits.max_line_bytes;
    object.read_row_group(
        group,
        |ids| {
            if let Some(cache) = &enrich {
                prefetch_blocking(cache, runtime, ids);
            }
        },
        |number, schema, text, spans, bytes| {
            out.check_stop("row", number)?;
            expansion.add(number, bytes)?;
            let row = Row {
                number,
                schema,
                text,
                spans,
                bytes,
            };
            let outcome = unit.process_columns(&row, max_line_bytes, &mut out.doc);
            out.take(unit, outcome)
        },
    )
}

/// `EniCache::prefetch` from a thread that may block (an object's reader thread), on
/// `runtime` (the one that thread belongs to).
fn prefetch_blocking<'a>(
    cache: &EniCache,
    runtime: Option<&tokio::runtime::Handle>,
    ids: impl IntoIterator<Item = &'a str>,
) {
    match runtime {
        Some(runtime) => runtime.block_on(cache.prefetch(ids)),
        None => tracing::warn!("no async runtime: interfaces not looked up"),
    }
}

/// Where a unit's documents go: the shared batch, handed to `emit` when full.
pub struct Output<'a> {
    unit_index: u32,
    limits: &'a BatchLimits,
    batch: &'a mut Batch,
    emit: &'a mut dyn FnMut(Batch) -> bool,
    /// When to stop reading (the invocation deadline less its margin).
    stop_at: Option<Instant>,
    /// Records since the stop time was last looked at.
    since_check: u32,
    /// The document being built.
    doc: Document,
}

impl<'a> Output<'a> {
    /// Documents of unit `unit_index` go into `batch`; `emit` takes each full batch
    /// (and answers false when nobody takes batches any more). The last, partial batch
    /// stays in `batch` for the caller, so units of one run share batches.
    pub fn new(
        unit_index: u32,
        limits: &'a BatchLimits,
        batch: &'a mut Batch,
        emit: &'a mut dyn FnMut(Batch) -> bool,
    ) -> Output<'a> {
        Output {
            unit_index,
            limits,
            batch,
            emit,
            stop_at: None,
            since_check: 0,
            doc: Document::new(),
        }
    }

    /// Reading stops with an error at `stop_at`: the unit is then reported failed (its
    /// retry is idempotent through event.id) instead of overrunning the deadline.
    pub fn stop_at(mut self, stop_at: Option<Instant>) -> Output<'a> {
        self.stop_at = stop_at;
        self
    }

    /// An error once the stop time has come (looked at every few records).
    fn check_stop(&mut self, what: &str, number: u64) -> Result<(), String> {
        let Some(stop_at) = self.stop_at else {
            return Ok(());
        };
        self.since_check += 1;
        if self.since_check < STOP_CHECK_EVERY {
            return Ok(());
        }
        self.since_check = 0;
        if Instant::now() >= stop_at {
            return Err(format!(
                "stopped reading at {what} {number}: the invocation deadline is near (DEADLINE_MARGIN_MS); the unit will be retried"
            ));
        }
        Ok(())
    }

    fn add_line(
        &mut self,
        unit: &mut UnitProcessor<'_>,
        line: &SourceLine<'_>,
    ) -> Result<(), String> {
        self.check_stop("line", line.number)?;
        let outcome = unit.process_line(line, &mut self.doc);
        self.take(unit, outcome)
    }

    /// Takes what `unit` made of a record: the document in `doc` when it wrote one;
    /// the held REJECT records when they reached their cap.
    fn take(&mut self, unit: &mut UnitProcessor<'_>, outcome: Outcome) -> Result<(), String> {
        if let Outcome::Document { time, .. } = outcome {
            let meta = DocMeta {
                unit: self.unit_index,
                time,
                id: unit.event_id(),
            };
            add_document(
                self.batch,
                self.limits,
                self.emit,
                self.doc.as_bytes(),
                meta,
            )?;
        }
        if outcome == Outcome::Held && unit.must_release() {
            self.release_held(unit)?;
        }
        Ok(())
    }

    /// Adds the documents of `unit`'s held REJECT records.
    fn release_held(&mut self, unit: &mut UnitProcessor<'_>) -> Result<(), String> {
        let unit_index = self.unit_index;
        unit.release_held(&mut self.doc, |doc, id, time| {
            let meta = DocMeta {
                unit: unit_index,
                time,
                id,
            };
            add_document(self.batch, self.limits, self.emit, doc.as_bytes(), meta)
        })
    }
}

/// How many records are read between two looks at the clock for the stop time.
const STOP_CHECK_EVERY: u32 = 64;

/// Adds a document to `batch`, first handing the batch to `emit` when the document
/// would push it past a limit.
fn add_document(
    batch: &mut Batch,
    limits: &BatchLimits,
    emit: &mut dyn FnMut(Batch) -> bool,
    doc: &[u8],
    meta: DocMeta<'_>,
) -> Result<(), String> {
    if batch.would_overflow(limits, doc.len()) && !emit(std::mem::take(batch)) {
        return Err("delivery stopped".to_string());
    }
    batch.push(doc, meta, limits);
    Ok(())
}
