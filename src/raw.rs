//! The raw output schema (OUTPUT_SCHEMA=raw): each record as a flow log text line in
//! `message`, with `@timestamp`, `event.id`, where it came from and `data_stream.*`, as
//! Elastic Serverless Forwarder sends it, so that Elastic's AWS integration parses it
//! with its own ingest pipeline and its dashboards work unchanged.
//!
//! That pipeline tells a line's format by its number of tokens alone: 14 (the default
//! v2 format), 6, 17, 21 and 29 (every field up to version 5), each in one order of
//! AWS's. A record whose fields are exactly one of those sets is written in that
//! order, whatever order it was read in (a custom-order header, JSON keys, Parquet
//! columns); any other record keeps its own order, which that pipeline cannot parse.

use std::sync::OnceLock;

use crate::context::DocContext;
use crate::flowlog::{Column, Field, FlowRecord, Schema};
use crate::json::{k, Document, Writer};
use crate::timestamp::Dates;

/// The formats Elastic's `aws.vpcflow` ingest pipeline parses, in its token orders.
const INTEGRATION_FORMATS: [&str; 5] = [
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status",
    "instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr",
    "version interface-id account-id vpc-id subnet-id instance-id srcaddr dstaddr srcport dstport protocol tcp-flags type pkt-srcaddr pkt-dstaddr action log-status",
    "version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr srcport dstport pkt-srcaddr pkt-dstaddr protocol bytes packets start end action tcp-flags log-status",
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path",
];

fn integration_formats() -> &'static [Vec<Field>] {
    static FORMATS: OnceLock<Vec<Vec<Field>>> = OnceLock::new();
    FORMATS.get_or_init(|| {
        INTEGRATION_FORMATS
            .iter()
            .filter_map(|f| Schema::parse_format(f).ok())
            .map(|s| {
                s.columns()
                    .iter()
                    .filter_map(|c| match c {
                        Column::Known(f) => Some(*f),
                        Column::Unknown { .. } => None,
                    })
                    .collect()
            })
            .collect()
    })
}

/// The integration's order of `schema`'s fields, when they are exactly one of its
/// formats.
fn integration_order(schema: &Schema) -> Option<&'static [Field]> {
    integration_formats()
        .iter()
        .find(|order| {
            order.len() == schema.len() && order.iter().all(|f| schema.position(*f).is_some())
        })
        .map(Vec::as_slice)
}

/// Appends the record as a flow log text line: its values separated by one space, `-`
/// for a missing one, in the integration's order when its fields are one of its
/// formats.
fn write_line(line: &mut String, rec: &FlowRecord<'_>) {
    let mut push = |value: &str| {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(if value.is_empty() { "-" } else { value });
    };
    match integration_order(rec.schema()) {
        Some(order) => order.iter().for_each(|f| push(rec.get(*f).unwrap_or("-"))),
        None => (0..rec.schema().len()).for_each(|i| push(rec.column(i))),
    }
}

/// Writes the raw document of `rec` into `doc`.
pub fn write_raw(doc: &mut Document, rec: &FlowRecord<'_>, ctx: &DocContext<'_>) {
    let mut line = String::with_capacity(rec.text().len() + 16);
    write_line(&mut line, rec);
    write(
        doc,
        &line,
        rec.end.or(rec.start).unwrap_or(ctx.now),
        None,
        ctx,
    );
}

/// Writes the raw document of a line that is no record: the line as read, and why.
pub fn write_raw_failure(doc: &mut Document, raw: &str, error: &str, ctx: &DocContext<'_>) {
    let error = crate::context::cap_message(error);
    write(doc, raw, ctx.now, Some(&error), ctx);
}

fn write(doc: &mut Document, message: &str, time: u64, error: Option<&str>, ctx: &DocContext<'_>) {
    if ctx.hec_line {
        // To Splunk HEC: the line alone, which HEC makes the event's `_raw`.
        doc.buf.clear();
        crate::json::write_str(&mut doc.buf, message);
        doc.len = doc.buf.len();
        return;
    }
    let room = 512
        + message.len()
        + error.map_or(0, str::len)
        + ctx.origin.ecs_len()
        + ctx.data_stream.len();
    let mut w = Writer::new(&mut doc.buf, room);
    w.key(k!("@timestamp"));
    Dates::default().write(&mut w.out, time);
    w.string(k!("message"), message);
    w.begin_object(k!("event"));
    w.string(k!("id"), ctx.event_id);
    w.end_object();
    if let Some(error) = error {
        w.begin_object(k!("error"));
        w.string(k!("message"), error);
        w.end_object();
        w.json(r#","tags":["_flowlog_parse_failure"]"#);
    }
    w.json(r#","cloud":{"provider":"aws"}"#);
    w.begin_object(k!("aws"));
    w.json(&ctx.origin.ecs_aws_members);
    w.end_object();
    w.json(&ctx.origin.ecs_top_members);
    w.json(ctx.data_stream);
    doc.len = w.finish();
}
