//! The application's answer to an upgrade request: accept (with data, a subprotocol, headers),
//! reject (with a status, headers and a body), or answer later.

/// The answer to an upgrade request.
pub enum Upgrade<D> {
    /// Accept, with the connection's data.
    Accept(Accept<D>),
    /// Refuse with an HTTP status (e.g. 401, 403, 429), extra headers and a body; the connection
    /// closes after it.
    Reject {
        /// HTTP status code.
        status: u16,
        /// Extra response headers (values with CR or LF are skipped).
        headers: Vec<(String, String)>,
        /// The body (e.g. why, for a person); may be empty.
        body: Vec<u8>,
    },
    /// Answer later, from any thread: [`crate::ServerHandle::accept`] or
    /// [`crate::ServerHandle::reject`] with [`crate::Request::ticket`]. The client sees nothing until
    /// then; the handshake timeout still applies, and a client that leaves meanwhile frees
    /// everything (the answer then finds no connection and is dropped).
    Pending,
}

/// An accepted upgrade.
pub struct Accept<D> {
    pub(crate) data: D,
    pub(crate) protocol: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
}

impl<D> Accept<D> {
    /// Accepts with this per-connection data.
    pub fn new(data: D) -> Accept<D> {
        Accept {
            data,
            protocol: None,
            headers: Vec::new(),
        }
    }

    /// Selects a subprotocol. It must be one the client offered (RFC 6455 §4.2.2); if it is not,
    /// the header is left out and a warning logged.
    #[must_use]
    pub fn protocol(mut self, p: &str) -> Accept<D> {
        self.protocol = Some(p.to_owned());
        self
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Accept<D> {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

impl<D> Upgrade<D> {
    /// Shorthand for `Upgrade::Accept(Accept::new(data))`.
    pub fn accept(data: D) -> Upgrade<D> {
        Upgrade::Accept(Accept::new(data))
    }

    /// Shorthand for a rejection without extra headers or body.
    pub fn reject(status: u16) -> Upgrade<D> {
        Upgrade::Reject {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A rejection with a text body (`Content-Type: text/plain; charset=utf-8`).
    pub fn reject_with_text(status: u16, text: &str) -> Upgrade<D> {
        Upgrade::Reject {
            status,
            headers: vec![(
                "Content-Type".to_owned(),
                "text/plain; charset=utf-8".to_owned(),
            )],
            body: text.as_bytes().to_vec(),
        }
    }
}
