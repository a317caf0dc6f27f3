"""`python -m study`: validate, draft, precompute, build-stimuli, launch, bots, status, export,
forget-pids, withdraw, first-start, demo, analyse, power."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from study.errors import StudyError


def _kv(items: list[str]) -> dict[str, float]:
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        out[k] = float(v)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m study", description=__doc__)
    ap.add_argument("--db", help="database URL (default: $DATABASE_URL or the SQLite file under .data/)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("validate", help="validate a spec YAML").add_argument("spec")
    b = sub.add_parser("build-stimuli", help="build the spec's stimulus folder")
    b.add_argument("spec")
    b.add_argument("--force", action="store_true", help="rebuild even if the folder has a manifest")
    b.add_argument("--model", help="engine model (overrides stimuli.model; default $CONVIS_MODEL or shapes-world)")
    b.add_argument("--pretrained", help="engine weights: tag, checkpoint path, 'bundled' or 'none' (random)")
    d = sub.add_parser("draft", help="study drafts: save a spec YAML as a draft, list, show or delete drafts")
    d.add_argument("action", choices=["save", "list", "show", "delete"])
    d.add_argument("target", nargs="?", help="save: a spec YAML file; show/delete: a study id")
    d.add_argument("--base-dir", help="save: folder relative image paths resolve against (default "
                   "<data>/drafts/<id>/; '.' for the YAML file's folder)")
    pc = sub.add_parser("precompute", help="build a study's stimuli (its draft, else its active version) as a "
                        "resumable job whose progress lives in the database")
    pc.add_argument("study", help="study id (slug)")
    mode = pc.add_mutually_exclusive_group()
    mode.add_argument("--background", action="store_true", help="start a detached worker and return at once")
    mode.add_argument("--status", action="store_true", help="print the latest job of the study")
    mode.add_argument("--cancel", action="store_true", help="ask the running job to stop")
    mode.add_argument("--estimate", action="store_true", help="estimate the time of a full build")
    pc.add_argument("--job", type=int, help=argparse.SUPPRESS)  # the job row `study.jobs.start` queued
    pc.add_argument("--throttle", type=float, default=0.0, help="seconds to pause after each map (leave CPU to others)")
    pc.add_argument("--ray", metavar="auto|ADDRESS|local",
                    help="compute the images on a Ray cluster: 'auto' (the one on this machine, else a new local "
                         "one) or its address; default $CONVIS_RAY, else $RAY_ADDRESS, else this process. The "
                         "stimulus folder must be on a filesystem every Ray worker sees (deploy/README.md)")
    sub.add_parser("launch", help="freeze and activate a spec (builds missing stimuli)").add_argument("spec")
    r = sub.add_parser("bots", help="run N simulated participants through the runtime API")
    r.add_argument("study", help="study slug (or a spec YAML, launched first)")
    r.add_argument("-n", type=int, default=20)
    r.add_argument("--workers", type=int, default=8)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--accuracy", nargs="*", default=[], help="method=p, e.g. convis=0.8 grid=0.6")
    r.add_argument("--dropout", type=float, default=0.0)
    r.add_argument("--double-submit", type=float, default=0.0)
    r.add_argument("--reload", type=float, default=0.0)
    r.add_argument("--delay-ms", type=float, default=0.0, help="real sleep per step")
    r.add_argument("--anonymous", action="store_true")
    r.add_argument("--pid-prefix", help="Prolific ids derive from <prefix> and i; default BOT<seed> (same prefix, same people)")
    r.add_argument("--quiet", action="store_true", help="no STARTED line per bot")
    e = sub.add_parser("export", help="tidy export (CSV, Parquet, codebook, config, Prolific files)")
    e.add_argument("study")
    e.add_argument("--out", required=True)
    e.add_argument("--version", type=int)
    st = sub.add_parser("status", help="set a study live, paused or closed (paused/closed: no new participants)")
    st.add_argument("study")
    st.add_argument("status", choices=["live", "paused", "closed"])
    f = sub.add_parser("forget-pids", help="delete the raw Prolific ids still stored (after approvals and bonuses)")
    f.add_argument("study")
    sub.add_parser("first-start", help="(./run) print a new researcher password once; start the demo build on an "
                   "empty database")
    d = sub.add_parser("demo", help="build the first-start demo (Shapes world, launched, simulated participants)")
    d.add_argument("--remove", action="store_true", help="delete the demo's data and don't build it again")
    d.add_argument("--bots", type=int, default=45)
    w = sub.add_parser("withdraw", help="withdraw a participant who asked by message: delete their answers")
    w.add_argument("study")
    w.add_argument("--pid", required=True, help="their Prolific id")
    a = sub.add_parser("analyse", help="print the main analyses as JSON")
    a.add_argument("study")
    a.add_argument("--version", type=int)
    a.add_argument("--no-mixed", action="store_true", help="skip the mixed-effects model")
    p = sub.add_parser("power", help="simulation-based power")
    p.add_argument("--accuracy", nargs="+", required=True)
    p.add_argument("--n", type=int, required=True, help="participants per condition")
    p.add_argument("--trials", type=int, required=True)
    p.add_argument("--design", choices=["between", "within"], default="between")
    p.add_argument("--sims", type=int, default=200)
    args = ap.parse_args(argv)
    try:
        print(json.dumps(_run(args), indent=1, default=str))
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _run(args: argparse.Namespace) -> Any:
    if args.cmd == "validate":
        from study.spec import load_spec

        spec = load_spec(args.spec)
        return {"ok": True, "id": spec.id, "conditions": __import__("study.design").design.conditions(spec)}
    if args.cmd == "power":
        from study import analysis

        return analysis.power(_kv(args.accuracy), args.n, args.trials, args.design, n_sims=args.sims)
    from study.db import connect

    db = connect(args.db)
    if args.cmd == "build-stimuli":
        from study.spec import load_spec
        from study.versions import build_stimuli

        spec = load_spec(args.spec)
        if args.model or args.pretrained:
            spec = spec.model_copy(update={"stimuli": spec.stimuli.model_copy(
                update={k: v for k, v in (("model", args.model), ("pretrained", args.pretrained)) if v})})

        def progress(i: int, n: int, image: str) -> None:
            print(f"[{i}/{n}] {image}", file=sys.stderr, flush=True)

        m = build_stimuli(spec, force=args.force, progress=progress)
        return {"folder": str(spec.stimuli_dir()), "images": len(m.images), "stimuli": len(m.stimuli),
                "methods": m.methods, "model": m.model.model_dump(mode="json"), "synthetic": m.synthetic,
                "manifest_sha256": m.sha256(), "random_weights": m.random_weights}
    if args.cmd == "draft":
        return _draft(db, args)
    if args.cmd == "precompute":
        return _precompute(db, args)
    if args.cmd == "launch":
        from study.versions import launch

        return launch(db, args.spec).__dict__
    if args.cmd == "status":
        from study.versions import set_status

        return {"study": args.study, "status": set_status(db, args.study, args.status)}
    if args.cmd == "forget-pids":
        from study.export import forget_prolific_ids

        return {"study": args.study, "cleared": forget_prolific_ids(db, args.study)}
    if args.cmd == "first-start":
        from study import access, demo

        password = access.ensure_password()
        if password:
            print(access.announcement(password), file=sys.stderr, flush=True)
        try:
            started = demo.ensure_demo(db)
        except Exception as exc:  # a dead database must not stop the app from starting
            print(f"demo study not started: {exc}", file=sys.stderr)
            started = False
        return {"password_generated": bool(password), "demo_started": started}
    if args.cmd == "demo":
        from study import demo

        if args.remove:
            demo.remove_demo(db)
            return {"removed": demo.SLUG}
        return demo.build_demo(db, bots=args.bots)
    if args.cmd == "withdraw":
        from study.runtime import Runtime

        return {"study": args.study, "withdrawn": Runtime(db).withdraw_by_pid(args.study, args.pid)}
    if args.cmd == "bots":
        from study.bots import BotOutcome, BotProfile, run_bots

        slug = args.study
        if slug.endswith((".yaml", ".yml")):
            from study.versions import launch

            slug = launch(db, slug).slug
        prof = BotProfile(accuracy=_kv(args.accuracy), dropout=args.dropout, double_submit=args.double_submit,
                          reload=args.reload, real_delay_ms=args.delay_ms)
        outs = run_bots(db, slug, args.n, prof, workers=args.workers, seed=args.seed, prolific=not args.anonymous,
                        pid_prefix=args.pid_prefix,
                        on_start=None if args.quiet else lambda o: print(f"STARTED {o.participant_id} {o.token}",
                                                                          flush=True))
        statuses: dict[str, int] = {}
        for o in outs:
            key = o.status if isinstance(o, BotOutcome) else type(o).__name__
            statuses[key] = statuses.get(key, 0) + 1
        done = [o for o in outs if isinstance(o, BotOutcome)]
        return {"bots": len(outs), "statuses": statuses, "submitted": sum(o.submitted for o in done),
                "duplicates": sum(o.duplicates for o in done), "participants": sorted({o.participant_id for o in done}),
                "conditions": {o.participant_id: o.condition for o in done}}
    from study import analysis, protocols
    from study.export import export_study, load_frames

    if args.cmd == "export":
        return {k: str(v) for k, v in export_study(db, args.study, args.out, args.version).items()}
    frames = load_frames(db, args.study, args.version)
    trials = analysis.main_trials(frames)
    out: dict[str, Any] = {"consort": analysis.consort(frames), "sha256": frames["sha256"]}
    if trials.correct.notna().any():
        out["accuracy"] = analysis.accuracy_table(trials).to_dict("records")
        out["pairwise"] = analysis.pairwise_methods(trials).to_dict("records")
        if not args.no_mixed and trials.method.nunique() > 1:
            out["mixed_logit"] = analysis.mixed_logit(trials).to_dict("records")
    elif protocols.get(frames["spec"].protocol.name).analysis == "bradley_terry":
        bt = analysis.bradley_terry(trials)
        out["bradley_terry"] = {"scores": bt["scores"].to_dict("records"), "lr_test": bt["lr_test"]}
    else:
        out["likert"] = analysis.likert_summary(trials)["tests"].to_dict("records")
    if len(trials):
        out["rt"] = analysis.rt_summary(trials).to_dict("records")
    return out


def _draft(db: Any, args: argparse.Namespace) -> Any:
    from pathlib import Path

    from study import drafts

    if args.action == "list":
        return [{"slug": d.slug, "title": d.title, "updated_at": d.updated_at, "base_dir": d.base_dir}
                for d in drafts.list_drafts(db)]
    if not args.target:
        raise StudyError(f"draft {args.action} needs a {'spec file' if args.action == 'save' else 'study id'}")
    if args.action == "save":
        path = Path(args.target)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise StudyError(f"cannot read {path}: {exc}") from None
        base = str(path.resolve().parent) if args.base_dir == "." else args.base_dir
        d = drafts.save_draft(db, text, base_dir=base)
        return {"slug": d.slug, "title": d.title, "base_dir": d.base_dir,
                "stimuli_dir": str(d.spec().stimuli_dir())}
    if args.action == "show":
        d = drafts.get_draft(db, args.target)
        if d is None:
            raise StudyError(f"no draft {args.target!r}")
        return {"slug": d.slug, "title": d.title, "base_dir": d.base_dir, "updated_at": d.updated_at,
                "yaml": d.yaml_text}
    drafts.delete_draft(db, args.target)
    return {"deleted": args.target}


def _precompute(db: Any, args: argparse.Namespace) -> Any:
    from study import jobs

    if args.estimate:
        t = jobs.target(db, args.study)
        return jobs.estimate(t.spec, db).__dict__
    if args.status:
        info = jobs.status(db, args.study)
    elif args.cancel:
        info = jobs.cancel(db, args.study)
    elif args.background:
        info = jobs.start(db, args.study, throttle=args.throttle, ray=args.ray)
    else:
        info = jobs.run_worker(db, args.study, args.job, throttle=args.throttle, echo=args.job is None,
                               ray=args.ray)
        if info.state == "failed":
            raise StudyError(f"precompute of {args.study!r} failed: {info.error}")
    if info is None:
        return {"study": args.study, "job": None}
    out = {k: v for k, v in info.__dict__.items() if k != "timings"}
    out["fraction"] = info.fraction
    return out
