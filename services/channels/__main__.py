from pathlib import Path

from shared.service import Service

from .api import router
from .handlers import handlers
from .workers import start_workers

if __name__ == "__main__":
    Service("channels", handlers, Path(__file__).parent, router,
            on_start=[start_workers]).run()
