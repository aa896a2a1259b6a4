//! `POST /v1/call` from `gemgate serve` and `gemgate call` against anvil with the sample contracts: calls
//! named by contract and function (the Diamond's built-in Gemforce ABIs, a token's ABI file) answered with
//! decoded outputs and the block they ran at, reverts as 422 with the ABI's custom error, batches as one
//! Multicall3 call, and every bad input refused with a stable code before the node is asked; and with
//! `calls.cache_mib = 0`, `calls.head_max_age = "0s"` and `chains.multicall3 = "none"`, every call goes to the
//! node, arrays run side by side, and `latest` follows each new block.

mod support;

use std::process::Command;

use alloy::primitives::U256;
use alloy::providers::Provider;
use gemgate_testkit::bindings::SampleERC20;
use gemgate_testkit::{Anvil, AnvilOptions, Deployment, anvil_or_skip, deploy_gemforce};
use serde_json::{Value, json};
use support::{conforms, free_port, get, http, response_schema};

/// The key with the `read` scope (`public_reads = false`), and its SHA-256.
const KEY: &str = "calls-test-key";

fn config(dir: &std::path::Path, anvil: &Anvil, d: &Deployment, listen: &str) -> std::path::PathBuf {
    let path = dir.join("gemgate.toml");
    let erc20 = gemgate_testkit::artifacts::contracts_dir().join("artifacts/SampleERC20.json");
    let key_sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(KEY));
    std::fs::write(
        &path,
        format!(
            r#"
[database]
url = "sqlite://{db}"
[api]
listen = "{listen}"
public_reads = false
[[api.keys]]
name = "frontend"
key_sha256 = "{key_sha256}"
scopes = ["read"]
[calls]
max_batch = 10
[[chains]]
id = 31337
rpc = ["{rpc}"]
[[contracts]]
name = "gemforce"
chain = 31337
address = "{diamond}"
diamond = true
[[contracts]]
name = "usdc"
chain = 31337
address = "{usdc}"
abi = ["{erc20}"]
"#,
            db = dir.join("gemgate.db").display(),
            rpc = anvil.endpoint(),
            diamond = d.diamond,
            usdc = d.usdc,
            erc20 = erc20.display(),
        ),
    )
    .unwrap();
    path
}

async fn call(base: &str, body: &Value) -> (u16, Value) {
    http("POST", &format!("{base}/v1/call"), &[("Authorization", &format!("Bearer {KEY}"))], Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_calls_through_the_api_and_the_cli() {
    let test = "view_calls_through_the_api_and_the_cli";
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let provider = anvil.provider();
    let d = deploy_gemforce(&provider, anvil.accounts()[0]).await.unwrap();
    let holder = anvil.accounts()[2];
    let token = SampleERC20::new(d.usdc, provider.clone());
    let receipt = token
        .mint(holder, U256::from(1_234_567))
        .from(d.owner)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let minted = receipt.block_number.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = config(dir.path(), &anvil, &d, &listen);
    let _serve = support::serve(&config, &listen).await;
    let base = format!("http://{listen}");

    // A Gemforce getter on the Diamond, by name, from the built-in ABIs.
    let (status, body) =
        call(&base, &json!({"chain_id": 31337, "to": "gemforce", "function": "owner"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decoded"], json!({"arg0": d.owner.to_checksum(None)}), "{body}");
    assert_eq!(body["contract"], "gemforce");
    let head = provider.get_block_number().await.unwrap();
    assert_eq!(body["block_number"], head);
    let block = provider.get_block_by_number(head.into()).await.unwrap().unwrap();
    assert_eq!(body["block_hash"], block.header.hash.to_string());

    // A token's ABI file, by address, at a pinned block; and the same call as raw calldata.
    let balance = json!({"chain_id": 31337, "to": d.usdc.to_string(), "function": "balanceOf",
        "args": [holder.to_string()], "block": minted - 1});
    let (status, body) = call(&base, &balance).await;
    assert_eq!((status, &body["decoded"]), (200, &json!({"arg0": "0"})), "before the mint: {body}");
    let mut at_mint = balance.clone();
    at_mint["block"] = json!(format!("0x{minted:x}"));
    let (_, body) = call(&base, &at_mint).await;
    assert_eq!(body["decoded"], json!({"arg0": "1234567"}), "{body}");
    // balanceOf(holder)'s calldata, built here independently of the server.
    let data = format!("0x70a08231{}", hex::encode(holder.into_word()));
    let (status, raw) = call(&base, &json!({"chain_id": 31337, "to": "usdc", "data": data})).await;
    assert_eq!((status, &raw["decoded"]), (200, &json!({"arg0": "1234567"})), "{raw}");
    assert_eq!(raw["function"], "balanceOf(address)", "the selector is in the configured ABI");

    // A revert: 422 with the custom error the Diamond's ABI names.
    let (status, body) =
        call(&base, &json!({"chain_id": 31337, "to": "gemforce", "function": "ownerOf", "args": ["999"]}))
            .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "call_reverted");
    assert_eq!(body["revert"]["name"], "NonexistentToken", "{body}");
    assert_eq!(body["revert"]["args"], json!({"tokenId": "999"}));

    // A batch: one Multicall3 call, each member with its own answer or error, in order.
    let holders: Vec<Value> = anvil.accounts()[..5]
        .iter()
        .map(|a| json!({"chain_id": 31337, "to": "usdc", "function": "balanceOf", "args": [a.to_string()]}))
        .collect();
    let mut batch = holders.clone();
    batch.push(json!({"chain_id": 31337, "to": "gemforce", "function": "ownerOf", "args": ["999"]}));
    batch.push(json!({"chain_id": 31337, "to": "usdc", "function": "decimals"}));
    let (status, body) = call(&base, &Value::Array(batch)).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    assert_eq!(results[2]["decoded"], json!({"arg0": "1234567"}));
    assert_eq!(results[0]["decoded"], json!({"arg0": "0"}));
    assert_eq!(results[5]["error"]["code"], "call_reverted");
    assert_eq!(results[6]["decoded"], json!({"arg0": "6"}));
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(metrics.contains("gemgate_calls_multicall_batches_total{chain_id=\"31337\"} 1"), "{metrics}");

    // The answers are what the OpenAPI document says: single, revert and batch.
    let (_, document) = get(&format!("{base}/v1/openapi.json")).await;
    for (status, answer) in [(200, &raw), (200, &body)] {
        conforms(&document, response_schema(&document, "post", "/v1/call", status), answer, "call").unwrap();
    }
    let (_, reverted) =
        call(&base, &json!({"chain_id": 31337, "to": "gemforce", "function": "ownerOf", "args": ["999"]}))
            .await;
    conforms(&document, response_schema(&document, "post", "/v1/call", 422), &reverted, "revert").unwrap();

    // Every bad input has its own answer, before the node is asked.
    let refusals = [
        (
            json!({"chain_id": 31337, "to": "usdc", "function": "nothing"}),
            400,
            "invalid_parameter",
            "no function named",
        ),
        (
            json!({"chain_id": 31337, "to": "0x12", "data": "0x"}),
            400,
            "invalid_parameter",
            "neither a 20-byte",
        ),
        (json!({"chain_id": 31337, "to": "usdc", "data": "0x1"}), 400, "invalid_parameter", "not valid hex"),
        (json!({"chain_id": 31337, "to": "usdc"}), 400, "invalid_parameter", "give data"),
        (
            json!({"chain_id": 31337, "to": "usdc", "function": "decimals", "block": "pending"}),
            400,
            "invalid_parameter",
            "block:",
        ),
        (
            json!({"chain_id": 31337, "to": "usdc", "function": "decimals", "block": 1_000_000}),
            404,
            "not_found",
            "block 1000000",
        ),
        (
            json!({"chain_id": 5, "to": "0x0000000000000000000000000000000000000001", "data": "0x"}),
            400,
            "invalid_parameter",
            "chain 5",
        ),
        (
            json!({"chain_id": 31337, "to": "usdc", "function": "balanceOf", "args": ["nope"]}),
            400,
            "invalid_parameter",
            "args[0]",
        ),
        (
            json!({"chain_id": 31337, "to": "usdc", "function": "decimals", "extra": 1}),
            400,
            "invalid_body",
            "unknown field",
        ),
        (Value::Array(vec![holders[0].clone(); 11]), 400, "too_many_calls", "at most 10"),
        (
            Value::Array(vec![holders[0].clone(), json!({"chain_id": 31337, "to": "usdc"})]),
            400,
            "invalid_parameter",
            "[1].",
        ),
        (json!("text"), 400, "invalid_body", "call object"),
    ];
    for (body, status, code, message) in refusals {
        let (got, answer) = call(&base, &body).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{body} -> {answer}");
        let text = answer["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{body}: {text:?} should say {message:?}");
    }
    let (status, _) = http("POST", &format!("{base}/v1/call"), &[], Some(&holders[0])).await;
    assert_eq!(status, 401, "reads need a key when public_reads is false");

    // The CLI: the same answer, and a revert is exit status 1 with the reason.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gemgate"))
            .args(["--log-filter", "warn", "call", "--config", config.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["usdc", "balanceOf", &holder.to_string(), "--block", &minted.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["decoded"], json!({"arg0": "1234567"}));
    assert_eq!(printed["block_number"], minted);
    let out = cli(&["gemforce", "ownerOf", "999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NonexistentToken(tokenId: 999)"));
    let out = cli(&["usdc", "nothing"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no function named"));
}

/// The sum of a metric family's samples in `/metrics` text (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cache_or_multicall3_every_call_goes_to_the_node_and_latest_follows_each_block() {
    let test = "without_cache_or_multicall3_every_call_goes_to_the_node_and_latest_follows_each_block";
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let provider = anvil.provider();
    let d = deploy_gemforce(&provider, anvil.accounts()[0]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = config(dir.path(), &anvil, &d, &listen);
    let rpc = format!("rpc = [\"{}\"]", anvil.endpoint());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("max_batch = 10", "max_batch = 10\ncache_mib = 0\nhead_max_age = \"0s\"")
        .replace(&rpc, &format!("{rpc}\nmulticall3 = \"none\""));
    std::fs::write(&config, text).unwrap();
    let _serve = support::serve(&config, &listen).await;
    let base = format!("http://{listen}");
    let counters = || async {
        let (_, metrics) = get(&format!("{base}/metrics")).await;
        let text = metrics.as_str().unwrap_or_default().to_string();
        (
            metric(&text, "gemgate_calls_cache_hits_total"),
            metric(&text, "gemgate_calls_rpc_calls_total"),
            metric(&text, "gemgate_calls_multicall_batches_total"),
        )
    };

    // calls.cache_mib = 0: the same pinned call three times, three round trips, no hit.
    let head = provider.get_block_number().await.unwrap();
    let pinned = json!({"chain_id": 31337, "to": "usdc", "function": "decimals", "block": head});
    let (hits, rpc_before, _) = counters().await;
    for _ in 0..3 {
        let (status, body) = call(&base, &pinned).await;
        assert_eq!((status, &body["decoded"]), (200, &json!({"arg0": "6"})), "{body}");
    }
    let (hits_after, rpc_after, _) = counters().await;
    assert_eq!((hits_after - hits, rpc_after - rpc_before), (0.0, 3.0), "no cache: each call asks the node");

    // chains.multicall3 = "none": an array runs side by side, one eth_call each, every answer right.
    let batch: Vec<Value> = anvil.accounts()[..4]
        .iter()
        .map(|a| json!({"chain_id": 31337, "to": "usdc", "function": "balanceOf", "args": [a.to_string()]}))
        .collect();
    let (status, body) = call(&base, &Value::Array(batch)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["results"].as_array().unwrap().iter().all(|r| r["decoded"] == json!({"arg0": "0"})),
        "{body}"
    );
    let (_, rpc_batch, batches) = counters().await;
    assert_eq!((rpc_batch - rpc_after, batches), (4.0, 0.0), "no Multicall3 batch without Multicall3");

    // calls.head_max_age = 0s: `latest` names the new block as soon as it is mined.
    let latest = json!({"chain_id": 31337, "to": "usdc", "function": "decimals"});
    let (_, before) = call(&base, &latest).await;
    let _: String = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    let (_, after) = call(&base, &latest).await;
    assert_eq!(
        after["block_number"].as_u64().unwrap(),
        before["block_number"].as_u64().unwrap() + 1,
        "{after}"
    );
}
