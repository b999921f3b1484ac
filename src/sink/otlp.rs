//! OpenTelemetry (DESTINATION_FORMAT=otlp): OTLP/HTTP logs, protobuf by default or JSON
//! (DESTINATION_OTLP_ENCODING=json). One LogRecord per document: `timeUnixNano` is the
//! record's window end, the document's fields are its attributes (flattened to dotted
//! names; those OpenTelemetry's semantic conventions name are renamed to them), the
//! flow log line is its body when the document carries it, and the cloud account,
//! region and provider are attributes of the resource (one ResourceLogs per account and
//! region). A `partialSuccess` that rejects records fails that many documents.

use serde_json::{Map, Value};

use super::answer::{read_capped, Answer, Exchange, ItemOutcome};
use super::Batch;
use crate::config::Config;
use crate::text::shorten;

/// Document fields renamed to OpenTelemetry's semantic conventions (ECS names, then
/// OCSF names).
const RENAMED: &[(&str, &str)] = &[
    ("source.ip", "source.address"),
    ("destination.ip", "destination.address"),
    ("event.id", "log.record.uid"),
    ("src_endpoint.ip", "source.address"),
    ("src_endpoint.port", "source.port"),
    ("dst_endpoint.ip", "destination.address"),
    ("dst_endpoint.port", "destination.port"),
    ("metadata.uid", "log.record.uid"),
    ("cloud.account.uid", "cloud.account.id"),
];

/// Attributes of the resource (after renaming): where the flow was logged.
const RESOURCE: &[&str] = &[
    "cloud.provider",
    "cloud.account.id",
    "cloud.region",
    "cloud.availability_zone",
];

/// Fields that become the record's body, the first present: the flow log line.
const BODY: &[&str] = &["message", "event.original"];

/// Fields the log record carries itself (`timeUnixNano`).
const LEFT_OUT: &[&str] = &["@timestamp"];

/// Most bytes of an answer read (`partialSuccess` is a count and a message).
const ANSWER_BYTES: usize = 64 * 1024;

/// The OTLP framing of a destination.
pub(super) struct Otlp {
    /// OTLP/JSON instead of protobuf.
    json: bool,
}

/// Attributes under their names.
type Attributes = Vec<(String, Value)>;

/// Log records grouped by resource (its attributes), in the order first seen.
type ByResource = [(Attributes, Vec<LogRecord>)];

/// One document as a log record.
struct LogRecord {
    time_ns: u64,
    body: Option<Value>,
    attributes: Attributes,
}

impl Otlp {
    /// The framing `config` asks for; a URL with no path gets OTLP's `/v1/logs`.
    pub(super) fn new(config: &Config, url: &mut reqwest::Url) -> Otlp {
        if url.path().is_empty() || url.path() == "/" {
            url.set_path("/v1/logs");
        }
        Otlp {
            json: config.otlp_json,
        }
    }

    /// About the bytes a document's flattening and protobuf framing add to it.
    pub(super) fn overhead() -> usize {
        256
    }

    pub(super) fn content_type(&self) -> &'static str {
        if self.json {
            "application/json"
        } else {
            "application/x-protobuf"
        }
    }

    /// The body of a request for the documents `which` of `batch`: an
    /// ExportLogsServiceRequest.
    pub(super) fn frame(&self, batch: &Batch, which: &[usize]) -> Vec<u8> {
        let observed_ns = crate::timestamp::unix_now_ms().saturating_mul(1_000_000);
        // Resources in the order first seen, each with its records.
        let mut resources: Vec<(Attributes, Vec<LogRecord>)> = Vec::new();
        for &i in which {
            let (resource, record) = log_record(batch.doc(i), batch.time(i));
            match resources.iter_mut().find(|(r, _)| *r == resource) {
                Some((_, records)) => records.push(record),
                None => resources.push((resource, vec![record])),
            }
        }
        if self.json {
            json_request(&resources, observed_ns)
        } else {
            protobuf_request(&resources, observed_ns)
        }
    }

    /// Reads a 2xx answer: an ExportLogsServiceResponse whose `partialSuccess` rejects
    /// records fails that many documents (the last ones: OTLP does not say which).
    pub(super) async fn read_answer(
        &self,
        x: &Exchange<'_>,
        resp: &mut reqwest::Response,
    ) -> Result<Answer, reqwest::Error> {
        let json = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map_or(self.json, |t| t.starts_with("application/json"));
        let (body, _) = read_capped(resp, ANSWER_BYTES).await?;
        let (rejected, message) = if json {
            partial_success_json(&body)
        } else {
            partial_success_protobuf(&body)
        };
        let n = x.ids.len();
        if rejected <= 0 {
            return Ok(Answer::Delivered);
        }
        let rejected = (rejected as u64).min(n as u64) as usize;
        let s = x.settings;
        let why = format!(
            "the OTLP receiver at {} rejected {rejected} of {n} log records (partialSuccess; it does not say which, so the last {rejected} are counted failed): {}",
            s.shown_url,
            shorten(&s.secrets.scrub(&message))
        );
        Ok(Answer::Items(
            (0..n)
                .map(|i| {
                    if i < n - rejected {
                        ItemOutcome::Done
                    } else {
                        ItemOutcome::Failed(why.clone())
                    }
                })
                .collect(),
        ))
    }
}

/// A document's resource attributes and its log record (`time`: Unix seconds of its
/// window end).
fn log_record(doc: &[u8], time: u64) -> (Attributes, LogRecord) {
    let mut fields = Vec::new();
    match serde_json::from_slice::<Map<String, Value>>(doc) {
        Ok(map) => flatten(&mut String::new(), Value::Object(map), &mut fields),
        // Every document the forwarder writes is a JSON object; were one not, it is
        // sent as it is, as the body.
        Err(_) => fields.push((
            "message".to_string(),
            Value::String(String::from_utf8_lossy(doc).into_owned()),
        )),
    }
    let mut resource = Vec::new();
    let mut body = None;
    let mut attributes = Vec::with_capacity(fields.len());
    for (mut name, value) in fields {
        if let Some((_, to)) = RENAMED.iter().find(|(from, _)| *from == name) {
            name = (*to).to_string();
        }
        if LEFT_OUT.contains(&name.as_str()) {
            continue;
        }
        if RESOURCE.contains(&name.as_str()) {
            resource.push((name, value));
        } else if body.is_none() && BODY.contains(&name.as_str()) {
            body = Some(value);
        } else if !attributes.iter().any(|(k, _)| *k == name) {
            // Keys are unique (ECS `source.address` and `source.ip`, renamed to it,
            // hold the same address): the first is kept.
            attributes.push((name, value));
        }
    }
    resource.sort_by(|a, b| a.0.cmp(&b.0));
    resource.dedup_by(|a, b| a.0 == b.0);
    let record = LogRecord {
        time_ns: time.saturating_mul(1_000_000_000),
        body,
        attributes,
    };
    (resource, record)
}

/// `value`'s leaves under dotted names (`source.address`); arrays stay arrays.
fn flatten(name: &mut String, value: Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let len = name.len();
                if len > 0 {
                    name.push('.');
                }
                name.push_str(&key);
                flatten(name, value, out);
                name.truncate(len);
            }
        }
        Value::Null => {}
        leaf => out.push((name.clone(), leaf)),
    }
}

const SCOPE_NAME: &str = "flowlog-forwarder";
const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// An ExportLogsServiceRequest in protobuf.
fn protobuf_request(resources: &ByResource, observed_ns: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    for (resource, records) in resources {
        // ExportLogsServiceRequest.resource_logs = 1
        message(&mut buf, 1, |buf| {
            // ResourceLogs.resource = 1: Resource.attributes = 1
            message(buf, 1, |buf| {
                for (key, value) in resource {
                    key_value(buf, 1, key, value);
                }
            });
            // ResourceLogs.scope_logs = 2
            message(buf, 2, |buf| {
                // ScopeLogs.scope = 1: InstrumentationScope name = 1, version = 2
                message(buf, 1, |buf| {
                    bytes(buf, 1, SCOPE_NAME.as_bytes());
                    bytes(buf, 2, SCOPE_VERSION.as_bytes());
                });
                for record in records {
                    // ScopeLogs.log_records = 2
                    message(buf, 2, |buf| {
                        fixed64(buf, 1, record.time_ns); // time_unix_nano
                        if let Some(body) = &record.body {
                            message(buf, 5, |buf| any_value(buf, body));
                        }
                        for (key, value) in &record.attributes {
                            key_value(buf, 6, key, value);
                        }
                        fixed64(buf, 11, observed_ns); // observed_time_unix_nano
                    });
                }
            });
        });
    }
    buf
}

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn tag(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    tag(buf, field, 2);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

fn fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    tag(buf, field, 1);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A nested message: written in place, then its length put before it.
fn message(buf: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    tag(buf, field, 2);
    let start = buf.len();
    write(buf);
    let mut len = Vec::with_capacity(10);
    varint(&mut len, (buf.len() - start) as u64);
    buf.splice(start..start, len);
}

/// A KeyValue: key = 1, value = 2.
fn key_value(buf: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    message(buf, field, |buf| {
        bytes(buf, 1, key.as_bytes());
        message(buf, 2, |buf| any_value(buf, value));
    });
}

/// An AnyValue's members: string 1, bool 2, int 3, double 4, array 5, key-value list 6.
fn any_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => bytes(buf, 1, s.as_bytes()),
        Value::Bool(b) => {
            tag(buf, 2, 0);
            varint(buf, u64::from(*b));
        }
        Value::Number(n) => match n.as_i64() {
            Some(i) => {
                tag(buf, 3, 0);
                varint(buf, i as u64);
            }
            None => {
                tag(buf, 4, 1);
                buf.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        },
        Value::Array(items) => message(buf, 5, |buf| {
            for item in items {
                message(buf, 1, |buf| any_value(buf, item));
            }
        }),
        Value::Object(map) => message(buf, 6, |buf| {
            for (key, value) in map {
                key_value(buf, 1, key, value);
            }
        }),
        Value::Null => {}
    }
}

/// An ExportLogsServiceRequest in OTLP/JSON (64-bit integers as strings).
fn json_request(resources: &ByResource, observed_ns: u64) -> Vec<u8> {
    let attributes = |pairs: &[(String, Value)]| json_key_values(pairs.iter().map(|(k, v)| (k, v)));
    let resource_logs: Vec<Value> = resources
        .iter()
        .map(|(resource, records)| {
            let records: Vec<Value> = records
                .iter()
                .map(|r| {
                    let mut record = serde_json::json!({
                        "timeUnixNano": r.time_ns.to_string(),
                        "observedTimeUnixNano": observed_ns.to_string(),
                        "attributes": attributes(&r.attributes),
                    });
                    if let Some(body) = &r.body {
                        record["body"] = json_any(body);
                    }
                    record
                })
                .collect();
            serde_json::json!({
                "resource": {"attributes": attributes(resource)},
                "scopeLogs": [{
                    "scope": {"name": SCOPE_NAME, "version": SCOPE_VERSION},
                    "logRecords": records,
                }],
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "resourceLogs": resource_logs })).unwrap_or_default()
}

/// An AnyValue in OTLP/JSON.
fn json_any(value: &Value) -> Value {
    match value {
        Value::String(s) => serde_json::json!({ "stringValue": s }),
        Value::Bool(b) => serde_json::json!({ "boolValue": b }),
        Value::Number(n) => match n.as_i64() {
            Some(i) => serde_json::json!({ "intValue": i.to_string() }),
            None => serde_json::json!({ "doubleValue": n.as_f64().unwrap_or(0.0) }),
        },
        Value::Array(items) => {
            serde_json::json!({ "arrayValue": { "values": items.iter().map(json_any).collect::<Vec<_>>() } })
        }
        Value::Object(map) => {
            serde_json::json!({ "kvlistValue": { "values": json_key_values(map.iter()) } })
        }
        Value::Null => serde_json::json!({}),
    }
}

/// KeyValues in OTLP/JSON.
fn json_key_values<'v>(pairs: impl Iterator<Item = (&'v String, &'v Value)>) -> Value {
    pairs
        .map(|(k, v)| serde_json::json!({"key": k, "value": json_any(v)}))
        .collect()
}

/// `partialSuccess` of an OTLP/JSON answer: rejected records and the message.
fn partial_success_json(body: &[u8]) -> (i64, String) {
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return (0, String::new());
    };
    let partial = &answer["partialSuccess"];
    let rejected = match &partial["rejectedLogRecords"] {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    };
    let message = partial["errorMessage"].as_str().unwrap_or("").to_string();
    (rejected, message)
}

/// `partial_success` (1) of a protobuf ExportLogsServiceResponse: its
/// `rejected_log_records` (1) and `error_message` (2). Unknown fields are skipped; an
/// unreadable answer rejects nothing.
fn partial_success_protobuf(body: &[u8]) -> (i64, String) {
    let mut out = (0, String::new());
    for (field, value) in fields(body) {
        if let (1, Field::Bytes(partial)) = (field, value) {
            for (field, value) in fields(partial) {
                match (field, value) {
                    (1, Field::Varint(n)) => out.0 = n as i64,
                    (2, Field::Bytes(text)) => out.1 = String::from_utf8_lossy(text).into_owned(),
                    _ => {}
                }
            }
        }
    }
    out
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

/// The fields of a protobuf message, up to the first that cannot be read.
fn fields(mut buf: &[u8]) -> impl Iterator<Item = (u64, Field<'_>)> {
    std::iter::from_fn(move || {
        let key = read_varint(&mut buf)?;
        let value = match key & 7 {
            0 => Field::Varint(read_varint(&mut buf)?),
            1 => {
                buf = buf.get(8..)?;
                Field::Other
            }
            2 => {
                let len = usize::try_from(read_varint(&mut buf)?).ok()?;
                let (value, rest) = (buf.get(..len)?, buf.get(len..)?);
                buf = rest;
                Field::Bytes(value)
            }
            5 => {
                buf = buf.get(4..)?;
                Field::Other
            }
            _ => return None,
        };
        Some((key >> 3, value))
    })
}

fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_flattened_renamed_and_split_into_resource_body_and_attributes() {
        let doc = br#"{"@timestamp":"2024-11-24T08:01:00.000Z","event":{"id":"abc","original":"2 123 eni-1 ..."},"source":{"ip":"10.0.0.1","port":443},"cloud":{"provider":"aws","account":{"id":"123"},"region":"eu-west-1"},"related":{"ip":["10.0.0.1"]},"x":null}"#;
        let (resource, record) = log_record(doc, 1_732_435_260);
        assert_eq!(record.time_ns, 1_732_435_260_000_000_000);
        assert_eq!(record.body, Some(Value::from("2 123 eni-1 ...")));
        let names: Vec<&str> = record.attributes.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "log.record.uid",
                "related.ip",
                "source.address",
                "source.port"
            ]
        );
        let names: Vec<&str> = resource.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["cloud.account.id", "cloud.provider", "cloud.region"]
        );
    }

    #[test]
    fn partial_success_is_read_in_both_encodings() {
        // partial_success { rejected_log_records: 2, error_message: "no" }, then an
        // unknown field.
        let body = [0x0a, 0x06, 0x08, 0x02, 0x12, 0x02, b'n', b'o', 0x18, 0x01];
        assert_eq!(partial_success_protobuf(&body), (2, "no".to_string()));
        assert_eq!(partial_success_protobuf(&[0x0a, 0x7f]), (0, String::new()));
        assert_eq!(partial_success_protobuf(&[]), (0, String::new()));
        let json = br#"{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"bad"}}"#;
        assert_eq!(partial_success_json(json), (3, "bad".to_string()));
        assert_eq!(partial_success_json(b"{}"), (0, String::new()));
    }
}
