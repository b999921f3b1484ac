//! A minimal reader of Thrift's compact protocol, the encoding of Parquet footers and
//! page headers: enough to check the sizes a file declares (list lengths, string
//! lengths, page sizes) before the parquet crate allocates by them. It never allocates
//! by a declared size itself.

/// Field and element types of the compact protocol.
const STOP: u8 = 0;
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
/// A struct (Parquet's footer, `FileMetaData`, is one).
pub const STRUCT: u8 = 12;
const UUID: u8 = 13;

/// Deepest nesting accepted (Parquet's own structures nest a few levels).
const MAX_DEPTH: u32 = 32;

/// Reads compact-protocol values from a byte slice.
pub struct Compact<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A struct field as read: its id and type (the value follows).
#[derive(Debug, Clone, Copy)]
pub struct FieldHeader {
    pub id: i16,
    pub kind: u8,
}

impl<'a> Compact<'a> {
    pub fn new(buf: &'a [u8]) -> Compact<'a> {
        Compact { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.buf.get(self.pos).ok_or("truncated")?;
        self.pos += 1;
        Ok(b)
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), String> {
        if n > self.remaining() as u64 {
            return Err(format!(
                "declares {n} bytes where {} remain",
                self.remaining()
            ));
        }
        self.pos += n as usize;
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift.min(63);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".to_string())
    }

    /// A zigzag-encoded integer (i16, i32 or i64 fields).
    pub fn integer(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// The next field header of a struct, `None` at its end. `last_id` is the id of
    /// the field before (0 at the start).
    pub fn field(&mut self, last_id: i16) -> Result<Option<FieldHeader>, String> {
        let b = self.byte()?;
        let kind = b & 0x0f;
        if kind == STOP {
            return Ok(None);
        }
        let delta = (b >> 4) as i16;
        let id = if delta == 0 {
            i16::try_from(self.integer()?).map_err(|_| "field id out of range")?
        } else {
            last_id.wrapping_add(delta)
        };
        Ok(Some(FieldHeader { id, kind }))
    }

    /// Skips a value of type `kind`, checking every length it declares against the
    /// bytes that remain (each element of a list takes a byte at least).
    pub fn skip(&mut self, kind: u8) -> Result<(), String> {
        self.skip_at(kind, 0)
    }

    fn skip_at(&mut self, kind: u8, depth: u32) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".to_string());
        }
        match kind {
            TRUE | FALSE => Ok(()),
            BYTE => self.skip_bytes(1),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.skip_bytes(8),
            UUID => self.skip_bytes(16),
            BINARY => {
                let n = self.varint()?;
                self.skip_bytes(n)
            }
            LIST | SET => {
                let header = self.byte()?;
                let element = header & 0x0f;
                let n = match header >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                if n > self.remaining() as u64 {
                    return Err(format!(
                        "a list declares {n} elements where {} bytes remain",
                        self.remaining()
                    ));
                }
                for _ in 0..n {
                    // Booleans in a list take a byte each.
                    let element = if element == TRUE || element == FALSE {
                        BYTE
                    } else {
                        element
                    };
                    self.skip_at(element, depth + 1)?;
                }
                Ok(())
            }
            MAP => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                if n.saturating_mul(2) > self.remaining() as u64 {
                    return Err(format!(
                        "a map declares {n} entries where {} bytes remain",
                        self.remaining()
                    ));
                }
                let kinds = self.byte()?;
                for _ in 0..n {
                    self.skip_at(kinds >> 4, depth + 1)?;
                    self.skip_at(kinds & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            STRUCT => {
                let mut last = 0;
                while let Some(f) = self.field(last)? {
                    self.skip_at(f.kind, depth + 1)?;
                    last = f.id;
                }
                Ok(())
            }
            other => Err(format!("unknown value type {other}")),
        }
    }
}

/// What a Parquet page header declares.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// 0 data page, 1 index page, 2 dictionary page, 3 data page v2.
    pub page_type: i64,
    pub uncompressed_size: i64,
    pub compressed_size: i64,
    /// Values in the page (data pages: rows and nulls; dictionary pages: entries).
    pub num_values: i64,
    /// Data page v2: bytes of levels before the (possibly compressed) values, and
    /// whether those are compressed.
    pub levels_size: i64,
    pub v2_compressed: bool,
    /// The header's own length in bytes.
    pub header_len: usize,
}

pub const DATA_PAGE: i64 = 0;
pub const DICTIONARY_PAGE: i64 = 2;
pub const DATA_PAGE_V2: i64 = 3;

/// Reads the page header at the start of `buf`.
pub fn page_header(buf: &[u8]) -> Result<PageHeader, String> {
    let mut r = Compact::new(buf);
    let mut header = PageHeader {
        v2_compressed: true,
        ..PageHeader::default()
    };
    let mut last = 0;
    while let Some(f) = r.field(last)? {
        match (f.id, f.kind) {
            (1, I32) => header.page_type = r.integer()?,
            (2, I32) => header.uncompressed_size = r.integer()?,
            (3, I32) => header.compressed_size = r.integer()?,
            (5 | 7 | 8, STRUCT) => {
                let v2 = f.id == 8;
                let mut last = 0;
                let (mut def, mut rep) = (0, 0);
                while let Some(g) = r.field(last)? {
                    match (g.id, g.kind) {
                        (1, I32) => header.num_values = r.integer()?,
                        (5, I32) if v2 => def = r.integer()?,
                        (6, I32) if v2 => rep = r.integer()?,
                        (7, TRUE) if v2 => header.v2_compressed = true,
                        (7, FALSE) if v2 => header.v2_compressed = false,
                        (_, kind) => r.skip(kind)?,
                    }
                    last = g.id;
                }
                header.levels_size = def.saturating_add(rep);
            }
            (_, kind) => r.skip(kind)?,
        }
        last = f.id;
    }
    header.header_len = r.position();
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_longer_than_the_data_are_refused() {
        // A struct whose field 1 is a list of 2^31 i32 elements, in 8 bytes.
        let bytes = [0x19, 0xf5, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00];
        let err = Compact::new(&bytes).skip(STRUCT).unwrap_err();
        assert!(err.contains("declares 2147483647 elements"), "{err}");
        // A binary of 1 GiB declared in 6 bytes.
        let bytes = [0x18, 0x80, 0x80, 0x80, 0x80, 0x04];
        assert!(Compact::new(&bytes).skip(STRUCT).is_err());
        // Deep nesting.
        let deep = vec![0x1c; 100];
        assert!(Compact::new(&deep).skip(STRUCT).is_err());
    }

    #[test]
    fn a_page_header() {
        // type 0, uncompressed 100, compressed 50, data page header { num_values 7 }.
        let bytes = [
            0x15, 0x00, 0x15, 0xc8, 0x01, 0x15, 0x64, 0x2c, 0x15, 0x0e, 0x00, 0x00,
        ];
        let h = page_header(&bytes).unwrap();
        assert_eq!(
            (
                h.page_type,
                h.uncompressed_size,
                h.compressed_size,
                h.num_values
            ),
            (0, 100, 50, 7)
        );
        assert_eq!(h.header_len, bytes.len());
        assert!(page_header(&bytes[..5]).is_err());
    }
}
