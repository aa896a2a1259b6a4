//! The ERC-2771 relayer behind `POST /v1/relay`: a user signs an EIP-712 `ForwardRequest` for an
//! OpenZeppelin `ERC2771Forwarder`; gemgate checks it before anything is signed or spent (the forwarder's
//! domain, the signature, the deadline, the allowlist, the gas price ceiling, a simulation of `execute` from
//! the paying signer, the quotas) and hands it to the transaction manager, which sends it like any other
//! request. The checks that need no chain are in `request`; the quota arithmetic in `quota`.

mod batch;
pub mod error;
pub mod metrics;
pub mod quota;
pub mod relayer;
pub mod request;

pub use error::RelayError;
pub use metrics::RelayMetrics;
pub use relayer::{RelayInput, Relayer};
pub use request::{ForwardRequest, ForwarderDomain, SignedRequest};
