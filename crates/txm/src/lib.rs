//! The transaction manager (roadmap 4): a nonce ledger in the database behind the domain's `Ledger` port
//! (its values in `gemgate_domain::ledger`, its SQL in the store crate), fees
//! (`fees`), signers behind the `Signer` port (`signers`, `dfns`), transactions built, signed and checked
//! (`draft`), the front door that accepts requests (`manager`) and the workers that sign, broadcast and
//! follow each transaction to finality (`worker`). Local keystores are managed by `keys` (`gemgate keys`).

pub mod clock;
pub mod dfns;
pub mod draft;
pub mod fees;
pub mod keys;
#[cfg(feature = "aws-kms")]
pub mod kms;
pub mod manager;
pub mod metrics;
pub mod signers;
pub mod view;
pub mod worker;

pub use clock::Clock;
pub use manager::{RawAllow, Submit, SubmitError, Submitted, TxManager, TxmOptions};
pub use metrics::TxmMetrics;
pub use signers::NamedSigner;
