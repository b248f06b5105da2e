"""Record operators' logic: `llm_map`, `llm_filter`, `llm_classify`, `llm_count` over records.

    record_ops.py   batches of records into sub-calls, answers per record, labels (pure logic)
    approximate.py  when an operator may answer by a cascade, and to which targets

The model-facing functions are `subcall_kinds/records.py` and `subcall_kinds/cascades.py`, the
statistics `cascade/`, and the same operators from plain Python `rlm_ray.ops`. No heavy
dependency. Empty on purpose: import the module you need.
"""
