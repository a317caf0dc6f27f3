"""Form fields generated from a pydantic `Params` model: only the parameters a method has, with
their bounds and defaults, so a page never sends a method something it does not take."""

from __future__ import annotations

import typing
from typing import Any

import streamlit as st
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel


def _bounds(info: Any) -> tuple[float | None, float | None]:
    lo = hi = None
    for m in info.metadata:
        if isinstance(m, Ge | Gt):
            lo = m.ge if isinstance(m, Ge) else m.gt
        elif isinstance(m, Le | Lt):
            hi = m.le if isinstance(m, Le) else m.lt
    return lo, hi


def params_form(model: type[BaseModel], key: str, container: Any = st) -> dict[str, Any]:
    """Draw one widget per field of `model` (inside `container`) and return the values that
    differ from the defaults."""
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        ann, default = info.annotation, info.default
        label, help_ = name.replace("_", " "), info.description
        wkey = f"{key}_{name}"
        args = typing.get_args(ann)
        # a value already in the session (set by a test, a link, or an earlier run) wins; passing
        # the default as well would make Streamlit warn about two sources of one value
        preset = wkey in st.session_state
        if typing.get_origin(ann) is typing.Literal:
            index = {} if preset else {"index": list(args).index(default) if default in args else 0}
            value = container.selectbox(label, list(args), key=wkey, help=help_, **index)
        elif ann is bool:
            value = container.checkbox(label, key=wkey, help=help_, **({} if preset else {"value": bool(default)}))
        elif ann in (int, float):
            lo, hi = _bounds(info)
            cast = int if ann is int else float
            start = {} if preset else {"value": cast(default) if default is not None else cast(lo or 0)}
            value = container.number_input(label, min_value=cast(lo) if lo is not None else None,
                                           max_value=cast(hi) if hi is not None else None,
                                           step=1 if ann is int else None, key=wkey, help=help_, **start)
        elif ann is str:
            value = container.text_input(label, key=wkey, help=help_, **({} if preset else {"value": default or ""}))
        else:   # optional or compound types: leave the method's default
            continue
        if value != default:
            values[name] = value
    return values
