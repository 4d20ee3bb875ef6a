import sys

from oo.cli import main

sys.exit(main())
