//! What stored values cost in memory: the primitives every store's byte
//! cap is estimated with.
//!
//! Each store had its own copy and they disagreed (a map entry was 16
//! bytes in one, 48 in another; a string its capacity in one, its length
//! in another), so the same data counted differently in each cap. These
//! follow the layouts the emulator really runs with:
//!
//! - the allocator, glibc's malloc on the Linux builds: each allocation
//!   carries an 8-byte header and is rounded up to 16 bytes, 32 at least
//!   (`MALLOC_ALIGNMENT` and `MINSIZE` in glibc's `malloc.c`);
//! - `String`, `Vec` and `VecDeque`: one allocation of their capacity, which
//!   may exceed their length;
//! - `BTreeMap`: leaf nodes of 11 slots of key and value, allocated whole,
//!   so a map of one to eleven entries costs one full node; a larger map's
//!   nodes are half to all full, counted at eight entries a node, with an
//!   internal node (the leaf and twelve edges) per eight nodes;
//! - `HashMap` (hashbrown): slots of key and value plus a control byte
//!   each, and 16 more control bytes, in one allocation; a table doubles
//!   when 7/8 full, so it holds 1.1 to 2.3 slots an entry;
//! - `Arc`: its value and two counters in one allocation.
//!
//! These are estimates of the heap, not measurements: the spare capacity
//! of a growing queue, the allocator's free lists and fragmentation are
//! not counted. `tests/emulator/memory.rs` holds each store, fed hostile
//! shapes, to the process's RSS. `logging/`, `monitoring/` and `trace/`
//! each add what their own values hold (`trace/footprint.rs` counts a
//! span by its encoded size plus these tables and allocations).

use std::mem::size_of;

/// Slots of key and value in a `BTreeMap` node (its B is 6).
const BTREE_NODE_SLOTS: usize = 11;
/// Entries counted per node of a map larger than one node: between half
/// and all of the slots are used.
const BTREE_ENTRIES_PER_NODE: usize = 8;
/// A node's parent pointer, index in it and length, padded.
const BTREE_NODE_HEADER: usize = 16;
/// An internal node's edges beyond its leaf part.
const BTREE_EDGES: usize = (BTREE_NODE_SLOTS + 1) * size_of::<usize>();
/// hashbrown's control bytes beyond one a slot (its group width).
const HASH_GROUP: usize = 16;

/// What the allocator hands out for a request of `bytes`: the request, its
/// 8-byte header, rounded up to 16, at least 32. Nothing for nothing.
pub(crate) fn allocation(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        (bytes.saturating_add(8 + 15) & !15).max(32)
    }
}

/// The heap a `String` holds: its capacity.
pub(crate) fn string(s: &String) -> usize {
    allocation(s.capacity())
}

/// [`string`] of an optional string.
pub(crate) fn opt_string(s: Option<&String>) -> usize {
    s.map_or(0, string)
}

/// The heap of a `Vec` or `VecDeque` of `capacity` items of `T`.
pub(crate) fn buffer<T>(capacity: usize) -> usize {
    allocation(capacity.saturating_mul(size_of::<T>()))
}

/// The nodes of a `BTreeMap<K, V>` of `len` entries; what its keys and
/// values own is counted by the caller.
pub(crate) fn btree_map<K, V>(len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let leaf = BTREE_NODE_HEADER + BTREE_NODE_SLOTS * (size_of::<K>() + size_of::<V>());
    let leaves = if len <= BTREE_NODE_SLOTS {
        1
    } else {
        len.div_ceil(BTREE_ENTRIES_PER_NODE)
    };
    let internal = if leaves > 1 {
        leaves.div_ceil(BTREE_ENTRIES_PER_NODE)
    } else {
        0
    };
    leaves * allocation(leaf) + internal * allocation(leaf + BTREE_EDGES)
}

/// The table of a `HashMap<K, V>` whose `capacity()` is `capacity`; what
/// its keys and values own is counted by the caller.
pub(crate) fn hash_map<K, V>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    // hashbrown's capacity is all the slots less one below 8, 7/8 of them above.
    let slots = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity.saturating_mul(8) / 7).next_power_of_two()
    };
    allocation(slots * (size_of::<(K, V)>() + 1) + HASH_GROUP)
}

/// One entry's share of a `HashMap<K, V>` that grows with the store (an
/// index): two slots, the worse half of its 1.1 to 2.3.
pub(crate) fn hash_entry<K, V>() -> usize {
    2 * (size_of::<(K, V)>() + 1)
}

/// The allocation of an `Arc<T>`: the value and its two counters.
pub(crate) fn arc<T>() -> usize {
    allocation(size_of::<T>() + 2 * size_of::<usize>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_round_as_glibc_does() {
        assert_eq!(allocation(0), 0);
        assert_eq!(allocation(1), 32);
        assert_eq!(allocation(24), 32);
        assert_eq!(allocation(25), 48);
        assert_eq!(allocation(1000), 1008);
    }

    #[test]
    fn a_string_counts_its_capacity_not_its_length() {
        let mut s = String::with_capacity(1000);
        s.push('x');
        assert_eq!(string(&s), allocation(1000));
    }

    #[test]
    fn a_small_btree_map_costs_a_whole_node_and_a_large_one_grows_with_it() {
        let one = btree_map::<String, String>(1);
        assert_eq!(one, btree_map::<String, String>(11));
        assert!(one >= 11 * 48, "{one}");
        let many = btree_map::<String, String>(8_000);
        assert!(many > 1_000 * one && many < 1_200 * one, "{many}");
    }

    #[test]
    fn a_hash_map_counts_its_slots() {
        let map: std::collections::HashMap<u64, u64> = (0..100).map(|n| (n, n)).collect();
        let bytes = hash_map::<u64, u64>(map.capacity());
        // 128 slots of 16 bytes and a control byte each.
        assert_eq!(bytes, allocation(128 * 17 + 16));
    }
}
