//! What a receiver's 2xx answer says of the documents sent (`Answer`), and reading an
//! answer's body with a bound. Each destination's module reads its own answers into
//! these; the HTTP loop (`http`) acts on them.

use std::time::Instant;

use super::settings::Settings;

/// What a 2xx answer says of the documents of one request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// Every document was taken.
    Delivered,
    /// One outcome per document, in the order they were sent.
    Items(Vec<ItemOutcome>),
    /// The answer refuses the whole request (not retried): why.
    Failed(String),
}

/// The fate of one document of a request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ItemOutcome {
    Done,
    Retry(String),
    Failed(String),
}

/// What reading an answer may use: the client (Splunk asks for acknowledgements with
/// it), the settings the request was made with, and the deadline.
pub(super) struct Exchange<'a> {
    pub(super) client: &'a reqwest::Client,
    pub(super) settings: &'a Settings,
    pub(super) deadline: Option<Instant>,
    /// The `event.id`s of the documents sent, in order.
    pub(super) ids: &'a [&'a str],
    /// The request body's size before compression.
    pub(super) framed_len: usize,
}

/// Most bytes of an error response read for its message.
pub(super) const ERROR_BODY_BYTES: usize = 4096;

/// Reads at most `cap` bytes of a response body (under the request's timeout); whether
/// the body was read whole. A body declared larger than `cap` is not read past it.
pub(super) async fn read_capped(
    resp: &mut reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let declared = resp.content_length();
    let mut body = Vec::with_capacity(declared.map_or(1024, |n| n.min(cap as u64) as usize));
    while let Some(chunk) = resp.chunk().await? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
        if body.len() == cap && declared.is_none_or(|n| n > cap as u64) {
            return Ok((body, declared.is_some_and(|n| n == cap as u64)));
        }
    }
    Ok((body, true))
}
