//! Pub/sub topics of one reactor: who subscribes to what, and the cost of a subscription.
//!
//! A topic keeps its subscribers' slab keys in a list (4 bytes each), in no order. Each
//! subscription also records, for its connection, the topic's id and the key's position in that
//! list (8 bytes), so that unsubscribe and close release it in O(1): no search over all topics,
//! nor over a topic's subscribers, which matters when 100,000 subscribers of one topic leave at
//! once. A connection's first subscription lives in a hash map of such entries; connections
//! with more than one keep the rest in a list of their own. Measured with
//! `cargo bench --bench idle_memory` (10,000 connections, RSS): 33 bytes for a connection's only
//! subscription, 37 bytes each with four per connection. A topic name is stored once per reactor;
//! a topic without subscribers is removed, and spare capacity is given back after a mass close.

use std::collections::HashMap;

/// One subscription, seen from its connection: the topic and where the key sits in its list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    id: u32,
    pos: u32,
}

/// Topics of one reactor.
#[derive(Default)]
pub(crate) struct Topics {
    ids: HashMap<Box<str>, u32>,
    /// Subscriber keys by topic id.
    subs: Vec<Vec<u32>>,
    names: Vec<Option<Box<str>>>,
    free_ids: Vec<u32>,
    /// Each subscribed connection's first subscription, by key.
    first: HashMap<u32, Entry>,
    /// Its other subscriptions, for connections with more than one.
    more: HashMap<u32, Vec<Entry>>,
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
        if self.find(key, id).is_some() {
            return false;
        }
        let list = &mut self.subs[id as usize];
        let e = Entry {
            id,
            pos: list.len() as u32,
        };
        list.push(key);
        if let std::collections::hash_map::Entry::Vacant(v) = self.first.entry(key) {
            v.insert(e);
        } else {
            self.more.entry(key).or_default().push(e);
        }
        true
    }

    /// Unsubscribes `key` from `topic`; false when it was not subscribed.
    pub(crate) fn unsubscribe(&mut self, key: u32, topic: &str) -> bool {
        let Some(&id) = self.ids.get(topic) else {
            return false;
        };
        let Some(e) = self.find(key, id) else {
            return false;
        };
        // Forget it on the connection's side: the first entry is replaced by one of the others.
        if self.first.get(&key) == Some(&e) {
            match self.more.get_mut(&key).and_then(Vec::pop) {
                Some(next) => {
                    self.first.insert(key, next);
                }
                None => {
                    self.first.remove(&key);
                }
            }
        } else if let Some(rest) = self.more.get_mut(&key) {
            rest.retain(|x| x.id != id);
        }
        if self.more.get(&key).is_some_and(Vec::is_empty) {
            self.more.remove(&key);
        }
        self.drop_subscriber(e);
        true
    }

    /// Releases every subscription of a closed connection.
    pub(crate) fn remove_conn(&mut self, key: u32) {
        if let Some(e) = self.first.remove(&key) {
            self.drop_subscriber(e);
        }
        for e in self.more.remove(&key).unwrap_or_default() {
            self.drop_subscriber(e);
        }
    }

    /// The subscription of `key` to topic `id`, if any.
    fn find(&self, key: u32, id: u32) -> Option<Entry> {
        match self.first.get(&key) {
            None => None,
            Some(e) if e.id == id => Some(*e),
            Some(_) => self
                .more
                .get(&key)
                .and_then(|rest| rest.iter().find(|e| e.id == id).copied()),
        }
    }

    /// Takes a subscriber out of its topic's list; the key moved into its place learns its new
    /// position.
    fn drop_subscriber(&mut self, e: Entry) {
        let list = &mut self.subs[e.id as usize];
        list.swap_remove(e.pos as usize);
        if let Some(&moved) = list.get(e.pos as usize) {
            let old = list.len() as u32;
            match self.first.get_mut(&moved) {
                Some(f) if f.id == e.id => f.pos = e.pos,
                _ => {
                    if let Some(x) = self
                        .more
                        .get_mut(&moved)
                        .and_then(|rest| rest.iter_mut().find(|x| x.id == e.id))
                    {
                        debug_assert_eq!(x.pos, old);
                        x.pos = e.pos;
                    }
                }
            }
        }
        if list.is_empty() {
            *list = Vec::new();
            if let Some(name) = self.names[e.id as usize].take() {
                self.ids.remove(&name);
            }
            self.free_ids.push(e.id);
        }
    }

    /// Gives back spare capacity after many subscribers left (called with the slab's reclaim).
    pub(crate) fn shrink(&mut self) {
        self.first.shrink_to_fit();
        self.more.shrink_to_fit();
        self.ids.shrink_to_fit();
        for list in &mut self.subs {
            if list.capacity() > 2 * list.len() + 8 {
                list.shrink_to_fit();
            }
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
        assert!(t.ids.is_empty() && t.first.is_empty() && t.more.is_empty());
        // Ids are reused.
        assert!(t.subscribe(3, "c"));
        assert_eq!(t.subs.len(), 2);
    }

    /// Every subscription's recorded position points at its key, both ways.
    fn check(t: &Topics) {
        let mut n = 0;
        for (&key, e) in &t.first {
            assert_eq!(t.subs[e.id as usize][e.pos as usize], key);
            n += 1;
        }
        for (&key, rest) in &t.more {
            assert!(!rest.is_empty());
            for e in rest {
                assert_eq!(t.subs[e.id as usize][e.pos as usize], key);
                n += 1;
            }
        }
        assert_eq!(n, t.subs.iter().map(Vec::len).sum::<usize>());
    }

    #[test]
    fn positions_stay_right_through_any_order_of_leaving() {
        let mut t = Topics::default();
        let mut x = 0x2545_f491_u32;
        let mut rnd = move |n: u32| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x % n
        };
        for key in 0..300 {
            for topic in 0..1 + key % 4 {
                assert!(t.subscribe(key, &format!("t{topic}")));
            }
        }
        check(&t);
        for _ in 0..2000 {
            let key = rnd(300);
            let topic = format!("t{}", rnd(5));
            match rnd(3) {
                0 => {
                    t.subscribe(key, &topic);
                }
                1 => {
                    t.unsubscribe(key, &topic);
                }
                _ => t.remove_conn(key),
            }
            check(&t);
        }
        for key in 0..300 {
            t.remove_conn(key);
        }
        check(&t);
        assert!(t.ids.is_empty() && t.first.is_empty() && t.more.is_empty());
    }
}
