//! A budget for request bodies held in memory across all connections.
//!
//! Each connection may hold one body of up to `--max-body-bytes`, but a thousand connections
//! that each send most of a large body and then stall would hold gigabytes. Every body
//! reserves its bytes from one budget before they are read (the declared `Content-Length` at
//! once, or frame by frame without one) and gives them back when its review is answered; a
//! request that does not fit is answered 503 at once instead of waiting, so stalled clients
//! cannot make healthy ones queue behind them.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget, shared by every request.
#[derive(Debug)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// Bytes reserved by one request; given back when dropped.
#[derive(Debug, Default)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    pub fn new(total: usize) -> Self {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> usize {
        self.total - self.bytes.available_permits()
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// Reserves `n` more bytes for `reservation`; `false` (and nothing reserved) when the
    /// budget does not have them.
    pub fn reserve(&self, reservation: &mut Reservation, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        match self.bytes.clone().try_acquire_many_owned(n) {
            Ok(permit) => {
                match &mut reservation.permit {
                    Some(held) => held.merge(permit),
                    None => reservation.permit = Some(permit),
                }
                true
            }
            Err(_) => false,
        }
    }
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_add_up_and_come_back() {
        let budget = BodyBudget::new(100);
        let mut a = Reservation::default();
        assert!(budget.reserve(&mut a, 60));
        assert!(budget.reserve(&mut a, 20));
        assert_eq!(a.bytes(), 80);
        let mut b = Reservation::default();
        assert!(!budget.reserve(&mut b, 30), "only 20 left");
        assert_eq!(b.bytes(), 0);
        assert!(budget.reserve(&mut b, 20));
        assert_eq!(budget.in_use(), 100);
        drop(a);
        assert_eq!(budget.in_use(), 20);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }
}
