"""`make run`: a busy cross-border shop in a few minutes (see tools/simulator.py).

`python -m tools.demo` is `shopkeeper simulate` without the rest of the CLI, so `make run` works
before the console script is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from .channel_demo import ChannelDemo
from .simulator import Simulation


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.demo")
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="orders per second")
    parser.add_argument("--days", type=int, default=30, help="simulated period, compressed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--channel-orders", type=int, default=2,
                        help="orders per platform through the channels' entry points (0: none)")
    args = parser.parse_args()
    if args.orders < 1 or args.rate <= 0 or args.days < 1:
        parser.error("--orders and --days must be >= 1 and --rate > 0")
    code = apply_demo_setup()
    if code:
        sys.exit(code)
    if args.channel_orders > 0:
        # First, so that the simulation's summary stays the last thing printed.
        code = asyncio.run(ChannelDemo(args.channel_orders).run())
        if code:
            sys.exit(code)
    code = asyncio.run(Simulation(args.orders, args.rate, args.days, args.seed).run())
    print(console_login())
    sys.exit(code)


def apply_demo_setup() -> int:
    """The demo shop's setup (setup/demo.yaml: a US seller in USD, a Chinese one in CNY),
    applied the way an operator would (`shopkeeper setup import ... --apply`); applied again on
    a later run, it changes nothing."""
    import os

    from tools import setup_file
    from tools.cli import CliError, setup_call

    os.environ.setdefault("SHOPKEEPER_OPERATOR", "make-run")
    try:
        plans = asyncio.run(setup_file.apply(setup_call, setup_file.read(setup_file.DEMO_FILE)))
    except (setup_file.SetupError, CliError) as exc:
        problems = "".join(f"\n  - {p}" for p in getattr(exc, "problems", []))
        print(f"error: the demo's setup ({setup_file.DEMO_FILE}) was refused: {exc}{problems}")
        return 1
    changes = sum(len(p["changes"]) for p in plans)
    print(f"Setup: {setup_file.DEMO_FILE.relative_to(setup_file.SETUP_DIR.parent)} applied"
          f" ({changes} change{'' if changes == 1 else 's'}; sellers acme-us in USD and"
          " shenzhen-trading in CNY)")
    return 0


def console_login() -> str:
    """The demo admin of the web console, with a fresh one-time password on every run."""
    from shared.settings import service_port
    from tools.console_users import add_user

    try:
        password, _ = asyncio.run(add_user("admin", "admin", reset=True))
    except ValueError as exc:
        return f"console: the demo admin could not be created ({exc})"
    return (f"\nWeb console: http://127.0.0.1:{service_port('console')}/\n"
            f"  user: admin   one-time password: {password}\n"
            "  (`shopkeeper users add NAME --role ROLE` adds more; the console's Users page too)")


if __name__ == "__main__":
    main()
