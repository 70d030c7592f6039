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
