"""One module per platform (see base.py for what each provides); MODULES names them."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import httpx

from . import amazon, generic, shopify, woocommerce
from .base import ChannelConfig, Failed, Retry, call

MODULES: dict[str, ModuleType] = {"shopify": shopify, "woocommerce": woocommerce,
                                  "amazon": amazon, "generic": generic}
WRITE_BACK = {"shopify", "woocommerce", "amazon"}


async def probe(cfg: ChannelConfig) -> dict[str, Any]:
    """Reach the platform's API with the channel's credentials; say what happened."""
    if cfg.platform == "generic":
        return {"ok": True, "detail": "generic channels have no API to reach (webhook only)"}
    if not cfg.api_base_url:
        return {"ok": False, "detail": "api_base_url is not set: write-back cannot work"}
    base = cfg.api_base_url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            if cfg.platform == "shopify":
                version = cfg.options.get("api_version") or shopify.DEFAULT_API_VERSION
                await call(client, shopify.bucket(), "shopify", "shop", "GET",
                           f"{base}/admin/api/{version}/shop.json",
                           headers={"X-Shopify-Access-Token": cfg.secret("access_token")})
            elif cfg.platform == "woocommerce":
                await call(client, woocommerce.bucket(), "woocommerce", "system_status", "GET",
                           f"{base}/wp-json/wc/v3/system_status",
                           auth=httpx.BasicAuth(cfg.secret("consumer_key"),
                                                cfg.secret("consumer_secret")))
            else:
                await amazon.SpApi(client, cfg).access_token(force=True)
    except (Retry, Failed) as exc:
        return {"ok": False, "detail": str(exc)}
    return {"ok": True, "detail": f"{cfg.platform} API answered at {base}"}
