"""The steps around the trials: consent, instructions, comprehension quiz, attention checks,
questionnaire. Each draws its step and hands the answer to `Answering`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from ui.participant.widgets import Answering


def consent(content: dict[str, Any], decide: Callable[[bool], None]) -> None:
    st.subheader(content.get("title") or "Consent")
    with st.container(border=True):
        st.markdown(content["text"])
    st.markdown("Do you agree to take part?")
    yes, no, _ = st.columns([1, 1, 3])
    yes.button("I agree", key="pt_consent_yes", type="primary", on_click=decide, args=(True,),
               use_container_width=True)
    no.button("I do not agree", key="pt_consent_no", on_click=decide, args=(False,), use_container_width=True)


def instructions(content: dict[str, Any], ans: Answering) -> None:
    st.subheader("Instructions")
    with st.container(border=True):
        st.markdown(content["text"])
    ans.button("I have read the instructions: continue", {"ok": True}, "ok", type="primary")


def _single_choice(title: str, text: str, options: list[str], ans: Answering) -> None:
    st.subheader(title)
    with st.form(ans.key("form"), border=False):
        st.radio(text, options, index=None, key=ans.key("choice"))

        def build() -> dict[str, Any] | str:
            choice = ans.value("choice")
            return "Please pick one answer." if choice is None else {"choice": choice}

        ans.submit("Submit", build)


def quiz(content: dict[str, Any], ans: Answering) -> None:
    _single_choice("A quick check that the task is clear", content["question"], content["options"], ans)


def attention(content: dict[str, Any], ans: Answering) -> None:
    _single_choice("Check", content["prompt"], content["options"], ans)


def questionnaire(content: dict[str, Any], ans: Answering) -> None:
    st.subheader("A few last questions")
    items = content["items"]
    with st.form(ans.key("form"), border=False):
        for q in items:
            label = q["text"] + ("" if q["required"] else " (optional)")
            key = ans.key(f"q_{q['id']}")
            if q["type"] == "likert":
                st.radio(f"{label} (1 = strongly disagree, {q['scale']} = strongly agree)",
                         list(range(1, q["scale"] + 1)), index=None, key=key, horizontal=True)
            elif q["type"] == "choice":
                st.radio(label, q["options"], index=None, key=key)
            else:
                st.text_area(label, key=key, max_chars=q["max_length"], height=90)

        def build() -> dict[str, Any] | str:
            answers: dict[str, Any] = {}
            for q in items:
                value = ans.value(f"q_{q['id']}")
                if isinstance(value, str):
                    value = value.strip() or None
                if value is None and q["required"]:
                    return "Please answer every question not marked optional."
                answers[q["id"]] = value
            return {"answers": answers}

        ans.submit("Submit", build)
