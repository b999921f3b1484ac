//! Parquet flow log objects (`FileFormat: parquet`, `*.log.parquet`): the footer is read
//! once, then row groups are read one at a time with the parquet crate's Arrow reader,
//! in batches of rows, so memory is bounded by what the row groups being read need, not
//! by the object. Each row is handed to the caller as text values with spans,
//! exactly as a text line's columns, so that the same record gives the same document
//! whichever format it came in.
//!
//! Columns are the flow log field names with `_` for `-` (`account_id`, `log_status`);
//! physical types INT32, INT64 or BYTE_ARRAY (string); null is absent (`-`). Unknown
//! columns pass through like unknown text fields.

use std::sync::Arc;

use arrow_array::{Array, BinaryArray, Int32Array, Int64Array, LargeStringArray, StringArray};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Type as PhysicalType;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

use crate::flowlog::{Column, Field, Kind, Schema, Span};

/// Rows decoded per batch (memory: one batch of every column).
const BATCH_ROWS: usize = 4096;

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
    /// row: `text` is the row as a line (values separated by one space, `-` for null),
    /// `spans` its values; `row_number` is 1-based over the whole object. Before the
    /// rows of each decoded batch, `interfaces` gets the batch's `interface-id` values
    /// (for ENI lookups ahead of the rows). An error names the row and column.
    pub fn read_row_group(
        &self,
        index: usize,
        mut interfaces: impl FnMut(&mut dyn Iterator<Item = &str>),
        mut row: impl FnMut(u64, &Schema, &str, &[Span]) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut number = self.rows_before.get(index).copied().unwrap_or(0);
        let batches = ParquetRecordBatchReaderBuilder::new_with_metadata(
            SharedReader(self.reader.clone()),
            self.metadata.clone(),
        )
        .with_row_groups(vec![index])
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
        let (schema, names) = (&self.schema, &self.names);
        let mut text = String::with_capacity(1024);
        let mut spans: Vec<Span> = Vec::with_capacity(schema.len());
        for batch in batches {
            let batch = batch.map_err(|e| format!("after row {number}: {e}"))?;
            let arrays: Vec<Values<'_>> = batch
                .columns()
                .iter()
                .zip(names)
                .map(|(a, name)| {
                    Values::of(a.as_ref())
                        .ok_or_else(|| format!("column '{name}' has type {}", a.data_type()))
                })
                .collect::<Result<_, _>>()?;
            if let Some(values) = self.interface_column.map(|j| &arrays[j]) {
                interfaces(&mut (0..batch.num_rows()).filter_map(|r| values.text(r)));
            }
            for r in 0..batch.num_rows() {
                text.clear();
                spans.clear();
                for (j, values) in arrays.iter().enumerate() {
                    if j > 0 {
                        text.push(' ');
                    }
                    let start = text.len();
                    values
                        .append(r, &mut text)
                        .map_err(|e| format!("row {}, column '{}': {e}", number + 1, names[j]))?;
                    if text.len() > u32::MAX as usize {
                        return Err(format!("row {} longer than 4 GiB", number + 1));
                    }
                    spans.push((start as u32, text.len() as u32));
                }
                number += 1;
                row(number, schema, &text, &spans)?;
            }
        }
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

    /// Row `r`'s value when the column holds strings and it is not null.
    fn text(&self, r: usize) -> Option<&'a str> {
        match self {
            Values::Str(a) if a.is_valid(r) => Some(a.value(r)),
            Values::LargeStr(a) if a.is_valid(r) => Some(a.value(r)),
            Values::Binary(a) if a.is_valid(r) => std::str::from_utf8(a.value(r)).ok(),
            _ => None,
        }
    }

    /// Appends row `r`'s value as text (`-` for null or empty).
    fn append(&self, r: usize, text: &mut String) -> Result<(), String> {
        let mut digits = itoa::Buffer::new();
        let value = match self {
            Values::Int32(a) if a.is_valid(r) => digits.format(a.value(r)),
            Values::Int64(a) if a.is_valid(r) => digits.format(a.value(r)),
            Values::Str(a) if a.is_valid(r) => a.value(r),
            Values::LargeStr(a) if a.is_valid(r) => a.value(r),
            Values::Binary(a) if a.is_valid(r) => std::str::from_utf8(a.value(r))
                .map_err(|_| "string value is not valid UTF-8".to_string())?,
            _ => "",
        };
        text.push_str(if value.is_empty() { "-" } else { value });
        Ok(())
    }
}
