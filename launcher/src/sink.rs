//! The sinks at the end of the pipeline: each [`Output`] of the judge
//! becomes its event-log line ([`EventLog`]), its human log line
//! (`tracing`, made from the same record) and, for a violation, a run of the
//! alert command ([`Alerts`]) with that very line on its standard input.

use crate::alert::Alerts;
use crate::events::{EventLog, Loudness, Record};
use crate::verdict::{Note, Output};

/// Where records go.
pub(crate) struct Sinks {
    pub(crate) log: EventLog,
    pub(crate) alerts: Alerts,
}

impl Sinks {
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

    /// One record: human line, event-log line, alert.
    pub(crate) fn record(&mut self, record: &Record) {
        match record.human() {
            Some((Loudness::Debug, text)) => tracing::debug!("{text}"),
            Some((Loudness::Info, text)) => tracing::info!("{text}"),
            Some((Loudness::Error, text)) => tracing::error!("{text}"),
            None => {}
        }
        let line = self.log.emit(record);
        if record.is_violation() {
            self.alerts.raise(&line);
        }
    }
}
