"""``simulate.py serve``: the interactive page on a local address (lever sliders, live goal panels)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError
from ..i18n import t

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def scenario_dirs(args: argparse.Namespace) -> list[Path]:
    """The user's scenario folder (--scenarios, default ./scenarios), then the repository's shipped scenarios."""
    user = Path(args.scenarios) if args.scenarios else Path.cwd() / "scenarios"
    if args.scenarios and not user.is_dir():
        raise InputError("scenario folder not found", str(user), "--scenarios")
    shipped = Path(__file__).resolve().parents[2] / "scenarios"
    return [user, shipped]


def main(args: argparse.Namespace) -> int:
    """Start the server; stop with Ctrl+C."""
    from ..web.server import App, plotly_js
    from ..web.service import Service

    if not 0 <= args.port <= 65535:
        raise InputError(f"expected a port from 0 to 65535 (0: any free port), got {args.port}", None, "--port")
    if not 1 <= args.samples <= 5000:
        raise InputError(f"expected 1 to 5000 ensemble samples, got {args.samples}", None, "--samples")
    plotly_js()  # the 'app' extra is installed
    service = Service(getattr(args, "model", None), scenario_dirs(args), samples=args.samples, seed=args.seed,
                      lang=args.lang)
    if args.host not in LOOPBACK:
        print(t("serve.public", args.lang, host=args.host), file=sys.stderr)
    try:
        app = App((args.host, args.port), service, quiet=not args.verbose)
    except OSError as exc:
        raise InputError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); choose another --port "
                         "or --host", None, "--port") from None
    print(t("serve.preparing", args.lang), flush=True)
    service.warm("baseline")
    url = app.url + (f"?lang={args.lang}" if args.lang != "en" else "")
    print(t("serve.serving", args.lang, url=url), flush=True)
    try:
        app.serve_forever()
    except KeyboardInterrupt:
        print(t("serve.stopped", args.lang))
    finally:
        app.server_close()
    return 0
