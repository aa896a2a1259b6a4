//! Blocks as the indexer sees them: a number, a hash and the parent hash that links it to the chain.
//! Reorg detection is a comparison of these three fields; nothing else about a block is needed for it.

use alloy_primitives::{Address, B256, Bloom, BloomInput};
use serde::{Deserialize, Serialize};

/// An EVM chain id (EIP-155).
pub type ChainId = u64;

/// A block's identity and its link to its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockRef {
    pub number: u64,
    pub hash: B256,
    pub parent_hash: B256,
}

impl BlockRef {
    /// Whether `child` extends this block directly.
    pub fn is_parent_of(&self, child: &BlockRef) -> bool {
        child.number == self.number + 1 && child.parent_hash == self.hash
    }
}

/// A block as the indexer checks a node's logs against it: its identity and its logs bloom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub block: BlockRef,
    pub logs_bloom: Bloom,
}

impl Header {
    /// Whether one of `addresses` may have logged in this block. The bloom gives false positives, never
    /// false negatives: `false` is certain.
    pub fn may_have_logs_of(&self, addresses: &[Address]) -> bool {
        addresses.iter().any(|a| self.logs_bloom.contains_input(BloomInput::Raw(a.as_slice())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bloom_names_the_addresses_that_logged() {
        let (logged, silent) = (Address::repeat_byte(0x11), Address::repeat_byte(0x22));
        let mut logs_bloom = Bloom::default();
        logs_bloom.accrue(BloomInput::Raw(logged.as_slice()));
        let header = Header { block: block(1, 1, 0), logs_bloom };
        assert!(header.may_have_logs_of(&[silent, logged]));
        assert!(!header.may_have_logs_of(&[silent]));
        assert!(!header.may_have_logs_of(&[]));
    }

    fn block(number: u64, hash: u8, parent: u8) -> BlockRef {
        BlockRef { number, hash: B256::repeat_byte(hash), parent_hash: B256::repeat_byte(parent) }
    }

    #[test]
    fn parent_link_needs_both_number_and_hash() {
        let parent = block(10, 1, 0);
        assert!(parent.is_parent_of(&block(11, 2, 1)));
        assert!(!parent.is_parent_of(&block(11, 2, 9)), "wrong parent hash is a fork");
        assert!(!parent.is_parent_of(&block(12, 2, 1)), "a gap is not a direct child");
    }
}
