//! Threat-intelligence matching (THREAT_INTEL_URI): a list of IPv4/IPv6 addresses and
//! CIDRs, one per line with an optional `,label`, `#` comments. `ThreatList` answers
//! which entry (the longest prefix) holds an address; `ThreatIntel` loads the list
//! from S3 or a file, and reads it again after THREAT_INTEL_TTL_SECONDS when its ETag
//! changed, keeping the previous list when a reload fails.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// One matched entry: the list's text of it (`198.51.100.0/24`) and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    pub entry: Box<str>,
    pub label: Option<Box<str>>,
}

/// Address ranges as disjoint sorted intervals, each pointing to the most specific
/// entry that holds it, and a bitmap of the IPv4 /24 networks any entry touches, so
/// that an address on no list (most of them) costs one bit test.
#[derive(Debug, Default)]
pub struct ThreatList {
    v4: Vec<(u32, u32, u32)>,
    v6: Vec<(u128, u128, u32)>,
    v4_slash24: Vec<u64>,
    indicators: Vec<Indicator>,
    /// Lines that were neither an address, a CIDR nor a comment.
    pub skipped_lines: u64,
}

impl ThreatList {
    /// Parses the list's text. Bad lines are skipped, counted, and the first few named
    /// in a warning.
    pub fn parse(text: &str, source: &str) -> ThreatList {
        let mut v4: Vec<(u128, u128, u32)> = Vec::new();
        let mut v6: Vec<(u128, u128, u32)> = Vec::new();
        let mut indicators = Vec::new();
        let mut labels: HashMap<&str, Box<str>> = HashMap::new();
        let mut skipped = 0u64;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (entry, label) = match line.split_once(',') {
                Some((e, l)) => (e.trim(), Some(l.trim()).filter(|l| !l.is_empty())),
                None => (line, None),
            };
            let Some((addr, prefix)) = parse_entry(entry) else {
                skipped += 1;
                if skipped <= 5 {
                    tracing::warn!(list = source, line = n + 1, text = %crate::flowlog::record::shorten(line), "threat list line is not an address or CIDR: skipped");
                }
                continue;
            };
            let label = label.map(|l| labels.entry(l).or_insert_with(|| l.into()).clone());
            let index = indicators.len() as u32;
            indicators.push(Indicator {
                entry: entry.into(),
                label,
            });
            match addr {
                IpAddr::V4(a) => {
                    let (start, end) = range(u32::from(a) as u128, prefix, 32);
                    v4.push((start, end, index));
                }
                IpAddr::V6(a) => {
                    let (start, end) = range(u128::from(a), prefix, 128);
                    v6.push((start, end, index));
                }
            }
        }
        if skipped > 0 {
            tracing::warn!(list = source, skipped, "threat list lines skipped");
        }
        let v4: Vec<(u32, u32, u32)> = flatten(v4)
            .into_iter()
            .map(|(s, e, i)| (s as u32, e as u32, i))
            .collect();
        let mut v4_slash24 = vec![0u64; (1 << 24) / 64];
        for &(s, e, _) in &v4 {
            for net in (s >> 8)..=(e >> 8) {
                v4_slash24[(net / 64) as usize] |= 1 << (net % 64);
            }
        }
        ThreatList {
            v4,
            v6: flatten(v6),
            v4_slash24,
            indicators,
            skipped_lines: skipped,
        }
    }

    /// Entries in the list.
    pub fn len(&self) -> usize {
        self.indicators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indicators.is_empty()
    }

    /// The most specific entry holding `ip`.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<&Indicator> {
        let index = match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                let net = a >> 8;
                if self.v4_slash24[(net / 64) as usize] & (1 << (net % 64)) == 0 {
                    return None;
                }
                find(&self.v4, a)?
            }
            IpAddr::V6(a) => find(&self.v6, u128::from(a))?,
        };
        self.indicators.get(index as usize)
    }
}

fn find<T: Ord + Copy>(ranges: &[(T, T, u32)], a: T) -> Option<u32> {
    let i = ranges.partition_point(|&(s, _, _)| s <= a);
    let &(_, end, index) = ranges.get(i.checked_sub(1)?)?;
    (a <= end).then_some(index)
}

/// `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `addr/n`.
fn parse_entry(entry: &str) -> Option<(IpAddr, u32)> {
    match entry.split_once('/') {
        None => {
            let ip: IpAddr = entry.parse().ok()?;
            Some((ip, if ip.is_ipv4() { 32 } else { 128 }))
        }
        Some((addr, len)) => {
            let ip: IpAddr = addr.parse().ok()?;
            let len: u32 = len.parse().ok()?;
            (len <= if ip.is_ipv4() { 32 } else { 128 }).then_some((ip, len))
        }
    }
}

/// The first and last address of `addr/prefix` in a `bits`-bit space.
fn range(addr: u128, prefix: u32, bits: u32) -> (u128, u128) {
    let host_bits = bits - prefix;
    let mask = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (addr & !mask, (addr & !mask) | mask)
}

/// CIDR ranges (nested or disjoint, never partly overlapping) as disjoint sorted
/// intervals, each pointing to the most specific range holding it (the first listed
/// of equal ones).
fn flatten(mut ranges: Vec<(u128, u128, u32)>) -> Vec<(u128, u128, u32)> {
    // Wider first at equal starts: a parent before its children.
    ranges.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    ranges.dedup_by(|b, a| a.0 == b.0 && a.1 == b.1);
    let mut out: Vec<(u128, u128, u32)> = Vec::with_capacity(ranges.len());
    let mut open: Vec<(u128, u32)> = Vec::new();
    // The next address not yet given to an interval (None: past the end of the space).
    let mut next: Option<u128> = Some(0);
    let emit = |out: &mut Vec<(u128, u128, u32)>, next: &mut Option<u128>, to: u128, index| {
        if let Some(from) = *next {
            if from <= to {
                out.push((from, to, index));
            }
        }
        *next = to.checked_add(1);
    };
    for (start, end, index) in ranges {
        while let Some(&(top_end, top_index)) = open.last() {
            if top_end >= start {
                break;
            }
            emit(&mut out, &mut next, top_end, top_index);
            open.pop();
        }
        if let Some(&(_, top_index)) = open.last() {
            if start > 0 {
                emit(&mut out, &mut next, start - 1, top_index);
            }
        }
        next = Some(next.map_or(start, |n| n.max(start)));
        open.push((end, index));
    }
    while let Some((top_end, top_index)) = open.pop() {
        emit(&mut out, &mut next, top_end, top_index);
    }
    out
}

/// Where the list is read from.
#[derive(Debug, Clone)]
pub enum ListSource {
    S3 { bucket: String, key: String },
    File(std::path::PathBuf),
}

impl ListSource {
    /// `s3://bucket/key`, or a path.
    pub fn parse(uri: &str) -> Result<ListSource, String> {
        match uri.strip_prefix("s3://") {
            Some(rest) => match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(ListSource::S3 {
                        bucket: bucket.to_string(),
                        key: key.to_string(),
                    })
                }
                _ => Err(format!("'{uri}' is not s3://bucket/key")),
            },
            None => Ok(ListSource::File(uri.into())),
        }
    }
}

/// The list, loaded at cold start and refreshed after its TTL.
pub struct ThreatIntel {
    source: ListSource,
    ttl: Duration,
    s3: Option<aws_sdk_s3::Client>,
    state: RwLock<State>,
    /// How many times the list's content was read (not counting unchanged ETags).
    downloads: AtomicU64,
}

#[derive(Default)]
struct State {
    list: Option<Arc<ThreatList>>,
    etag: Option<String>,
    checked: Option<Instant>,
}

/// What a reload found.
enum Fetched {
    Unchanged,
    New(String, Option<String>),
}

impl ThreatIntel {
    pub fn new(source: ListSource, ttl: Duration, s3: Option<aws_sdk_s3::Client>) -> ThreatIntel {
        ThreatIntel {
            source,
            ttl,
            s3,
            state: RwLock::new(State::default()),
            downloads: AtomicU64::new(0),
        }
    }

    /// How many times the list's content was read.
    pub fn downloads(&self) -> u64 {
        self.downloads.load(Ordering::Relaxed)
    }

    /// The list to match with: loaded when there is none, read again when its TTL has
    /// passed (not downloaded when its ETag is unchanged). A failed reload keeps the
    /// previous list (with a warning); with no list at all it is an error.
    pub async fn current(&self) -> Result<Arc<ThreatList>, String> {
        let (list, etag, due) = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            let due = state.checked.is_none_or(|t| t.elapsed() >= self.ttl);
            (state.list.clone(), state.etag.clone(), due)
        };
        if let (Some(list), false) = (&list, due) {
            return Ok(list.clone());
        }
        let fetched = self.fetch(etag.as_deref().filter(|_| list.is_some())).await;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match fetched {
            Ok(Fetched::Unchanged) => {
                state.checked = Some(Instant::now());
            }
            Ok(Fetched::New(text, etag)) => {
                self.downloads.fetch_add(1, Ordering::Relaxed);
                let parsed = Arc::new(ThreatList::parse(&text, &self.name()));
                tracing::info!(list = %self.name(), entries = parsed.len(), skipped = parsed.skipped_lines, "threat list loaded");
                state.list = Some(parsed);
                state.etag = etag;
                state.checked = Some(Instant::now());
            }
            Err(e) => {
                if state.list.is_none() {
                    return Err(format!("THREAT_INTEL_URI {}: {e}", self.name()));
                }
                tracing::warn!(list = %self.name(), error = %e, "threat list reload failed: the previous list stays in use");
                state.checked = Some(Instant::now());
            }
        }
        state
            .list
            .clone()
            .ok_or_else(|| format!("THREAT_INTEL_URI {}: not loaded", self.name()))
    }

    fn name(&self) -> String {
        match &self.source {
            ListSource::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
            ListSource::File(path) => path.display().to_string(),
        }
    }

    async fn fetch(&self, etag: Option<&str>) -> Result<Fetched, String> {
        match &self.source {
            ListSource::File(path) => std::fs::read_to_string(path)
                .map(|text| Fetched::New(text, None))
                .map_err(|e| e.to_string()),
            ListSource::S3 { bucket, key } => {
                let s3 = self.s3.as_ref().ok_or("no S3 client")?;
                let mut request = s3.get_object().bucket(bucket).key(key);
                if let Some(etag) = etag {
                    request = request.if_none_match(etag);
                }
                let object = match request.send().await {
                    Ok(o) => o,
                    Err(e) => {
                        let status = e.raw_response().map(|r| r.status().as_u16());
                        if status == Some(304) {
                            return Ok(Fetched::Unchanged);
                        }
                        return Err(aws_sdk_s3::error::DisplayErrorContext(&e).to_string());
                    }
                };
                let etag = object.e_tag().map(str::to_string);
                let bytes = object
                    .body
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .into_bytes();
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| "the list is not UTF-8 text".to_string())?;
                Ok(Fetched::New(text, etag))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_nested_ranges_flatten() {
        let list = ThreatList::parse(
            "# feed\n10.0.0.0/8,wide\n10.1.0.0/16,narrow\n10.1.2.3,host\nbad line\n2001:db8::/32,v6\n0.0.0.0/0,everything\n10.1.0.0/16,duplicate\n",
            "test",
        );
        assert_eq!(list.len(), 6);
        assert_eq!(list.skipped_lines, 1);
        let label = |ip: &str| {
            list.lookup(ip.parse().unwrap())
                .and_then(|i| i.label.as_deref().map(str::to_string))
        };
        assert_eq!(label("10.1.2.3").as_deref(), Some("host"));
        assert_eq!(label("10.1.2.4").as_deref(), Some("narrow"));
        assert_eq!(label("10.2.0.0").as_deref(), Some("wide"));
        assert_eq!(label("10.255.255.255").as_deref(), Some("wide"));
        assert_eq!(label("11.0.0.1").as_deref(), Some("everything"));
        assert_eq!(label("255.255.255.255").as_deref(), Some("everything"));
        assert_eq!(label("2001:db8::5").as_deref(), Some("v6"));
        assert_eq!(label("2001:db9::5"), None);
        let hosts = ThreatList::parse("198.51.100.7\n198.51.100.9,x\n", "t");
        assert!(hosts.lookup("198.51.100.8".parse().unwrap()).is_none());
        assert_eq!(
            &*hosts.lookup("198.51.100.7".parse().unwrap()).unwrap().entry,
            "198.51.100.7"
        );
        assert!(hosts.lookup("10.0.0.1".parse().unwrap()).is_none());
        let all_v6 = ThreatList::parse("::/0,any\n", "t");
        assert!(all_v6.lookup("ffff::1".parse().unwrap()).is_some());
    }
}
