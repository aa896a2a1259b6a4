//! The send-error fixtures against a running node: anvil's own answers to refused transactions read as
//! the kinds the transaction manager acts on.

use alloy::providers::Provider;
use gemgate_domain::SendError;
use gemgate_testkit::AnvilOptions;
use serde_json::{Value, json};

async fn refusal(provider: &alloy::providers::DynProvider, method: &str, tx: Value) -> SendError {
    let result = provider.raw_request::<_, Value>(method.to_string().into(), (tx,)).await;
    let error = result.expect_err("the node refuses it");
    gemgate_chain::send_error(&error).expect("a JSON-RPC error, not a transport failure")
}

#[tokio::test]
async fn anvils_refusals_read_as_their_kinds() {
    let test = "anvils_refusals_read_as_their_kinds";
    let Some(anvil) = gemgate_testkit::anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else {
        return;
    };
    let provider = anvil.provider();
    let (from, to) = (anvil.accounts()[0], anvil.accounts()[1]);
    let send = |extra: Value| {
        let mut tx = json!({"from": from, "to": to, "value": "0x1"});
        tx.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        tx
    };
    let _: Value = provider.raw_request("eth_sendTransaction".into(), (send(json!({})),)).await.unwrap();

    let cases = [
        (send(json!({"nonce": "0x0"})), "nonce too low"),
        (send(json!({"value": "0xffffffffffffffffffffffffffffff"})), "insufficient funds"),
        (send(json!({"gas": "0x100"})), "intrinsic gas too low"),
        (send(json!({"maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x1"})), "fee cap below base fee"),
        (
            send(json!({"maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "0x87359400"})),
            "priority fee above fee cap",
        ),
    ];
    for (tx, kind) in cases {
        let got = refusal(&provider, "eth_sendTransaction", tx).await;
        assert!(got.to_string().starts_with(kind), "expected {kind}: {got:?}");
    }
    // A pending transaction, then the same again and a replacement that pays no more.
    anvil.set_automine(false).await.unwrap();
    let pending = send(json!({"nonce": "0x1", "maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "0x1"}));
    let _: Value = provider.raw_request("eth_sendTransaction".into(), (pending.clone(),)).await.unwrap();
    let again = refusal(&provider, "eth_sendTransaction", pending.clone()).await;
    assert!(matches!(again, SendError::AlreadyKnown { .. }), "{again:?}");
    let mut cheaper = pending;
    cheaper["value"] = json!("0x2");
    let replaced = refusal(&provider, "eth_sendTransaction", cheaper).await;
    assert!(matches!(replaced, SendError::ReplacementUnderpriced { .. }), "{replaced:?}");
    // A revert answered by gas estimation.
    let reverts = refusal(&provider, "eth_estimateGas", json!({"from": from, "data": "0x60006000fd"})).await;
    assert!(matches!(reverts, SendError::Reverted { .. }), "{reverts:?}");
}
