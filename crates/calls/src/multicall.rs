//! Multicall3's `aggregate3`: many view calls in one `eth_call`, each allowed to fail on its own (its
//! revert data comes back in its result instead of sinking the batch).

use alloy::sol_types::SolCall;
use alloy_primitives::{Address, Bytes};
use gemgate_domain::calls::CallOutput;

alloy::sol! {
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Result3 {
        bool success;
        bytes returnData;
    }

    function aggregate3(Call3[] calls) external payable returns (Result3[] returnData);
}

/// The calldata of one `aggregate3` over `(to, data)` calls, every one allowed to fail.
pub(crate) fn encode(calls: &[(Address, Bytes)]) -> Bytes {
    let calls = calls
        .iter()
        .map(|(target, data)| Call3 { target: *target, allowFailure: true, callData: data.clone() })
        .collect();
    aggregate3Call { calls }.abi_encode().into()
}

/// Each call's output from `aggregate3`'s return data; `None` when it is not an answer to `count` calls.
pub(crate) fn decode(data: &[u8], count: usize) -> Option<Vec<CallOutput>> {
    let results = aggregate3Call::abi_decode_returns(data).ok()?;
    (results.len() == count).then(|| {
        results
            .into_iter()
            .map(|r| match r.success {
                true => CallOutput::Returned(r.returnData),
                false => CallOutput::Reverted { data: r.returnData, message: "execution reverted".into() },
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use alloy::sol_types::SolValue;

    use super::*;

    #[test]
    fn batches_encode_and_results_decode_per_call() {
        let calls =
            vec![(Address::repeat_byte(1), Bytes::from(vec![1, 2])), (Address::repeat_byte(2), Bytes::new())];
        let data = encode(&calls);
        assert_eq!(&data[..4], &aggregate3Call::SELECTOR);
        let answer = vec![
            Result3 { success: true, returnData: Bytes::from(vec![9]) },
            Result3 { success: false, returnData: Bytes::from(vec![8]) },
        ]
        .abi_encode();
        let outputs = decode(&answer, 2).unwrap();
        assert_eq!(outputs[0], CallOutput::Returned(Bytes::from(vec![9])));
        assert!(matches!(&outputs[1], CallOutput::Reverted { data, .. } if data[..] == [8]));
        assert!(decode(&answer, 3).is_none(), "an answer for another number of calls");
        assert!(decode(&[1, 2, 3], 2).is_none());
    }
}
