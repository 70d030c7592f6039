//! The JSON pub/sub protocol of `myriad serve --mode pubsub`, as a [`Handler`].
//!
//! Client to server, one JSON object per text message:
//! - `{"op":"sub","topic":"t"}` subscribes, answered `{"ok":"sub","topic":"t"}`;
//! - `{"op":"unsub","topic":"t"}` unsubscribes, answered `{"ok":"unsub","topic":"t"}`;
//! - `{"op":"pub","topic":"t","data":<any JSON>}` publishes; every subscriber of `t` (on every
//!   reactor, the publisher too if it subscribes) receives `{"topic":"t","data":<the same JSON>}`.
//!
//! Malformed JSON, an unknown op or a missing field is answered `{"error":"..."}` and the
//! connection stays open; a message over the size limit is closed with 1009 by the core. Messages
//! are parsed with simd-json in a per-reactor buffer (each reactor owns a clone of the handler).

use simd_json::prelude::*;

use myriad::{Handler, Message, Request, Upgrade, Ws};

/// The pub/sub handler.
#[derive(Clone, Default)]
pub struct PubSub {
    /// simd-json parses in place: the message is copied here first (the receive buffer is
    /// shared and read-only to handlers).
    input: Vec<u8>,
    output: String,
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

enum Op<'a> {
    Sub(&'a str),
    Unsub(&'a str),
}

impl PubSub {
    fn reply_error(ws: &mut Ws<'_, ()>, why: &str) {
        let mut out = String::from("{\"error\":");
        push_json_str(&mut out, why);
        out.push('}');
        let _ = ws.send_text(&out);
    }

    fn handle(&mut self, ws: &mut Ws<'_, ()>) -> Result<(), &'static str> {
        let value = simd_json::to_borrowed_value(&mut self.input).map_err(|_| "malformed JSON")?;
        if value.as_object().is_none() {
            return Err("expected a JSON object");
        }
        let op = value.get_str("op").ok_or("missing field: op")?;
        let topic = value.get_str("topic").ok_or("missing field: topic")?;
        let ack = match op {
            "sub" => Op::Sub(topic),
            "unsub" => Op::Unsub(topic),
            "pub" => {
                let data = value.get("data").ok_or("missing field: data")?;
                self.output.clear();
                self.output.push_str("{\"topic\":");
                push_json_str(&mut self.output, topic);
                self.output.push_str(",\"data\":");
                self.output.push_str(&data.encode());
                self.output.push('}');
                ws.publish(topic, Message::Text(&self.output))
                    .map_err(|_| "server stopping")?;
                return Ok(());
            }
            _ => return Err("unknown op"),
        };
        let (name, topic) = match ack {
            Op::Sub(t) => {
                ws.subscribe(t).map_err(|e| match e {
                    myriad::SendError::TopicTooLong => "topic name too long",
                    myriad::SendError::TooManyTopics => "too many topics",
                    _ => "cannot subscribe",
                })?;
                ("sub", t)
            }
            Op::Unsub(t) => {
                ws.unsubscribe(t);
                ("unsub", t)
            }
        };
        self.output.clear();
        self.output.push_str("{\"ok\":\"");
        self.output.push_str(name);
        self.output.push_str("\",\"topic\":");
        push_json_str(&mut self.output, topic);
        self.output.push('}');
        let _ = ws.send_text(&self.output);
        Ok(())
    }
}

impl Handler for PubSub {
    type Data = ();

    fn on_upgrade(&mut self, _req: &Request<'_>) -> Upgrade<()> {
        Upgrade::accept(())
    }

    fn on_message(&mut self, ws: &mut Ws<'_, ()>, msg: Message<'_>) {
        let Message::Text(text) = msg else {
            PubSub::reply_error(ws, "binary messages are not part of the protocol");
            return;
        };
        self.input.clear();
        self.input.extend_from_slice(text.as_bytes());
        if let Err(why) = self.handle(ws) {
            PubSub::reply_error(ws, why);
        }
        // Keep the parser buffers from holding on to one huge message.
        if self.input.capacity() > 1 << 20 {
            self.input = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\n\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001é\"");
        let mut v = s.clone().into_bytes();
        let parsed = simd_json::to_borrowed_value(&mut v).unwrap();
        assert_eq!(parsed.as_str(), Some("a\"b\\c\n\u{1}é"));
    }
}
