//! Watching Plex's process tree. Two watchers, one event stream:
//!
//! - [`ptrace`]: every fork, vfork, clone, exec and exit, seen as it
//!   happens; syscall stops only for a process holding a PostgreSQL socket
//!   it inherited, and only while it holds one.
//! - [`procfs`]: polls `/proc`; sees only what is still there at the next
//!   scan (see `docs/launcher.md` for what that misses).
//!
//! Both push [`crate::observed::Event`]s into a list the supervisor hands
//! to the judge ([`crate::verdict`]); neither judges anything itself.
//! [`arch`] holds what differs between x86_64 and aarch64 (the syscall
//! tables and register writes).

pub(crate) mod arch;
pub(crate) mod procfs;
pub(crate) mod ptrace;
pub(crate) mod syscall_info;
