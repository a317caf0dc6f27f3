"""Survey-style pages: one page per trial with the same pictures (the image and its maps), concept
names and definitions as a ConVis participant's trial, and one button per concept that submits the
page (the classic oTree form POST, redirect and full page load)."""

import json
from pathlib import Path

from otree.api import BaseConstants, BaseGroup, BasePlayer, BaseSubsession, Page, models

TRIALS_FILE = Path(__file__).resolve().parents[1] / "trials.json"
# {"rounds": R, "participants": [[{"images": [{"src", "caption"}], "candidates": [{"id", "name", "definition"}]}]]}
TRIALS = json.loads(TRIALS_FILE.read_text()) if TRIALS_FILE.is_file() else {"rounds": 1, "participants": [[]]}


class C(BaseConstants):
    NAME_IN_URL = "anchor"
    PLAYERS_PER_GROUP = None
    NUM_ROUNDS = max(1, int(TRIALS["rounds"]))


class Subsession(BaseSubsession):
    pass


class Group(BaseGroup):
    pass


class Player(BasePlayer):
    choice = models.StringField(blank=True)


def screen(player: Player) -> dict:
    screens = TRIALS["participants"][(player.participant.id_in_session - 1) % len(TRIALS["participants"])]
    return screens[(player.round_number - 1) % len(screens)] if screens else {"images": [], "candidates": []}


class Trial(Page):
    form_model = "player"
    form_fields = ["choice"]

    @staticmethod
    def vars_for_template(player: Player) -> dict:
        s = screen(player)
        cands = [dict(c, pick=f"pick_{i}") for i, c in enumerate(s["candidates"])]
        return dict(images=s["images"], candidates=cands, n_rounds=C.NUM_ROUNDS)


class Done(Page):
    @staticmethod
    def is_displayed(player: Player) -> bool:
        return player.round_number == C.NUM_ROUNDS


page_sequence = [Trial, Done]
