//! Calls as clients write them and answers as they read them: a call named by contract and function (or
//! address and calldata) becomes a `ViewCall`; its answer becomes a `CallResult`, the same JSON from
//! `POST /v1/call` and `gemgate call`: raw `result`, `decoded` outputs, or `revert` with its reason, and
//! the block the call ran at.

use alloy::json_abi::Function;
use alloy_primitives::{Address, Bytes};
use gemgate_domain::ChainId;
use gemgate_domain::calls::{BlockSelector, CallOutput};
use serde::Serialize;
use serde_json::Value;

use crate::abi::{self, AbiError, Catalog, Revert};
use crate::proxy::{CallAnswer, CallError, ViewCall};

/// A call as a client gives it, before encoding.
#[derive(Debug, Clone, Default)]
pub struct CallInput<'a> {
    pub chain_id: ChainId,
    /// A `0x` address or a configured contract's name.
    pub to: &'a str,
    pub from: Option<Address>,
    /// Calldata, or `function` with `args`.
    pub data: Option<Bytes>,
    pub function: Option<&'a str>,
    pub args: &'a [Value],
    pub block: Option<BlockSelector>,
}

/// A call ready to run, with the function that decodes its result when it is known.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub call: ViewCall,
    pub function: Option<Function>,
}

impl Catalog {
    /// Encodes `input`: the contract found by address or name, the function by name or signature.
    pub fn prepare(&self, input: &CallInput<'_>) -> Result<Prepared, AbiError> {
        let to = match input.to.parse::<Address>() {
            Ok(address) => address,
            Err(_) => match self.contract(input.to) {
                Some((chain_id, address)) if chain_id == input.chain_id => address,
                Some((chain_id, _)) => {
                    return Err(AbiError(format!("to: contract {:?} is on chain {chain_id}", input.to)));
                }
                None => {
                    return Err(AbiError(format!(
                        "to: {:?} is neither a 20-byte hex address nor a configured contract",
                        input.to
                    )));
                }
            },
        };
        let (data, function) = match (&input.data, input.function) {
            (Some(_), Some(_)) => return Err(AbiError("give data or function, not both".into())),
            (None, None) => return Err(AbiError("give data (hex calldata) or function with args".into())),
            (Some(data), None) => {
                // The configured ABI may still know the selector: decode with it.
                let function = data
                    .get(..4)
                    .and_then(|selector| self.function_by_selector(input.chain_id, to, selector));
                (data.clone(), function)
            }
            (None, Some(text)) => {
                let function = self.function(input.chain_id, to, text)?;
                (abi::encode(&function, input.args)?, Some(function))
            }
        };
        if input.function.is_none() && !input.args.is_empty() {
            return Err(AbiError("args: only with function".into()));
        }
        let call = ViewCall {
            chain_id: input.chain_id,
            from: input.from,
            to,
            data,
            block: input.block.unwrap_or(BlockSelector::Latest),
        };
        Ok(Prepared { call, function })
    }

    /// What a call's answer says.
    pub fn explain(&self, prepared: &Prepared, answer: &CallAnswer) -> CallResult {
        let call = &prepared.call;
        let mut result = CallResult {
            chain_id: call.chain_id,
            to: call.to.to_checksum(None),
            contract: self.name_of(call.chain_id, call.to).map(str::to_string),
            function: prepared.function.as_ref().map(|f| f.signature()),
            block_number: Some(answer.block.number),
            block_hash: Some(answer.block.hash.to_string()),
            ..CallResult::default()
        };
        match &answer.output {
            CallOutput::Returned(data) => {
                result.decoded = prepared.function.as_ref().and_then(|f| abi::decode_outputs(f, data));
                result.result = Some(data.to_string());
            }
            CallOutput::Reverted { data, .. } => {
                let revert = self.revert(call.chain_id, call.to, data);
                result.error = Some(CallFailure {
                    code: "call_reverted",
                    message: format!("reverted: {}", revert.reason),
                });
                result.revert = Some(revert);
            }
        }
        result
    }
}

impl CallResult {
    /// A call that could not be made, as one member of a batch answer.
    pub fn failed(prepared: &Prepared, error: &CallError) -> Self {
        let (code, message) = match error {
            CallError::UnknownChain(_) => ("unknown_chain", error.to_string()),
            CallError::NoSuchBlock { .. } => ("no_such_block", error.to_string()),
            CallError::TooMany { .. } => ("too_many_calls", error.to_string()),
            // The node's details stay in the log.
            CallError::Chain(_) => {
                ("unavailable", "the chain is temporarily unavailable; retry later".into())
            }
        };
        CallResult {
            chain_id: prepared.call.chain_id,
            to: prepared.call.to.to_checksum(None),
            error: Some(CallFailure { code, message }),
            ..CallResult::default()
        }
    }
}

/// One call's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallResult {
    pub chain_id: ChainId,
    /// The called address, checksummed.
    pub to: String,
    /// The configured contract at `to`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// The function's signature, when the call was named by function or its selector is in the ABI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The block the call ran at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_number: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_hash: Option<String>,
    /// The return data, `0x` hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The outputs keyed by name (`arg<i>` when unnamed), integers as decimal strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub decoded: Option<Value>,
    /// Why the call reverted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert: Option<Revert>,
    /// Set when the call reverted (`call_reverted`) or could not be made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<CallFailure>,
}

/// A stable code and what it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallFailure {
    /// `call_reverted`, `no_such_block`, `unknown_chain`, `too_many_calls` or `unavailable`.
    pub code: &'static str,
    pub message: String,
}
