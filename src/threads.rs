//! Thread scheduling: the request path (gateway workers, account actors,
//! the WAL writer, the history indexer, archive writer and merger) before
//! the background: the checkpointer and the outbox's bank calls. The
//! indexer and the archive writer are not background although they only
//! follow the log: appenders wait for the indexer when it falls behind
//! (`HISTORY_FEED_RECORDS_MAX`) and the indexer waits for the archive
//! writer, so slowing either slows every change (at nice 10 the archive
//! writer halved `hot` and turned half its transfers away with 503s). Nor
//! is the archive's merger, which nobody waits for: every run it leaves
//! unmerged is one more filter each new client id is checked against.
//!
//! On a 2-core machine every thread competes for the same two cores, and
//! Linux's scheduler (EEVDF) lets a running thread finish its slice (about
//! 3 ms) before a thread that wakes on the same core gets it, even when the
//! one running is an archive merge and the one waking is a request whose
//! fsync just finished: 5 ms waits behind the archive writer were the worst
//! `single` latencies (`perf sched timehist`, docs/PERFORMANCE.md).
//!
//! - [`serve_requests`], once at start-up on the main thread and on each
//!   gateway worker: a short custom slice ([`limits::REQUEST_SLICE_US`];
//!   Linux 6.12 and later): a thread with a shorter slice has an earlier
//!   deadline and so takes the core from a longer-sliced one when it wakes.
//!   Threads inherit it, so the WAL writer and the actix arbiters (started
//!   from those threads) have it too.
//! - [`run_in_background`], on each background thread: the default slice
//!   and a lower priority ([`limits::BACKGROUND_NICE`]). It still gets the
//!   cores whenever the request path leaves them idle, and a share of them
//!   (about a tenth at nice 10) when it does not, so it never starves.
//!
//! Both are hints: on an older kernel, or where the call is refused, a
//! warning is logged and the thread runs as it is.
//!
//! Must not: block, or fail the thread it runs on.

use crate::limits;

/// The short slice of the request path (its nice value is left as it is:
/// raising it back would need a privilege).
pub fn serve_requests() {
    adjust(|attr| attr.runtime_ns = limits::REQUEST_SLICE_US * 1_000, "request path");
}

/// The default slice and at least [`limits::BACKGROUND_NICE`].
pub fn run_in_background() {
    adjust(
        |attr| {
            attr.runtime_ns = 0;
            attr.nice = attr.nice.max(limits::BACKGROUND_NICE);
        },
        "background",
    );
}

/// `struct sched_attr` of `sched_setattr(2)`, its first version (48 bytes).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    /// For `SCHED_OTHER` (Linux 6.12+): the custom slice in ns, 0 for the
    /// default.
    runtime_ns: u64,
    deadline_ns: u64,
    period_ns: u64,
}

/// The calling thread's attributes.
fn current() -> std::io::Result<SchedAttr> {
    let mut attr = SchedAttr::default();
    let size = std::mem::size_of::<SchedAttr>() as libc::c_uint;
    // SAFETY: `attr` is writable for `size` bytes and outlives the call;
    // pid 0 is the calling thread; flags must be 0.
    let result = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr as *mut SchedAttr, size, 0) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(attr)
}

/// Change the calling thread's attributes, if it runs under the normal
/// (fair) policy; a thread an operator put under another policy keeps it.
fn adjust(change: impl FnOnce(&mut SchedAttr), what: &str) {
    let result = current().and_then(|mut attr| {
        if attr.policy != libc::SCHED_OTHER as u32 {
            return Ok(());
        }
        change(&mut attr);
        attr.size = std::mem::size_of::<SchedAttr>() as u32;
        attr.flags = 0;
        // SAFETY: `attr` is a valid `sched_attr` of the size it states and
        // outlives the call; pid 0 is the calling thread; flags must be 0.
        let result = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
        if result != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    });
    if let Err(error) = result {
        tracing::warn!(%error, what, "cannot set this thread's scheduling attributes; it runs as it is");
    }
}

/// The CPU time the calling thread has used so far (user and system),
/// or `None` where the clock cannot be read: what a background thread's
/// log line reports of its own cost, apart from what the other threads
/// took from it while it ran.
pub fn cpu_time() -> Option<std::time::Duration> {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a plain syscall writing into a timespec we own.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    let (seconds, nanos) = (u64::try_from(now.tv_sec).ok()?, u32::try_from(now.tv_nsec).ok()?);
    (result == 0).then(|| std::time::Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threads_cpu_time_counts_its_own_work_not_its_sleep() {
        std::thread::spawn(|| {
            let start = cpu_time().expect("the thread's clock");
            std::thread::sleep(std::time::Duration::from_millis(200));
            let slept = cpu_time().expect("the thread's clock") - start;
            assert!(slept < std::time::Duration::from_millis(100), "asleep, it used {slept:?}");
            let mut spin = 0u64;
            let spun_from = std::time::Instant::now();
            while spun_from.elapsed() < std::time::Duration::from_millis(200) {
                spin = std::hint::black_box(spin.wrapping_add(1));
            }
            let busy = cpu_time().expect("the thread's clock") - start - slept;
            assert!(busy >= std::time::Duration::from_millis(1), "busy for 200 ms, it used {busy:?}");
        })
        .join()
        .expect("the thread ends");
    }

    #[test]
    fn a_background_thread_runs_at_the_background_nice_value() {
        std::thread::spawn(|| {
            // As the checkpointer: started from a request thread.
            serve_requests();
            run_in_background();
            let attr = current().expect("sched_getattr");
            assert_eq!(attr.policy, libc::SCHED_OTHER as u32);
            assert!(attr.nice >= limits::BACKGROUND_NICE, "nice {}", attr.nice);
            assert_ne!(attr.runtime_ns, limits::REQUEST_SLICE_US * 1_000, "the short slice is given back");
        })
        .join()
        .expect("the thread ends");
    }

    #[test]
    fn request_threads_keep_their_priority_and_pass_their_slice_on() {
        std::thread::spawn(|| {
            let before = current().expect("sched_getattr");
            serve_requests();
            let child = std::thread::spawn(current).join().expect("the child ends").expect("sched_getattr");
            assert_eq!(child.policy, before.policy);
            assert_eq!(child.nice, before.nice, "a request thread is not deprioritised");
            // Kernels without custom slices (before 6.12) report their own
            // default, of a millisecond or more.
            if child.runtime_ns < 1_000_000 {
                assert_eq!(child.runtime_ns, limits::REQUEST_SLICE_US * 1_000, "inherited by a new thread");
            }
        })
        .join()
        .expect("the thread ends");
    }
}
