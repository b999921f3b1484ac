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

/// A matched list entry: its network and prefix length, and its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indicator<'l> {
    pub network: IpAddr,
    pub prefix: u8,
    pub label: Option<&'l str>,
}

impl Indicator<'_> {
    /// The entry as a list writes it: `198.51.100.0/24`, or an address alone.
    pub fn entry(&self) -> String {
        let full = if self.network.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            self.network.to_string()
        } else {
            format!("{}/{}", self.network, self.prefix)
        }
    }
}

/// An address range and the list entry (network, prefix, label) it belongs to.
#[derive(Debug, Clone, Copy)]
struct Range<T> {
    start: T,
    end: T,
    network: T,
    prefix: u8,
    /// Index into `ThreatList::labels`; `NO_LABEL` when the entry has none.
    label: u32,
}

const NO_LABEL: u32 = u32::MAX;

/// Address ranges as disjoint sorted intervals, each pointing to the most specific
/// entry that holds it, and a bitmap of the IPv4 /24 networks any entry touches, so
/// that an address on no list (most of them) costs one bit test. About 20 bytes an
/// IPv4 entry (a 1,000,000-entry list: under 64 MB while loading, measured in
/// BENCHMARKS.md).
#[derive(Debug, Default)]
pub struct ThreatList {
    v4: Vec<Range<u32>>,
    v6: Vec<Range<u128>>,
    v4_slash24: Vec<u64>,
    labels: Vec<Box<str>>,
    entries: usize,
    /// Lines that were neither an address, a CIDR nor a comment.
    pub skipped_lines: u64,
}

impl ThreatList {
    /// Parses the list's text. Bad lines are skipped, counted, and the first few named
    /// in a warning.
    pub fn parse(text: &str, source: &str) -> ThreatList {
        let mut list = ListBuilder::default();
        for (n, line) in text.lines().enumerate() {
            list.line(n + 1, line, source);
        }
        list.build(source)
    }

    /// Parses a list read line by line (a file), without holding its whole text.
    pub fn read(reader: impl std::io::BufRead, source: &str) -> std::io::Result<ThreatList> {
        let mut list = ListBuilder::default();
        for (n, line) in reader.lines().enumerate() {
            list.line(n + 1, &line?, source);
        }
        Ok(list.build(source))
    }

    /// `read` for a stream (an S3 object's body).
    pub async fn read_stream(
        reader: impl tokio::io::AsyncBufRead + Unpin,
        source: &str,
    ) -> std::io::Result<ThreatList> {
        use tokio::io::AsyncBufReadExt;
        let mut list = ListBuilder::default();
        let mut lines = reader.lines();
        let mut n = 0;
        while let Some(line) = lines.next_line().await? {
            n += 1;
            list.line(n, &line, source);
        }
        Ok(list.build(source))
    }

    /// Entries in the list.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The most specific entry holding `ip`.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<Indicator<'_>> {
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                let net = a >> 8;
                if self.v4_slash24[(net / 64) as usize] & (1 << (net % 64)) == 0 {
                    return None;
                }
                let r = find(&self.v4, a)?;
                Some(self.indicator(IpAddr::V4(r.network.into()), r.prefix, r.label))
            }
            IpAddr::V6(a) => {
                let r = find(&self.v6, u128::from(a))?;
                Some(self.indicator(IpAddr::V6(r.network.into()), r.prefix, r.label))
            }
        }
    }

    fn indicator(&self, network: IpAddr, prefix: u8, label: u32) -> Indicator<'_> {
        Indicator {
            network,
            prefix,
            label: self.labels.get(label as usize).map(|l| &**l),
        }
    }
}

/// A list being read: its entries as ranges, its distinct labels.
#[derive(Default)]
struct ListBuilder {
    v4: Vec<Range<u32>>,
    v6: Vec<Range<u128>>,
    labels: Vec<Box<str>>,
    label_index: HashMap<Box<str>, u32>,
    skipped: u64,
}

impl ListBuilder {
    fn line(&mut self, number: usize, line: &str, source: &str) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        let (entry, label) = match line.split_once(',') {
            Some((e, l)) => (e.trim(), Some(l.trim()).filter(|l| !l.is_empty())),
            None => (line, None),
        };
        let Some((addr, prefix)) = parse_entry(entry) else {
            self.skipped += 1;
            if self.skipped <= 5 {
                tracing::warn!(list = source, line = number, text = %crate::text::shorten(line), "threat list line is not an address or CIDR: skipped");
            }
            return;
        };
        let label = match label {
            None => NO_LABEL,
            Some(l) => match self.label_index.get(l) {
                Some(&i) => i,
                None => {
                    let i = self.labels.len() as u32;
                    self.labels.push(l.into());
                    self.label_index.insert(l.into(), i);
                    i
                }
            },
        };
        match addr {
            IpAddr::V4(a) => self.v4.push(Range::of(u32::from(a), prefix, label)),
            IpAddr::V6(a) => self.v6.push(Range::of(u128::from(a), prefix, label)),
        }
    }

    fn build(self, source: &str) -> ThreatList {
        if self.skipped > 0 {
            tracing::warn!(
                list = source,
                skipped = self.skipped,
                "threat list lines skipped"
            );
        }
        let entries = self.v4.len() + self.v6.len();
        let v4 = flatten(self.v4);
        let mut v4_slash24 = vec![0u64; (1 << 24) / 64];
        for r in &v4 {
            for net in (r.start >> 8)..=(r.end >> 8) {
                v4_slash24[(net / 64) as usize] |= 1 << (net % 64);
            }
        }
        ThreatList {
            v4,
            v6: flatten(self.v6),
            v4_slash24,
            labels: self.labels,
            entries,
            skipped_lines: self.skipped,
        }
    }
}

/// An address type ranges are made of.
trait Address: Copy + Ord + std::fmt::Debug {
    const ZERO: Self;
    fn mask(prefix: u8) -> Self;
    fn and(self, other: Self) -> Self;
    fn or_not(self, mask: Self) -> Self;
    fn succ(self) -> Option<Self>;
    fn pred(self) -> Option<Self>;
}

macro_rules! address {
    ($t:ty) => {
        impl Address for $t {
            const ZERO: Self = 0;
            fn mask(prefix: u8) -> Self {
                <$t>::MAX
                    .checked_shl(<$t>::BITS - prefix as u32)
                    .unwrap_or(0)
            }
            fn and(self, other: Self) -> Self {
                self & other
            }
            fn or_not(self, mask: Self) -> Self {
                self | !mask
            }
            fn succ(self) -> Option<Self> {
                self.checked_add(1)
            }
            fn pred(self) -> Option<Self> {
                self.checked_sub(1)
            }
        }
    };
}
address!(u32);
address!(u128);

impl<T: Address> Range<T> {
    /// The range of `addr/prefix`.
    fn of(addr: T, prefix: u8, label: u32) -> Range<T> {
        let mask = T::mask(prefix);
        let network = addr.and(mask);
        Range {
            start: network,
            end: network.or_not(mask),
            network,
            prefix,
            label,
        }
    }
}

fn find<T: Address>(ranges: &[Range<T>], a: T) -> Option<&Range<T>> {
    let i = ranges.partition_point(|r| r.start <= a);
    let r = ranges.get(i.checked_sub(1)?)?;
    (a <= r.end).then_some(r)
}

/// `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `addr/n`.
fn parse_entry(entry: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match entry.split_once('/') {
        None => (entry, None),
        Some((addr, len)) => (addr, Some(len)),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let full = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match len {
        None => full,
        Some(len) => len.parse::<u8>().ok().filter(|&p| p <= full)?,
    };
    Some((ip, prefix))
}

/// CIDR ranges (nested or disjoint, never partly overlapping) as disjoint sorted
/// intervals, each keeping the most specific entry holding it (the first listed of
/// equal ones).
fn flatten<T: Address>(mut ranges: Vec<Range<T>>) -> Vec<Range<T>> {
    // Wider first at equal starts: a parent before its children; stable, so the first
    // listed of equal ranges stays first.
    ranges.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    ranges.dedup_by(|b, a| a.start == b.start && a.end == b.end);
    let mut out: Vec<Range<T>> = Vec::with_capacity(ranges.len());
    let mut open: Vec<Range<T>> = Vec::new();
    // The next address not yet given to an interval (None: past the end of the space).
    let mut next: Option<T> = Some(T::ZERO);
    let emit = |out: &mut Vec<Range<T>>, next: &mut Option<T>, to: T, owner: &Range<T>| {
        if let Some(from) = *next {
            if from <= to {
                out.push(Range {
                    start: from,
                    end: to,
                    ..*owner
                });
            }
        }
        *next = to.succ();
    };
    for range in ranges {
        while let Some(top) = open.last().copied() {
            if top.end >= range.start {
                break;
            }
            emit(&mut out, &mut next, top.end, &top);
            open.pop();
        }
        if let (Some(top), Some(before)) = (open.last().copied(), range.start.pred()) {
            emit(&mut out, &mut next, before, &top);
        }
        next = Some(next.map_or(range.start, |n| n.max(range.start)));
        open.push(range);
    }
    while let Some(top) = open.pop() {
        emit(&mut out, &mut next, top.end, &top);
    }
    out.shrink_to_fit();
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
    New(ThreatList, Option<String>),
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
            Ok(Fetched::New(parsed, etag)) => {
                self.downloads.fetch_add(1, Ordering::Relaxed);
                let parsed = Arc::new(parsed);
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
        use std::io::Read;
        match &self.source {
            ListSource::File(path) => {
                let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
                let size = file.metadata().map_err(|e| e.to_string())?.len();
                check_size(size)?;
                let reader = std::io::BufReader::new(file.take(MAX_LIST_BYTES));
                let list = ThreatList::read(reader, &self.name()).map_err(read_error)?;
                Ok(Fetched::New(list, None))
            }
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
                check_size(object.content_length().unwrap_or(0).max(0) as u64)?;
                let etag = object.e_tag().map(str::to_string);
                let body =
                    tokio::io::AsyncReadExt::take(object.body.into_async_read(), MAX_LIST_BYTES);
                let reader = tokio::io::BufReader::new(body);
                let list = ThreatList::read_stream(reader, &self.name())
                    .await
                    .map_err(read_error)?;
                Ok(Fetched::New(list, etag))
            }
        }
    }
}

/// The largest list read: about 4 million entries, which take about 20 bytes each once
/// loaded. A list's size is checked before it is read.
pub const MAX_LIST_BYTES: u64 = 64 << 20;

fn check_size(size: u64) -> Result<(), String> {
    if size > MAX_LIST_BYTES {
        return Err(format!(
            "the list is {size} bytes, over the {MAX_LIST_BYTES} bytes (64 MiB) a threat list may have: split it or drop old entries"
        ));
    }
    Ok(())
}

fn read_error(e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::InvalidData {
        "the list is not UTF-8 text".to_string()
    } else {
        e.to_string()
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
                .and_then(|i| i.label.map(str::to_string))
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
            hosts
                .lookup("198.51.100.7".parse().unwrap())
                .unwrap()
                .entry(),
            "198.51.100.7"
        );
        let nets = ThreatList::parse("10.1.2.3/16\n2001:db8::/32,x\n", "t");
        let hit = nets.lookup("10.1.9.9".parse().unwrap()).unwrap();
        assert_eq!((hit.entry(), hit.label), ("10.1.0.0/16".to_string(), None));
        assert_eq!(
            nets.lookup("2001:db8::1".parse().unwrap()).unwrap().entry(),
            "2001:db8::/32"
        );
        assert!(hosts.lookup("10.0.0.1".parse().unwrap()).is_none());
        let all_v6 = ThreatList::parse("::/0,any\n", "t");
        assert!(all_v6.lookup("ffff::1".parse().unwrap()).is_some());
    }
}
