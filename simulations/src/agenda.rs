//! When each machine next has something to do: a timing wheel of
//! millisecond slots.
//!
//! Every datagram and timer changes some machine's next event, so the agenda
//! sees a push per event and is read a few milliseconds at a time; a binary
//! heap of that size cost 10% of a run in `pop` alone. Virtual time only
//! moves forward and has millisecond resolution, so a wheel of one slot per
//! millisecond over [`SPAN_MS`] takes pushes in O(1) and hands out a window
//! by walking its slots; the rare entry further out (maintenance timers)
//! waits in a small heap until the wheel reaches it.
//!
//! Entries are not removed when a machine's next event changes: a reader
//! checks each one against the machine (see [`Agenda::take_until`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use kadmesh::time::Time;

/// Milliseconds the wheel covers ahead of its cursor.
const SPAN_MS: u64 = 1 << 16;

/// Machine slots by the time of their next event.
pub struct Agenda {
    wheel: Vec<Vec<u32>>,
    /// Every entry before this millisecond has been handed out.
    cursor: u64,
    far: BinaryHeap<Reverse<(Time, u32)>>,
    /// Entries in the wheel (stale ones included).
    near: usize,
}

impl Default for Agenda {
    fn default() -> Self {
        Agenda { wheel: vec![Vec::new(); SPAN_MS as usize], cursor: 0, far: BinaryHeap::new(), near: 0 }
    }
}

impl Agenda {
    /// Notes that machine `slot` has something to do at `at` (never before
    /// what was already handed out).
    pub fn push(&mut self, at: Time, slot: u32) {
        let ms = at.as_millis().max(self.cursor);
        if ms - self.cursor < SPAN_MS {
            self.wheel[(ms % SPAN_MS) as usize].push(slot);
            self.near += 1;
        } else {
            self.far.push(Reverse((Time::from_millis(ms), slot)));
        }
    }

    /// Moves far entries that the wheel now covers into it.
    fn pull_far(&mut self) {
        while let Some(&Reverse((t, slot))) = self.far.peek() {
            if t.as_millis() - self.cursor >= SPAN_MS {
                break;
            }
            self.far.pop();
            self.wheel[(t.as_millis() % SPAN_MS) as usize].push(slot);
            self.near += 1;
        }
    }

    /// The earliest time with an entry for which `live(time, slot)` holds
    /// (entries found stale on the way are dropped). It does not move the
    /// wheel: events may still be added before that time.
    pub fn next(&mut self, mut live: impl FnMut(Time, u32) -> bool) -> Option<Time> {
        self.pull_far();
        let mut ms = self.cursor;
        while self.near > 0 {
            let t = Time::from_millis(ms);
            let bucket = &mut self.wheel[(ms % SPAN_MS) as usize];
            let before = bucket.len();
            bucket.retain(|&slot| live(t, slot));
            self.near -= before - bucket.len();
            if !bucket.is_empty() {
                return Some(t);
            }
            ms += 1;
        }
        // The far heap is checked when its entries are handed out.
        self.far.peek().map(|&Reverse((t, _))| t)
    }

    /// The first millisecond not handed out yet: nothing can be due before it.
    pub fn floor(&self) -> Time {
        Time::from_millis(self.cursor)
    }

    /// Hands out the slots with an entry before `until` for which
    /// `live(time, slot)` holds, in time order, and moves past them.
    pub fn take_until(&mut self, until: Time, mut live: impl FnMut(Time, u32) -> bool) -> Vec<u32> {
        let mut due = Vec::new();
        while self.cursor < until.as_millis() {
            self.pull_far();
            let t = Time::from_millis(self.cursor);
            let bucket = std::mem::take(&mut self.wheel[(self.cursor % SPAN_MS) as usize]);
            self.near -= bucket.len();
            due.extend(bucket.into_iter().filter(|&slot| live(t, slot)));
            self.cursor += 1;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(m: u64) -> Time {
        Time::from_millis(m)
    }

    #[test]
    fn hands_out_slots_by_time_across_the_span() {
        let mut a = Agenda::default();
        let far = SPAN_MS * 3 + 5;
        for (t, slot) in [(30, 1), (10, 2), (far, 3), (10, 4), (SPAN_MS + 2, 5)] {
            a.push(ms(t), slot);
        }
        let all = |_, _| true;
        assert_eq!(a.next(all), Some(ms(10)));
        assert_eq!(a.take_until(ms(11), all), vec![2, 4]);
        assert_eq!(a.next(all), Some(ms(30)));
        assert_eq!(a.take_until(ms(31), all), vec![1]);
        assert_eq!(a.next(all), Some(ms(SPAN_MS + 2)), "past the first span");
        assert_eq!(a.take_until(ms(SPAN_MS + 3), all), vec![5]);
        assert_eq!(a.next(all), Some(ms(far)));
        assert_eq!(a.take_until(ms(far + 1), all), vec![3]);
        assert_eq!(a.next(all), None);
    }

    #[test]
    fn stale_entries_are_skipped_and_the_past_is_now() {
        let mut a = Agenda::default();
        a.push(ms(5), 1);
        a.push(ms(7), 2);
        // Slot 1's entry at 5 ms is stale: it is not handed out or waited for.
        let live = |t: Time, slot| !(slot == 1 && t == ms(5));
        assert_eq!(a.next(live), Some(ms(7)));
        assert_eq!(a.take_until(ms(8), live), vec![2]);
        // A push into the past lands at the cursor.
        a.push(ms(3), 9);
        assert_eq!(a.next(|_, _| true), Some(ms(8)));
    }
}
