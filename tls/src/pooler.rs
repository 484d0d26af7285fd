//! Telling a connection pooler in transaction (or statement) pooling mode
//! from a server, or a pooler in session mode, in front of which plex-pg
//! works. Shared by the shim (at its first connection) and the launcher
//! (`check`, and at start), so both decide alike and say the same thing.
//!
//! plex-pg keeps session state on each connection: `search_path` and
//! `TimeZone`, set once after the start-up, and named prepared statements
//! that outlive transactions. A pooler that hands a client's statements to
//! whichever server connection is free at each transaction (PgBouncer's
//! `pool_mode = transaction` or `statement`) loses that state between
//! transactions: statements would run in the wrong schema, or fail with
//! "prepared statement does not exist". It is refused with a message that
//! says to use session pooling.
//!
//! The probe (two sessions, A and B, to the same servers):
//!
//! 1. A, outside a transaction: `SELECT pg_backend_pid()` gives `first`;
//! 2. B: `BEGIN; SELECT pg_backend_pid()` gives `other`, and B keeps the
//!    transaction open, so its server connection stays B's (B asks once
//!    more: a transaction keeps its backend);
//! 3. A again: `SELECT pg_backend_pid()` gives `again`.
//!
//! On a server, or behind a pooler in session mode, A owns one backend for
//! its whole session: `again == first`, and no other live session has
//! it: `other != first`. Either equation failing is proof of pooling per
//! transaction; never a false positive. Behind PgBouncer in transaction
//! mode the backend A used in step 1 is the idle one used last, which
//! PgBouncer hands out first (LIFO, `server_round_robin = 0`, the
//! default): B gets it in step 2 and `other == first`. In statement mode
//! PgBouncer refuses B's transaction block ("transaction blocks not
//! allowed") and closes B's session, at times after the reply to `BEGIN`
//! has arrived and at times with the reason lost on the way: a session
//! closed inside its transaction, or on `BEGIN` twice, while A still
//! answers, is statement pooling too (a server does neither).

/// What the probe's three answers prove: `Some(message)` when the
/// connection is pooled per transaction; `at` names the server list.
pub fn verdict(at: &str, first: i32, other: i32, again: i32) -> Option<String> {
    if other != first && again == first {
        return None;
    }
    Some(format!(
        "the connection to {at} is pooled per transaction: {} ({REMEDY})",
        if again != first {
            format!("one session's statements ran in backends {first} and then {again}")
        } else {
            format!("two sessions ran in the same backend {first} at once")
        }
    ))
}

/// The verdict when B's `BEGIN` failed with `error` (a pooler in statement
/// mode refuses transaction blocks); `None` when the failure says nothing
/// about pooling.
pub fn verdict_on_begin_error(at: &str, error: &str) -> Option<String> {
    let lower = error.to_ascii_lowercase();
    (lower.contains("statement pooling") || lower.contains("transaction blocks not allowed"))
        .then(|| format!("the connection to {at} is pooled per statement: {error} ({REMEDY})"))
}

/// What to do about it, in every message.
pub const REMEDY: &str = "plex-pg keeps session state (search_path, prepared statements) and needs session pooling: set pool_mode = session for this database in pgbouncer.ini, or point postgres.host at PostgreSQL itself";

/// The probe's SQL, step by step.
pub const PID: &str = "SELECT pg_backend_pid()";
pub const BEGIN_PID: &str = "BEGIN; SELECT pg_backend_pid()";

/// One session of the probe: its backend's pid after running `sql`, or
/// the error's text.
pub trait Session {
    fn pid(&mut self, sql: &str) -> Result<i32, String>;
}

/// What B's transaction showed.
enum Step {
    /// The pooler refused or ended B's transaction block: statement mode.
    Statement(String),
    /// B held one backend for its transaction; A asked again meanwhile.
    Held { other: i32, again: i32 },
}

fn closed(e: &str) -> bool {
    let lower = e.to_ascii_lowercase();
    lower.contains("closed") || lower.contains("lost")
}

/// B begins a transaction and asks its backend twice (a transaction keeps
/// one backend, except behind a pooler in statement mode, which refuses
/// or ends it); while B holds it, A asks again.
fn attempt<A: Session, B: Session>(a: &mut A, b: &mut B) -> Result<Step, String> {
    let other = match b.pid(BEGIN_PID) {
        Ok(p) => p,
        Err(e) if verdict_on_begin_error("", &e).is_some() => return Ok(Step::Statement(e)),
        Err(e) => return Err(e),
    };
    match b.pid(PID) {
        Ok(p) if p == other => {}
        Ok(p) => {
            return Ok(Step::Statement(format!(
                "one transaction ran in backends {other} and {p}: transaction blocks not allowed"
            )))
        }
        Err(e) if verdict_on_begin_error("", &e).is_some() => return Ok(Step::Statement(e)),
        // A server never ends a session inside a transaction for a
        // SELECT; a pooler in statement mode does (seen with PgBouncer
        // 1.18: the reply to BEGIN arrives, then the session is closed).
        Err(e) if closed(&e) && a.pid(PID).is_ok() => {
            return Ok(Step::Statement(format!(
            "the session was closed inside its transaction ({e}): transaction blocks not allowed"
        )))
        }
        Err(e) => return Err(e),
    }
    let again = a.pid(PID)?;
    Ok(Step::Held { other, again })
}

/// The probe (see the module's doc) with session A and sessions B opened
/// by `open_b` (at most two, one at a time: one whose connection was
/// closed on BEGIN is tried once more, since the reason may not have
/// reached the client): `Ok(Some(message))` when pooled per transaction or
/// statement, `Ok(None)` when not, `Err` when it could not be told.
pub fn run<A: Session, B: Session>(
    at: &str,
    a: &mut A,
    mut open_b: impl FnMut() -> Result<B, String>,
) -> Result<Option<String>, String> {
    let first = a.pid(PID)?;
    let step = {
        let mut b = open_b()?;
        attempt(a, &mut b)
    };
    let step = match step {
        Err(e) if closed(&e) => {
            let mut b = open_b()?;
            match attempt(a, &mut b) {
                Err(e2) if closed(&e2) && a.pid(PID).is_ok() => Ok(Step::Statement(format!(
                    "two sessions were closed on BEGIN ({e2}): transaction blocks not allowed"
                ))),
                other => other,
            }
        }
        other => other,
    }?;
    Ok(match step {
        Step::Statement(why) => verdict_on_begin_error(at, &why),
        Step::Held { other, again } => verdict(at, first, other, again),
    })
}

/// Run the probe with the blocking client: `Ok(Some(message))` when `pg`
/// leads to a pooler in transaction or statement mode, `Ok(None)` when
/// not, `Err` when it could not be run (a connection or a query failed).
#[cfg(feature = "postgres")]
pub fn probe(
    pg: &plex_pg_config::settings::Postgres,
    application_name: &str,
    timeout_cap: std::time::Duration,
) -> Result<Option<String>, String> {
    struct Blocking(postgres::Client);
    impl Session for Blocking {
        fn pid(&mut self, sql: &str) -> Result<i32, String> {
            self.0
                .simple_query(sql)
                .map_err(|e| crate::client::chain(&e))?
                .iter()
                .find_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
                    _ => None,
                })
                .ok_or_else(|| "pg_backend_pid() gave no row".to_string())
        }
    }
    let connect = || crate::client::connect(pg, application_name, timeout_cap).map(Blocking);
    let mut a = connect()?;
    run(&pg.endpoint(), &mut a, connect)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session answering from a script of results, one per query.
    struct Scripted(std::collections::VecDeque<Result<i32, String>>);
    impl Session for Scripted {
        fn pid(&mut self, _sql: &str) -> Result<i32, String> {
            self.0.pop_front().unwrap_or(Err("no more answers".into()))
        }
    }
    fn scripted(answers: &[Result<i32, &str>]) -> Scripted {
        Scripted(
            answers
                .iter()
                .map(|r| r.map_err(|e| e.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_probe_on_a_server_in_transaction_and_in_statement_mode() {
        // A server: A keeps backend 10, B holds 11.
        let mut a = scripted(&[Ok(10), Ok(10)]);
        let mut bs = vec![scripted(&[Ok(11), Ok(11)])];
        assert_eq!(run("db", &mut a, || Ok(bs.remove(0))), Ok(None));
        // Transaction mode: B's transaction gets A's idle backend.
        let mut a = scripted(&[Ok(10), Ok(12)]);
        let mut bs = vec![scripted(&[Ok(10), Ok(10)])];
        let why = run("db", &mut a, || Ok(bs.remove(0))).unwrap().unwrap();
        assert!(why.contains("pooled per transaction"), "{why}");
        // Statement mode: the session is closed right after BEGIN's reply.
        let mut a = scripted(&[Ok(10), Ok(10)]);
        let mut bs = vec![scripted(&[Ok(10), Err("connection closed")])];
        let why = run("db", &mut a, || Ok(bs.remove(0))).unwrap().unwrap();
        assert!(why.contains("pooled per statement"), "{why}");
        // Statement mode, the reason lost: closed on BEGIN, twice.
        let mut a = scripted(&[Ok(10), Ok(10)]);
        let mut bs = vec![
            scripted(&[Err("connection closed")]),
            scripted(&[Err("connection closed")]),
        ];
        let why = run("db", &mut a, || Ok(bs.remove(0))).unwrap().unwrap();
        assert!(why.contains("pooled per statement"), "{why}");
        // A server that went away: no verdict either way.
        let mut a = scripted(&[Ok(10), Err("connection closed")]);
        let mut bs = vec![scripted(&[Ok(11), Err("connection closed")])];
        let open = || {
            if bs.is_empty() {
                Err("refused".to_string())
            } else {
                Ok(bs.remove(0))
            }
        };
        assert!(run("db", &mut a, open).is_err());
    }

    #[test]
    fn a_server_or_session_pooling_passes() {
        assert_eq!(verdict("db", 10, 11, 10), None);
    }

    #[test]
    fn pooling_per_transaction_is_named_with_the_remedy() {
        let shared = verdict("db:6432", 10, 10, 10).unwrap();
        assert!(shared.contains("same backend 10") && shared.contains("pool_mode = session"));
        let moved = verdict("db:6432", 10, 12, 11).unwrap();
        assert!(moved.contains("backends 10 and then 11"), "{moved}");
        let statement = verdict_on_begin_error(
            "db:6432",
            "db error: ERROR: transaction blocks not allowed in statement pooling mode",
        )
        .unwrap();
        assert!(statement.contains("pool_mode = session"));
        assert_eq!(verdict_on_begin_error("db", "connection reset"), None);
    }
}
