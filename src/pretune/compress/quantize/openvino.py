"""OpenVINO int8 (NNCF post-training static quantization, calibrated on training rows), and the
choice between it and ONNX Runtime int8 by what measures faster on this CPU *and* stays inside
the budget (`compress.quantize.backend: auto`): which backend runs int8 faster depends on the
CPU (VNNI, AMX) and the model's shapes, so it is measured, not fixed. The notes and the table's
`backend` column say which was used."""

from __future__ import annotations

import io
import logging
import shutil
from collections.abc import Callable
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

from pretune.compress.choice import tie_order, tied_with
from pretune.compress.quantize.gate import CALIBRATION_BATCH, CalibrationReader
from pretune.compress.rounds import throughput_of, time_rounds
from pretune.data.encode import EncodedSplit
from pretune.errors import MissingExtraError
from pretune.models.openvino_runner import OPENVINO_FILE, import_openvino

ROUNDS = 3  # interleaved timing rounds of the candidates, each keeping its best
TIE = 0.03  # as compress.measure.tie's default: throughputs this close (or within their spread) tie


def openvino_int8(source: Path, calibration: EncodedSplit, pad_id: int, transformer: bool, out_dir: Path) -> Path:
    """NNCF int8 of the ONNX model `source` (converted to OpenVINO first) in `out_dir`."""
    ov = import_openvino()
    try:
        import nncf
    except ImportError:
        raise MissingExtraError("nncf", "openvino") from None
    model = ov.convert_model(str(source))
    names = [i.get_any_name() for i in model.inputs]
    reader = CalibrationReader(calibration, names, pad_id, CALIBRATION_BATCH)
    feeds = list(iter(reader.get_next, None))
    with _quiet(nncf):
        quantized = nncf.quantize(model, nncf.Dataset(feeds), subset_size=len(feeds),
                                  **({"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}))
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_dir / OPENVINO_FILE), compress_to_fp16=False)
    return out_dir


def copy_openvino(ov_dir: Path, model_dir: Path) -> None:
    for name in (OPENVINO_FILE, OPENVINO_FILE.replace(".xml", ".bin")):
        shutil.copyfile(ov_dir / name, model_dir / name)


def pick_backend(runners: dict[str, object], validation: Callable, base: float, budget: float | None,
                 batches: list[dict]) -> tuple[str, dict]:
    """The faster candidate (rows/s at the batches' size, best of interleaved rounds) among
    those whose validation drop from `base` is inside `budget` (all when no budget; the most
    accurate when none is inside). Candidates within the timing noise of the fastest are tied,
    and a tie goes to the higher validation accuracy, as between the nodes of a compression
    (compress/choice.py): timing noise must not pick the backend a rerun would not."""
    inputs = [{"batches": batches, "rows": sum(len(b["input_ids" if "input_ids" in b else "pixel_values"])
                                               for b in batches)}] * len(runners)
    rounds = dict(zip(runners, time_rounds(list(runners.values()), inputs, ROUNDS), strict=True))
    rows = [{"name": name, **throughput_of(r), "validation_accuracy": validation(runners[name])}
            for name, r in rounds.items()]
    inside = [r for r in rows if budget is None or (base - r["validation_accuracy"]) * 100 <= budget]
    if inside:
        fastest = max(inside, key=lambda r: (r["throughput"], r["name"]))
        chosen = sorted(tied_with(fastest, inside, TIE), key=tie_order)[0]["name"]
    else:
        chosen = max(rows, key=lambda r: r["validation_accuracy"])["name"]
    return chosen, {r["name"]: {"rows_per_s": round(r["throughput"], 1), "spread": round(r["throughput_spread"], 3),
                                "validation_accuracy": r["validation_accuracy"]} for r in rows} | {
        "chosen": chosen, "budget": budget}


@contextmanager
def _quiet(nncf):
    # NNCF draws progress bars (stdout, stderr) and logs each algorithm it applies.
    nncf.set_log_level(logging.ERROR)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        yield
