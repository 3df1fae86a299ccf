//! The mapping database: for every physical frame, the derivation tree of
//! the 4 KiB mappings of that frame.
//!
//! A node is one mapping `(space, vpage, frame, rights)`, where `vpage` is
//! the virtual address >> 12 and `frame` the physical address of the frame.
//! Roots are mappings the kernel created itself (sigma0 owns all memory); a
//! child is a mapping made by IPC map (or moved there by grant) from its
//! parent. Flush (`unmap`) of a node revokes recursively from all its
//! descendants, optionally from the node itself; revoking READ removes the
//! mappings (with their subtrees), revoking only WRITE/EXEC reduces rights.
//!
//! The module is pure logic: no allocation, no hardware. The kernel hands
//! it the storage (`[Node; N]` and a `[u32; M]` hash index) and applies the
//! page-table changes it reports through the `on_update` callbacks; the
//! host tests drive it against a simple model.
//!
//! # Storage
//! Nodes live in a caller-provided slice; links are `u32` indices with
//! `u32::MAX` meaning "none": `parent`, `first_child`, `next_sibling` and
//! `prev_sibling` (the last makes unlinking O(1)). Free nodes form a singly
//! linked free list through `next_sibling`. `index` is an open-addressing
//! hash table (multiplicative hash, linear probing, backward-shift deletion,
//! no tombstones) from `(space, vpage)` to node index, `u32::MAX` = empty.
//! Its size is a power of two and at least twice the node capacity, so the
//! load factor never exceeds 1/2 and probe sequences stay short.
//!
//! # Invariants (all checked by [`MapDb::check`])
//! 1. Tree links agree: a live node's parent is live and either lists it as
//!    `first_child` (when it has no previous sibling) or reaches it through
//!    its sibling chain; `prev`/`next` sibling links are mutual and siblings
//!    share the parent; a `first_child` has that node as parent and no
//!    previous sibling; roots have no siblings. There are no cycles: every
//!    live node is reached exactly once by walking down from the roots.
//! 2. `child.frame == parent.frame` (a derived mapping maps the same frame,
//!    so no frame is reachable from a space that was not given it).
//! 3. `child.rights ⊆ parent.rights`; every live mapping has READ and no
//!    bits outside `Rights::ALL`.
//! 4. Every live node is in the index exactly once, under its own key, at a
//!    slot reachable by probing from the key's home slot; the index holds
//!    nothing else. Hence no two live nodes share `(space, vpage)`.
//! 5. Free list + live nodes = capacity (the free list is acyclic and holds
//!    only free nodes), and `len()` equals the number of live nodes.
//!
//! # Bounded work
//! No function recurses; every tree walk is an iterative loop over the
//! links, so kernel stack use is constant. Hash operations are expected
//! O(1) (load factor <= 1/2) and never probe more than the table size.
//! Allocating, linking, unlinking and freeing a node are O(1). `map` and
//! `grant` additionally walk the ancestor chain of `from` (cycle check,
//! O(depth)) and `grant` that of `to`; removing or reducing a subtree
//! touches every node of it a constant number of times, so those walks are
//! O(size of the subtree) — exactly the work the caller must do anyway for
//! the page-table entries it updates. `remove_space` scans the node array
//! once (O(capacity)) plus the removed subtrees. Everything is bounded by
//! the capacity fixed at boot.

/// Address-space identifier.
pub type SpaceId = u16;

const NIL: u32 = u32::MAX;

/// Access rights, same bit values as `abi::ipc::rights`: READ = 4, WRITE = 2, EXEC = 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rights(pub u8);

impl Rights {
    pub const READ: Rights = Rights(4);
    pub const WRITE: Rights = Rights(2);
    pub const EXEC: Rights = Rights(1);
    pub const ALL: Rights = Rights(7);
    pub const NONE: Rights = Rights(0);

    /// All bits of `o` are in `self`.
    pub const fn contains(self, o: Rights) -> bool {
        self.0 & o.0 == o.0
    }

    /// Intersection.
    pub const fn and(self, o: Rights) -> Rights {
        Rights(self.0 & o.0)
    }

    /// `self` minus the bits of `o`.
    pub const fn without(self, o: Rights) -> Rights {
        Rights(self.0 & !o.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapDbError {
    /// No free node.
    Full,
    /// The source mapping does not exist.
    NotMapped,
    /// The destination is already mapped (`insert_root`).
    Exists,
    /// The resulting mapping would lack READ.
    NoRights,
    /// The operation would make a mapping derive from itself.
    Cycle,
}

/// Storage element; the kernel allocates `[Node; N]` (initialised with
/// [`Node::EMPTY`]) and hands it to [`MapDb::new`].
#[derive(Clone, Copy)]
pub struct Node {
    vpage: u64,
    frame: u64,
    parent: u32,
    first_child: u32,
    /// Next sibling when live, next free node when free.
    next_sibling: u32,
    prev_sibling: u32,
    space: SpaceId,
    rights: Rights,
    live: bool,
}

impl Node {
    pub const EMPTY: Node = Node {
        vpage: 0,
        frame: 0,
        parent: NIL,
        first_child: NIL,
        next_sibling: NIL,
        prev_sibling: NIL,
        space: 0,
        rights: Rights::NONE,
        live: false,
    };

    fn is(&self, space: SpaceId, vpage: u64) -> bool {
        self.live && self.space == space && self.vpage == vpage
    }
}

/// The mapping database over caller-provided storage.
pub struct MapDb<'a> {
    nodes: &'a mut [Node],
    index: &'a mut [u32],
    /// Head of the free list.
    free: u32,
    len: usize,
    /// `64 - log2(index.len())`: the hash keeps the top bits.
    shift: u32,
}

impl<'a> MapDb<'a> {
    /// `index.len()` must be a power of two and `>= 2 * nodes.len()`, and
    /// `nodes.len() < u32::MAX` (panics otherwise: a boot-time configuration
    /// check, not user input). Both slices are (re)initialised here.
    pub fn new(nodes: &'a mut [Node], index: &'a mut [u32]) -> MapDb<'a> {
        assert!(nodes.len() < NIL as usize, "mapdb: too many nodes");
        assert!(index.len().is_power_of_two(), "mapdb: index size must be a power of two");
        assert!(index.len() / 2 >= nodes.len(), "mapdb: index must have at least twice as many slots as nodes");
        let cap = nodes.len();
        for (i, n) in nodes.iter_mut().enumerate() {
            *n = Node::EMPTY;
            n.next_sibling = if i + 1 < cap { (i + 1) as u32 } else { NIL };
        }
        index.fill(NIL);
        let shift = 64 - index.len().trailing_zeros();
        MapDb { nodes, index, free: if cap > 0 { 0 } else { NIL }, len: 0, shift }
    }

    /// Number of nodes (mappings) the database can hold.
    pub fn capacity(&self) -> usize {
        self.nodes.len()
    }

    /// Number of live mappings.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapping of (space, vpage): (frame, rights).
    pub fn lookup(&self, space: SpaceId, vpage: u64) -> Option<(u64, Rights)> {
        self.node_of(space, vpage).map(|i| {
            let n = &self.nodes[i as usize];
            (n.frame, n.rights)
        })
    }

    /// Every live mapping: (space, vpage, frame, rights). O(capacity).
    pub fn mappings(&self) -> impl Iterator<Item = (SpaceId, u64, u64, Rights)> + '_ {
        self.nodes.iter().filter(|n| n.live).map(|n| (n.space, n.vpage, n.frame, n.rights))
    }

    /// A kernel-created mapping (root of a tree). Rights outside
    /// `Rights::ALL` are dropped. Errors: `NoRights` (rights lack READ),
    /// `Exists` ((space, vpage) is mapped), `Full`.
    pub fn insert_root(&mut self, space: SpaceId, vpage: u64, frame: u64, rights: Rights) -> Result<(), MapDbError> {
        let rights = rights.and(Rights::ALL);
        if !rights.contains(Rights::READ) {
            return Err(MapDbError::NoRights);
        }
        if self.node_of(space, vpage).is_some() {
            return Err(MapDbError::Exists);
        }
        self.alloc(space, vpage, frame, rights, NIL).map(|_| ()).ok_or(MapDbError::Full)
    }

    /// Maps `from`'s page to `to` with rights = from.rights AND `rights`.
    ///
    /// Errors (checked in this order, nothing changed on error): `NotMapped`
    /// (from absent), `NoRights` (effective rights lack READ), `Cycle` (`to`
    /// is `from` or an ancestor of it), `Full` (no free node).
    ///
    /// If `to` is already mapped its whole subtree is removed first, with
    /// `on_update(space, vpage, None)` for each removed mapping (including
    /// `to`'s old one). Returns (frame, effective rights) for the caller's
    /// page-table entry of `to` (no `on_update` for the new mapping).
    pub fn map(
        &mut self,
        from: (SpaceId, u64),
        to: (SpaceId, u64),
        rights: Rights,
        on_update: &mut dyn FnMut(SpaceId, u64, Option<Rights>),
    ) -> Result<(u64, Rights), MapDbError> {
        let f = self.node_of(from.0, from.1).ok_or(MapDbError::NotMapped)?;
        let eff = self.nodes[f as usize].rights.and(rights);
        if !eff.contains(Rights::READ) {
            return Err(MapDbError::NoRights);
        }
        if to == from || self.has_ancestor(f, to) {
            return Err(MapDbError::Cycle);
        }
        let t = self.node_of(to.0, to.1);
        if t.is_none() && self.free == NIL {
            return Err(MapDbError::Full);
        }
        if let Some(t) = t {
            // `t` is neither `f` nor an ancestor of it, so `f` survives.
            self.remove_subtree(t, on_update);
        }
        let frame = self.nodes[f as usize].frame;
        // Cannot fail: either a node was free or `t`'s removal freed one.
        self.alloc(to.0, to.1, frame, eff, f).ok_or(MapDbError::Full)?;
        Ok((frame, eff))
    }

    /// Grant: like `map`, but the node moves from `from` to `to`: the
    /// granter loses it, its descendants stay and now descend from `to`.
    /// `on_update(from.0, from.1, None)` is called for the granter's entry.
    /// If the effective rights are less than the old ones, descendants are
    /// reduced too (`on_update(.., Some(new))` for each changed one).
    ///
    /// Errors as `map`; `Cycle` also if `to` is a descendant of `from`.
    /// Grant needs no new node, so it never returns `Full`.
    pub fn grant(
        &mut self,
        from: (SpaceId, u64),
        to: (SpaceId, u64),
        rights: Rights,
        on_update: &mut dyn FnMut(SpaceId, u64, Option<Rights>),
    ) -> Result<(u64, Rights), MapDbError> {
        let f = self.node_of(from.0, from.1).ok_or(MapDbError::NotMapped)?;
        let old = self.nodes[f as usize].rights;
        let eff = old.and(rights);
        if !eff.contains(Rights::READ) {
            return Err(MapDbError::NoRights);
        }
        if to == from || self.has_ancestor(f, to) {
            return Err(MapDbError::Cycle);
        }
        let t = self.node_of(to.0, to.1);
        if let Some(t) = t {
            if self.has_ancestor(t, from) {
                return Err(MapDbError::Cycle);
            }
            self.remove_subtree(t, on_update);
        }
        // Re-key `f`: out of the index under `from`, back in under `to`.
        if let Some(slot) = self.slot_of(from.0, from.1) {
            self.index_remove(slot);
        }
        let n = &mut self.nodes[f as usize];
        n.space = to.0;
        n.vpage = to.1;
        n.rights = eff;
        let frame = n.frame;
        self.index_insert(f);
        on_update(from.0, from.1, None);
        if eff != old {
            self.restrict_subtree(f, false, eff, on_update);
        }
        Ok((frame, eff))
    }

    /// Flush: for every descendant of (space, vpage) — and the node itself
    /// if `include_self` — remove the `revoke` rights. A mapping that loses
    /// READ (revoke contains READ) is removed together with its subtree;
    /// otherwise its rights become `rights.without(revoke)`. `on_update` is
    /// called once per changed mapping (None = removed, Some(r) = new
    /// rights). Returns the number of mappings changed; not mapped -> 0.
    pub fn unmap(
        &mut self,
        space: SpaceId,
        vpage: u64,
        revoke: Rights,
        include_self: bool,
        on_update: &mut dyn FnMut(SpaceId, u64, Option<Rights>),
    ) -> usize {
        let Some(n) = self.node_of(space, vpage) else {
            return 0;
        };
        let revoke = revoke.and(Rights::ALL);
        if revoke.contains(Rights::READ) {
            if include_self {
                return self.remove_subtree(n, on_update);
            }
            let mut count = 0;
            loop {
                let c = self.nodes[n as usize].first_child;
                if c == NIL {
                    return count;
                }
                count += self.remove_subtree(c, on_update);
            }
        }
        if revoke.is_empty() {
            return 0;
        }
        self.restrict_subtree(n, include_self, Rights::ALL.without(revoke), on_update)
    }

    /// Removes every mapping of `space` and all their descendants (in any
    /// space), calling `on_update(.., None)` for each. Returns the count.
    /// O(capacity): one scan of the node array.
    pub fn remove_space(&mut self, space: SpaceId, on_update: &mut dyn FnMut(SpaceId, u64, Option<Rights>)) -> usize {
        let mut count = 0;
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if n.live && n.space == space {
                count += self.remove_subtree(i as u32, on_update);
            }
        }
        count
    }

    /// Checks every invariant of the module doc; `Err` names the broken one.
    /// O(capacity + index size); the kernel calls it in debug builds.
    pub fn check(&self) -> Result<(), &'static str> {
        let cap = self.nodes.len();
        let live_node = |i: u32| self.nodes.get(i as usize).filter(|n| n.live);
        let mut live = 0usize;
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.live {
                continue;
            }
            let i = i as u32;
            live += 1;
            if !n.rights.contains(Rights::READ) || !Rights::ALL.contains(n.rights) {
                return Err("rights: live mapping without READ or with unknown bits");
            }
            match self.slot_of(n.space, n.vpage) {
                Some(s) if self.index[s] == i => {}
                _ => return Err("index: live node not found under its own key (missing or duplicate key)"),
            }
            if n.parent != NIL {
                let p = live_node(n.parent).ok_or("links: parent is free or out of range")?;
                if p.frame != n.frame {
                    return Err("frame: child maps another frame than its parent");
                }
                if !p.rights.contains(n.rights) {
                    return Err("rights: child has rights its parent lacks");
                }
                if n.prev_sibling == NIL && p.first_child != i {
                    return Err("links: first sibling is not its parent's first child");
                }
            } else if n.prev_sibling != NIL || n.next_sibling != NIL {
                return Err("links: root with siblings");
            }
            if n.prev_sibling != NIL {
                let s = live_node(n.prev_sibling).ok_or("links: prev sibling is free or out of range")?;
                if s.next_sibling != i || s.parent != n.parent {
                    return Err("links: prev sibling disagrees");
                }
            }
            if n.next_sibling != NIL {
                let s = live_node(n.next_sibling).ok_or("links: next sibling is free or out of range")?;
                if s.prev_sibling != i {
                    return Err("links: next sibling disagrees");
                }
            }
            if n.first_child != NIL {
                let c = live_node(n.first_child).ok_or("links: first child is free or out of range")?;
                if c.parent != i || c.prev_sibling != NIL {
                    return Err("links: first child disagrees");
                }
            }
        }
        if live != self.len {
            return Err("len: differs from the number of live nodes");
        }
        // Acyclic: with the local link checks above every node has at most
        // one way in, so a walk down from the roots meets each reachable
        // node once; all live nodes must be reached.
        let mut reached = 0usize;
        for (r, n) in self.nodes.iter().enumerate() {
            if !n.live || n.parent != NIL {
                continue;
            }
            let mut cur = r as u32;
            while cur != NIL {
                reached += 1;
                if reached > live {
                    return Err("links: cycle");
                }
                cur = self.next_preorder(cur, r as u32);
            }
        }
        if reached != live {
            return Err("links: cycle (live node not reachable from a root)");
        }
        let mut used = 0usize;
        for (s, &v) in self.index.iter().enumerate() {
            if v == NIL {
                continue;
            }
            used += 1;
            let n = live_node(v).ok_or("index: entry names a free or out-of-range node")?;
            if self.slot_of(n.space, n.vpage) != Some(s) {
                return Err("index: entry unreachable from its home slot or duplicated");
            }
        }
        if used != live {
            return Err("index: entry count differs from the number of live nodes");
        }
        let mut free = 0usize;
        let mut f = self.free;
        while f != NIL {
            let n = self.nodes.get(f as usize).ok_or("free list: out of range")?;
            if n.live {
                return Err("free list: holds a live node");
            }
            free += 1;
            if free > cap {
                return Err("free list: cycle");
            }
            f = n.next_sibling;
        }
        if free + live != cap {
            return Err("free list: free + live != capacity");
        }
        Ok(())
    }

    // ---- hash index ----

    fn home(&self, space: SpaceId, vpage: u64) -> usize {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let k = vpage ^ (space as u64).rotate_right(16);
        let h = (k ^ (k >> 29)).wrapping_mul(K);
        // shift == 64 for a one-slot index: every key goes to slot 0.
        h.checked_shr(self.shift).unwrap_or(0) as usize
    }

    /// Slot of the index entry for (space, vpage).
    fn slot_of(&self, space: SpaceId, vpage: u64) -> Option<usize> {
        let mask = self.index.len() - 1;
        let mut s = self.home(space, vpage);
        for _ in 0..self.index.len() {
            let v = self.index[s];
            if v == NIL {
                return None;
            }
            if self.nodes.get(v as usize).is_some_and(|n| n.is(space, vpage)) {
                return Some(s);
            }
            s = (s + 1) & mask;
        }
        None
    }

    fn node_of(&self, space: SpaceId, vpage: u64) -> Option<u32> {
        self.slot_of(space, vpage).map(|s| self.index[s])
    }

    /// Enters live node `i` (whose key is not yet in the index).
    fn index_insert(&mut self, i: u32) {
        let mask = self.index.len() - 1;
        let n = &self.nodes[i as usize];
        let mut s = self.home(n.space, n.vpage);
        // Terminates: the load factor is at most 1/2.
        while self.index[s] != NIL {
            s = (s + 1) & mask;
        }
        self.index[s] = i;
    }

    /// Empties `slot`, shifting later entries of the probe run back so no
    /// lookup ever stops early at the hole.
    fn index_remove(&mut self, slot: usize) {
        let mask = self.index.len() - 1;
        let mut hole = slot;
        let mut j = slot;
        loop {
            j = (j + 1) & mask;
            let v = self.index[j];
            if v == NIL {
                break;
            }
            let n = &self.nodes[v as usize];
            let home = self.home(n.space, n.vpage);
            // The entry at `j` may fill the hole iff the hole lies on its
            // probe path, i.e. not after its home (cyclically).
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.index[hole] = v;
                hole = j;
            }
        }
        self.index[hole] = NIL;
    }

    // ---- nodes and tree links ----

    /// Takes a free node, fills it in, makes it the first child of `parent`
    /// (unless NIL) and enters it in the index. None if no node is free.
    fn alloc(&mut self, space: SpaceId, vpage: u64, frame: u64, rights: Rights, parent: u32) -> Option<u32> {
        let i = self.free;
        if i == NIL {
            return None;
        }
        self.free = self.nodes[i as usize].next_sibling;
        let next = if parent == NIL { NIL } else { self.nodes[parent as usize].first_child };
        self.nodes[i as usize] = Node {
            vpage,
            frame,
            parent,
            first_child: NIL,
            next_sibling: next,
            prev_sibling: NIL,
            space,
            rights,
            live: true,
        };
        if next != NIL {
            self.nodes[next as usize].prev_sibling = i;
        }
        if parent != NIL {
            self.nodes[parent as usize].first_child = i;
        }
        self.len += 1;
        self.index_insert(i);
        Some(i)
    }

    /// Detaches `i` from its parent and siblings (its children stay).
    fn unlink(&mut self, i: u32) {
        let n = self.nodes[i as usize];
        if n.prev_sibling != NIL {
            self.nodes[n.prev_sibling as usize].next_sibling = n.next_sibling;
        } else if n.parent != NIL {
            self.nodes[n.parent as usize].first_child = n.next_sibling;
        }
        if n.next_sibling != NIL {
            self.nodes[n.next_sibling as usize].prev_sibling = n.prev_sibling;
        }
        let n = &mut self.nodes[i as usize];
        n.parent = NIL;
        n.prev_sibling = NIL;
        n.next_sibling = NIL;
    }

    /// Removes `root` and all its descendants, leaves first, calling
    /// `on_update(.., None)` for each. Returns the count.
    fn remove_subtree(&mut self, root: u32, on_update: &mut dyn FnMut(SpaceId, u64, Option<Rights>)) -> usize {
        self.unlink(root);
        let mut count = 0;
        let mut cur = root;
        loop {
            // Each node is descended into once and left once (when freed).
            while self.nodes[cur as usize].first_child != NIL {
                cur = self.nodes[cur as usize].first_child;
            }
            let parent = self.nodes[cur as usize].parent;
            let done = cur == root;
            self.unlink(cur);
            let (space, vpage) = (self.nodes[cur as usize].space, self.nodes[cur as usize].vpage);
            self.release(cur);
            on_update(space, vpage, None);
            count += 1;
            if done {
                return count;
            }
            cur = parent;
        }
    }

    /// Frees unlinked, childless node `i`: out of the index, onto the free list.
    fn release(&mut self, i: u32) {
        let n = self.nodes[i as usize];
        if let Some(slot) = self.slot_of(n.space, n.vpage) {
            self.index_remove(slot);
        }
        self.nodes[i as usize] = Node { next_sibling: self.free, ..Node::EMPTY };
        self.free = i;
        self.len -= 1;
    }

    /// Preorder successor of `cur` within the subtree of `root`.
    fn next_preorder(&self, cur: u32, root: u32) -> u32 {
        let fc = self.nodes[cur as usize].first_child;
        if fc != NIL {
            return fc;
        }
        let mut c = cur;
        while c != root {
            let n = &self.nodes[c as usize];
            if n.next_sibling != NIL {
                return n.next_sibling;
            }
            c = n.parent;
        }
        NIL
    }

    /// Restricts the rights of `root`'s descendants (and `root` itself if
    /// `include_root`) to `mask`; `on_update(.., Some(new))` per change.
    fn restrict_subtree(
        &mut self,
        root: u32,
        include_root: bool,
        mask: Rights,
        on_update: &mut dyn FnMut(SpaceId, u64, Option<Rights>),
    ) -> usize {
        let mut count = 0;
        let mut cur = if include_root { root } else { self.next_preorder(root, root) };
        while cur != NIL {
            let n = &mut self.nodes[cur as usize];
            let r = n.rights.and(mask);
            if r != n.rights {
                n.rights = r;
                on_update(n.space, n.vpage, Some(r));
                count += 1;
            }
            cur = self.next_preorder(cur, root);
        }
        count
    }

    /// Whether some strict ancestor of node `i` has key `key`. O(depth).
    fn has_ancestor(&self, i: u32, key: (SpaceId, u64)) -> bool {
        let mut p = self.nodes[i as usize].parent;
        while p != NIL {
            let n = &self.nodes[p as usize];
            if n.space == key.0 && n.vpage == key.1 {
                return true;
            }
            p = n.parent;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};
    use std::vec::Vec;

    type Key = (SpaceId, u64);
    const R: Rights = Rights::READ;
    const RW: Rights = Rights(6);
    const RX: Rights = Rights(5);
    const F0: u64 = 0x10_0000;

    struct Store {
        nodes: Vec<Node>,
        index: Vec<u32>,
    }

    fn store(cap: usize) -> Store {
        let idx = (2 * cap).next_power_of_two().max(1);
        Store { nodes: vec![Node::EMPTY; cap], index: vec![NIL; idx] }
    }

    fn db(s: &mut Store) -> MapDb<'_> {
        MapDb::new(&mut s.nodes, &mut s.index)
    }

    /// Records every on_update call.
    #[derive(Default)]
    struct Log(Vec<(SpaceId, u64, Option<Rights>)>);

    impl Log {
        fn f(&mut self) -> impl FnMut(SpaceId, u64, Option<Rights>) + '_ {
            |s, v, r| self.0.push((s, v, r))
        }
        fn sorted(&self) -> Vec<(SpaceId, u64, Option<Rights>)> {
            let mut v = self.0.clone();
            v.sort_by_key(|&(s, p, r)| (s, p, r.map(|r| r.0)));
            v
        }
    }

    fn nop() -> impl FnMut(SpaceId, u64, Option<Rights>) {
        |_, _, _| {}
    }

    /// Snapshot of every mapping in a small universe.
    fn snapshot(db: &MapDb, spaces: u16, vpages: u64) -> Vec<Option<(u64, Rights)>> {
        let mut v = Vec::new();
        for s in 0..spaces {
            for p in 0..vpages {
                v.push(db.lookup(s, p));
            }
        }
        v
    }

    /// Root in space 0 -> 1 -> 2 -> 3, all at vpage = space + 10.
    fn chain(db: &mut MapDb) {
        db.insert_root(0, 10, F0, Rights::ALL).unwrap();
        for s in 1..4u16 {
            db.map((s - 1, 10 + s as u64 - 1), (s, 10 + s as u64), Rights::ALL, &mut nop()).unwrap();
        }
        db.check().unwrap();
    }

    #[test]
    fn rights_ops() {
        assert!(Rights::ALL.contains(RW));
        assert!(!RW.contains(Rights::EXEC));
        assert!(RW.contains(Rights::NONE));
        assert_eq!(RW.and(RX), R);
        assert_eq!(Rights::ALL.without(Rights::WRITE), RX);
        assert!(Rights::NONE.is_empty() && !R.is_empty());
        assert_eq!(Rights::default(), Rights::NONE);
        assert_eq!(Rights::READ.0 as u64, abi::ipc::rights::READ);
        assert_eq!(Rights::WRITE.0 as u64, abi::ipc::rights::WRITE);
        assert_eq!(Rights::EXEC.0 as u64, abi::ipc::rights::EXEC);
    }

    #[test]
    #[should_panic]
    fn new_rejects_small_index() {
        let mut nodes = [Node::EMPTY; 8];
        let mut index = [NIL; 8];
        MapDb::new(&mut nodes, &mut index);
    }

    #[test]
    #[should_panic]
    fn new_rejects_non_power_of_two_index() {
        let mut nodes = [Node::EMPTY; 4];
        let mut index = [NIL; 12];
        MapDb::new(&mut nodes, &mut index);
    }

    #[test]
    fn empty_and_zero_capacity() {
        let mut s = store(0);
        let mut d = db(&mut s);
        assert_eq!(d.capacity(), 0);
        assert!(d.is_empty());
        assert_eq!(d.insert_root(0, 0, F0, R), Err(MapDbError::Full));
        assert_eq!(d.lookup(0, 0), None);
        d.check().unwrap();
    }

    #[test]
    fn insert_root_and_lookup() {
        let mut s = store(4);
        let mut d = db(&mut s);
        assert_eq!(d.capacity(), 4);
        d.insert_root(1, 5, F0, Rights(0xff)).unwrap();
        assert_eq!(d.lookup(1, 5), Some((F0, Rights::ALL)), "unknown bits are dropped");
        assert_eq!(d.lookup(1, 6), None);
        assert_eq!(d.lookup(2, 5), None);
        assert_eq!(d.len(), 1);
        assert!(!d.is_empty());
        assert_eq!(d.insert_root(1, 5, F0 + 0x1000, R), Err(MapDbError::Exists));
        assert_eq!(d.insert_root(1, 7, F0, Rights::WRITE), Err(MapDbError::NoRights));
        for v in 6..9 {
            d.insert_root(1, v, F0, R).unwrap();
        }
        assert_eq!(d.insert_root(1, 9, F0, R), Err(MapDbError::Full));
        assert_eq!(d.len(), 4);
        d.check().unwrap();
    }

    #[test]
    fn map_restricts_rights() {
        let mut s = store(8);
        let mut d = db(&mut s);
        d.insert_root(0, 1, F0, RW).unwrap();
        let mut log = Log::default();
        assert_eq!(d.map((0, 1), (1, 2), RX, &mut log.f()), Ok((F0, R)));
        assert!(log.0.is_empty());
        assert_eq!(d.lookup(1, 2), Some((F0, R)));
        assert_eq!(d.lookup(0, 1), Some((F0, RW)), "the mapper keeps its mapping");
        // A child cannot regain rights its parent lacks.
        assert_eq!(d.map((1, 2), (2, 3), Rights::ALL, &mut log.f()), Ok((F0, R)));
        d.check().unwrap();
    }

    #[test]
    fn map_errors() {
        let mut s = store(8);
        let mut d = db(&mut s);
        chain(&mut d);
        let before = snapshot(&d, 4, 16);
        let mut log = Log::default();
        assert_eq!(d.map((0, 0), (1, 0), R, &mut log.f()), Err(MapDbError::NotMapped));
        assert_eq!(d.map((0, 10), (1, 0), Rights::WRITE, &mut log.f()), Err(MapDbError::NoRights));
        assert_eq!(d.map((0, 10), (1, 0), Rights::NONE, &mut log.f()), Err(MapDbError::NoRights));
        assert_eq!(d.map((2, 12), (2, 12), R, &mut log.f()), Err(MapDbError::Cycle));
        assert_eq!(d.map((2, 12), (1, 11), R, &mut log.f()), Err(MapDbError::Cycle));
        assert_eq!(d.map((3, 13), (0, 10), R, &mut log.f()), Err(MapDbError::Cycle));
        assert!(log.0.is_empty());
        assert_eq!(snapshot(&d, 4, 16), before);
        d.check().unwrap();
    }

    #[test]
    fn map_to_descendant_replaces_it() {
        let mut s = store(8);
        let mut d = db(&mut s);
        chain(&mut d);
        // Space 1 maps its page over space 3's mapping (a descendant): allowed;
        // the old space-3 mapping (a leaf) goes.
        let mut log = Log::default();
        assert_eq!(d.map((1, 11), (3, 13), R, &mut log.f()), Ok((F0, R)));
        assert_eq!(log.0, vec![(3, 13, None)]);
        assert_eq!(d.lookup(3, 13), Some((F0, R)));
        // Now space 3 derives from space 1: flushing space 2 leaves it.
        assert_eq!(d.unmap(2, 12, R, true, &mut nop()), 1);
        assert_eq!(d.lookup(3, 13), Some((F0, R)));
        d.check().unwrap();
    }

    #[test]
    fn map_over_existing_removes_old_subtree() {
        let mut s = store(8);
        let mut d = db(&mut s);
        chain(&mut d);
        d.insert_root(0, 20, F0 + 0x1000, Rights::ALL).unwrap();
        // Space 0's other page is mapped over space 1's: 1, 2, 3 lose the old frame.
        let mut log = Log::default();
        assert_eq!(d.map((0, 20), (1, 11), RW, &mut log.f()), Ok((F0 + 0x1000, RW)));
        assert_eq!(log.sorted(), vec![(1, 11, None), (2, 12, None), (3, 13, None)]);
        assert_eq!(d.lookup(1, 11), Some((F0 + 0x1000, RW)));
        assert_eq!(d.lookup(2, 12), None);
        assert_eq!(d.lookup(3, 13), None);
        assert_eq!(d.lookup(0, 10), Some((F0, Rights::ALL)));
        assert_eq!(d.len(), 3);
        d.check().unwrap();
    }

    #[test]
    fn full_leaves_db_unchanged() {
        let mut s = store(4);
        let mut d = db(&mut s);
        chain(&mut d);
        assert_eq!(d.len(), 4);
        let before = snapshot(&d, 4, 16);
        let mut log = Log::default();
        assert_eq!(d.map((0, 10), (2, 0), R, &mut log.f()), Err(MapDbError::Full));
        assert_eq!(d.insert_root(2, 0, F0, R), Err(MapDbError::Full));
        assert!(log.0.is_empty());
        assert_eq!(snapshot(&d, 4, 16), before);
        assert_eq!(d.len(), 4);
        d.check().unwrap();
        // Mapping over an existing mapping frees a node first, so it works when full.
        assert_eq!(d.map((0, 10), (3, 13), R, &mut log.f()), Ok((F0, R)));
        assert_eq!(log.0, vec![(3, 13, None)]);
        // Grant needs no node.
        assert_eq!(d.grant((3, 13), (3, 14), R, &mut nop()), Ok((F0, R)));
        d.check().unwrap();
    }

    #[test]
    fn three_level_flush_removes_exactly_derived() {
        let mut s = store(8);
        let mut d = db(&mut s);
        chain(&mut d);
        d.insert_root(2, 99, F0 + 0x2000, R).unwrap(); // unrelated mapping of space 2
        let mut log = Log::default();
        assert_eq!(d.unmap(1, 11, R, false, &mut log.f()), 2);
        assert_eq!(log.sorted(), vec![(2, 12, None), (3, 13, None)]);
        assert_eq!(d.lookup(0, 10), Some((F0, Rights::ALL)));
        assert_eq!(d.lookup(1, 11), Some((F0, Rights::ALL)));
        assert_eq!(d.lookup(2, 12), None);
        assert_eq!(d.lookup(3, 13), None);
        assert_eq!(d.lookup(2, 99), Some((F0 + 0x2000, R)));
        assert_eq!(d.len(), 3);
        d.check().unwrap();
    }

    #[test]
    fn flush_including_self() {
        let mut s = store(8);
        let mut d = db(&mut s);
        chain(&mut d);
        let mut log = Log::default();
        assert_eq!(d.unmap(1, 11, Rights::ALL, true, &mut log.f()), 3);
        assert_eq!(log.sorted(), vec![(1, 11, None), (2, 12, None), (3, 13, None)]);
        assert_eq!(d.lookup(0, 10), Some((F0, Rights::ALL)));
        assert_eq!(d.len(), 1);
        d.check().unwrap();
        // Flushing a root with include_self removes the whole tree.
        d.map((0, 10), (1, 11), R, &mut nop()).unwrap();
        assert_eq!(d.unmap(0, 10, R, true, &mut nop()), 2);
        assert!(d.is_empty());
        d.check().unwrap();
    }

    #[test]
    fn flush_of_wide_tree() {
        let mut s = store(16);
        let mut d = db(&mut s);
        d.insert_root(0, 0, F0, Rights::ALL).unwrap();
        for v in 0..5 {
            d.map((0, 0), (1, v), Rights::ALL, &mut nop()).unwrap();
            for w in 0..2 {
                d.map((1, v), (2, v * 2 + w), RW, &mut nop()).unwrap();
            }
        }
        assert_eq!(d.len(), 16);
        d.check().unwrap();
        // Remove one middle child of the root: its two children go with it.
        assert_eq!(d.unmap(1, 2, R, true, &mut nop()), 3);
        d.check().unwrap();
        assert_eq!(d.unmap(0, 0, R, false, &mut nop()), 12);
        assert_eq!(d.len(), 1);
        d.check().unwrap();
    }

    #[test]
    fn rights_reduction() {
        let mut s = store(8);
        let mut d = db(&mut s);
        chain(&mut d);
        let mut log = Log::default();
        assert_eq!(d.unmap(1, 11, Rights::WRITE, false, &mut log.f()), 2);
        assert_eq!(log.sorted(), vec![(2, 12, Some(RX)), (3, 13, Some(RX))]);
        assert_eq!(d.lookup(0, 10), Some((F0, Rights::ALL)));
        assert_eq!(d.lookup(1, 11), Some((F0, Rights::ALL)), "include_self = false keeps the node's rights");
        assert_eq!(d.lookup(2, 12), Some((F0, RX)));
        assert_eq!(d.lookup(3, 13), Some((F0, RX)));
        // Again: nothing left to change.
        assert_eq!(d.unmap(1, 11, Rights::WRITE, false, &mut nop()), 0);
        // Including self, exec too; unchanged mappings are not reported.
        let mut log = Log::default();
        assert_eq!(d.unmap(1, 11, Rights(3), true, &mut log.f()), 3);
        assert_eq!(log.sorted(), vec![(1, 11, Some(R)), (2, 12, Some(R)), (3, 13, Some(R))]);
        assert_eq!(d.unmap(1, 11, Rights::NONE, true, &mut nop()), 0);
        assert_eq!(d.len(), 4);
        d.check().unwrap();
    }

    #[test]
    fn unmap_not_mapped() {
        let mut s = store(4);
        let mut d = db(&mut s);
        let mut log = Log::default();
        assert_eq!(d.unmap(0, 0, Rights::ALL, true, &mut log.f()), 0);
        assert!(log.0.is_empty());
    }

    #[test]
    fn grant_moves_node_and_children() {
        let mut s = store(8);
        let mut d = db(&mut s);
        chain(&mut d);
        let mut log = Log::default();
        assert_eq!(d.grant((1, 11), (2, 50), Rights::ALL, &mut log.f()), Ok((F0, Rights::ALL)));
        assert_eq!(log.0, vec![(1, 11, None)]);
        assert_eq!(d.lookup(1, 11), None);
        assert_eq!(d.lookup(2, 50), Some((F0, Rights::ALL)));
        assert_eq!(d.len(), 4);
        d.check().unwrap();
        // Space 2's old mapping now derives from (2, 50).
        assert_eq!(d.unmap(2, 50, R, false, &mut nop()), 2);
        assert_eq!(d.lookup(0, 10), Some((F0, Rights::ALL)));
        assert_eq!(d.lookup(2, 50), Some((F0, Rights::ALL)));
        d.check().unwrap();
        // Flushing the root reaches the granted node.
        assert_eq!(d.unmap(0, 10, R, false, &mut nop()), 1);
        d.check().unwrap();
    }

    #[test]
    fn grant_with_fewer_rights_reduces_descendants() {
        let mut s = store(8);
        let mut d = db(&mut s);
        chain(&mut d);
        d.unmap(2, 12, Rights::EXEC, false, &mut nop()); // space 3: RW
        let mut log = Log::default();
        assert_eq!(d.grant((1, 11), (1, 40), RX, &mut log.f()), Ok((F0, RX)));
        assert_eq!(log.0, vec![(1, 11, None), (2, 12, Some(RX)), (3, 13, Some(R))]);
        assert_eq!(d.lookup(1, 40), Some((F0, RX)));
        assert_eq!(d.lookup(3, 13), Some((F0, R)));
        d.check().unwrap();
    }

    #[test]
    fn grant_errors() {
        let mut s = store(8);
        let mut d = db(&mut s);
        chain(&mut d);
        let before = snapshot(&d, 4, 16);
        let mut log = Log::default();
        assert_eq!(d.grant((0, 0), (1, 0), R, &mut log.f()), Err(MapDbError::NotMapped));
        assert_eq!(d.grant((1, 11), (1, 0), Rights::WRITE, &mut log.f()), Err(MapDbError::NoRights));
        assert_eq!(d.grant((1, 11), (1, 11), R, &mut log.f()), Err(MapDbError::Cycle));
        assert_eq!(d.grant((1, 11), (0, 10), R, &mut log.f()), Err(MapDbError::Cycle), "onto an ancestor");
        assert_eq!(d.grant((1, 11), (3, 13), R, &mut log.f()), Err(MapDbError::Cycle), "onto a descendant");
        assert!(log.0.is_empty());
        assert_eq!(snapshot(&d, 4, 16), before);
        d.check().unwrap();
    }

    #[test]
    fn grant_over_unrelated_mapping() {
        let mut s = store(8);
        let mut d = db(&mut s);
        chain(&mut d);
        d.insert_root(0, 1, F0 + 0x1000, R).unwrap();
        d.map((0, 1), (1, 1), R, &mut nop()).unwrap();
        d.map((1, 1), (2, 1), R, &mut nop()).unwrap();
        let mut log = Log::default();
        assert_eq!(d.grant((2, 12), (1, 1), Rights::ALL, &mut log.f()), Ok((F0, Rights::ALL)));
        assert_eq!(log.0, vec![(2, 1, None), (1, 1, None), (2, 12, None)]);
        assert_eq!(d.lookup(1, 1), Some((F0, Rights::ALL)));
        assert_eq!(d.lookup(3, 13), Some((F0, Rights::ALL)));
        d.check().unwrap();
        // A root can be granted too and stays a root.
        assert_eq!(d.grant((0, 1), (0, 2), R, &mut nop()), Ok((F0 + 0x1000, R)));
        assert_eq!(d.lookup(0, 2), Some((F0 + 0x1000, R)));
        d.check().unwrap();
    }

    #[test]
    fn remove_space_takes_descendants_in_other_spaces() {
        let mut s = store(16);
        let mut d = db(&mut s);
        chain(&mut d);
        d.insert_root(1, 0, F0 + 0x1000, R).unwrap();
        d.map((1, 0), (0, 0), R, &mut nop()).unwrap();
        d.map((1, 0), (1, 1), R, &mut nop()).unwrap(); // same-space child
        let mut log = Log::default();
        assert_eq!(d.remove_space(1, &mut log.f()), 6);
        assert_eq!(
            log.sorted(),
            vec![(0, 0, None), (1, 0, None), (1, 1, None), (1, 11, None), (2, 12, None), (3, 13, None)]
        );
        assert_eq!(d.lookup(0, 10), Some((F0, Rights::ALL)));
        assert_eq!(d.len(), 1);
        d.check().unwrap();
        assert_eq!(d.remove_space(1, &mut nop()), 0);
    }

    #[test]
    fn index_survives_collisions_and_wraparound() {
        // A one-slot-per-two-nodes table with many keys: removals in every
        // order must keep all remaining keys findable (backward shift).
        let mut s = store(16);
        let mut d = db(&mut s);
        let keys: Vec<Key> = (0..16).map(|i| ((i % 3) as u16, (i * 7) as u64)).collect();
        for (n, order) in [[0usize, 5, 10, 15, 1, 6, 11, 2, 7, 12, 3, 8, 13, 4, 9, 14], {
            let mut o = [0usize; 16];
            for (i, x) in o.iter_mut().enumerate() {
                *x = 15 - i;
            }
            o
        }]
        .iter()
        .enumerate()
        {
            for &(sp, v) in &keys {
                d.insert_root(sp, v, v << 12, R).unwrap();
            }
            d.check().unwrap();
            for (k, &i) in order.iter().enumerate() {
                assert_eq!(d.unmap(keys[i].0, keys[i].1, R, true, &mut nop()), 1, "pass {n}");
                d.check().unwrap();
                for &j in &order[k + 1..] {
                    assert_eq!(d.lookup(keys[j].0, keys[j].1), Some((keys[j].1 << 12, R)));
                }
            }
            assert!(d.is_empty());
        }
    }

    #[test]
    fn check_detects_corruption() {
        let mut s = store(8);
        {
            let mut d = db(&mut s);
            chain(&mut d);
        }
        let live: Vec<usize> = (0..8).filter(|&i| s.nodes[i].live).collect();
        let child = *live.iter().find(|&&i| s.nodes[i].parent != NIL).unwrap();
        type Corrupt = fn(&mut Store, usize);
        let cases: [(Corrupt, &str); 6] = [
            (|s, c| s.nodes[c].frame += 0x1000, "frame"),
            (
                |s, c| {
                    let p = s.nodes[c].parent as usize;
                    s.nodes[p].rights = Rights(5)
                },
                "rights",
            ),
            (|s, c| s.nodes[c].parent = NIL, "links"),
            (|s, c| s.nodes[c].vpage += 100, "index"),
            (|s, c| s.nodes[c].first_child = c as u32, "links"),
            (|s, _| s.index.iter_mut().for_each(|v| *v = NIL), "index"),
        ];
        for (corrupt, what) in cases {
            let mut t = Store { nodes: s.nodes.clone(), index: s.index.clone() };
            // Rebuild a MapDb view over the corrupted copy without re-initialising it.
            corrupt(&mut t, child);
            let d = MapDb {
                free: 4,
                len: 4,
                shift: 64 - t.index.len().trailing_zeros(),
                nodes: &mut t.nodes,
                index: &mut t.index,
            };
            let e = d.check().unwrap_err();
            assert!(e.starts_with(what), "{what}: got {e}");
        }
        // The uncorrupted copy passes.
        let mut t = Store { nodes: s.nodes.clone(), index: s.index.clone() };
        let d = MapDb {
            free: 4,
            len: 4,
            shift: 64 - t.index.len().trailing_zeros(),
            nodes: &mut t.nodes,
            index: &mut t.index,
        };
        d.check().unwrap();
    }

    // ---- property tests against a model ----

    #[derive(Clone, Copy, Debug)]
    struct MEntry {
        key: Key,
        frame: u64,
        rights: Rights,
        parent: Option<Key>,
    }

    /// The obvious, slow model: a list of mappings with parent keys.
    struct Model {
        cap: usize,
        e: Vec<MEntry>,
    }

    impl Model {
        fn get(&self, k: Key) -> Option<&MEntry> {
            self.e.iter().find(|e| e.key == k)
        }
        /// Strict ancestors of `k`, nearest first.
        fn ancestors(&self, k: Key) -> Vec<Key> {
            let mut v = Vec::new();
            let mut p = self.get(k).and_then(|e| e.parent);
            while let Some(pk) = p {
                v.push(pk);
                assert!(v.len() <= self.e.len(), "model cycle");
                p = self.get(pk).unwrap().parent;
            }
            v
        }
        fn root_of(&self, k: Key) -> Key {
            *self.ancestors(k).last().unwrap_or(&k)
        }
        /// Strict descendants of `k`.
        fn descendants(&self, k: Key) -> Vec<Key> {
            self.e.iter().map(|e| e.key).filter(|&d| self.ancestors(d).contains(&k)).collect()
        }
        fn remove_tree(&mut self, k: Key) -> Vec<Key> {
            let mut gone = self.descendants(k);
            gone.push(k);
            self.e.retain(|e| !gone.contains(&e.key));
            gone
        }
        fn insert_root(&mut self, k: Key, frame: u64, rights: Rights) -> Result<(), MapDbError> {
            let rights = rights.and(Rights::ALL);
            if !rights.contains(R) {
                return Err(MapDbError::NoRights);
            }
            if self.get(k).is_some() {
                return Err(MapDbError::Exists);
            }
            if self.e.len() == self.cap {
                return Err(MapDbError::Full);
            }
            self.e.push(MEntry { key: k, frame, rights, parent: None });
            Ok(())
        }
        fn map(&mut self, from: Key, to: Key, rights: Rights, grant: bool) -> Result<(u64, Rights), MapDbError> {
            let f = *self.get(from).ok_or(MapDbError::NotMapped)?;
            let eff = f.rights.and(rights);
            if !eff.contains(R) {
                return Err(MapDbError::NoRights);
            }
            if to == from || self.ancestors(from).contains(&to) {
                return Err(MapDbError::Cycle);
            }
            if grant && self.ancestors(to).contains(&from) {
                return Err(MapDbError::Cycle);
            }
            let exists = self.get(to).is_some();
            if !grant && !exists && self.e.len() == self.cap {
                return Err(MapDbError::Full);
            }
            if exists {
                self.remove_tree(to);
            }
            if grant {
                let desc = self.descendants(from);
                for e in self.e.iter_mut() {
                    if e.key == from {
                        e.key = to;
                        e.rights = eff;
                    } else if desc.contains(&e.key) {
                        e.rights = e.rights.and(eff);
                    }
                    if e.parent == Some(from) {
                        e.parent = Some(to);
                    }
                }
            } else {
                self.e.push(MEntry { key: to, frame: f.frame, rights: eff, parent: Some(from) });
            }
            Ok((f.frame, eff))
        }
        fn unmap(&mut self, k: Key, revoke: Rights, include_self: bool) {
            if self.get(k).is_none() {
                return;
            }
            if revoke.contains(R) {
                if include_self {
                    self.remove_tree(k);
                } else {
                    let children: Vec<Key> = self.e.iter().filter(|e| e.parent == Some(k)).map(|e| e.key).collect();
                    for c in children {
                        self.remove_tree(c);
                    }
                }
            } else {
                let mut set = self.descendants(k);
                if include_self {
                    set.push(k);
                }
                for e in self.e.iter_mut().filter(|e| set.contains(&e.key)) {
                    e.rights = e.rights.without(revoke);
                }
            }
        }
        fn remove_space(&mut self, s: SpaceId) {
            let keys: Vec<Key> = self.e.iter().filter(|e| e.key.0 == s).map(|e| e.key).collect();
            for k in keys {
                if self.get(k).is_some() {
                    self.remove_tree(k);
                }
            }
        }
    }

    /// A key, either any key of the universe or (to make deep trees and
    /// successful operations likely) the n-th live mapping of the model.
    #[derive(Clone, Copy, Debug)]
    enum Pick {
        Any(Key),
        Live(usize),
    }

    impl Pick {
        fn key(self, m: &Model) -> Key {
            match self {
                Pick::Any(k) => k,
                Pick::Live(_) if m.e.is_empty() => (0, 0),
                Pick::Live(n) => m.e[n % m.e.len()].key,
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        InsertRoot(Key, u64, u8),
        Map(Pick, Key, u8),
        Grant(Pick, Key, u8),
        Unmap(Pick, u8, bool),
        RemoveSpace(SpaceId),
    }

    const SPACES: u16 = 4;
    const VPAGES: u64 = 8;

    fn key() -> impl Strategy<Value = Key> {
        (0..SPACES, 0..VPAGES)
    }

    fn pick() -> impl Strategy<Value = Pick> {
        prop_oneof![1 => key().prop_map(Pick::Any), 3 => any::<usize>().prop_map(Pick::Live)]
    }

    fn root_op(rights: impl Strategy<Value = u8>) -> impl Strategy<Value = Op> {
        (key(), 0u64..4, rights).prop_map(|(k, f, r)| Op::InsertRoot(k, F0 + f * 0x1000, r))
    }

    /// Up to 40 root inserts first (so the capacity of 24 is reached), then anything.
    fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
        let fill = proptest::collection::vec(root_op(Just(7u8)), 0..40);
        (fill, proptest::collection::vec(op(), 1..max)).prop_map(|(mut a, b)| {
            a.extend(b);
            a
        })
    }

    fn op() -> impl Strategy<Value = Op> {
        // Rights are biased towards containing READ so that maps succeed.
        let rights = prop_oneof![3 => (0u8..8).prop_map(|r| r | 4), 1 => 0u8..16];
        prop_oneof![
            4 => root_op(rights.clone()),
            8 => (pick(), key(), rights.clone()).prop_map(|(a, b, r)| Op::Map(a, b, r)),
            3 => (pick(), key(), rights).prop_map(|(a, b, r)| Op::Grant(a, b, r)),
            3 => (pick(), 0u8..8, any::<bool>()).prop_map(|(k, r, s)| Op::Unmap(k, r, s)),
            1 => (0..SPACES).prop_map(Op::RemoveSpace),
        ]
    }

    fn run(cap: usize, ops: &[Op]) -> Result<(), TestCaseError> {
        let mut st = store(cap);
        let mut d = db(&mut st);
        let mut m = Model { cap, e: Vec::new() };
        // The "page table" the kernel would maintain from the callbacks.
        let mut shadow: HashMap<Key, (u64, Rights)> = HashMap::new();
        // Every (space, frame) pair handed out legitimately so far.
        let mut given: HashSet<(SpaceId, u64)> = HashSet::new();
        for op in ops {
            let mut calls: Vec<(SpaceId, u64, Option<Rights>)> = Vec::new();
            // Mappings that must be gone (or reduced) after this step.
            let mut must_be_gone: Vec<Key> = Vec::new();
            let mut must_lack: (Vec<Key>, Rights) = (Vec::new(), Rights::NONE);
            let mut count = None;
            let mut new_pte: Option<(Key, u64, Rights)> = None;
            match *op {
                Op::InsertRoot(k, f, r) => {
                    let got = d.insert_root(k.0, k.1, f, Rights(r));
                    prop_assert_eq!(got, m.insert_root(k, f, Rights(r)));
                    if got.is_ok() {
                        new_pte = Some((k, f, Rights(r).and(Rights::ALL)));
                        given.insert((k.0, f));
                    }
                }
                Op::Map(a, b, r) | Op::Grant(a, b, r) => {
                    let a = a.key(&m);
                    let grant = matches!(op, Op::Grant(..));
                    let mut cb = |s, v, r| calls.push((s, v, r));
                    let got = if grant { d.grant(a, b, Rights(r), &mut cb) } else { d.map(a, b, Rights(r), &mut cb) };
                    prop_assert_eq!(got, m.map(a, b, Rights(r), grant));
                    if let Ok((f, eff)) = got {
                        prop_assert!(given.contains(&(a.0, f)));
                        given.insert((b.0, f));
                        new_pte = Some((b, f, eff));
                        if grant {
                            must_be_gone.push(a);
                        }
                    } else {
                        prop_assert!(calls.is_empty(), "failed {:?} reported changes", op);
                    }
                }
                Op::Unmap(k, r, include_self) => {
                    let k = k.key(&m);
                    let revoke = Rights(r);
                    let mut set = if m.get(k).is_some() { m.descendants(k) } else { Vec::new() };
                    if include_self && m.get(k).is_some() {
                        set.push(k);
                    }
                    if revoke.contains(R) {
                        must_be_gone = set;
                    } else {
                        must_lack = (set, revoke);
                    }
                    let n = d.unmap(k.0, k.1, revoke, include_self, &mut |s, v, r| calls.push((s, v, r)));
                    m.unmap(k, revoke, include_self);
                    count = Some(n);
                }
                Op::RemoveSpace(s) => {
                    for e in m.e.iter().filter(|e| e.key.0 == s) {
                        must_be_gone.push(e.key);
                        must_be_gone.extend(m.descendants(e.key));
                    }
                    let n = d.remove_space(s, &mut |s, v, r| calls.push((s, v, r)));
                    m.remove_space(s);
                    count = Some(n);
                }
            }
            // The callbacks describe exactly the changes: each names a
            // distinct, currently mapped entry and really changes it.
            if let Some(n) = count {
                prop_assert_eq!(n, calls.len());
            }
            let mut seen = HashSet::new();
            for &(s, v, r) in &calls {
                prop_assert!(seen.insert((s, v)), "({}, {}) reported twice", s, v);
                let old = shadow.get(&(s, v)).copied();
                prop_assert!(old.is_some(), "update of unmapped ({}, {})", s, v);
                match r {
                    None => {
                        shadow.remove(&(s, v));
                    }
                    Some(r) => {
                        let (f, o) = old.unwrap();
                        prop_assert!(r != o && o.contains(r), "bogus rights update {:?} -> {:?}", o, r);
                        shadow.insert((s, v), (f, r));
                    }
                }
            }
            if let Some((k, f, r)) = new_pte {
                prop_assert!(shadow.insert(k, (f, r)).is_none(), "old mapping of {:?} not reported", k);
            }

            prop_assert_eq!(d.check(), Ok(()), "after {:?}", op);
            prop_assert_eq!(d.len(), m.e.len());
            for s in 0..SPACES {
                for v in 0..VPAGES {
                    let got = d.lookup(s, v);
                    let want = m.get((s, v)).map(|e| (e.frame, e.rights));
                    prop_assert_eq!(got, want, "lookup({}, {}) after {:?}", s, v, op);
                    prop_assert_eq!(got, shadow.get(&(s, v)).copied(), "page table ({}, {}) after {:?}", s, v, op);
                    if let Some((f, r)) = got {
                        // Derived from a root of the same frame, and only
                        // in a space that was given that frame.
                        let root = m.get(m.root_of((s, v))).unwrap();
                        prop_assert_eq!(f, root.frame);
                        prop_assert!(root.rights.contains(r));
                        prop_assert!(given.contains(&(s, f)));
                    }
                }
            }
            for k in &must_be_gone {
                prop_assert_eq!(d.lookup(k.0, k.1), None, "{:?} survived the flush {:?}", k, op);
            }
            for k in &must_lack.0 {
                let (_, r) = d.lookup(k.0, k.1).unwrap();
                prop_assert!(r.and(must_lack.1).is_empty(), "{:?} kept revoked rights", k);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn prop_matches_model(ops in ops(120)) {
            run(24, &ops)?;
        }

        #[test]
        fn prop_matches_model_tiny(ops in ops(60)) {
            run(6, &ops)?;
        }
    }
}
