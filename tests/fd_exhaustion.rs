// One libc call (clock_gettime) reads the process CPU time without opening a file: the test runs
// at the open-files limit, where opening /proc files can fail.
#![allow(unsafe_code)]

//! Running out of file descriptors: BAD_INPUTS line 56. `accept` failing with EMFILE must not
//! turn the reactor into a busy loop; it backs off and recovers once descriptors are free.
//!
//! Its own test binary (own process): it lowers `RLIMIT_NOFILE` for the whole process, which
//! would break tests running beside it. It restores the limit at the end, even on failure.

mod common;

use std::fs::File;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Restores the soft fd limit when dropped.
struct LimitGuard(u64);

impl Drop for LimitGuard {
    fn drop(&mut self) {
        let _ = myriad::internals::set_nofile_limit(self.0);
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// CPU time used by the whole process (every thread), without opening a file.
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn is_emfile(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EMFILE)
}

#[test]
fn bad_inputs_56_fd_exhaustion_no_busy_loop_and_recovery() {
    let (soft, _) = myriad::internals::nofile_limit().unwrap();
    let _guard = LimitGuard(soft);
    let srv = TestServer::start(
        config().handshake_timeout(Duration::from_secs(10)),
        myriad::Echo,
    );
    let addr = srv.addr;
    let mut first = Raw::open(addr);
    assert_echo(&mut first, "before");

    // One descriptor in reserve, to be freed if the client side runs out first.
    let mut spare = Some(File::open("/dev/null").unwrap());
    myriad::internals::set_nofile_limit(open_fds() + 40).unwrap();

    // Open clients until one is not accepted: the client side took the last descriptor, so the
    // server's accept fails with EMFILE.
    let mut clients = Vec::new();
    let mut pending = loop {
        assert!(clients.len() < 100, "never ran out of descriptors");
        let stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) if is_emfile(&e) => {
                // Both sides are full with no connection waiting: free one for the client.
                assert!(spare.take().is_some(), "EMFILE with nothing left to free");
                continue;
            }
            Err(e) => panic!("connect: {e}"),
        };
        let mut r = Raw::from_stream(stream);
        r.write(&request(&[]));
        if !r.readable_within(Duration::from_millis(300)) {
            break r; // the server could not accept it
        }
        assert_101(&r.read_head());
        clients.push(r);
    };
    assert!(
        clients.len() >= 5,
        "only {} clients before exhaustion",
        clients.len()
    );

    // At the limit: the reactor retries accept with a pause instead of spinning.
    let cpu0 = process_cpu();
    let wall0 = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let cpu = process_cpu() - cpu0;
    let wall = wall0.elapsed();
    assert!(
        cpu < wall.mul_f64(0.3),
        "{cpu:?} of CPU in {wall:?} while out of descriptors: busy loop"
    );
    // Still not accepted, and the connections already open are served as usual.
    assert!(!pending.readable_within(Duration::from_millis(50)));
    assert_echo(&mut first, "during");
    assert_echo(&mut clients[0], "during");

    // Free descriptors: the waiting client is accepted and upgraded.
    let t = Instant::now();
    clients.truncate(clients.len() / 2);
    assert_101(&pending.read_head());
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "recovery took {:?}",
        t.elapsed()
    );
    assert_echo(&mut pending, "recovered");

    // All closed: a new client completes a handshake and an echo.
    clients.clear();
    drop(pending);
    let mut fresh = Raw::open(addr);
    assert_echo(&mut fresh, "fresh");
    assert_echo(&mut first, "after");

    drop(_guard);
    assert_eq!(myriad::internals::nofile_limit().unwrap().0, soft);
}
