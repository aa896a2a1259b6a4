//! The configured contracts' functions and errors: calls are encoded from a function name or signature and
//! JSON arguments, results decoded into JSON keyed by the outputs' names (integers as decimal strings, as
//! in event envelopes), and revert data read as `Error(string)`, `Panic(uint256)` or a custom error from
//! the contract's ABI.

use std::collections::HashMap;

use alloy::dyn_abi::{DynSolType, DynSolValue, FunctionExt, JsonAbiExt};
use alloy::json_abi::{Error, Function, JsonAbi, Param};
use alloy_primitives::{Address, Bytes};
use gemgate_domain::ChainId;
use gemgate_projections::decode::to_json;
use serde_json::{Map, Value};

/// One configured contract's functions (merged over its ABIs; a Diamond's facets) and errors.
#[derive(Debug, Clone, Default)]
struct ContractFunctions {
    name: String,
    functions: Vec<Function>,
    errors: HashMap<[u8; 4], Error>,
}

/// Every configured contract, by chain and address and by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    contracts: HashMap<(ChainId, Address), ContractFunctions>,
    names: HashMap<String, (ChainId, Address)>,
}

/// Why a function could not be found or its arguments encoded; the message says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AbiError(pub String);

impl Catalog {
    /// Adds a contract with its ABIs; the first definition of a selector wins.
    pub fn add(&mut self, name: &str, chain_id: ChainId, address: Address, abis: &[JsonAbi]) {
        let contract = self
            .contracts
            .entry((chain_id, address))
            .or_insert_with(|| ContractFunctions { name: name.to_string(), ..Default::default() });
        for abi in abis {
            for function in abi.functions() {
                if !contract.functions.iter().any(|f| f.selector() == function.selector()) {
                    contract.functions.push(function.clone());
                }
            }
            for error in abi.errors() {
                contract.errors.entry(error.selector().0).or_insert_with(|| error.clone());
            }
        }
        self.names.insert(name.to_string(), (chain_id, address));
    }

    /// A configured contract's chain and address by its name.
    pub fn contract(&self, name: &str) -> Option<(ChainId, Address)> {
        self.names.get(name).copied()
    }

    /// The configured name of the contract at `address`.
    pub fn name_of(&self, chain_id: ChainId, address: Address) -> Option<&str> {
        self.contracts.get(&(chain_id, address)).map(|c| c.name.as_str())
    }

    /// The function `text` names on the contract at `to`: a bare name (`carbonCreditBalance`) looked up in
    /// the contract's ABI, or a signature (`balanceOf(address)`, optionally `returns (uint256)`), which the
    /// contract's own definition (with output names) replaces when it has the same selector.
    pub fn function(&self, chain_id: ChainId, to: Address, text: &str) -> Result<Function, AbiError> {
        let contract = self.contracts.get(&(chain_id, to));
        if text.contains('(') {
            let parsed = Function::parse(text).map_err(|e| {
                AbiError(format!("function: {text:?} is not a signature such as \"balanceOf(address)\": {e}"))
            })?;
            let known = contract.and_then(|c| c.functions.iter().find(|f| f.selector() == parsed.selector()));
            return Ok(known.cloned().unwrap_or(parsed));
        }
        let Some(contract) = contract else {
            return Err(AbiError(format!(
                "function: {to} is not a configured contract on chain {chain_id}, so give a signature such as \"{text}(uint256)\""
            )));
        };
        let candidates: Vec<&Function> = contract.functions.iter().filter(|f| f.name == text).collect();
        match candidates.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(AbiError(format!("function: {} has no function named {text:?}", contract.name))),
            many => Err(AbiError(format!(
                "function: {text:?} is overloaded on {}; give one of {}",
                contract.name,
                many.iter().map(|f| f.signature()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The configured contract's function with this selector.
    pub fn function_by_selector(&self, chain_id: ChainId, to: Address, selector: &[u8]) -> Option<Function> {
        let contract = self.contracts.get(&(chain_id, to))?;
        contract.functions.iter().find(|f| f.selector()[..] == *selector).cloned()
    }

    /// The custom error `selector` names, in the ABI of the contract at `to`, else in any configured
    /// contract's ABI (a call may revert in a contract it called).
    fn error(&self, chain_id: ChainId, to: Address, selector: [u8; 4]) -> Option<&Error> {
        self.contracts
            .get(&(chain_id, to))
            .and_then(|c| c.errors.get(&selector))
            .or_else(|| self.contracts.values().find_map(|c| c.errors.get(&selector)))
    }

    /// What revert data says.
    pub fn revert(&self, chain_id: ChainId, to: Address, data: &[u8]) -> Revert {
        revert(data, |selector| self.error(chain_id, to, selector))
    }
}

/// Calldata for `function` from JSON arguments (strings, numbers, booleans, arrays), each coerced to the
/// parameter's type.
pub fn encode(function: &Function, args: &[Value]) -> Result<Bytes, AbiError> {
    if function.inputs.len() != args.len() {
        return Err(AbiError(format!(
            "args: {} takes {} arguments, {} given",
            function.signature(),
            function.inputs.len(),
            args.len()
        )));
    }
    let mut values = Vec::with_capacity(args.len());
    for (i, (input, arg)) in function.inputs.iter().zip(args).enumerate() {
        let ty: DynSolType = input
            .selector_type()
            .parse()
            .map_err(|e| AbiError(format!("args[{i}]: type {}: {e}", input.ty)))?;
        let text = match arg {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let value: DynSolValue =
            ty.coerce_str(&text).map_err(|e| AbiError(format!("args[{i}]: {text:?} is not a {ty}: {e}")))?;
        values.push(value);
    }
    function
        .abi_encode_input(&values)
        .map(Bytes::from)
        .map_err(|e| AbiError(format!("args: cannot encode: {e}")))
}

/// Return data decoded by `function`'s outputs, keyed by output name (`arg<i>` when unnamed); `None` when
/// the function declares no outputs or the data does not match them.
pub fn decode_outputs(function: &Function, data: &[u8]) -> Option<Value> {
    if function.outputs.is_empty() {
        return None;
    }
    let values = function.abi_decode_output(data).ok()?;
    Some(keyed(&function.outputs, &values))
}

fn keyed(params: &[Param], values: &[DynSolValue]) -> Value {
    let mut out = Map::new();
    for (i, (param, value)) in params.iter().zip(values).enumerate() {
        let name = if param.name.is_empty() { format!("arg{i}") } else { param.name.clone() };
        out.insert(name, to_json(value, &param.components));
    }
    Value::Object(out)
}

/// A revert, read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Revert {
    /// `error` (`Error(string)`), `panic` (`Panic(uint256)`), `custom` (an error from the ABI), `empty`
    /// (a bare `revert()`) or `unknown` (data no ABI explains).
    pub kind: &'static str,
    /// What went wrong, for a person.
    pub reason: String,
    /// The custom error's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The custom error's arguments keyed by name, or the panic code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub args: Option<Value>,
    /// The revert data, `0x` hex.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub data: Bytes,
}

const ERROR_STRING: [u8; 4] = [0x08, 0xc3, 0x79, 0xa0];
const PANIC: [u8; 4] = [0x4e, 0x48, 0x7b, 0x71];

/// Reads revert data with `custom` resolving a selector to an error definition.
pub fn revert<'a>(data: &[u8], custom: impl Fn([u8; 4]) -> Option<&'a Error>) -> Revert {
    let raw = Bytes::copy_from_slice(data);
    let read = |kind, reason, name, args| Revert { kind, reason, name, args, data: raw.clone() };
    let Some((selector, body)) = data.split_first_chunk::<4>() else {
        return if data.is_empty() {
            read("empty", "reverted without a reason".into(), None, None)
        } else {
            read("unknown", format!("reverted with data 0x{}", hex(data)), None, None)
        };
    };
    match *selector {
        ERROR_STRING => {
            if let Ok(DynSolValue::String(reason)) = DynSolType::String.abi_decode(body) {
                return read("error", reason, None, None);
            }
        }
        PANIC => {
            if let Ok(DynSolValue::Uint(code, _)) = DynSolType::Uint(256).abi_decode(body) {
                let code = code.to::<u64>();
                let reason = format!("panic 0x{code:02x}: {}", panic_meaning(code));
                return read("panic", reason, None, Some(Value::String(code.to_string())));
            }
        }
        _ => {
            if let Some(error) = custom(*selector)
                && let Ok(values) = error.abi_decode_input(body)
            {
                let args = keyed(&error.inputs, &values);
                let shown = (error.inputs.iter().zip(&values).enumerate())
                    .map(|(i, (input, value))| {
                        let name = if input.name.is_empty() { format!("arg{i}") } else { input.name.clone() };
                        format!("{name}: {}", plain(&to_json(value, &input.components)))
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let reason = format!("{}({shown})", error.name);
                return read("custom", reason, Some(error.name.clone()), Some(args));
            }
        }
    }
    read("unknown", format!("reverted with data 0x{}", hex(data)), None, None)
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Solidity's panic codes.
fn panic_meaning(code: u64) -> &'static str {
    match code {
        0x00 => "generic compiler panic",
        0x01 => "assertion failed",
        0x11 => "arithmetic overflow or underflow",
        0x12 => "division or modulo by zero",
        0x21 => "conversion to an invalid enum value",
        0x22 => "incorrectly encoded storage byte array",
        0x31 => "pop() on an empty array",
        0x32 => "array index out of bounds",
        0x41 => "out of memory",
        0x51 => "call to an uninitialized function",
        _ => "unknown panic code",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use alloy::dyn_abi::DynSolValue;
    use alloy_primitives::U256;
    use serde_json::json;

    use super::*;

    fn catalog() -> (Catalog, Address) {
        let abi: JsonAbi = serde_json::from_value(json!([
            {"type": "function", "name": "balanceOf", "stateMutability": "view",
             "inputs": [{"name": "owner", "type": "address"}],
             "outputs": [{"name": "balance", "type": "uint256"}]},
            {"type": "function", "name": "pick", "stateMutability": "view",
             "inputs": [{"name": "a", "type": "uint256"}], "outputs": []},
            {"type": "function", "name": "pick", "stateMutability": "view",
             "inputs": [{"name": "a", "type": "address"}], "outputs": []},
            {"type": "error", "name": "InsufficientCredits",
             "inputs": [{"name": "tokenId", "type": "uint256"}, {"name": "balance", "type": "uint256"},
                        {"name": "requested", "type": "uint256"}]}
        ]))
        .unwrap();
        let address = Address::repeat_byte(7);
        let mut catalog = Catalog::default();
        catalog.add("token", 1, address, &[abi]);
        (catalog, address)
    }

    #[test]
    fn functions_are_found_by_name_or_signature_and_overloads_are_refused() {
        let (catalog, token) = catalog();
        let by_name = catalog.function(1, token, "balanceOf").unwrap();
        assert_eq!(by_name.outputs[0].name, "balance", "the ABI's definition, with output names");
        let by_signature = catalog.function(1, token, "balanceOf(address)").unwrap();
        assert_eq!(by_signature, by_name, "a signature the contract knows takes its definition");
        let unknown = catalog.function(1, Address::ZERO, "totalSupply() returns (uint256)").unwrap();
        assert_eq!(unknown.outputs.len(), 1, "a signature with returns decodes elsewhere too");
        assert!(catalog.function(1, token, "pick").unwrap_err().0.contains("pick(uint256), pick(address)"));
        assert!(catalog.function(1, token, "nothing").unwrap_err().0.contains("no function named"));
        assert!(catalog.function(1, Address::ZERO, "balanceOf").unwrap_err().0.contains("not a configured"));
        assert!(catalog.function(1, token, "balanceOf(").is_err());
        assert_eq!(catalog.contract("token"), Some((1, token)));
    }

    #[test]
    fn arguments_are_encoded_and_outputs_decoded_by_name() {
        let (catalog, token) = catalog();
        let balance_of = catalog.function(1, token, "balanceOf").unwrap();
        let data = encode(&balance_of, &[json!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")]).unwrap();
        assert_eq!(&data[..4], &balance_of.selector()[..]);
        assert!(encode(&balance_of, &[]).unwrap_err().0.contains("takes 1 arguments, 0 given"));
        assert!(encode(&balance_of, &[json!("nope")]).is_err());
        let output = DynSolValue::Uint(U256::from(10).pow(U256::from(30)), 256).abi_encode();
        assert_eq!(
            decode_outputs(&balance_of, &output),
            Some(json!({"balance": "1000000000000000000000000000000"}))
        );
        assert_eq!(decode_outputs(&balance_of, &[1, 2]), None, "data that does not match");
    }

    #[test]
    fn reverts_are_read_as_reasons_panics_and_custom_errors() {
        let (catalog, token) = catalog();
        let mut reason = ERROR_STRING.to_vec();
        reason.extend(DynSolValue::String("not the owner".into()).abi_encode());
        let read = catalog.revert(1, token, &reason);
        assert_eq!((read.kind, read.reason.as_str()), ("error", "not the owner"));

        let mut panic = PANIC.to_vec();
        panic.extend(DynSolValue::Uint(U256::from(0x11), 256).abi_encode());
        let read = catalog.revert(1, token, &panic);
        assert_eq!(
            (read.kind, read.reason.as_str()),
            ("panic", "panic 0x11: arithmetic overflow or underflow")
        );

        let error = Error::parse("error InsufficientCredits(uint256,uint256,uint256)").unwrap();
        let mut custom = error.selector().to_vec();
        custom.extend(
            DynSolValue::Tuple(vec![
                DynSolValue::Uint(U256::from(1), 256),
                DynSolValue::Uint(U256::from(5), 256),
                DynSolValue::Uint(U256::from(10), 256),
            ])
            .abi_encode_params(),
        );
        let read = catalog.revert(1, Address::ZERO, &custom);
        assert_eq!(read.kind, "custom", "found in any configured contract's errors");
        assert_eq!(read.reason, "InsufficientCredits(tokenId: 1, balance: 5, requested: 10)");
        assert_eq!(read.args, Some(json!({"tokenId": "1", "balance": "5", "requested": "10"})));

        assert_eq!(catalog.revert(1, token, &[]).kind, "empty");
        assert_eq!(catalog.revert(1, token, &[1, 2, 3, 4, 5]).kind, "unknown");
        assert_eq!(catalog.revert(1, token, &[1, 2]).kind, "unknown");
    }
}
