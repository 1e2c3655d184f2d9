#!/usr/bin/env python3
"""Yubei innovation scenario simulator. Run ``python simulate.py --help``."""

import sys

from sdsim.cli import main

if __name__ == "__main__":
    sys.exit(main())
