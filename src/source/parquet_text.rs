//! Rendering a decoded Parquet batch as text: Arrow arrays (dictionaries, string
//! views, integers, nulls) become one text buffer and each row's value spans, exactly
//! as a text line's columns, so that a record gives the same document whichever format
//! it came in. `parquet.rs` reads and decodes the batches.

use arrow_array::types::{ByteArrayType, Int32Type};
use arrow_array::{
    Array, BinaryArray, DictionaryArray, GenericByteArray, Int32Array, Int64Array,
    LargeStringArray, StringArray, StringViewArray,
};
use arrow_buffer::{ArrowNativeType, NullBuffer};

use crate::flowlog::Span;
use crate::json::Out;

/// A decoded batch of rows: every value as text, column after column, and where in
/// the text each column's value is, row by row.
#[derive(Default)]
pub(super) struct Sheet {
    /// The text is `text[..len]`; what lies past it is left from an earlier batch and
    /// written over by the next (the buffer is never zero-filled again).
    pub(super) text: Vec<u8>,
    pub(super) len: usize,
    pub(super) rows: usize,
    pub(super) columns: Vec<ColumnSpans>,
    /// The columns with more than one value in the batch, and their spans row after
    /// row (`varying_columns.len()` for each row): in the order the rows are read.
    pub(super) varying_columns: Vec<usize>,
    pub(super) varying: Vec<Span>,
}

/// Where a column's values are in a sheet's text.
#[derive(Default)]
pub(super) struct ColumnSpans {
    /// The span of every row, when the column has one value in the batch (or none):
    /// flow log columns often do (the account, the interface, the region...).
    pub(super) same: Option<Span>,
    /// Otherwise each row's span (copied into the sheet's `varying`, row by row, when
    /// the batch is written: read column by column, as they were written, the spans of
    /// several columns missed the cache row after row).
    by_row: Vec<Span>,
}

impl ColumnSpans {
    /// Each row's span, or the one span of every row.
    pub(super) fn spans(&self) -> std::slice::Iter<'_, Span> {
        match &self.same {
            Some(span) => std::slice::from_ref(span).iter(),
            None => self.by_row.iter(),
        }
    }
}

impl Sheet {
    /// Writes the `rows` rows of `arrays` into this sheet, replacing what it held; the
    /// first row follows row `number`.
    pub(super) fn fill(
        &mut self,
        arrays: &[Values<'_>],
        rows: usize,
        number: u64,
    ) -> Result<(), String> {
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
    pub(super) fn text(&self, number: u64, names: &[String]) -> Result<&str, String> {
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
pub(super) enum Values<'a> {
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
    pub(super) fn of(array: &'a dyn Array) -> Result<Values<'a>, String> {
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
