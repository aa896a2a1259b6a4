//! View calls as values: which block a call runs at (a tag, a number or a hash), the block it was pinned
//! to, and what the node answered (the returned bytes, or the revert data). The `ViewCaller` port
//! (`ports.rs`) speaks these; the `chain` crate implements it over JSON-RPC, and the `calls` crate builds
//! the cached, batched proxy on it.

use alloy_primitives::{B256, Bytes};

/// Where a view call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockSelector {
    Latest,
    Safe,
    Finalized,
    Number(u64),
    Hash(B256),
}

impl BlockSelector {
    /// `latest`, `safe`, `finalized`, a decimal or `0x` block number, or a 32-byte `0x` block hash.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "latest" => Some(Self::Latest),
            "safe" => Some(Self::Safe),
            "finalized" => Some(Self::Finalized),
            _ if text.len() == 66 && text.starts_with("0x") => text.parse().ok().map(Self::Hash),
            _ => match text.strip_prefix("0x") {
                Some(digits) => u64::from_str_radix(digits, 16).ok().map(Self::Number),
                None => text.parse().ok().map(Self::Number),
            },
        }
    }

    /// Whether the block this names can still change: `latest` moves with every block.
    pub fn moves(&self) -> bool {
        matches!(self, Self::Latest)
    }
}

impl std::fmt::Display for BlockSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Latest => f.write_str("latest"),
            Self::Safe => f.write_str("safe"),
            Self::Finalized => f.write_str("finalized"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Hash(h) => write!(f, "{h}"),
        }
    }
}

/// A block a call was pinned to: everything the call sees is the state after this block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PinnedBlock {
    pub number: u64,
    pub hash: B256,
}

/// What a view call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutput {
    Returned(Bytes),
    /// The call reverted: the revert data (empty for a bare `revert()`) and the node's message.
    Reverted {
        data: Bytes,
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_from_tags_numbers_and_hashes() {
        assert_eq!(BlockSelector::parse("latest"), Some(BlockSelector::Latest));
        assert_eq!(BlockSelector::parse("finalized"), Some(BlockSelector::Finalized));
        assert_eq!(BlockSelector::parse("17"), Some(BlockSelector::Number(17)));
        assert_eq!(BlockSelector::parse("0x11"), Some(BlockSelector::Number(17)));
        let hash = format!("0x{}", "ab".repeat(32));
        assert_eq!(BlockSelector::parse(&hash), Some(BlockSelector::Hash(hash.parse().unwrap())));
        for bad in ["", "pending", "-1", "0x", "0xzz", "1.5", &format!("0x{}", "ab".repeat(31))] {
            assert_eq!(BlockSelector::parse(bad), None, "{bad:?}");
        }
        assert!(BlockSelector::Latest.moves() && !BlockSelector::Safe.moves());
    }
}
