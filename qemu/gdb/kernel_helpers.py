"""kernel_helpers.py - gdb commands that show the kernel's memory system.

    kzones              the zone table: object size, in use, free, slabs, reserve, ...
    kbuddy              free pages per buddy order, the free-page thresholds, the descriptor pool
    kmap [map]          the entries of kernel_map (default) or kmem, pageable, pager
    kpage <physaddr>    a page's descriptor and every virtual address it is mapped at
    kpage -v <virtaddr> the same for the page a kernel virtual address maps to
    kthreads            every thread: state, the CPU running it, and what it waits for
    kcpus               every CPU: APIC id, state, running and idle thread, preemption count
    klog [bytes]        the kernel log ring (the newest part), for when serial output is lost

gdb does not understand Swift's types, so these read raw memory. Where to read comes from the
kernel itself: kernel_debug_table (kernel/Kern/DebugTable.swift) lists the addresses of its
key globals and the byte offsets of the fields read here. Nothing asks the kernel to run:
the commands work on a kernel stopped anywhere, in a panic or a deadlock included.
Loaded by qemu/gdb/kernel.gdb (make debug): `source qemu/gdb/kernel_helpers.py`.
"""
import struct

import gdb

TABLE_MAGIC = 0x4742444B
TABLE_VERSION = 1


def memory(address, size):
    return gdb.selected_inferior().read_memory(address, size).tobytes()


def u64(address):
    return struct.unpack("<Q", memory(address, 8))[0]


def i64(address):
    return struct.unpack("<q", memory(address, 8))[0]


def u32(address):
    return struct.unpack("<I", memory(address, 4))[0]


def u16(address):
    return struct.unpack("<H", memory(address, 2))[0]


def u8(address):
    return memory(address, 1)[0]


def symbol_address(name):
    return int(gdb.parse_and_eval("(unsigned long)&%s" % name))


class DebugTable:
    """The kernel's table of names and values, read afresh for every command."""

    def __init__(self):
        base = symbol_address("kernel_debug_table")
        header = u64(base)
        if header & 0xFFFFFFFF != TABLE_MAGIC:
            raise gdb.GdbError("kernel_debug_table is not filled yet (the kernel has not finished booting)")
        if header >> 32 != TABLE_VERSION:
            raise gdb.GdbError("kernel_debug_table has version %d; these helpers read version %d"
                               % (header >> 32, TABLE_VERSION))
        self.values = {}
        for index in range(u64(base + 8)):
            entry = base + 16 + 24 * index
            name = memory(u64(entry), u64(entry + 8)).decode("utf-8", "replace")
            self.values[name] = u64(entry + 16)

    def __getitem__(self, name):
        if name not in self.values:
            raise gdb.GdbError("the kernel's debug table has no entry %r (kernel and helpers out of step?)" % name)
        return self.values[name]

    def live(self, name):
        """The current value of a global published by address ("name@")."""
        return u64(self[name + "@"])

    def names(self, prefix):
        return {key[len(prefix):]: value for key, value in self.values.items() if key.startswith(prefix)}


def static_string(address):
    """A StaticString stored at `address`: a pointer to UTF-8 bytes and a length."""
    pointer, length = u64(address), u64(address + 8)
    if pointer == 0 or length > 4096:
        return "?"
    return memory(pointer, length).decode("utf-8", "replace")


def optional_static_string(t, address):
    """StaticString?: the StaticString, then a tag byte (at the offset the kernel publishes)
    that is non-zero for nil."""
    return None if u8(address + t["StaticStringOptional.tag"]) != 0 else static_string(address)


def human_size(size):
    """The largest binary unit that divides the size exactly: map sizes are page multiples."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size % (1 << shift) == 0:
            return "%d %s" % (size >> shift, unit)
    return "%d B" % size


class KZones(gdb.Command):
    """kzones: the zone table, read from the kernel's zones."""

    def __init__(self):
        super().__init__("kzones", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        t = DebugTable()
        table, count = t["zones.table"], t.live("zones.count")
        stats = t["ZoneState.statistics"]
        if not t["zones.reservesEnabled"]:
            print("reserves=off: the reserve column is configured but not enforced")
        print("%-14s %6s %8s %8s %8s %7s %7s %8s %7s %8s %12s %12s" % (
            "zone", "size", "slab/obj", "in-use", "free", "static", "dynamic", "reserve", "lowest", "deepest", "allocs", "frees"))
        for index in range(count):
            zone = u64(table + 8 * index)
            lowest = i64(zone + stats + t["ZoneStatistics.lowestFree"])
            print("%-14s %6d %4dK/%-3d %8d %8d %7d %7d %8d %7d %8d %12d %12d" % (
                static_string(zone + t["ZoneState.name"]),
                i64(zone + t["ZoneState.objectSize"]),
                i64(zone + t["ZoneState.slabBytes"]) // 1024, i64(zone + t["ZoneState.objectsPerSlab"]),
                i64(zone + t["ZoneState.inUse"]), i64(zone + t["ZoneState.freeObjects"]),
                i64(zone + stats + t["ZoneStatistics.staticSlabs"]), i64(zone + stats + t["ZoneStatistics.dynamicSlabs"]),
                i64(zone + t["ZoneState.reserveTarget"]), 0 if lowest > 1 << 62 else lowest,
                i64(zone + stats + t["ZoneStatistics.deepestReserveUse"]),
                u64(zone + stats + t["ZoneStatistics.allocations"]), u64(zone + stats + t["ZoneStatistics.frees"])))


class KBuddy(gdb.Command):
    """kbuddy: free blocks per order, the free-page thresholds and the buddy-descriptor pool."""

    def __init__(self):
        super().__init__("kbuddy", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        t = DebugTable()
        buddy = t["buddy"]
        if buddy == 0:
            raise gdb.GdbError("the page allocator does not exist yet")
        counts = u64(buddy + t["BuddyAllocator.freeBlocks"])
        total = 0
        for order in range(t["buddy.orders"]):
            blocks = i64(counts + 8 * order)
            total += blocks << order
            print("order %2d: %8d free blocks (%d pages)" % (order, blocks, blocks << order))
        print("free pages: %d (the lists add up to %d)" % (u64(buddy + t["BuddyAllocator.freePages"]), total))
        lists = t["pagelists"]
        if lists != 0:
            # Each CPU's list of free single pages (kernel/Mem/Portable/CPUPageList.swift).
            slots = [lists + index * t["CPUPageList.stride"] for index in range(i64(t["smp.areasUsed@"]))]
            pages = sum(u32(slot + t["CPUPageList.count"]) for slot in slots)
            allocations = sum(u64(slot + t["CPUPageList.allocations"]) for slot in slots)
            frees = sum(u64(slot + t["CPUPageList.frees"]) for slot in slots)
            print("CPU page lists: %d pages more (free, but not the buddy allocator's), up to %d per CPU; %d allocations and %d frees served by them" % (
                pages, t["pagelists.high"], allocations, frees))
        thresholds = t["thresholds@"]
        print("thresholds: free_min %d, free_reserved %d, paging_start %d, paging_target %d pages" % tuple(
            u64(thresholds + t["FreePageThresholds." + name]) for name in ("freeMin", "freeReserved", "pagingStart", "pagingTarget")))
        # The pool of buddy descriptors (kernel/Mem/Portable/BuddyDescriptorPool.swift): its
        # counts, then every page of descriptors with how many of its descriptors are in use.
        pool = buddy + t["BuddyAllocator.descriptors"]
        field = lambda name: i64(pool + t["BuddyDescriptorPool." + name])
        print("buddy descriptors: %d static + %d dynamic pages, %d in use, %d free, reserve %d; %d pages given back so far" % (
            field("staticPages"), field("dynamicPages"), field("inUse"), field("freeCount"), field("reserveTarget"), field("pagesGivenBack")))
        page = u64(pool + t["BuddyDescriptorPool.pageList"])
        per_page = t["buddy.descriptorsPerPage"]
        while page:
            kind = "static " if u8(page + t["DescriptorPageHeader.isStatic"]) else "dynamic"
            print("  %s page %#x: %3d of %d descriptors in use" % (kind, page, u32(page + t["DescriptorPageHeader.inUse"]), per_page))
            page = u64(page + t["DescriptorPageHeader.nextPage"])


def map_name(t, control):
    return static_string(control + t["MapControl.map"] + t["VMMapState.name"])


class KMap(gdb.Command):
    """kmap [kernel_map|kmem|pageable|pager]: the entries of a map."""

    def __init__(self):
        super().__init__("kmap", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        t = DebugTable()
        name = argument.strip() or "kernel_map"
        maps = t.names("map.")
        if name not in maps:
            raise gdb.GdbError("no map %r; known: %s" % (name, ", ".join(sorted(maps))))
        state = maps[name] + t["MapControl.map"]
        kinds = {value: kind for kind, value in t.names("mapkind.").items()}
        print("%s: %#x - %#x, %d entries" % (name, u64(state + t["VMMapState.start"]), u64(state + t["VMMapState.end"]),
                                            i64(state + t["VMMapState.count"])))
        entry = u64(state + t["VMMapState.first"])
        seen = 0
        while entry and seen < 100000:
            start, end = u64(entry + t["MapEntry.start"]), u64(entry + t["MapEntry.end"])
            kind = kinds.get(u8(entry + t["MapEntry.kind"]), "?")
            protection = u8(entry + t["MapEntry.protection"])
            rights = ("r" if protection & 1 else "-") + ("w" if protection & 2 else "-") + ("x" if protection & 4 else "-")
            extra = ""
            if kind == "submap":
                extra = " -> submap %s" % map_name(t, u64(entry + t["MapEntry.object"]))
            elif kind == "anonymous":
                extra = " object %#x" % u64(entry + t["MapEntry.object"])
            print("  %#018x - %#018x %10s  %-9s %s%s" % (start, end, human_size(end - start), kind, rights, extra))
            entry = u64(entry + t["MapEntry.next"])
            seen += 1


def translate(t, virtual):
    """Walks the kernel's page tables (Pmap.root, read through the direct map) like the MMU."""
    table = u64(t["pmap.root@"]) & ~0xFFF
    for level, shift in ((4, 39), (3, 30), (2, 21), (1, 12)):
        entry = u64(t["directMapBase"] + table + 8 * ((virtual >> shift) & 0x1FF))
        if not entry & 1:
            raise gdb.GdbError("%#x is not mapped (level-%d entry %#x is not present)" % (virtual, level, entry))
        frame = entry & 0x000FFFFFFFFFF000
        if level == 1 or (level in (2, 3) and entry & 0x80):
            size = 1 << shift
            return (frame & ~(size - 1)) + (virtual & (size - 1)), size
        table = frame


class KPage(gdb.Command):
    """kpage <physical address> | kpage -v <virtual address>: a page's descriptor and the PV
    entries that map it; -v first translates a kernel virtual address through the page tables."""

    def __init__(self):
        super().__init__("kpage", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        words = argument.split()
        if not words or (words[0] == "-v" and len(words) != 2):
            raise gdb.GdbError("usage: kpage <physical address> | kpage -v <virtual address>")
        t = DebugTable()
        if words[0] == "-v":
            virtual = int(gdb.parse_and_eval(words[1]))
            physical, size = translate(t, virtual)
            print("virtual %#x -> physical %#x (%s page)" % (virtual, physical, human_size(size)))
        else:
            physical = int(gdb.parse_and_eval(argument))
        buddy = t["buddy"]
        frame = physical >> 12
        segments, count = u64(buddy + t["BuddyAllocator.segments"]), i64(buddy + t["BuddyAllocator.segmentCount"])
        index = None
        for number in range(count):
            segment = segments + number * t["BuddySegment.stride"]
            base, pages = u64(segment + t["BuddySegment.basePFN"]), u32(segment + t["BuddySegment.pageCount"])
            if base <= frame < base + pages:
                index = u32(segment + t["BuddySegment.firstIndex"]) + frame - base
        if index is None:
            raise gdb.GdbError("%#x is not a managed page (no descriptor)" % physical)
        # The mem_desc word: a descriptor, the page's use in the low 3 bits. A pageable page's
        # word points to its PageablePage, whose first field is the buddy descriptor; every
        # other page's to its block's buddy descriptor (kernel/Mem/Portable/PageDescriptor.swift).
        words = u64(buddy + t["BuddyAllocator.memDescs"])
        word = u64(words + index * 8)
        uses = {value: name for name, value in t.names("pageuse.").items()}
        queues = {value: name for name, value in t.names("pagequeue.").items()}
        use, pointer = word & 7, word & ~7
        use_name = uses.get(use, "? (%d)" % use)
        block = u64(pointer + t["PageablePage.buddy"]) if use_name == "anonymous" else pointer
        order = u8(block + t["BuddyDescriptor.order"]) if block else 0
        print("page %#x: page %d, mem_desc at %#x" % (physical & ~0xFFF, index, words + index * 8))
        print("  use %s, order %d" % (use_name, order))
        if block:
            first = u32(block + t["BuddyDescriptor.firstPage"])
            bits = u8(block + t["BuddyDescriptor.flags"])
            marks = [name for name, bit in sorted(t.names("buddyflag.").items(), key=lambda item: item[1]) if bits & bit]
            print("  mem_desc %#x: buddy descriptor %#x, block of %d pages from descriptor %d, flags %s" % (
                word, block, 1 << order, first, " ".join(marks) or "none"))
        owner_words = block + t["BuddyDescriptor.ownerWords"]
        pv_head, pv_count = 0, 0
        if use_name == "anonymous":
            flags = u16(pointer + t["PageablePage.flags"])
            names = [name for name, bit in sorted(t.names("pageflag.").items(), key=lambda item: item[1]) if flags & bit]
            queue = u8(pointer + t["PageablePage.queue"])
            print("  pageable descriptor %#x: flags %#x (%s), queue %s, object %#x, offset %d" % (
                pointer, flags, " ".join(names) or "none", queues.get(queue, "? (%d)" % queue),
                u64(pointer + t["PageablePage.object"]), u32(pointer + t["PageablePage.offset"])))
            mappings = pointer + t["PageablePage.mappings"]
            pv_head, pv_count = u64(mappings + t["PVList.head"]), u32(mappings + t["PVList.count"])
        elif use_name in ("wired", "allocated"):
            # No descriptor of its own: the PV list is in the buddy descriptor's owner words.
            pv_head, pv_count = u64(owner_words), u32(owner_words + 8)
        elif use_name == "pageTable":
            print("  page table: %d valid entries%s" % (u64(owner_words), ", pinned" if u64(owner_words + 8) else ""))
        print("  mapped at %d addresses:" % pv_count)
        pv = pv_head
        while pv:
            print("    %#018x" % u64(pv + t["PVEntry.virtualAddress"]))
            pv = u64(pv + t["PVEntry.next"])


def cpu_areas(t):
    """(index, area address) of every per-CPU area in use (kernel/Arch/x86_64/PerCPU.swift)."""
    used = i64(t["smp.areasUsed@"])
    return [(number, t["percpu.areas"] + number * t["percpu.areaSize"]) for number in range(used)]


def running_cpus(t):
    """Thread address -> the CPU whose current thread it is."""
    return {u64(area + t["PerCPU.currentThread"]): number for number, area in cpu_areas(t)}


class KCpus(gdb.Command):
    """kcpus: every CPU the kernel tried to start: its APIC id, state, current and idle thread
    and preemption count."""

    def __init__(self):
        super().__init__("kcpus", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        t = DebugTable()
        states = {value: name for name, value in t.names("cpustate.").items()}
        placeholder = t["thread.placeholder"]

        def thread(pointer):
            if pointer in (0, placeholder):
                return "none"
            return "thread %d %s" % (u64(pointer + t["Thread.id"]), static_string(pointer + t["Thread.name"]))
        for number, area in cpu_areas(t):
            state = states.get(u32(area + t["PerCPU.state"]), "?")
            print("cpu %d: APIC id %d, %s; running %s; idle %s; preemption count %d" % (
                i64(area + t["PerCPU.index"]), u32(area + t["PerCPU.apicID"]), state,
                thread(u64(area + t["PerCPU.currentThread"])), thread(u64(area + t["PerCPU.idleThread"])),
                i64(area + t["PerCPU.preemptionCount"])))


class KThreads(gdb.Command):
    """kthreads: every thread, its state and what it waits for."""

    def __init__(self):
        super().__init__("kthreads", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        t = DebugTable()
        states = {value: name for name, value in t.names("threadstate.").items()}
        classes = {value: name for name, value in t.names("requester.").items()}
        current = t.live("scheduler.current")
        ticks = t.live("timer.ticks")
        on_cpu = running_cpus(t)
        thread = t.live("threads.all")
        seen = 0
        while thread and seen < 10000:
            state = states.get(u8(thread + t["Thread.state"]), "?")
            line = "%s thread %d %s: %s" % ("*" if thread == current else " ", u64(thread + t["Thread.id"]),
                                           static_string(thread + t["Thread.name"]), state)
            if thread in on_cpu:
                line += " on cpu %d" % on_cpu[thread]
            if state == "sleeping":
                line += " in %s" % static_string(thread + t["Thread.wait.reason"])
                requester = u8(thread + t["Thread.wait.requester"])
                if requester != t["requester.none"]:
                    line += " for %d %s-class page(s)" % (u64(thread + t["Thread.wait.pagesWanted"]), classes.get(requester, "?"))
                zone = optional_static_string(t, thread + t["Thread.wait.zone"])
                if zone:
                    line += " while growing zone %s" % zone
                line += " on channel %#x for %d ticks" % (u64(thread + t["Thread.wait.channel"]),
                                                          ticks - u64(thread + t["Thread.wait.sinceTick"]))
            print(line)
            thread = u64(thread + t["Thread.allNext"])
            seen += 1


class KLog(gdb.Command):
    """klog [bytes]: the newest part of the kernel log ring (all of it by default)."""

    def __init__(self):
        super().__init__("klog", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        size = u64(symbol_address("klog_size"))
        written = u64(symbol_address("klog_written"))
        base = symbol_address("klog_buffer")
        wanted = int(gdb.parse_and_eval(argument)) if argument.strip() else size
        wanted = max(0, min(wanted, written, size))
        start = written - wanted
        text = bytearray()
        while start < written:
            offset = start % size
            chunk = min(written - start, size - offset)
            text += memory(base + offset, chunk)
            start += chunk
        print(text.decode("utf-8", "replace"), end="" if text.endswith(b"\n") else "\n")


for command in (KZones, KBuddy, KMap, KPage, KThreads, KCpus, KLog):
    command()
print("kernel helpers loaded: kzones kbuddy kmap kpage kthreads kcpus klog")
