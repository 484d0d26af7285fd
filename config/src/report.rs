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
//! | 5 | kind (1 Hello, 2 Connected, 3 Closed, 4 AfterFork, 5 Tally) |
//! | 6..8 | reserved, zero |
//! | 8..12 | pid of the sender (i32) |
//! | 12..16 | its parent's pid (i32) |
//!
//! The launcher must not trust the pid fields alone: it receives the
//! kernel-attested sender pid with `SO_PASSCRED` and checks them against it.
//!
//! Tally (kind 5) is the shim's own figures for its process, cumulative
//! since the process began (a forked child starts from zero): statements by
//! latency bucket, errors by SQLite primary result code, connects,
//! reconnects, and its pool's slots in use now. A lost or reordered Tally
//! costs nothing: the next one carries everything.

/// The variable naming the launcher's socket; set by the launcher only.
pub const SUPERVISOR_ENV: &str = "PLEX_PG_SUPERVISOR";

pub const MAGIC: [u8; 4] = *b"PXPG";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 16;

/// The most fds one AfterFork report may list. The child's fork handler
/// lists each socket it made harmless ([`FdRole::Socket`], the only role):
/// one per pool slot (`pool.max` is at most
/// [`crate::settings::POOL_MAX_LIMIT`]) plus the pooler probe's second
/// session, which may be open at the instant of the fork. A connection owns
/// no other fd.
pub const MAX_REPORTED_FDS: usize = crate::settings::POOL_MAX_LIMIT as usize + 1;

/// The bytes after the header of an AfterFork report before its fd
/// entries: generation (8), slots in use (4), fd count (4).
const AFTER_FORK_FIXED: usize = 16;

/// The largest AfterFork report: 16 + 16 + 257 × 16 = 4,144 bytes.
pub const MAX_AFTER_FORK: usize = HEADER_LEN + AFTER_FORK_FIXED + MAX_REPORTED_FDS * FD_ENTRY_LEN;

/// Statement latency buckets of a Tally: the upper bounds, in microseconds,
/// of all but the last (which has none, Prometheus's `+Inf`). Each bound
/// doubles the one before, from 125 µs to 1.024 s: a bucket is found with
/// one division and a count of leading zeros ([`latency_bucket`]).
pub const LATENCY_BOUNDS_US: [u64; LATENCY_BUCKETS - 1] = [
    125, 250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000,
    1_024_000,
];

/// How many latency buckets a Tally carries, the `+Inf` one included.
pub const LATENCY_BUCKETS: usize = 15;

/// The bucket of a statement that took `us` microseconds: the first whose
/// bound is at least `us` (the last when none is).
pub fn latency_bucket(us: u64) -> usize {
    let q = us.saturating_sub(1) / LATENCY_BOUNDS_US[0];
    ((u64::BITS - q.leading_zeros()) as usize).min(LATENCY_BUCKETS - 1)
}

/// How many error counters a Tally carries: one per SQLite primary result
/// code (`rc & 0xff`, 1 to 28 today), by its number; index 0 counts codes
/// outside the range.
pub const ERROR_CODES: usize = 32;

/// The length of a Tally report: the header, then seq (8), slots in use
/// (4), slots max (4), connects (8), reconnects (8), latency sum in µs (8),
/// the buckets (8 each) and the error counters (8 each): 16 + 40 + 120 +
/// 256 = 432 bytes.
pub const TALLY_LEN: usize = HEADER_LEN + 40 + 8 * LATENCY_BUCKETS + 8 * ERROR_CODES;

/// The largest datagram: the larger of the largest AfterFork and a Tally.
pub const MAX_DATAGRAM: usize = if MAX_AFTER_FORK > TALLY_LEN {
    MAX_AFTER_FORK
} else {
    TALLY_LEN
};

const FD_ENTRY_LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Hello = 1,
    Connected = 2,
    Closed = 3,
    AfterFork = 4,
    Tally = 5,
}

/// What an fd reported in AfterFork was in the parent. A byte of its own
/// in each entry, so another kind of fd could be told apart later; today a
/// connection owns its socket and nothing else (roles 2 and 3, once an I/O
/// runtime's epoll and eventfd, are no longer sent nor accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FdRole {
    /// A PostgreSQL connection's socket.
    Socket = 1,
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

/// The shim's figures for its process (a Tally report), cumulative since
/// the process began. Statements are not counted apart: each one is in
/// exactly one latency bucket, so their number is the buckets' sum
/// ([`Tally::statements`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// Numbers the process's Tally reports, from 1: a later one has a
    /// larger number (the gauges are taken from the latest).
    pub seq: u64,
    /// Pool slots holding a connection now (idle, leased or connecting).
    pub slots_in_use: u32,
    /// The pool's slots (`pool.max`).
    pub slots_max: u32,
    /// PostgreSQL connections opened.
    pub connects: u64,
    /// Those opened in place of one the server closed or broke.
    pub reconnects: u64,
    /// The statements' latencies added up, in microseconds.
    pub latency_us: u64,
    /// Statements by latency bucket (see [`LATENCY_BOUNDS_US`]), each
    /// bucket counted on its own (not cumulative).
    pub buckets: [u64; LATENCY_BUCKETS],
    /// Failed steps by SQLite primary result code (see [`ERROR_CODES`]).
    pub errors: [u64; ERROR_CODES],
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            seq: 0,
            slots_in_use: 0,
            slots_max: 0,
            connects: 0,
            reconnects: 0,
            latency_us: 0,
            buckets: [0; LATENCY_BUCKETS],
            errors: [0; ERROR_CODES],
        }
    }
}

impl Tally {
    /// Statements run: the buckets' sum.
    pub fn statements(&self) -> u64 {
        self.buckets.iter().sum()
    }
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
    /// The shim's figures, sent at most once a second while it works, and
    /// when a routed database closes or the process exits.
    /// (Boxed: it is ten times the size of the other kinds.)
    Tally {
        pid: i32,
        ppid: i32,
        tally: Box<Tally>,
    },
}

impl Message {
    pub fn pid(&self) -> i32 {
        match self {
            Message::Hello { pid, .. }
            | Message::Connected { pid, .. }
            | Message::Closed { pid, .. }
            | Message::AfterFork { pid, .. }
            | Message::Tally { pid, .. } => *pid,
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

/// Tally; no allocation, no lock.
pub fn encode_tally(buf: &mut [u8], pid: i32, ppid: i32, t: &Tally) -> Option<usize> {
    let mut w = Writer::new(buf, Kind::Tally, pid, ppid);
    w.u64(t.seq);
    w.u32(t.slots_in_use);
    w.u32(t.slots_max);
    w.u64(t.connects);
    w.u64(t.reconnects);
    w.u64(t.latency_us);
    for &b in &t.buckets {
        w.u64(b);
    }
    for &e in &t.errors {
        w.u64(e);
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
        5 => {
            let mut t = Tally {
                seq: r.u64("seq")?,
                slots_in_use: r.u32("slots_in_use")?,
                slots_max: r.u32("slots_max")?,
                connects: r.u64("connects")?,
                reconnects: r.u64("reconnects")?,
                latency_us: r.u64("latency sum")?,
                ..Tally::default()
            };
            for b in t.buckets.iter_mut() {
                *b = r.u64("latency bucket")?;
            }
            for e in t.errors.iter_mut() {
                *e = r.u64("error count")?;
            }
            if r.pos != buf.len() {
                return Err(DecodeError::BadField("tally length"));
            }
            Ok(Message::Tally {
                pid,
                ppid,
                tally: Box::new(t),
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
                role: FdRole::Socket,
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
            role: FdRole::Socket,
            inode: 1,
        }; MAX_REPORTED_FDS];
        let n = encode_after_fork(&mut buf, 1, 1, 1, 0, &fds).unwrap();
        assert_eq!(n, MAX_AFTER_FORK);
        assert_eq!(MAX_DATAGRAM, MAX_AFTER_FORK);
        assert_eq!(
            MAX_AFTER_FORK, 4144,
            "sized for one socket per slot and the probe's"
        );
        assert_eq!(decode(&buf[..n]).unwrap().pid(), 1);
        // One more byte of room is needed than a short buffer has: refused, not cut.
        assert!(encode_after_fork(&mut buf[..MAX_AFTER_FORK - 1], 1, 1, 1, 0, &fds).is_none());
        // A role no shim sends any more (an I/O runtime's epoll) is refused.
        buf[HEADER_LEN + 16 + 4] = 2;
        assert_eq!(decode(&buf[..n]), Err(DecodeError::BadField("role")));
    }

    fn sample_tally() -> Tally {
        let mut t = Tally {
            seq: 7,
            slots_in_use: 3,
            slots_max: 20,
            connects: 5,
            reconnects: 2,
            latency_us: 123_456,
            ..Tally::default()
        };
        for (i, b) in t.buckets.iter_mut().enumerate() {
            *b = (i as u64 + 1) * 1000 + i as u64;
        }
        t.errors[1] = 4; // SQLITE_ERROR
        t.errors[19] = 9; // SQLITE_CONSTRAINT
        t.errors[0] = u64::MAX;
        t
    }

    #[test]
    fn a_tally_round_trips_field_by_field() {
        let t = sample_tally();
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = encode_tally(&mut buf, 42, 41, &t).unwrap();
        assert_eq!(n, TALLY_LEN);
        assert_eq!(n, 432);
        assert_eq!(buf[5], Kind::Tally as u8);
        let back = decode(&buf[..n]).unwrap();
        assert_eq!(
            back,
            Message::Tally {
                pid: 42,
                ppid: 41,
                tally: Box::new(t.clone())
            }
        );
        assert_eq!(back.pid(), 42);
        // Every field is where the layout says: change one byte of each
        // counter and only that counter changes.
        let mut other = buf;
        other[HEADER_LEN + 40] ^= 1; // the first bucket's lowest byte
        let Message::Tally { tally, .. } = decode(&other[..n]).unwrap() else {
            panic!()
        };
        assert_eq!(tally.buckets[0], t.buckets[0] ^ 1);
        assert_eq!(
            tally.statements(),
            t.statements() - t.buckets[0] + (t.buckets[0] ^ 1)
        );
        assert_eq!(tally.errors, t.errors);
        let mut other = buf;
        other[HEADER_LEN + 40 + 8 * LATENCY_BUCKETS + 8 * 19] = 10;
        let Message::Tally { tally, .. } = decode(&other[..n]).unwrap() else {
            panic!()
        };
        assert_eq!(tally.errors[19], 10);
        assert_eq!(tally.buckets, t.buckets);
    }

    #[test]
    fn a_tally_cut_short_or_padded_is_refused() {
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = encode_tally(&mut buf, 1, 1, &sample_tally()).unwrap();
        assert_eq!(
            decode(&buf[..n - 1]),
            Err(DecodeError::BadField("error count"))
        );
        assert_eq!(
            decode(&buf[..n + 1]),
            Err(DecodeError::BadField("tally length"))
        );
        // A buffer too small to hold it: refused, not cut.
        assert!(encode_tally(&mut buf[..TALLY_LEN - 1], 1, 1, &sample_tally()).is_none());
    }

    #[test]
    fn latency_buckets_follow_their_bounds() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(1), 0);
        assert_eq!(latency_bucket(125), 0);
        assert_eq!(latency_bucket(126), 1);
        assert_eq!(latency_bucket(250), 1);
        assert_eq!(latency_bucket(251), 2);
        for (i, &bound) in LATENCY_BOUNDS_US.iter().enumerate() {
            assert_eq!(latency_bucket(bound), i, "at {bound} µs");
            assert_eq!(latency_bucket(bound + 1), i + 1, "past {bound} µs");
        }
        assert_eq!(latency_bucket(u64::MAX), LATENCY_BUCKETS - 1);
        for pair in LATENCY_BOUNDS_US.windows(2) {
            assert_eq!(pair[1], 2 * pair[0]);
        }
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
