//! Starting a program from the launcher: everything is prepared before
//! `fork`, so the child only makes async-signal-safe system calls before
//! `execve` (no allocation, no lock).
//!
//! The child gets back the signal mask and dispositions the launcher itself
//! was started with (a plain exec from the launcher's parent would have
//! given it those): every signal at its default except those the parent
//! had ignored, and the parent's mask. Optionally it gets its own process group (and the terminal), asks to be
//! killed if the launcher dies, and can wait on a *gate* pipe before it
//! execs, so the launcher can `PTRACE_SEIZE` it first. A failed `execve` is
//! reported through a close-on-exec pipe as the errno, then `_exit(127)`.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The highest signal number there can be (glibc's `SIGRTMAX` is 64).
const MAX_SIGNAL: usize = 64;

/// What the launcher's parent gave it: the signal mask, and which signals
/// were ignored. Recorded once, before the launcher changes either.
#[derive(Clone, Copy)]
struct Inherited {
    mask: libc::sigset_t,
    ignored: [bool; MAX_SIGNAL + 1],
}

static INHERITED: std::sync::OnceLock<Inherited> = std::sync::OnceLock::new();

/// Record the signal mask and ignored signals the launcher was started
/// with; called before it blocks or ignores anything. Later calls do
/// nothing.
pub fn record_inherited_signals() {
    INHERITED.get_or_init(current_signals);
}

fn current_signals() -> Inherited {
    // SAFETY: queries of this thread's mask and of dispositions, into locals.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut mask);
        let mut ignored = [false; MAX_SIGNAL + 1];
        for (sig, slot) in ignored.iter_mut().enumerate().skip(1) {
            let mut old: libc::sigaction = std::mem::zeroed();
            // SIGPIPE: Rust's runtime ignores it before main, so its state
            // here says nothing about the parent's; a child gets the default.
            if sig as libc::c_int != libc::SIGPIPE
                && libc::sigaction(sig as libc::c_int, std::ptr::null(), &mut old) == 0
            {
                *slot = old.sa_sigaction == libc::SIG_IGN;
            }
        }
        Inherited { mask, ignored }
    }
}

/// A program ready to start.
pub struct Spawn {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// The child's signal mask and ignored signals (the launcher's own, as
    /// its parent gave them).
    signals: Inherited,
    max_signal: libc::c_int,
    /// New process group (and the terminal when stdin is one).
    pub own_process_group: bool,
    /// `PR_SET_PDEATHSIG(SIGKILL)`: the child dies with the launcher.
    pub die_with_parent: bool,
    /// Standard input from this fd (dup2'd onto 0 in the child).
    pub stdin: Option<RawFd>,
}

/// A started child.
pub struct Child {
    pub pid: i32,
    /// Close (drop) this to let the child go on to `execve`.
    pub gate: Option<OwnedFd>,
    /// Readable when exec has happened (EOF) or failed (4 bytes of errno).
    pub exec_status: OwnedFd,
}

fn cstring(bytes: &[u8], what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

/// Find `program` as `execvp` would: as given when it contains `/`, else in
/// the `PATH` directories (executable regular files only).
pub fn resolve(program: &OsStr, path_var: Option<&OsStr>) -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let p = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        return Ok(p.to_path_buf());
    }
    let default = OsString::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in std::env::split_paths(path_var.unwrap_or(&default)) {
        let candidate = dir.join(p);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found in PATH", p.display()),
    ))
}

impl Spawn {
    /// `argv[0]` is `args[0]`; `path` is the file to execute.
    pub fn new(path: &Path, args: &[OsString], env: &[(OsString, OsString)]) -> io::Result<Spawn> {
        let argv = args
            .iter()
            .map(|a| cstring(a.as_bytes(), "an argument"))
            .collect::<io::Result<Vec<_>>>()?;
        let envp = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone().into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstring(&kv, "an environment variable")
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Spawn {
            path: cstring(path.as_os_str().as_bytes(), "the program path")?,
            argv,
            envp,
            signals: *INHERITED.get_or_init(current_signals),
            max_signal: libc::SIGRTMAX().min(MAX_SIGNAL as libc::c_int),
            own_process_group: false,
            die_with_parent: false,
            stdin: None,
        })
    }

    /// Fork the child. With `gated`, it waits until [`Child::gate`] is
    /// closed before `execve`.
    pub fn start(&self, gated: bool) -> io::Result<Child> {
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());
        let (gate_read, gate_write) = if gated {
            let (r, w) = pipe()?;
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        let (status_read, status_write) = pipe()?;
        // SAFETY: getpid and isatty have no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: as above.
        let stdin_is_tty = unsafe { libc::isatty(0) } == 1;
        // SAFETY: the child branch only makes async-signal-safe calls on
        // memory prepared above, then execs or _exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: we are the child of the fork above, and argv/envp are
            // the NULL-terminated arrays built before it.
            unsafe {
                self.child(
                    parent,
                    stdin_is_tty,
                    gate_read.as_ref().map(|f| f.as_raw_fd()),
                    gate_write.as_ref().map(|f| f.as_raw_fd()),
                    status_write.as_raw_fd(),
                    &argv,
                    &envp,
                )
            }
        }
        if self.own_process_group {
            // Also from the parent, so the group exists whichever runs first.
            // SAFETY: setpgid on our own child; an error (it already
            // exec'd) is harmless.
            unsafe { libc::setpgid(pid, pid) };
        }
        drop(gate_read);
        drop(status_write);
        Ok(Child {
            pid,
            gate: gate_write,
            exec_status: status_read,
        })
    }

    /// The child's side of [`Spawn::start`]: reset signals, take the
    /// process group, wait at the gate, exec; never returns.
    ///
    /// # Safety
    ///
    /// Only in the child of `fork`, before anything else runs there: it makes
    /// only async-signal-safe calls, and `argv`/`envp` must be
    /// NULL-terminated arrays of pointers to live C strings.
    #[allow(clippy::too_many_arguments)]
    unsafe fn child(
        &self,
        parent: i32,
        stdin_is_tty: bool,
        gate_read: Option<RawFd>,
        gate_write: Option<RawFd>,
        status_write: RawFd,
        argv: &[*const libc::c_char],
        envp: &[*const libc::c_char],
    ) -> ! {
        // SAFETY: the caller's contract (below `fork`, in the child of a
        // single-threaded parent): only async-signal-safe libc calls, on fds
        // and C strings prepared before the fork; nothing allocates, and the
        // function ends in `execve` or `_exit`.
        unsafe {
            let fail = |stage_errno: i32| -> ! {
                let bytes = stage_errno.to_ne_bytes();
                libc::write(status_write, bytes.as_ptr().cast(), bytes.len());
                libc::_exit(127)
            };
            if let Some(w) = gate_write {
                libc::close(w);
            }
            if self.own_process_group {
                libc::setpgid(0, 0);
                if stdin_is_tty {
                    // SIGTTOU is still ignored here (inherited from the launcher).
                    libc::tcsetpgrp(0, libc::getpid());
                }
            }
            // Every disposition as the launcher's parent gave it (handlers
            // would be reset by exec anyway; ignored ones would not).
            for sig in 1..=self.max_signal {
                if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                    continue;
                }
                let ignored = self.signals.ignored[sig as usize];
                libc::signal(
                    sig,
                    if ignored {
                        libc::SIG_IGN
                    } else {
                        libc::SIG_DFL
                    },
                );
            }
            libc::sigprocmask(libc::SIG_SETMASK, &self.signals.mask, std::ptr::null_mut());
            if self.die_with_parent {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                if libc::getppid() != parent {
                    libc::_exit(127);
                }
            }
            if let Some(fd) = self.stdin {
                if libc::dup2(fd, 0) < 0 {
                    fail(*libc::__errno_location());
                }
            }
            if let Some(r) = gate_read {
                let mut b = 0u8;
                loop {
                    let n = libc::read(r, (&mut b as *mut u8).cast(), 1);
                    if n >= 0 || *libc::__errno_location() != libc::EINTR {
                        break;
                    }
                }
                libc::close(r);
            }
            libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            fail(*libc::__errno_location())
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two ints into `fds`, which has room for two.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Read the exec status pipe (blocking): `Ok(())` when exec happened,
/// the child's errno when it failed.
pub fn exec_result(status: &OwnedFd) -> io::Result<()> {
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        // SAFETY: reads at most `4 - got` bytes into the rest of `buf`.
        let n = unsafe { libc::read(status.as_raw_fd(), buf[got..].as_mut_ptr().cast(), 4 - got) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    if got == 4 {
        Err(io::Error::from_raw_os_error(i32::from_ne_bytes(buf)))
    } else {
        Ok(())
    }
}
