"""pretune serve against real uvicorn servers on loopback ports, spoken to by clients nobody here
wrote (NVIDIA's tritonclient for Open Inference Protocol V2, httpx for /predict): the same
answers as `pretune predict`, batching under concurrent load, every refusal a 4xx with a JSON
body, a full queue 503 and recovery, SIGTERM finishing the request in flight."""

from __future__ import annotations

import asyncio
import io
import json
import random
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

import pretune
from pretune.serve import create_app, serve_config
from pretune.serve.batcher import Batcher, QueueFull
from pretune.serve.server import create_server
from tests.conftest import image_recipe, sentiment_frame, shapes_frame, tagged_frame, task_recipe, tiny_recipe

TEXTS = sentiment_frame(40, seed=3)["text"].tolist() + ["superb brilliant film", "awful dull plot"]


@contextmanager
def served(run, **options):
    """A real uvicorn server for `run` on a free loopback port, in a thread; yields host:port."""
    cfg = serve_config(port=0, access_log=False, **options)
    server = create_server(create_app(run, cfg), cfg)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield server.address
    finally:
        server.should_exit = True
        thread.join(30)


class ServerProcess:
    """`pretune serve RUN --port 0 ...` in its own process; its stderr (the access log) is read
    all along, so the pipe never fills."""

    def __init__(self, run, *options: str, **popen):
        self.proc = subprocess.Popen([sys.executable, "-m", "pretune", "serve", str(run.path), "--port", "0",
                                      *options], stderr=subprocess.PIPE, text=True, **popen)
        self.lines: list[str] = []
        self.address: str | None = None
        started = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.lines.append(line)
                if self.address is None and " on http://" in line:
                    self.address = line.rsplit("http://", 1)[1].strip()
                    started.set()
            started.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        started.wait(120)
        assert self.address, "".join(self.lines)[-3000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.reader.join(10)
        return code


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory, tiny_model_dir, sentiment_csv):
    return pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv), tmp_path_factory.mktemp("serve") / "cls",
                       quiet=True)


@pytest.fixture(scope="module")
def cls_server(cls_run):
    with served(cls_run, max_text_bytes=1000, max_inputs=8) as address:
        yield address


def metrics_of(address: str) -> dict[tuple, float]:
    """/metrics parsed by prometheus_client's own parser: {(sample name, labels...): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://{address}/metrics").text
    return {(s.name, *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def triton_infer(address: str, name: str, input_name: str, values: list, binary: bool = True):
    client = triton.InferenceServerClient(address)
    tensor = triton.InferInput(input_name, [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array(values, dtype=object), binary_data=binary)
    return client, client.infer(name, [tensor])


def test_triton_client_on_a_text_classifier_gets_what_predict_gives(cls_run, cls_server):
    expected = pretune.predict(cls_run, TEXTS[:6])
    for binary in (True, False):  # Triton's binary tensor extension, and plain JSON
        client, result = triton_infer(cls_server, "cls", "text", TEXTS[:6], binary)
        labels = [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label")]
        assert labels == [e["label"] for e in expected]
        assert result.as_numpy("score") == pytest.approx([e["score"] for e in expected], abs=1e-5)
        scores = result.as_numpy("scores")
        assert scores.shape == (6, 2)
        assert scores[:, 1] == pytest.approx([e["scores"]["pos"] for e in expected], abs=1e-5)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("cls")
    meta = client.get_model_metadata("cls")
    assert meta["parameters"]["labels"] == ["neg", "pos"] and meta["inputs"][0]["name"] == "text"
    assert [o["name"] for o in meta["outputs"]] == ["label", "score", "scores"]


def test_triton_client_on_a_ner_model_gets_predicts_spans(tmp_path, tiny_model_dir):
    run = pretune.fit(task_recipe(tiny_model_dir, "token-classification", epochs=8, optimizer={"lr": 4e-3}),
                      tmp_path / "ner", data=tagged_frame(300), quiet=True)
    texts = ["bob met alice in paris city today", "carol saw the berlin city", "the a met"]
    expected = pretune.predict(run, texts)
    assert sum(len(e["entities"]) for e in expected) >= 2  # the model found entities: spans to compare
    with served(run) as address:
        _, result = triton_infer(address, "ner", "text", texts)
        entities = [json.loads(x) for x in result.as_numpy("entities")]
        for got, want in zip(entities, expected, strict=True):
            assert [(e["text"], e["type"], e["start"], e["end"]) for e in got] == [
                (e["text"], e["type"], e["start"], e["end"]) for e in want["entities"]]
            assert [e["score"] for e in got] == pytest.approx([e["score"] for e in want["entities"]], abs=1e-5)
        answer = httpx.post(f"http://{address}/predict", json={"inputs": texts[0]}).json()
        assert answer == [{"entity_group": e["type"], "score": pytest.approx(e["score"], abs=1e-5), "word": e["text"],
                           "start": e["start"], "end": e["end"]} for e in expected[0]["entities"]]


@pytest.mark.parametrize("variant", ["torch", "onnx-int8"])
def test_predict_endpoint_answers_as_pipeline_would(variant, cls_run, tmp_path):
    run = cls_run if variant == "torch" else pretune.export(cls_run, tmp_path / "int8", int8=True)
    # pretune predict's answers for the same batches: dynamic int8 scales each batch's activations by
    # their range, padding included, so an int8 score moves by ~1e-4 with the batch it ran in.
    expected = pretune.predict(run, [TEXTS[0]]) + pretune.predict(run, TEXTS[:4])
    with served(run) as address:
        client = httpx.Client(base_url=f"http://{address}")
        meta = client.get(f"/v2/models/{run.path.name}").json()
        assert meta["platform"] == ("pretune-torch" if variant == "torch" else "pretune-onnxruntime")
        one = client.post("/predict", json={"inputs": TEXTS[0]}).json()  # pipeline("text"): a list of one
        assert one == [{"label": expected[0]["label"], "score": pytest.approx(expected[0]["score"], abs=1e-5)}]
        many = client.post("/predict", json={"inputs": TEXTS[:4]}).json()  # pipeline([...]): one dict each
        assert [m["label"] for m in many] == [e["label"] for e in expected[1:]]
        assert [m["score"] for m in many] == pytest.approx([e["score"] for e in expected[1:]], abs=1e-5)
        ranked = client.post("/predict", json={"inputs": TEXTS[0], "parameters": {"top_k": None}}).json()
        assert [r["label"] for r in ranked] == sorted(expected[0]["scores"], key=lambda k: -expected[0]["scores"][k])


BAD = [  # (path, request options, status, words in the error)
    ("/predict", {"content": "superb", "headers": {"content-type": "text/plain"}}, 415, "content type"),
    ("/v2/models/cls/infer", {"content": "x", "headers": {"content-type": "text/plain"}}, 415, "content type"),
    ("/predict", {"content": '{"inputs": ', "headers": {"content-type": "application/json"}}, 400, "malformed JSON"),
    ("/v2/models/cls/infer", {"content": "{oops"}, 400, "malformed JSON"),
    ("/v2/models/cls/infer", {"json": {"inputs": [{"name": "sentence", "shape": [1], "datatype": "BYTES",
                                                   "data": ["a"]}]}}, 400, "unknown input 'sentence'"),
    ("/v2/models/cls/infer", {"json": {"inputs": [{"name": "text", "shape": [0], "datatype": "BYTES",
                                                   "data": []}]}}, 400, "empty"),
    ("/v2/models/cls/infer", {"json": {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
                                                   "data": ["a"]}]}}, 400, "shape"),
    ("/v2/models/cls/infer", {"json": {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32",
                                                   "data": [1.0]}]}}, 400, "BYTES"),
    ("/v2/models/cls/infer", {"json": {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                                   "data": ["a"]}], "outputs": [{"name": "logits"}]}},
     400, "unknown output"),
    ("/v2/models/other/infer", {"json": {"inputs": []}}, 404, "unknown model 'other'"),
    ("/predict", {"json": {"inputs": []}}, 400, "empty list"),
    ("/predict", {"json": {"text": "a"}}, 400, "'inputs'"),
    ("/predict", {"json": {"inputs": [1, 2]}}, 400, "must be a string"),
    ("/predict", {"json": {"inputs": "a", "parameters": {"top_k": -1}}}, 400, "top_k"),
    ("/predict", {"json": {"inputs": "é" * 501}}, 413, "1002 bytes; at most 1000"),
    ("/predict", {"json": {"inputs": ["a"] * 9}}, 413, "9 inputs in one request; at most 8"),
    ("/v2/models/cls/infer", {"content": b"\xff" * 100_000}, 413, "request body"),
    ("/v2/nothing", {"json": {"inputs": "a"}}, 404, "no route POST /v2/nothing"),
]


@pytest.mark.parametrize(("path", "options", "status", "words"), BAD, ids=[f"{b[2]}-{b[3]}" for b in BAD])
def test_bad_input_gets_a_4xx_with_a_json_error(cls_server, path, options, status, words):
    response = httpx.post(f"http://{cls_server}{path}", **options)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert words in response.json()["error"]


def test_refusals_are_counted_and_the_server_still_answers(cls_server):
    before = metrics_of(cls_server).get(("pretune_request_errors_total", ("code", "415"), ("route", "/predict")), 0)
    httpx.post(f"http://{cls_server}/predict", content="x", headers={"content-type": "text/plain"})
    after = metrics_of(cls_server)
    assert after[("pretune_request_errors_total", ("code", "415"), ("route", "/predict"))] == before + 1
    assert httpx.post(f"http://{cls_server}/predict", json={"inputs": "fine"}).status_code == 200


def test_sixteen_clients_under_load_get_unbatched_answers_and_the_counts_add_up(cls_run):
    """16 concurrent clients for ~8 s (at least 3 requests each) against `pretune serve` in its own
    process: no error, each answer the one `pretune predict` gives for that text alone, requests
    batched together."""
    alone = {t: pretune.predict(cls_run, [t])[0] for t in TEXTS}
    server = ServerProcess(cls_run, "--max-batch", "32", "--max-wait-ms", "5")
    sent, problems, lock = [], [], threading.Lock()
    end = time.monotonic() + 8

    def client(seed: int):
        rng = random.Random(seed)
        with httpx.Client(base_url=f"http://{server.address}", timeout=60) as http:
            for n in range(40):  # bounded: at most 40 requests, and none started after ~8 s (but 3 each)
                if n >= 3 and time.monotonic() > end:
                    break
                texts = rng.sample(TEXTS, rng.randint(1, 3))
                if seed % 2:
                    r = http.post("/predict", json={"inputs": texts, "parameters": {"top_k": None}})
                    got = [{a["label"]: a["score"] for a in answer} for answer in r.json()] if r.is_success else []
                else:
                    r = http.post(f"/v2/models/{cls_run.path.name}/infer", json={"inputs": [
                        {"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]})
                    out = {o["name"]: o for o in r.json()["outputs"]} if r.is_success else {}
                    got = [dict(zip(["neg", "pos"], out["scores"]["data"][2 * i:2 * i + 2], strict=True))
                           for i in range(len(texts))] if out else []
                with lock:
                    sent.append((seed % 2, len(texts)))
                    if r.status_code != 200:
                        problems.append(r.text)
                    for text, scores in zip(texts, got, strict=True):
                        want = alone[text]["scores"]
                        if any(abs(scores[k] - want[k]) > 1e-5 for k in want):
                            problems.append(f"{text!r}: {scores} != {want}")

    try:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        metrics = metrics_of(server.address)
    finally:
        code = server.stop()
    assert not problems, problems[:5]
    assert len(sent) >= 48 and code == 0
    requests = {route: sum(1 for kind, _ in sent if kind == (route == "/predict")) for route in
                ("/predict", "/v2/models/{name}/infer")}
    for route, count in requests.items():
        assert metrics[("pretune_requests_total", ("code", "200"), ("route", route))] == count
    texts = sum(n for _, n in sent)
    assert metrics[("pretune_inputs_total",)] == texts == metrics[("pretune_batch_size_sum",)]
    assert metrics[("pretune_batch_size_count",)] < len(sent) / 2  # many requests shared a forward
    latency = metrics[("pretune_request_latency_seconds_count", ("route", "/predict"))]
    assert latency == requests["/predict"]
    log = [json.loads(line) for line in server.lines if line.startswith("{")]
    assert sum(1 for e in log if e["status"] == 200 and e["route"] != "/metrics") == len(sent)
    assert {"time", "client", "method", "path", "status", "ms", "inputs"} <= set(log[0])


def test_a_burst_beyond_the_queue_gets_503s_then_recovers_and_sigterm_finishes_in_flight(cls_run):
    """A queue of 32 inputs and 2 s of waiting for a batch to fill: the third request of 16 is over
    the limit, deterministically. Then SIGTERM while a request waits: it is answered, exit 0."""
    server = ServerProcess(cls_run, "--max-queue", "32", "--max-inputs", "16", "--max-batch", "64",
                           "--max-wait-ms", "2000", "--no-access-log")
    url = f"http://{server.address}"
    body = {"inputs": TEXTS[:16]}

    async def burst():
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            return await asyncio.gather(*[http.post("/predict", json=body) for _ in range(12)])

    try:
        answers = asyncio.run(burst())
        codes = [r.status_code for r in answers]
        assert set(codes) == {200, 503} and codes.count(200) >= 2, codes
        busy = next(r for r in answers if r.status_code == 503)
        assert busy.headers["retry-after"] == "1" and "server busy" in busy.json()["error"]
        assert httpx.post(f"{url}/predict", json=body, timeout=30).status_code == 200  # recovered
        assert metrics_of(server.address)[("pretune_request_errors_total", ("code", "503"),
                                           ("route", "/predict"))] == codes.count(503)

        in_flight = {}

        def ask():
            in_flight["response"] = httpx.post(f"{url}/predict", json={"inputs": "superb film"}, timeout=30)

        asker = threading.Thread(target=ask)
        asker.start()
        deadline = time.monotonic() + 30
        while metrics_of(server.address)[("pretune_queued_inputs",)] < 1:  # it waits in the batcher
            assert time.monotonic() < deadline and asker.is_alive()
            time.sleep(0.02)
        server.proc.send_signal(signal.SIGTERM)
        asker.join(30)
        assert server.proc.wait(30) == 0
        assert in_flight["response"].status_code == 200
        assert in_flight["response"].json()[0]["label"] == pretune.predict(cls_run, ["superb film"])[0]["label"]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/v2/health/live")
    finally:
        server.stop()


def test_an_image_classifier_takes_encoded_image_files(tmp_path):
    import torch
    from PIL import Image
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    ResNetForImageClassification(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                              layer_type="basic", num_labels=5)).save_pretrained(tmp_path / "resnet")
    data = {"train": shapes_frame(48), "validation": shapes_frame(16, seed=1), "test": shapes_frame(16, seed=2)}
    run = pretune.fit(image_recipe(tmp_path / "resnet", epochs=1), tmp_path / "img", data=data, quiet=True)
    files = []
    for i, image in enumerate(shapes_frame(3, seed=5)["image"]):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        files.append(buffer.getvalue())
        (tmp_path / f"{i}.png").write_bytes(files[-1])
    expected = pretune.predict(run, [str(tmp_path / f"{i}.png") for i in range(3)])
    with served(run) as address:
        _, result = triton_infer(address, "img", "image", files)
        assert [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label")] == [
            e["label"] for e in expected]
        assert result.as_numpy("score") == pytest.approx([e["score"] for e in expected], abs=1e-5)
        bad = httpx.post(f"http://{address}/v2/models/img/infer", json={"inputs": [
            {"name": "image", "shape": [1], "datatype": "BYTES", "data": ["bm90IGFuIGltYWdl"]}]})
        assert bad.status_code == 400 and "not a readable image" in bad.json()["error"]


def test_the_batcher_runs_concurrent_requests_in_one_forward_and_refuses_past_the_queue():
    calls = []

    def predict(inputs, pairs):  # a stand-in forward: records each batch it is given
        calls.append(list(inputs))
        return [{"echo": x} for x in inputs]

    async def main():
        batcher = Batcher(predict, max_batch=8, max_wait_ms=50, max_queue=10, threads=1)
        await batcher.start()
        answers = await asyncio.gather(*[batcher.submit([f"{i}a", f"{i}b"]) for i in range(4)])
        with pytest.raises(QueueFull):
            await asyncio.gather(*[batcher.submit(["x"] * 4) for _ in range(3)])
        await batcher.stop()
        return answers

    answers = asyncio.run(main())
    assert calls[0] == ["0a", "0b", "1a", "1b", "2a", "2b", "3a", "3b"]  # four requests, one forward
    assert answers == [[{"echo": f"{i}a"}, {"echo": f"{i}b"}] for i in range(4)]


def test_a_missing_run_and_bad_limits_are_one_line_errors(tmp_path, cls_run):
    with pytest.raises(pretune.PretuneError, match="not a pretune run directory"):
        create_app(tmp_path / "nope")
    limits = subprocess.run([sys.executable, "-m", "pretune", "serve", str(cls_run.path), "--max-inputs", "100",
                             "--max-queue", "10"], capture_output=True, text=True)
    assert limits.returncode == 2 and "Traceback" not in limits.stderr
    assert limits.stderr.strip() == "pretune: error: serve: max_inputs (100) exceeds max_queue (10): such a " \
        "request could never be queued"


def test_multilabel_and_regression_answers_come_from_their_tasks_decoding():
    """The wire shapes of the two tasks not served above, from each task's own `decode`."""
    from pretune.recipe import DataConfig
    from pretune.serve.protocol import infer_response
    from pretune.tasks import create_task

    multi = create_task(DataConfig(task="multi-label"))
    multi.label_names, multi.thresholds = ["person", "place"], np.array([0.5, 0.9])
    results = multi.decode(np.array([[2.0, 1.0], [-3.0, 3.0]]), None, None)  # sigmoid: .88/.73, .05/.95
    body = infer_response("m", 7, multi.oip_outputs, None, results, multi.label_names)
    assert body["id"] == 7 and [json.loads(x) for x in body["outputs"][0]["data"]] == [["person"], ["place"]]
    assert body["outputs"][1]["shape"] == [2, 2]
    assert multi.pipeline_answer(results[0], "default") == [
        {"label": "person", "score": pytest.approx(0.8808, abs=1e-4)}]  # place's 0.73 is under its 0.9
    assert [a["label"] for a in multi.pipeline_answer(results[0], None)] == [
        "person", "place"]
    regression = create_task(DataConfig(task="regression"))
    value = regression.decode(np.array([[1.25]]), None, None)
    body = infer_response("r", None, regression.oip_outputs, [{"name": "value"}], value, None)
    assert body["outputs"] == [{"name": "value", "datatype": "FP32", "shape": [1], "data": [1.25]}]
    assert regression.pipeline_answer(value[0], "default") == [{"label": "LABEL_0", "score": 1.25}]
