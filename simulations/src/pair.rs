//! The second thread of a two-thread run: it takes half of each window's
//! machines.
//!
//! A window is tens of microseconds of work and the next one follows at
//! once, so the helper spins between windows instead of sleeping: waking a
//! sleeping thread takes longer than the work it would share (a work-stealing
//! pool, tried first, ended up running every window on one thread). And the
//! simulation thread never waits for a helper that has not started: having
//! finished its own half, it takes the other half back if it is still
//! unclaimed, so a helper without a core of its own (a busy machine) costs
//! almost nothing.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU8, Ordering};

use kadmesh::time::Time;

use crate::net::Network;
use crate::node::SimNode;
use crate::window::{run_slots, Shared, WindowOut};

const IDLE: u8 = 0;
const POSTED: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;
const QUIT: u8 = 4;

/// Spins before yielding the core while waiting.
const SPINS: u32 = 1 << 14;

/// One window's half for the helper: raw parts of borrows that the posting
/// thread keeps alive and leaves untouched until the job is done.
struct Job {
    nodes: *mut SimNode,
    len: usize,
    slots: *const u32,
    count: usize,
    base: u32,
    until: Time,
    net: *const Network,
    window_open: bool,
}

/// The hand-off between the simulation thread and its helper.
pub struct Pair {
    state: AtomicU8,
    job: UnsafeCell<Option<Job>>,
    out: UnsafeCell<WindowOut>,
}

// SAFETY: `job` and `out` are only touched by the thread that `state` says
// owns them: the poster while IDLE, after DONE and after taking a POSTED job
// back, the helper once it moved POSTED to RUNNING. The compare-exchange on
// POSTED decides who runs a job.
// The Release store that hands them over and the Acquire load that takes
// them order every access. The machines a job points to are Send.
unsafe impl Sync for Pair {}

impl Default for Pair {
    fn default() -> Self {
        Pair { state: AtomicU8::new(IDLE), job: UnsafeCell::new(None), out: UnsafeCell::new(WindowOut::default()) }
    }
}

impl Pair {
    fn wait_for(&self, want: impl Fn(u8) -> bool) -> u8 {
        let mut spins = 0u32;
        loop {
            let s = self.state.load(Ordering::Acquire);
            if want(s) {
                return s;
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                spins = 0;
                std::thread::yield_now();
            }
        }
    }

    /// The helper thread's loop: runs posted halves until [`Pair::quit`].
    pub fn serve(&self) {
        while self.wait_for(|s| s == POSTED || s == QUIT) == POSTED {
            if !self.claim(RUNNING) {
                continue;
            }
            // SAFETY: RUNNING hands `job` to this thread (see `unsafe impl Sync`).
            let Some(job) = (unsafe { (*self.job.get()).take() }) else { continue };
            // SAFETY: the poster split these off its own `&mut`/`&` borrows and
            // waits for DONE before using or dropping them.
            let (nodes, slots, net) = unsafe {
                (
                    std::slice::from_raw_parts_mut(job.nodes, job.len),
                    std::slice::from_raw_parts(job.slots, job.count),
                    &*job.net,
                )
            };
            let out = run_slots(nodes, slots, job.base, job.until, Shared { net, window_open: job.window_open });
            // SAFETY: still ours until the DONE store below.
            unsafe { *self.out.get() = out };
            self.state.store(DONE, Ordering::Release);
        }
    }

    /// Runs machines `first` of `lo` here and `second` of `hi` (whose first
    /// machine is slot `base`) on the helper, and returns both results.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        lo: &mut [SimNode],
        first: &[u32],
        hi: &mut [SimNode],
        second: &[u32],
        base: u32,
        until: Time,
        sh: Shared,
    ) -> (WindowOut, WindowOut) {
        let job = Job {
            nodes: hi.as_mut_ptr(),
            len: hi.len(),
            slots: second.as_ptr(),
            count: second.len(),
            base,
            until,
            net: sh.net,
            window_open: sh.window_open,
        };
        // SAFETY: IDLE: `job` is ours until the POSTED store.
        unsafe { *self.job.get() = Some(job) };
        self.state.store(POSTED, Ordering::Release);
        let a = run_slots(lo, first, 0, until, sh);
        if self.claim(IDLE) {
            // Unclaimed: ours again, run it here.
            // SAFETY: IDLE again, `job` is ours.
            unsafe { *self.job.get() = None };
            return (a, run_slots(hi, second, base, until, sh));
        }
        self.wait_for(|s| s == DONE);
        // SAFETY: DONE hands `out` back to this thread.
        let b = unsafe { std::mem::take(&mut *self.out.get()) };
        self.state.store(IDLE, Ordering::Release);
        (a, b)
    }

    /// Moves a posted job to `to`; false if the other thread got it first.
    fn claim(&self, to: u8) -> bool {
        self.state.compare_exchange(POSTED, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Tells the helper to return.
    pub fn quit(&self) {
        self.state.store(QUIT, Ordering::Release);
    }
}

/// Ends the helper when dropped, also when the simulation thread panics
/// (a scoped helper that never returned would hang the program).
pub struct QuitOnDrop<'a>(pub &'a Pair);

impl Drop for QuitOnDrop<'_> {
    fn drop(&mut self) {
        self.0.quit();
    }
}
