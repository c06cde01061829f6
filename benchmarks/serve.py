"""pretune serve under load: requests per second and latency p50 / p99 at 1, 8 and 32 concurrent
clients, for

    pretune-batched   pretune serve on the int8 (ONNX Runtime) variant, dynamic batching (max batch 32, 5 ms)
    pretune-batch-1   the same server with --max-batch 1 (one request per forward)
    peer              what a user writes today: FastAPI + transformers.pipeline on the fp32 model,
                      one request per forward (a sync endpoint, so FastAPI's thread pool runs it)

    python benchmarks/serve.py [--run RUN_DIR] [--work DIR] [--seconds 5] [--rounds 2]

Each server runs in its own process on a loopback port; the clients (httpx, asyncio) run in this
process and send one review of the bundled Rotten Tomatoes test split per request to POST
/predict, which all three answer in the pipeline shape. Timing: `--rounds` rounds interleaved
across the contenders and client counts; each cell keeps its best round (throughput, and the
p50 / p99 of that round), since other processes may share the machine.
Without --run it fine-tunes all-MiniLM-L6-v2 on 500 reviews (one epoch, max length 64) and
exports its int8 variant with `pretune export --int8`. Writes results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_flags_line, machine, print_table, write_json  # noqa: E402

CLIENTS = (1, 8, 32)
RECIPE = "examples/demo.yaml"


class PeerBody(BaseModel):
    """The peer's request body (at module level: FastAPI resolves the endpoint's annotation here)."""

    inputs: str | list[str]


def peer_server(model_dir: str) -> None:
    """The peer: a FastAPI app around transformers.pipeline, as its documentation shows it."""
    import uvicorn
    from fastapi import FastAPI
    from transformers import pipeline

    classify = pipeline("text-classification", model=model_dir, device="cpu")
    app = FastAPI()

    @app.post("/predict")
    def predict(body: PeerBody):
        return classify(body.inputs)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(f"peer on http://127.0.0.1:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


class Server:
    """A contender's server process; its stderr is read (and dropped) all along."""

    def __init__(self, command: list[str]):
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        self.address, found, tail = None, threading.Event(), []

        def read():
            for line in self.proc.stderr:
                tail.append(line)
                del tail[:-20]
                if self.address is None and " on http://" in line:
                    self.address = line.rsplit("http://", 1)[1].strip()
                    found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        found.wait(600)
        if self.address is None:
            raise SystemExit(f"server did not start: {command}\n{''.join(tail)}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


async def load(address: str, texts: list[str], clients: int, seconds: float) -> dict:
    """`clients` concurrent clients, each sending the next text as soon as its answer came."""
    import httpx

    latencies, errors, labels = [], 0, {}
    end = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=60, limits=limits) as http:
        async def client(k: int):
            nonlocal errors
            i = k
            while time.perf_counter() < end:
                text = texts[i % len(texts)]
                start = time.perf_counter()
                r = await http.post("/predict", json={"inputs": text})
                latencies.append(time.perf_counter() - start)
                if r.status_code == 200:
                    labels[text] = r.json()[0]["label"]
                else:
                    errors += 1
                i += clients

        began = time.perf_counter()
        await asyncio.gather(*[client(k) for k in range(clients)])
        elapsed = time.perf_counter() - began
    ms = sorted(x * 1000 for x in latencies)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    return {"requests_per_s": len(ms) / elapsed, "p50_ms": pick(0.5), "p99_ms": pick(0.99), "requests": len(ms),
            "errors": errors, "labels": labels}


def prepare_runs(args) -> tuple[Path, Path]:
    import pretune

    if args.run:
        run = Path(args.run)
    else:
        run = Path(args.work) / "minilm"
        if not (run / "metrics.json").is_file():
            pretune.fit(RECIPE, run, overrides=["data.max_train_samples=500"], quiet=True)
    int8 = run.with_name(run.name + "-onnx-int8")
    if not (int8 / "metrics.json").is_file():
        pretune.export(run, int8, int8=True)
    return run, int8


def test_texts(run: Path, n: int = 256) -> list[str]:
    from pretune.data.prepare import prepare
    from pretune.predictor import Run

    p = Run(run).predictor()
    return list(prepare(Run(run).recipe.data, p.task, label_names=p.label_names).splits["test"].texts[:n])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", help="a fine-tuned text classification run (default: fit one)")
    parser.add_argument("--work", default="runs/bench-serve")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--peer", help=argparse.SUPPRESS)  # internal: run the peer server on this model
    args = parser.parse_args()
    if args.peer:
        return peer_server(args.peer)

    print(cpu_flags_line())
    run, int8 = prepare_runs(args)
    texts = test_texts(run)
    serve = [sys.executable, "-m", "pretune", "serve", str(int8), "--port", "0"]
    commands = {"pretune-batched": [*serve, "--max-batch", "32", "--max-wait-ms", "5"],
                "pretune-batch-1": [*serve, "--max-batch", "1", "--max-wait-ms", "0"],
                "peer": [sys.executable, __file__, "--peer", str(run / "model")]}
    servers = {name: Server(command) for name, command in commands.items()}
    best: dict[tuple[str, int], dict] = {}
    try:
        for server in servers.values():  # warm up: first requests load lazy pieces
            asyncio.run(load(server.address, texts, 4, 1.0))
        for _ in range(args.rounds):
            for clients in CLIENTS:
                for name, server in servers.items():
                    cell = asyncio.run(load(server.address, texts, clients, args.seconds))
                    key = (name, clients)
                    if key not in best or cell["requests_per_s"] > best[key]["requests_per_s"]:
                        best[key] = cell
    finally:
        for server in servers.values():
            server.stop()
    rows = []
    for (name, clients), cell in best.items():
        peer = best[("peer", clients)]
        agree = [cell["labels"][t] == peer["labels"][t] for t in cell["labels"] if t in peer["labels"]]
        rows.append({"server": name, "clients": clients, "req/s": cell["requests_per_s"],
                     "x peer": cell["requests_per_s"] / peer["requests_per_s"], "p50 ms": cell["p50_ms"],
                     "p99 ms": cell["p99_ms"], "errors": cell["errors"],
                     "label = peer": sum(agree) / len(agree) if agree else None})
    rows.sort(key=lambda r: (r["clients"], list(commands).index(r["server"])))
    print_table(rows, ["server", "clients", "req/s", "x peer", "p50 ms", "p99 ms", "errors", "label = peer"])
    path = write_json("serve", {"machine": machine(), "cpu": cpu_flags_line(), "run": str(run),
                                "seconds": args.seconds, "rounds": args.rounds, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
