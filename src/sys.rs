//! Everything that reaches the OS directly: listening sockets, file limits, signals.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// A non-blocking listener with `SO_REUSEADDR` and `SO_REUSEPORT`, so every reactor (and every
/// process of a scale test) can bind the same port and let the kernel spread connections.
pub fn reuseport_listener(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Binds `addr` without `SO_REUSEPORT` and lets it go: fails with `AddrInUse` when another
/// socket (another process's reactors, say) already serves the address, where a `SO_REUSEPORT`
/// bind would silently share it. Returns the bound address (the port chosen when it was 0).
pub fn probe_exclusive(addr: SocketAddr) -> io::Result<SocketAddr> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an inet address"))
}

/// Whether an accept error means "out of file descriptors or memory": back off, do not spin.
pub fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The soft and hard `RLIMIT_NOFILE`.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit struct for the duration of the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((r.rlim_cur, r.rlim_max))
}

/// Sets the soft `RLIMIT_NOFILE` (at most the hard limit).
pub fn set_nofile_limit(soft: u64) -> io::Result<()> {
    let (_, hard) = nofile_limit()?;
    let r = libc::rlimit {
        rlim_cur: soft.min(hard),
        rlim_max: hard,
    };
    // SAFETY: `r` is a valid rlimit struct; setrlimit only reads it.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let (_, hard) = nofile_limit()?;
    set_nofile_limit(hard)?;
    Ok(hard)
}

fn shutdown_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before sigaddset reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// SIGHUP: reload (the TLS certificates), not stop.
pub(crate) const HANGUP: i32 = libc::SIGHUP;

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and the threads it spawns
/// afterwards), so that [`wait_for_shutdown_signal`] can take them synchronously.
pub fn block_shutdown_signals() -> io::Result<()> {
    let set = shutdown_signals();
    // SAFETY: `set` is an initialised sigset; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits until SIGINT, SIGTERM or SIGHUP arrives (they must be blocked first); returns the
/// signal.
pub fn wait_for_shutdown_signal() -> io::Result<i32> {
    let set = shutdown_signals();
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is an initialised sigset and `sig` a valid out-pointer.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(sig)
}

/// Waits up to `timeout` for SIGINT, SIGTERM or SIGHUP (blocked beforehand by
/// [`block_shutdown_signals`]); the signal's number, or `None` when the time passed.
pub fn wait_shutdown_signal_for(timeout: std::time::Duration) -> io::Result<Option<i32>> {
    let set = shutdown_signals();
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `set` and `ts` are valid for the call; no siginfo is asked for (null).
    let rc = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    if rc >= 0 {
        return Ok(Some(rc));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EINTR) => Ok(None),
        _ => Err(e),
    }
}

/// Returns freed heap memory to the OS (glibc's `malloc_trim`); a no-op elsewhere. Called after
/// mass disconnects, so that memory returns to its starting level.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own allocator state; any argument is valid.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Fills `buf` with random bytes from the kernel (for client masking keys).
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe the writable slice `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

/// A quarter of the machine's physical memory (1 GiB when it cannot be read): the default
/// budget for buffered bytes.
pub fn default_memory_budget() -> usize {
    // SAFETY: sysconf reads constants of the running system; no memory is passed.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    match (usize::try_from(pages), usize::try_from(size)) {
        (Ok(p), Ok(s)) if p > 0 && s > 0 => p.saturating_mul(s) / 4,
        _ => 1 << 30,
    }
}

/// This process's resident memory in bytes (`/proc/self/statm`), if it can be read.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf reads a constant of the running system; no memory is passed.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// This process's open file descriptors (entries of `/proc/self/fd`), if they can be counted.
pub fn open_fds() -> Option<u64> {
    // The directory handle read here is one of them; it is left out.
    Some(
        std::fs::read_dir("/proc/self/fd")
            .ok()?
            .count()
            .saturating_sub(1) as u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_are_read() {
        assert!(resident_bytes().is_some_and(|b| b > 1 << 20));
        let before = open_fds().unwrap();
        let f = std::fs::File::open("/proc/self/statm").unwrap();
        assert_eq!(open_fds(), Some(before + 1));
        drop(f);
    }

    #[test]
    fn nofile_round_trip_and_random() {
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft <= hard);
        set_nofile_limit(soft).unwrap();
        assert_eq!(nofile_limit().unwrap().0, soft);
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        random_bytes(&mut a).unwrap();
        random_bytes(&mut b).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn trim_heap_after_freeing() {
        let big: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 64 << 10]).collect();
        drop(big);
        trim_heap();
        // Still a working allocator afterwards.
        assert_eq!(
            vec![2u8; 1 << 20]
                .iter()
                .map(|&b| usize::from(b))
                .sum::<usize>(),
            2 << 20
        );
    }

    #[test]
    fn blocked_signal_is_taken_by_sigwait() {
        // In a thread of its own, so the mask does not leak into other tests.
        let t = std::thread::spawn(|| {
            block_shutdown_signals().unwrap();
            // SAFETY: raising SIGTERM at this thread; it is blocked here, so it stays pending
            // until sigwait takes it (it cannot kill the test process).
            let rc = unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGTERM) };
            assert_eq!(rc, 0);
            wait_for_shutdown_signal().unwrap()
        });
        assert_eq!(t.join().unwrap(), libc::SIGTERM);
    }

    #[test]
    fn two_listeners_share_a_port() {
        let a = reuseport_listener("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = a.local_addr().unwrap();
        let b = reuseport_listener(addr, 16).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
    }
}
