from pathlib import Path

from shared.service import Service

from .api import router
from .handlers import handlers
from .warehouse import start_waves

if __name__ == "__main__":
    Service("fulfillment", handlers, Path(__file__).parent, router, [start_waves]).run()
