//! The tokio-postgres side: a `TlsConnect` for one server (the shim's
//! `connect_raw` on its own socket), a `MakeTlsConnect` for the `postgres`
//! crate (the launcher), and the encrypted stream both get.

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect};

/// Connects one server. `config` is `None` when TLS is off: the caller
/// then sets tokio-postgres's mode to `disable`, which never asks.
pub struct Connect {
    config: Option<Arc<ClientConfig>>,
    name: ServerName<'static>,
    started: Arc<std::sync::atomic::AtomicBool>,
}

impl Connect {
    pub(crate) fn new(config: Option<Arc<ClientConfig>>, name: ServerName<'static>) -> Connect {
        Connect {
            config,
            name,
            started: Arc::default(),
        }
    }

    /// Set once tokio-postgres starts the handshake, which it does only
    /// after the server agreed to TLS: a connection that asked for TLS
    /// (`require`) and failed without it set was refused TLS by the server
    /// (it answered the SSLRequest with `N`). Take it before the connector
    /// is given away.
    pub fn handshake_started(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.started.clone()
    }
}

/// A TLS handshake that failed. `retry` says whether trying again may
/// help: an I/O failure may pass, a certificate that does not verify or a
/// protocol the server refuses will not.
#[derive(Debug)]
pub struct HandshakeError {
    pub message: String,
    pub retry: bool,
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandshakeError {}

impl HandshakeError {
    fn from_io(e: io::Error) -> HandshakeError {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => HandshakeError {
                message: tls.to_string(),
                retry: false,
            },
            None => HandshakeError {
                message: e.to_string(),
                retry: true,
            },
        }
    }
}

/// The handshake in progress.
pub struct ConnectFuture<S>(Option<Pin<Box<tokio_rustls::Connect<S>>>>);

impl<S: AsyncRead + AsyncWrite + Unpin> Future for ConnectFuture<S> {
    type Output = Result<TlsStream<S>, HandshakeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(handshake) = self.0.as_mut() else {
            return Poll::Ready(Err(HandshakeError {
                message: "TLS is off (postgres.sslmode = disable)".into(),
                retry: false,
            }));
        };
        match handshake.as_mut().poll(cx) {
            Poll::Ready(Ok(stream)) => Poll::Ready(Ok(TlsStream(stream))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(HandshakeError::from_io(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsConnect<S> for Connect {
    type Stream = TlsStream<S>;
    type Error = HandshakeError;
    type Future = ConnectFuture<S>;

    fn connect(self, stream: S) -> ConnectFuture<S> {
        self.started
            .store(true, std::sync::atomic::Ordering::Release);
        ConnectFuture(self.config.map(|config| {
            Box::pin(tokio_rustls::TlsConnector::from(config).connect(self.name, stream))
        }))
    }
}

/// A [`Connect`] per server, for the `postgres` crate's own connect. An
/// empty host (a Unix socket) gets no TLS, as in libpq.
#[cfg(feature = "postgres")]
#[derive(Clone)]
pub struct MakeTls(Option<Arc<ClientConfig>>);

#[cfg(feature = "postgres")]
impl MakeTls {
    pub(crate) fn new(config: Option<Arc<ClientConfig>>) -> MakeTls {
        MakeTls(config)
    }
}

#[cfg(feature = "postgres")]
impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::MakeTlsConnect<S> for MakeTls {
    type Stream = TlsStream<S>;
    type TlsConnect = Connect;
    type Error = HandshakeError;

    fn make_tls_connect(&mut self, host: &str) -> Result<Connect, HandshakeError> {
        let unix = host.is_empty() || host.starts_with('/');
        let name = ServerName::try_from(if unix { "localhost" } else { host })
            .map_err(|e| HandshakeError {
                message: format!("{host:?} cannot be checked against a certificate: {e}"),
                retry: false,
            })?
            .to_owned();
        Ok(Connect::new(if unix { None } else { self.0.clone() }, name))
    }
}

/// The encrypted stream. Channel binding (`SCRAM-SHA-256-PLUS`) is not
/// offered: authentication uses plain `SCRAM-SHA-256`, which tokio-postgres
/// chooses by itself when the stream has no binding.
pub struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
