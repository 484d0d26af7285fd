//! `PTRACE_GET_SYSCALL_INFO` (Linux 5.3): which syscall a tracee stopped
//! at, and its arguments, without reading architecture registers.
//!
//! The request and its `struct ptrace_syscall_info` are the kernel's ABI
//! (`linux/ptrace.h`), the same under every C library; they are declared
//! here because the `libc` and `nix` crates offer them only for glibc, and
//! the launcher also builds for musl.

use nix::errno::Errno;
use nix::unistd::Pid;

const PTRACE_GET_SYSCALL_INFO: libc::c_uint = 0x420e;
const OP_ENTRY: u8 = 1;
const OP_EXIT: u8 = 2;

#[repr(C)]
#[derive(Clone, Copy)]
struct Entry {
    nr: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Seccomp {
    nr: u64,
    args: [u64; 6],
    ret_data: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Exit {
    rval: i64,
    is_error: u8,
}

#[repr(C)]
union Data {
    entry: Entry,
    exit: Exit,
    seccomp: Seccomp,
}

#[repr(C)]
struct RawInfo {
    op: u8,
    pad: [u8; 3],
    arch: u32,
    instruction_pointer: u64,
    stack_pointer: u64,
    data: Data,
}

/// Where a syscall-stopped tracee is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallStop {
    /// Entering syscall `nr` with these arguments.
    Entry { nr: i64, args: [u64; 6] },
    /// Leaving a syscall: its result (`rval` is `-errno` when `is_error`).
    Exit { rval: i64, is_error: bool },
    /// Not a syscall stop (or a seccomp stop, which the launcher does not use).
    Other,
}

/// Ask the kernel where the stopped tracee `pid` is.
pub fn get(pid: Pid) -> Result<SyscallStop, Errno> {
    let mut info = std::mem::MaybeUninit::<RawInfo>::zeroed();
    // SAFETY: the kernel writes at most `size` bytes into our buffer.
    let n = unsafe {
        libc::ptrace(
            PTRACE_GET_SYSCALL_INFO as _,
            pid.as_raw(),
            std::mem::size_of::<RawInfo>(),
            info.as_mut_ptr(),
        )
    };
    if n < 0 {
        return Err(Errno::last());
    }
    // SAFETY: zero-initialized, then filled by the kernel.
    let info = unsafe { info.assume_init() };
    Ok(match info.op {
        OP_ENTRY => {
            // SAFETY: `op` says which member of the union the kernel filled.
            let entry = unsafe { info.data.entry };
            SyscallStop::Entry {
                nr: entry.nr as i64,
                args: entry.args,
            }
        }
        OP_EXIT => {
            // SAFETY: as above.
            let exit = unsafe { info.data.exit };
            SyscallStop::Exit {
                rval: exit.rval,
                is_error: exit.is_error != 0,
            }
        }
        _ => SyscallStop::Other,
    })
}
