"""Peak memory of the current process, as the benchmark and the run records report it."""

from __future__ import annotations

import resource


def peak_rss_bytes() -> int:
    """VmHWM (bytes): the peak RSS of this process's own address space.

    Unlike ``ru_maxrss``, which Linux carries over from the parent across fork + exec (so a
    child of a big process reports at least the parent's size), VmHWM starts afresh at exec.
    Falls back to ``ru_maxrss`` where /proc is missing.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_mb() -> float:
    """:func:`peak_rss_bytes` in MB, rounded to 0.1."""
    return round(peak_rss_bytes() / 2**20, 1)
