import sys

from haipvs.cli import main

sys.exit(main())
