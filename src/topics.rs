//! Pub/sub topics of one reactor: who subscribes to what, and the cost of a subscription.
//!
//! A topic keeps its subscribers' slab keys in a list (4 bytes each), in no order. Each
//! subscription also records where its key sits in that list, so that unsubscribe and close
//! release it in O(1): no search over all topics, nor over a topic's subscribers (100,000
//! subscribers of one topic may leave at once), nor over a connection's topics (one connection
//! may hold thousands). A connection's first subscription lives in a hash map of small entries
//! (the common case: one topic per connection); its others in a second map keyed by (connection,
//! topic), plus a list per connection that close walks, each entry knowing its place in that
//! list too. Every operation is O(1) expected; closing a connection is O(its subscriptions),
//! which `Config::max_topics_per_connection` bounds. Measured with
//! `cargo bench --bench idle_memory` (10,000 connections, RSS). A topic name is stored once per
//! reactor; a topic without subscribers is removed, and spare capacity is given back after a
//! mass close.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;

/// A connection's first subscription: the topic, and where the key sits in its list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct First {
    id: u32,
    pos: u32,
}

/// Another subscription: where the key sits in the topic's list, and where the topic sits in
/// the connection's list of other topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct More {
    pos: u32,
    at: u32,
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
    first: HashMap<u32, First>,
    /// Its other subscriptions, by (key, topic id).
    more: HashMap<(u32, u32), More>,
    /// The topic ids of each connection's other subscriptions.
    lists: HashMap<u32, Vec<u32>>,
    /// Subscriptions in all.
    count: usize,
    /// Topics that lost their last subscriber since the last `take_emptied`.
    emptied: Vec<Box<str>>,
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
        if self.position(key, id).is_some() {
            return false;
        }
        let list = &mut self.subs[id as usize];
        let pos = list.len() as u32;
        list.push(key);
        self.count += 1;
        match self.first.entry(key) {
            Slot::Vacant(v) => {
                v.insert(First { id, pos });
            }
            Slot::Occupied(_) => {
                let others = self.lists.entry(key).or_default();
                let at = others.len() as u32;
                others.push(id);
                self.more.insert((key, id), More { pos, at });
            }
        }
        true
    }

    /// Whether connection `key` subscribes to `topic`.
    pub(crate) fn is_subscribed(&self, key: u32, topic: &str) -> bool {
        self.id(topic)
            .is_some_and(|id| self.position(key, id).is_some())
    }

    /// The topics that lost their last subscriber since the last call.
    pub(crate) fn take_emptied(&mut self) -> std::vec::Drain<'_, Box<str>> {
        self.emptied.drain(..)
    }

    /// How many topics connection `key` subscribes to.
    pub(crate) fn count_of(&self, key: u32) -> usize {
        let first = usize::from(self.first.contains_key(&key));
        first + self.lists.get(&key).map_or(0, Vec::len)
    }

    /// Unsubscribes `key` from `topic`; false when it was not subscribed.
    pub(crate) fn unsubscribe(&mut self, key: u32, topic: &str) -> bool {
        let Some(&id) = self.ids.get(topic) else {
            return false;
        };
        let Some(pos) = self.position(key, id) else {
            return false;
        };
        if self.first.get(&key).is_some_and(|f| f.id == id) {
            // The first subscription goes: one of the others (the last listed) takes its place.
            match self.pop_other(key) {
                Some((next, m)) => {
                    self.first.insert(
                        key,
                        First {
                            id: next,
                            pos: m.pos,
                        },
                    );
                }
                None => {
                    self.first.remove(&key);
                }
            }
        } else {
            self.remove_other(key, id);
        }
        self.drop_subscriber(key, id, pos);
        true
    }

    /// Releases every subscription of a closed connection: O(its subscriptions).
    pub(crate) fn remove_conn(&mut self, key: u32) {
        if let Some(f) = self.first.remove(&key) {
            self.drop_subscriber(key, f.id, f.pos);
        }
        for id in self.lists.remove(&key).unwrap_or_default() {
            if let Some(m) = self.more.remove(&(key, id)) {
                self.drop_subscriber(key, id, m.pos);
            }
        }
    }

    /// Where `key` sits in topic `id`'s list, if it subscribes.
    fn position(&self, key: u32, id: u32) -> Option<u32> {
        match self.first.get(&key) {
            None => None,
            Some(f) if f.id == id => Some(f.pos),
            Some(_) => self.more.get(&(key, id)).map(|m| m.pos),
        }
    }

    /// Takes the last of `key`'s other subscriptions out of its list and the map.
    fn pop_other(&mut self, key: u32) -> Option<(u32, More)> {
        let others = self.lists.get_mut(&key)?;
        let id = others.pop()?;
        if others.is_empty() {
            self.lists.remove(&key);
        }
        self.more.remove(&(key, id)).map(|m| (id, m))
    }

    /// Takes `key`'s other subscription to topic `id` out of its list and the map; the topic
    /// moved into its place in the list learns its new place.
    fn remove_other(&mut self, key: u32, id: u32) {
        let Some(m) = self.more.remove(&(key, id)) else {
            return;
        };
        let Some(others) = self.lists.get_mut(&key) else {
            return;
        };
        others.swap_remove(m.at as usize);
        if let Some(&moved) = others.get(m.at as usize)
            && let Some(x) = self.more.get_mut(&(key, moved))
        {
            x.at = m.at;
        }
        if others.is_empty() {
            self.lists.remove(&key);
        }
    }

    /// Takes `key` out of topic `id`'s list at `pos`; the key moved into its place learns its new
    /// position.
    fn drop_subscriber(&mut self, key: u32, id: u32, pos: u32) {
        let list = &mut self.subs[id as usize];
        debug_assert_eq!(list.get(pos as usize), Some(&key));
        list.swap_remove(pos as usize);
        self.count -= 1;
        if let Some(&moved) = list.get(pos as usize) {
            match self.first.get_mut(&moved) {
                Some(f) if f.id == id => f.pos = pos,
                _ => {
                    if let Some(m) = self.more.get_mut(&(moved, id)) {
                        m.pos = pos;
                    }
                }
            }
        }
        if list.is_empty() {
            *list = Vec::new();
            if let Some(name) = self.names[id as usize].take() {
                self.ids.remove(&name);
                self.emptied.push(name);
            }
            self.free_ids.push(id);
        }
    }

    /// Gives back spare capacity after many subscribers left (called with the slab's reclaim).
    pub(crate) fn shrink(&mut self) {
        self.first.shrink_to_fit();
        self.more.shrink_to_fit();
        self.lists.shrink_to_fit();
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

    /// Topics with subscribers.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Subscriptions in all.
    pub(crate) fn subscriptions(&self) -> usize {
        self.count
    }

    /// The topics connection `key` subscribes to, in no order.
    pub(crate) fn topics_of(&self, key: u32) -> impl Iterator<Item = &str> + '_ {
        let first = self.first.get(&key).map(|f| f.id);
        let others = self.lists.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        first
            .into_iter()
            .chain(others.iter().copied())
            .filter_map(|id| self.names.get(id as usize)?.as_deref())
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
        assert_eq!((t.count_of(2), t.subscriptions()), (2, 3));
        assert!(t.unsubscribe(1, "a"));
        assert!(!t.unsubscribe(1, "a"));
        assert_eq!(t.subscribers("a"), &[2]);
        t.remove_conn(2);
        assert!(t.subscribers("a").is_empty());
        assert!(t.subscribers("b").is_empty());
        assert!(t.ids.is_empty() && t.first.is_empty() && t.more.is_empty() && t.lists.is_empty());
        assert_eq!(t.subscriptions(), 0);
        // Ids are reused.
        assert!(t.subscribe(3, "c"));
        assert_eq!(t.subs.len(), 2);
    }

    /// Every subscription's recorded positions point at its key and its topic, both ways.
    fn check(t: &Topics) {
        let mut n = 0;
        for (&key, f) in &t.first {
            assert_eq!(t.subs[f.id as usize][f.pos as usize], key);
            n += 1;
        }
        for (&(key, id), m) in &t.more {
            assert_eq!(t.subs[id as usize][m.pos as usize], key);
            assert_eq!(t.lists[&key][m.at as usize], id);
            assert!(t.first.contains_key(&key), "others without a first");
            n += 1;
        }
        let listed: usize = t.lists.values().map(Vec::len).sum();
        assert_eq!(listed, t.more.len());
        assert_eq!(n, t.subs.iter().map(Vec::len).sum::<usize>());
        assert_eq!(n, t.count);
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
        for _ in 0..4000 {
            let key = rnd(300);
            let topic = format!("t{}", rnd(6));
            match rnd(4) {
                0 | 1 => {
                    t.subscribe(key, &topic);
                }
                2 => {
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

    /// Issue 11: two connections sharing many topics (before, subscribing and closing were
    /// quadratic: 20,000 here took seconds). Every position stays right at this size; the
    /// reactor-level test (`tests/limits.rs`) measures the stall.
    #[test]
    fn many_topics_on_one_connection_stay_linear() {
        let mut t = Topics::default();
        let names: Vec<String> = (0..20_000).map(|i| format!("topic-{i}")).collect();
        for n in &names {
            t.subscribe(1, n);
            t.subscribe(2, n);
        }
        assert_eq!(t.count_of(1), 20_000);
        check(&t);
        t.remove_conn(1);
        check(&t);
        assert_eq!(t.count_of(2), 20_000);
        for n in names.iter().step_by(2) {
            assert!(t.unsubscribe(2, n));
        }
        check(&t);
        assert_eq!(t.count_of(2), 10_000);
    }
}
