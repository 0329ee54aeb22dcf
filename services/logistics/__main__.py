from pathlib import Path

from shared.service import Service

from .api import router
from .handlers import handlers, publish_coverage, start_watchdog

if __name__ == "__main__":
    # A shipping quote is a read that takes a body: storefronts ask it at checkout, no token.
    Service("logistics", handlers, Path(__file__).parent, router, [publish_coverage, start_watchdog],
            open_writes=("/quotes",)).run()
