"""What a benchmark run produced, and the medians its summary reports (no I/O, no plotting)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

CLIENTS = ("aiokafka", "kafka-python")
WORKLOADS = ("produce", "consume-batch", "consume-record")


@dataclass
class Results:
    config: dict[str, Any]
    environment: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        """Per (client, workload, mode): medians over rounds; each ratio is the mode's figure over
        bare's from the same pair (run back to back, or interleaved in one process)."""
        out = []
        keys = sorted({(r["client"], r["workload"]) for r in self.runs}, key=lambda k: (k[0], WORKLOADS.index(k[1])))
        for client, workload in keys:
            runs = [r for r in self.runs if r["client"] == client and r["workload"] == workload and r.get("ok")]
            bare = {r["pair"]: r for r in runs if r["mode"] == "bare"}
            for mode in self.config["modes"]:
                mine = [r for r in runs if r["mode"] == mode]
                if not mine:
                    continue
                paired = [(r, bare.get(r["pair"], r)) for r in mine]
                ratios = [r["msgs_per_s"] / b["msgs_per_s"] for r, b in paired if b["msgs_per_s"]]
                cpu_ratios = [r["cpu_us_per_msg"] / b["cpu_us_per_msg"] for r, b in paired if b["cpu_us_per_msg"]]
                # Where the CPU went: the application's thread (aiokafka's event loop, kafka-python's
                # caller) against bare's, and every other thread (kafkahooks' export worker, the SDK's,
                # the client's own) per message. One process per side only: interleaved runs share them.
                main_ratios = [
                    r["main_cpu_us_per_msg"] / b["main_cpu_us_per_msg"]
                    for r, b in paired
                    if r.get("main_cpu_us_per_msg") and b.get("main_cpu_us_per_msg")
                ]
                others = [r["cpu_us_per_msg"] - r["main_cpu_us_per_msg"] for r in mine if r.get("main_cpu_us_per_msg")]
                # The kernel's part of that thread's CPU and its page faults (Linux, one process per
                # side): extra CPU there is memory and syscalls, not the interpreter's work.
                kernel = [r["main_sys_us_per_msg"] for r in mine if "main_sys_us_per_msg" in r]
                faults = [r["main_minor_faults_per_kmsg"] for r in mine if "main_minor_faults_per_kmsg" in r]
                out.append(
                    {
                        "client": client,
                        "workload": workload,
                        "mode": mode,
                        "rounds": len(mine),
                        "msgs_per_s": statistics.median(r["msgs_per_s"] for r in mine),
                        "ratio_to_bare": statistics.median(ratios) if ratios else None,
                        "cpu_us_per_msg": statistics.median(r["cpu_us_per_msg"] for r in mine),
                        "cpu_ratio_to_bare": statistics.median(cpu_ratios) if cpu_ratios else None,
                        "main_cpu_ratio_to_bare": statistics.median(main_ratios) if main_ratios else None,
                        "other_threads_us_per_msg": statistics.median(others) if others else None,
                        "main_sys_us_per_msg": statistics.median(kernel) if kernel else None,
                        "main_minor_faults_per_kmsg": statistics.median(faults) if faults else None,
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
                    }
                )
        return out
