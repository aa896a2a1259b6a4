//! The indexer's Prometheus metrics, registered under `gemgate_indexer_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChainLabel {
    pub chain_id: u64,
}

/// Counters and gauges per chain.
#[derive(Debug, Clone, Default)]
pub struct IndexerMetrics {
    pub events: Family<ChainLabel, Counter>,
    pub unknown_events: Family<ChainLabel, Counter>,
    pub blocks: Family<ChainLabel, Counter>,
    pub reorgs: Family<ChainLabel, Counter>,
    pub reverted_events: Family<ChainLabel, Counter>,
    pub indexed_block: Family<ChainLabel, Gauge>,
    pub head_block: Family<ChainLabel, Gauge>,
    /// 1 while a chain is halted (a reorg below finality).
    pub halted: Family<ChainLabel, Gauge>,
    /// Diamond selectors the start-up loupe check found wrong in the facet table (and repaired).
    pub loupe_repairs: Family<ChainLabel, Counter>,
    /// Node answers whose logs did not match the checked headers (another block's hash, or a block whose
    /// bloom names a contract left out), fetched again.
    pub log_mismatches: Family<ChainLabel, Counter>,
}

impl IndexerMetrics {
    /// Shows the chain's counters at zero before anything happens (a family without samples is not
    /// exposed at all, and "no reorgs yet" should read as 0, not as a missing metric).
    pub fn start_chain(&self, chain_id: u64) {
        let label = ChainLabel { chain_id };
        for family in [
            &self.events,
            &self.unknown_events,
            &self.blocks,
            &self.reorgs,
            &self.reverted_events,
            &self.loupe_repairs,
            &self.log_mismatches,
        ] {
            let _ = family.get_or_create(&label);
        }
        self.halted.get_or_create(&label).set(0);
    }

    pub fn register(metrics: &gemgate_telemetry::Metrics) -> Self {
        let m = Self::default();
        metrics.register_with("indexer", |r| {
            r.register("events", "events committed", m.events.clone());
            r.register(
                "unknown_events",
                "logs whose topic0 no loaded ABI knows (stored raw)",
                m.unknown_events.clone(),
            );
            r.register("blocks", "blocks committed", m.blocks.clone());
            r.register("reorgs", "reorgs reverted", m.reorgs.clone());
            r.register("reverted_events", "events removed by reorgs", m.reverted_events.clone());
            r.register("indexed_block", "last committed block", m.indexed_block.clone());
            r.register("head_block", "latest block seen on the chain", m.head_block.clone());
            r.register("halted", "1 when indexing of the chain is halted", m.halted.clone());
            r.register(
                "loupe_repairs",
                "Diamond selectors the loupe check at start found wrong in the facet table and repaired",
                m.loupe_repairs.clone(),
            );
            r.register(
                "log_mismatches",
                "node answers whose logs did not match the checked headers (another block's hash, or a block whose bloom names a contract left out), fetched again",
                m.log_mismatches.clone(),
            );
        });
        m
    }
}
