from pathlib import Path

from shared.service import Service

from . import watch
from .api import router
from .handlers import handlers, start_sweep

if __name__ == "__main__":
    Service("intake", handlers, Path(__file__).parent, router, on_start=[watch.start, start_sweep]).run()
