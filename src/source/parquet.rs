//! Parquet flow log objects (`FileFormat: parquet`, `*.log.parquet`): read row group by
//! row group with the parquet crate's column readers, in batches of rows, so memory is
//! bounded by what one row group's pages need, not by the object. Each row is handed to
//! the caller as text values with spans, exactly as a text line's columns, so that the
//! same record gives the same document whichever format it came in.
//!
//! Columns are the flow log field names with `_` for `-` (`account_id`, `log_status`);
//! physical types INT32, INT64 or BYTE_ARRAY (string); null is absent (`-`). Unknown
//! columns pass through like unknown text fields.

use parquet::basic::Type as PhysicalType;
use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::file::reader::{ChunkReader, FileReader, SerializedFileReader};

use crate::flowlog::{Column, Field, Kind, Schema, Span};

/// Rows read per column per batch.
const BATCH_ROWS: usize = 4096;

/// One column's values of the current batch.
enum Values {
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Bytes(Vec<ByteArray>),
}

struct ColumnBatch {
    name: String,
    /// Definition levels (empty for a required column).
    defs: Vec<i16>,
    max_def: i16,
    values: Values,
    /// Next value to hand out (values hold only the non-null entries).
    cursor: usize,
}

/// Reads a Parquet object and calls `row(row_number, schema, text, spans)` for every row:
/// `text` is the row as a line (values separated by one space, `-` for null), `spans`
/// its values; `row_number` is 1-based over the whole object. An error names the column.
pub fn read_rows<R: ChunkReader + 'static>(
    reader: R,
    mut row: impl FnMut(u64, &Schema, &str, &[Span]) -> Result<(), String>,
) -> Result<(), String> {
    let file = SerializedFileReader::new(reader)
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let descr = file.metadata().file_metadata().schema_descr_ptr();
    let mut columns = Vec::with_capacity(descr.num_columns());
    let mut batches = Vec::with_capacity(descr.num_columns());
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
        let values = match (col.physical_type(), &column) {
            (PhysicalType::BYTE_ARRAY, _) => Values::Bytes(Vec::new()),
            (PhysicalType::INT32 | PhysicalType::INT64, Column::Known(f))
                if matches!(f.kind(), Kind::Ip | Kind::Text) =>
            {
                return Err(format!(
                    "column '{name}' has type {}; the field {} is a string",
                    col.physical_type(),
                    f.name()
                ));
            }
            (PhysicalType::INT32, _) => Values::Int32(Vec::new()),
            (PhysicalType::INT64, _) => Values::Int64(Vec::new()),
            (other, _) => {
                return Err(format!("column '{name}' has type {other}; flow log columns are INT32, INT64 or BYTE_ARRAY"));
            }
        };
        columns.push(column);
        batches.push(ColumnBatch {
            name,
            defs: Vec::new(),
            max_def: col.max_def_level(),
            values,
            cursor: 0,
        });
    }
    if columns.is_empty() {
        return Err("the Parquet file has no columns".to_string());
    }
    let schema = Schema::from_columns(columns).map_err(|e| format!("Parquet columns: {e}"))?;

    let mut text = String::with_capacity(1024);
    let mut spans: Vec<Span> = Vec::with_capacity(schema.len());
    let mut number: u64 = 0;
    for g in 0..file.num_row_groups() {
        let group = file
            .get_row_group(g)
            .map_err(|e| format!("row group {g}: {e}"))?;
        let mut readers = Vec::with_capacity(batches.len());
        for (j, batch) in batches.iter().enumerate() {
            let r = group
                .get_column_reader(j)
                .map_err(|e| format!("row group {g}, column '{}': {e}", batch.name))?;
            readers.push(r);
        }
        loop {
            let mut rows = None;
            for (reader, batch) in readers.iter_mut().zip(batches.iter_mut()) {
                let n = read_batch(reader, batch)
                    .map_err(|e| format!("row group {g}, column '{}': {e}", batch.name))?;
                match rows {
                    None => rows = Some(n),
                    Some(m) if m != n => {
                        return Err(format!(
                            "row group {g}: column '{}' has {n} rows where others have {m}",
                            batch.name
                        ))
                    }
                    _ => {}
                }
            }
            let rows = rows.unwrap_or(0);
            if rows == 0 {
                break;
            }
            for r in 0..rows {
                text.clear();
                spans.clear();
                for (j, batch) in batches.iter_mut().enumerate() {
                    if j > 0 {
                        text.push(' ');
                    }
                    let start = text.len();
                    append_value(batch, r, &mut text)
                        .map_err(|e| format!("row {}, column '{}': {e}", number + 1, batch.name))?;
                    if text.len() > u32::MAX as usize {
                        return Err(format!("row {} longer than 4 GiB", number + 1));
                    }
                    spans.push((start as u32, text.len() as u32));
                }
                number += 1;
                row(number, &schema, &text, &spans)?;
            }
        }
    }
    Ok(())
}

/// Reads up to BATCH_ROWS rows of one column; returns how many.
fn read_batch(
    reader: &mut ColumnReader,
    batch: &mut ColumnBatch,
) -> parquet::errors::Result<usize> {
    batch.defs.clear();
    batch.cursor = 0;
    let defs = (batch.max_def > 0).then_some(&mut batch.defs);
    let (rows, _, _) = match (reader, &mut batch.values) {
        (ColumnReader::Int32ColumnReader(r), Values::Int32(v)) => {
            v.clear();
            r.read_records(BATCH_ROWS, defs, None, v)?
        }
        (ColumnReader::Int64ColumnReader(r), Values::Int64(v)) => {
            v.clear();
            r.read_records(BATCH_ROWS, defs, None, v)?
        }
        (ColumnReader::ByteArrayColumnReader(r), Values::Bytes(v)) => {
            v.clear();
            r.read_records(BATCH_ROWS, defs, None, v)?
        }
        _ => {
            return Err(parquet::errors::ParquetError::General(
                "column reader of an unexpected type".into(),
            ))
        }
    };
    Ok(rows)
}

/// Appends row `r`'s value of a column as text (`-` for null).
fn append_value(batch: &mut ColumnBatch, r: usize, text: &mut String) -> Result<(), String> {
    let present = batch.max_def == 0 || batch.defs.get(r).is_some_and(|d| *d == batch.max_def);
    if !present {
        text.push('-');
        return Ok(());
    }
    let i = batch.cursor;
    batch.cursor += 1;
    let missing = || "fewer values than rows".to_string();
    match &batch.values {
        Values::Int32(v) => {
            text.push_str(itoa::Buffer::new().format(*v.get(i).ok_or_else(missing)?))
        }
        Values::Int64(v) => {
            text.push_str(itoa::Buffer::new().format(*v.get(i).ok_or_else(missing)?))
        }
        Values::Bytes(v) => {
            let value = v.get(i).ok_or_else(missing)?;
            let s = std::str::from_utf8(value.data())
                .map_err(|_| "string value is not valid UTF-8".to_string())?;
            if s.is_empty() {
                text.push('-');
            } else {
                text.push_str(s);
            }
        }
    }
    Ok(())
}
