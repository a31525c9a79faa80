"""The workspace's pages, one module per page family. Each handler takes the
shared :class:`~audit.web.session.Workspace`, the request and its form."""
