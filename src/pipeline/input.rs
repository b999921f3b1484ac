//! Reading one unit through a `UnitProcessor`: its input sniffed (text, gzip or
//! Parquet) and read line by line, row by row, or event by event, with lookahead for
//! ENI enrichment, the decompression limits, and a decoder panic caught as the unit's
//! error.

use std::io::Read;
use std::sync::Arc;

use parquet::file::reader::ChunkReader;

use super::output::Output;
use super::unit::{Row, UnitProcessor};
use super::ReadError;
use crate::enrich::EniCache;
use crate::source::parquet::ParquetObject;
use crate::source::s3::RangedObject;
use crate::source::{self, Compression, Limits, SourceLine};
use crate::trigger::LogBatch;

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
) -> Result<(), ReadError> {
    let run = std::panic::AssertUnwindSafe(|| read_input(input, unit, limits, out));
    let read = catch_panic(run);
    // The held REJECT records leave, decided on what was read (as the documents of the
    // records before a read error do).
    let released = out.release_held(unit, true);
    // Then the aggregates, REJECTs just released among their records.
    let flushed = out.flush_aggregates(unit);
    read.and(released).and(flushed)
}

/// The result of `run`, or a panic in it as an error.
fn catch_panic(
    run: std::panic::AssertUnwindSafe<impl FnOnce() -> Result<(), ReadError>>,
) -> Result<(), ReadError> {
    match std::panic::catch_unwind(run) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".to_string());
            tracing::error!(panic = %crate::text::shorten(&what), "a decoder panicked; the unit is failed");
            Err(ReadError::Panicked(crate::text::shorten(&what)))
        }
    }
}

fn read_input(
    input: UnitInput,
    unit: &mut UnitProcessor<'_>,
    limits: Limits,
    out: &mut Output<'_>,
) -> Result<(), ReadError> {
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
                return Err(ReadError::Input(format!(
                    "input exceeds the maximum size of {} bytes (MAX_OBJECT_BYTES)",
                    limits.max_decompressed_bytes
                )));
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
) -> Result<(), ReadError> {
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
) -> Result<(), ReadError> {
    if unit.docs.enrich.is_some() {
        return run_lines_looking_ahead(lines, unit, out);
    }
    let mut last_line = 0;
    loop {
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(()),
            Err(e) => return Err(ReadError::Input(format!("after line {last_line}: {e}"))),
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
) -> Result<(), ReadError> {
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

/// Reads every row of a Parquet object through `unit` into `out`, as `run_lines`,
/// row group by row group: a decoded batch never spans two, so a damaged row group
/// fails the object after the rows before it went out. When enriching, the interfaces
/// of each decoded batch of rows are looked up before its rows.
fn run_parquet<R: ChunkReader + 'static>(
    reader: R,
    unit: &mut UnitProcessor<'_>,
    limits: Limits,
    out: &mut Output<'_>,
) -> Result<(), ReadError> {
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
) -> Result<(), ReadError> {
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
