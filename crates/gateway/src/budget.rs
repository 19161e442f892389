//! The memory budget of records in flight (`delivery.max_in_flight_bytes`): every record a
//! source answered (a transfer's fetch, a check's, an OmaData resource) holds a
//! [`Reservation`] of its size from the moment its body is about to be read until the last
//! copy of its bytes is dropped.
//!
//! Owns: [`RecordBudget`] (a tokio [`Semaphore`] counting KiB, so that one `acquire_many(u32)`
//! covers any size), the reservations it hands out, and the two gauges that show them:
//! `siirto_records_in_flight_bytes` (reserved now) and `siirto_records_in_flight_peak_bytes`
//! (the most reserved at once since start). Waiting is fair: reservations are granted in the
//! order they were asked for, so a large record is not starved by a stream of small ones.
//!
//! A record larger than the whole budget is not refused here (`delivery.max_response_bytes`
//! decides that): its reservation is capped at the whole budget, so it waits until nothing else
//! is reserved and then runs alone.
//!
//! Must not: decide what is a record or how large it may be, or wait for anything but the
//! budget.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The unit of the semaphore's permits.
const KIB: usize = 1024;

/// The budget of records in flight. Cheap to clone (clones share the budget).
#[derive(Clone)]
pub struct RecordBudget {
    inner: Arc<Inner>,
}

struct Inner {
    semaphore: Arc<Semaphore>,
    /// The budget in bytes.
    total: usize,
    /// The budget in permits: `total / KIB`, rounded down, so that the bytes of the
    /// reservations granted at once never add up to more than `total`.
    permits: usize,
    counts: Mutex<Counts>,
    in_flight: Gauge,
    peak: Gauge,
}

/// Bytes reserved now and at most so far; the gauges are set from these under the lock, so
/// they never show an older value after a newer one.
#[derive(Default)]
struct Counts {
    reserved: usize,
    peak: usize,
}

impl std::fmt::Debug for RecordBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBudget")
            .field("total", &self.inner.total)
            .field("reserved", &self.reserved())
            .finish()
    }
}

impl RecordBudget {
    /// A budget of `total` bytes (at least 1 KiB is used), shown on `in_flight` (bytes reserved
    /// now) and `peak` (the high-water mark).
    pub fn new(total: usize, in_flight: Gauge, peak: Gauge) -> RecordBudget {
        let permits = (total / KIB).clamp(1, u32::MAX as usize);
        let total = total.clamp(KIB, permits * KIB + (KIB - 1));
        in_flight.set(0);
        peak.set(0);
        RecordBudget {
            inner: Arc::new(Inner {
                semaphore: Arc::new(Semaphore::new(permits)),
                total,
                permits,
                counts: Mutex::new(Counts::default()),
                in_flight,
                peak,
            }),
        }
    }

    /// The budget in bytes.
    pub fn total(&self) -> usize {
        self.inner.total
    }

    /// Bytes reserved now.
    pub fn reserved(&self) -> usize {
        self.inner.lock().reserved
    }

    /// The most bytes reserved at once since start.
    pub fn peak(&self) -> usize {
        self.inner.lock().peak
    }

    /// Waits (in the order asked, behind every earlier reservation still waiting) until
    /// `bytes` of the budget are free, and reserves them. `bytes` over the whole budget
    /// reserve the whole budget.
    pub async fn reserve(&self, bytes: usize) -> Reservation {
        let inner = &self.inner;
        let bytes = bytes.min(inner.total);
        let permits = inner.permits_for(bytes);
        // The semaphore is never closed, and `permits` fits in a u32 (at most `inner.permits`).
        let permit = inner
            .semaphore
            .clone()
            .acquire_many_owned(u32::try_from(permits).unwrap_or(u32::MAX))
            .await
            .expect("the budget's semaphore is never closed");
        inner.add(bytes);
        Reservation {
            inner: self.inner.clone(),
            permit,
            bytes,
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked (each update is one statement).
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The permits `bytes` (at most `total`) take: whole KiB, rounded up, at most the budget.
    fn permits_for(&self, bytes: usize) -> usize {
        bytes.div_ceil(KIB).min(self.permits)
    }

    fn add(&self, bytes: usize) {
        let mut c = self.lock();
        c.reserved += bytes;
        c.peak = c.peak.max(c.reserved);
        self.in_flight.set(gauge_value(c.reserved));
        self.peak.set(gauge_value(c.peak));
    }

    fn remove(&self, bytes: usize) {
        let mut c = self.lock();
        c.reserved = c.reserved.saturating_sub(bytes);
        self.in_flight.set(gauge_value(c.reserved));
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Part of the budget, held while a record is in memory; given back when dropped.
pub struct Reservation {
    inner: Arc<Inner>,
    permit: OwnedSemaphorePermit,
    bytes: usize,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Reservation {
    /// The bytes reserved.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps only `bytes` of the reservation (when less than it holds) and gives the rest
    /// back to the budget at once.
    pub fn shrink(&mut self, bytes: usize) {
        if bytes >= self.bytes {
            return;
        }
        let keep = self.inner.permits_for(bytes);
        let excess = self.permit.num_permits().saturating_sub(keep);
        // Dropping the split-off permits returns them to the semaphore.
        drop(self.permit.split(excess));
        self.inner.remove(self.bytes - bytes);
        self.bytes = bytes;
    }

    /// `bytes` tied to this reservation: it is given back exactly when the last copy (clone or
    /// slice) of the returned [`Bytes`] is dropped.
    pub fn attach(self, bytes: Bytes) -> Bytes {
        Bytes::from_owner(Reserved {
            bytes,
            _reservation: self,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // The permit itself goes back to the semaphore when the field is dropped.
        self.inner.remove(self.bytes);
    }
}

/// The owner of an attached record: its bytes and the reservation that counts them.
struct Reserved {
    bytes: Bytes,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Reserved {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    fn budget(total: usize) -> (RecordBudget, Gauge, Gauge) {
        let (in_flight, peak) = (Gauge::default(), Gauge::default());
        let b = RecordBudget::new(total, in_flight.clone(), peak.clone());
        (b, in_flight, peak)
    }

    /// The reservation if it is granted without waiting.
    fn reserve_now(b: &RecordBudget, bytes: usize) -> Option<Reservation> {
        let mut fut = std::pin::pin!(b.reserve(bytes));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => Some(r),
            std::task::Poll::Pending => None,
        }
    }

    /// Lets spawned tasks run until none can make progress (current-thread runtime).
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn reserve_shrink_and_drop_keep_the_gauges_right() {
        let (b, in_flight, peak) = budget(1 << 20);
        let mut a = b.reserve(300_000).await;
        let c = b.reserve(200_000).await;
        assert_eq!((in_flight.get(), peak.get()), (500_000, 500_000));
        a.shrink(100_000);
        assert_eq!(a.bytes(), 100_000);
        assert_eq!((in_flight.get(), peak.get()), (300_000, 500_000));
        assert_eq!(b.inner.semaphore.available_permits(), 1024 - 98 - 196);
        // Growing is not shrinking: nothing changes.
        a.shrink(200_000);
        assert_eq!(a.bytes(), 100_000);
        drop(c);
        assert_eq!((in_flight.get(), peak.get()), (100_000, 500_000));
        drop(a);
        assert_eq!((in_flight.get(), peak.get()), (0, 500_000));
        assert_eq!(b.inner.semaphore.available_permits(), 1024);
        assert_eq!((b.reserved(), b.peak()), (0, 500_000));
    }

    #[tokio::test]
    async fn attached_bytes_hold_the_reservation_until_the_last_copy_is_dropped() {
        let (b, in_flight, _) = budget(1 << 20);
        let record = Bytes::from(vec![7u8; 5000]);
        let r = b.reserve(record.len()).await;
        let held = r.attach(record);
        let copy = held.clone();
        let slice = held.slice(10..20);
        assert_eq!(&held[..], &[7u8; 5000][..]);
        drop(held);
        drop(copy);
        assert_eq!(in_flight.get(), 5000, "the slice still holds the record");
        assert_eq!(&slice[..], &[7u8; 10][..]);
        drop(slice);
        assert_eq!(in_flight.get(), 0);
        assert_eq!(b.inner.semaphore.available_permits(), 1024);
    }

    #[tokio::test]
    async fn a_reservation_larger_than_the_budget_takes_the_whole_budget_and_runs_alone() {
        let (b, in_flight, peak) = budget(1 << 20);
        let small = b.reserve(1000).await;
        let b2 = b.clone();
        let big = tokio::spawn(async move { b2.reserve(50 << 20).await });
        settle().await;
        assert!(
            !big.is_finished(),
            "the whole budget waits for the small one"
        );
        drop(small);
        let big = big.await.expect("the big reservation is granted");
        assert_eq!(big.bytes(), 1 << 20);
        assert_eq!((in_flight.get(), peak.get()), (1 << 20, 1 << 20));
        assert_eq!(b.inner.semaphore.available_permits(), 0);
        let b3 = b.clone();
        let after = tokio::spawn(async move { b3.reserve(1).await });
        settle().await;
        assert!(!after.is_finished(), "nothing runs beside it");
        drop(big);
        let after = after.await.expect("granted once the big one is gone");
        assert_eq!(after.bytes(), 1);
        assert_eq!(in_flight.get(), 1);
    }

    #[tokio::test]
    async fn a_large_waiter_is_not_starved_by_small_ones() {
        let (b, _, peak) = budget(1 << 20);
        // Half the budget taken; a large reservation (3/4) waits for it.
        let first = b.reserve(512 << 10).await;
        let b2 = b.clone();
        let large = tokio::spawn(async move { b2.reserve(768 << 10).await });
        settle().await;
        // Small ones asked later would fit beside `first`, but they queue behind `large`.
        let mut smalls = Vec::new();
        for _ in 0..4 {
            let b3 = b.clone();
            smalls.push(tokio::spawn(async move { b3.reserve(64 << 10).await }));
        }
        settle().await;
        assert!(smalls.iter().all(|s| !s.is_finished()));
        assert!(!large.is_finished());
        drop(first);
        let large = large.await.expect("large granted first");
        settle().await;
        // The large one holds 768 KiB: 4 × 64 KiB fit in the other 256 KiB.
        let mut granted = Vec::new();
        for s in smalls {
            assert!(s.is_finished(), "granted beside the large one");
            granted.push(s.await.expect("task"));
        }
        assert_eq!(b.reserved(), (768 << 10) + 4 * (64 << 10));
        assert_eq!(peak.get(), 1 << 20);
        drop(large);
        drop(granted);
        assert_eq!(b.reserved(), 0);
    }

    #[tokio::test]
    async fn the_budget_never_grants_more_bytes_than_it_has() {
        // Not a multiple of a KiB: reservations rounded up to whole KiB must still fit.
        let (b, _, peak) = budget(16_000_500);
        let mut held = Vec::new();
        let mut asked = 0usize;
        let n = 1_000_001;
        while let Some(r) = reserve_now(&b, n) {
            asked += n;
            held.push(r);
        }
        assert_eq!(held.len(), 15);
        assert_eq!(asked, b.reserved());
        assert!(
            b.reserved() <= b.total(),
            "{} > {}",
            b.reserved(),
            b.total()
        );
        assert!(usize::try_from(peak.get()).unwrap_or(0) <= 16_000_500);
    }
}
