//! Bodies shared by the cargo-fuzz targets (tests/fuzz) and the pseudo-random smoke test
//! (tests/fuzz_smoke.rs).
#![allow(dead_code)]

use myriad::proto::decoder::{Decoder, Event};
use myriad::proto::handshake::{self, HeadLimits};
use myriad::proto::mask::Kernel;
use myriad::proto::{Limits, Role};

#[derive(Debug, PartialEq, Eq)]
enum Out {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, Vec<u8>),
    Compressed(bool, Vec<u8>),
    Error(myriad::ProtocolError),
}

fn run(stream: &[u8], cuts: &[usize]) -> Vec<Out> {
    let limits = Limits {
        role: Role::Server,
        accept_unmasked: stream.first().is_some_and(|b| b & 1 == 1),
        max_frame: 4096,
        max_message: 8192,
        max_fragments: 64,
    };
    let rsv1 = stream.get(1).is_some_and(|b| b & 1 == 1);
    let mut out = Vec::new();
    let mut decoder = Decoder::new();
    let mut start = 0;
    let mut ends: Vec<usize> = cuts
        .iter()
        .copied()
        .filter(|&c| c <= stream.len())
        .collect();
    ends.sort_unstable();
    ends.push(stream.len());
    for end in ends {
        if end < start {
            continue;
        }
        // Each read lands in a buffer of its own, as reads into the server's receive buffer do.
        let mut buf = stream[start..end].to_vec();
        start = end;
        let mut closed = false;
        let r = decoder.feed(&mut buf, &limits, rsv1, Kernel::detect(), &mut |e| {
            out.push(match e {
                Event::Text(t) => Out::Text(t.to_owned()),
                Event::Binary(b) => Out::Binary(b.to_vec()),
                Event::Ping(b) => Out::Ping(b.to_vec()),
                Event::Pong(b) => Out::Pong(b.to_vec()),
                Event::Compressed { text, data } => Out::Compressed(text, data.to_vec()),
                Event::Close(c, r) => {
                    closed = true;
                    Out::Close(c, r.to_vec())
                }
            });
            true
        });
        if let Err(e) = r {
            out.push(Out::Error(e));
            return out;
        }
        if closed {
            return out;
        }
    }
    out
}

/// The decoder's answer does not depend on where reads split the bytes (BAD_INPUTS 20).
pub fn decoder_split_invariance(data: &[u8]) {
    let whole = run(data, &[]);
    // Cut points derived from the data itself, so the fuzzer explores them too.
    let cuts: Vec<usize> = data
        .iter()
        .take(8)
        .map(|b| usize::from(*b) % (data.len() + 1))
        .collect();
    assert_eq!(run(data, &cuts), whole, "cuts {cuts:?}");
    if data.len() <= 64 {
        let every: Vec<usize> = (1..data.len()).collect();
        assert_eq!(run(data, &every), whole, "1-byte reads");
    }
}

/// Any head gets an answer without panicking; the incremental scan agrees with a whole scan.
pub fn handshake_any_head(data: &[u8]) {
    let limits = HeadLimits {
        max_head_bytes: 2048,
        max_request_line: 512,
    };
    let whole = handshake::find_head_end(data, 0);
    let mut found = None;
    for i in 1..=data.len() {
        if let Some(e) = handshake::find_head_end(&data[..i], i - 1) {
            found = Some(e);
            break;
        }
    }
    assert_eq!(found, whole);
    let head = match whole {
        Some(end) => &data[..end],
        None => {
            let _ = handshake::check_incomplete(data, &limits);
            return;
        }
    };
    let _ = handshake::check_incomplete(head, &limits);
    let mut headers = [httparse::EMPTY_HEADER; handshake::MAX_HEADERS];
    let peer = "127.0.0.1:1".parse().expect("addr");
    if let Ok(req) = handshake::parse_request(head, &mut headers, peer) {
        let _ = req.protocols().count();
        let _ = req.extensions().count();
        let mut out = Vec::new();
        handshake::write_accept(&mut out, req.key(), req.protocols().next(), None, &[]);
        assert!(out.starts_with(b"HTTP/1.1 101"));
    }
}

/// Extension negotiation (RFC 7692 §5, §7): any header values give an answer (or none) without
/// panicking; an agreement, written back as the server's response, is accepted by our client
/// when it answers our client's own offer; the same values in one header or split in two agree.
pub fn negotiation_any_offer(data: &[u8]) {
    use myriad::proto::deflate::{ContextMode, DeflateConfig, accept_response, negotiate};
    for mode in [
        ContextMode::Shared,
        ContextMode::InflateWindow,
        ContextMode::Dedicated,
    ] {
        let cfg = DeflateConfig {
            enabled: true,
            mode,
            ..DeflateConfig::default()
        };
        let whole = negotiate(std::iter::once(data), &cfg);
        if let Some(a) = &whole {
            let mut answer = String::new();
            a.response(&mut answer);
            assert!(answer.starts_with("permessage-deflate"), "{answer}");
            // The server never answers with a window our zlib cannot compress with.
            assert!(a.server_max_window_bits >= 9);
        }
        // Cut into two header values at a comma: each value is parsed on its own, so an
        // agreement found in the whole is found in the parts only if it lies within one of them.
        if let Some(cut) = data.iter().position(|&b| b == b',') {
            let _ = negotiate([&data[..cut], &data[cut + 1..]].into_iter(), &cfg);
        }
        let _ = accept_response(data);
    }
}

/// permessage-deflate's inflate (RFC 7692 §7.2.2): any bytes, whole or split across frames
/// anywhere, with or without a primed window, give the same answer (or the same error) and
/// never more output than the limit.
pub fn inflate_any_message(data: &[u8]) {
    use myriad::proto::deflate::{Deflater, Inflater};
    let max = 4096;
    let window: Vec<u8> = data.iter().rev().take(300).copied().collect();
    for primed in [None, Some(window.as_slice())] {
        let mut whole = Vec::new();
        let w = Inflater::new().inflate(&[data], primed, max, &mut whole);
        assert!(whole.len() <= max);
        for cut in [0, data.len() / 3, data.len() / 2, data.len()] {
            let mut split = Vec::new();
            let s = Inflater::new().inflate(&[&data[..cut], &data[cut..]], primed, max, &mut split);
            assert_eq!(s.is_ok(), w.is_ok(), "cut {cut}");
            if s.is_ok() {
                assert_eq!(split, whole, "cut {cut}");
            }
        }
    }
    // And what our deflater makes of these bytes inflates back to them, through a window.
    let mut packed = Vec::new();
    Deflater::new(15, 6).compress(data, true, &mut packed);
    let mut back = Vec::new();
    Inflater::new()
        .inflate(&[&packed], None, data.len() + 1, &mut back)
        .expect("our own deflate output inflates");
    assert_eq!(back, data);
}

/// The connection session (RFC 6455 §5.5, §7): any sequence of inputs (peer frames, sends,
/// timers, EOF) leaves it consistent: a close is reported at most once, nothing is sent after
/// the state machine closed, and every frame it writes is a valid server frame.
pub fn session_any_inputs(data: &[u8]) {
    use myriad::Fragment;
    use myriad::proto::frame::{self, OpCode};
    use myriad::proto::session::{Session, State, Transmit};

    #[derive(Default)]
    struct Wire {
        bytes: Vec<u8>,
        backlog: usize,
    }
    impl Transmit for Wire {
        fn backlog(&self) -> usize {
            self.backlog
        }
        fn frame(&mut self, header: &[u8], payload: &[u8]) {
            self.bytes.extend_from_slice(header);
            self.bytes.extend_from_slice(payload);
        }
        fn defer_pong(&mut self, payload: &[u8]) {
            assert!(payload.len() <= 125);
        }
    }
    let mut s = Session::new();
    let mut w = Wire::default();
    let mut reports = 0;
    for pair in data.chunks(2) {
        let (op, arg) = (pair[0], pair.get(1).copied().unwrap_or(0));
        let before = s.state();
        let sent_before = w.bytes.len();
        let payload = vec![b'x'; usize::from(arg % 130)];
        let fx = match op % 12 {
            0 => s.on_close_frame(1000 + u16::from(arg % 14), b"r", &mut w),
            1 => {
                s.on_ping(&payload[..payload.len().min(125)], &mut w);
                Default::default()
            }
            2 => s.fail(1002, "protocol", &mut w),
            3 => s.on_eof("eof"),
            4 => s.on_timeout(arg % 2 == 0, &mut w),
            5 => {
                let _ = s.on_activity(arg % 2 == 0);
                Default::default()
            }
            6 => {
                let _ = s.send_message(OpCode::Text, arg % 2 == 0, &payload, &mut w);
                Default::default()
            }
            7 => {
                let part =
                    [Fragment::First, Fragment::Continue, Fragment::Last][usize::from(arg % 3)];
                let _ = s.send_fragment(part, arg % 2 == 0, &payload, &mut w);
                Default::default()
            }
            8 => {
                let _ = s.ping(&payload, &mut w);
                Default::default()
            }
            9 => s
                .close(1000 + u16::from(arg % 4), "bye", &mut w)
                .unwrap_or_default(),
            10 => {
                w.backlog = usize::from(arg) * 100;
                Default::default()
            }
            _ => s.on_close_frame(1005, b"", &mut w),
        };
        reports += usize::from(fx.report.is_some());
        assert!(reports <= 1, "a close reported twice");
        if before == State::Closed {
            assert_eq!(
                w.bytes.len(),
                sent_before,
                "sent after closing (op {})",
                op % 12
            );
        }
    }
    // Every byte written parses as a sequence of valid unmasked server frames.
    let limits = myriad::proto::Limits::trusting(myriad::proto::Role::Client);
    let mut at = 0;
    while at < w.bytes.len() {
        let h = frame::decode(&w.bytes[at..], &limits, true)
            .expect("a valid frame")
            .expect("a whole header");
        at += h.header_len + h.len as usize;
    }
    assert_eq!(at, w.bytes.len());
}

/// A fallback body: any POST body is parsed or refused, and what parses is read back the same
/// from its canonical form; any message becomes an SSE event that an SSE parser (the HTML
/// standard's rules) reads back as it was; any text is a session id or not, without panicking.
pub fn fallback_any(data: &[u8]) {
    use myriad::internals::fallback as fb;
    if let Ok(frames) = fb::uplink(data) {
        let mut again = Vec::new();
        for (kind, payload) in &frames {
            again.push(*kind);
            again.extend_from_slice(format!("{}:", payload.len()).as_bytes());
            again.extend_from_slice(payload);
        }
        assert_eq!(fb::uplink(&again).as_ref(), Ok(&frames));
    }
    let text = data.first().is_some_and(|b| b & 1 == 1);
    let payload = data.get(1..).unwrap_or_default();
    if text && std::str::from_utf8(payload).is_err() {
        return;
    }
    let ev = fb::event(text, payload);
    let got = sse_data(&ev);
    assert_eq!(got.len(), 1, "one event: {ev:?}");
    let data = &got[0];
    match data.split_at(1) {
        ("t", rest) => assert_eq!(rest.as_bytes(), payload),
        ("u" | "b", rest) => {
            assert_eq!(unbase64(rest), payload);
            assert_eq!(data.starts_with('u'), text);
        }
        _ => panic!("unknown event {data:?}"),
    }
    let _ = fb::session_id_valid(std::str::from_utf8(payload).unwrap_or_default());
}

/// Standard base64 with padding, decoded (the fuzz crate has no base64 dependency).
fn unbase64(s: &str) -> Vec<u8> {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    assert_eq!(s.len() % 4, 0, "padded: {s:?}");
    let mut out = Vec::new();
    for quad in s.as_bytes().chunks(4) {
        let mut v = 0u32;
        let mut n = 0;
        for &c in quad {
            v <<= 6;
            if c != b'=' {
                v |= ABC.iter().position(|&a| a == c).expect("base64 digit") as u32;
                n += 1;
            }
        }
        out.extend_from_slice(&v.to_be_bytes()[1..n]);
    }
    out
}

/// The data of each event in `stream`, parsed as the HTML standard says (lines at CR, LF or
/// CRLF; each `data` field's value and an LF into the buffer; one space after the colon dropped;
/// an empty buffer dispatches nothing; the buffer's last LF dropped).
fn sse_data(stream: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(stream).expect("events are UTF-8");
    let mut out = Vec::new();
    let mut data: Option<String> = None;
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            usize::from(end < rest.len())
        };
        rest = &rest[end + skip..];
        if line.is_empty() {
            if let Some(mut d) = data.take().filter(|d| !d.is_empty()) {
                d.pop();
                out.push(d);
            }
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        if field == "data" {
            let d = data.get_or_insert_with(String::new);
            d.push_str(value);
            d.push('\n');
        }
    }
    out
}
