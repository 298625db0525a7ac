//! Optional TLS (rustls) for HTTPS and WSS, from a PEM certificate chain and key.
//!
//! Handshakes run in their own tasks and finished streams are handed to the HTTP server through
//! a queue, so a slow or silent client cannot hold up the accept loop; a handshake that takes
//! longer than [`HANDSHAKE_TIMEOUT`] is dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::error::{Result, ServerError};

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate and key, ready to serve.
#[derive(Clone)]
pub struct TlsSettings {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings").finish_non_exhaustive()
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Config(format!("{what}: {e}"))
}

impl TlsSettings {
    /// Reads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| bad(&format!("certificate {}", cert.display()), e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(&format!("certificate {}", cert.display()), e))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| bad(&format!("key {}", key.display()), e))?;
        Self::new(chain, key)
    }

    /// From a DER certificate chain and key.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Self> {
        if chain.is_empty() {
            return Err(ServerError::Config(
                "certificate file holds no certificate".into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("TLS versions", e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| bad("certificate and key", e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec(), crate::turn_tcp::ALPN_TURN.to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

/// A TCP listener that hands out TLS streams (for `axum::serve`).
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener` with these settings; a client that asks for ALPN
    /// `stun.turn` is handed to `turn` (or closed, without one).
    pub fn new(
        listener: TcpListener,
        tls: &TlsSettings,
        turn: Option<crate::turn_tcp::TurnStreams>,
    ) -> Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(tls.config.clone());
        let (tx, ready) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let (mut tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                crate::accepted(&mut tcp);
                let (acceptor, tx, turn) = (acceptor.clone(), tx.clone(), turn.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls))
                            if tls.get_ref().1.alpn_protocol()
                                == Some(crate::turn_tcp::ALPN_TURN) =>
                        {
                            match (&turn, tls.get_ref().0.local_addr()) {
                                (Some(turn), Ok(local)) => {
                                    if !turn.hand_over((Box::new(tls), local, peer)) {
                                        tracing::debug!("TURN over TLS from {peer}: TURN server busy or stopped");
                                    }
                                }
                                _ => tracing::debug!(
                                    "TURN over TLS from {peer}: no embedded TURN server"
                                ),
                            }
                        }
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer}: timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
