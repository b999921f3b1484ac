//! Sources: turn a byte stream (a local file, stdin, an S3 object body) into lines.
//! Compression is sniffed from the first bytes (gzip magic `1f 8b`, multi-member
//! included; Parquet `PAR1`; anything else is plain text). Limits guard against
//! hostile input: line length, decompressed size, and decompression ratio.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;

pub mod parquet;
mod parquet_limits;
mod parquet_text;
pub mod s3;
mod thrift;

/// Input limits (README, Failure semantics). Exceeding one is a reported failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted line; a longer line becomes a parse-failure document.
    pub max_line_bytes: usize,
    /// Most bytes one object may decompress to.
    pub max_decompressed_bytes: u64,
    /// Most decompressed bytes per compressed byte (checked past the first MiB).
    pub max_ratio: u64,
}

impl Limits {
    /// Whether `produced` bytes made from `input` bytes pass MAX_DECOMPRESSION_RATIO.
    /// The first MiB is allowed whatever the ratio, so small inputs with small outputs
    /// are never refused.
    pub fn ratio_exceeded(&self, produced: u64, input: u64) -> bool {
        const SLACK: u64 = 1 << 20;
        produced > SLACK && produced / input.max(1) > self.max_ratio
    }
}

/// The limits' defaults (MAX_LINE_BYTES, MAX_OBJECT_BYTES, MAX_DECOMPRESSION_RATIO).
pub const DEFAULT_MAX_LINE_BYTES: u64 = 256 * 1024;
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 4 * 1024 * 1024 * 1024;
pub const DEFAULT_MAX_RATIO: u64 = 200;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES as usize,
            max_decompressed_bytes: DEFAULT_MAX_OBJECT_BYTES,
            max_ratio: DEFAULT_MAX_RATIO,
        }
    }
}

/// Compression of an input, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Plain,
    Gzip,
    Parquet,
}

/// Sniffs the compression from the first bytes of an input.
pub fn sniff(prefix: &[u8]) -> Compression {
    if prefix.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if prefix.starts_with(b"PAR1") {
        Compression::Parquet
    } else {
        Compression::Plain
    }
}

const READ_BUFFER: usize = 256 * 1024;

/// Reads up to the first four bytes (fewer only at the end of input): one read of a
/// pipe may return fewer than asked.
fn read_prefix<R: Read>(reader: &mut R) -> io::Result<([u8; 4], usize)> {
    let mut prefix = [0u8; 4];
    let mut n = 0;
    while n < prefix.len() {
        match reader.read(&mut prefix[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok((prefix, n))
}

/// Reads the first bytes of `reader` to tell its compression; returns it with a reader
/// that still yields every byte.
pub fn sniff_reader(
    mut reader: Box<dyn Read + Send>,
) -> io::Result<(Compression, Box<dyn Read + Send>)> {
    let (prefix, n) = read_prefix(&mut reader)?;
    let whole: Box<dyn Read + Send> = Box::new(io::Cursor::new(prefix[..n].to_vec()).chain(reader));
    Ok((sniff(&prefix[..n]), whole))
}

/// Opens `reader` as text lines, decompressing gzip when the content is gzip.
/// Parquet must be read with the Parquet reader instead and is refused here.
pub fn open_lines<R: Read + Send + 'static>(
    mut reader: R,
    limits: Limits,
) -> io::Result<LineReader> {
    let (prefix, n) = read_prefix(&mut reader)?;
    let compression = sniff(&prefix[..n]);
    let whole = io::Cursor::new(prefix[..n].to_vec()).chain(reader);
    let buffered = BufReader::with_capacity(READ_BUFFER, whole);
    let inner: Box<dyn BufRead + Send> = match compression {
        Compression::Plain => Box::new(LimitedReader::plain(buffered, limits)),
        Compression::Gzip => {
            // The ratio is of what the decoder consumed, not of what was read ahead into
            // the buffer: a bomb is refused from the first MiB of output.
            let consumed = ConsumedCounter {
                inner: buffered,
                count: Arc::new(AtomicU64::new(0)),
            };
            let compressed = consumed.count.clone();
            Box::new(BufReader::with_capacity(
                READ_BUFFER,
                LimitedReader::gzip(MultiGzDecoder::new(consumed), compressed, limits),
            ))
        }
        Compression::Parquet => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "Parquet content cannot be read as text lines",
            ))
        }
    };
    Ok(LineReader::new(inner, limits.max_line_bytes))
}

/// Counts the (compressed) bytes the decoder consumed from the buffered input.
struct ConsumedCounter<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: BufRead> Read for ConsumedCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for ConsumedCounter<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.count.fetch_add(amt as u64, Ordering::Relaxed);
        self.inner.consume(amt);
    }
}

/// Enforces the decompressed-size and ratio limits on the decompressed stream.
struct LimitedReader<R> {
    inner: R,
    produced: u64,
    compressed: Option<Arc<AtomicU64>>,
    limits: Limits,
}

impl<R> LimitedReader<R> {
    fn plain(inner: R, limits: Limits) -> LimitedReader<R> {
        LimitedReader {
            inner,
            produced: 0,
            compressed: None,
            limits,
        }
    }

    fn gzip(inner: R, compressed: Arc<AtomicU64>, limits: Limits) -> LimitedReader<R> {
        LimitedReader {
            inner,
            produced: 0,
            compressed: Some(compressed),
            limits,
        }
    }

    fn check(&self) -> io::Result<()> {
        if self.produced > self.limits.max_decompressed_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "input exceeds the maximum size of {} bytes (MAX_OBJECT_BYTES)",
                    self.limits.max_decompressed_bytes
                ),
            ));
        }
        if let Some(compressed) = &self.compressed {
            let consumed = compressed.load(Ordering::Relaxed);
            if self.limits.ratio_exceeded(self.produced, consumed) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "decompression ratio exceeds {}:1 after {} bytes (MAX_DECOMPRESSION_RATIO): refusing a likely decompression bomb",
                        self.limits.max_ratio, self.produced
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.produced += n as u64;
        self.check()?;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LimitedReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.check()?;
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.produced += amt as u64;
        self.inner.consume(amt);
    }
}

/// One line read from a source (without the `\n` or `\r\n`).
#[derive(Debug, PartialEq, Eq)]
pub struct SourceLine<'a> {
    /// 1-based line number in the input.
    pub number: u64,
    /// The line's bytes, or its first `max_line_bytes` bytes when it was too long.
    pub bytes: &'a [u8],
    /// The full length when the line exceeded the limit.
    pub too_long: Option<u64>,
}

/// Reads lines of bounded length: memory stays flat whatever the input.
pub struct LineReader {
    inner: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    max: usize,
    number: u64,
    bytes_read: u64,
}

impl LineReader {
    pub fn new(inner: Box<dyn BufRead + Send>, max_line_bytes: usize) -> LineReader {
        LineReader {
            inner,
            buf: Vec::with_capacity(1024),
            max: max_line_bytes,
            number: 0,
            bytes_read: 0,
        }
    }

    /// Decompressed bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next line, `None` at the end of input. An I/O error (truncated gzip, a
    /// limit exceeded, a failed download) ends the input with that error.
    pub fn next_line(&mut self) -> io::Result<Option<SourceLine<'_>>> {
        self.buf.clear();
        let mut total: u64 = 0;
        let mut saw_any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            let (chunk, consumed, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            total += chunk.len() as u64;
            let room = self.max.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.inner.consume(consumed);
            self.bytes_read += consumed as u64;
            if done {
                break;
            }
        }
        self.number += 1;
        let too_long = (total > self.max as u64).then_some(total);
        if too_long.is_none() && self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some(SourceLine {
            number: self.number,
            bytes: &self.buf,
            too_long,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn lines(input: Vec<u8>, limits: Limits) -> io::Result<Vec<(u64, String, Option<u64>)>> {
        let mut r = open_lines(io::Cursor::new(input), limits)?;
        let mut out = Vec::new();
        while let Some(l) = r.next_line()? {
            out.push((
                l.number,
                String::from_utf8_lossy(l.bytes).into_owned(),
                l.too_long,
            ));
        }
        Ok(out)
    }

    #[test]
    fn plain_and_multi_member_gzip() {
        let plain = lines(b"a\r\nb\n\nc".to_vec(), Limits::default()).unwrap();
        assert_eq!(
            plain.iter().map(|l| l.1.as_str()).collect::<Vec<_>>(),
            ["a", "b", "", "c"]
        );
        let mut two = gzip(b"a\nb\n");
        two.extend(gzip(b"c\n"));
        let gz = lines(two, Limits::default()).unwrap();
        assert_eq!(
            gz.iter().map(|l| l.1.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(gz[2].0, 3);
    }

    #[test]
    fn long_lines_are_cut_and_flagged() {
        let limits = Limits {
            max_line_bytes: 4,
            ..Limits::default()
        };
        let got = lines(b"abcdefgh\nxy\n".to_vec(), limits).unwrap();
        assert_eq!(got[0], (1, "abcd".to_string(), Some(8)));
        assert_eq!(got[1], (2, "xy".to_string(), None));
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let data = gzip(&b"2 1 eni-1 1.2.3.4 5.6.7.8 1 2 6 1 40 1 2 ACCEPT OK\n".repeat(1000));
        let cut = data[..data.len() / 2].to_vec();
        assert!(lines(cut, Limits::default()).is_err());
    }

    #[test]
    fn gzip_bomb_is_refused() {
        // An attacker compresses as hard as possible: zeros deflate about 1000:1.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 16 * 1024 * 1024]).unwrap();
        let bomb = e.finish().unwrap();
        let Err(err) = lines(bomb, Limits::default()) else {
            panic!("the bomb was not refused")
        };
        assert!(err.to_string().contains("decompression ratio"), "{err}");
        // Refused within the first MiB or two of output, not after tens of MiB.
        let message = err.to_string();
        let after: u64 = message
            .split("after ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(after <= 2 * 1024 * 1024, "{message}");
        let small = Limits {
            max_decompressed_bytes: 10,
            ..Limits::default()
        };
        assert!(lines(b"0123456789abc\n".to_vec(), small).is_err());
    }
}
