from pathlib import Path

from shared.service import Service

from . import tasks
from .api import router
from .handlers import handlers

if __name__ == "__main__":
    # Nothing on an order's way to the door waits for after-sales: the broker gathers its records
    # for up to 250 ms (Service.fetch_wait_ms), a run per fetch instead of one per event.
    Service("aftersales", handlers, Path(__file__).parent, router, on_start=[tasks.start],
            fetch_wait_ms=250).run()
