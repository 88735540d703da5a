#!/usr/bin/env bash
# Bring up the service on a fresh machine: environment, model (imported once), `bentoml serve`.
#   MODEL_SOURCE=<hub id or local dir>  what to import when the store has no model yet
#                                       (default: distilbert-base-uncased-finetuned-sst-2-english)
#   MODEL_EVAL=<labelled TSV/CSV>       held-out data for the accuracy guard at import: the
#                                       service then serves the fastest engine/precision that
#                                       passed it (without it: fp32 on the graph runtime)
#   HOST / PORT                         where to listen (default 127.0.0.1:3000)
#   API_KEYS_FILE=<file>               one API key per line: every API route then needs
#                                       Authorization: Bearer <key> (warned about when HOST is not loopback)
# Any other setting (REDIS_URL, ENGINE, PRECISION, MAX_TEXTS, ...) is read from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
export BENTOML_DO_NOT_TRACK=${BENTOML_DO_NOT_TRACK:-true}
MODEL_TAG=${MODEL_TAG:-distilbert-sst2:latest}

if ! .venv/bin/bentoml models get "$MODEL_TAG" >/dev/null 2>&1; then
    echo "serve: $MODEL_TAG is not in the model store yet: importing it" >&2
    .venv/bin/python train_or_import.py import \
        --source "${MODEL_SOURCE:-distilbert-base-uncased-finetuned-sst-2-english}" \
        --name "${MODEL_TAG%%:*}" ${MODEL_EVAL:+--eval "$MODEL_EVAL"}
fi

case "${HOST:-127.0.0.1}" in
    127.*|localhost|::1) ;;
    *) [ -n "${API_KEYS_FILE:-}" ] || echo "serve: WARNING: listening on ${HOST} without API_KEYS_FILE: anyone who reaches it can use the API" >&2 ;;
esac

# --timeout-keep-alive: an idle connection outlives its client's pool (docs/deployment.md, "Keep-alive")
exec .venv/bin/bentoml serve service:Sentiment --host "${HOST:-127.0.0.1}" --port "${PORT:-3000}" --timeout-keep-alive 75
