//! Elasticsearch and OpenSearch `_bulk`: each document after a `create` action naming
//! its `_id` (and DESTINATION_INDEX), the `pipeline` parameter (DESTINATION_PIPELINE),
//! and the response read item by item and matched to the documents of the request by
//! `_id`: which documents are done, which are retried, which failed and why. The
//! response is read as a stream of items (never held as a JSON tree), and a response
//! with more items than documents is refused.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::answer::{read_capped, Answer, Exchange, ItemOutcome};
use super::Batch;
use crate::config::Config;
use crate::redact::Secrets;
use crate::text::shorten;

/// Least room a bulk response is given, whatever the request's size.
const MIN_BULK_RESPONSE_BYTES: usize = 64 * 1024;

/// The `_bulk` framing of a destination.
pub(super) struct Bulk {
    /// `_index` of every action (DESTINATION_INDEX); none: the URL names it.
    index: Option<String>,
}

impl Bulk {
    /// The framing `config` asks for; the request's `pipeline` parameter is added to
    /// `url` (DESTINATION_PIPELINE) unless the URL sets one.
    pub(super) fn new(config: &Config, url: &mut reqwest::Url) -> Bulk {
        let has_pipeline = url.query_pairs().any(|(k, _)| k == "pipeline");
        if let (Some(pipeline), false) = (&config.destination_pipeline, has_pipeline) {
            url.query_pairs_mut().append_pair("pipeline", pipeline);
        }
        Bulk {
            index: config.destination_index.clone(),
        }
    }

    /// Bytes an action line adds to a document, its `_id` apart.
    pub(super) fn overhead(config: &Config) -> usize {
        40 + config.destination_index.as_deref().map_or(0, str::len)
    }

    /// The body of a request for the documents `which` of `batch`.
    pub(super) fn frame(&self, batch: &Batch, which: &[usize]) -> Vec<u8> {
        let mut body = Vec::with_capacity(batch.framed_bytes() + 64);
        for &i in which {
            body.extend_from_slice(b"{\"create\":{");
            if let Some(index) = &self.index {
                body.extend_from_slice(b"\"_index\":");
                crate::json::write_str(&mut body, index);
                body.push(b',');
            }
            body.extend_from_slice(b"\"_id\":");
            crate::json::write_str(&mut body, batch.id(i));
            body.extend_from_slice(b"}}\n");
            body.extend_from_slice(batch.doc(i));
            body.push(b'\n');
        }
        body
    }

    /// Reads a 2xx answer: at most four times the request's size (a larger one is
    /// malformed), then each item matched to its document.
    pub(super) async fn read_answer(
        x: &Exchange<'_>,
        resp: &mut reqwest::Response,
    ) -> Result<Answer, reqwest::Error> {
        let s = x.settings;
        let cap = (4 * x.framed_len).max(MIN_BULK_RESPONSE_BYTES);
        let (body, complete) = read_capped(resp, cap).await?;
        if !complete {
            return Ok(Answer::Failed(format!(
                "malformed bulk response from {}: larger than the {cap} bytes read for a request of {} bytes",
                s.shown_url, x.framed_len
            )));
        }
        Ok(match bulk_outcome(&body, x.ids, &s.secrets) {
            Ok(items) => Answer::Items(items),
            Err(e) => Answer::Failed(format!(
                "malformed bulk response from {}: {}",
                s.shown_url,
                shorten(&s.secrets.scrub(&e))
            )),
        })
    }
}

/// Reads a `_bulk` response for documents whose `_id`s are `ids` (in request order):
/// 2xx and 409 (already created: an idempotent retry) are done, 429 and 5xx are
/// retried, anything else failed with the reason (scrubbed of `secrets`, then
/// shortened). An item is matched to a document by its `_id`, never by its position:
/// a document no item names (a short reply, items with other ids) failed, whatever
/// the `errors` flag says.
fn bulk_outcome(body: &[u8], ids: &[&str], secrets: &Secrets) -> Result<Vec<ItemOutcome>, String> {
    let mut by_id: Vec<(&str, usize)> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    by_id.sort_unstable();
    let mut outcome: Vec<Option<ItemOutcome>> = Vec::new();
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
                ItemOutcome::Failed(format!(
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
    outcome: &'r mut Vec<Option<ItemOutcome>>,
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
    fn outcome(&self, secrets: &Secrets) -> ItemOutcome {
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
            200..=299 | 409 => ItemOutcome::Done,
            429 | 500..=599 => ItemOutcome::Retry(error()),
            _ => ItemOutcome::Failed(error()),
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

    fn outcome(body: &str, ids: &[&str]) -> Result<Vec<ItemOutcome>, String> {
        bulk_outcome(body.as_bytes(), ids, &Secrets::default())
    }

    #[test]
    fn bulk_items() {
        let body = r#"{"errors":true,"items":[{"create":{"_id":"a","status":201}},{"create":{"_id":"b","status":409}},{"create":{"_id":"c","status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}},{"create":{"_id":"d","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}]}"#;
        let items = outcome(body, &["a", "b", "c", "d"]).unwrap();
        assert_eq!(items[0], ItemOutcome::Done);
        assert_eq!(items[1], ItemOutcome::Done);
        assert!(matches!(&items[2], ItemOutcome::Retry(r) if r.contains("es_rejected")));
        assert!(
            matches!(&items[3], ItemOutcome::Failed(r) if r.contains("mapper_parsing_exception: bad"))
        );
    }

    #[test]
    fn items_are_matched_by_id_not_position() {
        // Reordered: the failed item is the first document's, whatever its position.
        let body = r#"{"items":[{"create":{"_id":"b","status":201}},{"create":{"_id":"a","status":400}}]}"#;
        let items = outcome(body, &["a", "b"]).unwrap();
        assert!(matches!(items[0], ItemOutcome::Failed(_)));
        assert_eq!(items[1], ItemOutcome::Done);
        // Wrong ids credit nothing.
        let body = r#"{"items":[{"create":{"_id":"x","status":201}},{"create":{"status":201}}]}"#;
        let items = outcome(body, &["a", "b"]).unwrap();
        assert!(items
            .iter()
            .all(|i| matches!(i, ItemOutcome::Failed(r) if r.contains("no item"))));
        // One item for two documents of the same id decides only one of them.
        let body = r#"{"items":[{"create":{"_id":"a","status":201}}]}"#;
        let items = outcome(body, &["a", "a"]).unwrap();
        assert_eq!(items[0], ItemOutcome::Done);
        assert!(matches!(items[1], ItemOutcome::Failed(_)));
    }

    #[test]
    fn missing_extra_and_unreadable_responses() {
        let missing = |body: &str, n: usize| {
            let ids: Vec<String> = (0..n).map(|i| format!("id{i}")).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            outcome(body, &ids)
                .unwrap()
                .iter()
                .filter(|i| matches!(i, ItemOutcome::Failed(r) if r.contains("no item")))
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
        let ItemOutcome::Failed(text) = &items[0] else {
            panic!("{items:?}")
        };
        assert!(!text.contains("k3y-0123"), "{text}");
    }
}
