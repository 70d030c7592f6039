//! One WebSocket connection's state machine (RFC 6455 §5.4, §5.5, §7), without I/O and without a
//! clock: the close handshake, pongs (coalesced while output is blocked), the order of a
//! fragmented send, the idle ping, failing a connection and what becomes of TCP after it.
//!
//! Inputs come in through methods: a decoded control frame ([`Session::on_close_frame`],
//! [`Session::on_ping`]), a send from the application ([`Session::send_message`],
//! [`Session::send_fragment`], [`Session::ping`], [`Session::close`]), a protocol error or a
//! limit ([`Session::fail`]), the connection's timer firing ([`Session::on_timeout`]), bytes
//! arriving ([`Session::on_activity`]) and TCP ending ([`Session::on_eof`]). Outputs leave two
//! ways: the frames the session owes go to a [`Transmit`] (the caller's send path), and
//! [`Effects`] tell the caller what else to do: report the close to the application (once per
//! connection), arm a timer, and what becomes of TCP. The caller does the I/O.
//!
//! The whole state is one byte, so that it fits in the server's connection entry.

use super::close;
use super::frame::{self, MAX_HEADER, OpCode};
use crate::error::SendError;

/// Where the frames the session writes go: the connection's send path.
pub trait Transmit {
    /// Bytes accepted earlier that the socket has not taken yet.
    fn backlog(&self) -> usize;
    /// Queues one frame: its header, then its payload.
    fn frame(&mut self, header: &[u8], payload: &[u8]);
    /// Keeps `payload` as the one pong to send once the backlog has drained, replacing any pong
    /// kept before (RFC 6455 §5.5.3 allows answering only the most recent ping).
    fn defer_pong(&mut self, payload: &[u8]);
}

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent Close and wait for the peer's (RFC 6455 §7.1.2); frames are still read, data is
    /// discarded.
    Closing,
    /// The WebSocket is closed (handshake done, or failed): nothing more is sent or delivered.
    Closed,
}

/// A timer the caller arms for the connection, replacing the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Half the idle timeout: silence until then earns a ping, then a close.
    Idle,
    /// The close timeout: for the peer's Close, or for unsent bytes to leave.
    Close,
}

/// What becomes of TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Close it once unsent bytes have left (or at the close timeout).
    AfterFlush,
    /// Once unsent bytes have left, shut the write side and read until the peer's FIN (or the
    /// close timeout), so that our Close is not lost to a reset (RFC 6455 §7.1.1).
    Drain,
    /// Close it now: the peer is gone, or the time to wait for it is over.
    Now,
}

/// Why the connection closed, for the application (`on_close`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report<'a> {
    /// The peer's close code; ours when we failed it; 1005 for an empty Close; 1006 when TCP
    /// ended without a Close handshake.
    pub code: u16,
    /// The reason bytes (the peer's, or ours).
    pub reason: &'a [u8],
}

/// What the caller must do after an input, besides sending the frames already given to
/// [`Transmit`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Effects<'a> {
    /// Tell the application the connection closed. Given once in a session's life.
    pub report: Option<Report<'a>>,
    /// Arm this timer.
    pub timer: Option<Timer>,
    /// What becomes of TCP; `None`: nothing changes.
    pub finish: Option<Finish>,
}

/// Which part of a fragmented message is being sent (RFC 6455 §5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// The first fragment, carrying the message type.
    First,
    /// A middle fragment.
    Continue,
    /// The last fragment.
    Last,
}

const STATE: u8 = 0b11;
const CLOSING: u8 = 1;
const CLOSED: u8 = 2;
/// An automatic ping went out and no byte has come since.
const PING_SENT: u8 = 4;
/// The application is sending a fragmented message.
const FRAGMENTING: u8 = 8;
/// The close was reported to the application.
const REPORTED: u8 = 16;

/// One connection's WebSocket state: one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Session(u8);

impl Session {
    /// An open session (the upgrade is done).
    pub fn new() -> Session {
        Session(0)
    }

    /// Where the session is.
    pub fn state(self) -> State {
        match self.0 & STATE {
            0 => State::Open,
            CLOSING => State::Closing,
            _ => State::Closed,
        }
    }

    /// Open: messages may be sent and are delivered.
    pub fn is_open(self) -> bool {
        self.state() == State::Open
    }

    /// Whether received frames are still decoded (open, or waiting for the peer's Close).
    pub fn reads_frames(self) -> bool {
        self.state() != State::Closed
    }

    /// Whether a fragmented message is being sent.
    pub fn is_fragmenting(self) -> bool {
        self.0 & FRAGMENTING != 0
    }

    fn set_state(&mut self, bits: u8) {
        self.0 = (self.0 & !STATE) | bits;
    }

    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
    }

    /// The close report, the first time only.
    fn report<'a>(&mut self, code: u16, reason: &'a [u8]) -> Option<Report<'a>> {
        if self.0 & REPORTED != 0 {
            return None;
        }
        self.0 |= REPORTED;
        Some(Report { code, reason })
    }

    /// From now on the close is not reported: the application gave up on this connection (its
    /// callback panicked), so it hears nothing more of it.
    pub fn suppress_report(&mut self) {
        self.0 |= REPORTED;
    }

    /// Bytes arrived from the peer: the idle clock starts again (RFC 6455 §5.5.2 pings are
    /// answered by any traffic). Returns the timer to arm: `Some(Idle)` while open with an idle
    /// timeout (`idle`), else `None`.
    pub fn on_activity(&mut self, idle: bool) -> Option<Timer> {
        if !self.is_open() || !idle {
            return None;
        }
        self.set(PING_SENT, false);
        Some(Timer::Idle)
    }

    /// A Ping arrived. While open, answers it (RFC 6455 §5.5.2: a Pong with the same payload,
    /// as soon as practical), or keeps the answer for later when output is blocked. Returns
    /// whether the application is to see it.
    pub fn on_ping(&mut self, payload: &[u8], out: &mut impl Transmit) -> bool {
        if !self.is_open() {
            return false;
        }
        if out.backlog() > 0 {
            // BAD_INPUTS 34: a peer that pings without reading never grows our queue.
            out.defer_pong(payload);
        } else {
            write_frame(out, OpCode::Pong, payload);
        }
        true
    }

    /// A Close arrived (already validated: RFC 6455 §7.4, §5.5.1). While open, echoes its code
    /// (RFC 6455 §5.5.1: the endpoint answers with a Close; an empty one for an empty one); in
    /// either case the handshake is over and TCP closes once output has left (the server closes
    /// first, RFC 6455 §7.1.1).
    pub fn on_close_frame<'a>(
        &mut self,
        code: u16,
        reason: &'a [u8],
        out: &mut impl Transmit,
    ) -> Effects<'a> {
        match self.state() {
            State::Open => {
                let echo: &[u8] = if code == close::NO_STATUS {
                    &[]
                } else {
                    &code.to_be_bytes()
                };
                write_frame(out, OpCode::Close, echo);
            }
            State::Closing => {}
            State::Closed => return Effects::default(),
        }
        self.set_state(CLOSED);
        Effects {
            report: self.report(code, reason),
            timer: Some(Timer::Close),
            finish: Some(Finish::AfterFlush),
        }
    }

    /// Fails the connection (RFC 6455 §7.1.7) for a protocol error, a limit or a policy: a Close
    /// with `code` and `reason` if we have not sent ours, then TCP drains. A session already
    /// closed keeps its first failure.
    pub fn fail<'a>(&mut self, code: u16, reason: &'a str, out: &mut impl Transmit) -> Effects<'a> {
        match self.state() {
            State::Open => {
                // Codes here are ours (protocol errors, validated policy codes): they encode.
                if let Ok((p, n)) = close::encode(code, reason) {
                    write_frame(out, OpCode::Close, &p[..n]);
                }
            }
            State::Closing => {}
            State::Closed => return Effects::default(),
        }
        self.set_state(CLOSED);
        Effects {
            report: self.report(code, reason.as_bytes()),
            timer: Some(Timer::Close),
            finish: Some(Finish::Drain),
        }
    }

    /// TCP ended (the peer's FIN, a reset, a read or write error) with `why`. Unless the close
    /// handshake was over, the application hears 1006 (RFC 6455 §7.1.5).
    pub fn on_eof<'a>(&mut self, why: &'a str) -> Effects<'a> {
        let report = if self.state() == State::Closed {
            None
        } else {
            self.report(close::ABNORMAL, why.as_bytes())
        };
        self.set_state(CLOSED);
        Effects {
            report,
            timer: None,
            finish: Some(Finish::Now),
        }
    }

    /// The connection's timer fired. Open and idle (`idle`: an idle timeout is configured):
    /// first a ping, then, if nothing came back, a Close with 1011 and 1006 for the application
    /// (BAD_INPUTS 63). Closing: the peer never answered our Close. Closed: output did not leave
    /// in time.
    pub fn on_timeout(&mut self, idle: bool, out: &mut impl Transmit) -> Effects<'static> {
        match self.state() {
            State::Open if !idle => Effects::default(),
            State::Open if self.0 & PING_SENT == 0 => {
                self.set(PING_SENT, true);
                write_frame(out, OpCode::Ping, b"");
                Effects {
                    timer: Some(Timer::Idle),
                    ..Effects::default()
                }
            }
            State::Open => {
                // The peer answered nothing: tell it why (python-websockets uses the same code),
                // report 1006 locally, and do not wait for a Close handshake.
                if let Ok((p, n)) = close::encode(1011, "idle timeout") {
                    write_frame(out, OpCode::Close, &p[..n]);
                }
                self.set_state(CLOSED);
                Effects {
                    report: self.report(close::ABNORMAL, b"idle timeout"),
                    timer: Some(Timer::Close),
                    finish: Some(Finish::Drain),
                }
            }
            State::Closing => {
                self.set_state(CLOSED);
                Effects {
                    report: self.report(close::ABNORMAL, b"close handshake timeout"),
                    timer: None,
                    finish: Some(Finish::Now),
                }
            }
            State::Closed => Effects {
                finish: Some(Finish::Now),
                ..Effects::default()
            },
        }
    }

    /// Whether a whole message may be sent now.
    ///
    /// # Errors
    /// [`SendError::Closed`] unless open; [`SendError::FragmentInProgress`] while a fragmented
    /// message is being sent (RFC 6455 §5.4: its frames must not be interleaved with another
    /// message's).
    pub fn can_send_message(self) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        if self.is_fragmenting() {
            return Err(SendError::FragmentInProgress);
        }
        Ok(())
    }

    /// Sends a whole message in one frame; `rsv1` marks it compressed (RFC 7692 §6).
    ///
    /// # Errors
    /// As [`Session::can_send_message`].
    pub fn send_message(
        &mut self,
        op: OpCode,
        rsv1: bool,
        payload: &[u8],
        out: &mut impl Transmit,
    ) -> Result<(), SendError> {
        self.can_send_message()?;
        let mut h = [0u8; MAX_HEADER];
        let n = frame::encode(&mut h, true, rsv1, op, None, payload.len() as u64);
        out.frame(&h[..n], payload);
        Ok(())
    }

    /// Sends one fragment of a message (RFC 6455 §5.4); `text` gives the message type on the
    /// first fragment and is ignored on the others. Control frames may go between fragments;
    /// other messages may not.
    ///
    /// # Errors
    /// [`SendError::FragmentInProgress`] for a second `First`; [`SendError::NoFragmentInProgress`]
    /// for `Continue`/`Last` without `First`; [`SendError::Closed`] unless open.
    pub fn send_fragment(
        &mut self,
        part: Fragment,
        text: bool,
        payload: &[u8],
        out: &mut impl Transmit,
    ) -> Result<(), SendError> {
        let (fin, op) = match (part, self.is_fragmenting()) {
            (Fragment::First, true) => return Err(SendError::FragmentInProgress),
            (Fragment::First, false) if text => (false, OpCode::Text),
            (Fragment::First, false) => (false, OpCode::Binary),
            (_, false) => return Err(SendError::NoFragmentInProgress),
            (Fragment::Continue, true) => (false, OpCode::Continuation),
            (Fragment::Last, true) => (true, OpCode::Continuation),
        };
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        let mut h = [0u8; MAX_HEADER];
        let n = frame::encode(&mut h, fin, false, op, None, payload.len() as u64);
        out.frame(&h[..n], payload);
        self.set(FRAGMENTING, !fin);
        Ok(())
    }

    /// Sends a ping.
    ///
    /// # Errors
    /// [`SendError::ControlTooLong`] over 125 bytes; [`SendError::Closed`] unless open.
    pub fn ping(&mut self, payload: &[u8], out: &mut impl Transmit) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        if payload.len() > 125 {
            return Err(SendError::ControlTooLong);
        }
        write_frame(out, OpCode::Ping, payload);
        Ok(())
    }

    /// Starts the close handshake from our side (RFC 6455 §7.1.2): a Close with `code` and
    /// `reason`, then the peer's Close is awaited until the close timeout.
    ///
    /// # Errors
    /// [`SendError::InvalidCloseCode`], [`SendError::ReasonTooLong`], or [`SendError::Closed`]
    /// unless open.
    pub fn close(
        &mut self,
        code: u16,
        reason: &str,
        out: &mut impl Transmit,
    ) -> Result<Effects<'static>, SendError> {
        let (p, n) = close::encode(code, reason)?;
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        write_frame(out, OpCode::Close, &p[..n]);
        self.set_state(CLOSING);
        Ok(Effects {
            timer: Some(Timer::Close),
            ..Effects::default()
        })
    }
}

/// Writes one unfragmented frame with `payload` (at most 125 bytes for control frames).
fn write_frame(out: &mut impl Transmit, op: OpCode, payload: &[u8]) {
    let mut h = [0u8; MAX_HEADER];
    let n = frame::encode(&mut h, true, false, op, None, payload.len() as u64);
    out.frame(&h[..n], payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A send path that keeps what it is given, with a backlog the test sets.
    #[derive(Default)]
    struct Wire {
        bytes: Vec<u8>,
        backlog: usize,
        pong: Option<Vec<u8>>,
        pongs_deferred: usize,
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
            self.pong = Some(payload.to_vec());
            self.pongs_deferred += 1;
        }
    }

    impl Wire {
        fn take(&mut self) -> Vec<u8> {
            std::mem::take(&mut self.bytes)
        }
    }

    #[test]
    fn close_from_peer_is_echoed_and_reported_once() {
        let mut s = Session::new();
        let mut w = Wire::default();
        let fx = s.on_close_frame(1000, b"bye", &mut w);
        assert_eq!(w.take(), b"\x88\x02\x03\xe8");
        assert_eq!(
            fx,
            Effects {
                report: Some(Report {
                    code: 1000,
                    reason: b"bye"
                }),
                timer: Some(Timer::Close),
                finish: Some(Finish::AfterFlush),
            }
        );
        assert_eq!(s.state(), State::Closed);
        // Nothing more: no second echo, no second report, no sends.
        assert_eq!(s.on_close_frame(1000, b"", &mut w), Effects::default());
        assert_eq!(s.on_eof("gone").report, None);
        assert_eq!(
            s.send_message(OpCode::Text, false, b"x", &mut w),
            Err(SendError::Closed)
        );
        assert!(w.take().is_empty());
    }

    // BAD_INPUTS 41: an empty Close is echoed empty, and 1005 is only ever local.
    #[test]
    fn empty_close_is_echoed_empty() {
        let mut s = Session::new();
        let mut w = Wire::default();
        let fx = s.on_close_frame(close::NO_STATUS, b"", &mut w);
        assert_eq!(w.take(), b"\x88\x00");
        assert_eq!(fx.report.map(|r| r.code), Some(close::NO_STATUS));
    }

    // A Close arrives while our output is backpressured: the echo is queued behind the unsent
    // bytes (not dropped, not reordered), the close is reported, and TCP waits for the flush
    // under the close timeout instead of closing at once.
    #[test]
    fn close_while_output_is_backpressured() {
        let mut s = Session::new();
        let mut w = Wire {
            backlog: 1 << 20,
            ..Wire::default()
        };
        s.send_message(OpCode::Binary, false, b"queued", &mut w)
            .unwrap();
        let fx = s.on_close_frame(1001, b"", &mut w);
        assert_eq!(w.take(), b"\x82\x06queued\x88\x02\x03\xe9");
        assert_eq!(fx.finish, Some(Finish::AfterFlush));
        assert_eq!(fx.timer, Some(Timer::Close));
        assert_eq!(fx.report.map(|r| r.code), Some(1001));
        // A ping that comes after it is not answered: the connection is closed.
        assert!(!s.on_ping(b"late", &mut w));
        assert!(w.pong.is_none() && w.bytes.is_empty());
    }

    // A Close arrives while we are sending a fragmented message: control frames may go between
    // fragments (RFC 6455 §5.4), so the echo goes out at once; the rest of the message is
    // refused, never half-sent after the Close.
    #[test]
    fn close_during_a_fragmented_send() {
        let mut s = Session::new();
        let mut w = Wire::default();
        s.send_fragment(Fragment::First, true, b"par", &mut w)
            .unwrap();
        assert_eq!(
            s.send_message(OpCode::Text, false, b"x", &mut w),
            Err(SendError::FragmentInProgress)
        );
        assert_eq!(w.take(), b"\x01\x03par");
        let fx = s.on_close_frame(1000, b"", &mut w);
        assert_eq!(w.take(), b"\x88\x02\x03\xe8");
        assert!(fx.report.is_some());
        assert_eq!(
            s.send_fragment(Fragment::Last, true, b"t", &mut w),
            Err(SendError::Closed)
        );
        assert!(w.take().is_empty());
    }

    #[test]
    fn fragments_keep_their_order() {
        let mut s = Session::new();
        let mut w = Wire::default();
        assert_eq!(
            s.send_fragment(Fragment::Continue, false, b"a", &mut w),
            Err(SendError::NoFragmentInProgress)
        );
        s.send_fragment(Fragment::First, false, b"a", &mut w)
            .unwrap();
        assert_eq!(
            s.send_fragment(Fragment::First, false, b"b", &mut w),
            Err(SendError::FragmentInProgress)
        );
        s.ping(b"p", &mut w).unwrap();
        s.send_fragment(Fragment::Continue, false, b"b", &mut w)
            .unwrap();
        s.send_fragment(Fragment::Last, true, b"c", &mut w).unwrap();
        assert!(!s.is_fragmenting());
        s.send_message(OpCode::Text, false, b"d", &mut w).unwrap();
        assert_eq!(
            w.take(),
            b"\x02\x01a\x89\x01p\x00\x01b\x80\x01c\x81\x01d".as_slice()
        );
    }

    // BAD_INPUTS 34: a flood of pings while output is blocked keeps one pong, the latest; none
    // is queued behind the backlog.
    #[test]
    fn ping_flood_with_pongs_coalesced() {
        let mut s = Session::new();
        let mut w = Wire {
            backlog: 4096,
            ..Wire::default()
        };
        for i in 0..10_000u32 {
            assert!(s.on_ping(&i.to_be_bytes(), &mut w));
        }
        assert!(w.bytes.is_empty());
        assert_eq!(w.pongs_deferred, 10_000);
        assert_eq!(w.pong.as_deref(), Some(9_999u32.to_be_bytes().as_slice()));
        // With the backlog gone, the next ping is answered at once.
        w.backlog = 0;
        assert!(s.on_ping(b"hi", &mut w));
        assert_eq!(w.take(), b"\x8a\x02hi");
    }

    // BAD_INPUTS 63: half the idle timeout of silence earns a ping; the rest earns a 1011 Close
    // on the wire, 1006 for the application, and a drain; traffic in between starts over.
    #[test]
    fn idle_ping_then_timeout() {
        let mut s = Session::new();
        let mut w = Wire::default();
        assert_eq!(s.on_timeout(false, &mut w), Effects::default());
        let fx = s.on_timeout(true, &mut w);
        assert_eq!(w.take(), b"\x89\x00");
        assert_eq!(fx.timer, Some(Timer::Idle));
        assert_eq!(fx.report, None);
        // A byte arrives: the next expiry pings again instead of closing.
        assert_eq!(s.on_activity(true), Some(Timer::Idle));
        let _ = s.on_timeout(true, &mut w);
        assert_eq!(w.take(), b"\x89\x00");
        let fx = s.on_timeout(true, &mut w);
        assert_eq!(w.take(), b"\x88\x0e\x03\xf3idle timeout");
        assert_eq!(
            fx,
            Effects {
                report: Some(Report {
                    code: close::ABNORMAL,
                    reason: b"idle timeout"
                }),
                timer: Some(Timer::Close),
                finish: Some(Finish::Drain),
            }
        );
        // The drain that times out closes TCP.
        assert_eq!(s.on_timeout(true, &mut w).finish, Some(Finish::Now));
        assert_eq!(s.on_activity(true), None);
    }

    // A failure while the session is already draining after an earlier one: the first failure
    // stands; nothing is sent, nothing reported again, TCP is left to the drain under way.
    #[test]
    fn failure_during_drain() {
        let mut s = Session::new();
        let mut w = Wire::default();
        let fx = s.fail(1009, "message too large", &mut w);
        assert_eq!(fx.finish, Some(Finish::Drain));
        assert_eq!(fx.report.map(|r| r.code), Some(1009));
        assert_eq!(w.take()[..4], *b"\x88\x13\x03\xf1");
        assert_eq!(s.fail(1002, "protocol", &mut w), Effects::default());
        assert_eq!(
            s.fail(1008, "backpressure limit", &mut w),
            Effects::default()
        );
        assert!(w.take().is_empty());
        // The peer's FIN then ends it without a second report.
        assert_eq!(
            s.on_eof("peer closed"),
            Effects {
                report: None,
                timer: None,
                finish: Some(Finish::Now)
            }
        );
    }

    #[test]
    fn our_close_then_the_peers() {
        let mut s = Session::new();
        let mut w = Wire::default();
        assert_eq!(
            s.close(1005, "", &mut w),
            Err(SendError::InvalidCloseCode(1005))
        );
        let fx = s.close(1000, "done", &mut w).unwrap();
        assert_eq!(fx.timer, Some(Timer::Close));
        assert_eq!(w.take(), b"\x88\x06\x03\xe8done");
        assert_eq!(s.state(), State::Closing);
        assert!(s.reads_frames());
        assert_eq!(s.close(1000, "", &mut w), Err(SendError::Closed));
        // The peer answers: no echo (we already sent ours), reported with its code.
        let fx = s.on_close_frame(1000, b"", &mut w);
        assert!(w.take().is_empty());
        assert_eq!(fx.report.map(|r| r.code), Some(1000));
        assert_eq!(fx.finish, Some(Finish::AfterFlush));
    }

    #[test]
    fn peer_silent_after_our_close() {
        let mut s = Session::new();
        let mut w = Wire::default();
        let _ = s.close(1000, "", &mut w).unwrap();
        let fx = s.on_timeout(true, &mut w);
        assert_eq!(fx.report.map(|r| r.code), Some(close::ABNORMAL));
        assert_eq!(fx.finish, Some(Finish::Now));
    }

    // BAD_INPUTS 42: TCP gone without a Close: 1006 for the application, once.
    #[test]
    fn eof_without_close_is_abnormal() {
        let mut s = Session::new();
        let fx = s.on_eof("connection closed without Close");
        assert_eq!(fx.report.map(|r| r.code), Some(close::ABNORMAL));
        assert_eq!(fx.finish, Some(Finish::Now));
        assert_eq!(s.on_eof("again").report, None);
    }

    // BAD_INPUTS 35: oversized control payloads are refused and nothing is sent.
    #[test]
    fn bad_inputs_35_send_side_limits() {
        let mut s = Session::new();
        let mut w = Wire::default();
        assert_eq!(s.ping(&[0; 126], &mut w), Err(SendError::ControlTooLong));
        assert_eq!(
            s.close(1000, &"r".repeat(124), &mut w),
            Err(SendError::ReasonTooLong)
        );
        assert!(w.take().is_empty());
        assert!(s.is_open());
    }

    #[test]
    fn state_fits_in_a_byte() {
        assert_eq!(std::mem::size_of::<Session>(), 1);
    }
}
