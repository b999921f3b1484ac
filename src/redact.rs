//! Keeping secrets out of logs and errors: the secret values of a destination, scrubbed
//! from any text taken from a receiver's answer, and URLs shown without their user
//! info, path and query.

use std::collections::BTreeMap;

use base64::Engine as _;

/// The secret values of a destination (header values, the URL's user info in every
/// form it is sent, path and query), to be scrubbed from any text before it is logged
/// or returned: a receiver may echo a request (Elasticsearch's "no handler found for
/// uri [...]", an auth error quoting the header), whole or cut short.
#[derive(Debug, Clone, Default)]
pub struct Secrets(Vec<String>);

/// Shortest piece of a header value, path segment or query value taken for a secret on
/// its own (shorter ones are words like `Bearer`, `receiver`, `_bulk`); also the
/// shortest start or end of a secret scrubbed where a text cuts it.
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
            // The HTTP client sends the user info as `Authorization: Basic
            // base64(user:password)`, percent-decoded: every form is a secret.
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let user = decode(url.username());
            let password = url.password().map(decode);
            for raw in [Some(url.username()), url.password()].into_iter().flatten() {
                add(raw, true);
            }
            add(&user, true);
            if let Some(password) = &password {
                add(password, true);
            }
            if !user.is_empty() || password.is_some() {
                let pair = format!("{user}:{}", password.as_deref().unwrap_or(""));
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
                add(&pair, true);
                add(&encoded, true);
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

    /// Secrets of given values (the signing credentials of DESTINATION_AUTH=aws-sigv4).
    pub fn from_values<'v>(values: impl IntoIterator<Item = &'v str>) -> Secrets {
        let mut secrets: Vec<String> = values
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Secrets(secrets)
    }

    /// `text` with every secret value replaced by `<redacted>`: whole, and where the
    /// text cuts one short (a receiver's echo ending in `...`), any start or end of it
    /// of at least 8 bytes. Scrub before shortening a text, never after.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.0 {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        for secret in &self.0 {
            if secret.len() > SECRET_PIECE {
                text = scrub_cut(&text, secret);
            }
        }
        text
    }
}

/// `text` with every run of at least SECRET_PIECE bytes that is a start (prefix) or an
/// end (suffix) of `secret` replaced by `<redacted>`.
fn scrub_cut(text: &str, secret: &str) -> String {
    let (t, s) = (text.as_bytes(), secret.as_bytes());
    let head = &s[..SECRET_PIECE];
    let tail = &s[s.len() - SECRET_PIECE..];
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i + SECRET_PIECE <= t.len() {
        let run = if t[i..].starts_with(head) {
            // The longest start of the secret found here.
            t[i..].iter().zip(s).take_while(|(a, b)| a == b).count()
        } else if t[i..i + SECRET_PIECE] == *tail {
            // The end of the secret, from wherever the text starts it.
            SECRET_PIECE
        } else {
            0
        };
        if run >= SECRET_PIECE {
            let mut start = i;
            if run == SECRET_PIECE && t[i..i + SECRET_PIECE] == *tail {
                // Extend back over what else of the secret's end precedes it.
                let mut k = s.len() - SECRET_PIECE;
                while k > 0 && start > copied && t[start - 1] == s[k - 1] {
                    start -= 1;
                    k -= 1;
                }
            }
            let mut end = i + run;
            while !text.is_char_boundary(end) {
                end += 1;
            }
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            out.push_str(&text[copied..start]);
            out.push_str("<redacted>");
            copied = end;
            i = end;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// A URL fit for logs and messages: scheme, host and port only, as the HTTP client
/// reads the URL. User info, path and query are removed: receivers put tokens in any of
/// them (a Sumo Logic HTTP source URL carries its token in the path).
pub fn redact_url(url: &str) -> String {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return "<invalid URL>".to_string();
    };
    let host = parsed.host_str().unwrap_or_default();
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    let hidden =
        if parsed.path().len() > 1 || parsed.query().is_some() || parsed.fragment().is_some() {
            "/<redacted>"
        } else {
            ""
        };
    format!("{}://{host}{port}{hidden}", parsed.scheme())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_secrets_are_scrubbed() {
        let headers = BTreeMap::from([("X-Token".to_string(), "abcdefghijklmnopqrst".to_string())]);
        let secrets = Secrets::of(&headers, None);
        for text in [
            "token [abcdefghijklmnopqrs...] refused",
            "token [abcdefgh",
            "...ijklmnopqrst] refused",
            "abcdefghijklmnopqrst",
        ] {
            let scrubbed = secrets.scrub(text);
            assert!(
                !scrubbed.contains("abcdefgh") && !scrubbed.contains("mnopqrst"),
                "{text} -> {scrubbed}"
            );
            assert!(scrubbed.contains("<redacted>"), "{scrubbed}");
        }
        assert_eq!(secrets.scrub("abcdefg is short"), "abcdefg is short");
    }

    #[test]
    fn url_user_info_in_every_form() {
        let secrets = Secrets::of(
            &BTreeMap::new(),
            Some("https://svc%2Duser:p%40ss-w0rd-1@h/"),
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("svc-user:p@ss-w0rd-1");
        let text =
            format!("got Authorization: Basic {basic} for svc-user p@ss-w0rd-1 p%40ss-w0rd-1");
        let scrubbed = secrets.scrub(&text);
        for leaked in [basic.as_str(), "p@ss-w0rd-1", "p%40ss-w0rd-1", &basic[..12]] {
            assert!(!scrubbed.contains(leaked), "{leaked} in {scrubbed}");
        }
    }

    #[test]
    fn urls_as_the_client_reads_them() {
        assert_eq!(
            redact_url("http://0.0.0.0:9\\@127.0.0.1:1/"),
            "http://0.0.0.0:9/<redacted>"
        );
        assert_eq!(
            redact_url("https://u:p@[::1]:8443/x"),
            "https://[::1]:8443/<redacted>"
        );
        assert_eq!(redact_url("not a url"), "<invalid URL>");
    }
}
