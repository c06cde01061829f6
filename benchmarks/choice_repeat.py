"""Does a rerun choose the same model? `pretune compress` of one fitted run, twice, each in a fresh
process into its own directory (nothing reused), with the same variants and budget; prints both
choices, their messages (ties and how they were broken) and every row's best throughput and
spread, and writes results/choice_repeat.json.

    python benchmarks/choice_repeat.py RUN_DIR [--variants 'quantize;trim-vocab,quantize'] [--max-drop 1.5]
                                       [--out DIR] [--set compress.x=y ...]

Default variants are the two of issue 30's report (`[quantize]` and `[trim-vocab, quantize]`, budget
1.5), where timing noise once chose differently on two identical pipelines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_flags_line, machine, print_table, write_json  # noqa: E402


def compress_in_child(run: Path, out: Path, variants: str, max_drop: float, sets: list[str]) -> dict:
    args = [sys.executable, "-m", "pretune", "compress", str(run), "--variants", variants, "--max-drop",
            str(max_drop), "--out", str(out), *[a for s in sets for a in ("--set", s)]]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"compress failed:\n{proc.stderr[-3000:]}")
    return json.loads((out / "compression.json").read_text())


def fusion_choice(out: Path, node: str) -> str:
    """Which graph a quantize node kept (optimize auto), and the rows/s it measured for each."""
    notes = json.loads((out / node / "metrics.json").read_text()).get("compress", {})
    info = notes.get("fusion_choice")
    if not info:
        return ""
    return f"{info['chosen']} ({info['unfused_rows_per_s']:.0f} / {info['fused_rows_per_s']:.0f} rows/s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished fit run")
    parser.add_argument("--variants", default="quantize;trim-vocab,quantize")
    parser.add_argument("--max-drop", type=float, default=1.5)
    parser.add_argument("--out", type=Path, default=Path("/tmp/pretune-choice-repeat"))
    parser.add_argument("--set", dest="sets", action="append", default=[], help="compress.x=y, as the CLI's")
    args = parser.parse_args()
    print(cpu_flags_line(), file=sys.stderr)
    tables = []
    for attempt in ("first", "second"):
        out = args.out / attempt
        if out.exists():
            raise SystemExit(f"{out} exists: give a fresh --out (each attempt must build everything)")
        tables.append(compress_in_child(args.run, out, args.variants, args.max_drop, args.sets))
    rows = []
    for attempt, table in zip(("first", "second"), tables, strict=True):
        chosen = table["choice"]["name"]
        print(f"{attempt}: chose {chosen}: {table['choice']['reason']}")
        rows += [{"attempt": attempt, "name": r["name"], "throughput": r["throughput"],
                  "spread": r.get("throughput_spread"), "validation_drop": r.get("validation_drop_points"),
                  "size_mb": r["size_mb"],
                  "graph": fusion_choice(args.out / attempt, r["node"]) if r.get("node") else "",
                  "chosen": r["name"] == chosen} for r in table["rows"]]
    print_table(rows, ["attempt", "name", "throughput", "spread", "validation_drop", "size_mb", "graph", "chosen"])
    same = tables[0]["choice"]["name"] == tables[1]["choice"]["name"]
    print(f"same choice: {same}")
    path = write_json("choice_repeat", {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine(),
                                        "cpu": cpu_flags_line(), "same_choice": same, "rows": rows,
                                        "messages": [t["choice"]["reason"] for t in tables]})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
