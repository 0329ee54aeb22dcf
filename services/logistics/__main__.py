from pathlib import Path

from shared.service import Service

from .api import OPEN_WRITES, router
from .handlers import handlers, publish_coverage, start_sweep, start_watchdog

if __name__ == "__main__":
    Service("logistics", handlers, Path(__file__).parent, router,
            [publish_coverage, start_watchdog, start_sweep], open_writes=OPEN_WRITES).run()
