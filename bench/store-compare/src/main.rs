//! Durable-journal comparison for an in-RAM-indexed job-queue daemon.
//!
//! Every store is asked for the same thing: make a group of small keyed
//! records (key "unit-N", 200-byte value) durable before `commit` returns.
//! See README.md for the workloads and the results.

use std::collections::HashMap;
use std::error::Error;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn Error>>;
type Map = HashMap<Vec<u8>, Vec<u8>>;

const VALUE_LEN: usize = 200;

// ---------------------------------------------------------------- stores

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Own journal: O_APPEND, one write + one fdatasync per commit.
    Own,
    /// Own journal, file pre-sized with ftruncate in 64 MiB chunks (sparse,
    /// as fjall does with its journal): a commit's fdatasync no longer has to
    /// log a file-size change, only a block allocation once per 4 KiB.
    OwnPrealloc,
    /// Own journal, file pre-filled with zeros in 64 MiB chunks: fdatasync
    /// is a pure data overwrite (no metadata at all), but every byte of the
    /// journal is written twice unless segments are recycled.
    OwnZerofill,
    /// redb, Durability::Immediate on every commit.
    Redb,
    /// fjall write batch with PersistMode::SyncData.
    FjallData,
    /// fjall write batch with PersistMode::SyncAll.
    FjallAll,
    /// SQLite WAL, synchronous=FULL.
    SqliteFull,
    /// SQLite WAL, synchronous=NORMAL (NOT durable per commit; a note).
    SqliteNormal,
}

const ALL: [Kind; 8] = [
    Kind::Own,
    Kind::OwnPrealloc,
    Kind::OwnZerofill,
    Kind::Redb,
    Kind::FjallData,
    Kind::FjallAll,
    Kind::SqliteFull,
    Kind::SqliteNormal,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Own => "own",
            Kind::OwnPrealloc => "own-prealloc",
            Kind::OwnZerofill => "own-zerofill",
            Kind::Redb => "redb",
            Kind::FjallData => "fjall-syncdata",
            Kind::FjallAll => "fjall-syncall",
            Kind::SqliteFull => "sqlite-wal-full",
            Kind::SqliteNormal => "sqlite-wal-normal",
        }
    }
    fn from_name(s: &str) -> Option<Kind> {
        ALL.iter().copied().find(|k| k.name() == s)
    }
}

trait Store {
    /// Make all `recs` durable, atomically, before returning.
    fn commit(&mut self, recs: &[(Vec<u8>, Vec<u8>)]) -> Res<()>;
    /// Clean shutdown.
    fn close(self: Box<Self>) -> Res<()>;
}

fn open(kind: Kind, dir: &Path) -> Res<Box<dyn Store>> {
    fs::create_dir_all(dir)?;
    Ok(match kind {
        Kind::Own => Box::new(Own::open(dir, Prealloc::None)?),
        Kind::OwnPrealloc => Box::new(Own::open(dir, Prealloc::Sparse)?),
        Kind::OwnZerofill => Box::new(Own::open(dir, Prealloc::Zerofill)?),
        Kind::Redb => Box::new(RedbStore::open(dir)?),
        Kind::FjallData => Box::new(FjallStore::open(dir, fjall::PersistMode::SyncData)?),
        Kind::FjallAll => Box::new(FjallStore::open(dir, fjall::PersistMode::SyncAll)?),
        Kind::SqliteFull => Box::new(SqliteStore::open(dir, "FULL")?),
        Kind::SqliteNormal => Box::new(SqliteStore::open(dir, "NORMAL")?),
    })
}

/// Open an existing store and read every record back into a HashMap, as the
/// daemon would rebuild its RAM indexes at start-up.
fn recover(kind: Kind, dir: &Path) -> Res<Map> {
    match kind {
        Kind::Own | Kind::OwnPrealloc | Kind::OwnZerofill => Own::recover(dir),
        Kind::Redb => RedbStore::recover(dir),
        Kind::FjallData | Kind::FjallAll => FjallStore::recover(dir),
        Kind::SqliteFull => SqliteStore::recover(dir, "FULL"),
        Kind::SqliteNormal => SqliteStore::recover(dir, "NORMAL"),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

// ---- own journal
//
// Record: u32 LE payload length | u32 LE crc32(payload) | payload,
// payload = u16 LE key length | key | value. A commit is the records of the
// group concatenated in one buffer, one write, one fdatasync. Recovery reads
// until EOF, a zero length (preallocated tail) or a bad CRC (torn tail).

const PREALLOC_CHUNK: u64 = 64 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Prealloc {
    None,
    Sparse,
    Zerofill,
}

struct Own {
    file: File,
    buf: Vec<u8>,
    mode: Prealloc,
    /// Write position and preallocated length (preallocating modes).
    pos: u64,
    cap: u64,
}

impl Own {
    fn path(dir: &Path) -> PathBuf {
        dir.join("journal.log")
    }

    fn open(dir: &Path, mode: Prealloc) -> Res<Own> {
        let path = Own::path(dir);
        let file = if mode == Prealloc::None {
            OpenOptions::new().create(true).append(true).open(&path)?
        } else {
            // The bench only ever writes fresh journals (pos starts at 0).
            OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?
        };
        let mut own = Own { file, buf: Vec::with_capacity(1 << 16), mode, pos: 0, cap: 0 };
        if mode != Prealloc::None {
            own.extend()?;
        }
        sync_dir(dir)?;
        Ok(own)
    }

    /// Grow the preallocated region by one chunk.
    fn extend(&mut self) -> io::Result<()> {
        let from = self.cap;
        self.cap += PREALLOC_CHUNK;
        match self.mode {
            Prealloc::None => Ok(()),
            // The size change is made durable by the next commit's fdatasync.
            Prealloc::Sparse => self.file.set_len(self.cap),
            Prealloc::Zerofill => {
                // 4 KiB writes, so the page cache keeps 4 KiB folios (a 1 MiB
                // write gets a 1 MiB folio on ext4, and every later small
                // write would then count as dirtying 1 MiB in write_bytes).
                let zeros = vec![0u8; 4096];
                let mut off = from;
                while off < self.cap {
                    self.file.write_all_at(&zeros, off)?;
                    off += zeros.len() as u64;
                }
                self.file.sync_all()
            }
        }
    }

    fn encode(buf: &mut Vec<u8>, key: &[u8], value: &[u8]) {
        let payload_len = 2 + key.len() + value.len();
        let start = buf.len();
        buf.extend_from_slice(&(payload_len as u32).to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&(key.len() as u16).to_le_bytes());
        buf.extend_from_slice(key);
        buf.extend_from_slice(value);
        let crc = crc32fast::hash(&buf[start + 8..]);
        buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    fn recover(dir: &Path) -> Res<Map> {
        let mut r = BufReader::with_capacity(1 << 20, File::open(Own::path(dir))?);
        let mut map = Map::new();
        let mut hdr = [0u8; 8];
        let mut payload = Vec::new();
        loop {
            match r.read_exact(&mut hdr) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
            let len = u32::from_le_bytes(hdr[0..4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(hdr[4..8].try_into().unwrap());
            if len < 2 {
                break; // zeroed tail
            }
            payload.resize(len, 0);
            match r.read_exact(&mut payload) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break, // torn tail
                Err(e) => return Err(e.into()),
            }
            if crc32fast::hash(&payload) != crc {
                break; // torn tail
            }
            let klen = u16::from_le_bytes([payload[0], payload[1]]) as usize;
            map.insert(payload[2..2 + klen].to_vec(), payload[2 + klen..].to_vec());
        }
        Ok(map)
    }
}

impl Store for Own {
    fn commit(&mut self, recs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        self.buf.clear();
        for (k, v) in recs {
            Own::encode(&mut self.buf, k, v);
        }
        if self.mode == Prealloc::None {
            self.file.write_all(&self.buf)?;
        } else {
            // Keep at least 8 zero bytes after the data as end marker.
            while self.pos + self.buf.len() as u64 + 8 > self.cap {
                self.extend()?;
            }
            self.file.write_all_at(&self.buf, self.pos)?;
            self.pos += self.buf.len() as u64;
        }
        self.file.sync_data()?;
        Ok(())
    }
    fn close(self: Box<Self>) -> Res<()> {
        Ok(())
    }
}

// ---- redb

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("units");

struct RedbStore {
    db: redb::Database,
}

impl RedbStore {
    fn path(dir: &Path) -> PathBuf {
        dir.join("db.redb")
    }
    fn open(dir: &Path) -> Res<RedbStore> {
        let db = redb::Database::create(RedbStore::path(dir))?;
        Ok(RedbStore { db })
    }
    fn recover(dir: &Path) -> Res<Map> {
        use redb::{ReadableDatabase, ReadableTable};
        let db = redb::Database::open(RedbStore::path(dir))?;
        let rtx = db.begin_read()?;
        let t = rtx.open_table(REDB_TABLE)?;
        let mut map = Map::new();
        for kv in t.iter()? {
            let (k, v) = kv?;
            map.insert(k.value().to_vec(), v.value().to_vec());
        }
        Ok(map)
    }
}

impl Store for RedbStore {
    fn commit(&mut self, recs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?;
        {
            let mut t = tx.open_table(REDB_TABLE)?;
            for (k, v) in recs {
                t.insert(k.as_slice(), v.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }
    fn close(self: Box<Self>) -> Res<()> {
        drop(self.db);
        Ok(())
    }
}

// ---- fjall

struct FjallStore {
    db: fjall::Database,
    ks: fjall::Keyspace,
    mode: fjall::PersistMode,
}

impl FjallStore {
    fn open(dir: &Path, mode: fjall::PersistMode) -> Res<FjallStore> {
        let db = fjall::Database::builder(dir.join("fjall")).open()?;
        let ks = db.keyspace("units", fjall::KeyspaceCreateOptions::default)?;
        Ok(FjallStore { db, ks, mode })
    }
    fn recover(dir: &Path) -> Res<Map> {
        let db = fjall::Database::builder(dir.join("fjall")).open()?;
        let ks = db.keyspace("units", fjall::KeyspaceCreateOptions::default)?;
        let mut map = Map::new();
        for g in ks.iter() {
            let (k, v) = g.into_inner()?;
            map.insert(k.to_vec(), v.to_vec());
        }
        Ok(map)
    }
}

impl Store for FjallStore {
    fn commit(&mut self, recs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        let mut b = self.db.batch().durability(Some(self.mode));
        for (k, v) in recs {
            b.insert(&self.ks, k.as_slice(), v.as_slice());
        }
        b.commit()?;
        Ok(())
    }
    fn close(self: Box<Self>) -> Res<()> {
        let FjallStore { db, ks, .. } = *self;
        db.persist(fjall::PersistMode::SyncAll)?;
        drop(ks);
        drop(db);
        Ok(())
    }
}

// ---- SQLite

struct SqliteStore {
    conn: rusqlite::Connection,
}

const UPSERT: &str = "INSERT INTO units(key, value) VALUES (?1, ?2) \
                      ON CONFLICT(key) DO UPDATE SET value = excluded.value";

impl SqliteStore {
    fn connect(dir: &Path, sync: &str) -> Res<rusqlite::Connection> {
        let conn = rusqlite::Connection::open(dir.join("db.sqlite"))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if mode != "wal" {
            return Err(format!("journal_mode is {mode}, wanted wal").into());
        }
        conn.pragma_update(None, "synchronous", sync)?;
        let got: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        let want = if sync == "FULL" { 2 } else { 1 };
        if got != want {
            return Err(format!("synchronous is {got}, wanted {want}").into());
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS units(key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
        )?;
        Ok(conn)
    }
    fn open(dir: &Path, sync: &str) -> Res<SqliteStore> {
        Ok(SqliteStore { conn: SqliteStore::connect(dir, sync)? })
    }
    fn recover(dir: &Path, sync: &str) -> Res<Map> {
        let conn = SqliteStore::connect(dir, sync)?;
        let mut st = conn.prepare("SELECT key, value FROM units")?;
        let mut rows = st.query([])?;
        let mut map = Map::new();
        while let Some(row) = rows.next()? {
            map.insert(row.get(0)?, row.get(1)?);
        }
        Ok(map)
    }
}

impl Store for SqliteStore {
    fn commit(&mut self, recs: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(UPSERT)?;
            for (k, v) in recs {
                st.execute((k.as_slice(), v.as_slice()))?;
            }
        }
        tx.commit()?;
        Ok(())
    }
    fn close(self: Box<Self>) -> Res<()> {
        self.conn.close().map_err(|(_, e)| e)?;
        Ok(())
    }
}

// ---------------------------------------------------------------- helpers

fn key(i: usize) -> Vec<u8> {
    format!("unit-{i}").into_bytes()
}

/// 200 pseudo-random (incompressible) bytes, different per record.
fn value(i: usize, out: &mut Vec<u8>) {
    out.clear();
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < VALUE_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(VALUE_LEN);
}

fn make_batch(start: usize, n: usize, batch: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    batch.resize_with(n, Default::default);
    for (j, slot) in batch.iter_mut().enumerate() {
        slot.0.clear();
        slot.0.extend_from_slice(&key(start + j));
        value(start + j, &mut slot.1);
    }
}

/// (wchar, write_bytes) from /proc/self/io: bytes passed to write
/// syscalls, and bytes of page cache dirtied (i.e. sent towards the disk;
/// page-granular, not counting the filesystem's own journal).
fn proc_io() -> (u64, u64) {
    let s = fs::read_to_string("/proc/self/io").unwrap_or_default();
    let get =
        |name: &str| s.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    (get("wchar: "), get("write_bytes: "))
}

/// (apparent bytes, allocated bytes) of all files under `dir`.
fn disk_usage(dir: &Path) -> io::Result<(u64, u64)> {
    let (mut app, mut alloc) = (0, 0);
    for e in fs::read_dir(dir)? {
        let e = e?;
        let md = e.metadata()?;
        if md.is_dir() {
            let (a, b) = disk_usage(&e.path())?;
            app += a;
            alloc += b;
        } else {
            app += md.len();
            alloc += md.blocks() * 512;
        }
    }
    Ok((app, alloc))
}

/// fsync then drop every file of the store from the page cache, so the
/// next open reads from the disk ("cold" recovery) without touching any
/// other process's cache.
fn evict(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.metadata()?.is_dir() {
            evict(&p)?;
        } else {
            let f = File::open(&p)?;
            f.sync_all()?;
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
    Ok(())
}

fn fs_type(dir: &Path) -> String {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        if dir.starts_with(f[1]) && best.as_ref().is_none_or(|(n, _)| f[1].len() >= *n) {
            best = Some((f[1].len(), format!("{} on {} type {}", f[0], f[1], f[2])));
        }
    }
    best.map(|b| b.1).unwrap_or_else(|| "unknown".into())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

// ---------------------------------------------------------------- workloads

#[derive(Default)]
struct WriteResult {
    secs: f64,
    commits: usize,
    records: usize,
    wchar: u64,
    write_bytes: u64,
    logical_bytes: u64,
}

impl WriteResult {
    /// Commits the next group: records `records..` up to `group` of them,
    /// not past `n`. Time and I/O are the caller's to measure.
    fn commit_next(
        &mut self,
        store: &mut dyn Store,
        n: usize,
        group: usize,
        batch: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Res<()> {
        let g = group.min(n - self.records);
        make_batch(self.records, g, batch);
        self.logical_bytes += batch.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum::<u64>();
        store.commit(batch)?;
        self.commits += 1;
        self.records += g;
        Ok(())
    }
}

/// Commit `n` records in groups of `group`; the store is opened before and
/// closed after the timed loop. write_bytes covers the timed loop and the
/// close (not the open, so not own-zerofill's first 64 MiB chunk).
fn write_workload(kind: Kind, dir: &Path, n: usize, group: usize) -> Res<WriteResult> {
    let mut store = open(kind, dir)?;
    let (wc0, wb0) = proc_io();
    let mut batch = Vec::new();
    let mut r = WriteResult::default();
    let t = Instant::now();
    while r.records < n {
        r.commit_next(store.as_mut(), n, group, &mut batch)?;
    }
    r.secs = t.elapsed().as_secs_f64();
    store.close()?;
    let (wc1, wb1) = proc_io();
    r.wchar = wc1 - wc0;
    r.write_bytes = wb1 - wb0;
    Ok(r)
}

fn check(map: &Map, n: usize) -> Res<()> {
    if map.len() != n {
        return Err(format!("recovered {} records, wanted {n}", map.len()).into());
    }
    let mut v = Vec::new();
    for i in [0, n / 2, n - 1] {
        value(i, &mut v);
        if map.get(&key(i)) != Some(&v) {
            return Err(format!("record {i} wrong after recovery").into());
        }
    }
    Ok(())
}

/// Seconds to build a HashMap of `n` records from one contiguous in-RAM
/// buffer (u16 key length | key | value; no I/O, no checksum): the part of
/// every recovery that is the daemon's own index build.
fn hashmap_floor(n: usize) -> f64 {
    let mut buf = Vec::with_capacity(n * (2 + 12 + VALUE_LEN));
    let mut v = Vec::new();
    for i in 0..n {
        let k = key(i);
        value(i, &mut v);
        buf.extend_from_slice(&(k.len() as u16).to_le_bytes());
        buf.extend_from_slice(&k);
        buf.extend_from_slice(&v);
    }
    let t = Instant::now();
    let mut map = Map::new();
    let mut p = 0;
    while p < buf.len() {
        let kl = u16::from_le_bytes([buf[p], buf[p + 1]]) as usize;
        let k = &buf[p + 2..p + 2 + kl];
        let v = &buf[p + 2 + kl..p + 2 + kl + VALUE_LEN];
        map.insert(k.to_vec(), v.to_vec());
        p += 2 + kl + VALUE_LEN;
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(map.len(), n);
    secs
}

/// Median fdatasync latency (s) for 200-byte appends / overwrites.
fn fsync_ref(dir: &Path, iters: usize) -> Res<(f64, f64)> {
    fs::create_dir_all(dir)?;
    let p = dir.join("fsync-probe");
    let f = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&p)?;
    let buf = [7u8; 200];
    let mut app = Vec::with_capacity(iters);
    let mut over = Vec::with_capacity(iters);
    let mut off = 0u64;
    for _ in 0..iters {
        f.write_all_at(&buf, off)?;
        off += buf.len() as u64;
        let t = Instant::now();
        f.sync_data()?;
        app.push(t.elapsed().as_secs_f64());
    }
    for _ in 0..iters {
        f.write_all_at(&buf, 0)?;
        let t = Instant::now();
        f.sync_data()?;
        over.push(t.elapsed().as_secs_f64());
    }
    drop(f);
    fs::remove_file(&p)?;
    Ok((median(&mut app), median(&mut over)))
}

// ---------------------------------------------------------------- driver

#[derive(Default)]
struct Samples {
    a_cps: Vec<f64>,
    a_wb: Vec<f64>,
    a_wc: Vec<f64>,
    b8_cps: Vec<f64>,
    b8_wb: Vec<f64>,
    b8_wc: Vec<f64>,
    b64_cps: Vec<f64>,
    b64_wb: Vec<f64>,
    b64_wc: Vec<f64>,
    c_rps: Vec<f64>,
    c_cps: Vec<f64>,
    c_wb: Vec<f64>,
    c_wc: Vec<f64>,
    d_cold: Vec<f64>,
    d_warm: Vec<f64>,
    e_app: Vec<f64>,
    e_alloc: Vec<f64>,
}

struct Opts {
    dir: PathBuf,
    runs: usize,
    stores: Vec<Kind>,
    small_n: usize,
    bulk_n: usize,
    bulk_group: usize,
}

fn fmt_n(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn spread(v: &[f64]) -> String {
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if hi >= 100.0 {
        format!("{}–{}", fmt_n(lo), fmt_n(hi))
    } else {
        format!("{lo:.3}–{hi:.3}")
    }
}

/// `small_n` records in groups of `group` into every store at once: the
/// commits are split into SLICES slices and the stores take turns slice by
/// slice (order rotated each slice). Time, wchar and write_bytes are summed
/// per store over its own slices (plus its close). Every store is then
/// reopened and checked, and its directory removed.
fn interleaved(o: &Opts, run: usize, group: usize) -> Res<Vec<WriteResult>> {
    const SLICES: usize = 20;
    let n = o.stores.len();
    let dirs: Vec<PathBuf> = o.stores.iter().map(|k| o.dir.join(format!("{}-g{group}-r{run}", k.name()))).collect();
    let mut stores = Vec::new();
    for (k, d) in o.stores.iter().zip(&dirs) {
        let _ = fs::remove_dir_all(d);
        stores.push(Some(open(*k, d)?));
    }
    let mut res: Vec<WriteResult> = (0..n).map(|_| WriteResult::default()).collect();
    let total_commits = o.small_n.div_ceil(group);
    let mut batch = Vec::new();
    for slice in 0..SLICES {
        let upto = total_commits * (slice + 1) / SLICES;
        for k in 0..n {
            let si = (k + slice) % n;
            let r = &mut res[si];
            let store = stores[si].as_mut().unwrap();
            let (wc0, wb0) = proc_io();
            let t = Instant::now();
            while r.commits < upto {
                r.commit_next(store.as_mut(), o.small_n, group, &mut batch)?;
            }
            r.secs += t.elapsed().as_secs_f64();
            let (wc1, wb1) = proc_io();
            r.wchar += wc1 - wc0;
            r.write_bytes += wb1 - wb0;
        }
    }
    for si in 0..n {
        let (wc0, wb0) = proc_io();
        stores[si].take().unwrap().close()?;
        let (wc1, wb1) = proc_io();
        res[si].wchar += wc1 - wc0;
        res[si].write_bytes += wb1 - wb0;
        if res[si].records != o.small_n {
            return Err("interleaved: record count mismatch".into());
        }
        check(&recover(o.stores[si], &dirs[si])?, o.small_n)?;
        fs::remove_dir_all(&dirs[si])?;
    }
    Ok(res)
}

fn run_all(o: &Opts) -> Res<()> {
    let total = Instant::now();
    println!("data dir: {} ({})", o.dir.display(), fs_type(&o.dir));
    if fs_type(&o.dir).contains("tmpfs") {
        eprintln!("WARNING: data dir is on tmpfs; fsync numbers are meaningless");
    }
    let mut samples: Vec<Samples> = o.stores.iter().map(|_| Samples::default()).collect();
    let mut fs_app = Vec::new();
    let mut fs_over = Vec::new();
    let mut probes = Vec::new();
    let mut floors = Vec::new();
    for run in 1..=o.runs {
        let (a, ov) = fsync_ref(&o.dir.join("fsync"), 2000)?;
        eprintln!("run {run}: fdatasync append {:.0} us, overwrite {:.0} us", a * 1e6, ov * 1e6);
        fs_app.push(a);
        fs_over.push(ov);
        // a), b): all stores open side by side, commits done round-robin in
        // short slices, so a burst of other I/O on the machine (fsync
        // latency here swings from 0.1 to 4 ms) hits every store alike.
        for group in [1usize, 8, 64] {
            let (p, _) = fsync_ref(&o.dir.join("fsync"), 300)?;
            probes.push(p);
            let rs = interleaved(o, run, group)?;
            for (si, r) in rs.iter().enumerate() {
                let kind = o.stores[si];
                let s = &mut samples[si];
                let c = r.commits as f64 / r.secs;
                let w = r.write_bytes as f64 / r.records as f64;
                let wc = r.wchar as f64 / r.records as f64;
                eprintln!(
                    "run {run} {:<18} g={group:<3} {:>9.0} commits/s {:>10.0} rec/s  {:>6.0} B/rec to write(), {:>6.0} B/rec dirtied (logical {:.0})",
                    kind.name(),
                    c,
                    r.records as f64 / r.secs,
                    wc,
                    w,
                    r.logical_bytes as f64 / r.records as f64
                );
                match group {
                    1 => {
                        s.a_cps.push(c);
                        s.a_wb.push(w);
                        s.a_wc.push(wc);
                    }
                    8 => {
                        s.b8_cps.push(c);
                        s.b8_wb.push(w);
                        s.b8_wc.push(wc);
                    }
                    _ => {
                        s.b64_cps.push(c);
                        s.b64_wb.push(w);
                        s.b64_wc.push(wc);
                    }
                }
            }
        }
        floors.push(hashmap_floor(o.bulk_n));
        // c), d), e): one store after the other, order rotated per run.
        let n = o.stores.len();
        for k in 0..n {
            let si = (k + (run - 1) * (n / o.runs.max(1)).max(1)) % n;
            let kind = o.stores[si];
            let s = &mut samples[si];
            // c) bulk, e) disk usage, d) recovery
            let dir = o.dir.join(format!("{}-bulk-r{run}", kind.name()));
            let _ = fs::remove_dir_all(&dir);
            let r = write_workload(kind, &dir, o.bulk_n, o.bulk_group)?;
            let (app, alloc) = disk_usage(&dir)?;
            evict(&dir)?;
            let t = Instant::now();
            let map = recover(kind, &dir)?;
            let cold = t.elapsed().as_secs_f64();
            check(&map, o.bulk_n)?;
            drop(map);
            let t = Instant::now();
            let map = recover(kind, &dir)?;
            let warm = t.elapsed().as_secs_f64();
            check(&map, o.bulk_n)?;
            drop(map);
            fs::remove_dir_all(&dir)?;
            eprintln!(
                "run {run} {:<18} bulk {:>9.0} rec/s {:>6.1} commits/s {:>5.0} B/rec to write(), {:>5.0} B/rec dirtied; disk {} B (alloc {}); reopen cold {:.2}s warm {:.2}s",
                kind.name(),
                r.records as f64 / r.secs,
                r.commits as f64 / r.secs,
                r.wchar as f64 / r.records as f64,
                r.write_bytes as f64 / r.records as f64,
                app,
                alloc,
                cold,
                warm
            );
            s.c_rps.push(r.records as f64 / r.secs);
            s.c_cps.push(r.commits as f64 / r.secs);
            s.c_wb.push(r.write_bytes as f64 / r.records as f64);
            s.c_wc.push(r.wchar as f64 / r.records as f64);
            s.d_cold.push(cold);
            s.d_warm.push(warm);
            s.e_app.push(app as f64);
            s.e_alloc.push(alloc as f64);
        }
    }

    let fa = median(&mut fs_app.clone());
    let fo = median(&mut fs_over.clone());
    println!();
    println!(
        "Bare fdatasync after a 200-byte write (median of {} runs × 2000): append {:.0} µs (≈{} /s), overwrite in place {:.0} µs (≈{} /s)",
        o.runs,
        fa * 1e6,
        fmt_n(1.0 / fa),
        fo * 1e6,
        fmt_n(1.0 / fo)
    );
    println!();
    println!(
        "Medians of {} runs. a) {} commits × 1 record; b) {} records in groups of 8 / 64; c) {} records in commits of {}.",
        o.runs, o.small_n, o.small_n, o.bulk_n, o.bulk_group
    );
    println!();
    println!("| store | a) commits/s (= rec/s) | b) g=8 commits/s | b) g=8 rec/s | b) g=64 commits/s | b) g=64 rec/s | c) bulk rec/s | c) commits/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (si, &kind) in o.stores.iter().enumerate() {
        let s = &samples[si];
        let a = median(&mut s.a_cps.clone());
        let b8 = median(&mut s.b8_cps.clone());
        let b64 = median(&mut s.b64_cps.clone());
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            kind.name(),
            fmt_n(a),
            fmt_n(b8),
            fmt_n(b8 * 8.0),
            fmt_n(b64),
            fmt_n(b64 * 64.0),
            fmt_n(median(&mut s.c_rps.clone())),
            median(&mut s.c_cps.clone())
        );
    }
    println!();
    println!("| store | d) reopen + read all into HashMap, cold cache (s) | d) same, warm cache (s) | e) disk bytes after c) (apparent) | e) disk bytes (allocated) |");
    println!("|---|---:|---:|---:|---:|");
    for (si, &kind) in o.stores.iter().enumerate() {
        let s = &samples[si];
        println!(
            "| {} | {:.2} | {:.2} | {} | {} |",
            kind.name(),
            median(&mut s.d_cold.clone()),
            median(&mut s.d_warm.clone()),
            fmt_n(median(&mut s.e_app.clone())),
            fmt_n(median(&mut s.e_alloc.clone())),
        );
    }
    println!();
    println!(
        "d) floor: building the same HashMap from records already in RAM (one contiguous buffer, no I/O, no CRC) takes {:.2} s (median): that much of every d) figure is the daemon's own index build.",
        median(&mut floors.clone())
    );
    println!();
    println!("Bytes per record written: W = handed to write()/pwrite() (wchar), D = page cache dirtied, i.e. sent to the disk at 4 KiB granularity (write_bytes; excludes the ext4 journal). Logical record = key + value ≈ 209 B.");
    println!();
    println!("| store | a) W | a) D | b) g=8 W | b) g=8 D | b) g=64 W | b) g=64 D | c) W | c) D |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (si, &kind) in o.stores.iter().enumerate() {
        let s = &samples[si];
        let m = |v: &Vec<f64>| fmt_n(median(&mut v.clone()));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            kind.name(),
            m(&s.a_wc),
            m(&s.a_wb),
            m(&s.b8_wc),
            m(&s.b8_wb),
            m(&s.b64_wc),
            m(&s.b64_wb),
            m(&s.c_wc),
            m(&s.c_wb),
        );
    }
    println!();
    println!("Spread (min–max over runs):");
    println!();
    println!("| store | a) commits/s | b) g=8 commits/s | b) g=64 commits/s | c) rec/s | d) cold s | d) warm s |");
    println!("|---|---|---|---|---|---|---|");
    for (si, &kind) in o.stores.iter().enumerate() {
        let s = &samples[si];
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            kind.name(),
            spread(&s.a_cps),
            spread(&s.b8_cps),
            spread(&s.b64_cps),
            spread(&s.c_rps),
            spread(&s.d_cold),
            spread(&s.d_warm),
        );
    }
    println!();
    println!(
        "Bare fdatasync (append) probed before each a)/b) round: {} µs (median of 300 each).",
        probes.iter().map(|p| format!("{:.0}", p * 1e6)).collect::<Vec<_>>().join(", ")
    );
    println!();
    println!("total bench time: {:.0} s", total.elapsed().as_secs_f64());
    Ok(())
}

/// One write workload, no output: meant to be run under `strace -c` to
/// count the sync calls a store makes per commit.
fn syscount(kind: Kind, dir: &Path, n: usize, group: usize) -> Res<()> {
    let _ = fs::remove_dir_all(dir);
    let r = write_workload(kind, dir, n, group)?;
    fs::remove_dir_all(dir)?;
    eprintln!("{} commits of {group}", r.commits);
    Ok(())
}

fn usage() -> ! {
    eprintln!(
        "usage: store-compare [--dir DIR] [--runs N] [--stores a,b,..] [--small N] [--bulk N] [--bulk-group N]\n\
         \x20      store-compare syscount --store NAME [--dir DIR] [--commits N] [--group N]\n\
         stores: {}",
        ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
    );
    std::process::exit(2)
}

fn main() -> Res<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let sub = if args.first().map(|s| s.as_str()) == Some("syscount") {
        args.remove(0);
        true
    } else {
        false
    };
    let mut o = Opts {
        dir: PathBuf::from("bench-data"),
        runs: 3,
        // own-zerofill only on request (--stores): it is own-prealloc plus
        // writing every journal byte twice.
        stores: ALL.iter().copied().filter(|k| *k != Kind::OwnZerofill).collect(),
        small_n: 20_000,
        bulk_n: 1_000_000,
        bulk_group: 10_000,
    };
    let mut sc_store = None;
    let mut sc_commits = 1000;
    let mut sc_group = 1;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--dir" => o.dir = PathBuf::from(val()),
            "--runs" => o.runs = val().parse()?,
            "--small" => o.small_n = val().parse()?,
            "--bulk" => o.bulk_n = val().parse()?,
            "--bulk-group" => o.bulk_group = val().parse()?,
            "--stores" => o.stores = val().split(',').map(|s| Kind::from_name(s).unwrap_or_else(|| usage())).collect(),
            "--store" => sc_store = Some(Kind::from_name(&val()).unwrap_or_else(|| usage())),
            "--commits" => sc_commits = val().parse()?,
            "--group" => sc_group = val().parse()?,
            _ => usage(),
        }
    }
    fs::create_dir_all(&o.dir)?;
    if sub {
        let kind = sc_store.unwrap_or_else(|| usage());
        return syscount(kind, &o.dir.join(format!("syscount-{}", kind.name())), sc_commits * sc_group, sc_group);
    }
    run_all(&o)
}
