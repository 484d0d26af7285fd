//! The shim's process-wide state, created at the first routed open and
//! never before: a process that only uses other databases (every program
//! Plex starts inherits `LD_PRELOAD`) gets no thread, no connection, no
//! settings read.
//!
//! It holds the settings, the pool, the reporter, and the caches that
//! spare PostgreSQL round trips: per schema, what each statement text
//! translates to and which columns it returns; per column, its declared
//! SQLite type. [`Runtime::ready_lease`] is the one way to a connection
//! ready for a schema: this process's own pool, a lease, the schema
//! prepared. The routed handles are `registry`'s.
//!
//! It joins the fork handlers (`fork`) when created: its locks are held
//! across `fork()`, and a child empties the pool and tells the launcher.

use crate::atomicity::FastWrite;
use crate::error::{Error, Result};
use crate::fork::{self, Participant};
use crate::lock::{ForkLock, RawLock};
use crate::pg::PgConn;
use crate::pool::{Lease, Pool};
use crate::report::Reporter;
use crate::sys::{SQLITE_CANTOPEN, SQLITE_IOERR};
use crate::translate::{self, Translation};
use plex_pg_config::report::{HarmlessFd, MAX_REPORTED_FDS};
use plex_pg_config::Settings;
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;

/// What is known about one statement text in one schema.
pub struct Plan {
    pub translation: Translation,
    /// `sqlite3_bind_parameter_name`'s answers, by index.
    pub param_names: Vec<Option<CString>>,
    /// Result columns, when they could be learnt before running it.
    pub columns: Option<Arc<Columns>>,
}

/// Result columns: names and declared SQLite types, as C strings.
#[derive(Default)]
pub struct Columns {
    pub names: Vec<CString>,
    pub decltypes: Vec<Option<CString>>,
}

struct Schema {
    name: String,
    ready: bool,
    plans: HashMap<String, Arc<Plan>>,
    /// Per translated write: whether and how it runs without a savepoint
    /// (`atomicity`), emptied with the plans.
    fast_writes: HashMap<String, Option<Arc<FastWrite>>>,
}

pub struct Runtime {
    pub settings: Settings,
    /// Why the settings could not be read: every routed open then fails
    /// with it (logged once, at creation).
    pub init_error: Option<Error>,
    pub pool: Pool,
    pub reporter: &'static Reporter,
    /// Identifies this process's routed statements (see `registry`).
    pub secret: u64,
    schemas: ForkLock<Vec<Schema>>,
    decltypes: ForkLock<HashMap<(u32, i16), Option<CString>>>,
    /// Bumped by every schema change; connections drop prepared
    /// statements from an older epoch.
    epoch: AtomicU64,
}

static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(std::ptr::null_mut());
/// Serializes creation.
static INIT: ForkLock<()> = ForkLock::new(());

/// The runtime, if a routed database was ever opened in this process.
pub fn get() -> Option<&'static Runtime> {
    // SAFETY: set once, never freed.
    unsafe { RUNTIME.load(Ordering::Acquire).as_ref() }
}

/// The runtime, created on first call. Bad settings do not prevent it:
/// they are logged once, and every routed open fails with them
/// ([`Runtime::init_error`]).
/// The tally's sender: the pool's slots filled in, sent to the launcher
/// when there is one. Whether it went.
fn send_tally(t: &mut plex_pg_config::report::Tally) -> bool {
    let Some(rt) = get() else {
        return false;
    };
    if !rt.reporter.is_connected() {
        return false;
    }
    t.slots_in_use = rt.pool.open_count();
    t.slots_max = rt.pool.capacity();
    rt.reporter.tally(t);
    true
}

pub fn init() -> &'static Runtime {
    if let Some(rt) = get() {
        return rt;
    }
    let guard = INIT.lock();
    if let Some(rt) = get() {
        return rt;
    }
    let (settings, init_error) = match Settings::load(&|k| std::env::var(k).ok()) {
        Ok(s) => (s, None),
        Err(e) => {
            let err = Error::new(SQLITE_CANTOPEN, format!("plex-pg configuration error: {e}"));
            (Settings::default(), Some(err))
        }
    };
    if let Some(problem) = crate::log::init(&settings.log) {
        tracing::warn!("{problem}");
    }
    if let Some(err) = &init_error {
        tracing::error!(
            "{}; the library databases cannot be opened until it is fixed",
            err.message
        );
    }
    let (reporter, problem) = Reporter::from_env();
    let reporter: &'static Reporter = Box::leak(Box::new(reporter));
    if let Some(problem) = problem {
        tracing::warn!("{problem}");
    }
    crate::tally::set_sender(send_tally);
    let fork_handler = settings.shim.fork_handler;
    fork::configure(fork_handler);
    if !fork_handler {
        tracing::warn!(
            "PLEX_PG_FORK_HANDLER=0: the fork handler is OFF. A forked child keeps the parent's PostgreSQL connections and can corrupt them (the crash of January 2026). Use this only to reproduce that crash in tests."
        );
    }
    let pool = Pool::new(
        settings.pool.clone(),
        settings.postgres.clone(),
        local_timezone(),
        reporter,
    );
    tracing::info!(
        "plex-pg shim {} active: PostgreSQL at {} (database {}, schema {}), pool of {} (keeps {} idle)",
        env!("CARGO_PKG_VERSION"),
        settings.postgres.endpoint(),
        settings.postgres.database,
        settings.postgres.schema,
        settings.pool.max,
        settings.pool.size
    );
    reporter.hello(pool.capacity(), fork_handler);
    let rt = Box::new(Runtime {
        init_error,
        pool,
        reporter,
        secret: secret(),
        schemas: ForkLock::new(Vec::new()),
        decltypes: ForkLock::new(HashMap::new()),
        epoch: AtomicU64::new(1),
        settings,
    });
    RUNTIME.store(Box::into_raw(rt), Ordering::Release);
    fork::join(&FORK);
    drop(guard);
    get().unwrap()
}

/// The process's local time zone, as PostgreSQL names zones: `TZ`, else
/// the zone `/etc/localtime` links to, else Debian's `/etc/timezone`, else
/// UTC. Anything that is not a plain zone name is UTC (it goes into the
/// connection's start-up options).
fn local_timezone() -> String {
    let from_tz = std::env::var("TZ").ok().map(|tz| {
        let tz = tz.trim_start_matches(':').to_string();
        match tz.split_once("zoneinfo/") {
            Some((_, zone)) => zone.to_string(),
            None => tz,
        }
    });
    let from_link = || {
        let target = std::fs::read_link("/etc/localtime").ok()?;
        let target = target.to_str()?;
        Some(target.split_once("zoneinfo/")?.1.to_string())
    };
    let from_file = || {
        Some(
            std::fs::read_to_string("/etc/timezone")
                .ok()?
                .trim()
                .to_string(),
        )
    };
    let zone = from_tz
        .filter(|z| !z.is_empty())
        .or_else(from_link)
        .or_else(from_file)
        .unwrap_or_default();
    let plain = !zone.is_empty()
        && zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
    if plain {
        zone
    } else {
        "UTC".into()
    }
}

/// A number no other process shares, to mark this one's statements.
fn secret() -> u64 {
    let mut v = 0u64;
    // SAFETY: filling 8 bytes we own.
    let n = unsafe { libc::getrandom((&mut v as *mut u64).cast(), 8, libc::GRND_NONBLOCK) };
    if n != 8 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        v = t.as_nanos() as u64 ^ ((std::process::id() as u64) << 32);
    }
    v | 1
}

/// The runtime's part in fork safety (see `fork`). It joins once the
/// runtime exists, so every hook finds it.
static FORK: Participant = Participant {
    lock: || fork_locks().into_iter().flatten().for_each(RawLock::lock),
    unlock: || {
        fork_locks()
            .into_iter()
            .flatten()
            .rev()
            .for_each(RawLock::unlock)
    },
    reset_locks: || {
        fork_locks()
            .into_iter()
            .flatten()
            .for_each(RawLock::reset_in_child)
    },
    disown: |_| {
        if let Some(rt) = get() {
            rt.empty_pool();
        }
    },
};

/// The locks the fork handlers hold across `fork()`, in the order they are
/// taken. No code holds two of them at once. No allocation: the handlers
/// call it.
fn fork_locks() -> Option<[&'static RawLock; 5]> {
    let rt = get()?;
    Some([
        INIT.raw(),
        rt.schemas.raw(),
        rt.decltypes.raw(),
        rt.pool.lock(),
        crate::pg::socket::fork_lock(),
    ])
}

impl Runtime {
    /// In a forked child: empty the pool without touching the parent's
    /// connections, and tell the launcher (AfterFork). Async-signal-safe.
    fn empty_pool(&self) {
        // Not zero-filled: only the entries written are read, and filling
        // 4 KiB of stack would copy a page or two in the child for nothing.
        let mut done = [std::mem::MaybeUninit::<HarmlessFd>::uninit(); MAX_REPORTED_FDS];
        let n = self.pool.reset_in_child(fork::harmless_fd(), &mut done);
        // SAFETY: reset_in_child initialized the first n entries.
        let done = unsafe { std::slice::from_raw_parts(done.as_ptr() as *const HarmlessFd, n) };
        self.reporter
            .after_fork(self.pool.generation(), self.pool.open_count(), done);
    }

    /// A connection of this process's pool, ready for the schema: the one
    /// path to PostgreSQL for a routed database (the handle's own
    /// connection, planning without one, the check at open, maintenance).
    pub fn ready_lease(&'static self, schema_id: u32, schema: &str) -> Result<Lease> {
        fork::ensure_own_process()?;
        let mut lease = self.pool.acquire(schema_id, schema)?;
        let conn = lease
            .conn()
            .ok_or_else(|| Error::new(SQLITE_IOERR, "pool lease is stale"))?;
        self.ensure_schema(schema_id, conn)?;
        Ok(lease)
    }

    /// The number of a schema, registering it on first use.
    pub fn schema_id(&self, name: &str) -> u32 {
        let mut schemas = self.schemas.lock();
        if let Some(i) = schemas.iter().position(|s| s.name == name) {
            return i as u32;
        }
        schemas.push(Schema {
            name: name.to_string(),
            ready: false,
            plans: HashMap::new(),
            fast_writes: HashMap::new(),
        });
        (schemas.len() - 1) as u32
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// After DDL: every cached plan, declared type and prepared statement
    /// may be stale.
    pub fn schema_changed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for s in self.schemas.lock().iter_mut() {
            s.plans.clear();
            s.fast_writes.clear();
        }
        self.decltypes.lock().clear();
    }

    pub fn cached_plan(&self, schema_id: u32, sql: &str) -> Option<Arc<Plan>> {
        self.schemas
            .lock()
            .get(schema_id as usize)?
            .plans
            .get(sql)
            .cloned()
    }

    pub fn cache_plan(&self, schema_id: u32, sql: &str, plan: Arc<Plan>, epoch: u64) {
        if self.epoch() != epoch {
            return; // the schema changed while we were planning
        }
        if let Some(s) = self.schemas.lock().get_mut(schema_id as usize) {
            if s.plans.len() >= 4096 {
                s.plans.clear();
            }
            s.plans.insert(sql.to_string(), plan);
        }
    }

    /// What `atomicity::analyse` said about a translated write, if known
    /// in this schema epoch.
    pub fn cached_fast_write(&self, schema_id: u32, sql: &str) -> Option<Option<Arc<FastWrite>>> {
        self.schemas
            .lock()
            .get(schema_id as usize)?
            .fast_writes
            .get(sql)
            .cloned()
    }

    pub fn cache_fast_write(
        &self,
        schema_id: u32,
        sql: &str,
        verdict: Option<Arc<FastWrite>>,
        epoch: u64,
    ) {
        if self.epoch() != epoch {
            return;
        }
        if let Some(s) = self.schemas.lock().get_mut(schema_id as usize) {
            if s.fast_writes.len() >= 4096 {
                s.fast_writes.clear();
            }
            s.fast_writes.insert(sql.to_string(), verdict);
        }
    }

    /// Make sure the schema exists and holds the translator's helper
    /// functions: once per process and schema, under an advisory lock so
    /// concurrent processes do it once between them.
    pub fn ensure_schema(&self, schema_id: u32, conn: &mut PgConn) -> Result<()> {
        let name = {
            let schemas = self.schemas.lock();
            let s = &schemas[schema_id as usize];
            if s.ready {
                return Ok(());
            }
            s.name.clone()
        };
        bootstrap(conn, &name, self.epoch())?;
        if let Some(s) = self.schemas.lock().get_mut(schema_id as usize) {
            s.ready = true;
        }
        Ok(())
    }

    /// A column's declared SQLite type (cached).
    pub fn decltype(&self, conn: &mut PgConn, table: u32, column: i16) -> Result<Option<CString>> {
        if let Some(d) = self.decltypes.lock().get(&(table, column)) {
            return Ok(d.clone());
        }
        let rows = conn.query_text(
            translate::DECLTYPE_QUERY,
            &[&table.to_string(), &column.to_string()],
            self.epoch(),
            self.pool.settings().statement_cache as usize,
        )?;
        let d = rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .and_then(|s| CString::new(s).ok());
        self.decltypes.lock().insert((table, column), d.clone());
        Ok(d)
    }
}

fn bootstrap(conn: &mut PgConn, schema: &str, epoch: u64) -> Result<()> {
    let marker = format!("plex-pg bootstrap {}", translate::BOOTSTRAP_VERSION);
    let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
    conn.batch(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock(hashtext('plex-pg schema ' || '{}')); CREATE SCHEMA IF NOT EXISTS {quoted}",
        schema.replace('\'', "''")
    ))?;
    let result = (|| {
        let rows = conn.query_text(
            "SELECT coalesce(obj_description(oid, 'pg_namespace'), '') FROM pg_namespace WHERE nspname = $1",
            &[schema],
            epoch,
            1,
        )?;
        let current = rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default();
        if current != marker {
            tracing::info!("preparing schema {schema} for plex-pg ({marker})");
            for sql in translate::bootstrap_sql(schema) {
                conn.batch(&sql)?;
            }
            conn.batch(&format!(
                "COMMENT ON SCHEMA {quoted} IS '{}'",
                marker.replace('\'', "''")
            ))?;
        }
        conn.batch("COMMIT")
    })();
    if let Err(e) = result {
        let _ = conn.batch("ROLLBACK");
        return Err(Error::new(
            e.code,
            format!("preparing schema {schema} failed: {}", e.message),
        ));
    }
    Ok(())
}
