"""``python -m bitsandbytes``: see bitsandbytes.diagnostics.main."""

import sys

if __name__ == "__main__":
    from bitsandbytes.diagnostics.main import main

    sys.exit(main())
