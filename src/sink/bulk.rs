//! Elasticsearch `_bulk` responses, read item by item and matched to the documents of
//! the request by `_id`: which documents are done, which are retried, which failed and
//! why. The response is read as a stream of items (never held as a JSON tree), and a
//! response with more items than documents is refused.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::redact::Secrets;
use crate::text::shorten;

/// The fate of one item of an Elasticsearch bulk request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BulkItem {
    Done,
    Retry(String),
    Failed(String),
}

/// Reads a `_bulk` response for documents whose `_id`s are `ids` (in request order):
/// 2xx and 409 (already created: an idempotent retry) are done, 429 and 5xx are
/// retried, anything else failed with the reason (scrubbed of `secrets`, then
/// shortened). An item is matched to a document by its `_id`, never by its position:
/// a document no item names (a short reply, items with other ids) failed, whatever
/// the `errors` flag says.
pub(super) fn bulk_outcome(
    body: &[u8],
    ids: &[&str],
    secrets: &Secrets,
) -> Result<Vec<BulkItem>, String> {
    let mut by_id: Vec<(&str, usize)> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    by_id.sort_unstable();
    let mut outcome: Vec<Option<BulkItem>> = Vec::new();
    outcome.resize_with(ids.len(), || None);
    let mut reading = Reading {
        by_id: &by_id,
        outcome: &mut outcome,
        secrets,
        items: 0,
        unmatched: 0,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    Response(&mut reading)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| e.to_string())?;
    let (items, unmatched) = (reading.items, reading.unmatched);
    Ok(outcome
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                BulkItem::Failed(format!(
                    "no item of the bulk response has this document's _id ({items} items for {} documents, {unmatched} with an _id not sent)",
                    ids.len()
                ))
            })
        })
        .collect())
}

/// The state of one response being read.
struct Reading<'r, 'i> {
    /// The request's ids, sorted, with their positions.
    by_id: &'r [(&'i str, usize)],
    outcome: &'r mut Vec<Option<BulkItem>>,
    secrets: &'r Secrets,
    items: usize,
    unmatched: usize,
}

impl Reading<'_, '_> {
    /// Records an item's result on the first document with its `_id` not yet decided.
    fn record(&mut self, result: ItemResult) {
        let Some(id) = result.id.as_deref() else {
            self.unmatched += 1;
            return;
        };
        let first = self.by_id.partition_point(|(i, _)| *i < id);
        let position = self.by_id[first..]
            .iter()
            .take_while(|(i, _)| *i == id)
            .map(|&(_, p)| p)
            .find(|&p| self.outcome[p].is_none());
        match position {
            Some(p) => self.outcome[p] = Some(result.outcome(self.secrets)),
            None => self.unmatched += 1,
        }
    }
}

/// One item's result (`{"create": {...}}`'s inner object); other fields are skipped.
#[derive(Deserialize)]
struct ItemResult {
    #[serde(rename = "_id")]
    id: Option<String>,
    status: Option<u64>,
    error: Option<ItemError>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ItemError {
    Object {
        #[serde(rename = "type")]
        kind: Option<String>,
        reason: Option<String>,
    },
    Text(String),
    Other(IgnoredAny),
}

impl ItemResult {
    fn outcome(&self, secrets: &Secrets) -> BulkItem {
        let status = self.status.unwrap_or(0);
        let error = || {
            let (kind, why) = match &self.error {
                Some(ItemError::Object { kind, reason }) => (
                    kind.as_deref().unwrap_or("error"),
                    reason.as_deref().unwrap_or(""),
                ),
                Some(ItemError::Text(text)) => ("error", text.as_str()),
                Some(ItemError::Other(_)) | None => ("error", ""),
            };
            let text = secrets.scrub(&format!("{kind}: {why}"));
            format!("bulk item status {status}: {}", shorten(&text))
        };
        match status {
            200..=299 | 409 => BulkItem::Done,
            429 | 500..=599 => BulkItem::Retry(error()),
            _ => BulkItem::Failed(error()),
        }
    }
}

/// The response object: only `items` is read.
struct Response<'a, 'r, 'i>(&'a mut Reading<'r, 'i>);

impl<'de> DeserializeSeed<'de> for Response<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Response<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a bulk response object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "items" {
                map.next_value_seed(Items(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The `items` array, one item at a time.
struct Items<'a, 'r, 'i>(&'a mut Reading<'r, 'i>);

impl<'de> DeserializeSeed<'de> for Items<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Items<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of bulk items")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let expected = self.0.outcome.len();
        while let Some(item) = seq.next_element::<Item>()? {
            self.0.items += 1;
            if self.0.items > expected {
                return Err(de::Error::custom(format!(
                    "more items than the {expected} documents sent"
                )));
            }
            if let Some(result) = item.0 {
                self.0.record(result);
            } else {
                self.0.unmatched += 1;
            }
        }
        Ok(())
    }
}

/// One item: an object with one key, the action (`create`, `index`, ...).
struct Item(Option<ItemResult>);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Item, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a bulk item object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                let mut result = None;
                while let Some(_action) = map.next_key::<IgnoredAny>()? {
                    if result.is_none() {
                        result = Some(map.next_value::<ItemResult>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Item(result))
            }
        }
        d.deserialize_map(ItemVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(body: &str, ids: &[&str]) -> Result<Vec<BulkItem>, String> {
        bulk_outcome(body.as_bytes(), ids, &Secrets::default())
    }

    #[test]
    fn bulk_items() {
        let body = r#"{"errors":true,"items":[{"create":{"_id":"a","status":201}},{"create":{"_id":"b","status":409}},{"create":{"_id":"c","status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}},{"create":{"_id":"d","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}]}"#;
        let items = outcome(body, &["a", "b", "c", "d"]).unwrap();
        assert_eq!(items[0], BulkItem::Done);
        assert_eq!(items[1], BulkItem::Done);
        assert!(matches!(&items[2], BulkItem::Retry(r) if r.contains("es_rejected")));
        assert!(
            matches!(&items[3], BulkItem::Failed(r) if r.contains("mapper_parsing_exception: bad"))
        );
    }

    #[test]
    fn items_are_matched_by_id_not_position() {
        // Reordered: the failed item is the first document's, whatever its position.
        let body = r#"{"items":[{"create":{"_id":"b","status":201}},{"create":{"_id":"a","status":400}}]}"#;
        let items = outcome(body, &["a", "b"]).unwrap();
        assert!(matches!(items[0], BulkItem::Failed(_)));
        assert_eq!(items[1], BulkItem::Done);
        // Wrong ids credit nothing.
        let body = r#"{"items":[{"create":{"_id":"x","status":201}},{"create":{"status":201}}]}"#;
        let items = outcome(body, &["a", "b"]).unwrap();
        assert!(items
            .iter()
            .all(|i| matches!(i, BulkItem::Failed(r) if r.contains("no item"))));
        // One item for two documents of the same id decides only one of them.
        let body = r#"{"items":[{"create":{"_id":"a","status":201}}]}"#;
        let items = outcome(body, &["a", "a"]).unwrap();
        assert_eq!(items[0], BulkItem::Done);
        assert!(matches!(items[1], BulkItem::Failed(_)));
    }

    #[test]
    fn missing_extra_and_unreadable_responses() {
        let missing = |body: &str, n: usize| {
            let ids: Vec<String> = (0..n).map(|i| format!("id{i}")).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            outcome(body, &ids)
                .unwrap()
                .iter()
                .filter(|i| matches!(i, BulkItem::Failed(r) if r.contains("no item")))
                .count()
        };
        assert_eq!(missing(r#"{"errors":true,"items":[]}"#, 1), 1);
        assert_eq!(missing(r#"{"errors":false}"#, 2), 2);
        assert_eq!(
            missing(
                r#"{"errors":false,"items":[{"create":{"_id":"id0","status":201}}]}"#,
                3
            ),
            2
        );
        let two = r#"{"items":[{"create":{"_id":"a","status":201}},{"create":{"_id":"a","status":201}}]}"#;
        assert!(outcome(two, &["a"]).unwrap_err().contains("more items"));
        assert!(outcome("not json", &["a"]).is_err());
        assert!(outcome(r#"{"items":[]} trailing"#, &["a"]).is_err());
    }

    #[test]
    fn reasons_are_scrubbed_before_they_are_shortened() {
        let secrets = Secrets::of(
            &std::collections::BTreeMap::from([(
                "Authorization".to_string(),
                "ApiKey k3y-0123456789abcdefghij".to_string(),
            )]),
            None,
        );
        let reason = format!("{}k3y-0123456789abcdefghij", "x".repeat(50));
        let body = format!(
            r#"{{"items":[{{"create":{{"_id":"a","status":400,"error":{{"type":"t","reason":"{reason}"}}}}}}]}}"#
        );
        let items = bulk_outcome(body.as_bytes(), &["a"], &secrets).unwrap();
        let BulkItem::Failed(text) = &items[0] else {
            panic!("{items:?}")
        };
        assert!(!text.contains("k3y-0123"), "{text}");
    }
}
