//! Open Tail streams per principal. Each stream holds a broadcast subscription (and the
//! events it has not yet sent) for as long as its client keeps it open, so one principal, or
//! one stolen token, could otherwise hold the server's memory with endless streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct TailSlots {
    open: Mutex<HashMap<String, usize>>,
    limit: usize,
}

/// One open Tail stream; the slot is given back when the stream (holding this) is dropped.
pub struct TailSlot {
    slots: Arc<TailSlots>,
    principal: String,
}

impl TailSlots {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(TailSlots {
            open: Mutex::new(HashMap::new()),
            limit,
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A slot for `principal`, or `None` if it already has `limit` streams open.
    pub fn take(self: &Arc<Self>, principal: &str) -> Option<TailSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(principal.to_string()).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(TailSlot {
            slots: self.clone(),
            principal: principal.to_string(),
        })
    }
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.principal) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.principal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_principal_and_come_back_when_dropped() {
        let slots = TailSlots::new(2);
        let a1 = slots.take("alice").expect("first");
        let _a2 = slots.take("alice").expect("second");
        assert!(slots.take("alice").is_none());
        let _b = slots.take("bob").expect("another principal has its own");
        drop(a1);
        assert!(slots.take("alice").is_some());
    }
}
