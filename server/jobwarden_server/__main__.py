"""`python -m jobwarden_server serve|migrate`."""

from __future__ import annotations

import sys

from jobwarden_server.app import main

sys.exit(main())
