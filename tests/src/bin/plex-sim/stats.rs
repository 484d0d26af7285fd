//! The counters every thread of a run adds to: queries, rows checked,
//! mismatches, committed writes, and errors by message. The summary is
//! built from them; a mismatch or an error is logged the first time its
//! message is seen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::log;

/// Distinct error messages kept (later ones are counted under one entry).
const MAX_DISTINCT_ERRORS: usize = 200;
const OVERFLOW: &str = "(more distinct errors than the summary keeps)";

#[derive(Default)]
pub struct Stats {
    pub queries: AtomicU64,
    pub hash_queries: AtomicU64,
    pub rows_checked: AtomicU64,
    pub mismatches: AtomicU64,
    pub writes_committed: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// A result that differs from what it must be.
    pub fn mismatch(&self, message: String) {
        Self::add(&self.mismatches, 1);
        self.error(format!("mismatch: {message}"));
    }

    /// Anything else that went wrong.
    pub fn error(&self, message: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let key = if errors.contains_key(&message) || errors.len() < MAX_DISTINCT_ERRORS {
            message
        } else {
            OVERFLOW.to_string()
        };
        let count = errors.entry(key.clone()).or_insert(0);
        *count += 1;
        if *count == 1 {
            log::error!("{key}");
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    /// Every distinct message with how often it happened.
    pub fn errors(&self) -> Vec<(String, u64)> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(m, c)| (m.clone(), *c))
            .collect()
    }
}
