//! A blocking client (the `postgres` crate) connected as the shim connects:
//! every configured host in order, `target_session_attrs`, the role and
//! password, and TLS as `postgres.sslmode` says. For the launcher's
//! `check`, its guard and the import, so none of them builds its own.

use crate::Tls;
use plex_pg_config::settings::{Postgres, SessionAttrs, SslMode};
use std::time::Duration;

/// Connect to the servers of `pg` as `application_name`, each attempt
/// bounded by `pg.connect_timeout` but at most `timeout_cap`. An error
/// says what failed and which setting to look at.
pub fn connect(
    pg: &Postgres,
    application_name: &str,
    timeout_cap: Duration,
) -> Result<postgres::Client, String> {
    let tls = Tls::new(pg)?;
    let mut config = postgres::Config::new();
    for endpoint in pg.endpoints() {
        config.host(&endpoint.host).port(endpoint.port);
    }
    if pg.target_session_attrs == SessionAttrs::ReadWrite {
        config.target_session_attrs(postgres::config::TargetSessionAttrs::ReadWrite);
    }
    config
        .dbname(&pg.database)
        .user(&pg.user)
        .application_name(application_name)
        .connect_timeout(pg.connect_timeout.min(timeout_cap));
    if !pg.password.is_empty() {
        config.password(pg.password.expose());
    }
    // libpq never uses TLS over a Unix socket; `allow` (plain, then TLS
    // after a refusal) is `prefer` here (TLS, then plain): the `postgres`
    // crate has no second attempt.
    config.ssl_mode(if pg.endpoints().iter().all(|e| e.is_unix_socket()) {
        postgres::config::SslMode::Disable
    } else if tls.mode() == SslMode::Allow {
        postgres::config::SslMode::Prefer
    } else {
        tls.first_attempt()
    });
    config.connect(tls.make()).map_err(|e| {
        format!(
            "cannot connect to PostgreSQL at {} (database {:?}, user {:?}, postgres.sslmode = {}): {}",
            pg.endpoint(),
            pg.database,
            pg.user,
            pg.sslmode.name(),
            chain(&e)
        )
    })
}

/// An error and its causes, on one line ("db error" alone says nothing).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
