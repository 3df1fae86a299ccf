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

mod check;
mod index;
#[cfg(test)]
mod tests;
