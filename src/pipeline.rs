//! The record path of one work unit (an S3 object, a file, a CloudWatch batch):
//! line -> parse -> filter -> normalize into a document buffer, with the unit's
//! counts and deterministic event ids. Used alike by the CLI and the Lambda handler.

use serde::Serialize;

use crate::ecs::{self, DocContext, Origin};
use crate::filter::Filter;
use crate::flowlog::{FlowRecord, Line, LineParser, Schema, Span};
use crate::sink::{Batch, BatchLimits, DocMeta};
use crate::source::SourceLine;

/// Counters of a unit or an invocation. Every record read is forwarded, filtered or
/// failed: `read == forwarded + filtered + failed`. `malformed` records are forwarded
/// as parse-failure documents and so are counted in `forwarded` too.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub read: u64,
    pub forwarded: u64,
    pub filtered: u64,
    pub malformed: u64,
    pub failed: u64,
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
    /// A document was appended to the output buffer; `malformed` when it is the
    /// parse-failure document; `time` is its `@timestamp` in Unix seconds. Its
    /// `event.id` is `UnitProcessor::event_id`.
    Document { malformed: bool, time: u64 },
}

/// Where the deterministic event ids of a unit come from.
#[derive(Debug, Clone, Copy)]
pub struct IdSeed(u128);

impl IdSeed {
    /// A seed from the identity of the input (`s3`, bucket, key, version or etag...).
    /// The id of a record is then a hash of this seed and its line number, so the same
    /// record always gets the same id and retries are idempotent.
    pub fn new(parts: &[&str]) -> IdSeed {
        let mut bytes = Vec::new();
        for p in parts {
            bytes.extend_from_slice(&(p.len() as u64).to_le_bytes());
            bytes.extend_from_slice(p.as_bytes());
        }
        IdSeed(xxhash_rust::xxh3::xxh3_128(&bytes))
    }

    fn id(&self, line: u64, out: &mut String) {
        let mut bytes = [0u8; 24];
        bytes[..16].copy_from_slice(&self.0.to_le_bytes());
        bytes[16..].copy_from_slice(&line.to_le_bytes());
        let h = xxhash_rust::xxh3::xxh3_128(&bytes);
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

/// Settings shared by every unit of a run.
#[derive(Debug, Clone)]
pub struct RecordSettings {
    /// Schema for inputs without a header line (LOG_FORMAT or the default).
    pub schema: Schema,
    pub filter: Filter,
    pub include_original: bool,
}

/// Processes the lines of one unit.
pub struct UnitProcessor<'s> {
    settings: &'s RecordSettings,
    parser: LineParser,
    origin: Origin,
    seed: IdSeed,
    now: u64,
    id: String,
    pub counts: Counts,
}

impl<'s> UnitProcessor<'s> {
    pub fn new(settings: &'s RecordSettings, origin: Origin, seed: IdSeed) -> UnitProcessor<'s> {
        UnitProcessor {
            parser: LineParser::new(settings.schema.clone()),
            settings,
            origin,
            seed,
            now: unix_now(),
            id: String::with_capacity(40),
            counts: Counts::default(),
        }
    }

    /// Processes a line of a file or object; its id derives from the line number.
    pub fn process_line(&mut self, line: &SourceLine<'_>, out: &mut Vec<u8>) -> Outcome {
        self.seed.id(line.number, &mut self.id);
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
        out: &mut Vec<u8>,
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

    fn process(
        &mut self,
        number: u64,
        bytes: &[u8],
        too_long: Option<u64>,
        id: &str,
        out: &mut Vec<u8>,
    ) -> Outcome {
        self.counts.bytes_in += bytes.len() as u64;
        if let Some(len) = too_long {
            let raw = String::from_utf8_lossy(bytes);
            let error = format!(
                "line {number}: {len} bytes, longer than the maximum of {} (MAX_LINE_BYTES); event.original holds its start",
                bytes.len()
            );
            return self.failure(&raw, &error, id, out);
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let raw = String::from_utf8_lossy(bytes);
                let error = format!("line {number}: not valid UTF-8 ({e})");
                return self.failure(&raw, &error, id, out);
            }
        };
        let ctx = DocContext {
            event_id: id,
            origin: &self.origin,
            original: self.settings.include_original.then_some(text),
            now: self.now,
        };
        match self.parser.parse(text) {
            Line::Blank | Line::Header => Outcome::Skipped,
            Line::Record(rec) => accept(&mut self.counts, &self.settings.filter, &rec, &ctx, out),
            Line::Invalid(e) => {
                let error = format!("line {number}: {e}");
                self.failure(text, &error, id, out)
            }
        }
    }

    /// Processes one record whose values are already split (a Parquet row): `text` is
    /// the row as a line, `spans` its values, one per `schema` column. Its id derives
    /// from the row number as a line's from its line number.
    pub fn process_columns(
        &mut self,
        number: u64,
        schema: &Schema,
        text: &str,
        spans: &[Span],
        out: &mut Vec<u8>,
    ) -> Outcome {
        self.seed.id(number, &mut self.id);
        let id = std::mem::take(&mut self.id);
        self.counts.bytes_in += text.len() as u64;
        let outcome = match FlowRecord::from_spans(text, schema, spans) {
            Ok(rec) => {
                let ctx = DocContext {
                    event_id: &id,
                    origin: &self.origin,
                    original: self.settings.include_original.then_some(text),
                    now: self.now,
                };
                accept(&mut self.counts, &self.settings.filter, &rec, &ctx, out)
            }
            Err(e) => self.failure(text, &format!("row {number}: {e}"), &id, out),
        };
        self.id = id;
        outcome
    }

    fn failure(&mut self, raw: &str, error: &str, id: &str, out: &mut Vec<u8>) -> Outcome {
        self.counts.read += 1;
        self.counts.malformed += 1;
        let ctx = DocContext {
            event_id: id,
            origin: &self.origin,
            original: None,
            now: self.now,
        };
        let start = out.len();
        ecs::write_failure_document(out, raw, error, &ctx);
        self.counts.bytes_out += (out.len() - start) as u64;
        Outcome::Document {
            malformed: true,
            time: self.now,
        }
    }
}

/// A valid record: counted, then filtered (counted) or written as a document.
fn accept(
    counts: &mut Counts,
    filter: &Filter,
    rec: &FlowRecord<'_>,
    ctx: &DocContext<'_>,
    out: &mut Vec<u8>,
) -> Outcome {
    counts.read += 1;
    if filter.check(rec).is_some() {
        counts.filtered += 1;
        return Outcome::Filtered;
    }
    let start = out.len();
    ecs::write_document(out, rec, ctx);
    counts.bytes_out += (out.len() - start) as u64;
    Outcome::Document {
        malformed: false,
        time: rec.end.or(rec.start).unwrap_or(ctx.now),
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads every line of `lines` through `unit` into `batch`, handing each full batch to
/// `emit` (which answers false when nobody takes batches any more). The last, partial
/// batch stays in `batch` for the caller, so units of one run share batches.
/// An error ends the unit: the input could not be read to its end.
pub fn run_lines(
    lines: &mut crate::source::LineReader,
    unit: &mut UnitProcessor<'_>,
    unit_index: u32,
    limits: &BatchLimits,
    batch: &mut Batch,
    emit: &mut dyn FnMut(Batch) -> bool,
) -> Result<(), String> {
    let mut doc = Vec::with_capacity(4096);
    let mut last_line = 0;
    loop {
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("after line {last_line}: {e}")),
        };
        last_line = line.number;
        doc.clear();
        if let Outcome::Document { time, .. } = unit.process_line(&line, &mut doc) {
            let meta = DocMeta {
                unit: unit_index,
                time,
                id: unit.event_id(),
            };
            add_document(batch, limits, emit, &doc, meta)?;
        }
    }
}

/// Reads every row of a Parquet object through `unit` into `batch`, as `run_lines`.
pub fn run_parquet<R: parquet::file::reader::ChunkReader + 'static>(
    reader: R,
    unit: &mut UnitProcessor<'_>,
    unit_index: u32,
    limits: &BatchLimits,
    batch: &mut Batch,
    emit: &mut dyn FnMut(Batch) -> bool,
) -> Result<(), String> {
    let mut doc = Vec::with_capacity(4096);
    crate::source::parquet::read_rows(reader, |number, schema, text, spans| {
        doc.clear();
        if let Outcome::Document { time, .. } =
            unit.process_columns(number, schema, text, spans, &mut doc)
        {
            let meta = DocMeta {
                unit: unit_index,
                time,
                id: unit.event_id(),
            };
            add_document(batch, limits, emit, &doc, meta)?;
        }
        Ok(())
    })
}

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
