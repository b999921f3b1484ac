//! Parquet flow log objects (`FileFormat: parquet`, `*.log.parquet`): the footer is read
//! once, then row groups are read one at a time with the parquet crate's Arrow reader,
//! in batches of rows, so memory is bounded by what the row groups being read need, not
//! by the object. A thread of its own decodes each batch (one ahead, at most) into
//! text values with spans, column by column; each row is handed to the caller as those
//! spans, exactly as a text line's columns, so that the same record gives the same
//! document whichever format it came in.
//!
//! Columns are the flow log field names with `_` for `-` (`account_id`, `log_status`);
//! physical types INT32, INT64 or BYTE_ARRAY (string); null is absent (`-`). Unknown
//! columns pass through like unknown text fields.

use std::sync::{mpsc, Arc};

use arrow_array::{
    Array, ArrayAccessor, BinaryArray, Int32Array, Int64Array, LargeStringArray, StringArray,
};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Type as PhysicalType;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

use crate::ecs::Out;
use crate::flowlog::{Column, Field, Kind, Schema, Span};

/// Rows decoded per batch (memory: one batch of every column, and three batches of
/// text values: the one being read, the next one decoded, one being decoded). A v5
/// batch's text is about 0.5 MB, so it stays in the core's cache while its rows are
/// written; batches of 512 rows cost more CPU, allocating arrays for each (BENCHMARKS.md).
const BATCH_ROWS: usize = 2048;

/// A Parquet object whose footer was read and whose columns were checked.
pub struct ParquetObject<R> {
    reader: Arc<R>,
    metadata: ArrowReaderMetadata,
    schema: Schema,
    names: Vec<String>,
    interface_column: Option<usize>,
    /// Rows before each row group: row numbers run on over the whole object.
    rows_before: Vec<u64>,
}

impl<R: ChunkReader + 'static> ParquetObject<R> {
    /// Reads the footer and checks every column (flat, a known type for its field).
    /// An error names the column.
    pub fn open(reader: R) -> Result<ParquetObject<R>, String> {
        let metadata = ArrowReaderMetadata::load(&reader, ArrowReaderOptions::default())
            .map_err(|e| format!("not a readable Parquet file: {e}"))?;
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
            rows_before,
        })
    }

    pub fn row_groups(&self) -> usize {
        self.rows_before.len()
    }

    /// Reads row group `index`, calling `row(row_number, schema, text, spans)` for every
    /// row: `spans` are its values in `text` (`-` for null or empty), one per column;
    /// `row_number` is 1-based over the whole object. Before the rows of each decoded
    /// batch, `interfaces` gets the batch's `interface-id` values (for ENI lookups ahead
    /// of the rows). An error names the row and column. Decoding runs on a thread of
    /// its own, one batch ahead of the rows being processed; a decoded batch never spans
    /// two row groups, so the rows of the ones before a damaged row group go out.
    pub fn read_row_group(
        &self,
        index: usize,
        mut interfaces: impl FnMut(&mut dyn Iterator<Item = &str>),
        mut row: impl FnMut(u64, &Schema, &str, &[Span]) -> Result<(), String>,
    ) -> Result<(), String> {
        let first_row = self.rows_before.get(index).copied().unwrap_or(0);
        let columns = self.names.len();
        let (decoded, sheets) = mpsc::sync_channel::<Result<Sheet, String>>(1);
        let (spare, spares) = mpsc::channel::<Sheet>();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                if let Err(e) = self.decode_row_group(index, first_row, &spares, &decoded) {
                    let _ = decoded.send(Err(e));
                }
            });
            // Returning early drops `sheets`, which stops the decoding thread.
            let mut number = first_row;
            for sheet in sheets {
                let sheet = sheet?;
                if let Some(j) = self.interface_column {
                    let ids = sheet.spans.iter().skip(j).step_by(columns);
                    let mut ids = ids
                        .filter_map(|&(s, e)| sheet.text.get(s as usize..e as usize))
                        .filter(|id| *id != "-");
                    interfaces(&mut ids);
                }
                for row_spans in sheet.spans.chunks_exact(columns) {
                    number += 1;
                    row(number, &self.schema, &sheet.text, row_spans)?;
                }
                let _ = spare.send(sheet);
            }
            Ok(())
        })
    }

    /// Decodes row group `index` (whose first row follows row `number`) into sheets
    /// sent to `decoded`, reusing those that come back on `spares`; stops when the
    /// receiving side is gone.
    fn decode_row_group(
        &self,
        index: usize,
        mut number: u64,
        spares: &mpsc::Receiver<Sheet>,
        decoded: &mpsc::SyncSender<Result<Sheet, String>>,
    ) -> Result<(), String> {
        let batches = ParquetRecordBatchReaderBuilder::new_with_metadata(
            SharedReader(self.reader.clone()),
            self.metadata.clone(),
        )
        .with_row_groups(vec![index])
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
        for batch in batches {
            let batch = batch.map_err(|e| format!("after row {number}: {e}"))?;
            let arrays: Vec<Values<'_>> = batch
                .columns()
                .iter()
                .zip(&self.names)
                .map(|(a, name)| {
                    Values::of(a.as_ref())
                        .ok_or_else(|| format!("column '{name}' has type {}", a.data_type()))
                })
                .collect::<Result<_, _>>()?;
            let mut sheet = spares.try_recv().unwrap_or_default();
            sheet.fill(&arrays, batch.num_rows(), number, &self.names)?;
            number += batch.num_rows() as u64;
            if decoded.send(Ok(sheet)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// A decoded batch of rows: every value as text, column after column, and each row's
/// spans into it (row r's are `spans[r * columns..][..columns]`).
#[derive(Default)]
struct Sheet {
    text: String,
    spans: Vec<Span>,
}

impl Sheet {
    /// Writes the `rows` rows of `arrays` (named `names`; the first follows row
    /// `number`) into this sheet, replacing what it held.
    fn fill(
        &mut self,
        arrays: &[Values<'_>],
        rows: usize,
        number: u64,
        names: &[String],
    ) -> Result<(), String> {
        let columns = arrays.len();
        let mut bytes = std::mem::take(&mut self.text).into_bytes();
        self.spans.clear();
        self.spans.resize(rows * columns, (0, 0));
        let room = arrays.iter().map(|values| values.text_bound(rows)).sum();
        let mut out = Out::reuse(&mut bytes, room);
        for (j, values) in arrays.iter().enumerate() {
            if let Some(spans) = self.spans.get_mut(j..) {
                values.write_column(&mut out, spans, columns);
            }
        }
        out.finish();
        if bytes.len() > u32::MAX as usize {
            return Err(format!("rows after row {number} hold more than 4 GiB"));
        }
        // Only binary columns can hold bytes that are not UTF-8.
        self.text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to() as u32;
            let cell = self.spans.iter().position(|&(s, e)| s <= at && at < e);
            let (row, column) = cell.map_or((0, 0), |i| (i / columns, i % columns));
            format!(
                "row {}, column '{}': string value is not valid UTF-8",
                number + 1 + row as u64,
                names[column]
            )
        })?;
        Ok(())
    }
}

/// The object shared by the readers of its row groups.
struct SharedReader<R>(Arc<R>);

impl<R: ChunkReader> Length for SharedReader<R> {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl<R: ChunkReader> ChunkReader for SharedReader<R> {
    type T = R::T;

    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        self.0.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        self.0.get_bytes(start, length)
    }
}

/// One column of a decoded batch.
enum Values<'a> {
    Int32(&'a Int32Array),
    Int64(&'a Int64Array),
    Str(&'a StringArray),
    LargeStr(&'a LargeStringArray),
    Binary(&'a BinaryArray),
}

impl<'a> Values<'a> {
    fn of(array: &'a dyn Array) -> Option<Values<'a>> {
        let any = array.as_any();
        if let Some(a) = any.downcast_ref::<Int32Array>() {
            return Some(Values::Int32(a));
        }
        if let Some(a) = any.downcast_ref::<Int64Array>() {
            return Some(Values::Int64(a));
        }
        if let Some(a) = any.downcast_ref::<StringArray>() {
            return Some(Values::Str(a));
        }
        if let Some(a) = any.downcast_ref::<LargeStringArray>() {
            return Some(Values::LargeStr(a));
        }
        any.downcast_ref::<BinaryArray>().map(Values::Binary)
    }

    /// At least the bytes of text that `rows` rows of this column take.
    fn text_bound(&self, rows: usize) -> usize {
        match self {
            // A sign and up to 10 or 19 digits.
            Values::Int32(_) => rows * 11,
            Values::Int64(_) => rows * 20,
            // The values, or `-` for a null or empty one.
            Values::Str(a) => a.value_data().len() + rows,
            Values::LargeStr(a) => a.value_data().len() + rows,
            Values::Binary(a) => a.value_data().len() + rows,
        }
    }

    /// Appends every row's value as text to `out` (`-` for null or empty), setting
    /// row r's span at `spans[r * stride]`. One loop per column type, not a type
    /// dispatch per value.
    fn write_column(&self, out: &mut Out<'_>, spans: &mut [Span], stride: usize) {
        match self {
            Values::Int32(a) => fill(out, spans, stride, *a, |o, v| write_integer(o, v.into())),
            Values::Int64(a) => fill(out, spans, stride, *a, write_integer),
            Values::Str(a) => fill(out, spans, stride, *a, |o, v| write_text(o, v.as_bytes())),
            Values::LargeStr(a) => fill(out, spans, stride, *a, |o, v| write_text(o, v.as_bytes())),
            Values::Binary(a) => fill(out, spans, stride, *a, write_text),
        }
    }
}

/// `write_column` for one array: `write` appends a present value.
fn fill<A: ArrayAccessor + Array>(
    out: &mut Out<'_>,
    spans: &mut [Span],
    stride: usize,
    array: A,
    mut write: impl FnMut(&mut Out<'_>, A::Item),
) {
    for (r, span) in spans
        .iter_mut()
        .step_by(stride)
        .take(array.len())
        .enumerate()
    {
        let start = out.pos();
        if array.is_valid(r) {
            write(out, array.value(r));
        } else {
            out.byte(b'-');
        }
        *span = (start as u32, out.pos() as u32);
    }
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
