"""Take part: the only page a participant sees (opened by `?study=SLUG` or a resume link `?r=`)."""

from ui.participant.flow import run

run()
