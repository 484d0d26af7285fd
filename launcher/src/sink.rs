//! The sinks at the end of the pipeline: each [`Output`] of the judge
//! becomes its event-log line ([`EventLog`]), its human log line
//! (`tracing`, made from the same record) and, for a violation, a run of the
//! alert command ([`Alerts`]) with that very line on its standard input.
//! Repeats of the same violation are limited in the human log only
//! ([`Repeats`]): the event log and the alert command get every one.

use std::time::Instant;

use crate::alert::Alerts;
use crate::events::{EventLog, Loudness, Record};
use crate::repeats::{Kind, Repeats};
use crate::verdict::{Note, Output};

/// Where records go.
pub(crate) struct Sinks {
    pub(crate) log: EventLog,
    pub(crate) alerts: Alerts,
    pub(crate) repeats: Repeats,
}

impl Sinks {
    pub(crate) fn new(log: EventLog, alerts: Alerts) -> Sinks {
        Sinks {
            log,
            alerts,
            repeats: Repeats::default(),
        }
    }

    /// Write everything the judge decided, in order.
    pub(crate) fn take(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Record(r) => self.record(&r),
                Output::Note(Note::Debug(text)) => tracing::debug!("{text}"),
                Output::Note(Note::Warn(text)) => tracing::warn!("{text}"),
            }
        }
    }

    /// One record: human line (unless it repeats), event-log line, alert.
    pub(crate) fn record(&mut self, record: &Record) {
        if let Some((loudness, text)) = record.human() {
            match Kind::of(record) {
                Some(kind) => {
                    let (full, count) = self.repeats.seen(kind, Instant::now());
                    if let Some(count) = count {
                        human(loudness, &count);
                    }
                    if full {
                        human(loudness, &text);
                    }
                }
                None => human(loudness, &text),
            }
        }
        let line = self.log.emit(record);
        if record.is_violation() {
            self.alerts.raise(&line);
        }
    }

    /// The counts of repeats whose window ended by `now`.
    pub(crate) fn tick(&mut self, now: Instant) {
        for line in self.repeats.tick(now) {
            human(Loudness::Error, &line);
        }
    }

    /// Every count of repeats not logged yet (the launcher is ending).
    pub(crate) fn flush(&mut self) {
        for line in self.repeats.flush(Instant::now()) {
            human(Loudness::Error, &line);
        }
    }

    /// When [`Sinks::tick`] has a count to log.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.repeats.next_deadline()
    }
}

fn human(loudness: Loudness, text: &str) {
    match loudness {
        Loudness::Debug => tracing::debug!("{text}"),
        Loudness::Info => tracing::info!("{text}"),
        Loudness::Error => tracing::error!("{text}"),
    }
}
