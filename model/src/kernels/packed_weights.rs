//! The linear layers' weights rounded to bf16 and packed once for all the forward passes of
//! bf16 inference, instead of once per product.
//!
//! Packing a weight reads all of it from memory (most weights of the seed model are larger
//! than the caches) for a few hundred multiply-adds per value: a tenth of the time of bf16
//! inference on the AVX-512 EPYC before this cache. PyTorch's autocast keeps its bf16 copies
//! of the weights in the same way.
//!
//! An entry holds a clone of the weight's tensor beside its packed form. The clone keeps the
//! weight's buffer alive, so no other tensor can take its address, and shared, so no
//! operation writes to it in place (Flex copies shared buffers before writing): the same
//! buffer and layout is the same matrix. Entries whose tensor nobody else holds any more (a
//! dropped model, weights replaced by an optimizer step) are dropped when a new weight is
//! packed, so the cache holds the packed weights of the models in use: half their linear
//! layers' f32 bytes.

use std::cell::RefCell;
use std::sync::Arc;

use burn_flex::FlexTensor;

use super::bf16_gemm::PackedRight;
use super::flex::dims;
use super::linear::weight_view;

/// A weight and its packed form.
struct Entry {
    weight: FlexTensor,
    packed: Arc<PackedRight>,
}

thread_local! {
    static PACKED: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// `weight` (`[k, n]`) packed for [`super::bf16_gemm::gemm_bf16`], packed on its first use;
/// `None` when the CPU lacks the bf16 instruction.
pub fn packed_weight(weight: &FlexTensor) -> Option<Arc<PackedRight>> {
    PACKED.with_borrow_mut(|entries| {
        if let Some(entry) = entries
            .iter()
            .find(|entry| same_matrix(&entry.weight, weight))
        {
            return Some(entry.packed.clone());
        }
        entries.retain(|entry| !entry.weight.is_unique());
        let [k, n] = dims(weight)[..] else {
            unreachable!("linear weights are matrices")
        };
        let packed = Arc::new(PackedRight::new(&weight_view(weight), (k, n))?);
        entries.push(Entry {
            weight: weight.clone(),
            packed: packed.clone(),
        });
        Some(packed)
    })
}

/// Whether both tensors view the same buffer in the same way.
fn same_matrix(cached: &FlexTensor, weight: &FlexTensor) -> bool {
    std::ptr::eq(cached.storage::<f32>(), weight.storage::<f32>())
        && cached.layout() == weight.layout()
}

/// How many weights are packed on this thread.
#[cfg(test)]
fn cached() -> usize {
    PACKED.with_borrow(Vec::len)
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::prelude::*;

    use super::super::bf16_gemm::supported;
    use super::super::flex::to_flex;
    use super::*;

    fn weight(seed: f32) -> FlexTensor {
        let values: Vec<f32> = (0..12).map(|i| (i as f32 * seed).sin()).collect();
        let tensor = Tensor::<Flex, 1>::from_floats(values.as_slice(), &Default::default());
        to_flex(tensor.reshape([3, 4])).expect("a Flex tensor")
    }

    #[test]
    fn weights_are_packed_once_and_dropped_with_their_model() {
        if !supported() {
            return;
        }
        let first = weight(1.0);
        let packed = packed_weight(&first).expect("supported");
        assert!(Arc::ptr_eq(
            &packed,
            &packed_weight(&first.clone()).unwrap()
        ));
        assert_eq!(cached(), 1);
        let second = weight(2.0);
        let second_packed = packed_weight(&second).unwrap();
        assert!(!Arc::ptr_eq(&packed, &second_packed));
        assert_eq!(cached(), 2);
        // Once only the cache holds the first weight, the next packing drops it.
        drop(first);
        let third = weight(3.0);
        packed_weight(&third).unwrap();
        assert_eq!(cached(), 2);
    }
}
