//! Hybrid reconciliation through the binary: after the sample traffic the Gemforce projections agree with
//! the contracts' views (no drift); four writes that emit no event (`anvil_setStorageAt` on a carbon-credit
//! balance, a token's owner, another token's first attribute and a listing's price) are found by `gemgate reconcile` at the finalized block and recorded
//! without touching the projection; then `gemgate run` with `heal = true` finds them on its schedule, heals
//! every row (journaled), counts them in `/metrics`, lists them at `GET /v1/drift` and sends
//! `drift.detected` outbox messages; a further round finds nothing.

#[allow(dead_code)]
mod projections;
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::Provider;
use projections::*;
use serde_json::Value;
use support::{KillOnDrop, free_port, get};

/// The storage slot of `mapping[key]` for a mapping at `slot` (Solidity's layout).
fn mapping_slot(key: U256, slot: U256) -> B256 {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(&key.to_be_bytes::<32>());
    bytes[32..].copy_from_slice(&slot.to_be_bytes::<32>());
    keccak256(bytes)
}

/// The sample Diamond's storage (LibGemforce.Layout at keccak256("gemgate.sample.gemforce.storage")):
/// `owners` is its first field, `listings` its ninth, `carbonBalances` its twelfth.
fn layout_field(index: u64) -> U256 {
    U256::from_be_bytes(keccak256("gemgate.sample.gemforce.storage").0) + U256::from(index)
}

/// The sample minter facet's own storage (keccak256("gemgate.sample.gemforce.attributes")): the
/// `attributes` mapping is its only field.
fn attributes_slot() -> U256 {
    U256::from_be_bytes(keccak256("gemgate.sample.gemforce.attributes").0)
}

/// A string of at most 31 bytes as Solidity stores it in one slot: the bytes, then twice the length in
/// the last byte.
fn short_string(text: &str) -> B256 {
    assert!(text.len() < 32);
    let mut word = [0u8; 32];
    word[..text.len()].copy_from_slice(text.as_bytes());
    word[31] = (text.len() * 2) as u8;
    B256::from(word)
}

async fn set_storage(anvil: &gemgate_testkit::Anvil, address: Address, slot: B256, value: B256) {
    let _: Value =
        anvil.provider().raw_request("anvil_setStorageAt".into(), (address, slot, value)).await.unwrap();
}

fn reconcile(config: &std::path::Path, heal: bool) -> Value {
    let mut command = gemgate(&["reconcile"], config);
    command.env("GEMGATE__RECONCILE__HEAL", heal.to_string());
    let out = succeed(command, "reconcile");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_writes_are_found_recorded_and_healed() {
    let test = "silent_writes_are_found_recorded_and_healed";
    let Some((anvil, d)) = chain(test, 2).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gemgate.db").display());
    let listen = format!("127.0.0.1:{}", free_port());
    let config = config(dir.path(), "gemgate.toml", &url, &anvil, &d, &listen);
    anvil.mine(100).await.unwrap();
    succeed(gemgate(&["index", "--once"], &config), "index");

    let clean = reconcile(&config, false);
    assert!(
        clean["drift"].as_array().unwrap().is_empty(),
        "events and views agree after the traffic: {clean}"
    );
    assert!(clean["rows_checked"].as_u64().unwrap() >= 6, "credits, tokens and deals were compared: {clean}");
    // Batches of one row compare the same rows; without the built-in checks there is nothing to compare.
    let mut command = gemgate(&["reconcile"], &config);
    command.env("GEMGATE__RECONCILE__BATCH", "1");
    let single: Value = serde_json::from_slice(&succeed(command, "reconcile, batch 1").stdout).unwrap();
    assert_eq!(single["rows_checked"], clean["rows_checked"], "{single}");
    assert_eq!(single["drift"], clean["drift"], "{single}");
    let mut command = gemgate(&["reconcile"], &config);
    command.env("GEMGATE__RECONCILE__BATCH", "0");
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(78), "a batch of 0 is a configuration error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("reconcile.batch"));
    let mut command = gemgate(&["reconcile"], &config);
    command.env("GEMGATE__RECONCILE__GEMFORCE", "false");
    let out = command.output().unwrap();
    assert!(!out.status.success(), "no checks left");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to reconcile"), "{out:?}");

    let before = dump(&url).await;
    let credit = before["carbon_credits"][0].clone();
    let token = before["gemforce_tokens"][1].clone();
    let credit_id: U256 = credit["token_id"].as_str().unwrap().parse().unwrap();
    let token_id: U256 = token["token_id"].as_str().unwrap().parse().unwrap();
    let stranger = Address::repeat_byte(0x5a);
    set_storage(
        &anvil,
        d.diamond,
        mapping_slot(credit_id, layout_field(11)),
        B256::from(U256::from(12_345u64)),
    )
    .await;
    set_storage(&anvil, d.diamond, mapping_slot(token_id, layout_field(0)), stranger.into_word()).await;
    // A Listing's fifth field (after nftContract, tokenId, seller, receiver) is its price.
    let listing = before["listings"][0].clone();
    let item = U256::from(listing["item_id"].as_u64().unwrap());
    let price_slot = U256::from_be_bytes(mapping_slot(item, layout_field(8)).0) + U256::from(4);
    set_storage(&anvil, d.diamond, B256::from(price_slot), B256::from(U256::from(777u64))).await;
    // A token's attributes: an array whose elements start at keccak256 of its slot, three slots each
    // (key, attributeType, value); the first attribute's value becomes "Tampered".
    let tagged = before["gemforce_tokens"]
        .iter()
        .find(|r| r["key"] != token["key"] && r["attributes"].as_array().is_some_and(|a| !a.is_empty()))
        .expect("a minted token with attributes")
        .clone();
    let tagged_id: U256 = tagged["token_id"].as_str().unwrap().parse().unwrap();
    let array = mapping_slot(tagged_id, attributes_slot());
    let first_value = U256::from_be_bytes(keccak256(array.0).0) + U256::from(2);
    set_storage(&anvil, d.diamond, B256::from(first_value), short_string("Tampered")).await;
    let mut tampered = tagged["attributes"].clone();
    tampered[0]["value"] = Value::from("Tampered");
    anvil.mine(100).await.unwrap();
    succeed(gemgate(&["index", "--once"], &config), "index after the silent writes");

    // Found and recorded; the projection is left alone without heal.
    let found = reconcile(&config, false);
    let drift = found["drift"].as_array().unwrap();
    let columns: Vec<(&str, &str, bool)> = drift
        .iter()
        .map(|d| {
            (d["table"].as_str().unwrap(), d["column"].as_str().unwrap(), d["healed"].as_bool().unwrap())
        })
        .collect();
    assert_eq!(columns.len(), 4, "{found}");
    for expected in [
        ("carbon_credits", "balance", false),
        ("gemforce_tokens", "owner", false),
        ("gemforce_tokens", "attributes", false),
        ("listings", "price", false),
    ] {
        assert!(columns.contains(&expected), "{expected:?} not in {found}");
    }
    let balance = drift.iter().find(|d| d["column"] == "balance").unwrap();
    assert_eq!((&balance["projected"], &balance["on_chain"]), (&credit["balance"], &Value::from("12345")));
    let attributes = drift.iter().find(|d| d["column"] == "attributes").unwrap();
    assert_eq!(attributes["key"], tagged["key"], "{attributes}");
    assert_eq!(attributes["projected"], tagged["attributes"]);
    assert_eq!(attributes["on_chain"], tampered);
    assert_eq!(dump(&url).await["carbon_credits"], before["carbon_credits"], "not healed");

    // `gemgate run` with heal = true heals them on its schedule.
    let mut command = gemgate(&["run"], &config);
    command.env("GEMGATE__RECONCILE__HEAL", "true").env("GEMGATE__RECONCILE__EVERY", "1 blocks");
    let _service = KillOnDrop(
        command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap(),
    );
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let healed = loop {
        if let Ok(answer) = support::try_http("GET", &format!("{base}/v1/drift"), &[], None).await
            && answer.status == 200
        {
            let body = answer.body;
            let healed: Vec<Value> = body["drift"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|d| d["healed"] == true)
                .collect();
            if healed.len() == 4 {
                break body;
            }
        }
        assert!(Instant::now() < deadline, "not healed in time");
        anvil.mine(1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(healed["drift"].as_array().unwrap().len(), 8, "four recorded, then four healed: {healed}");
    let after = dump(&url).await;
    let healed_credit = after["carbon_credits"].iter().find(|r| r["key"] == credit["key"]).unwrap();
    assert_eq!(healed_credit["balance"], "12345");
    let healed_token = after["gemforce_tokens"].iter().find(|r| r["key"] == token["key"]).unwrap();
    assert_eq!(
        healed_token["owner"].as_str().map(str::to_lowercase),
        Some(stranger.to_string().to_lowercase())
    );
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for line in [
        "gemgate_drift_detected_total{table=\"carbon_credits\",column=\"balance\"} 1",
        "gemgate_drift_healed_total{table=\"gemforce_tokens\",column=\"owner\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in /metrics");
    }
    let messages = integer(&url, "SELECT COUNT(*) FROM outbox WHERE kind = 'drift.detected'").await;
    assert_eq!(messages, 8, "one drift.detected message per record");
    let healed_tag = after["gemforce_tokens"].iter().find(|r| r["key"] == tagged["key"]).unwrap();
    assert_eq!(healed_tag["attributes"], tampered, "the attributes are the contract's again");
    let healed_listing = after["listings"].iter().find(|r| r["key"] == listing["key"]).unwrap();
    assert_eq!(healed_listing["price"], "777");
    drop(_service);
    let again = reconcile(&config, true);
    assert!(again["drift"].as_array().unwrap().is_empty(), "healed rows agree with the views: {again}");
}
