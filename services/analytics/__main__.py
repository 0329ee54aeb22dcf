from pathlib import Path

from shared.service import Service

from .api import router
from .handlers import handlers
from .jobs import start_jobs

if __name__ == "__main__":
    # A read model: nobody waits on it event by event, so it takes its events in bigger runs
    # (a fetch gathers for up to 250 ms; up to 500 records a transaction).
    Service("analytics", handlers, Path(__file__).parent, router, [start_jobs],
            fetch_wait_ms=250, batch_size=500).run()
