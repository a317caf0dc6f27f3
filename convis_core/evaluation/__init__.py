"""Evaluation harness: the paper's localisation (WSOL) and OOD-detection experiments on any data.

``python -m convis_core eval wsol DATA --concept bird.n.01 --methods convis_grid,gradcam`` and
``python -m convis_core eval ood DATA --in spider.n.01 --out butterfly.n.01`` (or ``--preset``).
Modules, one job each: ``datasets`` (readers, boxes into the frame), ``localisation`` (MaxBoxAcc,
MaxBoxAccV2), ``detection`` (AUROC, FPR95, AUPR), ``stats`` (intervals), ``presets`` (the paper's
pairs, OOD texts), ``tasks`` (per-image work, picklable), ``cache``, ``runner``, ``report``,
``plots``, ``runs`` (run folders, background runs), ``cli``. Nothing heavy is imported here.
"""
