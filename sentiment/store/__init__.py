"""The model store: what is stored with a model version, and reading it back.

    model_store.py  import into BentoML's store: weights, tokenizer, exports, metadata, fingerprint
    guard.py        the accuracy guard over engine x precision, and the pair ENGINE/PRECISION=auto serves
    int8.py         int8 of activations too: calibrated, and its recipe chosen, on texts the guard never sees
    data.py         labelled text files (TSV/CSV, the GLUE SST-2 format)
    image_variant.py  which image the stored model needs (torch-free when the guard chose OpenVINO)
    score_file.py   `train_or_import.py score`: a file of texts scored, streamed and resumable

Written offline by `train_or_import.py`; the services only read it.
"""
