//! The view-call proxy against a real node (anvil with the sample contracts and Multicall3 at its
//! canonical address), through the JSON-RPC adapter the binary uses: results at the block they name,
//! served again from the cache, identical calls coalesced, batches sent as one Multicall3 call (and side
//! by side where there is none), reverts decoded from the contracts' ABIs.

use std::sync::Arc;
use std::time::Duration;

use alloy::providers::Provider;
use alloy_primitives::{Address, Bytes, U256};
use gemgate_calls::{CallInput, CallMetrics, CallOptions, CallProxy, Catalog, Prepared};
use gemgate_chain::{RetryPolicy, TxRpc};
use gemgate_domain::calls::{BlockSelector, CallOutput};
use gemgate_domain::ports::ViewCaller;
use gemgate_testkit::artifacts::Artifact;
use gemgate_testkit::bindings::SampleERC20;
use gemgate_testkit::{Anvil, AnvilOptions, Deployment, MULTICALL3, anvil_or_skip, deploy_gemforce};
use serde_json::json;

struct Rig {
    anvil: Anvil,
    deployment: Deployment,
    catalog: Catalog,
}

async fn rig(test: &str) -> Option<Rig> {
    let anvil = anvil_or_skip(test, AnvilOptions::default()).await.unwrap()?;
    let deployment = deploy_gemforce(&anvil.provider(), anvil.accounts()[0]).await.unwrap();
    let mut catalog = Catalog::default();
    let erc20 = Artifact::named("SampleERC20").unwrap().abi().unwrap();
    catalog.add("usdc", anvil.chain_id(), deployment.usdc, &[erc20]);
    Some(Rig { anvil, deployment, catalog })
}

fn rpc(anvil: &Anvil) -> Arc<dyn ViewCaller> {
    let url: url::Url = anvil.endpoint().parse().unwrap();
    Arc::new(TxRpc::new(anvil.chain_id(), vec![(url.clone(), url.to_string())], RetryPolicy::default()))
}

fn proxy(anvil: &Anvil, multicall3: Option<Address>, head_max_age: Duration) -> (CallProxy, CallMetrics) {
    let metrics = CallMetrics::default();
    let options = CallOptions { cache_bytes: 1 << 20, max_batch: 100, head_max_age };
    (CallProxy::new(vec![(rpc(anvil), multicall3)], options).with_metrics(metrics.clone()), metrics)
}

fn count(
    family: &prometheus_client::metrics::family::Family<
        gemgate_calls::metrics::ChainLabel,
        prometheus_client::metrics::counter::Counter,
    >,
) -> u64 {
    family.get_or_create(&gemgate_calls::metrics::ChainLabel { chain_id: 31337 }).get()
}

impl Rig {
    fn prepare(&self, function: &str, args: &[serde_json::Value], block: BlockSelector) -> Prepared {
        self.prepare_from(None, function, args, block)
    }

    fn prepare_from(
        &self,
        from: Option<Address>,
        function: &str,
        args: &[serde_json::Value],
        block: BlockSelector,
    ) -> Prepared {
        let input = CallInput {
            chain_id: self.anvil.chain_id(),
            to: "usdc",
            from,
            function: Some(function),
            args,
            block: Some(block),
            ..CallInput::default()
        };
        self.catalog.prepare(&input).unwrap()
    }

    async fn mint(&self, to: Address, amount: u64) -> u64 {
        let token = SampleERC20::new(self.deployment.usdc, self.anvil.provider());
        let receipt = token
            .mint(to, U256::from(amount))
            .from(self.deployment.owner)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        receipt.block_number.unwrap()
    }
}

#[tokio::test]
async fn calls_answer_at_the_block_they_name_and_pinned_results_come_from_the_cache() {
    let Some(rig) = rig("calls_answer_at_the_block_they_name_and_pinned_results_come_from_the_cache").await
    else {
        return;
    };
    let holder = rig.anvil.accounts()[3];
    let first = rig.mint(holder, 5_000).await;
    let second = rig.mint(holder, 2_000).await;
    let (proxy, metrics) = proxy(&rig.anvil, Some(MULTICALL3), Duration::from_millis(250));

    let balance = |block| rig.prepare("balanceOf", &[json!(holder.to_string())], block);
    let at_first = proxy.call(&balance(BlockSelector::Number(first)).call).await.unwrap();
    let explained = rig.catalog.explain(&balance(BlockSelector::Number(first)), &at_first);
    assert_eq!(explained.decoded, Some(json!({"arg0": "5000"})), "the state after block {first}");
    assert_eq!(explained.function.as_deref(), Some("balanceOf(address)"));
    assert_eq!(explained.contract.as_deref(), Some("usdc"));
    let block = rig.anvil.provider().get_block_by_number(first.into()).await.unwrap().unwrap();
    assert_eq!((at_first.block.number, at_first.block.hash), (first, block.header.hash));

    let latest = proxy.call(&balance(BlockSelector::Latest).call).await.unwrap();
    assert_eq!(latest.block.number, second);
    assert_eq!(
        rig.catalog.explain(&balance(BlockSelector::Latest), &latest).decoded,
        Some(json!({"arg0": "7000"}))
    );
    let by_hash = proxy.call(&balance(BlockSelector::Hash(block.header.hash)).call).await.unwrap();
    assert_eq!(by_hash.output, at_first.output, "the same block by hash is the same state");

    let calls_before = count(&metrics.rpc_calls);
    for _ in 0..50 {
        let again = proxy.call(&balance(BlockSelector::Number(first)).call).await.unwrap();
        assert_eq!(again, at_first);
    }
    assert_eq!(count(&metrics.rpc_calls), calls_before, "fifty repeats of a pinned call: no eth_call");
    assert!(count(&metrics.hits) >= 50);

    let missing = proxy.call(&balance(BlockSelector::Number(second + 1000)).call).await;
    assert!(matches!(missing, Err(gemgate_calls::CallError::NoSuchBlock { .. })), "{missing:?}");
}

#[tokio::test]
async fn identical_latest_calls_in_flight_share_one_round_trip_and_the_head_moves_on() {
    let Some(rig) = rig("identical_latest_calls_in_flight_share_one_round_trip_and_the_head_moves_on").await
    else {
        return;
    };
    let holder = rig.anvil.accounts()[4];
    rig.mint(holder, 10).await;
    let (proxy, metrics) = proxy(&rig.anvil, Some(MULTICALL3), Duration::from_millis(200));
    let proxy = Arc::new(proxy);
    let call = rig.prepare("balanceOf", &[json!(holder.to_string())], BlockSelector::Latest).call;
    let answers = futures::future::join_all((0..40).map(|_| {
        let (proxy, call) = (proxy.clone(), call.clone());
        async move { proxy.call(&call).await.unwrap() }
    }))
    .await;
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "every caller got the same answer");
    assert_eq!(count(&metrics.rpc_calls), 1, "forty identical calls, one eth_call");
    assert_eq!(count(&metrics.coalesced) + count(&metrics.hits), 39);

    // Distinct calls at once: while one is out, the rest queue and go together as Multicall3 batches.
    let holders: Vec<Address> = (0..40u8).map(|i| Address::repeat_byte(i + 1)).collect();
    let before = count(&metrics.rpc_calls);
    let answers = futures::future::join_all(holders.iter().map(|h| {
        let proxy = proxy.clone();
        let call = rig.prepare("balanceOf", &[json!(h.to_string())], BlockSelector::Latest).call;
        async move { proxy.call(&call).await.unwrap() }
    }))
    .await;
    for answer in &answers {
        assert_eq!(answer.output, CallOutput::Returned(Bytes::from(vec![0u8; 32])), "nobody else holds any");
    }
    let round_trips = count(&metrics.rpc_calls) - before;
    assert!(round_trips < 10, "forty distinct calls took {round_trips} round trips");
    assert!(count(&metrics.batches) >= 1);

    // A new block: once the head is re-read, latest is the new state, not the cached one.
    let newer = rig.mint(holder, 5).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let after = proxy.call(&call).await.unwrap();
    assert_eq!(after.block.number, newer);
    let decoded = rig
        .catalog
        .explain(&rig.prepare("balanceOf", &[json!(holder.to_string())], BlockSelector::Latest), &after)
        .decoded;
    assert_eq!(decoded, Some(json!({"arg0": "15"})));
}

#[tokio::test]
async fn a_batch_is_one_multicall_with_each_revert_decoded_and_runs_side_by_side_without_multicall3() {
    let Some(rig) =
        rig("a_batch_is_one_multicall_with_each_revert_decoded_and_runs_side_by_side_without_multicall3")
            .await
    else {
        return;
    };
    let holders: Vec<Address> = rig.anvil.accounts()[1..6].to_vec();
    for (i, holder) in holders.iter().enumerate() {
        rig.mint(*holder, 100 * (i as u64 + 1)).await;
    }
    let mut prepared: Vec<Prepared> = holders
        .iter()
        .map(|h| rig.prepare("balanceOf", &[json!(h.to_string())], BlockSelector::Latest))
        .collect();
    prepared.push(rig.prepare("symbol", &[], BlockSelector::Latest));
    // A call that reverts with the ABI's custom error: spending an allowance nobody gave.
    prepared.push(rig.prepare(
        "transferFrom",
        &[json!(holders[0].to_string()), json!(holders[1].to_string()), json!("1000000")],
        BlockSelector::Latest,
    ));
    let calls: Vec<_> = prepared.iter().map(|p| p.call.clone()).collect();

    let check = |answers: Vec<Result<gemgate_calls::CallAnswer, gemgate_calls::CallError>>| {
        let results: Vec<_> =
            prepared.iter().zip(answers).map(|(p, a)| rig.catalog.explain(p, &a.unwrap())).collect();
        for (i, result) in results[..5].iter().enumerate() {
            assert_eq!(result.decoded, Some(json!({"arg0": (100 * (i + 1)).to_string()})));
        }
        assert_eq!(results[5].decoded, Some(json!({"arg0": "USDC"})));
        let revert = results[6].revert.as_ref().expect("the transfer reverts");
        assert_eq!(revert.kind, "custom");
        assert_eq!(revert.name.as_deref(), Some("ERC20InsufficientAllowance"));
        assert_eq!(results[6].error.as_ref().unwrap().code, "call_reverted");
        assert!(revert.reason.contains("needed: 1000000"), "{}", revert.reason);
        assert_eq!(results.iter().map(|r| r.block_number).collect::<std::collections::HashSet<_>>().len(), 1);
    };

    let (batched, metrics) = proxy(&rig.anvil, Some(MULTICALL3), Duration::from_secs(5));
    check(batched.call_many(&calls).await.unwrap());
    assert_eq!(count(&metrics.batches), 1, "one Multicall3 batch");
    assert_eq!(count(&metrics.rpc_calls), 1, "seven calls, one eth_call");
    assert_eq!(count(&metrics.rpc_saved), 6);
    check(batched.call_many(&calls).await.unwrap());
    assert_eq!(count(&metrics.rpc_calls), 1, "the same batch again: all from the cache");

    // A call with `from` is not batched (Multicall3 would be its sender).
    let from = rig.prepare_from(
        Some(holders[4]),
        "transfer",
        &[json!(holders[0].to_string()), json!("1")],
        BlockSelector::Latest,
    );
    let answers = batched.call_many(&[from.call.clone(), calls[0].clone()]).await.unwrap();
    let sent = rig.catalog.explain(&from, answers[0].as_ref().unwrap());
    assert_eq!(sent.decoded, Some(json!({"arg0": true})), "holder 5 can send 1: {sent:?}");

    // No Multicall3 on the chain: the same batch, side by side, the same answers.
    rig.anvil
        .provider()
        .raw_request::<_, serde_json::Value>("anvil_setCode".into(), (MULTICALL3, Bytes::new()))
        .await
        .unwrap();
    rig.mint(holders[0], 0).await;
    let (plain, metrics) = proxy(&rig.anvil, Some(MULTICALL3), Duration::from_secs(5));
    check(plain.call_many(&calls).await.unwrap());
    assert_eq!(count(&metrics.batches), 0);
    assert_eq!(count(&metrics.rpc_calls), 7);
    let (unconfigured, metrics) = proxy(&rig.anvil, None, Duration::from_secs(5));
    check(unconfigured.call_many(&calls).await.unwrap());
    assert_eq!((count(&metrics.batches), count(&metrics.rpc_calls)), (0, 7));
}

#[tokio::test]
async fn reverts_come_back_as_outputs_with_their_data() {
    let Some(rig) = rig("reverts_come_back_as_outputs_with_their_data").await else {
        return;
    };
    let (proxy, _) = proxy(&rig.anvil, Some(MULTICALL3), Duration::from_millis(250));
    let stranger = rig.anvil.accounts()[7];
    let mint = rig.prepare_from(
        Some(stranger),
        "mint",
        &[json!(stranger.to_string()), json!("1")],
        BlockSelector::Latest,
    );
    let answer = proxy.call(&mint.call).await.unwrap();
    assert!(matches!(answer.output, CallOutput::Reverted { .. }));
    let result = rig.catalog.explain(&mint, &answer);
    let revert = result.revert.unwrap();
    assert_eq!(revert.name.as_deref(), Some("OwnableUnauthorizedAccount"));
    assert_eq!(revert.args, Some(json!({"account": stranger.to_checksum(None)})));
    assert!(result.result.is_none() && result.decoded.is_none());
}
