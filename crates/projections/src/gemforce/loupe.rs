//! The Diamond loupe check: the selectors the facet table tracks (from `DiamondCut` events) against what
//! the Diamond's own `facets()` reports at the same block. A cut the indexer never saw (made below the
//! start block, or before the facet table existed) shows up as a difference; the repair makes the table
//! equal to the loupe and writes one `facet_history` row per facet it changed, with action `loupe`, so the
//! history says where those rows came from. Pure: the caller reads both sides and writes the result.

use std::collections::BTreeMap;

use alloy_primitives::Address;

use super::tables::{DIAMOND_FACETS, FACET_HISTORY};
use crate::rows::{Cell, Row, RowWrite};

/// How the tracked table differs from the loupe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FacetDrift {
    /// Selectors the loupe has that the table lacks or maps to another facet: (selector, loupe's facet).
    pub missing: Vec<(String, Address)>,
    /// Selectors the table has that the loupe does not.
    pub extra: Vec<String>,
}

impl FacetDrift {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Compares `tracked` (selector, facet) rows with the loupe's (facet, selectors). Selectors compare as
/// lower-case hex, facets as addresses.
pub fn facet_drift(tracked: &[(String, String)], loupe: &[(Address, Vec<[u8; 4]>)]) -> FacetDrift {
    let tracked: BTreeMap<String, Option<Address>> =
        tracked.iter().map(|(selector, facet)| (selector.to_lowercase(), facet.parse().ok())).collect();
    let reported: BTreeMap<String, Address> = loupe
        .iter()
        .flat_map(|(facet, selectors)| {
            selectors.iter().map(move |s| (alloy_primitives::hex::encode_prefixed(s), *facet))
        })
        .collect();
    let missing = reported
        .iter()
        .filter(|(selector, facet)| tracked.get(*selector) != Some(&Some(**facet)))
        .map(|(selector, facet)| (selector.clone(), *facet))
        .collect();
    let extra = tracked.keys().filter(|s| !reported.contains_key(*s)).cloned().collect();
    FacetDrift { missing, extra }
}

/// The rows that make the facet table of `contract` equal to the loupe at `block`: selector rows put or
/// deleted, and a `facet_history` row per facet changed (action `loupe`; removed selectors under the zero
/// address, as a `DiamondCut` remove has it).
pub fn facet_repair(chain_id: u64, contract: Address, block: u64, drift: &FacetDrift) -> Vec<RowWrite> {
    let contract_text = contract.to_checksum(None);
    let key = |id: &str| format!("{chain_id}:{contract_text}:{id}");
    let base = || {
        Row::from([
            ("chain_id".to_string(), Cell::Int(chain_id as i64)),
            ("contract".to_string(), Cell::Text(contract_text.clone())),
        ])
    };
    let mut writes = Vec::new();
    let mut by_facet: BTreeMap<Address, Vec<String>> = BTreeMap::new();
    for (selector, facet) in &drift.missing {
        let mut row = base();
        row.insert("selector".into(), Cell::Text(selector.clone()));
        row.insert("facet".into(), Cell::Text(facet.to_checksum(None)));
        row.insert("updated_block".into(), Cell::Int(block as i64));
        writes.push(RowWrite { table: &DIAMOND_FACETS, key: key(selector), row: Some(row) });
        by_facet.entry(*facet).or_default().push(selector.clone());
    }
    for selector in &drift.extra {
        writes.push(RowWrite { table: &DIAMOND_FACETS, key: key(selector), row: None });
        by_facet.entry(Address::ZERO).or_default().push(selector.clone());
    }
    for (position, (facet, selectors)) in by_facet.into_iter().enumerate() {
        let mut row = base();
        row.insert("block_number".into(), Cell::Int(block as i64));
        row.insert("log_index".into(), Cell::Null);
        row.insert("position".into(), Cell::Int(position as i64));
        row.insert("action".into(), Cell::Text("loupe".into()));
        row.insert("facet".into(), Cell::Text(facet.to_checksum(None)));
        row.insert("selectors".into(), Cell::Json(serde_json::json!(selectors)));
        row.insert("tx_hash".into(), Cell::Null);
        writes.push(RowWrite {
            table: &FACET_HISTORY,
            key: key(&format!("loupe:{block}:{position}")),
            row: Some(row),
        });
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_in_either_direction_are_found_and_repaired() {
        let (a, b) = (Address::repeat_byte(0xaa), Address::repeat_byte(0xbb));
        let tracked = vec![
            ("0x11111111".to_string(), a.to_checksum(None)),
            ("0x22222222".to_string(), a.to_string()),
            ("0x33333333".to_string(), a.to_checksum(None)),
        ];
        let loupe = vec![(a, vec![[0x11; 4]]), (b, vec![[0x22; 4], [0x44; 4]])];
        let drift = facet_drift(&tracked, &loupe);
        assert_eq!(drift.missing, vec![("0x22222222".to_string(), b), ("0x44444444".to_string(), b)]);
        assert_eq!(drift.extra, vec!["0x33333333".to_string()]);

        let writes = facet_repair(1, a, 90, &drift);
        let puts: Vec<_> =
            writes.iter().filter(|w| w.table.name == "diamond_facets" && w.row.is_some()).collect();
        assert_eq!(puts.len(), 2);
        assert_eq!(puts[0].row.as_ref().unwrap()["facet"], Cell::Text(b.to_checksum(None)));
        let deletes: Vec<_> = writes.iter().filter(|w| w.row.is_none()).map(|w| w.key.as_str()).collect();
        assert_eq!(deletes, [format!("1:{}:0x33333333", a.to_checksum(None))]);
        let history: Vec<_> = writes.iter().filter(|w| w.table.name == "facet_history").collect();
        assert_eq!(history.len(), 2, "one row for facet b, one for the removed selector");
        assert!(history.iter().all(|h| h.row.as_ref().unwrap()["action"] == Cell::Text("loupe".into())));

        let same = facet_drift(&[("0x11111111".into(), a.to_checksum(None))], &[(a, vec![[0x11; 4]])]);
        assert!(same.is_empty());
        assert!(facet_repair(1, a, 90, &same).is_empty());
    }
}
