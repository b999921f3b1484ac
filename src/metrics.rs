//! The invocation summary in CloudWatch Embedded Metric Format: one JSON log line per
//! invocation whose counters CloudWatch turns into metrics (namespace
//! `FlowlogForwarder`) without API calls. The line carries a `level` that Lambda's
//! log-level filtering (ApplicationLogLevel) lets through at every setting, and an RFC
//! 3339 `timestamp` (without one Lambda reads the line as INFO): the metrics and the
//! alarms on them must not vanish when the function logs only warnings or errors.

use std::time::Instant;

use serde_json::{json, Value};

use crate::pipeline::Counts;

/// One summary per invocation, in CloudWatch Embedded Metric Format: the counters
/// become metrics in the `FlowlogForwarder` namespace without API calls.
pub fn summary_json(
    total: &Counts,
    units: usize,
    failures: usize,
    ec2_requests: u64,
    started: Instant,
) -> Value {
    let millis = started.elapsed().as_millis() as u64;
    let now_ms = crate::timestamp::unix_now_ms();
    let function =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".to_string());
    let metric = |name: &str, unit: &str| json!({ "Name": name, "Unit": unit });
    let application_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    json!({
        "level": summary_level(application_level.as_deref()),
        "timestamp": crate::timestamp::format_timestamp(now_ms / 1000),
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": "FlowlogForwarder",
                "Dimensions": [["FunctionName"]],
                "Metrics": [
                    metric("Units", "Count"), metric("RecordsRead", "Count"), metric("RecordsForwarded", "Count"),
                    metric("RecordsFiltered", "Count"), metric("RecordsMalformed", "Count"), metric("RecordsFailed", "Count"),
                    metric("FailedUnits", "Count"), metric("RecordsEnriched", "Count"),
                    metric("RecordsUnenriched", "Count"), metric("Ec2Requests", "Count"),
                    metric("RejectAttributionOverflow", "Count"), metric("ThreatIntelMatches", "Count"), metric("BytesIn", "Bytes"),
                    metric("BytesOut", "Bytes"), metric("Milliseconds", "Milliseconds"),
                ],
            }],
        },
        "message": "invocation summary",
        "FunctionName": function,
        "Units": units,
        "RecordsRead": total.read,
        "RecordsForwarded": total.forwarded,
        "RecordsFiltered": total.filtered,
        "RecordsMalformed": total.malformed,
        "RecordsFailed": total.failed,
        "FailedUnits": failures,
        "RecordsEnriched": total.enriched,
        "RecordsUnenriched": total.unenriched,
        "Ec2Requests": ec2_requests,
        "RejectAttributionOverflow": total.attribution_overflow,
        "ThreatIntelMatches": total.threat_matches,
        "BytesIn": total.bytes_in,
        "BytesOut": total.bytes_out,
        "Milliseconds": millis,
    })
}

/// The level of the summary line: the function's application log level (Lambda's
/// `AWS_LAMBDA_LOG_LEVEL`) when it is WARN, ERROR or FATAL, so that Lambda's filter
/// keeps the line; INFO otherwise (where it is kept anyway).
pub fn summary_level(application_level: Option<&str>) -> &'static str {
    match application_level.map(str::to_ascii_uppercase).as_deref() {
        Some("WARN") => "WARN",
        Some("ERROR") => "ERROR",
        Some("FATAL") => "FATAL",
        _ => "INFO",
    }
}
