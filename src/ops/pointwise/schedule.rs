//! How a product's work is shared by its threads: split into units of column strips,
//! several a thread (of row panels by rows, one a thread: each worker fills all of the right
//! operand for its rows, and would fill it again for each unit); each worker takes its own
//! run of units, then what is left of the others' (`Units`). Split once into one share a
//! thread, a share whose core the host's other load held up for a millisecond or two kept
//! the other thread waiting: at one image on 2 cores, the threads waited 12 % of their time
//! in the products of Xception's pass and 14 % in LilXception's.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

/// Units a thread's share is split into.
pub(super) const UNITS_PER_THREAD: usize = 4;

/// Contiguous ranges of `end` elements (rows or columns), `size` elements a unit, shared
/// by `workers`: each worker owns a run of consecutive units and takes them from the front,
/// then takes the units left at the back of the others' runs. A worker thus keeps the rows
/// or columns it had in the op before while none is held up, so their values stay in its
/// L2 (taken in turn across the workers, half a unit's input would lie in the other core's).
pub(super) struct Units {
    /// Per worker, the next unit of its run (high 32 bits) and the end of what is left of it.
    runs: Vec<AtomicU64>,
    count: usize,
    size: usize,
    end: usize,
}

impl Units {
    /// `groups` groups of `group` elements (`end` in all) for `workers`: units of
    /// `⌈groups / (workers · units_per_worker)⌉` groups (at most `max_groups`), so about
    /// `units_per_worker` a worker; `None` past 2³² units.
    pub(super) fn new(
        groups: usize,
        group: usize,
        end: usize,
        workers: usize,
        units_per_worker: usize,
        max_groups: usize,
    ) -> Option<Units> {
        let wanted = (workers * units_per_worker).max(1);
        let per_unit = groups.div_ceil(wanted).clamp(1, max_groups.max(1));
        let count = groups.div_ceil(per_unit);
        let workers = workers.clamp(1, count.max(1));
        let bound = |w: usize| u64::try_from(w * count / workers).ok();
        let runs = (0..workers)
            .map(|w| Some(AtomicU64::new(pack(bound(w)?, bound(w + 1)?)?)))
            .collect::<Option<_>>()?;
        Some(Units {
            runs,
            count,
            size: per_unit * group,
            end,
        })
    }

    /// Workers that have a run of units.
    pub(super) fn workers(&self) -> usize {
        self.runs.len()
    }

    /// Worker `w`'s next unit's elements: the front of its own run, else the back of
    /// another's; `None` once every unit is taken.
    pub(super) fn take(&self, w: usize) -> Option<Range<usize>> {
        let workers = self.runs.len();
        let own = self.runs.get(w)?;
        let unit = take_from(own, true).or_else(|| {
            (1..workers).find_map(|o| take_from(&self.runs[(w + o) % workers], false))
        })?;
        let unit = usize::try_from(unit).ok().filter(|&u| u < self.count)?;
        Some(unit * self.size..((unit + 1) * self.size).min(self.end))
    }
}

/// `(front, back)` in one word, `None` past 32 bits each.
fn pack(front: u64, back: u64) -> Option<u64> {
    (front <= u64::from(u32::MAX) && back <= u64::from(u32::MAX)).then_some(front << 32 | back)
}

/// The front unit of `run` (its owner) or the back one (another worker), if any is left.
fn take_from(run: &AtomicU64, front: bool) -> Option<u64> {
    let mut current = run.load(Ordering::Acquire);
    loop {
        let (first, last) = (current >> 32, current & u64::from(u32::MAX));
        if first >= last {
            return None;
        }
        let (next, unit) = if front {
            ((first + 1) << 32 | last, first)
        } else {
            (first << 32 | (last - 1), last - 1)
        };
        match run.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Some(unit),
            Err(seen) => current = seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Units;

    #[test]
    fn a_worker_takes_its_own_run_in_order_then_the_back_of_another() {
        // 10 groups of 3 elements (29 in all) for 2 workers: 4 units of 3 groups.
        let units = Units::new(10, 3, 29, 2, 2, usize::MAX).unwrap();
        assert_eq!(units.workers(), 2);
        assert_eq!(units.take(1), Some(18..27));
        assert_eq!(units.take(0), Some(0..9));
        assert_eq!(units.take(0), Some(9..18));
        assert_eq!(units.take(0), Some(27..29));
        assert_eq!(units.take(1), None);
        assert_eq!(units.take(0), None);
    }

    #[test]
    fn more_workers_than_groups_one_unit_a_worker_and_no_groups() {
        // 3 groups for 5 workers: 3 workers of one unit each.
        let units = Units::new(3, 12, 30, 5, 1, usize::MAX).unwrap();
        assert_eq!(units.workers(), 3);
        assert_eq!(units.take(2), Some(24..30));
        assert_eq!(units.take(2), Some(0..12));
        assert_eq!(units.take(2), Some(12..24));
        assert_eq!(units.take(0), None);
        assert_eq!(units.take(7), None);
        let none = Units::new(0, 12, 0, 2, 4, usize::MAX).unwrap();
        assert_eq!(none.take(0), None);
    }

    #[test]
    fn every_element_is_taken_once_by_racing_workers() {
        let units = Units::new(1000, 7, 6995, 4, 4, 3).unwrap();
        let taken: Vec<Vec<std::ops::Range<usize>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..units.workers())
                .map(|w| {
                    let units = &units;
                    scope.spawn(move || std::iter::from_fn(|| units.take(w)).collect())
                })
                .collect();
            workers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut seen = vec![0u8; 6995];
        for range in taken.into_iter().flatten() {
            assert!(range.len() <= 21, "{range:?}");
            for i in range {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&v| v == 1));
    }
}
