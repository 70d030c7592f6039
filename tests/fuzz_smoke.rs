//! The fuzz targets' bodies (tests/fuzz) over pseudo-random inputs, in the ordinary suite: frames
//! built from random pieces (valid and broken) split at random offsets, and random HTTP heads.

#[path = "fuzz/bodies.rs"]
mod fuzz_bodies;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn random_frame(rng: &mut Rng, out: &mut Vec<u8>) {
    let opcodes = [0u8, 1, 2, 8, 9, 10, 3, 11];
    let b0 = (rng.below(2) as u8) << 7
        | if rng.below(20) == 0 { 0x40 } else { 0 }
        | opcodes[rng.below(opcodes.len() as u64) as usize];
    let len = match rng.below(10) {
        0 => 126 + rng.below(300),
        1 => rng.below(3),
        _ => rng.below(40),
    };
    let masked = rng.below(30) != 0;
    let mut h = [0u8; myriad::proto::frame::MAX_HEADER];
    let op = myriad::proto::frame::OpCode::from_u8(b0 & 0x0f)
        .unwrap_or(myriad::proto::frame::OpCode::Binary);
    let key = [
        rng.next() as u8,
        rng.next() as u8,
        rng.next() as u8,
        rng.next() as u8,
    ];
    let n = myriad::proto::frame::encode(
        &mut h,
        b0 & 0x80 != 0,
        false,
        op,
        masked.then_some(key),
        len,
    );
    h[0] = b0;
    out.extend_from_slice(&h[..n]);
    let text = rng.below(2) == 0;
    for i in 0..len {
        let b = if text {
            b"ab\xc3\xa9\xe2\x82\xac "[(i % 8) as usize]
        } else {
            rng.next() as u8
        };
        out.push(b);
    }
    if rng.below(8) == 0 && !out.is_empty() {
        let at = rng.below(out.len() as u64) as usize;
        out[at] = rng.next() as u8;
    }
}

#[test]
fn decoder_random_streams_split_anywhere() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let mut s = Vec::new();
        for _ in 0..1 + rng.below(5) {
            random_frame(&mut rng, &mut s);
        }
        fuzz_bodies::decoder_split_invariance(&s);
    }
    // Pure noise too.
    for _ in 0..2000 {
        let len = rng.below(80) as usize;
        let s: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        fuzz_bodies::decoder_split_invariance(&s);
    }
}

#[test]
fn handshake_random_heads() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let pieces: [&[u8]; 14] = [
        b"GET / HTTP/1.1\r\n",
        b"POST /x HTTP/1.0\r\n",
        b"Host: a\r\n",
        b"Upgrade: websocket\r\n",
        b"Connection: keep-alive, Upgrade\r\n",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        b"Sec-WebSocket-Version: 13\r\n",
        b"Sec-WebSocket-Protocol: a, b,,c\r\n",
        b"Sec-WebSocket-Extensions: permessage-deflate; x=\"\r\n",
        b"X: \xff\xfe\r\n",
        b"\r\n",
        b"\n",
        b": \r\n",
        b"GET",
    ];
    for _ in 0..5000 {
        let mut head = Vec::new();
        for _ in 0..rng.below(12) {
            head.extend_from_slice(pieces[rng.below(pieces.len() as u64) as usize]);
        }
        if rng.below(4) == 0 {
            head.extend_from_slice(b"\r\n");
        }
        if rng.below(10) == 0 && !head.is_empty() {
            let at = rng.below(head.len() as u64) as usize;
            head[at] = rng.next() as u8;
        }
        fuzz_bodies::handshake_any_head(&head);
    }
}

#[test]
fn fallback_random_bodies_and_messages() {
    let mut rng = Rng(0x0fa1_1bac_0000_0001);
    let pieces: [&[u8]; 14] = [
        b"t",
        b"b",
        b"c",
        b"x",
        b"1",
        b"0",
        b"12",
        b":",
        b"abc",
        b"\n",
        b"\r",
        b"\xc3\xa9",
        b"1000 bye",
        b"\xff",
    ];
    for _ in 0..20_000 {
        let mut data = Vec::new();
        for _ in 0..rng.below(16) {
            data.extend_from_slice(pieces[rng.below(pieces.len() as u64) as usize]);
        }
        fuzz_bodies::fallback_any(&data);
    }
    // Well-formed bodies built from frames, and every text and binary message shape.
    for _ in 0..5_000 {
        let mut body = Vec::new();
        for _ in 0..rng.below(5) {
            let payload: Vec<u8> = (0..rng.below(20))
                .map(|_| b"a \n\r:\xc3\xa9"[rng.below(7) as usize])
                .collect();
            let kind = [b't', b'b'][rng.below(2) as usize];
            body.push(kind);
            body.extend_from_slice(format!("{}:", payload.len()).as_bytes());
            body.extend_from_slice(&payload);
        }
        fuzz_bodies::fallback_any(&body);
    }
}

#[test]
fn negotiation_random_offers() {
    let mut rng = Rng(0x5151_2323_7777_0001);
    let pieces: [&[u8]; 16] = [
        b"permessage-deflate",
        b"; ",
        b";",
        b", ",
        b"server_no_context_takeover",
        b"client_no_context_takeover",
        b"server_max_window_bits",
        b"client_max_window_bits",
        b"=",
        b"\"",
        b"8",
        b"15",
        b"10",
        b"x-webkit-deflate-frame",
        b" ",
        b"\\",
    ];
    for _ in 0..5000 {
        let mut v = Vec::new();
        for _ in 0..rng.below(14) {
            v.extend_from_slice(pieces[rng.below(pieces.len() as u64) as usize]);
        }
        if rng.below(10) == 0 && !v.is_empty() {
            let at = rng.below(v.len() as u64) as usize;
            v[at] = rng.next() as u8;
        }
        fuzz_bodies::negotiation_any_offer(&v);
    }
}

#[test]
fn inflate_random_streams() {
    use myriad::proto::deflate::Deflater;
    let mut rng = Rng(0x0dd0_f00d_1234_9876);
    for _ in 0..1500 {
        // Real compressed data, sometimes damaged, sometimes noise; sometimes a bomb's worth.
        let len = rng.below(3000) as usize;
        let text: Vec<u8> = (0..len)
            .map(|i| {
                if rng.below(3) == 0 {
                    rng.next() as u8
                } else {
                    b"abcab"[i % 5]
                }
            })
            .collect();
        let mut packed = Vec::new();
        Deflater::new(9 + rng.below(7) as u8, 6).compress(&text, true, &mut packed);
        match rng.below(4) {
            0 if !packed.is_empty() => {
                let at = rng.below(packed.len() as u64) as usize;
                packed[at] ^= rng.next() as u8 | 1;
            }
            1 => packed = (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
            _ => {}
        }
        fuzz_bodies::inflate_any_message(&packed);
    }
}

#[test]
fn session_random_inputs() {
    let mut rng = Rng(0xabad_cafe_f00d_0042);
    for _ in 0..20_000 {
        let len = rng.below(40) as usize;
        let inputs: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        fuzz_bodies::session_any_inputs(&inputs);
    }
}
