//! Finding the end of one CBOR item in a byte stream.
//!
//! CBOR-RPC puts messages back to back on a TCP stream with no length
//! prefix, so the only way to know that a whole message has arrived is to
//! walk its heads. [`item_len`] does that without decoding or allocating
//! per item, which also lets the connection refuse a frame that claims to
//! be larger than the configured cap before reading it.

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

/// Scans `buf` for one complete CBOR item no longer than `limit` bytes.
pub fn item_len(buf: &[u8], limit: usize) -> Result<Scan, ScanError> {
    let too_large = ScanError::TooLarge { limit };
    // Items still expected by each open container; INDEFINITE for
    // indefinite-length ones that end with a break byte.
    let mut stack: Vec<u64> = Vec::new();
    let mut pos = 0usize;
    loop {
        if pos > limit {
            return Err(too_large);
        }
        let Some(&ib) = buf.get(pos) else {
            return if buf.len() > limit { Err(too_large) } else { Ok(Scan::Incomplete) };
        };
        pos += 1;
        if ib == 0xff {
            match stack.last() {
                Some(&INDEFINITE) => {
                    stack.pop();
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
                        return Ok(Scan::Incomplete);
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
                                return Ok(Scan::Incomplete);
                            }
                            pos = end;
                        }
                        _ => return Err(too_large),
                    }
                }
                (4, Some(n)) | (5, Some(n)) => {
                    let items = if major == 5 { n.saturating_mul(2) } else { n };
                    if items > 0 {
                        if stack.len() >= MAX_DEPTH {
                            return Err(ScanError::TooDeep);
                        }
                        stack.push(items);
                        continue;
                    }
                }
                (2..=5, None) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(ScanError::TooDeep);
                    }
                    stack.push(INDEFINITE);
                    continue;
                }
                (6, Some(_)) => {
                    // A tag's content is the item that follows.
                    if stack.len() >= MAX_DEPTH {
                        return Err(ScanError::TooDeep);
                    }
                    stack.push(1);
                    continue;
                }
                _ => return Err(ScanError::Malformed("indefinite length on a scalar")),
            }
        }
        // One item (or a whole container) ended: count it in its parent.
        loop {
            match stack.last_mut() {
                None => {
                    return if pos > limit { Err(too_large) } else { Ok(Scan::Complete(pos)) };
                }
                Some(&mut INDEFINITE) => break,
                Some(remaining) => {
                    *remaining -= 1;
                    if *remaining == 0 {
                        stack.pop();
                    } else {
                        break;
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
}
