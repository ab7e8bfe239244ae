//! Per-token rate limits (`rate_limit_per_s` on a `[[tokens]]` entry, 0 =
//! off): past the rate a request gets `429 RATE_LIMITED` with Retry-After.
//!
//! A token bucket holding one second's worth of requests, kept as the
//! generic cell rate algorithm: the whole bucket is one `AtomicU64` (the
//! "theoretical arrival time" of the next request), updated with a
//! compare-and-swap. So requests of one token never take a lock, and
//! requests of different tokens share nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const NANOS_PER_SECOND: u64 = 1_000_000_000;

#[derive(Debug)]
pub struct RateLimit {
    per_second: u64,
    /// Time one request uses up.
    interval_ns: u64,
    /// How far ahead of now the bucket may run: a burst of `per_second`.
    burst_ns: u64,
    epoch: Instant,
    /// When the bucket is next empty, in ns since `epoch`.
    theoretical_arrival_ns: AtomicU64,
}

impl RateLimit {
    /// `None` for 0 (off).
    pub fn per_second(per_second: u64) -> Option<Self> {
        if per_second == 0 {
            return None;
        }
        let interval_ns = NANOS_PER_SECOND / per_second;
        Some(Self {
            per_second,
            interval_ns,
            burst_ns: interval_ns.saturating_mul(per_second - 1),
            epoch: Instant::now(),
            theoretical_arrival_ns: AtomicU64::new(0),
        })
    }

    pub fn per_second_value(&self) -> u64 {
        self.per_second
    }

    /// Takes one request's worth, or says how long until one is free.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        let now_ns = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.try_acquire_at(now_ns).map_err(Duration::from_nanos)
    }

    fn try_acquire_at(&self, now_ns: u64) -> Result<(), u64> {
        let mut arrival_ns = self.theoretical_arrival_ns.load(Ordering::Relaxed);
        loop {
            let start_ns = arrival_ns.max(now_ns);
            let ahead_ns = start_ns - now_ns;
            if ahead_ns > self.burst_ns {
                return Err(ahead_ns - self.burst_ns);
            }
            match self.theoretical_arrival_ns.compare_exchange_weak(
                arrival_ns,
                start_ns + self.interval_ns,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => arrival_ns = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn zero_is_off() {
        assert!(RateLimit::per_second(0).is_none());
    }

    #[test]
    fn a_burst_of_one_second_then_one_per_interval() {
        let limit = RateLimit::per_second(5).unwrap();
        let now = 10_000 * MS;
        for _ in 0..5 {
            limit.try_acquire_at(now).unwrap();
        }
        assert_eq!(limit.try_acquire_at(now), Err(200 * MS));
        assert_eq!(limit.try_acquire_at(now + 100 * MS), Err(100 * MS));
        limit.try_acquire_at(now + 200 * MS).unwrap();
        assert!(limit.try_acquire_at(now + 200 * MS).is_err());
        // A quiet spell refills the bucket, never beyond one second's worth.
        let later = now + 60_000 * MS;
        for _ in 0..5 {
            limit.try_acquire_at(later).unwrap();
        }
        assert!(limit.try_acquire_at(later).is_err());
    }

    #[test]
    fn one_per_second() {
        let limit = RateLimit::per_second(1).unwrap();
        limit.try_acquire_at(0).unwrap();
        assert_eq!(limit.try_acquire_at(0), Err(1000 * MS));
        limit.try_acquire_at(1000 * MS).unwrap();
    }

    #[test]
    fn concurrent_callers_get_exactly_the_burst() {
        let limit = std::sync::Arc::new(RateLimit::per_second(1000).unwrap());
        let now = 5_000 * MS;
        let granted: usize = (0..8)
            .map(|_| {
                let limit = std::sync::Arc::clone(&limit);
                std::thread::spawn(move || (0..500).filter(|_| limit.try_acquire_at(now).is_ok()).count())
            })
            .map(|thread| thread.join().unwrap())
            .sum();
        assert_eq!(granted, 1000);
    }
}
