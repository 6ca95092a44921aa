//! The deterministic binary encoding: fixed-width little-endian integers, fixed-size byte
//! arrays, and vectors prefixed by a little-endian count. Decoding is strict: every length is
//! checked against its limit before anything is allocated, and trailing bytes are an error, so
//! each value has exactly one encoding.

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the data ends early (needed {needed} more bytes at offset {offset})")]
    UnexpectedEnd { offset: usize, needed: usize },
    #[error("{count} unexpected bytes after the end")]
    TrailingBytes { count: usize },
    #[error("too many {what}: {count}, at most {max}")]
    TooMany {
        what: &'static str,
        count: u64,
        max: u64,
    },
    #[error("too large: {size} bytes, at most {max}")]
    TooLarge { size: usize, max: usize },
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: u16 },
    #[error("unknown network id {0}")]
    UnknownNetwork(u8),
    #[error("not canonical: {0}")]
    NonCanonical(&'static str),
}

/// Appends encoded values to a buffer.
#[derive(Default, Debug)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads encoded values from a slice, never panicking.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::UnexpectedEnd {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// Reads a count and checks it against `max` (and against the bytes left, given the
    /// smallest possible size of one element) before the caller allocates anything.
    pub fn count_u16(
        &mut self,
        what: &'static str,
        max: usize,
        min_elem: usize,
    ) -> Result<usize, DecodeError> {
        let n = self.u16()? as usize;
        self.check_count(what, n, max, min_elem)
    }
    pub fn count_u32(
        &mut self,
        what: &'static str,
        max: usize,
        min_elem: usize,
    ) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        self.check_count(what, n, max, min_elem)
    }
    fn check_count(
        &self,
        what: &'static str,
        n: usize,
        max: usize,
        min_elem: usize,
    ) -> Result<usize, DecodeError> {
        if n > max {
            return Err(DecodeError::TooMany {
                what,
                count: n as u64,
                max: max as u64,
            });
        }
        let needed = n.saturating_mul(min_elem);
        if needed > self.remaining() {
            return Err(DecodeError::UnexpectedEnd {
                offset: self.pos,
                needed: needed - self.remaining(),
            });
        }
        Ok(n)
    }
    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_little_endian_and_reads_are_bounded() {
        let mut w = Writer::new();
        w.u16(0x0102);
        w.u32(0x03040506);
        w.u64(7);
        let bytes = w.into_bytes();
        assert_eq!(&bytes[..6], &[2, 1, 6, 5, 4, 3]);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.u32(), Ok(0x03040506));
        assert_eq!(r.u64(), Ok(7));
        assert!(matches!(r.u8(), Err(DecodeError::UnexpectedEnd { .. })));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn counts_are_checked_before_allocation() {
        let mut r = Reader::new(&[0xff, 0xff, 0, 0]);
        assert!(matches!(
            r.count_u16("inputs", 256, 36),
            Err(DecodeError::TooMany { .. })
        ));
        let mut r = Reader::new(&[0x10, 0x00, 0, 0]);
        assert!(matches!(
            r.count_u16("inputs", 256, 36),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
        let r = Reader::new(&[1]);
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes { count: 1 }));
    }
}
