//! `gemgate demo`: a local chain with the sample Gemforce contracts and realistic traffic, so a new user
//! sees the whole system on one machine. Today it starts anvil, deploys, runs the seeded scenario and
//! prints what happened; the indexer, delivery and API issues grow it into the whole service on SQLite.

use std::time::Instant;

use anyhow::Context;
use gemgate_testkit::{Anvil, AnvilOptions, Scenario, ScenarioOptions, deploy_gemforce, find_anvil};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Rounds of traffic (each emits every Gemforce event at least once).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seed of the traffic generator: the same seed gives the same traffic.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Port for the local chain; 8545 by default, any free port if that one is taken.
    #[arg(long, default_value_t = 8545)]
    chain_port: u16,
    /// Exit after printing the summary instead of keeping the chain running until Ctrl-C.
    #[arg(long)]
    once: bool,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("gemgate demo: starting a local chain (anvil)...");
    let binary = find_anvil().await.context("finding or installing anvil")?;
    let options = AnvilOptions::default();
    let anvil = match Anvil::start_binary(&binary, &options, args.chain_port).await {
        Ok(anvil) => anvil,
        Err(_) if args.chain_port != 0 => {
            println!("  port {} is taken; using a free port", args.chain_port);
            Anvil::start_binary(&binary, &options, 0).await.context("starting anvil")?
        }
        Err(e) => return Err(e).context("starting anvil"),
    };
    println!("  chain {} at {}", anvil.chain_id(), anvil.endpoint());
    tracing::info!(chain_id = anvil.chain_id(), rpc = %anvil.endpoint(), "chain started");

    println!("deploying the sample Gemforce Diamond and companions...");
    let provider = anvil.provider();
    let owner = anvil.accounts()[0];
    let deployment = deploy_gemforce(&provider, owner).await.context("deploying the sample contracts")?;
    tracing::info!(diamond = %deployment.diamond, facets = deployment.facets.len(), "sample contracts deployed");
    println!("  Diamond            {}", deployment.diamond);
    for (name, address) in &deployment.facets {
        println!("    facet {name:<27} {address}");
    }
    println!("  USDC (6 decimals)  {}", deployment.usdc);
    println!("  VABB / VABI        {} / {}", deployment.vabb, deployment.vabi);
    println!("  Invoice NFT        {}", deployment.invoice_nft);
    println!("  IdentityFactory    {}", deployment.identity_factory);
    println!("  Treasury           {}", deployment.treasury);
    println!("  ERC2771Forwarder   {}", deployment.forwarder);

    println!("driving {} round(s) of traffic (seed {})...", args.rounds, args.seed);
    let scenario = Scenario::new(
        &deployment,
        anvil.accounts(),
        ScenarioOptions { seed: args.seed, rounds: args.rounds },
    )?;
    let report = scenario.run(&provider).await.context("running the traffic scenario")?;
    tracing::info!(
        transactions = report.transactions,
        events = report.total_events(),
        first_block = report.first_block,
        last_block = report.last_block,
        "scenario finished"
    );
    println!(
        "  {} transactions in blocks {}..={}, {} events:",
        report.transactions,
        report.first_block,
        report.last_block,
        report.total_events()
    );
    for (signature, count) in &report.events {
        println!("    {count:>4}  {signature}");
    }
    for deal in &report.trade_deals {
        println!(
            "  trade deal {}: {:?}, target {} USDC, rate {} bps, repaid {}, {} invoice(s) in custody",
            deal.id,
            deal.name,
            deal.funding_target / alloy_usdc(),
            deal.interest_rate,
            deal.fully_repaid,
            deal.invoices.len()
        );
    }
    println!("done in {:.1} s.", started.elapsed().as_secs_f64());
    if args.once {
        return Ok(());
    }
    println!(
        "The chain keeps running at {} (try: curl -s -X POST -H 'content-type: application/json' \
         --data '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_blockNumber\",\"params\":[]}}' {}). Ctrl-C stops it.",
        anvil.endpoint(),
        anvil.endpoint()
    );
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    println!("stopping.");
    Ok(())
}

fn alloy_usdc() -> gemgate_testkit::U256 {
    gemgate_testkit::U256::from(1_000_000u64)
}
