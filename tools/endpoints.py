"""Where each service's HTTP is, for the command line and the demo: SHOPKEEPER_<SERVICE>_URL
(e.g. `http://inventory.internal:8002`, a Kubernetes port-forward, a compose host), else
`http://127.0.0.1:<port>` with the service's docs/contract.md port plus SHOPKEEPER_PORT_OFFSET:
where the local stack runs it and where docker-compose.yml publishes it."""

from __future__ import annotations

from shared.settings import SERVICES, WEB_APPS, ServiceUrls
from shared.settings import service_url as _service_url

__all__ = ["ServiceUrls", "service_url"]


def service_url(service: str) -> str:
    """The service's (or the web console's) base URL, without a trailing slash. ValueError for
    an unknown service."""
    known = (*SERVICES, *WEB_APPS)
    if service not in known:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(known)}")
    return _service_url(service)
