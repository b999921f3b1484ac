//! The limits of hostile input applied to Parquet objects, before the parquet crate
//! allocates by what a file declares: the footer's size and every length in it, each
//! page header's sizes (a page at most PAGE_CAP decompressed, within the decompression
//! ratio, its gzip trailer agreeing), the pages one row group holds at once, and the
//! bytes a decoded batch of rows may take (which sets the rows per batch). The text an
//! object expands to is bounded by the caller (`pipeline`), as for text objects.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parquet::basic::Compression as Codec;
use parquet::errors::ParquetError;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::reader::{ChunkReader, Length};

use super::thrift::{self, Compact, PageHeader};
use super::Limits;

/// Longest footer (file metadata) accepted: AWS footers take a few KB a row group.
const FOOTER_CAP: u64 = 4 << 20;

/// Most bytes one page may decompress to (or MAX_LINE_BYTES, when larger): writers
/// cut pages at 1 MiB.
const PAGE_CAP: u64 = 8 << 20;

/// Most bytes the largest pages of a row group's columns may take together: what its
/// column readers hold at once.
const HELD_PAGES_BUDGET: u64 = 48 << 20;

/// Most bytes a decoded batch of rows may take, as the pages declare them.
const BATCH_BUDGET: u64 = 16 << 20;

/// Reads the footer's declared length and checks it and every length in it.
pub fn check_footer<R: ChunkReader>(reader: &R) -> Result<(), String> {
    let len = reader.len();
    if len < 12 {
        return Err(format!("{len} bytes: too short for a Parquet file"));
    }
    let tail = reader
        .get_bytes(len - 8, 8)
        .map_err(|e| format!("reading the footer: {e}"))?;
    if &tail[4..] != b"PAR1" {
        return Err("no PAR1 magic at the end: not a Parquet file, or truncated".to_string());
    }
    let declared = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if declared > FOOTER_CAP || declared + 8 > len - 4 {
        return Err(format!(
            "the footer declares {declared} bytes of metadata (at most {FOOTER_CAP}, within the file's {len} bytes)"
        ));
    }
    let footer = reader
        .get_bytes(len - 8 - declared, declared as usize)
        .map_err(|e| format!("reading the footer: {e}"))?;
    Compact::new(&footer)
        .skip(thrift::STRUCT)
        .map_err(|e| format!("the footer is corrupt: {e}"))
}

/// Checks a row group's declared shape: every (flat) column holds one value per row.
pub fn check_row_group(group: &RowGroupMetaData, index: usize) -> Result<(), String> {
    let rows = group.num_rows();
    if rows < 0 {
        return Err(format!("row group {index} declares {rows} rows"));
    }
    for chunk in group.columns() {
        if chunk.num_values() != rows {
            return Err(format!(
                "row group {index} declares {rows} rows but its column '{}' {} values",
                chunk.column_path().string(),
                chunk.num_values()
            ));
        }
        if chunk.compressed_size() < 0 || chunk.uncompressed_size() < 0 {
            return Err(format!(
                "row group {index}: column '{}' declares a negative size",
                chunk.column_path().string()
            ));
        }
    }
    Ok(())
}

/// Rows per decoded batch for a row group: `preferred`, or fewer when its rows are
/// large (as its columns declare them, on average), so that a batch stays within
/// BATCH_BUDGET. The pages are then held to it one by one (`PageGuard`).
pub fn batch_rows(group: &RowGroupMetaData, preferred: usize) -> usize {
    let rows = group.num_rows().max(1) as u64;
    let row_bytes = group
        .columns()
        .iter()
        .map(|c| c.uncompressed_size().max(0) as u64)
        .sum::<u64>()
        / rows;
    let fit = (BATCH_BUDGET / 2) / row_bytes.max(1);
    (fit as usize).clamp(1, preferred)
}

/// An object's reader for one row group, checking each page header as the column
/// readers come to it, before they read or decompress the page.
pub struct GuardedReader<R> {
    inner: Arc<R>,
    guard: Arc<Mutex<PageGuard>>,
}

impl<R> Clone for GuardedReader<R> {
    fn clone(&self) -> Self {
        GuardedReader {
            inner: self.inner.clone(),
            guard: self.guard.clone(),
        }
    }
}

/// What one row group's pages may be, and the largest seen so far per column.
pub struct PageGuard {
    /// Each column chunk's byte range, name and codec.
    chunks: Vec<Chunk>,
    page_cap: u64,
    limits: Limits,
    batch_rows: u64,
    /// The page whose data comes next, when it is gzip: where, its compressed size
    /// and what its trailer must say.
    pending_gzip: Option<(u64, usize, u32)>,
    /// Where the data of the page whose header was checked last starts (a reader that
    /// peeked at a header asks for a reader from there).
    last_data_start: Option<u64>,
}

struct Chunk {
    start: u64,
    end: u64,
    name: String,
    codec: Codec,
    largest_page: u64,
    dictionary: u64,
    row_bytes: u64,
}

impl<R: ChunkReader> GuardedReader<R> {
    /// The reader of row group `group` of the object `inner`, read in batches of
    /// `batch_rows` rows.
    pub fn new(inner: Arc<R>, group: &RowGroupMetaData, batch_rows: usize, limits: Limits) -> Self {
        let chunks = group
            .columns()
            .iter()
            .map(|c| {
                let (start, len) = c.byte_range();
                Chunk {
                    start,
                    end: start.saturating_add(len),
                    name: c.column_path().string(),
                    codec: c.compression(),
                    largest_page: 0,
                    dictionary: 0,
                    row_bytes: 0,
                }
            })
            .collect();
        let guard = PageGuard {
            chunks,
            page_cap: PAGE_CAP.max(limits.max_line_bytes as u64),
            limits,
            batch_rows: batch_rows as u64,
            pending_gzip: None,
            last_data_start: None,
        };
        GuardedReader {
            inner,
            guard: Arc::new(Mutex::new(guard)),
        }
    }
}

impl PageGuard {
    /// Checks the page header `h` found at `at`.
    fn check(&mut self, at: u64, h: &PageHeader) -> Result<(), String> {
        let Some(j) = self.chunks.iter().position(|c| c.start <= at && at < c.end) else {
            return Err(format!("a page at offset {at} lies in no column chunk"));
        };
        let name = self.chunks[j].name.clone();
        let fail = |what: String| Err(format!("column '{name}', page at offset {at}: {what}"));
        if h.uncompressed_size < 0 || h.compressed_size < 0 || h.num_values < 0 {
            return fail("negative sizes".to_string());
        }
        let (size, compressed) = (h.uncompressed_size as u64, h.compressed_size as u64);
        if size > self.page_cap {
            return fail(format!(
                "decompresses to {size} bytes, more than a page may ({} bytes)",
                self.page_cap
            ));
        }
        if self.limits.ratio_exceeded(size, compressed) {
            return fail(format!(
                "decompression ratio over {}:1 (MAX_DECOMPRESSION_RATIO)",
                self.limits.max_ratio
            ));
        }
        let chunk = &mut self.chunks[j];
        match h.page_type {
            thrift::DICTIONARY_PAGE => chunk.dictionary = chunk.dictionary.max(size),
            thrift::DATA_PAGE | thrift::DATA_PAGE_V2 => {
                chunk.largest_page = chunk.largest_page.max(size);
                let per_row = size.div_ceil(h.num_values.max(1) as u64);
                chunk.row_bytes = chunk.row_bytes.max(per_row);
            }
            _ => {}
        }
        let held: u64 = self
            .chunks
            .iter()
            .map(|c| c.largest_page + c.dictionary)
            .sum();
        if held > HELD_PAGES_BUDGET {
            return fail(format!(
                "the row group's pages would hold {held} bytes at once (at most {HELD_PAGES_BUDGET})"
            ));
        }
        let batch: u64 = self.chunks.iter().map(|c| c.row_bytes).sum::<u64>() * self.batch_rows;
        if batch > BATCH_BUDGET {
            return fail(format!(
                "its rows take {} bytes each: a batch of {} rows would hold {batch} bytes (at most {BATCH_BUDGET})",
                self.chunks[j].row_bytes, self.batch_rows
            ));
        }
        let data_start = at + h.header_len as u64;
        self.last_data_start = Some(data_start);
        let compressed_values = h.page_type != thrift::DATA_PAGE_V2 || h.v2_compressed;
        let gzip = matches!(self.chunks[j].codec, Codec::GZIP(_));
        self.pending_gzip = (gzip && compressed_values && compressed > 18).then(|| {
            let values = size.saturating_sub(h.levels_size.max(0) as u64);
            (data_start, compressed as usize, values as u32)
        });
        Ok(())
    }

    /// Checks the data of the page whose header was checked last, when it is gzip: its
    /// trailer states the size it decompresses to, which must be the declared one.
    fn check_data(&mut self, start: u64, data: &Bytes) -> Result<(), String> {
        let Some((at, len, expected)) = self.pending_gzip.take() else {
            return Ok(());
        };
        if at != start || len != data.len() {
            return Ok(());
        }
        let trailer = &data[data.len() - 4..];
        let stated = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        if stated != expected {
            return Err(format!(
                "a gzip page at offset {start} decompresses to {stated} bytes, not the {expected} its header declares"
            ));
        }
        Ok(())
    }
}

impl<R: ChunkReader> Length for GuardedReader<R> {
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

/// Longest page header read ahead; one that needs more is refused.
const MAX_PAGE_HEADER: u64 = 1 << 20;

impl<R: ChunkReader> ChunkReader for GuardedReader<R> {
    type T = Cursor<Bytes>;

    /// The column readers read a page header from here: it is checked first.
    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        let len = self.inner.len();
        let mut want = 64 * 1024;
        loop {
            let take = want.min(len.saturating_sub(start));
            let bytes = self.inner.get_bytes(start, take as usize)?;
            let mut guard = self
                .guard
                .lock()
                .map_err(|_| ParquetError::General("page guard poisoned".into()))?;
            if guard.last_data_start == Some(start) {
                // The data of a page whose header was checked (and peeked at).
                return Ok(Cursor::new(bytes));
            }
            match thrift::page_header(&bytes) {
                Ok(header) => {
                    guard.check(start, &header).map_err(ParquetError::General)?;
                    return Ok(Cursor::new(bytes));
                }
                Err(e) if take < want || want >= MAX_PAGE_HEADER => {
                    return Err(ParquetError::General(format!(
                        "page header at offset {start}: {e}"
                    )))
                }
                Err(_) => want *= 4,
            }
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        let bytes = self.inner.get_bytes(start, length)?;
        let mut guard = self
            .guard
            .lock()
            .map_err(|_| ParquetError::General("page guard poisoned".into()))?;
        guard
            .check_data(start, &bytes)
            .map_err(ParquetError::General)?;
        Ok(bytes)
    }
}
