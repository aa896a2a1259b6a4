//! Reading ABI files in the shapes people have them: a bare JSON ABI array, or an artifact object with an
//! `abi` field (Hardhat, Foundry, gemgate's own `contracts/artifacts`, Gemforce deployment files).

use alloy::json_abi::JsonAbi;

/// Parses an ABI from a bare array or from an object's `abi` field.
pub fn parse_abi(text: &str) -> Result<JsonAbi, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let abi = match value {
        serde_json::Value::Object(mut object) => {
            object.remove("abi").ok_or_else(|| "an object without an \"abi\" field".to_string())?
        }
        array @ serde_json::Value::Array(_) => array,
        _ => return Err("neither an ABI array nor an object with an \"abi\" field".into()),
    };
    serde_json::from_value(abi).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bare_and_wrapped_abis() {
        let bare = r#"[{"type":"event","name":"Ping","inputs":[],"anonymous":false}]"#;
        assert_eq!(parse_abi(bare).unwrap().events.len(), 1);
        let wrapped = format!(r#"{{"address":"0x00","abi":{bare}}}"#);
        assert_eq!(parse_abi(&wrapped).unwrap().events.len(), 1);
        assert!(parse_abi("{}").unwrap_err().contains("abi"));
        assert!(parse_abi("not json").is_err());
    }
}
