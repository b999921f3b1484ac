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

use arrow_array::types::{ByteArrayType, Int32Type};
use arrow_array::{
    Array, BinaryArray, DictionaryArray, GenericByteArray, Int32Array, Int64Array,
    LargeStringArray, StringArray, StringViewArray,
};
use arrow_buffer::{ArrowNativeType, NullBuffer};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::basic::{Encoding, PageType, Type as PhysicalType};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::reader::ChunkReader;

use crate::flowlog::{Column, Field, Kind, Schema, Span};
use crate::json::Out;
use crate::source::parquet_limits::{self, GuardedReader};
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
    pub fn read_row_group(
        &self,
        index: usize,
        mut interfaces: impl FnMut(&mut dyn Iterator<Item = &str>),
        mut row: impl FnMut(u64, &Schema, &str, &[Span], u64) -> Result<(), String>,
    ) -> Result<(), String> {
        let first_row = self.rows_before.get(index).copied().unwrap_or(0);
        let mut number = first_row;
        let mut row_spans = Vec::new();
        let mut rows_of = |sheet: &Sheet| -> Result<(), String> {
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

/// A decoded batch of rows: every value as text, column after column, and where in
/// the text each column's value is, row by row.
#[derive(Default)]
struct Sheet {
    /// The text is `text[..len]`; what lies past it is left from an earlier batch and
    /// written over by the next (the buffer is never zero-filled again).
    text: Vec<u8>,
    len: usize,
    rows: usize,
    columns: Vec<ColumnSpans>,
    /// The columns with more than one value in the batch, and their spans row after
    /// row (`varying_columns.len()` for each row): in the order the rows are read.
    varying_columns: Vec<usize>,
    varying: Vec<Span>,
}

/// Where a column's values are in a sheet's text.
#[derive(Default)]
struct ColumnSpans {
    /// The span of every row, when the column has one value in the batch (or none):
    /// flow log columns often do (the account, the interface, the region...).
    same: Option<Span>,
    /// Otherwise each row's span (copied into the sheet's `varying`, row by row, when
    /// the batch is written: read column by column, as they were written, the spans of
    /// several columns missed the cache row after row).
    by_row: Vec<Span>,
}

impl ColumnSpans {
    /// Each row's span, or the one span of every row.
    fn spans(&self) -> std::slice::Iter<'_, Span> {
        match &self.same {
            Some(span) => std::slice::from_ref(span).iter(),
            None => self.by_row.iter(),
        }
    }
}

impl Sheet {
    /// Writes the `rows` rows of `arrays` into this sheet, replacing what it held; the
    /// first row follows row `number`.
    fn fill(&mut self, arrays: &[Values<'_>], rows: usize, number: u64) -> Result<(), String> {
        self.rows = rows;
        self.columns.resize_with(arrays.len(), ColumnSpans::default);
        let mut out = Out::reuse(&mut self.text, 0);
        for (values, column) in arrays.iter().zip(&mut self.columns) {
            values.write_column(&mut out, column);
        }
        self.len = out.end();
        if self.len > u32::MAX as usize {
            return Err(format!("rows after row {number} hold more than 4 GiB"));
        }
        self.varying_columns.clear();
        let varying = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.same.is_none());
        self.varying_columns.extend(varying.map(|(j, _)| j));
        let width = self.varying_columns.len();
        self.varying.resize(rows * width, (0, 0));
        for (k, &j) in self.varying_columns.iter().enumerate() {
            let at_rows = self.varying.get_mut(k..).unwrap_or_default().iter_mut();
            for (at_row, span) in at_rows.step_by(width).zip(&self.columns[j].by_row) {
                *at_row = *span;
            }
        }
        Ok(())
    }

    /// The text of the batch whose first row follows row `number`, or the row and
    /// column (named by `names`) of a value that is not UTF-8: only binary columns can
    /// hold one.
    fn text(&self, number: u64, names: &[String]) -> Result<&str, String> {
        let text = self.text.get(..self.len).unwrap_or_default();
        std::str::from_utf8(text).map_err(|e| {
            let at = e.valid_up_to() as u32;
            let (row, column) = (self.columns.iter().enumerate())
                .find_map(|(j, c)| {
                    let row = c.spans().position(|&(s, e)| s <= at && at < e)?;
                    Some((row, j))
                })
                .unwrap_or((0, 0));
            format!(
                "row {}, column '{}': string value is not valid UTF-8",
                number + 1 + row as u64,
                names.get(column).map_or("?", |n| n.as_str())
            )
        })
    }
}

/// One column of a decoded batch.
enum Values<'a> {
    Int32(&'a Int32Array),
    Int64(&'a Int64Array),
    Str(&'a StringArray),
    LargeStr(&'a LargeStringArray),
    Binary(&'a BinaryArray),
    /// A string column read as views: each row's 16 bytes hold a short value, or the
    /// length, prefix and place of one in the decoded page.
    View(&'a StringViewArray),
    /// A dictionary-encoded string column: each row's key into the distinct values.
    Dictionary {
        keys: &'a Int32Array,
        values: &'a StringArray,
    },
}

impl<'a> Values<'a> {
    /// The column `array`, or why it cannot be read (the text follows its name).
    fn of(array: &'a dyn Array) -> Result<Values<'a>, String> {
        let any = array.as_any();
        if let Some(a) = any.downcast_ref::<Int32Array>() {
            return Ok(Values::Int32(a));
        }
        if let Some(a) = any.downcast_ref::<Int64Array>() {
            return Ok(Values::Int64(a));
        }
        if let Some(a) = any.downcast_ref::<StringArray>() {
            return Ok(Values::Str(a));
        }
        if let Some(a) = any.downcast_ref::<LargeStringArray>() {
            return Ok(Values::LargeStr(a));
        }
        if let Some(a) = any.downcast_ref::<BinaryArray>() {
            return Ok(Values::Binary(a));
        }
        if let Some(a) = any.downcast_ref::<StringViewArray>() {
            return Ok(Values::View(a));
        }
        if let Some(a) = any.downcast_ref::<DictionaryArray<Int32Type>>() {
            if let Some(values) = a.values().as_any().downcast_ref::<StringArray>() {
                // The reader checks keys against the dictionary; so does this, so
                // that looking a value up cannot fail (a null row's key is anything).
                // One pass for the largest key (a negative one counts as largest).
                let key = |k: i32| u32::try_from(k).unwrap_or(u32::MAX);
                let keys = a.keys();
                let largest = match nulls(keys) {
                    None => keys.values().iter().map(|&k| key(k)).max(),
                    Some(nulls) => keys
                        .values()
                        .iter()
                        .zip(nulls)
                        .filter(|&(_, valid)| valid)
                        .map(|(&k, _)| key(k))
                        .max(),
                };
                if largest.is_some_and(|k| k as usize >= values.len()) {
                    return Err("has a dictionary key out of range".to_string());
                }
                return Ok(Values::Dictionary { keys, values });
            }
        }
        Err(format!("has type {}", array.data_type()))
    }

    /// Appends every row's value as text to `out` (`-` for null or empty), setting
    /// where each is in `column`. One loop per column type, not a type dispatch per
    /// value.
    fn write_column(&self, out: &mut Out<'_>, column: &mut ColumnSpans) {
        let (o, c) = (out, column);
        match self {
            Values::Int32(a) => fill(o, c, integers(a.values()), nulls(*a), write_integer),
            Values::Int64(a) => fill(o, c, integers(a.values()), nulls(*a), write_integer),
            Values::Str(a) => fill(o, c, strings(*a), nulls(*a), write_text),
            Values::LargeStr(a) => fill(o, c, strings(*a), nulls(*a), write_text),
            Values::Binary(a) => fill(o, c, strings(*a), nulls(*a), write_text),
            Values::View(a) => {
                let views =
                    a.views()
                        .iter()
                        .enumerate()
                        .map(|(row, &raw)| View { raw, row, array: a });
                fill(o, c, views, nulls(*a), |o, v| {
                    write_text(o, v.array.value(v.row).as_bytes())
                })
            }
            Values::Dictionary { keys, values } => {
                let keys_nulls = nulls(*keys);
                let keys = keys.values().iter().copied();
                // In range: checked when the column was read.
                fill(o, c, keys, keys_nulls, |o, k| {
                    write_text(o, values.value(k as usize).as_bytes())
                })
            }
        }
    }
}

/// A row of a string view column. Equal views are equal strings (same length and
/// bytes, or same place), so comparing views is enough to share a row's text with the
/// row before; equal strings in different places are only written twice.
#[derive(Clone, Copy)]
struct View<'a> {
    raw: u128,
    row: usize,
    array: &'a StringViewArray,
}

impl PartialEq for View<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

/// Which rows of `array` are null, if any is.
fn nulls(array: &dyn Array) -> Option<&NullBuffer> {
    array.nulls().filter(|n| n.null_count() > 0)
}

/// The values of an integer column.
fn integers<T: Copy + Into<i64>>(values: &[T]) -> impl Iterator<Item = i64> + Clone + '_ {
    values.iter().map(|&v| v.into())
}

/// The values of a string or binary column, as bytes.
fn strings<T: ByteArrayType>(
    array: &GenericByteArray<T>,
) -> impl Iterator<Item = &[u8]> + Clone + '_ {
    let (offsets, data) = (array.value_offsets(), array.value_data());
    offsets
        .iter()
        .zip(offsets.iter().skip(1))
        .map(|(s, e)| data.get(s.as_usize()..e.as_usize()).unwrap_or_default())
}

/// `write_column` for one column: `values` by row (a null row's is any value), `write`
/// appends a present one. A column with one value in every row (or none) is written
/// once. Otherwise a row whose value is the row before's shares its text (flow log
/// columns repeat: the same interface, action, protocol, port in row after row), and
/// so do the null rows (`-`).
fn fill<T: PartialEq + Copy>(
    out: &mut Out<'_>,
    column: &mut ColumnSpans,
    values: impl Iterator<Item = T> + Clone,
    nulls: Option<&NullBuffer>,
    mut write: impl FnMut(&mut Out<'_>, T),
) {
    let rows = values.size_hint().0;
    let same = match nulls {
        Some(nulls) if nulls.null_count() == nulls.len() => Some(None),
        Some(_) => None,
        None => {
            let mut rest = values.clone();
            let first = rest.next();
            first.filter(|&v| rest.all(|r| r == v)).map(Some)
        }
    };
    if let Some(value) = same {
        column.same = Some(span_of(out, |out| match value {
            Some(v) => write(out, v),
            None => out.byte(b'-'),
        }));
        return;
    }
    column.same = None;
    column.by_row.clear();
    column.by_row.reserve(rows);
    let mut last = Last(None);
    let Some(nulls) = nulls else {
        let spans = values.map(|value| last.put(out, value, &mut write));
        column.by_row.extend(spans);
        return;
    };
    let mut null: Option<Span> = None;
    let spans = values.zip(nulls).map(|(value, valid)| {
        if valid {
            last.put(out, value, &mut write)
        } else {
            *null.get_or_insert_with(|| span_of(out, |out| out.byte(b'-')))
        }
    });
    column.by_row.extend(spans);
}

/// The last value written in a column, and its text.
struct Last<T>(Option<(T, Span)>);

impl<T: PartialEq + Copy> Last<T> {
    /// The text of `value`: the last value's when they are equal, else appended by
    /// `write` (and `value` is the last value from then on).
    #[inline(always)]
    fn put(
        &mut self,
        out: &mut Out<'_>,
        value: T,
        write: &mut impl FnMut(&mut Out<'_>, T),
    ) -> Span {
        match self.0 {
            Some((v, written)) if v == value => written,
            _ => {
                let span = span_of(out, |out| write(out, value));
                self.0 = Some((value, span));
                span
            }
        }
    }
}

/// Where what `write` appends to `out` lands.
#[inline(always)]
fn span_of(out: &mut Out<'_>, write: impl FnOnce(&mut Out<'_>)) -> Span {
    let start = out.pos();
    write(out);
    (start as u32, out.pos() as u32)
}

/// Appends a string value (`-` when empty).
fn write_text(out: &mut Out<'_>, value: &[u8]) {
    out.bytes(if value.is_empty() { b"-" } else { value });
}

/// Appends `v` in decimal (a negative value fails validation as text would).
fn write_integer(out: &mut Out<'_>, v: i64) {
    if v < 0 {
        out.byte(b'-');
    }
    out.u64(v.unsigned_abs());
}
