"""The checks on what model code passes to a sub-call kind: every argument leaves the cell
through `boundary.plain` (exact builtin data only), and a wrong one is a `TypeError` or
`ValueError` the model reads in its cell."""

from __future__ import annotations

from typing import Any

from rlm_ray import corpus
from rlm_ray.core.futures import resolve
from rlm_ray.sandbox.boundary import plain
from rlm_ray.subcall_kinds.declare import Host


def chosen_model(host: Host, model: Any) -> str | None:
    """A sub-call's `model=`: None (the sub-model) or one of the models the user configured
    for the run. Any other name is refused here, in the cell: litellm would send that
    provider's key from the environment to the run's `api_base`."""
    name = model_arg(model)
    allowed = host.settings.allowed_models or (host.subcalls.default_model,)
    if name is not None and name not in allowed:
        raise ValueError(
            f"`model`: {name!r} is not one of this run's models; allowed: "
            f"{', '.join(map(repr, allowed))} (or leave `model` out for the sub-model)"
        )
    return name


def window(host: Host, model: str | None) -> int:
    """The context window of `model` (None: the sub-model), in tokens."""
    tokens = host.settings.sub_context_window_tokens
    return tokens if model is None else host.settings.model_windows.get(model, tokens)


def text_arg(fn: str, name: str, value: Any) -> str:
    value = plain(value, f"{fn}: `{name}`", views=False)
    if type(value) is not str:
        raise TypeError(f"{fn}: `{name}` must be a str, got {type(value).__name__}")
    return value


def task_arg(fn: str, name: str, value: Any) -> str:
    text = text_arg(fn, name, value)
    if not text.strip():
        raise ValueError(f"{fn}: `{name}` must be a non-empty str")
    return text


def model_arg(model: Any) -> str | None:
    if model is None:
        return None
    model = plain(model, "`model`", views=False)
    if type(model) is not str or not model.strip():
        raise TypeError(f"`model` must be a model name (str), got {model!r}")
    return model


def list_arg(fn: str, name: str, value: Any) -> list:
    value = resolve(value)
    if type(value) in (str, bytes) or type(value) is corpus.Corpus:
        raise TypeError(f"{fn}: `{name}` must be a list, got {type(value).__name__}")
    if type(value) not in (list, tuple):  # an iterator, a generator: read here, in the cell
        try:
            value = list(value)
        except TypeError:
            raise TypeError(f"{fn}: `{name}` must be a list, got {type(value).__name__}") from None
    return list(plain(value, f"{fn}: `{name}`"))


def labels_arg(labels: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`llm_classify`'s labels: a list of str, or a dict of label -> what it means. Returns the
    labels and their descriptions ("" where none was given)."""
    labels = resolve(labels)
    descriptions: list[str] = []
    if type(labels) is dict:
        labels = plain(labels, "llm_classify: `labels`", views=False)
        descriptions = [str(text) for text in labels.values()]
        labels = list(labels)
    elif isinstance(labels, (str, bytes, dict)) or not hasattr(labels, "__iter__"):
        raise TypeError(
            "llm_classify: `labels` must be a list of str (or a dict of label -> meaning), got "
            f"{type(labels).__name__}"
        )
    labels = plain(list(labels), "llm_classify: `labels`", views=False)
    if not labels:
        raise ValueError("llm_classify: `labels` must be a non-empty list of str, got []")
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise TypeError(f"llm_classify: every label must be a non-empty str, got {label!r}")
    if len({label.strip().casefold() for label in labels}) != len(labels):
        raise ValueError(f"llm_classify: `labels` must be distinct, got {labels!r}")
    descriptions = descriptions or [""] * len(labels)
    return tuple(label.strip() for label in labels), tuple(d.strip() for d in descriptions)
