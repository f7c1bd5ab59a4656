import sys

from melinterp.cli import main

sys.exit(main())
