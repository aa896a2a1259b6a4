//! gemgate's chain harness, used by the tests and by `gemgate demo`: find (or install) anvil and start it
//! on a free port, deploy the sample Gemforce Diamond with all its facets and companion contracts, drive a
//! deterministic seeded traffic scenario that emits every Gemforce event, and make reorgs on demand.
//!
//! The sample contracts live in `contracts/`; their compiled artifacts are embedded here, so nothing needs
//! a Solidity compiler. This crate drives a chain; it never reads gemgate's database or configuration.

mod anvil;
pub mod artifacts;
pub mod bindings;
mod deploy;
mod error;
pub mod js;
mod proxy;
pub mod relay;
mod rng;
pub mod rpc_proxy;
mod scenario;
mod send;
mod synthetic;

pub use anvil::{ANVIL_VERSION, Anvil, AnvilOptions, anvil_or_skip, find_anvil, under_ci};
pub use deploy::{Deployment, MULTICALL3, deploy_gemforce, install_multicall3, replace_facet};
pub use error::TestkitError;
pub use proxy::TcpProxy;
pub use rng::SplitMix64;
pub use rpc_proxy::RpcProxy;
pub use scenario::{ExpectedTradeDeal, Scenario, ScenarioOptions, ScenarioReport};
pub use send::confirm;
pub use synthetic::{SyntheticChain, build_log_chain};

pub use alloy::primitives::{Address, B256, U256};

/// The testkit's result type.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;
