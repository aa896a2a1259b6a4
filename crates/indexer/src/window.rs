//! How new blocks relate to what is committed: pure rules over block refs.

use gemgate_domain::BlockRef;

/// How a run of fetched blocks relates to the committed cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The blocks extend the cursor, each the parent of the next.
    Extends,
    /// The first block does not build on the cursor: the chain forked at or below the cursor.
    Fork,
    /// The blocks do not link among themselves: the node changed branch while we fetched. Fetch again.
    Torn,
}

/// Checks `blocks` (ascending, consecutive numbers) against the cursor they should extend.
pub fn link(cursor: Option<&BlockRef>, blocks: &[BlockRef]) -> Link {
    if let (Some(cursor), Some(first)) = (cursor, blocks.first())
        && !cursor.is_parent_of(first)
    {
        return Link::Fork;
    }
    if blocks.windows(2).all(|pair| pair[0].is_parent_of(&pair[1])) { Link::Extends } else { Link::Torn }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::B256;

    use super::*;

    fn chain(from: u64, count: u64, branch: u8) -> Vec<BlockRef> {
        let mut blocks: Vec<BlockRef> = Vec::new();
        for n in from..from + count {
            let parent_hash = blocks.last().map_or(B256::ZERO, |b| b.hash);
            blocks.push(BlockRef {
                number: n,
                hash: B256::left_padding_from(&[branch, n as u8]),
                parent_hash,
            });
        }
        blocks
    }

    #[test]
    fn extension_fork_and_torn_fetches_are_told_apart() {
        let main = chain(10, 5, 1);
        let cursor = main[1];
        assert_eq!(link(Some(&cursor), &main[2..]), Link::Extends);
        let mut other = chain(12, 3, 2);
        other[0].parent_hash = B256::repeat_byte(0xee);
        assert_eq!(link(Some(&cursor), &other), Link::Fork);
        let mut torn = main[2..].to_vec();
        torn[1].parent_hash = B256::repeat_byte(0xdd);
        assert_eq!(link(Some(&cursor), &torn), Link::Torn);
        assert_eq!(link(None, &main), Link::Extends, "the first batch of a chain has no cursor to extend");
    }
}
