//! From received bytes to messages: frame headers, in-place unmasking, fragment assembly, UTF-8
//! and the control frames in between (RFC 6455 §5.4, §5.5, §8.1).
//!
//! [`Decoder::feed`] walks the bytes of one read. A frame whose payload is wholly in those bytes
//! is unmasked where it lies and, when it is a whole message, handed out as a slice of the same
//! buffer. Only a fragmented message, a frame cut by the end of the read, or a header cut in two
//! leaves state behind in the [`Decoder`]; a header cut by a read is kept in the decoder and
//! completed from the next read's bytes, so callers simply feed each read as it comes. The
//! decoder knows nothing of sockets or clocks; it is tested by feeding the same bytes split at
//! every offset.
//!
//! [`Decoder::is_idle`] says when nothing is in progress: a caller that keeps decoders only for
//! the connections that need one (the server boxes them) drops it then.

use super::close;
use super::frame::{self, Header, MAX_HEADER, OpCode};
use super::limits::Limits;
use super::mask::Kernel;
use super::utf8::Utf8Stream;
use crate::error::ProtocolError;

/// Bytes charged per fragment against the message limit, so that a flood of empty fragments
/// runs into the limit too (BAD_INPUTS 26).
pub const FRAGMENT_OVERHEAD: u64 = 16;

/// What the bytes decoded to.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete, valid text message.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping and its payload.
    Ping(&'a [u8]),
    /// A pong and its payload.
    Pong(&'a [u8]),
    /// A valid Close frame: code (1005 when absent) and reason.
    Close(u16, &'a [u8]),
    /// A complete compressed message (RSV1 on its first frame, RFC 7692 §6): still deflated, so
    /// its UTF-8 (for text) is checked by the caller after inflating.
    Compressed {
        /// Text or binary.
        text: bool,
        /// The compressed payload of all its frames, in order.
        data: &'a [u8],
    },
}

#[derive(Debug)]
struct FrameInProgress {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    remaining: u64,
    done: u64,
}

#[derive(Debug)]
struct Assembly {
    text: bool,
    compressed: bool,
    buf: Vec<u8>,
    fragments: u32,
    charged: u64,
    utf8: Utf8Stream,
}

/// Decoder state kept between reads: a header cut by a read, a frame cut by a read, a fragmented
/// message, a control frame cut by a read.
#[derive(Debug)]
pub struct Decoder {
    head: [u8; MAX_HEADER],
    head_len: u8,
    frame: Option<FrameInProgress>,
    message: Option<Assembly>,
    control: [u8; 125],
    control_len: u8,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder {
            head: [0; MAX_HEADER],
            head_len: 0,
            frame: None,
            message: None,
            control: [0; 125],
            control_len: 0,
        }
    }
}

/// Whether the caller wants more events after this one.
pub type Continue = bool;

impl Decoder {
    /// A decoder with nothing in progress.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Nothing is in progress: the decoder holds no byte of the peer's.
    pub fn is_idle(&self) -> bool {
        self.head_len == 0 && self.frame.is_none() && self.message.is_none()
    }

    /// Bytes of the peer's held here: a message being assembled, a control frame and a header cut
    /// by reads.
    pub fn buffered(&self) -> usize {
        self.message.as_ref().map_or(0, |m| m.buf.len())
            + usize::from(self.control_len)
            + usize::from(self.head_len)
    }

    /// Whether a message or a frame is waiting for more bytes (for message-progress timeouts).
    pub fn in_message(&self) -> bool {
        self.message.is_some() || self.frame.is_some()
    }

    /// Decodes the bytes of one read, `data`, which continue whatever earlier reads left.
    /// `rsv1` says whether permessage-deflate was negotiated (RFC 7692 §6: RSV1 marks a
    /// compressed message).
    ///
    /// Calls `on` for every event, in order; stops early when `on` returns false or after a
    /// Close. Payloads are unmasked in place, in `data`. Returns the first protocol error.
    pub fn feed(
        &mut self,
        data: &mut [u8],
        lim: &Limits,
        rsv1: bool,
        kernel: Kernel,
        on: &mut dyn FnMut(Event<'_>) -> Continue,
    ) -> Result<(), ProtocolError> {
        let mut pos = 0usize;
        loop {
            // 1. The payload of a frame cut by an earlier read.
            if let Some(f) = self.frame.as_mut() {
                let avail = data.len() - pos;
                if avail == 0 {
                    return Ok(());
                }
                // `remaining` may exceed usize on 32-bit targets; min first, then narrow.
                let take = usize::try_from(f.remaining.min(avail as u64)).unwrap_or(avail);
                let chunk = &mut data[pos..pos + take];
                if let Some(k) = f.mask {
                    kernel.apply(chunk, k, (f.done % 4) as usize);
                }
                pos += take;
                f.remaining -= take as u64;
                f.done += take as u64;
                if f.opcode.is_control() {
                    let at = usize::from(self.control_len);
                    self.control[at..at + take].copy_from_slice(chunk);
                    self.control_len += take as u8;
                } else if let Some(m) = self.message.as_mut() {
                    m.buf.extend_from_slice(chunk);
                    if m.text && !m.compressed {
                        m.utf8.feed(chunk)?;
                    }
                }
                if f.remaining > 0 {
                    return Ok(());
                }
                let (opcode, fin) = (f.opcode, f.fin);
                self.frame = None;
                if opcode.is_control() {
                    let n = usize::from(self.control_len);
                    self.control_len = 0;
                    let payload = self.control;
                    if !control(opcode, &payload[..n], on)? {
                        return Ok(());
                    }
                } else if fin && !self.finish(on)? {
                    return Ok(());
                }
                continue;
            }

            // 2. A new frame header, perhaps begun by an earlier read.
            if pos == data.len() {
                return Ok(());
            }
            let Some(h) = self.header(data, &mut pos, lim, rsv1)? else {
                return Ok(());
            };
            self.check_sequence(&h, lim)?;
            let avail = (data.len() - pos) as u64;
            if h.len > avail {
                // Cut by the end of this read: keep going in step 1.
                if !h.opcode.is_control() {
                    self.start_or_continue(&h);
                }
                self.frame = Some(FrameInProgress {
                    opcode: h.opcode,
                    fin: h.fin,
                    mask: h.mask,
                    remaining: h.len,
                    done: 0,
                });
                continue;
            }
            // The whole payload is here: unmask in place. `h.len <= avail` so it fits in usize.
            let len = h.len as usize;
            let payload = &mut data[pos..pos + len];
            pos += len;
            if let Some(k) = h.mask {
                kernel.apply(payload, k, 0);
            }
            let go = match h.opcode {
                OpCode::Close | OpCode::Ping | OpCode::Pong => control(h.opcode, payload, on)?,
                OpCode::Text | OpCode::Binary if h.fin => {
                    // A whole message in one frame, in place: the fast path, no copy.
                    if h.rsv1 {
                        on(Event::Compressed {
                            text: h.opcode == OpCode::Text,
                            data: payload,
                        })
                    } else if h.opcode == OpCode::Text {
                        let text = simdutf8::basic::from_utf8(payload)
                            .map_err(|_| ProtocolError::InvalidUtf8)?;
                        on(Event::Text(text))
                    } else {
                        on(Event::Binary(payload))
                    }
                }
                _ => {
                    let m = self.start_or_continue(&h);
                    m.buf.extend_from_slice(payload);
                    if m.text && !m.compressed {
                        m.utf8.feed(payload)?;
                    }
                    if h.fin { self.finish(on)? } else { true }
                }
            };
            if !go {
                return Ok(());
            }
        }
    }

    /// Decodes the header at `data[*pos..]`, completing one that an earlier read cut with this
    /// read's first bytes; advances `pos` past it. `None` when the read ends inside it (its
    /// bytes are kept).
    fn header(
        &mut self,
        data: &[u8],
        pos: &mut usize,
        lim: &Limits,
        rsv1: bool,
    ) -> Result<Option<Header>, ProtocolError> {
        let rest = &data[*pos..];
        let had = usize::from(self.head_len);
        if had == 0 {
            let h = frame::decode(rest, lim, rsv1)?;
            match h {
                Some(h) => *pos += h.header_len,
                None => {
                    // A header is at most MAX_HEADER bytes, so what is left is shorter.
                    self.head[..rest.len()].copy_from_slice(rest);
                    self.head_len = rest.len() as u8;
                    *pos = data.len();
                }
            }
            return Ok(h);
        }
        // Complete the kept bytes with as many new ones as a header can need.
        let take = (MAX_HEADER - had).min(rest.len());
        self.head[had..had + take].copy_from_slice(&rest[..take]);
        match frame::decode(&self.head[..had + take], lim, rsv1)? {
            Some(h) => {
                self.head_len = 0;
                *pos += h.header_len - had;
                Ok(Some(h))
            }
            None => {
                self.head_len = (had + take) as u8;
                *pos += take;
                Ok(None)
            }
        }
    }

    /// RFC 6455 §5.4 sequencing, and the message limits, checked from the header alone.
    fn check_sequence(&self, h: &Header, lim: &Limits) -> Result<(), ProtocolError> {
        let message = self.message.as_ref();
        // RFC 7692 §6.1: RSV1 only on the first frame of a message.
        if h.rsv1 && h.opcode == OpCode::Continuation {
            return Err(ProtocolError::ReservedBits);
        }
        match (h.opcode, message) {
            (OpCode::Continuation, None) => Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => Err(ProtocolError::ExpectedContinuation),
            (op, m) if !op.is_control() => {
                let (charged, fragments) = m.map_or((0, 0), |m| (m.charged, m.fragments));
                if fragments >= lim.max_fragments {
                    return Err(ProtocolError::TooManyFragments {
                        max: lim.max_fragments,
                    });
                }
                // h.len <= max_frame < 2^63, so this cannot wrap; saturate anyway.
                let size = charged
                    .saturating_add(h.len)
                    .saturating_add(if h.fin && m.is_none() {
                        0
                    } else {
                        FRAGMENT_OVERHEAD
                    });
                if size > lim.max_message {
                    return Err(ProtocolError::MessageTooLarge {
                        size,
                        max: lim.max_message,
                    });
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn start_or_continue(&mut self, h: &Header) -> &mut Assembly {
        let m = self.message.get_or_insert_with(|| Assembly {
            text: h.opcode == OpCode::Text,
            compressed: h.rsv1,
            buf: Vec::new(),
            fragments: 0,
            charged: 0,
            utf8: Utf8Stream::new(),
        });
        m.fragments += 1;
        m.charged += h.len + FRAGMENT_OVERHEAD;
        m
    }

    /// The last fragment is in: validate the end of the text and hand the message out.
    fn finish(
        &mut self,
        on: &mut dyn FnMut(Event<'_>) -> Continue,
    ) -> Result<Continue, ProtocolError> {
        let Some(mut m) = self.message.take() else {
            return Ok(true);
        };
        if m.compressed {
            return Ok(on(Event::Compressed {
                text: m.text,
                data: &m.buf,
            }));
        }
        if m.text {
            m.utf8.finish()?;
            // Already checked piece by piece; this second pass only yields the &str.
            let text =
                simdutf8::basic::from_utf8(&m.buf).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(on(Event::Text(text)))
        } else {
            Ok(on(Event::Binary(&m.buf)))
        }
    }
}

fn control(
    opcode: OpCode,
    payload: &[u8],
    on: &mut dyn FnMut(Event<'_>) -> Continue,
) -> Result<Continue, ProtocolError> {
    Ok(match opcode {
        OpCode::Ping => on(Event::Ping(payload)),
        OpCode::Pong => on(Event::Pong(payload)),
        _ => {
            let (code, reason) = close::decode(payload)?;
            on(Event::Close(code, reason));
            false
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::encode;
    use crate::proto::limits::Role;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn lim() -> Limits {
        Limits {
            role: Role::Server,
            accept_unmasked: false,
            max_frame: 1 << 20,
            max_message: 1 << 20,
            max_fragments: 1000,
        }
    }

    fn masked(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut h = [0u8; MAX_HEADER];
        let n = encode(&mut h, fin, false, op, Some(KEY), payload.len() as u64);
        let mut v = h[..n].to_vec();
        let mut p = payload.to_vec();
        crate::proto::mask::apply_mask_naive(&mut p, KEY, 0);
        v.extend_from_slice(&p);
        v
    }

    fn masked_rsv1(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut v = masked(fin, op, payload);
        v[0] |= 0x40;
        v
    }

    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Ev {
        Text(String),
        Binary(Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(u16, Vec<u8>),
        Compressed(bool, Vec<u8>),
        Error(ProtocolError),
    }

    /// Feeds `stream` in pieces cut at `cuts`, the way reads would deliver it: each piece in a
    /// buffer of its own, as a fresh read would land.
    fn run_with(stream: &[u8], cuts: &[usize], lim: &Limits, rsv1: bool) -> Vec<Ev> {
        let mut out = Vec::new();
        let mut decoder = Decoder::new();
        let mut start = 0;
        let mut ends: Vec<usize> = cuts.to_vec();
        ends.push(stream.len());
        for end in ends {
            let mut buf = stream[start..end].to_vec();
            start = end;
            let mut closed = false;
            let r = decoder.feed(&mut buf, lim, rsv1, Kernel::detect(), &mut |e| {
                out.push(match e {
                    Event::Text(t) => Ev::Text(t.to_owned()),
                    Event::Binary(b) => Ev::Binary(b.to_vec()),
                    Event::Ping(b) => Ev::Ping(b.to_vec()),
                    Event::Pong(b) => Ev::Pong(b.to_vec()),
                    Event::Close(c, r) => {
                        closed = true;
                        Ev::Close(c, r.to_vec())
                    }
                    Event::Compressed { text, data } => Ev::Compressed(text, data.to_vec()),
                });
                true
            });
            if let Err(e) = r {
                out.push(Ev::Error(e));
                return out;
            }
            if closed {
                return out;
            }
        }
        out
    }

    fn run(stream: &[u8], cuts: &[usize], lim: &Limits) -> Vec<Ev> {
        run_with(stream, cuts, lim, false)
    }

    /// BAD_INPUTS 20: one split at every offset, and 1-byte reads, give the same events.
    fn same_at_every_split(stream: &[u8], want: &[Ev]) {
        assert_eq!(run(stream, &[], &lim()), want, "whole");
        for i in 0..=stream.len() {
            assert_eq!(run(stream, &[i], &lim()), want, "split at {i}");
        }
        let bytes: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(run(stream, &bytes, &lim()), want, "1-byte reads");
    }

    #[test]
    fn bad_inputs_20_single_frames_at_every_split() {
        let mut s = masked(true, OpCode::Text, "héllo".as_bytes());
        s.extend(masked(true, OpCode::Binary, &[0, 1, 2, 255]));
        s.extend(masked(true, OpCode::Binary, &vec![7u8; 300]));
        same_at_every_split(
            &s,
            &[
                Ev::Text("héllo".into()),
                Ev::Binary(vec![0, 1, 2, 255]),
                Ev::Binary(vec![7u8; 300]),
            ],
        );
    }

    // BAD_INPUTS 24: control frames between fragments are handled at once.
    #[test]
    fn bad_inputs_24_fragments_with_interleaved_control() {
        let mut s = masked(false, OpCode::Text, "frag".as_bytes());
        s.extend(masked(true, OpCode::Ping, b"p"));
        s.extend(masked(false, OpCode::Continuation, "mé".as_bytes()));
        s.extend(masked(true, OpCode::Pong, b""));
        s.extend(masked(true, OpCode::Continuation, b"nt"));
        s.extend(masked(true, OpCode::Close, &[0x03, 0xe8, b'o', b'k']));
        same_at_every_split(
            &s,
            &[
                Ev::Ping(b"p".to_vec()),
                Ev::Pong(vec![]),
                Ev::Text("fragmént".into()),
                Ev::Close(1000, b"ok".to_vec()),
            ],
        );
    }

    // BAD_INPUTS 29: a code point split across frames and reads.
    #[test]
    fn bad_inputs_29_code_point_split_across_frames() {
        let euro = "€".as_bytes();
        let mut s = masked(false, OpCode::Text, &euro[..1]);
        s.extend(masked(false, OpCode::Continuation, &euro[1..2]));
        s.extend(masked(true, OpCode::Continuation, &euro[2..]));
        same_at_every_split(&s, &[Ev::Text("€".into())]);
    }

    // BAD_INPUTS 22, 23
    #[test]
    fn bad_inputs_22_23_sequencing() {
        let s = masked(true, OpCode::Continuation, b"x");
        same_at_every_split(&s, &[Ev::Error(ProtocolError::UnexpectedContinuation)]);
        let mut s = masked(false, OpCode::Binary, b"x");
        s.extend(masked(true, OpCode::Text, b"y"));
        same_at_every_split(&s, &[Ev::Error(ProtocolError::ExpectedContinuation)]);
    }

    // BAD_INPUTS 28: fail at the first bad byte, before the frame is complete.
    #[test]
    fn bad_inputs_28_fail_fast_utf8() {
        let mut s = masked(
            true,
            OpCode::Text,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80 and more text after it",
        );
        same_at_every_split(&s, &[Ev::Error(ProtocolError::InvalidUtf8)]);
        // Only the first 17 bytes of the frame arrive: the error is already known.
        s.truncate(6 + 13);
        assert_eq!(
            run(&s, &[], &lim()),
            vec![Ev::Error(ProtocolError::InvalidUtf8)]
        );
        // Fragmented, bad byte in the second fragment.
        let mut s = masked(false, OpCode::Text, b"ok");
        s.extend(masked(true, OpCode::Continuation, b"\xc0\xaf"));
        same_at_every_split(&s, &[Ev::Error(ProtocolError::InvalidUtf8)]);
        // Truncated final sequence.
        let s = masked(true, OpCode::Text, b"ab\xe2\x82");
        same_at_every_split(&s, &[Ev::Error(ProtocolError::InvalidUtf8)]);
    }

    // BAD_INPUTS 31: binary is never checked.
    #[test]
    fn bad_inputs_31_binary_not_checked() {
        let s = masked(true, OpCode::Binary, b"\xff\xfe");
        same_at_every_split(&s, &[Ev::Binary(vec![0xff, 0xfe])]);
    }

    // BAD_INPUTS 25, 26
    #[test]
    fn bad_inputs_25_26_message_limits() {
        let small = Limits {
            max_message: 100,
            ..lim()
        };
        let mut s = Vec::new();
        s.extend(masked(false, OpCode::Binary, &[1u8; 40]));
        s.extend(masked(false, OpCode::Continuation, &[1u8; 40]));
        s.extend(masked(true, OpCode::Continuation, &[1u8; 40]));
        assert!(matches!(
            run(&s, &[], &small).last(),
            Some(Ev::Error(ProtocolError::MessageTooLarge { .. }))
        ));
        // Empty fragments are charged too.
        let few = Limits {
            max_fragments: 10,
            ..lim()
        };
        let mut s = masked(false, OpCode::Binary, b"");
        for _ in 0..20 {
            s.extend(masked(false, OpCode::Continuation, b""));
        }
        assert_eq!(
            run(&s, &[], &few),
            vec![Ev::Error(ProtocolError::TooManyFragments { max: 10 })]
        );
        let mut s = masked(false, OpCode::Binary, b"");
        for _ in 0..20 {
            s.extend(masked(false, OpCode::Continuation, b""));
        }
        assert!(matches!(
            run(&s, &[], &small).last(),
            Some(Ev::Error(ProtocolError::MessageTooLarge { .. }))
        ));
    }

    // BAD_INPUTS 36-38 through the decoder.
    #[test]
    fn bad_inputs_36_38_close_payloads() {
        same_at_every_split(
            &masked(true, OpCode::Close, &[3]),
            &[Ev::Error(ProtocolError::CloseTooShort)],
        );
        same_at_every_split(
            &masked(true, OpCode::Close, &[0x03, 0xed]),
            &[Ev::Error(ProtocolError::InvalidCloseCode(1005))],
        );
        same_at_every_split(
            &masked(true, OpCode::Close, b"\x03\xe8\xff"),
            &[Ev::Error(ProtocolError::InvalidCloseReason)],
        );
        same_at_every_split(
            &masked(true, OpCode::Close, b""),
            &[Ev::Close(1005, vec![])],
        );
    }

    #[test]
    fn events_stop_after_close() {
        let mut s = masked(true, OpCode::Close, b"\x03\xe8");
        s.extend(masked(true, OpCode::Text, b"after"));
        same_at_every_split(&s, &[Ev::Close(1000, vec![])]);
    }

    #[test]
    fn decoder_goes_idle_after_message() {
        let s = masked(true, OpCode::Binary, &[9u8; 50]);
        let mut decoder = Decoder::new();
        let mut n = 0;
        let mut count = |_: Event<'_>| {
            n += 1;
            true
        };
        decoder
            .feed(
                &mut s[..20].to_vec(),
                &lim(),
                false,
                Kernel::scalar(),
                &mut count,
            )
            .unwrap();
        assert!(!decoder.is_idle() && decoder.in_message());
        decoder
            .feed(
                &mut s[20..].to_vec(),
                &lim(),
                false,
                Kernel::scalar(),
                &mut count,
            )
            .unwrap();
        assert_eq!(n, 1);
        assert!(decoder.is_idle());
    }

    // A header cut after its first byte is kept in the decoder, completed from the next read,
    // and the read that brings nothing new leaves it as it was.
    #[test]
    fn cut_header_is_kept_across_reads() {
        let s = masked(true, OpCode::Binary, &[5u8; 300]);
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        let mut on = |e: Event<'_>| {
            if let Event::Binary(b) = e {
                got.push(b.to_vec());
            }
            true
        };
        let lim = lim();
        decoder
            .feed(&mut s[..1].to_vec(), &lim, false, Kernel::scalar(), &mut on)
            .unwrap();
        assert!(!decoder.is_idle() && !decoder.in_message());
        decoder
            .feed(&mut [], &lim, false, Kernel::scalar(), &mut on)
            .unwrap();
        decoder
            .feed(
                &mut s[1..3].to_vec(),
                &lim,
                false,
                Kernel::scalar(),
                &mut on,
            )
            .unwrap();
        decoder
            .feed(&mut s[3..].to_vec(), &lim, false, Kernel::scalar(), &mut on)
            .unwrap();
        assert_eq!(got, vec![vec![5u8; 300]]);
        assert!(decoder.is_idle());
    }

    // BAD_INPUTS 46: RSV1 marks the first frame of a compressed message, never a continuation,
    // never a control frame, never without negotiation.
    #[test]
    fn bad_inputs_46_rsv1_rules() {
        let run_all = |s: &[u8], l: bool| {
            let mut outs = vec![run_with(s, &[], &lim(), l)];
            for i in 0..=s.len() {
                outs.push(run_with(s, &[i], &lim(), l));
            }
            outs
        };
        // Whole and fragmented compressed messages come out as Compressed, bytes untouched
        // (not UTF-8 checked: they are deflate data).
        let mut s = masked_rsv1(true, OpCode::Text, b"\xf2\x48\xcd");
        s.extend(masked_rsv1(false, OpCode::Binary, b"\xff"));
        s.extend(masked(true, OpCode::Continuation, b"\xfe"));
        for out in run_all(&s, true) {
            assert_eq!(
                out,
                vec![
                    Ev::Compressed(true, b"\xf2\x48\xcd".to_vec()),
                    Ev::Compressed(false, b"\xff\xfe".to_vec()),
                ]
            );
        }
        // RSV1 on a continuation.
        let mut s = masked_rsv1(false, OpCode::Text, b"a");
        s.extend(masked_rsv1(true, OpCode::Continuation, b"b"));
        for out in run_all(&s, true) {
            assert_eq!(out, vec![Ev::Error(ProtocolError::ReservedBits)]);
        }
        // RSV1 on a control frame, and without negotiation.
        for out in run_all(&masked_rsv1(true, OpCode::Ping, b""), true) {
            assert_eq!(out, vec![Ev::Error(ProtocolError::ReservedBits)]);
        }
        for out in run_all(&masked_rsv1(true, OpCode::Binary, b"x"), false) {
            assert_eq!(out, vec![Ev::Error(ProtocolError::ReservedBits)]);
        }
    }
}
