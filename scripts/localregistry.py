#!/usr/bin/env python3
"""A throwaway registry on 127.0.0.1: ``start DIR``, ``start --gitea DIR``, ``stop DIR``.

The command of testing/localregistry.py (see there); ``--help`` for the options.
"""

import sys
from pathlib import Path

# Run as a file, Python puts scripts/ on sys.path, not the repository root that holds the
# ``testing`` package (it is not installed: the wheel has idpwrap only). The one path edit.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testing.localregistry import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
