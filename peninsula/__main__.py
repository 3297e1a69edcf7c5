import sys

from peninsula.cli.main import main

sys.exit(main())
