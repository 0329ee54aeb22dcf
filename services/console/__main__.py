"""`python -m services.console`: the web console on its port (8000 plus the offset)."""

import uvicorn

from shared.http import GuardedH11
from shared.settings import get_settings, service_port

if __name__ == "__main__":
    uvicorn.run("services.console.app:app", host=get_settings().shopkeeper_http_host,
                port=service_port("console"), log_config=None, access_log=False,
                lifespan="on", proxy_headers=False, http=GuardedH11, timeout_keep_alive=5)
