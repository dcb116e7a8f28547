//! Process-wide settings made once at start-up by the binary.
//!
//! * The open-file limit. Every connection is a file descriptor; the usual
//!   soft limit of 1,024 would cap the daemon near a thousand workers,
//!   while the hard limit is typically far higher, so start-up raises the
//!   soft limit to the hard one, and the connection cap is derived from it.
//! * glibc's allocator thresholds. By default glibc raises its mmap
//!   threshold each time a large block is freed (up to 32 MiB), after which
//!   blocks that size come from the heap and are kept when freed: a few
//!   24 MiB requests leave the daemon holding memory it no longer uses.
//!   Fixing the thresholds at glibc's own starting values keeps large
//!   buffers in their own mappings, returned to the system when freed.
//!   glibc also opens a new arena (a heap of its own, which keeps its
//!   working set) whenever threads contend, up to 8 per CPU; one arena per
//!   CPU, as many as tokio has workers, is enough for the daemon.
//! * Heap trimming. A large request decodes into many small values (a
//!   million spec names, say); once freed they leave pages glibc keeps
//!   unless asked, so a second after large requests the daemon asks
//!   (`malloc_trim`), off the request path.

use tracing::{info, warn};

/// Descriptors kept for everything but client connections: the listener,
/// PostgreSQL connections, log files, a connection accepted only to be
/// refused.
pub const FD_RESERVE: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft
/// limit now in force (`None` if it cannot be read).
pub fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        warn!(error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
        return None;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        } else {
            warn!(soft = before, hard = lim.rlim_max, error = %std::io::Error::last_os_error(), "cannot raise the open-file limit");
        }
    }
    info!(before, soft = lim.rlim_cur, hard = lim.rlim_max, "open-file limit");
    Some(lim.rlim_cur)
}

/// The soft open-file limit in force, if it can be read.
pub fn fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim.rlim_cur)
}

/// The default connection cap: the open-file limit less [`FD_RESERVE`],
/// so the daemon refuses a connection cleanly before `accept` runs out of
/// descriptors.
pub fn default_max_connections() -> usize {
    let limit = fd_limit().unwrap_or(1024);
    usize::try_from(limit.saturating_sub(FD_RESERVE).max(1)).unwrap_or(usize::MAX)
}

/// Fixes glibc's mmap and trim thresholds at 128 KiB (their defaults),
/// turning off their growth, and allows one arena per CPU (at least two);
/// see the module documentation. Call before any other thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        // SAFETY: mallopt only sets allocator parameters.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 10);
            libc::mallopt(libc::M_ARENA_MAX, i32::try_from(cpus).unwrap_or(i32::MAX));
        }
    }
}

static HEAVY_SINCE_TRIM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes that a large request ran: the heap trimmer gives its freed pages
/// back within a second.
pub fn note_heavy_request() {
    HEAVY_SINCE_TRIM.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Every second, if a large request ran since the last time, gives freed
/// heap pages back to the system (`malloc_trim` walks the allocator's free
/// lists, so it runs on a blocking thread, never per request).
pub async fn trim_heap_forever() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if HEAVY_SINCE_TRIM.swap(false, std::sync::atomic::Ordering::Relaxed) {
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only releases memory the allocator holds free.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        }
    }
}

/// The default number of threads serving connections: one per CPU less
/// one, at least one. Each request is a few microseconds of the daemon's
/// own work around two system calls, so a thread keeps up with many
/// connections, and the kernel's share of every request (the socket
/// calls, waking the client) is as large again. On 2 CPUs with the
/// clients on the same machine, one thread served every drain shape tried
/// at less CPU per unit and a higher rate than two; see README,
/// Performance.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// The runtime for `threads` serving threads.
///
/// One thread: tokio's current-thread scheduler, a single FIFO run queue,
/// the cheapest per request. More: the multi-thread scheduler, told to
/// look at its shared queue at every turn. By default it looks once per
/// 31 tasks, and a worker's own queue holds only 256: with 800 clients the
/// overflow waited behind the rest, so a few clients saw 130 ms where the
/// median was 3 ms (`coordbench drain --workers 800` against
/// `--threads 2`, before this setting); checking every turn brought p99
/// to 18 ms.
pub fn runtime(threads: usize) -> tokio::runtime::Builder {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads).global_queue_interval(1);
        b
    }
}
