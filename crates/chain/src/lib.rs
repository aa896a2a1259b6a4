//! Chain adapters (roadmap 2): alloy providers behind the `ChainSource` port, with adaptive `eth_getLogs`
//! ranges, retries with backoff, failover across several RPC URLs, websocket heads and typed RPC errors.
//!
//! Not built yet: the indexer issue fills this crate. It must never decide what a reorg is; it reports
//! blocks and logs, and the indexer's reorg window decides.
