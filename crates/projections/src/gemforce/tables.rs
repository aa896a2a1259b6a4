//! The Gemforce projection tables. Every table has a text primary key `key` (`<chain>:<contract>:<id>`)
//! besides these columns; the DDL is in the store's migrations and must match.

use crate::rows::ColumnKind::{Bool, Int, Json, Num, Text};
use crate::rows::{Column, TableDef};

macro_rules! columns {
    ($($name:literal : $kind:expr),* $(,)?) => { &[$(Column { name: $name, kind: $kind }),*] };
}

pub static TRADE_DEALS: TableDef = TableDef {
    name: "trade_deals",
    columns: columns![
        "chain_id": Int, "contract": Text, "trade_deal_id": Num, "name": Text, "symbol": Text,
        "interest_rate": Num, "collateral_to_interest_ratio": Num, "active": Bool, "operation_mode": Int,
        "nft_address": Text, "collateral_address": Text, "interest_address": Text, "usdc_address": Text,
        "funding_target": Num, "funded": Num, "fully_funded": Bool, "funding_withdrawn": Num, "repaid": Num,
        "fully_repaid": Bool, "interest_distributed": Num, "collateral_redeemed": Num, "usdc_redeemed": Num,
        "participants": Json, "invoices": Json, "required_claim_topics": Json,
        "created_block": Int, "created_tx": Text, "creator": Text, "updated_block": Int,
    ],
};

pub static LISTINGS: TableDef = TableDef {
    name: "listings",
    columns: columns![
        "chain_id": Int, "contract": Text, "item_id": Int, "nft_contract": Text, "token_id": Num, "seller": Text,
        "receiver": Text, "escrow": Text, "price": Num, "payment_token": Text, "status": Text, "buyer": Text,
        "highest_bid": Num, "highest_bidder": Text, "listed_block": Int, "listed_tx": Text, "updated_block": Int,
    ],
};

/// Marketplace bookkeeping: the listing counter (item ids count listings from 1) and the active listing of
/// each (NFT, token).
pub static MARKET_INDEX: TableDef = TableDef { name: "market_index", columns: columns!["value": Int] };

pub static TOKENS: TableDef = TableDef {
    name: "gemforce_tokens",
    columns: columns![
        "chain_id": Int, "contract": Text, "token_id": Num, "owner": Text, "attributes": Json,
        "minted_block": Int, "minted_tx": Text, "updated_block": Int,
    ],
};

pub static CARBON_CREDITS: TableDef = TableDef {
    name: "carbon_credits",
    columns: columns![
        "chain_id": Int, "contract": Text, "token_id": Num, "initial_balance": Num, "retired": Num,
        "balance": Num, "updated_block": Int,
    ],
};

pub static IDENTITIES: TableDef = TableDef {
    name: "identities",
    columns: columns![
        "chain_id": Int, "contract": Text, "account": Text, "identity": Text, "trusted_issuer": Text,
        "active": Bool, "claim_topics": Json, "updated_block": Int,
    ],
};

pub static CLAIMS: TableDef = TableDef {
    name: "claims",
    columns: columns![
        "chain_id": Int, "contract": Text, "identity": Text, "claim_topic": Num, "issuer": Text, "claim": Text,
        "active": Bool, "updated_block": Int,
    ],
};

pub static CLAIM_TOPICS: TableDef = TableDef {
    name: "claim_topics",
    columns: columns!["chain_id": Int, "contract": Text, "claim_topic": Num, "active": Bool, "updated_block": Int],
};

pub static TRUSTED_ISSUERS: TableDef = TableDef {
    name: "trusted_issuers",
    columns: columns![
        "chain_id": Int, "contract": Text, "issuer": Text, "claim_topics": Json, "active": Bool, "updated_block": Int,
    ],
};

pub static IDENTITY_CONTRACTS: TableDef = TableDef {
    name: "identity_contracts",
    columns: columns!["chain_id": Int, "contract": Text, "identity": Text, "owner": Text, "created_block": Int],
};

pub static DIAMOND_FACETS: TableDef = TableDef {
    name: "diamond_facets",
    columns: columns!["chain_id": Int, "contract": Text, "selector": Text, "facet": Text, "updated_block": Int],
};

pub static FACET_HISTORY: TableDef = TableDef {
    name: "facet_history",
    columns: columns![
        "chain_id": Int, "contract": Text, "block_number": Int, "log_index": Int, "position": Int,
        "action": Text, "facet": Text, "selectors": Json, "tx_hash": Text,
    ],
};

pub static ALL: [&TableDef; 12] = [
    &TRADE_DEALS,
    &LISTINGS,
    &MARKET_INDEX,
    &TOKENS,
    &CARBON_CREDITS,
    &IDENTITIES,
    &CLAIMS,
    &CLAIM_TOPICS,
    &TRUSTED_ISSUERS,
    &IDENTITY_CONTRACTS,
    &DIAMOND_FACETS,
    &FACET_HISTORY,
];
