//! The relayer: picks the `[[relayers]]` entry, runs every check in order (cheapest and most specific
//! first, the chain last), charges the quotas and hands the request to its sender (`batch`), which submits
//! through the transaction manager. The ledger keeps every relayed request's EIP-712 digest with its
//! transaction, so the same signed request is one transaction however often, and wherever, it is sent.
//!
//! The simulation is an `eth_call` of `execute` from the paying signer at the latest block, with the gas
//! limit the transaction will carry (`SignedRequest::gas_limit`; no gas estimate, whose binary search
//! would run the call a dozen times): when it passes, the forwarder has verified the signature against its
//! current nonce, the deadline, the target's trust and the inner call. When it fails, the relayer asks the
//! chain why, at one pinned block: the forwarder's nonce for `from`, the target's `isTrustedForwarder`, and
//! the inner call as the forwarder makes it (its revert reason decoded from the configured ABIs); failing
//! those, the forwarder's own error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy::json_abi::JsonAbi;
use alloy_primitives::{Address, Bytes, U256};
use gemgate_calls::{Catalog, Revert};
use gemgate_config::RelayerSettings;
use gemgate_domain::ChainId;
use gemgate_domain::broadcast::CallRequest;
use gemgate_domain::calls::{BlockSelector, CallOutput, PinnedBlock};
use gemgate_domain::ports::{RelayQuotas, ViewCaller};
use gemgate_domain::relay::RelayedCall;
use gemgate_txm::fees::Speed;
use gemgate_txm::manager::address_text;
use gemgate_txm::{SubmitError, Submitted, TxManager};

use crate::RelayError;
use crate::batch::{Member, Sender};
use crate::metrics::RelayMetrics;
use crate::quota::{self, Limit};
use crate::request::{self, ForwarderDomain, SignedRequest};

/// A relay request as the API parsed it.
#[derive(Debug, Clone)]
pub struct RelayInput {
    /// The `[[relayers]]` name; may be left out when one relayer serves `chain_id`.
    pub relayer: Option<String>,
    pub chain_id: ChainId,
    pub request: SignedRequest,
    /// The domain the client signed under, when it says; checked against the forwarder's.
    pub domain: Option<ForwarderDomain>,
}

struct Entry {
    settings: RelayerSettings,
    /// The paying signer's address.
    payer: Address,
    /// The forwarder's EIP-712 domain, read once (OpenZeppelin's is immutable).
    domain: tokio::sync::OnceCell<ForwarderDomain>,
    /// Sends checked requests, alone or batched.
    sender: Arc<Sender>,
}

pub struct Relayer {
    entries: Vec<Entry>,
    txm: Arc<TxManager>,
    callers: HashMap<ChainId, Arc<dyn ViewCaller>>,
    quotas: Arc<dyn RelayQuotas>,
    /// The configured contracts' ABIs and every forwarder's errors, to read reverts.
    catalog: Catalog,
    metrics: RelayMetrics,
    /// The head read in flight per chain, shared by the simulations waiting for it.
    heads: std::sync::Mutex<HashMap<ChainId, HeadRead>>,
}

type HeadRead = futures::future::Shared<futures::future::BoxFuture<'static, Result<PinnedBlock, String>>>;

impl std::fmt::Debug for Relayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|e| e.settings.name.as_str()).collect();
        f.debug_struct("Relayer").field("relayers", &names).finish()
    }
}

impl Relayer {
    /// A relayer for each entry; each entry's signer must be one of the transaction manager's and its chain
    /// one of `callers`.
    pub fn new(
        settings: &[RelayerSettings],
        txm: Arc<TxManager>,
        callers: HashMap<ChainId, Arc<dyn ViewCaller>>,
        quotas: Arc<dyn RelayQuotas>,
        mut catalog: Catalog,
    ) -> Result<Self, String> {
        let mut errors = JsonAbi::new();
        for text in request::FORWARDER_ERRORS {
            let error = alloy::json_abi::Error::parse(text).map_err(|e| format!("{text}: {e}"))?;
            errors.errors.entry(error.name.clone()).or_default().push(error);
        }
        let mut entries = Vec::new();
        for s in settings {
            let payer = txm
                .signers
                .get(&s.signer)
                .map(|signer| signer.address)
                .ok_or_else(|| format!("relayer {:?}: signer {:?} is not loaded", s.name, s.signer))?;
            if !callers.contains_key(&s.chain_id) {
                return Err(format!("relayer {:?}: chain {} is not configured", s.name, s.chain_id));
            }
            catalog.add(
                &format!("{} forwarder", s.name),
                s.chain_id,
                s.forwarder,
                std::slice::from_ref(&errors),
            );
            let sender =
                Sender::new(txm.clone(), s.chain_id, s.forwarder, s.signer.clone(), payer, s.batch.clone());
            let domain = tokio::sync::OnceCell::new();
            entries.push(Entry { settings: s.clone(), payer, domain, sender: Arc::new(sender) });
        }
        let heads = std::sync::Mutex::new(HashMap::new());
        Ok(Self { entries, txm, callers, quotas, catalog, metrics: RelayMetrics::default(), heads })
    }

    /// Counts into the process's registered relay metrics.
    pub fn with_metrics(mut self, metrics: RelayMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The configured relayers.
    pub fn relayers(&self) -> impl Iterator<Item = &RelayerSettings> {
        self.entries.iter().map(|e| &e.settings)
    }

    /// Checks a signed request and, when every check passes, submits it; `Existing` when this signed
    /// request was accepted before. `key` is the API key's name, for its quota.
    pub async fn relay(&self, input: RelayInput, key: Option<&str>) -> Result<Submitted, RelayError> {
        let entry = self.entry(input.relayer.as_deref(), input.chain_id);
        let name = entry.as_ref().map(|e| e.settings.name.clone()).unwrap_or_else(|_| "unknown".into());
        let outcome = match entry {
            Ok(entry) => self.relay_with(entry, &input, key).await,
            Err(e) => Err(e),
        };
        let label = match &outcome {
            Ok(Submitted::New(_)) => "accepted",
            Ok(Submitted::Existing(_)) => "repeat",
            Err(e) => e.code(),
        };
        self.metrics.count(&name, label);
        outcome
    }

    fn entry(&self, name: Option<&str>, chain_id: ChainId) -> Result<&Entry, RelayError> {
        if let Some(name) = name {
            let entry = self
                .entries
                .iter()
                .find(|e| e.settings.name == name)
                .ok_or_else(|| RelayError::UnknownRelayer(format!("no relayer is named {name:?}")))?;
            if entry.settings.chain_id != chain_id {
                return Err(RelayError::WrongChain(format!(
                    "relayer {name:?} relays on chain {}, not {chain_id}",
                    entry.settings.chain_id
                )));
            }
            return Ok(entry);
        }
        let mut on_chain = self.entries.iter().filter(|e| e.settings.chain_id == chain_id);
        match (on_chain.next(), on_chain.next()) {
            (Some(entry), None) => Ok(entry),
            (None, _) => Err(RelayError::UnknownRelayer(format!("no relayer serves chain {chain_id}"))),
            (Some(_), Some(_)) => Err(RelayError::UnknownRelayer(format!(
                "several relayers serve chain {chain_id}: name one in \"relayer\""
            ))),
        }
    }

    fn caller(&self, chain_id: ChainId) -> Result<&Arc<dyn ViewCaller>, RelayError> {
        self.callers
            .get(&chain_id)
            .ok_or_else(|| RelayError::Unavailable(format!("chain {chain_id} is not configured")))
    }

    /// The chain's latest block for a simulation. Never a cached one (a head even a moment old could still
    /// show a forwarder nonce that a request just included has spent), but requests arriving while a read is
    /// in flight share it: one `eth_getBlockByNumber` for a crowd, at most one round trip old.
    async fn head(&self, chain_id: ChainId, caller: &Arc<dyn ViewCaller>) -> Result<PinnedBlock, RelayError> {
        use futures::FutureExt;
        let read = {
            let mut reads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
            match reads.get(&chain_id) {
                Some(read) if read.peek().is_none() => read.clone(),
                _ => {
                    let caller = caller.clone();
                    let read = async move {
                        match caller.pin(BlockSelector::Latest).await {
                            Ok(Some(head)) => Ok(head),
                            Ok(None) => Err(format!("chain {chain_id} has no latest block yet")),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    .boxed()
                    .shared();
                    reads.insert(chain_id, read.clone());
                    read
                }
            }
        };
        read.await.map_err(RelayError::Unavailable)
    }

    /// The forwarder's domain, read from `eip712Domain()` the first time.
    async fn domain(&self, entry: &Entry) -> Result<ForwarderDomain, RelayError> {
        let s = &entry.settings;
        let caller = self.caller(s.chain_id)?;
        let read = || async {
            let head = self.head(s.chain_id, caller).await?;
            let call = view(s.forwarder, request::domain_call());
            let answer = match caller.call_at(&call, head.hash).await? {
                CallOutput::Returned(data) => ForwarderDomain::decode(&data),
                CallOutput::Reverted { .. } => None,
            };
            answer.ok_or_else(|| {
                RelayError::Unavailable(format!(
                    "relayer {:?}: {} does not answer eip712Domain(): not an ERC2771Forwarder",
                    s.name, s.forwarder
                ))
            })
        };
        entry.domain.get_or_try_init(read).await.cloned()
    }

    async fn relay_with(
        &self,
        entry: &Entry,
        input: &RelayInput,
        key: Option<&str>,
    ) -> Result<Submitted, RelayError> {
        let s = &entry.settings;
        let r = &input.request.request;
        let domain = self.domain(entry).await?;
        if let Some(signed) = &input.domain {
            check_domain(signed, &domain)?;
        }
        let hash = input.request.digest(&domain);
        let digest = hash.to_string();
        // A request seen before is answered with its transaction, whatever has happened on chain since.
        if let Some(existing) = self.txm.store.transaction_relaying(&digest).await? {
            return Ok(Submitted::Existing(existing));
        }
        let now = unix_now();
        let deadline: u64 = r.deadline.to();
        if deadline <= now {
            return Err(RelayError::Expired { deadline });
        }
        if r.value > s.max_value_wei {
            return Err(RelayError::ValueNotAllowed {
                value: r.value.to_string(),
                max: s.max_value_wei.to_string(),
            });
        }
        let signature = input.request.verified_signature(&hash)?;
        self.allowed(s, &input.request)?;
        let price = self.txm.market(s.chain_id, Speed::Normal).await.map_err(submit_error)?;
        if let Some(ceiling) = s.max_gas_price
            && price.max_per_gas() > ceiling
        {
            return Err(RelayError::GasPriceTooHigh { needed: price.max_per_gas(), ceiling });
        }
        let execute = input.request.execute_call(signature.clone());
        let gas = input.request.gas_limit(&execute);
        let caller = self.caller(s.chain_id)?;
        let head = self.head(s.chain_id, caller).await?;
        let simulation = CallRequest {
            from: entry.payer,
            to: Some(s.forwarder),
            value: r.value,
            data: execute,
            gas_limit: Some(gas),
        };
        if let CallOutput::Reverted { data, .. } = caller.call_at(&simulation, head.hash).await? {
            let whole = self.catalog.revert(s.chain_id, s.forwarder, &data);
            return Err(self.diagnose(entry, input, whole).await);
        }

        let cost = U256::from(gas).saturating_mul(U256::from(price.max_per_gas())).saturating_add(r.value);
        let charges = quota::charges(s, &address_text(r.from), key, gas, cost, now);
        let plain: Vec<_> = charges.iter().map(|(c, _)| c.clone()).collect();
        if let Some(i) = self.quotas.charge(&plain).await? {
            return Err(match &charges[i].1 {
                Limit::Quota { subject, what, ends } => RelayError::QuotaExceeded {
                    what: format!("the {what} quota of {subject}"),
                    retry_after: ends.saturating_sub(now).max(1),
                },
                Limit::Budget => RelayError::BudgetSpent(s.name.clone()),
            });
        }

        let call = RelayedCall {
            digest: digest.clone(),
            relayer: s.name.clone(),
            from: address_text(r.from),
            to: address_text(r.to),
            nonce: r.nonce.to_string(),
            deadline,
        };
        let member = Member { data: input.request.data(signature), call, gas };
        let submitted = entry.sender.send(member).await;
        if !matches!(submitted, Ok(Submitted::New(_))) {
            // Not a new transaction: what was charged for it is given back.
            self.quotas.refund(&plain).await?;
        }
        match submitted {
            Ok(done) => Ok(done),
            // Relayed meanwhile (another replica took the same signed request): its transaction.
            Err(SubmitError::Conflict(id)) => match self.txm.store.transaction_relaying(&digest).await? {
                Some(existing) => Ok(Submitted::Existing(existing)),
                None => Err(RelayError::NoncePending { id }),
            },
            Err(other) => Err(submit_error(other)),
        }
    }

    fn allowed(&self, s: &RelayerSettings, request: &SignedRequest) -> Result<(), RelayError> {
        let to = request.request.to;
        let entries: Vec<_> = s.allow.iter().filter(|a| a.to == to).collect();
        if entries.is_empty() {
            return Err(RelayError::TargetNotAllowed(to.to_string()));
        }
        let selector = request.selector();
        let permitted = entries
            .iter()
            .any(|a| a.selectors.is_empty() || selector.is_some_and(|sel| a.selectors.contains(&sel)));
        if permitted {
            Ok(())
        } else {
            Err(RelayError::SelectorNotAllowed {
                target: to.to_string(),
                selector: match selector {
                    Some(sel) => format!("0x{}", alloy_primitives::hex::encode(sel)),
                    None => "(no selector: a plain transfer)".into(),
                },
            })
        }
    }

    /// Why `execute` would revert, asked of the chain at one pinned block (see the module's notes).
    async fn diagnose(&self, entry: &Entry, input: &RelayInput, whole: Revert) -> RelayError {
        match self.find_cause(entry, input).await {
            Ok(Some(cause)) => cause,
            // The chain moved on between the simulation and the diagnosis: what the simulation said.
            Ok(None) => RelayError::SimulationReverted(Box::new(whole)),
            Err(e) => e,
        }
    }

    async fn find_cause(&self, entry: &Entry, input: &RelayInput) -> Result<Option<RelayError>, RelayError> {
        let s = &entry.settings;
        let r = &input.request.request;
        let caller = self.caller(s.chain_id)?;
        let head = self.head(s.chain_id, caller).await?;
        let at = head.hash;
        let nonce_call = view(s.forwarder, request::nonces_call(r.from));
        let trust_call = view(r.to, request::trust_call(s.forwarder));
        let inner = CallRequest {
            from: s.forwarder,
            to: Some(r.to),
            value: r.value,
            data: input.request.inner_call(),
            gas_limit: r.gas.try_into().ok(),
        };
        let (nonce, trust, inner) = tokio::try_join!(
            caller.call_at(&nonce_call, at),
            caller.call_at(&trust_call, at),
            caller.call_at(&inner, at),
        )?;
        if let CallOutput::Returned(data) = &nonce
            && let Some(next) = request::read_nonce(data)
            && next != r.nonce
        {
            let used = r.nonce < next;
            let (from, nonce, next) = (address_text(r.from), r.nonce.to_string(), next.to_string());
            return Ok(Some(if used {
                RelayError::NonceUsed { from, nonce, next }
            } else {
                RelayError::NonceAhead { from, nonce, next }
            }));
        }
        let trusted = matches!(&trust, CallOutput::Returned(data) if request::read_trust(data));
        if !trusted {
            return Ok(Some(RelayError::TargetNotTrusting {
                target: r.to.to_string(),
                forwarder: s.forwarder.to_string(),
            }));
        }
        if let CallOutput::Reverted { data, .. } = &inner {
            return Ok(Some(RelayError::SimulationReverted(Box::new(
                self.catalog.revert(s.chain_id, r.to, data),
            ))));
        }
        Ok(None)
    }
}

/// The client's domain against the forwarder's: another chain is `wrong_chain`, anything else `wrong_domain`.
fn check_domain(signed: &ForwarderDomain, actual: &ForwarderDomain) -> Result<(), RelayError> {
    if signed.chain_id != actual.chain_id {
        return Err(RelayError::WrongChain(format!(
            "the request was signed for chain {}; the forwarder is on chain {}",
            signed.chain_id, actual.chain_id
        )));
    }
    let mut differences = Vec::new();
    if signed.name != actual.name {
        differences.push(format!("name {:?} (the forwarder's is {:?})", signed.name, actual.name));
    }
    if signed.version != actual.version {
        differences.push(format!("version {:?} (the forwarder's is {:?})", signed.version, actual.version));
    }
    if signed.verifying_contract != actual.verifying_contract {
        differences.push(format!(
            "verifyingContract {} (the forwarder is {})",
            signed.verifying_contract, actual.verifying_contract
        ));
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(RelayError::WrongDomain(format!(
            "the request was signed under another EIP-712 domain: {}",
            differences.join(", ")
        )))
    }
}

fn view(to: Address, data: Bytes) -> CallRequest {
    CallRequest { from: Address::ZERO, to: Some(to), value: U256::ZERO, data, gas_limit: None }
}

fn submit_error(error: SubmitError) -> RelayError {
    match error {
        SubmitError::Chain(e) => RelayError::Chain(e),
        SubmitError::Store(e) => RelayError::Store(e),
        other => RelayError::Submit(other),
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
