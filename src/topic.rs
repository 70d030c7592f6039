//! Pub/sub topics of one reactor: who subscribes to what, and the cost of a subscription.
//!
//! A subscription is the subscriber's slab key (4 bytes) in its topic's list, plus the topic's id
//! (4 bytes) in the subscriber's own list (so that close releases everything without a search
//! over all topics), plus the amortised growth of those two lists and a hash-map slot the first
//! time a connection subscribes. A topic name is stored once per reactor. A topic without
//! subscribers is removed.

use std::collections::HashMap;

/// Topics of one reactor.
#[derive(Default)]
pub(crate) struct Topics {
    ids: HashMap<Box<str>, u32>,
    /// Subscriber keys by topic id.
    subs: Vec<Vec<u32>>,
    names: Vec<Option<Box<str>>>,
    free_ids: Vec<u32>,
    /// Topic ids by subscriber key.
    by_conn: HashMap<u32, Vec<u32>>,
}

impl Topics {
    /// Subscribes `key` to `topic`; false when it already was.
    pub(crate) fn subscribe(&mut self, key: u32, topic: &str) -> bool {
        let id = match self.ids.get(topic) {
            Some(&id) => id,
            None => {
                let id = match self.free_ids.pop() {
                    Some(id) => id,
                    None => {
                        self.subs.push(Vec::new());
                        self.names.push(None);
                        (self.subs.len() - 1) as u32
                    }
                };
                self.ids.insert(topic.into(), id);
                self.names[id as usize] = Some(topic.into());
                id
            }
        };
        let mine = self.by_conn.entry(key).or_default();
        if mine.contains(&id) {
            return false;
        }
        mine.push(id);
        self.subs[id as usize].push(key);
        true
    }

    /// Unsubscribes `key` from `topic`; false when it was not subscribed.
    pub(crate) fn unsubscribe(&mut self, key: u32, topic: &str) -> bool {
        let Some(&id) = self.ids.get(topic) else {
            return false;
        };
        let Some(mine) = self.by_conn.get_mut(&key) else {
            return false;
        };
        let Some(at) = mine.iter().position(|&t| t == id) else {
            return false;
        };
        mine.swap_remove(at);
        if mine.is_empty() {
            self.by_conn.remove(&key);
        }
        self.drop_subscriber(id, key);
        true
    }

    /// Releases every subscription of a closed connection.
    pub(crate) fn remove_conn(&mut self, key: u32) {
        if let Some(mine) = self.by_conn.remove(&key) {
            for id in mine {
                self.drop_subscriber(id, key);
            }
        }
    }

    fn drop_subscriber(&mut self, id: u32, key: u32) {
        let list = &mut self.subs[id as usize];
        if let Some(at) = list.iter().position(|&k| k == key) {
            list.swap_remove(at);
        }
        if list.is_empty() {
            *list = Vec::new();
            if let Some(name) = self.names[id as usize].take() {
                self.ids.remove(&name);
            }
            self.free_ids.push(id);
        }
    }

    /// The subscribers of `topic` on this reactor.
    #[cfg(test)]
    pub(crate) fn subscribers(&self, topic: &str) -> &[u32] {
        self.id(topic).map_or(&[], |id| self.subscribers_of(id))
    }

    /// The id of `topic`, while it has subscribers on this reactor.
    pub(crate) fn id(&self, topic: &str) -> Option<u32> {
        self.ids.get(topic).copied()
    }

    /// The subscribers of topic `id`.
    pub(crate) fn subscribers_of(&self, id: u32) -> &[u32] {
        self.subs.get(id as usize).map_or(&[], Vec::as_slice)
    }
}

/// A published message, framed once: as is, and (when worth it) compressed once for every
/// subscriber in the shared deflate mode (RFC 7692 with server_no_context_takeover).
pub(crate) struct Published {
    /// Text or binary.
    pub(crate) text: bool,
    /// The whole frame, uncompressed.
    pub(crate) plain: Vec<u8>,
    /// Header length within `plain` (the payload follows).
    pub(crate) header: usize,
    /// The whole frame compressed with a fresh context (RSV1 set), if compressed.
    pub(crate) deflated: Option<Vec<u8>>,
}

impl Published {
    /// Frames `payload`; compresses it once with `deflater` (reset per message) when given.
    pub(crate) fn new(
        text: bool,
        payload: &[u8],
        deflater: Option<&mut crate::deflate::Deflater>,
    ) -> Published {
        use crate::frame::{MAX_HEADER, OpCode, encode};
        let op = if text { OpCode::Text } else { OpCode::Binary };
        let mut h = [0u8; MAX_HEADER];
        let header = encode(&mut h, true, false, op, None, payload.len() as u64);
        let mut plain = Vec::with_capacity(header + payload.len());
        plain.extend_from_slice(&h[..header]);
        plain.extend_from_slice(payload);
        let deflated = deflater.map(|d| {
            let mut z = Vec::new();
            d.compress(payload, true, &mut z);
            let n = encode(&mut h, true, true, op, None, z.len() as u64);
            let mut f = Vec::with_capacity(n + z.len());
            f.extend_from_slice(&h[..n]);
            f.extend_from_slice(&z);
            f
        });
        Published {
            text,
            plain,
            header,
            deflated,
        }
    }

    /// The payload, uncompressed.
    pub(crate) fn payload(&self) -> &[u8] {
        &self.plain[self.header..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_unsubscribe_and_close_release_everything() {
        let mut t = Topics::default();
        assert!(t.subscribe(1, "a"));
        assert!(!t.subscribe(1, "a"));
        assert!(t.subscribe(2, "a"));
        assert!(t.subscribe(2, "b"));
        assert_eq!(t.subscribers("a"), &[1, 2]);
        assert!(t.unsubscribe(1, "a"));
        assert!(!t.unsubscribe(1, "a"));
        assert_eq!(t.subscribers("a"), &[2]);
        t.remove_conn(2);
        assert!(t.subscribers("a").is_empty());
        assert!(t.subscribers("b").is_empty());
        assert!(t.ids.is_empty() && t.by_conn.is_empty());
        // Ids are reused.
        assert!(t.subscribe(3, "c"));
        assert_eq!(t.subs.len(), 2);
    }
}
