//! Threat-intelligence matching (THREAT_INTEL_URI): a list of IPv4/IPv6 addresses and
//! CIDRs, one per line with an optional `,label`, `#` comments. `ThreatList` answers
//! which entry (the longest prefix) holds an address; `ThreatIntel` loads the list
//! from S3 or a file, and reads it again after THREAT_INTEL_TTL_SECONDS when its ETag
//! changed, keeping the previous list when a reload fails (the rules of `reload`).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::reload::{check_size, Parser, Reloadable, Reloaded};

/// The threat list, loaded at cold start and read again after its TTL.
pub type ThreatIntel = Reloaded<ThreatList>;

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

/// A list entry: its network and prefix length, its label, and (once the list is
/// built) the nearest entry that holds it. 16 bytes an IPv4 entry, 28 an IPv6 one.
#[derive(Debug, Clone, Copy)]
struct Entry<A> {
    network: A,
    /// Index into `ThreatList::labels`; `NONE` when the entry has none.
    label: u32,
    /// While the list is read, the entry's rank in it (the first listed of equal
    /// entries wins); once built, the index of its parent entry (`NONE` at the top).
    link: u32,
    prefix: u8,
}

const NONE: u32 = u32::MAX;

/// An address family's value, for entries: IPv4 as a `u32`, IPv6 as four big-endian
/// words (`[u32; 4]` orders as the address does, and packs an entry in 28 bytes where a
/// `u128` would take 48).
trait Address: Copy + Ord + std::fmt::Debug {
    const BITS: u8;
    fn from_bits(bits: u128) -> Self;
    fn bits(self) -> u128;
}

impl Address for u32 {
    const BITS: u8 = 32;
    fn from_bits(bits: u128) -> u32 {
        bits as u32
    }
    fn bits(self) -> u128 {
        u128::from(self)
    }
}

impl Address for [u32; 4] {
    const BITS: u8 = 128;
    fn from_bits(bits: u128) -> [u32; 4] {
        [
            (bits >> 96) as u32,
            (bits >> 64) as u32,
            (bits >> 32) as u32,
            bits as u32,
        ]
    }
    fn bits(self) -> u128 {
        self.iter()
            .fold(0u128, |acc, &w| (acc << 32) | u128::from(w))
    }
}

impl<A: Address> Entry<A> {
    /// The last address the entry holds.
    fn end(&self) -> u128 {
        let host_bits = u32::from(A::BITS - self.prefix);
        self.network.bits() | u128::MAX.checked_shr(128 - host_bits).unwrap_or(0)
    }
}

/// The list: entries sorted by network (wider first at equal networks), each linked to
/// the nearest entry that holds it, and a bitmap of the IPv4 /24 networks any entry
/// touches, so that an address on no list (most of them) costs one bit test. The most
/// specific entry holding an address is the last entry starting at or before it, or
/// the nearest of that entry's parents that holds it.
#[derive(Default)]
pub struct ThreatList {
    v4: Vec<Entry<u32>>,
    v6: Vec<Entry<[u32; 4]>>,
    v4_slash24: Vec<u64>,
    labels: Vec<Box<str>>,
    entries: usize,
    /// Lines that were neither an address, a CIDR nor a comment (or were too long).
    pub skipped_lines: u64,
    /// Entries whose label was left off: the list had MAX_LABELS distinct labels.
    pub labels_dropped: u64,
}

impl std::fmt::Debug for ThreatList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreatList")
            .field("entries", &self.entries)
            .field("labels", &self.labels.len())
            .field("skipped_lines", &self.skipped_lines)
            .finish_non_exhaustive()
    }
}

/// Most entries a list may have (4,194,304): a longer list is refused. The memory this
/// takes is bounded by it (README: under 256 MB of peak RSS for any list).
pub const MAX_ENTRIES: usize = 1 << 22;
/// Longest label kept, in bytes: a longer one is cut (at a character boundary).
pub const MAX_LABEL_BYTES: usize = 128;
/// Most distinct labels: an entry with a new label past these keeps no label (counted
/// and warned of).
pub const MAX_LABELS: usize = 65_536;
/// Longest line read: a longer one is skipped as not an entry.
const MAX_LINE_BYTES: usize = 4096;

impl ThreatList {
    /// Parses a whole list's text (tests and benchmarks; lists are read as streams).
    pub fn parse(text: &str, source: &str) -> Result<ThreatList, String> {
        let mut reader = ListReader::new(source);
        reader.feed(text.as_bytes())?;
        reader.finish()
    }

    /// Entries in the list.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The most specific entry holding `ip` (an IPv4-mapped IPv6 address as its IPv4
    /// form).
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<Indicator<'_>> {
        let ip = match ip {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                let net = a >> 8;
                if self.v4_slash24[(net / 64) as usize] & (1 << (net % 64)) == 0 {
                    return None;
                }
                let e = find(&self.v4, a)?;
                Some(self.indicator(IpAddr::V4(e.network.into()), e))
            }
            IpAddr::V6(a) => {
                let e = find(&self.v6, <[u32; 4]>::from_bits(u128::from(a)))?;
                Some(self.indicator(IpAddr::V6(e.network.bits().into()), e))
            }
        }
    }

    fn indicator<A>(&self, network: IpAddr, e: &Entry<A>) -> Indicator<'_> {
        Indicator {
            network,
            prefix: e.prefix,
            label: self.labels.get(e.label as usize).map(|l| &**l),
        }
    }
}

/// The most specific entry of `entries` (built) holding `a`.
fn find<A: Address>(entries: &[Entry<A>], a: A) -> Option<&Entry<A>> {
    let mut at = entries.partition_point(|e| e.network <= a).checked_sub(1)?;
    let bits = a.bits();
    loop {
        let e = entries.get(at)?;
        if bits <= e.end() {
            return Some(e);
        }
        at = e.link as usize;
    }
}

/// A list being read from a stream of bytes: lines split on LF, CRLF or CR (a UTF-8
/// BOM dropped), each parsed as it completes; never more than one line held.
pub struct ListReader {
    source: String,
    line: Vec<u8>,
    /// The current line is over MAX_LINE_BYTES: the rest of it is skipped.
    too_long: bool,
    /// The last byte seen was a CR (a LF right after it ends no other line).
    after_cr: bool,
    number: usize,
    bytes: u64,
    list: ListBuilder,
}

impl ListReader {
    fn new(source: &str) -> ListReader {
        ListReader {
            source: source.to_string(),
            line: Vec::new(),
            too_long: false,
            after_cr: false,
            number: 0,
            bytes: 0,
            list: ListBuilder::default(),
        }
    }

    /// Reads `chunk`; an error when the list passes MAX_LIST_BYTES or MAX_ENTRIES.
    fn feed(&mut self, mut chunk: &[u8]) -> Result<(), String> {
        self.bytes += chunk.len() as u64;
        check_size::<ThreatList>(self.bytes)?;
        while !chunk.is_empty() {
            match memchr::memchr2(b'\n', b'\r', chunk) {
                None => {
                    self.extend(chunk);
                    break;
                }
                Some(i) => {
                    let end = chunk[i];
                    if !(i == 0 && end == b'\n' && self.after_cr) {
                        self.extend(&chunk[..i]);
                        self.end_line()?;
                    }
                    self.after_cr = end == b'\r';
                    chunk = &chunk[i + 1..];
                }
            }
        }
        Ok(())
    }

    fn extend(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.after_cr = false;
        }
        if self.too_long || self.line.len() + bytes.len() > MAX_LINE_BYTES {
            self.too_long = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self) -> Result<(), String> {
        self.number += 1;
        let line = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.too_long) {
            self.list
                .skip(self.number, "(a line over 4096 bytes)", &self.source);
        } else {
            let mut bytes = &line[..];
            if self.number == 1 {
                bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            }
            match std::str::from_utf8(bytes) {
                Ok(text) => self.list.line(self.number, text, &self.source),
                Err(_) => self.list.skip(self.number, "(not UTF-8)", &self.source),
            }
        }
        self.line = line;
        self.line.clear();
        if self.list.entries() > MAX_ENTRIES {
            return Err(format!(
                "the list has more than {MAX_ENTRIES} entries: split it or drop old entries"
            ));
        }
        Ok(())
    }

    /// The list read: refused when it holds no valid entry.
    fn finish(mut self) -> Result<ThreatList, String> {
        if !self.line.is_empty() || self.too_long {
            self.end_line()?;
        }
        let list = self.list.build(&self.source);
        if list.is_empty() {
            return Err(format!(
                "the list has no valid entry ({} lines skipped): an empty or broken list is never used",
                list.skipped_lines
            ));
        }
        Ok(list)
    }
}

/// A list being read: its entries, its distinct labels.
#[derive(Default)]
struct ListBuilder {
    v4: Vec<Entry<u32>>,
    v6: Vec<Entry<[u32; 4]>>,
    labels: Vec<Box<str>>,
    label_index: HashMap<Box<str>, u32>,
    skipped: u64,
    labels_dropped: u64,
}

impl ListBuilder {
    fn entries(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    fn skip(&mut self, number: usize, text: &str, source: &str) {
        self.skipped += 1;
        if self.skipped <= 5 {
            tracing::warn!(list = source, line = number, text = %crate::text::shorten(text), "threat list line is not an address or CIDR: skipped");
        }
    }

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
            self.skip(number, line, source);
            return;
        };
        let label = label.map_or(NONE, |l| self.label(l));
        let link = self.entries() as u32;
        match addr {
            IpAddr::V4(a) => self.v4.push(entry_of(u32::from(a), prefix, label, link)),
            IpAddr::V6(a) => self.v6.push(entry_of(
                <[u32; 4]>::from_bits(u128::from(a)),
                prefix,
                label,
                link,
            )),
        }
    }

    /// The index of `label` (cut to MAX_LABEL_BYTES), shared by every entry that has it.
    fn label(&mut self, label: &str) -> u32 {
        let mut end = label.len().min(MAX_LABEL_BYTES);
        while !label.is_char_boundary(end) {
            end -= 1;
        }
        let label = &label[..end];
        if let Some(&i) = self.label_index.get(label) {
            return i;
        }
        if self.labels.len() >= MAX_LABELS {
            self.labels_dropped += 1;
            return NONE;
        }
        let i = self.labels.len() as u32;
        self.labels.push(label.into());
        self.label_index.insert(label.into(), i);
        i
    }

    fn build(self, source: &str) -> ThreatList {
        if self.skipped > 0 {
            tracing::warn!(
                list = source,
                skipped = self.skipped,
                "threat list lines skipped"
            );
        }
        if self.labels_dropped > 0 {
            tracing::warn!(
                list = source,
                entries = self.labels_dropped,
                "threat list has more than {MAX_LABELS} distinct labels: these entries keep no label"
            );
        }
        let entries = self.v4.len() + self.v6.len();
        drop(self.label_index);
        let v4 = link_parents(self.v4);
        let mut v4_slash24 = vec![0u64; (1 << 24) / 64];
        // Top-level entries are disjoint: each /24 is marked about once.
        for e in v4.iter().filter(|e| e.link == NONE) {
            for net in (e.network >> 8)..=((e.end() as u32) >> 8) {
                v4_slash24[(net / 64) as usize] |= 1 << (net % 64);
            }
        }
        ThreatList {
            v4,
            v6: link_parents(self.v6),
            v4_slash24,
            labels: self.labels,
            entries,
            skipped_lines: self.skipped,
            labels_dropped: self.labels_dropped,
        }
    }
}

/// The entry `addr/prefix` (its network: `addr` with the host bits cleared).
fn entry_of<A: Address>(addr: A, prefix: u8, label: u32, rank: u32) -> Entry<A> {
    let host_bits = u32::from(A::BITS - prefix);
    let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
    Entry {
        network: A::from_bits(addr.bits() & mask),
        label,
        link: rank,
        prefix,
    }
}

/// Sorts entries by network, wider first (CIDRs are nested or disjoint, never partly
/// overlapping), keeps the first listed of equal ones, and links each to its parent,
/// the nearest entry holding it. In place: no second copy of the list.
fn link_parents<A: Address>(mut entries: Vec<Entry<A>>) -> Vec<Entry<A>> {
    entries.sort_unstable_by_key(|e| (e.network, e.prefix, e.link));
    entries.dedup_by(|b, a| a.network == b.network && a.prefix == b.prefix);
    let mut open: Vec<u32> = Vec::new();
    for i in 0..entries.len() {
        let start = entries[i].network.bits();
        while let Some(&top) = open.last() {
            if entries[top as usize].end() >= start {
                break;
            }
            open.pop();
        }
        entries[i].link = open.last().copied().unwrap_or(NONE);
        open.push(i as u32);
    }
    entries.shrink_to_fit();
    entries
}

/// `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `addr/n`; an IPv4-mapped IPv6 entry
/// (`::ffff:a.b.c.d/n`, n >= 96) as its IPv4 form.
fn parse_entry(entry: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match entry.split_once('/') {
        None => (entry, None),
        Some((addr, len)) => (addr, Some(len)),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let full = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match len {
        None => full,
        Some(len) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => {
            len.parse::<u8>().ok().filter(|&p| p <= full)?
        }
        Some(_) => return None,
    };
    if let IpAddr::V6(a) = ip {
        if let (Some(v4), true) = (a.to_ipv4_mapped(), prefix >= 96) {
            return Some((IpAddr::V4(v4), prefix - 96));
        }
    }
    Some((ip, prefix))
}

/// The largest list read: 64 MiB, checked before reading where the size is known
/// (S3's Content-Length, a file's size) and while reading (a pipe).
pub const MAX_LIST_BYTES: u64 = 64 << 20;

impl Reloadable for ThreatList {
    const VARIABLE: &'static str = "THREAT_INTEL_URI";
    const WHAT: &'static str = "threat list";
    const TIMEOUT_VARIABLE: &'static str = "THREAT_INTEL_TIMEOUT_SECONDS";
    const MAX_BYTES: u64 = MAX_LIST_BYTES;
    type Parser = ListReader;

    fn parser(name: &str) -> ListReader {
        ListReader::new(name)
    }

    fn too_large(size: u64) -> String {
        format!(
            "the list is over the {MAX_LIST_BYTES} bytes (64 MiB) a threat list may have ({size} bytes read or declared): split it or drop old entries"
        )
    }

    fn describe(&self) -> String {
        format!(
            "{} entries, {} lines skipped",
            self.len(),
            self.skipped_lines
        )
    }
}

impl Parser<ThreatList> for ListReader {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        ListReader::feed(self, chunk)
    }

    fn finish(self) -> Result<ThreatList, String> {
        ListReader::finish(self)
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
        ).unwrap();
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
        let hosts = ThreatList::parse("198.51.100.7\n198.51.100.9,x\n", "t").unwrap();
        assert!(hosts.lookup("198.51.100.8".parse().unwrap()).is_none());
        assert_eq!(
            hosts
                .lookup("198.51.100.7".parse().unwrap())
                .unwrap()
                .entry(),
            "198.51.100.7"
        );
        let nets = ThreatList::parse("10.1.2.3/16\n2001:db8::/32,x\n", "t").unwrap();
        let hit = nets.lookup("10.1.9.9".parse().unwrap()).unwrap();
        assert_eq!((hit.entry(), hit.label), ("10.1.0.0/16".to_string(), None));
        assert_eq!(
            nets.lookup("2001:db8::1".parse().unwrap()).unwrap().entry(),
            "2001:db8::/32"
        );
        assert!(hosts.lookup("10.0.0.1".parse().unwrap()).is_none());
        let all_v6 = ThreatList::parse("::/0,any\n", "t").unwrap();
        assert!(all_v6.lookup("ffff::1".parse().unwrap()).is_some());
    }

    #[test]
    fn bom_cr_line_ends_and_ipv4_mapped_entries_read_as_ipv4() {
        let list = ThreatList::parse(
            "\u{FEFF}198.51.100.7,first\r203.0.113.0/24,cr\r\n::ffff:192.0.2.0/120,mapped\r::ffff:10.9.9.9\n",
            "t",
        )
        .unwrap();
        assert_eq!((list.len(), list.skipped_lines), (4, 0));
        let label = |ip: &str| {
            list.lookup(ip.parse().unwrap())
                .map(|i| (i.entry(), i.label))
        };
        assert_eq!(
            label("198.51.100.7"),
            Some(("198.51.100.7".into(), Some("first")))
        );
        assert_eq!(
            label("203.0.113.200"),
            Some(("203.0.113.0/24".into(), Some("cr")))
        );
        assert_eq!(
            label("192.0.2.9"),
            Some(("192.0.2.0/24".into(), Some("mapped")))
        );
        assert_eq!(label("10.9.9.9"), Some(("10.9.9.9".into(), None)));
        // A record's IPv4-mapped address matches as its IPv4 form.
        assert_eq!(
            label("::ffff:192.0.2.9"),
            Some(("192.0.2.0/24".into(), Some("mapped")))
        );
    }

    #[test]
    fn a_list_without_a_valid_entry_is_refused() {
        for text in [
            "",
            "# only a comment\n\n",
            "garbage\nmore garbage",
            "\0\0\0\n\0",
            "10.0.0.0/33\n10.0.0.0/\n",
        ] {
            let e = ThreatList::parse(text, "t").unwrap_err();
            assert!(e.contains("no valid entry"), "{text:?}: {e}");
        }
    }

    #[test]
    fn labels_are_cut_and_shared_and_lines_are_bounded() {
        let long = "x".repeat(3_000);
        let text = format!(
            "10.0.0.1,{long}\n10.0.0.2,{long}\n{}\n10.0.0.3\n",
            "9".repeat(5000)
        );
        let list = ThreatList::parse(&text, "t").unwrap();
        assert_eq!((list.len(), list.skipped_lines), (3, 1));
        assert_eq!(list.labels.len(), 1);
        let label = list
            .lookup("10.0.0.2".parse().unwrap())
            .unwrap()
            .label
            .unwrap();
        assert_eq!(label.len(), MAX_LABEL_BYTES);
    }

    #[test]
    fn lookups_agree_with_a_linear_longest_prefix_search() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut text = String::new();
        let mut entries = Vec::new();
        for _ in 0..400 {
            let addr = (next() as u32) & 0xFF0F_FFFF;
            let prefix = (next() % 33) as u8;
            text.push_str(&format!("{}/{prefix}\n", std::net::Ipv4Addr::from(addr)));
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            entries.push((addr & mask, prefix));
        }
        let list = ThreatList::parse(&text, "t").unwrap();
        for _ in 0..20_000 {
            let a = (next() as u32) & 0xFF0F_FFFF;
            let want = entries
                .iter()
                .filter(|(net, p)| {
                    a & u32::MAX.checked_shl(32 - u32::from(*p)).unwrap_or(0) == *net
                })
                .max_by_key(|(_, p)| *p)
                .map(|&(net, p)| (std::net::Ipv4Addr::from(net), p));
            let got = list.lookup(IpAddr::V4(a.into())).map(|i| {
                (
                    match i.network {
                        IpAddr::V4(n) => n,
                        _ => unreachable!(),
                    },
                    i.prefix,
                )
            });
            assert_eq!(got, want, "{}", std::net::Ipv4Addr::from(a));
        }
    }
}
