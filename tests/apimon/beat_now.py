"""A beat scheduler for tests: apimon's BEAT_SCHEDULE unchanged, except that the
heartbeat last ran an hour ago, so beat sends it on its first tick instead of a minute
after it starts (`celery beat -S tests.apimon.beat_now:HeartbeatDueNow`)."""

from datetime import timedelta

from celery.beat import PersistentScheduler


class HeartbeatDueNow(PersistentScheduler):
    def setup_schedule(self) -> None:
        super().setup_schedule()
        self.schedule["heartbeat"].last_run_at = self.app.now() - timedelta(hours=1)
