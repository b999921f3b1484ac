//! Parquet flow log objects (`FileFormat: parquet`, `*.log.parquet`): the footer is read
//! once, then row groups are read one at a time with the parquet crate's Arrow reader,
//! in batches of rows, so memory is bounded by what the row groups being read need, not
//! by the object. Each batch is decoded into text values with spans, column by column
//! (dictionary-encoded string columns as dictionaries, each distinct value decoded once,
//! other string columns as views into the decoded pages; a value repeating the row
//! before's shares its text), on a thread of its own (one batch ahead, at most) when
//! there is more than one CPU. Each row is handed to the caller as those spans, exactly
//! as a text line's columns, so that the same record gives the same document whichever
//! format it came in.
//!
//! Columns are the flow log field names with `_` for `-` (`account_id`, `log_status`);
//! physical types INT32, INT64 or BYTE_ARRAY (string); null is absent (`-`). Unknown
//! columns pass through like unknown text fields.

use std::sync::{mpsc, Arc};

use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::basic::{Encoding, PageType, Type as PhysicalType};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::reader::ChunkReader;

use crate::flowlog::{Column, Field, Kind, Schema, Span};
use crate::source::parquet_limits::{self, GuardedReader};
use crate::source::parquet_text::{Sheet, Values};
use crate::source::Limits;

/// Rows decoded per batch on a thread of its own (memory: one batch of every column,
/// and three batches of text values: the one being read, the next one decoded, one
/// being decoded). A v5 batch's text and spans take about 0.4 MB, so they stay in
/// cache between being written and being read: faster than 2,048 rows (twice that) or
/// 512 (more arrays allocated), measured on two cores (BENCHMARKS.md).
const BATCH_ROWS_AHEAD: usize = 1024;

/// Rows decoded per batch on the thread that reads the rows (one CPU): each batch
/// costs the reader a fixed amount, and its text is read right after being written.
const BATCH_ROWS: usize = 2048;

/// A Parquet object whose footer was read and whose columns were checked.
pub struct ParquetObject<R> {
    reader: Arc<R>,
    metadata: ArrowReaderMetadata,
    schema: Schema,
    names: Vec<String>,
    interface_column: Option<usize>,
    /// Whether batches are decoded on a thread of their own (more than one CPU).
    decode_ahead: bool,
    /// Rows before each row group: row numbers run on over the whole object.
    rows_before: Vec<u64>,
    limits: Limits,
}

impl<R: ChunkReader + 'static> ParquetObject<R> {
    /// Reads the footer and checks every column (flat, a known type for its field).
    /// An error names the column.
    /// The footer's sizes and each row group's shape are checked against `limits`
    /// first (`parquet_limits`), and each page as it is read.
    pub fn open(reader: R, limits: Limits) -> Result<ParquetObject<R>, String> {
        parquet_limits::check_footer(&reader)
            .map_err(|e| format!("not a readable Parquet file: {e}"))?;
        let metadata = ArrowReaderMetadata::load(&reader, ArrowReaderOptions::default())
            .map_err(|e| format!("not a readable Parquet file: {e}"))?;
        for (index, group) in metadata.metadata().row_groups().iter().enumerate() {
            parquet_limits::check_row_group(group, index)
                .map_err(|e| format!("not a readable Parquet file: {e}"))?;
        }
        let descr = metadata.metadata().file_metadata().schema_descr();
        let mut columns = Vec::with_capacity(descr.num_columns());
        let mut names = Vec::with_capacity(descr.num_columns());
        for col in descr.columns() {
            let name = col.path().string();
            if col.max_rep_level() > 0 || col.path().parts().len() != 1 {
                return Err(format!(
                    "column '{name}' is nested or repeated; flow log columns are flat"
                ));
            }
            let column = match Field::from_name(&name) {
                Some(f) => Column::Known(f),
                None => Column::Unknown {
                    key: name.replace('-', "_"),
                    name: name.clone(),
                },
            };
            match (col.physical_type(), &column) {
                (PhysicalType::BYTE_ARRAY, _) => {}
                (PhysicalType::INT32 | PhysicalType::INT64, Column::Known(f))
                    if matches!(f.kind(), Kind::Ip | Kind::Text) =>
                {
                    return Err(format!(
                        "column '{name}' has type {}; the field {} is a string",
                        col.physical_type(),
                        f.name()
                    ));
                }
                (PhysicalType::INT32 | PhysicalType::INT64, _) => {}
                (other, _) => {
                    return Err(format!("column '{name}' has type {other}; flow log columns are INT32, INT64 or BYTE_ARRAY"));
                }
            }
            columns.push(column);
            names.push(name);
        }
        if columns.is_empty() {
            return Err("the Parquet file has no columns".to_string());
        }
        let interface_column = columns
            .iter()
            .position(|c| *c == Column::Known(Field::InterfaceId));
        let schema = Schema::from_columns(columns).map_err(|e| format!("Parquet columns: {e}"))?;
        let mut rows_before = Vec::new();
        let mut total = 0u64;
        for group in metadata.metadata().row_groups() {
            rows_before.push(total);
            total += u64::try_from(group.num_rows()).unwrap_or(0);
        }
        Ok(ParquetObject {
            reader: Arc::new(reader),
            metadata,
            schema,
            names,
            interface_column,
            decode_ahead: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
            rows_before,
            limits,
        })
    }

    pub fn row_groups(&self) -> usize {
        self.rows_before.len()
    }

    /// Reads row group `index`, calling `row(row_number, schema, text, spans, bytes)`
    /// for every row: `spans` are its values in `text` (`-` for null or empty), one per
    /// column, `bytes` its size as a text line (values and the spaces between them);
    /// `row_number` is 1-based over the whole object. Before the rows of each decoded
    /// batch, `interfaces` gets the batch's `interface-id` values (for ENI lookups ahead
    /// of the rows). An error names the row and column. With more than one CPU,
    /// decoding runs on a thread of its own, one batch ahead of the rows being processed
    /// (on one CPU that thread would only take turns with this one). A decoded batch
    /// never spans two row groups, so the rows of the ones before a damaged row group go
    /// out.
    pub fn read_row_group<E: From<String>>(
        &self,
        index: usize,
        mut interfaces: impl FnMut(&mut dyn Iterator<Item = &str>),
        mut row: impl FnMut(u64, &Schema, &str, &[Span], u64) -> Result<(), E>,
    ) -> Result<(), E> {
        let first_row = self.rows_before.get(index).copied().unwrap_or(0);
        let mut number = first_row;
        let mut row_spans = Vec::new();
        let mut rows_of = |sheet: &Sheet| -> Result<(), E> {
            let text = sheet.text(number, &self.names)?;
            if let Some(column) = self.interface_column.and_then(|j| sheet.columns.get(j)) {
                let mut ids = column
                    .spans()
                    .filter_map(|&(s, e)| text.get(s as usize..e as usize))
                    .filter(|id| *id != "-");
                interfaces(&mut ids);
            }
            // A row's spans: those of the columns with one value in the batch, set once,
            // and those of the others, set row by row from `varying`; its size as a text
            // line (values and the spaces between them) likewise.
            row_spans.clear();
            row_spans.extend(sheet.columns.iter().map(|c| c.same.unwrap_or_default()));
            let width = sheet.varying_columns.len();
            let spaces = row_spans.len().saturating_sub(1) as u64;
            let same_bytes = spaces
                + (sheet.columns.iter().filter_map(|c| c.same))
                    .map(|(s, e)| u64::from(e - s))
                    .sum::<u64>();
            for r in 0..sheet.rows {
                let mut bytes = same_bytes;
                let varying = sheet.varying.get(r * width..(r + 1) * width);
                for (&j, &at_row) in sheet
                    .varying_columns
                    .iter()
                    .zip(varying.unwrap_or_default())
                {
                    if let Some(span) = row_spans.get_mut(j) {
                        *span = at_row;
                        bytes += u64::from(at_row.1 - at_row.0);
                    }
                }
                number += 1;
                row(number, &self.schema, text, &row_spans, bytes)?;
            }
            Ok(())
        };
        let mut batches = Batches::new(self, index, first_row)?;
        if !self.decode_ahead {
            let mut sheet = Sheet::default();
            while batches.next_into(&mut sheet)? {
                rows_of(&sheet)?;
            }
            return Ok(());
        }
        let (decoded, sheets) = mpsc::sync_channel::<Result<Sheet, String>>(1);
        let (spare, spares) = mpsc::channel::<Sheet>();
        std::thread::scope(|scope| {
            scope.spawn(move || loop {
                let mut sheet = spares.try_recv().unwrap_or_default();
                let sent = match batches.next_into(&mut sheet) {
                    Ok(true) => decoded.send(Ok(sheet)),
                    Ok(false) => return,
                    Err(e) => decoded.send(Err(e)),
                };
                // Stop when the receiving side is gone or after an error.
                if sent.is_err() {
                    return;
                }
            });
            // Returning early drops `sheets`, which stops the decoding thread.
            for sheet in sheets {
                let sheet = sheet?;
                rows_of(&sheet)?;
                let _ = spare.send(sheet);
            }
            Ok(())
        })
    }
}

/// The batches of rows of one row group, decoded into sheets.
struct Batches<'o, R> {
    object: &'o ParquetObject<R>,
    reader: ParquetRecordBatchReader,
    /// Rows decoded so far (over the whole object).
    number: u64,
}

impl<'o, R: ChunkReader + 'static> Batches<'o, R> {
    /// Row group `index` of `object`, whose first row follows row `number`.
    fn new(object: &'o ParquetObject<R>, index: usize, number: u64) -> Result<Self, String> {
        let preferred = if object.decode_ahead {
            BATCH_ROWS_AHEAD
        } else {
            BATCH_ROWS
        };
        let group = object
            .metadata
            .metadata()
            .row_groups()
            .get(index)
            .ok_or_else(|| format!("no row group {index}"))?;
        let rows = parquet_limits::batch_rows(group, preferred);
        let guarded = GuardedReader::new(object.reader.clone(), group, rows, object.limits);
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
            guarded,
            object.row_group_metadata(index),
        )
        .with_row_groups(vec![index])
        .with_batch_size(rows)
        .build()
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
        Ok(Batches {
            object,
            reader,
            number,
        })
    }

    /// Decodes the next batch into `sheet`: false when there is none left.
    fn next_into(&mut self, sheet: &mut Sheet) -> Result<bool, String> {
        let number = self.number;
        let Some(batch) = self.reader.next() else {
            return Ok(false);
        };
        let batch = batch.map_err(|e| format!("after row {number}: {e}"))?;
        let arrays: Vec<Values<'_>> = batch
            .columns()
            .iter()
            .zip(&self.object.names)
            .map(|(a, name)| Values::of(a.as_ref()).map_err(|e| format!("column '{name}' {e}")))
            .collect::<Result<_, _>>()?;
        sheet.fill(&arrays, batch.num_rows(), number)?;
        self.number += batch.num_rows() as u64;
        Ok(true)
    }
}

impl<R> ParquetObject<R> {
    /// How row group `index` is read. String columns all of whose data pages in it are
    /// dictionary-encoded (the common case: a few accounts, interfaces, actions) are
    /// read as Arrow dictionary arrays: each distinct value decoded once per batch, rows
    /// as keys into them. Other string columns (addresses: too many values for a
    /// dictionary) are read as string views, which point into the decoded page rather
    /// than copying each value. Should the reader refuse the hint, the row group is read
    /// as the file declares.
    fn row_group_metadata(&self, index: usize) -> ArrowReaderMetadata {
        let Some(group) = self.metadata.metadata().row_groups().get(index) else {
            return self.metadata.clone();
        };
        let schema = self.metadata.schema();
        let mut hinted = false;
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .zip(group.columns())
            .map(|(field, chunk)| {
                if *field.data_type() != DataType::Utf8 {
                    return field.clone();
                }
                hinted = true;
                let read_as = if dictionary_encoded(chunk) {
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
                } else {
                    DataType::Utf8View
                };
                Arc::new(field.as_ref().clone().with_data_type(read_as))
            })
            .collect();
        if !hinted {
            return self.metadata.clone();
        }
        let hint = arrow_schema::Schema::new_with_metadata(fields, schema.metadata().clone());
        let options = ArrowReaderOptions::new().with_schema(Arc::new(hint));
        ArrowReaderMetadata::try_new(self.metadata.metadata().clone(), options).unwrap_or_else(
            |e| {
                tracing::debug!(error = %e, "string reading hint refused; strings read plain");
                self.metadata.clone()
            },
        )
    }
}

/// Whether every data page of `chunk` is dictionary-encoded, as its page encoding
/// statistics tell (a chunk without them is read as string views), and it has a value
/// (the reader makes the dictionary of an all-null chunk anew for every batch).
fn dictionary_encoded(chunk: &ColumnChunkMetaData) -> bool {
    let all_null = chunk
        .statistics()
        .and_then(|s| s.null_count_opt())
        .is_some_and(|nulls| i64::try_from(nulls).is_ok_and(|n| n >= chunk.num_values()));
    !all_null
        && chunk.dictionary_page_offset().is_some()
        && chunk.page_encoding_stats().is_some_and(|stats| {
            stats
                .iter()
                .filter(|s| matches!(s.page_type, PageType::DATA_PAGE | PageType::DATA_PAGE_V2))
                .all(|s| {
                    matches!(
                        s.encoding,
                        Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY
                    )
                })
        })
}
