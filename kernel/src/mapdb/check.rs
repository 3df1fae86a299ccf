//! The invariant checker of the mapping database (the numbered
//! invariants of the module doc).

use super::*;

impl MapDb<'_> {
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
}
