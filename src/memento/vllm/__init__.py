"""memento on vLLM (optional extra ``memento[vllm]``): block masking with KV memory returned to the pool.

Pieces, none replacing a vLLM file:

- `plugin.register` (entry point ``vllm.general_plugins``): when ``MEMENTO_BLOCK_MASKING_CONFIG``
  is set, overrides the CPU attention backend with `attention.MementoAttentionBackend` and lets
  its metadata builder see the batch's tokens (`runtime`).
- `scheduler.MementoScheduler` (``--scheduler-cls``): frees the KV blocks inside evicted spans.
- `state`: per-request trackers on the one attention rule (`memento.attention`).

The core package never imports this subpackage.
"""
