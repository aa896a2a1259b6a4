//! The sample contracts on a real anvil: the scenario's logs, read back with `eth_getLogs` and decoded
//! with the committed ABIs, are the Gemforce events of GEMFORCE.md, each several times, across many blocks.

use std::collections::BTreeMap;

use alloy::dyn_abi::{DynSolValue, EventExt};
use alloy::json_abi::Event;
use alloy::primitives::{Address, B256, U256, b256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use gemgate_testkit::artifacts::all_events;
use gemgate_testkit::{
    Anvil, AnvilOptions, Deployment, Scenario, ScenarioOptions, ScenarioReport, anvil_or_skip,
    deploy_gemforce,
};

/// The Gemforce event surface as GEMFORCE.md writes it (names, types, indexed flags).
const GEMFORCE_EVENTS: &[&str] = &[
    "event DiamondCut((address facetAddress, uint8 action, bytes4[] functionSelectors)[] _diamondCut, address _init, bytes _calldata)",
    "event OwnershipTransferred(address indexed previousOwner, address indexed newOwner)",
    "event Transfer(address indexed from, address indexed to, uint256 indexed tokenId)",
    "event TradeDealCreated(uint256 indexed tradeDealId, string name, string symbol, uint256 interestRate, uint256 vabbToVabiRatio, bool active, address nftAddress, address vabbAddress, address vabiAddress, address usdcAddress)",
    "event TradeDealUpdated(uint256 indexed tradeDealId, string name, string symbol, uint256 interestRate, uint256 vabbToVabiRatio, bool active, address vabbAddress, address vabiAddress, address usdcAddress)",
    "event TradeDealActivated(uint256 indexed tradeDealId)",
    "event TradeDealDeactivated(uint256 indexed tradeDealId)",
    "event TradeDealParticipantAdded(uint256 indexed tradeDealId, address indexed participant)",
    "event TradeDealParticipantRemoved(uint256 indexed tradeDealId, address indexed participant)",
    "event TradeDealRequiredClaimTopicsSet(uint256 indexed tradeDealId, uint256[] claimTopics)",
    "event InvoiceDepositedToTradeDeal(uint256 indexed tradeDealId, uint256 indexed tokenId)",
    "event InvoiceWithdrawnFromTradeDeal(uint256 indexed tradeDealId, uint256 indexed tokenId)",
    "event USDCDepositedToTradeDeal(uint256 indexed tradeDealId, uint256 amount, address depositor)",
    "event USDCWithdrawnFromTradeDeal(uint256 indexed tradeDealId, uint256 amount)",
    "event TradeDealFullyFunded(uint256 indexed tradeDealId, uint256 fundingTarget)",
    "event InterestDistributedForTradeDeal(uint256 indexed tradeDealId, uint256 totalInterest, uint256 invoicePoolInterest, uint256 vabiInterest, uint256 vabiTokensMinted)",
    "event TradeDealFundingWithdrawn(uint256 indexed tradeDealId, address indexed recipient, uint256 amount)",
    "event TradeDealRepaid(uint256 indexed tradeDealId, address indexed repayer, uint256 amount, bool fullyRepaid)",
    "event VABBTokensRedeemed(uint256 indexed tradeDealId, address indexed redeemer, uint256 vabbAmount, uint256 usdcAmount)",
    "event Listings(address indexed nftContract, uint256 indexed tokenId, address seller, address receiver, address owner, uint256 price, bool sold, address paymentToken)",
    "event Sales(address indexed tokenAddress, uint256 indexed tokenId, address indexed owner)",
    "event Delisted(uint256 indexed itemId)",
    "event Bids(uint256 indexed itemId, address bidder, uint256 amount)",
    "event PaymentDistributed(address token, address receiver, uint256 amount)",
    "event MarketplaceInitialized((address receiver, uint256 sharePerMillion)[] feeReceivers)",
    "event GemforceMinted(uint256 indexed tokenId, address indexed owner, (string key, uint8 attributeType, string value)[] attributes)",
    "event CarbonCreditsInitialized(uint256 indexed tokenId, uint256 initialBalance)",
    "event CarbonCreditsRetired(uint256 indexed tokenId, uint256 amount, uint256 remainingBalance)",
    "event IdentityAdded(address trustedIssuer, address indexed _address, address identity)",
    "event IdentityRemoved(address trustedIssuer, address indexed _address, address identity)",
    "event ClaimAdded(address trustedIssuer, address indexed identity, uint256 indexed claimTopic, bytes claim)",
    "event ClaimRemoved(address trustedIssuer, address indexed identity, uint256 indexed claimTopic)",
    "event ClaimsSet(address trustedIssuer, address indexed identity, uint256[] claims)",
    "event ClaimTopicAdded(uint256 indexed claimTopic)",
    "event ClaimTopicAdded(address indexed issuer, uint256 claimTopic)",
    "event TrustedIssuerAdded(address indexed trustedIssuer, uint256[] claimTopics)",
    "event TrustedIssuerRemoved(address indexed trustedIssuer)",
    "event IdentityCreated(address indexed owner, address indexed identity)",
    "event TreasuryDeposited((uint256 tokenId, uint256 amount)[] deposits)",
    "event TreasuryWithdrawn(uint256[] tokenIds, uint256 amount)",
];

/// topic0 values written out in GEMFORCE.md.
const TRADE_DEAL_CREATED_TOPIC: B256 =
    b256!("ed0366d8af5e5ed4eb6e11fb3853d3ba064a0723f1e824313b66b3bde66455ce");
const DIAMOND_CUT_TOPIC: B256 = b256!("8faa70878671ccd212d20771b795c50af8fd3ff6cf27f4bde57e5d4de0aeb673");

struct Run {
    anvil: Anvil,
    deployment: Deployment,
    report: ScenarioReport,
    logs: Vec<Log>,
}

async fn run_scenario(test: &str, seed: u64) -> Option<Run> {
    let anvil = anvil_or_skip(test, AnvilOptions::default()).await.unwrap()?;
    let provider = anvil.provider();
    let deployment = deploy_gemforce(&provider, anvil.accounts()[0]).await.unwrap();
    let scenario = Scenario::new(&deployment, anvil.accounts(), ScenarioOptions { seed, rounds: 3 }).unwrap();
    let report = scenario.run(&provider).await.unwrap();
    let head = provider.get_block_number().await.unwrap();
    let filter =
        Filter::new().address(deployment.event_sources()).from_block(deployment.start_block).to_block(head);
    let logs = provider.get_logs(&filter).await.unwrap();
    Some(Run { anvil, deployment, report, logs })
}

fn doc_events() -> Vec<Event> {
    GEMFORCE_EVENTS
        .iter()
        .map(|text| Event::parse(&strip_tuple_names(text)).unwrap_or_else(|e| panic!("{text}: {e}")))
        .collect()
}

/// alloy's signature parser does not take names inside tuple types; GEMFORCE.md writes them. Drops them.
fn strip_tuple_names(text: &str) -> String {
    let (mut out, mut depth, mut in_type, mut skipping) = (String::new(), 0, false, false);
    for c in text.chars() {
        match c {
            '(' | ')' | ',' => {
                depth += if c == '(' {
                    1
                } else if c == ')' {
                    -1
                } else {
                    0
                };
                in_type = false;
                skipping = false;
                out.push(c);
            }
            ' ' if depth >= 2 && in_type => skipping = true,
            ' ' if depth >= 2 => {}
            _ if skipping => {}
            _ => {
                in_type = depth >= 2;
                out.push(c);
            }
        }
    }
    out
}

#[test]
fn documented_topics_match_the_abis() {
    let abi_events = all_events().unwrap();
    let docs = doc_events();
    let by_name = |name: &str| docs.iter().find(|e| e.name == name).unwrap().selector();
    assert_eq!(by_name("TradeDealCreated"), TRADE_DEAL_CREATED_TOPIC);
    assert_eq!(by_name("DiamondCut"), DIAMOND_CUT_TOPIC);
    for doc in &docs {
        let abi = abi_events
            .iter()
            .find(|e| e.selector() == doc.selector())
            .unwrap_or_else(|| panic!("no sample contract emits {}", doc.full_signature()));
        let doc_indexed: Vec<bool> = doc.inputs.iter().map(|i| i.indexed).collect();
        let abi_indexed: Vec<bool> = abi.inputs.iter().map(|i| i.indexed).collect();
        assert_eq!(abi_indexed, doc_indexed, "indexed flags of {}", doc.full_signature());
        let doc_names: Vec<&str> = doc.inputs.iter().map(|i| i.name.as_str()).collect();
        let abi_names: Vec<&str> = abi.inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(abi_names, doc_names, "parameter names of {}", doc.full_signature());
    }
    // Same name, different events: the registries' two ClaimTopicAdded must never be confused.
    let claim_topic_added: Vec<B256> =
        docs.iter().filter(|e| e.name == "ClaimTopicAdded").map(Event::selector).collect();
    assert_eq!(claim_topic_added.len(), 2);
    assert_ne!(claim_topic_added[0], claim_topic_added[1]);
    assert_eq!(claim_topic_added[0], keccak256("ClaimTopicAdded(uint256)"));
    assert_eq!(claim_topic_added[1], keccak256("ClaimTopicAdded(address,uint256)"));
    assert_eq!(
        by_name("Listings"),
        keccak256("Listings(address,uint256,address,address,address,uint256,bool,address)")
    );
    assert_eq!(
        by_name("GemforceMinted"),
        keccak256("GemforceMinted(uint256,address,(string,uint8,string)[])")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_emits_every_gemforce_event_several_times_across_many_blocks() {
    let Some(run) = run_scenario("scenario_emits_every_gemforce_event", 7).await else {
        return;
    };
    let abi_events = all_events().unwrap();

    // Every log decodes with the committed ABIs, dispatched on topic0.
    let mut counts: BTreeMap<B256, usize> = BTreeMap::new();
    let mut blocks = std::collections::BTreeSet::new();
    let mut decoded: Vec<(String, alloy::dyn_abi::DecodedEvent, &Log)> = Vec::new();
    for log in &run.logs {
        let topic0 = log.topics()[0];
        let event = abi_events.iter().find(|e| e.selector() == topic0).expect("every log has a known topic0");
        let values = event.decode_log(&log.inner.data).unwrap_or_else(|e| panic!("{}: {e}", event.name));
        *counts.entry(topic0).or_default() += 1;
        blocks.insert(log.block_number.unwrap());
        decoded.push((event.signature(), values, log));
    }
    for doc in doc_events() {
        let seen = counts.get(&doc.selector()).copied().unwrap_or(0);
        assert!(
            seen >= 2,
            "{} was emitted {seen} time(s); the scenario must emit it several times",
            doc.full_signature()
        );
    }
    assert!(blocks.len() >= 100, "logs span only {} blocks", blocks.len());
    assert_eq!(counts[&DIAMOND_CUT_TOPIC], 4, "constructor cut, two rollout cuts and one upgrade");

    // Decoded values are the ones the scenario sent.
    let created: Vec<_> = decoded.iter().filter(|(sig, _, _)| sig.starts_with("TradeDealCreated(")).collect();
    assert_eq!(created.len(), run.report.trade_deals.len());
    for ((_, values, log), deal) in created.iter().zip(&run.report.trade_deals) {
        assert_eq!(values.indexed[0], DynSolValue::Uint(deal.id, 256));
        let name = deal.name.trim_end_matches(" (rev 2)");
        assert_eq!(values.body[0], DynSolValue::String(name.to_string()));
        assert_eq!(values.body[8], DynSolValue::Address(run.deployment.usdc));
        assert_eq!(log.transaction_hash, Some(deal.created_tx));
        assert_eq!(log.address(), run.deployment.diamond, "facet events come from the Diamond's address");
    }
    let topics_registry: Vec<U256> = decoded
        .iter()
        .filter(|(sig, _, _)| sig == "ClaimTopicAdded(uint256)")
        .map(|(_, v, _)| v.indexed[0].as_uint().unwrap().0)
        .collect();
    assert_eq!(topics_registry, [1u64, 2, 101, 102, 103].map(U256::from));
    let issuer_topics: Vec<(Address, U256)> = decoded
        .iter()
        .filter(|(sig, _, _)| sig == "ClaimTopicAdded(address,uint256)")
        .map(|(_, v, _)| (v.indexed[0].as_address().unwrap(), v.body[0].as_uint().unwrap().0))
        .collect();
    let issuer = run.anvil.accounts()[9];
    assert_eq!(issuer_topics, [101u64, 102, 103].map(|t| (issuer, U256::from(t))));
    let fully_funded = decoded.iter().filter(|(sig, _, _)| sig.starts_with("TradeDealFullyFunded(")).count();
    assert_eq!(fully_funded, run.report.trade_deals.len(), "each deal is fully funded exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_traffic() {
    let Some(first) = run_scenario("the_same_seed_gives_the_same_traffic", 11).await else {
        return;
    };
    let Some(second) = run_scenario("the_same_seed_gives_the_same_traffic", 11).await else {
        return;
    };
    let Some(other) = run_scenario("the_same_seed_gives_the_same_traffic", 12).await else {
        return;
    };
    let shape = |run: &Run| -> Vec<_> {
        run.logs
            .iter()
            .map(|l| (l.address(), l.topics().to_vec(), l.inner.data.data.clone(), l.block_number))
            .collect()
    };
    assert_eq!(shape(&first), shape(&second));
    assert_ne!(shape(&first), shape(&other), "another seed must change amounts");
    assert_eq!(first.report.trade_deals, second.report.trade_deals);
}
