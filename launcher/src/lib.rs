//! plex-pg-launcher as a library: the pieces the binary is made of, shared
//! with the tests (which use [`cluster`] to start a throwaway PostgreSQL).
//!
//! The launcher is one loop on one thread ([`supervisor`]): it reaps, traces
//! and reads the shim's reports in the same `poll`, because `waitpid` is
//! process-wide. Around it: [`cli`] (the command line and how it overrides
//! the settings), [`check`] (the `check` subcommand), [`spawn`] (fork/exec
//! without allocating in the child), [`init`] (an init's duties: signals,
//! reaping, exit status), [`privileges`] (running as Plex's user),
//! [`watch`] (the ptrace and procfs watchers, one event stream),
//! [`sockets`] (the kernel's view of PostgreSQL connections), [`reports`]
//! (the shim's datagrams), [`verdict`] (pool checks and inherited-fd use),
//! [`events`] (the JSON event log) and [`alert`] (the alert command).
//! [`trust`] decides which files root may trust (the configuration, the
//! shim, the directories above them) and [`log_files`] opens the files the
//! launcher appends to without following planted links (`docs/security.md`).
//! [`demo`] is the `demo` subcommand: plex-sim on a throwaway PostgreSQL
//! under the launcher, with live progress and a closing table.
//! [`guard`] refuses to start Plex on an empty schema beside an SQLite
//! library; [`switch`] is `enable`/`disable` (the systemd drop-in) and
//! [`import`] runs `plex-pg-import`.

pub mod alert;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod demo;
pub mod events;
pub mod guard;
pub mod import;
pub mod init;
pub mod log_files;
pub mod privileges;
pub mod reports;
pub mod sockets;
pub mod spawn;
pub mod supervisor;
pub mod switch;
pub mod trust;
pub mod verdict;
pub mod watch;
