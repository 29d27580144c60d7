"""Does a stray connection break gloo's set-up, and does launch() recover? (docs/distributed.md)

Calls ``distributed.launch(2, fn)`` N times, ``fn`` only joining the process group, while a
second process connects to and at once closes every port of 127.0.0.1's ephemeral range, over
and over (what a port scanner, or another program's client reconnecting to a port that gloo now
holds, does). It counts the launches that failed and the ones launch() started again: gloo gives
up ("Gloo connectFullMesh failed ... Connection closed by peer") when such a connection reaches
its port while the workers connect, which launch() answers by starting the workers again.

    python benchmarks/probe_gloo_stray.py             # 150 launches with the scanner
    python benchmarks/probe_gloo_stray.py --no-scan   # the same without it
    python benchmarks/probe_gloo_stray.py --tries 1   # launch() as it was: no second start
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import time
import warnings


def scan(stop, first=32768, last=61000):
    """Connect to every port of first..last on 127.0.0.1 and close at once, until ``stop`` is set."""
    while not stop.is_set():
        for port in range(first, last):
            with socket.socket() as s:
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))


def join_rank():
    from layerprop import distributed
    return distributed.group().rank


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=150, help="launches")
    ap.add_argument("--no-scan", action="store_true", help="no stray connections")
    ap.add_argument("--tries", type=int, default=None, help="launch's starts (distributed.JOIN_TRIES; 1: none again)")
    args = ap.parse_args()
    from layerprop import distributed
    if args.tries:
        distributed.JOIN_TRIES = args.tries

    stop = multiprocessing.Event()
    scanner = None if args.no_scan else multiprocessing.Process(target=scan, args=(stop,), daemon=True)
    if scanner:
        scanner.start()
    failed = again = 0
    t0 = time.perf_counter()
    try:
        for _ in range(args.n):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RuntimeWarning)
                try:
                    assert distributed.launch(2, join_rank) == [0, 1]
                except distributed.DistributedError as e:
                    failed += 1
                    print(f"failed: {type(e).__name__}: {str(e)[:160]}")
            again += sum("starting them again" in str(w.message) for w in caught)
    finally:
        stop.set()
        if scanner:
            scanner.join(timeout=10)
    print(f"{args.n} launches ({'with' if scanner else 'without'} the scanner) in "
          f"{time.perf_counter() - t0:.0f} s: {failed} failed, {again} started again "
          f"(distributed.JOIN_TRIES = {distributed.JOIN_TRIES})")


if __name__ == "__main__":
    main()
