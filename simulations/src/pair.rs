//! The second thread of a two-thread run: it shares each window's machines.
//!
//! A window is tens of microseconds of work and the next one follows at
//! once, so the helper spins between windows instead of sleeping: waking a
//! sleeping thread takes longer than the work it would share (a work-stealing
//! pool, tried first, ended up running every window on one thread). Both
//! threads claim the window's machines one at a time from a shared counter,
//! so neither waits for a slow half, and the simulation thread never waits
//! for a helper that has not started: a helper without a core of its own (a
//! busy machine) costs almost nothing.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use kadmesh::time::Time;

use crate::net::Network;
use crate::node::SimNode;
use crate::window::{run_machine, Shared, WindowOut};

const IDLE: u8 = 0;
const POSTED: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;
const QUIT: u8 = 4;

/// Spins before yielding the core while waiting.
const SPINS: u32 = 1 << 14;

/// One window's machines: raw parts of borrows that the posting thread keeps
/// alive until the window is over.
#[derive(Clone, Copy)]
struct Job {
    nodes: *mut SimNode,
    len: usize,
    active: *const u32,
    count: usize,
    until: Time,
    net: *const Network,
    window_open: bool,
    heartbeat: std::time::Duration,
    signed: bool,
    discover: bool,
}

/// The hand-off between the simulation thread and its helper.
pub struct Pair {
    state: AtomicU8,
    /// The next machine of `job.active` to claim.
    next: AtomicUsize,
    job: UnsafeCell<Option<Job>>,
    out: UnsafeCell<WindowOut>,
}

// SAFETY: `job` is written by the poster only while the state is IDLE and
// read by the helper only after it moved POSTED to RUNNING; `out` is written
// by the helper while RUNNING and read by the poster after DONE. The
// Release/Acquire operations on `state` order those accesses. Machines are
// handed out by `next`, each index exactly once, so no machine is touched by
// both threads; the machines are Send.
unsafe impl Sync for Pair {}

impl Default for Pair {
    fn default() -> Self {
        Pair {
            state: AtomicU8::new(IDLE),
            next: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            out: UnsafeCell::new(WindowOut::default()),
        }
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
                std::thread::yield_now();
            }
        }
    }

    /// Claims and runs machines of `job` until none is left.
    fn work(&self, job: Job, out: &mut WindowOut) {
        // SAFETY: the poster keeps these borrows alive and untouched (other
        // than through this function) until the window is over.
        let (active, net) = unsafe { (std::slice::from_raw_parts(job.active, job.count), &*job.net) };
        let sh = Shared {
            net,
            window_open: job.window_open,
            heartbeat: job.heartbeat,
            signed: job.signed,
            discover: job.discover,
        };
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(&slot) = active.get(i) else { return };
            assert!((slot as usize) < job.len);
            // SAFETY: index `i` is claimed once, and active slots are distinct.
            let node = unsafe { &mut *job.nodes.add(slot as usize) };
            run_machine(node, slot, job.until, sh, out);
        }
    }

    /// The helper thread's loop: shares posted windows until [`Pair::quit`].
    pub fn serve(&self) {
        while self.wait_for(|s| s == POSTED || s == QUIT) == POSTED {
            if !self.claim(RUNNING) {
                continue;
            }
            // SAFETY: RUNNING gives this thread `job` and `out`.
            let Some(job) = (unsafe { *self.job.get() }) else { continue };
            let mut out = WindowOut::default();
            self.work(job, &mut out);
            // SAFETY: still RUNNING: `out` is ours until the DONE store.
            unsafe { *self.out.get() = out };
            self.state.store(DONE, Ordering::Release);
        }
    }

    /// Runs machines `active` (distinct slots) of `nodes` up to `until` on
    /// both threads; returns what each thread produced.
    pub fn run(&self, nodes: &mut [SimNode], active: &[u32], until: Time, sh: Shared) -> Vec<WindowOut> {
        let job = Job {
            nodes: nodes.as_mut_ptr(),
            len: nodes.len(),
            active: active.as_ptr(),
            count: active.len(),
            until,
            net: sh.net,
            window_open: sh.window_open,
            heartbeat: sh.heartbeat,
            signed: sh.signed,
            discover: sh.discover,
        };
        self.next.store(0, Ordering::Relaxed);
        // SAFETY: IDLE: `job` is ours until the POSTED store.
        unsafe { *self.job.get() = Some(job) };
        self.state.store(POSTED, Ordering::Release);
        let mut mine = WindowOut::default();
        self.work(job, &mut mine);
        if self.claim(IDLE) {
            return vec![mine]; // the helper never started: all ours
        }
        self.wait_for(|s| s == DONE);
        // SAFETY: DONE gives `out` back to this thread.
        let theirs = unsafe { std::mem::take(&mut *self.out.get()) };
        self.state.store(IDLE, Ordering::Release);
        vec![mine, theirs]
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
