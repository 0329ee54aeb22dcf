from pathlib import Path

from shared.service import Service

from .api import MAX_BODY, OPEN_WRITES, router
from .config import channels_settings
from .handlers import handlers
from .workers import start_workers

if __name__ == "__main__":
    # Webhooks and the generic order endpoint authenticate by the platform's signature on the raw
    # body (OPEN_WRITES), not by the admin token; their body limit and rate are the channels' own.
    Service("channels", handlers, Path(__file__).parent, router, on_start=[start_workers],
            open_writes=OPEN_WRITES, max_body_bytes=MAX_BODY,
            open_writes_per_second=channels_settings().webhooks_per_second).run()
