#!/usr/bin/env python
"""Django's command-line utility for Lanzuan."""

import os
import sys

from django.core.management import execute_from_command_line

from tenants.db_scope import system_scope


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanzuan.settings")
    # Management commands are system work (migrate, sweeps, imports): every tenant's rows are in
    # the database's view. Web requests run in threads of their own and start with none.
    with system_scope(reason="a management command"):
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
