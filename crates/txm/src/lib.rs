//! The transaction manager (roadmap 4, 6): a nonce ledger in the database, fees, signers behind the
//! `Signer` port, broadcast and a watcher that follows each transaction to finality; the ERC-2771 relayer.
//!
//! Not built yet: the transaction manager issue fills this crate. `gemgate txm` says so and exits non-zero.
