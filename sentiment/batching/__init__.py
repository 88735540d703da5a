"""Every lever of batch size, in one place.

    admission.py   how many texts may wait for the model (MAX_QUEUED_TEXTS); overload
    merging.py     the texts of concurrent requests leave as one model-service call (MAX_BATCH_SIZE items)
    regroup.py     when that call leaves: at once, or once the requests the last one answered are back (BATCH_REGROUP_WAIT)
    connection.py  that connection is never recycled under calls in flight
    inline.py      MODEL_PLACEMENT=inline: the call is a batch on the engine's thread in the public worker
    policy.py      when BentoML's adaptive batcher releases a batch (BATCH_WAIT_MS)
    groups.py      inside a batch: texts sorted by length, run in groups (GROUP_MAX_TEXTS / GROUP_MAX_TOKENS)

The batch is the call merger's: inline (the default) it goes to the engine's thread; with
MODEL_PLACEMENT=service to the model service's `@bentoml.api(batchable=True, max_batch_size=...)`
in `service.py`, where BentoML's batcher also merges the calls of several public workers.
"""
