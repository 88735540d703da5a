"""Which image a Bento's model needs: the torch-free one when `ENGINE=auto PRECISION=auto` serve OpenVINO.

The default image carries torch (559 MiB) for an engine it would never serve when the
accuracy guard recorded at import chose an OpenVINO pair, or when no guard was recorded
and the model has its OpenVINO export (auto serves fp32 on OpenVINO then). Run by the
image build (deployment/image/Dockerfile.template) on the Bento's models:

    python -m sentiment.store.image_variant /path/to/bento/models
    -> "openvino<TAB>why" or "full<TAB>why"

The choice ignores the CPU the image will run on: a bf16 pair the guard chose, on a node
without bf16, falls back to the next OpenVINO pair that passed (or fp32), which the
torch-free image serves as well.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..model.engines import ENGINES, PRECISIONS, openvino_files
from .guard import choose, pair_key

TOKENIZER = "tokenizer.json"


def stored_pairs(model_dir: Path) -> list[tuple[str, str]]:
    """The pairs a model's files allow (torch always; OpenVINO where its IR is stored), whatever the CPU."""
    return [(e, p) for e in ENGINES for p in PRECISIONS if e == "torch" or openvino_files(model_dir, p).is_file()]


def variant_for(model_dir: Path, metadata: dict[str, Any]) -> tuple[str, str]:
    """("openvino" | "full", why) for one stored model."""
    record = metadata.get("precision_guard")
    pair = choose(record, stored_pairs(model_dir))
    tag = f"{model_dir.parent.name}:{model_dir.name}"
    if pair[0] != "openvino":
        return "full", f"ENGINE=auto PRECISION=auto serve {pair_key(*pair)} for {tag}: torch is needed"
    if not (model_dir / TOKENIZER).is_file():
        return "full", f"{tag} has no {TOKENIZER}: tokenizing needs transformers"
    how = "the fastest pair that passed the accuracy guard" if record else "no guard recorded: unguarded fp32 on its export"
    return "openvino", f"ENGINE=auto PRECISION=auto serve {pair_key(*pair)} for {tag} ({how}): no torch needed"


def variant_of_bento(models: Path) -> tuple[str, str]:
    """The image for every model of a Bento's models folder: torch-free only if none needs torch."""
    import yaml

    choices = []
    for model_yaml in sorted(models.glob("*/*/model.yaml")):
        metadata = (yaml.safe_load(model_yaml.read_text()) or {}).get("metadata") or {}
        choices.append(variant_for(model_yaml.parent, metadata))
    if not choices:
        return "full", "the Bento holds no model"
    needs_torch = [why for variant, why in choices if variant == "full"]
    return ("full", "; ".join(needs_torch)) if needs_torch else ("openvino", "; ".join(why for _, why in choices))


def main(argv: list[str]) -> int:
    variant, why = variant_of_bento(Path(argv[0]))
    print(f"{variant}\t{why}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
