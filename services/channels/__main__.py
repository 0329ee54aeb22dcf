from pathlib import Path

from shared.service import Service

from .api import MAX_BODY, OPEN_WRITES, router
from .handlers import handlers
from .workers import start_workers

if __name__ == "__main__":
    # Webhooks and the generic order endpoint authenticate by the platform's signature on the raw
    # body (OPEN_WRITES), not by the admin token; their body limit is the channels' own.
    Service("channels", handlers, Path(__file__).parent, router, on_start=[start_workers],
            open_writes=OPEN_WRITES, max_body_bytes=MAX_BODY).run()
