from pathlib import Path

from shared.service import Service

from .api import MAX_BODY, OPEN_WRITES, router
from .config import channels_settings
from .handlers import handlers
from .workers import start_workers

if __name__ == "__main__":
    # Webhooks and the generic order endpoint authenticate by the platform's signature on the raw
    # body (OPEN_WRITES), not by the admin token; their body limit and rate are the channels' own.
    # Statuses go back to the sales channels within a quarter of a second: the broker gathers
    # them for up to 250 ms (Service.fetch_wait_ms), a run per fetch instead of one per status.
    Service("channels", handlers, Path(__file__).parent, router, on_start=[start_workers],
            fetch_wait_ms=250,
            open_writes=OPEN_WRITES, max_body_bytes=MAX_BODY,
            open_writes_per_second=channels_settings().webhooks_per_second).run()
