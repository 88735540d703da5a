import sys

from benchmark.run import main

sys.exit(main())
