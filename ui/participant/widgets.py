"""Shared pieces of the participant screens: layout, panels, concept labels, and `Answering`,
the one way a screen hands an answer over (a button or form whose callback submits it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from study.labels import ConceptLabel

PANEL_PX = 230          # image and map panels: five fit side by side at 1366 px, all above the fold
STATE = "pt_"           # session-state prefix of the participant page

_CSS = """
<style>
header[data-testid="stHeader"], [data-testid="stToolbar"], [data-testid="stDecoration"],
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"] {display: none !important;}
[data-testid="stMainBlockContainer"], .block-container {padding-top: 1.2rem !important;
  padding-bottom: 1rem !important; max-width: 1320px;}
[data-testid="stImage"] img {border: 1px solid #d0d4dc; border-radius: 4px;}
.pt-def {font-size: 0.82rem; color: #555; line-height: 1.25; margin-top: -0.4rem;}
.pt-name {font-weight: 600; font-size: 1.0rem;}
</style>
"""


# Once a participant clicks an answer (a button inside a step's widgets, or consent), every answer
# button of that step is disabled at once, so a second click cannot even be sent; the next step's
# buttons are new elements. If the step stays (an incomplete form), they come back after 2.5 s.
_GUARD = """
<script>
if (!window.__ptGuard) {
  window.__ptGuard = true;
  document.addEventListener("click", (ev) => {
    const btn = ev.target.closest("button");
    const box = btn && btn.closest("[class*='st-key-pt_s'], [class*='st-key-pt_consent']");
    if (!box) return;
    const step = (box.className.match(/st-key-(pt_s\\d+_|pt_consent)/) || [])[1];
    if (!step) return;
    setTimeout(() => {
      const all = document.querySelectorAll(`[class*='st-key-${step}'] button`);
      all.forEach((b) => { b.disabled = true; });
      window.__ptDisabled = (window.__ptDisabled || 0) + all.length;
      setTimeout(() => all.forEach((b) => { if (b.isConnected) b.disabled = false; }), 2500);
    }, 0);
  }, true);
}
</script>
"""


def page_style() -> None:
    """Participant chrome: no header, toolbar or sidebar; content starts at the top; answer
    buttons disable themselves on the first click."""
    st.html(_CSS + _GUARD, unsafe_allow_javascript=True)


def panel(assets: dict[str, bytes], path: str | None, caption: str | None, width: int = PANEL_PX) -> None:
    """One image or map panel from the step's own bytes (never a URL), with a caption."""
    data = assets.get(path or "")
    if data is None:
        st.warning("This picture could not be loaded.")
        return
    st.image(data, width=width, caption=caption, output_format="PNG")   # the stored pixels, not a JPEG


def concept(label: ConceptLabel, show_name: bool = True) -> None:
    """A concept as people read it: its name in bold and the WordNet definition beneath (the name
    is left out where a button already carries it)."""
    name = f'<div class="pt-name">{_esc(label.name)}</div>' if show_name else ""
    definition = f'<div class="pt-def">{_esc(label.definition)}</div>' if label.definition else ""
    if name or definition:
        st.html(name + definition)


def concept_inline(label: ConceptLabel) -> str:
    """Markdown: **name** (definition)."""
    return f"**{_md(label.name)}**" + (f" ({_md(label.definition)})" if label.definition else "")


def _esc(text: str) -> str:
    import html

    return html.escape(text)


def _md(text: str) -> str:
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>$~" else c for c in text)


class Answering:
    """Widgets of one step whose callbacks submit the answer before the next script run draws.

    `send(answer)` is called once per click, before the page is redrawn, so the screen that follows
    is drawn from the database in the same run. Keys carry the step index, so a click that arrives
    after the step changed (a double click, a re-sent form) finds no widget and does nothing; the
    runtime's idempotent submit is the second guard.
    """

    def __init__(self, step_index: int, send: Callable[[dict[str, Any]], None]) -> None:
        self.step_index = step_index
        self._send = send

    def key(self, name: str) -> str:
        return f"{STATE}s{self.step_index}_{name}"

    def value(self, name: str) -> Any:
        return st.session_state.get(self.key(name))

    def button(self, label: str, answer: dict[str, Any], name: str, **kw: Any) -> None:
        """A button that submits `answer` when clicked."""
        st.button(label, key=self.key(name), on_click=self._send, args=(answer,), **kw)

    def submit(self, label: str, build: Callable[[], dict[str, Any] | str]) -> None:
        """A form's submit button; `build` reads the form's values and returns the answer, or a
        sentence saying what is still missing."""
        st.form_submit_button(label, type="primary", key=self.key("submit"), on_click=self._built, args=(build,))

    def _built(self, build: Callable[[], dict[str, Any] | str]) -> None:
        answer = build()
        if isinstance(answer, str):
            st.session_state[STATE + "notice"] = answer
            return
        self._send(answer)
