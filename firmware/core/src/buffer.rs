//! [`OfflineBuffer`]: what a board holds while it cannot publish. Bounded, allocated once: when
//! it is full the oldest item goes, and every such drop is counted (since boot) so the status
//! message can report it (`Status::dropped`).

use alloc::collections::VecDeque;

/// A bounded first-in first-out buffer that drops its oldest item when full.
#[derive(Debug, Clone)]
pub struct OfflineBuffer<T> {
    items: VecDeque<T>,
    capacity: usize,
    dropped: u64,
}

impl<T> OfflineBuffer<T> {
    /// A buffer for `capacity` items (at least one), allocated now.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            items: VecDeque::with_capacity(capacity),
            capacity,
            dropped: 0,
        }
    }

    /// Appends `item`; if the buffer was full, the oldest item is dropped, counted and returned.
    pub fn push(&mut self, item: T) -> Option<T> {
        let evicted = if self.items.len() >= self.capacity {
            self.dropped += 1;
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        evicted
    }

    /// The oldest item, next to send. Remove it with [`OfflineBuffer::pop`] once it is sent.
    pub fn front(&self) -> Option<&T> {
        self.items.front()
    }

    /// Mutable access to the oldest item (to stamp it before sending).
    pub fn front_mut(&mut self) -> Option<&mut T> {
        self.items.front_mut()
    }

    /// Removes and returns the oldest item.
    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.items.len() >= self.capacity
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items dropped because the buffer was full, since it was created.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    #[test]
    fn keeps_order_until_full() {
        let mut b = OfflineBuffer::new(3);
        for i in 0..3 {
            assert_eq!(b.push(i), None);
        }
        assert!(b.is_full());
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!((b.pop(), b.pop(), b.len()), (Some(0), Some(1), 1));
        assert_eq!(b.dropped(), 0);
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts() {
        let mut b = OfflineBuffer::new(3);
        for i in 0..10 {
            b.push(i);
        }
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), [7, 8, 9]);
        assert_eq!(b.dropped(), 7);
        assert_eq!(b.push(10), Some(7));
        assert_eq!(b.dropped(), 8);
        // Draining does not reset the count: it is "since boot".
        while b.pop().is_some() {}
        assert_eq!((b.len(), b.dropped()), (0, 8));
        assert_eq!(OfflineBuffer::<u8>::new(0).capacity(), 1);
    }

    #[test]
    fn the_drop_count_reaches_the_status_payload() {
        use crate::messages::{Health, Topics, status};
        use ogm_protocol::{DeviceId, Measurement, Status};

        let t0 = 1_750_000_000_000_000;
        let mut readings = OfflineBuffer::new(60);
        for i in 0..100 {
            readings.push(Measurement {
                timestamp: t0 + i * 1_000_000,
                frequency: 50.0,
                voltage: 230.0,
                current: 1.0,
                power: 230.0,
            });
        }
        assert_eq!(readings.front().map(|m| m.timestamp), Some(t0 + 40_000_000));
        let topics = Topics::new(DeviceId::new("dev").unwrap());
        let s = status(t0, Health::default(), true, readings.dropped());
        let bytes = topics.status(&s).payload;
        assert!(
            String::from_utf8_lossy(&bytes).contains(r#""dropped":40"#),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        let back = Status::decode(&bytes, t0).unwrap().payload;
        assert_eq!((back.dropped, back.online), (Some(40), Some(true)));
    }
}
