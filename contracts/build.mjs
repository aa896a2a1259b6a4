// Compiles contracts/src with solc-js (npm `solc`) into contracts/artifacts/<Contract>.json: ABI and
// bytecode, committed so that building gemgate needs no Solidity compiler. artifacts/manifest.json records
// a hash of every input (sources, this script, package.json); a Rust test fails when it no longer matches,
// meaning an artifact is stale: run `npm ci && node build.mjs` here and commit the result.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, writeFileSync, mkdirSync, rmSync, statSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const solc = require("solc");
const here = dirname(fileURLToPath(import.meta.url));
const srcDir = join(here, "src");
const outDir = join(here, "artifacts");

// The contracts gemgate deploys; everything else under src/ is a library or an interface.
const DEPLOYABLE = [
  "Diamond", "DiamondCutFacet", "DiamondLoupeFacet", "OwnershipFacet", "ERC721Facet", "GemforceMinterFacet",
  "TradeDealFacet", "MarketplaceFacet", "CarbonCreditFacet", "IdentityRegistryFacet", "ClaimTopicsRegistryFacet",
  "TrustedIssuersRegistryFacet", "IdentityFactory", "Treasury", "SampleERC20", "InvoiceNFT", "GemforceForwarder",
  "LogSpammer", "Multicall3",
];

const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  viaIR: true,
  // Cancun runs on every network Gemforce uses and on anvil.
  evmVersion: "cancun",
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
};

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

/// Same algorithm as crates/testkit/src/artifacts.rs: sha256 over "<path>\n<sha256 of file>\n" for each input,
/// paths relative to contracts/ with '/' separators, sorted.
export function inputsHash() {
  const files = [...walk(srcDir).filter((f) => f.endsWith(".sol")), join(here, "build.mjs"), join(here, "package.json")];
  const entries = files
    .map((f) => relative(here, f).split(sep).join("/"))
    .sort()
    .map((rel) => `${rel}\n${createHash("sha256").update(readFileSync(join(here, rel))).digest("hex")}\n`);
  return createHash("sha256").update(entries.join("")).digest("hex");
}

function findImport(path) {
  for (const base of [srcDir, join(here, "node_modules")]) {
    try {
      return { contents: readFileSync(join(base, path), "utf8") };
    } catch {}
  }
  return { error: `not found: ${path}` };
}

const sources = {};
for (const file of walk(srcDir).filter((f) => f.endsWith(".sol"))) {
  sources[relative(srcDir, file).split(sep).join("/")] = { content: readFileSync(file, "utf8") };
}
const input = { language: "Solidity", sources, settings: SETTINGS };
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const found = new Set();
for (const [sourceName, contracts] of Object.entries(output.contracts)) {
  for (const [contractName, c] of Object.entries(contracts)) {
    if (!DEPLOYABLE.includes(contractName)) continue;
    found.add(contractName);
    const artifact = { contractName, sourceName, abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
    writeFileSync(join(outDir, `${contractName}.json`), JSON.stringify(artifact, null, 2) + "\n");
  }
}
const missing = DEPLOYABLE.filter((n) => !found.has(n));
if (missing.length) {
  console.error(`contracts not produced: ${missing.join(", ")}`);
  process.exit(1);
}
const manifest = {
  solc: solc.version(),
  openzeppelin: JSON.parse(readFileSync(join(here, "node_modules/@openzeppelin/contracts/package.json"), "utf8")).version,
  settings: SETTINGS,
  contracts: DEPLOYABLE,
  inputs_sha256: inputsHash(),
};
writeFileSync(join(outDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`compiled ${DEPLOYABLE.length} contracts with solc ${manifest.solc} into ${relative(process.cwd(), outDir) || "."}`);
