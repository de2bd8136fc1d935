#!/usr/bin/env python
"""The example's manage.py: ``python examples/django_api/manage.py scopes routes``, ``check``, ...

``serve.py`` starts the whole example (the authorization server and this API); this is Django's
usual command line for the same project, configured by the environment variables
``api_site/settings.py`` reads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "api_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
