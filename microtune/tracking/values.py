"""Params and tags shaped for MLflow: flattened, stringified, truncated, batched."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping

PARAM_VALUE_LIMIT = 500        # conservative: older servers cap params at 500 chars (3.17 allows 6000)
TAG_VALUE_LIMIT = 5000         # MLflow caps tags at 8000
KEY_LIMIT = 250                # MLflow caps param/tag/metric keys at 250
TRUNCATION_MARKER = "…[truncated]"
PARAMS_PER_BATCH = 100         # MLflow's MAX_PARAMS_TAGS_PER_BATCH
METRICS_PER_BATCH = 1000       # MLflow's MAX_METRICS_PER_BATCH


def flatten(values: Mapping, prefix: str = "") -> dict[str, object]:
    """Nested mappings → one level, keys joined with ``.`` (``{"a": {"b": 1}}`` → ``{"a.b": 1}``)."""
    flat: dict[str, object] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), default=str)
    return str(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER


def clip_key(key: str) -> str:
    """Keys over MLflow's 250 characters: cut, with a short hash of the whole key appended."""
    if len(key) <= KEY_LIMIT:
        return key
    return key[: KEY_LIMIT - 9] + "~" + uuid.uuid5(uuid.NAMESPACE_OID, key).hex[:8]


def shape_params(params: Mapping | None) -> dict[str, str]:
    """Flatten, stringify and truncate params to MLflow's limits (marker: ``…[truncated]``)."""
    return {clip_key(k): _clip(_text(v), PARAM_VALUE_LIMIT) for k, v in flatten(params or {}).items()}


def shape_tags(tags: Mapping | None) -> dict[str, str]:
    """Stringify and truncate tag values (``None`` values are dropped)."""
    return {clip_key(str(k)): _clip(_text(v), TAG_VALUE_LIMIT) for k, v in (tags or {}).items() if v is not None}


def chunks(items: list, size: int) -> Iterable[list]:
    """Consecutive slices of at most ``size`` items (MLflow's per-request batch limits)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
