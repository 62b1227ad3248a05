//! Ordered background preparation of work chunks: the next chunks are prepared (e.g. videos
//! decoded, in parallel) while the current one is processed (e.g. by the model), in order and
//! at most a few chunks ahead, so memory stays bounded.

use std::sync::mpsc::sync_channel;

/// Chunks prepared ahead of the one being consumed.
const AHEAD: usize = 2;

/// Calls `consume(prepare(chunk))` for the consecutive chunks of `chunk_size` indices of
/// `0..len`, in order; `prepare` runs on a background thread, up to [`AHEAD`] chunks ahead.
/// Stops at the first error of `consume`.
pub fn for_each_chunk<T: Send, E>(
    len: usize,
    chunk_size: usize,
    prepare: impl Fn(&[usize]) -> T + Sync,
    mut consume: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E> {
    let indices: Vec<usize> = (0..len).collect();
    let prepare = &prepare;
    std::thread::scope(|scope| {
        let (sender, receiver) = sync_channel(AHEAD);
        let indices = &indices;
        scope.spawn(move || {
            for chunk in indices.chunks(chunk_size.max(1)) {
                if sender.send(prepare(chunk)).is_err() {
                    break;
                }
            }
        });
        let result = receiver.iter().try_for_each(&mut consume);
        // Unblocks the producer if `consume` stopped early.
        drop(receiver);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_arrive_in_order_and_an_error_stops_the_producer() {
        let mut seen = Vec::new();
        for_each_chunk(
            10,
            3,
            |chunk| chunk.to_vec(),
            |chunk| {
                seen.push(chunk);
                Ok::<(), String>(())
            },
        )
        .unwrap();
        assert_eq!(seen, [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]);

        let mut consumed = 0;
        let result = for_each_chunk(
            1000,
            1,
            |chunk| chunk[0],
            |_| {
                consumed += 1;
                if consumed < 3 { Ok(()) } else { Err("stop") }
            },
        );
        assert!(result.is_err());
        assert_eq!(consumed, 3);
    }
}
