#!/usr/bin/env python3
"""pageout_matrix.py - the pageout benchmark on every swap driver, clustered and not, writes in flight or not.

Boots `bench=pageout pageoutcluster=N pageoutinflight=M` at 32 MiB with a 96 MiB disk on each entry of
bench.PAGEOUT_DEVICES (the boots `make bench` makes), several rounds, and prints the medians:
the raw write rate in 1-page and 16-page requests, the pageout rate and the pages per
pageout request. docs/benchmarks.md quotes it.

    python3 qemu/pageout_matrix.py [--image build/kernel.mb] [--rounds 3] [--clusters 16,1] [--inflight 4,0] [--icount]

Host time (TCG) by default: run it on an otherwise idle machine. --icount gives guest time,
where rdtsc counts instructions.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=os.path.join(bench.REPOSITORY, "build", "kernel.mb"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clusters", default="16,1", help="comma-separated pageoutcluster= values")
    parser.add_argument("--inflight", default="4", help="comma-separated pageoutinflight= values (writes left in flight; 0 waits for each)")
    parser.add_argument("--icount", action="store_true", help="guest time (-icount) instead of host time")
    options = parser.parse_args()
    extra = bench.ICOUNT if options.icount else ()
    scratch = tempfile.mkdtemp(prefix="pageout-matrix-")
    names = ("raw swap write", "raw swap write in 16-page requests", "pages cleaned to swap by the pageout thread",
             "pages per pageout write request (x100)")
    print("| machine + disk | pageoutcluster | pageoutinflight | raw | raw16 | pageout | pages per request | pageout / raw16 | pageout, each round |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    settings = [(int(cluster), int(inflight)) for cluster in options.clusters.split(",") for inflight in options.inflight.split(",")]
    for machine, interface in bench.PAGEOUT_DEVICES:
        for cluster, inflight in settings:
            rounds = []
            for _ in range(options.rounds):
                disk = bench.make_disk(os.path.join(scratch, "swap.img"), 96)
                output = bench.qemu(options.image, "32M", "bench=pageout pageoutcluster=%d pageoutinflight=%d" % (cluster, inflight), extra=extra,
                                    disk=disk, machine=machine, interface=interface)
                os.unlink(disk)
                rounds.append({name: value for _, name, value, _ in bench.results(output)})

            def median(name):
                values = sorted(row.get(name, 0) for row in rounds)
                return values[len(values) // 2]
            print("| %s + %s | %d | %d | %d | %d | %d | %.2f | %.2f | %s |" % (
                machine, interface, cluster, inflight, median(names[0]), median(names[1]), median(names[2]), median(names[3]) / 100,
                median(names[2]) / max(median(names[1]), 1),
                ", ".join(str(row.get(names[2], 0)) for row in rounds)), flush=True)
    os.rmdir(scratch)


if __name__ == "__main__":
    main()
