//! Elasticsearch `_bulk` responses, read item by item: which documents are done,
//! which are retried, which failed and why.

/// The fate of one item of an Elasticsearch bulk request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BulkItem {
    Done,
    Retry(String),
    Failed(String),
}

/// Reads a `_bulk` response: 2xx and 409 (already created: an idempotent retry) are
/// done, 429 and 5xx are retried, anything else failed with the reason. Items are read
/// whatever the `errors` flag says: a document without its item in the response
/// (fewer items than documents, or none) failed.
pub(super) fn bulk_outcome(body: &[u8], expected: usize) -> Result<Vec<BulkItem>, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let items = v
        .get("items")
        .and_then(|i| i.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let missing = format!(
        "the bulk response has {} items for {expected} documents: this one is missing",
        items.len()
    );
    let mut outcome: Vec<BulkItem> = items.iter().take(expected).map(bulk_item).collect();
    outcome.resize_with(expected, || BulkItem::Failed(missing.clone()));
    Ok(outcome)
}

/// The fate of one bulk response item.
fn bulk_item(item: &serde_json::Value) -> BulkItem {
    let result = item.as_object().and_then(|o| o.values().next());
    let status = result
        .and_then(|r| r.get("status"))
        .and_then(|s| s.as_u64())
        .unwrap_or(0);
    let error = || {
        let e = result.and_then(|r| r.get("error"));
        let kind = e
            .and_then(|e| e.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("error");
        let why = e
            .and_then(|e| e.get("reason"))
            .and_then(|t| t.as_str())
            .unwrap_or("");
        format!(
            "bulk item status {status}: {kind}: {}",
            crate::flowlog::record::shorten(why)
        )
    };
    match status {
        200..=299 | 409 => BulkItem::Done,
        429 | 500..=599 => BulkItem::Retry(error()),
        _ => BulkItem::Failed(error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_items() {
        let body = br#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":409}},{"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}},{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}]}"#;
        let items = bulk_outcome(body, 4).unwrap();
        assert_eq!(items[0], BulkItem::Done);
        assert_eq!(items[1], BulkItem::Done);
        assert!(matches!(&items[2], BulkItem::Retry(r) if r.contains("es_rejected")));
        assert!(
            matches!(&items[3], BulkItem::Failed(r) if r.contains("mapper_parsing_exception: bad"))
        );
        // Items missing from the response fail, whatever `errors` says.
        let missing = |body: &[u8], n| {
            let items = bulk_outcome(body, n).unwrap();
            assert_eq!(items.len(), n);
            items
                .iter()
                .filter(|i| matches!(i, BulkItem::Failed(r) if r.contains("missing")))
                .count()
        };
        assert_eq!(missing(br#"{"errors":true,"items":[]}"#, 1), 1);
        assert_eq!(missing(br#"{"errors":false}"#, 2), 2);
        assert_eq!(
            missing(
                br#"{"errors":false,"items":[{"create":{"status":201}}]}"#,
                3
            ),
            2
        );
        assert!(bulk_outcome(b"not json", 1).is_err());
    }
}
