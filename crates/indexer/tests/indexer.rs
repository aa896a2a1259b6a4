//! The indexer against a real chain (anvil) and real databases (SQLite and Postgres): backfill equals
//! `eth_getLogs` field by field, projections hold what the traffic implies, reorgs converge to the
//! canonical chain with retractions, and a lagging endpoint is not mistaken for a reorg.

mod common;

use std::collections::BTreeSet;

use alloy::primitives::{Address, U256};
use common::*;
use gemgate_indexer::StepOutcome;
use gemgate_testkit::AnvilOptions;
use gemgate_testkit::bindings::{ClaimTopicsRegistryFacet, TradeDealFacet};
use serde_json::Value;

/// One test body, run on SQLite and on Postgres.
macro_rules! on_both_backends {
    ($body:ident: $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $body(Backend::Sqlite, stringify!($sqlite)).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            $body(Backend::Postgres, stringify!($postgres)).await;
        }
    };
}

on_both_backends!(backfill_equals_get_logs: backfill_equals_get_logs_on_sqlite, backfill_equals_get_logs_on_postgres);
on_both_backends!(projections_hold_the_scenario: projections_hold_the_scenario_on_sqlite, projections_hold_the_scenario_on_postgres);
on_both_backends!(reorgs_converge: reorgs_of_depth_1_3_20_converge_on_sqlite, reorgs_of_depth_1_3_20_converge_on_postgres);
on_both_backends!(lagging_endpoint: a_lagging_endpoint_is_not_a_reorg_on_sqlite, a_lagging_endpoint_is_not_a_reorg_on_postgres);
on_both_backends!(deep_reorg_halts: a_reorg_below_finality_halts_on_sqlite, a_reorg_below_finality_halts_on_postgres);

async fn backfill_equals_get_logs(backend: Backend, test: &str) {
    let Some(chain) = chain(test, 3, AnvilOptions::default()).await else { return };
    let Some(db) = store(backend, test).await else { return };
    let mut indexer = indexer(&chain, &db.store, &[chain.anvil.endpoint()]);
    catch_up(&mut indexer).await;
    assert_events_match(&stored_events(&db.store).await, &canonical_logs(&chain).await);
    let outbox = db.store.outbox_statuses(31337).await.unwrap();
    assert_eq!(outbox.len(), canonical_logs(&chain).await.len(), "one outbox row per event, written with it");
    assert!(outbox.iter().all(|(_, status)| status == "canonical"));

    // A restart continues from the stored cursor and adds nothing twice.
    let mut again = indexer_for_restart(&chain, &db);
    catch_up(&mut again).await;
    assert_events_match(&stored_events(&db.store).await, &canonical_logs(&chain).await);
}

fn indexer_for_restart(chain: &Chain, db: &TestStore) -> gemgate_indexer::Indexer {
    indexer(chain, &db.store, &[chain.anvil.endpoint()])
}

fn text(value: &Value) -> String {
    value.as_str().map(String::from).unwrap_or_else(|| value.to_string())
}

fn string_set(value: &Value) -> BTreeSet<String> {
    value.as_array().map(|a| a.iter().map(text).collect()).unwrap_or_default()
}

async fn projections_hold_the_scenario(backend: Backend, test: &str) {
    let Some(chain) = chain(test, 3, AnvilOptions::default()).await else { return };
    let Some(db) = store(backend, test).await else { return };
    let mut indexer = indexer(&chain, &db.store, &[chain.anvil.endpoint()]);
    catch_up(&mut indexer).await;
    let dump = projection_dump(&db.store).await;
    let d = &chain.deployment;
    let checksum = |a: Address| a.to_checksum(None);

    let deals = &dump["trade_deals"];
    assert_eq!(deals.len(), chain.report.trade_deals.len());
    for (row, deal) in deals.iter().zip(&chain.report.trade_deals) {
        let id = deal.id;
        let num = |v: U256| v.to_string();
        assert_eq!(row["key"], format!("31337:{}:{id}", checksum(d.diamond)), "deal {id}: key");
        assert_eq!(text(&row["trade_deal_id"]), num(id), "deal {id}: trade_deal_id");
        assert_eq!(row["name"], deal.name, "deal {id}: name");
        assert_eq!(row["symbol"], deal.symbol, "deal {id}: symbol");
        assert_eq!(text(&row["interest_rate"]), num(deal.interest_rate), "deal {id}: interest_rate");
        assert_eq!(
            text(&row["collateral_to_interest_ratio"]),
            num(deal.vabb_to_vabi_ratio),
            "deal {id}: ratio"
        );
        assert_eq!(row["active"], deal.active, "deal {id}: active");
        assert_eq!(row["nft_address"], checksum(deal.nft_address), "deal {id}: nft_address");
        assert_eq!(row["collateral_address"], checksum(deal.vabb_address), "deal {id}: collateral_address");
        assert_eq!(row["interest_address"], checksum(deal.vabi_address), "deal {id}: interest_address");
        assert_eq!(row["usdc_address"], checksum(deal.usdc_address), "deal {id}: usdc_address");
        assert_eq!(text(&row["funding_target"]), num(deal.funding_target), "deal {id}: funding_target");
        assert_eq!(text(&row["funded"]), num(deal.funded), "deal {id}: funded");
        assert_eq!(row["fully_funded"], deal.fully_funded, "deal {id}: fully_funded");
        assert_eq!(text(&row["funding_withdrawn"]), num(deal.withdrawn), "deal {id}: funding_withdrawn");
        assert_eq!(text(&row["repaid"]), num(deal.repaid), "deal {id}: repaid");
        assert_eq!(row["fully_repaid"], deal.fully_repaid, "deal {id}: fully_repaid");
        assert_eq!(text(&row["interest_distributed"]), num(deal.interest_distributed), "deal {id}: interest");
        assert_eq!(
            text(&row["collateral_redeemed"]),
            num(deal.vabb_redeemed),
            "deal {id}: collateral_redeemed"
        );
        assert_eq!(text(&row["usdc_redeemed"]), num(deal.usdc_redeemed), "deal {id}: usdc_redeemed");
        assert_eq!(
            string_set(&row["participants"]),
            deal.participants.iter().map(|a| checksum(*a)).collect::<BTreeSet<_>>(),
            "deal {id}: participants"
        );
        assert_eq!(
            string_set(&row["invoices"]),
            deal.invoices.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>(),
            "deal {id}: invoices"
        );
        assert_eq!(
            string_set(&row["required_claim_topics"]),
            deal.required_claim_topics.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>(),
            "deal {id}: required_claim_topics"
        );
        assert_eq!(row["created_block"], deal.created_block, "deal {id}: created_block");
        assert_eq!(row["created_tx"], deal.created_tx.to_string(), "deal {id}: created_tx");
        assert_eq!(row["creator"], checksum(d.owner), "deal {id}: creator (the transaction's sender)");
    }

    // Marketplace: per round one listing sold for 1 ETH to the buyer, one delisted.
    let accounts = chain.anvil.accounts();
    let (seller, buyer) = (checksum(accounts[5]), checksum(accounts[6]));
    let listings = &dump["listings"];
    assert_eq!(listings.len(), 6);
    let mut by_item: Vec<&Value> = listings.iter().collect();
    by_item.sort_by_key(|r| r["item_id"].as_i64());
    for (i, row) in by_item.iter().enumerate() {
        assert_eq!(row["item_id"], i as i64 + 1, "item ids count listings from 1");
        assert_eq!(row["seller"], seller);
        assert_eq!(row["escrow"], checksum(d.diamond));
        if i % 2 == 0 {
            assert_eq!(row["status"], "sold", "item {}", i + 1);
            assert_eq!(row["buyer"], buyer);
            assert_eq!(text(&row["price"]), "1000000000000000000");
            assert_eq!(text(&row["highest_bid"]), "900000000000000000");
        } else {
            assert_eq!(row["status"], "delisted", "item {}", i + 1);
            assert_eq!(row["payment_token"], checksum(d.usdc));
        }
    }
    // Tokens: sold ones belong to the buyer, delisted ones went back to the seller; attributes kept.
    let tokens = &dump["gemforce_tokens"];
    assert_eq!(tokens.len(), 6);
    for row in tokens {
        let token: u64 = text(&row["token_id"]).parse().unwrap();
        let expected_owner = if token % 2 == 1 { &buyer } else { &seller };
        assert_eq!(&row["owner"], expected_owner, "token {token}");
        assert_eq!(row["attributes"][0]["key"], "name");
        assert_eq!(row["attributes"][0]["value"], format!("Gem {}-{}", token.div_ceil(2), 2 - token % 2));
    }
    // Carbon credits: initialized and partly retired, balance = initial - retired.
    let carbon = &dump["carbon_credits"];
    assert_eq!(carbon.len(), 3);
    for row in carbon {
        let initial: u64 = text(&row["initial_balance"]).parse().unwrap();
        let retired: u64 = text(&row["retired"]).parse().unwrap();
        assert!(retired > 0);
        assert_eq!(text(&row["balance"]), (initial - retired).to_string());
    }
    // Identities: two per round, the second removed; claims on the first, topic 2 removed again.
    let identities = &dump["identities"];
    assert!(
        identities.iter().any(|r| r["active"] == true) && identities.iter().any(|r| r["active"] == false)
    );
    let claims = &dump["claims"];
    assert_eq!(claims.iter().filter(|r| r["active"] == true && text(&r["claim_topic"]) == "1").count(), 3);
    assert!(claims.iter().filter(|r| text(&r["claim_topic"]) == "2").all(|r| r["active"] == false));
    // Both ClaimTopicAdded events, each in its own projection.
    let topics: BTreeSet<String> = dump["claim_topics"].iter().map(|r| text(&r["claim_topic"])).collect();
    assert_eq!(topics, ["1", "2", "101", "102", "103"].map(String::from).into());
    let issuer = dump["trusted_issuers"].iter().find(|r| r["issuer"] == checksum(accounts[9])).unwrap();
    assert_eq!(string_set(&issuer["claim_topics"]), ["1", "2", "101", "102", "103"].map(String::from).into());
    assert_eq!(dump["identity_contracts"].len(), 6);
    // Facets: every selector routed to its facet, the upgrade recorded in the history.
    let history = &dump["facet_history"];
    assert!(history.iter().any(|r| r["action"] == "replace"));
    let (_, upgraded) = &chain.report.upgraded_facets[0];
    let trade_facet_rows: Vec<_> =
        dump["diamond_facets"].iter().filter(|r| r["facet"] == checksum(*upgraded)).collect();
    assert!(!trade_facet_rows.is_empty(), "replaced selectors point to the new TradeDealFacet");
}

/// Sends `blocks` transactions (a block each) whose events change projections.
async fn projection_traffic(chain: &Chain, blocks: u64, tag: u64) {
    let provider = chain.anvil.provider();
    let owner = chain.deployment.owner;
    let trade = TradeDealFacet::new(chain.deployment.diamond, provider.clone());
    let topics = ClaimTopicsRegistryFacet::new(chain.deployment.diamond, provider.clone());
    let d = &chain.deployment;
    for i in 0..blocks {
        let pending = if i % 2 == 0 {
            trade
                .updateTradeDeal(
                    U256::from(1),
                    format!("reorg {tag}-{i}"),
                    "R".into(),
                    U256::from(100 + i),
                    U256::from(2),
                    d.vabb,
                    d.vabi,
                    d.usdc,
                )
                .from(owner)
                .send()
                .await
                .unwrap()
        } else {
            topics.addClaimTopic(U256::from(10_000 * tag + i)).from(owner).send().await.unwrap()
        };
        gemgate_testkit::confirm(&provider, pending, "projection traffic").await.unwrap();
    }
}

async fn reorgs_converge(backend: Backend, test: &str) {
    let Some(chain) = chain(test, 2, AnvilOptions::default()).await else { return };
    let Some(db) = store(backend, test).await else { return };
    let mut indexer = indexer(&chain, &db.store, &[chain.anvil.endpoint()]);
    catch_up(&mut indexer).await;
    for depth in [1u64, 3, 20] {
        projection_traffic(&chain, depth + 2, depth).await;
        catch_up(&mut indexer).await;
        let before = stored_events(&db.store).await;
        let retracted_before =
            db.store.outbox_statuses(31337).await.unwrap().iter().filter(|(_, s)| s == "retracted").count();

        chain.anvil.reorg(depth).await.unwrap();
        let mut reverted = None;
        indexer
            .catch_up(|outcome| {
                if let StepOutcome::Reverted { events_removed, .. } = outcome {
                    reverted = Some(*events_removed);
                }
            })
            .await
            .unwrap();
        let removed = reverted.unwrap_or_else(|| panic!("depth {depth}: the reorg was not detected"));
        assert!(removed >= depth, "depth {depth}: every reorged block had events; removed {removed}");

        let after = stored_events(&db.store).await;
        assert_events_match(&after, &canonical_logs(&chain).await);
        let gone: BTreeSet<String> = before
            .iter()
            .map(|e| e.id.to_string())
            .filter(|id| !after.iter().any(|e| e.id.to_string() == *id))
            .collect();
        assert_eq!(gone.len() as u64, removed, "depth {depth}");
        let outbox = db.store.outbox_statuses(31337).await.unwrap();
        let retractions: BTreeSet<String> =
            outbox.iter().filter(|(_, s)| s == "retracted").map(|(id, _)| id.clone()).collect();
        assert_eq!(
            retractions.len() - retracted_before,
            gone.len(),
            "depth {depth}: one retraction per removed event"
        );
        assert!(gone.is_subset(&retractions), "depth {depth}: retractions carry the removed events' ids");

        // Every projection equals a fresh index of the canonical chain.
        let Some(fresh) = store(backend, test).await else { return };
        let mut oracle = indexer_for_restart(&chain, &fresh);
        catch_up(&mut oracle).await;
        assert_eq!(
            projection_dump(&db.store).await,
            projection_dump(&fresh.store).await,
            "depth {depth}: projections"
        );
    }
}

async fn lagging_endpoint(backend: Backend, test: &str) {
    let Some(chain) = chain(test, 2, AnvilOptions::default()).await else { return };
    // A second node that stopped at an earlier block: a fork of the first that mines nothing.
    let stale_at = chain.anvil.block_number().await.unwrap() - 40;
    let lagging = AnvilOptions {
        extra_args: vec![
            "--fork-url".into(),
            chain.anvil.endpoint(),
            "--fork-block-number".into(),
            stale_at.to_string(),
            "--no-mining".into(),
        ],
        ..AnvilOptions::default()
    };
    let Some(behind) = gemgate_testkit::anvil_or_skip(test, lagging).await.unwrap() else { return };
    assert_eq!(behind.block_number().await.unwrap(), stale_at);
    let Some(db) = store(backend, test).await else { return };
    // The lagging node is listed first: it is preferred whenever it has the block asked for.
    let mut indexer = indexer(&chain, &db.store, &[behind.endpoint(), chain.anvil.endpoint()]);
    let mut reorgs = 0;
    indexer
        .catch_up(|outcome| {
            if matches!(outcome, StepOutcome::Reverted { .. }) {
                reorgs += 1;
            }
        })
        .await
        .unwrap();
    projection_traffic(&chain, 5, 9).await;
    indexer
        .catch_up(|outcome| {
            if matches!(outcome, StepOutcome::Reverted { .. }) {
                reorgs += 1;
            }
        })
        .await
        .unwrap();
    assert_eq!(reorgs, 0, "a node behind us is not a fork");
    assert_events_match(&stored_events(&db.store).await, &canonical_logs(&chain).await);
}

/// anvil finalizes 64 blocks below its head; a reorg of 70 blocks reaches below that. The indexer must
/// stop with a clear error and leave the data as it was, never overwrite finalized rows.
async fn deep_reorg_halts(backend: Backend, test: &str) {
    let Some(chain) = chain(test, 1, AnvilOptions::default()).await else { return };
    let Some(db) = store(backend, test).await else { return };
    projection_traffic(&chain, 80, 7).await;
    let mut indexer = indexer(&chain, &db.store, &[chain.anvil.endpoint()]);
    catch_up(&mut indexer).await;
    let before = stored_events(&db.store).await;
    let projections = projection_dump(&db.store).await;
    chain.anvil.reorg(70).await.unwrap();
    let error = indexer.catch_up(|_| {}).await.unwrap_err();
    assert!(
        matches!(error, gemgate_indexer::IndexerError::ReorgBelowFinality { .. }),
        "expected a halt below finality, got {error}"
    );
    assert!(error.to_string().contains("halted"), "the error says what happened: {error}");
    assert_eq!(stored_events(&db.store).await, before, "nothing reverted below finality");
    assert_eq!(projection_dump(&db.store).await, projections);
}

/// With a 30 s poll interval, a new block is indexed within seconds only because the websocket
/// subscription pushes its head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_heads_wake_the_indexer() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use gemgate_domain::ports::{ChainSource, Store};

    let test = "websocket_heads_wake_the_indexer";
    let Some(chain) = chain(test, 1, AnvilOptions::default()).await else { return };
    let Some(db) = store(Backend::Sqlite, test).await else { return };
    let mut settings = gemgate_indexer::IndexerSettings::new(31337, chain.deployment.start_block);
    settings.poll_interval = Duration::from_secs(30);
    let source: Arc<dyn ChainSource> = Arc::new(source(&[chain.anvil.endpoint()]));
    let store_port: Arc<dyn Store> = Arc::new(db.store.clone());
    let ws = gemgate_chain::WsEndpoint {
        url: chain.anvil.ws_endpoint().parse().unwrap(),
        label: chain.anvil.ws_endpoint(),
    };
    let heads = gemgate_chain::subscribe_heads(31337, vec![ws], None);
    let indexer = gemgate_indexer::Indexer::new(
        source,
        store_port,
        Arc::new(decoder(&chain)),
        settings,
        gemgate_indexer::IndexerMetrics::default(),
    )
    .with_head_notifications(heads);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(indexer.run(async {
        let _ = stopped.await;
    }));
    let reached = |target: u64| {
        let store = db.store.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if store.cursor(31337).await.unwrap().is_some_and(|c| c.number >= target) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        }
    };
    assert!(reached(chain.anvil.block_number().await.unwrap()).await, "initial catch-up");
    tokio::time::sleep(Duration::from_millis(200)).await; // now idle, waiting up to 30 s for a head
    let started = Instant::now();
    projection_traffic(&chain, 1, 3).await;
    let head = chain.anvil.block_number().await.unwrap();
    assert!(reached(head).await, "block {head} not indexed: the pushed head did not wake the indexer");
    assert!(started.elapsed() < Duration::from_secs(10));
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// The facets tracked from `DiamondCut` events (including a Replace upgrade) are exactly what the
/// Diamond's loupe reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_facets_equal_the_loupe() {
    let test = "tracked_facets_equal_the_loupe";
    let Some(chain) = chain(test, 2, AnvilOptions::default()).await else { return };
    let Some(db) = store(Backend::Sqlite, test).await else { return };
    let mut indexer = indexer(&chain, &db.store, &[chain.anvil.endpoint()]);
    catch_up(&mut indexer).await;
    let loupe =
        gemgate_chain::diamond_facets(&source(&[chain.anvil.endpoint()]), chain.deployment.diamond, None)
            .await
            .unwrap();
    let from_loupe: BTreeSet<(String, String)> = loupe
        .iter()
        .flat_map(|(facet, selectors)| {
            selectors.iter().map(move |s| (s.to_string(), facet.to_checksum(None)))
        })
        .collect();
    let tracked: BTreeSet<(String, String)> = projection_dump(&db.store).await["diamond_facets"]
        .iter()
        .map(|r| (text(&r["selector"]), text(&r["facet"])))
        .collect();
    assert_eq!(tracked, from_loupe);
}
