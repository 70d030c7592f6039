//! The answer to a plain request while the application builds it ([`crate::Response`]), kept
//! per reactor so that answering allocates nothing once warm.

/// An answer being built: its status, headers and body, or a stream. The reactor writes it when
/// `on_request` returns.
pub(crate) struct Reply<D> {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Set by [`Response::stream`]: the response is streamed, and the connection keeps this
    /// data.
    pub(crate) stream: Option<D>,
}

impl<D> Reply<D> {
    pub(crate) fn new() -> Reply<D> {
        Reply {
            status: 404,
            headers: Vec::new(),
            body: Vec::new(),
            stream: None,
        }
    }

    /// Ready for the next request: 404 and nothing else, capacity kept (unless one answer blew
    /// it up).
    pub(crate) fn reset(&mut self) {
        self.status = 404;
        self.headers.clear();
        self.body.clear();
        if self.body.capacity() > 1 << 20 {
            self.body = Vec::new();
        }
        self.stream = None;
    }
}
