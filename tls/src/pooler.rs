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
//!    transaction open, so its server connection stays B's;
//! 3. A again: `SELECT pg_backend_pid()` gives `again`.
//!
//! On a server, or behind a pooler in session mode, A owns one backend for
//! its whole session: `again == first`, and no other live session has
//! it: `other != first`. Either equation failing is proof of pooling per
//! transaction; never a false positive. Behind PgBouncer in transaction
//! mode the backend A used in step 1 is the idle one used last, which
//! PgBouncer hands out first (LIFO, `server_round_robin = 0`, the
//! default): B gets it in step 2 and `other == first`. In statement mode B's
//! `BEGIN` itself is refused ("transaction blocks not allowed").

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

/// Run the probe with the blocking client: `Ok(Some(message))` when `pg`
/// leads to a pooler in transaction or statement mode, `Ok(None)` when
/// not, `Err` when it could not be run (a connection or a query failed).
#[cfg(feature = "postgres")]
pub fn probe(
    pg: &plex_pg_config::settings::Postgres,
    application_name: &str,
    timeout_cap: std::time::Duration,
) -> Result<Option<String>, String> {
    let at = pg.endpoint();
    let pid = |c: &mut postgres::Client, sql: &str| -> Result<i32, String> {
        c.simple_query(sql)
            .map_err(|e| crate::client::chain(&e))?
            .iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
                _ => None,
            })
            .ok_or_else(|| "pg_backend_pid() gave no row".to_string())
    };
    let mut a = crate::client::connect(pg, application_name, timeout_cap)?;
    let first = pid(&mut a, PID)?;
    let mut b = crate::client::connect(pg, application_name, timeout_cap)?;
    let other = match pid(&mut b, BEGIN_PID) {
        Ok(p) => p,
        Err(e) => {
            if let Some(why) = verdict_on_begin_error(&at, &e) {
                return Ok(Some(why));
            }
            // The `postgres` crate may see only "connection closed" where
            // the pooler said why: a server never ends a session for a
            // BEGIN, so a fresh session that again loses its connection
            // on BEGIN, while A still answers, is a pooler refusing
            // transaction blocks.
            let again = crate::client::connect(pg, application_name, timeout_cap)
                .and_then(|mut c| pid(&mut c, BEGIN_PID));
            return match again {
                Err(e2) if e2.contains("closed") && pid(&mut a, PID).is_ok() => {
                    Ok(verdict_on_begin_error(
                        &at,
                        &format!("transaction blocks not allowed: two sessions were closed on BEGIN ({e2})"),
                    ))
                }
                _ => Err(e),
            };
        }
    };
    let again = pid(&mut a, PID)?;
    let _ = b.simple_query("ROLLBACK");
    Ok(verdict(&at, first, other, again))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_or_session_pooling_passes() {
        assert_eq!(verdict("db", 10, 11, 10), None);
    }

    #[test]
    fn pooling_per_transaction_is_named_with_the_remedy() {
        let shared = verdict("db:6432", 10, 10, 11).unwrap();
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
