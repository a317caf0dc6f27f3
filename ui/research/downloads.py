"""Downloads of the Analysis page: the tidy export as one zip, and Prolific's two files.

Files are made when the researcher asks for them ("Prepare the downloads"), from
`study.export.export_study` written to a temporary folder, cached per data version, and offered
as bytes. (Deferred downloads were lost when the page reran between drawing and the click, e.g.
when the mixed model's background fit ended: "Deferred file ... not found".)"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import streamlit as st

from study.db import connect
from study.export import export_study

PROLIFIC = ("prolific_approvals.csv", "prolific_bonus.csv")


def research_zip(url: str, slug: str, version: int) -> bytes:
    """responses/participants/events as CSV and Parquet, codebook.csv, config.json and
    config.sha256, zipped (no Prolific id: those live only in Prolific's files)."""
    with tempfile.TemporaryDirectory(prefix="convis-export-") as tmp:
        paths = export_study(connect(url), slug, tmp, version)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(set(paths.values())):
                if path.name not in PROLIFIC:
                    zf.write(path, arcname=path.name)
        return buf.getvalue()


def prolific_file(url: str, slug: str, version: int, name: str) -> bytes:
    """One of Prolific's files (`prolific_approvals.csv` or `prolific_bonus.csv`) as bytes."""
    if name not in PROLIFIC:
        raise ValueError(f"not a Prolific file: {name}")
    with tempfile.TemporaryDirectory(prefix="convis-export-") as tmp:
        export_study(connect(url), slug, tmp, version)
        return (Path(tmp) / name).read_bytes()


@st.cache_data(show_spinner=False, max_entries=8)
def _files(url: str, slug: str, version: int, fingerprint: tuple) -> tuple[bytes, bytes, bytes]:
    return (research_zip(url, slug, version), prolific_file(url, slug, version, PROLIFIC[0]),
            prolific_file(url, slug, version, PROLIFIC[1]))


def buttons(url: str, slug: str, version: int, fingerprint: tuple = ()) -> None:
    """The three downloads, made on request and cached for this data version."""
    stem, key = f"{slug}-v{version}", f"analysis_dl_ready_{slug}_{version}"
    if not st.session_state.get(key):
        if st.button("Prepare the downloads", key=f"{key}_go", icon=":material/folder_zip:"):
            st.session_state[key] = True
        else:
            st.caption("Builds the export zip and Prolific's files from the data as they are now.")
            return
    with st.spinner("Writing the export…"):
        zipped, approvals, bonus = _files(url, slug, version, fingerprint)
    cols = st.columns(3)
    cols[0].download_button("Tidy export (.zip)", zipped, file_name=f"{stem}-export.zip", mime="application/zip",
                            on_click="ignore", key="analysis_dl_zip", icon=":material/folder_zip:")
    cols[1].download_button("Prolific approvals (.csv)", approvals, file_name=f"{stem}-{PROLIFIC[0]}",
                            mime="text/csv", on_click="ignore", key="analysis_dl_approvals", icon=":material/task_alt:")
    cols[2].download_button("Prolific bonuses (.csv)", bonus, file_name=f"{stem}-{PROLIFIC[1]}", mime="text/csv",
                            on_click="ignore", key="analysis_dl_bonus", icon=":material/payments:")
    st.caption("The zip holds responses, participants and events (CSV and Parquet), the codebook, the frozen "
               "config and its sha256; participants appear by opaque id only. Prolific's files carry Prolific "
               "ids (completed participants) and are made for Prolific's bulk approval and bonus forms.")
