//! One PostgreSQL connection: our socket, tokio-postgres's client and I/O
//! future, driven synchronously on the caller's thread, and a cache of
//! prepared statements.

use super::drive::{block_on, block_on_alone, Flag, Pump, Stop};
use super::socket::{Readiness, Socket, SocketFd, SocketRecord};
use super::types::{widen, Column, Param};
use crate::error::{self, Error, Result};
use crate::sys::{SQLITE_CANTOPEN, SQLITE_IOERR};
use plex_pg_config::settings::SslMode;
use plex_pg_config::settings::{Endpoint, Postgres, SessionAttrs};
use plex_pg_tls::{HandshakeError, Tls};
use socket2::{SockAddr, SockRef, TcpKeepalive};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Connection, RowStream, Statement};

/// The stream under a connection: plain or TLS, decided at start-up.
type Stream = plex_pg_tls::TlsStream<Socket>;

/// Why a connection attempt failed, and whether trying again may help.
#[derive(Debug)]
pub enum ConnectError {
    /// The server is down, starting, or busy: retry with backoff.
    Retry(Error),
    /// Wrong password, missing database …: retrying cannot help.
    Fatal(Error),
}

impl ConnectError {
    pub fn error(&self) -> &Error {
        match self {
            ConnectError::Retry(e) | ConnectError::Fatal(e) => e,
        }
    }
}

pub struct PgConn {
    /// Shared with the writes in flight, which own their futures.
    client: Arc<Client>,
    connection: Pin<Box<Connection<Socket, Stream>>>,
    fd: RawFd,
    inode: u64,
    readiness: Arc<Readiness>,
    flag: Arc<Flag>,
    statements: StatementCache,
    broken: bool,
    /// Writes sent and not yet answered, oldest first (see
    /// [`PgConn::send_write`]).
    in_flight: VecDeque<InFlight>,
}

/// What PostgreSQL answered to a write: its rows (the hidden rowid) and
/// the count of rows it changed.
pub type Answer =
    std::result::Result<(Vec<tokio_postgres::Row>, Option<u64>), tokio_postgres::Error>;

/// A request that owns everything it needs (the client, the statement,
/// the values), so it can stay in flight between calls.
type Work = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// A write in flight: its request, until answered, then its answer; and
/// how its answer is read (`None`: nothing to read, a `BEGIN`).
struct InFlight {
    work: Option<Work>,
    answer: Option<Answer>,
    shape: Option<crate::connection::Shape>,
}

/// The most writes left in flight on a connection: the next one waits
/// for their answers first, so what they hold stays bounded.
pub const MAX_IN_FLIGHT: usize = 256;

/// Borrows of a connection's parts, so a future can borrow the client
/// while the driver polls the I/O future.
pub struct Driver<'a> {
    connection: &'a mut Pin<Box<Connection<Socket, Stream>>>,
    fd: RawFd,
    readiness: &'a Readiness,
    flag: &'a Arc<Flag>,
    broken: &'a mut bool,
}

struct ConnectionPump<'a>(&'a mut Pin<Box<Connection<Socket, Stream>>>);

impl Pump for ConnectionPump<'_> {
    fn pump(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<std::result::Result<(), tokio_postgres::Error>> {
        self.0.as_mut().poll(cx)
    }
}

impl Driver<'_> {
    /// Run `fut` to completion, driving the connection's I/O meanwhile.
    pub fn run<T>(
        &mut self,
        fut: impl Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        let result = self.drive(fut)?;
        result.map_err(|e| self.pg_error(&e))
    }

    /// An error PostgreSQL returned; notes a lost connection.
    pub fn pg_error(&mut self, e: &tokio_postgres::Error) -> Error {
        if error::is_connection_lost(e) {
            *self.broken = true;
        }
        error::from_pg(e)
    }

    /// Run `fut` to completion; only a failure to drive the connection is
    /// an error here (what `fut` returns is the caller's).
    pub fn drive<F: Future>(&mut self, fut: F) -> Result<F::Output> {
        let mut pump = ConnectionPump(self.connection);
        match block_on(
            self.fd,
            &self.readiness.want_write,
            self.flag,
            &mut pump,
            fut,
            None,
        ) {
            Ok(v) => Ok(v),
            Err(stop) => {
                *self.broken = true;
                Err(match stop {
                    Stop::ConnectionEnded(Some(e)) => Error::new(
                        SQLITE_IOERR,
                        format!(
                            "the connection to PostgreSQL was lost: {}",
                            error::from_pg(&e)
                        ),
                    ),
                    Stop::ConnectionEnded(None) => {
                        Error::new(SQLITE_IOERR, "PostgreSQL closed the connection")
                    }
                    Stop::TimedOut => Error::new(SQLITE_IOERR, "timed out waiting for PostgreSQL"),
                    Stop::Io(e) => {
                        Error::new(SQLITE_IOERR, format!("waiting for PostgreSQL failed: {e}"))
                    }
                })
            }
        }
    }
}

impl PgConn {
    /// Connect to the first server in `cfg` that accepts the connection
    /// and fits `postgres.target_session_attrs` (libpq's rules: hosts in
    /// order, every address of each), with `schema` first on the search
    /// path and the session in `timezone` (the process's, so SQLite's
    /// `'localtime'` means the same). Each server's attempt (socket,
    /// start-up, authentication) is bounded by `cfg.connect_timeout`. The
    /// socket is published in `record` (a pool slot) from the moment it
    /// exists (see [`super::socket`]). TLS as `tls` (the pool's, built from
    /// `cfg` once) says.
    pub fn connect(
        cfg: &Postgres,
        tls: &Tls,
        schema: &str,
        timezone: &str,
        record: &'static SocketRecord,
    ) -> std::result::Result<PgConn, ConnectError> {
        let mut failures = Vec::new();
        let mut retry = false;
        for endpoint in cfg.endpoints() {
            let first = if endpoint.is_unix_socket() {
                PgSslMode::Disable // never TLS over a Unix socket (libpq's rule)
            } else {
                tls.first_attempt()
            };
            let mut attempt =
                Self::connect_to(cfg, tls, first, &endpoint, schema, timezone, record);
            // `allow`: plain first, TLS when the server refused plain.
            if tls.mode() == SslMode::Allow
                && !endpoint.is_unix_socket()
                && matches!(attempt, Err(ConnectError::Fatal(_)))
            {
                attempt = Self::connect_to(
                    cfg,
                    tls,
                    PgSslMode::Require,
                    &endpoint,
                    schema,
                    timezone,
                    record,
                );
            }
            match attempt {
                Ok(conn) => return Ok(conn),
                Err(e) => {
                    retry |= matches!(e, ConnectError::Retry(_));
                    failures.push(e);
                }
            }
        }
        if failures.len() == 1 {
            return Err(failures.remove(0));
        }
        // Several servers: the next round may find one (a standby being
        // promoted, a primary restarting) unless every one refused for
        // good.
        let first = failures[0].error().code;
        let message = failures
            .iter()
            .map(|f| f.error().message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let e = Error::new(first, message);
        Err(if retry {
            ConnectError::Retry(e)
        } else {
            ConnectError::Fatal(e)
        })
    }

    /// One server of `cfg`'s list, with TLS as `ssl` says.
    #[allow(clippy::too_many_arguments)]
    fn connect_to(
        cfg: &Postgres,
        tls: &Tls,
        ssl: PgSslMode,
        endpoint: &Endpoint,
        schema: &str,
        timezone: &str,
        record: &'static SocketRecord,
    ) -> std::result::Result<PgConn, ConnectError> {
        let at = endpoint.to_string();
        let deadline = Instant::now() + cfg.connect_timeout;
        let fd = open_socket(cfg, endpoint, record, deadline)?;
        let inode = fd.inode();
        let (socket, readiness) = Socket::new(fd);
        let raw = socket.raw();
        let mut config = tokio_postgres::Config::new();
        config
            .user(&cfg.user)
            .dbname(&cfg.database)
            .application_name("plex-pg");
        if !cfg.password.is_empty() {
            config.password(cfg.password.expose());
        }
        config.ssl_mode(ssl);
        let name = if endpoint.is_unix_socket() {
            "localhost"
        } else {
            endpoint.host.as_str()
        };
        let connector = tls
            .connect_to(name)
            .map_err(|e| ConnectError::Fatal(Error::new(SQLITE_CANTOPEN, e)))?;
        let handshake_started = connector.handshake_started();
        let startup = block_on_alone(
            raw,
            &readiness.want_write,
            config.connect_raw(socket, connector),
            Some(deadline),
        );
        let (client, connection) = match startup {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                let plaintext = !handshake_started.load(std::sync::atomic::Ordering::Acquire);
                let refused_tls = ssl == PgSslMode::Require && plaintext;
                return Err(classify(cfg, &at, &e, plaintext, refused_tls));
            }
            Err(Stop::TimedOut) => {
                return Err(ConnectError::Retry(Error::new(
                    SQLITE_CANTOPEN,
                    format!(
                        "PostgreSQL at {at} did not complete the start-up within {} ms",
                        cfg.connect_timeout.as_millis()
                    ),
                )))
            }
            Err(other) => {
                return Err(ConnectError::Retry(Error::new(
                    SQLITE_CANTOPEN,
                    format!("connecting to PostgreSQL at {at} failed: {other:?}"),
                )))
            }
        };
        let mut conn = PgConn {
            client: Arc::new(client),
            connection: Box::pin(connection),
            fd: raw,
            inode,
            readiness,
            flag: Arc::new(Flag::default()),
            statements: StatementCache::default(),
            broken: false,
            in_flight: VecDeque::new(),
        };
        // The schema and time zone are set with SET rather than in the
        // start-up packet's `options`: PgBouncer (1.18, Debian 12's) refuses
        // a start-up that carries `options`, or, told to ignore it, would
        // drop the settings without a word.
        if let Err(e) = conn.batch(&session_settings(schema, timezone)) {
            conn.close();
            return Err(ConnectError::Retry(Error::new(
                SQLITE_CANTOPEN,
                format!(
                    "PostgreSQL at {at} accepted the connection but setting the schema and time zone failed: {}",
                    e.message
                ),
            )));
        }
        if cfg.target_session_attrs == SessionAttrs::ReadWrite && conn.read_only()? {
            conn.close();
            return Err(ConnectError::Retry(Error::new(
                SQLITE_CANTOPEN,
                format!(
                    "PostgreSQL at {at} accepts no writes (a standby, or default_transaction_read_only is on); postgres.target_session_attrs is read-write"
                ),
            )));
        }
        Ok(conn)
    }

    /// `pg_backend_pid()` with `sql` (the pooler probe's steps, see
    /// `plex_pg_tls::pooler`); an error as its text.
    pub fn backend_pid(&mut self, sql: &str) -> std::result::Result<i32, String> {
        let (client, mut d) = self.parts();
        let rows = d.run(client.simple_query(sql)).map_err(|e| e.message)?;
        rows.iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
                _ => None,
            })
            .ok_or_else(|| "pg_backend_pid() gave no row".to_string())
    }

    /// Whether the server is read-only for this session: from what it
    /// reported at start-up (PostgreSQL 14 and later report
    /// `in_hot_standby` and `default_transaction_read_only`), else by
    /// asking (`SHOW transaction_read_only`, as libpq does).
    fn read_only(&mut self) -> std::result::Result<bool, ConnectError> {
        let reported = |name| self.connection.parameter(name).map(|v| v == "on");
        if let (Some(standby), Some(read_only)) = (
            reported("in_hot_standby"),
            reported("default_transaction_read_only"),
        ) {
            return Ok(standby || read_only);
        }
        let (client, mut d) = self.parts();
        let rows = d
            .run(client.simple_query("SHOW transaction_read_only"))
            .map_err(ConnectError::Retry)?;
        Ok(rows.iter().any(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0) == Some("on"),
            _ => false,
        }))
    }

    /// The socket's fd and inode (for reports and the fork handler).
    pub fn socket(&self) -> (RawFd, u64) {
        (self.fd, self.inode)
    }

    /// True once the connection has failed for good.
    pub fn is_broken(&self) -> bool {
        self.broken || self.client.is_closed()
    }

    pub fn parts(&mut self) -> (&Client, Driver<'_>) {
        (
            &*self.client,
            Driver {
                connection: &mut self.connection,
                fd: self.fd,
                readiness: &self.readiness,
                flag: &self.flag,
                broken: &mut self.broken,
            },
        )
    }

    /// Run statements with the simple protocol (transaction control,
    /// DDL without parameters).
    pub fn batch(&mut self, sql: &str) -> Result<()> {
        let (client, mut d) = self.parts();
        d.run(client.batch_execute(sql))
    }

    /// Prepare `sql` (cached): parameter types as PostgreSQL infers them,
    /// widened (int2/int4 → int8, float4 → float8). `epoch` is the
    /// schema's epoch: a new one empties the cache.
    pub fn prepare(&mut self, sql: &str, epoch: u64, cache_size: usize) -> Result<Statement> {
        if let Some(st) = self.statements.get(sql, epoch) {
            return Ok(st);
        }
        let (client, mut d) = self.parts();
        let first = d.run(client.prepare(sql))?;
        let widened: Vec<Type> = first.params().iter().map(widen).collect();
        let st = if widened.as_slice() != first.params() {
            d.run(client.prepare_typed(sql, &widened))?
        } else {
            first
        };
        self.statements.insert(sql, st.clone(), epoch, cache_size);
        Ok(st)
    }

    /// The prepared statement for `sql`, if the cache holds it (no I/O).
    pub fn cached_statement(&mut self, sql: &str, epoch: u64) -> Option<Statement> {
        self.statements.get(sql, epoch)
    }

    /// How many writes are in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Send a write without waiting for its answer: its request is queued
    /// and flushed to the socket, and the answer is read later, in order,
    /// by [`PgConn::collect_in_flight`]. Only for writes that cannot fail
    /// (`atomicity`), in a transaction. Every other use of the connection
    /// must collect the answers first (the caller's rule: see
    /// `DbState::settle`). An error here is a connection that failed.
    pub fn send_write(
        &mut self,
        st: &Statement,
        params: Vec<crate::value::Value>,
        shape: crate::connection::Shape,
    ) -> Result<()> {
        let client = self.client.clone();
        let st = st.clone();
        let work: Work = Box::pin(async move {
            let params: Vec<Param<'_>> = params.iter().map(Param).collect();
            let mut rows = Box::pin(client.query_raw(&st, params.iter()).await?);
            let mut got = Vec::new();
            while let Some(row) =
                std::future::poll_fn(|cx| futures_core::Stream::poll_next(rows.as_mut(), cx)).await
            {
                got.push(row?);
            }
            Ok((got, rows.rows_affected()))
        });
        self.push(work, Some(shape))
    }

    /// Send simple-protocol statements (a deferred `BEGIN`) ahead of
    /// writes in flight, as [`PgConn::send_write`].
    pub fn send_batch(&mut self, sql: &'static str) -> Result<()> {
        let client = self.client.clone();
        let work: Work = Box::pin(async move {
            client.batch_execute(sql).await?;
            Ok((Vec::new(), None))
        });
        self.push(work, None)
    }

    /// Queue `work` and drive the connection until its request is on the
    /// socket (nothing left to write). The answers that arrive meanwhile
    /// are taken by their requests, so the server is never held up by a
    /// full socket.
    fn push(&mut self, work: Work, shape: Option<crate::connection::Shape>) -> Result<()> {
        self.in_flight.push_back(InFlight {
            work: Some(work),
            answer: None,
            shape,
        });
        let (in_flight, mut d) = self.in_flight_and_driver();
        let readiness: &Readiness = d.readiness;
        let want_write = &readiness.want_write;
        let mut first = true;
        let sent = std::future::poll_fn(|cx| {
            poll_in_flight(in_flight, cx);
            if first {
                // The request is queued; poll again after the connection
                // was pumped (it writes then), without sleeping.
                first = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if want_write.load(std::sync::atomic::Ordering::Relaxed) {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        });
        d.drive(sent)
    }

    /// The writes in flight beside a driver of the connection, so a future
    /// polling them can be driven.
    fn in_flight_and_driver(&mut self) -> (&mut VecDeque<InFlight>, Driver<'_>) {
        (
            &mut self.in_flight,
            Driver {
                connection: &mut self.connection,
                fd: self.fd,
                readiness: &self.readiness,
                flag: &self.flag,
                broken: &mut self.broken,
            },
        )
    }

    /// Wait for every write in flight to be answered: their answers in
    /// the order they were sent, each with its shape. An error here is a
    /// connection that failed (the answers are then lost).
    pub fn collect_in_flight(&mut self) -> Result<Vec<(Answer, Option<crate::connection::Shape>)>> {
        if self.in_flight.is_empty() {
            return Ok(Vec::new());
        }
        let (in_flight, mut d) = self.in_flight_and_driver();
        let all = std::future::poll_fn(|cx| {
            if poll_in_flight(in_flight, cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        let driven = d.drive(all);
        let in_flight = std::mem::take(&mut self.in_flight);
        driven?;
        Ok(in_flight
            .into_iter()
            .filter_map(|f| f.answer.map(|a| (a, f.shape)))
            .collect())
    }

    /// Drop the writes in flight without reading their answers
    /// (tokio-postgres skips them when they arrive): for a connection
    /// whose transaction is being thrown away.
    pub fn drop_in_flight(&mut self) {
        self.in_flight.clear();
    }

    /// Forget a prepared statement PostgreSQL refused to reuse (its result
    /// type changed under it after DDL).
    pub fn forget_statement(&mut self, sql: &str) {
        self.statements.map.remove(sql);
    }

    /// Start a query; rows are then read one at a time with
    /// [`PgConn::next_row`], so a large result is never held whole.
    pub fn query(&mut self, st: &Statement, params: &[Param<'_>]) -> Result<Pin<Box<RowStream>>> {
        let (client, mut d) = self.parts();
        Ok(Box::pin(d.run(client.query_raw(st, params.iter()))?))
    }

    /// The next row of a query started with [`PgConn::query`].
    pub fn next_row(
        &mut self,
        rows: &mut Pin<Box<RowStream>>,
    ) -> Result<Option<tokio_postgres::Row>> {
        let (_, mut d) = self.parts();
        d.run(std::future::poll_fn(
            |cx| match futures_core::Stream::poll_next(rows.as_mut(), cx) {
                Poll::Ready(Some(Ok(row))) => Poll::Ready(Ok(Some(row))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Err(e)),
                Poll::Ready(None) => Poll::Ready(Ok(None)),
                Poll::Pending => Poll::Pending,
            },
        ))
    }

    /// Run a statement that returns no rows; the number of rows it changed.
    pub fn execute(&mut self, st: &Statement, params: &[Param<'_>]) -> Result<u64> {
        let (client, mut d) = self.parts();
        d.run(client.execute_raw(st, params.iter()))
    }

    /// A catalog query with text parameters; every value as text. The
    /// query is prepared once per connection (cached like any statement).
    pub fn query_text(
        &mut self,
        sql: &str,
        params: &[&str],
        epoch: u64,
        cache_size: usize,
    ) -> Result<Vec<Vec<Option<String>>>> {
        let st = self.prepare(sql, epoch, cache_size.max(1))?;
        let values: Vec<crate::value::Value> = params
            .iter()
            .map(|p| crate::value::Value::Text(p.to_string()))
            .collect();
        let args: Vec<Param<'_>> = values.iter().map(Param).collect();
        let mut rows = self.query(&st, &args)?;
        let mut out = Vec::new();
        while let Some(row) = self.next_row(&mut rows)? {
            out.push(
                (0..row.len())
                    .map(|i| cell_text(&row, i))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        Ok(out)
    }

    /// Close politely: tell the server (Terminate), then close the socket.
    /// Never call this for a connection inherited across fork.
    pub fn close(self) {
        let PgConn {
            client,
            mut connection,
            fd,
            readiness,
            flag,
            in_flight,
            ..
        } = self;
        // The writes in flight hold the client too: it must go with them
        // for the connection to say goodbye.
        drop(in_flight);
        drop(client);
        let mut pump = ConnectionPump(&mut connection);
        let _ = block_on(
            fd,
            &readiness.want_write,
            &flag,
            &mut pump,
            std::future::pending::<()>(),
            Some(Instant::now() + Duration::from_millis(200)),
        );
    }
}

/// Poll every write in flight not answered yet, oldest first; true when
/// all are answered.
fn poll_in_flight(in_flight: &mut VecDeque<InFlight>, cx: &mut Context<'_>) -> bool {
    let mut done = true;
    for f in in_flight.iter_mut() {
        if let Some(work) = f.work.as_mut() {
            match work.as_mut().poll(cx) {
                Poll::Ready(answer) => {
                    f.answer = Some(answer);
                    f.work = None;
                }
                Poll::Pending => done = false,
            }
        }
    }
    done
}

/// The session settings every connection starts with: `schema` first on
/// the search path (a plain lowercase name, validated by the
/// configuration) and the session in `timezone`, as string literals, so
/// they mean what `-c search_path=… -c TimeZone=…` in the start-up meant.
fn session_settings(schema: &str, timezone: &str) -> String {
    let literal = |v: &str| format!("'{}'", v.replace('\'', "''"));
    format!(
        "SET search_path = {}; SET TimeZone = {}",
        literal(schema),
        literal(timezone)
    )
}

/// Column `i` of `row` as text (NULL as None).
pub fn cell_text(row: &tokio_postgres::Row, i: usize) -> Result<Option<String>> {
    let Column(cell) = row
        .try_get::<_, Column>(i)
        .map_err(|e| error::from_pg(&e))?;
    let v = crate::row::RowValue::new(cell);
    Ok(v.blob().map(|b| String::from_utf8_lossy(b).into_owned()))
}

/// What a failed start-up means. `plaintext`: no TLS handshake started
/// (the start-up went in the clear). `refused_tls`: TLS was required and
/// the handshake never started, so whatever failed happened at the
/// SSLRequest. Decided by SQLSTATE and reporting routine, never by the
/// server's message text.
fn classify(
    cfg: &Postgres,
    at: &str,
    e: &tokio_postgres::Error,
    plaintext: bool,
    refused_tls: bool,
) -> ConnectError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let msg = |what: &str| {
            Error::new(
                SQLITE_CANTOPEN,
                format!(
                    "PostgreSQL at {at} refused the connection: {} ({what})",
                    db.message()
                ),
            )
        };
        return match code {
            // pg_hba.conf had no entry for a start-up in the clear: a
            // `hostssl`-only role is the usual cause.
            "28000" if plaintext && db.routine() == Some("ClientAuthentication") => ConnectError::Fatal(msg(
                "pg_hba.conf refuses this role in the clear: if the server accepts it only over TLS, set postgres.sslmode to prefer or stricter",
            )),
            "28P01" | "28000" => {
                ConnectError::Fatal(msg("check postgres.user and postgres.password"))
            }
            "3D000" => ConnectError::Fatal(msg("create the database, or fix postgres.database")),
            "57P03" | "53300" | "57P01" => {
                ConnectError::Retry(msg("the server is starting, stopping or full"))
            }
            _ => ConnectError::Fatal(msg("see the server's log")),
        };
    }
    // A TLS handshake that failed: a certificate that does not verify, or
    // a server without TLS where TLS is required, fails the same way on
    // every attempt; an I/O failure during the handshake (or while asking
    // for TLS) may pass. Decided from what was asked and how far it went
    // (our connector's flag and error type), not from error text.
    let handshake = std::error::Error::source(e).and_then(|s| s.downcast_ref::<HandshakeError>());
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if handshake.is_some() || (refused_tls && !io && !e.is_closed()) {
        let why = handshake.map_or_else(
            || format!("the server does not support TLS ({e})"),
            |h| h.message.clone(),
        );
        let message = format!(
            "TLS with PostgreSQL at {at} failed: {why} (postgres.sslmode = {}; check postgres.sslmode and postgres.sslrootcert)",
            cfg.sslmode.name()
        );
        return if handshake.is_some_and(|h| h.retry) {
            ConnectError::Retry(Error::new(SQLITE_CANTOPEN, message))
        } else {
            ConnectError::Fatal(Error::new(SQLITE_CANTOPEN, message))
        };
    }
    // Not the server's word: an I/O failure or a closed connection may pass
    // (retry); anything else happened in the start-up itself (a password
    // asked for and none configured, an authentication exchange that
    // failed, a protocol error) and fails the same way on every attempt.
    if io || e.is_closed() {
        return ConnectError::Retry(Error::new(
            SQLITE_CANTOPEN,
            format!("connecting to PostgreSQL at {at} failed: {e}"),
        ));
    }
    let hint = if cfg.password.is_empty() {
        "if the server asks for a password, set postgres.password (PLEX_PG_PASSWORD): none is configured"
    } else {
        "check postgres.user and postgres.password"
    };
    ConnectError::Fatal(Error::new(
        SQLITE_CANTOPEN,
        format!("PostgreSQL at {at} refused the start-up: {e} ({hint})"),
    ))
}

/// A connected, non-blocking, close-on-exec socket to `endpoint`,
/// published in `record` from `socket(2)` on (a failed attempt's socket is
/// closed and withdrawn before the next is made). TCP sockets get
/// `TCP_NODELAY`, the configured keepalive and `TCP_USER_TIMEOUT`, so a
/// server that vanished (a failover, a cut network) is noticed in under a
/// minute instead of the kernel's two hours.
fn open_socket(
    cfg: &Postgres,
    endpoint: &Endpoint,
    record: &'static SocketRecord,
    deadline: Instant,
) -> std::result::Result<SocketFd, ConnectError> {
    let retry = |what: String| {
        ConnectError::Retry(Error::new(
            SQLITE_CANTOPEN,
            format!("cannot connect to PostgreSQL at {endpoint}: {what}; check that the server is running and that postgres.host and postgres.port point at it"),
        ))
    };
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    if let Some(path) = endpoint.socket_path() {
        let addr = SockAddr::unix(&path).map_err(|e| retry(e.to_string()))?;
        let fd = record
            .open(libc::AF_UNIX, libc::SOCK_STREAM)
            .map_err(|e| retry(e.to_string()))?;
        let sock = SockRef::from(&fd);
        // A Unix connect waits only while the server's accept queue is
        // full, bounded by the send timeout.
        sock.set_write_timeout(Some(left()))
            .map_err(|e| retry(e.to_string()))?;
        sock.connect(&addr).map_err(|e| retry(e.to_string()))?;
        sock.set_write_timeout(None)
            .map_err(|e| retry(e.to_string()))?;
        sock.set_nonblocking(true)
            .map_err(|e| retry(e.to_string()))?;
        return Ok(fd);
    }
    use std::net::ToSocketAddrs;
    let addrs = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| retry(format!("cannot resolve {}: {e}", endpoint.host)))?;
    let keepalive = TcpKeepalive::new()
        .with_time(cfg.keepalives_idle)
        .with_interval(cfg.keepalives_interval)
        .with_retries(cfg.keepalives_count);
    let mut last = String::from("no address");
    for addr in addrs {
        let domain = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let fd = record
            .open(domain, libc::SOCK_STREAM)
            .map_err(|e| retry(e.to_string()))?;
        let sock = SockRef::from(&fd);
        match sock.connect_timeout(&addr.into(), left()) {
            Ok(()) => {
                let _ = sock.set_tcp_nodelay(true);
                let _ = sock.set_tcp_keepalive(&keepalive);
                if !cfg.tcp_user_timeout.is_zero() {
                    let _ = sock.set_tcp_user_timeout(Some(cfg.tcp_user_timeout));
                }
                sock.set_nonblocking(true)
                    .map_err(|e| retry(e.to_string()))?;
                return Ok(fd);
            }
            Err(e) => last = format!("{addr}: {e}"), // fd closes and is withdrawn here
        }
    }
    Err(retry(last))
}

/// Prepared statements by text, least recently used evicted first.
#[derive(Default)]
struct StatementCache {
    map: HashMap<String, (Statement, u64)>,
    tick: u64,
    epoch: u64,
}

impl StatementCache {
    fn get(&mut self, sql: &str, epoch: u64) -> Option<Statement> {
        if epoch != self.epoch {
            self.map.clear();
            self.epoch = epoch;
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(sql).map(|(st, used)| {
            *used = tick;
            st.clone()
        })
    }

    fn insert(&mut self, sql: &str, st: Statement, epoch: u64, cap: usize) {
        if cap == 0 {
            return;
        }
        if epoch != self.epoch {
            self.map.clear();
            self.epoch = epoch;
        }
        if self.map.len() >= cap {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
        self.tick += 1;
        self.map.insert(sql.to_string(), (st, self.tick));
    }
}
