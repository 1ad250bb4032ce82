"""The operator's clock as tests move it: real time, shifted by what the test says."""

from __future__ import annotations

import datetime

from vmray_operator.timestamps import utc_now


class ShiftedClock:
    """Real time plus an offset: it keeps running, and a test moves it forward or sets it to an instant."""

    def __init__(self) -> None:
        self.offset = datetime.timedelta()

    def __call__(self) -> datetime.datetime:
        return utc_now() + self.offset

    def step(self, by: datetime.timedelta) -> None:
        self.offset += by

    def set(self, instant: datetime.datetime) -> None:
        self.offset = instant - utc_now()
