"""Run the course benchmarks and write JSON + markdown results with machine info."""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import pkgutil
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> dict:
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(),
        "device": "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    return info


def units() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def to_markdown(unit: str, result: dict, info: dict) -> str:
    lines = [f"# Benchmark: {unit}", "",
             f"{info['date']} · {info['cpu']} · {info['cpu_count']} cores · torch {info['torch']} "
             f"({info['torch_threads']} threads) · {info['device']}", ""]
    for table in result.get("tables", []):
        cols = table["columns"]
        lines += [f"## {table['title']}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for row in table["rows"]:
            cells = []
            for c in cols:
                v = row.get(c, "")
                cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for note in result.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def run_unit(unit: str, quick: bool, out: Path) -> dict:
    module = importlib.import_module(f"benchmarks.{unit}")
    info = machine_info()
    result = module.run(quick=quick)
    payload = {"unit": unit, "quick": quick, "machine": info, **result}
    out.mkdir(parents=True, exist_ok=True)
    from course_lib.core.checkpoints import atomic_write_text

    atomic_write_text(json.dumps(payload, indent=2) + "\n", out / f"{unit}.json")
    md = to_markdown(unit, result, info)
    atomic_write_text(md, out / f"{unit}.md")
    print(md)
    return payload


def main(argv=None) -> int:
    names = units()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Run course benchmarks.")
    parser.add_argument("unit", choices=names + ["all"])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test of the benchmark)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for unit in names if args.unit == "all" else [args.unit]:
        run_unit(unit, args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
