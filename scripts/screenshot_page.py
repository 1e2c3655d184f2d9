"""Screenshot of the interactive page for the README (docs/images/page.png), taken in headless Chromium.

    python scripts/screenshot_page.py [--out docs/images/page.png] [--state "scenario=baseline&ht_investment=120"]

Starts ``simulate.py serve`` on a free local port, opens the page with the given URL state, waits for
the central run and the ensemble, and saves the window. Needs Debian's chromium and chromium-driver,
the test extra (selenium), and for the Chinese text a CJK font (Debian fonts-noto-cjk).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdsim.web.headless import Server, browser_missing, make_driver, wait_settled  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "images" / "page.png"))
    ap.add_argument("--state", default="scenario=baseline&lang=en&ht_investment=120",
                    help="the page's URL query (scenario, lang, lever values)")
    ap.add_argument("--width", type=int, default=1900)
    ap.add_argument("--height", type=int, default=1320)
    args = ap.parse_args()
    why = browser_missing()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    with Server() as srv:
        d = make_driver(width=args.width, height=args.height)
        try:
            d.get(srv.url + "?" + args.state)
            wait_settled(d)
            # the lever list scrolls on its own: bring the first lever set by the URL into view
            d.execute_script("const a = document.querySelector('#levers'), c = a.querySelector('.lever.changed');"
                             "if (c) a.scrollTop = c.offsetTop - a.offsetTop - 260;")
            d.execute_script("return new Promise(r => setTimeout(r, 500))")
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            d.save_screenshot(args.out)
        finally:
            d.quit()
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
