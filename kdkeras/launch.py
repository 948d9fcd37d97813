"""`python -m kdkeras.launch`: the launcher in `kdkeras.distribute.launch`.

Kept so the documented command keeps working; the code lives in
`kdkeras/distribute/launch.py`.
"""

import sys

from kdkeras.distribute.launch import main

if __name__ == "__main__":
    sys.exit(main())
