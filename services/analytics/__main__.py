from pathlib import Path

from shared.service import Service

from .api import router
from .handlers import handlers
from .jobs import start_jobs

if __name__ == "__main__":
    # A read model: nobody waits on it event by event, so it takes its events in bigger runs
    # (a fetch gathers for up to a second; up to 2,000 records a transaction). Its timelines lag
    # the events by about a second, its reports by the fold job's period more (docs/analytics.md).
    Service("analytics", handlers, Path(__file__).parent, router, [start_jobs],
            fetch_wait_ms=1000, batch_size=2000).run()
