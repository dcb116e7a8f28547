//! Finding the end of one CBOR item in a byte stream.
//!
//! CBOR-RPC puts messages back to back on a TCP stream with no length
//! prefix, so the only way to know that a whole message has arrived is to
//! walk its heads. [`Scanner`] does that without decoding or allocating
//! per item, which also lets the connection refuse a frame that claims to
//! be larger than the configured cap before reading it.
//!
//! The scanner keeps its place between calls (like a length-delimited
//! codec keeps the length it read): a frame that arrives a byte at a time
//! is walked once in total, not once per read, so a client trickling a
//! huge partial frame costs the daemon nothing per byte beyond the read.

/// Outcome of scanning a buffer for one complete item.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// The first `n` bytes hold one complete item.
    Complete(usize),
    /// More bytes are needed.
    Incomplete,
}

/// Why a buffer cannot start with a valid CBOR item.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum ScanError {
    /// The item is (or claims to be) larger than the cap.
    TooLarge { limit: usize },
    /// The bytes are not well-formed CBOR.
    Malformed(&'static str),
    /// Containers nest deeper than we accept.
    TooDeep,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::TooLarge { limit } => write!(f, "frame larger than the {limit}-byte limit"),
            ScanError::Malformed(why) => write!(f, "malformed CBOR: {why}"),
            ScanError::TooDeep => write!(f, "CBOR nested too deeply"),
        }
    }
}

impl std::error::Error for ScanError {}

/// Deepest container nesting accepted (ciborium's own decoder stops at 256).
pub const MAX_DEPTH: usize = 200;

const INDEFINITE: u64 = u64::MAX;

/// Scans `buf` for one complete CBOR item no longer than `limit` bytes,
/// from the start.
pub fn item_len(buf: &[u8], limit: usize) -> Result<Scan, ScanError> {
    Scanner::new().scan(buf, limit)
}

/// A resumable walk over the heads of one CBOR item.
///
/// Call [`Scanner::scan`] with the bytes of the frame received so far;
/// each call must pass the same bytes as the last one with more appended
/// (the frame's start may move in memory, its contents may not change).
/// Once it answers `Complete` or an error it keeps answering the same until
/// [`Scanner::reset`] starts the next frame.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Offset in the frame of the next head to read.
    pos: usize,
    /// Items still expected by each open container; INDEFINITE for
    /// indefinite-length ones that end with a break byte.
    stack: Vec<u64>,
    /// The answer, once there is one.
    done: Option<Result<usize, ScanError>>,
}

impl Scanner {
    /// A scanner at the start of a frame.
    pub fn new() -> Self {
        Scanner::default()
    }

    /// Forgets the current frame; the next call scans a new one.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.stack.clear();
        self.done = None;
    }

    /// Bytes of the frame already walked.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Continues the walk over `buf` (the frame so far, see the type's
    /// documentation) and says whether one item of at most `limit` bytes
    /// is complete.
    pub fn scan(&mut self, buf: &[u8], limit: usize) -> Result<Scan, ScanError> {
        if let Some(done) = &self.done {
            return done.clone().map(Scan::Complete);
        }
        match self.walk(buf, limit) {
            Ok(None) => Ok(Scan::Incomplete),
            Ok(Some(n)) => {
                self.done = Some(Ok(n));
                Ok(Scan::Complete(n))
            }
            Err(e) => {
                self.done = Some(Err(e.clone()));
                Err(e)
            }
        }
    }

    /// Walks heads from `self.pos`; `Ok(None)` leaves `self.pos` at the
    /// first head not entirely in `buf`.
    fn walk(&mut self, buf: &[u8], limit: usize) -> Result<Option<usize>, ScanError> {
        let too_large = ScanError::TooLarge { limit };
        loop {
            let mut pos = self.pos;
            if pos > limit {
                return Err(too_large);
            }
            let Some(&ib) = buf.get(pos) else {
                return if buf.len() > limit { Err(too_large) } else { Ok(None) };
            };
            pos += 1;
            if ib == 0xff {
                match self.stack.last() {
                    Some(&INDEFINITE) => {
                        self.stack.pop();
                    }
                    _ => return Err(ScanError::Malformed("unexpected break")),
                }
            } else {
                let major = ib >> 5;
                let ai = ib & 0x1f;
                let arg = match ai {
                    0..=23 => Some(ai as u64),
                    24..=27 => {
                        let n = 1usize << (ai - 24);
                        let Some(raw) = buf.get(pos..pos + n) else {
                            return Ok(None);
                        };
                        pos += n;
                        Some(raw.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
                    }
                    31 => None,
                    _ => return Err(ScanError::Malformed("reserved additional information")),
                };
                match (major, arg) {
                    (0 | 1, Some(_)) | (7, Some(_)) => {}
                    (2 | 3, Some(n)) => {
                        let end = pos.checked_add(usize::try_from(n).map_err(|_| too_large.clone())?);
                        match end {
                            Some(end) if end <= limit => {
                                if end > buf.len() {
                                    return Ok(None);
                                }
                                pos = end;
                            }
                            _ => return Err(too_large),
                        }
                    }
                    (4 | 5, Some(n)) => {
                        let items = if major == 5 { n.saturating_mul(2) } else { n };
                        if items > 0 {
                            self.open(items)?;
                            self.pos = pos;
                            continue;
                        }
                    }
                    (2..=5, None) => {
                        self.open(INDEFINITE)?;
                        self.pos = pos;
                        continue;
                    }
                    (6, Some(_)) => {
                        // A tag's content is the item that follows.
                        self.open(1)?;
                        self.pos = pos;
                        continue;
                    }
                    _ => return Err(ScanError::Malformed("indefinite length on a scalar")),
                }
            }
            self.pos = pos;
            // One item (or a whole container) ended: count it in its parent.
            if self.close_items() {
                return if pos > limit { Err(too_large) } else { Ok(Some(pos)) };
            }
        }
    }

    fn open(&mut self, items: u64) -> Result<(), ScanError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(ScanError::TooDeep);
        }
        self.stack.push(items);
        Ok(())
    }

    /// Counts one finished item in the open containers; true when the
    /// outermost item is complete.
    fn close_items(&mut self) -> bool {
        loop {
            match self.stack.last_mut() {
                None => return true,
                Some(&mut INDEFINITE) => return false,
                Some(remaining) => {
                    *remaining -= 1;
                    if *remaining == 0 {
                        self.stack.pop();
                    } else {
                        return false;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: usize = 1 << 20;

    #[test]
    fn scalar_and_containers() {
        assert_eq!(item_len(&[0x01, 0x02], BIG), Ok(Scan::Complete(1)));
        assert_eq!(item_len(&[0x82, 0x01, 0x02, 0x03], BIG), Ok(Scan::Complete(3)));
        assert_eq!(item_len(&[0xa1, 0x61, b'k', 0x80], BIG), Ok(Scan::Complete(4)));
        assert_eq!(item_len(&[0x9f, 0x01, 0x9f, 0xff, 0xff, 0x00], BIG), Ok(Scan::Complete(5)));
        assert_eq!(item_len(&[0xd8, 0x18, 0x42, 1, 2], BIG), Ok(Scan::Complete(5)));
        assert_eq!(item_len(&[0xd8, 0x80, 0xd8, 0x80, 0x80], BIG), Ok(Scan::Complete(5)));
    }

    #[test]
    fn every_proper_prefix_is_incomplete() {
        let full = [0xd8, 0x18, 0x46, 0xa1, 0x61, b'a', 0x19, 0x01, 0x00, 0xf6];
        for n in 0..9 {
            assert_eq!(item_len(&full[..n], BIG), Ok(Scan::Incomplete), "prefix {n}");
        }
        assert_eq!(item_len(&full, BIG), Ok(Scan::Complete(9)));
    }

    #[test]
    fn huge_claims_are_refused_early() {
        // A byte string claiming 2^63 bytes.
        let buf = [0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(item_len(&buf, 1024), Err(ScanError::TooLarge { limit: 1024 }));
        // An array claiming 2^32 items, then a stream of ones past the limit.
        let mut buf = vec![0x9a, 0xff, 0xff, 0xff, 0xff];
        buf.extend(std::iter::repeat_n(0x01, 2000));
        assert_eq!(item_len(&buf, 1024), Err(ScanError::TooLarge { limit: 1024 }));
    }

    #[test]
    fn malformed_and_deep() {
        assert!(matches!(item_len(&[0xff], BIG), Err(ScanError::Malformed(_))));
        assert!(matches!(item_len(&[0x1c], BIG), Err(ScanError::Malformed(_))));
        assert!(matches!(item_len(&[0x1f], BIG), Err(ScanError::Malformed(_))));
        let deep = vec![0x81; 10_000];
        assert_eq!(item_len(&deep, BIG), Err(ScanError::TooDeep));
    }

    /// Feeds `full` to one scanner in pieces of `step` bytes.
    fn scan_in_steps(full: &[u8], step: usize, limit: usize) -> Result<Scan, ScanError> {
        let mut s = Scanner::new();
        let mut end = 0;
        loop {
            end = (end + step).min(full.len());
            match s.scan(&full[..end], limit) {
                Ok(Scan::Incomplete) if end < full.len() => {}
                other => return other,
            }
        }
    }

    #[test]
    fn resumed_scans_agree_with_one_pass() {
        let frames: [&[u8]; 5] = [
            &[0xd8, 0x18, 0x46, 0xa1, 0x61, b'a', 0x19, 0x01, 0x00, 0xf6],
            &[0x9f, 0x01, 0x9f, 0xff, 0x5a, 0, 0, 0, 3, 1, 2, 3, 0xff, 0x00],
            &[0xa2, 0x61, b'k', 0x80, 0x42, 1, 2, 0xbf, 0xff],
            &[0xff],
            &[0x82, 0x1c],
        ];
        for full in frames {
            let once = item_len(full, BIG);
            for step in 1..=full.len() {
                assert_eq!(scan_in_steps(full, step, BIG), once, "{full:x?} in steps of {step}");
            }
        }
        let deep = vec![0x81; 300];
        assert_eq!(scan_in_steps(&deep, 1, BIG), Err(ScanError::TooDeep));
        let mut long = vec![0x9a, 0, 0, 8, 0];
        long.extend(std::iter::repeat_n(0x01, 4000));
        assert_eq!(scan_in_steps(&long, 7, 1024), Err(ScanError::TooLarge { limit: 1024 }));
    }

    #[test]
    fn a_resumed_scan_starts_where_the_last_one_stopped() {
        // An endless array of small items, delivered a byte at a time: the
        // scanner's place follows the data instead of restarting at 0.
        let mut frame = vec![0x9f];
        frame.extend(std::iter::repeat_n(0x01, 1000));
        let mut s = Scanner::new();
        for end in 1..=frame.len() {
            assert_eq!(s.scan(&frame[..end], BIG), Ok(Scan::Incomplete));
            assert_eq!(s.position(), end);
        }
        // A head split across reads is read again whole, nothing more.
        frame.extend([0x19, 0x01]);
        assert_eq!(s.scan(&frame, BIG), Ok(Scan::Incomplete));
        assert_eq!(s.position(), 1001);
        frame.extend([0x00, 0xff, 0x07]);
        assert_eq!(s.scan(&frame, BIG), Ok(Scan::Complete(1005)));
        assert_eq!(s.scan(&frame, BIG), Ok(Scan::Complete(1005)), "the answer sticks until reset");
        s.reset();
        assert_eq!(s.scan(&frame[1005..], BIG), Ok(Scan::Complete(1)));
    }
}
