//! Each label set's metric handles, resolved once and found again by the labels as `&str`.
//!
//! Recording a call through `Family::get_or_create` copies every label into a `String` and
//! hashes the copies, and an OpenTelemetry measurement with `KeyValue::new(…, s.to_owned())`
//! allocates its attributes again: per call, for every metric. Label sets are few (operations ×
//! providers × outcomes), so their handles are made on first use and kept here.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::RwLock;

struct Entry<V> {
    labels: Box<[Box<str>]>,
    value: V,
}

/// Handles `V` by label values.
pub struct Series<V> {
    by_hash: RwLock<HashMap<u64, Vec<Entry<V>>>>,
}

impl<V> Default for Series<V> {
    fn default() -> Self {
        Self {
            by_hash: RwLock::new(HashMap::new()),
        }
    }
}

fn hash(labels: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    labels.hash(&mut h);
    h.finish()
}

fn matches(entry: &[Box<str>], labels: &[&str]) -> bool {
    entry.len() == labels.len() && entry.iter().zip(labels).all(|(a, b)| **a == **b)
}

impl<V> Series<V> {
    /// Runs `use_it` on the handles of `labels`, made by `make` the first time.
    pub fn with<R>(
        &self,
        labels: &[&str],
        make: impl FnOnce() -> V,
        use_it: impl FnOnce(&V) -> R,
    ) -> R {
        let key = hash(labels);
        {
            // A poisoned lock only means a panic elsewhere while inserting: the map is whole.
            let map = self.by_hash.read().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = map
                .get(&key)
                .and_then(|entries| entries.iter().find(|e| matches(&e.labels, labels)))
            {
                return use_it(&entry.value);
            }
        }
        let mut map = self.by_hash.write().unwrap_or_else(|e| e.into_inner());
        let entries = map.entry(key).or_default();
        let at = match entries.iter().position(|e| matches(&e.labels, labels)) {
            Some(at) => at,
            None => {
                entries.push(Entry {
                    labels: labels.iter().map(|l| Box::from(*l)).collect(),
                    value: make(),
                });
                entries.len() - 1
            }
        };
        use_it(&entries[at].value)
    }
}

#[cfg(test)]
mod tests {
    use super::Series;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn each_label_set_is_made_once() {
        let made = AtomicU32::new(0);
        let series = Series::<u32>::default();
        let make = || made.fetch_add(1, Ordering::Relaxed);
        assert_eq!(series.with(&["Encrypt", "local", "ok"], make, |v| *v), 0);
        assert_eq!(series.with(&["Encrypt", "local", "ok"], make, |v| *v), 0);
        assert_eq!(
            series.with(&["Encrypt", "local", "DENIED"], make, |v| *v),
            1
        );
        // Label boundaries count: ("ab", "c") is not ("a", "bc").
        assert_eq!(series.with(&["ab", "c"], make, |v| *v), 2);
        assert_eq!(series.with(&["a", "bc"], make, |v| *v), 3);
        assert_eq!(made.load(Ordering::Relaxed), 4);
    }
}
