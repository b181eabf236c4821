"""``python -m aitune_trt_aot inspect PATH`` (see ``aitune_trt_aot.inspect``)."""

import sys

from aitune_trt_aot.inspect import main

sys.exit(main())
