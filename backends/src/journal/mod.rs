//! An append-only journal in a directory: segment files of framed
//! records, snapshots beside them, one writer thread with group commit.
//!
//! This module knows bytes, files and durability, nothing of Coordinate:
//! the durable backend decides what a record says.
//!
//! * [`codec`] — the field encoding inside records.
//! * [`frame`] — file headers, frames with checksums, and the scan that
//!   tells a torn tail from corruption.
//! * [`dir`] — the directory: its lock, file names, listing, snapshot
//!   files written to a temporary name and renamed into place.
//! * [`ahead`] — synced zeros kept ahead of the writer, so its syncs
//!   flush data without also committing a file-size change.
//! * [`writer`] — [`Journal`]: callers append under their own lock, in the
//!   order of their changes; one thread writes whatever has accumulated
//!   with one `write` and (per [`FsyncMode`]) one `fdatasync`, so a sync is
//!   shared by every request that arrived while the previous one ran;
//!   callers then wait for the position they appended to be durable.

mod ahead;
pub mod codec;
pub mod dir;
pub mod frame;
pub mod writer;

pub use dir::{Dir, Disk, RealDisk};
pub use writer::{FsyncMode, Journal};
