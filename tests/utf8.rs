//! UTF-8 in text messages (RFC 6455 §5.6, §8.1): BAD_INPUTS lines 28–31.

mod common;

use std::time::Duration;

use common::*;

/// Invalid sequences of every kind (BAD_INPUTS 30), each embedded in otherwise valid text.
const INVALID: &[(&str, &[u8])] = &[
    ("lone continuation", b"\x80"),
    ("invalid byte FF", b"\xff"),
    ("overlong '/' (2 bytes)", b"\xc0\xaf"),
    ("overlong '/' (3 bytes)", b"\xe0\x80\xaf"),
    ("overlong '/' (4 bytes)", b"\xf0\x80\x80\xaf"),
    ("overlong U+07FF (3 bytes)", b"\xe0\x9f\xbf"),
    ("surrogate U+D800", b"\xed\xa0\x80"),
    ("surrogate U+DFFF", b"\xed\xbf\xbf"),
    ("above U+10FFFF", b"\xf4\x90\x80\x80"),
    ("lead F5", b"\xf5\x80\x80\x80"),
    ("5-byte form", b"\xf8\x88\x80\x80\x80"),
    ("6-byte form", b"\xfc\x84\x80\x80\x80\x80"),
    ("missing continuation", b"\xce\x41"),
];

fn with_context(bad: &[u8]) -> Vec<u8> {
    let mut v = "κόσμε ".as_bytes().to_vec();
    v.extend_from_slice(bad);
    v.extend_from_slice(" tail".as_bytes());
    v
}

// ---- BAD_INPUTS 28 ----------------------------------------------------------------------------

#[test]
fn bad_inputs_28_invalid_utf8_single_frame_fails_1007() {
    let (srv, ev) = start_recorder(config());
    fails_with(&srv, &ev, &frame(true, 0, TEXT, b"abc\xffdef"), 1007);
}

#[test]
fn bad_inputs_28_invalid_utf8_fragmented_fails_1007() {
    let (srv, ev) = start_recorder(config());
    // Bad byte in a later fragment of a complete message.
    let bytes = [
        frame(false, 0, TEXT, "κό".as_bytes()),
        frame(false, 0, CONT, b"ok"),
        frame(true, 0, CONT, b"\xed\xa0\x80"),
    ]
    .concat();
    fails_with(&srv, &ev, &bytes, 1007);
}

/// Fail fast: the first bad byte is enough, before the message's last fragment (or the rest of
/// a frame cut by a read) arrives.
#[test]
fn bad_inputs_28_fails_at_first_bad_byte() {
    let (srv, ev) = start_recorder(config());
    // A fragment with a bad byte, no FIN ever sent.
    fails_with(&srv, &ev, &frame(false, 0, TEXT, b"ok \xc0 more"), 1007);
    // A single frame declaring 1000 bytes, of which only 10 (with a bad one) are sent.
    let mut r = Raw::open(srv.addr);
    ev.opened();
    let mut h = header(true, 0, TEXT, true, 1000);
    let key = next_mask();
    h.extend_from_slice(&key);
    let mut part = b"abcd\xf5efgh".to_vec();
    myriad::proto::mask::apply_mask(&mut part, key, 0);
    h.extend_from_slice(&part);
    r.write(&h);
    r.expect_close(1007);
    let (code, _) = ev.closed_without_messages();
    assert_eq!(code, 1007);
}

// ---- BAD_INPUTS 29 ----------------------------------------------------------------------------

/// Valid text cut inside a code point, between fragments and between TCP reads, is accepted.
#[test]
fn bad_inputs_29_split_code_points_accepted() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    ev.opened();
    let text = "κόσμε 𝄞 €";
    let bytes = text.as_bytes();
    // Fragment boundaries at every offset.
    for k in 1..bytes.len() {
        r.write(
            &[
                frame(false, 0, TEXT, &bytes[..k]),
                frame(true, 0, CONT, &bytes[k..]),
            ]
            .concat(),
        );
        assert_eq!(r.frame().text(), text, "fragment split at {k}");
    }
    // One byte per fragment.
    let mut all = frame(false, 0, TEXT, &bytes[..1]);
    for b in &bytes[1..bytes.len() - 1] {
        all.extend_from_slice(&frame(false, 0, CONT, &[*b]));
    }
    all.extend_from_slice(&frame(true, 0, CONT, &bytes[bytes.len() - 1..]));
    r.write(&all);
    assert_eq!(r.frame().text(), text);
    // One frame, its payload cut by TCP reads at every offset.
    let f = frame(true, 0, TEXT, bytes);
    let payload_at = f.len() - bytes.len();
    for k in payload_at + 1..f.len() {
        r.write(&f[..k]);
        std::thread::sleep(Duration::from_millis(1));
        r.write(&f[k..]);
        assert_eq!(r.frame().text(), text, "read split at {k}");
    }
}

// ---- BAD_INPUTS 30 ----------------------------------------------------------------------------

#[test]
fn bad_inputs_30_invalid_sequences_fail_1007() {
    let (srv, ev) = start_recorder(config());
    for (what, bad) in INVALID {
        let payload = with_context(bad);
        // Whole message in one frame.
        let mut r = Raw::open(srv.addr);
        ev.opened();
        r.write(&frame(true, 0, TEXT, &payload));
        r.expect_close(1007);
        assert_eq!(ev.closed_without_messages().0, 1007, "{what}");
        // Fragmented, the bad sequence cut across fragments.
        let mid = "κόσμε ".len() + 1;
        let bytes = [
            frame(false, 0, TEXT, &payload[..mid]),
            frame(true, 0, CONT, &payload[mid..]),
        ]
        .concat();
        let mut r = Raw::open(srv.addr);
        ev.opened();
        r.write(&bytes);
        r.expect_close(1007);
        assert_eq!(ev.closed_without_messages().0, 1007, "{what} (fragmented)");
    }
}

#[test]
fn bad_inputs_30_truncated_final_sequence_fails_1007() {
    let (srv, ev) = start_recorder(config());
    for tail in [&b"\xce"[..], b"\xe2\x82", b"\xf0\x9d\x84"] {
        let mut p = b"ok ".to_vec();
        p.extend_from_slice(tail);
        fails_with(&srv, &ev, &frame(true, 0, TEXT, &p), 1007);
        let bytes = [frame(false, 0, TEXT, b"ok "), frame(true, 0, CONT, tail)].concat();
        fails_with(&srv, &ev, &bytes, 1007);
    }
}

// ---- BAD_INPUTS 31 ----------------------------------------------------------------------------

/// Binary payloads are never UTF-8 checked: every invalid sequence goes through, byte for byte.
#[test]
fn bad_inputs_31_binary_is_not_utf8_checked() {
    let (srv, ev) = start_recorder(config());
    let mut r = Raw::open(srv.addr);
    ev.opened();
    for (_, bad) in INVALID {
        r.send(true, BINARY, bad);
        let f = r.frame();
        assert_eq!((f.opcode, f.payload.as_slice()), (BINARY, *bad));
        assert_eq!(ev.next(), Ev::Binary(bad.to_vec()));
        // Fragmented binary, cut inside the sequence.
        let bytes = [
            frame(false, 0, BINARY, &bad[..1]),
            frame(true, 0, CONT, &bad[1..]),
        ]
        .concat();
        r.write(&bytes);
        assert_eq!(r.frame().payload, bad.to_vec());
        assert_eq!(ev.next(), Ev::Binary(bad.to_vec()));
    }
    // Text reaches the application only validated, exactly as sent.
    r.text("κόσμε");
    assert_eq!(r.frame().text(), "κόσμε");
    assert_eq!(ev.next(), Ev::Text("κόσμε".into()));
}
