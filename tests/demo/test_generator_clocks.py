"""Synthetic times on a daylight-saving day are instants that existed (an Encounter that
started in the spring-forward gap ended before it began, and failed validation)."""

from __future__ import annotations

import datetime as dt
import random

from demo import generator


def test_spring_forward_wall_times_are_instants_that_existed() -> None:
    rng = random.Random(7)
    spring_forward = dt.date(2025, 3, 9)  # El Paso skips 02:00-03:00
    for _ in range(500):
        moment = generator._moment(spring_forward, "umcep", rng)
        assert moment == moment.astimezone(dt.UTC).astimezone(moment.tzinfo)
        assert moment.hour != 2
