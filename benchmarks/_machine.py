"""Shared by the benchmarks: how busy the rest of the machine is, and waiting until it is quiet.

Timings on a shared 2-core machine mean little while other work runs, so each benchmark waits for
a quiet machine and records how much CPU other processes used during its run.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path


class ForeignCPU:
    """CPU time used on this machine by processes that are not this benchmark's own, polled
    from /proc every ``period`` s in a thread. Ours: this process's descendants, and the
    processes in a network namespace one of them created (``unshare -n``: our Ray cluster)."""

    def __init__(self, period: float = 2.0):
        self.period, self.host_ns = period, os.readlink("/proc/self/ns/net")
        self.prev: dict[tuple[int, str], float] = {}
        self.cpu_s, self.by_name = 0.0, {}
        self.tick = os.sysconf("SC_CLK_TCK")
        self.t0, self._stop = time.monotonic(), threading.Event()
        self._scan(first=True)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self._scan()

    def _scan(self, first: bool = False) -> None:
        procs = {}
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                stat = (p / "stat").read_text()
                rest = stat.rsplit(")", 1)[1].split()
                ns = os.readlink(p / "ns/net")
                name = (
                    (p / "cmdline").read_bytes()[:70].replace(b"\0", b" ").decode(errors="replace")
                )
            except (OSError, IndexError):
                continue
            cpu = (int(rest[11]) + int(rest[12])) / self.tick
            procs[int(p.name)] = (int(rest[1]), ns, cpu, rest[19], name.strip() or stat[:40])
        mine, frontier = {os.getpid()}, [os.getpid()]
        kids: dict[int, list[int]] = {}
        for pid, (ppid, *_) in procs.items():
            kids.setdefault(ppid, []).append(pid)
        while frontier:
            for k in kids.get(frontier.pop(), []):
                if k not in mine:
                    mine.add(k)
                    frontier.append(k)
        our_ns = {procs[p][1] for p in mine if p in procs} - {self.host_ns}
        for pid, (_, ns, cpu, start, name) in procs.items():
            if pid in mine or ns in our_ns:
                continue
            key = (pid, start)
            before = self.prev.get(key, cpu if first else 0.0)
            self.prev[key] = cpu
            if cpu > before:
                self.cpu_s += cpu - before
                self.by_name[name] = self.by_name.get(name, 0.0) + cpu - before

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self._scan()
        wall = time.monotonic() - self.t0
        top = sorted(self.by_name.items(), key=lambda kv: -kv[1])[:3]
        return {
            "foreign_cores": self.cpu_s / max(wall, 1e-9),
            "foreign_top": "; ".join(f"{n} ({s:.0f} s)" for n, s in top if s >= 1.0),
        }


def wait_idle(tag: str, max_wait_s: float = 240.0, poll_s: float = 30.0) -> dict:
    """Wait until ``net2net_replication`` is not running (always), then until the other
    processes on the machine use < 0.25 core over 10 s (at most ``max_wait_s``)."""
    waited = 0.0
    while (
        subprocess.run(["pgrep", "-f", "net2net_replication"], capture_output=True).returncode == 0
    ):
        print(f"[{tag}] waiting: net2net_replication is running ({waited:.0f} s)", flush=True)
        time.sleep(poll_s)
        waited += poll_s
    while True:
        probe = ForeignCPU(period=1.0)
        time.sleep(10.0)
        load = probe.stop()
        waited += 10.0
        if load["foreign_cores"] < 0.25 or waited >= max_wait_s:
            break
        print(f"[{tag}] waiting: other processes use {load['foreign_cores']:.2f} cores "
              f"({load['foreign_top']}); {waited:.0f} s so far", flush=True)  # fmt: skip
        time.sleep(poll_s)
        waited += poll_s
    return {"waited_s": waited, "idle_cores_at_start": load["foreign_cores"]}
