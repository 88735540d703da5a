"""int8 of weights *and* activations for the OpenVINO export, calibrated and chosen on
data the accuracy guard never sees, with a recheck that keeps its answers.

Weight-only int8 (`engines.export_openvino`, no data needed) dequantizes on CPUs
without int8 activation kernels and gains little there; only static quantization of
the activations uses the integer kernels (VNNI, AMX). That needs calibration data, and
its error depends on the recipe. So, at import, from the user's own texts
(`train_or_import.py import --calibrate FILE`, e.g. SST-2 `train.tsv`):

1. the texts are shuffled (fixed seed) and cut into a calibration slice and a
   selection slice; texts of the guard's file are removed from both;
2. every recipe in `RECIPES` (the `float part in bf16` ones only on a CPU with bf16)
   is calibrated on the calibration slice;
3. each is run on the selection slice beside the fp32 export: the largest change it
   made to a text's decision margin becomes its recheck margin (texts whose int8
   margin is below it are recomputed in fp32: sentiment/model/recheck.py), so that no
   selection label differs from fp32's; its labels changed without the recheck, its
   logit error on the hardest texts (lowest fp32 margins) and the share it rechecks are
   recorded;
4. the fastest recipe with its recheck, timed on the selection slice (best of two
   interleaved rounds), is stored as the model's `openvino/int8.xml`; the guard then
   judges it on the held-out file like every other pair.

Without the recheck every recipe changed 10 to 30 of 10,000 held-out SST-2 training
labels (bf16: 2), at the edge of the guard's 0.5%: the recipe that changed the fewest
kept the FFN output projections in float and ran no faster than bf16 (README, "int8").

What a recipe leaves in float (softmax, LayerNorm, the ignored layers) runs in f32, or,
in the `float part in bf16` recipes (tried where the importing CPU has bf16), in bf16:
recorded in the IR (`engines.FLOAT_PART`) with the recheck margin, so the selection run,
the guard and the service run the same thing (a CPU without bf16 runs it in f32, closer
to fp32 than what the guard judged).

Done once, offline, stored with the model version; never at start-up.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..model.cpu import supports_bf16
from ..model.engines import FLOAT_PART, openvino_core, openvino_files
from ..model.recheck import RECHECK_BELOW, decision_margins, margin_changes
from .data import DataError

# The recipes tried (README, "Engines and precision"):
#  - NNCF's transformer model type keeps the attention's softmax/LayerNorm inputs in
#    float (without it, 131 flips on SST-2 dev were measured);
#  - keeping the FFN output projection and the classification head in float: the residual
#    stream of BERT-like models carries large outliers after the FFN (Bondarenko, Nagel,
#    Blankevoort, EMNLP 2021); the head decides the label from few values;
#  - SmoothQuant, which moves activation outliers into the weights: NNCF's transformer
#    default (0.95 for matmuls) and 0.8, which halved the logit error's tail on 10,000
#    held-out SST-2 training sentences (0.5, tried before, doubled it).
FFN_OUTPUT = [
    r".*\.ffn\.lin2/.*",  # DistilBERT
    r".*\.layer\.\d+\.output\.dense/.*",  # BERT, RoBERTa (not attention.output.dense)
]
HEAD = [r".*(pre_classifier|classifier)(\.\w+)*/.*"]
QUANTIZATIONS: dict[str, dict[str, Any]] = {
    "transformer": {},
    "transformer, FFN output and head in float": {"ignored": FFN_OUTPUT + HEAD},
    "transformer, head in float": {"ignored": HEAD},
    "transformer, head in float, SmoothQuant 0.8": {"ignored": HEAD, "smooth_quant": 0.8},
}
# Each also with what it leaves in float run in bf16 (on a CPU with bf16 only): faster, and
# judged by the same rule; the f32 variant wins a tie, as its logit error is lower.
BF16_FLOAT_PART = ", float part in bf16"
RECIPES: dict[str, dict[str, Any]] = {
    **{name: {**q, "float_part": "f32"} for name, q in QUANTIZATIONS.items()},
    **{name + BF16_FLOAT_PART: {**q, "float_part": "bf16"} for name, q in QUANTIZATIONS.items()},
}
CALIBRATION_SIZE = 300
SELECTION_SIZE = 2000
MIN_TEXTS = 10
HARDEST = 300  # selection texts with the lowest fp32 margins
SEED = 0


@dataclass(frozen=True)
class Calibration:
    """The user's texts for static int8, and where they came from."""

    texts: list[str]
    source: str
    excluded: frozenset[str] = frozenset()  # the guard's texts: never calibrated or selected on
    calibration_size: int = CALIBRATION_SIZE
    selection_size: int = SELECTION_SIZE
    recipes: tuple[str, ...] = tuple(RECIPES)  # one, to reproduce a choice made on another model

    def slices(self) -> tuple[list[str], list[str]]:
        pool = sorted({t for t in self.texts if t.strip() and t not in self.excluded})  # sorted: no set-order dependence
        random.Random(SEED).shuffle(pool)
        calibration = pool[: self.calibration_size]
        selection = pool[self.calibration_size : self.calibration_size + self.selection_size]
        if len(calibration) < MIN_TEXTS or len(selection) < MIN_TEXTS:
            raise DataError(f"{self.source}: too few texts for static int8 ({len(calibration)} to calibrate, "
                            f"{len(selection)} to choose a recipe on; at least {MIN_TEXTS} of each)")
        return calibration, selection


def quantize_calibrated(model_dir: str | Path, calibration: Calibration, max_length: int,
                        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Store the best recipe's int8 model as `openvino/int8.xml`; return what was tried, for the metadata."""
    import nncf
    import numpy as np
    import openvino as ov

    from ..model.inference import Classifier
    from ..model.scoring import Scoring, predicted_class
    from ..model.tokenization import load_tokenizer

    if not Scoring.from_model_dir(model_dir).is_classifier:
        raise DataError("static int8 is chosen by the labels it keeps: a regression model keeps weight-only int8")
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    nncf.set_log_level(logging.ERROR)  # its progress tables would bury the import's own output
    calib_texts, selection = calibration.slices()
    tokenizer = load_tokenizer(model_dir)
    calib_ids = tokenizer.encode(calib_texts, max_length)
    selection_ids = tokenizer.encode(selection, max_length)

    def feed(ids: list[int]) -> dict[str, np.ndarray]:
        row = np.array([ids], dtype=np.int64)
        return {"input_ids": row, "attention_mask": np.ones_like(row)}

    dataset = nncf.Dataset(calib_ids, feed)
    fp32_path, int8_path = openvino_files(model_dir, "fp32"), openvino_files(model_dir, "int8")
    reference = np.array(Classifier(model_dir, engine="openvino", precision="fp32", max_length=max_length).logits(selection_ids))
    reference_labels = [predicted_class(row) for row in reference]  # the guard's notion of a label
    function = Scoring.from_model_dir(model_dir).function
    hardest = np.argsort(decision_margins(reference, function))[:HARDEST]

    tried: dict[str, dict[str, Any]] = {}
    models: dict[str, Any] = {}
    quantized: dict[str, Any] = {}  # a quantization once, whatever its float part runs at
    for name in runnable(calibration.recipes):
        recipe = RECIPES[name]
        base = name.removesuffix(BF16_FLOAT_PART)
        if base not in quantized:
            quantized[base] = _quantize(nncf, openvino_core().read_model(fp32_path), dataset, len(calib_ids), recipe)
        models[name] = quantized[base].clone()
        models[name].set_rt_info(recipe["float_part"], FLOAT_PART)
        ov.save_model(models[name], int8_path, compress_to_fp16=False)  # without a recheck margin: int8 alone
        got = np.array(Classifier(model_dir, engine="openvino", precision="int8", max_length=max_length).logits(selection_ids))
        flips = sum(predicted_class(row) != label for row, label in zip(got, reference_labels))
        error = float(np.abs(got[hardest] - reference[hardest]).mean())
        below = float(margin_changes(reference, got, function).max())  # every selection label then stays fp32's
        models[name].set_rt_info(repr(below), RECHECK_BELOW)
        tried[name] = {"selection_flips": flips, "selection_agreement": round(1 - flips / len(selection), 5),
                       "hardest_mean_logit_error": round(error, 5), "recheck_below": round(below, 5),
                       "selection_rechecked": round(float((decision_margins(got, function) < below).mean()), 5)}
    for _ in range(2):  # speed with the recheck, interleaved rounds: a burst of other work slows one round, not one recipe
        for name, model in models.items():
            ov.save_model(model, int8_path, compress_to_fp16=False)
            classifier = Classifier(model_dir, engine="openvino", precision="int8", max_length=max_length)
            classifier.logits(selection_ids[:32])  # warm-up, outside the timing
            start = time.perf_counter()
            got = np.array(classifier.logits(selection_ids))
            rate = len(selection_ids) / (time.perf_counter() - start)
            tried[name]["texts_per_s"] = round(max(rate, tried[name].get("texts_per_s", 0.0)), 1)
            tried[name]["selection_flips_rechecked"] = sum(predicted_class(row) != label for row, label in zip(got, reference_labels))
    for name, record in tried.items():
        log(f"int8 recipe {name!r}: {record['selection_flips']} of {len(selection)} selection labels changed "
            f"({record['selection_flips_rechecked']} with {record['selection_rechecked']:.1%} rechecked in fp32, "
            f"margins below {record['recheck_below']:.3f}), mean logit error {record['hardest_mean_logit_error']:.4f} "
            f"on the {len(hardest)} hardest, {record['texts_per_s']:.1f} texts/s with the recheck")
    chosen = choose_recipe(tried)
    ov.save_model(models[chosen], int8_path, compress_to_fp16=False)
    log(f"int8: stored recipe {chosen!r} (chosen on {len(selection)} texts of {calibration.source} the guard never sees)")
    return {
        "recipe": chosen, "calibrated": True, "float_part": RECIPES[chosen]["float_part"], "source": calibration.source,
        "recheck_below": tried[chosen]["recheck_below"], "calibration_texts": len(calib_texts),
        "selection_texts": len(selection), "hardest": len(hardest), "tried": tried,
    }


def runnable(names: tuple[str, ...]) -> list[str]:
    """The recipes this CPU runs as they would be served: bf16 float parts only where it has bf16."""
    usable = [name for name in names if RECIPES[name]["float_part"] == "f32" or supports_bf16()]
    if not usable:
        raise DataError(f"int8 recipe {', '.join(names)}: needs a CPU with AVX512-BF16 or AMX")
    return usable


def choose_recipe(tried: dict[str, dict[str, Any]]) -> str:
    """The fastest recipe with its recheck (which leaves every selection label as fp32's); ties: fewer labels
    changed without it, then the lower logit error on the hardest texts."""
    return max(tried, key=lambda name: (tried[name]["texts_per_s"], -tried[name]["selection_flips"],
                                        -tried[name]["hardest_mean_logit_error"]))


def _quantize(nncf: Any, model: Any, dataset: Any, size: int, recipe: dict[str, Any]) -> Any:  # noqa: ANN401 - nncf/openvino objects
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    kwargs: dict[str, Any] = {"model_type": nncf.ModelType.TRANSFORMER, "subset_size": size}
    if recipe.get("ignored"):
        # validate=False: a pattern for another architecture matches nothing, which is fine
        kwargs["ignored_scope"] = nncf.IgnoredScope(patterns=recipe["ignored"], validate=False)
    if recipe.get("smooth_quant") is not None:
        kwargs["advanced_parameters"] = AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=recipe["smooth_quant"]))
    return nncf.quantize(model, dataset, **kwargs)


def weight_only_record() -> dict[str, Any]:
    return {"recipe": "weight-only INT8_SYM (no calibration data: activations stay float)", "calibrated": False}
