//! The built-in Gemforce projections: trade deals through their whole lifecycle (both event
//! generations map to one record), marketplace listings, minted tokens with attributes, carbon credits,
//! identities and claims, claim topics, trusted issuers, identity contracts, and the Diamond's facets with
//! their history. Dispatch is on topic0 (the `Kind` table); names are never compared.

mod abi;
pub mod loupe;
pub mod tables;

use std::collections::{HashMap, HashSet};

use alloy_primitives::{Address, B256, U256, keccak256};
use async_trait::async_trait;
use gemgate_domain::ChainEvent;
use serde_json::Value;

pub use abi::{gemforce_abis, gemforce_events};
use tables::*;

use crate::rows::{Cell, Row, Rows, TableDef};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    DealCreated,
    DealCreatedV2,
    DealUpdated,
    DealActivated,
    DealDeactivated,
    ParticipantAdded,
    ParticipantRemoved,
    ClaimTopicsSet,
    InvoiceDeposited,
    InvoiceWithdrawn,
    UsdcDeposited,
    UsdcWithdrawn,
    FullyFunded,
    InterestDistributed,
    FundingWithdrawn,
    Repaid,
    CollateralRedeemed,
    Listed,
    Sold,
    Delisted,
    Bid,
    Transfer,
    Minted,
    CarbonInitialized,
    CarbonRetired,
    IdentityAdded,
    IdentityRemoved,
    ClaimAdded,
    ClaimRemoved,
    ClaimsSet,
    TopicAdded,
    TopicRemoved,
    IssuerTopicAdded,
    IssuerAdded,
    IssuerRemoved,
    IdentityCreated,
    DiamondCut,
}

/// Canonical signatures (ABI-verified, GEMFORCE.md) and what they mean here.
const SIGNATURES: &[(&str, Kind)] = &[
    (
        "TradeDealCreated(uint256,string,string,uint256,uint256,bool,address,address,address,address)",
        Kind::DealCreated,
    ),
    // The newer generation appends an OperationMode enum (uint8), which changes topic0.
    (
        "TradeDealCreated(uint256,string,string,uint256,uint256,bool,address,address,address,address,uint8)",
        Kind::DealCreatedV2,
    ),
    (
        "TradeDealUpdated(uint256,string,string,uint256,uint256,bool,address,address,address)",
        Kind::DealUpdated,
    ),
    ("TradeDealActivated(uint256)", Kind::DealActivated),
    ("TradeDealDeactivated(uint256)", Kind::DealDeactivated),
    ("TradeDealParticipantAdded(uint256,address)", Kind::ParticipantAdded),
    ("TradeDealParticipantRemoved(uint256,address)", Kind::ParticipantRemoved),
    ("TradeDealRequiredClaimTopicsSet(uint256,uint256[])", Kind::ClaimTopicsSet),
    ("InvoiceDepositedToTradeDeal(uint256,uint256)", Kind::InvoiceDeposited),
    ("InvoiceWithdrawnFromTradeDeal(uint256,uint256)", Kind::InvoiceWithdrawn),
    ("USDCDepositedToTradeDeal(uint256,uint256,address)", Kind::UsdcDeposited),
    ("USDCWithdrawnFromTradeDeal(uint256,uint256)", Kind::UsdcWithdrawn),
    ("TradeDealFullyFunded(uint256,uint256)", Kind::FullyFunded),
    ("InterestDistributedForTradeDeal(uint256,uint256,uint256,uint256,uint256)", Kind::InterestDistributed),
    ("TradeDealFundingWithdrawn(uint256,address,uint256)", Kind::FundingWithdrawn),
    ("TradeDealRepaid(uint256,address,uint256,bool)", Kind::Repaid),
    ("VABBTokensRedeemed(uint256,address,uint256,uint256)", Kind::CollateralRedeemed),
    ("CollateralTokensRedeemed(uint256,address,uint256,uint256)", Kind::CollateralRedeemed),
    ("Listings(address,uint256,address,address,address,uint256,bool,address)", Kind::Listed),
    ("Sales(address,uint256,address)", Kind::Sold),
    ("Delisted(uint256)", Kind::Delisted),
    ("Bids(uint256,address,uint256)", Kind::Bid),
    ("Transfer(address,address,uint256)", Kind::Transfer),
    ("GemforceMinted(uint256,address,(string,uint8,string)[])", Kind::Minted),
    ("CarbonCreditsInitialized(uint256,uint256)", Kind::CarbonInitialized),
    ("CarbonCreditsRetired(uint256,uint256,uint256)", Kind::CarbonRetired),
    ("IdentityAdded(address,address,address)", Kind::IdentityAdded),
    ("IdentityRemoved(address,address,address)", Kind::IdentityRemoved),
    ("ClaimAdded(address,address,uint256,bytes)", Kind::ClaimAdded),
    ("ClaimRemoved(address,address,uint256)", Kind::ClaimRemoved),
    ("ClaimsSet(address,address,uint256[])", Kind::ClaimsSet),
    ("ClaimTopicAdded(uint256)", Kind::TopicAdded),
    ("ClaimTopicRemoved(uint256)", Kind::TopicRemoved),
    ("ClaimTopicAdded(address,uint256)", Kind::IssuerTopicAdded),
    ("TrustedIssuerAdded(address,uint256[])", Kind::IssuerAdded),
    ("TrustedIssuerRemoved(address)", Kind::IssuerRemoved),
    ("IdentityCreated(address,address)", Kind::IdentityCreated),
    ("DiamondCut((address,uint8,bytes4[])[],address,bytes)", Kind::DiamondCut),
];

/// The Gemforce projection.
#[derive(Debug)]
pub struct Gemforce {
    kinds: HashMap<B256, Kind>,
    /// The contracts it projects; `None`: every contract. An ERC-20 `Transfer` from a token shares its
    /// topic0 with the Diamond's ERC-721 `Transfer`, so the projection must know which contracts are Gemforce.
    contracts: Option<HashSet<(u64, Address)>>,
}

impl Default for Gemforce {
    fn default() -> Self {
        Self::new()
    }
}

impl Gemforce {
    /// Projects events of every contract.
    pub fn new() -> Self {
        Self {
            kinds: SIGNATURES.iter().map(|(sig, kind)| (keccak256(sig), *kind)).collect(),
            contracts: None,
        }
    }

    /// Projects events of these (chain id, address) contracts only.
    pub fn for_contracts(contracts: impl IntoIterator<Item = (u64, Address)>) -> Self {
        Self { contracts: Some(contracts.into_iter().collect()), ..Self::new() }
    }

    /// topic0 of the events whose transaction sender this projection records (a trade deal's creator).
    pub fn sender_topics() -> Vec<B256> {
        SIGNATURES
            .iter()
            .filter(|(_, kind)| matches!(kind, Kind::DealCreated | Kind::DealCreatedV2))
            .map(|(sig, _)| keccak256(sig))
            .collect()
    }

    /// topic0 of every event this projection needs (a service checks them against its loaded ABIs).
    pub fn required_topics() -> Vec<(&'static str, B256)> {
        SIGNATURES.iter().map(|(sig, _)| (*sig, keccak256(sig))).collect()
    }
}

/// Reads typed arguments out of a decoded event.
struct Args<'e>(&'e ChainEvent);

impl Args<'_> {
    fn bad(&self, name: &str) -> ProjectionError {
        ProjectionError::BadArgument {
            event: self.0.event.clone(),
            id: self.0.id.to_string(),
            argument: name.into(),
        }
    }
    fn value(&self, name: &str) -> Result<&Value, ProjectionError> {
        self.0.args.get(name).ok_or_else(|| self.bad(name))
    }
    fn text(&self, name: &str) -> Result<String, ProjectionError> {
        self.value(name)?.as_str().map(str::to_string).ok_or_else(|| self.bad(name))
    }
    fn num(&self, name: &str) -> Result<U256, ProjectionError> {
        self.text(name)?.parse().map_err(|_| self.bad(name))
    }
    fn flag(&self, name: &str) -> Result<bool, ProjectionError> {
        self.value(name)?.as_bool().ok_or_else(|| self.bad(name))
    }
    /// The first argument present among several names (the two trade-deal generations name fields differently).
    fn first_text(&self, names: &[&str]) -> Result<String, ProjectionError> {
        names.iter().find_map(|n| self.text(n).ok()).ok_or_else(|| self.bad(names[0]))
    }
    fn first_num(&self, names: &[&str]) -> Result<U256, ProjectionError> {
        names.iter().find_map(|n| self.num(n).ok()).ok_or_else(|| self.bad(names[0]))
    }
}

fn key(event: &ChainEvent, id: impl std::fmt::Display) -> String {
    format!("{}:{}:{}", event.chain_id, event.address.to_checksum(None), id)
}

/// A new row with the columns every Gemforce table shares.
fn base_row(event: &ChainEvent) -> Row {
    Row::from([
        ("chain_id".to_string(), Cell::Int(event.chain_id as i64)),
        ("contract".to_string(), Cell::Text(event.address.to_checksum(None))),
    ])
}

fn set(row: &mut Row, column: &str, cell: Cell) {
    row.insert(column.to_string(), cell);
}

fn num(row: &Row, column: &str) -> U256 {
    row.get(column).map_or(U256::ZERO, Cell::as_num)
}

/// A JSON array column as a sorted set of strings, with `value` added or removed.
fn set_member(row: &mut Row, column: &str, value: String, present: bool) {
    let mut items: Vec<String> = match row.get(column) {
        Some(Cell::Json(Value::Array(items))) => {
            items.iter().filter_map(|v| v.as_str().map(String::from)).collect()
        }
        _ => Vec::new(),
    };
    items.retain(|v| v != &value);
    if present {
        items.push(value);
    }
    items.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
    set(row, column, Cell::Json(Value::Array(items.into_iter().map(Value::String).collect())));
}

async fn load_or(
    rows: &mut Rows<'_>,
    table: &'static TableDef,
    key: &str,
    event: &ChainEvent,
) -> Result<Row, ProjectionError> {
    Ok(rows.get(table, key).await?.unwrap_or_else(|| base_row(event)))
}

#[async_trait]
impl Projection for Gemforce {
    fn name(&self) -> &'static str {
        "gemforce"
    }

    fn tables(&self) -> &'static [&'static TableDef] {
        &ALL
    }

    async fn apply(&self, event: &ChainEvent, rows: &mut Rows<'_>) -> Result<(), ProjectionError> {
        let Some(kind) = self.kinds.get(&event.signature).copied() else { return Ok(()) };
        if let Some(contracts) = &self.contracts
            && !contracts.contains(&(event.chain_id, event.address))
        {
            return Ok(());
        }
        if event.args.is_null() {
            return Ok(()); // topic0 known here but not decodable with this contract's ABI: stored raw only
        }
        let a = Args(event);
        let block = Cell::Int(event.block_number as i64);
        match kind {
            Kind::DealCreated | Kind::DealCreatedV2 | Kind::DealUpdated => {
                let id = a.num("tradeDealId")?;
                let k = key(event, id);
                let mut row = load_or(rows, &TRADE_DEALS, &k, event).await?;
                set(&mut row, "trade_deal_id", Cell::Num(id));
                set(&mut row, "name", Cell::Text(a.text("name")?));
                set(&mut row, "symbol", Cell::Text(a.text("symbol")?));
                set(&mut row, "interest_rate", Cell::Num(a.num("interestRate")?));
                let ratio = a.first_num(&["vabbToVabiRatio", "collateralToInterestRatio"])?;
                set(&mut row, "collateral_to_interest_ratio", Cell::Num(ratio));
                set(&mut row, "active", Cell::Bool(a.flag("active")?));
                set(
                    &mut row,
                    "collateral_address",
                    Cell::Text(a.first_text(&["vabbAddress", "collateralAddress"])?),
                );
                set(
                    &mut row,
                    "interest_address",
                    Cell::Text(a.first_text(&["vabiAddress", "interestAddress"])?),
                );
                set(&mut row, "usdc_address", Cell::Text(a.text("usdcAddress")?));
                if kind != Kind::DealUpdated {
                    set(&mut row, "nft_address", Cell::Text(a.text("nftAddress")?));
                    set(&mut row, "created_block", block.clone());
                    set(&mut row, "created_tx", Cell::Text(event.tx_hash.to_string()));
                    if let Some(creator) = event.tx_from {
                        set(&mut row, "creator", Cell::Text(creator.to_checksum(None)));
                    }
                    for column in ["participants", "invoices", "required_claim_topics"] {
                        row.entry(column.to_string()).or_insert(Cell::Json(Value::Array(Vec::new())));
                    }
                }
                if let (Kind::DealCreatedV2, Ok(mode)) = (kind, a.num("operationMode")) {
                    set(&mut row, "operation_mode", Cell::Int(mode.saturating_to::<u64>() as i64));
                }
                set(&mut row, "updated_block", block);
                rows.put(&TRADE_DEALS, &k, row).await?;
            }
            Kind::DealActivated
            | Kind::DealDeactivated
            | Kind::ParticipantAdded
            | Kind::ParticipantRemoved
            | Kind::ClaimTopicsSet
            | Kind::InvoiceDeposited
            | Kind::InvoiceWithdrawn
            | Kind::UsdcDeposited
            | Kind::UsdcWithdrawn
            | Kind::FullyFunded
            | Kind::InterestDistributed
            | Kind::FundingWithdrawn
            | Kind::Repaid
            | Kind::CollateralRedeemed => {
                let id = a.num("tradeDealId")?;
                let k = key(event, id);
                let mut row = load_or(rows, &TRADE_DEALS, &k, event).await?;
                set(&mut row, "trade_deal_id", Cell::Num(id));
                apply_deal_change(kind, &a, &mut row)?;
                set(&mut row, "updated_block", block);
                rows.put(&TRADE_DEALS, &k, row).await?;
            }
            Kind::Listed => self.listed(event, &a, rows).await?,
            Kind::Sold => {
                let index_key = key(event, format!("{}:{}", a.text("tokenAddress")?, a.num("tokenId")?));
                if let Some(item) =
                    rows.get(&MARKET_INDEX, &index_key).await?.and_then(|r| r.get("value").cloned())
                {
                    let Cell::Int(item) = item else { return Ok(()) };
                    let k = key(event, item);
                    let mut row = load_or(rows, &LISTINGS, &k, event).await?;
                    set(&mut row, "status", Cell::Text("sold".into()));
                    set(&mut row, "buyer", Cell::Text(a.text("owner")?));
                    set(&mut row, "updated_block", block);
                    rows.put(&LISTINGS, &k, row).await?;
                    rows.delete(&MARKET_INDEX, &index_key).await?;
                }
            }
            Kind::Delisted | Kind::Bid => {
                let item = a.num("itemId")?;
                let k = key(event, item);
                let Some(mut row) = rows.get(&LISTINGS, &k).await? else { return Ok(()) };
                if kind == Kind::Delisted {
                    set(&mut row, "status", Cell::Text("delisted".into()));
                    let index_key = key(
                        event,
                        format!(
                            "{}:{}",
                            row.get("nft_contract").and_then(Cell::as_text).unwrap_or_default(),
                            num(&row, "token_id")
                        ),
                    );
                    rows.delete(&MARKET_INDEX, &index_key).await?;
                } else {
                    let amount = a.num("amount")?;
                    if amount > num(&row, "highest_bid") {
                        set(&mut row, "highest_bid", Cell::Num(amount));
                        set(&mut row, "highest_bidder", Cell::Text(a.text("bidder")?));
                    }
                }
                set(&mut row, "updated_block", block);
                rows.put(&LISTINGS, &k, row).await?;
            }
            Kind::Transfer | Kind::Minted => {
                let id = a.num("tokenId")?;
                let k = key(event, id);
                let mut row = load_or(rows, &TOKENS, &k, event).await?;
                set(&mut row, "token_id", Cell::Num(id));
                if kind == Kind::Transfer {
                    set(&mut row, "owner", Cell::Text(a.text("to")?));
                } else {
                    set(&mut row, "owner", Cell::Text(a.text("owner")?));
                    set(&mut row, "attributes", Cell::Json(a.value("attributes")?.clone()));
                    set(&mut row, "minted_block", block.clone());
                    set(&mut row, "minted_tx", Cell::Text(event.tx_hash.to_string()));
                }
                set(&mut row, "updated_block", block);
                rows.put(&TOKENS, &k, row).await?;
            }
            Kind::CarbonInitialized | Kind::CarbonRetired => {
                let id = a.num("tokenId")?;
                let k = key(event, id);
                let mut row = load_or(rows, &CARBON_CREDITS, &k, event).await?;
                set(&mut row, "token_id", Cell::Num(id));
                if kind == Kind::CarbonInitialized {
                    let initial = a.num("initialBalance")?;
                    set(&mut row, "initial_balance", Cell::Num(initial));
                    set(&mut row, "retired", Cell::Num(U256::ZERO));
                    set(&mut row, "balance", Cell::Num(initial));
                } else {
                    let retired = num(&row, "retired") + a.num("amount")?;
                    set(&mut row, "retired", Cell::Num(retired));
                    set(&mut row, "balance", Cell::Num(a.num("remainingBalance")?));
                }
                set(&mut row, "updated_block", block);
                rows.put(&CARBON_CREDITS, &k, row).await?;
            }
            Kind::IdentityAdded | Kind::IdentityRemoved => {
                let account = a.text("_address")?;
                let k = key(event, &account);
                let mut row = load_or(rows, &IDENTITIES, &k, event).await?;
                set(&mut row, "account", Cell::Text(account));
                set(&mut row, "identity", Cell::Text(a.text("identity")?));
                set(&mut row, "trusted_issuer", Cell::Text(a.text("trustedIssuer")?));
                set(&mut row, "active", Cell::Bool(kind == Kind::IdentityAdded));
                row.entry("claim_topics".to_string()).or_insert(Cell::Json(Value::Array(Vec::new())));
                set(&mut row, "updated_block", block);
                rows.put(&IDENTITIES, &k, row).await?;
            }
            Kind::ClaimAdded | Kind::ClaimRemoved => {
                let identity = a.text("identity")?;
                let topic = a.num("claimTopic")?;
                let k = key(event, format!("{identity}:{topic}"));
                let mut row = load_or(rows, &CLAIMS, &k, event).await?;
                set(&mut row, "identity", Cell::Text(identity));
                set(&mut row, "claim_topic", Cell::Num(topic));
                set(&mut row, "issuer", Cell::Text(a.text("trustedIssuer")?));
                if kind == Kind::ClaimAdded {
                    set(&mut row, "claim", Cell::Text(a.text("claim")?));
                }
                set(&mut row, "active", Cell::Bool(kind == Kind::ClaimAdded));
                set(&mut row, "updated_block", block);
                rows.put(&CLAIMS, &k, row).await?;
            }
            Kind::ClaimsSet => {
                // Claims are set on an identity contract; keep them on the claims rows of that identity.
                let identity = a.text("identity")?;
                let topics = a.value("claims")?.as_array().cloned().unwrap_or_default();
                for topic in topics.iter().filter_map(Value::as_str) {
                    let topic: U256 = topic.parse().map_err(|_| a.bad("claims"))?;
                    let k = key(event, format!("{identity}:{topic}"));
                    let mut row = load_or(rows, &CLAIMS, &k, event).await?;
                    set(&mut row, "identity", Cell::Text(identity.clone()));
                    set(&mut row, "claim_topic", Cell::Num(topic));
                    set(&mut row, "issuer", Cell::Text(a.text("trustedIssuer")?));
                    set(&mut row, "active", Cell::Bool(true));
                    set(&mut row, "updated_block", block.clone());
                    rows.put(&CLAIMS, &k, row).await?;
                }
            }
            Kind::TopicAdded | Kind::TopicRemoved => {
                let topic = a.num("claimTopic")?;
                let k = key(event, topic);
                let mut row = load_or(rows, &CLAIM_TOPICS, &k, event).await?;
                set(&mut row, "claim_topic", Cell::Num(topic));
                set(&mut row, "active", Cell::Bool(kind == Kind::TopicAdded));
                set(&mut row, "updated_block", block);
                rows.put(&CLAIM_TOPICS, &k, row).await?;
            }
            Kind::IssuerAdded | Kind::IssuerRemoved | Kind::IssuerTopicAdded => {
                let issuer = a.first_text(&["trustedIssuer", "issuer"])?;
                let k = key(event, &issuer);
                let mut row = load_or(rows, &TRUSTED_ISSUERS, &k, event).await?;
                set(&mut row, "issuer", Cell::Text(issuer));
                row.entry("claim_topics".to_string()).or_insert(Cell::Json(Value::Array(Vec::new())));
                match kind {
                    Kind::IssuerAdded => {
                        set(&mut row, "active", Cell::Bool(true));
                        set(&mut row, "claim_topics", Cell::Json(a.value("claimTopics")?.clone()));
                    }
                    Kind::IssuerRemoved => set(&mut row, "active", Cell::Bool(false)),
                    _ => {
                        row.entry("active".to_string()).or_insert(Cell::Bool(false));
                        set_member(&mut row, "claim_topics", a.text("claimTopic")?, true);
                    }
                }
                set(&mut row, "updated_block", block);
                rows.put(&TRUSTED_ISSUERS, &k, row).await?;
            }
            Kind::IdentityCreated => {
                let identity = a.text("identity")?;
                let k = key(event, &identity);
                let mut row = base_row(event);
                set(&mut row, "identity", Cell::Text(identity));
                set(&mut row, "owner", Cell::Text(a.text("owner")?));
                set(&mut row, "created_block", block);
                rows.put(&IDENTITY_CONTRACTS, &k, row).await?;
            }
            Kind::DiamondCut => self.diamond_cut(event, &a, rows).await?,
        }
        Ok(())
    }
}

impl Gemforce {
    /// A new listing gets the next item id of its marketplace (ids count listings from 1, as the
    /// contract assigns them); the (NFT, token) index points at it until it is sold or delisted.
    async fn listed(
        &self,
        event: &ChainEvent,
        a: &Args<'_>,
        rows: &mut Rows<'_>,
    ) -> Result<(), ProjectionError> {
        let counter_key = key(event, "listings");
        let next = match rows.get(&MARKET_INDEX, &counter_key).await?.and_then(|r| r.get("value").cloned()) {
            Some(Cell::Int(n)) => n + 1,
            _ => 1,
        };
        rows.put(&MARKET_INDEX, &counter_key, Row::from([("value".to_string(), Cell::Int(next))])).await?;
        let nft = a.text("nftContract")?;
        let token = a.num("tokenId")?;
        let mut row = base_row(event);
        set(&mut row, "item_id", Cell::Int(next));
        set(&mut row, "nft_contract", Cell::Text(nft.clone()));
        set(&mut row, "token_id", Cell::Num(token));
        set(&mut row, "seller", Cell::Text(a.text("seller")?));
        set(&mut row, "receiver", Cell::Text(a.text("receiver")?));
        set(&mut row, "escrow", Cell::Text(a.text("owner")?));
        set(&mut row, "price", Cell::Num(a.num("price")?));
        set(&mut row, "payment_token", Cell::Text(a.text("paymentToken")?));
        set(&mut row, "status", Cell::Text(if a.flag("sold")? { "sold" } else { "listed" }.into()));
        set(&mut row, "highest_bid", Cell::Num(U256::ZERO));
        set(&mut row, "listed_block", Cell::Int(event.block_number as i64));
        set(&mut row, "listed_tx", Cell::Text(event.tx_hash.to_string()));
        set(&mut row, "updated_block", Cell::Int(event.block_number as i64));
        rows.put(&LISTINGS, &key(event, next), row).await?;
        let index_key = key(event, format!("{nft}:{token}"));
        rows.put(&MARKET_INDEX, &index_key, Row::from([("value".to_string(), Cell::Int(next))])).await?;
        Ok(())
    }

    /// Each cut entry is recorded in the facet history; the selector table follows Add/Replace/Remove.
    async fn diamond_cut(
        &self,
        event: &ChainEvent,
        a: &Args<'_>,
        rows: &mut Rows<'_>,
    ) -> Result<(), ProjectionError> {
        let cuts = a.value("_diamondCut")?.as_array().cloned().unwrap_or_default();
        for (position, cut) in cuts.iter().enumerate() {
            let facet = cut["facetAddress"].as_str().ok_or_else(|| a.bad("_diamondCut"))?.to_string();
            let action = match cut["action"].as_str() {
                Some("0") => "add",
                Some("1") => "replace",
                Some("2") => "remove",
                _ => return Err(a.bad("_diamondCut")),
            };
            let selectors = cut["functionSelectors"].as_array().cloned().unwrap_or_default();
            let mut history = base_row(event);
            set(&mut history, "block_number", Cell::Int(event.block_number as i64));
            set(&mut history, "log_index", Cell::Int(event.log_index as i64));
            set(&mut history, "position", Cell::Int(position as i64));
            set(&mut history, "action", Cell::Text(action.into()));
            set(&mut history, "facet", Cell::Text(facet.clone()));
            set(&mut history, "selectors", Cell::Json(Value::Array(selectors.clone())));
            set(&mut history, "tx_hash", Cell::Text(event.tx_hash.to_string()));
            let history_key = key(event, format!("{}:{}:{position}", event.block_number, event.log_index));
            rows.put(&FACET_HISTORY, &history_key, history).await?;
            for selector in selectors.iter().filter_map(Value::as_str) {
                let k = key(event, selector);
                if action == "remove" {
                    rows.delete(&DIAMOND_FACETS, &k).await?;
                } else {
                    let mut row = base_row(event);
                    set(&mut row, "selector", Cell::Text(selector.to_string()));
                    set(&mut row, "facet", Cell::Text(facet.clone()));
                    set(&mut row, "updated_block", Cell::Int(event.block_number as i64));
                    rows.put(&DIAMOND_FACETS, &k, row).await?;
                }
            }
        }
        Ok(())
    }
}

/// The trade-deal lifecycle, one event at a time.
fn apply_deal_change(kind: Kind, a: &Args<'_>, row: &mut Row) -> Result<(), ProjectionError> {
    let add = |row: &mut Row, column: &str, amount: U256| {
        let total = num(row, column) + amount;
        set(row, column, Cell::Num(total));
    };
    match kind {
        Kind::DealActivated => set(row, "active", Cell::Bool(true)),
        Kind::DealDeactivated => set(row, "active", Cell::Bool(false)),
        Kind::ParticipantAdded => set_member(row, "participants", a.text("participant")?, true),
        Kind::ParticipantRemoved => set_member(row, "participants", a.text("participant")?, false),
        Kind::ClaimTopicsSet => {
            set(row, "required_claim_topics", Cell::Json(a.value("claimTopics")?.clone()));
        }
        Kind::InvoiceDeposited => set_member(row, "invoices", a.num("tokenId")?.to_string(), true),
        Kind::InvoiceWithdrawn => set_member(row, "invoices", a.num("tokenId")?.to_string(), false),
        Kind::UsdcDeposited => add(row, "funded", a.num("amount")?),
        Kind::UsdcWithdrawn => {
            let funded = num(row, "funded").saturating_sub(a.num("amount")?);
            set(row, "funded", Cell::Num(funded));
        }
        Kind::FullyFunded => {
            set(row, "fully_funded", Cell::Bool(true));
            set(row, "funding_target", Cell::Num(a.num("fundingTarget")?));
        }
        Kind::InterestDistributed => add(row, "interest_distributed", a.num("totalInterest")?),
        Kind::FundingWithdrawn => add(row, "funding_withdrawn", a.num("amount")?),
        Kind::Repaid => {
            add(row, "repaid", a.num("amount")?);
            set(row, "fully_repaid", Cell::Bool(a.flag("fullyRepaid")?));
        }
        Kind::CollateralRedeemed => {
            add(row, "collateral_redeemed", a.first_num(&["vabbAmount", "collateralAmount"])?);
            add(row, "usdc_redeemed", a.num("usdcAmount")?);
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap as Map;

    use alloy_primitives::{Bytes, keccak256};
    use gemgate_domain::{ENVELOPE_SCHEMA, EventId, EventStatus, FinalityLevel, StoreError};
    use serde_json::json;

    use super::*;
    use crate::rows::RowLoader;

    struct Empty(Map<String, Row>);

    #[async_trait]
    impl RowLoader for Empty {
        async fn load(&mut self, _: &'static TableDef, key: &str) -> Result<Option<Row>, StoreError> {
            Ok(self.0.get(key).cloned())
        }
    }

    fn event(signature: &str, name: &str, block: u64, args: Value) -> ChainEvent {
        ChainEvent {
            id: EventId::derive(1, B256::with_last_byte(block as u8), 0),
            chain_id: 1,
            block_number: block,
            block_hash: B256::with_last_byte(block as u8),
            tx_hash: B256::with_last_byte(0xee),
            tx_index: 0,
            log_index: 0,
            address: Address::repeat_byte(0xd1),
            contract: "gemforce".into(),
            event: name.into(),
            signature: keccak256(signature),
            args,
            topics: Vec::new(),
            data: Bytes::new(),
            tx_from: None,
            status: EventStatus::Canonical,
            finality: FinalityLevel::Latest,
            schema: ENVELOPE_SCHEMA,
        }
    }

    /// The newer generation (collateral/interest naming, `OperationMode` appended) lands in the same record
    /// shape as the first.
    #[tokio::test]
    async fn both_trade_deal_generations_map_to_one_record() {
        let a = Address::repeat_byte(0xaa).to_checksum(None);
        let created = event(
            "TradeDealCreated(uint256,string,string,uint256,uint256,bool,address,address,address,address,uint8)",
            "TradeDealCreated",
            10,
            json!({"tradeDealId": "7", "name": "New gen", "symbol": "NG", "interestRate": "450",
                   "collateralToInterestRatio": "3", "active": true, "nftAddress": a, "collateralAddress": a,
                   "interestAddress": a, "usdcAddress": a, "operationMode": "1"}),
        );
        let redeemed = event(
            "CollateralTokensRedeemed(uint256,address,uint256,uint256)",
            "CollateralTokensRedeemed",
            11,
            json!({"tradeDealId": "7", "redeemer": a, "collateralAmount": "100", "usdcAmount": "104"}),
        );
        let old_redeemed = event(
            "VABBTokensRedeemed(uint256,address,uint256,uint256)",
            "VABBTokensRedeemed",
            12,
            json!({"tradeDealId": "7", "redeemer": a, "vabbAmount": "50", "usdcAmount": "52"}),
        );
        let mut db = Empty(Map::new());
        let mut rows = Rows::new(&mut db, 0);
        let projection = Gemforce::new();
        for e in [&created, &redeemed, &old_redeemed] {
            rows.at_block(e.block_number);
            projection.apply(e, &mut rows).await.unwrap();
        }
        let (journal, writes) = rows.finish();
        assert_eq!(writes.len(), 1, "one trade deal record");
        let row = writes[0].row.as_ref().unwrap();
        assert_eq!(row["collateral_to_interest_ratio"], Cell::Num(U256::from(3)));
        assert_eq!(row["operation_mode"], Cell::Int(1));
        assert_eq!(row["collateral_redeemed"], Cell::Num(U256::from(150)));
        assert_eq!(row["usdc_redeemed"], Cell::Num(U256::from(156)));
        assert_eq!(journal.len(), 3, "one before image per block above finality");
    }

    #[tokio::test]
    async fn a_scoped_projection_ignores_other_contracts() {
        let transfer = event(
            "Transfer(address,address,uint256)",
            "Transfer",
            5,
            json!({"from": "0x0", "to": "0x1", "value": "9"}),
        );
        let mut db = Empty(Map::new());
        let mut rows = Rows::new(&mut db, 0);
        let projection = Gemforce::for_contracts([(1, Address::repeat_byte(0x77))]);
        projection.apply(&transfer, &mut rows).await.unwrap();
        assert!(
            rows.finish().1.is_empty(),
            "an ERC-20 Transfer of another contract is not a Gemforce NFT move"
        );
    }
}
