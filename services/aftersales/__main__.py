from pathlib import Path

from shared.service import Service

from . import tasks
from .api import router
from .handlers import handlers

if __name__ == "__main__":
    Service("aftersales", handlers, Path(__file__).parent, router, on_start=[tasks.start]).run()
