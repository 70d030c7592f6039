//! From received bytes to messages: frame headers, in-place unmasking, fragment assembly, UTF-8
//! and the control frames in between (RFC 6455 §5.4, §5.5, §8.1).
//!
//! `feed` walks the bytes of one read. A frame whose payload is wholly in those bytes is unmasked
//! where it lies and, when it is a whole message, handed out as a slice of the same buffer. Only a
//! fragmented message, a frame cut by the end of the read, or a header cut in two leaves state
//! behind, in a [`Partial`] that the connection holds in a box while (and only while) it is needed.
//! The decoder knows nothing of sockets or clocks; it is tested by feeding the same bytes split at
//! every offset.

use crate::close;
use crate::error::ProtocolError;
use crate::frame::{self, Header, MAX_HEADER, OpCode, Role, Rules};
use crate::mask::Kernel;
use crate::utf8::Utf8Stream;

/// Limits the decoder enforces.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Server or client side.
    pub role: Role,
    /// Accept unmasked frames from clients (server only; off by default).
    pub accept_unmasked: bool,
    /// Largest frame payload.
    pub max_frame: u64,
    /// Largest message, counted as payload plus [`FRAGMENT_OVERHEAD`] per fragment.
    pub max_message: u64,
    /// Most fragments in one message.
    pub max_fragments: u32,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message (RFC 7692 §6).
    pub compression: bool,
}

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

/// Decoder state kept between reads. Boxed by the connection only while non-empty.
#[derive(Debug)]
pub struct Partial {
    head: [u8; MAX_HEADER],
    head_len: u8,
    frame: Option<FrameInProgress>,
    message: Option<Assembly>,
    control: [u8; 125],
    control_len: u8,
    /// Bytes of an HTTP upgrade head not complete yet (only before the connection opens).
    pub http: Vec<u8>,
    /// Set by the owner: the timer tick by which the message in progress must be complete.
    pub progress_deadline: Option<u32>,
}

impl Default for Partial {
    fn default() -> Partial {
        Partial {
            head: [0; MAX_HEADER],
            head_len: 0,
            frame: None,
            message: None,
            control: [0; 125],
            control_len: 0,
            http: Vec::new(),
            progress_deadline: None,
        }
    }
}

impl Partial {
    /// Nothing is in progress: the box can go.
    pub fn is_idle(&self) -> bool {
        self.head_len == 0 && self.frame.is_none() && self.message.is_none() && self.http.is_empty()
    }

    /// Copies the bytes of a header cut by the previous read to the start of `buf` and returns
    /// their count; the caller reads new bytes after them.
    pub fn take_head(&mut self, buf: &mut [u8]) -> usize {
        let n = usize::from(self.head_len);
        buf[..n].copy_from_slice(&self.head[..n]);
        self.head_len = 0;
        n
    }

    /// Puts back header bytes taken by [`Partial::take_head`] when the read brought nothing.
    pub fn put_head(&mut self, head: &[u8]) {
        let n = head.len().min(MAX_HEADER);
        self.head[..n].copy_from_slice(&head[..n]);
        self.head_len = n as u8;
    }

    /// Whether a message or a frame is waiting for more bytes (for message-progress timeouts).
    pub fn in_message(&self) -> bool {
        self.message.is_some() || self.frame.is_some()
    }
}

/// Whether the caller wants more events after this one.
pub type Continue = bool;

/// Decodes `data` (which starts with any header bytes returned by [`Partial::take_head`]).
///
/// Calls `on` for every event, in order; stops early when `on` returns false or after a Close.
/// Leftover state goes into `partial` (boxed when first needed). Returns the first protocol error.
pub fn feed(
    partial: &mut Option<Box<Partial>>,
    data: &mut [u8],
    lim: &Limits,
    kernel: Kernel,
    on: &mut dyn FnMut(Event<'_>) -> Continue,
) -> Result<(), ProtocolError> {
    let rules = Rules {
        role: lim.role,
        allow_rsv1: lim.compression,
        accept_unmasked: lim.accept_unmasked,
        max_frame: lim.max_frame,
    };
    let mut pos = 0usize;
    loop {
        // 1. The payload of a frame cut by an earlier read.
        if let Some(p) = partial.as_deref_mut()
            && let Some(f) = p.frame.as_mut()
        {
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
                let at = usize::from(p.control_len);
                p.control[at..at + take].copy_from_slice(chunk);
                p.control_len += take as u8;
            } else if let Some(m) = p.message.as_mut() {
                m.buf.extend_from_slice(chunk);
                if m.text && !m.compressed {
                    m.utf8.feed(chunk)?;
                }
            }
            if f.remaining > 0 {
                return Ok(());
            }
            let (opcode, fin) = (f.opcode, f.fin);
            p.frame = None;
            if opcode.is_control() {
                let n = usize::from(p.control_len);
                p.control_len = 0;
                let payload = p.control;
                let go = control(opcode, &payload[..n], on)?;
                if !go {
                    return Ok(());
                }
            } else if fin && !finish(p, on)? {
                return Ok(());
            }
            continue;
        }

        // 2. A new frame header.
        let rest = &data[pos..];
        if rest.is_empty() {
            return Ok(());
        }
        let Some(h) = frame::decode(rest, &rules)? else {
            let p = partial.get_or_insert_with(Box::default);
            p.head[..rest.len()].copy_from_slice(rest);
            p.head_len = rest.len() as u8;
            return Ok(());
        };
        check_sequence(partial.as_deref(), &h, lim)?;
        pos += h.header_len;
        let avail = (data.len() - pos) as u64;
        if h.len > avail {
            // Cut by the end of this read: keep going in step 1.
            let p = partial.get_or_insert_with(Box::default);
            if !h.opcode.is_control() {
                start_or_continue(p, &h);
            }
            p.frame = Some(FrameInProgress {
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
                let p = partial.get_or_insert_with(Box::default);
                start_or_continue(p, &h);
                let Some(m) = p.message.as_mut() else {
                    unreachable!("start_or_continue leaves a message in progress")
                };
                m.buf.extend_from_slice(payload);
                if m.text && !m.compressed {
                    m.utf8.feed(payload)?;
                }
                if h.fin { finish(p, on)? } else { true }
            }
        };
        if !go {
            return Ok(());
        }
    }
}

/// RFC 6455 §5.4 sequencing, and the message limits, checked from the header alone.
fn check_sequence(
    partial: Option<&Partial>,
    h: &Header,
    lim: &Limits,
) -> Result<(), ProtocolError> {
    let message = partial.and_then(|p| p.message.as_ref());
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

fn start_or_continue(p: &mut Partial, h: &Header) {
    let m = p.message.get_or_insert_with(|| Assembly {
        text: h.opcode == OpCode::Text,
        compressed: h.rsv1,
        buf: Vec::new(),
        fragments: 0,
        charged: 0,
        utf8: Utf8Stream::new(),
    });
    m.fragments += 1;
    m.charged += h.len + FRAGMENT_OVERHEAD;
}

/// The last fragment is in: validate the end of the text and hand the message out.
fn finish(
    p: &mut Partial,
    on: &mut dyn FnMut(Event<'_>) -> Continue,
) -> Result<Continue, ProtocolError> {
    let Some(mut m) = p.message.take() else {
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
        let text = simdutf8::basic::from_utf8(&m.buf).map_err(|_| ProtocolError::InvalidUtf8)?;
        Ok(on(Event::Text(text)))
    } else {
        Ok(on(Event::Binary(&m.buf)))
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
    use crate::frame::encode;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn lim() -> Limits {
        Limits {
            role: Role::Server,
            accept_unmasked: false,
            max_frame: 1 << 20,
            max_message: 1 << 20,
            max_fragments: 1000,
            compression: false,
        }
    }

    fn masked(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut h = [0u8; MAX_HEADER];
        let n = encode(&mut h, fin, false, op, Some(KEY), payload.len() as u64);
        let mut v = h[..n].to_vec();
        let mut p = payload.to_vec();
        crate::mask::apply_mask_naive(&mut p, KEY, 0);
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

    /// Feeds `stream` in pieces cut at `cuts`, the way reads would deliver it.
    fn run(stream: &[u8], cuts: &[usize], lim: &Limits) -> Vec<Ev> {
        let mut out = Vec::new();
        let mut partial: Option<Box<Partial>> = None;
        let mut start = 0;
        let mut ends: Vec<usize> = cuts.to_vec();
        ends.push(stream.len());
        let mut buf = vec![0u8; stream.len() + MAX_HEADER];
        for end in ends {
            let pre = partial.as_mut().map_or(0, |p| p.take_head(&mut buf));
            let n = end - start;
            buf[pre..pre + n].copy_from_slice(&stream[start..end]);
            start = end;
            let mut closed = false;
            let r = feed(
                &mut partial,
                &mut buf[..pre + n],
                lim,
                Kernel::detect(),
                &mut |e| {
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
                },
            );
            if let Err(e) = r {
                out.push(Ev::Error(e));
                return out;
            }
            if closed {
                return out;
            }
            if partial.as_ref().is_some_and(|p| p.is_idle()) {
                partial = None;
            }
        }
        out
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
    fn partial_goes_idle_after_message() {
        let s = masked(true, OpCode::Binary, &[9u8; 50]);
        let mut partial = None;
        let mut buf = s[..20].to_vec();
        let mut n = 0;
        feed(
            &mut partial,
            &mut buf,
            &lim(),
            Kernel::scalar(),
            &mut |_| {
                n += 1;
                true
            },
        )
        .unwrap();
        assert!(partial.as_ref().is_some_and(|p| !p.is_idle()));
        let mut buf = s[20..].to_vec();
        feed(
            &mut partial,
            &mut buf,
            &lim(),
            Kernel::scalar(),
            &mut |_| {
                n += 1;
                true
            },
        )
        .unwrap();
        assert_eq!(n, 1);
        assert!(partial.as_ref().is_some_and(|p| p.is_idle()));
    }

    // BAD_INPUTS 46: RSV1 marks the first frame of a compressed message, never a continuation,
    // never a control frame, never without negotiation.
    #[test]
    fn bad_inputs_46_rsv1_rules() {
        let deflate = Limits {
            compression: true,
            ..lim()
        };
        let run_all = |s: &[u8], l: &Limits| {
            let mut outs = vec![run(s, &[], l)];
            for i in 0..=s.len() {
                outs.push(run(s, &[i], l));
            }
            outs
        };
        // Whole and fragmented compressed messages come out as Compressed, bytes untouched
        // (not UTF-8 checked: they are deflate data).
        let mut s = masked_rsv1(true, OpCode::Text, b"\xf2\x48\xcd");
        s.extend(masked_rsv1(false, OpCode::Binary, b"\xff"));
        s.extend(masked(true, OpCode::Continuation, b"\xfe"));
        for out in run_all(&s, &deflate) {
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
        for out in run_all(&s, &deflate) {
            assert_eq!(out, vec![Ev::Error(ProtocolError::ReservedBits)]);
        }
        // RSV1 on a control frame, and without negotiation.
        for out in run_all(&masked_rsv1(true, OpCode::Ping, b""), &deflate) {
            assert_eq!(out, vec![Ev::Error(ProtocolError::ReservedBits)]);
        }
        for out in run_all(&masked_rsv1(true, OpCode::Binary, b"x"), &lim()) {
            assert_eq!(out, vec![Ev::Error(ProtocolError::ReservedBits)]);
        }
    }
}
