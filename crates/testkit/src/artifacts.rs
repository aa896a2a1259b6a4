//! The compiled sample contracts, embedded from `contracts/artifacts/`, and the check that they are not
//! stale: `contracts/build.mjs` records a hash of its inputs in `manifest.json`; `inputs_sha256` recomputes
//! it from the sources with the same algorithm.

use std::path::{Path, PathBuf};

use alloy::json_abi::{Event, JsonAbi};
use alloy::primitives::{B256, Bytes};
use sha2::{Digest, Sha256};

use crate::{Result, TestkitError};

/// One compiled contract: its name and the artifact JSON (`abi`, `bytecode`).
#[derive(Debug, Clone, Copy)]
pub struct Artifact {
    pub name: &'static str,
    pub json: &'static str,
}

macro_rules! artifact {
    ($name:literal) => {
        Artifact {
            name: $name,
            json: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../contracts/artifacts/",
                $name,
                ".json"
            )),
        }
    };
}

/// Every deployable sample contract.
pub const ARTIFACTS: &[Artifact] = &[
    artifact!("Diamond"),
    artifact!("DiamondCutFacet"),
    artifact!("DiamondLoupeFacet"),
    artifact!("OwnershipFacet"),
    artifact!("ERC721Facet"),
    artifact!("GemforceMinterFacet"),
    artifact!("TradeDealFacet"),
    artifact!("MarketplaceFacet"),
    artifact!("CarbonCreditFacet"),
    artifact!("IdentityRegistryFacet"),
    artifact!("ClaimTopicsRegistryFacet"),
    artifact!("TrustedIssuersRegistryFacet"),
    artifact!("IdentityFactory"),
    artifact!("Treasury"),
    artifact!("SampleERC20"),
    artifact!("InvoiceNFT"),
    artifact!("GemforceForwarder"),
    artifact!("LogSpammer"),
    artifact!("Multicall3"),
];

/// The facets installed on the sample Diamond (besides `DiamondCutFacet`, which the constructor installs).
pub const DIAMOND_FACETS: &[&str] = &[
    "DiamondLoupeFacet",
    "OwnershipFacet",
    "ERC721Facet",
    "GemforceMinterFacet",
    "TradeDealFacet",
    "MarketplaceFacet",
    "CarbonCreditFacet",
    "IdentityRegistryFacet",
    "ClaimTopicsRegistryFacet",
    "TrustedIssuersRegistryFacet",
];

const MANIFEST: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts/artifacts/manifest.json"));

#[derive(serde::Deserialize)]
struct ArtifactJson {
    abi: JsonAbi,
    bytecode: Bytes,
}

impl Artifact {
    /// The artifact of a sample contract by name.
    pub fn named(name: &str) -> Result<Artifact> {
        ARTIFACTS.iter().copied().find(|a| a.name == name).ok_or_else(|| TestkitError::Artifact {
            name: name.to_string(),
            message: "no such sample contract".into(),
        })
    }

    fn parse(&self) -> Result<ArtifactJson> {
        serde_json::from_str(self.json)
            .map_err(|e| TestkitError::Artifact { name: self.name.to_string(), message: e.to_string() })
    }

    pub fn abi(&self) -> Result<JsonAbi> {
        Ok(self.parse()?.abi)
    }

    pub fn bytecode(&self) -> Result<Bytes> {
        Ok(self.parse()?.bytecode)
    }
}

/// Every event of every sample contract, one entry per distinct topic0.
pub fn all_events() -> Result<Vec<Event>> {
    let mut events: Vec<Event> = Vec::new();
    for artifact in ARTIFACTS {
        for event in artifact.abi()?.events() {
            if !events.iter().any(|e| e.selector() == event.selector()) {
                events.push(event.clone());
            }
        }
    }
    Ok(events)
}

/// The event with this topic0 among the sample contracts.
pub fn event_by_topic(topic0: B256) -> Result<Option<Event>> {
    Ok(all_events()?.into_iter().find(|e| e.selector() == topic0))
}

/// The `contracts/` folder of this repository.
pub fn contracts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts")
}

/// The inputs hash recorded by the last `node build.mjs`.
pub fn recorded_inputs_sha256() -> Result<String> {
    let manifest: serde_json::Value = serde_json::from_str(MANIFEST)
        .map_err(|e| TestkitError::Artifact { name: "manifest".into(), message: e.to_string() })?;
    manifest["inputs_sha256"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| TestkitError::Artifact { name: "manifest".into(), message: "no inputs_sha256".into() })
}

/// Recomputes the hash of the build inputs (same algorithm as `contracts/build.mjs`): sha256 over
/// `"<path>\n<sha256 hex of file>\n"` for every `src/**/*.sol`, `build.mjs` and `package.json`, with paths
/// relative to `contracts/`, `/`-separated and sorted.
pub fn inputs_sha256(contracts: &Path) -> Result<String> {
    let mut files = vec!["build.mjs".to_string(), "package.json".to_string()];
    collect_sol(&contracts.join("src"), "src", &mut files)?;
    files.sort();
    let mut outer = Sha256::new();
    for rel in files {
        let bytes =
            std::fs::read(contracts.join(&rel)).map_err(TestkitError::io(format!("reading {rel}")))?;
        let inner = hex_lower(&Sha256::digest(&bytes));
        outer.update(format!("{rel}\n{inner}\n").as_bytes());
    }
    Ok(hex_lower(&outer.finalize()))
}

fn collect_sol(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(TestkitError::io(format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(TestkitError::io("listing contracts"))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let child_rel = format!("{rel}/{name}");
        if entry.path().is_dir() {
            collect_sol(&entry.path(), &child_rel, out)?;
        } else if name.ends_with(".sol") {
            out.push(child_rel);
        }
    }
    Ok(())
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
