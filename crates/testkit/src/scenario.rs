//! A deterministic, seeded traffic scenario over the sample Gemforce system. Each round walks a trade deal
//! through its whole lifecycle, mints NFTs with attributes, initializes and retires carbon credits, lists,
//! bids on, sells and delists on the marketplace, creates identities and claims, adds claim topics through
//! both registries (the two `ClaimTopicAdded` events), moves treasury balances and hands ownership over and back; round 2 upgrades a facet
//! (a `DiamondCut` with Replace). Every Gemforce event is emitted at least once per round, across many blocks.
//!
//! The report records what the scenario implies (`ExpectedTradeDeal`), so projection tests can compare the
//! indexer's rows with it field by field.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionReceipt;

use crate::artifacts::all_events;
use crate::bindings::{
    CarbonCreditFacet, ClaimTopicsRegistryFacet, DiamondCutFacet, GemforceMinterFacet, IdentityFactory,
    IdentityRegistryFacet, InvoiceNFT, MarketplaceFacet, OwnershipFacet, SampleERC20, TradeDealFacet,
    Treasury, TrustedIssuersRegistryFacet,
};
use crate::deploy::{add_cuts, deploy_artifact};
use crate::{Deployment, Result, SplitMix64, TestkitError, confirm};

/// USDC has 6 decimals.
const USDC: u64 = 1_000_000;
const ETHER: u128 = 1_000_000_000_000_000_000;

/// How much traffic to make.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioOptions {
    pub seed: u64,
    /// Each round emits every Gemforce event at least once.
    pub rounds: u32,
}

impl Default for ScenarioOptions {
    fn default() -> Self {
        Self { seed: 7, rounds: 3 }
    }
}

/// What the scenario did and what it implies.
#[derive(Debug, Clone, Default)]
pub struct ScenarioReport {
    pub first_block: u64,
    pub last_block: u64,
    pub transactions: u64,
    /// Logs emitted, by event signature (`ClaimTopicAdded(uint256)`), counted from the receipts.
    pub events: BTreeMap<String, u64>,
    pub trade_deals: Vec<ExpectedTradeDeal>,
    /// Facets replaced during the scenario: name and new address.
    pub upgraded_facets: Vec<(String, Address)>,
}

impl ScenarioReport {
    pub fn total_events(&self) -> u64 {
        self.events.values().sum()
    }
}

/// The state of one trade deal after the scenario, as its events imply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTradeDeal {
    pub id: U256,
    pub name: String,
    pub symbol: String,
    /// Basis points.
    pub interest_rate: U256,
    pub vabb_to_vabi_ratio: U256,
    pub active: bool,
    pub nft_address: Address,
    pub vabb_address: Address,
    pub vabi_address: Address,
    pub usdc_address: Address,
    pub funding_target: U256,
    /// USDC deposited minus USDC withdrawn by participants.
    pub funded: U256,
    pub fully_funded: bool,
    /// Funding drawn by the borrower.
    pub withdrawn: U256,
    pub repaid: U256,
    pub fully_repaid: bool,
    pub interest_distributed: U256,
    pub vabb_redeemed: U256,
    pub usdc_redeemed: U256,
    pub participants: BTreeSet<Address>,
    /// Invoice NFTs still deposited.
    pub invoices: BTreeSet<U256>,
    pub required_claim_topics: Vec<U256>,
    pub created_block: u64,
    pub created_tx: B256,
}

/// The scenario over a deployment; `run` drives it.
#[derive(Debug)]
pub struct Scenario<'a> {
    deployment: &'a Deployment,
    accounts: Vec<Address>,
    options: ScenarioOptions,
}

/// Sends transactions and keeps the tally.
struct Driver {
    provider: DynProvider,
    signatures: HashMap<B256, String>,
    report: ScenarioReport,
}

impl Driver {
    async fn exec<D: CallDecoder>(
        &mut self,
        what: &str,
        call: CallBuilder<&DynProvider, D>,
    ) -> Result<TransactionReceipt> {
        let pending = call.send().await.map_err(TestkitError::contract(what))?;
        let receipt = confirm(&self.provider, pending, what).await?;
        self.tally(&receipt);
        Ok(receipt)
    }

    fn tally(&mut self, receipt: &TransactionReceipt) {
        self.report.transactions += 1;
        if let Some(block) = receipt.block_number {
            if self.report.first_block == 0 {
                self.report.first_block = block;
            }
            self.report.last_block = self.report.last_block.max(block);
        }
        for log in receipt.inner.logs() {
            let name = match log.topics().first() {
                Some(topic0) => {
                    self.signatures.get(topic0).cloned().unwrap_or_else(|| format!("unknown({topic0})"))
                }
                None => "anonymous".to_string(),
            };
            *self.report.events.entry(name).or_default() += 1;
        }
    }
}

/// The sample contracts bound to the Diamond and companions.
struct Contracts {
    trade: TradeDealFacet::TradeDealFacetInstance<DynProvider>,
    market: MarketplaceFacet::MarketplaceFacetInstance<DynProvider>,
    minter: GemforceMinterFacet::GemforceMinterFacetInstance<DynProvider>,
    carbon: CarbonCreditFacet::CarbonCreditFacetInstance<DynProvider>,
    identities: IdentityRegistryFacet::IdentityRegistryFacetInstance<DynProvider>,
    topics: ClaimTopicsRegistryFacet::ClaimTopicsRegistryFacetInstance<DynProvider>,
    issuers: TrustedIssuersRegistryFacet::TrustedIssuersRegistryFacetInstance<DynProvider>,
    cutter: DiamondCutFacet::DiamondCutFacetInstance<DynProvider>,
    ownership: OwnershipFacet::OwnershipFacetInstance<DynProvider>,
    factory: IdentityFactory::IdentityFactoryInstance<DynProvider>,
    treasury: Treasury::TreasuryInstance<DynProvider>,
    usdc: SampleERC20::SampleERC20Instance<DynProvider>,
    invoices: InvoiceNFT::InvoiceNFTInstance<DynProvider>,
}

/// The roles the dev accounts play.
#[derive(Clone, Copy)]
struct Roles {
    owner: Address,
    investors: [Address; 4],
    seller: Address,
    buyer: Address,
    second_issuer: Address,
    fee_receiver: Address,
    issuer: Address,
}

impl<'a> Scenario<'a> {
    /// `accounts` are unlocked dev accounts; the first must be the deployment's owner; ten are needed.
    pub fn new(deployment: &'a Deployment, accounts: &[Address], options: ScenarioOptions) -> Result<Self> {
        if accounts.len() < 10 || accounts[0] != deployment.owner {
            return Err(TestkitError::Anvil(
                "the scenario needs ten unlocked accounts, the first being the owner".into(),
            ));
        }
        Ok(Self { deployment, accounts: accounts.to_vec(), options })
    }

    pub async fn run(&self, provider: &DynProvider) -> Result<ScenarioReport> {
        let d = self.deployment;
        let p = provider.clone();
        let c = Contracts {
            trade: TradeDealFacet::new(d.diamond, p.clone()),
            market: MarketplaceFacet::new(d.diamond, p.clone()),
            minter: GemforceMinterFacet::new(d.diamond, p.clone()),
            carbon: CarbonCreditFacet::new(d.diamond, p.clone()),
            identities: IdentityRegistryFacet::new(d.diamond, p.clone()),
            topics: ClaimTopicsRegistryFacet::new(d.diamond, p.clone()),
            issuers: TrustedIssuersRegistryFacet::new(d.diamond, p.clone()),
            cutter: DiamondCutFacet::new(d.diamond, p.clone()),
            ownership: OwnershipFacet::new(d.diamond, p.clone()),
            factory: IdentityFactory::new(d.identity_factory, p.clone()),
            treasury: Treasury::new(d.treasury, p.clone()),
            usdc: SampleERC20::new(d.usdc, p.clone()),
            invoices: InvoiceNFT::new(d.invoice_nft, p.clone()),
        };
        let a = &self.accounts;
        let roles = Roles {
            owner: a[0],
            investors: [a[1], a[2], a[3], a[4]],
            seller: a[5],
            buyer: a[6],
            second_issuer: a[7],
            fee_receiver: a[8],
            issuer: a[9],
        };
        let signatures = all_events()?.iter().map(|e| (e.selector(), e.signature())).collect();
        let mut driver = Driver { provider: p.clone(), signatures, report: ScenarioReport::default() };
        let mut rng = SplitMix64::new(self.options.seed);

        self.setup(&mut driver, &c, roles).await?;
        for round in 1..=self.options.rounds {
            if round == 2 {
                self.upgrade_trade_deal_facet(&mut driver, &c, roles).await?;
            }
            self.round(&mut driver, &c, roles, round, &mut rng).await?;
        }
        Ok(driver.report)
    }

    async fn setup(&self, dr: &mut Driver, c: &Contracts, r: Roles) -> Result<()> {
        let supply = U256::from(10_000_000 * USDC);
        for holder in [r.owner, r.investors[0], r.investors[1], r.investors[2], r.investors[3], r.buyer] {
            dr.exec("mint USDC", c.usdc.mint(holder, supply).from(r.owner)).await?;
            dr.exec("approve USDC", c.usdc.approve(self.deployment.diamond, U256::MAX).from(holder)).await?;
        }
        dr.exec(
            "approve invoices",
            c.invoices.setApprovalForAll(self.deployment.diamond, true).from(r.owner),
        )
        .await?;
        for topic in [1u64, 2] {
            dr.exec("addClaimTopic", c.topics.addClaimTopic(U256::from(topic)).from(r.owner)).await?;
        }
        dr.exec(
            "addTrustedIssuer",
            c.issuers.addTrustedIssuer(r.issuer, vec![U256::from(1), U256::from(2)]).from(r.owner),
        )
        .await?;
        Ok(())
    }

    /// Replaces every function of `TradeDealFacet` with a fresh deployment of it, as an upgrade would.
    async fn upgrade_trade_deal_facet(&self, dr: &mut Driver, c: &Contracts, r: Roles) -> Result<()> {
        let facet = deploy_artifact(&dr.provider, r.owner, "TradeDealFacet", Vec::new()).await?;
        dr.report.transactions += 1;
        let cuts = add_cuts(&[("TradeDealFacet".to_string(), facet)], 1)?;
        dr.exec("diamondCut (replace)", c.cutter.diamondCut(cuts, Address::ZERO, Bytes::new()).from(r.owner))
            .await?;
        dr.report.upgraded_facets.push(("TradeDealFacet".to_string(), facet));
        Ok(())
    }

    async fn round(
        &self,
        dr: &mut Driver,
        c: &Contracts,
        r: Roles,
        round: u32,
        rng: &mut SplitMix64,
    ) -> Result<()> {
        let fee = U256::from(20_000 + 5_000 * u64::from(round));
        let receivers = vec![crate::bindings::marketplace_facet::LibGemforce::FeeReceiver {
            receiver: r.fee_receiver,
            sharePerMillion: fee,
        }];
        dr.exec("initializeMarketplace", c.market.initializeMarketplace(receivers).from(r.owner)).await?;

        self.trade_deal(dr, c, r, round, rng).await?;
        let (first_token, second_token) = self.mint_and_trade(dr, c, r, round, rng).await?;
        self.identity(dr, c, r, round).await?;

        let deposits = vec![
            Treasury::Deposit { tokenId: first_token, amount: U256::from(10 * u64::from(round)) },
            Treasury::Deposit { tokenId: second_token, amount: U256::from(5) },
        ];
        dr.exec("treasury deposit", c.treasury.deposit(deposits).from(r.owner)).await?;
        dr.exec("treasury withdraw", c.treasury.withdraw(vec![first_token], U256::from(1)).from(r.owner))
            .await?;

        // Ownership handed to a second key and back, as a key rotation rehearsal would.
        dr.exec("transferOwnership", c.ownership.transferOwnership(r.second_issuer).from(r.owner)).await?;
        dr.exec("transferOwnership", c.ownership.transferOwnership(r.owner).from(r.second_issuer)).await?;

        // Blocks without Gemforce traffic, as on a real chain.
        let empty = rng.range(1, 3);
        dr.provider
            .raw_request::<_, serde_json::Value>("anvil_mine".into(), (U256::from(empty),))
            .await
            .map_err(TestkitError::rpc("anvil_mine"))?;
        Ok(())
    }

    async fn trade_deal(
        &self,
        dr: &mut Driver,
        c: &Contracts,
        r: Roles,
        round: u32,
        rng: &mut SplitMix64,
    ) -> Result<()> {
        let d = self.deployment;
        let id = U256::from(dr.report.trade_deals.len() + 1);
        let target = U256::from(rng.range(2, 6) * 50_000 * USDC);
        let rate = U256::from(rng.range(300, 1200));
        let ratio = U256::from(rng.range(1, 4));
        let name = format!("Trade Deal {round}");
        let symbol = format!("TD{round}");
        let receipt = dr
            .exec(
                "createTradeDeal",
                c.trade
                    .createTradeDeal(
                        name.clone(),
                        symbol.clone(),
                        rate,
                        ratio,
                        d.invoice_nft,
                        d.vabb,
                        d.vabi,
                        d.usdc,
                        target,
                    )
                    .from(r.owner),
            )
            .await?;
        let mut deal = ExpectedTradeDeal {
            id,
            name,
            symbol,
            interest_rate: rate,
            vabb_to_vabi_ratio: ratio,
            active: true,
            nft_address: d.invoice_nft,
            vabb_address: d.vabb,
            vabi_address: d.vabi,
            usdc_address: d.usdc,
            funding_target: target,
            funded: U256::ZERO,
            fully_funded: false,
            withdrawn: U256::ZERO,
            repaid: U256::ZERO,
            fully_repaid: false,
            interest_distributed: U256::ZERO,
            vabb_redeemed: U256::ZERO,
            usdc_redeemed: U256::ZERO,
            participants: BTreeSet::new(),
            invoices: BTreeSet::new(),
            required_claim_topics: Vec::new(),
            created_block: receipt.block_number.unwrap_or_default(),
            created_tx: receipt.transaction_hash,
        };

        // A revision: the rate goes up by 50 basis points and the name gets a suffix.
        deal.interest_rate += U256::from(50);
        deal.name = format!("{} (rev 2)", deal.name);
        dr.exec(
            "updateTradeDeal",
            c.trade
                .updateTradeDeal(
                    id,
                    deal.name.clone(),
                    deal.symbol.clone(),
                    deal.interest_rate,
                    ratio,
                    d.vabb,
                    d.vabi,
                    d.usdc,
                )
                .from(r.owner),
        )
        .await?;

        for investor in r.investors {
            dr.exec("addTradeDealParticipant", c.trade.addTradeDealParticipant(id, investor).from(r.owner))
                .await?;
            deal.participants.insert(investor);
        }
        dr.exec(
            "removeTradeDealParticipant",
            c.trade.removeTradeDealParticipant(id, r.investors[3]).from(r.owner),
        )
        .await?;
        deal.participants.remove(&r.investors[3]);

        deal.required_claim_topics = vec![U256::from(1), U256::from(2)];
        dr.exec(
            "setTradeDealRequiredClaimTopics",
            c.trade.setTradeDealRequiredClaimTopics(id, deal.required_claim_topics.clone()).from(r.owner),
        )
        .await?;
        dr.exec("deactivateTradeDeal", c.trade.deactivateTradeDeal(id).from(r.owner)).await?;
        dr.exec("activateTradeDeal", c.trade.activateTradeDeal(id).from(r.owner)).await?;

        // Two invoices deposited as collateral; the second is taken back.
        let mut invoices = Vec::new();
        for _ in 0..2 {
            dr.exec("mint invoice", c.invoices.mint(r.owner).from(r.owner)).await?;
            let token =
                c.invoices.nextTokenId().call().await.map_err(TestkitError::contract("nextTokenId"))?;
            dr.exec("depositInvoice", c.trade.depositInvoice(id, token).from(r.owner)).await?;
            deal.invoices.insert(token);
            invoices.push(token);
        }
        dr.exec("withdrawInvoice", c.trade.withdrawInvoice(id, invoices[1]).from(r.owner)).await?;
        deal.invoices.remove(&invoices[1]);

        // Funding: the first investor over-deposits and takes the excess back before the target is reached.
        let third = target / U256::from(3);
        let shares = [third, third, target - third - third];
        let extra = U256::from(rng.range(1, 9) * 1_000 * USDC);
        dr.exec("depositUSDC", c.trade.depositUSDC(id, shares[0] + extra).from(r.investors[0])).await?;
        dr.exec("withdrawUSDC", c.trade.withdrawUSDC(id, extra).from(r.investors[0])).await?;
        dr.exec("depositUSDC", c.trade.depositUSDC(id, shares[1]).from(r.investors[1])).await?;
        dr.exec("depositUSDC", c.trade.depositUSDC(id, shares[2]).from(r.investors[2])).await?;
        deal.funded = target;
        deal.fully_funded = true;

        dr.exec(
            "withdrawTradeDealFunding",
            c.trade.withdrawTradeDealFunding(id, r.owner, target).from(r.owner),
        )
        .await?;
        deal.withdrawn = target;

        let interest = target * deal.interest_rate / U256::from(10_000);
        dr.exec("distributeInterest", c.trade.distributeInterest(id, interest).from(r.owner)).await?;
        deal.interest_distributed = interest;

        let first = target / U256::from(2);
        dr.exec("repayTradeDeal", c.trade.repayTradeDeal(id, first).from(r.owner)).await?;
        dr.exec("repayTradeDeal", c.trade.repayTradeDeal(id, target - first).from(r.owner)).await?;
        deal.repaid = target;
        deal.fully_repaid = true;

        for (investor, share) in r.investors[..2].iter().zip(shares) {
            let vabb = share / U256::from(2);
            dr.exec("redeemVABBTokens", c.trade.redeemVABBTokens(id, vabb).from(*investor)).await?;
            deal.vabb_redeemed += vabb;
            deal.usdc_redeemed += vabb + vabb * deal.interest_rate / U256::from(10_000);
        }
        dr.report.trade_deals.push(deal);
        Ok(())
    }

    /// Mints two NFTs to the seller, gives the first carbon credits and sells it for ETH; lists the second
    /// for USDC and delists it. Returns the two token ids.
    async fn mint_and_trade(
        &self,
        dr: &mut Driver,
        c: &Contracts,
        r: Roles,
        round: u32,
        rng: &mut SplitMix64,
    ) -> Result<(U256, U256)> {
        let diamond = self.deployment.diamond;
        let mut tokens = Vec::new();
        for k in 1..=2 {
            let attributes = vec![
                GemforceMinterFacet::Attribute {
                    key: "name".into(),
                    attributeType: 0,
                    value: format!("Gem {round}-{k}"),
                },
                GemforceMinterFacet::Attribute {
                    key: "carats".into(),
                    attributeType: 1,
                    value: rng.range(1, 40).to_string(),
                },
                GemforceMinterFacet::Attribute {
                    key: "certified".into(),
                    attributeType: 2,
                    value: "true".into(),
                },
            ];
            let receipt =
                dr.exec("gemforceMint", c.minter.gemforceMint(r.seller, attributes).from(r.owner)).await?;
            tokens.push(indexed_u256(&receipt, diamond, 1).ok_or_else(|| missing("GemforceMinted tokenId"))?);
        }
        let (first, second) = (tokens[0], tokens[1]);

        let credits = U256::from(rng.range(1_000, 9_000));
        dr.exec("initializeCarbonCredits", c.carbon.initializeCarbonCredits(first, credits).from(r.owner))
            .await?;
        let retire = U256::from(rng.range(1, 100));
        dr.exec("retireCarbonCredits", c.carbon.retireCarbonCredits(first, retire).from(r.seller)).await?;

        let price = U256::from(ETHER);
        dr.exec(
            "listItem (ETH)",
            c.market.listItem(diamond, first, price, Address::ZERO, r.seller).from(r.seller),
        )
        .await?;
        let item = c.market.listingCount().call().await.map_err(TestkitError::contract("listingCount"))?;
        dr.exec("bid", c.market.bid(item, price * U256::from(9) / U256::from(10)).from(r.buyer)).await?;
        dr.exec("buyItem", c.market.buyItem(item).value(price).from(r.buyer)).await?;

        let usdc_price = U256::from(rng.range(100, 900) * USDC);
        let usdc = self.deployment.usdc;
        dr.exec(
            "listItem (USDC)",
            c.market.listItem(diamond, second, usdc_price, usdc, r.seller).from(r.seller),
        )
        .await?;
        let item = c.market.listingCount().call().await.map_err(TestkitError::contract("listingCount"))?;
        dr.exec("delistItem", c.market.delistItem(item).from(r.seller)).await?;
        Ok((first, second))
    }

    /// Two identities per round, each with claims; the second is removed again.
    async fn identity(&self, dr: &mut Driver, c: &Contracts, r: Roles, round: u32) -> Result<()> {
        for (k, user) in
            [r.investors[round as usize % 4], r.investors[(round as usize + 1) % 4]].into_iter().enumerate()
        {
            let receipt = dr.exec("createIdentity", c.factory.createIdentity(user).from(r.owner)).await?;
            let identity = indexed_address(&receipt, self.deployment.identity_factory, 2)
                .ok_or_else(|| missing("IdentityCreated identity"))?;
            dr.exec("addIdentity", c.identities.addIdentity(user, identity).from(r.issuer)).await?;
            if k == 1 {
                dr.exec("removeIdentity", c.identities.removeIdentity(user).from(r.issuer)).await?;
                continue;
            }
            for topic in [1u64, 2] {
                let claim = Bytes::from(format!("kyc:{round}:{topic}").into_bytes());
                dr.exec("addClaim", c.identities.addClaim(identity, U256::from(topic), claim).from(r.issuer))
                    .await?;
            }
            let claims = vec![U256::from(1), U256::from(2)];
            dr.exec("setClaims", c.identities.setClaims(identity, claims).from(r.issuer)).await?;
            dr.exec("removeClaim", c.identities.removeClaim(identity, U256::from(2)).from(r.issuer)).await?;
        }

        let topic = U256::from(100 + u64::from(round));
        dr.exec("addClaimTopic", c.topics.addClaimTopic(topic).from(r.owner)).await?;
        dr.exec("addIssuerClaimTopic", c.issuers.addIssuerClaimTopic(r.issuer, topic).from(r.owner)).await?;
        dr.exec("addTrustedIssuer", c.issuers.addTrustedIssuer(r.second_issuer, vec![topic]).from(r.owner))
            .await?;
        dr.exec("removeTrustedIssuer", c.issuers.removeTrustedIssuer(r.second_issuer).from(r.owner)).await?;
        Ok(())
    }
}

/// The `index`-th topic of the first log from `emitter` in a receipt, as a number.
fn indexed_u256(receipt: &TransactionReceipt, emitter: Address, index: usize) -> Option<U256> {
    indexed_topic(receipt, emitter, index).map(|t| U256::from_be_bytes(t.0))
}

fn indexed_address(receipt: &TransactionReceipt, emitter: Address, index: usize) -> Option<Address> {
    indexed_topic(receipt, emitter, index).map(Address::from_word)
}

/// The `index`-th topic of the last log from `emitter` with enough topics.
fn indexed_topic(receipt: &TransactionReceipt, emitter: Address, index: usize) -> Option<B256> {
    receipt
        .inner
        .logs()
        .iter()
        .rev()
        .filter(|log| log.address() == emitter && log.topics().len() > index)
        .map(|log| log.topics()[index])
        .next()
}

fn missing(what: &str) -> TestkitError {
    TestkitError::Anvil(format!("expected event not found in receipt: {what}"))
}
