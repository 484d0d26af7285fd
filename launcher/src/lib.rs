//! plex-pg-launcher as a library: the pieces the binary is made of, shared
//! with the tests and the demo (`plex-pg-demo`, its own crate: they use
//! [`cluster`] to start a throwaway PostgreSQL, [`events`] to read the event
//! log as typed records, [`cli::Options`] for the launcher's options).
//! [`cluster`] is not used by the binary, so it is not in what ships.
//!
//! The launcher is one loop on one thread ([`supervisor`]): it reaps, traces
//! and reads the shim's reports in the same `poll`, because `waitpid` is
//! process-wide. That loop is a one-way pipeline:
//!
//! - `waitpid` and the watchers ([`watch`]: ptrace or procfs) see the tree
//!   and push `Event`s ([`observed`]);
//! - the judge ([`verdict`]) turns events, the shim's reports ([`reports`])
//!   and a probe of the kernel into typed records ([`events::Record`], the
//!   event log's schema), and keeps the shim's own figures ([`tally`], for
//!   [`metrics`]); it does no I/O;
//! - the sinks ([`sink`]) write each record to the event log ([`events`])
//!   and the human log (repeats limited: [`repeats`]), and send violations
//!   to the alert command ([`alert`]).
//!
//! Around it: [`cli`] (the command line and how it overrides the settings),
//! [`check`] (the `check` subcommand), [`spawn`] (fork/exec without
//! allocating in the child), [`init`] (an init's duties: signals, reaping,
//! exit status), [`privileges`] (running as Plex's user), [`sockets`] (the
//! kernel's view of PostgreSQL connections) and [`proc`] (every read of
//! `/proc`). [`trust`] decides which files root may trust (the
//! configuration, the shim, the directories above them) and [`log_files`]
//! opens the files the launcher appends to without following planted links
//! (`docs/security.md`).
//! [`guard`] refuses to start Plex on an empty schema beside an SQLite
//! library; [`switch`] is `enable`/`disable` (the systemd drop-in) and
//! [`import`] runs `plex-pg-import`; every question to systemd goes
//! through [`systemd`].

pub(crate) mod alert;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod events;
pub mod guard;
pub mod import;
pub(crate) mod init;
pub mod log_files;
pub mod metrics;
pub(crate) mod observed;
pub mod privileges;
pub(crate) mod proc;
pub(crate) mod repeats;
pub(crate) mod reports;
pub(crate) mod sink;
pub(crate) mod sockets;
pub(crate) mod spawn;
pub(crate) mod stop;
pub mod supervisor;
pub mod switch;
pub(crate) mod systemd;
pub mod tally;
pub mod trust;
pub(crate) mod verdict;
pub(crate) mod watch;
