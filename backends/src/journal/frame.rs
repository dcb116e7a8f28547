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
//! damaged length is caught too. A record frame's payload is records; a
//! *sync mark* (journal version 2, its own magic) starts every batch the
//! writer writes and holds the offset up to which the file was known
//! durable when the batch was written.
//!
//! [`scan`] reads frames until the first bad one and then decides what the
//! bad bytes are. If no valid frame follows them, they are a torn tail: the
//! end of a write the crash cut short, which was never acknowledged (a
//! reply waits for its bytes to be written), so it is safe to cut off. If
//! valid frames follow but no sync mark after the damage says it was
//! durable, it is a hole in the unsynced tail: the kernel writes pages back
//! in any order, so a power loss can keep a later page of a batch and lose
//! an earlier one, and nothing from the hole on was acknowledged. If a
//! mark says the damaged bytes were durable (or the file has no marks),
//! acknowledged records may lie beyond the damage, and cutting there would
//! lose them: that is corruption, and the caller refuses to start unless
//! told to truncate.

use std::ops::Range;

/// Marks the start of a record frame.
pub const MAGIC: u32 = 0xC00D_F4A3;
/// Marks the start of a sync mark frame (8-byte payload: u64 LE offset).
pub const MARK: u32 = 0xC00D_F4A5;
/// Bytes of a sync mark frame.
pub const MARK_LEN: usize = FRAME_HEADER + 8;
/// Bytes before a frame's payload.
pub const FRAME_HEADER: usize = 12;
/// The largest payload accepted when reading (writes are far smaller).
pub const MAX_PAYLOAD: usize = 1 << 30;
/// Bytes of a file header.
pub const FILE_HEADER: usize = 16;
/// The current format version of journal segments (2 added sync marks).
pub const JOURNAL_VERSION: u32 = 2;
/// The current format version of snapshots.
pub const SNAPSHOT_VERSION: u32 = 1;

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

    fn version(self) -> u32 {
        match self {
            FileKind::Journal => JOURNAL_VERSION,
            FileKind::Snapshot => SNAPSHOT_VERSION,
        }
    }
}

/// The header a file of this kind starts with.
pub fn file_header(kind: FileKind) -> [u8; FILE_HEADER] {
    let mut h = [0u8; FILE_HEADER];
    h[..8].copy_from_slice(kind.tag());
    h[8..12].copy_from_slice(&kind.version().to_le_bytes());
    h
}

/// Checks a file's header and returns its version (every version up to
/// the current one is read); the error says what is wrong.
pub fn check_header(kind: FileKind, bytes: &[u8]) -> Result<u32, String> {
    if bytes.len() < FILE_HEADER {
        return Err(format!("shorter than its {FILE_HEADER}-byte header"));
    }
    if &bytes[..8] != kind.tag() {
        return Err(format!("not a {:?} file (header {:?})", kind, String::from_utf8_lossy(&bytes[..8])));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version == 0 || version > kind.version() {
        return Err(format!("format version {version}; this daemon reads versions 1 to {}", kind.version()));
    }
    Ok(version)
}

/// Appends one frame holding `payload` to `out`.
pub fn append_frame(out: &mut Vec<u8>, payload: &[u8]) {
    put_frame(out, MAGIC, payload);
}

/// Appends a sync mark: the file was durable up to `synced` when the
/// frames after it were written.
pub fn append_mark(out: &mut Vec<u8>, synced: u64) {
    put_frame(out, MARK, &synced.to_le_bytes());
}

fn put_frame(out: &mut Vec<u8>, magic: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(payload);
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// A valid frame.
enum Frame {
    /// A record frame and its payload's range.
    Records(Range<usize>),
    /// A sync mark and the offset it says was durable.
    Mark(u64),
}

impl Frame {
    fn end(&self, at: usize) -> usize {
        match self {
            Frame::Records(p) => p.end,
            Frame::Mark(_) => at + MARK_LEN,
        }
    }
}

/// The frame at `at`, or why there is none.
fn frame_at(bytes: &[u8], at: usize) -> Result<Frame, &'static str> {
    let rest = &bytes[at..];
    if rest.len() < FRAME_HEADER {
        return Err("frame header cut short");
    }
    let word = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().expect("4 bytes"));
    let mark = match word(0) {
        MAGIC => false,
        MARK => true,
        _ => return Err("no frame marker"),
    };
    let len = word(4) as usize;
    if len > MAX_PAYLOAD || (mark && len != MARK_LEN - FRAME_HEADER) {
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
    Ok(if mark {
        Frame::Mark(u64::from_le_bytes(bytes[payload].try_into().expect("8 bytes")))
    } else {
        Frame::Records(payload)
    })
}

/// How the frames of a file end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every byte belongs to a valid frame.
    Clean,
    /// Bytes from `offset` on hold no valid frame: a write cut short.
    TornTail { offset: usize, reason: &'static str },
    /// Bytes from `offset` on hold no valid frame, but valid frames follow
    /// that were written after a sync the crash interrupted (no sync mark
    /// after `offset` says it was durable): never acknowledged.
    UnsyncedHole { offset: usize, reason: &'static str },
    /// The frame at `offset` is damaged but valid frames follow it, and a
    /// sync mark says it was durable (or the file has no marks).
    Corrupt { offset: usize, reason: &'static str },
}

/// The payload ranges of the valid record frames of `bytes` (a whole
/// file, header included), and how they end. `marked`: the file is a
/// journal of version 2 or later, whose batches start with sync marks.
pub fn scan(bytes: &[u8], marked: bool) -> (Vec<Range<usize>>, End) {
    let mut frames = Vec::new();
    let mut at = FILE_HEADER.min(bytes.len());
    while at < bytes.len() {
        match frame_at(bytes, at) {
            Ok(f) => {
                let end = f.end(at);
                if let Frame::Records(p) = f {
                    frames.push(p);
                }
                at = end;
            }
            Err(reason) => {
                let end = match frames_after(bytes, at + 1) {
                    None => End::TornTail { offset: at, reason },
                    Some(synced) if marked && synced.is_none_or(|s| s <= at as u64) => {
                        End::UnsyncedHole { offset: at, reason }
                    }
                    Some(_) => End::Corrupt { offset: at, reason },
                };
                return (frames, end);
            }
        }
    }
    (frames, End::Clean)
}

/// Whether any valid frame starts at or after `from`, and if so the
/// largest durable offset a sync mark among them claims. Only offsets that
/// hold a marker are tried, so zeroed or random tails cost one pass each.
fn frames_after(bytes: &[u8], from: usize) -> Option<Option<u64>> {
    let mut found = None;
    for magic in [MAGIC, MARK] {
        let marker = magic.to_le_bytes();
        let mut at = from;
        while at + FRAME_HEADER <= bytes.len() {
            let Some(i) = bytes[at..].windows(4).position(|w| w == marker) else { break };
            match frame_at(bytes, at + i) {
                Ok(Frame::Mark(synced)) => found = Some(found.flatten().max(Some(synced))),
                Ok(Frame::Records(_)) => {
                    // One record frame answers "any"; marks are what count.
                    found = Some(found.flatten());
                    break;
                }
                Err(_) => {}
            }
            at += i + 1;
        }
    }
    found
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
        let (frames, end) = scan(&f, true);
        assert_eq!(end, End::Clean);
        let got: Vec<&[u8]> = frames.iter().map(|r| &f[r.clone()]).collect();
        assert_eq!(got, vec![&b"one"[..], b"", b"three"]);
        assert_eq!(check_header(FileKind::Journal, &f), Ok(JOURNAL_VERSION));
        assert!(check_header(FileKind::Snapshot, &f).is_err());
    }

    #[test]
    fn every_cut_point_is_a_torn_tail_with_a_prefix() {
        let f = file(&[b"alpha", b"beta", b"gamma-gamma", b"delta"]);
        let full = scan(&f, true).0.len();
        for cut in FILE_HEADER..f.len() {
            let (frames, end) = scan(&f[..cut], true);
            assert!(frames.len() < full);
            match end {
                End::Clean => assert_eq!(frames.last().map_or(FILE_HEADER, |r| r.end), cut),
                End::TornTail { offset, .. } => assert_eq!(frames.last().map_or(FILE_HEADER, |r| r.end), offset),
                End::Corrupt { .. } | End::UnsyncedHole { .. } => panic!("cut at {cut} read as damage"),
            }
        }
    }

    #[test]
    fn zeroed_tail_is_torn() {
        let mut f = file(&[b"alpha"]);
        f.extend_from_slice(&[0u8; 4096]);
        let (frames, end) = scan(&f, true);
        assert_eq!(frames.len(), 1);
        assert!(matches!(end, End::TornTail { .. }));
    }

    #[test]
    fn damage_before_valid_frames_is_corruption() {
        let mut f = file(&[b"alpha", b"beta", b"gamma"]);
        let second = FILE_HEADER + FRAME_HEADER + 5;
        f[second + FRAME_HEADER + 1] ^= 0xff;
        // A version 1 journal has no marks: nothing tells a hole from damage.
        let (frames, end) = scan(&f, false);
        assert_eq!(frames.len(), 1);
        assert_eq!(end, End::Corrupt { offset: second, reason: "checksum mismatch" });
    }

    /// Batches as the writer lays them out: a mark saying how far the file
    /// was durable, then the batch's records.
    fn batches(batches: &[(&[&[u8]], bool)]) -> (Vec<u8>, Vec<usize>) {
        let mut f = file_header(FileKind::Journal).to_vec();
        let (mut synced, mut starts) = (f.len() as u64, Vec::new());
        for (records, sync_after) in batches {
            starts.push(f.len());
            append_mark(&mut f, synced);
            for r in *records {
                append_frame(&mut f, r);
            }
            if *sync_after {
                synced = f.len() as u64;
            }
        }
        (f, starts)
    }

    #[test]
    fn a_hole_after_the_last_sync_is_unsynced_and_before_it_corruption() {
        // Batches 0 and 1 synced; 2 and 3 written while a sync ran.
        let b: &[(&[&[u8]], bool)] =
            &[(&[b"a0", b"a1"], true), (&[b"b0"], true), (&[b"c0", b"c1"], false), (&[b"d0"], false)];
        let (f, starts) = batches(b);
        let (frames, end) = scan(&f, true);
        assert_eq!((frames.len(), end), (6, End::Clean), "marks are not records");
        // Power loss: batch 2's pages lost (zeros), batch 3's kept.
        let mut holed = f.clone();
        holed[starts[2]..starts[3]].fill(0);
        let (frames, end) = scan(&holed, true);
        assert_eq!(frames.len(), 3);
        assert_eq!(end, End::UnsyncedHole { offset: starts[2], reason: "no frame marker" });
        assert_eq!(scan(&holed, false).1, End::Corrupt { offset: starts[2], reason: "no frame marker" });
        // Batch 1 was durable (batch 2's mark says so): losing it is corruption.
        let mut lost = f.clone();
        lost[starts[1]..starts[2]].fill(0);
        assert_eq!(scan(&lost, true).1, End::Corrupt { offset: starts[1], reason: "no frame marker" });
    }
}
