//! What a wss server needs: certificates (one, or several chosen by SNI), ALPN `http/1.1`,
//! TLS 1.2 and 1.3, a cap on concurrent handshakes; and the running server's copy of the rustls
//! configuration, swapped whole when the certificate is reloaded.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Where a certificate chain and its key come from.
#[derive(Clone)]
enum Source {
    Files { cert: PathBuf, key: PathBuf },
    Pem { cert: Vec<u8>, key: Vec<u8> },
}

impl Source {
    fn load(&self) -> io::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let (cert, key) = match self {
            Source::Files { cert, key } => (read(cert)?, read(key)?),
            Source::Pem { cert, key } => (cert.clone(), key.clone()),
        };
        let chain = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("certificate PEM: {e}")))?;
        if chain.is_empty() {
            return Err(invalid("no certificate in the PEM".into()));
        }
        let key =
            PrivateKeyDer::from_pem_slice(&key).map_err(|e| invalid(format!("key PEM: {e}")))?;
        Ok((chain, key))
    }
}

fn read(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// TLS settings of a server (`Config::tls`). Build with [`TlsConfig::from_pem_files`] or
/// [`TlsConfig::from_pem`]; add names served with other certificates with [`TlsConfig::sni`].
#[derive(Clone)]
pub struct TlsConfig {
    default: Source,
    by_name: Vec<(String, Source)>,
    /// TLS handshakes in progress per reactor; a connection past it is closed at once (they
    /// cost CPU). Default 256.
    pub max_handshakes: usize,
    /// The record handover: after a TLS 1.3 handshake rustls gives up the traffic keys and the
    /// reactor seals and opens records itself (ring's AEAD), keeping about a third less memory
    /// per idle connection. TLS 1.2 connections stay with rustls. Default off.
    pub record_handover: bool,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field(
                "sni_names",
                &self.by_name.iter().map(|n| &n.0).collect::<Vec<_>>(),
            )
            .field("max_handshakes", &self.max_handshakes)
            .field("record_handover", &self.record_handover)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// A certificate chain and its private key, as PEM files (read when the server starts, and
    /// again on [`crate::ServerHandle::reload_tls`]).
    pub fn from_pem_files(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> TlsConfig {
        TlsConfig::with(Source::Files {
            cert: cert.into(),
            key: key.into(),
        })
    }

    /// A certificate chain and its private key, as PEM bytes.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> TlsConfig {
        TlsConfig::with(Source::Pem {
            cert: cert.to_vec(),
            key: key.to_vec(),
        })
    }

    fn with(default: Source) -> TlsConfig {
        TlsConfig {
            default,
            by_name: Vec::new(),
            max_handshakes: 256,
            record_handover: false,
        }
    }

    /// Serves `name` (SNI, exact, case-insensitive) with this certificate chain and key (PEM
    /// bytes); other names, and clients that send no SNI, get the default certificate.
    #[must_use]
    pub fn sni(mut self, name: &str, cert: &[u8], key: &[u8]) -> TlsConfig {
        self.by_name.push((
            name.to_ascii_lowercase(),
            Source::Pem {
                cert: cert.to_vec(),
                key: key.to_vec(),
            },
        ));
        self
    }

    /// Sets `max_handshakes`.
    #[must_use]
    pub fn max_handshakes(mut self, n: usize) -> TlsConfig {
        self.max_handshakes = n;
        self
    }

    /// Sets `record_handover`.
    #[must_use]
    pub fn record_handover(mut self, on: bool) -> TlsConfig {
        self.record_handover = on;
        self
    }

    /// Loads the certificates and builds the rustls configuration: TLS 1.2 and 1.3, ALPN
    /// `http/1.1`, no client authentication.
    pub(crate) fn build(&self) -> io::Result<Arc<ServerConfig>> {
        let provider = Arc::new(provider());
        let certified = |s: &Source| -> io::Result<Arc<CertifiedKey>> {
            let (chain, key) = s.load()?;
            CertifiedKey::from_der(chain, key, &provider)
                .map(Arc::new)
                .map_err(|e| invalid(format!("certificate and key: {e}")))
        };
        let resolver = Resolver {
            default: certified(&self.default)?,
            by_name: self
                .by_name
                .iter()
                .map(|(n, s)| Ok((n.clone(), certified(s)?)))
                .collect::<io::Result<_>>()?,
        };
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("TLS versions: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        // The handover takes the traffic secrets from rustls.
        cfg.enable_secret_extraction = self.record_handover;
        Ok(Arc::new(cfg))
    }
}

#[allow(deprecated)] // ring's default provider: no post-quantum key exchange, by choice (see Cargo.toml).
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Picks the certificate by SNI, falling back to the default one.
#[derive(Debug)]
struct Resolver {
    default: Arc<CertifiedKey>,
    by_name: Vec<(String, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello.server_name().and_then(|sni| {
            self.by_name
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(sni))
                .map(|(_, k)| k.clone())
        });
        Some(chosen.unwrap_or_else(|| self.default.clone()))
    }
}

/// The running server's TLS configuration: read at each accept, swapped on reload. Shared by
/// the reactors and the handles.
#[derive(Clone)]
pub(crate) struct TlsState {
    current: Arc<RwLock<Arc<ServerConfig>>>,
    source: Arc<Mutex<TlsConfig>>,
    pub(crate) max_handshakes: usize,
    pub(crate) record_handover: bool,
}

impl TlsState {
    pub(crate) fn new(cfg: &TlsConfig) -> io::Result<TlsState> {
        Ok(TlsState {
            current: Arc::new(RwLock::new(cfg.build()?)),
            source: Arc::new(Mutex::new(cfg.clone())),
            max_handshakes: cfg.max_handshakes,
            record_handover: cfg.record_handover,
        })
    }

    /// The configuration for a new connection.
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the certificates again (from their files) and serves new connections with them;
    /// connections already open keep theirs. With `replace`, that configuration is loaded
    /// instead, and kept for the next reload. Nothing changes on an error.
    pub(crate) fn reload(&self, replace: Option<TlsConfig>) -> io::Result<()> {
        let mut source = match self.source.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let cfg = replace.unwrap_or_else(|| source.clone());
        let built = cfg.build()?;
        match self.current.write() {
            Ok(mut c) => *c = built,
            Err(poisoned) => *poisoned.into_inner() = built,
        }
        *source = cfg;
        Ok(())
    }
}
