"""oTree settings of the anchor that `bench/bench_participants.py` measures (a minimal survey-style
project; the bench writes `trials.json` and the images under `_static/anchor_run/` before starting
`otree devserver`)."""

SESSION_CONFIGS = [
    dict(name="anchor", display_name="ConVis bench anchor", app_sequence=["anchor"], num_demo_participants=1),
]
SESSION_CONFIG_DEFAULTS = dict(real_world_currency_per_point=1.00, participation_fee=0.00, doc="")
PARTICIPANT_FIELDS: list[str] = []
SESSION_FIELDS: list[str] = []
LANGUAGE_CODE = "en"
REAL_WORLD_CURRENCY_CODE = "GBP"
USE_POINTS = True
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = None
DEMO_PAGE_INTRO_HTML = ""
SECRET_KEY = "convis-bench-anchor-not-secret"
