from pathlib import Path

from shared.service import Service

from .api import router
from .handlers import handlers
from .jobs import start_jobs

if __name__ == "__main__":
    Service("analytics", handlers, Path(__file__).parent, router, [start_jobs]).run()
