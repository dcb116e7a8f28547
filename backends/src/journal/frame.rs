//! Files and the frames inside them.
//!
//! A file starts with a 16-byte header: an 8-byte kind (`COORDJNL` for a
//! journal segment, `COORDSNP` for a snapshot), a format version and four
//! reserved bytes. Frames follow, each
//!
//! ```text
//! magic u32 | length u32 | crc32 u32 | payload (length bytes)
//! ```
//!
//! all little-endian; the CRC covers the length and the payload, so a
//! damaged length is caught too.
//!
//! [`scan`] reads frames until the first bad one and then decides what the
//! bad bytes are. If no valid frame follows them, they are a torn tail: the
//! end of a write the crash cut short, which was never acknowledged (a
//! reply waits for its bytes to be written), so it is safe to cut off. If
//! a valid frame does follow, acknowledged records may lie beyond the
//! damage, and cutting there would lose them: that is corruption, and the
//! caller refuses to start unless told to truncate.

use std::ops::Range;

/// Marks the start of a frame.
pub const MAGIC: u32 = 0xC00D_F4A3;
/// Bytes before a frame's payload.
pub const FRAME_HEADER: usize = 12;
/// The largest payload accepted when reading (writes are far smaller).
pub const MAX_PAYLOAD: usize = 1 << 30;
/// Bytes of a file header.
pub const FILE_HEADER: usize = 16;
/// The current format version of both file kinds.
pub const VERSION: u32 = 1;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Changes in the order they were made.
    Journal,
    /// The whole state as of the start of one journal segment.
    Snapshot,
}

impl FileKind {
    fn tag(self) -> &'static [u8; 8] {
        match self {
            FileKind::Journal => b"COORDJNL",
            FileKind::Snapshot => b"COORDSNP",
        }
    }
}

/// The header a file of this kind starts with.
pub fn file_header(kind: FileKind) -> [u8; FILE_HEADER] {
    let mut h = [0u8; FILE_HEADER];
    h[..8].copy_from_slice(kind.tag());
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// Checks a file's header; the error says what is wrong.
pub fn check_header(kind: FileKind, bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < FILE_HEADER {
        return Err(format!("shorter than its {FILE_HEADER}-byte header"));
    }
    if &bytes[..8] != kind.tag() {
        return Err(format!("not a {:?} file (header {:?})", kind, String::from_utf8_lossy(&bytes[..8])));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!("format version {version}; this daemon reads version {VERSION}"));
    }
    Ok(())
}

/// Appends one frame holding `payload` to `out`.
pub fn append_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = payload.len() as u32;
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(payload);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// The frame at `at`: its payload's range, or why there is none.
fn frame_at(bytes: &[u8], at: usize) -> Result<Range<usize>, &'static str> {
    let rest = &bytes[at..];
    if rest.len() < FRAME_HEADER {
        return Err("frame header cut short");
    }
    let word = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().expect("4 bytes"));
    if word(0) != MAGIC {
        return Err("no frame marker");
    }
    let len = word(4) as usize;
    if len > MAX_PAYLOAD {
        return Err("frame length out of range");
    }
    if rest.len() < FRAME_HEADER + len {
        return Err("frame cut short");
    }
    let payload = at + FRAME_HEADER..at + FRAME_HEADER + len;
    let mut h = crc32fast::Hasher::new();
    h.update(&rest[4..8]);
    h.update(&bytes[payload.clone()]);
    if h.finalize() != word(8) {
        return Err("checksum mismatch");
    }
    Ok(payload)
}

/// How the frames of a file end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every byte belongs to a valid frame.
    Clean,
    /// Bytes from `offset` on hold no valid frame: a write cut short.
    TornTail { offset: usize, reason: &'static str },
    /// The frame at `offset` is damaged but valid frames follow it.
    Corrupt { offset: usize, reason: &'static str },
}

/// The payload ranges of the valid frames of `bytes` (a whole file,
/// header included), and how they end.
pub fn scan(bytes: &[u8]) -> (Vec<Range<usize>>, End) {
    let mut frames = Vec::new();
    let mut at = FILE_HEADER.min(bytes.len());
    while at < bytes.len() {
        match frame_at(bytes, at) {
            Ok(p) => {
                at = p.end;
                frames.push(p);
            }
            Err(reason) => {
                let end = if valid_frame_after(bytes, at + 1) {
                    End::Corrupt { offset: at, reason }
                } else {
                    End::TornTail { offset: at, reason }
                };
                return (frames, end);
            }
        }
    }
    (frames, End::Clean)
}

/// Whether any valid frame starts at or after `from`. Only offsets that
/// hold the marker are tried, so zeroed or random tails cost one pass.
fn valid_frame_after(bytes: &[u8], from: usize) -> bool {
    let marker = MAGIC.to_le_bytes();
    let mut at = from;
    while at + FRAME_HEADER <= bytes.len() {
        match bytes[at..].windows(4).position(|w| w == marker) {
            Some(i) => {
                if frame_at(bytes, at + i).is_ok() {
                    return true;
                }
                at += i + 1;
            }
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(payloads: &[&[u8]]) -> Vec<u8> {
        let mut f = file_header(FileKind::Journal).to_vec();
        for p in payloads {
            append_frame(&mut f, p);
        }
        f
    }

    #[test]
    fn clean_file_reads_back() {
        let f = file(&[b"one", b"", b"three"]);
        let (frames, end) = scan(&f);
        assert_eq!(end, End::Clean);
        let got: Vec<&[u8]> = frames.iter().map(|r| &f[r.clone()]).collect();
        assert_eq!(got, vec![&b"one"[..], b"", b"three"]);
        assert!(check_header(FileKind::Journal, &f).is_ok());
        assert!(check_header(FileKind::Snapshot, &f).is_err());
    }

    #[test]
    fn every_cut_point_is_a_torn_tail_with_a_prefix() {
        let f = file(&[b"alpha", b"beta", b"gamma-gamma", b"delta"]);
        let full = scan(&f).0.len();
        for cut in FILE_HEADER..f.len() {
            let (frames, end) = scan(&f[..cut]);
            assert!(frames.len() < full);
            match end {
                End::Clean => assert_eq!(frames.last().map_or(FILE_HEADER, |r| r.end), cut),
                End::TornTail { offset, .. } => assert_eq!(frames.last().map_or(FILE_HEADER, |r| r.end), offset),
                End::Corrupt { .. } => panic!("cut at {cut} read as corruption"),
            }
        }
    }

    #[test]
    fn zeroed_tail_is_torn() {
        let mut f = file(&[b"alpha"]);
        f.extend_from_slice(&[0u8; 4096]);
        let (frames, end) = scan(&f);
        assert_eq!(frames.len(), 1);
        assert!(matches!(end, End::TornTail { .. }));
    }

    #[test]
    fn damage_before_valid_frames_is_corruption() {
        let mut f = file(&[b"alpha", b"beta", b"gamma"]);
        let second = FILE_HEADER + FRAME_HEADER + 5;
        f[second + FRAME_HEADER + 1] ^= 0xff;
        let (frames, end) = scan(&f);
        assert_eq!(frames.len(), 1);
        assert_eq!(end, End::Corrupt { offset: second, reason: "checksum mismatch" });
    }
}
