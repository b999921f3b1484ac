//! Keeping secrets out of logs and errors: the secret values of a destination, scrubbed
//! from any text taken from a receiver's answer, and URLs shown without their user
//! info, path and query.

use std::collections::BTreeMap;

/// The secret values of a destination (header values, the URL's user info, path and
/// query), to be scrubbed from any text before it is logged or returned: a receiver
/// may echo a request (Elasticsearch's "no handler found for uri [...]", an auth error
/// quoting the header).
#[derive(Debug, Clone, Default)]
pub struct Secrets(Vec<String>);

/// Shortest piece of a header value, path segment or query value taken for a secret on
/// its own (shorter ones are words like `Bearer`, `receiver`, `_bulk`).
const SECRET_PIECE: usize = 8;

impl Secrets {
    /// The secrets of a destination's extra headers and URL.
    pub fn of(headers: &BTreeMap<String, String>, url: Option<&str>) -> Secrets {
        let mut secrets = Vec::new();
        let mut add = |value: &str, whole: bool| {
            let value = value.trim();
            if (whole && value.len() >= 4) || value.len() >= SECRET_PIECE {
                secrets.push(value.to_string());
            }
        };
        for value in headers.values() {
            add(value, true);
            for piece in value.split_whitespace() {
                add(piece, false);
            }
            // Basic credentials, as a receiver may quote them decoded.
            if let Some(encoded) = value.trim().strip_prefix("Basic ") {
                use base64::Engine as _;
                if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) {
                    let decoded = String::from_utf8_lossy(&decoded).into_owned();
                    add(&decoded, true);
                    if let Some((_, password)) = decoded.split_once(':') {
                        add(password, true);
                    }
                }
            }
        }
        if let Some(url) = url.and_then(|u| reqwest::Url::parse(u).ok()) {
            add(url.username(), true);
            if let Some(password) = url.password() {
                add(password, true);
            }
            let path = url.path();
            if path.len() > 1 {
                add(path, false);
                for segment in path.split('/') {
                    add(segment, false);
                }
            }
            if let Some(query) = url.query() {
                add(query, true);
                for (_, value) in url.query_pairs() {
                    add(&value, false);
                }
            }
        }
        // Longest first, so that a value is scrubbed whole before its pieces.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Secrets(secrets)
    }

    /// `text` with every secret value replaced by `<redacted>`.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.0 {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        text
    }
}

/// A URL fit for logs and messages: scheme, host and port only. User info, path and
/// query are removed: receivers put tokens in any of them (a Sumo Logic HTTP source URL
/// carries its token in the path).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => return "<invalid URL>".to_string(),
    };
    let end_of_authority = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end_of_authority);
    let host = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let hidden = if path.is_empty() { "" } else { "/<redacted>" };
    format!("{scheme}://{host}{hidden}")
}
