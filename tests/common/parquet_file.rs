//! Parquet files as AWS writes them (gzip pages, optional columns, null for `-`),
//! written with the parquet crate's writer.
#![allow(dead_code)]

use std::sync::Arc;

pub use parquet::basic::{Compression, GzipLevel};
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

#[derive(Clone, Copy)]
pub enum T {
    I32,
    I64,
    Str,
    F64,
}

/// How string and integer columns are encoded.
#[derive(Clone, Copy, Debug)]
pub enum Dictionary {
    /// Dictionary pages (the writers' default, and AWS's).
    On,
    /// Plain pages only.
    Off,
    /// A dictionary page of at most 64 bytes: a column with more distinct values
    /// falls back to plain pages within its chunk.
    Small,
}

/// A Parquet file of `rows` (text values, `-` for null) with `columns` (name, type).
pub fn parquet_file(columns: &[(&str, T)], rows: &[Vec<&str>], row_group_rows: usize) -> Vec<u8> {
    parquet_file_encoded(columns, rows, row_group_rows, Dictionary::On)
}

/// `parquet_file` with the columns encoded as `dictionary` says.
pub fn parquet_file_encoded(
    columns: &[(&str, T)],
    rows: &[Vec<&str>],
    row_group_rows: usize,
    dictionary: Dictionary,
) -> Vec<u8> {
    parquet_file_compressed(
        columns,
        rows,
        row_group_rows,
        dictionary,
        Compression::GZIP(GzipLevel::default()),
    )
}

/// `parquet_file_encoded` with pages compressed as `compression` says.
pub fn parquet_file_compressed(
    columns: &[(&str, T)],
    rows: &[Vec<&str>],
    row_group_rows: usize,
    dictionary: Dictionary,
    compression: Compression,
) -> Vec<u8> {
    let fields: Vec<String> = columns
        .iter()
        .map(|(name, t)| match t {
            T::I32 => format!("optional int32 {name};"),
            T::I64 => format!("optional int64 {name};"),
            T::Str => format!("optional binary {name} (STRING);"),
            T::F64 => format!("optional double {name};"),
        })
        .collect();
    let schema = Arc::new(
        parse_message_type(&format!("message flowlogs {{ {} }}", fields.join(" "))).unwrap(),
    );
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_size(row_group_rows);
    let props = Arc::new(
        match dictionary {
            Dictionary::On => props,
            Dictionary::Off => props.set_dictionary_enabled(false),
            // Pages of a few rows, so that the fallback comes within a chunk.
            Dictionary::Small => props
                .set_dictionary_page_size_limit(64)
                .set_data_page_row_count_limit(16)
                .set_write_batch_size(16),
        }
        .build(),
    );
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, props).unwrap();
    for chunk in rows.chunks(row_group_rows) {
        let mut group = writer.next_row_group().unwrap();
        let mut j = 0;
        while let Some(mut col) = group.next_column().unwrap() {
            let values: Vec<&str> = chunk.iter().map(|r| r[j]).collect();
            let defs: Vec<i16> = values.iter().map(|v| i16::from(*v != "-")).collect();
            let present = values.iter().filter(|v| **v != "-");
            use parquet::column::writer::ColumnWriter::*;
            match col.untyped() {
                Int32ColumnWriter(w) => w
                    .write_batch(
                        &present.map(|v| v.parse().unwrap()).collect::<Vec<i32>>(),
                        Some(&defs),
                        None,
                    )
                    .unwrap(),
                Int64ColumnWriter(w) => w
                    .write_batch(
                        &present.map(|v| v.parse().unwrap()).collect::<Vec<i64>>(),
                        Some(&defs),
                        None,
                    )
                    .unwrap(),
                ByteArrayColumnWriter(w) => w
                    .write_batch(
                        &present.map(|v| ByteArray::from(*v)).collect::<Vec<_>>(),
                        Some(&defs),
                        None,
                    )
                    .unwrap(),
                DoubleColumnWriter(w) => w
                    .write_batch(
                        &present.map(|v| v.parse().unwrap()).collect::<Vec<f64>>(),
                        Some(&defs),
                        None,
                    )
                    .unwrap(),
                _ => unreachable!(),
            };
            col.close().unwrap();
            j += 1;
        }
        group.close().unwrap();
    }
    writer.into_inner().unwrap()
}

/// The AWS Parquet types of the v5 fields (docs: "Parquet data type");
/// the first 14 are the default format.
pub const V5: &[(&str, T)] = &[
    ("version", T::I32),
    ("account_id", T::Str),
    ("interface_id", T::Str),
    ("srcaddr", T::Str),
    ("dstaddr", T::Str),
    ("srcport", T::I32),
    ("dstport", T::I32),
    ("protocol", T::I32),
    ("packets", T::I64),
    ("bytes", T::I64),
    ("start", T::I64),
    ("end", T::I64),
    ("action", T::Str),
    ("log_status", T::Str),
    ("vpc_id", T::Str),
    ("subnet_id", T::Str),
    ("instance_id", T::Str),
    ("tcp_flags", T::I32),
    ("type", T::Str),
    ("pkt_srcaddr", T::Str),
    ("pkt_dstaddr", T::Str),
    ("region", T::Str),
    ("az_id", T::Str),
    ("sublocation_type", T::Str),
    ("sublocation_id", T::Str),
    ("pkt_src_aws_service", T::Str),
    ("pkt_dst_aws_service", T::Str),
    ("flow_direction", T::Str),
    ("traffic_path", T::I32),
    ("next_gen_column", T::Str),
];
