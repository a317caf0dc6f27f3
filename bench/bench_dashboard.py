"""Researcher dashboard benchmark: the Monitor snapshot and refresh, and the Analysis page cold and
cached, on a study of N bots x T trials, on SQLite and (when it answers) PostgreSQL, in one run.

    .venv/bin/python bench/bench_dashboard.py [--participants 120] [--trials 40] [--repeat 20]
        [--no-postgres] [--json PATH]

For each database: a scratch database (a SQLite file in a temporary folder; a scratch PostgreSQL
database created on the server `study.config.pg_admin_url()` names and dropped at the end), the
synthetic example study `examples/studies/forward_simulation.yaml` launched with T main trials,
N bots through the participant runtime. Then, in this process with every module imported:
- Monitor: `study.monitor.snapshot` (`--repeat` calls: median and max); the live fragment's work,
  snapshot + `ui.research.monitor_view.draw` (Streamlit elements built, no browser), when nothing
  moved (chart specs reused) and as if everything had (every chart built anew); and the whole
  page's rerun through Streamlit's AppTest (picker, snapshot, every element, AppTest's overhead).
- Analysis: the page through AppTest with empty caches (cold: responses loaded, every analysis of
  the protocol computed, charts drawn; the mixed model is started in the background), the same
  page again once the background fit is done (cached), and the pieces timed alone: loading the
  frames, the cached `results` call cold, and the mixed-model fit (which the page does not wait for).
Targets: Monitor refresh <= 300 ms; Analysis page <= 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from study import analysis  # noqa: E402
from study.bots import BotOutcome, BotProfile, run_bots  # noqa: E402
from study.config import pg_admin_url  # noqa: E402
from study.db import connect, forget, scratch_postgres  # noqa: E402
from study.export import load_frames  # noqa: E402
from study.monitor import data_version, snapshot  # noqa: E402
from tests.app.studies import launch_example  # noqa: E402
from ui.research import data, monitor_view  # noqa: E402

PAGES = ROOT / "app_pages"
TARGET_MONITOR_MS = 300.0
TARGET_ANALYSIS_S = 3.0


def ms(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


@contextmanager
def sqlite_db() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        url = f"sqlite:///{tmp}/studies.sqlite"
        try:
            yield url
        finally:
            forget(url)


@contextmanager
def postgres_db() -> Iterator[str]:
    with scratch_postgres(pg_admin_url(), "convis_bench") as url:
        yield url


def postgres_answers() -> bool:
    try:
        import psycopg

        psycopg.connect(pg_admin_url(), connect_timeout=3).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means: no PostgreSQL for this run
        return False


def fill(url: str, folder: Path, participants: int, trials: int) -> tuple[str, int, float]:
    """Launch the example with `trials` main trials and run the bots; (slug, version id, seconds)."""
    db = connect(url)
    spec = launch_example(db, "forward_simulation", folder, trials=trials,
                          stimuli={"n_images": trials + 4})
    t = time.perf_counter()
    outs = run_bots(db, spec["id"], participants, BotProfile(accuracy={"convis": 0.8, "gradcam": 0.65,
                                                                       "none": 0.5}), workers=4, seed=11)
    bad = [o for o in outs if not isinstance(o, BotOutcome)]
    if bad:
        raise RuntimeError(f"{len(bad)} bots failed, e.g. {bad[0]!r}")
    from study.versions import get_version

    return spec["id"], get_version(db, spec["id"]).id, time.perf_counter() - t


def measure(url: str, participants: int, trials: int, repeat: int) -> dict[str, Any]:
    os.environ["DATABASE_URL"] = url
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-stimuli-") as tmp:
        slug, vid, bots_s = fill(url, Path(tmp), participants, trials)
        db = connect(url)
        out: dict[str, Any] = {"participants": participants, "trials": trials, "bots_s": round(bots_s, 1),
                               "responses": data_version(db, vid)[0]}
        snaps = [ms(lambda: snapshot(db, vid)) for _ in range(repeat)]
        out["monitor_snapshot_ms"] = {"median": statistics.median(snaps), "max": max(snaps)}
        same = [ms(lambda: monitor_view.draw(snapshot(db, vid))) for _ in range(repeat)]
        out["monitor_fragment_ms"] = {"median": statistics.median(same), "max": max(same)}

        def changed() -> None:
            monitor_view._spec.cache_clear()  # as if every number had moved: every chart rebuilt
            monitor_view.draw(snapshot(db, vid))

        moved = [ms(changed) for _ in range(repeat)]
        out["monitor_fragment_changed_ms"] = {"median": statistics.median(moved), "max": max(moved)}
        mon = AppTest.from_file(str(PAGES / "monitor.py"), default_timeout=120).run()
        assert not mon.exception, mon.exception
        reruns = [ms(mon.run) for _ in range(repeat)]
        out["monitor_page_rerun_ms"] = {"median": statistics.median(reruns), "max": max(reruns)}

        st.cache_data.clear()
        page = AppTest.from_file(str(PAGES / "analysis.py"), default_timeout=300)
        out["analysis_page_cold_s"] = ms(page.run) / 1000
        assert not page.exception, page.exception
        fp = data_version(db, vid)
        rules = tuple(load_frames(db, slug)["spec"].quality.exclude)
        res = data.results(url, slug, 1, fp, rules)
        fut = data.mixed_model(url, vid, fp, rules, res["trials"])
        fut.result()
        out["analysis_page_cached_s"] = statistics.median(ms(page.run) for _ in range(3)) / 1000
        assert "Fitting the model" not in "".join(str(e.value) for e in page.info)

        out["load_frames_s"] = ms(lambda: load_frames(db, slug)) / 1000
        st.cache_data.clear()
        out["results_cold_s"] = ms(lambda: data.results(url, slug, 1, fp, rules)) / 1000
        trials_df = analysis.main_trials(analysis.with_exclusions(load_frames(db, slug), rules))
        out["mixed_model_fit_s"] = ms(lambda: analysis.mixed_logit(trials_df)) / 1000
    return out


def first_imports() -> float:
    """Seconds a fresh process takes to import what the two pages need (once per server process)."""
    code = "import ui.research.analysis_view, ui.research.monitor_view, statsmodels.genmod.bayes_mixed_glm"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - t - startup()


def startup() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--participants", type=int, default=120)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    os.environ.setdefault("CONVIS_PID_KEY", secrets.token_hex(32))
    imports_s = first_imports()
    backends: dict[str, Callable[[], Any]] = {"sqlite": sqlite_db}
    if not args.no_postgres:
        if postgres_answers():
            backends["postgresql"] = postgres_db
        else:
            print("PostgreSQL does not answer at study.config.pg_admin_url(): SQLite only")
    results: dict[str, Any] = {"machine": platform.platform(), "cpus": os.cpu_count(),
                               "load_avg_start": os.getloadavg(), "imports_s": round(imports_s, 2)}
    for name, scratch in backends.items():
        with scratch() as url:
            results[name] = measure(url, args.participants, args.trials, args.repeat)
        r = results[name]
        print(f"\n{name}: {args.participants} participants x {args.trials} trials "
              f"({r['responses']} responses; bots took {r['bots_s']} s)")
        print(f"  Monitor snapshot        median {r['monitor_snapshot_ms']['median']:7.1f} ms   "
              f"max {r['monitor_snapshot_ms']['max']:7.1f} ms")
        for key, label in (("monitor_fragment_ms", "Monitor refresh        "),
                           ("monitor_fragment_changed_ms", "  ... every chart anew ")):
            print(f"  {label} median {r[key]['median']:7.1f} ms   max {r[key]['max']:7.1f} ms   "
                  f"(snapshot + drawing, the fragment's work; target <= {TARGET_MONITOR_MS:.0f} ms)")
        print(f"  Monitor page rerun      median {r['monitor_page_rerun_ms']['median']:7.1f} ms   "
              f"max {r['monitor_page_rerun_ms']['max']:7.1f} ms   (whole page through AppTest)")
        print(f"  Analysis page cold      {r['analysis_page_cold_s']:6.2f} s   "
              f"cached {r['analysis_page_cached_s']:6.2f} s   (target <= {TARGET_ANALYSIS_S:.0f} s)")
        print(f"  pieces: load_frames {r['load_frames_s']:.2f} s · results cold {r['results_cold_s']:.2f} s · "
              f"mixed model fit (background) {r['mixed_model_fit_s']:.2f} s")
    results["load_avg_end"] = os.getloadavg()
    print(f"\nfirst imports of a fresh server process (not in the page times) {imports_s:.1f} s · load average start "
          f"{results['load_avg_start'][0]:.1f}, end {results['load_avg_end'][0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
