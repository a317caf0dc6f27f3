"""The YAML editor of a draft: the text, and every validation problem shown next to its line."""

from __future__ import annotations

import html
import re

import streamlit as st

from study.db import Database
from study.drafts import Draft, save_draft
from study.errors import SpecError

_LINE = re.compile(r"^line (\d+)(?:, column \d+)?: ?")


def annotate(text: str, problems: list[str]) -> str:
    """HTML of the YAML with line numbers; a problem's message sits under the line it names."""
    by_line: dict[int, list[str]] = {}
    loose: list[str] = []
    for p in problems:
        m = _LINE.match(p)
        if m:
            by_line.setdefault(int(m.group(1)), []).append(p[m.end():])
        else:
            loose.append(p)
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        bad = n in by_line
        style = "background:#fdecea;" if bad else ""
        rows.append(f'<tr style="{style}"><td class="ln">{n}</td><td><code>{html.escape(line) or "&nbsp;"}</code></td></tr>')
        for msg in by_line.get(n, []):
            rows.append(f'<tr><td></td><td class="msg">⚠ {html.escape(msg)}</td></tr>')
    head = "".join(f'<div class="msg">⚠ {html.escape(p)}</div>' for p in loose)
    return (
        "<style>.yml td{padding:0 .5rem;vertical-align:top;font-size:.82rem}.yml .ln{color:#999;text-align:right}"
        ".yml .msg{color:#b3261e;font-weight:600}.yml code{white-space:pre;background:none}</style>"
        f'{head}<table class="yml">{"".join(rows)}</table>')


def spec_editor(db: Database, draft: Draft) -> None:
    """Edit and save a draft's YAML; problems are listed beside their lines until it validates."""
    key = f"studies_yaml_{draft.slug}"
    text = st.text_area("Study spec (YAML)", draft.yaml_text, height=420, key=key)
    if st.button("Validate and save", key=f"{key}_save", type="primary"):
        try:
            saved = save_draft(db, text, base_dir=draft.base_dir)
        except SpecError as exc:
            st.session_state[f"{key}_problems"] = exc.problems
        else:
            st.session_state.pop(f"{key}_problems", None)
            st.success(f"Saved: {saved.slug} is valid.")
    problems = st.session_state.get(f"{key}_problems")
    if problems:
        st.error(f"{len(problems)} problem(s); nothing was saved.")
        st.html(annotate(text, problems))
