import sys

from idpwrap.cli import main

sys.exit(main())
