//! Pub/sub delivery: a publish reaches this reactor once (framed, and compressed, once); it is
//! queued per topic in O(1) and written per subscriber at the end of the callback batch, every
//! publish that reached a subscriber in one writev.

use std::sync::Arc;

use log::debug;

use super::Shard;
use crate::conn::{Kind, Mode};
use crate::error::SendError;
use crate::message::{Compress, Message, SendStatus};
use crate::proto::close;
use crate::proto::frame::OpCode;
use crate::published::Published;
use crate::transport;

/// What a subscriber takes of a publish.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Take {
    /// The plain frame.
    Plain,
    /// The frame compressed once for everyone.
    Shared,
    /// Its own compression (it keeps a deflate context).
    Own,
    /// The payload as a chunk of a streamed response.
    Chunks,
    /// The shared SSE event (an SSE session: written like a frame).
    Event,
    /// The shared SSE event, into a long-poll session's queue.
    Queue,
    /// Nothing now: it is sending a fragmented message.
    Skipped,
}

/// A publish queued for this reactor's subscribers.
pub(crate) struct Queued {
    topic: u32,
    message: Arc<Published>,
    /// A subscriber on this reactor that does not get it (its publisher).
    skip: Option<u32>,
}

impl<D> Shard<D> {
    /// Subscribes connection `key` to `topic`, within the limits; `Ok(false)` if it already
    /// was. Publishes queued before this go to the subscribers of that moment.
    pub(crate) fn subscribe(&mut self, key: usize, topic: &str) -> Result<bool, SendError> {
        if topic.len() > self.cfg.max_topic_len {
            return Err(SendError::TopicTooLong);
        }
        let k = key as u32;
        if self.topics.is_subscribed(k, topic) {
            return Ok(false);
        }
        if self.topics.count_of(k) >= self.cfg.max_topics_per_connection {
            return Err(SendError::TooManyTopics);
        }
        self.flush_batch();
        let first_here = self.topics.id(topic).is_none();
        self.topics.subscribe(k, topic);
        if first_here {
            // The other reactors learn that publishes to this topic concern this one.
            self.bus.announce(self.reactor, topic.into(), true);
        }
        Ok(true)
    }

    /// Unsubscribes connection `key` from `topic`; false if it was not subscribed.
    pub(crate) fn unsubscribe(&mut self, key: usize, topic: &str) -> bool {
        self.flush_batch();
        let removed = self.topics.unsubscribe(key as u32, topic);
        self.announce_emptied();
        removed
    }

    /// Tells the other reactors of the topics this one no longer has subscribers of.
    pub(crate) fn announce_emptied(&mut self) {
        for name in self.topics.take_emptied() {
            self.bus.announce(self.reactor, name, false);
        }
    }

    /// Publishes `msg` to `topic` from a callback on connection-less ground: framed (and
    /// compressed) once; queued here and posted to every other reactor. Returns the subscribers
    /// on this reactor it was queued for.
    pub(crate) fn publish(
        &mut self,
        topic: &str,
        msg: Message<'_>,
        skip: Option<usize>,
    ) -> Result<usize, SendError> {
        let (text, payload) = (msg.is_text(), msg.as_bytes());
        let published = if self.bus.compress_publish(payload.len()) {
            Published::new(text, payload, Some(self.streams.publish_deflater()))
        } else {
            Published::new(text, payload, None)
        };
        let published = Arc::new(published);
        let topic: Arc<str> = topic.into();
        let local = self.deliver(&topic, &published, skip);
        if self.bus.reactors() > 1 {
            // Only to the reactors that told this one they have subscribers of the topic.
            let interested = self.interest.get(&*topic).copied().unwrap_or(0);
            self.bus
                .post_publish(self.reactor, interested, &topic, &published);
        }
        // Other nodes, through the broker bridge (when there is one).
        self.bus.to_broker(&topic, text, payload);
        Ok(local)
    }

    /// Queues a published message for this reactor's subscribers of `topic` (but connection
    /// `skip`, its publisher, when it asked not to get it back): it leaves with the iteration's
    /// batch (`flush_batch`), so publishes that arrive together reach each subscriber in one
    /// writev. O(1) per publish; the per-subscriber work is done once per batch. Returns the
    /// subscribers it was queued for.
    pub(crate) fn deliver(
        &mut self,
        topic: &str,
        m: &Arc<Published>,
        skip: Option<usize>,
    ) -> usize {
        self.published += 1;
        let Some(id) = self.topics.id(topic) else {
            return 0;
        };
        let skip = skip.map(|k| k as u32);
        if self.batch.is_empty() {
            self.batch_due = Some(self.now + self.cfg.publish_coalesce);
        }
        self.batch.push(Queued {
            topic: id,
            message: m.clone(),
            skip,
        });
        let n = self.topics.subscribers_of(id).len();
        match skip {
            Some(k) if self.topics.subscribers_of(id).contains(&k) => n - 1,
            _ => n,
        }
    }

    /// Writes the queued publishes: to each subscriber, the one framed copy (or the one
    /// compressed copy, or, for a connection keeping its own deflate context, its own
    /// compression) of each message of its topics, in publish order, in one writev, or behind its
    /// unsent bytes with the backpressure rules of any send. A subscriber that cannot keep up
    /// gets the backpressure policy; the others do not notice.
    /// With a coalescing window, flushes the batch only once it is due (its window passed, or
    /// it holds `publish_coalesce_max` publishes); without one, always.
    pub(crate) fn flush_batch_if_due(&mut self) {
        let due = self.batch_due.is_some_and(|t| t <= self.now)
            || self.batch.len() >= self.cfg.publish_coalesce_max;
        if due {
            self.flush_batch();
        }
    }

    pub(crate) fn flush_batch(&mut self) {
        self.batch_due = None;
        if self.batch.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.batch);
        // Subscriptions do not change while a batch is queued (subscribe and unsubscribe flush it
        // first; closed connections leave their topics after it is flushed): borrow them out.
        let topics = std::mem::take(&mut self.topics);
        let mut order = std::mem::take(&mut self.batch_order);
        order.clear();
        let first = batch[0].topic;
        if batch.iter().all(|e| e.topic == first && e.skip.is_none()) {
            // One topic (the usual case): every subscriber gets every message. No sort.
            order.extend(0..batch.len() as u32);
            for &key in topics.subscribers_of(first) {
                self.write_group(key as usize, &order, &batch);
            }
        } else {
            // Several topics, or publishers left out: (subscriber, message) pairs, grouped by
            // subscriber with a stable sort so that each subscriber's messages stay in publish
            // order.
            let mut pairs = Vec::new();
            for (i, e) in batch.iter().enumerate() {
                pairs.extend(
                    topics
                        .subscribers_of(e.topic)
                        .iter()
                        .filter(|&&k| Some(k) != e.skip)
                        .map(|&k| (k, i as u32)),
                );
            }
            pairs.sort_by_key(|p| p.0);
            let mut i = 0;
            while i < pairs.len() {
                let key = pairs[i].0;
                order.clear();
                order.extend(pairs[i..].iter().take_while(|p| p.0 == key).map(|p| p.1));
                i += order.len();
                self.write_group(key as usize, &order, &batch);
            }
        }
        self.topics = topics;
        self.batch_order = order;
        batch.clear();
        if batch.capacity() <= 1 << 16 {
            self.batch = batch;
        }
    }

    /// What connection `key` takes of publishes, if it takes them now: open, and not in the
    /// middle of a fragmented send (RFC 6455 §5.4: its frames must not be interleaved).
    fn takes(&self, key: usize) -> Option<Take> {
        let conn = self.conns.get(key)?;
        if conn.flags.dead() {
            return None;
        }
        match &conn.kind {
            Kind::WebSocket(ws) if ws.session.is_open() && !ws.session.is_fragmenting() => {
                Some(match ws.deflate {
                    None => Take::Plain,
                    Some(z) if z.takes_shared() => Take::Shared,
                    Some(_) => Take::Own,
                })
            }
            Kind::WebSocket(ws) if ws.session.is_fragmenting() => Some(Take::Skipped),
            Kind::Stream(st) if st.open => Some(match st.mode {
                Mode::Chunked => Take::Chunks,
                Mode::Sse => Take::Event,
                Mode::Poll => Take::Queue,
            }),
            _ => None,
        }
    }

    /// Counts `n` publishes that did not reach connection `key`; `on_dropped` follows.
    fn count_dropped(&mut self, key: usize, n: u64) {
        self.stats.messages_dropped += n;
        *self.dropped.entry(key).or_default() += n;
    }

    /// Writes messages `idx` of `batch` to subscriber `key`.
    fn write_group(&mut self, key: usize, idx: &[u32], batch: &[Queued]) {
        let Some(take) = self.takes(key) else {
            return;
        };
        if take == Take::Skipped {
            // Sending a fragmented message: publishes cannot go between its frames.
            self.count_dropped(key, idx.len() as u64);
            return;
        }
        if matches!(take, Take::Chunks | Take::Queue) {
            // One message at a time: a chunk of its own, or the shared event into the queue.
            for &i in idx {
                let m = &batch[i as usize].message;
                let status = if take == Take::Chunks {
                    self.send_chunk(key, m.payload())
                } else {
                    self.poll_push(key, m.event().clone())
                };
                if status == SendStatus::Dropped {
                    *self.dropped.entry(key).or_default() += 1;
                } else {
                    self.deliveries += 1;
                }
            }
            return;
        }
        if take == Take::Own {
            // Its own deflate context: each message compressed for it alone.
            for &i in idx {
                let m = &batch[i as usize].message;
                let op = if m.text { OpCode::Text } else { OpCode::Binary };
                match self.send_data(key, op, m.payload(), Compress::Auto) {
                    Ok(SendStatus::Dropped) => *self.dropped.entry(key).or_default() += 1,
                    Ok(_) => self.deliveries += 1,
                    Err(_) => {}
                }
            }
            return;
        }
        let frame = |i: &u32| -> &Arc<Vec<u8>> {
            let m = &batch[*i as usize].message;
            match (&m.deflated, take) {
                (_, Take::Event) => m.event(),
                (Some(z), Take::Shared) => z,
                _ => &m.plain,
            }
        };
        // Bytes corked for it earlier go first.
        if self.cork_owner == Some(key) {
            self.flush_cork();
        }
        if self.wire.is_secure(key) {
            // Its records are its own: the shared frames are sealed for it alone (one frame
            // straight from the shared copy, several gathered into one run of records), written
            // or queued as its ciphertext, within the backpressure limit.
            let mut frames: Vec<&[u8]> = Vec::with_capacity(idx.len());
            let mut total = 0;
            for i in idx {
                let f = frame(i).as_slice();
                if self.over_limit(key, total + f.len()).is_some() {
                    *self.dropped.entry(key).or_default() += 1;
                    continue;
                }
                total += f.len();
                frames.push(f);
            }
            if !frames.is_empty() {
                self.write_now(key, &frames);
                self.deliveries += frames.len() as u64;
                self.stats.messages_sent += frames.len() as u64;
            }
            return;
        }
        let mut rest = idx;
        if self.conns[key].tx.is_none() {
            // Nothing waiting: as much as the socket takes, in as few writev calls as possible.
            while !rest.is_empty() {
                let n = rest.len().min(64);
                let mut frames: [&[u8]; 64] = [&[]; 64];
                for (f, i) in frames.iter_mut().zip(&rest[..n]) {
                    *f = frame(i).as_slice();
                }
                let written =
                    transport::write(&mut self.conns[key], &frames[..n], &mut self.wire.tally);
                let (done, skip) = match written {
                    Ok(at) => at,
                    Err(e) => {
                        debug!("write: {e}");
                        self.broken.push((key, close::ABNORMAL, "write failed"));
                        return;
                    }
                };
                if done == n {
                    self.deliveries += n as u64;
                    self.stats.messages_sent += n as u64;
                    rest = &rest[n..];
                    continue;
                }
                // The socket is full: the rest of a partly written frame must follow (by
                // reference: the publish's bytes are not copied per subscriber).
                let partial = frame(&rest[done]).clone();
                transport::queue_shared(&mut self.conns[key], partial, skip);
                self.want_write(key);
                self.deliveries += done as u64 + 1;
                self.stats.messages_sent += done as u64 + 1;
                rest = &rest[done + 1..];
                break;
            }
        }
        // Behind unsent bytes: each whole frame, within the backpressure limit, by reference.
        for i in rest {
            let f = frame(i);
            if self.over_limit(key, f.len()).is_some() {
                *self.dropped.entry(key).or_default() += 1;
                continue;
            }
            transport::queue_shared(&mut self.conns[key], f.clone(), 0);
            self.deliveries += 1;
            self.stats.messages_sent += 1;
        }
    }
}
