//! `permessage-deflate` negotiation (RFC 7692 §5, §7.1), server side and client side.
//!
//! This module only decides *what* was agreed; compressing and inflating live elsewhere.
//!
//! # Parsing
//!
//! A `Sec-WebSocket-Extensions` value is parsed with the grammar of RFC 6455 §9.1 and the list
//! rules of RFC 7230 §7 in one forward pass, so the cost is linear in the length of the value
//! and nothing is allocated (BAD_INPUTS 7):
//!
//! ```text
//! extension-list = 1#extension            ; empty list elements (", ,") are skipped
//! extension      = token *( OWS ";" OWS extension-param )
//! extension-param = token [ OWS "=" OWS ( token / quoted-string ) ]
//! ```
//!
//! A quoted-string may hold `\`-escapes (and, syntactically, commas), but its unescaped content
//! must itself be a token (RFC 6455 §9.1), so `"10"` and `"1\0"` mean `10`, while `""`,
//! `"1 0"` or `"a,b"` are malformed. Any syntax error anywhere in a header value (unclosed
//! quote, empty name, a byte outside the grammar such as CR, LF, NUL or non-ASCII, two tokens
//! without a separator, a trailing `;`) makes that whole value unusable: none of the
//! `permessage-deflate` offers in it are considered, and the next header value is tried.
//! Extension and parameter names are compared exactly (case-sensitively), as registered.
//! Unknown extensions, including names such as `constructor` or `__proto__`, are ignored.
//!
//! # Server side ([`negotiate`])
//!
//! Offers are considered in order, across all header values; the first acceptable
//! `permessage-deflate` offer wins (RFC 7692 §5). An offer is declined, and the next one tried,
//! when (RFC 7692 §7) it has an unknown parameter, a duplicate parameter, a value on
//! `server_no_context_takeover` / `client_no_context_takeover`, no value or a bad value on
//! `server_max_window_bits`, or a bad value on `client_max_window_bits` (values are decimal
//! 8..=15 without leading zeros or sign, §7.1.2.1, §7.1.2.2), or when the server does not
//! support the configuration (the 8-bit window below).
//!
//! The response depends on [`ContextMode`]:
//!
//! - `server_no_context_takeover`: always in [`ContextMode::Shared`] and
//!   [`ContextMode::InflateWindow`] (a server MAY include it even if not offered, §7.1.1.1); in
//!   [`ContextMode::Dedicated`] only when offered (an offer holding it is accepted only by
//!   echoing it, §7.1.1.1).
//! - `client_no_context_takeover`: always in `Shared` (§7.1.1.2: "A server MAY include the
//!   client_no_context_takeover extension parameter in an extension negotiation response", with
//!   no condition on the offer); in the other modes only when offered.
//! - `server_max_window_bits`: if offered with `N`, the answer carries a value ≤ `N` (§7.1.2.1:
//!   otherwise the server MUST decline) and the server compresses with
//!   `min(N, cfg.server_max_window_bits)`; also when that is 15. If not offered, it is included
//!   only when `cfg.server_max_window_bits < 15` (§7.1.2.1 lets the server include it unasked).
//! - `client_max_window_bits`: never included unless offered (§7.1.2.2: MUST NOT). If offered,
//!   `min(offered value or 15, cfg.client_max_window_bits)` is included when it is below 15 or
//!   when the offer carried a value (a value ≤ the offered one, §7.1.2.2). If not offered the
//!   client may use a 15-bit window.
//!
//! # The 8-bit window (BAD_INPUTS 45)
//!
//! zlib cannot *compress* raw deflate with an 8-bit window (current zlib refuses it, older
//! versions silently used 9), and flate2 accepts 9..=15. Choices, applied consistently:
//!
//! - We never compress with 8 bits. A server whose window would come out as 8 (the client
//!   offered `server_max_window_bits=8`) **declines** that offer: it cannot answer with 9, since
//!   the answer must be ≤ the offered value (§7.1.2.1), and the server "doesn't support the
//!   offered configuration" (§7). A later offer in the list (say a plain `permessage-deflate`)
//!   may still be accepted. Symmetrically, [`accept_response`] fails when a server
//!   asks our client to compress with `client_max_window_bits=8` (§7: "the client does not
//!   support the configuration").
//! - We always *inflate* with at least 9 bits: a larger window decodes any stream made with a
//!   smaller one, so a peer limited to 8 bits is accepted (`client_max_window_bits=8` offered by
//!   a client, `server_max_window_bits=8` answered by a server) and its agreed value is kept as
//!   8 in [`Agreed`]; the inflating side uses `max(bits, 9)`.
//!
//! # Client side ([`client_offer`], [`accept_response`])
//!
//! Our client offers `permessage-deflate; client_max_window_bits`. The server's response must
//! name exactly that one extension (RFC 6455 §9.1, §4.1); any unknown or duplicate parameter,
//! a bad value, a `client_max_window_bits` without a value, or `client_max_window_bits` when it
//! was not offered makes the client *Fail the WebSocket Connection* (RFC 7692 §7, §7.1.2.2;
//! BAD_INPUTS 44), reported as `Err`.
//!
//! # For the compressor and decompressor
//!
//! - The server must compress with at most [`Agreed::server_max_window_bits`] in every mode: in
//!   [`ContextMode::Shared`] a client that offered a smaller `server_max_window_bits` cannot be
//!   served by a 15-bit shared stream (one shared stream per window size in use does it).
//! - Inflate with `max(bits, 9)` bits; in [`ContextMode::InflateWindow`] the window kept per
//!   connection is `2^max(client_max_window_bits, 9)` bytes, and
//!   [`DeflateConfig::client_max_window_bits`] only lowers it for clients that offered
//!   `client_max_window_bits` (browsers do).

use crate::http::is_tchar;

/// The registered extension name (RFC 7692 §7).
const PERMESSAGE_DEFLATE: &[u8] = b"permessage-deflate";
const SERVER_NO_CONTEXT_TAKEOVER: &[u8] = b"server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &[u8] = b"client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &[u8] = b"server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &[u8] = b"client_max_window_bits";

/// The smallest window zlib / flate2 can compress (and we inflate) with.
const MIN_ZLIB_BITS: u8 = 9;
/// The largest LZ77 window, 32 KiB (RFC 7692 §7.1.2).
const MAX_BITS: u8 = 15;

const MALFORMED: &str = "malformed Sec-WebSocket-Extensions value";

/// What the server is willing to do (part of the server config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextMode {
    /// Default: answer with `server_no_context_takeover` and `client_no_context_takeover`, so one
    /// shared compressor and decompressor per reactor serve every connection.
    Shared,
    /// Keep the client's context (client may take over context); server still no takeover.
    InflateWindow,
    /// Server keeps its own context too (dedicated compressor per connection).
    Dedicated,
}

/// The server's `permessage-deflate` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Whether `permessage-deflate` offers are accepted at all (default `true`).
    pub enabled: bool,
    /// How compression contexts are kept (default [`ContextMode::Shared`]).
    pub mode: ContextMode,
    /// The largest window the server compresses with, 9..=15 (default 15); values outside that
    /// range are clamped into it.
    pub server_max_window_bits: u8,
    /// The largest window the server asks the client to compress with, 9..=15 (default 15);
    /// values outside that range are clamped into it. Only effective when the client offered
    /// `client_max_window_bits` (RFC 7692 §7.1.2.2).
    pub client_max_window_bits: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mode: ContextMode::Shared,
            server_max_window_bits: MAX_BITS,
            client_max_window_bits: MAX_BITS,
        }
    }
}

/// The agreed parameters for one connection.
///
/// [`Default`] is a plain `permessage-deflate` agreement: context takeover on both sides,
/// 15-bit windows, no window parameter in the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// The server resets its compression context after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after every message.
    pub client_no_context_takeover: bool,
    /// The window the server compresses with: 9..=15 from [`negotiate`]; 8..=15 from
    /// [`accept_response`] (a peer server may use 8; inflate with `max(bits, 9)`).
    pub server_max_window_bits: u8,
    /// The window the client compresses with: 8..=15, 15 if not limited; inflate with
    /// `max(bits, 9)`. From [`accept_response`] always 9..=15.
    pub client_max_window_bits: u8,
    /// Whether the response carries `server_max_window_bits`. Needed beside the value because a
    /// client that offered `server_max_window_bits=15` must get it echoed (RFC 7692 §7.1.2.1),
    /// while an unasked 15 is left out.
    pub server_max_window_bits_in_response: bool,
    /// Whether the response carries `client_max_window_bits` (never unless the client offered
    /// it, RFC 7692 §7.1.2.2).
    pub client_max_window_bits_in_response: bool,
}

impl Default for Agreed {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_BITS,
            client_max_window_bits: MAX_BITS,
            server_max_window_bits_in_response: false,
            client_max_window_bits_in_response: false,
        }
    }
}

impl Agreed {
    /// Appends the `Sec-WebSocket-Extensions` response value to `out`, e.g.
    /// `permessage-deflate; server_no_context_takeover; client_no_context_takeover`.
    ///
    /// Parameters appear in the order `server_no_context_takeover`,
    /// `client_no_context_takeover`, `server_max_window_bits`, `client_max_window_bits`.
    pub fn response(&self, out: &mut String) {
        out.push_str("permessage-deflate");
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits_in_response {
            out.push_str("; server_max_window_bits=");
            push_decimal(out, self.server_max_window_bits);
        }
        if self.client_max_window_bits_in_response {
            out.push_str("; client_max_window_bits=");
            push_decimal(out, self.client_max_window_bits);
        }
    }
}

fn push_decimal(out: &mut String, n: u8) {
    if n >= 100 {
        out.push(char::from(b'0' + n / 100));
    }
    if n >= 10 {
        out.push(char::from(b'0' + n / 10 % 10));
    }
    out.push(char::from(b'0' + n % 10));
}

/// Server side: `offers` are the raw values of every Sec-WebSocket-Extensions header, in order.
/// Returns the first acceptable permessage-deflate offer's agreement, or None (no compression).
///
/// A header value with a syntax error contributes no offer (see the module docs); the cost is
/// linear in the total length of the values.
pub fn negotiate<'a>(
    mut offers: impl Iterator<Item = &'a [u8]>,
    cfg: &DeflateConfig,
) -> Option<Agreed> {
    if !cfg.enabled {
        return None;
    }
    offers.find_map(|value| {
        let mut sink = ServerSink {
            cfg,
            current: None,
            found: None,
        };
        // A syntax error anywhere in the value voids every offer in it, even an earlier one.
        parse(value, &mut sink).ok()?;
        sink.found
    })
}

/// What our client offers; [`accept_response`] checks the response against it.
#[derive(Clone, Copy, Debug)]
struct ClientOffer {
    /// The offer carries `client_max_window_bits` (without a value).
    client_max_window_bits: bool,
}

/// The offer [`client_offer`] writes.
const OUR_OFFER: ClientOffer = ClientOffer {
    client_max_window_bits: true,
};

/// Client side: appends the offer our client sends,
/// `permessage-deflate; client_max_window_bits`, to `out`: any server configuration is
/// acceptable, and the server may limit our window.
pub fn client_offer(out: &mut String) {
    out.push_str("permessage-deflate");
    if OUR_OFFER.client_max_window_bits {
        out.push_str("; client_max_window_bits");
    }
}

/// Client side: validates the server's response value against what we offered (RFC 7692 §7.1: a
/// response with unknown or duplicate params, bad values, or `client_max_window_bits` when we did
/// not offer it must make the client Fail the connection → Err).
///
/// `value` is the whole `Sec-WebSocket-Extensions` response value; it must name exactly one
/// extension, `permessage-deflate`. `server_max_window_bits=8` is accepted (we inflate with 9).
///
/// # Errors
///
/// A short reason, for the log, when the client must *Fail the WebSocket Connection*: a
/// malformed or empty value, an extension other than one `permessage-deflate`, an unknown or
/// duplicate parameter, a bad value, `client_max_window_bits` without a value or not offered,
/// or `client_max_window_bits=8`, which we cannot compress with (module docs).
pub fn accept_response(value: &[u8]) -> Result<Agreed, &'static str> {
    accept_response_to(value, OUR_OFFER)
}

fn accept_response_to(value: &[u8], offer: ClientOffer) -> Result<Agreed, &'static str> {
    let mut sink = ClientSink {
        extensions: 0,
        params: Params::default(),
    };
    parse(value, &mut sink)?;
    if sink.extensions == 0 {
        return Err("empty Sec-WebSocket-Extensions response");
    }
    let p = sink.params;
    let client_max_window_bits = match p.client_max_window_bits {
        None => MAX_BITS,
        Some(_) if !offer.client_max_window_bits => {
            return Err("client_max_window_bits in the response but not in the offer");
        }
        Some(Some(bits)) if bits >= MIN_ZLIB_BITS => bits,
        Some(Some(_)) => return Err("client_max_window_bits=8 is not supported (zlib)"),
        // `Params::apply` refuses a valueless client_max_window_bits in a response.
        Some(None) => return Err("client_max_window_bits needs a value in a response"),
    };
    Ok(Agreed {
        server_no_context_takeover: p.server_no_context_takeover,
        client_no_context_takeover: p.client_no_context_takeover,
        server_max_window_bits: p.server_max_window_bits.unwrap_or(MAX_BITS),
        client_max_window_bits,
        server_max_window_bits_in_response: p.server_max_window_bits.is_some(),
        client_max_window_bits_in_response: p.client_max_window_bits.is_some(),
    })
}

/// The parameters of one `permessage-deflate` element, offer or response.
#[derive(Clone, Copy, Debug, Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (only valid in an offer).
    client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    /// Records one parameter; `Err` for an unknown or duplicate parameter or a bad value
    /// (RFC 7692 §7). `offer` allows a valueless `client_max_window_bits` (§7.1.2.2).
    fn apply(
        &mut self,
        name: &[u8],
        value: Option<Value<'_>>,
        offer: bool,
    ) -> Result<(), &'static str> {
        match name {
            SERVER_NO_CONTEXT_TAKEOVER | CLIENT_NO_CONTEXT_TAKEOVER => {
                let flag = if name == SERVER_NO_CONTEXT_TAKEOVER {
                    &mut self.server_no_context_takeover
                } else {
                    &mut self.client_no_context_takeover
                };
                if *flag {
                    return Err("duplicate permessage-deflate parameter");
                }
                if value.is_some() {
                    return Err("*_no_context_takeover takes no value");
                }
                *flag = true;
            }
            SERVER_MAX_WINDOW_BITS => {
                if self.server_max_window_bits.is_some() {
                    return Err("duplicate permessage-deflate parameter");
                }
                let value = value.ok_or("server_max_window_bits needs a value")?;
                let bits = value
                    .window_bits()
                    .ok_or("bad server_max_window_bits value")?;
                self.server_max_window_bits = Some(bits);
            }
            CLIENT_MAX_WINDOW_BITS => {
                if self.client_max_window_bits.is_some() {
                    return Err("duplicate permessage-deflate parameter");
                }
                let bits = match value {
                    None if offer => None,
                    None => return Err("client_max_window_bits needs a value in a response"),
                    Some(v) => Some(v.window_bits().ok_or("bad client_max_window_bits value")?),
                };
                self.client_max_window_bits = Some(bits);
            }
            _ => return Err("unknown permessage-deflate parameter"),
        }
        Ok(())
    }
}

/// The server's answer to one well-formed offer, or `None` to decline it.
fn agree(offer: &Params, cfg: &DeflateConfig) -> Option<Agreed> {
    let server_cap = cfg.server_max_window_bits.clamp(MIN_ZLIB_BITS, MAX_BITS);
    let client_cap = cfg.client_max_window_bits.clamp(MIN_ZLIB_BITS, MAX_BITS);
    let (server_max_window_bits, server_max_window_bits_in_response) =
        match offer.server_max_window_bits {
            Some(n) => {
                let bits = n.min(server_cap);
                if bits < MIN_ZLIB_BITS {
                    // Offered 8: we cannot compress with it and may not answer more (§7.1.2.1).
                    return None;
                }
                (bits, true)
            }
            None => (server_cap, server_cap < MAX_BITS),
        };
    let (client_max_window_bits, client_max_window_bits_in_response) =
        match offer.client_max_window_bits {
            None => (MAX_BITS, false),
            Some(v) => {
                let bits = v.unwrap_or(MAX_BITS).min(client_cap);
                (bits, bits < MAX_BITS || v.is_some())
            }
        };
    let (server_no_context_takeover, client_no_context_takeover) = match cfg.mode {
        ContextMode::Shared => (true, true),
        ContextMode::InflateWindow => (true, offer.client_no_context_takeover),
        ContextMode::Dedicated => (
            offer.server_no_context_takeover,
            offer.client_no_context_takeover,
        ),
    };
    Some(Agreed {
        server_no_context_takeover,
        client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
        server_max_window_bits_in_response,
        client_max_window_bits_in_response,
    })
}

/// Collects the first acceptable offer of one header value.
struct ServerSink<'c> {
    cfg: &'c DeflateConfig,
    /// The `permessage-deflate` offer being read, `None` once it is declined or for other
    /// extensions.
    current: Option<Params>,
    found: Option<Agreed>,
}

impl Sink for ServerSink<'_> {
    fn extension(&mut self, name: &[u8]) -> Result<(), &'static str> {
        self.current = (self.found.is_none() && name == PERMESSAGE_DEFLATE).then(Params::default);
        Ok(())
    }

    fn param(&mut self, name: &[u8], value: Option<Value<'_>>) -> Result<(), &'static str> {
        if let Some(params) = &mut self.current
            && params.apply(name, value, true).is_err()
        {
            self.current = None; // declined; keep parsing for syntax only
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), &'static str> {
        if let Some(params) = self.current.take() {
            self.found = agree(&params, self.cfg);
        }
        Ok(())
    }
}

/// Checks a response value: one `permessage-deflate` element and its parameters.
struct ClientSink {
    extensions: usize,
    params: Params,
}

impl Sink for ClientSink {
    fn extension(&mut self, name: &[u8]) -> Result<(), &'static str> {
        self.extensions += 1;
        if self.extensions > 1 {
            return Err("more than one extension in the response");
        }
        if name != PERMESSAGE_DEFLATE {
            return Err("the response names an extension that was not offered");
        }
        Ok(())
    }

    fn param(&mut self, name: &[u8], value: Option<Value<'_>>) -> Result<(), &'static str> {
        self.params.apply(name, value, false)
    }

    fn end(&mut self) -> Result<(), &'static str> {
        Ok(())
    }
}

/// Receives the elements of a header value as [`parse`] reads them.
trait Sink {
    /// A new extension element named `name` begins.
    fn extension(&mut self, name: &[u8]) -> Result<(), &'static str>;
    /// A parameter of the current element.
    fn param(&mut self, name: &[u8], value: Option<Value<'_>>) -> Result<(), &'static str>;
    /// The current element ended.
    fn end(&mut self) -> Result<(), &'static str>;
}

/// A parameter value as written: a token, or the inside of a quoted-string with its escapes.
/// [`parse`] guarantees the unescaped content is a non-empty token.
#[derive(Clone, Copy, Debug)]
struct Value<'a> {
    raw: &'a [u8],
    quoted: bool,
}

impl Value<'_> {
    /// The unescaped bytes.
    fn bytes(&self) -> Unescape<'_> {
        Unescape {
            rest: self.raw,
            quoted: self.quoted,
        }
    }

    /// A window size: decimal 8..=15, no leading zeros, no sign (RFC 7692 §7.1.2.1).
    fn window_bits(&self) -> Option<u8> {
        let mut it = self.bytes();
        let first = it.next()?;
        let second = it.next();
        if it.next().is_some() {
            return None;
        }
        match (first, second) {
            (b'8'..=b'9', None) => Some(first - b'0'),
            (b'1', Some(d @ b'0'..=b'5')) => Some(10 + d - b'0'),
            _ => None,
        }
    }
}

/// Iterates the content of a value with quoted-pair escapes removed.
struct Unescape<'a> {
    rest: &'a [u8],
    quoted: bool,
}

impl Iterator for Unescape<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        if self.quoted && b == b'\\' {
            let (&c, rest) = rest.split_first()?;
            self.rest = rest;
            Some(c)
        } else {
            self.rest = rest;
            Some(b)
        }
    }
}

/// A forward-only position in a header value; every method consumes what it looks at, so a
/// parse touches each byte a bounded number of times.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Skips optional whitespace (RFC 7230 OWS: SP / HTAB).
    fn ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }

    /// A non-empty token, or `None` (nothing consumed).
    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }

    /// A token or a quoted-string whose unescaped content is a non-empty token.
    fn value(&mut self) -> Option<Value<'a>> {
        if !self.eat(b'"') {
            return self.token().map(|raw| Value { raw, quoted: false });
        }
        let start = self.i;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => {
                    // quoted-pair; the escaped byte must still be a tchar (RFC 6455 §9.1).
                    let escaped = *self.s.get(self.i + 1)?;
                    if !is_tchar(escaped) {
                        return None;
                    }
                    self.i += 2;
                }
                b if is_tchar(b) => self.i += 1,
                _ => return None,
            }
        }
        let raw = &self.s[start..self.i];
        self.i += 1; // closing quote
        (!raw.is_empty()).then_some(Value { raw, quoted: true })
    }
}

/// Parses one header value, feeding `sink`. `Err(MALFORMED)` on a syntax error, or the sink's
/// own error.
fn parse(s: &[u8], sink: &mut impl Sink) -> Result<(), &'static str> {
    let mut c = Cursor { s, i: 0 };
    loop {
        c.ows();
        match c.peek() {
            None => return Ok(()),
            Some(b',') => {
                c.i += 1; // empty list element (RFC 7230 §7)
                continue;
            }
            Some(_) => {}
        }
        let name = c.token().ok_or(MALFORMED)?;
        sink.extension(name)?;
        c.ows();
        while c.eat(b';') {
            c.ows();
            let param = c.token().ok_or(MALFORMED)?;
            c.ows();
            let value = if c.eat(b'=') {
                c.ows();
                let v = c.value().ok_or(MALFORMED)?;
                c.ows();
                Some(v)
            } else {
                None
            };
            sink.param(param, value)?;
        }
        sink.end()?;
        match c.peek() {
            None => return Ok(()),
            Some(b',') => c.i += 1,
            Some(_) => return Err(MALFORMED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn cfg(mode: ContextMode) -> DeflateConfig {
        DeflateConfig {
            mode,
            ..DeflateConfig::default()
        }
    }

    fn neg(headers: &[&str], cfg: &DeflateConfig) -> Option<Agreed> {
        negotiate(headers.iter().map(|h| h.as_bytes()), cfg)
    }

    /// The response string for `headers` under `cfg`, or None when declined.
    fn answer(headers: &[&str], cfg: &DeflateConfig) -> Option<String> {
        neg(headers, cfg).map(|a| {
            let mut out = String::new();
            a.response(&mut out);
            out
        })
    }

    fn shared(headers: &[&str]) -> Option<String> {
        answer(headers, &DeflateConfig::default())
    }

    const SHARED_ANSWER: &str =
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

    fn assert_fast(what: &str, t: Instant) {
        let took = t.elapsed();
        assert!(took < Duration::from_millis(200), "{what}: {took:?}");
    }

    // ---- browsers and common clients ----

    #[test]
    fn chrome_default_offer_gets_shared_answer() {
        let offer = "permessage-deflate; client_max_window_bits";
        let a = neg(&[offer], &DeflateConfig::default()).unwrap();
        assert_eq!(
            a,
            Agreed {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 15,
                client_max_window_bits: 15,
                server_max_window_bits_in_response: false,
                client_max_window_bits_in_response: false,
            }
        );
        assert_eq!(shared(&[offer]).unwrap(), SHARED_ANSWER);
    }

    #[test]
    fn chrome_offer_in_other_modes() {
        let offer = "permessage-deflate; client_max_window_bits";
        assert_eq!(
            answer(&[offer], &cfg(ContextMode::InflateWindow)).unwrap(),
            "permessage-deflate; server_no_context_takeover"
        );
        assert_eq!(
            answer(&[offer], &cfg(ContextMode::Dedicated)).unwrap(),
            "permessage-deflate"
        );
        let a = neg(&[offer], &cfg(ContextMode::Dedicated)).unwrap();
        assert_eq!(a, Agreed::default());
    }

    #[test]
    fn firefox_and_safari_plain_offer() {
        // Firefox and Safari send a bare `permessage-deflate`.
        let offer = "permessage-deflate";
        assert_eq!(shared(&[offer]).unwrap(), SHARED_ANSWER);
        assert_eq!(
            answer(&[offer], &cfg(ContextMode::InflateWindow)).unwrap(),
            "permessage-deflate; server_no_context_takeover"
        );
        assert_eq!(
            answer(&[offer], &cfg(ContextMode::Dedicated)).unwrap(),
            "permessage-deflate"
        );
        // Without client_max_window_bits in the offer, a limited config may not be announced
        // (§7.1.2.2) and the client is assumed to use 15 bits.
        let limited = DeflateConfig {
            client_max_window_bits: 10,
            ..DeflateConfig::default()
        };
        let a = neg(&[offer], &limited).unwrap();
        assert_eq!(a.client_max_window_bits, 15);
        assert!(!a.client_max_window_bits_in_response);
        assert_eq!(answer(&[offer], &limited).unwrap(), SHARED_ANSWER);
    }

    #[test]
    fn python_websockets_default_offer() {
        // websockets' ClientPerMessageDeflateFactory defaults to client_max_window_bits=True.
        let offer = "permessage-deflate; client_max_window_bits";
        assert_eq!(shared(&[offer]).unwrap(), SHARED_ANSWER);
        // An explicitly configured websockets client (server/client_max_window_bits=12).
        let offer = "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12";
        assert_eq!(
            shared(&[offer]).unwrap(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12; client_max_window_bits=12"
        );
        let a = neg(&[offer], &DeflateConfig::default()).unwrap();
        assert_eq!(
            (a.server_max_window_bits, a.client_max_window_bits),
            (12, 12)
        );
    }

    #[test]
    fn legacy_webkit_extension_ignored() {
        assert_eq!(shared(&["x-webkit-deflate-frame"]), None);
        assert_eq!(
            shared(&["x-webkit-deflate-frame, permessage-deflate"]).unwrap(),
            SHARED_ANSWER
        );
    }

    #[test]
    fn disabled_config_never_agrees() {
        let off = DeflateConfig {
            enabled: false,
            ..DeflateConfig::default()
        };
        assert_eq!(neg(&["permessage-deflate"], &off), None);
    }

    // ---- context takeover parameters ----

    #[test]
    fn no_context_takeover_offers_per_mode() {
        let both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        for mode in [
            ContextMode::Shared,
            ContextMode::InflateWindow,
            ContextMode::Dedicated,
        ] {
            assert_eq!(
                answer(&[both], &cfg(mode)).unwrap(),
                SHARED_ANSWER,
                "{mode:?}"
            );
        }
        let server_only = "permessage-deflate; server_no_context_takeover";
        assert_eq!(
            answer(&[server_only], &cfg(ContextMode::Dedicated)).unwrap(),
            "permessage-deflate; server_no_context_takeover"
        );
        let client_only = "permessage-deflate; client_no_context_takeover";
        assert_eq!(
            answer(&[client_only], &cfg(ContextMode::Dedicated)).unwrap(),
            "permessage-deflate; client_no_context_takeover"
        );
        assert_eq!(
            answer(&[client_only], &cfg(ContextMode::InflateWindow)).unwrap(),
            SHARED_ANSWER
        );
    }

    // ---- window bits ----

    #[test]
    fn server_max_window_bits_offer_is_echoed_at_most() {
        let a = neg(
            &["permessage-deflate; server_max_window_bits=10"],
            &DeflateConfig::default(),
        )
        .unwrap();
        assert_eq!(a.server_max_window_bits, 10);
        assert_eq!(
            shared(&["permessage-deflate; server_max_window_bits=10"]).unwrap(),
            format!("{SHARED_ANSWER}; server_max_window_bits=10")
        );
        // An explicit 15 must still be echoed (§7.1.2.1).
        assert_eq!(
            answer(
                &["permessage-deflate; server_max_window_bits=15"],
                &cfg(ContextMode::Dedicated)
            )
            .unwrap(),
            "permessage-deflate; server_max_window_bits=15"
        );
        // The config caps it below the offer.
        let capped = DeflateConfig {
            server_max_window_bits: 11,
            ..DeflateConfig::default()
        };
        assert_eq!(
            answer(&["permessage-deflate; server_max_window_bits=13"], &capped).unwrap(),
            format!("{SHARED_ANSWER}; server_max_window_bits=11")
        );
        // Not offered: announced only when the config is below 15.
        assert_eq!(
            answer(&["permessage-deflate"], &capped).unwrap(),
            format!("{SHARED_ANSWER}; server_max_window_bits=11")
        );
    }

    #[test]
    fn client_max_window_bits_rules() {
        let limited = DeflateConfig {
            client_max_window_bits: 10,
            ..cfg(ContextMode::Dedicated)
        };
        // Valueless offer: include our limit when below 15.
        assert_eq!(
            answer(&["permessage-deflate; client_max_window_bits"], &limited).unwrap(),
            "permessage-deflate; client_max_window_bits=10"
        );
        // Valued offer: include min(offered, config), even when 15.
        assert_eq!(
            answer(&["permessage-deflate; client_max_window_bits=12"], &limited).unwrap(),
            "permessage-deflate; client_max_window_bits=10"
        );
        assert_eq!(
            answer(
                &["permessage-deflate; client_max_window_bits=9"],
                &cfg(ContextMode::Dedicated)
            )
            .unwrap(),
            "permessage-deflate; client_max_window_bits=9"
        );
        assert_eq!(
            answer(
                &["permessage-deflate; client_max_window_bits=15"],
                &cfg(ContextMode::Dedicated)
            )
            .unwrap(),
            "permessage-deflate; client_max_window_bits=15"
        );
    }

    #[test]
    fn config_window_bits_are_clamped() {
        let odd = DeflateConfig {
            server_max_window_bits: 4,
            client_max_window_bits: 200,
            ..cfg(ContextMode::Dedicated)
        };
        let a = neg(&["permessage-deflate; client_max_window_bits"], &odd).unwrap();
        assert_eq!(
            (a.server_max_window_bits, a.client_max_window_bits),
            (9, 15)
        );
        assert_eq!(
            answer(&["permessage-deflate; client_max_window_bits"], &odd).unwrap(),
            "permessage-deflate; server_max_window_bits=9"
        );
    }

    /// BAD_INPUTS 45, choice: we never compress with an 8-bit window (zlib cannot), so an offer
    /// that limits the server to 8 bits is declined (we may not answer 9 > 8, §7.1.2.1); the
    /// next offer, Autobahn 13.x style, is then accepted.
    #[test]
    fn bad_inputs_45_server_window_8_declined() {
        for mode in [
            ContextMode::Shared,
            ContextMode::InflateWindow,
            ContextMode::Dedicated,
        ] {
            for offer in [
                "permessage-deflate; server_max_window_bits=8",
                "permessage-deflate; server_max_window_bits=\"8\"",
                "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
            ] {
                assert_eq!(neg(&[offer], &cfg(mode)), None, "{offer} {mode:?}");
            }
        }
        let a = neg(
            &[
                "permessage-deflate; server_max_window_bits=8; client_no_context_takeover, \
               permessage-deflate; server_max_window_bits=9",
            ],
            &cfg(ContextMode::Dedicated),
        )
        .unwrap();
        assert_eq!(a.server_max_window_bits, 9);
        assert!(!a.client_no_context_takeover); // from the second offer
    }

    /// BAD_INPUTS 45, choice: a client that limits itself to 8 bits is accepted: we inflate with
    /// 9 bits, which decodes any 8-bit stream; the agreed value stays 8.
    #[test]
    fn bad_inputs_45_client_window_8_accepted_inflated_with_9() {
        let a = neg(
            &["permessage-deflate; client_max_window_bits=8"],
            &cfg(ContextMode::Dedicated),
        )
        .unwrap();
        assert_eq!(a.client_max_window_bits, 8);
        assert_eq!(
            answer(
                &["permessage-deflate; client_max_window_bits=8"],
                &cfg(ContextMode::Dedicated)
            )
            .unwrap(),
            "permessage-deflate; client_max_window_bits=8"
        );
    }

    // ---- several offers ----

    #[test]
    fn several_offers_in_one_header_first_acceptable_wins() {
        let d = cfg(ContextMode::Dedicated);
        assert_eq!(
            answer(
                &["permessage-deflate; server_max_window_bits=10, permessage-deflate"],
                &d
            )
            .unwrap(),
            "permessage-deflate; server_max_window_bits=10"
        );
        assert_eq!(
            answer(
                &[
                    "permessage-deflate; foo, permessage-deflate; server_max_window_bits=7, \
                   permessage-deflate; client_no_context_takeover, permessage-deflate"
                ],
                &d
            )
            .unwrap(),
            "permessage-deflate; client_no_context_takeover"
        );
    }

    #[test]
    fn several_offers_across_two_headers_first_acceptable_wins() {
        let d = cfg(ContextMode::Dedicated);
        assert_eq!(
            answer(
                &[
                    "foo, permessage-deflate; bar",
                    "permessage-deflate; server_max_window_bits=11, permessage-deflate",
                ],
                &d
            )
            .unwrap(),
            "permessage-deflate; server_max_window_bits=11"
        );
        // The first header's acceptable offer wins over the second header's.
        assert_eq!(
            answer(
                &[
                    "permessage-deflate; client_no_context_takeover",
                    "permessage-deflate; server_max_window_bits=11",
                ],
                &d
            )
            .unwrap(),
            "permessage-deflate; client_no_context_takeover"
        );
    }

    /// BAD_INPUTS 7: a malformed element voids the whole header value, including an acceptable
    /// offer before it; the next header is still used.
    #[test]
    fn bad_inputs_7_malformed_header_voids_its_offers_only() {
        let d = cfg(ContextMode::Dedicated);
        let bad = "permessage-deflate, permessage-deflate; x=\"unclosed";
        assert_eq!(neg(&[bad], &d), None);
        assert_eq!(
            answer(&[bad, "permessage-deflate; client_no_context_takeover"], &d).unwrap(),
            "permessage-deflate; client_no_context_takeover"
        );
    }

    // ---- BAD_INPUTS 44: bad offers are declined ----

    #[test]
    fn bad_inputs_44_bad_window_values_declined() {
        for v in [
            "7",
            "16",
            "abc",
            "08",
            "0",
            "1",
            "-9",
            "+9",
            "9.0",
            "015",
            "100",
            "255",
            "256",
            "99999999999999999999",
            "\"\"",
            "\"16\"",
            "\"1 0\"",
            "\"8 \"",
        ] {
            for param in ["server_max_window_bits", "client_max_window_bits"] {
                let offer = format!("permessage-deflate; {param}={v}");
                for mode in [ContextMode::Shared, ContextMode::Dedicated] {
                    assert_eq!(neg(&[&offer], &cfg(mode)), None, "{offer}");
                }
                // A valid fallback offer in the next header is still taken.
                assert!(neg(&[&offer, "permessage-deflate"], &cfg(ContextMode::Shared)).is_some());
            }
        }
    }

    #[test]
    fn bad_inputs_44_value_on_no_context_takeover_declined() {
        for offer in [
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=true",
            "permessage-deflate; client_no_context_takeover=\"x\"",
        ] {
            assert_eq!(shared(&[offer]), None, "{offer}");
        }
    }

    #[test]
    fn bad_inputs_44_missing_value_on_server_max_window_bits_declined() {
        assert_eq!(
            shared(&["permessage-deflate; server_max_window_bits"]),
            None
        );
        // `=` with nothing after it is a syntax error.
        assert_eq!(
            shared(&["permessage-deflate; server_max_window_bits="]),
            None
        );
        assert_eq!(
            shared(&["permessage-deflate; server_max_window_bits= ;"]),
            None
        );
    }

    #[test]
    fn bad_inputs_44_unknown_params_declined() {
        for offer in [
            "permessage-deflate; foo",
            "permessage-deflate; foo=bar",
            "permessage-deflate; Server_No_Context_Takeover",
            "permessage-deflate; server_max_window_bit=10",
            "permessage-deflate; mem_level=8",
        ] {
            assert_eq!(shared(&[offer]), None, "{offer}");
        }
    }

    #[test]
    fn bad_inputs_44_duplicate_param_declined() {
        for offer in [
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=10; client_max_window_bits",
        ] {
            assert_eq!(shared(&[offer]), None, "{offer}");
        }
    }

    // ---- syntax ----

    #[test]
    fn quoted_values_accepted() {
        let d = cfg(ContextMode::Dedicated);
        assert_eq!(
            answer(&["permessage-deflate; server_max_window_bits=\"10\""], &d).unwrap(),
            "permessage-deflate; server_max_window_bits=10"
        );
        assert_eq!(
            answer(&["permessage-deflate; client_max_window_bits=\"1\\2\""], &d).unwrap(),
            "permessage-deflate; client_max_window_bits=12"
        );
        // A quoted value of an unknown extension, with escapes, does not disturb the parse.
        assert_eq!(
            answer(&["foo; bar=\"b\\a\\z\", permessage-deflate"], &d).unwrap(),
            "permessage-deflate"
        );
    }

    #[test]
    fn quoted_content_must_be_a_token() {
        // RFC 6455 §9.1: a comma or space inside quotes is not a token: the value is malformed,
        // so the whole header is unusable (not split at the quoted comma).
        for h in [
            "foo; bar=\"a,b\", permessage-deflate",
            "foo; bar=\"a b\", permessage-deflate",
            "foo; bar=\"a\\ b\", permessage-deflate",
            "foo; bar=\"\", permessage-deflate",
            "permessage-deflate; server_max_window_bits=\"10\"x",
        ] {
            assert_eq!(shared(&[h]), None, "{h}");
        }
    }

    #[test]
    fn bad_inputs_7_unclosed_quote() {
        for h in [
            "permessage-deflate; server_max_window_bits=\"10",
            "permessage-deflate; server_max_window_bits=\"",
            "permessage-deflate; server_max_window_bits=\"1\\",
            "permessage-deflate; x=\"a, permessage-deflate",
            "\"",
        ] {
            assert_eq!(shared(&[h]), None, "{h}");
        }
    }

    #[test]
    fn whitespace_and_empty_elements() {
        let d = cfg(ContextMode::Dedicated);
        assert_eq!(
            answer(
                &[" \t, ,permessage-deflate \t;\t client_max_window_bits \t=\t 10 \t, foo ,"],
                &d
            )
            .unwrap(),
            "permessage-deflate; client_max_window_bits=10"
        );
        assert_eq!(neg(&[""], &d), None);
        assert_eq!(neg(&[" , ,, "], &d), None);
        assert_eq!(neg(&[], &d), None);
    }

    #[test]
    fn bad_inputs_7_garbage_is_malformed_not_a_panic() {
        for h in [
            "permessage-deflate client_max_window_bits",
            "permessage-deflate;",
            "permessage-deflate; ;",
            "permessage-deflate;;client_max_window_bits",
            "permessage-deflate; =10",
            "permessage-deflate; a==1",
            "permessage-deflate; a=1=2",
            "=permessage-deflate",
            "permessage-deflate\r\n",
            "permessage-deflate\0",
            "permessage-deflate; x=\u{e9}",
            "permessage-d\u{e9}flate",
            "(permessage-deflate)",
            ";permessage-deflate",
        ] {
            assert_eq!(shared(&[h]), None, "{h:?}");
        }
        let bytes: &[u8] = b"permessage-deflate; x=\xff\xfe";
        assert_eq!(
            negotiate([bytes].into_iter(), &DeflateConfig::default()),
            None
        );
    }

    #[test]
    fn names_are_case_sensitive() {
        assert_eq!(shared(&["Permessage-Deflate"]), None);
        assert_eq!(shared(&["PERMESSAGE-DEFLATE"]), None);
    }

    /// BAD_INPUTS 7: `constructor`-style names are plain unknown tokens.
    #[test]
    fn bad_inputs_7_constructor_proto_names_ignored() {
        assert_eq!(
            shared(&[
                "constructor, __proto__; __proto__=1; constructor, toString; hasOwnProperty=\"x\", \
                 permessage-deflate"
            ])
            .unwrap(),
            SHARED_ANSWER
        );
        for offer in [
            "permessage-deflate; constructor",
            "permessage-deflate; __proto__",
            "permessage-deflate; __proto__=server_max_window_bits",
            "permessage-deflate; prototype=1",
        ] {
            assert_eq!(shared(&[offer]), None, "{offer}");
        }
    }

    // ---- linear time (BAD_INPUTS 7) ----

    #[test]
    fn bad_inputs_7_ten_thousand_params_linear() {
        let mut h = String::from("permessage-deflate");
        for i in 0..10_000 {
            h.push_str(&format!("; p{i}=\"v{i}\""));
        }
        h.push_str(", permessage-deflate; client_max_window_bits");
        let t = Instant::now();
        assert_eq!(shared(&[&h]).unwrap(), SHARED_ANSWER);
        assert_fast("10,000 params", t);

        // 10,000 known params (duplicates) in one offer, then 10,000 offers.
        let mut h = String::from("permessage-deflate");
        for _ in 0..10_000 {
            h.push_str("; server_no_context_takeover");
        }
        for _ in 0..10_000 {
            h.push_str(", permessage-deflate; server_max_window_bits=8");
        }
        let t = Instant::now();
        assert_eq!(shared(&[&h]), None);
        assert_fast("10,000 duplicates and offers", t);
    }

    #[test]
    fn bad_inputs_7_one_megabyte_headers_linear() {
        const MB: usize = 1 << 20;
        let long_token = "a".repeat(MB);
        let unclosed = format!("permessage-deflate; x=\"{}", "a".repeat(MB));
        let escapes = format!("permessage-deflate; x=\"{}\"", "\\a".repeat(MB / 2));
        let commas = format!("{}permessage-deflate", ", ".repeat(MB / 2));
        let offers = "permessage-deflate; foo, ".repeat(MB / 25);
        let spaces = format!(
            "permessage-deflate{}; client_max_window_bits",
            " ".repeat(MB)
        );
        let cases: [(&str, &str, bool); 6] = [
            ("long token", &long_token, false),
            ("unclosed quote", &unclosed, false),
            ("escapes", &escapes, false),
            ("commas", &commas, true),
            ("declined offers", &offers, false),
            ("spaces", &spaces, true),
        ];
        for (what, h, ok) in cases {
            assert!(h.len() >= MB - 32, "{what}: {}", h.len());
            let t = Instant::now();
            assert_eq!(shared(&[h]).is_some(), ok, "{what}");
            assert_fast(what, t);
            let t = Instant::now();
            let _ = accept_response(h.as_bytes());
            assert_fast(what, t);
        }
    }

    /// No panic on any input: pseudo-random headers from the grammar's pieces, and every
    /// prefix of a complicated header.
    #[test]
    fn bad_inputs_7_random_headers_never_panic() {
        const PIECES: &[&[u8]] = &[
            b"permessage-deflate",
            b"server_no_context_takeover",
            b"client_no_context_takeover",
            b"server_max_window_bits",
            b"client_max_window_bits",
            b"=",
            b";",
            b",",
            b"\"",
            b"\\",
            b" ",
            b"\t",
            b"8",
            b"9",
            b"10",
            b"15",
            b"16",
            b"x",
            b"\0",
            b"\xff",
            b"\r\n",
        ];
        let modes = [
            cfg(ContextMode::Shared),
            cfg(ContextMode::InflateWindow),
            DeflateConfig {
                server_max_window_bits: 12,
                client_max_window_bits: 10,
                ..cfg(ContextMode::Dedicated)
            },
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut agreed = 0;
        for _ in 0..20_000 {
            let mut h = Vec::new();
            for _ in 0..next() % 16 {
                h.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            let _ = accept_response(&h);
            for c in &modes {
                if let Some(a) = negotiate([h.as_slice()].into_iter(), c) {
                    agreed += 1;
                    check_round_trip(&a);
                }
            }
        }
        assert!(agreed > 0);
        let long = b"x; a=\"b\\c\", permessage-deflate ; server_max_window_bits=\"1\\2\"; \
                     client_max_window_bits , y";
        for end in 0..=long.len() {
            let h = &long[..end];
            let _ = accept_response(h);
            for c in &modes {
                if let Some(a) = negotiate([h].into_iter(), c) {
                    check_round_trip(&a);
                }
            }
        }
    }

    /// Invariants of a server agreement, and its response read back by a client that offered
    /// client_max_window_bits gives the same agreement.
    fn check_round_trip(a: &Agreed) {
        assert!((9..=15).contains(&a.server_max_window_bits), "{a:?}");
        assert!((8..=15).contains(&a.client_max_window_bits), "{a:?}");
        let mut out = String::new();
        a.response(&mut out);
        let back = accept_response_to(
            out.as_bytes(),
            ClientOffer {
                client_max_window_bits: true,
            },
        );
        if a.client_max_window_bits == 8 {
            assert!(back.is_err(), "{out}");
        } else {
            assert_eq!(back, Ok(*a), "{out}");
        }
    }

    // ---- client side ----

    #[test]
    fn client_offer_string() {
        let mut out = String::from("X: ");
        client_offer(&mut out);
        assert_eq!(out, "X: permessage-deflate; client_max_window_bits");
    }

    #[test]
    fn client_offer_negotiate_response_accept_round_trip() {
        let mut offer = String::new();
        client_offer(&mut offer);
        let configs = [
            DeflateConfig::default(),
            cfg(ContextMode::InflateWindow),
            cfg(ContextMode::Dedicated),
            DeflateConfig {
                server_max_window_bits: 10,
                client_max_window_bits: 9,
                ..cfg(ContextMode::Shared)
            },
            DeflateConfig {
                server_max_window_bits: 15,
                client_max_window_bits: 12,
                ..cfg(ContextMode::Dedicated)
            },
        ];
        for c in configs {
            let server = neg(&[&offer], &c).unwrap();
            let mut resp = String::new();
            server.response(&mut resp);
            let client = accept_response(resp.as_bytes()).unwrap();
            assert_eq!(client, server, "{c:?} {resp}");
        }
        let server = neg(
            &[&offer],
            &DeflateConfig {
                server_max_window_bits: 10,
                client_max_window_bits: 9,
                ..cfg(ContextMode::Shared)
            },
        )
        .unwrap();
        let mut resp = String::new();
        server.response(&mut resp);
        assert_eq!(
            resp,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=9"
        );
    }

    #[test]
    fn accept_response_valid_answers() {
        assert_eq!(
            accept_response(b"permessage-deflate"),
            Ok(Agreed::default())
        );
        let a = accept_response(SHARED_ANSWER.as_bytes()).unwrap();
        assert!(a.server_no_context_takeover && a.client_no_context_takeover);
        let a = accept_response(
            b" permessage-deflate ; server_max_window_bits=\"1\\1\" ;client_max_window_bits=9 ",
        )
        .unwrap();
        assert_eq!(
            (a.server_max_window_bits, a.client_max_window_bits),
            (11, 9)
        );
        // A server may compress with 8 bits; we inflate with 9 (BAD_INPUTS 45).
        let a = accept_response(b"permessage-deflate; server_max_window_bits=8").unwrap();
        assert_eq!(a.server_max_window_bits, 8);
    }

    #[test]
    fn bad_inputs_44_accept_response_unknown_param_fails() {
        for r in [
            "permessage-deflate; foo",
            "permessage-deflate; __proto__",
            "permessage-deflate; server_max_window_bit=10",
        ] {
            assert!(accept_response(r.as_bytes()).is_err(), "{r}");
        }
    }

    #[test]
    fn bad_inputs_44_accept_response_duplicate_param_fails() {
        for r in [
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=11",
            "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
        ] {
            assert_eq!(
                accept_response(r.as_bytes()),
                Err("duplicate permessage-deflate parameter"),
                "{r}"
            );
        }
    }

    #[test]
    fn bad_inputs_44_accept_response_bad_values_fail() {
        for v in ["7", "16", "abc", "08", "\"\"", "\"16\"", "-1", "1"] {
            for p in ["server_max_window_bits", "client_max_window_bits"] {
                let r = format!("permessage-deflate; {p}={v}");
                assert!(accept_response(r.as_bytes()).is_err(), "{r}");
            }
        }
        for r in [
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"x\"",
            "permessage-deflate; server_max_window_bits",
            // No value on client_max_window_bits in a response (§7.1.2.2).
            "permessage-deflate; client_max_window_bits",
        ] {
            assert!(accept_response(r.as_bytes()).is_err(), "{r}");
        }
    }

    #[test]
    fn bad_inputs_45_accept_response_client_window_8_fails() {
        assert_eq!(
            accept_response(b"permessage-deflate; client_max_window_bits=8"),
            Err("client_max_window_bits=8 is not supported (zlib)")
        );
    }

    #[test]
    fn bad_inputs_44_accept_response_client_max_window_bits_not_offered_fails() {
        let without = ClientOffer {
            client_max_window_bits: false,
        };
        assert_eq!(
            accept_response_to(b"permessage-deflate; client_max_window_bits=10", without),
            Err("client_max_window_bits in the response but not in the offer")
        );
        assert_eq!(
            accept_response_to(b"permessage-deflate; server_max_window_bits=10", without)
                .map(|a| a.server_max_window_bits),
            Ok(10)
        );
    }

    #[test]
    fn accept_response_wrong_extensions_fail() {
        for r in [
            "",
            " , ",
            "x-webkit-deflate-frame",
            "Permessage-Deflate",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate, foo",
            "foo, permessage-deflate",
            "permessage-deflate; x=\"unclosed",
            "permessage-deflate;",
            "permessage-deflate\r\n",
        ] {
            assert!(accept_response(r.as_bytes()).is_err(), "{r:?}");
        }
    }

    #[test]
    fn response_formats_all_params() {
        let a = Agreed {
            server_no_context_takeover: true,
            client_no_context_takeover: false,
            server_max_window_bits: 9,
            client_max_window_bits: 15,
            server_max_window_bits_in_response: true,
            client_max_window_bits_in_response: true,
        };
        let mut out = String::new();
        a.response(&mut out);
        assert_eq!(
            out,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; \
             client_max_window_bits=15"
        );
        let mut out = String::new();
        Agreed {
            server_max_window_bits: 200,
            server_max_window_bits_in_response: true,
            ..Agreed::default()
        }
        .response(&mut out);
        assert_eq!(out, "permessage-deflate; server_max_window_bits=200");
    }
}
