"""The QI team's workspace: ``rxaudit serve`` (see :mod:`audit.web.app`)."""
