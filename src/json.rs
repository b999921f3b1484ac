//! The JSON writer every output document is written with: a cursor into a reused
//! buffer (`Out`), an object writer that leaves no empty objects (`Writer`, with its
//! `k!` key literals), string escaping, and the `Document` buffer a record is written
//! into. A leaf module: the ECS and OCSF writers, Parquet rendering and the sink use it.

/// A JSON key literal with its leading separator: `k!("ip")` is `,"ip":`.
macro_rules! k {
    ($key:literal) => {
        concat!(",\"", $key, "\":")
    };
}
pub(crate) use k;

/// The buffer documents are written into, one at a time, reused from one to the next.
/// It keeps the bytes beyond the current document, so that the room made ready for the
/// next one is written over rather than zero-filled again.
#[derive(Debug, Default)]
pub struct Document {
    pub(crate) buf: Vec<u8>,
    pub(crate) len: usize,
}

impl Document {
    pub fn new() -> Document {
        Document::default()
    }

    /// The last document written (no trailing newline); empty after `clear`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Makes `bytes` the document.
    pub fn set(&mut self, bytes: &[u8]) {
        self.buf.clear();
        self.buf.extend_from_slice(bytes);
        self.len = bytes.len();
    }

    /// Takes `other`'s bytes as the document (and gives it this one's buffer).
    pub fn replace(&mut self, other: &mut Vec<u8>) {
        std::mem::swap(&mut self.buf, other);
        self.len = self.buf.len();
    }

    /// Forgets the last document (its bytes stay, to be written over).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Appends `v` in decimal.
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    let mut out = Out::new(out, 20);
    out.u64(v);
    out.finish();
}

/// Appends `s` as a JSON string literal, escaped.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let mut out = Out::new(out, s.len() + 2);
    out.string(s);
    out.finish();
}

/// Copies `src` into `dst` (of the same length). Most values and keys are 4 to 32 bytes
/// long: those are copied as their first and last N bytes, which overlap (a call to
/// `memcpy` for every short value took 12 % of the writer's time).
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if dst.len() != n {
        return;
    }
    match n {
        17..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

/// Whether `bytes` holds a `"`, `\\` or control character, eight bytes at a time.
/// May answer `true` for a clean string (then the escaping loop copies it unchanged),
/// never `false` for one that needs escaping.
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let special = |x: u64| {
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let q = x ^ (ONES * b'"' as u64);
        let quote = q.wrapping_sub(ONES) & !q;
        let b = x ^ (ONES * b'\\' as u64);
        let backslash = b.wrapping_sub(ONES) & !b;
        (control | quote | backslash) & HIGH != 0
    };
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    let half = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])) as u64;
    let len = bytes.len();
    match len {
        // The last eight bytes (overlapping the last whole word) cover the rest.
        8.. => bytes.chunks_exact(8).any(|c| special(word(c))) || special(word(&bytes[len - 8..])),
        // Two overlapping four-byte halves make one word.
        4..=7 => special(half(&bytes[..4]) | half(&bytes[len - 4..]) << 32),
        _ => bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\'),
    }
}

/// The output of one document (or of a Parquet batch's text): a cursor into a buffer
/// kept longer than what is written (room made ready ahead), so that appending is a
/// bounds check and a copy, with the length in a register rather than a `Vec`'s length
/// and capacity in memory, checked and stored for every piece (which took as many
/// instructions as the writing itself). The room grows when the output needs more;
/// `finish` cuts the buffer to what was written.
pub(crate) struct Out<'b> {
    buf: &'b mut Vec<u8>,
    pos: usize,
}

impl<'b> Out<'b> {
    /// Appends to `buf`, with `room` bytes made ready ahead.
    pub(crate) fn new(buf: &'b mut Vec<u8>, room: usize) -> Out<'b> {
        let pos = buf.len();
        buf.resize(pos + room, 0);
        Out { buf, pos }
    }

    /// Writes `buf` anew from its start, with `room` bytes ready: what it held is
    /// written over, not zero-filled again (a buffer reused for every batch).
    pub(crate) fn reuse(buf: &'b mut Vec<u8>, room: usize) -> Out<'b> {
        if buf.len() < room {
            buf.resize(room, 0);
        }
        Out { buf, pos: 0 }
    }

    /// Where the next byte goes.
    #[inline(always)]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes, to be written by the caller.
    #[inline(always)]
    pub(crate) fn slot(&mut self, n: usize) -> &mut [u8] {
        if self.buf.len() - self.pos < n {
            self.grow(n);
        }
        let start = self.pos;
        self.pos += n;
        &mut self.buf[start..start + n]
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn grow(&mut self, n: usize) {
        let len = (self.pos + n).max(self.buf.len() * 2);
        self.buf.resize(len, 0);
    }

    #[inline(always)]
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        copy_short(self.slot(bytes.len()), bytes);
    }

    #[inline(always)]
    pub(crate) fn byte(&mut self, b: u8) {
        self.slot(1)[0] = b;
    }

    /// Appends again the `N` bytes written at `at`.
    #[inline(always)]
    pub(crate) fn repeat<const N: usize>(&mut self, at: usize) {
        let written: [u8; N] = self.buf[at..at + N].try_into().unwrap_or([0; N]);
        self.slot(N).copy_from_slice(&written);
    }

    /// Overwrites the byte written at `at`.
    #[inline(always)]
    pub(crate) fn set(&mut self, at: usize, b: u8) {
        self.buf[at] = b;
    }

    /// Forgets what was written from `at` on.
    #[inline(always)]
    pub(crate) fn truncate(&mut self, at: usize) {
        self.pos = self.pos.min(at);
    }

    /// Appends `v` in decimal.
    #[inline(always)]
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(itoa::Buffer::new().format(v).as_bytes());
    }

    /// `s` as a JSON string literal, escaped.
    #[inline]
    pub(crate) fn string(&mut self, s: &str) {
        if needs_escape(s.as_bytes()) {
            self.escaped_string(s.as_bytes());
        } else {
            self.plain_string(s);
        }
    }

    /// `s`, which has nothing to escape, as a JSON string literal.
    #[inline(always)]
    pub(crate) fn plain_string(&mut self, s: &str) {
        debug_assert!(!needs_escape(s.as_bytes()), "{s:?}");
        let n = s.len();
        let buf = self.slot(n + 2);
        buf[0] = b'"';
        copy_short(&mut buf[1..n + 1], s.as_bytes());
        buf[n + 1] = b'"';
    }

    /// `string` for a string that holds a character to escape.
    #[cold]
    pub(crate) fn escaped_string(&mut self, bytes: &[u8]) {
        self.byte(b'"');
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f => b"",
                _ => continue,
            };
            self.bytes(&bytes[start..i]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.bytes(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 0xf) as usize],
                ]);
            } else {
                self.bytes(escape);
            }
            start = i + 1;
        }
        self.bytes(&bytes[start..]);
        self.byte(b'"');
    }

    /// Ends the output: the buffer keeps what was written, nothing more.
    pub(crate) fn finish(self) {
        self.buf.truncate(self.pos);
    }

    /// Ends the output, leaving the buffer as long as it is (what lies past the output
    /// is written over next time): the length written.
    pub(crate) fn end(self) -> usize {
        self.pos
    }
}

/// Minimal streaming JSON object writer. Every member is written with a leading comma
/// (`,"key":value`), so writing one is a plain copy with no "first member?" branch: when
/// an object ends, the comma of its first member is overwritten with its `{`, and an
/// object that got no member is removed with its key, so absent values leave no `{}`.
pub(crate) struct Writer<'b> {
    pub(crate) out: Out<'b>,
    depth: usize,
    /// Per open object: where its key began (to remove it if it stays empty) and where
    /// its members begin (the first member's comma).
    open: [(usize, usize); 8],
}

impl<'b> Writer<'b> {
    /// Writes a document from the start of `buf` (over what it held), with `room`
    /// bytes made ready for it.
    pub(crate) fn new(buf: &'b mut Vec<u8>, room: usize) -> Writer<'b> {
        Writer {
            out: Out::reuse(buf, room),
            depth: 0,
            open: [(0, 0); 8],
        }
    }

    /// Writes a `k!` key literal (`,"key":`), or any run of whole members.
    #[inline(always)]
    pub(crate) fn key(&mut self, key: &str) {
        self.out.bytes(key.as_bytes());
    }

    #[inline(always)]
    pub(crate) fn begin_object(&mut self, key: &'static str) {
        let mark = self.out.pos();
        self.key(key);
        self.depth += 1;
        self.open[self.depth] = (mark, self.out.pos());
    }

    #[inline(always)]
    pub(crate) fn end_object(&mut self) {
        let (mark, members) = self.open[self.depth];
        self.depth -= 1;
        self.close(mark, members);
    }

    /// Ends an object that must be present even with no member (`{}`).
    #[inline(always)]
    pub(crate) fn end_object_keeping_empty(&mut self) {
        let (_, members) = self.open[self.depth];
        self.depth -= 1;
        if self.out.pos() == members {
            self.out.bytes(b"{}");
        } else {
            self.out.set(members, b'{');
            self.out.byte(b'}');
        }
    }

    /// Closes the object whose members began at `members`, or removes it from `mark`
    /// when it has none.
    #[inline(always)]
    pub(crate) fn close(&mut self, mark: usize, members: usize) {
        if self.out.pos() == members {
            self.out.truncate(mark);
        } else {
            self.out.set(members, b'{');
            self.out.byte(b'}');
        }
    }

    #[inline(always)]
    pub(crate) fn string(&mut self, key: &'static str, value: &str) {
        self.key(key);
        self.out.string(value);
    }

    /// A string with nothing to escape: an IP address the parser validated (hex
    /// digits, dots and colons), or a constant.
    #[inline(always)]
    pub(crate) fn plain(&mut self, key: &'static str, value: &str) {
        self.key(key);
        self.out.plain_string(value);
    }

    /// An array of strings (escaped), `[]` when there is none.
    pub(crate) fn string_array(&mut self, key: &'static str, values: &[String]) {
        self.key(key);
        self.out.byte(b'[');
        for (n, value) in values.iter().enumerate() {
            if n > 0 {
                self.out.byte(b',');
            }
            self.out.string(value);
        }
        self.out.byte(b']');
    }

    pub(crate) fn opt_string(&mut self, key: &'static str, value: Option<&str>) {
        if let Some(v) = value {
            self.string(key, v);
        }
    }

    /// A number, when present: its digits as the record has them (see
    /// `FlowRecord::digits`), or else `value` formatted.
    #[inline(always)]
    pub(crate) fn number(&mut self, key: &'static str, value: Option<u64>, digits: Option<&str>) {
        if let Some(v) = value {
            self.key(key);
            match digits {
                Some(digits) => self.out.bytes(digits.as_bytes()),
                None => self.out.u64(v),
            }
        }
    }

    /// Appends JSON already rendered: whole members with their leading commas
    /// (`,"a":1,"b":"x"`: constants, or the origin's, which may be empty), or the `}`
    /// that closes an object written inline.
    #[inline(always)]
    pub(crate) fn json(&mut self, rendered: &str) {
        self.out.bytes(rendered.as_bytes());
    }

    /// Ends the document (it always has a member, `@timestamp`): its length.
    pub(crate) fn finish(mut self) -> usize {
        debug_assert_eq!(self.depth, 0);
        let (mark, members) = self.open[0];
        if self.out.pos() == members {
            self.out.byte(b',');
        }
        self.close(mark, members);
        self.out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_u64_matches_display() {
        let mut values: Vec<u64> = (0..=1000).collect();
        for p in 1..20 {
            let ten = 10u64.pow(p);
            values.extend([ten - 1, ten, ten + 1, ten.saturating_mul(7) - 3]);
        }
        values.extend([u64::MAX, u64::MAX - 1, 1_700_000_060]);
        for v in values {
            let mut out = b"x".to_vec();
            write_u64(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), format!("x{v}"));
        }
    }

    #[test]
    fn reused_out_writes_over_what_the_buffer_held() {
        for (held, room, written) in [
            ("an old batch of text", 3, "new"),
            ("old", 0, "longer than what was held"),
            ("", 4, ""),
        ] {
            let mut buf = held.as_bytes().to_vec();
            let mut out = Out::reuse(&mut buf, room);
            out.bytes(written.as_bytes());
            out.finish();
            assert_eq!(buf, written.as_bytes());
        }
    }

    #[test]
    fn out_grows_past_its_room_and_keeps_only_what_was_written() {
        let source: Vec<u8> = (0u8..=255).cycle().take(5000).collect();
        for room in [0, 1, 7, 100, 4096, 20_000] {
            let mut buf = b"prefix".to_vec();
            let mut expected = buf.clone();
            let mut out = Out::new(&mut buf, room);
            let mut at = 0;
            for len in (0..100).chain([300, 1000]) {
                out.bytes(&source[at..at + len]);
                expected.extend_from_slice(&source[at..at + len]);
                at = (at + len) % 3000;
                out.byte(b'|');
                expected.push(b'|');
            }
            out.u64(u64::MAX);
            expected.extend_from_slice(u64::MAX.to_string().as_bytes());
            out.repeat::<10>(6);
            expected.extend_from_within(6..16);
            let end = out.pos();
            out.bytes(b"dropped");
            out.truncate(end);
            out.set(6, b'{');
            expected[6] = b'{';
            out.finish();
            assert!(buf == expected, "room {room}");
        }
    }

    #[test]
    fn needs_escape_finds_every_special_byte_at_every_position() {
        for len in 0..24 {
            assert!(!needs_escape(&vec![b'a'; len]), "{len}");
            for at in 0..len {
                for special in [b'"', b'\\', b'\n', 0, 0x1f] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    assert!(needs_escape(&bytes), "{len} {at} {special}");
                }
            }
        }
    }

    #[test]
    fn escapes() {
        let mut v = Vec::new();
        write_str(&mut v, "a\"b\\c\n\u{1}é");
        assert_eq!(String::from_utf8(v).unwrap(), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }
}
