import sys

from emoframe.cli import main

sys.exit(main())
