//! The byte encoding inside journal records: fixed-width little-endian
//! numbers, LEB128 lengths, length-prefixed byte strings.
//!
//! Hand-written rather than CBOR: a record is written on every change, so
//! encoding must not build a value tree, and reading a million records back
//! must not allocate per field. Every read is bounds-checked and returns
//! [`Malformed`] rather than panicking, since a damaged file is input too.

/// A record's bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed record: {}", self.0)
    }
}

/// Appends encoded fields to a byte vector.
pub struct Enc<'a>(pub &'a mut Vec<u8>);

impl Enc<'_> {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.0.push(v as u8);
    }
    pub fn uvar(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.uvar(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    pub fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.i64(v);
            }
            None => self.u8(0),
        }
    }
}

/// Reads fields back from a record.
pub struct Dec<'a> {
    buf: &'a [u8],
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Dec { buf }
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.buf.len() < n {
            return Err(Malformed("truncated field"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    pub fn bool(&mut self) -> Result<bool, Malformed> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed("bad boolean")),
        }
    }
    pub fn uvar(&mut self) -> Result<u64, Malformed> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Malformed("varint too long"))
    }
    pub fn i64(&mut self) -> Result<i64, Malformed> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub fn f64(&mut self) -> Result<f64, Malformed> {
        Ok(f64::from_bits(self.i64()? as u64))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.uvar()?;
        let n = usize::try_from(n).map_err(|_| Malformed("length too large"))?;
        self.take(n)
    }
    pub fn str(&mut self) -> Result<&'a str, Malformed> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Malformed("string is not UTF-8"))
    }
    pub fn opt_i64(&mut self) -> Result<Option<i64>, Malformed> {
        Ok(if self.bool()? { Some(self.i64()?) } else { None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut v = Vec::new();
        let mut e = Enc(&mut v);
        e.u8(7);
        e.uvar(300);
        e.uvar(u64::MAX);
        e.i64(i64::MIN);
        e.f64(-1.5);
        e.str("héllo");
        e.opt_i64(None);
        e.opt_i64(Some(5));
        let mut d = Dec::new(&v);
        assert_eq!(d.u8(), Ok(7));
        assert_eq!(d.uvar(), Ok(300));
        assert_eq!(d.uvar(), Ok(u64::MAX));
        assert_eq!(d.i64(), Ok(i64::MIN));
        assert_eq!(d.f64(), Ok(-1.5));
        assert_eq!(d.str(), Ok("héllo"));
        assert_eq!(d.opt_i64(), Ok(None));
        assert_eq!(d.opt_i64(), Ok(Some(5)));
        assert!(d.is_empty());
        assert!(d.u8().is_err());
    }

    #[test]
    fn lengths_past_the_end_are_refused() {
        let mut v = Vec::new();
        Enc(&mut v).uvar(1 << 40);
        assert!(Dec::new(&v).bytes().is_err());
    }
}
