//! Results by (chain, block hash, from, to, data), which never change once computed: a block hash names one
//! state. A least-recently-used map bounded in bytes keeps them; identical calls in flight at once share
//! one round trip to the node (`SingleFlight`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use alloy_primitives::{Address, B256, Bytes};
use gemgate_domain::ChainId;
use gemgate_domain::calls::CallOutput;
use lru::LruCache;
use tokio::sync::OnceCell;

/// What identifies a call's result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CallKey {
    pub chain_id: ChainId,
    pub block: B256,
    pub from: Option<Address>,
    pub to: Address,
    pub data: Bytes,
}

impl CallKey {
    /// Bytes an entry holds, roughly: the key and output plus the map's bookkeeping.
    fn size(&self, output: &CallOutput) -> u64 {
        entry_size(self.data.len(), output)
    }
}

fn entry_size(data_len: usize, output: &CallOutput) -> u64 {
    let output = match output {
        CallOutput::Returned(bytes) => bytes.len(),
        CallOutput::Reverted { data, message } => data.len() + message.len(),
    };
    (data_len + output + 160) as u64
}

/// Results kept within `capacity` bytes, least recently used evicted first.
#[derive(Debug)]
pub(crate) struct ResultCache {
    capacity: u64,
    state: Mutex<Entries>,
}

#[derive(Debug)]
struct Entries {
    map: LruCache<CallKey, CallOutput>,
    bytes: u64,
}

impl ResultCache {
    pub fn new(capacity: u64) -> Self {
        Self { capacity, state: Mutex::new(Entries { map: LruCache::unbounded(), bytes: 0 }) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, key: &CallKey) -> Option<CallOutput> {
        if self.capacity == 0 {
            return None;
        }
        self.entries().map.get(key).cloned()
    }

    #[allow(clippy::needless_pass_by_value)] // both are moved into the map
    pub fn insert(&self, key: CallKey, output: CallOutput) {
        let size = key.size(&output);
        if size > self.capacity {
            return;
        }
        let data_len = key.data.len();
        let mut entries = self.entries();
        if let Some(old) = entries.map.put(key, output) {
            entries.bytes -= entry_size(data_len, &old);
        }
        entries.bytes += size;
        while entries.bytes > self.capacity {
            match entries.map.pop_lru() {
                Some((k, v)) => entries.bytes -= k.size(&v),
                None => break,
            }
        }
    }

    /// Entries and bytes held.
    pub fn usage(&self) -> (usize, u64) {
        let entries = self.entries();
        (entries.map.len(), entries.bytes)
    }
}

/// Work in flight by key: the first caller runs it, callers that arrive meanwhile wait for the same answer.
/// A caller that gives up (its request was dropped) leaves the work to the next one waiting.
#[derive(Debug)]
pub(crate) struct SingleFlight<K, V> {
    inflight: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self { inflight: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> SingleFlight<K, V> {
    /// `work`'s answer for `key`, and whether this caller ran it (`false`: it shared another's).
    pub async fn run<F, Fut>(&self, key: &K, work: F) -> (V, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let cell = self.lock().entry(key.clone()).or_default().clone();
        // Dropped when this caller is done or gives up: the entry goes once no one else waits on it.
        let _leave = Leave { flight: self, key, cell: &cell };
        let mut ran = false;
        let value = cell
            .get_or_init(|| {
                ran = true;
                work()
            })
            .await
            .clone();
        (value, ran)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<OnceCell<V>>>> {
        self.inflight.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Leave<'a, K: Eq + Hash + Clone, V: Clone> {
    flight: &'a SingleFlight<K, V>,
    key: &'a K,
    cell: &'a Arc<OnceCell<V>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Drop for Leave<'_, K, V> {
    fn drop(&mut self) {
        let mut inflight = self.flight.lock();
        let ours = inflight.get(self.key).is_some_and(|c| Arc::ptr_eq(c, self.cell));
        // Done: later callers read the result cache. Given up with no one waiting: nothing to hand over.
        // (Two references: the map's and this caller's.)
        if ours && (self.cell.initialized() || Arc::strong_count(self.cell) <= 2) {
            inflight.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn key(n: u8) -> CallKey {
        CallKey { chain_id: 1, block: B256::ZERO, from: None, to: Address::ZERO, data: Bytes::from(vec![n]) }
    }

    #[test]
    fn the_cache_stays_within_its_bytes_and_evicts_the_least_recently_used() {
        let one = key(1).size(&CallOutput::Returned(Bytes::from(vec![0; 100])));
        let cache = ResultCache::new(one * 3);
        for n in 1..=3 {
            cache.insert(key(n), CallOutput::Returned(Bytes::from(vec![0; 100])));
        }
        assert!(cache.get(&key(1)).is_some(), "touch 1: 2 is now the least recently used");
        cache.insert(key(4), CallOutput::Returned(Bytes::from(vec![0; 100])));
        assert_eq!(cache.usage(), (3, one * 3));
        assert!(cache.get(&key(2)).is_none() && cache.get(&key(1)).is_some() && cache.get(&key(4)).is_some());
        cache.insert(key(5), CallOutput::Returned(Bytes::from(vec![0; 10_000])));
        assert!(cache.get(&key(5)).is_none(), "an entry larger than the whole cache is not kept");
        let off = ResultCache::new(0);
        off.insert(key(1), CallOutput::Returned(Bytes::new()));
        assert!(off.get(&key(1)).is_none(), "capacity 0 turns the cache off");
    }

    #[tokio::test(start_paused = true)]
    async fn identical_work_in_flight_runs_once_and_dropped_callers_hand_it_over() {
        let flight = Arc::new(SingleFlight::<u8, u32>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let work = |runs: Arc<AtomicUsize>| async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            7
        };
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (flight, runs) = (flight.clone(), runs.clone());
                tokio::spawn(async move { flight.run(&1, || work(runs)).await })
            })
            .collect();
        let mut ran = 0;
        for task in tasks {
            let (value, this_ran) = task.await.unwrap();
            assert_eq!(value, 7);
            ran += usize::from(this_ran);
        }
        assert_eq!((runs.load(Ordering::SeqCst), ran), (1, 1), "ten callers, one run");

        // The first caller gives up mid-way: the one waiting runs the work itself.
        let first = {
            let (flight, runs) = (flight.clone(), runs.clone());
            tokio::spawn(async move { flight.run(&2, || work(runs)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let second = {
            let (flight, runs) = (flight.clone(), runs.clone());
            tokio::spawn(async move { flight.run(&2, || work(runs)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        first.abort();
        assert_eq!(second.await.unwrap(), (7, true));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // Work for a key that completed is not kept: the next call runs again.
        assert_eq!(flight.run(&1, || work(runs.clone())).await, (7, true));
        // A caller that gives up alone leaves nothing behind.
        let alone = {
            let (flight, runs) = (flight.clone(), runs.clone());
            tokio::spawn(async move { flight.run(&3, || work(runs)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        alone.abort();
        let _ = alone.await;
        assert!(flight.lock().is_empty(), "no entry is left in flight");
    }
}
