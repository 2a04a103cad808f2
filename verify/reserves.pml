/*
 * reserves.pml - the kernel's reserve protocol as a PROMELA model, checked with SPIN.
 *
 * The question (Dillon's "problem B", ../shared/seeds/dragonfly-zalloc-project-1.txt): the
 * pageout thread frees memory, but to page a page out it must allocate - a swblock to record
 * where the page went, a map entry and a PV entry to map the page for I/O, and when a zone is
 * empty, pages for a new slab. If those allocations wait for memory like everyone else's, the
 * only thread that can free memory waits for it: deadlock. The kernel has three protections
 * (docs/reserves.md, docs/allocators.md), each a #define here (1 = on):
 *
 *   ZONES   each zone keeps `reserve` free objects that ordinary callers may not take, and
 *           refills them (system context) when a privileged caller dips below;
 *   PAGES   the pages below free_min are the pageout thread's alone (off: the pageout
 *           thread stops at free_min like a system request);
 *   NOWAIT  the pageout thread never waits: it asks under the pageout context and, short of
 *           something, gives everything back and tries again (off: it asks as an ordinary
 *           caller that waits in vm_wait, holding what it has - the kernel's reserves=off).
 *
 * The property: no deadlock, as SPIN's "invalid end state" - a state in which no process can
 * move and one is not at an end label. Every wait is a blocking guard that holds exactly while
 * the kernel's retry would fail again (vm_wait retries whenever pages are freed; a failed
 * pageout step is retried once something has been freed), so "everyone blocked" is what the
 * kernel's watchdog reports as a deadlock, and no thread spins in the model. The only end
 * states are the pageout thread asleep (free >= paging_target or nothing to clean).
 *
 * The processes:
 *
 *   Process (PROCS of them)  ordinary allocators: the faulting threads of the workloads. Each
 *       maps a region (a map entry, ordinary, may wait: kmem_alloc, a pageable mapping),
 *       faults pages in (a page, ordinary; short: vm_wait), maps them (a PV entry, growing the
 *       pv_entry zone by an ordinary page without waiting, and for its first mapping a
 *       page-table page of the system tier; short: vm_wait) and frees: pages (and their PV
 *       entries), pages on swap (their swblocks), its region (the map entry). It never holds
 *       a page while it waits (PageFault.swift). Their pages are counted together.
 *   Pageout  while free < paging_target and a resident page is not on a full swap: takes
 *       the page, then one step - a swblock (claimed while the page is still mapped; only
 *       then is the page unmapped, returning its PV entry), growing the
 *       swblock zone itself before it draws the zone's reserve (ReserveOrder.growFirstForPageout:
 *       the reserve only when growing fails) or when it has none it may take (through kmem: a map entry, 4 PV
 *       entries, 6 pages, each of the two zones growing from one page when it has nothing
 *       left: the chain of depth 2), the pager window's map entry and PV entry, the write,
 *       the window's entries back, the page freed. A step short of anything gives it all back
 *       and waits until something is freed.
 *   The refills run where the kernel runs them: in the thread whose allocation left a zone
 *       below its reserve - only the pageout thread's can - and at each pageout wake-up
 *       (Zones.refillAll). System context: never waiting, never below free_min; a swblock
 *       slab takes a map entry and 4 PV entries from their reserves and 6 system-tier pages.
 *       Only the pageout thread refills, so a refill runs at most once at a time. At the
 *       start of each step it also tops the entry zones up under its own requester, from
 *       the pages below free_min (Zones.topUpEntryReserves).
 *
 * Abstracted away: addresses and which page or object (only counts); slab reclaim (zones
 * only grow, as under memory pressure in the kernel); page-in (a page on swap stays there
 * until freed); every page-out needs a new swblock (the worst case - a kernel swblock covers
 * 16 pages); a slab holds *_PER_SLAB objects, far fewer than the kernel's (a 16 KiB swblock
 * slab holds about 170), so that zones run out within a small instance; the allocations
 * inside one kmem slab (page by page in the kernel) as map entry, then the 4 PV entries,
 * then the 6 pages, each all or nothing; the map's spare-entry stock and kmem_free's spare
 * entry; one CPU; free_min at its floor ReserveBounds.pageoutPages (the kernel's is at least
 * 32 pages). When a process waits and nothing can be paged out (memory held by slabs and
 * page tables, or swap full), the out-of-memory policy stops its wait: the kernel running out
 * of memory is not the protocol deadlocking.
 *
 * The constants come from the kernel: constants.h is written by verify/ReserveConstants.swift,
 * compiled with ReserveBounds.swift, PagePolicy.swift and AllocationContext.swift.
 */

#include "constants.h"

/* ---- The protections (1 = on) ---- */
#ifndef ZONES
#define ZONES 1
#endif
#ifndef PAGES
#define PAGES 1
#endif
#ifndef NOWAIT
#define NOWAIT 1
#endif

/* ---- Checks and mutations ---- */
/* BOUNDS: assert that no reserve is ever drawn deeper than ReserveBounds.bound. */
#ifndef BOUNDS
#define BOUNDS 0
#endif
/* MUTATION 1: the ordinary reserve check off by one - an ordinary caller may take from a
   zone holding exactly `reserve` objects (`free >= reserve` for `free > reserve`).
   MUTATION 2: the context not carried down - the pager window's PV entry asked for as an
   ordinary request that does not wait (as if Pmap.enter chose its own context). */
#ifndef MUTATION
#define MUTATION 0
#endif

/* ---- The instance ---- */
#ifndef PROCS
#define PROCS 2             /* ordinary processes */
#endif
#ifndef MEMORY
#define MEMORY 16           /* pages the page allocator manages */
#endif
#ifndef WORKSET
#define WORKSET 3           /* resident pages the processes may have at once */
#endif
#ifndef SWAP
#define SWAP 14             /* pages the swap device holds */
#endif
#ifndef SW_PER_SLAB
#define SW_PER_SLAB 8       /* swblocks in one swblock slab */
#endif
#ifndef MAP_PER_SLAB
#define MAP_PER_SLAB 4      /* map entries in one map_entry slab (one page) */
#endif
#ifndef PV_PER_SLAB
#define PV_PER_SLAB 8       /* PV entries in one pv_entry slab (one page) */
#endif

#define ORDINARY REQUESTER_ORDINARY
#define SYSTEM   REQUESTER_SYSTEM
#define PAGEOUT  REQUESTER_PAGEOUT

/* The zones. */
#define SW  0
#define MAP 1
#define PV  2

/* ---- State ---- */
byte free = MEMORY;         /* free pages */
byte obj[3];                /* free objects of each zone */

/* The processes' pages, counted together: */
byte resident;              /* resident, not mapped (never yet, or unmapped by pageout) */
byte mapped;                /* resident and mapped: one PV entry each */
byte swapped;               /* on swap: one swblock each */
bool cleaning;              /* the pageout thread holds one of their pages */
bool region[PROCS];         /* a process holds the map entry of its region */
bool table[PROCS];          /* a process has its page-table page (kept for good) */

bool freed;                 /* something was freed since the pageout step began */

/* ---- The rules: who may take what ---- */
#define RESERVE(z)      (ZONES -> (z == SW -> RESERVE_SW : (z == MAP -> RESERVE_MAP : RESERVE_PV)) : 0)
#define FLOOR(c)        (c == ORDINARY -> FLOOR_ORDINARY : (c == SYSTEM -> FLOOR_SYSTEM : (PAGES -> FLOOR_PAGEOUT : FLOOR_SYSTEM)))
#define PAGES_OK(c, n)  (free >= (n) && free - (n) >= FLOOR(c))
#define MAY_RESERVE(c)  (c == ORDINARY -> RESERVES_ORDINARY : (c == SYSTEM -> RESERVES_SYSTEM : RESERVES_PAGEOUT))
/* Objects of zone z that requester c may take now. */
#define AVAILABLE(z, c) (MAY_RESERVE(c) -> obj[z] : obj[z] - RESERVE(z) + (MUTATION == 1))
#define PER_SLAB(z)     (z == SW -> SW_PER_SLAB : (z == MAP -> MAP_PER_SLAB : PV_PER_SLAB))

/* The pageout thread's context: pageout (never waits), or with NOWAIT off ordinary (waits). */
#define PAGEOUT_CONTEXT (NOWAIT -> PAGEOUT : ORDINARY)
#define PAGEOUT_WAITS   (!NOWAIT)

/* The pager window's PV entry: the pageout thread's context, unless mutated. */
#define WINDOW_PV_CONTEXT (MUTATION == 2 -> ORDINARY : PAGEOUT_CONTEXT)

/* The swblock zone's objects above its reserve line: anyone may take those. */
#define ABOVE_LINE(z, n) (obj[z] >= RESERVE(z) + (n))
/* The pageout requester grows the swblock zone before it draws the reserve (the kernel's
   ReserveOrder.growFirstForPageout); without nowait the model's pageout thread asks as an
   ordinary caller, which never draws a reserve anyway. */
#define GROWS_FIRST     (PAGEOUT_CONTEXT == PAGEOUT)

/* What the pageout thread can clean: a resident page, with room on swap for it. */
#define CAN_CLEAN       (resident + mapped > 0 && swapped < SWAP)
/* Out of memory: nothing can be paged out and the pageout thread holds no page. */
#define OUT_OF_MEMORY   (!CAN_CLEAN && !cleaning)

/* n objects of a direct-map zone (map_entry, pv_entry) for requester c: taken while c may
   take them, else the zone grows by a slab of one page of c's tier and is looked at again.
   Neither possible: fail - or with `wait`, block: vm_wait, retried whenever it would work. */
inline direct_alloc(z, n, c, wait, ok) {
    ok = false;
    do
    :: atomic { AVAILABLE(z, c) >= n -> obj[z] = obj[z] - n; ok = true; break }
    :: atomic { AVAILABLE(z, c) < n && PAGES_OK(c, 1) -> free--; obj[z] = obj[z] + PER_SLAB(z) }
    :: atomic { !(wait) && AVAILABLE(z, c) < n && !PAGES_OK(c, 1) -> break }
    od
}

/* n pages of c's tier, all or none. */
inline pages_alloc(n, c, wait, ok) {
    ok = false;
    if
    :: atomic { PAGES_OK(c, n) -> free = free - n; ok = true }
    :: atomic { !(wait) && !PAGES_OK(c, n) }
    fi
}

/* One swblock slab through kmem (Kmem.allocate), for requester c: its map entry, a PV entry
   per slab page, then its pages and page tables. All or nothing: a failure gives back what
   was taken. The map entry and PV entries may each grow their zone: the chain of depth 2. */
inline swblock_slab(c, wait, maps, pvs, pages, ok) {
    direct_alloc(MAP, maps, c, wait, ok);
    if
    :: ok ->
        direct_alloc(PV, pvs, c, wait, ok);
        if
        :: ok ->
            pages_alloc(pages, c, wait, ok);
            if
            :: ok -> obj[SW] = obj[SW] + SW_PER_SLAB
            :: else -> obj[MAP] = obj[MAP] + maps; obj[PV] = obj[PV] + pvs
            fi
        :: else -> obj[MAP] = obj[MAP] + maps
        fi
    :: else
    fi
}

/* A zone's refill (ZoneRef.refill): system-context slabs until the reserve is full again or
   one cannot be had. Run by the pageout thread, the only thread whose allocations dip below
   a reserve; a slab's own map entry and PV entries may leave their zones below their
   reserves, which are then refilled too. */
inline refill_direct(z) {
    do
    :: atomic { obj[z] < RESERVE(z) && PAGES_OK(SYSTEM, 1) -> free--; obj[z] = obj[z] + PER_SLAB(z) }
    :: atomic { !(obj[z] < RESERVE(z) && PAGES_OK(SYSTEM, 1)) -> break }
    od
}

/* The pageout thread's top-up of the entry zones (Zones.topUpEntryReserves): their refill
   under its own requester - so from the pages below free_min - at the start of every step
   that needs a new swblock (here, every step). Never waits. */
inline topup_direct(z) {
    do
    :: atomic { obj[z] < RESERVE(z) && PAGES_OK(PAGEOUT, 1) -> free--; obj[z] = obj[z] + PER_SLAB(z) }
    :: atomic { !(obj[z] < RESERVE(z) && PAGES_OK(PAGEOUT, 1)) -> break }
    od
}

inline refill_swblock(ok) {
    do
    :: obj[SW] < RESERVE(SW) ->
        swblock_slab(SYSTEM, false, REFILL_MAP, REFILL_PV, REFILL_PAGES, ok);
        refill_direct(MAP);
        refill_direct(PV);
        if
        :: ok
        :: else -> break
        fi
    :: else -> break
    od
}

/* ---- The ordinary processes ---- */
proctype Process(byte p) {
    do
    :: !region[p] ->
        /* A region: one map entry, ordinary, may wait. */
        do
        :: atomic { AVAILABLE(MAP, ORDINARY) >= 1 -> obj[MAP]--; region[p] = true; break }
        :: atomic { AVAILABLE(MAP, ORDINARY) < 1 && PAGES_OK(ORDINARY, 1) -> free--; obj[MAP] = obj[MAP] + MAP_PER_SLAB }
        :: atomic { AVAILABLE(MAP, ORDINARY) < 1 && !PAGES_OK(ORDINARY, 1) && OUT_OF_MEMORY -> break }
        od
    :: region[p] && resident + mapped + cleaning < WORKSET ->
        /* A fault on a page never touched: a page, ordinary; short, vm_wait. */
        if
        :: atomic { PAGES_OK(ORDINARY, 1) -> free--; resident++ }
        :: atomic { !PAGES_OK(ORDINARY, 1) && OUT_OF_MEMORY }
        fi
    :: resident > 0 ->
        /* Mapping a resident page: a PV entry (ordinary, no wait: an empty zone grows by an
           ordinary page) and, for the process's first mapping, a page table from the system
           tier (no wait). Short of either: vm_wait and try again - unless the pageout thread
           has taken the page meanwhile. */
        do
        :: atomic { resident == 0 -> break }
        :: atomic { resident > 0 && AVAILABLE(PV, ORDINARY) >= 1 && (table[p] || PAGES_OK(TABLES_ORDINARY, 1)) ->
                obj[PV]--;
                if
                :: !table[p] -> free--; table[p] = true
                :: else
                fi;
                resident--; mapped++; break }
        :: atomic { resident > 0 && AVAILABLE(PV, ORDINARY) < 1 && PAGES_OK(ORDINARY, 1) -> free--; obj[PV] = obj[PV] + PV_PER_SLAB }
        od
    /* Freeing never allocates. */
    :: atomic { mapped > 0 -> mapped--; obj[PV]++; free++; freed = true }
    :: atomic { resident > 0 -> resident--; free++; freed = true }
    :: atomic { swapped > 0 -> swapped--; obj[SW]++; freed = true }
    :: atomic { region[p] -> region[p] = false; obj[MAP]++; freed = true }
    od
}

/* ---- The pageout thread ---- */
active proctype Pageout() {
    bool swblock, window, ok, tried, holds_mapping;
end_asleep:
    do
    :: atomic {
            free < PAGING_TARGET && CAN_CLEAN ->
            /* Awake. A page off the inactive queue, still mapped (Pageout.clean claims its
               swap slot first and unmaps it only once it has one). */
            freed = false;
            if
            :: mapped > 0 -> mapped--; holds_mapping = true
            :: resident > 0 -> resident--; holds_mapping = false
            fi;
            cleaning = true
        }
        /* The refills that failed before are tried again (Zones.refillAll). */
        refill_swblock(ok);
        refill_direct(MAP);
        refill_direct(PV);
        /* What earlier steps drew from the entry reserves goes back (Zones.topUpEntryReserves). */
        topup_direct(MAP);
        topup_direct(PV);
        /* The swblock (SwapMetadata.assign): from above the zone's reserve line; below it the
           zone grows first and the reserve is drawn only if that failed; then the refill if
           it left the zone short. */
        swblock = false;
        tried = false;
        do
        :: atomic { AVAILABLE(SW, PAGEOUT_CONTEXT) >= STEP_SWBLOCK && (ABOVE_LINE(SW, STEP_SWBLOCK) || tried || !GROWS_FIRST) ->
                obj[SW] = obj[SW] - STEP_SWBLOCK; swblock = true; break }
        :: else ->
            /* One growth per allocation, as in ZoneRef.allocate: after it, grown or not, the
               reserve may be drawn. */
            swblock_slab(PAGEOUT_CONTEXT, PAGEOUT_WAITS, GROW_MAP, GROW_PV, GROW_PAGES, ok);
            tried = true;
            if
            :: ok || AVAILABLE(SW, PAGEOUT_CONTEXT) >= STEP_SWBLOCK
            :: else -> break
            fi
        od;
        refill_swblock(ok);
        /* With its slot claimed, the page is unmapped everywhere: its PV entry goes back. */
        atomic {
            if
            :: swblock && holds_mapping -> obj[PV]++; holds_mapping = false
            :: else
            fi
        }
        /* The pager window (SwapPager.withWindow): a map entry, then a PV entry. */
        window = false;
        if
        :: swblock ->
            direct_alloc(MAP, STEP_MAP, PAGEOUT_CONTEXT, PAGEOUT_WAITS, window);
            refill_direct(MAP);
            if
            :: window ->
                direct_alloc(PV, STEP_PV, WINDOW_PV_CONTEXT, PAGEOUT_WAITS, window);
                refill_direct(PV);
                if
                :: !window -> obj[MAP] = obj[MAP] + STEP_MAP
                :: else
                fi
            :: else
            fi
        :: else
        fi;
        if
        :: window ->
            /* Written to swap; the window's entries go back; the page is freed. */
progress_page_freed:
            atomic {
                obj[MAP] = obj[MAP] + STEP_MAP; obj[PV] = obj[PV] + STEP_PV;
                swapped = swapped + STEP_SWBLOCK; free++; cleaning = false
            }
        :: else ->
            /* Could not: everything back, the page back on its queue - still mapped when
               no slot could be claimed, unmapped when the window failed after it. Tried
               again once something has been freed. */
            atomic {
                if
                :: swblock -> obj[SW] = obj[SW] + STEP_SWBLOCK
                :: else
                fi;
                if
                :: holds_mapping -> mapped++
                :: else -> resident++
                fi;
                holds_mapping = false; cleaning = false
            }
            freed
        fi
    od
}

/* ---- Bounds (BOUNDS=1): no reserve drawn deeper than ReserveBounds.bound ---- */
#if BOUNDS
proctype Bounds() {
end_watching:
    if
    :: atomic { obj[SW] + BOUND_SW < RESERVE(SW) -> assert(obj[SW] + BOUND_SW >= RESERVE(SW)) }
    :: atomic { obj[MAP] + BOUND_MAP < RESERVE(MAP) -> assert(obj[MAP] + BOUND_MAP >= RESERVE(MAP)) }
    :: atomic { obj[PV] + BOUND_PV < RESERVE(PV) -> assert(obj[PV] + BOUND_PV >= RESERVE(PV)) }
    :: atomic { free + BOUND_PAGES < FREE_MIN -> assert(free + BOUND_PAGES >= FREE_MIN) }
    fi
}
#endif

/* ---- A probe: -DREACH=condition asks SPIN for a run to a state where it holds ---- */
#ifdef REACH
proctype Reach() {
end_watching:
    atomic { REACH -> assert(!(REACH)) }
}
#endif

init {
    byte p = 0;
    /* The zones as boot leaves them: each holding its reserve. */
    atomic {
        obj[SW] = RESERVE(SW); obj[MAP] = RESERVE(MAP); obj[PV] = RESERVE(PV);
        do
        :: p < PROCS -> run Process(p); p++
        :: else -> break
        od;
#if BOUNDS
        run Bounds();
#endif
#ifdef REACH
        run Reach();
#endif
        skip
    }
}
