//! Handshakes in flight (a connection that has not become a WebSocket or a stream yet, or a
//! kept-alive connection between requests): counted in all, and per client address, so that one
//! address cannot take every slot (BAD_INPUTS 10, 57). Only pending connections have entries.

use std::collections::HashMap;
use std::net::IpAddr;

/// A client address as the caps see it: an IPv4 address, or the /64 of an IPv6 one (a host
/// usually owns a whole /64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct IpKey(u128);

impl IpKey {
    pub(crate) fn of(ip: IpAddr) -> IpKey {
        match ip {
            IpAddr::V4(v4) => IpKey(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey(u128::from(u32::from(v4))),
                None => IpKey(u128::from(v6) & !((1u128 << 64) - 1) | (1 << 127)),
            },
        }
    }
}

/// The counts.
#[derive(Default)]
pub(crate) struct Pending {
    count: usize,
    per_ip: HashMap<IpKey, u32>,
    of_conn: HashMap<usize, IpKey>,
}

impl Pending {
    /// Handshakes in flight.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Handshakes in flight from `ip`.
    pub(crate) fn from(&self, ip: IpKey) -> u32 {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Connection `key`, from `ip`, is pending now.
    pub(crate) fn begin(&mut self, key: usize, ip: Option<IpKey>) {
        self.count += 1;
        if let Some(ip) = ip {
            *self.per_ip.entry(ip).or_insert(0) += 1;
            self.of_conn.insert(key, ip);
        }
    }

    /// Connection `key` is pending no more.
    pub(crate) fn end(&mut self, key: usize) {
        self.count = self.count.saturating_sub(1);
        if let Some(ip) = self.of_conn.remove(&key)
            && let Some(n) = self.per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Gives back spare capacity (after a mass disconnect).
    pub(crate) fn shrink(&mut self) {
        self.per_ip.shrink_to_fit();
        self.of_conn.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_prefixes() {
        let a = IpKey::of("10.0.0.1".parse().unwrap());
        assert_eq!(a, IpKey::of("::ffff:10.0.0.1".parse().unwrap()));
        assert_ne!(a, IpKey::of("10.0.0.2".parse().unwrap()));
        let b = IpKey::of("2001:db8:1:2::1".parse().unwrap());
        assert_eq!(b, IpKey::of("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_ne!(b, IpKey::of("2001:db8:1:3::1".parse().unwrap()));
        let mut p = Pending::default();
        p.begin(1, Some(a));
        p.begin(2, Some(a));
        p.begin(3, None);
        assert_eq!((p.count(), p.from(a)), (3, 2));
        p.end(1);
        p.end(3);
        assert_eq!((p.count(), p.from(a)), (1, 1));
        p.end(2);
        assert!(p.per_ip.is_empty() && p.of_conn.is_empty());
    }
}
