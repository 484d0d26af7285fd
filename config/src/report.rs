//! The datagrams the shim sends the launcher over the Unix datagram socket
//! named by `PLEX_PG_SUPERVISOR`.
//!
//! The format is a fixed little-endian binary layout rather than text, so the
//! shim can build a report on the stack and send it with a single `sendto`
//! from inside its fork handler, where allocating is not allowed. Encoding
//! never allocates; decoding (done by the launcher) returns owned values.
//!
//! Every datagram starts with the same 16-byte header:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `PXPG` |
//! | 4 | format version ([`VERSION`]) |
//! | 5 | kind (1 Hello, 2 Connected, 3 Closed, 4 AfterFork) |
//! | 6..8 | reserved, zero |
//! | 8..12 | pid of the sender (i32) |
//! | 12..16 | its parent's pid (i32) |
//!
//! The launcher must not trust the pid fields alone: it receives the
//! kernel-attested sender pid with `SO_PASSCRED` and checks them against it.

/// The variable naming the launcher's socket; set by the launcher only.
pub const SUPERVISOR_ENV: &str = "PLEX_PG_SUPERVISOR";

pub const MAGIC: [u8; 4] = *b"PXPG";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 16;

/// The most fds one AfterFork report may list: room for three per pool
/// slot. Today's shim lists one per slot in use, its connection's socket
/// ([`FdRole::Socket`]; a connection owns no other fd since the shim stopped
/// running an I/O runtime per connection), so a report is at most a third
/// of this; the bound is the format's, kept so reports stay decodable.
pub const MAX_REPORTED_FDS: usize = 3 * crate::settings::POOL_MAX_LIMIT as usize;

/// The largest datagram: an AfterFork report listing [`MAX_REPORTED_FDS`].
pub const MAX_DATAGRAM: usize = HEADER_LEN + 16 + MAX_REPORTED_FDS * FD_ENTRY_LEN;

const FD_ENTRY_LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Hello = 1,
    Connected = 2,
    Closed = 3,
    AfterFork = 4,
}

/// What an fd reported in AfterFork was in the parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FdRole {
    /// A PostgreSQL connection's socket.
    Socket = 1,
    /// Reserved: the epoll instance of a connection's I/O runtime, from
    /// when connections had one. Today's shim never sends it; it is still
    /// decoded.
    Epoll = 2,
    /// Reserved: the eventfd that woke that runtime. Never sent today;
    /// still decoded.
    EventFd = 3,
}

/// An fd the child's fork handler made harmless: its number is kept
/// reserved (it now refers to `/dev/null`), the parent's file is no longer
/// reachable through it. `inode` is the inode the fd referred to before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HarmlessFd {
    pub fd: i32,
    pub role: FdRole,
    pub inode: u64,
}

/// A decoded report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Sent once per process when the shim comes to life (first routed open).
    Hello {
        pid: i32,
        ppid: i32,
        shim_version: String,
        pool_capacity: u32,
        fork_handler: bool,
    },
    /// A pool slot opened a PostgreSQL connection.
    Connected {
        pid: i32,
        ppid: i32,
        slot: u32,
        fd: i32,
        inode: u64,
        generation: u64,
    },
    /// A pool slot closed its connection.
    Closed {
        pid: i32,
        ppid: i32,
        slot: u32,
        fd: i32,
        inode: u64,
        generation: u64,
    },
    /// Sent by the child's fork handler, after it emptied the pool.
    AfterFork {
        pid: i32,
        ppid: i32,
        generation: u64,
        slots_in_use: u32,
        harmless: Vec<HarmlessFd>,
    },
}

impl Message {
    pub fn pid(&self) -> i32 {
        match self {
            Message::Hello { pid, .. }
            | Message::Connected { pid, .. }
            | Message::Closed { pid, .. }
            | Message::AfterFork { pid, .. } => *pid,
        }
    }
}

/// Why a datagram could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    TooShort(usize),
    BadMagic,
    UnsupportedVersion(u8),
    UnknownKind(u8),
    BadField(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooShort(n) => write!(f, "datagram too short ({n} bytes)"),
            DecodeError::BadMagic => f.write_str("not a plex-pg report (bad magic)"),
            DecodeError::UnsupportedVersion(v) => write!(
                f,
                "report format version {v} is not supported (expected {VERSION})"
            ),
            DecodeError::UnknownKind(k) => write!(f, "unknown report kind {k}"),
            DecodeError::BadField(what) => write!(f, "malformed report: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Writes fields into a caller's buffer; never allocates. Writing past the
/// end is ignored and reported by [`Writer::finish`] as `None`.
struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8], kind: Kind, pid: i32, ppid: i32) -> Self {
        let mut w = Writer {
            buf,
            len: 0,
            overflow: false,
        };
        w.bytes(&MAGIC);
        w.bytes(&[VERSION, kind as u8, 0, 0]);
        w.i32(pid);
        w.i32(ppid);
        w
    }
    fn bytes(&mut self, b: &[u8]) {
        match self.buf.get_mut(self.len..self.len + b.len()) {
            Some(dst) => {
                dst.copy_from_slice(b);
                self.len += b.len();
            }
            None => self.overflow = true,
        }
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes())
    }
    fn i32(&mut self, v: i32) {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes())
    }
    fn finish(self) -> Option<usize> {
        (!self.overflow).then_some(self.len)
    }
}

/// Hello: `shim_version` is cut to 32 bytes.
pub fn encode_hello(
    buf: &mut [u8],
    pid: i32,
    ppid: i32,
    shim_version: &str,
    pool_capacity: u32,
    fork_handler: bool,
) -> Option<usize> {
    let mut w = Writer::new(buf, Kind::Hello, pid, ppid);
    w.u32(pool_capacity);
    w.bytes(&[fork_handler as u8, 0, 0, 0]);
    let v = &shim_version.as_bytes()[..shim_version.len().min(32)];
    w.u32(v.len() as u32);
    w.bytes(v);
    w.finish()
}

/// A pool slot's socket, as a Connected or Closed report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSocket {
    pub slot: u32,
    pub fd: i32,
    pub inode: u64,
}

/// Connected or Closed.
pub fn encode_connection(
    buf: &mut [u8],
    kind: Kind,
    pid: i32,
    ppid: i32,
    socket: SlotSocket,
    generation: u64,
) -> Option<usize> {
    debug_assert!(matches!(kind, Kind::Connected | Kind::Closed));
    let mut w = Writer::new(buf, kind, pid, ppid);
    w.u32(socket.slot);
    w.i32(socket.fd);
    w.u64(socket.inode);
    w.u64(generation);
    w.finish()
}

/// AfterFork, listing `harmless`; async-signal-safe (no allocation, no lock).
pub fn encode_after_fork(
    buf: &mut [u8],
    pid: i32,
    ppid: i32,
    generation: u64,
    slots_in_use: u32,
    harmless: &[HarmlessFd],
) -> Option<usize> {
    let mut w = Writer::new(buf, Kind::AfterFork, pid, ppid);
    w.u64(generation);
    w.u32(slots_in_use);
    w.u32(harmless.len() as u32);
    for h in harmless {
        w.i32(h.fd);
        w.bytes(&[h.role as u8, 0, 0, 0]);
        w.u64(h.inode);
    }
    w.finish()
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let s = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or(DecodeError::BadField(what))?;
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
}

/// Decode one datagram.
pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::TooShort(buf.len()));
    }
    if buf[0..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if buf[4] != VERSION {
        return Err(DecodeError::UnsupportedVersion(buf[4]));
    }
    let kind = buf[5];
    let mut r = Reader { buf, pos: 8 };
    let pid = r.i32("pid")?;
    let ppid = r.i32("ppid")?;
    match kind {
        1 => {
            let pool_capacity = r.u32("pool_capacity")?;
            let fork_handler = r.take(4, "fork_handler")?[0] != 0;
            let n = r.u32("version length")? as usize;
            if n > 32 {
                return Err(DecodeError::BadField("version length"));
            }
            let v = r.take(n, "version")?;
            let shim_version = String::from_utf8_lossy(v).into_owned();
            Ok(Message::Hello {
                pid,
                ppid,
                shim_version,
                pool_capacity,
                fork_handler,
            })
        }
        2 | 3 => {
            let slot = r.u32("slot")?;
            let fd = r.i32("fd")?;
            let inode = r.u64("inode")?;
            let generation = r.u64("generation")?;
            Ok(if kind == 2 {
                Message::Connected {
                    pid,
                    ppid,
                    slot,
                    fd,
                    inode,
                    generation,
                }
            } else {
                Message::Closed {
                    pid,
                    ppid,
                    slot,
                    fd,
                    inode,
                    generation,
                }
            })
        }
        4 => {
            let generation = r.u64("generation")?;
            let slots_in_use = r.u32("slots_in_use")?;
            let n = r.u32("fd count")? as usize;
            if n > MAX_REPORTED_FDS {
                return Err(DecodeError::BadField("fd count"));
            }
            let mut harmless = Vec::with_capacity(n);
            for _ in 0..n {
                let fd = r.i32("fd")?;
                let role = match r.take(4, "role")?[0] {
                    1 => FdRole::Socket,
                    2 => FdRole::Epoll,
                    3 => FdRole::EventFd,
                    _ => return Err(DecodeError::BadField("role")),
                };
                let inode = r.u64("inode")?;
                harmless.push(HarmlessFd { fd, role, inode });
            }
            Ok(Message::AfterFork {
                pid,
                ppid,
                generation,
                slots_in_use,
                harmless,
            })
        }
        k => Err(DecodeError::UnknownKind(k)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_kind() {
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = encode_hello(&mut buf, 10, 1, "0.1.0", 32, true).unwrap();
        assert_eq!(
            decode(&buf[..n]).unwrap(),
            Message::Hello {
                pid: 10,
                ppid: 1,
                shim_version: "0.1.0".into(),
                pool_capacity: 32,
                fork_handler: true
            }
        );
        let n = encode_connection(
            &mut buf,
            Kind::Connected,
            10,
            1,
            SlotSocket {
                slot: 3,
                fd: 17,
                inode: 99_999,
            },
            2,
        )
        .unwrap();
        assert_eq!(
            decode(&buf[..n]).unwrap(),
            Message::Connected {
                pid: 10,
                ppid: 1,
                slot: 3,
                fd: 17,
                inode: 99_999,
                generation: 2
            }
        );
        let n = encode_connection(
            &mut buf,
            Kind::Closed,
            10,
            1,
            SlotSocket {
                slot: 3,
                fd: 17,
                inode: 99_999,
            },
            2,
        )
        .unwrap();
        assert!(matches!(
            decode(&buf[..n]).unwrap(),
            Message::Closed { slot: 3, .. }
        ));
        let fds = [
            HarmlessFd {
                fd: 17,
                role: FdRole::Socket,
                inode: 99_999,
            },
            HarmlessFd {
                fd: 18,
                role: FdRole::Epoll,
                inode: 5,
            },
        ];
        let n = encode_after_fork(&mut buf, 11, 10, 3, 0, &fds).unwrap();
        assert_eq!(
            decode(&buf[..n]).unwrap(),
            Message::AfterFork {
                pid: 11,
                ppid: 10,
                generation: 3,
                slots_in_use: 0,
                harmless: fds.to_vec()
            }
        );
    }

    #[test]
    fn largest_after_fork_fits() {
        let mut buf = [0u8; MAX_DATAGRAM];
        let fds = [HarmlessFd {
            fd: 1,
            role: FdRole::EventFd,
            inode: 1,
        }; MAX_REPORTED_FDS];
        let n = encode_after_fork(&mut buf, 1, 1, 1, 0, &fds).unwrap();
        assert_eq!(n, MAX_DATAGRAM);
        // One more byte of room is needed than a short buffer has: refused, not cut.
        assert!(encode_after_fork(&mut buf[..MAX_DATAGRAM - 1], 1, 1, 1, 0, &fds).is_none());
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(decode(b"short"), Err(DecodeError::TooShort(5)));
        assert_eq!(decode(&[0u8; 16]), Err(DecodeError::BadMagic));
        let mut buf = [0u8; 64];
        let n = encode_connection(
            &mut buf,
            Kind::Connected,
            1,
            1,
            SlotSocket {
                slot: 1,
                fd: 1,
                inode: 1,
            },
            1,
        )
        .unwrap();
        buf[5] = 9;
        assert_eq!(decode(&buf[..n]), Err(DecodeError::UnknownKind(9)));
        buf[5] = 2;
        assert_eq!(
            decode(&buf[..n - 1]),
            Err(DecodeError::BadField("generation"))
        );
        buf[4] = 2;
        assert_eq!(decode(&buf[..n]), Err(DecodeError::UnsupportedVersion(2)));
    }
}
