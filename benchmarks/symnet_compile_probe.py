"""Time ``symnet.compile`` of one reference net in this fresh interpreter; print JSON seconds.

Run by ``comparators.symnet_fresh_process_compile`` (twice per net: a cold compile, then a
disk-cache hit in ``SYMNET_CACHE_DIR``):  python benchmarks/symnet_compile_probe.py T3
"""

from __future__ import annotations

import json
import sys

import machine

machine.configure_threads()

from comparators import symnet_compile  # noqa: E402  (after the thread settings)
from nets import NETS  # noqa: E402


def main(name: str) -> None:
    net = NETS[name]
    _, compile_s, first_call_s = symnet_compile(net, net.points(2))
    print(json.dumps({"compile_s": compile_s, "first_call_s": first_call_s}))


if __name__ == "__main__":
    main(sys.argv[1])
