from pathlib import Path

from shared.service import Service

from .api import router
from .handlers import handlers, start_sweep
from .warehouse import start_waves

if __name__ == "__main__":
    Service("fulfillment", handlers, Path(__file__).parent, router, [start_waves, start_sweep]).run()
