//! Trigger decoding: a Lambda invocation payload becomes work units. Accepted shapes:
//! S3 event notifications (`Records[].s3`), SQS events whose bodies are S3
//! notifications, SNS envelopes of them, EventBridge "Object Created" events or
//! `s3:TestEvent`, EventBridge "Object Created" delivered directly, SNS events, and
//! CloudWatch Logs subscription payloads (`awslogs.data`, base64 of gzip of JSON).
//!
//! Shapes are decoded with `aws_lambda_events`' types (`SqsEvent`,
//! `EventBridgeEvent`, `S3Entity`) where they accept what AWS and users send; small
//! local types stand where the crate's require fields this function never reads (the
//! S3 record's `eventTime`/`userIdentity`/`requestParameters`, SNS signatures).
//! CloudWatch Logs data is decoded here, not with the crate's `LogsEvent`, whose
//! decompression has no size bound (a gzip bomb) and which requires every event id.

use std::io::Read;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::s3::S3Entity;
use aws_lambda_events::sqs::SqsEvent;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

/// What one work unit reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitSource {
    S3(S3Object),
    CloudWatch(std::sync::Arc<LogBatch>),
}

/// An S3 object named by a notification (key already URL-decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub size: Option<u64>,
    pub event_time: Option<String>,
}

impl S3Object {
    /// `s3://bucket/key` for messages.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// The decoded data of a CloudWatch Logs subscription delivery.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogBatch {
    pub message_type: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub log_group: String,
    #[serde(default)]
    pub log_stream: String,
    /// Absent only in a malformed payload (refused by `decode_awslogs`).
    #[serde(default)]
    pub log_events: Option<Vec<LogEvent>>,
}

impl LogBatch {
    /// The batch's events (none when the payload had none).
    pub fn events(&self) -> &[LogEvent] {
        self.log_events.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogEvent {
    /// The event's id; when the payload gives none (or an empty one), one derived from
    /// the group, stream, timestamp and message (see `decode_awslogs`).
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub timestamp: i64,
    pub message: String,
}

/// One unit of work, tagged with the SQS message it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkUnit {
    pub source: UnitSource,
    pub message_id: Option<String>,
}

/// How failures are reported, as the trigger expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReport {
    /// SQS: per message, in `batchItemFailures`.
    PerMessage,
    /// S3, SNS, EventBridge, CloudWatch Logs: any failure fails the invocation.
    Invocation,
}

/// A decoded invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub failure_report: FailureReport,
    pub units: Vec<WorkUnit>,
    /// SQS messages whose body could not be decoded, with the reason.
    pub bad_messages: Vec<(String, String)>,
    /// Messages acknowledged and ignored (`s3:TestEvent`, `CONTROL_MESSAGE`, events
    /// other than object creation).
    pub ignored: u64,
}

/// Most bytes a CloudWatch Logs payload may decompress to.
const MAX_AWSLOGS_BYTES: u64 = 64 * 1024 * 1024;

pub const ACCEPTED: &str = "expected one of: an S3 event notification (Records[].s3), an SQS event \
(Records[].body holding an S3 notification, an SNS envelope of one, an EventBridge \"Object Created\" event, \
or a Lambda invocation record of a failed invocation), \
an SNS event, an EventBridge \"Object Created\" event, or a CloudWatch Logs subscription payload (awslogs.data)";

/// Decodes an invocation payload: its shape is told by its keys, then it is decoded
/// with that shape's type (errors name the shape).
pub fn decode(payload: &Value) -> Result<Invocation, String> {
    let mut inv = Invocation {
        failure_report: FailureReport::Invocation,
        units: Vec::new(),
        bad_messages: Vec::new(),
        ignored: 0,
    };
    if let Some(logs) = subscription_payload(payload) {
        inv.add(logs?, None);
        return Ok(inv);
    }
    if is_eventbridge(payload) {
        let event: EventBridgeEvent = typed(payload, "EventBridge event")?;
        match eventbridge_object(event)? {
            Some(obj) => inv.units.push(WorkUnit {
                source: UnitSource::S3(obj),
                message_id: None,
            }),
            None => inv.ignored += 1,
        }
        return Ok(inv);
    }
    let Some(records) = payload.get("Records").and_then(Value::as_array) else {
        return Err(format!("unrecognized event: {ACCEPTED}"));
    };
    let source_of = |r: &Value| {
        r.get("eventSource")
            .or_else(|| r.get("EventSource"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if records.first().is_some_and(|r| source_of(r) == "aws:sqs") {
        inv.failure_report = FailureReport::PerMessage;
        let event: SqsEvent = typed(payload, "SQS event")?;
        for message in event.records {
            let Some(id) = message.message_id else {
                return Err("SQS record without messageId".to_string());
            };
            match decode_message_body(message.body.as_deref().unwrap_or("")) {
                Ok(body) => inv.add(body, Some(id)),
                Err(e) => inv.bad_messages.push((id, e)),
            }
        }
        return Ok(inv);
    }
    for record in records {
        match source_of(record).as_str() {
            "aws:s3" => match s3_object(typed(record, "S3 notification record")?)? {
                Some(obj) => inv.units.push(WorkUnit {
                    source: UnitSource::S3(obj),
                    message_id: None,
                }),
                None => inv.ignored += 1,
            },
            "aws:sns" => {
                let record: SnsRecord = typed(record, "SNS record")?;
                inv.add(decode_message_body(&record.sns.message)?, None);
            }
            other => return Err(format!("unrecognized record source '{other}': {ACCEPTED}")),
        }
    }
    Ok(inv)
}

impl Invocation {
    /// The units of a decoded message body (or one acknowledged and ignored), from the
    /// SQS message `message_id` when it came in one.
    fn add(&mut self, body: Body, message_id: Option<String>) {
        match body {
            Body::Objects(objs) => self.units.extend(objs.into_iter().map(|o| WorkUnit {
                source: UnitSource::S3(o),
                message_id: message_id.clone(),
            })),
            Body::Logs(batch) => self.units.push(WorkUnit {
                source: UnitSource::CloudWatch(std::sync::Arc::new(batch)),
                message_id,
            }),
            Body::Ignored => self.ignored += 1,
        }
    }
}

/// `value` decoded as `T`; the error names `what` was expected.
fn typed<T: serde::de::DeserializeOwned>(value: &Value, what: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| match e.path().to_string() {
        path if path == "." => format!("not a valid {what}: {}", e.inner()),
        path => format!("not a valid {what}: {path}: {}", e.inner()),
    })
}

/// One record of an S3 event notification. The bucket and object are the crate's
/// `S3Entity`; the record itself is read here because `aws_lambda_events`'
/// `S3EventRecord` also requires `eventTime`, `userIdentity` and `requestParameters`,
/// which S3 always sends but hand-written and test events often leave out.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Record {
    event_name: Option<String>,
    event_time: Option<String>,
    s3: S3Entity,
}

/// An S3 event notification (an SQS message body, an SNS message).
#[derive(Debug, Deserialize)]
struct S3Notification {
    #[serde(rename = "Records")]
    records: Vec<S3Record>,
}

/// A record of an SNS trigger: its message. (`aws_lambda_events`' `SnsRecord` requires
/// the signature fields too, which this function does not check.)
#[derive(Debug, Deserialize)]
struct SnsRecord {
    #[serde(rename = "Sns")]
    sns: SnsMessage,
}

/// An SNS message, or the SNS envelope of an SQS body (raw delivery off).
#[derive(Debug, Deserialize)]
struct SnsMessage {
    #[serde(rename = "Message")]
    message: String,
}

/// The detail of an EventBridge "Object Created" event from S3 (keys are not
/// URL-encoded there).
#[derive(Debug, Deserialize)]
struct ObjectCreated {
    bucket: CreatedBucket,
    object: CreatedObject,
}

#[derive(Debug, Deserialize)]
struct CreatedBucket {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct CreatedObject {
    key: String,
    size: Option<u64>,
    etag: Option<String>,
    version_id: Option<String>,
}

enum Body {
    Objects(Vec<S3Object>),
    /// A CloudWatch Logs subscription payload, replayed from a Lambda invocation record.
    Logs(LogBatch),
    Ignored,
}

/// An SQS message body or SNS message: an S3 notification, an SNS envelope of one, an
/// EventBridge event, `s3:TestEvent`, or a Lambda invocation record (what an
/// asynchronous invocation's on-failure destination receives) whose request payload is
/// one of those or a CloudWatch Logs subscription payload: replayed as it was sent, so
/// its documents get the ids they would have had.
fn decode_message_body(body: &str) -> Result<Body, String> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| format!("message body is not JSON: {e}"))?;
    if let (Some(_), Some(payload)) = (v.get("requestContext"), v.get("requestPayload")) {
        return decode_request_payload(payload);
    }
    decode_message_value(&v)
}

/// A CloudWatch Logs subscription payload (`awslogs.data`), when `payload` is one: its
/// batch, or nothing to read in a control message.
fn subscription_payload(payload: &Value) -> Option<Result<Body, String>> {
    let data = payload.get("awslogs")?.get("data")?;
    Some(subscription_data(data))
}

fn subscription_data(data: &Value) -> Result<Body, String> {
    let data = data.as_str().ok_or("awslogs.data is not a string")?;
    let batch = decode_awslogs(data)?;
    Ok(if batch.message_type == "CONTROL_MESSAGE" {
        Body::Ignored
    } else {
        Body::Logs(batch)
    })
}

/// The request payload of a Lambda invocation record.
fn decode_request_payload(payload: &Value) -> Result<Body, String> {
    if let Some(logs) = subscription_payload(payload) {
        return logs.map_err(|e| format!("invocation record: {e}"));
    }
    if payload.get("requestPayload").is_some() {
        return Err("invocation record: its request payload is itself an invocation record".into());
    }
    decode_message_value(payload).map_err(|e| format!("invocation record: {e}"))
}

/// A decoded message body (see `decode_message_body`).
fn decode_message_value(v: &Value) -> Result<Body, String> {
    if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Body::Ignored);
    }
    if v.get("Type").and_then(Value::as_str) == Some("Notification") {
        let envelope: SnsMessage = typed(v, "SNS envelope (a Message string)")?;
        return decode_message_body(&envelope.message);
    }
    if is_eventbridge(v) {
        let event: EventBridgeEvent = typed(v, "EventBridge event")?;
        return Ok(match eventbridge_object(event)? {
            Some(obj) => Body::Objects(vec![obj]),
            None => Body::Ignored,
        });
    }
    if v.get("Records").is_none() {
        return Err(
            "message body is not an S3 notification, SNS envelope, EventBridge event, s3:TestEvent or Lambda invocation record"
                .to_string(),
        );
    }
    let notification: S3Notification = typed(v, "S3 notification")?;
    let mut objs = Vec::new();
    for record in notification.records {
        if let Some(obj) = s3_object(record)? {
            objs.push(obj);
        }
    }
    Ok(if objs.is_empty() {
        Body::Ignored
    } else {
        Body::Objects(objs)
    })
}

/// The object of an S3 notification record; `None` for events other than
/// ObjectCreated.
fn s3_object(record: S3Record) -> Result<Option<S3Object>, String> {
    let event = record.event_name.as_deref().unwrap_or("ObjectCreated:Put");
    if !event.starts_with("ObjectCreated") {
        return Ok(None);
    }
    let bucket = record
        .s3
        .bucket
        .name
        .ok_or("S3 record without s3.bucket.name")?;
    let raw_key = record
        .s3
        .object
        .key
        .ok_or("S3 record without s3.object.key")?;
    let key = url_decode_key(&raw_key).map_err(|e| format!("s3.object.key '{raw_key}': {e}"))?;
    Ok(Some(S3Object {
        bucket,
        key,
        version_id: record.s3.object.version_id,
        etag: record.s3.object.e_tag,
        size: record.s3.object.size.and_then(|s| u64::try_from(s).ok()),
        event_time: record.event_time,
    }))
}

fn is_eventbridge(v: &Value) -> bool {
    v.get("detail-type").is_some() && v.get("source").is_some() && v.get("detail").is_some()
}

/// An EventBridge event: the object of "Object Created" from aws.s3, `None` for other
/// S3 event types.
fn eventbridge_object(event: EventBridgeEvent) -> Result<Option<S3Object>, String> {
    if event.source != "aws.s3" {
        return Err(format!(
            "EventBridge event from '{}' is not from aws.s3",
            crate::text::shorten(&event.source)
        ));
    }
    if event.detail_type != "Object Created" {
        return Ok(None);
    }
    let detail: ObjectCreated = typed(&event.detail, "EventBridge \"Object Created\" detail")?;
    Ok(Some(S3Object {
        bucket: detail.bucket.name,
        key: detail.object.key,
        version_id: detail.object.version_id,
        etag: detail.object.etag,
        size: detail.object.size,
        event_time: event
            .time
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
    }))
}

/// Decodes an S3 notification key: `+` is a space, `%XX` a byte; UTF-8 required.
pub fn url_decode_key(key: &str) -> Result<String, String> {
    let b = key.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or("truncated %-escape")?;
                let digit = |c: u8| (c as char).to_digit(16);
                match (digit(hex[0]), digit(hex[1])) {
                    (Some(high), Some(low)) => out.push((high * 16 + low) as u8),
                    _ => return Err(format!("bad %-escape '%{}'", String::from_utf8_lossy(hex))),
                }
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once decoded".to_string())
}

/// base64, then gzip, then JSON, with a bound on the decompressed size.
pub fn decode_awslogs(data: &str) -> Result<LogBatch, String> {
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("awslogs.data is not base64: {e}"))?;
    let mut json = Vec::new();
    flate2::read::MultiGzDecoder::new(&compressed[..])
        .take(MAX_AWSLOGS_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("awslogs.data is not gzip: {e}"))?;
    if json.len() as u64 > MAX_AWSLOGS_BYTES {
        return Err(format!(
            "awslogs.data decompresses to more than {MAX_AWSLOGS_BYTES} bytes"
        ));
    }
    let mut batch: LogBatch = serde_json::from_slice(&json)
        .map_err(|e| format!("awslogs.data is not a CloudWatch Logs batch: {e}"))?;
    match batch.message_type.as_str() {
        "CONTROL_MESSAGE" => return Ok(batch),
        "DATA_MESSAGE" => {}
        other => {
            return Err(format!(
                "awslogs.data: messageType '{}' is not DATA_MESSAGE or CONTROL_MESSAGE",
                crate::text::shorten(other)
            ))
        }
    }
    let Some(events) = batch.log_events.as_mut() else {
        return Err("awslogs.data: a DATA_MESSAGE without logEvents".to_string());
    };
    derive_missing_ids(&batch.log_group, &batch.log_stream, events);
    Ok(batch)
}

/// Gives every event without an id (or with an empty one) a deterministic one
/// (`ids::LogEventIds`).
fn derive_missing_ids(group: &str, stream: &str, events: &mut [LogEvent]) {
    let mut ids = crate::ids::LogEventIds::default();
    for event in events.iter_mut().filter(|e| e.id.is_empty()) {
        event.id = ids.next(group, stream, &event.message, event.timestamp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s3_event(key: &str) -> Value {
        json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","eventTime":"2024-01-01T00:00:00.000Z",
            "s3":{"bucket":{"name":"b"},"object":{"key":key,"size":10,"eTag":"e1","versionId":"v1"}}}]})
    }

    #[test]
    fn s3_direct_with_encoded_key() {
        let inv = decode(&s3_event("AWSLogs/a+b%C3%A9%2Bc.log.gz")).unwrap();
        assert_eq!(inv.failure_report, FailureReport::Invocation);
        let UnitSource::S3(o) = &inv.units[0].source else {
            panic!()
        };
        assert_eq!(o.key, "AWSLogs/a bé+c.log.gz");
        assert_eq!(o.version_id.as_deref(), Some("v1"));
    }

    #[test]
    fn sqs_bodies_of_every_kind() {
        let s3 = s3_event("k1").to_string();
        let sns = json!({"Type":"Notification","Message": s3_event("k2").to_string()}).to_string();
        let eb = json!({"detail-type":"Object Created","source":"aws.s3","time":"2024-01-01T00:00:00Z","detail":{"bucket":{"name":"b"},"object":{"key":"k 3","size":1}}}).to_string();
        let test = json!({"Service":"Amazon S3","Event":"s3:TestEvent"}).to_string();
        let payload = json!({"Records":[
            {"eventSource":"aws:sqs","messageId":"m1","body":s3},
            {"eventSource":"aws:sqs","messageId":"m2","body":sns},
            {"eventSource":"aws:sqs","messageId":"m3","body":eb},
            {"eventSource":"aws:sqs","messageId":"m4","body":test},
            {"eventSource":"aws:sqs","messageId":"m5","body":"garbage"},
            {"eventSource":"aws:sqs","messageId":"m6","body":eb.replace("2024-01-01T00:00:00Z", "yesterday")},
            {"eventSource":"aws:sqs","messageId":"m7","body":json!({"Records":[{"s3":{"object":{"key":"k"}}}]}).to_string()},
        ]});
        let inv = decode(&payload).unwrap();
        assert_eq!(inv.failure_report, FailureReport::PerMessage);
        let keys: Vec<_> = inv
            .units
            .iter()
            .map(|u| match &u.source {
                UnitSource::S3(o) => (o.key.clone(), u.message_id.clone().unwrap()),
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("k1".into(), "m1".into()),
                ("k2".into(), "m2".into()),
                ("k 3".into(), "m3".into())
            ]
        );
        assert_eq!(inv.ignored, 1);
        let bad: Vec<(&str, &str)> = inv
            .bad_messages
            .iter()
            .map(|(id, e)| (id.as_str(), e.as_str()))
            .collect();
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert_eq!(bad[0].0, "m5");
        // Typed decoding names the shape it expected and what was wrong.
        assert!(
            bad[1].1.contains("EventBridge event") && bad[1].1.contains("time"),
            "{bad:?}"
        );
        assert!(
            bad[2].1.contains("S3 notification") && bad[2].1.contains("bucket"),
            "{bad:?}"
        );
    }

    #[test]
    fn cloudwatch_and_control_message() {
        let encode = |v: Value| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, v.to_string().as_bytes()).unwrap();
            base64::engine::general_purpose::STANDARD.encode(e.finish().unwrap())
        };
        let data = encode(
            json!({"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":["f"],
            "logEvents":[{"id":"e1","timestamp":1,"message":"2 1 eni-1 - - - - - - - 1 2 - NODATA"}]}),
        );
        let inv = decode(&json!({"awslogs":{"data":data}})).unwrap();
        let UnitSource::CloudWatch(b) = &inv.units[0].source else {
            panic!()
        };
        assert_eq!(
            (b.log_group.as_str(), b.events()[0].id.as_str()),
            ("g", "e1")
        );
        let control = encode(
            json!({"messageType":"CONTROL_MESSAGE","logEvents":[{"id":"","timestamp":0,"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}),
        );
        let inv = decode(&json!({"awslogs":{"data":control}})).unwrap();
        assert!(inv.units.is_empty());
        assert_eq!(inv.ignored, 1);
        assert!(decode(&json!({"awslogs":{"data":"!!"}}))
            .unwrap_err()
            .contains("base64"));
    }

    #[test]
    fn unrecognized_payload_names_the_accepted_shapes() {
        for bad in [
            json!({}),
            json!({"foo":1}),
            json!([1]),
            json!({"Records":[{"eventSource":"aws:kinesis"}]}),
        ] {
            let e = decode(&bad).unwrap_err();
            assert!(
                e.contains("S3 event notification") && e.contains("awslogs.data"),
                "{e}"
            );
        }
        assert!(url_decode_key("a%zz").is_err());
        assert!(url_decode_key("a%2").is_err());
        assert!(url_decode_key("%ff").is_err());
        // A sign is not a hex digit.
        assert!(url_decode_key("a%+A").is_err());
        assert!(url_decode_key("a%-1").is_err());
        assert_eq!(url_decode_key("a%2Bb").unwrap(), "a+b");
    }

    fn awslogs(v: Value) -> Value {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, v.to_string().as_bytes()).unwrap();
        json!({"awslogs":{"data": base64::engine::general_purpose::STANDARD.encode(e.finish().unwrap())}})
    }

    #[test]
    fn a_data_message_without_log_events_is_malformed() {
        let e = decode(&awslogs(
            json!({"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s"}),
        ))
        .unwrap_err();
        assert!(e.contains("without logEvents"), "{e}");
        let e = decode(&awslogs(json!({"messageType":"SOMETHING","logEvents":[]}))).unwrap_err();
        assert!(e.contains("messageType"), "{e}");
        // An empty list is a delivery of nothing, not a malformed one.
        let inv = decode(&awslogs(
            json!({"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[]}),
        ))
        .unwrap();
        assert_eq!(inv.units.len(), 1);
    }

    /// Lambda invocation records (an on-failure destination's messages, read from SQS):
    /// a CloudWatch Logs payload replays as a batch of that message, a control message
    /// is acknowledged, an S3 event replays its objects, a record in a record is refused.
    #[test]
    fn invocation_records_replay_their_request_payload() {
        let record = |payload: Value| {
            json!({"version":"1.0","requestContext":{"condition":"RetriesExhausted"},
                   "requestPayload":payload,"responsePayload":{"errorType":"UnitsNotDelivered"}})
            .to_string()
        };
        let data = awslogs(
            json!({"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s",
            "logEvents":[{"id":"1","timestamp":1,"message":"m"}]}),
        );
        let control = awslogs(json!({"messageType":"CONTROL_MESSAGE","logEvents":[]}));
        let payload = json!({"Records":[
            {"eventSource":"aws:sqs","messageId":"m1","body":record(data.clone())},
            {"eventSource":"aws:sqs","messageId":"m2","body":record(control)},
            {"eventSource":"aws:sqs","messageId":"m3","body":record(s3_event("k"))},
            {"eventSource":"aws:sqs","messageId":"m4","body":record(json!({"requestContext":{},"requestPayload":data}))},
        ]});
        let inv = decode(&payload).unwrap();
        assert_eq!(inv.units.len(), 2, "{inv:?}");
        match &inv.units[0].source {
            UnitSource::CloudWatch(b) => assert_eq!(
                (b.log_group.as_str(), b.events()[0].id.as_str()),
                ("g", "1")
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(inv.units[0].message_id.as_deref(), Some("m1"));
        assert!(matches!(&inv.units[1].source, UnitSource::S3(o) if o.key == "k"));
        assert_eq!(inv.ignored, 1);
        assert_eq!(inv.bad_messages.len(), 1);
        assert_eq!(inv.bad_messages[0].0, "m4");
        assert!(
            inv.bad_messages[0].1.contains("invocation record"),
            "{:?}",
            inv.bad_messages
        );
    }

    #[test]
    fn events_without_ids_get_deterministic_distinct_ones() {
        let payload = awslogs(
            json!({"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[
                {"timestamp":1,"message":"a"},
                {"id":"","timestamp":1,"message":"a"},
                {"id":"","timestamp":1,"message":"b"},
                {"id":"given","timestamp":1,"message":"a"},
            ]}),
        );
        let ids = |inv: Invocation| -> Vec<String> {
            match &inv.units[0].source {
                UnitSource::CloudWatch(b) => b.events().iter().map(|e| e.id.clone()).collect(),
                _ => panic!(),
            }
        };
        let first = ids(decode(&payload).unwrap());
        assert_eq!(first, ids(decode(&payload).unwrap()));
        assert_eq!(first[3], "given");
        let unique: std::collections::HashSet<_> = first.iter().collect();
        assert_eq!(unique.len(), 4, "{first:?}");
        assert!(first[..3].iter().all(|id| id.len() == 32));
    }
}
