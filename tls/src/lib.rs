//! TLS to PostgreSQL, shared by the shim and the launcher: libpq's
//! `sslmode`, `sslrootcert`, `sslcert` and `sslkey` (the `postgres.ssl*`
//! settings) turned into a rustls client configuration, and the
//! tokio-postgres connectors that use it.
//!
//! rustls with the `ring` provider: no OpenSSL, no cmake, and it builds
//! for musl, so the shim Plex loads stays a library that needs only musl's
//! libc. What the modes check:
//!
//! | mode | TLS | certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow` | only if a plain connection is refused (the caller retries) | not checked |
//! | `prefer` | if the server offers it | not checked |
//! | `require` | always | not checked; with `sslrootcert` set, as `verify-ca` (libpq's rule) |
//! | `verify-ca` | always | signed by an authority of `sslrootcert` |
//! | `verify-full` | always | and names the host connected to |
//!
//! TLS is never used over a Unix socket (libpq does not either).
//!
//! Fork safety: a [`Tls`] is built once per process, before any fork the
//! shim cares about, and is read-only afterwards. Session resumption is
//! off, because rustls keeps resumption tickets behind a mutex that a
//! fork could copy locked into the child; a child that connects builds
//! its sessions from scratch and never touches the parent's (its
//! inherited connections are abandoned, their sockets quarantined).

#[cfg(feature = "postgres")]
pub mod client;
pub mod pooler;
mod stream;
mod verify;

use plex_pg_config::settings::{Postgres, SslMode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

#[cfg(feature = "postgres")]
pub use stream::MakeTls;
pub use stream::{Connect, ConnectFuture, HandshakeError, TlsStream};

/// The TLS side of `postgres.*`: which mode, and (unless `disable`) the
/// client configuration every TLS connection uses.
#[derive(Clone)]
pub struct Tls {
    mode: SslMode,
    config: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls({})", self.mode.name())
    }
}

impl Tls {
    /// Read the certificate files `pg` names and build the configuration.
    /// An error names the setting at fault and says what to do.
    pub fn new(pg: &Postgres) -> Result<Tls, String> {
        if pg.sslmode == SslMode::Disable {
            return Ok(Tls {
                mode: SslMode::Disable,
                config: None,
            });
        }
        // rustls deprecates ring's provider for its lack of post-quantum
        // key exchange; aws-lc-rs, which has it, needs cmake and does not
        // build for musl with musl-gcc. Classical key exchange is what
        // PostgreSQL's own OpenSSL-built libpq negotiates today.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> =
            match (pg.sslmode, pg.sslrootcert.is_empty()) {
                (SslMode::VerifyFull, _) => {
                    verify::full(roots(&pg.sslrootcert)?, provider.clone())?
                }
                (SslMode::VerifyCa, _) | (SslMode::Require, false) => {
                    verify::ca(roots(&pg.sslrootcert)?, provider.clone())?
                }
                _ => verify::unchecked(provider.clone()),
            };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = if pg.sslcert.is_empty() {
            builder.with_no_client_auth()
        } else {
            let (certs, key) = client_identity(&pg.sslcert, &pg.sslkey)?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                format!(
                    "postgres.sslcert and postgres.sslkey ({}, {}) do not make a client identity: {e}",
                    pg.sslcert, pg.sslkey
                )
            })?
        };
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Tls {
            mode: pg.sslmode,
            config: Some(Arc::new(config)),
        })
    }

    /// The configured mode.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// tokio-postgres's mode for a first attempt at a TCP server (`allow`
    /// starts plain; the caller tries TLS after a refusal).
    pub fn first_attempt(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Pg;
        match self.mode {
            SslMode::Disable | SslMode::Allow => Pg::Disable,
            SslMode::Prefer => Pg::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Pg::Require,
        }
    }

    /// The connector for one TCP server, `host` as configured (a name or
    /// an address: what `verify-full` matches the certificate against).
    pub fn connect_to(&self, host: &str) -> Result<Connect, String> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host:?} cannot be checked against a certificate: {e}"))?;
        Ok(Connect::new(self.config.clone(), name))
    }

    /// A `MakeTlsConnect` for the `postgres` crate (the launcher's checks).
    #[cfg(feature = "postgres")]
    pub fn make(&self) -> MakeTls {
        MakeTls::new(self.config.clone())
    }
}

/// The authorities of `sslrootcert`: a PEM file, or `system`.
fn roots(sslrootcert: &str) -> Result<Arc<RootCertStore>, String> {
    let mut store = RootCertStore::empty();
    if sslrootcert == "system" {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Err(format!(
                "postgres.sslrootcert = system, but no certificate authority was found in the system's store{why} (set SSL_CERT_FILE, or name a PEM file)"
            ));
        }
    } else {
        let certs = CertificateDer::pem_file_iter(sslrootcert)
            .map_err(|e| format!("cannot read postgres.sslrootcert ({sslrootcert}): {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("postgres.sslrootcert ({sslrootcert}) is not PEM: {e}"))?;
        let (added, _) = store.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "postgres.sslrootcert ({sslrootcert}) holds no certificate (a PEM file with BEGIN CERTIFICATE blocks)"
            ));
        }
    }
    Ok(Arc::new(store))
}

/// The client's certificate chain and key. The key must be readable by
/// its owner only (libpq's rule: 0600, or 0640 when root owns it).
fn client_identity(
    sslcert: &str,
    sslkey: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs = CertificateDer::pem_file_iter(sslcert)
        .map_err(|e| format!("cannot read postgres.sslcert ({sslcert}): {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("postgres.sslcert ({sslcert}) is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("postgres.sslcert ({sslcert}) holds no certificate"));
    }
    let meta = std::fs::metadata(sslkey)
        .map_err(|e| format!("cannot read postgres.sslkey ({sslkey}): {e}"))?;
    let mode = meta.mode() & 0o777;
    let allowed = if meta.uid() == 0 { 0o640 } else { 0o600 };
    if mode & !allowed != 0 {
        return Err(format!(
            "postgres.sslkey ({sslkey}) is readable by others (mode {mode:04o}): chmod {allowed:04o} it"
        ));
    }
    let key = PrivateKeyDer::from_pem_file(sslkey)
        .map_err(|e| format!("postgres.sslkey ({sslkey}) holds no private key in PEM: {e}"))?;
    Ok((certs, key))
}
