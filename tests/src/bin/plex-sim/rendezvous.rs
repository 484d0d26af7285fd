//! Starting a child while the incident's hash query is in flight: the
//! spawner asks, the next worker half-way through the 40,000-row result
//! parks there (its statement open, its session busy), the child is started,
//! and the worker goes on reading. Both sides wait a bounded time.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::log;
use crate::sqlite::sqlite3;

/// How long a parked worker waits for the spawner before going on alone.
const PARK_LIMIT: Duration = Duration::from_secs(10);

/// The worker that is parked, and where.
#[derive(Clone, Copy, Debug)]
pub struct Parked {
    pub worker: usize,
    /// The session whose hash query is half-read (for the stale-handle fault).
    pub handle: *mut sqlite3,
    pub rows_read: usize,
}

#[derive(Default)]
struct State {
    requested: bool,
    parked: Option<Parked>,
    /// Workers have all finished: nobody will park any more.
    closed: bool,
    generation: u64,
}

#[derive(Default)]
pub struct Rendezvous {
    state: Mutex<State>,
    changed: Condvar,
}

// SAFETY: the raw handle is only carried, never dereferenced here.
unsafe impl Send for Parked {}

impl Rendezvous {
    /// Spawner: wait at most `wait` for a worker to park mid-query. While the
    /// guard lives the worker stays parked.
    pub fn catch(&self, wait: Duration) -> Option<Catch<'_>> {
        let deadline = Instant::now() + wait;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.requested = true;
        loop {
            if let Some(parked) = st.parked {
                st.requested = false;
                return Some(Catch {
                    rendezvous: self,
                    parked,
                    generation: st.generation,
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if st.closed || left.is_zero() {
                st.requested = false;
                return None;
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Worker, half-way through the hash query: park if the spawner is asking.
    pub fn offer(&self, worker: usize, handle: *mut sqlite3, rows_read: usize) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !st.requested || st.parked.is_some() || st.closed {
            return;
        }
        st.parked = Some(Parked {
            worker,
            handle,
            rows_read,
        });
        st.generation += 1;
        let generation = st.generation;
        self.changed.notify_all();
        let deadline = Instant::now() + PARK_LIMIT;
        while st.parked.is_some() && st.generation == generation {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warning!(
                    "worker {worker}: parked mid-query for {} s without the child start finishing; going on",
                    PARK_LIMIT.as_secs()
                );
                st.parked = None;
                st.generation += 1;
                return;
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// No worker will park any more: the spawner stops waiting at once.
    pub fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.changed.notify_all();
    }
}

/// A worker caught mid-query; released when dropped.
pub struct Catch<'r> {
    rendezvous: &'r Rendezvous,
    pub parked: Parked,
    generation: u64,
}

impl Drop for Catch<'_> {
    fn drop(&mut self) {
        let mut st = self
            .rendezvous
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if st.generation == self.generation {
            st.parked = None;
            st.generation += 1;
        }
        self.rendezvous.changed.notify_all();
    }
}
