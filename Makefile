# Makefile - the front door: build, run, debug, test, benchmark.
#
#   make run [ARGS="..."]    build, boot in QEMU with the serial console here; QEMU exits by itself
#   make iso [ARGS="..."]    build/kernel.iso: a GRUB 2 rescue ISO whose menu boots the kernel with ARGS
#   make run-iso [ARGS=...]  boot that ISO in QEMU (GRUB instead of QEMU's -kernel loader)
#   make test                host unit tests (swift test), the reserve model (small) and every kernel test suite under QEMU;
#                            ends with the line `N passed, N failed` over all of them
#   make verify              the reserve protocol model-checked with SPIN, every row in full (verify/, docs/reserves.md)
#   make debug [ARGS="..."]  boot halted with the gdb stub and attach gdb at the Swift entry
#   make attach [GDB_PORT=]  attach gdb to a QEMU already listening (a hanging test: docs/debugging.md)
#   make kernel              just build build/kernel.elf (symbols, for gdb) and build/kernel.mb (for QEMU)
#   make bench               benchmarks (guest instructions under -icount, host vs malloc); build/bench/report.md, docs/bench-chart.png
#   make trace [ARGS=...]    a pressure workload with trace=on, charted: build/trace/trace.png (docs/trace.md)
#   make soak                every suite at random memory sizes and seeds (SOAK_SIZES, SEED); replayable
#   make soak-seeds          many more seeds of the stress and deadlock suites, longer (SOAK_SCALE, SOAK_ROUNDS)
#
# The kernel is one swiftc invocation over every Swift file in kernel/ (Embedded Swift,
# x86_64-unknown-none-elf), plus the assembly files, linked with linker.ld. Nothing here
# uses Swift packages; Package.swift is only the host build of the portable folders (kernel/Lib,
# kernel/Mem/Portable, kernel/VM/Portable) for `swift test`.

SWIFTC      ?= $(shell command -v swiftc)
TOOLCHAIN   := $(dir $(realpath $(SWIFTC)))
CLANG       := $(TOOLCHAIN)clang
LD          := $(TOOLCHAIN)ld.lld
OBJCOPY     := $(TOOLCHAIN)llvm-objcopy
PYTHON      ?= python3
BUILD       := build

SWIFT_SOURCES := $(shell find kernel -name '*.swift' | LC_ALL=C sort)
ASM_SOURCES   := $(shell find boot kernel -name '*.S' | LC_ALL=C sort)
ASM_OBJECTS   := $(patsubst %.S,$(BUILD)/%.o,$(ASM_SOURCES))
C_HEADERS     := $(wildcard kernel/Arch/x86_64/CSupport/*)

# Facts behind these flags: ../shared/DESIGN.md section 3. No SSE (the kernel never enables
# it), no red zone (interrupts push onto the stack below rsp), no PIC (extern C globals would
# go through a GOT). -assert-config Debug keeps fatalError and precondition messages.
SWIFT_FLAGS := -target x86_64-unknown-none-elf -enable-experimental-feature Embedded \
               -wmo -parse-as-library -O -assert-config Debug -g \
               -Xcc -mno-red-zone -Xcc -mno-sse -Xcc -mno-mmx -Xcc -fno-pic \
               -Xfrontend -disable-stack-protector \
               -I kernel/Arch/x86_64/CSupport -module-name Kernel
ASM_FLAGS   := -target x86_64-unknown-none-elf -g -c
LD_FLAGS    := -T linker.ld -nostdlib -static -z max-page-size=4096 --no-pie

.PHONY: all kernel run iso run-iso grub trace trace-tools test test-host test-model test-kernel verify spin debug attach qemu bench soak soak-seeds clean

all: kernel

kernel: $(BUILD)/kernel.elf $(BUILD)/kernel.mb

$(BUILD)/kernel.o: $(SWIFT_SOURCES) $(C_HEADERS) Makefile | check-swiftc
	@mkdir -p $(dir $@)
	$(SWIFTC) $(SWIFT_FLAGS) -c $(SWIFT_SOURCES) -o $@

$(BUILD)/%.o: %.S Makefile
	@mkdir -p $(dir $@)
	$(CLANG) $(ASM_FLAGS) $< -o $@

$(BUILD)/kernel.elf: $(BUILD)/kernel.o $(ASM_OBJECTS) linker.ld
	$(LD) $(LD_FLAGS) -o $@ $(ASM_OBJECTS) $(BUILD)/kernel.o

# QEMU's multiboot loader refuses 64-bit ELF files; a 32-bit copy of the same image boots.
$(BUILD)/kernel.mb: $(BUILD)/kernel.elf
	$(OBJCOPY) --strip-debug -O elf32-i386 $< $@

.PHONY: check-swiftc
check-swiftc:
	@test -n "$(SWIFTC)" || { echo "swiftc not found: install Swift 6.3 (https://swift.org/install) and put it on PATH"; exit 1; }

qemu:
	@sh qemu/ensure-packages.sh qemu-system-x86_64:qemu-system-x86 gdb:gdb

# The GRUB tools for `make iso` and the GRUB boot in `make test` (qemu/make-iso.sh): the
# program, or for grub-pc-bin the BIOS module file, with its Debian package.
GRUB_PACKAGES := grub-mkrescue:grub-common xorriso:xorriso /usr/lib/grub/i386-pc/cdboot.img:grub-pc-bin
grub:
	@sh qemu/ensure-packages.sh $(GRUB_PACKAGES)

# The swap disk `make run` and `make debug` attach: a sparse raw image, created when missing.
SWAP_IMAGE := $(BUILD)/swap.img
SWAP_SIZE  ?= 64M

$(SWAP_IMAGE):
	@mkdir -p $(dir $@)
	truncate -s $(SWAP_SIZE) $@

# Processors for `make run`, `run-iso` and `debug` (docs/smp.md: the APs park and answer IPIs).
CPUS ?= 2

run: kernel qemu $(SWAP_IMAGE)
	@CPUS=$(CPUS) SWAP_IMAGE=$(SWAP_IMAGE) sh qemu/run.sh $(BUILD)/kernel.mb "$(ARGS)"

# Rebuilt every time: the command line inside it is ARGS, which make cannot see change.
ISO := $(BUILD)/kernel.iso
iso: kernel grub
	sh qemu/make-iso.sh $(BUILD)/kernel.mb "$(ARGS)" $(ISO)

run-iso: iso qemu $(SWAP_IMAGE)
	@CPUS=$(CPUS) SWAP_IMAGE=$(SWAP_IMAGE) sh qemu/run.sh $(ISO)

debug: kernel qemu $(SWAP_IMAGE)
	@CPUS=$(CPUS) SWAP_IMAGE=$(SWAP_IMAGE) sh qemu/debug.sh $(BUILD)/kernel.elf $(BUILD)/kernel.mb "$(ARGS)"

# Attach to a running kernel without stopping at boot: a test run started with
# `qemu/runner.py --only SUITE --gdb-port 1234`, or anything else listening on GDB_PORT.
# No dependency on `kernel`: rebuilding would give gdb symbols that the running image lacks.
GDB_PORT ?= 1234
attach:
	@test -f $(BUILD)/kernel.elf || { echo "no $(BUILD)/kernel.elf: nothing built, so nothing can be running"; exit 1; }
	gdb -q -ex "file $(BUILD)/kernel.elf" -x qemu/gdb/attach.gdb -ex "target remote 127.0.0.1:$(GDB_PORT)" \
	    -ex "echo stopped; kthreads, kzones, klog and bt show where it is\n"

# Pictures of memory pressure (docs/trace.md): ARGS is the workload's command line (default the
# objects stress workload), TRACE_MEMORY the machine, SEED the seed (a new one each run unless
# given; printed with the command that replays it). The chart is drawn with matplotlib from
# Debian (python3-matplotlib), so by the Debian python3 whatever python3 is first on PATH.
TRACE_PYTHON ?= /usr/bin/python3
TRACE_MEMORY ?= 32M
trace-tools:
	@sh qemu/ensure-packages.sh $(TRACE_PYTHON):python3 /usr/lib/python3/dist-packages/matplotlib/__init__.py:python3-matplotlib

trace: kernel qemu trace-tools
	@seed=$${SEED:-$$(date +%s)}; \
	$(TRACE_PYTHON) qemu/trace.py run --image $(BUILD)/kernel.mb --memory $(TRACE_MEMORY) --seed $$seed \
	    --arguments "$(if $(ARGS),$(ARGS),stress=objects)" --out $(BUILD)/trace/trace.png

# Each stage runs even when one before it failed, its output shown and kept in
# build/test-results/; qemu/summary.py then ends with the plain line `N passed, N failed`
# (host tests, model rows and kernel boots together) and fails if anything did.
TEST_STAGES := test-host test-model test-kernel
test:
	@mkdir -p $(BUILD)/test-results; \
	for stage in $(TEST_STAGES); do \
	    { $(MAKE) --no-print-directory $$stage 2>&1; echo "make test: exit status $$?"; } | tee $(BUILD)/test-results/$$stage.log; \
	done; \
	$(PYTHON) qemu/summary.py $(patsubst %,$(BUILD)/test-results/%.log,$(TEST_STAGES))

# The host unit tests of the kernel's portable code, and of the test harness: the KTAP parser,
# and the trace reader, whose chart test draws with TRACE_PYTHON's matplotlib.
test-host: trace-tools
	swift test
	cd qemu && TRACE_PYTHON=$(TRACE_PYTHON) $(PYTHON) -m unittest discover -s harness -t . -p 'test_*.py'

# The reserve protocol as a PROMELA model (verify/reserves.pml), checked with SPIN. Its constants
# are printed by a host program compiled with the kernel's own ReserveBounds.swift and the files
# it needs, so the model and the kernel cannot drift; renaming a constant stops the build here.
# `make test` checks a small instance (all protections on, and two removals that must
# deadlock); `make verify` every row of the matrix in full and the deepest reserve draws.
VERIFY_BUILD   := $(BUILD)/verify
MODEL_KERNEL_SOURCES := kernel/Lib/ByteString.swift kernel/Lib/Random.swift \
                  kernel/Mem/Portable/AllocationContext.swift kernel/Mem/Portable/PagePolicy.swift \
                  kernel/Mem/Portable/ReserveBounds.swift kernel/Mem/Portable/PageOrder.swift

$(VERIFY_BUILD)/reserve-constants: verify/ReserveConstants.swift $(MODEL_KERNEL_SOURCES) Makefile | check-swiftc
	@mkdir -p $(dir $@)
	$(SWIFTC) -swift-version 5 -parse-as-library -module-name ReserveConstants -o $@ \
	    verify/ReserveConstants.swift $(MODEL_KERNEL_SOURCES)

$(VERIFY_BUILD)/constants.h: $(VERIFY_BUILD)/reserve-constants
	$< > $@.tmp && mv $@.tmp $@

spin:
	@sh qemu/ensure-packages.sh spin:spin cc:gcc

test-model: $(VERIFY_BUILD)/constants.h spin
	$(PYTHON) verify/check.py --instance small --build $(VERIFY_BUILD)

verify: $(VERIFY_BUILD)/constants.h spin
	$(PYTHON) verify/check.py --instance full --build $(VERIFY_BUILD)

# Installing the GRUB tools may fail (not root, no network): make goes on, and the runner
# reports the GRUB boot as failed with the package to install.
test-kernel: kernel qemu
	-@sh qemu/ensure-packages.sh $(GRUB_PACKAGES)
	$(PYTHON) qemu/runner.py --elf $(BUILD)/kernel.elf --image $(BUILD)/kernel.mb

# Benchmarks (not a test, not part of make test): kernel figures in guest instructions (TCG
# with -icount), plain-TCG host time as a secondary figure, KVM cycles only where KVM is shown
# to be hardware virtualisation, boot times, and the host comparison with glibc, jemalloc,
# mimalloc and tcmalloc (their Debian -dev packages installed as root; a peer that is missing
# is skipped). Prints each figure's change since docs/bench-baseline.json and flags
# instruction counts that grew by more than 10%, then saves the figures there and draws
# docs/bench-chart.png. Never fails the build; the report is build/bench/report.md
# (docs/benchmarks.md). BENCH_ARGS passes options to qemu/bench.py (--keep-baseline, ...).
BENCH_PEERS := /usr/lib/x86_64-linux-gnu/libjemalloc.so:libjemalloc-dev \
               /usr/lib/x86_64-linux-gnu/libmimalloc.so:libmimalloc-dev \
               /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so:libgoogle-perftools-dev
bench: kernel qemu
	-@sh qemu/ensure-packages.sh $(BENCH_PEERS)
	-@sh qemu/ensure-packages.sh /usr/lib/python3/dist-packages/matplotlib/__init__.py:python3-matplotlib
	/usr/bin/python3 qemu/bench.py --image $(BUILD)/kernel.mb $(BENCH_ARGS)

# Every suite at SOAK_SIZES random memory sizes each (16M-16G, at most twice the largest size
# the suite declares: 512M for the pressure suites) and
# random seeds, drawn from SEED (printed; a new one each run unless given). A failure prints the
# command that replays it. Not part of make test: 10 sizes x 21 suites is about an hour.
SOAK_SIZES ?= 10
soak: kernel qemu
	@seed=$${SEED:-$$(date +%s)}; echo "make soak: SEED=$$seed SOAK_SIZES=$(SOAK_SIZES)"; \
	$(PYTHON) qemu/runner.py --elf $(BUILD)/kernel.elf --image $(BUILD)/kernel.mb --no-scenarios \
	    --random-sizes $(SOAK_SIZES) --seed $$seed

# Many more seeds of the multi-seed suites (stress, deadlock, fault injection, concurrency at 4
# CPUs), and longer runs.
SOAK_SCALE  ?= 10
SOAK_ROUNDS ?= 6000
soak-seeds: kernel qemu
	$(PYTHON) qemu/runner.py --elf $(BUILD)/kernel.elf --image $(BUILD)/kernel.mb --no-scenarios \
	    --only stress,deadlock,stressfaults,concurrency --seed-scale $(SOAK_SCALE) --kernel-arguments "stressrounds=$(SOAK_ROUNDS)" \
	    --seed $${SEED:-1000}

clean:
	rm -rf $(BUILD)
