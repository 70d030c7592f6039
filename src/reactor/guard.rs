//! Handler callbacks run under `catch_unwind`: a panic in the application costs the connection
//! it was called for, not the reactor and its other connections (BAD_INPUTS 70). The panic is
//! logged once, with its message, where it happened and the connection; the default panic
//! message is kept off stderr for these (it would say the same without the connection). With
//! `Config::abort_on_panic` the process aborts instead.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use log::error;

use crate::id::ConnId;
use crate::shard::Shard;

thread_local! {
    /// Set while a guarded callback runs on this thread.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the last guarded panic happened (set by the hook).
    static WHERE: RefCell<String> = const { RefCell::new(String::new()) };
}

static HOOK: Once = Once::new();

/// Installs, once per process, a panic hook that records where a guarded callback panicked and
/// passes every other panic to the hook that was there before.
pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let at = info
                    .location()
                    .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
                WHERE.with(|w| *w.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, a handler callback for connection `key` (`what`, for the log), catching a panic:
/// `Some` with its result, or `None` after the panic was logged and counted.
pub(super) fn catch<D, T>(
    shard: &mut Shard<D>,
    key: usize,
    what: &str,
    f: impl FnOnce(&mut Shard<D>) -> T,
) -> Option<T> {
    GUARDED.with(|g| g.set(true));
    let r = panic::catch_unwind(AssertUnwindSafe(|| f(&mut *shard)));
    GUARDED.with(|g| g.set(false));
    let payload = match r {
        Ok(t) => return Some(t),
        Err(p) => p,
    };
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_owned());
    let at = WHERE.with(|w| std::mem::take(&mut *w.borrow_mut()));
    shard.stats.panics += 1;
    let id = shard.conns.get(key).map(|c| ConnId {
        reactor: shard.reactor,
        token: crate::id::Token::new(key, c.generation),
    });
    let peer = shard.conns.get(key).and_then(|c| c.peer_addr().ok());
    error!(
        "handler panicked in {what} (connection {}, peer {}): {message} at {at}",
        id.map_or_else(|| "-".to_owned(), |i| i.to_string()),
        peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
    );
    if shard.cfg.abort_on_panic {
        error!("abort_on_panic is set: aborting");
        std::process::abort();
    }
    None
}
