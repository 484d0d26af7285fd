//! PostgreSQL, synchronously: tokio-postgres's protocol and client,
//! driven on the calling thread over a socket the shim owns.
//!
//! - [`socket`]: the socket as tokio-postgres's byte stream.
//! - [`drive`]: the executor (a `poll(2)` loop, no runtime, no thread).
//! - [`conn`]: one connection, its prepared-statement cache, queries.
//! - [`types`]: SQLite values as parameters, PostgreSQL values as SQLite's.
//!
//! Why not the `postgres` crate's sync client: it builds a tokio runtime
//! per connection (an epoll fd and an eventfd a forked child would
//! inherit) and opens the socket itself (its fd unknown to us). The fork
//! handler must know, and neutralize, every fd a connection owns; here that
//! is exactly one socket.

pub mod conn;
pub mod drive;
pub mod socket;
pub mod types;

pub use conn::{ConnectError, PgConn};
