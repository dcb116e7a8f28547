//! The open-file limit. Every connection is a file descriptor; the usual
//! soft limit of 1,024 would cap the daemon near a thousand workers, while
//! the hard limit is typically far higher, so start-up raises the soft
//! limit to the hard one, and the connection cap is derived from it.

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
