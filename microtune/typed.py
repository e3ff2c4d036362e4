"""One sentence per invalid value: the shared part of microtune's typed models' error messages.

The GAN training options (:mod:`microtune.gan.config`), the segmentation options
(:mod:`microtune.seg.options`) and the study spec (:mod:`microtune.sweep.spec`) are pydantic v2
models (strict types, unknown keys refused, one range rule per field). Pydantic reports a bad value
as a list of error dicts; :func:`problem` turns one of them into the rest of a sentence
("must be >= 1, got 0"), reading choices and ranges from the field's annotation. Each caller puts
the name in front: a CLI flag (``--epochs: must be >= 1, got 0.``) or a YAML path
(``s.yaml: search.seeds[1]: must be a whole number, got 'a'.``).

A rule a model checks in code (a grammar, two fields together) raises :func:`rule`, whose sentence
:func:`problem` passes through unchanged; ``at`` names a key below the failing location (a model's
own validator fails at the model, but the sentence should name its field).
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic_core import PydanticCustomError

from microtune.errors import MicrotuneError

Label = Callable[[str], str]   # option name -> what a message calls it (a CLI flag, a YAML path)
RULE = "rule"                   # the error type of :func:`rule`


def rule(problem: str, at: str = "") -> PydanticCustomError:
    """A rule's own sentence (without the name in front), for a validator to raise; ``at``: the key
    (or dotted path) below the validated location that the sentence is about."""
    ctx = {"problem": problem.rstrip(".")}
    if at:
        ctx["at"] = at
    return PydanticCustomError(RULE, "{problem}", ctx)


def unwrap(annotation: Any, metadata: Iterable[Any] = ()) -> tuple[Any, tuple]:
    """``Annotated[X, ...]`` and ``X | None`` → (X, the metadata found on the way)."""
    found = list(metadata)
    while True:
        if get_origin(annotation) is Annotated:
            found.extend(annotation.__metadata__)
            annotation = get_args(annotation)[0]
            continue
        if get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation, tuple(found)


def constraints(annotation: Any, metadata: Iterable[Any] = ()) -> list:
    """The annotated-types constraints (``Gt``, ``Ge``, ``Lt``, ``Le``, ...) of a field: its
    ``metadata`` and those inside its annotation (also inside ``X | None``). A pydantic FieldInfo
    may be passed as ``annotation``."""
    if hasattr(annotation, "metadata") and hasattr(annotation, "annotation"):  # a FieldInfo
        metadata, annotation = [*annotation.metadata, *metadata], annotation.annotation
    found: list = []
    for item in metadata:
        found.extend(getattr(item, "metadata", [item]))   # a Field(...) inside Annotated holds its own
    todo = [annotation]
    while todo:
        kind = todo.pop()
        if get_origin(kind) is Annotated:
            for item in kind.__metadata__:
                found.extend(getattr(item, "metadata", [item]))
            todo.append(get_args(kind)[0])
        elif get_origin(kind) in (Union, types.UnionType):
            todo.extend(get_args(kind))
    return found


def range_text(items: Iterable[Any]) -> str:
    """A range rule in words from its constraints: "in (0, 1]", ">= 1", "< 1"; "" when there is none."""
    low = high = None
    for item in items:
        for attr, bracket in (("gt", "("), ("ge", "[")):
            if getattr(item, attr, None) is not None:
                low = (bracket, getattr(item, attr))
        for attr, bracket in (("lt", ")"), ("le", "]")):
            if getattr(item, attr, None) is not None:
                high = (bracket, getattr(item, attr))
    if low and high:
        return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        return f"{'>' if low[0] == '(' else '>='} {low[1]}"
    if high:
        return f"{'<' if high[0] == ')' else '<='} {high[1]}"
    return ""


def choices(annotation: Any) -> tuple:
    """The values a ``Literal`` annotation (also ``Annotated``/``| None`` around one) accepts, else ()."""
    if hasattr(annotation, "metadata") and hasattr(annotation, "annotation"):  # a FieldInfo
        annotation = annotation.annotation
    kind, _ = unwrap(annotation)
    return get_args(kind) if get_origin(kind) is Literal else ()


def flag_type(kind: type, check: Callable[[Any], None], *, optional: bool = False) -> Callable[[str], Any]:
    """An argparse ``type=`` for one option's flag: the text as ``kind`` (``none`` as None where the
    option is ``optional``), then ``check`` (the model's rule for the option, raising an error with a
    ``problem`` sentence), so a bad value is argparse's usage error naming the flag (exit status 2)."""
    import argparse

    def convert(text: str):
        if optional and text.strip().lower() == "none":
            value = None
        else:
            try:
                value = kind(text)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"must be {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
        try:
            check(value)
        except MicrotuneError as exc:
            raise argparse.ArgumentTypeError(getattr(exc, "problem", str(exc))) from None
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its own messages
    return convert


def yaml_reads_as_text(text: str) -> bool:
    """True for numbers PyYAML (YAML 1.1) loads as strings: an exponent without a dot, e.g. ``1e-4``."""
    return re.fullmatch(r"[-+]?[0-9]+[eE][-+]?[0-9]+", text) is not None


def plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """numpy scalars (e.g. from a sampler) as the Python values they hold; strings stay strings."""
    return {k: v.item() if type(v).__module__ == "numpy" and hasattr(v, "item") else v for k, v in values.items()}


def problem(error: Mapping[str, Any], annotation: Any = None, metadata: Iterable[Any] = (), *,
            unknown: str = "is not an option") -> str:
    """The rest of the sentence (after "NAME: ", without the final period) for one pydantic error
    dict (``ValidationError.errors()[i]``); ``annotation``/``metadata``: the field's (or a FieldInfo),
    for the choices of a Literal and the range rule; ``unknown``: what an unknown key is told."""
    kind, value = error["type"], error.get("input")
    ctx = error.get("ctx") or {}
    if "problem" in ctx:                                          # rule() and the models' own rules
        return str(ctx["problem"])
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return unknown
    if kind in ("missing", "missing_argument", "missing_keyword_only_argument", "missing_positional_only_argument"):
        return "is required"
    if kind == "finite_number":
        return f"must be a finite number, got {value!r}"
    if kind.startswith("float"):
        hint = ""
        if isinstance(value, str) and yaml_reads_as_text(value):    # PyYAML reads 1e-4 (no dot) as text
            hint = f" (YAML reads {value} as text; write it with a dot, e.g. {float(value)!r})"
        return f"must be a number, got {value!r}{hint}"
    if kind.startswith("int"):
        return f"must be a whole number, got {value!r}"
    if kind.startswith("bool"):
        return f"must be true or false, got {value!r}"
    if kind == "string_too_short" or (kind == "too_short" and ctx.get("min_length") == 1):
        return "must not be empty"
    if kind.startswith("string"):
        return f"must be a string, got {value!r}"
    if kind == "literal_error":
        allowed = choices(annotation)
        if allowed:
            return f"must be one of {', '.join(map(str, allowed))}, got {value!r}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        text = range_text(constraints(annotation, metadata))
        if text:
            return f"must be {text}, got {value!r}"
    if kind in ("list_type", "tuple_type", "set_type"):
        return f"must be a list, got {type(value).__name__}"
    if kind in ("dict_type", "model_type", "dataclass_type", "model_attributes_type", "dataclass_args_type"):
        return f"must be a mapping, got {type(value).__name__}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} items, got {ctx.get('actual_length')}"
    return f"{str(error.get('msg', 'is invalid')).rstrip('.')}, got {value!r}"
