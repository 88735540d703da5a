"""Inference engines: what turns padded token ids into logits.

    torch     the reference: training, the fp32 reference of the accuracy guard,
              and any machine where OpenVINO is unavailable.
              fp32 | bf16 (autocast, needs AVX512-BF16/AMX) | int8 (dynamic quantization)
    openvino  a graph runtime, 2x torch at batch 1 on these CPUs.
              fp32 (f32 hint: OpenVINO's default on bf16-capable CPUs is bf16)
              | bf16 (bf16 hint) | int8 (weights and activations, calibrated at import
              with `--calibrate FILE`: sentiment/store/int8.py; else weights only);
              what calibrated int8 leaves in float runs at the precision its recipe
              recorded in the IR (f32, or bf16 on a CPU with bf16), and texts whose
              int8 decision is closer to changing than the IR's recorded margin are
              recomputed in fp32 (sentiment/model/recheck.py)

Exports are made once, when a model is imported or trained
(`export_openvino`), and stored inside the model's folder in the BentoML model
store; a service only loads them. Every engine takes int64 numpy arrays
(`input_ids`, `attention_mask`, shape batch x length) and returns float32 logits.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from . import cpu, recheck

if TYPE_CHECKING:  # numpy is imported where logits are made: the image build reads this module without it
    import numpy as np
    import openvino as ov

logger = logging.getLogger(f"bentoml.{__name__}")  # under BentoML's log handlers

ENGINES = ("torch", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")
OPENVINO_DIR = "openvino"  # inside the stored model's folder


class EngineUnavailable(ValueError):
    """An engine/precision pair this machine or this stored model cannot run; the message says why."""


class Engine(Protocol):
    name: str
    precision: str
    load_seconds: dict[str, float]  # start-up stages (sentiment/startup.py)
    rechecked: int  # texts recomputed in fp32 so far (int8 with a recorded margin: sentiment/model/recheck.py)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def torch_installed() -> bool:
    """False in the torch-free image, which serves OpenVINO only."""
    return importlib.util.find_spec("torch") is not None


@functools.cache
def openvino_core() -> ov.Core:
    """The process's one OpenVINO Core, used for every read, compile and export.

    Each Core loads a CPU plugin of its own, and each plugin points the thread's alternate
    signal stack at a stack it maps, putting back the previous one when it is destroyed
    (intel_cpu `SigAltStackSetup`, openvinotoolkit/openvino#11894). Cores destroyed in
    another order than made leave the pointer on unmapped memory, and the next signal that
    Python handles (SIGTERM at shutdown, Ctrl-C) is a segmentation fault. One Core kept for
    the process's lifetime leaves nothing to restore out of order
    (tests/sentiment/model/test_engines.py checks signals after engines come and go).
    """
    import openvino as ov

    return ov.Core()


def openvino_files(model_dir: str | Path, precision: str) -> Path:
    """The stored IR an OpenVINO precision loads (bf16 runs the fp32 IR with a bf16 hint)."""
    name = "int8" if precision == "int8" else "fp32"
    return Path(model_dir) / OPENVINO_DIR / f"{name}.xml"


def store_recheck_margin(model_dir: str | Path, below: float) -> None:
    """Rewrite a stored int8 IR with the recheck margin `below` (0: recheck nothing; recheck.py). Through a
    copy: a model read from the IR maps its weights file, which a save in place would change under it."""
    import openvino as ov

    path = openvino_files(model_dir, "int8")
    model = openvino_core().read_model(path)
    model.set_rt_info(repr(below), recheck.RECHECK_BELOW)
    tmp = path.with_name(f"{path.stem}-margin-tmp.xml")
    ov.save_model(model, tmp, compress_to_fp16=False)
    del model
    os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
    os.replace(tmp, path)


def why_unavailable(engine: str, precision: str, model_dir: str | Path) -> str | None:
    """None when this machine can run `engine` at `precision` for the stored model, else the reason."""
    if engine not in ENGINES:
        return f"unknown engine {engine!r} (one of {', '.join(ENGINES)})"
    if precision not in PRECISIONS:
        return f"unknown precision {precision!r} (one of {', '.join(PRECISIONS)})"
    if precision == "bf16" and not cpu.supports_bf16():
        return "this CPU has no AVX512-BF16/AMX"
    if engine == "torch" and not torch_installed():
        return "torch is not installed (the torch-free image serves OpenVINO only)"
    if engine == "openvino":
        if not openvino_installed():
            return "the openvino package is not installed"
        if not openvino_files(model_dir, precision).is_file():
            return f"the stored model has no OpenVINO export ({openvino_files(model_dir, precision).name}; re-import it)"
    return None


def supported_pairs(model_dir: str | Path) -> list[tuple[str, str]]:
    return [(e, p) for e in ENGINES for p in PRECISIONS if why_unavailable(e, p, model_dir) is None]


def require(engine: str, precision: str, model_dir: str | Path) -> None:
    """EngineUnavailable unless this machine runs `engine` at `precision` for the stored model:
    the one message the service (at start-up) and train_or_import.py (eval, guard) give."""
    reason = why_unavailable(engine, precision, model_dir)
    if reason:
        raise EngineUnavailable(f"cannot serve {engine}/{precision}: {reason}")


def load_engine(model_dir: str | Path, engine: str, precision: str, threads: int) -> Engine:
    require(engine, precision, model_dir)
    if engine == "torch":
        return TorchEngine(str(model_dir), precision, threads)
    return OpenVINOEngine(str(model_dir), precision, threads)


class TorchEngine:
    name = "torch"
    rechecked = 0

    def __init__(self, model_dir: str, precision: str, threads: int) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification

        self._torch = torch
        self.precision = precision
        self.threads = cpu.configure_torch_threads(threads)  # BentoML sets no OMP_NUM_THREADS
        start = time.perf_counter()
        model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        if precision == "int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model
        self.load_seconds = {"engine_read": time.perf_counter() - start}

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        autocast = (
            torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            out = self.model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(attention_mask))
            return out.logits.float().numpy()


class OpenVINOEngine:
    name = "openvino"

    def __init__(self, model_dir: str, precision: str, threads: int) -> None:
        self.precision = precision
        self.threads = max(1, threads)
        core = openvino_core()
        start = time.perf_counter()
        model = core.read_model(openvino_files(model_dir, precision))
        read = time.perf_counter()
        # the float part's precision: explicit, as OpenVINO's default on bf16-capable CPUs is bf16, even for an fp32 model
        self.float_part = "bf16" if precision == "bf16" else float_part(model) if precision == "int8" else "f32"
        config = {
            "INFERENCE_PRECISION_HINT": self.float_part,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,  # one batch at a time, like the batcher sends them
            "INFERENCE_NUM_THREADS": self.threads,
        }
        self.compiled = core.compile_model(model, "CPU", config)
        self._request = self.compiled.create_infer_request()
        # int8 that keeps its answers: texts near a decision are recomputed by the fp32 IR
        self.recheck_below = recheck.recorded(model) if precision == "int8" else None
        self.rechecked = 0
        if self.recheck_below is not None:
            from .scoring import Scoring

            self._function = Scoring.from_model_dir(model_dir).function
            fp32 = core.read_model(openvino_files(model_dir, "fp32"))
            self._fp32 = core.compile_model(fp32, "CPU", {**config, "INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
        self.load_seconds = {"engine_read": read - start, "engine_compile": time.perf_counter() - read}

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import numpy as np

        result = self._request.infer({"input_ids": input_ids, "attention_mask": attention_mask})
        out = np.array(result[0], dtype=np.float32)  # a copy: the request's buffer is reused
        if self.recheck_below is not None:
            near = np.flatnonzero(recheck.decision_margins(out, self._function) < self.recheck_below)
            if near.size:
                mask = attention_mask[near]
                length = int(mask.sum(axis=1).max())  # padding is on the right: the rows' own longest
                again = self._fp32.infer({"input_ids": input_ids[near, :length], "attention_mask": mask[:, :length]})
                out[near] = again[0]
                self.rechecked += int(near.size)
        return out


FLOAT_PART = ["sentiment", "float_part"]  # where an int8 IR records the precision of what it leaves in float


def float_part(model: object) -> str:
    """What an int8 IR's float operations run at: as its recipe recorded when it was calibrated
    and judged, f32 if unrecorded (weight-only int8) or if this CPU has no bf16 (closer to
    fp32 than what the guard judged)."""
    recorded = model.get_rt_info(FLOAT_PART).astype(str) if model.has_rt_info(FLOAT_PART) else "f32"  # type: ignore[attr-defined]
    return "bf16" if recorded == "bf16" and cpu.supports_bf16() else "f32"


def export_openvino(model: object, model_dir: str | Path, *, int8: bool = True) -> list[Path]:
    """Convert a transformers classifier to OpenVINO IR (fp32, and weight-only int8) inside `model_dir`.

    Weights are saved in fp32 (`compress_to_fp16=False`: OpenVINO would halve them
    by default, which changes the answers). Returns the files written.
    """
    import openvino as ov
    import torch

    out = Path(model_dir) / OPENVINO_DIR
    out.mkdir(parents=True, exist_ok=True)
    example = {"input_ids": torch.ones(2, 8, dtype=torch.long), "attention_mask": torch.ones(2, 8, dtype=torch.long)}
    dynamic = [("input_ids", [-1, -1], ov.Type.i64), ("attention_mask", [-1, -1], ov.Type.i64)]
    with torch.inference_mode():
        ir = ov.convert_model(model, example_input=example, input=dynamic)
    ir.outputs[0].get_tensor().set_names({"logits"})
    written = [openvino_files(model_dir, "fp32")]
    ov.save_model(ir, written[0], compress_to_fp16=False)
    if int8 and importlib.util.find_spec("nncf") is None:
        logger.warning("nncf is not installed (requirements-train.txt): no OpenVINO int8 export")
    elif int8:
        import nncf

        nncf.set_log_level(logging.ERROR)  # its progress tables would bury the import's own output
        ir8 = nncf.compress_weights(openvino_core().read_model(written[0]), mode=nncf.CompressWeightsMode.INT8_SYM)
        written.append(openvino_files(model_dir, "int8"))
        ov.save_model(ir8, written[1], compress_to_fp16=False)
    return written

