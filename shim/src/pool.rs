//! The connection pool: a fixed array of `pool.max` slots, each holding at
//! most one PostgreSQL connection.
//!
//! A slot's state, its connection pointer and its socket's fd and inode
//! are atomics, so the child's fork handler can empty the pool with plain
//! loads and stores ([`Pool::reset_in_child`]): it forgets every
//! connection (never drops one: dropping would talk to the server on the
//! parent's behalf), points each socket's fd number at `/dev/null` (the
//! number stays taken, so no later file can be mistaken for the socket),
//! and bumps the generation. A [`Lease`] from an older generation is then
//! dead: it never reaches its connection again.
//!
//! Other threads change slots under [`Pool::lock`], which the fork
//! handlers take before `fork()` so no slot is half-changed in the child.
//! Connecting and closing happen outside it; a slot's socket is published
//! in the slot from its `socket(2)` to its `close(2)`, atomically with both
//! as far as a fork can tell (see `pg::socket`), so the child's handler
//! finds every socket by its record alone, whatever the slot's state.

use crate::error::{Error, Result};
use crate::lock::{futex_wait, futex_wake, RawLock};
use crate::pg::socket::SocketRecord;
use crate::pg::{ConnectError, PgConn};
use crate::report::Reporter;
use crate::sys::{SQLITE_BUSY, SQLITE_CANTOPEN};
use plex_pg_config::report::{FdRole, HarmlessFd, Kind};
use plex_pg_config::settings::{Pool as PoolSettings, Postgres};
use plex_pg_tls::Tls;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const FREE: u32 = 0;
const IDLE: u32 = 1;
const LEASED: u32 = 2;
const CONNECTING: u32 = 3;

const POOLER_UNKNOWN: u32 = 0;
const POOLER_OK: u32 = 1;
const POOLER_REFUSED: u32 = 2;
/// A thread is running the probe (one at a time: there is one probe
/// socket record); the others wait for its answer.
const POOLER_PROBING: u32 = 3;

struct Slot {
    state: AtomicU32,
    conn: AtomicPtr<PgConn>,
    socket: SocketRecord,
    schema: AtomicU32,
    /// When the connection was last released (ms on the monotonic clock).
    released_at: AtomicU64,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            state: AtomicU32::new(FREE),
            conn: AtomicPtr::new(std::ptr::null_mut()),
            socket: SocketRecord::new(),
            schema: AtomicU32::new(0),
            released_at: AtomicU64::new(0),
        }
    }
}

pub struct Pool {
    slots: Box<[Slot]>,
    /// The socket of the pooler probe's second session (see
    /// [`Pool::check_pooler`]): published like a slot's, for the fork
    /// handler, but never leased nor reported.
    probe: SocketRecord,
    /// Whether the servers were found fit for the pool's session state:
    /// [`POOLER_UNKNOWN`], [`POOLER_OK`] or [`POOLER_REFUSED`] (then
    /// `pooler_refusal` says why, for every later connect).
    pooler: AtomicU32,
    pooler_refusal: std::sync::OnceLock<String>,
    lock: RawLock,
    generation: AtomicU64,
    /// Bumped on every release; waiters for a free slot sleep on it.
    released: AtomicU32,
    /// Threads sleeping on `released` (a release wakes only when some are).
    waiters: AtomicU32,
    settings: PoolSettings,
    postgres: Postgres,
    /// TLS, from `postgres.ssl*`: built once, with the runtime (under the
    /// init lock, so no fork copies it half-made), read-only afterwards.
    /// An error (an unreadable certificate file) fails every connect.
    tls: std::result::Result<Tls, String>,
    /// The session time zone of every connection (the process's).
    timezone: String,
    reporter: &'static Reporter,
}

/// The right to use one slot's connection until dropped.
pub struct Lease {
    pool: &'static Pool,
    slot: u32,
    generation: u64,
}

impl Lease {
    /// The connection, unless the lease predates a fork (then the
    /// connection belongs to the parent and is unreachable).
    pub fn conn(&mut self) -> Option<&mut PgConn> {
        if self.generation != self.pool.generation.load(Ordering::Acquire) {
            return None;
        }
        let p = self.pool.slots[self.slot as usize]
            .conn
            .load(Ordering::Acquire);
        // SAFETY: a LEASED slot's connection is used only by its lease
        // holder, and the pointer stays valid until the lease is released.
        unsafe { p.as_mut() }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.release(self.slot, self.generation);
    }
}

impl Pool {
    pub fn new(
        settings: PoolSettings,
        postgres: Postgres,
        timezone: String,
        reporter: &'static Reporter,
    ) -> Pool {
        Pool {
            slots: (0..settings.max).map(|_| Slot::new()).collect(),
            probe: SocketRecord::new(),
            pooler: AtomicU32::new(POOLER_UNKNOWN),
            pooler_refusal: std::sync::OnceLock::new(),
            lock: RawLock::new(),
            generation: AtomicU64::new(1),
            released: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            settings,
            tls: Tls::new(&postgres),
            postgres,
            timezone,
            reporter,
        }
    }

    pub fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The lock the fork handlers take around `fork()`.
    pub fn lock(&self) -> &RawLock {
        &self.lock
    }

    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// Slots holding a connection (idle, leased or connecting).
    pub fn open_count(&self) -> u32 {
        self.slots
            .iter()
            .filter(|s| s.state.load(Ordering::Acquire) != FREE)
            .count() as u32
    }

    /// A connection to `schema` (numbered `schema_id` by the caller): an
    /// idle one, else a new one (retried with backoff while the server is
    /// unreachable, for `postgres.retry_for`), else wait for one to be
    /// released, at most `pool.acquire_timeout`, then `SQLITE_BUSY`.
    pub fn acquire(&'static self, schema_id: u32, schema: &str) -> Result<Lease> {
        let deadline = Instant::now() + self.settings.acquire_timeout;
        loop {
            let seen = self.released.load(Ordering::Acquire);
            self.lock.lock();
            let found = self.take_idle(schema_id);
            let choice = match found {
                Some(slot) => Choice::Idle(slot),
                None => match self
                    .slots
                    .iter()
                    .position(|s| s.state.load(Ordering::Relaxed) == FREE)
                {
                    Some(free) => {
                        let s = &self.slots[free];
                        s.state.store(CONNECTING, Ordering::Release);
                        s.schema.store(schema_id, Ordering::Relaxed);
                        Choice::Connect(free as u32)
                    }
                    None => match self.take_idle_any() {
                        Some(other) => Choice::Recycle(other),
                        None => Choice::Wait,
                    },
                },
            };
            self.lock.unlock();
            match choice {
                Choice::Idle(slot) => {
                    if self.alive(slot) {
                        return Ok(self.lease(slot));
                    }
                    // The server went away while it sat idle (a restart):
                    // every idle connection is as dead as this one.
                    tracing::info!(
                        slot,
                        "an idle PostgreSQL connection was closed by the server; reconnecting"
                    );
                    crate::tally::lost(1);
                    self.close_slot(slot);
                    self.close_idle();
                }
                Choice::Recycle(slot) => self.close_slot(slot),
                Choice::Connect(slot) => return self.connect_slot(slot, schema_id, schema),
                Choice::Wait => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::new(
                            SQLITE_BUSY,
                            format!(
                                "all {} PostgreSQL connections of the pool are in use (pool.max) and none was released within {} ms (pool.acquire_timeout_ms)",
                                self.slots.len(),
                                self.settings.acquire_timeout.as_millis()
                            ),
                        ));
                    }
                    self.waiters.fetch_add(1, Ordering::AcqRel);
                    futex_wait(&self.released, seen, Some(deadline - now));
                    self.waiters.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
    }

    fn lease(&'static self, slot: u32) -> Lease {
        Lease {
            pool: self,
            slot,
            generation: self.generation.load(Ordering::Acquire),
        }
    }

    /// Under the lock: an idle slot of this schema, now leased.
    fn take_idle(&self, schema_id: u32) -> Option<u32> {
        self.slots
            .iter()
            .position(|s| {
                s.schema.load(Ordering::Relaxed) == schema_id
                    && s.state
                        .compare_exchange(IDLE, LEASED, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
            })
            .map(|i| i as u32)
    }

    /// Under the lock: any idle slot (another schema's), now leased, to be
    /// closed so its place can serve this schema.
    fn take_idle_any(&self) -> Option<u32> {
        self.slots
            .iter()
            .position(|s| {
                s.state
                    .compare_exchange(IDLE, LEASED, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .map(|i| i as u32)
    }

    /// An idle connection is alive when its socket has nothing to read: a
    /// server that shut down has sent an error and closed it. One released
    /// in the last 100 ms is taken as alive without asking the kernel (a
    /// restart that quick shows as one failed statement, then reconnects).
    fn alive(&self, slot: u32) -> bool {
        let s = &self.slots[slot as usize];
        if crate::clock::now_ms().saturating_sub(s.released_at.load(Ordering::Relaxed)) < 100 {
            return true;
        }
        let fd = s.socket.fd.load(Ordering::Acquire);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polling one valid pollfd without waiting.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n == 0
    }

    fn connect_slot(&'static self, slot: u32, schema_id: u32, schema: &str) -> Result<Lease> {
        let generation = self.generation.load(Ordering::Acquire);
        let s = &self.slots[slot as usize];
        match self
            .connect_with_retry(schema, &s.socket)
            .and_then(|conn| self.check_pooler(conn, schema))
        {
            Ok(conn) => {
                let (fd, inode) = conn.socket();
                self.lock.lock();
                if self.generation.load(Ordering::Acquire) != generation {
                    // Cannot happen in the process that connected; kept
                    // so a future change cannot leak a parent's socket.
                    self.lock.unlock();
                    std::mem::forget(conn);
                    return Err(Error::new(
                        crate::sys::SQLITE_IOERR,
                        "the process forked while connecting",
                    ));
                }
                s.conn
                    .store(Box::into_raw(Box::new(conn)), Ordering::Release);
                s.schema.store(schema_id, Ordering::Relaxed);
                s.state.store(LEASED, Ordering::Release);
                self.lock.unlock();
                self.reporter
                    .connection(Kind::Connected, slot, fd, inode, generation);
                crate::tally::connected();
                tracing::debug!(slot, fd, inode, schema, "connected to PostgreSQL");
                Ok(self.lease(slot))
            }
            Err(e) => {
                self.slots[slot as usize]
                    .state
                    .store(FREE, Ordering::Release);
                self.wake();
                Err(e)
            }
        }
    }

    /// Once per process, with its first connection `conn`: refuse a pooler
    /// that pools per transaction or statement (PgBouncer's
    /// `pool_mode = transaction`), which would lose the session's schema,
    /// time zone and prepared statements between transactions. The probe
    /// opens a second session for a moment (see `plex_pg_tls::pooler`);
    /// when it cannot be run (no second connection to be had), the check
    /// is left for the next connection. Refused, every later connection of
    /// the process fails with the same message, without a probe. One thread
    /// probes at a time (there is one probe socket record); threads that
    /// connect meanwhile wait for its answer (at most twice
    /// `postgres.connect_timeout`).
    fn check_pooler(&'static self, conn: PgConn, schema: &str) -> Result<PgConn> {
        let refuse = |conn: PgConn, why: &str| {
            conn.close();
            Err(Error::new(
                SQLITE_CANTOPEN,
                format!("plex-pg cannot use this PostgreSQL connection: {why}"),
            ))
        };
        let waited = Instant::now();
        loop {
            match self.pooler.compare_exchange(
                POOLER_UNKNOWN,
                POOLER_PROBING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(POOLER_OK) => return Ok(conn),
                Err(POOLER_REFUSED) => {
                    let why = self.pooler_refusal.get().cloned().unwrap_or_default();
                    return refuse(conn, &why);
                }
                // Another thread probes: its answer comes within a
                // connection's time; past that, go on unprobed (the next
                // connection asks again).
                Err(_) if waited.elapsed() < self.postgres.connect_timeout * 2 => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(_) => return Ok(conn),
            }
        }
        let (conn, outcome) = self.probe_pooler(conn, schema);
        let state = match &outcome {
            Probe::Passed => POOLER_OK,
            Probe::Refused(why) => {
                let _ = self.pooler_refusal.set(why.clone());
                POOLER_REFUSED
            }
            Probe::Inconclusive => POOLER_UNKNOWN,
        };
        self.pooler.store(state, Ordering::Release);
        match outcome {
            Probe::Refused(why) => refuse(conn, &why),
            _ => Ok(conn),
        }
    }

    /// The probe itself (see [`Pool::check_pooler`]), with `conn` as its
    /// session A; gives the connection back with the outcome.
    fn probe_pooler(&'static self, mut conn: PgConn, schema: &str) -> (PgConn, Probe) {
        let Ok(tls) = &self.tls else {
            return (conn, Probe::Inconclusive);
        };
        /// A probe session that says goodbye politely when dropped.
        struct Polite(Option<PgConn>);
        impl plex_pg_tls::pooler::Session for Polite {
            fn pid(&mut self, sql: &str) -> std::result::Result<i32, String> {
                match self.0.as_mut() {
                    Some(c) => c.backend_pid(sql),
                    None => Err("no session".into()),
                }
            }
        }
        impl Drop for Polite {
            fn drop(&mut self) {
                if let Some(c) = self.0.take() {
                    c.close();
                }
            }
        }
        /// Session A: the connection being checked, kept.
        struct Kept<'a>(&'a mut PgConn);
        impl plex_pg_tls::pooler::Session for Kept<'_> {
            fn pid(&mut self, sql: &str) -> std::result::Result<i32, String> {
                self.0.backend_pid(sql)
            }
        }
        let at = self.postgres.endpoint();
        let open_b = || {
            PgConn::connect(&self.postgres, tls, schema, &self.timezone, &self.probe)
                .map(|c| Polite(Some(c)))
                .map_err(|e| {
                    format!(
                        "its second session could not be opened: {}",
                        e.error().message
                    )
                })
        };
        let verdict = plex_pg_tls::pooler::run(&at, &mut Kept(&mut conn), open_b);
        match verdict {
            Ok(None) => {
                tracing::debug!("the pooler probe passed: one backend per session");
                (conn, Probe::Passed)
            }
            Ok(Some(why)) => {
                tracing::error!("{why}");
                (conn, Probe::Refused(why))
            }
            Err(e) => {
                tracing::debug!("the pooler probe could not run: {e}");
                (conn, Probe::Inconclusive)
            }
        }
    }

    /// Connect, retrying with exponential backoff (50 ms doubling to 2 s)
    /// while the failure may pass, for at most `postgres.retry_for`.
    fn connect_with_retry(&self, schema: &str, record: &'static SocketRecord) -> Result<PgConn> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(50);
        let mut warned = false;
        loop {
            let tls = match &self.tls {
                Ok(tls) => tls,
                Err(e) => return Err(Error::new(SQLITE_CANTOPEN, e.clone())),
            };
            match PgConn::connect(&self.postgres, tls, schema, &self.timezone, record) {
                Ok(c) => {
                    if warned {
                        tracing::warn!(
                            "PostgreSQL at {} is reachable again",
                            self.postgres.endpoint()
                        );
                    }
                    return Ok(c);
                }
                Err(ConnectError::Fatal(e)) => {
                    tracing::error!("{}", e.message);
                    return Err(e);
                }
                Err(ConnectError::Retry(e)) => {
                    // The window lasts as long as configured: the last wait
                    // is cut to what is left, and one more attempt follows.
                    let waited = start.elapsed();
                    if waited >= self.postgres.retry_for {
                        let msg = format!(
                            "{} (retried for {} ms, postgres.retry_for_ms)",
                            e.message,
                            waited.as_millis()
                        );
                        tracing::error!("{msg}");
                        return Err(Error::new(e.code, msg));
                    }
                    if !warned {
                        tracing::warn!(
                            "{}; retrying for up to {} ms",
                            e.message,
                            self.postgres.retry_for.as_millis()
                        );
                        warned = true;
                    }
                    std::thread::sleep(delay.min(self.postgres.retry_for - waited));
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Give a slot back (from [`Lease`]'s drop). A broken connection is
    /// closed; so is one beyond the `pool.size` kept idle.
    fn release(&self, slot: u32, generation: u64) {
        if generation != self.generation.load(Ordering::Acquire) {
            return; // a parent's lease, seen in a forked child: forget it
        }
        let s = &self.slots[slot as usize];
        // SAFETY: the lease holder owns the connection until now.
        let conn = unsafe { s.conn.load(Ordering::Acquire).as_mut() };
        // Writes still in flight are the holder's (its handle reads their
        // answers before it lets the connection go): none reaches the
        // next holder's results.
        let broken = conn.is_none_or(|c| {
            c.drop_in_flight();
            c.is_broken()
        });
        self.lock.lock();
        let idle = self
            .slots
            .iter()
            .filter(|s| s.state.load(Ordering::Relaxed) == IDLE)
            .count() as u32;
        let close = broken || idle >= self.settings.size;
        crate::tally::lost(broken as u64);
        if !close {
            s.released_at
                .store(crate::clock::now_ms(), Ordering::Relaxed);
            s.state.store(IDLE, Ordering::Release);
        }
        self.lock.unlock();
        if close {
            self.close_slot(slot);
        }
        self.wake();
    }

    /// Close a slot this thread holds (leased), and free it.
    fn close_slot(&self, slot: u32) {
        let s = &self.slots[slot as usize];
        self.lock.lock();
        let conn = s.conn.swap(std::ptr::null_mut(), Ordering::AcqRel);
        let (fd, inode) = (
            s.socket.fd.load(Ordering::Acquire),
            s.socket.inode.load(Ordering::Acquire),
        );
        self.lock.unlock();
        if !conn.is_null() {
            self.reporter
                .connection(Kind::Closed, slot, fd, inode, self.generation());
            // SAFETY: we took the only pointer to this connection.
            let conn = unsafe { Box::from_raw(conn) };
            conn.close();
        }
        s.state.store(FREE, Ordering::Release);
        self.wake();
    }

    /// Close every idle connection (after one was found dead).
    pub fn close_idle(&self) {
        loop {
            self.lock.lock();
            let slot = self.take_idle_any();
            self.lock.unlock();
            match slot {
                Some(slot) => self.close_slot(slot),
                None => return,
            }
        }
    }

    fn wake(&self) {
        self.released.fetch_add(1, Ordering::AcqRel);
        if self.waiters.load(Ordering::Acquire) > 0 {
            futex_wake(&self.released, i32::MAX);
        }
    }

    /// In a forked child, with no other thread alive: forget every
    /// connection, point its socket's fd at `harmless_fd` (`/dev/null`),
    /// free every slot, bump the generation, reset the lock. Records what
    /// it did in `out`; returns how many entries it filled.
    ///
    /// Async-signal-safe: atomics and `dup3` only, no allocation.
    pub fn reset_in_child(
        &self,
        harmless_fd: RawFd,
        out: &mut [std::mem::MaybeUninit<HarmlessFd>],
    ) -> usize {
        let mut n = 0;
        let records = self.slots.iter().map(|s| (&s.socket, Some(s)));
        for (record, slot) in records.chain(std::iter::once((&self.probe, None))) {
            // Every published fd, whatever the slot's state: a socket is
            // published from its `socket(2)` to its `close(2)` (see
            // `pg::socket`), also while it connects or says goodbye.
            let fd = record.fd.swap(-1, Ordering::AcqRel);
            let inode = record.inode.swap(0, Ordering::AcqRel);
            if fd >= 0 {
                // SAFETY: dup3 and close are async-signal-safe; both fds
                // are ours. Without a harmless fd to copy (none could be
                // opened), closing frees the number but still leaves the
                // child without the parent's socket.
                unsafe {
                    if libc::dup3(harmless_fd, fd, libc::O_CLOEXEC) < 0 {
                        libc::close(fd);
                    }
                }
                if n < out.len() {
                    out[n].write(HarmlessFd {
                        fd,
                        role: FdRole::Socket,
                        inode,
                    });
                    n += 1;
                }
            }
            let Some(s) = slot else { continue };
            if s.state.load(Ordering::Acquire) != FREE {
                // Forget, never drop: the parent still uses this connection.
                s.conn.store(std::ptr::null_mut(), Ordering::Release);
                s.state.store(FREE, Ordering::Release);
            }
        }
        // A probe the parent was running when it forked is not the
        // child's: its thread is gone, so the child asks again.
        let _ = self.pooler.compare_exchange(
            POOLER_PROBING,
            POOLER_UNKNOWN,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.released.store(0, Ordering::Release);
        self.lock.reset_in_child();
        n
    }
}

/// What the pooler probe found.
enum Probe {
    Passed,
    Refused(String),
    /// It could not run (no second session to be had): ask again at the
    /// next connection.
    Inconclusive,
}

enum Choice {
    Idle(u32),
    Connect(u32),
    Recycle(u32),
    Wait,
}
