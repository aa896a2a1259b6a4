//! The transaction manager (roadmap 4, 6): a nonce ledger in the database, fees, signers behind the
//! `Signer` port, broadcast and a watcher that follows each transaction to finality; the ERC-2771 relayer.
//!
//! Built so far: local keystores (`keys`, behind `gemgate keys`) and fee arithmetic (`fees`: prices from
//! `eth_feeHistory` by speed, +10% replacements, the cap for new transactions, the doubling wait). The nonce ledger is in
//! `gemgate_store::ledger`, the typed send errors in `gemgate_chain::classify_send`. The workers are not
//! built yet: `gemgate txm` says so and exits non-zero.

pub mod fees;
pub mod keys;
