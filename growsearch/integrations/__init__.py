"""Integrations with training frameworks a user's own loop may be written in (each an optional
extra, imported only when used): :mod:`growsearch.integrations.lightning`."""
